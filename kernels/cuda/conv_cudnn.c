/* Convolutions through cuDNN in NHWC: forward (+ bias), backward data, backward filter.
 *
 * Algorithms are chosen once per shape, at plan time (the backend's workspace_bytes()), by
 * timing them (cudnnFind*Algorithm) and taking the fastest whose workspace fits under
 * ctx->conv_ws_limit; cuDNN's heuristics (Get*_v7) are the fallback when no timed algorithm fits.
 * The choice, its workspace size and the descriptors are cached in a hash table keyed by the
 * direction, the dims, the storage dtype and the precision, so a step only looks them up.
 *
 * Precision: fp32 runs with CUDNN_FMA_MATH (cuDNN's default math would let TF32 in on Ampere and
 * later); tf32 with tensor-op math on fp32 data; bf16 casts x and w (fp32 master weights) to
 * bf16 in the workspace as needed, convolves in bf16 with fp32 accumulation, and accumulates
 * the bf16 weight gradient into the fp32 gradient buffer. */
#include "conv_cudnn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_backend.h"
#include "cuda_check.h"
#include "cuda_kernels.h"

/* ---- descriptors ---- */
static cudnnDataType_t mm_cudnn_dtype(mm_dtype t)
{
    return t == MM_BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
}

cudnnStatus_t mm_conv_descs_init(mm_conv_descs *cd, const mm_conv_dims *d, mm_dtype dtype,
                                 int precision)
{
    memset(cd, 0, sizeof *cd);
    cudnnDataType_t dt = mm_cudnn_dtype(dtype);
    cudnnStatus_t s;
    if ((s = cudnnCreateTensorDescriptor(&cd->x)) != CUDNN_STATUS_SUCCESS) goto fail;
    if ((s = cudnnCreateTensorDescriptor(&cd->y)) != CUDNN_STATUS_SUCCESS) goto fail;
    if ((s = cudnnCreateFilterDescriptor(&cd->w)) != CUDNN_STATUS_SUCCESS) goto fail;
    if ((s = cudnnCreateConvolutionDescriptor(&cd->conv)) != CUDNN_STATUS_SUCCESS) goto fail;
    s = cudnnSetTensor4dDescriptor(cd->x, CUDNN_TENSOR_NHWC, dt, d->n, d->c, d->h, d->w);
    if (s != CUDNN_STATUS_SUCCESS) goto fail;
    s = cudnnSetFilter4dDescriptor(cd->w, dt, CUDNN_TENSOR_NHWC, d->k, d->c, d->r, d->s);
    if (s != CUDNN_STATUS_SUCCESS) goto fail;
    s = cudnnSetTensor4dDescriptor(cd->y, CUDNN_TENSOR_NHWC, dt, d->n, d->k, d->oh, d->ow);
    if (s != CUDNN_STATUS_SUCCESS) goto fail;
    s = cudnnSetConvolution2dDescriptor(cd->conv, d->pad_h, d->pad_w, d->stride_h, d->stride_w, 1,
                                        1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT);
    if (s != CUDNN_STATUS_SUCCESS) goto fail;
    s = cudnnSetConvolutionMathType(
        cd->conv, precision == MM_PRECISION_FP32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH);
    if (s != CUDNN_STATUS_SUCCESS) goto fail;
    return CUDNN_STATUS_SUCCESS;
fail:
    mm_conv_descs_free(cd);
    return s;
}

void mm_conv_descs_free(mm_conv_descs *cd)
{
    if (cd->x) cudnnDestroyTensorDescriptor(cd->x);
    if (cd->y) cudnnDestroyTensorDescriptor(cd->y);
    if (cd->w) cudnnDestroyFilterDescriptor(cd->w);
    if (cd->conv) cudnnDestroyConvolutionDescriptor(cd->conv);
    memset(cd, 0, sizeof *cd);
}

