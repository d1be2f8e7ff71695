/* The op table run on the CPU backend (the executable specification) and on the CUDA backend,
 * node by node through the backend tables, compared with tolerances per precision:
 * fp32 tight, tf32 ~1e-2 for convolutions and products, bf16 looser (inputs that bf16 mode stores
 * as bf16 are rounded to bf16 for both backends, so only the arithmetic differs).
 *
 * Every case runs at fp32, tf32 and bf16. Cases cover odd sizes, stride 2, padding, 1x1, 3x3 and
 * 7x7 kernels, batch 1 and 2, optional inputs and outputs absent, parameter gradients
 * accumulating into non-zero buffers, outputs written over NaN (so an element left unwritten
 * fails), in-place variants (CUDA output sharing its input's buffer), max-pool ties, and the
 * step-level pieces: fused Adam/SGD, CUDA graph capture and replay.
 *
 * Without a GPU every test prints SKIPPED (no GPU). */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/philox.h"
#include "runtime/backend.h"
#include "runtime/graph.h"
#include "tests/harness.h"

#define REQUIRE_GPU()                                                                      \
    do {                                                                                   \
        if (!mm_cuda_available(NULL, 0)) MM_SKIP("no GPU");                                \
    } while (0)

/* ---- backends (made once per process) ---- */
static mm_backend *cpu_backend(void)
{
    static mm_backend *be;
    if (!be) {
        mm_status s = mm_backend_cpu_create(&be);
        if (s != MM_OK) {
            fprintf(stderr, "cpu backend: %s\n", mm_last_error());
            abort();
        }
    }
    return be;
}

static mm_backend *cuda_backend(mm_precision p)
{
    static mm_backend *be[3];
    if (!be[p]) {
        mm_status s = mm_backend_cuda_create_ex(&be[p], p, 0);
        if (s != MM_OK) {
            fprintf(stderr, "cuda backend: %s\n", mm_last_error());
            abort();
        }
    }
    return be[p];
}

static const mm_precision precisions[3] = {MM_PRECISION_FP32, MM_PRECISION_TF32,
                                           MM_PRECISION_BF16};

