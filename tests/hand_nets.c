/* Small hand-built training graphs for the graph-pass tests (hand_nets.h). */
#include "tests/hand_nets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nets/nets.h"
#include "runtime/backend.h"
#include "tests/harness.h"

/* ---- building blocks ---- */
int hn_param(hn_builder *b, const char *what, int ndim, const int64_t *shape)
{
    char name[64];
    snprintf(name, sizeof name, "l%d.%s", b->k, what);
    return mm_graph_param(b->g, name, ndim, shape);
}

int hn_conv(hn_builder *b, int x, int cout, int k, int stride, bool bias)
{
    int64_t ws[4] = {cout, k, k, b->g->values[x].shape[3]}, bs[1] = {cout};
    int w = hn_param(b, "weight", 4, ws);
    int bb = bias ? hn_param(b, "bias", 1, bs) : -1;
    b->k++;
    return mm_conv2d(b->g, x, w, bb, stride, k / 2);
}

int hn_bn(hn_builder *b, int x)
{
    int64_t cs[1] = {b->g->values[x].shape[3]};
    int ga = hn_param(b, "gamma", 1, cs), be = hn_param(b, "beta", 1, cs);
    char nm[64], nv[64];
    snprintf(nm, sizeof nm, "l%d.running_mean", b->k);
    snprintf(nv, sizeof nv, "l%d.running_var", b->k);
    int rm = mm_graph_state(b->g, nm, 1, cs), rv = mm_graph_state(b->g, nv, 1, cs);
    b->k++;
    return mm_batchnorm(b->g, x, ga, be, rm, rv, 1e-5f, 0.1f);
}

int hn_cbr(hn_builder *b, int x, int cout, int k, int stride)
{
    return mm_relu(b->g, hn_bn(b, hn_conv(b, x, cout, k, stride, false)));
}

int hn_bottleneck(hn_builder *b, int x, int width, int stride)
{
    int cin = (int)b->g->values[x].shape[3];
    int y = hn_cbr(b, x, width, 1, 1);
    y = hn_cbr(b, y, width, 3, stride);
    y = hn_bn(b, hn_conv(b, y, 4 * width, 1, 1, false));
    int sc = x;
    if (stride != 1 || cin != 4 * width)
        sc = hn_bn(b, hn_conv(b, x, 4 * width, 1, stride, false));
    return mm_relu(b->g, mm_add(b->g, y, sc));
}

int hn_head(hn_builder *b, int x)
{
    int f = mm_global_avgpool(b->g, x);
    int64_t ws[2] = {3, b->g->values[f].shape[1]}, bs[1] = {3}, ls[1] = {2};
    int w = hn_param(b, "fc.weight", 2, ws), bb = hn_param(b, "fc.bias", 1, bs);
    int labels = mm_graph_input(b->g, "labels", MM_I32, 1, ls);
    int sw = mm_graph_input(b->g, "weights", MM_F32, 1, ls);
    return mm_softmax_xent(b->g, mm_dense(b->g, f, w, bb), labels, sw);
}

int hn_chain_net(hn_builder *b, int x)
{
    for (int i = 0; i < 3; i++) x = hn_cbr(b, x, 8, 3, i == 1 ? 2 : 1);
    return hn_head(b, x);
}

int hn_bottleneck_net(hn_builder *b, int x)
{
    x = hn_cbr(b, x, 8, 3, 1);
    x = mm_maxpool(b->g, x, 3, 2, 1); /* ResNet's stem: relu -> max pool */
    x = hn_bottleneck(b, x, 4, 1);        /* projection (channels change) */
    x = hn_bottleneck(b, x, 4, 1);        /* identity shortcuts: a residual chain */
    x = hn_bottleneck(b, x, 4, 1);
    x = hn_bottleneck(b, x, 6, 2);        /* strided projection */
    x = hn_bottleneck(b, x, 6, 1);
    return hn_head(b, x);
}

int hn_vgg_net(hn_builder *b, int x)
{
    for (int blk = 0; blk < 2; blk++) {
        for (int i = 0; i < 2; i++) x = mm_relu(b->g, hn_conv(b, x, 6 + 2 * blk, 3, 1, true));
        x = mm_maxpool(b->g, x, 2, 2, 0);
    }
    x = mm_relu(b->g, hn_conv(b, x, 8, 3, 1, true));
    return hn_head(b, x);
}

