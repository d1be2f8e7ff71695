/* The CBIS-DDSM indexer: description CSVs + DICOM headers -> index records. See indexers.h. */
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "csv.h"
#include "dicom.h"
#include "fs.h"
#include "indexers.h"
#include "parallel.h"
#include "split.h"

void mm_indexer_opts_default(mm_indexer_opts *o)
{
    memset(o, 0, sizeof *o);
    o->seed = 12345;
    o->test_frac = 0.15;
    o->val_frac = 0.10;
    o->point_radius = 3;
}

/* A DICOM file under ROOT that sits in a subject folder some CSV row names. */
typedef struct dfile {
    char *path, *dir;
    const char *subject; /* points into path */
    size_t subject_len;
    mm_dicom_info info;
    int ok;
    char err[1024];
} dfile;

/* One abnormality row of a description CSV. */
typedef struct crow {
    const char *csv;
    int line;
    char patient[64], side, view[4], key[96];
    int abn_id, density, assessment, test;
    mm_roi_type type;
    mm_pathology pathology;
    char img_subject[256], img_uid[72], mask_subject[256], mask_uid[72], crop_subject[256],
        crop_uid[72];
    const char *img_path_text, *mask_path_text;
    int img_file, mask_file; /* resolved, indices into files */
} crow;

typedef struct cbis {
    const char *root;
    dfile *files;
    int n_files;
    int *by_subject; /* [n_files] file indices sorted by (subject, path) */
    crow *rows;
    int n_rows, cap_rows;
    mm_strlist subjects; /* every subject a row names, sorted */
    mm_strlist meta_uid, meta_dir; /* metadata.csv: series UID -> absolute series folder */
} cbis;

static int lower_eq_prefix(const char *s, const char *prefix)
{
    for (; *prefix; s++, prefix++)
        if (tolower((unsigned char)*s) != *prefix) return 0;
    return 1;
}

static int contains_nocase(const char *s, const char *needle)
{
    for (; *s; s++)
        if (lower_eq_prefix(s, needle)) return 1;
    return 0;
}

/* ---- CSV rows ---- */

/* Splits a CSV path "<subject>/<study UID>/<series UID>/<file>" (either slash). */
static int parse_csv_path(const char *text, char *subject, size_t ns, char *uid, size_t nu)
{
    const char *comp[4] = {0};
    size_t len[4] = {0};
    int k = 0;
    const char *s = text;
    while (*s && k < 4) {
        const char *e = s;
        while (*e && *e != '/' && *e != '\\') e++;
        if (e > s) {
            comp[k] = s;
            len[k++] = (size_t)(e - s);
        }
        s = *e ? e + 1 : e;
    }
    if (k < 3 || len[0] >= ns || len[2] >= nu) return 0;
    memcpy(subject, comp[0], len[0]);
    subject[len[0]] = '\0';
    memcpy(uid, comp[2], len[2]);
    uid[len[2]] = '\0';
    return 1;
}

static crow *add_row(cbis *c)
{
    if (c->n_rows == c->cap_rows) {
        c->cap_rows = c->cap_rows ? 2 * c->cap_rows : 256;
        c->rows = mm_xrealloc(c->rows, (size_t)c->cap_rows * sizeof *c->rows);
    }
    crow *r = &c->rows[c->n_rows++];
    memset(r, 0, sizeof *r);
    r->img_file = r->mask_file = -1;
    return r;
}

