/* CPU batch normalisation over the m = n*h*w rows of an NHWC tensor with c channels.
 *
 * Training statistics are computed in two passes (the mean first, then the mean of squared
 * deviations): with m = 2*576*448 rows a single-pass E[x^2] - E[x]^2 in float would lose most
 * of its digits. Every sum over rows is taken in float over blocks of 16 rows (vector lanes run
 * over the channels), and the block sums are added in double. Each thread sums a fixed block of
 * rows and the partial sums are added in thread order, so results repeat bitwise for a given
 * thread count.
 *
 * Backward, with xhat = (x - mean) * invstd:
 *   dbeta  = sum_rows dy,  dgamma = sum_rows dy * xhat,
 *   dx     = gamma * invstd * (dy - dbeta/m - xhat * dgamma/m). */
#include <math.h>
#include <omp.h>
#include <stdlib.h>

#include "../../runtime/error.h"
#include "cpu_internal.h"
#include "cpu_kernels.h"

enum { SUM_X, SUM_SQDEV, SUM_GRAD };

/* Bit i % 8 of byte i / 8: element i of the ReLU's output was > 0 (mm_cpu_relu_mask). */
static inline int relu_bit(const uint8_t *bits, int64_t i) { return (bits[i >> 3] >> (i & 7)) & 1; }

/* The gradient the backward uses at element j of a row (flat index i0 + j): dy itself
 * (GATE_NONE), or, with the backward of the ReLU after the batch norm folded in, dy where that
 * ReLU's output relu_out > 0 (GATE_Y) or its bit is set (GATE_BITS), else 0. The row helpers
 * below are inlined with a constant gate, so each gate is its own vectorised loop. */
enum { GATE_NONE, GATE_Y, GATE_BITS };

static inline __attribute__((always_inline)) float gated(const float *gr, const float *rr,
                                                         const uint8_t *bits, int64_t i0, int j,
                                                         int gate)
{
    if (gate == GATE_Y) return rr[j] > 0.0f ? gr[j] : 0.0f;
    if (gate == GATE_BITS) return relu_bit(bits, i0 + j) ? gr[j] : 0.0f;
    return gr[j];
}

/* s1 += g, s2 += g * (x - mean) over one row's cn channels. */
static inline __attribute__((always_inline)) void grad_sums_row(
    float *s1, float *s2, const float *xr, const float *mu, const float *gr, const float *rr,
    const uint8_t *bits, int64_t i0, int cn, int gate)
{
#pragma omp simd
    for (int j = 0; j < cn; j++) {
        float g = gated(gr, rr, bits, i0, j, gate);
        s1[j] += g;
        s2[j] += g * (xr[j] - mu[j]);
    }
}

/* dx = a * (g - mb - xhat * mg), xhat = (x - mean) * is, over one row. */
static inline __attribute__((always_inline)) void dx_row(
    float *dr, const float *xr, const float *gr, const float *rr, const uint8_t *bits, int64_t i0,
    const float *mean, const float *a, const float *mb, const float *mg, const float *is, int c,
    int gate)
{
#pragma omp simd
    for (int j = 0; j < c; j++) {
        float xhat = (xr[j] - mean[j]) * is[j];
        dr[j] = a[j] * (gated(gr, rr, bits, i0, j, gate) - mb[j] - xhat * mg[j]);
    }
}

static int gate_of(const float *relu_out, const uint8_t *relu_bits)
{
    return relu_out ? GATE_Y : relu_bits ? GATE_BITS : GATE_NONE;
}

/* One thread's sums over rows [lo, hi), per channel j (a2 only for SUM_GRAD):
 *   SUM_X:     a1 += x
 *   SUM_SQDEV: a1 += (x - mean)^2
 *   SUM_GRAD:  a1 += g, a2 += g * (x - mean), with g = dy, or dy where relu_out > 0 (the ReLU
 *              backward folded in) when relu_out is given, or dy where its bit in relu_bits is
 *              set (relu_out > 0 kept as bits, runtime/relu_mask.c). */
