/* CPU kernels, part 1: convolution, batch norm, dense. Forward passes against naive loops written
 * plainly here, backward passes against central finite differences of L = sum(g * y).
 * Pooling is in test_ops_cpu_pool.c, element-wise ops, dropout, softmax and flips in
 * test_ops_cpu_misc.c, PyTorch fixtures in test_ops_cpu_torch.c. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_internal.h"
#include "kernels/cpu/cpu_kernels.h"
#include "tests/grad_check.h"
#include "tests/harness.h"

/* ======================= convolution ======================= */

/* The defaults of mm_cpu_conv_ws_budget, mm_cpu_conv_turn_min_pixels and
 * mm_cpu_winograd_min_pixels, restored after tests that change them. */
#define MM_DEFAULT_WS_BUDGET ((size_t)32 << 20)
#define MM_DEFAULT_TURN_MIN 256
#define MM_DEFAULT_WINOGRAD_MIN 1024

/* The direct 7-loop definition, summed in double. */
static void naive_conv(float *y, const float *x, const float *w, const float *b,
                       const mm_conv_dims *d)
{
    for (int n = 0; n < d->n; n++)
        for (int oy = 0; oy < d->oh; oy++)
            for (int ox = 0; ox < d->ow; ox++)
                for (int k = 0; k < d->k; k++) {
                    double acc = b ? b[k] : 0.0;
                    for (int r = 0; r < d->r; r++)
                        for (int s = 0; s < d->s; s++)
                            for (int c = 0; c < d->c; c++) {
                                int iy = oy * d->stride_h - d->pad_h + r;
                                int ix = ox * d->stride_w - d->pad_w + s;
                                if (iy < 0 || iy >= d->h || ix < 0 || ix >= d->w) continue;
                                acc += (double)x[((n * d->h + iy) * d->w + ix) * d->c + c] *
                                       w[((k * d->r + r) * d->s + s) * d->c + c];
                            }
                    y[((n * d->oh + oy) * d->ow + ox) * d->k + k] = (float)acc;
                }
}

typedef struct conv_case {
    int n, h, w, c, k, r, s, sh, sw, ph, pw, bias;
    int chunk_rows; /* 0: the default workspace budget; else force chunks of this many rows */
} conv_case;

static const conv_case conv_cases[] = {
    /* n  h   w  c  k  r  s sh sw ph pw bias chunk */
    {2, 5, 7, 3, 4, 1, 1, 1, 1, 0, 0, 1, 0},  /* 1x1 stride 1: one GEMM, no im2col */
    {1, 7, 6, 5, 3, 1, 1, 2, 2, 0, 0, 0, 0},  /* 1x1 stride 2 (ResNet downsample) */
    {2, 6, 5, 3, 4, 3, 3, 1, 1, 1, 1, 1, 0},  /* 3x3 same */
    {2, 7, 9, 4, 5, 3, 3, 2, 2, 1, 1, 0, 0},  /* 3x3 stride 2, odd sizes */
    {1, 11, 13, 3, 4, 7, 7, 2, 2, 3, 3, 1, 0}, /* 7x7 stride 2 pad 3 (conv1) */
    {2, 6, 7, 2, 3, 3, 2, 2, 1, 0, 1, 1, 0},  /* rectangular kernel, mixed strides */
    {2, 9, 8, 3, 2, 5, 5, 3, 3, 2, 2, 0, 0},  /* 5x5 stride 3 */
    {2, 7, 9, 4, 5, 3, 3, 2, 2, 1, 1, 1, 1},  /* chunks of one output row */
    {2, 8, 6, 3, 4, 3, 3, 1, 1, 1, 1, 0, 3},  /* chunks straddling the two images */
    {2, 11, 13, 3, 4, 7, 7, 2, 2, 3, 3, 0, 2}, /* 7x7 with chunks: col2im across chunks */
    {2, 7, 6, 5, 3, 1, 1, 2, 2, 0, 0, 1, 2},  /* 1x1 stride 2 with chunks */
    {1, 4, 4, 2, 3, 3, 3, 1, 1, 0, 0, 1, 0},  /* no padding */
    {2, 5, 4, 8, 40, 1, 1, 1, 1, 0, 0, 1, 0}, /* more filters than weights per filter: */
    {1, 6, 5, 2, 40, 3, 3, 1, 1, 1, 1, 0, 0}, /* GEMMs split by rows of dw */
    /* stride 1: the data gradient as a forward convolution of dy, padding r-1-pad */
    {2, 6, 7, 3, 4, 3, 5, 1, 1, 1, 2, 0, 0},  /* rectangular, paddings 1 and 2 */
    {1, 5, 6, 3, 2, 3, 3, 1, 1, 2, 2, 1, 0},  /* padding r-1: the turned one has none */
    {2, 9, 7, 5, 6, 3, 3, 1, 1, 1, 1, 0, 2},  /* in chunks of rows */
    {1, 4, 5, 2, 3, 3, 3, 1, 1, 3, 3, 0, 0},  /* padding r: col2im as for other strides */
};
#define N_CONV_CASES ((int)(sizeof conv_cases / sizeof conv_cases[0]))

static mm_conv_dims conv_dims_of(const conv_case *cc)
{
    mm_conv_dims d = {.n = cc->n, .h = cc->h, .w = cc->w, .c = cc->c, .k = cc->k, .r = cc->r,
                      .s = cc->s, .stride_h = cc->sh, .stride_w = cc->sw, .pad_h = cc->ph,
                      .pad_w = cc->pw};
    MM_ASSERT(mm_conv_dims_finish(&d));
    return d;
}

/* Sets the workspace budget for the case and returns a workspace of the size the passes ask
 * (the most of the three). Stride-1 data gradients run as forward convolutions of dy over the
 * turned filter at every size (the cases are smaller than the default threshold); with
 * chunk_rows, in chunks of about as many rows. */
