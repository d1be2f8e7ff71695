/* The training data loader: background threads decode PNGs, augment them and fill a ring of
 * prefetched batches, which the consumer takes in a deterministic order.
 *
 * Usage (the trainer reads its index and builds the items; the loader parses no index file):
 *
 *     mm_loader_opts o;
 *     mm_loader_opts_default(&o);
 *     o.batch_size = 2; o.height = 1152; o.width = 896; o.channels = 3;
 *     o.rescale = 255.0f / 65535.0f; o.mean = pixel_mean; o.augment = 1; o.seed = seed;
 *     o.start_epoch = epoch; o.start_batch = batch;        (resume; 0, 0 for a fresh run)
 *     mm_loader *L;
 *     MM_TRY(mm_loader_create(&L, items, n_items, &o));
 *     mm_batch b = {images, labels, weights, indices};     (caller's buffers; the last two optional)
 *     for (;;) {
 *         int n;
 *         mm_status s = mm_loader_next(L, &b, &n);
 *         if (s != MM_OK) { mm_loader_free(L); return s; }  (message names the file)
 *         if (n == 0) break;                                (end of the epoch)
 *         ... train on n samples ...
 *     }
 *     mm_loader_free(L);
 *
 * Order and reproducibility. Epoch e visits the items in the order mm_loader_epoch_order(e) (a
 * Philox-driven Fisher-Yates shuffle of 0..n-1 keyed by (seed, e), or 0..n-1 without shuffle) and
 * cuts it into batches of batch_size; batch b holds positions [b*B, b*B + B) of that order. The
 * sample at position p of epoch e is augmented with mm_augment_sample(seed, e, p). Every pixel of
 * every batch is therefore a pure function of (items, options, seed, epoch, position): the number
 * of threads, the prefetch depth and the scheduling change nothing, bit for bit. A loader created
 * with start_epoch = e, start_batch = b returns exactly the batches an uninterrupted loader returns
 * from batch b of epoch e on.
 *
 * Per epoch there are batches_per_epoch = drop_last ? n/B : ceil(n/B) batches; without drop_last
 * the last one holds the n - (nb-1)*B remaining samples. A shard (opts.shards, shard_batches)
 * has floor(batches_per_epoch / (shards * shard_batches)) * shard_batches of them.
 *
 * Pixel values: see image_prep.h (resizing when a PNG is not height x width: area averaging when
 * shrinking, linear when growing; rescale; augmentation; scalar mean; 1 or 3 channels).
 *
 * Errors. A sample whose file is missing, unreadable, corrupt or not 8/16-bit grayscale makes
 * mm_loader_next() return that tier-1 status with a message naming the file (when several samples
 * of a batch fail, the one earliest in the batch is reported). That batch is skipped: the loader
 * stays usable and the next call returns the following batch. Worker threads never abort on bad
 * input and never block the consumer forever. mm_loader_free() stops and joins the threads at any
 * point, mid-epoch included, and releases everything. */
#ifndef MM_LOADER_H
#define MM_LOADER_H

#include <stdint.h>

#include "../runtime/error.h"
#include "augment.h"

typedef struct mm_loader_item {
    const char *path; /* PNG file (8- or 16-bit grayscale); the loader copies the string */
    int32_t label;    /* passed through to mm_batch.labels */
    float weight;     /* passed through to mm_batch.weights (use 1 when unused) */
} mm_loader_item;

typedef struct mm_loader_opts {
    int batch_size;       /* B >= 1 */
    int height, width;    /* output size H x W; other PNG sizes are resized */
    int channels;         /* C: 1, or 3 (grayscale replicated) */
    float rescale;        /* multiplies the stored values (255/65535 for the paper's 16-bit PNGs) */
    float mean;           /* scalar subtracted after rescaling (pixel_mean.h) */
    int shuffle;          /* 1: a new seeded order every epoch; 0: item order */
    uint64_t seed;        /* order and augmentation seed */
    int drop_last;        /* 1: drop the short last batch of an epoch */
    int n_threads;        /* decoding threads; 0 = the number of online CPUs */
    int prefetch;         /* batches in the ring; 0 = max(2, ceil(2 * threads / B)) */
    int max_epochs;       /* stop after this epoch count (epochs 0 .. max_epochs-1); 0 = endless */
    int64_t start_epoch;  /* position of the first batch returned: resume point */
    int64_t start_batch;  /* 0 .. batches_per_epoch (= at that epoch's end-of-epoch signal) */
    int augment;          /* 1: augment every sample with `aug` (training); 0: none */
    mm_augment_params aug;
    /* A node's share of the batches of data-parallel steps: the epoch's batches run in groups
     * of shards x shard_batches (a step of every node's replicas and micro-batches), and this
     * loader yields, of each whole group, the shard_batches from shard x shard_batches on; a
     * group cut short by the epoch's end is left out. Positions (hence augmentation) are those
     * of the whole epoch, so the shards of all nodes together are the batches one loader
     * yields. 0 counts as 1: shards 1 with shard_batches k yields whole groups of k. */
    int shards, shard, shard_batches;
} mm_loader_opts;

/* Defaults: batch 1, 224 x 224 x 3, rescale 1, mean 0, shuffle on, seed 0, drop_last off,
 * threads 0 (all CPUs), prefetch 0 (auto), endless, start (0, 0), augmentation off with the
 * paper's parameters (mm_augment_params_default) ready in `aug`. */
void mm_loader_opts_default(mm_loader_opts *o);

typedef struct mm_loader mm_loader;

/* Validates the options (tier-1 MM_ERR_ARG naming the option), copies the items and starts the
 * threads; decoding begins at once. n_items >= 1, and at least one batch per epoch. */
mm_status mm_loader_create(mm_loader **out, const mm_loader_item *items, int n_items,
                           const mm_loader_opts *o);

/* Stops and joins the threads (mid-epoch is fine) and frees everything. NULL is a no-op. */
void mm_loader_free(mm_loader *L);

/* Caller-owned outputs of one batch. */
typedef struct mm_batch {
    float *images;    /* [B, H, W, C] float32, NHWC */
    int32_t *labels;  /* [B] */
    float *weights;   /* [B] item weights, or NULL */
    int32_t *indices; /* [B] index of each sample in the items array, or NULL */
} mm_batch;

/* Fills `out` with the next batch and sets *count to its number of samples (B, or fewer for the
 * last batch of an epoch without drop_last). After the last batch of an epoch one call returns
 * MM_OK with *count = 0: the end-of-epoch signal; the call after it starts the next epoch. Once
 * max_epochs epochs are done every call returns MM_OK with *count = 0. On a bad file: the
 * file's tier-1 status (message names it), *count = 0, and that batch is skipped. Blocks until the
 * batch is ready. One consumer thread only. */
mm_status mm_loader_next(mm_loader *L, const mm_batch *out, int *count);

/* Position of what the next mm_loader_next() call returns: (epoch, batch); batch ==
 * batches_per_epoch means the end-of-epoch signal is next. Store it in a checkpoint and pass it as
 * start_epoch / start_batch to resume exactly there. */
void mm_loader_position(const mm_loader *L, int64_t *epoch, int64_t *batch);

int64_t mm_loader_batches_per_epoch(const mm_loader *L);

/* The visiting order of one epoch: order[n] = a permutation of 0..n-1 (identity without shuffle). */
void mm_loader_epoch_order(int32_t *order, int n, uint64_t seed, int64_t epoch, int shuffle);

#endif
