/* The trainer: see trainer.h. */
#include "trainer.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../runtime/dist.h"
#include "../runtime/group.h"
#include "../runtime/jsonl.h"
#include "../runtime/progress.h"
#include "../runtime/strbuf.h"
#include "checkpoint.h"
#include "class_weights.h"
#include "infer.h"
#include "loader.h"
#include "metrics.h"
#include "pixel_mean.h"

void mm_train_config_defaults(mm_train_config *c)
{
    memset(c, 0, sizeof *c);
    c->beta1 = 0.9;
    c->beta2 = 0.999;
    c->eps = 1e-8;
    c->class_balanced = true;
    c->augment = true;
    mm_augment_params_default(&c->aug);
    c->rescale = 255.0f / 65535.0f;
    c->device = "cpu";
    c->precision = "fp32";
    c->init_mode = MM_LOAD_TRUNK;
    c->recompute_conv = -1;
    c->recompute_slack = -1.0;
}

/* Everything one stage (or the evaluation model) needs: a model and its session. */
typedef struct {
    mm_model m;
    mm_session s;
    bool live;
    int64_t steps; /* training steps run on this session */
    bool captured; /* its step is the backend's CUDA graph (--cuda-graph) */
} bound_model;

static void unbind(bound_model *b)
{
    if (!b->live) return;
    mm_session_free(&b->s);
    mm_model_free(&b->m);
    b->live = false;
}

/* rank: the data-parallel replica (runtime/dist.h), whose dropout masks are its own */
static mm_status bind(bound_model *b, const mm_train_config *c, mm_backend *be, bool training,
                      const char *trainable, int rank)
{
    memset(b, 0, sizeof *b);
    mm_model_config mc = mm_model_config_default(c->kind, c->trunk);
    mc.classes = c->classes;
    mc.width_div = c->width_div;
    mc.scratch_budget = c->scratch_budget;
    mc.scratch_strict = c->scratch_strict;
    if (c->kind == MM_MODEL_WHOLE) mc.top = c->top;
    mc.batch = training ? c->batch : c->eval_batch;
    mc.height = c->height;
    mc.width = c->width;
    mc.dropout = c->dropout;
    mc.training = training;
    mc.trainable = trainable;
    mc.dropout_seed = (c->seed ^ 0x64726f706f7574ULL) + 0x9E3779B97F4A7C15ULL * (uint64_t)rank;
    mm_model_config_for_backend(&mc, be);
    mm_model_config_recompute(&mc, c->no_recompute, c->recompute_conv, c->recompute_slack);
    MM_TRY(mm_model_build(&b->m, &mc));
    mm_status st = mm_session_init(&b->s, b->m.g, be, training ? 2 : 0);
    if (st != MM_OK) {
        mm_model_free(&b->m);
        return st;
    }
    b->live = true;
    return MM_OK;
}

static void path_in(char *out, size_t n, const char *dir, const char *name)
{
    snprintf(out, n, "%s/%s", dir, name);
}

/* Validation: the evaluation model gets the training weights, then AUC of class 1 (2 classes) or
 * accuracy (more). */
static mm_status validate(double *metric, double *acc, bound_model *ev, const bound_model *tr,
                          const mm_train_config *c, const mm_train_state *ts)
{
    MM_TRY(mm_model_copy_weights(&ev->m, &ev->s, &tr->m, &tr->s, NULL));
    int n = c->val->n, k = c->classes;
    float *probs = mm_xmalloc((size_t)n * k * sizeof(float));
    mm_infer_opts io = {ts->rescale, ts->pixel_mean, false, c->threads};
    mm_status st = mm_infer(probs, &ev->m, &ev->s, c->val->items, n, &io);
    int *labels = mm_xmalloc((size_t)n * sizeof(int));
    for (int i = 0; i < n; i++) labels[i] = c->val->items[i].label;
    if (st == MM_OK) {
        *acc = mm_accuracy_multiclass(probs, labels, n, k);
        if (k == 2) {
            double *scores = mm_xmalloc((size_t)n * sizeof(double));
            for (int i = 0; i < n; i++) scores[i] = probs[(size_t)i * 2 + 1];
            st = mm_auc(metric, scores, labels, n);
            if (st != MM_OK) {
                char why[512];
                snprintf(why, sizeof why, "%s", mm_last_error());
                st = mm_fail(st, "the validation split: %s; it needs images of both classes", why);
            }
            free(scores);
        } else {
            *metric = *acc;
        }
    }
    free(probs);
    free(labels);
    return st;
}

