/* The test harness: see harness.h. */
#include "harness.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../kernels/philox.h"

#define MAX_TESTS 512

static struct {
    const char *name;
    mm_test_fn fn;
} tests[MAX_TESTS];
static int n_tests;
static int cur_failed, cur_skipped;
static const char *cur_name;
static char tmpdir[512];

void mm_test_register(const char *name, mm_test_fn fn)
{
    if (n_tests == MAX_TESTS) {
        fprintf(stderr, "harness: too many tests\n");
        exit(2);
    }
    tests[n_tests].name = name;
    tests[n_tests].fn = fn;
    n_tests++;
}

void mm_test_fail_at(const char *file, int line, const char *fmt, ...)
{
    if (cur_failed < 20) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stdout, "    %s:%d: ", file, line);
        vfprintf(stdout, fmt, ap);
        fprintf(stdout, "\n");
        va_end(ap);
    }
    cur_failed++;
}

int mm_test_failed_now(void) { return cur_failed; }

void mm_test_skip(const char *reason)
{
    cur_skipped = 1;
    printf("    SKIPPED (%s)\n", reason);
}

int mm_check_arrays(const char *file, int line, const char *what, const float *got,
                    const float *want, int64_t n, double atol, double rtol)
{
    int64_t bad = 0, worst = -1;
    double worst_excess = 0;
    for (int64_t i = 0; i < n; i++) {
        double a = got[i], b = want[i], err = fabs(a - b), lim = atol + rtol * fabs(b);
        if (!(err <= lim)) {
            if (bad < 3)
                mm_test_fail_at(file, line, "%s[%lld]: got %.9g want %.9g", what, (long long)i,
                                a, b);
            bad++;
            double excess = isnan(err) ? INFINITY : err - lim;
            if (worst < 0 || excess > worst_excess) {
                worst = i;
                worst_excess = excess;
            }
        }
    }
    if (bad)
        mm_test_fail_at(file, line, "%s: %lld of %lld differ (worst at %lld)", what,
                        (long long)bad, (long long)n, (long long)worst);
    return bad == 0;
}

void mm_test_fill_uniform(float *x, int64_t n, uint64_t seed, float lo, float hi)
{
    for (int64_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * mm_philox_uniform(seed, (uint64_t)i);
}

static void make_tmpdir(const char *exe, const char *test)
{
    const char *base = getenv("MM_TEST_TMP");
    char root[256];
    snprintf(root, sizeof root, "%s", base ? base : "/tmp/mammo-tests");
    mkdir(root, 0755);
    const char *slash = strrchr(exe, '/');
    snprintf(tmpdir, sizeof tmpdir, "%s/%s.%s.%d", root, slash ? slash + 1 : exe, test,
             (int)getpid());
    mkdir(tmpdir, 0755);
}

const char *mm_test_tmpdir(void) { return tmpdir; }

static void remove_tmpdir(void)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "harness: could not remove %s\n", tmpdir);
}

int main(int argc, char **argv)
{
    const char *filter = argc > 1 ? argv[1] : NULL;
    int passed = 0, failed = 0, skipped = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* The tests' commands keep no convolution choices between runs (which would make one test's
     * searches depend on another's), unless a test names a folder itself. */
    setenv("MM_ALGO_CACHE", "off", 1);
    for (int i = 0; i < n_tests; i++) {
        if (filter && !strstr(tests[i].name, filter)) continue;
        cur_failed = 0;
        cur_skipped = 0;
        cur_name = tests[i].name;
        make_tmpdir(argv[0], cur_name);
        printf("  %s\n", cur_name);
        tests[i].fn();
        if (cur_failed) {
            printf("  FAILED %s (files kept in %s)\n", cur_name, tmpdir);
            failed++;
            continue;
        }
        remove_tmpdir(); /* a passed or skipped test leaves nothing behind */
        if (cur_skipped) {
            skipped++;
        } else {
            passed++;
        }
    }
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}

double mm_test_rel_max_err(const float *got, const float *want, int64_t n)
{
    double emax = 0, wmax = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= emax)) emax = d; /* NaN propagates */
        if (fabs(want[i]) > wmax) wmax = fabs(want[i]);
    }
    return emax / (wmax > 0 ? wmax : 1);
}

double mm_test_field(const char *line, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, " %s=", key);
    const char *p = strstr(line, pat);
    return p ? strtod(p + strlen(pat), NULL) : NAN;
}
