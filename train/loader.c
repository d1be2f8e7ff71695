/* The threaded, deterministic data loader: see loader.h.
 *
 * Work is handed out one SAMPLE at a time, so that many threads can work on one batch (the
 * whole-image batch is 2). Batches get consecutive sequence numbers s = 0, 1, ... from the start
 * position; batch s lives in ring slot s % depth. Under one mutex, a worker either claims the next
 * unclaimed sample of the oldest batch that has one, or opens the next batch (fills its item
 * indices from the epoch order) when its slot is free, or sleeps. It decodes the claimed sample
 * outside the lock straight into the slot's image buffer at the sample's offset; the last sample
 * to finish wakes the consumer. The consumer copies its batch out of the slot and frees it, which
 * lets the workers open one more batch. What a sample contains depends only on (seed, epoch,
 * position), never on which thread made it or when. */
#include "loader.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../kernels/philox.h"
#include "image_prep.h"

typedef struct slot {
    int64_t seq;          /* batch sequence number held; -1 when free */
    int64_t epoch, batch; /* its position (batch: in this loader's epoch) */
    int64_t first;        /* the position in the epoch order of its first sample */
    int count;            /* samples in the batch */
    int next;             /* next sample to claim */
    int done;             /* samples finished */
    int32_t *items;       /* [B] item index of each sample */
    float *images;        /* [B, H, W, C] */
    mm_status err;        /* first failure (lowest sample index) */
    int err_sample;
    char err_msg[1024];
} slot;

struct mm_loader {
    mm_loader_opts o;
    int n_items;
    char **paths;     /* [n_items] */
    int32_t *labels;  /* [n_items] */
    float *weights;   /* [n_items] */
    int64_t nb;       /* batches per epoch (of this shard) */
    int64_t sample_floats;
    mm_prep_opts prep;

    pthread_mutex_t mu;
    pthread_cond_t work_cv;  /* workers: a slot was freed, a batch opened, or stop */
    pthread_cond_t ready_cv; /* consumer: a batch finished */
    int stop;

    slot *slots;
    int depth;
    int64_t first_abs;   /* absolute batch number (epoch * nb + batch) of sequence 0 */
    int64_t end_seq;     /* first sequence number past max_epochs; -1 when endless */
    int64_t open_seq;    /* next batch to open */
    int64_t claim_seq;   /* oldest open batch with unclaimed samples */
    int64_t consume_seq; /* next batch the consumer takes */
    int32_t *order;      /* [n_items] epoch order of order_epoch, used when opening batches */
    int64_t order_epoch;

    int64_t cur_epoch, cur_batch; /* consumer position */

    pthread_t *threads;
    int n_threads;
};

void mm_loader_opts_default(mm_loader_opts *o)
{
    memset(o, 0, sizeof *o);
    o->batch_size = 1;
    o->height = 224;
    o->width = 224;
    o->channels = 3;
    o->rescale = 1.0f;
    o->mean = 0.0f;
    o->shuffle = 1;
    o->seed = 0;
    o->drop_last = 0;
    o->n_threads = 0;
    o->prefetch = 0;
    o->max_epochs = 0;
    o->start_epoch = 0;
    o->start_batch = 0;
    o->augment = 0;
    mm_augment_params_default(&o->aug);
}

