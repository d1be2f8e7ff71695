/* Column sums of a row-major [m,c] matrix, deterministic: stage 1 gives each of G row slices a
 * partial sum per column (blocks of 32 columns x 8 row lanes), stage 2 adds the G partials of
 * each column in a fixed order (mm_col_combine) and accumulates into the fp32 output. Used for
 * bias gradients (convolution and dense), also taken by a ReLU backward while it writes its dx
 * (graph.h mm_graph_fuse_bias_grad): the same partials of the same values in the same order, so
 * bitwise the separate kernels. The split is shared with bn.cu through mm_cuda_col_split(). */
#include "cuda_col.cuh"
#include "cuda_common.cuh"
#include "cuda_gate.cuh"
#include "cuda_kernels.h"

/* Adds the MM_COL_ROWS row lanes' sums s of column j within the block, in lane order, and
 * stores the block's partial for its row slice. */
__device__ __forceinline__ void mm_col_store_partial(float *partial, float s, int j, int c)
{
    __shared__ float red[MM_COL_ROWS][MM_COL_LANES + 1];
    red[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && j < c) {
        float t = 0.0f;
        for (int k = 0; k < MM_COL_ROWS; k++) t += red[k][threadIdx.x];
        partial[(int64_t)blockIdx.y * c + j] = t;
    }
}

/* Stage 1 for the column sums of the values term(i) over the elements i = r*c + j of the [m,c]
 * matrix: each thread sums its column's rows of the block's slice, in row order. */
template <typename Term>
__global__ void mm_col_partial_kernel(float *partial /* [G,c] */, Term term, int64_t m, int c,
                                      int64_t rows_per_slice)
{
    int j = blockIdx.x * MM_COL_LANES + threadIdx.x;
    int64_t r0 = (int64_t)blockIdx.y * rows_per_slice;
    int64_t r1 = r0 + rows_per_slice < m ? r0 + rows_per_slice : m;
    float s = 0.0f;
    if (j < c) {
#pragma unroll 4
        for (int64_t r = r0 + threadIdx.y; r < r1; r += MM_COL_ROWS) s += term(r * c + j);
    }
    mm_col_store_partial(partial, s, j, c);
}

/* The terms: the elements of x; or dx = dy where the gate is open, else 0, stored while its
 * value as stored is summed (so the sums are those of the separate kernels over dx). */
template <typename TX>
struct mm_col_load {
    const TX *x;
    __device__ float operator()(int64_t i) const { return mm_ld(x, i); }
};

template <typename TDX, typename TDY, typename Gate>
struct mm_col_relu_bwd {
    TDX *dx;
    const TDY *dy;
    Gate gate;
    __device__ float operator()(int64_t i) const
    {
        float g = gate.on(i) ? mm_ld(dy, i) : 0.0f;
        mm_st(dx, i, g);
        return mm_round_as(dx, g);
    }
};

__global__ void mm_colsum_finish_kernel(float *out /* [c] */, const float *partial /* [G,c] */,
                                        int slices, int c)
{
    int j = mm_col_combine_column();
    double t;
    if (mm_col_combine<1>(partial, slices, c, j, &t)) out[j] += (float)t;
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
        mm_col_partial_kernel<mm_col_load<TX>><<<sp.grid, sp.block, 0, st>>>(
            partial, mm_col_load<TX>{(const TX *)x}, m, c, sp.rows_per_slice);
        MM_CUDA_CHECK_LAUNCH();
    });
    mm_colsum_finish_kernel<<<sp.combine_grid, sp.combine_block, 0, st>>>(out, partial,
                                                                          sp.slices, c);
    MM_CUDA_CHECK_LAUNCH();
}

void mm_cuda_relu_backward_colsum(void *dx, mm_dtype tdx, const void *dy, mm_dtype tdy,
                                  const void *y, mm_dtype ty, const uint8_t *bits, float *db,
                                  int64_t m, int c, void *ws, cudaStream_t st)
{
    if (m <= 0 || c <= 0) return;
    mm_col_split sp = mm_cuda_col_split(m, c);
    float *partial = (float *)ws;
    mm_dispatch_float2(tdx, tdy, [&](auto a, auto b) {
        using TDX = decltype(a);
        using TDY = decltype(b);
        mm_dispatch_gate(y, ty, bits, [&](auto gate) {
            using Term = mm_col_relu_bwd<TDX, TDY, decltype(gate)>;
            mm_col_partial_kernel<Term><<<sp.grid, sp.block, 0, st>>>(
                partial, Term{(TDX *)dx, (const TDY *)dy, gate}, m, c, sp.rows_per_slice);
            MM_CUDA_CHECK_LAUNCH();
        });
    });
    mm_colsum_finish_kernel<<<sp.combine_grid, sp.combine_block, 0, st>>>(db, partial,
                                                                          sp.slices, c);
    MM_CUDA_CHECK_LAUNCH();
}
