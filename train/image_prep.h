/* One training sample from a PNG file to network input: decode, resize, augment, rescale, centre.
 *
 *   raw   = the PNG's stored 8- or 16-bit grayscale values, as float
 *   f     = raw resized to height x width when the PNG has another size (resize.h)
 *   g     = f warped by the sample's affine augmentation (augment.h), or f
 *   v_k   = g * rescale                                   (float arithmetic)
 *   v_k   = clip(v_k + shift_k, min(g)*rescale, max(g)*rescale)     only with an intensity shift
 *   out_k = v_k - mean                                    for each output channel k
 *
 * Without resizing or augmentation every output value is exactly (float)raw * rescale - mean,
 * computed in float. The output is [height, width, channels] (NHWC without the N), channels = 1 or
 * 3: the grayscale image replicated, as the reference and ImageNet-shaped trunks need (with a
 * per-channel intensity shift the 3 channels differ by their shifts). */
#ifndef MM_IMAGE_PREP_H
#define MM_IMAGE_PREP_H

#include <stddef.h>

#include "../runtime/error.h"
#include "../tools/png_io.h"
#include "augment.h"

typedef struct mm_prep_opts {
    int height, width; /* output size */
    int channels;      /* 1 or 3 */
    float rescale;     /* multiplies raw stored values, e.g. 255/65535 = 0.003891 for 16-bit PNGs */
    float mean;        /* scalar subtracted last (the training set's pixel mean, rescaled units) */
    mm_interp interp;  /* of the augmentation warp */
} mm_prep_opts;

/* Per-thread working memory, grown on demand; zero-initialise, release with mm_prep_scratch_free. */
typedef struct mm_prep_scratch {
    float *f, *g;
    size_t f_cap, g_cap; /* floats */
    void *resize;
    size_t resize_cap;   /* bytes */
} mm_prep_scratch;

void mm_prep_scratch_free(mm_prep_scratch *s);

/* out[height*width*channels] from an already decoded image; draw = NULL means no augmentation. */
void mm_prep_decoded(float *out, const mm_image *img, const mm_prep_opts *o,
                     const mm_augment_draw *draw, mm_prep_scratch *s);

/* The same from a PNG file. A missing, unreadable or corrupt file, or one that is not 8/16-bit
 * grayscale, is a tier-1 error whose message names the file; out is then undefined. */
mm_status mm_prep_png(float *out, const char *path, const mm_prep_opts *o,
                      const mm_augment_draw *draw, mm_prep_scratch *s);

/* f[height*width] = the raw values of img resized to height x width (step 1 above); used by the
 * pixel mean so that it averages exactly the pixels the network sees. */
void mm_prep_raw_resized(float *f, const mm_image *img, int height, int width, mm_prep_scratch *s);

#endif
