/* Model assembly: input, trunk, head (torchvision's, the patch classifier's or the whole-image
 * top), the weighted cross-entropy loss and backward for the trainable parameters; plus the names
 * of the trunk and of the paper's training stages. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers.h"

mm_status mm_trunk_parse(mm_trunk *out, const char *name, const char *flag)
{
    if (name && !strcmp(name, "resnet50")) {
        *out = MM_TRUNK_RESNET50;
        return MM_OK;
    }
    if (name && !strcmp(name, "vgg16")) {
        *out = MM_TRUNK_VGG16;
        return MM_OK;
    }
    return mm_fail(MM_ERR_ARG, "%s: unknown net '%s'; use resnet50 or vgg16", flag,
                   name ? name : "");
}

const char *mm_trunk_name(mm_trunk t) { return t == MM_TRUNK_VGG16 ? "vgg16" : "resnet50"; }

int mm_trunk_channels(mm_trunk t) { return t == MM_TRUNK_VGG16 ? 512 : 2048; }

const char *mm_model_kind_name(mm_model_kind k)
{
    switch (k) {
    case MM_MODEL_TORCHVISION: return "torchvision";
    case MM_MODEL_PATCH: return "patch";
    case MM_MODEL_WHOLE: return "whole";
    }
    return "?";
}

mm_model_config mm_model_config_default(mm_model_kind kind, mm_trunk trunk)
{
    mm_model_config c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.trunk = trunk;
    c.classes = kind == MM_MODEL_TORCHVISION ? 1000 : kind == MM_MODEL_PATCH ? 5 : 2;
    c.patch_classes = 5;
    c.batch = 1;
    c.height = kind == MM_MODEL_WHOLE ? 1152 : 224;
    c.width = kind == MM_MODEL_WHOLE ? 896 : 224;
    c.top = kind == MM_MODEL_WHOLE ? "[512-512-1024]x2,[512-512-1024]x2" : NULL;
    c.dropout_seed = 0x6d616d6d6fULL;
    c.fuse_relu_bwd = true;
    c.fuse_residual = true;
    c.fuse_bias_grad = true;
    c.fuse_grad_add = true;
    c.fuse_relu_mask = true;
    return c;
}

bool mm_name_trainable(const char *name, const char *prefixes)
{
    if (!prefixes || !prefixes[0]) return true;
    const char *s = prefixes;
    for (;;) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (len > 0 && !strncmp(name, s, len)) return true;
        if (!e) return false;
        s = e + 1;
    }
}

const char *mm_model_stage_trainable(mm_model_kind kind, mm_trunk trunk, int stage)
{
    if (kind == MM_MODEL_PATCH) {
        if (stage == 1) return "fc.";
        if (stage == 2)
            return trunk == MM_TRUNK_RESNET50 ? "layer4.2.,fc."
                                              : "features.24.,features.26.,features.28.,fc.";
        return NULL;
    }
    if (kind == MM_MODEL_WHOLE && stage == 1) return "top.";
    return NULL;
}

bool mm_name_in_trunk(mm_trunk t, const char *name)
{
    if (t == MM_TRUNK_VGG16) return !strncmp(name, "features.", 9);
    return strncmp(name, "fc.", 3) != 0 && strncmp(name, "top.", 4) != 0;
}

void mm_model_free(mm_model *m)
{
    if (m->g) mm_graph_free(m->g);
    free(m->info);
    free(m->top_str);
    free(m->trainable_str);
    memset(m, 0, sizeof *m);
    m->image = m->labels = m->weights = m->feature = m->logits = m->probs = m->loss = -1;
}

static mm_status check_config(const mm_model_config *c)
{
    if (c->classes < 1 || c->classes > 1000000)
        return mm_fail(MM_ERR_ARG, "--classes: %d is not a number of classes (1..1000000)",
                       c->classes);
    if (c->batch < 1) return mm_fail(MM_ERR_ARG, "--batch: %d must be at least 1", c->batch);
    /* Both trunks reduce by 32; smaller inputs leave no feature map. */
    if (c->height < 32 || c->width < 32)
        return mm_fail(MM_ERR_ARG, "--input: %dx%d is smaller than 32x32, the stride of the %s "
                       "trunk", c->height, c->width, mm_trunk_name(c->trunk));
    if (c->dropout < 0.0f || c->dropout >= 1.0f)
        return mm_fail(MM_ERR_ARG, "--dropout: %g must be in [0, 1)", (double)c->dropout);
    if (c->width_div < 0 || (c->width_div > 1 && 64 % c->width_div != 0))
        return mm_fail(MM_ERR_ARG, "--width-div: %d must divide 64 (1, 2, 4, 8, 16, 32 or 64)",
                       c->width_div);
    if (c->patch_classes < 1)
        return mm_fail(MM_ERR_ARG, "patch classes: %d must be at least 1", c->patch_classes);
    return MM_OK;
}

