/* PNG through libpng (classic API): 8- and 16-bit grayscale read and write. See png_io.h.
 *
 * libpng reports errors by longjmp()ing to the setjmp() point of the caller; our error callback
 * first records the message, so every libpng error (truncated file, bad CRC, bad zlib stream)
 * becomes one tier-1 error naming the file. Locals changed between setjmp() and a possible
 * longjmp() are volatile, as C requires. 16-bit samples are big-endian in PNG: png_set_swap()
 * converts on little-endian hosts. */
#include "png_io.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/atomic_file.h"

/* Same cap as the DICOM reader: a corrupt header must not make us allocate gigabytes. */
#define MM_PNG_MAX_PIXELS (1ll << 28)

typedef struct png_err_ctx {
    char msg[200];
} png_err_ctx;

static void on_error(png_structp png, png_const_charp msg)
{
    png_err_ctx *ctx = (png_err_ctx *)png_get_error_ptr(png);
    snprintf(ctx->msg, sizeof ctx->msg, "%s", msg ? msg : "libpng error");
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg)
{
    (void)png, (void)msg; /* warnings (unknown chunks, gamma quirks) do not concern us */
}

void mm_image_free(mm_image *img)
{
    free(img->pixels);
    memset(img, 0, sizeof *img);
}

static int is_little_endian(void)
{
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

mm_status mm_png_read(const char *path, mm_image *img)
{
    memset(img, 0, sizeof *img);
    FILE *f = fopen(path, "rb");
    if (!f) return mm_fail(MM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char sig[8];
    size_t nsig = fread(sig, 1, 8, f);
    if (nsig < 8 || png_sig_cmp(sig, 0, 8) != 0) {
        fclose(f);
        return mm_fail(MM_ERR_FORMAT, "%s: not a PNG file (bad signature)", path);
    }
    png_err_ctx ctx = {{0}};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
        fclose(f);
        return mm_fail(MM_ERR_NOMEM, "%s: cannot set up libpng", path);
    }
    uint8_t *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    volatile int stage = 0; /* 0: header, 1: pixels (for the message) */
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        fclose(f);
        free(pixels);
        free(rows);
        return mm_fail(MM_ERR_FORMAT, "%s: corrupt or truncated PNG (%s%s)", path,
                       stage ? "while reading the pixels: " : "", ctx.msg);
    }
    png_init_io(png, f);
    png_set_sig_bytes(png, 8);
    png_read_info(png, info);
    png_uint_32 w = 0, h = 0;
    int depth = 0, color = 0, interlace = 0;
    png_get_IHDR(png, info, &w, &h, &depth, &color, &interlace, NULL, NULL);
    const char *bad = NULL;
    if (color == PNG_COLOR_TYPE_PALETTE) bad = "a palette (colour) image";
    else if (color == PNG_COLOR_TYPE_RGB) bad = "an RGB colour image";
    else if (color == PNG_COLOR_TYPE_RGB_ALPHA) bad = "an RGBA colour image";
    else if (color == PNG_COLOR_TYPE_GRAY_ALPHA) bad = "a grayscale image with an alpha channel";
    if (bad) {
        png_destroy_read_struct(&png, &info, NULL);
        fclose(f);
        return mm_fail(MM_ERR_UNSUPPORTED, "%s: %s; only 8- or 16-bit grayscale PNGs are supported",
                       path, bad);
    }
    if ((long long)w * (long long)h > MM_PNG_MAX_PIXELS) {
        png_destroy_read_struct(&png, &info, NULL);
        fclose(f);
        return mm_fail(MM_ERR_UNSUPPORTED, "%s: %u x %u pixels is larger than we accept", path,
                       (unsigned)w, (unsigned)h);
    }
    if (depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16 && is_little_endian()) png_set_swap(png);
    if (interlace != PNG_INTERLACE_NONE) png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int out_depth = depth == 16 ? 16 : 8;
    size_t bpp = (size_t)out_depth / 8, stride = (size_t)w * bpp;
    if (png_get_rowbytes(png, info) != stride) {
        png_destroy_read_struct(&png, &info, NULL);
        fclose(f);
        return mm_fail(MM_ERR_FORMAT, "%s: unexpected PNG row size", path);
    }
    pixels = malloc(stride * h);
    rows = malloc(sizeof(png_bytep) * h);
    if (!pixels || !rows) {
        png_destroy_read_struct(&png, &info, NULL);
        fclose(f);
        free(pixels);
        free(rows);
        return mm_fail(MM_ERR_NOMEM, "%s: out of memory for %u x %u pixels", path, (unsigned)w,
                       (unsigned)h);
    }
    for (png_uint_32 y = 0; y < h; y++) rows[y] = pixels + (size_t)y * stride;
    stage = 1;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    free(rows);
    img->height = (int)h;
    img->width = (int)w;
    img->bit_depth = out_depth;
    img->pixels = pixels;
    return MM_OK;
}

/* Writes the image to the already open `f`; returns 0 or sets ctx->msg and returns 1. */
static int write_stream(FILE *f, const mm_image *img, png_err_ctx *ctx)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, ctx, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(png ? &png : NULL, NULL);
        snprintf(ctx->msg, sizeof ctx->msg, "cannot set up libpng");
        return 1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return 1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)img->width, (png_uint_32)img->height, img->bit_depth,
                 PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    /* Level 3 with the Paeth filter: about as small as libpng's default (level 6, adaptive
     * filters) on mammograms and several times faster on 13-Mpx images. */
    png_set_compression_level(png, 3);
    png_set_filter(png, PNG_FILTER_TYPE_BASE, PNG_FILTER_PAETH);
    png_write_info(png, info);
    if (img->bit_depth == 16 && is_little_endian()) png_set_swap(png);
    size_t stride = (size_t)img->width * (size_t)(img->bit_depth / 8);
    const uint8_t *p = img->pixels;
    for (int y = 0; y < img->height; y++)
        png_write_row(png, (png_const_bytep)(p + (size_t)y * stride));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return 0;
}

mm_status mm_png_write(const char *path, const mm_image *img)
{
    if (img->bit_depth != 8 && img->bit_depth != 16)
        return mm_fail(MM_ERR_ARG, "%s: bit depth %d (must be 8 or 16)", path, img->bit_depth);
    if (img->width <= 0 || img->height <= 0 || !img->pixels)
        return mm_fail(MM_ERR_ARG, "%s: empty image (%d x %d)", path, img->height, img->width);
    mm_atomic_file af;
    MM_TRY(mm_atomic_file_open(&af, path));
    png_err_ctx ctx = {{0}};
    if (write_stream(af.file, img, &ctx)) {
        mm_atomic_file_abort(&af);
        return mm_fail(MM_ERR_IO, "%s: cannot write the PNG: %s", path, ctx.msg);
    }
    return mm_atomic_file_commit(&af);
}
