/* Helpers shared by the CPU kernels (not part of the kernel API). */
#ifndef MM_CPU_INTERNAL_H
#define MM_CPU_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "../dims.h"
#include "blas.h"

/* Bytes of im2col matrix per convolution chunk (conv2d.c; default 32 MB). Tests lower it to run
 * many chunk boundaries on small shapes; set it before asking for the workspace size. */
extern size_t mm_cpu_conv_ws_budget;

/* Output pixels (n*oh*ow) from which a stride-1 data gradient runs as the forward convolution of
 * dy over the turned filter (conv2d.c; default 256). Tests set it to 0 or above their shapes to
 * run either way. */
extern int64_t mm_cpu_conv_turn_min_pixels;

/* Both thresholds from the environment where set: MM_CONV_WINOGRAD_MIN (winograd.c) and
 * MM_CONV_TURN_MIN, in output pixels (a huge number: never). The CPU backend reads them. */
void mm_cpu_conv_read_env(void);

/* 3x3 stride-1 convolutions as Winograd F(2x2, 3x3) (winograd.c), all three passes: from this
 * many output pixels (n*oh*ow; default 1024) with at least 16 input and 16 output channels.
 * Tests set it to 0. */
extern int64_t mm_cpu_winograd_min_pixels;
int mm_cpu_winograd_applies(const mm_conv_dims *d);
size_t mm_cpu_winograd_workspace(const mm_conv_dims *d);
void mm_cpu_winograd_forward(float *y, const float *x, const float *w, const float *b,
                             const mm_conv_dims *d, void *ws);
void mm_cpu_winograd_backward_filter(float *dw, const float *dy, const float *x,
                                     const mm_conv_dims *d, void *ws);

/* C = alpha op(A) op(B) + beta C (row-major, as cblas_sgemm), computed by all OpenMP threads,
 * each calling a single-threaded OpenBLAS GEMM (blas.h) on its block of C (see cpu_common.c for
 * why): C is cut into blocks of rows (or of columns when it has fewer rows than columns). */
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

/* The calling OpenMP thread's block of `count` flat elements, its bounds multiples of 16 (a cache
 * line of floats) so threads never write the same line. */
void mm_cpu_omp_span(int64_t count, int64_t *lo, int64_t *hi);

/* Below this many elements an element-wise kernel runs on the calling thread alone: waking the
 * other threads costs more than it saves (a tiny training epoch otherwise makes ~100k futex calls). */
#define MM_CPU_PARALLEL_MIN 32768

/* Runs `call` on every OpenMP thread with int64_t lo_, hi_ set to its span of [0, n) (above),
 * or on the calling thread alone with the whole range when the work (in elements touched) is
 * below MM_CPU_PARALLEL_MIN. The kernels call one cloned range function (below) this way. */
#define MM_CPU_SPANS(n, work, call)                                                               \
    do {                                                                                          \
        const int64_t spans_n_ = (n), spans_work_ = (work);                                       \
        _Pragma("omp parallel if (spans_work_ >= MM_CPU_PARALLEL_MIN)")                           \
        {                                                                                         \
            int64_t lo_, hi_;                                                                     \
            mm_cpu_omp_span(spans_n_, &lo_, &hi_);                                                \
            if (hi_ > lo_) call;                                                                  \
        }                                                                                         \
    } while (0)

/* The hot loops (element-wise, batch norm, pooling, optimizers) are compiled three times, for
 * x86-64 with AVX-512, with AVX2 and for the baseline, and the loader picks the best clone the CPU
 * runs (GCC's target_clones): a portable binary still gets wide vectors. Every clone computes
 * bitwise the same results: lanes run over independent elements or channels (no reassociated
 * sums) and CMake builds with -ffp-contract=off (no FMA contraction in one clone only). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(MM_NO_CLONES)
#define MM_CPU_VECTOR \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MM_CPU_VECTOR
#endif

#endif
