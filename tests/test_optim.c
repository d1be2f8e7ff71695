/* Optimizers on the CPU against PyTorch: three steps of Adam (with and without L2 weight decay),
 * AdamW, SGD with momentum, with Nesterov momentum and without momentum, from the fixtures of
 * tests/fixtures/make_optim_fixtures.py (torch.optim, CPU). Also: the OpenMP kernels give bitwise
 * the per-element math of kernels/optim_math.h (what the CUDA kernels run). */
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/optim_math.h"
#include "runtime/npy.h"
#include "tests/harness.h"

#define FIXTURES MM_SOURCE_DIR "/tests/fixtures/optim/"
#define STEPS 3

/* Tolerances: 1e-6 relative, but relative to the size of the terms that make each value, not
 * only to the value: PyTorch's vectorised kernels compute g + wd * p, m + (1 - beta1) * g and
 * p + step with FMAs (ours round the product first), so where the terms cancel the two differ by
 * about an ulp of the terms. A parameter is compared at the scale of max(|p|, |step|); Adam's m
 * at beta1 |m_prev| + (1 - beta1) gs and v at beta2 v_prev + (1 - beta2) gs^2, with gs = |g| +
 * |wd p| the size of the (L2-decayed) gradient's terms. */
#define ATOL 1e-8
#define RTOL 1e-6

/* |got - want| <= atol + RTOL * max(|want|, scale) elementwise. */
static void check_scaled(const char *what, const float *got, const float *want,
                         const double *scale, int64_t n, double atol)
{
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - want[i]);
        if (!(err <= atol + RTOL * fmax(fabs(want[i]), scale[i])) && bad++ < 3)
            mm_test_fail_at(__FILE__, __LINE__, "%s[%lld]: got %.9g want %.9g (scale %.3g)",
                            what, (long long)i, got[i], want[i], scale[i]);
    }
    CHECK_MSG(bad == 0, "%s: %d of %lld differ", what, bad, (long long)n);
}

/* The scale of a parameter update: max(|p|, |p - p_prev|) as in the fixture. */
static void param_scale(double *scale, const float *want, const float *prev, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        scale[i] = fmax(fabs(want[i]), fabs((double)want[i] - prev[i]));
}

/* A float32 fixture of shape [STEPS, n] (or [n] when steps is 0); NULL with a failed check. */
static float *load(const char *name, int steps, int64_t *n)
{
    char path[512];
    snprintf(path, sizeof path, FIXTURES "%s", name);
    mm_npy_array a;
    if (mm_npy_load(&a, path) != MM_OK) {
        CHECK_MSG(0, "%s", mm_last_error());
        return NULL;
    }
    int ok = a.dtype == MM_F32 && a.ndim == (steps ? 2 : 1) && (!steps || a.shape[0] == steps);
    CHECK_MSG(ok, "%s: unexpected dtype or shape", name);
    if (!ok) {
        mm_npy_array_free(&a);
        return NULL;
    }
    *n = a.shape[a.ndim - 1];
    return a.data;
}

typedef struct inputs {
    int64_t n;
    float *p0, *grads;
} inputs;

static int load_inputs(inputs *in)
{
    int64_t ng = 0;
    in->p0 = load("p0.npy", 0, &in->n);
    in->grads = load("grads.npy", STEPS, &ng);
    if (!in->p0 || !in->grads || ng != in->n) {
        CHECK_MSG(0, "optimizer fixtures missing or inconsistent");
        free(in->p0);
        free(in->grads);
        return 0;
    }
    return 1;
}

static void free_inputs(inputs *in)
{
    free(in->p0);
    free(in->grads);
}

/* Checks the optimizer moved the parameters far more than the tolerance, so a no-op or a wrong
 * step size cannot pass. */
static void check_moved(const float *p, const float *p0, int64_t n)
{
    double most = 0;
    for (int64_t i = 0; i < n; i++) most = fmax(most, fabs((double)p[i] - p0[i]));
    CHECK_MSG(most > 1e-3, "parameters barely moved (%g)", most);
}

