/* Workspace caps of convolution nodes, the CUDA backend's side of the planner's limit_workspace
 * (planner.h): a node asked to fit its scratch in the room the activations leave re-chooses its
 * algorithm under that cap (conv_cudnn.c looks the cap up with mm_cuda_node_cap), unless the
 * graph is not strict (graph.h scratch_strict) and the cap would cost it too much time: then it
 * keeps its scratch, and the step's peak rises instead.
 *
 * Before either, a node of several samples tries running on chunks of half its samples
 * (conv_cudnn.c runs chunks already for cuDNN's 2^31-element bound): the workspace of cuDNN's
 * fastest algorithms grows with the batch (VGG16's first layers at 1152x896 ask for about 1 GiB
 * in fp32 at batch 2), while one sample of a large image keeps the GPU as busy. A chunked node
 * within the cap and not much slower takes it; one that must keep scratch keeps the chunks'
 * where that is less and costs at most MM_CUDA_CHUNK_COST. MM_CONV_WS_CHUNKS=0 turns chunks
 * off. */
#include <stdint.h>
#include <string.h>

#include "../../runtime/env.h"
#include "cuda_backend.h"

/* A convolution whose algorithm under its cap is this much slower than its fastest (a fraction,
 * and at least MM_CUDA_CAP_COST_MS in all) keeps its scratch. Where the candidates its uncapped
 * search timed show every one within the cap over MM_CUDA_CAP_HOPELESS times slower, it keeps it
 * without searching under the cap (on the H200, timing those slow algorithms was most of VGG16's
 * fp32 set-up). */
#define MM_CUDA_CAP_COST 0.10f
#define MM_CUDA_CAP_COST_MS 0.02f
#define MM_CUDA_CAP_HOPELESS 1.5f
/* A node keeping its scratch runs on chunks that need less where they are at most this much
 * slower (the search's own slack for a candidate that needs less, MM_CONV_WS_SLACK). */
#define MM_CUDA_CHUNK_COST 0.03f

static const struct mm_cuda_node_cap *mm_cuda_cap_of(const mm_cuda_ctx *ctx, const mm_node *node)
{
    for (int i = 0; i < ctx->n_caps; i++) {
        const struct mm_cuda_node_cap *c = &ctx->caps[i];
        if (c->node == node && c->op == node->op &&
            memcmp(&c->dims, &node->p.conv, sizeof c->dims) == 0)
            return c;
    }
    return NULL;
}

size_t mm_cuda_node_cap(const mm_cuda_ctx *ctx, const mm_node *node)
{
    const struct mm_cuda_node_cap *c = mm_cuda_cap_of(ctx, node);
    return c ? c->cap : SIZE_MAX;
}

int mm_cuda_node_chunk(const mm_cuda_ctx *ctx, const mm_node *node)
{
    const struct mm_cuda_node_cap *c = mm_cuda_cap_of(ctx, node);
    return c ? c->chunk : 0;
}

/* Records node's workspace cap (SIZE_MAX: none) and samples a chunk (0: as many as cuDNN
 * takes). */
static void mm_cuda_set_node_cap(mm_cuda_ctx *ctx, const mm_node *node, size_t cap, int chunk)
{
    int i = 0;
    while (i < ctx->n_caps && ctx->caps[i].node != node) i++;
    if (i == ctx->n_caps) {
        if (ctx->n_caps == ctx->cap_caps) {
            ctx->cap_caps = ctx->cap_caps ? 2 * ctx->cap_caps : 32;
            ctx->caps = mm_xrealloc(ctx->caps, (size_t)ctx->cap_caps * sizeof *ctx->caps);
        }
        ctx->n_caps++;
    }
    ctx->caps[i] = (struct mm_cuda_node_cap){node, node->op, node->p.conv, cap, chunk};
}

/* node's time with that cap and chunk (mm_cuda_conv_node_ms: searched the first time). */
static float mm_cuda_time_as(mm_cuda_ctx *ctx, const mm_node *node, size_t cap, int chunk)
{
    mm_cuda_set_node_cap(ctx, node, cap, chunk);
    return mm_cuda_conv_node_ms(ctx, node);
}

