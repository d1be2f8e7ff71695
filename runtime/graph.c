/* Graph building: values, nodes and the shape rule of every op (this is also the meta backend's
 * whole job: shapes and FLOPs, no data). The autograd pass lives in autograd.c. */
#include "graph.h"
#include "graph_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *op_names[MM_OP_COUNT] = {
    [MM_OP_NONE] = "none",
    [MM_OP_CONV2D] = "conv2d",
    [MM_OP_CONV2D_BWD_DATA] = "conv2d_bwd_data",
    [MM_OP_CONV2D_BWD_FILTER] = "conv2d_bwd_filter",
    [MM_OP_CONV2D_BWD_BIAS] = "conv2d_bwd_bias",
    [MM_OP_BATCHNORM] = "batchnorm",
    [MM_OP_BATCHNORM_BWD] = "batchnorm_bwd",
    [MM_OP_BN_APPLY] = "batchnorm_apply",
    [MM_OP_RELU] = "relu",
    [MM_OP_RELU_BWD] = "relu_bwd",
    [MM_OP_RELU_MASK] = "relu_mask",
    [MM_OP_ADD] = "add",
    [MM_OP_MAXPOOL] = "maxpool",
    [MM_OP_MAXPOOL_BWD] = "maxpool_bwd",
    [MM_OP_AVGPOOL] = "avgpool",
    [MM_OP_AVGPOOL_BWD] = "avgpool_bwd",
    [MM_OP_ADAPTIVE_AVGPOOL] = "adaptive_avgpool",
    [MM_OP_ADAPTIVE_AVGPOOL_BWD] = "adaptive_avgpool_bwd",
    [MM_OP_GLOBAL_AVGPOOL] = "global_avgpool",
    [MM_OP_GLOBAL_AVGPOOL_BWD] = "global_avgpool_bwd",
    [MM_OP_DENSE] = "dense",
    [MM_OP_DENSE_BWD_DATA] = "dense_bwd_data",
    [MM_OP_DENSE_BWD_WEIGHT] = "dense_bwd_weight",
    [MM_OP_DROPOUT] = "dropout",
    [MM_OP_DROPOUT_BWD] = "dropout_bwd",
    [MM_OP_SOFTMAX] = "softmax",
    [MM_OP_SOFTMAX_XENT] = "softmax_xent",
    [MM_OP_SOFTMAX_XENT_BWD] = "softmax_xent_bwd",
    [MM_OP_FLIP] = "flip",
    [MM_OP_RESHAPE] = "reshape",
};

const char *mm_op_name(mm_op op) { return op >= 0 && op < MM_OP_COUNT ? op_names[op] : "?"; }

double mm_node_activation_bytes(const mm_graph *g, const mm_node *nd)
{
    double b = 0.0;
    for (int i = 0; i < nd->n_in + nd->n_out; i++) {
        int v = i < nd->n_in ? nd->in[i] : nd->out[i - nd->n_in];
        if (v >= 0 && g->values[v].kind == MM_VALUE_ACT)
            b += (double)mm_value_bytes(&g->values[v]);
    }
    return b;
}

const char *mm_node_op_name(const mm_node *nd)
{
    switch (nd->op) {
    case MM_OP_BATCHNORM:
    case MM_OP_BN_APPLY:
        if (!nd->p.bn.add) break;
        if (nd->op == MM_OP_BATCHNORM) return nd->p.bn.relu ? "batchnorm+add+relu" : "batchnorm+add";
        return nd->p.bn.relu ? "bn_apply+add+relu" : "bn_apply+add";
    case MM_OP_BATCHNORM_BWD:
        if (nd->p.bn.relu_bwd) return "relu_bwd+bn_bwd";
        break;
    case MM_OP_RELU_BWD:
        if (nd->p.elementwise.colsum_c > 0) return "relu_bwd+bias_bwd";
        break;
    case MM_OP_CONV2D_BWD_DATA:
        if (nd->p.conv.accumulate) return "conv_bwd_data+add";
        break;
    default: break;
    }
    return mm_op_name(nd->op);
}

