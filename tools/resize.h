/* Area-averaging resize: the exact box filter.
 *
 * Output pixel (oy, ox) of an (oh, ow) image made from an (ih, iw) one covers the input rectangle
 * [oy*ih/oh, (oy+1)*ih/oh) x [ox*iw/ow, (ox+1)*iw/ow) (input pixel (y, x) covering [y, y+1) x
 * [x, x+1)); its value is the mean of the input over that rectangle, each input pixel weighted by
 * the area it shares with it (fractional at the edges). The 2-D weights are products of 1-D
 * ones, computed from integer overlaps (exact), and sums are in double. Works for shrinking and
 * enlarging (enlarging then copies or blends the one or two input pixels under each output). */
#ifndef MM_RESIZE_H
#define MM_RESIZE_H

#include <stdint.h>

/* Box-filtered means of a uint16 or uint8 image (in_bits 16 or 8) as doubles. */
void mm_resize_area(double *out /* [oh*ow] */, const void *in /* [ih*iw] */, int in_bits, int ih,
                    int iw, int oh, int ow);

/* uint16 -> uint16, rounded to nearest (floor(v + 0.5)). */
void mm_resize_area_u16(uint16_t *out /* [oh*ow] */, const uint16_t *in /* [ih*iw] */, int ih,
                        int iw, int oh, int ow);

/* A binary mask (nonzero = inside) -> a 0/255 mask: an output pixel is inside when at least half
 * of its area is. A non-empty mask never vanishes: when no output pixel reaches one half, the
 * pixels with the largest coverage are set. Returns the number of inside output pixels. */
int64_t mm_resize_mask(uint8_t *out /* [oh*ow] */, const uint8_t *in /* [ih*iw] */, int ih,
                       int iw, int oh, int ow);

#endif