MM_CPU_VECTOR static void sum_rows(double *a1, double *a2, int mode, const float *x,
                                   const float *dy, const float *relu_out,
                                   const uint8_t *relu_bits, const float *mean, int64_t lo,
                                   int64_t hi, int c)
{
    enum { ROWS = 16, CH = 256 };
    float s1[CH], s2[CH];
    for (int64_t i0 = lo; i0 < hi; i0 += ROWS) {
        int64_t i1 = i0 + ROWS < hi ? i0 + ROWS : hi;
        for (int j0 = 0; j0 < c; j0 += CH) {
            const int cn = c - j0 < CH ? c - j0 : CH;
            const float *mu = mean ? mean + j0 : NULL;
            for (int j = 0; j < cn; j++) s1[j] = s2[j] = 0.0f;
            for (int64_t i = i0; i < i1; i++) {
                const float *xr = x + i * c + j0;
                if (mode == SUM_X) {
#pragma omp simd
                    for (int j = 0; j < cn; j++) s1[j] += xr[j];
                } else if (mode == SUM_SQDEV) {
#pragma omp simd
                    for (int j = 0; j < cn; j++) s1[j] += (xr[j] - mu[j]) * (xr[j] - mu[j]);
                } else {
                    const int64_t i0 = i * c + j0;
                    const float *gr = dy + i0, *rr = relu_out ? relu_out + i0 : NULL;
                    int gate = gate_of(relu_out, relu_bits);
                    if (gate == GATE_Y)
                        grad_sums_row(s1, s2, xr, mu, gr, rr, relu_bits, i0, cn, GATE_Y);
                    else if (gate == GATE_BITS)
                        grad_sums_row(s1, s2, xr, mu, gr, rr, relu_bits, i0, cn, GATE_BITS);
                    else
                        grad_sums_row(s1, s2, xr, mu, gr, rr, relu_bits, i0, cn, GATE_NONE);
                }
            }
            for (int j = 0; j < cn; j++) a1[j0 + j] += s1[j];
            if (mode == SUM_GRAD)
                for (int j = 0; j < cn; j++) a2[j0 + j] += s2[j];
        }
    }
}

/* out1 (and out2) = the sums of sum_rows over all m rows, on the OpenMP threads. */
static void channel_sums(double *out1, double *out2, const float *x, const float *dy,
                         const float *relu_out, const uint8_t *relu_bits, const float *mean,
                         int64_t m, int c, int mode)
{
    int max_threads = omp_get_max_threads(), per = mode == SUM_GRAD ? 2 : 1;
    double *part = mm_xcalloc((size_t)max_threads * (size_t)c * per, sizeof(double));
    int used = 1;
#pragma omp parallel if (m * c >= MM_CPU_PARALLEL_MIN)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        int64_t lo, hi;
#pragma omp single
        used = nt;
        mm_cpu_thread_block(m, t, nt, &lo, &hi);
        double *a1 = part + (size_t)t * c * per;
        sum_rows(a1, a1 + c, mode, x, dy, relu_out, relu_bits, mean, lo, hi, c);
    }
    for (int j = 0; j < c; j++) {
        double s1 = 0, s2 = 0;
        for (int t = 0; t < used; t++) {
            s1 += part[(size_t)t * c * per + j];
            if (per == 2) s2 += part[(size_t)t * c * per + c + j];
        }
        out1[j] = s1;
        if (out2) out2[j] = s2;
    }
    free(part);
}

/* One row: y = (x - shift) * scale + beta, + r when add, then max(., 0) when relu. Inlined with
 * constant flags, so each combination is its own vectorised loop; r is read before y is
 * written, so y may alias x or r. */
static inline __attribute__((always_inline)) void normalize_row(
    float *yr, const float *xr, const float *rr, const float *shift, const float *scale,
    const float *beta, int c, bool add, bool relu)
{
#pragma omp simd
    for (int j = 0; j < c; j++) {
        float t = (xr[j] - shift[j]) * scale[j] + beta[j];
        if (add) t = t + rr[j];
        if (relu) t = t > 0.0f ? t : 0.0f;
        yr[j] = t;
    }
}

MM_CPU_VECTOR static void normalize_range(float *y, const float *x, const float *r,
                                          const float *shift, const float *scale,
                                          const float *beta, bool relu, int64_t lo, int64_t hi,
                                          int c)
{
    for (int64_t i = lo; i < hi; i++) {
        const float *xr = x + i * c, *rr = r ? r + i * c : NULL;
        float *yr = y + i * c;
        if (r && relu) normalize_row(yr, xr, rr, shift, scale, beta, c, true, true);
        else if (r) normalize_row(yr, xr, rr, shift, scale, beta, c, true, false);
        else if (relu) normalize_row(yr, xr, rr, shift, scale, beta, c, false, true);
        else normalize_row(yr, xr, rr, shift, scale, beta, c, false, false);
    }
}

/* y = (x - shift[j]) * scale[j] + beta[j] (+ r), max(., 0) when relu, row by row; y may alias x
 * or r. */
static void normalize_rows(float *y, const float *x, const float *r, const float *shift,
                           const float *scale, const float *beta, bool relu, int64_t m, int c)
{
    MM_CPU_SPANS(m, m * c, normalize_range(y, x, r, shift, scale, beta, relu, lo_, hi_, c));
}

