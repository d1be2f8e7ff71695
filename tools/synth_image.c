/* Synthetic mammograms, the image without lesions: breast outline, skin, pectoral muscle,
 * parenchyma, the scanned-film look of CBIS-DDSM, blur, noise and quantisation. See synth.h.
 *
 * Intensities are on a [0,1] display scale (bright = dense; MONOCHROME2): air ~0.01 (film ~0.05),
 * fat ~0.33, dense gland ~0.55, pectoral ~0.68, lesions add 0.10-0.45 on top. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "synth.h"
#include "synth_rng.h"

static double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

/* t with P(Z > t) = p for a standard normal Z (bisection on erfc; called once per image). */
static double upper_quantile(double p)
{
    double lo = -8, hi = 8;
    for (int i = 0; i < 80; i++) {
        double mid = 0.5 * (lo + hi);
        if (0.5 * erfc(mid / sqrt(2.0)) > p) lo = mid;
        else hi = mid;
    }
    return 0.5 * (lo + hi);
}

void mm_synth_breast_init(mm_synth_breast *b, int h, int w, double mm_per_px, int chest_right,
                          int mlo, int density, int film, uint64_t seed)
{
    memset(b, 0, sizeof *b);
    b->h = h, b->w = w, b->mm_per_px = mm_per_px;
    b->chest_right = chest_right, b->mlo = mlo;
    b->density = density < 1 ? 1 : density > 4 ? 4 : density;
    b->film = film, b->seed = seed;
    mm_srng r = mm_srng_make(seed, MM_TAG_BREAST, 0);
    if (mlo) {
        b->cy = mm_srng_range(&r, 0.48, 0.56) * h;
        b->half_h = mm_srng_range(&r, 0.42, 0.50) * h;
        b->depth = mm_srng_range(&r, 0.55, 0.74) * w;
        b->pec_x = mm_srng_range(&r, 0.22, 0.38) * w;
        b->pec_y = mm_srng_range(&r, 0.35, 0.55) * h;
    } else {
        b->cy = mm_srng_range(&r, 0.46, 0.54) * h;
        b->half_h = mm_srng_range(&r, 0.34, 0.45) * h;
        b->depth = mm_srng_range(&r, 0.55, 0.78) * w;
    }
}

/* Distance from the chest wall (pixels) of column x. */
static double chest_dist(const mm_synth_breast *b, double x)
{
    return b->chest_right ? (double)(b->w - 1) - x : x;
}

void mm_synth_breast_point(const mm_synth_breast *b, double u, double v, double *x, double *y)
{
    double xd = u * b->depth;
    *y = b->cy + v * b->half_h * sqrt(fmax(0.0, 1.0 - u * u));
    *x = b->chest_right ? (double)(b->w - 1) - xd : xd;
}

/* The pectoral boundary: s > 0 inside the muscle; the line is bowed slightly (a sine term). */
static double pectoral_s(const mm_synth_breast *b, double xd, double y)
{
    if (!b->mlo) return -1e9;
    double t = y / b->pec_y;
    return 1.0 - (xd / b->pec_x + t + 0.06 * sin(3.14159265358979 * fmin(fmax(t, 0.0), 1.0)));
}

int mm_synth_breast_inside(const mm_synth_breast *b, double x, double y, double margin)
{
    if (x < 0 || y < 0 || x > b->w - 1 || y > b->h - 1) return 0;
    double xd = chest_dist(b, x), dy = (y - b->cy) / b->half_h, dx = xd / b->depth;
    if (dx * dx + dy * dy >= (1.0 - margin) * (1.0 - margin)) return 0;
    /* away from the chest wall and the top and bottom edges of the image too */
    double edge = margin * fmin(b->depth, b->half_h);
    if (xd < edge || y < edge || y > b->h - 1 - edge) return 0;
    if (b->mlo && pectoral_s(b, xd, y) > -(0.15 + margin)) return 0;
    return 1;
}

/* A smooth field: the texture made at 1/factor resolution and bilinearly upsampled. */
static void smooth_field(float *out, int h, int w, double beta, uint64_t seed, int factor)
{
    int hs = (h + factor - 1) / factor + 1, ws = (w + factor - 1) / factor + 1;
    float *lo = mm_xmalloc(sizeof(float) * (size_t)hs * ws);
    mm_synth_texture(lo, hs, ws, beta, seed);
    for (int y = 0; y < h; y++) {
        double fy = (double)y / factor;
        int y0 = (int)fy;
        double ty = fy - y0;
        if (y0 >= hs - 1) y0 = hs - 2, ty = 1.0;
        for (int x = 0; x < w; x++) {
            double fx = (double)x / factor;
            int x0 = (int)fx;
            double tx = fx - x0;
            if (x0 >= ws - 1) x0 = ws - 2, tx = 1.0;
            const float *p = lo + (size_t)y0 * ws + x0;
            out[(size_t)y * w + x] = (float)((1 - ty) * ((1 - tx) * p[0] + tx * p[1]) +
                                             ty * ((1 - tx) * p[ws] + tx * p[ws + 1]));
        }
    }
    free(lo);
}

