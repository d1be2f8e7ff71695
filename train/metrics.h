/* Classification metrics: what the trainer reports after every validation pass and what
 * `mammo eval` reports on a predictions file.
 *
 * Binary (whole image: malignant = 1, not malignant = 0), one score per image, higher = more
 * likely malignant:
 *   - ROC AUC, exact with ties: the Mann-Whitney U statistic with average ranks,
 *       AUC = (R+ - P(P+1)/2) / (P N)
 *     where R+ is the sum of the (mid)ranks of the P positive scores among all n = P + N scores.
 *     This equals the probability that a random positive scores above a random negative, ties
 *     counting one half, and equals the trapezoidal area under the ROC curve below. O(n log n).
 *   - the ROC curve: one point per distinct score, from (0,0) to (1,1);
 *   - a bootstrap confidence interval of the AUC (images resampled with replacement);
 *   - sensitivity, specificity and accuracy at a threshold (score >= threshold -> positive).
 * Multi-class (the 5-class patch classifier): accuracy and a confusion matrix over argmax.
 *
 * Labels of the binary functions must be 0 or 1 (anything else is a broken invariant: callers
 * drop unknown labels (-1) first). A NaN score is a tier-1 MM_ERR_NUMERIC (a diverged net). */
#ifndef MM_METRICS_H
#define MM_METRICS_H

#include <stdint.h>
#include <stdio.h>

#include "../runtime/error.h"

/* ---- growable (score, label) list: collect a validation pass batch by batch ---- */

typedef struct mm_scores {
    double *score; /* [n] */
    int *label;    /* [n] */
    int64_t n, cap;
} mm_scores;

void mm_scores_init(mm_scores *s);
void mm_scores_push(mm_scores *s, double score, int label);
void mm_scores_clear(mm_scores *s); /* n = 0, keeps the memory */
void mm_scores_free(mm_scores *s);

/* ---- binary: AUC, ROC, bootstrap ---- */

/* Counts the positives and negatives; MM_ERR_ARG "AUC needs both classes" when either is zero,
 * MM_ERR_NUMERIC when a score is NaN. Labels must be 0/1 (asserted). */
mm_status mm_check_binary(int64_t *n_pos, int64_t *n_neg, const double *scores /* [n] */,
                          const int *labels /* [n] */, int64_t n);

/* Exact ROC AUC (Mann-Whitney U with average ranks). Errors as mm_check_binary. */
mm_status mm_auc(double *auc, const double *scores /* [n] */, const int *labels /* [n] */,
                 int64_t n);

typedef struct mm_roc_point {
    double fpr, tpr;  /* false / true positive rate when score >= threshold is called positive */
    double threshold; /* +INFINITY for the first point (0,0): nothing called positive */
} mm_roc_point;

/* The ROC curve: point 0 is (0,0) at threshold +inf; then one point per distinct score in
 * decreasing order (threshold = that score), so the last point is (1,1) at the lowest score.
 * Tied scores move the curve diagonally. fpr and tpr never decrease. *points is allocated with
 * mm_xmalloc (free() it); *n_points = number of distinct scores + 1. Errors as mm_check_binary. */
mm_status mm_roc_curve(mm_roc_point **points, int64_t *n_points, const double *scores /* [n] */,
                       const int *labels /* [n] */, int64_t n);

/* Trapezoidal area under a ROC curve (equals mm_auc for the curve of mm_roc_curve). */
double mm_roc_area(const mm_roc_point *points /* [n_points] */, int64_t n_points);

#define MM_BOOTSTRAP_DEFAULT 2000

typedef struct mm_auc_ci {
    double auc;     /* the point estimate on all the data */
    double lo, hi;  /* percentile interval of the resampled AUCs */
    double level;   /* e.g. 0.95 */
    int resamples;  /* resamples drawn */
    int used;       /* resamples that had both classes: the interval is over these */
    int skipped;    /* resamples with a single class (AUC undefined): skipped, counted here */
    uint64_t seed;
} mm_auc_ci;

/* Bootstrap confidence interval of the AUC. Each of `resamples` resamples draws n images with
 * replacement (Philox stream `seed`: draw j of resample b uses the 64-bit word at index b*n + j,
 * mapped to [0, n) by a 64x64 multiply-high), and computes the exact AUC of the resample with its
 * multiplicities (average ranks again). Resamples that drew a single class are skipped and
 * counted in ->skipped. The interval is the percentile interval: the (1-level)/2 and
 * 1-(1-level)/2 quantiles of the used AUCs, linearly interpolated between order statistics
 * (position q*(used-1), numpy's default). Cost O(n log n + resamples * n).
 * Errors: as mm_check_binary; MM_ERR_ARG when resamples < 1, level not in (0,1), or every
 * resample had a single class (n too small). */
mm_status mm_auc_bootstrap(mm_auc_ci *ci, const double *scores /* [n] */,
                           const int *labels /* [n] */, int64_t n, int resamples, double level,
                           uint64_t seed);

/* ---- binary: at a threshold ---- */

typedef struct mm_threshold_metrics {
    double threshold;       /* score >= threshold is called positive */
    int64_t tp, fp, tn, fn;
    double sensitivity;     /* tp / (tp + fn); NaN when there are no positives */
    double specificity;     /* tn / (tn + fp); NaN when there are no negatives */
    double accuracy;        /* (tp + tn) / n; NaN when n == 0 */
} mm_threshold_metrics;

/* Counts and rates at `threshold`. One class only is fine here (the other rate is NaN). NaN
 * scores count as negative calls (a NaN never passes the threshold). Labels must be 0/1. */
void mm_threshold_metrics_compute(mm_threshold_metrics *m, const double *scores /* [n] */,
                                  const int *labels /* [n] */, int64_t n, double threshold);

/* ---- multi-class ---- */

/* Index of the largest of row[0..k) (the first one on ties; NaN never wins unless all are). */
int mm_argmax(const float *row /* [k] */, int k);

/* counts[t*k + p] += number of rows whose true class is t and whose argmax is p. Accumulates so
 * a validation pass can add batch by batch; zero counts first. Labels in [0,k) (asserted). */
void mm_confusion_add(int64_t *counts /* [k,k] */, const float *scores /* [n,k] */,
                      const int *labels /* [n] */, int64_t n, int k);

/* trace / total; NaN when the matrix is empty. */
double mm_confusion_accuracy(const int64_t *counts /* [k,k] */, int k);

/* Fraction of rows whose argmax equals the label; NaN when n == 0. */
double mm_accuracy_multiclass(const float *scores /* [n,k] */, const int *labels /* [n] */,
                              int64_t n, int k);

/* Prints the matrix (rows = true class, columns = predicted) with per-class recall and the
 * overall accuracy. names: k class names, or NULL for 0..k-1. */
void mm_confusion_fprint(FILE *f, const int64_t *counts /* [k,k] */, int k,
                         const char *const *names /* [k] or NULL */);

#endif
