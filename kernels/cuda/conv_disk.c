/* Convolution algorithm choices kept on disk between runs (conv_disk.h). */
#include "conv_disk.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../runtime/atomic_file.h"
#include "cuda_check.h"

/* The file's first line: its format and the search's version. Bump the number whenever
 * conv_search.c would choose differently for the same key (its candidates, MM_CONV_GRAPH_PLANS,
 * the workspace slack...), so that choices kept by an older search are searched again. 2: ten
 * graph plans, each configuration once, the knobs recorded. 3: a limit under 16 MiB is given its
 * workspace (before, such a search timed only algorithms that need none). 4: the pass time of
 * forward+bias+relu. 5: Winograd: its mode in the key, its chunk tiles. */
#define MM_CONV_DISK_MAGIC "mammo conv-algos 5"

/* How an entry runs (the kinds of conv_entry.h). */
enum { MM_KIND_LEGACY, MM_KIND_NCHW, MM_KIND_GRAPH, MM_KIND_GEMM, MM_KIND_WINO, MM_KIND_COUNT };

typedef struct mm_conv_record {
    mm_conv_key key;
    int setup[MM_CONV_SETUP_N];
    int ok, kind, algo, math;
    long long engine; /* graph: cuDNN's global engine index */
    unsigned long long knobs; /* graph: its configuration's knob choices (conv_graph.h) */
    size_t ws_bytes;
    float time_ms;
    float pass_ms; /* forward+bias+relu: the pass it saves (conv_entry.h) */
    int wino_m, wino_tiles; /* Winograd: F(m x m, 3x3), the tiles of a chunk */
    int n_cands;
    struct mm_conv_cand cands[MM_CONV_CANDS];
} mm_conv_record;

struct mm_conv_disk {
    char *path;
    char ident[256]; /* the header's second line: card and library versions */
    mm_conv_record *recs;
    int n, cap;
    bool dirty;    /* recorded something since the last save */
    bool unwritable; /* a save failed (warned once): no more tries this run */
    mm_conv_disk_counts counts;
};

/* The key's fields in the order a line lists them. */
static const size_t mm_key_fields[] = {
    offsetof(mm_conv_key, dir),      offsetof(mm_conv_key, dtype),
    offsetof(mm_conv_key, precision), offsetof(mm_conv_key, beta),
    offsetof(mm_conv_key, ws_cap_kib), offsetof(mm_conv_key, align),
    offsetof(mm_conv_key, wino),
    offsetof(mm_conv_key, n),        offsetof(mm_conv_key, h),
    offsetof(mm_conv_key, w),        offsetof(mm_conv_key, c),
    offsetof(mm_conv_key, k),        offsetof(mm_conv_key, r),
    offsetof(mm_conv_key, s),        offsetof(mm_conv_key, stride_h),
    offsetof(mm_conv_key, stride_w), offsetof(mm_conv_key, pad_h),
    offsetof(mm_conv_key, pad_w),
};
#define MM_KEY_N ((int)(sizeof mm_key_fields / sizeof mm_key_fields[0]))
_Static_assert(sizeof(mm_conv_key) == sizeof mm_key_fields / sizeof(size_t) * sizeof(int),
               "every field of mm_conv_key is written to the file");

static int *mm_key_field(mm_conv_key *k, int i) { return (int *)((char *)k + mm_key_fields[i]); }

/* ---- the card and the file ---- */

/* The card's name as one word of letters, digits and '-'. */
static void mm_card_word(char *out, size_t n, const char *name)
{
    size_t j = 0;
    for (const char *p = name; *p && j + 1 < n; p++) {
        char ch = *p;
        bool word = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        if (word) out[j++] = ch;
        else if (j > 0 && out[j - 1] != '-') out[j++] = '-';
    }
    while (j > 0 && out[j - 1] == '-') j--;
    if (j == 0 && n > 4) j = (size_t)snprintf(out, n, "gpu");
    out[j] = '\0';
}

/* dk->ident and the file name of the device's cache in dir. */
static void mm_conv_disk_identify(mm_conv_disk *dk, const char *dir, int device)
{
    struct cudaDeviceProp prop;
    memset(&prop, 0, sizeof prop);
    if (cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
        cudaGetLastError();
        snprintf(prop.name, sizeof prop.name, "gpu%d", device);
    }
    char card[128];
    mm_card_word(card, sizeof card, prop.name);
    int rt = 0, blas[3] = {0, 0, 0};
    cudaRuntimeGetVersion(&rt);
    cublasGetProperty(MAJOR_VERSION, &blas[0]);
    cublasGetProperty(MINOR_VERSION, &blas[1]);
    cublasGetProperty(PATCH_LEVEL, &blas[2]);
    cudaGetLastError();
    snprintf(dk->ident, sizeof dk->ident,
             "card %s sm %d%d sms %d cudnn %zu cublas %d.%d.%d cudart %d", card, prop.major,
             prop.minor, prop.multiProcessorCount, (size_t)cudnnGetVersion(), blas[0], blas[1],
             blas[2], rt);
    /* the SM count names the file too: the slices of a partitioned (MIG) card share its name */
    size_t n = strlen(dir) + strlen(card) + 64;
    dk->path = mm_xmalloc(n);
    snprintf(dk->path, n, "%s/conv-algos-%s-sm%d%d-%d.txt", dir, card, prop.major, prop.minor,
             prop.multiProcessorCount);
}

