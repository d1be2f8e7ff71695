/* The predictions CSV: reader and writer. See predictions.h for the format. */
#include "predictions.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/strbuf.h"

void mm_predictions_init(mm_predictions *p, int n_models, const char *const *model_names)
{
    memset(p, 0, sizeof *p);
    MM_ASSERT(n_models >= 0);
    p->n_models = n_models;
    if (n_models) {
        p->model_name = mm_xmalloc((size_t)n_models * sizeof *p->model_name);
        for (int m = 0; m < n_models; m++) p->model_name[m] = mm_xstrdup(model_names[m]);
    }
}

void mm_predictions_free(mm_predictions *p)
{
    for (int64_t i = 0; i < p->n; i++) free(p->image[i]);
    for (int m = 0; m < p->n_models; m++) free(p->model_name[m]);
    free(p->image);
    free(p->label);
    free(p->score);
    free(p->model_name);
    free(p->model_score);
    memset(p, 0, sizeof *p);
}

void mm_predictions_add(mm_predictions *p, const char *image, int label, double score,
                        const double *model_scores)
{
    MM_ASSERT(label == 0 || label == 1 || label == MM_LABEL_UNKNOWN);
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 64;
        p->image = mm_xrealloc(p->image, (size_t)p->cap * sizeof *p->image);
        p->label = mm_xrealloc(p->label, (size_t)p->cap * sizeof *p->label);
        p->score = mm_xrealloc(p->score, (size_t)p->cap * sizeof *p->score);
        if (p->n_models)
            p->model_score = mm_xrealloc(p->model_score, (size_t)p->cap * (size_t)p->n_models *
                                                             sizeof *p->model_score);
    }
    p->image[p->n] = mm_xstrdup(image);
    p->label[p->n] = label;
    p->score[p->n] = score;
    for (int m = 0; m < p->n_models; m++)
        p->model_score[p->n * p->n_models + m] = model_scores[m];
    p->n++;
}

void mm_predictions_labelled(double **scores, int **labels, int64_t *n_out,
                             const mm_predictions *p, int model)
{
    MM_ASSERT(model >= -1 && model < p->n_models);
    double *s = mm_xmalloc((size_t)(p->n ? p->n : 1) * sizeof *s);
    int *y = mm_xmalloc((size_t)(p->n ? p->n : 1) * sizeof *y);
    int64_t k = 0;
    for (int64_t i = 0; i < p->n; i++) {
        if (p->label[i] == MM_LABEL_UNKNOWN) continue;
        s[k] = model < 0 ? p->score[i] : p->model_score[i * p->n_models + model];
        y[k] = p->label[i];
        k++;
    }
    *scores = s;
    *labels = y;
    *n_out = k;
}

/* ---- CSV tokenizer (RFC 4180) ---- */

typedef struct csv_in {
    const char *p, *end, *path;
    int64_t line;     /* line number of the next character */
    int64_t rec_line; /* line where the current record started */
    char **field;     /* fields of the current record */
    int n, cap;
} csv_in;

static void csv_clear(csv_in *c)
{
    for (int i = 0; i < c->n; i++) free(c->field[i]);
    c->n = 0;
}

static void csv_push(csv_in *c, const char *s, size_t len)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 8;
        c->field = mm_xrealloc(c->field, (size_t)c->cap * sizeof *c->field);
    }
    char *f = mm_xmalloc(len + 1);
    memcpy(f, s, len);
    f[len] = '\0';
    c->field[c->n++] = f;
}

static int at_eol(const csv_in *c)
{
    return c->p == c->end || *c->p == '\n' ||
           (*c->p == '\r' && c->p + 1 < c->end && c->p[1] == '\n');
}

static void skip_eol(csv_in *c)
{
    if (c->p < c->end && *c->p == '\r') c->p++;
    if (c->p < c->end && *c->p == '\n') {
        c->p++;
        c->line++;
    }
}

