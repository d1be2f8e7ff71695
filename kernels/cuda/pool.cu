/* Pooling on NHWC tensors: max, average, adaptive average and global average, forward and
 * backward. One thread per output element (channels fastest, so a warp reads consecutive
 * channels); the backward kernels gather (one thread per input element, summing the outputs whose
 * windows cover it) so they need no atomics and no zeroing, and add in the same order as the CPU
 * reference's scatter (outputs in row-major order).
 *
 * Averages multiply by the IEEE reciprocal of the count (__frcp_rn, exact even under
 * --use_fast_math), as the CPU reference does.
 *
 * Max pooling: padding counts as -inf; ties go to the first maximum in row-major window order
 * (cpu_kernels.h), and the backward pass re-finds each window's maximum the same way. */
#include <math.h>

#include "cuda_common.cuh"
#include "cuda_kernels.h"

/* First output index whose window [o*stride - pad, o*stride - pad + k) contains input i, and the
 * last, for a window of size k: o*stride - pad <= i < o*stride - pad + k. */
__device__ __forceinline__ int mm_pool_first(int i, int k, int stride, int pad)
{
    int t = i + pad - k + 1; /* o*stride >= t */
    return t <= 0 ? 0 : (t + stride - 1) / stride;
}
__device__ __forceinline__ int mm_pool_last(int i, int stride, int pad, int out)
{
    int o = (i + pad) / stride; /* i + pad >= 0 always */
    return o < out - 1 ? o : out - 1;
}

/* Row and column of the first maximum of output cell (oi, oj), channel ch, image b. */
template <typename TX>
__device__ __forceinline__ float mm_window_max(const TX *x, const mm_pool_dims &d, int b, int oi,
                                               int oj, int ch, int *bi, int *bj)
{
    int h0 = oi * d.stride_h - d.pad_h, w0 = oj * d.stride_w - d.pad_w;
    float best = -INFINITY;
    bool found = false;
    *bi = -1;
    *bj = -1;
    for (int r = 0; r < d.kh; r++) {
        int ih = h0 + r;
        if (ih < 0 || ih >= d.h) continue;
        for (int s = 0; s < d.kw; s++) {
            int iw = w0 + s;
            if (iw < 0 || iw >= d.w) continue;
            float v = mm_ld(x, (((int64_t)b * d.h + ih) * d.w + iw) * d.c + ch);
            if (!found || v > best) {
                best = v;
                *bi = ih;
                *bj = iw;
                found = true;
            }
        }
    }
    return best;
}

/* Splits a flat NHWC index of a [n, rows, cols, c] tensor. */
__device__ __forceinline__ void mm_split_nhwc(int64_t i, int rows, int cols, int c, int *b, int *r,
                                              int *q, int *ch)
{
    *ch = mm_mod(i, c);
    int64_t t = mm_div(i, c);
    *q = mm_mod(t, cols);
    t = mm_div(t, cols);
    *r = mm_mod(t, rows);
    *b = (int)mm_div(t, rows);
}

/* ---- max pooling ---- */
template <typename TY, typename TX>
__global__ void mm_maxpool_fwd_kernel(TY *y, const TX *x, mm_pool_dims d)
{
    int64_t total = (int64_t)d.n * d.oh * d.ow * d.c;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        int b, oi, oj, ch, bi, bj;
        mm_split_nhwc(i, d.oh, d.ow, d.c, &b, &oi, &oj, &ch);
        mm_st(y, i, mm_window_max(x, d, b, oi, oj, ch, &bi, &bj));
    }
}

template <typename TDX, typename TDY, typename TX>
__global__ void mm_maxpool_bwd_kernel(TDX *dx, const TDY *dy, const TX *x, mm_pool_dims d)
{
    int64_t total = (int64_t)d.n * d.h * d.w * d.c;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        int b, ih, iw, ch;
        mm_split_nhwc(i, d.h, d.w, d.c, &b, &ih, &iw, &ch);
        int oi0 = mm_pool_first(ih, d.kh, d.stride_h, d.pad_h);
        int oi1 = mm_pool_last(ih, d.stride_h, d.pad_h, d.oh);
        int oj0 = mm_pool_first(iw, d.kw, d.stride_w, d.pad_w);
        int oj1 = mm_pool_last(iw, d.stride_w, d.pad_w, d.ow);
        float acc = 0.0f;
        for (int oi = oi0; oi <= oi1; oi++) {
            for (int oj = oj0; oj <= oj1; oj++) {
                int bi, bj;
                mm_window_max(x, d, b, oi, oj, ch, &bi, &bj);
                if (bi == ih && bj == iw)
                    acc += mm_ld(dy, (((int64_t)b * d.oh + oi) * d.ow + oj) * d.c + ch);
            }
        }
        mm_st(dx, i, acc);
    }
}

