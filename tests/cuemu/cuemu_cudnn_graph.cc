/* cuDNN's graph (backend) API for the emulator (cuemu.h), the part conv_graph.c uses: tensor,
 * convolution and convolution-operation descriptors, an operation graph of one convolution,
 * engine heuristics, engine configurations and engines with their notes, execution plans with
 * their workspace, variant packs and execution. Descriptors keep attributes as they are set;
 * finalizing one checks what it needs and copies it (a finalized operation no longer depends on
 * the descriptors it was made from). Execution computes the convolution (cuemu_conv.h) with the
 * pointers the variant pack gives for the tensors' unique ids.
 *
 * The engines (global index, notes, workspace, cost against the legacy menu's best algorithm):
 *   heuristics mode A:         10 tensor cores, a workspace, 0.8; nondeterministic for the
 *                                 gradients (conv_submit)
 *                              11 no notes, none, 1.05
 *                              14 its plan does not finalize (not supported for this graph)
 *   heuristics mode FALLBACK:  12 down-converts its inputs, 0.5
 *                              13 runtime-compiled, 0.6
 *                              11 as above
 * so the backend must drop 12 always, 13 unless asked for, 10 in fp32 (and where its workspace
 * does not fit) and 14, and time 11 once (both lists give it, with the same knob choice: each
 * configuration has one, a tile size of the engine's); then in tf32 and bf16 engine 10 beats the
 * legacy algorithms, in fp32 they beat engine 11 unless the workspace is capped. Tensor-core
 * engines read fp32 operands as TF32. */
#include <cudnn.h>
#include <stdint.h>
#include <string.h>

#include <map>
#include <vector>

#include "tests/cuemu/cuemu_conv.h"
#include "tests/cuemu/cuemu_internal.h"

