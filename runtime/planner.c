/* Memory planner v1: see planner.h. */
#include "planner.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "env.h"
#include "graph_internal.h"

static size_t align_up(size_t x) { return (x + MM_PLAN_ALIGN - 1) / MM_PLAN_ALIGN * MM_PLAN_ALIGN; }

/* ---- a best-fit allocator over one arena, in offsets only ---- */

typedef struct {
    size_t off, size;
} block;

typedef struct {
    block *free; /* sorted by offset, coalesced */
    int n, cap;
    size_t top;  /* high-water mark */
} arena_sim;

static size_t arena_alloc(arena_sim *a, size_t size)
{
    int best = -1;
    for (int i = 0; i < a->n; i++)
        if (a->free[i].size >= size && (best < 0 || a->free[i].size < a->free[best].size)) best = i;
    if (best >= 0) {
        size_t off = a->free[best].off;
        a->free[best].off += size;
        a->free[best].size -= size;
        if (a->free[best].size == 0) {
            memmove(&a->free[best], &a->free[best + 1], (size_t)(a->n - best - 1) * sizeof(block));
            a->n--;
        }
        return off;
    }
    /* Grow the arena; a free block touching the top is extended rather than wasted. */
    if (a->n > 0 && a->free[a->n - 1].off + a->free[a->n - 1].size == a->top) {
        size_t off = a->free[a->n - 1].off;
        a->n--;
        a->top = off + size;
        return off;
    }
    size_t off = a->top;
    a->top += size;
    return off;
}

static void arena_release(arena_sim *a, size_t off, size_t size)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 64;
        a->free = mm_xrealloc(a->free, (size_t)a->cap * sizeof(block));
    }
    int i = 0;
    while (i < a->n && a->free[i].off < off) i++;
    memmove(&a->free[i + 1], &a->free[i], (size_t)(a->n - i) * sizeof(block));
    a->free[i] = (block){off, size};
    a->n++;
    /* coalesce with the next, then the previous */
    if (i + 1 < a->n && a->free[i].off + a->free[i].size == a->free[i + 1].off) {
        a->free[i].size += a->free[i + 1].size;
        memmove(&a->free[i + 1], &a->free[i + 2], (size_t)(a->n - i - 2) * sizeof(block));
        a->n--;
    }
    if (i > 0 && a->free[i - 1].off + a->free[i - 1].size == a->free[i].off) {
        a->free[i - 1].size += a->free[i].size;
        memmove(&a->free[i], &a->free[i + 1], (size_t)(a->n - i - 1) * sizeof(block));
        a->n--;
    }
}

/* ---- in-place rules ---- */

/* For node nd, the input whose storage its first output may take over, if the kernel allows it
 * (cpu_kernels.h "may alias"); -1 if none. */
static int inplace_candidates(const mm_node *nd, int *cand)
{
    if (mm_env_flag("MM_NO_INPLACE")) return 0;
    switch (nd->op) {
    case MM_OP_RELU:
    case MM_OP_DROPOUT:
        cand[0] = nd->in[0];
        return 1;
    case MM_OP_BN_APPLY:
        cand[0] = nd->in[0];
        if (!nd->p.bn.add) return 1;
        cand[1] = nd->in[5];
        return 2;
    case MM_OP_ADD:
        cand[0] = nd->in[0];
        cand[1] = nd->in[1];
        return 2;
    case MM_OP_RELU_BWD:
    case MM_OP_DROPOUT_BWD:
    case MM_OP_BATCHNORM_BWD: /* dx over dy */
        cand[0] = nd->in[0];
        return 1;
    case MM_OP_CONV2D_BWD_DATA: /* a gradient sum (p.conv.accumulate): over the earlier one */
        if (!nd->p.conv.accumulate) return 0;
        cand[0] = nd->in[2];
        return 1;
    case MM_OP_BATCHNORM: /* a residual join (p.bn.add): over the residual */
        if (!nd->p.bn.add) return 0;
        cand[0] = nd->in[5];
        return 1;
    default:
        return 0;
    }
}

