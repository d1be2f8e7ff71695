/* DICOM through DCMTK: write -> read round trips (bit depths, BitsStored masking, MONOCHROME1,
 * rescale, signed data, every compressed transfer syntax DCMTK encodes), header tags, corrupt and
 * unsupported files (each a tier-1 error naming the file, never a crash), and the `mammo dicom`
 * command through the built binary. The expected values are computed here from the rules of
 * tools/dicom.h, independently of the shim's lookup table. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "kernels/philox.h"
#include "tests/harness.h"
#include "tools/dicom.h"
#include "tools/png_io.h"

#ifndef MM_HAVE_DICOM
MM_TEST(dicom_absent_says_so)
{
    mm_dicom_info in;
    CHECK(mm_dicom_read_info("x.dcm", &in) == MM_ERR_UNSUPPORTED);
    CHECK(strstr(mm_last_error(), "no DICOM support"));
}
#else

static char *tmp_path(const char *name)
{
    static char buf[8][600];
    static int k;
    char *p = buf[k++ & 7];
    snprintf(p, 600, "%s/%s", mm_test_tmpdir(), name);
    return p;
}

static uint16_t *random_u16(int n, uint64_t seed, unsigned mask)
{
    uint16_t *p = malloc((size_t)n * 2);
    for (int i = 0; i < n; i++) p[i] = (uint16_t)(mm_philox_u32(seed, (uint64_t)i) & mask);
    return p;
}

static mm_dicom_write_opts opts16(int bits_stored)
{
    mm_dicom_write_opts o = {0};
    o.bits_allocated = 16;
    o.bits_stored = bits_stored;
    o.patient_id = "P_TEST";
    o.laterality = "L";
    o.view = "MLO";
    o.series_uid = "1.2.3.4.5";
    o.study_uid = "1.2.3.4";
    o.series_description = "full mammogram images";
    return o;
}

/* The reference of dicom.h, written out for one stored word (no table). */
static uint16_t expected_value(unsigned word, int bits_stored, int high_bit, int is_signed,
                               double slope, double icpt, int mono1)
{
    unsigned raw = (word >> (high_bit + 1 - bits_stored)) & ((1u << bits_stored) - 1u);
    double smin = 0, smax = (double)((1u << bits_stored) - 1u);
    long s = (long)raw;
    if (is_signed) {
        smin = -(double)(1u << (bits_stored - 1));
        smax = (double)(1u << (bits_stored - 1)) - 1;
        if (raw & (1u << (bits_stored - 1))) s = (long)raw - (1l << bits_stored);
    }
    double m = slope * s + icpt, a = slope * smin + icpt, b = slope * smax + icpt;
    double lo = fmin(a, b), hi = fmax(a, b);
    double v, vlo, vhi;
    if (lo >= 0 && hi <= 65535) {
        v = floor(m + 0.5), vlo = floor(lo + 0.5), vhi = floor(hi + 0.5);
    } else if (hi - lo <= 65535) {
        v = floor(m - lo + 0.5), vlo = 0, vhi = floor(hi - lo + 0.5);
    } else {
        double k = 65535.0 / (hi - lo);
        v = floor((m - lo) * k + 0.5), vlo = 0, vhi = floor((hi - lo) * k + 0.5);
    }
    if (mono1) v = vlo + vhi - v;
    return (uint16_t)fmax(0, fmin(65535, v));
}

