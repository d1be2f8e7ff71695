/* The top blocks of a whole-image classifier: the spec parser (grammar in nets.h) and the builder
 * that puts them on the trunk's feature map, following the reference implementation
 * (lishen/end2end-all-conv, dm_resnet.add_top_layers): residual stages of bottleneck_org units
 * (stride 2 on the first 1x1 of the first unit, projection shortcut with BN), VGG blocks of
 * conv3x3-BN-ReLU with a 2x2 max pool, the heatmap (7x7/1 average pool + the patch classifier's
 * dense at every position + ReLU), max pooling, fully connected layers (dense-BN-ReLU) with the
 * optional shortcut dense, then global average pooling and the output dense `top.fc`. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers.h"

#define TOP_INT_MAX 65536
#define TOP_REPS_MAX 64

static const char *expected =
    "expected [M-N-O]xR (residual), MxR (VGG), hm, maxpoolK, fcU or shortcut, separated by commas";

/* Reads a decimal integer in [1, max] at *p and advances; 0 on failure. */
static int read_int(const char **p, int max)
{
    if (!isdigit((unsigned char)**p)) return 0;
    long v = 0;
    while (isdigit((unsigned char)**p)) {
        v = v * 10 + (**p - '0');
        if (v > max) return 0;
        (*p)++;
    }
    return v >= 1 ? (int)v : 0;
}

static bool eat(const char **p, char c)
{
    if (**p != c) return false;
    (*p)++;
    return true;
}

/* Parses one item text [s, e) into it; returns false when it is not an item. */
static bool parse_item(mm_top_item *it, const char *s, const char *e)
{
    size_t len = (size_t)(e - s);
    memset(it, 0, sizeof *it);
    const char *p = s;
    if (len >= 2 && !strncmp(s, "hm", 2)) { /* hm = hm7: the window of a 224-pixel patch */
        it->kind = MM_TOP_HEATMAP;
        if (len == 2) {
            it->m = 7;
            return true;
        }
        p = s + 2;
        it->m = read_int(&p, 64);
        return it->m > 0 && p == e;
    }
    if (len == 8 && !strncmp(s, "shortcut", 8)) {
        it->kind = MM_TOP_SHORTCUT;
        return true;
    }
    if (len > 7 && !strncmp(s, "maxpool", 7)) {
        p = s + 7;
        it->kind = MM_TOP_MAXPOOL;
        it->m = read_int(&p, TOP_INT_MAX);
        return it->m > 0 && p == e;
    }
    if (len > 2 && !strncmp(s, "fc", 2)) {
        p = s + 2;
        it->kind = MM_TOP_FC;
        it->m = read_int(&p, TOP_INT_MAX);
        return it->m > 0 && p == e;
    }
    if (eat(&p, '[')) {
        it->kind = MM_TOP_RESNET;
        it->m = read_int(&p, TOP_INT_MAX);
        if (!it->m || !eat(&p, '-')) return false;
        it->n = read_int(&p, TOP_INT_MAX);
        if (!it->n || !eat(&p, '-')) return false;
        it->o = read_int(&p, TOP_INT_MAX);
        if (!it->o || !eat(&p, ']') || !eat(&p, 'x')) return false;
        it->reps = read_int(&p, TOP_REPS_MAX);
        return it->reps > 0 && p == e;
    }
    it->kind = MM_TOP_VGG;
    it->m = read_int(&p, TOP_INT_MAX);
    if (!it->m || !eat(&p, 'x')) return false;
    it->reps = read_int(&p, TOP_REPS_MAX);
    return it->reps > 0 && p == e;
}

