/* NCCL between the CUDA backends of data-parallel replicas (runtime/dist.h): one communicator per
 * GPU from ncclCommInitAll (across nodes: ncclCommInitRank, the id sent by node 0), and the
 * gradients' all-reduce as one group call from one thread, each replica's on its backend's
 * stream (so after its step, before its optimizer update). Builds without NCCL (MM_HAVE_NCCL
 * unset) say so when asked for more than one GPU. */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../runtime/dist.h"
#include "../../runtime/group.h"
#include "cuda_backend.h"
#include "cuda_check.h"

#ifdef MM_HAVE_NCCL
#include <nccl.h>

struct mm_nccl {
    int n;
    ncclComm_t comms[MM_MAX_REPLICAS];
    cudaStream_t streams[MM_MAX_REPLICAS];
    int devices[MM_MAX_REPLICAS];
    bool aborted; /* mm_nccl_wait found another node gone: the communicators are torn down */
};

static void nccl_die(const char *file, int line, const char *call, ncclResult_t r)
{
    char detail[512];
    snprintf(detail, sizeof detail, "%s returned %d (%s)", call, (int)r, ncclGetErrorString(r));
    mm_die_at(file, line, "NCCL call failed", detail,
              r == ncclSystemError || r == ncclRemoteError
                  ? "a GPU or the link between GPUs failed; NCCL_DEBUG=WARN tells which"
                  : "NCCL_DEBUG=INFO shows what NCCL tried");
}

