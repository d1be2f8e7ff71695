/* A tiny test harness. Each tests/test_*.c file is one executable (one ctest entry) that defines
 * tests with MM_TEST(name) { ... }. main() (harness.c) runs them all, or those whose name contains
 * argv[1], and ends with the line "N passed, N failed, N skipped".
 *
 * A check that fails prints file:line and the values and marks the test failed; the test goes on.
 * MM_SKIP(reason) ends the test as skipped and prints "SKIPPED (reason)": used by GPU tests on
 * machines without a GPU, which must never pass silently. */
#ifndef MM_HARNESS_H
#define MM_HARNESS_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>

typedef void (*mm_test_fn)(void);
void mm_test_register(const char *name, mm_test_fn fn);
void mm_test_fail_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void mm_test_skip(const char *reason);
int mm_test_failed_now(void);

#define MM_TEST(name)                                                                  \
    static void mm_test_##name(void);                                                  \
    __attribute__((constructor)) static void mm_test_reg_##name(void)                  \
    {                                                                                  \
        mm_test_register(#name, mm_test_##name);                                       \
    }                                                                                  \
    static void mm_test_##name(void)

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) mm_test_fail_at(__FILE__, __LINE__, "CHECK(%s)", #cond);          \
    } while (0)

#define CHECK_MSG(cond, ...)                                                           \
    do {                                                                               \
        if (!(cond)) mm_test_fail_at(__FILE__, __LINE__, __VA_ARGS__);                 \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                             \
    do {                                                                               \
        long long mm_a_ = (long long)(a), mm_b_ = (long long)(b);                      \
        if (mm_a_ != mm_b_)                                                            \
            mm_test_fail_at(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b,      \
                            mm_a_, mm_b_);                                             \
    } while (0)

/* |a - b| <= atol + rtol * |b| */
#define CHECK_CLOSE(a, b, atol, rtol)                                                  \
    do {                                                                               \
        double mm_a_ = (double)(a), mm_b_ = (double)(b);                               \
        if (!(fabs(mm_a_ - mm_b_) <= (atol) + (rtol)*fabs(mm_b_)))                     \
            mm_test_fail_at(__FILE__, __LINE__, "%s ~= %s: %.9g vs %.9g", #a, #b,      \
                            mm_a_, mm_b_);                                             \
    } while (0)

#define MM_SKIP(reason)                                                                \
    do {                                                                               \
        mm_test_skip(reason);                                                          \
        return;                                                                        \
    } while (0)

/* Compares two float arrays elementwise with |a-b| <= atol + rtol*|b|; reports the first few
 * mismatches and the largest error under `what`. Returns 1 when all match. */
int mm_check_arrays(const char *file, int line, const char *what, const float *got,
                    const float *want, int64_t n, double atol, double rtol);
#define CHECK_ARRAYS(what, got, want, n, atol, rtol)                                   \
    mm_check_arrays(__FILE__, __LINE__, what, got, want, n, atol, rtol)

/* max |got - want| over max |want| (over 1 when want is all zero); a NaN difference propagates. */
double mm_test_rel_max_err(const float *got, const float *want, int64_t n);

/* The number after " key=" in a line of key=value fields (mammo bench's result line), or NAN. */
double mm_test_field(const char *line, const char *key);

/* Deterministic test data: uniform in [lo, hi) from a seed (Philox). */
void mm_test_fill_uniform(float *x, int64_t n, uint64_t seed, float lo, float hi);

/* A fresh empty directory for the running test under the build tree; returns its path. */
const char *mm_test_tmpdir(void);

#endif
