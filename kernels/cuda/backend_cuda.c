/* The CUDA backend: the backend table (runtime/backend.h) over one CUDA stream, a cuDNN and a
 * cuBLAS handle bound to it.
 *
 * Everything is queued on the one stream, in order; only copy_to_host and sync wait for it. The
 * step allocates nothing: activations, parameters, gradients and optimizer state live in the
 * session's buffers, scratch in the workspace the planner reserves from workspace_bytes(), and
 * cuBLAS gets its own fixed scratch at creation (so it never allocates either). That also makes
 * the step capturable as one CUDA graph (begin_capture / end_capture / replay).
 *
 * Ops: convolutions through cuDNN (conv_cudnn.c), dense through cuBLAS (dense_cublas.c), the rest
 * with this backend's kernels (cuda_kernels.h). run_node dispatches on the op; workspace_bytes
 * runs the same dispatch in measuring mode (cuda_backend.h). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../runtime/env.h"
#include "conv_cudnn.h"
#include "conv_disk.h"
#include "cuda_backend.h"
#include "cuda_check.h"
#include "cuda_kernels.h"

/* cuDNN may use at most this much scratch for one convolution (MM_CUDNN_WS_LIMIT_MB overrides
 * it, in MiB). The planner reserves the largest need among the nodes, so this bounds what
 * convolutions add to the peak. */
#define MM_CUDA_CONV_WS_LIMIT ((size_t)1024 << 20)

static size_t mm_cuda_conv_ws_limit(void)
{
    int64_t mib = (int64_t)(MM_CUDA_CONV_WS_LIMIT >> 20);
    mm_env_int("MM_CUDNN_WS_LIMIT_MB", 0, (int64_t)1 << 24, &mib);
    return (size_t)mib << 20;
}

/* cuBLAS's scratch (its documented recommendation for Hopper is 32 MiB). */
#define MM_CUDA_CUBLAS_WS ((size_t)32 << 20)

static mm_cuda_ctx *mm_ctx(mm_backend *be) { return (mm_cuda_ctx *)be->ctx; }

mm_dtype mm_cuda_conv_dtype(const mm_cuda_ctx *ctx)
{
    return ctx->precision == MM_PRECISION_BF16 ? MM_BF16 : MM_F32;
}

/* ---- workspace cursor and dtype staging ---- */
void *mm_cuda_ws_take(mm_cuda_ws *ws, size_t bytes)
{
    if (bytes == 0) return NULL;
    size_t b = mm_cuda_round256(bytes);
    if (ws->measure) {
        ws->used += b;
        return MM_CUDA_MEASURE_PTR;
    }
    if (ws->used + b > ws->cap) {
        char detail[160];
        snprintf(detail, sizeof detail, "the node needs %zu bytes of scratch, got %zu",
                 ws->used + b, ws->cap);
        mm_die_at(__FILE__, __LINE__, "CUDA workspace too small", detail,
                  "the planner must reserve workspace_bytes() for each node (a bug)");
    }
    void *p = ws->base + ws->used;
    ws->used += b;
    return p;
}

const void *mm_cuda_stage_input(mm_cuda_ctx *ctx, mm_cuda_ws *ws, const mm_tensor *t,
                                mm_dtype want)
{
    if (!t->data || t->dtype == want) return t->data;
    int64_t n = mm_tensor_numel(t);
    void *p = mm_cuda_ws_take(ws, (size_t)n * mm_dtype_size(want));
    if (!ws->measure) mm_cuda_cast(p, want, t->data, t->dtype, n, ctx->stream);
    return p;
}

void *mm_cuda_stage_output(mm_cuda_ws *ws, const mm_tensor *t, mm_dtype want)
{
    if (!t->data || t->dtype == want) return t->data;
    return mm_cuda_ws_take(ws, (size_t)mm_tensor_numel(t) * mm_dtype_size(want));
}

void mm_cuda_finish_output(mm_cuda_ctx *ctx, const mm_tensor *t, const void *staged,
                           mm_dtype want)
{
    if (t->data && t->dtype != want)
        mm_cuda_cast(t->data, t->dtype, staged, want, mm_tensor_numel(t), ctx->stream);
}

/* ---- the op dispatch ---- */
/* The fusion analysis of g, if it was planned on this backend. */
static mm_cuda_fusion *mm_cuda_fusion_of(mm_cuda_ctx *ctx, const mm_graph *g)
{
    for (int i = 0; i < MM_CUDA_FUSIONS; i++)
        if (ctx->fusions[i].g == g && g) return &ctx->fusions[i];
    return NULL;
}

static mm_fuse_code mm_cuda_fuse_code(mm_cuda_ctx *ctx, const mm_graph *g, const mm_node *node)
{
    mm_cuda_fusion *f = g ? mm_cuda_fusion_of(ctx, g) : NULL;
    return f ? mm_cuda_fusion_code(f, g, node) : MM_FUSE_NONE;
}