static void *conv_setup_ws(const conv_case *cc, const mm_conv_dims *d)
{
    mm_cpu_conv_turn_min_pixels = 0;
    size_t row = (size_t)d->ow * d->r * d->s * d->c * sizeof(float);
    mm_cpu_conv_ws_budget = cc->chunk_rows ? row * cc->chunk_rows : MM_DEFAULT_WS_BUDGET;
    size_t bytes = mm_cpu_conv2d_workspace(d), dx_bytes = mm_cpu_conv2d_backward_data_workspace(d);
    if (dx_bytes > bytes) bytes = dx_bytes;
    return mm_xmalloc(bytes ? bytes : 1);
}

MM_TEST(conv_forward_matches_naive)
{
    for (int ci = 0; ci < N_CONV_CASES; ci++) {
        const conv_case *cc = &conv_cases[ci];
        mm_conv_dims d = conv_dims_of(cc);
        int64_t nx = (int64_t)d.n * d.h * d.w * d.c, nw = (int64_t)d.k * d.r * d.s * d.c;
        int64_t ny = (int64_t)d.n * d.oh * d.ow * d.k;
        float *x = trand(nx, 100 + ci, -1, 1), *w = trand(nw, 200 + ci, -1, 1);
        float *b = cc->bias ? trand(d.k, 300 + ci, -1, 1) : NULL;
        float *y = tbuf(ny), *want = tbuf(ny);
        tfill(y, ny, NAN); /* the output is written, never read */
        void *ws = conv_setup_ws(cc, &d);
        mm_cpu_conv2d_forward(y, x, w, b, &d, ws);
        naive_conv(want, x, w, b, &d);
        char what[64];
        snprintf(what, sizeof what, "conv case %d y", ci);
        CHECK_ARRAYS(what, y, want, ny, 1e-5, 1e-5);
        free(x), free(w), free(b), free(y), free(want), free(ws);
    }
    mm_cpu_conv_ws_budget = MM_DEFAULT_WS_BUDGET;
    mm_cpu_conv_turn_min_pixels = MM_DEFAULT_TURN_MIN;
}

MM_TEST(conv_workspace)
{
    /* 1x1 stride 1 needs none; everything else a bounded im2col chunk. */
    mm_conv_dims d = {.n = 2, .h = 288, .w = 224, .c = 64, .k = 256, .r = 1, .s = 1,
                      .stride_h = 1, .stride_w = 1};
    MM_ASSERT(mm_conv_dims_finish(&d));
    CHECK_EQ_INT(mm_cpu_conv2d_workspace(&d), 0);
    mm_conv_dims c1 = {.n = 2, .h = 1152, .w = 896, .c = 3, .k = 64, .r = 7, .s = 7,
                       .stride_h = 2, .stride_w = 2, .pad_h = 3, .pad_w = 3};
    MM_ASSERT(mm_conv_dims_finish(&c1));
    size_t ws = mm_cpu_conv2d_workspace(&c1);
    CHECK(ws > 0 && ws <= (MM_DEFAULT_WS_BUDGET));
    CHECK_EQ_INT(ws % ((size_t)c1.ow * 147 * 4), 0); /* whole output rows */
    /* A small convolution gets exactly its whole im2col matrix. */
    mm_conv_dims s = {.n = 2, .h = 8, .w = 8, .c = 4, .k = 4, .r = 3, .s = 3, .stride_h = 1,
                      .stride_w = 1, .pad_h = 1, .pad_w = 1};
    MM_ASSERT(mm_conv_dims_finish(&s));
    CHECK_EQ_INT(mm_cpu_conv2d_workspace(&s), 2 * 8 * 8 * 36 * 4);
}

typedef struct conv_ctx {
    const mm_conv_dims *d;
    float *x, *w, *b, *y;
    const float *g;
    void *ws;
    int64_t ny;
} conv_ctx;

static double conv_loss(void *p)
{
    conv_ctx *c = p;
    mm_cpu_conv2d_forward(c->y, c->x, c->w, c->b, c->d, c->ws);
    return tdot(c->g, c->y, c->ny);
}

MM_TEST(conv_backward_matches_finite_differences)
{
    for (int ci = 0; ci < N_CONV_CASES; ci++) {
        const conv_case *cc = &conv_cases[ci];
        mm_conv_dims d = conv_dims_of(cc);
        int64_t nx = (int64_t)d.n * d.h * d.w * d.c, nw = (int64_t)d.k * d.r * d.s * d.c;
        int64_t ny = (int64_t)d.n * d.oh * d.ow * d.k;
        float *x = trand(nx, 110 + ci, -1, 1), *w = trand(nw, 210 + ci, -1, 1);
        float *b = cc->bias ? trand(d.k, 310 + ci, -1, 1) : NULL;
        float *g = trand(ny, 410 + ci, -1, 1), *y = tbuf(ny);
        void *ws = conv_setup_ws(cc, &d);
        conv_ctx ctx = {&d, x, w, b, y, g, ws, ny};

        /* dx is written: start from NaN. dw and db accumulate onto what is there. */
        float *dx = tbuf(nx), *w0 = trand(nw, 510 + ci, -3, 3), *dw = tcopy(w0, nw);
        float *b0 = trand(d.k, 610 + ci, -3, 3), *db = tcopy(b0, d.k);
        tfill(dx, nx, NAN);
        mm_cpu_conv2d_backward_data(dx, g, w, &d, ws);
        mm_cpu_conv2d_backward_filter(dw, g, x, &d, ws);
        mm_cpu_conv2d_backward_bias(db, g, &d);
        for (int64_t i = 0; i < nw; i++) dw[i] -= w0[i];
        for (int i = 0; i < d.k; i++) db[i] -= b0[i];

        char what[64];
        snprintf(what, sizeof what, "conv case %d dx", ci);
        CHECK_FD(what, dx, x, nx, conv_loss, &ctx, 0.05f, 2e-3);
        snprintf(what, sizeof what, "conv case %d dw", ci);
        CHECK_FD(what, dw, w, nw, conv_loss, &ctx, 0.05f, 2e-3);
        if (b) {
            snprintf(what, sizeof what, "conv case %d db", ci);
            CHECK_FD(what, db, b, d.k, conv_loss, &ctx, 0.05f, 2e-3);
        } else {
            /* The bias gradient does not depend on whether the layer has a bias. */
            float *want = tbuf(d.k);
            for (int k = 0; k < d.k; k++) {
                double s = 0;
                for (int64_t p = 0; p < ny / d.k; p++) s += g[p * d.k + k];
                want[k] = (float)s;
            }
            CHECK_ARRAYS("db without bias", db, want, d.k, 1e-4, 1e-4);
            free(want);
        }
        free(x), free(w), free(b), free(g), free(y), free(ws);
        free(dx), free(w0), free(dw), free(b0), free(db);
    }
    mm_cpu_conv_ws_budget = MM_DEFAULT_WS_BUDGET;
    mm_cpu_conv_turn_min_pixels = MM_DEFAULT_TURN_MIN;
}