/* ---- bf16 on the host (round to nearest even, as the device's __float2bfloat16_rn) ---- */
static uint16_t f2bf(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static float bf2f(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static float round_bf16(float f) { return bf2f(f2bf(f)); }

/* ---- one node with its values ---- */
#define MAXV 12

typedef enum tol_kind {
    TOL_EXACT,  /* element-wise: the same float operations */
    TOL_REDUCE, /* sums in another order: batch norm, pooling, losses */
    TOL_GEMM,   /* convolutions and matrix products: TF32 / bf16 tensor cores */
} tol_kind;

typedef enum init_kind {
    INIT_RAND,   /* uniform in [lo, hi) */
    INIT_NAN,    /* outputs that must be written everywhere */
    INIT_LABELS, /* int32 in [0, hi) */
    INIT_TIES,   /* uniform values quantised to quarters: many equal maxima */
    INIT_NANS,   /* INIT_TIES with every 7th value NaN (max pooling's NaN rule) */
} init_kind;

typedef struct tcase {
    mm_value v[MAXV];
    bool act[MAXV]; /* stored as bf16 in bf16 mode (the planner's activations) */
    init_kind init[MAXV];
    float lo[MAXV], hi[MAXV];
    int nv;
    mm_node node;
    bool training;
    /* CUDA in-place runs: output k shares the buffer of input slot alias_out[k] (-1: none) */
    int alias_out[MM_NODE_MAX_OUT];
    tol_kind kind;
    uint64_t seed;
} tcase;

static void tc_init(tcase *tc, mm_op op, tol_kind kind, uint64_t seed)
{
    memset(tc, 0, sizeof *tc);
    tc->node.op = op;
    tc->kind = kind;
    tc->seed = seed;
    tc->training = true;
    for (int k = 0; k < MM_NODE_MAX_OUT; k++) tc->alias_out[k] = -1;
    for (int k = 0; k < MM_NODE_MAX_IN; k++) tc->node.in[k] = -1;
    for (int k = 0; k < MM_NODE_MAX_OUT; k++) tc->node.out[k] = -1;
}

static int tc_value(tcase *tc, mm_value_kind kind, mm_dtype dtype, bool act, init_kind init,
                    float lo, float hi, int ndim, const int64_t *shape)
{
    MM_ASSERT(tc->nv < MAXV);
    int id = tc->nv++;
    mm_value *v = &tc->v[id];
    memset(v, 0, sizeof *v);
    v->kind = kind;
    v->dtype = dtype;
    v->ndim = ndim;
    for (int i = 0; i < ndim; i++) v->shape[i] = shape[i];
    snprintf(v->name, sizeof v->name, "v%d", id);
    v->producer = -1;
    v->view_of = -1;
    v->grad = -1;
    tc->act[id] = act;
    tc->init[id] = init;
    tc->lo[id] = lo;
    tc->hi[id] = hi;
    return id;
}

/* Shorthands: an activation (bf16 in bf16 mode), an fp32 parameter or statistic, an output. */
#define SHAPE(...)                                                                         \
    (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__}
static int act_in(tcase *tc, float lo, float hi, int ndim, const int64_t *shape)
{
    return tc_value(tc, MM_VALUE_ACT, MM_F32, true, INIT_RAND, lo, hi, ndim, shape);
}
static int f32_in(tcase *tc, float lo, float hi, int ndim, const int64_t *shape)
{
    return tc_value(tc, MM_VALUE_PARAM, MM_F32, false, INIT_RAND, lo, hi, ndim, shape);
}
static int act_out(tcase *tc, int ndim, const int64_t *shape)
{
    return tc_value(tc, MM_VALUE_ACT, MM_F32, true, INIT_NAN, 0, 0, ndim, shape);
}
static int f32_out(tcase *tc, int ndim, const int64_t *shape)
{
    return tc_value(tc, MM_VALUE_ACT, MM_F32, false, INIT_NAN, 0, 0, ndim, shape);
}
/* A parameter gradient: starts non-zero, the op accumulates into it. */
static int grad_out(tcase *tc, int ndim, const int64_t *shape)
{
    return tc_value(tc, MM_VALUE_GRAD, MM_F32, false, INIT_RAND, -1, 1, ndim, shape);
}

static void tc_in(tcase *tc, int id) { tc->node.in[tc->node.n_in++] = id; }
static void tc_out(tcase *tc, int id) { tc->node.out[tc->node.n_out++] = id; }

/* ---- running a case on one backend ---- */
static int64_t value_numel(const mm_value *v) { return mm_shape_numel(v->ndim, v->shape); }

/* Initial contents (as floats; labels as their values) of every value, bf16-rounded where the
 * CUDA run stores bf16 so both backends see the same numbers. */
static float **tc_make_init(const tcase *tc, bool bf16)
{
    float **h = mm_xcalloc((size_t)tc->nv, sizeof *h);
    for (int i = 0; i < tc->nv; i++) {
        int64_t n = value_numel(&tc->v[i]);
        h[i] = mm_xmalloc((size_t)(n ? n : 1) * sizeof(float));
        uint64_t seed = tc->seed * 131 + (uint64_t)i;
        switch (tc->init[i]) {
        case INIT_RAND: mm_test_fill_uniform(h[i], n, seed, tc->lo[i], tc->hi[i]); break;
        case INIT_NAN:
            for (int64_t j = 0; j < n; j++) h[i][j] = tc->v[i].dtype == MM_U8 ? 255.0f : NAN;
            break;
        case INIT_LABELS:
            for (int64_t j = 0; j < n; j++)
                h[i][j] = (float)(mm_philox_u32(seed, (uint64_t)j) % (uint32_t)tc->hi[i]);
            break;
        case INIT_TIES:
        case INIT_NANS:
            mm_test_fill_uniform(h[i], n, seed, tc->lo[i], tc->hi[i]);
            for (int64_t j = 0; j < n; j++) h[i][j] = floorf(h[i][j] * 4.0f) / 4.0f;
            if (tc->init[i] == INIT_NANS)
                for (int64_t j = 0; j < n; j += 7) h[i][j] = NAN;
            break;
        }
        if (bf16 && tc->act[i])
            for (int64_t j = 0; j < n; j++) h[i][j] = round_bf16(h[i][j]);
    }
    return h;
}

static void free_arrays(float **a, int n)
{
    for (int i = 0; i < n; i++) free(a[i]);
    free(a);
}

static mm_dtype stored_dtype(const tcase *tc, int i, bool bf16)
{
    return bf16 && tc->act[i] ? MM_BF16 : tc->v[i].dtype;
}

/* Host floats -> the bytes of `dtype`, and back. */
static void *pack(const float *h, int64_t n, mm_dtype dtype)
{
    void *b = mm_xmalloc((size_t)(n ? n : 1) * mm_dtype_size(dtype));
    for (int64_t j = 0; j < n; j++) {
        switch (dtype) {
        case MM_F32: ((float *)b)[j] = h[j]; break;
        case MM_BF16: ((uint16_t *)b)[j] = f2bf(h[j]); break;
        case MM_I32: ((int32_t *)b)[j] = (int32_t)h[j]; break;
        case MM_U8: ((uint8_t *)b)[j] = (uint8_t)h[j]; break;
        default: MM_ASSERT(!"dtype");
        }
    }
    return b;
}

static void unpack(float *h, const void *b, int64_t n, mm_dtype dtype)
{
    for (int64_t j = 0; j < n; j++) {
        switch (dtype) {
        case MM_F32: h[j] = ((const float *)b)[j]; break;
        case MM_BF16: h[j] = bf2f(((const uint16_t *)b)[j]); break;
        case MM_I32: h[j] = (float)((const int32_t *)b)[j]; break;
        case MM_U8: h[j] = (float)((const uint8_t *)b)[j]; break;
        default: MM_ASSERT(!"dtype");
        }
    }
}

/* Runs the node on `be` from the initial contents `init`; returns every value's final contents.
 * bf16: store the act values as bf16 (CUDA bf16 mode). alias: apply tc->alias_out. clobbered[i]
 * is set for inputs whose buffer an aliased output overwrote. */
static float **tc_run(const tcase *tc, mm_backend *be, float **init, bool bf16, bool alias,
                      bool *clobbered)
{
    mm_value vals[MAXV];
    void *dev[MAXV];
    memcpy(vals, tc->v, sizeof vals);
    for (int i = 0; i < tc->nv; i++) {
        vals[i].dtype = stored_dtype(tc, i, bf16);
        int64_t n = value_numel(&vals[i]);
        size_t bytes = (size_t)(n ? n : 1) * mm_dtype_size(vals[i].dtype);
        dev[i] = be->alloc(be, bytes);
        MM_ASSERT(dev[i]);
        void *b = pack(init[i], n, vals[i].dtype);
        be->copy_to_device(be, dev[i], b, bytes);
        free(b);
        clobbered[i] = false;
    }
    mm_node node = tc->node;
    mm_graph g;
    memset(&g, 0, sizeof g);
    g.values = vals;
    g.n_values = g.cap_values = tc->nv;
    g.nodes = &node;
    g.n_nodes = g.cap_nodes = g.n_forward = 1;
    g.loss = -1;
    g.training = tc->training;

    mm_tensor ins[MM_NODE_MAX_IN], outs[MM_NODE_MAX_OUT];
    int out_buf[MM_NODE_MAX_OUT]; /* which value's buffer each output uses */
    memset(ins, 0, sizeof ins);
    memset(outs, 0, sizeof outs);
    for (int k = 0; k < node.n_in; k++) {
        int id = node.in[k];
        if (id < 0) continue;
        ins[k] = mm_tensor_view(dev[id], vals[id].dtype, vals[id].ndim, vals[id].shape);
        ins[k].device = be->device;
    }
    for (int k = 0; k < node.n_out; k++) {
        int id = node.out[k];
        out_buf[k] = id;
        if (id < 0) continue;
        if (alias && tc->alias_out[k] >= 0) {
            int src = node.in[tc->alias_out[k]];
            MM_ASSERT(vals[src].dtype == vals[id].dtype);
            out_buf[k] = src;
            clobbered[src] = true;
        }
        outs[k] = mm_tensor_view(dev[out_buf[k]], vals[id].dtype, vals[id].ndim, vals[id].shape);
        outs[k].device = be->device;
    }

    size_t wsb = be->workspace_bytes(be, &g, &node);
    void *ws = wsb ? be->alloc(be, wsb) : NULL;
    MM_ASSERT(!wsb || ws);
    be->run_node(be, &g, &node, ins, outs, ws, wsb);
    if (be->sync) be->sync(be);

    float **res = mm_xcalloc((size_t)tc->nv, sizeof *res);
    for (int i = 0; i < tc->nv; i++) {
        int64_t n = value_numel(&vals[i]);
        size_t bytes = (size_t)(n ? n : 1) * mm_dtype_size(vals[i].dtype);
        res[i] = mm_xmalloc((size_t)(n ? n : 1) * sizeof(float));
        void *b = mm_xmalloc(bytes);
        be->copy_to_host(be, b, dev[i], bytes);
        unpack(res[i], b, n, vals[i].dtype);
        free(b);
    }
    /* An aliased output's result is in its input's buffer. */
    for (int k = 0; k < node.n_out; k++) {
        int id = node.out[k];
        if (id >= 0 && out_buf[k] != id) {
            int64_t n = value_numel(&vals[id]);
            memcpy(res[id], res[out_buf[k]], (size_t)n * sizeof(float));
        }
    }
    if (ws) be->free(be, ws);
    for (int i = 0; i < tc->nv; i++) be->free(be, dev[i]);
    return res;
}

static double tolerance(tol_kind kind, mm_precision p, bool stored_bf16)
{
    double t = kind == TOL_EXACT ? 1e-6 : kind == TOL_REDUCE ? 1e-4 : 2e-4;
    if (kind == TOL_GEMM && p == MM_PRECISION_TF32) t = 1e-2;
    if (kind == TOL_GEMM && p == MM_PRECISION_BF16) t = 3e-2;
    if (stored_bf16 && t < 1.6e-2) t = 1.6e-2;
    return t;
}

/* Runs the case on the CPU and on CUDA at every precision and compares every value. */
static void tc_check(const tcase *tc, const char *name)
{
    for (int pi = 0; pi < 3; pi++) {
        mm_precision p = precisions[pi];
        bool bf16 = p == MM_PRECISION_BF16;
        for (int aliased = 0; aliased < 2; aliased++) {
            bool any_alias = false;
            for (int k = 0; k < MM_NODE_MAX_OUT; k++) any_alias |= tc->alias_out[k] >= 0;
            if (aliased && !any_alias) continue;
            float **init = tc_make_init(tc, bf16);
            bool clob_cpu[MAXV], clob_gpu[MAXV];
            float **want = tc_run(tc, cpu_backend(), init, false, false, clob_cpu);
            float **got = tc_run(tc, cuda_backend(p), init, bf16, aliased, clob_gpu);
            for (int i = 0; i < tc->nv; i++) {
                if (clob_gpu[i]) continue;
                int64_t n = value_numel(&tc->v[i]);
                bool sb = stored_dtype(tc, i, bf16) == MM_BF16;
                double tol = tolerance(tc->kind, p, sb), scale = 0;
                if (tc->v[i].dtype == MM_U8 || tc->v[i].dtype == MM_I32) tol = 0;
                for (int64_t j = 0; j < n; j++) {
                    if (isnan(want[i][j]) && isnan(got[i][j])) want[i][j] = got[i][j] = 0;
                    if (fabs(want[i][j]) > scale) scale = fabs(want[i][j]);
                }
                char what[160];
                snprintf(what, sizeof what, "%s %s%s value %d", name, mm_precision_name(p),
                         aliased ? " in place" : "", i);
                CHECK_ARRAYS(what, got[i], want[i], n, tol * scale, tol);
            }
            free_arrays(init, tc->nv);
            free_arrays(want, tc->nv);
            free_arrays(got, tc->nv);
        }
    }
}

/* ---- convolution ---- */
typedef struct conv_cfg {
    int n, h, w, c, k, r, stride, pad, bias;
} conv_cfg;

static const conv_cfg conv_cfgs[] = {
    {2, 7, 5, 3, 4, 3, 1, 1, 1},    /* odd sizes, 3x3, padding, bias */
    {1, 9, 11, 5, 6, 3, 2, 1, 0},   /* stride 2, batch 1 */
    {2, 8, 8, 8, 16, 1, 1, 0, 0},   /* 1x1: a GEMM */
    {2, 9, 7, 4, 8, 1, 2, 0, 1},    /* 1x1 stride 2 (projection shortcut) */
    {1, 13, 10, 3, 8, 7, 2, 3, 1},  /* 7x7 stride 2 (ResNet's first layer) */
    {2, 6, 9, 16, 8, 3, 2, 0, 0},   /* stride 2, no padding */
    {2, 28, 20, 64, 64, 3, 1, 1, 0}, /* tensor-core sized */
};

static mm_conv_dims conv_dims(const conv_cfg *c)
{
    mm_conv_dims d;
    memset(&d, 0, sizeof d);
    d.n = c->n, d.h = c->h, d.w = c->w, d.c = c->c, d.k = c->k, d.r = c->r, d.s = c->r;
    d.stride_h = d.stride_w = c->stride;
    d.pad_h = d.pad_w = c->pad;
    MM_ASSERT(mm_conv_dims_finish(&d));
    return d;
}

static void conv_forward_case(const mm_conv_dims *d, bool bias, uint64_t seed, const char *name)
{
    tcase tc;
    tc_init(&tc, MM_OP_CONV2D, TOL_GEMM, seed);
    tc.node.p.conv = *d;
    tc_in(&tc, act_in(&tc, -1, 1, SHAPE(d->n, d->h, d->w, d->c)));
    tc_in(&tc, f32_in(&tc, -0.5f, 0.5f, SHAPE(d->k, d->r, d->s, d->c)));
    if (bias) tc_in(&tc, f32_in(&tc, -1, 1, SHAPE(d->k)));
    tc_out(&tc, act_out(&tc, SHAPE(d->n, d->oh, d->ow, d->k)));
    tc_check(&tc, name);
}

static void conv_bwd_data_case(const mm_conv_dims *d, uint64_t seed, const char *name)
{
    tcase tc;
    tc_init(&tc, MM_OP_CONV2D_BWD_DATA, TOL_GEMM, seed);
    tc.node.backward = true;
    tc.node.p.conv = *d;
    tc_in(&tc, act_in(&tc, -1, 1, SHAPE(d->n, d->oh, d->ow, d->k)));
    tc_in(&tc, f32_in(&tc, -0.5f, 0.5f, SHAPE(d->k, d->r, d->s, d->c)));
    tc_out(&tc, act_out(&tc, SHAPE(d->n, d->h, d->w, d->c)));
    tc_check(&tc, name);
}

static void conv_bwd_filter_case(const mm_conv_dims *d, uint64_t seed, const char *name)
{
    tcase tc;
    tc_init(&tc, MM_OP_CONV2D_BWD_FILTER, TOL_GEMM, seed);
    tc.node.backward = true;
    tc.node.p.conv = *d;
    tc_in(&tc, act_in(&tc, -1, 1, SHAPE(d->n, d->oh, d->ow, d->k)));
    tc_in(&tc, act_in(&tc, -1, 1, SHAPE(d->n, d->h, d->w, d->c)));
    tc_out(&tc, grad_out(&tc, SHAPE(d->k, d->r, d->s, d->c)));
    tc_check(&tc, name);
}

MM_TEST(cuda_conv2d_forward)
{
    REQUIRE_GPU();
    for (size_t i = 0; i < sizeof conv_cfgs / sizeof conv_cfgs[0]; i++) {
        mm_conv_dims d = conv_dims(&conv_cfgs[i]);
        char name[64];
        snprintf(name, sizeof name, "conv fwd cfg %zu", i);
        conv_forward_case(&d, conv_cfgs[i].bias, 100 + i, name);
    }
}

MM_TEST(cuda_conv2d_backward_data)
{
    REQUIRE_GPU();
    for (size_t i = 0; i < sizeof conv_cfgs / sizeof conv_cfgs[0]; i++) {
        mm_conv_dims d = conv_dims(&conv_cfgs[i]);
        char name[64];
        snprintf(name, sizeof name, "conv bwd data cfg %zu", i);
        conv_bwd_data_case(&d, 200 + i, name);
    }
}

MM_TEST(cuda_conv2d_backward_filter)
{
    REQUIRE_GPU();
    for (size_t i = 0; i < sizeof conv_cfgs / sizeof conv_cfgs[0]; i++) {
        mm_conv_dims d = conv_dims(&conv_cfgs[i]);
        char name[64];
        snprintf(name, sizeof name, "conv bwd filter cfg %zu", i);
        conv_bwd_filter_case(&d, 300 + i, name);
    }
}

/* 1x1 stride-1 convolutions forced onto the cuBLAS GEMM path (conv_gemm.c) with MM_CONV_GEMM=1,
 * which is read when a shape is first planned: these shapes appear nowhere else in this file, so
 * the cached choices of the tests above do not hide the GEMM. Odd channel counts, a bias, and
 * tensor-core sized ones; the weight gradient accumulates into a non-zero buffer. */
static const conv_cfg gemm_cfgs[] = {
    {1, 5, 7, 24, 40, 1, 1, 0, 1},
    {2, 9, 6, 64, 32, 1, 1, 0, 0},
    {2, 3, 11, 5, 3, 1, 1, 0, 1},
};

MM_TEST(cuda_conv2d_1x1_gemm)
{
    REQUIRE_GPU();
    setenv("MM_CONV_GEMM", "1", 1);
    for (size_t i = 0; i < sizeof gemm_cfgs / sizeof gemm_cfgs[0]; i++) {
        mm_conv_dims d = conv_dims(&gemm_cfgs[i]);
        char name[64];
        snprintf(name, sizeof name, "gemm conv fwd cfg %zu", i);
        conv_forward_case(&d, gemm_cfgs[i].bias, 500 + i, name);
        snprintf(name, sizeof name, "gemm conv bwd data cfg %zu", i);
        conv_bwd_data_case(&d, 520 + i, name);
        snprintf(name, sizeof name, "gemm conv bwd filter cfg %zu", i);
        conv_bwd_filter_case(&d, 540 + i, name);
    }
    unsetenv("MM_CONV_GEMM");
}

MM_TEST(cuda_conv2d_backward_bias)
{
    REQUIRE_GPU();
    for (size_t i = 0; i < sizeof conv_cfgs / sizeof conv_cfgs[0]; i++) {
        mm_conv_dims d = conv_dims(&conv_cfgs[i]);
        tcase tc;
        tc_init(&tc, MM_OP_CONV2D_BWD_BIAS, TOL_REDUCE, 400 + i);
        tc.node.backward = true;
        tc.node.p.conv = d;
        tc_in(&tc, act_in(&tc, -1, 1, SHAPE(d.n, d.oh, d.ow, d.k)));
        tc_out(&tc, grad_out(&tc, SHAPE(d.k)));
        char name[64];
        snprintf(name, sizeof name, "conv bwd bias cfg %zu", i);
        tc_check(&tc, name);
    }
}

/* ---- batch norm ---- */
typedef struct bn_cfg {
    int n, h, w, c;
    float lo, hi; /* input range: an offset mean tests the variance's precision */
} bn_cfg;

static const bn_cfg bn_cfgs[] = {
    {2, 5, 7, 3, -1, 1},
    {1, 9, 11, 37, -2, 3},
    {2, 64, 48, 64, 5, 7},
    {2, 3, 3, 1, -1, 1},
};

static void bn_params(tcase *tc, const bn_cfg *b, bool training)
{
    tc->node.p.bn.m = (int64_t)b->n * b->h * b->w;
    tc->node.p.bn.c = b->c;
    tc->node.p.bn.eps = 1e-5f;
    tc->node.p.bn.momentum = 0.1f;
    tc->node.p.bn.training = training;
    tc->training = training;
}

MM_TEST(cuda_batchnorm_forward_train)
{
    REQUIRE_GPU();
    for (size_t i = 0; i < sizeof bn_cfgs / sizeof bn_cfgs[0]; i++) {
        const bn_cfg *b = &bn_cfgs[i];
        tcase tc;
        tc_init(&tc, MM_OP_BATCHNORM, TOL_REDUCE, 500 + i);
        bn_params(&tc, b, true);
        tc_in(&tc, act_in(&tc, b->lo, b->hi, SHAPE(b->n, b->h, b->w, b->c)));
        tc_in(&tc, f32_in(&tc, 0.5f, 1.5f, SHAPE(b->c)));
        tc_in(&tc, f32_in(&tc, -0.5f, 0.5f, SHAPE(b->c)));
        tc_in(&tc, tc_value(&tc, MM_VALUE_STATE, MM_F32, false, INIT_RAND, -1, 1, SHAPE(b->c)));
        tc_in(&tc, tc_value(&tc, MM_VALUE_STATE, MM_F32, false, INIT_RAND, 0.5f, 2, SHAPE(b->c)));
        tc_out(&tc, act_out(&tc, SHAPE(b->n, b->h, b->w, b->c)));
        tc_out(&tc, f32_out(&tc, SHAPE(b->c)));
        tc_out(&tc, f32_out(&tc, SHAPE(b->c)));
        char name[64];
        snprintf(name, sizeof name, "bn train cfg %zu", i);
        tc_check(&tc, name);
    }
}

MM_TEST(cuda_batchnorm_forward_eval)
{
    REQUIRE_GPU();
    for (size_t i = 0; i < sizeof bn_cfgs / sizeof bn_cfgs[0]; i++) {
        const bn_cfg *b = &bn_cfgs[i];
        tcase tc;
        tc_init(&tc, MM_OP_BATCHNORM, TOL_REDUCE, 600 + i);
        bn_params(&tc, b, false);
        tc_in(&tc, act_in(&tc, b->lo, b->hi, SHAPE(b->n, b->h, b->w, b->c)));
        tc_in(&tc, f32_in(&tc, 0.5f, 1.5f, SHAPE(b->c)));
        tc_in(&tc, f32_in(&tc, -0.5f, 0.5f, SHAPE(b->c)));
        tc_in(&tc, tc_value(&tc, MM_VALUE_STATE, MM_F32, false, INIT_RAND, -1, 1, SHAPE(b->c)));
        tc_in(&tc, tc_value(&tc, MM_VALUE_STATE, MM_F32, false, INIT_RAND, 0.5f, 2, SHAPE(b->c)));
        tc_out(&tc, act_out(&tc, SHAPE(b->n, b->h, b->w, b->c)));
        tc.alias_out[0] = 0;
        char name[64];
        snprintf(name, sizeof name, "bn eval cfg %zu", i);
        tc_check(&tc, name);
    }
}

/* A training output recomputed from saved statistics (autograd's recompute), with and without
 * the ReLU, in place too. */
MM_TEST(cuda_batchnorm_apply)
{
    REQUIRE_GPU();
    for (size_t i = 0; i < sizeof bn_cfgs / sizeof bn_cfgs[0]; i++)
        for (int relu = 0; relu < 2; relu++) {
            const bn_cfg *b = &bn_cfgs[i];
            tcase tc;
            tc_init(&tc, MM_OP_BN_APPLY, TOL_REDUCE, 650 + 2 * i + (uint64_t)relu);
            tc.node.backward = true;
            bn_params(&tc, b, true);
            tc.node.p.bn.relu = relu;
            float mid = 0.5f * (b->lo + b->hi), sd = (b->hi - b->lo) / sqrtf(12.0f);
            tc_in(&tc, act_in(&tc, b->lo, b->hi, SHAPE(b->n, b->h, b->w, b->c)));
            tc_in(&tc, f32_in(&tc, 0.5f, 1.5f, SHAPE(b->c)));
            tc_in(&tc, f32_in(&tc, -0.5f, 0.5f, SHAPE(b->c)));
            tc_in(&tc, f32_in(&tc, mid - 0.3f, mid + 0.3f, SHAPE(b->c)));
            tc_in(&tc, f32_in(&tc, 0.8f / sd, 1.2f / sd, SHAPE(b->c)));
            tc_out(&tc, act_out(&tc, SHAPE(b->n, b->h, b->w, b->c)));
            tc.alias_out[0] = 0;
            char name[64];
            snprintf(name, sizeof name, "bn apply%s cfg %zu", relu ? "+relu" : "", i);
            tc_check(&tc, name);
        }
}

/* which: 0 all outputs, 1 no dgamma/dbeta (frozen), 2 no dx (nothing upstream). */
static void bn_backward_case(const bn_cfg *b, int which, uint64_t seed)
{
    tcase tc;
    tc_init(&tc, MM_OP_BATCHNORM_BWD, TOL_REDUCE, seed);
    tc.node.backward = true;
    bn_params(&tc, b, true);
    int64_t m = (int64_t)b->n * b->h * b->w;
    tc_in(&tc, act_in(&tc, -1, 1, SHAPE(b->n, b->h, b->w, b->c)));
    int x = act_in(&tc, b->lo, b->hi, SHAPE(b->n, b->h, b->w, b->c));
    tc_in(&tc, x);
    tc_in(&tc, f32_in(&tc, 0.5f, 1.5f, SHAPE(b->c)));
    /* save_mean / save_invstd near the batch's own: mean of the range, 1/std of a uniform. */
    float mid = 0.5f * (b->lo + b->hi), sd = (b->hi - b->lo) / sqrtf(12.0f);
    tc_in(&tc, f32_in(&tc, mid - 0.05f, mid + 0.05f, SHAPE(b->c)));
    tc_in(&tc, f32_in(&tc, 0.9f / sd, 1.1f / sd, SHAPE(b->c)));
    (void)m;
    if (which == 2) tc.node.out[tc.node.n_out++] = -1;
    else tc_out(&tc, act_out(&tc, SHAPE(b->n, b->h, b->w, b->c)));
    if (which == 1) {
        tc.node.out[tc.node.n_out++] = -1;
        tc.node.out[tc.node.n_out++] = -1;
    } else {
        tc_out(&tc, grad_out(&tc, SHAPE(b->c)));
        tc_out(&tc, grad_out(&tc, SHAPE(b->c)));
    }
    if (which != 2) tc.alias_out[0] = 0; /* dx may alias dy */
    char name[64];
    snprintf(name, sizeof name, "bn bwd (variant %d) %dx%dx%dx%d", which, b->n, b->h, b->w, b->c);
    tc_check(&tc, name);
}

MM_TEST(cuda_batchnorm_backward)
{
    REQUIRE_GPU();
    for (size_t i = 0; i < sizeof bn_cfgs / sizeof bn_cfgs[0]; i++)
        for (int which = 0; which < 3; which++)
            bn_backward_case(&bn_cfgs[i], which, 700 + 3 * i + (uint64_t)which);
}

/* ---- element-wise ---- */
static const int64_t ew_sizes[] = {1, 7, 1001, 4096, 3 * 5 * 7 * 11};

MM_TEST(cuda_relu)
{
    REQUIRE_GPU();
    for (size_t i = 0; i < sizeof ew_sizes / sizeof ew_sizes[0]; i++) {
        int64_t n = ew_sizes[i];
        tcase tc;
        tc_init(&tc, MM_OP_RELU, TOL_EXACT, 800 + i);
        tc.node.p.elementwise.n = n;
        tc_in(&tc, act_in(&tc, -1, 1, SHAPE(n)));
        tc_out(&tc, act_out(&tc, SHAPE(n)));
        tc.alias_out[0] = 0;
        tc_check(&tc, "relu");

        tc_init(&tc, MM_OP_RELU_BWD, TOL_EXACT, 850 + i);
        tc.node.backward = true;
        tc.node.p.elementwise.n = n;
        tc_in(&tc, act_in(&tc, -1, 1, SHAPE(n)));
        tc_in(&tc, act_in(&tc, -1, 1, SHAPE(n))); /* y: only its sign matters */
        tc_out(&tc, act_out(&tc, SHAPE(n)));
        tc.alias_out[0] = 0;
        tc_check(&tc, "relu bwd");
    }
}

MM_TEST(cuda_add)
{
    REQUIRE_GPU();
    for (size_t i = 0; i < sizeof ew_sizes / sizeof ew_sizes[0]; i++) {
        int64_t n = ew_sizes[i];
        tcase tc;
        tc_init(&tc, MM_OP_ADD, TOL_EXACT, 900 + i);
        tc.node.p.elementwise.n = n;
        tc_in(&tc, act_in(&tc, -1, 1, SHAPE(n)));
        tc_in(&tc, act_in(&tc, -1, 1, SHAPE(n)));
        tc_out(&tc, act_out(&tc, SHAPE(n)));
        tc.alias_out[0] = (int)(i % 2); /* in place into a or b */
        tc_check(&tc, "add");
    }
}

MM_TEST(cuda_dropout)
{
    REQUIRE_GPU();
    const float ps[] = {0.0f, 0.3f, 0.5f};
    for (size_t i = 0; i < sizeof ew_sizes / sizeof ew_sizes[0]; i++) {
        int64_t n = ew_sizes[i];
        float p = ps[i % 3];
        tcase tc;
        tc_init(&tc, MM_OP_DROPOUT, TOL_EXACT, 1000 + i);
        tc.node.p.dropout.n = n;
        tc.node.p.dropout.p = p;
        tc.node.p.dropout.seed = 12345 + i;
        tc_in(&tc, act_in(&tc, -1, 1, SHAPE(n)));
        tc_out(&tc, act_out(&tc, SHAPE(n)));
        tc_out(&tc, tc_value(&tc, MM_VALUE_ACT, MM_U8, false, INIT_NAN, 0, 0, SHAPE(n)));
        tc.alias_out[0] = 0;
        tc_check(&tc, "dropout");

        tc_init(&tc, MM_OP_DROPOUT_BWD, TOL_EXACT, 1050 + i);
        tc.node.backward = true;
        tc.node.p.dropout.n = n;
        tc.node.p.dropout.p = p;
        tc.node.p.dropout.seed = 12345 + i;
        tc_in(&tc, act_in(&tc, -1, 1, SHAPE(n)));
        tc_in(&tc, tc_value(&tc, MM_VALUE_ACT, MM_U8, false, INIT_LABELS, 0, 2, SHAPE(n)));
        tc_out(&tc, act_out(&tc, SHAPE(n)));
        tc.alias_out[0] = 0;
        tc_check(&tc, "dropout bwd");
    }
}

/* The mask really is Philox's, element for element (not only the same on both backends). */
MM_TEST(cuda_dropout_mask_is_philox)
{
    REQUIRE_GPU();
    mm_backend *be = cuda_backend(MM_PRECISION_FP32);
    int64_t n = 4099;
    float p = 0.25f;
    uint64_t seed = 99;
    float *x = mm_xmalloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) x[i] = 1.0f;
    void *dx = be->alloc(be, (size_t)n * 4), *dy = be->alloc(be, (size_t)n * 4);
    void *dm = be->alloc(be, (size_t)n);
    be->copy_to_device(be, dx, x, (size_t)n * 4);
    int64_t shape[1] = {n};
    mm_value vals[3];
    memset(vals, 0, sizeof vals);
    for (int i = 0; i < 3; i++) {
        vals[i].dtype = i == 2 ? MM_U8 : MM_F32;
        vals[i].ndim = 1;
        vals[i].shape[0] = n;
    }
    mm_node node;
    memset(&node, 0, sizeof node);
    node.op = MM_OP_DROPOUT;
    node.n_in = 1, node.n_out = 2;
    node.in[0] = 0, node.out[0] = 1, node.out[1] = 2;
    node.p.dropout.n = n, node.p.dropout.p = p, node.p.dropout.seed = seed;
    mm_graph g;
    memset(&g, 0, sizeof g);
    g.values = vals, g.n_values = 3, g.nodes = &node, g.n_nodes = 1, g.training = true;
    mm_tensor ins[1] = {mm_tensor_view(dx, MM_F32, 1, shape)};
    mm_tensor outs[2] = {mm_tensor_view(dy, MM_F32, 1, shape), mm_tensor_view(dm, MM_U8, 1, shape)};
    CHECK_EQ_INT(be->workspace_bytes(be, &g, &node), 0);
    be->run_node(be, &g, &node, ins, outs, NULL, 0);
    uint8_t *mask = mm_xmalloc((size_t)n);
    float *y = mm_xmalloc((size_t)n * sizeof(float));
    be->copy_to_host(be, mask, dm, (size_t)n);
    be->copy_to_host(be, y, dy, (size_t)n * 4);
    int64_t bad = 0, kept = 0;
    for (int64_t i = 0; i < n; i++) {
        int keep = mm_philox_uniform(seed, (uint64_t)i) >= p;
        kept += keep;
        bad += mask[i] != keep || y[i] != (keep ? 1.0f / (1.0f - p) : 0.0f);
    }
    CHECK_EQ_INT(bad, 0);
    CHECK(kept > n / 2 && kept < n); /* about 3/4 kept */
    be->free(be, dx);
    be->free(be, dy);
    be->free(be, dm);
    free(x);
    free(mask);
    free(y);
}

/* ---- pooling ---- */
typedef struct pool_cfg {
    int n, h, w, c, k, stride, pad, include_pad;
} pool_cfg;

static const pool_cfg pool_cfgs[] = {
    {2, 9, 7, 3, 3, 2, 1, 1},   /* ResNet's 3x3/2 pad 1: overlapping windows */
    {1, 8, 10, 5, 2, 2, 0, 1},  /* VGG's 2x2/2 */
    {2, 7, 7, 4, 3, 2, 1, 0},   /* average without the padding */
    {1, 11, 6, 2, 3, 1, 1, 1},  /* stride 1 */
    {2, 5, 9, 33, 2, 1, 0, 0},  /* many channels, stride 1 */
};

static mm_pool_dims pool_dims(const pool_cfg *c)
{
    mm_pool_dims d;
    memset(&d, 0, sizeof d);
    d.n = c->n, d.h = c->h, d.w = c->w, d.c = c->c, d.kh = d.kw = c->k;
    d.stride_h = d.stride_w = c->stride;
    d.pad_h = d.pad_w = c->pad;
    d.count_include_pad = c->include_pad;
    MM_ASSERT(mm_pool_dims_finish(&d));
    return d;
}

static void pool_case(mm_op op, const mm_pool_dims *d, bool backward, init_kind xinit,
                      uint64_t seed, const char *name)
{
    tcase tc;
    tc_init(&tc, op, TOL_REDUCE, seed);
    tc.node.p.pool = *d;
    tc.node.backward = backward;
    bool needs_x = op == MM_OP_MAXPOOL_BWD;
    if (!backward) {
        tc_in(&tc, tc_value(&tc, MM_VALUE_ACT, MM_F32, true, xinit, -1, 1,
                            SHAPE(d->n, d->h, d->w, d->c)));
        tc_out(&tc, act_out(&tc, SHAPE(d->n, d->oh, d->ow, d->c)));
    } else {
        tc_in(&tc, act_in(&tc, -1, 1, SHAPE(d->n, d->oh, d->ow, d->c)));
        if (needs_x)
            tc_in(&tc, tc_value(&tc, MM_VALUE_ACT, MM_F32, true, xinit, -1, 1,
                                SHAPE(d->n, d->h, d->w, d->c)));
        tc_out(&tc, act_out(&tc, SHAPE(d->n, d->h, d->w, d->c)));
    }
    tc_check(&tc, name);
}

/* Max pooling's own paths (pool.cu): channel counts divisible by 8 and by 4 take the 16-byte
 * vector kernels, the others (pool_cfgs above) the scalar ones; windows that do not overlap take
 * the cell backward (with pixels past the last window, padding, and gaps when k < stride), the
 * overlapping ones the tiled backward (several tiles, partial tiles, channel chunks with a
 * remainder, and a 7x7 window whose tile must shrink to fit shared memory). */
static const pool_cfg maxpool_cfgs[] = {
    {2, 37, 23, 64, 3, 2, 1, 1},  /* ResNet's 3x3/2 pad 1: 8-wide, 3x2 tiles, partial */
    {1, 20, 18, 12, 3, 2, 1, 1},  /* 4-wide */
    {2, 17, 35, 16, 3, 1, 1, 1},  /* stride 1: three covering rows per pixel */
    {1, 9, 7, 520, 3, 2, 1, 1},   /* 65 vectors: chunks of 8 and a remainder of 1 */
    {1, 20, 19, 64, 7, 1, 3, 1},  /* 7x7/1: the tile shrinks */
    {2, 19, 21, 64, 2, 2, 0, 1},  /* VGG's 2x2/2, 8-wide, odd sizes: last row and column unused */
    {1, 12, 10, 24, 2, 2, 1, 1},  /* 2x2/2 pad 1 */
    {2, 9, 11, 8, 1, 2, 0, 1},    /* 1x1/2: pixels between windows */
    {1, 10, 11, 4, 3, 3, 0, 1},   /* 3x3/3, 4-wide */
};

MM_TEST(cuda_maxpool)
{
    REQUIRE_GPU();
    for (size_t i = 0; i < sizeof pool_cfgs / sizeof pool_cfgs[0]; i++) {
        mm_pool_dims d = pool_dims(&pool_cfgs[i]);
        pool_case(MM_OP_MAXPOOL, &d, false, INIT_RAND, 1100 + i, "maxpool");
        pool_case(MM_OP_MAXPOOL, &d, false, INIT_TIES, 1120 + i, "maxpool ties");
        pool_case(MM_OP_MAXPOOL_BWD, &d, true, INIT_RAND, 1140 + i, "maxpool bwd");
        pool_case(MM_OP_MAXPOOL_BWD, &d, true, INIT_TIES, 1160 + i, "maxpool bwd ties");
    }
}

MM_TEST(cuda_maxpool_vector)
{
    REQUIRE_GPU();
    for (size_t i = 0; i < sizeof maxpool_cfgs / sizeof maxpool_cfgs[0]; i++) {
        mm_pool_dims d = pool_dims(&maxpool_cfgs[i]);
        char name[64];
        snprintf(name, sizeof name, "maxpool cfg %zu", i);
        pool_case(MM_OP_MAXPOOL, &d, false, INIT_TIES, 1400 + i, name);
        snprintf(name, sizeof name, "maxpool bwd cfg %zu", i);
        pool_case(MM_OP_MAXPOOL_BWD, &d, true, INIT_RAND, 1420 + i, name);
        snprintf(name, sizeof name, "maxpool bwd ties cfg %zu", i);
        pool_case(MM_OP_MAXPOOL_BWD, &d, true, INIT_TIES, 1440 + i, name);
    }
}

/* NaN: the forward returns it, the backward sends the gradient to the window's last NaN (the
 * CPU's and PyTorch's rule), on the scalar and the vector paths. */
MM_TEST(cuda_maxpool_nan)
{
    REQUIRE_GPU();
    const pool_cfg cfgs[] = {pool_cfgs[0], pool_cfgs[1], maxpool_cfgs[0], maxpool_cfgs[5]};
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) {
        mm_pool_dims d = pool_dims(&cfgs[i]);
        pool_case(MM_OP_MAXPOOL, &d, false, INIT_NANS, 1460 + i, "maxpool nan");
        pool_case(MM_OP_MAXPOOL_BWD, &d, true, INIT_NANS, 1480 + i, "maxpool bwd nan");
    }
}

