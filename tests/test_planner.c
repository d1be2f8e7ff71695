/* Memory planner and graph construction, on the meta backend (shapes only):
 *  - on random graphs with backward passes, no two simultaneously live tensors overlap in the
 *    arena (except an in-place output over the input that dies at its node), nor a node's
 *    scratch any tensor live at that node;
 *  - the peak never exceeds the naive sum, and reuse really happens;
 *  - the flat parameter/gradient layout puts trainable parameters first;
 *  - shape errors are reported, not crashed on. */
#include <string.h>

#include "kernels/philox.h"
#include "runtime/backend.h"
#include "runtime/graph.h"
#include "runtime/planner.h"
#include "tests/harness.h"

static bool inplace_op(mm_op op)
{
    return op == MM_OP_RELU || op == MM_OP_ADD || op == MM_OP_DROPOUT || op == MM_OP_RELU_BWD ||
           op == MM_OP_DROPOUT_BWD || op == MM_OP_BATCHNORM_BWD || op == MM_OP_BN_APPLY ||
           op == MM_OP_BATCHNORM /* a residual join over its residual */ ||
           op == MM_OP_CONV2D_BWD_DATA; /* a gradient sum over the earlier gradient */
}

static bool is_input_of(const mm_node *nd, int v)
{
    for (int i = 0; i < nd->n_in; i++)
        if (nd->in[i] == v) return true;
    return false;
}

/* Checks every pair of arena values; returns the number of illegal overlaps. */
static int count_overlaps(const mm_graph *g, const mm_plan *p)
{
    int bad = 0;
    for (int a = 0; a < g->n_values; a++) {
        if (p->region[a] != MM_REGION_ARENA || g->values[a].view_of >= 0) continue;
        size_t a0 = p->offset[a], a1 = a0 + mm_value_bytes(&g->values[a]);
        for (int b = a + 1; b < g->n_values; b++) {
            if (p->region[b] != MM_REGION_ARENA || g->values[b].view_of >= 0) continue;
            size_t b0 = p->offset[b], b1 = b0 + mm_value_bytes(&g->values[b]);
            if (a1 <= b0 || b1 <= a0) continue; /* disjoint bytes */
            int fa = p->first_node[a], la = p->last_node[a];
            int fb = p->first_node[b], lb = p->last_node[b];
            if (la < fb || lb < fa) continue; /* disjoint lifetimes */
            /* In place: b is the first output of the node where a dies, at the same offset. */
            int first = fa <= fb ? a : b, second = first == a ? b : a;
            int prod = p->first_node[second];
            const mm_node *nd = &g->nodes[prod];
            if (p->last_node[first] == prod && inplace_op(nd->op) && nd->out[0] == second &&
                is_input_of(nd, first) && p->offset[first] == p->offset[second])
                continue;
            bad++;
        }
    }
    /* a node's scratch against every value live at that node */
    for (int n = 0; n < p->n_nodes; n++) {
        if (p->node_ws_bytes[n] == 0) continue;
        size_t w0 = p->node_ws_offset[n], w1 = w0 + p->node_ws_bytes[n];
        bad += w1 > p->arena_bytes;
        for (int v = 0; v < g->n_values; v++) {
            if (p->region[v] != MM_REGION_ARENA || g->values[v].view_of >= 0) continue;
            if (p->first_node[v] > n || p->last_node[v] < n) continue;
            size_t v0 = p->offset[v], v1 = v0 + mm_value_bytes(&g->values[v]);
            bad += !(w1 <= v0 || v1 <= w0);
        }
    }
    return bad;
}

static int param(mm_graph *g, const char *prefix, int i, int ndim, const int64_t *shape)
{
    char name[64];
    snprintf(name, sizeof name, "%s%d", prefix, i);
    return mm_graph_param(g, name, ndim, shape);
}

static int fused_sums; /* gradient sums folded into convolutions, over all random graphs */

