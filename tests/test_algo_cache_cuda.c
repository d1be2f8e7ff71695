/* Convolution algorithm choices kept between runs (--algo-cache; kernels/cuda/conv_disk.h), as a
 * user meets them: `mammo bench` run twice on the same shapes searches nothing the second time
 * and runs the same algorithms (the same loss); a damaged file, one written for another card or
 * library version, and a graph plan cuDNN no longer offers are searched again and mended, with a
 * warning; other search settings do not take the kept choices; deterministic mode keeps none;
 * bad folders are one line and exit status 1; a file that cannot be written is one warning.
 *
 * Without a GPU this prints SKIPPED (no GPU); its twin test_algo_cache_cuda_emu runs the same
 * commands with mammo_emu (tests/cuemu). */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "runtime/backend.h"
#include "tests/harness.h"
#include "tests/run_mammo.h"

#define BENCH                                                                                 \
    "bench --net resnet50 --width-div 16 --top '[32-32-128]x1' --input 64x48 --batch 2 "      \
    "--device cuda --steps 1 --warmup 0 --lr 0"

static char out[1 << 16];

static const char *cache_dir(void)
{
    static char buf[600];
    snprintf(buf, sizeof buf, "%s/algos", mm_test_tmpdir());
    return buf;
}

/* What one bench run said: its result line, the kept choices it used and searched. */
typedef struct run_result {
    int status, hits, searched;
    double loss;
    char convs[128]; /* the word convs=legacy:L,nchw:N,graph:G,gemm:M */
} run_result;

static run_result bench(const char *extra)
{
    char args[2048];
    snprintf(args, sizeof args, BENCH " %s", extra);
    run_result r = {run_mammo(out, sizeof out, args), -1, -1, NAN, ""};
    const char *line = strstr(out, "mammo net=");
    if (r.status != 0 || !line) {
        fprintf(stderr, "    `mammo %s` exited %d:\n%s\n", args, r.status, out);
        return r;
    }
    r.loss = mm_test_field(line, "loss");
    const char *c = strstr(line, " convs="), *k = strstr(line, " algo_cache=");
    if (c) sscanf(c + 1, "%127[^ ]", r.convs);
    if (k && strncmp(k, " algo_cache=off", 15) == 0) r.hits = r.searched = 0;
    else if (k) sscanf(k, " algo_cache=hits:%d,searched:%d", &r.hits, &r.searched);
    return r;
}

/* A run in `precision` keeping its choices in the test's folder. */
static run_result bench_kept_in(const char *precision, const char *extra)
{
    char args[1024];
    snprintf(args, sizeof args, "--precision %s --algo-cache '%s' %s", precision, cache_dir(),
             extra);
    return bench(args);
}

static run_result bench_kept(const char *extra) { return bench_kept_in("tf32", extra); }

/* The path of the one file in the cache folder ("" when there is none). */
static const char *cache_file(void)
{
    static char buf[1200];
    buf[0] = '\0';
    DIR *d = opendir(cache_dir());
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strncmp(e->d_name, "conv-algos-", 11) == 0)
            snprintf(buf, sizeof buf, "%s/%s", cache_dir(), e->d_name);
    if (d) closedir(d);
    return buf;
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *s = calloc(1, 1 << 20);
    if (f) {
        size_t n = fread(s, 1, (1 << 20) - 1, f);
        s[n] = '\0';
        fclose(f);
    }
    return s;
}

static void write_all(const char *path, const char *s)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(s, f);
        fclose(f);
    }
}

/* The same algorithms give the same loss: to the bit emulated, and on a card within what the
 * tf32 forward's summation order could move if cuDNN split its work differently. */
static void check_same_loss(double a, double b)
{
    double tol = mm_cuda_emulated() ? 0 : 1e-5;
    CHECK_MSG(fabs(a - b) <= tol * fabs(a), "loss %.9g, then %.9g", a, b);
}

