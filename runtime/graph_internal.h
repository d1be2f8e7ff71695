/* Internals shared by graph.c (builders) and autograd.c (the backward pass). */
#ifndef MM_GRAPH_INTERNAL_H
#define MM_GRAPH_INTERNAL_H

#include "graph.h"

int mm_graph_new_value(mm_graph *g, mm_value_kind kind, mm_dtype dtype, int ndim,
                       const int64_t *shape, const char *name);
int mm_graph_add_node(mm_graph *g, mm_op op, const int *in, int n_in, const int *out, int n_out,
                      const mm_op_params *p, double flops);
/* A view of x with another shape (same elements). */
int mm_graph_reshape(mm_graph *g, int x, int ndim, const int64_t *shape);

/* recompute.c: rewrites the recorded backward nodes to read recomputed copies of cheap forward
 * activations instead of keeping them (graph.h, mm_graph_backward). */
void mm_graph_recompute_pass(mm_graph *g);

#endif
