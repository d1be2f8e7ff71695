/* CPU kernels, part 3: ReLU, add, scale, dropout, softmax, weighted cross-entropy, flips. Forward
 * against naive definitions, backward against finite differences, in-place calls where the
 * header allows them. */
#include <math.h>
#include <stdlib.h>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/philox.h"
#include "tests/grad_check.h"
#include "tests/harness.h"

/* Values in +-[0.1, 1): away from ReLU's kink by more than the finite-difference step. */
static float *away_from_zero(int64_t n, uint64_t seed)
{
    float *x = trand(n, seed, 0.1f, 1.0f);
    for (int64_t i = 0; i < n; i++)
        if (mm_philox_u32(seed + 1000, (uint64_t)i) & 1) x[i] = -x[i];
    return x;
}

typedef struct unary_ctx {
    float *x, *y;
    const float *g;
    int64_t n;
    int kind; /* 0 relu, 1 dropout */
    float p;
    uint8_t *mask;
} unary_ctx;

static double unary_loss(void *v)
{
    unary_ctx *c = v;
    if (c->kind == 0) mm_cpu_relu_forward(c->y, c->x, c->n);
    if (c->kind == 1) mm_cpu_dropout_forward(c->y, c->mask, c->x, c->n, c->p, 77);
    return tdot(c->g, c->y, c->n);
}

MM_TEST(relu_forward_backward_in_place)
{
    const int64_t n = 1001;
    float *x = away_from_zero(n, 1), *y = tbuf(n), *want = tbuf(n), *g = trand(n, 2, -1, 1);
    mm_cpu_relu_forward(y, x, n);
    for (int64_t i = 0; i < n; i++) want[i] = x[i] > 0 ? x[i] : 0;
    CHECK_ARRAYS("relu y", y, want, n, 0, 0);

    float *dx = tbuf(n);
    mm_cpu_relu_backward(dx, g, y, n);
    unary_ctx ctx = {x, tbuf(n), g, n, 0, 0, NULL};
    CHECK_FD("relu dx", dx, x, n, unary_loss, &ctx, 0.01f, 1e-4);

    float *inplace = tcopy(x, n);
    mm_cpu_relu_forward(inplace, inplace, n);
    CHECK_ARRAYS("in-place relu y", inplace, y, n, 0, 0);
    float *ding = tcopy(g, n);
    mm_cpu_relu_backward(ding, ding, inplace, n);
    CHECK_ARRAYS("in-place relu dx", ding, dx, n, 0, 0);
    free(x), free(y), free(want), free(g), free(dx), free(ctx.y), free(inplace), free(ding);
}

/* The ReLU backward from y's sign as bits (runtime/relu_mask.c) equals the one from y, in place
 * too, for sizes that leave a partial last byte and sizes split over the threads. */
MM_TEST(relu_backward_from_bits)
{
    const int64_t sizes[] = {1, 13, 64, 40001, 100003};
    for (int si = 0; si < 5; si++) {
        int64_t n = sizes[si];
        float *y = trand(n, 300 + si, -1, 1), *g = trand(n, 310 + si, -1, 1);
        float *want = tbuf(n), *dx = tbuf(n);
        for (int64_t i = 0; i < n; i += 5) y[i] = 0.0f; /* zero: the bit is clear */
        uint8_t *bits = mm_xmalloc((size_t)(n + 7) / 8);
        mm_cpu_relu_mask(bits, y, n);
        int64_t wrong = 0;
        for (int64_t i = 0; i < n; i++) wrong += ((bits[i / 8] >> (i % 8)) & 1) != (y[i] > 0.0f);
        CHECK_MSG(wrong == 0, "n %lld: %lld bits wrong", (long long)n, (long long)wrong);
        mm_cpu_relu_backward(want, g, y, n);
        mm_cpu_relu_backward_bits(dx, g, bits, n);
        CHECK_ARRAYS("relu dx from bits", dx, want, n, 0, 0);
        mm_cpu_relu_backward_bits(g, g, bits, n);
        CHECK_ARRAYS("in-place relu dx from bits", g, want, n, 0, 0);
        free(y), free(g), free(want), free(dx), free(bits);
    }
}

