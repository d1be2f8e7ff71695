/* The INbreast indexer: INbreast.csv + DICOM names + OsiriX XML ROIs -> index records and
 * rasterised masks. See indexers.h. */
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
#include "plist.h"
#include "png_io.h"
#include "raster.h"
#include "split.h"

/* One image row of INbreast.csv that is kept (BI-RADS != 3). */
typedef struct irow {
    int line;
    char file_name[32], hash[64], side, view[4], birads[8];
    int density, label;
    const char *dicom, *xml; /* paths (NULL xml: no annotations) */
    mm_dicom_info info;
    int n_types;             /* lesion types with a mask, filled by the job */
    int types[MM_ROI_TYPE_COUNT];
    int unknown_names;
} irow;

typedef struct inb {
    const char *csv_path, *stage;
    irow *rows;
    int n_rows;
    const mm_indexer_opts *o;
} inb;

/* Parses "<FileName>_<hash>_MG_<L|R>_<CC|ML|MLO>_ANON.dcm"; returns 0 if it is not such a name. */
static int parse_dicom_name(const char *base, char *file_name, size_t nf, char *hash, size_t nh,
                            char *side, char *view)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", base);
    char *part[8], *save = NULL;
    int n = 0;
    for (char *s = strtok_r(buf, "_.", &save); s && n < 8; s = strtok_r(NULL, "_.", &save))
        part[n++] = s;
    if (n < 5 || strlen(part[0]) >= nf || strlen(part[1]) >= nh || strcasecmp(part[2], "MG"))
        return 0;
    for (const char *p = part[0]; *p; p++)
        if (!isdigit((unsigned char)*p)) return 0;
    snprintf(file_name, nf, "%s", part[0]);
    snprintf(hash, nh, "%s", part[1]);
    *side = (char)toupper((unsigned char)part[3][0]);
    snprintf(view, 4, "%s", !strcasecmp(part[4], "CC") ? "CC" : "MLO");
    return (*side == 'L' || *side == 'R') && (!strcasecmp(part[4], "CC") ||
                                              !strcasecmp(part[4], "ML") ||
                                              !strcasecmp(part[4], "MLO"));
}

/* BI-RADS string -> label: 0 negative, 1 positive, -1 excluded (3), -2 unknown. */
static int birads_label(const char *b)
{
    static const char *const neg[] = {"1", "2"}, *const pos[] = {"4", "4a", "4b", "4c", "5", "6"};
    for (size_t i = 0; i < 2; i++)
        if (!strcasecmp(b, neg[i])) return 0;
    for (size_t i = 0; i < 6; i++)
        if (!strcasecmp(b, pos[i])) return 1;
    return !strcmp(b, "3") ? -1 : -2;
}

static mm_status mask_job(void *vctx, int i, int thread)
{
    (void)thread;
    inb *c = vctx;
    irow *r = &c->rows[i];
    MM_TRY(mm_dicom_read_info(r->dicom, &r->info));
    if (r->info.rows <= 0 || r->info.cols <= 0)
        return mm_fail(MM_ERR_FORMAT, "%s: no image size in the header", r->dicom);
    if (!r->xml) return MM_OK;
    mm_xml_rois rois;
    MM_TRY(mm_inbreast_xml_read(&rois, r->xml));
    const int h = r->info.rows, w = r->info.cols;
    uint8_t *masks[MM_ROI_TYPE_COUNT] = {0};
    for (int k = 0; k < rois.n; k++) {
        int t = mm_inbreast_lesion_type(rois.rois[k].name);
        if (t < 0) {
            r->unknown_names++;
            continue;
        }
        if (!masks[t]) masks[t] = mm_xcalloc((size_t)h * (size_t)w, 1);
        mm_raster_roi(masks[t], rois.rois[k].x, rois.rois[k].y, 255, c->o->point_radius,
                      rois.rois[k].n_points, h, w);
    }
    mm_xml_rois_free(&rois);
    mm_status st = MM_OK;
    for (int t = 0; t < MM_ROI_TYPE_COUNT; t++) {
        if (!masks[t]) continue;
        if (st == MM_OK) {
            char name[256], path[4400];
            snprintf(name, sizeof name, "%s_%s.png", r->file_name, mm_roi_type_name((mm_roi_type)t));
            mm_image img = {.height = h, .width = w, .bit_depth = 8, .pixels = masks[t]};
            st = mm_png_write(mm_fs_join(path, sizeof path, c->stage, name), &img);
            r->types[r->n_types++] = t;
        }
        free(masks[t]);
    }
    return st;
}