/* Reads one description CSV (kept alive in *csv: rows point into it). */
static mm_status read_description(cbis *c, mm_csv *csv, const char *path, int is_calc, int is_test)
{
    MM_TRY(mm_csv_read(csv, path, ',', MM_CSV_TRIM));
    int col_density = mm_csv_col(csv, "breast_density");
    if (col_density < 0) col_density = mm_csv_col(csv, "breast density");
    static const char *const need[] = {"patient_id", "left or right breast", "image view",
                                       "abnormality id", "abnormality type", "pathology",
                                       "image file path", "cropped image file path",
                                       "ROI mask file path"};
    int col[9];
    for (int k = 0; k < 9; k++)
        if ((col[k] = mm_csv_col(csv, need[k])) < 0)
            return mm_fail(MM_ERR_FORMAT,
                           "%s: no column '%s'; a CBIS-DDSM description CSV needs patient_id, "
                           "breast_density (or 'breast density'), left or right breast, image "
                           "view, abnormality id, abnormality type, pathology, image file path, "
                           "cropped image file path, ROI mask file path",
                           path, need[k]);
    if (col_density < 0)
        return mm_fail(MM_ERR_FORMAT, "%s: no column 'breast_density' or 'breast density'", path);
    int col_assess = mm_csv_col(csv, "assessment");
    for (int i = 0; i < csv->n_rows; i++) {
        crow *r = add_row(c);
        r->csv = path;
        r->line = csv->lines[i];
        const char *pat = mm_csv_cell(csv, i, col[0]), *side = mm_csv_cell(csv, i, col[1]);
        const char *view = mm_csv_cell(csv, i, col[2]), *abn = mm_csv_cell(csv, i, col[3]);
        const char *type = mm_csv_cell(csv, i, col[4]), *pth = mm_csv_cell(csv, i, col[5]);
        const char *dens = mm_csv_cell(csv, i, col_density);
#define ROW_FAIL(...) mm_fail(MM_ERR_FORMAT, "%s: line %d: " __VA_ARGS__)
        if (!pat[0] || strlen(pat) >= sizeof r->patient || strchr(pat, '/'))
            return ROW_FAIL("patient_id '%s' is empty or malformed", path, r->line, pat);
        snprintf(r->patient, sizeof r->patient, "%s", pat);
        if (!strcasecmp(side, "LEFT")) r->side = 'L';
        else if (!strcasecmp(side, "RIGHT")) r->side = 'R';
        else return ROW_FAIL("left or right breast is '%s', not LEFT or RIGHT", path, r->line, side);
        if (!strcasecmp(view, "CC")) snprintf(r->view, sizeof r->view, "CC");
        else if (!strcasecmp(view, "MLO")) snprintf(r->view, sizeof r->view, "MLO");
        else return ROW_FAIL("image view is '%s', not CC or MLO", path, r->line, view);
        char *end;
        long id = strtol(abn, &end, 10);
        if (!abn[0] || *end || id < 0 || id > 100000)
            return ROW_FAIL("abnormality id '%s' is not a whole number", path, r->line, abn);
        r->abn_id = (int)id;
        if (lower_eq_prefix(type, "mass")) r->type = MM_ROI_MASS;
        else if (lower_eq_prefix(type, "calc")) r->type = MM_ROI_CALC;
        else if (!type[0]) r->type = is_calc ? MM_ROI_CALC : MM_ROI_MASS;
        else return ROW_FAIL("abnormality type '%s' is not mass or calcification", path, r->line, type);
        if (!strcasecmp(pth, "MALIGNANT")) r->pathology = MM_PATH_MALIGNANT;
        else if (!strcasecmp(pth, "BENIGN")) r->pathology = MM_PATH_BENIGN;
        else if (!strcasecmp(pth, "BENIGN_WITHOUT_CALLBACK")) r->pathology = MM_PATH_BENIGN_WITHOUT_CALLBACK;
        else return ROW_FAIL("pathology '%s' is not MALIGNANT, BENIGN or BENIGN_WITHOUT_CALLBACK",
                             path, r->line, pth);
        long d = strtol(dens, &end, 10);
        r->density = dens[0] && !*end && d >= 1 && d <= 4 ? (int)d : 0;
        if (col_assess >= 0) {
            const char *a = mm_csv_cell(csv, i, col_assess);
            long v = strtol(a, &end, 10);
            r->assessment = a[0] && !*end && v >= 0 && v <= 6 ? (int)v : -1;
        } else {
            r->assessment = -1;
        }
        r->test = is_test;
        r->img_path_text = mm_csv_cell(csv, i, col[6]);
        r->mask_path_text = mm_csv_cell(csv, i, col[8]);
        if (!parse_csv_path(r->img_path_text, r->img_subject, sizeof r->img_subject, r->img_uid,
                            sizeof r->img_uid))
            return ROW_FAIL("image file path '%s' is not <subject>/<study>/<series>/<file>", path,
                            r->line, r->img_path_text);
        if (!parse_csv_path(r->mask_path_text, r->mask_subject, sizeof r->mask_subject,
                            r->mask_uid, sizeof r->mask_uid))
            return ROW_FAIL("ROI mask file path '%s' is not <subject>/<study>/<series>/<file>",
                            path, r->line, r->mask_path_text);
        const char *crop = mm_csv_cell(csv, i, col[7]);
        if (!parse_csv_path(crop, r->crop_subject, sizeof r->crop_subject, r->crop_uid,
                            sizeof r->crop_uid)) {
            r->crop_subject[0] = r->crop_uid[0] = '\0'; /* the crop is not needed */
        }
        snprintf(r->key, sizeof r->key, "%s_%s_%s", r->patient, r->side == 'L' ? "LEFT" : "RIGHT",
                 r->view);
#undef ROW_FAIL
    }
    return MM_OK;
}