MM_TEST(cuda_avgpool)
{
    REQUIRE_GPU();
    for (size_t i = 0; i < sizeof pool_cfgs / sizeof pool_cfgs[0]; i++) {
        mm_pool_dims d = pool_dims(&pool_cfgs[i]);
        pool_case(MM_OP_AVGPOOL, &d, false, INIT_RAND, 1200 + i, "avgpool");
        pool_case(MM_OP_AVGPOOL_BWD, &d, true, INIT_RAND, 1220 + i, "avgpool bwd");
    }
}

MM_TEST(cuda_adaptive_avgpool)
{
    REQUIRE_GPU();
    const int cfg[][6] = {{2, 7, 5, 3, 3, 2}, {1, 13, 10, 4, 4, 4}, {2, 9, 7, 8, 1, 1},
                          {1, 6, 6, 2, 6, 6}, {2, 5, 11, 5, 7, 3}};
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
        mm_pool_dims d;
        memset(&d, 0, sizeof d);
        d.n = cfg[i][0], d.h = cfg[i][1], d.w = cfg[i][2], d.c = cfg[i][3];
        d.oh = cfg[i][4], d.ow = cfg[i][5];
        pool_case(MM_OP_ADAPTIVE_AVGPOOL, &d, false, INIT_RAND, 1300 + i, "adaptive avgpool");
        pool_case(MM_OP_ADAPTIVE_AVGPOOL_BWD, &d, true, INIT_RAND, 1320 + i,
                  "adaptive avgpool bwd");
    }
}

