/* Recomputation of cheap activations in the backward pass (graph.h, mm_graph_backward).
 *
 * After autograd.c has recorded the backward nodes, this pass decides which forward activations
 * the backward nodes read ("saved" values) need not be kept from the forward pass, and rewrites
 * the backward node list so that those nodes read a copy recomputed just before the first of
 * them.
 *
 * A forward value is available in the backward pass when it is kept (saved and not dropped), a
 * parameter or step input, or recomputable: the first output of a RELU, ADD, MAXPOOL, training
 * BATCHNORM, or of a CONV2D costing at most g->recompute_conv_macs multiply-adds per output
 * element, whose activation inputs are available in turn (for BN: x and the saved mean and
 * invstd, which BN's backward keeps). A saved value is dropped when it is recomputable, not kept
 * as an output of the step, and no view shares its memory. So dropping never makes another value
 * live longer than it already was: everything a recomputation reads is kept anyway, or itself
 * recomputed. Typical cases:
 *   conv -> BN -> ReLU -> conv   the ReLU output (read by the next convolution's filter gradient
 *                                and by ReLU's backward) comes back as relu(bn(x)) from the conv
 *                                output x that BN's backward keeps (one MM_OP_BN_APPLY node);
 *   residual block output        relu(bn3(conv3) + shortcut), where the shortcut is a BN of a
 *                                kept conv output or the previous block's output: a chain of
 *                                cheap element-wise nodes back to the stage's first block;
 *   max pool of a kept value     recomputed from it (VGG's block outputs);
 *   cheap convolutions           (recompute_conv_macs) ResNet50's stem and its 1x1 expansions
 *                                from 64 or 128 channels, VGG16's first convolution: outputs
 *                                that are large for what they cost to compute again (at most
 *                                two convolutions in a row, the stem's and one reading it).
 * A conv -> ReLU (VGG) output is not dropped unless the convolution is recomputable: the conv
 * output it would come from is not kept (the ReLU runs in place over it).
 *
 * Copies recomputed for a backward node that reads them directly are cached and shared by the
 * later backward readers of the same value; copies made only as a step towards another value
 * (a residual chain) are temporaries, so a chain is recomputed again where a later node needs an
 * earlier link, unless keeping that link from its first copy on does not raise the peak: the pass
 * tries that for every value it made more than once, the chains that move the most bytes first,
 * planning the arena each time (planner.h, no backend). With g->recompute_slack it then tries the
 * links it left once more, and keeps one that raises the arena where each byte it adds saves at
 * least MM_RECOMPUTE_BYTES_PER_BYTE bytes of the backward pass's memory traffic and the arena
 * stays within the slack over the smallest one found (ResNet50 at 1152x896, batch 2: 105
 * batch-norm applies for its 67 batch norms without slack, 78 with 10%, for 8.7% more arena).
 * The recomputing nodes are the forward ops themselves (same kernels, same arithmetic) except BN,
 * which becomes MM_OP_BN_APPLY with the saved statistics: the CPU forward computes
 * y = (x - mean) * (gamma * invstd) + beta with the very same float mean and invstd, so the copy
 * is bitwise the forward value and gradients do not change.
 *
 * The temporaries of a recomputation can, in a small net, raise the backward pass's peak above
 * what keeping the values cost: the pass plans the arena both ways and keeps the step as
 * recorded when recomputing does not make it smaller. */
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "graph_internal.h"
#include "planner.h"

#define MM_RECOMPUTE_CONV_DEPTH 2
/* With g->recompute_slack: the backward traffic a kept link must save per byte it adds to the
 * arena. Eight bytes of HBM traffic per byte of memory: at ~3.5 TB/s, 100 MiB more must save
 * 0.25 ms of every step. */
#define MM_RECOMPUTE_BYTES_PER_BYTE 8.0

typedef struct {
    mm_graph *g;
    int nf;        /* forward nodes */
    int nv;        /* values before this pass */
    bool *saved;   /* per value: read by a backward node */
    bool *dropped; /* saved, but recomputed instead of kept */
    bool *avail;   /* readable in the backward pass: kept or recomputable */
    int *conv_depth; /* not kept: the convolutions in a row that getting it back runs */
    int *cache;    /* per value: a recomputed copy later backward nodes may read, or -1 */
    bool *keep_temp; /* per value: cache its copy even when made as a step towards another */
    int *made;       /* per value: copies made by the last rewrite */
} rc_pass;

static bool is_act(const mm_graph *g, int v) { return v >= 0 && g->values[v].kind == MM_VALUE_ACT; }

static bool kept(const rc_pass *r, int v)
{
    return !is_act(r->g, v) || (r->saved[v] && !r->dropped[v]);
}

