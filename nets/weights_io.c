/* Weights as safetensors with torchvision's names, shapes and layouts: import (all tensors, or the
 * trunk only for the patch-to-whole-image conversion) and export, converting our layouts (OHWI
 * convolutions, NHWC-ordered flatten columns) to PyTorch's (OIHW, NCHW-ordered columns) and back. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/safetensors.h"
#include "../runtime/torch_pth.h"
#include "layers.h"

static const mm_param_info *info_of(const mm_model *m, int value)
{
    static const mm_param_info none;
    return value < m->info_cap ? &m->info[value] : &none;
}

void mm_model_torch_shape(const mm_model *m, int value, int *ndim, int64_t *shape)
{
    const mm_value *v = mm_graph_value(m->g, value);
    *ndim = v->ndim;
    for (int i = 0; i < v->ndim; i++) shape[i] = v->shape[i];
    if (v->ndim == 4) { /* OHWI -> OIHW */
        shape[1] = v->shape[3];
        shape[2] = v->shape[1];
        shape[3] = v->shape[2];
    }
}

/* Converts one tensor; to_torch selects the direction. */
static void convert(const mm_model *m, int value, float *dst, const float *src, bool to_torch)
{
    const mm_value *v = mm_graph_value(m->g, value);
    const mm_param_info *pi = info_of(m, value);
    int64_t n = mm_shape_numel(v->ndim, v->shape);
    if (v->ndim == 4) {
        /* ours [o][h][w][i], PyTorch [o][i][h][w] */
        int64_t O = v->shape[0], H = v->shape[1], W = v->shape[2], I = v->shape[3];
        for (int64_t o = 0; o < O; o++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t w = 0; w < W; w++)
                    for (int64_t i = 0; i < I; i++) {
                        int64_t ours = ((o * H + h) * W + w) * I + i;
                        int64_t torch = ((o * I + i) * H + h) * W + w;
                        if (to_torch)
                            dst[torch] = src[ours];
                        else
                            dst[ours] = src[torch];
                    }
    } else if (v->ndim == 2 && pi->flat_c > 0) {
        /* A dense weight [o][k] over a flattened map: column (h,w,c) here, (c,h,w) in PyTorch. */
        int64_t O = v->shape[0], K = v->shape[1];
        int64_t H = pi->flat_h, W = pi->flat_w, C = pi->flat_c;
        MM_ASSERT(H * W * C == K);
#pragma omp parallel for schedule(static)
        for (int64_t o = 0; o < O; o++) {
            const float *s = src + o * K;
            float *d = dst + o * K;
            for (int64_t h = 0; h < H; h++)
                for (int64_t w = 0; w < W; w++)
                    for (int64_t c = 0; c < C; c++) {
                        int64_t ours = (h * W + w) * C + c, torch = (c * H + h) * W + w;
                        if (to_torch)
                            d[torch] = s[ours];
                        else
                            d[ours] = s[torch];
                    }
        }
    } else {
        memcpy(dst, src, (size_t)n * sizeof *dst);
    }
}

void mm_model_to_torch(const mm_model *m, int value, float *dst, const float *src)
{
    convert(m, value, dst, src, true);
}

void mm_model_from_torch(const mm_model *m, int value, float *dst, const float *src)
{
    convert(m, value, dst, src, false);
}