MM_TEST(cuda_global_avgpool)
{
    REQUIRE_GPU();
    const int cfg[][4] = {{2, 7, 5, 37}, {1, 1, 1, 8}, {2, 36, 28, 64}};
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
        int n = cfg[i][0], h = cfg[i][1], w = cfg[i][2], c = cfg[i][3];
        tcase tc;
        tc_init(&tc, MM_OP_GLOBAL_AVGPOOL, TOL_REDUCE, 1400 + i);
        tc.node.p.gap.n = n, tc.node.p.gap.hw = (int64_t)h * w, tc.node.p.gap.c = c;
        tc_in(&tc, act_in(&tc, -1, 1, SHAPE(n, h, w, c)));
        tc_out(&tc, f32_out(&tc, SHAPE(n, c))); /* fp32 from here on in every precision */
        tc_check(&tc, "global avgpool");

        tc_init(&tc, MM_OP_GLOBAL_AVGPOOL_BWD, TOL_REDUCE, 1420 + i);
        tc.node.backward = true;
        tc.node.p.gap.n = n, tc.node.p.gap.hw = (int64_t)h * w, tc.node.p.gap.c = c;
        tc_in(&tc, f32_in(&tc, -1, 1, SHAPE(n, c)));
        tc_out(&tc, act_out(&tc, SHAPE(n, h, w, c)));
        tc_check(&tc, "global avgpool bwd");
    }
}

