/* Evaluation-mode inference over a list of images: per-image class probabilities, optionally
 * averaged over the four flips of test-time augmentation (none, horizontal, vertical, both), as
 * the paper's predictions are; each batch is copied to the device once and flipped there. Used
 * by validation during training and by `mammo predict`. */
#ifndef MM_INFER_H
#define MM_INFER_H

#include <stdbool.h>

#include "../nets/nets.h"
#include "loader.h"

typedef struct mm_infer_opts {
    float rescale, mean; /* the model's preprocessing (stored in its checkpoint) */
    bool tta;            /* average the four flips */
    int threads;         /* decoding threads, 0 = all */
} mm_infer_opts;

/* probs: [n, classes]. The model must be built for evaluation; its batch is the step size (a short
 * last batch is padded and the padding ignored). */
mm_status mm_infer(float *probs, const mm_model *m, mm_session *s, const mm_loader_item *items,
                      int n, const mm_infer_opts *o);

#endif
