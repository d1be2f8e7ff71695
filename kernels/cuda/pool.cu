/* Pooling on NHWC tensors: max, average, adaptive average and global average, forward and
 * backward. The backward kernels gather (each input element sums the outputs whose windows cover
 * it, or its cell or tile owns it) so they need no atomics and no zeroing.
 *
 * Averages: one thread per element, channels fastest; they multiply by the IEEE reciprocal of the
 * count (__frcp_rn, exact even under --use_fast_math), as the CPU reference does, and add in
 * output row-major order.
 *
 * Max pooling: padding counts as -inf; ties go to the first maximum in row-major window order and
 * a NaN always wins (cpu/pool.c). Threads handle 8 or 4 channels with 16-byte accesses where the
 * channel count allows. The forward records each maximum's window position (a u8 tap, the
 * CPU's rule) and the backward reads it back: in cells when windows do not overlap (VGG's 2x2/2)
 * and in shared-memory tiles when they do (ResNet's 3x3/2); see the kernels. With relu_mask the
 * backward also applies the ReLU before the pool: a gradient passes where the pool's output y is
 * > 0. */
#include <math.h>

#include <type_traits>

#include "cuda_common.cuh"
#include "cuda_kernels.h"

/* First output index whose window [o*stride - pad, o*stride - pad + k) contains input i, and the
 * last, for a window of size k: o*stride - pad <= i < o*stride - pad + k. */
__device__ __forceinline__ int mm_pool_first(int i, int k, int stride, int pad)
{
    int t = i + pad - k + 1; /* o*stride >= t */
    return t <= 0 ? 0 : (t + stride - 1) / stride;
}
__device__ __forceinline__ int mm_pool_last(int i, int stride, int pad, int out)
{
    int o = (i + pad) / stride; /* i + pad >= 0 always */
    return o < out - 1 ? o : out - 1;
}

/* Splits a flat NHWC index of a [n, rows, cols, c] tensor. */
__device__ __forceinline__ void mm_split_nhwc(int64_t i, int rows, int cols, int c, int *b, int *r,
                                              int *q, int *ch)
{
    *ch = mm_mod(i, c);
    int64_t t = mm_div(i, c);
    *q = mm_mod(t, cols);
    t = mm_div(t, cols);
    *r = mm_mod(t, rows);
    *b = (int)mm_div(t, rows);
}

/* ---- max pooling ----
 * Every kernel handles V consecutive channels of one pixel per thread (V = 8 or 4 with 16-byte
 * accesses when c % V == 0 and the buffers are 16-byte aligned, else V = 1), so a warp moves
 * whole 16-byte pieces of consecutive pixels' channel rows. */

/* The maximum of one window (rows h0.., columns w0..) for channels ch..ch+V-1 of image b, and its
 * position r*kw + s in the window: the CPU's rule exactly (best starts at -inf and the position
 * at the first in-image pixel; a pixel is taken when it is greater or NaN, so ties keep the first
 * maximum in row-major window order and a NaN always wins). */
template <int V, typename TX>
__device__ __forceinline__ void mm_window_argmax(float *best /* [V] */, int *arg /* [V] */,
                                                 const TX *x, const mm_pool_dims &d, int b,
                                                 int h0, int w0, int ch)
{
    const int r_lo = max(0, -h0), r_hi = min(d.kh, d.h - h0);
    const int s_lo = max(0, -w0), s_hi = min(d.kw, d.w - w0);
#pragma unroll
    for (int k = 0; k < V; k++) {
        best[k] = -INFINITY;
        arg[k] = r_lo * d.kw + s_lo;
    }
    for (int r = r_lo; r < r_hi; r++) {
        const int64_t row = ((int64_t)b * d.h + h0 + r) * d.w + w0;
        for (int s = s_lo; s < s_hi; s++) {
            float v[V];
            mm_ldv<V>(x, (row + s) * d.c + ch, v);
#pragma unroll
            for (int k = 0; k < V; k++) {
                if (v[k] > best[k] || isnan(v[k])) {
                    best[k] = v[k];
                    arg[k] = r * d.kw + s;
                }
            }
        }
    }
}

