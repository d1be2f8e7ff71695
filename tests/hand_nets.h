/* Small hand-built training graphs for the tests of the graph passes (test_recompute.c,
 * test_fuse_residual.c): conv / batch norm / ReLU building blocks, a conv-BN-ReLU chain, ResNet
 * bottlenecks with residual joins, a VGG block; one CPU training step of such a net with the
 * passes chosen by hn_options, and everything the step produces (loss, probabilities, every
 * gradient, every BN running statistic) for bitwise comparisons. */
#ifndef MM_TESTS_HAND_NETS_H
#define MM_TESTS_HAND_NETS_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/backend.h"
#include "runtime/graph.h"
#include "runtime/planner.h"
#include "runtime/session.h"

typedef struct {
    mm_graph *g;
    int k; /* layers made so far (names) */
} hn_builder;

/* Parameters are named l<k>.<what>; conv pads k / 2. */
int hn_param(hn_builder *b, const char *what, int ndim, const int64_t *shape);
int hn_conv(hn_builder *b, int x, int cout, int k, int stride, bool bias);
int hn_bn(hn_builder *b, int x);
int hn_cbr(hn_builder *b, int x, int cout, int k, int stride); /* relu(bn(conv(x))) */
/* ResNet v1.5 bottleneck: 1x1, 3x3 (stride), 1x1 x4, projection shortcut when the shape changes. */
int hn_bottleneck(hn_builder *b, int x, int width, int stride);
/* Global average pooling, a dense layer of 3 classes, the weighted cross-entropy: the loss. */
int hn_head(hn_builder *b, int x);

typedef int (*hn_net)(hn_builder *b, int x);
int hn_chain_net(hn_builder *b, int x);      /* three conv-BN-ReLU, one strided */
int hn_bottleneck_net(hn_builder *b, int x); /* a stem with max pool, four bottlenecks */
int hn_vgg_net(hn_builder *b, int x);        /* two VGG blocks with max pools */

/* How the step is recorded: graph.h's switches, and the parameters to freeze. */
typedef struct {
    bool recompute;        /* g->recompute */
    int64_t conv_macs;     /* g->recompute_conv_macs */
    bool no_mask_bits;     /* !g->relu_mask_bits */
    bool fuse_relu_bwd;    /* g->fuse_relu_bwd */
    bool fuse_residual;    /* mm_graph_fuse_residual after backward */
    bool fuse_bias_grad;   /* mm_graph_fuse_bias_grad after backward */
    bool fuse_grad_add;    /* mm_graph_fuse_grad_add after backward */
    bool fuse_relu_mask;   /* mm_graph_fuse_relu_mask after those */
    const char *frozen;    /* comma-separated name prefixes, or NULL */
} hn_options;

typedef struct {
    mm_graph *g;
    mm_plan plan; /* a copy of the session's numbers */
    /* the activations' arena alone (mm_plan_arena_bytes: without the nodes' scratch), what the
     * graph passes shrink */
    size_t act_arena;
    int loss, probs;
    int n_apply;   /* batchnorm_apply nodes */
    int n_conv;    /* convolutions recomputed in the backward pass */
    int n_mask;    /* ReLU masks kept as bits (mask nodes and masks folded into applies) */
    int n_mask_folded; /* of those, written by a batch-norm apply (mm_graph_fuse_relu_mask) */
    int n_bn_bits; /* batch-norm backwards with a folded ReLU backward reading bits */
    int n_joins;   /* batch norms (forward or recomputing) with a residual join (p.bn.add) */
    int n_bias;    /* separate bias-gradient nodes (MM_OP_CONV2D_BWD_BIAS) */
    int n_bias_folded; /* ReLU backwards that take a bias gradient */
    int n_grad_adds;   /* add nodes in the backward pass */
    int n_grad_sums;   /* data gradients that sum themselves into another (p.conv.accumulate) */
} hn_built;

/* Builds `net` on a [2,h,w,3] input and runs one CPU step; returns its results (hn_results). */
float *hn_run(hn_net net, int h, int w, const hn_options *o, hn_built *r, int64_t *n_res);
void hn_free(hn_built *r);

struct mm_model_config;
/* One step of a model of nets/ built from c, on be (NULL: a cpu backend), with the model's own
 * initialisation and hn_write_inputs' batch: returns hn_results for a training model, the
 * probabilities for an evaluation one (NULL when the model cannot be built). r gets the node
 * counts and act_arena; its graph and plan are freed (r->g is NULL). */
float *hn_run_model(const struct mm_model_config *c, mm_backend *be, hn_built *r, int64_t *n_res);

/* A whole-image model of nets/ at a small input: batch 2, reduced-width trunk (width_div 16). */
struct mm_model_config hn_small_whole(int trunk /* mm_trunk */, const char *top, int h, int w,
                                      bool training);
/* One CPU step of model c with one of its switches (`flag`, a field of c) on, and one with it
 * off: on and off get the node counts; returns how many results differ bitwise, or -1 (checked
 * as a failure) when a model could not be built or the steps gave different numbers of results. */
int64_t hn_model_flag_diff(struct mm_model_config *c, bool *flag, hn_built *on, hn_built *off);

/* Deterministic inputs: labels (i32), per-sample weights, images. */
void hn_write_inputs(mm_session *s, const mm_graph *g);
/* Loss, probabilities, every gradient, every BN running statistic, appended in one array. */
float *hn_results(mm_session *s, const mm_graph *g, int loss, int probs, int64_t *n_out);
/* Elements of a and b that differ bitwise. */
int64_t hn_bitwise_diff(const float *a, const float *b, int64_t n);

#endif