/* ---- the DICOM tree ---- */

/* The subject folder of a file: the first path component below ROOT that starts with "Mass-"
 * or "Calc-". Returns its start and length, or NULL. */
static const char *subject_of(const char *path, size_t root_len, size_t *len)
{
    const char *s = path + root_len;
    while (*s) {
        while (*s == '/') s++;
        const char *e = strchr(s, '/');
        if (!e) return NULL; /* the file name itself is not a subject */
        if (lower_eq_prefix(s, "mass-") || lower_eq_prefix(s, "calc-")) {
            *len = (size_t)(e - s);
            return s;
        }
        s = e;
    }
    return NULL;
}

static const cbis *sort_ctx;

static int cmp_subject(const void *a, const void *b)
{
    const dfile *x = &sort_ctx->files[*(const int *)a], *y = &sort_ctx->files[*(const int *)b];
    size_t n = x->subject_len < y->subject_len ? x->subject_len : y->subject_len;
    int c = strncmp(x->subject, y->subject, n);
    if (c) return c;
    if (x->subject_len != y->subject_len) return x->subject_len < y->subject_len ? -1 : 1;
    return strcmp(x->path, y->path);
}

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int subject_needed(const cbis *c, const char *s, size_t len)
{
    char buf[256];
    if (len >= sizeof buf) return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    const char *key = buf;
    return bsearch(&key, c->subjects.s, (size_t)c->subjects.n, sizeof *c->subjects.s, cmp_cstr) != NULL;
}

static mm_status read_header_job(void *vctx, int i, int thread)
{
    (void)thread;
    dfile *f = &((cbis *)vctx)->files[i];
    f->ok = mm_dicom_read_info(f->path, &f->info) == MM_OK;
    if (!f->ok) snprintf(f->err, sizeof f->err, "%s", mm_last_error());
    return MM_OK;
}

static mm_status scan_tree(cbis *c, const mm_strlist *dcm, const mm_indexer_opts *o)
{
    size_t root_len = strlen(c->root);
    c->files = mm_xcalloc((size_t)(dcm->n ? dcm->n : 1), sizeof *c->files);
    for (int i = 0; i < dcm->n; i++) {
        size_t len;
        const char *s = subject_of(dcm->s[i], root_len, &len);
        if (!s || !subject_needed(c, s, len)) continue;
        dfile *f = &c->files[c->n_files++];
        f->path = mm_xstrdup(dcm->s[i]);
        f->subject = f->path + (s - dcm->s[i]);
        f->subject_len = len;
        char d[4096];
        f->dir = mm_xstrdup(mm_fs_dirname(d, sizeof d, f->path));
    }
    MM_TRY(mm_parallel_for(c->n_files, o->threads, read_header_job, c,
                           o->quiet ? NULL : "index: reading DICOM headers"));
    for (int i = 0; i < c->n_files; i++)
        if (!c->files[i].ok)
            return mm_fail(MM_ERR_FORMAT, "%s (a file in a subject folder the CSVs name)",
                           c->files[i].err);
    c->by_subject = mm_xmalloc((size_t)(c->n_files ? c->n_files : 1) * sizeof *c->by_subject);
    for (int i = 0; i < c->n_files; i++) c->by_subject[i] = i;
    sort_ctx = c;
    qsort(c->by_subject, (size_t)c->n_files, sizeof *c->by_subject, cmp_subject);
    return MM_OK;
}