size_t mm_value_bytes(const mm_value *v)
{
    return (size_t)mm_shape_numel(v->ndim, v->shape) * mm_dtype_size(v->dtype);
}

mm_graph *mm_graph_new(bool training)
{
    mm_graph *g = mm_xcalloc(1, sizeof *g);
    g->training = training;
    g->loss = -1;
    g->seed = 0x6d616d6d6fULL;
    g->act_dtype = MM_F32;
    g->frozen_bn_eval = true;
    g->recompute = true;
    g->relu_mask_bits = true;
    return g;
}

void mm_graph_free(mm_graph *g)
{
    if (!g) return;
    free(g->values);
    free(g->nodes);
    free(g);
}

mm_status mm_graph_status(const mm_graph *g) { return g->status; }

mm_graph_snapshot mm_graph_snapshot_take(const mm_graph *g)
{
    mm_graph_snapshot s = {mm_xmalloc((size_t)(g->n_nodes ? g->n_nodes : 1) * sizeof(mm_node)),
                           mm_xmalloc((size_t)(g->n_values ? g->n_values : 1) * sizeof(mm_value)),
                           g->n_nodes, g->n_values};
    memcpy(s.nodes, g->nodes, (size_t)g->n_nodes * sizeof(mm_node));
    memcpy(s.values, g->values, (size_t)g->n_values * sizeof(mm_value));
    return s;
}

void mm_graph_snapshot_restore(mm_graph *g, const mm_graph_snapshot *s)
{
    /* the lists only grew since the snapshot, so they have room */
    memcpy(g->nodes, s->nodes, (size_t)s->n_nodes * sizeof(mm_node));
    memcpy(g->values, s->values, (size_t)s->n_values * sizeof(mm_value));
    g->n_nodes = s->n_nodes;
    g->n_values = s->n_values;
}

void mm_graph_snapshot_free(mm_graph_snapshot *s)
{
    free(s->nodes);
    free(s->values);
    memset(s, 0, sizeof *s);
}

mm_graph_uses mm_graph_uses_of(const mm_graph *g)
{
    size_t nv = (size_t)(g->n_values ? g->n_values : 1);
    mm_graph_uses u = {mm_xcalloc(nv, sizeof(int)), mm_xmalloc(nv * sizeof(int)),
                       mm_xcalloc(nv, sizeof(bool))};
    for (int v = 0; v < g->n_values; v++) {
        u.last[v] = -1;
        if (g->values[v].view_of >= 0) u.viewed[g->values[v].view_of] = true;
    }
    for (int n = 0; n < g->n_nodes; n++)
        for (int i = 0; i < g->nodes[n].n_in; i++) {
            int v = g->nodes[n].in[i];
            if (v < 0) continue;
            u.readers[v]++;
            u.last[v] = n;
        }
    return u;
}

void mm_graph_uses_free(mm_graph_uses *u)
{
    free(u->readers);
    free(u->last);
    free(u->viewed);
    memset(u, 0, sizeof *u);
}

int mm_graph_relu_after(const mm_graph *g, const mm_graph_uses *u, int n)
{
    const mm_node *nd = &g->nodes[n];
    bool producer = nd->op == MM_OP_BATCHNORM ||
                    (nd->op == MM_OP_CONV2D && nd->n_in > 2 && nd->in[2] >= 0);
    if (!producer || nd->n_out < 1 || nd->out[0] < 0) return -1;
    int y = nd->out[0];
    if (u->readers[y] != 1 || g->values[y].keep) return -1;
    int j = u->last[y];
    const mm_node *r = &g->nodes[j];
    return j > n && r->op == MM_OP_RELU && r->in[0] == y ? j : -1;
}

bool mm_graph_single_use(const mm_graph *g, const mm_graph_uses *u, int v)
{
    return v >= 0 && u->readers[v] == 1 && !g->values[v].keep && !u->viewed[v];
}

