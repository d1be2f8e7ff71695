/* The convolution algorithm choices kept on disk between runs (--algo-cache DIR; backend.h
 * algo_cache_dir), so a run on a card that has seen the shapes before takes the earlier choices
 * instead of timing every candidate again (13 s of set-up for ResNet50, 98 s for VGG16 in fp32
 * on an H200).
 *
 * One text file per card in the folder, conv-algos-<card>-sm<cc>-<SMs>.txt: a header naming the
 * card and the cuDNN, cuBLAS and CUDA runtime versions, then one line per searched shape: its
 * key (conv_entry.h), what else decided the search (mm_conv_search_setup), the choice and every
 * candidate the search timed (the workspace caps weigh them, conv_caps.c). A file written with
 * other versions, or lines that do not read, are left out with one warning line and replaced at
 * the next save; the file is written to a temp file and renamed (runtime/atomic_file.h), merged
 * with what other processes saved meanwhile (runs on several GPUs of a machine share the
 * folder).
 * Deterministic mode times nothing and does not use it. */
#ifndef MM_CONV_DISK_H
#define MM_CONV_DISK_H

#include "conv_entry.h"

typedef struct mm_conv_disk mm_conv_disk;

/* The cache of GPU `device` in folder `dir` (made by the caller), read from its file when there
 * is one. Never fails: what cannot be read counts as empty (a warning on stderr). */
mm_conv_disk *mm_conv_disk_open(const char *dir, int device);
/* Saves (mm_conv_disk_save) and frees; NULL is fine. */
void mm_conv_disk_close(mm_conv_disk *dk);

/* Fills new entry e (key set, descriptors made for NHWC, as mm_conv_pick takes it) from the
 * record of its key under the current search setup, with at most `limit` bytes of scratch.
 * False when there is none or it cannot be restored (a graph plan cuDNN no longer offers, a
 * Winograd choice whose scratch is not what its chunks need): e is then as it was, to be
 * searched. */
bool mm_conv_disk_restore(mm_conv_disk *dk, mm_cuda_ctx *ctx, mm_conv_entry *e,
                          const mm_conv_dims *d, mm_dtype t, size_t limit);
/* Records the choice of e, just searched. */
void mm_conv_disk_record(mm_conv_disk *dk, const mm_cuda_ctx *ctx, const mm_conv_entry *e);
/* Writes the file when something was recorded since the last save. A failure is a warning. */
void mm_conv_disk_save(mm_conv_disk *dk);

/* Shapes restored from the file, and searched, since opened. */
typedef struct mm_conv_disk_counts { int hits, searched; } mm_conv_disk_counts;
mm_conv_disk_counts mm_conv_disk_counts_of(const mm_conv_disk *dk);

#endif