static mm_conv_record *mm_conv_disk_find(mm_conv_disk *dk, const mm_conv_key *k,
                                         const int *setup)
{
    for (int i = 0; i < dk->n; i++)
        if (memcmp(&dk->recs[i].key, k, sizeof *k) == 0 &&
            memcmp(dk->recs[i].setup, setup, sizeof dk->recs[i].setup) == 0)
            return &dk->recs[i];
    return NULL;
}

/* Adds r, or replaces the record of the same key and setup. */
static void mm_conv_disk_put(mm_conv_disk *dk, const mm_conv_record *r)
{
    mm_conv_record *old = mm_conv_disk_find(dk, &r->key, r->setup);
    if (old) {
        *old = *r;
        return;
    }
    if (dk->n == dk->cap) {
        dk->cap = dk->cap ? 2 * dk->cap : 256;
        dk->recs = mm_xrealloc(dk->recs, (size_t)dk->cap * sizeof *dk->recs);
    }
    dk->recs[dk->n++] = *r;
}

/* ---- lines ---- */

static bool mm_next_ll(char **p, long long *v)
{
    char *end;
    errno = 0;
    *v = strtoll(*p, &end, 10);
    if (end == *p || errno) return false;
    *p = end;
    return true;
}

static bool mm_next_int(char **p, int *v, long long lo, long long hi)
{
    long long x;
    if (!mm_next_ll(p, &x) || x < lo || x > hi) return false;
    *v = (int)x;
    return true;
}

static bool mm_next_ull(char **p, unsigned long long *v)
{
    char *end;
    errno = 0;
    *v = strtoull(*p, &end, 10);
    if (end == *p || errno) return false;
    *p = end;
    return true;
}

static bool mm_next_size(char **p, size_t *v)
{
    long long x;
    if (!mm_next_ll(p, &x) || x < 0) return false;
    *v = (size_t)x;
    return true;
}

static bool mm_next_float(char **p, float *v)
{
    char *end;
    *v = strtof(*p, &end);
    if (end == *p) return false;
    *p = end;
    return true;
}

/* One record from `line`; false when it does not read as one. */
static bool mm_parse_record(char *line, mm_conv_record *r)
{
    memset(r, 0, sizeof *r);
    char *p = line;
    for (int i = 0; i < MM_KEY_N; i++)
        if (!mm_next_int(&p, mm_key_field(&r->key, i), -1, INT_MAX)) return false;
    if (r->key.dir < MM_CONV_FWD || r->key.dir > MM_CONV_FWD_BIAS_RELU) return false;
    for (int i = 0; i < MM_CONV_SETUP_N; i++)
        if (!mm_next_int(&p, &r->setup[i], -1, INT_MAX)) return false;
    if (!mm_next_int(&p, &r->ok, 0, 1) || !mm_next_int(&p, &r->kind, 0, MM_KIND_COUNT - 1) ||
        !mm_next_int(&p, &r->algo, 0, 63) || !mm_next_int(&p, &r->math, 0, 63) ||
        !mm_next_ll(&p, &r->engine) || !mm_next_ull(&p, &r->knobs) ||
        !mm_next_size(&p, &r->ws_bytes) || !mm_next_float(&p, &r->time_ms) ||
        !mm_next_float(&p, &r->pass_ms) || !mm_next_int(&p, &r->wino_m, 0, 4) ||
        !mm_next_int(&p, &r->wino_tiles, 0, INT_MAX) ||
        (r->kind == MM_KIND_WINO && ((r->wino_m != 2 && r->wino_m != 4) || r->wino_tiles < 1)) ||
        !mm_next_int(&p, &r->n_cands, 0, MM_CONV_CANDS))
        return false;
    for (int i = 0; i < r->n_cands; i++)
        if (!mm_next_float(&p, &r->cands[i].ms) || !mm_next_size(&p, &r->cands[i].scratch))
            return false;
    while (*p == ' ' || *p == '\n' || *p == '\r') p++;
    return *p == '\0';
}

