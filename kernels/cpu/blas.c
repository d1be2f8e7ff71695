/* OpenBLAS opened with dlopen, and the kernels it runs chosen with this CPU in mind.
 *
 * Why not link it. Debian 12's OpenBLAS (0.3.21, built DYNAMIC_ARCH) picks its kernels from the
 * CPU's model number as it is loaded, and takes a model newer than itself for the oldest x86-64
 * it knows: on an Emerald Rapids Xeon (family 6, model 207) it ran its Prescott (SSE3) kernels,
 * 55 GFLOP/s of SGEMM on 2 cores against 300 with its SkylakeX (AVX-512) ones, and ResNet50
 * trained at 0.39x PyTorch's speed (PyTorch does not use OpenBLAS for convolutions). Setting
 * OPENBLAS_CORETYPE overrides the choice, but only before the library's constructor runs, which
 * for a linked library is before main. So the library is opened here: first with OpenBLAS's own
 * choice; when that is a core without AVX2 kernels on a CPU (and operating system) with AVX2 and
 * FMA, it is closed and opened again with OPENBLAS_CORETYPE=SkylakeX (AVX-512) or Haswell.
 * What the user set in OPENBLAS_CORETYPE is kept, and so is any core with AVX2 kernels that
 * OpenBLAS chose (Haswell, Zen, SkylakeX, Excavator, ...: it knew the CPU). OPENBLAS_CORETYPE
 * stays set, so the programs we start load the right kernels at once. MM_OPENBLAS names another
 * OpenBLAS to open (a newer build that knows the CPU, say). */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "blas.h"

#ifndef MM_OPENBLAS_LIBRARY
#define MM_OPENBLAS_LIBRARY "libopenblas.so.0"
#endif

static struct {
    void *lib;
    __typeof__(cblas_sgemm) *sgemm;
    __typeof__(openblas_set_num_threads) *set_threads;
    __typeof__(openblas_get_corename) *corename;
    __typeof__(openblas_get_config) *config;
    int status;         /* 0 loaded, -1 not */
    char message[512];  /* the error, or mm_blas_describe's text */
} blas;

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

/* OpenBLAS's names of the cores whose kernels stop short of AVX2 (its fallbacks for CPUs it does
 * not know are among them). */
static const char *const pre_avx2_cores[] = {
    "Unknown", "Katmai", "Coppermine", "Northwood", "Prescott", "Banias", "Atom", "Core2",
    "Penryn", "Dunnington", "Nehalem", "Athlon", "Opteron", "Opteron(SSE3)", "Barcelona", "Nano",
    "Sandybridge", "Bobcat", "Bulldozer", "Piledriver", "Steamroller",
};

const char *mm_blas_better_core(const char *core, int avx2_fma, int avx512)
{
    if (!avx2_fma || !core) return NULL;
    for (size_t i = 0; i < sizeof pre_avx2_cores / sizeof pre_avx2_cores[0]; i++)
        if (strcasecmp(core, pre_avx2_cores[i]) == 0) return avx512 ? "SkylakeX" : "Haswell";
    return NULL;
}

/* What the CPU and the operating system support (GCC's and clang's checks include the OS's
 * XSAVE state for AVX and AVX-512). */
static void cpu_vector_support(int *avx2_fma, int *avx512)
{
    *avx2_fma = *avx512 = 0;
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    *avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    *avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
              __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
              __builtin_cpu_supports("avx512vl");
#endif
}

static int resolve(void *lib, const char *name, void *fn_pointer)
{
    void *sym = dlsym(lib, name);
    memcpy(fn_pointer, &sym, sizeof sym); /* POSIX: a function's address as a void pointer */
    return sym != NULL;
}

/* Opens the library (MM_OPENBLAS where set; else the one CMake found, else by its soname) and
 * finds its functions. */
static int open_openblas(void)
{
    const char *user = getenv("MM_OPENBLAS"), *err = "", *name = "";
    const char *names[] = {MM_OPENBLAS_LIBRARY, "libopenblas.so.0"};
    if (user && *user) names[0] = names[1] = user;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !blas.lib; i++) {
        name = names[i];
        blas.lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
        if (!blas.lib) err = dlerror();
    }
    if (!blas.lib && user && *user)
        snprintf(blas.message, sizeof blas.message,
                 "cannot load OpenBLAS from MM_OPENBLAS=%s (%s): point it at libopenblas.so or "
                 "unset it", user, err);
    else if (!blas.lib)
        snprintf(blas.message, sizeof blas.message,
                 "cannot load OpenBLAS (%s): install libopenblas0 (make deps)", err);
    if (!blas.lib) return -1;
    if (!resolve(blas.lib, "cblas_sgemm", &blas.sgemm) ||
        !resolve(blas.lib, "openblas_set_num_threads", &blas.set_threads) ||
        !resolve(blas.lib, "openblas_get_corename", &blas.corename) ||
        !resolve(blas.lib, "openblas_get_config", &blas.config)) {
        snprintf(blas.message, sizeof blas.message,
                 "%s is not OpenBLAS (it lacks cblas_sgemm or openblas_get_corename): %s", name,
                 user && *user ? "point MM_OPENBLAS at libopenblas.so or unset it"
                               : "install libopenblas0 (make deps)");
        dlclose(blas.lib);
        blas.lib = NULL;
        return -1;
    }
    return 0;
}

static void load_once(void)
{
    blas.status = open_openblas();
    if (blas.status) return;
    char chosen[64];
    snprintf(chosen, sizeof chosen, "%s", blas.corename());
    int avx2_fma, avx512;
    cpu_vector_support(&avx2_fma, &avx512);
    const char *better = getenv("OPENBLAS_CORETYPE") ? NULL
                                                    : mm_blas_better_core(chosen, avx2_fma, avx512);
    if (better) {
        dlclose(blas.lib);
        blas.lib = NULL;
        setenv("OPENBLAS_CORETYPE", better, 1);
        blas.status = open_openblas();
        if (blas.status) return;
    }
    blas.set_threads(1);
    /* "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ...": its first two words */
    char version[64];
    snprintf(version, sizeof version, "%s", blas.config());
    char *space = strchr(version, ' ');
    if (space) space = strchr(space + 1, ' ');
    if (space) *space = '\0';
    const char *now = blas.corename();
    if (!better)
        snprintf(blas.message, sizeof blas.message, "%s, %s kernels", version, now);
    else if (strcasecmp(now, better) == 0)
        snprintf(blas.message, sizeof blas.message,
                 "%s, %s kernels (OpenBLAS took this CPU for %s)", version, now, chosen);
    else /* the library could not be unloaded: its first choice stays */
        snprintf(blas.message, sizeof blas.message,
                 "%s, %s kernels (slow on this CPU: set OPENBLAS_CORETYPE=%s before starting)",
                 version, now, better);
}

int mm_blas_load(char *why, size_t cap)
{
    pthread_once(&blas_once, load_once);
    if (blas.status && why && cap) snprintf(why, cap, "%s", blas.message);
    return blas.status;
}

void mm_blas_sgemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, float alpha,
                   const float *a, int lda, const float *b, int ldb, float beta, float *c,
                   int ldc)
{
    if (mm_blas_load(NULL, 0)) {
        fprintf(stderr, "mammo: %s\n", blas.message);
        exit(1);
    }
    blas.sgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void mm_blas_set_threads(int n)
{
    if (mm_blas_load(NULL, 0) == 0) blas.set_threads(n);
}

const char *mm_blas_describe(void) { return blas.status == 0 && blas.lib ? blas.message : ""; }
