/* Data loader, pixel mean and class-balanced weights.
 *
 * The loader's batches are checked against images written here with libpng directly (not through
 * the code under test): every sample once per epoch with exact values, bitwise the same batches
 * for any number of threads and after a resume, clear errors for bad files, clean shutdown
 * mid-epoch. Augmentation and resizing themselves: test_augment.c. */
#include <png.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/harness.h"
#include "tests/random_pixels.h"
#include "train/augment.h"
#include "train/class_weights.h"
#include "train/image_prep.h"
#include "train/loader.h"
#include "train/pixel_mean.h"

/* ---- helpers ---- */

/* Writes a grayscale PNG with libpng (not through the code under test). */
static void write_png(const char *path, int h, int w, int bit_depth, const void *px)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        CHECK_MSG(0, "cannot write %s", path);
        return;
    }
    png_structp p = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(p);
    if (setjmp(png_jmpbuf(p))) {
        CHECK_MSG(0, "libpng failed writing %s", path);
        png_destroy_write_struct(&p, &info);
        fclose(f);
        return;
    }
    png_init_io(p, f);
    png_set_IHDR(p, info, (png_uint_32)w, (png_uint_32)h, bit_depth, PNG_COLOR_TYPE_GRAY,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(p, info);
    int bytes = bit_depth == 16 ? 2 : 1;
    unsigned char *row = malloc((size_t)w * bytes);
    for (int r = 0; r < h; r++) {
        for (int c = 0; c < w; c++) {
            if (bit_depth == 16) {
                uint16_t v = ((const uint16_t *)px)[(size_t)r * w + c];
                row[2 * c] = (unsigned char)(v >> 8); /* PNG is big-endian */
                row[2 * c + 1] = (unsigned char)(v & 0xff);
            } else {
                row[c] = ((const uint8_t *)px)[(size_t)r * w + c];
            }
        }
        png_write_row(p, row);
    }
    free(row);
    png_write_end(p, NULL);
    png_destroy_write_struct(&p, &info);
    fclose(f);
}

/* A dataset of n random 16-bit h x w PNGs in the test's temp folder; item i has label i % 3 and
 * weight 1 + i. Paths stay valid until free_items. */
static mm_loader_item *make_items(int n, int h, int w, uint64_t seed)
{
    mm_loader_item *items = calloc((size_t)n, sizeof *items);
    for (int i = 0; i < n; i++) {
        char *path = malloc(600);
        snprintf(path, 600, "%s/img%03d.png", mm_test_tmpdir(), i);
        uint16_t *px = random_u16(h * w, seed + (uint64_t)i);
        write_png(path, h, w, 16, px);
        free(px);
        items[i].path = path;
        items[i].label = i % 3;
        items[i].weight = 1.0f + (float)i;
    }
    return items;
}

static void free_items(mm_loader_item *items, int n)
{
    for (int i = 0; i < n; i++) free((char *)items[i].path);
    free(items);
}

/* Every batch of a run, concatenated, for bitwise comparisons. */
typedef struct run_log {
    float *images;
    int32_t *labels, *indices;
    float *weights;
    int *counts; /* per call of next, 0 = end of epoch */
    int n_calls, n_samples;
} run_log;

static void run_log_free(run_log *r)
{
    free(r->images);
    free(r->labels);
    free(r->indices);
    free(r->weights);
    free(r->counts);
}

/* Calls next `calls` times and records everything. */
static void record(run_log *r, mm_loader *L, int calls, int B, int64_t sample_floats)
{
    memset(r, 0, sizeof *r);
    r->images = malloc((size_t)calls * B * sample_floats * sizeof(float));
    r->labels = malloc((size_t)calls * B * sizeof(int32_t));
    r->indices = malloc((size_t)calls * B * sizeof(int32_t));
    r->weights = malloc((size_t)calls * B * sizeof(float));
    r->counts = malloc((size_t)calls * sizeof(int));
    for (int k = 0; k < calls; k++) {
        mm_batch b = {r->images + (int64_t)r->n_samples * sample_floats, r->labels + r->n_samples,
                      r->weights + r->n_samples, r->indices + r->n_samples};
        int n = -1;
        mm_status s = mm_loader_next(L, &b, &n);
        CHECK_MSG(s == MM_OK, "next failed: %s", mm_last_error());
        r->counts[r->n_calls++] = n;
        r->n_samples += n;
    }
}

