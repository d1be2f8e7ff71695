/* 3x3 stride-1 convolutions as Winograd F(m x m, 3x3), m = 2 or 4 (winograd.cu has the
 * transforms and their arithmetic): the forward convolution (and through it the data gradient
 * that conv_cudnn.c runs as a forward convolution of dy over the turned filter) and the filter
 * gradient.
 *
 * Why: in fp32 (no tensor cores) cuDNN runs these as implicit GEMMs in NHWC at about 60% of an
 * H200's fp32 peak (VGG16 at 1152x896, H200 run 2: 3.9 ms for a 576x448, 128-to-128 layer), and
 * its Winograd algorithms exist only in NCHW, where the non-fused one asked for 9 GB of workspace.
 * F(2x2, 3x3) does 16 products where a direct convolution does 36, F(4x4, 3x3) 36 where it does
 * 144, as a*a matrix products of cuBLAS over all tiles (a = m + 2). The tiles run in chunks so
 * that the transformed tiles take bounded scratch, laid out as
 *
 *   scratch: [ F: a*a x k x c | U: a*a x tiles x c | M: a*a x tiles x k ]  (floats, 256-aligned)
 *
 * (the filter gradient: [ W: a*a x k x c | U | V: a*a x tiles x k ], the same sizes).
 * conv_search.c times them at a few chunk sizes against cuDNN's choice and keeps the fastest
 * where it is faster (MM_CONV_WINOGRAD). fp32 data only: fp32 GEMMs in the fp32 precision, TF32
 * ones in tf32, where only F(2x2, 3x3) runs (F(4x4, 3x3)'s larger coefficients would multiply
 * TF32's rounding). */
#ifndef MM_CONV_WINO_H
#define MM_CONV_WINO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cuda_backend.h"

/* Whether convolution d, of storage type t, can run as F(m x m, 3x3) in precision p: a 3x3
 * kernel, stride 1, padding of at most 2, fp32 data; m = 4 in the fp32 precision only. */
bool mm_conv_wino_applies(const mm_conv_dims *d, mm_dtype t, mm_precision p, int m);

/* The m x m output tiles of d, over all its samples. */
int64_t mm_conv_wino_tiles(const mm_conv_dims *d, int m);

/* The scratch a run of F(m x m, 3x3) in chunks of `tiles` tiles needs. */
size_t mm_conv_wino_scratch(const mm_conv_dims *d, int m, int tiles);

/* The most tiles a chunk may hold for the transformed tiles (U and M) to take at most `bytes`,
 * at least 1 and at most all of d's. */
int mm_conv_wino_chunk_for(const mm_conv_dims *d, int m, size_t bytes);

/* y = conv(x, w) (+= with accumulate) as F(m x m, 3x3) in chunks of `tiles` tiles, in scratch of
 * mm_conv_wino_scratch(d, m, tiles) bytes (256-byte aligned), on ctx's stream; then + bias[k]
 * (NULL: none) and with relu max(., 0), in the same pass (the op's bias pass is then not run). */
void mm_conv_wino_forward(mm_cuda_ctx *ctx, const mm_conv_dims *d, int m, int tiles,
                          const float *x, const float *w, float *y, void *scratch,
                          bool accumulate, const float *bias, bool relu);

/* dw = the filter gradient of x and dy (+= with accumulate) as F(m x m, 3x3) in chunks of
 * `tiles` tiles, in scratch of mm_conv_wino_scratch(d, m, tiles) bytes, on ctx's stream. */
void mm_conv_wino_bwd_filter(mm_cuda_ctx *ctx, const mm_conv_dims *d, int m, int tiles,
                             const float *x, const float *dy, float *dw, void *scratch,
                             bool accumulate);

#endif
