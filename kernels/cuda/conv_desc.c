/* The cuDNN descriptors of one convolution (conv_cudnn.h): the backend's NHWC / OHWI operands,
 * or the NCHW / OIHW copies that conv_nchw.c makes of them. Descriptor calls need no GPU, so
 * tests/test_cudnn_desc.c checks these in CI. */
#include "conv_cudnn.h"

#include <string.h>

#include "../../runtime/backend.h"

static cudnnDataType_t mm_cudnn_dtype(mm_dtype t)
{
    return t == MM_BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
}

cudnnStatus_t mm_conv_descs_init(mm_conv_descs *cd, const mm_conv_dims *d, mm_dtype dtype,
                                 int precision, bool nchw)
{
    memset(cd, 0, sizeof *cd);
    cudnnDataType_t dt = mm_cudnn_dtype(dtype);
    cudnnTensorFormat_t f = nchw ? CUDNN_TENSOR_NCHW : CUDNN_TENSOR_NHWC;
    cudnnStatus_t s;
    if ((s = cudnnCreateTensorDescriptor(&cd->x)) != CUDNN_STATUS_SUCCESS) goto fail;
    if ((s = cudnnCreateTensorDescriptor(&cd->y)) != CUDNN_STATUS_SUCCESS) goto fail;
    if ((s = cudnnCreateFilterDescriptor(&cd->w)) != CUDNN_STATUS_SUCCESS) goto fail;
    if ((s = cudnnCreateConvolutionDescriptor(&cd->conv)) != CUDNN_STATUS_SUCCESS) goto fail;
    s = cudnnSetTensor4dDescriptor(cd->x, f, dt, d->n, d->c, d->h, d->w);
    if (s != CUDNN_STATUS_SUCCESS) goto fail;
    s = cudnnSetFilter4dDescriptor(cd->w, dt, f, d->k, d->c, d->r, d->s);
    if (s != CUDNN_STATUS_SUCCESS) goto fail;
    s = cudnnSetTensor4dDescriptor(cd->y, f, dt, d->n, d->k, d->oh, d->ow);
    if (s != CUDNN_STATUS_SUCCESS) goto fail;
    s = cudnnSetConvolution2dDescriptor(cd->conv, d->pad_h, d->pad_w, d->stride_h, d->stride_w, 1,
                                        1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT);
    if (s != CUDNN_STATUS_SUCCESS) goto fail;
    s = cudnnSetConvolutionMathType(
        cd->conv, precision == MM_PRECISION_FP32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH);
    if (s != CUDNN_STATUS_SUCCESS) goto fail;
    return CUDNN_STATUS_SUCCESS;
fail:
    mm_conv_descs_free(cd);
    return s;
}

cudnnStatus_t mm_conv_descs_add_bias_relu(mm_conv_descs *cd, const mm_conv_dims *d, bool nchw)
{
    cudnnStatus_t s = cudnnCreateTensorDescriptor(&cd->bias);
    if (s != CUDNN_STATUS_SUCCESS) return s;
    s = cudnnSetTensor4dDescriptor(cd->bias, nchw ? CUDNN_TENSOR_NCHW : CUDNN_TENSOR_NHWC,
                                   CUDNN_DATA_FLOAT, 1, d->k, 1, 1);
    if (s != CUDNN_STATUS_SUCCESS) return s;
    s = cudnnCreateActivationDescriptor(&cd->relu);
    if (s != CUDNN_STATUS_SUCCESS) return s;
    /* NaN in, 0 out: the ReLU of our kernels (x > 0 ? x : 0) */
    return cudnnSetActivationDescriptor(cd->relu, CUDNN_ACTIVATION_RELU, CUDNN_NOT_PROPAGATE_NAN,
                                        0.0);
}

void mm_conv_descs_free(mm_conv_descs *cd)
{
    if (cd->bias) cudnnDestroyTensorDescriptor(cd->bias);
    if (cd->relu) cudnnDestroyActivationDescriptor(cd->relu);
    if (cd->x) cudnnDestroyTensorDescriptor(cd->x);
    if (cd->y) cudnnDestroyTensorDescriptor(cd->y);
    if (cd->w) cudnnDestroyFilterDescriptor(cd->w);
    if (cd->conv) cudnnDestroyConvolutionDescriptor(cd->conv);
    memset(cd, 0, sizeof *cd);
}

cudnnStatus_t mm_cudnn_conv_output_dims(const mm_conv_dims *d, mm_dtype dtype, bool nchw,
                                        int out[4])
{
    mm_conv_descs cd;
    cudnnStatus_t s = mm_conv_descs_init(&cd, d, dtype, MM_PRECISION_FP32, nchw);
    if (s != CUDNN_STATUS_SUCCESS) return s;
    s = cudnnGetConvolution2dForwardOutputDim(cd.conv, cd.x, cd.w, &out[0], &out[1], &out[2],
                                              &out[3]);
    mm_conv_descs_free(&cd);
    return s;
}
