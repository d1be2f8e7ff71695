/* Small file-system helpers for the tools: output files written to a temporary name in the same
 * folder and renamed when complete (so an interrupted run never leaves a half-written file), and
 * `mkdir -p`. Every failure is a tier-1 error naming the path. */
#ifndef MM_FSUTIL_H
#define MM_FSUTIL_H

#include <stddef.h>
#include <stdio.h>

#include "../runtime/error.h"

/* A file being written: `f` writes to `tmp`; commit renames it to `path`. */
typedef struct mm_atomic_file {
    FILE *f;
    char *path, *tmp;
} mm_atomic_file;

/* Opens a fresh temporary file next to `path` ("<path>.tmp.<pid>.<n>") for writing. */
mm_status mm_atomic_open(mm_atomic_file *af, const char *path);
/* Flushes, closes and renames the temporary file to its final name; on any failure the
 * temporary file is removed and the final path is left as it was. Frees `af` either way. */
mm_status mm_atomic_commit(mm_atomic_file *af);
/* Closes and removes the temporary file (the final path is untouched). */
void mm_atomic_abort(mm_atomic_file *af);

/* Writes `n` bytes to `path` through a temporary file and rename. */
mm_status mm_write_file_atomic(const char *path, const void *data, size_t n);

/* A unique temporary name next to `path` (same folder, so rename() is atomic). */
void mm_tmp_name(char *out, size_t cap, const char *path);

/* Renames `tmp` to `path`; on failure removes `tmp` and returns a tier-1 error naming `path`. */
mm_status mm_rename_into_place(const char *tmp, const char *path);

/* Creates `dir` and its missing parents (like `mkdir -p`). */
mm_status mm_mkdirs(const char *dir);

/* Creates the folder that will hold the file `path` (its dirname) and its parents. */
mm_status mm_mkdirs_for(const char *path);

/* Size of a file in bytes, or -1 if it cannot be stat'ed. */
long long mm_file_size(const char *path);

#endif