cudnnStatus_t mm_cudnn_conv_output_dims(const mm_conv_dims *d, mm_dtype dtype, int out[4])
{
    mm_conv_descs cd;
    cudnnStatus_t s = mm_conv_descs_init(&cd, d, dtype, MM_PRECISION_FP32);
    if (s != CUDNN_STATUS_SUCCESS) return s;
    s = cudnnGetConvolution2dForwardOutputDim(cd.conv, cd.x, cd.w, &out[0], &out[1], &out[2],
                                              &out[3]);
    mm_conv_descs_free(&cd);
    return s;
}

/* ---- the algorithm cache ---- */
typedef enum mm_conv_dir { MM_CONV_FWD = 1, MM_CONV_BWD_DATA, MM_CONV_BWD_FILTER } mm_conv_dir;

/* All ints, so memcmp and hashing see no padding. */
typedef struct mm_conv_key {
    int dir, dtype, precision;
    int n, h, w, c, k, r, s, stride_h, stride_w, pad_h, pad_w;
} mm_conv_key;

typedef struct mm_conv_entry {
    mm_conv_key key;
    int used;
    int ok;   /* an algorithm was found (a shape without one is cached too) */
    mm_conv_descs d;
    int algo; /* cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t */
    size_t ws_bytes;
} mm_conv_entry;

struct mm_conv_cache {
    mm_conv_entry *slots;
    int cap, count; /* cap: a power of two */
};

