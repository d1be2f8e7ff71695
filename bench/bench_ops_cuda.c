/* CUDA op benchmark: the time of each op of a whole-image ResNet50 step at its real sizes
 * (1152x896 input, batch 2 by default), run through the CUDA backend's table exactly as a session
 * runs it, with its planned workspace. Convolutions report TFLOP/s, memory-bound ops GB/s of
 * the bytes they must move at least, so the slow ones stand out; op=copy, a device-to-device
 * copy of an activation, is what the card's memory gives, the anchor those GB/s compare with;
 * op=batchnorm_*_cudnn is cuDNN's own batch norm on the same shapes, the anchor of ours.
 * Each timing is of RUNS back-to-back runs and one synchronisation (the best of several), so
 * the launch and the wait count once per RUNS runs, as in a captured step.
 *
 * Usage: bench_ops_cuda [fp32|tf32|bf16 [H W [BATCH [FILTER]]]]   (default bf16 1152 896 2)
 * FILTER: only ops whose name contains it (e.g. maxpool, conv_bwd_filter).
 * Output: one line per op, `op=NAME shape=... precision=P ms=T tflops=F gbps=G`. Convolutions
 * also run as the variants that blend into their output (cuDNN's beta 1: conv_bwd_data_acc,
 * conv_bwd_filter_add), to show what blending costs beside writing, and stride-1 data gradients
 * both ways (conv_bwd_data_plain on cuDNN's backward-data algorithms, conv_bwd_data_as_fwd as
 * a forward convolution of dy; conv_bwd_data is the step's choice), and 3x3 stride-1 forward
 * convolutions and filter gradients of fp32 data both ways (conv_fwd_on_cudnn on cuDNN,
 * conv_fwd_on_wino as our Winograd; conv_bwd_filter_on_*; FILTER _on_ runs only these).
 * Without a GPU it says so and exits 0 (it is not a test). The convolution paths can be compared
 * shape by shape by forcing them (conv_search.c): MM_CONV_NCHW=0/1 (NCHW copies), MM_CUDNN_GRAPH,
 * MM_CONV_GEMM; MM_CUDNN_VERBOSE=1 prints every candidate of every search. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef MM_HAVE_CUDA
#include <cuda_runtime.h>
#include <cudnn.h>
#endif

#include "runtime/backend.h"
#include "runtime/graph.h"

#define MIN_REPS 5
#define MIN_SECONDS 0.2
#define RUNS 10

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef struct bench_op {
    mm_node node;
    mm_value vals[12];
    int nv;
    double flops, bytes; /* work of one run */
    int taps;            /* the byte u8 values are filled with (max-pool taps) */
    char name[48], shape[64];
} bench_op;

static int value(bench_op *b, mm_dtype dtype, int ndim, const int64_t *shape)
{
    if (b->nv == (int)(sizeof b->vals / sizeof b->vals[0])) {
        fprintf(stderr, "bench_ops_cuda: op %s has too many values\n", b->name);
        exit(1);
    }
    mm_value *v = &b->vals[b->nv];
    memset(v, 0, sizeof *v);
    v->dtype = dtype;
    v->ndim = ndim;
    memcpy(v->shape, shape, sizeof(int64_t) * (size_t)ndim);
    return b->nv++;
}

static size_t value_bytes(const mm_value *v)
{
    return (size_t)mm_shape_numel(v->ndim, v->shape) * mm_dtype_size(v->dtype);
}

static const char *g_filter; /* only ops whose name contains it; NULL: all */

/* The best time of one call of once(arg): after a warm-up call, RUNS back-to-back calls and one
 * wait(arg), repeated until MIN_REPS and MIN_SECONDS. */
static double best_time(void (*once)(void *), void (*wait)(void *), void *arg)
{
    once(arg);
    wait(arg);
    double best = 1e30, start = now();
    for (int reps = 0; reps < MIN_REPS || now() - start < MIN_SECONDS; reps++) {
        double t0 = now();
        for (int k = 0; k < RUNS; k++) once(arg);
        wait(arg);
        double t = (now() - t0) / RUNS;
        if (t < best) best = t;
    }
    return best;
}

static void backend_wait(void *be) { ((mm_backend *)be)->sync(be); }

/* One node run through the backend's table, as a session runs it. */
typedef struct node_run {
    mm_backend *be;
    const mm_graph *g;
    const mm_node *node;
    const mm_tensor *ins, *outs;
    void *ws;
    size_t wsb;
} node_run;