void mm_graph_node_clear(mm_node *nd)
{
    nd->op = MM_OP_NONE;
    nd->n_in = nd->n_out = 0;
    nd->flops = 0;
}

const mm_value *mm_graph_value(const mm_graph *g, int id)
{
    MM_ASSERT(id >= 0 && id < g->n_values);
    return &g->values[id];
}

void mm_graph_keep(mm_graph *g, int value)
{
    if (value >= 0 && value < g->n_values) g->values[value].keep = true;
}

int mm_graph_find(const mm_graph *g, const char *name)
{
    for (int i = 0; i < g->n_values; i++)
        if (g->values[i].name[0] && !strcmp(g->values[i].name, name)) return i;
    return -1;
}

void mm_graph_set_frozen(mm_graph *g, int param, bool frozen)
{
    MM_ASSERT(param >= 0 && param < g->n_values && g->values[param].kind == MM_VALUE_PARAM);
    MM_ASSERT(g->n_forward == 0 && g->loss < 0); /* freezing is decided before backward */
    g->values[param].frozen = frozen;
}

/* ---- internals shared with autograd.c ---- */

int mm_graph_new_value(mm_graph *g, mm_value_kind kind, mm_dtype dtype, int ndim,
                       const int64_t *shape, const char *name)
{
    /* Callers often pass another value's shape or name (X->shape), which points into g->values:
     * copy them before growing the array moves it. */
    int64_t dims[MM_MAX_DIMS];
    char label[MM_NAME_MAX] = "";
    for (int i = 0; i < ndim; i++) dims[i] = shape[i];
    if (name) snprintf(label, sizeof label, "%s", name);
    shape = dims;
    if (g->n_values == g->cap_values) {
        g->cap_values = g->cap_values ? 2 * g->cap_values : 256;
        g->values = mm_xrealloc(g->values, (size_t)g->cap_values * sizeof *g->values);
    }
    mm_value_init(&g->values[g->n_values], kind, dtype, ndim, shape, label);
    return g->n_values++;
}

void mm_value_init(mm_value *v, mm_value_kind kind, mm_dtype dtype, int ndim, const int64_t *shape,
                   const char *name)
{
    memset(v, 0, sizeof *v);
    v->kind = kind;
    v->dtype = dtype;
    v->ndim = ndim;
    for (int i = 0; i < ndim; i++) v->shape[i] = shape[i];
    snprintf(v->name, sizeof v->name, "%s", name);
    v->producer = -1;
    v->view_of = -1;
    v->grad = -1;
}

int mm_graph_add_node(mm_graph *g, mm_op op, const int *in, int n_in, const int *out, int n_out,
                      const mm_op_params *p, double flops)
{
    MM_ASSERT(n_in <= MM_NODE_MAX_IN && n_out <= MM_NODE_MAX_OUT);
    if (g->n_nodes == g->cap_nodes) {
        g->cap_nodes = g->cap_nodes ? 2 * g->cap_nodes : 256;
        g->nodes = mm_xrealloc(g->nodes, (size_t)g->cap_nodes * sizeof *g->nodes);
    }
    int id = g->n_nodes++;
    mm_node *nd = &g->nodes[id];
    memset(nd, 0, sizeof *nd);
    nd->op = op;
    nd->n_in = n_in;
    nd->n_out = n_out;
    for (int i = 0; i < n_in; i++) nd->in[i] = in[i];
    for (int i = 0; i < n_out; i++) {
        nd->out[i] = out[i];
        if (out[i] >= 0 && g->values[out[i]].kind == MM_VALUE_ACT) g->values[out[i]].producer = id;
    }
    if (p) nd->p = *p;
    nd->flops = flops;
    nd->backward = g->loss >= 0;
    return id;
}

/* ---- values ---- */

