/* Choosing a convolution's algorithm (conv_entry.h mm_conv_pick), once per shape at plan time:
 * timing them and taking the fastest whose workspace fits under the limit (ctx->conv_ws_limit,
 * MM_CUDNN_WS_LIMIT_MB, default 1024, or the node's scratch cap), or a nearly as fast one that
 * needs far less (below, MM_CONV_WS_SLACK): cudnnFind*AlgorithmEx on zero-filled operands and a
 * workspace of the limit that this file allocates for the search and frees right after, so every
 * algorithm that fits is timed (the plain Find allocates its own scratch and silently skips what
 * it cannot get; it is the fallback when the probe buffers cannot be had, and cuDNN's heuristics
 * (Get*_v7) the last resort). For 1x1 stride-1 shapes the cuBLAS GEMM is then timed on the same
 * operands against cuDNN's pick, and the faster kept (MM_CONV_GEMM=0/1 forces it off/on).
 * MM_CUDNN_VERBOSE=1 prints every candidate with its time, workspace and math type, and each
 * choice, to stderr.
 *
 * The legacy API only reaches the engines that map onto its 8 / 6 / 7 algorithm numbers; PyTorch
 * runs cuDNN 9 through its graph API (cudnn-frontend) and times the engine configurations of the
 * heuristics and the fallback list. So the plans of the graph API (conv_graph.c: heuristics mode
 * A, then the fallback list) are timed too, on the same probe with the same timer as the legacy
 * choice, and the fastest of all is kept (MM_CUDNN_GRAPH=0 / 1 leaves them out / takes only
 * them where one runs).
 *
 * fp32 data (the fp32 and tf32 precisions) also times cuDNN's legacy algorithms on NCHW copies
 * of the operands, the transposes included (conv_nchw.h: NCHW has fp32 Winograd and FFT-tiling
 * algorithms that NHWC lacks), and keeps them where the whole is faster (MM_CONV_NCHW=0 / 1:
 * never / always where it applies). 3x3 stride-1 forward convolutions of fp32 data (and so the
 * data gradients conv_cudnn.c runs as such) and their filter gradients also time our Winograd
 * F(2x2, 3x3) and F(4x4, 3x3) (conv_wino.h) at a few chunk sizes, kept where faster
 * (MM_CONV_WINOGRAD).
 *
 * With the backend deterministic (backend.h) nothing is timed, so the choice does not move with
 * timing noise between runs: the first graph plan in cuDNN's order (heuristics mode A, then the
 * fallback list) without the nondeterministic note that runs on the probe, else the first legacy
 * algorithm of cuDNN's heuristics (Get*_v7) it reports deterministic; the GEMM for every 1x1
 * stride-1 shape; no NCHW copies.
 *
 * A forward convolution with its bias and ReLU (MM_CONV_FWD_BIAS_RELU) is a search of its own:
 * every legacy algorithm through cudnnConvolutionBiasActivationForward, beside the bias pass it
 * would save (mm_conv_pick_fused); conv_cudnn.c weighs it against the plain choice. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../runtime/env.h"
#include "conv_entry.h"
#include "cuda_check.h"
#include "cuda_kernels.h"

/* ---- choosing an algorithm ---- */

/* One timed (or ranked) candidate, whichever direction it came from. */
typedef struct mm_algo_perf {
    int algo;
    cudnnStatus_t status;
    float time; /* ms; -1 for cuDNN's heuristic ranking, which times nothing */
    size_t memory;
    cudnnMathType_t math;
    bool deterministic; /* cuDNN reports the same bits every run */
} mm_algo_perf;

#define MM_ALGO_MAX 16
#define MM_CONV_COPY_PERF(out, in, got)                                                    \
    do {                                                                                   \
        for (int i_ = 0; i_ < (got) && i_ < MM_ALGO_MAX; i_++) {                           \
            (out)[i_].algo = (int)(in)[i_].algo;                                           \
            (out)[i_].status = (in)[i_].status;                                            \
            (out)[i_].time = (in)[i_].time;                                                \
            (out)[i_].memory = (in)[i_].memory;                                            \
            (out)[i_].math = (in)[i_].mathType;                                            \
            (out)[i_].deterministic = (in)[i_].determinism == CUDNN_DETERMINISTIC;         \
        }                                                                                  \
    } while (0)

static const char *mm_conv_algo_name(mm_conv_dir dir, int algo)
{
    static const char *fwd[] = {"implicit_gemm", "implicit_precomp_gemm", "gemm", "direct",
                                "fft", "fft_tiling", "winograd", "winograd_nonfused"};
    static const char *bwd_data[] = {"algo_0", "algo_1", "fft", "fft_tiling", "winograd",
                                     "winograd_nonfused"};
    static const char *bwd_filter[] = {"algo_0", "algo_1", "fft", "algo_3", "winograd",
                                       "winograd_nonfused", "fft_tiling"};
    if (algo < 0) return "?";
    if (dir == MM_CONV_FWD || dir == MM_CONV_FWD_BIAS_RELU) return algo < 8 ? fwd[algo] : "?";
    if (dir == MM_CONV_BWD_DATA) return algo < 6 ? bwd_data[algo] : "?";
    return algo < 7 ? bwd_filter[algo] : "?";
}

static const char *mm_math_name(cudnnMathType_t m)
{
    return m == CUDNN_FMA_MATH                              ? "fma"
           : m == CUDNN_TENSOR_OP_MATH                      ? "tensor_op"
           : m == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION     ? "tensor_op_convert"
                                                            : "default";
}

/* MM_CUDNN_VERBOSE=1: every candidate of every search and each choice go to stderr, so a GPU run
 * shows what cuDNN offered for each shape and what it cost. */
static bool mm_conv_verbose(void)
{
    return mm_env_flag("MM_CUDNN_VERBOSE");
}

/* The backend's deterministic mode (backend.h): no timing, deterministic algorithms only. */
static bool mm_conv_deterministic(const mm_cuda_ctx *ctx) { return ctx->be->deterministic; }

static void mm_conv_describe(char *buf, size_t n, const mm_conv_key *k)
{
    char cap[32] = "";
    if (k->ws_cap_kib >= 0) snprintf(cap, sizeof cap, " scratch cap %d KiB", k->ws_cap_kib);
    snprintf(buf, n, "%s x[%d,%d,%d,%d] w[%d,%d,%d,%d] stride %d pad %d %s %s%s%s",
             mm_conv_dir_name((mm_conv_dir)k->dir), k->n, k->h, k->w, k->c, k->k, k->r, k->s,
             k->c, k->stride_h, k->pad_h, mm_dtype_name((mm_dtype)k->dtype),
             mm_precision_name((mm_precision)k->precision), k->beta ? " beta 1" : "", cap);
}