static uint64_t mm_conv_key_hash(const mm_conv_key *k)
{
    const unsigned char *p = (const unsigned char *)k;
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < sizeof *k; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static mm_conv_entry *mm_conv_cache_slot(mm_conv_cache *c, const mm_conv_key *k)
{
    uint64_t i = mm_conv_key_hash(k) & (uint64_t)(c->cap - 1);
    while (c->slots[i].used && memcmp(&c->slots[i].key, k, sizeof *k) != 0)
        i = (i + 1) & (uint64_t)(c->cap - 1);
    return &c->slots[i];
}

static void mm_conv_cache_grow(mm_conv_cache *c)
{
    mm_conv_cache bigger = {NULL, c->cap ? c->cap * 2 : 64, c->count};
    bigger.slots = mm_xcalloc((size_t)bigger.cap, sizeof *bigger.slots);
    for (int i = 0; i < c->cap; i++)
        if (c->slots[i].used) *mm_conv_cache_slot(&bigger, &c->slots[i].key) = c->slots[i];
    free(c->slots);
    *c = bigger;
}

mm_conv_cache *mm_conv_cache_new(void) { return mm_xcalloc(1, sizeof(mm_conv_cache)); }

void mm_conv_cache_free(mm_conv_cache *c)
{
    if (!c) return;
    for (int i = 0; i < c->cap; i++)
        if (c->slots[i].used) mm_conv_descs_free(&c->slots[i].d);
    free(c->slots);
    free(c);
}

static const char *mm_conv_dir_name(mm_conv_dir dir)
{
    return dir == MM_CONV_FWD ? "forward" : dir == MM_CONV_BWD_DATA ? "backward-data"
                                                                     : "backward-filter";
}

_Noreturn static void mm_conv_no_algo(const mm_conv_key *k, mm_dtype dtype)
{
    char detail[256];
    snprintf(detail, sizeof detail,
             "%s convolution x [%d,%d,%d,%d] w [%d,%d,%d,%d] stride %dx%d pad %dx%d %s",
             mm_conv_dir_name((mm_conv_dir)k->dir), k->n, k->h, k->w, k->c, k->k, k->r, k->s,
             k->c, k->stride_h, k->stride_w, k->pad_h, k->pad_w, mm_dtype_name(dtype));
    mm_die_at(__FILE__, __LINE__, "no cuDNN algorithm", detail,
              "cuDNN offers no algorithm for this shape within the workspace limit: try "
              "--precision fp32 or another --input size");
}

/* Takes the first usable result of a list ordered best first: ran, and fits under the limit. */
#define MM_CONV_TAKE_FIRST(perf, got, limit, strict)                                             \
    do {                                                                                  \
        for (int i_ = 0; i_ < (got); i_++) {                                              \
            if ((perf)[i_].status != CUDNN_STATUS_SUCCESS || (perf)[i_].memory > (limit)) \
                continue;                                                                 \
            /* fp32 means no tensor-core TF32: a time taken with another math type does not \
             * hold for the FMA math the descriptor runs with */                            \
            if ((strict) && ctx->precision == MM_PRECISION_FP32 &&                      \
                (perf)[i_].mathType != CUDNN_FMA_MATH)                                      \
                continue;                                                                 \
            e->algo = (int)(perf)[i_].algo;                                               \
            e->ws_bytes = (perf)[i_].memory;                                              \
            if (ctx->precision != MM_PRECISION_FP32)                                      \
                MM_CUDNN_CHECK(cudnnSetConvolutionMathType(e->d.conv, (perf)[i_].mathType)); \
            return true;                                                                  \
        }                                                                                 \
    } while (0)

/* Times the algorithms (cuDNN allocates its own scratch for that, at plan time only) and takes
 * the fastest that ran and fits under `limit`; else the first of cuDNN's heuristic order that
 * fits. A search that fails (a shape and data type cuDNN does not take) gives no algorithm:
 * false. Sets e->algo, e->ws_bytes and the math type the algorithm was timed with. */
static bool mm_conv_pick_fwd(mm_cuda_ctx *ctx, mm_conv_entry *e, size_t limit)
{
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int got = 0;
    if (cudnnFindConvolutionForwardAlgorithm(ctx->cudnn, e->d.x, e->d.w, e->d.conv, e->d.y,
                                             CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got,
                                             perf) == CUDNN_STATUS_SUCCESS)
        MM_CONV_TAKE_FIRST(perf, got, limit, true);
    got = 0;
    if (cudnnGetConvolutionForwardAlgorithm_v7(ctx->cudnn, e->d.x, e->d.w, e->d.conv, e->d.y,
                                               CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got,
                                               perf) == CUDNN_STATUS_SUCCESS)
        MM_CONV_TAKE_FIRST(perf, got, limit, false);
    return false;
}

static bool mm_conv_pick_bwd_data(mm_cuda_ctx *ctx, mm_conv_entry *e, size_t limit)
{
    cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    int got = 0;
    if (cudnnFindConvolutionBackwardDataAlgorithm(ctx->cudnn, e->d.w, e->d.y, e->d.conv, e->d.x,
                                                  CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &got,
                                                  perf) == CUDNN_STATUS_SUCCESS)
        MM_CONV_TAKE_FIRST(perf, got, limit, true);
    got = 0;
    if (cudnnGetConvolutionBackwardDataAlgorithm_v7(ctx->cudnn, e->d.w, e->d.y, e->d.conv, e->d.x,
                                                    CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &got,
                                                    perf) == CUDNN_STATUS_SUCCESS)
        MM_CONV_TAKE_FIRST(perf, got, limit, false);
    return false;
}

static bool mm_conv_pick_bwd_filter(mm_cuda_ctx *ctx, mm_conv_entry *e, size_t limit)
{
    cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    int got = 0;
    if (cudnnFindConvolutionBackwardFilterAlgorithm(ctx->cudnn, e->d.x, e->d.y, e->d.conv, e->d.w,
                                                    CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &got,
                                                    perf) == CUDNN_STATUS_SUCCESS)
        MM_CONV_TAKE_FIRST(perf, got, limit, true);
    got = 0;
    if (cudnnGetConvolutionBackwardFilterAlgorithm_v7(ctx->cudnn, e->d.x, e->d.y, e->d.conv,
                                                      e->d.w,
                                                      CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT,
                                                      &got, perf) == CUDNN_STATUS_SUCCESS)
        MM_CONV_TAKE_FIRST(perf, got, limit, false);
    return false;
}

/* The cache entry of (dir, d, dtype), choosing its algorithm the first time (e->ok says whether
 * there is one). The choice is made outside any capture: the first lookup of a shape happens at
 * plan time. */
static mm_conv_entry *mm_conv_lookup(mm_cuda_ctx *ctx, mm_conv_dir dir, const mm_conv_dims *d,
                                     mm_dtype dtype)
{
    mm_conv_key k;
    memset(&k, 0, sizeof k);
    k.dir = dir;
    k.dtype = dtype;
    k.precision = ctx->precision;
    k.n = d->n, k.h = d->h, k.w = d->w, k.c = d->c, k.k = d->k, k.r = d->r, k.s = d->s;
    k.stride_h = d->stride_h, k.stride_w = d->stride_w, k.pad_h = d->pad_h, k.pad_w = d->pad_w;

    mm_conv_cache *c = ctx->convs;
    if (c->cap == 0 || 2 * (c->count + 1) > c->cap) mm_conv_cache_grow(c);
    mm_conv_entry *e = mm_conv_cache_slot(c, &k);
    if (e->used) return e;

    MM_ASSERT(!ctx->capturing); /* a new shape inside a capture: plan (workspace_bytes) first */
    mm_conv_entry fresh;
    memset(&fresh, 0, sizeof fresh);
    fresh.key = k;
    MM_CUDNN_CHECK(mm_conv_descs_init(&fresh.d, d, dtype, ctx->precision));
    e = &fresh;
    bool ok = dir == MM_CONV_FWD        ? mm_conv_pick_fwd(ctx, e, ctx->conv_ws_limit)
              : dir == MM_CONV_BWD_DATA ? mm_conv_pick_bwd_data(ctx, e, ctx->conv_ws_limit)
                                        : mm_conv_pick_bwd_filter(ctx, e, ctx->conv_ws_limit);
    cudaGetLastError(); /* a failed search leaves its error to be read: clear it */
    fresh.ok = ok;
    fresh.used = 1;
    e = mm_conv_cache_slot(c, &k);
    *e = fresh;
    c->count++;
    return e;
}

/* The entry to run direction `dir` with, and its storage dtype in *t: the precision's dtype, or
 * fp32 where cuDNN has no bf16 algorithm for the shape (the layer then runs in fp32/TF32 with
 * its operands cast in the workspace). */
static mm_conv_entry *mm_conv_choose(mm_cuda_ctx *ctx, mm_conv_dir dir, const mm_conv_dims *d,
                                     mm_dtype *t)
{
    *t = mm_cuda_conv_dtype(ctx);
    mm_conv_entry *e = mm_conv_lookup(ctx, dir, d, *t);
    if (!e->ok && *t == MM_BF16) {
        *t = MM_F32;
        e = mm_conv_lookup(ctx, dir, d, *t);
    }
    if (!e->ok) mm_conv_no_algo(&e->key, *t);
    return e;
}

/* ---- the ops ---- */
static const float mm_one = 1.0f, mm_zero = 0.0f;

void mm_cuda_op_conv2d(mm_cuda_ctx *ctx, const mm_node *node, const mm_tensor *ins,
                       const mm_tensor *outs, mm_cuda_ws *ws, int relu)
{
    const mm_conv_dims *d = &node->p.conv;
    mm_dtype t;
    mm_conv_entry *e = mm_conv_choose(ctx, MM_CONV_FWD, d, &t);
    const void *x = mm_cuda_stage_input(ctx, ws, &ins[0], t);
    const void *w = mm_cuda_stage_input(ctx, ws, &ins[1], t);
    void *y = mm_cuda_stage_output(ws, &outs[0], t);
    void *cws = mm_cuda_ws_take(ws, e->ws_bytes);
    if (ws->measure) return;
    MM_CUDNN_CHECK(cudnnConvolutionForward(ctx->cudnn, &mm_one, e->d.x, x, e->d.w, w, e->d.conv,
                                           (cudnnConvolutionFwdAlgo_t)e->algo, cws, e->ws_bytes,
                                           &mm_zero, e->d.y, y));
    MM_ASSERT(!relu || (node->n_in > 2 && ins[2].data)); /* fused only with a bias pass */
    if (node->n_in > 2 && ins[2].data)
        mm_cuda_bias_add(y, t, (const float *)ins[2].data, (int64_t)d->n * d->oh * d->ow, d->k,
                         relu, ctx->stream);
    mm_cuda_finish_output(ctx, &outs[0], y, t);
}

void mm_cuda_op_conv2d_bwd_data(mm_cuda_ctx *ctx, const mm_node *node, const mm_tensor *ins,
                                const mm_tensor *outs, mm_cuda_ws *ws)
{
    const mm_conv_dims *d = &node->p.conv;
    mm_dtype t;
    mm_conv_entry *e = mm_conv_choose(ctx, MM_CONV_BWD_DATA, d, &t);
    const void *dy = mm_cuda_stage_input(ctx, ws, &ins[0], t);
    const void *w = mm_cuda_stage_input(ctx, ws, &ins[1], t);
    void *dx = mm_cuda_stage_output(ws, &outs[0], t);
    void *cws = mm_cuda_ws_take(ws, e->ws_bytes);
    if (ws->measure) return;
    MM_CUDNN_CHECK(cudnnConvolutionBackwardData(ctx->cudnn, &mm_one, e->d.w, w, e->d.y, dy,
                                                e->d.conv, (cudnnConvolutionBwdDataAlgo_t)e->algo,
                                                cws, e->ws_bytes, &mm_zero, e->d.x, dx));
    mm_cuda_finish_output(ctx, &outs[0], dx, t);
}

void mm_cuda_op_conv2d_bwd_filter(mm_cuda_ctx *ctx, const mm_node *node, const mm_tensor *ins,
                                  const mm_tensor *outs, mm_cuda_ws *ws)
{
    const mm_conv_dims *d = &node->p.conv;
    mm_dtype t;
    mm_conv_entry *e = mm_conv_choose(ctx, MM_CONV_BWD_FILTER, d, &t);
    MM_ASSERT(outs[0].dtype == MM_F32);
    const void *dy = mm_cuda_stage_input(ctx, ws, &ins[0], t);
    const void *x = mm_cuda_stage_input(ctx, ws, &ins[1], t);
    int64_t wn = (int64_t)d->k * d->r * d->s * d->c;
    /* fp32: cuDNN accumulates into the gradient itself (beta = 1). bf16: it writes a bf16
     * gradient into the workspace, which is then added to the fp32 gradient. */
    void *dw_lo = t == MM_F32 ? NULL : mm_cuda_ws_take(ws, (size_t)wn * sizeof(uint16_t));
    void *cws = mm_cuda_ws_take(ws, e->ws_bytes);
    if (ws->measure) return;
    if (t == MM_F32) {
        MM_CUDNN_CHECK(cudnnConvolutionBackwardFilter(
            ctx->cudnn, &mm_one, e->d.x, x, e->d.y, dy, e->d.conv,
            (cudnnConvolutionBwdFilterAlgo_t)e->algo, cws, e->ws_bytes, &mm_one, e->d.w,
            outs[0].data));
    } else {
        MM_CUDNN_CHECK(cudnnConvolutionBackwardFilter(
            ctx->cudnn, &mm_one, e->d.x, x, e->d.y, dy, e->d.conv,
            (cudnnConvolutionBwdFilterAlgo_t)e->algo, cws, e->ws_bytes, &mm_zero, e->d.w,
            dw_lo));
        mm_cuda_accumulate((float *)outs[0].data, dw_lo, t, wn, ctx->stream);
    }
}
