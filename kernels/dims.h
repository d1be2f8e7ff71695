/* The sizes every kernel of an op needs, shared by the CPU and CUDA kernels and the shape rules.
 * All activations are NHWC; convolution weights are OHWI ([k][r][s][c]). */
#ifndef MM_DIMS_H
#define MM_DIMS_H

#include <stdint.h>

/* Convolution: input [n,h,w,c], weight [k,r,s,c], output [n,oh,ow,k].
 * oh = (h + 2*pad_h - r) / stride_h + 1, likewise ow. */
typedef struct mm_conv_dims {
    int n, h, w, c;
    int k, r, s;
    int stride_h, stride_w;
    int pad_h, pad_w;
    int oh, ow;
    /* backward data only: dx = the node's in[2] + the data gradient (a gradient summed into an
     * earlier one, graph.h mm_graph_fuse_grad_add); 0 elsewhere (but in the forward convolution
     * the CUDA backend may run such a data gradient as: mm_conv_turned below) */
    int accumulate;
    /* backward filter only: the node is the first of the step to write its parameter's gradient,
     * so it writes dw (=) instead of adding to it (+=, the default: a weight used twice). The
     * gradient buffer is zeroed before each step, so both give the same sums; writing lets cuDNN
     * run with beta 0, as PyTorch's does, from every algorithm. 0 elsewhere. */
    int overwrite;
} mm_conv_dims;

/* A stride-1 data gradient is the forward convolution of dy over the filter turned around,
 * wf[c][i][j][k] = w[k][r-1-i][s-1-j][c], with padding r-1-pad: where that padding is not
 * negative (and the filter is not 1x1, which is one GEMM either way). */
static inline int mm_conv_turn_applies(const mm_conv_dims *d)
{
    return d->stride_h == 1 && d->stride_w == 1 && (d->r > 1 || d->s > 1) && d->pad_h < d->r &&
           d->pad_w < d->s;
}

/* That forward convolution's sizes: input dy [n,oh,ow,k], filter [c,r,s,k], output [n,h,w,c]
 * (accumulate stays: it adds into dx as the data gradient would). */
static inline mm_conv_dims mm_conv_turned(const mm_conv_dims *d)
{
    mm_conv_dims f = *d;
    f.h = d->oh, f.w = d->ow, f.c = d->k, f.k = d->c;
    f.pad_h = d->r - 1 - d->pad_h, f.pad_w = d->s - 1 - d->pad_w;
    f.overwrite = 0;
    f.oh = f.h + 2 * f.pad_h - f.r + 1, f.ow = f.w + 2 * f.pad_w - f.s + 1; /* = h, w */
    return f;
}

/* Pooling: input [n,h,w,c], window kh x kw, output [n,oh,ow,c].
 * Max pooling treats padding as -inf; average pooling divides by the window size including padding
 * when count_include_pad is set (PyTorch's default), by the in-image count otherwise.
 * oh = (h + 2*pad_h - kh) / stride_h + 1 (floor; ceil_mode is not used by our nets). */
typedef struct mm_pool_dims {
    int n, h, w, c;
    int kh, kw;
    int stride_h, stride_w;
    int pad_h, pad_w;
    int oh, ow;
    int count_include_pad;
    /* Max-pool backward only: a ReLU right before the pool is folded in; the gradient reaches the
     * input only where the pool's output (the ReLU output at the maximum) is > 0. */
    int relu_mask;
} mm_pool_dims;

/* Fills oh/ow; returns 0 when the output would be empty. */
static inline int mm_conv_dims_finish(mm_conv_dims *d)
{
    int eh = d->h + 2 * d->pad_h - d->r, ew = d->w + 2 * d->pad_w - d->s;
    if (eh < 0 || ew < 0 || d->stride_h < 1 || d->stride_w < 1) return 0;
    d->oh = eh / d->stride_h + 1;
    d->ow = ew / d->stride_w + 1;
    return 1;
}

static inline int mm_pool_dims_finish(mm_pool_dims *d)
{
    int eh = d->h + 2 * d->pad_h - d->kh, ew = d->w + 2 * d->pad_w - d->kw;
    if (eh < 0 || ew < 0 || d->stride_h < 1 || d->stride_w < 1) return 0;
    d->oh = eh / d->stride_h + 1;
    d->ow = ew / d->stride_w + 1;
    return 1;
}

#endif