/* Freezes what the trainable prefixes leave out; fails when nothing would train. */
static mm_status freeze(mm_model *m)
{
    int n_trainable = 0;
    for (int id = 0; id < m->g->n_values; id++) {
        const mm_value *v = mm_graph_value(m->g, id);
        if (v->kind != MM_VALUE_PARAM) continue;
        bool t = mm_name_trainable(v->name, m->cfg.trainable);
        if (!t) mm_graph_set_frozen(m->g, id, true);
        n_trainable += t;
    }
    if (n_trainable == 0)
        return mm_fail(MM_ERR_ARG, "--trainable: no parameter of the %s %s model starts with any "
                       "of '%s'", mm_trunk_name(m->cfg.trunk), mm_model_kind_name(m->cfg.kind),
                       m->cfg.trainable);
    return MM_OK;
}

/* Re-reports a graph error with the model and input size in front. */
static mm_status graph_failed(const mm_model *m, mm_status st)
{
    char why[512];
    snprintf(why, sizeof why, "%s", mm_last_error());
    char top[256] = "";
    if (m->cfg.kind == MM_MODEL_WHOLE) {
        char spec[200];
        mm_top_format(spec, sizeof spec, &m->top);
        snprintf(top, sizeof top, " with top '%s'", spec);
    }
    return mm_fail(st, "--input: the %s %s model%s does not fit a %dx%d input: %s",
                   mm_trunk_name(m->cfg.trunk), mm_model_kind_name(m->cfg.kind), top, m->cfg.height,
                   m->cfg.width, why);
}

static int build_head(mm_model *m, int feat)
{
    const mm_model_config *c = &m->cfg;
    switch (c->kind) {
    case MM_MODEL_TORCHVISION:
        if (c->trunk == MM_TRUNK_VGG16) return mm_vgg16_classifier(m, feat, c->classes);
        /* torchvision's ResNet: AdaptiveAvgPool2d(1) (= global average pooling), flatten, fc. */
        return mm_layer_dense(m, feat < 0 ? -1 : mm_global_avgpool(m->g, feat), "fc", c->classes,
                              true, MM_INIT_LINEAR_DEFAULT);
    case MM_MODEL_PATCH: {
        int y = feat < 0 ? -1 : mm_global_avgpool(m->g, feat);
        y = mm_layer_dropout(m, y, c->dropout);
        return mm_layer_dense(m, y, "fc", c->classes, true, MM_INIT_LINEAR_DEFAULT);
    }
    case MM_MODEL_WHOLE: return mm_top_build(m, feat);
    }
    return -1;
}

void mm_model_config_for_backend(mm_model_config *c, const mm_backend *be)
{
    mm_model_config_for_device(c, be->device, be->precision);
}

void mm_model_config_for_device(mm_model_config *c, mm_device_kind device,
                                mm_precision precision)
{
    bool cpu = device == MM_DEVICE_CPU;
    c->act_dtype = precision == MM_PRECISION_BF16 ? MM_BF16 : MM_F32;
    c->no_recompute = false;
    c->no_relu_mask = cpu;
    c->recompute_conv_macs = cpu ? 0 : mm_recompute_conv_cuda(precision);
    c->recompute_slack = cpu ? 0.0 : mm_recompute_slack_cuda(precision);
}

void mm_model_config_recompute(mm_model_config *c, bool keep_all, int64_t conv_macs,
                               double slack)
{
    if (keep_all) c->no_recompute = true;
    if (conv_macs >= 0) c->recompute_conv_macs = conv_macs;
    if (slack >= 0) c->recompute_slack = slack;
}

int64_t mm_recompute_conv_cuda(mm_precision precision)
{
    return precision == MM_PRECISION_BF16 ? MM_RECOMPUTE_CONV_MACS_CUDA
                                          : MM_RECOMPUTE_CONV_MACS_NO_STEM;
}

double mm_recompute_slack_cuda(mm_precision precision)
{
    return precision == MM_PRECISION_BF16 ? 0.0 : 0.20;
}

