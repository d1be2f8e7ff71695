/* Classification metrics: AUC (Mann-Whitney U with average ranks), ROC curve, bootstrap
 * confidence interval, threshold metrics, multi-class accuracy and confusion matrix. See
 * metrics.h for the definitions. */
#include "metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/philox.h"

/* ---- score list ---- */

void mm_scores_init(mm_scores *s) { memset(s, 0, sizeof *s); }

void mm_scores_push(mm_scores *s, double score, int label)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 256;
        s->score = mm_xrealloc(s->score, (size_t)s->cap * sizeof *s->score);
        s->label = mm_xrealloc(s->label, (size_t)s->cap * sizeof *s->label);
    }
    s->score[s->n] = score;
    s->label[s->n] = label;
    s->n++;
}

void mm_scores_clear(mm_scores *s) { s->n = 0; }

void mm_scores_free(mm_scores *s)
{
    free(s->score);
    free(s->label);
    memset(s, 0, sizeof *s);
}

/* ---- binary ---- */

mm_status mm_check_binary(int64_t *n_pos, int64_t *n_neg, const double *scores,
                          const int *labels, int64_t n)
{
    int64_t p = 0;
    for (int64_t i = 0; i < n; i++) {
        MM_ASSERT(labels[i] == 0 || labels[i] == 1);
        if (isnan(scores[i]))
            return mm_fail(MM_ERR_NUMERIC, "score of item %lld is NaN; the model diverged",
                           (long long)i);
        p += labels[i];
    }
    *n_pos = p;
    *n_neg = n - p;
    if (p == 0 || p == n)
        return mm_fail(MM_ERR_ARG,
                       "AUC needs both classes: got %lld positive and %lld negative images",
                       (long long)p, (long long)(n - p));
    return MM_OK;
}

typedef struct scored {
    double score;
    int label;
    int64_t index; /* position in the caller's arrays */
} scored;

/* Ascending by score, then by original index so the order is fully defined. */
static int cmp_scored(const void *a, const void *b)
{
    const scored *x = a, *y = b;
    if (x->score < y->score) return -1;
    if (x->score > y->score) return 1;
    return (x->index > y->index) - (x->index < y->index);
}

static scored *sort_scores(const double *scores, const int *labels, int64_t n)
{
    scored *s = mm_xmalloc((size_t)n * sizeof *s);
    for (int64_t i = 0; i < n; i++) {
        s[i].score = scores[i];
        s[i].label = labels[i];
        s[i].index = i;
    }
    qsort(s, (size_t)n, sizeof *s, cmp_scored);
    return s;
}

/* AUC over items sorted ascending, item k appearing weight[k] times (NULL: once each).
 * A group of g tied items occupying ranks below+1 .. below+g all get the average rank
 * below + (g+1)/2; R+ sums the positives' ranks and U = R+ - P(P+1)/2 counts the
 * (positive, negative) pairs ordered correctly, ties counting one half. Every quantity is an
 * integer or half-integer well below 2^53, so the sums are exact. NaN when a class is absent. */
static double auc_sorted(const scored *s, const int64_t *weight, int64_t n)
{
    double below = 0, rank_pos = 0, P = 0, N = 0;
    for (int64_t i = 0; i < n;) {
        double gp = 0, gn = 0;
        int64_t j = i;
        for (; j < n && s[j].score == s[i].score; j++) {
            double w = weight ? (double)weight[j] : 1.0;
            if (s[j].label) gp += w;
            else gn += w;
        }
        double g = gp + gn;
        rank_pos += gp * (below + (g + 1) / 2);
        below += g;
        P += gp;
        N += gn;
        i = j;
    }
    if (P == 0 || N == 0) return NAN;
    return (rank_pos - P * (P + 1) / 2) / (P * N);
}

mm_status mm_auc(double *auc, const double *scores, const int *labels, int64_t n)
{
    int64_t p, q;
    MM_TRY(mm_check_binary(&p, &q, scores, labels, n));
    scored *s = sort_scores(scores, labels, n);
    *auc = auc_sorted(s, NULL, n);
    free(s);
    return MM_OK;
}