/* The range [*lo, *hi) of by_subject whose subject is `s`. */
static void subject_range(const cbis *c, const char *s, int *lo, int *hi)
{
    size_t len = strlen(s);
    int a = 0, b = c->n_files;
    while (a < b) { /* first entry with subject >= s */
        int m = (a + b) / 2;
        const dfile *f = &c->files[c->by_subject[m]];
        size_t n = f->subject_len < len ? f->subject_len : len;
        int cmp = strncmp(f->subject, s, n);
        if (!cmp) cmp = f->subject_len < len ? -1 : f->subject_len > len;
        if (cmp < 0) a = m + 1;
        else b = m;
    }
    *lo = a;
    while (a < c->n_files) {
        const dfile *f = &c->files[c->by_subject[a]];
        if (f->subject_len != len || strncmp(f->subject, s, len)) break;
        a++;
    }
    *hi = a;
}

/* metadata.csv of the NBIA retriever: Series UID -> series folder. */
static mm_status read_metadata(cbis *c, const char *path)
{
    mm_csv csv;
    MM_TRY(mm_csv_read(&csv, path, ',', MM_CSV_TRIM));
    int cu = mm_csv_col(&csv, "Series UID"), cl = mm_csv_col(&csv, "File Location");
    if (cu < 0 || cl < 0) {
        mm_csv_free(&csv);
        return mm_fail(MM_ERR_FORMAT, "%s: a metadata.csv needs the columns 'Series UID' and "
                                      "'File Location'", path);
    }
    char base[4096], loc[4096], full[8200];
    mm_fs_dirname(base, sizeof base, path);
    for (int i = 0; i < csv.n_rows; i++) {
        snprintf(loc, sizeof loc, "%s", mm_csv_cell(&csv, i, cl));
        for (char *p = loc; *p; p++)
            if (*p == '\\') *p = '/';
        const char *l = loc;
        while (l[0] == '.' && l[1] == '/') l += 2;
        size_t n = strlen(l);
        while (n && l[n - 1] == '/') n--;
        snprintf(full, sizeof full, "%s/%.*s", base, (int)n, l);
        if (!mm_fs_is_dir(full)) { /* File Location relative to the folder above, as some put it */
            char up[4096];
            mm_fs_dirname(up, sizeof up, base);
            char alt[8200];
            snprintf(alt, sizeof alt, "%s/%.*s", up, (int)n, l);
            if (mm_fs_is_dir(alt)) snprintf(full, sizeof full, "%s", alt);
        }
        mm_strlist_add(&c->meta_uid, mm_csv_cell(&csv, i, cu));
        mm_strlist_add(&c->meta_dir, full);
    }
    mm_csv_free(&csv);
    return MM_OK;
}

/* Adds to out[] the files whose folder metadata.csv gives for `uid`. */
static int meta_files(const cbis *c, const char *uid, int *out, int n)
{
    if (!uid[0]) return n;
    for (int m = 0; m < c->meta_uid.n; m++) {
        if (strcmp(c->meta_uid.s[m], uid)) continue;
        for (int i = 0; i < c->n_files; i++)
            if (!strcmp(c->files[i].dir, c->meta_dir.s[m])) {
                int dup = 0;
                for (int k = 0; k < n; k++) dup |= out[k] == i;
                if (!dup) out[n++] = i;
            }
    }
    return n;
}

