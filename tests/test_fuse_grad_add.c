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
    mm_model_config c =
        hn_small_whole(MM_TRUNK_RESNET50, "[16-16-32]x2,[16-16-32]x1", 96, 64, true);
    hn_built on, off;
    int64_t diff = hn_model_flag_diff(&c, &c.fuse_grad_add, &on, &off);
    CHECK_MSG(diff == 0, "%lld results differ with the gradient sums folded", (long long)diff);
    /* 16 trunk bottlenecks and 3 in the top blocks: every block input's gradient sum */
    CHECK_MSG(on.n_grad_sums == 19, "%d gradient sums folded", on.n_grad_sums);
    CHECK_EQ_INT(off.n_grad_sums, 0);
}