static void run_adam(const char *name, double lr, double beta1, double beta2, double eps,
                     double wd, int decoupled)
{
    inputs in;
    if (!load_inputs(&in)) return;
    char file[64];
    int64_t n = in.n, k;
    snprintf(file, sizeof file, "%s_p.npy", name);
    float *want_p = load(file, STEPS, &k);
    snprintf(file, sizeof file, "%s_m.npy", name);
    float *want_m = load(file, STEPS, &k);
    snprintf(file, sizeof file, "%s_v.npy", name);
    float *want_v = load(file, STEPS, &k);
    float *p = malloc((size_t)n * sizeof(float));
    float *m = calloc((size_t)n, sizeof(float)), *v = calloc((size_t)n, sizeof(float));
    double *scale = malloc((size_t)n * sizeof(double));
    if (want_p && want_m && want_v) {
        memcpy(p, in.p0, (size_t)n * sizeof(float));
        for (int t = 0; t < STEPS; t++) {
            mm_adam_params a = {.lr = lr, .beta1 = beta1, .beta2 = beta2, .eps = eps,
                                .weight_decay = wd, .decoupled = decoupled, .step = t + 1};
            const float *g = in.grads + t * n;
            mm_cpu_adam(p, m, v, g, n, &a);
            /* the fixture's state before this step */
            const float *p_prev = t ? want_p + (t - 1) * n : in.p0;
            char what[64];
            snprintf(what, sizeof what, "%s step %d p", name, t + 1);
            param_scale(scale, want_p + t * n, p_prev, n);
            check_scaled(what, p, want_p + t * n, scale, n, ATOL);
            for (int64_t i = 0; i < n; i++) {
                double gs = fabs(g[i]) + (decoupled ? 0 : fabs(wd * p_prev[i]));
                double m_prev = t ? fabs(want_m[(t - 1) * n + i]) : 0;
                scale[i] = beta1 * m_prev + (1 - beta1) * gs;
            }
            snprintf(what, sizeof what, "%s step %d exp_avg", name, t + 1);
            check_scaled(what, m, want_m + t * n, scale, n, 0);
            for (int64_t i = 0; i < n; i++) {
                double gs = fabs(g[i]) + (decoupled ? 0 : fabs(wd * p_prev[i]));
                double v_prev = t ? want_v[(t - 1) * n + i] : 0;
                scale[i] = beta2 * v_prev + (1 - beta2) * gs * gs;
            }
            snprintf(what, sizeof what, "%s step %d exp_avg_sq", name, t + 1);
            check_scaled(what, v, want_v + t * n, scale, n, 0);
        }
        check_moved(p, in.p0, n);
    }
    free(scale);
    free(p);
    free(m);
    free(v);
    free(want_p);
    free(want_m);
    free(want_v);
    free_inputs(&in);
}

