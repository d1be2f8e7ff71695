/* CPU convolution (NHWC activations, OHWI weights) as GEMM over OpenBLAS.
 *
 * Let P = n*oh*ow output pixels and RSC = r*s*c. Writing the receptive field of output pixel p as
 * the row col[p, (kr,ks,ci)] = x[n, oy*sh - ph + kr, ox*sw - pw + ks, ci] (0 outside the image),
 * the three passes are plain matrix products:
 *   forward         y[P,K]      = col[P,RSC] * w[K,RSC]^T
 *   backward data   dcol[P,RSC] = dy[P,K] * w[K,RSC],   dx = col2im(dcol)
 *   backward filter dw[K,RSC]  += dy[P,K]^T * col[P,RSC]   (= with d->overwrite)
 * In NHWC a 1x1 stride-1 unpadded convolution has col == x, so it is one GEMM with no copy.
 *
 * A stride-1 data gradient runs as what it equals, the forward convolution of dy over the filter
 * turned around (dims.h mm_conv_turned): one GEMM per chunk writing dx, where the product above
 * writes r*s times the data of dx and col2im then gathers it (VGG16 at 224x224 on 2 cores:
 * 64-channel layer 88 ms against 59 ms forward, for the same work). Turning the filter costs a
 * pass over it each time, so this is done from mm_cpu_conv_turn_min_pixels output pixels on
 * (ResNet50's 3x3 layers on 2 cores: 7x7x512, 98 pixels, 166 GFLOP/s as a data gradient against
 * 143 turned; 14x14x256, 392 pixels, 162 against 194).
 *
 * Everything else builds col (im2col) in the workspace, a chunk of whole output rows at a time so
 * the workspace stays bounded: a chunk holds at most mm_cpu_conv_ws_budget bytes of col (at least
 * one output row). The default 32 MB keeps ResNet50 at 1152x896 (conv1: 147 floats per pixel, 448
 * pixels per row) at 127 rows per chunk, large enough for GEMM to run at full speed, small enough
 * that the memory planner's arena does not grow by the whole 300 MB im2col matrix. (Measured at
 * ResNet50's shapes on 2 cores, budgets from 4 to 64 MB ran at the same speed; 1 MB was slower.)
 *
 * Within a chunk one OpenMP region does everything: each thread builds the im2col rows of the
 * pixels whose GEMM rows it will compute (mm_cpu_gemm_block's partition), so they are still in its
 * cache when it multiplies them (see cpu_common.c for why GEMMs run on the OpenMP threads). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../runtime/env.h"
#include "cpu_internal.h"
#include "cpu_kernels.h"

size_t mm_cpu_conv_ws_budget = (size_t)32 << 20;
int64_t mm_cpu_conv_turn_min_pixels = 256;

void mm_cpu_conv_read_env(void)
{
    mm_env_int("MM_CONV_WINOGRAD_MIN", 0, INT64_MAX, &mm_cpu_winograd_min_pixels);
    mm_env_int("MM_CONV_TURN_MIN", 0, INT64_MAX, &mm_cpu_conv_turn_min_pixels);
}

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
    size_t col = (size_t)conv_chunk_rows(d) * (size_t)d->ow * (size_t)d->r * (size_t)d->s *
                 (size_t)d->c * sizeof(float);
    if (!mm_cpu_winograd_applies(d)) return col;
    size_t wino = mm_cpu_winograd_workspace(d);
    return wino > col ? wino : col;
}

/* The turned filter's bytes in the data gradient's workspace (before the im2col chunk). */
static size_t turned_filter_bytes(const mm_conv_dims *d)
{
    return ((size_t)d->k * d->r * d->s * d->c * sizeof(float) + 63) / 64 * 64;
}

/* Whether the data gradient runs as the turned forward convolution. */
static int conv_turns(const mm_conv_dims *d)
{
    return mm_conv_turn_applies(d) && (int64_t)d->n * d->oh * d->ow >= mm_cpu_conv_turn_min_pixels;
}

size_t mm_cpu_conv2d_backward_data_workspace(const mm_conv_dims *d)
{
    if (!conv_turns(d)) return mm_cpu_conv2d_workspace(d);
    mm_conv_dims f = mm_conv_turned(d);
    return turned_filter_bytes(d) + mm_cpu_conv2d_workspace(&f);
}

/* wf[c][i][j][k] = w[k][r-1-i][s-1-j][c]: for each tap a transpose of [k, c], done in tiles
 * of TURN_TILE x TURN_TILE so that both sides are read and written a cache line at a time. */
