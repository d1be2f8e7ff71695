/* Area-averaging resize against a naive 2-D reference, and `mammo prep` end to end: outputs,
 * updated index, resumability, and a corrupt input that must fail with exit status 1, no index
 * and no half-written file. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/data_trees.h"
#include "tests/harness.h"
#include "tools/index.h"
#include "tools/png_io.h"
#include "tools/prep.h"
#include "tools/resize.h"

/* Naive reference: for every output pixel, the area-weighted mean over every input pixel, with
 * the overlap of [oy*ih/oh, (oy+1)*ih/oh) and [y, y+1) computed in floating point. */
static double ref_pixel(const uint16_t *in, int ih, int iw, int oh, int ow, int oy, int ox)
{
    double y0 = (double)oy * ih / oh, y1 = (double)(oy + 1) * ih / oh;
    double x0 = (double)ox * iw / ow, x1 = (double)(ox + 1) * iw / ow;
    double s = 0, a = 0;
    for (int y = 0; y < ih; y++) {
        double wy = fmin(y1, y + 1.0) - fmax(y0, (double)y);
        if (wy <= 0) continue;
        for (int x = 0; x < iw; x++) {
            double wx = fmin(x1, x + 1.0) - fmax(x0, (double)x);
            if (wx <= 0) continue;
            s += wy * wx * in[y * iw + x];
            a += wy * wx;
        }
    }
    return s / a;
}

MM_TEST(resize_area_matches_naive_reference)
{
    static const int sizes[][4] = {
        {37, 29, 11, 7}, {64, 48, 16, 12}, {50, 40, 50, 40}, {13, 9, 31, 20}, {7, 5, 3, 5},
        {100, 3, 9, 1}, {1, 1, 4, 3}, {41, 33, 40, 32},
    };
    for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
        int ih = sizes[t][0], iw = sizes[t][1], oh = sizes[t][2], ow = sizes[t][3];
        uint16_t *in = malloc((size_t)ih * iw * sizeof *in);
        for (int i = 0; i < ih * iw; i++) in[i] = (uint16_t)mm_philox_u32(9 + t, (uint64_t)i);
        double *got = malloc((size_t)oh * ow * sizeof *got);
        uint16_t *got16 = malloc((size_t)oh * ow * sizeof *got16);
        mm_resize_area(got, in, 16, ih, iw, oh, ow);
        mm_resize_area_u16(got16, in, ih, iw, oh, ow);
        double worst = 0;
        int bad16 = 0;
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                double want = ref_pixel(in, ih, iw, oh, ow, oy, ox);
                double e = fabs(got[oy * ow + ox] - want);
                if (e > worst) worst = e;
                /* rounding may go either way only when the exact mean sits on a .5 */
                int diff = abs((int)got16[oy * ow + ox] - (int)floor(want + 0.5));
                bad16 += diff > (fabs(want - floor(want) - 0.5) < 1e-6 ? 1 : 0);
            }
        CHECK_MSG(worst < 1e-6, "%dx%d -> %dx%d: max error %g", ih, iw, oh, ow, worst);
        CHECK_EQ_INT(bad16, 0);
        free(in);
        free(got);
        free(got16);
    }
}

MM_TEST(resize_mask_binarises_and_keeps_small_rois)
{
    enum { IH = 40, IW = 32, OH = 10, OW = 8 };
    uint8_t in[IH * IW], out[OH * OW];
    memset(in, 0, sizeof in);
    /* a 4x4-aligned block covers output pixels exactly; a half-covered pixel is inside */
    for (int y = 8; y < 16; y++)
        for (int x = 4; x < 10; x++) in[y * IW + x] = 1;
    CHECK_EQ_INT(mm_resize_mask(out, in, IH, IW, OH, OW), 4); /* (2,1),(2,2),(3,1),(3,2) */
    CHECK(out[2 * OW + 1] == 255 && out[2 * OW + 2] == 255 && out[3 * OW + 2] == 255);
    /* a single input pixel (1/16 of an output pixel) does not vanish */
    memset(in, 0, sizeof in);
    in[21 * IW + 13] = 200;
    CHECK_EQ_INT(mm_resize_mask(out, in, IH, IW, OH, OW), 1);
    CHECK_EQ_INT(out[5 * OW + 3], 255);
    memset(in, 0, sizeof in);
    CHECK_EQ_INT(mm_resize_mask(out, in, IH, IW, OH, OW), 0);
}

