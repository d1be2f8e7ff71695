/* Convolutions through cuDNN in NHWC: forward (+ bias), backward data, backward filter; 1x1
 * stride-1 shapes may run as cuBLAS GEMMs instead (conv_gemm.c), 3x3 stride-1 ones as Winograd
 * (conv_wino.h), others on NCHW copies (conv_nchw.h) or as plans of cuDNN's graph API
 * (conv_graph.c).
 *
 * Algorithms are chosen once per shape, at plan time (the backend's workspace_bytes()), by
 * timing the candidates (conv_search.c). The choice, its workspace size and the descriptors are
 * cached in a hash table keyed by the direction, the dims, the storage dtype, the precision and
 * the node's scratch cap, so a step only looks them up; and kept on disk between runs where the
 * backend has a folder for it (conv_disk.h): a shape found there is not searched again.
 *
 * Precision: fp32 runs with CUDNN_FMA_MATH (cuDNN's default math would let TF32 in on Ampere and
 * later); tf32 with tensor-op math on fp32 data; bf16 casts x and w (fp32 master weights) to
 * bf16 in the workspace as needed, convolves in bf16 with fp32 accumulation, and accumulates
 * the bf16 weight gradient into the fp32 gradient buffer. */
#include "conv_cudnn.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../runtime/env.h"
#include "conv_disk.h"
#include "conv_entry.h"
#include "cuda_check.h"
#include "cuda_kernels.h"

static const float mm_one = 1.0f, mm_zero = 0.0f;

/* ---- the algorithm cache ----
 * Entries are allocated one by one and never move: a chunk set holds several (mm_conv_chunks),
 * and a later lookup that grows the table must not leave the earlier ones dangling. */
struct mm_conv_cache {
    mm_conv_entry **slots; /* NULL: empty */
    int cap, count;        /* cap: a power of two */
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

static mm_conv_entry **mm_conv_cache_slot(mm_conv_cache *c, const mm_conv_key *k)
{
    uint64_t i = mm_conv_key_hash(k) & (uint64_t)(c->cap - 1);
    while (c->slots[i] && memcmp(&c->slots[i]->key, k, sizeof *k) != 0)
        i = (i + 1) & (uint64_t)(c->cap - 1);
    return &c->slots[i];
}

static void mm_conv_cache_grow(mm_conv_cache *c)
{
    mm_conv_cache bigger = {NULL, c->cap ? c->cap * 2 : 64, c->count};
    bigger.slots = mm_xcalloc((size_t)bigger.cap, sizeof *bigger.slots);
    for (int i = 0; i < c->cap; i++)
        if (c->slots[i]) *mm_conv_cache_slot(&bigger, &c->slots[i]->key) = c->slots[i];
    free(c->slots);
    *c = bigger;
}

mm_conv_cache *mm_conv_cache_new(void) { return mm_xcalloc(1, sizeof(mm_conv_cache)); }

void mm_conv_cache_free(mm_conv_cache *c)
{
    if (!c) return;
    for (int i = 0; i < c->cap; i++)
        if (c->slots[i]) {
            mm_conv_descs_free(&c->slots[i]->d);
            mm_conv_plan_free(&c->slots[i]->gplan);
            mm_conv_graph_free(&c->slots[i]->graph);
            free(c->slots[i]);
        }
    free(c->slots);
    free(c);
}

mm_conv_counts mm_conv_cache_counts(const mm_conv_cache *c)
{
    mm_conv_counts n = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int i = 0; i < c->cap; i++) {
        const mm_conv_entry *e = c->slots[i];
        if (!e || !e->ok) continue;
        if (e->key.dir == MM_CONV_FWD_BIAS_RELU) { /* a way to run a forward shape, not one */
            n.bias_relu += e->taken;
            continue;
        }
        n.turned += e->turned;
        if (e->gemm) n.gemm++;
        else if (e->wino_tiles) n.wino++, n.wino4 += e->wino_m == 4;
        else if (e->use_graph) n.graph++;
        else if (e->nchw) n.nchw++;
        else n.legacy++;
    }
    return n;
}

