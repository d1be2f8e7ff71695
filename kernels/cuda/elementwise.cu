/* Element-wise kernels of the CUDA backend: casts, accumulation, ReLU, add, dropout, biases.
 * Each op is a small object with a 4-wide and a scalar form run by mm_ew_kernel (cuda_common.cuh);
 * operands are float or bf16 in any combination. Semantics: cuda_kernels.h and cpu_kernels.h. */
#include "../philox.h"
#include "cuda_chan.cuh"
#include "cuda_common.cuh"
#include "cuda_gate.cuh"
#include "cuda_kernels.h"

/* ---- cast and accumulate ---- */
template <typename TY, typename TX>
struct mm_cast_op {
    TY *y;
    const TX *x;
    __device__ void run4(int64_t i) const
    {
        float v[4];
        mm_ld4(x, i, v);
        mm_st4(y, i, v);
    }
    __device__ void run1(int64_t i) const { mm_st(y, i, mm_ld(x, i)); }
};

void mm_cuda_cast(void *y, mm_dtype ty, const void *x, mm_dtype tx, int64_t n, cudaStream_t st)
{
    bool vec = mm_aligned16(y) && mm_aligned16(x);
    mm_dispatch_float2(ty, tx, [&](auto yt, auto xt) {
        using TY = decltype(yt);
        using TX = decltype(xt);
        mm_cast_op<TY, TX> op{(TY *)y, (const TX *)x};
        mm_ew_launch(op, n, vec, st);
    });
}

template <typename TX>
struct mm_accumulate_op {
    float *y;
    const TX *x;
    __device__ void run4(int64_t i) const
    {
        float a[4], b[4];
        mm_ld4(y, i, a);
        mm_ld4(x, i, b);
        for (int k = 0; k < 4; k++) a[k] += b[k];
        mm_st4(y, i, a);
    }
    __device__ void run1(int64_t i) const { y[i] += mm_ld(x, i); }
};

void mm_cuda_accumulate(float *y, const void *x, mm_dtype tx, int64_t n, cudaStream_t st)
{
    bool vec = mm_aligned16(y) && mm_aligned16(x);
    mm_dispatch_float(tx, [&](auto xt) {
        using TX = decltype(xt);
        mm_accumulate_op<TX> op{y, (const TX *)x};
        mm_ew_launch(op, n, vec, st);
    });
}

/* ---- ReLU ---- */
__device__ __forceinline__ float mm_relu(float v) { return v > 0.0f ? v : 0.0f; }

template <typename TY, typename TX>
struct mm_relu_op {
    TY *y;
    const TX *x;
    struct held { float v[4]; };
    __device__ void load4(int64_t i, held &h) const { mm_ld4(x, i, h.v); }
    __device__ void store4(int64_t i, held &h) const
    {
        for (int k = 0; k < 4; k++) h.v[k] = mm_relu(h.v[k]);
        mm_st4(y, i, h.v);
    }
    __device__ void run1(int64_t i) const { mm_st(y, i, mm_relu(mm_ld(x, i))); }
};

void mm_cuda_relu_forward(void *y, mm_dtype ty, const void *x, mm_dtype tx, int64_t n,
                          cudaStream_t st)
{
    bool vec = mm_aligned16(y) && mm_aligned16(x);
    mm_dispatch_float2(ty, tx, [&](auto yt, auto xt) {
        using TY = decltype(yt);
        using TX = decltype(xt);
        mm_relu_op<TY, TX> op{(TY *)y, (const TX *)x};
        mm_ew2_launch(op, n, vec, st);
    });
}

/* dx = dy where the gate is open (cuda_gate.cuh: the ReLU's output y > 0, or its bit), else 0. */
template <typename TDX, typename TDY, typename Gate>
struct mm_relu_bwd_op {
    TDX *dx;
    const TDY *dy;
    Gate gate;
    struct held { float g[4]; bool on[4]; };
    __device__ void load4(int64_t i, held &h) const
    {
        mm_ld4(dy, i, h.g);
        gate.on4(i, h.on);
    }
    __device__ void store4(int64_t i, held &h) const
    {
        for (int k = 0; k < 4; k++) h.g[k] = h.on[k] ? h.g[k] : 0.0f;
        mm_st4(dx, i, h.g);
    }
    __device__ void run1(int64_t i) const { mm_st(dx, i, gate.on(i) ? mm_ld(dy, i) : 0.0f); }
};

/* The ReLU backward from y or from its bits (one of them given). */
static void mm_relu_backward_gated(void *dx, mm_dtype tdx, const void *dy, mm_dtype tdy,
                                   const void *y, mm_dtype ty, const uint8_t *bits, int64_t n,
                                   cudaStream_t st)
{
    mm_dispatch_float2(tdx, tdy, [&](auto a, auto b) {
        using TDX = decltype(a);
        using TDY = decltype(b);
        mm_dispatch_gate(y, ty, bits, [&](auto gate) {
            bool vec = mm_aligned16(dx) && mm_aligned16(dy) && gate.aligned();
            mm_relu_bwd_op<TDX, TDY, decltype(gate)> op{(TDX *)dx, (const TDY *)dy, gate};
            mm_ew2_launch(op, n, vec, st);
        });
    });
}

