/* The state dict of a PyTorch checkpoint (torch_pth.h) as a safetensors image: the object pickle
 * is walked for its state dict; each tensor (a call of torch._utils._rebuild_tensor_v2 on a
 * storage's persistent id) is checked to lie in its storage and gathered, converted, into one
 * safetensors file in memory. The formats' loaders (torch_pth.c) find the storages' bytes. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "half.h"
#include "torch_pth_internal.h"

/* torch's storage classes and what their tensors become. */
static const mm_pth_type types[] = {
    {"FloatStorage", "F32", 4, 'f'}, {"DoubleStorage", "F32", 8, 'd'},
    {"HalfStorage", "F32", 2, 'h'},  {"BFloat16Storage", "F32", 2, 'b'},
    {"LongStorage", "I64", 8, 0},    {"IntStorage", "I32", 4, 0},
    {"ShortStorage", "I16", 2, 0},   {"CharStorage", "I8", 1, 0},
    {"ByteStorage", "U8", 1, 0},     {"BoolStorage", "BOOL", 1, 0},
};

/* ---- storages ---- */

static const mm_pth_type *type_of(const mm_pk_node *cls)
{
    bool torch_module = cls->kind == MM_PK_GLOBAL &&
                        ((cls->len == 5 && !memcmp(cls->s, "torch", 5)) ||
                         (cls->len == 10 && !memcmp(cls->s, "torch.cuda", 10)));
    for (size_t k = 0; torch_module && k < sizeof types / sizeof types[0]; k++)
        if (cls->name_len == strlen(types[k].cls) &&
            !memcmp(cls->name, types[k].cls, cls->name_len))
            return &types[k];
    return NULL;
}

static mm_pth_storage_t *find_storage(mm_pth *f, const mm_pk_node *key)
{
    for (int k = 0; k < f->n_st; k++)
        if (f->st[k].key_len == key->len && !memcmp(f->st[k].key, key->s, key->len))
            return &f->st[k];
    return NULL;
}

/* A persistent id ('storage', torch.FloatStorage, key, location, numel[, view]) registered (its
 * bytes found later); *view_offset: the legacy format's view into it, in elements. */
mm_status mm_pth_storage(mm_pth *f, int persid, const char *name, mm_pth_storage_t **out,
                         int64_t *view_offset, int64_t *view_numel)
{
    char who[300] = "a storage"; /* of the messages */
    if (name) snprintf(who, sizeof who, "tensor '%.256s'", name);
    const mm_pk_node *id = mm_pk_get(f->pk, mm_pk_get(f->pk, persid)->items[0]);
    if (id->kind != MM_PK_TUPLE || id->n < 5 ||
        !mm_pk_is_str(mm_pk_get(f->pk, id->items[0]), "storage"))
        return mm_fail(MM_ERR_FORMAT, "%s: %s refers to a persistent object that is not a "
                       "storage" HINT, f->label, who);
    const mm_pk_node *cls = mm_pk_get(f->pk, id->items[1]), *key = mm_pk_get(f->pk, id->items[2]);
    const mm_pk_node *numel = mm_pk_get(f->pk, id->items[4]);
    const mm_pth_type *type = type_of(cls);
    if (!type)
        return mm_fail(MM_ERR_UNSUPPORTED, "%s: %s is stored as %.*s.%.*s; mammo reads "
                       "float32/16/64, bfloat16, integer and bool tensors", f->label, who,
                       (int)cls->len, cls->s ? cls->s : "", (int)cls->name_len,
                       cls->name ? cls->name : "");
    if (key->kind != MM_PK_STR || numel->kind != MM_PK_INT || numel->i < 0)
        return mm_fail(MM_ERR_FORMAT, "%s: %s: its storage's key or size is damaged" HINT,
                       f->label, who);
    mm_pth_storage_t *s = find_storage(f, key);
    if (s && (s->type != type || s->numel != numel->i))
        return mm_fail(MM_ERR_FORMAT, "%s: storage '%.*s' is described two ways" HINT, f->label,
                       (int)key->len, key->s);
    if (!s) {
        if (f->n_st == f->cap_st) {
            f->cap_st = f->cap_st ? 2 * f->cap_st : 16;
            f->st = mm_xrealloc(f->st, (size_t)f->cap_st * sizeof *f->st);
        }
        s = &f->st[f->n_st++];
        *s = (mm_pth_storage_t){key->s, key->len, type, numel->i, NULL};
    }
    *out = s;
    *view_offset = 0;
    *view_numel = s->numel;
    const mm_pk_node *view = id->n > 5 ? mm_pk_get(f->pk, id->items[5]) : NULL;
    if (view && view->kind == MM_PK_TUPLE) { /* (view key, offset, elements), old legacy files */
        const mm_pk_node *off = view->n == 3 ? mm_pk_get(f->pk, view->items[1]) : NULL;
        const mm_pk_node *len = view->n == 3 ? mm_pk_get(f->pk, view->items[2]) : NULL;
        if (!off || off->kind != MM_PK_INT || len->kind != MM_PK_INT || off->i < 0 ||
            len->i < 0 || off->i > s->numel || len->i > s->numel - off->i)
            return mm_fail(MM_ERR_FORMAT, "%s: %s: its storage view is out of range" HINT,
                           f->label, who);
        *view_offset = off->i;
        *view_numel = len->i;
    }
    return MM_OK;
}