template <int V, typename TY, typename TX>
__global__ void mm_maxpool_fwd_kernel(TY *y, uint8_t *argmax, const TX *x, mm_pool_dims d)
{
    const int cv = d.c / V;
    const int64_t total = (int64_t)d.n * d.oh * d.ow * cv;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        int q = mm_mod(i, cv);
        int64_t pix = mm_div(i, cv);
        int oj = mm_mod(pix, d.ow);
        int64_t t = mm_div(pix, d.ow);
        int oi = mm_mod(t, d.oh), b = (int)mm_div(t, d.oh);
        float best[V];
        int arg[V];
        mm_window_argmax<V>(best, arg, x, d, b, oi * d.stride_h - d.pad_h,
                            oj * d.stride_w - d.pad_w, q * V);
        mm_stv<V>(y, pix * d.c + q * V, best);
        if (argmax)
#pragma unroll
            for (int k = 0; k < V; k++) argmax[pix * d.c + q * V + k] = (uint8_t)arg[k];
    }
}

/* The gradients g of output elements o..o+V-1 zeroed where the ReLU before the pool was not
 * active (the pool's output y <= 0, or NaN), when y is given (relu_mask). */
template <int V, typename TY>
__device__ __forceinline__ void mm_maxpool_relu_mask(float *g /* [V] */, const TY *y, int64_t o)
{
    if (!y) return;
    float yv[V];
    mm_ldv<V>(y, o, yv);
#pragma unroll
    for (int k = 0; k < V; k++) g[k] = yv[k] > 0.0f ? g[k] : 0.0f;
}

/* Backward when windows do not overlap (kh <= stride_h and kw <= stride_w: VGG's 2x2/2). The
 * input is cut into cells of stride_h x stride_w pixels, cell (ci, cj) starting at
 * (ci*stride_h - pad_h, cj*stride_w - pad_w); output (ci, cj)'s window is its cell's top-left
 * kh x kw corner, so each input pixel lies in one cell and receives at most one gradient. One
 * thread per (cell, V channels) reads the window's recorded maximum and writes the whole cell of
 * dx: dy at the maximum, 0 elsewhere (also in the cells past the last output row or column).
 * Every byte of argmax, dy and dx is touched once. */
template <int V, typename TDX, typename TDY, typename TY>
__global__ void mm_maxpool_bwd_cells_kernel(TDX *dx, const TDY *dy, const uint8_t *argmax,
                                            const TY *y, mm_pool_dims d, int cells_h, int cells_w)
{
    const int cv = d.c / V;
    const int64_t total = (int64_t)d.n * cells_h * cells_w * cv;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        int q = mm_mod(i, cv);
        int64_t t = mm_div(i, cv);
        int cj = mm_mod(t, cells_w);
        t = mm_div(t, cells_w);
        int ci = mm_mod(t, cells_h), b = (int)mm_div(t, cells_h);
        const int h0 = ci * d.stride_h - d.pad_h, w0 = cj * d.stride_w - d.pad_w, ch = q * V;
        const bool has_out = ci < d.oh && cj < d.ow;
        float g[V];
        int arg[V];
#pragma unroll
        for (int k = 0; k < V; k++) {
            g[k] = 0.0f;
            arg[k] = -1;
        }
        if (has_out) {
            const int64_t o = (((int64_t)b * d.oh + ci) * d.ow + cj) * d.c + ch;
            mm_ldv<V>(dy, o, g);
            mm_maxpool_relu_mask<V>(g, y, o);
#pragma unroll
            for (int k = 0; k < V; k++) arg[k] = argmax[o + k];
        }
        for (int r = max(0, -h0); r < d.stride_h && h0 + r < d.h; r++) {
            const int64_t row = ((int64_t)b * d.h + h0 + r) * d.w + w0;
            for (int s = max(0, -w0); s < d.stride_w && w0 + s < d.w; s++) {
                const int pos = has_out && r < d.kh && s < d.kw ? r * d.kw + s : -2;
                float o[V];
#pragma unroll
                for (int k = 0; k < V; k++) o[k] = arg[k] == pos ? g[k] : 0.0f;
                mm_stv<V>(dx, (row + s) * d.c + ch, o);
            }
        }
    }
}

