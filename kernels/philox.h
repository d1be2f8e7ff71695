/* Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011).
 *
 * A counter-based generator: the 128-bit output is a pure function of (key, counter), so the
 * i-th random number of a stream can be computed anywhere, in any order, on the CPU or a GPU
 * thread, with identical results. That is what makes initialisation, dropout masks, sampling
 * and augmentation reproducible and the same on every backend for the same seed.
 *
 * This header is plain C usable from CUDA (MM_HD marks host+device functions). */
#ifndef MM_PHILOX_H
#define MM_PHILOX_H

#include <stdint.h>

#ifdef __CUDACC__
#define MM_HD __host__ __device__ __forceinline__
#else
#define MM_HD static inline
#endif

typedef struct mm_philox_out {
    uint32_t v[4];
} mm_philox_out;

#define MM_PHILOX_M0 0xD2511F53u
#define MM_PHILOX_M1 0xCD9E8D57u
#define MM_PHILOX_W0 0x9E3779B9u
#define MM_PHILOX_W1 0xBB67AE85u

MM_HD void mm_philox_mulhilo(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo)
{
    uint64_t p = (uint64_t)a * (uint64_t)b;
    *hi = (uint32_t)(p >> 32);
    *lo = (uint32_t)p;
}

/* One block of 4 random 32-bit words for (key = seed, counter = (ctr_lo, ctr_hi, 0, 0)). */
MM_HD mm_philox_out mm_philox4x32(uint64_t seed, uint64_t counter)
{
    uint32_t c0 = (uint32_t)counter, c1 = (uint32_t)(counter >> 32), c2 = 0, c3 = 0;
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int round = 0; round < 10; round++) {
        uint32_t hi0, lo0, hi1, lo1;
        mm_philox_mulhilo(MM_PHILOX_M0, c0, &hi0, &lo0);
        mm_philox_mulhilo(MM_PHILOX_M1, c2, &hi1, &lo1);
        uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += MM_PHILOX_W0;
        k1 += MM_PHILOX_W1;
    }
    mm_philox_out out;
    out.v[0] = c0; out.v[1] = c1; out.v[2] = c2; out.v[3] = c3;
    return out;
}

/* The i-th 32-bit word of the stream `seed` (4 words per counter value). */
MM_HD uint32_t mm_philox_u32(uint64_t seed, uint64_t i)
{
    mm_philox_out o = mm_philox4x32(seed, i >> 2);
    return o.v[i & 3];
}

/* Uniform float in [0, 1) with 24 random bits. */
MM_HD float mm_philox_uniform(uint64_t seed, uint64_t i)
{
    return (float)(mm_philox_u32(seed, i) >> 8) * (1.0f / 16777216.0f);
}

#endif
