/* Memory planner v1.
 *
 * Liveness analysis over the recorded step (forward and backward nodes in execution order) gives
 * every activation an offset in ONE arena: a value is live from the node that writes it to the last
 * node that reads it (a view extends the life of the value it views); memory is reused once its
 * last reader has run (aligned to 256 bytes). Element-wise ops whose kernel allows it (relu, add,
 * dropout, their backward, scale, batchnorm_apply, a batch norm's residual join, a summing data
 * gradient) run in place when their input dies at that node. Each node's scratch (the backend's
 * workspace_bytes(): im2col buffers, cuDNN workspaces) is placed in the same arena, live while its
 * node runs. Placement: a walk in execution order (best fit over free blocks), then, knowing
 * every lifetime, the storages placed again in three orders, and the activations alone with each
 * scratch in the lowest gap free at its node (planner.c); the smallest arena is kept. Recomputed activations (graph.h,
 * g->recompute) are ordinary values here: the backward nodes that read them make the forward
 * copies die early.
 *
 * Parameters, gradients and optimizer state each live in one flat buffer with the same layout:
 * trainable (unfrozen) parameters come first, in graph order, so the gradient buffer and every
 * optimizer slot cover exactly the prefix [0, trainable_bytes) of the parameter buffer and the
 * optimizer is one fused update over flat arrays. Frozen parameters follow and get no gradient or
 * optimizer memory. BN running statistics live in a separate state buffer; step inputs (images,
 * labels, sample weights) in an input buffer.
 *
 * The plan depends only on shapes and the backend's workspace needs, so it is the same on cpu and
 * meta (the meta backend gives exact peaks for full-size models on any machine).
 *
 * A backend that can (limit_workspace) is asked to shrink the scratch of every node whose scratch
 * would raise the arena above what the activations alone need plus g->scratch_budget (0 by
 * default: scratch only lives in gaps), and the step is planned again.
 *
 * MM_NO_INPLACE=1 in the environment turns in-place execution off (for debugging a kernel);
 * MM_NO_WS_LIMIT=1 leaves every node's scratch as the backend first asked (no limit_workspace). */
#ifndef MM_PLANNER_H
#define MM_PLANNER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "backend.h"
#include "graph.h"

#define MM_PLAN_ALIGN 256

typedef enum mm_region {
    MM_REGION_NONE = 0,
    MM_REGION_PARAM,
    MM_REGION_GRAD,
    MM_REGION_STATE,
    MM_REGION_INPUT,
    MM_REGION_ARENA,
} mm_region;

typedef struct mm_plan {
    int n_values;
    mm_region *region;  /* per value */
    size_t *offset;     /* per value: byte offset in its region */
    int *first_node;    /* per value: node that writes it (-1: before the step) */
    int *last_node;     /* per value: last node that reads it (views extend it) */
    int *storage_end;   /* per value that owns arena storage (not in place, not a view): the
                         * last node reading it or a value sharing it in place; else -1 */

    size_t param_bytes;      /* all parameters */
    size_t trainable_bytes;  /* the prefix of the parameter buffer that is trainable */
    size_t grad_bytes;       /* == trainable_bytes */
    size_t opt_bytes;        /* opt_slots * trainable_bytes */
    size_t state_bytes;      /* BN running statistics */
    size_t input_bytes;
    size_t arena_bytes;      /* activations and node scratch (peak of the arena) */
    size_t workspace_bytes;  /* the largest node scratch (inside the arena, see below) */
    size_t naive_arena_bytes;/* sum of all activations, no reuse: what a naive allocator would need */
    size_t live_peak_bytes;  /* the most arena bytes live at once (arena_bytes less fragmentation) */
    int live_peak_node;      /* the node at which they were live */
    int opt_slots;
    int n_inplace;           /* nodes run in place */
    int64_t n_params, n_trainable; /* element counts */
    double flops_forward, flops_backward;
    /* Per node: the backend's scratch (workspace_bytes()) and its offset in the arena. A node's
     * scratch is placed like an activation that lives during that node only, so a large one
     * (cuDNN's, im2col's) costs nothing where the arena has room at that point of the step. */
    int n_nodes;
    size_t *node_ws_bytes;
    size_t *node_ws_offset;
    size_t *node_ws_room;    /* nodes with scratch: the largest gap the activations alone leave
                              * at the node below their top plus g->scratch_budget (what its
                              * scratch may use) */
    size_t act_arena_bytes;  /* the activations alone, placed without the nodes' scratch */
    int n_ws_limited;        /* nodes asked to need less scratch (backend limit_workspace) */
} mm_plan;

/* Plans `g` for backend `be` (for workspace sizes) with `opt_slots` optimizer buffers the size of
 * the trainable parameters (2 for Adam, 1 for SGD with momentum, 0 for inference). Where a node's
 * scratch raises the arena above the activations' own top and the backend can limit it
 * (limit_workspace), that node is asked to fit in the room the activations leave at it, and the
 * step is planned once more with the smaller scratch. */
mm_status mm_plan_make(mm_plan *plan, const mm_graph *g, mm_backend *be, int opt_slots);
void mm_plan_free(mm_plan *plan);

/* Total device bytes of one step: parameters + gradients + optimizer + state + inputs + arena
 * (which holds the node scratch). */
size_t mm_plan_peak_bytes(const mm_plan *plan);

/* The arena bytes of g's step planned without a backend (for the graph passes that compare
 * rewrites); SIZE_MAX when g cannot be planned. */
size_t mm_plan_arena_bytes(const mm_graph *g);
/* Prints the breakdown, one "name bytes (MiB)" line each, ending with "peak_bytes=N". */
void mm_plan_print(const mm_plan *plan, FILE *f);
/* Prints what is live in the arena at its peak: the node, then the `top` largest values (shape,
 * the op that made them, the node that last needs them). What to recompute or fuse next. */
void mm_plan_print_live(const mm_plan *plan, const mm_graph *g, int top, FILE *f);
/* Prints the activation bytes g's nodes read and write, each input and output counted once, by
 * op (MM_OP_NONE and views left out), then the total and that of the nodes other than
 * convolutions: the memory traffic of the memory-bound part of the step, at the least (a kernel
 * that reads its input twice, as batch norm's statistics and normalisation do, moves more).
 * fused_relu: the ReLUs that their batch norm or biased convolution applies as it writes (the
 * cuda backend's fusion, mm_graph_relu_after) move nothing and are counted apart. */
void mm_graph_print_traffic(const mm_graph *g, bool fused_relu, FILE *f);

#endif
