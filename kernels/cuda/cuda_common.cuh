/* Device-side helpers shared by the CUDA kernel files (.cu only): loads and stores that convert
 * between the storage type (float or bf16) and float arithmetic, 4-wide vector forms of them, the
 * element-wise launch pattern, dtype dispatch and launch sizes.
 *
 * Arithmetic is always fp32; bf16 is a storage format (round to nearest even on store). */
#ifndef MM_CUDA_COMMON_CUH
#define MM_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include <initializer_list>

extern "C" {
#include "../../runtime/tensor.h"
}
#include "cuda_check.h"

typedef __nv_bfloat16 mm_bf16;

/* The tier-2 reporter of runtime/error.h, declared here because error.h is C-only (_Noreturn). */
extern "C" __attribute__((noreturn)) void mm_die_at(const char *file, int line, const char *what,
                                                    const char *detail, const char *hint);

#define MM_CU_ASSERT(cond)                                                                 \
    do {                                                                                   \
        if (!(cond)) mm_die_at(__FILE__, __LINE__, "assertion failed", #cond, NULL);       \
    } while (0)

/* ---- scalar loads and stores ---- */
__device__ __forceinline__ float mm_ld(const float *p, int64_t i) { return p[i]; }
__device__ __forceinline__ float mm_ld(const mm_bf16 *p, int64_t i)
{
    return __bfloat162float(p[i]);
}
__device__ __forceinline__ void mm_st(float *p, int64_t i, float v) { p[i] = v; }
__device__ __forceinline__ void mm_st(mm_bf16 *p, int64_t i, float v)
{
    p[i] = __float2bfloat16_rn(v);
}

/* ---- 4-wide loads and stores at an index divisible by 4 (pointer 16-byte aligned) ---- */
__device__ __forceinline__ void mm_ld4(const float *p, int64_t i, float v[4])
{
    float4 q = *reinterpret_cast<const float4 *>(p + i);
    v[0] = q.x; v[1] = q.y; v[2] = q.z; v[3] = q.w;
}
__device__ __forceinline__ void mm_ld4(const mm_bf16 *p, int64_t i, float v[4])
{
    uint2 q = *reinterpret_cast<const uint2 *>(p + i);
    __nv_bfloat162 a = *reinterpret_cast<__nv_bfloat162 *>(&q.x);
    __nv_bfloat162 b = *reinterpret_cast<__nv_bfloat162 *>(&q.y);
    float2 fa = __bfloat1622float2(a), fb = __bfloat1622float2(b);
    v[0] = fa.x; v[1] = fa.y; v[2] = fb.x; v[3] = fb.y;
}
__device__ __forceinline__ void mm_st4(float *p, int64_t i, const float v[4])
{
    *reinterpret_cast<float4 *>(p + i) = make_float4(v[0], v[1], v[2], v[3]);
}
__device__ __forceinline__ void mm_st4(mm_bf16 *p, int64_t i, const float v[4])
{
    __nv_bfloat162 a = __floats2bfloat162_rn(v[0], v[1]);
    __nv_bfloat162 b = __floats2bfloat162_rn(v[2], v[3]);
    uint2 q;
    q.x = *reinterpret_cast<uint32_t *>(&a);
    q.y = *reinterpret_cast<uint32_t *>(&b);
    *reinterpret_cast<uint2 *>(p + i) = q;
}

/* ---- V-wide loads and stores (V = 1, 4 or 8) at an index divisible by V, the pointer aligned
 * to 16 bytes when V > 1: bf16 x 8 is one 16-byte access, float x 8 two ---- */
template <int V>
__device__ __forceinline__ void mm_ldv(const float *p, int64_t i, float *v)
{
    if constexpr (V == 1) {
        v[0] = p[i];
    } else {
#pragma unroll
        for (int k = 0; k < V; k += 4) mm_ld4(p, i + k, v + k);
    }
}
template <int V>
__device__ __forceinline__ void mm_ldv(const mm_bf16 *p, int64_t i, float *v)
{
    if constexpr (V == 1) {
        v[0] = __bfloat162float(p[i]);
    } else if constexpr (V == 4) {
        mm_ld4(p, i, v);
    } else {
        static_assert(V == 8, "V is 1, 4 or 8");
        uint4 q = *reinterpret_cast<const uint4 *>(p + i);
        const uint32_t w[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
        for (int k = 0; k < 4; k++) {
            float2 f = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(&w[k]));
            v[2 * k] = f.x;
            v[2 * k + 1] = f.y;
        }
    }
}
template <int V>
__device__ __forceinline__ void mm_stv(float *p, int64_t i, const float *v)
{
    if constexpr (V == 1) {
        p[i] = v[0];
    } else {
#pragma unroll
        for (int k = 0; k < V; k += 4) mm_st4(p, i + k, v + k);
    }
}
template <int V>
__device__ __forceinline__ void mm_stv(mm_bf16 *p, int64_t i, const float *v)
{
    if constexpr (V == 1) {
        p[i] = __float2bfloat16_rn(v[0]);
    } else if constexpr (V == 4) {
        mm_st4(p, i, v);
    } else {
        static_assert(V == 8, "V is 1, 4 or 8");
        uint32_t w[4];
#pragma unroll
        for (int k = 0; k < 4; k++) {
            __nv_bfloat162 b = __floats2bfloat162_rn(v[2 * k], v[2 * k + 1]);
            w[k] = *reinterpret_cast<uint32_t *>(&b);
        }
        *reinterpret_cast<uint4 *>(p + i) = make_uint4(w[0], w[1], w[2], w[3]);
    }
}

/* v rounded to the storage type of p (bf16: to nearest even), back in float. */
__device__ __forceinline__ float mm_round_as(const float *, float v) { return v; }
__device__ __forceinline__ float mm_round_as(const mm_bf16 *, float v)
{
    return __bfloat162float(__float2bfloat16_rn(v));
}

static inline bool mm_aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

/* Whether the 4-wide path of an element-wise op over an [m,c] matrix may load its per-channel
 * arrays (NULL ones aside) four channels at a time: elements i..i+3 (i divisible by 4) are then
 * channels j..j+3 of one row, which needs c divisible by 4, and each array 16-byte aligned.
 * Scalar loads of four channels by each lane cost four times the L1 requests of one 16-byte
 * load; with three to five such arrays they outnumbered the requests of the data itself. */
static inline bool mm_chan4(int c, std::initializer_list<const void *> arrays)
{
    if (c % 4) return false;
    for (const void *p : arrays)
        if (p && !mm_aligned16(p)) return false;
    return true;
}

/* i % c and i / c for a flat index: 32-bit division when i fits (every tensor of our nets), which
 * is several times cheaper than 64-bit division in the memory-bound kernels that do it per
 * element. */
__device__ __forceinline__ int mm_mod(int64_t i, int c)
{
    return (uint64_t)i < 0xffffffffull ? (int)((uint32_t)i % (uint32_t)c) : (int)(i % c);
}
__device__ __forceinline__ int64_t mm_div(int64_t i, int c)
{
    return (uint64_t)i < 0xffffffffull ? (int64_t)((uint32_t)i / (uint32_t)c) : i / c;
}

/* ---- launch sizes ---- */
#define MM_THREADS 256
/* Grid-stride kernels: enough blocks to fill any GPU we target, no more. */
static inline unsigned mm_blocks_for(int64_t work_items)
{
    int64_t b = (work_items + MM_THREADS - 1) / MM_THREADS;
    if (b < 1) b = 1;
    if (b > 4096) b = 4096;
    return (unsigned)b;
}

/* ---- element-wise pattern ----
 * An op object has run4(i) (elements i..i+3, i divisible by 4, all pointers 16-byte aligned) and
 * run1(i). vec selects the 4-wide path; the tail after the last multiple of 4 runs scalar. */
template <typename Op>
__global__ void mm_ew_kernel(Op op, int64_t n, int vec)
{
    int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    if (vec) {
        int64_t nv = n / 4;
        for (int64_t j = tid; j < nv; j += stride) op.run4(j * 4);
        for (int64_t i = nv * 4 + tid; i < n; i += stride) op.run1(i);
    } else {
        for (int64_t i = tid; i < n; i += stride) op.run1(i);
    }
}

template <typename Op>
static void mm_ew_launch(const Op &op, int64_t n, bool vec, cudaStream_t st)
{
    if (n <= 0) return;
    unsigned blocks = mm_blocks_for(vec ? (n + 3) / 4 : n);
    mm_ew_kernel<Op><<<blocks, MM_THREADS, 0, st>>>(op, n, vec ? 1 : 0);
    MM_CUDA_CHECK_LAUNCH();
}

/* ---- the same, eight elements a thread with two loads in flight ----
 * A run4 loop stores before its next load, which may read what the store wrote as far as the
 * compiler knows (ops run in place), so a thread waits on one 16-byte load at a time: 32 KiB in
 * flight per SM at full occupancy in fp32, half that in bf16, short of what HBM3 wants. An op
 * that splits its 4-wide work into load4(i, h) (h: its Op::held) and store4(i, h) gets two quads
 * loaded before either is stored: quads j and j + stride, so that each load of a warp reads 512
 * contiguous bytes (two neighbouring quads a thread read half of each sector per load: so the
 * ReLU ran at 3.05 TB/s on an H200, where the add, one quad a thread, ran at 4.1). run1 does the
 * tail. */
template <typename Op>
__global__ void mm_ew2_kernel(Op op, int64_t n, int vec)
{
    int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    int64_t n4 = vec ? n / 4 : 0;
    for (int64_t j = tid; j < n4; j += 2 * stride) {
        typename Op::held a, b;
        bool two = j + stride < n4;
        op.load4(4 * j, a);
        if (two) op.load4(4 * (j + stride), b);
        op.store4(4 * j, a);
        if (two) op.store4(4 * (j + stride), b);
    }
    for (int64_t i = n4 * 4 + tid; i < n; i += stride) op.run1(i);
}

template <typename Op>
static void mm_ew2_launch(const Op &op, int64_t n, bool vec, cudaStream_t st)
{
    if (n <= 0) return;
    unsigned blocks = mm_blocks_for(vec ? (n + 7) / 8 : n);
    mm_ew2_kernel<Op><<<blocks, MM_THREADS, 0, st>>>(op, n, vec ? 1 : 0);
    MM_CUDA_CHECK_LAUNCH();
}

/* ---- dtype dispatch: calls f with a value of the storage type (float or mm_bf16) ---- */
template <typename F>
static void mm_dispatch_float(mm_dtype t, F f)
{
    if (t == MM_F32) f(float(0));
    else if (t == MM_BF16) f(mm_bf16(0.0f));
    else mm_die_at(__FILE__, __LINE__, "unsupported dtype", mm_dtype_name(t),
                   "activations on CUDA are F32 or BF16: a bug in the planner or the backend");
}

/* The same for two storage types: f(a, b) with a value of ta's type and one of tb's. */
template <typename F>
static void mm_dispatch_float2(mm_dtype ta, mm_dtype tb, F f)
{
    mm_dispatch_float(ta, [&](auto a) { mm_dispatch_float(tb, [&](auto b) { f(a, b); }); });
}

#endif
