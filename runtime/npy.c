/* .npy reading and writing: see npy.h.
 *
 * The header is a tiny Python literal; we parse it with a hand-written scanner that accepts exactly
 * what numpy's writers produce (any key order, any whitespace, ' or " quotes, a trailing comma,
 * Python 2's "3L" integers) and rejects everything else with a message saying what was expected. */
#include "npy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic_file.h"

#define HINT "; the file is not a valid .npy file (truncated or corrupt?)"

static const uint8_t npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

/* ---- the header dict ---- */

typedef struct scanner {
    const char *p, *end;
    const char *label;
} scanner;

static void skip_ws(scanner *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

/* Skips whitespace and consumes `c` if it is next. */
static int accept(scanner *s, char c)
{
    skip_ws(s);
    if (s->p < s->end && *s->p == c) {
        s->p++;
        return 1;
    }
    return 0;
}

/* A short quoted string ('...' or "...") into out[cap]. */
static mm_status scan_string(scanner *s, char *out, size_t cap, const char *what)
{
    skip_ws(s);
    if (s->p >= s->end || (*s->p != '\'' && *s->p != '"'))
        return mm_fail(MM_ERR_FORMAT, "%s: header: expected a quoted %s" HINT, s->label, what);
    char q = *s->p++;
    size_t n = 0;
    while (s->p < s->end && *s->p != q) {
        if (*s->p == '\\' || *s->p == '\n')
            return mm_fail(MM_ERR_FORMAT, "%s: header: unexpected character in the %s" HINT,
                           s->label, what);
        if (n + 1 >= cap)
            return mm_fail(MM_ERR_FORMAT, "%s: header: %s is too long" HINT, s->label, what);
        out[n++] = *s->p++;
    }
    if (s->p >= s->end)
        return mm_fail(MM_ERR_FORMAT, "%s: header: unterminated string" HINT, s->label);
    s->p++;
    out[n] = '\0';
    return MM_OK;
}

static int is_ident_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* A non-negative integer, with Python 2's optional L suffix. */
static mm_status scan_int(scanner *s, int64_t *out)
{
    skip_ws(s);
    if (s->p >= s->end || *s->p < '0' || *s->p > '9')
        return mm_fail(MM_ERR_FORMAT, "%s: header: shape must hold non-negative integers" HINT,
                       s->label);
    int64_t v = 0;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
        if (v > (INT64_MAX - 9) / 10)
            return mm_fail(MM_ERR_FORMAT, "%s: header: shape dimension is absurdly large" HINT,
                           s->label);
        v = v * 10 + (*s->p++ - '0');
    }
    if (s->p < s->end && (*s->p == 'L' || *s->p == 'l')) s->p++;
    if (s->p < s->end && is_ident_char(*s->p))
        return mm_fail(MM_ERR_FORMAT, "%s: header: shape must hold integers" HINT, s->label);
    *out = v;
    return MM_OK;
}

/* (d0, d1, ...) with a trailing comma allowed, and required after a single element as in Python. */
static mm_status scan_shape(scanner *s, mm_npy_header *h)
{
    if (!accept(s, '('))
        return mm_fail(MM_ERR_FORMAT, "%s: header: shape is not a tuple such as (2, 3)" HINT,
                       s->label);
    h->ndim = 0;
    int trailing_comma = 0;
    while (!accept(s, ')')) {
        if (h->ndim == MM_MAX_DIMS)
            return mm_fail(MM_ERR_UNSUPPORTED, "%s: array has more than %d dimensions; mammo "
                           "handles at most %d", s->label, MM_MAX_DIMS, MM_MAX_DIMS);
        MM_TRY(scan_int(s, &h->shape[h->ndim]));
        h->ndim++;
        trailing_comma = accept(s, ',');
        if (!trailing_comma) {
            if (!accept(s, ')'))
                return mm_fail(MM_ERR_FORMAT, "%s: header: expected ',' or ')' in the shape" HINT,
                               s->label);
            break;
        }
    }
    if (h->ndim == 1 && !trailing_comma)
        return mm_fail(MM_ERR_FORMAT, "%s: header: shape (%lld) is not a tuple; numpy writes "
                       "(%lld,)" HINT, s->label, (long long)h->shape[0], (long long)h->shape[0]);
    return MM_OK;
}

