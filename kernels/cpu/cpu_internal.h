/* Helpers shared by the CPU kernels (not part of the kernel API). */
#ifndef MM_CPU_INTERNAL_H
#define MM_CPU_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <cblas.h>

/* Bytes of im2col matrix per convolution chunk (conv2d.c; default 32 MB). Tests lower it to run
 * many chunk boundaries on small shapes; set it before asking for the workspace size. */
extern size_t mm_cpu_conv_ws_budget;

/* All CPU GEMMs run on the OpenMP threads, each thread calling a single-threaded OpenBLAS GEMM on
 * its block of C (see cpu_common.c for why). mm_cpu_blas_init() makes OpenBLAS single-threaded;
 * every kernel that calls OpenBLAS calls it first (cheap after the first time). */
void mm_cpu_blas_init(void);

/* C = alpha op(A) op(B) + beta C (row-major, as cblas_sgemm), computed by all OpenMP threads:
 * C is cut into blocks of rows (or of columns when it has fewer rows than columns). */
void mm_cpu_sgemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, float alpha,
                  const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);

/* The part of that product owned by thread t of nt; called inside a parallel region, by every
 * thread, to compute the whole product without a nested region. */
void mm_cpu_sgemm_part(int t, int nt, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k,
                       float alpha, const float *a, int lda, const float *b, int ldb, float beta,
                       float *c, int ldc);

/* out[j] += sum_i a[i, j] for a row-major [rows, cols] matrix, summed in double. Each thread sums
 * a fixed block of rows and the partial sums are added in thread order, so the result is the same
 * on every run with the same number of threads (resumed training must be bitwise repeatable). */
void mm_cpu_column_sum_add(float *out /* [cols] accumulated */, const float *a /* [rows,cols] */,
                           int64_t rows, int cols);

/* The rows (or columns) of C that mm_cpu_sgemm_part gives thread t of nt: blocks whose bounds
 * are multiples of 16 where the count allows. */
void mm_cpu_gemm_block(int count, int t, int nt, int *lo, int *hi);

/* The half-open block [*lo, *hi) of `count` items that thread `t` of `nt` handles. */
static inline void mm_cpu_thread_block(int64_t count, int t, int nt, int64_t *lo, int64_t *hi)
{
    *lo = count * t / nt;
    *hi = count * (t + 1) / nt;
}

#endif