static void round_trip_16(const char *name, int bits_stored, unsigned word_mask,
                          const mm_dicom_write_opts *o, int is_signed, double slope, double icpt)
{
    int h = 23, w = 31, n = h * w;
    uint16_t *px = random_u16(n, (uint64_t)bits_stored * 1000 + word_mask, word_mask);
    px[0] = 0;
    px[1] = (uint16_t)word_mask; /* both ends of the range */
    const char *path = tmp_path(name);
    CHECK_MSG(mm_dicom_write(path, px, h, w, o) == MM_OK, "%s", mm_last_error());
    mm_dicom_info in;
    uint16_t *got = NULL;
    CHECK_MSG(mm_dicom_read_u16(path, &in, &got) == MM_OK, "%s", mm_last_error());
    if (got) {
        CHECK_EQ_INT(in.rows, h);
        CHECK_EQ_INT(in.cols, w);
        CHECK_EQ_INT(in.bits_stored, bits_stored);
        int mono1 = o->photometric && !strcmp(o->photometric, "MONOCHROME1");
        int bad = 0;
        for (int i = 0; i < n; i++) {
            uint16_t want = expected_value(px[i], bits_stored, bits_stored - 1, is_signed, slope,
                                           icpt, mono1);
            if (got[i] != want && bad++ < 3)
                CHECK_MSG(0, "%s: pixel %d word %u: got %u want %u", name, i, px[i], got[i], want);
        }
        CHECK_EQ_INT(bad, 0);
    }
    free(got);
    free(px);
}

MM_TEST(dicom_round_trip_16bit_stored_16_14_12)
{
    mm_dicom_write_opts o = opts16(16);
    round_trip_16("u16.dcm", 16, 0xFFFF, &o, 0, 1, 0);
    o = opts16(14);
    round_trip_16("u14.dcm", 14, 0x3FFF, &o, 0, 1, 0);
    o = opts16(12);
    round_trip_16("u12.dcm", 12, 0x0FFF, &o, 0, 1, 0);
}

/* Garbage above BitsStored (overlays, uninitialised bits) is masked away. */
MM_TEST(dicom_bits_above_bits_stored_masked)
{
    mm_dicom_write_opts o = opts16(12);
    round_trip_16("garbage12.dcm", 12, 0xFFFF, &o, 0, 1, 0);
    o = opts16(14);
    round_trip_16("garbage14.dcm", 14, 0xFFFF, &o, 0, 1, 0);
    /* spot check of the rule itself */
    CHECK_EQ_INT(expected_value(0xF123, 12, 11, 0, 1, 0, 0), 0x123);
}

MM_TEST(dicom_monochrome1_inverted)
{
    mm_dicom_write_opts o = opts16(14);
    o.photometric = "MONOCHROME1";
    round_trip_16("m1.dcm", 14, 0x3FFF, &o, 0, 1, 0);
    CHECK_EQ_INT(expected_value(0, 14, 13, 0, 1, 0, 1), 16383);
    CHECK_EQ_INT(expected_value(100, 14, 13, 0, 1, 0, 1), 16283);
}

MM_TEST(dicom_rescale_applied)
{
    mm_dicom_write_opts o = opts16(12);
    o.rescale_slope = 2, o.rescale_intercept = -100; /* m in [-100, 8090]: shifted by 100 */
    round_trip_16("resc1.dcm", 12, 0x0FFF, &o, 0, 2, -100);
    CHECK_EQ_INT(expected_value(50, 12, 11, 0, 2, -100, 0), 100);
    o = opts16(16);
    o.rescale_slope = 0.5, o.rescale_intercept = 10; /* fits: values as they are, rounded */
    round_trip_16("resc2.dcm", 16, 0xFFFF, &o, 0, 0.5, 10);
    CHECK_EQ_INT(expected_value(3, 16, 15, 0, 0.5, 10, 0), 12);
    o = opts16(16);
    o.rescale_slope = 3, o.rescale_intercept = -1000; /* wider than 16 bits: scaled */
    round_trip_16("resc3.dcm", 16, 0xFFFF, &o, 0, 3, -1000);
    o = opts16(14);
    o.rescale_slope = 1.5, o.rescale_intercept = 7;
    o.photometric = "MONOCHROME1";
    round_trip_16("resc4.dcm", 14, 0x3FFF, &o, 0, 1.5, 7);
}