/* A chunked run must equal the unchunked one (the same GEMMs on fewer rows). */
MM_TEST(conv_chunking_does_not_change_results)
{
    conv_case cc = {2, 13, 11, 6, 8, 3, 3, 2, 2, 1, 1, 1, 0};
    mm_conv_dims d = conv_dims_of(&cc);
    int64_t nx = (int64_t)d.n * d.h * d.w * d.c, nw = (int64_t)d.k * d.r * d.s * d.c;
    int64_t ny = (int64_t)d.n * d.oh * d.ow * d.k;
    float *x = trand(nx, 1, -1, 1), *w = trand(nw, 2, -1, 1), *b = trand(d.k, 3, -1, 1);
    float *g = trand(ny, 4, -1, 1);
    float *y[2], *dx[2], *dw[2];
    for (int v = 0; v < 2; v++) {
        cc.chunk_rows = v ? 3 : 0;
        void *ws = conv_setup_ws(&cc, &d);
        y[v] = tbuf(ny), dx[v] = tbuf(nx), dw[v] = tbuf(nw);
        tfill(dw[v], nw, 0);
        mm_cpu_conv2d_forward(y[v], x, w, b, &d, ws);
        mm_cpu_conv2d_backward_data(dx[v], g, w, &d, ws);
        mm_cpu_conv2d_backward_filter(dw[v], g, x, &d, ws);
        free(ws);
    }
    CHECK_ARRAYS("y", y[1], y[0], ny, 1e-6, 1e-5);
    CHECK_ARRAYS("dx", dx[1], dx[0], nx, 1e-6, 1e-5);
    CHECK_ARRAYS("dw", dw[1], dw[0], nw, 1e-5, 1e-5);
    for (int v = 0; v < 2; v++) free(y[v]), free(dx[v]), free(dw[v]);
    free(x), free(w), free(b), free(g);

    /* A stride-1 data gradient turned into a forward convolution, or not: the same values. */
    conv_case c1 = {2, 9, 7, 5, 6, 3, 3, 1, 1, 1, 1, 0, 0};
    d = conv_dims_of(&c1);
    nx = (int64_t)d.n * d.h * d.w * d.c, nw = (int64_t)d.k * d.r * d.s * d.c;
    ny = (int64_t)d.n * d.oh * d.ow * d.k;
    w = trand(nw, 5, -1, 1), g = trand(ny, 6, -1, 1);
    mm_cpu_conv_ws_budget = MM_DEFAULT_WS_BUDGET;
    for (int v = 0; v < 2; v++) {
        mm_cpu_conv_turn_min_pixels = v ? d.n * d.oh * d.ow + 1 : 0;
        void *ws = mm_xmalloc(mm_cpu_conv2d_backward_data_workspace(&d));
        dx[v] = tbuf(nx);
        mm_cpu_conv2d_backward_data(dx[v], g, w, &d, ws);
        free(ws);
    }
    CHECK_ARRAYS("dx turned", dx[0], dx[1], nx, 1e-6, 1e-5);
    CHECK(mm_cpu_conv2d_backward_data_workspace(&d) == mm_cpu_conv2d_workspace(&d));
    mm_cpu_conv_turn_min_pixels = 0;
    CHECK(mm_cpu_conv2d_backward_data_workspace(&d) > mm_cpu_conv2d_workspace(&d));
    free(dx[0]), free(dx[1]), free(w), free(g);
    mm_cpu_conv_ws_budget = MM_DEFAULT_WS_BUDGET;
    mm_cpu_conv_turn_min_pixels = MM_DEFAULT_TURN_MIN;
}

/* Winograd F(2x2, 3x3) (winograd.c) on shapes with 16+ channels: the forward against the naive
 * loops, with and without bias, partial tiles at odd sizes, paddings 0 to 2, in one chunk and in
 * chunks of 16 tiles, on 1 and 3 threads; the stride-1 data gradient (a forward convolution of dy,
 * so Winograd too) and the filter gradient (written, and added to what is there) against the
 * im2col path. */