/* Backward when windows overlap (ResNet's 3x3/2 pad 1), tiled. A block owns a tile of th x tw
 * input pixels and cb channel vectors of one image. Phase 1 loads the recorded window position of
 * the maximum of every output whose window touches the tile (a few more outputs than the tile's
 * share: (th + kh - 2)/stride_h + 1 rows at most) and keeps it in shared memory; phase 2 lets each
 * input pixel of the tile gather dy from the outputs that chose it. dy is loaded only where some
 * channel of the vector matches.
 *
 * The gradients of one pixel add in the CPU reference's order, so fp32 results are bitwise the
 * CPU's: it scatters output rows in phases (rows p, p + gap, p + 2*gap, ... for p = 0..gap-1,
 * gap = ceil(kh/stride_h)), columns ascending. The (at most gap) consecutive rows covering a pixel
 * have distinct residues mod gap, so that order starts at the first covering row divisible by
 * gap, runs to the last, then wraps to the first covering row. */
typedef struct mm_maxpool_tile {
    int th, tw; /* input pixels per tile */
    int cb;     /* channel vectors per block */
} mm_maxpool_tile;

template <int V>
__device__ __forceinline__ void mm_lds_u16(const uint16_t *p, int *v)
{
    if constexpr (V == 8) {
        uint4 q = *reinterpret_cast<const uint4 *>(p);
        const uint32_t w[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
        for (int k = 0; k < 4; k++) {
            v[2 * k] = (int)(w[k] & 0xffffu);
            v[2 * k + 1] = (int)(w[k] >> 16);
        }
    } else if constexpr (V == 4) {
        uint2 q = *reinterpret_cast<const uint2 *>(p);
        v[0] = (int)(q.x & 0xffffu);
        v[1] = (int)(q.x >> 16);
        v[2] = (int)(q.y & 0xffffu);
        v[3] = (int)(q.y >> 16);
    } else {
        v[0] = p[0];
    }
}

template <int V, typename TDX, typename TDY, typename TY>
__global__ void __launch_bounds__(MM_THREADS, 4)
    mm_maxpool_bwd_tiled_kernel(TDX *dx, const TDY *dy, const uint8_t *argmax, const TY *y,
                                mm_pool_dims d, mm_maxpool_tile tl)
{
    extern __shared__ uint4 mm_maxpool_smem[];
    uint16_t *pos_of = reinterpret_cast<uint16_t *>(mm_maxpool_smem); /* [outputs][cb*V] */
    const int cv = d.c / V, nchunk = (cv + tl.cb - 1) / tl.cb, cbv = tl.cb * V;
    const int gap = (d.kh + d.stride_h - 1) / d.stride_h;
    const int ih0 = blockIdx.y * tl.th, iw0 = blockIdx.x * tl.tw;
    const int nih = min(tl.th, d.h - ih0), niw = min(tl.tw, d.w - iw0);
    const int oi0 = mm_pool_first(ih0, d.kh, d.stride_h, d.pad_h);
    const int oi1 = mm_pool_last(ih0 + nih - 1, d.stride_h, d.pad_h, d.oh);
    const int oj0 = mm_pool_first(iw0, d.kw, d.stride_w, d.pad_w);
    const int oj1 = mm_pool_last(iw0 + niw - 1, d.stride_w, d.pad_w, d.ow);
    const int noh = max(oi1 - oi0 + 1, 0), now_ = max(oj1 - oj0 + 1, 0);
    for (int z = blockIdx.z; z < d.n * nchunk; z += gridDim.z) {
        const int b = z / nchunk, q0 = (z % nchunk) * tl.cb, nq = min(tl.cb, cv - q0);
        /* phase 1: the maximum's position in every output window touching the tile */
        for (int it = threadIdx.x; it < noh * now_ * nq; it += blockDim.x) {
            const int q = it % nq, o = it / nq;
            const int oi = oi0 + o / now_, oj = oj0 + o % now_;
            const int64_t at = (((int64_t)b * d.oh + oi) * d.ow + oj) * d.c + (q0 + q) * V;
            int arg[V];
#pragma unroll
            for (int k = 0; k < V; k++) arg[k] = argmax[at + k];
            uint16_t *dst = pos_of + o * cbv + q * V;
#pragma unroll
            for (int k = 0; k < V; k++) dst[k] = (uint16_t)arg[k];
        }
        __syncthreads();
        /* phase 2: every input pixel of the tile gathers from the outputs that chose it */
        for (int it = threadIdx.x; it < nih * niw * nq; it += blockDim.x) {
            const int q = it % nq, p = it / nq;
            const int ih = ih0 + p / niw, iw = iw0 + p % niw, ch = (q0 + q) * V;
            const int a0 = mm_pool_first(ih, d.kh, d.stride_h, d.pad_h);
            const int a1 = mm_pool_last(ih, d.stride_h, d.pad_h, d.oh);
            const int c0 = mm_pool_first(iw, d.kw, d.stride_w, d.pad_w);
            const int c1 = mm_pool_last(iw, d.stride_w, d.pad_w, d.ow);
            const int nrows = a1 - a0 + 1;
            const int wrap = (a0 + gap - 1) / gap * gap; /* first covering row divisible by gap */
            const int start = wrap <= a1 ? wrap - a0 : 0;
            float acc[V];
#pragma unroll
            for (int k = 0; k < V; k++) acc[k] = 0.0f;
            for (int t = 0; t < nrows; t++) {
                const int oi = a0 + (start + t) % nrows;
                const int r = ih - (oi * d.stride_h - d.pad_h);
                for (int oj = c0; oj <= c1; oj++) {
                    const int pos = r * d.kw + iw - (oj * d.stride_w - d.pad_w);
                    int chosen[V];
                    mm_lds_u16<V>(pos_of + ((oi - oi0) * now_ + (oj - oj0)) * cbv + q * V,
                                  chosen);
                    bool any = false;
#pragma unroll
                    for (int k = 0; k < V; k++) any |= chosen[k] == pos;
                    if (!any) continue;
                    float g[V];
                    const int64_t o = (((int64_t)b * d.oh + oi) * d.ow + oj) * d.c + ch;
                    mm_ldv<V>(dy, o, g);
                    mm_maxpool_relu_mask<V>(g, y, o);
#pragma unroll
                    for (int k = 0; k < V; k++)
                        if (chosen[k] == pos) acc[k] += g[k];
                }
            }
            mm_stv<V>(dx, (((int64_t)b * d.h + ih) * d.w + iw) * d.c + ch, acc);
        }
        __syncthreads();
    }
}

/* The vector width for channel count c and the buffers (NULL ones ignored). */
static int mm_pool_vec_width(int c, const void *a, const void *b, const void *e)
{
    bool al = mm_aligned16(a) && mm_aligned16(b) && (!e || mm_aligned16(e));
    if (al && c % 8 == 0) return 8;
    if (al && c % 4 == 0) return 4;
    return 1;
}

/* Calls f with std::integral_constant<int, V> for V = 1, 4 or 8. */
template <typename F>
static void mm_dispatch_vec(int v, F f)
{
    if (v == 8) f(std::integral_constant<int, 8>());
    else if (v == 4) f(std::integral_constant<int, 4>());
    else f(std::integral_constant<int, 1>());
}

/* The tiled backward's shape: 16 x 16 input pixels and 64 channels per block, made smaller until
 * the window positions fit the default 48 KiB of shared memory (3x3/2: 9x9 outputs x 64 channels
 * x 2 bytes = 10 KiB). Returns its shared-memory bytes. */
static size_t mm_maxpool_tile_pick(mm_maxpool_tile *tl, const mm_pool_dims *d, int v)
{
    const size_t limit = 48 * 1024;
    int cv = d->c / v;
    tl->th = tl->tw = 16;
    tl->cb = cv < 64 / v ? cv : 64 / v;
    for (;;) {
        size_t oth = (size_t)((tl->th + d->kh - 2) / d->stride_h + 1);
        size_t otw = (size_t)((tl->tw + d->kw - 2) / d->stride_w + 1);
        size_t bytes = oth * otw * (size_t)tl->cb * (size_t)v * sizeof(uint16_t);
        if (bytes <= limit) return bytes;
        if (tl->cb > 1) tl->cb = (tl->cb + 1) / 2;
        else if (tl->th > 1 || tl->tw > 1) tl->th = (tl->th + 1) / 2, tl->tw = (tl->tw + 1) / 2;
        else MM_CU_ASSERT(!"max-pool window too large for the tiled backward");
    }
}

void mm_cuda_maxpool_forward(void *y, mm_dtype ty, uint8_t *argmax, const void *x, mm_dtype tx,
                             const mm_pool_dims *d, cudaStream_t st)
{
    MM_CU_ASSERT(!argmax || d->kh * d->kw <= 256); /* taps are kept as u8 */
    int v = mm_pool_vec_width(d->c, y, x, NULL);
    int64_t total = (int64_t)d->n * d->oh * d->ow * (d->c / v);
    if (total <= 0) return;
    mm_dispatch_vec(v, [&](auto vv) {
        mm_dispatch_float2(ty, tx, [&](auto a, auto b) {
            constexpr int V = decltype(vv)::value;
            using TY = decltype(a);
            using TX = decltype(b);
            mm_maxpool_fwd_kernel<V, TY, TX><<<mm_blocks_for(total), MM_THREADS, 0, st>>>(
                (TY *)y, argmax, (const TX *)x, *d);
            MM_CUDA_CHECK_LAUNCH();
        });
    });
}

void mm_cuda_maxpool_backward(void *dx, mm_dtype tdx, const void *dy, mm_dtype tdy,
                              const uint8_t *argmax, const void *y, mm_dtype ty,
                              const mm_pool_dims *d, cudaStream_t st)
{
    if ((int64_t)d->n * d->h * d->w * d->c <= 0) return;
    MM_CU_ASSERT(d->kh * d->kw <= 256 && (!d->relu_mask || y));
    if (!d->relu_mask) y = NULL;
    const int v = mm_pool_vec_width(d->c, dx, dy, y);
    const bool disjoint = d->kh <= d->stride_h && d->kw <= d->stride_w;
    const int cells_h = (d->h - 1 + d->pad_h) / d->stride_h + 1;
    const int cells_w = (d->w - 1 + d->pad_w) / d->stride_w + 1;
    mm_maxpool_tile tl = {1, 1, 1};
    size_t smem = disjoint ? 0 : mm_maxpool_tile_pick(&tl, d, v);
    mm_dispatch_vec(v, [&](auto vv) {
        mm_dispatch_float2(tdx, tdy, [&](auto a, auto b) {
            mm_dispatch_float(y ? ty : tdy, [&](auto e) {
                constexpr int V = decltype(vv)::value;
                using TDX = decltype(a);
                using TDY = decltype(b);
                using TY = decltype(e);
                if (disjoint) {
                    int64_t total = (int64_t)d->n * cells_h * cells_w * (d->c / V);
                    mm_maxpool_bwd_cells_kernel<V, TDX, TDY, TY>
                        <<<mm_blocks_for(total), MM_THREADS, 0, st>>>(
                            (TDX *)dx, (const TDY *)dy, argmax, (const TY *)y, *d, cells_h,
                            cells_w);
                } else {
                    int nchunk = (d->c / V + tl.cb - 1) / tl.cb;
                    int64_t nz = (int64_t)d->n * nchunk;
                    dim3 grid((unsigned)((d->w + tl.tw - 1) / tl.tw),
                              (unsigned)((d->h + tl.th - 1) / tl.th),
                              (unsigned)(nz < 65535 ? nz : 65535));
                    MM_CU_ASSERT(grid.y <= 65535);
                    mm_maxpool_bwd_tiled_kernel<V, TDX, TDY, TY>
                        <<<grid, MM_THREADS, smem, st>>>((TDX *)dx, (const TDY *)dy, argmax,
                                                         (const TY *)y, *d, tl);
                }
                MM_CUDA_CHECK_LAUNCH();
            });
        });
    });
}

/* ---- average pooling ---- */
/* The divisor of output cell (oi, oj): the whole window when count_include_pad, else the part of
 * it inside the image. */
__device__ __forceinline__ int mm_avg_divisor(const mm_pool_dims &d, int oi, int oj)
{
    if (d.count_include_pad) return d.kh * d.kw;
    int h0 = oi * d.stride_h - d.pad_h, w0 = oj * d.stride_w - d.pad_w;
    int h1 = min(h0 + d.kh, d.h), w1 = min(w0 + d.kw, d.w);
    h0 = max(h0, 0);
    w0 = max(w0, 0);
    return (h1 - h0) * (w1 - w0);
}

template <typename TY, typename TX>
__global__ void mm_avgpool_fwd_kernel(TY *y, const TX *x, mm_pool_dims d)
{
    int64_t total = (int64_t)d.n * d.oh * d.ow * d.c;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        int b, oi, oj, ch;
        mm_split_nhwc(i, d.oh, d.ow, d.c, &b, &oi, &oj, &ch);
        int h0 = oi * d.stride_h - d.pad_h, w0 = oj * d.stride_w - d.pad_w;
        float s = 0.0f;
        for (int r = 0; r < d.kh; r++) {
            int ih = h0 + r;
            if (ih < 0 || ih >= d.h) continue;
            for (int q = 0; q < d.kw; q++) {
                int iw = w0 + q;
                if (iw < 0 || iw >= d.w) continue;
                s += mm_ld(x, (((int64_t)b * d.h + ih) * d.w + iw) * d.c + ch);
            }
        }
        mm_st(y, i, s * __frcp_rn((float)mm_avg_divisor(d, oi, oj)));
    }
}