static bool fail_shape(mm_graph *g, const char *fmt, const char *what, int id)
{
    if (g->status == MM_OK) {
        char shape[96] = "";
        if (id >= 0 && id < g->n_values)
            mm_shape_str(shape, sizeof shape, g->values[id].ndim, g->values[id].shape);
        g->status = mm_fail(MM_ERR_SHAPE, fmt, what, shape);
    }
    return false;
}

/* Every builder starts with this: a failed graph stays failed, ids must exist. */
static bool check_ids(mm_graph *g, const char *op, const int *ids, int n)
{
    if (g->status != MM_OK) return false;
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= g->n_values) {
            g->status = mm_fail(MM_ERR_SHAPE, "%s: input %d does not exist (an earlier layer failed?)",
                                op, i);
            return false;
        }
    return true;
}

static bool check_float(mm_graph *g, const char *op, int x)
{
    mm_dtype t = g->values[x].dtype;
    if (t != MM_F32 && t != MM_BF16) return fail_shape(g, "%s: expects a float tensor, got %s", op, x);
    return true;
}

static int input_value(mm_graph *g, mm_value_kind kind, const char *name, mm_dtype dtype, int ndim,
                       const int64_t *shape)
{
    if (g->status != MM_OK) return -1;
    if (ndim < 0 || ndim > MM_MAX_DIMS) {
        g->status = mm_fail(MM_ERR_SHAPE, "%s: rank %d is not supported", name, ndim);
        return -1;
    }
    for (int i = 0; i < ndim; i++)
        if (shape[i] <= 0) {
            g->status = mm_fail(MM_ERR_SHAPE, "%s: dimension %d is %lld; sizes must be positive",
                                name, i, (long long)shape[i]);
            return -1;
        }
    if (name && name[0] && mm_graph_find(g, name) >= 0) {
        g->status = mm_fail(MM_ERR_SHAPE, "%s: a value of that name already exists", name);
        return -1;
    }
    return mm_graph_new_value(g, kind, dtype, ndim, shape, name);
}

int mm_graph_input(mm_graph *g, const char *name, mm_dtype dtype, int ndim, const int64_t *shape)
{
    return input_value(g, MM_VALUE_INPUT, name, dtype, ndim, shape);
}

int mm_graph_param(mm_graph *g, const char *name, int ndim, const int64_t *shape)
{
    return input_value(g, MM_VALUE_PARAM, name, MM_F32, ndim, shape);
}

int mm_graph_state(mm_graph *g, const char *name, int ndim, const int64_t *shape)
{
    return input_value(g, MM_VALUE_STATE, name, MM_F32, ndim, shape);
}

static int act(mm_graph *g, mm_dtype dtype, int ndim, const int64_t *shape)
{
    return mm_graph_new_value(g, MM_VALUE_ACT, dtype, ndim, shape, NULL);
}

#define V(id) (&g->values[id])

/* ---- convolution ---- */

int mm_conv2d_ex(mm_graph *g, int x, int w, int b, int stride_h, int stride_w, int pad_h, int pad_w)
{
    int ids[3] = {x, w, b};
    if (!check_ids(g, "conv2d", ids, b >= 0 ? 3 : 2) || !check_float(g, "conv2d", x)) return -1;
    const mm_value *X = V(x), *W = V(w);
    if (X->ndim != 4) return fail_shape(g, "%s: input must be NHWC, got %s", "conv2d", x), -1;
    if (W->ndim != 4 || W->shape[3] != X->shape[3])
        return fail_shape(g, "%s: weight must be [k, r, s, c] with the input's channels, got %s",
                          "conv2d", w), -1;
    if (b >= 0 && (V(b)->ndim != 1 || V(b)->shape[0] != W->shape[0]))
        return fail_shape(g, "%s: bias must be [k], got %s", "conv2d", b), -1;
    mm_op_params p;
    memset(&p, 0, sizeof p);
    mm_conv_dims *d = &p.conv;
    d->n = (int)X->shape[0], d->h = (int)X->shape[1], d->w = (int)X->shape[2], d->c = (int)X->shape[3];
    d->k = (int)W->shape[0], d->r = (int)W->shape[1], d->s = (int)W->shape[2];
    d->stride_h = stride_h, d->stride_w = stride_w, d->pad_h = pad_h, d->pad_w = pad_w;
    if (pad_h < 0 || pad_w < 0 || !mm_conv_dims_finish(d))
        return fail_shape(g, "%s: the kernel does not fit the input %s (image too small?)", "conv2d",
                          x), -1;
    int64_t shape[4] = {d->n, d->oh, d->ow, d->k};
    int y = act(g, g->act_dtype, 4, shape);
    int in[3] = {x, w, b};
    double flops = 2.0 * d->n * d->oh * d->ow * (double)d->k * d->r * d->s * d->c;
    mm_graph_add_node(g, MM_OP_CONV2D, in, 3, &y, 1, &p, flops);
    return y;
}