/* ---- tensors ---- */

static bool is_rebuild(const mm_pk_node *fn, const char *name)
{
    return mm_pk_is_global(fn, "torch._utils", name);
}

/* Whether node id is a tensor (or parameter) call; -1 for a call of another tensor kind. */
static int tensor_kind(const mm_pth *f, int id)
{
    const mm_pk_node *n = mm_pk_get(f->pk, id);
    if (n->kind != MM_PK_CALL) return 0;
    const mm_pk_node *fn = mm_pk_get(f->pk, n->items[0]);
    if (is_rebuild(fn, "_rebuild_tensor_v2") || is_rebuild(fn, "_rebuild_tensor") ||
        is_rebuild(fn, "_rebuild_parameter") || is_rebuild(fn, "_rebuild_parameter_with_state"))
        return 1;
    if (fn->kind == MM_PK_GLOBAL && fn->len == 12 && !memcmp(fn->s, "torch._utils", 12)) return -1;
    return 0;
}

static bool int_tuple(const mm_pk_node *n, const mm_pickle *pk, int64_t *out, int max)
{
    if (n->kind != MM_PK_TUPLE || n->n > max) return false;
    for (int k = 0; k < n->n; k++) {
        const mm_pk_node *v = mm_pk_get(pk, n->items[k]);
        if (v->kind != MM_PK_INT || v->i < 0) return false;
        out[k] = v->i;
    }
    return true;
}

/* Fills t from the call at node id: its storage, offset, sizes and strides, checked to lie in
 * the storage. */