/* A batch norm's residual (p.bn.add, graph.h fuse_residual): in[5], stored as its output is. */
static const void *mm_cuda_residual(const mm_node *node, const mm_tensor *ins, const mm_tensor *y)
{
    if (!node->p.bn.add) return NULL;
    if (ins[5].dtype != y->dtype)
        mm_die_at(__FILE__, __LINE__, "batch norm residual", "its type differs from the output's",
                  "a bug in the graph: a residual join adds values of one type");
    return ins[5].data;
}

static void mm_cuda_op_bn(mm_cuda_ctx *ctx, const mm_graph *g, const mm_node *node,
                          const mm_tensor *ins, const mm_tensor *outs, mm_cuda_ws *ws)
{
    int64_t m = node->p.bn.m;
    int c = node->p.bn.c;
    void *bws = mm_cuda_ws_take(ws, mm_cuda_bn_workspace(m, c));
    if (ws->measure) return;
    int fused = mm_cuda_fuse_code(ctx, g, node) == MM_FUSE_APPLY_RELU;
    int relu = fused || node->p.bn.relu;
    const void *res = mm_cuda_residual(node, ins, &outs[0]);
    if (!node->p.bn.training) {
        mm_cuda_bn_forward_eval(outs[0].data, outs[0].dtype, ins[0].data, ins[0].dtype,
                                ins[1].data, ins[2].data, ins[3].data, ins[4].data, m, c,
                                node->p.bn.eps, res, relu, bws, ctx->stream);
    } else {
        mm_cuda_bn_forward_train(outs[0].data, outs[0].dtype,
                                 node->n_out > 1 ? outs[1].data : NULL,
                                 node->n_out > 2 ? outs[2].data : NULL, ins[3].data, ins[4].data,
                                 ins[0].data, ins[0].dtype, ins[1].data, ins[2].data, m, c,
                                 node->p.bn.eps, node->p.bn.momentum, res, relu, bws,
                                 ctx->stream);
    }
    if (fused) mm_cuda_fusion_mark_applied(mm_cuda_fusion_of(ctx, g), g, node);
}

static void mm_cuda_op_bn_apply(mm_cuda_ctx *ctx, const mm_node *node, const mm_tensor *ins,
                                const mm_tensor *outs)
{
    mm_cuda_bn_apply(outs[0].data, outs[0].dtype, ins[0].data, ins[0].dtype, ins[1].data,
                     ins[2].data, ins[3].data, ins[4].data, node->p.bn.m, node->p.bn.c,
                     mm_cuda_residual(node, ins, &outs[0]), node->p.bn.relu,
                     node->n_out > 1 ? (uint8_t *)outs[1].data : NULL, ctx->stream);
}

/* A ReLU whose producer already applied it, running in place: nothing left to do. */
static bool mm_cuda_relu_done(mm_cuda_ctx *ctx, const mm_graph *g, const mm_node *node,
                              const mm_tensor *x, const mm_tensor *y)
{
    if (mm_cuda_fuse_code(ctx, g, node) != MM_FUSE_RELU_DONE) return false;
    bool applied = mm_cuda_fusion_take_applied(mm_cuda_fusion_of(ctx, g), g, node);
    return applied && x->data == y->data && x->dtype == y->dtype;
}

static void mm_cuda_op_bn_bwd(mm_cuda_ctx *ctx, const mm_node *node, const mm_tensor *ins,
                              const mm_tensor *outs, mm_cuda_ws *ws)
{
    int64_t m = node->p.bn.m;
    int c = node->p.bn.c;
    void *bws = mm_cuda_ws_take(ws, mm_cuda_bn_workspace(m, c));
    if (ws->measure) return;
    const mm_tensor *dx = &outs[0];
    /* graph.h fuse_relu_bwd: in[5] is the following ReLU's output, or its sign as bits */
    bool relu = node->p.bn.relu_bwd, bits = relu && node->p.bn.relu_bits;
    mm_cuda_bn_backward(dx->data, dx->data ? dx->dtype : MM_F32,
                        node->n_out > 1 ? outs[1].data : NULL,
                        node->n_out > 2 ? outs[2].data : NULL, ins[0].data, ins[0].dtype,
                        relu && !bits ? ins[5].data : NULL, relu ? ins[5].dtype : MM_F32,
                        bits ? (const uint8_t *)ins[5].data : NULL, ins[1].data, ins[1].dtype,
                        ins[2].data, ins[3].data, ins[4].data, m, c, bws, ctx->stream);
}

