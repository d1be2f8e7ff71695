/* CPU reference kernels: the executable specification every other backend is checked against.
 *
 * Conventions (kept by every kernel, CPU and CUDA):
 *  - argument order: outputs, inputs, saved tensors, parameters, sizes; a shape comment on every
 *    pointer; activations NHWC, convolution weights OHWI, dense weights [out, in] (PyTorch's);
 *  - parameter gradients ACCUMULATE (+=): callers zero them once per step;
 *  - activation gradients are WRITTEN (=);
 *  - where a comment says "may alias", the output may be the same buffer as that input (the memory
 *    planner runs those ops in place); everything else must not alias.
 *  - `ws` is scratch memory of at least the matching *_workspace() bytes, owned by the planner. */
#ifndef MM_CPU_KERNELS_H
#define MM_CPU_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../dims.h"

/* ---- convolution (stride, zero padding, any kernel size; 1x1 stride 1 runs as one GEMM) ---- */
/* Workspace bytes of the forward and filter-gradient passes, and of the data gradient. */
size_t mm_cpu_conv2d_workspace(const mm_conv_dims *d);
size_t mm_cpu_conv2d_backward_data_workspace(const mm_conv_dims *d);
void mm_cpu_conv2d_forward(float *y,       /* [n,oh,ow,k] */
                           const float *x, /* [n,h,w,c] */
                           const float *w, /* [k,r,s,c] */
                           const float *b, /* [k] or NULL */
                           const mm_conv_dims *d, void *ws);
void mm_cpu_conv2d_backward_data(float *dx,       /* [n,h,w,c] written */
                                 const float *dy, /* [n,oh,ow,k] */
                                 const float *w,  /* [k,r,s,c] */
                                 const mm_conv_dims *d, void *ws);
void mm_cpu_conv2d_backward_filter(float *dw,       /* [k,r,s,c] accumulated */
                                   const float *dy, /* [n,oh,ow,k] */
                                   const float *x,  /* [n,h,w,c] */
                                   const mm_conv_dims *d, void *ws);
void mm_cpu_conv2d_backward_bias(float *db,       /* [k] accumulated */
                                 const float *dy, /* [n,oh,ow,k] */
                                 const mm_conv_dims *d);
/* The same sums for dy seen as [rows, c] (a bias gradient folded into the node that writes dy). */
void mm_cpu_bias_grad_add(float *db /* [c] accumulated */, const float *dy /* [rows,c] */,
                          int64_t rows, int c);

/* ---- batch norm over the m = n*h*w rows of an NHWC tensor with c channels ---- */
/* Every forward below may finish a residual join in the same pass (graph.h fuse_residual): with
 * residual non-NULL it is added to the normalised value, then with relu the result is clamped at
 * 0; bitwise what mm_cpu_add and mm_cpu_relu_forward give after the plain batch norm. y may
 * alias x or the residual. */
/* Training: normalise with the batch statistics (biased variance), save mean and 1/sqrt(var+eps)
 * for backward, and update the running statistics PyTorch's way:
 * running = (1 - momentum) * running + momentum * batch, with the UNBIASED batch variance. */
void mm_cpu_batchnorm_forward_train(float *y,            /* [m,c] may alias x */
                                    float *save_mean,    /* [c] */
                                    float *save_invstd,  /* [c] */
                                    float *running_mean, /* [c] updated */
                                    float *running_var,  /* [c] updated */
                                    const float *x,      /* [m,c] */
                                    const float *gamma,  /* [c] */
                                    const float *beta,   /* [c] */
                                    int64_t m, int c, float eps, float momentum,
                                    const float *residual /* [m,c] or NULL */, bool relu);
void mm_cpu_batchnorm_forward_eval(float *y,                  /* [m,c] may alias x */
                                   const float *x,            /* [m,c] */
                                   const float *gamma,        /* [c] */
                                   const float *beta,         /* [c] */
                                   const float *running_mean, /* [c] */
                                   const float *running_var,  /* [c] */
                                   int64_t m, int c, float eps,
                                   const float *residual /* [m,c] or NULL */, bool relu);
/* A training forward's output again from its saved statistics (recomputation in the backward
 * pass): y = (x - save_mean) * (gamma * save_invstd) + beta (+ residual), then max(y, 0) when
 * relu. Bitwise what mm_cpu_batchnorm_forward_train (and mm_cpu_relu_forward) wrote. */
