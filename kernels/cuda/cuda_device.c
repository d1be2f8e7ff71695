/* CUDA device detection. On the machines without a GPU, cudaGetDeviceCount returns an error
 * (cudaErrorInsufficientDriver, say) rather than zero devices, so any error means "no GPU". */
#include <cuda_runtime.h>
#include <stdio.h>

#include "../../runtime/backend.h"

bool mm_cuda_compiled(void) { return true; }

#ifdef MM_CUEMU
bool mm_cuda_emulated(void) { return true; }
#else
bool mm_cuda_emulated(void) { return false; }
#endif

bool mm_cuda_available(char *why, size_t n)
{
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        if (why) snprintf(why, n, "no GPU (%s)", cudaGetErrorString(e));
        cudaGetLastError(); /* clear the sticky error */
        return false;
    }
    if (count == 0) {
        if (why) snprintf(why, n, "no GPU (no CUDA devices)");
        return false;
    }
    return true;
}