#define TURN_TILE 16
static void turn_filter(float *wf, const float *w, const mm_conv_dims *d)
{
    const int k = d->k, rs = d->r * d->s, c = d->c;
    const int64_t tk = (k + TURN_TILE - 1) / TURN_TILE, tc = (c + TURN_TILE - 1) / TURN_TILE;
    const int64_t tiles = rs * tk * tc;
#pragma omp parallel for schedule(static) if ((int64_t)k * rs * c >= MM_CPU_PARALLEL_MIN)
    for (int64_t t = 0; t < tiles; t++) {
        int tap = (int)(t / (tk * tc)); /* i * s + j in wf; rs - 1 - tap in w */
        int k0 = (int)(t / tc % tk) * TURN_TILE, c0 = (int)(t % tc) * TURN_TILE;
        int k1 = k0 + TURN_TILE < k ? k0 + TURN_TILE : k;
        int c1 = c0 + TURN_TILE < c ? c0 + TURN_TILE : c;
        for (int ci = c0; ci < c1; ci++) {
            float *dst = wf + ((int64_t)ci * rs + tap) * k;
            const float *src = w + (int64_t)(rs - 1 - tap) * c + ci;
            for (int ki = k0; ki < k1; ki++) dst[ki] = src[(int64_t)ki * rs * c];
        }
    }
}

/* Fills col[p - p0, (kr,ks,ci)] for the output pixels p in [p0, p1) of the batch, where
 * p = (img*oh + oy)*ow + ox. Serial: each thread calls it on its own pixels. */
static void im2col_pixels(float *col, const float *x, const mm_conv_dims *d, int64_t p0,
                          int64_t p1)
{
    const int c = d->c, s = d->s, ow = d->ow;
    const int64_t rsc = (int64_t)d->r * s * c;
    for (int64_t p = p0; p < p1; p++) {
        int64_t t = p / ow;
        int ox = (int)(p % ow), img = (int)(t / d->oh), oy = (int)(t % d->oh);
        int iy0 = oy * d->stride_h - d->pad_h, ix0 = ox * d->stride_w - d->pad_w;
        float *dst = col + (p - p0) * rsc;
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

/* dx += col2im(dcol) for the output rows [t0, t1), by all threads of the enclosing parallel
 * region. Written as a gather over input pixels (each sums the dcol entries that read it), so
 * threads never write the same element; chunks run one after another, so input rows shared by
 * two chunks simply accumulate. */
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
#pragma omp for schedule(static)
        for (int64_t q = 0; q < npix; q++) {
            int iy = iy_lo + (int)(q / d->w), ix = (int)(q % d->w);
            float *dst = dx + (((int64_t)img * d->h + iy) * d->w + ix) * c;
            /* Taps with (iy + pad - kr) divisible by the stride: kr = (iy + pad) % stride, then
             * every stride-th; the output row oy = (iy + pad - kr) / stride falls as kr grows. */
            for (int kr = (iy + d->pad_h) % sh; kr < d->r; kr += sh) {
                int oy = (iy + d->pad_h - kr) / sh;
                if (oy >= oy_hi) continue;
                if (oy < oy_lo) break;
                for (int ks = (ix + d->pad_w) % sw; ks < s; ks += sw) {
                    int ox = (ix + d->pad_w - ks) / sw;
                    if (ox >= d->ow) continue;
                    if (ox < 0) break;
                    const float *src =
                        dcol + ((base + oy - t0) * d->ow + ox) * rsc + ((int64_t)kr * s + ks) * c;
                    for (int ci = 0; ci < c; ci++) dst[ci] += src[ci];
                }
            }
        }
    }
}

/* The pixels of [0, npix) whose im2col rows thread t builds: the GEMM rows it will compute when
 * the product is split by rows (m >= n), else an even share. */
static void pixel_block(int64_t npix, int n, int t, int nt, int64_t *lo, int64_t *hi)
{
    if (npix >= n) {
        int l, h;
        mm_cpu_gemm_block((int)npix, t, nt, &l, &h);
        *lo = l, *hi = h;
    } else {
        mm_cpu_thread_block(npix, t, nt, lo, hi);
    }
}

