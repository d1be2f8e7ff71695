/* A session: a planned graph bound to a backend, with its buffers allocated once. Every step
 * replays the recorded nodes on the same memory; nothing is allocated inside a step.
 *
 *   mm_session s;
 *   MM_TRY(mm_session_init(&s, g, be, 2));          // plan + allocate (2 Adam slots)
 *   mm_session_set_param(&s, id, host_floats);      // or load a checkpoint (nets/, train/)
 *   mm_session_set_input(&s, x, host_images, bytes);
 *   mm_session_run(&s);                             // zero grads, forward, backward
 *   mm_session_get(&s, loss, &loss_value, 4);
 *
 * The graph must outlive the session. */
#ifndef MM_SESSION_H
#define MM_SESSION_H

#include "backend.h"
#include "graph.h"
#include "planner.h"

#include <stdio.h>

typedef struct mm_session {
    mm_graph *g;
    mm_backend *be;
    mm_plan plan;
    void *params, *grads, *opt, *state, *inputs, *arena; /* arena: activations, node scratch */
    void *grad_sum; /* gradient accumulation (mm_session_accumulate): the trainable prefix */
    int64_t step; /* completed steps; dropout seeds and optimizer bias correction use it */
    double *node_seconds; /* profiling (mm_session_profile): time per node, summed over runs */
} mm_session;

/* Turns per-node timing on: every node is followed by a device sync and its wall time is added
 * to node_seconds[node] (this slows the step; for finding the slow ops only). */
void mm_session_profile(mm_session *s);
/* Prints the `top` slowest nodes (op, output shape, ms per run, share) after `runs` runs; where
 * the backend timed a node when choosing how to run it (backend.h chosen_ms: CUDA's convolution
 * searches), that time beside it, and the sum of those nodes both ways. */
void mm_session_profile_print(const mm_session *s, int runs, int top, FILE *f);

mm_status mm_session_init(mm_session *s, mm_graph *g, mm_backend *be, int opt_slots);
void mm_session_free(mm_session *s);

/* Device view of a value (its data points into the session's buffers). */
mm_tensor mm_session_tensor(const mm_session *s, int value);
/* Host <-> device copies of a whole value; `bytes` must equal the value's size. */
mm_status mm_session_write(mm_session *s, int value, const void *host, size_t bytes);
mm_status mm_session_read(const mm_session *s, int value, void *host, size_t bytes);

/* Host <-> device copies of a trainable parameter's optimizer slot (0: Adam's first moment or SGD's
 * momentum, 1: Adam's second moment), for checkpoints. A frozen parameter has none (MM_ERR_ARG). */
mm_status mm_session_write_opt(mm_session *s, int param, int slot, const void *host, size_t bytes);
mm_status mm_session_read_opt(const mm_session *s, int param, int slot, void *host, size_t bytes);

/* Runs the forward nodes only (inference, or the loss before deciding to step). */
void mm_session_forward(mm_session *s);
/* Zeroes the gradients and runs every node: forward then backward. */
void mm_session_run(mm_session *s);
/* mm_session_run recorded as one CUDA graph (the backend's begin_capture / end_capture; it keeps
 * one graph, so capturing another session's step replaces it), and replayed: the same work with
 * one launch. Run the step once without capture first (the backend's lazy set-up cannot be
 * recorded). Recording runs nothing. A step with dropout would replay one mask: the caller
 * refuses that. Capture fails (tier 1, naming --cuda-graph) on a backend without capture or
 * when the driver refuses the graph. */
mm_status mm_session_capture(mm_session *s);
void mm_session_replay(mm_session *s);
/* Zeroes the optimizer state (after a change of which parameters are trainable). */
void mm_session_reset_optimizer(mm_session *s);
/* One fused optimizer update over the trainable prefix of the flat buffers. */
void mm_session_adam(mm_session *s, const mm_adam_params *a);
void mm_session_sgd(mm_session *s, const mm_sgd_params *p);
/* Gradient accumulation: _init allocates grad_sum (the trainable prefix's size; tier 1 when the
 * device has no room), then after the step of micro-batch `micro` of `steps` (>= 2)
 * _accumulate keeps the gradients' running sum there; after the last, the gradients are the
 * mean of the `steps` micro-batches' (summed in order, then divided), ready for the optimizer or
 * the replicas' average. */
mm_status mm_session_accumulate_init(mm_session *s);
void mm_session_accumulate(mm_session *s, int micro, int steps);

/* Flat buffers for checkpoints and the optimizer: the trainable prefix is plan.trainable_bytes. */
static inline float *mm_session_params(const mm_session *s) { return (float *)s->params; }

#endif