/* ---- offline placement ----
 *
 * The walk above places each storage as it comes (best fit), which can leave holes: its arena
 * top may exceed the most bytes ever live at once. Knowing every lifetime, storages are placed
 * again one by one, each at the lowest offset free over its whole lifetime, in three orders:
 * largest first ("greedy by size", as TFLite's arena planner), largest size x lifetime first,
 * and by first use; the plan keeps whichever arena is smallest, the walk's included. */

typedef struct {
    int v, first, last;
    size_t off, size;
} placed;

static int root_of(const mm_graph *g, const int *share, int v);

static int by_size(const void *a, const void *b)
{
    const placed *x = a, *y = b;
    if (x->size != y->size) return x->size < y->size ? 1 : -1;
    return x->v - y->v;
}

static int by_area(const void *a, const void *b)
{
    const placed *x = a, *y = b;
    double ax = (double)x->size * (x->last - x->first + 1);
    double ay = (double)y->size * (y->last - y->first + 1);
    if (ax != ay) return ax < ay ? 1 : -1;
    return x->v - y->v;
}

static int by_first_use(const void *a, const void *b)
{
    const placed *x = a, *y = b;
    if (x->first != y->first) return x->first - y->first;
    return by_size(a, b);
}

static int by_block_offset(const void *a, const void *b)
{
    const block *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* Over the busy blocks b[0..nb), sorted by offset: the lowest offset where `size` bytes are free,
 * and, with room given, the largest free gap below `top` in *room. */
static size_t lowest_fit(const block *b, int nb, size_t size, size_t top, size_t *room)
{
    size_t at = 0, fit = SIZE_MAX;
    if (room) *room = 0;
    for (int i = 0; i <= nb; i++) {
        size_t next = i < nb ? b[i].off : SIZE_MAX;
        if (next > at) {
            size_t gap_end = next < top ? next : top;
            if (room && gap_end > at && gap_end - at > *room) *room = gap_end - at;
            if (fit == SIZE_MAX && next - at >= size) {
                fit = at;
                if (!room) break;
            }
        }
        if (i < nb && b[i].off + b[i].size > at) at = b[i].off + b[i].size;
    }
    return fit;
}

/* Places st[0..n) in that order; returns the arena top. busy: room for n blocks. */
static size_t place_in_order(placed *st, int n, block *busy)
{
    size_t top = 0;
    for (int i = 0; i < n; i++) {
        int nb = 0;
        for (int j = 0; j < i; j++)
            if (st[j].first <= st[i].last && st[i].first <= st[j].last)
                busy[nb++] = (block){st[j].off, st[j].size};
        qsort(busy, (size_t)nb, sizeof *busy, by_block_offset);
        st[i].off = lowest_fit(busy, nb, st[i].size, 0, NULL);
        if (st[i].off + st[i].size > top) top = st[i].off + st[i].size;
    }
    return top;
}

/* Places the storages (with `scratch`, the nodes' scratch too, as storage nv + node, live at its
 * node only) in the three orders and returns the smallest top. Only when that top is below
 * `beat` are the offsets written (plan->offset, and plan->node_ws_offset with scratch). */
static size_t place_offline(mm_plan *plan, const mm_graph *g, const int *share, bool scratch,
                            size_t beat)
{
    int nv = g->n_values, nn = g->n_nodes, n = 0;
    placed *st = mm_xmalloc((size_t)(nv + nn + 1) * sizeof *st);
    for (int v = 0; v < nv; v++)
        if (plan->storage_end[v] >= 0)
            st[n++] = (placed){v, plan->first_node[v], plan->storage_end[v], 0,
                               align_up(mm_value_bytes(&g->values[v]))};
    for (int k = 0; scratch && k < nn; k++)
        if (plan->node_ws_bytes[k] > 0)
            st[n++] = (placed){nv + k, k, k, 0, align_up(plan->node_ws_bytes[k])};
    block *busy = mm_xmalloc((size_t)(n ? n : 1) * sizeof *busy);
    int (*const orders[3])(const void *, const void *) = {by_size, by_area, by_first_use};
    size_t best = SIZE_MAX;
    for (int k = 0; k < 3; k++) {
        qsort(st, (size_t)n, sizeof *st, orders[k]);
        size_t top = place_in_order(st, n, busy);
        if (top < best) best = top;
        if (top >= beat) continue;
        beat = top;
        for (int i = 0; i < n; i++) {
            if (st[i].v < nv) plan->offset[st[i].v] = st[i].off;
            else plan->node_ws_offset[st[i].v - nv] = st[i].off;
        }
    }
    for (int v = 0; v < nv; v++) /* in-place sharers and views take their root's offset */
        if (plan->region[v] == MM_REGION_ARENA && (share[v] >= 0 || g->values[v].view_of >= 0))
            plan->offset[v] = plan->offset[root_of(g, share, v)];
    free(busy);
    free(st);
    return best;
}

/* Node n's scratch over the activations as placed now: the lowest offset where `size` bytes are
 * free among the storages live at n, and in *room the largest free gap below `top`. blocks: room
 * for every value. */
static size_t fit_at_node(const mm_plan *plan, const mm_graph *g, int n, size_t size, size_t top,
                          size_t *room, block *blocks)
{
    int nb = 0;
    for (int v = 0; v < g->n_values; v++)
        if (plan->storage_end[v] >= 0 && plan->first_node[v] <= n && plan->storage_end[v] >= n)
            blocks[nb++] = (block){plan->offset[v], align_up(mm_value_bytes(&g->values[v]))};
    qsort(blocks, (size_t)nb, sizeof *blocks, by_block_offset);
    return lowest_fit(blocks, nb, size, top, room);
}

/* The arena, the smaller of two layouts: every node's scratch placed among the activations like
 * one more storage (the walk's, or the offline placement's), or the activations placed alone and
 * each node's scratch at the lowest offset free at its node (never more than activations + the
 * largest scratch). Also sets act_arena_bytes and the room of each node with scratch
 * (node_ws_room: the largest gap the activations alone leave at it below their top plus
 * g->scratch_budget). */
static void place_arena(mm_plan *plan, const mm_graph *g, const int *share)
{
    int nv = g->n_values, nn = g->n_nodes;
    size_t top = place_offline(plan, g, share, true, plan->arena_bytes);
    if (top < plan->arena_bytes) plan->arena_bytes = top;
    if (plan->workspace_bytes == 0) { /* no scratch: that was the activations alone */
        plan->act_arena_bytes = top;
        return;
    }
    size_t *offset = mm_xmalloc((size_t)(nv ? nv : 1) * sizeof *offset);
    size_t *ws_offset = mm_xmalloc((size_t)(nn ? nn : 1) * sizeof *ws_offset);
    memcpy(offset, plan->offset, (size_t)nv * sizeof *offset);
    memcpy(ws_offset, plan->node_ws_offset, (size_t)nn * sizeof *ws_offset);
    size_t acts = place_offline(plan, g, share, false, SIZE_MAX);
    plan->act_arena_bytes = acts;
    block *blocks = mm_xmalloc((size_t)(nv ? nv : 1) * sizeof *blocks);
    size_t apart = acts, allowed = acts + g->scratch_budget;
    for (int n = 0; n < nn; n++) {
        size_t ws = align_up(plan->node_ws_bytes[n]);
        if (ws == 0) continue;
        plan->node_ws_offset[n] =
            fit_at_node(plan, g, n, ws, allowed, &plan->node_ws_room[n], blocks);
        if (plan->node_ws_offset[n] + ws > apart) apart = plan->node_ws_offset[n] + ws;
    }
    if (apart < plan->arena_bytes) {
        plan->arena_bytes = apart;
    } else {
        memcpy(plan->offset, offset, (size_t)nv * sizeof *offset);
        memcpy(plan->node_ws_offset, ws_offset, (size_t)nn * sizeof *ws_offset);
    }
    free(blocks);
    free(offset);
    free(ws_offset);
}

static int root_of(const mm_graph *g, const int *share, int v)
{
    if (g->values[v].view_of >= 0) v = g->values[v].view_of;
    while (share[v] >= 0) v = share[v];
    return v;
}

static mm_status plan_once(mm_plan *plan, const mm_graph *g, mm_backend *be, int opt_slots);

/* The nodes whose scratch is larger than the room the activations leave at them (with the
 * graph's scratch budget) are asked to need no more than that room; returns how many now need
 * less. */
static int limit_scratch(const mm_plan *plan, const mm_graph *g, mm_backend *be)
{
    int limited = 0;
    for (int n = 0; n < plan->n_nodes; n++) {
        size_t ws = plan->node_ws_bytes[n], room = plan->node_ws_room[n];
        if (ws == 0 || align_up(ws) <= room) continue;
        if (be->limit_workspace(be, g, &g->nodes[n], room) < ws) limited++;
    }
    return limited;
}

mm_status mm_plan_make(mm_plan *plan, const mm_graph *g, mm_backend *be, int opt_slots)
{
    memset(plan, 0, sizeof *plan);
    if (be && be->check_graph && g->status == MM_OK) MM_TRY(be->check_graph(be, g));
    mm_status st = plan_once(plan, g, be, opt_slots);
    if (st == MM_OK && be && be->limit_workspace && !mm_env_flag("MM_NO_WS_LIMIT") &&
        plan->arena_bytes > plan->act_arena_bytes + g->scratch_budget) {
        int limited = limit_scratch(plan, g, be);
        if (limited > 0) {
            mm_plan_free(plan);
            st = plan_once(plan, g, be, opt_slots);
            plan->n_ws_limited = limited;
        }
    }
    return st;
}

static mm_status plan_once(mm_plan *plan, const mm_graph *g, mm_backend *be, int opt_slots)
{
    memset(plan, 0, sizeof *plan);
    if (g->status != MM_OK) return g->status;
    int nv = g->n_values, nn = g->n_nodes;
    plan->n_values = nv;
    plan->region = mm_xcalloc((size_t)nv, sizeof *plan->region);
    plan->offset = mm_xcalloc((size_t)nv, sizeof *plan->offset);
    plan->first_node = mm_xmalloc((size_t)nv * sizeof(int));
    plan->last_node = mm_xmalloc((size_t)nv * sizeof(int));
    plan->storage_end = mm_xmalloc((size_t)nv * sizeof(int));
    plan->n_nodes = nn;
    plan->node_ws_bytes = mm_xcalloc((size_t)(nn ? nn : 1), sizeof *plan->node_ws_bytes);
    plan->node_ws_offset = mm_xcalloc((size_t)(nn ? nn : 1), sizeof *plan->node_ws_offset);
    plan->node_ws_room = mm_xcalloc((size_t)(nn ? nn : 1), sizeof *plan->node_ws_room);
    plan->opt_slots = opt_slots;
    int *share = mm_xmalloc((size_t)nv * sizeof(int)); /* in-place: storage taken from this value */
    for (int v = 0; v < nv; v++) {
        plan->first_node[v] = g->values[v].producer;
        plan->last_node[v] = g->values[v].producer;
        plan->storage_end[v] = -1;
        share[v] = -1;
    }

    /* Persistent buffers: trainable parameters first, then frozen; state; inputs. */
    size_t off = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int v = 0; v < nv; v++) {
            const mm_value *val = &g->values[v];
            if (val->kind != MM_VALUE_PARAM || val->frozen != (pass == 1)) continue;
            plan->region[v] = MM_REGION_PARAM;
            plan->offset[v] = off;
            off += align_up(mm_value_bytes(val));
            int64_t n = mm_shape_numel(val->ndim, val->shape);
            plan->n_params += n;
            if (pass == 0) plan->n_trainable += n;
            if (pass == 0) plan->trainable_bytes = off;
        }
    plan->param_bytes = off;
    plan->grad_bytes = plan->trainable_bytes;
    plan->opt_bytes = (size_t)opt_slots * plan->trainable_bytes;
    size_t state_off = 0, input_off = 0;
    for (int v = 0; v < nv; v++) {
        const mm_value *val = &g->values[v];
        if (val->kind == MM_VALUE_STATE) {
            plan->region[v] = MM_REGION_STATE;
            plan->offset[v] = state_off;
            state_off += align_up(mm_value_bytes(val));
        } else if (val->kind == MM_VALUE_INPUT) {
            plan->region[v] = MM_REGION_INPUT;
            plan->offset[v] = input_off;
            input_off += align_up(mm_value_bytes(val));
        } else if (val->kind == MM_VALUE_GRAD) {
            int p = -1;
            for (int q = 0; q < nv && p < 0; q++)
                if (g->values[q].kind == MM_VALUE_PARAM && g->values[q].grad == v) p = q;
            MM_ASSERT(p >= 0 && !g->values[p].frozen);
            plan->region[v] = MM_REGION_GRAD;
            plan->offset[v] = plan->offset[p];
        }
    }
    plan->state_bytes = state_off;
    plan->input_bytes = input_off;

    /* Liveness: the last node that reads each value; views extend the value they view. */
    for (int n = 0; n < nn; n++) {
        const mm_node *nd = &g->nodes[n];
        for (int i = 0; i < nd->n_in; i++)
            if (nd->in[i] >= 0) {
                int v = nd->in[i];
                if (plan->last_node[v] < n) plan->last_node[v] = n;
                int r = g->values[v].view_of;
                if (r >= 0 && plan->last_node[r] < n) plan->last_node[r] = n;
            }
        plan->flops_forward += n < (g->n_forward ? g->n_forward : nn) ? nd->flops : 0;
        plan->flops_backward += n >= (g->n_forward ? g->n_forward : nn) ? nd->flops : 0;
        if (be && be->workspace_bytes) {
            size_t ws = be->workspace_bytes(be, g, nd);
            plan->node_ws_bytes[n] = ws;
            if (ws > plan->workspace_bytes) plan->workspace_bytes = ws;
        }
    }
    for (int v = 0; v < nv; v++) {
        if (g->values[v].keep) plan->last_node[v] = nn;
        int r = g->values[v].view_of;
        if (r >= 0 && plan->last_node[v] > plan->last_node[r]) plan->last_node[r] = plan->last_node[v];
    }

    /* Walk the step: allocate each node's outputs (or take over a dying input's storage), then
     * release every storage whose last reader was this node. Storage is tracked per root value. */
    arena_sim a = {0};
    size_t live = 0;
    int *end = mm_xmalloc((size_t)nv * sizeof(int)); /* per storage root: last node of any sharer */
    for (int v = 0; v < nv; v++) end[v] = plan->last_node[v];
    int **dying = mm_xcalloc((size_t)nn + 1, sizeof(int *));
    int *n_dying = mm_xcalloc((size_t)nn + 1, sizeof(int));
    for (int n = 0; n < nn; n++) {
        const mm_node *nd = &g->nodes[n];
        int cand[2], nc = inplace_candidates(nd, cand);
        for (int o = 0; o < nd->n_out; o++) {
            int v = nd->out[o];
            if (v < 0 || g->values[v].kind != MM_VALUE_ACT || g->values[v].view_of >= 0) continue;
            size_t bytes = mm_value_bytes(&g->values[v]);
            plan->naive_arena_bytes += align_up(bytes);
            plan->region[v] = MM_REGION_ARENA;
            int taken = -1;
            for (int c = 0; o == 0 && c < nc && taken < 0; c++) {
                if (cand[c] < 0 || plan->region[cand[c]] != MM_REGION_ARENA) continue;
                int r = root_of(g, share, cand[c]);
                if (end[r] == n && g->values[cand[c]].dtype == g->values[v].dtype &&
                    mm_value_bytes(&g->values[cand[c]]) == bytes && !g->values[r].keep)
                    taken = r;
            }
            if (taken >= 0) {
                share[v] = taken;
                plan->offset[v] = plan->offset[taken];
                end[taken] = plan->last_node[v] > n ? plan->last_node[v] : n;
                plan->n_inplace++;
            } else {
                plan->offset[v] = arena_alloc(&a, align_up(bytes));
                live += align_up(bytes);
                if (live > plan->live_peak_bytes) {
                    plan->live_peak_bytes = live;
                    plan->live_peak_node = n;
                }
            }
        }
        /* Views take their root's placement. */
        for (int o = 0; o < nd->n_out; o++) {
            int v = nd->out[o];
            if (v >= 0 && g->values[v].view_of >= 0) {
                int r = g->values[v].view_of;
                plan->region[v] = plan->region[r];
                plan->offset[v] = plan->offset[r];
            }
        }
        /* The node's scratch, next to its inputs and outputs, for the node only. */
        size_t scratch = align_up(plan->node_ws_bytes[n]);
        if (scratch > 0) {
            plan->node_ws_offset[n] = arena_alloc(&a, scratch);
            if (live + scratch > plan->live_peak_bytes) {
                plan->live_peak_bytes = live + scratch;
                plan->live_peak_node = n;
            }
        }
        /* Release storage roots (arena, not shared into a later value) that die here. */
        for (int o = 0; o < nd->n_out; o++) {
            int v = nd->out[o];
            if (v >= 0 && plan->region[v] == MM_REGION_ARENA && share[v] < 0 &&
                g->values[v].view_of < 0) {
                int e = end[v] < n ? n : end[v];
                dying[e] = mm_xrealloc(dying[e], (size_t)(n_dying[e] + 1) * sizeof(int));
                dying[e][n_dying[e]++] = v;
            }
        }
        for (int k = 0; k < n_dying[n]; k++) {
            int r = dying[n][k];
            if (end[r] > n) { /* extended by an in-place sharer: move to its new end */
                int e = end[r];
                dying[e] = mm_xrealloc(dying[e], (size_t)(n_dying[e] + 1) * sizeof(int));
                dying[e][n_dying[e]++] = r;
                continue;
            }
            arena_release(&a, plan->offset[r], align_up(mm_value_bytes(&g->values[r])));
            live -= align_up(mm_value_bytes(&g->values[r]));
        }
        if (scratch > 0) arena_release(&a, plan->node_ws_offset[n], scratch);
    }
    plan->arena_bytes = a.top;
    plan->naive_arena_bytes += align_up(plan->workspace_bytes);
    for (int v = 0; v < nv; v++)
        if (plan->region[v] == MM_REGION_ARENA && share[v] < 0 && g->values[v].view_of < 0)
            plan->storage_end[v] = end[v] > plan->first_node[v] ? end[v] : plan->first_node[v];
    place_arena(plan, g, share);
    for (int n = 0; n <= nn; n++) free(dying[n]);
    free(dying);
    free(n_dying);
    free(end);
    free(share);
    free(a.free);
    return MM_OK;
}