MM_TEST(algo_cache_second_run_searches_nothing)
{
    if (!mm_cuda_available(NULL, 0)) MM_SKIP("no GPU");
    run_result a = bench_kept("");
    CHECK_EQ_INT(a.status, 0);
    CHECK_EQ_INT(a.hits, 0);
    CHECK_MSG(a.searched >= 20, "searched %d shapes", a.searched);
    char *text = read_all(cache_file());
    CHECK_MSG(strncmp(text, "mammo conv-algos ", 17) == 0 && strstr(text, "\ncard ") &&
                  strstr(text, "\ncard ") < strchr(text, '\n') + 2,
              "%s: %.200s", cache_file(), text);
    free(text);
    run_result b = bench_kept("");
    CHECK_EQ_INT(b.status, 0);
    CHECK_EQ_INT(b.hits, a.searched);
    CHECK_EQ_INT(b.searched, 0);
    CHECK_MSG(strcmp(a.convs, b.convs) == 0, "%s, then %s", a.convs, b.convs);
    check_same_loss(a.loss, b.loss);
    /* another search setting (no graph plans: legacy algorithms and GEMMs) takes none of them,
     * and the file keeps both */
    setenv("MM_CUDNN_GRAPH", "0", 1);
    run_result c = bench_kept("");
    run_result c2 = bench_kept("");
    unsetenv("MM_CUDNN_GRAPH");
    CHECK_EQ_INT(c.status, 0);
    CHECK_EQ_INT(c.hits, 0);
    CHECK(c.searched > 0);
    CHECK_MSG(strstr(c.convs, ",graph:0,") != NULL, "%s", c.convs);
    CHECK_EQ_INT(c2.hits, c.searched);
    CHECK_EQ_INT(c2.searched, 0);
    CHECK_MSG(strcmp(c.convs, c2.convs) == 0, "%s, then %s", c.convs, c2.convs);
    check_same_loss(c.loss, c2.loss);
    run_result d = bench_kept("");
    CHECK_EQ_INT(d.hits, a.searched);
    CHECK_EQ_INT(d.searched, 0);
    /* fp32 on NCHW copies wherever they apply */
    setenv("MM_CONV_NCHW", "1", 1);
    run_result n1 = bench_kept_in("fp32", "");
    run_result n2 = bench_kept_in("fp32", "");
    unsetenv("MM_CONV_NCHW");
    CHECK_MSG(strstr(n1.convs, ",nchw:0,") == NULL, "%s", n1.convs);
    CHECK_EQ_INT(n2.hits, n1.searched);
    CHECK_EQ_INT(n2.searched, 0);
    CHECK_MSG(strcmp(n1.convs, n2.convs) == 0, "%s, then %s", n1.convs, n2.convs);
    check_same_loss(n1.loss, n2.loss);
    /* the automatic folder: $MM_ALGO_CACHE (the harness sets it to off) */
    run_result e = bench("--precision tf32");
    CHECK_EQ_INT(e.status, 0);
    CHECK_MSG(strstr(out, "algo_cache=off") != NULL, "%s", out);
    setenv("MM_ALGO_CACHE", cache_dir(), 1);
    run_result f = bench("--precision tf32");
    setenv("MM_ALGO_CACHE", "off", 1);
    CHECK_EQ_INT(f.hits, a.searched);
}

/* The start of word i (from 0) of a line of space-separated words; NULL past its end. */
static const char *word(const char *line, int i)
{
    const char *p = line;
    for (; i > 0 && p; i--) {
        p = strchr(p, ' ');
        if (p) p++;
    }
    return p;
}

/* The words of a record (from 0): the key (18 numbers), the setup (6), then ok, kind, algo,
 * math, engine, knobs, ws_bytes, ms, pass_ms, wino_m, wino_tiles. Kinds: 2 a graph plan, 4
 * Winograd. */
enum { W_KIND = 25, W_ENGINE = 28, W_WINO_TILES = 34 };

