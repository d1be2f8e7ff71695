/* Class-balanced sample weights within a batch: see class_weights.h for the formula. */
#include "class_weights.h"

#include <stdlib.h>

#include "../runtime/error.h"

void mm_class_balanced_weights(float *w, const int32_t *labels, int n, int n_classes)
{
    MM_ASSERT(n >= 0 && n_classes > 0);
    int *count = mm_xcalloc((size_t)n_classes, sizeof *count);
    for (int i = 0; i < n; i++) {
        MM_ASSERT(labels[i] >= 0 && labels[i] < n_classes);
        count[labels[i]]++;
    }
    /* 1 / (count / n) in double, rounded once to float, as the reference's float32 array
     * divided by a float64 mean. */
    for (int i = 0; i < n; i++) w[i] = (float)((double)n / (double)count[labels[i]]);
    free(count);
}
