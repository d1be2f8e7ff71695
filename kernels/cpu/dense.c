/* CPU dense (fully connected) layer, y = x W^T + b with W stored [out, in] as PyTorch does; all
 * three passes are single GEMMs. */
#include <string.h>

#include "cpu_internal.h"
#include "cpu_kernels.h"

void mm_cpu_dense_forward(float *y, const float *x, const float *w, const float *b, int n, int k,
                          int o)
{
    if (b)
        for (int i = 0; i < n; i++) memcpy(y + (int64_t)i * o, b, sizeof(float) * (size_t)o);
    mm_cpu_sgemm(CblasNoTrans, CblasTrans, n, o, k, 1.0f, x, k, w, k, b ? 1.0f : 0.0f, y, o);
}

/* dx[n,k] = dy[n,o] W[o,k] */
void mm_cpu_dense_backward_data(float *dx, const float *dy, const float *w, int n, int k, int o)
{
    mm_cpu_sgemm(CblasNoTrans, CblasNoTrans, n, k, o, 1.0f, dy, o, w, k, 0.0f, dx, k);
}

/* dW[o,k] += dy[n,o]^T x[n,k];  db[o] += sum_n dy[n,o] */
void mm_cpu_dense_backward_weight(float *dw, float *db, const float *dy, const float *x, int n,
                                  int k, int o)
{
    mm_cpu_sgemm(CblasTrans, CblasNoTrans, o, k, n, 1.0f, dy, o, x, k, 1.0f, dw, k);
    if (db) mm_cpu_column_sum_add(db, dy, n, o);
}
