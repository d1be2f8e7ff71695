/* The patch sampler: breast segmentation, summed-area tables, the overlap and background rules
 * checked pixel by pixel, relaxation, determinism, and `mammo patches` end to end on a PNG
 * dataset (folders, CSV, pixels, thread-count independence, clean failure). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/data_trees.h"
#include "tests/harness.h"
#include "tools/csv.h"
#include "tools/index.h"
#include "tools/patches.h"
#include "tools/png_io.h"

MM_TEST(breast_mask_largest_component_with_holes_filled)
{
    enum { H = 40, W = 30 };
    uint16_t img[H * W];
    uint8_t m[H * W];
    memset(img, 0, sizeof img);
    for (int y = 5; y < 30; y++)
        for (int x = 0; x < 20; x++) img[y * W + x] = 1000;
    for (int y = 10; y < 14; y++) /* a dark hole inside the breast */
        for (int x = 5; x < 9; x++) img[y * W + x] = 10;
    for (int y = 34; y < 37; y++) /* a bright label, separate and smaller */
        for (int x = 24; x < 28; x++) img[y * W + x] = 4000;
    int64_t n = mm_breast_mask(m, img, 0.05, H, W);
    CHECK_EQ_INT(n, 25 * 20);
    int wrong = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) wrong += m[y * W + x] != (y >= 5 && y < 30 && x < 20);
    CHECK_EQ_INT(wrong, 0);
    memset(img, 0, sizeof img);
    CHECK_EQ_INT(mm_breast_mask(m, img, 0.05, H, W), 0);
}

MM_TEST(integral_matches_naive_sums)
{
    enum { H = 23, W = 17 };
    uint8_t m[H * W];
    for (int i = 0; i < H * W; i++) m[i] = mm_philox_u32(4, (uint64_t)i) % 3 == 0 ? 7 : 0;
    int64_t ii[(H + 1) * (W + 1)];
    mm_integral(ii, m, H, W);
    for (int t = 0; t < 200; t++) {
        int y0 = (int)(mm_philox_u32(5, 4 * (uint64_t)t) % (H + 1)), y1 = (int)(mm_philox_u32(5, 4 * (uint64_t)t + 1) % (H + 1));
        int x0 = (int)(mm_philox_u32(5, 4 * (uint64_t)t + 2) % (W + 1)), x1 = (int)(mm_philox_u32(5, 4 * (uint64_t)t + 3) % (W + 1));
        if (y0 > y1) { int s = y0; y0 = y1; y1 = s; }
        if (x0 > x1) { int s = x0; x0 = x1; x1 = s; }
        int64_t want = 0;
        for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++) want += m[y * W + x] != 0;
        CHECK_EQ_INT(mm_integral_sum(ii, W, y0, x0, y1, x1), want);
    }
}

enum { SH = 200, SW = 160, SP = 32 };

/* A synthetic image (breast on the left) with ROIs: a malignant mass box, a benign calc box, a
 * large benign mass (bigger than a patch), and a distortion (no class, but background must avoid
 * it). */
static void sample_scene(uint16_t *img, uint8_t **masks, mm_index_image *im, mm_roi *rois)
{
    uint16_t *b = tree_breast(SH, SW, 0, 1);
    memcpy(img, b, SH * SW * sizeof *img);
    free(b);
    static const int boxes[4][4] = {{40, 20, 60, 40}, {100, 30, 106, 36}, {130, 10, 180, 60},
                                    {20, 60, 40, 80}};
    static const mm_roi_type types[4] = {MM_ROI_MASS, MM_ROI_CALC, MM_ROI_MASS, MM_ROI_DISTORTION};
    static const mm_pathology paths[4] = {MM_PATH_MALIGNANT, MM_PATH_BENIGN,
                                          MM_PATH_BENIGN_WITHOUT_CALLBACK, MM_PATH_UNKNOWN};
    for (int k = 0; k < 4; k++) {
        masks[k] = tree_box(SH, SW, boxes[k][0], boxes[k][1], boxes[k][2], boxes[k][3]);
        for (int i = 0; i < SH * SW; i++) masks[k][i] = masks[k][i] != 0;
        rois[k] = (mm_roi){.id = k + 1, .type = types[k], .pathology = paths[k]};
    }
    memset(im, 0, sizeof *im);
    im->image_id = "scene";
    im->n_rois = 4;
    im->rois = rois;
}

