/* Separable area / linear resizing: see resize.h. */
#include "resize.h"

#include <math.h>
#include <stdint.h>

#include "../runtime/error.h"

/* The taps of one output index: input indices [start, start + n) with weights w[0..n). */
typedef struct tap_table {
    int *start, *n; /* [out] */
    int *off;       /* [out]: offset of the output's first weight in w */
    float *w;       /* [total taps] */
} tap_table;

/* The most taps one output of an axis can have: area averaging covers ceil(in/out) + 1 inputs. */
static int max_taps(int in, int out)
{
    return in > out ? (in + out - 1) / out + 1 : 2;
}

static size_t table_bytes(int in, int out)
{
    return (size_t)out * 3 * sizeof(int) + (size_t)out * (size_t)max_taps(in, out) * sizeof(float);
}

static void build_taps(tap_table *t, void *mem, int in, int out)
{
    int *ip = mem;
    t->start = ip;
    t->n = ip + out;
    t->off = ip + 2 * out;
    t->w = (float *)(ip + 3 * out);
    int k = 0;
    if (in > out) {
        /* area: output o covers input interval [o*s, (o+1)*s), s = in/out > 1 */
        double s = (double)in / out;
        for (int o = 0; o < out; o++) {
            double a = o * s, b = (o + 1) * s;
            int i0 = (int)floor(a), i1 = (int)ceil(b);
            if (i1 > in) i1 = in;
            t->start[o] = i0;
            t->off[o] = k;
            int n = 0;
            for (int i = i0; i < i1; i++, n++) {
                /* overlap of input pixel [i, i+1) with [a, b); positive for every i in range */
                double lo = i > a ? i : a, hi = i + 1 < b ? i + 1 : b;
                t->w[k + n] = (float)((hi > lo ? hi - lo : 0.0) / s);
            }
            t->n[o] = n;
            k += n;
        }
    } else if (in < out) {
        double s = (double)in / out;
        for (int o = 0; o < out; o++) {
            double x = (o + 0.5) * s - 0.5;
            if (x < 0) x = 0;
            if (x > in - 1) x = in - 1;
            int i0 = (int)x;
            double f = x - i0;
            t->start[o] = i0;
            t->off[o] = k;
            if (i0 + 1 < in && f > 0) {
                t->w[k] = (float)(1.0 - f);
                t->w[k + 1] = (float)f;
                t->n[o] = 2;
                k += 2;
            } else {
                t->w[k] = 1.0f;
                t->n[o] = 1;
                k += 1;
            }
        }
    } else {
        for (int o = 0; o < out; o++) {
            t->start[o] = o;
            t->n[o] = 1;
            t->off[o] = k;
            t->w[k++] = 1.0f;
        }
    }
    MM_ASSERT(k <= out * max_taps(in, out));
}

static size_t round_up(size_t x)
{
    return (x + 63) & ~(size_t)63;
}

size_t mm_resize_scratch_bytes(int in_height, int in_width, int out_height, int out_width)
{
    return round_up(table_bytes(in_width, out_width)) + round_up(table_bytes(in_height, out_height)) +
           (size_t)in_height * (size_t)out_width * sizeof(float);
}

void mm_resize_gray(float *out, const mm_image *img, int out_height, int out_width, void *scratch)
{
    int ih = img->height, iw = img->width;
    char *mem = scratch;
    tap_table tx, ty;
    build_taps(&tx, mem, iw, out_width);
    mem += round_up(table_bytes(iw, out_width));
    build_taps(&ty, mem, ih, out_height);
    mem += round_up(table_bytes(ih, out_height));
    float *tmp = (float *)mem; /* [ih, out_width]: rows resized */

    for (int r = 0; r < ih; r++) {
        float *t = tmp + (int64_t)r * out_width;
        if (img->bit_depth == 16) {
            const uint16_t *row = (const uint16_t *)img->pixels + (int64_t)r * iw;
            for (int o = 0; o < out_width; o++) {
                const float *w = tx.w + tx.off[o];
                const uint16_t *x = row + tx.start[o];
                float acc = 0.0f;
                for (int k = 0; k < tx.n[o]; k++) acc += w[k] * (float)x[k];
                t[o] = acc;
            }
        } else {
            const uint8_t *row = (const uint8_t *)img->pixels + (int64_t)r * iw;
            for (int o = 0; o < out_width; o++) {
                const float *w = tx.w + tx.off[o];
                const uint8_t *x = row + tx.start[o];
                float acc = 0.0f;
                for (int k = 0; k < tx.n[o]; k++) acc += w[k] * (float)x[k];
                t[o] = acc;
            }
        }
    }
    for (int o = 0; o < out_height; o++) {
        float *dst = out + (int64_t)o * out_width;
        const float *w = ty.w + ty.off[o];
        const float *src = tmp + (int64_t)ty.start[o] * out_width;
        for (int c = 0; c < out_width; c++) dst[c] = w[0] * src[c];
        for (int k = 1; k < ty.n[o]; k++) {
            const float *s = src + (int64_t)k * out_width;
            for (int c = 0; c < out_width; c++) dst[c] += w[k] * s[c];
        }
    }
}
