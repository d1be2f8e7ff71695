/* The dataset index file: reader with validation, writer, counts. Format in index.h. */
#include "index.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/atomic_file.h"
#include "csv.h"
#include "fs.h"

static const char *const columns[] = {
    "image_id", "dataset", "patient_id", "side",   "view",   "label",   "split",
    "height",   "width",   "density",    "birads", "source", "image",   "n_rois",
    "roi_ids",  "roi_types", "roi_pathologies", "roi_masks",
};
enum {
    C_IMAGE_ID, C_DATASET, C_PATIENT, C_SIDE, C_VIEW, C_LABEL, C_SPLIT, C_HEIGHT, C_WIDTH,
    C_DENSITY, C_BIRADS, C_SOURCE, C_IMAGE, C_N_ROIS, C_ROI_IDS, C_ROI_TYPES, C_ROI_PATHS,
    C_ROI_MASKS, C_COUNT
};

static const char *const split_names[MM_SPLIT_COUNT] = {"train", "val", "test"};
static const char *const type_names[MM_ROI_TYPE_COUNT] = {
    "mass", "calc", "distortion", "asymmetry", "spiculated", "cluster"};
static const char *const path_names[MM_PATH_COUNT] = {"", "BENIGN", "BENIGN_WITHOUT_CALLBACK",
                                                      "MALIGNANT"};
static const char *const class_names[MM_CLASS_COUNT] = {"background", "calc_ben", "calc_mal",
                                                        "mass_ben", "mass_mal"};

const char *mm_split_name(mm_split s) { return split_names[s]; }
const char *mm_roi_type_name(mm_roi_type t) { return type_names[t]; }
const char *mm_pathology_name(mm_pathology p) { return path_names[p]; }
const char *mm_patch_class_name(mm_patch_class c) { return class_names[c]; }
bool mm_pathology_is_malignant(mm_pathology p) { return p == MM_PATH_MALIGNANT; }

int mm_roi_class(const mm_roi *r)
{
    if (r->pathology == MM_PATH_UNKNOWN) return -1;
    bool mal = mm_pathology_is_malignant(r->pathology);
    if (r->type == MM_ROI_CALC) return mal ? MM_CLASS_CALC_MALIGNANT : MM_CLASS_CALC_BENIGN;
    if (r->type == MM_ROI_MASS) return mal ? MM_CLASS_MASS_MALIGNANT : MM_CLASS_MASS_BENIGN;
    return -1;
}

mm_index_image *mm_index_add(mm_index *idx)
{
    if (idx->n == idx->cap) {
        idx->cap = idx->cap ? 2 * idx->cap : 64;
        idx->images = mm_xrealloc(idx->images, (size_t)idx->cap * sizeof *idx->images);
    }
    mm_index_image *im = &idx->images[idx->n++];
    memset(im, 0, sizeof *im);
    return im;
}

mm_roi *mm_index_add_roi(mm_index_image *im)
{
    im->rois = mm_xrealloc(im->rois, (size_t)(im->n_rois + 1) * sizeof *im->rois);
    mm_roi *r = &im->rois[im->n_rois++];
    memset(r, 0, sizeof *r);
    return r;
}

void mm_index_image_free(mm_index_image *im)
{
    free(im->image_id);
    free(im->dataset);
    free(im->patient_id);
    free(im->source);
    free(im->image);
    for (int k = 0; im->rois && k < im->n_rois; k++) free(im->rois[k].mask);
    free(im->rois);
    memset(im, 0, sizeof *im);
}

void mm_index_free(mm_index *idx)
{
    for (int i = 0; i < idx->n; i++) mm_index_image_free(&idx->images[i]);
    free(idx->images);
    free(idx->dir);
    memset(idx, 0, sizeof *idx);
}

char *mm_index_path(char *out, unsigned long size, const mm_index *idx, const char *stored)
{
    return mm_fs_join(out, size, idx->dir && stored[0] != '/' ? idx->dir : "", stored);
}

/* ---- reading ---- */

/* Parses a whole decimal integer in [lo, hi]; returns false when s is not one. */
static bool parse_int(const char *s, int lo, int hi, int *out)
{
    if (!*s) return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return false;
    *out = (int)v;
    return true;
}

static int lookup(const char *s, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(s, names[i])) return i;
    return -1;
}

