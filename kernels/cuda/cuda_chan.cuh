/* Element-wise ops over an NHWC tensor [m,c] with per-channel coefficients (batch norm's apply and
 * its data gradient, the bias add), each thread keeping one group of 4 channels for the whole
 * launch (.cu only). The general pattern (cuda_common.cuh) finds each element's channel with a
 * division and loads its coefficients again for every 4 elements: 3 to 5 loads of 16 bytes beside
 * each 16 of data, which held batch norm's apply to 1.8 TB/s on an H200 whose copy runs 4.0. Here
 * the grid's thread count is a multiple of c/4, so the quads a thread visits (o, o + stride, ...)
 * are all channels j..j+3 of some row: it loads their coefficients once into registers, and each
 * step is the loads, arithmetic and stores of its quads. Consecutive threads take consecutive
 * quads, so each load of a warp reads 512 contiguous bytes in fp32 (the pattern of the add, 4.1
 * TB/s; 8 neighbouring elements a thread, as mm_ew2_kernel took them before 2026-11-27, read half
 * of each sector per load: its ReLU ran at 3.05).
 *
 * An op has `coef` (its 4 channels' coefficients) and coef_at(j, coef&); `held4` (what the
 * loads of 4 elements bring) and chan_load(i, held4&); chan_store(i, held4&, const coef&)
 * computes and writes elements i..i+3 (i divisible by 4) and returns the nibble of their ReLU
 * mask bits, which mask() (NULL: none) receives a byte of for each pair of quads (bit k of byte
 * b is element 8b + k > 0, runtime/relu_mask.c), put together through shared memory: quads 2p
 * and 2p + 1 are always neighbouring threads'. `unroll`: quads a thread loads before it stores
 * the first (64 bytes of loads in flight a thread in fp32; a thread's quads are distinct
 * elements, so ops in place may load ahead). Needs c divisible by 4 and every pointer the op
 * loads 4-wide 16-byte aligned; mm_chan_held_launch says false (launching nothing) where it
 * cannot run, and the caller takes its general path. */
#ifndef MM_CUDA_CHAN_CUH
#define MM_CUDA_CHAN_CUH

#include "cuda_common.cuh"

template <typename Op>
__global__ void mm_chan_held_kernel(Op op, int64_t n4, int q4)
{
    constexpr int U = Op::unroll;
    __shared__ uint8_t nibble[U][MM_THREADS];
    const int64_t stride = (int64_t)gridDim.x * blockDim.x; /* a multiple of q4, and even */
    const int tid = (int)threadIdx.x;
    uint8_t *bits = op.mask();
    typename Op::coef k;
    op.coef_at((int)(((int64_t)blockIdx.x * blockDim.x + tid) % q4) * 4, k);
    /* the loop's bounds are the block's, so that every thread meets each barrier */
    for (int64_t base = (int64_t)blockIdx.x * blockDim.x; base < n4; base += U * stride) {
        typename Op::held4 h[U];
#pragma unroll
        for (int u = 0; u < U; u++) {
            int64_t o = base + tid + u * stride;
            if (o < n4) op.chan_load(4 * o, h[u]);
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            int64_t o = base + tid + u * stride;
            uint8_t nib = o < n4 ? op.chan_store(4 * o, h[u], k) : 0;
            if (bits) nibble[u][tid] = nib;
        }
        if (!bits) continue;
        __syncthreads();
        if (tid % 2 == 0)
            for (int u = 0; u < U; u++) {
                int64_t o = base + tid + u * stride; /* even: base and stride are */
                if (o < n4) bits[o / 2] = (uint8_t)(nibble[u][tid] | nibble[u][tid + 1] << 4);
            }
        __syncthreads();
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

/* Blocks of MM_THREADS for n4 quads in rows of q4, `unroll` quads a thread: mm_blocks_for's
 * count (at most 4096), rounded up to a multiple of q4 / gcd(q4, MM_THREADS) so that every
 * thread keeps its channels; 0 where that multiple is beyond any grid we launch. */
static inline unsigned mm_chan_held_blocks(int64_t n4, int q4, int unroll)
{
    int64_t step = q4 / mm_gcd64(q4, MM_THREADS);
    if (step > 4096) return 0;
    int64_t b = mm_blocks_for((n4 + unroll - 1) / unroll);
    return (unsigned)((b + step - 1) / step * step);
}

/* Runs op over the m x c elements, 4 channels a thread; false (nothing launched) where c is not
 * divisible by 4 or the caller's pointers are not all 16-byte aligned (`aligned`). */
template <typename Op>
static bool mm_chan_held_launch(const Op &op, int64_t m, int c, bool aligned, cudaStream_t st)
{
    if (m <= 0 || c <= 0 || c % 4 != 0 || !aligned) return false;
    int q4 = c / 4;
    int64_t n4 = m * q4;
    unsigned blocks = mm_chan_held_blocks(n4, q4, Op::unroll);
    if (blocks == 0) return false;
    mm_chan_held_kernel<Op><<<blocks, MM_THREADS, 0, st>>>(op, n4, q4);
    MM_CUDA_CHECK_LAUNCH();
    return true;
}

#endif