#ifndef MM_HAVE_DICOM
#define NEED_DICOM() MM_SKIP("no DICOM support in this build")
#else
#define NEED_DICOM() ((void)0)
#endif

static char full_paths[CBIS_N_ABNS][1024], mask_paths[CBIS_N_ABNS][1024];

/* Builds the CBIS tree and its index; returns the index path in `index`. */
static int make_index(char *index, size_t n)
{
    char root[600], args[2048], log[4096];
    snprintf(root, sizeof root, "%s/cbis", mm_test_tmpdir());
    if (!tree_cbis(root, full_paths, mask_paths)) return 0;
    snprintf(index, n, "%s/index/index.csv", mm_test_tmpdir());
    snprintf(args, sizeof args, "index --cbis-ddsm '%s' --out '%s' --quiet", root, index);
    int rc = run_mammo(log, sizeof log, args);
    if (rc) printf("    %s", log);
    return rc == 0;
}

static long mtime_ns(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) return -1;
    return (long)st.st_mtim.tv_sec * 1000000000L + st.st_mtim.tv_nsec;
}

MM_TEST(prep_outputs_and_index)
{
    NEED_DICOM();
    char index[800], out[700], args[2048], log[4096];
    CHECK(make_index(index, sizeof index));
    snprintf(out, sizeof out, "%s/prep", mm_test_tmpdir());
    snprintf(args, sizeof args, "prep --index '%s' --out '%s' --height 24 --width 20 --threads 2 "
             "--quiet", index, out);
    CHECK_EQ_INT(run_mammo(log, sizeof log, args), 0);
    CHECK_MSG(strstr(log, "mammo prep: 11 images written, 0 already done; 13 masks written, 0 "
                          "already done; 24x20") != NULL, "%s", log);
    char pindex[800];
    snprintf(pindex, sizeof pindex, "%s/index.csv", out);
    mm_index src, idx;
    CHECK(mm_index_read(&src, index) == MM_OK);
    CHECK(mm_index_read(&idx, pindex) == MM_OK);
    CHECK_EQ_INT(idx.n, src.n);
    for (int i = 0; i < idx.n && i < src.n; i++) {
        const mm_index_image *a = &src.images[i], *b = &idx.images[i];
        CHECK(!strcmp(a->image_id, b->image_id) && a->label == b->label && a->split == b->split);
        CHECK(b->height == 24 && b->width == 20 && b->n_rois == a->n_rois);
        CHECK(!strcmp(b->source, a->image));
        /* the PNG holds the area-averaged DICOM values */
        char p[4096];
        mm_image img;
        CHECK(mm_png_read(mm_index_path(p, sizeof p, &idx, b->image), &img) == MM_OK);
        CHECK(img.height == 24 && img.width == 20 && img.bit_depth == 16);
        uint16_t *px, want[24 * 20];
        int h, w;
        CHECK(mm_load_gray16(&px, &h, &w, a->image) == MM_OK);
        mm_resize_area_u16(want, px, h, w, 24, 20);
        CHECK(!memcmp(img.pixels, want, sizeof want));
        free(px);
        mm_image_free(&img);
        for (int k = 0; k < b->n_rois; k++) {
            CHECK(mm_png_read(mm_index_path(p, sizeof p, &idx, b->rois[k].mask), &img) == MM_OK);
            CHECK(img.bit_depth == 8 && img.height == 24 && img.width == 20);
            int inside = 0, other = 0;
            for (int q = 0; q < 24 * 20; q++) {
                uint8_t v = ((uint8_t *)img.pixels)[q];
                inside += v == 255;
                other += v != 0 && v != 255;
            }
            CHECK(inside > 0 && other == 0);
            CHECK_EQ_INT(b->rois[k].type, a->rois[k].type);
            mm_image_free(&img);
        }
    }
    mm_index_free(&src);
    mm_index_free(&idx);
    CHECK_EQ_INT(count_files_containing(out, ".tmp"), 0);
}