mm_status mm_model_build(mm_model *m, const mm_model_config *cfg)
{
    memset(m, 0, sizeof *m);
    m->image = m->labels = m->weights = m->feature = m->logits = m->probs = m->loss = -1;
    m->cfg = *cfg;
    m->top_str = mm_xstrdup(cfg->top ? cfg->top : "");
    m->trainable_str = mm_xstrdup(cfg->trainable ? cfg->trainable : "");
    m->cfg.top = m->top_str;
    m->cfg.trainable = m->trainable_str;
    mm_status st = check_config(cfg);
    if (st == MM_OK && cfg->kind == MM_MODEL_WHOLE) st = mm_top_parse(&m->top, cfg->top, "--top");
    if (st != MM_OK) {
        mm_model_free(m);
        return st;
    }

    m->g = mm_graph_new(cfg->training);
    m->g->seed = cfg->dropout_seed;
    m->g->act_dtype = cfg->act_dtype;
    m->g->recompute = !cfg->no_recompute;
    m->g->relu_mask_bits = !cfg->no_recompute && !cfg->no_relu_mask;
    m->g->recompute_conv_macs = cfg->recompute_conv_macs;
    m->g->recompute_slack = cfg->recompute_slack;
    m->g->fuse_relu_bwd = cfg->fuse_relu_bwd;
    m->g->scratch_budget = cfg->scratch_budget;
    m->g->scratch_strict = cfg->scratch_strict;
    int64_t ishape[4] = {cfg->batch, cfg->height, cfg->width, 3};
    m->image = mm_graph_input(m->g, "image", MM_F32, 4, ishape);
    m->feature = cfg->trunk == MM_TRUNK_VGG16 ? mm_vgg16_trunk(m, m->image)
                                              : mm_resnet50_trunk(m, m->image);
    m->logits = build_head(m, m->feature);
    if (cfg->training) {
        int64_t nshape[1] = {cfg->batch};
        m->labels = mm_graph_input(m->g, "label", MM_I32, 1, nshape);
        m->weights = mm_graph_input(m->g, "weight", MM_F32, 1, nshape);
        if (m->logits >= 0) m->loss = mm_softmax_xent(m->g, m->logits, m->labels, m->weights);
        if (m->loss >= 0) m->probs = mm_graph_xent_probs(m->g, m->loss);
    } else if (m->logits >= 0) {
        m->probs = mm_softmax(m->g, m->logits);
    }
    /* The caller reads logits and probabilities after a run. */
    if (m->logits >= 0) mm_graph_keep(m->g, m->logits);
    if (m->probs >= 0) mm_graph_keep(m->g, m->probs);
    st = mm_graph_status(m->g);
    if (st != MM_OK) {
        st = graph_failed(m, st);
        mm_model_free(m);
        return st;
    }
    if (!cfg->training) {
        /* Evaluation: no backward, so no parameter needs gradient memory. */
        for (int id = 0; id < m->g->n_values; id++)
            if (mm_graph_value(m->g, id)->kind == MM_VALUE_PARAM) mm_graph_set_frozen(m->g, id, true);
    } else {
        st = freeze(m);
        if (st == MM_OK) st = mm_graph_backward(m->g, m->loss);
        if (st == MM_OK) st = mm_graph_status(m->g);
        if (st != MM_OK) {
            mm_model_free(m);
            return st;
        }
    }
    if (cfg->fuse_residual) mm_graph_fuse_residual(m->g);
    if (cfg->fuse_bias_grad) mm_graph_fuse_bias_grad(m->g);
    if (cfg->fuse_grad_add) mm_graph_fuse_grad_add(m->g);
    if (cfg->fuse_relu_mask) mm_graph_fuse_relu_mask(m->g);
    /* Make the info table cover every value, so lookups by id never go out of range. */
    if (m->g->n_values > 0) mm_layer_info(m, m->g->n_values - 1);
    return MM_OK;
}

mm_model_totals mm_model_totals_of(const mm_model *m)
{
    mm_model_totals t;
    memset(&t, 0, sizeof t);
    for (int id = 0; id < m->g->n_values; id++) {
        const mm_value *v = mm_graph_value(m->g, id);
        int64_t n = mm_shape_numel(v->ndim, v->shape);
        if (v->kind == MM_VALUE_PARAM) {
            t.params += n;
            if (!v->frozen) t.trainable += n;
        } else if (v->kind == MM_VALUE_STATE) {
            t.state += n;
        }
    }
    if (!m->cfg.training) t.trainable = 0;
    double fwd = 0, all = 0;
    for (int i = 0; i < m->g->n_nodes; i++) {
        all += m->g->nodes[i].flops;
        if (i < m->g->n_forward || !m->cfg.training) fwd += m->g->nodes[i].flops;
    }
    t.flops_forward_per_image = fwd / m->cfg.batch;
    t.flops_step_per_image = all / m->cfg.batch;
    return t;
}
