/* Column sums of a row-major [m,c] matrix, deterministic: stage 1 gives each of G row slices a
 * partial sum per column (blocks of 32 columns x 8 row lanes), stage 2 adds the G partials of
 * each column in a fixed order and accumulates into the fp32 output. Used for bias gradients
 * (convolution and dense). The split is shared with bn.cu through mm_cuda_col_split(). */
#include "cuda_col.cuh"
#include "cuda_common.cuh"
#include "cuda_kernels.h"

template <typename TX>
__global__ void mm_colsum_partial_kernel(float *partial /* [G,c] */, const TX *x /* [m,c] */,
                                         int64_t m, int c, int64_t rows_per_slice)
{
    __shared__ float red[MM_COL_ROWS][MM_COL_LANES + 1];
    int j = blockIdx.x * MM_COL_LANES + threadIdx.x;
    int64_t r0 = (int64_t)blockIdx.y * rows_per_slice;
    int64_t r1 = r0 + rows_per_slice < m ? r0 + rows_per_slice : m;
    float s = 0.0f;
    if (j < c) {
#pragma unroll 4
        for (int64_t r = r0 + threadIdx.y; r < r1; r += MM_COL_ROWS) s += mm_ld(x, r * c + j);
    }
    red[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && j < c) {
        float t = 0.0f;
        for (int k = 0; k < MM_COL_ROWS; k++) t += red[k][threadIdx.x];
        partial[(int64_t)blockIdx.y * c + j] = t;
    }
}

__global__ void mm_colsum_finish_kernel(float *out /* [c] */, const float *partial /* [G,c] */,
                                        int slices, int c)
{
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= c) return;
    double t = 0.0;
    for (int g = 0; g < slices; g++) t += partial[(int64_t)g * c + j];
    out[j] += (float)t;
}

size_t mm_cuda_colsum_workspace(int64_t m, int c)
{
    return (size_t)mm_cuda_col_split(m, c).slices * (size_t)c * sizeof(float);
}

void mm_cuda_colsum_accumulate(float *out, const void *x, mm_dtype tx, int64_t m, int c, void *ws,
                               cudaStream_t st)
{
    if (c <= 0) return;
    mm_col_split sp = mm_cuda_col_split(m, c);
    float *partial = (float *)ws;
    mm_dispatch_float(tx, [&](auto t) {
        using TX = decltype(t);
        mm_colsum_partial_kernel<TX><<<sp.grid, sp.block, 0, st>>>(partial, (const TX *)x, m, c,
                                                                     sp.rows_per_slice);
        MM_CUDA_CHECK_LAUNCH();
    });
    mm_colsum_finish_kernel<<<(c + MM_THREADS - 1) / MM_THREADS, MM_THREADS, 0, st>>>(
        out, partial, sp.slices, c);
    MM_CUDA_CHECK_LAUNCH();
}