/* Takes the first usable candidate of a list ordered best first: it ran and fits under `limit`,
 * in fp32 it is FMA math (a time taken with another math type does not hold for the FMA math
 * the descriptor runs with), and in deterministic mode cuDNN reports it deterministic. Sets
 * e->algo, e->ws_bytes and, in tf32 and bf16, the math type the algorithm was timed with. */
/* The workspace of a convolution counts in the step's peak memory (the largest one does, as
 * the backend's one workspace). So where cuDNN's fastest algorithm asks for more than
 * MM_CONV_WS_BIG, a timed candidate at most MM_CONV_WS_SLACK slower that needs less is taken
 * instead: the few big workspaces (FFT, some implicit-precomputed GEMMs on VGG's full-size
 * layers) shrink for a few percent of one convolution's time. */
#define MM_CONV_WS_BIG ((size_t)64 << 20)
#define MM_CONV_WS_SLACK 0.03f

/* Remembers a timed candidate of e (times below 0 were not taken). */
static void mm_conv_note(mm_conv_entry *e, float ms, size_t scratch)
{
    if (ms >= 0 && e->n_cands < MM_CONV_CANDS)
        e->cands[e->n_cands++] = (struct mm_conv_cand){ms, scratch};
}

float mm_conv_best_under(const mm_conv_entry *e, size_t cap)
{
    float best = -1;
    for (int i = 0; i < e->n_cands; i++)
        if (e->cands[i].scratch <= cap && (best < 0 || e->cands[i].ms < best))
            best = e->cands[i].ms;
    return best;
}

static bool mm_conv_take(mm_cuda_ctx *ctx, mm_conv_entry *e, const mm_algo_perf *perf, int got,
                         size_t limit, bool strict, const char *how)
{
    if (got > MM_ALGO_MAX) got = MM_ALGO_MAX;
    bool ok[MM_ALGO_MAX];
    int fastest = -1, pick = -1;
    for (int i = 0; i < got; i++) {
        bool fp32_fma = !(strict && ctx->precision == MM_PRECISION_FP32 &&
                          perf[i].math != CUDNN_FMA_MATH);
        ok[i] = perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= limit && fp32_fma &&
                (perf[i].deterministic || !mm_conv_deterministic(ctx));
        if (ok[i] && fastest < 0) fastest = pick = i; /* cuDNN lists them fastest first */
        if (ok[i]) mm_conv_note(e, perf[i].time, perf[i].memory);
    }
    if (fastest >= 0 && strict && perf[fastest].memory > MM_CONV_WS_BIG)
        for (int i = fastest + 1; i < got; i++)
            if (ok[i] && perf[i].time <= perf[fastest].time * (1.0f + MM_CONV_WS_SLACK) &&
                perf[i].memory < perf[pick].memory)
                pick = i;
    if (mm_conv_verbose()) {
        char what[160];
        mm_conv_describe(what, sizeof what, &e->key);
        for (int i = 0; i < got; i++)
            fprintf(stderr, "mammo: cudnn %s %s: %-22s %9.3f ms ws %8.1f MiB %-17s %s%s\n", how,
                    what, mm_conv_algo_name((mm_conv_dir)e->key.dir, perf[i].algo),
                    (double)perf[i].time, perf[i].memory / 1048576.0, mm_math_name(perf[i].math),
                    perf[i].status == CUDNN_STATUS_SUCCESS ? "ok"
                                                           : cudnnGetErrorString(perf[i].status),
                    i == pick ? "  <- taken" : ok[i] ? "" : "  (not usable)");
    }
    if (pick < 0) return false;
    e->algo = perf[pick].algo;
    e->math = (int)perf[pick].math;
    e->ws_bytes = perf[pick].memory;
    e->time_ms = perf[pick].time;
    if (ctx->precision != MM_PRECISION_FP32)
        MM_CUDNN_CHECK(cudnnSetConvolutionMathType(e->d.conv, perf[pick].math));
    return true;
}

/* Plan-time operands for timing: x, w (room for an fp32 weight gradient), y and a workspace of
 * up to the limit, zero-filled, allocated outside the backend's accounting and freed right after
 * the search (the step never sees them). x and y are aligned as the entry's operands will be
 * (key.align: chunks of samples may start off 16 bytes), so what cannot run there fails here. */
typedef struct mm_conv_probe {
    void *x, *w, *y, *ws;
    void *x_mem, *y_mem; /* the allocations x and y lie in */
    size_t ws_bytes;
} mm_conv_probe;

static void mm_conv_probe_free(mm_conv_probe *p)
{
    if (p->x_mem) cudaFree(p->x_mem);
    if (p->w) cudaFree(p->w);
    if (p->y_mem) cudaFree(p->y_mem);
    if (p->ws) cudaFree(p->ws);
    cudaGetLastError();
    memset(p, 0, sizeof *p);
}

static bool mm_conv_probe_init(mm_conv_probe *p, const mm_conv_dims *d, mm_dtype t, size_t limit,
                               int align)
{
    memset(p, 0, sizeof *p);
    size_t es = mm_dtype_size(t), off = align < 16 ? (size_t)align : 0;
    size_t xb = (size_t)d->n * d->h * d->w * d->c * es;
    size_t wb = (size_t)d->k * d->r * d->s * d->c * sizeof(float);
    size_t yb = (size_t)d->n * d->oh * d->ow * d->k * es;
    if (cudaMalloc(&p->x_mem, xb + off) != cudaSuccess || cudaMalloc(&p->w, wb) != cudaSuccess ||
        cudaMalloc(&p->y_mem, yb + off) != cudaSuccess) {
        mm_conv_probe_free(p);
        return false;
    }
    p->x = (char *)p->x_mem + off;
    p->y = (char *)p->y_mem + off;
    /* The largest workspace the device gives, up to the limit (a smaller one only hides the
     * algorithms that need more): the limit, then halves of it down to 16 MiB. */
    for (size_t b = limit; b > 0; b = b / 2 >= ((size_t)16 << 20) ? b / 2 : 0) {
        if (cudaMalloc(&p->ws, b) == cudaSuccess) {
            p->ws_bytes = b;
            break;
        }
        p->ws = NULL;
        cudaGetLastError();
    }
    if (cudaMemsetAsync(p->x, 0, xb, 0) != cudaSuccess ||
        cudaMemsetAsync(p->w, 0, wb, 0) != cudaSuccess ||
        cudaMemsetAsync(p->y, 0, yb, 0) != cudaSuccess || cudaDeviceSynchronize() != cudaSuccess) {
        mm_conv_probe_free(p);
        return false;
    }
    return true;
}

