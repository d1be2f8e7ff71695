/* The op-table harness of the CUDA tests: see op_case.h. A case's values live on the host as
 * floats; each run packs them into the backend's buffers (bf16 where bf16 mode stores
 * activations), runs the node through the backend table, and unpacks every value back. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/philox.h"
#include "runtime/backend.h"
#include "runtime/graph.h"
#include "runtime/graph_internal.h"
#include "tests/harness.h"
#include "tests/op_case.h"

/* ---- backends (made once per process) ---- */
mm_backend *cpu_backend(void)
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

bool tc_deterministic;

mm_backend *cuda_backend(mm_precision p)
{
    static mm_backend *be[2][3];
    mm_backend **b = &be[tc_deterministic][p];
    if (!*b) {
        mm_status s = mm_backend_cuda_create_ex(b, p, 0);
        if (s != MM_OK) {
            fprintf(stderr, "cuda backend: %s\n", mm_last_error());
            abort();
        }
        (*b)->deterministic = tc_deterministic;
    }
    return *b;
}

const mm_precision precisions[3] = {MM_PRECISION_FP32, MM_PRECISION_TF32,
                                           MM_PRECISION_BF16};

/* ---- bf16 on the host (round to nearest even, as the device's __float2bfloat16_rn) ---- */
uint16_t f2bf(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float bf2f(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float round_bf16(float f) { return bf2f(f2bf(f)); }

/* ---- one node with its values ---- */




void tc_init(tcase *tc, mm_op op, tol_kind kind, uint64_t seed)
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

int tc_value(tcase *tc, mm_value_kind kind, mm_dtype dtype, bool act, init_kind init,
                    float lo, float hi, int ndim, const int64_t *shape)
{
    MM_ASSERT(tc->nv < MAXV);
    int id = tc->nv++;
    char name[16];
    snprintf(name, sizeof name, "v%d", id);
    mm_value_init(&tc->v[id], kind, dtype, ndim, shape, name);
    tc->act[id] = act;
    tc->init[id] = init;
    tc->lo[id] = lo;
    tc->hi[id] = hi;
    return id;
}

/* Shorthands: an activation (bf16 in bf16 mode), an fp32 parameter or statistic, an output. */
int act_in(tcase *tc, float lo, float hi, int ndim, const int64_t *shape)
{
    return tc_value(tc, MM_VALUE_ACT, MM_F32, true, INIT_RAND, lo, hi, ndim, shape);
}
int f32_in(tcase *tc, float lo, float hi, int ndim, const int64_t *shape)
{
    return tc_value(tc, MM_VALUE_PARAM, MM_F32, false, INIT_RAND, lo, hi, ndim, shape);
}
int act_out(tcase *tc, int ndim, const int64_t *shape)
{
    return tc_value(tc, MM_VALUE_ACT, MM_F32, true, INIT_NAN, 0, 0, ndim, shape);
}
int f32_out(tcase *tc, int ndim, const int64_t *shape)
{
    return tc_value(tc, MM_VALUE_ACT, MM_F32, false, INIT_NAN, 0, 0, ndim, shape);
}
/* A parameter gradient: starts non-zero, the op accumulates into it. */
int grad_out(tcase *tc, int ndim, const int64_t *shape)
{
    return tc_value(tc, MM_VALUE_GRAD, MM_F32, false, INIT_RAND, -1, 1, ndim, shape);
}

void tc_in(tcase *tc, int id) { tc->node.in[tc->node.n_in++] = id; }
void tc_out(tcase *tc, int id) { tc->node.out[tc->node.n_out++] = id; }

/* ---- running a case on one backend ---- */
int64_t value_numel(const mm_value *v) { return mm_shape_numel(v->ndim, v->shape); }

/* Initial contents (as floats; labels as their values) of every value, bf16-rounded where the
 * CUDA run stores bf16 so both backends see the same numbers. */
float **tc_make_init(const tcase *tc, bool bf16)
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
        case INIT_TAPS: {
            const mm_pool_dims *d = &tc->node.p.pool;
            for (int64_t j = 0; j < n; j++) {
                int64_t pix = j / d->c;
                int ox = (int)(pix % d->ow), oy = (int)(pix / d->ow % d->oh);
                int iy0 = oy * d->stride_h - d->pad_h, ix0 = ox * d->stride_w - d->pad_w;
                int ky_lo = iy0 < 0 ? -iy0 : 0, ky_hi = d->h - iy0 < d->kh ? d->h - iy0 : d->kh;
                int kx_lo = ix0 < 0 ? -ix0 : 0, kx_hi = d->w - ix0 < d->kw ? d->w - ix0 : d->kw;
                uint32_t r = mm_philox_u32(seed, (uint64_t)j) %
                             (uint32_t)((ky_hi - ky_lo) * (kx_hi - kx_lo));
                int ky = ky_lo + (int)r / (kx_hi - kx_lo), kx = kx_lo + (int)r % (kx_hi - kx_lo);
                h[i][j] = (float)(ky * d->kw + kx);
            }
            break;
        }
        }
        if (bf16 && tc->act[i])
            for (int64_t j = 0; j < n; j++) h[i][j] = round_bf16(h[i][j]);
    }
    return h;
}

void free_arrays(float **a, int n)
{
    for (int i = 0; i < n; i++) free(a[i]);
    free(a);
}

mm_dtype stored_dtype(const tcase *tc, int i, bool bf16)
{
    return bf16 && tc->act[i] ? MM_BF16 : tc->v[i].dtype;
}

/* Host floats -> the bytes of `dtype`, and back. */
void *pack(const float *h, int64_t n, mm_dtype dtype)
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

void unpack(float *h, const void *b, int64_t n, mm_dtype dtype)
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
float **tc_run(const tcase *tc, mm_backend *be, float **init, bool bf16, bool alias,
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

double tolerance(tol_kind kind, mm_precision p, bool stored_bf16)
{
    double t = kind == TOL_EXACT ? 1e-6 : kind == TOL_REDUCE ? 1e-4 : 2e-4;
    if (kind == TOL_GEMM && p == MM_PRECISION_TF32) t = 1e-2;
    if (kind == TOL_GEMM && p == MM_PRECISION_BF16) t = 3e-2;
    if (stored_bf16 && t < 1.6e-2) t = 1.6e-2;
    return t;
}

/* Runs the case on the CPU and on CUDA at every precision and compares every value. */
void tc_check(const tcase *tc, const char *name)
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

