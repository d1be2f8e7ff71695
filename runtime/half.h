/* 16-bit floats read as float32 on the host: IEEE half (float16) and bfloat16, as weights saved
 * in them come (safetensors F16/BF16, PyTorch's HalfStorage/BFloat16Storage). Exact: every
 * 16-bit value, subnormals, infinities and NaNs included, is a float32. */
#ifndef MM_HALF_H
#define MM_HALF_H

#include <stdint.h>
#include <string.h>

static inline float mm_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 31, man = h & 1023u, bits;
    if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13); /* inf, nan */
    } else if (exp > 0) {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else { /* subnormal: shift the leading 1 into the implicit bit */
        uint32_t e = 113;
        while (!(man & 1024u)) {
            man <<= 1;
            e--;
        }
        bits = sign | (e << 23) | ((man & 1023u) << 13);
    }
    float v;
    memcpy(&v, &bits, 4);
    return v;
}

static inline float mm_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float v;
    memcpy(&v, &bits, 4);
    return v;
}

#endif