/* The typed cuDNN calls of one direction, each writing its list as mm_algo_perf: find runs
 * cudnnFind*AlgorithmEx over the probe (every algorithm whose workspace fits in the probe's
 * workspace is timed), or without a probe the plain Find (cuDNN allocates its own scratch, and
 * skips what it cannot allocate); heuristic takes cuDNN's order (Get*_v7), timing nothing. */
typedef struct mm_legacy_calls {
    cudnnStatus_t (*find)(mm_cuda_ctx *ctx, const mm_conv_entry *e, const mm_conv_probe *p,
                          mm_algo_perf *ap, int *got);
    cudnnStatus_t (*heuristic)(mm_cuda_ctx *ctx, const mm_conv_entry *e, mm_algo_perf *ap,
                               int *got);
} mm_legacy_calls;

static cudnnStatus_t mm_fwd_find(mm_cuda_ctx *ctx, const mm_conv_entry *e,
                                 const mm_conv_probe *p, mm_algo_perf *ap, int *got)
{
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    cudnnStatus_t s =
        p ? cudnnFindConvolutionForwardAlgorithmEx(
                ctx->cudnn, e->d.x, p->x, e->d.w, p->w, e->d.conv, e->d.y, p->y,
                CUDNN_CONVOLUTION_FWD_ALGO_COUNT, got, perf, p->ws, p->ws_bytes)
          : cudnnFindConvolutionForwardAlgorithm(ctx->cudnn, e->d.x, e->d.w, e->d.conv, e->d.y,
                                                 CUDNN_CONVOLUTION_FWD_ALGO_COUNT, got, perf);
    if (s == CUDNN_STATUS_SUCCESS) MM_CONV_COPY_PERF(ap, perf, *got);
    return s;
}

static cudnnStatus_t mm_fwd_heuristic(mm_cuda_ctx *ctx, const mm_conv_entry *e, mm_algo_perf *ap,
                                      int *got)
{
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    cudnnStatus_t s = cudnnGetConvolutionForwardAlgorithm_v7(
        ctx->cudnn, e->d.x, e->d.w, e->d.conv, e->d.y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, got, perf);
    if (s == CUDNN_STATUS_SUCCESS) MM_CONV_COPY_PERF(ap, perf, *got);
    return s;
}

static cudnnStatus_t mm_bwd_data_find(mm_cuda_ctx *ctx, const mm_conv_entry *e,
                                      const mm_conv_probe *p, mm_algo_perf *ap, int *got)
{
    cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    cudnnStatus_t s =
        p ? cudnnFindConvolutionBackwardDataAlgorithmEx(
                ctx->cudnn, e->d.w, p->w, e->d.y, p->y, e->d.conv, e->d.x, p->x,
                CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, got, perf, p->ws, p->ws_bytes)
          : cudnnFindConvolutionBackwardDataAlgorithm(ctx->cudnn, e->d.w, e->d.y, e->d.conv,
                                                      e->d.x,
                                                      CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, got,
                                                      perf);
    if (s == CUDNN_STATUS_SUCCESS) MM_CONV_COPY_PERF(ap, perf, *got);
    return s;
}

static cudnnStatus_t mm_bwd_data_heuristic(mm_cuda_ctx *ctx, const mm_conv_entry *e,
                                           mm_algo_perf *ap, int *got)
{
    cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    cudnnStatus_t s = cudnnGetConvolutionBackwardDataAlgorithm_v7(
        ctx->cudnn, e->d.w, e->d.y, e->d.conv, e->d.x, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, got,
        perf);
    if (s == CUDNN_STATUS_SUCCESS) MM_CONV_COPY_PERF(ap, perf, *got);
    return s;
}

static cudnnStatus_t mm_bwd_filter_find(mm_cuda_ctx *ctx, const mm_conv_entry *e,
                                        const mm_conv_probe *p, mm_algo_perf *ap, int *got)
{
    cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    cudnnStatus_t s =
        p ? cudnnFindConvolutionBackwardFilterAlgorithmEx(
                ctx->cudnn, e->d.x, p->x, e->d.y, p->y, e->d.conv, e->d.w, p->w,
                CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, got, perf, p->ws, p->ws_bytes)
          : cudnnFindConvolutionBackwardFilterAlgorithm(ctx->cudnn, e->d.x, e->d.y, e->d.conv,
                                                        e->d.w,
                                                        CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT,
                                                        got, perf);
    if (s == CUDNN_STATUS_SUCCESS) MM_CONV_COPY_PERF(ap, perf, *got);
    return s;
}

static cudnnStatus_t mm_bwd_filter_heuristic(mm_cuda_ctx *ctx, const mm_conv_entry *e,
                                             mm_algo_perf *ap, int *got)
{
    cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    cudnnStatus_t s = cudnnGetConvolutionBackwardFilterAlgorithm_v7(
        ctx->cudnn, e->d.x, e->d.y, e->d.conv, e->d.w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT,
        got, perf);
    if (s == CUDNN_STATUS_SUCCESS) MM_CONV_COPY_PERF(ap, perf, *got);
    return s;
}

/* The legacy search of e's direction: the timed list (not in deterministic mode), else cuDNN's
 * heuristic order. False: no algorithm. */
static bool mm_conv_pick_legacy(mm_cuda_ctx *ctx, mm_conv_entry *e, const mm_conv_probe *p,
                                size_t limit)
{
    static const mm_legacy_calls calls[3] = {{mm_fwd_find, mm_fwd_heuristic},
                                             {mm_bwd_data_find, mm_bwd_data_heuristic},
                                             {mm_bwd_filter_find, mm_bwd_filter_heuristic}};
    const mm_legacy_calls *c = &calls[e->key.dir - MM_CONV_FWD];
    mm_algo_perf ap[MM_ALGO_MAX];
    int got = 0;
    bool ok = !mm_conv_deterministic(ctx) && c->find(ctx, e, p, ap, &got) == CUDNN_STATUS_SUCCESS &&
              mm_conv_take(ctx, e, ap, got, limit, true, p ? "findex" : "find");
    if (!ok) {
        got = 0;
        ok = c->heuristic(ctx, e, ap, &got) == CUDNN_STATUS_SUCCESS;
        for (int i = 0; ok && i < got && i < MM_ALGO_MAX; i++) ap[i].time = -1;
        ok = ok && mm_conv_take(ctx, e, ap, got, limit, false, "heuristic");
    }
    cudaGetLastError(); /* a failed search leaves its error to be read: clear it */
    return ok;
}

