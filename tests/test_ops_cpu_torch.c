/* CPU kernels against PyTorch: values made by tests/fixtures/make_op_fixtures.py (format
 * documented there; tensors already in mammo's NHWC / OHWI layouts) and committed under
 * tests/fixtures/ops/. Covers the semantics most easily got subtly wrong: convolution padding
 * and strides, batch norm's running statistics, max pooling's padding and ties, adaptive pooling
 * windows, and the weighted cross-entropy. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_kernels.h"
#include "runtime/error.h"
#include "tests/grad_check.h"
#include "tests/harness.h"

#define FX_MAX 24

typedef struct fixture {
    int count;
    char name[FX_MAX][32];
    int ndim[FX_MAX];
    int64_t dims[FX_MAX][4], size[FX_MAX];
    float *data[FX_MAX];
} fixture;

static int read_u32(FILE *f, uint32_t *v)
{
    unsigned char b[4];
    if (fread(b, 1, 4, f) != 4) return 0;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return 1;
}

/* Loads tests/fixtures/ops/<name>.bin; returns 0 (with a failed check) when it is unreadable. */
static int fixture_load(fixture *fx, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/tests/fixtures/ops/%s.bin", MM_SOURCE_DIR, name);
    memset(fx, 0, sizeof *fx);
    FILE *f = fopen(path, "rb");
    CHECK_MSG(f != NULL, "cannot open %s (regenerate with tests/fixtures/make_op_fixtures.py)",
              path);
    if (!f) return 0;
    char magic[4];
    uint32_t version = 0, count = 0;
    int ok = fread(magic, 1, 4, f) == 4 && memcmp(magic, "MMFX", 4) == 0 &&
             read_u32(f, &version) && version == 1 && read_u32(f, &count) && count <= FX_MAX;
    for (uint32_t t = 0; ok && t < count; t++) {
        uint32_t len = 0, nd = 0, dim;
        ok = read_u32(f, &len) && len < 32 && fread(fx->name[t], 1, len, f) == len &&
             read_u32(f, &nd) && nd <= 4;
        fx->size[t] = 1;
        for (uint32_t i = 0; ok && i < nd; i++) {
            ok = read_u32(f, &dim);
            fx->dims[t][i] = dim;
            fx->size[t] *= dim;
        }
        if (!ok) break;
        fx->ndim[t] = (int)nd;
        fx->data[t] = tbuf(fx->size[t]);
        /* The files are little-endian like every machine we build for. */
        ok = fread(fx->data[t], sizeof(float), (size_t)fx->size[t], f) == (size_t)fx->size[t];
        fx->count = (int)t + 1;
    }
    fclose(f);
    CHECK_MSG(ok, "%s: malformed fixture", path);
    return ok;
}

static void fixture_free(fixture *fx)
{
    for (int t = 0; t < fx->count; t++) free(fx->data[t]);
}

/* The tensor `name` (aborts the test run when missing: the script and the test disagree). */
static float *fx_get(const fixture *fx, const char *name, int64_t *size)
{
    for (int t = 0; t < fx->count; t++)
        if (strcmp(fx->name[t], name) == 0) {
            if (size) *size = fx->size[t];
            return fx->data[t];
        }
    mm_die_at(__FILE__, __LINE__, "fixture tensor missing", name,
              "regenerate with tests/fixtures/make_op_fixtures.py");
}

static int fx_dim(const fixture *fx, const char *name, int i)
{
    for (int t = 0; t < fx->count; t++)
        if (strcmp(fx->name[t], name) == 0) return (int)fx->dims[t][i];
    return -1;
}