/* A random conv net: conv/bn/relu units, random residual joins, pools, then a dense head. */
static mm_graph *random_graph(uint64_t seed, bool recompute, int *n_units_out)
{
    mm_graph *g = mm_graph_new(true);
    g->recompute = recompute;
    int h = 24 + (int)(mm_philox_u32(seed, 0) % 16), c = 3;
    int64_t xs[4] = {2, h, h, c};
    int x = mm_graph_input(g, "image", MM_F32, 4, xs);
    int units = 4 + (int)(mm_philox_u32(seed, 1) % 8);
    int prev[16], n_prev = 0, k = 0;
    for (int u = 0; u < units; u++) {
        uint32_t r = mm_philox_u32(seed, 10 + (uint64_t)u);
        int kc = 4 + (int)(r % 5) * 4, ks = (r >> 4) % 2 ? 3 : 1;
        int64_t ws[4] = {kc, ks, ks, c}, cs[1] = {kc};
        int w = param(g, "w", k, 4, ws);
        int y = mm_conv2d(g, x, w, -1, 1, ks / 2);
        int ga = param(g, "g", k, 1, cs), be = param(g, "b", k, 1, cs);
        char nm[32], nv[32];
        snprintf(nm, sizeof nm, "rm%d", k);
        snprintf(nv, sizeof nv, "rv%d", k);
        int rm = mm_graph_state(g, nm, 1, cs), rv = mm_graph_state(g, nv, 1, cs);
        k++;
        y = mm_batchnorm(g, y, ga, be, rm, rv, 1e-5f, 0.1f);
        /* residual join with an earlier unit of the same shape */
        for (int q = n_prev - 1; q >= 0 && (r >> 8) % 2; q--)
            if (mm_shape_equal(4, g->values[prev[q]].shape, 4, g->values[y].shape)) {
                y = mm_add(g, y, prev[q]);
                break;
            }
        y = mm_relu(g, y);
        if ((r >> 12) % 4 == 0 && g->values[y].shape[1] >= 4) y = mm_maxpool(g, y, 2, 2, 0);
        x = y;
        c = kc;
        if (n_prev < 16) prev[n_prev++] = y;
    }
    int f = mm_global_avgpool(g, x);
    int64_t ws[2] = {3, c}, bs[1] = {3};
    int w = mm_graph_param(g, "fc.weight", 2, ws), b = mm_graph_param(g, "fc.bias", 1, bs);
    int logits = mm_dense(g, f, w, b);
    int64_t ls[1] = {2};
    int labels = mm_graph_input(g, "labels", MM_I32, 1, ls);
    int sw = mm_graph_input(g, "weights", MM_F32, 1, ls);
    int loss = mm_softmax_xent(g, logits, labels, sw);
    /* freeze a few parameters at random */
    for (int v = 0; v < g->n_values; v++)
        if (g->values[v].kind == MM_VALUE_PARAM && mm_philox_u32(seed, 1000 + (uint64_t)v) % 5 == 0)
            mm_graph_set_frozen(g, v, true);
    mm_graph_backward(g, loss);
    if (seed % 4 == 1) mm_graph_fuse_residual(g); /* joins in place over their residual */
    if (seed % 3 == 1) fused_sums += mm_graph_fuse_grad_add(g); /* sums over the earlier grad */
    *n_units_out = units;
    return g;
}

