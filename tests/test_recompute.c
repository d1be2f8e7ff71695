/* Recomputation of cheap activations in the backward pass (graph.h g->recompute, recompute.c):
 *  - a training step with recomputation gives bitwise the same loss, probabilities, gradients
 *    and BN running statistics as one without, on the CPU (same kernels, same arithmetic), for a
 *    conv-bn-relu chain, ResNet bottlenecks with residual joins (some parameters frozen), a VGG
 *    block with max pooling, random conv nets, and the whole-image models of nets/ at a small
 *    input;
 *  - the same with convolutions recomputed too (graph.h recompute_conv_macs), with ReLU masks
 *    kept as bits (graph.h relu_mask_bits) or not, and with slack to keep residual-chain links
 *    (graph.h recompute_slack: fewer recomputing nodes, the arena within the slack);
 *  - the recomputing nodes are really there (batchnorm_apply, the residual chain, max pool,
 *    convolutions) and the planned arena is smaller with them;
 *  - the planned arena stays free of overlapping live tensors;
 *  - on a GPU, the same step with and without recomputation agrees (SKIPPED without one). */
#include <stdlib.h>
#include <string.h>

#include "kernels/philox.h"
#include "nets/nets.h"
#include "runtime/backend.h"
#include "runtime/graph.h"
#include "runtime/planner.h"
#include "runtime/session.h"
#include "tests/hand_nets.h"
#include "tests/harness.h"

/* ---- the hand-made nets (tests/hand_nets.h), recorded with these switches ---- */
/* recompute_conv_macs of the steps with recomputation (0: none), whether they keep ReLU masks as
 * bits (graph.h relu_mask_bits; the default, on), and fold ReLU backwards into batch norms. */
static int64_t hand_conv_macs;
static bool hand_no_mask_bits;
static bool hand_fuse_relu_bwd; /* graph.h fuse_relu_bwd */

typedef hn_built built;

static float *run_hand_net(hn_net net, int h, int w, bool recompute, const char *frozen,
                           built *r, int64_t *n_res)
{
    hn_options o = {.recompute = recompute,
                    .conv_macs = hand_conv_macs,
                    .no_mask_bits = hand_no_mask_bits,
                    .fuse_relu_bwd = hand_fuse_relu_bwd,
                    .frozen = frozen};
    return hn_run(net, h, w, &o, r, n_res);
}

/* The step with and without recomputation: bitwise equal results; returns the arenas. */
static void compare_hand_net(const char *what, hn_net net, int h, int w, const char *frozen,
                             built *on, built *off)
{
    int64_t n_on, n_off;
    float *a = run_hand_net(net, h, w, true, frozen, on, &n_on);
    float *b = run_hand_net(net, h, w, false, frozen, off, &n_off);
    CHECK_EQ_INT(n_on, n_off);
    if (n_on == n_off) {
        int64_t diff = hn_bitwise_diff(a, b, n_on);
        CHECK_MSG(diff == 0, "%s: %lld of %lld results differ with recomputation", what,
                  (long long)diff, (long long)n_on);
    }
    /* nothing is recomputed without the option */
    CHECK_EQ_INT(off->n_apply, 0);
    CHECK_EQ_INT(off->n_conv, 0);
    free(a);
    free(b);
}

MM_TEST(conv_bn_relu_chain)
{
    built on, off;
    compare_hand_net("chain", hn_chain_net, 11, 9, NULL, &on, &off);
    /* the two inner ReLU outputs feed a convolution's filter gradient: recomputed */
    CHECK(on.n_apply >= 2);
    CHECK_MSG(on.act_arena < off.act_arena, "arena %zu vs %zu", on.act_arena,
              off.act_arena);
    hn_free(&on);
    hn_free(&off);
}