/* Reads the next record into c->field. *got = 0 at the end of the file. */
static mm_status csv_next(csv_in *c, int *got)
{
    csv_clear(c);
    while (c->p < c->end && at_eol(c)) skip_eol(c); /* blank lines */
    *got = 0;
    if (c->p == c->end) return MM_OK;
    c->rec_line = c->line;
    mm_strbuf f;
    mm_strbuf_init(&f);
    for (;;) {
        f.len = 0;
        if (c->p < c->end && *c->p == '"') {
            c->p++;
            for (;;) {
                if (c->p == c->end) {
                    mm_strbuf_free(&f);
                    return mm_fail(MM_ERR_FORMAT, "%s line %lld: a quoted field is not closed",
                                   c->path, (long long)c->rec_line);
                }
                if (*c->p == '"') {
                    if (c->p + 1 < c->end && c->p[1] == '"') {
                        mm_strbuf_append(&f, "\"", 1);
                        c->p += 2;
                        continue;
                    }
                    c->p++;
                    break;
                }
                if (*c->p == '\n') c->line++;
                mm_strbuf_append(&f, c->p, 1);
                c->p++;
            }
            if (!at_eol(c) && *c->p != ',') {
                mm_strbuf_free(&f);
                return mm_fail(MM_ERR_FORMAT, "%s line %lld: text after a closing quote",
                               c->path, (long long)c->line);
            }
        } else {
            const char *s = c->p;
            while (c->p < c->end && *c->p != ',' && !at_eol(c)) c->p++;
            mm_strbuf_append(&f, s, (size_t)(c->p - s));
        }
        csv_push(c, mm_strbuf_str(&f), f.len);
        if (c->p < c->end && *c->p == ',') {
            c->p++;
            continue;
        }
        skip_eol(c);
        break;
    }
    mm_strbuf_free(&f);
    *got = 1;
    return MM_OK;
}

/* ---- reader ---- */

static void trim(char *s)
{
    size_t n = strlen(s), a = 0;
    while (a < n && (s[a] == ' ' || s[a] == '\t')) a++;
    while (n > a && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    memmove(s, s + a, n - a);
    s[n - a] = '\0';
}

static mm_status parse_score(double *out, const char *text, const char *what, const csv_in *c)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end || errno == ERANGE || !isfinite(v))
        return mm_fail(MM_ERR_FORMAT, "%s line %lld: %s '%s' is not a number", c->path,
                       (long long)c->rec_line, what, text);
    if (v < 0 || v > 1)
        return mm_fail(MM_ERR_FORMAT, "%s line %lld: %s %s is not a probability in [0, 1]",
                       c->path, (long long)c->rec_line, what, text);
    *out = v;
    return MM_OK;
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static mm_status read_rows(mm_predictions *p, csv_in *c)
{
    int got;
    MM_TRY(csv_next(c, &got));
    if (!got)
        return mm_fail(MM_ERR_FORMAT, "%s: empty file; expected a header row image,label,score",
                       c->path);
    int n_cols = c->n, col_image = -1, col_label = -1, col_score = -1;
    int *model_col = mm_xmalloc((size_t)n_cols * sizeof *model_col);
    const char **names = mm_xmalloc((size_t)n_cols * sizeof *names);
    int n_models = 0;
    for (int i = 0; i < n_cols; i++) {
        char *h = c->field[i];
        trim(h);
        if (!strcmp(h, "image")) col_image = i;
        else if (!strcmp(h, "label")) col_label = i;
        else if (!strcmp(h, "score")) col_score = i;
        else if (!strncmp(h, "score_", 6) && h[6]) {
            model_col[n_models] = i;
            names[n_models++] = h + 6;
        }
    }
    const char *missing = col_image < 0   ? "image"
                          : col_label < 0 ? "label"
                          : col_score < 0 ? "score"
                                          : NULL;
    if (missing) {
        mm_strbuf cols;
        mm_strbuf_init(&cols);
        for (int i = 0; i < n_cols; i++) mm_strbuf_printf(&cols, "%s%s", i ? "," : "", c->field[i]);
        mm_status s = mm_fail(MM_ERR_FORMAT,
                              "%s: no '%s' column (the header is '%s'); a predictions file has "
                              "columns image,label,score",
                              c->path, missing, mm_strbuf_str(&cols));
        mm_strbuf_free(&cols);
        free(model_col);
        free(names);
        return s;
    }
    mm_predictions_init(p, n_models, names);
    free(names);
    double *ms = mm_xmalloc((size_t)(n_models ? n_models : 1) * sizeof *ms);
    mm_status st = MM_OK;
    for (;;) {
        if ((st = csv_next(c, &got)) != MM_OK || !got) break;
        if (c->n != n_cols) {
            st = mm_fail(MM_ERR_FORMAT, "%s line %lld: %d fields, but the header has %d", c->path,
                         (long long)c->rec_line, c->n, n_cols);
            break;
        }
        const char *image = c->field[col_image];
        if (!image[0]) {
            st = mm_fail(MM_ERR_FORMAT, "%s line %lld: empty image path", c->path,
                         (long long)c->rec_line);
            break;
        }
        char *lab = c->field[col_label];
        trim(lab);
        int label;
        if (!strcmp(lab, "1")) label = 1;
        else if (!strcmp(lab, "0")) label = 0;
        else if (!strcmp(lab, "-1") || !lab[0]) label = MM_LABEL_UNKNOWN;
        else {
            st = mm_fail(MM_ERR_FORMAT, "%s line %lld: label '%s' is not 0, 1 or -1 (unknown)",
                         c->path, (long long)c->rec_line, lab);
            break;
        }
        double score;
        trim(c->field[col_score]);
        if ((st = parse_score(&score, c->field[col_score], "score", c)) != MM_OK) break;
        for (int m = 0; m < n_models && st == MM_OK; m++) {
            char what[64];
            snprintf(what, sizeof what, "score_%.50s", p->model_name[m]);
            trim(c->field[model_col[m]]);
            st = parse_score(&ms[m], c->field[model_col[m]], what, c);
        }
        if (st != MM_OK) break;
        mm_predictions_add(p, image, label, score, ms);
    }
    free(ms);
    free(model_col);
    MM_TRY(st);
    if (p->n == 0) return mm_fail(MM_ERR_FORMAT, "%s: a header but no rows", c->path);
    char **sorted = mm_xmalloc((size_t)p->n * sizeof *sorted);
    memcpy(sorted, p->image, (size_t)p->n * sizeof *sorted);
    qsort(sorted, (size_t)p->n, sizeof *sorted, cmp_str_ptr);
    for (int64_t i = 1; i < p->n && st == MM_OK; i++)
        if (!strcmp(sorted[i], sorted[i - 1]))
            st = mm_fail(MM_ERR_FORMAT, "%s: image '%s' appears more than once", c->path,
                         sorted[i]);
    free(sorted);
    return st;
}

