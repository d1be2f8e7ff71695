/* The backward pass: walks the recorded forward nodes in reverse and appends the nodes that compute
 * the gradient of the loss for every trainable, unfrozen parameter.
 *
 * Conventions: a parameter's gradient is one MM_VALUE_GRAD value that every weight-gradient node
 * accumulates into (+=; the session zeroes the gradient buffer before each step), except that a
 * convolution's filter gradient is written (=) by the first node that writes it (p.conv.overwrite:
 * cuDNN then runs with beta 0). An activation's
 * gradient is written (=) by the first contribution; where branches join (a value read by several
 * nodes, e.g. the shortcut of a residual block) later contributions are summed by an add node.
 * Frozen parameters get no gradient value and their weight-gradient nodes are not recorded; data
 * gradients are recorded only towards values that need them. With g->recompute on, recompute.c
 * then rewrites the backward nodes to recompute cheap activations instead of keeping them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "graph_internal.h"

typedef struct {
    mm_graph *g;
    int *grad_of; /* per value: the value holding d loss / d value, or -1 */
} tape;

static bool needs_grad(const tape *t, int v) { return v >= 0 && t->g->values[v].requires_grad; }

/* The gradient value of a parameter (created on first use, in the gradient buffer). */
static int param_grad(tape *t, int p)
{
    mm_graph *g = t->g;
    if (g->values[p].grad < 0) {
        char name[MM_NAME_MAX];
        snprintf(name, sizeof name, "grad:%.*s", MM_NAME_MAX - 6, g->values[p].name);
        int gv = mm_graph_new_value(g, MM_VALUE_GRAD, MM_F32, g->values[p].ndim,
                                    g->values[p].shape, name);
        g->values[p].grad = gv;
        t->grad_of = mm_xrealloc(t->grad_of, (size_t)g->n_values * sizeof *t->grad_of);
        t->grad_of[gv] = -1;
    }
    return g->values[p].grad;
}

static int new_grad(tape *t, int like)
{
    mm_graph *g = t->g;
    const mm_value *v = &g->values[like];
    int64_t shape[MM_MAX_DIMS];
    memcpy(shape, v->shape, sizeof shape);
    int id = mm_graph_new_value(g, MM_VALUE_ACT, v->dtype, v->ndim, shape, NULL);
    t->grad_of = mm_xrealloc(t->grad_of, (size_t)g->n_values * sizeof *t->grad_of);
    t->grad_of[id] = -1;
    return id;
}

/* Adds a gradient contribution `dv` to value v. */
static void accumulate(tape *t, int v, int dv)
{
    if (t->grad_of[v] < 0) {
        t->grad_of[v] = dv;
        return;
    }
    mm_graph *g = t->g;
    int sum = new_grad(t, v);
    int in[2] = {t->grad_of[v], dv};
    mm_op_params p;
    memset(&p, 0, sizeof p);
    p.elementwise.n = mm_shape_numel(g->values[v].ndim, g->values[v].shape);
    mm_graph_add_node(g, MM_OP_ADD, in, 2, &sum, 1, &p, (double)p.elementwise.n);
    t->grad_of[v] = sum;
}

/* Records `op` computing the data gradient of input x from dy and the given extra inputs. */
static void data_grad(tape *t, mm_op op, int x, const int *in, int n_in, const mm_op_params *p,
                      double flops)
{
    int dx = new_grad(t, x);
    mm_graph_add_node(t->g, op, in, n_in, &dx, 1, p, flops);
    accumulate(t, x, dx);
}

/* The ReLU node whose output is forward node `pool`'s input and read by nothing else, or -1. */
static int sole_relu_before(const mm_graph *g, int pool)
{
    int x = g->nodes[pool].in[0], r = g->values[x].producer;
    if (r < 0 || g->nodes[r].op != MM_OP_RELU || g->values[x].keep) return -1;
    for (int n = 0; n < g->n_forward; n++)
        for (int i = 0; i < g->nodes[n].n_in; i++)
            if (g->nodes[n].in[i] == x && n != pool) return -1;
    return r;
}