static void node_once(void *arg)
{
    node_run *r = arg;
    r->be->run_node(r->be, r->g, r->node, r->ins, r->outs, r->ws, r->wsb);
}
static void node_wait(void *arg) { backend_wait(((node_run *)arg)->be); }

/* Runs b on the backend: allocates its values (filled with small numbers) and workspace, warms
 * up, then times repetitions until MIN_SECONDS and MIN_REPS; prints the best. */
static void run(mm_backend *be, bench_op *b)
{
    if (g_filter && !strstr(b->name, g_filter)) return;
    void *dev[12];
    for (int i = 0; i < b->nv; i++) {
        size_t n = value_bytes(&b->vals[i]);
        dev[i] = be->alloc(be, n);
        if (!dev[i]) {
            printf("op=%s shape=%s SKIPPED (out of GPU memory)\n", b->name, b->shape);
            for (int k = 0; k < i; k++) be->free(be, dev[k]);
            return;
        }
        /* Bytes of 0x3c: small positive numbers (0.0115) in fp32 and bf16 alike; u8 values are
         * max-pool taps and get a window position inside the image. */
        void *h = malloc(n);
        memset(h, b->vals[i].dtype == MM_U8 ? b->taps : 0x3c, n);
        be->copy_to_device(be, dev[i], h, n);
        free(h);
    }
    mm_graph g;
    memset(&g, 0, sizeof g);
    g.values = b->vals;
    g.n_values = b->nv;
    g.nodes = &b->node;
    g.n_nodes = 1;
    g.training = true;
    g.loss = -1;
    mm_tensor ins[MM_NODE_MAX_IN], outs[MM_NODE_MAX_OUT];
    memset(ins, 0, sizeof ins);
    memset(outs, 0, sizeof outs);
    for (int k = 0; k < b->node.n_in; k++) {
        const mm_value *v = b->node.in[k] >= 0 ? &b->vals[b->node.in[k]] : NULL;
        if (v) ins[k] = mm_tensor_view(dev[b->node.in[k]], v->dtype, v->ndim, v->shape);
    }
    for (int k = 0; k < b->node.n_out; k++) {
        const mm_value *v = b->node.out[k] >= 0 ? &b->vals[b->node.out[k]] : NULL;
        if (v) outs[k] = mm_tensor_view(dev[b->node.out[k]], v->dtype, v->ndim, v->shape);
    }
    size_t wsb = be->workspace_bytes(be, &g, &b->node);
    void *ws = wsb ? be->alloc(be, wsb) : NULL;
    node_run r = {be, &g, &b->node, ins, outs, ws, wsb};
    double best = best_time(node_once, node_wait, &r);
    printf("op=%s shape=%s precision=%s ms=%.4f tflops=%.2f gbps=%.1f ws_mib=%.1f\n", b->name,
           b->shape, mm_precision_name(be->precision), best * 1e3,
           b->flops / best * 1e-12, b->bytes / best * 1e-9, wsb / 1048576.0);
    fflush(stdout);
    if (ws) be->free(be, ws);
    for (int i = 0; i < b->nv; i++) be->free(be, dev[i]);
}

static void init(bench_op *b, mm_op op, const char *name)
{
    memset(b, 0, sizeof *b);
    b->node.op = op;
    for (int k = 0; k < MM_NODE_MAX_IN; k++) b->node.in[k] = -1;
    for (int k = 0; k < MM_NODE_MAX_OUT; k++) b->node.out[k] = -1;
    snprintf(b->name, sizeof b->name, "%s", name);
}

static void in(bench_op *b, int id) { b->node.in[b->node.n_in++] = id; }
static void out(bench_op *b, int id) { b->node.out[b->node.n_out++] = id; }

