/* The dataset indexers end to end on small synthetic trees with the real quirks
 * (tests/data_trees.h): CBIS-DDSM and INbreast records, labels, ROIs, masks and splits, the
 * `mammo index` command and its summary line, and corrupted copies that must fail with exit
 * status 1, a clear message, and no output left behind. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/data_trees.h"
#include "tests/harness.h"
#include "tools/index.h"
#include "tools/indexers.h"
#include "tools/png_io.h"
#include "tools/raster.h"

#ifndef MM_HAVE_DICOM
#define NEED_DICOM() MM_SKIP("no DICOM support in this build")
#else
#define NEED_DICOM() ((void)0)
#endif
#ifndef MM_HAVE_LIBXML2
#define NEED_XML() MM_SKIP("no libxml2 in this build")
#else
#define NEED_XML() ((void)0)
#endif

static char full_paths[CBIS_N_ABNS][1024], mask_paths[CBIS_N_ABNS][1024];

static const mm_index_image *find_image(const mm_index *idx, const char *id)
{
    for (int i = 0; i < idx->n; i++)
        if (!strcmp(idx->images[i].image_id, id)) return &idx->images[i];
    return NULL;
}

static int cbis_tree(char *root, size_t n)
{
    snprintf(root, n, "%s/cbis", mm_test_tmpdir());
    return tree_cbis(root, full_paths, mask_paths);
}

/* The absolute form of a tree path (the indexer stores realpath()s). */
static const char *real(const char *p)
{
    static char r[4096];
    return realpath(p, r) ? r : p;
}

MM_TEST(cbis_index_records)
{
    NEED_DICOM();
    char root[600];
    CHECK(cbis_tree(root, sizeof root));
    mm_indexer_opts o;
    mm_indexer_opts_default(&o);
    o.quiet = true;
    mm_index idx;
    mm_status st = mm_index_cbis_ddsm(&idx, root, &o);
    CHECK_MSG(st == MM_OK, "%s", mm_last_error());
    if (st != MM_OK) return;
    CHECK_EQ_INT(idx.n, CBIS_N_IMAGES);
    mm_index_counts c;
    mm_index_count(&c, &idx);
    CHECK_EQ_INT(c.malignant, CBIS_N_MALIGNANT);
    CHECK_EQ_INT(c.patients, 10);
    CHECK_EQ_INT(c.rois, CBIS_N_ABNS);
    /* every abnormality's ROI points at its mask, never at the crop, whatever the layout */
    for (int i = 0; i < CBIS_N_ABNS; i++) {
        const tree_abn *a = &cbis_abns[i];
        char id[64];
        snprintf(id, sizeof id, "%s_%s_%s", a->patient, a->side, a->view);
        const mm_index_image *im = find_image(&idx, id);
        CHECK_MSG(im != NULL, "no image %s", id);
        if (!im) continue;
        int found = 0;
        for (int k = 0; k < im->n_rois; k++)
            if (!strcmp(im->rois[k].mask, real(mask_paths[i]))) {
                found = 1;
                CHECK_EQ_INT(im->rois[k].id, a->abn);
                CHECK_EQ_INT(im->rois[k].type, a->coll[0] == 'C' ? MM_ROI_CALC : MM_ROI_MASS);
                CHECK(!strcmp(mm_pathology_name(im->rois[k].pathology), a->pathology));
            }
        CHECK_MSG(found, "abnormality %d (%s): mask %s not in the record", i, id, mask_paths[i]);
        CHECK_EQ_INT(im->height, TREE_H);
        CHECK_EQ_INT(im->width, TREE_W);
        CHECK(!strcmp(im->patient_id, a->patient));
        CHECK_EQ_INT(im->side, a->side[0]);
        CHECK(!strcmp(im->view, a->view));
    }
    /* the multi-abnormality image: malignant because one of its two ROIs is */
    const mm_index_image *p2 = find_image(&idx, "P_00002_RIGHT_CC");
    CHECK(p2 && p2->n_rois == 2 && p2->label == 1);
    /* the view listed in both collections: one record, the Calc copy (first subject), benign */
    const mm_index_image *p3 = find_image(&idx, "P_00003_LEFT_MLO");
    CHECK(p3 && p3->n_rois == 2 && p3->label == 0);
    CHECK(p3 && strstr(p3->image, "/Calc-Training_P_00003_LEFT_MLO/") != NULL);
    /* a stale CSV series UID (the subject's only file) and one found through metadata.csv */
    const mm_index_image *p9 = find_image(&idx, "P_00009_LEFT_CC");
    const mm_index_image *p10 = find_image(&idx, "P_00010_RIGHT_MLO");
    CHECK(p9 && !strcmp(p9->image, real(full_paths[11])));
    CHECK(p10 && !strcmp(p10->image, real(full_paths[12])));
    /* density (both spellings) and the highest assessment */
    const mm_index_image *p4 = find_image(&idx, "P_00004_RIGHT_CC");
    CHECK(p4 && p4->density == 1 + 6 % 4 && !strcmp(p4->birads, "3"));
    mm_index_free(&idx);
}