/* ---- resolving rows to files ---- */

static mm_status resolve_full(const cbis *c, crow *r, int *scratch)
{
    int lo, hi, n = 0;
    subject_range(c, r->img_subject, &lo, &hi);
    for (int k = lo; k < hi; k++)
        if (!strcmp(c->files[c->by_subject[k]].info.series_uid, r->img_uid)) scratch[n++] = c->by_subject[k];
    if (n == 0) n = meta_files(c, r->img_uid, scratch, 0);
    if (n == 0 && hi - lo == 1) scratch[n++] = c->by_subject[lo];
    if (n > 1) { /* several files in the series: the one described as the full mammogram */
        int full = -1, count = 0;
        for (int k = 0; k < n; k++)
            if (contains_nocase(c->files[scratch[k]].info.series_description, "full")) {
                full = scratch[k];
                count++;
            }
        if (count == 1) {
            scratch[0] = full;
            n = 1;
        }
    }
    if (n == 1) {
        r->img_file = scratch[0];
        return MM_OK;
    }
    return mm_fail(MM_ERR_FORMAT,
                   "%s: line %d: image file path '%s': %s DICOM under %s with subject folder %s "
                   "and SeriesInstanceUID %s (%d files in that folder); check that the download "
                   "is complete",
                   r->csv, r->line, r->img_path_text, n ? "more than one" : "no", c->root,
                   r->img_subject, r->img_uid, hi - lo);
}

/* How much a file looks like the ROI mask of an image with the given size. */
static int mask_score(const mm_dicom_info *f, const mm_dicom_info *full)
{
    int s = 0;
    if (f->rows == full->rows && f->cols == full->cols) s += 8;
    if (f->bits_allocated == 8) s += 4;
    if (contains_nocase(f->series_description, "mask")) s += 2;
    if (contains_nocase(f->series_description, "crop")) s -= 2;
    return s;
}

static mm_status resolve_mask(const cbis *c, crow *r, int *scratch)
{
    int n = 0, lo, hi;
    const char *subj[2] = {r->mask_subject, r->crop_subject};
    for (int t = 0; t < 2; t++) {
        if (!subj[t][0] || (t == 1 && !strcmp(subj[1], subj[0]))) continue;
        subject_range(c, subj[t], &lo, &hi);
        for (int k = lo; k < hi; k++) scratch[n++] = c->by_subject[k];
    }
    /* keep the files of the two series the CSV names, when any of them is there */
    int m = 0;
    for (int k = 0; k < n; k++) {
        const char *u = c->files[scratch[k]].info.series_uid;
        if (!strcmp(u, r->mask_uid) || (r->crop_uid[0] && !strcmp(u, r->crop_uid))) m++;
    }
    if (m > 0) {
        int w = 0;
        for (int k = 0; k < n; k++) {
            const char *u = c->files[scratch[k]].info.series_uid;
            if (!strcmp(u, r->mask_uid) || (r->crop_uid[0] && !strcmp(u, r->crop_uid)))
                scratch[w++] = scratch[k];
        }
        n = w;
    }
    if (n == 0) n = meta_files(c, r->crop_uid, scratch, meta_files(c, r->mask_uid, scratch, 0));
    if (n == 0)
        return mm_fail(MM_ERR_FORMAT,
                       "%s: line %d: ROI mask file path '%s': no DICOM under %s in subject "
                       "folder %s; check that the download is complete",
                       r->csv, r->line, r->mask_path_text, c->root, r->mask_subject);
    const mm_dicom_info *full = &c->files[r->img_file].info;
    int best = -1, best_score = 0, tie = 0;
    long long best_area = 0;
    for (int k = 0; k < n; k++) {
        const mm_dicom_info *f = &c->files[scratch[k]].info;
        long long area = (long long)f->rows * f->cols;
        int s = mask_score(f, full);
        /* a mask has the image's size, 8 bits, or a mask description; or is at least big */
        int plausible = s > 0 || area * 2 >= (long long)full->rows * full->cols;
        if (!plausible) continue;
        if (best < 0 || s > best_score || (s == best_score && area > best_area)) {
            best = scratch[k];
            best_score = s;
            best_area = area;
            tie = 0;
        } else if (s == best_score && area == best_area) {
            tie = 1;
        }
    }
    if (best < 0)
        return mm_fail(MM_ERR_FORMAT,
                       "%s: line %d: ROI mask file path '%s': the %d file(s) in %s all look like "
                       "cropped images (small, 16-bit), none like a mask of the %dx%d image",
                       r->csv, r->line, r->mask_path_text, n, r->mask_subject, full->rows,
                       full->cols);
    if (tie)
        return mm_fail(MM_ERR_FORMAT,
                       "%s: line %d: ROI mask file path '%s': cannot tell the mask from the crop "
                       "in %s (same size, depth and description)",
                       r->csv, r->line, r->mask_path_text, r->mask_subject);
    r->mask_file = best;
    return MM_OK;
}