static void conv_ops(mm_backend *be, mm_dtype act, int n, int h, int w, int c, int k, int r,
                     int stride, int pad)
{
    mm_conv_dims d;
    memset(&d, 0, sizeof d);
    d.n = n, d.h = h, d.w = w, d.c = c, d.k = k, d.r = r, d.s = r;
    d.stride_h = d.stride_w = stride, d.pad_h = d.pad_w = pad;
    if (!mm_conv_dims_finish(&d)) return;
    int64_t xs[4] = {n, h, w, c}, wsz[4] = {k, r, r, c}, ys[4] = {n, d.oh, d.ow, k};
    double flops = 2.0 * n * d.oh * d.ow * (double)k * r * r * c;
    /* each direction as the step runs it, and beside it the variant that blends into its output
     * (cuDNN's beta 1): a data gradient summed into the one it joins (d.accumulate, in place), a
     * filter gradient added to rather than written (d.overwrite 0: what its first writer did
     * before 2026-11-26's tenth session); a stride-1 data gradient also on cuDNN's backward-data
     * algorithms and as a forward convolution of dy (MM_CONV_DGRAD_FWD=0 / 1; the step takes
     * the faster); a 3x3 stride-1 forward convolution and filter gradient of fp32 data also on
     * cuDNN alone and as our Winograd (MM_CONV_WINOGRAD=0 / 1) */
    bool wino = r == 3 && stride == 1 && act == MM_F32;
    const struct {
        mm_op op;
        const char *name;
        int accumulate, overwrite;
        const char *env, *mode; /* a variable set for the run (NULL: the default), its value */
    } vs[11] = {{MM_OP_CONV2D, "conv_fwd", 0, 0, NULL, NULL},
               {MM_OP_CONV2D, "conv_fwd_on_cudnn", 0, 0, "MM_CONV_WINOGRAD", "0"},
               {MM_OP_CONV2D, "conv_fwd_on_wino", 0, 0, "MM_CONV_WINOGRAD", "1"},
               {MM_OP_CONV2D_BWD_DATA, "conv_bwd_data", 0, 0, NULL, NULL},
               {MM_OP_CONV2D_BWD_DATA, "conv_bwd_data_plain", 0, 0, "MM_CONV_DGRAD_FWD", "0"},
               {MM_OP_CONV2D_BWD_DATA, "conv_bwd_data_as_fwd", 0, 0, "MM_CONV_DGRAD_FWD", "1"},
               {MM_OP_CONV2D_BWD_DATA, "conv_bwd_data_acc", 1, 0, NULL, NULL},
               {MM_OP_CONV2D_BWD_FILTER, "conv_bwd_filter", 0, 1, NULL, NULL},
               {MM_OP_CONV2D_BWD_FILTER, "conv_bwd_filter_add", 0, 0, NULL, NULL},
               {MM_OP_CONV2D_BWD_FILTER, "conv_bwd_filter_on_cudnn", 0, 1, "MM_CONV_WINOGRAD", "0"},
               {MM_OP_CONV2D_BWD_FILTER, "conv_bwd_filter_on_wino", 0, 1, "MM_CONV_WINOGRAD", "1"}};
    for (int i = 0; i < 11; i++) {
        bool turn = vs[i].env && strcmp(vs[i].env, "MM_CONV_DGRAD_FWD") == 0;
        if (turn && (stride != 1 || r == 1)) continue; /* only the backward-data way */
        if (vs[i].env && !turn && !wino) continue;
        if (vs[i].env) setenv(vs[i].env, vs[i].mode, 1);
        bench_op b;
        init(&b, vs[i].op, vs[i].name);
        b.node.p.conv = d;
        b.node.p.conv.accumulate = vs[i].accumulate;
        b.node.p.conv.overwrite = vs[i].overwrite;
        int x = value(&b, act, 4, xs), wt = value(&b, MM_F32, 4, wsz), y = value(&b, act, 4, ys);
        int dw = value(&b, MM_F32, 4, wsz);
        if (vs[i].op == MM_OP_CONV2D) in(&b, x), in(&b, wt), out(&b, y);
        if (vs[i].op == MM_OP_CONV2D_BWD_DATA) {
            in(&b, y), in(&b, wt);
            if (vs[i].accumulate) in(&b, x); /* the sum it joins, written over in place */
            out(&b, x);
        }
        if (vs[i].op == MM_OP_CONV2D_BWD_FILTER) in(&b, y), in(&b, x), out(&b, dw);
        b.flops = flops;
        b.bytes = (double)(value_bytes(&b.vals[x]) * (vs[i].accumulate ? 2 : 1) +
                           value_bytes(&b.vals[y]));
        snprintf(b.shape, sizeof b.shape, "%dx%dx%dx%d_k%d_%dx%d/%d", n, h, w, c, k, r, r, stride);
        run(be, &b);
        if (vs[i].env) unsetenv(vs[i].env);
    }
}