MM_TEST(resnet_bottlenecks_with_residual_joins)
{
    built on, off;
    compare_hand_net("bottlenecks", hn_bottleneck_net, 16, 13, NULL, &on, &off);
    CHECK(on.n_apply >= 10);
    /* the residual chain: adds recomputed in the backward pass, and the stem's max pool */
    int adds = 0, pools = 0;
    for (int n = on.g->n_forward; n < on.g->n_nodes; n++) {
        const mm_node *nd = &on.g->nodes[n];
        pools += nd->op == MM_OP_MAXPOOL;
        /* a recomputing add reads BN_APPLY outputs or earlier recomputed values */
        adds += nd->op == MM_OP_ADD && on.g->values[nd->in[0]].producer >= on.g->n_forward &&
                on.g->nodes[on.g->values[nd->in[0]].producer].op == MM_OP_BN_APPLY;
    }
    CHECK(adds >= 3);
    CHECK(pools >= 1);
    CHECK_MSG(on.act_arena < off.act_arena, "arena %zu vs %zu", on.act_arena,
              off.act_arena);
    hn_free(&on);
    hn_free(&off);
}

MM_TEST(resnet_bottlenecks_partly_frozen)
{
    /* The stem and the first block frozen: their BN backward is not recorded, so their
     * statistics are not kept and what the first trainable layers read must be kept instead. */
    built on, off;
    compare_hand_net("frozen bottlenecks", hn_bottleneck_net, 16, 13,
                     "l0.,l1.,l2.,l3.,l4.,l5.,l6.", &on, &off);
    CHECK(on.n_apply >= 1);
    CHECK(on.act_arena <= off.act_arena);
    hn_free(&on);
    hn_free(&off);
}

MM_TEST(vgg_block_with_max_pool)
{
    built on, off;
    compare_hand_net("vgg", hn_vgg_net, 12, 10, NULL, &on, &off);
    /* conv -> relu outputs stay (the conv output is not kept); the ReLU before each max pool is
     * folded into the pool's backward, which reads the pool's kept output: nothing to recompute */
    CHECK_EQ_INT(on.n_apply, 0);
    int pools = 0;
    for (int n = on.g->n_forward; n < on.g->n_nodes; n++) pools += on.g->nodes[n].op == MM_OP_MAXPOOL;
    CHECK_EQ_INT(pools, 0);
    CHECK(on.act_arena <= off.act_arena);
    hn_free(&on);
    hn_free(&off);
}

/* Every convolution recomputable: the bottlenecks and the VGG block give the same step, with
 * convolutions really recorded in the backward pass, in an arena no larger than keeping them. */
MM_TEST(convolutions_recomputed_too)
{
    built on, off, bn_only;
    hand_conv_macs = 1 << 30;
    compare_hand_net("bottlenecks, convolutions recomputed", hn_bottleneck_net, 16, 13, NULL, &on,
                     &off);
    hand_conv_macs = 0;
    int64_t n;
    free(run_hand_net(hn_bottleneck_net, 16, 13, true, NULL, &bn_only, &n));
    CHECK_MSG(on.n_conv >= 3, "%d convolutions recomputed", on.n_conv);
    CHECK_EQ_INT(bn_only.n_conv, 0);
    CHECK_MSG(on.act_arena <= bn_only.act_arena, "arena %zu vs %zu without conv",
              on.act_arena, bn_only.act_arena);
    hn_free(&on);
    hn_free(&off);
    hn_free(&bn_only);

    hand_conv_macs = 1 << 30;
    compare_hand_net("vgg, convolutions recomputed", hn_vgg_net, 12, 10, NULL, &on, &off);
    hand_conv_macs = 0;
    CHECK(on.act_arena <= off.act_arena);
    hn_free(&on);
    hn_free(&off);
}

/* ReLU masks as bits (relu_mask.c): bitwise the same step, the masks really recorded where
 * they shrink the arena, the arena no larger; with the ReLU backward folded into the batch-norm
 * backward (fuse_relu_bwd) too, where the batch norm's backward reads the bits. */
