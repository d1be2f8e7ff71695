/* Spectral synthesis of 1/f^beta random fields for the synthetic mammograms: an iterative radix-2
 * complex FFT (Cooley-Tukey, decimation in time) and the texture generator built on it.
 *
 * The texture: complex white Gaussian noise W(k) on a power-of-two grid is shaped by the filter
 * |f|^(-beta/2) (DC set to zero) and transformed back; the real part of the result is a stationary
 * Gaussian field whose power spectrum is |f|^-beta, because the filter is symmetric
 * (|A(k)| = |A(-k)|) so the real part carries (P(k) + P(-k)) / 2 = P(k). Cropping the periodic
 * field to h x w keeps the spectrum's shape. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "synth.h"
#include "synth_rng.h"

static int is_pow2(int n) { return n > 0 && (n & (n - 1)) == 0; }

static int next_pow2(int n)
{
    int p = 1;
    while (p < n) p <<= 1;
    return p;
}

/* cs[k], sn[k] = cos, sin(2 pi k / n) for k < n/2. */
static void twiddles(float *cs, float *sn, int n)
{
    for (int k = 0; k < n / 2; k++) {
        double a = 6.283185307179586 * (double)k / (double)n;
        cs[k] = (float)cos(a);
        sn[k] = (float)sin(a);
    }
}

static void fft_core(float *re, float *im, int n, int inverse, const float *cs, const float *sn)
{
    /* bit-reversal permutation */
    for (int i = 1, j = 0; i < n; i++) {
        int bit = n >> 1;
        for (; j & bit; bit >>= 1) j ^= bit;
        j ^= bit;
        if (i < j) {
            float t = re[i];
            re[i] = re[j];
            re[j] = t;
            t = im[i];
            im[i] = im[j];
            im[j] = t;
        }
    }
    /* butterflies: X[k] = E[k] + w^k O[k], X[k + n/2] = E[k] - w^k O[k], w = exp(-+2 pi i / len) */
    for (int len = 2; len <= n; len <<= 1) {
        int half = len >> 1, step = n / len;
        for (int i = 0; i < n; i += len)
            for (int j = 0; j < half; j++) {
                float wr = cs[j * step], wi = inverse ? sn[j * step] : -sn[j * step];
                float *ar = re + i + j, *ai = im + i + j, *br = ar + half, *bi = ai + half;
                float vr = *br * wr - *bi * wi, vi = *br * wi + *bi * wr;
                *br = *ar - vr;
                *bi = *ai - vi;
                *ar += vr;
                *ai += vi;
            }
    }
}

void mm_synth_fft(float *re, float *im, int n, int inverse)
{
    MM_ASSERT(is_pow2(n));
    if (n == 1) return;
    float *cs = mm_xmalloc(sizeof(float) * (size_t)n), *sn = cs + n / 2;
    twiddles(cs, sn, n);
    fft_core(re, im, n, inverse, cs, sn);
    free(cs);
}

/* Inverse 2-D transform of re/im [H*W] (rows, then columns). */
static void ifft2(float *re, float *im, int H, int W)
{
    int nmax = H > W ? H : W;
    float *cs = mm_xmalloc(sizeof(float) * (size_t)nmax * 2), *sn = cs + nmax;
    if (W > 1) {
        twiddles(cs, sn, W);
#pragma omp parallel for schedule(static) if ((long long)H * W >= (1 << 20))
        for (int y = 0; y < H; y++) fft_core(re + (size_t)y * W, im + (size_t)y * W, W, 1, cs, sn);
    }
    if (H > 1) {
        twiddles(cs, sn, H);
#pragma omp parallel if ((long long)H * W >= (1 << 20))
        {
            float *cr = mm_xmalloc(sizeof(float) * (size_t)H * 2), *ci = cr + H;
#pragma omp for schedule(static)
            for (int x = 0; x < W; x++) {
                for (int y = 0; y < H; y++) cr[y] = re[(size_t)y * W + x], ci[y] = im[(size_t)y * W + x];
                fft_core(cr, ci, H, 1, cs, sn);
                for (int y = 0; y < H; y++) re[(size_t)y * W + x] = cr[y], im[(size_t)y * W + x] = ci[y];
            }
            free(cr);
        }
    }
    free(cs);
}

void mm_synth_texture(float *out, int h, int w, double beta, uint64_t seed)
{
    int H = next_pow2(h), W = next_pow2(w);
    float *re = mm_xmalloc(sizeof(float) * (size_t)H * W), *im = mm_xmalloc(sizeof(float) * (size_t)H * W);
    uint64_t key = mm_srng_key(seed, MM_TAG_TEXTURE, 0);
#pragma omp parallel for schedule(static) if ((long long)H * W >= (1 << 20))
    for (int ky = 0; ky < H; ky++) {
        double fy = (double)(ky <= H / 2 ? ky : ky - H) / (double)H;
        for (int kx = 0; kx < W; kx++) {
            double fx = (double)(kx <= W / 2 ? kx : kx - W) / (double)W;
            double f2 = fx * fx + fy * fy;
            size_t i = (size_t)ky * W + kx;
            if (f2 == 0.0) {
                re[i] = im[i] = 0.0f;
                continue;
            }
            double amp = pow(f2, -beta / 4.0); /* |f|^(-beta/2) */
            /* two independent standard normals from one Philox block (Box-Muller) */
            mm_philox_out o = mm_philox4x32(key, (uint64_t)i);
            double u1 = ((double)o.v[0] + 1.0) / 4294967297.0, u2 = (double)o.v[1] / 4294967296.0;
            double r = sqrt(-2.0 * log(u1));
            re[i] = (float)(amp * r * cos(6.283185307179586 * u2));
            im[i] = (float)(amp * r * sin(6.283185307179586 * u2));
        }
    }
    ifft2(re, im, H, W);
    double sum = 0, sum2 = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double v = re[(size_t)y * W + x];
            sum += v;
            sum2 += v * v;
        }
    double n = (double)h * w, mean = sum / n, var = sum2 / n - mean * mean;
    double inv = var > 0 ? 1.0 / sqrt(var) : 0.0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) out[(size_t)y * w + x] = (float)((re[(size_t)y * W + x] - mean) * inv);
    free(re);
    free(im);
}
