/* PyTorch checkpoints: the two file formats of torch.save (torch_pth.h) and the file itself; the
 * state dict's tensors are taken out in torch_pth_dict.c. */
#include "torch_pth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "torch_pth_internal.h"
#include "zip.h"

/* The legacy format's first pickle: the int 0x1950a86a20f9469cfc6c, in LONG1's bytes. */
static const uint8_t legacy_magic[10] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9,
                                         0x20, 0x6a, 0xa8, 0x50, 0x19};

bool mm_pth_sniff(const uint8_t *head, size_t n)
{
    if (n >= 4 && !memcmp(head, "PK\x03\x04", 4)) return true;
    /* PROTO n, maybe a FRAME, then LONG1 of 10 bytes: the magic number */
    size_t at = 2;
    if (n >= 3 && head[0] == 0x80 && head[2] == 0x95) at += 9;
    return n >= at + 12 && head[0] == 0x80 && head[at] == 0x8a && head[at + 1] == 10 &&
           !memcmp(head + at + 2, legacy_magic, 10);
}

/* ---- the zip format ---- */

/* Every storage's bytes: the entry <prefix>data/<key>. */
static mm_status zip_storages(mm_pth *f, const mm_zip *z, const char *prefix)
{
    for (int k = 0; k < f->n_st; k++) {
        mm_pth_storage_t *s = &f->st[k];
        char name[512];
        int key_len = (int)(s->key_len > 256 ? 256 : s->key_len);
        snprintf(name, sizeof name, "%sdata/%.*s", prefix, key_len, s->key);
        const mm_zip_entry *e = mm_zip_find(z, name);
        if (!e)
            return mm_fail(MM_ERR_FORMAT, "%s: storage '%s' is missing from the archive" HINT,
                           f->label, name);
        MM_TRY(mm_zip_data(z, e, &s->bytes));
        if (e->size / (uint64_t)s->type->size < (uint64_t)s->numel)
            return mm_fail(MM_ERR_FORMAT, "%s: storage '%s' has %llu bytes, its tensors need %llu"
                           HINT, f->label, name, (unsigned long long)e->size,
                           (unsigned long long)s->numel * (unsigned long long)s->type->size);
    }
    return MM_OK;
}

static mm_status read_zip(mm_pth *f, const uint8_t *data, size_t size, mm_safetensors **out)
{
    mm_zip *z;
    MM_TRY(mm_zip_parse(&z, data, size, f->label));
    /* every entry is under one folder, the archive's name: find its data.pkl */
    char prefix[256] = "";
    const char *first = mm_zip_count(z) ? mm_zip_entry_at(z, 0)->name : "";
    const char *slash = strchr(first, '/');
    if (slash && (size_t)(slash - first) < sizeof prefix - 1)
        snprintf(prefix, sizeof prefix, "%.*s", (int)(slash - first + 1), first);
    char name[300];
    snprintf(name, sizeof name, "%sdata.pkl", prefix);
    const mm_zip_entry *pkl = mm_zip_find(z, name);
    snprintf(name, sizeof name, "%sbyteorder", prefix);
    const mm_zip_entry *order = mm_zip_find(z, name);
    const uint8_t *bytes = NULL;
    mm_status st = MM_OK;
    if (!pkl)
        st = mm_fail(MM_ERR_FORMAT, "%s: a zip archive without %sdata.pkl: not a file of "
                     "torch.save (a TorchScript archive? save the model's state_dict instead)",
                     f->label, prefix);
    if (st == MM_OK && order) {
        st = mm_zip_data(z, order, &bytes);
        if (st == MM_OK && !(order->size == 6 && !memcmp(bytes, "little", 6)))
            st = mm_fail(MM_ERR_UNSUPPORTED, "%s: saved on a big-endian machine; load and save "
                         "it again on a little-endian one", f->label);
    }
    if (st == MM_OK) st = mm_zip_data(z, pkl, &bytes);
    if (st == MM_OK) st = mm_pickle_parse(&f->pk, bytes, (size_t)pkl->size, f->label, NULL);
    if (st == MM_OK) st = mm_pth_collect(f);
    if (st == MM_OK) st = zip_storages(f, z, prefix);
    if (st == MM_OK) st = mm_pth_image(f, "torch.save", out);
    mm_zip_close(z);
    return st;
}

