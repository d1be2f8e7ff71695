/* Two-tier error reporting (DESIGN section 4).
 *
 * Tier 1, bad user input (a file, a flag, a shape that does not fit): the function that notices
 * calls mm_fail(), which records one line naming the file or flag and what to do, and returns the
 * status up the stack. The command line prints that line as "mammo: <message>" and exits 1.
 *
 * Tier 2, broken invariants and failed CUDA/cuDNN/cuBLAS/NCCL calls: MM_ASSERT / mm_die() abort
 * through one reporter that prints the call, file:line, the library's message and a hint. */
#ifndef MM_ERROR_H
#define MM_ERROR_H

#include <stddef.h>

typedef enum mm_status {
    MM_OK = 0,
    MM_ERR_IO,          /* a file could not be opened, read or written */
    MM_ERR_FORMAT,      /* a file's contents are malformed */
    MM_ERR_ARG,         /* a flag or argument is wrong */
    MM_ERR_SHAPE,       /* shapes that do not fit together */
    MM_ERR_NOMEM,       /* an allocation failed */
    MM_ERR_UNSUPPORTED, /* valid input we do not handle (say so, name it) */
    MM_ERR_NUMERIC,     /* NaN/Inf where a number was expected */
    MM_ERR_DEVICE,      /* a device is missing or unusable */
} mm_status;

/* Records the message (printf format) for this thread and returns `status`. */
mm_status mm_fail(mm_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The message of the last mm_fail() on this thread ("" if none). */
const char *mm_last_error(void);
void mm_clear_error(void);

/* Tier 2: prints "mammo: fatal: <what> at file:line: <detail>" and an optional hint, then aborts. */
_Noreturn void mm_die_at(const char *file, int line, const char *what, const char *detail,
                         const char *hint);

#define MM_ASSERT(cond)                                                                    \
    do {                                                                                   \
        if (!(cond)) mm_die_at(__FILE__, __LINE__, "assertion failed", #cond, NULL);       \
    } while (0)

/* Checks a tier-1 status and returns it from the calling function. */
#define MM_TRY(expr)                                                                       \
    do {                                                                                   \
        mm_status mm_try_s_ = (expr);                                                      \
        if (mm_try_s_ != MM_OK) return mm_try_s_;                                          \
    } while (0)

/* malloc/calloc that abort with the size on failure (tier 2: running out of host memory for
 * bookkeeping is not something the user can fix by changing a flag). */
void *mm_xmalloc(size_t bytes);
void *mm_xcalloc(size_t count, size_t size);
void *mm_xrealloc(void *ptr, size_t bytes);
char *mm_xstrdup(const char *s);

#endif