template <typename TDX, typename TDY>
__global__ void mm_avgpool_bwd_kernel(TDX *dx, const TDY *dy, mm_pool_dims d)
{
    int64_t total = (int64_t)d.n * d.h * d.w * d.c;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        int b, ih, iw, ch;
        mm_split_nhwc(i, d.h, d.w, d.c, &b, &ih, &iw, &ch);
        int oi0 = mm_pool_first(ih, d.kh, d.stride_h, d.pad_h);
        int oi1 = mm_pool_last(ih, d.stride_h, d.pad_h, d.oh);
        int oj0 = mm_pool_first(iw, d.kw, d.stride_w, d.pad_w);
        int oj1 = mm_pool_last(iw, d.stride_w, d.pad_w, d.ow);
        float acc = 0.0f;
        for (int oi = oi0; oi <= oi1; oi++)
            for (int oj = oj0; oj <= oj1; oj++)
                acc += mm_ld(dy, (((int64_t)b * d.oh + oi) * d.ow + oj) * d.c + ch) *
                       __frcp_rn((float)mm_avg_divisor(d, oi, oj));
        mm_st(dx, i, acc);
    }
}

/* Calls launch(out, in, blocks) with values of the storage types of the output and input and
 * the grid of a grid-stride kernel over `total` elements, then checks the launch. */