typedef struct {
    const mm_train_config *c;
    int n;                            /* data-parallel replicas (runtime/dist.h), 1: one device */
    mm_backend *bes[MM_MAX_REPLICAS]; /* one per replica */
    mm_backend *be;                   /* bes[0]: replica 0's, the evaluation model's too */
    mm_train_state ts;
    bound_model tr[MM_MAX_REPLICAS], ev; /* tr[0] is checkpointed and validated */
    mm_comm *comm;                    /* n > 1 or a group: the replicas of this stage */
    mm_group *group;                  /* the other nodes (--nodes), or NULL */
    int rank0;                        /* this node's first global replica rank */
    bool leader;                      /* node 0: validates, logs and writes the run folder */
    const char *trainable;            /* this stage's (for binding the replicas) */
    mm_adam_params adam;              /* this step's (for the replicas' updates) */
    int accum, micro;                 /* micro-batches a step (--accumulate), this one's index */
    mm_jsonl log;
    mm_progress prog;
    char last[4096], best[4096];
    bool made_dir; /* this run created c->run_dir (removed again if it fails before writing) */
    /* On resume: last.safetensors, open from reading its state until its weights and moments are
     * loaded, so all three come from one file. */
    mm_safetensors *resume_from;
} run;

static mm_status save_checkpoints(run *r, bool is_best)
{
    bound_model *b = &r->tr[0];
    if (is_best) MM_TRY(mm_checkpoint_save(r->best, &b->m, &b->s, &r->ts, r->c->config_json));
    return mm_checkpoint_save(r->last, &b->m, &b->s, &r->ts, r->c->config_json);
}

static int first_epoch_of(const mm_train_config *c, int stage)
{
    int e = 0;
    for (int k = 1; k < stage; k++) e += c->stages[k - 1].epochs;
    return e;
}

/* One training step on the bound inputs: eager, or with --cuda-graph a replay of the step
 * recorded as one CUDA graph. A session's first step runs eagerly (cuDNN and cuBLAS finish
 * their set-up in it); the second is recorded, and it and every later one replay it. */
static mm_status train_step(int rank, void *arg)
{
    run *r = arg;
    bound_model *b = &r->tr[rank];
    if (!r->c->cuda_graph || b->steps == 0) {
        mm_session_run(&b->s);
    } else {
        if (!b->captured) MM_TRY(mm_session_capture(&b->s));
        b->captured = true;
        mm_session_replay(&b->s);
    }
    b->steps++;
    return MM_OK;
}

static mm_status accumulate_step(int rank, void *arg)
{
    run *r = arg;
    mm_session_accumulate(&r->tr[rank].s, r->micro, r->accum);
    return MM_OK;
}

static mm_status adam_step(int rank, void *arg)
{
    run *r = arg;
    mm_session_adam(&r->tr[rank].s, &r->adam);
    return MM_OK;
}

/* The next batch of the loader, with its sample weights, written to replica `rank`'s inputs;
 * *count is 0 at the end of the epoch (nothing written then). */
static mm_status next_batch(run *r, int rank, mm_loader *L, mm_batch *batch, float *w,
                            size_t img, int *count)
{
    const mm_train_config *c = r->c;
    mm_model *m = &r->tr[rank].m;
    mm_session *s = &r->tr[rank].s;
    *count = 0;
    MM_TRY(mm_loader_next(L, batch, count));
    if (*count == 0) return MM_OK;
    if (c->class_balanced) mm_class_balanced_weights(w, batch->labels, *count, c->classes);
    else
        for (int i = 0; i < *count; i++) w[i] = 1.0f;
    mm_backend_bind(r->bes[rank]);
    MM_TRY(mm_session_write(s, m->image, batch->images, img * sizeof(float)));
    MM_TRY(mm_session_write(s, m->labels, batch->labels, (size_t)*count * sizeof(int32_t)));
    return mm_session_write(s, m->weights, w, (size_t)*count * sizeof(float));
}

/* The next batch of every replica; *count: the images of them all, 0 at the end of the epoch,
 * where the last batches that cannot give every replica one are left out (as the loader leaves
 * out an incomplete batch). */