static void run_sgd(const char *name, double lr, double momentum, double wd, int nesterov)
{
    inputs in;
    if (!load_inputs(&in)) return;
    char file[64];
    int64_t n = in.n, k;
    snprintf(file, sizeof file, "%s_p.npy", name);
    float *want_p = load(file, STEPS, &k);
    float *want_buf = NULL;
    if (momentum != 0) {
        snprintf(file, sizeof file, "%s_buf.npy", name);
        want_buf = load(file, STEPS, &k);
    }
    float *p = malloc((size_t)n * sizeof(float));
    float *buf = momentum != 0 ? calloc((size_t)n, sizeof(float)) : NULL;
    double *scale = malloc((size_t)n * sizeof(double));
    if (want_p && (momentum == 0 || want_buf)) {
        memcpy(p, in.p0, (size_t)n * sizeof(float));
        for (int t = 0; t < STEPS; t++) {
            mm_sgd_params s = {.lr = lr, .momentum = momentum, .weight_decay = wd,
                               .nesterov = nesterov};
            const float *g = in.grads + t * n;
            mm_cpu_sgd(p, buf, g, n, &s);
            const float *p_prev = t ? want_p + (t - 1) * n : in.p0;
            char what[64];
            snprintf(what, sizeof what, "%s step %d p", name, t + 1);
            param_scale(scale, want_p + t * n, p_prev, n);
            check_scaled(what, p, want_p + t * n, scale, n, ATOL);
            if (buf) {
                for (int64_t i = 0; i < n; i++)
                    scale[i] = momentum * (t ? fabs(want_buf[(t - 1) * n + i]) : 0) +
                               fabs(g[i]) + fabs(wd * p_prev[i]);
                snprintf(what, sizeof what, "%s step %d momentum_buffer", name, t + 1);
                check_scaled(what, buf, want_buf + t * n, scale, n, 0);
            }
        }
        check_moved(p, in.p0, n);
    }
    free(scale);
    free(p);
    free(buf);
    free(want_p);
    free(want_buf);
    free_inputs(&in);
}

/* The hyperparameters of CONFIGS in make_optim_fixtures.py. */
MM_TEST(adam_matches_pytorch) { run_adam("adam", 1e-3, 0.9, 0.999, 1e-8, 0.0, 0); }
MM_TEST(adam_l2_matches_pytorch) { run_adam("adam_l2", 1e-2, 0.8, 0.99, 1e-6, 0.1, 0); }
MM_TEST(adamw_matches_pytorch) { run_adam("adamw", 1e-2, 0.9, 0.999, 1e-8, 0.05, 1); }
MM_TEST(sgd_momentum_matches_pytorch) { run_sgd("sgd_momentum", 0.1, 0.9, 0.0, 0); }
MM_TEST(sgd_nesterov_matches_pytorch) { run_sgd("sgd_nesterov", 0.05, 0.8, 0.01, 1); }
MM_TEST(sgd_plain_matches_pytorch) { run_sgd("sgd_plain", 0.2, 0.0, 0.001, 0); }

/* The threaded kernels over a large buffer give bitwise what the per-element math gives. */
MM_TEST(threaded_kernels_equal_element_math)
{
    const int64_t n = 100003;
    float *g = malloc(n * sizeof(float)), *p = malloc(n * sizeof(float));
    float *m = malloc(n * sizeof(float)), *v = malloc(n * sizeof(float));
    float *p2 = malloc(n * sizeof(float)), *m2 = malloc(n * sizeof(float));
    float *v2 = malloc(n * sizeof(float));
    mm_test_fill_uniform(p, n, 1, -1, 1);
    mm_test_fill_uniform(m, n, 2, -0.1f, 0.1f);
    mm_test_fill_uniform(v, n, 3, 0, 0.01f);
    mm_test_fill_uniform(g, n, 4, -1, 1);
    memcpy(p2, p, n * sizeof(float));
    memcpy(m2, m, n * sizeof(float));
    memcpy(v2, v, n * sizeof(float));
    for (int decoupled = 0; decoupled < 2; decoupled++) {
        mm_adam_params a = {.lr = 3e-4, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                            .weight_decay = 0.01, .decoupled = decoupled, .step = 17};
        mm_cpu_adam(p, m, v, g, n, &a);
        mm_adam_coeffs c = mm_adam_coeffs_make(a.lr, a.beta1, a.beta2, a.eps, a.weight_decay,
                                               a.decoupled, a.step);
        for (int64_t i = 0; i < n; i++) mm_adam_update(&p2[i], &m2[i], &v2[i], g[i], &c);
        CHECK(!memcmp(p, p2, n * sizeof(float)));
        CHECK(!memcmp(m, m2, n * sizeof(float)));
        CHECK(!memcmp(v, v2, n * sizeof(float)));
    }
    mm_sgd_params s = {.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-4, .nesterov = 1};
    mm_cpu_sgd(p, m, g, n, &s);
    mm_sgd_coeffs c = mm_sgd_coeffs_make(s.lr, s.momentum, s.weight_decay, s.nesterov);
    for (int64_t i = 0; i < n; i++) mm_sgd_update(&p2[i], &m2[i], g[i], &c);
    CHECK(!memcmp(p, p2, n * sizeof(float)));
    CHECK(!memcmp(m, m2, n * sizeof(float)));
    free(g);
    free(p);
    free(m);
    free(v);
    free(p2);
    free(m2);
    free(v2);
}