static void backward_node(tape *t, int id)
{
    mm_graph *g = t->g;
    mm_node nd = g->nodes[id]; /* a copy: adding nodes may move the array */
    int y = nd.out[0];
    int dy = t->grad_of[y];
    if (nd.op != MM_OP_SOFTMAX_XENT && dy < 0) return; /* nothing flows back through this node */

    switch (nd.op) {
    case MM_OP_CONV2D: {
        int x = nd.in[0], w = nd.in[1], b = nd.in[2];
        double f = nd.flops;
        if (needs_grad(t, w)) {
            mm_op_params p = nd.p;
            p.conv.overwrite = g->values[w].grad < 0; /* the first to write this gradient */
            int in[2] = {dy, x}, dw = param_grad(t, w);
            mm_graph_add_node(g, MM_OP_CONV2D_BWD_FILTER, in, 2, &dw, 1, &p, f);
        }
        if (needs_grad(t, b)) {
            int db = param_grad(t, b);
            mm_graph_add_node(g, MM_OP_CONV2D_BWD_BIAS, &dy, 1, &db, 1, &nd.p,
                              (double)nd.p.conv.n * nd.p.conv.oh * nd.p.conv.ow * nd.p.conv.k);
        }
        if (needs_grad(t, x)) {
            int in[2] = {dy, w};
            data_grad(t, MM_OP_CONV2D_BWD_DATA, x, in, 2, &nd.p, f);
        }
        break;
    }
    case MM_OP_BATCHNORM: {
        int x = nd.in[0], gamma = nd.in[1], beta = nd.in[2];
        MM_ASSERT(nd.p.bn.training); /* eval-mode graphs are built without a backward pass */
        int in[6] = {dy, x, gamma, nd.out[1], nd.out[2], -1};
        int out[3] = {-1, -1, -1};
        mm_op_params bp = nd.p;
        int rb = g->values[dy].producer;
        double relu_flops = 0;
        int rf = rb >= 0 && g->nodes[rb].op == MM_OP_RELU_BWD
                     ? g->values[g->nodes[rb].in[1]].producer : -1;
        if (g->fuse_relu_bwd && rf >= 0 && g->nodes[rf].op == MM_OP_RELU &&
            g->nodes[rf].in[0] == y && g->nodes[rb].out[0] == dy) {
            /* dy comes from the backward of a ReLU applied to this batch norm's own output (not,
             * say, to a residual sum whose gradient other branches share), so nothing else reads
             * it: do that ReLU's backward here and drop its node */
            in[0] = g->nodes[rb].in[0];
            in[5] = g->nodes[rb].in[1];
            bp.bn.relu_bwd = true;
            relu_flops = g->nodes[rb].flops;
            mm_graph_node_clear(&g->nodes[rb]);
            g->values[dy].producer = -1;
        }
        if (needs_grad(t, x)) out[0] = new_grad(t, x);
        if (needs_grad(t, gamma)) out[1] = param_grad(t, gamma);
        if (needs_grad(t, beta)) out[2] = param_grad(t, beta);
        if (out[0] < 0 && out[1] < 0 && out[2] < 0) break;
        mm_graph_add_node(g, MM_OP_BATCHNORM_BWD, in, 6, out, 3, &bp, 2 * nd.flops + relu_flops);
        if (out[0] >= 0) accumulate(t, x, out[0]);
        break;
    }
    case MM_OP_RELU:
        if (needs_grad(t, nd.in[0])) {
            int in[2] = {dy, y};
            data_grad(t, MM_OP_RELU_BWD, nd.in[0], in, 2, &nd.p, nd.flops);
        }
        break;
    case MM_OP_ADD:
        /* Both operands receive dy itself: no kernel. */
        if (needs_grad(t, nd.in[0])) accumulate(t, nd.in[0], dy);
        if (needs_grad(t, nd.in[1])) accumulate(t, nd.in[1], dy);
        break;
    case MM_OP_MAXPOOL:
        if (needs_grad(t, nd.in[0])) {
            MM_ASSERT(nd.n_out > 1 && nd.out[1] >= 0); /* a training pool records its argmax */
            int in[3] = {dy, nd.out[1], y};
            mm_op_params p = nd.p;
            int relu = sole_relu_before(g, id);
            if (relu >= 0) {
                /* pool(relu(u)): the ReLU's backward is the mask y > 0 at each maximum, so the
                 * gradient goes straight to u and neither x nor a ReLU backward is needed; the
                 * ReLU node then sees no gradient and records nothing */
                p.pool.relu_mask = 1;
                data_grad(t, MM_OP_MAXPOOL_BWD, g->nodes[relu].in[0], in, 3, &p, nd.flops);
            } else {
                data_grad(t, MM_OP_MAXPOOL_BWD, nd.in[0], in, 2, &p, nd.flops);
            }
        }
        break;
    case MM_OP_AVGPOOL:
    case MM_OP_ADAPTIVE_AVGPOOL:
    case MM_OP_GLOBAL_AVGPOOL:
        if (needs_grad(t, nd.in[0])) {
            mm_op bwd = nd.op == MM_OP_AVGPOOL            ? MM_OP_AVGPOOL_BWD
                        : nd.op == MM_OP_ADAPTIVE_AVGPOOL ? MM_OP_ADAPTIVE_AVGPOOL_BWD
                                                          : MM_OP_GLOBAL_AVGPOOL_BWD;
            data_grad(t, bwd, nd.in[0], &dy, 1, &nd.p, nd.flops);
        }
        break;
    case MM_OP_DENSE: {
        int x = nd.in[0], w = nd.in[1], b = nd.in[2];
        if (needs_grad(t, w) || needs_grad(t, b)) {
            int in[2] = {dy, x};
            int out[2] = {needs_grad(t, w) ? param_grad(t, w) : -1,
                          needs_grad(t, b) ? param_grad(t, b) : -1};
            mm_graph_add_node(g, MM_OP_DENSE_BWD_WEIGHT, in, 2, out, 2, &nd.p, nd.flops);
        }
        if (needs_grad(t, x)) {
            int in[2] = {dy, w};
            data_grad(t, MM_OP_DENSE_BWD_DATA, x, in, 2, &nd.p, nd.flops);
        }
        break;
    }
    case MM_OP_DROPOUT:
        if (needs_grad(t, nd.in[0])) {
            int in[2] = {dy, nd.out[1]};
            data_grad(t, MM_OP_DROPOUT_BWD, nd.in[0], in, 2, &nd.p, nd.flops);
        }
        break;
    case MM_OP_SOFTMAX_XENT:
        if (y == g->loss && needs_grad(t, nd.in[0])) {
            int in[3] = {nd.out[1], nd.in[1], nd.in[2]};
            data_grad(t, MM_OP_SOFTMAX_XENT_BWD, nd.in[0], in, 3, &nd.p, nd.flops);
        }
        break;
    case MM_OP_FLIP: /* a flip is its own inverse */
        if (needs_grad(t, nd.in[0])) data_grad(t, MM_OP_FLIP, nd.in[0], &dy, 1, &nd.p, 0);
        break;
    case MM_OP_RESHAPE:
        if (needs_grad(t, nd.in[0])) {
            const mm_value *X = &g->values[nd.in[0]];
            int64_t shape[MM_MAX_DIMS];
            memcpy(shape, X->shape, sizeof shape);
            int dx = mm_graph_reshape(g, dy, X->ndim, shape);
            t->grad_of = mm_xrealloc(t->grad_of, (size_t)g->n_values * sizeof *t->grad_of);
            t->grad_of[dx] = -1;
            accumulate(t, nd.in[0], dx);
        }
        break;
    case MM_OP_SOFTMAX:
        MM_ASSERT(!"softmax has no backward: train through mm_softmax_xent");
    default:
        MM_ASSERT(!"backward of a backward node");
    }
}