MM_TEST(add_and_scale_in_place)
{
    const int64_t n = 999;
    float *a = trand(n, 1, -1, 1), *b = trand(n, 2, -1, 1), *y = tbuf(n), *want = tbuf(n);
    for (int64_t i = 0; i < n; i++) want[i] = a[i] + b[i];
    mm_cpu_add(y, a, b, n);
    CHECK_ARRAYS("add", y, want, n, 0, 0);
    float *a2 = tcopy(a, n), *b2 = tcopy(b, n);
    mm_cpu_add(a2, a2, b, n);
    CHECK_ARRAYS("add into a", a2, want, n, 0, 0);
    mm_cpu_add(b2, a, b2, n);
    CHECK_ARRAYS("add into b", b2, want, n, 0, 0);

    for (int64_t i = 0; i < n; i++) want[i] = -2.5f * a[i];
    mm_cpu_scale(y, a, -2.5f, n);
    CHECK_ARRAYS("scale", y, want, n, 0, 0);
    mm_cpu_scale(a, a, -2.5f, n);
    CHECK_ARRAYS("scale in place", a, want, n, 0, 0);
    free(a), free(b), free(y), free(want), free(a2), free(b2);
}

MM_TEST(dropout_mask_statistics_and_definition)
{
    const int64_t n = 100003; /* not a multiple of Philox's 4 words */
    const float p = 0.3f;
    float *x = trand(n, 1, -1, 1), *y = tbuf(n);
    uint8_t *mask = mm_xmalloc((size_t)n), *mask2 = mm_xmalloc((size_t)n);
    mm_cpu_dropout_forward(y, mask, x, n, p, 1234);
    int64_t kept = 0, bad_mask = 0, bad_y = 0;
    for (int64_t i = 0; i < n; i++) {
        kept += mask[i];
        bad_mask += mask[i] != (mm_philox_uniform(1234, (uint64_t)i) >= p);
        float want = mask[i] ? x[i] / (1 - p) : 0.0f;
        bad_y += fabsf(y[i] - want) > 1e-6f * (1 + fabsf(want));
    }
    CHECK_CLOSE((double)kept / n, 1 - p, 0.01, 0);
    CHECK_EQ_INT(bad_mask, 0);
    CHECK_EQ_INT(bad_y, 0);

    /* Same seed, same mask (also in place); another seed, another mask. */
    float *inplace = tcopy(x, n);
    mm_cpu_dropout_forward(inplace, mask2, inplace, n, p, 1234);
    int64_t same = 0;
    for (int64_t i = 0; i < n; i++) same += mask2[i] == mask[i];
    CHECK_EQ_INT(same, n);
    CHECK_ARRAYS("in-place dropout y", inplace, y, n, 0, 0);
    mm_cpu_dropout_forward(y, mask2, x, n, p, 1235);
    int64_t differ = 0;
    for (int64_t i = 0; i < n; i++) differ += mask2[i] != mask[i];
    CHECK_CLOSE((double)differ / n, 2 * p * (1 - p), 0.01, 0); /* independent masks */

    /* p = 0 keeps everything unchanged. */
    mm_cpu_dropout_forward(y, mask2, x, n, 0.0f, 9);
    CHECK_ARRAYS("dropout p=0", y, x, n, 0, 0);
    free(x), free(y), free(mask), free(mask2), free(inplace);
}

MM_TEST(dropout_backward_consistent_with_forward)
{
    const int64_t n = 45;
    const float p = 0.4f;
    float *x = trand(n, 3, -1, 1), *y = tbuf(n), *g = trand(n, 4, -1, 1), *dx = tbuf(n);
    uint8_t *mask = mm_xmalloc((size_t)n);
    unary_ctx ctx = {x, y, g, n, 1, p, mask};
    unary_loss(&ctx);
    mm_cpu_dropout_backward(dx, g, mask, n, p);
    CHECK_FD("dropout dx", dx, x, n, unary_loss, &ctx, 0.05f, 1e-4);
    float *ding = tcopy(g, n);
    mm_cpu_dropout_backward(ding, ding, mask, n, p);
    CHECK_ARRAYS("in-place dropout dx", ding, dx, n, 0, 0);
    free(x), free(y), free(g), free(dx), free(mask), free(ding);
}

/* ---- softmax and cross-entropy ---- */

static void naive_softmax(double *y, const float *x, int c)
{
    double mx = x[0], s = 0;
    for (int j = 1; j < c; j++) mx = x[j] > mx ? x[j] : mx;
    for (int j = 0; j < c; j++) s += exp(x[j] - mx);
    for (int j = 0; j < c; j++) y[j] = exp(x[j] - mx) / s;
}

MM_TEST(softmax_matches_naive_and_is_stable)
{
    const int n = 4, c = 6;
    float *x = trand(n * c, 1, -3, 3), *y = tbuf(n * c), *want = tbuf(n * c);
    for (int j = 0; j < c; j++) x[3 * c + j] += 1000.0f; /* exp(1000) overflows without the max */
    mm_cpu_softmax(y, x, n, c);
    for (int i = 0; i < n; i++) {
        double p[6];
        naive_softmax(p, x + i * c, c);
        double sum = 0;
        for (int j = 0; j < c; j++) want[i * c + j] = (float)p[j], sum += y[i * c + j];
        CHECK_CLOSE(sum, 1.0, 1e-6, 0);
    }
    CHECK_ARRAYS("softmax", y, want, n * c, 1e-6, 1e-5);
    free(x), free(y), free(want);
}

