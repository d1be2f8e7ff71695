/* Training checkpoints: see checkpoint.h. */
#include "checkpoint.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/safetensors.h"
#include "../runtime/torch_pth.h"

#define FORMAT_NAME "mammo-checkpoint"
#define FORMAT_VERSION "1"

void mm_train_state_init(mm_train_state *st)
{
    memset(st, 0, sizeof *st);
    st->stage = 1;
    st->best_metric = -1.0;
    st->rescale = 255.0f / 65535.0f;
}

/* The values a checkpoint holds, in file order: parameters and statistics, then moments. */
typedef struct {
    int value, slot; /* slot -1: the value itself; 0/1: Adam's moments of a parameter */
    char name[MM_NAME_MAX + 32];
} entry;

static int list_entries(const mm_model *m, const mm_session *s, entry **out)
{
    const mm_graph *g = m->g;
    int n = 0, cap = 2 * g->n_values + 1;
    entry *e = mm_xcalloc((size_t)cap, sizeof *e);
    for (int v = 0; v < g->n_values; v++) {
        const mm_value *val = &g->values[v];
        if (val->kind != MM_VALUE_PARAM && val->kind != MM_VALUE_STATE) continue;
        e[n].value = v;
        e[n].slot = -1;
        snprintf(e[n].name, sizeof e[n].name, "%s", val->name);
        n++;
    }
    int slots = s->plan.opt_slots >= 2 ? 2 : 0;
    for (int slot = 0; slot < slots; slot++)
        for (int v = 0; v < g->n_values; v++) {
            const mm_value *val = &g->values[v];
            if (val->kind != MM_VALUE_PARAM || val->frozen) continue;
            e[n].value = v;
            e[n].slot = slot;
            snprintf(e[n].name, sizeof e[n].name, "optimizer.%s.%s",
                     slot ? "exp_avg_sq" : "exp_avg", val->name);
            n++;
        }
    *out = e;
    return n;
}

static void fmt(char *buf, size_t n, const char *f, double x)
{
    snprintf(buf, n, f, x);
}

mm_status mm_checkpoint_save(const char *path, const mm_model *m, const mm_session *s,
                             const mm_train_state *st, const char *config_json)
{
    entry *e;
    int n = list_entries(m, s, &e);
    mm_st_tensor *t = mm_xcalloc((size_t)n, sizeof *t);
    for (int i = 0; i < n; i++) {
        t[i].name = e[i].name;
        t[i].dtype = MM_F32;
        mm_model_torch_shape(m, e[i].value, &t[i].ndim, t[i].shape);
    }
    char top[256];
    mm_top_format(top, sizeof top, &m->top);
    char width_div[16], classes[16], stage[16], epoch[16], adam[32], global[32], best[32], best_stage[16],
        best_epoch[16], bad[16], mean[32], rescale[32], seed[32], height[16], width[16];
    snprintf(classes, sizeof classes, "%d", m->cfg.classes);
    snprintf(width_div, sizeof width_div, "%d", m->cfg.width_div > 1 ? m->cfg.width_div : 1);
    snprintf(stage, sizeof stage, "%d", st->stage);
    snprintf(epoch, sizeof epoch, "%d", st->epoch);
    snprintf(adam, sizeof adam, "%" PRId64, st->adam_step);
    snprintf(global, sizeof global, "%" PRId64, st->global_step);
    fmt(best, sizeof best, "%.17g", st->best_metric);
    snprintf(best_stage, sizeof best_stage, "%d", st->best_stage);
    snprintf(best_epoch, sizeof best_epoch, "%d", st->best_epoch);
    snprintf(bad, sizeof bad, "%d", st->bad_epochs);
    fmt(mean, sizeof mean, "%.9g", st->pixel_mean);
    fmt(rescale, sizeof rescale, "%.9g", st->rescale);
    snprintf(seed, sizeof seed, "%" PRIu64, st->seed);
    snprintf(height, sizeof height, "%d", st->height);
    snprintf(width, sizeof width, "%d", st->width);
    mm_st_meta meta[] = {
        {"format", FORMAT_NAME},
        {"format_version", FORMAT_VERSION},
        {"kind", mm_model_kind_name(m->cfg.kind)},
        {"trunk", mm_trunk_name(m->cfg.trunk)},
        {"top", top},
        {"classes", classes},
        {"width_div", width_div},
        {"class_names", st->class_names},
        {"stage", stage},
        {"epoch", epoch},
        {"adam_step", adam},
        {"global_step", global},
        {"best_metric", best},
        {"best_stage", best_stage},
        {"best_epoch", best_epoch},
        {"bad_epochs", bad},
        {"pixel_mean", mean},
        {"rescale", rescale},
        {"seed", seed},
        {"height", height},
        {"width", width},
        {"config", config_json ? config_json : "{}"},
    };
    mm_st_writer *w;
    mm_status status = mm_st_writer_open(&w, path, t, n, meta, (int)(sizeof meta / sizeof meta[0]));
    float *ours = NULL, *torch = NULL;
    size_t cap = 0;
    for (int i = 0; i < n && status == MM_OK; i++) {
        const mm_value *val = mm_graph_value(m->g, e[i].value);
        size_t bytes = mm_value_bytes(val);
        if (bytes > cap) {
            cap = bytes;
            ours = mm_xrealloc(ours, cap);
            torch = mm_xrealloc(torch, cap);
        }
        status = e[i].slot < 0 ? mm_session_read(s, e[i].value, ours, bytes)
                               : mm_session_read_opt(s, e[i].value, e[i].slot, ours, bytes);
        if (status != MM_OK) {
            mm_st_writer_abort(w);
            break;
        }
        mm_model_to_torch(m, e[i].value, torch, ours);
        status = mm_st_writer_put(w, torch, bytes);
    }
    if (status == MM_OK) status = mm_st_writer_finish(w);
    free(ours);
    free(torch);
    free(t);
    free(e);
    return status;
}

