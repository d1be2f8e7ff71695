/* 3x3 stride-1 convolutions as Winograd F(m x m, 3x3) (conv_wino.h). */
#include "conv_wino.h"

#include "cuda_check.h"
#include "cuda_kernels.h"

/* The values of a transformed tile, a*a. */
static int mm_wino_e(int m) { return (m + 2) * (m + 2); }

bool mm_conv_wino_applies(const mm_conv_dims *d, mm_dtype t, mm_precision p, int m)
{
    return t == MM_F32 && (m == 2 || (m == 4 && p == MM_PRECISION_FP32)) && d->r == 3 &&
           d->s == 3 && d->stride_h == 1 && d->stride_w == 1 && d->pad_h >= 0 && d->pad_h <= 2 &&
           d->pad_w >= 0 && d->pad_w <= 2 && d->oh > 0 && d->ow > 0;
}

int64_t mm_conv_wino_tiles(const mm_conv_dims *d, int m)
{
    return (int64_t)d->n * ((d->oh + m - 1) / m) * ((d->ow + m - 1) / m);
}

/* The GEMMs' arithmetic: fp32 with FMA (the handle's math mode keeps TF32 out), or TF32 in the
 * tf32 precision. */
static cublasComputeType_t mm_wino_compute(const mm_cuda_ctx *ctx)
{
    return ctx->precision == MM_PRECISION_TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
}

/* Where U and M start in the scratch, and its end, in bytes (conv_wino.h). */
typedef struct mm_wino_parts {
    size_t u_at, m_at, end;
} mm_wino_parts;

static mm_wino_parts mm_wino_layout(const mm_conv_dims *d, int m, int tiles)
{
    size_t e = (size_t)mm_wino_e(m), f = e * d->k * d->c * sizeof(float);
    size_t u = e * tiles * d->c * sizeof(float), mt = e * tiles * d->k * sizeof(float);
    mm_wino_parts p;
    p.u_at = mm_cuda_round256(f);
    p.m_at = p.u_at + mm_cuda_round256(u);
    p.end = p.m_at + mm_cuda_round256(mt);
    return p;
}

size_t mm_conv_wino_scratch(const mm_conv_dims *d, int m, int tiles)
{
    return mm_wino_layout(d, m, tiles).end;
}

int mm_conv_wino_chunk_for(const mm_conv_dims *d, int m, size_t bytes)
{
    size_t per_tile = (size_t)mm_wino_e(m) * (d->c + d->k) * sizeof(float);
    int64_t all = mm_conv_wino_tiles(d, m), n = (int64_t)(bytes / per_tile);
    /* cuBLAS takes int sizes: a chunk's U[e] and M[e] must stay under 2^31 elements */
    int64_t most = INT32_MAX / (d->c > d->k ? d->c : d->k);
    if (n > most) n = most;
    if (n > all) n = all;
    return n < 1 ? 1 : (int)n;
}

void mm_conv_wino_forward(mm_cuda_ctx *ctx, const mm_conv_dims *d, int m, int tiles,
                          const float *x, const float *w, float *y, void *scratch,
                          bool accumulate, const float *bias, bool relu)
{
    static const float one = 1.0f, zero = 0.0f;
    MM_ASSERT(tiles > 0 && (m == 2 || m == 4));
    mm_wino_parts p = mm_wino_layout(d, m, tiles);
    float *f = scratch, *u = (float *)((char *)scratch + p.u_at),
          *mt = (float *)((char *)scratch + p.m_at);
    cublasComputeType_t compute = mm_wino_compute(ctx);
    mm_cuda_wino_filter(f, w, m, d->k, d->c, ctx->stream);
    int64_t all = mm_conv_wino_tiles(d, m);
    for (int64_t t0 = 0; t0 < all; t0 += tiles) {
        int tc = all - t0 < tiles ? (int)(all - t0) : tiles;
        mm_cuda_wino_input(u, x, m, d, t0, tc, ctx->stream);
        /* M[e] (tc x k, row-major) = U[e] (tc x c) F[e]^T (F[e]: k x c) for every e: as in
         * conv_gemm.c's forward, cuBLAS sees each row-major matrix as its transpose */
        MM_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
            ctx->cublas, CUBLAS_OP_T, CUBLAS_OP_N, d->k, tc, d->c, &one, f, CUDA_R_32F, d->c,
            (long long)d->k * d->c, u, CUDA_R_32F, d->c, (long long)tc * d->c, &zero, mt,
            CUDA_R_32F, d->k, (long long)tc * d->k, mm_wino_e(m), compute,
            CUBLAS_GEMM_DEFAULT));
        mm_cuda_wino_output(y, mt, m, d, t0, tc, accumulate, bias, relu, ctx->stream);
    }
}

void mm_conv_wino_bwd_filter(mm_cuda_ctx *ctx, const mm_conv_dims *d, int m, int tiles,
                             const float *x, const float *dy, float *dw, void *scratch,
                             bool accumulate)
{
    static const float one = 1.0f, zero = 0.0f;
    MM_ASSERT(tiles > 0 && (m == 2 || m == 4));
    mm_wino_parts p = mm_wino_layout(d, m, tiles);
    float *wt = scratch, *u = (float *)((char *)scratch + p.u_at),
          *v = (float *)((char *)scratch + p.m_at);
    cublasComputeType_t compute = mm_wino_compute(ctx);
    int64_t all = mm_conv_wino_tiles(d, m);
    for (int64_t t0 = 0; t0 < all; t0 += tiles) {
        int tc = all - t0 < tiles ? (int)(all - t0) : tiles;
        mm_cuda_wino_input(u, x, m, d, t0, tc, ctx->stream);
        mm_cuda_wino_dy(v, dy, m, d, t0, tc, ctx->stream);
        /* W[e] (k x c, row-major) (+)= V[e]^T U[e] (V[e]: tc x k, U[e]: tc x c) for every e,
         * summed over the chunks: cuBLAS, column-major, computes W[e]^T = U[e]^T V[e] */
        MM_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
            ctx->cublas, CUBLAS_OP_N, CUBLAS_OP_T, d->c, d->k, tc, &one, u, CUDA_R_32F, d->c,
            (long long)tc * d->c, v, CUDA_R_32F, d->k, (long long)tc * d->k, t0 ? &one : &zero,
            wt, CUDA_R_32F, d->c, (long long)d->k * d->c, mm_wino_e(m), compute,
            CUBLAS_GEMM_DEFAULT));
    }
    mm_cuda_wino_dw(dw, wt, m, d->k, d->c, accumulate, ctx->stream);
}