MM_TEST(torch_conv3x3_stride2_pad1)
{
    fixture fx;
    if (!fixture_load(&fx, "conv3x3s2p1")) return;
    mm_conv_dims d = {.n = fx_dim(&fx, "x", 0), .h = fx_dim(&fx, "x", 1),
                      .w = fx_dim(&fx, "x", 2), .c = fx_dim(&fx, "x", 3),
                      .k = fx_dim(&fx, "w", 0), .r = 3, .s = 3, .stride_h = 2, .stride_w = 2,
                      .pad_h = 1, .pad_w = 1};
    MM_ASSERT(mm_conv_dims_finish(&d));
    CHECK_EQ_INT(d.oh, fx_dim(&fx, "y", 1));
    CHECK_EQ_INT(d.ow, fx_dim(&fx, "y", 2));
    int64_t nx, nw, ny;
    float *x = fx_get(&fx, "x", &nx), *w = fx_get(&fx, "w", &nw), *b = fx_get(&fx, "b", NULL);
    float *want_y = fx_get(&fx, "y", &ny), *dy = fx_get(&fx, "dy", NULL);
    void *ws = mm_xmalloc(mm_cpu_conv2d_workspace(&d) + 1);
    void *ws_dx = mm_xmalloc(mm_cpu_conv2d_backward_data_workspace(&d) + 1);
    float *y = tbuf(ny), *dx = tbuf(nx), *dw = tbuf(nw), *db = tbuf(d.k);
    tfill(dw, nw, 0), tfill(db, d.k, 0);
    mm_cpu_conv2d_forward(y, x, w, b, &d, ws);
    mm_cpu_conv2d_backward_data(dx, dy, w, &d, ws_dx);
    mm_cpu_conv2d_backward_filter(dw, dy, x, &d, ws);
    mm_cpu_conv2d_backward_bias(db, dy, &d);
    CHECK_ARRAYS("y", y, want_y, ny, 1e-5, 1e-5);
    CHECK_ARRAYS("dx", dx, fx_get(&fx, "dx", NULL), nx, 1e-5, 1e-5);
    CHECK_ARRAYS("dw", dw, fx_get(&fx, "dw", NULL), nw, 1e-4, 1e-5);
    CHECK_ARRAYS("db", db, fx_get(&fx, "db", NULL), d.k, 1e-4, 1e-5);
    free(ws), free(ws_dx), free(y), free(dx), free(dw), free(db);
    fixture_free(&fx);
}

MM_TEST(torch_batchnorm_train_running_stats_eval)
{
    fixture fx;
    if (!fixture_load(&fx, "batchnorm")) return;
    int64_t mc;
    float *x = fx_get(&fx, "x", &mc);
    int c = fx_dim(&fx, "x", 3);
    int64_t m = mc / c;
    float eps = fx_get(&fx, "eps", NULL)[0], mom = fx_get(&fx, "momentum", NULL)[0];
    float *gamma = fx_get(&fx, "gamma", NULL), *beta = fx_get(&fx, "beta", NULL);
    float *rm = tcopy(fx_get(&fx, "running_mean0", NULL), c);
    float *rv = tcopy(fx_get(&fx, "running_var0", NULL), c);
    float *y = tbuf(mc), *smean = tbuf(c), *sinv = tbuf(c), *dx = tbuf(mc), *dg = tbuf(c),
          *dbeta = tbuf(c);
    mm_cpu_batchnorm_forward_train(y, smean, sinv, rm, rv, x, gamma, beta, m, c, eps, mom, NULL,
                                   false);
    CHECK_ARRAYS("y", y, fx_get(&fx, "y", NULL), mc, 1e-5, 1e-5);
    CHECK_ARRAYS("running_mean", rm, fx_get(&fx, "running_mean1", NULL), c, 1e-6, 1e-5);
    CHECK_ARRAYS("running_var", rv, fx_get(&fx, "running_var1", NULL), c, 1e-6, 1e-5);
    tfill(dg, c, 0), tfill(dbeta, c, 0);
    mm_cpu_batchnorm_backward(dx, dg, dbeta, fx_get(&fx, "dy", NULL), NULL, NULL, x, gamma, smean,
                              sinv, m, c);
    CHECK_ARRAYS("dx", dx, fx_get(&fx, "dx", NULL), mc, 1e-5, 1e-4);
    CHECK_ARRAYS("dgamma", dg, fx_get(&fx, "dgamma", NULL), c, 1e-4, 1e-5);
    CHECK_ARRAYS("dbeta", dbeta, fx_get(&fx, "dbeta", NULL), c, 1e-4, 1e-5);
    mm_cpu_batchnorm_forward_eval(y, x, gamma, beta, rm, rv, m, c, eps, NULL, false);
    CHECK_ARRAYS("y eval", y, fx_get(&fx, "y_eval", NULL), mc, 1e-5, 1e-5);
    free(rm), free(rv), free(y), free(smean), free(sinv), free(dx), free(dg), free(dbeta);
    fixture_free(&fx);
}

