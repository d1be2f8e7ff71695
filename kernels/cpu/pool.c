/* CPU pooling over NHWC tensors: max, average, adaptive average (PyTorch's AdaptiveAvgPool2d) and
 * global average. The inner loops run over the contiguous channels of a pixel.
 *
 * Backward passes that scatter into overlapping windows are written so threads never share an
 * output element: average pools gather (each input pixel sums the outputs whose windows cover
 * it); max pooling scatters to the forward's argmax (each output's window tap), one output row
 * per thread, in phases of rows that are at least a window apart (rows oy and oy + ceil(kh/sh)
 * never overlap). */
#include <math.h>

#include "../../runtime/error.h"

#include "cpu_internal.h"
#include "cpu_kernels.h"

static void zero(float *x, int64_t n)
{
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) x[i] = 0.0f;
}

/* ---- max pooling (padding is -inf; ties and NaN follow PyTorch: the first maximum wins, a NaN
 * is always taken) ---- */

/* Output pixels [lo, hi) of the flat [n*oh*ow] range: y, and each channel's window tap in
 * argmax when wanted. */
MM_CPU_VECTOR static void maxpool_range(float *y, uint8_t *argmax, const float *x,
                                        const mm_pool_dims *d, int64_t lo, int64_t hi)
{
    const int c = d->c;
    for (int64_t p = lo; p < hi; p++) {
        int img = (int)(p / ((int64_t)d->oh * d->ow));
        int oy = (int)(p / d->ow % d->oh), ox = (int)(p % d->ow);
        int iy0 = oy * d->stride_h - d->pad_h, ix0 = ox * d->stride_w - d->pad_w;
        int ky_lo = iy0 < 0 ? -iy0 : 0, ky_hi = d->h - iy0 < d->kh ? d->h - iy0 : d->kh;
        int kx_lo = ix0 < 0 ? -ix0 : 0, kx_hi = d->w - ix0 < d->kw ? d->w - ix0 : d->kw;
        float *yp = y + p * c;
        uint8_t *ap = argmax ? argmax + p * c : NULL;
        /* PyTorch's choice when every value is -inf: the window's first pixel in the image */
        const uint8_t first = (uint8_t)(ky_lo * d->kw + kx_lo);
        for (int ci = 0; ci < c; ci++) yp[ci] = -INFINITY;
        if (ap)
            for (int ci = 0; ci < c; ci++) ap[ci] = first;
        for (int ky = ky_lo; ky < ky_hi; ky++) {
            for (int kx = kx_lo; kx < kx_hi; kx++) {
                const float *xp = x + (((int64_t)img * d->h + iy0 + ky) * d->w + ix0 + kx) * c;
                const uint8_t tap = (uint8_t)(ky * d->kw + kx);
                if (ap) {
#pragma omp simd
                    for (int ci = 0; ci < c; ci++) {
                        float v = xp[ci];
                        int take = v > yp[ci] || isnan(v);
                        yp[ci] = take ? v : yp[ci];
                        ap[ci] = take ? tap : ap[ci];
                    }
                } else {
#pragma omp simd
                    for (int ci = 0; ci < c; ci++) {
                        float v = xp[ci];
                        yp[ci] = v > yp[ci] || isnan(v) ? v : yp[ci];
                    }
                }
            }
        }
    }
}

void mm_cpu_maxpool_forward(float *y, uint8_t *argmax, const float *x, const mm_pool_dims *d)
{
    MM_ASSERT(!argmax || d->kh * d->kw <= 256);
    const int64_t npix = (int64_t)d->n * d->oh * d->ow;
    MM_CPU_SPANS(npix, npix * d->c * d->kh * d->kw, maxpool_range(y, argmax, x, d, lo_, hi_));
}

/* dx[tap] += dy (where y > 0 with relu_mask) for every output in row oy of image img. */
static void maxpool_backward_row(float *dx, const float *dy, const uint8_t *argmax,
                                 const float *y, const mm_pool_dims *d, int img, int oy)
{
    const int c = d->c;
    const int iy0 = oy * d->stride_h - d->pad_h;
    for (int ox = 0; ox < d->ow; ox++) {
        const int ix0 = ox * d->stride_w - d->pad_w;
        const int64_t o = (((int64_t)img * d->oh + oy) * d->ow + ox) * c;
        for (int ci = 0; ci < c; ci++) {
            if (d->relu_mask && !(y[o + ci] > 0.0f)) continue;
            const int ky = argmax[o + ci] / d->kw, kx = argmax[o + ci] % d->kw;
            dx[(((int64_t)img * d->h + iy0 + ky) * d->w + ix0 + kx) * c + ci] += dy[o + ci];
        }
    }
}

