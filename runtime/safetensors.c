/* safetensors reading and writing: see safetensors.h.
 *
 * The reader never trusts the file: every length and offset is checked against the file size before
 * anything is allocated or read, integers are checked for overflow, and the JSON is parsed by jansson
 * with duplicate keys rejected. */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic_file.h"
#include "half.h"

struct mm_safetensors {
    char *path;
    int fd;               /* -1 when parsed from memory */
    const uint8_t *mem;   /* the whole file when parsed from memory */
    void *owned;          /* mem, when the handle frees it (mm_safetensors_parse_owned) */
    uint64_t data_start;  /* 8 + header length */
    uint64_t data_len;
    int n;
    mm_st_entry *entries; /* data order */
    const mm_st_entry **by_name; /* sorted by name, for find() */
    int n_meta;
    char **meta_keys, **meta_values;
};

/* ---- dtypes: every dtype of the safetensors format, and the ones mammo holds ---- */
typedef struct st_dtype {
    const char *name;
    size_t size;
    int mm; /* mm_dtype, or -1 */
} st_dtype;

static const st_dtype st_dtypes[] = {
    {"F32", 4, MM_F32},     {"U8", 1, MM_U8},        {"U16", 2, MM_U16},    {"I32", 4, MM_I32},
    {"BF16", 2, MM_BF16},   {"BOOL", 1, -1},         {"I8", 1, -1},         {"I16", 2, -1},
    {"F16", 2, -1},         {"U32", 4, -1},          {"F64", 8, -1},        {"I64", 8, -1},
    {"U64", 8, -1},         {"F8_E5M2", 1, -1},      {"F8_E4M3", 1, -1},    {"F8_E8M0", 1, -1},
    {"C64", 8, -1},
};
#define N_ST_DTYPES (int)(sizeof st_dtypes / sizeof st_dtypes[0])

static const st_dtype *st_dtype_find(const char *name)
{
    for (int i = 0; i < N_ST_DTYPES; i++)
        if (!strcmp(st_dtypes[i].name, name)) return &st_dtypes[i];
    return NULL;
}

/* ---- reader ---- */

static void st_free(mm_safetensors *f)
{
    if (!f) return;
    if (f->fd >= 0) close(f->fd);
    for (int i = 0; i < f->n; i++) free((char *)f->entries[i].name);
    free(f->entries);
    free((void *)f->by_name);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_values[i]);
    }
    free(f->meta_keys);
    free(f->meta_values);
    free(f->path);
    free(f->owned);
    free(f);
}

void mm_safetensors_close(mm_safetensors *f) { st_free(f); }

#define BAD(...) mm_fail(MM_ERR_FORMAT, __VA_ARGS__)
#define HINT "; the file is not a valid safetensors file (truncated or corrupt?)"

static mm_status parse_metadata(mm_safetensors *f, json_t *meta)
{
    if (!json_is_object(meta))
        return BAD("%s: \"__metadata__\" is not a JSON object of strings" HINT, f->path);
    size_t n = json_object_size(meta);
    f->meta_keys = mm_xcalloc(n, sizeof(char *));
    f->meta_values = mm_xcalloc(n, sizeof(char *));
    const char *key;
    json_t *value;
    json_object_foreach(meta, key, value) {
        if (!json_is_string(value))
            return BAD("%s: metadata \"%s\" is not a string (safetensors metadata maps strings to "
                       "strings)" HINT, f->path, key);
        f->meta_keys[f->n_meta] = mm_xstrdup(key);
        f->meta_values[f->n_meta] = mm_xstrdup(json_string_value(value));
        f->n_meta++;
    }
    return MM_OK;
}

/* A non-negative JSON integer, or an error naming `what`. */
static mm_status get_uint(const mm_safetensors *f, const char *tensor, const char *what, json_t *v,
                          uint64_t *out)
{
    if (!json_is_integer(v))
        return BAD("%s: tensor \"%s\": %s is not an integer" HINT, f->path, tensor, what);
    json_int_t x = json_integer_value(v);
    if (x < 0)
        return BAD("%s: tensor \"%s\": %s is negative (%lld)" HINT, f->path, tensor, what,
                   (long long)x);
    *out = (uint64_t)x;
    return MM_OK;
}

