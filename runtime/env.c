/* Numbers, switches and words from the environment: see env.h. */
#include "env.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The variables already warned about: each is said once, however often it is read (the cuda
 * backend reads its switches once a convolution searched, from several replica threads). */
#define MM_ENV_MAX_WARNED 32
static pthread_mutex_t warned_lock = PTHREAD_MUTEX_INITIALIZER;
static char warned[MM_ENV_MAX_WARNED][64];
static int n_warned, n_warnings;

static void warn_once(const char *name, const char *value, const char *expected)
{
    pthread_mutex_lock(&warned_lock);
    bool seen = false;
    for (int i = 0; i < n_warned && !seen; i++) seen = strcmp(warned[i], name) == 0;
    if (!seen) {
        if (n_warned < MM_ENV_MAX_WARNED)
            snprintf(warned[n_warned++], sizeof warned[0], "%s", name);
        n_warnings++;
        fprintf(stderr, "mammo: warning: %s=%s is not %s; ignored\n", name, value, expected);
    }
    pthread_mutex_unlock(&warned_lock);
}

static const char *given(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

bool mm_env_int(const char *name, int64_t lo, int64_t hi, int64_t *out)
{
    const char *v = given(name);
    if (!v) return false;
    char *end = NULL;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (end != v && !*end && errno == 0 && n >= lo && n <= hi) {
        *out = (int64_t)n;
        return true;
    }
    char expected[96];
    snprintf(expected, sizeof expected, "an integer in %" PRId64 "..%" PRId64, lo, hi);
    warn_once(name, v, expected);
    return false;
}

int mm_env_switch(const char *name)
{
    static const char *const words[] = {"0", "1"};
    return mm_env_word(name, words, 2);
}

bool mm_env_flag(const char *name) { return mm_env_switch(name) == 1; }

int mm_env_word(const char *name, const char *const *words, int n)
{
    const char *v = given(name);
    if (!v) return -1;
    for (int i = 0; i < n; i++)
        if (strcmp(v, words[i]) == 0) return i;
    char expected[128] = "one of";
    for (int i = 0; i < n; i++) {
        size_t len = strlen(expected);
        snprintf(expected + len, sizeof expected - len, "%s%s", i ? ", " : " ", words[i]);
    }
    warn_once(name, v, expected);
    return -1;
}

int mm_env_warnings(void)
{
    pthread_mutex_lock(&warned_lock);
    int n = n_warnings;
    pthread_mutex_unlock(&warned_lock);
    return n;
}