/* Finds the file named `name` (case-insensitive) anywhere under root; NULL if none. */
static const char *find_named(const mm_strlist *files, const char *name)
{
    for (int i = 0; i < files->n; i++)
        if (!strcasecmp(mm_fs_basename(files->s[i]), name)) return files->s[i];
    return NULL;
}

mm_status mm_index_inbreast(mm_index *idx, int *n_unknown_names, int *n_birads3,
                            const char *root_arg, const char *stage, const mm_indexer_opts *o)
{
    memset(idx, 0, sizeof *idx);
    *n_unknown_names = 0;
    *n_birads3 = 0;
    char root[PATH_MAX], mask_dir[PATH_MAX + 512];
    if (!mm_fs_is_dir(root_arg) || !realpath(root_arg, root))
        return mm_fail(MM_ERR_IO, "--inbreast %s: no such folder", root_arg);
    /* the final mask folder as an absolute path (it may not exist yet) */
    {
        char parent[4096], rp[PATH_MAX];
        mm_fs_dirname(parent, sizeof parent, o->mask_dir);
        if (!realpath(parent, rp))
            return mm_fail(MM_ERR_IO, "--masks %s: the folder that holds it does not exist",
                           o->mask_dir);
        snprintf(mask_dir, sizeof mask_dir, "%s/%s", rp, mm_fs_basename(o->mask_dir));
    }
    mm_strlist all = {0};
    MM_TRY(mm_fs_list_files(&all, root, NULL));
    mm_status st = MM_OK;
    mm_csv csv = {0};
    inb c = {.stage = stage, .o = o};
    c.csv_path = find_named(&all, "INbreast.csv");
    if (!c.csv_path)
        st = mm_fail(MM_ERR_ARG, "--inbreast %s: no INbreast.csv under this folder; it comes with "
                                 "the INbreast release (the .xls has the same content)", root_arg);
    if (st == MM_OK) st = mm_csv_read(&csv, c.csv_path, ';', MM_CSV_TRIM);
    int cl = -1, cv = -1, cf = -1, ca = -1, cb = -1;
    if (st == MM_OK) {
        cl = mm_csv_col(&csv, "Laterality");
        cv = mm_csv_col(&csv, "View");
        cf = mm_csv_col(&csv, "File Name");
        ca = mm_csv_col(&csv, "ACR");
        cb = mm_csv_col(&csv, "Bi-Rads");
        if (cl < 0 || cv < 0 || cf < 0 || ca < 0 || cb < 0)
            st = mm_fail(MM_ERR_FORMAT, "%s: INbreast.csv needs the columns Laterality, View, "
                                        "File Name, ACR and Bi-Rads (';'-separated)", c.csv_path);
    }
    c.rows = mm_xcalloc((size_t)(csv.n_rows ? csv.n_rows : 1), sizeof *c.rows);
    for (int i = 0; st == MM_OK && i < csv.n_rows; i++) {
        const char *fname = mm_csv_cell(&csv, i, cf), *b = mm_csv_cell(&csv, i, cb);
        int line = csv.lines[i];
        if (!fname[0]) continue; /* trailing ';;;;' lines */
        int label = birads_label(b);
        if (label == -2) {
            st = mm_fail(MM_ERR_FORMAT, "%s: line %d: Bi-Rads '%s' is not one of 1, 2, 3, 4a, 4b, "
                                        "4c, 5, 6", c.csv_path, line, b);
            break;
        }
        if (label == -1) { /* BI-RADS 3 is left out, as in the paper */
            (*n_birads3)++;
            continue;
        }
        irow *r = &c.rows[c.n_rows];
        r->line = line;
        r->label = label;
        snprintf(r->birads, sizeof r->birads, "%s", b);
        for (char *p = r->birads; *p; p++) *p = (char)tolower((unsigned char)*p);
        const char *acr = mm_csv_cell(&csv, i, ca);
        r->density = strlen(acr) == 1 && acr[0] >= '1' && acr[0] <= '4' ? acr[0] - '0' : 0;
        /* the DICOM whose name starts with "<FileName>_" */
        size_t fl = strlen(fname);
        for (int k = 0; k < all.n && !r->dicom; k++) {
            const char *base = mm_fs_basename(all.s[k]);
            if (mm_str_ends_with(base, ".dcm") && !strncmp(base, fname, fl) && base[fl] == '_')
                r->dicom = all.s[k];
        }
        char side = 0, view[4] = "";
        if (!r->dicom) {
            st = mm_fail(MM_ERR_FORMAT, "%s: line %d: no DICOM named %s_*.dcm under %s", c.csv_path,
                         line, fname, root_arg);
        } else if (!parse_dicom_name(mm_fs_basename(r->dicom), r->file_name, sizeof r->file_name,
                                     r->hash, sizeof r->hash, &side, view)) {
            st = mm_fail(MM_ERR_FORMAT, "%s: the name is not <FileName>_<patient>_MG_<L|R>_<CC|ML>"
                                        "_ANON.dcm", r->dicom);
        } else {
            const char *lat = mm_csv_cell(&csv, i, cl), *vw = mm_csv_cell(&csv, i, cv);
            r->side = (char)toupper((unsigned char)lat[0]);
            snprintf(r->view, sizeof r->view, "%s", !strcasecmp(vw, "CC") ? "CC" : "MLO");
            if ((r->side != 'L' && r->side != 'R') || lat[1] ||
                (strcasecmp(vw, "CC") && strcasecmp(vw, "MLO") && strcasecmp(vw, "ML")))
                st = mm_fail(MM_ERR_FORMAT, "%s: line %d: Laterality '%s' / View '%s' should be "
                                            "L or R / CC or MLO", c.csv_path, line, lat, vw);
            else if (r->side != side || strcmp(r->view, view))
                st = mm_fail(MM_ERR_FORMAT, "%s: line %d: the CSV says %c %s but the DICOM name "
                                            "%s says %c %s", c.csv_path, line, r->side, r->view,
                             mm_fs_basename(r->dicom), side, view);
        }
        char xml_name[64];
        snprintf(xml_name, sizeof xml_name, "%s.xml", fname);
        r->xml = find_named(&all, xml_name);
        c.n_rows++;
    }
    if (st == MM_OK && c.n_rows == 0)
        st = mm_fail(MM_ERR_FORMAT, "%s: no images with BI-RADS 1, 2, 4a-c, 5 or 6", c.csv_path);
    for (int i = 0; st == MM_OK && i < c.n_rows; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(c.rows[i].file_name, c.rows[j].file_name)) {
                st = mm_fail(MM_ERR_FORMAT, "%s: lines %d and %d name the same File Name %s",
                             c.csv_path, c.rows[j].line, c.rows[i].line, c.rows[i].file_name);
                break;
            }
    if (st == MM_OK) st = mm_fs_mkdirs(stage);
    mm_inbreast_xml_init(); /* before the mask jobs parse XML from several threads */
    if (st == MM_OK)
        st = mm_parallel_for(c.n_rows, o->threads, mask_job, &c, o->quiet ? NULL : "index: masks");
    for (int i = 0; st == MM_OK && i < c.n_rows; i++) {
        irow *r = &c.rows[i];
        *n_unknown_names += r->unknown_names;
        mm_index_image *im = mm_index_add(idx);
        im->image_id = mm_xstrdup(r->file_name);
        im->dataset = mm_xstrdup("inbreast");
        im->patient_id = mm_xstrdup(r->hash);
        im->side = r->side;
        snprintf(im->view, sizeof im->view, "%s", r->view);
        im->label = r->label;
        im->height = r->info.rows;
        im->width = r->info.cols;
        im->density = r->density;
        snprintf(im->birads, sizeof im->birads, "%s", r->birads);
        im->source = mm_xstrdup(r->dicom);
        im->image = mm_xstrdup(r->dicom);
        for (int k = 0; k < r->n_types; k++) {
            mm_roi *roi = mm_index_add_roi(im);
            char path[PATH_MAX + 1024];
            roi->id = k + 1;
            roi->type = (mm_roi_type)r->types[k];
            roi->pathology = MM_PATH_UNKNOWN;
            snprintf(path, sizeof path, "%s/%s_%s.png", mask_dir, r->file_name,
                     mm_roi_type_name(roi->type));
            roi->mask = mm_xstrdup(path);
        }
    }
    if (st == MM_OK) {
        mm_index_sort(idx);
        mm_index_split_patients(idx, o->test_frac, MM_SPLIT_VAL, 0, 0, o->seed);
        if (o->subset_patients > 0) st = mm_index_subset_train(idx, o->subset_patients, o->seed);
    }
    free(c.rows);
    mm_csv_free(&csv);
    mm_strlist_free(&all);
    if (st != MM_OK) mm_index_free(idx);
    return st;
}
