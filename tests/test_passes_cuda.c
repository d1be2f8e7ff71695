/* The graph passes on the CUDA backend (recomputation among them): a training step of the small
 * whole-image ResNet50 and VGG16 of nets/ (reduced width, 64x64, batch 2) with each pass on and
 * off, in fp32 and bf16.
 * The passes that fold one op into another's kernel (a residual join into the batch norm, a ReLU
 * backward into the batch-norm backward, a bias gradient into the ReLU backward, a ReLU mask into
 * the batch-norm apply that writes its input) compute the same
 * values in the same order, so the two steps must agree bitwise; a data gradient that sums
 * itself into another (cuDNN or cuBLAS with beta 1) rounds once instead of twice, so that one
 * agrees within rounding. On a GPU, cuDNN's algorithms may not be deterministic, so there every
 * pass is held to the rounding tolerance; the emulated GPU (tests/cuemu) is deterministic and
 * holds the folding passes to bitwise. Both steps must run the same convolution algorithms: the
 * planner's per-node workspace caps (which differ between two plans) are off here
 * (MM_NO_WS_LIMIT=1), so each shape's choice is made once, by the first step.
 *
 * Without a GPU this prints SKIPPED (no GPU); test_passes_cuda_emu runs it emulated. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#include "nets/nets.h"
#include "tests/hand_nets.h"
#include "tests/harness.h"

/* The input size of the steps (a pass may need a larger one to find its pattern). */
static int step_h = 64, step_w = 64;

/* One step with the pass at `flag` (a bool of mm_model_config) on and one with it off. */
static void check_pass(mm_trunk trunk, const char *top, mm_precision p, size_t flag,
                       const char *name, bool folds, hn_built *counts /* [2]: on, off; or NULL */)
{
    setenv("MM_NO_WS_LIMIT", "1", 1);
    mm_backend *be = NULL;
    mm_status st = mm_backend_cuda_create_ex(&be, p, 0);
    CHECK_MSG(st == MM_OK, "cuda backend: %s", mm_last_error());
    if (st != MM_OK) return;
    mm_model_config c = hn_small_whole(trunk, top, step_h, step_w, true);
    mm_model_config_for_backend(&c, be);
    bool *on = (bool *)((char *)&c + flag);
    float *res[2];
    int64_t n[2];
    hn_built built[2];
    for (int k = 0; k < 2; k++) {
        *on = k == 0;
        res[k] = hn_run_model(&c, be, &built[k], &n[k]);
        if (counts) counts[k] = built[k];
    }
    char what[128];
    snprintf(what, sizeof what, "%s, %s, %s", trunk == MM_TRUNK_RESNET50 ? "resnet50" : "vgg16",
             mm_precision_name(p), name);
    if (res[0] && res[1] && n[0] == n[1]) {
        int64_t diff = hn_bitwise_diff(res[0], res[1], n[0]);
        double rel = mm_test_rel_max_err(res[0], res[1], n[0]);
        if (folds && mm_cuda_emulated())
            CHECK_MSG(diff == 0, "%s: %lld of %lld results differ (relative %.3g)", what,
                      (long long)diff, (long long)n[0], rel);
        else
            CHECK_MSG(rel <= (p == MM_PRECISION_BF16 ? 2e-2 : 1e-4),
                      "%s: results differ by %.3g of their largest (%lld of %lld differ)", what,
                      rel, (long long)diff, (long long)n[0]);
    } else {
        CHECK_MSG(false, "%s: the steps could not be compared", what);
    }
    free(res[0]);
    free(res[1]);
    mm_backend_destroy(be);
}

static const mm_precision precisions[2] = {MM_PRECISION_FP32, MM_PRECISION_BF16};
static const char *resnet_top = "[16-16-32]x1", *vgg_top = "32x1";

MM_TEST(cuda_residual_joins_change_nothing)
{
    if (!mm_cuda_available(NULL, 0)) MM_SKIP("no GPU");
    for (int i = 0; i < 2; i++)
        check_pass(MM_TRUNK_RESNET50, resnet_top, precisions[i],
                   offsetof(mm_model_config, fuse_residual), "residual joins", true, NULL);
}

MM_TEST(cuda_relu_backward_in_batchnorm_changes_nothing)
{
    if (!mm_cuda_available(NULL, 0)) MM_SKIP("no GPU");
    for (int i = 0; i < 2; i++) {
        check_pass(MM_TRUNK_RESNET50, resnet_top, precisions[i],
                   offsetof(mm_model_config, fuse_relu_bwd), "relu backward folded", true, NULL);
        check_pass(MM_TRUNK_VGG16, vgg_top, precisions[i],
                   offsetof(mm_model_config, fuse_relu_bwd), "relu backward folded", true, NULL);
    }
}

MM_TEST(cuda_bias_gradient_in_relu_backward_changes_nothing)
{
    if (!mm_cuda_available(NULL, 0)) MM_SKIP("no GPU");
    for (int i = 0; i < 2; i++)
        check_pass(MM_TRUNK_VGG16, vgg_top, precisions[i],
                   offsetof(mm_model_config, fuse_bias_grad), "bias gradients folded", true, NULL);
}

MM_TEST(cuda_summed_data_gradients_agree)
{
    if (!mm_cuda_available(NULL, 0)) MM_SKIP("no GPU");
    for (int i = 0; i < 2; i++)
        check_pass(MM_TRUNK_RESNET50, resnet_top, precisions[i],
                   offsetof(mm_model_config, fuse_grad_add), "data gradients summed", false, NULL);
}

/* Recomputation (recompute.c) remakes activations with the forward's kernels, batch norms from
 * their saved statistics: the step is the one that keeps everything. */
MM_TEST(cuda_recomputation_changes_nothing)
{
    if (!mm_cuda_available(NULL, 0)) MM_SKIP("no GPU");
    for (int i = 0; i < 2; i++)
        check_pass(MM_TRUNK_RESNET50, "[16-16-32]x2", precisions[i],
                   offsetof(mm_model_config, no_recompute), "recomputation", true, NULL);
}

MM_TEST(cuda_relu_masks_in_batchnorm_apply_change_nothing)
{
    if (!mm_cuda_available(NULL, 0)) MM_SKIP("no GPU");
    /* at 64x64 relu_mask.c finds no mask worth keeping in these nets (fp32 with the cuda
     * backend's recompute slack); at 128x96 it keeps one for each recomputed ReLU output */
    step_h = 128;
    step_w = 96;
    for (int i = 0; i < 2; i++) {
        hn_built counts[2];
        check_pass(MM_TRUNK_RESNET50, resnet_top, precisions[i],
                   offsetof(mm_model_config, fuse_relu_mask), "relu masks in the apply", true,
                   counts);
        CHECK_MSG(counts[0].n_mask_folded > 0 && counts[0].n_mask_folded == counts[0].n_mask,
                  "%d of %d masks folded", counts[0].n_mask_folded, counts[0].n_mask);
        CHECK_EQ_INT(counts[1].n_mask_folded, 0);
        CHECK_EQ_INT(counts[1].n_mask, counts[0].n_mask);
    }
    step_h = step_w = 64;
}