static void mm_cuda_op(mm_cuda_ctx *ctx, const mm_graph *g, const mm_node *node,
                       const mm_tensor *ins, const mm_tensor *outs, mm_cuda_ws *ws)
{
    cudaStream_t st = ctx->stream;
    switch (node->op) {
    case MM_OP_CONV2D: {
        /* known when measuring too: the ReLU may take the convolution into cuDNN's fused call,
         * whose workspace differs */
        int relu = mm_cuda_fuse_code(ctx, g, node) == MM_FUSE_APPLY_RELU;
        mm_cuda_op_conv2d(ctx, node, ins, outs, ws, relu);
        if (relu && !ws->measure) mm_cuda_fusion_mark_applied(mm_cuda_fusion_of(ctx, g), g, node);
        return;
    }
    case MM_OP_CONV2D_BWD_DATA: mm_cuda_op_conv2d_bwd_data(ctx, node, ins, outs, ws); return;
    case MM_OP_CONV2D_BWD_FILTER: mm_cuda_op_conv2d_bwd_filter(ctx, node, ins, outs, ws); return;
    case MM_OP_CONV2D_BWD_BIAS: {
        const mm_conv_dims *d = &node->p.conv;
        int64_t m = (int64_t)d->n * d->oh * d->ow;
        void *cws = mm_cuda_ws_take(ws, mm_cuda_colsum_workspace(m, d->k));
        if (ws->measure) return;
        mm_cuda_colsum_accumulate(outs[0].data, ins[0].data, ins[0].dtype, m, d->k, cws, st);
        return;
    }
    case MM_OP_RELU_BWD: {
        /* with a bias gradient folded in (graph.h mm_graph_fuse_bias_grad) it takes scratch */
        int c = node->p.elementwise.colsum_c;
        if (c <= 0 || node->n_out < 2 || !outs[1].data) break;
        int64_t m = node->p.elementwise.n / c;
        void *cws = mm_cuda_ws_take(ws, mm_cuda_colsum_workspace(m, c));
        if (ws->measure) return;
        bool bits = node->p.elementwise.bits;
        mm_cuda_relu_backward_colsum(outs[0].data, outs[0].dtype, ins[0].data, ins[0].dtype,
                                     bits ? NULL : ins[1].data, ins[1].dtype,
                                     bits ? (const uint8_t *)ins[1].data : NULL,
                                     (float *)outs[1].data, m, c, cws, st);
        return;
    }
    case MM_OP_BATCHNORM: mm_cuda_op_bn(ctx, g, node, ins, outs, ws); return;
    case MM_OP_BATCHNORM_BWD: mm_cuda_op_bn_bwd(ctx, node, ins, outs, ws); return;
    case MM_OP_DENSE: mm_cuda_op_dense(ctx, node, ins, outs, ws); return;
    case MM_OP_DENSE_BWD_DATA: mm_cuda_op_dense_bwd_data(ctx, node, ins, outs, ws); return;
    case MM_OP_DENSE_BWD_WEIGHT: mm_cuda_op_dense_bwd_weight(ctx, node, ins, outs, ws); return;
    default: break;
    }
    /* The ops below take no scratch. */
    if (ws->measure) return;
    const mm_tensor *x = &ins[0], *y = &outs[0];
    switch (node->op) {
    case MM_OP_BN_APPLY: mm_cuda_op_bn_apply(ctx, node, ins, outs); return;
    case MM_OP_RELU:
        if (mm_cuda_relu_done(ctx, g, node, x, y)) return;
        mm_cuda_relu_forward(y->data, y->dtype, x->data, x->dtype, mm_tensor_numel(y), st);
        return;
    case MM_OP_RELU_BWD:
        if (node->p.elementwise.bits)
            mm_cuda_relu_backward_bits(y->data, y->dtype, x->data, x->dtype,
                                       (const uint8_t *)ins[1].data, mm_tensor_numel(y), st);
        else
            mm_cuda_relu_backward(y->data, y->dtype, x->data, x->dtype, ins[1].data,
                                  ins[1].dtype, mm_tensor_numel(y), st);
        return;
    case MM_OP_RELU_MASK:
        mm_cuda_relu_mask((uint8_t *)y->data, x->data, x->dtype, node->p.elementwise.n, st);
        return;
    case MM_OP_ADD:
        mm_cuda_add(y->data, y->dtype, x->data, x->dtype, ins[1].data, ins[1].dtype,
                    mm_tensor_numel(y), st);
        return;
    case MM_OP_MAXPOOL:
        mm_cuda_maxpool_forward(y->data, y->dtype,
                                node->n_out > 1 ? (uint8_t *)outs[1].data : NULL, x->data,
                                x->dtype, &node->p.pool, st);
        return;
    case MM_OP_MAXPOOL_BWD:
        mm_cuda_maxpool_backward(y->data, y->dtype, x->data, x->dtype,
                                 (const uint8_t *)ins[1].data,
                                 node->p.pool.relu_mask ? ins[2].data : NULL,
                                 node->p.pool.relu_mask ? ins[2].dtype : x->dtype, &node->p.pool,
                                 st);
        return;
    case MM_OP_AVGPOOL:
        mm_cuda_avgpool_forward(y->data, y->dtype, x->data, x->dtype, &node->p.pool, st);
        return;
    case MM_OP_AVGPOOL_BWD:
        mm_cuda_avgpool_backward(y->data, y->dtype, x->data, x->dtype, &node->p.pool, st);
        return;
    case MM_OP_ADAPTIVE_AVGPOOL:
        mm_cuda_adaptive_avgpool_forward(y->data, y->dtype, x->data, x->dtype, &node->p.pool, st);
        return;
    case MM_OP_ADAPTIVE_AVGPOOL_BWD:
        mm_cuda_adaptive_avgpool_backward(y->data, y->dtype, x->data, x->dtype, &node->p.pool,
                                          st);
        return;
    case MM_OP_GLOBAL_AVGPOOL:
        mm_cuda_global_avgpool_forward(y->data, y->dtype, x->data, x->dtype, node->p.gap.n,
                                       node->p.gap.hw, node->p.gap.c, st);
        return;
    case MM_OP_GLOBAL_AVGPOOL_BWD:
        mm_cuda_global_avgpool_backward(y->data, y->dtype, x->data, x->dtype, node->p.gap.n,
                                        node->p.gap.hw, node->p.gap.c, st);
        return;
    case MM_OP_DROPOUT:
        MM_ASSERT(outs[1].data && outs[1].dtype == MM_U8);
        mm_cuda_dropout_forward(y->data, y->dtype, outs[1].data, x->data, x->dtype,
                                mm_tensor_numel(y), node->p.dropout.p, node->p.dropout.seed, st);
        return;
    case MM_OP_DROPOUT_BWD:
        mm_cuda_dropout_backward(y->data, y->dtype, x->data, x->dtype, ins[1].data,
                                 mm_tensor_numel(y), node->p.dropout.p, st);
        return;
    case MM_OP_SOFTMAX: {
        int n = (int)x->shape[0], c = (int)(mm_tensor_numel(x) / (n ? n : 1));
        MM_ASSERT(y->dtype == MM_F32);
        mm_cuda_softmax(y->data, x->data, x->dtype, n, c, st);
        return;
    }
    case MM_OP_SOFTMAX_XENT: {
        int n = (int)x->shape[0], c = (int)(mm_tensor_numel(x) / (n ? n : 1));
        const float *w = node->n_in > 2 ? ins[2].data : NULL;
        MM_ASSERT(y->dtype == MM_F32 && outs[1].data && outs[1].dtype == MM_F32);
        MM_ASSERT(ins[1].dtype == MM_I32);
        mm_cuda_softmax_xent_forward(y->data, outs[1].data, x->data, x->dtype, ins[1].data, w, n,
                                     c, st);
        return;
    }
    case MM_OP_SOFTMAX_XENT_BWD: {
        int n = (int)x->shape[0], c = (int)(mm_tensor_numel(x) / (n ? n : 1));
        const float *w = node->n_in > 2 ? ins[2].data : NULL;
        MM_ASSERT(x->dtype == MM_F32 && ins[1].dtype == MM_I32);
        mm_cuda_softmax_xent_backward(y->data, y->dtype, x->data, ins[1].data, w,
                                      node->p.xent.dloss, n, c, st);
        return;
    }
    case MM_OP_FLIP: {
        const mm_tensor *t = x;
        MM_ASSERT(t->ndim == 4 && y->dtype == t->dtype && y->data != t->data);
        mm_cuda_flip(y->data, t->data, t->dtype, (int)t->shape[0], (int)t->shape[1],
                     (int)t->shape[2], (int)t->shape[3], node->p.flip.axis, st);
        return;
    }
    case MM_OP_RESHAPE:
        /* A view shares its input's memory; copy only if the planner placed it elsewhere. */
        if (y->data != x->data)
            MM_CUDA_CHECK(cudaMemcpyAsync(y->data, x->data, mm_tensor_bytes(x),
                                          cudaMemcpyDeviceToDevice, st));
        return;
    default: break;
    }
    char detail[64];
    snprintf(detail, sizeof detail, "op %d", (int)node->op);
    mm_die_at(__FILE__, __LINE__, "the CUDA backend has no kernel for this op", detail,
              "a new op needs its CUDA kernel too (DESIGN section 7: the op checklist)");
}