/* Runs entry e once on the probe's operands (cuDNN with its algorithm, or the GEMM). */
static void mm_conv_run_probe(mm_cuda_ctx *ctx, const mm_conv_entry *e, const mm_conv_dims *d,
                              mm_dtype t, const mm_conv_probe *p)
{
    mm_conv_run(ctx, e, d, t, p->x, p->w, p->y, p->ws, e->key.beta);
}

/* Milliseconds per call of run(arg) on the backend's stream: one warm-up, then the mean of
 * `runs` calls. */
static float mm_stream_time(mm_cuda_ctx *ctx, void (*run)(void *), void *arg, int runs)
{
    cudaEvent_t a, b;
    MM_CUDA_CHECK(cudaEventCreate(&a));
    MM_CUDA_CHECK(cudaEventCreate(&b));
    run(arg);
    MM_CUDA_CHECK(cudaEventRecord(a, ctx->stream));
    for (int i = 0; i < runs; i++) run(arg);
    MM_CUDA_CHECK(cudaEventRecord(b, ctx->stream));
    MM_CUDA_CHECK(cudaEventSynchronize(b));
    float ms = 0;
    MM_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    MM_CUDA_CHECK(cudaEventDestroy(a));
    MM_CUDA_CHECK(cudaEventDestroy(b));
    return ms / (float)runs;
}

typedef struct mm_probe_run {
    mm_cuda_ctx *ctx;
    const mm_conv_entry *e;
    const mm_conv_dims *d;
    mm_dtype t;
    const mm_conv_probe *p;
} mm_probe_run;

static void mm_probe_once(void *arg)
{
    mm_probe_run *r = arg;
    mm_conv_run_probe(r->ctx, r->e, r->d, r->t, r->p);
}

/* Milliseconds per run of e on the probe: one warm-up, then the mean of `runs` runs. */
static float mm_conv_time_runs(mm_cuda_ctx *ctx, const mm_conv_entry *e, const mm_conv_dims *d,
                               mm_dtype t, const mm_conv_probe *p, int runs)
{
    mm_probe_run r = {ctx, e, d, t, p};
    return mm_stream_time(ctx, mm_probe_once, &r, runs);
}

static float mm_conv_time(mm_cuda_ctx *ctx, const mm_conv_entry *e, const mm_conv_dims *d,
                          mm_dtype t, const mm_conv_probe *p)
{
    return mm_conv_time_runs(ctx, e, d, t, p, 5);
}

/* The time of a candidate among others (mm_stream_time of 5 runs), best the fastest time so far
 * (-1: none): one timed run first, and a candidate far slower than the best (1.5 times) is not
 * timed further. */
static float mm_stream_time_against(mm_cuda_ctx *ctx, void (*run)(void *), void *arg, float best)
{
    float once = mm_stream_time(ctx, run, arg, 1);
    return best >= 0 && once > 1.5f * best ? once : mm_stream_time(ctx, run, arg, 5);
}

/* mm_stream_time_against for entry e on the probe (mm_conv_time's runs). */
static float mm_conv_time_against(mm_cuda_ctx *ctx, const mm_conv_entry *e, const mm_conv_dims *d,
                                  mm_dtype t, const mm_conv_probe *p, float best)
{
    mm_probe_run r = {ctx, e, d, t, p};
    return mm_stream_time_against(ctx, mm_probe_once, &r, best);
}

/* Frees e's graph plan, if it has one (a later search took another way). */
static void mm_conv_drop_graph(mm_conv_entry *e)
{
    if (!e->use_graph) return;
    mm_conv_plan_free(&e->gplan);
    mm_conv_graph_free(&e->graph);
    e->use_graph = 0;
}

/* MM_CONV_GEMM: "0" never runs 1x1 convolutions as GEMMs, "1" always does (where they apply;
 * the tests use it), unset times both and keeps the faster. */
static int mm_conv_gemm_mode(void) { return mm_env_switch("MM_CONV_GEMM"); }

/* MM_CUDNN_GRAPH: "0" never uses the graph API's plans, "1" takes the fastest of them wherever
 * one runs (the tests use it), unset times them against the legacy choice. */
static int mm_conv_graph_mode(void) { return mm_env_switch("MM_CUDNN_GRAPH"); }

/* Graph plans timed per shape, at most: PyTorch's cudnn.benchmark_limit (H200 run 2, fp32: a
 * fourth to sixth plan was the fastest for 23 of 93 shapes, by up to 1.4x). A change to what
 * this file would choose bumps MM_CONV_DISK_MAGIC (conv_disk.c): kept choices are then searched
 * again. */
#define MM_CONV_GRAPH_PLANS 10

/* Times the graph API's plans for entry e on the probe against e's legacy choice (legacy_ok:
 * there is one; it is timed with the same timer) and keeps the fastest of all, with the same
 * workspace slack as mm_conv_take. A plan that fails its trial run is dropped. Returns whether e
 * has a choice now; *timed gets that choice's time on mm_conv_time's timer, -1 if not taken. */
