/* CPU convolution (NHWC activations, OHWI weights) as GEMM over OpenBLAS.
 *
 * Let P = n*oh*ow output pixels and RSC = r*s*c. Writing the receptive field of output pixel p as
 * the row col[p, (kr,ks,ci)] = x[n, oy*sh - ph + kr, ox*sw - pw + ks, ci] (0 outside the image),
 * the three passes are plain matrix products:
 *   forward         y[P,K]     = col[P,RSC] * w[K,RSC]^T
 *   backward data   dcol[P,RSC] = dy[P,K] * w[K,RSC],   dx = col2im(dcol)
 *   backward filter dw[K,RSC] += dy[P,K]^T * col[P,RSC]
 * In NHWC a 1x1 stride-1 unpadded convolution has col == x, so it is one GEMM with no copy.
 *
 * Everything else builds col (im2col) in the workspace, a chunk of whole output rows at a time so
 * the workspace stays bounded: a chunk holds at most mm_cpu_conv_ws_budget bytes of col (at least
 * one output row). The default 64 MB keeps ResNet50 at 1152x896 (conv1: 147 floats per pixel, 448 pixels per row)
 * at 254 rows per chunk, large enough for GEMM to run at full speed, small enough that the memory
 * planner's arena does not grow by the full 300 MB im2col matrix. */
#include <string.h>

#include <cblas.h>

#include "cpu_internal.h"
#include "cpu_kernels.h"

size_t mm_cpu_conv_ws_budget = (size_t)64 << 20;

/* 1x1, stride 1, no padding: col is x itself. */
static int conv_is_direct(const mm_conv_dims *d)
{
    return d->r == 1 && d->s == 1 && d->stride_h == 1 && d->stride_w == 1 && d->pad_h == 0 &&
           d->pad_w == 0;
}

/* Output rows (of ow pixels each, counted over the whole batch) per im2col chunk. */
static int64_t conv_chunk_rows(const mm_conv_dims *d)
{
    size_t row_bytes = (size_t)d->ow * (size_t)d->r * (size_t)d->s * (size_t)d->c * sizeof(float);
    int64_t rows = (int64_t)(mm_cpu_conv_ws_budget / (row_bytes ? row_bytes : 1));
    int64_t total = (int64_t)d->n * d->oh;
    if (rows < 1) rows = 1;
    return rows < total ? rows : total;
}

size_t mm_cpu_conv2d_workspace(const mm_conv_dims *d)
{
    if (conv_is_direct(d)) return 0;
    return (size_t)conv_chunk_rows(d) * (size_t)d->ow * (size_t)d->r * (size_t)d->s *
           (size_t)d->c * sizeof(float);
}

/* Fills col[(t - t0)*ow + ox, (kr,ks,ci)] for the output rows t in [t0, t1) (t = img*oh + oy). */
static void im2col_rows(float *col, const float *x, const mm_conv_dims *d, int64_t t0, int64_t t1)
{
    const int c = d->c, s = d->s, ow = d->ow;
    const int64_t rsc = (int64_t)d->r * s * c, npix = (t1 - t0) * ow;
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < npix; p++) {
        int64_t t = t0 + p / ow;
        int ox = (int)(p % ow), img = (int)(t / d->oh), oy = (int)(t % d->oh);
        int iy0 = oy * d->stride_h - d->pad_h, ix0 = ox * d->stride_w - d->pad_w;
        float *dst = col + p * rsc;
        for (int kr = 0; kr < d->r; kr++) {
            float *drow = dst + (int64_t)kr * s * c;
            int iy = iy0 + kr;
            if (iy < 0 || iy >= d->h) {
                memset(drow, 0, sizeof(float) * (size_t)s * c);
                continue;
            }
            const float *xrow = x + ((int64_t)img * d->h + iy) * d->w * c;
            if (ix0 >= 0 && ix0 + s <= d->w) { /* the s pixels are contiguous in NHWC */
                memcpy(drow, xrow + (int64_t)ix0 * c, sizeof(float) * (size_t)s * c);
                continue;
            }
            for (int ks = 0; ks < s; ks++) {
                int ix = ix0 + ks;
                if (ix < 0 || ix >= d->w)
                    memset(drow + ks * c, 0, sizeof(float) * (size_t)c);
                else
                    memcpy(drow + ks * c, xrow + (int64_t)ix * c, sizeof(float) * (size_t)c);
            }
        }
    }
}

/* dx += col2im(dcol) for the output rows [t0, t1). Written as a gather over input pixels (each
 * input pixel sums the dcol entries that read it), so threads never write the same element;
 * chunks run one after another, so rows shared by two chunks simply accumulate. */
