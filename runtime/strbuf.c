/* A growable text buffer and atomic whole-file writes: see strbuf.h. */
#include "strbuf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
    size_t plen = strlen(path);
    char *tmp = mm_xmalloc(plen + 16);
    /* The temporary name sits next to the destination (same file system, so rename() is
     * atomic); mkstemp makes it unique. */
    const char *slash = strrchr(path, '/');
    size_t dir_len = slash ? (size_t)(slash - path) + 1 : 0;
    memcpy(tmp, path, dir_len);
    snprintf(tmp + dir_len, plen + 16 - dir_len, ".%s.XXXXXX", path + dir_len);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        mm_status s = mm_fail(MM_ERR_IO, "%s: cannot create a temporary file next to it: %s",
                              path, strerror(errno));
        free(tmp);
        return s;
    }
    const char *p = data;
    size_t left = n;
    int err = 0;
    /* mkstemp creates the file 0600; outputs are ordinary files others may read. */
    if (fchmod(fd, 0644) != 0) err = errno;
    while (!err && left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            err = errno;
            break;
        }
        p += w;
        left -= (size_t)w;
    }
    if (!err && fsync(fd) != 0) err = errno;
    if (close(fd) != 0 && !err) err = errno;
    if (!err && rename(tmp, path) != 0) err = errno;
    if (err) {
        unlink(tmp);
        free(tmp);
        return mm_fail(MM_ERR_IO, "%s: cannot write: %s", path, strerror(err));
    }
    free(tmp);
    return MM_OK;
}