/* ---- merging rows into images ---- */

static int cmp_row(const void *a, const void *b)
{
    const crow *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    if (c) return c;
    if ((c = strcmp(x->csv, y->csv))) return c;
    return x->line - y->line;
}

static void build_images(mm_index *idx, const cbis *c)
{
    for (int i = 0; i < c->n_rows;) {
        int j = i;
        while (j < c->n_rows && !strcmp(c->rows[j].key, c->rows[i].key)) j++;
        /* the copy of the image in the lexicographically first subject folder */
        int img = c->rows[i].img_file;
        for (int k = i + 1; k < j; k++)
            if (strcmp(c->files[c->rows[k].img_file].subject, c->files[img].subject) < 0)
                img = c->rows[k].img_file;
        mm_index_image *im = mm_index_add(idx);
        const crow *r0 = &c->rows[i];
        im->image_id = mm_xstrdup(r0->key);
        im->dataset = mm_xstrdup("cbis-ddsm");
        im->patient_id = mm_xstrdup(r0->patient);
        im->side = r0->side;
        snprintf(im->view, sizeof im->view, "%s", r0->view);
        im->height = c->files[img].info.rows;
        im->width = c->files[img].info.cols;
        im->source = mm_xstrdup(c->files[img].path);
        im->image = mm_xstrdup(c->files[img].path);
        int birads = -1; /* 0..6, see read_description */
        for (int k = i; k < j; k++) {
            const crow *r = &c->rows[k];
            if (r->pathology == MM_PATH_MALIGNANT) im->label = 1;
            if (!im->density && r->density) im->density = r->density;
            if (r->assessment > birads) birads = r->assessment;
            if (r->test) im->split = MM_SPLIT_TEST;
            int dup = 0;
            for (int q = 0; q < im->n_rois; q++)
                dup |= !strcmp(im->rois[q].mask, c->files[r->mask_file].path);
            if (dup) continue;
            mm_roi *roi = mm_index_add_roi(im);
            roi->id = r->abn_id;
            roi->type = r->type;
            roi->pathology = r->pathology;
            roi->mask = mm_xstrdup(c->files[r->mask_file].path);
        }
        if (birads >= 0) snprintf(im->birads, sizeof im->birads, "%d", birads % 10);
        i = j;
    }
}

/* ---- the indexer ---- */

static void cbis_free(cbis *c)
{
    for (int i = 0; i < c->n_files; i++) {
        free(c->files[i].path);
        free(c->files[i].dir);
    }
    free(c->files);
    free(c->by_subject);
    free(c->rows);
    mm_strlist_free(&c->subjects);
    mm_strlist_free(&c->meta_uid);
    mm_strlist_free(&c->meta_dir);
}