int mm_conv2d(mm_graph *g, int x, int w, int b, int stride, int pad)
{
    return mm_conv2d_ex(g, x, w, b, stride, stride, pad, pad);
}

/* ---- batch norm ---- */

int mm_batchnorm(mm_graph *g, int x, int gamma, int beta, int running_mean, int running_var,
                 float eps, float momentum)
{
    int ids[5] = {x, gamma, beta, running_mean, running_var};
    if (!check_ids(g, "batchnorm", ids, 5) || !check_float(g, "batchnorm", x)) return -1;
    const mm_value *X = V(x);
    if (X->ndim < 2) return fail_shape(g, "%s: input must be [.., c], got %s", "batchnorm", x), -1;
    int64_t c = X->shape[X->ndim - 1];
    for (int i = 1; i < 5; i++)
        if (V(ids[i])->ndim != 1 || V(ids[i])->shape[0] != c)
            return fail_shape(g, "%s: parameters and statistics must be [c], got %s", "batchnorm",
                              ids[i]), -1;
    mm_op_params p;
    memset(&p, 0, sizeof p);
    p.bn.m = mm_shape_numel(X->ndim, X->shape) / c;
    p.bn.c = (int)c;
    p.bn.eps = eps;
    p.bn.momentum = momentum;
    p.bn.training = g->training;
    int y = act(g, g->act_dtype, X->ndim, X->shape);
    int out[3] = {y, -1, -1};
    if (g->training) {
        int64_t cs[1] = {c};
        out[1] = act(g, MM_F32, 1, cs);
        out[2] = act(g, MM_F32, 1, cs);
    }
    mm_graph_add_node(g, MM_OP_BATCHNORM, ids, 5, out, 3, &p, 10.0 * (double)p.bn.m * (double)c);
    return y;
}

/* ---- element-wise ---- */

static int unary_same(mm_graph *g, mm_op op, int x, double flops_per)
{
    if (!check_ids(g, mm_op_name(op), &x, 1) || !check_float(g, mm_op_name(op), x)) return -1;
    const mm_value *X = V(x);
    mm_op_params p;
    memset(&p, 0, sizeof p);
    p.elementwise.n = mm_shape_numel(X->ndim, X->shape);
    int y = act(g, X->dtype, X->ndim, X->shape);
    mm_graph_add_node(g, op, &x, 1, &y, 1, &p, flops_per * (double)p.elementwise.n);
    return y;
}

int mm_relu(mm_graph *g, int x) { return unary_same(g, MM_OP_RELU, x, 1); }

int mm_add(mm_graph *g, int a, int b)
{
    int ids[2] = {a, b};
    if (!check_ids(g, "add", ids, 2) || !check_float(g, "add", a) || !check_float(g, "add", b))
        return -1;
    if (!mm_shape_equal(V(a)->ndim, V(a)->shape, V(b)->ndim, V(b)->shape) ||
        V(a)->dtype != V(b)->dtype)
        return fail_shape(g, "%s: operands differ in shape or type; second is %s", "add", b), -1;
    mm_op_params p;
    memset(&p, 0, sizeof p);
    p.elementwise.n = mm_shape_numel(V(a)->ndim, V(a)->shape);
    int y = act(g, V(a)->dtype, V(a)->ndim, V(a)->shape);
    mm_graph_add_node(g, MM_OP_ADD, ids, 2, &y, 1, &p, (double)p.elementwise.n);
    return y;
}