MM_TEST(conv_winograd_matches_naive)
{
    static const conv_case cases[] = {
        /* n  h  w   c   k  r  s sh sw ph pw bias chunk */
        {2, 9, 7, 16, 20, 3, 3, 1, 1, 1, 1, 1, 0},
        {1, 8, 10, 17, 16, 3, 3, 1, 1, 0, 0, 0, 0},
        {2, 5, 6, 16, 18, 3, 3, 1, 1, 2, 2, 1, 0},
        {1, 7, 7, 24, 33, 3, 3, 1, 1, 1, 0, 0, 0},
        {2, 11, 9, 16, 16, 3, 3, 1, 1, 1, 1, 1, 1},
        {2, 4, 3, 16, 16, 3, 3, 1, 1, 1, 1, 0, 0},
        {2, 2, 2, 32, 16, 3, 3, 1, 1, 1, 1, 0, 0},
        {2, 1, 1, 16, 32, 3, 3, 1, 1, 1, 1, 0, 0},
        {2, 3, 2, 16, 16, 3, 3, 1, 1, 1, 1, 0, 0},
    };
    int saved_threads = omp_get_max_threads();
    for (int ci = 0; ci < (int)(sizeof cases / sizeof cases[0]); ci++)
        for (int threads = 1; threads <= 3; threads += 2) {
            const conv_case *cc = &cases[ci];
            mm_conv_dims d = conv_dims_of(cc);
            int64_t nx = (int64_t)d.n * d.h * d.w * d.c, nw = (int64_t)d.k * d.r * d.s * d.c;
            int64_t ny = (int64_t)d.n * d.oh * d.ow * d.k;
            float *x = trand(nx, 800 + ci, -1, 1), *w = trand(nw, 810 + ci, -1, 1);
            float *b = cc->bias ? trand(d.k, 820 + ci, -1, 1) : NULL;
            float *g = trand(ny, 830 + ci, -1, 1), *y = tbuf(ny), *want = tbuf(ny);
            float *dx = tbuf(nx), *dx_col = tbuf(nx), *w0 = trand(nw, 840 + ci, -1, 1);
            float *dw[2][2]; /* [im2col, winograd][written, added] */
            omp_set_num_threads(threads);
            /* chunk_rows: V and M of 16 tiles a chunk */
            mm_cpu_conv_ws_budget = cc->chunk_rows ? (size_t)2 * 16 * 16 * (d.c + d.k) * 4
                                                   : MM_DEFAULT_WS_BUDGET;
            mm_cpu_winograd_min_pixels = 0, mm_cpu_conv_turn_min_pixels = 0;
            CHECK(mm_cpu_winograd_applies(&d));
            void *ws = mm_xmalloc(mm_cpu_conv2d_backward_data_workspace(&d) +
                                  mm_cpu_conv2d_workspace(&d));
            tfill(y, ny, NAN);
            mm_cpu_conv2d_forward(y, x, w, b, &d, ws);
            naive_conv(want, x, w, b, &d);
            char what[64];
            snprintf(what, sizeof what, "winograd case %d (%d threads) y", ci, threads);
            CHECK_ARRAYS(what, y, want, ny, 1e-5, 1e-5);
            mm_cpu_conv2d_backward_data(dx, g, w, &d, ws);
            for (int v = 1; v >= 0; v--) { /* winograd, then without */
                mm_cpu_winograd_min_pixels = v ? 0 : INT64_MAX;
                CHECK(mm_cpu_winograd_applies(&d) == v);
                for (int add = 0; add < 2; add++) {
                    dw[v][add] = add ? tcopy(w0, nw) : tbuf(nw);
                    if (!add) tfill(dw[v][add], nw, NAN); /* written, never read */
                    d.overwrite = !add;
                    mm_cpu_conv2d_backward_filter(dw[v][add], g, x, &d, ws);
                    d.overwrite = 0;
                }
            }
            mm_cpu_conv2d_backward_data(dx_col, g, w, &d, ws);
            snprintf(what, sizeof what, "winograd case %d (%d threads) dx", ci, threads);
            CHECK_ARRAYS(what, dx, dx_col, nx, 1e-5, 1e-5);
            snprintf(what, sizeof what, "winograd case %d (%d threads) dw", ci, threads);
            CHECK_ARRAYS(what, dw[1][0], dw[0][0], nw, 1e-4, 1e-5);
            CHECK_ARRAYS(what, dw[1][1], dw[0][1], nw, 1e-4, 1e-5);
            free(x), free(w), free(b), free(g), free(y), free(want), free(dx), free(dx_col);
            free(w0), free(ws);
            for (int v = 0; v < 2; v++) free(dw[v][0]), free(dw[v][1]);
        }
    omp_set_num_threads(saved_threads);
    mm_cpu_winograd_min_pixels = MM_DEFAULT_WINOGRAD_MIN;
    mm_cpu_conv_ws_budget = MM_DEFAULT_WS_BUDGET;
    mm_cpu_conv_turn_min_pixels = MM_DEFAULT_TURN_MIN;
}

/* Threads share a chunk's tiles out by blocks of 16, and a partial last chunk differently from
 * the full ones: none may start on it while another still uses those rows of the workspace.
 * 2x64x64, 64 -> 128 channels takes chunks of 1365 and 683 tiles; run on 2 threads over a
 * workspace refilled with NaN each time, every run must give the same bits, and the im2col
 * path's values. (Without the barrier between chunks every run differed.) */
MM_TEST(conv_winograd_threads_share_chunks_safely)
{
    conv_case cc = {2, 64, 64, 64, 128, 3, 3, 1, 1, 1, 1, 0, 0};
    mm_conv_dims d = conv_dims_of(&cc);
    int64_t nx = (int64_t)d.n * d.h * d.w * d.c, nw = (int64_t)d.k * d.r * d.s * d.c;
    int64_t ny = (int64_t)d.n * d.oh * d.ow * d.k;
    float *x = trand(nx, 900, -1, 1), *w = trand(nw, 901, -1, 1);
    float *want = tbuf(ny), *first = tbuf(ny), *y = tbuf(ny);
    int saved_threads = omp_get_max_threads();
    omp_set_num_threads(2);
    size_t bytes = mm_cpu_conv2d_workspace(&d);
    float *ws = mm_xmalloc(bytes);
    mm_cpu_winograd_min_pixels = INT64_MAX;
    mm_cpu_conv2d_forward(want, x, w, NULL, &d, ws);
    mm_cpu_winograd_min_pixels = MM_DEFAULT_WINOGRAD_MIN;
    CHECK(mm_cpu_winograd_applies(&d));
    int64_t differ = 0;
    for (int run = 0; run < 20; run++) {
        tfill(ws, (int64_t)(bytes / sizeof(float)), NAN);
        mm_cpu_conv2d_forward(run ? y : first, x, w, NULL, &d, ws);
        if (run) differ += memcmp(y, first, (size_t)ny * sizeof *y) != 0;
    }
    CHECK_MSG(differ == 0, "%lld of 19 runs differ from the first", (long long)differ);
    CHECK_ARRAYS("winograd on 2 threads", first, want, ny, 1e-4, 1e-4);
    omp_set_num_threads(saved_threads);
    free(x), free(w), free(want), free(first), free(y), free(ws);
}