mm_status mm_top_parse(mm_top_spec *out, const char *spec, const char *flag)
{
    memset(out, 0, sizeof *out);
    if (!spec || !spec[0] || !strcmp(spec, "none")) return MM_OK;
    bool seen_fc = false;
    const char *s = spec;
    for (int i = 0;; i++) {
        const char *e = strchr(s, ',');
        if (!e) e = s + strlen(s);
        int len = (int)(e - s);
        if (i >= MM_TOP_MAX_ITEMS)
            return mm_fail(MM_ERR_ARG, "%s: more than %d items in '%s'", flag, MM_TOP_MAX_ITEMS,
                           spec);
        mm_top_item *it = &out->item[i];
        if (len == 0 || !parse_item(it, s, e))
            return mm_fail(MM_ERR_ARG, "%s: item %d '%.*s' of '%s' is not valid; %s (integers 1..%d, "
                           "repetitions 1..%d)", flag, i + 1, len, s, spec, expected, TOP_INT_MAX,
                           TOP_REPS_MAX);
        out->n = i + 1;
        if (it->kind == MM_TOP_HEATMAP && i != 0)
            return mm_fail(MM_ERR_ARG, "%s: 'hm' must be the first item of '%s' (the heatmap reads "
                           "the trunk's feature map)", flag, spec);
        if (seen_fc && it->kind != MM_TOP_FC && it->kind != MM_TOP_SHORTCUT)
            return mm_fail(MM_ERR_ARG, "%s: item %d '%.*s' of '%s' follows an fc item; only fcU or "
                           "shortcut may follow fully connected layers", flag, i + 1, len, s, spec);
        if (it->kind == MM_TOP_SHORTCUT && (!seen_fc || *e != '\0'))
            return mm_fail(MM_ERR_ARG, "%s: 'shortcut' must be the last item of '%s' and follow at "
                           "least one fcU item", flag, spec);
        if (it->kind == MM_TOP_FC) seen_fc = true;
        if (*e == '\0') break;
        s = e + 1;
    }
    return MM_OK;
}

void mm_top_format(char *buf, size_t n, const mm_top_spec *spec)
{
    if (n == 0) return;
    buf[0] = '\0';
    if (spec->n == 0) {
        snprintf(buf, n, "none");
        return;
    }
    size_t used = 0;
    for (int i = 0; i < spec->n && used < n; i++) {
        const mm_top_item *it = &spec->item[i];
        const char *sep = i ? "," : "";
        int w = 0;
        switch (it->kind) {
        case MM_TOP_RESNET:
            w = snprintf(buf + used, n - used, "%s[%d-%d-%d]x%d", sep, it->m, it->n, it->o,
                         it->reps);
            break;
        case MM_TOP_VGG: w = snprintf(buf + used, n - used, "%s%dx%d", sep, it->m, it->reps); break;
        case MM_TOP_HEATMAP:
            w = it->m == 7 ? snprintf(buf + used, n - used, "%shm", sep)
                           : snprintf(buf + used, n - used, "%shm%d", sep, it->m);
            break;
        case MM_TOP_MAXPOOL: w = snprintf(buf + used, n - used, "%smaxpool%d", sep, it->m); break;
        case MM_TOP_FC: w = snprintf(buf + used, n - used, "%sfc%d", sep, it->m); break;
        case MM_TOP_SHORTCUT: w = snprintf(buf + used, n - used, "%sshortcut", sep); break;
        }
        if (w < 0) return;
        used += (size_t)w;
    }
}

bool mm_top_has_heatmap(const mm_top_spec *spec)
{
    return spec->n > 0 && spec->item[0].kind == MM_TOP_HEATMAP;
}

/* Marks dense weight `name` as reading a flattened [h,w,c] map (columns permuted in files). */
static void mark_flatten(mm_model *m, const char *name, int h, int w, int c)
{
    int id = mm_graph_find(m->g, name);
    if (id < 0) return;
    mm_param_info *pi = mm_layer_info(m, id);
    pi->flat_h = h;
    pi->flat_w = w;
    pi->flat_c = c;
}

/* The heatmap: 7x7/1 average pool, then the patch classifier's dense at every position as a 1x1
 * convolution with bias (weight [classes,1,1,C], nn.Linear's default init until a patch checkpoint
 * overwrites it), then ReLU. */