/* ---- class weights ---- */

MM_TEST(class_weights_as_reference)
{
    int32_t y1[4] = {0, 0, 0, 1};
    float w[8];
    mm_class_balanced_weights(w, y1, 4, 2);
    /* reference: w = 1 / mean(y == class) */
    CHECK_CLOSE(w[0], 4.0 / 3.0, 1e-6, 0);
    CHECK_CLOSE(w[1], 4.0 / 3.0, 1e-6, 0);
    CHECK_CLOSE(w[2], 4.0 / 3.0, 1e-6, 0);
    CHECK_CLOSE(w[3], 4.0, 1e-6, 0);
    CHECK_CLOSE(w[0] + w[1] + w[2], w[3], 1e-5, 0); /* each class weighs the same in total */

    int32_t y2[6] = {2, 1, 2, 0, 2, 1};
    mm_class_balanced_weights(w, y2, 6, 5);
    float want2[6] = {2, 3, 2, 6, 2, 3};
    CHECK_ARRAYS("three classes", w, want2, 6, 1e-6, 0);

    int32_t y3[2] = {1, 1};
    mm_class_balanced_weights(w, y3, 2, 2);
    CHECK(w[0] == 1.0f && w[1] == 1.0f);
}

/* ---- epoch order ---- */

MM_TEST(epoch_order_is_a_seeded_permutation)
{
    int n = 1000;
    int32_t *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    int *seen = calloc(n, sizeof *seen);
    mm_loader_epoch_order(a, n, 42, 0, 1);
    for (int i = 0; i < n; i++) seen[a[i]]++;
    int once = 0;
    for (int i = 0; i < n; i++) once += seen[i] == 1;
    CHECK_EQ_INT(once, n);
    mm_loader_epoch_order(b, n, 42, 0, 1);
    CHECK(!memcmp(a, b, n * sizeof *a));
    mm_loader_epoch_order(b, n, 42, 1, 1);
    CHECK(memcmp(a, b, n * sizeof *a) != 0);
    mm_loader_epoch_order(b, n, 43, 0, 1);
    CHECK(memcmp(a, b, n * sizeof *a) != 0);
    int fixed = 0;
    for (int i = 0; i < n; i++) fixed += a[i] == i;
    CHECK(fixed < 10); /* a real shuffle: about 1 fixed point expected */
    mm_loader_epoch_order(b, n, 42, 0, 0);
    for (int i = 0; i < n; i++) CHECK(b[i] == i);
    free(a);
    free(b);
    free(seen);
}

/* ---- the loader ---- */