/* Splits `s` on '|' into exactly n malloc'ed parts (n == 0 requires s empty). */
static bool split_bar(const char *s, int n, char ***parts)
{
    *parts = NULL;
    if (n == 0) return s[0] == '\0';
    int count = 1;
    for (const char *p = s; *p; p++) count += *p == '|';
    if (count != n) return false;
    char **out = mm_xcalloc((size_t)n, sizeof *out);
    const char *start = s;
    for (int k = 0; k < n; k++) {
        const char *bar = strchr(start, '|');
        size_t len = bar ? (size_t)(bar - start) : strlen(start);
        out[k] = mm_xmalloc(len + 1);
        memcpy(out[k], start, len);
        out[k][len] = '\0';
        start = bar ? bar + 1 : start + len;
    }
    *parts = out;
    return true;
}

static void free_parts(char **parts, int n)
{
    if (!parts) return;
    for (int k = 0; k < n; k++) free(parts[k]);
    free(parts);
}

#define BAD(col, what)                                                                          \
    mm_fail(MM_ERR_FORMAT, "%s: line %d: column %s: %s", path, line, columns[col], what)

static mm_status parse_rois(mm_index_image *im, const mm_csv *csv, int r, const char *path,
                            int line)
{
    const char *f_ids = mm_csv_cell(csv, r, C_ROI_IDS), *f_types = mm_csv_cell(csv, r, C_ROI_TYPES);
    const char *f_paths = mm_csv_cell(csv, r, C_ROI_PATHS), *f_masks = mm_csv_cell(csv, r, C_ROI_MASKS);
    int n = im->n_rois;
    char **ids = NULL, **types = NULL, **paths = NULL, **masks = NULL;
    mm_status st = MM_OK;
    if (!split_bar(f_ids, n, &ids)) st = BAD(C_ROI_IDS, "needs n_rois entries joined by '|'");
    else if (!split_bar(f_types, n, &types)) st = BAD(C_ROI_TYPES, "needs n_rois entries joined by '|'");
    else if (!split_bar(f_paths, n, &paths)) st = BAD(C_ROI_PATHS, "needs n_rois entries joined by '|'");
    else if (!split_bar(f_masks, n, &masks)) st = BAD(C_ROI_MASKS, "needs n_rois entries joined by '|'");
    if (st == MM_OK) {
        im->rois = mm_xcalloc((size_t)(n ? n : 1), sizeof *im->rois);
        for (int k = 0; k < n && st == MM_OK; k++) {
            mm_roi *roi = &im->rois[k];
            int t = lookup(types[k], type_names, MM_ROI_TYPE_COUNT);
            int p = lookup(paths[k], path_names, MM_PATH_COUNT);
            if (!parse_int(ids[k], 0, 1000000, &roi->id))
                st = BAD(C_ROI_IDS, "each id must be a whole number");
            else if (t < 0)
                st = BAD(C_ROI_TYPES, "each type must be mass, calc, distortion, asymmetry, "
                                      "spiculated or cluster");
            else if (p < 0)
                st = BAD(C_ROI_PATHS, "each pathology must be MALIGNANT, BENIGN, "
                                      "BENIGN_WITHOUT_CALLBACK or empty");
            else if (!masks[k][0])
                st = BAD(C_ROI_MASKS, "an ROI mask path is empty");
            else {
                roi->type = (mm_roi_type)t;
                roi->pathology = (mm_pathology)p;
                roi->mask = masks[k];
                masks[k] = NULL;
            }
        }
    }
    free_parts(ids, n);
    free_parts(types, n);
    free_parts(paths, n);
    free_parts(masks, n);
    return st;
}

