/* Internals of the CUDA backend shared by its C files (backend_cuda.c, conv_cudnn.c,
 * conv_search.c, dense_cublas.c): the context, the workspace cursor, and the per-op entry
 * points.
 *
 * Every op entry point runs in one of two modes with the same code, so that the workspace the
 * planner reserves always matches what the run uses:
 *  - measuring (ws->measure): called from workspace_bytes() at plan time with views whose data is
 *    NULL; it chooses algorithms (cuDNN), counts the scratch it would take, launches nothing;
 *  - running: called from run_node() with real views and the planner's scratch.
 * Scratch is taken from the cursor in the same order in both modes. */
#ifndef MM_CUDA_BACKEND_H
#define MM_CUDA_BACKEND_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <stdbool.h>

#include "../../runtime/backend.h"

typedef struct mm_conv_cache mm_conv_cache;
typedef struct mm_conv_disk mm_conv_disk;

/* ---- fusion (fuse.c): a BN or biased convolution followed by its only reader, a ReLU ---- */
typedef enum mm_fuse_code {
    MM_FUSE_NONE = 0,
    MM_FUSE_APPLY_RELU, /* this BN / convolution applies the ReLU of its partner node */
    MM_FUSE_RELU_DONE,  /* this ReLU's work was done by its partner */
} mm_fuse_code;

typedef struct mm_cuda_fusion {
    const mm_graph *g;     /* the graph analysed, and what identifies it */
    const mm_node *nodes;
    int n_nodes;
    uint8_t *code;         /* per node: mm_fuse_code */
    int *partner;          /* per fused node: the other node of the pair */
    uint8_t *applied;      /* per fused ReLU: its BN ran fused since it last ran */
    int n_fused;
} mm_cuda_fusion;

/* Finds the pairs of g (MM_NO_FUSE=1 in the environment: none). */
void mm_cuda_fusion_analyse(mm_cuda_fusion *f, const mm_graph *g);
void mm_cuda_fusion_free(mm_cuda_fusion *f);
/* The code of node nd of g: MM_FUSE_NONE unless f analysed g, nd is g's own node (not a copy)
 * and the pattern still holds. */
mm_fuse_code mm_cuda_fusion_code(const mm_cuda_fusion *f, const mm_graph *g, const mm_node *nd);
/* A fused producer ran: its ReLU may be skipped (once). */
void mm_cuda_fusion_mark_applied(mm_cuda_fusion *f, const mm_graph *g, const mm_node *producer);
/* Whether the ReLU's producer ran fused since the ReLU last ran; clears it. */
bool mm_cuda_fusion_take_applied(mm_cuda_fusion *f, const mm_graph *g, const mm_node *relu);

#define MM_CUDA_FUSIONS 4 /* graphs remembered at once (a training and an evaluation graph...) */

typedef struct mm_cuda_ctx {
    const mm_backend *be; /* the backend this is the context of (be->deterministic) */
    int device;
    mm_precision precision;
    cudaStream_t stream;
    cudnnHandle_t cudnn;
    cublasHandle_t cublas;
    void *cublas_ws; /* cuBLAS's own scratch, set once so it never allocates in the step */
    size_t cublas_ws_bytes;
    size_t conv_ws_limit; /* largest cuDNN workspace an algorithm may ask for */
    mm_conv_cache *convs; /* chosen algorithms and descriptors by shape */
    mm_conv_disk *disk;   /* the choices kept between runs (conv_disk.h), NULL: none */
    bool disk_opened;     /* disk was looked for (at the first search) */
    int search_depth;     /* searches under way (one may look other shapes up) */
    mm_cuda_fusion fusions[MM_CUDA_FUSIONS]; /* the last graphs planned */
    int next_fusion;      /* the slot to reuse next */
    cudaGraph_t graph;    /* capture */
    cudaGraphExec_t graph_exec;
    bool capturing;
    /* Convolution nodes asked to need less scratch (the planner's limit_workspace): their
     * algorithm is chosen with the workspace under `cap` (mm_cuda_node_cap), on chunks of at
     * most `chunk` samples where that is not 0 (mm_cuda_node_chunk). */
    struct mm_cuda_node_cap {
        const mm_node *node;
        mm_op op;
        mm_conv_dims dims;
        size_t cap;
        int chunk;
    } *caps;
    int n_caps, cap_caps;
    /* Device memory held through alloc (the sessions' buffers), for the benchmark's peak: */
    struct mm_cuda_alloc_rec { void *ptr; size_t bytes; } *allocs;
    int n_allocs, cap_allocs;
    size_t held_bytes, peak_bytes;
} mm_cuda_ctx;