MM_TEST(dicom_signed_data)
{
    mm_dicom_write_opts o = opts16(16);
    o.pixel_representation = 1;
    round_trip_16("s16.dcm", 16, 0xFFFF, &o, 1, 1, 0);
    CHECK_EQ_INT(expected_value(0x8000, 16, 15, 1, 1, 0, 0), 0);      /* -32768 */
    CHECK_EQ_INT(expected_value(0x0000, 16, 15, 1, 1, 0, 0), 32768);  /* 0 */
    CHECK_EQ_INT(expected_value(0xFFFF, 16, 15, 1, 1, 0, 0), 32767);  /* -1 */
    o = opts16(12);
    o.pixel_representation = 1; /* 12-bit two's complement with the sign bits above */
    round_trip_16("s12.dcm", 12, 0xFFFF, &o, 1, 1, 0);
    CHECK_EQ_INT(expected_value(0xFFFF, 12, 11, 1, 1, 0, 0), 2047); /* -1 + 2048 */
    o = opts16(16);
    o.pixel_representation = 1;
    o.rescale_slope = 1, o.rescale_intercept = -1024;
    round_trip_16("s16r.dcm", 16, 0xFFFF, &o, 1, 1, -1024);
}

MM_TEST(dicom_round_trip_8bit)
{
    int h = 17, w = 13, n = h * w;
    uint8_t *px = malloc((size_t)n);
    for (int i = 0; i < n; i++) px[i] = (uint8_t)mm_philox_u32(5, (uint64_t)i);
    mm_dicom_write_opts o = {.bits_allocated = 8, .bits_stored = 8, .series_description = "ROI mask images"};
    const char *path = tmp_path("u8.dcm");
    CHECK(mm_dicom_write(path, px, h, w, &o) == MM_OK);
    uint16_t *got = NULL;
    mm_dicom_info in;
    CHECK(mm_dicom_read_u16(path, &in, &got) == MM_OK);
    CHECK_EQ_INT(in.bits_allocated, 8);
    int bad = 0;
    for (int i = 0; got && i < n; i++) bad += got[i] != px[i];
    CHECK_EQ_INT(bad, 0);
    free(got);
    /* implicit VR little endian stores 8-bit pixels as OW: same values */
    o.transfer_syntax_uid = MM_DICOM_TS_IMPLICIT_LE;
    path = tmp_path("u8i.dcm");
    CHECK(mm_dicom_write(path, px, h, w, &o) == MM_OK);
    CHECK(mm_dicom_read_u16(path, &in, &got) == MM_OK);
    bad = 0;
    for (int i = 0; got && i < n; i++) bad += got[i] != px[i];
    CHECK_EQ_INT(bad, 0);
    free(got);
    free(px);
}

MM_TEST(dicom_header_tags)
{
    int h = 8, w = 6;
    uint16_t *px = random_u16(h * w, 3, 0x3FFF);
    mm_dicom_write_opts o = opts16(14);
    o.sop_class_uid = MM_DICOM_SOP_MAMMO_PRESENTATION;
    o.modality = "MG";
    o.sop_instance_uid = "1.2.3.4.5.6";
    o.pixel_spacing_mm = 0.07;
    const char *path = tmp_path("tags.dcm");
    CHECK(mm_dicom_write(path, px, h, w, &o) == MM_OK);
    mm_dicom_info in;
    CHECK(mm_dicom_read_info(path, &in) == MM_OK);
    CHECK_EQ_INT(in.rows, h);
    CHECK_EQ_INT(in.cols, w);
    CHECK_EQ_INT(in.bits_allocated, 16);
    CHECK_EQ_INT(in.bits_stored, 14);
    CHECK_EQ_INT(in.high_bit, 13);
    CHECK_EQ_INT(in.frames, 1);
    CHECK_EQ_INT(in.samples_per_pixel, 1);
    CHECK(!strcmp(in.patient_id, "P_TEST"));
    CHECK(!strcmp(in.laterality, "L"));
    CHECK(!strcmp(in.view, "MLO"));
    CHECK(!strcmp(in.series_uid, "1.2.3.4.5"));
    CHECK(!strcmp(in.study_uid, "1.2.3.4"));
    CHECK(!strcmp(in.sop_instance_uid, "1.2.3.4.5.6"));
    CHECK(!strcmp(in.sop_class_uid, MM_DICOM_SOP_MAMMO_PRESENTATION));
    CHECK(!strcmp(in.series_description, "full mammogram images"));
    CHECK(!strcmp(in.modality, "MG"));
    CHECK(!strcmp(in.photometric, "MONOCHROME2"));
    CHECK(!strcmp(in.transfer_uid, MM_DICOM_TS_EXPLICIT_LE));
    CHECK(strstr(in.transfer_syntax, "Little Endian Explicit") != NULL);
    CHECK_EQ_INT(in.encapsulated, 0);
    CHECK(mm_dicom_check_pixels(path, &in) == MM_OK);
    free(px);
}

