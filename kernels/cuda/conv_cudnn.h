/* cuDNN descriptor helpers of the CUDA backend that need no GPU (descriptor calls work without
 * one), so CI can check them: the NHWC / OHWI descriptors the backend builds for a convolution
 * (or NCHW / OIHW, for the copies of conv_nchw.h), and cuDNN's own output shape for them
 * (conv_desc.c). */
#ifndef MM_CONV_CUDNN_H
#define MM_CONV_CUDNN_H

#include <cudnn.h>
#include <stdbool.h>

#include "../../runtime/tensor.h"
#include "../dims.h"

/* Descriptors of one convolution: x [n,h,w,c] NHWC, w [k,r,s,c] (filter format NHWC = OHWI),
 * y [n,oh,ow,k] NHWC, or with nchw x [n,c,h,w], w [k,c,r,s], y [n,k,oh,ow]; all of storage
 * type `dtype` (MM_F32 or MM_BF16), computed in fp32, with the math type of `precision` (fp32:
 * CUDNN_FMA_MATH, no TF32; tf32 and bf16: tensor cores). */
typedef struct mm_conv_descs {
    cudnnTensorDescriptor_t x, y;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv;
    /* mm_conv_descs_add_bias_relu: the bias [1,k,1,1] fp32 and a ReLU, for
     * cudnnConvolutionBiasActivationForward (NULL otherwise) */
    cudnnTensorDescriptor_t bias;
    cudnnActivationDescriptor_t relu;
} mm_conv_descs;

/* Returns the first failing status (CUDNN_STATUS_SUCCESS when all were made). On failure the
 * descriptors made so far are destroyed. */
cudnnStatus_t mm_conv_descs_init(mm_conv_descs *cd, const mm_conv_dims *d, mm_dtype dtype,
                                 int precision /* mm_precision */, bool nchw);
void mm_conv_descs_free(mm_conv_descs *cd);
/* Adds the bias and ReLU descriptors of the fused call to cd (made for d); its status. */
cudnnStatus_t mm_conv_descs_add_bias_relu(mm_conv_descs *cd, const mm_conv_dims *d, bool nchw);

/* cuDNN's output shape of the convolution d (cudnnGetConvolution2dForwardOutputDim) in either
 * layout: out = {n, k, oh, ow}. Returns its status. */
cudnnStatus_t mm_cudnn_conv_output_dims(const mm_conv_dims *d, mm_dtype dtype, bool nchw,
                                        int out[4]);

#endif