static mm_status next_group(run *r, mm_loader *L, mm_batch *batch, float *const *w, size_t img,
                            int *count)
{
    *count = 0;
    for (int k = 0; k < r->n; k++) {
        int got = 0;
        MM_TRY(next_batch(r, k, L, &batch[k], w[k], img, &got));
        if (got == 0) {
            *count = 0;
            return MM_OK;
        }
        *count += got;
    }
    return MM_OK;
}

/* The step's loss: the replicas' mean (replica 0's alone without replicas), of every node's
 * replicas in global rank order, the same on every node. */
static mm_status group_loss(run *r, float *loss)
{
    float mine[MM_MAX_REPLICAS];
    for (int k = 0; k < r->n; k++) {
        mm_backend_bind(r->bes[k]);
        MM_TRY(mm_session_read(&r->tr[k].s, r->tr[k].m.loss, &mine[k], sizeof mine[k]));
    }
    int world = r->n * (r->group ? mm_group_size(r->group) : 1);
    float *all = r->group ? mm_xmalloc((size_t)world * sizeof(float)) : mine;
    mm_status st = r->group ? mm_group_gather(r->group, mine, all, (size_t)r->n * sizeof(float))
                            : MM_OK;
    double sum = 0;
    for (int k = 0; k < world && r->leader; k++) sum += all[k]; /* node 0's is sent below */
    *loss = (float)(sum / world);
    if (r->group) {
        free(all);
        if (st == MM_OK) st = mm_group_broadcast(r->group, loss, sizeof *loss);
    }
    return st;
}

/* One epoch of training; returns MM_ERR_NUMERIC when the loss stops being finite.
 * The next batch is taken from the loader and written while the device runs the current step
 * (on CUDA the copy is ordered after the step on the same stream; on the CPU the step has
 * finished when train_step returns), so the host's part of feeding the device (handing the
 * batch over, staging the copy) overlaps the step instead of following it. With replicas, each
 * takes its own batch, their gradients are averaged (runtime/dist.h), and each updates; with
 * --accumulate K each replica first runs K batches (micro-batches), the mean of their gradients
 * kept by mm_session_accumulate, and the step's loss is the mean of theirs. */
static mm_status train_epoch(run *r, mm_loader *L, const mm_stage *stage, double *mean_loss)
{
    const mm_train_config *c = r->c;
    size_t img = (size_t)c->batch * c->height * c->width * 3;
    mm_batch batch[MM_MAX_REPLICAS];
    float *w[MM_MAX_REPLICAS];
    for (int k = 0; k < r->n; k++) {
        /* page-locked on CUDA: the batch is copied to the device every step */
        batch[k] = (mm_batch){mm_host_alloc(r->bes[k], img * sizeof(float)),
                              mm_xmalloc((size_t)c->batch * sizeof(int32_t)), NULL, NULL};
        w[k] = mm_xmalloc((size_t)c->batch * sizeof(float));
    }
    double sum = 0, micro_sum = 0;
    int64_t steps = 0;
    int epoch = first_epoch_of(c, r->ts.stage) + r->ts.epoch + 1; /* 1-based, over the run */
    int count = 0, next = 0, images = 0, K = r->accum;
    r->micro = 0;
    mm_status st = next_group(r, L, batch, w, img, &count);
    while (st == MM_OK && count > 0) {
        st = mm_replicas_each(r->bes, r->n, train_step, r);
        if (st == MM_OK) st = next_group(r, L, batch, w, img, &next);
        if (st != MM_OK) break;
        float loss;
        if (r->comm) st = mm_comm_wait(r->comm); /* across nodes: the last all-reduce done */
        if (st == MM_OK) st = group_loss(r, &loss);
        if (st != MM_OK) break;
        if (!isfinite(loss)) {
            st = mm_fail(MM_ERR_NUMERIC,
                         "the loss became %s at epoch %d, step %lld; stopped. %s keeps the last "
                         "good epoch; try a lower learning rate",
                         isnan(loss) ? "NaN" : "infinite", epoch,
                         (long long)r->ts.global_step + 1, r->last);
            break;
        }
        images += count;
        count = next;
        if (K > 1) { /* a micro-batch: the step's gradients are the mean of K of them */
            st = mm_replicas_each(r->bes, r->n, accumulate_step, r);
            if (st != MM_OK) break;
            micro_sum += loss;
            if (++r->micro < K) continue;
            loss = (float)(micro_sum / K);
            micro_sum = 0;
            r->micro = 0;
        }
        if (r->comm) st = mm_comm_average_grads(r->comm);
        if (st != MM_OK) break;
        r->ts.adam_step++;
        r->ts.global_step++;
        r->adam = (mm_adam_params){.lr = stage->lr, .beta1 = c->beta1, .beta2 = c->beta2,
                                   .eps = c->eps, .weight_decay = c->weight_decay,
                                   .decoupled = c->decoupled_wd, .step = r->ts.adam_step};
        st = mm_replicas_each(r->bes, r->n, adam_step, r);
        if (st != MM_OK) break;
        sum += loss;
        steps++;
        /* every node's images (the same count on each: whole steps only) */
        mm_progress_step(&r->prog, loss, images * (r->group ? mm_group_size(r->group) : 1));
        images = 0;
        mm_log_step ls = {epoch, r->ts.global_step, loss, stage->lr,
                          mm_progress_images_per_s(&r->prog), 1};
        st = mm_jsonl_step(&r->log, &ls);
    }
    *mean_loss = steps ? sum / (double)steps : NAN;
    for (int k = 0; k < r->n; k++) {
        mm_host_free(r->bes[k], batch[k].images);
        free(batch[k].labels);
        free(w[k]);
    }
    mm_backend_bind(r->be);
    return st;
}