/* ======================= batch norm ======================= */

/* Batch mean and biased variance per channel, in double, the textbook way. */
static void naive_moments(double *mean, double *var, const float *x, int64_t m, int c)
{
    for (int j = 0; j < c; j++) {
        double s = 0, q = 0;
        for (int64_t i = 0; i < m; i++) s += x[i * c + j];
        mean[j] = s / m;
        for (int64_t i = 0; i < m; i++) q += (x[i * c + j] - mean[j]) * (x[i * c + j] - mean[j]);
        var[j] = q / m;
    }
}

MM_TEST(batchnorm_train_forward_and_running_stats)
{
    const int64_t m = 2 * 3 * 5;
    const int c = 7;
    const float eps = 1e-5f, mom = 0.1f;
    float *x = trand(m * c, 1, -2, 3), *gamma = trand(c, 2, 0.5f, 1.5f), *beta = trand(c, 3, -1, 1);
    for (int64_t i = 0; i < m * c; i++) x[i] += (float)(i % c); /* per-channel offsets */
    float *rm = trand(c, 4, -1, 1), *rv = trand(c, 5, 0.5f, 2), *rm0 = tcopy(rm, c),
          *rv0 = tcopy(rv, c);
    float *y = tbuf(m * c), *smean = tbuf(c), *sinv = tbuf(c);
    tfill(y, m * c, NAN);
    mm_cpu_batchnorm_forward_train(y, smean, sinv, rm, rv, x, gamma, beta, m, c, eps, mom, NULL,
                                   false);

    double mean[7], var[7];
    naive_moments(mean, var, x, m, c);
    float *want = tbuf(m * c);
    for (int64_t i = 0; i < m; i++)
        for (int j = 0; j < c; j++)
            want[i * c + j] =
                (float)((x[i * c + j] - mean[j]) / sqrt(var[j] + eps) * gamma[j] + beta[j]);
    CHECK_ARRAYS("y", y, want, m * c, 1e-5, 1e-5);
    for (int j = 0; j < c; j++) {
        CHECK_CLOSE(smean[j], mean[j], 1e-6, 1e-6);
        CHECK_CLOSE(sinv[j], 1.0 / sqrt(var[j] + eps), 1e-6, 1e-6);
        /* PyTorch: running stats move towards the batch mean and the UNBIASED variance. */
        CHECK_CLOSE(rm[j], 0.9 * rm0[j] + 0.1 * mean[j], 1e-6, 1e-6);
        CHECK_CLOSE(rv[j], 0.9 * rv0[j] + 0.1 * var[j] * m / (m - 1), 1e-6, 1e-6);
    }

    /* In place (y aliases x) gives the same output. */
    float *yin = tcopy(x, m * c), *rm2 = tcopy(rm0, c), *rv2 = tcopy(rv0, c);
    mm_cpu_batchnorm_forward_train(yin, smean, sinv, rm2, rv2, yin, gamma, beta, m, c, eps, mom,
                                   NULL, false);
    CHECK_ARRAYS("in-place y", yin, y, m * c, 0, 0);
    free(x), free(gamma), free(beta), free(rm), free(rv), free(rm0), free(rv0), free(y);
    free(smean), free(sinv), free(want), free(yin), free(rm2), free(rv2);
}

/* The statistics stay accurate at the whole-image size (m = 2*576*448) with a large mean, where a
 * float E[x^2] - E[x]^2 would be useless. */
MM_TEST(batchnorm_statistics_accurate_at_large_m)
{
    const int64_t m = 2 * 576 * 448;
    const int c = 3;
    float *x = trand(m * c, 7, -0.5f, 0.5f);
    for (int64_t i = 0; i < m * c; i++) x[i] += 1000.0f * (float)(i % c + 1);
    float gamma[3] = {1, 1, 1}, beta[3] = {0, 0, 0}, rm[3] = {0, 0, 0}, rv[3] = {1, 1, 1};
    float smean[3], sinv[3];
    float *y = tbuf(m * c);
    mm_cpu_batchnorm_forward_train(y, smean, sinv, rm, rv, x, gamma, beta, m, c, 1e-5f, 0.1f,
                                   NULL, false);
    double mean[3], var[3];
    naive_moments(mean, var, x, m, c);
    for (int j = 0; j < c; j++) {
        CHECK_CLOSE(smean[j], mean[j], 0, 1e-7);
        CHECK_CLOSE(sinv[j], 1.0 / sqrt(var[j] + 1e-5), 0, 1e-5);
    }
    /* Normalised output: mean 0, variance 1. */
    double ym[3], yv[3];
    naive_moments(ym, yv, y, m, c);
    for (int j = 0; j < c; j++) {
        CHECK_CLOSE(ym[j], 0, 1e-4, 0);
        CHECK_CLOSE(yv[j], 1, 1e-3, 0);
    }
    free(x), free(y);
}