template <typename F>
static void mm_pool_launch(int64_t total, mm_dtype tout, mm_dtype tin, F launch)
{
    if (total <= 0) return;
    mm_dispatch_float2(tout, tin, [&](auto a, auto b) {
        launch(a, b, mm_blocks_for(total));
        MM_CUDA_CHECK_LAUNCH();
    });
}

void mm_cuda_avgpool_forward(void *y, mm_dtype ty, const void *x, mm_dtype tx,
                             const mm_pool_dims *d, cudaStream_t st)
{
    int64_t total = (int64_t)d->n * d->oh * d->ow * d->c;
    mm_pool_launch(total, ty, tx, [&](auto a, auto b, unsigned blocks) {
        using TY = decltype(a);
        using TX = decltype(b);
        mm_avgpool_fwd_kernel<TY, TX><<<blocks, MM_THREADS, 0, st>>>((TY *)y, (const TX *)x, *d);
    });
}

void mm_cuda_avgpool_backward(void *dx, mm_dtype tdx, const void *dy, mm_dtype tdy,
                              const mm_pool_dims *d, cudaStream_t st)
{
    int64_t total = (int64_t)d->n * d->h * d->w * d->c;
    mm_pool_launch(total, tdx, tdy, [&](auto a, auto b, unsigned blocks) {
        using TDX = decltype(a);
        using TDY = decltype(b);
        mm_avgpool_bwd_kernel<TDX, TDY><<<blocks, MM_THREADS, 0, st>>>((TDX *)dx,
                                                                       (const TDY *)dy, *d);
    });
}

