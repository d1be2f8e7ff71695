/* Column sums of row-major matrices: the bias gradients of convolution and dense layers. */
#include <omp.h>
#include <stdlib.h>

#include "../../runtime/error.h"
#include "cpu_internal.h"

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