static int64_t count_in(const uint8_t *m, int y, int x)
{
    int64_t n = 0;
    for (int r = y; r < y + SP; r++)
        for (int c = x; c < x + SP; c++) n += m[r * SW + c] != 0;
    return n;
}

MM_TEST(sample_overlap_and_background_rules)
{
    uint16_t *img = malloc(SH * SW * sizeof *img);
    uint8_t *masks[4];
    mm_index_image im;
    mm_roi rois[4];
    sample_scene(img, masks, &im, rois);
    mm_patch_opts o;
    mm_patch_opts_default(&o);
    o.size = SP;
    o.per_roi = 6;
    mm_patch *p;
    int n;
    mm_patch_stats st = {0};
    CHECK(mm_patches_sample(&p, &n, &st, img, masks, &im, &o, 99, SH, SW) == MM_OK);
    CHECK_EQ_INT(st.rois, 3);
    CHECK_EQ_INT(st.rois_skipped, 1);
    CHECK_EQ_INT(st.rois_relaxed, 0);
    CHECK_EQ_INT(n, 3 * 6 * 2);
    uint8_t *breast = malloc(SH * SW);
    mm_breast_mask(breast, img, 0.05, SH, SW);
    int per_class[5] = {0};
    for (int i = 0; i < n; i++) {
        const mm_patch *q = &p[i];
        per_class[q->cls]++;
        CHECK(q->y >= 0 && q->x >= 0 && q->y + SP <= SH && q->x + SP <= SW);
        if (q->roi >= 0) {
            double inter = (double)count_in(masks[q->roi], q->y, q->x);
            int64_t a = 0;
            for (int k = 0; k < SH * SW; k++) a += masks[q->roi][k];
            double ov = inter / a > inter / (SP * SP) ? inter / a : inter / (SP * SP);
            CHECK_MSG(ov >= 0.9, "patch %d of ROI %d: overlap %.3f", i, q->roi, ov);
            CHECK_CLOSE(q->overlap, ov, 1e-9, 0);
            CHECK_EQ_INT(q->cls, mm_roi_class(&rois[q->roi]));
        } else {
            CHECK_EQ_INT(q->cls, MM_CLASS_BACKGROUND);
            for (int k = 0; k < 4; k++)
                CHECK_MSG(count_in(masks[k], q->y, q->x) == 0, "background %d touches ROI %d", i, k);
            CHECK(breast[(q->y + SP / 2) * SW + q->x + SP / 2]);
            CHECK(count_in(breast, q->y, q->x) >= SP * SP / 2);
        }
    }
    CHECK_EQ_INT(per_class[MM_CLASS_BACKGROUND], 18);
    CHECK_EQ_INT(per_class[MM_CLASS_MASS_MALIGNANT], 6);
    CHECK_EQ_INT(per_class[MM_CLASS_CALC_BENIGN], 6);
    CHECK_EQ_INT(per_class[MM_CLASS_MASS_BENIGN], 6);
    /* deterministic in the key, different for another key */
    mm_patch *p2;
    int n2;
    CHECK(mm_patches_sample(&p2, &n2, &st, img, masks, &im, &o, 99, SH, SW) == MM_OK);
    CHECK(n2 == n && !memcmp(p, p2, (size_t)n * sizeof *p));
    free(p2);
    CHECK(mm_patches_sample(&p2, &n2, &st, img, masks, &im, &o, 100, SH, SW) == MM_OK);
    CHECK(n2 == n && memcmp(p, p2, (size_t)n * sizeof *p) != 0);
    free(p2);
    /* a patch larger than the image is a clear error */
    o.size = SW + 1;
    CHECK(mm_patches_sample(&p2, &n2, &st, img, masks, &im, &o, 1, SH, SW) == MM_ERR_ARG);
    CHECK(strstr(mm_last_error(), "--size") != NULL);
    free(p);
    free(breast);
    free(img);
    for (int k = 0; k < 4; k++) free(masks[k]);
}

