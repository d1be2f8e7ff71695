/* Small CBIS-DDSM and INbreast download trees for the data tests, written with mm_dicom_write and
 * carrying the real datasets' quirks (tools/indexers.h, notes/data-formats.md):
 *
 * CBIS-DDSM (tree_cbis): the new retriever layout with one ROI in two series folders, one with
 * mask and crop in one series as 1-1.dcm/1-2.dcm in both orders (the swap), one old-layout
 * subject (000000.dcm), a mass CSV with "breast_density" and a calc CSV with "breast density",
 * a quoted path with a newline inside the quotes, an image with two abnormalities (one malignant),
 * one view listed in both the mass and the calc CSV (two DICOM copies), BENIGN_WITHOUT_CALLBACK,
 * a full image whose header series UID differs from the CSV's (found as the subject's only file),
 * one found only through metadata.csv, and test-set CSVs.
 *
 * INbreast (tree_inbreast): INbreast.csv with ';', a blank padded ACR, 4a/4c/5/6 and a BI-RADS 3
 * image, DICOM names with ML for MLO, plist XMLs with a one-point ROI, polygons, typo'd names
 * (Calcifications, Assymetry, Espiculated Region), an unknown name, and an image without XML.
 *
 * Also: running the mammo binary, and file helpers. Header-only (static functions): each test
 * executable includes it. */
#ifndef MM_DATA_TREES_H
#define MM_DATA_TREES_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "kernels/philox.h"
#include "tests/harness.h"
#include "tests/run_mammo.h"
#include "tools/dicom.h"
#include "tools/fs.h"

#define TREE_H 64 /* full image rows */
#define TREE_W 48 /* full image columns */

static inline void write_text(const char *path, const char *text)
{
    char dir[4096];
    mm_fs_mkdirs(mm_fs_dirname(dir, sizeof dir, path));
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static inline long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* Counts files under dir whose name contains `needle` (temporary files left behind). */
static inline int count_files_containing(const char *dir, const char *needle)
{
    mm_strlist l;
    if (mm_fs_list_files(&l, dir, NULL) != MM_OK) return 0;
    int n = 0;
    for (int i = 0; i < l.n; i++) n += strstr(mm_fs_basename(l.s[i]), needle) != NULL;
    mm_strlist_free(&l);
    return n;
}

/* A breast-like 16-bit image: a bright half-ellipse against the left or right edge, 0 outside. */
static inline uint16_t *tree_breast(int h, int w, int right, uint64_t seed)
{
    uint16_t *p = calloc((size_t)h * (size_t)w, sizeof *p);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double dx = (right ? w - 1 - x : x) / (0.8 * w), dy = (y - h / 2.0) / (0.45 * h);
            if (dx * dx + dy * dy < 1)
                p[y * w + x] = (uint16_t)(20000 + 20000 * mm_philox_uniform(seed, (uint64_t)(y * w + x)));
        }
    return p;
}

/* An 8-bit 0/255 mask with a filled box [y0, y1) x [x0, x1). */
static inline uint8_t *tree_box(int h, int w, int y0, int x0, int y1, int x1)
{
    uint8_t *m = calloc((size_t)h * (size_t)w, 1);
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) m[y * w + x] = 255;
    return m;
}

static inline int tree_dicom(const char *path, const void *px, int h, int w, int bits, const char *patient,
                      const char *series_uid, const char *desc)
{
    char dir[4096];
    mm_fs_mkdirs(mm_fs_dirname(dir, sizeof dir, path));
    mm_dicom_write_opts o = {.bits_allocated = bits, .bits_stored = bits, .patient_id = patient,
                             .series_uid = series_uid, .study_uid = "1.2.826.0.1.3680043.2.1125.9",
                             .series_description = desc};
    mm_status st = mm_dicom_write(path, px, h, w, &o);
    if (st != MM_OK) printf("    tree_dicom %s: %s\n", path, mm_last_error());
    return st == MM_OK;
}

/* ---- CBIS-DDSM ---- */

#define UIDP "1.2.826.0.1.3680043.2.1125."