static mm_status parse_entry(mm_safetensors *f, mm_st_entry *e, const char *name, json_t *obj)
{
    e->name = mm_xstrdup(name);
    if (!json_is_object(obj))
        return BAD("%s: tensor \"%s\" is not a JSON object" HINT, f->path, name);
    json_t *dtype = json_object_get(obj, "dtype");
    json_t *shape = json_object_get(obj, "shape");
    json_t *offsets = json_object_get(obj, "data_offsets");
    if (!dtype || !shape || !offsets)
        return BAD("%s: tensor \"%s\" has no \"%s\"" HINT, f->path, name,
                   !dtype ? "dtype" : !shape ? "shape" : "data_offsets");
    if (!json_is_string(dtype))
        return BAD("%s: tensor \"%s\": dtype is not a string" HINT, f->path, name);
    const st_dtype *dt = st_dtype_find(json_string_value(dtype));
    if (!dt)
        return BAD("%s: tensor \"%s\": unknown dtype \"%.32s\"" HINT, f->path, name,
                   json_string_value(dtype));
    e->dtype_name = dt->name;
    e->supported = dt->mm >= 0;
    e->dtype = dt->mm >= 0 ? (mm_dtype)dt->mm : MM_F32;

    if (!json_is_array(shape))
        return BAD("%s: tensor \"%s\": shape is not a JSON array" HINT, f->path, name);
    size_t rank = json_array_size(shape);
    if (rank > 64)
        return BAD("%s: tensor \"%s\": shape has %zu dimensions" HINT, f->path, name, rank);
    e->ndim = (int)rank;
    if (rank > MM_MAX_DIMS) e->supported = 0;
    int64_t dims[64], numel;
    for (size_t i = 0; i < rank; i++) {
        uint64_t d;
        char what[32];
        snprintf(what, sizeof what, "shape[%zu]", i);
        MM_TRY(get_uint(f, name, what, json_array_get(shape, i), &d));
        dims[i] = (int64_t)d; /* get_uint: at most INT64_MAX */
        if (i < MM_MAX_DIMS) e->shape[i] = dims[i];
    }
    uint64_t bytes = 0;
    if (!mm_shape_numel_checked((int)rank, dims, &numel) ||
        __builtin_mul_overflow((uint64_t)numel, (uint64_t)dt->size, &bytes))
        return BAD("%s: tensor \"%s\": shape is absurdly large" HINT, f->path, name);
    e->numel = numel;

    if (!json_is_array(offsets) || json_array_size(offsets) != 2)
        return BAD("%s: tensor \"%s\": data_offsets is not an array [begin, end]" HINT, f->path,
                   name);
    MM_TRY(get_uint(f, name, "data_offsets[0]", json_array_get(offsets, 0), &e->begin));
    MM_TRY(get_uint(f, name, "data_offsets[1]", json_array_get(offsets, 1), &e->end));
    if (e->end < e->begin)
        return BAD("%s: tensor \"%s\": data_offsets [%llu, %llu] end before they begin" HINT,
                   f->path, name, (unsigned long long)e->begin, (unsigned long long)e->end);
    if (e->end > f->data_len)
        return BAD("%s: tensor \"%s\": data_offsets [%llu, %llu] go past the end of the data "
                   "(%llu bytes)" HINT, f->path, name, (unsigned long long)e->begin,
                   (unsigned long long)e->end, (unsigned long long)f->data_len);
    if (e->end - e->begin != bytes) {
        char sh[160];
        mm_shape_str(sh, sizeof sh, e->ndim < MM_MAX_DIMS ? e->ndim : MM_MAX_DIMS, e->shape);
        return BAD("%s: tensor \"%s\": data_offsets [%llu, %llu] hold %llu bytes but dtype %s and "
                   "shape %s%s need %llu" HINT, f->path, name, (unsigned long long)e->begin,
                   (unsigned long long)e->end, (unsigned long long)(e->end - e->begin),
                   dt->name, sh, e->ndim > MM_MAX_DIMS ? "..." : "", (unsigned long long)bytes);
    }
    e->bytes = (size_t)bytes;
    return MM_OK;
}