MM_TEST(loader_every_sample_once_and_exact_values)
{
    int n = 10, H = 7, W = 5;
    mm_loader_item *items = make_items(n, H, W, 100);
    mm_loader_opts o;
    mm_loader_opts_default(&o);
    o.batch_size = 3;
    o.height = H;
    o.width = W;
    o.channels = 3;
    o.rescale = 255.0f / 65535.0f;
    o.mean = 52.18f;
    o.seed = 9;
    o.n_threads = 2;
    mm_loader *L;
    CHECK(mm_loader_create(&L, items, n, &o) == MM_OK);
    CHECK_EQ_INT(mm_loader_batches_per_epoch(L), 4);
    int64_t sf = (int64_t)H * W * 3;
    run_log r;
    record(&r, L, 10, 3, sf); /* two epochs: 3,3,3,1,0 twice */
    int want_counts[10] = {3, 3, 3, 1, 0, 3, 3, 3, 1, 0};
    for (int k = 0; k < 10; k++) CHECK_EQ_INT(r.counts[k], want_counts[k]);
    int64_t e, bt;
    mm_loader_position(L, &e, &bt);
    CHECK(e == 2 && bt == 0);
    int32_t order[10];
    for (int ep = 0; ep < 2; ep++) {
        mm_loader_epoch_order(order, n, 9, ep, 1);
        int seen[10] = {0};
        for (int i = 0; i < n; i++) {
            int k = ep * n + i, item = r.indices[k];
            CHECK_EQ_INT(item, order[i]);
            seen[item]++;
            CHECK_EQ_INT(r.labels[k], item % 3);
            CHECK(r.weights[k] == 1.0f + (float)item);
            /* exact values: (float)raw * rescale - mean, replicated */
            uint16_t *px = random_u16(H * W, 100 + (uint64_t)item);
            int bad = 0;
            for (int p = 0; p < H * W; p++)
                for (int c = 0; c < 3; c++)
                    bad += r.images[k * sf + 3 * p + c] != (float)px[p] * o.rescale - o.mean;
            CHECK_MSG(bad == 0, "sample %d: %d values differ", k, bad);
            free(px);
        }
        for (int i = 0; i < n; i++) CHECK_EQ_INT(seen[i], 1);
    }
    CHECK(memcmp(r.indices, r.indices + n, n * sizeof(int32_t)) != 0); /* reshuffled */
    run_log_free(&r);
    mm_loader_free(L);

    /* one channel, no shuffle, 8-bit PNGs, drop_last */
    uint8_t px8[35];
    for (int i = 0; i < 35; i++) px8[i] = (uint8_t)(i * 7);
    char path8[600];
    snprintf(path8, sizeof path8, "%s/eight.png", mm_test_tmpdir());
    write_png(path8, H, W, 8, px8);
    mm_loader_item it8[5];
    for (int i = 0; i < 5; i++) it8[i] = (mm_loader_item){i < 4 ? items[i].path : path8, i, 1};
    o.channels = 1;
    o.shuffle = 0;
    o.drop_last = 1;
    o.batch_size = 2;
    o.rescale = 1.0f / 255.0f;
    o.mean = 0.5f;
    CHECK(mm_loader_create(&L, it8, 5, &o) == MM_OK);
    CHECK_EQ_INT(mm_loader_batches_per_epoch(L), 2);
    record(&r, L, 3, 2, H * W);
    CHECK(r.counts[0] == 2 && r.counts[1] == 2 && r.counts[2] == 0);
    for (int i = 0; i < 4; i++) CHECK_EQ_INT(r.indices[i], i);
    uint16_t *px = random_u16(H * W, 101);
    int bad = 0;
    for (int p = 0; p < H * W; p++) bad += r.images[H * W + p] != (float)px[p] * o.rescale - o.mean;
    CHECK_MSG(bad == 0, "1 channel: %d values differ", bad);
    free(px);
    run_log_free(&r);
    mm_loader_free(L);
    /* the 8-bit file, at position 4 without drop_last */
    o.drop_last = 0;
    o.start_batch = 2;
    CHECK(mm_loader_create(&L, it8, 5, &o) == MM_OK);
    record(&r, L, 2, 2, H * W);
    CHECK(r.counts[0] == 1 && r.counts[1] == 0 && r.indices[0] == 4);
    bad = 0;
    for (int p = 0; p < H * W; p++) bad += r.images[p] != (float)px8[p] * o.rescale - o.mean;
    CHECK_MSG(bad == 0, "8-bit: %d values differ", bad);
    run_log_free(&r);
    mm_loader_free(L);
    free_items(items, n);
}

static mm_loader_opts augmenting_opts(int B, int H, int W)
{
    mm_loader_opts o;
    mm_loader_opts_default(&o);
    o.batch_size = B;
    o.height = H;
    o.width = W;
    o.channels = 3;
    o.rescale = 255.0f / 65535.0f;
    o.mean = 50.0f;
    o.seed = 2024;
    o.augment = 1;
    return o;
}

