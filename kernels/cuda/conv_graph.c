/* Convolutions through cuDNN's graph (backend) API (conv_graph.h). */
#include "conv_graph.h"

#include <string.h>

#define MM_TRY(call)                                                                       \
    do {                                                                                   \
        if ((s = (call)) != CUDNN_STATUS_SUCCESS) goto fail;                               \
    } while (0)

enum { MM_UID_X = 1, MM_UID_W = 2, MM_UID_Y = 3 };

static void mm_destroy(cudnnBackendDescriptor_t *d)
{
    if (*d) cudnnBackendDestroyDescriptor(*d);
    *d = NULL;
}

static cudnnStatus_t mm_set_desc(cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t a,
                                 cudnnBackendDescriptor_t v)
{
    return cudnnBackendSetAttribute(d, a, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &v);
}

static cudnnStatus_t mm_set_i64(cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t a,
                                int64_t n, const int64_t *v)
{
    return cudnnBackendSetAttribute(d, a, CUDNN_TYPE_INT64, n, v);
}

/* A finalized tensor descriptor: logical dims {n, c, h, w} of an NHWC buffer. */
static cudnnStatus_t mm_tensor_desc(cudnnBackendDescriptor_t *out, int64_t uid, mm_dtype t,
                                     int64_t n, int64_t c, int64_t h, int64_t w, int64_t align)
{
    cudnnStatus_t s;
    cudnnBackendDescriptor_t d = NULL;
    int64_t dims[4] = {n, c, h, w}, strides[4] = {h * w * c, 1, w * c, c};
    cudnnDataType_t dt = t == MM_BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
    MM_TRY(cudnnBackendCreateDescriptor(CUDNN_BACKEND_TENSOR_DESCRIPTOR, &d));
    MM_TRY(cudnnBackendSetAttribute(d, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt));
    MM_TRY(mm_set_i64(d, CUDNN_ATTR_TENSOR_DIMENSIONS, 4, dims));
    MM_TRY(mm_set_i64(d, CUDNN_ATTR_TENSOR_STRIDES, 4, strides));
    MM_TRY(mm_set_i64(d, CUDNN_ATTR_TENSOR_UNIQUE_ID, 1, &uid));
    MM_TRY(mm_set_i64(d, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, 1, &align));
    MM_TRY(cudnnBackendFinalize(d));
    *out = d;
    return CUDNN_STATUS_SUCCESS;
fail:
    mm_destroy(&d);
    return s;
}

static cudnnStatus_t mm_convolution(cudnnBackendDescriptor_t *out, const mm_conv_dims *dm)
{
    cudnnStatus_t s;
    cudnnBackendDescriptor_t d = NULL;
    cudnnDataType_t comp = CUDNN_DATA_FLOAT;
    cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
    int64_t dims = 2, dil[2] = {1, 1}, stride[2] = {dm->stride_h, dm->stride_w},
            pad[2] = {dm->pad_h, dm->pad_w};
    MM_TRY(cudnnBackendCreateDescriptor(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR, &d));
    MM_TRY(cudnnBackendSetAttribute(d, CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1,
                                    &comp));
    MM_TRY(cudnnBackendSetAttribute(d, CUDNN_ATTR_CONVOLUTION_CONV_MODE,
                                    CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode));
    MM_TRY(mm_set_i64(d, CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, 1, &dims));
    MM_TRY(mm_set_i64(d, CUDNN_ATTR_CONVOLUTION_DILATIONS, 2, dil));
    MM_TRY(mm_set_i64(d, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, 2, stride));
    MM_TRY(mm_set_i64(d, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, 2, pad));
    MM_TRY(mm_set_i64(d, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, 2, pad));
    MM_TRY(cudnnBackendFinalize(d));
    *out = d;
    return CUDNN_STATUS_SUCCESS;
fail:
    mm_destroy(&d);
    return s;
}

/* The operation descriptor of each direction and its attributes, by role. */
typedef struct mm_op_attrs {
    cudnnBackendDescriptorType_t type;
    cudnnBackendAttributeName_t x, w, y, conv, alpha, beta;
} mm_op_attrs;

