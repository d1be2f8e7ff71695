/* cuDNN's legacy convolution API for the emulator (cuemu.h), so that conv_cudnn.c runs unchanged:
 * 4-d tensor, filter and convolution descriptors; algorithm searches that report a fixed menu;
 * and the three convolutions computed directly (naive loops in double, one rounding to the
 * output type; fp32 operands rounded to TF32 first under tensor-op math, as the tensor cores
 * read them) from the descriptors, in any layout they describe. The graph API:
 * cuemu_cudnn_graph.cc.
 *
 * The menu per direction, fastest first on the emulated clock: algorithm 1 with a workspace of
 * about the size of the operands (it fills the whole workspace it asks for before computing, so
 * scratch that overlaps live data corrupts results, as a real algorithm's would), then
 * algorithm 0 with none, 1.5 times slower (CUEMU_NO_WS_COST=F: F times). The search honours the
 * probe's workspace, so workspace limits make the backend fall back to algorithm 0. 1x1
 * convolutions cost 1.2 times the GEMM that conv_gemm.c would run for them, so the timed
 * comparison picks the GEMM. The filter gradient's algorithm 1 is reported nondeterministic (and
 * with CUEMU_NONDETERMINISTIC=1 is). */
#include <cudnn.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "tests/cuemu/cuemu_conv.h"
#include "tests/cuemu/cuemu_internal.h"

struct cudnnTensorStruct {
    cudnnTensorFormat_t format = CUDNN_TENSOR_NCHW;
    cudnnDataType_t dtype = CUDNN_DATA_FLOAT;
    int n = 0, c = 0, h = 0, w = 0;
};
struct cudnnFilterStruct {
    cudnnTensorFormat_t format = CUDNN_TENSOR_NCHW;
    cudnnDataType_t dtype = CUDNN_DATA_FLOAT;
    int k = 0, c = 0, r = 0, s = 0;
};
struct cudnnContext {
    cudaStream_t stream = nullptr;
};
struct cudnnActivationStruct {
    cudnnActivationMode_t mode = CUDNN_ACTIVATION_RELU;
};
struct cudnnConvolutionStruct {
    int pad_h = 0, pad_w = 0, u = 1, v = 1, dil_h = 1, dil_w = 1;
    cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
    cudnnMathType_t math = CUDNN_DEFAULT_MATH;
};

