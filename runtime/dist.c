/* Data-parallel replicas: see dist.h. */
#include "dist.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "env.h"
#include "group.h"

mm_status mm_replicas_open(const char *device, mm_precision precision, int n, mm_backend **bes)
{
    if (n < 1 || n > MM_MAX_REPLICAS)
        return mm_fail(MM_ERR_ARG, "--replicas %d: use 1 to %d", n, MM_MAX_REPLICAS);
    if (!strcmp(device, "meta"))
        return mm_fail(MM_ERR_ARG, "--replicas: the meta device runs no steps; use cpu or cuda");
    int gpu = mm_backend_gpu_index(device);
    if (gpu == -2) return MM_ERR_ARG;
    char why[256];
    if (gpu >= 0 && n > 1 && !mm_nccl_compiled(why, sizeof why))
        return mm_fail(MM_ERR_DEVICE, "--replicas %d: %s", n, why);
    for (int r = 0; r < n; r++) {
        char name[32];
        snprintf(name, sizeof name, "cuda:%d", gpu + r);
        mm_status st = mm_backend_open(gpu >= 0 ? name : device, precision, &bes[r]);
        if (st != MM_OK) {
            if (r > 0) {
                char why[768];
                snprintf(why, sizeof why, "%s", mm_last_error());
                st = mm_fail(st, "--replicas %d: replica %d: %s", n, r, why);
            }
            while (r-- > 0) mm_backend_destroy(bes[r]);
            return st;
        }
    }
    mm_backend_bind(bes[0]); /* opening each made its GPU current */
    return MM_OK;
}

typedef struct {
    mm_backend *be;
    mm_status (*fn)(int rank, void *arg);
    void *arg;
    int rank;
    mm_status st;
    char why[1024]; /* the failure's message: mm_fail's is per thread */
} each_job;

static void *each_run(void *p)
{
    each_job *j = p;
    mm_backend_bind(j->be);
    j->st = j->fn(j->rank, j->arg);
    if (j->st != MM_OK) snprintf(j->why, sizeof j->why, "%s", mm_last_error());
    return NULL;
}

mm_status mm_replicas_each(mm_backend *const *bes, int n, mm_status (*fn)(int rank, void *arg),
                           void *arg)
{
    MM_ASSERT(n >= 1 && n <= MM_MAX_REPLICAS);
    /* Threads where replicas really run side by side: on GPUs each thread queues its replica's
     * work while the others queue theirs. The cpu's replicas share its cores, and the emulated
     * GPU is one host process state. MM_REPLICA_THREADS=0 / 1 says otherwise (the tests run
     * the cpu's replicas in threads so, the path GPUs take). */
    int asked = mm_env_switch("MM_REPLICA_THREADS");
    bool threads = asked >= 0 ? asked == 1
                              : bes[0]->device == MM_DEVICE_CUDA && !mm_cuda_emulated();
    threads = threads && n > 1 && !(bes[0]->device == MM_DEVICE_CUDA && mm_cuda_emulated());
    each_job jobs[MM_MAX_REPLICAS];
    pthread_t tids[MM_MAX_REPLICAS];
    bool started[MM_MAX_REPLICAS] = {false};
    for (int r = 0; r < n; r++) jobs[r] = (each_job){bes[r], fn, arg, r, MM_OK, ""};
    for (int r = 1; r < n && threads; r++)
        started[r] = pthread_create(&tids[r], NULL, each_run, &jobs[r]) == 0;
    each_run(&jobs[0]);
    for (int r = 1; r < n; r++) {
        if (started[r]) pthread_join(tids[r], NULL);
        else each_run(&jobs[r]); /* in turn (or no thread was to be had) */
    }
    if (n > 1) mm_backend_bind(bes[0]);
    for (int r = 0; r < n; r++)
        if (jobs[r].st != MM_OK) return mm_fail(jobs[r].st, "%s", jobs[r].why);
    return MM_OK;
}

struct mm_comm {
    int n;
    mm_session *s[MM_MAX_REPLICAS];
    mm_group *group; /* other nodes, or NULL */
    mm_nccl *nccl;   /* cuda */
};

mm_status mm_comm_create(mm_session *const *ss, int n, mm_comm **out)
{
    return mm_comm_create_group(ss, n, NULL, out);
}

