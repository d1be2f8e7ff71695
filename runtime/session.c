/* A planned graph bound to a backend: see session.h. */
#include "session.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static void *region_base(const mm_session *s, mm_region r)
{
    switch (r) {
    case MM_REGION_PARAM: return s->params;
    case MM_REGION_GRAD: return s->grads;
    case MM_REGION_STATE: return s->state;
    case MM_REGION_INPUT: return s->inputs;
    case MM_REGION_ARENA: return s->arena;
    default: return NULL;
    }
}

static mm_status alloc_region(mm_session *s, void **out, size_t bytes, const char *what)
{
    *out = NULL;
    if (bytes == 0) return MM_OK;
    *out = s->be->alloc(s->be, bytes);
    if (!*out)
        return mm_fail(MM_ERR_NOMEM,
                       "%s device: cannot allocate %.1f MiB for %s (peak of the step %.1f MiB); "
                       "use a smaller batch or input size",
                       s->be->name, bytes / 1048576.0, what, mm_plan_peak_bytes(&s->plan) / 1048576.0);
    return MM_OK;
}

mm_status mm_session_init(mm_session *s, mm_graph *g, mm_backend *be, int opt_slots)
{
    memset(s, 0, sizeof *s);
    s->g = g;
    s->be = be;
    MM_TRY(mm_graph_status(g));
    MM_TRY(mm_plan_make(&s->plan, g, be, opt_slots));
    const mm_plan *p = &s->plan;
    mm_status st = MM_OK;
    if (st == MM_OK) st = alloc_region(s, &s->params, p->param_bytes, "parameters");
    if (st == MM_OK) st = alloc_region(s, &s->grads, p->grad_bytes, "gradients");
    if (st == MM_OK) st = alloc_region(s, &s->opt, p->opt_bytes, "optimizer state");
    if (st == MM_OK) st = alloc_region(s, &s->state, p->state_bytes, "batch-norm statistics");
    if (st == MM_OK) st = alloc_region(s, &s->inputs, p->input_bytes, "inputs");
    if (st == MM_OK) st = alloc_region(s, &s->arena, p->arena_bytes, "activations");
    if (st != MM_OK) {
        mm_session_free(s);
        return st;
    }
    /* Defined contents from the start: zero everything persistent. */
    void *bufs[4] = {s->params, s->grads, s->opt, s->state};
    size_t sizes[4] = {p->param_bytes, p->grad_bytes, p->opt_bytes, p->state_bytes};
    for (int i = 0; i < 4; i++)
        if (bufs[i]) be->zero(be, bufs[i], sizes[i]);
    if (s->inputs) be->zero(be, s->inputs, p->input_bytes);
    return MM_OK;
}

void mm_session_free(mm_session *s)
{
    if (!s->be) return;
    void *bufs[7] = {s->params, s->grads, s->opt, s->state, s->inputs, s->arena, s->grad_sum};
    for (int i = 0; i < 7; i++)
        if (bufs[i]) s->be->free(s->be, bufs[i]);
    mm_plan_free(&s->plan);
    free(s->node_seconds);
    memset(s, 0, sizeof *s);
}

mm_tensor mm_session_tensor(const mm_session *s, int value)
{
    const mm_value *v = mm_graph_value(s->g, value);
    char *base = region_base(s, s->plan.region[value]);
    mm_tensor t = mm_tensor_view(base ? base + s->plan.offset[value] : NULL, v->dtype, v->ndim,
                                 v->shape);
    t.device = s->be->device;
    return t;
}

static mm_status check_copy(const mm_session *s, int value, size_t bytes, const char *what)
{
    if (value < 0 || value >= s->g->n_values)
        return mm_fail(MM_ERR_ARG, "%s: no such value %d", what, value);
    const mm_value *v = mm_graph_value(s->g, value);
    if (bytes != mm_value_bytes(v))
        return mm_fail(MM_ERR_SHAPE, "%s %s: %zu bytes given, the value has %zu", what,
                       v->name[0] ? v->name : "(intermediate)", bytes, mm_value_bytes(v));
    if (s->plan.region[value] == MM_REGION_NONE)
        return mm_fail(MM_ERR_ARG, "%s: value %d has no memory in this plan", what, value);
    if (s->be->device == MM_DEVICE_META)
        return mm_fail(MM_ERR_DEVICE, "%s: the meta device holds no data; use --device cpu or cuda",
                       what);
    return MM_OK;
}

mm_status mm_session_write(mm_session *s, int value, const void *host, size_t bytes)
{
    MM_TRY(check_copy(s, value, bytes, "write"));
    mm_tensor t = mm_session_tensor(s, value);
    s->be->copy_to_device(s->be, t.data, host, bytes);
    return MM_OK;
}