namespace {

bool known_type(cudnnDataType_t t) { return t == CUDNN_DATA_FLOAT || t == CUDNN_DATA_BFLOAT16; }
cudaDataType elem(cudnnDataType_t t) { return t == CUDNN_DATA_BFLOAT16 ? CUDA_R_16BF : CUDA_R_32F; }

cuemu::conv_view view(cudnnTensorFormat_t f, cudnnDataType_t t, int d0, int d1, int d2, int d3)
{
    cuemu::conv_view v = {{d0, d1, d2, d3}, {0, 0, 0, 0}, elem(t)};
    cuemu::conv_packed_strides(&v, f == CUDNN_TENSOR_NHWC);
    return v;
}

/* A convolution's operands. */
struct conv_args {
    const cudnnTensorStruct *x, *y;
    const cudnnFilterStruct *w;
    const cudnnConvolutionStruct *cv;
};

cuemu::conv_problem problem(const conv_args &a)
{
    cuemu::conv_problem p;
    p.x = view(a.x->format, a.x->dtype, a.x->n, a.x->c, a.x->h, a.x->w);
    p.w = view(a.w->format, a.w->dtype, a.w->k, a.w->c, a.w->r, a.w->s);
    p.y = view(a.y->format, a.y->dtype, a.y->n, a.y->c, a.y->h, a.y->w);
    p.pad[0] = a.cv->pad_h, p.pad[1] = a.cv->pad_w;
    p.stride[0] = a.cv->u, p.stride[1] = a.cv->v;
    p.dil[0] = a.cv->dil_h, p.dil[1] = a.cv->dil_w;
    return p;
}

bool consistent(const conv_args &a)
{
    return a.x && a.y && a.w && a.cv && known_type(a.x->dtype) &&
           a.cv->mode == CUDNN_CROSS_CORRELATION && cuemu::conv_consistent(problem(a));
}

/* The menu (see the top): workspace of algorithm `algo` in direction `dir`, and its time. */
size_t menu_ws(const conv_args &a, int dir, int algo)
{
    if (algo == 0) return 0;
    cuemu::conv_problem p = problem(a);
    return cuemu::conv_view_bytes(dir == 2 ? p.w : dir == 0 ? p.x : p.y) / (dir == 2 ? 1 : 2) +
           4096;
}
double menu_ms(const conv_args &a, int algo)
{
    bool one = a.w->r == 1 && a.w->s == 1;
    const char *f = getenv("CUEMU_NO_WS_COST");
    double slow = f && atof(f) > 0 ? atof(f) : 1.5;
    return 2e-9 * cuemu::conv_macs(problem(a)) * (one ? 1.2 : 1.0) * (algo == 0 ? slow : 1.0);
}

/* Algorithm 1 of the filter gradient is reported nondeterministic (as cuDNN's split-K filter
 * gradients are: atomics); see conv_submit for what it then does. */
bool nondeterministic(int dir, int algo) { return dir == 2 && algo == 1; }

template <typename Perf, typename Algo>
cudnnStatus_t find(const conv_args &a, int dir, bool have_ws, size_t ws_bytes, int requested,
                   int *returned, Perf *perf)
{
    if (!consistent(a) || requested < 1) return CUDNN_STATUS_BAD_PARAM;
    int n = requested < 2 ? requested : 2;
    for (int i = 0; i < n; i++) {
        int algo = 1 - i;
        Perf p;
        memset(&p, 0, sizeof p);
        p.algo = (Algo)algo;
        p.memory = menu_ws(a, dir, algo);
        p.status = !have_ws || p.memory <= ws_bytes ? CUDNN_STATUS_SUCCESS
                                                     : CUDNN_STATUS_ALLOC_FAILED;
        p.time = p.status == CUDNN_STATUS_SUCCESS ? (float)(menu_ms(a, algo) * cuemu::clock_scale())
                                                  : -1.0f;
        p.determinism =
            nondeterministic(dir, algo) ? CUDNN_NON_DETERMINISTIC : CUDNN_DETERMINISTIC;
        p.mathType = a.cv->math; /* timed with the math the descriptor asks for */
        perf[i] = p;
    }
    *returned = n;
    return CUDNN_STATUS_SUCCESS;
}

/* One convolution in direction dir (0 forward, 1 backward data, 2 backward filter) with
 * algorithm `algo` of the menu: out = alpha * sum + beta * out (out not read when beta is 0).
 * in0, in1: x and w (forward), w and dy (data), x and dy (filter). fp32 data under tensor-op
 * math reads TF32 operands. */
cudnnStatus_t run(cudnnHandle_t h, const conv_args &a, int dir, int algo, const void *in0,
                  const void *in1, void *out, void *ws, size_t ws_bytes, float alpha, float beta)
{
    if (!h || !consistent(a) || algo < 0 || algo > 1) return CUDNN_STATUS_BAD_PARAM;
    size_t need = menu_ws(a, dir, algo);
    if (ws_bytes < need) return CUDNN_STATUS_BAD_PARAM;
    void *x = dir == 1 ? out : (void *)in0;
    void *w = dir == 0 ? (void *)in1 : dir == 1 ? (void *)in0 : out;
    void *y = dir == 0 ? out : (void *)in1;
    bool tf32 = a.cv->math != CUDNN_DEFAULT_MATH && a.cv->math != CUDNN_FMA_MATH;
    cudaError_t e = cuemu::conv_submit(h->stream, problem(a), dir, x, w, y, alpha, beta, ws, need,
                                       tf32, menu_ms(a, algo), nondeterministic(dir, algo));
    return e == cudaErrorInvalidValue ? CUDNN_STATUS_BAD_PARAM
           : e                        ? CUDNN_STATUS_EXECUTION_FAILED
                                      : CUDNN_STATUS_SUCCESS;
}

} // namespace

cudaStream_t cuemu::cudnn_stream(cudnnHandle_t h) { return h->stream; }

