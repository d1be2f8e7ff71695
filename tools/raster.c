/* Scanline polygon fill and disks for ROI masks: see raster.h. */
#include "raster.h"

#include <math.h>
#include <stdlib.h>

#include "../runtime/error.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int64_t mm_raster_polygon(uint8_t *mask, const double *x, const double *y, uint8_t value, int n,
                          int h, int w)
{
    if (n < 3 || h <= 0 || w <= 0) return 0;
    double ymin = y[0], ymax = y[0];
    for (int i = 1; i < n; i++) {
        if (y[i] < ymin) ymin = y[i];
        if (y[i] > ymax) ymax = y[i];
    }
    /* rows whose centre line can cross the polygon, clipped to the frame */
    double r0d = ceil(ymin), r1d = floor(ymax);
    if (r0d < 0) r0d = 0;
    if (r1d > h - 1) r1d = h - 1;
    if (r0d > r1d) return 0;
    int r0 = (int)r0d, r1 = (int)r1d;
    double *xs = mm_xmalloc((size_t)n * sizeof *xs);
    int64_t covered = 0;
    for (int r = r0; r <= r1; r++) {
        double py = r;
        int k = 0;
        for (int i = 0, j = n - 1; i < n; j = i++) {
            /* edge (j -> i) crosses the line when exactly one endpoint is above it */
            if ((y[i] > py) != (y[j] > py)) xs[k++] = (x[j] - x[i]) * (py - y[i]) / (y[j] - y[i]) + x[i];
        }
        qsort(xs, (size_t)k, sizeof *xs, cmp_double);
        for (int p = 0; p + 1 < k; p += 2) {
            /* centres c with xs[p] <= c < xs[p+1] are inside */
            double a = ceil(xs[p]), b = ceil(xs[p + 1]) - 1;
            if (a < 0) a = 0;
            if (b > w - 1) b = w - 1;
            if (!(a <= b)) continue; /* also skips NaN from degenerate input */
            uint8_t *row = mask + (size_t)r * (size_t)w;
            for (int c = (int)a; c <= (int)b; c++) row[c] = value;
            covered += (int64_t)(b - a) + 1;
        }
    }
    free(xs);
    return covered;
}

int64_t mm_raster_disk(uint8_t *mask, double cx, double cy, double radius, uint8_t value, int h,
                       int w)
{
    if (!(radius >= 0) || !isfinite(cx) || !isfinite(cy)) return 0;
    double r0d = ceil(cy - radius), r1d = floor(cy + radius);
    double c0d = ceil(cx - radius), c1d = floor(cx + radius);
    if (r0d < 0) r0d = 0;
    if (c0d < 0) c0d = 0;
    if (r1d > h - 1) r1d = h - 1;
    if (c1d > w - 1) c1d = w - 1;
    if (r0d > r1d || c0d > c1d) return 0;
    int64_t covered = 0;
    double r2 = radius * radius;
    for (int r = (int)r0d; r <= (int)r1d; r++)
        for (int c = (int)c0d; c <= (int)c1d; c++) {
            double dx = c - cx, dy = r - cy;
            if (dx * dx + dy * dy <= r2) {
                mask[(size_t)r * (size_t)w + (size_t)c] = value;
                covered++;
            }
        }
    return covered;
}

int64_t mm_raster_roi(uint8_t *mask, const double *x, const double *y, uint8_t value,
                      double radius, int n, int h, int w)
{
    if (n <= 0) return 0;
    if (n <= 2) {
        int64_t covered = 0;
        for (int i = 0; i < n; i++) covered += mm_raster_disk(mask, x[i], y[i], radius, value, h, w);
        return covered;
    }
    int64_t covered = mm_raster_polygon(mask, x, y, value, n, h, w);
    if (covered > 0) return covered;
    double mx = 0, my = 0;
    for (int i = 0; i < n; i++) {
        mx += x[i];
        my += y[i];
    }
    return mm_raster_disk(mask, mx / n, my / n, radius, value, h, w);
}