MM_TEST(cbis_splits_paper_and_official)
{
    NEED_DICOM();
    char root[600];
    CHECK(cbis_tree(root, sizeof root));
    mm_indexer_opts o;
    mm_indexer_opts_default(&o);
    o.quiet = true;
    o.official_split = true;
    mm_index idx;
    CHECK(mm_index_cbis_ddsm(&idx, root, &o) == MM_OK);
    for (int i = 0; i < idx.n; i++) {
        int test = !strcmp(idx.images[i].patient_id, "P_00007") ||
                   !strcmp(idx.images[i].patient_id, "P_00008");
        CHECK_EQ_INT(idx.images[i].split == MM_SPLIT_TEST, test);
    }
    /* 8 training patients, 10% -> 1 for validation */
    mm_index_counts c;
    mm_index_count(&c, &idx);
    CHECK_EQ_INT(c.split_patients[MM_SPLIT_VAL], 1);
    mm_index_free(&idx);
    o.official_split = false;
    o.test_frac = 0.3;
    CHECK(mm_index_cbis_ddsm(&idx, root, &o) == MM_OK);
    mm_index_count(&c, &idx);
    CHECK_EQ_INT(c.split_patients[MM_SPLIT_TEST], 3);
    CHECK_EQ_INT(c.split_patients[MM_SPLIT_VAL], 1); /* round(0.7) of 7 */
    mm_index_free(&idx);
}

MM_TEST(cbis_command_writes_index_and_summary)
{
    NEED_DICOM();
    char root[600], out[700], args[2048], log[4096];
    CHECK(cbis_tree(root, sizeof root));
    snprintf(out, sizeof out, "%s/out/index.csv", mm_test_tmpdir());
    snprintf(args, sizeof args, "index --cbis-ddsm '%s' --out '%s' --quiet", root, out);
    CHECK_EQ_INT(run_mammo(log, sizeof log, args), 0);
    CHECK_MSG(strstr(log, "mammo index: cbis-ddsm: 11 images (6 malignant, 5 benign), 10 "
                          "patients, 13 ROIs") != NULL, "summary: %s", log);
    mm_index idx;
    CHECK(mm_index_read(&idx, out) == MM_OK);
    CHECK_EQ_INT(idx.n, CBIS_N_IMAGES);
    mm_index_free(&idx);
    /* the same seed gives the same file; flags are checked */
    char out2[700];
    snprintf(out2, sizeof out2, "%s/out/index2.csv", mm_test_tmpdir());
    snprintf(args, sizeof args, "index --cbis-ddsm '%s' --out '%s' --quiet", root, out2);
    CHECK_EQ_INT(run_mammo(NULL, 0, args), 0);
    CHECK_EQ_INT(file_size(out), file_size(out2));
    snprintf(args, sizeof args, "index --cbis-ddsm '%s' --inbreast x --out '%s'", root, out2);
    CHECK_EQ_INT(run_mammo(log, sizeof log, args), 1);
    CHECK(strstr(log, "mammo: mammo index: give exactly one of") != NULL);
    snprintf(args, sizeof args, "index --cbis-ddsm '%s' --out '%s' --split other", root, out2);
    CHECK_EQ_INT(run_mammo(log, sizeof log, args), 1);
    CHECK(strstr(log, "--split other") != NULL);
    snprintf(args, sizeof args, "index --cbis-ddsm '%s' --out '%s' --threads -1", root, out2);
    CHECK_EQ_INT(run_mammo(log, sizeof log, args), 1);
    CHECK_MSG(strstr(log, "--threads -1: must be 0 (one per CPU) to 4096") != NULL, "%s", log);
}

/* Runs the CBIS index on the tree after `damage` and expects exit 1 naming `needle` with no
 * index written. */