/* ---- workspace cursor ----
 * When measuring, the views of present values carry this address instead of NULL (absent ones
 * stay NULL), so `view.data != NULL` tests presence in both modes; it is never dereferenced. */
#define MM_CUDA_MEASURE_PTR ((void *)(uintptr_t)4096)

typedef struct mm_cuda_ws {
    bool measure; /* plan time: count only */
    char *base;   /* running: the planner's scratch */
    size_t used, cap;
} mm_cuda_ws;

/* Takes `bytes` (rounded up to 256) from the cursor: NULL when measuring (or bytes == 0),
 * else a pointer into the scratch; running out of the planner's scratch is a tier-2 error. */
void *mm_cuda_ws_take(mm_cuda_ws *ws, size_t bytes);

/* The view `t` as dtype `want`: t's own data when it already is, else a cast copy in the
 * workspace (NULL when measuring). */
const void *mm_cuda_stage_input(mm_cuda_ctx *ctx, mm_cuda_ws *ws, const mm_tensor *t,
                                mm_dtype want);
/* The storage an op should write for output `t` computed as dtype `want`: t's data when the
 * dtypes agree, else workspace; mm_cuda_finish_output() then casts it into t. */
void *mm_cuda_stage_output(mm_cuda_ws *ws, const mm_tensor *t, mm_dtype want);
void mm_cuda_finish_output(mm_cuda_ctx *ctx, const mm_tensor *t, const void *staged,
                           mm_dtype want);

/* The storage dtype of convolutions in this precision: MM_BF16 for bf16, else MM_F32. */
mm_dtype mm_cuda_conv_dtype(const mm_cuda_ctx *ctx);

/* ---- workspace caps (conv_caps.c) ---- */
/* The workspace cap of convolution node `node` (SIZE_MAX: none). A cap is matched by the node's
 * address, op and dimensions, so a node of another graph that reuses the address is capped only
 * when it is the same convolution. */
size_t mm_cuda_node_cap(const mm_cuda_ctx *ctx, const mm_node *node);
/* The most samples a chunk of node `node` runs on, 0: as many as cuDNN takes. */
int mm_cuda_node_chunk(const mm_cuda_ctx *ctx, const mm_node *node);
/* Caps convolution node `node` (other nodes: nothing) at `bytes` of scratch, on the whole batch
 * or on chunks of half its samples, unless g is not strict and that would make it over 10%
 * slower (the node then keeps its scratch, its cap recorded as SIZE_MAX: on the chunks where
 * they need less and are at most 3% slower). */
void mm_cuda_limit_conv(mm_cuda_ctx *ctx, const mm_graph *g, const mm_node *node, size_t bytes);
/* How many nodes kept their scratch that way; how many run on chunks to need less. */
int mm_cuda_caps_kept(const mm_cuda_ctx *ctx);
int mm_cuda_caps_chunked(const mm_cuda_ctx *ctx);

/* ---- op entry points (conv_cudnn.c, dense_cublas.c) ---- */
/* relu: apply the ReLU after the bias (a fused pair, fuse.c; the node has a bias). */
void mm_cuda_op_conv2d(mm_cuda_ctx *ctx, const mm_node *node, const mm_tensor *ins,
                       const mm_tensor *outs, mm_cuda_ws *ws, int relu);
void mm_cuda_op_conv2d_bwd_data(mm_cuda_ctx *ctx, const mm_node *node, const mm_tensor *ins,
                                const mm_tensor *outs, mm_cuda_ws *ws);
