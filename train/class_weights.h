/* Class-balanced sample weights within a batch (the paper: "we also adjust the sample weights within
 * a batch to keep the classes balanced"; the reference repo's --auto-batch-balance).
 *
 * The reference gives every sample the weight 1 / (fraction of the batch that has its class):
 *
 *     w_i = n / count(y_i)          n = samples in the batch, count(c) = samples of class c
 *
 * so every class present in the batch has the same total weight n, and a class absent from the
 * batch contributes nothing. Keras 2.0 then reduces the weighted loss with a plain mean over the
 * batch, loss = (1/n) sum_i w_i L_i = sum_{c present} mean_{i in c} L_i: the sum over the classes
 * present of each class's mean loss. A trainer that wants the reference's numbers uses that same
 * reduction (divide by n, not by sum w_i). Example: labels 0,0,0,1 give 4/3, 4/3, 4/3, 4. A batch
 * with a single class gets all weights 1. */
#ifndef MM_CLASS_WEIGHTS_H
#define MM_CLASS_WEIGHTS_H

#include <stdint.h>

/* w[n]: per-sample weights for labels[n] in [0, n_classes) (a label out of range is a broken
 * invariant: the trainer checks its index when it reads it). */
void mm_class_balanced_weights(float *w, const int32_t *labels, int n, int n_classes);

#endif