void mm_synth_draw_breast(float *img, uint8_t *breast_mask, const mm_synth_breast *b)
{
    int h = b->h, w = b->w;
    size_t n = (size_t)h * w;
    mm_srng r = mm_srng_make(b->seed, MM_TAG_BREAST, 1);
    double beta = mm_srng_range(&r, 2.6, 3.2);
    static const double gland_fraction[4] = {0.10, 0.30, 0.60, 0.85};
    double thr = upper_quantile(gland_fraction[b->density - 1]);
    double air = b->film ? mm_srng_range(&r, 0.03, 0.07) : mm_srng_range(&r, 0.004, 0.015);
    double fat = mm_srng_range(&r, 0.30, 0.36), gland = mm_srng_range(&r, 0.18, 0.26);
    double tau = mm_srng_range(&r, 0.06, 0.10), skin_amp = mm_srng_range(&r, 0.05, 0.10);
    double roll = mm_srng_range(&r, 4.0, 6.0), pec_level = mm_srng_range(&r, 0.56, 0.66);
    double skin_px = fmax(1.5 / b->mm_per_px, 0.8), pec_edge_px = fmax(1.0 / b->mm_per_px, 0.7);
    float *tex = mm_xmalloc(sizeof(float) * n), *dens = mm_xmalloc(sizeof(float) * n);
    mm_synth_texture(tex, h, w, beta, mm_srng_key(b->seed, MM_TAG_TEXTURE, 0));
    int factor = (h > 1024 || w > 1024) ? 16 : 4;
    smooth_field(dens, h, w, 3.5, mm_srng_key(b->seed, MM_TAG_DENSITY, 0), factor);
    double pec_grad = b->mlo ? sqrt(1.0 / (b->pec_x * b->pec_x) + 1.0 / (b->pec_y * b->pec_y)) : 1.0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            double xd = chest_dist(b, x), ex = xd / b->depth, ey = (y - b->cy) / b->half_h;
            double rho = sqrt(ex * ex + ey * ey), val = air, N = tex[i];
            int inside = rho < 1.0;
            if (inside) {
                /* more gland centrally (retro-areolar), less towards the skin */
                double bias = 0.9 * (1.0 - rho * rho) - 0.45;
                double g = sigmoid((dens[i] + bias - thr) / 0.3);
                double t = fat + gland * g + tau * N * (0.5 * fat + gland * g);
                /* compressed thickness ~ sqrt(1 - rho^2): flat inside, rolling off at the edge */
                double phi = 1.0 - exp(-roll * sqrt(1.0 - rho * rho));
                val = air + (t - air) * phi;
                double gx = xd / (b->depth * b->depth), gy = (y - b->cy) / (b->half_h * b->half_h);
                double grad = sqrt(gx * gx + gy * gy) / fmax(rho, 1e-6);
                double d_edge = (1.0 - rho) / fmax(grad, 1e-9);
                if (rho > 0.5) val += skin_amp * exp(-(d_edge / skin_px) * (d_edge / skin_px));
            }
            if (b->mlo) {
                double dist = pectoral_s(b, xd, y) / pec_grad; /* pixels, > 0 inside the muscle */
                double p = sigmoid(dist / pec_edge_px);
                if (p > 1e-4) {
                    double pv = pec_level * (1.0 + 0.5 * tau * N);
                    val = val * (1.0 - p) + pv * p;
                    if (p > 0.5) inside = 1;
                }
            }
            img[i] = (float)val;
            if (breast_mask) breast_mask[i] = inside ? 255 : 0;
        }
    free(tex);
    free(dens);
}

/* ---- system effects ------------------------------------------------------------------------ */

static double rho_at(const mm_synth_breast *b, double x, double y)
{
    double ex = chest_dist(b, x) / b->depth, ey = (y - b->cy) / b->half_h;
    return sqrt(ex * ex + ey * ey);
}

/* Scanned film (CBIS-DDSM): bright film-edge bands and a bright label box with dark "text",
 * placed away from the breast. */