static mm_status bind_replica(int rank, void *arg)
{
    run *r = arg;
    MM_TRY(bind(&r->tr[rank], r->c, r->bes[rank], true, r->trainable, r->rank0 + rank));
    return r->accum > 1 ? mm_session_accumulate_init(&r->tr[rank].s) : MM_OK;
}

static mm_status run_stage(run *r, bool resumed_here, bool *stop)
{
    const mm_train_config *c = r->c;
    mm_train_state *ts = &r->ts;
    const mm_stage *stage = &c->stages[ts->stage - 1];
    /* this stage's replicas (their searches side by side on GPUs); replica 0 takes the weights
     * over from the last stage's, a checkpoint or the initialisation, then gives them to all */
    bound_model prev = r->tr[0];
    r->tr[0].live = false;
    mm_comm_destroy(r->comm);
    r->comm = NULL;
    for (int k = 1; k < r->n; k++) unbind(&r->tr[k]);
    r->trainable = stage->trainable;
    mm_status st = mm_replicas_each(r->bes, r->n, bind_replica, r);
    if (st != MM_OK) {
        unbind(&prev);
        return st;
    }
    bound_model *b = &r->tr[0];
    /* node 0 reads the files; the other nodes get its weights through the group below */
    if (resumed_here) {
        unbind(&prev);
        if (r->leader) st = mm_checkpoint_load_from(r->resume_from, &b->m, &b->s, ts->epoch > 0);
        if (r->resume_from) mm_safetensors_close(r->resume_from);
        r->resume_from = NULL;
    } else if (prev.live) {
        st = mm_model_copy_weights(&b->m, &b->s, &prev.m, &prev.s, NULL);
        unbind(&prev);
    } else {
        mm_model_init(&b->m, &b->s, c->seed);
        if (c->init && r->leader) st = mm_model_load(&b->m, &b->s, c->init, c->init_mode);
    }
    if (st == MM_OK && (r->n > 1 || r->group)) {
        mm_session *ss[MM_MAX_REPLICAS];
        for (int k = 0; k < r->n; k++) ss[k] = &r->tr[k].s;
        st = mm_comm_create_group(ss, r->n, r->group, &r->comm);
        if (st == MM_OK) st = mm_comm_copy_weights(r->comm);
    }
    if (st != MM_OK) return st;
    for (int k = 0; k < r->n; k++) /* dropout masks are functions of the step (and micro-batch) */
        r->tr[k].s.step = ts->global_step * r->accum;

    int first = first_epoch_of(c, ts->stage);
    mm_loader_opts lo;
    mm_loader_opts_default(&lo);
    lo.batch_size = c->batch;
    lo.height = c->height;
    lo.width = c->width;
    lo.channels = 3;
    lo.rescale = ts->rescale;
    lo.mean = ts->pixel_mean;
    lo.shuffle = 1;
    lo.seed = c->seed;
    lo.drop_last = 1;
    lo.n_threads = c->threads;
    lo.max_epochs = first + stage->epochs;
    lo.start_epoch = first + ts->epoch;
    lo.augment = c->augment;
    lo.aug = c->aug;
    lo.shard_batches = r->n * r->accum; /* whole steps only */
    if (r->group) {
        lo.shards = mm_group_size(r->group);
        lo.shard = mm_group_rank(r->group);
    }
    mm_loader *L;
    MM_TRY(mm_loader_create(&L, c->train->items, c->train->n, &lo));
    MM_TRY(mm_jsonl_stage(&r->log, ts->stage, stage->trainable ? stage->trainable : "all",
                          first + 1, stage->epochs, ts->global_step, stage->lr,
                          mm_plan_peak_bytes(&r->tr[0].s.plan) +
                              (r->accum > 1 ? r->tr[0].s.plan.trainable_bytes : 0)));
    int64_t steps = mm_loader_batches_per_epoch(L) / (r->n * r->accum);
    while (ts->epoch < stage->epochs && st == MM_OK && !*stop) {
        int epoch = first + ts->epoch + 1;
        double t0 = mm_monotonic_s(), loss, metric = NAN, acc = NAN;
        mm_progress_set_label(&r->prog, "stage %d/%d", ts->stage, c->n_stages);
        mm_progress_begin_epoch(&r->prog, epoch, first_epoch_of(c, c->n_stages + 1), steps);
        st = train_epoch(r, L, stage, &loss);
        if (st == MM_OK && r->leader) st = validate(&metric, &acc, &r->ev, &r->tr[0], c, ts);
        if (st == MM_OK && r->group) { /* node 0's decision is every node's */
            double m[2] = {metric, acc};
            st = mm_group_broadcast(r->group, m, sizeof m);
            metric = m[0];
            acc = m[1];
        }
        if (st != MM_OK) break;
        ts->epoch++;
        bool is_best = metric > ts->best_metric;
        if (is_best) {
            ts->best_metric = metric;
            ts->best_stage = ts->stage;
            ts->best_epoch = epoch;
            ts->bad_epochs = 0;
        } else {
            ts->bad_epochs++;
        }
        if (r->leader) st = save_checkpoints(r, is_best);
        if (st != MM_OK) break;
        mm_log_epoch e;
        mm_log_epoch_init(&e);
        e.epoch = epoch;
        e.step = ts->global_step;
        e.train_loss = loss;
        e.lr = stage->lr;
        e.seconds = mm_monotonic_s() - t0;
        e.best = is_best;
        if (c->classes == 2) {
            e.val_auc = metric;
            e.val_acc = acc;
        } else {
            e.val_acc = acc;
        }
        st = mm_jsonl_epoch(&r->log, &e);
        mm_progress_end_epoch(&r->prog, "loss %.4f  val %s %.4f%s", loss,
                              c->classes == 2 ? "AUC" : "acc", metric, is_best ? "  (best)" : "");
        if (c->patience > 0 && ts->bad_epochs >= c->patience) *stop = true;
    }
    mm_loader_free(L);
    return st;
}