static void memory_ops(mm_backend *be, mm_dtype act, int n, int h, int w, int c)
{
    int64_t xs[4] = {n, h, w, c}, cs[1] = {c};
    int64_t m = (int64_t)n * h * w;
    double ab = (double)m * c * mm_dtype_size(act);
    char shape[64];
    snprintf(shape, sizeof shape, "%dx%dx%dx%d", n, h, w, c);
    bench_op b;

    init(&b, MM_OP_BATCHNORM, "batchnorm_train");
    b.node.p.bn.m = m, b.node.p.bn.c = c, b.node.p.bn.eps = 1e-5f, b.node.p.bn.momentum = 0.1f;
    b.node.p.bn.training = true;
    in(&b, value(&b, act, 4, xs));
    for (int i = 0; i < 4; i++) in(&b, value(&b, MM_F32, 1, cs));
    out(&b, value(&b, act, 4, xs));
    out(&b, value(&b, MM_F32, 1, cs));
    out(&b, value(&b, MM_F32, 1, cs));
    b.bytes = 3 * ab; /* read for the statistics, read and write to normalise */
    snprintf(b.shape, sizeof b.shape, "%s", shape);
    run(be, &b);

    mm_op_params bnp = b.node.p;
    /* the backward, then the same with the ReLU's backward folded in from its sign bits
     * (fuse_relu_bwd) */
    int64_t bs[1] = {(m * c + 7) / 8};
    for (int bits = 0; bits < 2; bits++) {
        init(&b, MM_OP_BATCHNORM_BWD, bits ? "batchnorm_bwd_relu_bits" : "batchnorm_bwd");
        b.node.p = bnp;
        b.node.p.bn.relu_bwd = b.node.p.bn.relu_bits = bits;
        in(&b, value(&b, act, 4, xs));
        in(&b, value(&b, act, 4, xs));
        for (int i = 0; i < 3; i++) in(&b, value(&b, MM_F32, 1, cs));
        if (bits) in(&b, value(&b, MM_U8, 1, bs));
        out(&b, value(&b, act, 4, xs));
        out(&b, value(&b, MM_F32, 1, cs));
        out(&b, value(&b, MM_F32, 1, cs));
        if (bits) b.taps = 0x5a; /* half the bits set */
        /* dy, x for the sums; dy, x and dx for dx; the bits read in both passes */
        b.bytes = 5 * ab + (bits ? 2 * (double)bs[0] : 0);
        snprintf(b.shape, sizeof b.shape, "%s", shape);
        run(be, &b);
    }

    init(&b, MM_OP_BATCHNORM, "batchnorm_train_add_relu");
    b.node.p = bnp;
    b.node.p.bn.add = true;
    b.node.p.bn.relu = true;
    in(&b, value(&b, act, 4, xs));
    for (int i = 0; i < 4; i++) in(&b, value(&b, MM_F32, 1, cs));
    in(&b, value(&b, act, 4, xs)); /* the residual */
    out(&b, value(&b, act, 4, xs));
    out(&b, value(&b, MM_F32, 1, cs));
    out(&b, value(&b, MM_F32, 1, cs));
    b.bytes = 4 * ab; /* x read twice, the residual read, y written */
    snprintf(b.shape, sizeof b.shape, "%s", shape);
    run(be, &b);

    /* the recomputation's apply, writing the ReLU's sign bits too (mm_graph_fuse_relu_mask) */
    init(&b, MM_OP_BN_APPLY, "batchnorm_apply_relu_bits");
    b.node.p = bnp;
    b.node.p.bn.relu = true;
    in(&b, value(&b, act, 4, xs));
    for (int i = 0; i < 4; i++) in(&b, value(&b, MM_F32, 1, cs));
    out(&b, value(&b, act, 4, xs));
    out(&b, value(&b, MM_U8, 1, bs));
    b.bytes = 2 * ab + (double)bs[0];
    snprintf(b.shape, sizeof b.shape, "%s", shape);
    run(be, &b);

    init(&b, MM_OP_RELU, "relu");
    b.node.p.elementwise.n = m * c;
    in(&b, value(&b, act, 4, xs));
    out(&b, value(&b, act, 4, xs));
    b.bytes = 2 * ab;
    snprintf(b.shape, sizeof b.shape, "%s", shape);
    run(be, &b);

    init(&b, MM_OP_RELU_BWD, "relu_bwd_bits");
    b.node.p.elementwise.n = m * c;
    b.node.p.elementwise.bits = true;
    in(&b, value(&b, act, 4, xs));
    in(&b, value(&b, MM_U8, 1, bs));
    out(&b, value(&b, act, 4, xs));
    b.taps = 0x5a;
    b.bytes = 2 * ab + (double)bs[0];
    snprintf(b.shape, sizeof b.shape, "%s", shape);
    run(be, &b);

    init(&b, MM_OP_ADD, "add");
    b.node.p.elementwise.n = m * c;
    in(&b, value(&b, act, 4, xs));
    in(&b, value(&b, act, 4, xs));
    out(&b, value(&b, act, 4, xs));
    b.bytes = 3 * ab;
    snprintf(b.shape, sizeof b.shape, "%s", shape);
    run(be, &b);
}

