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

#endif
