/* RFC 4180 CSV reader and field writer: see csv.h. */
#include "csv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A growable byte buffer for the field being read. */
typedef struct buf {
    char *p;
    size_t n, cap;
} buf;

static void buf_put(buf *b, char c)
{
    if (b->n + 1 >= b->cap) {
        b->cap = b->cap ? 2 * b->cap : 64;
        b->p = mm_xrealloc(b->p, b->cap);
    }
    b->p[b->n++] = c;
}

/* A growable array of strings (the fields of all records, in order). */
typedef struct strs {
    char **p;
    size_t n, cap;
} strs;

static void strs_put(strs *s, char *str)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 256;
        s->p = mm_xrealloc(s->p, s->cap * sizeof *s->p);
    }
    s->p[s->n++] = str;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

char *mm_str_trim(char *s)
{
    size_t n = strlen(s), a = 0;
    while (a < n && is_space(s[a])) a++;
    while (n > a && is_space(s[n - 1])) n--;
    memmove(s, s + a, n - a);
    s[n - a] = '\0';
    return s;
}

static void strs_free(strs *s)
{
    for (size_t i = 0; i < s->n; i++) free(s->p[i]);
    free(s->p);
}

void mm_csv_free(mm_csv *csv)
{
    if (csv->header)
        for (int c = 0; c < csv->n_cols; c++) free(csv->header[c]);
    if (csv->cells)
        for (size_t i = 0; i < (size_t)csv->n_rows * (size_t)csv->n_cols; i++) free(csv->cells[i]);
    free(csv->header);
    free(csv->cells);
    free(csv->lines);
    free(csv->name);
    memset(csv, 0, sizeof *csv);
}

/* The parser's state while it walks the text. */
typedef struct parser {
    const char *t, *name;
    size_t len, i;
    char delim;
    int line;      /* current line, 1-based */
    buf field;
    strs record;   /* fields of the current record */
} parser;

/* Reads one field starting at p->i; stops at the delimiter, end of record or end of text (not
 * consumed). Returns the malloc'ed field. */
static mm_status read_field(parser *p, char **out)
{
    p->field.n = 0;
    if (p->i < p->len && p->t[p->i] == '"') {
        int open_line = p->line;
        p->i++;
        for (;;) {
            if (p->i >= p->len)
                return mm_fail(MM_ERR_FORMAT,
                               "%s: line %d: quoted field is never closed; fix the quotes in the "
                               "file", p->name, open_line);
            char c = p->t[p->i];
            if (c == '\0')
                return mm_fail(MM_ERR_FORMAT, "%s: line %d: NUL byte; this is not a text CSV file",
                               p->name, p->line);
            if (c == '"') {
                if (p->i + 1 < p->len && p->t[p->i + 1] == '"') {
                    buf_put(&p->field, '"');
                    p->i += 2;
                    continue;
                }
                p->i++;
                break;
            }
            if (c == '\n' || (c == '\r' && !(p->i + 1 < p->len && p->t[p->i + 1] == '\n')))
                p->line++;
            buf_put(&p->field, c);
            p->i++;
        }
        while (p->i < p->len && (p->t[p->i] == ' ' || p->t[p->i] == '\t')) p->i++;
        if (p->i < p->len && p->t[p->i] != p->delim && p->t[p->i] != '\n' && p->t[p->i] != '\r')
            return mm_fail(MM_ERR_FORMAT,
                           "%s: line %d: unexpected character '%c' after a closing quote; a quote "
                           "inside a quoted field must be doubled (\"\")",
                           p->name, p->line, p->t[p->i]);
    } else {
        while (p->i < p->len) {
            char c = p->t[p->i];
            if (c == p->delim || c == '\n' || c == '\r') break;
            if (c == '\0')
                return mm_fail(MM_ERR_FORMAT, "%s: line %d: NUL byte; this is not a text CSV file",
                               p->name, p->line);
            buf_put(&p->field, c);
            p->i++;
        }
    }
    char *s = mm_xmalloc(p->field.n + 1);
    if (p->field.n) memcpy(s, p->field.p, p->field.n);
    s[p->field.n] = '\0';
    *out = s;
    return MM_OK;
}

/* Reads one record into p->record (emptied first). Consumes the end of the record. */
static mm_status read_record(parser *p)
{
    for (size_t k = 0; k < p->record.n; k++) free(p->record.p[k]);
    p->record.n = 0;
    for (;;) {
        char *f = NULL;
        mm_status st = read_field(p, &f);
        if (st != MM_OK) return st;
        strs_put(&p->record, f);
        if (p->i < p->len && p->t[p->i] == p->delim) {
            p->i++;
            continue;
        }
        if (p->i < p->len && p->t[p->i] == '\r') p->i++;
        if (p->i < p->len && p->t[p->i] == '\n') p->i++;
        p->line++;
        return MM_OK;
    }
}