/* Multiply-adds per output element of a convolution node: r * s * c_in. */
static int64_t conv_macs_per_output(const mm_graph *g, const mm_node *nd)
{
    const mm_value *w = &g->values[nd->in[1]];
    return mm_shape_numel(w->ndim, w->shape) / w->shape[0];
}

/* The activation inputs a recomputation of node nd's first output reads (BN: x and the saved
 * statistics; gamma and beta are parameters). Returns their count, 0 if nd is not recomputable. */
static int recompute_inputs(const mm_graph *g, const mm_node *nd, int *in)
{
    switch (nd->op) {
    case MM_OP_CONV2D:
        if (conv_macs_per_output(g, nd) > g->recompute_conv_macs) return 0;
        in[0] = nd->in[0];
        return 1;
    case MM_OP_RELU:
    case MM_OP_MAXPOOL: in[0] = nd->in[0]; return 1;
    case MM_OP_ADD:
        in[0] = nd->in[0];
        in[1] = nd->in[1];
        return 2;
    case MM_OP_BATCHNORM:
        if (!nd->p.bn.training || nd->n_out < 3) return 0;
        in[0] = nd->in[0];
        in[1] = nd->out[1];
        in[2] = nd->out[2];
        return 3;
    default: return 0;
    }
}

/* Decides saved / dropped / avail for every forward value. */
static void analyse(rc_pass *r)
{
    mm_graph *g = r->g;
    bool *has_view = mm_xcalloc((size_t)r->nv, sizeof *has_view);
    for (int v = 0; v < r->nv; v++)
        if (g->values[v].view_of >= 0) has_view[g->values[v].view_of] = true;
    for (int n = r->nf; n < g->n_nodes; n++)
        for (int i = 0; i < g->nodes[n].n_in; i++)
            if (is_act(g, g->nodes[n].in[i])) r->saved[g->nodes[n].in[i]] = true;
    for (int n = 0; n < r->nf; n++) {
        const mm_node *nd = &g->nodes[n];
        int in[3], k = recompute_inputs(g, nd, in);
        /* Last output first: BN's recomputation reads its own saved statistics. */
        for (int o = nd->n_out - 1; o >= 0; o--) {
            int v = nd->out[o];
            if (!is_act(g, v)) continue;
            const mm_value *val = &g->values[v];
            bool rec = o == 0 && k > 0 && val->view_of < 0 && !has_view[v] && !val->keep;
            const bool is_conv = nd->op == MM_OP_CONV2D;
            int depth = 0; /* convolutions in a row that getting v back runs */
            for (int i = 0; rec && i < k; i++) {
                rec = !is_act(g, in[i]) || r->avail[in[i]];
                if (rec && is_act(g, in[i]) && !kept(r, in[i]) && r->conv_depth[in[i]] > depth)
                    depth = r->conv_depth[in[i]];
            }
            /* At most MM_RECOMPUTE_CONV_DEPTH convolutions in a row (the stem's, then the one
             * reading the pool after it): longer chains, repeated down a residual stage, would
             * multiply the work. */
            if (is_conv && ++depth > MM_RECOMPUTE_CONV_DEPTH) rec = false;
            r->dropped[v] = r->saved[v] && rec;
            r->avail[v] = r->saved[v] || rec;
            r->conv_depth[v] = rec ? depth : 0;
        }
    }
    free(has_view);
}

static int emit(rc_pass *r, int like, mm_op op, const int *in, int n_in, const mm_op_params *p,
                double flops)
{
    mm_graph *g = r->g;
    const mm_value *L = &g->values[like];
    int y = mm_graph_new_value(g, MM_VALUE_ACT, L->dtype, L->ndim, L->shape, NULL);
    mm_graph_add_node(g, op, in, n_in, &y, 1, p, flops);
    return y;
}

static int ensure(rc_pass *r, int v, bool direct);

/* How many nodes recomputing v takes now (0: kept or cached). */
static int chain_nodes(const rc_pass *r, int v)
{
    if (kept(r, v) || r->cache[v] >= 0) return 0;
    int in[3], k = recompute_inputs(r->g, &r->g->nodes[r->g->values[v].producer], in);
    int total = 1;
    for (int i = 0; i < k; i++) total += chain_nodes(r, in[i]);
    return total;
}

/* The bytes remaking v from kept values alone reads and writes. */
static double chain_bytes(const rc_pass *r, int v)
{
    if (kept(r, v)) return 0.0;
    const mm_graph *g = r->g;
    int in[3], k = recompute_inputs(g, &g->nodes[g->values[v].producer], in);
    double total = (double)mm_value_bytes(&g->values[v]);
    for (int i = 0; i < k; i++)
        total += (double)mm_value_bytes(&g->values[in[i]]) + chain_bytes(r, in[i]);
    return total;
}