/* ---- dense ---- */
MM_TEST(cuda_dense)
{
    REQUIRE_GPU();
    const int cfg[][4] = {{2, 37, 5, 1}, {3, 64, 2, 0}, {1, 1024, 2, 1}, {32, 2048, 5, 1}};
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
        int n = cfg[i][0], k = cfg[i][1], o = cfg[i][2], bias = cfg[i][3];
        tcase tc;
        tc_init(&tc, MM_OP_DENSE, TOL_GEMM, 1500 + i);
        tc.node.p.dense.n = n, tc.node.p.dense.k = k, tc.node.p.dense.o = o;
        tc_in(&tc, f32_in(&tc, -1, 1, SHAPE(n, k)));
        tc_in(&tc, f32_in(&tc, -0.1f, 0.1f, SHAPE(o, k)));
        if (bias) tc_in(&tc, f32_in(&tc, -1, 1, SHAPE(o)));
        tc_out(&tc, f32_out(&tc, SHAPE(n, o)));
        tc_check(&tc, "dense");

        tc_init(&tc, MM_OP_DENSE_BWD_DATA, TOL_GEMM, 1520 + i);
        tc.node.backward = true;
        tc.node.p.dense.n = n, tc.node.p.dense.k = k, tc.node.p.dense.o = o;
        tc_in(&tc, f32_in(&tc, -1, 1, SHAPE(n, o)));
        tc_in(&tc, f32_in(&tc, -0.1f, 0.1f, SHAPE(o, k)));
        tc_out(&tc, f32_out(&tc, SHAPE(n, k)));
        tc_check(&tc, "dense bwd data");

        tc_init(&tc, MM_OP_DENSE_BWD_WEIGHT, TOL_GEMM, 1540 + i);
        tc.node.backward = true;
        tc.node.p.dense.n = n, tc.node.p.dense.k = k, tc.node.p.dense.o = o;
        tc_in(&tc, f32_in(&tc, -1, 1, SHAPE(n, o)));
        tc_in(&tc, f32_in(&tc, -1, 1, SHAPE(n, k)));
        tc_out(&tc, grad_out(&tc, SHAPE(o, k)));
        if (bias) tc_out(&tc, grad_out(&tc, SHAPE(o)));
        else tc.node.out[tc.node.n_out++] = -1;
        tc_check(&tc, "dense bwd weight");
    }
}

