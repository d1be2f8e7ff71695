/* What the CPU kernels share: GEMM on the OpenMP threads, and column sums of row-major matrices
 * (the bias gradients of convolution and dense layers).
 *
 * Why GEMM runs on the OpenMP threads. The kernels alternate OpenMP loops (im2col, col2im, batch
 * norm, pooling) with GEMMs, and Debian's OpenBLAS has its own pthread pool. Two pools on the
 * same cores fight: libgomp's idle workers spin for milliseconds after each parallel region
 * (300000 PAUSE iterations by default) while OpenBLAS's threads want those cores, and OpenBLAS's
 * threads spin after each GEMM while our loops run. On 2 cores that made convolutions 2-4 times
 * slower, and the only setting that fixes it (OMP_WAIT_POLICY=passive) is read from the
 * environment before any code of ours runs. So OpenBLAS is loaded single-threaded (blas.c) and
 * every GEMM is split over the OpenMP threads by blocks of C: one pool, no contention, under any
 * wait policy.
 * It also lets a convolution thread build its im2col rows and multiply them while they are still
 * in its own cache. */
#include <omp.h>
#include <stdlib.h>

#include "../../runtime/error.h"
#include "cpu_internal.h"

/* Thread t's block of [0, count), its bounds multiples of 16 (a cache line of floats) where the
 * count allows. */
static void block16(int64_t count, int t, int nt, int64_t *lo, int64_t *hi)
{
    int64_t units = (count + 15) / 16, ulo = units * t / nt, uhi = units * (t + 1) / nt;
    *lo = ulo * 16 < count ? ulo * 16 : count;
    *hi = uhi * 16 < count ? uhi * 16 : count;
}

void mm_cpu_gemm_block(int count, int t, int nt, int *lo, int *hi)
{
    int64_t l, h;
    block16(count, t, nt, &l, &h);
    *lo = (int)l, *hi = (int)h;
}

void mm_cpu_omp_span(int64_t count, int64_t *lo, int64_t *hi)
{
    block16(count, omp_get_thread_num(), omp_get_num_threads(), lo, hi);
}

void mm_cpu_sgemm_part(int t, int nt, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k,
                       float alpha, const float *a, int lda, const float *b, int ldb, float beta,
                       float *c, int ldc)
{
    int lo, hi;
    if (m >= n) {
        /* rows [lo, hi) of C: rows of op(A) */
        mm_cpu_gemm_block(m, t, nt, &lo, &hi);
        if (hi <= lo) return;
        const float *ap = ta == CblasNoTrans ? a + (int64_t)lo * lda : a + lo;
        mm_blas_sgemm(ta, tb, hi - lo, n, k, alpha, ap, lda, b, ldb, beta, c + (int64_t)lo * ldc,
                      ldc);
    } else {
        /* columns [lo, hi) of C: columns of op(B) */
        mm_cpu_gemm_block(n, t, nt, &lo, &hi);
        if (hi <= lo) return;
        const float *bp = tb == CblasNoTrans ? b + lo : b + (int64_t)lo * ldb;
        mm_blas_sgemm(ta, tb, m, hi - lo, k, alpha, a, lda, bp, ldb, beta, c + lo, ldc);
    }
}

void mm_cpu_sgemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, float alpha,
                  const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    /* Small products are not worth waking the threads for. */
    int serial = (double)m * n * k < 32768.0;
#pragma omp parallel if (!serial)
    mm_cpu_sgemm_part(omp_get_thread_num(), omp_get_num_threads(), ta, tb, m, n, k, alpha, a, lda,
                      b, ldb, beta, c, ldc);
}

void mm_cpu_column_sum_add(float *out, const float *a, int64_t rows, int cols)
{
    int max_threads = omp_get_max_threads();
    double *part = mm_xcalloc((size_t)max_threads * (size_t)cols, sizeof(double));
    int used = 1;
#pragma omp parallel
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        int64_t lo, hi;
#pragma omp single
        used = nt;
        mm_cpu_thread_block(rows, t, nt, &lo, &hi);
        double *acc = part + (size_t)t * cols;
        for (int64_t i = lo; i < hi; i++) {
            const float *row = a + i * cols;
            for (int j = 0; j < cols; j++) acc[j] += row[j];
        }
    }
    for (int j = 0; j < cols; j++) {
        double s = 0;
        for (int t = 0; t < used; t++) s += part[(size_t)t * cols + j];
        out[j] += (float)s;
    }
    free(part);
}