MM_TEST(loader_bitwise_identical_across_threads)
{
    int n = 13, B = 4;
    mm_loader_item *items = make_items(n, 24, 19, 300);
    /* output 20x16: every image is also resized */
    mm_loader_opts o = augmenting_opts(B, 20, 16);
    int64_t sf = 20 * 16 * 3;
    run_log r[3];
    int threads[3] = {1, 4, 3}, prefetch[3] = {1, 3, 0};
    for (int k = 0; k < 3; k++) {
        o.n_threads = threads[k];
        o.prefetch = prefetch[k];
        mm_loader *L;
        CHECK(mm_loader_create(&L, items, n, &o) == MM_OK);
        record(&r[k], L, 10, B, sf); /* 2 epochs of 4 batches + end signals */
        mm_loader_free(L);
    }
    for (int k = 1; k < 3; k++) {
        CHECK_EQ_INT(r[k].n_samples, 2 * n);
        CHECK(!memcmp(r[0].counts, r[k].counts, 10 * sizeof(int)));
        CHECK(!memcmp(r[0].indices, r[k].indices, 2 * n * sizeof(int32_t)));
        CHECK_MSG(!memcmp(r[0].images, r[k].images, 2 * n * sf * sizeof(float)),
                  "%d threads differ from 1 thread", threads[k]);
    }
    /* augmentation really happened: the first sample is not the plain resized image */
    mm_prep_opts po = {20, 16, 3, o.rescale, o.mean, MM_INTERP_BILINEAR};
    mm_prep_scratch s = {0};
    float *plain = malloc(sf * sizeof(float));
    CHECK(mm_prep_png(plain, items[r[0].indices[0]].path, &po, NULL, &s) == MM_OK);
    CHECK(memcmp(plain, r[0].images, sf * sizeof(float)) != 0);
    /* and it is exactly the documented function of (seed, epoch, position) */
    mm_augment_draw d;
    mm_augment_sample(&d, &o.aug, o.seed, 1, 5); /* epoch 1, position 5 = second batch, sample 1 */
    CHECK(mm_prep_png(plain, items[r[0].indices[n + 5]].path, &po, &d, &s) == MM_OK);
    CHECK(!memcmp(plain, r[0].images + (n + 5) * sf, sf * sizeof(float)));
    free(plain);
    mm_prep_scratch_free(&s);
    for (int k = 0; k < 3; k++) run_log_free(&r[k]);
    free_items(items, n);
}

MM_TEST(loader_resume_equals_uninterrupted)
{
    int n = 11, B = 3; /* 4 batches per epoch: 3,3,3,2 */
    mm_loader_item *items = make_items(n, 10, 8, 400);
    mm_loader_opts o = augmenting_opts(B, 10, 8);
    o.n_threads = 2;
    int64_t sf = 10 * 8 * 3;
    mm_loader *L;
    CHECK(mm_loader_create(&L, items, n, &o) == MM_OK);
    run_log full;
    record(&full, L, 15, B, sf); /* epochs 0, 1, 2 with their end signals */
    mm_loader_free(L);

    /* resume at (1, 2): skips epoch 0 (5 calls) and 2 batches of epoch 1 (6 samples) */
    o.start_epoch = 1;
    o.start_batch = 2;
    o.n_threads = 3;
    CHECK(mm_loader_create(&L, items, n, &o) == MM_OK);
    int64_t e, b;
    mm_loader_position(L, &e, &b);
    CHECK(e == 1 && b == 2);
    run_log part;
    record(&part, L, 8, B, sf);
    mm_loader_free(L);
    CHECK(!memcmp(part.counts, full.counts + 7, 8 * sizeof(int)));
    int skip = n + 6;
    CHECK_EQ_INT(part.n_samples, full.n_samples - skip);
    CHECK(!memcmp(part.indices, full.indices + skip, part.n_samples * sizeof(int32_t)));
    CHECK_MSG(!memcmp(part.images, full.images + skip * sf, part.n_samples * sf * sizeof(float)),
              "resumed batches differ");
    run_log_free(&part);

    /* resume at the end-of-epoch signal of epoch 0, with max_epochs = 2 */
    o.start_epoch = 0;
    o.start_batch = 4;
    o.max_epochs = 2;
    CHECK(mm_loader_create(&L, items, n, &o) == MM_OK);
    record(&part, L, 8, B, sf);
    int want[8] = {0, 3, 3, 3, 2, 0, 0, 0};
    for (int k = 0; k < 8; k++) CHECK_EQ_INT(part.counts[k], want[k]);
    CHECK(!memcmp(part.images, full.images + n * sf, n * sf * sizeof(float)));
    mm_loader_position(L, &e, &b);
    CHECK(e == 2 && b == 0);
    run_log_free(&part);
    mm_loader_free(L);
    run_log_free(&full);
    free_items(items, n);
}

/* The shards of a data-parallel step across nodes (opts.shards): 3 shards of 2 batches each.
 * One node with steps of several batches (shard_batches alone) yields whole steps only.
 * 23 items in batches of 2 make 11 batches an epoch, one group of 6 whole: shard k yields
 * batches 2k and 2k+1 of the whole loader's epoch, bitwise (augmentation keyed by the epoch's
 * positions), and its epoch ends after them, the last 5 batches left to no shard. */