static int meta_int(const mm_safetensors *f, const char *key, int def)
{
    const char *v = mm_safetensors_meta(f, key);
    return v ? atoi(v) : def;
}

/* A PyTorch state_dict (runtime/torch_pth.h) says what it is by its tensors alone: the trunk by
 * its first convolution's name, the width by its filters, a patch classifier by a dense `fc` of 5
 * outputs (ResNet50's is otherwise torchvision's own). A whole-image model's top blocks are not
 * written anywhere in such a file, so it is refused. */
static mm_status torch_info(const mm_safetensors *f, mm_checkpoint_info *info)
{
    const char *path = mm_safetensors_path(f);
    const mm_st_entry *first = mm_safetensors_find(f, "features.0.weight");
    info->trunk = MM_TRUNK_VGG16;
    if (!first && mm_safetensors_find(f, "layer1.0.conv1.weight")) {
        first = mm_safetensors_find(f, "conv1.weight");
        info->trunk = MM_TRUNK_RESNET50;
    }
    if (!first)
        return mm_fail(MM_ERR_FORMAT, "%s: a PyTorch state_dict of neither torchvision's ResNet50 "
                       "nor its VGG16 (no conv1.weight and layer1.*, nor features.0.weight)", path);
    if (first->ndim != 4 || first->shape[0] < 1 || 64 % first->shape[0] != 0)
        return mm_fail(MM_ERR_FORMAT, "%s: its first convolution %s has %lld filters; 64 (or 64/N "
                       "for a reduced-width net) expected", path, first->name,
                       (long long)first->shape[0]);
    info->width_div = (int)(64 / first->shape[0]);
    const mm_st_entry *fc = mm_safetensors_find(f, "fc.weight");
    const mm_st_entry *head = fc ? fc : mm_safetensors_find(f, "classifier.6.weight");
    if (mm_safetensors_find(f, "top.fc.weight"))
        return mm_fail(MM_ERR_UNSUPPORTED, "%s: a whole-image model saved by PyTorch: its top "
                       "blocks are not written in it; give mammo's own checkpoint of it "
                       "(train-image's best.safetensors)", path);
    info->kind = fc && fc->ndim == 2 && fc->shape[0] == 5 ? MM_MODEL_PATCH : MM_MODEL_TORCHVISION;
    info->classes = head && head->ndim == 2 ? (int)head->shape[0] : 0;
    snprintf(info->top, sizeof info->top, "none");
    return MM_OK;
}