MM_TEST(relu_masks_as_bits)
{
    hn_net nets[3] = {hn_vgg_net, hn_bottleneck_net, hn_chain_net};
    const char *names[3] = {"vgg", "bottlenecks", "chain"};
    int masked = 0, bn_bits = 0;
    for (int k = 0; k < 6; k++) {
        hand_fuse_relu_bwd = k >= 3;
        built on, off;
        int64_t n_on, n_off;
        float *a = run_hand_net(nets[k % 3], 16, 13, false, NULL, &on, &n_on);
        /* the reference: no bits, no folding */
        hand_no_mask_bits = true;
        hand_fuse_relu_bwd = false;
        float *b = run_hand_net(nets[k % 3], 16, 13, false, NULL, &off, &n_off);
        hand_no_mask_bits = false;
        CHECK_EQ_INT(n_on, n_off);
        int64_t diff = n_on == n_off ? hn_bitwise_diff(a, b, n_on) : 0;
        CHECK_MSG(diff == 0, "%s%s: %lld of %lld results differ with bit masks", names[k % 3],
                  k >= 3 ? " (relu backward folded)" : "", (long long)diff, (long long)n_on);
        CHECK_EQ_INT(off.n_mask, 0);
        if (k < 3) CHECK(on.act_arena <= off.act_arena);
        if (on.n_mask > 0) CHECK(on.act_arena < off.act_arena);
        CHECK(on.n_bn_bits <= on.n_mask);
        masked += on.n_mask > 0;
        bn_bits += on.n_bn_bits;
        free(a);
        free(b);
        hn_free(&on);
        hn_free(&off);
    }
    hand_fuse_relu_bwd = false;
    CHECK_MSG(masked >= 2, "%d nets kept a ReLU mask as bits", masked);
    CHECK_MSG(bn_bits >= 1, "no batch-norm backward read a ReLU mask as bits");
}

/* ---- random conv nets (as test_planner's), gradients and plans ---- */
static uint64_t rnd_seed;

static int random_net(hn_builder *b, int x)
{
    int prev[16], n_prev = 0;
    int units = 4 + (int)(mm_philox_u32(rnd_seed, 1) % 6);
    for (int u = 0; u < units; u++) {
        uint32_t r = mm_philox_u32(rnd_seed, 10 + (uint64_t)u);
        int kc = 4 + (int)(r % 3) * 2, ks = (r >> 4) % 2 ? 3 : 1;
        int y = hn_bn(b, hn_conv(b, x, kc, ks, 1, false));
        for (int q = n_prev - 1; q >= 0 && (r >> 8) % 2; q--)
            if (mm_shape_equal(4, b->g->values[prev[q]].shape, 4, b->g->values[y].shape)) {
                y = mm_add(b->g, y, prev[q]);
                break;
            }
        if ((r >> 10) % 4 != 0) y = mm_relu(b->g, y);
        if ((r >> 12) % 4 == 0 && b->g->values[y].shape[1] >= 4) y = mm_maxpool(b->g, y, 2, 2, 0);
        x = y;
        if (n_prev < 16) prev[n_prev++] = y;
    }
    return hn_head(b, x);
}

MM_TEST(random_nets_same_gradients)
{
    int recomputed = 0, convs = 0;
    for (rnd_seed = 1; rnd_seed <= 12; rnd_seed++) {
        built on, off;
        char what[48];
        /* every other net with its 1x1 convolutions (at most 8 input channels) recomputable */
        hand_conv_macs = rnd_seed % 2 ? 8 : 0;
        snprintf(what, sizeof what, "random net %llu, conv macs %lld",
                 (unsigned long long)rnd_seed, (long long)hand_conv_macs);
        compare_hand_net(what, random_net, 10, 9, rnd_seed % 3 == 0 ? "l0.,l1." : NULL, &on, &off);
        CHECK_MSG(on.act_arena <= off.act_arena, "seed %llu: arena %zu vs %zu",
                  (unsigned long long)rnd_seed, on.act_arena, off.act_arena);
        recomputed += on.n_apply > 0;
        convs += on.n_conv > 0;
        hn_free(&on);
        hn_free(&off);
    }
    hand_conv_macs = 0;
    CHECK(recomputed >= 8);
    CHECK_MSG(convs >= 2, "%d nets recomputed a convolution", convs);
}