/* Every transfer syntax DCMTK can encode here: compressed copies decode to the same pixels. */
MM_TEST(dicom_compressed_round_trips)
{
    static const char *lossless[] = {MM_DICOM_TS_RLE, MM_DICOM_TS_JPEGLS_LOSSLESS,
                                     MM_DICOM_TS_JPEG_LOSSLESS_SV1, MM_DICOM_TS_DEFLATED,
                                     MM_DICOM_TS_IMPLICIT_LE, MM_DICOM_TS_EXPLICIT_BE};
    int h = 40, w = 33, n = h * w;
    /* A smooth image plus noise: realistic for the codecs, every bit exercised. */
    uint16_t *px12 = malloc((size_t)n * 2), *px16 = malloc((size_t)n * 2);
    uint8_t *px8 = malloc((size_t)n);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int i = y * w + x;
            unsigned r = mm_philox_u32(11, (uint64_t)i);
            px12[i] = (uint16_t)((x * 97 + y * 51 + (r & 63)) & 0x0FFF);
            px16[i] = (uint16_t)(x * 1500 + y * 300 + (r & 1023));
            px8[i] = (uint8_t)(x * 5 + y * 2 + (r & 7));
        }
    for (size_t t = 0; t < sizeof lossless / sizeof lossless[0]; t++) {
        for (int depth = 0; depth < 3; depth++) {
            mm_dicom_write_opts o = opts16(depth == 0 ? 12 : 16);
            const void *src = depth == 0 ? (const void *)px12 : (const void *)px16;
            if (depth == 2) {
                o.bits_allocated = 8, o.bits_stored = 8;
                src = px8;
            }
            o.transfer_syntax_uid = lossless[t];
            char name[64];
            snprintf(name, sizeof name, "c%zu_%d.dcm", t, depth);
            const char *path = tmp_path(name);
            mm_status s = mm_dicom_write(path, src, h, w, &o);
            CHECK_MSG(s == MM_OK, "write %s: %s", lossless[t], mm_last_error());
            if (s != MM_OK) continue;
            mm_dicom_info in;
            uint16_t *got = NULL;
            s = mm_dicom_read_u16(path, &in, &got);
            CHECK_MSG(s == MM_OK, "read %s: %s", lossless[t], mm_last_error());
            if (s != MM_OK) continue;
            CHECK_MSG(!strcmp(in.transfer_uid, lossless[t]), "%s written as %s", lossless[t], in.transfer_uid);
            int bad = 0;
            for (int i = 0; i < n; i++) {
                unsigned want = depth == 0 ? px12[i] : depth == 1 ? px16[i] : px8[i];
                bad += got[i] != want;
            }
            CHECK_MSG(bad == 0, "%s, %d-bit: %d pixels differ", lossless[t], depth == 2 ? 8 : 16, bad);
            free(got);
        }
    }
    /* Lossy codecs: JPEG baseline (8-bit) and near-lossless JPEG-LS (error <= 2). */
    mm_dicom_write_opts o = {.bits_allocated = 8, .bits_stored = 8,
                             .transfer_syntax_uid = MM_DICOM_TS_JPEG_BASELINE};
    const char *path = tmp_path("jpeg8.dcm");
    CHECK_MSG(mm_dicom_write(path, px8, h, w, &o) == MM_OK, "%s", mm_last_error());
    uint16_t *got = NULL;
    mm_dicom_info in;
    CHECK_MSG(mm_dicom_read_u16(path, &in, &got) == MM_OK, "%s", mm_last_error());
    if (got) {
        CHECK(in.encapsulated);
        double mad = 0;
        for (int i = 0; i < n; i++) mad += fabs((double)got[i] - px8[i]);
        CHECK_MSG(mad / n < 3.0, "JPEG baseline mean error %.2f", mad / n);
        free(got);
    }
    o = opts16(12);
    o.transfer_syntax_uid = MM_DICOM_TS_JPEGLS_NEAR;
    path = tmp_path("jlsnear.dcm");
    CHECK_MSG(mm_dicom_write(path, px12, h, w, &o) == MM_OK, "%s", mm_last_error());
    CHECK_MSG(mm_dicom_read_u16(path, &in, &got) == MM_OK, "%s", mm_last_error());
    if (got) {
        int worst = 0;
        for (int i = 0; i < n; i++) worst = abs((int)got[i] - px12[i]) > worst ? abs((int)got[i] - px12[i]) : worst;
        CHECK_MSG(worst <= 2, "JPEG-LS near-lossless max error %d", worst);
        free(got);
    }
    free(px12);
    free(px16);
    free(px8);
}

