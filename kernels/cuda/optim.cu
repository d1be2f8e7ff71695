/* Fused optimizer updates over the flat fp32 parameter, gradient and moment buffers: one kernel
 * per step for the whole model. Semantics (PyTorch's Adam/AdamW and SGD): cuda_kernels.h. The
 * step-dependent scalars (bias corrections) are computed on the host in double. */
#include <math.h>

#include "cuda_common.cuh"
#include "cuda_kernels.h"

struct mm_adam_op {
    float *p, *m, *v;
    const float *g;
    float beta1, beta2, eps, wd, decay; /* decay: 1 - lr*wd for AdamW, else 1 */
    float step_size;                    /* lr / (1 - beta1^t) */
    float inv_bc2_sqrt;                 /* 1 / sqrt(1 - beta2^t) */
    int l2;                             /* add wd*p to the gradient (Adam's weight decay) */
    __device__ void one(float &pp, float &mm, float &vv, float gg) const
    {
        if (l2) gg += wd * pp;
        pp *= decay;
        mm = beta1 * mm + (1.0f - beta1) * gg;
        vv = beta2 * vv + (1.0f - beta2) * gg * gg;
        float denom = sqrtf(vv) * inv_bc2_sqrt + eps;
        pp -= step_size * (mm / denom);
    }
    __device__ void run4(int64_t i) const
    {
        float a[4], b[4], c[4], d[4];
        mm_ld4(p, i, a);
        mm_ld4(m, i, b);
        mm_ld4(v, i, c);
        mm_ld4(g, i, d);
        for (int k = 0; k < 4; k++) one(a[k], b[k], c[k], d[k]);
        mm_st4(p, i, a);
        mm_st4(m, i, b);
        mm_st4(v, i, c);
    }
    __device__ void run1(int64_t i) const { one(p[i], m[i], v[i], g[i]); }
};

void mm_cuda_adam(float *p, float *m, float *v, const float *g, int64_t n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, int decoupled, int64_t step,
                  cudaStream_t st)
{
    MM_CU_ASSERT(step >= 1);
    double bc1 = 1.0 - pow((double)beta1, (double)step);
    double bc2 = 1.0 - pow((double)beta2, (double)step);
    mm_adam_op op;
    op.p = p;
    op.m = m;
    op.v = v;
    op.g = g;
    op.beta1 = beta1;
    op.beta2 = beta2;
    op.eps = eps;
    op.wd = weight_decay;
    op.decay = decoupled ? (float)(1.0 - (double)lr * weight_decay) : 1.0f;
    op.step_size = (float)(lr / bc1);
    op.inv_bc2_sqrt = (float)(1.0 / sqrt(bc2));
    op.l2 = !decoupled && weight_decay != 0.0f;
    bool vec = mm_aligned16(p) && mm_aligned16(m) && mm_aligned16(v) && mm_aligned16(g);
    mm_ew_launch(op, n, vec, st);
}

struct mm_sgd_op {
    float *p, *buf;
    const float *g;
    float lr, momentum, wd;
    int nesterov;
    __device__ void run1(int64_t i) const
    {
        float gg = g[i] + wd * p[i];
        if (buf) {
            float b = momentum * buf[i] + gg;
            buf[i] = b;
            gg = nesterov ? gg + momentum * b : b;
        }
        p[i] -= lr * gg;
    }
    __device__ void run4(int64_t i) const
    {
        for (int k = 0; k < 4; k++) run1(i + k);
    }
};

void mm_cuda_sgd(float *p, float *buf, const float *g, int64_t n, float lr, float momentum,
                 float weight_decay, int nesterov, cudaStream_t st)
{
    mm_sgd_op op{p, momentum != 0.0f ? buf : NULL, g, lr, momentum, weight_decay, nesterov};
    mm_ew_launch(op, n, true, st);
}