MM_TEST(batchnorm_eval)
{
    const int64_t m = 11;
    const int c = 5;
    const float eps = 1e-3f;
    float *x = trand(m * c, 1, -2, 2), *gamma = trand(c, 2, 0.5f, 1.5f), *beta = trand(c, 3, -1, 1);
    float *rm = trand(c, 4, -1, 1), *rv = trand(c, 5, 0.2f, 2);
    float *y = tbuf(m * c), *want = tbuf(m * c);
    mm_cpu_batchnorm_forward_eval(y, x, gamma, beta, rm, rv, m, c, eps, NULL, false);
    for (int64_t i = 0; i < m; i++)
        for (int j = 0; j < c; j++)
            want[i * c + j] =
                (float)((x[i * c + j] - rm[j]) / sqrt((double)rv[j] + eps) * gamma[j] + beta[j]);
    CHECK_ARRAYS("y", y, want, m * c, 1e-5, 1e-5);
    /* in place */
    mm_cpu_batchnorm_forward_eval(x, x, gamma, beta, rm, rv, m, c, eps, NULL, false);
    CHECK_ARRAYS("in-place y", x, y, m * c, 0, 0);
    free(x), free(gamma), free(beta), free(rm), free(rv), free(y), free(want);
}

typedef struct bn_ctx {
    float *x, *gamma, *beta, *y, *smean, *sinv, *rm, *rv;
    const float *g;
    int64_t m;
    int c;
} bn_ctx;

static double bn_loss(void *p)
{
    bn_ctx *b = p;
    mm_cpu_batchnorm_forward_train(b->y, b->smean, b->sinv, b->rm, b->rv, b->x, b->gamma, b->beta,
                                   b->m, b->c, 1e-5f, 0.1f, NULL, false);
    return tdot(b->g, b->y, b->m * b->c);
}

MM_TEST(batchnorm_backward_matches_finite_differences)
{
    const int64_t m = 2 * 3 * 4;
    const int c = 5;
    float *x = trand(m * c, 11, -2, 2), *gamma = trand(c, 12, 0.5f, 1.5f),
          *beta = trand(c, 13, -1, 1), *g = trand(m * c, 14, -1, 1);
    float *y = tbuf(m * c), *smean = tbuf(c), *sinv = tbuf(c), *rm = tbuf(c), *rv = tbuf(c);
    tfill(rm, c, 0), tfill(rv, c, 1);
    bn_ctx ctx = {x, gamma, beta, y, smean, sinv, rm, rv, g, m, c};
    bn_loss(&ctx); /* saves mean and invstd for backward */

    float *dx = tbuf(m * c), *dg0 = trand(c, 15, -1, 1), *db0 = trand(c, 16, -1, 1);
    float *dgamma = tcopy(dg0, c), *dbeta = tcopy(db0, c);
    tfill(dx, m * c, NAN);
    mm_cpu_batchnorm_backward(dx, dgamma, dbeta, g, NULL, NULL, x, gamma, smean, sinv, m, c);
    for (int j = 0; j < c; j++) dgamma[j] -= dg0[j], dbeta[j] -= db0[j];

    CHECK_FD("bn dx", dx, x, m * c, bn_loss, &ctx, 1e-2f, 5e-3);
    CHECK_FD("bn dgamma", dgamma, gamma, c, bn_loss, &ctx, 1e-2f, 5e-3);
    CHECK_FD("bn dbeta", dbeta, beta, c, bn_loss, &ctx, 1e-2f, 5e-3);

    /* dx in place over dy; dgamma/dbeta/dx may each be absent. */
    bn_loss(&ctx);
    float *inplace = tcopy(g, m * c);
    mm_cpu_batchnorm_backward(inplace, NULL, NULL, inplace, NULL, NULL, x, gamma, smean, sinv, m,
                              c);
    CHECK_ARRAYS("in-place dx", inplace, dx, m * c, 0, 0);
    float *dgamma2 = tbuf(c), *dbeta2 = tbuf(c);
    tfill(dgamma2, c, 0), tfill(dbeta2, c, 0);
    mm_cpu_batchnorm_backward(NULL, dgamma2, dbeta2, g, NULL, NULL, x, gamma, smean, sinv, m, c);
    CHECK_ARRAYS("dgamma without dx", dgamma2, dgamma, c, 1e-5, 1e-5);
    CHECK_ARRAYS("dbeta without dx", dbeta2, dbeta, c, 1e-5, 1e-5);
    free(x), free(gamma), free(beta), free(g), free(y), free(smean), free(sinv), free(rm);
    free(rv), free(dx), free(dg0), free(db0), free(dgamma), free(dbeta), free(inplace);
    free(dgamma2), free(dbeta2);
}

/* The ReLU backward folded into the batch-norm backward, from the ReLU's output or from its
 * bits, is bitwise the two kernels run one after the other. Rows of 19 channels put bytes of the
 * mask across rows; the larger case runs on several threads. */
MM_TEST(batchnorm_backward_with_relu_matches_separate_kernels)
{
    const int c = 19;
    const int64_t ms[2] = {37, 2003};
    for (int t = 0; t < 2; t++) {
        int64_t m = ms[t], n = m * c;
        float *x = trand(n, 21, -2, 2), *gamma = trand(c, 22, 0.5f, 1.5f);
        float *smean = trand(c, 23, -0.1f, 0.1f), *sinv = trand(c, 24, 0.8f, 1.2f);
        float *dy = trand(n, 25, -1, 1), *r = trand(n, 26, -1, 1);
        for (int64_t i = 0; i < n; i += 5) r[i] = 0.0f; /* exact zeros: no gradient */
        uint8_t *bits = calloc((size_t)(n + 7) / 8, 1);
        mm_cpu_relu_mask(bits, r, n);

        float *g = tbuf(n), *want = tbuf(n), *dgw = tbuf(c), *dbw = tbuf(c);
        tfill(dgw, c, 0), tfill(dbw, c, 0);
        mm_cpu_relu_backward(g, dy, r, n);
        mm_cpu_batchnorm_backward(want, dgw, dbw, g, NULL, NULL, x, gamma, smean, sinv, m, c);
        for (int way = 0; way < 2; way++) {
            float *dx = tcopy(dy, n), *dg = tbuf(c), *db = tbuf(c);
            tfill(dg, c, 0), tfill(db, c, 0);
            mm_cpu_batchnorm_backward(dx, dg, db, dx, way ? NULL : r, way ? bits : NULL, x, gamma,
                                      smean, sinv, m, c); /* in place over dy */
            CHECK_ARRAYS(way ? "dx from bits" : "dx from relu_out", dx, want, n, 0, 0);
            CHECK_ARRAYS("dgamma", dg, dgw, c, 0, 0);
            CHECK_ARRAYS("dbeta", db, dbw, c, 0, 0);
            free(dx), free(dg), free(db);
        }
        free(x), free(gamma), free(smean), free(sinv), free(dy), free(r), free(bits), free(g);
        free(want), free(dgw), free(dbw);
    }
}