/* ---- softmax and the weighted cross-entropy ---- */
MM_TEST(cuda_softmax_xent)
{
    REQUIRE_GPU();
    const int cfg[][3] = {{2, 2, 1}, {3, 5, 0}, {32, 5, 1}, {300, 7, 1}};
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
        int n = cfg[i][0], c = cfg[i][1], weighted = cfg[i][2];
        tcase tc;
        tc_init(&tc, MM_OP_SOFTMAX, TOL_REDUCE, 1600 + i);
        tc.node.p.xent.n = n, tc.node.p.xent.c = c;
        tc_in(&tc, f32_in(&tc, -4, 4, SHAPE(n, c)));
        tc_out(&tc, f32_out(&tc, SHAPE(n, c)));
        tc_check(&tc, "softmax");

        tc_init(&tc, MM_OP_SOFTMAX_XENT, TOL_REDUCE, 1620 + i);
        tc.node.p.xent.n = n, tc.node.p.xent.c = c;
        tc_in(&tc, f32_in(&tc, -4, 4, SHAPE(n, c)));
        tc_in(&tc, tc_value(&tc, MM_VALUE_INPUT, MM_I32, false, INIT_LABELS, 0, (float)c,
                            SHAPE(n)));
        if (weighted) tc_in(&tc, f32_in(&tc, 0.2f, 3, SHAPE(n)));
        tc_out(&tc, f32_out(&tc, SHAPE(1)));
        tc_out(&tc, f32_out(&tc, SHAPE(n, c)));
        tc_check(&tc, "softmax xent");

        tc_init(&tc, MM_OP_SOFTMAX_XENT_BWD, TOL_REDUCE, 1640 + i);
        tc.node.backward = true;
        tc.node.p.xent.n = n, tc.node.p.xent.c = c, tc.node.p.xent.dloss = 1.0f;
        tc_in(&tc, f32_in(&tc, 0, 1, SHAPE(n, c)));
        tc_in(&tc, tc_value(&tc, MM_VALUE_INPUT, MM_I32, false, INIT_LABELS, 0, (float)c,
                            SHAPE(n)));
        if (weighted) tc_in(&tc, f32_in(&tc, 0.2f, 3, SHAPE(n)));
        tc_out(&tc, f32_out(&tc, SHAPE(n, c)));
        tc_check(&tc, "softmax xent bwd");
    }
}