typedef struct copy_run {
    mm_backend *be;
    void *dst, *src;
    size_t bytes;
} copy_run;

static void copy_once(void *arg)
{
    copy_run *r = arg;
    r->be->copy_device(r->be, r->dst, r->src, r->bytes);
}
static void copy_wait(void *arg) { backend_wait(((copy_run *)arg)->be); }

#ifdef MM_HAVE_CUDA
/* ---- cuDNN's batch norm on the same shapes, the anchor of ours (kernels/cuda/bn.cu) ----
 * The legacy API's NHWC kernels in CUDNN_BATCHNORM_SPATIAL_PERSISTENT mode, which PyTorch runs for
 * channels_last training: forward (statistics, running averages, y), the fused forward with the
 * residual add and ReLU where cuDNN offers it for the type, and the backward. Same byte counts as
 * ours, so the ms compare directly. cuDNN 9 marks this API deprecated (its graph API's norm ops
 * are the successor). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

typedef struct cudnn_bn_run {
    cudnnHandle_t h;
    cudnnTensorDescriptor_t x, p; /* the data (NHWC), the per-channel parameters */
    cudnnActivationDescriptor_t relu;
    cudnnBatchNormOps_t ops;
    bool backward;
    void *xd, *zd, *yd, *dxd, *scale, *bias, *rmean, *rvar, *smean, *sinv, *dscale, *dbias;
    void *ws, *reserve;
    size_t ws_bytes, reserve_bytes;
    cudnnStatus_t st; /* the first failure */
} cudnn_bn_run;

static void cudnn_bn_once(void *arg)
{
    cudnn_bn_run *r = arg;
    const float one = 1.0f, zero = 0.0f;
    bool fused = r->ops != CUDNN_BATCHNORM_OPS_BN;
    cudnnStatus_t st =
        r->backward
            ? cudnnBatchNormalizationBackwardEx(
                  r->h, CUDNN_BATCHNORM_SPATIAL_PERSISTENT, r->ops, &one, &zero, &one, &zero, r->x,
                  r->xd, NULL, NULL, r->x, r->yd, NULL, NULL, r->x, r->dxd, r->p, r->scale, r->bias,
                  r->dscale, r->dbias, 1e-5, r->smean, r->sinv, NULL, r->ws, r->ws_bytes,
                  r->reserve, r->reserve_bytes)
            : cudnnBatchNormalizationForwardTrainingEx(
                  r->h, CUDNN_BATCHNORM_SPATIAL_PERSISTENT, r->ops, &one, &zero, r->x, r->xd,
                  fused ? r->x : NULL, fused ? r->zd : NULL, r->x, r->yd, r->p, r->scale, r->bias,
                  0.1, r->rmean, r->rvar, 1e-5, r->smean, r->sinv, fused ? r->relu : NULL, r->ws,
                  r->ws_bytes, r->reserve, r->reserve_bytes);
    if (r->st == CUDNN_STATUS_SUCCESS) r->st = st;
}

static void cudnn_bn_wait(void *arg)
{
    (void)arg;
    cudaDeviceSynchronize();
}

/* Times one cuDNN batch norm (ops; forward or backward) on [n,h,w,c] of type act; prints it as
 * op=NAME, or why it could not run. */