mm_status mm_roc_curve(mm_roc_point **points, int64_t *n_points, const double *scores,
                       const int *labels, int64_t n)
{
    int64_t P, N;
    MM_TRY(mm_check_binary(&P, &N, scores, labels, n));
    scored *s = sort_scores(scores, labels, n);
    mm_roc_point *r = mm_xmalloc((size_t)(n + 1) * sizeof *r);
    int64_t m = 0, tp = 0, fp = 0;
    r[m++] = (mm_roc_point){0.0, 0.0, INFINITY};
    /* Lower the threshold one distinct score at a time, from the highest. */
    for (int64_t i = n - 1; i >= 0;) {
        int64_t j = i;
        for (; j >= 0 && s[j].score == s[i].score; j--) {
            if (s[j].label) tp++;
            else fp++;
        }
        r[m++] = (mm_roc_point){(double)fp / (double)N, (double)tp / (double)P, s[i].score};
        i = j;
    }
    free(s);
    *points = r;
    *n_points = m;
    return MM_OK;
}

double mm_roc_area(const mm_roc_point *p, int64_t n_points)
{
    double area = 0;
    for (int64_t i = 1; i < n_points; i++)
        area += (p[i].fpr - p[i - 1].fpr) * (p[i].tpr + p[i - 1].tpr) / 2;
    return area;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Quantile q of sorted values v[0..m) with linear interpolation at position q*(m-1). */
static double quantile_sorted(const double *v, int m, double q)
{
    double pos = q * (double)(m - 1);
    int lo = (int)floor(pos);
    if (lo >= m - 1) return v[m - 1];
    double frac = pos - lo;
    return v[lo] + frac * (v[lo + 1] - v[lo]);
}

/* The 64-bit word `i` of Philox stream `seed` (two 32-bit words per half block). */
static uint64_t philox_u64(uint64_t seed, uint64_t i)
{
    mm_philox_out o = mm_philox4x32(seed, i >> 1);
    int h = (int)(i & 1) * 2;
    return (uint64_t)o.v[h] | ((uint64_t)o.v[h + 1] << 32);
}

mm_status mm_auc_bootstrap(mm_auc_ci *ci, const double *scores, const int *labels, int64_t n,
                           int resamples, double level, uint64_t seed)
{
    if (resamples < 1)
        return mm_fail(MM_ERR_ARG, "bootstrap: %d resamples; need at least 1", resamples);
    if (!(level > 0 && level < 1))
        return mm_fail(MM_ERR_ARG, "bootstrap: confidence level %g is not in (0, 1)", level);
    int64_t P, N;
    MM_TRY(mm_check_binary(&P, &N, scores, labels, n));
    memset(ci, 0, sizeof *ci);
    ci->level = level;
    ci->resamples = resamples;
    ci->seed = seed;

    scored *s = sort_scores(scores, labels, n);
    ci->auc = auc_sorted(s, NULL, n);
    /* pos[i]: where the caller's item i sits in sorted order, so a draw names an image by its
     * position in the caller's arrays and the result does not depend on how ties sort. */
    int64_t *pos = mm_xmalloc((size_t)n * sizeof *pos);
    for (int64_t k = 0; k < n; k++) pos[s[k].index] = k;
    int64_t *count = mm_xmalloc((size_t)n * sizeof *count);
    double *aucs = mm_xmalloc((size_t)resamples * sizeof *aucs);

    for (int b = 0; b < resamples; b++) {
        memset(count, 0, (size_t)n * sizeof *count);
        for (int64_t j = 0; j < n; j++) {
            uint64_t w = philox_u64(seed, (uint64_t)b * (uint64_t)n + (uint64_t)j);
            /* Multiply-high maps a uniform 64-bit word to [0, n); its bias is below n / 2^64. */
            int64_t d = (int64_t)(((unsigned __int128)w * (uint64_t)n) >> 64);
            count[pos[d]]++;
        }
        double a = auc_sorted(s, count, n);
        if (isnan(a)) ci->skipped++;
        else aucs[ci->used++] = a;
    }
    free(count);
    free(pos);
    free(s);
    if (ci->used == 0) {
        free(aucs);
        return mm_fail(MM_ERR_ARG,
                       "bootstrap: all %d resamples of %lld images had a single class; "
                       "too few images for a confidence interval",
                       resamples, (long long)n);
    }
    qsort(aucs, (size_t)ci->used, sizeof *aucs, cmp_double);
    ci->lo = quantile_sorted(aucs, ci->used, (1 - level) / 2);
    ci->hi = quantile_sorted(aucs, ci->used, 1 - (1 - level) / 2);
    free(aucs);
    return MM_OK;
}

void mm_threshold_metrics_compute(mm_threshold_metrics *m, const double *scores,
                                  const int *labels, int64_t n, double threshold)
{
    memset(m, 0, sizeof *m);
    m->threshold = threshold;
    for (int64_t i = 0; i < n; i++) {
        MM_ASSERT(labels[i] == 0 || labels[i] == 1);
        int called = scores[i] >= threshold;
        if (labels[i]) {
            if (called) m->tp++;
            else m->fn++;
        } else {
            if (called) m->fp++;
            else m->tn++;
        }
    }
    m->sensitivity = m->tp + m->fn ? (double)m->tp / (double)(m->tp + m->fn) : NAN;
    m->specificity = m->tn + m->fp ? (double)m->tn / (double)(m->tn + m->fp) : NAN;
    m->accuracy = n ? (double)(m->tp + m->tn) / (double)n : NAN;
}

/* ---- multi-class ---- */

int mm_argmax(const float *row, int k)
{
    MM_ASSERT(k >= 1);
    int best = 0;
    for (int c = 1; c < k; c++)
        if (row[c] > row[best] || (isnan(row[best]) && !isnan(row[c]))) best = c;
    return best;
}

void mm_confusion_add(int64_t *counts, const float *scores, const int *labels, int64_t n, int k)
{
    for (int64_t i = 0; i < n; i++) {
        MM_ASSERT(labels[i] >= 0 && labels[i] < k);
        counts[(int64_t)labels[i] * k + mm_argmax(scores + i * k, k)]++;
    }
}

double mm_confusion_accuracy(const int64_t *counts, int k)
{
    int64_t right = 0, total = 0;
    for (int t = 0; t < k; t++)
        for (int p = 0; p < k; p++) {
            total += counts[t * k + p];
            if (t == p) right += counts[t * k + p];
        }
    return total ? (double)right / (double)total : NAN;
}

double mm_accuracy_multiclass(const float *scores, const int *labels, int64_t n, int k)
{
    int64_t right = 0;
    for (int64_t i = 0; i < n; i++) {
        MM_ASSERT(labels[i] >= 0 && labels[i] < k);
        right += mm_argmax(scores + i * k, k) == labels[i];
    }
    return n ? (double)right / (double)n : NAN;
}

void mm_confusion_fprint(FILE *f, const int64_t *counts, int k, const char *const *names)
{
    const char *corner = "true \\ predicted";
    int w = 8, c0 = (int)strlen(corner) + 2;
    for (int c = 0; names && c < k; c++) {
        if ((int)strlen(names[c]) > w) w = (int)strlen(names[c]);
        if ((int)strlen(names[c]) + 2 > c0) c0 = (int)strlen(names[c]) + 2;
    }
    char num[32];
    fprintf(f, "%-*s", c0, corner);
    for (int p = 0; p < k; p++) {
        if (names) fprintf(f, " %*.*s", w, w, names[p]);
        else fprintf(f, " %*d", w, p);
    }
    fprintf(f, " %*s\n", w, "recall");
    for (int t = 0; t < k; t++) {
        if (names) fprintf(f, "%-*s", c0, names[t]);
        else fprintf(f, "%-*d", c0, t);
        int64_t row = 0;
        for (int p = 0; p < k; p++) {
            fprintf(f, " %*lld", w, (long long)counts[t * k + p]);
            row += counts[t * k + p];
        }
        if (row) snprintf(num, sizeof num, "%.4f", (double)counts[t * k + t] / (double)row);
        else snprintf(num, sizeof num, "-");
        fprintf(f, " %*s\n", w, num);
    }
    double acc = mm_confusion_accuracy(counts, k);
    if (isnan(acc)) fprintf(f, "accuracy -\n");
    else fprintf(f, "accuracy %.4f\n", acc);
}