static mm_status read_tensor(mm_pth *f, int id, mm_pth_tensor *t)
{
    const mm_pk_node *n = mm_pk_get(f->pk, id);
    const mm_pk_node *fn = mm_pk_get(f->pk, n->items[0]), *args = mm_pk_get(f->pk, n->items[1]);
    if (tensor_kind(f, id) < 0)
        return mm_fail(MM_ERR_UNSUPPORTED, "%s: tensor '%s' is made by torch._utils.%.*s "
                       "(quantized, sparse or another kind mammo does not read); save it dense",
                       f->label, t->name, (int)fn->name_len, fn->name);
    if (is_rebuild(fn, "_rebuild_parameter") || is_rebuild(fn, "_rebuild_parameter_with_state")) {
        if (args->n < 1 || tensor_kind(f, args->items[0]) != 1 ||
            mm_pk_get(f->pk, args->items[0])->kind != MM_PK_CALL ||
            !is_rebuild(mm_pk_get(f->pk, mm_pk_get(f->pk, args->items[0])->items[0]),
                        "_rebuild_tensor_v2"))
            return mm_fail(MM_ERR_FORMAT, "%s: parameter '%s' holds no tensor" HINT, f->label,
                           t->name);
        return read_tensor(f, args->items[0], t);
    }
    const mm_pk_node *persid = args->n >= 4 ? mm_pk_get(f->pk, args->items[0]) : NULL;
    const mm_pk_node *offset = args->n >= 4 ? mm_pk_get(f->pk, args->items[1]) : NULL;
    int64_t stride[MM_PTH_MAX_DIMS];
    if (!persid || persid->kind != MM_PK_PERSID || offset->kind != MM_PK_INT || offset->i < 0 ||
        !int_tuple(mm_pk_get(f->pk, args->items[2]), f->pk, t->shape, MM_PTH_MAX_DIMS) ||
        !int_tuple(mm_pk_get(f->pk, args->items[3]), f->pk, stride, MM_PTH_MAX_DIMS) ||
        mm_pk_get(f->pk, args->items[2])->n != mm_pk_get(f->pk, args->items[3])->n)
        return mm_fail(MM_ERR_FORMAT, "%s: tensor '%s': its storage, offset, sizes or strides are "
                       "damaged (or it has more than %d dimensions)" HINT, f->label, t->name,
                       MM_PTH_MAX_DIMS);
    mm_pth_storage_t *s;
    int64_t view_offset, view_numel;
    MM_TRY(mm_pth_storage(f, args->items[0], t->name, &s, &view_offset, &view_numel));
    t->st = (int)(s - f->st);
    t->ndim = mm_pk_get(f->pk, args->items[2])->n;
    memcpy(t->stride, stride, sizeof stride);
    t->offset = view_offset + offset->i;
    if (!mm_shape_numel_checked(t->ndim, t->shape, &t->numel))
        return mm_fail(MM_ERR_FORMAT, "%s: tensor '%s': its sizes overflow" HINT, f->label,
                       t->name);
    /* the last element's index: offset + sum (size - 1) * stride, within the view */
    int64_t last = offset->i, step;
    bool overflow = false;
    for (int d = 0; d < t->ndim && t->numel > 0; d++) {
        overflow |= __builtin_mul_overflow(t->shape[d] - 1, t->stride[d], &step);
        overflow |= __builtin_add_overflow(last, step, &last);
    }
    if (t->numel > 0 && (overflow || last >= view_numel))
        return mm_fail(MM_ERR_FORMAT, "%s: tensor '%s' reaches past the end of its storage '%.*s' "
                       "(%lld elements)" HINT, f->label, t->name, (int)s->key_len, s->key,
                       (long long)view_numel);
    return MM_OK;
}

/* ---- the state dict ---- */

/* Whether dict node id holds tensors only (and at least one). */
static bool tensor_dict(const mm_pth *f, int id)
{
    const mm_pk_node *d = mm_pk_get(f->pk, id);
    if (d->kind != MM_PK_DICT || d->n == 0) return false;
    for (int k = 0; k + 1 < d->n; k += 2)
        if (tensor_kind(f, d->items[k + 1]) == 0) return false;
    return true;
}

/* "a, b, c" of a dict's string keys (the first few), for messages. */
static void key_list(const mm_pth *f, const mm_pk_node *d, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = 0;
    for (int k = 0; k + 1 < d->n && used + 1 < n; k += 2) {
        const mm_pk_node *key = mm_pk_get(f->pk, d->items[k]);
        if (k >= 16) {
            snprintf(buf + used, n - used, ", ...");
            break;
        }
        int w = snprintf(buf + used, n - used, "%s%.*s", k ? ", " : "",
                         key->kind == MM_PK_STR ? (int)(key->len > 40 ? 40 : key->len) : 1,
                         key->kind == MM_PK_STR ? key->s : "?");
        used += w > 0 ? (size_t)w : 0;
    }
}

