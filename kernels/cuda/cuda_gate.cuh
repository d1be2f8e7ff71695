/* Which elements of a gradient pass a ReLU's backward (.cu only): the gate of element i is open
 * where the ReLU's output y[i] > 0 (NaN closes it), read from y itself or from its sign bits
 * (bit i % 8 of byte i / 8, runtime/relu_mask.c), or always (no ReLU). The ReLU backward
 * (elementwise.cu) and the kernels that fold one in (bn.cu's backward, reduce.cu's bias
 * gradient) take the gate as a template parameter, so the open-always case costs nothing. on4
 * takes an index divisible by 4 (its four bits then share a byte); aligned() says whether the
 * 4-wide path may read the gate's buffer. */
#ifndef MM_CUDA_GATE_CUH
#define MM_CUDA_GATE_CUH

#include "cuda_common.cuh"

struct mm_gate_none {
    __device__ bool on(int64_t) const { return true; }
    __device__ void on4(int64_t, bool m[4]) const { m[0] = m[1] = m[2] = m[3] = true; }
    bool aligned() const { return true; }
};

template <typename TY>
struct mm_gate_y {
    const TY *y;
    __device__ bool on(int64_t i) const { return mm_ld(y, i) > 0.0f; }
    __device__ void on4(int64_t i, bool m[4]) const
    {
        float v[4];
        mm_ld4(y, i, v);
        for (int k = 0; k < 4; k++) m[k] = v[k] > 0.0f;
    }
    bool aligned() const { return mm_aligned16(y); }
};

struct mm_gate_bits {
    const uint8_t *bits;
    __device__ bool on(int64_t i) const { return (bits[i >> 3] >> (i & 7)) & 1; }
    __device__ void on4(int64_t i, bool m[4]) const
    {
        unsigned b = bits[i >> 3] >> (i & 7);
        for (int k = 0; k < 4; k++) m[k] = (b >> k) & 1;
    }
    bool aligned() const { return true; }
};

/* Calls f with the gate of (y of type ty, or bits): bits when given, else y, else none. */
template <typename F>
static void mm_dispatch_gate(const void *y, mm_dtype ty, const uint8_t *bits, F f)
{
    if (bits) {
        f(mm_gate_bits{bits});
    } else if (y) {
        mm_dispatch_float(ty, [&](auto yt) {
            using TY = decltype(yt);
            f(mm_gate_y<TY>{(const TY *)y});
        });
    } else {
        f(mm_gate_none{});
    }
}

#endif