/* A residual join finished inside the batch norm (graph.h fuse_residual): training, evaluation
 * and the recomputing apply, with and without the ReLU, written to a new buffer or over the
 * residual, are bitwise the plain batch norm followed by mm_cpu_add and mm_cpu_relu_forward. */
MM_TEST(batchnorm_residual_join_matches_separate_kernels)
{
    const int c = 19;
    const int64_t ms[2] = {37, 2003};
    for (int t = 0; t < 2; t++) {
        int64_t m = ms[t], n = m * c;
        float *x = trand(n, 31, -2, 2), *r = trand(n, 32, -2, 2);
        float *gamma = trand(c, 33, 0.5f, 1.5f), *beta = trand(c, 34, -1, 1);
        float *rm = trand(c, 35, -1, 1), *rv = trand(c, 36, 0.2f, 2);
        float *smean = tbuf(c), *sinv = tbuf(c), *want = tbuf(n), *ws = tbuf(c), *wi = tbuf(c);
        for (int kind = 0; kind < 3; kind++)
            for (int relu = 0; relu < 2; relu++)
                for (int over_r = 0; over_r < 2; over_r++) {
                    float *rm1 = tcopy(rm, c), *rv1 = tcopy(rv, c);
                    float *rm2 = tcopy(rm, c), *rv2 = tcopy(rv, c);
                    /* plain, then the join */
                    if (kind == 0)
                        mm_cpu_batchnorm_forward_train(want, ws, wi, rm1, rv1, x, gamma, beta, m,
                                                       c, 1e-5f, 0.1f, NULL, false);
                    else if (kind == 1)
                        mm_cpu_batchnorm_forward_eval(want, x, gamma, beta, rm, rv, m, c, 1e-5f,
                                                      NULL, false);
                    else
                        mm_cpu_batchnorm_apply(want, x, gamma, beta, rm, rv, m, c, NULL, false);
                    mm_cpu_add(want, want, r, n);
                    if (relu) mm_cpu_relu_forward(want, want, n);

                    float *rc = tcopy(r, n), *y = over_r ? rc : tbuf(n);
                    if (kind == 0)
                        mm_cpu_batchnorm_forward_train(y, smean, sinv, rm2, rv2, x, gamma, beta, m,
                                                       c, 1e-5f, 0.1f, rc, relu);
                    else if (kind == 1)
                        mm_cpu_batchnorm_forward_eval(y, x, gamma, beta, rm, rv, m, c, 1e-5f, rc,
                                                      relu);
                    else
                        mm_cpu_batchnorm_apply(y, x, gamma, beta, rm, rv, m, c, rc, relu);
                    CHECK_MSG(!memcmp(y, want, (size_t)n * sizeof *y),
                              "kind %d relu %d over the residual %d m %lld: differs", kind, relu,
                              over_r, (long long)m);
                    if (kind == 0) {
                        CHECK_ARRAYS("save_mean", smean, ws, c, 0, 0);
                        CHECK_ARRAYS("save_invstd", sinv, wi, c, 0, 0);
                        CHECK_ARRAYS("running_var", rv2, rv1, c, 0, 0);
                    }
                    if (!over_r) free(y);
                    free(rc), free(rm1), free(rv1), free(rm2), free(rv2);
                }
        free(x), free(r), free(gamma), free(beta), free(rm), free(rv), free(smean), free(sinv);
        free(want), free(ws), free(wi);
    }
}

/* ======================= dense ======================= */

MM_TEST(dense_forward_matches_naive)
{
    const int n = 3, k = 7, o = 5;
    float *x = trand(n * k, 1, -1, 1), *w = trand(o * k, 2, -1, 1), *b = trand(o, 3, -1, 1);
    for (int with_bias = 0; with_bias < 2; with_bias++) {
        float *y = tbuf(n * o), *want = tbuf(n * o);
        tfill(y, n * o, NAN);
        mm_cpu_dense_forward(y, x, w, with_bias ? b : NULL, n, k, o);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < o; j++) {
                double s = with_bias ? b[j] : 0;
                for (int q = 0; q < k; q++) s += (double)x[i * k + q] * w[j * k + q];
                want[i * o + j] = (float)s;
            }
        CHECK_ARRAYS(with_bias ? "y (bias)" : "y (no bias)", y, want, n * o, 1e-6, 1e-5);
        free(y), free(want);
    }
    free(x), free(w), free(b);
}

typedef struct dense_ctx {
    float *x, *w, *b, *y;
    const float *g;
    int n, k, o;
} dense_ctx;

static double dense_loss(void *p)
{
    dense_ctx *c = p;
    mm_cpu_dense_forward(c->y, c->x, c->w, c->b, c->n, c->k, c->o);
    return tdot(c->g, c->y, (int64_t)c->n * c->o);
}