static void cudnn_bn_op(const char *name, cudnnBatchNormOps_t ops, bool backward,
                        mm_precision prec, mm_dtype act, int n, int h, int w, int c, double bytes)
{
    if (g_filter && !strstr(name, g_filter)) return;
    cudnn_bn_run r;
    memset(&r, 0, sizeof r);
    r.ops = ops, r.backward = backward;
    char shape[64];
    snprintf(shape, sizeof shape, "%dx%dx%dx%d", n, h, w, c);
    cudnnDataType_t dt = act == MM_BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
    size_t data = (size_t)n * h * w * c * mm_dtype_size(act), chan = (size_t)c * sizeof(float);
    cudnnStatus_t st = cudnnCreate(&r.h);
    if (st == CUDNN_STATUS_SUCCESS) st = cudnnCreateTensorDescriptor(&r.x);
    if (st == CUDNN_STATUS_SUCCESS) st = cudnnCreateTensorDescriptor(&r.p);
    if (st == CUDNN_STATUS_SUCCESS) st = cudnnCreateActivationDescriptor(&r.relu);
    if (st == CUDNN_STATUS_SUCCESS)
        st = cudnnSetTensor4dDescriptor(r.x, CUDNN_TENSOR_NHWC, dt, n, c, h, w);
    if (st == CUDNN_STATUS_SUCCESS)
        st = cudnnDeriveBNTensorDescriptor(r.p, r.x, CUDNN_BATCHNORM_SPATIAL_PERSISTENT);
    if (st == CUDNN_STATUS_SUCCESS)
        st = cudnnSetActivationDescriptor(r.relu, CUDNN_ACTIVATION_RELU, CUDNN_NOT_PROPAGATE_NAN,
                                          0.0);
    cudnnActivationDescriptor_t act_desc = ops == CUDNN_BATCHNORM_OPS_BN ? NULL : r.relu;
    if (st == CUDNN_STATUS_SUCCESS)
        st = backward ? cudnnGetBatchNormalizationBackwardExWorkspaceSize(
                            r.h, CUDNN_BATCHNORM_SPATIAL_PERSISTENT, ops, r.x, NULL, r.x, NULL,
                            r.x, r.p, act_desc, &r.ws_bytes)
                      : cudnnGetBatchNormalizationForwardTrainingExWorkspaceSize(
                            r.h, CUDNN_BATCHNORM_SPATIAL_PERSISTENT, ops, r.x,
                            ops == CUDNN_BATCHNORM_OPS_BN ? NULL : r.x, r.x, r.p, act_desc,
                            &r.ws_bytes);
    if (st == CUDNN_STATUS_SUCCESS)
        st = cudnnGetBatchNormalizationTrainingExReserveSpaceSize(
            r.h, CUDNN_BATCHNORM_SPATIAL_PERSISTENT, ops, act_desc, r.x, &r.reserve_bytes);
    void **bufs[14] = {&r.xd, &r.zd, &r.yd, &r.dxd, &r.scale, &r.bias, &r.rmean, &r.rvar,
                       &r.smean, &r.sinv, &r.dscale, &r.dbias, &r.ws, &r.reserve};
    size_t sizes[14] = {data, data, data, data, chan, chan, chan, chan,
                        chan, chan, chan, chan, r.ws_bytes, r.reserve_bytes};
    bool mem = true;
    for (int i = 0; i < 14 && st == CUDNN_STATUS_SUCCESS; i++) {
        if (sizes[i] == 0) continue;
        mem = mem && cudaMalloc(bufs[i], sizes[i]) == cudaSuccess &&
              cudaMemset(*bufs[i], 0x3c, sizes[i]) == cudaSuccess;
    }
    if (st != CUDNN_STATUS_SUCCESS) {
        printf("op=%s shape=%s SKIPPED (cuDNN: %s)\n", name, shape, cudnnGetErrorString(st));
    } else if (!mem) {
        printf("op=%s shape=%s SKIPPED (out of GPU memory)\n", name, shape);
    } else {
        if (backward) { /* the saved statistics of a forward pass */
            cudnn_bn_run f = r;
            f.backward = false;
            cudnn_bn_once(&f);
            r.st = f.st;
        }
        double best = best_time(cudnn_bn_once, cudnn_bn_wait, &r);
        if (r.st != CUDNN_STATUS_SUCCESS)
            printf("op=%s shape=%s SKIPPED (cuDNN: %s)\n", name, shape, cudnnGetErrorString(r.st));
        else
            printf("op=%s shape=%s precision=%s ms=%.4f tflops=0 gbps=%.1f ws_mib=%.1f\n", name,
                   shape, mm_precision_name(prec), best * 1e3, bytes / best * 1e-9,
                   r.ws_bytes / 1048576.0);
    }
    fflush(stdout);
    for (int i = 0; i < 14; i++)
        if (*bufs[i]) cudaFree(*bufs[i]);
    if (r.relu) cudnnDestroyActivationDescriptor(r.relu);
    if (r.p) cudnnDestroyTensorDescriptor(r.p);
    if (r.x) cudnnDestroyTensorDescriptor(r.x);
    if (r.h) cudnnDestroy(r.h);
}
#pragma GCC diagnostic pop

