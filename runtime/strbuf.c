/* A growable text buffer and atomic whole-file writes: see strbuf.h. */
#include "strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomic_file.h"

void mm_strbuf_init(mm_strbuf *b) { memset(b, 0, sizeof *b); }

void mm_strbuf_free(mm_strbuf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

static void reserve(mm_strbuf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) cap *= 2;
    b->data = mm_xrealloc(b->data, cap);
    b->cap = cap;
}

void mm_strbuf_append(mm_strbuf *b, const char *s, size_t n)
{
    reserve(b, n);
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void mm_strbuf_puts(mm_strbuf *b, const char *s) { mm_strbuf_append(b, s, strlen(s)); }

void mm_strbuf_printf(mm_strbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    MM_ASSERT(n >= 0);
    reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

const char *mm_strbuf_str(const mm_strbuf *b) { return b->data ? b->data : ""; }

mm_status mm_write_text_atomic(const char *path, const char *data, size_t n)
{
    mm_atomic_file af;
    MM_TRY(mm_atomic_file_open(&af, path));
    mm_status s = mm_atomic_file_write(&af, data, n);
    if (s != MM_OK) {
        mm_atomic_file_abort(&af);
        return s;
    }
    return mm_atomic_file_commit(&af);
}
