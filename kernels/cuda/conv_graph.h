/* Convolutions through cuDNN's graph (backend) API: the engines cuDNN 9 offers to an operation
 * graph, which the legacy cudnnConvolution* calls of conv_cudnn.c reach only in part (PyTorch runs
 * its convolutions this way, through cudnn-frontend). conv_search.c times the plans made here
 * against its legacy algorithms on the same operands and keeps the fastest.
 *
 * A convolution direction is one operation in a graph of its own: x [n,c,h,w], w [k,c,r,s] and
 * y [n,k,oh,ow] described in cuDNN's logical NCHW order with NHWC strides (the filter OHWI),
 * unique ids 1, 2, 3 by role (x or dx, w or dw, y or dy), 16-byte aligned. */
#ifndef MM_CONV_GRAPH_H
#define MM_CONV_GRAPH_H

#include <cudnn.h>
#include <stdbool.h>
#include <stdint.h>

#include "../../runtime/tensor.h"
#include "../dims.h"

/* Directions, as conv_entry.h numbers them. */
enum { MM_CONV_GRAPH_FWD = 1, MM_CONV_GRAPH_BWD_DATA = 2, MM_CONV_GRAPH_BWD_FILTER = 3 };

typedef struct mm_conv_graph {
    cudnnBackendDescriptor_t x, w, y, conv, op, graph;
} mm_conv_graph;

/* Builds and finalizes the three tensors, the convolution (fp32 compute, cross-correlation) and
 * the operation of direction dir, with output blending beta (1: the output accumulates, as the
 * fp32 filter gradient does; 0: it is overwritten); then, given a handle, the operation graph
 * (without one, for checks on machines without a GPU, g->graph stays NULL). Returns the first
 * failing status; on failure what was made is destroyed. x and y are declared aligned to `align`
 * bytes (16, or less for chunks of samples that start off 16 bytes), w to 16. */
cudnnStatus_t mm_conv_graph_init(mm_conv_graph *g, cudnnHandle_t h, int dir, const mm_conv_dims *d,
                                 mm_dtype t, float beta, int align);
void mm_conv_graph_free(mm_conv_graph *g);

/* An execution plan of a graph, with what the search and the log need. */
typedef struct mm_conv_plan {
    cudnnBackendDescriptor_t plan;
    size_t ws_bytes;
    int64_t engine;   /* cuDNN's global engine index */
    uint64_t knobs;   /* a hash of the configuration's knob choices (tile sizes, splits...) */
    bool tensor_core; /* runs on tensor cores (TF32 for fp32 data) */
    bool rtc;         /* a runtime-compiled engine */
    bool nondeterministic; /* cuDNN notes it may give different bits run to run */
} mm_conv_plan;

/* Which engines a search may take. */
typedef struct mm_conv_graph_want {
    bool tensor_core; /* false: fp32 without TF32 */
    bool rtc;         /* runtime-compiled engines (each plan compiles kernels when finalized) */
    size_t ws_limit;  /* the most workspace a plan may need */
    bool deterministic; /* only engines without cuDNN's nondeterministic note */
    bool only_engine;   /* only configurations of engine `engine` (a choice kept on disk) */
    int64_t engine;
} mm_conv_graph_want;

/* Up to max finalized plans for g: the engine configurations of cuDNN's heuristics mode A, best
 * first, then those of its fallback list. Skipped: configurations that do not finalize, need
 * more workspace than w->ws_limit, down-convert their inputs, use what w does not allow, or
 * repeat an earlier one (the same engine and knob choices: the fallback list repeats engines of
 * mode A). Returns how many were written to out. */
int mm_conv_graph_plans(cudnnHandle_t h, const mm_conv_graph *g, const mm_conv_graph_want *w,
                        mm_conv_plan *out, int max);
void mm_conv_plan_free(mm_conv_plan *p);

/* Runs plan p on the handle's stream: x, w, y by role as in the graph (x is dx for the data
 * gradient, w is dw for the filter gradient, y is dy for both), ws of p->ws_bytes. */
cudnnStatus_t mm_conv_plan_run(cudnnHandle_t h, const mm_conv_plan *p, const void *x,
                               const void *w, const void *y, void *ws);

#endif