int mm_dropout(mm_graph *g, int x, float p_drop)
{
    if (!check_ids(g, "dropout", &x, 1) || !check_float(g, "dropout", x)) return -1;
    if (!(p_drop >= 0.0f && p_drop < 1.0f)) {
        g->status = mm_fail(MM_ERR_ARG, "dropout: probability %g must be in [0, 1)", p_drop);
        return -1;
    }
    if (!g->training || p_drop == 0.0f) return x; /* identity */
    const mm_value *X = V(x);
    mm_op_params p;
    memset(&p, 0, sizeof p);
    p.dropout.n = mm_shape_numel(X->ndim, X->shape);
    p.dropout.p = p_drop;
    p.dropout.seed = g->seed ^ (0x9E3779B97F4A7C15ULL * (uint64_t)(g->n_nodes + 1));
    int y = act(g, X->dtype, X->ndim, X->shape);
    X = V(x); /* act() may have moved g->values */
    int mask = act(g, MM_U8, X->ndim, X->shape);
    int out[2] = {y, mask};
    mm_graph_add_node(g, MM_OP_DROPOUT, &x, 1, out, 2, &p, (double)p.dropout.n);
    return y;
}

int mm_flip(mm_graph *g, int x, int axis)
{
    if (!check_ids(g, "flip", &x, 1) || !check_float(g, "flip", x)) return -1;
    const mm_value *X = V(x);
    if (X->ndim != 4) return fail_shape(g, "%s: input must be NHWC, got %s", "flip", x), -1;
    if (axis != 1 && axis != 2) {
        g->status = mm_fail(MM_ERR_ARG, "flip: axis %d; use 1 (vertical) or 2 (horizontal)", axis);
        return -1;
    }
    mm_op_params p;
    memset(&p, 0, sizeof p);
    p.flip.n = (int)X->shape[0], p.flip.h = (int)X->shape[1], p.flip.w = (int)X->shape[2];
    p.flip.c = (int)X->shape[3], p.flip.axis = axis;
    int y = act(g, X->dtype, 4, X->shape);
    mm_graph_add_node(g, MM_OP_FLIP, &x, 1, &y, 1, &p, 0);
    return y;
}


int mm_graph_reshape(mm_graph *g, int x, int ndim, const int64_t *shape)
{
    if (!check_ids(g, "reshape", &x, 1)) return -1;
    const mm_value *X = V(x);
    if (mm_shape_numel(ndim, shape) != mm_shape_numel(X->ndim, X->shape))
        return fail_shape(g, "%s: element count differs from the input %s", "reshape", x), -1;
    int y = act(g, X->dtype, ndim, shape);
    g->values[y].view_of = X->view_of >= 0 ? X->view_of : x;
    mm_graph_add_node(g, MM_OP_RESHAPE, &x, 1, &y, 1, NULL, 0);
    return y;
}

int mm_flatten(mm_graph *g, int x)
{
    if (!check_ids(g, "flatten", &x, 1)) return -1;
    const mm_value *X = V(x);
    int64_t shape[2] = {X->shape[0], mm_shape_numel(X->ndim - 1, X->shape + 1)};
    return mm_graph_reshape(g, x, 2, shape);
}

/* ---- pooling ---- */