/* The activation bytes the backward nodes read and write, one pass each. */
static double backward_traffic(const rc_pass *r)
{
    double t = 0.0;
    for (int n = r->nf; n < r->g->n_nodes; n++)
        t += mm_node_activation_bytes(r->g, &r->g->nodes[n]);
    return t;
}

/* The recomputed inputs a and b of a binary node, the longer chain first: its temporaries are
 * gone before the other operand's copy is made. */
static void ensure_pair(rc_pass *r, int a, int b, int *ra, int *rb)
{
    if (chain_nodes(r, b) > chain_nodes(r, a)) {
        *rb = ensure(r, b, false);
        *ra = ensure(r, a, false);
    } else {
        *ra = ensure(r, a, false);
        *rb = ensure(r, b, false);
    }
}

/* A value readable now that equals forward value v: v itself when kept, else a recomputed copy
 * (recording the nodes that make it). `direct`: a backward node reads it (cache the copy). */
static int ensure(rc_pass *r, int v, bool direct)
{
    mm_graph *g = r->g;
    if (kept(r, v)) return v;
    if (r->cache[v] >= 0) return r->cache[v];
    MM_ASSERT(r->avail[v]);
    const mm_node nd = g->nodes[g->values[v].producer]; /* a copy: emitting moves the array */
    MM_ASSERT(nd.out[0] == v);
    double n_el = (double)mm_shape_numel(g->values[v].ndim, g->values[v].shape);
    int y;
    switch (nd.op) {
    case MM_OP_RELU: {
        int u = nd.in[0];
        const mm_node *pu = g->values[u].producer >= 0 ? &g->nodes[g->values[u].producer] : NULL;
        if (pu && pu->op == MM_OP_BATCHNORM && pu->out[0] == u && !kept(r, u) && r->cache[u] < 0) {
            /* relu(bn(x)) in one pass */
            mm_node bn = *pu;
            int in[5] = {ensure(r, bn.in[0], false), bn.in[1], bn.in[2], ensure(r, bn.out[1], false),
                         ensure(r, bn.out[2], false)};
            bn.p.bn.relu = true;
            y = emit(r, v, MM_OP_BN_APPLY, in, 5, &bn.p, 3.0 * n_el);
        } else {
            int in[1] = {ensure(r, u, false)};
            y = emit(r, v, MM_OP_RELU, in, 1, &nd.p, nd.flops);
        }
        break;
    }
    case MM_OP_ADD: {
        int in[2];
        ensure_pair(r, nd.in[0], nd.in[1], &in[0], &in[1]);
        y = emit(r, v, MM_OP_ADD, in, 2, &nd.p, nd.flops);
        break;
    }
    case MM_OP_MAXPOOL: {
        int in[1] = {ensure(r, nd.in[0], false)};
        y = emit(r, v, MM_OP_MAXPOOL, in, 1, &nd.p, nd.flops);
        break;
    }
    case MM_OP_CONV2D: { /* the same node over a recomputed input; weights and bias as they are */
        int in[MM_NODE_MAX_IN];
        memcpy(in, nd.in, sizeof in);
        in[0] = ensure(r, nd.in[0], false);
        y = emit(r, v, MM_OP_CONV2D, in, nd.n_in, &nd.p, nd.flops);
        break;
    }
    case MM_OP_BATCHNORM: {
        int in[5] = {ensure(r, nd.in[0], false), nd.in[1], nd.in[2], ensure(r, nd.out[1], false),
                     ensure(r, nd.out[2], false)};
        mm_op_params p = nd.p;
        p.bn.relu = false;
        y = emit(r, v, MM_OP_BN_APPLY, in, 5, &p, 2.0 * n_el);
        break;
    }
    default: MM_ASSERT(!"recompute: a value marked recomputable has no recomputing op");
    }
    if (direct || r->keep_temp[v]) r->cache[v] = y;
    r->made[v]++;
    return y;
}

/* Re-records the backward nodes of the recorded graph in order, each after the recomputations
 * it needs. */
static void rewrite(rc_pass *r, const mm_graph_snapshot *recorded)
{
    mm_graph *g = r->g;
    mm_graph_snapshot_restore(g, recorded);
    for (int v = 0; v < r->nv; v++) r->cache[v] = -1, r->made[v] = 0;
    int nb = g->n_nodes - r->nf;
    mm_node *bw = mm_xmalloc((size_t)(nb ? nb : 1) * sizeof *bw);
    memcpy(bw, g->nodes + r->nf, (size_t)nb * sizeof *bw);
    g->n_nodes = r->nf;
    for (int b = 0; b < nb; b++) {
        mm_node *nd = &bw[b];
        for (int i = 0; i < nd->n_in; i++) {
            int v = nd->in[i];
            if (v >= 0 && v < r->nv && r->dropped[v]) nd->in[i] = ensure(r, v, true);
        }
        mm_graph_add_node(g, nd->op, nd->in, nd->n_in, nd->out, nd->n_out, &nd->p, nd->flops);
    }
    free(bw);
}

