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

mm_status mm_precision_parse(const char *s, mm_precision *out)
{
    if (!strcmp(s, "fp32")) *out = MM_PRECISION_FP32;
    else if (!strcmp(s, "tf32")) *out = MM_PRECISION_TF32;
    else if (!strcmp(s, "bf16")) *out = MM_PRECISION_BF16;
    else return mm_fail(MM_ERR_ARG, "--precision %s: unknown precision; use fp32, tf32 or bf16", s);
    return MM_OK;
}

const char *mm_precision_name(mm_precision p)
{
    switch (p) {
    case MM_PRECISION_FP32: return "fp32";
    case MM_PRECISION_TF32: return "tf32";
    case MM_PRECISION_BF16: return "bf16";
    }
    return "?";
}

mm_status mm_backend_open(const char *name, mm_precision precision, mm_backend **out)
{
    *out = NULL;
    if (!strcmp(name, "cuda")) return mm_backend_cuda_create_ex(out, precision, 0);
    if (precision != MM_PRECISION_FP32)
        return mm_fail(MM_ERR_ARG, "--precision %s: the %s device computes in fp32 only; use "
                       "--precision fp32 or --device cuda", mm_precision_name(precision), name);
    return mm_backend_create(name, out);
}

size_t mm_backend_memory_in_use(mm_backend *be)
{
    return be && be->memory_in_use ? be->memory_in_use(be) : 0;
}

void mm_backend_destroy(mm_backend *be)
{
    if (be && be->destroy) be->destroy(be);
}