void mm_cuda_relu_backward(void *dx, mm_dtype tdx, const void *dy, mm_dtype tdy, const void *y,
                           mm_dtype ty, int64_t n, cudaStream_t st)
{
    mm_relu_backward_gated(dx, tdx, dy, tdy, y, ty, NULL, n, st);
}

/* ---- ReLU masks as bits (runtime/relu_mask.c): bit i % 8 of byte i / 8 is y[i] > 0 ---- */
/* vec: y is 16-byte aligned, and each thread's eight values come in 16-byte loads. */
template <typename TY>
__global__ void mm_relu_mask_kernel(uint8_t *bits, const TY *y, int64_t n, int vec)
{
    const int64_t nb = (n + 7) / 8;
    for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < nb;
         j += (int64_t)gridDim.x * blockDim.x) {
        float v[8];
        int k = 0;
        if (vec && 8 * j + 8 <= n) {
            mm_ldv<8>(y, 8 * j, v);
            k = 8;
        }
        for (; k < 8 && 8 * j + k < n; k++) v[k] = mm_ld(y, 8 * j + k);
        unsigned b = 0;
        for (int q = 0; q < k; q++) b |= (v[q] > 0.0f ? 1u : 0u) << q;
        bits[j] = (uint8_t)b;
    }
}

void mm_cuda_relu_mask(uint8_t *bits, const void *y, mm_dtype ty, int64_t n, cudaStream_t st)
{
    if (n <= 0) return;
    mm_dispatch_float(ty, [&](auto yt) {
        using TY = decltype(yt);
        mm_relu_mask_kernel<TY><<<mm_blocks_for((n + 7) / 8), MM_THREADS, 0, st>>>(
            bits, (const TY *)y, n, mm_aligned16(y) ? 1 : 0);
        MM_CUDA_CHECK_LAUNCH();
    });
}

void mm_cuda_relu_backward_bits(void *dx, mm_dtype tdx, const void *dy, mm_dtype tdy,
                                const uint8_t *bits, int64_t n, cudaStream_t st)
{
    mm_relu_backward_gated(dx, tdx, dy, tdy, NULL, MM_F32, bits, n, st);
}

/* ---- add ---- */
template <typename TY, typename TA, typename TB>
struct mm_add_op {
    TY *y;
    const TA *a;
    const TB *b;
    __device__ void run4(int64_t i) const
    {
        float u[4], v[4];
        mm_ld4(a, i, u);
        mm_ld4(b, i, v);
        for (int k = 0; k < 4; k++) u[k] += v[k];
        mm_st4(y, i, u);
    }
    __device__ void run1(int64_t i) const { mm_st(y, i, mm_ld(a, i) + mm_ld(b, i)); }
};

void mm_cuda_add(void *y, mm_dtype ty, const void *a, mm_dtype ta, const void *b, mm_dtype tb,
                 int64_t n, cudaStream_t st)
{
    bool vec = mm_aligned16(y) && mm_aligned16(a) && mm_aligned16(b);
    mm_dispatch_float2(ty, ta, [&](auto p, auto q) {
        mm_dispatch_float(tb, [&](auto r) {
            using TY = decltype(p);
            using TA = decltype(q);
            using TB = decltype(r);
            mm_add_op<TY, TA, TB> op{(TY *)y, (const TA *)a, (const TB *)b};
            mm_ew_launch(op, n, vec, st);
        });
    });
}

/* ---- dropout ----
 * The mask is mm_philox_uniform(seed, i) >= p; uniform(i) is word i&3 of Philox block i>>2, so
 * the 4-wide form draws one block for its 4 elements. */
__device__ __forceinline__ float mm_u32_to_uniform(uint32_t u)
{
    return (float)(u >> 8) * (1.0f / 16777216.0f);
}

template <typename TY, typename TX>
struct mm_dropout_op {
    TY *y;
    uint8_t *mask;
    const TX *x;
    float p, scale;
    uint64_t seed;
    __device__ void run4(int64_t i) const
    {
        mm_philox_out r = mm_philox4x32(seed, (uint64_t)i >> 2);
        float v[4];
        uchar4 mk;
        mm_ld4(x, i, v);
        unsigned char *mb = &mk.x;
        for (int k = 0; k < 4; k++) {
            bool keep = mm_u32_to_uniform(r.v[k]) >= p;
            mb[k] = keep ? 1 : 0;
            v[k] = keep ? v[k] * scale : 0.0f;
        }
        mm_st4(y, i, v);
        *reinterpret_cast<uchar4 *>(mask + i) = mk;
    }
    __device__ void run1(int64_t i) const
    {
        bool keep = mm_philox_uniform(seed, (uint64_t)i) >= p;
        mask[i] = keep ? 1 : 0;
        mm_st(y, i, keep ? mm_ld(x, i) * scale : 0.0f);
    }
};

/* 1/(1-p), 0 when everything is dropped (p >= 1 keeps nothing, so the scale is never used). */
static float mm_dropout_scale(float p) { return p < 1.0f ? 1.0f / (1.0f - p) : 0.0f; }

