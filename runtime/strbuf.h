/* A growable text buffer, and writing a whole buffer to a file atomically.
 *
 * Used to build CSV, JSON and HTML output in memory and then put it on disk in one step, so a
 * reader (or a crash) never sees a half-written file. */
#ifndef MM_STRBUF_H
#define MM_STRBUF_H

#include <stddef.h>

#include "error.h"

typedef struct mm_strbuf {
    char *data; /* NUL-terminated; NULL until something is appended */
    size_t len, cap;
} mm_strbuf;

void mm_strbuf_init(mm_strbuf *b);
void mm_strbuf_free(mm_strbuf *b);
void mm_strbuf_append(mm_strbuf *b, const char *s, size_t n);
void mm_strbuf_puts(mm_strbuf *b, const char *s);
void mm_strbuf_printf(mm_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The text so far ("" when empty). */
const char *mm_strbuf_str(const mm_strbuf *b);

/* Writes bytes [0, n) to `path` through a temporary file in the same folder and rename()
 * (runtime/atomic_file.h); on failure the temporary file is removed, `path` is untouched, and
 * the error names `path`. */
mm_status mm_write_text_atomic(const char *path, const char *data, size_t n);

#endif