void mm_cpu_maxpool_backward(float *dx, const float *dy, const uint8_t *argmax, const float *y,
                             const mm_pool_dims *d)
{
    MM_ASSERT(!d->relu_mask || y);
    zero(dx, (int64_t)d->n * d->h * d->w * d->c);
    const int gap = (d->kh + d->stride_h - 1) / d->stride_h;
    for (int phase = 0; phase < gap && phase < d->oh; phase++) {
        int rows = (d->oh - phase + gap - 1) / gap;
        int64_t jobs = (int64_t)d->n * rows;
#pragma omp parallel for schedule(static) if (jobs * d->ow * d->c >= MM_CPU_PARALLEL_MIN)
        for (int64_t j = 0; j < jobs; j++)
            maxpool_backward_row(dx, dy, argmax, y, d, (int)(j / rows),
                                 phase + (int)(j % rows) * gap);
    }
}

/* ---- average pooling ---- */

/* PyTorch's divisor: the window clipped to the padded image (always kh*kw without ceil_mode) when
 * count_include_pad, else the number of window pixels inside the image. */
static int avg_divisor(const mm_pool_dims *d, int oy, int ox)
{
    int hs = oy * d->stride_h - d->pad_h, ws = ox * d->stride_w - d->pad_w;
    int he = hs + d->kh < d->h + d->pad_h ? hs + d->kh : d->h + d->pad_h;
    int we = ws + d->kw < d->w + d->pad_w ? ws + d->kw : d->w + d->pad_w;
    if (d->count_include_pad) return (he - hs) * (we - ws);
    if (hs < 0) hs = 0;
    if (ws < 0) ws = 0;
    if (he > d->h) he = d->h;
    if (we > d->w) we = d->w;
    return (he - hs) * (we - ws);
}

void mm_cpu_avgpool_forward(float *y, const float *x, const mm_pool_dims *d)
{
    const int c = d->c;
    const int64_t npix = (int64_t)d->n * d->oh * d->ow;
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < npix; p++) {
        int img = (int)(p / ((int64_t)d->oh * d->ow));
        int oy = (int)(p / d->ow % d->oh), ox = (int)(p % d->ow);
        float *yp = y + p * c;
        for (int ci = 0; ci < c; ci++) yp[ci] = 0.0f;
        for (int ky = 0; ky < d->kh; ky++) {
            int iy = oy * d->stride_h - d->pad_h + ky;
            if (iy < 0 || iy >= d->h) continue;
            for (int kx = 0; kx < d->kw; kx++) {
                int ix = ox * d->stride_w - d->pad_w + kx;
                if (ix < 0 || ix >= d->w) continue;
                const float *xp = x + (((int64_t)img * d->h + iy) * d->w + ix) * c;
                for (int ci = 0; ci < c; ci++) yp[ci] += xp[ci];
            }
        }
        int div = avg_divisor(d, oy, ox);
        float inv = div > 0 ? 1.0f / (float)div : 0.0f;
        for (int ci = 0; ci < c; ci++) yp[ci] *= inv;
    }
}

/* The outputs o whose windows [o*stride - pad, o*stride - pad + k) contain input i:
 * (i + pad - k) / stride < o <= (i + pad) / stride, clipped to [0, out). */
static void covering_range(int i, int pad, int k, int stride, int out, int *lo, int *hi)
{
    int a = i + pad - k + 1;
    *lo = a <= 0 ? 0 : (a + stride - 1) / stride;
    int b = i + pad;
    *hi = b < 0 ? -1 : b / stride;
    if (*hi > out - 1) *hi = out - 1;
}

void mm_cpu_avgpool_backward(float *dx, const float *dy, const mm_pool_dims *d)
{
    const int c = d->c;
    const int64_t npix = (int64_t)d->n * d->h * d->w;
#pragma omp parallel for schedule(static)
    for (int64_t q = 0; q < npix; q++) {
        int img = (int)(q / ((int64_t)d->h * d->w));
        int iy = (int)(q / d->w % d->h), ix = (int)(q % d->w);
        float *dxp = dx + q * c;
        for (int ci = 0; ci < c; ci++) dxp[ci] = 0.0f;
        int oy_lo, oy_hi, ox_lo, ox_hi;
        covering_range(iy, d->pad_h, d->kh, d->stride_h, d->oh, &oy_lo, &oy_hi);
        covering_range(ix, d->pad_w, d->kw, d->stride_w, d->ow, &ox_lo, &ox_hi);
        for (int oy = oy_lo; oy <= oy_hi; oy++)
            for (int ox = ox_lo; ox <= ox_hi; ox++) {
                float inv = 1.0f / (float)avg_divisor(d, oy, ox);
                const float *dyp = dy + (((int64_t)img * d->oh + oy) * d->ow + ox) * c;
                for (int ci = 0; ci < c; ci++) dxp[ci] += dyp[ci] * inv;
            }
    }
}

/* ---- adaptive average pooling ---- */