/* Which values a gradient flows to: trainable unfrozen parameters and everything computed from
 * them. Inputs never need one (the image is data). */
static void mark_requires_grad(mm_graph *g)
{
    for (int i = 0; i < g->n_values; i++) {
        mm_value *v = &g->values[i];
        v->requires_grad = v->kind == MM_VALUE_PARAM && !v->frozen;
    }
    for (int n = 0; n < g->n_nodes; n++) {
        const mm_node *nd = &g->nodes[n];
        bool any = false;
        /* labels and weights of the loss, running statistics of BN carry no gradient */
        int n_diff = nd->op == MM_OP_SOFTMAX_XENT ? 1 : nd->op == MM_OP_BATCHNORM ? 3 : nd->n_in;
        for (int i = 0; i < n_diff; i++) any |= nd->in[i] >= 0 && g->values[nd->in[i]].requires_grad;
        for (int o = 0; o < nd->n_out; o++)
            if (nd->out[o] >= 0 && g->values[nd->out[o]].dtype != MM_U8)
                g->values[nd->out[o]].requires_grad = any;
    }
}

/* See graph.h frozen_bn_eval: such a node drops its saved statistics and becomes an evaluation
 * batch norm; no backward node reads it (nothing below it needs a gradient). */
static void freeze_batchnorms(mm_graph *g)
{
    for (int n = 0; n < g->n_nodes; n++) {
        mm_node *nd = &g->nodes[n];
        if (nd->op != MM_OP_BATCHNORM || !nd->p.bn.training) continue;
        const mm_value *x = &g->values[nd->in[0]], *ga = &g->values[nd->in[1]],
                       *be = &g->values[nd->in[2]];
        bool frozen = ga->kind == MM_VALUE_PARAM && ga->frozen && be->kind == MM_VALUE_PARAM &&
                      be->frozen;
        if (!frozen || x->requires_grad) continue;
        nd->p.bn.training = false;
        for (int o = 1; o < 3; o++) {
            if (nd->out[o] >= 0) g->values[nd->out[o]].producer = -1;
            nd->out[o] = -1;
        }
    }
}

mm_status mm_graph_backward(mm_graph *g, int loss)
{
    if (g->status != MM_OK) return g->status;
    if (g->loss >= 0) return g->status = mm_fail(MM_ERR_ARG, "backward: already recorded");
    if (loss < 0 || loss >= g->n_values || g->values[loss].producer < 0 ||
        g->nodes[g->values[loss].producer].op != MM_OP_SOFTMAX_XENT)
        return g->status = mm_fail(MM_ERR_ARG, "backward: the loss must come from mm_softmax_xent");
    if (!g->training)
        return g->status = mm_fail(MM_ERR_ARG, "backward: the graph was built for evaluation");

    mark_requires_grad(g);
    if (g->frozen_bn_eval) freeze_batchnorms(g);
    g->n_forward = g->n_nodes;
    g->loss = loss;
    tape t = {g, mm_xmalloc((size_t)g->n_values * sizeof(int))};
    for (int i = 0; i < g->n_values; i++) t.grad_of[i] = -1;
    for (int n = g->n_forward - 1; n >= 0; n--) backward_node(&t, n);
    free(t.grad_of);
    if (g->status == MM_OK && g->recompute) mm_graph_recompute_pass(g);
    if (g->status == MM_OK && g->relu_mask_bits) mm_graph_relu_mask_pass(g);
    return g->status;
}