static bool mm_conv_try_graph(mm_cuda_ctx *ctx, mm_conv_entry *e, const mm_conv_dims *d,
                              mm_dtype t, const mm_conv_probe *p, size_t limit, bool legacy_ok,
                              float *timed)
{
    *timed = -1;
    int mode = mm_conv_graph_mode();
    bool det = mm_conv_deterministic(ctx);
    /* the legacy choice must run on the probe to be compared (cuDNN's heuristic pick, taken when
     * the timed search failed, may want more workspace than the probe has) */
    if (mode == 0 || (!p && !det) ||
        (legacy_ok && mode != 1 && !det && e->ws_bytes > p->ws_bytes))
        return legacy_ok;
    bool verbose = mm_conv_verbose();
    char what[160];
    mm_conv_describe(what, sizeof what, &e->key);
    /* the fp32 filter gradient (but its first writer's) and a summing data gradient accumulate
     * (beta 1), as the legacy calls do */
    float beta = e->key.beta ? 1.0f : 0.0f;
    mm_conv_graph g;
    cudnnStatus_t st = mm_conv_graph_init(&g, ctx->cudnn, e->key.dir, d, t, beta, e->key.align);
    if (st != CUDNN_STATUS_SUCCESS) {
        if (verbose)
            fprintf(stderr, "mammo: cudnn graph %s: no operation graph (%s)\n", what,
                    cudnnGetErrorString(st));
        return legacy_ok;
    }
    mm_conv_plan plans[MM_CONV_GRAPH_PLANS];
    /* runtime-compiled engines compile kernels for every plan, seconds per shape: only with
     * MM_CUDNN_RTC=1 */
    /* deterministic: the plans of the limit, whatever the probe could get (the memory free at
     * plan time must not change the choice) */
    size_t ws_limit = det || limit < p->ws_bytes ? limit : p->ws_bytes;
    mm_conv_graph_want want = {.tensor_core = ctx->precision != MM_PRECISION_FP32,
                               .rtc = mm_env_switch("MM_CUDNN_RTC") == 1,
                               .ws_limit = ws_limit,
                               .deterministic = det};
    int n = mm_conv_graph_plans(ctx->cudnn, &g, &want, plans, MM_CONV_GRAPH_PLANS);
    /* times[0] is the legacy choice, times[1 + i] plan i; -1: not a candidate. Deterministic:
     * the first plan in cuDNN's order that runs, before the legacy choice, nothing timed (0). */
    float times[1 + MM_CONV_GRAPH_PLANS];
    size_t wss[1 + MM_CONV_GRAPH_PLANS];
    times[0] = legacy_ok && mode != 1 && !det ? mm_conv_time(ctx, e, d, t, p) : -1;
    wss[0] = e->ws_bytes;
    for (int i = 0; i < n; i++) {
        times[1 + i] = -1;
        wss[1 + i] = plans[i].ws_bytes;
    }
    mm_conv_entry trial = *e;
    trial.use_graph = 1;
    trial.gemm = 0;
    float best = times[0];
    for (int i = 0; i < n; i++) {
        trial.gplan = plans[i];
        /* a trial run where the probe holds the plan (always, unless deterministic) */
        bool tried = p && plans[i].ws_bytes <= p->ws_bytes;
        bool runs = !tried || (mm_conv_plan_run(ctx->cudnn, &plans[i], p->x, p->w, p->y, p->ws) ==
                                   CUDNN_STATUS_SUCCESS &&
                               cudaStreamSynchronize(ctx->stream) == cudaSuccess);
        cudaGetLastError();
        if (!runs) continue;
        if (det) {
            times[1 + i] = 0;
            break;
        }
        times[1 + i] = mm_conv_time_against(ctx, &trial, d, t, p, best);
        mm_conv_note(e, times[1 + i], wss[1 + i]);
        if (best < 0 || times[1 + i] < best) best = times[1 + i];
    }
    int fastest = -1, pick = -1;
    for (int i = 0; i <= n; i++)
        if (times[i] >= 0 && (fastest < 0 || times[i] < times[fastest])) fastest = pick = i;
    if (fastest >= 0 && wss[fastest] > MM_CONV_WS_BIG)
        for (int i = 0; i <= n; i++)
            if (times[i] >= 0 && times[i] <= times[fastest] * (1.0f + MM_CONV_WS_SLACK) &&
                wss[i] < wss[pick])
                pick = i;
    if (verbose) {
        if (times[0] >= 0)
            fprintf(stderr, "mammo: cudnn graph %s: legacy %-15s %9.3f ms ws %8.1f MiB%s\n", what,
                    mm_conv_algo_name((mm_conv_dir)e->key.dir, e->algo), (double)times[0],
                    wss[0] / 1048576.0, pick == 0 ? "  <- taken" : "");
        for (int i = 0; i < n; i++)
            fprintf(stderr,
                    "mammo: cudnn graph %s: engine %-4lld knobs %08x%s%s %9.3f ms ws %8.1f MiB%s\n",
                    what, (long long)plans[i].engine, (unsigned)(plans[i].knobs >> 32),
                    plans[i].tensor_core ? " tc" : "   ",
                    plans[i].rtc ? " rtc" : "    ", (double)times[1 + i], wss[1 + i] / 1048576.0,
                    pick == 1 + i ? "  <- taken" : times[1 + i] < 0 ? "  (failed to run)" : "");
    }
    for (int i = 0; i < n; i++)
        if (pick != 1 + i) mm_conv_plan_free(&plans[i]);
    if (pick >= 0 && !det) *timed = times[pick];
    if (pick <= 0) {
        mm_conv_graph_free(&g);
        return legacy_ok;
    }
    e->use_graph = 1;
    e->graph = g;
    e->gplan = plans[pick - 1];
    e->ws_bytes = wss[pick];
    e->time_ms = det ? -1 : times[pick];
    return true;
}

/* MM_CONV_NCHW: "0" never runs convolutions on NCHW copies, "1" always does where they apply
 * and an algorithm fits (the tests use it), unset times them against the choice so far and
 * keeps the faster. */
static int mm_conv_nchw_mode(void) { return mm_env_switch("MM_CONV_NCHW"); }

/* Searches cuDNN's legacy algorithms on NCHW copies of e's operands (conv_nchw.h), times the
 * best with its transposes on the probe against e's choice so far (ok: there is one; *timed:
 * its time on mm_conv_time's timer, -1 if not timed yet) and takes it when faster, with the
 * workspace slack of mm_conv_take. fp32 data only: bf16 runs on tensor cores, which want NHWC.
 * Returns whether e has a choice now; *timed follows the choice. */