static void expect_index_failure(const char *root, const char *needle)
{
    char out[700], args[2048], log[4096];
    snprintf(out, sizeof out, "%s/bad-out/index.csv", mm_test_tmpdir());
    snprintf(args, sizeof args, "index --cbis-ddsm '%s' --out '%s' --quiet", root, out);
    CHECK_EQ_INT(run_mammo(log, sizeof log, args), 1);
    CHECK_MSG(strncmp(log, "mammo: ", 7) == 0 && strstr(log, needle) != NULL,
              "message '%s' lacks '%s'", log, needle);
    CHECK_MSG(file_size(out) < 0, "an index was written");
    char dir[700];
    snprintf(dir, sizeof dir, "%s/bad-out", mm_test_tmpdir());
    CHECK_EQ_INT(count_files_containing(dir, ".tmp"), 0);
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(data, 1, n, f);
    fclose(f);
}

MM_TEST(cbis_corrupted_copies_fail_cleanly)
{
    NEED_DICOM();
    char root[600];
    CHECK(cbis_tree(root, sizeof root));
    /* keep a copy of the file we damage to restore it between cases */
    const char *victim = full_paths[0];
    long size = file_size(victim);
    char *orig = malloc((size_t)size);
    FILE *f = fopen(victim, "rb");
    CHECK(f && fread(orig, 1, (size_t)size, f) == (size_t)size);
    if (f) fclose(f);

    write_bytes(victim, orig, 200); /* truncated inside the header */
    expect_index_failure(root, mm_fs_basename(victim));
    write_bytes(victim, orig, 0); /* zero bytes */
    expect_index_failure(root, mm_fs_basename(victim));
    char junk[4096];
    for (int i = 0; i < 4096; i++) junk[i] = (char)mm_philox_u32(3, (uint64_t)i);
    write_bytes(victim, junk, sizeof junk); /* random bytes */
    expect_index_failure(root, mm_fs_basename(victim));
    write_bytes(victim, orig, (size_t)size);

    /* a mask lost: only the crop is left in the ROI folder */
    char moved[700];
    snprintf(moved, sizeof moved, "%s/moved.dcm", mm_test_tmpdir());
    CHECK(rename(mask_paths[0], moved) == 0);
    expect_index_failure(root, "look like cropped images");
    CHECK(rename(moved, mask_paths[0]) == 0);

    /* a full image missing altogether */
    CHECK(rename(full_paths[1], moved) == 0);
    expect_index_failure(root, "image file path");
    CHECK(rename(moved, full_paths[1]) == 0);

    /* wrong CSV columns, a bad value, a broken quote */
    char csv[700];
    snprintf(csv, sizeof csv, "%s/calc_case_description_test_set.csv", root);
    write_text(csv, "patient_id,density,left or right breast\nP_1,2,LEFT\n");
    expect_index_failure(root, "no column");
    write_text(csv, "patient_id,breast density,left or right breast,image view,abnormality id,"
                    "abnormality type,pathology,image file path,cropped image file path,ROI mask "
                    "file path\nP_00008,2,MIDDLE,CC,1,calcification,MALIGNANT,a/b/c/d,a/b/c/d,a/b/c/d\n");
    expect_index_failure(root, "line 2: left or right breast is 'MIDDLE'");
    write_text(csv, "patient_id,breast density\n\"P_1,2\n");
    expect_index_failure(root, "quoted field is never closed");
    /* no description CSVs at all */
    char empty[700];
    snprintf(empty, sizeof empty, "%s/empty", mm_test_tmpdir());
    mm_fs_mkdirs(empty);
    expect_index_failure(empty, "no *_case_description_*_set.csv");
    expect_index_failure("/nonexistent/cbis", "no such folder");
    free(orig);
}

MM_TEST(cbis_dicom_without_rows_fails_cleanly)
{
    NEED_DICOM();
    /* A hand-made Part 10 file with a meta header and a dataset that lacks Rows and Columns. */
    char root[600];
    CHECK(cbis_tree(root, sizeof root));
    unsigned char b[512];
    size_t n = 0;
    memset(b, 0, 128);
    n = 128;
    memcpy(b + n, "DICM", 4);
    n += 4;
    /* (0002,0010) UI transfer syntax, explicit VR little endian */
    const char ts[] = "1.2.840.10008.1.2.1"; /* 19 chars + pad = 20 */
    unsigned char el[] = {0x02, 0x00, 0x10, 0x00, 'U', 'I', 20, 0};
    memcpy(b + n, el, sizeof el);
    n += sizeof el;
    memcpy(b + n, ts, 19);
    b[n + 19] = 0;
    n += 20;
    /* (0008,0060) CS modality "MG" */
    unsigned char mod[] = {0x08, 0x00, 0x60, 0x00, 'C', 'S', 2, 0, 'M', 'G'};
    memcpy(b + n, mod, sizeof mod);
    n += sizeof mod;
    write_bytes(full_paths[4], b, n);
    expect_index_failure(root, mm_fs_basename(full_paths[4]));
}

/* ---- INbreast ---- */

