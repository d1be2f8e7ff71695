/* CPU kernels, part 2: max, average, adaptive average and global average pooling. Forward against
 * naive loops (max pooling's recorded argmax too), backward against finite differences (max
 * pooling on distinct values spaced well beyond the step, so no window's argmax changes) and, for
 * ties and for the folded ReLU backward, against a naive scatter. */
#include <math.h>
#include <stdlib.h>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/philox.h"
#include "tests/grad_check.h"
#include "tests/harness.h"

typedef struct pool_case {
    int n, h, w, c, kh, kw, sh, sw, ph, pw, include_pad;
} pool_case;

static mm_pool_dims pool_dims_of(const pool_case *pc)
{
    mm_pool_dims d = {.n = pc->n, .h = pc->h, .w = pc->w, .c = pc->c, .kh = pc->kh, .kw = pc->kw,
                      .stride_h = pc->sh, .stride_w = pc->sw, .pad_h = pc->ph, .pad_w = pc->pw,
                      .count_include_pad = pc->include_pad};
    MM_ASSERT(mm_pool_dims_finish(&d));
    return d;
}

static const pool_case pool_cases[] = {
    /* n  h  w  c kh kw sh sw ph pw incl */
    {2, 7, 9, 3, 3, 3, 2, 2, 1, 1, 1}, /* ResNet's stem pool: 3x3 stride 2 pad 1 */
    {1, 8, 6, 2, 2, 2, 2, 2, 0, 0, 1}, /* VGG's 2x2 stride 2 */
    {2, 5, 7, 4, 3, 3, 1, 1, 1, 1, 0}, /* overlapping windows, stride 1 */
    {1, 9, 8, 3, 3, 2, 1, 2, 1, 0, 1}, /* rectangular window, mixed strides */
    {2, 11, 10, 2, 5, 3, 2, 1, 2, 1, 0}, /* tall window */
    {1, 7, 9, 3, 3, 3, 2, 2, 1, 1, 0}, /* stem pool without counting padding */
};
#define N_POOL_CASES ((int)(sizeof pool_cases / sizeof pool_cases[0]))

static int64_t in_size(const mm_pool_dims *d) { return (int64_t)d->n * d->h * d->w * d->c; }
static int64_t out_size(const mm_pool_dims *d) { return (int64_t)d->n * d->oh * d->ow * d->c; }
static int64_t at(const mm_pool_dims *d, int n, int y, int x, int c, int oh, int ow)
{
    return (((int64_t)n * oh + y) * ow + x) * d->c + c;
}

/* Naive max pooling: positions in the padding count as -inf; strict '>' keeps the first max.
 * arg (optional) receives the input index of each output's maximum. */
static void naive_maxpool(float *y, int64_t *arg, const float *x, const mm_pool_dims *d)
{
    for (int n = 0; n < d->n; n++)
        for (int oy = 0; oy < d->oh; oy++)
            for (int ox = 0; ox < d->ow; ox++)
                for (int c = 0; c < d->c; c++) {
                    float best = -INFINITY;
                    int64_t best_at = -1;
                    for (int ky = 0; ky < d->kh; ky++)
                        for (int kx = 0; kx < d->kw; kx++) {
                            int iy = oy * d->stride_h - d->pad_h + ky;
                            int ix = ox * d->stride_w - d->pad_w + kx;
                            int inside = iy >= 0 && iy < d->h && ix >= 0 && ix < d->w;
                            int64_t i = inside ? at(d, n, iy, ix, c, d->h, d->w) : -1;
                            float v = inside ? x[i] : -INFINITY;
                            if (v > best) best = v, best_at = i;
                        }
                    int64_t o = at(d, n, oy, ox, c, d->oh, d->ow);
                    y[o] = best;
                    if (arg) arg[o] = best_at;
                }
}

/* Distinct values in [lo, lo + 0.05 * n): a shuffled arithmetic sequence. */
static float *distinct_values(int64_t n, uint64_t seed, float lo)
{
    float *x = tbuf(n);
    for (int64_t i = 0; i < n; i++) x[i] = lo + 0.05f * (float)i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(mm_philox_uniform(seed, (uint64_t)i) * (float)(i + 1));
        float t = x[i];
        x[i] = x[j], x[j] = t;
    }
    return x;
}

