/* `mammo bench`: times training steps (forward, backward, Adam) of a patch or whole-image model on
 * random data, or with --eval its evaluation forward passes (predict's work), and prints images
 * per second and the step's peak memory as one machine-readable line, the figure bench/ compares
 * with PyTorch's on the same machine. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../kernels/philox.h"
#include "../nets/nets.h"
#include "../runtime/backend.h"
#include "../runtime/dist.h"
#include "../runtime/group.h"
#include "args.h"
#include "commands.h"
#include "model_flags.h"
#include "proc_mem.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The step's convolutions as their algorithm searches timed them, each alone (backend.h
 * chosen_ms), summed over the convolution nodes: set against the convolution ops of a --profile,
 * it says whether they run as fast in the step as alone. -1 when one was not timed
 * (--deterministic) or the backend times nothing. */
static double searched_conv_ms(mm_backend *be, const mm_graph *g)
{
    if (!be->chosen_ms) return -1;
    double sum = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const mm_node *nd = &g->nodes[i];
        if (!mm_op_is_conv(nd->op)) continue;
        double ms = be->chosen_ms(be, g, nd);
        if (ms < 0) return -1;
        sum += ms;
    }
    return sum;
}

/* The random batch, in host memory the backend copies from fast (kept for --feed). */
static float *random_images(mm_backend *be, const mm_model *m, size_t *bytes)
{
    const mm_value *img = mm_graph_value(m->g, m->image);
    int64_t n = mm_shape_numel(img->ndim, img->shape);
    *bytes = (size_t)n * sizeof(float);
    float *x = mm_host_alloc(be, *bytes);
    for (int64_t i = 0; i < n; i++) x[i] = mm_philox_uniform(1, (uint64_t)i) * 2.0f - 1.0f;
    return x;
}

/* The images, and in training labels 0..classes-1 and unit weights, written into the session:
 * the step's cost does not depend on the values. */
static mm_status write_batch(mm_session *s, const mm_model *m, const float *x, size_t bytes)
{
    const mm_value *img = mm_graph_value(m->g, m->image);
    mm_status st = mm_session_write(s, m->image, x, bytes);
    if (m->labels < 0 || st != MM_OK) return st; /* evaluation */
    int batch = (int)img->shape[0];
    int32_t *labels = mm_xmalloc((size_t)batch * sizeof(int32_t));
    float *w = mm_xmalloc((size_t)batch * sizeof(float));
    for (int i = 0; i < batch; i++) {
        labels[i] = i % m->cfg.classes;
        w[i] = 1.0f;
    }
    if (st == MM_OK) st = mm_session_write(s, m->labels, labels, (size_t)batch * sizeof(int32_t));
    if (st == MM_OK) st = mm_session_write(s, m->weights, w, (size_t)batch * sizeof(float));
    free(labels);
    free(w);
    return st;
}

/* One data-parallel replica (runtime/dist.h): its device, model, session and batch. */
typedef struct {
    mm_backend *be;
    mm_model m;
    mm_session s;
    bool built, live;
    float *images;
    size_t img_bytes;
    float loss; /* evaluation: the first logit */
} replica;

/* What each replica's work (mm_replicas_each) reads. */
typedef struct {
    replica *rep;
    const mm_model_config *cfg;
    bool graph, feed; /* graph: replay the captured step */
    bool eval;        /* forward passes only */
    mm_adam_params adam;
} bench_job;

static mm_status setup_rank(int rank, void *arg)
{
    bench_job *j = arg;
    replica *r = &j->rep[rank];
    MM_TRY(mm_model_build(&r->m, j->cfg));
    r->built = true;
    MM_TRY(mm_session_init(&r->s, r->m.g, r->be, j->eval ? 0 : 2));
    r->live = true;
    mm_model_init(&r->m, &r->s, 42);
    r->images = random_images(r->be, &r->m, &r->img_bytes);
    return write_batch(&r->s, &r->m, r->images, r->img_bytes);
}