static int heatmap(mm_model *m, int x, const char *prefix, int window)
{
    if (x < 0) return -1;
    int c = mm_layer_channels(m, x), classes = m->cfg.patch_classes;
    int y = mm_avgpool(m->g, x, window, 1, 0, true);
    y = mm_layer_dropout(m, y, m->cfg.dropout);
    int64_t wshape[4] = {classes, 1, 1, c}, bshape[1] = {classes};
    int w = mm_layer_param(m, prefix, "weight", MM_INIT_LINEAR_DEFAULT, 4, wshape);
    int b = mm_layer_param(m, prefix, "bias", MM_INIT_LINEAR_DEFAULT, 1, bshape);
    if (y < 0 || w < 0 || b < 0) return -1;
    mm_layer_info(m, w)->fan_in = c;
    mm_layer_info(m, b)->fan_in = c;
    y = mm_conv2d(m->g, y, w, b, 1, 0);
    return y < 0 ? -1 : mm_relu(m->g, y);
}

int mm_top_build(mm_model *m, int feat)
{
    float p = m->cfg.dropout;
    int y = feat, flat = -1, fh = 0, fw = 0, fc = 0;
    bool shortcut = false;
    for (int i = 0; i < m->top.n && y >= 0; i++) {
        const mm_top_item *it = &m->top.item[i];
        char prefix[48], unit[64], name[MM_NAME_MAX];
        snprintf(prefix, sizeof prefix, "top.%d", i);
        switch (it->kind) {
        case MM_TOP_RESNET:
            for (int u = 0; u < it->reps; u++) {
                snprintf(unit, sizeof unit, "%s.%d", prefix, u);
                y = mm_layer_bottleneck(m, y, unit, it->m, it->n, it->o, u == 0 ? 2 : 1, u == 0,
                                        false, p);
            }
            break;
        case MM_TOP_VGG:
            for (int u = 0; u < it->reps; u++) {
                snprintf(unit, sizeof unit, "%s.%d", prefix, u);
                y = mm_layer_conv_bn(m, y, unit, "conv", "bn", it->m, 3, 1, 1, true);
                y = mm_layer_dropout(m, y, p);
            }
            if (y >= 0) y = mm_maxpool(m->g, y, 2, 2, 0);
            break;
        case MM_TOP_HEATMAP: y = heatmap(m, y, prefix, it->m); break;
        case MM_TOP_MAXPOOL: y = mm_maxpool(m->g, y, it->m, it->m, 0); break;
        case MM_TOP_FC:
            if (flat < 0) {
                const mm_value *v = mm_graph_value(m->g, y);
                fh = (int)v->shape[1];
                fw = (int)v->shape[2];
                fc = (int)v->shape[3];
                y = flat = mm_flatten(m->g, y);
                y = mm_layer_dropout(m, y, p);
                mm_layer_name(name, sizeof name, prefix, "fc");
                y = mm_layer_dense(m, y, name, it->m, false, MM_INIT_LINEAR_DEFAULT);
                mm_layer_name(name, sizeof name, prefix, "fc.weight");
                mark_flatten(m, name, fh, fw, fc);
            } else {
                mm_layer_name(name, sizeof name, prefix, "fc");
                y = mm_layer_dense(m, y, name, it->m, false, MM_INIT_LINEAR_DEFAULT);
            }
            y = mm_layer_bn(m, y, mm_layer_name(name, sizeof name, prefix, "bn"));
            if (y >= 0) y = mm_relu(m->g, y);
            y = mm_layer_dropout(m, y, p);
            break;
        case MM_TOP_SHORTCUT: shortcut = true; break;
        }
    }
    if (y < 0) return -1;
    if (flat < 0) y = mm_global_avgpool(m->g, y);
    y = mm_layer_dropout(m, y, p);
    int logits = mm_layer_dense(m, y, "top.fc", m->cfg.classes, true, MM_INIT_LINEAR_DEFAULT);
    if (shortcut && logits >= 0) {
        int s = mm_layer_dense(m, flat, "top.shortcut", m->cfg.classes, true,
                               MM_INIT_LINEAR_DEFAULT);
        mark_flatten(m, "top.shortcut.weight", fh, fw, fc);
        logits = s < 0 ? -1 : mm_add(m->g, logits, s);
    }
    return logits;
}