/* ---- the backend table ---- */
static void *mm_cuda_alloc(mm_backend *be, size_t bytes)
{
    mm_cuda_ctx *ctx = mm_ctx(be);
    void *p = NULL;
    if (cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess) {
        cudaGetLastError(); /* the caller reports it (tier 1) */
        return NULL;
    }
    if (ctx->n_allocs == ctx->cap_allocs) {
        ctx->cap_allocs = ctx->cap_allocs ? 2 * ctx->cap_allocs : 16;
        ctx->allocs = mm_xrealloc(ctx->allocs, (size_t)ctx->cap_allocs * sizeof *ctx->allocs);
    }
    ctx->allocs[ctx->n_allocs].ptr = p;
    ctx->allocs[ctx->n_allocs].bytes = bytes;
    ctx->n_allocs++;
    ctx->held_bytes += bytes;
    if (ctx->held_bytes > ctx->peak_bytes) ctx->peak_bytes = ctx->held_bytes;
    return p;
}

static void mm_cuda_free(mm_backend *be, void *ptr)
{
    mm_cuda_ctx *ctx = mm_ctx(be);
    if (!ptr) return;
    MM_CUDA_CHECK(cudaSetDevice(ctx->device)); /* a replica's buffers freed from another thread */
    for (int i = 0; i < ctx->n_allocs; i++)
        if (ctx->allocs[i].ptr == ptr) {
            ctx->held_bytes -= ctx->allocs[i].bytes;
            ctx->allocs[i] = ctx->allocs[--ctx->n_allocs];
            break;
        }
    MM_CUDA_CHECK(cudaFree(ptr));
}