static int cmp_offsets(const void *a, const void *b)
{
    const mm_st_entry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp((*(const mm_st_entry *const *)a)->name, (*(const mm_st_entry *const *)b)->name);
}

/* Parses and validates the JSON header (n bytes at json); f->path and f->data_len are set. */
static mm_status parse_header(mm_safetensors *f, const char *json, size_t n)
{
    json_error_t jerr;
    json_t *root = json_loadb(json, n, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return BAD("%s: header is not valid JSON (%s at line %d, column %d)" HINT, f->path,
                   jerr.text, jerr.line, jerr.column);
    mm_status s = MM_OK;
    if (!json_is_object(root)) {
        s = BAD("%s: header is not a JSON object" HINT, f->path);
        goto done;
    }
    size_t n_keys = json_object_size(root);
    f->entries = mm_xcalloc(n_keys, sizeof(mm_st_entry));
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value) {
        if (!strcmp(key, "__metadata__")) {
            s = parse_metadata(f, value);
        } else {
            s = parse_entry(f, &f->entries[f->n], key, value);
            f->n++;
        }
        if (s != MM_OK) goto done;
    }

    /* The tensors must tile [0, data_len) exactly: sorted by offset, each begins where the last
     * ended. A tensor that begins earlier overlaps the previous one. */
    qsort(f->entries, (size_t)f->n, sizeof(mm_st_entry), cmp_offsets);
    uint64_t at = 0;
    for (int i = 0; i < f->n; i++) {
        const mm_st_entry *e = &f->entries[i];
        if (e->begin < at) {
            s = BAD("%s: tensors \"%s\" and \"%s\" overlap (data_offsets [%llu, %llu] and "
                    "[%llu, %llu])" HINT, f->path, f->entries[i - 1].name, e->name,
                    (unsigned long long)f->entries[i - 1].begin,
                    (unsigned long long)f->entries[i - 1].end, (unsigned long long)e->begin,
                    (unsigned long long)e->end);
            goto done;
        }
        if (e->begin > at) {
            s = BAD("%s: %llu unused bytes before tensor \"%s\" (data_offsets begin at %llu)" HINT,
                    f->path, (unsigned long long)(e->begin - at), e->name,
                    (unsigned long long)e->begin);
            goto done;
        }
        at = e->end;
    }
    if (at != f->data_len) {
        s = BAD("%s: %llu bytes after the last tensor's data" HINT, f->path,
                (unsigned long long)(f->data_len - at));
        goto done;
    }
    f->by_name = mm_xcalloc((size_t)f->n, sizeof(mm_st_entry *));
    for (int i = 0; i < f->n; i++) f->by_name[i] = &f->entries[i];
    qsort(f->by_name, (size_t)f->n, sizeof(mm_st_entry *), cmp_names);
done:
    json_decref(root);
    return s;
}

