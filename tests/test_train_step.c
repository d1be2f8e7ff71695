/* Three training steps against PyTorch: a small conv net (conv3x3, batch norm, ReLU, global
 * average pooling, dense) with class-balanced sample weights computed by mm_class_balanced_weights,
 * the weighted cross-entropy, Adam with L2 weight decay, on the cpu backend. The fixtures
 * (the .npy files in tests/fixtures/train) are made by tests/fixtures/make_train_fixtures.py with PyTorch: the
 * loss of every step, the parameters and BN running statistics after the third. */
#include <stdlib.h>
#include <string.h>

#include "runtime/backend.h"
#include "runtime/graph.h"
#include "runtime/npy.h"
#include "runtime/session.h"
#include "tests/harness.h"
#include "train/class_weights.h"

static float *fixture(const char *name, int64_t *n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/fixtures/train/%s.npy", MM_SOURCE_DIR, name);
    mm_npy_array a;
    if (mm_npy_load(&a, path) != MM_OK) {
        mm_test_fail_at(__FILE__, __LINE__, "%s", mm_last_error());
        return NULL;
    }
    float *out = mm_xmalloc(a.bytes ? a.bytes : 4);
    memcpy(out, a.data, a.bytes);
    if (n) *n = a.numel;
    mm_npy_array_free(&a);
    return out;
}

/* OIHW -> OHWI, and back. */
static void oihw_to_ohwi(float *dst, const float *src, int o, int i, int h, int w)
{
    for (int a = 0; a < o; a++)
        for (int b = 0; b < i; b++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    dst[((a * h + y) * w + x) * i + b] = src[((a * i + b) * h + y) * w + x];
}

MM_TEST(three_adam_steps_with_class_weights_match_pytorch)
{
    enum { N = 4, C = 4, H = 5, W = 7, K = 6, CLASSES = 3 };
    mm_graph *g = mm_graph_new(true);
    int64_t xs[4] = {N, H, W, C}, ws[4] = {K, 3, 3, C}, cs[1] = {K}, fws[2] = {CLASSES, K},
            fbs[1] = {CLASSES}, ns[1] = {N};
    int x = mm_graph_input(g, "x", MM_F32, 4, xs);
    int labels = mm_graph_input(g, "labels", MM_I32, 1, ns);
    int weights = mm_graph_input(g, "weights", MM_F32, 1, ns);
    int cw = mm_graph_param(g, "conv.weight", 4, ws);
    int gamma = mm_graph_param(g, "bn.weight", 1, cs), beta = mm_graph_param(g, "bn.bias", 1, cs);
    int rm = mm_graph_state(g, "bn.running_mean", 1, cs), rv = mm_graph_state(g, "bn.running_var", 1, cs);
    int fw = mm_graph_param(g, "fc.weight", 2, fws), fb = mm_graph_param(g, "fc.bias", 1, fbs);
    int y = mm_relu(g, mm_batchnorm(g, mm_conv2d(g, x, cw, -1, 1, 1), gamma, beta, rm, rv, 1e-5f, 0.1f));
    int loss = mm_softmax_xent(g, mm_dense(g, mm_global_avgpool(g, y), fw, fb), labels, weights);
    CHECK(mm_graph_backward(g, loss) == MM_OK);
    mm_backend *be;
    mm_backend_cpu_create(&be);
    mm_session s;
    CHECK(mm_session_init(&s, g, be, 2) == MM_OK);

    /* inputs and initial parameters in our layouts */
    float *x_nchw = fixture("x", NULL), *w_oihw = fixture("conv_w0", NULL);
    float *labels_f = fixture("labels", NULL); /* int32 bytes */
    float *want_w = fixture("weights", NULL);
    if (!x_nchw || !w_oihw || !labels_f || !want_w) return;
    float xin[N * H * W * C], w_ohwi[K * 3 * 3 * C];
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int i = 0; i < H * W; i++) xin[(n * H * W + i) * C + c] = x_nchw[(n * C + c) * H * W + i];
    oihw_to_ohwi(w_ohwi, w_oihw, K, C, 3, 3);
    int32_t lab[N];
    memcpy(lab, labels_f, sizeof lab);
    float wts[N];
    mm_class_balanced_weights(wts, lab, N, CLASSES);
    CHECK_ARRAYS("class-balanced weights", wts, want_w, N, 0, 0);
    mm_session_write(&s, x, xin, sizeof xin);
    mm_session_write(&s, labels, lab, sizeof lab);
    mm_session_write(&s, weights, wts, sizeof wts);
    mm_session_write(&s, cw, w_ohwi, sizeof w_ohwi);
    const char *names0[4] = {"gamma0", "beta0", "fc_w0", "fc_b0"};
    int ids[4] = {gamma, beta, fw, fb};
    for (int k = 0; k < 4; k++) {
        int64_t n;
        float *v = fixture(names0[k], &n);
        if (v) mm_session_write(&s, ids[k], v, (size_t)n * sizeof(float));
        free(v);
    }
    float ones[K], zeros[K];
    for (int k = 0; k < K; k++) ones[k] = 1.0f, zeros[k] = 0.0f;
    mm_session_write(&s, rm, zeros, sizeof zeros);
    mm_session_write(&s, rv, ones, sizeof ones);

    /* three steps on the same batch */
    float got_losses[3];
    for (int step = 1; step <= 3; step++) {
        mm_session_run(&s);
        mm_session_read(&s, loss, &got_losses[step - 1], sizeof(float));
        mm_adam_params a = {.lr = 1e-2, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                            .weight_decay = 1e-3, .decoupled = 0, .step = step};
        mm_session_adam(&s, &a);
    }
    float *want_losses = fixture("losses", NULL);
    if (want_losses) CHECK_ARRAYS("losses", got_losses, want_losses, 3, 1e-6, 1e-5);

    /* parameters and statistics after step 3 */
    float got_w[K * 3 * 3 * C], want_ohwi[K * 3 * 3 * C];
    float *w3 = fixture("conv_w3", NULL);
    mm_session_read(&s, cw, got_w, sizeof got_w);
    if (w3) {
        oihw_to_ohwi(want_ohwi, w3, K, C, 3, 3);
        CHECK_ARRAYS("conv.weight", got_w, want_ohwi, K * 9 * C, 1e-6, 1e-4);
    }
    const char *names3[6] = {"gamma3", "beta3", "fc_w3", "fc_b3", "running_mean3", "running_var3"};
    int ids3[6] = {gamma, beta, fw, fb, rm, rv};
    for (int k = 0; k < 6; k++) {
        int64_t n;
        float *want = fixture(names3[k], &n);
        if (!want) continue;
        float *got = malloc((size_t)n * sizeof(float));
        mm_session_read(&s, ids3[k], got, (size_t)n * sizeof(float));
        CHECK_ARRAYS(names3[k], got, want, n, 1e-6, 1e-4);
        free(got);
        free(want);
    }
    free(x_nchw);
    free(w_oihw);
    free(labels_f);
    free(want_w);
    free(want_losses);
    free(w3);
    mm_session_free(&s);
    mm_backend_destroy(be);
    mm_graph_free(g);
}