/* The loss, or in evaluation the first logit (all of them are read, as predict reads them). */
static mm_status read_result(replica *r)
{
    if (r->m.loss >= 0) return mm_session_read(&r->s, r->m.loss, &r->loss, sizeof r->loss);
    const mm_value *v = mm_graph_value(r->m.g, r->m.logits);
    float *logits = mm_xmalloc(mm_value_bytes(v));
    mm_status st = mm_session_read(&r->s, r->m.logits, logits, mm_value_bytes(v));
    r->loss = logits[0];
    free(logits);
    return st;
}

/* One step's forward and backward pass (eager, or the replay of its capture), and with --feed
 * the next batch and this step's loss, as training does (evaluation: its logits, as predict). */
static mm_status step_rank(int rank, void *arg)
{
    bench_job *j = arg;
    replica *r = &j->rep[rank];
    if (j->graph) mm_session_replay(&r->s);
    else mm_session_run(&r->s);
    if (!j->feed) return MM_OK;
    MM_TRY(write_batch(&r->s, &r->m, r->images, r->img_bytes));
    return read_result(r);
}

static mm_status capture_rank(int rank, void *arg)
{
    return mm_session_capture(&((bench_job *)arg)->rep[rank].s);
}

static mm_status adam_rank(int rank, void *arg)
{
    bench_job *j = arg;
    mm_session_adam(&j->rep[rank].s, &j->adam);
    return MM_OK;
}

static mm_status sync_rank(int rank, void *arg)
{
    replica *r = &((bench_job *)arg)->rep[rank];
    r->be->sync(r->be);
    return MM_OK;
}

static mm_status free_rank(int rank, void *arg)
{
    replica *r = &((bench_job *)arg)->rep[rank];
    mm_host_free(r->be, r->images);
    if (r->live) mm_session_free(&r->s);
    if (r->built) mm_model_free(&r->m);
    return MM_OK;
}

/* Warm-up and timed steps on every replica; the seconds of the timed ones in *secs. With other
 * nodes (group) the timing starts and ends when every node is there. */
static mm_status run_steps(bench_job *j, mm_backend *const *bes, int n, mm_comm *comm,
                           mm_group *group, int64_t warmup, int64_t steps, bool graph,
                           double *secs)
{
    double t0 = 0;
    for (int64_t i = 0; i < warmup + steps; i++) {
        if (i == warmup) {
            MM_TRY(mm_replicas_each(bes, n, sync_rank, j));
            if (group) MM_TRY(mm_group_barrier(group));
            t0 = now_s();
        }
        if (graph && i == warmup) { /* capture once, after the eager warm-up steps */
            MM_TRY(mm_replicas_each(bes, n, capture_rank, j));
            MM_TRY(mm_replicas_each(bes, n, sync_rank, j));
            t0 = now_s(); /* the capture is set-up, not a step */
        }
        j->graph = graph && i >= warmup;
        MM_TRY(mm_replicas_each(bes, n, step_rank, j));
        if (j->eval) continue;
        if (comm) MM_TRY(mm_comm_average_grads(comm));
        j->adam.step = i + 1;
        MM_TRY(mm_replicas_each(bes, n, adam_rank, j));
    }
    MM_TRY(mm_replicas_each(bes, n, sync_rank, j));
    if (group) MM_TRY(mm_group_barrier(group));
    *secs = now_s() - t0;
    return MM_OK;
}

/* What must agree across the nodes of a bench: every flag but where each node runs. */
static void describe_bench(const mm_args *a, char *out, size_t n)
{
    static const char *const local[] = {"node-rank", "master", "device", "algo-cache",
                                        "profile"};
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < a->n; i++) {
        const char *name = a->flags[i].name, *v = mm_args_get(a, name);
        bool skip = false;
        for (size_t k = 0; k < sizeof local / sizeof *local; k++) skip |= !strcmp(name, local[k]);
        if (skip || used >= n) continue;
        if (a->flags[i].type == MM_ARG_BOOL) v = v ? "1" : "0";
        used += (size_t)snprintf(out + used, n - used, "%s=%s ", name, v ? v : "-");
    }
    const char *device = mm_args_get(a, "device");
    if (used < n) snprintf(out + used, n - used, "device=%s", strncmp(device, "cuda", 4) ? device
                                                                                   : "cuda");
}