/* ---- adaptive average pooling (PyTorch's windows) ----
 * Output row i averages input rows floor(i*h/oh) .. ceil((i+1)*h/oh) - 1. Input row r lies in
 * the windows of outputs floor(r*oh/h) .. floor(((r+1)*oh - 1)/h). */
__device__ __forceinline__ int mm_adapt_start(int i, int in, int out)
{
    return (int)(((int64_t)i * in) / out);
}
__device__ __forceinline__ int mm_adapt_end(int i, int in, int out)
{
    return (int)(((int64_t)(i + 1) * in + out - 1) / out);
}

template <typename TY, typename TX>
__global__ void mm_adaptive_fwd_kernel(TY *y, const TX *x, mm_pool_dims d)
{
    int64_t total = (int64_t)d.n * d.oh * d.ow * d.c;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        int b, oi, oj, ch;
        mm_split_nhwc(i, d.oh, d.ow, d.c, &b, &oi, &oj, &ch);
        int h0 = mm_adapt_start(oi, d.h, d.oh), h1 = mm_adapt_end(oi, d.h, d.oh);
        int w0 = mm_adapt_start(oj, d.w, d.ow), w1 = mm_adapt_end(oj, d.w, d.ow);
        float s = 0.0f;
        for (int ih = h0; ih < h1; ih++)
            for (int iw = w0; iw < w1; iw++)
                s += mm_ld(x, (((int64_t)b * d.h + ih) * d.w + iw) * d.c + ch);
        mm_st(y, i, s * __frcp_rn((float)((h1 - h0) * (w1 - w0))));
    }
}

