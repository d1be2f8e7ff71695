/* Fused optimizer updates over the flat fp32 parameter, gradient and moment buffers: one kernel
 * per step for the whole model. The per-element math is ../optim_math.h, shared with the CPU
 * kernels, so an update is bitwise the CPU's; the step's scalars arrive precomputed. */
#include "cuda_common.cuh"
#include "cuda_kernels.h"

struct mm_adam_op {
    float *p, *m, *v;
    const float *g;
    mm_adam_coeffs c;
    __device__ void run4(int64_t i) const
    {
        float a[4], b[4], e[4], d[4];
        mm_ld4(p, i, a);
        mm_ld4(m, i, b);
        mm_ld4(v, i, e);
        mm_ld4(g, i, d);
        for (int k = 0; k < 4; k++) mm_adam_update(&a[k], &b[k], &e[k], d[k], &c);
        mm_st4(p, i, a);
        mm_st4(m, i, b);
        mm_st4(v, i, e);
    }
    __device__ void run1(int64_t i) const { mm_adam_update(&p[i], &m[i], &v[i], g[i], &c); }
};

void mm_cuda_adam(float *p, float *m, float *v, const float *g, int64_t n,
                  const mm_adam_coeffs *c, cudaStream_t st)
{
    mm_adam_op op{p, m, v, g, *c};
    bool vec = mm_aligned16(p) && mm_aligned16(m) && mm_aligned16(v) && mm_aligned16(g);
    mm_ew_launch(op, n, vec, st);
}

struct mm_sgd_op {
    float *p, *buf;
    const float *g;
    mm_sgd_coeffs c;
    __device__ void run1(int64_t i) const { mm_sgd_update(&p[i], buf ? &buf[i] : NULL, g[i], &c); }
    __device__ void run4(int64_t i) const
    {
        for (int k = 0; k < 4; k++) run1(i + k);
    }
};

struct mm_accumulate_op {
    float *acc, *g;
    int micro, steps;
    __device__ void run1(int64_t i) const { mm_grad_accumulate(&acc[i], &g[i], micro, steps); }
    __device__ void run4(int64_t i) const
    {
        float a[4], b[4];
        mm_ld4(acc, i, a);
        mm_ld4(g, i, b);
        for (int k = 0; k < 4; k++) mm_grad_accumulate(&a[k], &b[k], micro, steps);
        if (micro < steps - 1) mm_st4(acc, i, a);
        else mm_st4(g, i, b);
    }
};

void mm_cuda_grad_accumulate(float *acc, float *g, int64_t n, int micro, int steps,
                             cudaStream_t st)
{
    MM_CU_ASSERT(steps >= 2 && micro >= 0 && micro < steps);
    mm_accumulate_op op{acc, g, micro, steps};
    mm_ew_launch(op, n, mm_aligned16(acc) && mm_aligned16(g), st);
}

void mm_cuda_sgd(float *p, float *buf, const float *g, int64_t n, const mm_sgd_coeffs *c,
                 cudaStream_t st)
{
    MM_CU_ASSERT(buf != NULL || c->momentum == 0.0f);
    mm_sgd_op op{p, c->momentum != 0.0f ? buf : NULL, g, *c};
    mm_ew_launch(op, n, true, st);
}