#define MM_NCCL_CHECK(call)                                                                \
    do {                                                                                   \
        ncclResult_t mm_nr_ = (call);                                                      \
        if (mm_nr_ != ncclSuccess) nccl_die(__FILE__, __LINE__, #call, mm_nr_);            \
    } while (0)

bool mm_nccl_compiled(char *why, size_t n)
{
    (void)why;
    (void)n;
    return true;
}

/* One communicator per local GPU (c->devices), global ranks node * n + r of the whole group's
 * world. */
static ncclResult_t init_across_nodes(mm_nccl *c, mm_group *group, mm_status *st)
{
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    ncclResult_t res = ncclSuccess;
    if (mm_group_rank(group) == 0) res = ncclGetUniqueId(&id);
    /* node 0 sends an id even when it failed, so that no node waits for one */
    int ok = res == ncclSuccess;
    *st = mm_group_broadcast(group, &ok, sizeof ok);
    if (*st == MM_OK && ok) *st = mm_group_broadcast(group, &id, sizeof id);
    if (*st != MM_OK) return ncclSuccess;
    if (!ok) return res != ncclSuccess ? res : ncclSystemError;
    int world = c->n * mm_group_size(group), first = c->n * mm_group_rank(group);
    res = ncclGroupStart();
    for (int r = 0; r < c->n && res == ncclSuccess; r++) {
        MM_CUDA_CHECK(cudaSetDevice(c->devices[r]));
        res = ncclCommInitRank(&c->comms[r], world, id, first + r);
    }
    ncclResult_t end = ncclGroupEnd();
    return res != ncclSuccess ? res : end;
}

mm_status mm_nccl_create(mm_backend *const *bes, int n, mm_group *group, mm_nccl **out)
{
    *out = NULL;
    MM_ASSERT(n >= 1 && n <= MM_MAX_REPLICAS);
    mm_nccl *c = mm_xcalloc(1, sizeof *c);
    c->n = n;
    for (int r = 0; r < n; r++) {
        const mm_cuda_ctx *ctx = bes[r]->ctx;
        c->devices[r] = ctx->device;
        c->streams[r] = ctx->stream;
        for (int q = 0; q < r; q++)
            if (c->devices[q] == ctx->device) {
                free(c);
                return mm_fail(MM_ERR_ARG, "--replicas: replicas %d and %d are both on GPU %d; "
                               "NCCL needs one replica per GPU", q, r, ctx->device);
            }
    }
    mm_status st = MM_OK;
    ncclResult_t res = group ? init_across_nodes(c, group, &st)
                             : ncclCommInitAll(c->comms, n, c->devices);
    if (group) MM_CUDA_CHECK(cudaSetDevice(c->devices[0]));
    if (st != MM_OK || res != ncclSuccess) {
        free(c);
        if (st != MM_OK) return st;
        return mm_fail(MM_ERR_DEVICE, "--replicas %d%s: NCCL cannot connect the GPUs: %s "
                       "(NCCL_DEBUG=WARN says why)", n, group ? " --nodes" : "",
                       ncclGetErrorString(res));
    }
    *out = c;
    return MM_OK;
}

void mm_nccl_average(mm_nccl *c, float *const *bufs, size_t count)
{
    MM_NCCL_CHECK(ncclGroupStart());
    for (int r = 0; r < c->n; r++)
        MM_NCCL_CHECK(ncclAllReduce(bufs[r], bufs[r], count, ncclFloat32, ncclAvg, c->comms[r],
                                    c->streams[r]));
    MM_NCCL_CHECK(ncclGroupEnd());
}

/* Polls instead of blocking in a copy: a kernel of NCCL waiting for a node that is gone would
 * never finish, while NCCL reports the lost link as the communicator's asynchronous error;
 * then the communicators are aborted (which ends their kernels) and the trainer stops. */
mm_status mm_nccl_wait(mm_nccl *c)
{
    for (;;) {
        bool busy = false;
        for (int r = 0; r < c->n; r++) {
            MM_CUDA_CHECK(cudaSetDevice(c->devices[r]));
            cudaError_t e = cudaStreamQuery(c->streams[r]);
            if (e == cudaErrorNotReady) busy = true;
            else MM_CUDA_CHECK(e);
        }
        if (!busy) break;
        for (int r = 0; r < c->n; r++) {
            ncclResult_t lost = ncclSuccess;
            MM_NCCL_CHECK(ncclCommGetAsyncError(c->comms[r], &lost));
            if (lost == ncclSuccess || lost == ncclInProgress) continue;
            for (int q = 0; q < c->n; q++) ncclCommAbort(c->comms[q]);
            c->aborted = true;
            MM_CUDA_CHECK(cudaSetDevice(c->devices[0]));
            return mm_fail(MM_ERR_DEVICE, "--nodes: NCCL lost another node's GPU (%s) in the "
                           "gradients' all-reduce; that node's own output says why",
                           ncclGetErrorString(lost));
        }
        sched_yield(); /* as CUDA's own wait spins: the step's end is seen at once */
    }
    MM_CUDA_CHECK(cudaSetDevice(c->devices[0]));
    return MM_OK;
}

void mm_nccl_destroy(mm_nccl *c)
{
    if (!c) return;
    for (int r = 0; r < c->n && !c->aborted; r++) ncclCommDestroy(c->comms[r]);
    free(c);
}

#else /* no NCCL in this build */

static const char no_nccl[] = "this build has no NCCL (nccl.h and libnccl were not found next "
                              "to the CUDA toolkit); install NCCL and rebuild, or use one GPU";

bool mm_nccl_compiled(char *why, size_t n)
{
    if (why) snprintf(why, n, "%s", no_nccl);
    return false;
}

mm_status mm_nccl_create(mm_backend *const *bes, int n, mm_group *group, mm_nccl **out)
{
    (void)bes;
    (void)group;
    *out = NULL;
    return mm_fail(MM_ERR_DEVICE, "--replicas %d: %s", n, no_nccl);
}

void mm_nccl_average(mm_nccl *c, float *const *bufs, size_t count)
{
    (void)c;
    (void)bufs;
    (void)count;
    MM_ASSERT(!"mm_nccl_average without NCCL");
}

mm_status mm_nccl_wait(mm_nccl *c)
{
    (void)c;
    return MM_OK;
}

void mm_nccl_destroy(mm_nccl *c) { (void)c; }

#endif