static int record_is_empty(const strs *r) { return r->n == 1 && r->p[0][0] == '\0'; }

mm_status mm_csv_parse(mm_csv *csv, const char *text, size_t len, char delim, int flags,
                       const char *name)
{
    memset(csv, 0, sizeof *csv);
    parser p = {.t = text, .len = len, .name = name, .delim = delim, .line = 1};
    if (len >= 3 && (unsigned char)text[0] == 0xEF && (unsigned char)text[1] == 0xBB &&
        (unsigned char)text[2] == 0xBF)
        p.i = 3;
    strs cells = {0};
    int *lines = NULL;
    size_t n_lines = 0, cap_lines = 0;
    int n_cols = 0;
    mm_status st = MM_OK;
    char **header = NULL;

    while (p.i < p.len) {
        int start = p.line;
        st = read_record(&p);
        if (st != MM_OK) goto fail;
        if (record_is_empty(&p.record)) continue;
        if (flags & MM_CSV_TRIM || !header)
            for (size_t k = 0; k < p.record.n; k++) mm_str_trim(p.record.p[k]);
        if (!header) {
            n_cols = (int)p.record.n;
            header = mm_xmalloc((size_t)n_cols * sizeof *header);
            for (int c = 0; c < n_cols; c++) header[c] = p.record.p[c];
            p.record.n = 0;
            continue;
        }
        if ((int)p.record.n != n_cols) {
            st = mm_fail(MM_ERR_FORMAT,
                         "%s: line %d: %zu fields where the header has %d; check the delimiter "
                         "('%c') and the quoting",
                         name, start, p.record.n, n_cols, delim);
            goto fail;
        }
        for (size_t k = 0; k < p.record.n; k++) strs_put(&cells, p.record.p[k]);
        p.record.n = 0;
        if (n_lines == cap_lines) {
            cap_lines = cap_lines ? 2 * cap_lines : 256;
            lines = mm_xrealloc(lines, cap_lines * sizeof *lines);
        }
        lines[n_lines++] = start;
    }
    if (!header) {
        st = mm_fail(MM_ERR_FORMAT, "%s: empty file; expected a header line", name);
        goto fail;
    }
    for (size_t k = 0; k < p.record.n; k++) free(p.record.p[k]);
    free(p.record.p);
    free(p.field.p);
    csv->n_cols = n_cols;
    csv->n_rows = (int)n_lines;
    csv->header = header;
    csv->cells = cells.p;
    csv->lines = lines;
    csv->name = mm_xstrdup(name);
    return MM_OK;

fail:
    strs_free(&p.record);
    free(p.field.p);
    strs_free(&cells);
    if (header)
        for (int c = 0; c < n_cols; c++) free(header[c]);
    free(header);
    free(lines);
    return st;
}

mm_status mm_csv_read(mm_csv *csv, const char *path, char delim, int flags)
{
    memset(csv, 0, sizeof *csv);
    FILE *f = fopen(path, "rb");
    if (!f) return mm_fail(MM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *text = mm_xmalloc(cap);
    for (;;) {
        if (n == cap) text = mm_xrealloc(text, cap *= 2);
        size_t got = fread(text + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(text);
        return mm_fail(MM_ERR_IO, "%s: read error", path);
    }
    mm_status st = mm_csv_parse(csv, text, n, delim, flags, path);
    free(text);
    return st;
}

static int eq_nocase(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        char x = *a, y = *b;
        if (x >= 'A' && x <= 'Z') x = (char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = (char)(y - 'A' + 'a');
        if (x != y) return 0;
    }
    return *a == *b;
}

int mm_csv_col(const mm_csv *csv, const char *name)
{
    for (int c = 0; c < csv->n_cols; c++)
        if (eq_nocase(csv->header[c], name)) return c;
    return -1;
}

void mm_csv_put(FILE *f, const char *field, char delim)
{
    size_t n = strlen(field);
    int quote = n > 0 && (is_space(field[0]) || is_space(field[n - 1]));
    quote = quote || !strncmp(field, "\xEF\xBB\xBF", 3); /* a BOM where the file may start */
    for (size_t i = 0; i < n && !quote; i++)
        quote = field[i] == delim || field[i] == '"' || field[i] == '\n' || field[i] == '\r';
    if (!quote) {
        fputs(field, f);
        return;
    }
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        if (field[i] == '"') fputc('"', f);
        fputc(field[i], f);
    }
    fputc('"', f);
}