/* Checks the 8-byte length prefix against the file size; sets data_start/data_len. */
static mm_status check_prefix(mm_safetensors *f, const uint8_t *prefix, uint64_t file_size,
                              uint64_t *header_len)
{
    if (file_size < 8)
        return BAD("%s: file is %llu bytes, too short for the 8-byte header length" HINT, f->path,
                   (unsigned long long)file_size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | prefix[i];
    if (n > MM_ST_MAX_HEADER)
        return BAD("%s: header length %llu is absurdly large (more than %llu bytes)" HINT, f->path,
                   (unsigned long long)n, (unsigned long long)MM_ST_MAX_HEADER);
    if (n > file_size - 8)
        return BAD("%s: header length %llu goes past the end of the file (%llu bytes)" HINT,
                   f->path, (unsigned long long)n, (unsigned long long)file_size);
    if (n < 2) return BAD("%s: header length %llu is too small" HINT, f->path, (unsigned long long)n);
    *header_len = n;
    f->data_start = 8 + n;
    f->data_len = file_size - 8 - n;
    return MM_OK;
}

static mm_safetensors *st_new(const char *path)
{
    mm_safetensors *f = mm_xcalloc(1, sizeof *f);
    f->path = mm_xstrdup(path);
    f->fd = -1;
    return f;
}

static mm_status read_full(int fd, void *dst, size_t bytes, uint64_t offset)
{
    uint8_t *p = dst;
    while (bytes > 0) {
        ssize_t r = pread(fd, p, bytes, (off_t)offset);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return MM_ERR_IO;
        p += r;
        bytes -= (size_t)r;
        offset += (uint64_t)r;
    }
    return MM_OK;
}

mm_status mm_safetensors_open(mm_safetensors **out, const char *path)
{
    *out = NULL;
    mm_safetensors *f = st_new(path);
    mm_status s = MM_OK;
    char *json = NULL;
    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0) {
        s = mm_fail(MM_ERR_IO, "%s: cannot open (%s)", path, strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(f->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        s = mm_fail(MM_ERR_IO, "%s: not a regular file", path);
        goto fail;
    }
    uint8_t prefix[8] = {0};
    uint64_t file_size = (uint64_t)st.st_size, header_len = 0;
    if (file_size >= 8 && read_full(f->fd, prefix, 8, 0) != MM_OK) {
        s = mm_fail(MM_ERR_IO, "%s: cannot read (%s)", path, strerror(errno));
        goto fail;
    }
    if ((s = check_prefix(f, prefix, file_size, &header_len)) != MM_OK) goto fail;
    json = mm_xmalloc((size_t)header_len);
    if (read_full(f->fd, json, (size_t)header_len, 8) != MM_OK) {
        s = mm_fail(MM_ERR_IO, "%s: cannot read the header (file changed while reading?)", path);
        goto fail;
    }
    if ((s = parse_header(f, json, (size_t)header_len)) != MM_OK) goto fail;
    free(json);
    *out = f;
    return MM_OK;
fail:
    free(json);
    st_free(f);
    return s;
}

mm_status mm_safetensors_parse(mm_safetensors **out, const void *data, size_t size,
                               const char *label)
{
    *out = NULL;
    mm_safetensors *f = st_new(label);
    f->mem = data;
    uint64_t header_len = 0;
    mm_status s = check_prefix(f, data, size, &header_len);
    if (s == MM_OK) s = parse_header(f, (const char *)data + 8, (size_t)header_len);
    if (s != MM_OK) {
        st_free(f);
        return s;
    }
    *out = f;
    return MM_OK;
}

mm_status mm_safetensors_parse_owned(mm_safetensors **out, void *data, size_t size,
                                     const char *label)
{
    mm_status st = mm_safetensors_parse(out, data, size, label);
    if (st == MM_OK)
        (*out)->owned = data;
    else
        free(data);
    return st;
}

const char *mm_safetensors_path(const mm_safetensors *f) { return f->path; }
int mm_safetensors_count(const mm_safetensors *f) { return f->n; }

const mm_st_entry *mm_safetensors_entry(const mm_safetensors *f, int i)
{
    MM_ASSERT(i >= 0 && i < f->n);
    return &f->entries[i];
}

const mm_st_entry *mm_safetensors_find(const mm_safetensors *f, const char *name)
{
    int lo = 0, hi = f->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const mm_st_entry *e = f->by_name[mid];
        int c = strcmp(name, e->name);
        if (c == 0) return e;
        if (c < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return NULL;
}

/* The bytes of entry e, whatever its dtype. */
static mm_status read_raw(const mm_safetensors *f, const mm_st_entry *e, void *dst)
{
    if (e->bytes == 0) return MM_OK;
    if (f->mem) {
        memcpy(dst, f->mem + f->data_start + e->begin, e->bytes);
        return MM_OK;
    }
    if (read_full(f->fd, dst, e->bytes, f->data_start + e->begin) != MM_OK)
        return mm_fail(MM_ERR_IO, "%s: cannot read tensor \"%s\" (the file shrank or changed "
                       "since it was opened?)", f->path, e->name);
    return MM_OK;
}

mm_status mm_safetensors_read(const mm_safetensors *f, const mm_st_entry *e, void *dst,
                              size_t bytes)
{
    MM_ASSERT(bytes == e->bytes);
    if (!e->supported) {
        if (e->ndim > MM_MAX_DIMS)
            return mm_fail(MM_ERR_UNSUPPORTED, "%s: tensor \"%s\" has %d dimensions; mammo "
                           "handles at most %d", f->path, e->name, e->ndim, MM_MAX_DIMS);
        return mm_fail(MM_ERR_UNSUPPORTED, "%s: unsupported dtype %s for tensor \"%s\"; mammo "
                       "reads F32, U8, U16, I32 and BF16 (convert it before saving)", f->path,
                       e->dtype_name, e->name);
    }
    return read_raw(f, e, dst);
}

bool mm_safetensors_is_float(const mm_st_entry *e)
{
    return !strcmp(e->dtype_name, "F32") || !strcmp(e->dtype_name, "F16") ||
           !strcmp(e->dtype_name, "BF16") || !strcmp(e->dtype_name, "F64");
}

mm_status mm_safetensors_read_f32(const mm_safetensors *f, const mm_st_entry *e, float *dst)
{
    if (!mm_safetensors_is_float(e) || e->ndim > MM_MAX_DIMS)
        return mm_fail(MM_ERR_UNSUPPORTED, "%s: tensor \"%s\" is %s with %d dimensions; float32 "
                       "is read from F32, F16, BF16 or F64 of at most %d", f->path, e->name,
                       e->dtype_name, e->ndim, MM_MAX_DIMS);
    if (!strcmp(e->dtype_name, "F32")) return read_raw(f, e, dst);
    void *raw = mm_xmalloc(e->bytes + 1);
    mm_status st = read_raw(f, e, raw);
    for (int64_t i = 0; i < e->numel && st == MM_OK; i++) {
        uint16_t h;
        double d;
        if (e->dtype_name[1] == '6') { /* F64 */
            memcpy(&d, (const char *)raw + 8 * i, 8);
            dst[i] = (float)d;
            continue;
        }
        memcpy(&h, (const char *)raw + 2 * i, 2);
        dst[i] = e->dtype_name[0] == 'B' ? mm_bf16_to_f32(h) : mm_f16_to_f32(h);
    }
    free(raw);
    return st;
}

mm_status mm_safetensors_load(const mm_safetensors *f, const char *name, mm_dtype dtype, int ndim,
                              const int64_t *shape, void *dst)
{
    const mm_st_entry *e = mm_safetensors_find(f, name);
    if (!e)
        return mm_fail(MM_ERR_FORMAT, "%s: no tensor \"%s\" (is it a checkpoint of the same "
                       "network?)", f->path, name);
    /* float32 from F16, BF16 and F64 too */
    bool to_f32 = dtype == MM_F32 && mm_safetensors_is_float(e) && e->ndim <= MM_MAX_DIMS;
    if (e->supported && e->dtype != dtype && !to_f32)
        return mm_fail(MM_ERR_FORMAT, "%s: tensor \"%s\" has dtype %s, expected %s", f->path,
                       name, e->dtype_name, mm_dtype_name(dtype));
    if ((e->supported || to_f32) && !mm_shape_equal(e->ndim, e->shape, ndim, shape)) {
        char got[160], want[160];
        mm_shape_str(got, sizeof got, e->ndim, e->shape);
        mm_shape_str(want, sizeof want, ndim, shape);
        return mm_fail(MM_ERR_SHAPE, "%s: tensor \"%s\" has shape %s, expected %s (weights of "
                       "another architecture?)", f->path, name, got, want);
    }
    if (to_f32) return mm_safetensors_read_f32(f, e, dst);
    return mm_safetensors_read(f, e, dst, e->bytes);
}

const char *mm_safetensors_meta(const mm_safetensors *f, const char *key)
{
    for (int i = 0; i < f->n_meta; i++)
        if (!strcmp(f->meta_keys[i], key)) return f->meta_values[i];
    return NULL;
}

int mm_safetensors_meta_count(const mm_safetensors *f) { return f->n_meta; }

void mm_safetensors_meta_at(const mm_safetensors *f, int i, const char **key, const char **value)
{
    MM_ASSERT(i >= 0 && i < f->n_meta);
    *key = f->meta_keys[i];
    *value = f->meta_values[i];
}

/* ---- writer ---- */

struct mm_st_writer {
    mm_atomic_file af;
    int n, cur;          /* tensors, the one being written */
    size_t *bytes;       /* per tensor */
    size_t cur_written;  /* bytes of tensor `cur` so far */
};

static void writer_release(mm_st_writer *w)
{
    free(w->bytes);
    free(w);
}

void mm_st_writer_abort(mm_st_writer *w)
{
    if (!w) return;
    mm_atomic_file_abort(&w->af);
    writer_release(w);
}

/* Builds the JSON header of the tensors, laid out contiguously in order. */
static mm_status build_header(json_t **out, size_t *bytes, const char *path,
                              const mm_st_tensor *t, int n, const mm_st_meta *meta, int n_meta)
{
    json_t *root = json_object();
    mm_status s = MM_OK;
    if (n_meta > 0) {
        json_t *m = json_object();
        json_object_set_new(root, "__metadata__", m);
        for (int i = 0; i < n_meta; i++) {
            if (meta[i].key && json_object_get(m, meta[i].key)) {
                s = mm_fail(MM_ERR_ARG, "%s: metadata \"%s\" is given twice", path, meta[i].key);
                goto fail;
            }
            json_t *v = meta[i].value ? json_string(meta[i].value) : NULL;
            if (!meta[i].key || !v || json_object_set_new(m, meta[i].key, v) != 0) {
                s = mm_fail(MM_ERR_ARG, "%s: metadata \"%s\" is not a UTF-8 key and value",
                            path, meta[i].key ? meta[i].key : "(null)");
                goto fail;
            }
        }
    }
    uint64_t at = 0;
    for (int i = 0; i < n; i++) {
        const char *name = t[i].name ? t[i].name : "(null)";
        if (!t[i].name || !strcmp(name, "__metadata__") || json_object_get(root, name)) {
            s = mm_fail(MM_ERR_ARG, "%s: tensor name \"%s\" is %s", path, name,
                        !t[i].name ? "missing" : json_object_get(root, name) ? "used twice"
                                                                             : "reserved");
            goto fail;
        }
        if ((unsigned)t[i].dtype >= MM_DTYPE_COUNT || t[i].ndim < 0 || t[i].ndim > MM_MAX_DIMS) {
            s = mm_fail(MM_ERR_ARG, "%s: tensor \"%s\" has a bad dtype or rank", path, name);
            goto fail;
        }
        json_t *shape = json_array();
        int64_t numel = 0;
        uint64_t nbytes = 0;
        bool bad = !mm_shape_numel_checked(t[i].ndim, t[i].shape, &numel);
        for (int d = 0; d < t[i].ndim; d++)
            json_array_append_new(shape, json_integer(t[i].shape[d]));
        bad = bad || __builtin_mul_overflow((uint64_t)numel, mm_dtype_size(t[i].dtype), &nbytes);
        if (bad || nbytes > (uint64_t)INT64_MAX - at) {
            json_decref(shape);
            s = mm_fail(MM_ERR_ARG, "%s: tensor \"%s\" has a negative or absurd shape", path, name);
            goto fail;
        }
        json_t *entry = json_pack("{s:s, s:o, s:[I,I]}", "dtype", mm_dtype_name(t[i].dtype),
                                  "shape", shape, "data_offsets", (json_int_t)at,
                                  (json_int_t)(at + nbytes));
        if (!entry || json_object_set_new(root, name, entry) != 0) {
            s = mm_fail(MM_ERR_ARG, "%s: tensor name \"%s\" is not valid UTF-8", path, name);
            goto fail;
        }
        bytes[i] = (size_t)nbytes;
        at += nbytes;
    }
    *out = root;
    return MM_OK;
fail:
    json_decref(root);
    return s;
}

mm_status mm_st_writer_open(mm_st_writer **out, const char *path, const mm_st_tensor *tensors,
                            int n_tensors, const mm_st_meta *meta, int n_meta)
{
    *out = NULL;
    MM_ASSERT(n_tensors >= 0 && n_meta >= 0);
    mm_st_writer *w = mm_xcalloc(1, sizeof *w);
    w->n = n_tensors;
    w->bytes = mm_xcalloc((size_t)n_tensors, sizeof(size_t));
    json_t *root = NULL;
    mm_status s = build_header(&root, w->bytes, path, tensors, n_tensors, meta, n_meta);
    if (s != MM_OK) {
        writer_release(w);
        return s;
    }
    char *json = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    MM_ASSERT(json);
    /* Pad with spaces so the data section starts 8-byte aligned, as the reference writer does. */
    size_t len = strlen(json), padded = (len + 7) & ~(size_t)7;
    char *header = mm_xmalloc(8 + padded);
    for (int i = 0; i < 8; i++) header[i] = (char)(((uint64_t)padded >> (8 * i)) & 0xff);
    memcpy(header + 8, json, len);
    memset(header + 8 + len, ' ', padded - len);
    free(json);

    s = mm_atomic_file_open(&w->af, path);
    if (s == MM_OK) {
        s = mm_atomic_file_write(&w->af, header, 8 + padded);
        if (s != MM_OK) mm_atomic_file_abort(&w->af);
    }
    free(header);
    if (s != MM_OK) {
        writer_release(w);
        return s;
    }
    /* Skip leading empty tensors so put() always feeds a tensor that wants bytes. */
    while (w->cur < w->n && w->bytes[w->cur] == 0) w->cur++;
    *out = w;
    return MM_OK;
}

mm_status mm_st_writer_put(mm_st_writer *w, const void *data, size_t bytes)
{
    size_t left = 0;
    for (int i = w->cur; i < w->n; i++) left += w->bytes[i];
    left -= w->cur_written;
    if (bytes > left) {
        mm_status s = mm_fail(MM_ERR_ARG, "%s: %zu bytes more than the tensors hold",
                              w->af.path, bytes - left);
        mm_st_writer_abort(w);
        return s;
    }
    mm_status s = mm_atomic_file_write(&w->af, data, bytes);
    if (s != MM_OK) {
        mm_st_writer_abort(w);
        return s;
    }
    w->cur_written += bytes;
    while (w->cur < w->n && w->cur_written >= w->bytes[w->cur]) {
        w->cur_written -= w->bytes[w->cur];
        w->cur++;
    }
    return MM_OK;
}

mm_status mm_st_writer_finish(mm_st_writer *w)
{
    if (w->cur < w->n) {
        mm_status s = mm_fail(MM_ERR_ARG, "%s: tensor %d of %d was not written in full",
                              w->af.path, w->cur, w->n);
        mm_st_writer_abort(w);
        return s;
    }
    mm_status s = mm_atomic_file_commit(&w->af);
    writer_release(w);
    return s;
}

mm_status mm_safetensors_write(const char *path, const mm_st_tensor *tensors, int n_tensors,
                               const mm_st_meta *meta, int n_meta)
{
    mm_st_writer *w;
    MM_TRY(mm_st_writer_open(&w, path, tensors, n_tensors, meta, n_meta));
    for (int i = 0; i < n_tensors; i++) {
        if (w->bytes[i] == 0) continue;
        MM_ASSERT(tensors[i].data);
        MM_TRY(mm_st_writer_put(w, tensors[i].data, w->bytes[i]));
    }
    return mm_st_writer_finish(w);
}
