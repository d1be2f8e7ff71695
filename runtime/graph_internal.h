/* Internals shared by graph.c (builders) and autograd.c (the backward pass). */
#ifndef MM_GRAPH_INTERNAL_H
#define MM_GRAPH_INTERNAL_H

#include "graph.h"

/* A value as mm_graph_new_value makes it (no producer, no view, no gradient), in place (the CUDA
 * op tests build their own value lists). */
void mm_value_init(mm_value *v, mm_value_kind kind, mm_dtype dtype, int ndim, const int64_t *shape,
                   const char *name);
int mm_graph_new_value(mm_graph *g, mm_value_kind kind, mm_dtype dtype, int ndim,
                       const int64_t *shape, const char *name);
int mm_graph_add_node(mm_graph *g, mm_op op, const int *in, int n_in, const int *out, int n_out,
                      const mm_op_params *p, double flops);
/* A view of x with another shape (same elements). */
int mm_graph_reshape(mm_graph *g, int x, int ndim, const int64_t *shape);

/* A copy of the node and value lists, to rewrite the backward pass again or go back to it (the
 * graph passes after autograd). */
typedef struct mm_graph_snapshot {
    mm_node *nodes;
    mm_value *values;
    int n_nodes, n_values;
} mm_graph_snapshot;
mm_graph_snapshot mm_graph_snapshot_take(const mm_graph *g);
void mm_graph_snapshot_restore(mm_graph *g, const mm_graph_snapshot *s);
void mm_graph_snapshot_free(mm_graph_snapshot *s);

/* Who reads each value, for the graph passes: readers[v] counts the node inputs reading v,
 * last[v] is the last node reading it (-1: none), viewed[v] says a view shares its memory. */
typedef struct mm_graph_uses {
    int *readers, *last;
    bool *viewed;
} mm_graph_uses;
mm_graph_uses mm_graph_uses_of(const mm_graph *g);
void mm_graph_uses_free(mm_graph_uses *u);
/* v is read by exactly one node, not kept after the step, and no view shares it. */
bool mm_graph_single_use(const mm_graph *g, const mm_graph_uses *u, int v);
/* The RELU node that node n, a batch norm or a biased convolution, may apply itself as it writes
 * its output (kernels/cuda/fuse.c): the RELU is that output's one reader and the output is not
 * kept, so nobody sees it without the ReLU. -1 when there is none. */
int mm_graph_relu_after(const mm_graph *g, const mm_graph_uses *u, int n);
/* Empties node nd whose work a pass folded into another node: MM_OP_NONE, no inputs, outputs or
 * flops (the node that took the work counts them). */
void mm_graph_node_clear(mm_node *nd);

/* recompute.c: rewrites the recorded backward nodes to read recomputed copies of cheap forward
 * activations instead of keeping them (graph.h, mm_graph_backward). */
void mm_graph_recompute_pass(mm_graph *g);
/* relu_mask.c: see graph.h relu_mask_bits. */
void mm_graph_relu_mask_pass(mm_graph *g);

#endif