mm_status mm_index_cbis_ddsm(mm_index *idx, const char *root_arg, const mm_indexer_opts *o)
{
    memset(idx, 0, sizeof *idx);
    char root[PATH_MAX];
    if (!mm_fs_is_dir(root_arg) || !realpath(root_arg, root))
        return mm_fail(MM_ERR_IO, "--cbis-ddsm %s: no such folder", root_arg);
    cbis c = {.root = root};
    mm_strlist csvs = {0}, dcm = {0};
    mm_csv tables[4];
    int n_tables = 0;
    const char *kinds[4] = {0}; /* mass train, mass test, calc train, calc test */
    mm_status st = mm_fs_list_files(&csvs, root, ".csv");
    for (int i = 0; st == MM_OK && i < csvs.n; i++) {
        const char *base = mm_fs_basename(csvs.s[i]);
        if (!strcasecmp(base, "metadata.csv")) {
            st = read_metadata(&c, csvs.s[i]);
            continue;
        }
        if (!contains_nocase(base, "case_description")) continue;
        int calc = contains_nocase(base, "calc"), mass = contains_nocase(base, "mass");
        int test = contains_nocase(base, "test"), train = contains_nocase(base, "train");
        if (calc == mass || test == train) {
            st = mm_fail(MM_ERR_FORMAT, "%s: cannot tell from the name whether this is the mass or "
                                        "calc, train or test description; use the TCIA names "
                                        "such as mass_case_description_train_set.csv", csvs.s[i]);
            break;
        }
        int k = calc * 2 + test;
        if (kinds[k]) {
            st = mm_fail(MM_ERR_ARG, "--cbis-ddsm %s: two description CSVs of one kind: %s and %s; "
                                     "keep one", root_arg, kinds[k], csvs.s[i]);
            break;
        }
        kinds[k] = csvs.s[i];
    }
    if (st == MM_OK && !kinds[0] && !kinds[1] && !kinds[2] && !kinds[3])
        st = mm_fail(MM_ERR_ARG, "--cbis-ddsm %s: no *_case_description_*_set.csv under this "
                                 "folder; put the four description CSVs of CBIS-DDSM there",
                     root_arg);
    for (int k = 0; k < 4 && st == MM_OK; k++) {
        if (!kinds[k]) {
            if (!o->quiet)
                fprintf(stderr, "mammo: warning: no %s_case_description_%s_set.csv under %s\n",
                        k >= 2 ? "calc" : "mass", k & 1 ? "test" : "train", root_arg);
            continue;
        }
        st = read_description(&c, &tables[n_tables++], kinds[k], k >= 2, k & 1);
    }
    if (st == MM_OK && c.n_rows == 0)
        st = mm_fail(MM_ERR_FORMAT, "--cbis-ddsm %s: the description CSVs hold no rows", root_arg);
    if (st == MM_OK) {
        for (int i = 0; i < c.n_rows; i++) {
            mm_strlist_add(&c.subjects, c.rows[i].img_subject);
            mm_strlist_add(&c.subjects, c.rows[i].mask_subject);
            if (c.rows[i].crop_subject[0]) mm_strlist_add(&c.subjects, c.rows[i].crop_subject);
        }
        mm_strlist_sort(&c.subjects);
        st = mm_fs_list_files(&dcm, root, ".dcm");
    }
    if (st == MM_OK) st = scan_tree(&c, &dcm, o);
    int *scratch = mm_xmalloc((size_t)(c.n_files + 1) * sizeof *scratch);
    for (int i = 0; st == MM_OK && i < c.n_rows; i++) {
        st = resolve_full(&c, &c.rows[i], scratch);
        if (st == MM_OK) st = resolve_mask(&c, &c.rows[i], scratch);
    }
    free(scratch);
    if (st == MM_OK) {
        qsort(c.rows, (size_t)c.n_rows, sizeof *c.rows, cmp_row);
        build_images(idx, &c);
        mm_index_sort(idx);
        mm_index_split_patients(idx, o->test_frac, MM_SPLIT_TEST, o->val_frac, o->official_split,
                                o->seed);
    }
    for (int t = 0; t < n_tables; t++) mm_csv_free(&tables[t]);
    mm_strlist_free(&csvs);
    mm_strlist_free(&dcm);
    cbis_free(&c);
    if (st != MM_OK) mm_index_free(idx);
    return st;
}
