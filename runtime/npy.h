/* .npy files: numpy's array format, mammo's format for user-facing arrays (inputs and outputs of
 * `mammo forward`, preprocessed images, test fixtures). User-facing image tensors are NCHW.
 *
 * Layout: "\x93NUMPY", a version (1.0: u16 header length; 2.0 and 3.0: u32; 3.0 = UTF-8 header),
 * then a Python dict literal such as {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 * padded with spaces and a newline so the data starts at a multiple of 64 bytes, then the data.
 *
 * Supported: descr float32, uint8, uint16, int32 ('<f4', '|u1', '<u2', '<i4', and the variants
 * '<u1', '|u2', '=' numpy may emit); big-endian data ('>f4', ...) is byte-swapped on load; C order
 * only; rank 0..MM_MAX_DIMS. Anything else is a clear tier-1 error naming the file: other dtypes
 * (MM_ERR_UNSUPPORTED, with the astype() to use), Fortran order, a malformed or truncated header,
 * data shorter than the shape needs. Bytes after the data are ignored, as numpy does.
 *
 * Writing produces exactly the bytes numpy 1.24's np.save() writes (version 1.0, or 2.0 when the
 * header needs more than 65535 bytes), through a temp file and rename(). */
#ifndef MM_NPY_H
#define MM_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "tensor.h"

/* Headers above this size are rejected (numpy's own reader limits them to 10000 bytes). */
#define MM_NPY_MAX_HEADER (1u << 20)

typedef struct mm_npy_header {
    mm_dtype dtype;
    int ndim;
    int64_t shape[MM_MAX_DIMS];
    int64_t numel;
    size_t bytes;       /* numel * dtype size */
    size_t data_offset; /* from the start of the file */
    int version;        /* 1, 2 or 3 */
    int big_endian;     /* the data is stored big-endian (swapped by the loaders) */
} mm_npy_header;

/* An array read into memory it owns. */
typedef struct mm_npy_array {
    mm_dtype dtype;
    int ndim;
    int64_t shape[MM_MAX_DIMS];
    int64_t numel;
    size_t bytes;
    void *data; /* host byte order; free with mm_npy_array_free */
} mm_npy_array;

/* Parses and validates the header at the start of `size` bytes at `buf` (which may be the whole
 * file or just its beginning); checks the data fits only when `file_size` is not 0. `label` names
 * the file in messages. */
mm_status mm_npy_parse_header(mm_npy_header *h, const void *buf, size_t size, uint64_t file_size,
                              const char *label);
mm_status mm_npy_read_header(mm_npy_header *h, const char *path);

/* Whole array into newly allocated memory. */
mm_status mm_npy_load(mm_npy_array *out, const char *path);
/* The same from a whole file in memory. */
mm_status mm_npy_parse(mm_npy_array *out, const void *buf, size_t size, const char *label);
void mm_npy_array_free(mm_npy_array *a);

/* Loads into caller memory an array that must have this dtype and shape (clear message otherwise:
 * "x.npy: shape (1, 3, 224, 224), expected (1, 1, 224, 224)"). */
mm_status mm_npy_load_into(void *dst, const char *path, mm_dtype dtype, int ndim,
                           const int64_t *shape);

/* Writes `data` (contiguous, row-major, host order) as a C-order array. BF16 has no numpy dtype:
 * MM_ERR_UNSUPPORTED. */
mm_status mm_npy_save(const char *path, mm_dtype dtype, int ndim, const int64_t *shape,
                      const void *data);

#endif
