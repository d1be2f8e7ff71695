/* ReLU masks made by the batch norm that writes their ReLU's output (graph.h
 * mm_graph_fuse_relu_mask).
 *
 * relu_mask.c keeps a ReLU's output y as sign bits (MM_OP_RELU_MASK) once the nodes that need y
 * itself are done. In a ResNet those y are recomputed in the backward pass by a batch-norm apply
 * (relu(bn(x)), or a residual join relu(bn(x) + r)), and the mask node then reads all of y back
 * from memory to write 1/32 of it: for ResNet50 at 1152x896 batch 2, 59 masks read 1.5 GB a
 * step in fp32. Where the mask's input is a MM_OP_BN_APPLY's output, the bits become that node's
 * second output, computed from the values it is writing anyway, and the mask node becomes
 * MM_OP_NONE. The bits then live from the apply on instead of from the mask node (1/32 of y,
 * across the nodes that read y in between, typically one filter gradient). Same bits, so the
 * same step. */
#include "graph.h"
#include "graph_internal.h"

int mm_graph_fuse_relu_mask(mm_graph *g)
{
    if (g->status != MM_OK) return 0;
    int folded = 0;
    for (int n = 0; n < g->n_nodes; n++) {
        const mm_node *mask = &g->nodes[n];
        if (mask->op != MM_OP_RELU_MASK) continue;
        int y = mask->in[0], p = g->values[y].producer;
        if (p < 0 || p >= n) continue;
        mm_node *bn = &g->nodes[p];
        if (bn->op != MM_OP_BN_APPLY || bn->n_out != 1 || bn->out[0] != y) continue;
        int bits = mask->out[0];
        bn->out[1] = bits;
        bn->n_out = 2;
        bn->flops += mask->flops;
        g->values[bits].producer = p;
        mm_graph_node_clear(&g->nodes[n]);
        folded++;
    }
    return folded;
}