/* ---- the legacy format: five pickles, then the storages ---- */

/* The next pickle of the file at *pos; the caller frees it. */
static mm_status next_pickle(const mm_pth *f, const uint8_t *data, size_t size, size_t *pos,
                             mm_pickle **out)
{
    size_t used;
    MM_TRY(mm_pickle_parse(out, data + *pos, size - *pos, f->label, &used));
    *pos += used;
    return MM_OK;
}

/* The magic number, protocol 1001 and a little-endian system. */
static mm_status legacy_header(const mm_pth *f, const uint8_t *data, size_t size, size_t *pos)
{
    mm_pickle *p[3] = {NULL, NULL, NULL};
    mm_status st = MM_OK;
    for (int k = 0; k < 3 && st == MM_OK; k++) st = next_pickle(f, data, size, pos, &p[k]);
    if (st == MM_OK) {
        const mm_pk_node *magic = mm_pk_get(p[0], mm_pickle_root(p[0]));
        const mm_pk_node *proto = mm_pk_get(p[1], mm_pickle_root(p[1]));
        int little = mm_pk_dict_get(p[2], mm_pickle_root(p[2]), "little_endian");
        if (magic->kind != MM_PK_BIGINT || magic->len != 10 || memcmp(magic->s, legacy_magic, 10))
            st = mm_fail(MM_ERR_FORMAT, "%s: not a PyTorch checkpoint (no torch.save magic "
                         "number)", f->label);
        else if (proto->kind != MM_PK_INT || proto->i != 1001)
            st = mm_fail(MM_ERR_UNSUPPORTED, "%s: torch.save legacy protocol %lld; mammo reads "
                         "1001", f->label, proto->kind == MM_PK_INT ? (long long)proto->i : -1LL);
        else if (little < 0 || mm_pk_get(p[2], little)->kind != MM_PK_BOOL ||
                 !mm_pk_get(p[2], little)->i)
            st = mm_fail(MM_ERR_UNSUPPORTED, "%s: saved on a big-endian machine; load and save "
                         "it again on a little-endian one", f->label);
    }
    for (int k = 0; k < 3; k++) mm_pickle_free(p[k]);
    return st;
}

/* Registers every storage the object pickle names, in or out of the state dict: walking the
 * storages needs each one's element size. */
static mm_status legacy_register(mm_pth *f)
{
    for (int id = 0; id < mm_pickle_count(f->pk); id++) {
        const mm_pk_node *n = mm_pk_get(f->pk, id);
        if (n->kind != MM_PK_PERSID) continue;
        const mm_pk_node *pid = mm_pk_get(f->pk, n->items[0]);
        if (pid->kind != MM_PK_TUPLE || pid->n < 1 ||
            !mm_pk_is_str(mm_pk_get(f->pk, pid->items[0]), "storage"))
            continue; /* the source code of a pickled module */
        mm_pth_storage_t *s;
        int64_t view_offset, view_numel;
        MM_TRY(mm_pth_storage(f, id, NULL, &s, &view_offset, &view_numel));
    }
    return MM_OK;
}

/* After the keys' pickle: each storage as an int64 element count and its bytes, in its order. */
static mm_status legacy_storages(mm_pth *f, const mm_pickle *keys, const uint8_t *data,
                                 size_t size, size_t pos)
{
    const mm_pk_node *list = mm_pk_get(keys, mm_pickle_root(keys));
    if (list->kind != MM_PK_LIST)
        return mm_fail(MM_ERR_FORMAT, "%s: the storage keys are not a list" HINT, f->label);
    for (int k = 0; k < list->n; k++) {
        const mm_pk_node *key = mm_pk_get(keys, list->items[k]);
        mm_pth_storage_t *s = NULL;
        for (int j = 0; j < f->n_st && key->kind == MM_PK_STR; j++)
            if (f->st[j].key_len == key->len && !memcmp(f->st[j].key, key->s, key->len))
                s = &f->st[j];
        if (!s)
            return mm_fail(MM_ERR_FORMAT, "%s: storage %d of the list is not one the object "
                           "names" HINT, f->label, k);
        if (size - pos < 8)
            return mm_fail(MM_ERR_FORMAT, "%s: the file ends before storage '%.*s'" HINT,
                           f->label, (int)s->key_len, s->key);
        uint64_t numel = 0;
        for (int i = 7; i >= 0; i--) numel = (numel << 8) | data[pos + (size_t)i];
        pos += 8;
        if (numel != (uint64_t)s->numel || numel > (size - pos) / (uint64_t)s->type->size)
            return mm_fail(MM_ERR_FORMAT, "%s: storage '%.*s' should hold %lld elements; the file "
                           "has %llu%s" HINT, f->label, (int)s->key_len, s->key,
                           (long long)s->numel, (unsigned long long)numel,
                           numel == (uint64_t)s->numel ? " and ends before them" : "");
        s->bytes = data + pos;
        pos += (size_t)numel * (size_t)s->type->size;
    }
    for (int j = 0; j < f->n_st; j++)
        if (!f->st[j].bytes)
            return mm_fail(MM_ERR_FORMAT, "%s: storage '%.*s' is not in the file's list" HINT,
                           f->label, (int)f->st[j].key_len, f->st[j].key);
    return MM_OK;
}