void mm_cpu_batchnorm_apply(float *y,                 /* [m,c] may alias x */
                            const float *x,           /* [m,c] */
                            const float *gamma,       /* [c] */
                            const float *beta,        /* [c] */
                            const float *save_mean,   /* [c] */
                            const float *save_invstd, /* [c] */
                            int64_t m, int c, const float *residual /* [m,c] or NULL */,
                            bool relu);
/* dgamma/dbeta may be NULL (frozen); dx may be NULL (nothing upstream needs it). With relu_out
 * or relu_bits non-NULL the kernel first does the backward of a ReLU that followed the batch
 * norm: the gradient it uses is dy where relu_out > 0 (or its bit is set), else 0 (bitwise what
 * mm_cpu_relu_backward and mm_cpu_relu_backward_bits give). */
void mm_cpu_batchnorm_backward(float *dx,                /* [m,c] written, may alias dy */
                               float *dgamma,            /* [c] accumulated */
                               float *dbeta,             /* [c] accumulated */
                               const float *dy,          /* [m,c] */
                               const float *relu_out,    /* [m,c] or NULL */
                               const uint8_t *relu_bits, /* relu_out > 0 as bits, or NULL */
                               const float *x,           /* [m,c] */
                               const float *gamma,       /* [c] */
                               const float *save_mean,   /* [c] */
                               const float *save_invstd, /* [c] */
                               int64_t m, int c);

/* ---- element-wise ---- */
void mm_cpu_relu_forward(float *y /* [n] may alias x */, const float *x /* [n] */, int64_t n);
/* Uses the OUTPUT y (so the forward may run in place): dx = dy where y > 0, else 0. */
void mm_cpu_relu_backward(float *dx /* [n] may alias dy */, const float *dy /* [n] */,
                          const float *y /* [n] */, int64_t n);
/* bits: bit i % 8 of byte i / 8 is y[i] > 0 (runtime/relu_mask.c); dx = dy where the bit is set,
 * else 0 (may alias dy). */
void mm_cpu_relu_mask(uint8_t *bits /* [(n + 7) / 8] */, const float *y /* [n] */, int64_t n);
void mm_cpu_relu_backward_bits(float *dx /* [n] */, const float *dy /* [n] */,
                               const uint8_t *bits /* [(n + 7) / 8] */, int64_t n);
void mm_cpu_add(float *y /* [n] may alias a or b */, const float *a /* [n] */,
                const float *b /* [n] */, int64_t n);
void mm_cpu_scale(float *y /* [n] may alias x */, const float *x /* [n] */, float alpha, int64_t n);

/* ---- pooling ---- */
/* Ties go to the first maximum in window order (row-major), as PyTorch does; a NaN is always
 * taken. argmax (NULL: not wanted) gets the window tap ky * kw + kx of each output's maximum:
 * the backward needs it instead of x (windows of at most 256 pixels). */
void mm_cpu_maxpool_forward(float *y /* [n,oh,ow,c] */, uint8_t *argmax /* [n,oh,ow,c] or NULL */,
                            const float *x /* [n,h,w,c] */, const mm_pool_dims *d);
/* dx = the gradient dy sent to each window's maximum; with d->relu_mask, only where the pool's
 * output y is > 0 (the backward of a ReLU right before the pool, folded in). */
void mm_cpu_maxpool_backward(float *dx,              /* [n,h,w,c] written */
                             const float *dy,        /* [n,oh,ow,c] */
                             const uint8_t *argmax,  /* [n,oh,ow,c] from the forward */
                             const float *y,         /* [n,oh,ow,c] with relu_mask, else NULL */
                             const mm_pool_dims *d);
void mm_cpu_avgpool_forward(float *y /* [n,oh,ow,c] */, const float *x /* [n,h,w,c] */,
                            const mm_pool_dims *d);
void mm_cpu_avgpool_backward(float *dx /* [n,h,w,c] written */, const float *dy /* [n,oh,ow,c] */,
                             const mm_pool_dims *d);
/* PyTorch's AdaptiveAvgPool2d: output cell (i,j) averages rows floor(i*h/oh) .. ceil((i+1)*h/oh)-1
 * and likewise columns. Only n,h,w,c,oh,ow of d are used. */
void mm_cpu_adaptive_avgpool_forward(float *y /* [n,oh,ow,c] */, const float *x /* [n,h,w,c] */,
                                     const mm_pool_dims *d);
void mm_cpu_adaptive_avgpool_backward(float *dx /* [n,h,w,c] written */,
                                      const float *dy /* [n,oh,ow,c] */, const mm_pool_dims *d);