/* descr: an optional byte order ('<' little, '>' big, '|' not applicable, '=' native) and a
 * numpy type code. */
static mm_status parse_descr(mm_npy_header *h, const char *descr, const char *label)
{
    const char *code = descr;
    char order = '|';
    if (*code == '<' || *code == '>' || *code == '|' || *code == '=') order = *code++;
    struct {
        const char *code;
        mm_dtype dtype;
    } known[] = {{"f4", MM_F32}, {"u1", MM_U8}, {"u2", MM_U16}, {"i4", MM_I32}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        if (!strcmp(code, known[i].code)) {
            h->dtype = known[i].dtype;
            h->big_endian = order == '>' && mm_dtype_size(h->dtype) > 1;
            return MM_OK;
        }
    }
    return mm_fail(MM_ERR_UNSUPPORTED, "%s: unsupported dtype '%s'; mammo reads float32, uint8, "
                   "uint16 and int32 arrays (convert with a.astype(np.float32) or another of "
                   "these)", label, descr);
}

static mm_status parse_dict(mm_npy_header *h, scanner *s)
{
    int have_descr = 0, have_order = 0, have_shape = 0;
    char descr[32] = {0};
    if (!accept(s, '{'))
        return mm_fail(MM_ERR_FORMAT, "%s: header is not a Python dict" HINT, s->label);
    while (!accept(s, '}')) {
        char key[32];
        MM_TRY(scan_string(s, key, sizeof key, "key"));
        if (!accept(s, ':'))
            return mm_fail(MM_ERR_FORMAT, "%s: header: expected ':' after '%s'" HINT, s->label,
                           key);
        int *seen;
        if (!strcmp(key, "descr")) {
            seen = &have_descr;
            skip_ws(s);
            if (s->p < s->end && *s->p == '[')
                return mm_fail(MM_ERR_UNSUPPORTED, "%s: structured arrays are not supported; "
                               "save a plain numeric array", s->label);
            MM_TRY(scan_string(s, descr, sizeof descr, "descr"));
        } else if (!strcmp(key, "fortran_order")) {
            seen = &have_order;
            skip_ws(s);
            const char *w = s->p;
            while (s->p < s->end && is_ident_char(*s->p)) s->p++;
            size_t n = (size_t)(s->p - w);
            if (n == 4 && !memcmp(w, "True", 4))
                return mm_fail(MM_ERR_UNSUPPORTED, "%s: array is in Fortran order; save it in C "
                               "order (np.save(path, np.ascontiguousarray(a)))", s->label);
            if (n != 5 || memcmp(w, "False", 5) != 0)
                return mm_fail(MM_ERR_FORMAT, "%s: header: fortran_order is not True or False"
                               HINT, s->label);
        } else if (!strcmp(key, "shape")) {
            seen = &have_shape;
            MM_TRY(scan_shape(s, h));
        } else {
            return mm_fail(MM_ERR_FORMAT, "%s: header: unexpected key '%s' (numpy writes descr, "
                           "fortran_order and shape)" HINT, s->label, key);
        }
        if (*seen)
            return mm_fail(MM_ERR_FORMAT, "%s: header: key '%s' appears twice" HINT, s->label,
                           key);
        *seen = 1;
        if (!accept(s, ',')) {
            if (!accept(s, '}'))
                return mm_fail(MM_ERR_FORMAT, "%s: header: expected ',' or '}' after '%s'" HINT,
                               s->label, key);
            break;
        }
    }
    skip_ws(s);
    if (s->p != s->end)
        return mm_fail(MM_ERR_FORMAT, "%s: header: unexpected text after the dict" HINT,
                       s->label);
    if (!have_descr || !have_order || !have_shape)
        return mm_fail(MM_ERR_FORMAT, "%s: header has no '%s'" HINT, s->label,
                       !have_descr ? "descr" : !have_order ? "fortran_order" : "shape");
    return parse_descr(h, descr, s->label);
}