void mm_cuda_maxpool_forward(void *y, mm_dtype ty, const void *x, mm_dtype tx,
                             const mm_pool_dims *d, cudaStream_t st)
{
    int64_t total = (int64_t)d->n * d->oh * d->ow * d->c;
    if (total <= 0) return;
    mm_dispatch_float(ty, [&](auto a) {
        mm_dispatch_float(tx, [&](auto b) {
            using TY = decltype(a);
            using TX = decltype(b);
            mm_maxpool_fwd_kernel<TY, TX><<<mm_blocks_for(total), MM_THREADS, 0, st>>>(
                (TY *)y, (const TX *)x, *d);
            MM_CUDA_CHECK_LAUNCH();
        });
    });
}

void mm_cuda_maxpool_backward(void *dx, mm_dtype tdx, const void *dy, mm_dtype tdy, const void *x,
                              mm_dtype tx, const mm_pool_dims *d, cudaStream_t st)
{
    int64_t total = (int64_t)d->n * d->h * d->w * d->c;
    if (total <= 0) return;
    mm_dispatch_float(tdx, [&](auto a) {
        mm_dispatch_float(tdy, [&](auto b) {
            mm_dispatch_float(tx, [&](auto e) {
                using TDX = decltype(a);
                using TDY = decltype(b);
                using TX = decltype(e);
                mm_maxpool_bwd_kernel<TDX, TDY, TX><<<mm_blocks_for(total), MM_THREADS, 0, st>>>(
                    (TDX *)dx, (const TDY *)dy, (const TX *)x, *d);
                MM_CUDA_CHECK_LAUNCH();
            });
        });
    });
}

/* ---- average pooling ---- */
/* The divisor of output cell (oi, oj): the whole window when count_include_pad, else the part of
 * it inside the image. */
__device__ __forceinline__ int mm_avg_divisor(const mm_pool_dims &d, int oi, int oj)
{
    if (d.count_include_pad) return d.kh * d.kw;
    int h0 = oi * d.stride_h - d.pad_h, w0 = oj * d.stride_w - d.pad_w;
    int h1 = min(h0 + d.kh, d.h), w1 = min(w0 + d.kw, d.w);
    h0 = max(h0, 0);
    w0 = max(w0, 0);
    return (h1 - h0) * (w1 - w0);
}

template <typename TY, typename TX>
__global__ void mm_avgpool_fwd_kernel(TY *y, const TX *x, mm_pool_dims d)
{
    int64_t total = (int64_t)d.n * d.oh * d.ow * d.c;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        int b, oi, oj, ch;
        mm_split_nhwc(i, d.oh, d.ow, d.c, &b, &oi, &oj, &ch);
        int h0 = oi * d.stride_h - d.pad_h, w0 = oj * d.stride_w - d.pad_w;
        float s = 0.0f;
        for (int r = 0; r < d.kh; r++) {
            int ih = h0 + r;
            if (ih < 0 || ih >= d.h) continue;
            for (int q = 0; q < d.kw; q++) {
                int iw = w0 + q;
                if (iw < 0 || iw >= d.w) continue;
                s += mm_ld(x, (((int64_t)b * d.h + ih) * d.w + iw) * d.c + ch);
            }
        }
        mm_st(y, i, s * __frcp_rn((float)mm_avg_divisor(d, oi, oj)));
    }
}

template <typename TDX, typename TDY>
__global__ void mm_avgpool_bwd_kernel(TDX *dx, const TDY *dy, mm_pool_dims d)
{
    int64_t total = (int64_t)d.n * d.h * d.w * d.c;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        int b, ih, iw, ch;
        mm_split_nhwc(i, d.h, d.w, d.c, &b, &ih, &iw, &ch);
        int oi0 = mm_pool_first(ih, d.kh, d.stride_h, d.pad_h);
        int oi1 = mm_pool_last(ih, d.stride_h, d.pad_h, d.oh);
        int oj0 = mm_pool_first(iw, d.kw, d.stride_w, d.pad_w);
        int oj1 = mm_pool_last(iw, d.stride_w, d.pad_w, d.ow);
        float acc = 0.0f;
        for (int oi = oi0; oi <= oi1; oi++)
            for (int oj = oj0; oj <= oj1; oj++)
                acc += mm_ld(dy, (((int64_t)b * d.oh + oi) * d.ow + oj) * d.c + ch) *
                       __frcp_rn((float)mm_avg_divisor(d, oi, oj));
        mm_st(dx, i, acc);
    }
}