/* Ours (memory_ops) against cuDNN's on [n,h,w,c]: the forward, the fused forward, the backward. */
static void cudnn_bn_ops(mm_precision prec, mm_dtype act, int n, int h, int w, int c)
{
    double ab = (double)n * h * w * c * mm_dtype_size(act);
    cudnn_bn_op("batchnorm_train_cudnn", CUDNN_BATCHNORM_OPS_BN, false, prec, act, n, h, w, c,
                3 * ab);
    cudnn_bn_op("batchnorm_train_add_relu_cudnn", CUDNN_BATCHNORM_OPS_BN_ADD_ACTIVATION, false,
                prec, act, n, h, w, c, 4 * ab);
    cudnn_bn_op("batchnorm_bwd_cudnn", CUDNN_BATCHNORM_OPS_BN, true, prec, act, n, h, w, c,
                5 * ab);
}
#endif

/* A device-to-device copy of `bytes`: what the memory-bound ops' GB/s compare with. */
static void copy_op(mm_backend *be, size_t bytes)
{
    void *a = be->alloc(be, bytes), *b = be->alloc(be, bytes);
    if (a && b) {
        be->zero(be, a, bytes);
        copy_run r = {be, b, a, bytes};
        double best = best_time(copy_once, copy_wait, &r);
        printf("op=copy shape=%zu precision=%s ms=%.4f tflops=0 gbps=%.1f ws_mib=0\n", bytes,
               mm_precision_name(be->precision), best * 1e3, 2.0 * (double)bytes / best * 1e-9);
    }
    if (a) be->free(be, a);
    if (b) be->free(be, b);
}

static void pool_ops(mm_backend *be, mm_dtype act, int n, int h, int w, int c, int k, int stride,
                     int pad)
{
    mm_pool_dims d;
    memset(&d, 0, sizeof d);
    d.n = n, d.h = h, d.w = w, d.c = c, d.kh = d.kw = k;
    d.stride_h = d.stride_w = stride, d.pad_h = d.pad_w = pad;
    if (!mm_pool_dims_finish(&d)) return;
    int64_t xs[4] = {n, h, w, c}, ys[4] = {n, d.oh, d.ow, c};
    double xb = (double)mm_shape_numel(4, xs) * mm_dtype_size(act);
    double yb = (double)mm_shape_numel(4, ys) * mm_dtype_size(act);
    bench_op b;
    double tb = (double)mm_shape_numel(4, ys); /* the u8 argmax */
    init(&b, MM_OP_MAXPOOL, "maxpool");
    b.node.p.pool = d;
    in(&b, value(&b, act, 4, xs));
    out(&b, value(&b, act, 4, ys));
    out(&b, value(&b, MM_U8, 4, ys));
    b.bytes = xb + yb + tb;
    snprintf(b.shape, sizeof b.shape, "%dx%dx%dx%d_%dx%d/%d", n, h, w, c, k, k, stride);
    run(be, &b);
    init(&b, MM_OP_MAXPOOL_BWD, "maxpool_bwd");
    b.node.p.pool = d;
    b.taps = pad * k + pad; /* in the image for every window of these shapes (2*pad < k) */
    in(&b, value(&b, act, 4, ys));
    in(&b, value(&b, MM_U8, 4, ys));
    out(&b, value(&b, act, 4, xs));
    b.bytes = xb + yb + tb;
    snprintf(b.shape, sizeof b.shape, "%dx%dx%dx%d_%dx%d/%d", n, h, w, c, k, k, stride);
    run(be, &b);
}

typedef struct adam_run {
    mm_backend *be;
    float *p, *m, *v, *g;
    int64_t n;
    mm_adam_params a;
} adam_run;

static void adam_once(void *arg)
{
    adam_run *r = arg;
    r->a.step++;
    r->be->adam(r->be, r->p, r->m, r->v, r->g, r->n, &r->a);
}
static void adam_wait(void *arg) { backend_wait(((adam_run *)arg)->be); }