static void mm_write_record(FILE *f, const mm_conv_record *r)
{
    mm_conv_key k = r->key;
    for (int i = 0; i < MM_KEY_N; i++) fprintf(f, "%d ", *mm_key_field(&k, i));
    for (int i = 0; i < MM_CONV_SETUP_N; i++) fprintf(f, "%d ", r->setup[i]);
    fprintf(f, "%d %d %d %d %lld %llu %zu %.9g %.9g %d %d %d", r->ok, r->kind, r->algo,
            r->math, r->engine, r->knobs, r->ws_bytes, (double)r->time_ms, (double)r->pass_ms,
            r->wino_m, r->wino_tiles, r->n_cands);
    for (int i = 0; i < r->n_cands; i++)
        fprintf(f, " %.9g %zu", (double)r->cands[i].ms, r->cands[i].scratch);
    fputc('\n', f);
}

/* Adds the records of the file to dk (those dk has keep theirs, unless `replace`). Returns the
 * lines left out; *foreign when the file was written for other versions (nothing read). A file
 * with nothing to read (empty, or not a file) counts as none. */
static int mm_conv_disk_read(mm_conv_disk *dk, bool replace, bool *foreign)
{
    *foreign = false;
    FILE *f = fopen(dk->path, "r");
    if (!f) return 0;
    char line[4096];
    int bad = 0;
    if (!fgets(line, sizeof line, f)) {
        fclose(f);
        return 0;
    }
    bool header = strcmp(line, MM_CONV_DISK_MAGIC "\n") == 0;
    if (header && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        header = strcmp(line, dk->ident) == 0;
    } else {
        header = false;
    }
    if (!header) {
        fclose(f);
        *foreign = true;
        return 0;
    }
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        mm_conv_record r;
        if (!mm_parse_record(line, &r)) {
            bad++;
            continue;
        }
        if (replace || !mm_conv_disk_find(dk, &r.key, r.setup)) mm_conv_disk_put(dk, &r);
    }
    fclose(f);
    return bad;
}

mm_conv_disk *mm_conv_disk_open(const char *dir, int device)
{
    if (!dir || !*dir) return NULL;
    mm_conv_disk *dk = mm_xcalloc(1, sizeof *dk);
    mm_conv_disk_identify(dk, dir, device);
    bool foreign;
    int bad = mm_conv_disk_read(dk, true, &foreign);
    if (foreign)
        fprintf(stderr,
                "mammo: warning: %s was not written by this mammo for this card, cuDNN and "
                "cuBLAS; its convolution choices are searched again and the file replaced\n",
                dk->path);
    else if (bad)
        fprintf(stderr,
                "mammo: warning: %s: %d lines are not convolution choices; they are left out "
                "(the file is rewritten at the next save)\n",
                dk->path, bad);
    dk->dirty = foreign || bad;
    return dk;
}

void mm_conv_disk_save(mm_conv_disk *dk)
{
    if (!dk || !dk->dirty || dk->unwritable) return;
    bool foreign;
    mm_conv_disk_read(dk, false, &foreign); /* what other processes saved meanwhile */
    mm_atomic_file af;
    if (mm_atomic_file_open(&af, dk->path) != MM_OK) {
        fprintf(stderr, "mammo: warning: convolution choices not kept: %s\n", mm_last_error());
        mm_clear_error();
        dk->unwritable = true;
        return;
    }
    fprintf(af.file, "%s\n%s\n", MM_CONV_DISK_MAGIC, dk->ident);
    fprintf(af.file, "# key: dir dtype precision beta ws_cap_kib align wino n h w c k r s "
                     "stride_h stride_w pad_h pad_w; setup: ws_limit_kib graph nchw gemm rtc "
                     "wino_tiles; choice: ok kind(0 legacy 1 nchw 2 graph 3 gemm 4 winograd) "
                     "algo math engine knobs ws_bytes ms pass_ms wino_m wino_tiles; "
                     "candidates: n, then ms scratch each\n");
    for (int i = 0; i < dk->n; i++) mm_write_record(af.file, &dk->recs[i]);
    if (mm_atomic_file_commit(&af) != MM_OK) {
        fprintf(stderr, "mammo: warning: convolution choices not kept: %s\n", mm_last_error());
        mm_clear_error();
        dk->unwritable = true;
    }
    dk->dirty = false;
}

void mm_conv_disk_close(mm_conv_disk *dk)
{
    if (!dk) return;
    mm_conv_disk_save(dk);
    free(dk->recs);
    free(dk->path);
    free(dk);
}

mm_conv_disk_counts mm_conv_disk_counts_of(const mm_conv_disk *dk)
{
    mm_conv_disk_counts none = {0, 0};
    return dk ? dk->counts : none;
}

/* ---- entries ---- */

