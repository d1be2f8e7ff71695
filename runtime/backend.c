/* Backend lookup by name, and host buffers for the copies of every step. */
#include "backend.h"

#include <stdlib.h>
#include <string.h>

/* "cuda" is GPU 0, "cuda:N" GPU N (PyTorch's spelling). Returns -1 for another name, -2 (with
 * the error set) for a "cuda:" without a GPU index. */
int mm_backend_gpu_index(const char *name)
{
    if (!strcmp(name, "cuda")) return 0;
    if (strncmp(name, "cuda:", 5) != 0) return -1;
    const char *p = name + 5;
    char *end;
    long n = strtol(p, &end, 10);
    if (*p < '0' || *p > '9' || *end || n > 1024) {
        mm_fail(MM_ERR_ARG, "--device %s: use cuda or cuda:N, N the index of a GPU", name);
        return -2;
    }
    return (int)n;
}

mm_status mm_backend_create(const char *name, mm_backend **out)
{
    return mm_backend_open(name, MM_PRECISION_FP32, out);
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

mm_status mm_device_resolve(const char *name, mm_precision precision, mm_device_kind *kind,
                            int *gpu)
{
    *gpu = mm_backend_gpu_index(name);
    if (*gpu == -2) return MM_ERR_ARG;
    *kind = MM_DEVICE_CUDA;
    if (*gpu >= 0) return MM_OK;
    if (strcmp(name, "cpu") && strcmp(name, "meta"))
        return mm_fail(MM_ERR_ARG, "--device %s: unknown device; use cpu, cuda or cuda:N",
                       name);
    if (precision != MM_PRECISION_FP32)
        return mm_fail(MM_ERR_ARG, "--precision %s: the %s device computes in fp32 only; use "
                       "--precision fp32 or --device cuda", mm_precision_name(precision), name);
    *kind = !strcmp(name, "cpu") ? MM_DEVICE_CPU : MM_DEVICE_META;
    return MM_OK;
}

mm_status mm_backend_open(const char *name, mm_precision precision, mm_backend **out)
{
    *out = NULL;
    mm_device_kind kind;
    int gpu;
    MM_TRY(mm_device_resolve(name, precision, &kind, &gpu));
    if (kind == MM_DEVICE_CUDA) return mm_backend_cuda_create_ex(out, precision, gpu);
    return kind == MM_DEVICE_CPU ? mm_backend_cpu_create(out) : mm_backend_meta_create(out);
}

void *mm_host_alloc(mm_backend *be, size_t bytes)
{
    void *p = be && be->host_alloc ? be->host_alloc(be, bytes) : NULL;
    return p ? p : mm_xmalloc(bytes ? bytes : 1);
}

void mm_host_free(mm_backend *be, void *p)
{
    if (!p) return;
    if (be && be->host_free) be->host_free(be, p); /* it frees what it made, else the heap's */
    else free(p);
}

size_t mm_backend_memory_in_use(mm_backend *be)
{
    return be && be->memory_in_use ? be->memory_in_use(be) : 0;
}

void mm_backend_bind(mm_backend *be)
{
    if (be->bind) be->bind(be);
}

void mm_backend_destroy(mm_backend *be)
{
    if (be && be->destroy) be->destroy(be);
}

bool mm_backend_set_algo_cache(mm_backend *be, const char *dir)
{
    size_t n = dir ? strlen(dir) : 0;
    if (n >= sizeof be->algo_cache_dir) return false;
    memcpy(be->algo_cache_dir, dir ? dir : "", n);
    be->algo_cache_dir[n] = '\0';
    return true;
}