const char *mm_conv_dir_name(mm_conv_dir dir)
{
    return dir == MM_CONV_FWD             ? "forward"
           : dir == MM_CONV_BWD_DATA      ? "backward-data"
           : dir == MM_CONV_BWD_FILTER    ? "backward-filter"
                                          : "forward+bias+relu";
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

/* ---- running an entry ---- */
void mm_conv_legacy_run(mm_cuda_ctx *ctx, const mm_conv_entry *e, const mm_conv_dims *d,
                        const void *x, const void *w, const void *y, void *scratch, bool beta)
{
    mm_conv_dir dir = (mm_conv_dir)e->key.dir;
    const void *ox = x, *ow = w, *oy = y; /* where the output goes */
    mm_conv_nchw_bufs b;
    if (e->nchw) {
        b = mm_conv_nchw_carve(scratch, e->ws_bytes, d);
        mm_conv_nchw_in(dir, d, &b, x, w, y, ctx->stream);
        x = b.x, w = b.w, y = b.y;
    }
    const float *blend = beta && !e->nchw ? &mm_one : &mm_zero; /* the copy back adds */
    if (dir == MM_CONV_FWD)
        MM_CUDNN_CHECK(cudnnConvolutionForward(ctx->cudnn, &mm_one, e->d.x, x, e->d.w, w,
                                               e->d.conv, (cudnnConvolutionFwdAlgo_t)e->algo,
                                               scratch, e->ws_bytes, blend, e->d.y, (void *)y));
    else if (dir == MM_CONV_BWD_DATA)
        MM_CUDNN_CHECK(cudnnConvolutionBackwardData(
            ctx->cudnn, &mm_one, e->d.w, w, e->d.y, y, e->d.conv,
            (cudnnConvolutionBwdDataAlgo_t)e->algo, scratch, e->ws_bytes, blend, e->d.x,
            (void *)x));
    else
        MM_CUDNN_CHECK(cudnnConvolutionBackwardFilter(
            ctx->cudnn, &mm_one, e->d.x, x, e->d.y, y, e->d.conv,
            (cudnnConvolutionBwdFilterAlgo_t)e->algo, scratch, e->ws_bytes, blend, e->d.w,
            (void *)w));
    if (e->nchw)
        mm_conv_nchw_out(dir, d, &b, (float *)ox, (float *)ow, (float *)oy, beta, ctx->stream);
}

/* The choices kept on disk, opened at the first search (backend.h algo_cache_dir is set before
 * the first plan); none in deterministic mode, which times nothing. */
static mm_conv_disk *mm_conv_disk_of(mm_cuda_ctx *ctx)
{
    if (!ctx->disk_opened && !ctx->be->deterministic)
        ctx->disk = mm_conv_disk_open(ctx->be->algo_cache_dir, ctx->device);
    ctx->disk_opened = true;
    return ctx->disk;
}

/* Searches on one GPU take turns across its backends (replicas' threads, backends side by side
 * in one process): each times its candidates on a card no other search is busy on, and cuDNN's
 * searches never overlap there; other GPUs' searches go on meanwhile. */
#define MM_SEARCH_LOCKS 64
static pthread_mutex_t mm_search_locks[MM_SEARCH_LOCKS];
static pthread_once_t mm_search_locks_once = PTHREAD_ONCE_INIT;

static void mm_search_locks_init(void)
{
    for (int i = 0; i < MM_SEARCH_LOCKS; i++) pthread_mutex_init(&mm_search_locks[i], NULL);
}

/* Takes (take) or gives back ctx's device's turn; a search within a search keeps it. */
static void mm_search_turn(mm_cuda_ctx *ctx, bool take)
{
    pthread_once(&mm_search_locks_once, mm_search_locks_init);
    pthread_mutex_t *m = &mm_search_locks[ctx->device % MM_SEARCH_LOCKS];
    if (take && ctx->search_depth++ == 0) pthread_mutex_lock(m);
    if (!take && --ctx->search_depth == 0) pthread_mutex_unlock(m);
}

/* The cache entry of (dir, d, dtype), choosing its algorithm the first time (e->ok says whether
 * there is one). The choice is made outside any capture: the first lookup of a shape happens at
 * plan time. `step`: the entry runs on chunks of samples that start at multiples of `step`
 * elements (0: on whole tensors), so x and y may be aligned to less than 16 bytes. */
static mm_conv_entry *mm_conv_lookup(mm_cuda_ctx *ctx, mm_conv_dir dir, const mm_conv_dims *d,
                                     mm_dtype dtype, size_t cap, int64_t step)
{
    mm_conv_key k;
    memset(&k, 0, sizeof k);
    k.dir = dir;
    k.dtype = dtype;
    k.precision = ctx->precision;
    k.n = d->n, k.h = d->h, k.w = d->w, k.c = d->c, k.k = d->k, k.r = d->r, k.s = d->s;
    k.stride_h = d->stride_h, k.stride_w = d->stride_w, k.pad_h = d->pad_h, k.pad_w = d->pad_w;
    k.beta = (dir == MM_CONV_BWD_FILTER && dtype == MM_F32 && !d->overwrite) ||
             (dir != MM_CONV_BWD_FILTER && d->accumulate);
    k.ws_cap_kib = cap == SIZE_MAX ? -1 : (int)((cap >> 10) < INT_MAX ? cap >> 10 : INT_MAX);
    k.wino = mm_conv_wino_mode();
    int64_t low = step & -step; /* the largest power of two dividing step */
    k.align = step && low * (int64_t)mm_dtype_size(dtype) < 16 ? (int)(low * mm_dtype_size(dtype))
                                                               : 16;
    size_t limit = ctx->conv_ws_limit;
    if (k.ws_cap_kib >= 0 && ((size_t)k.ws_cap_kib << 10) < limit) limit = (size_t)k.ws_cap_kib << 10;

    mm_conv_cache *c = ctx->convs;
    if (c->cap == 0 || 2 * (c->count + 1) > c->cap) mm_conv_cache_grow(c);
    mm_conv_entry *e = *mm_conv_cache_slot(c, &k);
    if (e) return e;

    MM_ASSERT(!ctx->capturing); /* a new shape inside a capture: plan (workspace_bytes) first */
    mm_conv_entry fresh;
    memset(&fresh, 0, sizeof fresh);
    fresh.key = k;
    MM_CUDNN_CHECK(mm_conv_descs_init(&fresh.d, d, dtype, ctx->precision, false));
    if (dir == MM_CONV_FWD_BIAS_RELU)
        MM_CUDNN_CHECK(mm_conv_descs_add_bias_relu(&fresh.d, d, false));
    mm_search_turn(ctx, true);
    mm_conv_disk *disk = mm_conv_disk_of(ctx);
    if (!mm_conv_disk_restore(disk, ctx, &fresh, d, dtype, limit)) {
        fresh.ok = mm_conv_pick(ctx, &fresh, d, dtype, limit);
        mm_conv_disk_record(disk, ctx, &fresh);
    }
    mm_search_turn(ctx, false);
    e = mm_xmalloc(sizeof *e);
    *e = fresh;
    *mm_conv_cache_slot(c, &k) = e; /* found again: a search may look other shapes up */
    c->count++;
    return e;
}

/* The entry to run convolution d in direction `dir` with, and its storage dtype in *t: the
 * precision's dtype, or fp32 where cuDNN has no bf16 algorithm for the shape (the layer then runs
 * in fp32/TF32 with its operands cast in the workspace); under its node's workspace cap `cap`
 * (mm_cuda_node_cap, SIZE_MAX: none) when some algorithm fits it, else uncapped. With keep_t, *t
 * is given and kept (the last chunk of a node runs in its first chunk's type). `step` as for
 * mm_conv_lookup. */
static mm_conv_entry *mm_conv_choose(mm_cuda_ctx *ctx, size_t cap, const mm_conv_dims *d,
                                     mm_conv_dir dir, mm_dtype *t, bool keep_t, int64_t step)
{
    mm_conv_entry *e = NULL;
    for (int pass = cap == SIZE_MAX; pass < 2 && !(e && e->ok); pass++) {
        size_t c = pass == 0 ? cap : SIZE_MAX;
        if (!keep_t) *t = mm_cuda_conv_dtype(ctx);
        e = mm_conv_lookup(ctx, dir, d, *t, c, step);
        if (!e->ok && *t == MM_BF16 && !keep_t) {
            *t = MM_F32;
            e = mm_conv_lookup(ctx, dir, d, *t, c, step);
        }
    }
    if (!e->ok) mm_conv_no_algo(&e->key, *t);
    return e;
}

int64_t mm_conv_max_elems(void)
{
    int64_t n = INT32_MAX;
    mm_env_int("MM_CONV_CHUNK_ELEMS", 1, INT32_MAX, &n);
    return n;
}

int mm_conv_chunk_samples(const mm_conv_dims *d)
{
    int64_t per = (int64_t)d->h * d->w * d->c, per_y = (int64_t)d->oh * d->ow * d->k;
    if (per_y > per) per = per_y;
    int64_t nb = mm_conv_max_elems() / (per > 0 ? per : 1);
    MM_ASSERT(nb >= 1); /* one sample over the bound: the backend's check_graph refuses it */
    return nb < d->n ? (int)nb : d->n;
}

/* Whether a filter gradient's first writer writes it with beta 0 (MM_CONV_DW_OVERWRITE=0: it
 * adds into the zeroed gradient with beta 1 instead, as before 2026-11-26's tenth session; to
 * measure what beta 0 buys). */
static bool mm_conv_dw_overwrite(void)
{
    return mm_env_switch("MM_CONV_DW_OVERWRITE") != 0;
}

/* cuDNN takes tensors of fewer than 2^31 elements, so a convolution whose input or output is
 * bigger runs on chunks of samples, each under that bound (as PyTorch does); a node may also
 * run on smaller chunks to need less scratch (mm_cuda_node_chunk, conv_caps.c). `nb` samples a
 * chunk, the last one `n % nb` when they do not divide; an entry for each of the two shapes. */
typedef struct mm_conv_chunks {
    int n, nb;
    mm_conv_dims full, last;
    mm_conv_entry *e_full, *e_last; /* e_last: NULL when the chunks divide n */
    mm_dtype t;
    size_t scratch; /* the larger of the two entries', and the turned filter after it */
    /* a data gradient run as forward convolutions of dy with the filter turned around
     * (mm_conv_chunks_turn): full and last are then those forward convolutions, the entries
     * theirs, and the turned filter lies at turn_at in the scratch, turn_bytes of it */
    bool turn;
    size_t turn_at, turn_bytes;
} mm_conv_chunks;

static int mm_conv_n_chunks(const mm_conv_chunks *c) { return (c->n + c->nb - 1) / c->nb; }

/* A data gradient turned into a forward convolution must be at least this much faster (a
 * fraction, and MM_CONV_TURN_MS in all: the turn of the filter is a kernel of its own). */
#define MM_CONV_TURN_GAIN 0.02f
#define MM_CONV_TURN_MS 0.005f

/* MM_CONV_DGRAD_FWD: 0 never turns a data gradient into a forward convolution, 1 wherever it
 * applies (the tests); else (-1) where the search times it faster. */
static int mm_conv_turn_mode(void) { return mm_env_switch("MM_CONV_DGRAD_FWD"); }

/* Turns the data-gradient chunk set c (chosen under `cap`, chunks at multiples of `step`
 * elements) into forward convolutions (dims.h mm_conv_turned; the filter turned by flip.cu)
 * where cuDNN's forward algorithms, searched for the turned shapes under the same cap less the
 * turned filter, are faster: on the H200 in fp32 VGG16's 1152x896 64-channel layer took 4.2 ms
 * forward and 6.9 ms backward data, the same work.
 * Deterministic backends time nothing and keep the data gradient. */
static void mm_conv_chunks_turn(mm_conv_chunks *c, mm_cuda_ctx *ctx, size_t cap, int64_t step)
{
    int mode = mm_conv_turn_mode();
    if (mode == 0 || !mm_conv_turn_applies(&c->full) || (mode < 0 && ctx->be->deterministic))
        return;
    mm_conv_entry *dgrad = c->e_full;
    dgrad->turned = 0;
    size_t wb = (size_t)c->full.k * c->full.r * c->full.s * c->full.c * mm_dtype_size(c->t);
    size_t turn_bytes = mm_cuda_round256(wb);
    /* under the cap less the turned filter and the alignment before it */
    if (c->e_full->key.ws_cap_kib >= 0 && cap < turn_bytes + 256) return;
    size_t fcap = c->e_full->key.ws_cap_kib < 0 ? SIZE_MAX : cap - turn_bytes - 256;
    mm_conv_dims ff = mm_conv_turned(&c->full), fl = ff;
    mm_conv_entry *f_full = mm_conv_lookup(ctx, MM_CONV_FWD, &ff, c->t, fcap, step), *f_last = NULL;
    if (!f_full->ok) return;
    if (c->e_last) {
        fl = mm_conv_turned(&c->last);
        f_last = mm_conv_lookup(ctx, MM_CONV_FWD, &fl, c->t, fcap, step);
        if (!f_last->ok) return;
    }
    if (mode < 0) {
        int full = mm_conv_n_chunks(c) - (c->e_last ? 1 : 0);
        const mm_conv_entry *was[2] = {c->e_full, c->e_last}, *now[2] = {f_full, f_last};
        float t_was = 0, t_now = 0;
        for (int i = 0; i < 2 && was[i]; i++) {
            if (was[i]->time_ms < 0 || now[i]->time_ms < 0) return;
            t_was += (i == 0 ? (float)full : 1.0f) * was[i]->time_ms;
            t_now += (i == 0 ? (float)full : 1.0f) * now[i]->time_ms;
        }
        bool faster = t_now * (1.0f + MM_CONV_TURN_GAIN) + MM_CONV_TURN_MS < t_was;
        if (!dgrad->turn_said) mm_conv_say_turn(dgrad, t_was, t_now, faster);
        dgrad->turn_said = 1;
        if (!faster) return;
    }
    dgrad->turned = 1;
    c->turn = true;
    c->full = ff, c->e_full = f_full;
    if (f_last) c->last = fl, c->e_last = f_last;
    size_t at = mm_conv_scratch(f_full, &ff), at_last = f_last ? mm_conv_scratch(f_last, &fl) : 0;
    c->turn_at = mm_cuda_round256(at > at_last ? at : at_last);
    c->turn_bytes = turn_bytes;
    c->scratch = c->turn_at + turn_bytes;
}

static void mm_conv_chunks_init(mm_conv_chunks *c, mm_cuda_ctx *ctx, const mm_node *node,
                                mm_conv_dir dir)
{
    const mm_conv_dims *d = &node->p.conv;
    int nb = mm_conv_chunk_samples(d), smaller = mm_cuda_node_chunk(ctx, node);
    c->n = d->n;
    c->nb = smaller > 0 && smaller < nb ? smaller : nb;
    c->full = *d;
    c->full.n = c->nb;
    /* a filter gradient's first writer writes it when it runs whole; its chunks add into it,
     * zeroed first (mm_cuda_op_conv2d_bwd_filter) */
    c->full.overwrite = d->overwrite && c->nb >= d->n && mm_conv_dw_overwrite();
    /* the chunks start at multiples of nb samples of x and of y */
    int64_t step = 0;
    if (c->nb < d->n) {
        int64_t sx = c->nb * (int64_t)d->h * d->w * d->c;
        int64_t sy = c->nb * (int64_t)d->oh * d->ow * d->k;
        step = (sx & -sx) < (sy & -sy) ? sx : sy;
    }
    size_t cap = mm_cuda_node_cap(ctx, node); /* looked up once: this runs every step */
    c->e_full = mm_conv_choose(ctx, cap, &c->full, dir, &c->t, false, step);
    c->scratch = mm_conv_scratch(c->e_full, &c->full);
    c->e_last = NULL;
    if (d->n % c->nb) {
        c->last = c->full;
        c->last.n = d->n % c->nb;
        c->e_last = mm_conv_choose(ctx, cap, &c->last, dir, &c->t, true, step);
        size_t s = mm_conv_scratch(c->e_last, &c->last);
        if (s > c->scratch) c->scratch = s;
    }
    c->turn = false;
    c->turn_at = c->turn_bytes = 0;
    if (dir == MM_CONV_BWD_DATA) mm_conv_chunks_turn(c, ctx, cap, step);
}

/* Chunk k: its dims and entry, and the sample it starts at. */
static const mm_conv_dims *mm_conv_chunk(const mm_conv_chunks *c, int k,
                                         const mm_conv_entry **e, int *n0)
{
    *n0 = k * c->nb;
    bool last = c->e_last && *n0 + c->nb > c->n;
    *e = last ? c->e_last : c->e_full;
    return last ? &c->last : &c->full;
}

static mm_conv_dir mm_conv_dir_of(const mm_node *node)
{
    return node->op == MM_OP_CONV2D            ? MM_CONV_FWD
           : node->op == MM_OP_CONV2D_BWD_DATA ? MM_CONV_BWD_DATA
                                               : MM_CONV_BWD_FILTER;
}

/* Node's time over its chunks: its algorithms' (under = SIZE_MAX), or the fastest candidates
 * of their searches within `under` bytes of scratch; -1 when one is unknown. */
static float mm_conv_node_time(mm_cuda_ctx *ctx, const mm_node *node, size_t under)
{
    mm_conv_chunks ch;
    mm_conv_chunks_init(&ch, ctx, node, mm_conv_dir_of(node));
    int full = mm_conv_n_chunks(&ch) - (ch.e_last ? 1 : 0);
    const mm_conv_entry *es[2] = {ch.e_full, ch.e_last};
    float ms[2] = {0, 0};
    /* a turned data gradient's scratch holds the turned filter besides its entries' */
    size_t room = under;
    if (under != SIZE_MAX) room = under > ch.turn_bytes ? under - ch.turn_bytes : 0;
    for (int i = 0; i < 2 && es[i]; i++) {
        ms[i] = under == SIZE_MAX ? es[i]->time_ms : mm_conv_best_under(es[i], room);
        if (ms[i] < 0) return -1;
    }
    return (float)full * ms[0] + ms[1];
}

float mm_cuda_conv_node_ms(mm_cuda_ctx *ctx, const mm_node *node)
{
    return mm_conv_node_time(ctx, node, SIZE_MAX);
}

float mm_cuda_conv_node_ms_within(mm_cuda_ctx *ctx, const mm_node *node, size_t bytes)
{
    return mm_conv_node_time(ctx, node, bytes);
}

size_t mm_cuda_conv_node_scratch(mm_cuda_ctx *ctx, const mm_node *node)
{
    mm_conv_chunks ch;
    mm_conv_chunks_init(&ch, ctx, node, mm_conv_dir_of(node));
    return ch.scratch;
}

void mm_conv_run(mm_cuda_ctx *ctx, const mm_conv_entry *e, const mm_conv_dims *d, mm_dtype t,
                 const void *x, const void *w, const void *y, void *scratch, bool beta)
{
    mm_conv_dir dir = (mm_conv_dir)e->key.dir;
    if (e->gemm) {
        if (dir == MM_CONV_FWD) mm_conv_gemm_forward(ctx, (void *)y, x, w, t, d);
        else if (dir == MM_CONV_BWD_DATA) mm_conv_gemm_bwd_data(ctx, (void *)x, y, w, t, d);
        else mm_conv_gemm_bwd_filter(ctx, (float *)w, y, x, t, d);
    } else if (e->wino_tiles && dir == MM_CONV_FWD) {
        mm_conv_wino_forward(ctx, d, e->wino_m, e->wino_tiles, x, w, (float *)y, scratch, beta,
                             NULL, false);
    } else if (e->wino_tiles) {
        MM_ASSERT(dir == MM_CONV_BWD_FILTER);
        mm_conv_wino_bwd_filter(ctx, d, e->wino_m, e->wino_tiles, x, y, (float *)w, scratch,
                                beta);
    } else if (e->use_graph) {
        MM_CUDNN_CHECK(mm_conv_plan_run(ctx->cudnn, &e->gplan, x, w, y, scratch));
    } else {
        mm_conv_legacy_run(ctx, e, d, x, w, y, scratch, beta);
    }
}

/* ---- the ops ---- */

/* The byte offset of sample n0 in an NHWC tensor of per-sample size h*w*c, type t. */
static size_t mm_sample_offset(int n0, int h, int w, int c, mm_dtype t)
{
    return (size_t)n0 * h * w * c * mm_dtype_size(t);
}

/* Whether every chunk of c runs as Winograd (which can add a bias and a ReLU as it writes). */
static bool mm_conv_chunks_wino(const mm_conv_chunks *c)
{
    return c->e_full->wino_tiles && (!c->e_last || c->e_last->wino_tiles);
}

/* A forward convolution with its bias and the ReLU after it runs as cuDNN's one call
 * (cudnnConvolutionBiasActivationForward, the entry of MM_CONV_FWD_BIAS_RELU) where that is at
 * least MM_CONV_FUSED_GAIN faster than the plain convolution and our bias-and-ReLU pass, in no
 * more scratch; fp32 data, the whole batch in one chunk. MM_CONV_FUSED=0: never; =1: wherever
 * cuDNN runs it (the tests). */
#define MM_CONV_FUSED_GAIN 0.01f

static int mm_conv_fused_mode(void) { return mm_env_switch("MM_CONV_FUSED"); }

/* The fused entry to run node (a biased convolution whose ReLU is applied with it) with, or
 * NULL: the chunk set ch. Under the cap ch's entry was chosen with; deterministic backends time
 * nothing and run plain. */
static mm_conv_entry *mm_conv_fused_entry(mm_cuda_ctx *ctx, const mm_node *node,
                                          const mm_conv_chunks *ch)
{
    int mode = mm_conv_fused_mode();
    if (mode == 0 || ch->t != MM_F32 || ch->nb < ch->n || (mode < 0 && ctx->be->deterministic))
        return NULL;
    size_t cap = ch->e_full->key.ws_cap_kib < 0 ? SIZE_MAX : mm_cuda_node_cap(ctx, node);
    mm_conv_entry *fe = mm_conv_lookup(ctx, MM_CONV_FWD_BIAS_RELU, &ch->full, MM_F32, cap, 0);
    /* faster, in no more scratch than the plain choice's (which the planner weighed) or the
     * cap (the room the planner gave the node) */
    size_t room = cap != SIZE_MAX && cap > ch->scratch ? cap : ch->scratch;
    /* Winograd adds the bias and the ReLU as it writes: no pass to save */
    float pass = mm_conv_chunks_wino(ch) ? 0.0f : fe->pass_ms;
    bool take = fe->ok && (mode == 1 || (ch->e_full->time_ms >= 0 && fe->pass_ms >= 0 &&
                                         fe->ws_bytes <= room &&
                                         fe->time_ms * (1.0f + MM_CONV_FUSED_GAIN) <
                                             ch->e_full->time_ms + pass));
    fe->taken = take;
    return take ? fe : NULL;
}

void mm_cuda_op_conv2d(mm_cuda_ctx *ctx, const mm_node *node, const mm_tensor *ins,
                       const mm_tensor *outs, mm_cuda_ws *ws, int relu)
{
    const mm_conv_dims *d = &node->p.conv;
    mm_conv_chunks ch;
    mm_conv_chunks_init(&ch, ctx, node, MM_CONV_FWD);
    mm_dtype t = ch.t;
    const char *x = mm_cuda_stage_input(ctx, ws, &ins[0], t);
    const void *w = mm_cuda_stage_input(ctx, ws, &ins[1], t);
    char *y = mm_cuda_stage_output(ws, &outs[0], t);
    MM_ASSERT(!relu || (node->n_in > 2 && ins[2].data)); /* fused only with a bias pass */
    mm_conv_entry *fe = relu ? mm_conv_fused_entry(ctx, node, &ch) : NULL;
    void *cws = mm_cuda_ws_take(ws, fe ? fe->ws_bytes : ch.scratch);
    if (ws->measure) return;
    if (fe) {
        MM_CUDNN_CHECK(cudnnConvolutionBiasActivationForward(
            ctx->cudnn, &mm_one, fe->d.x, x, fe->d.w, w, fe->d.conv,
            (cudnnConvolutionFwdAlgo_t)fe->algo, cws, fe->ws_bytes, &mm_zero, fe->d.y, y,
            fe->d.bias, ins[2].data, fe->d.relu, fe->d.y, y));
        mm_cuda_finish_output(ctx, &outs[0], y, t);
        return;
    }
    /* Winograd adds the bias (and the ReLU) as it writes the output; others run a pass after */
    const float *bias = node->n_in > 2 ? (const float *)ins[2].data : NULL;
    bool epilogue = bias && mm_conv_chunks_wino(&ch);
    for (int k = 0; k < mm_conv_n_chunks(&ch); k++) {
        const mm_conv_entry *e;
        int n0;
        const mm_conv_dims *dc = mm_conv_chunk(&ch, k, &e, &n0);
        const char *xc = x + mm_sample_offset(n0, d->h, d->w, d->c, t);
        char *yc = y + mm_sample_offset(n0, d->oh, d->ow, d->k, t);
        if (epilogue)
            mm_conv_wino_forward(ctx, dc, e->wino_m, e->wino_tiles, (const float *)xc, w,
                                 (float *)yc, cws, false, bias, relu);
        else
            mm_conv_run(ctx, e, dc, t, xc, w, yc, cws, false);
    }
    if (bias && !epilogue)
        mm_cuda_bias_add(y, t, bias, (int64_t)d->n * d->oh * d->ow, d->k, relu, ctx->stream);
    mm_cuda_finish_output(ctx, &outs[0], y, t);
}

void mm_cuda_op_conv2d_bwd_data(mm_cuda_ctx *ctx, const mm_node *node, const mm_tensor *ins,
                                const mm_tensor *outs, mm_cuda_ws *ws)
{
    const mm_conv_dims *d = &node->p.conv;
    mm_conv_chunks ch;
    mm_conv_chunks_init(&ch, ctx, node, MM_CONV_BWD_DATA);
    mm_dtype t = ch.t;
    const char *dy = mm_cuda_stage_input(ctx, ws, &ins[0], t);
    const void *w = mm_cuda_stage_input(ctx, ws, &ins[1], t);
    char *dx = mm_cuda_stage_output(ws, &outs[0], t);
    void *cws = mm_cuda_ws_take(ws, ch.scratch);
    if (ws->measure) return;
    if (d->accumulate) {
        /* the sum starts from the earlier gradient: in place (the planner's usual case), or
         * copied / cast into the output first */
        const mm_tensor *acc = &ins[2];
        int64_t n = (int64_t)d->n * d->h * d->w * d->c;
        if (acc->dtype != t)
            mm_cuda_cast(dx, t, acc->data, acc->dtype, n, ctx->stream);
        else if (acc->data != dx)
            MM_CUDA_CHECK(cudaMemcpyAsync(dx, acc->data, (size_t)n * mm_dtype_size(t),
                                          cudaMemcpyDeviceToDevice, ctx->stream));
    }
    void *wt = (char *)cws + ch.turn_at; /* the turned filter, when turned */
    if (ch.turn) mm_cuda_filter_turn(wt, w, t, d->k, d->r, d->s, d->c, ctx->stream);
    for (int k = 0; k < mm_conv_n_chunks(&ch); k++) {
        const mm_conv_entry *e;
        int n0;
        const mm_conv_dims *dc = mm_conv_chunk(&ch, k, &e, &n0);
        char *dxc = dx + mm_sample_offset(n0, d->h, d->w, d->c, t);
        const char *dyc = dy + mm_sample_offset(n0, d->oh, d->ow, d->k, t);
        if (ch.turn) /* y = conv(x, w) with x = dy, y = dx */
            mm_conv_run(ctx, e, dc, t, dyc, wt, dxc, cws, d->accumulate);
        else
            mm_conv_run(ctx, e, dc, t, dxc, w, dyc, cws, d->accumulate);
    }
    mm_cuda_finish_output(ctx, &outs[0], dx, t);
}

void mm_cuda_op_conv2d_bwd_filter(mm_cuda_ctx *ctx, const mm_node *node, const mm_tensor *ins,
                                  const mm_tensor *outs, mm_cuda_ws *ws)
{
    const mm_conv_dims *d = &node->p.conv;
    mm_conv_chunks ch;
    mm_conv_chunks_init(&ch, ctx, node, MM_CONV_BWD_FILTER);
    mm_dtype t = ch.t;
    MM_ASSERT(outs[0].dtype == MM_F32);
    const char *dy = mm_cuda_stage_input(ctx, ws, &ins[0], t);
    const char *x = mm_cuda_stage_input(ctx, ws, &ins[1], t);
    int64_t wn = (int64_t)d->k * d->r * d->s * d->c;
    /* fp32: cuDNN accumulates into the gradient itself (beta = 1), chunk after chunk, or writes
     * it (beta = 0) where the node is its first writer and runs whole. bf16: it writes a bf16
     * gradient into the workspace, which is then added to (or cast into) the fp32 gradient. The
     * GEMM writes the fp32 gradient with the fp32 beta in every precision. */
    bool staged = t != MM_F32 && (!ch.e_full->gemm || (ch.e_last && !ch.e_last->gemm));
    void *dw_lo = staged ? mm_cuda_ws_take(ws, (size_t)wn * sizeof(uint16_t)) : NULL;
    void *cws = mm_cuda_ws_take(ws, ch.scratch);
    if (ws->measure) return;
    if (d->overwrite && !ch.full.overwrite) /* chunks of a first writer add into zeros */
        MM_CUDA_CHECK(cudaMemsetAsync(outs[0].data, 0, (size_t)wn * sizeof(float), ctx->stream));
    for (int k = 0; k < mm_conv_n_chunks(&ch); k++) {
        const mm_conv_entry *e;
        int n0;
        const mm_conv_dims *dc = mm_conv_chunk(&ch, k, &e, &n0);
        const void *xc = x + mm_sample_offset(n0, d->h, d->w, d->c, t);
        const void *dyc = dy + mm_sample_offset(n0, d->oh, d->ow, d->k, t);
        if (t == MM_F32 || e->gemm) {
            mm_conv_run(ctx, e, dc, t, xc, outs[0].data, dyc, cws, !dc->overwrite);
        } else { /* the graph overwrites a staged gradient, as the legacy call with beta 0 */
            mm_conv_run(ctx, e, dc, t, xc, dw_lo, dyc, cws, false);
            if (dc->overwrite) mm_cuda_cast(outs[0].data, MM_F32, dw_lo, t, wn, ctx->stream);
            else mm_cuda_accumulate((float *)outs[0].data, dw_lo, t, wn, ctx->stream);
        }
    }
}
