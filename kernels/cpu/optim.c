/* CPU optimizer updates over flat buffers: Adam/AdamW, SGD (momentum, Nesterov) and gradient
 * accumulation. The math per
 * element is in ../optim_math.h, shared with the CUDA fused kernels; here it is only spread over
 * OpenMP threads. */
#include <stdint.h>

#include "../../runtime/error.h"
#include "../optim_math.h"
#include "cpu_internal.h"
#include "cpu_kernels.h"

/* The loops over a thread's span, the coefficients copied so they are known loop-invariant. */
MM_CPU_VECTOR static void adam_range(float *p, float *m, float *v, const float *g,
                                     const mm_adam_coeffs *coeffs, int64_t lo, int64_t hi)
{
    const mm_adam_coeffs c = *coeffs;
#pragma omp simd
    for (int64_t i = lo; i < hi; i++) mm_adam_update(&p[i], &m[i], &v[i], g[i], &c);
}

MM_CPU_VECTOR static void sgd_range(float *p, float *buf, const float *g,
                                    const mm_sgd_coeffs *coeffs, int64_t lo, int64_t hi)
{
    const mm_sgd_coeffs c = *coeffs;
    if (buf) {
#pragma omp simd
        for (int64_t i = lo; i < hi; i++) mm_sgd_update(&p[i], &buf[i], g[i], &c);
    } else {
#pragma omp simd
        for (int64_t i = lo; i < hi; i++) mm_sgd_update(&p[i], NULL, g[i], &c);
    }
}

void mm_cpu_adam(float *p, float *m, float *v, const float *g, int64_t n, const mm_adam_params *a)
{
    MM_ASSERT(a->step >= 1);
    const mm_adam_coeffs c = mm_adam_coeffs_make(a->lr, a->beta1, a->beta2, a->eps,
                                                 a->weight_decay, a->decoupled, a->step);
    MM_CPU_SPANS(n, n, adam_range(p, m, v, g, &c, lo_, hi_));
}

MM_CPU_VECTOR static void accumulate_range(float *acc, float *g, int micro, int steps,
                                           int64_t lo, int64_t hi)
{
#pragma omp simd
    for (int64_t i = lo; i < hi; i++) mm_grad_accumulate(&acc[i], &g[i], micro, steps);
}

void mm_cpu_grad_accumulate(float *acc, float *g, int64_t n, int micro, int steps)
{
    MM_ASSERT(steps >= 2 && micro >= 0 && micro < steps);
    MM_CPU_SPANS(n, n, accumulate_range(acc, g, micro, steps, lo_, hi_));
}

void mm_cpu_sgd(float *p, float *buf, const float *g, int64_t n, const mm_sgd_params *s)
{
    MM_ASSERT(buf != NULL || s->momentum == 0.0f);
    const mm_sgd_coeffs c = mm_sgd_coeffs_make(s->lr, s->momentum, s->weight_decay, s->nesterov);
    MM_CPU_SPANS(n, n, sgd_range(p, s->momentum != 0.0f ? buf : NULL, g, &c, lo_, hi_));
}