MM_TEST(dense_backward_matches_finite_differences)
{
    const int n = 2, k = 9, o = 4;
    float *x = trand(n * k, 1, -1, 1), *w = trand(o * k, 2, -1, 1), *b = trand(o, 3, -1, 1);
    float *g = trand(n * o, 4, -1, 1), *y = tbuf(n * o);
    dense_ctx ctx = {x, w, b, y, g, n, k, o};
    float *dx = tbuf(n * k), *w0 = trand(o * k, 5, -2, 2), *dw = tcopy(w0, o * k);
    float *b0 = trand(o, 6, -2, 2), *db = tcopy(b0, o);
    tfill(dx, n * k, NAN);
    mm_cpu_dense_backward_data(dx, g, w, n, k, o);
    mm_cpu_dense_backward_weight(dw, db, g, x, n, k, o);
    for (int i = 0; i < o * k; i++) dw[i] -= w0[i];
    for (int i = 0; i < o; i++) db[i] -= b0[i];
    CHECK_FD("dense dx", dx, x, n * k, dense_loss, &ctx, 0.05f, 1e-3);
    CHECK_FD("dense dw", dw, w, o * k, dense_loss, &ctx, 0.05f, 1e-3);
    CHECK_FD("dense db", db, b, o, dense_loss, &ctx, 0.05f, 1e-3);
    /* Without a bias gradient buffer the weight gradient is the same. */
    float *dw2 = tbuf(o * k);
    tfill(dw2, o * k, 0);
    mm_cpu_dense_backward_weight(dw2, NULL, g, x, n, k, o);
    CHECK_ARRAYS("dw (no db)", dw2, dw, o * k, 1e-5, 1e-5);
    free(x), free(w), free(b), free(g), free(y), free(dx), free(w0), free(dw), free(b0);
    free(db), free(dw2);
}

/* Products big enough to be split between threads (by rows of C or by columns), with thread
 * counts that do not divide the sizes: forward and both backward GEMMs against naive sums. */
MM_TEST(dense_split_between_threads)
{
    /* n, k, o */
    static const int shapes[][3] = {{3, 200, 70}, {70, 200, 3}, {37, 50, 41}, {5, 20, 40}};
    int saved = omp_get_max_threads();
    for (int si = 0; si < 4; si++) {
        const int n = shapes[si][0], k = shapes[si][1], o = shapes[si][2];
        float *x = trand(n * k, 1, -1, 1), *w = trand(o * k, 2, -1, 1), *g = trand(n * o, 3, -1, 1);
        float *y = tbuf(n * o), *dx = tbuf(n * k), *dw = tbuf(o * k);
        float *wy = tbuf(n * o), *wdx = tbuf(n * k), *wdw = tbuf(o * k);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < o; j++) {
                double s = 0;
                for (int q = 0; q < k; q++) s += (double)x[i * k + q] * w[j * k + q];
                wy[i * o + j] = (float)s;
            }
        for (int i = 0; i < n; i++)
            for (int q = 0; q < k; q++) {
                double s = 0;
                for (int j = 0; j < o; j++) s += (double)g[i * o + j] * w[j * k + q];
                wdx[i * k + q] = (float)s;
            }
        for (int j = 0; j < o; j++)
            for (int q = 0; q < k; q++) {
                double s = 0;
                for (int i = 0; i < n; i++) s += (double)g[i * o + j] * x[i * k + q];
                wdw[j * k + q] = (float)s;
            }
        for (int threads = 1; threads <= 3; threads += 2) { /* 1, 3 */
            omp_set_num_threads(threads);
            tfill(dw, o * k, 0);
            mm_cpu_dense_forward(y, x, w, NULL, n, k, o);
            mm_cpu_dense_backward_data(dx, g, w, n, k, o);
            mm_cpu_dense_backward_weight(dw, NULL, g, x, n, k, o);
            CHECK_ARRAYS("split y", y, wy, n * o, 1e-4, 1e-4);
            CHECK_ARRAYS("split dx", dx, wdx, n * k, 1e-4, 1e-4);
            CHECK_ARRAYS("split dw", dw, wdw, o * k, 1e-4, 1e-4);
        }
        free(x), free(w), free(g), free(y), free(dx), free(dw), free(wy), free(wdx), free(wdw);
    }
    omp_set_num_threads(saved);
}

/* The convolution cases again with 3 threads (blocks that do not divide the sizes). */
MM_TEST(conv_with_three_threads)
{
    int saved = omp_get_max_threads();
    omp_set_num_threads(3);
    for (int ci = 0; ci < N_CONV_CASES; ci++) {
        const conv_case *cc = &conv_cases[ci];
        mm_conv_dims d = conv_dims_of(cc);
        int64_t nx = (int64_t)d.n * d.h * d.w * d.c, nw = (int64_t)d.k * d.r * d.s * d.c;
        int64_t ny = (int64_t)d.n * d.oh * d.ow * d.k;
        float *x = trand(nx, 700 + ci, -1, 1), *w = trand(nw, 710 + ci, -1, 1);
        float *g = trand(ny, 720 + ci, -1, 1);
        float *y = tbuf(ny), *want = tbuf(ny), *dx = tbuf(nx), *dw = tbuf(nw);
        void *ws = conv_setup_ws(cc, &d);
        mm_cpu_conv2d_forward(y, x, w, NULL, &d, ws);
        naive_conv(want, x, w, NULL, &d);
        CHECK_ARRAYS("3 threads y", y, want, ny, 1e-5, 1e-5);
        /* <g, conv(x)> = <conv^T(g), x>: backward data and filter against the forward. */
        tfill(dw, nw, 0);
        mm_cpu_conv2d_backward_data(dx, g, w, &d, ws);
        mm_cpu_conv2d_backward_filter(dw, g, x, &d, ws);
        double lhs = tdot(g, want, ny);
        CHECK_CLOSE(tdot(dx, x, nx), lhs, 1e-4, 1e-5);
        CHECK_CLOSE(tdot(dw, w, nw), lhs, 1e-4, 1e-5);
        free(x), free(w), free(g), free(y), free(want), free(dx), free(dw), free(ws);
    }
    omp_set_num_threads(saved);
    mm_cpu_conv_ws_budget = MM_DEFAULT_WS_BUDGET;
    mm_cpu_conv_turn_min_pixels = MM_DEFAULT_TURN_MIN;
}