static const mm_op_attrs mm_ops[3] = {
    {CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR,
     CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W,
     CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC,
     CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA},
    {CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR,
     CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DX, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_W,
     CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DY,
     CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_CONV_DESC,
     CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_ALPHA, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_BETA},
    {CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_FILTER_DESCRIPTOR,
     CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_X, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DW,
     CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DY,
     CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_CONV_DESC,
     CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_ALPHA,
     CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_BETA},
};

/* The operation of direction dir over g's tensors and convolution. */
static cudnnStatus_t mm_operation(mm_conv_graph *g, int dir, float beta)
{
    cudnnStatus_t s;
    float alpha = 1.0f;
    cudnnBackendDescriptor_t op = NULL;
    if (dir < MM_CONV_GRAPH_FWD || dir > MM_CONV_GRAPH_BWD_FILTER) return CUDNN_STATUS_BAD_PARAM;
    const mm_op_attrs *a = &mm_ops[dir - MM_CONV_GRAPH_FWD];
    MM_TRY(cudnnBackendCreateDescriptor(a->type, &op));
    MM_TRY(mm_set_desc(op, a->x, g->x));
    MM_TRY(mm_set_desc(op, a->w, g->w));
    MM_TRY(mm_set_desc(op, a->y, g->y));
    MM_TRY(mm_set_desc(op, a->conv, g->conv));
    MM_TRY(cudnnBackendSetAttribute(op, a->alpha, CUDNN_TYPE_FLOAT, 1, &alpha));
    MM_TRY(cudnnBackendSetAttribute(op, a->beta, CUDNN_TYPE_FLOAT, 1, &beta));
    MM_TRY(cudnnBackendFinalize(op));
    g->op = op;
    return CUDNN_STATUS_SUCCESS;
fail:
    mm_destroy(&op);
    return s;
}

cudnnStatus_t mm_conv_graph_init(mm_conv_graph *g, cudnnHandle_t h, int dir, const mm_conv_dims *d,
                                 mm_dtype t, float beta, int align)
{
    memset(g, 0, sizeof *g);
    cudnnStatus_t s;
    MM_TRY(mm_tensor_desc(&g->x, MM_UID_X, t, d->n, d->c, d->h, d->w, align));
    MM_TRY(mm_tensor_desc(&g->w, MM_UID_W, t, d->k, d->c, d->r, d->s, 16));
    MM_TRY(mm_tensor_desc(&g->y, MM_UID_Y, t, d->n, d->k, d->oh, d->ow, align));
    MM_TRY(mm_convolution(&g->conv, d));
    MM_TRY(mm_operation(g, dir, beta));
    if (h) {
        MM_TRY(cudnnBackendCreateDescriptor(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, &g->graph));
        MM_TRY(mm_set_desc(g->graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, g->op));
        MM_TRY(cudnnBackendSetAttribute(g->graph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE,
                                        CUDNN_TYPE_HANDLE, 1, &h));
        MM_TRY(cudnnBackendFinalize(g->graph));
    }
    return CUDNN_STATUS_SUCCESS;
fail:
    mm_conv_graph_free(g);
    return s;
}

void mm_conv_graph_free(mm_conv_graph *g)
{
    mm_destroy(&g->graph);
    mm_destroy(&g->op);
    mm_destroy(&g->conv);
    mm_destroy(&g->y);
    mm_destroy(&g->w);
    mm_destroy(&g->x);
}

/* ---- plans ---- */

/* Reads attribute `attr` of `of`, an array of descriptors of type `type`, into out[0..max): makes
 * up to max descriptors (*made of them, for the caller to destroy) and returns how many the
 * attribute filled (0 when it cannot be read). */
static int mm_get_descs(cudnnBackendDescriptor_t of, cudnnBackendAttributeName_t attr,
                        cudnnBackendDescriptorType_t type, cudnnBackendDescriptor_t *out, int max,
                        int *made)
{
    int64_t got = 0;
    for (*made = 0; *made < max; ++*made)
        if (cudnnBackendCreateDescriptor(type, &out[*made]) != CUDNN_STATUS_SUCCESS) break;
    if (cudnnBackendGetAttribute(of, attr, CUDNN_TYPE_BACKEND_DESCRIPTOR, *made, &got, out) !=
        CUDNN_STATUS_SUCCESS)
        got = 0;
    return (int)(got < *made ? got : *made);
}

