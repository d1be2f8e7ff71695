/* The tape end to end on the cpu backend: gradients of a small residual net (conv, batch norm,
 * relu, a residual join, max pooling, dropout, global pooling, dense, weighted cross-entropy)
 * against central finite differences of the loss; planned memory reuse and in-place execution
 * give the same numbers as the unplanned arithmetic; the meta plan equals the cpu plan. */
#include <stdlib.h>
#include <string.h>

#include "runtime/backend.h"
#include "runtime/graph.h"
#include "runtime/session.h"
#include "tests/harness.h"

typedef struct {
    mm_graph *g;
    int x, labels, weights, loss, params[32];
    int n_params;
    bool shared; /* branch a's convolution weight used twice in a row */
} small_net;

static int add_param(small_net *m, const char *name, int ndim, const int64_t *shape)
{
    int id = mm_graph_param(m->g, name, ndim, shape);
    m->params[m->n_params++] = id;
    return id;
}

/* conv -> BN (-> ReLU); with w < 0 the convolution gets a weight of its own, named name.w */
static int conv_w_bn_relu(small_net *m, int x, int w, const char *name, int cin, int cout, int k,
                          int stride, bool relu)
{
    char buf[64];
    int64_t ws[4] = {cout, k, k, cin}, cs[1] = {cout};
    snprintf(buf, sizeof buf, "%s.w", name);
    if (w < 0) w = add_param(m, buf, 4, ws);
    snprintf(buf, sizeof buf, "%s.gamma", name);
    int ga = add_param(m, buf, 1, cs);
    snprintf(buf, sizeof buf, "%s.beta", name);
    int be = add_param(m, buf, 1, cs);
    snprintf(buf, sizeof buf, "%s.rm", name);
    int rm = mm_graph_state(m->g, buf, 1, cs);
    snprintf(buf, sizeof buf, "%s.rv", name);
    int rv = mm_graph_state(m->g, buf, 1, cs);
    int y = mm_batchnorm(m->g, mm_conv2d(m->g, x, w, -1, stride, k / 2), ga, be, rm, rv, 1e-5f, 0.1f);
    return relu ? mm_relu(m->g, y) : y;
}

static int conv_bn_relu(small_net *m, int x, const char *name, int cin, int cout, int k, int stride,
                        bool relu)
{
    return conv_w_bn_relu(m, x, -1, name, cin, cout, k, stride, relu);
}

static void build_into(small_net *m, float dropout);

static void build(small_net *m, float dropout, bool shared)
{
    memset(m, 0, sizeof *m);
    m->g = mm_graph_new(true);
    m->shared = shared;
    build_into(m, dropout);
}

/* The net into m->g (made by the caller, so tests can set graph flags first). */
static void build_into(small_net *m, float dropout)
{
    int64_t xs[4] = {2, 9, 7, 3}, ls[1] = {2};
    m->x = mm_graph_input(m->g, "x", MM_F32, 4, xs);
    m->labels = mm_graph_input(m->g, "labels", MM_I32, 1, ls);
    m->weights = mm_graph_input(m->g, "weights", MM_F32, 1, ls);
    int y = conv_bn_relu(m, m->x, "stem", 3, 6, 3, 2, true);
    int r = conv_bn_relu(m, y, "a", 6, 6, 3, 1, true);
    if (m->shared) /* "a.w" again: its two filter gradients sum into one */
        r = conv_w_bn_relu(m, r, m->params[m->n_params - 3], "a2", 6, 6, 3, 1, false);
    r = conv_bn_relu(m, r, "b", 6, 6, 1, 1, false);
    y = mm_relu(m->g, mm_add(m->g, r, y)); /* residual join: y feeds two branches */
    /* conv -> BN -> ReLU -> max pool: the ReLU's backward is folded into the pool's */
    y = mm_maxpool(m->g, conv_bn_relu(m, y, "c", 6, 6, 1, 1, true), 2, 2, 0);
    y = mm_global_avgpool(m->g, y);
    y = mm_dropout(m->g, y, dropout);
    int64_t fws[2] = {3, 6}, fbs[1] = {3};
    int fw = add_param(m, "fc.w", 2, fws), fb = add_param(m, "fc.b", 1, fbs);
    m->loss = mm_softmax_xent(m->g, mm_dense(m->g, y, fw, fb), m->labels, m->weights);
    mm_graph_backward(m->g, m->loss);
}

