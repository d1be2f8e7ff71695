/* Running the built command line from a test, as a user does: through a shell (MM_MAMMO_EXE is
 * the binary the test is built with: mammo, or mammo_emu in the emulated GPU's twins). */
#ifndef MM_TEST_RUN_MAMMO_H
#define MM_TEST_RUN_MAMMO_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "tests/harness.h"

/* Runs `mammo <args>` with stdout+stderr to <tmp>/mammo.out; returns the exit status and leaves
 * the output in out (may be NULL). */
static inline int run_mammo(char *out, size_t out_size, const char *args)
{
    char log[700], cmd[8192];
    snprintf(log, sizeof log, "%s/mammo.out", mm_test_tmpdir());
    snprintf(cmd, sizeof cmd, "%s %s >'%s' 2>&1", MM_MAMMO_EXE, args, log);
    int st = system(cmd);
    if (out) {
        out[0] = '\0';
        FILE *f = fopen(log, "rb");
        if (f) {
            size_t n = fread(out, 1, out_size - 1, f);
            out[n] = '\0';
            fclose(f);
        }
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

#endif