void mm_plan_free(mm_plan *plan)
{
    free(plan->region);
    free(plan->offset);
    free(plan->first_node);
    free(plan->last_node);
    free(plan->storage_end);
    free(plan->node_ws_bytes);
    free(plan->node_ws_offset);
    free(plan->node_ws_room);
    memset(plan, 0, sizeof *plan);
}

size_t mm_plan_arena_bytes(const mm_graph *g)
{
    mm_plan p;
    size_t bytes = mm_plan_make(&p, g, NULL, 0) == MM_OK ? p.arena_bytes : SIZE_MAX;
    mm_plan_free(&p);
    return bytes;
}

size_t mm_plan_peak_bytes(const mm_plan *p)
{
    return p->param_bytes + p->grad_bytes + p->opt_bytes + p->state_bytes + p->input_bytes +
           p->arena_bytes;
}

static void line(FILE *f, const char *name, size_t bytes)
{
    fprintf(f, "%-22s %14zu bytes %10.1f MiB\n", name, bytes, bytes / (1024.0 * 1024.0));
}

void mm_plan_print(const mm_plan *p, FILE *f)
{
    fprintf(f, "parameters             %14lld (%lld trainable)\n", (long long)p->n_params,
            (long long)p->n_trainable);
    line(f, "params", p->param_bytes);
    line(f, "grads", p->grad_bytes);
    line(f, "optimizer_state", p->opt_bytes);
    line(f, "bn_state", p->state_bytes);
    line(f, "inputs", p->input_bytes);
    line(f, "activations", p->arena_bytes);
    line(f, "activations_no_reuse", p->naive_arena_bytes);
    line(f, "activations_alone", p->act_arena_bytes);
    line(f, "workspace_largest", p->workspace_bytes);
    fprintf(f, "in_place_nodes         %14d\n", p->n_inplace);
    fprintf(f, "scratch_limited_nodes  %14d\n", p->n_ws_limited);
    fprintf(f, "peak_bytes=%zu\n", mm_plan_peak_bytes(p));
}

