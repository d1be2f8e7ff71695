/* The emulator's convolutions (cuemu.h), shared by its two cuDNN APIs: the legacy one
 * (cuemu_cudnn.cc) and the graph one (cuemu_cudnn_graph.cc) describe the same problem, which
 * this computes directly: naive loops in double, one rounding to the output's type. */
#ifndef MM_CUEMU_CONV_H
#define MM_CUEMU_CONV_H

#include <cuda_runtime.h>
#include <cudnn.h>
#include <library_types.h>
#include <stddef.h>
#include <stdint.h>

namespace cuemu {

/* A 4-d operand: dims in N,C,H,W order (K,C,R,S for a filter), the stride of each in elements,
 * and the element type (fp32 or bf16). */
struct conv_view {
    int64_t d[4], s[4];
    cudaDataType t;
};

/* A cross-correlation y = x * w with 2-d padding, stride and dilation (height, width). */
struct conv_problem {
    conv_view x, w, y;
    int64_t pad[2], stride[2], dil[2];
};

/* Strides of a packed NCHW or NHWC (nhwc) array with dims d. */
void conv_packed_strides(conv_view *v, bool nhwc);
/* Bytes from an operand's first element to its last. */
size_t conv_view_bytes(const conv_view &v);
/* Whether the three operands fit each other and the convolution, with one element type. */
bool conv_consistent(const conv_problem &p);
/* Multiply-adds of the convolution. */
double conv_macs(const conv_problem &p);

/* Queues direction dir of p on stream st: 0 y = alpha conv(x, w) + beta y, 1 the same into x
 * from y (the data gradient), 2 into w from x and y (the filter gradient); the output is not
 * read when beta is 0. ws_need bytes of ws are filled first (an algorithm's scratch, all of it).
 * tf32: fp32 operands are rounded to TF32 before their products. The operation costs cost_ms
 * on the emulated clock. nondeterministic: an algorithm cuDNN reports nondeterministic (atomics
 * summing in whatever order they land); with CUEMU_NONDETERMINISTIC=1 in the environment its
 * output then differs from run to run in about one element in eight (fp32 by 2^-13 of it, bf16
 * by its last bit), as such an algorithm's rounding does, only more. Returns the queueing's
 * error: cudaErrorInvalidValue when an operand or the scratch is not device memory. */
cudaError_t conv_submit(cudaStream_t st, const conv_problem &p, int dir, void *x, void *w, void *y,
                        float alpha, float beta, void *ws, size_t ws_need, bool tf32,
                        double cost_ms, bool nondeterministic);

/* Queues y = max(y + bias[channel], 0) over the [n,k,h,w] view y at ptr (NaN gives 0): the
 * epilogue of cudnnConvolutionBiasActivationForward with a ReLU. bias: k floats in device
 * memory. */
cudaError_t conv_bias_relu_submit(cudaStream_t st, const conv_view &y, void *ptr,
                                  const float *bias, double cost_ms);

/* The stream a cuDNN handle queues on (cudnnSetStream). */
cudaStream_t cudnn_stream(cudnnHandle_t h);

} // namespace cuemu

#endif