/* One abnormality for the tree: which image (subject), its ROI layout and labels. */
typedef struct tree_abn {
    const char *coll;       /* "Mass-Training", "Calc-Test", ... */
    const char *patient, *side, *view;
    int abn;
    const char *pathology;
    int layout;             /* 0: two series folders, 1: one series 1-1 mask/1-2 crop, 2: swapped,
                               3: old layout 000000 crop / 000001 mask */
    int box[4];             /* mask box y0 x0 y1 x1 */
} tree_abn;

static const tree_abn cbis_abns[] = {
    {"Mass-Training", "P_00001", "LEFT", "CC", 1, "MALIGNANT", 0, {10, 5, 20, 15}},
    {"Mass-Training", "P_00001", "LEFT", "MLO", 1, "MALIGNANT", 1, {30, 8, 40, 20}},
    {"Mass-Training", "P_00002", "RIGHT", "CC", 1, "BENIGN", 2, {12, 30, 22, 40}},
    {"Mass-Training", "P_00002", "RIGHT", "CC", 2, "MALIGNANT", 0, {40, 28, 50, 38}},
    {"Mass-Training", "P_00003", "LEFT", "MLO", 1, "BENIGN", 3, {20, 4, 28, 12}},
    {"Calc-Training", "P_00003", "LEFT", "MLO", 1, "BENIGN_WITHOUT_CALLBACK", 0, {44, 6, 50, 14}},
    {"Calc-Training", "P_00004", "RIGHT", "CC", 1, "BENIGN", 1, {8, 30, 16, 44}},
    {"Calc-Training", "P_00005", "LEFT", "CC", 1, "MALIGNANT", 2, {25, 2, 35, 12}},
    {"Calc-Training", "P_00006", "RIGHT", "MLO", 1, "BENIGN", 0, {30, 30, 38, 40}},
    {"Mass-Test", "P_00007", "LEFT", "CC", 1, "BENIGN", 0, {15, 5, 25, 15}},
    {"Calc-Test", "P_00008", "RIGHT", "CC", 1, "MALIGNANT", 0, {15, 30, 25, 42}},
    {"Mass-Training", "P_00009", "LEFT", "CC", 1, "BENIGN", 0, {10, 10, 20, 20}},
    {"Mass-Training", "P_00010", "RIGHT", "MLO", 1, "MALIGNANT", 0, {10, 30, 20, 40}},
};
#define CBIS_N_ABNS ((int)(sizeof cbis_abns / sizeof cbis_abns[0]))
/* images: P1 L CC, P1 L MLO, P2 R CC (2 ROIs), P3 L MLO (mass+calc), P4 R CC, P5 L CC, P6 R MLO,
 * P7 L CC, P8 R CC, P9 L CC, P10 R MLO */
#define CBIS_N_IMAGES 11
#define CBIS_N_MALIGNANT 6 /* P1 CC, P1 MLO, P2 CC, P5, P8, P10 */

/* Subject of abnormality i's full image ("Mass-Training_P_00001_LEFT_CC"). */
static inline void cbis_subject(char *out, size_t n, const tree_abn *a, int roi)
{
    if (roi)
        snprintf(out, n, "%s_%s_%s_%s_%d", a->coll, a->patient, a->side, a->view, a->abn);
    else
        snprintf(out, n, "%s_%s_%s_%s", a->coll, a->patient, a->side, a->view);
}

/* Builds the tree under root/CBIS-DDSM and the CSVs under root; returns 1 on success.
 * full_paths[i] receives the full-image DICOM path of abnormality i, mask_paths[i] its mask. */
