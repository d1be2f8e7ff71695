/* The convolution algorithm cache's entries, shared by conv_cudnn.c (the cache and the ops) and
 * conv_search.c (choosing an entry's algorithm). Internal to the CUDA backend. */
#ifndef MM_CONV_ENTRY_H
#define MM_CONV_ENTRY_H

#include <stdbool.h>

#include "conv_cudnn.h"
#include "conv_graph.h"
#include "conv_nchw.h"
#include "conv_wino.h"
#include "cuda_backend.h"

/* MM_CONV_FWD_BIAS_RELU: a forward convolution with its bias and the ReLU after it in one
 * cuDNN call (cudnnConvolutionBiasActivationForward), searched apart (conv_search.c
 * mm_conv_pick_fused) and run where it beats the plain convolution and our bias pass. */
typedef enum mm_conv_dir {
    MM_CONV_FWD = 1,
    MM_CONV_BWD_DATA,
    MM_CONV_BWD_FILTER,
    MM_CONV_FWD_BIAS_RELU
} mm_conv_dir;

#define MM_CONV_CANDS 32 /* candidates an entry remembers */

/* All ints, so memcmp and hashing see no padding. */
typedef struct mm_conv_key {
    int dir, dtype, precision;
    int beta; /* 1: the output accumulates (an fp32 filter gradient but its first writer's:
                 mm_conv_dims overwrite; a summing data gradient) */
    int ws_cap_kib; /* the node's workspace cap in KiB (mm_cuda_node_cap), -1: none */
    int align;      /* bytes (16 or a smaller power of two) x and y's addresses are multiples of */
    int wino; /* MM_CONV_WINOGRAD's mode (mm_conv_wino_mode) at the lookup: a key of its own, so
                 one backend can run a shape both ways */
    int n, h, w, c, k, r, s, stride_h, stride_w, pad_h, pad_w;
} mm_conv_key;

typedef struct mm_conv_entry {
    mm_conv_key key;
    int ok;   /* an algorithm was found (a shape without one is cached too) */
    mm_conv_descs d;
    int algo; /* cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t */
    int math; /* the cudnnMathType_t algo was timed with (set on d.conv in tf32 and bf16) */
    int gemm; /* run as a cuBLAS GEMM (conv_gemm.c) instead of cuDNN */
    int nchw; /* algo runs on NCHW copies of the operands (conv_nchw.h); d describes the copies */
    int wino_m, wino_tiles; /* run as Winograd F(m x m, 3x3) in chunks of this many tiles
                               (conv_wino.h), ws_bytes its scratch; 0: not */
    int use_graph;       /* run gplan (the graph API, conv_graph.c) instead of algo */
    mm_conv_graph graph; /* with use_graph: the operation graph gplan was made for */
    mm_conv_plan gplan;
    size_t ws_bytes; /* cuDNN's workspace (with nchw, the copies follow it: mm_conv_scratch) */
    float time_ms;   /* the measured time of the choice, -1 if not timed */
    /* Every candidate the search timed, with the scratch it runs in: what a cap would leave
     * (mm_conv_best_under) is known without searching again. */
    struct mm_conv_cand { float ms; size_t scratch; } cands[MM_CONV_CANDS];
    int n_cands;
    /* a data-gradient entry whose chunk set last ran as forward convolutions of dy
     * (conv_cudnn.c mm_conv_chunks_turn); counted by mm_conv_cache_counts; turn_said: the
     * choice was logged (MM_CUDNN_VERBOSE) */
    int turned, turn_said;
    /* MM_CONV_FWD_BIAS_RELU: the time of the pass it saves (mm_cuda_bias_add with the ReLU,
     * timed on the same operands), -1 if not timed; and whether the last node that looked it up
     * ran it (conv_cudnn.c mm_conv_fused_entry), for the counts */
    float pass_ms;
    int taken;
} mm_conv_entry;

/* The time of the fastest candidate e's search timed that runs in at most `cap` bytes of
 * scratch; -1 when none does. */
float mm_conv_best_under(const mm_conv_entry *e, size_t cap);

/* The node scratch that entry e runs in: cuDNN's workspace, and the NCHW copies with nchw. */
static inline size_t mm_conv_scratch(const mm_conv_entry *e, const mm_conv_dims *d)
{
    return e->nchw ? mm_conv_nchw_scratch(e->ws_bytes, d) : e->ws_bytes;
}


const char *mm_conv_dir_name(mm_conv_dir dir);

/* Chooses the algorithm of a new entry e (its key and descriptors set) for dims d and storage
 * type t, with at most `limit` bytes of scratch (conv_search.c). False: none. */
bool mm_conv_pick(mm_cuda_ctx *ctx, mm_conv_entry *e, const mm_conv_dims *d, mm_dtype t,
                  size_t limit);

/* MM_CONV_WINOGRAD: "0" never runs 3x3 stride-1 forward convolutions and filter gradients as
 * Winograd (conv_wino.h); "1" always does where it applies, the faster of F(2x2, 3x3) and
 * F(4x4, 3x3); "2" or "4" always F(m x m, 3x3) where it applies (F(2x2, 3x3) where only that
 * does); unset (-1) times them against the choice so far and keeps the fastest. Read at each
 * lookup into the key (conv_search.c). */
int mm_conv_wino_mode(void);

/* What besides its key decides a search's outcome: the workspace limit in KiB
 * (ctx->conv_ws_limit), the MM_CUDNN_GRAPH, MM_CONV_NCHW and MM_CONV_GEMM modes, MM_CUDNN_RTC
 * and MM_CONV_WINO_TILES (conv_search.c; MM_CONV_WINOGRAD's mode is in the key). A choice kept
 * on disk (conv_disk.h) holds only under the same. */
enum {
    MM_CONV_SETUP_WS_LIMIT_KIB,
    MM_CONV_SETUP_GRAPH,
    MM_CONV_SETUP_NCHW,
    MM_CONV_SETUP_GEMM,
    MM_CONV_SETUP_RTC,
    MM_CONV_SETUP_WINO_TILES,
    MM_CONV_SETUP_N
};
void mm_conv_search_setup(const mm_cuda_ctx *ctx, int out[MM_CONV_SETUP_N]);

/* With MM_CUDNN_VERBOSE=1: one line saying how the data gradient `dgrad` (was_ms over its
 * chunks) compared with its forward twin (fwd_ms) and whether it turned. */
void mm_conv_say_turn(const mm_conv_entry *dgrad, float was_ms, float fwd_ms, bool turned);

/* Runs e's legacy algorithm on operands by role (forward y = conv(x, w); backward data into x;
 * backward filter into w) in scratch of mm_conv_scratch(e) bytes: on them directly, or with nchw
 * on NCHW copies, transposed in and the result transposed back. The output is overwritten, or
 * added to with beta (conv_cudnn.c). */
void mm_conv_legacy_run(mm_cuda_ctx *ctx, const mm_conv_entry *e, const mm_conv_dims *d,
                        const void *x, const void *w, const void *y, void *scratch, bool beta);

/* Runs entry e (dims d, storage type t) on operands by role in scratch of mm_conv_scratch(e)
 * bytes: the cuBLAS GEMM, Winograd, a graph-API plan, or the legacy algorithm (beta: its output
 * accumulates; the GEMM's and the plan's accumulation come with d->accumulate and the plan). */
void mm_conv_run(mm_cuda_ctx *ctx, const mm_conv_entry *e, const mm_conv_dims *d, mm_dtype t,
                 const void *x, const void *w, const void *y, void *scratch, bool beta);

#endif