/* ---- flips ---- */
MM_TEST(cuda_flip)
{
    REQUIRE_GPU();
    const int cfg[][4] = {{2, 5, 7, 3}, {1, 8, 6, 1}, {2, 3, 9, 16}};
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
        for (int axis = 1; axis <= 2; axis++) {
            int n = cfg[i][0], h = cfg[i][1], w = cfg[i][2], c = cfg[i][3];
            tcase tc;
            tc_init(&tc, MM_OP_FLIP, TOL_EXACT, 1700 + 2 * i + axis);
            tc.node.p.flip.n = n, tc.node.p.flip.h = h, tc.node.p.flip.w = w;
            tc.node.p.flip.c = c, tc.node.p.flip.axis = axis;
            tc_in(&tc, act_in(&tc, -1, 1, SHAPE(n, h, w, c)));
            tc_out(&tc, act_out(&tc, SHAPE(n, h, w, c)));
            tc_check(&tc, axis == 1 ? "flip rows" : "flip columns");
        }
    }
}

/* ---- optimizers over flat buffers: 3 steps on both backends ---- */
static void optim_case(bool adam, int variant)
{
    int64_t n = 1001;
    mm_backend *bes[2] = {cpu_backend(), cuda_backend(MM_PRECISION_FP32)};
    float *res[2][3];
    for (int b = 0; b < 2; b++) {
        mm_backend *be = bes[b];
        float *h = mm_xmalloc((size_t)n * sizeof(float));
        void *d[4];
        for (int k = 0; k < 4; k++) {
            d[k] = be->alloc(be, (size_t)n * 4);
            /* parameters and gradients random, moments from 0 */
            mm_test_fill_uniform(h, n, 77 + (uint64_t)k, -1.0f, 1.0f);
            if (k == 1 || k == 2) memset(h, 0, (size_t)n * 4);
            be->copy_to_device(be, d[k], h, (size_t)n * 4);
        }
        for (int step = 1; step <= 3; step++) {
            if (adam) {
                mm_adam_params a = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f, 0, step};
                if (variant == 1) a.weight_decay = 0.01f;
                if (variant == 2) a.weight_decay = 0.01f, a.decoupled = 1;
                be->adam(be, d[0], d[1], d[2], d[3], n, &a);
            } else {
                mm_sgd_params s = {0.01f, 0.9f, 0.0f, 0};
                if (variant == 1) s.weight_decay = 1e-4f, s.nesterov = 1;
                if (variant == 2) s.momentum = 0.0f;
                be->sgd(be, d[0], d[1], d[3], n, &s);
            }
        }
        if (be->sync) be->sync(be);
        for (int k = 0; k < 3; k++) {
            res[b][k] = mm_xmalloc((size_t)n * sizeof(float));
            be->copy_to_host(be, res[b][k], d[k], (size_t)n * 4);
        }
        for (int k = 0; k < 4; k++) be->free(be, d[k]);
        free(h);
    }
    const char *names[3] = {"param", "moment 1", "moment 2"};
    for (int k = 0; k < (adam ? 3 : 2); k++) {
        char what[64];
        snprintf(what, sizeof what, "%s variant %d %s", adam ? "adam" : "sgd", variant, names[k]);
        /* optim_math.h makes the update bitwise the same on both backends */
        CHECK_ARRAYS(what, res[1][k], res[0][k], n, 0, 0);
    }
    for (int b = 0; b < 2; b++)
        for (int k = 0; k < 3; k++) free(res[b][k]);
}