static mm_status parse_record(mm_index_image *im, const mm_csv *csv, int r, const char *path)
{
    int line = csv->lines[r];
    const char *v[C_COUNT];
    for (int c = 0; c < C_COUNT; c++) v[c] = mm_csv_cell(csv, r, c);
    int split;
    if (!v[C_IMAGE_ID][0] || strchr(v[C_IMAGE_ID], '/'))
        return BAD(C_IMAGE_ID, "must be a non-empty name without '/'");
    if (strcmp(v[C_DATASET], "cbis-ddsm") && strcmp(v[C_DATASET], "inbreast"))
        return BAD(C_DATASET, "must be cbis-ddsm or inbreast");
    if (!v[C_PATIENT][0]) return BAD(C_PATIENT, "is empty");
    if (strcmp(v[C_SIDE], "L") && strcmp(v[C_SIDE], "R")) return BAD(C_SIDE, "must be L or R");
    if (strcmp(v[C_VIEW], "CC") && strcmp(v[C_VIEW], "MLO")) return BAD(C_VIEW, "must be CC or MLO");
    if (!parse_int(v[C_LABEL], 0, 1, &im->label)) return BAD(C_LABEL, "must be 0 or 1");
    if ((split = lookup(v[C_SPLIT], split_names, MM_SPLIT_COUNT)) < 0)
        return BAD(C_SPLIT, "must be train, val or test");
    if (!parse_int(v[C_HEIGHT], 1, 1 << 20, &im->height)) return BAD(C_HEIGHT, "must be a positive integer");
    if (!parse_int(v[C_WIDTH], 1, 1 << 20, &im->width)) return BAD(C_WIDTH, "must be a positive integer");
    if (v[C_DENSITY][0] && !parse_int(v[C_DENSITY], 1, 4, &im->density))
        return BAD(C_DENSITY, "must be 1, 2, 3, 4 or empty");
    if (strlen(v[C_BIRADS]) >= sizeof im->birads) return BAD(C_BIRADS, "is too long");
    if (!v[C_IMAGE][0]) return BAD(C_IMAGE, "is empty");
    if (!parse_int(v[C_N_ROIS], 0, 100000, &im->n_rois)) return BAD(C_N_ROIS, "must be a whole number >= 0");
    im->split = (mm_split)split;
    im->side = v[C_SIDE][0];
    snprintf(im->view, sizeof im->view, "%s", v[C_VIEW]);
    snprintf(im->birads, sizeof im->birads, "%s", v[C_BIRADS]);
    im->image_id = mm_xstrdup(v[C_IMAGE_ID]);
    im->dataset = mm_xstrdup(v[C_DATASET]);
    im->patient_id = mm_xstrdup(v[C_PATIENT]);
    im->source = mm_xstrdup(v[C_SOURCE]);
    im->image = mm_xstrdup(v[C_IMAGE]);
    return parse_rois(im, csv, r, path, line);
}

static int cmp_by_id(const void *a, const void *b)
{
    return strcmp((*(const mm_index_image *const *)a)->image_id,
                  (*(const mm_index_image *const *)b)->image_id);
}

static int cmp_by_patient(const void *a, const void *b)
{
    return strcmp((*(const mm_index_image *const *)a)->patient_id,
                  (*(const mm_index_image *const *)b)->patient_id);
}

/* Duplicate image ids and patients split across splits are errors. */
static mm_status check_consistency(const mm_index *idx, const char *path)
{
    int n = idx->n;
    if (n < 2) return MM_OK;
    const mm_index_image **p = mm_xmalloc((size_t)n * sizeof *p);
    for (int i = 0; i < n; i++) p[i] = &idx->images[i];
    qsort(p, (size_t)n, sizeof *p, cmp_by_id);
    mm_status st = MM_OK;
    for (int i = 1; i < n && st == MM_OK; i++)
        if (!strcmp(p[i]->image_id, p[i - 1]->image_id))
            st = mm_fail(MM_ERR_FORMAT, "%s: image_id %s appears twice; image ids must be unique",
                         path, p[i]->image_id);
    qsort(p, (size_t)n, sizeof *p, cmp_by_patient);
    for (int i = 1; i < n && st == MM_OK; i++)
        if (!strcmp(p[i]->patient_id, p[i - 1]->patient_id) && p[i]->split != p[i - 1]->split)
            st = mm_fail(MM_ERR_FORMAT,
                         "%s: patient %s has images in both the %s and the %s split; a patient "
                         "must stay in one split",
                         path, p[i]->patient_id, split_names[p[i - 1]->split],
                         split_names[p[i]->split]);
    free(p);
    return st;
}

mm_status mm_index_read(mm_index *idx, const char *path)
{
    memset(idx, 0, sizeof *idx);
    mm_csv csv;
    MM_TRY(mm_csv_read(&csv, path, ',', 0));
    mm_status st = MM_OK;
    for (int c = 0; c < C_COUNT && st == MM_OK; c++) {
        if (c >= csv.n_cols)
            st = mm_fail(MM_ERR_FORMAT,
                         "%s: column %d should be '%s' but the header has only %d columns; is "
                         "this an index written by 'mammo index'?",
                         path, c + 1, columns[c], csv.n_cols);
        else if (strcmp(csv.header[c], columns[c]))
            st = mm_fail(MM_ERR_FORMAT,
                         "%s: column %d is '%s' where the index format has '%s'; is this an "
                         "index written by 'mammo index'?",
                         path, c + 1, csv.header[c], columns[c]);
    }
    if (st == MM_OK && csv.n_cols > C_COUNT)
        st = mm_fail(MM_ERR_FORMAT, "%s: unexpected extra column '%s' after '%s'", path,
                     csv.header[C_COUNT], columns[C_COUNT - 1]);
    for (int r = 0; r < csv.n_rows && st == MM_OK; r++) {
        mm_index_image *im = mm_index_add(idx);
        st = parse_record(im, &csv, r, path);
    }
    mm_csv_free(&csv);
    if (st == MM_OK) st = check_consistency(idx, path);
    if (st != MM_OK) {
        mm_index_free(idx);
        return st;
    }
    char dir[4096];
    idx->dir = mm_xstrdup(mm_fs_dirname(dir, sizeof dir, path));
    return MM_OK;
}