extern "C" {

/* ---- handles ---- */
size_t cudnnGetVersion(void) { return CUDNN_VERSION; }
cudnnStatus_t cudnnCreate(cudnnHandle_t *h)
{
    *h = new cudnnContext();
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroy(cudnnHandle_t h)
{
    delete h;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetStream(cudnnHandle_t h, cudaStream_t st)
{
    h->stream = st;
    return CUDNN_STATUS_SUCCESS;
}
const char *cudnnGetErrorString(cudnnStatus_t s)
{
    switch (s) {
    case CUDNN_STATUS_SUCCESS: return "CUDNN_STATUS_SUCCESS";
    case CUDNN_STATUS_BAD_PARAM: return "CUDNN_STATUS_BAD_PARAM";
    case CUDNN_STATUS_NOT_SUPPORTED: return "CUDNN_STATUS_NOT_SUPPORTED";
    case CUDNN_STATUS_ALLOC_FAILED: return "CUDNN_STATUS_ALLOC_FAILED";
    case CUDNN_STATUS_EXECUTION_FAILED: return "CUDNN_STATUS_EXECUTION_FAILED";
    default: return "cuDNN error (emulated)";
    }
}
void cudnnGetLastErrorString(char *message, size_t max_size)
{
    if (max_size) message[0] = 0;
}

/* ---- descriptors ---- */
cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t *d)
{
    *d = new cudnnTensorStruct();
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t d)
{
    delete d;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t d, cudnnTensorFormat_t format,
                                         cudnnDataType_t dtype, int n, int c, int h, int w)
{
    if (n < 1 || c < 1 || h < 1 || w < 1 || !known_type(dtype) ||
        (format != CUDNN_TENSOR_NCHW && format != CUDNN_TENSOR_NHWC))
        return CUDNN_STATUS_BAD_PARAM;
    d->format = format, d->dtype = dtype, d->n = n, d->c = c, d->h = h, d->w = w;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t *d)
{
    *d = new cudnnFilterStruct();
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t d)
{
    delete d;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t d, cudnnDataType_t dtype,
                                         cudnnTensorFormat_t format, int k, int c, int h, int w)
{
    if (k < 1 || c < 1 || h < 1 || w < 1 || !known_type(dtype) ||
        (format != CUDNN_TENSOR_NCHW && format != CUDNN_TENSOR_NHWC))
        return CUDNN_STATUS_BAD_PARAM;
    d->format = format, d->dtype = dtype, d->k = k, d->c = c, d->r = h, d->s = w;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t *d)
{
    *d = new cudnnConvolutionStruct();
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t d)
{
    delete d;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t d, int pad_h, int pad_w,
                                              int u, int v, int dil_h, int dil_w,
                                              cudnnConvolutionMode_t mode, cudnnDataType_t)
{
    if (pad_h < 0 || pad_w < 0 || u < 1 || v < 1 || dil_h < 1 || dil_w < 1)
        return CUDNN_STATUS_BAD_PARAM;
    d->pad_h = pad_h, d->pad_w = pad_w, d->u = u, d->v = v, d->dil_h = dil_h, d->dil_w = dil_w;
    d->mode = mode;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t d, cudnnMathType_t math)
{
    d->math = math;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolution2dForwardOutputDim(const cudnnConvolutionDescriptor_t cv,
                                                    const cudnnTensorDescriptor_t x,
                                                    const cudnnFilterDescriptor_t w, int *n,
                                                    int *c, int *h, int *wd)
{
    if (x->c != w->c) return CUDNN_STATUS_BAD_PARAM;
    *n = x->n;
    *c = w->k;
    *h = (x->h + 2 * cv->pad_h - cv->dil_h * (w->r - 1) - 1) / cv->u + 1;
    *wd = (x->w + 2 * cv->pad_w - cv->dil_w * (w->s - 1) - 1) / cv->v + 1;
    return *h > 0 && *wd > 0 ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_BAD_PARAM;
}

/* ---- algorithm searches: the menu ---- */
cudnnStatus_t cudnnFindConvolutionForwardAlgorithmEx(
    cudnnHandle_t, const cudnnTensorDescriptor_t x, const void *, const cudnnFilterDescriptor_t w,
    const void *, const cudnnConvolutionDescriptor_t cv, const cudnnTensorDescriptor_t y, void *,
    const int requested, int *returned, cudnnConvolutionFwdAlgoPerf_t *perf, void *,
    size_t ws_bytes)
{
    return find<cudnnConvolutionFwdAlgoPerf_t, cudnnConvolutionFwdAlgo_t>(
        {x, y, w, cv}, 0, true, ws_bytes, requested, returned, perf);
}
cudnnStatus_t cudnnFindConvolutionForwardAlgorithm(cudnnHandle_t, const cudnnTensorDescriptor_t x,
                                                   const cudnnFilterDescriptor_t w,
                                                   const cudnnConvolutionDescriptor_t cv,
                                                   const cudnnTensorDescriptor_t y,
                                                   const int requested, int *returned,
                                                   cudnnConvolutionFwdAlgoPerf_t *perf)
{
    return find<cudnnConvolutionFwdAlgoPerf_t, cudnnConvolutionFwdAlgo_t>(
        {x, y, w, cv}, 0, false, 0, requested, returned, perf);
}
cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t,
                                                     const cudnnTensorDescriptor_t x,
                                                     const cudnnFilterDescriptor_t w,
                                                     const cudnnConvolutionDescriptor_t cv,
                                                     const cudnnTensorDescriptor_t y,
                                                     const int requested, int *returned,
                                                     cudnnConvolutionFwdAlgoPerf_t *perf)
{
    return find<cudnnConvolutionFwdAlgoPerf_t, cudnnConvolutionFwdAlgo_t>(
        {x, y, w, cv}, 0, false, 0, requested, returned, perf);
}
cudnnStatus_t cudnnFindConvolutionBackwardDataAlgorithmEx(
    cudnnHandle_t, const cudnnFilterDescriptor_t w, const void *, const cudnnTensorDescriptor_t y,
    const void *, const cudnnConvolutionDescriptor_t cv, const cudnnTensorDescriptor_t x, void *,
    const int requested, int *returned, cudnnConvolutionBwdDataAlgoPerf_t *perf, void *,
    size_t ws_bytes)
{
    return find<cudnnConvolutionBwdDataAlgoPerf_t, cudnnConvolutionBwdDataAlgo_t>(
        {x, y, w, cv}, 1, true, ws_bytes, requested, returned, perf);
}
cudnnStatus_t cudnnFindConvolutionBackwardDataAlgorithm(cudnnHandle_t,
                                                        const cudnnFilterDescriptor_t w,
                                                        const cudnnTensorDescriptor_t y,
                                                        const cudnnConvolutionDescriptor_t cv,
                                                        const cudnnTensorDescriptor_t x,
                                                        const int requested, int *returned,
                                                        cudnnConvolutionBwdDataAlgoPerf_t *perf)
{
    return find<cudnnConvolutionBwdDataAlgoPerf_t, cudnnConvolutionBwdDataAlgo_t>(
        {x, y, w, cv}, 1, false, 0, requested, returned, perf);
}
cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnnHandle_t,
                                                          const cudnnFilterDescriptor_t w,
                                                          const cudnnTensorDescriptor_t y,
                                                          const cudnnConvolutionDescriptor_t cv,
                                                          const cudnnTensorDescriptor_t x,
                                                          const int requested, int *returned,
                                                          cudnnConvolutionBwdDataAlgoPerf_t *perf)
{
    return find<cudnnConvolutionBwdDataAlgoPerf_t, cudnnConvolutionBwdDataAlgo_t>(
        {x, y, w, cv}, 1, false, 0, requested, returned, perf);
}
cudnnStatus_t cudnnFindConvolutionBackwardFilterAlgorithmEx(
    cudnnHandle_t, const cudnnTensorDescriptor_t x, const void *, const cudnnTensorDescriptor_t y,
    const void *, const cudnnConvolutionDescriptor_t cv, const cudnnFilterDescriptor_t w, void *,
    const int requested, int *returned, cudnnConvolutionBwdFilterAlgoPerf_t *perf, void *,
    size_t ws_bytes)
{
    return find<cudnnConvolutionBwdFilterAlgoPerf_t, cudnnConvolutionBwdFilterAlgo_t>(
        {x, y, w, cv}, 2, true, ws_bytes, requested, returned, perf);
}
cudnnStatus_t cudnnFindConvolutionBackwardFilterAlgorithm(cudnnHandle_t,
                                                          const cudnnTensorDescriptor_t x,
                                                          const cudnnTensorDescriptor_t y,
                                                          const cudnnConvolutionDescriptor_t cv,
                                                          const cudnnFilterDescriptor_t w,
                                                          const int requested, int *returned,
                                                          cudnnConvolutionBwdFilterAlgoPerf_t *perf)
{
    return find<cudnnConvolutionBwdFilterAlgoPerf_t, cudnnConvolutionBwdFilterAlgo_t>(
        {x, y, w, cv}, 2, false, 0, requested, returned, perf);
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(
    cudnnHandle_t, const cudnnTensorDescriptor_t x, const cudnnTensorDescriptor_t y,
    const cudnnConvolutionDescriptor_t cv, const cudnnFilterDescriptor_t w, const int requested,
    int *returned, cudnnConvolutionBwdFilterAlgoPerf_t *perf)
{
    return find<cudnnConvolutionBwdFilterAlgoPerf_t, cudnnConvolutionBwdFilterAlgo_t>(
        {x, y, w, cv}, 2, false, 0, requested, returned, perf);
}

/* ---- the convolutions ---- */
cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t h, const void *alpha,
                                      const cudnnTensorDescriptor_t xd, const void *x,
                                      const cudnnFilterDescriptor_t wd, const void *w,
                                      const cudnnConvolutionDescriptor_t cv,
                                      cudnnConvolutionFwdAlgo_t algo, void *ws, size_t ws_bytes,
                                      const void *beta, const cudnnTensorDescriptor_t yd, void *y)
{
    return run(h, {xd, yd, wd, cv}, 0, (int)algo, x, w, y, ws, ws_bytes, *(const float *)alpha,
               *(const float *)beta);
}
cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t h, const void *alpha,
                                           const cudnnFilterDescriptor_t wd, const void *w,
                                           const cudnnTensorDescriptor_t yd, const void *dy,
                                           const cudnnConvolutionDescriptor_t cv,
                                           cudnnConvolutionBwdDataAlgo_t algo, void *ws,
                                           size_t ws_bytes, const void *beta,
                                           const cudnnTensorDescriptor_t xd, void *dx)
{
    return run(h, {xd, yd, wd, cv}, 1, (int)algo, w, dy, dx, ws, ws_bytes, *(const float *)alpha,
               *(const float *)beta);
}
cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t h, const void *alpha,
                                             const cudnnTensorDescriptor_t xd, const void *x,
                                             const cudnnTensorDescriptor_t yd, const void *dy,
                                             const cudnnConvolutionDescriptor_t cv,
                                             cudnnConvolutionBwdFilterAlgo_t algo, void *ws,
                                             size_t ws_bytes, const void *beta,
                                             const cudnnFilterDescriptor_t wd, void *dw)
{
    return run(h, {xd, yd, wd, cv}, 2, (int)algo, x, dy, dw, ws, ws_bytes, *(const float *)alpha,
               *(const float *)beta);
}

