/* CPU batch normalisation over the m = n*h*w rows of an NHWC tensor with c channels.
 *
 * Training statistics are computed in two passes (the mean first, then the mean of squared
 * deviations), each summed in double: with m = 2*576*448 rows a single-pass E[x^2] - E[x]^2 in
 * float would lose most of its digits. Each thread sums a fixed block of rows and the partial
 * sums are added in thread order, so results repeat bitwise for a given thread count.
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

/* One pass over the rows, per channel j, in double:
 *   mode 0: out1 = sum x;  mode 1: out1 = sum (x - mean)^2;
 *   mode 2: out1 = sum dy, out2 = sum dy * (x - mean). */
static void channel_sums(double *out1, double *out2, const float *x, const float *dy,
                         const float *relu_out, const double *mean, int64_t m, int c, int mode)
{
    int max_threads = omp_get_max_threads(), per = mode == 2 ? 2 : 1;
    double *part = mm_xcalloc((size_t)max_threads * (size_t)c * per, sizeof(double));
    int used = 1;
#pragma omp parallel
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        int64_t lo, hi;
#pragma omp single
        used = nt;
        mm_cpu_thread_block(m, t, nt, &lo, &hi);
        double *a1 = part + (size_t)t * c * per, *a2 = a1 + c;
        for (int64_t i = lo; i < hi; i++) {
            const float *xr = x + i * c;
            if (mode == 0) {
                for (int j = 0; j < c; j++) a1[j] += xr[j];
            } else if (mode == 1) {
                for (int j = 0; j < c; j++) {
                    double v = xr[j] - mean[j];
                    a1[j] += v * v;
                }
            } else {
                const float *gr = dy + i * c, *rr = relu_out ? relu_out + i * c : NULL;
                for (int j = 0; j < c; j++) {
                    float g = rr && !(rr[j] > 0.0f) ? 0.0f : gr[j];
                    a1[j] += g;
                    a2[j] += (double)g * (xr[j] - mean[j]);
                }
            }
        }
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

/* y = (x - shift[j]) * scale[j] + beta[j], row by row; y may alias x. */
static void normalize_rows(float *y, const float *x, const float *shift, const float *scale,
                           const float *beta, int64_t m, int c)
{
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < m; i++) {
        const float *xr = x + i * c;
        float *yr = y + i * c;
        for (int j = 0; j < c; j++) yr[j] = (xr[j] - shift[j]) * scale[j] + beta[j];
    }
}

void mm_cpu_batchnorm_forward_train(float *y, float *save_mean, float *save_invstd,
                                    float *running_mean, float *running_var, const float *x,
                                    const float *gamma, const float *beta, int64_t m, int c,
                                    float eps, float momentum)
{
    MM_ASSERT(m > 0 && c > 0);
    double *mean = mm_xmalloc(sizeof(double) * 2 * (size_t)c), *sq = mean + c;
    float *scale = mm_xmalloc(sizeof(float) * (size_t)c);
    channel_sums(mean, NULL, x, NULL, NULL, NULL, m, c, 0);
    for (int j = 0; j < c; j++) mean[j] /= (double)m;
    channel_sums(sq, NULL, x, NULL, NULL, mean, m, c, 1);
    for (int j = 0; j < c; j++) {
        double var = sq[j] / (double)m;
        /* PyTorch refuses m == 1 in training; the unbiased variance is then undefined and we
         * feed the biased one (0) to the running average instead. */
        double unbiased = m > 1 ? sq[j] / (double)(m - 1) : var;
        float invstd = (float)(1.0 / sqrt(var + (double)eps));
        save_mean[j] = (float)mean[j];
        save_invstd[j] = invstd;
        scale[j] = gamma[j] * invstd;
        running_mean[j] = (1.0f - momentum) * running_mean[j] + momentum * (float)mean[j];
        running_var[j] = (1.0f - momentum) * running_var[j] + momentum * (float)unbiased;
    }
    normalize_rows(y, x, save_mean, scale, beta, m, c);
    free(scale);
    free(mean);
}

void mm_cpu_batchnorm_forward_eval(float *y, const float *x, const float *gamma,
                                   const float *beta, const float *running_mean,
                                   const float *running_var, int64_t m, int c, float eps)
{
    float *scale = mm_xmalloc(sizeof(float) * (size_t)c);
    for (int j = 0; j < c; j++)
        scale[j] = gamma[j] * (float)(1.0 / sqrt((double)running_var[j] + (double)eps));
    normalize_rows(y, x, running_mean, scale, beta, m, c);
    free(scale);
}

void mm_cpu_batchnorm_apply(float *y, const float *x, const float *gamma, const float *beta,
                            const float *save_mean, const float *save_invstd, int64_t m, int c,
                            bool relu)
{
    MM_ASSERT(m > 0 && c > 0);
    float *scale = mm_xmalloc(sizeof(float) * (size_t)c);
    for (int j = 0; j < c; j++) scale[j] = gamma[j] * save_invstd[j]; /* as the forward */
    normalize_rows(y, x, save_mean, scale, beta, m, c);
    free(scale);
    if (relu) mm_cpu_relu_forward(y, y, m * c);
}

void mm_cpu_batchnorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy,
                               const float *relu_out, const float *x, const float *gamma,
                               const float *save_mean,
                               const float *save_invstd, int64_t m, int c)
{
    double *mean = mm_xmalloc(sizeof(double) * 3 * (size_t)c), *sdy = mean + c, *sdyx = sdy + c;
    for (int j = 0; j < c; j++) mean[j] = save_mean[j];
    channel_sums(sdy, sdyx, x, dy, relu_out, mean, m, c, 2);
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
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < m; i++) {
            const float *xr = x + i * c, *gr = dy + i * c, *rr = relu_out ? relu_out + i * c : NULL;
            float *dr = dx + i * c;
            for (int j = 0; j < c; j++) {
                float xhat = (xr[j] - save_mean[j]) * is[j];
                float g = rr && !(rr[j] > 0.0f) ? 0.0f : gr[j];
                dr[j] = a[j] * (g - mb[j] - xhat * mg[j]);
            }
        }
        free(coef);
    }
    free(mean);
}