/* The peak of the memory held through alloc plus cuBLAS's fixed workspace: what the step needs,
 * comparable with PyTorch's torch.cuda.max_memory_allocated (the CUDA context is in neither). */
static size_t mm_cuda_memory_in_use(mm_backend *be)
{
    mm_cuda_ctx *ctx = mm_ctx(be);
    return ctx->peak_bytes + ctx->cublas_ws_bytes;
}

static void mm_cuda_copy_to_device(mm_backend *be, void *dst, const void *src, size_t bytes)
{
    mm_cuda_ctx *ctx = mm_ctx(be);
    if (!bytes) return;
    MM_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, ctx->stream));
    /* From pageable memory the copy has taken its own snapshot of src when it returns; from
     * pinned memory it has not, so wait: the caller may reuse src at once. */
    struct cudaPointerAttributes a;
    if (cudaPointerGetAttributes(&a, src) == cudaSuccess && a.type == cudaMemoryTypeHost)
        MM_CUDA_CHECK(cudaStreamSynchronize(ctx->stream));
    cudaGetLastError();
}

/* Page-locked host memory: copies from it run at the bus's full speed. */
static void mm_cuda_bind(mm_backend *be) { MM_CUDA_CHECK(cudaSetDevice(mm_ctx(be)->device)); }

static void *mm_cuda_host_alloc(mm_backend *be, size_t bytes)
{
    (void)be;
    void *p = NULL;
    if (cudaMallocHost(&p, bytes ? bytes : 1) != cudaSuccess) {
        cudaGetLastError(); /* the caller takes the heap instead */
        return NULL;
    }
    return p;
}

/* Frees what mm_cuda_host_alloc made, or a heap block the caller fell back to. */
static void mm_cuda_host_free(mm_backend *be, void *p)
{
    (void)be;
    struct cudaPointerAttributes a;
    if (cudaPointerGetAttributes(&a, p) == cudaSuccess && a.type == cudaMemoryTypeHost) {
        MM_CUDA_CHECK(cudaFreeHost(p));
    } else {
        cudaGetLastError();
        free(p);
    }
}

static void mm_cuda_copy_to_host(mm_backend *be, void *dst, const void *src, size_t bytes)
{
    mm_cuda_ctx *ctx = mm_ctx(be);
    if (!bytes) return;
    MM_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, ctx->stream));
    MM_CUDA_CHECK(cudaStreamSynchronize(ctx->stream));
}

static void mm_cuda_copy_device(mm_backend *be, void *dst, const void *src, size_t bytes)
{
    if (!bytes || dst == src) return;
    MM_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, mm_ctx(be)->stream));
}

static void mm_cuda_zero(mm_backend *be, void *dst, size_t bytes)
{
    if (!bytes) return;
    MM_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, mm_ctx(be)->stream));
}

/* Views of the node's values with no data (MM_CUDA_MEASURE_PTR marks the present ones). */
static void mm_cuda_measure_views(mm_tensor *views, const mm_graph *g, const int *ids, int n)
{
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0) {
            memset(&views[i], 0, sizeof views[i]);
            continue;
        }
        const mm_value *v = &g->values[ids[i]];
        views[i] = mm_tensor_view(MM_CUDA_MEASURE_PTR, v->dtype, v->ndim, v->shape);
        views[i].device = MM_DEVICE_CUDA;
    }
}