mm_status mm_session_read(const mm_session *s, int value, void *host, size_t bytes)
{
    MM_TRY(check_copy(s, value, bytes, "read"));
    mm_tensor t = mm_session_tensor(s, value);
    s->be->copy_to_host(s->be, host, t.data, bytes);
    return MM_OK;
}

static mm_status opt_slot(const mm_session *s, int param, int slot, size_t bytes, char **where)
{
    MM_TRY(check_copy(s, param, bytes, "optimizer state"));
    const mm_value *v = mm_graph_value(s->g, param);
    if (v->kind != MM_VALUE_PARAM || v->frozen || slot < 0 || slot >= s->plan.opt_slots)
        return mm_fail(MM_ERR_ARG, "optimizer state of %s: not a trainable parameter with slot %d",
                       v->name, slot);
    *where = (char *)s->opt + (size_t)slot * s->plan.trainable_bytes + s->plan.offset[param];
    return MM_OK;
}

mm_status mm_session_write_opt(mm_session *s, int param, int slot, const void *host, size_t bytes)
{
    char *dst;
    MM_TRY(opt_slot(s, param, slot, bytes, &dst));
    s->be->copy_to_device(s->be, dst, host, bytes);
    return MM_OK;
}

mm_status mm_session_read_opt(const mm_session *s, int param, int slot, void *host, size_t bytes)
{
    char *src;
    MM_TRY(opt_slot(s, param, slot, bytes, &src));
    s->be->copy_to_host(s->be, host, src, bytes);
    return MM_OK;
}

