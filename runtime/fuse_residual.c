/* Residual joins finished inside the batch norm before them (graph.h mm_graph_fuse_residual).
 *
 * A ResNet bottleneck ends  y = bn3(x);  s = y + shortcut;  z = relu(s).  Run as three nodes,
 * y and s each make a round trip through memory (written, then read back) for two additions'
 * worth of arithmetic. Where y's only reader is the add and s's only reader is the ReLU, and
 * neither is kept or viewed, the batch norm itself adds the shortcut and applies the ReLU
 * (p.bn.add with the shortcut as in[5], p.bn.relu) and writes z; the add and ReLU nodes become
 * MM_OP_NONE, and y and s are never stored. The same holds for the recomputations of such a
 * block in the backward pass (recompute.c records MM_OP_BN_APPLY -> add -> ReLU). Without a ReLU
 * after it, the add alone is taken in.
 *
 * The fused node takes the add's place in the node order, since the shortcut may be computed
 * after the batch norm (the projection branch is recorded after bn3); the batch norm's inputs
 * are all available earlier, and its other outputs (the saved statistics) are read only by
 * backward nodes, which come later. The kernels compute bn(x) + r and the ReLU in the same
 * floating-point steps as the separate kernels, so the step is bitwise the same (tested). */
#include "graph.h"
#include "graph_internal.h"

/* A node of [from, to) reads one of the values out[1..n_out-1] of node bn. */
static bool others_read_between(const mm_graph *g, const mm_node *bn, int from, int to)
{
    for (int k = from; k < to; k++)
        for (int i = 0; i < g->nodes[k].n_in; i++)
            for (int o = 1; o < bn->n_out; o++)
                if (bn->out[o] >= 0 && g->nodes[k].in[i] == bn->out[o]) return true;
    return false;
}

int mm_graph_fuse_residual(mm_graph *g)
{
    if (g->status != MM_OK) return 0;
    int nn = g->n_nodes, fused = 0;
    mm_graph_uses u = mm_graph_uses_of(g);

    for (int n = 0; n < nn; n++) {
        const mm_node *bn = &g->nodes[n];
        if ((bn->op != MM_OP_BATCHNORM && bn->op != MM_OP_BN_APPLY) || bn->p.bn.add ||
            bn->p.bn.relu || bn->n_in != 5)
            continue;
        int y = bn->out[0];
        if (!mm_graph_single_use(g, &u, y)) continue;
        int a = u.last[y];
        const mm_node *add = &g->nodes[a];
        if (add->op != MM_OP_ADD || a <= n || add->in[0] == add->in[1]) continue;
        if (bn->n_out > 1 && others_read_between(g, bn, n + 1, a)) continue;
        int r = add->in[0] == y ? add->in[1] : add->in[0];
        int s = add->out[0], z = s, j = -1;
        if (mm_graph_single_use(g, &u, s) && g->nodes[u.last[s]].op == MM_OP_RELU) {
            j = u.last[s];
            z = g->nodes[j].out[0];
        }

        mm_node f = *bn;
        f.in[5] = r;
        f.n_in = 6;
        f.p.bn.add = true;
        f.p.bn.relu = j >= 0;
        f.out[0] = z;
        f.flops += add->flops + (j >= 0 ? g->nodes[j].flops : 0);
        g->values[y].producer = -1;
        if (j >= 0) {
            g->values[s].producer = -1;
            u.readers[s] = 0;
            mm_graph_node_clear(&g->nodes[j]);
        }
        u.readers[y] = 0;
        mm_graph_node_clear(&g->nodes[n]);
        g->nodes[a] = f;
        for (int o = 0; o < f.n_out; o++)
            if (f.out[o] >= 0) g->values[f.out[o]].producer = a;
        fused++;
    }
    mm_graph_uses_free(&u);
    return fused;
}
