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
} mm_col_split;

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
    return s;
}

/* Stage 2 of a column reduction: the partials [slices][c][K] (K floats per slice and column)
 * added in double. Blocks of MM_COL_LANES columns x MM_COL_ROWS slice lanes: lane y adds slices
 * y, y + MM_COL_ROWS, ... of its column, then lane 0 adds the lanes' sums in lane order, a fixed
 * order, so every run gives the same bits. (One thread per column adding every slice in turn
 * waited on a load per slice: 1024 slices for 64 channels at 1152x896.) Every thread of the
 * block must call it; true, with sum[0..K-1] set, on lane 0 of a column j < c. Launch with
 * mm_cuda_col_combine_grid(c) blocks of mm_cuda_col_split's block shape. */
template <int K>
__device__ __forceinline__ bool mm_col_combine(const float *partial, int slices, int c, int j,
                                               double *sum)
{
    __shared__ double red[MM_COL_ROWS][MM_COL_LANES * K];
    double t[K];
    for (int k = 0; k < K; k++) t[k] = 0.0;
    if (j < c) {
#pragma unroll 4
        for (int g = threadIdx.y; g < slices; g += MM_COL_ROWS)
            for (int k = 0; k < K; k++) t[k] += partial[((int64_t)g * c + j) * K + k];
    }
    for (int k = 0; k < K; k++) red[threadIdx.y][threadIdx.x * K + k] = t[k];
    __syncthreads();
    if (threadIdx.y != 0 || j >= c) return false;
    for (int k = 0; k < K; k++) {
        sum[k] = 0.0;
        for (int l = 0; l < MM_COL_ROWS; l++) sum[k] += red[l][threadIdx.x * K + k];
    }
    return true;
}

static inline unsigned mm_cuda_col_combine_grid(int c)
{
    return (unsigned)((c + MM_COL_LANES - 1) / MM_COL_LANES);
}

#endif