MM_TEST(random_graphs_never_overlap_live_tensors)
{
    mm_backend *be;
    CHECK(mm_backend_meta_create(&be) == MM_OK);
    int reused = 0, inplace = 0, recomputed = 0, scratch = 0;
    for (uint64_t seed = 1; seed <= 120; seed++) {
        int units;
        /* odd seeds recompute cheap activations in the backward pass (the default) */
        mm_graph *g = random_graph(seed, seed % 2 == 1, &units);
        for (int n = g->n_forward; n < g->n_nodes; n++)
            if (g->nodes[n].op == MM_OP_BN_APPLY) {
                recomputed++;
                break;
            }
        CHECK_MSG(mm_graph_status(g) == MM_OK, "seed %llu: %s", (unsigned long long)seed,
                  mm_last_error());
        mm_plan p;
        CHECK(mm_plan_make(&p, g, be, 2) == MM_OK);
        int bad = count_overlaps(g, &p);
        CHECK_MSG(bad == 0, "seed %llu: %d overlapping live tensors", (unsigned long long)seed, bad);
        CHECK(p.arena_bytes <= p.naive_arena_bytes);
        reused += p.arena_bytes < p.naive_arena_bytes;
        inplace += p.n_inplace > 0;
        scratch += p.workspace_bytes > 0;
        /* gradients and optimizer state cover exactly the trainable prefix */
        CHECK_EQ_INT(p.grad_bytes, p.trainable_bytes);
        CHECK_EQ_INT(p.opt_bytes, 2 * p.trainable_bytes);
        for (int v = 0; v < g->n_values; v++) {
            const mm_value *val = &g->values[v];
            if (val->kind != MM_VALUE_PARAM) continue;
            if (val->frozen) {
                CHECK(p.offset[v] >= p.trainable_bytes);
                CHECK(val->grad < 0);
            } else {
                CHECK(p.offset[v] + mm_value_bytes(val) <= p.trainable_bytes);
            }
        }
        mm_plan_free(&p);
        mm_graph_free(g);
    }
    CHECK_EQ_INT(reused, 120);
    CHECK(inplace > 100);
    CHECK(recomputed > 30);
    CHECK_EQ_INT(scratch, 120); /* the meta backend asks for convolution scratch */
    CHECK_MSG(fused_sums > 10, "%d gradient sums folded", fused_sums);
    mm_backend_destroy(be);
}

/* A deep chain: the arena holds what the backward pass needs, far less than the naive sum. */
MM_TEST(chain_reuses_memory_and_runs_relu_in_place)
{
    mm_graph *g = mm_graph_new(false); /* inference: nothing saved for backward */
    int64_t xs[4] = {1, 32, 32, 16}, ws[4] = {16, 3, 3, 16};
    int x = mm_graph_input(g, "x", MM_F32, 4, xs);
    for (int i = 0; i < 20; i++) {
        char name[16];
        snprintf(name, sizeof name, "w%d", i);
        x = mm_relu(g, mm_conv2d(g, x, mm_graph_param(g, name, 4, ws), -1, 1, 1));
    }
    mm_graph_keep(g, x);
    mm_backend *be;
    mm_backend_meta_create(&be);
    mm_plan p;
    CHECK(mm_plan_make(&p, g, be, 0) == MM_OK);
    size_t one = 32 * 32 * 16 * 4, im2col = 9 * one; /* a 3x3 convolution's scratch */
    CHECK_EQ_INT(p.workspace_bytes, im2col);
    CHECK_EQ_INT(p.naive_arena_bytes, 40 * one + im2col);
    CHECK_EQ_INT(p.n_inplace, 20);
    /* at any moment: the conv input and output (ping-pong) and, during a convolution, its
     * scratch; the kept output stays */
    CHECK(p.arena_bytes <= 3 * one + im2col);
    CHECK_EQ_INT(count_overlaps(g, &p), 0);
    mm_plan_free(&p);
    mm_graph_free(g);
    mm_backend_destroy(be);
}

/* conv1 (w1) -> relu -> conv2 (w2) -> gap -> dense (fc) -> loss, with w1 frozen or not. */
static void count_backward(bool freeze_w1, int *filter, int *data, int *w1_grad)
{
    mm_graph *g = mm_graph_new(true);
    int64_t xs[4] = {2, 8, 8, 3}, w1s[4] = {4, 3, 3, 3}, w2s[4] = {4, 1, 1, 4};
    int x = mm_graph_input(g, "x", MM_F32, 4, xs);
    int w1 = mm_graph_param(g, "w1", 4, w1s), w2 = mm_graph_param(g, "w2", 4, w2s);
    int y = mm_relu(g, mm_conv2d(g, x, w1, -1, 2, 1));
    y = mm_conv2d(g, y, w2, -1, 1, 0);
    int f = mm_global_avgpool(g, y);
    int64_t fws[2] = {2, 4}, ls[1] = {2};
    int fw = mm_graph_param(g, "fc", 2, fws);
    int loss = mm_softmax_xent(g, mm_dense(g, f, fw, -1), mm_graph_input(g, "l", MM_I32, 1, ls), -1);
    mm_graph_set_frozen(g, w1, freeze_w1);
    CHECK(mm_graph_backward(g, loss) == MM_OK);
    *filter = *data = 0;
    for (int n = g->n_forward; n < g->n_nodes; n++) {
        *filter += g->nodes[n].op == MM_OP_CONV2D_BWD_FILTER;
        *data += g->nodes[n].op == MM_OP_CONV2D_BWD_DATA;
    }
    *w1_grad = g->values[w1].grad >= 0;
    CHECK(g->values[w2].grad >= 0);
    CHECK(g->values[fw].grad >= 0);
    mm_graph_free(g);
}