static void check_maxpool_fixture(const char *name)
{
    fixture fx;
    if (!fixture_load(&fx, name)) return;
    mm_pool_dims d = {.n = fx_dim(&fx, "x", 0), .h = fx_dim(&fx, "x", 1),
                      .w = fx_dim(&fx, "x", 2), .c = fx_dim(&fx, "x", 3), .kh = 3, .kw = 3,
                      .stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1};
    MM_ASSERT(mm_pool_dims_finish(&d));
    int64_t nx, ny;
    float *x = fx_get(&fx, "x", &nx);
    fx_get(&fx, "y", &ny);
    float *y = tbuf(ny), *dx = tbuf(nx);
    uint8_t *taps = mm_xmalloc((size_t)ny);
    mm_cpu_maxpool_forward(y, taps, x, &d);
    mm_cpu_maxpool_backward(dx, fx_get(&fx, "dy", NULL), taps, NULL, &d);
    CHECK_ARRAYS("maxpool y", y, fx_get(&fx, "y", NULL), ny, 0, 0);
    CHECK_ARRAYS("maxpool dx", dx, fx_get(&fx, "dx", NULL), nx, 1e-6, 1e-6);
    free(y), free(dx), free(taps);
    fixture_free(&fx);
}

MM_TEST(torch_maxpool3x3_stride2_pad1) { check_maxpool_fixture("maxpool3x3s2p1"); }
MM_TEST(torch_maxpool_ties) { check_maxpool_fixture("maxpool3x3s2p1_ties"); }

MM_TEST(torch_adaptive_avgpool)
{
    fixture fx;
    if (!fixture_load(&fx, "adaptive_avgpool")) return;
    mm_pool_dims d = {.n = fx_dim(&fx, "x", 0), .h = fx_dim(&fx, "x", 1),
                      .w = fx_dim(&fx, "x", 2), .c = fx_dim(&fx, "x", 3),
                      .oh = fx_dim(&fx, "y", 1), .ow = fx_dim(&fx, "y", 2)};
    int64_t nx, ny;
    float *x = fx_get(&fx, "x", &nx);
    fx_get(&fx, "y", &ny);
    float *y = tbuf(ny), *dx = tbuf(nx);
    mm_cpu_adaptive_avgpool_forward(y, x, &d);
    mm_cpu_adaptive_avgpool_backward(dx, fx_get(&fx, "dy", NULL), &d);
    CHECK_ARRAYS("adaptive y", y, fx_get(&fx, "y", NULL), ny, 1e-6, 1e-5);
    CHECK_ARRAYS("adaptive dx", dx, fx_get(&fx, "dx", NULL), nx, 1e-6, 1e-5);
    free(y), free(dx);
    fixture_free(&fx);
}

MM_TEST(torch_weighted_softmax_xent)
{
    fixture fx;
    if (!fixture_load(&fx, "softmax_xent")) return;
    int n = fx_dim(&fx, "logits", 0), c = fx_dim(&fx, "logits", 1);
    float *fl = fx_get(&fx, "labels", NULL);
    int32_t labels[64];
    MM_ASSERT(n <= 64);
    for (int i = 0; i < n; i++) labels[i] = (int32_t)fl[i];
    float loss, *probs = tbuf((int64_t)n * c), *dl = tbuf((int64_t)n * c);
    float *weights = fx_get(&fx, "weights", NULL);
    mm_cpu_softmax_xent_forward(&loss, probs, fx_get(&fx, "logits", NULL), labels, weights, n, c);
    mm_cpu_softmax_xent_backward(dl, probs, labels, weights, 1.0f, n, c);
    CHECK_CLOSE(loss, fx_get(&fx, "loss", NULL)[0], 1e-6, 1e-6);
    CHECK_ARRAYS("probs", probs, fx_get(&fx, "probs", NULL), (int64_t)n * c, 1e-6, 1e-5);
    CHECK_ARRAYS("dlogits", dl, fx_get(&fx, "dlogits", NULL), (int64_t)n * c, 1e-6, 1e-5);
    free(probs), free(dl);
    fixture_free(&fx);
}