/* ---- the whole-image models of nets/ at a small input (reduced-width trunks) ---- */
static double model_slack; /* graph.h recompute_slack of the steps with recomputation */

static float *run_model(mm_trunk trunk, const char *top, int h, int w, bool recompute,
                        int64_t conv_macs, size_t *arena, int *n_apply, int64_t *n_res)
{
    mm_model_config c = hn_small_whole(trunk, top, h, w, true);
    c.no_recompute = !recompute;
    c.recompute_conv_macs = conv_macs;
    c.recompute_slack = recompute ? model_slack : 0.0;
    built r;
    float *res = hn_run_model(&c, NULL, &r, n_res);
    *arena = r.act_arena;
    *n_apply = r.n_apply;
    return res;
}

static void compare_model(mm_trunk trunk, const char *top, int h, int w, int64_t conv_macs)
{
    size_t arena_on, arena_off;
    int apply_on, apply_off;
    int64_t n_on, n_off;
    float *a = run_model(trunk, top, h, w, true, conv_macs, &arena_on, &apply_on, &n_on);
    float *b = run_model(trunk, top, h, w, false, 0, &arena_off, &apply_off, &n_off);
    if (!a || !b) {
        free(a);
        free(b);
        return;
    }
    CHECK_EQ_INT(n_on, n_off);
    if (n_on == n_off) {
        int64_t diff = hn_bitwise_diff(a, b, n_on);
        CHECK_MSG(diff == 0, "%s %s conv macs %lld: %lld of %lld results differ with "
                  "recomputation", mm_trunk_name(trunk), top, (long long)conv_macs,
                  (long long)diff, (long long)n_on);
    }
    CHECK_EQ_INT(apply_off, 0);
    if (trunk == MM_TRUNK_RESNET50) CHECK(apply_on > 50);
    /* VGG keeps everything its backward reads unless convolutions are recomputed */
    if (trunk == MM_TRUNK_RESNET50 || conv_macs > 0)
        CHECK_MSG(arena_on < arena_off, "%s: arena %zu with recomputation, %zu without",
                  mm_trunk_name(trunk), arena_on, arena_off);
    else
        CHECK(arena_on <= arena_off);
    free(a);
    free(b);
}

/* Without and with the cuda backend's convolution recomputation (at width_div 16 most
 * convolutions of both trunks fall within it). */
MM_TEST(whole_image_resnet50)
{
    compare_model(MM_TRUNK_RESNET50, "[16-16-32]x2,[16-16-32]x1", 96, 64, 0);
    compare_model(MM_TRUNK_RESNET50, "[16-16-32]x2,[16-16-32]x1", 96, 64,
                  MM_RECOMPUTE_CONV_MACS_CUDA);
}

/* With slack (graph.h recompute_slack) the residual chains' links are kept where that pays:
 * fewer batch-norm applies than with none, the same results bitwise. */
MM_TEST(whole_image_resnet50_with_slack)
{
    const char *top = "[16-16-32]x2,[16-16-32]x1";
    int64_t macs = MM_RECOMPUTE_CONV_MACS_CUDA;
    size_t arena0, arena1;
    int apply0, apply1;
    int64_t n0, n1;
    model_slack = 0.0;
    float *a = run_model(MM_TRUNK_RESNET50, top, 160, 128, true, macs, &arena0, &apply0, &n0);
    model_slack = 0.5;
    compare_model(MM_TRUNK_RESNET50, top, 160, 128, macs);
    float *b = run_model(MM_TRUNK_RESNET50, top, 160, 128, true, macs, &arena1, &apply1, &n1);
    model_slack = 0.0;
    printf("    slack 0: %d applies, arena %zu; slack 50%%: %d applies, arena %zu\n", apply0,
           arena0, apply1, arena1);
    CHECK_MSG(apply1 < apply0, "%d batch-norm applies with slack, %d without", apply1, apply0);
    CHECK(arena1 <= arena0 + arena0 / 2 + arena0 / 20);
    free(a);
    free(b);
}