static void film_overlays(float *img, const mm_synth_breast *b)
{
    int h = b->h, w = b->w;
    mm_srng r = mm_srng_make(b->seed, MM_TAG_FILM, 0);
    for (int side = 0; side < 2; side++) { /* top, bottom bands */
        if (!mm_srng_bern(&r, side == 0 ? 0.5 : 0.35)) continue;
        int bh = (int)(mm_srng_range(&r, 0.01, 0.035) * h) + 1;
        double level = mm_srng_range(&r, 0.75, 0.95);
        for (int k = 0; k < bh; k++) {
            int y = side == 0 ? k : h - 1 - k;
            for (int x = 0; x < w; x++) img[(size_t)y * w + x] = (float)level;
        }
    }
    if (mm_srng_bern(&r, 0.3)) { /* band along the edge opposite the chest wall */
        int bw = (int)(mm_srng_range(&r, 0.01, 0.03) * w) + 1;
        double level = mm_srng_range(&r, 0.75, 0.95);
        for (int y = 0; y < h; y++)
            for (int k = 0; k < bw; k++) {
                int x = b->chest_right ? k : w - 1 - k;
                img[(size_t)y * w + x] = (float)level;
            }
    }
    if (mm_srng_bern(&r, 0.7)) {
        int bh = (int)(mm_srng_range(&r, 0.06, 0.10) * h) + 2, bw = (int)(mm_srng_range(&r, 0.15, 0.25) * w) + 2;
        int my = (int)(mm_srng_range(&r, 0.04, 0.08) * h), mx = (int)(mm_srng_range(&r, 0.02, 0.05) * w);
        int top = mm_srng_bern(&r, 0.5);
        int y0 = top ? my : h - my - bh, x0 = b->chest_right ? mx : w - mx - bw;
        double level = mm_srng_range(&r, 0.85, 0.95);
        /* only where all of the box is well outside the breast */
        int clear = 1;
        for (int yy = y0; yy < y0 + bh && clear; yy += 1)
            for (int xx = x0; xx < x0 + bw; xx += 1)
                if (rho_at(b, xx, yy) < 1.08 || (b->mlo && pectoral_s(b, chest_dist(b, xx), yy) > -0.2)) {
                    clear = 0;
                    break;
                }
        if (clear && y0 >= 0 && x0 >= 0 && y0 + bh <= h && x0 + bw <= w) {
            for (int yy = y0; yy < y0 + bh; yy++)
                for (int xx = x0; xx < x0 + bw; xx++) img[(size_t)yy * w + xx] = (float)level;
            /* two or three lines of dark dashes ("text") */
            int lines = mm_srng_int(&r, 2, 3), th = bh / (2 * lines + 1) > 0 ? bh / (2 * lines + 1) : 1;
            for (int l = 0; l < lines; l++) {
                int ty = y0 + th * (2 * l + 1);
                int xx = x0 + 1 + mm_srng_int(&r, 0, 2);
                while (xx < x0 + bw - 2) {
                    int len = mm_srng_int(&r, 1, 4), gap = mm_srng_int(&r, 1, 2);
                    for (int yy = ty; yy < ty + th && yy < y0 + bh - 1; yy++)
                        for (int k = 0; k < len && xx + k < x0 + bw - 1; k++)
                            img[(size_t)yy * w + xx + k] = (float)(level * 0.25);
                    xx += len + gap;
                }
            }
        }
    }
}

/* Separable Gaussian blur, sigma in pixels, edges clamped. */
static void blur(float *img, int h, int w, double sigma)
{
    int rad = (int)ceil(3 * sigma);
    double k[16];
    double sum = 0;
    if (rad > 7) rad = 7;
    for (int i = -rad; i <= rad; i++) sum += k[i + rad] = exp(-0.5 * i * i / (sigma * sigma));
    for (int i = 0; i <= 2 * rad; i++) k[i] /= sum;
    int nmax = h > w ? h : w;
    float *line = mm_xmalloc(sizeof(float) * (size_t)nmax);
    for (int y = 0; y < h; y++) {
        float *row = img + (size_t)y * w;
        memcpy(line, row, sizeof(float) * (size_t)w);
        for (int x = 0; x < w; x++) {
            double acc = 0;
            for (int t = -rad; t <= rad; t++) {
                int xx = x + t < 0 ? 0 : x + t >= w ? w - 1 : x + t;
                acc += k[t + rad] * line[xx];
            }
            row[x] = (float)acc;
        }
    }
    for (int x = 0; x < w; x++) {
        for (int y = 0; y < h; y++) line[y] = img[(size_t)y * w + x];
        for (int y = 0; y < h; y++) {
            double acc = 0;
            for (int t = -rad; t <= rad; t++) {
                int yy = y + t < 0 ? 0 : y + t >= h ? h - 1 : y + t;
                acc += k[t + rad] * line[yy];
            }
            img[(size_t)y * w + x] = (float)acc;
        }
    }
    free(line);
}

void mm_synth_finish(float *img, const mm_synth_breast *b)
{
    int h = b->h, w = b->w;
    if (b->film) film_overlays(img, b);
    blur(img, h, w, 0.6);
    /* Signal-dependent (quantum-like) noise, plus film grain for scanned film. */
    uint64_t key = mm_srng_key(b->seed, MM_TAG_NOISE, 0);
    double q = b->film ? 0.010 : 0.008, grain = b->film ? 0.006 : 0.0;
    size_t n = (size_t)h * w;
    for (size_t i = 0; i < n; i++) {
        mm_philox_out o = mm_philox4x32(key, (uint64_t)i);
        double u1 = ((double)o.v[0] + 1.0) / 4294967297.0, u2 = (double)o.v[1] / 4294967296.0;
        double z = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
        double v = img[i];
        double sd = q * sqrt(fmax(v, 0.02) / 0.5) + grain;
        v += sd * z;
        img[i] = (float)(v < 0 ? 0 : v > 1 ? 1 : v);
    }
}

void mm_synth_quantize(uint16_t *out, const float *img, long long n, int maxval)
{
    for (long long i = 0; i < n; i++) {
        double v = floor((double)img[i] * maxval + 0.5);
        out[i] = (uint16_t)(v < 0 ? 0 : v > maxval ? maxval : v);
    }
}