MM_TEST(sample_relaxes_unreachable_overlap)
{
    /* two specks 100 px apart: no 32-px patch holds more than half of the ROI */
    uint16_t *img = malloc(SH * SW * sizeof *img);
    uint8_t *masks[4];
    mm_index_image im;
    mm_roi rois[4];
    sample_scene(img, masks, &im, rois);
    memset(masks[0], 0, SH * SW);
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 2; x++) {
            masks[0][(40 + y) * SW + 20 + x] = 1;
            masks[0][(140 + y) * SW + 20 + x] = 1;
        }
    im.n_rois = 1;
    mm_patch_opts o;
    mm_patch_opts_default(&o);
    o.size = SP;
    o.per_roi = 3;
    o.max_tries = 50;
    mm_patch *p;
    int n;
    mm_patch_stats st = {0};
    CHECK(mm_patches_sample(&p, &n, &st, img, masks, &im, &o, 5, SH, SW) == MM_OK);
    CHECK_EQ_INT(st.rois_relaxed, 1);
    CHECK_EQ_INT(st.rois_short, 0);
    for (int i = 0; i < n; i++)
        if (p[i].roi == 0) CHECK(p[i].overlap >= 0.5 - 1e-12);
    free(p);
    free(img);
    for (int k = 0; k < 4; k++) free(masks[k]);
}

/* Writes a PNG dataset (2 images per split, each with the sample scene's ROIs) and its index. */
static void png_dataset(char *index, size_t n)
{
    char dir[700], path[900];
    snprintf(dir, sizeof dir, "%s/ds", mm_test_tmpdir());
    mm_fs_mkdirs(dir);
    mm_index idx = {0};
    uint16_t *img = malloc(SH * SW * sizeof *img);
    uint8_t *masks[4];
    mm_index_image scene;
    mm_roi rois[4];
    sample_scene(img, masks, &scene, rois);
    for (int i = 0; i < 6; i++) {
        mm_index_image *im = mm_index_add(&idx);
        char id[32];
        snprintf(id, sizeof id, "img%d", i);
        im->image_id = strdup(id);
        im->dataset = strdup("cbis-ddsm");
        snprintf(id, sizeof id, "P_%d", i);
        im->patient_id = strdup(id);
        im->side = 'L';
        snprintf(im->view, sizeof im->view, "CC");
        im->split = (mm_split)(i % 3);
        im->height = SH;
        im->width = SW;
        snprintf(path, sizeof path, "img%d.png", i);
        im->image = strdup(path);
        im->source = strdup(path);
        mm_image png = {.height = SH, .width = SW, .bit_depth = 16, .pixels = img};
        snprintf(path, sizeof path, "%s/img%d.png", dir, i);
        mm_png_write(path, &png);
        for (int k = 0; k < 4; k++) {
            mm_roi *r = mm_index_add_roi(im);
            *r = rois[k];
            snprintf(path, sizeof path, "m%d_%d.png", i, k);
            r->mask = strdup(path);
            uint8_t *m255 = malloc(SH * SW);
            for (int q = 0; q < SH * SW; q++) m255[q] = masks[k][q] ? 255 : 0;
            mm_image mp = {.height = SH, .width = SW, .bit_depth = 8, .pixels = m255};
            snprintf(path, sizeof path, "%s/m%d_%d.png", dir, i, k);
            mm_png_write(path, &mp);
            free(m255);
        }
        if (rois[0].pathology == MM_PATH_MALIGNANT) im->label = 1;
    }
    snprintf(index, n, "%s/index.csv", dir);
    CHECK(mm_index_write(&idx, index) == MM_OK);
    mm_index_free(&idx);
    free(img);
    for (int k = 0; k < 4; k++) free(masks[k]);
}

