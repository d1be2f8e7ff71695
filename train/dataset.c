/* Training data for the trainer: see dataset.h. */
#include "dataset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tools/csv.h"

static void push(mm_dataset *d, int *cap, const char *path, int label)
{
    if (d->n == *cap) {
        *cap = *cap ? 2 * *cap : 256;
        d->items = mm_xrealloc(d->items, (size_t)*cap * sizeof *d->items);
    }
    mm_loader_item *it = &d->items[d->n++];
    memset(it, 0, sizeof *it);
    it->path = mm_xstrdup(path);
    it->label = label;
    it->weight = 1.0f;
    if (label >= 0 && label < 8) d->class_count[label]++;
}

static bool ends_with_png(const char *s)
{
    size_t n = strlen(s);
    return n >= 4 && (!strcmp(s + n - 4, ".png") || !strcmp(s + n - 4, ".PNG"));
}

mm_status mm_dataset_from_index(mm_dataset *d, const char *index_path, mm_split split,
                                int subset_patients)
{
    memset(d, 0, sizeof *d);
    d->n_classes = 2;
    mm_index idx;
    MM_TRY(mm_index_read(&idx, index_path));
    mm_status st = MM_OK;
    int cap = 0, n_chosen = 0;
    const char **picked = subset_patients > 0 ? mm_xcalloc((size_t)subset_patients, sizeof *picked) : NULL;
    char path[4096];
    for (int i = 0; i < idx.n && st == MM_OK; i++) {
        const mm_index_image *im = &idx.images[i];
        if (im->split != split) continue;
        if (!ends_with_png(im->image)) {
            st = mm_fail(MM_ERR_ARG,
                         "%s: image %s is not a PNG (%s); run 'mammo prep' on the index first and "
                         "train on the index it writes",
                         index_path, im->image_id, im->image);
            break;
        }
        if (subset_patients > 0) { /* the first subset_patients patients of the split */
            bool chosen = false;
            for (int k = 0; k < n_chosen && !chosen; k++) chosen = !strcmp(picked[k], im->patient_id);
            if (!chosen) {
                if (n_chosen == subset_patients) continue;
                picked[n_chosen++] = im->patient_id;
            }
        }
        push(d, &cap, mm_index_path(path, sizeof path, &idx, im->image), im->label);
    }
    free(picked);
    mm_index_free(&idx);
    if (st == MM_OK && d->n == 0)
        st = mm_fail(MM_ERR_ARG, "%s: no images in the %s split", index_path, mm_split_name(split));
    if (st != MM_OK) mm_dataset_free(d);
    return st;
}

mm_status mm_dataset_from_patches(mm_dataset *d, const char *csv_path, const char *split)
{
    memset(d, 0, sizeof *d);
    d->n_classes = 5;
    mm_csv csv;
    MM_TRY(mm_csv_read(&csv, csv_path, ',', MM_CSV_TRIM));
    int c_path = mm_csv_col(&csv, "path"), c_split = mm_csv_col(&csv, "split");
    int c_label = mm_csv_col(&csv, "label");
    mm_status st = MM_OK;
    if (c_path < 0 || c_split < 0 || c_label < 0)
        st = mm_fail(MM_ERR_FORMAT,
                     "%s: not a patch list (needs columns path, split and label); pass the "
                     "patches.csv that 'mammo patches' wrote",
                     csv_path);
    /* paths are relative to the CSV's folder */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", csv_path);
    char *slash = strrchr(dir, '/');
    if (slash) slash[1] = '\0';
    else dir[0] = '\0';
    int cap = 0;
    char path[8192];
    for (int r = 0; r < csv.n_rows && st == MM_OK; r++) {
        const char *const *row = (const char *const *)csv.cells + (size_t)r * csv.n_cols;
        if (strcmp(row[c_split], split) != 0) continue;
        char *end;
        long label = strtol(row[c_label], &end, 10);
        if (*row[c_label] == '\0' || *end || label < 0 || label > 4) {
            st = mm_fail(MM_ERR_FORMAT, "%s:%d: label '%s' is not a class 0..4", csv_path,
                         csv.lines[r], row[c_label]);
            break;
        }
        if (row[c_path][0] == '/') snprintf(path, sizeof path, "%s", row[c_path]);
        else snprintf(path, sizeof path, "%s%s", dir, row[c_path]);
        push(d, &cap, path, (int)label);
    }
    mm_csv_free(&csv);
    if (st == MM_OK && d->n == 0)
        st = mm_fail(MM_ERR_ARG, "%s: no patches in the %s split", csv_path, split);
    if (st != MM_OK) mm_dataset_free(d);
    return st;
}

void mm_dataset_free(mm_dataset *d)
{
    for (int i = 0; i < d->n; i++) free((char *)d->items[i].path);
    free(d->items);
    memset(d, 0, sizeof *d);
}