void mm_cpu_conv2d_forward(float *y, const float *x, const float *w, const float *b,
                           const mm_conv_dims *d, void *ws)
{
    if (mm_cpu_winograd_applies(d)) {
        mm_cpu_winograd_forward(y, x, w, b, d, ws);
        return;
    }
    const int k = d->k, rsc = d->r * d->s * d->c, direct = conv_is_direct(d);
    const int64_t total = (int64_t)d->n * d->oh;
    const int64_t chunk = direct ? total : conv_chunk_rows(d);
    float *col = ws;
    for (int64_t t0 = 0; t0 < total; t0 += chunk) {
        int64_t t1 = t0 + chunk < total ? t0 + chunk : total, npix = (t1 - t0) * d->ow;
        float *yc = y + t0 * d->ow * k;
        const float *a = direct ? x : col;
#pragma omp parallel
        {
            int t = omp_get_thread_num(), nt = omp_get_num_threads();
            int64_t lo, hi;
            pixel_block(npix, k, t, nt, &lo, &hi);
            if (!direct) im2col_pixels(col + lo * rsc, x, d, t0 * d->ow + lo, t0 * d->ow + hi);
            if (b)
                for (int64_t p = lo; p < hi; p++) memcpy(yc + p * k, b, sizeof(float) * (size_t)k);
            if (npix < k) {
#pragma omp barrier
            }
            mm_cpu_sgemm_part(t, nt, CblasNoTrans, CblasTrans, (int)npix, k, rsc, 1.0f, a, rsc, w,
                              rsc, b ? 1.0f : 0.0f, yc, k);
        }
    }
}

void mm_cpu_conv2d_backward_data(float *dx, const float *dy, const float *w,
                                 const mm_conv_dims *d, void *ws)
{
    const int k = d->k, rsc = d->r * d->s * d->c;
    if (conv_turns(d)) {
        mm_conv_dims f = mm_conv_turned(d);
        turn_filter(ws, w, d);
        mm_cpu_conv2d_forward(dx, dy, ws, NULL, &f, (char *)ws + turned_filter_bytes(d));
        return;
    }
    if (conv_is_direct(d)) {
        int64_t npix = (int64_t)d->n * d->h * d->w;
        mm_cpu_sgemm(CblasNoTrans, CblasNoTrans, (int)npix, rsc, k, 1.0f, dy, k, w, rsc, 0.0f, dx,
                     rsc);
        return;
    }
    const int64_t nx = (int64_t)d->n * d->h * d->w * d->c;
    const int64_t total = (int64_t)d->n * d->oh, chunk = conv_chunk_rows(d);
    float *dcol = ws;
#pragma omp parallel
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
#pragma omp for schedule(static)
        for (int64_t i = 0; i < nx; i++) dx[i] = 0.0f;
        for (int64_t t0 = 0; t0 < total; t0 += chunk) {
            int64_t t1 = t0 + chunk < total ? t0 + chunk : total, npix = (t1 - t0) * d->ow;
            mm_cpu_sgemm_part(t, nt, CblasNoTrans, CblasNoTrans, (int)npix, rsc, k, 1.0f,
                              dy + t0 * d->ow * k, k, w, rsc, 0.0f, dcol, rsc);
#pragma omp barrier
            col2im_add_rows(dx, dcol, d, t0, t1); /* ends with a barrier: dcol is free again */
        }
    }
}

void mm_cpu_conv2d_backward_filter(float *dw, const float *dy, const float *x,
                                   const mm_conv_dims *d, void *ws)
{
    if (mm_cpu_winograd_applies(d)) {
        mm_cpu_winograd_backward_filter(dw, dy, x, d, ws);
        return;
    }
    const int k = d->k, rsc = d->r * d->s * d->c, direct = conv_is_direct(d);
    const int64_t total = (int64_t)d->n * d->oh;
    const int64_t chunk = direct ? total : conv_chunk_rows(d);
    float *col = ws;
    for (int64_t t0 = 0; t0 < total; t0 += chunk) {
        int64_t t1 = t0 + chunk < total ? t0 + chunk : total, npix = (t1 - t0) * d->ow;
        const float *b = direct ? x : col;
#pragma omp parallel
        {
            int t = omp_get_thread_num(), nt = omp_get_num_threads();
            if (!direct) {
                int64_t lo, hi;
                mm_cpu_thread_block(npix, t, nt, &lo, &hi);
                im2col_pixels(col + lo * rsc, x, d, t0 * d->ow + lo, t0 * d->ow + hi);
#pragma omp barrier
            }
            /* dw[K,RSC] is split between the threads; each sums over all pixels of the chunk
             * (the first chunk writes dw where the node is its gradient's first writer) */
            float beta = t0 == 0 && d->overwrite ? 0.0f : 1.0f;
            mm_cpu_sgemm_part(t, nt, CblasTrans, CblasNoTrans, k, rsc, (int)npix, 1.0f,
                              dy + t0 * d->ow * k, k, b, rsc, beta, dw, rsc);
        }
    }
}

/* db[k] += sum over all output pixels of dy[p, k]. */
void mm_cpu_bias_grad_add(float *db, const float *dy, int64_t rows, int c)
{
    mm_cpu_column_sum_add(db, dy, rows, c);
}

void mm_cpu_conv2d_backward_bias(float *db, const float *dy, const mm_conv_dims *d)
{
    mm_cpu_bias_grad_add(db, dy, (int64_t)d->n * d->oh * d->ow, d->k);
}