static size_t mm_cuda_workspace_bytes(mm_backend *be, const mm_graph *g, const mm_node *node)
{
    mm_tensor ins[MM_NODE_MAX_IN], outs[MM_NODE_MAX_OUT];
    mm_cuda_measure_views(ins, g, node->in, node->n_in);
    mm_cuda_measure_views(outs, g, node->out, node->n_out);
    mm_cuda_ctx *ctx = mm_ctx(be);
    /* The planner asks for every node in order: the first one starts a (re)analysis. */
    if (g && g->n_nodes > 0 && node == &g->nodes[0]) {
        mm_cuda_fusion *f = mm_cuda_fusion_of(ctx, g);
        if (!f) {
            f = &ctx->fusions[ctx->next_fusion];
            ctx->next_fusion = (ctx->next_fusion + 1) % MM_CUDA_FUSIONS;
        }
        mm_cuda_fusion_analyse(f, g);
    }
    mm_cuda_ws ws = {true, NULL, 0, 0};
    mm_cuda_op(ctx, g, node, ins, outs, &ws);
    /* 256 bytes of slack so that scratch handed over at any alignment can be aligned. */
    return ws.used ? ws.used + 256 : 0;
}

/* The planner's limit_workspace: a convolution re-chooses its algorithm under the cap where that
 * costs it little (conv_caps.c); other nodes cannot shrink. */
static size_t mm_cuda_limit_workspace(mm_backend *be, const mm_graph *g, const mm_node *node,
                                      size_t bytes)
{
    mm_cuda_limit_conv(mm_ctx(be), g, node, bytes);
    return mm_cuda_workspace_bytes(be, g, node);
}

static void mm_cuda_run_node(mm_backend *be, const mm_graph *g, const mm_node *node,
                             const mm_tensor *ins, const mm_tensor *outs, void *ws_ptr,
                             size_t ws_bytes)
{
    mm_cuda_ws ws = {false, NULL, 0, 0};
    if (ws_ptr && ws_bytes > 256) {
        uintptr_t p = (uintptr_t)ws_ptr, a = (p + 255) & ~(uintptr_t)255;
        ws.base = (char *)a;
        ws.cap = ws_bytes - (size_t)(a - p);
    }
    mm_cuda_ctx *ctx = mm_ctx(be);
    /* the plan is made: what its searches found is kept (nothing happens when nothing new) */
    if (!ctx->capturing) mm_conv_disk_save(ctx->disk);
    mm_cuda_op(ctx, g, node, ins, outs, &ws);
}

static void mm_cuda_adam_step(mm_backend *be, float *p, float *m, float *v, const float *g,
                              int64_t n, const mm_adam_params *a)
{
    MM_ASSERT(a->step >= 1);
    mm_adam_coeffs c = mm_adam_coeffs_make(a->lr, a->beta1, a->beta2, a->eps, a->weight_decay,
                                           a->decoupled, a->step);
    mm_cuda_adam(p, m, v, g, n, &c, mm_ctx(be)->stream);
}

static void mm_cuda_sgd_step(mm_backend *be, float *p, float *buf, const float *g, int64_t n,
                             const mm_sgd_params *s)
{
    mm_sgd_coeffs c = mm_sgd_coeffs_make(s->lr, s->momentum, s->weight_decay, s->nesterov);
    mm_cuda_sgd(p, buf, g, n, &c, mm_ctx(be)->stream);
}

static void mm_cuda_accumulate_step(mm_backend *be, float *acc, float *g, int64_t n,
                                    int micro, int steps)
{
    mm_cuda_grad_accumulate(acc, g, n, micro, steps, mm_ctx(be)->stream);
}

static void mm_cuda_sync(mm_backend *be)
{
    MM_CUDA_CHECK(cudaStreamSynchronize(mm_ctx(be)->stream));
    MM_CUDA_CHECK(cudaGetLastError());
}

/* ---- CUDA graph capture ---- */
static void mm_cuda_drop_graph(mm_cuda_ctx *ctx)
{
    if (ctx->graph_exec) MM_CUDA_CHECK(cudaGraphExecDestroy(ctx->graph_exec));
    if (ctx->graph) MM_CUDA_CHECK(cudaGraphDestroy(ctx->graph));
    ctx->graph_exec = NULL;
    ctx->graph = NULL;
}

static mm_status mm_cuda_begin_capture(mm_backend *be)
{
    mm_cuda_ctx *ctx = mm_ctx(be);
    MM_ASSERT(!ctx->capturing);
    mm_cuda_drop_graph(ctx);
    cudaError_t e = cudaStreamBeginCapture(ctx->stream, cudaStreamCaptureModeThreadLocal);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return mm_fail(MM_ERR_DEVICE, "CUDA graph capture could not start: %s",
                       cudaGetErrorString(e));
    }
    ctx->capturing = true;
    return MM_OK;
}

