/* Tensor views and dtypes.
 *
 * A tensor is a non-owning view: dtype, shape, contiguous row-major strides (in elements) and a
 * pointer into memory owned by an arena, a flat parameter buffer or the caller. Activations are
 * NHWC on every backend; convolution weights are OHWI; user-facing npy files are NCHW. */
#ifndef MM_TENSOR_H
#define MM_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MM_MAX_DIMS 6

typedef enum mm_dtype {
    MM_F32 = 0,
    MM_U8,
    MM_U16,
    MM_I32,
    MM_BF16, /* storage type of mixed-precision activations on CUDA */
    MM_DTYPE_COUNT
} mm_dtype;

typedef enum mm_device_kind {
    MM_DEVICE_CPU = 0,
    MM_DEVICE_META,
    MM_DEVICE_CUDA,
} mm_device_kind;

typedef struct mm_tensor {
    mm_dtype dtype;
    mm_device_kind device;
    int ndim;
    int64_t shape[MM_MAX_DIMS];
    int64_t stride[MM_MAX_DIMS]; /* elements, row-major */
    void *data;                  /* NULL on the meta device */
} mm_tensor;

size_t mm_dtype_size(mm_dtype dtype);
const char *mm_dtype_name(mm_dtype dtype); /* "F32", "U8", ... as safetensors spells them */

/* A contiguous view of `data` with the given shape. */
mm_tensor mm_tensor_view(void *data, mm_dtype dtype, int ndim, const int64_t *shape);
int64_t mm_tensor_numel(const mm_tensor *t);
size_t mm_tensor_bytes(const mm_tensor *t);
int64_t mm_shape_numel(int ndim, const int64_t *shape);
/* For shapes read from files: true when every dimension is >= 0 and the product of the nonzero
 * ones fits in int64, so that no product of some of them, in any order, overflows (an empty
 * array's other dimensions included: (2^40, 2^40, 0) is refused); *numel is then the product. */
bool mm_shape_numel_checked(int ndim, const int64_t *shape, int64_t *numel);
bool mm_shape_equal(int ndim_a, const int64_t *a, int ndim_b, const int64_t *b);
/* Writes "[2, 3, 4]" into buf. */
const char *mm_shape_str(char *buf, size_t n, int ndim, const int64_t *shape);

#endif