/* dx = a * (g - mb - xhat * mg), xhat = (x - mean) * is, g as in sum_rows. */
MM_CPU_VECTOR static void dx_rows(float *dx, const float *x, const float *dy, const float *relu_out,
                                  const uint8_t *relu_bits, const float *mean, const float *a,
                                  const float *mb, const float *mg, const float *is, int64_t lo,
                                  int64_t hi, int c)
{
    int gate = gate_of(relu_out, relu_bits);
    for (int64_t i = lo; i < hi; i++) {
        const int64_t i0 = i * c;
        const float *xr = x + i0, *gr = dy + i0, *rr = relu_out ? relu_out + i0 : NULL;
        float *dr = dx + i0;
        if (gate == GATE_Y)
            dx_row(dr, xr, gr, rr, relu_bits, i0, mean, a, mb, mg, is, c, GATE_Y);
        else if (gate == GATE_BITS)
            dx_row(dr, xr, gr, rr, relu_bits, i0, mean, a, mb, mg, is, c, GATE_BITS);
        else
            dx_row(dr, xr, gr, rr, relu_bits, i0, mean, a, mb, mg, is, c, GATE_NONE);
    }
}

void mm_cpu_batchnorm_forward_train(float *y, float *save_mean, float *save_invstd,
                                    float *running_mean, float *running_var, const float *x,
                                    const float *gamma, const float *beta, int64_t m, int c,
                                    float eps, float momentum, const float *residual, bool relu)
{
    MM_ASSERT(m > 0 && c > 0);
    double *mean = mm_xmalloc(sizeof(double) * 2 * (size_t)c), *sq = mean + c;
    float *scale = mm_xmalloc(sizeof(float) * (size_t)c);
    channel_sums(mean, NULL, x, NULL, NULL, NULL, NULL, m, c, SUM_X);
    for (int j = 0; j < c; j++) save_mean[j] = (float)(mean[j] / (double)m);
    channel_sums(sq, NULL, x, NULL, NULL, NULL, save_mean, m, c, SUM_SQDEV);
    for (int j = 0; j < c; j++) {
        double var = sq[j] / (double)m;
        /* PyTorch refuses m == 1 in training; the unbiased variance is then undefined and we
         * feed the biased one (0) to the running average instead. */
        double unbiased = m > 1 ? sq[j] / (double)(m - 1) : var;
        float invstd = (float)(1.0 / sqrt(var + (double)eps));
        save_invstd[j] = invstd;
        scale[j] = gamma[j] * invstd;
        running_mean[j] = (1.0f - momentum) * running_mean[j] + momentum * save_mean[j];
        running_var[j] = (1.0f - momentum) * running_var[j] + momentum * (float)unbiased;
    }
    normalize_rows(y, x, residual, save_mean, scale, beta, relu, m, c);
    free(scale);
    free(mean);
}

void mm_cpu_batchnorm_forward_eval(float *y, const float *x, const float *gamma,
                                   const float *beta, const float *running_mean,
                                   const float *running_var, int64_t m, int c, float eps,
                                   const float *residual, bool relu)
{
    float *scale = mm_xmalloc(sizeof(float) * (size_t)c);
    for (int j = 0; j < c; j++)
        scale[j] = gamma[j] * (float)(1.0 / sqrt((double)running_var[j] + (double)eps));
    normalize_rows(y, x, residual, running_mean, scale, beta, relu, m, c);
    free(scale);
}

void mm_cpu_batchnorm_apply(float *y, const float *x, const float *gamma, const float *beta,
                            const float *save_mean, const float *save_invstd, int64_t m, int c,
                            const float *residual, bool relu)
{
    MM_ASSERT(m > 0 && c > 0);
    float *scale = mm_xmalloc(sizeof(float) * (size_t)c);
    for (int j = 0; j < c; j++) scale[j] = gamma[j] * save_invstd[j]; /* as the forward */
    normalize_rows(y, x, residual, save_mean, scale, beta, relu, m, c);
    free(scale);
}

void mm_cpu_batchnorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy,
                               const float *relu_out, const uint8_t *relu_bits, const float *x,
                               const float *gamma, const float *save_mean,
                               const float *save_invstd, int64_t m, int c)
{
    double *sdy = mm_xmalloc(sizeof(double) * 2 * (size_t)c), *sdyx = sdy + c;
    channel_sums(sdy, sdyx, x, dy, relu_out, relu_bits, save_mean, m, c, SUM_GRAD);
    for (int j = 0; j < c; j++) {
        /* sum dy * xhat = invstd * sum dy * (x - mean) */
        double sg = sdyx[j] * save_invstd[j];
        if (dgamma) dgamma[j] += (float)sg;
        if (dbeta) dbeta[j] += (float)sdy[j];
        sdyx[j] = sg;
    }
    if (dx) {
        float *coef = mm_xmalloc(sizeof(float) * 4 * (size_t)c);
        float *a = coef, *mb = a + c, *mg = mb + c, *is = mg + c;
        for (int j = 0; j < c; j++) {
            a[j] = gamma[j] * save_invstd[j];
            mb[j] = (float)(sdy[j] / (double)m);
            mg[j] = (float)(sdyx[j] / (double)m);
            is[j] = save_invstd[j];
        }
        MM_CPU_SPANS(m, m * c,
                     dx_rows(dx, x, dy, relu_out, relu_bits, save_mean, a, mb, mg, is, lo_, hi_, c));
        free(coef);
    }
    free(sdy);
}