MM_TEST(prep_resumes)
{
    NEED_DICOM();
    char index[800], out[700], args[2048], log[4096];
    CHECK(make_index(index, sizeof index));
    snprintf(out, sizeof out, "%s/prep", mm_test_tmpdir());
    snprintf(args, sizeof args, "prep --index '%s' --out '%s' --height 24 --width 20 --quiet",
             index, out);
    CHECK_EQ_INT(run_mammo(log, sizeof log, args), 0);
    char kept[900], redo[900], mask[900];
    snprintf(kept, sizeof kept, "%s/images/P_00001_LEFT_CC.png", out);
    snprintf(redo, sizeof redo, "%s/images/P_00002_RIGHT_CC.png", out);
    snprintf(mask, sizeof mask, "%s/masks/P_00002_RIGHT_CC_1.png", out);
    long t_kept = mtime_ns(kept);
    CHECK(t_kept > 0);
    CHECK(unlink(redo) == 0 && unlink(mask) == 0);
    usleep(20000);
    CHECK_EQ_INT(run_mammo(log, sizeof log, args), 0);
    CHECK_MSG(strstr(log, "1 images written, 10 already done; 1 masks written, 12 already done") != NULL,
              "%s", log);
    CHECK(mtime_ns(kept) == t_kept);
    CHECK(file_size(redo) > 0 && file_size(mask) > 0);
    /* an output of the wrong size is redone; --force redoes everything */
    snprintf(args, sizeof args, "prep --index '%s' --out '%s' --height 24 --width 16 --quiet",
             index, out);
    CHECK_EQ_INT(run_mammo(log, sizeof log, args), 0);
    CHECK_MSG(strstr(log, "11 images written, 0 already done; 13 masks written") != NULL, "%s", log);
    snprintf(args, sizeof args, "prep --index '%s' --out '%s' --height 24 --width 16 --force --quiet",
             index, out);
    CHECK_EQ_INT(run_mammo(log, sizeof log, args), 0);
    CHECK_MSG(strstr(log, "11 images written, 0 already done") != NULL, "%s", log);
}

MM_TEST(prep_corrupt_pixels_fail_cleanly)
{
    NEED_DICOM();
    char index[800], out[700], args[2048], log[4096];
    CHECK(make_index(index, sizeof index));
    /* truncate a full image inside its pixel data: the header (and so the index) is fine */
    const char *victim = full_paths[6];
    long size = file_size(victim);
    CHECK(size > 1000);
    CHECK(truncate(victim, size - 500) == 0);
    snprintf(out, sizeof out, "%s/prep", mm_test_tmpdir());
    snprintf(args, sizeof args, "prep --index '%s' --out '%s' --height 24 --width 20 --threads 1 "
             "--quiet", index, out);
    CHECK_EQ_INT(run_mammo(log, sizeof log, args), 1);
    CHECK_MSG(strncmp(log, "mammo: ", 7) == 0 && strstr(log, mm_fs_basename(victim)) != NULL,
              "%s", log);
    char pindex[800];
    snprintf(pindex, sizeof pindex, "%s/index.csv", out);
    CHECK(file_size(pindex) < 0);
    CHECK_EQ_INT(count_files_containing(out, ".tmp"), 0);
    /* every PNG that is there is whole */
    mm_strlist l;
    CHECK(mm_fs_list_files(&l, out, ".png") == MM_OK);
    for (int i = 0; i < l.n; i++) {
        mm_image img;
        CHECK_MSG(mm_png_read(l.s[i], &img) == MM_OK, "%s", mm_last_error());
        mm_image_free(&img);
    }
    mm_strlist_free(&l);
    /* a broken index and bad flags */
    write_text(index, "image_id,dataset\n");
    CHECK_EQ_INT(run_mammo(log, sizeof log, args), 1);
    CHECK_MSG(strstr(log, "is this an index written by 'mammo index'") != NULL, "%s", log);
    snprintf(args, sizeof args, "prep --index '%s' --out '%s' --height 4 --quiet", index, out);
    CHECK_EQ_INT(run_mammo(log, sizeof log, args), 1);
    CHECK_MSG(strstr(log, "--height/--width") != NULL, "%s", log);
    snprintf(args, sizeof args, "prep --index '%s' --out '%s' --threads -2 --quiet", index, out);
    CHECK_EQ_INT(run_mammo(log, sizeof log, args), 1);
    CHECK_MSG(strstr(log, "--threads -2: must be 0 (one per CPU) to 4096") != NULL, "%s", log);
}
