/* The reporter behind MM_CUDA_CHECK / MM_CUDNN_CHECK / MM_CUBLAS_CHECK: the library's message and
 * a hint for the statuses that have a usual cause. */
#include "cuda_check.h"

#include <stdio.h>

#include "../../runtime/error.h"

static const char *hint_async =
    "kernel errors are reported by a later call: rerun with CUDA_LAUNCH_BLOCKING=1 to find the "
    "kernel, or under compute-sanitizer to find the bad access";

void mm_cuda_die(const char *file, int line, const char *call, cudaError_t e)
{
    char detail[512];
    snprintf(detail, sizeof detail, "%s: %s (%s)", call, cudaGetErrorString(e),
             cudaGetErrorName(e));
    const char *hint;
    switch (e) {
    case cudaErrorMemoryAllocation:
        hint = "the GPU is out of memory: use a smaller --batch or --input, --precision bf16, or "
               "free the GPU (nvidia-smi shows who holds it)";
        break;
    case cudaErrorInsufficientDriver:
    case cudaErrorNoDevice:
        hint = "no usable GPU or driver: check nvidia-smi, or use --device cpu";
        break;
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorMisalignedAddress:
    case cudaErrorAssert:
        hint = hint_async;
        break;
    case cudaErrorNoKernelImageForDevice:
    case cudaErrorInvalidDeviceFunction:
        hint = "this build has no code for this GPU: rebuild with CMAKE_CUDA_ARCHITECTURES "
               "naming its compute capability";
        break;
    case cudaErrorStreamCaptureUnsupported:
    case cudaErrorStreamCaptureInvalidated:
    case cudaErrorStreamCaptureImplicit:
        hint = "an operation that cannot be captured ran inside a CUDA graph capture (a host "
               "copy, a sync or an allocation): keep those outside begin_capture/end_capture";
        break;
    default:
        hint = hint_async;
        break;
    }
    mm_die_at(file, line, "CUDA call failed", detail, hint);
}

void mm_cudnn_die(const char *file, int line, const char *call, cudnnStatus_t s)
{
    char last[256] = "";
    cudnnGetLastErrorString(last, sizeof last);
    char detail[768];
    snprintf(detail, sizeof detail, "%s: %s%s%s", call, cudnnGetErrorString(s),
             last[0] ? ": " : "", last);
    const char *hint;
    switch (s) {
    case CUDNN_STATUS_NOT_INITIALIZED:
        hint = "cuDNN could not start: no usable GPU or a driver too old for this cuDNN; "
               "check nvidia-smi, or use --device cpu";
        break;
    case CUDNN_STATUS_BAD_PARAM:
        hint = "a descriptor does not fit the data (shape, layout or data type): a bug in the "
               "CUDA backend; the message above names the parameter";
        break;
    case CUDNN_STATUS_NOT_SUPPORTED:
        hint = "cuDNN has no kernel for this shape and data type: try --precision fp32, or a "
               "different --input size";
        break;
    case CUDNN_STATUS_ALLOC_FAILED:
        hint = "the GPU is out of memory: use a smaller --batch or --input";
        break;
    case CUDNN_STATUS_EXECUTION_FAILED:
        hint = hint_async;
        break;
    default:
        hint = NULL;
        break;
    }
    mm_die_at(file, line, "cuDNN call failed", detail, hint);
}

void mm_cublas_die(const char *file, int line, const char *call, cublasStatus_t s)
{
    char detail[512];
    snprintf(detail, sizeof detail, "%s: %s", call, cublasGetStatusString(s));
    const char *hint;
    switch (s) {
    case CUBLAS_STATUS_NOT_INITIALIZED:
        hint = "cuBLAS could not start: no usable GPU or driver; check nvidia-smi";
        break;
    case CUBLAS_STATUS_ALLOC_FAILED:
        hint = "the GPU is out of memory: use a smaller --batch or --input";
        break;
    case CUBLAS_STATUS_INVALID_VALUE:
        hint = "a matrix size or leading dimension is wrong: a bug in the CUDA backend";
        break;
    case CUBLAS_STATUS_EXECUTION_FAILED:
        hint = hint_async;
        break;
    default:
        hint = NULL;
        break;
    }
    mm_die_at(file, line, "cuBLAS call failed", detail, hint);
}
