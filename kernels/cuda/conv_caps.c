/* Workspace caps of convolution nodes, the CUDA backend's side of the planner's limit_workspace
 * (planner.h): a node asked to fit its scratch in the room the activations leave re-chooses its
 * algorithm under that cap (conv_cudnn.c looks the cap up with mm_cuda_node_cap), unless the
 * graph is not strict (graph.h scratch_strict) and the cap would cost it too much time: then it
 * keeps its scratch, and the step's peak rises instead. */
#include <stdint.h>
#include <string.h>

#include "cuda_backend.h"

/* A convolution whose algorithm under its cap is this much slower than its fastest (a fraction,
 * and at least MM_CUDA_CAP_COST_MS in all) keeps its scratch. Where the candidates its uncapped
 * search timed show every one within the cap over MM_CUDA_CAP_HOPELESS times slower, it keeps it
 * without searching under the cap (on the H200, timing those slow algorithms was most of VGG16's
 * fp32 set-up). */
#define MM_CUDA_CAP_COST 0.10f
#define MM_CUDA_CAP_COST_MS 0.02f
#define MM_CUDA_CAP_HOPELESS 1.5f

size_t mm_cuda_node_cap(const mm_cuda_ctx *ctx, const mm_node *node)
{
    for (int i = 0; i < ctx->n_caps; i++) {
        const struct mm_cuda_node_cap *c = &ctx->caps[i];
        if (c->node == node && c->op == node->op &&
            memcmp(&c->dims, &node->p.conv, sizeof c->dims) == 0)
            return c->cap;
    }
    return SIZE_MAX;
}

/* Records `cap` as node's workspace cap (SIZE_MAX: none). */
static void mm_cuda_set_node_cap(mm_cuda_ctx *ctx, const mm_node *node, size_t cap)
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
    ctx->caps[i] = (struct mm_cuda_node_cap){node, node->op, node->p.conv, cap};
}

static bool mm_cuda_cap_too_costly(float free_ms, float capped_ms, float factor)
{
    return free_ms >= 0 && capped_ms >= 0 && capped_ms > free_ms * factor &&
           capped_ms > free_ms + MM_CUDA_CAP_COST_MS;
}

void mm_cuda_limit_conv(mm_cuda_ctx *ctx, const mm_graph *g, const mm_node *node, size_t bytes)
{
    if (node->op != MM_OP_CONV2D && node->op != MM_OP_CONV2D_BWD_DATA &&
        node->op != MM_OP_CONV2D_BWD_FILTER)
        return;
    mm_cuda_set_node_cap(ctx, node, SIZE_MAX);
    float free_ms = g->scratch_strict ? -1 : mm_cuda_conv_node_ms(ctx, node);
    float known_ms = free_ms >= 0 ? mm_cuda_conv_node_ms_within(ctx, node, bytes) : -1;
    if (mm_cuda_cap_too_costly(free_ms, known_ms, MM_CUDA_CAP_HOPELESS)) return;
    mm_cuda_set_node_cap(ctx, node, bytes);
    /* a choice not timed keeps the cap */
    float capped_ms = free_ms >= 0 ? mm_cuda_conv_node_ms(ctx, node) : -1;
    if (mm_cuda_cap_too_costly(free_ms, capped_ms, 1.0f + MM_CUDA_CAP_COST))
        mm_cuda_set_node_cap(ctx, node, SIZE_MAX);
}

int mm_cuda_caps_kept(const mm_cuda_ctx *ctx)
{
    int kept = 0;
    for (int i = 0; i < ctx->n_caps; i++) kept += ctx->caps[i].cap == SIZE_MAX;
    return kept;
}
