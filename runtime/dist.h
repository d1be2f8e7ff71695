/* Data parallelism: replicas of one planned training step, one per device, each
 * fed its own images. After every backward pass the replicas' gradients are averaged across the
 * group (one all-reduce over the flat gradient buffer: NCCL between GPUs; between cpu replicas a
 * sum in rank order, the reference) and each replica applies the same optimizer update to the
 * same weights, so the replicas stay identical without sending weights. Batch-norm statistics
 * are each replica's own (rank 0's are the ones checkpoints keep), as PyTorch's
 * DistributedDataParallel without SyncBatchNorm.
 *
 *   mm_backend *bes[N];                     // mm_replicas_open("cuda", fp32, N, bes)
 *   ... build a model and mm_session_init each replica, inside mm_replicas_each
 *   mm_comm *c;  MM_TRY(mm_comm_create(sessions, N, &c));
 *   MM_TRY(mm_comm_copy_weights(c));        // rank 0's weights and statistics to every replica
 *   per step: mm_replicas_each(run the step), mm_comm_average_grads(c), mm_replicas_each(adam)
 *
 * Across machines (--nodes) each process opens its own replicas and joins a process group
 * (runtime/group.h); mm_comm_create_group then spans every node's replicas.
 *
 * A replica's backend serves one thread at a time; mm_replicas_each makes its device current
 * (mm_backend_bind) before handing it to the work of that rank. */
#ifndef MM_DIST_H
#define MM_DIST_H

#include "backend.h"
#include "session.h"

#define MM_MAX_REPLICAS 64

/* n backends for data parallelism on `device`: "cuda" or "cuda:K" takes GPUs K .. K+n-1 (one
 * replica each); "cpu" n cpu backends (for checking: the replicas take turns on the one CPU).
 * Tier 1 naming --replicas when the GPUs are not there or the build has no NCCL. Leaves bes[0]'s
 * device current. Destroy each with mm_backend_destroy. */
mm_status mm_replicas_open(const char *device, mm_precision precision, int n, mm_backend **bes);

/* Runs fn(rank, arg) for every rank with bes[rank]'s device current: on GPUs each from its own
 * thread (returning when every one has returned; the device work they queued may still run), on
 * the cpu and the emulated GPU one after another (MM_REPLICA_THREADS=1: the cpu's in threads
 * too; =0: GPUs' in turn). Returns the first failure by rank, its message carried over to this
 * thread. */
mm_status mm_replicas_each(mm_backend *const *bes, int n, mm_status (*fn)(int rank, void *arg),
                           void *arg);

typedef struct mm_comm mm_comm;
typedef struct mm_group mm_group; /* runtime/group.h: processes on several machines */

/* A group of n sessions of the same planned step (the same net, batch and trainable
 * parameters) on n backends of one kind: cpu, or cuda on distinct GPUs (NCCL). Tier 1 when
 * they differ or NCCL cannot start. */
mm_status mm_comm_create(mm_session *const *ss, int n, mm_comm **out);

/* The same across the nodes of `group` (NULL: this process alone), each holding n replicas: the
 * world is n x nodes replicas, node k's replica r being global rank k * n + r. On GPUs one NCCL
 * communicator over them all (its unique id sent through the group); on the cpu the group's
 * ordered average. Every node calls it, and every later mm_comm_* call, in the same order. */
mm_status mm_comm_create_group(mm_session *const *ss, int n, mm_group *group, mm_comm **out);
void mm_comm_destroy(mm_comm *c);

/* Replaces every session's gradients (the trainable prefix) with their mean over the group; the
 * same values on every replica afterwards. Call from one thread after every replica's step was
 * queued (on CUDA the all-reduce is ordered after it on each replica's stream). Fails (tier 1)
 * only when another node is lost. */
mm_status mm_comm_average_grads(mm_comm *c);

/* Across nodes on GPUs: waits until the replicas' queued work (the last all-reduce among it) is
 * done, failing (tier 1) when NCCL reports another node gone rather than waiting forever; call
 * it before a read that would block on that work. Elsewhere it returns at once. */
mm_status mm_comm_wait(mm_comm *c);

/* Copies global rank 0's weights, optimizer moments and batch-norm statistics to every other
 * replica (at the start of training, after loading a checkpoint into rank 0). */
mm_status mm_comm_copy_weights(mm_comm *c);

/* Backend side (kernels/cuda; absent builds say why): NCCL communicators over CUDA backends on
 * distinct GPUs, and their all-reduce of n float buffers (bufs[rank] on bes[rank]), as one
 * group call from one thread. With a group of several nodes the communicators span every
 * node's GPUs (node 0 makes the unique id and broadcasts it). */
typedef struct mm_nccl mm_nccl;
/* Whether this build has NCCL; when not, why (for the one-line error), in why[n]. */
bool mm_nccl_compiled(char *why, size_t n);
mm_status mm_nccl_create(mm_backend *const *bes, int n, mm_group *group, mm_nccl **out);
void mm_nccl_average(mm_nccl *c, float *const *bufs, size_t count);
/* Waits until every GPU's queued work is done, polling NCCL's asynchronous error meanwhile: a
 * lost node aborts the communicators (tier 1) instead of leaving an all-reduce waiting. */
mm_status mm_nccl_wait(mm_nccl *c);
void mm_nccl_destroy(mm_nccl *c);

#endif
