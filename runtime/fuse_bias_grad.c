/* Bias gradients done by the ReLU backward that writes their dy (graph.h mm_graph_fuse_bias_grad).
 *
 * VGG's convolutions have a bias and a ReLU after them: the backward pass writes the gradient of
 * the convolution's output with the ReLU's backward, then reads it whole once more only to sum
 * its columns into the bias gradient (MM_OP_CONV2D_BWD_BIAS). The ReLU backward can take those
 * sums while it writes dx: the bias gradient becomes its second output (p.elementwise.colsum_c =
 * the channels), and the bias node becomes MM_OP_NONE. The sums are the same kernel's on the CPU
 * (bitwise the same step); on CUDA one kernel writes dx and the sums' partials.
 *
 * The bias gradient is a parameter gradient (accumulated, read after the step), so taking it at
 * the ReLU backward, a few nodes before the bias node, changes nothing else. A ReLU backward
 * whose output other convolutions' bias nodes read, or that already sums, is left alone. */
#include "graph.h"
#include "graph_internal.h"

int mm_graph_fuse_bias_grad(mm_graph *g)
{
    if (g->status != MM_OK) return 0;
    int fused = 0;
    for (int b = g->n_forward; b < g->n_nodes; b++) {
        mm_node *bias = &g->nodes[b];
        if (bias->op != MM_OP_CONV2D_BWD_BIAS || bias->n_out < 1 || bias->out[0] < 0) continue;
        int dy = bias->in[0], r = g->values[dy].producer;
        if (r < 0 || r >= b) continue;
        mm_node *relu = &g->nodes[r];
        if (relu->op != MM_OP_RELU_BWD || relu->n_out != 1 || relu->out[0] != dy ||
            relu->p.elementwise.colsum_c != 0)
            continue;
        int c = bias->p.conv.k;
        if (c <= 0 || relu->p.elementwise.n % c != 0) continue;
        relu->out[1] = bias->out[0];
        relu->n_out = 2;
        relu->p.elementwise.colsum_c = c;
        relu->flops += bias->flops;
        g->values[bias->out[0]].producer = r;
        mm_graph_node_clear(bias);
        fused++;
    }
    return fused;
}
