/* OpenBLAS, loaded at run time so that mammo picks the kernels it runs (blas.c says why).
 *
 * Every GEMM of the CPU kernels goes through mm_blas_sgemm; nothing links OpenBLAS directly (a
 * library linked at start-up has chosen its kernels before main runs). */
#ifndef MM_CPU_BLAS_H
#define MM_CPU_BLAS_H

#include <stddef.h>

#include <cblas.h>

/* Loads OpenBLAS once per process (thread-safe), single-threaded: the CPU kernels split GEMMs
 * over the OpenMP threads themselves (cpu_common.c). 0 when loaded; otherwise -1 with one line in
 * `why` saying what to install. Every later call returns the first call's result. */
int mm_blas_load(char *why, size_t cap);

/* cblas_sgemm of the loaded library, row-major. Loads it first where nobody has (a library that
 * cannot be loaded then ends the process with that one line: the CPU backend's creation reports
 * it as an error before any kernel runs). */
void mm_blas_sgemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, float alpha,
                   const float *a, int lda, const float *b, int ldb, float beta, float *c,
                   int ldc);

/* OpenBLAS's own thread count (benchmarks compare its threaded SGEMM with ours). */
void mm_blas_set_threads(int n);

/* The library and its kernels, e.g. "OpenBLAS 0.3.21, SkylakeX kernels (OpenBLAS took this CPU
 * for Prescott)"; "" before mm_blas_load. */
const char *mm_blas_describe(void);

/* The kernels OpenBLAS should run on a CPU it took for `core` (openblas_get_corename's name):
 * NULL to keep its choice, else the OPENBLAS_CORETYPE to load it with. `avx2_fma` and `avx512`
 * say what the CPU and the operating system support (AVX-512 F, CD, BW, DQ and VL). */
const char *mm_blas_better_core(const char *core, int avx2_fma, int avx512);

#endif
