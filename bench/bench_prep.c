/* `mammo prep` throughput on full-size mammograms: images per second converting 4000x3000 16-bit
 * DICOMs (each with one full-size 8-bit ROI mask, as in CBIS-DDSM) to 1152x896 PNGs, at 1, 2 and
 * all threads; the cost of each stage for one image (DICOM read, area resize, PNG write); and the
 * decode rate of the 1152x896 16-bit PNGs it writes (mm_png_read, one thread), which bounds what
 * the loader can feed the GPU.
 *
 *     bench_prep [n_images=4] [folder=/tmp/mammo-bench-prep] [height=4000] [width=3000] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/philox.h"
#include "tools/dicom.h"
#include "tools/fs.h"
#include "tools/index.h"
#include "tools/parallel.h"
#include "tools/png_io.h"
#include "tools/prep.h"
#include "tools/resize.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* A breast-like image: a bright half-ellipse with smooth texture and 10 bits of noise (so it
 * compresses about as badly as a scanned film), dark background. */
static void synth(uint16_t *px, int h, int w, uint64_t seed)
{
    for (int r = 0; r < h; r++)
        for (int c = 0; c < w; c++) {
            double dx = c / (0.8 * w), dy = (r - 0.5 * h) / (0.45 * h), d = dx * dx + dy * dy;
            double v = 600.0 + (double)(mm_philox_u32(seed, (uint64_t)r * w + c) & 255);
            if (d < 1.0)
                v = 18000.0 + 16000.0 * (1.0 - d) + 3000.0 * sin(r * 0.013 + seed) * cos(c * 0.011) +
                    (double)(mm_philox_u32(seed, (uint64_t)r * w + c) & 1023);
            px[(size_t)r * w + c] = (uint16_t)v;
        }
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 4;
    const char *dir = argc > 2 ? argv[2] : "/tmp/mammo-bench-prep";
    int H = argc > 3 ? atoi(argv[3]) : 4000, W = argc > 4 ? atoi(argv[4]) : 3000;
    if (n < 1 || H < 64 || W < 64) {
        fprintf(stderr, "usage: bench_prep [n_images] [folder] [height] [width]\n");
        return 1;
    }
    char path[8192], src[4096];
    mm_fs_rmtree(dir);
    snprintf(src, sizeof src, "%s/src", dir);
    if (mm_fs_mkdirs(src) != MM_OK) {
        fprintf(stderr, "bench_prep: %s\n", mm_last_error());
        return 1;
    }
    printf("bench_prep: writing %d synthetic %dx%d 16-bit DICOMs (+ 8-bit masks) to %s\n", n, H, W, src);
    uint16_t *px = malloc((size_t)H * W * sizeof *px);
    uint8_t *mask = calloc((size_t)H * W, 1);
    for (int r = H / 3; r < H / 3 + H / 10; r++)
        for (int c = W / 5; c < W / 5 + W / 10; c++) mask[(size_t)r * W + c] = 255;
    mm_index idx = {0};
    for (int i = 0; i < n; i++) {
        synth(px, H, W, (uint64_t)i + 1);
        mm_dicom_write_opts o = {.bits_allocated = 16, .bits_stored = 16,
                                 .series_description = "full mammogram images"};
        snprintf(path, sizeof path, "%s/img%d.dcm", src, i);
        mm_dicom_write_opts om = {.bits_allocated = 8, .bits_stored = 8,
                                  .series_description = "ROI mask images"};
        char mpath[4200];
        snprintf(mpath, sizeof mpath, "%s/mask%d.dcm", src, i);
        if (mm_dicom_write(path, px, H, W, &o) != MM_OK || mm_dicom_write(mpath, mask, H, W, &om) != MM_OK) {
            fprintf(stderr, "bench_prep: %s\n", mm_last_error());
            return 1;
        }
        mm_index_image *im = mm_index_add(&idx);
        char id[32];
        snprintf(id, sizeof id, "img%d", i);
        im->image_id = mm_xstrdup(id);
        im->dataset = mm_xstrdup("cbis-ddsm");
        snprintf(id, sizeof id, "P_%05d", i);
        im->patient_id = mm_xstrdup(id);
        im->side = 'L';
        snprintf(im->view, sizeof im->view, "CC");
        im->height = H;
        im->width = W;
        im->source = mm_xstrdup(path);
        im->image = mm_xstrdup(path);
        mm_roi *r = mm_index_add_roi(im);
        r->id = 1;
        r->type = MM_ROI_MASS;
        r->pathology = MM_PATH_MALIGNANT;
        r->mask = mm_xstrdup(mpath);
        im->label = 1;
    }
    char index[4200];
    snprintf(index, sizeof index, "%s/index.csv", dir);
    if (mm_index_write(&idx, index) != MM_OK) {
        fprintf(stderr, "bench_prep: %s\n", mm_last_error());
        return 1;
    }

    /* stage costs for one image, one thread */
    double t0 = now();
    uint16_t *raw;
    int h, w;
    if (mm_load_gray16(&raw, &h, &w, idx.images[0].image) != MM_OK) {
        fprintf(stderr, "bench_prep: %s\n", mm_last_error());
        return 1;
    }
    double t1 = now();
    uint16_t *small = malloc(1152 * 896 * sizeof *small);
    mm_resize_area_u16(small, raw, h, w, 1152, 896);
    double t2 = now();
    mm_image out = {.height = 1152, .width = 896, .bit_depth = 16, .pixels = small};
    snprintf(path, sizeof path, "%s/stage.png", dir);
    mm_png_write(path, &out);
    double t3 = now();
    printf("bench_prep: one image, one thread: DICOM read %.1f ms, area resize %.1f ms, PNG write "
           "%.1f ms\n", 1e3 * (t1 - t0), 1e3 * (t2 - t1), 1e3 * (t3 - t2));
    free(raw);
    free(small);

    int cpus = mm_cpu_count();
    int configs[3] = {1, 2, cpus};
    for (int k = 0; k < 3; k++) {
        if (k > 0 && configs[k] <= configs[k - 1]) continue;
        char out_dir[4200];
        snprintf(out_dir, sizeof out_dir, "%s/prep%d", dir, configs[k]);
        mm_prep_opts o = {.height = 1152, .width = 896, .threads = configs[k], .quiet = true};
        mm_prep_stats s;
        double a = now();
        if (mm_prep_run(&s, index, out_dir, &o) != MM_OK) {
            fprintf(stderr, "bench_prep: %s\n", mm_last_error());
            return 1;
        }
        double b = now();
        printf("bench_prep: mammo prep %dx%d -> 1152x896, %2d threads: %6.2f images/s (%d images "
               "+ %d masks in %.2f s)\n", H, W, configs[k], n / (b - a), s.images, s.masks, b - a);
    }

    /* decode rate of the prepped 1152x896 16-bit PNGs */
    int reps = 0;
    double a = now(), b = a;
    while (b - a < 2.0 || reps < n) {
        mm_image img;
        snprintf(path, sizeof path, "%s/prep1/images/img%d.png", dir, reps % n);
        if (mm_png_read(path, &img) != MM_OK) {
            fprintf(stderr, "bench_prep: %s\n", mm_last_error());
            return 1;
        }
        mm_image_free(&img);
        reps++;
        b = now();
    }
    printf("bench_prep: mm_png_read 1152x896 16-bit, 1 thread: %.1f images/s\n", reps / (b - a));
    mm_index_free(&idx);
    free(px);
    free(mask);
    mm_fs_rmtree(dir);
    return 0;
}