template <typename TDX, typename TDY>
__global__ void mm_adaptive_bwd_kernel(TDX *dx, const TDY *dy, mm_pool_dims d)
{
    int64_t total = (int64_t)d.n * d.h * d.w * d.c;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        int b, ih, iw, ch;
        mm_split_nhwc(i, d.h, d.w, d.c, &b, &ih, &iw, &ch);
        int oi0 = (int)(((int64_t)ih * d.oh) / d.h);
        int oi1 = min((int)((((int64_t)ih + 1) * d.oh - 1) / d.h), d.oh - 1);
        int oj0 = (int)(((int64_t)iw * d.ow) / d.w);
        int oj1 = min((int)((((int64_t)iw + 1) * d.ow - 1) / d.w), d.ow - 1);
        float acc = 0.0f;
        for (int oi = oi0; oi <= oi1; oi++) {
            int h0 = mm_adapt_start(oi, d.h, d.oh), h1 = mm_adapt_end(oi, d.h, d.oh);
            if (ih < h0 || ih >= h1) continue;
            for (int oj = oj0; oj <= oj1; oj++) {
                int w0 = mm_adapt_start(oj, d.w, d.ow), w1 = mm_adapt_end(oj, d.w, d.ow);
                if (iw < w0 || iw >= w1) continue;
                acc += mm_ld(dy, (((int64_t)b * d.oh + oi) * d.ow + oj) * d.c + ch) *
                       __frcp_rn((float)((h1 - h0) * (w1 - w0)));
            }
        }
        mm_st(dx, i, acc);
    }
}