/* The input index that output o's window tap points at. */
static int64_t tap_index(const mm_pool_dims *d, int64_t o, int tap)
{
    int c = (int)(o % d->c), ox = (int)(o / d->c % d->ow), oy = (int)(o / d->c / d->ow % d->oh);
    int n = (int)(o / d->c / d->ow / d->oh);
    int iy = oy * d->stride_h - d->pad_h + tap / d->kw, ix = ox * d->stride_w - d->pad_w + tap % d->kw;
    return at(d, n, iy, ix, c, d->h, d->w);
}

MM_TEST(maxpool_forward_matches_naive)
{
    for (int ci = 0; ci < N_POOL_CASES; ci++) {
        mm_pool_dims d = pool_dims_of(&pool_cases[ci]);
        int64_t nout = out_size(&d);
        /* All-negative inputs: a zero-padded pool would wrongly return 0 at the borders. */
        float *x = trand(in_size(&d), 10 + ci, -3, -1), *y = tbuf(nout), *want = tbuf(nout),
              *y2 = tbuf(nout);
        int64_t *arg = mm_xmalloc(sizeof(int64_t) * (size_t)nout);
        uint8_t *taps = mm_xmalloc((size_t)nout);
        mm_cpu_maxpool_forward(y, taps, x, &d);
        mm_cpu_maxpool_forward(y2, NULL, x, &d);
        naive_maxpool(want, arg, x, &d);
        CHECK_ARRAYS("maxpool y", y, want, nout, 0, 0);
        CHECK_ARRAYS("maxpool y without argmax", y2, want, nout, 0, 0);
        int64_t wrong = 0;
        for (int64_t o = 0; o < nout; o++) wrong += tap_index(&d, o, taps[o]) != arg[o];
        CHECK_MSG(wrong == 0, "case %d: %lld of %lld argmax taps wrong", ci, (long long)wrong,
                  (long long)nout);
        free(x), free(y), free(want), free(y2), free(arg), free(taps);
    }
}

typedef struct pool_ctx {
    const mm_pool_dims *d;
    float *x, *y;
    const float *g;
    int kind; /* 0 max, 1 avg, 2 adaptive */
} pool_ctx;

static double pool_loss(void *p)
{
    pool_ctx *c = p;
    if (c->kind == 0) mm_cpu_maxpool_forward(c->y, NULL, c->x, c->d);
    if (c->kind == 1) mm_cpu_avgpool_forward(c->y, c->x, c->d);
    if (c->kind == 2) mm_cpu_adaptive_avgpool_forward(c->y, c->x, c->d);
    return tdot(c->g, c->y, out_size(c->d));
}

MM_TEST(maxpool_backward_matches_finite_differences)
{
    for (int ci = 0; ci < N_POOL_CASES; ci++) {
        mm_pool_dims d = pool_dims_of(&pool_cases[ci]);
        float *x = distinct_values(in_size(&d), 20 + ci, -4), *y = tbuf(out_size(&d));
        float *g = trand(out_size(&d), 30 + ci, -1, 1), *dx = tbuf(in_size(&d));
        uint8_t *taps = mm_xmalloc((size_t)out_size(&d));
        mm_cpu_maxpool_forward(y, taps, x, &d);
        tfill(dx, in_size(&d), NAN);
        mm_cpu_maxpool_backward(dx, g, taps, NULL, &d);
        pool_ctx ctx = {&d, x, y, g, 0};
        char what[64];
        snprintf(what, sizeof what, "maxpool case %d dx", ci);
        CHECK_FD(what, dx, x, in_size(&d), pool_loss, &ctx, 0.01f, 1e-3);
        free(x), free(y), free(g), free(dx), free(taps);
    }
}

/* pool(relu(x)) backward in one pass (relu_mask): the same as ReLU's backward applied to the
 * plain max-pool backward, on inputs of both signs (windows of zeros after the ReLU: ties at 0,
 * whose gradient the mask drops). */