static mm_status read_legacy(mm_pth *f, const uint8_t *data, size_t size, mm_safetensors **out)
{
    size_t pos = 0;
    mm_pickle *keys = NULL;
    MM_TRY(legacy_header(f, data, size, &pos));
    mm_status st = next_pickle(f, data, size, &pos, &f->pk);
    if (st == MM_OK) st = next_pickle(f, data, size, &pos, &keys);
    if (st == MM_OK) st = legacy_register(f);
    if (st == MM_OK) st = legacy_storages(f, keys, data, size, pos);
    if (st == MM_OK) st = mm_pth_collect(f);
    if (st == MM_OK) st = mm_pth_image(f, "torch.save legacy", out);
    mm_pickle_free(keys);
    return st;
}

/* ---- files ---- */

mm_status mm_pth_parse(mm_safetensors **out, const uint8_t *data, size_t size, const char *label)
{
    *out = NULL;
    if (!mm_pth_sniff(data, size))
        return mm_fail(MM_ERR_FORMAT, "%s: not a PyTorch checkpoint (neither torch.save's zip "
                       "archive nor its older format)", label);
    mm_pth f = {.label = label, .file_size = size};
    mm_status st =
        data[0] == 'P' ? read_zip(&f, data, size, out) : read_legacy(&f, data, size, out);
    mm_pth_free(&f);
    return st;
}

/* The whole file in memory. */
static mm_status read_whole(const char *path, uint8_t **data, size_t *size)
{
    *data = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) return mm_fail(MM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(fp);
        return mm_fail(MM_ERR_IO, "%s: not a regular file", path);
    }
    *size = (size_t)sb.st_size;
    *data = mm_xmalloc(*size ? *size : 1);
    size_t got = fread(*data, 1, *size, fp);
    int failed = ferror(fp);
    fclose(fp);
    if (got != *size) {
        free(*data);
        *data = NULL;
        return mm_fail(MM_ERR_IO, "%s: read %zu of its %zu bytes%s%s", path, got, *size,
                       failed ? ": " : " (it shrank while read)", failed ? strerror(errno) : "");
    }
    return MM_OK;
}

mm_status mm_pth_open(mm_safetensors **out, const char *path)
{
    *out = NULL;
    uint8_t *data;
    size_t size;
    MM_TRY(read_whole(path, &data, &size));
    mm_status st = mm_pth_parse(out, data, size, path);
    free(data);
    return st;
}

mm_status mm_weights_open(mm_safetensors **out, const char *path)
{
    *out = NULL;
    uint8_t head[512];
    size_t n = 0;
    FILE *fp = fopen(path, "rb");
    if (fp) {
        n = fread(head, 1, sizeof head, fp);
        fclose(fp);
    }
    if (mm_pth_sniff(head, n)) return mm_pth_open(out, path);
    if (n >= 262 && !memcmp(head + 257, "ustar", 5)) /* PyTorch 0.1 saved tar archives */
        return mm_fail(MM_ERR_UNSUPPORTED, "%s: a tar archive, as PyTorch 0.1 saved checkpoints; "
                       "load it with torch.load and save its state_dict again", path);
    return mm_safetensors_open(out, path); /* says why it cannot open, or read, the file */
}
