/* CPU element-wise kernels: ReLU, add, scale, dropout. Each element is read before it is written,
 * so every "may alias" output works in place. */
#include "../philox.h"
#include "cpu_internal.h"
#include "cpu_kernels.h"

MM_CPU_VECTOR static void relu_range(float *y, const float *x, int64_t lo, int64_t hi)
{
#pragma omp simd
    for (int64_t i = lo; i < hi; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

MM_CPU_VECTOR static void relu_bwd_range(float *dx, const float *dy, const float *y, int64_t lo,
                                         int64_t hi)
{
#pragma omp simd
    for (int64_t i = lo; i < hi; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

/* lo is a multiple of 8 (spans are of 16): each byte of bits belongs to one range. */
MM_CPU_VECTOR static void relu_mask_range(uint8_t *bits, const float *y, int64_t lo, int64_t hi)
{
    for (int64_t i = lo; i < hi; i += 8) {
        unsigned b = 0;
        for (int k = 0; k < 8 && i + k < hi; k++) b |= (y[i + k] > 0.0f ? 1u : 0u) << k;
        bits[i / 8] = (uint8_t)b;
    }
}

MM_CPU_VECTOR static void relu_bwd_bits_range(float *dx, const float *dy, const uint8_t *bits,
                                              int64_t lo, int64_t hi)
{
#pragma omp simd
    for (int64_t i = lo; i < hi; i++) dx[i] = (bits[i >> 3] >> (i & 7)) & 1 ? dy[i] : 0.0f;
}

MM_CPU_VECTOR static void add_range(float *y, const float *a, const float *b, int64_t lo,
                                    int64_t hi)
{
#pragma omp simd
    for (int64_t i = lo; i < hi; i++) y[i] = a[i] + b[i];
}

MM_CPU_VECTOR static void scale_range(float *y, const float *x, float alpha, int64_t lo,
                                      int64_t hi)
{
#pragma omp simd
    for (int64_t i = lo; i < hi; i++) y[i] = alpha * x[i];
}

void mm_cpu_relu_forward(float *y, const float *x, int64_t n)
{
    MM_CPU_SPANS(n, n, relu_range(y, x, lo_, hi_));
}

void mm_cpu_relu_backward(float *dx, const float *dy, const float *y, int64_t n)
{
    MM_CPU_SPANS(n, n, relu_bwd_range(dx, dy, y, lo_, hi_));
}

void mm_cpu_relu_mask(uint8_t *bits, const float *y, int64_t n)
{
    MM_CPU_SPANS(n, n, relu_mask_range(bits, y, lo_, hi_));
}

void mm_cpu_relu_backward_bits(float *dx, const float *dy, const uint8_t *bits, int64_t n)
{
    MM_CPU_SPANS(n, n, relu_bwd_bits_range(dx, dy, bits, lo_, hi_));
}

void mm_cpu_add(float *y, const float *a, const float *b, int64_t n)
{
    MM_CPU_SPANS(n, n, add_range(y, a, b, lo_, hi_));
}

void mm_cpu_scale(float *y, const float *x, float alpha, int64_t n)
{
    MM_CPU_SPANS(n, n, scale_range(y, x, alpha, lo_, hi_));
}

/* Philox gives 4 words per counter value, so the loop walks blocks of 4 elements: element i uses
 * word i & 3 of counter i >> 2, exactly mm_philox_uniform(seed, i). p >= 1 drops everything. */
void mm_cpu_dropout_forward(float *y, uint8_t *mask, const float *x, int64_t n, float p,
                            uint64_t seed)
{
    float keep_scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    int64_t nblocks = (n + 3) / 4;
#pragma omp parallel for schedule(static)
    for (int64_t blk = 0; blk < nblocks; blk++) {
        mm_philox_out r = mm_philox4x32(seed, (uint64_t)blk);
        for (int j = 0; j < 4; j++) {
            int64_t i = blk * 4 + j;
            if (i >= n) break;
            float u = (float)(r.v[j] >> 8) * (1.0f / 16777216.0f);
            uint8_t keep = p < 1.0f && u >= p;
            mask[i] = keep;
            y[i] = keep ? x[i] * keep_scale : 0.0f;
        }
    }
}

void mm_cpu_dropout_backward(float *dx, const float *dy, const uint8_t *mask, int64_t n, float p)
{
    float keep_scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) dx[i] = mask[i] ? dy[i] * keep_scale : 0.0f;
}
