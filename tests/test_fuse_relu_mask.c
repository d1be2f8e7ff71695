/* ReLU masks written by the batch-norm apply that makes their input (graph.h
 * mm_graph_fuse_relu_mask):
 *  - the whole-image ResNet50 of nets/ at a small input, recomputing as the cuda backend does,
 *    gives bitwise the same CPU step with the masks folded as without, and every mask is folded;
 *  - at full size (1152x896, batch 2, the meta backend's plan) no mask node is left, and the
 *    arena grows by no more than the bits living a little longer.
 * The CUDA kernel is held to the same bits by test_passes_cuda (emulated where CI runs). */
#include "nets/nets.h"
#include "runtime/graph.h"
#include "runtime/planner.h"
#include "tests/hand_nets.h"
#include "tests/harness.h"

MM_TEST(whole_image_resnet50_same_step)
{
    mm_model_config c =
        hn_small_whole(MM_TRUNK_RESNET50, "[16-16-32]x2,[16-16-32]x1", 96, 64, true);
    c.no_recompute = false;
    c.recompute_conv_macs = MM_RECOMPUTE_CONV_MACS_CUDA;
    hn_built on, off;
    int64_t diff = hn_model_flag_diff(&c, &c.fuse_relu_mask, &on, &off);
    CHECK_MSG(diff == 0, "%lld results differ with the masks folded", (long long)diff);
    CHECK_MSG(on.n_mask > 20 && on.n_mask_folded == on.n_mask, "%d of %d masks folded",
              on.n_mask_folded, on.n_mask);
    CHECK_EQ_INT(off.n_mask_folded, 0);
    CHECK_EQ_INT(off.n_mask, on.n_mask);
}

static size_t full_size_arena(bool fold, int *masks_left, int *folded)
{
    mm_model_config c = mm_model_config_default(MM_MODEL_WHOLE, MM_TRUNK_RESNET50);
    c.top = "[512-512-1024]x2,[512-512-1024]x2";
    c.batch = 2;
    c.training = true;
    c.recompute_conv_macs = MM_RECOMPUTE_CONV_MACS_CUDA;
    c.recompute_slack = mm_recompute_slack_cuda(MM_PRECISION_FP32);
    c.fuse_relu_mask = fold;
    mm_model m;
    CHECK(mm_model_build(&m, &c) == MM_OK);
    *masks_left = *folded = 0;
    for (int n = 0; n < m.g->n_nodes; n++) {
        const mm_node *nd = &m.g->nodes[n];
        *masks_left += nd->op == MM_OP_RELU_MASK;
        *folded += nd->op == MM_OP_BN_APPLY && nd->n_out > 1;
    }
    size_t arena = mm_plan_arena_bytes(m.g);
    mm_model_free(&m);
    return arena;
}

MM_TEST(full_size_resnet50_folds_every_mask)
{
    int left_on, folded_on, left_off, folded_off;
    size_t on = full_size_arena(true, &left_on, &folded_on);
    size_t off = full_size_arena(false, &left_off, &folded_off);
    printf("    resnet50 1152x896 batch 2: %d masks, all folded; arena %.1f MiB folded, %.1f MiB "
           "not\n", left_off, on / 1048576.0, off / 1048576.0);
    CHECK(left_off > 40);
    CHECK_EQ_INT(left_on, 0);
    CHECK_EQ_INT(folded_on, left_off);
    CHECK_EQ_INT(folded_off, 0);
    CHECK(on <= off + off / 100);
}