static void init(mm_session *s, small_net *m)
{
    for (int i = 0; i < m->n_params; i++) {
        const mm_value *v = mm_graph_value(m->g, m->params[i]);
        int64_t n = mm_shape_numel(v->ndim, v->shape);
        float *buf = malloc((size_t)n * sizeof(float));
        /* BN shifts mostly positive: fewer pre-activations sit on the ReLU kink */
        bool gamma = strstr(v->name, "gamma") != NULL, beta = strstr(v->name, "beta") != NULL;
        float lo = gamma ? 0.5f : beta ? -0.1f : -0.5f, hi = gamma ? 1.5f : beta ? 0.9f : 0.5f;
        mm_test_fill_uniform(buf, n, 100 + (uint64_t)i, lo, hi);
        mm_session_write(s, m->params[i], buf, (size_t)n * sizeof(float));
        free(buf);
    }
    float x[2 * 9 * 7 * 3], w[2] = {0.7f, 1.9f};
    int32_t labels[2] = {2, 0};
    mm_test_fill_uniform(x, 2 * 9 * 7 * 3, 7, -1, 1);
    mm_session_write(s, m->x, x, sizeof x);
    mm_session_write(s, m->labels, labels, sizeof labels);
    mm_session_write(s, m->weights, w, sizeof w);
}

static float loss_now(mm_session *s, int loss)
{
    float l;
    mm_session_forward(s);
    mm_session_read(s, loss, &l, sizeof l);
    return l;
}

static void check_gradients(float dropout, bool shared)
{
    small_net m;
    build(&m, dropout, shared);
    CHECK_MSG(mm_graph_status(m.g) == MM_OK, "%s", mm_last_error());
    mm_backend *be;
    mm_backend_cpu_create(&be);
    mm_session s;
    CHECK(mm_session_init(&s, m.g, be, 2) == MM_OK);
    CHECK(s.plan.n_inplace > 0);
    init(&s, &m);

    /* finite differences first (forward only: the step counter, hence the dropout mask, stays) */
    int checked = 0, kinks = 0;
    for (int i = 0; i < m.n_params; i++) {
        const mm_value *v = mm_graph_value(m.g, m.params[i]);
        int64_t n = mm_shape_numel(v->ndim, v->shape);
        size_t bytes = (size_t)n * sizeof(float);
        float *p = malloc(bytes), *fd = malloc(bytes), *grad = malloc(bytes);
        bool *smooth = malloc((size_t)n);
        mm_session_read(&s, m.params[i], p, bytes);
        int64_t step = n > 12 ? n / 7 : 1;
        for (int64_t j = 0; j < n; j += step) {
            /* Central differences at two step sizes: where they disagree a ReLU or max-pool
             * kink lies within reach and the difference says nothing about the gradient. */
            float keep = p[j], est[3];
            for (int k = 0; k < 3; k++) {
                float h = 4e-3f / (float)(1 << k);
                p[j] = keep + h;
                mm_session_write(&s, m.params[i], p, bytes);
                float lp = loss_now(&s, m.loss);
                p[j] = keep - h;
                mm_session_write(&s, m.params[i], p, bytes);
                float lm = loss_now(&s, m.loss);
                est[k] = (lp - lm) / (2 * h);
            }
            p[j] = keep;
            mm_session_write(&s, m.params[i], p, bytes);
            smooth[j] = fabsf(est[0] - est[1]) <= 5e-4f + 1e-2f * fabsf(est[1]) &&
                        fabsf(est[2] - est[1]) <= 5e-4f + 1e-2f * fabsf(est[1]);
            fd[j] = est[1];
        }
        mm_session_run(&s);
        s.step = 0; /* same mask for the next parameter's differences */
        mm_session_read(&s, v->grad, grad, bytes);
        for (int64_t j = 0; j < n; j += step) {
            if (!smooth[j]) {
                kinks++;
                continue;
            }
            if (getenv("VERBOSE")) printf("      %s[%lld] %.6g %.6g\n", v->name, (long long)j, grad[j], fd[j]);
            CHECK_MSG(fabsf(grad[j] - fd[j]) <= 1e-3f + 2e-2f * fabsf(fd[j]),
                      "%s[%lld]: backward %.6g, finite difference %.6g", v->name, (long long)j,
                      grad[j], fd[j]);
            checked++;
        }
        free(p);
        free(fd);
        free(grad);
        free(smooth);
    }
    printf("    %d checked, %d near kinks\n", checked, kinks);
    CHECK_MSG(checked > 40 && kinks * 4 < checked, "%d checked, %d near kinks", checked, kinks);
    mm_session_free(&s);
    mm_backend_destroy(be);
    mm_graph_free(m.g);
}

MM_TEST(gradients_match_finite_differences)
{
    check_gradients(0.0f, false);
}

MM_TEST(gradients_match_finite_differences_with_dropout)
{
    check_gradients(0.3f, false);
}

/* A convolution's filter gradient is written by its first writer (p.conv.overwrite, so cuDNN can
 * run with beta 0) and added to by any later one: one filter-gradient node per use of a weight,
 * the first in step order writing; a weight used twice still gets the sum of both. */