/* ---- writing ---- */

static void put_joined(FILE *f, const mm_index_image *im, int which)
{
    char buf[64];
    /* Build the '|'-joined field into a growing string, then quote it as one field. */
    size_t cap = 64, n = 0;
    char *s = mm_xmalloc(cap);
    s[0] = '\0';
    for (int k = 0; k < im->n_rois; k++) {
        const mm_roi *r = &im->rois[k];
        const char *part;
        if (which == C_ROI_IDS) {
            snprintf(buf, sizeof buf, "%d", r->id);
            part = buf;
        } else if (which == C_ROI_TYPES) {
            part = type_names[r->type];
        } else if (which == C_ROI_PATHS) {
            part = path_names[r->pathology];
        } else {
            part = r->mask;
        }
        size_t need = n + strlen(part) + 2;
        if (need > cap) s = mm_xrealloc(s, cap = 2 * need);
        if (k) s[n++] = '|';
        memcpy(s + n, part, strlen(part) + 1);
        n += strlen(part);
    }
    mm_csv_put(f, s, ',');
    free(s);
}

mm_status mm_index_write(const mm_index *idx, const char *path)
{
    for (int i = 0; i < idx->n; i++) {
        const mm_index_image *im = &idx->images[i];
        for (int k = 0; k < im->n_rois; k++)
            if (strchr(im->rois[k].mask, '|'))
                return mm_fail(MM_ERR_ARG,
                               "%s: ROI mask path contains '|', which the index format uses as "
                               "separator; rename the file or folder",
                               im->rois[k].mask);
    }
    mm_atomic_file af;
    MM_TRY(mm_atomic_file_open(&af, path));
    FILE *f = af.file;
    for (int c = 0; c < C_COUNT; c++) fprintf(f, "%s%s", c ? "," : "", columns[c]);
    fputc('\n', f);
    for (int i = 0; i < idx->n; i++) {
        const mm_index_image *im = &idx->images[i];
        mm_csv_put(f, im->image_id, ',');
        fputc(',', f);
        mm_csv_put(f, im->dataset, ',');
        fputc(',', f);
        mm_csv_put(f, im->patient_id, ',');
        fprintf(f, ",%c,%s,%d,%s,%d,%d,", im->side, im->view, im->label, split_names[im->split],
                im->height, im->width);
        if (im->density) fprintf(f, "%d", im->density);
        fputc(',', f);
        mm_csv_put(f, im->birads, ',');
        fputc(',', f);
        mm_csv_put(f, im->source ? im->source : "", ',');
        fputc(',', f);
        mm_csv_put(f, im->image, ',');
        fprintf(f, ",%d,", im->n_rois);
        put_joined(f, im, C_ROI_IDS);
        fputc(',', f);
        put_joined(f, im, C_ROI_TYPES);
        fputc(',', f);
        put_joined(f, im, C_ROI_PATHS);
        fputc(',', f);
        put_joined(f, im, C_ROI_MASKS);
        fputc('\n', f);
    }
    return mm_atomic_file_commit(&af);
}

/* ---- counts and order ---- */

static int cmp_image(const void *pa, const void *pb)
{
    const mm_index_image *a = pa, *b = pb;
    int c = strcmp(a->patient_id, b->patient_id);
    if (c) return c;
    if (a->side != b->side) return a->side < b->side ? -1 : 1;
    if ((c = strcmp(a->view, b->view))) return c;
    return strcmp(a->image_id, b->image_id);
}

void mm_index_sort(mm_index *idx)
{
    if (idx->n > 1) qsort(idx->images, (size_t)idx->n, sizeof *idx->images, cmp_image);
}

void mm_index_count(mm_index_counts *c, const mm_index *idx)
{
    memset(c, 0, sizeof *c);
    int n = idx->n;
    const mm_index_image **p = mm_xmalloc((size_t)(n ? n : 1) * sizeof *p);
    for (int i = 0; i < n; i++) {
        const mm_index_image *im = &idx->images[i];
        p[i] = im;
        c->images++;
        c->malignant += im->label == 1;
        c->benign += im->label == 0;
        c->rois += im->n_rois;
        c->split_images[im->split]++;
    }
    qsort(p, (size_t)n, sizeof *p, cmp_by_patient);
    for (int i = 0; i < n; i++)
        if (i == 0 || strcmp(p[i]->patient_id, p[i - 1]->patient_id)) {
            c->patients++;
            c->split_patients[p[i]->split]++;
        }
    free(p);
}