/* ---- the prefix: magic, version, header length ---- */

/* Validates magic and version and sets h->version and h->data_offset. Needs 12 bytes (or what
 * the file has, to say it is too short). */
static mm_status parse_prefix(mm_npy_header *h, const uint8_t *b, size_t size, const char *label)
{
    if (size < 10 || memcmp(b, npy_magic, 6) != 0)
        return mm_fail(MM_ERR_FORMAT, "%s: does not start with numpy's magic \"\\x93NUMPY\"" HINT,
                       label);
    if ((b[6] != 1 && b[6] != 2 && b[6] != 3) || b[7] != 0)
        return mm_fail(MM_ERR_UNSUPPORTED, "%s: .npy format version %d.%d; mammo reads 1.0, 2.0 "
                       "and 3.0", label, b[6], b[7]);
    h->version = b[6];
    uint64_t hlen;
    if (h->version == 1) {
        hlen = (uint64_t)b[8] | (uint64_t)b[9] << 8;
        h->data_offset = 10 + (size_t)hlen;
    } else {
        if (size < 12)
            return mm_fail(MM_ERR_FORMAT, "%s: file ends inside the header length" HINT, label);
        hlen = (uint64_t)b[8] | (uint64_t)b[9] << 8 | (uint64_t)b[10] << 16 |
               (uint64_t)b[11] << 24;
        if (hlen > MM_NPY_MAX_HEADER)
            return mm_fail(MM_ERR_FORMAT, "%s: header length %llu is absurdly large" HINT, label,
                           (unsigned long long)hlen);
        h->data_offset = 12 + (size_t)hlen;
    }
    return MM_OK;
}

mm_status mm_npy_parse_header(mm_npy_header *h, const void *buf, size_t size, uint64_t file_size,
                              const char *label)
{
    memset(h, 0, sizeof *h);
    const uint8_t *b = buf;
    MM_TRY(parse_prefix(h, b, size, label));
    if (h->data_offset > size)
        return mm_fail(MM_ERR_FORMAT, "%s: header length %zu goes past the end of the file" HINT,
                       label, h->data_offset - (h->version == 1 ? 10 : 12));
    scanner s = {(const char *)b + (h->version == 1 ? 10 : 12), (const char *)b + h->data_offset,
                 label};
    MM_TRY(parse_dict(h, &s));
    int64_t numel;
    uint64_t bytes;
    if (!mm_shape_numel_checked(h->ndim, h->shape, &numel) ||
        __builtin_mul_overflow((uint64_t)numel, mm_dtype_size(h->dtype), &bytes))
        return mm_fail(MM_ERR_FORMAT, "%s: shape is absurdly large" HINT, label);
    h->numel = numel;
    h->bytes = (size_t)bytes;
    if (file_size && (file_size < h->data_offset || file_size - h->data_offset < bytes)) {
        char sh[160];
        return mm_fail(MM_ERR_FORMAT, "%s: data is truncated: shape %s of %s needs %llu bytes, "
                       "the file has %llu after the header" HINT, label,
                       mm_shape_str(sh, sizeof sh, h->ndim, h->shape), mm_dtype_name(h->dtype),
                       (unsigned long long)bytes,
                       (unsigned long long)(file_size > h->data_offset ? file_size - h->data_offset
                                                                       : 0));
    }
    return MM_OK;
}

/* ---- reading files ---- */

static mm_status read_at(int fd, void *dst, size_t bytes, uint64_t offset, const char *path)
{
    uint8_t *p = dst;
    while (bytes > 0) {
        ssize_t r = pread(fd, p, bytes, (off_t)offset);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return mm_fail(MM_ERR_IO, "%s: cannot read (%s)", path, strerror(errno));
        if (r == 0) return mm_fail(MM_ERR_IO, "%s: file shrank while reading", path);
        p += r;
        bytes -= (size_t)r;
        offset += (uint64_t)r;
    }
    return MM_OK;
}