/* ---- bad files ---------------------------------------------------------------------------- */

static unsigned char *slurp(const char *path, size_t *n)
{
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len);
    *n = fread(b, 1, (size_t)len, f);
    fclose(f);
    return b;
}

static void spit(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, n, f);
    fclose(f);
}

static long find_bytes(const unsigned char *b, size_t n, const void *pat, size_t m)
{
    for (size_t i = 0; i + m <= n; i++)
        if (!memcmp(b + i, pat, m)) return (long)i;
    return -1;
}

/* Reading `path` must fail with `want` (or any error if want is MM_OK) and a message that names
 * the file and contains `needle`. */
static void expect_fail(const char *path, mm_status want, const char *needle)
{
    uint16_t *px = NULL;
    mm_dicom_info in;
    mm_status s = mm_dicom_read_u16(path, &in, &px);
    CHECK_MSG(s != MM_OK, "%s read fine", path);
    if (want != MM_OK) CHECK_MSG(s == want, "%s: status %d, want %d (%s)", path, s, want, mm_last_error());
    CHECK_MSG(strstr(mm_last_error(), path) != NULL, "message lacks the path: %s", mm_last_error());
    if (needle) CHECK_MSG(strstr(mm_last_error(), needle) != NULL, "'%s' not in: %s", needle, mm_last_error());
    CHECK(px == NULL);
    free(px);
}

static const char *write_good(const char *name, int h, int w, const char *ts)
{
    uint16_t *px = random_u16(h * w, 21, 0x0FFF);
    mm_dicom_write_opts o = opts16(12);
    o.transfer_syntax_uid = ts;
    const char *path = tmp_path(name);
    CHECK(mm_dicom_write(path, px, h, w, &o) == MM_OK);
    free(px);
    return path;
}