static int epochs_done(const mm_train_config *c, const mm_train_state *ts)
{
    if (ts->stage > c->n_stages) return first_epoch_of(c, c->n_stages + 1);
    return first_epoch_of(c, ts->stage) + ts->epoch;
}

static mm_status make_run_dir(const char *dir, bool *made)
{
    *made = mkdir(dir, 0755) == 0;
    if (!*made && errno != EEXIST)
        return mm_fail(MM_ERR_IO, "%s: cannot create the run folder: %s", dir, strerror(errno));
    return MM_OK;
}

/* A run that fails before it wrote anything leaves no empty folder behind (rmdir removes only an
 * empty one: a run that logged or saved something keeps it). */
static void drop_unused_run_dir(const run *r)
{
    if (r->made_dir) rmdir(r->c->run_dir);
}

/* What every node of a group must agree on, as "key=value ..." (group.h's fingerprint): the
 * schedule, the model, the step, the data (its size and labels), this build's state layout. */
static void describe_run(const mm_train_config *c, char *out, size_t n)
{
    uint64_t labels = 1469598103934665603ULL; /* FNV-1a of the training labels in order */
    for (int i = 0; i < c->train->n; i++)
        labels = (labels ^ (uint64_t)(uint32_t)c->train->items[i].label) * 1099511628211ULL;
    mm_strbuf b;
    mm_strbuf_init(&b);
    mm_strbuf_printf(&b, "command=%s net=%s top=%s classes=%d width_div=%d input=%dx%d batch=%d "
                     "replicas=%d accumulate=%d device=%s precision=%s seed=%llu dropout=%g "
                     "weight_decay=%g "
                     "adamw=%d balanced=%d augment=%d patience=%d resume=%d cuda_graph=%d "
                     "recompute=%d,%lld,%g train_images=%d train_labels=%016llx state=%zu",
                     c->command, mm_trunk_name(c->trunk), c->top ? c->top : "-", c->classes,
                     c->width_div, c->height, c->width, c->batch, c->replicas, c->accumulate,
                     strncmp(c->device, "cuda", 4) ? c->device : "cuda", c->precision,
                     (unsigned long long)c->seed, (double)c->dropout, c->weight_decay,
                     c->decoupled_wd, c->class_balanced, c->augment, c->patience, c->resume,
                     c->cuda_graph, c->no_recompute, (long long)c->recompute_conv,
                     c->recompute_slack, c->train->n, (unsigned long long)labels,
                     sizeof(mm_train_state));
    for (int k = 0; k < c->n_stages; k++)
        mm_strbuf_printf(&b, " stage%d=%d,%g,%s", k + 1, c->stages[k].epochs, c->stages[k].lr,
                         c->stages[k].trainable ? c->stages[k].trainable : "all");
    snprintf(out, n, "%s", mm_strbuf_str(&b));
    mm_strbuf_free(&b);
}