mm_status mm_checkpoint_info_from(const mm_safetensors *f, mm_checkpoint_info *info)
{
    memset(info, 0, sizeof *info);
    mm_train_state_init(&info->st);
    const char *path = mm_safetensors_path(f);
    if (mm_safetensors_meta(f, "mammo.source")) return torch_info(f, info); /* a .pth */
    const char *format = mm_safetensors_meta(f, "format");
    if (!format || strcmp(format, FORMAT_NAME) != 0)
        return mm_fail(MM_ERR_FORMAT,
                       "%s: not a mammo model (no \"format\": \"" FORMAT_NAME "\" metadata); "
                       "pass a file written by mammo train-patch or train-image",
                       path);
    const char *kind = mm_safetensors_meta(f, "kind"), *trunk = mm_safetensors_meta(f, "trunk");
    if (!kind || !trunk) return mm_fail(MM_ERR_FORMAT, "%s: metadata lacks kind/trunk", path);
    if (!strcmp(kind, "patch")) info->kind = MM_MODEL_PATCH;
    else if (!strcmp(kind, "whole")) info->kind = MM_MODEL_WHOLE;
    else if (!strcmp(kind, "torchvision")) info->kind = MM_MODEL_TORCHVISION;
    else return mm_fail(MM_ERR_FORMAT, "%s: unknown model kind '%s'", path, kind);
    MM_TRY(mm_trunk_parse(&info->trunk, trunk, path));
    info->classes = meta_int(f, "classes", 0);
    info->width_div = meta_int(f, "width_div", 1);
    const char *top = mm_safetensors_meta(f, "top");
    snprintf(info->top, sizeof info->top, "%s", top ? top : "none");
    info->has_state = mm_safetensors_meta(f, "stage") != NULL;
    mm_train_state *st = &info->st;
    st->stage = meta_int(f, "stage", 1);
    st->epoch = meta_int(f, "epoch", 0);
    st->best_stage = meta_int(f, "best_stage", 0);
    st->best_epoch = meta_int(f, "best_epoch", 0);
    st->bad_epochs = meta_int(f, "bad_epochs", 0);
    st->height = meta_int(f, "height", 0);
    st->width = meta_int(f, "width", 0);
    const char *v;
    if ((v = mm_safetensors_meta(f, "adam_step"))) st->adam_step = strtoll(v, NULL, 10);
    if ((v = mm_safetensors_meta(f, "global_step"))) st->global_step = strtoll(v, NULL, 10);
    if ((v = mm_safetensors_meta(f, "best_metric"))) st->best_metric = strtod(v, NULL);
    if ((v = mm_safetensors_meta(f, "pixel_mean"))) st->pixel_mean = strtof(v, NULL);
    if ((v = mm_safetensors_meta(f, "rescale"))) st->rescale = strtof(v, NULL);
    if ((v = mm_safetensors_meta(f, "seed"))) st->seed = strtoull(v, NULL, 10);
    if ((v = mm_safetensors_meta(f, "class_names")))
        snprintf(st->class_names, sizeof st->class_names, "%s", v);
    return MM_OK;
}

mm_status mm_checkpoint_info_read(const char *path, mm_checkpoint_info *info)
{
    memset(info, 0, sizeof *info);
    mm_train_state_init(&info->st);
    mm_safetensors *f;
    MM_TRY(mm_weights_open(&f, path)); /* a PyTorch file: says it is not mammo's */
    mm_status status = mm_checkpoint_info_from(f, info);
    mm_safetensors_close(f);
    return status;
}

mm_status mm_checkpoint_check_arch(const char *path, const mm_checkpoint_info *info,
                                   const mm_model *m)
{
    char top[256];
    mm_top_format(top, sizeof top, &m->top);
    int div = m->cfg.width_div > 1 ? m->cfg.width_div : 1;
    bool same = info->kind == m->cfg.kind && info->trunk == m->cfg.trunk && info->width_div == div &&
                info->classes == m->cfg.classes &&
                (m->cfg.kind != MM_MODEL_WHOLE || !strcmp(info->top, top));
    if (same) return MM_OK;
    return mm_fail(MM_ERR_ARG,
                   "%s holds a %s %s model (top %s, %d classes, width 1/%d) but the flags ask for a "
                   "%s %s model (top %s, %d classes, width 1/%d); pass matching --net/--top/"
                   "--width-div or another checkpoint",
                   path, mm_trunk_name(info->trunk), mm_model_kind_name(info->kind), info->top,
                   info->classes, info->width_div, mm_trunk_name(m->cfg.trunk),
                   mm_model_kind_name(m->cfg.kind), m->cfg.kind == MM_MODEL_WHOLE ? top : "none",
                   m->cfg.classes, div);
}

mm_status mm_checkpoint_load_from(const mm_safetensors *f, const mm_model *m, mm_session *s,
                                  bool with_optimizer)
{
    MM_TRY(mm_model_load_from(m, s, f, MM_LOAD_ALL));
    if (!with_optimizer || s->plan.opt_slots < 2) return MM_OK;
    entry *e;
    int n = list_entries(m, s, &e);
    mm_status status = MM_OK;
    float *ours = NULL, *torch = NULL;
    size_t cap = 0;
    for (int i = 0; i < n && status == MM_OK; i++) {
        if (e[i].slot < 0) continue;
        const mm_value *val = mm_graph_value(m->g, e[i].value);
        size_t bytes = mm_value_bytes(val);
        if (bytes > cap) {
            cap = bytes;
            ours = mm_xrealloc(ours, cap);
            torch = mm_xrealloc(torch, cap);
        }
        int ndim;
        int64_t shape[MM_MAX_DIMS];
        mm_model_torch_shape(m, e[i].value, &ndim, shape);
        status = mm_safetensors_load(f, e[i].name, MM_F32, ndim, shape, torch);
        if (status != MM_OK) break;
        mm_model_from_torch(m, e[i].value, ours, torch);
        status = mm_session_write_opt(s, e[i].value, e[i].slot, ours, bytes);
    }
    free(ours);
    free(torch);
    free(e);
    return status;
}

mm_status mm_checkpoint_load(const char *path, const mm_model *m, mm_session *s,
                             bool with_optimizer)
{
    mm_safetensors *f;
    MM_TRY(mm_safetensors_open(&f, path));
    mm_status status = mm_checkpoint_load_from(f, m, s, with_optimizer);
    mm_safetensors_close(f);
    return status;
}