static int inbreast_tree(char *root, size_t n)
{
    snprintf(root, n, "%s/inbreast", mm_test_tmpdir());
    return tree_inbreast(root);
}

MM_TEST(inbreast_index_records_and_masks)
{
    NEED_DICOM();
    NEED_XML();
    char root[600], out[700], args[2048], log[4096];
    CHECK(inbreast_tree(root, sizeof root));
    snprintf(out, sizeof out, "%s/out/index.csv", mm_test_tmpdir());
    snprintf(args, sizeof args, "index --inbreast '%s' --out '%s' --quiet", root, out);
    CHECK_EQ_INT(run_mammo(log, sizeof log, args), 0);
    CHECK_MSG(strstr(log, "warning: 1 ROIs with an unknown Name") != NULL, "%s", log);
    CHECK_MSG(strstr(log, "mammo index: inbreast: 19 images (8 malignant, 11 benign), 9 patients, "
                          "11 ROIs; split train ") != NULL, "summary: %s", log);
    CHECK_MSG(strstr(log, " / test 0 images (6 / 3 / 0 patients); 1 BI-RADS 3 images left out") != NULL,
              "summary: %s", log);
    mm_index idx;
    CHECK(mm_index_read(&idx, out) == MM_OK);
    CHECK_EQ_INT(idx.n, INB_N_KEPT);
    CHECK(find_image(&idx, "22678646") == NULL); /* BI-RADS 3 */
    for (int i = 0; i < INB_N; i++) {
        const tree_inb *t = &inb_images[i];
        const mm_index_image *im = find_image(&idx, t->file_name);
        if (!strcmp(t->birads, "3")) continue;
        CHECK_MSG(im != NULL, "no %s", t->file_name);
        if (!im) continue;
        CHECK(!strcmp(im->patient_id, t->hash));
        CHECK(!strcmp(im->view, t->view));
        CHECK_EQ_INT(im->side, t->side[0]);
        CHECK_EQ_INT(im->label, t->birads[0] >= '4');
        CHECK_EQ_INT(im->density, t->acr[0] == ' ' ? 0 : t->acr[0] - '0');
        CHECK(!strcmp(im->birads, t->birads));
        CHECK_EQ_INT(im->height, INB_H);
        CHECK_EQ_INT(im->width, INB_W);
        int want_rois = t->xml == 0 ? 0 : t->xml == 3 ? 1 : 2;
        CHECK_EQ_INT(im->n_rois, want_rois);
        for (int k = 0; k < im->n_rois; k++) CHECK_EQ_INT(im->rois[k].pathology, MM_PATH_UNKNOWN);
        if (t->xml == 2 && im->n_rois == 2) {
            CHECK_EQ_INT(im->rois[0].type, MM_ROI_CALC);
            CHECK_EQ_INT(im->rois[1].type, MM_ROI_SPICULATED);
            /* the point lesion: a disk of radius 3 = 29 pixel centres around (20.25, 30.5)... */
            mm_image m;
            CHECK(mm_png_read(im->rois[0].mask, &m) == MM_OK);
            uint8_t want[INB_H * INB_W] = {0};
            int64_t cnt = mm_raster_disk(want, inb_point[0], inb_point[1], 3, 255, INB_H, INB_W);
            CHECK(m.height == INB_H && m.width == INB_W && m.bit_depth == 8);
            CHECK(cnt > 20 && !memcmp(m.pixels, want, sizeof want));
            mm_image_free(&m);
            /* ...and the polygon that runs out of the frame is clipped, not dropped */
            CHECK(mm_png_read(im->rois[1].mask, &m) == MM_OK);
            double x[4], y[4];
            for (int p = 0; p < 4; p++) {
                x[p] = inb_poly_out[2 * p];
                y[p] = inb_poly_out[2 * p + 1];
            }
            memset(want, 0, sizeof want);
            mm_raster_polygon(want, x, y, 255, 4, INB_H, INB_W);
            CHECK(!memcmp(m.pixels, want, sizeof want));
            int last_row = 0;
            for (int x = 0; x < INB_W; x++) last_row += ((uint8_t *)m.pixels)[(INB_H - 1) * INB_W + x] != 0;
            CHECK(last_row > 0);
            mm_image_free(&m);
        }
        if (t->xml == 3 && im->n_rois == 1) CHECK_EQ_INT(im->rois[0].type, MM_ROI_ASYMMETRY);
    }
    mm_index_free(&idx);
    /* masks beside the index; no staging folders left */
    char masks[700];
    snprintf(masks, sizeof masks, "%s/out/inbreast_masks", mm_test_tmpdir());
    CHECK(mm_fs_is_dir(masks));
    snprintf(masks, sizeof masks, "%s/out", mm_test_tmpdir());
    CHECK_EQ_INT(count_files_containing(masks, "partial"), 0);
    /* a second run replaces the masks folder it made */
    CHECK_EQ_INT(run_mammo(log, sizeof log, args), 0);
}