void mm_plan_print_live(const mm_plan *p, const mm_graph *g, int top, FILE *f)
{
    const int at = p->live_peak_node;
    int *ids = mm_xmalloc((size_t)(p->n_values ? p->n_values : 1) * sizeof *ids), n = 0;
    for (int v = 0; v < p->n_values; v++)
        if (p->storage_end[v] >= 0 && p->first_node[v] <= at && p->storage_end[v] >= at)
            ids[n++] = v;
    for (int i = 1; i < n; i++) /* largest first, then by value id */
        for (int j = i; j > 0; j--) {
            size_t a = mm_value_bytes(&g->values[ids[j]]);
            size_t b = mm_value_bytes(&g->values[ids[j - 1]]);
            if (a < b || (a == b && ids[j] > ids[j - 1])) break;
            int t = ids[j];
            ids[j] = ids[j - 1];
            ids[j - 1] = t;
        }
    fprintf(f, "live at the arena's peak: %.1f MiB in %d values, at node %d of %d (%s, %s pass)\n",
            p->live_peak_bytes / 1048576.0, n, at, g->n_nodes, mm_node_op_name(&g->nodes[at]),
            g->n_forward && at >= g->n_forward ? "backward" : "forward");
    for (int i = 0; i < n && i < top; i++) {
        const mm_value *val = &g->values[ids[i]];
        char shape[96];
        fprintf(f, "  %9.1f MiB  %-22s made by node %4d %-16s needed until node %d\n",
                mm_value_bytes(val) / 1048576.0,
                mm_shape_str(shape, sizeof shape, val->ndim, val->shape), p->first_node[ids[i]],
                mm_node_op_name(&g->nodes[p->first_node[ids[i]]]), p->storage_end[ids[i]]);
    }
    if (at < p->n_nodes && p->node_ws_bytes[at] > 0)
        fprintf(f, "  %9.1f MiB  scratch of node %d (%s)\n", p->node_ws_bytes[at] / 1048576.0, at,
                mm_node_op_name(&g->nodes[at]));
    free(ids);
}

