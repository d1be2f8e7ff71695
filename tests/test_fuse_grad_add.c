/* Gradient sums done by the convolution backward before them (graph.h mm_graph_fuse_grad_add):
 *  - a training step of hand-made ResNet bottlenecks gives bitwise the same loss, probabilities,
 *    gradients and statistics with the sums folded as without, with and without recomputation;
 *    every block input's gradient sum is folded (identity and projection shortcuts), none of the
 *    block joins' adds is left in the backward pass, and the activations' arena is no larger;
 *  - the whole-image ResNet50 of nets/ gives the same step with every trunk and top block's sum
 *    folded. */
#include <stdlib.h>

#include "nets/nets.h"
#include "runtime/graph.h"
#include "tests/hand_nets.h"
#include "tests/harness.h"

MM_TEST(bottlenecks_same_step)
{
    for (int rc = 0; rc < 2; rc++) {
        hn_built on, off;
        int64_t n_on, n_off;
        hn_options o = {.recompute = rc == 1, .fuse_relu_bwd = true, .fuse_residual = true,
                        .fuse_grad_add = true};
        float *a = hn_run(hn_bottleneck_net, 16, 13, &o, &on, &n_on);
        o.fuse_grad_add = false;
        float *b = hn_run(hn_bottleneck_net, 16, 13, &o, &off, &n_off);
        CHECK_EQ_INT(n_on, n_off);
        int64_t diff = n_on == n_off ? hn_bitwise_diff(a, b, n_on) : 0;
        CHECK_MSG(diff == 0, "recompute %d: %lld of %lld results differ with the sums folded", rc,
                  (long long)diff, (long long)n_on);
        /* hn_bottleneck_net: five bottlenecks, each input feeding conv1 and the shortcut (the
         * stem's max pool output for the first) */
        CHECK_EQ_INT(off.n_grad_sums, 0);
        CHECK_EQ_INT(on.n_grad_sums, 5);
        CHECK_EQ_INT(on.n_grad_adds, off.n_grad_adds - 5);
        CHECK(on.act_arena <= off.act_arena);
        free(a);
        free(b);
        hn_free(&on);
        hn_free(&off);
    }
}

MM_TEST(whole_image_resnet50_same_step)
{
    float *res[2];
    int64_t n[2];
    int sums[2];
    for (int fuse = 0; fuse < 2; fuse++) {
        mm_model_config c = mm_model_config_default(MM_MODEL_WHOLE, MM_TRUNK_RESNET50);
        c.top = "[16-16-32]x2,[16-16-32]x1";
        c.batch = 2;
        c.height = 96;
        c.width = 64;
        c.width_div = 16;
        c.training = true;
        c.fuse_grad_add = fuse;
        hn_built r;
        res[fuse] = hn_run_model(&c, NULL, &r, &n[fuse]);
        sums[fuse] = r.n_grad_sums;
    }
    CHECK_EQ_INT(sums[0], 0);
    /* 16 trunk bottlenecks and 3 in the top blocks; the first block's input is the stem's max
     * pool output, whose gradient the pool's backward needs only once */
    CHECK_MSG(sums[1] == 19, "%d gradient sums folded", sums[1]);
    CHECK_EQ_INT(n[0], n[1]);
    if (res[0] && res[1] && n[0] == n[1]) {
        int64_t diff = hn_bitwise_diff(res[0], res[1], n[0]);
        CHECK_MSG(diff == 0, "%lld of %lld results differ", (long long)diff, (long long)n[0]);
    }
    free(res[0]);
    free(res[1]);
}