static int pool(mm_graph *g, mm_op op, int x, int k, int stride, int pad, bool count_include_pad)
{
    if (!check_ids(g, mm_op_name(op), &x, 1) || !check_float(g, mm_op_name(op), x)) return -1;
    const mm_value *X = V(x);
    if (X->ndim != 4) return fail_shape(g, "%s: input must be NHWC, got %s", mm_op_name(op), x), -1;
    mm_op_params p;
    memset(&p, 0, sizeof p);
    mm_pool_dims *d = &p.pool;
    d->n = (int)X->shape[0], d->h = (int)X->shape[1], d->w = (int)X->shape[2], d->c = (int)X->shape[3];
    d->kh = d->kw = k;
    d->stride_h = d->stride_w = stride;
    d->pad_h = d->pad_w = pad;
    d->count_include_pad = count_include_pad;
    if (k < 1 || pad < 0 || 2 * pad > k || !mm_pool_dims_finish(d))
        return fail_shape(g, "%s: the window does not fit the input %s (image too small?)",
                          mm_op_name(op), x), -1;
    int64_t shape[4] = {d->n, d->oh, d->ow, d->c};
    /* A training max pool also records where each maximum was (a u8 window tap), so that its
     * backward needs neither x nor the ReLU output x usually is. */
    bool argmax = op == MM_OP_MAXPOOL && g->training;
    if (argmax && k * k > 256)
        return fail_shape(g, "%s: a window of more than 256 pixels (16x16) cannot be trained "
                          "(input %s); use a smaller one", mm_op_name(op), x), -1;
    int out[2] = {act(g, X->dtype, 4, shape), argmax ? act(g, MM_U8, 4, shape) : -1};
    mm_graph_add_node(g, op, &x, 1, out, argmax ? 2 : 1, &p,
                      (double)d->n * d->oh * d->ow * d->c * k * k);
    return out[0];
}

int mm_maxpool(mm_graph *g, int x, int k, int stride, int pad)
{
    return pool(g, MM_OP_MAXPOOL, x, k, stride, pad, false);
}

int mm_avgpool(mm_graph *g, int x, int k, int stride, int pad, bool count_include_pad)
{
    return pool(g, MM_OP_AVGPOOL, x, k, stride, pad, count_include_pad);
}

int mm_adaptive_avgpool(mm_graph *g, int x, int out_h, int out_w)
{
    if (!check_ids(g, "adaptive_avgpool", &x, 1) || !check_float(g, "adaptive_avgpool", x)) return -1;
    const mm_value *X = V(x);
    if (X->ndim != 4 || out_h < 1 || out_w < 1)
        return fail_shape(g, "%s: input must be NHWC, got %s", "adaptive_avgpool", x), -1;
    mm_op_params p;
    memset(&p, 0, sizeof p);
    mm_pool_dims *d = &p.pool;
    d->n = (int)X->shape[0], d->h = (int)X->shape[1], d->w = (int)X->shape[2], d->c = (int)X->shape[3];
    d->oh = out_h, d->ow = out_w;
    int64_t shape[4] = {d->n, out_h, out_w, d->c};
    int y = act(g, X->dtype, 4, shape);
    mm_graph_add_node(g, MM_OP_ADAPTIVE_AVGPOOL, &x, 1, &y, 1, &p,
                      (double)mm_shape_numel(4, X->shape));
    return y;
}

int mm_global_avgpool(mm_graph *g, int x)
{
    if (!check_ids(g, "global_avgpool", &x, 1) || !check_float(g, "global_avgpool", x)) return -1;
    const mm_value *X = V(x);
    if (X->ndim != 4) return fail_shape(g, "%s: input must be NHWC, got %s", "global_avgpool", x), -1;
    mm_op_params p;
    memset(&p, 0, sizeof p);
    p.gap.n = (int)X->shape[0];
    p.gap.hw = X->shape[1] * X->shape[2];
    p.gap.c = (int)X->shape[3];
    int64_t shape[2] = {X->shape[0], X->shape[3]};
    int y = act(g, MM_F32, 2, shape);
    mm_graph_add_node(g, MM_OP_GLOBAL_AVGPOOL, &x, 1, &y, 1, &p, (double)mm_shape_numel(4, X->shape));
    return y;
}

/* ---- dense, softmax, loss ---- */

