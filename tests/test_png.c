/* PNG I/O through libpng: 8/16-bit round trips, odd sizes, low bit depths, corrupt files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>

#include <png.h>

#include "kernels/philox.h"
#include "tests/harness.h"
#include "tools/png_io.h"

static void fill_random(void *buf, size_t bytes, uint64_t seed)
{
    uint8_t *p = buf;
    for (size_t i = 0; i < bytes; i++) p[i] = (uint8_t)mm_philox_u32(seed, i);
}

static char *read_all(const char *path, size_t *n)
{
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len + 1);
    *n = fread(buf, 1, (size_t)len, f);
    fclose(f);
    return buf;
}

static void write_all(const char *path, const void *buf, size_t n)
{
    FILE *f = fopen(path, "wb");
    fwrite(buf, 1, n, f);
    fclose(f);
}

/* No temporary files may be left next to the outputs. */
static int count_tmp_files(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) n++;
    if (d) closedir(d);
    return n;
}

static void round_trip(int depth, int h, int w, uint64_t seed)
{
    char path[600];
    snprintf(path, sizeof path, "%s/rt%d_%dx%d.png", mm_test_tmpdir(), depth, h, w);
    size_t bytes = (size_t)h * w * (depth / 8);
    mm_image img = {.height = h, .width = w, .bit_depth = depth, .pixels = malloc(bytes)};
    fill_random(img.pixels, bytes, seed);
    CHECK(mm_png_write(path, &img) == MM_OK);
    mm_image back;
    CHECK(mm_png_read(path, &back) == MM_OK);
    CHECK_EQ_INT(back.height, h);
    CHECK_EQ_INT(back.width, w);
    CHECK_EQ_INT(back.bit_depth, depth);
    CHECK(back.pixels && memcmp(back.pixels, img.pixels, bytes) == 0);
    CHECK_EQ_INT(count_tmp_files(mm_test_tmpdir()), 0);
    mm_image_free(&back);
    mm_image_free(&img);
}

MM_TEST(png_round_trip_16bit)
{
    round_trip(16, 37, 53, 1);
    round_trip(16, 1, 1, 2);
    round_trip(16, 200, 3, 3);
}

MM_TEST(png_round_trip_8bit)
{
    round_trip(8, 41, 29, 4);
    round_trip(8, 1, 300, 5);
}

/* The 16-bit byte order is PNG's (big-endian), checked with libpng's simplified reader, which
 * converts to host order independently of our code. */
MM_TEST(png_16bit_byte_order_is_standard)
{
    char path[600];
    snprintf(path, sizeof path, "%s/order.png", mm_test_tmpdir());
    uint16_t px[6] = {0, 1, 258, 4095, 16383, 65535};
    mm_image img = {.height = 2, .width = 3, .bit_depth = 16, .pixels = px};
    CHECK(mm_png_write(path, &img) == MM_OK);
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    CHECK(png_image_begin_read_from_file(&pi, path));
    CHECK_EQ_INT(pi.width, 3);
    CHECK_EQ_INT(pi.height, 2);
    CHECK(pi.format & PNG_FORMAT_FLAG_LINEAR);
    uint16_t got[6] = {0};
    pi.format = PNG_FORMAT_LINEAR_Y;
    CHECK(png_image_finish_read(&pi, NULL, got, 0, NULL));
    /* The simplified API reads linear 16-bit gray as is (our files carry no gAMA chunk). */
    for (int i = 0; i < 6; i++) CHECK_EQ_INT(got[i], px[i]);
}

/* A 2-bit grayscale PNG (written by libpng's simplified API is 8-bit only, so by hand with the
 * classic API) comes back expanded to 8 bits. */