void mm_conv_disk_record(mm_conv_disk *dk, const mm_cuda_ctx *ctx, const mm_conv_entry *e)
{
    if (!dk) return;
    mm_conv_record r;
    memset(&r, 0, sizeof r);
    r.key = e->key;
    mm_conv_search_setup(ctx, r.setup);
    r.ok = e->ok;
    r.kind = e->gemm ? MM_KIND_GEMM : e->wino_tiles ? MM_KIND_WINO : e->use_graph ? MM_KIND_GRAPH
             : e->nchw ? MM_KIND_NCHW : MM_KIND_LEGACY;
    r.wino_m = e->wino_m;
    r.wino_tiles = e->wino_tiles;
    r.algo = e->algo;
    r.math = e->math;
    r.engine = e->use_graph ? (long long)e->gplan.engine : -1;
    r.knobs = e->use_graph ? e->gplan.knobs : 0;
    r.ws_bytes = e->ws_bytes;
    r.time_ms = e->time_ms;
    r.pass_ms = e->pass_ms;
    r.n_cands = e->n_cands;
    memcpy(r.cands, e->cands, sizeof r.cands);
    mm_conv_disk_put(dk, &r);
    dk->counts.searched++;
    dk->dirty = true;
}

/* The plan of r's engine and knob choices, with r->ws_bytes of workspace, among those cuDNN
 * offers now. */
static bool mm_conv_disk_plan(mm_cuda_ctx *ctx, mm_conv_entry *e, const mm_conv_dims *d,
                              mm_dtype t, size_t limit, const mm_conv_record *r)
{
    mm_conv_graph g;
    if (mm_conv_graph_init(&g, ctx->cudnn, e->key.dir, d, t, e->key.beta ? 1.0f : 0.0f,
                           e->key.align) != CUDNN_STATUS_SUCCESS)
        return false;
    mm_conv_graph_want want = {.tensor_core = ctx->precision != MM_PRECISION_FP32,
                               .rtc = r->setup[MM_CONV_SETUP_RTC] != 0,
                               .ws_limit = limit,
                               .only_engine = true,
                               .engine = r->engine};
    mm_conv_plan plans[8];
    int n = mm_conv_graph_plans(ctx->cudnn, &g, &want, plans, 8), pick = -1;
    for (int i = 0; i < n; i++) {
        if (pick < 0 && plans[i].knobs == r->knobs && plans[i].ws_bytes == r->ws_bytes) pick = i;
        else mm_conv_plan_free(&plans[i]);
    }
    if (pick < 0) {
        mm_conv_graph_free(&g);
        return false;
    }
    e->use_graph = 1;
    e->graph = g;
    e->gplan = plans[pick];
    return true;
}

bool mm_conv_disk_restore(mm_conv_disk *dk, mm_cuda_ctx *ctx, mm_conv_entry *e,
                          const mm_conv_dims *d, mm_dtype t, size_t limit)
{
    if (!dk) return false;
    int setup[MM_CONV_SETUP_N];
    mm_conv_search_setup(ctx, setup);
    const mm_conv_record *r = mm_conv_disk_find(dk, &e->key, setup);
    if (!r) return false;
    if (r->ok && r->kind == MM_KIND_WINO) {
        /* the scratch the step will give it must be what its chunks write */
        bool dir_ok = e->key.dir == MM_CONV_FWD || e->key.dir == MM_CONV_BWD_FILTER;
        if (!dir_ok || !mm_conv_wino_applies(d, t, ctx->precision, r->wino_m) ||
            r->ws_bytes != mm_conv_wino_scratch(d, r->wino_m, r->wino_tiles) ||
            r->ws_bytes > limit)
            return false;
    } else if (r->ok && r->kind == MM_KIND_GRAPH) {
        if (!mm_conv_disk_plan(ctx, e, d, t, limit, r)) return false;
    } else if (r->ok && r->kind == MM_KIND_NCHW) {
        mm_conv_descs nchw;
        if (mm_conv_descs_init(&nchw, d, t, ctx->precision, true) != CUDNN_STATUS_SUCCESS)
            return false;
        mm_conv_descs_free(&e->d);
        e->d = nchw;
        e->nchw = 1;
    }
    e->ok = r->ok;
    e->gemm = r->ok && r->kind == MM_KIND_GEMM;
    e->wino_m = r->ok && r->kind == MM_KIND_WINO ? r->wino_m : 0;
    e->wino_tiles = r->ok && r->kind == MM_KIND_WINO ? r->wino_tiles : 0;
    e->algo = r->algo;
    e->math = r->math;
    if (r->ok && (r->kind == MM_KIND_LEGACY || r->kind == MM_KIND_NCHW) &&
        ctx->precision != MM_PRECISION_FP32)
        MM_CUDNN_CHECK(cudnnSetConvolutionMathType(e->d.conv, (cudnnMathType_t)r->math));
    e->ws_bytes = r->ws_bytes;
    e->time_ms = r->time_ms;
    e->pass_ms = r->pass_ms;
    e->n_cands = r->n_cands;
    memcpy(e->cands, r->cands, sizeof e->cands);
    dk->counts.hits++;
    return true;
}
