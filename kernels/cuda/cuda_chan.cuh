/* Element-wise ops over an NHWC tensor [m,c] with per-channel coefficients (batch norm's apply
 * and its data gradient), each thread keeping one group of 8 channels for the whole launch (.cu
 * only). The general pattern (cuda_common.cuh) finds each element's channel with a division and
 * loads its coefficients again for every 4 elements: 3 to 5 loads of 16 bytes beside each 16
 * of data, which held batch norm's apply to 1.8 TB/s on an H200 whose copy runs 4.0. Here the
 * grid's thread count is a multiple of c/8, so a thread's grid-stride loop visits octets o,
 * o + stride, ... that are all channels j..j+7 of some row: it loads their coefficients once
 * into registers, and each step of the loop is its 8 elements' loads, arithmetic and stores.
 *
 * An op has `coef` (its 8 channels' coefficients) and coef_at(j, coef&); `held8` (what the loads
 * of 8 elements bring) and load8(i, held8&); store8(i, held8&, const coef&) computes and writes
 * elements i..i+7 (i divisible by 8); `unroll`, how many octets a thread loads before it stores
 * the first (about 64 bytes of loads in flight a thread; the octets a thread visits are
 * distinct elements, so ops in place may load ahead). Needs c divisible by 8 and every pointer
 * the op loads 8-wide 16-byte aligned; mm_chan8_launch says false (launching nothing) where it
 * cannot run, and the caller takes its general path. */
#ifndef MM_CUDA_CHAN_CUH
#define MM_CUDA_CHAN_CUH

#include "cuda_common.cuh"

template <typename Op>
__global__ void mm_chan8_kernel(Op op, int64_t n8, int q8)
{
    int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    int64_t stride = (int64_t)gridDim.x * blockDim.x; /* a multiple of q8 */
    if (t >= n8) return;
    typename Op::coef k;
    op.coef_at((int)(t % q8) * 8, k);
    for (int64_t o = t; o < n8; o += Op::unroll * stride) {
        typename Op::held8 h[Op::unroll];
#pragma unroll
        for (int u = 0; u < Op::unroll; u++)
            if (o + u * stride < n8) op.load8(8 * (o + u * stride), h[u]);
#pragma unroll
        for (int u = 0; u < Op::unroll; u++)
            if (o + u * stride < n8) op.store8(8 * (o + u * stride), h[u], k);
    }
}

static inline int64_t mm_gcd64(int64_t a, int64_t b)
{
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Blocks of MM_THREADS for n8 octets in rows of q8, `unroll` octets a thread: mm_blocks_for's
 * count (at most 4096), rounded up to a multiple of q8 / gcd(q8, MM_THREADS) so that every
 * thread keeps its channels; 0 where that multiple is beyond any grid we launch. */
static inline unsigned mm_chan8_blocks(int64_t n8, int q8, int unroll)
{
    int64_t step = q8 / mm_gcd64(q8, MM_THREADS);
    if (step > 4096) return 0;
    int64_t b = mm_blocks_for((n8 + unroll - 1) / unroll);
    return (unsigned)((b + step - 1) / step * step);
}

/* Runs op over the m x c elements, 8 channels a thread; false (nothing launched) where c is not
 * divisible by 8 or the caller's pointers are not all 16-byte aligned (`aligned`). */
template <typename Op>
static bool mm_chan8_launch(const Op &op, int64_t m, int c, bool aligned, cudaStream_t st)
{
    if (m <= 0 || c <= 0 || c % 8 != 0 || !aligned) return false;
    int q8 = c / 8;
    int64_t n8 = m * q8;
    unsigned blocks = mm_chan8_blocks(n8, q8, Op::unroll);
    if (blocks == 0) return false;
    mm_chan8_kernel<Op><<<blocks, MM_THREADS, 0, st>>>(op, n8, q8);
    MM_CUDA_CHECK_LAUNCH();
    return true;
}

#endif