/* ---- one training step on the CPU ---- */
static void count_nodes(hn_built *r)
{
    r->n_apply = r->n_conv = r->n_mask = r->n_mask_folded = r->n_bn_bits = r->n_joins = 0;
    r->n_bias = r->n_bias_folded = r->n_grad_adds = r->n_grad_sums = 0;
    for (int n = 0; n < r->g->n_nodes; n++) {
        const mm_node *nd = &r->g->nodes[n];
        bool bn = nd->op == MM_OP_BATCHNORM || nd->op == MM_OP_BN_APPLY;
        r->n_joins += bn && nd->p.bn.add;
        if (n < r->g->n_forward) continue;
        bool folded = nd->op == MM_OP_BN_APPLY && nd->n_out > 1 && nd->out[1] >= 0;
        r->n_mask += nd->op == MM_OP_RELU_MASK || folded;
        r->n_mask_folded += folded;
        r->n_apply += nd->op == MM_OP_BN_APPLY;
        r->n_conv += nd->op == MM_OP_CONV2D;
        r->n_bn_bits += nd->op == MM_OP_BATCHNORM_BWD && nd->p.bn.relu_bwd && nd->p.bn.relu_bits;
        r->n_bias += nd->op == MM_OP_CONV2D_BWD_BIAS;
        r->n_bias_folded += nd->op == MM_OP_RELU_BWD && nd->p.elementwise.colsum_c > 0;
        r->n_grad_adds += nd->op == MM_OP_ADD;
        r->n_grad_sums += nd->op == MM_OP_CONV2D_BWD_DATA && nd->p.conv.accumulate;
    }
}

static void fill_param(mm_session *s, const mm_graph *g, int v, uint64_t seed)
{
    const mm_value *val = &g->values[v];
    int64_t n = mm_shape_numel(val->ndim, val->shape);
    float *buf = malloc((size_t)n * sizeof(float));
    bool gamma = strstr(val->name, "gamma") || strstr(val->name, "running_var");
    bool beta = strstr(val->name, "beta");
    mm_test_fill_uniform(buf, n, seed, gamma ? 0.5f : beta ? -0.2f : -0.5f,
                         gamma ? 1.5f : beta ? 0.6f : 0.5f);
    mm_session_write(s, v, buf, (size_t)n * sizeof(float));
    free(buf);
}

void hn_write_inputs(mm_session *s, const mm_graph *g)
{
    for (int v = 0; v < g->n_values; v++) {
        const mm_value *val = &g->values[v];
        if (val->kind != MM_VALUE_INPUT) continue;
        int64_t n = mm_shape_numel(val->ndim, val->shape);
        if (val->dtype == MM_I32) {
            int32_t *l = malloc((size_t)n * sizeof *l);
            for (int64_t i = 0; i < n; i++) l[i] = (int32_t)((i * 2 + 1) % val->shape[0] % 2);
            mm_session_write(s, v, l, (size_t)n * sizeof *l);
            free(l);
        } else {
            float *x = malloc((size_t)n * sizeof *x);
            if (!strcmp(val->name, "weights") || !strcmp(val->name, "weight"))
                mm_test_fill_uniform(x, n, 77, 0.5f, 2.0f);
            else
                mm_test_fill_uniform(x, n, 78, -1, 1);
            mm_session_write(s, v, x, (size_t)n * sizeof *x);
            free(x);
        }
    }
}

/* Everything a step produces that the graph passes must not change: loss, probabilities,
 * every gradient, every BN running statistic; appended to one array. */
float *hn_results(mm_session *s, const mm_graph *g, int loss, int probs, int64_t *n_out)
{
    int64_t total = 0;
    for (int v = 0; v < g->n_values; v++) {
        const mm_value *val = &g->values[v];
        if (v == loss || v == probs || val->kind == MM_VALUE_GRAD || val->kind == MM_VALUE_STATE)
            total += mm_shape_numel(val->ndim, val->shape);
    }
    float *out = malloc((size_t)total * sizeof(float)), *p = out;
    for (int v = 0; v < g->n_values; v++) {
        const mm_value *val = &g->values[v];
        if (v == loss || v == probs || val->kind == MM_VALUE_GRAD || val->kind == MM_VALUE_STATE) {
            int64_t n = mm_shape_numel(val->ndim, val->shape);
            mm_session_read(s, v, p, (size_t)n * sizeof(float));
            p += n;
        }
    }
    *n_out = total;
    return out;
}

