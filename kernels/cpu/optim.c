/* CPU optimizer updates over flat buffers: Adam/AdamW and SGD (momentum, Nesterov). The math per
 * element is in ../optim_math.h, shared with the CUDA fused kernels; here it is only spread over
 * OpenMP threads. */
#include <stdint.h>

#include "../../runtime/error.h"
#include "../optim_math.h"
#include "cpu_kernels.h"

/* Below this many elements threads cost more than they save. */
#define MM_OPTIM_PARALLEL_MIN 32768

void mm_cpu_adam(float *p, float *m, float *v, const float *g, int64_t n, const mm_adam_params *a)
{
    MM_ASSERT(a->step >= 1);
    const mm_adam_coeffs c = mm_adam_coeffs_make(a->lr, a->beta1, a->beta2, a->eps,
                                                 a->weight_decay, a->decoupled, a->step);
#pragma omp parallel for schedule(static) if (n >= MM_OPTIM_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) mm_adam_update(&p[i], &m[i], &v[i], g[i], &c);
}

void mm_cpu_sgd(float *p, float *buf, const float *g, int64_t n, const mm_sgd_params *s)
{
    MM_ASSERT(buf != NULL || s->momentum == 0.0f);
    const mm_sgd_coeffs c = mm_sgd_coeffs_make(s->lr, s->momentum, s->weight_decay, s->nesterov);
#pragma omp parallel for schedule(static) if (n >= MM_OPTIM_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) mm_sgd_update(&p[i], buf ? &buf[i] : NULL, g[i], &c);
}