static mm_status start(run *r, const mm_train_config *c)
{
    memset(r, 0, sizeof *r);
    r->c = c;
    mm_train_state_init(&r->ts);
    if (c->n_stages < 1 || c->n_stages > MM_MAX_STAGES)
        return mm_fail(MM_ERR_ARG, "%s: the schedule needs 1 to %d stages", c->command, MM_MAX_STAGES);
    r->n = c->replicas > 0 ? c->replicas : 1;
    r->accum = c->accumulate > 1 ? c->accumulate : 1;
    int nodes = c->nodes > 1 ? c->nodes : 1;
    if (c->train->n < c->batch * r->n * nodes * r->accum) {
        char need[128] = "";
        if (r->n > 1 || nodes > 1 || r->accum > 1)
            snprintf(need, sizeof need, " x --replicas %d%s%s (one step)", r->n,
                     nodes > 1 ? " x --nodes" : "", r->accum > 1 ? " x --accumulate" : "");
        return mm_fail(MM_ERR_ARG, "%s: the training split has %d images, fewer than --batch %d%s",
                       c->command, c->train->n, c->batch, need);
    }
    if (c->val->n < 1) return mm_fail(MM_ERR_ARG, "%s: the validation split is empty", c->command);
    r->leader = nodes == 1 || c->node_rank == 0;
    if (nodes > 1) {
        r->rank0 = c->node_rank * r->n;
        char fp[2048];
        describe_run(c, fp, sizeof fp);
        MM_TRY(mm_group_join(c->master, nodes, c->node_rank, fp, &r->group));
        if (!r->leader) {
            printf("node %d of %d joined the group at %s; node 0 logs the run\n", c->node_rank,
                   nodes, c->master);
            fflush(stdout);
        }
    }
    if (r->leader) MM_TRY(make_run_dir(c->run_dir, &r->made_dir));
    path_in(r->last, sizeof r->last, c->run_dir, "last.safetensors");
    path_in(r->best, sizeof r->best, c->run_dir, "best.safetensors");
    mm_precision precision;
    MM_TRY(mm_precision_parse(c->precision, &precision));
    MM_TRY(mm_replicas_open(c->device, precision, r->n, r->bes));
    r->be = r->bes[0];
    for (int k = 0; k < r->n; k++) {
        r->bes[k]->deterministic = c->deterministic;
        mm_backend_set_algo_cache(r->bes[k], c->algo_cache_dir);
    }
    if (c->cuda_graph && !r->be->begin_capture)
        return mm_fail(MM_ERR_ARG, "%s: --cuda-graph: the %s device has no graph capture; use "
                       "--device cuda", c->command, r->be->name);
    return MM_OK;
}