static mm_status mm_cuda_end_capture(mm_backend *be)
{
    mm_cuda_ctx *ctx = mm_ctx(be);
    MM_ASSERT(ctx->capturing);
    ctx->capturing = false;
    cudaError_t e = cudaStreamEndCapture(ctx->stream, &ctx->graph);
    if (e == cudaSuccess) e = cudaGraphInstantiate(&ctx->graph_exec, ctx->graph, 0);
    if (e != cudaSuccess) {
        cudaGetLastError();
        if (ctx->graph) cudaGraphDestroy(ctx->graph);
        ctx->graph = NULL;
        ctx->graph_exec = NULL;
        return mm_fail(MM_ERR_DEVICE,
                       "CUDA graph capture failed (%s): something in the step cannot be "
                       "captured; run without graph capture",
                       cudaGetErrorString(e));
    }
    return MM_OK;
}

static void mm_cuda_replay(mm_backend *be)
{
    mm_cuda_ctx *ctx = mm_ctx(be);
    MM_ASSERT(ctx->graph_exec && !ctx->capturing);
    MM_CUDA_CHECK(cudaGraphLaunch(ctx->graph_exec, ctx->stream));
}

/* cuDNN takes tensors of at most 2^31 - 1 elements (its descriptors refuse bigger ones:
 * tests/test_cudnn_desc.c). Convolutions over bigger batches run on chunks of samples, but one
 * sample (an image's activation) over the bound cannot run: such a graph is refused here with
 * the value's name and shape, before any search or allocation. */
static mm_status mm_cuda_check_graph(mm_backend *be, const mm_graph *g)
{
    (void)be;
    int64_t bound = mm_conv_max_elems();
    for (int i = 0; i < g->n_values; i++) {
        const mm_value *v = &g->values[i];
        if (v->ndim != 4) continue; /* activations; parameters are far smaller */
        int64_t n = mm_shape_numel(3, v->shape + 1);
        if (n <= bound) continue;
        char shape[96], what[MM_NAME_MAX + 32];
        mm_shape_str(shape, sizeof shape, v->ndim, v->shape);
        if (v->name[0]) snprintf(what, sizeof what, "%s", v->name);
        else if (v->producer >= 0)
            snprintf(what, sizeof what, "the %s output", mm_op_name(g->nodes[v->producer].op));
        else snprintf(what, sizeof what, "a tensor");
        return mm_fail(MM_ERR_SHAPE,
                       "--device cuda: %s %s has %lld elements per image, more than cuDNN's "
                       "limit of %lld per tensor; use a smaller --input",
                       what, shape, (long long)n, (long long)bound);
    }
    return MM_OK;
}

static void mm_cuda_describe(mm_backend *be, char *buf, size_t n)
{
    mm_cuda_ctx *ctx = mm_ctx(be);
    mm_conv_counts c = mm_conv_cache_counts(ctx->convs);
    char kept[64] = "off";
    if (ctx->disk) {
        mm_conv_disk_counts k = mm_conv_disk_counts_of(ctx->disk);
        snprintf(kept, sizeof kept, "hits:%d,searched:%d", k.hits, k.searched);
    }
    snprintf(buf, n,
             "convs=legacy:%d,nchw:%d,graph:%d,gemm:%d,wino:%d wino4=%d dgrad_fwd=%d "
             "bias_relu=%d ws_kept=%d ws_chunked=%d algo_cache=%s",
             c.legacy, c.nchw, c.graph, c.gemm, c.wino, c.wino4, c.turned, c.bias_relu,
             mm_cuda_caps_kept(ctx), mm_cuda_caps_chunked(ctx), kept);
}

static double mm_cuda_chosen_ms(mm_backend *be, const mm_graph *g, const mm_node *node)
{
    (void)g;
    return mm_op_is_conv(node->op) ? mm_cuda_conv_node_ms(mm_ctx(be), node) : -1;
}

/* ---- create and destroy ---- */
static void mm_cuda_destroy(mm_backend *be)
{
    mm_cuda_ctx *ctx = mm_ctx(be);
    if (ctx) {
        cudaSetDevice(ctx->device); /* its handles and stream belong to its GPU */
        if (ctx->stream) cudaStreamSynchronize(ctx->stream);
        mm_cuda_drop_graph(ctx);
        mm_conv_disk_close(ctx->disk);
        mm_conv_cache_free(ctx->convs);
        for (int i = 0; i < MM_CUDA_FUSIONS; i++) mm_cuda_fusion_free(&ctx->fusions[i]);
        if (ctx->cublas) cublasDestroy(ctx->cublas);
        if (ctx->cudnn) cudnnDestroy(ctx->cudnn);
        if (ctx->cublas_ws) cudaFree(ctx->cublas_ws);
        if (ctx->stream) cudaStreamDestroy(ctx->stream);
        free(ctx->allocs);
        free(ctx->caps);
        free(ctx);
    }
    free(be);
}