/* Opens path and reads its header; returns the open descriptor in *fd. */
static mm_status open_header(mm_npy_header *h, int *fd, const char *path)
{
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0) return mm_fail(MM_ERR_IO, "%s: cannot open (%s)", path, strerror(errno));
    struct stat st;
    mm_status s = MM_OK;
    uint8_t *buf = NULL;
    if (fstat(*fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        s = mm_fail(MM_ERR_IO, "%s: not a regular file", path);
        goto fail;
    }
    uint64_t size = (uint64_t)st.st_size;
    uint8_t prefix[12];
    size_t n = size < 12 ? (size_t)size : 12;
    if ((s = read_at(*fd, prefix, n, 0, path)) != MM_OK) goto fail;
    if ((s = parse_prefix(h, prefix, n, path)) != MM_OK) goto fail;
    if (h->data_offset > size) {
        s = mm_fail(MM_ERR_FORMAT, "%s: header length goes past the end of the file" HINT, path);
        goto fail;
    }
    buf = mm_xmalloc(h->data_offset);
    if ((s = read_at(*fd, buf, h->data_offset, 0, path)) != MM_OK) goto fail;
    if ((s = mm_npy_parse_header(h, buf, h->data_offset, size, path)) != MM_OK) goto fail;
    free(buf);
    return MM_OK;
fail:
    free(buf);
    close(*fd);
    *fd = -1;
    return s;
}

mm_status mm_npy_read_header(mm_npy_header *h, const char *path)
{
    int fd;
    MM_TRY(open_header(h, &fd, path));
    close(fd);
    return MM_OK;
}

/* Big-endian data to host (little-endian) order, in place. */
static void swap_bytes(void *data, size_t bytes, size_t elem)
{
    uint8_t *p = data;
    for (size_t i = 0; i + elem <= bytes; i += elem)
        for (size_t a = 0, b = elem - 1; a < b; a++, b--) {
            uint8_t t = p[i + a];
            p[i + a] = p[i + b];
            p[i + b] = t;
        }
}

static void array_from_header(mm_npy_array *out, const mm_npy_header *h)
{
    memset(out, 0, sizeof *out);
    out->dtype = h->dtype;
    out->ndim = h->ndim;
    memcpy(out->shape, h->shape, sizeof h->shape);
    out->numel = h->numel;
    out->bytes = h->bytes;
}

mm_status mm_npy_load(mm_npy_array *out, const char *path)
{
    memset(out, 0, sizeof *out);
    mm_npy_header h;
    int fd;
    MM_TRY(open_header(&h, &fd, path));
    array_from_header(out, &h);
    out->data = mm_xmalloc(h.bytes);
    mm_status s = read_at(fd, out->data, h.bytes, h.data_offset, path);
    close(fd);
    if (s != MM_OK) {
        mm_npy_array_free(out);
        return s;
    }
    if (h.big_endian) swap_bytes(out->data, h.bytes, mm_dtype_size(h.dtype));
    return MM_OK;
}

mm_status mm_npy_parse(mm_npy_array *out, const void *buf, size_t size, const char *label)
{
    memset(out, 0, sizeof *out);
    mm_npy_header h;
    MM_TRY(mm_npy_parse_header(&h, buf, size, size, label));
    array_from_header(out, &h);
    out->data = mm_xmalloc(h.bytes);
    if (h.bytes) memcpy(out->data, (const uint8_t *)buf + h.data_offset, h.bytes);
    if (h.big_endian) swap_bytes(out->data, h.bytes, mm_dtype_size(h.dtype));
    return MM_OK;
}

void mm_npy_array_free(mm_npy_array *a)
{
    free(a->data);
    a->data = NULL;
}

static const char *shape_py(char *buf, size_t n, int ndim, const int64_t *shape);

