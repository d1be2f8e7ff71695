/* Helpers shared by the CPU kernels (not part of the kernel API). */
#ifndef MM_CPU_INTERNAL_H
#define MM_CPU_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* Bytes of im2col matrix per convolution chunk (conv2d.c; default 64 MB). Tests lower it to run
 * many chunk boundaries on small shapes; set it before asking for the workspace size. */
extern size_t mm_cpu_conv_ws_budget;

/* out[j] += sum_i a[i, j] for a row-major [rows, cols] matrix, summed in double. Each thread sums
 * a fixed block of rows and the partial sums are added in thread order, so the result is the same
 * on every run with the same number of threads (resumed training must be bitwise repeatable). */
void mm_cpu_column_sum_add(float *out /* [cols] accumulated */, const float *a /* [rows,cols] */,
                           int64_t rows, int cols);

/* The half-open block [*lo, *hi) of `count` items that thread `t` of `nt` handles. */
static inline void mm_cpu_thread_block(int64_t count, int t, int nt, int64_t *lo, int64_t *hi)
{
    *lo = count * t / nt;
    *hi = count * (t + 1) / nt;
}

#endif