void mm_cuda_op_conv2d_bwd_filter(mm_cuda_ctx *ctx, const mm_node *node, const mm_tensor *ins,
                                  const mm_tensor *outs, mm_cuda_ws *ws);
/* The measured milliseconds of convolution node `node` (any direction) under its current cap:
 * the sum over its chunks' algorithms (chosen by the first call); -1 when one was not timed. */
float mm_cuda_conv_node_ms(mm_cuda_ctx *ctx, const mm_node *node);
/* The same from the candidates its searches timed: the fastest that run within `bytes` of
 * scratch (no new search); -1 when one chunk has none. */
float mm_cuda_conv_node_ms_within(mm_cuda_ctx *ctx, const mm_node *node, size_t bytes);
/* The scratch its convolution needs under its current cap and chunks (not the casts of bf16's
 * staged operands). */
size_t mm_cuda_conv_node_scratch(mm_cuda_ctx *ctx, const mm_node *node);
void mm_cuda_op_dense(mm_cuda_ctx *ctx, const mm_node *node, const mm_tensor *ins,
                      const mm_tensor *outs, mm_cuda_ws *ws);
void mm_cuda_op_dense_bwd_data(mm_cuda_ctx *ctx, const mm_node *node, const mm_tensor *ins,
                               const mm_tensor *outs, mm_cuda_ws *ws);
void mm_cuda_op_dense_bwd_weight(mm_cuda_ctx *ctx, const mm_node *node, const mm_tensor *ins,
                                 const mm_tensor *outs, mm_cuda_ws *ws);

/* ---- 1x1 stride-1 unpadded convolutions as cuBLAS GEMMs (conv_gemm.c) ----
 * Operands of storage type t (MM_F32 or MM_BF16); the weight gradient is fp32 and accumulates. */
bool mm_conv_gemm_applies(const mm_conv_dims *d);
void mm_conv_gemm_forward(mm_cuda_ctx *ctx, void *y /* [n,h,w,k] */, const void *x /* [n,h,w,c] */,
                          const void *w /* [k,c] */, mm_dtype t, const mm_conv_dims *d);
void mm_conv_gemm_bwd_data(mm_cuda_ctx *ctx, void *dx /* [n,h,w,c] */,
                           const void *dy /* [n,h,w,k] */, const void *w /* [k,c] */, mm_dtype t,
                           const mm_conv_dims *d);
void mm_conv_gemm_bwd_filter(mm_cuda_ctx *ctx, float *dw /* [k,c] += */,
                             const void *dy /* [n,h,w,k] */, const void *x /* [n,h,w,c] */,
                             mm_dtype t, const mm_conv_dims *d);

/* The most elements cuDNN takes in a tensor (2^31 - 1; MM_CONV_CHUNK_ELEMS lowers it, for
 * tests): a convolution over more runs on chunks of samples (conv_cudnn.c); one sample over it
 * cannot run. */
int64_t mm_conv_max_elems(void);
/* The samples a chunk of convolution d holds under that bound (d->n when it takes them all). */
int mm_conv_chunk_samples(const mm_conv_dims *d);

/* ---- the convolution algorithm cache (conv_cudnn.c) ---- */
mm_conv_cache *mm_conv_cache_new(void);
void mm_conv_cache_free(mm_conv_cache *c);
/* How the shapes searched so far run: legacy cuDNN algorithms (in NHWC, or on NCHW copies:
 * conv_nchw.h), graph-API plans, cuBLAS GEMMs, Winograd (conv_wino.h) (a stride-1 data
 * gradient's forward twin counts among them, searched whether or not it runs); and the
 * data-gradient shapes that run as their forward twins, convolutions of dy over the turned
 * filter. */
typedef struct mm_conv_counts {
    int legacy, nchw, graph, gemm, wino, turned;
    int wino4; /* of the Winograd ones, F(4x4, 3x3) */
    int bias_relu; /* forward shapes run with their bias and ReLU in cuDNN's one call */
} mm_conv_counts;
mm_conv_counts mm_conv_cache_counts(const mm_conv_cache *c);

#endif