MM_TEST(png_low_bit_depth_expanded)
{
    char path[600];
    snprintf(path, sizeof path, "%s/g2.png", mm_test_tmpdir());
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    png_init_io(png, f);
    png_set_IHDR(png, info, 4, 1, 2, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    png_byte row[1] = {0x1B}; /* 00 01 10 11 */
    png_write_row(png, row);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
    mm_image img;
    CHECK(mm_png_read(path, &img) == MM_OK);
    CHECK_EQ_INT(img.bit_depth, 8);
    CHECK_EQ_INT(img.width, 4);
    uint8_t *p = img.pixels;
    /* libpng scales 2-bit samples to 8 bits by replication: 0, 85, 170, 255. */
    CHECK_EQ_INT(p[0], 0);
    CHECK_EQ_INT(p[1], 85);
    CHECK_EQ_INT(p[2], 170);
    CHECK_EQ_INT(p[3], 255);
    mm_image_free(&img);
}

MM_TEST(png_colour_is_refused)
{
    char path[600];
    snprintf(path, sizeof path, "%s/rgb.png", mm_test_tmpdir());
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    pi.width = 2;
    pi.height = 2;
    pi.format = PNG_FORMAT_RGB;
    uint8_t buf[12] = {0};
    CHECK(png_image_write_to_file(&pi, path, 0, buf, 0, NULL));
    mm_image img;
    CHECK(mm_png_read(path, &img) == MM_ERR_UNSUPPORTED);
    CHECK(strstr(mm_last_error(), path) && strstr(mm_last_error(), "RGB"));
}

/* Truncations at every few bytes, zeroed and random-byte copies, and single-byte corruptions of
 * a valid PNG: each read fails with a message naming the file, or succeeds (a flipped byte in an
 * ancillary spot), and never crashes (run under ASan too). */
MM_TEST(png_corrupt_files_fail_cleanly)
{
    char good[600], bad[600];
    snprintf(good, sizeof good, "%s/good.png", mm_test_tmpdir());
    snprintf(bad, sizeof bad, "%s/bad.png", mm_test_tmpdir());
    int h = 24, w = 20;
    mm_image img = {.height = h, .width = w, .bit_depth = 16, .pixels = malloc((size_t)h * w * 2)};
    fill_random(img.pixels, (size_t)h * w * 2, 9);
    CHECK(mm_png_write(good, &img) == MM_OK);
    mm_image_free(&img);
    size_t n = 0;
    char *buf = read_all(good, &n);
    CHECK(buf && n > 100);
    int failures = 0;
    for (size_t cut = 0; cut < n; cut += 7) {
        write_all(bad, buf, cut);
        mm_image r;
        mm_status s = mm_png_read(bad, &r);
        if (s == MM_OK) mm_image_free(&r);
        else {
            failures++;
            CHECK_MSG(strstr(mm_last_error(), bad) != NULL, "message lacks the path: %s", mm_last_error());
        }
        CHECK_MSG(s != MM_OK, "truncated at %zu of %zu bytes but read fine", cut, n);
    }
    CHECK(failures > 0);
    char *zeros = calloc(n, 1), *rnd = malloc(n);
    fill_random(rnd, n, 77);
    mm_image r;
    write_all(bad, zeros, n);
    CHECK(mm_png_read(bad, &r) == MM_ERR_FORMAT);
    CHECK(strstr(mm_last_error(), "not a PNG"));
    write_all(bad, rnd, n);
    CHECK(mm_png_read(bad, &r) == MM_ERR_FORMAT);
    /* Valid signature, garbage after it. */
    memcpy(rnd, buf, 8);
    write_all(bad, rnd, n);
    CHECK(mm_png_read(bad, &r) == MM_ERR_FORMAT);
    CHECK(strstr(mm_last_error(), bad));
    /* Flip one byte at a time in the header and data chunks (the CRC catches most). */
    for (size_t i = 8; i < n; i += 3) {
        memcpy(rnd, buf, n);
        rnd[i] ^= 0x5A;
        write_all(bad, rnd, n);
        mm_status s = mm_png_read(bad, &r);
        if (s == MM_OK) mm_image_free(&r);
        else CHECK(strstr(mm_last_error(), bad) != NULL);
    }
    CHECK(mm_png_read("/nonexistent/x.png", &r) == MM_ERR_IO);
    CHECK(strstr(mm_last_error(), "/nonexistent/x.png"));
    CHECK(mm_png_read(mm_test_tmpdir(), &r) != MM_OK); /* a folder */
    free(zeros);
    free(rnd);
    free(buf);
}

/* A failed write (the folder does not exist) leaves nothing behind and says where. */
MM_TEST(png_write_failure_leaves_nothing)
{
    char path[600];
    snprintf(path, sizeof path, "%s/missing-dir/x.png", mm_test_tmpdir());
    uint8_t px[4] = {1, 2, 3, 4};
    mm_image img = {.height = 2, .width = 2, .bit_depth = 8, .pixels = px};
    CHECK(mm_png_write(path, &img) == MM_ERR_IO);
    CHECK(strstr(mm_last_error(), "missing-dir/x.png"));
    struct stat st;
    CHECK(stat(path, &st) != 0);
    img.bit_depth = 12;
    snprintf(path, sizeof path, "%s/x.png", mm_test_tmpdir());
    CHECK(mm_png_write(path, &img) == MM_ERR_ARG);
    CHECK(stat(path, &st) != 0);
    CHECK_EQ_INT(count_tmp_files(mm_test_tmpdir()), 0);
}
