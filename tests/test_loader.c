/* Data loader, augmentation, resizing, pixel mean and class-balanced weights.
 *
 * References are independent of the code under test: flips and rot90 are index permutations, the
 * affine matrix is rebuilt as the Keras product of 3x3 matrices (offset . R . Sh . Z . reset,
 * then the output flips), the warp is checked against a naive double-precision bilinear sampler
 * with edge replication, area resizing against exact interval integrals, and the loader's batches
 * against images written here with libpng directly. */
#include <math.h>
#include <png.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/philox.h"
#include "tests/harness.h"
#include "train/augment.h"
#include "train/class_weights.h"
#include "train/image_prep.h"
#include "train/loader.h"
#include "train/pixel_mean.h"
#include "train/resize.h"

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

static uint16_t *random_u16(int n, uint64_t seed)
{
    uint16_t *x = malloc((size_t)n * sizeof *x);
    for (int i = 0; i < n; i++) x[i] = (uint16_t)(mm_philox_u32(seed, (uint64_t)i) & 0xffff);
    return x;
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

static mm_image make_image(int h, int w, const uint16_t *px)
{
    mm_image img = {h, w, 16, malloc((size_t)h * w * 2)};
    memcpy(img.pixels, px, (size_t)h * w * 2);
    return img;
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

/* ---- augmentation geometry ---- */

static void mat3_mul(double c[9], const double a[9], const double b[9])
{
    double t[9];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            double s = 0;
            for (int k = 0; k < 3; k++) s += a[3 * i + k] * b[3 * k + j];
            t[3 * i + j] = s;
        }
    memcpy(c, t, sizeof t);
}

/* The Keras 2.0 construction, step by step with 3x3 matrices, about the centre (H-1)/2, (W-1)/2,
 * then the output flips as separate maps p -> F p. */
static void keras_map(double q[2], const mm_augment_draw *d, int H, int W, double pr, double pc)
{
    double cr = (H - 1) / 2.0, cc = (W - 1) / 2.0;
    double R[9] = {cos(d->theta), -sin(d->theta), 0, sin(d->theta), cos(d->theta), 0, 0, 0, 1};
    double S[9] = {1, -sin(d->shear), 0, 0, cos(d->shear), 0, 0, 0, 1};
    double Z[9] = {d->zx, 0, 0, 0, d->zy, 0, 0, 0, 1};
    double off[9] = {1, 0, cr, 0, 1, cc, 0, 0, 1}, reset[9] = {1, 0, -cr, 0, 1, -cc, 0, 0, 1};
    double T[9];
    mat3_mul(T, R, S);
    mat3_mul(T, T, Z);
    mat3_mul(T, off, T);
    mat3_mul(T, T, reset);
    /* flips act on the output: out(p) = warped(flip(p)) */
    if (d->vflip) pr = (H - 1) - pr;
    if (d->hflip) pc = (W - 1) - pc;
    q[0] = T[0] * pr + T[1] * pc + T[2];
    q[1] = T[3] * pr + T[4] * pc + T[5];
}

MM_TEST(augment_matrix_matches_keras_composition)
{
    int H = 37, W = 23;
    mm_augment_params p;
    mm_augment_params_default(&p);
    for (int s = 0; s < 50; s++) {
        mm_augment_draw d;
        mm_augment_sample(&d, &p, 7, 3, s);
        double m[6];
        mm_augment_matrix(m, &d, H, W);
        double pts[4][2] = {{0, 0}, {36, 22}, {5.5, 17.25}, {18, 11}};
        for (int k = 0; k < 4; k++) {
            double q[2];
            keras_map(q, &d, H, W, pts[k][0], pts[k][1]);
            double gr = m[0] * pts[k][0] + m[1] * pts[k][1] + m[2];
            double gc = m[3] * pts[k][0] + m[4] * pts[k][1] + m[5];
            CHECK_CLOSE(gr, q[0], 1e-9, 0);
            CHECK_CLOSE(gc, q[1], 1e-9, 0);
        }
    }
    /* a zoom of 2 about the centre: the centre stays, the corner maps twice as far out */
    mm_augment_draw z;
    mm_augment_identity(&z);
    z.zx = z.zy = 2.0;
    double m[6];
    mm_augment_matrix(m, &z, 5, 9);
    CHECK_CLOSE(m[0] * 2 + m[1] * 4 + m[2], 2.0, 1e-12, 0);
    CHECK_CLOSE(m[3] * 2 + m[4] * 4 + m[5], 4.0, 1e-12, 0);
    CHECK_CLOSE(m[2], -2.0, 1e-12, 0);
    CHECK_CLOSE(m[5], -4.0, 1e-12, 0);
}

static mm_prep_opts prep_opts(int h, int w, int c)
{
    mm_prep_opts o = {h, w, c, 1.0f, 0.0f, MM_INTERP_BILINEAR};
    return o;
}

MM_TEST(augment_flips_are_exact_mirrors)
{
    int H = 9, W = 14;
    uint16_t *px = random_u16(H * W, 11);
    mm_image img = make_image(H, W, px);
    mm_prep_opts o = prep_opts(H, W, 1);
    mm_prep_scratch s = {0};
    float out[9 * 14];
    for (int mode = 1; mode <= 3; mode++) {
        mm_augment_draw d;
        mm_augment_identity(&d);
        d.hflip = mode & 1;
        d.vflip = (mode >> 1) & 1;
        mm_prep_decoded(out, &img, &o, &d, &s);
        int bad = 0;
        for (int r = 0; r < H; r++)
            for (int c = 0; c < W; c++) {
                int sr = d.vflip ? H - 1 - r : r, sc = d.hflip ? W - 1 - c : c;
                bad += out[r * W + c] != (float)px[sr * W + sc];
            }
        CHECK_MSG(bad == 0, "flip mode %d: %d pixels differ", mode, bad);
    }
    mm_prep_scratch_free(&s);
    free(img.pixels);
    free(px);
}

MM_TEST(augment_rotation_90_is_rot90)
{
    int N = 12;
    uint16_t *px = random_u16(N * N, 12);
    mm_image img = make_image(N, N, px);
    mm_prep_opts o = prep_opts(N, N, 1);
    mm_prep_scratch s = {0};
    float out[12 * 12];
    mm_augment_draw d;
    mm_augment_identity(&d);
    d.theta = M_PI / 2;
    mm_prep_decoded(out, &img, &o, &d, &s);
    /* +90 degrees: out[r][c] = in[N-1-c][r] (np.rot90(in, k=-1)) */
    int bad = 0;
    for (int r = 0; r < N; r++)
        for (int c = 0; c < N; c++) bad += out[r * N + c] != (float)px[(N - 1 - c) * N + r];
    CHECK_MSG(bad == 0, "+90: %d pixels differ", bad);
    d.theta = -M_PI / 2; /* np.rot90(in, k=1): out[r][c] = in[c][N-1-r] */
    mm_prep_decoded(out, &img, &o, &d, &s);
    bad = 0;
    for (int r = 0; r < N; r++)
        for (int c = 0; c < N; c++) bad += out[r * N + c] != (float)px[c * N + (N - 1 - r)];
    CHECK_MSG(bad == 0, "-90: %d pixels differ", bad);
    mm_prep_scratch_free(&s);
    free(img.pixels);
    free(px);
}

MM_TEST(augment_constant_image_stays_constant)
{
    int H = 20, W = 15;
    uint16_t *px = malloc(H * W * 2);
    for (int i = 0; i < H * W; i++) px[i] = 40000;
    mm_image img = make_image(H, W, px);
    mm_prep_opts o = prep_opts(H, W, 3);
    o.rescale = 255.0f / 65535.0f;
    o.mean = 52.18f;
    mm_prep_scratch s = {0};
    float *out = malloc(sizeof(float) * H * W * 3);
    mm_augment_params p;
    mm_augment_params_default(&p);
    p.intensity_shift = 0;
    float want = 40000.0f * o.rescale - o.mean;
    for (int k = 0; k < 10; k++) {
        mm_augment_draw d;
        mm_augment_sample(&d, &p, 5, 0, k);
        d.zx = k & 1 ? 1.2 : 0.8;
        mm_prep_decoded(out, &img, &o, &d, &s);
        int bad = 0;
        for (int i = 0; i < H * W * 3; i++) bad += out[i] != want;
        CHECK_MSG(bad == 0, "draw %d: %d values not constant", k, bad);
    }
    free(out);
    mm_prep_scratch_free(&s);
    free(img.pixels);
    free(px);
}

/* Naive bilinear sampling at (qr, qc) with scipy's 'nearest' mode: the image extended by edge
 * replication, evaluated in double. */
static double sample_naive(const uint16_t *px, int H, int W, double qr, double qc)
{
    double r0 = floor(qr), c0 = floor(qc), fr = qr - r0, fc = qc - c0, v = 0;
    for (int dr = 0; dr < 2; dr++)
        for (int dc = 0; dc < 2; dc++) {
            long r = (long)r0 + dr, c = (long)c0 + dc;
            r = r < 0 ? 0 : (r > H - 1 ? H - 1 : r);
            c = c < 0 ? 0 : (c > W - 1 ? W - 1 : c);
            double wgt = (dr ? fr : 1 - fr) * (dc ? fc : 1 - fc);
            v += wgt * px[r * W + c];
        }
    return v;
}

MM_TEST(augment_warp_matches_naive_bilinear)
{
    int H = 31, W = 22;
    uint16_t *px = random_u16(H * W, 13);
    mm_image img = make_image(H, W, px);
    mm_prep_opts o = prep_opts(H, W, 1);
    mm_prep_scratch s = {0};
    float *out = malloc(sizeof(float) * H * W);
    float *want = malloc(sizeof(float) * H * W);
    mm_augment_params p;
    mm_augment_params_default(&p);
    p.intensity_shift = 0;
    for (int k = 0; k < 8; k++) {
        mm_augment_draw d;
        mm_augment_sample(&d, &p, 99, 1, k);
        mm_prep_decoded(out, &img, &o, &d, &s);
        for (int r = 0; r < H; r++)
            for (int c = 0; c < W; c++) {
                double q[2];
                keras_map(q, &d, H, W, r, c);
                want[r * W + c] = (float)sample_naive(px, H, W, q[0], q[1]);
            }
        CHECK_ARRAYS("warp", out, want, H * W, 0.05, 1e-5);
    }
    /* nearest: rounding of the same positions */
    o.interp = MM_INTERP_NEAREST;
    mm_augment_draw d;
    mm_augment_sample(&d, &p, 99, 1, 3);
    mm_prep_decoded(out, &img, &o, &d, &s);
    int bad = 0;
    for (int r = 0; r < H; r++)
        for (int c = 0; c < W; c++) {
            double q[2];
            keras_map(q, &d, H, W, r, c);
            long ir = lround(q[0]), ic = lround(q[1]);
            ir = ir < 0 ? 0 : (ir > H - 1 ? H - 1 : ir);
            ic = ic < 0 ? 0 : (ic > W - 1 ? W - 1 : ic);
            double frac_r = fabs(q[0] - floor(q[0]) - 0.5), frac_c = fabs(q[1] - floor(q[1]) - 0.5);
            if (frac_r < 1e-6 || frac_c < 1e-6) continue; /* ties may round either way */
            bad += out[r * W + c] != (float)px[ir * W + ic];
        }
    CHECK_MSG(bad == 0, "nearest: %d pixels differ", bad);
    free(out);
    free(want);
    mm_prep_scratch_free(&s);
    free(img.pixels);
    free(px);
}

MM_TEST(augment_draws_in_range_and_pure)
{
    mm_augment_params p;
    mm_augment_params_default(&p);
    int n = 4000, hf = 0, vf = 0, rot_big = 0;
    double zsum = 0;
    for (int i = 0; i < n; i++) {
        mm_augment_draw d, e;
        mm_augment_sample(&d, &p, 1234, 2, i);
        mm_augment_sample(&e, &p, 1234, 2, i);
        CHECK(!memcmp(&d, &e, sizeof d));
        hf += d.hflip;
        vf += d.vflip;
        CHECK(fabs(d.theta) <= 25.0 * M_PI / 180.0);
        rot_big += fabs(d.theta) > 20.0 * M_PI / 180.0;
        CHECK(fabs(d.shear) <= 0.2 + 1e-7);
        CHECK(d.zx >= 0.8 - 1e-7 && d.zx <= 1.2 + 1e-7 && d.zy >= 0.8 - 1e-7 && d.zy <= 1.2 + 1e-7);
        zsum += d.zx + d.zy;
        for (int k = 0; k < 3; k++) CHECK(fabs(d.shift[k]) <= 20.0f);
        CHECK(d.shift[0] != d.shift[1]); /* per channel, as the reference */
    }
    CHECK_CLOSE(hf, n / 2, n * 0.04, 0);
    CHECK_CLOSE(vf, n / 2, n * 0.04, 0);
    CHECK_CLOSE(rot_big, n / 5, n * 0.04, 0);
    CHECK_CLOSE(zsum / (2 * n), 1.0, 0.01, 0);
    /* other seed / epoch / position: other draws */
    mm_augment_draw a, b, c;
    mm_augment_sample(&a, &p, 1234, 2, 5);
    mm_augment_sample(&b, &p, 1234, 3, 5);
    mm_augment_sample(&c, &p, 1235, 2, 5);
    CHECK(a.theta != b.theta && a.theta != c.theta);
    /* turning the shift off leaves the geometry unchanged */
    p.intensity_shift = 0;
    mm_augment_sample(&b, &p, 1234, 2, 5);
    CHECK(a.theta == b.theta && a.zx == b.zx && a.shear == b.shear && !b.has_shift);
    p.shift_per_channel = 0;
    p.intensity_shift = 10;
    mm_augment_sample(&b, &p, 1234, 2, 5);
    CHECK(b.shift[0] == b.shift[1] && b.shift[1] == b.shift[2]);
}

MM_TEST(augment_intensity_shift_clips_to_image_range)
{
    int H = 6, W = 5;
    uint16_t px[30];
    for (int i = 0; i < 30; i++) px[i] = (uint16_t)(1000 + 1000 * i);
    mm_image img = make_image(H, W, px);
    mm_prep_opts o = prep_opts(H, W, 3);
    o.rescale = 0.01f;
    o.mean = 3.0f;
    mm_prep_scratch s = {0};
    float out[90];
    mm_augment_draw d;
    mm_augment_identity(&d);
    d.has_shift = 1;
    d.shift[0] = 5.0f;
    d.shift[1] = -7.5f;
    d.shift[2] = 0.25f;
    mm_prep_decoded(out, &img, &o, &d, &s);
    float lo = 1000 * 0.01f, hi = 30000 * 0.01f;
    int bad = 0;
    for (int i = 0; i < 30; i++)
        for (int k = 0; k < 3; k++) {
            float v = (float)px[i] * 0.01f + d.shift[k];
            v = v < lo ? lo : (v > hi ? hi : v);
            bad += out[3 * i + k] != v - 3.0f;
        }
    CHECK_MSG(bad == 0, "%d values differ", bad);
    CHECK(out[0] == 10.0f + 5.0f - 3.0f && out[1] == lo - 3.0f); /* a clipped value */
    mm_prep_scratch_free(&s);
    free(img.pixels);
}

/* ---- resizing ---- */

MM_TEST(resize_area_and_linear)
{
    int H = 8, W = 12;
    uint16_t *px = random_u16(H * W, 21);
    mm_image img = make_image(H, W, px);
    void *scratch = malloc(mm_resize_scratch_bytes(H, W, 4, 6));
    float out[24];
    mm_resize_gray(out, &img, 4, 6, scratch);
    int bad = 0;
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 6; c++) {
            double m = (px[2 * r * W + 2 * c] + px[2 * r * W + 2 * c + 1] +
                        px[(2 * r + 1) * W + 2 * c] + px[(2 * r + 1) * W + 2 * c + 1]) / 4.0;
            bad += out[r * 6 + c] != (float)m;
        }
    CHECK_MSG(bad == 0, "2x area: %d pixels differ from block means", bad);
    free(scratch);

    /* non-integer shrink 8x12 -> 3x5: exact interval integrals */
    scratch = malloc(mm_resize_scratch_bytes(H, W, 3, 5));
    float got[15], want[15];
    mm_resize_gray(got, &img, 3, 5, scratch);
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 5; c++) {
            double a0 = r * 8.0 / 3, a1 = (r + 1) * 8.0 / 3, b0 = c * 12.0 / 5, b1 = (c + 1) * 12.0 / 5;
            double sum = 0;
            for (int i = 0; i < H; i++)
                for (int j = 0; j < W; j++) {
                    double wr = fmin(i + 1, a1) - fmax(i, a0), wc = fmin(j + 1, b1) - fmax(j, b0);
                    if (wr > 0 && wc > 0) sum += wr * wc * px[i * W + j];
                }
            want[r * 5 + c] = (float)(sum / ((a1 - a0) * (b1 - b0)));
        }
    CHECK_ARRAYS("area 8x12 -> 3x5", got, want, 15, 0.05, 1e-5);
    free(scratch);

    /* growing 8x12 -> 13x20: half-pixel linear interpolation */
    scratch = malloc(mm_resize_scratch_bytes(H, W, 13, 20));
    float big[260], bigw[260];
    mm_resize_gray(big, &img, 13, 20, scratch);
    for (int r = 0; r < 13; r++)
        for (int c = 0; c < 20; c++) {
            double y = fmin(fmax((r + 0.5) * 8 / 13.0 - 0.5, 0), H - 1);
            double x = fmin(fmax((c + 0.5) * 12 / 20.0 - 0.5, 0), W - 1);
            bigw[r * 20 + c] = (float)sample_naive(px, H, W, y, x);
        }
    CHECK_ARRAYS("linear 8x12 -> 13x20", big, bigw, 260, 0.05, 1e-5);
    free(scratch);
    free(img.pixels);
    free(px);
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