MM_TEST(dicom_truncated_zero_random_nondicom)
{
    const char *good = write_good("good.dcm", 30, 20, NULL);
    size_t n;
    unsigned char *b = slurp(good, &n);
    CHECK(b && n > 1200);
    const char *bad = tmp_path("bad.dcm");
    /* Truncated inside the preamble, the meta header, the dataset and the pixel data. */
    size_t cuts[] = {0, 10, 131, 140, 200, 300, 400, n / 2, n - 600, n - 2, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        spit(bad, b, cuts[i]);
        expect_fail(bad, MM_OK, NULL);
    }
    spit(bad, b, n - 600);
    expect_fail(bad, MM_ERR_FORMAT, NULL);
    unsigned char *z = calloc(n, 1);
    spit(bad, z, n);
    expect_fail(bad, MM_ERR_FORMAT, "not a DICOM file");
    for (size_t i = 0; i < n; i++) z[i] = (unsigned char)mm_philox_u32(99, i);
    spit(bad, z, n);
    expect_fail(bad, MM_ERR_FORMAT, "not a DICOM file");
    /* A valid preamble and magic, then random bytes. */
    memcpy(z, b, 132);
    spit(bad, z, n);
    expect_fail(bad, MM_OK, NULL);
    spit(bad, "hello, world\n", 13);
    expect_fail(bad, MM_ERR_FORMAT, "not a DICOM file");
    expect_fail("/nonexistent/file.dcm", MM_ERR_IO, "cannot open");
    expect_fail(mm_test_tmpdir(), MM_OK, NULL);
    mm_dicom_info in;
    CHECK(mm_dicom_read_info(bad, &in) != MM_OK);
    CHECK(strstr(mm_last_error(), bad));
    free(z);
    free(b);
}

/* Random single-byte and multi-byte mutations of a valid file: each read either succeeds with the
 * right size or fails with a message naming the file; never a crash (the ASan build runs this). */
MM_TEST(dicom_mutations_never_crash)
{
    const char *good = write_good("mut.dcm", 16, 12, NULL);
    size_t n;
    unsigned char *b = slurp(good, &n);
    unsigned char *m = malloc(n);
    const char *bad = tmp_path("mutated.dcm");
    int ok = 0, failed = 0;
    for (int it = 0; it < 300; it++) {
        memcpy(m, b, n);
        int flips = 1 + (int)(mm_philox_u32(7, (uint64_t)it * 16) % 4);
        for (int k = 0; k < flips; k++) {
            /* Mostly hit the header (bytes 128..n-384), where the structure is. */
            size_t span = n - 384 - 128;
            size_t pos = 128 + mm_philox_u32(7, (uint64_t)it * 16 + 1 + (uint64_t)k) % span;
            m[pos] = (unsigned char)mm_philox_u32(8, (uint64_t)it * 16 + (uint64_t)k);
        }
        spit(bad, m, n);
        uint16_t *px = NULL;
        mm_dicom_info in;
        if (mm_dicom_read_u16(bad, &in, &px) == MM_OK) {
            ok++;
            CHECK(px != NULL && in.rows > 0 && in.cols > 0);
        } else {
            failed++;
            CHECK_MSG(strstr(mm_last_error(), bad) != NULL, "%s", mm_last_error());
        }
        free(px);
    }
    CHECK(ok > 0 && failed > 0);
    free(m);
    free(b);
}

MM_TEST(dicom_missing_tags)
{
    const char *good = write_good("tags_src.dcm", 10, 10, NULL);
    size_t n;
    unsigned char *b = slurp(good, &n);
    const char *bad = tmp_path("norows.dcm");
    /* (0028,0010) Rows, explicit VR US, renamed to the retired (0028,0012) Planes. */
    const unsigned char rows_tag[] = {0x28, 0x00, 0x10, 0x00, 'U', 'S'};
    long at = find_bytes(b, n, rows_tag, sizeof rows_tag);
    CHECK(at > 0);
    unsigned char *m = malloc(n);
    memcpy(m, b, n);
    m[at + 2] = 0x12;
    spit(bad, m, n);
    expect_fail(bad, MM_ERR_FORMAT, "Rows");
    mm_dicom_info in;
    CHECK(mm_dicom_read_info(bad, &in) == MM_ERR_FORMAT);
    /* Cut just before the PixelData element: a complete dataset without pixels. */
    const unsigned char px_tag[] = {0xE0, 0x7F, 0x10, 0x00};
    at = find_bytes(b, n, px_tag, sizeof px_tag);
    CHECK(at > 0);
    bad = tmp_path("nopixels.dcm");
    spit(bad, b, (size_t)at);
    CHECK(mm_dicom_read_info(bad, &in) == MM_OK); /* the header is fine */
    expect_fail(bad, MM_ERR_FORMAT, "PixelData");
    free(m);
    free(b);
}

