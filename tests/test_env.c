/* Environment readers (runtime/env.h): values taken, bad values said once and ignored. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/env.h"
#include "tests/harness.h"

/* What fn() writes to stderr, in buf. */
static void stderr_of(void (*fn)(void), char *buf, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/stderr.txt", mm_test_tmpdir());
    fflush(stderr);
    int saved = dup(2), fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    dup2(fd, 2);
    close(fd);
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    FILE *f = fopen(path, "r");
    size_t got = f ? fread(buf, 1, n - 1, f) : 0;
    buf[got] = '\0';
    if (f) fclose(f);
}

MM_TEST(int_taken_in_range_else_kept)
{
    int64_t v = 7;
    unsetenv("MM_TEST_ENV_INT");
    CHECK(!mm_env_int("MM_TEST_ENV_INT", 0, 100, &v));
    CHECK_EQ_INT(v, 7);
    setenv("MM_TEST_ENV_INT", "", 1); /* empty: not given, and not a mistake */
    int warned = mm_env_warnings();
    CHECK(!mm_env_int("MM_TEST_ENV_INT", 0, 100, &v));
    CHECK_EQ_INT(v, 7);
    CHECK_EQ_INT(mm_env_warnings(), warned);
    setenv("MM_TEST_ENV_INT", "100", 1);
    CHECK(mm_env_int("MM_TEST_ENV_INT", 0, 100, &v));
    CHECK_EQ_INT(v, 100);
    setenv("MM_TEST_ENV_INT", "-3", 1);
    CHECK(mm_env_int("MM_TEST_ENV_INT", -5, 5, &v));
    CHECK_EQ_INT(v, -3);
    const char *bad[] = {"101", "-1", "12x", "x", " ", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("MM_TEST_ENV_INT", bad[i], 1);
        v = 7;
        CHECK_MSG(!mm_env_int("MM_TEST_ENV_INT", 0, 100, &v), "'%s' taken", bad[i]);
        CHECK_EQ_INT(v, 7);
    }
    unsetenv("MM_TEST_ENV_INT");
}

MM_TEST(switch_and_flag)
{
    unsetenv("MM_TEST_ENV_SW");
    CHECK_EQ_INT(mm_env_switch("MM_TEST_ENV_SW"), -1);
    CHECK(!mm_env_flag("MM_TEST_ENV_SW"));
    setenv("MM_TEST_ENV_SW", "0", 1);
    CHECK_EQ_INT(mm_env_switch("MM_TEST_ENV_SW"), 0);
    CHECK(!mm_env_flag("MM_TEST_ENV_SW"));
    setenv("MM_TEST_ENV_SW", "1", 1);
    CHECK_EQ_INT(mm_env_switch("MM_TEST_ENV_SW"), 1);
    CHECK(mm_env_flag("MM_TEST_ENV_SW"));
    setenv("MM_TEST_ENV_SW", "yes", 1); /* not a switch: the default, not "on" */
    CHECK_EQ_INT(mm_env_switch("MM_TEST_ENV_SW"), -1);
    CHECK(!mm_env_flag("MM_TEST_ENV_SW"));
    unsetenv("MM_TEST_ENV_SW");
}

MM_TEST(word_index)
{
    static const char *const words[] = {"bar", "lines", "quiet"};
    unsetenv("MM_TEST_ENV_WORD");
    CHECK_EQ_INT(mm_env_word("MM_TEST_ENV_WORD", words, 3), -1);
    setenv("MM_TEST_ENV_WORD", "quiet", 1);
    CHECK_EQ_INT(mm_env_word("MM_TEST_ENV_WORD", words, 3), 2);
    setenv("MM_TEST_ENV_WORD", "Quiet", 1);
    CHECK_EQ_INT(mm_env_word("MM_TEST_ENV_WORD", words, 3), -1);
    unsetenv("MM_TEST_ENV_WORD");
}

static void read_bad_twice(void)
{
    static const char *const words[] = {"0", "1", "2", "4"};
    int64_t v = 0;
    setenv("MM_TEST_ENV_ONCE_A", "3", 1);
    setenv("MM_TEST_ENV_ONCE_B", "2k", 1);
    for (int i = 0; i < 2; i++) {
        mm_env_word("MM_TEST_ENV_ONCE_A", words, 4);
        mm_env_int("MM_TEST_ENV_ONCE_B", 1, 64, &v);
    }
    unsetenv("MM_TEST_ENV_ONCE_A");
    unsetenv("MM_TEST_ENV_ONCE_B");
}

MM_TEST(bad_value_said_once_with_what_is_taken)
{
    int before = mm_env_warnings();
    char err[1024];
    stderr_of(read_bad_twice, err, sizeof err);
    CHECK_EQ_INT(mm_env_warnings(), before + 2);
    CHECK_MSG(!strcmp(err, "mammo: warning: MM_TEST_ENV_ONCE_A=3 is not one of 0, 1, 2, 4; ignored\n"
                           "mammo: warning: MM_TEST_ENV_ONCE_B=2k is not an integer in 1..64; "
                           "ignored\n"),
              "stderr: [%s]", err);
}