MM_TEST(a_weight_used_twice_gets_both_gradients)
{
    small_net m;
    build(&m, 0.0f, true);
    int uses = 0, writers = 0;
    for (int n = 0; n < m.g->n_nodes; n++) {
        const mm_node *nd = &m.g->nodes[n];
        if (nd->op != MM_OP_CONV2D_BWD_FILTER) continue;
        const char *name = mm_graph_value(m.g, nd->out[0])->name;
        bool first = strcmp(name, "grad:a.w") != 0 || uses++ == 0;
        CHECK_MSG(nd->p.conv.overwrite == first, "%s (node %d): overwrite %d", name, n,
                  nd->p.conv.overwrite);
        writers += nd->p.conv.overwrite;
    }
    CHECK_EQ_INT(uses, 2);
    CHECK_EQ_INT(writers, 4); /* stem, b, c and a.w's later use (the backward runs in reverse) */
    mm_graph_free(m.g);
    check_gradients(0.0f, true);
}

MM_TEST(meta_plan_equals_cpu_plan)
{
    small_net m;
    build(&m, 0.2f, false);
    mm_backend *cpu, *meta;
    mm_backend_cpu_create(&cpu);
    mm_backend_meta_create(&meta);
    mm_plan a, b;
    CHECK(mm_plan_make(&a, m.g, cpu, 2) == MM_OK);
    CHECK(mm_plan_make(&b, m.g, meta, 2) == MM_OK);
    CHECK_EQ_INT(mm_plan_peak_bytes(&a), mm_plan_peak_bytes(&b));
    CHECK_EQ_INT(a.arena_bytes, b.arena_bytes);
    CHECK_EQ_INT(a.workspace_bytes, b.workspace_bytes);
    CHECK(!memcmp(a.offset, b.offset, (size_t)a.n_values * sizeof *a.offset));
    mm_plan_free(&a);
    mm_plan_free(&b);
    mm_backend_destroy(cpu);
    mm_backend_destroy(meta);
    mm_graph_free(m.g);
}

/* Steps are reproducible: two sessions from the same start give bitwise equal losses. */
MM_TEST(steps_are_deterministic)
{
    float losses[2][3];
    for (int r = 0; r < 2; r++) {
        small_net m;
        build(&m, 0.25f, false);
        mm_backend *be;
        mm_backend_cpu_create(&be);
        mm_session s;
        CHECK(mm_session_init(&s, m.g, be, 2) == MM_OK);
        init(&s, &m);
        mm_adam_params a = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
        for (int k = 0; k < 3; k++) {
            mm_session_run(&s);
            mm_session_read(&s, m.loss, &losses[r][k], sizeof(float));
            a.step = k + 1;
            mm_session_adam(&s, &a);
        }
        mm_session_free(&s);
        mm_backend_destroy(be);
        mm_graph_free(m.g);
    }
    CHECK(!memcmp(losses[0], losses[1], sizeof losses[0]));
}

/* fuse_relu_bwd: the ReLU backward done inside the batch-norm backward gives bitwise the same
 * gradients, and the fused-away nodes are really gone. */
MM_TEST(fused_relu_backward_is_bitwise_the_same)
{
    float *grads[2] = {NULL, NULL};
    size_t bytes = 0;
    int relu_bwd[2] = {0, 0};
    for (int fuse = 0; fuse < 2; fuse++) {
        small_net m;
        memset(&m, 0, sizeof m);
        m.g = mm_graph_new(true);
        m.g->fuse_relu_bwd = fuse;
        build_into(&m, 0.0f);
        CHECK_MSG(mm_graph_status(m.g) == MM_OK, "%s", mm_last_error());
        for (int n = 0; n < m.g->n_nodes; n++) relu_bwd[fuse] += m.g->nodes[n].op == MM_OP_RELU_BWD;
        mm_backend *be;
        mm_backend_cpu_create(&be);
        mm_session s;
        CHECK(mm_session_init(&s, m.g, be, 2) == MM_OK);
        init(&s, &m);
        mm_session_run(&s);
        bytes = s.plan.grad_bytes;
        grads[fuse] = malloc(bytes);
        be->copy_to_host(be, grads[fuse], s.grads, bytes);
        mm_session_free(&s);
        mm_backend_destroy(be);
        mm_graph_free(m.g);
    }
    /* the stem's, branch a's and the residual sum's ReLUs have a backward node (c's is folded
     * into the max pool's backward); fused, the stem's and branch a's are gone, the one after
     * the residual sum (not a batch norm's output) stays */
    CHECK_EQ_INT(relu_bwd[0], 3);
    CHECK_EQ_INT(relu_bwd[1], 1);
    CHECK(bytes > 0 && !memcmp(grads[0], grads[1], bytes));
    free(grads[0]);
    free(grads[1]);
}
