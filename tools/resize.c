/* Area-averaging (box filter) resize: see resize.h.
 *
 * In units of 1/(in*out) pixel, output o of an axis covers [o*in, (o+1)*in) and input i covers
 * [i*out, (i+1)*out), so every overlap is an integer and the weight of input i in output o is
 * overlap / in (the weights of one output sum to exactly 1). The filter is separable: each output
 * row is the weighted sum of a few input rows, each of which is first filtered horizontally. */
#include "resize.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/error.h"

typedef struct taps {
    int *first, *count; /* [out] first input index and number of inputs per output */
    double *w;          /* [out * max] weights */
    int max;
} taps;

static void taps_init(taps *t, int in, int out)
{
    t->max = in / out + 2;
    t->first = mm_xmalloc((size_t)out * sizeof *t->first);
    t->count = mm_xmalloc((size_t)out * sizeof *t->count);
    t->w = mm_xcalloc((size_t)out * (size_t)t->max, sizeof *t->w);
    for (int o = 0; o < out; o++) {
        int64_t lo = (int64_t)o * in, hi = (int64_t)(o + 1) * in; /* in units of 1/(in*out) */
        int i0 = (int)(lo / out), i1 = (int)((hi - 1) / out);     /* inputs touching [lo, hi) */
        t->first[o] = i0;
        t->count[o] = i1 - i0 + 1;
        MM_ASSERT(t->count[o] <= t->max);
        for (int i = i0; i <= i1; i++) {
            int64_t a = (int64_t)i * out, b = (int64_t)(i + 1) * out;
            int64_t ov = (b < hi ? b : hi) - (a > lo ? a : lo);
            t->w[(size_t)o * (size_t)t->max + (size_t)(i - i0)] = (double)ov / (double)in;
        }
    }
}

static void taps_free(taps *t)
{
    free(t->first);
    free(t->count);
    free(t->w);
}

/* Horizontally filters input row r into row[ow]. */
static void filter_row(double *row, const void *in, int in_bits, int r, int iw, int ow,
                       const taps *tx)
{
    for (int ox = 0; ox < ow; ox++) {
        const double *w = tx->w + (size_t)ox * (size_t)tx->max;
        int f = tx->first[ox], n = tx->count[ox];
        double s = 0;
        if (in_bits == 16) {
            const uint16_t *p = (const uint16_t *)in + (size_t)r * (size_t)iw + f;
            for (int k = 0; k < n; k++) s += w[k] * p[k];
        } else {
            const uint8_t *p = (const uint8_t *)in + (size_t)r * (size_t)iw + f;
            for (int k = 0; k < n; k++) s += w[k] * p[k];
        }
        row[ox] = s;
    }
}

void mm_resize_area(double *out, const void *in, int in_bits, int ih, int iw, int oh, int ow)
{
    MM_ASSERT(in_bits == 8 || in_bits == 16);
    MM_ASSERT(ih > 0 && iw > 0 && oh > 0 && ow > 0);
    taps tx, ty;
    taps_init(&tx, iw, ow);
    taps_init(&ty, ih, oh);
    double *row = mm_xmalloc((size_t)ow * sizeof *row);
    int cached = -1; /* the input row held in `row` (shared by neighbouring output rows) */
    double *last = mm_xmalloc((size_t)ow * sizeof *last);
    for (int oy = 0; oy < oh; oy++) {
        double *o = out + (size_t)oy * (size_t)ow;
        memset(o, 0, (size_t)ow * sizeof *o);
        for (int k = 0; k < ty.count[oy]; k++) {
            int r = ty.first[oy] + k;
            double wy = ty.w[(size_t)oy * (size_t)ty.max + (size_t)k];
            const double *src;
            if (r == cached) {
                src = last;
            } else {
                filter_row(row, in, in_bits, r, iw, ow, &tx);
                src = row;
                if (k == ty.count[oy] - 1) { /* the next output row may start with this one */
                    memcpy(last, row, (size_t)ow * sizeof *row);
                    cached = r;
                }
            }
            for (int ox = 0; ox < ow; ox++) o[ox] += wy * src[ox];
        }
    }
    free(row);
    free(last);
    taps_free(&tx);
    taps_free(&ty);
}

void mm_resize_area_u16(uint16_t *out, const uint16_t *in, int ih, int iw, int oh, int ow)
{
    double *tmp = mm_xmalloc((size_t)oh * (size_t)ow * sizeof *tmp);
    mm_resize_area(tmp, in, 16, ih, iw, oh, ow);
    for (size_t i = 0; i < (size_t)oh * (size_t)ow; i++) {
        double v = floor(tmp[i] + 0.5);
        out[i] = (uint16_t)(v < 0 ? 0 : v > 65535 ? 65535 : v);
    }
    free(tmp);
}

int64_t mm_resize_mask(uint8_t *out, const uint8_t *in, int ih, int iw, int oh, int ow)
{
    size_t n_in = (size_t)ih * (size_t)iw, n_out = (size_t)oh * (size_t)ow;
    uint8_t *bin = mm_xmalloc(n_in);
    int any = 0;
    for (size_t i = 0; i < n_in; i++) any |= bin[i] = in[i] != 0;
    double *cov = mm_xmalloc(n_out * sizeof *cov);
    mm_resize_area(cov, bin, 8, ih, iw, oh, ow);
    int64_t inside = 0;
    double best = 0;
    for (size_t i = 0; i < n_out; i++) {
        /* 1e-9 absorbs rounding in sums of weights that are exactly one half */
        out[i] = cov[i] >= 0.5 - 1e-9 ? 255 : 0;
        inside += out[i] != 0;
        if (cov[i] > best) best = cov[i];
    }
    if (any && inside == 0 && best > 0)
        for (size_t i = 0; i < n_out; i++)
            if (cov[i] >= best - 1e-12) {
                out[i] = 255;
                inside++;
            }
    free(cov);
    free(bin);
    return inside;
}