/* The links the smallest arena left to be remade (cand, costliest first) tried again: one is
 * kept where the arena stays within g->recompute_slack of *best (the smallest found) and each
 * byte it adds saves MM_RECOMPUTE_BYTES_PER_BYTE of backward traffic; twice over the list, as
 * a link kept can make another worth it. *best becomes the arena of what is kept. */
static void trade(rc_pass *r, const mm_graph_snapshot *recorded, const int *cand, int n_cand,
                  size_t *best)
{
    mm_graph *g = r->g;
    size_t cap = *best + (size_t)((double)*best * g->recompute_slack);
    size_t arena = *best;
    rewrite(r, recorded);
    double traffic = backward_traffic(r);
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n_cand; i++) {
            if (r->keep_temp[cand[i]]) continue;
            r->keep_temp[cand[i]] = true;
            rewrite(r, recorded);
            size_t bytes = mm_plan_arena_bytes(g);
            double t = backward_traffic(r), saved = traffic - t;
            bool worth = bytes <= arena ||
                         (bytes <= cap && saved > 0 &&
                          (double)(bytes - arena) * MM_RECOMPUTE_BYTES_PER_BYTE <= saved);
            if (worth) {
                arena = bytes;
                traffic = t;
            } else {
                r->keep_temp[cand[i]] = false;
            }
        }
    *best = arena;
}

void mm_graph_recompute_pass(mm_graph *g)
{
    rc_pass r = {g, g->n_forward, g->n_values, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    size_t nv1 = (size_t)r.nv + 1;
    r.saved = mm_xcalloc(nv1, sizeof *r.saved);
    r.dropped = mm_xcalloc(nv1, sizeof *r.dropped);
    r.avail = mm_xcalloc(nv1, sizeof *r.avail);
    r.conv_depth = mm_xcalloc(nv1, sizeof *r.conv_depth);
    r.cache = mm_xmalloc(nv1 * sizeof *r.cache);
    r.keep_temp = mm_xcalloc(nv1, sizeof *r.keep_temp);
    r.made = mm_xcalloc(nv1, sizeof *r.made);
    analyse(&r);
    bool any = false;
    for (int v = 0; v < r.nv; v++) any |= r.dropped[v];
    if (any) {
        mm_graph_snapshot recorded = mm_graph_snapshot_take(g);
        size_t kept_all = mm_plan_arena_bytes(g);
        rewrite(&r, &recorded);
        size_t best = mm_plan_arena_bytes(g);
        /* A value made more than once (a link of a residual chain, a convolution's input) is
         * worth keeping from its first copy on where that does not raise the peak: try them one
         * by one, the costliest to remake first, and keep each choice that does not. */
        int *cand = mm_xmalloc(nv1 * sizeof *cand), n_cand = 0;
        double *cost = mm_xcalloc(nv1, sizeof *cost);
        for (int v = 0; v < r.nv; v++)
            if (r.made[v] > 1) {
                cost[v] = (r.made[v] - 1) * chain_bytes(&r, v);
                cand[n_cand++] = v;
            }
        for (int i = 1; i < n_cand; i++) /* insertion sort, costliest first */
            for (int j = i; j > 0 && cost[cand[j]] > cost[cand[j - 1]]; j--) {
                int t = cand[j];
                cand[j] = cand[j - 1];
                cand[j - 1] = t;
            }
        for (int i = 0; i < n_cand; i++) {
            r.keep_temp[cand[i]] = true;
            rewrite(&r, &recorded);
            size_t bytes = mm_plan_arena_bytes(g);
            if (bytes <= best) best = bytes;
            else r.keep_temp[cand[i]] = false;
        }
        if (g->recompute_slack > 0) trade(&r, &recorded, cand, n_cand, &best);
        free(cand);
        free(cost);
        rewrite(&r, &recorded);
        /* Recomputed temporaries (a residual chain, a max pool's input) can raise the peak of the
         * backward pass above what keeping the values cost; then keep them after all. */
        if (best > kept_all) mm_graph_snapshot_restore(g, &recorded);
        mm_graph_snapshot_free(&recorded);
    }
    free(r.saved);
    free(r.dropped);
    free(r.avail);
    free(r.conv_depth);
    free(r.cache);
    free(r.keep_temp);
    free(r.made);
}