mm_status mm_backend_cuda_create(mm_backend **out)
{
    return mm_backend_cuda_create_ex(out, MM_PRECISION_FP32, 0);
}

mm_status mm_backend_cuda_create_ex(mm_backend **out, mm_precision precision, int device)
{
    char why[256];
    *out = NULL;
    if (!mm_cuda_available(why, sizeof why))
        return mm_fail(MM_ERR_DEVICE, "--device cuda: %s; use --device cpu", why);
    int count = 0;
    MM_CUDA_CHECK(cudaGetDeviceCount(&count));
    if (device < 0 || device >= count)
        return mm_fail(MM_ERR_DEVICE, "--device cuda:%d: no such GPU (%d visible, numbered from "
                       "0; CUDA_VISIBLE_DEVICES chooses which)", device, count);

    mm_backend *be = mm_xcalloc(1, sizeof *be);
    mm_cuda_ctx *ctx = mm_xcalloc(1, sizeof *ctx);
    be->ctx = ctx;
    ctx->be = be;
    be->destroy = mm_cuda_destroy;
    ctx->device = device;
    ctx->precision = precision;
    ctx->conv_ws_limit = mm_cuda_conv_ws_limit();
    ctx->convs = mm_conv_cache_new();

    cudaError_t e = cudaSetDevice(device);
    if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&ctx->stream, cudaStreamNonBlocking);
    if (e == cudaSuccess) e = cudaMalloc(&ctx->cublas_ws, MM_CUDA_CUBLAS_WS);
    if (e != cudaSuccess) {
        cudaGetLastError();
        mm_cuda_destroy(be);
        return mm_fail(MM_ERR_DEVICE, "--device cuda: GPU %d cannot be used: %s", device,
                       cudaGetErrorString(e));
    }
    ctx->cublas_ws_bytes = MM_CUDA_CUBLAS_WS;
    cudnnStatus_t ds = cudnnCreate(&ctx->cudnn);
    if (ds != CUDNN_STATUS_SUCCESS) {
        ctx->cudnn = NULL;
        mm_cuda_destroy(be);
        return mm_fail(MM_ERR_DEVICE, "--device cuda: cuDNN cannot start: %s",
                       cudnnGetErrorString(ds));
    }
    cublasStatus_t bs = cublasCreate(&ctx->cublas);
    if (bs != CUBLAS_STATUS_SUCCESS) {
        ctx->cublas = NULL;
        mm_cuda_destroy(be);
        return mm_fail(MM_ERR_DEVICE, "--device cuda: cuBLAS cannot start: %s",
                       cublasGetStatusString(bs));
    }
    MM_CUDNN_CHECK(cudnnSetStream(ctx->cudnn, ctx->stream));
    MM_CUBLAS_CHECK(cublasSetStream(ctx->cublas, ctx->stream));
    MM_CUBLAS_CHECK(cublasSetWorkspace(ctx->cublas, ctx->cublas_ws, ctx->cublas_ws_bytes));
    MM_CUBLAS_CHECK(cublasSetMathMode(ctx->cublas, precision == MM_PRECISION_TF32
                                                       ? CUBLAS_TF32_TENSOR_OP_MATH
                                                       : CUBLAS_DEFAULT_MATH));

    be->name = "cuda";
    be->device = MM_DEVICE_CUDA;
    be->precision = precision;
    be->alloc = mm_cuda_alloc;
    be->free = mm_cuda_free;
    be->copy_to_device = mm_cuda_copy_to_device;
    be->copy_to_host = mm_cuda_copy_to_host;
    be->copy_device = mm_cuda_copy_device;
    be->zero = mm_cuda_zero;
    be->workspace_bytes = mm_cuda_workspace_bytes;
    be->limit_workspace = mm_cuda_limit_workspace;
    be->run_node = mm_cuda_run_node;
    be->adam = mm_cuda_adam_step;
    be->accumulate = mm_cuda_accumulate_step;
    be->sgd = mm_cuda_sgd_step;
    be->sync = mm_cuda_sync;
    be->begin_capture = mm_cuda_begin_capture;
    be->end_capture = mm_cuda_end_capture;
    be->replay = mm_cuda_replay;
    be->memory_in_use = mm_cuda_memory_in_use;
    be->describe = mm_cuda_describe;
    be->chosen_ms = mm_cuda_chosen_ms;
    be->host_alloc = mm_cuda_host_alloc;
    be->host_free = mm_cuda_host_free;
    be->check_graph = mm_cuda_check_graph;
    be->bind = mm_cuda_bind;
    *out = be;
    return MM_OK;
}