MM_TEST(maxpool_backward_with_relu_folded_in)
{
    for (int ci = 0; ci < N_POOL_CASES; ci++) {
        mm_pool_dims d = pool_dims_of(&pool_cases[ci]);
        int64_t nin = in_size(&d), nout = out_size(&d);
        float *x = distinct_values(nin, 60 + ci, -0.03f * (float)nin), *r = tbuf(nin);
        float *y = tbuf(nout), *g = trand(nout, 70 + ci, -1, 1), *dx = tbuf(nin), *want = tbuf(nin);
        int64_t *arg = mm_xmalloc(sizeof(int64_t) * (size_t)nout);
        uint8_t *taps = mm_xmalloc((size_t)nout);
        for (int64_t i = 0; i < nin; i++) r[i] = x[i] > 0 ? x[i] : 0.0f;
        mm_cpu_maxpool_forward(y, taps, r, &d);
        naive_maxpool(want, arg, r, &d);
        tfill(want, nin, 0);
        for (int64_t o = 0; o < nout; o++) want[arg[o]] += g[o];
        for (int64_t i = 0; i < nin; i++) want[i] = r[i] > 0 ? want[i] : 0.0f;
        d.relu_mask = 1;
        tfill(dx, nin, NAN);
        mm_cpu_maxpool_backward(dx, g, taps, y, &d);
        CHECK_ARRAYS("relu-masked maxpool dx", dx, want, nin, 1e-6, 1e-6); /* sum order */
        int64_t zeros = 0, pos = 0;
        for (int64_t i = 0; i < nin; i++) zeros += r[i] == 0, pos += r[i] > 0;
        CHECK(zeros > 0 && pos > 0);
        free(x), free(r), free(y), free(g), free(dx), free(want), free(arg), free(taps);
    }
}

/* Ties (a constant image, and a two-valued one): the gradient goes to the first maximum in
 * window order, as PyTorch does, and nowhere else. */
MM_TEST(maxpool_ties_go_to_first_max)
{
    for (int ci = 0; ci < N_POOL_CASES; ci++) {
        mm_pool_dims d = pool_dims_of(&pool_cases[ci]);
        int64_t nin = in_size(&d), nout = out_size(&d);
        float *x = tbuf(nin), *g = trand(nout, 40 + ci, 0.5f, 1), *dx = tbuf(nin),
              *want = tbuf(nin), *y = tbuf(nout);
        int64_t *arg = mm_xmalloc(sizeof(int64_t) * (size_t)nout);
        uint8_t *taps = mm_xmalloc((size_t)nout);
        for (int pattern = 0; pattern < 2; pattern++) {
            for (int64_t i = 0; i < nin; i++)
                x[i] = pattern == 0 ? 1.0f : (float)(mm_philox_u32(50 + ci, (uint64_t)i) & 1);
            naive_maxpool(y, arg, x, &d);
            tfill(want, nin, 0);
            for (int64_t o = 0; o < nout; o++) want[arg[o]] += g[o];
            mm_cpu_maxpool_forward(y, taps, x, &d);
            mm_cpu_maxpool_backward(dx, g, taps, NULL, &d);
            CHECK_ARRAYS(pattern == 0 ? "constant image dx" : "two-valued image dx", dx, want,
                         nin, 1e-6, 1e-6);
        }
        free(x), free(g), free(dx), free(want), free(y), free(arg), free(taps);
    }
}

static void naive_avgpool(float *y, const float *x, const mm_pool_dims *d)
{
    for (int n = 0; n < d->n; n++)
        for (int oy = 0; oy < d->oh; oy++)
            for (int ox = 0; ox < d->ow; ox++)
                for (int c = 0; c < d->c; c++) {
                    double s = 0;
                    int inside_count = 0;
                    for (int ky = 0; ky < d->kh; ky++)
                        for (int kx = 0; kx < d->kw; kx++) {
                            int iy = oy * d->stride_h - d->pad_h + ky;
                            int ix = ox * d->stride_w - d->pad_w + kx;
                            if (iy < 0 || iy >= d->h || ix < 0 || ix >= d->w) continue;
                            s += x[at(d, n, iy, ix, c, d->h, d->w)];
                            inside_count++;
                        }
                    int div = d->count_include_pad ? d->kh * d->kw : inside_count;
                    y[at(d, n, oy, ox, c, d->oh, d->ow)] = (float)(s / div);
                }
}

MM_TEST(avgpool_forward_and_backward)
{
    for (int ci = 0; ci < N_POOL_CASES; ci++) {
        mm_pool_dims d = pool_dims_of(&pool_cases[ci]);
        int64_t nin = in_size(&d), nout = out_size(&d);
        float *x = trand(nin, 60 + ci, -1, 1), *y = tbuf(nout), *want = tbuf(nout);
        mm_cpu_avgpool_forward(y, x, &d);
        naive_avgpool(want, x, &d);
        char what[64];
        snprintf(what, sizeof what, "avgpool case %d y", ci);
        CHECK_ARRAYS(what, y, want, nout, 1e-6, 1e-5);

        float *g = trand(nout, 70 + ci, -1, 1), *dx = tbuf(nin);
        tfill(dx, nin, NAN);
        mm_cpu_avgpool_backward(dx, g, &d);
        pool_ctx ctx = {&d, x, y, g, 1};
        snprintf(what, sizeof what, "avgpool case %d dx", ci);
        CHECK_FD(what, dx, x, nin, pool_loss, &ctx, 0.05f, 1e-3);
        free(x), free(y), free(want), free(g), free(dx);
    }
}

