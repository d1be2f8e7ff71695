/* The CUDA backend's own kernels (the .cu files), callable from C. Semantics are those of the CPU
 * reference kernels in ../cpu/cpu_kernels.h, op by op; this header only adds what differs:
 *
 *  - every activation pointer comes with its dtype (MM_F32 or MM_BF16): loads convert to float,
 *    arithmetic is fp32, stores round to the output's dtype (bf16: round to nearest even), so
 *    mixed fp32/bf16 operands need no casts;
 *  - parameters, their gradients, batch-norm statistics, losses and probabilities are float;
 *  - `ws` is device scratch of at least the matching *_workspace() bytes (256-byte aligned);
 *  - everything is queued on `st` and nothing synchronises; nothing allocates.
 * "may alias" has the CPU header's meaning: that output may be the same buffer as that input. */
#ifndef MM_CUDA_KERNELS_H
#define MM_CUDA_KERNELS_H

#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#include "../optim_math.h"

#ifdef __cplusplus
extern "C" {
#endif

#include "../../runtime/tensor.h"
#include "../dims.h"

/* Scratch sizes and offsets round up to 256 bytes, the workspace cursor's alignment. */
static inline size_t mm_cuda_round256(size_t bytes) { return (bytes + 255) & ~(size_t)255; }

/* ---- element-wise (elementwise.cu) ---- */
void mm_cuda_cast(void *y, mm_dtype ty, const void *x, mm_dtype tx, int64_t n, cudaStream_t st);
/* y += x (parameter gradients computed in bf16 accumulate into the fp32 buffer). */
void mm_cuda_accumulate(float *y /* [n] */, const void *x /* [n] */, mm_dtype tx, int64_t n,
                        cudaStream_t st);
void mm_cuda_relu_forward(void *y /* [n] may alias x */, mm_dtype ty, const void *x /* [n] */,
                          mm_dtype tx, int64_t n, cudaStream_t st);
/* dx = dy where y > 0, else 0 (y is the forward OUTPUT). */
void mm_cuda_relu_backward(void *dx /* [n] may alias dy */, mm_dtype tdx, const void *dy /* [n] */,
                           mm_dtype tdy, const void *y /* [n] */, mm_dtype ty, int64_t n,
                           cudaStream_t st);
/* bits: bit i % 8 of byte i / 8 is y[i] > 0 (runtime/relu_mask.c); the backward from them. */
void mm_cuda_relu_mask(uint8_t *bits /* [(n + 7) / 8] */, const void *y /* [n] */, mm_dtype ty,
                       int64_t n, cudaStream_t st);
void mm_cuda_relu_backward_bits(void *dx /* [n] may alias dy */, mm_dtype tdx,
                                const void *dy /* [n] */, mm_dtype tdy, const uint8_t *bits,
                                int64_t n, cudaStream_t st);
void mm_cuda_add(void *y /* [n] may alias a or b */, mm_dtype ty, const void *a /* [n] */,
                 mm_dtype ta, const void *b /* [n] */, mm_dtype tb, int64_t n, cudaStream_t st);
/* Element i is kept when mm_philox_uniform(seed, i) >= p; kept values are scaled by 1/(1-p). */
void mm_cuda_dropout_forward(void *y /* [n] may alias x */, mm_dtype ty, uint8_t *mask /* [n] */,
                             const void *x /* [n] */, mm_dtype tx, int64_t n, float p,
                             uint64_t seed, cudaStream_t st);
void mm_cuda_dropout_backward(void *dx /* [n] may alias dy */, mm_dtype tdx,
                              const void *dy /* [n] */, mm_dtype tdy,
                              const uint8_t *mask /* [n] */, int64_t n, float p, cudaStream_t st);
/* y[i,j] += b[j] in place (convolution bias), then max(y, 0) when relu (fusion). */
void mm_cuda_bias_add(void *y /* [m,c] */, mm_dtype ty, const float *b /* [c] */, int64_t m, int c,
                      int relu, cudaStream_t st);
/* y[i,j] = b[j] (dense: the product is then added with beta = 1). */
void mm_cuda_bias_fill(float *y /* [m,c] */, const float *b /* [c] */, int64_t m, int c,
                       cudaStream_t st);

/* ---- column sums of a row-major [m,c] matrix (reduce.cu): bias gradients ---- */
size_t mm_cuda_colsum_workspace(int64_t m, int c);
/* out[j] += sum_i x[i,j]; deterministic (fixed split and order, no atomics). */
void mm_cuda_colsum_accumulate(float *out /* [c] */, const void *x /* [m,c] */, mm_dtype tx,
                               int64_t m, int c, void *ws, cudaStream_t st);
/* A ReLU backward that also takes the bias gradient of the convolution before the ReLU:
 * dx = dy where the ReLU's output y > 0 (or its bit in bits is set), else 0, and
 * db[j] += sum_i dx[i,j], bitwise mm_cuda_relu_backward(_bits) then mm_cuda_colsum_accumulate.
 * dx may alias dy. ws: mm_cuda_colsum_workspace(m, c) bytes. */
void mm_cuda_relu_backward_colsum(void *dx /* [m,c] */, mm_dtype tdx, const void *dy, mm_dtype tdy,
                                  const void *y, mm_dtype ty, const uint8_t *bits,
                                  float *db /* [c] += */, int64_t m, int c, void *ws,
                                  cudaStream_t st);

/* ---- batch norm over the m rows of an NHWC tensor with c channels (bn.cu) ---- */
size_t mm_cuda_bn_workspace(int64_t m, int c);
/* Training. save_mean / save_invstd may be NULL (kept in ws then). Running statistics are
 * updated PyTorch's way with the unbiased batch variance. relu: y = max(bn(x), 0) (fusion);
 * residual: y = bn(x) + residual, then relu (a residual join, graph.h fuse_residual), with bn(x)
 * rounded to ty first, as the separate add kernel would see it. y may alias the residual. */
void mm_cuda_bn_forward_train(void *y /* [m,c] */, mm_dtype ty, float *save_mean /* [c] */,
                              float *save_invstd /* [c] */, float *running_mean /* [c] */,
                              float *running_var /* [c] */, const void *x /* [m,c] */, mm_dtype tx,
                              const float *gamma /* [c] */, const float *beta /* [c] */,
                              int64_t m, int c, float eps, float momentum,
                              const void *residual /* [m,c] or NULL, type ty */, int relu,
                              void *ws, cudaStream_t st);
void mm_cuda_bn_forward_eval(void *y /* [m,c] may alias x */, mm_dtype ty, const void *x,
                             mm_dtype tx, const float *gamma, const float *beta,
                             const float *running_mean, const float *running_var, int64_t m, int c,
                             float eps, const void *residual, int relu, void *ws, cudaStream_t st);
/* A training output recomputed from its saved statistics (MM_OP_BN_APPLY):
 * y = (x - save_mean) * (gamma * save_invstd) + beta (+ residual), then max(y, 0) when relu;
 * bitwise what mm_cuda_bn_forward_train wrote. No scratch. */
void mm_cuda_bn_apply(void *y /* [m,c] may alias x */, mm_dtype ty, const void *x /* [m,c] */,
                      mm_dtype tx, const float *gamma /* [c] */, const float *beta /* [c] */,
                      const float *save_mean /* [c] */, const float *save_invstd /* [c] */,
                      int64_t m, int c, const void *residual, int relu,
                      uint8_t *bits /* [(m*c + 7) / 8] y > 0 as mm_cuda_relu_mask, or NULL */,
                      cudaStream_t st);
/* dx, dgamma, dbeta may each be NULL. dx may alias dy. */
/* With relu_y (or relu_bits, its sign as bits) the backward of the ReLU that followed the batch
 * norm is done first: dy counts only where relu_y > 0 (mm_cpu_batchnorm_backward's relu_out). */
void mm_cuda_bn_backward(void *dx /* [m,c] */, mm_dtype tdx, float *dgamma /* [c] += */,
                         float *dbeta /* [c] += */, const void *dy /* [m,c] */, mm_dtype tdy,
                         const void *relu_y /* [m,c] or NULL */, mm_dtype ty,
                         const uint8_t *relu_bits /* [ceil(m*c/8)] or NULL */,
                         const void *x /* [m,c] */, mm_dtype tx, const float *gamma,
                         const float *save_mean, const float *save_invstd, int64_t m, int c,
                         void *ws, cudaStream_t st);

/* ---- pooling (pool.cu); backward kernels gather, so dx is written without zeroing ---- */
/* argmax (NULL: not wanted) gets each maximum's window tap, as the CPU's; the backward reads it,
 * and y (the pool's output) when d->relu_mask folds the ReLU before the pool in. */
void mm_cuda_maxpool_forward(void *y, mm_dtype ty, uint8_t *argmax /* [n,oh,ow,c] */,
                             const void *x, mm_dtype tx, const mm_pool_dims *d, cudaStream_t st);
void mm_cuda_maxpool_backward(void *dx, mm_dtype tdx, const void *dy, mm_dtype tdy,
                              const uint8_t *argmax, const void *y, mm_dtype ty,
                              const mm_pool_dims *d, cudaStream_t st);
void mm_cuda_avgpool_forward(void *y, mm_dtype ty, const void *x, mm_dtype tx,
                             const mm_pool_dims *d, cudaStream_t st);
void mm_cuda_avgpool_backward(void *dx, mm_dtype tdx, const void *dy, mm_dtype tdy,
                              const mm_pool_dims *d, cudaStream_t st);
void mm_cuda_adaptive_avgpool_forward(void *y, mm_dtype ty, const void *x, mm_dtype tx,
                                      const mm_pool_dims *d, cudaStream_t st);
void mm_cuda_adaptive_avgpool_backward(void *dx, mm_dtype tdx, const void *dy, mm_dtype tdy,
                                       const mm_pool_dims *d, cudaStream_t st);
void mm_cuda_global_avgpool_forward(void *y /* [n,c] */, mm_dtype ty, const void *x /* [n,hw,c] */,
                                    mm_dtype tx, int n, int64_t hw, int c, cudaStream_t st);
void mm_cuda_global_avgpool_backward(void *dx /* [n,hw,c] */, mm_dtype tdx,
                                     const void *dy /* [n,c] */, mm_dtype tdy, int n, int64_t hw,
                                     int c, cudaStream_t st);

/* ---- softmax and weighted cross-entropy (xent.cu); computed in double ---- */
void mm_cuda_softmax(float *y /* [n,c] */, const void *x /* [n,c] */, mm_dtype tx, int n, int c,
                     cudaStream_t st);
/* A label outside [0,c) stops the kernel with a message (a tier-2 error at the next check). */
void mm_cuda_softmax_xent_forward(float *loss /* [1] */, float *probs /* [n,c] */,
                                  const void *logits /* [n,c] */, mm_dtype tl,
                                  const int32_t *labels /* [n] */,
                                  const float *weights /* [n] or NULL */, int n, int c,
                                  cudaStream_t st);
void mm_cuda_softmax_xent_backward(void *dlogits /* [n,c] */, mm_dtype td,
                                   const float *probs /* [n,c] */, const int32_t *labels,
                                   const float *weights /* [n] or NULL */, float dloss, int n,
                                   int c, cudaStream_t st);

/* ---- flips of an NHWC tensor (flip.cu): axis 1 rows, axis 2 columns; y must not alias x ---- */
void mm_cuda_flip(void *y, const void *x, mm_dtype t, int n, int h, int w, int c, int axis,
                  cudaStream_t st);
/* wf[ci][r][s][ko] = w[ko][R-1-r][S-1-s][ci] (R = r, S = s): the OHWI filter w [k,r,s,c] turned
 * into the filter [c,r,s,k] of the forward convolution that computes its stride-1 data gradient
 * (conv_cudnn.c); t's size (2 or 4 bytes) is all that matters. wf must not alias w. */
void mm_cuda_filter_turn(void *wf, const void *w, mm_dtype t, int k, int r, int s, int c,
                         cudaStream_t st);

/* ---- Winograd F(m x m, 3x3) transforms, m = 2 or 4 (winograd.cu; conv_wino.c runs them),
 * fp32 ----
 * For a 3x3 stride-1 convolution d, with a = m + 2: F[e][k][c] (e < a*a) from the OHWI filter
 * w[k][3][3][c]; U[e][t - t0][c] of tiles t0 .. t0 + tc - 1 (m x m output blocks, numbered over
 * sample, tile row, tile column) from x[n][h][w][c]; and y[n][oh][ow][k] from M[e][t - t0][k]
 * (the GEMMs' output), written or, with accumulate, added to, then given the bias and with relu
 * the ReLU as mm_cuda_bias_add would (a fused pair, fuse.c). The filter gradient's:
 * V[e][t - t0][k] of the same tiles from dy[n][oh][ow][k], and dw[k][3][3][c] from W[e][k][c]
 * (the GEMMs' sums over tiles), written or added to. Outputs must not alias inputs. */
void mm_cuda_wino_filter(float *f /* [a*a,k,c] */, const float *w /* [k,3,3,c] */, int m, int k,
                         int c, cudaStream_t st);
void mm_cuda_wino_input(float *u /* [a*a,tc,c] */, const float *x, int m, const mm_conv_dims *d,
                        int64_t t0, int tc, cudaStream_t st);
void mm_cuda_wino_output(float *y, const float *mt /* [a*a,tc,k] */, int m,
                         const mm_conv_dims *d, int64_t t0, int tc, int accumulate,
                         const float *bias /* [k] or NULL */, int relu, cudaStream_t st);
void mm_cuda_wino_dy(float *v /* [a*a,tc,k] */, const float *dy, int m, const mm_conv_dims *d,
                     int64_t t0, int tc, cudaStream_t st);
void mm_cuda_wino_dw(float *dw /* [k,3,3,c] */, const float *wt /* [a*a,k,c] */, int m, int k,
                     int c, int accumulate, cudaStream_t st);

/* ---- layout (layout.cu): y[b][j][i] = x[b][i][j], or += with accumulate; fp32; y must not
 * alias x. NHWC -> NCHW is (batch n, rows h*w, cols c), OHWI -> OIHW (batch k, rows r*s, cols c),
 * and the way back swaps rows and cols. ---- */
void mm_cuda_transpose(float *y /* [batch,cols,rows] */, const float *x /* [batch,rows,cols] */,
                       int batch, int64_t rows, int64_t cols, int accumulate, cudaStream_t st);

/* ---- optimizers over flat fp32 buffers (optim.cu): one fused kernel each ----
 * The per-element math is ../optim_math.h's (bitwise the CPU's); the coefficients of the step
 * come from mm_adam_coeffs_make / mm_sgd_coeffs_make on the host. */
void mm_cuda_adam(float *p, float *m, float *v, const float *g, int64_t n,
                  const mm_adam_coeffs *c, cudaStream_t st);
void mm_cuda_sgd(float *p, float *buf /* NULL when momentum is 0 */, const float *g, int64_t n,
                 const mm_sgd_coeffs *c, cudaStream_t st);
void mm_cuda_grad_accumulate(float *acc, float *g, int64_t n, int micro, int steps,
                             cudaStream_t st);

#ifdef __cplusplus
}
#endif

#endif
