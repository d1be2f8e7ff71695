/* The meta backend: shapes only. Allocation hands out a placeholder address that is never
 * dereferenced, kernels do nothing, and workspace sizes follow the cpu backend's rules, so a plan
 * made on meta is byte for byte the plan the cpu backend would run: exact peak memory, parameter
 * and FLOP counts for full-size models in milliseconds, on any machine. */
#include <stdint.h>
#include <stdlib.h>

#include "backend.h"

/* A non-NULL address no data is ever read from or written to. */
#define META_ADDRESS ((void *)(uintptr_t)0x1000)

static void *meta_alloc(mm_backend *be, size_t bytes)
{
    (void)be;
    (void)bytes;
    return META_ADDRESS;
}

static void meta_free(mm_backend *be, void *p)
{
    (void)be;
    (void)p;
}

static void meta_copy(mm_backend *be, void *dst, const void *src, size_t bytes)
{
    (void)be;
    (void)dst;
    (void)src;
    (void)bytes;
}

static void meta_zero(mm_backend *be, void *dst, size_t bytes)
{
    (void)be;
    (void)dst;
    (void)bytes;
}

static size_t meta_workspace(mm_backend *be, const mm_graph *g, const mm_node *nd)
{
    (void)be;
    (void)g;
    return mm_cpu_node_workspace(nd); /* the cpu backend's plan, byte for byte */
}

static void meta_run(mm_backend *be, const mm_graph *g, const mm_node *nd, const mm_tensor *in,
                     const mm_tensor *out, void *ws, size_t ws_bytes)
{
    (void)be, (void)g, (void)nd, (void)in, (void)out, (void)ws, (void)ws_bytes;
}

static void meta_adam(mm_backend *be, float *p, float *m, float *v, const float *g, int64_t n,
                      const mm_adam_params *a)
{
    (void)be, (void)p, (void)m, (void)v, (void)g, (void)n, (void)a;
}

static void meta_sgd(mm_backend *be, float *p, float *buf, const float *g, int64_t n,
                     const mm_sgd_params *s)
{
    (void)be, (void)p, (void)buf, (void)g, (void)n, (void)s;
}

static void meta_accumulate(mm_backend *be, float *acc, float *g, int64_t n, int micro,
                            int steps)
{
    (void)be, (void)acc, (void)g, (void)n, (void)micro, (void)steps;
}

static void meta_sync(mm_backend *be) { (void)be; }

static void meta_destroy(mm_backend *be) { free(be); }

mm_status mm_backend_meta_create(mm_backend **out)
{
    mm_backend *be = mm_xcalloc(1, sizeof *be);
    be->name = "meta";
    be->device = MM_DEVICE_META;
    be->alloc = meta_alloc;
    be->free = meta_free;
    be->copy_to_device = meta_copy;
    be->copy_to_host = meta_copy;
    be->copy_device = meta_copy;
    be->zero = meta_zero;
    be->workspace_bytes = meta_workspace;
    be->run_node = meta_run;
    be->adam = meta_adam;
    be->accumulate = meta_accumulate;
    be->sgd = meta_sgd;
    be->sync = meta_sync;
    be->destroy = meta_destroy;
    *out = be;
    return MM_OK;
}
