/* Backend lookup by name. */
#include "backend.h"

#include <string.h>

mm_status mm_backend_create(const char *name, mm_backend **out)
{
    *out = NULL;
    if (!strcmp(name, "cpu")) return mm_backend_cpu_create(out);
    if (!strcmp(name, "meta")) return mm_backend_meta_create(out);
    if (!strcmp(name, "cuda")) return mm_backend_cuda_create(out);
    return mm_fail(MM_ERR_ARG, "--device %s: unknown device; use cpu, cuda or meta", name);
}

void mm_backend_destroy(mm_backend *be)
{
    if (be && be->destroy) be->destroy(be);
}
