/* Gradient sums done by the convolution backward before them (graph.h mm_graph_fuse_grad_add).
 *
 * Where a value feeds two branches (a ResNet block's input: the shortcut and conv1), autograd
 * sums the branches' gradients with an add node: the later contribution, typically a
 * convolution's data gradient, is written whole, then read back with the earlier one and a sum
 * written. cuDNN can add the gradient it computes to what its output already holds (beta 1), so
 * the convolution takes the earlier gradient as in[2] (p.conv.accumulate) and writes the sum;
 * the planner lets it write over in[2] when that dies there, and the add becomes MM_OP_NONE.
 *
 * Taken only where the convolution's output is read by the add alone and the earlier gradient is
 * computed before the convolution and read last by the add (so its memory can be written over);
 * the sum then appears at the convolution, a few nodes before the add, where nothing reads it
 * yet. On the CPU the node computes its gradient into scratch and adds, bitwise the add. */
#include "graph.h"
#include "graph_internal.h"

int mm_graph_fuse_grad_add(mm_graph *g)
{
    if (g->status != MM_OK) return 0;
    int fused = 0;
    mm_graph_uses u = mm_graph_uses_of(g);

    for (int a = g->n_forward; a < g->n_nodes; a++) {
        mm_node *add = &g->nodes[a];
        if (add->op != MM_OP_ADD || add->n_in != 2 || add->in[0] == add->in[1]) continue;
        for (int side = 1; side >= 0; side--) {
            int q = add->in[side], o = add->in[1 - side], c = g->values[q].producer;
            if (c < 0 || c >= a) continue;
            mm_node *conv = &g->nodes[c];
            if (conv->op != MM_OP_CONV2D_BWD_DATA || conv->p.conv.accumulate || conv->n_in != 2)
                continue;
            if (!mm_graph_single_use(g, &u, q)) continue;
            if (g->values[o].producer >= c || u.last[o] != a || g->values[o].keep || u.viewed[o])
                continue;
            if (g->values[o].dtype != g->values[q].dtype) continue;
            conv->in[2] = o;
            conv->n_in = 3;
            conv->p.conv.accumulate = 1;
            conv->out[0] = add->out[0];
            conv->flops += add->flops;
            g->values[q].producer = -1;
            g->values[add->out[0]].producer = c;
            u.last[o] = c;
            mm_graph_node_clear(add);
            fused++;
            break;
        }
    }
    mm_graph_uses_free(&u);
    return fused;
}