MM_TEST(dicom_colour_and_multiframe_refused)
{
    int h = 6, w = 5;
    uint8_t rgb[6 * 5 * 3] = {0};
    mm_dicom_write_opts o = {.bits_allocated = 8, .bits_stored = 8, .samples_per_pixel = 3};
    const char *path = tmp_path("rgb.dcm");
    CHECK_MSG(mm_dicom_write(path, rgb, h, w, &o) == MM_OK, "%s", mm_last_error());
    mm_dicom_info in;
    CHECK(mm_dicom_read_info(path, &in) == MM_OK);
    CHECK_EQ_INT(in.samples_per_pixel, 3);
    CHECK(mm_dicom_check_pixels(path, &in) == MM_ERR_UNSUPPORTED);
    expect_fail(path, MM_ERR_UNSUPPORTED, "colour");
    uint16_t frames[3 * 6 * 5] = {0};
    mm_dicom_write_opts o2 = opts16(12);
    o2.frames = 3;
    path = tmp_path("multi.dcm");
    CHECK_MSG(mm_dicom_write(path, frames, h, w, &o2) == MM_OK, "%s", mm_last_error());
    CHECK(mm_dicom_read_info(path, &in) == MM_OK);
    CHECK_EQ_INT(in.frames, 3);
    expect_fail(path, MM_ERR_UNSUPPORTED, "multi-frame");
}

/* A JPEG-LS file relabelled as JPEG 2000 in its meta header: refused by name, not decoded. */
MM_TEST(dicom_jpeg2000_refused)
{
    const char *src = write_good("jls.dcm", 12, 12, MM_DICOM_TS_JPEGLS_LOSSLESS);
    size_t n;
    unsigned char *b = slurp(src, &n);
    const char *uid = MM_DICOM_TS_JPEGLS_LOSSLESS, *j2k = MM_DICOM_TS_JPEG2000_LOSSLESS;
    CHECK(strlen(uid) == strlen(j2k));
    long at = find_bytes(b, n, uid, strlen(uid));
    CHECK(at > 0);
    memcpy(b + at, j2k, strlen(j2k));
    const char *bad = tmp_path("j2k.dcm");
    spit(bad, b, n);
    mm_dicom_info in;
    CHECK_MSG(mm_dicom_read_info(bad, &in) == MM_OK, "%s", mm_last_error());
    CHECK(!strcmp(in.transfer_uid, j2k));
    expect_fail(bad, MM_ERR_UNSUPPORTED, "JPEG 2000");
    free(b);
}

MM_TEST(dicom_write_errors)
{
    uint16_t px[4] = {0};
    mm_dicom_write_opts o = opts16(12);
    o.bits_allocated = 12;
    CHECK(mm_dicom_write(tmp_path("e1.dcm"), px, 2, 2, &o) == MM_ERR_ARG);
    o = opts16(17);
    CHECK(mm_dicom_write(tmp_path("e2.dcm"), px, 2, 2, &o) == MM_ERR_ARG);
    o = opts16(12);
    o.transfer_syntax_uid = "1.2.3.bogus";
    CHECK(mm_dicom_write(tmp_path("e3.dcm"), px, 2, 2, &o) == MM_ERR_ARG);
    struct stat st;
    CHECK(stat(tmp_path("e3.dcm"), &st) != 0);
}

/* ---- the command line --------------------------------------------------------------------- */