void mm_graph_print_traffic(const mm_graph *g, bool fused_relu, FILE *f)
{
    double bytes[MM_OP_COUNT] = {0}, total = 0, conv = 0, saved = 0;
    int nodes[MM_OP_COUNT] = {0}, n_fused = 0;
    bool *applied = mm_xcalloc((size_t)(g->n_nodes ? g->n_nodes : 1), sizeof *applied);
    if (fused_relu) {
        mm_graph_uses u = mm_graph_uses_of(g);
        for (int n = 0; n < g->n_nodes; n++) {
            int j = mm_graph_relu_after(g, &u, n);
            if (j >= 0) applied[j] = true;
        }
        mm_graph_uses_free(&u);
    }
    for (int n = 0; n < g->n_nodes; n++) {
        const mm_node *nd = &g->nodes[n];
        if (nd->op == MM_OP_NONE || nd->op == MM_OP_RESHAPE) continue;
        double b = mm_node_activation_bytes(g, nd);
        if (applied[n]) {
            saved += b;
            n_fused++;
            continue;
        }
        bytes[nd->op] += b;
        nodes[nd->op]++;
        total += b;
        if (mm_op_is_conv(nd->op)) conv += b;
    }
    fprintf(f, "activation traffic (each input and output once):\n");
    for (int op = 0; op < MM_OP_COUNT; op++)
        if (nodes[op])
            fprintf(f, "  %-24s %5d nodes %10.3f GB\n", mm_op_name((mm_op)op), nodes[op],
                    bytes[op] / 1e9);
    if (n_fused)
        fprintf(f, "  (relu applied by the node before it: %d nodes, %.3f GB not moved)\n",
                n_fused, saved / 1e9);
    fprintf(f, "traffic_bytes=%.0f non_conv_traffic_bytes=%.0f\n", total, total - conv);
    free(applied);
}
