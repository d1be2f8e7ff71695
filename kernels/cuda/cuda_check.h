/* Tier-2 checks of CUDA runtime, cuDNN and cuBLAS calls (usable from C and CUDA sources).
 *
 * A failed call aborts through mm_die_at() with the call's text, file:line, the library's own
 * message (for cuDNN also cudnnGetLastErrorString, which names the failing parameter) and a hint
 * that says what usually causes that status. Kernel launches are checked with
 * MM_CUDA_CHECK_LAUNCH() right after the launch; errors inside a kernel surface at a later call,
 * so the hint for those names CUDA_LAUNCH_BLOCKING=1 and compute-sanitizer. */
#ifndef MM_CUDA_CHECK_H
#define MM_CUDA_CHECK_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#ifdef __cplusplus
extern "C" {
#endif

/* (__attribute__ rather than _Noreturn: this header is also compiled as C++ by nvcc.) */
__attribute__((noreturn)) void mm_cuda_die(const char *file, int line, const char *call,
                                           cudaError_t e);
__attribute__((noreturn)) void mm_cudnn_die(const char *file, int line, const char *call,
                                            cudnnStatus_t s);
__attribute__((noreturn)) void mm_cublas_die(const char *file, int line, const char *call,
                                             cublasStatus_t s);

#ifdef __cplusplus
}
#endif

#define MM_CUDA_CHECK(call)                                                                \
    do {                                                                                   \
        cudaError_t mm_ce_ = (call);                                                       \
        if (mm_ce_ != cudaSuccess) mm_cuda_die(__FILE__, __LINE__, #call, mm_ce_);         \
    } while (0)

#define MM_CUDA_CHECK_LAUNCH() MM_CUDA_CHECK(cudaGetLastError())

#define MM_CUDNN_CHECK(call)                                                               \
    do {                                                                                   \
        cudnnStatus_t mm_cs_ = (call);                                                     \
        if (mm_cs_ != CUDNN_STATUS_SUCCESS) mm_cudnn_die(__FILE__, __LINE__, #call, mm_cs_); \
    } while (0)

#define MM_CUBLAS_CHECK(call)                                                              \
    do {                                                                                   \
        cublasStatus_t mm_bs_ = (call);                                                    \
        if (mm_bs_ != CUBLAS_STATUS_SUCCESS)                                               \
            mm_cublas_die(__FILE__, __LINE__, #call, mm_bs_);                              \
    } while (0)

#endif