/* The state dict's node: the object, or a checkpoint's entry. */
static mm_status state_dict(const mm_pth *f, int *out)
{
    int root = mm_pickle_root(f->pk);
    if (tensor_dict(f, root)) return (*out = root), MM_OK;
    const char *keys[] = {"state_dict", "model_state_dict", "model", "net"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        int v = mm_pk_dict_get(f->pk, root, keys[k]);
        if (v >= 0 && tensor_dict(f, v)) return (*out = v), MM_OK;
    }
    const mm_pk_node *r = mm_pk_get(f->pk, root);
    if (r->kind == MM_PK_CALL && mm_pk_get(f->pk, r->items[0])->kind == MM_PK_GLOBAL) {
        const mm_pk_node *cls = mm_pk_get(f->pk, r->items[0]);
        return mm_fail(MM_ERR_UNSUPPORTED, "%s: holds a pickled %.*s.%.*s object, not a "
                       "state_dict: save the model's weights with torch.save(model.state_dict(), "
                       "path)",
                       f->label, (int)cls->len, cls->s, (int)cls->name_len, cls->name);
    }
    char list[512] = "";
    if (r->kind == MM_PK_DICT) key_list(f, r, list, sizeof list);
    return mm_fail(MM_ERR_FORMAT, "%s: no state_dict here: expected a dict of tensors "
                   "(torch.save(model.state_dict(), path)) or one under 'state_dict', "
                   "'model_state_dict', 'model' or 'net'; %s%s", f->label,
                   r->kind == MM_PK_DICT ? "the file's dict has the keys: " : "the file holds "
                   "no dict", list);
}

/* Every tensor of the state dict, named (without DataParallel's "module."). */
mm_status mm_pth_collect(mm_pth *f)
{
    int dict;
    MM_TRY(state_dict(f, &dict));
    const mm_pk_node *d = mm_pk_get(f->pk, dict);
    bool strip = true;
    for (int k = 0; k + 1 < d->n; k += 2) {
        const mm_pk_node *key = mm_pk_get(f->pk, d->items[k]);
        if (key->kind != MM_PK_STR || key->len == 0 || memchr(key->s, 0, key->len))
            return mm_fail(MM_ERR_FORMAT, "%s: the state_dict has a key that is not a name" HINT,
                           f->label);
        strip &= key->len > 7 && !memcmp(key->s, "module.", 7);
    }
    f->t = mm_xcalloc((size_t)d->n / 2 + 1, sizeof *f->t);
    for (int k = 0; k + 1 < d->n; k += 2) {
        const mm_pk_node *key = mm_pk_get(f->pk, d->items[k]);
        mm_pth_tensor *t = &f->t[f->n_t++];
        size_t skip = strip ? 7 : 0;
        t->name = mm_xmalloc(key->len - skip + 1);
        memcpy(t->name, key->s + skip, key->len - skip);
        t->name[key->len - skip] = 0;
        MM_TRY(read_tensor(f, d->items[k + 1], t));
    }
    return MM_OK;
}

/* ---- the safetensors image ---- */

static void put_element(uint8_t *dst, const uint8_t *src, const mm_pth_type *type)
{
    float v;
    double d;
    uint16_t h;
    switch (type->conv) {
    case 'f': memcpy(dst, src, 4); return;
    case 'd': memcpy(&d, src, 8); v = (float)d; break;
    case 'h': memcpy(&h, src, 2); v = mm_f16_to_f32(h); break;
    case 'b': memcpy(&h, src, 2); v = mm_bf16_to_f32(h); break;
    default: memcpy(dst, src, (size_t)type->size); return;
    }
    memcpy(dst, &v, 4);
}

static size_t out_size(const mm_pth_type *type) { return type->conv ? 4 : (size_t)type->size; }

