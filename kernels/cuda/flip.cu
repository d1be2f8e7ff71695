/* Flips of an NHWC tensor along rows (axis 1, vertical) or columns (axis 2, horizontal), for
 * test-time augmentation. A pure copy, so it moves the storage type as it is (2 or 4 bytes) and
 * works for any dtype of those sizes. One thread per element of y; y must not alias x. */
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