static bool mm_cuda_cap_too_costly(float free_ms, float capped_ms, float factor)
{
    return free_ms >= 0 && capped_ms >= 0 && capped_ms > free_ms * factor &&
           capped_ms > free_ms + MM_CUDA_CAP_COST_MS;
}

/* Half node's samples a chunk (rounded up), 0 where chunks are off or it has one. */
static int mm_cuda_half_chunk(const mm_node *node)
{
    if (mm_env_switch("MM_CONV_WS_CHUNKS") == 0) return 0;
    int nb = mm_conv_chunk_samples(&node->p.conv);
    return nb > 1 ? (nb + 1) / 2 : 0;
}

/* Times node under cap `bytes` with `chunk` samples a chunk (0: whole), unless the candidates of
 * its uncapped search there show nothing within the cap that is not hopeless: then -2, searching
 * nothing. */
static float mm_cuda_capped_time(mm_cuda_ctx *ctx, const mm_node *node, size_t bytes, int chunk,
                                 float free_ms)
{
    mm_cuda_set_node_cap(ctx, node, SIZE_MAX, chunk);
    float known = free_ms >= 0 ? mm_cuda_conv_node_ms_within(ctx, node, bytes) : -1;
    if (mm_cuda_cap_too_costly(free_ms, known, MM_CUDA_CAP_HOPELESS)) return -2;
    return mm_cuda_time_as(ctx, node, bytes, chunk);
}

void mm_cuda_limit_conv(mm_cuda_ctx *ctx, const mm_graph *g, const mm_node *node, size_t bytes)
{
    if (!mm_op_is_conv(node->op)) return;
    bool strict = g->scratch_strict;
    float free_ms = mm_cuda_time_as(ctx, node, SIZE_MAX, 0); /* -1 untimed: deterministic */
    size_t free_scratch = mm_cuda_conv_node_scratch(ctx, node);
    /* the cap on the whole batch where it costs little (strict: the cap holds in any case) */
    float whole = strict ? mm_cuda_time_as(ctx, node, bytes, 0)
                         : mm_cuda_capped_time(ctx, node, bytes, 0, free_ms);
    if (whole != -2 && !mm_cuda_cap_too_costly(free_ms, whole, 1.0f + MM_CUDA_CAP_COST)) {
        mm_cuda_set_node_cap(ctx, node, bytes, 0); /* a choice not timed keeps the cap */
        return;
    }
    /* else on chunks under the cap, where that costs little (strict: where faster) */
    int half = mm_cuda_half_chunk(node);
    float half_ms = half ? mm_cuda_time_as(ctx, node, SIZE_MAX, half) : -1;
    float chunks = half ? mm_cuda_capped_time(ctx, node, bytes, half, half_ms) : -1;
    bool capped_chunks = chunks >= 0 && (strict ? chunks < whole
                                                : !mm_cuda_cap_too_costly(
                                                      free_ms, chunks, 1.0f + MM_CUDA_CAP_COST));
    if (strict || capped_chunks) {
        mm_cuda_set_node_cap(ctx, node, bytes, capped_chunks ? half : 0);
        return;
    }
    /* else its scratch is kept: the chunks' where that is less and costs little */
    mm_cuda_set_node_cap(ctx, node, SIZE_MAX, half);
    bool chunks_kept = half && half_ms >= 0 && half_ms <= free_ms * (1.0f + MM_CUDA_CHUNK_COST) &&
                       mm_cuda_conv_node_scratch(ctx, node) < free_scratch;
    if (!chunks_kept) mm_cuda_set_node_cap(ctx, node, SIZE_MAX, 0);
}

int mm_cuda_caps_kept(const mm_cuda_ctx *ctx)
{
    int kept = 0;
    for (int i = 0; i < ctx->n_caps; i++) kept += ctx->caps[i].cap == SIZE_MAX;
    return kept;
}

int mm_cuda_caps_chunked(const mm_cuda_ctx *ctx)
{
    int chunked = 0;
    for (int i = 0; i < ctx->n_caps; i++) chunked += ctx->caps[i].chunk > 0;
    return chunked;
}
