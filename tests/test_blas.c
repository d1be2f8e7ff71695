/* OpenBLAS opened at run time (kernels/cpu/blas.c): the kernels chosen for this CPU, its SGEMM
 * against a naive product through the functions we resolved, and MM_OPENBLAS naming a library
 * that cannot serve (the built mammo, through a shell). */
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/blas.h"
#include "tests/grad_check.h"
#include "tests/harness.h"
#include "tests/run_mammo.h"

/* OPENBLAS_CORETYPE as the test started, before anything loaded OpenBLAS and set it. */
static int user_set_coretype;
__attribute__((constructor)) static void note_environment(void)
{
    user_set_coretype = getenv("OPENBLAS_CORETYPE") != NULL;
}

MM_TEST(better_core_only_replaces_cores_without_avx2)
{
    /* OpenBLAS 0.3.21's fallback for a CPU newer than itself */
    CHECK(!strcmp(mm_blas_better_core("Prescott", 1, 1), "SkylakeX"));
    CHECK(!strcmp(mm_blas_better_core("prescott", 1, 0), "Haswell"));
    CHECK(!strcmp(mm_blas_better_core("Sandybridge", 1, 0), "Haswell"));
    CHECK(!strcmp(mm_blas_better_core("Unknown", 1, 1), "SkylakeX"));
    /* a CPU without AVX2 and FMA keeps what OpenBLAS chose */
    CHECK(mm_blas_better_core("Prescott", 0, 0) == NULL);
    CHECK(mm_blas_better_core("Nehalem", 0, 0) == NULL);
    /* cores OpenBLAS chose knowing the CPU, and names newer than our list, are kept */
    const char *kept[] = {"Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids",
                          "Excavator", "SomethingNew"};
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++)
        CHECK_MSG(mm_blas_better_core(kept[i], 1, 1) == NULL, "%s replaced", kept[i]);
    CHECK(mm_blas_better_core(NULL, 1, 1) == NULL);
}

/* The kernels named by mm_blas_describe: "OpenBLAS 0.3.21, SkylakeX kernels (...)". */
static void loaded_core(char *out, size_t cap)
{
    const char *d = mm_blas_describe(), *comma = strstr(d, ", "), *end = strstr(d, " kernels");
    out[0] = '\0';
    if (comma && end && end > comma + 2 && (size_t)(end - comma - 2) < cap)
        snprintf(out, cap, "%.*s", (int)(end - comma - 2), comma + 2);
}

MM_TEST(loads_kernels_of_this_cpu)
{
    char why[512] = "", core[64];
    CHECK_MSG(mm_blas_load(why, sizeof why) == 0, "%s", why);
    loaded_core(core, sizeof core);
    CHECK_MSG(core[0] != '\0', "describe: '%s'", mm_blas_describe());
    printf("  %s\n", mm_blas_describe());
    int avx2_fma = 0, avx512 = 0;
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
#endif
    if (user_set_coretype) MM_SKIP("OPENBLAS_CORETYPE set by the user: their choice is kept");
    /* on a CPU with AVX2, never kernels short of it (a newer CPU than OpenBLAS knows included) */
    CHECK_MSG(mm_blas_better_core(core, avx2_fma, avx512) == NULL,
              "OpenBLAS runs %s kernels on a CPU with AVX2", core);
}

/* c = a b by definition, in double, for row-major a [m,k] and b [k,n] given (possibly transposed)
 * as stored. */
static void naive(int ta, int tb, int m, int n, int k, const float *a, const float *b, float *c)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int p = 0; p < k; p++)
                s += (double)(ta ? a[p * m + i] : a[i * k + p]) *
                     (double)(tb ? b[j * k + p] : b[p * n + j]);
            c[i * n + j] = (float)s;
        }
}

MM_TEST(sgemm_of_the_loaded_library_matches_the_definition)
{
    const int m = 37, n = 53, k = 71;
    float *a = trand(m * k, 1, -1, 1), *b = trand(k * n, 2, -1, 1), *want = tbuf(m * n);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            float *c = trand(m * n, 3, -1, 1), *c0 = tbuf(m * n);
            memcpy(c0, c, sizeof(float) * (size_t)(m * n));
            naive(ta, tb, m, n, k, a, b, want);
            for (int i = 0; i < m * n; i++) want[i] = 2.0f * want[i] + 0.5f * c0[i];
            mm_blas_sgemm(ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k,
                          2.0f, a, ta ? m : k, b, tb ? k : n, 0.5f, c, n);
            CHECK_ARRAYS("sgemm", c, want, m * n, 1e-4, 1e-5);
            free(c), free(c0);
        }
    free(a), free(b), free(want);
}

/* A library that cannot be opened, or is not OpenBLAS: one line naming it, exit status 1. */
MM_TEST(unusable_library_is_one_line_naming_it)
{
    const char *cases[][3] = {
        {"/nonexistent/libopenblas.so", "bench --net vgg16 --device cpu --input 64x64 --steps 1",
         "cannot load OpenBLAS from MM_OPENBLAS=/nonexistent/libopenblas.so"},
        {"/nonexistent/libopenblas.so", "version", "MM_OPENBLAS=/nonexistent/libopenblas.so"},
        {"libz.so.1", "bench --net vgg16 --device cpu --input 64x64 --steps 1",
         "libz.so.1 is not OpenBLAS"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[8192];
        setenv("MM_OPENBLAS", cases[i][0], 1); /* for mammo: this process has its library */
        int st = run_mammo(out, sizeof out, cases[i][1]);
        unsetenv("MM_OPENBLAS");
        CHECK_MSG(st == 1, "'%s' exited %d: %s", cases[i][1], st, out);
        /* the error's one line (version prints its first line before it) */
        char line[1024] = "";
        const char *at = strstr(out, "mammo: ");
        if (at) snprintf(line, sizeof line, "%.*s", (int)strcspn(at, "\n"), at);
        CHECK_MSG(strstr(line, cases[i][2]) != NULL, "'%s' with MM_OPENBLAS=%s printed: %s",
                  cases[i][1], cases[i][0], out);
    }
}