typedef struct xent_ctx {
    float *logits, *probs;
    const int32_t *labels;
    const float *weights;
    int n, c;
} xent_ctx;

static double xent_loss(void *v)
{
    xent_ctx *x = v;
    float loss;
    mm_cpu_softmax_xent_forward(&loss, x->probs, x->logits, x->labels, x->weights, x->n, x->c);
    return loss;
}

MM_TEST(softmax_xent_weighted_forward_and_backward)
{
    const int n = 5, c = 4;
    const int32_t labels[5] = {0, 3, 1, 1, 2};
    const float weights[5] = {0.5f, 2.0f, 1.0f, 0.25f, 3.0f};
    float *logits = trand(n * c, 1, -2, 2), *probs = tbuf(n * c), *dl = tbuf(n * c);
    for (int use_w = 0; use_w < 2; use_w++) {
        const float *w = use_w ? weights : NULL;
        double num = 0, den = 0;
        for (int i = 0; i < n; i++) {
            double p[4], wi = w ? w[i] : 1.0;
            naive_softmax(p, logits + i * c, c);
            num += wi * -log(p[labels[i]]);
            den += wi;
        }
        xent_ctx ctx = {logits, probs, labels, w, n, c};
        CHECK_CLOSE(xent_loss(&ctx), num / den, 1e-6, 1e-6);
        /* dloss scales the gradient (the loss may be scaled, e.g. for accumulation). */
        xent_loss(&ctx);
        mm_cpu_softmax_xent_backward(dl, probs, labels, w, 2.0f, n, c);
        for (int i = 0; i < n * c; i++) dl[i] *= 0.5f;
        CHECK_FD(use_w ? "weighted xent dlogits" : "xent dlogits", dl, logits, n * c, xent_loss,
                 &ctx, 1e-2f, 2e-3);
    }
    free(logits), free(probs), free(dl);
}

MM_TEST(softmax_xent_zero_weight_and_extreme_logits)
{
    const int n = 3, c = 3;
    const int32_t labels[3] = {2, 0, 1};
    const float zero_w[3] = {0, 0, 0};
    float logits[9] = {1e4f, -1e4f, 0, 3e4f, 3e4f, -3e4f, 50, 0, -50};
    float probs[9], dl[9], loss = NAN;
    mm_cpu_softmax_xent_forward(&loss, probs, logits, labels, zero_w, n, c);
    CHECK(loss == 0.0f);
    tfill(dl, 9, NAN);
    mm_cpu_softmax_xent_backward(dl, probs, labels, zero_w, 1.0f, n, c);
    for (int i = 0; i < 9; i++) CHECK(dl[i] == 0.0f);

    /* Huge logits: the losses are the exact log-sum-exp values, not inf or NaN. */
    mm_cpu_softmax_xent_forward(&loss, probs, logits, labels, NULL, n, c);
    /* rows: 1e4 - 0;  -log(1/2);  50 + log(1 + e^-50 + e^-100) - 0 */
    double want = (1e4 + log(2.0) + 50) / 3;
    CHECK(isfinite(loss));
    CHECK_CLOSE(loss, want, 1e-3, 1e-6);
    for (int i = 0; i < 9; i++) CHECK(isfinite(probs[i]));
}

/* ---- flips ---- */

MM_TEST(flip_both_axes)
{
    const int n = 2, h = 3, w = 5, c = 2;
    const int64_t sz = (int64_t)n * h * w * c;
    float *x = trand(sz, 1, -1, 1), *y = tbuf(sz), *z = tbuf(sz), *want = tbuf(sz);
    for (int axis = 1; axis <= 2; axis++) {
        mm_cpu_flip(y, x, n, h, w, c, axis);
        for (int i = 0; i < n; i++)
            for (int r = 0; r < h; r++)
                for (int q = 0; q < w; q++)
                    for (int k = 0; k < c; k++) {
                        int sr = axis == 1 ? h - 1 - r : r, sq = axis == 2 ? w - 1 - q : q;
                        want[((i * h + r) * w + q) * c + k] = x[((i * h + sr) * w + sq) * c + k];
                    }
        CHECK_ARRAYS(axis == 1 ? "vertical flip" : "horizontal flip", y, want, sz, 0, 0);
        mm_cpu_flip(z, y, n, h, w, c, axis);
        CHECK_ARRAYS("flip twice", z, x, sz, 0, 0);
    }
    free(x), free(y), free(z), free(want);
}
