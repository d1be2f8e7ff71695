/* Building blocks shared by ResNet50, VGG16 and the top blocks: named parameters (with the init
 * kind recorded for nets/init.c), conv-BN-ReLU, the bottleneck unit and dense layers. */
#include "layers.h"

#include <stdio.h>
#include <string.h>

int mm_layer_channels(const mm_model *m, int x)
{
    if (x < 0) return 0;
    const mm_value *v = mm_graph_value(m->g, x);
    return (int)v->shape[v->ndim - 1];
}

const char *mm_layer_name(char *buf, size_t n, const char *prefix, const char *leaf)
{
    if (prefix && prefix[0])
        snprintf(buf, n, "%s.%s", prefix, leaf);
    else
        snprintf(buf, n, "%s", leaf);
    return buf;
}

/* Grows the per-value info table to cover value id `id`. */
mm_param_info *mm_layer_info(mm_model *m, int id)
{
    if (id >= m->info_cap) {
        int cap = m->info_cap ? m->info_cap : 256;
        while (cap <= id) cap *= 2;
        m->info = mm_xrealloc(m->info, (size_t)cap * sizeof *m->info);
        memset(m->info + m->info_cap, 0, (size_t)(cap - m->info_cap) * sizeof *m->info);
        m->info_cap = cap;
    }
    return &m->info[id];
}

int mm_layer_param(mm_model *m, const char *prefix, const char *leaf, mm_init_kind init, int ndim,
                   const int64_t *shape)
{
    char name[MM_NAME_MAX];
    mm_layer_name(name, sizeof name, prefix, leaf);
    int id = mm_graph_param(m->g, name, ndim, shape);
    if (id < 0) return -1;
    mm_param_info *pi = mm_layer_info(m, id);
    pi->used = true;
    pi->init = init;
    return id;
}

static int state(mm_model *m, const char *prefix, const char *leaf, mm_init_kind init, int c)
{
    char name[MM_NAME_MAX];
    mm_layer_name(name, sizeof name, prefix, leaf);
    int64_t shape[1] = {c};
    int id = mm_graph_state(m->g, name, 1, shape);
    if (id < 0) return -1;
    mm_param_info *pi = mm_layer_info(m, id);
    pi->used = true;
    pi->init = init;
    return id;
}

int mm_layer_conv(mm_model *m, int x, const char *name, int out, int k, int stride, int pad,
                  bool bias)
{
    if (x < 0) return -1;
    int in = mm_layer_channels(m, x);
    int64_t wshape[4] = {out, k, k, in};
    int w = mm_layer_param(m, name, "weight", MM_INIT_KAIMING_FAN_OUT, 4, wshape);
    int b = -1;
    if (bias) {
        int64_t bshape[1] = {out};
        b = mm_layer_param(m, name, "bias", MM_INIT_ZERO, 1, bshape);
    }
    if (w < 0 || (bias && b < 0)) return -1;
    return mm_conv2d(m->g, x, w, b, stride, pad);
}

int mm_layer_bn(mm_model *m, int x, const char *name)
{
    if (x < 0) return -1;
    int c = mm_layer_channels(m, x);
    int64_t shape[1] = {c};
    int gamma = mm_layer_param(m, name, "weight", MM_INIT_ONE, 1, shape);
    int beta = mm_layer_param(m, name, "bias", MM_INIT_ZERO, 1, shape);
    int mean = state(m, name, "running_mean", MM_INIT_ZERO, c);
    int var = state(m, name, "running_var", MM_INIT_ONE, c);
    if (gamma < 0 || beta < 0 || mean < 0 || var < 0) return -1;
    return mm_batchnorm(m->g, x, gamma, beta, mean, var, MM_BN_EPS, MM_BN_MOMENTUM);
}

int mm_layer_dense(mm_model *m, int x, const char *name, int out, bool bias, mm_init_kind init)
{
    if (x < 0) return -1;
    int in = mm_layer_channels(m, x);
    int64_t wshape[2] = {out, in};
    int w = mm_layer_param(m, name, "weight", init, 2, wshape);
    int b = -1;
    if (bias) {
        int64_t bshape[1] = {out};
        /* nn.Linear's default draws the bias from U(+-1/sqrt(fan_in)); VGG zeroes it. */
        mm_init_kind binit = init == MM_INIT_LINEAR_DEFAULT ? MM_INIT_LINEAR_DEFAULT : MM_INIT_ZERO;
        b = mm_layer_param(m, name, "bias", binit, 1, bshape);
        if (b >= 0) mm_layer_info(m, b)->fan_in = in;
    }
    if (w < 0 || (bias && b < 0)) return -1;
    mm_layer_info(m, w)->fan_in = in;
    return mm_dense(m->g, x, w, b);
}

int mm_layer_dropout(mm_model *m, int x, float p)
{
    if (x < 0) return -1;
    if (p <= 0.0f || !m->cfg.training) return x;
    return mm_dropout(m->g, x, p);
}

int mm_layer_conv_bn(mm_model *m, int x, const char *prefix, const char *conv, const char *bn,
                     int out, int k, int stride, int pad, bool relu)
{
    char name[MM_NAME_MAX];
    int y = mm_layer_conv(m, x, mm_layer_name(name, sizeof name, prefix, conv), out, k, stride, pad,
                          false);
    y = mm_layer_bn(m, y, mm_layer_name(name, sizeof name, prefix, bn));
    if (relu && y >= 0) y = mm_relu(m->g, y);
    return y;
}

int mm_layer_bottleneck(mm_model *m, int x, const char *prefix, int c1, int c2, int c3,
                        int stride, bool project, bool stride_on_3x3, float dropout)
{
    int s1 = stride_on_3x3 ? 1 : stride, s2 = stride_on_3x3 ? stride : 1;
    int y = mm_layer_conv_bn(m, x, prefix, "conv1", "bn1", c1, 1, s1, 0, true);
    y = mm_layer_dropout(m, y, dropout);
    y = mm_layer_conv_bn(m, y, prefix, "conv2", "bn2", c2, 3, s2, 1, true);
    y = mm_layer_dropout(m, y, dropout);
    y = mm_layer_conv_bn(m, y, prefix, "conv3", "bn3", c3, 1, 1, 0, false);
    int sc = x;
    if (project)
        sc = mm_layer_conv_bn(m, x, prefix, "downsample.0", "downsample.1", c3, 1, stride, 0, false);
    if (y < 0 || sc < 0) return -1;
    y = mm_add(m->g, y, sc);
    if (y < 0) return -1;
    y = mm_relu(m->g, y);
    return mm_layer_dropout(m, y, dropout);
}
