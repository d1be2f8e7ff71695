/* See dist_case.h. */
#include "dist_case.h"

#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "nets/nets.h"
#include "runtime/dist.h"

#define STEPS 2

typedef struct {
    mm_model m;
    mm_session s;
} net;

typedef struct {
    net *nets;
    const mm_model_config *cfg;
} setup_job;

static mm_status build_rank(int rank, void *arg)
{
    setup_job *j = arg;
    net *t = &j->nets[rank];
    MM_TRY(mm_model_build(&t->m, j->cfg));
    MM_TRY(mm_session_init(&t->s, t->m.g, t->s.be, 2));
    mm_model_init(&t->m, &t->s, 7);
    return MM_OK;
}

/* Batch `k` (images, labels, unit weights) into t's inputs. */
static void feed(net *t, int k)
{
    const mm_value *img = mm_graph_value(t->m.g, t->m.image);
    int64_t n = mm_shape_numel(img->ndim, img->shape);
    int b = (int)img->shape[0];
    float *x = malloc((size_t)n * sizeof(float));
    mm_test_fill_uniform(x, n, 1000 + (uint64_t)k, -1.0f, 1.0f);
    int32_t labels[8];
    float w[8];
    for (int i = 0; i < b; i++) {
        labels[i] = (k * 3 + i) % t->m.cfg.classes;
        w[i] = 1.0f + 0.5f * (float)i;
    }
    CHECK(mm_session_write(&t->s, t->m.image, x, (size_t)n * sizeof(float)) == MM_OK);
    CHECK(mm_session_write(&t->s, t->m.labels, labels, (size_t)b * sizeof(int32_t)) == MM_OK);
    CHECK(mm_session_write(&t->s, t->m.weights, w, (size_t)b * sizeof(float)) == MM_OK);
    free(x);
}

static float *read_buf(net *t, const void *dev, size_t bytes)
{
    float *h = malloc(bytes ? bytes : 1);
    mm_backend_bind(t->s.be);
    t->s.be->copy_to_host(t->s.be, h, dev, bytes);
    return h;
}

typedef struct {
    net *nets;
    int step;
    mm_adam_params adam;
} step_job;

static mm_status step_rank(int rank, void *arg)
{
    step_job *j = arg;
    feed(&j->nets[rank], j->step * MM_MAX_REPLICAS + rank);
    mm_session_run(&j->nets[rank].s);
    return MM_OK;
}

static mm_status adam_rank(int rank, void *arg)
{
    step_job *j = arg;
    mm_session_adam(&j->nets[rank].s, &j->adam);
    return MM_OK;
}

static mm_status free_rank(int rank, void *arg)
{
    net *t = &((setup_job *)arg)->nets[rank];
    if (t->s.be) mm_session_free(&t->s);
    mm_model_free(&t->m);
    return MM_OK;
}

/* The patch classifier of the checks, for the backend of replica 0. */
static mm_model_config small_net(const mm_backend *be)
{
    mm_model_config cfg = mm_model_config_default(MM_MODEL_PATCH, MM_TRUNK_RESNET50);
    cfg.width_div = 16;
    cfg.height = cfg.width = 64;
    cfg.batch = 2;
    cfg.training = true;
    mm_model_config_for_backend(&cfg, be);
    return cfg;
}

void dist_check_side_by_side(const char *device, mm_precision precision, int n, double rtol)
{
    mm_backend *bes[MM_MAX_REPLICAS + 1] = {NULL};
    for (int r = 0; r <= n; r++)
        if (mm_backend_open(device, precision, &bes[r]) != MM_OK) {
            mm_test_fail_at(__FILE__, __LINE__, "%s: %s", device, mm_last_error());
            while (r-- > 0) mm_backend_destroy(bes[r]);
            return;
        }
    mm_model_config cfg = small_net(bes[0]);
    net nets[MM_MAX_REPLICAS + 1];
    memset(nets, 0, sizeof nets);
    setup_job sj = {nets, &cfg};
    for (int r = 0; r <= n; r++) nets[r].s.be = bes[r];
    CHECK(mm_replicas_each(bes, n + 1, build_rank, &sj) == MM_OK); /* searches side by side */
    step_job j = {nets, 0, {.lr = 0}};
    CHECK(mm_replicas_each(bes, n, step_rank, &j) == MM_OK);
    net *one = &nets[n];
    size_t gbytes = one->s.plan.trainable_bytes, count = gbytes / sizeof(float);
    for (int r = 0; r < n && !mm_test_failed_now(); r++) {
        mm_backend_bind(one->s.be);
        feed(one, r);
        mm_session_run(&one->s);
        float *want = read_buf(one, one->s.grads, gbytes);
        float *got = read_buf(&nets[r], nets[r].s.grads, gbytes);
        double scale = 0, err = 0;
        for (size_t i = 0; i < count; i++) {
            scale = fmax(scale, fabs(want[i]));
            err = fmax(err, fabs(got[i] - want[i]));
        }
        CHECK_MSG(scale > 0 && err <= rtol * scale,
                  "replica %d's gradients %.3g from its batch's alone (largest %.3g)", r, err,
                  scale);
        free(want);
        free(got);
    }
    mm_replicas_each(bes, n + 1, free_rank, &sj);
    for (int r = 0; r <= n; r++) mm_backend_destroy(bes[r]);
}

