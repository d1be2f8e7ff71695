/* Random 16-bit test images, shared by test_loader.c and test_augment.c. Header-only. */
#ifndef MM_TEST_RANDOM_PIXELS_H
#define MM_TEST_RANDOM_PIXELS_H

#include <stdint.h>
#include <stdlib.h>

#include "kernels/philox.h"

/* n pixels, each the low 16 bits of Philox(seed, i); malloc'ed. */
static inline uint16_t *random_u16(int n, uint64_t seed)
{
    uint16_t *x = malloc((size_t)n * sizeof *x);
    for (int i = 0; i < n; i++) x[i] = (uint16_t)(mm_philox_u32(seed, (uint64_t)i) & 0xffff);
    return x;
}

#endif
