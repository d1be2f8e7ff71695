/* Random streams for the synthetic data generator: Philox (kernels/philox.h) keyed by a 64-bit
 * stream id and read sequentially. Sub-streams are derived by hashing (seed, tag, index), so each
 * image, lesion and file draws from its own stream and the output does not depend on the order in
 * which threads run. Internal to tools/synth_*.c. */
#ifndef MM_SYNTH_RNG_H
#define MM_SYNTH_RNG_H

#include <math.h>
#include <stdint.h>

#include "../kernels/philox.h"

typedef struct mm_srng {
    uint64_t key, ctr;
} mm_srng;

/* A 64-bit key for stream (seed, tag, index). */
static inline uint64_t mm_srng_key(uint64_t seed, uint32_t tag, uint64_t index)
{
    mm_philox_out o = mm_philox4x32(seed ^ ((uint64_t)tag * 0x9E3779B97F4A7C15ull), index);
    return (uint64_t)o.v[0] | ((uint64_t)o.v[1] << 32);
}

static inline mm_srng mm_srng_make(uint64_t seed, uint32_t tag, uint64_t index)
{
    mm_srng r = {mm_srng_key(seed, tag, index), 0};
    return r;
}

static inline uint32_t mm_srng_u32(mm_srng *r) { return mm_philox_u32(r->key, r->ctr++); }

static inline uint64_t mm_srng_u64(mm_srng *r)
{
    uint64_t a = mm_srng_u32(r);
    return a | ((uint64_t)mm_srng_u32(r) << 32);
}

/* Uniform in [0, 1) with 53 random bits. */
static inline double mm_srng_unif(mm_srng *r)
{
    return (double)(mm_srng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

static inline double mm_srng_range(mm_srng *r, double lo, double hi)
{
    return lo + (hi - lo) * mm_srng_unif(r);
}

/* Integer in [lo, hi]. */
static inline int mm_srng_int(mm_srng *r, int lo, int hi)
{
    return lo + (int)(mm_srng_unif(r) * (double)(hi - lo + 1));
}

static inline int mm_srng_bern(mm_srng *r, double p) { return mm_srng_unif(r) < p; }

/* Standard normal (Box-Muller). */
static inline double mm_srng_normal(mm_srng *r)
{
    double u1 = mm_srng_unif(r), u2 = mm_srng_unif(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Stream tags, one per purpose. */
enum {
    MM_TAG_PLAN = 1,
    MM_TAG_IMAGE,
    MM_TAG_BREAST,
    MM_TAG_TEXTURE,
    MM_TAG_DENSITY,
    MM_TAG_NOISE,
    MM_TAG_FILM,
    MM_TAG_LESION,
    MM_TAG_UID,
    MM_TAG_NAMES,
};

#endif
