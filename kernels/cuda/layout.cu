/* Layout changes for the convolutions that run on NCHW copies (conv_nchw.h): a batched 2-d
 * transpose, y[b][j][i] = x[b][i][j] (or += with accumulate), of fp32 data. With a batch of n and
 * [rows, cols] = [h*w, c] it turns NHWC into NCHW; [c, h*w] turns it back; a batch of k with
 * [r*s, c] turns OHWI filters into OIHW, [c, r*s] back.
 *
 * One block moves a 32 x 32 tile through shared memory, so both the reads of x and the writes of
 * y are coalesced; the tile has a padding column so the column-wise reads of the second half hit
 * 32 different banks. Tiles are numbered along one grid axis (an NCHW image of a few million
 * pixels has more column tiles than grid.y allows), the batch along grid.z. */
#include "cuda_common.cuh"
#include "cuda_kernels.h"

#define MM_TILE 32
#define MM_TILE_ROWS 8 /* threads per block: MM_TILE x MM_TILE_ROWS, 4 elements each */

__global__ void mm_transpose_kernel(float *y, const float *x, int64_t rows, int64_t cols,
                                    int64_t row_tiles, int accumulate)
{
    __shared__ float tile[MM_TILE][MM_TILE + 1];
    int64_t r0 = (int64_t)(blockIdx.x % row_tiles) * MM_TILE;
    int64_t c0 = (int64_t)(blockIdx.x / row_tiles) * MM_TILE;
    const float *xb = x + (int64_t)blockIdx.z * rows * cols;
    float *yb = y + (int64_t)blockIdx.z * rows * cols;
    for (int i = threadIdx.y; i < MM_TILE; i += MM_TILE_ROWS) {
        int64_t r = r0 + i, c = c0 + threadIdx.x;
        if (r < rows && c < cols) tile[i][threadIdx.x] = xb[r * cols + c];
    }
    __syncthreads();
    for (int i = threadIdx.y; i < MM_TILE; i += MM_TILE_ROWS) {
        int64_t c = c0 + i, r = r0 + threadIdx.x;
        if (r < rows && c < cols) {
            int64_t o = c * rows + r;
            float v = tile[threadIdx.x][i];
            yb[o] = accumulate ? yb[o] + v : v;
        }
    }
}

void mm_cuda_transpose(float *y, const float *x, int batch, int64_t rows, int64_t cols,
                       int accumulate, cudaStream_t st)
{
    if (batch <= 0 || rows <= 0 || cols <= 0) return;
    int64_t row_tiles = (rows + MM_TILE - 1) / MM_TILE, col_tiles = (cols + MM_TILE - 1) / MM_TILE;
    MM_CU_ASSERT(batch <= 65535 && row_tiles * col_tiles <= INT32_MAX);
    dim3 grid((unsigned)(row_tiles * col_tiles), 1, (unsigned)batch);
    dim3 block(MM_TILE, MM_TILE_ROWS);
    mm_transpose_kernel<<<grid, block, 0, st>>>(y, x, rows, cols, row_tiles, accumulate);
    MM_CUDA_CHECK_LAUNCH();
}