static void col2im_add_rows(float *dx, const float *dcol, const mm_conv_dims *d, int64_t t0,
                            int64_t t1)
{
    const int c = d->c, s = d->s, sh = d->stride_h, sw = d->stride_w;
    const int64_t rsc = (int64_t)d->r * s * c;
    for (int img = (int)(t0 / d->oh); img <= (int)((t1 - 1) / d->oh); img++) {
        int64_t base = (int64_t)img * d->oh;
        int oy_lo = (int)(t0 > base ? t0 - base : 0);
        int oy_hi = (int)(t1 - base < d->oh ? t1 - base : d->oh);
        int iy_lo = oy_lo * sh - d->pad_h, iy_hi = (oy_hi - 1) * sh - d->pad_h + d->r;
        if (iy_lo < 0) iy_lo = 0;
        if (iy_hi > d->h) iy_hi = d->h;
        if (iy_hi <= iy_lo) continue;
        int64_t npix = (int64_t)(iy_hi - iy_lo) * d->w;
#pragma omp parallel for schedule(static)
        for (int64_t q = 0; q < npix; q++) {
            int iy = iy_lo + (int)(q / d->w), ix = (int)(q % d->w);
            float *dst = dx + (((int64_t)img * d->h + iy) * d->w + ix) * c;
            for (int kr = 0; kr < d->r; kr++) {
                int a = iy + d->pad_h - kr;
                if (a < 0 || a % sh) continue;
                int oy = a / sh;
                if (oy < oy_lo || oy >= oy_hi) continue;
                for (int ks = 0; ks < s; ks++) {
                    int b = ix + d->pad_w - ks;
                    if (b < 0 || b % sw) continue;
                    int ox = b / sw;
                    if (ox >= d->ow) continue;
                    const float *src =
                        dcol + ((base + oy - t0) * d->ow + ox) * rsc + ((int64_t)kr * s + ks) * c;
                    for (int ci = 0; ci < c; ci++) dst[ci] += src[ci];
                }
            }
        }
    }
}

/* y[rows, k] = b broadcast over the rows. */
static void fill_bias(float *y, const float *b, int64_t rows, int k)
{
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < rows; p++) memcpy(y + p * k, b, sizeof(float) * (size_t)k);
}

void mm_cpu_conv2d_forward(float *y, const float *x, const float *w, const float *b,
                           const mm_conv_dims *d, void *ws)
{
    const int k = d->k;
    const int rsc = d->r * d->s * d->c;
    if (conv_is_direct(d)) {
        int64_t npix = (int64_t)d->n * d->h * d->w;
        if (b) fill_bias(y, b, npix, k);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)npix, k, rsc, 1.0f, x, rsc, w,
                    rsc, b ? 1.0f : 0.0f, y, k);
        return;
    }
    float *col = ws;
    const int64_t total = (int64_t)d->n * d->oh, chunk = conv_chunk_rows(d);
    for (int64_t t0 = 0; t0 < total; t0 += chunk) {
        int64_t t1 = t0 + chunk < total ? t0 + chunk : total, npix = (t1 - t0) * d->ow;
        float *yc = y + t0 * d->ow * k;
        im2col_rows(col, x, d, t0, t1);
        if (b) fill_bias(yc, b, npix, k);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)npix, k, rsc, 1.0f, col, rsc, w,
                    rsc, b ? 1.0f : 0.0f, yc, k);
    }
}

void mm_cpu_conv2d_backward_data(float *dx, const float *dy, const float *w,
                                 const mm_conv_dims *d, void *ws)
{
    const int k = d->k;
    const int rsc = d->r * d->s * d->c;
    if (conv_is_direct(d)) {
        int64_t npix = (int64_t)d->n * d->h * d->w;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)npix, rsc, k, 1.0f, dy, k, w,
                    rsc, 0.0f, dx, rsc);
        return;
    }
    int64_t nx = (int64_t)d->n * d->h * d->w * d->c;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < nx; i++) dx[i] = 0.0f;
    float *dcol = ws;
    const int64_t total = (int64_t)d->n * d->oh, chunk = conv_chunk_rows(d);
    for (int64_t t0 = 0; t0 < total; t0 += chunk) {
        int64_t t1 = t0 + chunk < total ? t0 + chunk : total, npix = (t1 - t0) * d->ow;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)npix, rsc, k, 1.0f,
                    dy + t0 * d->ow * k, k, w, rsc, 0.0f, dcol, rsc);
        col2im_add_rows(dx, dcol, d, t0, t1);
    }
}

void mm_cpu_conv2d_backward_filter(float *dw, const float *dy, const float *x,
                                   const mm_conv_dims *d, void *ws)
{
    const int k = d->k;
    const int rsc = d->r * d->s * d->c;
    if (conv_is_direct(d)) {
        int64_t npix = (int64_t)d->n * d->h * d->w;
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, rsc, (int)npix, 1.0f, dy, k, x,
                    rsc, 1.0f, dw, rsc);
        return;
    }
    float *col = ws;
    const int64_t total = (int64_t)d->n * d->oh, chunk = conv_chunk_rows(d);
    for (int64_t t0 = 0; t0 < total; t0 += chunk) {
        int64_t t1 = t0 + chunk < total ? t0 + chunk : total, npix = (t1 - t0) * d->ow;
        im2col_rows(col, x, d, t0, t1);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, rsc, (int)npix, 1.0f,
                    dy + t0 * d->ow * k, k, col, rsc, 1.0f, dw, rsc);
    }
}

/* db[k] += sum over all output pixels of dy[p, k]. */
void mm_cpu_conv2d_backward_bias(float *db, const float *dy, const mm_conv_dims *d)
{
    mm_cpu_column_sum_add(db, dy, (int64_t)d->n * d->oh * d->ow, d->k);
}