MM_TEST(whole_image_vgg16)
{
    compare_model(MM_TRUNK_VGG16, "32x1,32x1", 128, 128, 0);
    compare_model(MM_TRUNK_VGG16, "32x1,32x1", 128, 128, MM_RECOMPUTE_CONV_MACS_CUDA);
}

/* ---- full size on the meta backend: the planned step shrinks ---- */
static int planned_applies; /* MM_OP_BN_APPLY nodes of the last planned step */

static size_t planned_arena(mm_trunk trunk, const char *top, bool recompute, int64_t conv_macs)
{
    mm_model_config c = mm_model_config_default(MM_MODEL_WHOLE, trunk);
    c.top = top;
    c.batch = 2;
    c.training = true;
    c.no_recompute = !recompute;
    c.recompute_conv_macs = conv_macs;
    c.recompute_slack = recompute ? model_slack : 0.0;
    mm_model m;
    CHECK(mm_model_build(&m, &c) == MM_OK);
    planned_applies = 0;
    for (int i = 0; i < m.g->n_nodes; i++) planned_applies += m.g->nodes[i].op == MM_OP_BN_APPLY;
    mm_backend *be;
    mm_backend_meta_create(&be);
    mm_plan p;
    CHECK(mm_plan_make(&p, m.g, be, 2) == MM_OK);
    size_t a = p.arena_bytes;
    /* the offline placement leaves few holes: the arena is close to the most bytes live at once
     * (within 2% for ResNet50; VGG16's few full-resolution tensors leave a hole of 14%) */
    CHECK_MSG(p.arena_bytes <= p.live_peak_bytes + p.live_peak_bytes / 7,
              "%s: arena %zu, live peak %zu", mm_trunk_name(trunk), p.arena_bytes,
              p.live_peak_bytes);
    mm_plan_free(&p);
    mm_model_free(&m);
    mm_backend_destroy(be);
    return a;
}

MM_TEST(full_size_plans_shrink)
{
    const char *top = "[512-512-1024]x2,[512-512-1024]x2";
    size_t conv = planned_arena(MM_TRUNK_RESNET50, top, true, MM_RECOMPUTE_CONV_MACS_CUDA);
    size_t on = planned_arena(MM_TRUNK_RESNET50, top, true, 0);
    size_t off = planned_arena(MM_TRUNK_RESNET50, top, false, 0);
    printf("    resnet50 1152x896 batch 2 arena: %.1f MiB recomputing cheap convolutions too, "
           "%.1f MiB recomputing, %.1f MiB keeping\n",
           conv / 1048576.0, on / 1048576.0, off / 1048576.0);
    CHECK(on < off * 6 / 10);
    CHECK(conv < on * 6 / 10);
    size_t vgg_conv =
        planned_arena(MM_TRUNK_VGG16, "512x1,512x1", true, MM_RECOMPUTE_CONV_MACS_CUDA);
    size_t vgg_on = planned_arena(MM_TRUNK_VGG16, "512x1,512x1", true, 0);
    printf("    vgg16 1152x896 batch 2 arena: %.1f MiB recomputing cheap convolutions too, "
           "%.1f MiB recomputing\n", vgg_conv / 1048576.0, vgg_on / 1048576.0);
    CHECK(vgg_conv <= vgg_on);
    /* the ReLU before each max pool is folded into the pool's backward (autograd.c), so its
     * output is not kept, and the ReLU masks at the front are bits (relu_mask.c): VGG16's arena
     * is well under the 2197 MiB it took before those */
    CHECK(vgg_on < (size_t)1600 << 20);
    CHECK(vgg_conv < (size_t)1300 << 20);
}

/* The cuda default's slack at full size: ResNet50's residual chains are remade far less often
 * (105 batch-norm applies for its 67 batch norms without slack) for an arena at most ~20% larger
 * (the slack bounds the arena before the fusion passes; they move it by a little). */