MM_TEST(backward_records_weight_gradients_only_for_unfrozen_params)
{
    int filter, data, w1_grad;
    count_backward(false, &filter, &data, &w1_grad);
    CHECK_EQ_INT(filter, 2);
    CHECK_EQ_INT(data, 1); /* into relu(conv1), never into the image */
    CHECK_EQ_INT(w1_grad, 1);
    count_backward(true, &filter, &data, &w1_grad);
    CHECK_EQ_INT(filter, 1); /* w2 only */
    CHECK_EQ_INT(data, 0);   /* nothing below conv2 needs a gradient */
    CHECK_EQ_INT(w1_grad, 0);
}

MM_TEST(shape_errors_are_reported)
{
    mm_graph *g = mm_graph_new(true);
    int64_t xs[4] = {1, 5, 5, 3}, ws[4] = {8, 7, 7, 3}, bad[4] = {8, 3, 3, 4};
    int x = mm_graph_input(g, "x", MM_F32, 4, xs);
    int w = mm_graph_param(g, "big", 4, ws);
    CHECK_EQ_INT(mm_conv2d(g, x, w, -1, 1, 0), -1); /* 7x7 kernel on a 5x5 image */
    CHECK(mm_graph_status(g) == MM_ERR_SHAPE);
    CHECK(strstr(mm_last_error(), "conv2d") != NULL);
    /* sticky: later calls fail too */
    CHECK_EQ_INT(mm_relu(g, x), -1);
    mm_graph_free(g);

    g = mm_graph_new(true);
    x = mm_graph_input(g, "x", MM_F32, 4, xs);
    w = mm_graph_param(g, "w", 4, bad);
    CHECK_EQ_INT(mm_conv2d(g, x, w, -1, 1, 1), -1); /* channel mismatch */
    CHECK(strstr(mm_last_error(), "channels") != NULL);
    mm_graph_free(g);

    g = mm_graph_new(true);
    int64_t zero[2] = {0, 3};
    CHECK_EQ_INT(mm_graph_input(g, "empty", MM_F32, 2, zero), -1);
    CHECK(strstr(mm_last_error(), "empty") != NULL);
    mm_graph_free(g);
}

/* ---- node scratch limited where it raises the arena (backend limit_workspace) ----
 * A meta backend whose convolutions ask for a large scratch unless told to need less, and then
 * need exactly what they are told (as a cuDNN search with a smaller workspace limit would). */
#define BIG_SCRATCH ((size_t)64 << 20)
typedef struct {
    const mm_node *node;
    size_t cap;
} node_cap;
static node_cap caps[4096];
static int n_caps, n_limit_calls;

static size_t capped_of(const mm_node *nd)
{
    for (int i = 0; i < n_caps; i++)
        if (caps[i].node == nd) return caps[i].cap;
    return BIG_SCRATCH;
}

static size_t big_workspace(mm_backend *be, const mm_graph *g, const mm_node *nd)
{
    (void)be, (void)g;
    return nd->op == MM_OP_CONV2D || nd->op == MM_OP_CONV2D_BWD_DATA ? capped_of(nd) : 0;
}

/* Counts a limit_workspace call and keeps the cap it asked for. */
static void note_limit(const mm_node *nd, size_t bytes)
{
    n_limit_calls++;
    if (n_caps < (int)(sizeof caps / sizeof caps[0])) caps[n_caps++] = (node_cap){nd, bytes};
}

static size_t limit_to(mm_backend *be, const mm_graph *g, const mm_node *nd, size_t bytes)
{
    note_limit(nd, bytes);
    return big_workspace(be, g, nd);
}