/* t's elements in row-major order into dst (an odometer over its strides). */
static void gather(uint8_t *dst, const mm_pth *f, const mm_pth_tensor *t)
{
    const mm_pth_storage_t *s = &f->st[t->st];
    const mm_pth_type *type = s->type;
    size_t in = (size_t)type->size, out = out_size(type);
    int64_t idx[MM_PTH_MAX_DIMS] = {0}, at = t->offset;
    for (int64_t k = 0; k < t->numel; k++) {
        put_element(dst + (size_t)k * out, s->bytes + (size_t)at * in, type);
        for (int d = t->ndim - 1; d >= 0; d--) {
            if (++idx[d] < t->shape[d]) {
                at += t->stride[d];
                break;
            }
            at -= t->stride[d] * (t->shape[d] - 1);
            idx[d] = 0;
        }
    }
}

mm_status mm_pth_image(mm_pth *f, const char *source, mm_safetensors **out)
{
    json_t *header = json_object(), *meta = json_object();
    json_object_set_new(meta, "format", json_string("pt"));
    json_object_set_new(meta, "mammo.source", json_string(source));
    json_object_set_new(header, "__metadata__", meta);
    uint64_t data_bytes = 0;
    /* float16 doubles in float32; only views repeating elements (stride 0) grow more */
    uint64_t bound = 8 * (uint64_t)f->file_size + (256u << 20);
    mm_status st = MM_OK;
    for (int k = 0; k < f->n_t && st == MM_OK; k++) {
        const mm_pth_tensor *t = &f->t[k];
        const mm_pth_type *type = f->st[t->st].type;
        if ((uint64_t)t->numel > (bound - data_bytes) / out_size(type)) {
            st = mm_fail(MM_ERR_UNSUPPORTED, "%s: its tensors would take over 8 times the file's "
                         "bytes: expanded views (stride 0)? save them with .contiguous()",
                         f->label);
            break;
        }
        uint64_t bytes = (uint64_t)t->numel * out_size(type);
        json_t *e = json_object(), *shape = json_array();
        for (int d = 0; d < t->ndim; d++) json_array_append_new(shape, json_integer(t->shape[d]));
        json_object_set_new(e, "dtype", json_string(type->dtype));
        json_object_set_new(e, "shape", shape);
        json_object_set_new(e, "data_offsets",
                            json_pack("[II]", (json_int_t)data_bytes,
                                      (json_int_t)(data_bytes + bytes)));
        if (json_object_get(header, t->name)) {
            st = mm_fail(MM_ERR_FORMAT, "%s: tensor '%s' appears twice in the state_dict",
                         f->label, t->name);
            json_decref(e);
        } else if (json_object_set_new(header, t->name, e) != 0) { /* took e, even failing */
            st = mm_fail(MM_ERR_FORMAT, "%s: tensor name '%s' is not UTF-8" HINT, f->label,
                         t->name);
        }
        data_bytes += bytes;
    }
    char *text = st == MM_OK ? json_dumps(header, JSON_COMPACT) : NULL;
    json_decref(header);
    if (st != MM_OK) return st;
    MM_ASSERT(text);
    size_t text_len = strlen(text), padded = (text_len + 7) / 8 * 8;
    size_t size = 8 + padded + (size_t)data_bytes;
    uint8_t *image = mm_xmalloc(size);
    for (int i = 0; i < 8; i++) image[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    memcpy(image + 8, text, text_len);
    memset(image + 8 + text_len, ' ', padded - text_len);
    free(text);
    uint8_t *data = image + 8 + padded;
    for (int k = 0; k < f->n_t; k++) {
        gather(data, f, &f->t[k]);
        data += (size_t)f->t[k].numel * out_size(f->st[f->t[k].st].type);
    }
    return mm_safetensors_parse_owned(out, image, size, f->label);
}

void mm_pth_free(mm_pth *f)
{
    for (int k = 0; k < f->n_t; k++) free(f->t[k].name);
    free(f->t);
    free(f->st);
    mm_pickle_free(f->pk);
}