static void adam_op(mm_backend *be, int64_t n)
{
    adam_run r = {be, NULL, NULL, NULL, NULL, n, {1e-4, 0.9, 0.999, 1e-8, 0.0, 0, 0}};
    float **bufs[4] = {&r.p, &r.m, &r.v, &r.g};
    bool ok = true;
    for (int i = 0; i < 4; i++) {
        *bufs[i] = be->alloc(be, (size_t)n * 4);
        if (*bufs[i]) be->zero(be, *bufs[i], (size_t)n * 4);
        ok = ok && *bufs[i];
    }
    if (ok) {
        double best = best_time(adam_once, adam_wait, &r);
        printf("op=adam shape=%lld precision=%s ms=%.4f tflops=0 gbps=%.1f\n", (long long)n,
               mm_precision_name(be->precision), best * 1e3, 28.0 * (double)n / best * 1e-9);
    }
    for (int i = 0; i < 4; i++)
        if (*bufs[i]) be->free(be, *bufs[i]);
}

int main(int argc, char **argv)
{
    mm_precision prec = MM_PRECISION_BF16;
    if (argc > 1 && mm_precision_parse(argv[1], &prec) != MM_OK) {
        fprintf(stderr, "bench_ops_cuda: %s\n", mm_last_error());
        return 1;
    }
    int H = argc > 2 ? atoi(argv[2]) : 1152, W = argc > 3 ? atoi(argv[3]) : 896;
    int N = argc > 4 ? atoi(argv[4]) : 2;
    g_filter = argc > 5 ? argv[5] : NULL;
    if (H < 64 || W < 64 || N < 1) {
        fprintf(stderr, "bench_ops_cuda: sizes must be at least 64x64, batch at least 1\n");
        return 1;
    }
    mm_backend *be = NULL;
    if (mm_backend_cuda_create_ex(&be, prec, 0) != MM_OK) {
        printf("bench_ops_cuda: %s\n", mm_last_error());
        return 0;
    }
    mm_dtype act = prec == MM_PRECISION_BF16 ? MM_BF16 : MM_F32;
    int h2 = (H + 1) / 2, w2 = (W + 1) / 2, h4 = (h2 + 1) / 2, w4 = (w2 + 1) / 2;
    /* ResNet50 at the whole-image size: stem, one layer of each stage, the top blocks. */
    conv_ops(be, act, N, H, W, 3, 64, 7, 2, 3);
    pool_ops(be, act, N, h2, w2, 64, 3, 2, 1);
    conv_ops(be, act, N, h4, w4, 64, 64, 3, 1, 1);
    conv_ops(be, act, N, h4, w4, 64, 256, 1, 1, 0);
    conv_ops(be, act, N, h4, w4, 256, 64, 1, 1, 0);
    conv_ops(be, act, N, h4, w4, 128, 128, 3, 2, 1);
    conv_ops(be, act, N, h4 / 2, w4 / 2, 256, 256, 3, 2, 1);
    conv_ops(be, act, N, h4 / 4, w4 / 4, 512, 512, 3, 2, 1);
    conv_ops(be, act, N, h4 / 8, w4 / 8, 2048, 512, 1, 2, 0);
    conv_ops(be, act, N, h4 / 16, w4 / 16, 512, 512, 3, 1, 1);
    /* VGG16's first layer: the biggest activations of either net. */
    conv_ops(be, act, N, H, W, 64, 64, 3, 1, 1);
    if (!g_filter || strstr("copy", g_filter))
        copy_op(be, (size_t)N * h4 * w4 * 256 * mm_dtype_size(act));
    memory_ops(be, act, N, h4, w4, 256);
    memory_ops(be, act, N, h2, w2, 64);
#ifdef MM_HAVE_CUDA
    cudnn_bn_ops(prec, act, N, h4, w4, 256);
    cudnn_bn_ops(prec, act, N, h2, w2, 64);
#endif
    /* VGG16's five 2x2/2 max pools (the backward of the first is its slowest memory-bound op). */
    pool_ops(be, act, N, H, W, 64, 2, 2, 0);
    pool_ops(be, act, N, H / 2, W / 2, 128, 2, 2, 0);
    pool_ops(be, act, N, H / 4, W / 4, 256, 2, 2, 0);
    pool_ops(be, act, N, H / 8, W / 8, 512, 2, 2, 0);
    pool_ops(be, act, N, H / 16, W / 16, 512, 2, 2, 0);
    if (!g_filter || strstr("adam", g_filter)) adam_op(be, 40 * 1000 * 1000);
    mm_backend_destroy(be);
    return 0;
}