/* Dropout draws a fresh mask every step: the node's seed is mixed with the step number. */
static void run_node(mm_session *s, int id)
{
    const mm_graph *g = s->g;
    const mm_node *nd = &g->nodes[id];
    if (nd->op == MM_OP_RESHAPE || nd->op == MM_OP_NONE) return; /* a view, or a fused-away node */
    mm_node local;
    if (nd->op == MM_OP_DROPOUT) {
        local = *nd;
        local.p.dropout.seed = nd->p.dropout.seed ^ (0xD1B54A32D192ED03ULL * (uint64_t)(s->step + 1));
        nd = &local;
    }
    mm_tensor ins[MM_NODE_MAX_IN], outs[MM_NODE_MAX_OUT];
    memset(ins, 0, sizeof ins);
    memset(outs, 0, sizeof outs);
    for (int i = 0; i < nd->n_in; i++)
        if (nd->in[i] >= 0) ins[i] = mm_session_tensor(s, nd->in[i]);
    for (int o = 0; o < nd->n_out; o++)
        if (nd->out[o] >= 0) outs[o] = mm_session_tensor(s, nd->out[o]);
    /* the node's scratch, in the arena (planner.h) */
    size_t ws_bytes = s->plan.node_ws_bytes[id];
    void *ws = ws_bytes ? (char *)s->arena + s->plan.node_ws_offset[id] : NULL;
    if (!s->node_seconds) {
        s->be->run_node(s->be, g, nd, ins, outs, ws, ws_bytes);
        return;
    }
    struct timespec t0, t1;
    s->be->sync(s->be);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    s->be->run_node(s->be, g, nd, ins, outs, ws, ws_bytes);
    s->be->sync(s->be);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    s->node_seconds[id] += (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
}

void mm_session_profile(mm_session *s)
{
    if (!s->node_seconds) s->node_seconds = mm_xcalloc((size_t)s->g->n_nodes, sizeof(double));
}

void mm_session_profile_print(const mm_session *s, int runs, int top, FILE *f)
{
    if (!s->node_seconds || runs < 1) return;
    int n = s->g->n_nodes;
    int *order = mm_xmalloc((size_t)n * sizeof(int));
    double total = 0;
    for (int i = 0; i < n; i++) {
        order[i] = i;
        total += s->node_seconds[i];
    }
    for (int i = 1; i < n; i++) /* insertion sort, slowest first */
        for (int j = i; j > 0 && s->node_seconds[order[j]] > s->node_seconds[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    fprintf(f, "profile: %.3f ms per step in %d nodes (synchronised)\n", 1e3 * total / runs, n);
    double by_op[MM_OP_COUNT] = {0};
    for (int i = 0; i < n; i++) by_op[s->g->nodes[i].op] += s->node_seconds[i];
    fprintf(f, "by op:");
    for (int op = 0; op < MM_OP_COUNT; op++)
        if (by_op[op] > 0.01 * total)
            fprintf(f, " %s %.1f%%", mm_op_name((mm_op)op), 100.0 * by_op[op] / total);
    fprintf(f, "\n");
    /* the nodes the backend timed when choosing how to run them (CUDA: the convolutions' searches,
     * each alone) against their time in the step */
    double chosen = 0, chosen_step = 0;
    int n_chosen = 0;
    for (int i = 0; s->be->chosen_ms && i < n; i++) {
        double ms = s->be->chosen_ms(s->be, s->g, &s->g->nodes[i]);
        if (ms < 0) continue;
        chosen += ms;
        chosen_step += 1e3 * s->node_seconds[i] / runs;
        n_chosen++;
    }
    if (n_chosen > 0)
        fprintf(f, "searched nodes: %.3f ms per step in %d nodes, %.3f ms as their searches timed "
                "them\n", chosen_step, n_chosen, chosen);
    fprintf(f, "slowest nodes:\n");
    for (int k = 0; k < top && k < n; k++) {
        const mm_node *nd = &s->g->nodes[order[k]];
        if (nd->op == MM_OP_NONE || nd->op == MM_OP_RESHAPE) continue; /* never timed */
        const mm_value *in = nd->in[0] >= 0 ? &s->g->values[nd->in[0]] : NULL;
        const mm_value *out = nd->out[0] >= 0 ? &s->g->values[nd->out[0]] : NULL;
        char a[96] = "-", b[96] = "-";
        if (in) mm_shape_str(a, sizeof a, in->ndim, in->shape);
        if (out) mm_shape_str(b, sizeof b, out->ndim, out->shape);
        fprintf(f, "  %8.3f ms %5.1f%%  %-22s in %s out %s", 1e3 * s->node_seconds[order[k]] / runs,
                100.0 * s->node_seconds[order[k]] / total, mm_node_op_name(nd), a, b);
        double ms = s->be->chosen_ms ? s->be->chosen_ms(s->be, s->g, nd) : -1;
        if (ms >= 0) fprintf(f, " (searched %.3f ms)", ms);
        fputc('\n', f);
    }
    free(order);
}

void mm_session_forward(mm_session *s)
{
    int n_fwd = s->g->n_forward ? s->g->n_forward : s->g->n_nodes;
    for (int n = 0; n < n_fwd; n++) run_node(s, n);
}

void mm_session_run(mm_session *s)
{
    if (s->grads) s->be->zero(s->be, s->grads, s->plan.grad_bytes);
    for (int n = 0; n < s->g->n_nodes; n++) run_node(s, n);
    s->step++;
}

mm_status mm_session_capture(mm_session *s)
{
    mm_backend *be = s->be;
    if (!be->begin_capture)
        return mm_fail(MM_ERR_ARG, "--cuda-graph: the %s device has no graph capture; use "
                       "--device cuda", be->name);
    MM_TRY(be->begin_capture(be));
    mm_session_run(s);
    s->step--; /* recorded, not run */
    return be->end_capture(be);
}

void mm_session_replay(mm_session *s)
{
    s->be->replay(s->be);
    s->step++;
}

void mm_session_reset_optimizer(mm_session *s)
{
    if (s->opt) s->be->zero(s->be, s->opt, s->plan.opt_bytes);
}

void mm_session_adam(mm_session *s, const mm_adam_params *a)
{
    MM_ASSERT(s->plan.opt_slots >= 2);
    int64_t n = (int64_t)(s->plan.trainable_bytes / sizeof(float));
    if (n == 0) return;
    float *m = s->opt, *v = (float *)((char *)s->opt + s->plan.trainable_bytes);
    s->be->adam(s->be, s->params, m, v, s->grads, n, a);
}

mm_status mm_session_accumulate_init(mm_session *s)
{
    if (s->grad_sum) return MM_OK;
    return alloc_region(s, &s->grad_sum, s->plan.trainable_bytes, "the accumulated gradients");
}

void mm_session_accumulate(mm_session *s, int micro, int steps)
{
    MM_ASSERT(steps >= 2 && micro >= 0 && micro < steps);
    int64_t n = (int64_t)(s->plan.trainable_bytes / sizeof(float));
    if (n == 0) return;
    MM_ASSERT(s->grad_sum != NULL);
    s->be->accumulate(s->be, s->grad_sum, s->grads, n, micro, steps);
}

void mm_session_sgd(mm_session *s, const mm_sgd_params *p)
{
    int64_t n = (int64_t)(s->plan.trainable_bytes / sizeof(float));
    if (n == 0) return;
    MM_ASSERT(p->momentum == 0.0f || s->plan.opt_slots >= 1);
    s->be->sgd(s->be, s->params, p->momentum != 0.0f ? s->opt : NULL, s->grads, n, p);
}