MM_TEST(patches_command_end_to_end)
{
    char index[800], out[700], out2[700], args[2048], log[4096];
    png_dataset(index, sizeof index);
    snprintf(out, sizeof out, "%s/patches", mm_test_tmpdir());
    snprintf(args, sizeof args, "patches --index '%s' --out '%s' --size 32 --per-roi 4 --height 0 "
             "--width 0 --threads 3 --quiet", index, out);
    CHECK_EQ_INT(run_mammo(log, sizeof log, args), 0);
    CHECK_MSG(strstr(log, "mammo patches: 144 patches of 32x32 (background 72, calc_ben 24, "
                          "calc_mal 0, mass_ben 24, mass_mal 24; train 48 / val 48 / test 48) "
                          "from 6 images and 18 ROIs (6 ROIs skipped") != NULL, "%s", log);
    char csvp[900];
    snprintf(csvp, sizeof csvp, "%s/patches.csv", out);
    mm_csv csv;
    CHECK(mm_csv_read(&csv, csvp, ',', 0) == MM_OK);
    CHECK_EQ_INT(csv.n_rows, 144);
    mm_strlist pngs;
    CHECK(mm_fs_list_files(&pngs, out, ".png") == MM_OK);
    CHECK_EQ_INT(pngs.n, 144);
    mm_strlist_free(&pngs);
    /* every row's PNG holds the image's pixels at (y, x); its folder is split/class */
    mm_image src;
    char p[900];
    snprintf(p, sizeof p, "%s/ds/img0.png", mm_test_tmpdir());
    CHECK(mm_png_read(p, &src) == MM_OK);
    int cp = mm_csv_col(&csv, "path"), cy = mm_csv_col(&csv, "y"), cx = mm_csv_col(&csv, "x");
    int cs = mm_csv_col(&csv, "split"), cc = mm_csv_col(&csv, "class"), cl = mm_csv_col(&csv, "label");
    for (int r = 0; r < csv.n_rows; r++) {
        const char *rel = mm_csv_cell(&csv, r, cp);
        char prefix[64];
        snprintf(prefix, sizeof prefix, "%s/%s/", mm_csv_cell(&csv, r, cs), mm_csv_cell(&csv, r, cc));
        CHECK(!strncmp(rel, prefix, strlen(prefix)));
        CHECK(!strcmp(mm_patch_class_name((mm_patch_class)atoi(mm_csv_cell(&csv, r, cl))),
                      mm_csv_cell(&csv, r, cc)));
        snprintf(p, sizeof p, "%s/%s", out, rel);
        mm_image patch;
        CHECK(mm_png_read(p, &patch) == MM_OK);
        CHECK(patch.height == 32 && patch.width == 32 && patch.bit_depth == 16);
        int y = atoi(mm_csv_cell(&csv, r, cy)), x = atoi(mm_csv_cell(&csv, r, cx));
        int same = 1;
        for (int q = 0; q < 32 && same; q++)
            same = !memcmp((uint16_t *)patch.pixels + q * 32,
                           (uint16_t *)src.pixels + (y + q) * SW + x, 32 * sizeof(uint16_t));
        CHECK_MSG(same, "%s differs from the image at (%d, %d)", rel, y, x);
        mm_image_free(&patch);
    }
    mm_image_free(&src);
    mm_csv_free(&csv);
    /* the thread count does not change the result */
    snprintf(out2, sizeof out2, "%s/patches1", mm_test_tmpdir());
    snprintf(args, sizeof args, "patches --index '%s' --out '%s' --size 32 --per-roi 4 --height 0 "
             "--width 0 --threads 1 --quiet", index, out2);
    CHECK_EQ_INT(run_mammo(log, sizeof log, args), 0);
    char c2[900];
    snprintf(c2, sizeof c2, "%s/patches.csv", out2);
    CHECK_EQ_INT(file_size(c2), file_size(csvp));
    FILE *a = fopen(csvp, "rb"), *b = fopen(c2, "rb");
    int same = a && b;
    while (same) {
        int x = fgetc(a), y = fgetc(b);
        same = x == y;
        if (x == EOF) break;
    }
    if (a) fclose(a);
    if (b) fclose(b);
    CHECK(same);
    /* an output folder that is not empty is refused; a patch too big fails without output */
    CHECK_EQ_INT(run_mammo(log, sizeof log, args), 1);
    CHECK_MSG(strstr(log, "not empty") != NULL, "%s", log);
    snprintf(out2, sizeof out2, "%s/patches-big", mm_test_tmpdir());
    snprintf(args, sizeof args, "patches --index '%s' --out '%s' --size 500 --height 0 --width 0 "
             "--quiet", index, out2);
    CHECK_EQ_INT(run_mammo(log, sizeof log, args), 1);
    CHECK_MSG(strstr(log, "--size 500") != NULL, "%s", log);
    CHECK(!mm_fs_is_dir(out2));
    CHECK_EQ_INT(count_files_containing(mm_test_tmpdir(), "partial"), 0);
    /* resizing to a sampling size first: the patches come from the resized image */
    snprintf(out2, sizeof out2, "%s/patches-resized", mm_test_tmpdir());
    snprintf(args, sizeof args, "patches --index '%s' --out '%s' --size 16 --per-roi 2 --height 100 "
             "--width 80 --quiet", index, out2);
    CHECK_EQ_INT(run_mammo(log, sizeof log, args), 0);
    CHECK_MSG(strstr(log, "mammo patches: 72 patches of 16x16") != NULL, "%s", log);
}
