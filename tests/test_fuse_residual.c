/* Residual joins done by the batch norm before them (graph.h mm_graph_fuse_residual):
 *  - a training step of hand-made ResNet bottlenecks gives bitwise the same loss, probabilities,
 *    gradients and running statistics with the joins fused as without, with recomputation on
 *    (the recomputed joins of the backward pass fused too) and off, with frozen layers (their
 *    batch norms in evaluation mode), and in an arena no larger;
 *  - every bottleneck's add and ReLU are gone from the forward nodes;
 *  - an add whose sum has two readers is taken in without the ReLU; a batch-norm output that is
 *    kept or read twice is left alone;
 *  - the whole-image ResNet50 of nets/ (training and evaluation) gives the same results. */
#include <stdlib.h>
#include <string.h>

#include "nets/nets.h"
#include "runtime/backend.h"
#include "runtime/graph.h"
#include "runtime/session.h"
#include "tests/hand_nets.h"
#include "tests/harness.h"

static int count_op(const mm_graph *g, mm_op op, int from, int to)
{
    int k = 0;
    for (int n = from; n < to; n++) k += g->nodes[n].op == op;
    return k;
}

/* The step of `net` with and without the fusion: bitwise the same; returns both. */
static void compare(const char *what, hn_net net, hn_options o, hn_built *on, hn_built *off)
{
    int64_t n_on, n_off;
    o.fuse_residual = true;
    float *a = hn_run(net, 16, 13, &o, on, &n_on);
    o.fuse_residual = false;
    float *b = hn_run(net, 16, 13, &o, off, &n_off);
    CHECK_EQ_INT(n_on, n_off);
    int64_t diff = n_on == n_off ? hn_bitwise_diff(a, b, n_on) : 0;
    CHECK_MSG(diff == 0, "%s: %lld of %lld results differ with the joins fused", what,
              (long long)diff, (long long)n_on);
    CHECK_EQ_INT(off->n_joins, 0);
    CHECK_MSG(on->act_arena <= off->act_arena, "%s: arena %zu fused, %zu not", what,
              on->act_arena, off->act_arena);
    free(a);
    free(b);
}

MM_TEST(bottlenecks_same_step)
{
    for (int rc = 0; rc < 2; rc++) {
        hn_built on, off;
        hn_options o = {.recompute = rc == 1, .fuse_relu_bwd = true};
        compare(rc ? "bottlenecks, recomputing" : "bottlenecks", hn_bottleneck_net, o, &on, &off);
        /* five bottlenecks: every forward join fused, no add or ReLU of a join left */
        int nf = on.g->n_forward;
        int fwd_joins = 0;
        for (int n = 0; n < nf; n++)
            fwd_joins += on.g->nodes[n].op == MM_OP_BATCHNORM && on.g->nodes[n].p.bn.add &&
                         on.g->nodes[n].p.bn.relu;
        CHECK_EQ_INT(fwd_joins, 5);
        CHECK_EQ_INT(count_op(on.g, MM_OP_ADD, 0, nf), 0);
        CHECK_EQ_INT(count_op(off.g, MM_OP_ADD, 0, nf), 5);
        /* the stem's and the bottlenecks' inner ReLUs stay (fused at run time on CUDA) */
        CHECK_EQ_INT(count_op(on.g, MM_OP_RELU, 0, nf), count_op(off.g, MM_OP_RELU, 0, nf) - 5);
        /* recomputed blocks in the backward pass: their joins fused too */
        if (rc == 1) CHECK_MSG(on.n_joins > 5, "%d joins fused", on.n_joins);
        if (rc == 1) CHECK(on.act_arena < off.act_arena);
        hn_free(&on);
        hn_free(&off);
    }
}

MM_TEST(frozen_bottlenecks_same_step)
{
    /* the stem and the first bottleneck frozen: their batch norms run in evaluation mode */
    hn_built on, off;
    hn_options o = {.recompute = true, .fuse_relu_bwd = true,
                    .frozen = "l0.,l1.,l2.,l3.,l4.,l5.,l6.,l7.,l8.,l9."};
    compare("frozen bottlenecks", hn_bottleneck_net, o, &on, &off);
    int eval_joins = 0;
    for (int n = 0; n < on.g->n_forward; n++) {
        const mm_node *nd = &on.g->nodes[n];
        eval_joins += nd->op == MM_OP_BATCHNORM && nd->p.bn.add && !nd->p.bn.training;
    }
    CHECK(eval_joins >= 1);
    hn_free(&on);
    hn_free(&off);
}

/* A bottleneck whose sum s is read twice (by its ReLU and by the next add): the batch norm takes
 * the add in but not the ReLU. */
static int shared_sum_net(hn_builder *b, int x)
{
    x = hn_cbr(b, x, 8, 3, 1);
    int y = hn_bn(b, hn_conv(b, x, 8, 1, 1, false));
    int s = mm_add(b->g, y, x);
    int z = mm_relu(b->g, s);
    return hn_head(b, mm_add(b->g, z, s));
}

/* A batch-norm output read by the add and by the head as well: not fused. */
static int shared_bn_net(hn_builder *b, int x)
{
    x = hn_cbr(b, x, 8, 3, 1);
    int y = hn_bn(b, hn_conv(b, x, 8, 1, 1, false));
    int z = mm_relu(b->g, mm_add(b->g, y, x));
    return hn_head(b, mm_add(b->g, z, y));
}

MM_TEST(partial_and_refused_patterns)
{
    hn_built on, off;
    hn_options o = {.fuse_relu_bwd = true};
    compare("shared sum", shared_sum_net, o, &on, &off);
    int add_only = 0;
    for (int n = 0; n < on.g->n_forward; n++) {
        const mm_node *nd = &on.g->nodes[n];
        add_only += nd->op == MM_OP_BATCHNORM && nd->p.bn.add && !nd->p.bn.relu;
    }
    CHECK_EQ_INT(add_only, 1);
    CHECK_EQ_INT(on.n_joins, 1);
    CHECK_EQ_INT(count_op(on.g, MM_OP_RELU, 0, on.g->n_forward),
                 count_op(off.g, MM_OP_RELU, 0, off.g->n_forward));
    hn_free(&on);
    hn_free(&off);

    compare("shared batch-norm output", shared_bn_net, o, &on, &off);
    CHECK_EQ_INT(on.n_joins, 0);
    hn_free(&on);
    hn_free(&off);
}

/* ---- the whole-image ResNet50 of nets/ at a small input ---- */
MM_TEST(whole_image_resnet50_same_results)
{
    for (int training = 1; training >= 0; training--) {
        mm_model_config c = hn_small_whole(MM_TRUNK_RESNET50, "[16-16-32]x2,[16-16-32]x1", 96,
                                           64, training);
        hn_built on, off;
        int64_t diff = hn_model_flag_diff(&c, &c.fuse_residual, &on, &off);
        CHECK_MSG(diff == 0, "%s: %lld results differ with the joins fused",
                  training ? "training" : "evaluation", (long long)diff);
        /* 16 trunk bottlenecks and 3 in the top blocks, each one join (more when training: the
         * recomputed joins of the backward pass) */
        CHECK_MSG(training ? on.n_joins > 19 : on.n_joins == 19, "%d joins fused", on.n_joins);
        CHECK_EQ_INT(off.n_joins, 0);
    }
}