/* A hash of configuration cfg's knob choices (the same for none, or when they cannot be read). */
static uint64_t mm_knobs_of(cudnnBackendDescriptor_t cfg)
{
    enum { N = CUDNN_KNOB_TYPE_COUNTS };
    cudnnBackendDescriptor_t k[N];
    int made;
    uint64_t h = 1469598103934665603ull; /* FNV-1a over (type, value) pairs */
    int got = mm_get_descs(cfg, CUDNN_ATTR_ENGINECFG_KNOB_CHOICES,
                           CUDNN_BACKEND_KNOB_CHOICE_DESCRIPTOR, k, N, &made);
    for (int i = 0; i < got; i++) {
        cudnnBackendKnobType_t type;
        int64_t value, n;
        if (cudnnBackendGetAttribute(k[i], CUDNN_ATTR_KNOB_CHOICE_KNOB_TYPE, CUDNN_TYPE_KNOB_TYPE,
                                     1, &n, &type) != CUDNN_STATUS_SUCCESS ||
            cudnnBackendGetAttribute(k[i], CUDNN_ATTR_KNOB_CHOICE_KNOB_VALUE, CUDNN_TYPE_INT64, 1,
                                     &n, &value) != CUDNN_STATUS_SUCCESS)
            continue;
        int64_t pair[2] = {(int64_t)type, value};
        const unsigned char *b = (const unsigned char *)pair;
        for (size_t j = 0; j < sizeof pair; j++) h = (h ^ b[j]) * 1099511628211ull;
    }
    for (int i = 0; i < made; i++) cudnnBackendDestroyDescriptor(k[i]);
    return h;
}

/* What the search needs to know of the engine behind configuration cfg; false when it cannot be
 * read or the engine down-converts its inputs (a lower precision than asked for). */
static bool mm_engine_notes(cudnnBackendDescriptor_t cfg, mm_conv_plan *p)
{
    cudnnBackendDescriptor_t eng = NULL;
    bool ok = false;
    int64_t got = 0;
    cudnnBackendNumericalNote_t notes[CUDNN_NUMERICAL_NOTE_TYPE_COUNT];
    cudnnBackendBehaviorNote_t behavior[CUDNN_BEHAVIOR_NOTE_TYPE_COUNT];
    if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINE_DESCRIPTOR, &eng) != CUDNN_STATUS_SUCCESS)
        return false;
    if (cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                 &got, &eng) != CUDNN_STATUS_SUCCESS ||
        got != 1)
        goto done;
    if (cudnnBackendGetAttribute(eng, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &got,
                                 &p->engine) != CUDNN_STATUS_SUCCESS)
        goto done;
    if (cudnnBackendGetAttribute(eng, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE,
                                 CUDNN_NUMERICAL_NOTE_TYPE_COUNT, &got,
                                 notes) != CUDNN_STATUS_SUCCESS)
        goto done;
    p->tensor_core = p->nondeterministic = false;
    for (int64_t i = 0; i < got && i < CUDNN_NUMERICAL_NOTE_TYPE_COUNT; i++) {
        if (notes[i] == CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS) goto done;
        if (notes[i] == CUDNN_NUMERICAL_NOTE_TENSOR_CORE) p->tensor_core = true;
        if (notes[i] == CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC) p->nondeterministic = true;
    }
    p->rtc = false;
    if (cudnnBackendGetAttribute(eng, CUDNN_ATTR_ENGINE_BEHAVIOR_NOTE, CUDNN_TYPE_BEHAVIOR_NOTE,
                                 CUDNN_BEHAVIOR_NOTE_TYPE_COUNT, &got,
                                 behavior) == CUDNN_STATUS_SUCCESS)
        for (int64_t i = 0; i < got && i < CUDNN_BEHAVIOR_NOTE_TYPE_COUNT; i++)
            p->rtc |= behavior[i] == CUDNN_BEHAVIOR_NOTE_RUNTIME_COMPILATION;
    p->knobs = mm_knobs_of(cfg);
    ok = true;
done:
    cudnnBackendDestroyDescriptor(eng);
    return ok;
}

/* A plan of configuration cfg when it is usable and not one of the n in `have` (see
 * mm_conv_graph_plans). */
