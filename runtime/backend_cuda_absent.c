/* Built instead of the CUDA backend where no CUDA compiler was found (MM_CUDA=OFF or AUTO without
 * nvcc): asking for the cuda device says so in one line. */
#include <stdio.h>

#include "backend.h"
#include "dist.h"

bool mm_cuda_compiled(void) { return false; }
bool mm_cuda_emulated(void) { return false; }

bool mm_cuda_available(char *why, size_t n)
{
    if (why) snprintf(why, n, "this build of mammo has no CUDA backend (nvcc was not found)");
    return false;
}

mm_status mm_backend_cuda_create(mm_backend **out)
{
    return mm_backend_cuda_create_ex(out, MM_PRECISION_FP32, 0);
}

mm_status mm_backend_cuda_create_ex(mm_backend **out, mm_precision precision, int device)
{
    (void)precision;
    (void)device;
    *out = NULL;
    return mm_fail(MM_ERR_DEVICE,
                   "--device cuda: this build has no CUDA backend; rebuild where nvcc is installed "
                   "(cmake -DMM_CUDA=ON) or use --device cpu");
}

static const char no_cuda[] = "this build has no CUDA backend; rebuild where nvcc and NCCL are "
                              "installed, or use --device cpu";

bool mm_nccl_compiled(char *why, size_t n)
{
    if (why) snprintf(why, n, "%s", no_cuda);
    return false;
}

mm_status mm_nccl_create(mm_backend *const *bes, int n, mm_group *group, mm_nccl **out)
{
    (void)bes;
    (void)group;
    *out = NULL;
    return mm_fail(MM_ERR_DEVICE, "--replicas %d: %s", n, no_cuda);
}

void mm_nccl_average(mm_nccl *c, float *const *bufs, size_t count)
{
    (void)c;
    (void)bufs;
    (void)count;
    MM_ASSERT(!"mm_nccl_average without CUDA");
}

mm_status mm_nccl_wait(mm_nccl *c)
{
    (void)c;
    return MM_OK;
}

void mm_nccl_destroy(mm_nccl *c) { (void)c; }
