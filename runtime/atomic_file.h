/* Writing a file so that a crash never leaves it half-written (DESIGN section 7).
 *
 * mm_atomic_file_open() creates "<path>.tmp.<pid>" in the same folder as `path`; the caller writes
 * through `file`; mm_atomic_file_commit() flushes, fsyncs and rename()s it over `path` (rename is
 * atomic within one file system, so a reader sees either the old file or the whole new one). On any
 * failure, or with mm_atomic_file_abort(), the temp file is removed and `path` is untouched.
 *
 *     mm_atomic_file af;
 *     MM_TRY(mm_atomic_file_open(&af, path));
 *     mm_status s = mm_atomic_file_write(&af, data, bytes);
 *     if (s != MM_OK) { mm_atomic_file_abort(&af); return s; }
 *     return mm_atomic_file_commit(&af);
 */
#ifndef MM_ATOMIC_FILE_H
#define MM_ATOMIC_FILE_H

#include <stddef.h>
#include <stdio.h>

#include "error.h"

typedef struct mm_atomic_file {
    FILE *file;     /* write here */
    char *path;     /* the final name */
    char *tmp_path; /* the temp name in the same folder */
} mm_atomic_file;

/* MM_ERR_IO "<path>: cannot create <tmp>: <reason>" when the folder is missing or not writable. */
mm_status mm_atomic_file_open(mm_atomic_file *af, const char *path);
/* Writes `bytes` bytes; on failure records MM_ERR_IO naming the path (the caller then aborts). */
mm_status mm_atomic_file_write(mm_atomic_file *af, const void *data, size_t bytes);
/* Flush, fsync, close, rename over the final path. Frees af; on failure removes the temp file. */
mm_status mm_atomic_file_commit(mm_atomic_file *af);
/* Closes and removes the temp file; frees af. Safe to call after a failed write. */
void mm_atomic_file_abort(mm_atomic_file *af);

#endif