static bool mm_plan_of(cudnnHandle_t h, cudnnBackendDescriptor_t cfg, const mm_conv_graph_want *w,
                       const mm_conv_plan *have, int n, mm_conv_plan *p)
{
    memset(p, 0, sizeof *p);
    if (!mm_engine_notes(cfg, p) || (p->tensor_core && !w->tensor_core) || (p->rtc && !w->rtc) ||
        (p->nondeterministic && w->deterministic) || (w->only_engine && p->engine != w->engine))
        return false;
    for (int i = 0; i < n; i++)
        if (have[i].engine == p->engine && have[i].knobs == p->knobs) return false;
    cudnnStatus_t s;
    int64_t ws = 0, got = 0;
    MM_TRY(cudnnBackendCreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &p->plan));
    MM_TRY(cudnnBackendSetAttribute(p->plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE,
                                    1, &h));
    MM_TRY(mm_set_desc(p->plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, cfg));
    MM_TRY(cudnnBackendFinalize(p->plan));
    MM_TRY(cudnnBackendGetAttribute(p->plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                                    CUDNN_TYPE_INT64, 1, &got, &ws));
    if (ws < 0 || (size_t)ws > w->ws_limit) goto fail;
    p->ws_bytes = (size_t)ws;
    return true;
fail:
    (void)s;
    mm_conv_plan_free(p);
    return false;
}

/* Appends the usable plans of heuristics mode `mode` to out[*n..max). */
static void mm_plans_of_mode(cudnnHandle_t h, const mm_conv_graph *g, cudnnBackendHeurMode_t mode,
                             const mm_conv_graph_want *w, mm_conv_plan *out, int *n, int max)
{
    enum { CFG_MAX = 32 };
    cudnnBackendDescriptor_t heur = NULL, cfgs[CFG_MAX];
    int made = 0;
    if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, &heur) !=
        CUDNN_STATUS_SUCCESS)
        return;
    if (mm_set_desc(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, g->graph) != CUDNN_STATUS_SUCCESS ||
        cudnnBackendSetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1,
                                 &mode) != CUDNN_STATUS_SUCCESS ||
        cudnnBackendFinalize(heur) != CUDNN_STATUS_SUCCESS)
        goto done;
    int count = mm_get_descs(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS,
                             CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, cfgs, CFG_MAX, &made);
    for (int i = 0; i < count && *n < max; i++)
        if (mm_plan_of(h, cfgs[i], w, out, *n, &out[*n])) (*n)++;
done:
    for (int i = 0; i < made; i++) cudnnBackendDestroyDescriptor(cfgs[i]);
    cudnnBackendDestroyDescriptor(heur);
}

int mm_conv_graph_plans(cudnnHandle_t h, const mm_conv_graph *g, const mm_conv_graph_want *w,
                        mm_conv_plan *out, int max)
{
    int n = 0;
    if (!h || !g->graph || max <= 0) return 0;
    mm_plans_of_mode(h, g, CUDNN_HEUR_MODE_A, w, out, &n, max);
    mm_plans_of_mode(h, g, CUDNN_HEUR_MODE_FALLBACK, w, out, &n, max);
    return n;
}

void mm_conv_plan_free(mm_conv_plan *p)
{
    mm_destroy(&p->plan);
}

cudnnStatus_t mm_conv_plan_run(cudnnHandle_t h, const mm_conv_plan *p, const void *x,
                               const void *w, const void *y, void *ws)
{
    cudnnStatus_t s;
    cudnnBackendDescriptor_t pack = NULL;
    int64_t uids[3] = {MM_UID_X, MM_UID_W, MM_UID_Y};
    void *ptrs[3] = {(void *)x, (void *)w, (void *)y};
    MM_TRY(cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &pack));
    MM_TRY(mm_set_i64(pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, 3, uids));
    MM_TRY(cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS,
                                    CUDNN_TYPE_VOID_PTR, 3, ptrs));
    MM_TRY(cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR,
                                    1, &ws));
    MM_TRY(cudnnBackendFinalize(pack));
    s = cudnnBackendExecute(h, p->plan, pack);
fail:
    mm_destroy(&pack);
    return s;
}