MM_TEST(inbreast_subset_patients)
{
    NEED_DICOM();
    NEED_XML();
    char root[600], out[700], args[2048], log[4096];
    CHECK(inbreast_tree(root, sizeof root));
    snprintf(out, sizeof out, "%s/sub/index.csv", mm_test_tmpdir());
    snprintf(args, sizeof args, "index --inbreast '%s' --out '%s' --subset-patients 2 --quiet",
             root, out);
    CHECK_EQ_INT(run_mammo(log, sizeof log, args), 0);
    mm_index idx;
    CHECK(mm_index_read(&idx, out) == MM_OK);
    mm_index_counts c;
    mm_index_count(&c, &idx);
    CHECK_EQ_INT(c.split_patients[MM_SPLIT_TRAIN], 2);
    CHECK_EQ_INT(c.split_patients[MM_SPLIT_VAL], 3); /* the same validation patients */
    mm_index_free(&idx);
    snprintf(args, sizeof args, "index --inbreast '%s' --out '%s' --subset-patients 7 --quiet",
             root, out);
    CHECK_EQ_INT(run_mammo(log, sizeof log, args), 1);
    CHECK_MSG(strstr(log, "--subset-patients 7: the training split has 6 patients") != NULL, "%s", log);
}

static void expect_inbreast_failure(const char *root, const char *needle)
{
    char out[800], args[2048], log[4096], dir[700];
    snprintf(dir, sizeof dir, "%s/bad-inb", mm_test_tmpdir());
    snprintf(out, sizeof out, "%s/index.csv", dir);
    snprintf(args, sizeof args, "index --inbreast '%s' --out '%s' --quiet", root, out);
    CHECK_EQ_INT(run_mammo(log, sizeof log, args), 1);
    CHECK_MSG(strncmp(log, "mammo: ", 7) == 0 && strstr(log, needle) != NULL,
              "message '%s' lacks '%s'", log, needle);
    CHECK(file_size(out) < 0);
    CHECK_EQ_INT(count_files_containing(dir, ".png"), 0);
    CHECK_EQ_INT(count_files_containing(dir, "partial"), 0);
    char masks[800];
    snprintf(masks, sizeof masks, "%s/inbreast_masks", dir);
    CHECK(!mm_fs_is_dir(masks));
}

MM_TEST(inbreast_corrupted_copies_fail_cleanly)
{
    NEED_DICOM();
    NEED_XML();
    char root[600], path[900];
    CHECK(inbreast_tree(root, sizeof root));
    /* a broken XML of a kept image */
    snprintf(path, sizeof path, "%s/INbreast Release 1.0/AllXML/20586986.xml", root);
    write_text(path, "<plist><dict><key>Images</key><array><dict>");
    expect_inbreast_failure(root, "20586986.xml");
    write_text(path, "<plist><dict><key>Images</key><array><dict><key>ROIs</key><array><dict>"
                     "<key>Name</key><string>Mass</string><key>Point_px</key><array><string>"
                     "(1; 2)</string></array></dict></array></dict></array></dict></plist>");
    expect_inbreast_failure(root, "Point_px entry 1");
    unlink(path);
    /* a truncated DICOM */
    snprintf(path, sizeof path, "%s/INbreast Release 1.0/AllDICOMs/20586960_6c613a14b80a8591_MG_L_CC_ANON.dcm", root);
    write_text(path, "DICM");
    expect_inbreast_failure(root, "20586960_6c613a14b80a8591_MG_L_CC_ANON.dcm");
    unlink(path);
    expect_inbreast_failure(root, "no DICOM named 20586960_*.dcm");
    /* CSV: a bad BI-RADS, wrong columns, wrong delimiter */
    snprintf(path, sizeof path, "%s/INbreast Release 1.0/INbreast.csv", root);
    write_text(path, "Patient ID;Patient age;Laterality;View;Acquisition date;File Name;ACR;Bi-Rads\n"
                     "removed;removed;R;CC;201001;20586908;2;7\n");
    expect_inbreast_failure(root, "line 2: Bi-Rads '7'");
    write_text(path, "Laterality,View,File Name,ACR,Bi-Rads\nR,CC,20586908,2,1\n");
    expect_inbreast_failure(root, "needs the columns");
    unlink(path);
    expect_inbreast_failure(root, "no INbreast.csv");
}
