/* libFuzzer target for the PNG reader (tools/png_io.h) and prep's header peek
 * (mm_png_has_shape); built and run by tests/fuzz/run.sh. Any file must read or give a tier-1
 * error naming it, never crash; an image that reads must write and read back unchanged. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/png_io.h"
#include "tools/prep.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[256], back[300];
    const char *dir = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/mm-fuzz-png-%ld.png", dir ? dir : "/tmp", (long)getpid());
    snprintf(back, sizeof back, "%s.back.png", path);
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    mm_image img;
    if (mm_png_read(path, &img) != MM_OK) {
        if (!strstr(mm_last_error(), "mm-fuzz-png")) abort();
        unlink(path);
        return 0;
    }
    if (img.height <= 0 || img.width <= 0 || (img.bit_depth != 8 && img.bit_depth != 16)) abort();
    (void)mm_png_has_shape(path, img.height, img.width, img.bit_depth);
    if (mm_png_write(back, &img) != MM_OK) abort();
    mm_image again;
    if (mm_png_read(back, &again) != MM_OK) abort();
    size_t bytes = (size_t)img.height * (size_t)img.width * (size_t)(img.bit_depth / 8);
    if (again.height != img.height || again.width != img.width ||
        again.bit_depth != img.bit_depth || memcmp(again.pixels, img.pixels, bytes))
        abort();
    if (!mm_png_has_shape(back, img.height, img.width, img.bit_depth)) abort();
    mm_image_free(&again);
    mm_image_free(&img);
    unlink(path);
    unlink(back);
    return 0;
}
