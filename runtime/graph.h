/* Graph and autograd tape.
 *
 * A training (or inference) step is built by calling the op functions below on symbolic values.
 * Each call checks shapes (the meta shape rule), records a node and returns the id of its output
 * value. mm_graph_backward() then appends the gradient nodes in reverse order. The recorded step
 * is planned once (planner.h) and replayed every step by a session (session.h) on any backend.
 *
 * Errors: a builder call whose shapes do not fit records the error (mm_fail) and returns -1; the
 * graph is then "failed", every later call returns -1, and mm_graph_status() returns the first
 * error. So a net can be built with straight-line code and checked once at the end. */
#ifndef MM_GRAPH_H
#define MM_GRAPH_H

#include <stdbool.h>
#include <stdint.h>

#include "../kernels/dims.h"
#include "error.h"
#include "tensor.h"

typedef enum mm_op {
    MM_OP_NONE = 0,
    MM_OP_CONV2D,              /* in: x, w[, b]          out: y */
    MM_OP_CONV2D_BWD_DATA,     /* in: dy, w[, acc]       out: dx (acc + the gradient with
                                  p.conv.accumulate: fuse_grad_add.c) */
    MM_OP_CONV2D_BWD_FILTER,   /* in: dy, x              out: dw (+=; = with p.conv.overwrite,
                                  the gradient's first writer: autograd.c) */
    MM_OP_CONV2D_BWD_BIAS,     /* in: dy                 out: db (+=) */
    MM_OP_BATCHNORM,           /* in: x, gamma, beta, running_mean, running_var[, residual]
                                  out: y, save_mean, save_invstd (training) / y (eval)
                                  p.bn.add: in[5] is added to the normalised value, then
                                  p.bn.relu clamps at 0 (a residual join, fuse_residual.c) */
    MM_OP_BATCHNORM_BWD,       /* in: dy, x, gamma, save_mean, save_invstd
                                  out: dx (or -1), dgamma (+=, or -1), dbeta (+=, or -1) */
    MM_OP_BN_APPLY,            /* in: x, gamma, beta, save_mean, save_invstd[, residual]
                                  out: y = (x - save_mean) * (gamma * save_invstd) + beta
                                  (+ in[5] with p.bn.add), then max(y, 0) when p.bn.relu: a
                                  training BN's output (with the ReLU that follows it, or the
                                  residual join) recomputed from its saved statistics, bitwise
                                  what the forward wrote (recompute.c, fuse_residual.c);
                                  [, bits: y's sign as MM_OP_RELU_MASK writes it, a mask folded
                                  in by mm_graph_fuse_relu_mask] */
    MM_OP_RELU,                /* in: x                  out: y */
    MM_OP_RELU_BWD,            /* in: dy, y (or its bits: p.elementwise.bits)   out: dx[, db]
                                  db (+=, with p.elementwise.colsum_c = c): the column sums of
                                  dx as [n/c, c], the bias gradient of the convolution before the
                                  ReLU folded in (fuse_bias_grad.c) */
    MM_OP_RELU_MASK,           /* in: y                  out: bits (u8 [ceil(n/8)]): bit i%8 of
                                  byte i/8 is y[i] > 0; what a ReLU backward needs of y, at 1/32
                                  of its size (relu_mask.c) */
    MM_OP_ADD,                 /* in: a, b               out: y */
    MM_OP_MAXPOOL,             /* in: x                  out: y, argmax (u8, training graphs:
                                  the window tap ky*kw+kx of each output's maximum) */
    MM_OP_MAXPOOL_BWD,         /* in: dy, argmax, y (with p.pool.relu_mask: the pool's output;
                                  the ReLU before the pool folded in)      out: dx */
    MM_OP_AVGPOOL,             /* in: x                  out: y */
    MM_OP_AVGPOOL_BWD,         /* in: dy                 out: dx */
    MM_OP_ADAPTIVE_AVGPOOL,    /* in: x                  out: y */
    MM_OP_ADAPTIVE_AVGPOOL_BWD,/* in: dy                 out: dx */
    MM_OP_GLOBAL_AVGPOOL,      /* in: x [n,h,w,c]        out: y [n,c] */
    MM_OP_GLOBAL_AVGPOOL_BWD,  /* in: dy                 out: dx */
    MM_OP_DENSE,               /* in: x [n,k], w [o,k][, b]  out: y [n,o] */
    MM_OP_DENSE_BWD_DATA,      /* in: dy, w              out: dx */
    MM_OP_DENSE_BWD_WEIGHT,    /* in: dy, x              out: dw (+=), db (+=, or -1) */
    MM_OP_DROPOUT,             /* in: x                  out: y, mask (u8) */
    MM_OP_DROPOUT_BWD,         /* in: dy, mask           out: dx */
    MM_OP_SOFTMAX,             /* in: x [n,c]            out: y */
    MM_OP_SOFTMAX_XENT,        /* in: logits, labels (i32)[, weights]  out: loss [1], probs */
    MM_OP_SOFTMAX_XENT_BWD,    /* in: probs, labels[, weights]         out: dlogits */
    MM_OP_FLIP,                /* in: x                  out: y */
    MM_OP_RESHAPE,             /* in: x                  out: y, a view of x (no kernel) */
    MM_OP_COUNT
} mm_op;