static inline int tree_cbis(const char *root, char full_paths[][1024], char mask_paths[][1024])
{
    char path[1024], subj[256], roi_subj[256], csv_row[2048];
    char *csv_text[4] = {0}; /* mass train, mass test, calc train, calc test */
    size_t csv_len[4] = {0};
    static const char *const mass_header =
        "patient_id,breast_density,left or right breast,image view,abnormality id,abnormality "
        "type,mass shape,mass margins,assessment,pathology,subtlety,image file path,cropped image "
        "file path,ROI mask file path\n";
    static const char *const calc_header =
        "patient_id,breast density,left or right breast,image view,abnormality id,abnormality "
        "type,calc type,calc distribution,assessment,pathology,subtlety,image file path,cropped "
        "image file path,ROI mask file path\n";
    char meta[8192];
    snprintf(meta, sizeof meta,
             "Series UID,Collection,3rd Party Analysis,Data Description URI,Subject ID,Study UID,"
             "Study Description,Study Date,Series Description,Manufacturer,Modality,SOP Class Name,"
             "SOP Class UID,Number of Images,File Size,File Location,Download Timestamp\n");
    int ok = 1;
    for (int i = 0; i < CBIS_N_ABNS && ok; i++) {
        const tree_abn *a = &cbis_abns[i];
        int calc = a->coll[0] == 'C', test = strstr(a->coll, "Test") != NULL;
        cbis_subject(subj, sizeof subj, a, 0);
        cbis_subject(roi_subj, sizeof roi_subj, a, 1);
        int right = a->side[0] == 'R';
        /* the full image: written once per subject (two abnormalities can share it) */
        char full_uid[96], full_csv_uid[96];
        snprintf(full_uid, sizeof full_uid, UIDP "%d.1", 100 + i);
        snprintf(full_csv_uid, sizeof full_csv_uid, "%s", full_uid);
        int first = 1;
        for (int j = 0; j < i; j++) {
            char s2[256];
            cbis_subject(s2, sizeof s2, &cbis_abns[j], 0);
            if (!strcmp(s2, subj)) {
                first = 0;
                snprintf(full_uid, sizeof full_uid, UIDP "%d.1", 100 + j);
                snprintf(full_csv_uid, sizeof full_csv_uid, "%s", full_uid);
                memcpy(full_paths[i], full_paths[j], sizeof full_paths[i]);
            }
        }
        if (first) {
            if (!strcmp(a->patient, "P_00009")) /* the CSV names a stale series UID */
                snprintf(full_csv_uid, sizeof full_csv_uid, UIDP "999.9");
            if (a->layout == 3)
                snprintf(full_paths[i], 1024, "%s/CBIS-DDSM/%s/07-20-2016-DDSM-74994/"
                         "1-full mammogram images-24515/000000.dcm", root, subj);
            else
                snprintf(full_paths[i], 1024, "%s/CBIS-DDSM/%s/07-20-2016-DDSM-NA-7499%d/"
                         "1.000000-full mammogram images-2451%d/1-1.dcm", root, subj, i % 10, i % 10);
            uint16_t *px = tree_breast(TREE_H, TREE_W, right, (uint64_t)i);
            ok &= tree_dicom(full_paths[i], px, TREE_H, TREE_W, 16, subj, full_uid,
                             "full mammogram images");
            free(px);
            if (!strcmp(a->patient, "P_00010")) {
                /* a second, unrelated file under the subject and a full image found via
                 * metadata.csv only (its header series UID differs from the CSV's) */
                snprintf(full_csv_uid, sizeof full_csv_uid, UIDP "777.7");
                char extra[1024];
                snprintf(extra, sizeof extra, "%s/CBIS-DDSM/%s/07-20-2016-DDSM-NA-1/"
                         "1.000000-other-1/1-1.dcm", root, subj);
                uint16_t *e = tree_breast(TREE_H, TREE_W, right, 77);
                ok &= tree_dicom(extra, e, TREE_H, TREE_W, 16, subj, UIDP "778.1", "other");
                free(e);
                char loc[1024], d[1024];
                mm_fs_dirname(d, sizeof d, full_paths[i]);
                snprintf(loc, sizeof loc, "./%s", d + strlen(root) + 1);
                size_t m = strlen(meta);
                snprintf(meta + m, sizeof meta - m,
                         "%s,CBIS-DDSM,NO,,%s,1.2.3,,07-20-2016,full mammogram images,,MG,"
                         "Secondary Capture Image Storage,1.2.840.10008.5.1.4.1.1.7,1,1 MB,%s,"
                         "2023-01-01\n",
                         full_csv_uid, subj, loc);
            }
        }
        /* the ROI mask (full size, 8-bit) and the crop (small, 16-bit) */
        uint8_t *mask = tree_box(TREE_H, TREE_W, a->box[0], a->box[1], a->box[2], a->box[3]);
        uint16_t *crop = tree_breast(12, 10, 0, 1000 + (uint64_t)i);
        char mask_uid[96], crop_uid[96], crop_path[1024];
        snprintf(mask_uid, sizeof mask_uid, UIDP "%d.2", 100 + i);
        snprintf(crop_uid, sizeof crop_uid, UIDP "%d.3", 100 + i);
        char base[512];
        snprintf(base, sizeof base, "%s/CBIS-DDSM/%s/07-21-2016-DDSM-NA-3%d", root, roi_subj, i);
        if (a->layout == 0) {
            snprintf(mask_paths[i], 1024, "%s/1.000000-ROI mask images-1%d/1-1.dcm", base, i);
            snprintf(crop_path, sizeof crop_path, "%s/1.000000-cropped images-2%d/1-1.dcm", base, i);
            ok &= tree_dicom(mask_paths[i], mask, TREE_H, TREE_W, 8, roi_subj, mask_uid, "ROI mask images");
            ok &= tree_dicom(crop_path, crop, 12, 10, 16, roi_subj, crop_uid, "cropped images");
        } else if (a->layout == 3) {
            snprintf(base, sizeof base, "%s/CBIS-DDSM/%s/07-21-2016-DDSM-3%d", root, roi_subj, i);
            snprintf(mask_paths[i], 1024, "%s/1-ROI mask images-1%d/000001.dcm", base, i);
            snprintf(crop_path, sizeof crop_path, "%s/1-ROI mask images-1%d/000000.dcm", base, i);
            snprintf(crop_uid, sizeof crop_uid, "%s", mask_uid);
            ok &= tree_dicom(mask_paths[i], mask, TREE_H, TREE_W, 8, roi_subj, mask_uid, "ROI mask images");
            ok &= tree_dicom(crop_path, crop, 12, 10, 16, roi_subj, mask_uid, "ROI mask images");
        } else {
            /* one series holds both; layout 2 swaps which of 1-1/1-2 is the mask */
            snprintf(crop_uid, sizeof crop_uid, "%s", mask_uid);
            snprintf(mask_paths[i], 1024, "%s/1.000000-ROI mask images-1%d/1-%d.dcm", base, i,
                     a->layout == 1 ? 1 : 2);
            snprintf(crop_path, sizeof crop_path, "%s/1.000000-ROI mask images-1%d/1-%d.dcm", base,
                     i, a->layout == 1 ? 2 : 1);
            ok &= tree_dicom(mask_paths[i], mask, TREE_H, TREE_W, 8, roi_subj, mask_uid, "ROI mask images");
            ok &= tree_dicom(crop_path, crop, 12, 10, 16, roi_subj, mask_uid, "ROI mask images");
        }
        free(mask);
        free(crop);
        /* the CSV row: paths in the CSV's own (non-matching) naming; the crop/mask file names
         * swapped as in the real CSVs; one path with a newline inside its quotes */
        int k = calc * 2 + test;
        const char *quirk = i == 2 ? "\n" : "";
        snprintf(csv_row, sizeof csv_row,
                 "%s,%d,%s,%s,%d,%s,%s,%s,%d,%s,3,%s/1.3.6.1.4.1.9590.100.1.2.%d/%s/000000.dcm,"
                 "\"%s/1.3.6.1.4.1.9590.100.1.2.%d/%s/000001.dcm%s\",\"%s/1.3.6.1.4.1.9590.100.1.2.%d/%s/000000.dcm%s\"\n",
                 a->patient, 1 + i % 4, a->side, a->view, a->abn, calc ? "calcification" : "mass",
                 calc ? "PLEOMORPHIC" : "IRREGULAR-ARCHITECTURAL_DISTORTION",
                 calc ? "CLUSTERED" : "SPICULATED", 3 + i % 3, a->pathology, subj, i, full_csv_uid,
                 roi_subj, i, crop_uid, quirk, roi_subj, i, mask_uid, quirk);
        size_t add = strlen(csv_row);
        csv_text[k] = realloc(csv_text[k], csv_len[k] + add + 1);
        memcpy(csv_text[k] + csv_len[k], csv_row, add + 1);
        csv_len[k] += add;
    }
    static const char *const names[4] = {
        "mass_case_description_train_set.csv", "mass_case_description_test_set.csv",
        "calc_case_description_train_set.csv", "calc_case_description_test_set.csv"};
    for (int k = 0; k < 4; k++) {
        snprintf(path, sizeof path, "%s/%s", root, names[k]);
        char *text = malloc(csv_len[k] + 1024);
        snprintf(text, csv_len[k] + 1024, "%s%s", k < 2 ? mass_header : calc_header,
                 csv_text[k] ? csv_text[k] : "");
        write_text(path, text);
        free(text);
        free(csv_text[k]);
    }
    snprintf(path, sizeof path, "%s/metadata.csv", root);
    write_text(path, meta);
    return ok;
}