mm_status mm_comm_create_group(mm_session *const *ss, int n, mm_group *group, mm_comm **out)
{
    *out = NULL;
    MM_ASSERT(n >= 1 && n <= MM_MAX_REPLICAS);
    const mm_backend *be0 = ss[0]->be;
    const mm_plan *p0 = &ss[0]->plan;
    if (be0->device != MM_DEVICE_CPU && be0->device != MM_DEVICE_CUDA)
        return mm_fail(MM_ERR_ARG, "--replicas: the %s device has no gradients to average; use "
                       "cpu or cuda", be0->name);
    for (int r = 1; r < n; r++) {
        const mm_plan *p = &ss[r]->plan;
        if (ss[r]->be->device != be0->device || ss[r]->be->precision != be0->precision)
            return mm_fail(MM_ERR_ARG, "--replicas: replica %d runs on %s in %s, replica 0 on %s "
                           "in %s; they must match", r, ss[r]->be->name,
                           mm_precision_name(ss[r]->be->precision), be0->name,
                           mm_precision_name(be0->precision));
        if (p->param_bytes != p0->param_bytes || p->trainable_bytes != p0->trainable_bytes ||
            p->state_bytes != p0->state_bytes || p->opt_bytes != p0->opt_bytes)
            return mm_fail(MM_ERR_ARG, "--replicas: replica %d's model differs from replica 0's "
                           "(%zu parameter bytes, %zu trainable, against %zu, %zu)", r,
                           p->param_bytes, p->trainable_bytes, p0->param_bytes,
                           p0->trainable_bytes);
    }
    if (group && mm_group_size(group) > 1) {
        /* what the other nodes' replicas must match: their sizes here, the device at joining */
        uint64_t sizes[4] = {p0->param_bytes, p0->trainable_bytes, p0->state_bytes,
                             p0->opt_bytes};
        uint64_t node0[4];
        memcpy(node0, sizes, sizeof sizes);
        MM_TRY(mm_group_broadcast(group, node0, sizeof node0));
        if (memcmp(node0, sizes, sizeof sizes) != 0)
            return mm_fail(MM_ERR_ARG, "--nodes: node %d's model has %llu parameter bytes (%llu "
                           "trainable), node 0's %llu (%llu); run the same model on every node",
                           mm_group_rank(group), (unsigned long long)sizes[0],
                           (unsigned long long)sizes[1], (unsigned long long)node0[0],
                           (unsigned long long)node0[1]);
    } else {
        group = NULL;
    }
    mm_comm *c = mm_xcalloc(1, sizeof *c);
    c->n = n;
    c->group = group;
    for (int r = 0; r < n; r++) c->s[r] = ss[r];
    if (be0->device == MM_DEVICE_CUDA) { /* NCCL even for one GPU: device gradients */
        mm_backend *bes[MM_MAX_REPLICAS];
        for (int r = 0; r < n; r++) bes[r] = ss[r]->be;
        mm_status st = mm_nccl_create(bes, n, group, &c->nccl);
        if (st != MM_OK) {
            free(c);
            return st;
        }
    }
    *out = c;
    return MM_OK;
}

void mm_comm_destroy(mm_comm *c)
{
    if (!c) return;
    mm_nccl_destroy(c->nccl);
    free(c);
}

mm_status mm_comm_average_grads(mm_comm *c)
{
    size_t count = c->s[0]->plan.trainable_bytes / sizeof(float);
    if (count == 0) return MM_OK;
    float *g[MM_MAX_REPLICAS];
    for (int r = 0; r < c->n; r++) g[r] = c->s[r]->grads;
    if (c->nccl) {
        mm_nccl_average(c->nccl, g, count);
        return MM_OK;
    }
    /* cpu: the sum in global rank order, then the mean, written to every replica (host memory:
     * a GPU's gradients always go through NCCL, even one GPU's) */
    MM_ASSERT(c->s[0]->be->device == MM_DEVICE_CPU);
    return mm_group_average(c->group, g, c->n, count);
}

mm_status mm_comm_wait(mm_comm *c)
{
    return c->nccl && c->group ? mm_nccl_wait(c->nccl) : MM_OK;
}

/* Global rank 0's buffer of `bytes` (its params, opt or state: *field(s)) copied to every
 * replica: through the host, and from node 0 to the others through the group. */
static mm_status copy_region(mm_comm *c, void *(*field)(mm_session *s), size_t bytes)
{
    if (bytes == 0 || (c->n < 2 && !c->group)) return MM_OK;
    void *host = mm_xmalloc(bytes);
    bool origin = !c->group || mm_group_rank(c->group) == 0;
    mm_session *s0 = c->s[0];
    if (origin) {
        mm_backend_bind(s0->be);
        s0->be->copy_to_host(s0->be, host, field(s0), bytes);
    }
    mm_status st = c->group ? mm_group_broadcast(c->group, host, bytes) : MM_OK;
    for (int r = origin ? 1 : 0; r < c->n && st == MM_OK; r++) {
        mm_session *s = c->s[r];
        mm_backend_bind(s->be);
        s->be->copy_to_device(s->be, field(s), host, bytes);
        s->be->sync(s->be);
    }
    mm_backend_bind(s0->be);
    free(host);
    return st;
}

static void *params_of(mm_session *s) { return s->params; }
static void *opt_of(mm_session *s) { return s->opt; }
static void *state_of(mm_session *s) { return s->state; }

mm_status mm_comm_copy_weights(mm_comm *c)
{
    const mm_plan *p = &c->s[0]->plan;
    MM_TRY(copy_region(c, params_of, p->param_bytes));
    MM_TRY(copy_region(c, opt_of, p->opt_bytes));
    return copy_region(c, state_of, p->state_bytes);
}