typedef enum mm_value_kind {
    MM_VALUE_INPUT = 0, /* fed by the caller every step (images, labels, weights) */
    MM_VALUE_PARAM,     /* trainable or frozen parameter: the flat parameter buffer */
    MM_VALUE_STATE,     /* non-trainable persistent state (BN running statistics): the state buffer */
    MM_VALUE_ACT,       /* an intermediate of the step: the activation arena */
    MM_VALUE_GRAD,      /* gradient of a parameter: the flat gradient buffer */
} mm_value_kind;

#define MM_NAME_MAX 96
#define MM_NODE_MAX_IN 6
#define MM_NODE_MAX_OUT 3

typedef struct mm_value {
    mm_value_kind kind;
    mm_dtype dtype;
    int ndim;
    int64_t shape[MM_MAX_DIMS];
    char name[MM_NAME_MAX]; /* parameters, state and inputs: torchvision-style name */
    int producer;           /* node that writes it, -1 for inputs, params, state */
    int view_of;            /* MM_OP_RESHAPE output: the value whose memory it shares, else -1 */
    bool requires_grad;     /* a gradient flows to it (trainable param or derived from one) */
    bool frozen;            /* params: no gradient memory, no weight-gradient kernels */
    int grad;               /* params: their MM_VALUE_GRAD value after backward, else -1 */
    bool keep;              /* must stay readable after the step (loss, probs, outputs) */
} mm_value;

typedef union mm_op_params {
    mm_conv_dims conv;
    mm_pool_dims pool;
    /* relu_bwd (MM_OP_BATCHNORM_BWD): the node also does the backward of the ReLU that followed
     * the batch norm: in[5] is that ReLU's output and in[0] the gradient of it (fuse_relu_bwd);
     * relu_bits: in[5] is that output's sign as bits instead (MM_OP_RELU_MASK, relu_mask_bits);
     * add (MM_OP_BATCHNORM, MM_OP_BN_APPLY): in[5] is a residual added before relu */
    struct {
        int64_t m;
        int c;
        float eps, momentum;
        bool training, relu, relu_bwd, relu_bits, add;
    } bn;
    struct { int n, k, o; } dense;
    struct { int64_t n; float p; uint64_t seed; } dropout;
    struct { int n, c; float dloss; } xent;
    struct { int n, h, w, c, axis; } flip;
    struct { int n; int64_t hw; int c; } gap;
    struct { int64_t n; bool bits; int colsum_c; } elementwise;
} mm_op_params;

typedef struct mm_node {
    mm_op op;
    int n_in, n_out;
    int in[MM_NODE_MAX_IN];   /* value ids, -1 for an absent optional input */
    int out[MM_NODE_MAX_OUT]; /* value ids, -1 for an output not needed */
    mm_op_params p;
    bool backward;            /* appended by mm_graph_backward */
    double flops;             /* multiply-adds counted as 2 */
} mm_node;