/* Gradient accumulation over 3 micro-batches (threaded, over a large buffer) leaves the mean
 * in g: the sum in micro-batch order then divided by 3, as written out here, bitwise; and the
 * sum's order matters for these values (so the check could see a wrong one). */
MM_TEST(accumulation_is_the_ordered_mean)
{
    const int64_t n = 100003;
    float *g[3], *acc = malloc(n * sizeof(float)), *out = malloc(n * sizeof(float));
    for (int k = 0; k < 3; k++) {
        g[k] = malloc(n * sizeof(float));
        mm_test_fill_uniform(g[k], n, 10 + (uint64_t)k, -1, 1);
        for (int64_t i = 0; i < n; i++) g[k][i] *= k == 1 ? 1e-4f : 1e3f; /* order shows */
    }
    for (int k = 0; k < 3; k++) {
        memcpy(out, g[k], n * sizeof(float)); /* the session's gradient buffer, rewritten */
        mm_cpu_grad_accumulate(acc, out, n, k, 3);
    }
    int64_t wrong = 0, other_order = 0;
    for (int64_t i = 0; i < n; i++) {
        float sum = g[0][i];
        sum += g[1][i];
        sum += g[2][i];
        float mean = sum / 3.0f, reordered = ((g[0][i] + g[2][i]) + g[1][i]) / 3.0f;
        wrong += memcmp(&out[i], &mean, sizeof mean) != 0;
        other_order += reordered != mean;
    }
    CHECK_MSG(wrong == 0, "%lld of %lld means differ", (long long)wrong, (long long)n);
    CHECK_MSG(other_order > 100, "only %lld values depend on the order", (long long)other_order);
    for (int k = 0; k < 3; k++) free(g[k]);
    free(acc);
    free(out);
}

/* Hand-computed first Adam step: m = 0.1 g, v = 0.001 g^2, bias-corrected m/sqrt(v) = sign(g),
 * so p moves by -lr * g / (|g| + eps) (up to rounding); and AdamW first shrinks p by 1 - lr*wd. */
MM_TEST(adam_first_step_by_hand)
{
    float p[3] = {1.0f, -2.0f, 0.5f}, m[3] = {0}, v[3] = {0}, g[3] = {0.5f, -4.0f, 0.0f};
    mm_adam_params a = {.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .step = 1};
    mm_cpu_adam(p, m, v, g, 3, &a);
    CHECK_CLOSE(p[0], 1.0 - 0.1, 1e-6, 0);
    CHECK_CLOSE(p[1], -2.0 + 0.1, 1e-6, 0);
    CHECK_CLOSE(p[2], 0.5, 0, 0); /* zero gradient: no move */
    CHECK_CLOSE(m[1], -0.4, 1e-7, 0);
    CHECK_CLOSE(v[1], 0.016, 1e-9, 0);

    float q[2] = {1.0f, 2.0f}, mq[2] = {0}, vq[2] = {0}, gq[2] = {0.0f, 0.0f};
    mm_adam_params w = {.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                        .weight_decay = 0.5, .decoupled = 1, .step = 1};
    mm_cpu_adam(q, mq, vq, gq, 2, &w);
    CHECK_CLOSE(q[0], 0.95, 1e-7, 0);
    CHECK_CLOSE(q[1], 1.9, 1e-7, 0);
}
