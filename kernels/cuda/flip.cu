/* Flips of an NHWC tensor along rows (axis 1, vertical) or columns (axis 2, horizontal), for
 * test-time augmentation, and the turned-around filter that runs a data gradient as a forward
 * convolution (conv_cudnn.c). Pure copies, so they move the storage type as it is (2 or 4 bytes)
 * and work for any dtype of those sizes. One thread per element of y; y must not alias x. */
#include "cuda_common.cuh"
#include "cuda_kernels.h"

template <typename T>
__global__ void mm_flip_kernel(T *y, const T *x, int n, int h, int w, int c, int axis)
{
    int64_t total = (int64_t)n * h * w * c;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        int ch = mm_mod(i, c);
        int64_t t = mm_div(i, c);
        int q = mm_mod(t, w);
        t = mm_div(t, w);
        int r = mm_mod(t, h);
        int64_t b = mm_div(t, h);
        if (axis == 1) r = h - 1 - r;
        else q = w - 1 - q;
        y[i] = x[((b * h + r) * w + q) * c + ch];
    }
}

void mm_cuda_flip(void *y, const void *x, mm_dtype t, int n, int h, int w, int c, int axis,
                  cudaStream_t st)
{
    int64_t total = (int64_t)n * h * w * c;
    if (total <= 0) return;
    MM_CU_ASSERT(axis == 1 || axis == 2);
    size_t es = mm_dtype_size(t);
    unsigned blocks = mm_blocks_for(total);
    if (es == 4) {
        mm_flip_kernel<uint32_t><<<blocks, MM_THREADS, 0, st>>>((uint32_t *)y, (const uint32_t *)x,
                                                                n, h, w, c, axis);
    } else if (es == 2) {
        mm_flip_kernel<uint16_t><<<blocks, MM_THREADS, 0, st>>>((uint16_t *)y, (const uint16_t *)x,
                                                                n, h, w, c, axis);
    } else {
        mm_flip_kernel<uint8_t><<<blocks, MM_THREADS, 0, st>>>((uint8_t *)y, (const uint8_t *)x, n,
                                                               h, w, c, axis);
    }
    MM_CUDA_CHECK_LAUNCH();
}

/* wf[ci][r][s][ko] = w[ko][R-1-r][S-1-s][ci]: the OHWI filter [k,R,S,c] as the OHWI filter
 * [c,R,S,k] of the forward convolution that gives its data gradient. */
template <typename T>
__global__ void mm_filter_turn_kernel(T *wf, const T *w, int k, int rr, int ss, int c)
{
    int64_t total = (int64_t)k * rr * ss * c;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        int ko = (int)(i % k);
        int64_t t = i / k;
        int s = (int)(t % ss);
        t /= ss;
        int r = (int)(t % rr);
        int ci = (int)(t / rr);
        wf[i] = w[(((int64_t)ko * rr + (rr - 1 - r)) * ss + (ss - 1 - s)) * c + ci];
    }
}

void mm_cuda_filter_turn(void *wf, const void *w, mm_dtype t, int k, int r, int s, int c,
                         cudaStream_t st)
{
    int64_t total = (int64_t)k * r * s * c;
    if (total <= 0) return;
    unsigned blocks = mm_blocks_for(total);
    if (mm_dtype_size(t) == 4)
        mm_filter_turn_kernel<uint32_t><<<blocks, MM_THREADS, 0, st>>>(
            (uint32_t *)wf, (const uint32_t *)w, k, r, s, c);
    else
        mm_filter_turn_kernel<uint16_t><<<blocks, MM_THREADS, 0, st>>>(
            (uint16_t *)wf, (const uint16_t *)w, k, r, s, c);
    MM_CUDA_CHECK_LAUNCH();
}