static bool mm_conv_try_nchw(mm_cuda_ctx *ctx, mm_conv_entry *e, const mm_conv_dims *d,
                             mm_dtype t, const mm_conv_probe *p, size_t limit, bool ok,
                             float *timed)
{
    int mode = mm_conv_nchw_mode();
    size_t copies = mm_conv_nchw_scratch(0, d);
    if (mode == 0 || !p || t != MM_F32 || !mm_conv_nchw_applies(d) || copies + 256 >= limit ||
        copies >= p->ws_bytes || mm_conv_deterministic(ctx))
        return ok;
    mm_conv_entry trial;
    memset(&trial, 0, sizeof trial);
    trial.key = e->key;
    trial.nchw = 1;
    trial.time_ms = -1;
    if (mm_conv_descs_init(&trial.d, d, t, ctx->precision, true) != CUDNN_STATUS_SUCCESS)
        return ok;
    bool verbose = mm_conv_verbose();
    char what[160];
    mm_conv_describe(what, sizeof what, &e->key);
    if (verbose)
        fprintf(stderr, "mammo: cudnn nchw %s: legacy algorithms on NCHW copies (%.1f MiB):\n",
                what, copies / 1048576.0);
    /* the search's operands: zeroed copies at the start of the probe's workspace, cuDNN's
     * workspace after them (the run below lays them out as the step will) */
    mm_conv_nchw_bufs b = mm_conv_nchw_carve(p->ws, 0, d);
    mm_conv_probe np = {b.x, b.w, b.y, (char *)p->ws + copies, NULL, NULL, p->ws_bytes - copies};
    MM_CUDA_CHECK(cudaMemsetAsync(p->ws, 0, copies, ctx->stream));
    bool found = mm_conv_pick_legacy(ctx, &trial, &np, limit - copies - 256);
    size_t need = mm_conv_scratch(&trial, d), have = ok ? mm_conv_scratch(e, d) : 0;
    float t_nchw = -1, t_cur = *timed;
    if (found && need <= p->ws_bytes) {
        t_nchw = mm_conv_time(ctx, &trial, d, t, p);
        mm_conv_note(e, t_nchw, need);
        if (ok && t_cur < 0 && have <= p->ws_bytes) t_cur = mm_conv_time(ctx, e, d, t, p);
    }
    bool take = t_nchw >= 0 &&
                (mode == 1 || !ok ||
                 (t_cur >= 0 && t_nchw < t_cur &&
                  !(need > MM_CONV_WS_BIG && have < need &&
                    t_cur <= t_nchw * (1.0f + MM_CONV_WS_SLACK))));
    if (verbose)
        fprintf(stderr,
                "mammo: cudnn nchw %s: %s with transposes %.3f ms, scratch %.1f MiB; so far "
                "%.3f ms, %.1f MiB%s\n",
                what, found ? mm_conv_algo_name((mm_conv_dir)e->key.dir, trial.algo) : "none",
                (double)t_nchw, need / 1048576.0, (double)t_cur, have / 1048576.0,
                take ? "  <- taken" : "");
    if (!take) {
        mm_conv_descs_free(&trial.d);
        return ok;
    }
    mm_conv_drop_graph(e);
    mm_conv_descs_free(&e->d);
    e->d = trial.d;
    e->nchw = 1;
    e->algo = trial.algo;
    e->math = trial.math;
    e->ws_bytes = trial.ws_bytes;
    e->time_ms = *timed = t_nchw;
    return true;
}

int mm_conv_wino_mode(void)
{
    static const char *const words[] = {"0", "1", "2", "4"};
    static const int modes[] = {0, 1, 2, 4};
    int asked = mm_env_word("MM_CONV_WINOGRAD", words, 4);
    return asked >= 0 ? modes[asked] : -1;
}

/* MM_CONV_WINO_TILES=N: Winograd runs in chunks of N tiles (tests, measurements) instead of the
 * chunk sizes of mm_wino_budget_mib; 0 when unset. */
static int mm_conv_wino_forced_tiles(void)
{
    int64_t n = 0;
    mm_env_int("MM_CONV_WINO_TILES", 1, INT_MAX, &n);
    return (int)n;
}

/* The chunk sizes timed, as MiB of transformed tiles (U and M): 24 MiB stays in an H100's or
 * H200's 50 MB L2 cache from one kernel to the next, larger ones launch fewer, larger GEMMs, and
 * the smallest fits where the planner caps a node's scratch tightly (conv_caps.c). */
static const int mm_wino_budget_mib[] = {6, 24, 96, 384};
#define MM_WINO_BUDGETS ((int)(sizeof mm_wino_budget_mib / sizeof mm_wino_budget_mib[0]))

/* Below these channel counts the transforms' traffic outweighs the products saved: not timed. */
#define MM_WINO_MIN_CHANNELS 16

/* One way to run Winograd: F(m x m, 3x3) in chunks of `tiles` tiles. */
typedef struct mm_wino_way {
    int m, tiles;
} mm_wino_way;

/* The ways to time for convolution d under Winograd mode `mode` (mm_conv_wino_mode):
 * each m it allows at each chunk size (MM_CONV_WINO_TILES: that one), sizes that give the same
 * chunks once. Returns how many. */
static int mm_wino_ways(const mm_conv_dims *d, mm_dtype t, mm_precision p, int mode,
                        mm_wino_way *out)
{
    int n = 0, forced = mm_conv_wino_forced_tiles();
    for (int m = 2; m <= 4; m += 2) {
        if (!mm_conv_wino_applies(d, t, p, m) || (mode == 2 && m == 4) ||
            (mode == 4 && m == 2 && mm_conv_wino_applies(d, t, p, 4)))
            continue;
        int64_t all = mm_conv_wino_tiles(d, m);
        for (int i = 0; i < (forced ? 1 : MM_WINO_BUDGETS); i++) {
            int tc = forced ? (int)(forced < all ? forced : all)
                            : mm_conv_wino_chunk_for(d, m, (size_t)mm_wino_budget_mib[i] << 20);
            if (n == 0 || out[n - 1].m != m || out[n - 1].tiles != tc)
                out[n++] = (mm_wino_way){m, tc};
        }
    }
    return n;
}

/* Times Winograd (conv_wino.h) for forward or filter-gradient entry e in each way that fits
 * under `limit` and the probe, against e's choice so far (ok: there is one; *timed: its time on
 * mm_conv_time's timer, -1 if not timed yet), and takes the fastest where it beats that choice
 * (always, in the modes that force it), with the workspace slack of mm_conv_take. Deterministic
 * backends time nothing and keep cuDNN's choice. Returns whether e has a choice now; *timed
 * follows the choice. */
