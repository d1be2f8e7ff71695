/* Augmentation and resizing of single images (train/augment.h, train/resize.h).
 *
 * References are independent of the code under test: flips and rot90 are index permutations, the
 * affine matrix is rebuilt as the Keras product of 3x3 matrices (offset . R . Sh . Z . reset,
 * then the output flips), the warp is checked against a naive double-precision bilinear sampler
 * with edge replication, and area resizing against exact interval integrals. The loader that
 * applies them to batches: test_loader.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/harness.h"
#include "tests/random_pixels.h"
#include "train/augment.h"
#include "train/image_prep.h"
#include "train/resize.h"

/* ---- helpers ---- */

static mm_image make_image(int h, int w, const uint16_t *px)
{
    mm_image img = {h, w, 16, malloc((size_t)h * w * 2)};
    memcpy(img.pixels, px, (size_t)h * w * 2);
    return img;
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