/* ---- INbreast ---- */

typedef struct tree_inb {
    const char *file_name, *hash, *side, *view, *acr, *birads;
    int xml; /* 0 none, 1 point + polygon, 2 typo'd names, 3 unknown name + asymmetry */
} tree_inb;

static const tree_inb inb_images[] = {
    {"20586908", "6c613a14b80a8591", "R", "CC", "2", "1", 0},
    {"20586934", "6c613a14b80a8591", "R", "MLO", "2", "1", 0},
    {"20586960", "6c613a14b80a8591", "L", "CC", "  ", "4a", 1},
    {"20586986", "6c613a14b80a8591", "L", "MLO", "  ", "4a", 2},
    {"22678622", "a1b2c3d4e5f60718", "R", "CC", "1", "2", 3},
    {"22678646", "a1b2c3d4e5f60718", "R", "MLO", "1", "3", 1},
    {"22678670", "0f1e2d3c4b5a6978", "L", "CC", "3", "5", 1},
    {"22678694", "0f1e2d3c4b5a6978", "L", "MLO", "3", "6", 0},
    {"24055274", "1122334455667788", "R", "CC", "4", "2", 0},
    {"24055298", "1122334455667788", "R", "MLO", "4", "1", 0},
    {"24055322", "99aabbccddeeff00", "L", "CC", "2", "4c", 2},
    {"24055346", "99aabbccddeeff00", "L", "MLO", "2", "4b", 0},
    {"24065530", "abcdefabcdefabcd", "R", "CC", "1", "1", 0},
    {"24065584", "abcdefabcdefabcd", "R", "MLO", "1", "2", 0},
    {"24065602", "0000111122223333", "L", "CC", "2", "2", 0},
    {"24065626", "0000111122223333", "L", "MLO", "2", "1", 0},
    {"24065650", "4444555566667777", "R", "CC", "3", "5", 1},
    {"24065674", "4444555566667777", "R", "MLO", "3", "5", 0},
    {"24065698", "8888999900001111", "L", "CC", "1", "1", 0},
    {"24065722", "8888999900001111", "L", "MLO", "1", "1", 0},
};
#define INB_N ((int)(sizeof inb_images / sizeof inb_images[0]))
#define INB_N_KEPT (INB_N - 1) /* one BI-RADS 3 */
#define INB_N_PATIENTS 9
#define INB_H 60
#define INB_W 50

