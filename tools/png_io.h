/* PNG through libpng: 8- and 16-bit grayscale read and write. Writes go to a temporary file in the
 * same folder and are renamed, so an interrupted write never leaves a half-written PNG. */
#ifndef MM_PNG_IO_H
#define MM_PNG_IO_H

#include <stdint.h>

#include "../runtime/error.h"

typedef struct mm_image {
    int height, width;
    int bit_depth;  /* 8 or 16 */
    void *pixels;   /* uint8_t or uint16_t [height*width], row-major, malloc'ed */
} mm_image;

/* Reads an 8- or 16-bit grayscale PNG (palette/colour/alpha images are a tier-1 error that names
 * the file; 1/2/4-bit grayscale is expanded to 8). */
mm_status mm_png_read(const char *path, mm_image *img);
mm_status mm_png_write(const char *path, const mm_image *img);
void mm_image_free(mm_image *img);

#endif