namespace {

/* One convolution as an operation graph holds it. */
struct graph_op {
    int dir = -1; /* 0 forward, 1 backward data, 2 backward filter */
    cuemu::conv_problem p;
    int64_t uid[3] = {0, 0, 0}; /* x, w, y */
    int64_t align[3] = {0, 0, 0}; /* the bytes their addresses are declared multiples of */
    float alpha = 1, beta = 0;
};

struct engine_info {
    int64_t index;
    bool tensor_core, down_convert, rtc, supported;
    double ws_per_operand, cost;
    bool nondet_backward; /* noted nondeterministic for the two gradients (conv_submit) */
    int64_t tile;         /* its configurations' one knob choice, CUDNN_KNOB_TYPE_TILE_SIZE */
};

const engine_info kEngines[] = {
    {10, true, false, false, true, 0.25, 0.8, true, 4},
    {11, false, false, false, true, 0, 1.05, false, 2},
    {14, false, false, false, false, 0, 1.0, false, 1},
    {12, false, true, false, true, 0, 0.5, false, 3},
    {13, true, false, true, true, 0, 0.6, false, 5},
};
const int kModeA[] = {0, 1, 2}, kFallback[] = {3, 4, 1};

struct bdesc {
    explicit bdesc(cudnnBackendDescriptorType_t t) : type(t) {}
    cudnnBackendDescriptorType_t type;
    bool finalized = false;
    std::map<int, std::pair<int, std::vector<char>>> attrs; /* name -> (type, elements) */
    /* what finalizing (or being filled by a getter) gave it: */
    int64_t uid = 0, align = 0;
    cuemu::conv_view view = {};            /* tensor */
    int64_t pad[2] = {}, stride[2] = {}, dil[2] = {}; /* convolution */
    graph_op op;                           /* operation and everything made from one */
    cudnnHandle_t handle = nullptr;        /* operation graph, plan */
    std::vector<int> results;              /* heuristics: engines (kEngines indices) */
    int engine = -1;                       /* engine configuration, engine, plan */
    size_t ws = 0;                         /* plan */
    std::vector<int64_t> pack_uids;        /* variant pack */
    std::vector<void *> pack_ptrs;
    void *pack_ws = nullptr;
};

bdesc *D(cudnnBackendDescriptor_t d) { return static_cast<bdesc *>(d); }

size_t elem_bytes(cudnnBackendAttributeType_t t)
{
    switch (t) {
    case CUDNN_TYPE_INT64:
    case CUDNN_TYPE_DOUBLE: return 8;
    case CUDNN_TYPE_HANDLE:
    case CUDNN_TYPE_VOID_PTR:
    case CUDNN_TYPE_BACKEND_DESCRIPTOR: return sizeof(void *);
    case CUDNN_TYPE_FLOAT: return 4;
    default: return sizeof(int); /* the enumerations */
    }
}

/* The elements of attribute `name` when it was set with type `t` and exactly n of them. */
template <typename T>
const T *get(const bdesc *d, int name, cudnnBackendAttributeType_t t, size_t n)
{
    auto it = d->attrs.find(name);
    if (it == d->attrs.end() || it->second.first != t ||
        it->second.second.size() != n * sizeof(T))
        return nullptr;
    return reinterpret_cast<const T *>(it->second.second.data());
}

/* A finalized descriptor of type `want` set as attribute `name`. */
const bdesc *get_desc(const bdesc *d, int name, cudnnBackendDescriptorType_t want)
{
    const cudnnBackendDescriptor_t *v =
        get<cudnnBackendDescriptor_t>(d, name, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1);
    const bdesc *r = v ? D(*v) : nullptr;
    return r && r->finalized && r->type == want ? r : nullptr;
}

cudnnStatus_t finalize_tensor(bdesc *d)
{
    const cudnnDataType_t *t = get<cudnnDataType_t>(d, CUDNN_ATTR_TENSOR_DATA_TYPE,
                                                    CUDNN_TYPE_DATA_TYPE, 1);
    const int64_t *dims = get<int64_t>(d, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4);
    const int64_t *strides = get<int64_t>(d, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4);
    const int64_t *uid = get<int64_t>(d, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1);
    const int64_t *align = get<int64_t>(d, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1);
    if (!t || !dims || !strides || !uid || !align || *align < 1 || (*align & (*align - 1)))
        return CUDNN_STATUS_BAD_PARAM;
    d->align = *align;
    if (*t != CUDNN_DATA_FLOAT && *t != CUDNN_DATA_BFLOAT16) return CUDNN_STATUS_NOT_SUPPORTED;
    for (int i = 0; i < 4; i++) {
        if (dims[i] < 1 || strides[i] < 1) return CUDNN_STATUS_BAD_PARAM;
        d->view.d[i] = dims[i];
        d->view.s[i] = strides[i];
    }
    d->view.t = *t == CUDNN_DATA_BFLOAT16 ? CUDA_R_16BF : CUDA_R_32F;
    d->uid = *uid;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t finalize_convolution(bdesc *d)
{
    const int64_t *n = get<int64_t>(d, CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1);
    const int64_t *dil = get<int64_t>(d, CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 2);
    const int64_t *str = get<int64_t>(d, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, 2);
    const int64_t *pre = get<int64_t>(d, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, 2);
    const int64_t *post = get<int64_t>(d, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64,
                                       2);
    const cudnnConvolutionMode_t *mode = get<cudnnConvolutionMode_t>(
        d, CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1);
    if (!n || *n != 2 || !dil || !str || !pre || !post || !mode) return CUDNN_STATUS_BAD_PARAM;
    if (*mode != CUDNN_CROSS_CORRELATION || pre[0] != post[0] || pre[1] != post[1])
        return CUDNN_STATUS_NOT_SUPPORTED;
    for (int i = 0; i < 2; i++) d->pad[i] = pre[i], d->stride[i] = str[i], d->dil[i] = dil[i];
    return CUDNN_STATUS_SUCCESS;
}

/* The attributes of each direction's operation, by role: cuDNN's contract, written here
 * independently of conv_graph.c's table on purpose (shared, a wrong attribute there would agree
 * with itself). */
struct op_attrs {
    cudnnBackendDescriptorType_t type;
    int x, w, y, conv, alpha, beta;
};
const op_attrs kOps[3] = {
    {CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR,
     CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W,
     CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC,
     CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA},
    {CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR,
     CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DX, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_W,
     CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DY,
     CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_CONV_DESC,
     CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_ALPHA,
     CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_BETA},
    {CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_FILTER_DESCRIPTOR,
     CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_X,
     CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DW,
     CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DY,
     CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_CONV_DESC,
     CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_ALPHA,
     CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_BETA},
};

cudnnStatus_t finalize_operation(bdesc *d, int dir)
{
    const op_attrs &a = kOps[dir];
    const bdesc *x = get_desc(d, a.x, CUDNN_BACKEND_TENSOR_DESCRIPTOR);
    const bdesc *w = get_desc(d, a.w, CUDNN_BACKEND_TENSOR_DESCRIPTOR);
    const bdesc *y = get_desc(d, a.y, CUDNN_BACKEND_TENSOR_DESCRIPTOR);
    const bdesc *cv = get_desc(d, a.conv, CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR);
    const float *alpha = get<float>(d, a.alpha, CUDNN_TYPE_FLOAT, 1);
    const float *beta = get<float>(d, a.beta, CUDNN_TYPE_FLOAT, 1);
    if (!x || !w || !y || !cv || !alpha || !beta) return CUDNN_STATUS_BAD_PARAM;
    graph_op &op = d->op;
    op.dir = dir;
    op.p.x = x->view, op.p.w = w->view, op.p.y = y->view;
    for (int i = 0; i < 2; i++)
        op.p.pad[i] = cv->pad[i], op.p.stride[i] = cv->stride[i], op.p.dil[i] = cv->dil[i];
    op.uid[0] = x->uid, op.uid[1] = w->uid, op.uid[2] = y->uid;
    op.align[0] = x->align, op.align[1] = w->align, op.align[2] = y->align;
    op.alpha = *alpha, op.beta = *beta;
    if (!cuemu::conv_consistent(op.p) || x->uid == w->uid || x->uid == y->uid || w->uid == y->uid)
        return CUDNN_STATUS_BAD_PARAM;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t finalize_graph(bdesc *d)
{
    const cudnnHandle_t *h = get<cudnnHandle_t>(d, CUDNN_ATTR_OPERATIONGRAPH_HANDLE,
                                                CUDNN_TYPE_HANDLE, 1);
    const cudnnBackendDescriptor_t *ops = get<cudnnBackendDescriptor_t>(
        d, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1);
    if (!h || !*h || !ops || !D(*ops)->finalized || D(*ops)->op.dir < 0)
        return CUDNN_STATUS_BAD_PARAM;
    d->handle = *h;
    d->op = D(*ops)->op;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t finalize_heuristics(bdesc *d)
{
    const bdesc *g = get_desc(d, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH,
                              CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
    const cudnnBackendHeurMode_t *mode = get<cudnnBackendHeurMode_t>(
        d, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1);
    if (!g || !mode) return CUDNN_STATUS_BAD_PARAM;
    d->op = g->op;
    d->handle = g->handle;
    if (*mode == CUDNN_HEUR_MODE_A) d->results.assign(kModeA, kModeA + 3);
    else if (*mode == CUDNN_HEUR_MODE_FALLBACK) d->results.assign(kFallback, kFallback + 3);
    else return CUDNN_STATUS_NOT_SUPPORTED;
    return CUDNN_STATUS_SUCCESS;
}

size_t engine_ws(const engine_info &e, const graph_op &op)
{
    if (e.ws_per_operand == 0) return 0;
    const cuemu::conv_view &v = op.dir == 2 ? op.p.w : op.dir == 0 ? op.p.x : op.p.y;
    return (size_t)(e.ws_per_operand * (double)cuemu::conv_view_bytes(v)) + 4096;
}

cudnnStatus_t finalize_plan(bdesc *d)
{
    const cudnnHandle_t *h = get<cudnnHandle_t>(d, CUDNN_ATTR_EXECUTION_PLAN_HANDLE,
                                                CUDNN_TYPE_HANDLE, 1);
    const bdesc *cfg = get_desc(d, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG,
                                CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
    if (!h || !*h || !cfg || cfg->engine < 0) return CUDNN_STATUS_BAD_PARAM;
    const engine_info &e = kEngines[cfg->engine];
    if (!e.supported) return CUDNN_STATUS_NOT_SUPPORTED;
    d->handle = *h;
    d->op = cfg->op;
    d->engine = cfg->engine;
    d->ws = engine_ws(e, d->op);
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t finalize_pack(bdesc *d)
{
    auto ids = d->attrs.find(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS);
    auto ptrs = d->attrs.find(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS);
    void *const *ws = get<void *>(d, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1);
    if (ids == d->attrs.end() || ptrs == d->attrs.end() || ids->second.first != CUDNN_TYPE_INT64 ||
        ptrs->second.first != CUDNN_TYPE_VOID_PTR)
        return CUDNN_STATUS_BAD_PARAM;
    size_t n = ids->second.second.size() / 8;
    if (ptrs->second.second.size() != n * sizeof(void *)) return CUDNN_STATUS_BAD_PARAM;
    d->pack_uids.resize(n);
    d->pack_ptrs.resize(n);
    memcpy(d->pack_uids.data(), ids->second.second.data(), n * 8);
    memcpy(d->pack_ptrs.data(), ptrs->second.second.data(), n * sizeof(void *));
    d->pack_ws = ws ? *ws : nullptr;
    return CUDNN_STATUS_SUCCESS;
}

/* Fills an engine configuration, engine or knob choice descriptor with engine k for op. */
cudnnStatus_t fill(cudnnBackendDescriptor_t out, cudnnBackendDescriptorType_t want, int k,
                   const graph_op &op)
{
    bdesc *o = D(out);
    if (!o || o->type != want) return CUDNN_STATUS_BAD_PARAM;
    o->engine = k;
    o->op = op;
    o->finalized = true;
    return CUDNN_STATUS_SUCCESS;
}

} // namespace

extern "C" {

cudnnStatus_t cudnnBackendCreateDescriptor(cudnnBackendDescriptorType_t type,
                                           cudnnBackendDescriptor_t *d)
{
    *d = new bdesc(type);
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnBackendDestroyDescriptor(cudnnBackendDescriptor_t d)
{
    delete D(d);
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnBackendSetAttribute(cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name,
                                       cudnnBackendAttributeType_t type, int64_t n,
                                       const void *elements)
{
    if (!d || n < 0 || (n && !elements)) return CUDNN_STATUS_BAD_PARAM;
    if (D(d)->finalized) return CUDNN_STATUS_NOT_SUPPORTED;
    const char *b = static_cast<const char *>(elements);
    D(d)->attrs[name] = {type, std::vector<char>(b, b + n * elem_bytes(type))};
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnBackendFinalize(cudnnBackendDescriptor_t d)
{
    bdesc *b = D(d);
    if (!b || b->finalized) return CUDNN_STATUS_BAD_PARAM;
    cudnnStatus_t s;
    switch (b->type) {
    case CUDNN_BACKEND_TENSOR_DESCRIPTOR: s = finalize_tensor(b); break;
    case CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR: s = finalize_convolution(b); break;
    case CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR: s = finalize_operation(b, 0); break;
    case CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR:
        s = finalize_operation(b, 1);
        break;
    case CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_FILTER_DESCRIPTOR:
        s = finalize_operation(b, 2);
        break;
    case CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR: s = finalize_graph(b); break;
    case CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR: s = finalize_heuristics(b); break;
    case CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR: s = finalize_plan(b); break;
    case CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR: s = finalize_pack(b); break;
    default: s = CUDNN_STATUS_NOT_SUPPORTED;
    }
    if (s == CUDNN_STATUS_SUCCESS) b->finalized = true;
    return s;
}

cudnnStatus_t cudnnBackendGetAttribute(cudnnBackendDescriptor_t const d,
                                       cudnnBackendAttributeName_t name,
                                       cudnnBackendAttributeType_t type, int64_t requested,
                                       int64_t *count, void *out)
{
    const bdesc *b = D(d);
    if (!b || !b->finalized || requested < 0 || !count) return CUDNN_STATUS_BAD_PARAM;
    const graph_op &op = b->op;
    if (b->type == CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR && name == CUDNN_ATTR_ENGINEHEUR_RESULTS &&
        type == CUDNN_TYPE_BACKEND_DESCRIPTOR) {
        int64_t n = (int64_t)b->results.size() < requested ? (int64_t)b->results.size() : requested;
        for (int64_t i = 0; i < n; i++) {
            cudnnStatus_t s = fill(static_cast<cudnnBackendDescriptor_t *>(out)[i],
                                   CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, b->results[i], op);
            if (s) return s;
        }
        *count = n;
        return CUDNN_STATUS_SUCCESS;
    }
    if (b->type == CUDNN_BACKEND_ENGINECFG_DESCRIPTOR && name == CUDNN_ATTR_ENGINECFG_ENGINE &&
        type == CUDNN_TYPE_BACKEND_DESCRIPTOR && requested >= 1) {
        *count = 1;
        return fill(*static_cast<cudnnBackendDescriptor_t *>(out),
                    CUDNN_BACKEND_ENGINE_DESCRIPTOR, b->engine, op);
    }
    if (b->type == CUDNN_BACKEND_ENGINECFG_DESCRIPTOR &&
        name == CUDNN_ATTR_ENGINECFG_KNOB_CHOICES && type == CUDNN_TYPE_BACKEND_DESCRIPTOR &&
        requested >= 1) {
        *count = 1;
        return fill(*static_cast<cudnnBackendDescriptor_t *>(out),
                    CUDNN_BACKEND_KNOB_CHOICE_DESCRIPTOR, b->engine, op);
    }
    if (b->type == CUDNN_BACKEND_KNOB_CHOICE_DESCRIPTOR && requested >= 1) {
        *count = 1;
        if (name == CUDNN_ATTR_KNOB_CHOICE_KNOB_TYPE && type == CUDNN_TYPE_KNOB_TYPE) {
            *static_cast<cudnnBackendKnobType_t *>(out) = CUDNN_KNOB_TYPE_TILE_SIZE;
            return CUDNN_STATUS_SUCCESS;
        }
        if (name == CUDNN_ATTR_KNOB_CHOICE_KNOB_VALUE && type == CUDNN_TYPE_INT64) {
            *static_cast<int64_t *>(out) = kEngines[b->engine].tile;
            return CUDNN_STATUS_SUCCESS;
        }
    }
    if (b->type == CUDNN_BACKEND_ENGINE_DESCRIPTOR) {
        const engine_info &e = kEngines[b->engine];
        if (name == CUDNN_ATTR_ENGINE_GLOBAL_INDEX && type == CUDNN_TYPE_INT64 && requested >= 1) {
            *count = 1;
            *static_cast<int64_t *>(out) = e.index;
            return CUDNN_STATUS_SUCCESS;
        }
        if (name == CUDNN_ATTR_ENGINE_NUMERICAL_NOTE && type == CUDNN_TYPE_NUMERICAL_NOTE) {
            std::vector<cudnnBackendNumericalNote_t> notes;
            if (e.tensor_core) notes.push_back(CUDNN_NUMERICAL_NOTE_TENSOR_CORE);
            if (e.down_convert) notes.push_back(CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS);
            if (e.nondet_backward && b->op.dir != 0)
                notes.push_back(CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC);
            *count = (int64_t)notes.size();
            for (int64_t i = 0; i < *count && i < requested; i++)
                static_cast<cudnnBackendNumericalNote_t *>(out)[i] = notes[i];
            return CUDNN_STATUS_SUCCESS;
        }
        if (name == CUDNN_ATTR_ENGINE_BEHAVIOR_NOTE && type == CUDNN_TYPE_BEHAVIOR_NOTE) {
            *count = e.rtc ? 1 : 0;
            if (e.rtc && requested >= 1)
                *static_cast<cudnnBackendBehaviorNote_t *>(out) =
                    CUDNN_BEHAVIOR_NOTE_RUNTIME_COMPILATION;
            return CUDNN_STATUS_SUCCESS;
        }
    }
    if (b->type == CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR &&
        name == CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE && type == CUDNN_TYPE_INT64 &&
        requested >= 1) {
        *count = 1;
        *static_cast<int64_t *>(out) = (int64_t)b->ws;
        return CUDNN_STATUS_SUCCESS;
    }
    return CUDNN_STATUS_NOT_SUPPORTED;
}

cudnnStatus_t cudnnBackendExecute(cudnnHandle_t h, cudnnBackendDescriptor_t plan,
                                  cudnnBackendDescriptor_t pack)
{
    const bdesc *p = D(plan), *v = D(pack);
    if (!h || !p || !v || !p->finalized || !v->finalized ||
        p->type != CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR ||
        v->type != CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR || h != p->handle)
        return CUDNN_STATUS_BAD_PARAM;
    const graph_op &op = p->op;
    void *ptr[3] = {nullptr, nullptr, nullptr};
    for (int r = 0; r < 3; r++)
        for (size_t i = 0; i < v->pack_uids.size(); i++)
            if (v->pack_uids[i] == op.uid[r]) ptr[r] = v->pack_ptrs[i];
    if (!ptr[0] || !ptr[1] || !ptr[2] || (p->ws && !v->pack_ws)) return CUDNN_STATUS_BAD_PARAM;
    /* as cuDNN: an operand off the alignment its tensor declared is refused */
    for (int r = 0; r < 3; r++)
        if (reinterpret_cast<uintptr_t>(ptr[r]) % static_cast<uintptr_t>(op.align[r]))
            return CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER;
    const engine_info &e = kEngines[p->engine];
    bool one = op.p.w.d[2] == 1 && op.p.w.d[3] == 1;
    double ms = 2e-9 * cuemu::conv_macs(op.p) * (one ? 1.2 : 1.0) * e.cost;
    cudaError_t err = cuemu::conv_submit(cuemu::cudnn_stream(h), op.p, op.dir, ptr[0], ptr[1],
                                         ptr[2], op.alpha, op.beta, v->pack_ws, p->ws,
                                         e.tensor_core, ms, e.nondet_backward && op.dir != 0);
    return err == cudaErrorInvalidValue ? CUDNN_STATUS_BAD_PARAM
           : err                        ? CUDNN_STATUS_EXECUTION_FAILED
                                        : CUDNN_STATUS_SUCCESS;
}

} /* extern "C" */