MM_TEST(loader_shards_are_the_whole_loaders_batches)
{
    int n = 23, B = 2, S = 3, K = 2;
    mm_loader_item *items = make_items(n, 10, 8, 500);
    mm_loader_opts o = augmenting_opts(B, 10, 8);
    o.n_threads = 2;
    o.drop_last = 1;
    o.max_epochs = 2;
    int64_t sf = 10 * 8 * 3, per_epoch = 11;
    mm_loader *L;
    CHECK(mm_loader_create(&L, items, n, &o) == MM_OK);
    run_log full;
    record(&full, L, 2 * (int)(per_epoch + 1), B, sf);
    mm_loader_free(L);
    for (int k = 0; k < S; k++) {
        o.shards = S;
        o.shard = k;
        o.shard_batches = K;
        CHECK(mm_loader_create(&L, items, n, &o) == MM_OK);
        CHECK_EQ_INT(mm_loader_batches_per_epoch(L), K);
        run_log part;
        record(&part, L, 2 * (K + 1), B, sf);
        mm_loader_free(L);
        int want[6] = {B, B, 0, B, B, 0};
        for (int c = 0; c < 6; c++) CHECK_EQ_INT(part.counts[c], want[c]);
        for (int e = 0; e < 2; e++) {
            int64_t whole = e * per_epoch * B + (int64_t)k * K * B, mine = (int64_t)e * K * B;
            CHECK(!memcmp(part.indices + mine, full.indices + whole, K * B * sizeof(int32_t)));
            CHECK_MSG(!memcmp(part.images + mine * sf, full.images + whole * sf,
                              K * B * sf * sizeof(float)),
                      "shard %d's epoch %d differs from the whole loader's batches", k, e);
        }
        run_log_free(&part);
    }
    o.shards = 0; /* one node, steps of 4 batches: the epoch's first 8, its last 3 left out */
    o.shard = 0;
    o.shard_batches = 4;
    CHECK(mm_loader_create(&L, items, n, &o) == MM_OK);
    CHECK_EQ_INT(mm_loader_batches_per_epoch(L), 8);
    run_log steps;
    record(&steps, L, 9, B, sf);
    mm_loader_free(L);
    CHECK_EQ_INT(steps.counts[8], 0);
    CHECK(!memcmp(steps.images, full.images, 8 * B * sf * sizeof(float)));
    run_log_free(&steps);
    o.shards = 12; /* 12 x 2 batches: more than the epoch's 11 */
    o.shard_batches = 2;
    o.shard = 0;
    CHECK(mm_loader_create(&L, items, n, &o) == MM_ERR_ARG);
    CHECK(strstr(mm_last_error(), "no step of 12 shards x 2 batches") != NULL);
    o.shards = 3;
    o.shard = 3;
    CHECK(mm_loader_create(&L, items, n, &o) == MM_ERR_ARG);
    run_log_free(&full);
    free_items(items, n);
}

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "test_loader: timed out (loader hang)\n";
    if (write(2, msg, sizeof msg - 1) < 0) _exit(3);
    _exit(3);
}

