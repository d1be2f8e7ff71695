/* The layer table of `mammo summary`: one row per forward node (layer name from its first
 * parameter, op, output shape, parameter count, FLOPs), then the totals and the memory plan. */
#include <stdio.h>
#include <string.h>

#include "nets.h"

/* The layer name of a node: its first parameter's name without the leaf (".weight"), or "-". */
static void layer_name(char *buf, size_t n, const mm_graph *g, const mm_node *nd)
{
    snprintf(buf, n, "-");
    for (int i = 0; i < nd->n_in; i++) {
        if (nd->in[i] < 0) continue;
        const mm_value *v = mm_graph_value(g, nd->in[i]);
        if (v->kind != MM_VALUE_PARAM) continue;
        snprintf(buf, n, "%s", v->name);
        char *dot = strrchr(buf, '.');
        if (dot) *dot = '\0';
        return;
    }
}

static int64_t node_params(const mm_graph *g, const mm_node *nd)
{
    int64_t p = 0;
    for (int i = 0; i < nd->n_in; i++) {
        if (nd->in[i] < 0) continue;
        const mm_value *v = mm_graph_value(g, nd->in[i]);
        if (v->kind == MM_VALUE_PARAM) p += mm_shape_numel(v->ndim, v->shape);
    }
    return p;
}

static void print_count(FILE *f, const char *what, double v, const char *unit)
{
    fprintf(f, "%-28s %.0f (%.3f %s)\n", what, v, v / 1e9, unit);
}

void mm_model_summary(const mm_model *m, const mm_plan *plan, FILE *f)
{
    const mm_graph *g = m->g;
    char spec[256] = "";
    if (m->cfg.kind == MM_MODEL_WHOLE) {
        char t[200];
        mm_top_format(t, sizeof t, &m->top);
        snprintf(spec, sizeof spec, " top %s", t);
    }
    fprintf(f, "model: %s %s%s, %d classes, input %dx%dx3, batch %d, %s\n",
            mm_trunk_name(m->cfg.trunk), mm_model_kind_name(m->cfg.kind), spec, m->cfg.classes,
            m->cfg.height, m->cfg.width, m->cfg.batch,
            m->cfg.training ? "training step" : "evaluation");
    fprintf(f, "%-28s %-18s %-24s %12s %16s\n", "layer", "op", "output", "params", "FLOPs");
    int n_fwd = m->cfg.training ? g->n_forward : g->n_nodes;
    for (int i = 0; i < n_fwd; i++) {
        const mm_node *nd = &g->nodes[i];
        if (nd->op == MM_OP_RESHAPE || nd->op == MM_OP_NONE) continue; /* a view, a folded node */
        char name[MM_NAME_MAX], shape[64];
        layer_name(name, sizeof name, g, nd);
        const mm_value *out = mm_graph_value(g, nd->out[0]);
        mm_shape_str(shape, sizeof shape, out->ndim, out->shape);
        fprintf(f, "%-28s %-18s %-24s %12lld %16.0f\n", name, mm_node_op_name(nd), shape,
                (long long)node_params(g, nd), nd->flops);
    }
    mm_model_totals t = mm_model_totals_of(m);
    const mm_value *fv = mm_graph_value(g, m->feature);
    char fshape[64];
    mm_shape_str(fshape, sizeof fshape, fv->ndim, fv->shape);
    fprintf(f, "trunk feature map            %s (%lldx%lld)\n", fshape, (long long)fv->shape[1],
            (long long)fv->shape[2]);
    fprintf(f, "parameters                   %lld\n", (long long)t.params);
    fprintf(f, "trainable parameters         %lld\n", (long long)t.trainable);
    fprintf(f, "running statistics           %lld\n", (long long)t.state);
    print_count(f, "forward FLOPs per image", t.flops_forward_per_image, "GFLOPs");
    if (m->cfg.training) print_count(f, "step FLOPs per image", t.flops_step_per_image, "GFLOPs");
    if (plan) {
        fprintf(f, "memory plan (%s):\n", m->cfg.training ? "one training step" : "evaluation");
        mm_plan_print(plan, f);
    }
}
