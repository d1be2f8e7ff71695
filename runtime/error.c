/* Two-tier error reporting: see error.h. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char last_error[1024];

mm_status mm_fail(mm_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

const char *mm_last_error(void) { return last_error; }

void mm_clear_error(void) { last_error[0] = '\0'; }

void mm_die_at(const char *file, int line, const char *what, const char *detail, const char *hint)
{
    fflush(stdout);
    fprintf(stderr, "mammo: fatal: %s at %s:%d: %s\n", what, file, line, detail ? detail : "");
    if (hint) fprintf(stderr, "---> HINT: %s\n", hint);
    fflush(stderr);
    abort();
}

static void die_nomem(size_t bytes)
{
    char detail[64];
    snprintf(detail, sizeof detail, "%zu bytes", bytes);
    mm_die_at(__FILE__, __LINE__, "out of host memory", detail, "free memory or use a smaller batch");
}

void *mm_xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) die_nomem(bytes);
    return p;
}

void *mm_xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) die_nomem(count * size);
    return p;
}

void *mm_xrealloc(void *ptr, size_t bytes)
{
    void *p = realloc(ptr, bytes ? bytes : 1);
    if (!p) die_nomem(bytes);
    return p;
}

char *mm_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = mm_xmalloc(n);
    memcpy(p, s, n);
    return p;
}
