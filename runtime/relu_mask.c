/* ReLU masks as bits (graph.h relu_mask_bits), a pass over the backward nodes after recompute.c.
 *
 * A ReLU's backward reads its output y only for the sign: dx = y > 0 ? dy : 0 (so does a batch
 * norm's backward with that ReLU's backward folded in, graph.h fuse_relu_bwd). When other
 * backward nodes read y before the ReLU backward does (the filter gradient of the convolution
 * that y feeds, typically), y otherwise stays alive from the last of them until the ReLU
 * backward, across that convolution's data gradient: at the front of VGG16 at 1152x896 that is
 * a whole 64-channel full-resolution tensor next to the two gradients around it. Here an
 * MM_OP_RELU_MASK node is recorded right after y's last other reader, keeping y > 0 as bits
 * (1/32 of y in fp32), and the ReLU backward reads the bits instead; y then dies at that reader.
 * The bits are exact, so the gradients are bitwise the same. The pass plans the arena both ways
 * and keeps the step as it was unless the bits make it smaller. */
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "graph_internal.h"
#include "planner.h"

/* The input slot of node nd that a ReLU's output y fills only for its sign, or -1: a ReLU
 * backward's y, or that of a batch-norm backward with the ReLU's backward folded in. */
static int sign_slot(const mm_node *nd)
{
    if (nd->op == MM_OP_RELU_BWD && !nd->p.elementwise.bits) return 1;
    if (nd->op == MM_OP_BATCHNORM_BWD && nd->p.bn.relu_bwd && !nd->p.bn.relu_bits) return 5;
    return -1;
}

/* For each node n reading a y for its sign (sign_slot), the backward node after which y's bits
 * are made: y's last other reader before n, when nothing after n reads y. -1: leave n alone. */
static int *mask_points(const mm_graph *g)
{
    int nn = g->n_nodes, nf = g->n_forward;
    int *after = mm_xmalloc((size_t)(nn ? nn : 1) * sizeof *after);
    int *last = mm_xmalloc((size_t)(g->n_values ? g->n_values : 1) * sizeof *last);
    int *sign_reader = mm_xmalloc((size_t)(g->n_values ? g->n_values : 1) * sizeof *sign_reader);
    for (int v = 0; v < g->n_values; v++) last[v] = sign_reader[v] = -1;
    for (int n = 0; n < nn; n++) after[n] = -1;
    /* walking the backward nodes in order: last[v] is v's latest reader so far */
    for (int n = nf; n < nn; n++) {
        const mm_node *nd = &g->nodes[n];
        int slot = sign_slot(nd);
        if (slot >= 0) {
            int y = nd->in[slot];
            /* a second sign reader of the same y, or y read again later: no bits */
            after[n] = sign_reader[y] < 0 && last[y] >= nf ? last[y] : -1;
            if (sign_reader[y] >= 0) after[sign_reader[y]] = -1;
            sign_reader[y] = n;
        }
        for (int i = 0; i < nd->n_in; i++) {
            int v = nd->in[i];
            if (v < 0) continue;
            if (sign_reader[v] >= 0 && sign_reader[v] != n) after[sign_reader[v]] = -1;
            if (i != slot) last[v] = n;
        }
    }
    free(last);
    free(sign_reader);
    return after;
}

/* Node nd (sign_slot) reads y's sign from the bits value instead. */
static void read_bits(mm_node *nd, int bits)
{
    if (nd->op == MM_OP_BATCHNORM_BWD) {
        nd->in[5] = bits;
        nd->p.bn.relu_bits = true;
    } else {
        nd->in[1] = bits;
        nd->p.elementwise.bits = true;
    }
}

/* Elements of the y that node nd (sign_slot) reads. */
static int64_t sign_count(const mm_node *nd)
{
    return nd->op == MM_OP_BATCHNORM_BWD ? nd->p.bn.m * nd->p.bn.c : nd->p.elementwise.n;
}

void mm_graph_relu_mask_pass(mm_graph *g)
{
    int nn = g->n_nodes, nf = g->n_forward;
    int *after = mask_points(g);
    bool any = false;
    for (int n = nf; n < nn; n++) any |= after[n] >= 0;
    if (!any) {
        free(after);
        return;
    }
    mm_graph_snapshot recorded = mm_graph_snapshot_take(g);
    size_t before = mm_plan_arena_bytes(g);
    /* Re-record the backward nodes in order; after node t, the masks of the ReLU backward nodes
     * whose point is t. */
    int *bits = mm_xmalloc((size_t)nn * sizeof *bits);
    for (int n = 0; n < nn; n++) bits[n] = -1;
    g->n_nodes = nf;
    for (int n = nf; n < nn; n++) {
        mm_node nd = recorded.nodes[n];
        if (after[n] >= 0) read_bits(&nd, bits[n]);
        mm_graph_add_node(g, nd.op, nd.in, nd.n_in, nd.out, nd.n_out, &nd.p, nd.flops);
        for (int r = n + 1; r < nn; r++) {
            if (after[r] != n) continue;
            const mm_node *rb = &recorded.nodes[r];
            int64_t count = sign_count(rb), shape[1] = {(count + 7) / 8};
            bits[r] = mm_graph_new_value(g, MM_VALUE_ACT, MM_U8, 1, shape, NULL);
            mm_op_params p;
            memset(&p, 0, sizeof p);
            p.elementwise.n = count;
            int y = rb->op == MM_OP_BATCHNORM_BWD ? rb->in[5] : rb->in[1];
            mm_graph_add_node(g, MM_OP_RELU_MASK, &y, 1, &bits[r], 1, &p, (double)count);
        }
    }
    if (mm_plan_arena_bytes(g) >= before) mm_graph_snapshot_restore(g, &recorded);
    mm_graph_snapshot_free(&recorded);
    free(bits);
    free(after);
}