void mm_loader_epoch_order(int32_t *order, int n, uint64_t seed, int64_t epoch, int shuffle)
{
    for (int i = 0; i < n; i++) order[i] = i;
    if (!shuffle) return;
    uint64_t key = mm_data_stream_key(seed, MM_STREAM_ORDER, epoch);
    /* Fisher-Yates from the top; j = floor(u * (i+1)) with a 32-bit u (the bias, below
     * (i+1)/2^32, is irrelevant for shuffling and keeps it one draw per step). */
    for (int i = n - 1; i > 0; i--) {
        uint32_t u = mm_philox_u32(key, (uint64_t)i);
        int j = (int)(((uint64_t)u * (uint64_t)(i + 1)) >> 32);
        int32_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

/* Opens batch `seq` in its slot (mutex held). */
static void open_batch(mm_loader *L, int64_t seq)
{
    slot *s = &L->slots[seq % L->depth];
    MM_ASSERT(s->seq == -1);
    int64_t abs = L->first_abs + seq;
    int64_t epoch = abs / L->nb, batch = abs % L->nb;
    if (L->order_epoch != epoch) {
        mm_loader_epoch_order(L->order, L->n_items, L->o.seed, epoch, L->o.shuffle);
        L->order_epoch = epoch;
    }
    int B = L->o.batch_size;
    /* the batch's number in the epoch's order: this shard's k of each group of shards x k */
    int64_t k = L->o.shard_batches;
    int64_t whole = batch / k * k * L->o.shards + (int64_t)L->o.shard * k + batch % k;
    int64_t first = whole * B;
    int count = (int)((int64_t)L->n_items - first < B ? (int64_t)L->n_items - first : B);
    MM_ASSERT(count >= 1);
    for (int j = 0; j < count; j++) s->items[j] = L->order[first + j];
    s->seq = seq;
    s->epoch = epoch;
    s->batch = batch;
    s->first = first;
    s->count = count;
    s->next = 0;
    s->done = 0;
    s->err = MM_OK;
    s->err_sample = -1;
    s->err_msg[0] = '\0';
}

static void *worker_main(void *arg)
{
    mm_loader *L = arg;
    mm_prep_scratch scratch = {0};
    pthread_mutex_lock(&L->mu);
    for (;;) {
        if (L->stop) break;
        if (L->claim_seq < L->open_seq) {
            slot *s = &L->slots[L->claim_seq % L->depth];
            int j = s->next++;
            if (s->next == s->count) L->claim_seq++;
            pthread_mutex_unlock(&L->mu);

            /* The slot stays ours to write at sample j until the consumer has seen `done` reach
             * `count`, so no lock is needed for the decode. */
            int32_t item = s->items[j];
            int64_t position = s->first + j;
            mm_augment_draw draw;
            if (L->o.augment) mm_augment_sample(&draw, &L->o.aug, L->o.seed, s->epoch, position);
            mm_status st = mm_prep_png(s->images + (int64_t)j * L->sample_floats, L->paths[item],
                                       &L->prep, L->o.augment ? &draw : NULL, &scratch);

            pthread_mutex_lock(&L->mu);
            if (st != MM_OK && (s->err == MM_OK || j < s->err_sample)) {
                s->err = st;
                s->err_sample = j;
                snprintf(s->err_msg, sizeof s->err_msg, "%s", mm_last_error());
            }
            if (++s->done == s->count) pthread_cond_broadcast(&L->ready_cv);
            continue;
        }
        int room = L->open_seq < L->consume_seq + L->depth;
        int more = L->end_seq < 0 || L->open_seq < L->end_seq;
        if (room && more) {
            open_batch(L, L->open_seq++);
            pthread_cond_broadcast(&L->work_cv); /* other idle workers can share this batch */
            continue;
        }
        pthread_cond_wait(&L->work_cv, &L->mu);
    }
    pthread_mutex_unlock(&L->mu);
    mm_prep_scratch_free(&scratch);
    return NULL;
}

static void stop_threads(mm_loader *L)
{
    pthread_mutex_lock(&L->mu);
    L->stop = 1;
    pthread_cond_broadcast(&L->work_cv);
    pthread_mutex_unlock(&L->mu);
    for (int t = 0; t < L->n_threads; t++) pthread_join(L->threads[t], NULL);
    L->n_threads = 0;
}

void mm_loader_free(mm_loader *L)
{
    if (!L) return;
    stop_threads(L);
    pthread_mutex_destroy(&L->mu);
    pthread_cond_destroy(&L->work_cv);
    pthread_cond_destroy(&L->ready_cv);
    for (int i = 0; i < L->n_items; i++) free(L->paths[i]);
    free(L->paths);
    free(L->labels);
    free(L->weights);
    if (L->slots) {
        for (int d = 0; d < L->depth; d++) {
            free(L->slots[d].items);
            free(L->slots[d].images);
        }
    }
    free(L->slots);
    free(L->order);
    free(L->threads);
    free(L);
}

static mm_status check_opts(const mm_loader_item *items, int n_items, const mm_loader_opts *o)
{
    if (n_items < 1) return mm_fail(MM_ERR_ARG, "loader: no items to load; the index is empty");
    if (o->batch_size < 1)
        return mm_fail(MM_ERR_ARG, "loader: batch size %d; must be at least 1", o->batch_size);
    if (o->height < 1 || o->width < 1)
        return mm_fail(MM_ERR_ARG, "loader: image size %dx%d; both must be at least 1", o->height,
                       o->width);
    if (o->channels != 1 && o->channels != 3)
        return mm_fail(MM_ERR_ARG, "loader: %d channels; use 1 or 3", o->channels);
    if (!isfinite(o->rescale) || !isfinite(o->mean))
        return mm_fail(MM_ERR_ARG, "loader: rescale and mean must be finite numbers");
    if (o->n_threads < 0 || o->prefetch < 0 || o->max_epochs < 0)
        return mm_fail(MM_ERR_ARG, "loader: threads, prefetch and epochs must not be negative");
    int shards = o->shards > 1 ? o->shards : 1;
    if (o->shards < 0 || o->shard < 0 || o->shard >= shards || o->shard_batches < 0)
        return mm_fail(MM_ERR_ARG, "loader: shard %d of %d with %d batches each; need 0 <= shard "
                       "< shards and at least 1 batch", o->shard, o->shards, o->shard_batches);
    if (o->augment) {
        const mm_augment_params *a = &o->aug;
        if (!(a->rotation_deg >= 0 && a->rotation_deg <= 180))
            return mm_fail(MM_ERR_ARG, "loader: rotation range %g degrees; use 0 to 180",
                           (double)a->rotation_deg);
        if (!(a->shear >= 0 && a->shear < 1.5f))
            return mm_fail(MM_ERR_ARG, "loader: shear range %g radians; use 0 to 1.5",
                           (double)a->shear);
        if (!(a->zoom_min > 0 && a->zoom_max >= a->zoom_min && isfinite(a->zoom_max)))
            return mm_fail(MM_ERR_ARG, "loader: zoom range %g..%g; need 0 < min <= max",
                           (double)a->zoom_min, (double)a->zoom_max);
        if (!(a->intensity_shift >= 0 && isfinite(a->intensity_shift)))
            return mm_fail(MM_ERR_ARG, "loader: intensity shift %g; must be >= 0",
                           (double)a->intensity_shift);
    }
    for (int i = 0; i < n_items; i++)
        if (!items[i].path || !items[i].path[0])
            return mm_fail(MM_ERR_ARG, "loader: item %d has no file path", i);
    return MM_OK;
}

mm_status mm_loader_create(mm_loader **out, const mm_loader_item *items, int n_items,
                           const mm_loader_opts *o)
{
    *out = NULL;
    MM_TRY(check_opts(items, n_items, o));
    int B = o->batch_size;
    int64_t nb = o->drop_last ? n_items / B : (n_items + B - 1) / B;
    if (nb < 1)
        return mm_fail(MM_ERR_ARG,
                       "loader: %d items make no full batch of %d with drop_last; use a smaller "
                       "batch or keep the last batch",
                       n_items, B);
    int shards = o->shards > 1 ? o->shards : 1, k = o->shard_batches > 1 ? o->shard_batches : 1;
    nb = nb / ((int64_t)shards * k) * k; /* whole groups of shards x k batches only */
    if (nb < 1)
        return mm_fail(MM_ERR_ARG, "loader: %d items make no step of %d shards x %d batches of "
                       "%d; use a smaller batch, or fewer nodes, replicas or micro-batches",
                       n_items, shards, k, B);
    if (o->start_epoch < 0 || o->start_batch < 0 || o->start_batch > nb)
        return mm_fail(MM_ERR_ARG, "loader: start position epoch %lld batch %lld; batch must be "
                       "0..%lld", (long long)o->start_epoch, (long long)o->start_batch,
                       (long long)nb);

    mm_loader *L = mm_xcalloc(1, sizeof *L);
    L->o = *o;
    L->o.shards = shards; /* 0 counts as 1 */
    L->o.shard_batches = k;
    L->n_items = n_items;
    L->nb = nb;
    L->paths = mm_xcalloc((size_t)n_items, sizeof *L->paths);
    L->labels = mm_xmalloc((size_t)n_items * sizeof *L->labels);
    L->weights = mm_xmalloc((size_t)n_items * sizeof *L->weights);
    for (int i = 0; i < n_items; i++) {
        L->paths[i] = mm_xstrdup(items[i].path);
        L->labels[i] = items[i].label;
        L->weights[i] = items[i].weight;
    }
    L->prep.height = o->height;
    L->prep.width = o->width;
    L->prep.channels = o->channels;
    L->prep.rescale = o->rescale;
    L->prep.mean = o->mean;
    L->prep.interp = o->aug.interp;
    L->sample_floats = (int64_t)o->height * o->width * o->channels;

    int threads = o->n_threads;
    if (threads == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cpus > 0 ? (int)cpus : 1;
    }
    L->depth = o->prefetch ? o->prefetch : (2 * threads + B - 1) / B;
    if (L->depth < 2 && !o->prefetch) L->depth = 2;
    L->slots = mm_xcalloc((size_t)L->depth, sizeof *L->slots);
    for (int d = 0; d < L->depth; d++) {
        L->slots[d].seq = -1;
        L->slots[d].items = mm_xmalloc((size_t)B * sizeof(int32_t));
        L->slots[d].images = mm_xmalloc((size_t)B * (size_t)L->sample_floats * sizeof(float));
    }
    L->order = mm_xmalloc((size_t)n_items * sizeof *L->order);
    L->order_epoch = -1;
    L->first_abs = o->start_epoch * nb + o->start_batch;
    L->end_seq = o->max_epochs ? (int64_t)o->max_epochs * nb - L->first_abs : -1;
    if (L->end_seq < -1) L->end_seq = 0;
    L->cur_epoch = o->start_epoch;
    L->cur_batch = o->start_batch;

    pthread_mutex_init(&L->mu, NULL);
    pthread_cond_init(&L->work_cv, NULL);
    pthread_cond_init(&L->ready_cv, NULL);
    L->threads = mm_xcalloc((size_t)threads, sizeof *L->threads);
    for (int t = 0; t < threads; t++) {
        int rc = pthread_create(&L->threads[t], NULL, worker_main, L);
        if (rc != 0) {
            mm_loader_free(L); /* joins the threads started so far */
            return mm_fail(MM_ERR_NOMEM, "loader: cannot start decoding thread %d of %d (%s); use "
                           "fewer threads", t + 1, threads, strerror(rc));
        }
        L->n_threads = t + 1;
    }
    *out = L;
    return MM_OK;
}

mm_status mm_loader_next(mm_loader *L, const mm_batch *out, int *count)
{
    *count = 0;
    if (L->o.max_epochs && L->cur_epoch >= L->o.max_epochs) return MM_OK;
    if (L->cur_batch == L->nb) {
        L->cur_epoch++;
        L->cur_batch = 0;
        return MM_OK;
    }
    int64_t seq = L->consume_seq;
    MM_ASSERT(L->end_seq < 0 || seq < L->end_seq);
    slot *s = &L->slots[seq % L->depth];
    pthread_mutex_lock(&L->mu);
    while (!(s->seq == seq && s->done == s->count)) pthread_cond_wait(&L->ready_cv, &L->mu);
    pthread_mutex_unlock(&L->mu);
    MM_ASSERT(s->epoch == L->cur_epoch && s->batch == L->cur_batch);

    /* The batch is complete and no worker touches the slot until it is freed below. */
    mm_status st = s->err;
    char msg[sizeof s->err_msg];
    if (st != MM_OK) {
        snprintf(msg, sizeof msg, "%s", s->err_msg);
    } else {
        int n = s->count;
        memcpy(out->images, s->images, (size_t)n * (size_t)L->sample_floats * sizeof(float));
        for (int j = 0; j < n; j++) {
            int32_t item = s->items[j];
            out->labels[j] = L->labels[item];
            if (out->weights) out->weights[j] = L->weights[item];
            if (out->indices) out->indices[j] = item;
        }
        *count = n;
    }
    pthread_mutex_lock(&L->mu);
    s->seq = -1;
    L->consume_seq++;
    pthread_cond_broadcast(&L->work_cv);
    pthread_mutex_unlock(&L->mu);
    L->cur_batch++;
    if (st != MM_OK) return mm_fail(st, "%s", msg);
    return MM_OK;
}

void mm_loader_position(const mm_loader *L, int64_t *epoch, int64_t *batch)
{
    *epoch = L->cur_epoch;
    *batch = L->cur_batch;
}

int64_t mm_loader_batches_per_epoch(const mm_loader *L) { return L->nb; }
