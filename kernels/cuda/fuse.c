/* Fusion of a batch norm, or a convolution with a bias, with the ReLU that follows it, found by
 * looking at the recorded graph.
 *
 * The graph records the producer and the RELU as two nodes; on the GPU the producer's last
 * element-wise pass (BN's normalisation, the convolution's bias addition) can apply the ReLU
 * itself and the RELU node then has nothing left to do, which saves a read and a write of the
 * activation. That is safe when the producer's output y has exactly one reader in the whole step
 * (forward and backward), that reader is the RELU, and y is not kept as an output: then nobody
 * ever sees y without the ReLU. (The backward passes of BN and of the convolution read their
 * inputs and dy, not y; ReLU's backward reads the ReLU's own output, which is relu(y) either way.)
 * The RELU node is skipped at run time only when its producer really ran fused just before
 * (f->applied) and it runs in place (its output is y's memory); otherwise it runs, and is at worst
 * a harmless relu(relu(y)).
 *
 * The analysis runs at plan time: the planner asks workspace_bytes() for every node in order,
 * and the call for node 0 (re)analyses that graph. run_node() looks the node up by its index in
 * g->nodes and re-checks the pattern, so a node that does not match runs unfused.
 * MM_NO_FUSE=1 in the environment turns fusion off (for debugging a kernel). */
#include <stdlib.h>
#include <string.h>

#include "../../runtime/env.h"
#include "../../runtime/graph_internal.h"
#include "cuda_backend.h"

void mm_cuda_fusion_free(mm_cuda_fusion *f)
{
    free(f->code);
    free(f->partner);
    free(f->applied);
    memset(f, 0, sizeof *f);
}

void mm_cuda_fusion_analyse(mm_cuda_fusion *f, const mm_graph *g)
{
    mm_cuda_fusion_free(f);
    f->g = g;
    f->nodes = g->nodes;
    f->n_nodes = g->n_nodes;
    f->code = mm_xcalloc((size_t)(g->n_nodes ? g->n_nodes : 1), sizeof *f->code);
    f->partner = mm_xcalloc((size_t)(g->n_nodes ? g->n_nodes : 1), sizeof *f->partner);
    f->applied = mm_xcalloc((size_t)(g->n_nodes ? g->n_nodes : 1), sizeof *f->applied);
    if (mm_env_flag("MM_NO_FUSE")) return;

    mm_graph_uses u = mm_graph_uses_of(g); /* readers of every value, and the last of them */
    for (int n = 0; n < g->n_nodes; n++) {
        int j = mm_graph_relu_after(g, &u, n);
        if (j < 0) continue;
        f->code[n] = MM_FUSE_APPLY_RELU;
        f->partner[n] = j;
        f->code[j] = MM_FUSE_RELU_DONE;
        f->partner[j] = n;
        f->n_fused++;
    }
    mm_graph_uses_free(&u);
}

mm_fuse_code mm_cuda_fusion_code(const mm_cuda_fusion *f, const mm_graph *g, const mm_node *nd)
{
    if (!f->code || f->g != g || f->nodes != g->nodes || f->n_nodes != g->n_nodes)
        return MM_FUSE_NONE;
    /* A copy of a node (not inside g->nodes) runs plainly. Compared as integers: subtracting
     * pointers into different objects is undefined (and compilers divide exactly). */
    uintptr_t a = (uintptr_t)nd, b = (uintptr_t)g->nodes;
    if (a < b || a >= b + (uintptr_t)g->n_nodes * sizeof(mm_node) || (a - b) % sizeof(mm_node))
        return MM_FUSE_NONE;
    size_t i = (a - b) / sizeof(mm_node);
    mm_fuse_code c = (mm_fuse_code)f->code[i];
    if (c == MM_FUSE_NONE) return c;
    /* Re-check the pattern against the node as it is now. */
    const mm_node *pr = c == MM_FUSE_APPLY_RELU ? nd : &g->nodes[f->partner[i]];
    const mm_node *relu = c == MM_FUSE_APPLY_RELU ? &g->nodes[f->partner[i]] : nd;
    if ((pr->op != MM_OP_BATCHNORM && pr->op != MM_OP_CONV2D) || relu->op != MM_OP_RELU ||
        relu->in[0] != pr->out[0])
        return MM_FUSE_NONE;
    return c;
}

void mm_cuda_fusion_mark_applied(mm_cuda_fusion *f, const mm_graph *g, const mm_node *producer)
{
    ptrdiff_t i = producer - g->nodes;
    f->applied[f->partner[i]] = 1;
}

bool mm_cuda_fusion_take_applied(mm_cuda_fusion *f, const mm_graph *g, const mm_node *relu)
{
    ptrdiff_t i = relu - g->nodes;
    bool a = f->applied[i] != 0;
    f->applied[i] = 0;
    return a;
}