/* PyTorch's adaptive windows written out: [floor(i*in/out), ceil((i+1)*in/out)). */
static void naive_adaptive(float *y, const float *x, const mm_pool_dims *d)
{
    for (int n = 0; n < d->n; n++)
        for (int oy = 0; oy < d->oh; oy++)
            for (int ox = 0; ox < d->ow; ox++)
                for (int c = 0; c < d->c; c++) {
                    int hs = (int)floor((double)oy * d->h / d->oh);
                    int he = (int)ceil((double)(oy + 1) * d->h / d->oh);
                    int ws = (int)floor((double)ox * d->w / d->ow);
                    int we = (int)ceil((double)(ox + 1) * d->w / d->ow);
                    double s = 0;
                    for (int iy = hs; iy < he; iy++)
                        for (int ix = ws; ix < we; ix++) s += x[at(d, n, iy, ix, c, d->h, d->w)];
                    y[at(d, n, oy, ox, c, d->oh, d->ow)] = (float)(s / ((he - hs) * (we - ws)));
                }
}

MM_TEST(adaptive_avgpool_forward_and_backward)
{
    static const int shapes[][4] = {/* h w oh ow */
                                    {7, 7, 3, 3}, {5, 9, 2, 4}, {4, 3, 7, 5},
                                    {6, 6, 1, 1}, {10, 9, 3, 4}, {8, 8, 8, 8}};
    for (int ci = 0; ci < 6; ci++) {
        mm_pool_dims d = {.n = 2, .h = shapes[ci][0], .w = shapes[ci][1], .c = 3,
                          .oh = shapes[ci][2], .ow = shapes[ci][3]};
        int64_t nin = in_size(&d), nout = out_size(&d);
        float *x = trand(nin, 80 + ci, -1, 1), *y = tbuf(nout), *want = tbuf(nout);
        mm_cpu_adaptive_avgpool_forward(y, x, &d);
        naive_adaptive(want, x, &d);
        char what[64];
        snprintf(what, sizeof what, "adaptive case %d y", ci);
        CHECK_ARRAYS(what, y, want, nout, 1e-6, 1e-5);

        float *g = trand(nout, 90 + ci, -1, 1), *dx = tbuf(nin);
        tfill(dx, nin, NAN);
        mm_cpu_adaptive_avgpool_backward(dx, g, &d);
        pool_ctx ctx = {&d, x, y, g, 2};
        snprintf(what, sizeof what, "adaptive case %d dx", ci);
        CHECK_FD(what, dx, x, nin, pool_loss, &ctx, 0.05f, 1e-3);
        free(x), free(y), free(want), free(g), free(dx);
    }
}

MM_TEST(global_avgpool_forward_and_backward)
{
    const int n = 2, c = 70; /* more than one block of channels */
    const int64_t hw = 15;
    float *x = trand(n * hw * c, 1, -1, 1), *y = tbuf(n * c), *want = tbuf(n * c);
    mm_cpu_global_avgpool_forward(y, x, n, hw, c);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < c; j++) {
            double s = 0;
            for (int64_t p = 0; p < hw; p++) s += x[(i * hw + p) * c + j];
            want[i * c + j] = (float)(s / hw);
        }
    CHECK_ARRAYS("gap y", y, want, n * c, 1e-6, 1e-5);
    float *g = trand(n * c, 2, -1, 1), *dx = tbuf(n * hw * c), *wdx = tbuf(n * hw * c);
    tfill(dx, n * hw * c, NAN);
    mm_cpu_global_avgpool_backward(dx, g, n, hw, c);
    for (int i = 0; i < n; i++)
        for (int64_t p = 0; p < hw; p++)
            for (int j = 0; j < c; j++) wdx[(i * hw + p) * c + j] = g[i * c + j] / (float)hw;
    CHECK_ARRAYS("gap dx", dx, wdx, n * hw * c, 1e-7, 1e-6);
    /* The same as adaptive pooling to 1x1. */
    mm_pool_dims d = {.n = n, .h = 3, .w = 5, .c = c, .oh = 1, .ow = 1};
    mm_cpu_adaptive_avgpool_forward(want, x, &d);
    CHECK_ARRAYS("gap vs adaptive 1x1", y, want, n * c, 1e-6, 1e-5);
    free(x), free(y), free(want), free(g), free(dx), free(wdx);
}