/* Cell i of `out` over `in` covers [floor(i*in/out), ceil((i+1)*in/out)). */
static int adaptive_start(int i, int in, int out) { return (int)((int64_t)i * in / out); }
static int adaptive_end(int i, int in, int out)
{
    return (int)(((int64_t)(i + 1) * in + out - 1) / out);
}

void mm_cpu_adaptive_avgpool_forward(float *y, const float *x, const mm_pool_dims *d)
{
    const int c = d->c;
    const int64_t npix = (int64_t)d->n * d->oh * d->ow;
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < npix; p++) {
        int img = (int)(p / ((int64_t)d->oh * d->ow));
        int oy = (int)(p / d->ow % d->oh), ox = (int)(p % d->ow);
        int hs = adaptive_start(oy, d->h, d->oh), he = adaptive_end(oy, d->h, d->oh);
        int ws = adaptive_start(ox, d->w, d->ow), we = adaptive_end(ox, d->w, d->ow);
        float *yp = y + p * c;
        for (int ci = 0; ci < c; ci++) yp[ci] = 0.0f;
        for (int iy = hs; iy < he; iy++)
            for (int ix = ws; ix < we; ix++) {
                const float *xp = x + (((int64_t)img * d->h + iy) * d->w + ix) * c;
                for (int ci = 0; ci < c; ci++) yp[ci] += xp[ci];
            }
        float inv = 1.0f / (float)((he - hs) * (we - ws));
        for (int ci = 0; ci < c; ci++) yp[ci] *= inv;
    }
}

/* The cells covering input i: start(o) <= i  <=>  o <= ceil((i+1)*out/in) - 1, and
 * end(o) > i  <=>  o >= floor(i*out/in). */
static void adaptive_covering(int i, int in, int out, int *lo, int *hi)
{
    *lo = (int)((int64_t)i * out / in);
    *hi = (int)(((int64_t)(i + 1) * out + in - 1) / in) - 1;
    if (*hi > out - 1) *hi = out - 1;
}

void mm_cpu_adaptive_avgpool_backward(float *dx, const float *dy, const mm_pool_dims *d)
{
    const int c = d->c;
    const int64_t npix = (int64_t)d->n * d->h * d->w;
#pragma omp parallel for schedule(static)
    for (int64_t q = 0; q < npix; q++) {
        int img = (int)(q / ((int64_t)d->h * d->w));
        int iy = (int)(q / d->w % d->h), ix = (int)(q % d->w);
        float *dxp = dx + q * c;
        for (int ci = 0; ci < c; ci++) dxp[ci] = 0.0f;
        int oy_lo, oy_hi, ox_lo, ox_hi;
        adaptive_covering(iy, d->h, d->oh, &oy_lo, &oy_hi);
        adaptive_covering(ix, d->w, d->ow, &ox_lo, &ox_hi);
        for (int oy = oy_lo; oy <= oy_hi; oy++) {
            int hs = adaptive_start(oy, d->h, d->oh), he = adaptive_end(oy, d->h, d->oh);
            for (int ox = ox_lo; ox <= ox_hi; ox++) {
                int ws = adaptive_start(ox, d->w, d->ow), we = adaptive_end(ox, d->w, d->ow);
                float inv = 1.0f / (float)((he - hs) * (we - ws));
                const float *dyp = dy + (((int64_t)img * d->oh + oy) * d->ow + ox) * c;
                for (int ci = 0; ci < c; ci++) dxp[ci] += dyp[ci] * inv;
            }
        }
    }
}

/* ---- global average pooling [n,hw,c] -> [n,c] ---- */

#define GAP_BLOCK 64

void mm_cpu_global_avgpool_forward(float *y, const float *x, int n, int64_t hw, int c)
{
    const int blocks = (c + GAP_BLOCK - 1) / GAP_BLOCK;
    const int64_t jobs = (int64_t)n * blocks;
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < jobs; j++) {
        int img = (int)(j / blocks), c0 = (int)(j % blocks) * GAP_BLOCK;
        int len = c - c0 < GAP_BLOCK ? c - c0 : GAP_BLOCK;
        double acc[GAP_BLOCK] = {0};
        for (int64_t p = 0; p < hw; p++) {
            const float *xp = x + ((int64_t)img * hw + p) * c + c0;
            for (int ci = 0; ci < len; ci++) acc[ci] += xp[ci];
        }
        for (int ci = 0; ci < len; ci++) y[(int64_t)img * c + c0 + ci] = (float)(acc[ci] / hw);
    }
}

void mm_cpu_global_avgpool_backward(float *dx, const float *dy, int n, int64_t hw, int c)
{
    const int64_t rows = (int64_t)n * hw;
    const float inv = 1.0f / (float)hw;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float *g = dy + (r / hw) * c;
        float *dst = dx + r * c;
        for (int ci = 0; ci < c; ci++) dst[ci] = g[ci] * inv;
    }
}