/* The group's figures on node 0: the slowest node's seconds and the largest device memory. */
static mm_status group_figures(mm_group *group, double *secs, size_t *bytes)
{
    double mine[2] = {*secs, (double)*bytes};
    double *all = mm_xmalloc((size_t)mm_group_size(group) * sizeof mine);
    mm_status st = mm_group_gather(group, mine, all, sizeof mine);
    for (int q = 0; st == MM_OK && mm_group_rank(group) == 0 && q < mm_group_size(group); q++) {
        if (all[2 * q] > *secs) *secs = all[2 * q];
        if (all[2 * q + 1] > (double)*bytes) *bytes = (size_t)all[2 * q + 1];
    }
    free(all);
    return st;
}

int mm_cmd_bench(int argc, char **argv)
{
    mm_args a;
    mm_args_init(&a, "mammo bench", "[flags]",
                 "Times training steps (forward, backward, Adam) on random data and prints\n"
                 "images/s and peak memory. Without --top: the 5-class patch classifier; with\n"
                 "--top: the whole-image classifier with those top blocks. --eval: evaluation\n"
                 "forward passes instead.");
    mm_args_str(&a, "net", "resnet50", "trunk: resnet50 or vgg16");
    mm_args_str(&a, "top", NULL, "top blocks of a whole-image model, e.g. [512-512-1024]x2,[512-512-1024]x2");
    mm_args_str(&a, "input", "224x224", "input size HEIGHTxWIDTH");
    mm_args_int(&a, "batch", "2", "images per step");
    mm_width_div_flag_add(&a);
    mm_args_str(&a, "device", "cpu", "cpu, cuda or cuda:N (GPU N)");
    mm_args_int(&a, "replicas", "1",
                "data parallel: this many replicas of the step, each on its own GPU from "
                "--device's on (NCCL averages their gradients) and --batch images each; "
                "images_per_s counts them all");
    mm_args_str(&a, "precision", "fp32", "fp32, tf32 or bf16 (cuda)");
    mm_args_bool(&a, "eval",
                 "time evaluation forward passes instead (running statistics, no gradients or "
                 "optimizer: the work of predict, without --tta's four flips)");
    mm_args_int(&a, "steps", "10", "timed steps");
    mm_args_int(&a, "warmup", "2", "untimed steps first (algorithm search, caches)");
    mm_args_float(&a, "lr", "1e-4",
                  "Adam's learning rate (0: the weights stay, so every step's loss is the "
                  "first's)");
    mm_args_bool(&a, "cuda-graph",
                 "replay the forward and backward pass as one captured CUDA graph");
    mm_deterministic_flag_add(&a);
    mm_algo_cache_flag_add(&a);
    mm_args_bool(&a, "feed",
                 "copy the batch from the host and read the loss every step, as training does "
                 "(default: one batch stays on the device)");
    mm_args_bool(&a, "no-recompute", "keep every activation backward reads (no recomputation)");
    mm_args_bool(&a, "recompute", "recompute cheap activations in backward (the default)");
    mm_recompute_conv_flag_add(&a);
    mm_recompute_slack_flag_add(&a);
    mm_scratch_flag_add(&a);
    mm_nodes_flags_add(&a);
    mm_args_int(&a, "profile", "0",
                "after timing, profile this many steps node by node and print the slowest");
    if (mm_args_parse(&a, argc, argv) != MM_OK) return mm_cli_error();
    if (a.help) return 0;
    if (a.n_pos) {
        mm_fail(MM_ERR_ARG, "mammo bench: unexpected argument '%s'", a.pos[0]);
        return mm_cli_error();
    }

    int h, w;
    int64_t batch, steps, warmup, profile, recompute_conv, n_rep;
    double lr, recompute_slack;
    mm_trunk trunk;
    int width_div = 1;
    size_t scratch_budget = 0;
    bool scratch_strict = false;
    if (mm_parse_hw(mm_args_get(&a, "input"), "--input", &h, &w) != MM_OK ||
        mm_width_div_flag_get(&a, &width_div) != MM_OK ||
        mm_scratch_flag_get(&a, &scratch_budget, &scratch_strict) != MM_OK ||
        mm_args_get_int(&a, "batch", &batch) != MM_OK ||
        mm_args_get_int(&a, "steps", &steps) != MM_OK ||
        mm_args_get_int(&a, "warmup", &warmup) != MM_OK ||
        mm_args_get_int(&a, "profile", &profile) != MM_OK ||
        mm_args_get_int(&a, "replicas", &n_rep) != MM_OK ||
        mm_args_get_float(&a, "lr", &lr) != MM_OK ||
        mm_recompute_conv_flag_get(&a, &recompute_conv) != MM_OK ||
        mm_recompute_slack_flag_get(&a, &recompute_slack) != MM_OK ||
        mm_trunk_parse(&trunk, mm_args_get(&a, "net"), "--net") != MM_OK)
        return mm_cli_error();
    if (batch < 1 || batch > 4096 || steps < 1 || warmup < 0 || profile < 0 ||
        !(lr >= 0 && lr < 1e3) || n_rep < 1 || n_rep > MM_MAX_REPLICAS) {
        mm_fail(MM_ERR_ARG, "mammo bench: --batch and --steps must be positive, --warmup and "
                "--profile not negative, --lr in [0, 1000), --replicas 1 to %d", MM_MAX_REPLICAS);
        return mm_cli_error();
    }
    mm_precision precision;
    int nodes = 1, node_rank = 0;
    const char *master = NULL;
    if (mm_precision_parse(mm_args_get(&a, "precision"), &precision) != MM_OK ||
        mm_nodes_flags_get(&a, &nodes, &node_rank, &master) != MM_OK)
        return mm_cli_error();

    const char *top = mm_args_get(&a, "top");
    mm_model_config cfg = mm_model_config_default(top ? MM_MODEL_WHOLE : MM_MODEL_PATCH, trunk);
    if (top) cfg.top = top;
    cfg.batch = (int)batch;
    cfg.height = h;
    cfg.width = w;
    cfg.width_div = width_div;
    cfg.scratch_budget = scratch_budget;
    cfg.scratch_strict = scratch_strict;
    bool eval = mm_args_get_bool(&a, "eval");
    cfg.training = !eval;

    if (!strcmp(mm_args_get(&a, "device"), "meta")) {
        mm_fail(MM_ERR_ARG, "--device meta: has no arithmetic to time; use cpu or cuda (or "
                "'mammo plan' for the memory of a step)");
        return mm_cli_error();
    }
    bool graph = mm_args_get_bool(&a, "cuda-graph"), feed = mm_args_get_bool(&a, "feed");
    mm_backend *bes[MM_MAX_REPLICAS];
    if (mm_replicas_open(mm_args_get(&a, "device"), precision, (int)n_rep, bes) != MM_OK)
        return mm_cli_error();
    int n = (int)n_rep;
    mm_backend *be = bes[0];
    mm_status st = MM_OK;
    for (int r = 0; r < n && st == MM_OK; r++) {
        mm_deterministic_flag_set(&a, bes[r]);
        st = mm_algo_cache_flag_apply(&a, mm_args_get(&a, "device"), bes[r]);
    }
    if (st == MM_OK && graph && !be->begin_capture)
        st = mm_fail(MM_ERR_ARG, "--cuda-graph: the %s device has no graph capture", be->name);
    else if (st == MM_OK && graph && warmup < 1)
        st = mm_fail(MM_ERR_ARG, "--cuda-graph needs --warmup 1 or more: the step runs once "
                     "before it is captured (cuDNN and cuBLAS finish their set-up then)");
    mm_group *group = NULL;
    if (st == MM_OK && nodes > 1) {
        char fp[4096];
        describe_bench(&a, fp, sizeof fp);
        st = mm_group_join(master, nodes, node_rank, fp, &group);
    }
    mm_model_config_for_backend(&cfg, be); /* recomputing, as --recompute says */
    mm_model_config_recompute(&cfg, mm_args_get_bool(&a, "no-recompute"), recompute_conv,
                              recompute_slack);

    replica rep[MM_MAX_REPLICAS];
    memset(rep, 0, sizeof rep);
    for (int r = 0; r < n; r++) rep[r].be = bes[r];
    bench_job job = {rep, &cfg, false, feed, eval,
                     {.lr = (float)lr, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f}};
    /* host memory from here on: the step's (on the cpu device all of it), not the libraries' */
    mm_proc_reset_peak();
    size_t host_base = mm_proc_rss_bytes();
    /* building and planning the step, cuDNN's searches included (side by side on GPUs) */
    double setup0 = now_s();
    if (st == MM_OK) st = mm_replicas_each(bes, n, setup_rank, &job);
    double setup_s = now_s() - setup0;
    mm_comm *comm = NULL;
    if (st == MM_OK && (n > 1 || group) && !eval) {
        mm_session *ss[MM_MAX_REPLICAS];
        for (int r = 0; r < n; r++) ss[r] = &rep[r].s;
        st = mm_comm_create_group(ss, n, group, &comm);
        if (st == MM_OK) st = mm_comm_copy_weights(comm);
    }
    double secs = 0;
    if (st == MM_OK) st = run_steps(&job, bes, n, comm, group, warmup, steps, graph, &secs);
    size_t device_bytes = 0; /* the largest replica's */
    for (int r = 0; r < n; r++) {
        size_t b = mm_backend_memory_in_use(bes[r]);
        if (b > device_bytes) device_bytes = b;
    }
    double node_secs = secs;
    if (st == MM_OK && group) st = group_figures(group, &secs, &device_bytes);
    if (st != MM_OK) {
        mm_group_leave(group);
        mm_comm_destroy(comm);
        mm_replicas_each(bes, n, free_rank, &job);
        for (int r = 0; r < n; r++) mm_backend_destroy(bes[r]);
        return mm_cli_error();
    }
    mm_session *s = &rep[0].s;
    if (!feed) read_result(&rep[0]);
    float loss = rep[0].loss;
    if (node_rank > 0) { /* node 0 prints the group's figures */
        printf("node %d of %d: images_per_s=%.3f on this node; node 0 prints the group's\n",
               node_rank, nodes, (double)(n * batch * steps) / node_secs);
        mm_group_leave(group);
        mm_comm_destroy(comm);
        mm_replicas_each(bes, n, free_rank, &job);
        for (int r = 0; r < n; r++) mm_backend_destroy(bes[r]);
        return 0;
    }
    char choices[256] = "";
    if (be->describe) be->describe(be, choices, sizeof choices);
    if (be->chosen_ms) {
        size_t used = strlen(choices);
        snprintf(choices + used, sizeof choices - used, " conv_searched_ms=%.3f",
                 searched_conv_ms(be, rep[0].m.g));
    }
    printf("mammo net=%s top=%s input=%dx%d batch=%d device=%s precision=%s steps=%lld "
           "images_per_s=%.3f step_ms=%.3f planned_peak_bytes=%zu peak_mem_bytes=%zu "
           "host_peak_bytes=%zu %s=%.6f "
           "recompute=%d recompute_conv=%lld recompute_slack=%g workspace_bytes=%zu "
           "ws_limited=%d setup_s=%.2f width_div=%d feed=%d deterministic=%d replicas=%d "
           "nodes=%d mode=%s%s%s\n",
           mm_trunk_name(trunk), top ? top : "none", h, w, (int)batch, be->name,
           mm_precision_name(precision), (long long)steps,
           (double)(nodes * n * batch * steps) / secs, 1e3 * secs / (double)steps,
           mm_plan_peak_bytes(&s->plan),
           device_bytes ? device_bytes : mm_plan_peak_bytes(&s->plan),
           mm_proc_peak_over(host_base), eval ? "logit" : "loss", loss, !cfg.no_recompute,
           cfg.no_recompute ? 0LL : (long long)cfg.recompute_conv_macs,
           cfg.no_recompute ? 0.0 : 100.0 * cfg.recompute_slack, s->plan.workspace_bytes,
           s->plan.n_ws_limited, setup_s, width_div, feed, (int)be->deterministic, n, nodes,
           eval ? "eval" : "train", choices[0] ? " " : "", choices);
    if (profile > 0) { /* replica 0's nodes */
        mm_backend_bind(be);
        mm_session_profile(s);
        for (int64_t i = 0; i < profile; i++) mm_session_run(s);
        mm_session_profile_print(s, (int)profile, 25, stdout);
    }
    mm_group_leave(group);
    mm_comm_destroy(comm);
    mm_replicas_each(bes, n, free_rank, &job);
    for (int r = 0; r < n; r++) mm_backend_destroy(bes[r]);
    return 0;
}