void mm_cuda_adaptive_avgpool_forward(void *y, mm_dtype ty, const void *x, mm_dtype tx,
                                      const mm_pool_dims *d, cudaStream_t st)
{
    int64_t total = (int64_t)d->n * d->oh * d->ow * d->c;
    mm_pool_launch(total, ty, tx, [&](auto a, auto b, unsigned blocks) {
        using TY = decltype(a);
        using TX = decltype(b);
        mm_adaptive_fwd_kernel<TY, TX><<<blocks, MM_THREADS, 0, st>>>((TY *)y, (const TX *)x, *d);
    });
}

void mm_cuda_adaptive_avgpool_backward(void *dx, mm_dtype tdx, const void *dy, mm_dtype tdy,
                                       const mm_pool_dims *d, cudaStream_t st)
{
    int64_t total = (int64_t)d->n * d->h * d->w * d->c;
    mm_pool_launch(total, tdx, tdy, [&](auto a, auto b, unsigned blocks) {
        using TDX = decltype(a);
        using TDY = decltype(b);
        mm_adaptive_bwd_kernel<TDX, TDY><<<blocks, MM_THREADS, 0, st>>>((TDX *)dx,
                                                                        (const TDY *)dy, *d);
    });
}

/* ---- global average pooling: [n,hw,c] -> [n,c] ----
 * Block: 32 channels x 8 row lanes; grid: (channel chunks, images). */
template <typename TY, typename TX>
__global__ void mm_gap_fwd_kernel(TY *y, const TX *x, int64_t hw, int c)
{
    __shared__ float red[8][33];
    int j = blockIdx.x * 32 + threadIdx.x;
    int b = blockIdx.y;
    float s = 0.0f;
    if (j < c) {
        const TX *xb = x + (int64_t)b * hw * c;
#pragma unroll 4
        for (int64_t p = threadIdx.y; p < hw; p += 8) s += mm_ld(xb, p * c + j);
    }
    red[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && j < c) {
        float t = 0.0f;
        for (int k = 0; k < 8; k++) t += red[k][threadIdx.x];
        mm_st(y, (int64_t)b * c + j, t * __frcp_rn((float)hw));
    }
}

template <typename TDX, typename TDY>
struct mm_gap_bwd_op {
    TDX *dx;
    const TDY *dy;
    int64_t hw;
    int c;
    __device__ void run1(int64_t i) const
    {
        int j = mm_mod(i, c);
        int64_t b = i / (hw * c); /* once per element of a small op: 64-bit is fine */
        mm_st(dx, i, mm_ld(dy, b * c + j) * __frcp_rn((float)hw));
    }
    __device__ void run4(int64_t i) const
    {
        for (int k = 0; k < 4; k++) run1(i + k);
    }
};

void mm_cuda_global_avgpool_forward(void *y, mm_dtype ty, const void *x, mm_dtype tx, int n,
                                    int64_t hw, int c, cudaStream_t st)
{
    if (n <= 0 || c <= 0) return;
    dim3 grid((unsigned)((c + 31) / 32), (unsigned)n), block(32, 8);
    mm_dispatch_float2(ty, tx, [&](auto a, auto b) {
        using TY = decltype(a);
        using TX = decltype(b);
        mm_gap_fwd_kernel<TY, TX><<<grid, block, 0, st>>>((TY *)y, (const TX *)x, hw, c);
        MM_CUDA_CHECK_LAUNCH();
    });
}

void mm_cuda_global_avgpool_backward(void *dx, mm_dtype tdx, const void *dy, mm_dtype tdy, int n,
                                     int64_t hw, int c, cudaStream_t st)
{
    mm_dispatch_float2(tdx, tdy, [&](auto a, auto b) {
        using TDX = decltype(a);
        using TDY = decltype(b);
        mm_gap_bwd_op<TDX, TDY> op{(TDX *)dx, (const TDY *)dy, hw, c};
        mm_ew_launch(op, (int64_t)n * hw * c, false, st);
    });
}