void dist_check_against_one_session(const char *device, mm_precision precision, int n,
                                    double rtol)
{
    mm_backend *bes[MM_MAX_REPLICAS + 1];
    if (mm_replicas_open(device, precision, n, bes) != MM_OK) {
        mm_test_fail_at(__FILE__, __LINE__, "replicas: %s", mm_last_error());
        return;
    }
    /* the one session: on the device of replica 0 (its own backend) */
    CHECK(mm_backend_open(device, precision, &bes[n]) == MM_OK);
    mm_model_config cfg = small_net(bes[0]);
    net nets[MM_MAX_REPLICAS + 1];
    memset(nets, 0, sizeof nets);
    setup_job sj = {nets, &cfg};
    for (int r = 0; r <= n; r++) nets[r].s.be = bes[r];
    CHECK(mm_replicas_each(bes, n + 1, build_rank, &sj) == MM_OK);
    mm_session *ss[MM_MAX_REPLICAS];
    for (int r = 0; r < n; r++) ss[r] = &nets[r].s;
    mm_comm *comm = NULL;
    CHECK(mm_comm_create(ss, n, &comm) == MM_OK);
    if (!comm) return;
    mm_comm_copy_weights(comm);

    net *one = &nets[n];
    const mm_plan *p = &one->s.plan;
    size_t gbytes = p->trainable_bytes, count = gbytes / sizeof(float);
    double *mean = malloc(count * sizeof(double));
    step_job j = {nets, 0, {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f}};
    for (int step = 0; step < STEPS && !mm_test_failed_now(); step++) {
        /* the one session from replica 0's weights and moments (no drift between the steps
         * checked), each replica's batch in turn */
        float *w = read_buf(&nets[0], nets[0].s.params, p->param_bytes);
        float *mo = read_buf(&nets[0], nets[0].s.opt, p->opt_bytes);
        mm_backend_bind(one->s.be);
        one->s.be->copy_to_device(one->s.be, one->s.params, w, p->param_bytes);
        one->s.be->copy_to_device(one->s.be, one->s.opt, mo, p->opt_bytes);
        free(w);
        free(mo);
        memset(mean, 0, count * sizeof(double));
        for (int r = 0; r < n; r++) {
            mm_backend_bind(one->s.be);
            feed(one, step * MM_MAX_REPLICAS + r);
            mm_session_run(&one->s);
            float *g = read_buf(one, one->s.grads, gbytes);
            for (size_t i = 0; i < count; i++) mean[i] += g[i] / n;
            free(g);
        }
        /* the replicas */
        j.step = step;
        CHECK(mm_replicas_each(bes, n, step_rank, &j) == MM_OK);
        mm_comm_average_grads(comm);
        float *g0 = read_buf(&nets[0], nets[0].s.grads, gbytes);
        double scale = 0;
        for (size_t i = 0; i < count; i++) scale = fmax(scale, fabs(mean[i]));
        double err = 0;
        for (size_t i = 0; i < count; i++) err = fmax(err, fabs(g0[i] - mean[i]));
        CHECK_MSG(scale > 0 && err <= rtol * scale,
                  "step %d: averaged gradients %.3g from the mean (largest %.3g, rtol %.1g)",
                  step, err, scale, rtol);
        /* the one session steps on the replicas' average (checked against the mean above):
         * Adam divides each gradient by its own running size, so a gradient near zero that
         * differs within that check (the one session may time other convolution algorithms
         * than the replicas on a GPU) can move its weight by up to lr; from the same gradients
         * the two updates must agree */
        mm_backend_bind(one->s.be);
        one->s.be->copy_to_device(one->s.be, one->s.grads, g0, gbytes);
        j.adam.step = step + 1;
        mm_session_adam(&one->s, &j.adam);
        CHECK(mm_replicas_each(bes, n, adam_rank, &j) == MM_OK);
        float *w1 = read_buf(one, one->s.params, p->param_bytes);
        float *w0 = read_buf(&nets[0], nets[0].s.params, p->param_bytes);
        CHECK_ARRAYS("weights after Adam against the one session", w0, w1,
                     (int64_t)(p->param_bytes / sizeof(float)), 1e-6, 1e-4);
        for (int r = 1; r < n; r++) { /* the replicas stay the same bits */
            float *wr = read_buf(&nets[r], nets[r].s.params, p->param_bytes);
            float *gr = read_buf(&nets[r], nets[r].s.grads, gbytes);
            float *mr = read_buf(&nets[r], nets[r].s.opt, p->opt_bytes);
            float *m0 = read_buf(&nets[0], nets[0].s.opt, p->opt_bytes);
            CHECK_MSG(!memcmp(wr, w0, p->param_bytes), "replica %d's weights differ", r);
            CHECK_MSG(!memcmp(gr, g0, gbytes), "replica %d's averaged gradients differ", r);
            CHECK_MSG(!memcmp(mr, m0, p->opt_bytes), "replica %d's Adam moments differ", r);
            free(wr);
            free(gr);
            free(mr);
            free(m0);
        }
        free(w0);
        free(w1);
        free(g0);
    }
    free(mean);
    mm_comm_destroy(comm);
    mm_replicas_each(bes, n + 1, free_rank, &sj);
    for (int r = 0; r <= n; r++) mm_backend_destroy(bes[r]);
}