typedef struct mm_graph {
    mm_value *values;
    int n_values, cap_values;
    mm_node *nodes;
    int n_nodes, cap_nodes;
    int n_forward;  /* nodes before mm_graph_backward */
    int loss;       /* value id passed to mm_graph_backward, or -1 */
    mm_status status;
    bool training;  /* batch norm uses batch statistics, dropout is active */
    uint64_t seed;  /* dropout masks: node seeds derive from it */
    /* Storage type of the float activations of conv, batch norm, relu, add, pooling (but global
     * average pooling), flip and dropout, and of their gradients: MM_F32, or MM_BF16 for mixed
     * precision on CUDA. Global average pooling, dense, softmax and the loss are always F32, as
     * are parameters, gradients, optimizer state and BN statistics. Set before building. */
    mm_dtype act_dtype;
    /* Recompute cheap activations in the backward pass instead of keeping them (default on; see
     * mm_graph_backward). Set before mm_graph_backward. */
    bool recompute;
    /* With recompute on, the outputs of convolutions that cost at most this many multiply-adds
     * per output element (r * s * input channels) are recomputable too, from their input (0, the
     * default: none). ResNet50's stem (147) and 1x1 expansions of 64 channels (64), VGG16's first
     * convolution (27): large outputs that cost little to compute again. */
    int64_t recompute_conv_macs;
    /* With recompute on, how far (a fraction) the activation arena may grow over the smallest the
     * pass finds, to keep recomputed links of residual chains that would otherwise be remade, where
     * each byte kept saves several of backward memory traffic (recompute.c; 0, the default: the
     * smallest arena). */
    double recompute_slack;
    /* A batch norm whose scale and shift are frozen and whose input needs no gradient runs in
     * evaluation mode in a training graph: it normalises with its running statistics and leaves
     * them alone, so frozen layers are a fixed feature extractor (PyTorch's usual fine-tuning; the
     * Keras 2.0 reference normalised them with batch statistics instead: set false for that). */
    bool frozen_bn_eval;
    /* Record a ReLU's backward inside the following batch norm's backward (no pass of its own
     * over the tensor) where the ReLU is the batch norm's only reader. Off in a new graph; the
     * models of nets/ turn it on (set before backward). */
    bool fuse_relu_bwd;
    /* A ReLU backward whose y other backward nodes read before it reads y's bits instead, made
     * right after y's last other reader, so y dies earlier (relu_mask.c; default on). */
    bool relu_mask_bits;
    /* Bytes by which the nodes' scratch (cuDNN workspaces, NCHW copies) may raise the arena above
     * what the activations alone need, so that faster algorithms fit (planner.h; 0, the default:
     * scratch lives in the gaps the activations leave). Unless scratch_strict, a node whose
     * scratch would not fit may keep it anyway where fitting would slow it down much (the
     * backend's limit_workspace decides; the CUDA backend: over 10%). Set before planning. */
    size_t scratch_budget;
    bool scratch_strict;
} mm_graph;

mm_graph *mm_graph_new(bool training);
void mm_graph_free(mm_graph *g);
mm_status mm_graph_status(const mm_graph *g);

/* ---- values ---- */
int mm_graph_input(mm_graph *g, const char *name, mm_dtype dtype, int ndim, const int64_t *shape);
int mm_graph_param(mm_graph *g, const char *name, int ndim, const int64_t *shape);
int mm_graph_state(mm_graph *g, const char *name, int ndim, const int64_t *shape);
const mm_value *mm_graph_value(const mm_graph *g, int id);
/* Marks a value as an output of the step: its memory is not reused, so it can be read after a
 * run. The loss and probabilities of mm_softmax_xent are kept automatically. */
void mm_graph_keep(mm_graph *g, int value);
int mm_graph_find(const mm_graph *g, const char *name); /* -1 if none */
/* Freezing is decided before backward: frozen params get no gradient value and no kernels. */
void mm_graph_set_frozen(mm_graph *g, int param, bool frozen);

/* ---- ops (each returns the output value id, or -1 on error) ---- */
int mm_conv2d(mm_graph *g, int x, int w, int b /* -1: none */, int stride, int pad);
int mm_conv2d_ex(mm_graph *g, int x, int w, int b, int stride_h, int stride_w, int pad_h, int pad_w);
int mm_batchnorm(mm_graph *g, int x, int gamma, int beta, int running_mean, int running_var,
                 float eps, float momentum);
int mm_relu(mm_graph *g, int x);
int mm_add(mm_graph *g, int a, int b);
int mm_maxpool(mm_graph *g, int x, int k, int stride, int pad);
int mm_avgpool(mm_graph *g, int x, int k, int stride, int pad, bool count_include_pad);
int mm_adaptive_avgpool(mm_graph *g, int x, int out_h, int out_w);
int mm_global_avgpool(mm_graph *g, int x);
int mm_dense(mm_graph *g, int x, int w, int b /* -1: none */);
int mm_dropout(mm_graph *g, int x, float p);
int mm_softmax(mm_graph *g, int x);
/* Weighted mean cross-entropy; weights -1 for an unweighted mean. Returns the [1] loss value. */
int mm_softmax_xent(mm_graph *g, int logits, int labels, int weights);
int mm_flip(mm_graph *g, int x, int axis /* 1 vertical, 2 horizontal */);
/* [n,h,w,c] -> [n, h*w*c] (NHWC order) as a view. */
int mm_flatten(mm_graph *g, int x);

