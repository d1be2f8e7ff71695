/* File-system helpers of the data tools: walking a dataset tree, making and removing folders,
 * replacing an output folder as a whole, path strings. (Single output files are written through
 * runtime/atomic_file.h, so a failed or interrupted run never leaves a half-written one.) */
#ifndef MM_FS_H
#define MM_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "../runtime/error.h"

/* A list of malloc'ed strings. */
typedef struct mm_strlist {
    char **s;
    int n, cap;
} mm_strlist;

void mm_strlist_add(mm_strlist *l, const char *s);
void mm_strlist_sort(mm_strlist *l);
void mm_strlist_free(mm_strlist *l);

/* Every regular file under `root` (recursively, following symbolic links to files, skipping
 * folders whose name starts with '.') whose name ends with `suffix` (ASCII case-insensitive; NULL
 * for all), as paths that start with `root`, sorted. A missing or unreadable root is MM_ERR_IO. */
mm_status mm_fs_list_files(mm_strlist *out, const char *root, const char *suffix);

bool mm_fs_is_dir(const char *path);
bool mm_fs_is_file(const char *path);
/* mkdir -p; an existing folder is fine. */
mm_status mm_fs_mkdirs(const char *path);
/* mkdir -p of the folder that will hold the file `path` (nothing when it has no folder part). */
mm_status mm_fs_mkdirs_for(const char *path);
/* Size of a file in bytes, or -1 if it cannot be stat'ed. */
long long mm_fs_file_size(const char *path);
/* Removes a folder tree that this program made (a staging folder); quiet about missing paths. */
void mm_fs_rmtree(const char *path);

/* Moves the finished folder `stage` to `final`. An existing `final` is replaced only when it holds
 * nothing but .png files (an earlier output of ours); otherwise it is an error naming `flag`. */
mm_status mm_fs_replace_dir(const char *stage, const char *final, const char *flag);

/* out = a "/" b (b unchanged when absolute); returns out. Aborts if it does not fit. */
char *mm_fs_join(char *out, size_t size, const char *a, const char *b);
/* The folder part of `path` ("." when there is none). */
char *mm_fs_dirname(char *out, size_t size, const char *path);
/* The last component of `path` (a pointer into it). */
const char *mm_fs_basename(const char *path);
/* ASCII case-insensitive suffix test. */
bool mm_str_ends_with(const char *s, const char *suffix);

#endif