/* Global average pooling: [n,h,w,c] -> [n,c]. */
void mm_cpu_global_avgpool_forward(float *y /* [n,c] */, const float *x /* [n,hw,c] */, int n,
                                   int64_t hw, int c);
void mm_cpu_global_avgpool_backward(float *dx /* [n,hw,c] written */, const float *dy /* [n,c] */,
                                    int n, int64_t hw, int c);

/* ---- dense: y = x W^T + b ---- */
void mm_cpu_dense_forward(float *y /* [n,o] */, const float *x /* [n,k] */,
                          const float *w /* [o,k] */, const float *b /* [o] or NULL */, int n, int k,
                          int o);
void mm_cpu_dense_backward_data(float *dx /* [n,k] written */, const float *dy /* [n,o] */,
                                const float *w /* [o,k] */, int n, int k, int o);
void mm_cpu_dense_backward_weight(float *dw /* [o,k] accumulated */,
                                  float *db /* [o] accumulated, or NULL */,
                                  const float *dy /* [n,o] */, const float *x /* [n,k] */, int n,
                                  int k, int o);

/* ---- dropout: keep with probability 1-p, scale kept values by 1/(1-p) ----
 * Element i is kept when mm_philox_uniform(seed, i) >= p, so the mask is the same on every backend. */
void mm_cpu_dropout_forward(float *y /* [n] may alias x */, uint8_t *mask /* [n] */,
                            const float *x /* [n] */, int64_t n, float p, uint64_t seed);
void mm_cpu_dropout_backward(float *dx /* [n] may alias dy */, const float *dy /* [n] */,
                             const uint8_t *mask /* [n] */, int64_t n, float p);

/* ---- softmax and the weighted cross-entropy loss ---- */
void mm_cpu_softmax(float *y /* [n,c] */, const float *x /* [n,c] */, int n, int c);
/* loss = sum_i w_i * (-log softmax(x_i)[label_i]) / sum_i w_i  (w = 1 when weights is NULL).
 * A sum of weights of 0 gives loss 0 and zero gradients. Labels outside [0,c) are a tier-2 error
 * (the data layer validates them). */
void mm_cpu_softmax_xent_forward(float *loss /* [1] */, float *probs /* [n,c] */,
                                 const float *logits /* [n,c] */, const int32_t *labels /* [n] */,
                                 const float *weights /* [n] or NULL */, int n, int c);
/* dlogits = dloss * w_i * (probs_i - onehot_i) / sum w. */
void mm_cpu_softmax_xent_backward(float *dlogits /* [n,c] written */,
                                  const float *probs /* [n,c] */, const int32_t *labels /* [n] */,
                                  const float *weights /* [n] or NULL */, float dloss, int n, int c);

/* ---- flips of an NHWC tensor: axis 1 = vertical (rows), axis 2 = horizontal (columns) ---- */
void mm_cpu_flip(float *y /* [n,h,w,c] */, const float *x /* [n,h,w,c] */, int n, int h, int w,
                 int c, int axis);

/* ---- optimizers over flat buffers (the update math lives in ../optim_math.h) ----
 * Semantics are torch.optim's. Hyperparameters are double, like PyTorch's Python floats: 1 - beta2
 * must be computed from 0.999, not from 0.999f (that alone is a 1.3e-5 relative error in v). */
typedef struct mm_adam_params {
    double lr, beta1, beta2, eps;
    double weight_decay;   /* L2 (added to the gradient) or decoupled (AdamW), see below */
    int decoupled;         /* 1: p -= lr * wd * p before the Adam step (AdamW) */
    int64_t step;          /* 1-based, for bias correction */
} mm_adam_params;
/* m and v start at zero. */
void mm_cpu_adam(float *p, float *m, float *v, const float *g, int64_t n, const mm_adam_params *a);

typedef struct mm_sgd_params {
    double lr, momentum, weight_decay; /* dampening is 0 */
    int nesterov;
} mm_sgd_params;
/* buf (the momentum buffer) starts at zero; it may be NULL when momentum is 0. */
void mm_cpu_sgd(float *p, float *buf, const float *g, int64_t n, const mm_sgd_params *s);
/* Micro-batch `micro` of `steps` of gradient accumulation over n elements (optim_math.h). */
void mm_cpu_grad_accumulate(float *acc, float *g, int64_t n, int micro, int steps);

#endif
