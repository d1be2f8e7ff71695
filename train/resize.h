/* Resizing a decoded grayscale image to the training size, separably (rows, then columns).
 *
 * Each axis on its own: shrinking averages areas (every output pixel is the mean of the input
 * interval it covers, partial pixels weighted by their overlap: OpenCV's INTER_AREA, which does
 * not alias the way bilinear does when shrinking by large factors); growing interpolates linearly
 * between pixel centres (half-pixel centres, x_in = (x_out + 0.5) * in/out - 0.5, clamped to the
 * edge: OpenCV's INTER_LINEAR); an axis of equal size is copied. The reference resized with
 * cubic interpolation; our preprocessing writes PNGs at the training size already, so this path
 * matters only for images that are not. */
#ifndef MM_RESIZE_H
#define MM_RESIZE_H

#include <stddef.h>

#include "../tools/png_io.h"

/* Bytes of scratch mm_resize_gray needs. */
size_t mm_resize_scratch_bytes(int in_height, int in_width, int out_height, int out_width);

/* out[out_h*out_w] = img's raw stored values (0..255 or 0..65535, not rescaled) resized.
 * scratch: mm_resize_scratch_bytes() bytes, suitably aligned (from malloc). */
void mm_resize_gray(float *out, const mm_image *img, int out_height, int out_width, void *scratch);

#endif
