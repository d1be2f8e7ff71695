/* Rasterising ROI outlines into binary masks (INbreast's OsiriX point lists).
 *
 * Coordinates are in pixels with x = column and y = row, and pixel (r, c) is the point (c, r): its
 * centre. A pixel belongs to a polygon when its centre is inside by the even-odd rule, with the
 * half-open convention that makes two polygons sharing an edge never both claim a pixel
 * (a centre exactly on a left/top edge is inside, on a right/bottom edge outside). Parts of a
 * shape outside the frame are clipped away, exactly as if the polygon were clipped to the image
 * rectangle: vertices outside the frame are kept, not dropped. */
#ifndef MM_RASTER_H
#define MM_RASTER_H

#include <stdint.h>

/* Sets mask pixels inside the polygon (x[i], y[i]), i < n (n >= 3; closed implicitly) to value.
 * Returns the number of pixels it covers. */
int64_t mm_raster_polygon(uint8_t *mask /* [h*w] */, const double *x /* [n] */,
                          const double *y /* [n] */, uint8_t value, int n, int h, int w);

/* Sets mask pixels whose centre lies within distance `radius` of (cx, cy) to value. Returns the
 * number of pixels covered. */
int64_t mm_raster_disk(uint8_t *mask /* [h*w] */, double cx, double cy, double radius,
                       uint8_t value, int h, int w);

/* The INbreast rule for one ROI: 1 or 2 points are point lesions (a disk of `radius` around each
 * point); 3 or more a filled polygon, and a polygon too thin to cover a pixel centre becomes a
 * disk at its vertex mean so the lesion is never lost. Returns the pixels covered (0 when the
 * ROI lies entirely outside the frame). */
int64_t mm_raster_roi(uint8_t *mask /* [h*w] */, const double *x /* [n] */,
                      const double *y /* [n] */, uint8_t value, double radius, int n, int h, int w);

#endif