static bool mm_conv_try_wino(mm_cuda_ctx *ctx, mm_conv_entry *e, const mm_conv_dims *d,
                             mm_dtype t, const mm_conv_probe *p, size_t limit, bool ok,
                             float *timed)
{
    int mode = e->key.wino;
    bool forced = mode > 0;
    if (mode == 0 || (e->key.dir != MM_CONV_FWD && e->key.dir != MM_CONV_BWD_FILTER) ||
        mm_conv_deterministic(ctx) ||
        (!forced && (!p || d->c < MM_WINO_MIN_CHANNELS || d->k < MM_WINO_MIN_CHANNELS)))
        return ok;
    mm_wino_way ways[2 * MM_WINO_BUDGETS];
    int n = mm_wino_ways(d, t, ctx->precision, mode, ways);
    bool verbose = mm_conv_verbose();
    char what[160];
    mm_conv_describe(what, sizeof what, &e->key);
    mm_conv_entry trial = *e; /* runs only its Winograd: nothing of e's choice is used */
    trial.gemm = trial.use_graph = trial.nchw = 0;
    int pick = -1;
    float best = -1, ms_of[2 * MM_WINO_BUDGETS];
    size_t best_ws = 0, ws_of[2 * MM_WINO_BUDGETS];
    for (int i = 0; i < n; i++) {
        size_t ws = ws_of[i] = mm_conv_wino_scratch(d, ways[i].m, ways[i].tiles);
        ms_of[i] = -1;
        if (ws > limit || (p && ws > p->ws_bytes)) continue;
        trial.wino_m = ways[i].m;
        trial.wino_tiles = ways[i].tiles;
        trial.ws_bytes = ws;
        float ms = p ? mm_conv_time_against(ctx, &trial, d, t, p, best) : -1;
        mm_conv_note(e, ms_of[i] = ms, ws);
        if (verbose)
            fprintf(stderr,
                    "mammo: conv %s: winograd F(%dx%d,3x3), chunks of %d tiles %9.3f ms ws "
                    "%8.1f MiB\n",
                    what, ways[i].m, ways[i].m, ways[i].tiles, (double)ms, ws / 1048576.0);
        if (pick < 0 || (ms >= 0 && ms < best)) pick = i, best = ms, best_ws = ws;
    }
    if (pick < 0) return ok;
    /* a big scratch gives way to a smaller one nearly as fast, as in mm_conv_take */
    for (int i = 0; best >= 0 && best_ws > MM_CONV_WS_BIG && i < n; i++)
        if (ms_of[i] >= 0 && ms_of[i] <= best * (1.0f + MM_CONV_WS_SLACK) && ws_of[i] < best_ws)
            pick = i, best_ws = ws_of[i];
    best = pick >= 0 && ms_of[pick] >= 0 ? ms_of[pick] : best;
    size_t have = ok ? mm_conv_scratch(e, d) : 0;
    float t_cur = *timed;
    if (ok && t_cur < 0 && !forced && have <= p->ws_bytes) t_cur = mm_conv_time(ctx, e, d, t, p);
    bool take = forced || !ok ||
                (best >= 0 && t_cur >= 0 && best < t_cur &&
                 !(best_ws > MM_CONV_WS_BIG && have < best_ws &&
                   t_cur <= best * (1.0f + MM_CONV_WS_SLACK)));
    if (verbose)
        fprintf(stderr,
                "mammo: conv %s: winograd %.3f ms, scratch %.1f MiB; so far %.3f ms, %.1f "
                "MiB%s\n",
                what, (double)best, best_ws / 1048576.0, (double)t_cur, have / 1048576.0,
                take ? "  <- taken" : "");
    if (!take) return ok;
    mm_conv_drop_graph(e);
    if (e->nchw) { /* e->d described the NCHW copies: back to the operands' own */
        mm_conv_descs_free(&e->d);
        MM_CUDNN_CHECK(mm_conv_descs_init(&e->d, d, t, ctx->precision, false));
        e->nchw = 0;
    }
    e->wino_m = ways[pick].m;
    e->wino_tiles = ways[pick].tiles;
    e->ws_bytes = best_ws;
    e->time_ms = *timed = best;
    return true;
}

void mm_conv_say_turn(const mm_conv_entry *dgrad, float was_ms, float fwd_ms, bool turned)
{
    if (!mm_conv_verbose()) return;
    char what[160];
    mm_conv_describe(what, sizeof what, &dgrad->key);
    fprintf(stderr, "mammo: conv %s: %.3f ms, as a forward convolution %.3f ms%s\n", what,
            (double)was_ms, (double)fwd_ms, turned ? "  <- as forward" : "");
}

/* ---- a forward convolution with its bias and ReLU in one call ---- */
typedef struct mm_fused_run {
    mm_cuda_ctx *ctx;
    const mm_conv_entry *e;
    const mm_conv_probe *p;
    const float *bias;
    int algo;
    size_t ws_bytes;
    int64_t m; /* output rows, for the bias pass */
    int k;
    cudnnStatus_t st; /* the first failure */
} mm_fused_run;

static void mm_fused_once(void *arg)
{
    mm_fused_run *r = arg;
    static const float one = 1.0f, zero = 0.0f;
    const mm_conv_entry *e = r->e;
    cudnnStatus_t st = cudnnConvolutionBiasActivationForward(
        r->ctx->cudnn, &one, e->d.x, r->p->x, e->d.w, r->p->w, e->d.conv,
        (cudnnConvolutionFwdAlgo_t)r->algo, r->p->ws, r->ws_bytes, &zero, e->d.y, r->p->y,
        e->d.bias, r->bias, e->d.relu, e->d.y, r->p->y);
    if (r->st == CUDNN_STATUS_SUCCESS) r->st = st;
}

static void mm_bias_pass_once(void *arg)
{
    mm_fused_run *r = arg;
    mm_cuda_bias_add(r->p->y, MM_F32, r->bias, r->m, r->k, 1, r->ctx->stream);
}

/* Entry e of MM_CONV_FWD_BIAS_RELU (fp32 data): the legacy algorithm that runs
 * cudnnConvolutionBiasActivationForward fastest on a probe, within `limit` bytes of workspace,
 * and the time of the bias-and-ReLU pass (mm_cuda_bias_add) that it saves, on the same operands
 * (e->pass_ms). The op takes it where it beats the plain convolution's time and that pass
 * (conv_cudnn.c). cuDNN fuses the ReLU into some algorithms' kernels and runs others unfused:
 * only timing tells. */