mm_status mm_predictions_read(mm_predictions *p, const char *path)
{
    memset(p, 0, sizeof *p);
    FILE *f = fopen(path, "rb");
    if (!f) return mm_fail(MM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    mm_strbuf text;
    mm_strbuf_init(&text);
    char chunk[65536];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) mm_strbuf_append(&text, chunk, got);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        mm_strbuf_free(&text);
        return mm_fail(MM_ERR_IO, "%s: read error", path);
    }
    if (memchr(mm_strbuf_str(&text), '\0', text.len)) {
        mm_strbuf_free(&text);
        return mm_fail(MM_ERR_FORMAT, "%s: binary data; expected a CSV text file", path);
    }
    csv_in c = {0};
    c.p = mm_strbuf_str(&text);
    c.end = c.p + text.len;
    c.path = path;
    c.line = 1;
    if (c.end - c.p >= 3 && !memcmp(c.p, "\xEF\xBB\xBF", 3)) c.p += 3; /* UTF-8 BOM */
    mm_status st = read_rows(p, &c);
    csv_clear(&c);
    free(c.field);
    mm_strbuf_free(&text);
    return st;
}

/* ---- writer ---- */

static void put_field(mm_strbuf *b, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        mm_strbuf_puts(b, s);
        return;
    }
    mm_strbuf_puts(b, "\"");
    for (; *s; s++) {
        if (*s == '"') mm_strbuf_puts(b, "\"\"");
        else mm_strbuf_append(b, s, 1);
    }
    mm_strbuf_puts(b, "\"");
}

mm_status mm_predictions_write(const mm_predictions *p, const char *path)
{
    mm_strbuf b;
    mm_strbuf_init(&b);
    mm_strbuf_puts(&b, "image,label,score");
    for (int m = 0; m < p->n_models; m++) {
        char name[256];
        snprintf(name, sizeof name, "score_%s", p->model_name[m]);
        mm_strbuf_puts(&b, ",");
        put_field(&b, name);
    }
    mm_strbuf_puts(&b, "\n");
    for (int64_t i = 0; i < p->n; i++) {
        put_field(&b, p->image[i]);
        mm_strbuf_printf(&b, ",%d,%.9g", p->label[i], p->score[i]);
        for (int m = 0; m < p->n_models; m++)
            mm_strbuf_printf(&b, ",%.9g", p->model_score[i * p->n_models + m]);
        mm_strbuf_puts(&b, "\n");
    }
    mm_status st = mm_write_text_atomic(path, mm_strbuf_str(&b), b.len);
    mm_strbuf_free(&b);
    return st;
}
