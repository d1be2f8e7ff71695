/* Helpers shared by the CPU op tests: test buffers and central finite differences.
 *
 * A backward pass is checked against the scalar loss L = sum(g * f(...)) with a fixed random g:
 * dL/dv_i ~ (L(v_i + h) - L(v_i - h)) / (2h), the loss summed in double. The step actually taken
 * is measured after rounding to float, so h need not be representable. */
#ifndef MM_GRAD_CHECK_H
#define MM_GRAD_CHECK_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/error.h"
#include "tests/harness.h"

static inline float *tbuf(int64_t n)
{
    return mm_xmalloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
}

static inline float *trand(int64_t n, uint64_t seed, float lo, float hi)
{
    float *x = tbuf(n);
    mm_test_fill_uniform(x, n, seed, lo, hi);
    return x;
}

static inline float *tcopy(const float *x, int64_t n)
{
    float *y = tbuf(n);
    memcpy(y, x, sizeof(float) * (size_t)n);
    return y;
}

static inline void tfill(float *x, int64_t n, float v)
{
    for (int64_t i = 0; i < n; i++) x[i] = v;
}

static inline double tdot(const float *a, const float *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

static inline double tmaxabs(const float *a, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++)
        if (fabs(a[i]) > m) m = fabs(a[i]);
    return m;
}

/* The scalar loss as a function of the current contents of the buffers a test perturbs. */
typedef double (*fd_loss_fn)(void *ctx);

/* Numerical gradient of loss(ctx) with respect to v[i] for every i (v is perturbed and
 * restored); written to num. */
static inline void fd_gradient(float *num, float *v, int64_t n, fd_loss_fn loss, void *ctx,
                               float h)
{
    for (int64_t i = 0; i < n; i++) {
        float v0 = v[i], vp = v0 + h, vm = v0 - h;
        v[i] = vp;
        double lp = loss(ctx);
        v[i] = vm;
        double lm = loss(ctx);
        v[i] = v0;
        num[i] = (float)((lp - lm) / ((double)vp - (double)vm));
    }
}

/* Compares an analytic gradient with the numerical one; the tolerance scales with the largest
 * numerical component: |a - num| <= tol * (max|num| + |num|). */
#define CHECK_FD(what, analytic, v, n, loss, ctx, h, tol)                                      \
    do {                                                                                        \
        float *num_ = tbuf(n);                                                                  \
        fd_gradient(num_, v, n, loss, ctx, h);                                                  \
        double scale_ = tmaxabs(num_, n);                                                       \
        CHECK_MSG(scale_ > 0, "%s: numerical gradient is all zero", what);                      \
        CHECK_ARRAYS(what, analytic, num_, n, (tol) * scale_, tol);                             \
        free(num_);                                                                             \
    } while (0)

#endif