/* ---- the fused forward: the menu's algorithms, then the bias and a ReLU ---- */
cudnnStatus_t cudnnCreateActivationDescriptor(cudnnActivationDescriptor_t *d)
{
    *d = new cudnnActivationStruct();
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyActivationDescriptor(cudnnActivationDescriptor_t d)
{
    delete d;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetActivationDescriptor(cudnnActivationDescriptor_t d,
                                           cudnnActivationMode_t mode, cudnnNanPropagation_t,
                                           double)
{
    if (!d) return CUDNN_STATUS_BAD_PARAM;
    d->mode = mode;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t, const cudnnTensorDescriptor_t x,
                                                      const cudnnFilterDescriptor_t w,
                                                      const cudnnConvolutionDescriptor_t cv,
                                                      const cudnnTensorDescriptor_t y,
                                                      cudnnConvolutionFwdAlgo_t algo, size_t *bytes)
{
    conv_args a = {x, y, w, cv};
    if (!consistent(a) || !bytes) return CUDNN_STATUS_BAD_PARAM;
    if (algo < 0 || algo > 1) return CUDNN_STATUS_NOT_SUPPORTED;
    *bytes = menu_ws(a, 0, (int)algo);
    return CUDNN_STATUS_SUCCESS;
}
/* y = relu(alpha1 conv(x, w) + bias); z must be y with alpha2 0 (the only use the backend
 * makes of it), the bias fp32 [1,k,1,1] and the activation a ReLU, else BAD_PARAM. */
cudnnStatus_t cudnnConvolutionBiasActivationForward(
    cudnnHandle_t h, const void *alpha1, const cudnnTensorDescriptor_t xd, const void *x,
    const cudnnFilterDescriptor_t wd, const void *w, const cudnnConvolutionDescriptor_t cv,
    cudnnConvolutionFwdAlgo_t algo, void *ws, size_t ws_bytes, const void *alpha2,
    const cudnnTensorDescriptor_t zd, const void *z, const cudnnTensorDescriptor_t bd,
    const void *bias, const cudnnActivationDescriptor_t act, const cudnnTensorDescriptor_t yd,
    void *y)
{
    if (!alpha2 || *(const float *)alpha2 != 0.0f || z != y || zd != yd || !bd || !act ||
        act->mode != CUDNN_ACTIVATION_RELU || bd->dtype != CUDNN_DATA_FLOAT || !yd ||
        bd->n != 1 || bd->c != yd->c || bd->h != 1 || bd->w != 1)
        return CUDNN_STATUS_BAD_PARAM;
    conv_args a = {xd, yd, wd, cv};
    cudnnStatus_t s = run(h, a, 0, (int)algo, x, w, y, ws, ws_bytes, *(const float *)alpha1, 0.0f);
    if (s != CUDNN_STATUS_SUCCESS) return s;
    cudaError_t e = cuemu::conv_bias_relu_submit(h->stream, problem(a).y, y, (const float *)bias,
                                                 0.0);
    return e == cudaErrorInvalidValue ? CUDNN_STATUS_BAD_PARAM
           : e                        ? CUDNN_STATUS_EXECUTION_FAILED
                                      : CUDNN_STATUS_SUCCESS;
}

} /* extern "C" */
