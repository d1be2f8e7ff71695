/* CPU flips of NHWC tensors (augmentation and flip test-time augmentation). */
#include <string.h>

#include "../../runtime/error.h"
#include "cpu_kernels.h"

void mm_cpu_flip(float *y, const float *x, int n, int h, int w, int c, int axis)
{
    MM_ASSERT(axis == 1 || axis == 2);
    int64_t rows = (int64_t)n * h;
    size_t pix = sizeof(float) * (size_t)c;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int img = (int)(r / h), row = (int)(r % h);
        const float *src = x + r * w * c;
        if (axis == 1) {
            memcpy(y + ((int64_t)img * h + (h - 1 - row)) * w * c, src, pix * (size_t)w);
        } else {
            float *dst = y + r * w * c;
            for (int col = 0; col < w; col++)
                memcpy(dst + (int64_t)(w - 1 - col) * c, src + (int64_t)col * c, pix);
        }
    }
}
