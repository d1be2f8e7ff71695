/* The CUDA backend (being built): reports "no GPU" where there is none. */
#include <stdio.h>

#include "../../runtime/backend.h"

mm_status mm_backend_cuda_create(mm_backend **out)
{
    char why[256];
    *out = NULL;
    if (!mm_cuda_available(why, sizeof why))
        return mm_fail(MM_ERR_DEVICE, "--device cuda: %s; use --device cpu", why);
    return mm_fail(MM_ERR_UNSUPPORTED, "--device cuda: the CUDA backend is not finished yet");
}