mm_status mm_npy_load_into(void *dst, const char *path, mm_dtype dtype, int ndim,
                           const int64_t *shape)
{
    mm_npy_header h;
    int fd;
    MM_TRY(open_header(&h, &fd, path));
    mm_status s = MM_OK;
    if (h.dtype != dtype) {
        s = mm_fail(MM_ERR_FORMAT, "%s: dtype %s, expected %s", path, mm_dtype_name(h.dtype),
                    mm_dtype_name(dtype));
    } else if (!mm_shape_equal(h.ndim, h.shape, ndim, shape)) {
        char got[160], want[160];
        s = mm_fail(MM_ERR_SHAPE, "%s: shape %s, expected %s", path,
                    shape_py(got, sizeof got, h.ndim, h.shape),
                    shape_py(want, sizeof want, ndim, shape));
    } else {
        s = read_at(fd, dst, h.bytes, h.data_offset, path);
        if (s == MM_OK && h.big_endian) swap_bytes(dst, h.bytes, mm_dtype_size(h.dtype));
    }
    close(fd);
    return s;
}

/* ---- writing ---- */

/* Python's repr of a shape tuple: "()", "(5,)", "(2, 3)". */
static const char *shape_py(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t at = (size_t)snprintf(buf, n, "(");
    for (int i = 0; i < ndim && at < n; i++)
        at += (size_t)snprintf(buf + at, n - at, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (at < n) snprintf(buf + at, n - at, ndim == 1 ? ",)" : ")");
    return buf;
}

mm_status mm_npy_save(const char *path, mm_dtype dtype, int ndim, const int64_t *shape,
                      const void *data)
{
    const char *descr;
    switch (dtype) {
    case MM_F32: descr = "<f4"; break;
    case MM_U8: descr = "|u1"; break;
    case MM_U16: descr = "<u2"; break;
    case MM_I32: descr = "<i4"; break;
    default:
        return mm_fail(MM_ERR_UNSUPPORTED, "%s: numpy has no %s dtype; convert to F32 first",
                       path, mm_dtype_name(dtype));
    }
    MM_ASSERT(ndim >= 0 && ndim <= MM_MAX_DIMS);
    for (int i = 0; i < ndim; i++) MM_ASSERT(shape[i] >= 0);

    /* numpy 1.24's header: sorted keys, repr() values, then spare spaces so the first dimension
     * can grow in place (GROWTH_AXIS_MAX_DIGITS = 21), then spaces and '\n' up to a multiple of
     * 64 bytes counting the prefix (a full 64 of padding when already aligned, as numpy does). */
    char sh[200], dict[320];
    shape_py(sh, sizeof sh, ndim, shape);
    int len = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                       descr, sh);
    if (ndim > 0) {
        char first[32];
        int spare = 21 - snprintf(first, sizeof first, "%lld", (long long)shape[0]);
        for (int i = 0; i < spare; i++) dict[len++] = ' ';
        dict[len] = '\0';
    }
    size_t hlen = (size_t)len + 1, prefix = 10;
    size_t pad = 64 - ((prefix + hlen) % 64);
    MM_ASSERT(hlen + pad <= 65535); /* a rank <= 6 header is far below version 1.0's limit */
    uint8_t head[512];
    memcpy(head, npy_magic, 6);
    head[6] = 1;
    head[7] = 0;
    head[8] = (uint8_t)((hlen + pad) & 0xff);
    head[9] = (uint8_t)((hlen + pad) >> 8);
    memcpy(head + 10, dict, (size_t)len);
    memset(head + 10 + len, ' ', pad);
    head[10 + len + pad] = '\n';
    size_t head_bytes = 10 + (size_t)len + pad + 1;
    MM_ASSERT(head_bytes % 64 == 0 && head_bytes <= sizeof head);

    size_t bytes = (size_t)mm_shape_numel(ndim, shape) * mm_dtype_size(dtype);
    mm_atomic_file af;
    MM_TRY(mm_atomic_file_open(&af, path));
    mm_status s = mm_atomic_file_write(&af, head, head_bytes);
    if (s == MM_OK) s = mm_atomic_file_write(&af, data, bytes);
    if (s != MM_OK) {
        mm_atomic_file_abort(&af);
        return s;
    }
    return mm_atomic_file_commit(&af);
}