static const char *const inb_xml_head =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple Computer//DTD "
    "PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<plist version=\"1.0\">"
    "\n<dict>\n\t<key>Images</key>\n\t<array>\n\t\t<dict>\n\t\t\t<key>ImageIndex</key>\n\t\t\t"
    "<integer>0</integer>\n\t\t\t<key>NumberOfROIs</key>\n\t\t\t<integer>2</integer>\n\t\t\t"
    "<key>ROIs</key>\n\t\t\t<array>\n";
static const char *const inb_xml_tail = "\t\t\t</array>\n\t\t</dict>\n\t</array>\n</dict>\n</plist>\n";

static inline void xml_roi(char *buf, size_t n, const char *name, const double *xy, int np)
{
    size_t m = strlen(buf);
    m += (size_t)snprintf(buf + m, n - m,
                          "\t\t\t\t<dict>\n\t\t\t\t\t<key>Area</key>\n\t\t\t\t\t<real>0</real>\n"
                          "\t\t\t\t\t<key>Name</key>\n\t\t\t\t\t<string>%s</string>\n\t\t\t\t\t"
                          "<key>NumberOfPoints</key>\n\t\t\t\t\t<integer>%d</integer>\n\t\t\t\t\t"
                          "<key>Point_px</key>\n\t\t\t\t\t<array>\n",
                          name, np);
    for (int i = 0; i < np; i++)
        m += (size_t)snprintf(buf + m, n - m, "\t\t\t\t\t\t<string>(%.3f, %.3f)</string>\n",
                              xy[2 * i], xy[2 * i + 1]);
    snprintf(buf + m, n - m, "\t\t\t\t\t</array>\n\t\t\t\t</dict>\n");
}