/* Replaces word `at` of every record of kind `kind` in the file by `text`; returns how many
 * records it changed. */
static int replace_word(const char *path, int kind, int at, const char *text)
{
    char *all = read_all(path), *mended = calloc(1, strlen(all) + (1 << 16)), *save = NULL;
    int changed = 0;
    for (char *line = strtok_r(all, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        const char *k = word(line, W_KIND), *w = word(line, at), *rest = word(line, at + 1);
        if (line[0] != '#' && rest && atoi(k) == kind) {
            strncat(mended, line, (size_t)(w - line));
            strcat(mended, text);
            strcat(mended, " ");
            strcat(mended, rest);
            changed++;
        } else {
            strcat(mended, line);
        }
        strcat(mended, "\n");
    }
    write_all(path, mended);
    free(all);
    free(mended);
    return changed;
}

MM_TEST(algo_cache_mends_what_it_cannot_use)
{
    if (!mm_cuda_available(NULL, 0)) MM_SKIP("no GPU");
    run_result a = bench_kept("");
    CHECK_EQ_INT(a.status, 0);
    const char *file = cache_file();
    char *good = read_all(file);

    /* lines that do not read: left out with a warning, the rest used, the file rewritten */
    char *bad = calloc(1, strlen(good) + 64);
    strcpy(bad, good);
    strcat(bad, "1 2 3 not a choice\n");
    write_all(file, bad);
    run_result b = bench_kept("");
    CHECK_EQ_INT(b.status, 0);
    CHECK_MSG(strstr(out, "mammo: warning: ") && strstr(out, ": 1 lines are not convolution "
                                                               "choices"),
              "%s", out);
    CHECK_EQ_INT(b.hits, a.searched);
    char *now = read_all(file);
    CHECK_MSG(strstr(now, "not a choice") == NULL, "the bad line is still in %s", file);
    free(now);
    run_result c = bench_kept("");
    CHECK_MSG(strstr(out, "warning") == NULL, "%s", out);
    CHECK_EQ_INT(c.hits, a.searched);

    /* a file written for another card or cuDNN (its second line): searched again, replaced */
    char *other = calloc(1, strlen(good) + 128);
    const char *line2 = strchr(good, '\n') + 1;
    sprintf(other, "%.*scard Other-GPU sm 80 sms 1 cudnn 1 cublas 1.0.0 cudart 1\n%s",
            (int)(line2 - good), good, strchr(line2, '\n') + 1);
    write_all(file, other);
    run_result d = bench_kept("");
    CHECK_MSG(strstr(out, "was not written by this mammo for this card") != NULL, "%s", out);
    CHECK_EQ_INT(d.hits, 0);
    CHECK_EQ_INT(d.searched, a.searched);
    now = read_all(file);
    CHECK_MSG(strstr(now, "Other-GPU") == NULL, "%s was not replaced", file);
    free(now);

    /* graph plans of an engine cuDNN does not offer: those shapes are searched again */
    int forgotten = replace_word(file, 2, W_ENGINE, "987654");
    CHECK_MSG(forgotten > 0, "no graph plan among the kept choices");
    run_result e = bench_kept("");
    CHECK_EQ_INT(e.status, 0);
    CHECK_EQ_INT(e.searched, forgotten);
    CHECK_EQ_INT(e.hits, a.searched - forgotten);
    CHECK_MSG(strstr(out, "warning") == NULL, "%s", out);
    free(good);
    free(bad);
    free(other);
}

/* The Winograd count of a convs= word; -1 when it has none. */
static int wino_of(const char *convs)
{
    const char *p = strstr(convs, ",wino:");
    return p ? atoi(p + 6) : -1;
}

/* Winograd choices (MM_CONV_WINOGRAD=1: every 3x3 stride-1 forward convolution and filter
 * gradient in fp32) are kept and taken again with their chunk tiles; a record whose tiles do not
 * give its scratch (a file edited, or damaged) is searched again, not run in a scratch its chunks
 * would overflow. */
MM_TEST(algo_cache_keeps_winograd)
{
    if (!mm_cuda_available(NULL, 0)) MM_SKIP("no GPU");
    setenv("MM_CONV_WINOGRAD", "1", 1);
    run_result a = bench_kept_in("fp32", "");
    run_result b = bench_kept_in("fp32", "");
    CHECK_EQ_INT(a.status, 0);
    CHECK_MSG(wino_of(a.convs) > 0, "%s", a.convs);
    CHECK_EQ_INT(b.hits, a.searched);
    CHECK_EQ_INT(b.searched, 0);
    CHECK_MSG(strcmp(a.convs, b.convs) == 0, "%s, then %s", a.convs, b.convs);
    check_same_loss(a.loss, b.loss);
    int mistiled = replace_word(cache_file(), 4, W_WINO_TILES, "999999");
    run_result c = bench_kept_in("fp32", "");
    unsetenv("MM_CONV_WINOGRAD");
    CHECK_EQ_INT(mistiled, wino_of(a.convs));
    CHECK_EQ_INT(c.status, 0);
    CHECK_EQ_INT(c.searched, mistiled);
    CHECK_EQ_INT(c.hits, a.searched - mistiled);
    CHECK_MSG(strcmp(a.convs, c.convs) == 0, "%s, then %s", a.convs, c.convs);
    check_same_loss(a.loss, c.loss);
}

MM_TEST(algo_cache_flags)
{
    if (!mm_cuda_available(NULL, 0)) MM_SKIP("no GPU");
    /* deterministic mode times nothing and keeps nothing */
    run_result a = bench_kept("--deterministic");
    CHECK_EQ_INT(a.status, 0);
    CHECK_MSG(strstr(out, "algo_cache=off") != NULL, "%s", out);
    CHECK_MSG(strstr(out, " conv_searched_ms=-1.000") != NULL, "%s", out); /* nothing timed */
    CHECK_MSG(cache_file()[0] == '\0', "%s written in deterministic mode", cache_file());
    run_result b = bench("--precision tf32 --algo-cache off");
    CHECK_EQ_INT(b.status, 0);
    CHECK_MSG(strstr(out, "algo_cache=off") != NULL, "%s", out);
    /* a file where the folder should be, an empty name: one line, exit status 1 */
    char file[700], args[1024];
    snprintf(file, sizeof file, "%s/a-file", mm_test_tmpdir());
    write_all(file, "x");
    snprintf(args, sizeof args, BENCH " --algo-cache '%s'", file);
    CHECK_EQ_INT(run_mammo(out, sizeof out, args), 1);
    const char *nl = strchr(out, '\n');
    CHECK_MSG(strncmp(out, "mammo: --algo-cache: ", 21) == 0 && strstr(out, "not a folder") &&
                  nl && !nl[1],
              "%s", out);
    CHECK_EQ_INT(run_mammo(out, sizeof out, BENCH " --algo-cache ''"), 1);
    CHECK_MSG(strncmp(out, "mammo: --algo-cache '': give a folder", 37) == 0, "%s", out);
    /* a file that cannot be written (a folder in its place): the run goes on, with a warning */
    run_result c = bench_kept("");
    CHECK_EQ_INT(c.status, 0);
    char kept[1200];
    snprintf(kept, sizeof kept, "%s", cache_file());
    CHECK(remove(kept) == 0 && mkdir(kept, 0755) == 0);
    run_result d = bench_kept("");
    CHECK_EQ_INT(d.status, 0);
    CHECK_EQ_INT(d.searched, c.searched);
    const char *warned = "mammo: warning: convolution choices not kept: ";
    const char *w = strstr(out, warned);
    CHECK_MSG(w && !strstr(w + strlen(warned), warned) && !strstr(out, "was not written"), "%s",
              out);
}
