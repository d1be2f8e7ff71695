/* safetensors files: the format of Hugging Face's `safetensors` package, read by PyTorch, used for
 * mammo's weights and checkpoints (DESIGN section 4).
 *
 * Layout: an 8-byte little-endian u64 N, then N bytes of UTF-8 JSON, then the data section. The JSON
 * object maps each tensor name to {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}
 * (byte offsets relative to the start of the data section, row-major, little-endian data) and may
 * hold "__metadata__": an object of string -> string. The reference implementation requires the
 * tensors to tile the data section exactly (no gaps, no overlap, nothing after the last one); so do
 * we, on reading and on writing.
 *
 * Reading:
 *     mm_safetensors *f;
 *     MM_TRY(mm_safetensors_open(&f, path));           validates the whole header
 *     const mm_st_entry *e = mm_safetensors_find(f, "conv1.weight");
 *     s = mm_safetensors_load(f, "conv1.weight", MM_F32, 4, want_shape, dst);   checks dtype+shape
 *     const char *step = mm_safetensors_meta(f, "step");
 *     mm_safetensors_close(f);
 * Every problem with a file is a tier-1 error naming the file (and the tensor) and what is wrong:
 * truncated files, headers that are not JSON or not of the expected form, unknown dtypes, offsets out
 * of range, overlapping tensors, byte sizes that do not match the shape, duplicate names. A file may
 * hold tensors of dtypes mammo has no type for (F16, F64, I64, ...: e.g. torchvision's
 * `num_batches_tracked` is I64); opening it works, the entry says `supported = 0`, and reading that
 * tensor fails with "unsupported dtype I64 for tensor <name>".
 *
 * Writing: mm_safetensors_write() for tensors already in host memory, or the streaming writer
 * (mm_st_writer_*) that takes the bytes of one tensor at a time (e.g. copied from a GPU through a
 * small staging buffer). Both write a temp file in the same folder and rename it over the path at the
 * end, so a crash leaves the previous file intact. The header is padded with spaces to a multiple of
 * 8 bytes, as the reference writer does; tensors are laid out contiguously in the order given. */
#ifndef MM_SAFETENSORS_H
#define MM_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "tensor.h"

/* Headers above this size are rejected as corrupt (the reference implementation's limit). */
#define MM_ST_MAX_HEADER ((uint64_t)100 << 20)

typedef struct mm_st_entry {
    const char *name;
    const char *dtype_name; /* as spelled in the file: "F32", "F16", "I64", ... */
    mm_dtype dtype;         /* valid when supported */
    int supported;          /* 0: a dtype or rank mammo cannot hold; reading it is an error */
    int ndim;               /* may exceed MM_MAX_DIMS when !supported */
    int64_t shape[MM_MAX_DIMS];
    int64_t numel;
    uint64_t begin, end; /* data_offsets: bytes relative to the data section */
    size_t bytes;        /* end - begin = numel * element size */
} mm_st_entry;

typedef struct mm_safetensors mm_safetensors;

/* Opens `path`, reads and validates its header (the data is read on demand). */
mm_status mm_safetensors_open(mm_safetensors **out, const char *path);
/* The same from a whole file in memory (`size` bytes at `data`, which must outlive the handle);
 * `label` names it in messages. Used by the fuzz targets and for files already read. */
mm_status mm_safetensors_parse(mm_safetensors **out, const void *data, size_t size,
                               const char *label);
/* The same, taking `data` (from malloc): the handle frees it on close, and this call on failure.
 * PyTorch checkpoints are read this way (runtime/torch_pth.h). */
mm_status mm_safetensors_parse_owned(mm_safetensors **out, void *data, size_t size,
                                     const char *label);
void mm_safetensors_close(mm_safetensors *f);

const char *mm_safetensors_path(const mm_safetensors *f);
/* Entries in data order (the order of data_offsets; for our files, the order they were written). */
int mm_safetensors_count(const mm_safetensors *f);
const mm_st_entry *mm_safetensors_entry(const mm_safetensors *f, int i);
/* NULL when there is no tensor of that name. */
const mm_st_entry *mm_safetensors_find(const mm_safetensors *f, const char *name);

/* Reads the raw bytes of entry `e` into dst; `bytes` must equal e->bytes (tier 2 otherwise).
 * MM_ERR_UNSUPPORTED for an unsupported entry, MM_ERR_IO if the file shrank since it was opened. */
mm_status mm_safetensors_read(const mm_safetensors *f, const mm_st_entry *e, void *dst,
                              size_t bytes);
/* Whether entry e is floating-point: F32, F16, BF16 or F64 (held or not). */
bool mm_safetensors_is_float(const mm_st_entry *e);
/* Reads a floating-point entry as float32 into dst (e->numel floats): weights saved in half,
 * bfloat16 or double precision load as float32, as PyTorch's load_state_dict copies them.
 * MM_ERR_UNSUPPORTED naming the tensor for other dtypes. */
mm_status mm_safetensors_read_f32(const mm_safetensors *f, const mm_st_entry *e, float *dst);
/* Finds `name`, checks that its dtype and shape are the expected ones (clear message otherwise:
 * missing tensor, wrong dtype, "has shape [64, 3, 7, 7], expected [64, 3, 3, 3]") and reads it;
 * MM_F32 is also read from F16, BF16 and F64 (mm_safetensors_read_f32). */
mm_status mm_safetensors_load(const mm_safetensors *f, const char *name, mm_dtype dtype, int ndim,
                              const int64_t *shape, void *dst);

/* The value of metadata `key`, or NULL. Strings stay valid until close. */
const char *mm_safetensors_meta(const mm_safetensors *f, const char *key);
int mm_safetensors_meta_count(const mm_safetensors *f);
void mm_safetensors_meta_at(const mm_safetensors *f, int i, const char **key, const char **value);

/* ---- writing ---- */
typedef struct mm_st_tensor {
    const char *name;
    mm_dtype dtype;
    int ndim; /* 0 .. MM_MAX_DIMS */
    int64_t shape[MM_MAX_DIMS];
    const void *data; /* host, contiguous, row-major; unused by the streaming writer */
} mm_st_tensor;

typedef struct mm_st_meta {
    const char *key, *value; /* UTF-8 */
} mm_st_meta;

/* Writes all tensors (data from host memory) and metadata to `path` (temp file + rename). Bad
 * names (duplicates, "__metadata__", not UTF-8), shapes or ranks give MM_ERR_ARG. */
mm_status mm_safetensors_write(const char *path, const mm_st_tensor *tensors, int n_tensors,
                               const mm_st_meta *meta, int n_meta);

/* Streaming writer: open() validates the list and writes the header (the `data` fields are
 * ignored); put() takes the next tensor's bytes, in order, possibly in several pieces; finish()
 * checks every byte came and renames the file into place; abort() removes the temp file. After a
 * failed put() or finish() the writer is already released. */
typedef struct mm_st_writer mm_st_writer;
mm_status mm_st_writer_open(mm_st_writer **out, const char *path, const mm_st_tensor *tensors,
                            int n_tensors, const mm_st_meta *meta, int n_meta);
mm_status mm_st_writer_put(mm_st_writer *w, const void *data, size_t bytes);
mm_status mm_st_writer_finish(mm_st_writer *w);
void mm_st_writer_abort(mm_st_writer *w);

#endif