static bool mm_conv_pick_fused(mm_cuda_ctx *ctx, mm_conv_entry *e, const mm_conv_dims *d,
                               size_t limit)
{
    e->time_ms = e->pass_ms = -1;
    e->math = ctx->precision == MM_PRECISION_FP32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH;
    mm_conv_probe probe;
    float *bias = NULL;
    if (mm_conv_deterministic(ctx) || !mm_conv_probe_init(&probe, d, MM_F32, limit, e->key.align))
        return false;
    bool ok = false, verbose = mm_conv_verbose();
    char what[160];
    mm_conv_describe(what, sizeof what, &e->key);
    bool have_bias = cudaMalloc((void **)&bias, (size_t)d->k * sizeof(float)) == cudaSuccess &&
                     cudaMemsetAsync(bias, 0, (size_t)d->k * sizeof(float), ctx->stream) ==
                         cudaSuccess;
    mm_fused_run r = {ctx, e, &probe, bias, 0, 0, (int64_t)d->n * d->oh * d->ow, d->k,
                      CUDNN_STATUS_SUCCESS};
    for (int algo = 0; have_bias && algo < CUDNN_CONVOLUTION_FWD_ALGO_COUNT; algo++) {
        size_t ws = 0;
        if (cudnnGetConvolutionForwardWorkspaceSize(ctx->cudnn, e->d.x, e->d.w, e->d.conv, e->d.y,
                                                    (cudnnConvolutionFwdAlgo_t)algo,
                                                    &ws) != CUDNN_STATUS_SUCCESS ||
            ws > limit || ws > probe.ws_bytes)
            continue;
        r.algo = algo, r.ws_bytes = ws, r.st = CUDNN_STATUS_SUCCESS;
        mm_fused_once(&r); /* runs at all? */
        if (r.st != CUDNN_STATUS_SUCCESS || cudaStreamSynchronize(ctx->stream) != cudaSuccess) {
            cudaGetLastError();
            if (verbose)
                fprintf(stderr, "mammo: cudnn fused %s: %-22s (%s)\n", what,
                        mm_conv_algo_name(MM_CONV_FWD, algo), cudnnGetErrorString(r.st));
            continue;
        }
        float ms = mm_stream_time_against(ctx, mm_fused_once, &r, ok ? e->time_ms : -1);
        if (r.st != CUDNN_STATUS_SUCCESS) continue;
        mm_conv_note(e, ms, ws);
        if (verbose)
            fprintf(stderr, "mammo: cudnn fused %s: %-22s %9.3f ms ws %8.1f MiB\n", what,
                    mm_conv_algo_name(MM_CONV_FWD, algo), (double)ms, ws / 1048576.0);
        if (!ok || ms < e->time_ms) {
            ok = true;
            e->algo = algo, e->ws_bytes = ws, e->time_ms = ms;
        }
    }
    if (ok) e->pass_ms = mm_stream_time(ctx, mm_bias_pass_once, &r, 5);
    if (verbose && ok)
        fprintf(stderr, "mammo: conv %s: chose %s (%.3f ms, ws %.1f MiB; the bias pass %.3f ms)\n",
                what, mm_conv_algo_name(MM_CONV_FWD, e->algo), (double)e->time_ms,
                e->ws_bytes / 1048576.0, (double)e->pass_ms);
    if (bias) cudaFree(bias);
    cudaGetLastError();
    mm_conv_probe_free(&probe);
    return ok;
}

void mm_conv_search_setup(const mm_cuda_ctx *ctx, int out[MM_CONV_SETUP_N])
{
    size_t kib = ctx->conv_ws_limit >> 10;
    out[MM_CONV_SETUP_WS_LIMIT_KIB] = kib < INT_MAX ? (int)kib : INT_MAX;
    out[MM_CONV_SETUP_GRAPH] = mm_conv_graph_mode();
    out[MM_CONV_SETUP_NCHW] = mm_conv_nchw_mode();
    out[MM_CONV_SETUP_GEMM] = mm_conv_gemm_mode();
    out[MM_CONV_SETUP_RTC] = mm_env_switch("MM_CUDNN_RTC") == 1;
    out[MM_CONV_SETUP_WINO_TILES] = mm_conv_wino_forced_tiles();
}

/* The algorithm of a new entry: cuDNN's fastest (FindEx over a probe when the probe's buffers
 * can be had, else Find, else the heuristics), then the graph API's plans when one is faster,
 * then a legacy algorithm on NCHW copies (fp32 data) when that is faster, then for 3x3 stride-1
 * forward and filter-gradient shapes (fp32 data) Winograd when it is faster, then for 1x1
 * stride-1 shapes the GEMM when it is faster, all measured the same way on the same operands. */
bool mm_conv_pick(mm_cuda_ctx *ctx, mm_conv_entry *e, const mm_conv_dims *d, mm_dtype t,
                  size_t limit)
{
    mm_conv_dir dir = (mm_conv_dir)e->key.dir;
    if (dir == MM_CONV_FWD_BIAS_RELU) return mm_conv_pick_fused(ctx, e, d, limit);
    mm_conv_probe probe;
    bool have_probe = mm_conv_probe_init(&probe, d, t, limit, e->key.align);
    const mm_conv_probe *p = have_probe ? &probe : NULL;
    e->time_ms = -1;
    bool ok = mm_conv_pick_legacy(ctx, e, p, limit);
    float timed; /* the choice's time on mm_conv_time's timer, when a later search timed it */
    ok = mm_conv_try_graph(ctx, e, d, t, p, limit, ok, &timed);
    ok = mm_conv_try_nchw(ctx, e, d, t, p, limit, ok, &timed);
    ok = mm_conv_try_wino(ctx, e, d, t, p, limit, ok, &timed);
    int mode = mm_conv_gemm_mode();
    bool verbose = mm_conv_verbose();
    char what[160];
    mm_conv_describe(what, sizeof what, &e->key);
    if (mm_conv_gemm_applies(d) && mode != 0) {
        float t_cudnn = -1, t_gemm = -1;
        /* deterministic: the GEMM wherever it applies (cuBLAS gives the same bits every run) */
        bool use = mode == 1 || !ok || mm_conv_deterministic(ctx);
        if (!use && have_probe && mm_conv_scratch(e, d) <= probe.ws_bytes) {
            t_cudnn = timed >= 0 ? timed : mm_conv_time(ctx, e, d, t, p);
            e->gemm = 1;
            t_gemm = mm_conv_time(ctx, e, d, t, p);
            mm_conv_note(e, t_gemm, 0);
            e->gemm = 0;
            use = t_gemm < t_cudnn;
        }
        if (verbose)
            fprintf(stderr, "mammo: conv %s: cudnn %.3f ms, cublas gemm %.3f ms%s\n", what,
                    (double)t_cudnn, (double)t_gemm, use ? "  <- gemm" : "");
        if (use) {
            e->gemm = 1;
            e->ws_bytes = 0;
            e->time_ms = t_gemm;
            ok = true;
        }
    }
    if (verbose) {
        if (!ok)
            fprintf(stderr, "mammo: conv %s: no algorithm\n", what);
        else if (e->gemm)
            fprintf(stderr, "mammo: conv %s: chose cublas gemm\n", what);
        else if (e->wino_tiles)
            fprintf(stderr,
                    "mammo: conv %s: chose winograd F(%dx%d,3x3) in chunks of %d tiles (%.3f "
                    "ms, ws %.1f MiB)\n",
                    what, e->wino_m, e->wino_m, e->wino_tiles, (double)e->time_ms,
                    e->ws_bytes / 1048576.0);
        else if (e->use_graph)
            fprintf(stderr, "mammo: conv %s: chose graph engine %lld (%.3f ms, ws %.1f MiB)\n",
                    what, (long long)e->gplan.engine, (double)e->time_ms,
                    e->ws_bytes / 1048576.0);
        else
            fprintf(stderr, "mammo: conv %s: chose %s%s (%.3f ms, ws %.1f MiB)\n", what,
                    mm_conv_algo_name(dir, e->algo), e->nchw ? " on NCHW copies" : "",
                    (double)e->time_ms, mm_conv_scratch(e, d) / 1048576.0);
    }
    if (have_probe) mm_conv_probe_free(&probe);
    return ok;
}