/* The ROIs of an XML kind as (name, points) for the test's own reference rasterisation. */
static const double inb_point[2] = {20.25, 30.5};
static const double inb_poly[10] = {5.5, 5.5, 25.2, 6.1, 30.7, 20.4, 12.3, 28.8, 2.0, 15.5};
static const double inb_poly_out[8] = {35.0, 40.0, 70.0, 42.0, 60.0, 75.0, 38.0, 58.0}; /* clipped */

static inline int tree_inbreast(const char *root)
{
    char path[1024], csv[8192];
    snprintf(csv, sizeof csv, "Patient ID;Patient age;Laterality;View;Acquisition date;File Name;ACR;Bi-Rads\n");
    int ok = 1;
    for (int i = 0; i < INB_N; i++) {
        const tree_inb *t = &inb_images[i];
        size_t m = strlen(csv);
        snprintf(csv + m, sizeof csv - m, "removed;removed;%s;%s;201001;%s;%s;%s\n", t->side,
                 t->view, t->file_name, t->acr, t->birads);
        snprintf(path, sizeof path, "%s/INbreast Release 1.0/AllDICOMs/%s_%s_MG_%s_%s_ANON.dcm",
                 root, t->file_name, t->hash, t->side, !strcmp(t->view, "CC") ? "CC" : "ML");
        uint16_t *px = tree_breast(INB_H, INB_W, t->side[0] == 'R', 500 + (uint64_t)i);
        for (int k = 0; k < INB_H * INB_W; k++) px[k] >>= 2; /* 14-bit data */
        char dir[1024];
        mm_fs_mkdirs(mm_fs_dirname(dir, sizeof dir, path));
        mm_dicom_write_opts o = {.bits_allocated = 16, .bits_stored = 14, .patient_id = "removed",
                                 .laterality = t->side, .view = t->view,
                                 .sop_class_uid = MM_DICOM_SOP_MAMMO_PRESENTATION, .modality = "MG"};
        if (mm_dicom_write(path, px, INB_H, INB_W, &o) != MM_OK) {
            printf("    tree_inbreast %s: %s\n", path, mm_last_error());
            ok = 0;
        }
        free(px);
        if (!t->xml) continue;
        char xml[16384];
        snprintf(xml, sizeof xml, "%s", inb_xml_head);
        if (t->xml == 1) {
            xml_roi(xml, sizeof xml, "Calcification", inb_point, 1);
            xml_roi(xml, sizeof xml, "Mass", inb_poly, 5);
        } else if (t->xml == 2) {
            xml_roi(xml, sizeof xml, "Calcifications", inb_point, 1);
            xml_roi(xml, sizeof xml, "Espiculated Region", inb_poly_out, 4);
        } else {
            xml_roi(xml, sizeof xml, "Assymetry", inb_poly, 5);
            xml_roi(xml, sizeof xml, "Nodule", inb_point, 1);
        }
        size_t m2 = strlen(xml);
        snprintf(xml + m2, sizeof xml - m2, "%s", inb_xml_tail);
        snprintf(path, sizeof path, "%s/INbreast Release 1.0/AllXML/%s.xml", root, t->file_name);
        write_text(path, xml);
    }
    snprintf(path, sizeof path, "%s/INbreast Release 1.0/INbreast.csv", root);
    write_text(path, csv);
    return ok;
}

#endif
