/* Writing a file so that a crash never leaves it half-written (DESIGN section 7). The one helper
 * for this in mammo: the runtime's writers (safetensors, npy, text), the data tools (index, patch
 * lists, PNG, DICOM) and the synthetic dataset generator all go through it.
 *
 * mm_atomic_file_open() creates "<path>.tmp.<pid>.<n>" in the same folder as `path` (n counts up
 * atomically, so threads of one process writing the same or different files never share a temp
 * file); the caller writes through `file`; mm_atomic_file_commit() checks for write errors,
 * flushes, fsyncs and rename()s it over `path` (rename is atomic within one file system, so a
 * reader sees either the old file or the whole new one). On any failure, or with
 * mm_atomic_file_abort(), the temp file is removed and `path` is untouched.
 *
 *     mm_atomic_file af;
 *     MM_TRY(mm_atomic_file_open(&af, path));
 *     mm_status s = mm_atomic_file_write(&af, data, bytes);    (or fprintf(af.file, ...))
 *     if (s != MM_OK) { mm_atomic_file_abort(&af); return s; }
 *     return mm_atomic_file_commit(&af);
 *
 * A library that writes to a file name rather than a FILE (DCMTK's saveFile) takes the temp name
 * from mm_atomic_file_reserve() instead, writes and closes that file itself, then commits (which
 * reopens it to fsync) or aborts. */
#ifndef MM_ATOMIC_FILE_H
#define MM_ATOMIC_FILE_H

#include <stddef.h>
#include <stdio.h>

#include "error.h"

typedef struct mm_atomic_file {
    FILE *file;     /* write here (NULL after mm_atomic_file_reserve) */
    char *path;     /* the final name */
    char *tmp_path; /* the temp name in the same folder */
} mm_atomic_file;

/* MM_ERR_IO "<path>: cannot create a file there (<reason>); ..." when the folder is missing or not
 * writable. */
mm_status mm_atomic_file_open(mm_atomic_file *af, const char *path);
/* Only picks the unique temp name af->tmp_path (nothing is created; af->file stays NULL). */
void mm_atomic_file_reserve(mm_atomic_file *af, const char *path);
/* Writes `bytes` bytes; on failure records MM_ERR_IO naming the path (the caller then aborts). */
mm_status mm_atomic_file_write(mm_atomic_file *af, const void *data, size_t bytes);
/* Checks the stream's error flag, flushes, fsyncs, closes and renames over the final path. Frees
 * af; on failure removes the temp file and returns MM_ERR_IO naming the final path. */
mm_status mm_atomic_file_commit(mm_atomic_file *af);
/* Closes and removes the temp file; frees af. Safe to call after a failed write. */
void mm_atomic_file_abort(mm_atomic_file *af);

#endif
