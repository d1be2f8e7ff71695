/* Bias gradients taken by the ReLU backward that writes their dy (graph.h
 * mm_graph_fuse_bias_grad):
 *  - a training step of hand-made VGG blocks gives bitwise the same loss, probabilities,
 *    gradients and statistics with the bias gradients folded as without, with and without
 *    recomputation and with the ReLU masks kept as bits, and no bias node is left where a ReLU
 *    backward writes dy (the convolutions before a max pool keep theirs: the pool's backward
 *    writes their dy);
 *  - the whole-image VGG16 of nets/ gives the same step. */
#include <stdlib.h>

#include "nets/nets.h"
#include "runtime/graph.h"
#include "tests/hand_nets.h"
#include "tests/harness.h"

MM_TEST(vgg_blocks_same_step)
{
    for (int rc = 0; rc < 2; rc++) {
        hn_built on, off;
        int64_t n_on, n_off;
        hn_options o = {.recompute = rc == 1, .fuse_bias_grad = true};
        float *a = hn_run(hn_vgg_net, 12, 10, &o, &on, &n_on);
        o.fuse_bias_grad = false;
        float *b = hn_run(hn_vgg_net, 12, 10, &o, &off, &n_off);
        CHECK_EQ_INT(n_on, n_off);
        int64_t diff = n_on == n_off ? hn_bitwise_diff(a, b, n_on) : 0;
        CHECK_MSG(diff == 0, "recompute %d: %lld of %lld results differ with the bias gradients "
                  "folded", rc, (long long)diff, (long long)n_on);
        /* hn_vgg_net: two blocks of two convolutions and a pool, then one more convolution; the
         * second of each block feeds the pool, the others a ReLU read by a convolution */
        CHECK_EQ_INT(off.n_bias, 5);
        CHECK_EQ_INT(off.n_bias_folded, 0);
        CHECK_EQ_INT(on.n_bias_folded, 3);
        CHECK_EQ_INT(on.n_bias, 2);
        CHECK(on.act_arena <= off.act_arena);
        free(a);
        free(b);
        hn_free(&on);
        hn_free(&off);
    }
}

MM_TEST(whole_image_vgg16_same_step)
{
    mm_model_config c = hn_small_whole(MM_TRUNK_VGG16, "32x1,32x1", 128, 128, true);
    hn_built on, off;
    int64_t diff = hn_model_flag_diff(&c, &c.fuse_bias_grad, &on, &off);
    CHECK_MSG(diff == 0, "%lld results differ with the bias gradients folded", (long long)diff);
    /* VGG16's 13 convolutions: the 8 not followed by a max pool */
    CHECK_EQ_INT(on.n_bias_folded, 8);
    CHECK_EQ_INT(off.n_bias_folded, 0);
}