void mm_cuda_avgpool_forward(void *y, mm_dtype ty, const void *x, mm_dtype tx,
                             const mm_pool_dims *d, cudaStream_t st)
{
    int64_t total = (int64_t)d->n * d->oh * d->ow * d->c;
    if (total <= 0) return;
    mm_dispatch_float(ty, [&](auto a) {
        mm_dispatch_float(tx, [&](auto b) {
            using TY = decltype(a);
            using TX = decltype(b);
            mm_avgpool_fwd_kernel<TY, TX><<<mm_blocks_for(total), MM_THREADS, 0, st>>>(
                (TY *)y, (const TX *)x, *d);
            MM_CUDA_CHECK_LAUNCH();
        });
    });
}

void mm_cuda_avgpool_backward(void *dx, mm_dtype tdx, const void *dy, mm_dtype tdy,
                              const mm_pool_dims *d, cudaStream_t st)
{
    int64_t total = (int64_t)d->n * d->h * d->w * d->c;
    if (total <= 0) return;
    mm_dispatch_float(tdx, [&](auto a) {
        mm_dispatch_float(tdy, [&](auto b) {
            using TDX = decltype(a);
            using TDY = decltype(b);
            mm_avgpool_bwd_kernel<TDX, TDY><<<mm_blocks_for(total), MM_THREADS, 0, st>>>(
                (TDX *)dx, (const TDY *)dy, *d);
            MM_CUDA_CHECK_LAUNCH();
        });
    });
}

/* ---- adaptive average pooling (PyTorch's windows) ----
 * Output row i averages input rows floor(i*h/oh) .. ceil((i+1)*h/oh) - 1. Input row r lies in
 * the windows of outputs floor(r*oh/h) .. floor(((r+1)*oh - 1)/h). */
__device__ __forceinline__ int mm_adapt_start(int i, int in, int out)
{
    return (int)(((int64_t)i * in) / out);
}
__device__ __forceinline__ int mm_adapt_end(int i, int in, int out)
{
    return (int)(((int64_t)(i + 1) * in + out - 1) / out);
}

template <typename TY, typename TX>
__global__ void mm_adaptive_fwd_kernel(TY *y, const TX *x, mm_pool_dims d)
{
    int64_t total = (int64_t)d.n * d.oh * d.ow * d.c;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        int b, oi, oj, ch;
        mm_split_nhwc(i, d.oh, d.ow, d.c, &b, &oi, &oj, &ch);
        int h0 = mm_adapt_start(oi, d.h, d.oh), h1 = mm_adapt_end(oi, d.h, d.oh);
        int w0 = mm_adapt_start(oj, d.w, d.ow), w1 = mm_adapt_end(oj, d.w, d.ow);
        float s = 0.0f;
        for (int ih = h0; ih < h1; ih++)
            for (int iw = w0; iw < w1; iw++)
                s += mm_ld(x, (((int64_t)b * d.h + ih) * d.w + iw) * d.c + ch);
        mm_st(y, i, s * __frcp_rn((float)((h1 - h0) * (w1 - w0))));
    }
}

template <typename TDX, typename TDY>
__global__ void mm_adaptive_bwd_kernel(TDX *dx, const TDY *dy, mm_pool_dims d)
{
    int64_t total = (int64_t)d.n * d.h * d.w * d.c;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        int b, ih, iw, ch;
        mm_split_nhwc(i, d.h, d.w, d.c, &b, &ih, &iw, &ch);
        int oi0 = (int)(((int64_t)ih * d.oh) / d.h);
        int oi1 = min((int)((((int64_t)ih + 1) * d.oh - 1) / d.h), d.oh - 1);
        int oj0 = (int)(((int64_t)iw * d.ow) / d.w);
        int oj1 = min((int)((((int64_t)iw + 1) * d.ow - 1) / d.w), d.ow - 1);
        float acc = 0.0f;
        for (int oi = oi0; oi <= oi1; oi++) {
            int h0 = mm_adapt_start(oi, d.h, d.oh), h1 = mm_adapt_end(oi, d.h, d.oh);
            if (ih < h0 || ih >= h1) continue;
            for (int oj = oj0; oj <= oj1; oj++) {
                int w0 = mm_adapt_start(oj, d.w, d.ow), w1 = mm_adapt_end(oj, d.w, d.ow);
                if (iw < w0 || iw >= w1) continue;
                acc += mm_ld(dy, (((int64_t)b * d.oh + oi) * d.ow + oj) * d.c + ch) *
                       __frcp_rn((float)((h1 - h0) * (w1 - w0)));
            }
        }
        mm_st(dx, i, acc);
    }
}

