/* Softmax and the weighted softmax cross-entropy loss, forward and backward.
 *
 * These run on the [n,c] logits of the classifier (n = batch, c = classes: tiny), so they favour
 * accuracy over speed: arithmetic in double (which --use_fast_math leaves exact), one block for
 * the loss so the weighted mean is reduced in a fixed order. Semantics: cpu_kernels.h
 *   loss = sum_i w_i * (-log softmax(x_i)[label_i]) / sum_i w_i   (0 when sum w = 0)
 *   dlogits = dloss * w_i * (probs_i - onehot_i) / sum w. */
#include <stdio.h>

#include "cuda_common.cuh"
#include "cuda_kernels.h"

#define MM_XENT_THREADS 256

/* Sum of one double per thread over the block (MM_XENT_THREADS threads); every thread gets it. */
__device__ double mm_block_sum_double(double v, double *red /* [MM_XENT_THREADS] */)
{
    red[threadIdx.x] = v;
    __syncthreads();
    for (int s = MM_XENT_THREADS / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) red[threadIdx.x] += red[threadIdx.x + s];
        __syncthreads();
    }
    double t = red[0];
    __syncthreads();
    return t;
}

/* Softmax of one row in double: writes probs (if non-NULL), returns log(sum exp(x - max)) + max,
 * the log-partition function. */
template <typename TX>
__device__ double mm_softmax_row(float *probs, const TX *x, int c)
{
    double mx = -INFINITY;
    for (int j = 0; j < c; j++) mx = fmax(mx, (double)mm_ld(x, j));
    double s = 0.0;
    for (int j = 0; j < c; j++) s += exp((double)mm_ld(x, j) - mx);
    if (probs)
        for (int j = 0; j < c; j++) probs[j] = (float)(exp((double)mm_ld(x, j) - mx) / s);
    return log(s) + mx;
}

template <typename TX>
__global__ void mm_softmax_kernel(float *y, const TX *x, int n, int c)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
        mm_softmax_row(y + (int64_t)i * c, x + (int64_t)i * c, c);
}

void mm_cuda_softmax(float *y, const void *x, mm_dtype tx, int n, int c, cudaStream_t st)
{
    if (n <= 0 || c <= 0) return;
    mm_dispatch_float(tx, [&](auto t) {
        using TX = decltype(t);
        mm_softmax_kernel<TX><<<mm_blocks_for(n), MM_THREADS, 0, st>>>(y, (const TX *)x, n, c);
        MM_CUDA_CHECK_LAUNCH();
    });
}

__device__ void mm_check_label(int32_t label, int i, int c)
{
    if (label < 0 || label >= c) {
        printf("mammo: label %d of sample %d is outside [0,%d): the data layer should have "
               "rejected it\n",
               (int)label, i, c);
        __trap();
    }
}

template <typename TX>
__global__ void mm_xent_fwd_kernel(float *loss, float *probs, const TX *logits,
                                   const int32_t *labels, const float *weights, int n, int c)
{
    __shared__ double red[MM_XENT_THREADS];
    double wl = 0.0, wsum = 0.0;
    for (int i = threadIdx.x; i < n; i += MM_XENT_THREADS) {
        int32_t label = labels[i];
        mm_check_label(label, i, c);
        const TX *x = logits + (int64_t)i * c;
        double lse = mm_softmax_row(probs + (int64_t)i * c, x, c);
        double w = weights ? (double)weights[i] : 1.0;
        wl += w * (lse - (double)mm_ld(x, label));
        wsum += w;
    }
    wl = mm_block_sum_double(wl, red);
    wsum = mm_block_sum_double(wsum, red);
    if (threadIdx.x == 0) loss[0] = wsum != 0.0 ? (float)(wl / wsum) : 0.0f;
}

void mm_cuda_softmax_xent_forward(float *loss, float *probs, const void *logits, mm_dtype tl,
                                  const int32_t *labels, const float *weights, int n, int c,
                                  cudaStream_t st)
{
    mm_dispatch_float(tl, [&](auto t) {
        using TX = decltype(t);
        mm_xent_fwd_kernel<TX><<<1, MM_XENT_THREADS, 0, st>>>(loss, probs, (const TX *)logits,
                                                               labels, weights, n, c);
        MM_CUDA_CHECK_LAUNCH();
    });
}

template <typename TD>
__global__ void mm_xent_bwd_kernel(TD *dlogits, const float *probs, const int32_t *labels,
                                   const float *weights, float dloss, int n, int c)
{
    __shared__ double red[MM_XENT_THREADS];
    double wsum = 0.0;
    for (int i = threadIdx.x; i < n; i += MM_XENT_THREADS) wsum += weights ? weights[i] : 1.0;
    wsum = mm_block_sum_double(wsum, red);
    for (int i = threadIdx.x; i < n; i += MM_XENT_THREADS) {
        int32_t label = labels[i];
        mm_check_label(label, i, c);
        double w = weights ? (double)weights[i] : 1.0;
        double k = wsum != 0.0 ? (double)dloss * w / wsum : 0.0;
        for (int j = 0; j < c; j++) {
            double p = probs[(int64_t)i * c + j] - (j == label ? 1.0 : 0.0);
            mm_st(dlogits, (int64_t)i * c + j, (float)(k * p));
        }
    }
}

void mm_cuda_softmax_xent_backward(void *dlogits, mm_dtype td, const float *probs,
                                   const int32_t *labels, const float *weights, float dloss,
                                   int n, int c, cudaStream_t st)
{
    mm_dispatch_float(td, [&](auto t) {
        using TD = decltype(t);
        mm_xent_bwd_kernel<TD><<<1, MM_XENT_THREADS, 0, st>>>((TD *)dlogits, probs, labels,
                                                               weights, dloss, n, c);
        MM_CUDA_CHECK_LAUNCH();
    });
}
