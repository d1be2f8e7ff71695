/* Evaluation-mode inference: see infer.h. */
#include "infer.h"

#include <stdlib.h>
#include <string.h>

#include "../kernels/cpu/cpu_kernels.h"

mm_status mm_infer(float *probs, const mm_model *m, mm_session *s, const mm_loader_item *items,
                      int n, const mm_infer_opts *o)
{
    const mm_model_config *c = &m->cfg;
    int b = c->batch, classes = c->classes;
    mm_loader_opts lo;
    mm_loader_opts_default(&lo);
    lo.batch_size = b;
    lo.height = c->height;
    lo.width = c->width;
    lo.channels = 3;
    lo.rescale = o->rescale;
    lo.mean = o->mean;
    lo.shuffle = 0;
    lo.drop_last = 0;
    lo.max_epochs = 1;
    lo.n_threads = o->threads;
    lo.augment = 0;
    mm_loader *L;
    MM_TRY(mm_loader_create(&L, items, n, &lo));
    size_t img_floats = (size_t)b * c->height * c->width * 3;
    float *images = mm_xmalloc(img_floats * sizeof(float));
    float *flipped = mm_xmalloc(img_floats * sizeof(float));
    float *out = mm_xmalloc((size_t)b * classes * sizeof(float));
    int32_t *labels = mm_xmalloc((size_t)b * sizeof(int32_t));
    int32_t *index = mm_xmalloc((size_t)b * sizeof(int32_t));
    mm_batch batch = {images, labels, NULL, index};
    mm_status st = MM_OK;
    int done = 0;
    while (st == MM_OK) {
        int count = 0;
        memset(images, 0, img_floats * sizeof(float)); /* padding of a short batch */
        st = mm_loader_next(L, &batch, &count);
        if (st != MM_OK || count == 0) break;
        for (int i = 0; i < count; i++)
            for (int k = 0; k < classes; k++) probs[(size_t)index[i] * classes + k] = 0.0f;
        int views = o->tta ? 4 : 1;
        for (int v = 0; v < views && st == MM_OK; v++) {
            const float *x = images;
            if (v == 1 || v == 2) { /* horizontal (columns), vertical (rows) */
                mm_cpu_flip(flipped, images, b, c->height, c->width, 3, v == 1 ? 2 : 1);
                x = flipped;
            } else if (v == 3) { /* both; the last view, so the batch itself may be overwritten */
                mm_cpu_flip(flipped, images, b, c->height, c->width, 3, 2);
                mm_cpu_flip(images, flipped, b, c->height, c->width, 3, 1);
            }
            st = mm_session_write(s, m->image, x, img_floats * sizeof(float));
            if (st != MM_OK) break;
            mm_session_forward(s);
            st = mm_session_read(s, m->probs, out, (size_t)b * classes * sizeof(float));
            for (int i = 0; i < count && st == MM_OK; i++)
                for (int k = 0; k < classes; k++)
                    probs[(size_t)index[i] * classes + k] += out[(size_t)i * classes + k] / views;
        }
        done += count;
    }
    if (st == MM_OK && done != n)
        st = mm_fail(MM_ERR_IO, "evaluation: %d of %d images were read", done, n);
    mm_loader_free(L);
    free(images);
    free(flipped);
    free(out);
    free(labels);
    free(index);
    return st;
}
