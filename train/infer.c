/* Evaluation-mode inference: see infer.h. */
#include "infer.h"

#include <stdlib.h>
#include <string.h>

#include "../runtime/graph.h"

/* The flips of test-time augmentation as nodes the backend runs on its own buffers, so a batch
 * is copied to the device once and its views are made there: node 0 flips the columns
 * (horizontal), node 1 the rows (vertical). */
typedef struct flips {
    mm_graph *g;
    mm_tensor x, y; /* the batch's views of any two device buffers */
} flips;

static void flips_init(flips *f, const mm_model_config *c, const mm_backend *be)
{
    f->g = mm_graph_new(false);
    int64_t shape[4] = {c->batch, c->height, c->width, 3};
    int x = mm_graph_input(f->g, "image", MM_F32, 4, shape);
    mm_flip(f->g, x, 2);
    mm_flip(f->g, x, 1);
    f->x = f->y = mm_tensor_view(NULL, MM_F32, 4, shape);
    f->x.device = f->y.device = be->device;
}

/* y = x flipped by node k (0: columns, 1: rows); y must not be x. */
static void flip_on(mm_backend *be, flips *f, int k, void *y, const void *x)
{
    f->x.data = (void *)x;
    f->y.data = y;
    be->run_node(be, f->g, &f->g->nodes[k], &f->x, &f->y, NULL, 0);
}

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
    mm_backend *be = s->be;
    size_t img_bytes = (size_t)b * c->height * c->width * 3 * sizeof(float);
    float *images = mm_host_alloc(be, img_bytes);
    float *out = mm_xmalloc((size_t)b * classes * sizeof(float));
    int32_t *labels = mm_xmalloc((size_t)b * sizeof(int32_t));
    int32_t *index = mm_xmalloc((size_t)b * sizeof(int32_t));
    mm_batch batch = {images, labels, NULL, index};
    /* with TTA: the batch's flips on the device, from a device copy of it */
    flips f = {NULL, {0}, {0}};
    void *copy = NULL, *input = mm_session_tensor(s, m->image).data;
    mm_status st = MM_OK;
    if (o->tta) {
        flips_init(&f, c, be);
        copy = be->alloc(be, img_bytes);
        if (!copy)
            st = mm_fail(MM_ERR_NOMEM, "%s device: cannot allocate %.1f MiB for test-time "
                         "augmentation; use a smaller batch or leave --tta out",
                         be->name, img_bytes / 1048576.0);
    }
    int done = 0;
    while (st == MM_OK) {
        int count = 0;
        memset(images, 0, img_bytes); /* padding of a short batch */
        st = mm_loader_next(L, &batch, &count);
        if (st != MM_OK || count == 0) break;
        for (int i = 0; i < count; i++)
            for (int k = 0; k < classes; k++) probs[(size_t)index[i] * classes + k] = 0.0f;
        st = mm_session_write(s, m->image, images, img_bytes);
        int views = o->tta ? 4 : 1;
        for (int v = 0; v < views && st == MM_OK; v++) {
            if (v == 1) { /* columns (horizontal), from the copy of the batch */
                be->copy_device(be, copy, input, img_bytes);
                flip_on(be, &f, 0, input, copy);
            } else if (v == 2) { /* rows (vertical) */
                flip_on(be, &f, 1, input, copy);
            } else if (v == 3) { /* both: the columns of the rows' flip */
                flip_on(be, &f, 0, copy, input);
                be->copy_device(be, input, copy, img_bytes);
            }
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
    if (copy) be->free(be, copy);
    if (f.g) mm_graph_free(f.g);
    mm_host_free(be, images);
    free(out);
    free(labels);
    free(index);
    return st;
}
