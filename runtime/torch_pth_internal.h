/* What the two halves of the PyTorch checkpoint reader share (torch_pth.h): torch_pth.c finds
 * the object pickle and the storages' bytes in either file format, torch_pth_dict.c takes the
 * state dict's tensors out of the pickle and writes them as a safetensors image. */
#ifndef MM_TORCH_PTH_INTERNAL_H
#define MM_TORCH_PTH_INTERNAL_H

#include "pickle.h"
#include "torch_pth.h"

/* dimensions of a tensor read; the handle marks ranks past MM_MAX_DIMS unsupported */
#define MM_PTH_MAX_DIMS 16
#define HINT "; the file is not a whole PyTorch checkpoint (truncated or corrupt?)"

typedef struct {
    const char *cls, *dtype; /* torch.<cls>; the safetensors dtype written */
    int size;                /* bytes of an element in the file */
    char conv;               /* 'f' f32, 'd' f64, 'h' f16, 'b' bf16 -> F32; 0: copied as is */
} mm_pth_type;

typedef struct {
    const char *key; /* into the pickle's bytes */
    size_t key_len;
    const mm_pth_type *type;
    int64_t numel;        /* elements, as its persistent id says */
    const uint8_t *bytes; /* numel * type->size of them, once the loader found them */
} mm_pth_storage_t;

typedef struct {
    char *name;
    int st; /* index into the storages */
    int ndim;
    int64_t shape[MM_PTH_MAX_DIMS], stride[MM_PTH_MAX_DIMS];
    int64_t offset; /* elements into the storage */
    int64_t numel;
} mm_pth_tensor;

typedef struct {
    const char *label;
    size_t file_size;
    mm_pickle *pk; /* the object's pickle */
    mm_pth_storage_t *st;
    int n_st, cap_st;
    mm_pth_tensor *t;
    int n_t;
} mm_pth;

/* The storage of persistent id node `persid` ('storage', torch.FloatStorage, key, location,
 * numel[, view]), registered on first sight (its bytes for the loader to find); `name` is the
 * tensor's, for messages; *view_offset, *view_numel: the part of it the legacy format's view
 * metadata gives, else all of it. */
mm_status mm_pth_storage(mm_pth *f, int persid, const char *name, mm_pth_storage_t **out,
                         int64_t *view_offset, int64_t *view_numel);
/* Finds the state dict and reads its tensors into f->t (registering their storages). */
mm_status mm_pth_collect(mm_pth *f);
/* The safetensors handle of f's tensors (every storage's bytes found); `source` for metadata. */
mm_status mm_pth_image(mm_pth *f, const char *source, mm_safetensors **out);
/* Frees the tensors, the storages and the pickle. */
void mm_pth_free(mm_pth *f);

#endif