/* Appends the gradient nodes of `loss` (a [1] value) for every trainable, unfrozen parameter.
 *
 * With g->recompute on, a forward activation that backward nodes read is not kept from the
 * forward pass when it can be recomputed cheaply from values that are kept anyway: the output of
 * a ReLU, an add, a training batch norm (MM_OP_BN_APPLY from its saved statistics), a max pool
 * or a convolution within g->recompute_conv_macs whose inputs are kept or recomputable in turn
 * (e.g. relu(bn(conv)) from the conv output that BN's backward keeps; a residual block's output
 * relu(bn(conv) + shortcut) down a chain of blocks). The recomputing nodes are recorded just
 * before the first backward node that reads the value, and those nodes read the recomputed copy,
 * so the forward copy dies at its last forward reader. Recomputation repeats the forward's
 * arithmetic exactly: gradients are bitwise the same with it on or off (on the CPU). */
mm_status mm_graph_backward(mm_graph *g, int loss);

/* Residual joins done by the batch norm before them (fuse_residual.c): each batch norm (or
 * MM_OP_BN_APPLY) whose output only an add reads, that add's output read only by a ReLU (or by
 * anything, then the add alone is taken in), becomes one node computing relu(bn(x) + r) with
 * p.bn.add and p.bn.relu; the add and ReLU nodes become MM_OP_NONE. Bitwise the same step.
 * Call last, after mm_graph_backward for a training graph; returns the joins fused. */
int mm_graph_fuse_residual(mm_graph *g);

/* ReLU masks made by the batch norm that writes their ReLU's output (fuse_relu_mask.c): a
 * MM_OP_RELU_MASK whose input is a MM_OP_BN_APPLY's output becomes that node's second output
 * (the sign bits of what it writes), and the mask node becomes MM_OP_NONE. Bitwise the same
 * step. Call after mm_graph_fuse_residual (the joins' masks read the fused node's output);
 * returns the masks folded. */
int mm_graph_fuse_relu_mask(mm_graph *g);

/* Bias gradients done by the ReLU backward before them (fuse_bias_grad.c): a convolution's
 * MM_OP_CONV2D_BWD_BIAS whose dy a ReLU backward writes becomes that node's second output (the
 * column sums of dx, taken while dx is written), and the node becomes MM_OP_NONE. Bitwise the
 * same step. Call after mm_graph_backward; returns the bias gradients folded. */
int mm_graph_fuse_bias_grad(mm_graph *g);

/* Gradient sums done by the convolution backward before them (fuse_grad_add.c): an add of two
 * gradients, one of them a MM_OP_CONV2D_BWD_DATA output that only the add reads and the other
 * one read last by the add, becomes that convolution node with p.conv.accumulate (the other
 * gradient as in[2], summed in by the convolution itself: cuDNN's beta 1); the add becomes
 * MM_OP_NONE. Bitwise the same step on the CPU. Call after mm_graph_backward; returns the adds
 * folded. */
int mm_graph_fuse_grad_add(mm_graph *g);

/* The activation bytes (MM_VALUE_ACT values) node nd reads and writes, each input and output
 * counted once: the least memory traffic of a memory-bound node. */
double mm_node_activation_bytes(const mm_graph *g, const mm_node *nd);

/* The probabilities output of a MM_OP_SOFTMAX_XENT node's loss value (for metrics). */
int mm_graph_xent_probs(const mm_graph *g, int loss);

const char *mm_op_name(mm_op op);
/* The convolutions proper, whose algorithms a backend chooses: forward, data and filter gradient
 * (not the bias gradient). */
static inline bool mm_op_is_conv(mm_op op)
{
    return op == MM_OP_CONV2D || op == MM_OP_CONV2D_BWD_DATA || op == MM_OP_CONV2D_BWD_FILTER;
}
/* The op's name, with what a graph pass folded into the node ("batchnorm+add+relu", ...). */
const char *mm_node_op_name(const mm_node *nd);
size_t mm_value_bytes(const mm_value *v);

#endif