void mm_cuda_adaptive_avgpool_forward(void *y, mm_dtype ty, const void *x, mm_dtype tx,
                                      const mm_pool_dims *d, cudaStream_t st)
{
    int64_t total = (int64_t)d->n * d->oh * d->ow * d->c;
    if (total <= 0) return;
    mm_dispatch_float(ty, [&](auto a) {
        mm_dispatch_float(tx, [&](auto b) {
            using TY = decltype(a);
            using TX = decltype(b);
            mm_adaptive_fwd_kernel<TY, TX><<<mm_blocks_for(total), MM_THREADS, 0, st>>>(
                (TY *)y, (const TX *)x, *d);
            MM_CUDA_CHECK_LAUNCH();
        });
    });
}

void mm_cuda_adaptive_avgpool_backward(void *dx, mm_dtype tdx, const void *dy, mm_dtype tdy,
                                       const mm_pool_dims *d, cudaStream_t st)
{
    int64_t total = (int64_t)d->n * d->h * d->w * d->c;
    if (total <= 0) return;
    mm_dispatch_float(tdx, [&](auto a) {
        mm_dispatch_float(tdy, [&](auto b) {
            using TDX = decltype(a);
            using TDY = decltype(b);
            mm_adaptive_bwd_kernel<TDX, TDY><<<mm_blocks_for(total), MM_THREADS, 0, st>>>(
                (TDX *)dx, (const TDY *)dy, *d);
            MM_CUDA_CHECK_LAUNCH();
        });
    });
}

/* ---- global average pooling: [n,hw,c] -> [n,c] ----
 * Block: 32 channels x 8 row lanes; grid: (channel chunks, images). */
template <typename TY, typename TX>
__global__ void mm_gap_fwd_kernel(TY *y, const TX *x, int64_t hw, int c)
{
    __shared__ float red[8][33];
    int j = blockIdx.x * 32 + threadIdx.x;
    int b = blockIdx.y;
    float s = 0.0f;
    if (j < c) {
        const TX *xb = x + (int64_t)b * hw * c;
#pragma unroll 4
        for (int64_t p = threadIdx.y; p < hw; p += 8) s += mm_ld(xb, p * c + j);
    }
    red[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && j < c) {
        float t = 0.0f;
        for (int k = 0; k < 8; k++) t += red[k][threadIdx.x];
        mm_st(y, (int64_t)b * c + j, t * __frcp_rn((float)hw));
    }
}

template <typename TDX, typename TDY>
struct mm_gap_bwd_op {
    TDX *dx;
    const TDY *dy;
    int64_t hw;
    int c;
    __device__ void run1(int64_t i) const
    {
        int j = mm_mod(i, c);
        int64_t b = i / (hw * c); /* once per element of a small op: 64-bit is fine */
        mm_st(dx, i, mm_ld(dy, b * c + j) * __frcp_rn((float)hw));
    }
    __device__ void run4(int64_t i) const
    {
        for (int k = 0; k < 4; k++) run1(i + k);
    }
};

void mm_cuda_global_avgpool_forward(void *y, mm_dtype ty, const void *x, mm_dtype tx, int n,
                                    int64_t hw, int c, cudaStream_t st)
{
    if (n <= 0 || c <= 0) return;
    dim3 grid((unsigned)((c + 31) / 32), (unsigned)n), block(32, 8);
    mm_dispatch_float(ty, [&](auto a) {
        mm_dispatch_float(tx, [&](auto b) {
            using TY = decltype(a);
            using TX = decltype(b);
            mm_gap_fwd_kernel<TY, TX><<<grid, block, 0, st>>>((TY *)y, (const TX *)x, hw, c);
            MM_CUDA_CHECK_LAUNCH();
        });
    });
}

void mm_cuda_global_avgpool_backward(void *dx, mm_dtype tdx, const void *dy, mm_dtype tdy, int n,
                                     int64_t hw, int c, cudaStream_t st)
{
    mm_dispatch_float(tdx, [&](auto a) {
        mm_dispatch_float(tdy, [&](auto b) {
            using TDX = decltype(a);
            using TDY = decltype(b);
            mm_gap_bwd_op<TDX, TDY> op{(TDX *)dx, (const TDY *)dy, hw, c};
            mm_ew_launch(op, (int64_t)n * hw * c, false, st);
        });
    });
}
