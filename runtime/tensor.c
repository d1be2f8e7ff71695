/* Tensor views and dtypes: see tensor.h. */
#include "tensor.h"

#include <stdio.h>
#include <string.h>

#include "error.h"

size_t mm_dtype_size(mm_dtype dtype)
{
    switch (dtype) {
    case MM_F32: return 4;
    case MM_U8: return 1;
    case MM_U16: return 2;
    case MM_I32: return 4;
    case MM_BF16: return 2;
    default: break;
    }
    MM_ASSERT(!"unknown dtype");
}

const char *mm_dtype_name(mm_dtype dtype)
{
    switch (dtype) {
    case MM_F32: return "F32";
    case MM_U8: return "U8";
    case MM_U16: return "U16";
    case MM_I32: return "I32";
    case MM_BF16: return "BF16";
    default: return "?";
    }
}

mm_tensor mm_tensor_view(void *data, mm_dtype dtype, int ndim, const int64_t *shape)
{
    MM_ASSERT(ndim >= 0 && ndim <= MM_MAX_DIMS);
    mm_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = dtype;
    t.device = MM_DEVICE_CPU;
    t.ndim = ndim;
    t.data = data;
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        t.shape[i] = shape[i];
        t.stride[i] = s;
        s *= shape[i];
    }
    return t;
}

int64_t mm_shape_numel(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

bool mm_shape_numel_checked(int ndim, const int64_t *shape, int64_t *numel)
{
    int64_t span = 1;
    bool empty = false;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return false;
        if (shape[i] == 0) empty = true;
        else if (__builtin_mul_overflow(span, shape[i], &span)) return false;
    }
    *numel = empty ? 0 : span;
    return true;
}

int64_t mm_tensor_numel(const mm_tensor *t) { return mm_shape_numel(t->ndim, t->shape); }

size_t mm_tensor_bytes(const mm_tensor *t)
{
    return (size_t)mm_tensor_numel(t) * mm_dtype_size(t->dtype);
}

bool mm_shape_equal(int ndim_a, const int64_t *a, int ndim_b, const int64_t *b)
{
    if (ndim_a != ndim_b) return false;
    for (int i = 0; i < ndim_a; i++)
        if (a[i] != b[i]) return false;
    return true;
}

const char *mm_shape_str(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t at = 0;
    at += (size_t)snprintf(buf + at, n - at, "[");
    for (int i = 0; i < ndim && at < n; i++)
        at += (size_t)snprintf(buf + at, n - at, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (at < n) snprintf(buf + at, n - at, "]");
    return buf;
}