MM_TEST(loader_bad_files_give_clear_errors)
{
    signal(SIGALRM, on_alarm);
    alarm(60);
    int n = 6;
    mm_loader_item *items = make_items(n, 8, 8, 500);
    char missing[600], corrupt[600], truncated[600];
    snprintf(missing, sizeof missing, "%s/no-such-file.png", mm_test_tmpdir());
    snprintf(corrupt, sizeof corrupt, "%s/corrupt.png", mm_test_tmpdir());
    snprintf(truncated, sizeof truncated, "%s/truncated.png", mm_test_tmpdir());
    FILE *f = fopen(corrupt, "wb");
    fputs("this is not a PNG file at all, just text", f);
    fclose(f);
    /* a real PNG cut in half */
    FILE *src = fopen(items[0].path, "rb");
    char buf[4096];
    size_t len = fread(buf, 1, sizeof buf, src);
    fclose(src);
    f = fopen(truncated, "wb");
    fwrite(buf, 1, len / 2, f);
    fclose(f);
    const char *bad[3] = {missing, corrupt, truncated};
    for (int k = 0; k < 3; k++) {
        mm_loader_item it[6];
        memcpy(it, items, sizeof it);
        it[3].path = bad[k]; /* batch 1 (items 2, 3) holds the bad file; no shuffle */
        mm_loader_opts o;
        mm_loader_opts_default(&o);
        o.batch_size = 2;
        o.height = o.width = 8;
        o.shuffle = 0;
        o.n_threads = 3;
        mm_loader *L;
        CHECK(mm_loader_create(&L, it, 6, &o) == MM_OK);
        float img[2 * 64 * 3];
        int32_t lab[2];
        mm_batch b = {img, lab, NULL, NULL};
        int cnt;
        CHECK(mm_loader_next(L, &b, &cnt) == MM_OK && cnt == 2);
        mm_status s = mm_loader_next(L, &b, &cnt);
        CHECK(s != MM_OK && cnt == 0);
        CHECK_MSG(strstr(mm_last_error(), bad[k]) != NULL, "message does not name %s: %s", bad[k],
                  mm_last_error());
        /* the loader goes on */
        CHECK(mm_loader_next(L, &b, &cnt) == MM_OK && cnt == 2);
        CHECK(mm_loader_next(L, &b, &cnt) == MM_OK && cnt == 0);
        mm_loader_free(L);
    }
    /* the pixel mean reports the same file */
    mm_loader_item it[6];
    memcpy(it, items, sizeof it);
    it[4].path = corrupt;
    double mean;
    CHECK(mm_pixel_mean(&mean, it, 6, 0, 0, 1.0f, 3) != MM_OK);
    CHECK(strstr(mm_last_error(), corrupt) != NULL);
    /* bad options */
    mm_loader *L = NULL;
    mm_loader_opts o;
    mm_loader_opts_default(&o);
    o.channels = 2;
    CHECK(mm_loader_create(&L, items, n, &o) == MM_ERR_ARG && L == NULL);
    mm_loader_opts_default(&o);
    o.batch_size = 7;
    o.drop_last = 1;
    CHECK(mm_loader_create(&L, items, n, &o) == MM_ERR_ARG);
    CHECK(strstr(mm_last_error(), "drop_last") != NULL);
    alarm(0);
    free_items(items, n);
}

MM_TEST(loader_shutdown_mid_epoch)
{
    int n = 40;
    mm_loader_item *items = make_items(n, 32, 24, 600);
    mm_loader_opts o = augmenting_opts(4, 32, 24);
    o.n_threads = 4;
    /* freed before anything is consumed, after one batch, and with a full ring */
    for (int k = 0; k < 3; k++) {
        mm_loader *L;
        CHECK(mm_loader_create(&L, items, n, &o) == MM_OK);
        if (k >= 1) {
            float *img = malloc(4 * 32 * 24 * 3 * sizeof(float));
            int32_t lab[4];
            mm_batch b = {img, lab, NULL, NULL};
            int cnt;
            CHECK(mm_loader_next(L, &b, &cnt) == MM_OK && cnt == 4);
            free(img);
        }
        if (k == 2) usleep(100000);
        mm_loader_free(L);
    }
    mm_loader_free(NULL);
    free_items(items, n);
}

/* ---- pixel mean ---- */

MM_TEST(pixel_mean_exact_and_thread_independent)
{
    int n = 5, H = 9, W = 6;
    mm_loader_item *items = make_items(n, H, W, 700);
    double want = 0;
    for (int i = 0; i < n; i++) {
        uint16_t *px = random_u16(H * W, 700 + (uint64_t)i);
        for (int p = 0; p < H * W; p++) want += px[p];
        free(px);
    }
    float rescale = 255.0f / 65535.0f;
    want = want / (n * H * W) * rescale;
    double m1, m3, m4;
    CHECK(mm_pixel_mean(&m1, items, n, 0, 0, rescale, 1) == MM_OK);
    CHECK(mm_pixel_mean(&m3, items, n, 0, 0, rescale, 3) == MM_OK);
    CHECK_CLOSE(m1, want, 1e-12, 1e-12);
    CHECK(m1 == m3);
    /* resized to 3x3 (area): the mean of block means is the plain mean here */
    CHECK(mm_pixel_mean(&m1, items, n, 3, 3, rescale, 1) == MM_OK);
    CHECK(mm_pixel_mean(&m4, items, n, 3, 3, rescale, 4) == MM_OK);
    CHECK_CLOSE(m1, want, 1e-4, 1e-6);
    CHECK(m1 == m4);
    free_items(items, n);
}