static int run(const char *cmd, const char *out_file)
{
    char full[2400];
    snprintf(full, sizeof full, "%s >'%s' 2>&1", cmd, out_file);
    int st = system(full);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static char *file_text(const char *path)
{
    size_t n;
    unsigned char *b = slurp(path, &n);
    char *s = malloc(n + 1);
    if (b) memcpy(s, b, n);
    s[n] = '\0';
    free(b);
    return s;
}

MM_TEST(dicom_cli_info_and_to_png)
{
    int h = 21, w = 17, n = h * w;
    uint16_t *px = random_u16(n, 31, 0x3FFF);
    mm_dicom_write_opts o = opts16(14);
    o.photometric = "MONOCHROME1";
    o.transfer_syntax_uid = MM_DICOM_TS_JPEGLS_LOSSLESS;
    const char *dcm = tmp_path("cli.dcm"), *png = tmp_path("cli.png"), *log = tmp_path("log.txt");
    CHECK(mm_dicom_write(dcm, px, h, w, &o) == MM_OK);
    char cmd[2000];
    snprintf(cmd, sizeof cmd, "'%s' dicom info '%s'", MM_MAMMO_EXE, dcm);
    CHECK_EQ_INT(run(cmd, log), 0);
    char *t = file_text(log);
    CHECK(strstr(t, "size: 21 x 17"));
    CHECK(strstr(t, "bits: allocated 16, stored 14"));
    CHECK(strstr(t, "photometric: MONOCHROME1"));
    CHECK(strstr(t, "transfer syntax: JPEG-LS Lossless"));
    CHECK(strstr(t, "patient: P_TEST"));
    CHECK(strstr(t, "laterality: L"));
    CHECK(strstr(t, "view: MLO"));
    CHECK(strstr(t, "pixels: readable"));
    free(t);
    snprintf(cmd, sizeof cmd, "'%s' dicom to-png '%s' '%s'", MM_MAMMO_EXE, dcm, png);
    CHECK_EQ_INT(run(cmd, log), 0);
    mm_image img;
    CHECK(mm_png_read(png, &img) == MM_OK);
    CHECK_EQ_INT(img.height, h);
    CHECK_EQ_INT(img.width, w);
    CHECK_EQ_INT(img.bit_depth, 16);
    if (img.pixels) {
        uint16_t *q = img.pixels;
        int bad = 0;
        for (int i = 0; i < n; i++) bad += q[i] != 16383 - px[i];
        CHECK_EQ_INT(bad, 0);
    }
    mm_image_free(&img);
    /* Failures: exit status 1, one line naming the file, no PNG written. */
    const char *garbage = tmp_path("garbage.dcm"), *png2 = tmp_path("never.png");
    spit(garbage, "not dicom at all", 16);
    snprintf(cmd, sizeof cmd, "'%s' dicom to-png '%s' '%s'", MM_MAMMO_EXE, garbage, png2);
    CHECK_EQ_INT(run(cmd, log), 1);
    t = file_text(log);
    CHECK(strncmp(t, "mammo: ", 7) == 0 && strstr(t, garbage));
    free(t);
    struct stat st;
    CHECK(stat(png2, &st) != 0);
    snprintf(cmd, sizeof cmd, "'%s' dicom info '%s'", MM_MAMMO_EXE, garbage);
    CHECK_EQ_INT(run(cmd, log), 1);
    snprintf(cmd, sizeof cmd, "'%s' dicom info", MM_MAMMO_EXE);
    CHECK_EQ_INT(run(cmd, log), 1);
    snprintf(cmd, sizeof cmd, "'%s' dicom frobnicate x", MM_MAMMO_EXE);
    CHECK_EQ_INT(run(cmd, log), 1);
    snprintf(cmd, sizeof cmd, "'%s' dicom info --help", MM_MAMMO_EXE);
    CHECK_EQ_INT(run(cmd, log), 0);
    free(px);
}

#endif