float *hn_run(hn_net net, int h, int w, const hn_options *o, hn_built *r, int64_t *n_res)
{
    hn_builder b = {mm_graph_new(true), 0};
    int64_t xs[4] = {2, h, w, 3};
    int x = mm_graph_input(b.g, "image", MM_F32, 4, xs);
    int loss = net(&b, x);
    CHECK_MSG(mm_graph_status(b.g) == MM_OK, "%s", mm_last_error());
    for (int v = 0; v < b.g->n_values; v++)
        if (b.g->values[v].kind == MM_VALUE_PARAM && o->frozen &&
            mm_name_trainable(b.g->values[v].name, o->frozen))
            mm_graph_set_frozen(b.g, v, true);
    b.g->recompute = o->recompute;
    b.g->recompute_conv_macs = o->conv_macs;
    b.g->relu_mask_bits = !o->no_mask_bits;
    b.g->fuse_relu_bwd = o->fuse_relu_bwd;
    CHECK(mm_graph_backward(b.g, loss) == MM_OK);
    if (o->fuse_residual) mm_graph_fuse_residual(b.g);
    if (o->fuse_bias_grad) mm_graph_fuse_bias_grad(b.g);
    if (o->fuse_grad_add) mm_graph_fuse_grad_add(b.g);
    if (o->fuse_relu_mask) mm_graph_fuse_relu_mask(b.g);
    r->g = b.g;
    r->loss = loss;
    r->probs = mm_graph_xent_probs(b.g, loss);
    r->act_arena = mm_plan_arena_bytes(b.g);
    count_nodes(r);
    mm_backend *be;
    mm_backend_cpu_create(&be);
    mm_session s;
    CHECK(mm_session_init(&s, b.g, be, 2) == MM_OK);
    r->plan = s.plan;
    for (int v = 0; v < b.g->n_values; v++)
        if (b.g->values[v].kind == MM_VALUE_PARAM || b.g->values[v].kind == MM_VALUE_STATE)
            fill_param(&s, b.g, v, 1000 + (uint64_t)v);
    hn_write_inputs(&s, b.g);
    mm_session_run(&s);
    float *res = hn_results(&s, b.g, loss, r->probs, n_res);
    memset(&s.plan, 0, sizeof s.plan); /* r->plan owns the arrays now */
    mm_session_free(&s);
    mm_backend_destroy(be);
    return res;
}

void hn_free(hn_built *r)
{
    mm_plan_free(&r->plan);
    mm_graph_free(r->g);
}

int64_t hn_bitwise_diff(const float *a, const float *b, int64_t n)
{
    int64_t d = 0;
    for (int64_t i = 0; i < n; i++) d += memcmp(&a[i], &b[i], sizeof(float)) != 0;
    return d;
}

float *hn_run_model(const mm_model_config *c, mm_backend *be, hn_built *r, int64_t *n_res)
{
    memset(r, 0, sizeof *r);
    *n_res = 0;
    mm_model m;
    if (mm_model_build(&m, c) != MM_OK) {
        CHECK_MSG(false, "%s", mm_last_error());
        return NULL;
    }
    r->g = m.g;
    r->act_arena = mm_plan_arena_bytes(m.g);
    count_nodes(r);
    r->g = NULL;
    mm_backend *own = NULL;
    if (!be) {
        mm_backend_cpu_create(&own);
        be = own;
    }
    mm_session s;
    float *res = NULL;
    if (mm_session_init(&s, m.g, be, 2) == MM_OK) {
        mm_model_init(&m, &s, 5);
        hn_write_inputs(&s, m.g);
        mm_session_run(&s);
        if (c->training) {
            res = hn_results(&s, m.g, m.loss, m.probs, n_res);
        } else {
            const mm_value *pv = mm_graph_value(m.g, m.probs);
            *n_res = mm_shape_numel(pv->ndim, pv->shape);
            res = malloc((size_t)*n_res * sizeof *res);
            mm_session_read(&s, m.probs, res, (size_t)*n_res * sizeof *res);
        }
        mm_session_free(&s);
    } else {
        CHECK_MSG(false, "session: %s", mm_last_error());
    }
    mm_model_free(&m);
    if (own) mm_backend_destroy(own);
    return res;
}

mm_model_config hn_small_whole(int trunk, const char *top, int h, int w, bool training)
{
    mm_model_config c = mm_model_config_default(MM_MODEL_WHOLE, (mm_trunk)trunk);
    c.top = top;
    c.batch = 2;
    c.height = h;
    c.width = w;
    c.width_div = 16;
    c.training = training;
    return c;
}

int64_t hn_model_flag_diff(mm_model_config *c, bool *flag, hn_built *on, hn_built *off)
{
    int64_t n_on, n_off;
    *flag = true;
    float *a = hn_run_model(c, NULL, on, &n_on);
    *flag = false;
    float *b = hn_run_model(c, NULL, off, &n_off);
    int64_t diff = -1;
    if (a && b && n_on == n_off) diff = hn_bitwise_diff(a, b, n_on);
    CHECK_MSG(diff >= 0, "the steps could not be compared (%lld and %lld results)",
              (long long)n_on, (long long)n_off);
    free(a);
    free(b);
    return diff;
}
