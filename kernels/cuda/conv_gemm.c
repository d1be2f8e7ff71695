/* 1x1, stride-1, unpadded convolutions as one cuBLAS GEMM each, the way the CPU backend runs them.
 *
 * In NHWC such a convolution is a matrix product over the P = n*h*w pixels: x is row-major
 * [P,c], y row-major [P,k] and the OHWI weight row-major [k,c], so
 *   forward          y[P,k]   = x[P,c] w[k,c]^T
 *   backward data    dx[P,c]  = dy[P,k] w[k,c]
 *   backward filter  dw[k,c] += dy[P,k]^T x[P,c]
 * cuBLAS is column-major and sees each row-major [r,q] matrix as its transpose (q x r), exactly as
 * in dense_cublas.c, which gives the three calls below.
 *
 * Precision: fp32 computes in fp32 with FMA (CUBLAS_COMPUTE_32F; the handle's math mode keeps
 * TF32 out), tf32 with CUBLAS_COMPUTE_32F_FAST_TF32, bf16 multiplies bf16 operands with fp32
 * accumulation. The weight gradient goes straight into the fp32 gradient (beta 1, or 0 for its
 * first writer: d->overwrite), so bf16 needs no staging buffer and no separate accumulate pass
 * (cuDNN's bf16 path needs both).
 *
 * conv_search.c times these against cuDNN's best algorithm at plan time and keeps the faster. */
#include "cuda_backend.h"
#include "cuda_check.h"

static const float mm_one = 1.0f, mm_zero = 0.0f;

bool mm_conv_gemm_applies(const mm_conv_dims *d)
{
    return d->r == 1 && d->s == 1 && d->stride_h == 1 && d->stride_w == 1 && d->pad_h == 0 &&
           d->pad_w == 0 && (int64_t)d->n * d->h * d->w <= 0x7fffffff;
}

static cudaDataType_t mm_gemm_type(mm_dtype t) { return t == MM_BF16 ? CUDA_R_16BF : CUDA_R_32F; }

static cublasComputeType_t mm_gemm_compute(const mm_cuda_ctx *ctx)
{
    return ctx->precision == MM_PRECISION_TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
}

void mm_conv_gemm_forward(mm_cuda_ctx *ctx, void *y, const void *x, const void *w, mm_dtype t,
                          const mm_conv_dims *d)
{
    int p = d->n * d->h * d->w;
    cudaDataType_t dt = mm_gemm_type(t);
    MM_CUBLAS_CHECK(cublasGemmEx(ctx->cublas, CUBLAS_OP_T, CUBLAS_OP_N, d->k, p, d->c, &mm_one, w,
                                 dt, d->c, x, dt, d->c, &mm_zero, y, dt, d->k,
                                 mm_gemm_compute(ctx), CUBLAS_GEMM_DEFAULT));
}

void mm_conv_gemm_bwd_data(mm_cuda_ctx *ctx, void *dx, const void *dy, const void *w, mm_dtype t,
                           const mm_conv_dims *d)
{
    int p = d->n * d->h * d->w;
    cudaDataType_t dt = mm_gemm_type(t);
    /* a summing data gradient (d->accumulate) adds to what dx holds */
    MM_CUBLAS_CHECK(cublasGemmEx(ctx->cublas, CUBLAS_OP_N, CUBLAS_OP_N, d->c, p, d->k, &mm_one, w,
                                 dt, d->c, dy, dt, d->k, d->accumulate ? &mm_one : &mm_zero, dx,
                                 dt, d->c, mm_gemm_compute(ctx), CUBLAS_GEMM_DEFAULT));
}

void mm_conv_gemm_bwd_filter(mm_cuda_ctx *ctx, float *dw, const void *dy, const void *x,
                             mm_dtype t, const mm_conv_dims *d)
{
    int p = d->n * d->h * d->w;
    cudaDataType_t dt = mm_gemm_type(t);
    MM_CUBLAS_CHECK(cublasGemmEx(ctx->cublas, CUBLAS_OP_N, CUBLAS_OP_T, d->c, d->k, p, &mm_one, x,
                                 dt, d->c, dy, dt, d->k, d->overwrite ? &mm_zero : &mm_one, dw,
                                 CUDA_R_32F, d->c,
                                 mm_gemm_compute(ctx), CUBLAS_GEMM_DEFAULT));
}