MM_TEST(full_size_slack_remakes_less)
{
    const char *top = "[512-512-1024]x2,[512-512-1024]x2";
    int64_t macs = mm_recompute_conv_cuda(MM_PRECISION_TF32);
    size_t tight = planned_arena(MM_TRUNK_RESNET50, top, true, macs);
    int tight_applies = planned_applies;
    model_slack = mm_recompute_slack_cuda(MM_PRECISION_TF32);
    size_t loose = planned_arena(MM_TRUNK_RESNET50, top, true, macs);
    model_slack = 0.0;
    printf("    resnet50 1152x896 batch 2: %d applies in %.1f MiB without slack, %d in %.1f MiB "
           "with %g%%\n", tight_applies, tight / 1048576.0, planned_applies, loose / 1048576.0,
           100 * mm_recompute_slack_cuda(MM_PRECISION_TF32));
    CHECK_MSG(planned_applies + 20 <= tight_applies, "%d applies with slack, %d without",
              planned_applies, tight_applies);
    CHECK(loose <= tight + tight / 5 + tight / 50);
    CHECK_EQ_INT(mm_recompute_slack_cuda(MM_PRECISION_BF16) == 0.0, 1);
    /* bf16 recomputes the stem too; fp32 and tf32 keep it */
    CHECK_EQ_INT(mm_recompute_conv_cuda(MM_PRECISION_BF16), 147);
    CHECK_EQ_INT(mm_recompute_conv_cuda(MM_PRECISION_FP32), 128);
}

/* ---- on a GPU: the same step with and without recomputation ---- */
MM_TEST(cuda_step_same_with_recompute)
{
    if (!mm_cuda_available(NULL, 0)) MM_SKIP("no GPU");
    const mm_precision precs[2] = {MM_PRECISION_FP32, MM_PRECISION_BF16};
    for (int pi = 0; pi < 2; pi++) {
        float *res[2];
        int64_t n[2];
        for (int rc = 0; rc < 2; rc++) {
            mm_model_config c = mm_model_config_default(MM_MODEL_WHOLE, MM_TRUNK_RESNET50);
            c.top = "[16-16-32]x2";
            c.batch = 2;
            c.height = 96;
            c.width = 64;
            c.width_div = 8;
            c.training = true;
            c.no_recompute = rc == 1;
            c.recompute_conv_macs = rc == 0 ? MM_RECOMPUTE_CONV_MACS_CUDA : 0;
            c.act_dtype = precs[pi] == MM_PRECISION_BF16 ? MM_BF16 : MM_F32;
            mm_backend *be;
            CHECK_MSG(mm_backend_cuda_create_ex(&be, precs[pi], 0) == MM_OK, "%s", mm_last_error());
            built r;
            res[rc] = hn_run_model(&c, be, &r, &n[rc]);
            mm_backend_destroy(be);
        }
        CHECK_EQ_INT(n[0], n[1]);
        /* The recomputed copies are bitwise the forward's (same kernels); convolution
         * algorithms with atomics may still reorder sums, so allow rounding: 1e-4 relative in
         * fp32; bf16 rounds every activation, and a reordered sum there moves the gradients by
         * about 1.5e-4 (measured on an H100), so 1e-3. */
        double tol = precs[pi] == MM_PRECISION_BF16 ? 1e-3 : 1e-4;
        double err = 0, ref = 0;
        for (int64_t i = 0; i < n[0] && n[0] == n[1]; i++) {
            double d = (double)res[0][i] - res[1][i];
            err += d * d;
            ref += (double)res[1][i] * res[1][i];
        }
        CHECK_MSG(err <= tol * tol * (ref > 0 ? ref : 1), "%s: relative L2 difference %g",
                  mm_precision_name(precs[pi]), ref > 0 ? sqrt(err / ref) : sqrt(err));
        free(res[0]);
        free(res[1]);
    }
}