mm_status mm_train_run(const mm_train_config *c, double *best)
{
    run r;
    mm_status st = start(&r, c);
    if (st != MM_OK) {
        for (int k = 0; k < r.n; k++) mm_backend_destroy(r.bes[k]);
        mm_group_leave(r.group);
        drop_unused_run_dir(&r);
        return st;
    }
    mm_train_state *ts = &r.ts;
    bool resumed = false;
    mm_checkpoint_info info;
    if (!r.leader) {
        resumed = c->resume; /* the state comes from node 0 below */
    } else if (c->resume) {
        st = mm_safetensors_open(&r.resume_from, r.last);
        if (st == MM_OK) st = mm_checkpoint_info_from(r.resume_from, &info);
        if (st == MM_OK && !info.has_state)
            st = mm_fail(MM_ERR_FORMAT, "%s: holds weights but no training state", r.last);
        if (st == MM_OK) {
            *ts = info.st;
            resumed = true;
        }
    } else {
        ts->seed = c->seed;
        ts->rescale = c->rescale;
        ts->height = c->height;
        ts->width = c->width;
        snprintf(ts->class_names, sizeof ts->class_names, "%s", c->class_names ? c->class_names : "");
        double mean = 0;
        st = mm_pixel_mean(&mean, c->train->items, c->train->n, c->height, c->width, c->rescale,
                           c->threads);
        ts->pixel_mean = (float)mean;
    }
    if (st == MM_OK && r.group) st = mm_group_broadcast(r.group, ts, sizeof *ts);
    if (st == MM_OK && r.leader) st = bind(&r.ev, c, r.be, false, NULL, 0);
    if (st == MM_OK && resumed && r.leader) st = mm_checkpoint_check_arch(r.last, &info, &r.ev.m);
    if (st == MM_OK && r.leader) {
        char cfg[4096];
        path_in(cfg, sizeof cfg, c->run_dir, "config.json");
        if (!resumed && c->config_json) st = mm_write_text_atomic(cfg, c->config_json, strlen(c->config_json));
    }
    char log_path[4096];
    path_in(log_path, sizeof log_path, c->run_dir, "metrics.jsonl");
    if (st == MM_OK && r.leader) st = mm_jsonl_open(&r.log, log_path, resumed);
    if (st == MM_OK) {
        mm_progress_init(&r.prog, r.leader ? stdout : NULL, MM_PROGRESS_AUTO);
        st = mm_jsonl_run(&r.log, c->command, resumed, first_epoch_of(c, ts->stage) + ts->epoch,
                          ts->global_step);
        bool stop = false, load_checkpoint = resumed;
        /* a checkpoint written at the end of a stage resumes at the start of the next */
        while (resumed && ts->stage <= c->n_stages && ts->epoch >= c->stages[ts->stage - 1].epochs) {
            ts->stage++;
            ts->epoch = 0;
            ts->adam_step = 0;
        }
        while (st == MM_OK && ts->stage <= c->n_stages && !stop) {
            if (c->stages[ts->stage - 1].epochs > 0) {
                st = run_stage(&r, load_checkpoint, &stop);
                load_checkpoint = false;
            }
            if (st == MM_OK && !stop) {
                ts->stage++;
                ts->epoch = 0;
                ts->adam_step = 0;
            }
        }
        const char *status = st == MM_ERR_NUMERIC ? "diverged" : st != MM_OK ? "interrupted"
                           : stop ? "early_stopped" : "finished";
        char saved[1024];
        snprintf(saved, sizeof saved, "%s", mm_last_error());
        mm_jsonl_end(&r.log, status, epochs_done(c, ts), ts->global_step, ts->best_epoch,
                     c->classes == 2 ? "val_auc" : "val_acc", ts->best_metric);
        if (st != MM_OK) mm_fail(st, "%s", saved);
        mm_jsonl_close(&r.log);
    }
    if (best) *best = ts->best_metric;
    if (r.resume_from) mm_safetensors_close(r.resume_from);
    mm_comm_destroy(r.comm);
    mm_group_leave(r.group);
    for (int k = 0; k < r.n; k++) unbind(&r.tr[k]);
    unbind(&r.ev);
    for (int k = 0; k < r.n; k++) mm_backend_destroy(r.bes[k]);
    if (st != MM_OK) drop_unused_run_dir(&r);
    return st;
}
