/* CPU softmax and the sample-weighted softmax cross-entropy loss (the class-balanced loss of the
 * paper). Each row is computed with its maximum subtracted (log-sum-exp), so large logits neither
 * overflow nor lose the loss to rounding:
 *   log softmax(x)_j = (x_j - max) - log sum_i exp(x_i - max). */
#include <math.h>

#include "../../runtime/error.h"
#include "cpu_kernels.h"

/* probs row = softmax(x row); returns log sum exp(x - max) and the max through *mx. */
static double softmax_row(float *y, const float *x, int c, float *mx)
{
    float m = x[0];
    for (int j = 1; j < c; j++)
        if (x[j] > m) m = x[j];
    double sum = 0;
    for (int j = 0; j < c; j++) sum += exp((double)x[j] - m);
    double lse = log(sum);
    for (int j = 0; j < c; j++) y[j] = (float)exp((double)x[j] - m - lse);
    *mx = m;
    return lse;
}

void mm_cpu_softmax(float *y, const float *x, int n, int c)
{
#pragma omp parallel for schedule(static) if (n > 64)
    for (int i = 0; i < n; i++) {
        float mx;
        softmax_row(y + (int64_t)i * c, x + (int64_t)i * c, c, &mx);
    }
}

static double weight_sum(const float *weights, int n)
{
    if (!weights) return n;
    double s = 0;
    for (int i = 0; i < n; i++) s += weights[i];
    return s;
}

void mm_cpu_softmax_xent_forward(float *loss, float *probs, const float *logits,
                                 const int32_t *labels, const float *weights, int n, int c)
{
    double total = 0, wsum = weight_sum(weights, n);
    for (int i = 0; i < n; i++) {
        MM_ASSERT(labels[i] >= 0 && labels[i] < c);
        const float *x = logits + (int64_t)i * c;
        float mx;
        double lse = softmax_row(probs + (int64_t)i * c, x, c, &mx);
        double nll = lse - ((double)x[labels[i]] - mx);
        total += (weights ? weights[i] : 1.0) * nll;
    }
    *loss = wsum != 0 ? (float)(total / wsum) : 0.0f;
}

void mm_cpu_softmax_xent_backward(float *dlogits, const float *probs, const int32_t *labels,
                                  const float *weights, float dloss, int n, int c)
{
    double wsum = weight_sum(weights, n);
    for (int i = 0; i < n; i++) {
        MM_ASSERT(labels[i] >= 0 && labels[i] < c);
        double f = wsum != 0 ? dloss * (weights ? weights[i] : 1.0) / wsum : 0.0;
        const float *p = probs + (int64_t)i * c;
        float *g = dlogits + (int64_t)i * c;
        for (int j = 0; j < c; j++) g[j] = (float)(f * ((double)p[j] - (j == labels[i])));
    }
}
