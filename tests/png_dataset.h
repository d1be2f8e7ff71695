/* A small dataset of PNG mammograms with its index (tools/index.h), for tests that train end to
 * end on machines built without DICOM (the GPU machines have no DCMTK, and `mammo synth` writes
 * DICOM): `mammo prep` reads PNG images and masks as it reads DICOMs.
 *
 * Each patient has a CC and an MLO view of one side, 16-bit PNGs of h x w: a bright half-ellipse
 * of breast on a dark background with textured noise; every second patient has one lesion, a
 * disk brighter than the tissue around it at the same place in both views (a mass or a calc,
 * malignant or benign by turns), with its 0/255 mask PNG, and the image's label follows its
 * pathology. Splits by patient: of every five, three train, one val, one test. Header-only
 * (static functions): each test executable includes it. */
#ifndef MM_PNG_DATASET_H
#define MM_PNG_DATASET_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/philox.h"
#include "runtime/error.h"
#include "tools/fs.h"
#include "tools/index.h"
#include "tools/png_io.h"

/* One view: its pixels into img, the lesion's disk (cy, cx, r; r 0: none) into mask. */
static void png_dataset_draw(uint16_t *img, uint8_t *mask, int h, int w, uint64_t seed, double cy,
                             double cx, double r)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double u = (double)x / w, v = (y - 0.5 * h) / (0.5 * h);
            bool breast = u * u + v * v * 0.8 < 0.8;
            double noise = mm_philox_uniform(seed, (uint64_t)y * (uint64_t)w + (uint64_t)x);
            double value = breast ? 18000 + 9000 * noise : 600 + 400 * noise;
            bool inside = r > 0 && (y - cy) * (y - cy) + (x - cx) * (x - cx) <= r * r;
            if (inside) value += 20000;
            img[(size_t)y * w + x] = (uint16_t)(value < 65535 ? value : 65535);
            if (mask) mask[(size_t)y * w + x] = inside ? 255 : 0;
        }
}

/* Writes dir/images/<id>.png, dir/masks/<id>_0.png and dir/index.csv for `patients` patients;
 * returns the status of the first failure. */
static mm_status png_dataset_write(const char *dir, int patients, int h, int w, uint64_t seed)
{
    char sub[1024], file[1200];
    snprintf(sub, sizeof sub, "%s/images", dir);
    MM_TRY(mm_fs_mkdirs(sub));
    snprintf(sub, sizeof sub, "%s/masks", dir);
    MM_TRY(mm_fs_mkdirs(sub));
    uint16_t *img = mm_xmalloc((size_t)h * w * sizeof *img);
    uint8_t *mask = mm_xmalloc((size_t)h * w);
    mm_index idx;
    memset(&idx, 0, sizeof idx);
    idx.dir = mm_xstrdup(dir);
    mm_status st = MM_OK;
    for (int p = 0; p < patients && st == MM_OK; p++) {
        bool lesion = p % 2 == 0, malignant = p % 4 == 0, mass = p % 8 < 4;
        double r = lesion ? 0.06 * h + 0.04 * h * mm_philox_uniform(seed + 1, (uint64_t)p) : 0;
        double cy = 0.5 * h + 0.15 * h * (mm_philox_uniform(seed + 2, (uint64_t)p) - 0.5);
        double cx = 0.25 * w + 0.15 * w * mm_philox_uniform(seed + 3, (uint64_t)p);
        for (int view = 0; view < 2 && st == MM_OK; view++) {
            char id[64], patient[32];
            snprintf(patient, sizeof patient, "P_%05d", p);
            snprintf(id, sizeof id, "%s_LEFT_%s", patient, view ? "MLO" : "CC");
            png_dataset_draw(img, lesion ? mask : NULL, h, w,
                             seed * 1000003u + (uint64_t)(2 * p + view), cy, cx, r);
            mm_image pic = {h, w, 16, img};
            snprintf(file, sizeof file, "%s/images/%s.png", dir, id);
            st = mm_png_write(file, &pic);
            mm_index_image *im = mm_index_add(&idx);
            im->image_id = mm_xstrdup(id);
            im->dataset = mm_xstrdup("cbis-ddsm");
            im->patient_id = mm_xstrdup(patient);
            im->side = 'L';
            strcpy(im->view, view ? "MLO" : "CC");
            im->label = lesion && malignant;
            im->split = p % 5 == 3 ? MM_SPLIT_VAL : p % 5 == 4 ? MM_SPLIT_TEST : MM_SPLIT_TRAIN;
            im->height = h;
            im->width = w;
            snprintf(file, sizeof file, "images/%s.png", id);
            im->image = mm_xstrdup(file);
            im->source = mm_xstrdup(file);
            if (lesion && st == MM_OK) {
                mm_image m = {h, w, 8, mask};
                snprintf(file, sizeof file, "%s/masks/%s_0.png", dir, id);
                st = mm_png_write(file, &m);
                mm_roi *roi = mm_index_add_roi(im);
                roi->id = 1;
                roi->type = mass ? MM_ROI_MASS : MM_ROI_CALC;
                roi->pathology = malignant ? MM_PATH_MALIGNANT : MM_PATH_BENIGN;
                snprintf(file, sizeof file, "masks/%s_0.png", id);
                roi->mask = mm_xstrdup(file);
            }
        }
    }
    snprintf(file, sizeof file, "%s/index.csv", dir);
    if (st == MM_OK) st = mm_index_write(&idx, file);
    mm_index_free(&idx);
    free(img);
    free(mask);
    return st;
}

#endif