MM_TEST(scratch_that_raises_the_peak_is_limited)
{
    int units;
    mm_graph *g = random_graph(7, true, &units);
    mm_backend *be;
    CHECK(mm_backend_meta_create(&be) == MM_OK);
    be->workspace_bytes = big_workspace;
    mm_plan apart;
    CHECK(mm_plan_make(&apart, g, be, 2) == MM_OK); /* no limit_workspace: the scratch adds */
    CHECK_EQ_INT(apart.workspace_bytes, BIG_SCRATCH);
    CHECK(apart.arena_bytes >= BIG_SCRATCH);
    CHECK(apart.arena_bytes <= apart.act_arena_bytes + BIG_SCRATCH);
    CHECK_EQ_INT(apart.n_ws_limited, 0);

    be->limit_workspace = limit_to;
    n_caps = n_limit_calls = 0;
    mm_plan p;
    CHECK(mm_plan_make(&p, g, be, 2) == MM_OK);
    CHECK(n_limit_calls > 0);
    CHECK_EQ_INT(p.n_ws_limited, n_limit_calls);
    /* every convolution's scratch now fits in a gap the activations leave at it: the arena is
     * the activations' own */
    CHECK_MSG(p.arena_bytes == p.act_arena_bytes, "arena %zu, activations alone %zu",
              p.arena_bytes, p.act_arena_bytes);
    CHECK(p.arena_bytes < apart.arena_bytes);
    CHECK_EQ_INT(count_overlaps(g, &p), 0);
    for (int n = 0; n < p.n_nodes; n++)
        CHECK(p.node_ws_bytes[n] == big_workspace(be, g, &g->nodes[n]));
    mm_plan_free(&p);
    mm_plan_free(&apart);
    mm_graph_free(g);
    mm_backend_destroy(be);
}

/* With a scratch budget (graph.h scratch_budget) the arena may rise that far above the
 * activations for scratch, and no further. Convolutions asking for 1 MiB here (the activations
 * of this random graph take 0.73 MiB and leave gaps of various sizes): with no budget some are limited; with half a
 * scratch of budget, a node keeps its scratch where the top gap left at it is half a scratch
 * or more, so fewer are; with a whole scratch, none. */
static size_t mid_scratch(mm_backend *be, const mm_graph *g, const mm_node *nd)
{
    (void)be, (void)g;
    if (nd->op != MM_OP_CONV2D && nd->op != MM_OP_CONV2D_BWD_DATA) return 0;
    for (int i = 0; i < n_caps; i++)
        if (caps[i].node == nd) return caps[i].cap;
    return (size_t)1 << 20;
}

static size_t limit_mid(mm_backend *be, const mm_graph *g, const mm_node *nd, size_t bytes)
{
    note_limit(nd, bytes);
    return mid_scratch(be, g, nd);
}

MM_TEST(scratch_budget_lets_scratch_raise_the_peak_that_far)
{
    int units;
    mm_graph *g = random_graph(5, true, &units);
    mm_backend *be;
    CHECK(mm_backend_meta_create(&be) == MM_OK);
    be->workspace_bytes = mid_scratch;
    be->limit_workspace = limit_mid;
    const size_t budgets[3] = {0, (size_t)512 << 10, (size_t)1 << 20};
    int limited[3];
    for (int k = 0; k < 3; k++) {
        g->scratch_budget = budgets[k];
        n_caps = n_limit_calls = 0;
        mm_plan p;
        CHECK(mm_plan_make(&p, g, be, 2) == MM_OK);
        limited[k] = p.n_ws_limited;
        CHECK_MSG(p.arena_bytes <= p.act_arena_bytes + budgets[k],
                  "budget %zu: arena %zu, activations %zu", budgets[k], p.arena_bytes,
                  p.act_arena_bytes);
        CHECK_EQ_INT(count_overlaps(g, &p), 0);
        if (k == 2) CHECK(p.arena_bytes > p.act_arena_bytes); /* the scratch did raise it */
        mm_plan_free(&p);
    }
    CHECK_MSG(limited[0] > limited[1] && limited[1] > 0 && limited[2] == 0,
              "nodes limited with a budget of 0, 1/2 and 1 scratch: %d, %d, %d", limited[0],
              limited[1], limited[2]);
    n_caps = 0;
    mm_graph_free(g);
    mm_backend_destroy(be);
}