MM_TEST(cuda_adam)
{
    REQUIRE_GPU();
    for (int v = 0; v < 3; v++) optim_case(true, v);
}

MM_TEST(cuda_sgd)
{
    REQUIRE_GPU();
    for (int v = 0; v < 3; v++) optim_case(false, v);
}

/* ---- CUDA graph capture: conv + bias then ReLU captured once, replayed on new input ---- */
MM_TEST(cuda_graph_capture_replay)
{
    REQUIRE_GPU();
    for (int pi = 0; pi < 3; pi++) {
        mm_precision p = precisions[pi];
        mm_backend *be = cuda_backend(p);
        CHECK(be->begin_capture && be->end_capture && be->replay);
        conv_cfg cc = {2, 12, 10, 8, 16, 3, 2, 1, 1};
        mm_conv_dims d = conv_dims(&cc);
        mm_dtype at = p == MM_PRECISION_BF16 ? MM_BF16 : MM_F32;
        mm_value vals[5];
        memset(vals, 0, sizeof vals);
        int64_t shapes[5][4] = {{d.n, d.h, d.w, d.c}, {d.k, d.r, d.s, d.c}, {d.k, 0, 0, 0},
                                {d.n, d.oh, d.ow, d.k}, {d.n, d.oh, d.ow, d.k}};
        int ndims[5] = {4, 4, 1, 4, 4};
        mm_dtype dts[5] = {at, MM_F32, MM_F32, at, at};
        void *dev[5];
        for (int i = 0; i < 5; i++) {
            vals[i].dtype = dts[i];
            vals[i].ndim = ndims[i];
            memcpy(vals[i].shape, shapes[i], sizeof shapes[i]);
            dev[i] = be->alloc(be, (size_t)value_numel(&vals[i]) * mm_dtype_size(dts[i]));
        }
        mm_node nodes[2];
        memset(nodes, 0, sizeof nodes);
        nodes[0].op = MM_OP_CONV2D, nodes[0].n_in = 3, nodes[0].n_out = 1;
        nodes[0].in[0] = 0, nodes[0].in[1] = 1, nodes[0].in[2] = 2, nodes[0].out[0] = 3;
        nodes[0].p.conv = d;
        nodes[1].op = MM_OP_RELU, nodes[1].n_in = 1, nodes[1].n_out = 1;
        nodes[1].in[0] = 3, nodes[1].out[0] = 4;
        nodes[1].p.elementwise.n = value_numel(&vals[4]);
        mm_graph g;
        memset(&g, 0, sizeof g);
        g.values = vals, g.n_values = 5, g.nodes = nodes, g.n_nodes = 2, g.training = true;
        size_t wsb = be->workspace_bytes(be, &g, &nodes[0]);
        CHECK_EQ_INT(be->workspace_bytes(be, &g, &nodes[1]), 0);
        void *ws = wsb ? be->alloc(be, wsb) : NULL;
        mm_tensor v[5];
        for (int i = 0; i < 5; i++) v[i] = mm_tensor_view(dev[i], dts[i], ndims[i], shapes[i]);

        /* Host data: weights and bias once, two different inputs. */
        int64_t nx = value_numel(&vals[0]), nw = value_numel(&vals[1]), ny = value_numel(&vals[4]);
        float *hx = mm_xmalloc((size_t)nx * 4), *hw = mm_xmalloc((size_t)nw * 4), hb[16];
        mm_test_fill_uniform(hw, nw, 5, -0.5f, 0.5f);
        mm_test_fill_uniform(hb, d.k, 6, -1, 1);
        be->copy_to_device(be, dev[1], hw, (size_t)nw * 4);
        be->copy_to_device(be, dev[2], hb, (size_t)d.k * 4);

        /* One eager run first, as a session does before capturing (kernels loaded, libraries
         * initialised), then the capture. */
        be->run_node(be, &g, &nodes[0], &v[0], &v[3], ws, wsb);
        be->run_node(be, &g, &nodes[1], &v[3], &v[4], NULL, 0);
        be->sync(be);
        CHECK_EQ_INT(be->begin_capture(be), MM_OK);
        be->run_node(be, &g, &nodes[0], &v[0], &v[3], ws, wsb);
        be->run_node(be, &g, &nodes[1], &v[3], &v[4], NULL, 0);
        mm_status s = be->end_capture(be);
        CHECK_MSG(s == MM_OK, "end_capture: %s", mm_last_error());

        float *direct = mm_xmalloc((size_t)ny * 4), *replayed = mm_xmalloc((size_t)ny * 4);
        void *raw = mm_xmalloc((size_t)ny * 4);
        for (int round = 0; round < 2 && s == MM_OK; round++) {
            mm_test_fill_uniform(hx, nx, 10 + (uint64_t)round, -1, 1);
            void *px = pack(hx, nx, at);
            be->copy_to_device(be, dev[0], px, (size_t)nx * mm_dtype_size(at));
            free(px);
            be->replay(be);
            be->sync(be);
            be->copy_to_host(be, raw, dev[4], (size_t)ny * mm_dtype_size(at));
            unpack(replayed, raw, ny, at);
            be->zero(be, dev[4], (size_t)ny * mm_dtype_size(at));
            be->run_node(be, &g, &nodes[0], &v[0], &v[3], ws, wsb);
            be->run_node(be, &g, &nodes[1], &v[3], &v[4], NULL, 0);
            be->copy_to_host(be, raw, dev[4], (size_t)ny * mm_dtype_size(at));
            unpack(direct, raw, ny, at);
            char what[64];
            snprintf(what, sizeof what, "replay round %d %s", round, mm_precision_name(p));
            /* The same kernels on the same data: equal up to an algorithm that is not bitwise
             * deterministic (a bf16 output may then round the other way). */
            double tol = p == MM_PRECISION_BF16 ? 1e-2 : 1e-5;
            CHECK_ARRAYS(what, replayed, direct, ny, tol, tol);
        }
        free(raw);
        free(direct);
        free(replayed);
        free(hx);
        free(hw);
        if (ws) be->free(be, ws);
        for (int i = 0; i < 5; i++) be->free(be, dev[i]);
    }
}
