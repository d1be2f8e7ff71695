/* Per-element optimizer updates, shared by the CPU kernels (kernels/cpu/optim.c) and the CUDA
 * fused kernels, so both backends run the same math in the same order.
 *
 * Semantics are PyTorch's (torch 1.13, single-tensor path), step t 1-based:
 *   Adam:  g += wd * p                                   (L2 weight decay, when wd != 0)
 *          m = beta1 * m + (1 - beta1) * g
 *          v = beta2 * v + (1 - beta2) * g * g
 *          denom = sqrt(v) / sqrt(1 - beta2^t) + eps
 *          p += (-lr / (1 - beta1^t)) * m / denom
 *   AdamW: p *= 1 - lr * wd first (decoupled weight decay), then the same without the L2 term.
 *   SGD:   g += wd * p                                   (when wd != 0)
 *          buf = momentum * buf + g                      (dampening 0; when momentum != 0;
 *          g = nesterov ? g + momentum * buf : buf        buf starts at zero, which equals
 *                                                         PyTorch's buf = g on the first step)
 *          p -= lr * g
 *
 * Rounding: every operation is a separately rounded fp32 operation, in the order written. On the
 * device the MM_F* macros use the IEEE round-to-nearest intrinsics, which nvcc never contracts into
 * FMAs (even with --use_fast_math), so a CUDA update is bitwise the CPU one. (PyTorch itself is
 * not bitwise reproducible here: its vectorised add-with-alpha uses FMA, its scalar tail does not.)
 * On the host, x86-64 without -march has no FMA; builds for FMA targets should pass
 * -ffp-contract=off to keep CPU results bitwise identical to CUDA's.
 *
 * The per-step scalars (bias corrections, 1 - beta, products of hyperparameters) are computed once
 * per step on the host in double precision from double hyperparameters, as PyTorch computes them
 * in Python, then rounded to float. */
#ifndef MM_OPTIM_MATH_H
#define MM_OPTIM_MATH_H

#include <math.h>
#include <stdint.h>

#ifndef MM_HD /* the same definition as kernels/philox.h */
#ifdef __CUDACC__
#define MM_HD __host__ __device__ __forceinline__
#else
#define MM_HD static inline
#endif
#endif

#ifdef __CUDA_ARCH__
#define MM_FADD(a, b) __fadd_rn((a), (b))
#define MM_FMUL(a, b) __fmul_rn((a), (b))
#define MM_FDIV(a, b) __fdiv_rn((a), (b))
#define MM_FSQRT(a) __fsqrt_rn(a)
#else
#define MM_FADD(a, b) ((a) + (b))
#define MM_FMUL(a, b) ((a) * (b))
#define MM_FDIV(a, b) ((a) / (b))
#define MM_FSQRT(a) sqrtf(a)
#endif

/* ---- Adam / AdamW ---- */

typedef struct mm_adam_coeffs {
    float beta1, beta2;
    float one_minus_beta1, one_minus_beta2;
    float eps;
    float l2;            /* Adam: weight decay added to the gradient; 0 for AdamW */
    float decay;         /* AdamW: 1 - lr * wd, the factor applied to p first */
    float neg_step_size; /* -lr / (1 - beta1^t) */
    float bc2_sqrt;      /* sqrt(1 - beta2^t) */
    int decoupled;       /* 1: AdamW */
} mm_adam_coeffs;

/* The scalars of step `step` (1-based). Host only. */
static inline mm_adam_coeffs mm_adam_coeffs_make(double lr, double beta1, double beta2,
                                                 double eps, double weight_decay, int decoupled,
                                                 int64_t step)
{
    mm_adam_coeffs c;
    double t = (double)step;
    c.beta1 = (float)beta1;
    c.beta2 = (float)beta2;
    c.one_minus_beta1 = (float)(1.0 - beta1);
    c.one_minus_beta2 = (float)(1.0 - beta2);
    c.eps = (float)eps;
    c.decoupled = decoupled != 0;
    c.l2 = decoupled ? 0.0f : (float)weight_decay;
    c.decay = decoupled ? (float)(1.0 - lr * weight_decay) : 1.0f;
    c.neg_step_size = (float)(-lr / (1.0 - pow(beta1, t)));
    c.bc2_sqrt = (float)sqrt(1.0 - pow(beta2, t));
    return c;
}

/* One element: p, m, v updated in place from gradient g. */
MM_HD void mm_adam_update(float *p, float *m, float *v, float g, const mm_adam_coeffs *c)
{
    float pv = *p;
    if (c->decoupled) pv = MM_FMUL(pv, c->decay);
    else if (c->l2 != 0.0f) g = MM_FADD(g, MM_FMUL(c->l2, pv));
    float mv = MM_FADD(MM_FMUL(*m, c->beta1), MM_FMUL(c->one_minus_beta1, g));
    float vv = MM_FADD(MM_FMUL(*v, c->beta2), MM_FMUL(MM_FMUL(c->one_minus_beta2, g), g));
    float denom = MM_FADD(MM_FDIV(MM_FSQRT(vv), c->bc2_sqrt), c->eps);
    *m = mv;
    *v = vv;
    *p = MM_FADD(pv, MM_FDIV(MM_FMUL(c->neg_step_size, mv), denom));
}

/* ---- SGD with momentum (dampening 0) and Nesterov ---- */

typedef struct mm_sgd_coeffs {
    float neg_lr, momentum, weight_decay;
    int nesterov;
} mm_sgd_coeffs;

static inline mm_sgd_coeffs mm_sgd_coeffs_make(double lr, double momentum, double weight_decay,
                                               int nesterov)
{
    mm_sgd_coeffs c;
    c.neg_lr = (float)-lr;
    c.momentum = (float)momentum;
    c.weight_decay = (float)weight_decay;
    c.nesterov = nesterov != 0;
    return c;
}

/* One element: p (and buf, when momentum != 0; buf may be NULL otherwise) updated in place. */
MM_HD void mm_sgd_update(float *p, float *buf, float g, const mm_sgd_coeffs *c)
{
    float pv = *p;
    if (c->weight_decay != 0.0f) g = MM_FADD(g, MM_FMUL(c->weight_decay, pv));
    if (c->momentum != 0.0f) {
        float b = MM_FADD(MM_FMUL(*buf, c->momentum), g);
        *buf = b;
        g = c->nesterov ? MM_FADD(g, MM_FMUL(c->momentum, b)) : b;
    }
    *p = MM_FADD(pv, MM_FMUL(c->neg_lr, g));
}

/* Gradient accumulation over `steps` >= 2 micro-batches, one element: micro-batch 0 keeps its
 * gradient in acc, the middle ones add theirs, the last writes the mean into g: the sum in
 * micro-batch order, then divided, exactly as data-parallel replicas average theirs
 * (runtime/dist.h), so K micro-batches train as K replicas. */
MM_HD void mm_grad_accumulate(float *acc, float *g, int micro, int steps)
{
    if (micro == 0) *acc = *g;
    else if (micro < steps - 1) *acc = MM_FADD(*acc, *g);
    else *g = MM_FDIV(MM_FADD(*acc, *g), (float)steps);
}

#endif
