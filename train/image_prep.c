/* Decode, resize, augment, rescale and centre one sample: see image_prep.h. */
#include "image_prep.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resize.h"

void mm_prep_scratch_free(mm_prep_scratch *s)
{
    free(s->f);
    free(s->g);
    free(s->resize);
    memset(s, 0, sizeof *s);
}

static float *grow_floats(float **p, size_t *cap, size_t n)
{
    if (*cap < n) {
        free(*p);
        *p = mm_xmalloc(n * sizeof(float));
        *cap = n;
    }
    return *p;
}

void mm_prep_raw_resized(float *f, const mm_image *img, int height, int width, mm_prep_scratch *s)
{
    int64_t n = (int64_t)height * width;
    if (img->height == height && img->width == width) {
        if (img->bit_depth == 16) {
            const uint16_t *p = img->pixels;
            for (int64_t i = 0; i < n; i++) f[i] = (float)p[i];
        } else {
            const uint8_t *p = img->pixels;
            for (int64_t i = 0; i < n; i++) f[i] = (float)p[i];
        }
        return;
    }
    size_t need = mm_resize_scratch_bytes(img->height, img->width, height, width);
    if (s->resize_cap < need) {
        free(s->resize);
        s->resize = mm_xmalloc(need);
        s->resize_cap = need;
    }
    mm_resize_gray(f, img, height, width, s->resize);
}

void mm_prep_decoded(float *out, const mm_image *img, const mm_prep_opts *o,
                     const mm_augment_draw *draw, mm_prep_scratch *s)
{
    MM_ASSERT(o->channels == 1 || o->channels == 3);
    MM_ASSERT(img->bit_depth == 8 || img->bit_depth == 16);
    int H = o->height, W = o->width, C = o->channels;
    int64_t n = (int64_t)H * W;
    float *f = grow_floats(&s->f, &s->f_cap, (size_t)n);
    mm_prep_raw_resized(f, img, H, W, s);

    const float *g = f;
    float lo = 0.0f, hi = 0.0f;
    if (draw && !mm_augment_is_identity_warp(draw)) {
        double m[6];
        mm_augment_matrix(m, draw, H, W);
        float *w = grow_floats(&s->g, &s->g_cap, (size_t)n);
        mm_warp_affine(w, &lo, &hi, f, m, o->interp, H, W);
        g = w;
    } else if (draw && draw->has_shift) {
        lo = hi = f[0];
        for (int64_t i = 1; i < n; i++) {
            lo = f[i] < lo ? f[i] : lo;
            hi = f[i] > hi ? f[i] : hi;
        }
    }

    float scale = o->rescale, mean = o->mean;
    if (!draw || !draw->has_shift) {
        if (C == 1) {
            for (int64_t i = 0; i < n; i++) out[i] = g[i] * scale - mean;
        } else {
            for (int64_t i = 0; i < n; i++) {
                float v = g[i] * scale - mean;
                out[3 * i] = v;
                out[3 * i + 1] = v;
                out[3 * i + 2] = v;
            }
        }
        return;
    }
    /* Keras random_channel_shift: each channel shifted, then clipped to the image's range. */
    float vlo = lo * scale, vhi = hi * scale;
    for (int k = 0; k < C; k++) {
        float t = draw->shift[k];
        for (int64_t i = 0; i < n; i++) {
            float v = g[i] * scale + t;
            v = v < vlo ? vlo : (v > vhi ? vhi : v);
            out[C * i + k] = v - mean;
        }
    }
}

mm_status mm_prep_png(float *out, const char *path, const mm_prep_opts *o,
                      const mm_augment_draw *draw, mm_prep_scratch *s)
{
    mm_image img = {0};
    mm_status st = mm_png_read(path, &img);
    if (st != MM_OK) {
        /* The PNG reader names the file; make sure of it, since the loader reports this message
         * to the consumer as is. */
        if (!strstr(mm_last_error(), path)) {
            char msg[768];
            snprintf(msg, sizeof msg, "%s", mm_last_error());
            return mm_fail(st, "%s: %s", path, msg[0] ? msg : "cannot read the PNG");
        }
        return st;
    }
    if (img.bit_depth != 8 && img.bit_depth != 16) {
        int bd = img.bit_depth;
        mm_image_free(&img);
        return mm_fail(MM_ERR_UNSUPPORTED, "%s: %d-bit PNG; expected 8- or 16-bit grayscale", path,
                       bd);
    }
    mm_prep_decoded(out, &img, o, draw, s);
    mm_image_free(&img);
    return MM_OK;
}