int mm_dense(mm_graph *g, int x, int w, int b)
{
    int ids[3] = {x, w, b};
    if (!check_ids(g, "dense", ids, b >= 0 ? 3 : 2) || !check_float(g, "dense", x)) return -1;
    const mm_value *X = V(x), *W = V(w);
    if (X->ndim != 2) return fail_shape(g, "%s: input must be [n, k], got %s", "dense", x), -1;
    if (W->ndim != 2 || W->shape[1] != X->shape[1])
        return fail_shape(g, "%s: weight must be [o, k] with the input's k, got %s", "dense", w), -1;
    if (b >= 0 && (V(b)->ndim != 1 || V(b)->shape[0] != W->shape[0]))
        return fail_shape(g, "%s: bias must be [o], got %s", "dense", b), -1;
    mm_op_params p;
    memset(&p, 0, sizeof p);
    p.dense.n = (int)X->shape[0], p.dense.k = (int)X->shape[1], p.dense.o = (int)W->shape[0];
    int64_t shape[2] = {X->shape[0], W->shape[0]};
    int y = act(g, MM_F32, 2, shape);
    mm_graph_add_node(g, MM_OP_DENSE, ids, 3, &y, 1, &p,
                      2.0 * p.dense.n * (double)p.dense.k * p.dense.o);
    return y;
}

int mm_softmax(mm_graph *g, int x)
{
    if (!check_ids(g, "softmax", &x, 1) || !check_float(g, "softmax", x)) return -1;
    const mm_value *X = V(x);
    if (X->ndim != 2) return fail_shape(g, "%s: input must be [n, c], got %s", "softmax", x), -1;
    mm_op_params p;
    memset(&p, 0, sizeof p);
    p.xent.n = (int)X->shape[0], p.xent.c = (int)X->shape[1];
    int y = act(g, MM_F32, 2, X->shape);
    mm_graph_add_node(g, MM_OP_SOFTMAX, &x, 1, &y, 1, &p, 4.0 * (double)mm_shape_numel(2, X->shape));
    return y;
}

int mm_softmax_xent(mm_graph *g, int logits, int labels, int weights)
{
    int ids[3] = {logits, labels, weights};
    if (!check_ids(g, "softmax_xent", ids, weights >= 0 ? 3 : 2) ||
        !check_float(g, "softmax_xent", logits))
        return -1;
    const mm_value *X = V(logits), *L = V(labels);
    if (X->ndim != 2 || X->dtype != MM_F32)
        return fail_shape(g, "%s: logits must be F32 [n, c], got %s", "softmax_xent", logits), -1;
    if (L->ndim != 1 || L->shape[0] != X->shape[0] || L->dtype != MM_I32)
        return fail_shape(g, "%s: labels must be I32 [n], got %s", "softmax_xent", labels), -1;
    if (weights >= 0 && (V(weights)->ndim != 1 || V(weights)->shape[0] != X->shape[0] ||
                         V(weights)->dtype != MM_F32))
        return fail_shape(g, "%s: sample weights must be F32 [n], got %s", "softmax_xent",
                          weights), -1;
    mm_op_params p;
    memset(&p, 0, sizeof p);
    p.xent.n = (int)X->shape[0], p.xent.c = (int)X->shape[1], p.xent.dloss = 1.0f;
    int64_t one[1] = {1};
    int loss = act(g, MM_F32, 1, one);
    X = V(logits); /* act() may have moved g->values */
    int probs = act(g, MM_F32, 2, X->shape);
    g->values[loss].keep = true;
    g->values[probs].keep = true;
    int out[2] = {loss, probs};
    mm_graph_add_node(g, MM_OP_SOFTMAX_XENT, ids, 3, out, 2, &p,
                      6.0 * (double)mm_shape_numel(2, X->shape));
    return loss;
}

int mm_graph_xent_probs(const mm_graph *g, int loss)
{
    if (loss < 0 || loss >= g->n_values) return -1;
    int prod = g->values[loss].producer;
    if (prod < 0 || g->nodes[prod].op != MM_OP_SOFTMAX_XENT) return -1;
    return g->nodes[prod].out[1];
}
