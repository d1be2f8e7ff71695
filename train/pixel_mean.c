/* Multi-threaded pixel mean of a training set: see pixel_mean.h. */
#include "pixel_mean.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image_prep.h"

typedef struct mean_job {
    const mm_loader_item *items;
    int n_items, height, width;
    double *sums;    /* [n_items] sum of raw (resized) values of each image */
    int64_t *counts; /* [n_items] its pixel count */
    pthread_mutex_t mu;
    int next;        /* next image to take */
    int err_item;    /* lowest failing item, or -1 */
    mm_status err;
    char err_msg[1024];
} mean_job;

static double image_sum(const mm_image *img, int height, int width, mm_prep_scratch *s,
                        int64_t *count)
{
    double sum = 0.0;
    if (height == 0) {
        int64_t n = (int64_t)img->height * img->width;
        *count = n;
        /* exact integer sum (at most 2^31 pixels of 16 bits fit in 64 bits) */
        uint64_t isum = 0;
        if (img->bit_depth == 16) {
            const uint16_t *p = img->pixels;
            for (int64_t i = 0; i < n; i++) isum += p[i];
        } else {
            const uint8_t *p = img->pixels;
            for (int64_t i = 0; i < n; i++) isum += p[i];
        }
        return (double)isum;
    }
    int64_t n = (int64_t)height * width;
    if (s->f_cap < (size_t)n) {
        free(s->f);
        s->f = mm_xmalloc((size_t)n * sizeof(float));
        s->f_cap = (size_t)n;
    }
    mm_prep_raw_resized(s->f, img, height, width, s);
    for (int64_t i = 0; i < n; i++) sum += s->f[i];
    *count = n;
    return sum;
}

static void *mean_worker(void *arg)
{
    mean_job *J = arg;
    mm_prep_scratch scratch = {0};
    for (;;) {
        pthread_mutex_lock(&J->mu);
        int i = J->next < J->n_items ? J->next++ : -1;
        pthread_mutex_unlock(&J->mu);
        if (i < 0) break;
        mm_image img = {0};
        mm_status st = mm_png_read(J->items[i].path, &img);
        if (st == MM_OK && img.bit_depth != 8 && img.bit_depth != 16)
            st = mm_fail(MM_ERR_UNSUPPORTED, "%s: %d-bit PNG; expected 8- or 16-bit grayscale",
                         J->items[i].path, img.bit_depth);
        if (st != MM_OK) {
            char msg[1024];
            if (strstr(mm_last_error(), J->items[i].path))
                snprintf(msg, sizeof msg, "%s", mm_last_error());
            else
                snprintf(msg, sizeof msg, "%s: %s", J->items[i].path, mm_last_error());
            pthread_mutex_lock(&J->mu);
            if (J->err_item < 0 || i < J->err_item) {
                J->err_item = i;
                J->err = st;
                snprintf(J->err_msg, sizeof J->err_msg, "%s", msg);
            }
            pthread_mutex_unlock(&J->mu);
            mm_image_free(&img);
            continue;
        }
        J->sums[i] = image_sum(&img, J->height, J->width, &scratch, &J->counts[i]);
        mm_image_free(&img);
    }
    mm_prep_scratch_free(&scratch);
    return NULL;
}

mm_status mm_pixel_mean(double *mean, const mm_loader_item *items, int n_items, int height,
                        int width, float rescale, int n_threads)
{
    if (n_items < 1) return mm_fail(MM_ERR_ARG, "pixel mean: no training images");
    if ((height == 0) != (width == 0) || height < 0 || width < 0)
        return mm_fail(MM_ERR_ARG, "pixel mean: size %dx%d; give both or neither", height, width);
    if (n_threads <= 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = cpus > 0 ? (int)cpus : 1;
    }
    if (n_threads > n_items) n_threads = n_items;
    mean_job J;
    memset(&J, 0, sizeof J);
    J.items = items;
    J.n_items = n_items;
    J.height = height;
    J.width = width;
    J.sums = mm_xcalloc((size_t)n_items, sizeof *J.sums);
    J.counts = mm_xcalloc((size_t)n_items, sizeof *J.counts);
    J.err_item = -1;
    pthread_mutex_init(&J.mu, NULL);
    pthread_t *th = mm_xcalloc((size_t)n_threads, sizeof *th);
    int started = 0;
    for (; started < n_threads; started++)
        if (pthread_create(&th[started], NULL, mean_worker, &J) != 0) break;
    if (started == 0) mean_worker(&J); /* no thread could start: do it here */
    for (int t = 0; t < started; t++) pthread_join(th[t], NULL);
    free(th);
    pthread_mutex_destroy(&J.mu);

    mm_status st = MM_OK;
    if (J.err_item >= 0) {
        st = mm_fail(J.err, "%s", J.err_msg);
    } else {
        double sum = 0.0, count = 0.0;
        for (int i = 0; i < n_items; i++) {
            sum += J.sums[i];
            count += (double)J.counts[i];
        }
        *mean = (double)rescale * (sum / count);
    }
    free(J.sums);
    free(J.counts);
    return st;
}