static bool is_weight_value(const mm_model *m, int id)
{
    const mm_value *v = mm_graph_value(m->g, id);
    return (v->kind == MM_VALUE_PARAM || v->kind == MM_VALUE_STATE) && info_of(m, id)->used;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

static void model_label(char *buf, size_t n, const mm_model *m)
{
    snprintf(buf, n, "%s %s", mm_trunk_name(m->cfg.trunk), mm_model_kind_name(m->cfg.kind));
}

/* Reads tensor `file_name` of PyTorch shape (ndim, shape) into `torch_buf` (checked). */
static mm_status read_tensor(const mm_model *m, const mm_safetensors *f, const char *file_name,
                             int ndim, const int64_t *shape, float *torch_buf)
{
    const mm_st_entry *e = mm_safetensors_find(f, file_name);
    if (!e) {
        char label[64], sh[96];
        model_label(label, sizeof label, m);
        mm_shape_str(sh, sizeof sh, ndim, shape);
        return mm_fail(MM_ERR_FORMAT, "%s: tensor '%s' is missing (the %s model needs it, shape %s)",
                       mm_safetensors_path(f), file_name, label, sh);
    }
    /* float32, or float16, bfloat16 or float64 read as float32 */
    bool is_float = mm_safetensors_is_float(e) && e->ndim <= MM_MAX_DIMS;
    if (!is_float || !mm_shape_equal(e->ndim, e->shape, ndim, shape)) {
        char want[96], got[96] = "?";
        mm_shape_str(want, sizeof want, ndim, shape);
        if (e->ndim <= MM_MAX_DIMS) mm_shape_str(got, sizeof got, e->ndim, e->shape);
        return mm_fail(MM_ERR_FORMAT, "%s: tensor '%s' is %s %s, expected F32 %s (or F16, BF16, "
                       "F64)", mm_safetensors_path(f), file_name, e->dtype_name, got, want);
    }
    return mm_safetensors_read_f32(f, e, torch_buf);
}

/* Loads one model value from the file tensor `file_name`. */
static mm_status load_value(const mm_model *m, mm_session *s, const mm_safetensors *f, int id,
                            const char *file_name, float *torch_buf, float *ours_buf)
{
    const mm_value *v = mm_graph_value(m->g, id);
    int ndim;
    int64_t shape[MM_MAX_DIMS];
    mm_model_torch_shape(m, id, &ndim, shape);
    MM_TRY(read_tensor(m, f, file_name, ndim, shape, torch_buf));
    mm_model_from_torch(m, id, ours_buf, torch_buf);
    return mm_session_write(s, id, ours_buf, mm_value_bytes(v));
}

/* MM_LOAD_TRUNK with a heatmap item: its 1x1 conv [P,1,1,C] takes the patch classifier's dense
 * fc.weight [P,C] (the same numbers in the same order) and fc.bias [P]. */
static mm_status load_heatmap(const mm_model *m, mm_session *s, const mm_safetensors *f,
                              float *buf)
{
    int w = mm_graph_find(m->g, "top.0.weight"), b = mm_graph_find(m->g, "top.0.bias");
    MM_ASSERT(w >= 0 && b >= 0);
    const mm_value *W = mm_graph_value(m->g, w);
    int64_t wshape[2] = {W->shape[0], W->shape[3]}, bshape[1] = {W->shape[0]};
    if (!mm_safetensors_find(f, "fc.weight"))
        return mm_fail(MM_ERR_FORMAT, "%s: tensor 'fc.weight' is missing: the heatmap ('hm') is "
                       "made from a patch classifier's dense layer; give a patch classifier's "
                       "weights", mm_safetensors_path(f));
    MM_TRY(read_tensor(m, f, "fc.weight", 2, wshape, buf));
    MM_TRY(mm_session_write(s, w, buf, mm_value_bytes(W)));
    MM_TRY(read_tensor(m, f, "fc.bias", 1, bshape, buf));
    return mm_session_write(s, b, buf, mm_value_bytes(mm_graph_value(m->g, b)));
}

mm_status mm_model_load_from(const mm_model *m, mm_session *s, const mm_safetensors *f,
                             mm_load_mode mode)
{
    size_t cap = 0;
    for (int id = 0; id < m->g->n_values; id++)
        if (is_weight_value(m, id) && mm_value_bytes(mm_graph_value(m->g, id)) > cap)
            cap = mm_value_bytes(mm_graph_value(m->g, id));
    float *torch_buf = mm_xmalloc(cap ? cap : 4), *ours_buf = mm_xmalloc(cap ? cap : 4);
    mm_status st = MM_OK;
    if (mode == MM_LOAD_ALL) {
        /* A tensor the model does not have means the file is of another architecture. */
        char label[64];
        model_label(label, sizeof label, m);
        for (int i = 0; i < mm_safetensors_count(f) && st == MM_OK; i++) {
            const char *name = mm_safetensors_entry(f, i)->name;
            /* torchvision's counters, and the optimizer state a checkpoint carries */
            if (ends_with(name, ".num_batches_tracked") || !strncmp(name, "optimizer.", 10)) continue;
            int id = mm_graph_find(m->g, name);
            if (id < 0 || !is_weight_value(m, id))
                st = mm_fail(MM_ERR_FORMAT, "%s: tensor '%s' is not part of the %s model (weights "
                             "of another net, head or top?)", mm_safetensors_path(f), name, label);
        }
    }
    for (int id = 0; id < m->g->n_values && st == MM_OK; id++) {
        if (!is_weight_value(m, id)) continue;
        const char *name = mm_graph_value(m->g, id)->name;
        if (mode == MM_LOAD_TRUNK && !mm_name_in_trunk(m->cfg.trunk, name)) continue;
        st = load_value(m, s, f, id, name, torch_buf, ours_buf);
    }
    if (st == MM_OK && mode == MM_LOAD_TRUNK && m->cfg.kind == MM_MODEL_WHOLE &&
        mm_top_has_heatmap(&m->top))
        st = load_heatmap(m, s, f, torch_buf);
    free(torch_buf);
    free(ours_buf);
    return st;
}

mm_status mm_model_load(const mm_model *m, mm_session *s, const char *path, mm_load_mode mode)
{
    mm_safetensors *f;
    MM_TRY(mm_weights_open(&f, path));
    mm_status st = mm_model_load_from(m, s, f, mode);
    mm_safetensors_close(f);
    return st;
}

mm_status mm_model_save(const mm_model *m, const mm_session *s, const char *path)
{
    int n = 0;
    size_t cap = 4;
    for (int id = 0; id < m->g->n_values; id++) {
        if (!is_weight_value(m, id)) continue;
        n++;
        if (mm_value_bytes(mm_graph_value(m->g, id)) > cap)
            cap = mm_value_bytes(mm_graph_value(m->g, id));
    }
    mm_st_tensor *list = mm_xcalloc((size_t)(n ? n : 1), sizeof *list);
    int *ids = mm_xcalloc((size_t)(n ? n : 1), sizeof *ids);
    int k = 0;
    for (int id = 0; id < m->g->n_values; id++) {
        if (!is_weight_value(m, id)) continue;
        list[k].name = mm_graph_value(m->g, id)->name;
        list[k].dtype = MM_F32;
        mm_model_torch_shape(m, id, &list[k].ndim, list[k].shape);
        ids[k++] = id;
    }
    char classes[16], top[256] = "";
    snprintf(classes, sizeof classes, "%d", m->cfg.classes);
    if (m->cfg.kind == MM_MODEL_WHOLE) mm_top_format(top, sizeof top, &m->top);
    mm_st_meta meta[5] = {{"format", "pt"},
                          {"mammo.net", mm_trunk_name(m->cfg.trunk)},
                          {"mammo.model", mm_model_kind_name(m->cfg.kind)},
                          {"mammo.classes", classes},
                          {"mammo.top", top}};
    int n_meta = m->cfg.kind == MM_MODEL_WHOLE ? 5 : 4;

    mm_st_writer *w;
    mm_status st = mm_st_writer_open(&w, path, list, n, meta, n_meta);
    float *ours = NULL, *torch = NULL;
    if (st == MM_OK) {
        ours = mm_xmalloc(cap);
        torch = mm_xmalloc(cap);
        for (int i = 0; i < n && st == MM_OK; i++) {
            size_t bytes = mm_value_bytes(mm_graph_value(m->g, ids[i]));
            st = mm_session_read(s, ids[i], ours, bytes);
            if (st != MM_OK) {
                mm_st_writer_abort(w);
                break;
            }
            mm_model_to_torch(m, ids[i], torch, ours);
            st = mm_st_writer_put(w, torch, bytes); /* releases the writer on failure */
        }
        if (st == MM_OK) st = mm_st_writer_finish(w);
    }
    free(ours);
    free(torch);
    free(list);
    free(ids);
    return st;
}

mm_status mm_model_copy_weights(const mm_model *dst, mm_session *ds, const mm_model *src,
                                const mm_session *ss, int *copied)
{
    int n = 0;
    size_t cap = 0;
    float *buf = NULL;
    mm_status st = MM_OK;
    for (int id = 0; id < dst->g->n_values && st == MM_OK; id++) {
        if (!is_weight_value(dst, id)) continue;
        const mm_value *d = mm_graph_value(dst->g, id);
        int sid = mm_graph_find(src->g, d->name);
        if (sid < 0 || !is_weight_value(src, sid)) continue;
        const mm_value *s = mm_graph_value(src->g, sid);
        if (!mm_shape_equal(d->ndim, d->shape, s->ndim, s->shape)) continue;
        size_t bytes = mm_value_bytes(d);
        if (bytes > cap) {
            free(buf);
            buf = mm_xmalloc(bytes);
            cap = bytes;
        }
        st = mm_session_read(ss, sid, buf, bytes);
        if (st == MM_OK) st = mm_session_write(ds, id, buf, bytes);
        n++;
    }
    free(buf);
    if (copied) *copied = n;
    return st;
}
