/* A group of processes on several machines (nodes) that train one model together: node 0 listens
 * at the master address, the others connect to it over TCP, and the group's few collective
 * operations go through node 0 (a star): broadcasting node 0's bytes, gathering every node's,
 * and the cpu replicas' gradient average in global rank order. On GPUs the gradients travel by
 * NCCL instead (kernels/cuda/nccl.c); this group then carries NCCL's unique id, each step's
 * losses and node 0's decisions, so a node that stops is noticed here, between steps, as a
 * closed connection rather than as an NCCL call that waits forever.
 *
 *   mm_group *g;
 *   MM_TRY(mm_group_join("node0.cluster:29500", 2, rank, "net=resnet50 batch=2 ...", &g));
 *   MM_TRY(mm_group_broadcast(g, &state, sizeof state));      // node 0's state to every node
 *   ...
 *   mm_group_leave(g);
 *
 * Every node must call the same operations in the same order with the same sizes. A failure
 * (a node left, the network broke) is tier 1 naming the node; the group is unusable after it. */
#ifndef MM_GROUP_H
#define MM_GROUP_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

#define MM_MAX_NODES 1024

typedef struct mm_group mm_group;

/* Forms the group of `nodes` processes: node `rank` 0 listens at `master` ("HOST:PORT", on every
 * interface of its machine, HOST only naming it for the others), ranks 1 .. nodes-1 connect to
 * it, retrying until it listens. Waits at most MM_GROUP_TIMEOUT_S seconds (default 600) for the
 * whole group. `fingerprint` ("key=value ..." of what must agree: the command, the model, the
 * batch, ...) is compared with node 0's; a node whose differs is refused, and the message (on
 * node 0 and on it) names the first key that differs. */
mm_status mm_group_join(const char *master, int nodes, int rank, const char *fingerprint,
                        mm_group **out);

/* Closes the connections. NULL is a no-op. */
void mm_group_leave(mm_group *g);

int mm_group_rank(const mm_group *g);
int mm_group_size(const mm_group *g);

/* Node 0's `bytes` at buf replace every other node's. */
mm_status mm_group_broadcast(mm_group *g, void *buf, size_t bytes);

/* Node 0 receives every node's `bytes` at mine into all[rank * bytes] (its own included); on
 * the other nodes `all` is not touched (may be NULL). */
mm_status mm_group_gather(mm_group *g, const void *mine, void *all, size_t bytes);

/* Returns on every node once every node has called it. */
mm_status mm_group_barrier(mm_group *g);

/* Each node holds `n_local` buffers of `count` floats (global ranks rank*n_local .. + n_local-1,
 * every node the same n_local). Afterwards every buffer of every node holds their mean, summed in
 * global rank order and then divided. g NULL: the buffers of this process alone (the cpu
 * replicas' average of mm_comm_average_grads, with or without other nodes). */
mm_status mm_group_average(mm_group *g, float *const *local, int n_local, size_t count);

/* Parses "HOST:PORT" ("[v6addr]:PORT" too) into host[hn] and *port; tier 1 naming --master. */
mm_status mm_group_parse_master(const char *master, char *host, size_t hn, int *port);

#endif