void mm_cuda_dropout_forward(void *y, mm_dtype ty, uint8_t *mask, const void *x, mm_dtype tx,
                             int64_t n, float p, uint64_t seed, cudaStream_t st)
{
    bool vec = mm_aligned16(y) && mm_aligned16(x) && (((uintptr_t)mask & 3u) == 0);
    float scale = mm_dropout_scale(p);
    mm_dispatch_float2(ty, tx, [&](auto a, auto b) {
        using TY = decltype(a);
        using TX = decltype(b);
        mm_dropout_op<TY, TX> op{(TY *)y, mask, (const TX *)x, p, scale, seed};
        mm_ew_launch(op, n, vec, st);
    });
}

template <typename TDX, typename TDY>
struct mm_dropout_bwd_op {
    TDX *dx;
    const TDY *dy;
    const uint8_t *mask;
    float scale;
    __device__ void run4(int64_t i) const
    {
        float g[4];
        uchar4 mk = *reinterpret_cast<const uchar4 *>(mask + i);
        const unsigned char *mb = &mk.x;
        mm_ld4(dy, i, g);
        for (int k = 0; k < 4; k++) g[k] = mb[k] ? g[k] * scale : 0.0f;
        mm_st4(dx, i, g);
    }
    __device__ void run1(int64_t i) const
    {
        mm_st(dx, i, mask[i] ? mm_ld(dy, i) * scale : 0.0f);
    }
};

void mm_cuda_dropout_backward(void *dx, mm_dtype tdx, const void *dy, mm_dtype tdy,
                              const uint8_t *mask, int64_t n, float p, cudaStream_t st)
{
    bool vec = mm_aligned16(dx) && mm_aligned16(dy) && (((uintptr_t)mask & 3u) == 0);
    float scale = mm_dropout_scale(p);
    mm_dispatch_float2(tdx, tdy, [&](auto a, auto b) {
        using TDX = decltype(a);
        using TDY = decltype(b);
        mm_dropout_bwd_op<TDX, TDY> op{(TDX *)dx, (const TDY *)dy, mask, scale};
        mm_ew_launch(op, n, vec, st);
    });
}

/* ---- biases: element i of a row-major [m,c] matrix is in column i % c ---- */
template <typename TY>
struct mm_bias_add_op {
    TY *y;
    const float *b;
    int c, relu;
    int c4; /* the 4-wide path loads b 4 channels at a time (mm_chan4) */
    __device__ float f(float v, float bj) const
    {
        float r = v + bj;
        return relu ? (r > 0.0f ? r : 0.0f) : r;
    }
    struct held { float v[4]; };
    __device__ void load4(int64_t i, held &h) const { mm_ld4(y, i, h.v); }
    __device__ void store4(int64_t i, held &h) const
    {
        float bs[4];
        int j = mm_mod(i, c);
        if (c4) {
            mm_ld4(b, j, bs);
        } else {
            for (int k = 0; k < 4; k++) {
                bs[k] = b[j];
                if (++j == c) j = 0;
            }
        }
        for (int k = 0; k < 4; k++) h.v[k] = f(h.v[k], bs[k]);
        mm_st4(y, i, h.v);
    }
    __device__ void run1(int64_t i) const { mm_st(y, i, f(mm_ld(y, i), b[mm_mod(i, c)])); }
    /* The 4-channel form (cuda_chan.cuh): the bias of a thread's channels in registers. */
    static constexpr int unroll = 4;
    struct coef { float b[4]; };
    typedef held held4;
    __device__ uint8_t *mask() const { return NULL; }
    __device__ void coef_at(int j, coef &q) const
    {
        for (int k = 0; k < 4; k++) q.b[k] = b[j + k];
    }
    __device__ void chan_load(int64_t i, held &h) const { load4(i, h); }
    __device__ uint8_t chan_store(int64_t i, held &h, const coef &q) const
    {
        for (int k = 0; k < 4; k++) h.v[k] = f(h.v[k], q.b[k]);
        mm_st4(y, i, h.v);
        return 0;
    }
};

void mm_cuda_bias_add(void *y, mm_dtype ty, const float *b, int64_t m, int c, int relu,
                      cudaStream_t st)
{
    bool vec = mm_aligned16(y);
    mm_dispatch_float(ty, [&](auto a) {
        using TY = decltype(a);
        mm_bias_add_op<TY> op{(TY *)y, b, c, relu, mm_chan4(c, {b})};
        if (!mm_chan_held_launch(op, m, c, vec, st)) mm_ew2_launch(op, m * c, vec, st);
    });
}

struct mm_bias_fill_op {
    float *y;
    const float *b;
    int c;
    __device__ void run4(int64_t i) const
    {
        for (int k = 0; k < 4; k++) run1(i + k);
    }
    __device__ void run1(int64_t i) const { y[i] = b[mm_mod(i, c)]; }
};

void mm_cuda_bias_fill(float *y, const float *b, int64_t m, int c, cudaStream_t st)
{
    mm_bias_fill_op op{y, b, c};
    mm_ew_launch(op, m * c, false, st);
}
