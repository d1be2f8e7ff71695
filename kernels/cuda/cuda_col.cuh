/* How per-channel reductions over the m rows of an [m,c] (NHWC) tensor are split: blocks of
 * MM_COL_LANES channels x MM_COL_ROWS row lanes, the rows cut into `slices` equal runs so that
 * the grid has about 2048 blocks (enough to fill a GPU) and each block at least ~64 rows.
 * The workspace size and the launches must agree, so both come from mm_cuda_col_split(). */
#ifndef MM_CUDA_COL_CUH
#define MM_CUDA_COL_CUH

#include <cuda_runtime.h>
#include <stdint.h>

#define MM_COL_LANES 32
#define MM_COL_ROWS 8

typedef struct mm_col_split {
    int slices;             /* G: row slices, one partial per slice and channel */
    int64_t rows_per_slice;
    dim3 grid, block;
    dim3 combine_grid, combine_block; /* stage 2's launch (mm_col_combine) */
} mm_col_split;

#define MM_COMBINE_LANES 8
#define MM_COMBINE_ROWS 32

static inline mm_col_split mm_cuda_col_split(int64_t m, int c)
{
    mm_col_split s;
    int chunks = (c + MM_COL_LANES - 1) / MM_COL_LANES;
    if (chunks < 1) chunks = 1;
    int64_t by_rows = (m + 63) / 64;
    int64_t by_grid = (2048 + chunks - 1) / chunks;
    int64_t g = by_rows < by_grid ? by_rows : by_grid;
    if (g < 1) g = 1;
    s.rows_per_slice = (m + g - 1) / g;
    if (s.rows_per_slice < 1) s.rows_per_slice = 1;
    /* Recount so that no slice is empty. */
    s.slices = (int)((m + s.rows_per_slice - 1) / s.rows_per_slice);
    if (s.slices < 1) s.slices = 1;
    s.grid = dim3((unsigned)chunks, (unsigned)s.slices, 1);
    s.block = dim3(MM_COL_LANES, MM_COL_ROWS, 1);
    s.combine_grid = dim3((unsigned)((c + MM_COMBINE_LANES - 1) / MM_COMBINE_LANES), 1, 1);
    s.combine_block = dim3(MM_COMBINE_LANES, MM_COMBINE_ROWS, 1);
    return s;
}

/* Stage 2 of a column reduction: the partials [slices][c][K] (K floats per slice and column)
 * added in double. Blocks of MM_COMBINE_LANES columns x MM_COMBINE_ROWS slice lanes: lane y adds
 * slices y, y + MM_COMBINE_ROWS, ... of its column, then lane 0 adds the lanes' sums in lane
 * order, a fixed order, so every run gives the same bits. Few columns a block and many slice
 * lanes, as stage 2 is a chain of dependent loads per thread on few blocks: one thread per
 * column adding every slice in turn waited on a load per slice (1024 slices for 64 channels at
 * 1152x896), and 32 columns x 8 lanes still left 128 loads a thread on 2 blocks. Every thread
 * of the block must call it; true, with sum[0..K-1] set, on lane 0 of a column j < c
 * (mm_col_combine_column). Launch with mm_cuda_col_split's combine_grid and combine_block. */
__device__ __forceinline__ int mm_col_combine_column()
{
    return (int)(blockIdx.x * MM_COMBINE_LANES + threadIdx.x);
}

template <int K>
__device__ __forceinline__ bool mm_col_combine(const float *partial, int slices, int c, int j,
                                               double *sum)
{
    __shared__ double red[MM_COMBINE_ROWS][MM_COMBINE_LANES * K];
    double t[K];
    for (int k = 0; k < K; k++) t[k] = 0.0;
    if (j < c) {
#pragma unroll 4
        for (int g = threadIdx.y; g < slices; g += MM_COMBINE_ROWS)
            for (int k = 0; k < K; k++) t[k] += partial[((int64_t)g * c + j) * K + k];
    }
    for (int k = 0; k < K; k++) red[threadIdx.y][threadIdx.x * K + k] = t[k];
    __syncthreads();
    if (threadIdx.y != 0 || j >= c) return false;
    for (int k = 0; k < K; k++) {
        sum[k] = 0.0;
        for (int l = 0; l < MM_COMBINE_ROWS; l++) sum[k] += red[l][threadIdx.x * K + k];
    }
    return true;
}

#endif
