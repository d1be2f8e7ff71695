/* Nets: architectures and parameter counts, the top-block spec grammar and every row of the paper's
 * Table 2, full-size summaries and memory plans on the meta backend (checked against independent
 * per-layer formulas), initialisation, weights I/O and the patch-to-whole-image conversion. The
 * PyTorch parity tests are in test_nets_parity.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "nets/nets.h"
#include "runtime/backend.h"
#include "runtime/safetensors.h"
#include "runtime/session.h"
#include "tests/harness.h"

static int64_t count_params(mm_model_kind kind, mm_trunk t, int classes)
{
    mm_model_config c = mm_model_config_default(kind, t);
    c.classes = classes;
    mm_model m;
    if (mm_model_build(&m, &c) != MM_OK) return -1;
    int64_t n = mm_model_totals_of(&m).params;
    mm_model_free(&m);
    return n;
}

/* ResNet50's trunk: torchvision's count less fc (2048*1000 + 1000); VGG16's: less the classifier
 * (25088*4096 + 4096 + 4096*4096 + 4096 + 4096*1000 + 1000). */
#define RESNET50_TRUNK (25557032LL - 2049000LL)
#define VGG16_TRUNK (138357544LL - (25088LL * 4096 + 4096 + 4096LL * 4096 + 4096 + 4096000 + 1000))

MM_TEST(param_counts)
{
    CHECK_EQ_INT(count_params(MM_MODEL_TORCHVISION, MM_TRUNK_RESNET50, 1000), 25557032);
    CHECK_EQ_INT(count_params(MM_MODEL_TORCHVISION, MM_TRUNK_VGG16, 1000), 138357544);
    CHECK_EQ_INT(VGG16_TRUNK, 14714688);
    CHECK_EQ_INT(count_params(MM_MODEL_PATCH, MM_TRUNK_RESNET50, 5), RESNET50_TRUNK + 2048 * 5 + 5);
    CHECK_EQ_INT(count_params(MM_MODEL_PATCH, MM_TRUNK_VGG16, 5), VGG16_TRUNK + 512 * 5 + 5);
}

/* ---- the spec grammar ---- */

static const char *table2[] = {
    "[512-512-2048]x1,[512-512-2048]x1", "[512-512-1024]x2,[512-512-1024]x2",
    "[256-256-512]x3,[128-128-256]x3",   "512x3,512x3",
    "512x1,512x1",                       "256x1,128x1",
    "hm,[512-512-1024]x2,[512-512-1024]x2", "hm,maxpool5,[512-512-1024]x2,[512-512-1024]x2",
    "hm,maxpool5,fc64,fc32",             "hm,maxpool5,fc64,fc32,shortcut",
};
#define N_TABLE2 ((int)(sizeof table2 / sizeof table2[0]))

MM_TEST(top_spec_parses_table2_and_round_trips)
{
    for (int i = 0; i < N_TABLE2; i++) {
        mm_top_spec s;
        CHECK_MSG(mm_top_parse(&s, table2[i], "--top") == MM_OK, "%s: %s", table2[i],
                  mm_last_error());
        char buf[256];
        mm_top_format(buf, sizeof buf, &s);
        CHECK_MSG(!strcmp(buf, table2[i]), "%s formats as %s", table2[i], buf);
    }
    mm_top_spec s;
    CHECK(mm_top_parse(&s, "[512-256-1024]x3,64x2,maxpool3,fc16", "--top") == MM_OK);
    CHECK_EQ_INT(s.n, 4);
    CHECK_EQ_INT(s.item[0].kind, MM_TOP_RESNET);
    CHECK_EQ_INT(s.item[0].m, 512);
    CHECK_EQ_INT(s.item[0].n, 256);
    CHECK_EQ_INT(s.item[0].o, 1024);
    CHECK_EQ_INT(s.item[0].reps, 3);
    CHECK_EQ_INT(s.item[1].kind, MM_TOP_VGG);
    CHECK_EQ_INT(s.item[1].m, 64);
    CHECK_EQ_INT(s.item[1].reps, 2);
    CHECK_EQ_INT(s.item[2].kind, MM_TOP_MAXPOOL);
    CHECK_EQ_INT(s.item[2].m, 3);
    CHECK_EQ_INT(s.item[3].kind, MM_TOP_FC);
    CHECK_EQ_INT(s.item[3].m, 16);
    CHECK(mm_top_parse(&s, "", "--top") == MM_OK && s.n == 0);
    CHECK(mm_top_parse(&s, "none", "--top") == MM_OK && s.n == 0);
}

MM_TEST(top_spec_rejects_bad_specs)
{
    static const char *bad[] = {
        "[512-512]x2", "[512-512-1024]", "[512-512-1024]x0", "512", "512x", "x2", "512x2,",
        ",512x2", "512 x2", "[0-1-2]x1", "512x65", "99999999x1", "fc", "maxpool", "maxpool0",
        "512x1,hm", "fc64,512x1", "fc64,maxpool2", "shortcut", "fc64,shortcut,fc32", "hm,hm",
        "relu", "[a-b-c]x1", "512x1x2",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mm_top_spec s;
        mm_status st = mm_top_parse(&s, bad[i], "--top");
        CHECK_MSG(st == MM_ERR_ARG, "'%s' was accepted", bad[i]);
        CHECK_MSG(!strncmp(mm_last_error(), "--top: ", 7), "'%s': message '%s'", bad[i],
                  mm_last_error());
    }
}

/* ---- every Table 2 row builds at full size, with the expected shapes and parameters ---- */

/* Parameters of a residual stage [m-n-o]xR on `cin` channels: per unit conv1x1 + conv3x3 +
 * conv1x1 and three BNs (weight and bias), plus the projection (conv1x1 + BN) on the first. */
static int64_t resnet_stage_params(int64_t cin, int64_t m, int64_t n, int64_t o, int reps)
{
    int64_t p = 0;
    for (int u = 0; u < reps; u++) {
        int64_t in = u == 0 ? cin : o;
        p += in * m + 2 * m + 9 * m * n + 2 * n + n * o + 2 * o;
        if (u == 0) p += in * o + 2 * o;
    }
    return p;
}

static int64_t vgg_block_params(int64_t cin, int64_t m, int reps)
{
    int64_t p = 0;
    for (int u = 0; u < reps; u++) p += 9 * (u == 0 ? cin : m) * m + 2 * m;
    return p;
}

typedef struct row_expect {
    const char *spec;
    mm_trunk trunk;
    int64_t top_params; /* everything but the trunk */
    int out_h, out_w, out_c; /* the map under the final GAP (or, for fc tops, under the flatten) */
} row_expect;

MM_TEST(table2_rows_build_at_1152x896)
{
    /* The trunks give 36x28 maps (2048 or 512 channels); a stride-2 residual stage or a VGG
     * block halves them (36x28 -> 18x14 -> 9x7); the heatmap's 7x7/1 pool gives 30x22 and its
     * 5x5/5 max pool 6x4. */
    const int64_t R = 2048, V = 512, P = 5;
    int64_t hm_r = R * P + P, hm_v = V * P + P;
    int64_t fc_tail = 120 * 64 + 2 * 64 + 64 * 32 + 2 * 32 + 32 * 2 + 2;
    row_expect rows[] = {
        {table2[0], MM_TRUNK_RESNET50,
         resnet_stage_params(R, 512, 512, 2048, 1) + resnet_stage_params(2048, 512, 512, 2048, 1) +
             2048 * 2 + 2, 9, 7, 2048},
        {table2[1], MM_TRUNK_RESNET50,
         resnet_stage_params(R, 512, 512, 1024, 2) + resnet_stage_params(1024, 512, 512, 1024, 2) +
             1024 * 2 + 2, 9, 7, 1024},
        {table2[2], MM_TRUNK_RESNET50,
         resnet_stage_params(R, 256, 256, 512, 3) + resnet_stage_params(512, 128, 128, 256, 3) +
             256 * 2 + 2, 9, 7, 256},
        {table2[3], MM_TRUNK_VGG16, vgg_block_params(V, 512, 3) * 2 + 512 * 2 + 2, 9, 7, 512},
        {table2[4], MM_TRUNK_VGG16, vgg_block_params(V, 512, 1) * 2 + 512 * 2 + 2, 9, 7, 512},
        {table2[5], MM_TRUNK_VGG16,
         vgg_block_params(V, 256, 1) + vgg_block_params(256, 128, 1) + 128 * 2 + 2, 9, 7, 128},
        {table2[1], MM_TRUNK_VGG16,
         resnet_stage_params(V, 512, 512, 1024, 2) + resnet_stage_params(1024, 512, 512, 1024, 2) +
             1024 * 2 + 2, 9, 7, 1024},
        {table2[6], MM_TRUNK_RESNET50,
         hm_r + resnet_stage_params(P, 512, 512, 1024, 2) +
             resnet_stage_params(1024, 512, 512, 1024, 2) + 1024 * 2 + 2, 8, 6, 1024},
        {table2[7], MM_TRUNK_RESNET50,
         hm_r + resnet_stage_params(P, 512, 512, 1024, 2) +
             resnet_stage_params(1024, 512, 512, 1024, 2) + 1024 * 2 + 2, 2, 1, 1024},
        {table2[8], MM_TRUNK_RESNET50, hm_r + fc_tail, 6, 4, 5},
        {table2[8], MM_TRUNK_VGG16, hm_v + fc_tail, 6, 4, 5},
        {table2[9], MM_TRUNK_RESNET50, hm_r + fc_tail + 120 * 2 + 2, 6, 4, 5},
    };
    mm_backend *meta;
    CHECK(mm_backend_create("meta", &meta) == MM_OK);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        mm_model_config c = mm_model_config_default(MM_MODEL_WHOLE, rows[i].trunk);
        c.top = rows[i].spec;
        c.batch = 2;
        c.training = true;
        mm_model m;
        mm_status st = mm_model_build(&m, &c);
        CHECK_MSG(st == MM_OK, "%s on %s: %s", rows[i].spec, mm_trunk_name(rows[i].trunk),
                  mm_last_error());
        if (st != MM_OK) continue;
        const mm_value *f = mm_graph_value(m.g, m.feature);
        CHECK_EQ_INT(f->shape[1], 36);
        CHECK_EQ_INT(f->shape[2], 28);
        int64_t trunk = rows[i].trunk == MM_TRUNK_RESNET50 ? RESNET50_TRUNK : VGG16_TRUNK;
        CHECK_MSG(mm_model_totals_of(&m).params == trunk + rows[i].top_params,
                  "%s on %s: %lld parameters, expected %lld", rows[i].spec,
                  mm_trunk_name(rows[i].trunk), (long long)mm_model_totals_of(&m).params,
                  (long long)(trunk + rows[i].top_params));
        /* The map under GAP/flatten: the input of the first GLOBAL_AVGPOOL or RESHAPE node
         * after the trunk. */
        const mm_value *under = NULL;
        for (int k = 0; k < m.g->n_forward; k++) {
            const mm_node *nd = &m.g->nodes[k];
            if ((nd->op == MM_OP_GLOBAL_AVGPOOL || nd->op == MM_OP_RESHAPE) && nd->in[0] >= m.feature) {
                under = mm_graph_value(m.g, nd->in[0]);
                break;
            }
        }
        CHECK(under != NULL);
        if (under) {
            CHECK_MSG(under->shape[1] == rows[i].out_h && under->shape[2] == rows[i].out_w &&
                      under->shape[3] == rows[i].out_c,
                      "%s: final map %lldx%lldx%lld", rows[i].spec, (long long)under->shape[1],
                      (long long)under->shape[2], (long long)under->shape[3]);
        }
        const mm_value *lg = mm_graph_value(m.g, m.logits);
        CHECK_EQ_INT(lg->shape[0], 2);
        CHECK_EQ_INT(lg->shape[1], 2);
        mm_plan plan;
        CHECK(mm_plan_make(&plan, m.g, meta, 2) == MM_OK);
        mm_plan_free(&plan);
        mm_model_free(&m);
    }
    mm_backend_destroy(meta);
}

/* Every parameter not in the patch classifier is under "top.", so stage 1 is trainable = "top.";
 * the stage prefixes freeze the rest. */
MM_TEST(training_stages_freeze_the_rest)
{
    mm_model_config c = mm_model_config_default(MM_MODEL_WHOLE, MM_TRUNK_RESNET50);
    c.batch = 2;
    c.training = true;
    c.trainable = mm_model_stage_trainable(MM_MODEL_WHOLE, MM_TRUNK_RESNET50, 1);
    CHECK(!strcmp(c.trainable, "top."));
    mm_model m;
    CHECK(mm_model_build(&m, &c) == MM_OK);
    mm_model_totals t = mm_model_totals_of(&m);
    CHECK_EQ_INT(t.params, RESNET50_TRUNK + t.trainable);
    for (int id = 0; id < m.g->n_values; id++) {
        const mm_value *v = mm_graph_value(m.g, id);
        if (v->kind == MM_VALUE_PARAM)
            CHECK_MSG(v->frozen == mm_name_in_trunk(MM_TRUNK_RESNET50, v->name), "%s", v->name);
    }
    mm_model_free(&m);

    c = mm_model_config_default(MM_MODEL_PATCH, MM_TRUNK_RESNET50);
    c.training = true;
    c.trainable = mm_model_stage_trainable(MM_MODEL_PATCH, MM_TRUNK_RESNET50, 2);
    CHECK(mm_model_build(&m, &c) == MM_OK);
    /* layer4.2 (res5c): 2048*512 + 9*512*512 + 512*2048 + 2*(512+512+2048), plus fc. */
    CHECK_EQ_INT(mm_model_totals_of(&m).trainable,
                 2048 * 512 + 9 * 512 * 512 + 512 * 2048 + 2 * (512 + 512 + 2048) + 2048 * 5 + 5);
    mm_model_free(&m);

    c = mm_model_config_default(MM_MODEL_PATCH, MM_TRUNK_VGG16);
    c.training = true;
    c.trainable = mm_model_stage_trainable(MM_MODEL_PATCH, MM_TRUNK_VGG16, 2);
    CHECK(mm_model_build(&m, &c) == MM_OK);
    CHECK_EQ_INT(mm_model_totals_of(&m).trainable, 3 * (9 * 512 * 512 + 512) + 512 * 5 + 5);
    mm_model_free(&m);
    CHECK(mm_model_stage_trainable(MM_MODEL_PATCH, MM_TRUNK_VGG16, 3) == NULL);

    c.trainable = "nothing.";
    CHECK(mm_model_build(&m, &c) == MM_ERR_ARG);
    CHECK(strstr(mm_last_error(), "--trainable") != NULL);
}

MM_TEST(bad_configs_are_named)
{
    mm_model m;
    mm_model_config c = mm_model_config_default(MM_MODEL_WHOLE, MM_TRUNK_VGG16);
    c.height = 16;
    CHECK(mm_model_build(&m, &c) == MM_ERR_ARG);
    CHECK(strstr(mm_last_error(), "--input") != NULL);
    c = mm_model_config_default(MM_MODEL_WHOLE, MM_TRUNK_RESNET50);
    c.top = "512x1,512x1,512x1,512x1,512x1,512x1"; /* 36x28 -> ... -> 0 */
    CHECK(mm_model_build(&m, &c) == MM_ERR_SHAPE);
    CHECK(strstr(mm_last_error(), "does not fit a 1152x896 input") != NULL);
    c.top = "[1-2]";
    CHECK(mm_model_build(&m, &c) == MM_ERR_ARG);
    c = mm_model_config_default(MM_MODEL_PATCH, MM_TRUNK_RESNET50);
    c.dropout = 1.0f;
    CHECK(mm_model_build(&m, &c) == MM_ERR_ARG);
    mm_trunk t;
    CHECK(mm_trunk_parse(&t, "resnet18", "--net") == MM_ERR_ARG);
    CHECK(strstr(mm_last_error(), "--net: unknown net 'resnet18'") != NULL);
}

MM_TEST(dropout_only_when_training)
{
    for (int training = 0; training < 2; training++) {
        mm_model_config c = mm_model_config_default(MM_MODEL_WHOLE, MM_TRUNK_RESNET50);
        c.top = "512x1,512x1";
        c.dropout = 0.25f;
        c.training = training;
        mm_model m;
        CHECK(mm_model_build(&m, &c) == MM_OK);
        int n = 0;
        for (int k = 0; k < m.g->n_nodes; k++) n += m.g->nodes[k].op == MM_OP_DROPOUT;
        CHECK_EQ_INT(n, training ? 3 : 0); /* after each ReLU of the two blocks, before top.fc */
        mm_model_free(&m);
    }
}

/* ---- the full-size model of the issue: ResNet50 + [512-512-1024]x2,[512-512-1024]x2 ---- */

/* FLOPs of a forward pass as the graph counts them (runtime/graph.c): a multiply-add is 2, batch
 * norm 10 per element, ReLU and add 1 per element, pooling the window size per output, global
 * average pooling 1 per input, the loss 6 per logit. Walks the shapes by hand. */
typedef struct walk {
    double flops;
    int64_t n, h, w, c;
} walk;

static void w_conv(walk *s, int64_t k, int r, int stride, int pad)
{
    int64_t oh = (s->h + 2 * pad - r) / stride + 1, ow = (s->w + 2 * pad - r) / stride + 1;
    s->flops += 2.0 * s->n * oh * ow * k * r * r * s->c;
    s->h = oh, s->w = ow, s->c = k;
}
static double w_elems(const walk *s) { return (double)s->n * s->h * s->w * s->c; }
static void w_bn(walk *s) { s->flops += 10 * w_elems(s); }
static void w_relu(walk *s) { s->flops += w_elems(s); }
static void w_conv_bn(walk *s, int64_t k, int r, int stride, int pad, int relu)
{
    w_conv(s, k, r, stride, pad);
    w_bn(s);
    if (relu) w_relu(s);
}
static void w_bottleneck(walk *s, int64_t a, int64_t b, int64_t o, int stride, int project,
                         int stride_on_3x3)
{
    walk shortcut = *s;
    shortcut.flops = 0;
    w_conv_bn(s, a, 1, stride_on_3x3 ? 1 : stride, 0, 1);
    w_conv_bn(s, b, 3, stride_on_3x3 ? stride : 1, 1, 1);
    w_conv_bn(s, o, 1, 1, 0, 0);
    if (project) {
        w_conv_bn(&shortcut, o, 1, stride, 0, 0);
        s->flops += shortcut.flops;
    }
    s->flops += 2 * w_elems(s); /* add, ReLU */
}

static double resnet50_whole_flops(int64_t n, int64_t h, int64_t w)
{
    walk s = {0, n, h, w, 3};
    w_conv_bn(&s, 64, 7, 2, 3, 1);
    int64_t ph = (s.h + 2 - 3) / 2 + 1, pw = (s.w + 2 - 3) / 2 + 1;
    s.flops += (double)n * ph * pw * s.c * 9;
    s.h = ph, s.w = pw;
    const int units[4] = {3, 4, 6, 3};
    for (int st = 0; st < 4; st++)
        for (int u = 0; u < units[st]; u++) {
            int64_t wd = 64 << st;
            w_bottleneck(&s, wd, wd, 4 * wd, (u == 0 && st > 0) ? 2 : 1, u == 0, 1);
        }
    for (int st = 0; st < 2; st++)
        for (int u = 0; u < 2; u++)
            w_bottleneck(&s, 512, 512, 1024, u == 0 ? 2 : 1, u == 0, 0);
    s.flops += w_elems(&s);              /* global average pooling */
    s.flops += 2.0 * n * 1024 * 2;       /* top.fc */
    s.flops += 6.0 * n * 2;              /* loss */
    return s.flops;
}

static int64_t parse_after(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    return p ? strtoll(p + strlen(key), NULL, 10) : -1;
}

static char *run_capture(const char *cmd, int *status)
{
    FILE *p = popen(cmd, "r");
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap);
    size_t k;
    while (p && (k = fread(buf + len, 1, cap - 1 - len, p)) > 0) len += k;
    buf[len] = '\0';
    int rc = p ? pclose(p) : -1;
    *status = rc == -1 ? -1 : WEXITSTATUS(rc);
    return buf;
}

MM_TEST(full_size_resnet50_whole_summary_and_plan)
{
    const char *spec = "[512-512-1024]x2,[512-512-1024]x2";
    mm_model_config c = mm_model_config_default(MM_MODEL_WHOLE, MM_TRUNK_RESNET50);
    c.top = spec;
    c.batch = 2;
    c.training = true;
    c.recompute_conv_macs = mm_recompute_conv_cuda(MM_PRECISION_FP32); /* as `mammo plan` */
    c.recompute_slack = mm_recompute_slack_cuda(MM_PRECISION_FP32);
    mm_model m;
    mm_backend *meta;
    CHECK(mm_backend_create("meta", &meta) == MM_OK);
    clock_t t0 = clock();
    CHECK(mm_model_build(&m, &c) == MM_OK);
    mm_plan plan;
    CHECK(mm_plan_make(&plan, m.g, meta, 2) == MM_OK);
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;

    const mm_value *f = mm_graph_value(m.g, m.feature);
    CHECK_EQ_INT(f->shape[1], 36);
    CHECK_EQ_INT(f->shape[2], 28);
    int64_t params = RESNET50_TRUNK + resnet_stage_params(2048, 512, 512, 1024, 2) +
                     resnet_stage_params(1024, 512, 512, 1024, 2) + 1024 * 2 + 2;
    mm_model_totals t = mm_model_totals_of(&m);
    CHECK_EQ_INT(t.params, params);
    CHECK_EQ_INT(t.trainable, params);
    CHECK_EQ_INT(plan.n_params, params);
    double flops = resnet50_whole_flops(2, 1152, 896) / 2;
    CHECK_CLOSE(t.flops_forward_per_image, flops, 0, 1e-12);
    size_t peak = mm_plan_peak_bytes(&plan);
    /* The peak is the sum of its parts; parameters, gradients and Adam's two moments are 4 bytes
     * per parameter (plus alignment); activations reuse memory (below the no-reuse sum) and must
     * at least hold the largest activation (conv1's output, 2 x 576 x 448 x 64 floats). */
    CHECK_EQ_INT(peak, plan.param_bytes + plan.grad_bytes + plan.opt_bytes + plan.state_bytes +
                           plan.input_bytes + plan.arena_bytes);
    CHECK(plan.workspace_bytes < plan.arena_bytes); /* the node scratch lies inside the arena */
    CHECK(plan.param_bytes >= (size_t)params * 4 && plan.param_bytes < (size_t)params * 4 + (1 << 20));
    CHECK_EQ_INT(plan.grad_bytes, plan.trainable_bytes);
    CHECK_EQ_INT(plan.opt_bytes, 2 * plan.grad_bytes);
    CHECK(plan.input_bytes >= (size_t)2 * 1152 * 896 * 3 * 4);
    CHECK(plan.arena_bytes < plan.naive_arena_bytes);
    CHECK(plan.arena_bytes >= (size_t)2 * 576 * 448 * 64 * 4);
    printf("    resnet50 + %s at 1152x896, batch 2: %lld parameters, %.3f GFLOPs/image forward, "
           "peak %zu bytes (%.1f MiB); build and plan took %.2f s\n", spec, (long long)params,
           flops / 1e9, peak, peak / 1048576.0, secs);

    /* `mammo summary` prints the same numbers; `mammo plan` ends with the same peak. */
    char cmd[1024];
    int status;
    snprintf(cmd, sizeof cmd, "'%s' summary --net resnet50 --top '%s' --input 1152x896 --batch 2",
             MM_MAMMO_EXE, spec);
    char *out = run_capture(cmd, &status);
    CHECK_EQ_INT(status, 0);
    CHECK(strstr(out, "trunk feature map            [2, 36, 28, 2048] (36x28)") != NULL);
    CHECK_EQ_INT(parse_after(out, "\nparameters                   "), params);
    CHECK_EQ_INT(parse_after(out, "forward FLOPs per image      "), (int64_t)llround(flops));
    CHECK_EQ_INT(parse_after(out, "peak_bytes="), (int64_t)peak);
    CHECK(strstr(out, "top.1.1.conv2                conv2d             [2, 9, 7, 512]") != NULL);
    /* the residual joins are folded into the batch norm before them (mm_graph_fuse_residual) */
    CHECK(strstr(out, "top.1.1.bn3                  batchnorm+add+relu [2, 9, 7, 1024]") != NULL);
    CHECK(strstr(out, " none ") == NULL);
    size_t len = strlen(out);
    CHECK(len > 0 && out[len - 1] == '\n');
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' plan --net resnet50 --top '%s' --input 1152x896 --batch 2",
             MM_MAMMO_EXE, spec);
    out = run_capture(cmd, &status);
    CHECK_EQ_INT(status, 0);
    char last[64];
    snprintf(last, sizeof last, "peak_bytes=%zu\n", peak);
    len = strlen(out);
    CHECK_MSG(len >= strlen(last) && !strcmp(out + len - strlen(last), last), "plan output: %s",
              out);
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' summary --net resnet50 --top '[512-512]x2' 2>&1", MM_MAMMO_EXE);
    out = run_capture(cmd, &status);
    CHECK_EQ_INT(status, 1);
    CHECK(!strncmp(out, "mammo: --top: item 1 '[512-512]x2'", 34));
    free(out);

    mm_plan_free(&plan);
    mm_model_free(&m);
    mm_backend_destroy(meta);
}

/* ---- initialisation ---- */

static void stats(const float *x, int64_t n, double *mean, double *sd, double *lo, double *hi)
{
    double s = 0, s2 = 0;
    *lo = INFINITY, *hi = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        s += x[i];
        s2 += (double)x[i] * x[i];
        *lo = fmin(*lo, x[i]);
        *hi = fmax(*hi, x[i]);
    }
    *mean = s / n;
    *sd = sqrt(s2 / n - *mean * *mean);
}

MM_TEST(init_follows_torchvision)
{
    mm_model_config c = mm_model_config_default(MM_MODEL_TORCHVISION, MM_TRUNK_RESNET50);
    mm_model m;
    CHECK(mm_model_build(&m, &c) == MM_OK);
    float *buf = malloc((size_t)4096 * 1000 * 4), *again = malloc((size_t)4096 * 1000 * 4);
    double mean, sd, lo, hi;
    /* layer3.0.conv2 [256,3,3,256]: kaiming normal, fan_out = 256*9. */
    int id = mm_graph_find(m.g, "layer3.0.conv2.weight");
    mm_model_init_tensor(&m, id, 7, buf);
    stats(buf, 256 * 9 * 256, &mean, &sd, &lo, &hi);
    CHECK_CLOSE(mean, 0, 0.002, 0);
    CHECK_CLOSE(sd, sqrt(2.0 / (256 * 9)), 0, 0.01);
    /* fc [1000,2048]: nn.Linear's default, U(-1/sqrt(2048), 1/sqrt(2048)). */
    id = mm_graph_find(m.g, "fc.weight");
    mm_model_init_tensor(&m, id, 7, buf);
    stats(buf, 2048 * 1000, &mean, &sd, &lo, &hi);
    double b = 1 / sqrt(2048.0);
    CHECK(lo >= -b && hi < b && lo < -0.99 * b && hi > 0.99 * b);
    CHECK_CLOSE(sd, b / sqrt(3.0), 0, 0.01);
    id = mm_graph_find(m.g, "fc.bias");
    mm_model_init_tensor(&m, id, 7, buf);
    stats(buf, 1000, &mean, &sd, &lo, &hi);
    CHECK(lo >= -b && hi < b && sd > 0.5 * b / sqrt(3.0));
    /* Same seed, same values; another seed or another tensor of the same shape differs. */
    mm_model_init_tensor(&m, id, 7, again);
    CHECK(!memcmp(buf, again, 1000 * 4));
    mm_model_init_tensor(&m, id, 8, again);
    CHECK(memcmp(buf, again, 1000 * 4) != 0);
    float x[64], y[64];
    mm_model_init_tensor(&m, mm_graph_find(m.g, "layer1.0.conv1.weight"), 7, buf);
    mm_model_init_tensor(&m, mm_graph_find(m.g, "layer1.1.conv2.weight"), 7, again);
    memcpy(x, buf, sizeof x);
    memcpy(y, again, sizeof y);
    CHECK(memcmp(x, y, sizeof x) != 0);
    /* BN: weight 1, bias 0, running mean 0, running var 1. */
    const char *names[4] = {"bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var"};
    const float want[4] = {1, 0, 0, 1};
    for (int k = 0; k < 4; k++) {
        mm_model_init_tensor(&m, mm_graph_find(m.g, names[k]), 7, buf);
        for (int i = 0; i < 64; i++) CHECK(buf[i] == want[k]);
    }
    mm_model_free(&m);

    c = mm_model_config_default(MM_MODEL_TORCHVISION, MM_TRUNK_VGG16);
    CHECK(mm_model_build(&m, &c) == MM_OK);
    mm_model_init_tensor(&m, mm_graph_find(m.g, "classifier.6.weight"), 7, buf);
    stats(buf, 4096 * 100, &mean, &sd, &lo, &hi);
    CHECK_CLOSE(sd, 0.01, 0, 0.01);
    mm_model_init_tensor(&m, mm_graph_find(m.g, "features.28.bias"), 7, buf);
    for (int i = 0; i < 512; i++) CHECK(buf[i] == 0);
    mm_model_free(&m);
    free(buf);
    free(again);
}

/* ---- weights I/O ---- */

/* Layout conversions: conv OHWI <-> OIHW, and a dense weight over a flattened map (h,w,c) <->
 * (c,h,w), checked element by element against the index formulas. */
MM_TEST(torch_layout_conversions)
{
    mm_model_config c = mm_model_config_default(MM_MODEL_WHOLE, MM_TRUNK_RESNET50);
    c.top = "hm,maxpool5,fc64,fc32,shortcut";
    mm_model m;
    CHECK(mm_model_build(&m, &c) == MM_OK);
    int id = mm_graph_find(m.g, "top.2.fc.weight"); /* [64, 6*4*5] */
    CHECK(id >= 0);
    int nd;
    int64_t sh[MM_MAX_DIMS];
    mm_model_torch_shape(&m, id, &nd, sh);
    CHECK(nd == 2 && sh[0] == 64 && sh[1] == 120);
    float ours[64 * 120], torch[64 * 120], back[64 * 120];
    for (int i = 0; i < 64 * 120; i++) ours[i] = (float)i;
    mm_model_to_torch(&m, id, torch, ours);
    for (int o = 0; o < 64; o += 7)
        for (int h = 0; h < 6; h++)
            for (int w = 0; w < 4; w++)
                for (int ch = 0; ch < 5; ch++)
                    CHECK(torch[o * 120 + (ch * 6 + h) * 4 + w] == ours[o * 120 + (h * 4 + w) * 5 + ch]);
    mm_model_from_torch(&m, id, back, torch);
    CHECK(!memcmp(back, ours, sizeof ours));
    id = mm_graph_find(m.g, "top.shortcut.weight");
    mm_model_to_torch(&m, id, torch, ours);
    CHECK(torch[1 * 120 + (4 * 6 + 5) * 4 + 3] == ours[1 * 120 + (5 * 4 + 3) * 5 + 4]);
    /* The heatmap conv [5,1,1,2048] is [5,2048,1,1] in files, the same numbers. */
    id = mm_graph_find(m.g, "top.0.weight");
    mm_model_torch_shape(&m, id, &nd, sh);
    CHECK(nd == 4 && sh[0] == 5 && sh[1] == 2048 && sh[2] == 1 && sh[3] == 1);
    id = mm_graph_find(m.g, "layer1.0.conv2.weight"); /* ours [64,3,3,64] */
    mm_model_torch_shape(&m, id, &nd, sh);
    CHECK(nd == 4 && sh[0] == 64 && sh[1] == 64 && sh[2] == 3 && sh[3] == 3);
    float *a = malloc(64 * 9 * 64 * 4), *t = malloc(64 * 9 * 64 * 4);
    for (int i = 0; i < 64 * 9 * 64; i++) a[i] = (float)i;
    mm_model_to_torch(&m, id, t, a);
    /* torch [o][i][r][s] = ours [o][r][s][i] */
    CHECK(t[((5 * 64 + 7) * 3 + 2) * 3 + 1] == a[((5 * 3 + 2) * 3 + 1) * 64 + 7]);
    free(a);
    free(t);
    mm_model_free(&m);
}

/* Reads every parameter and statistic of a session into one host buffer (ours layout). */
static float *read_all(const mm_model *m, const mm_session *s, size_t *total)
{
    size_t n = 0;
    for (int id = 0; id < m->g->n_values; id++) {
        mm_value_kind k = mm_graph_value(m->g, id)->kind;
        if (k == MM_VALUE_PARAM || k == MM_VALUE_STATE) n += mm_value_bytes(mm_graph_value(m->g, id));
    }
    float *buf = malloc(n);
    size_t off = 0;
    for (int id = 0; id < m->g->n_values; id++) {
        const mm_value *v = mm_graph_value(m->g, id);
        if (v->kind != MM_VALUE_PARAM && v->kind != MM_VALUE_STATE) continue;
        CHECK(mm_session_read(s, id, (char *)buf + off, mm_value_bytes(v)) == MM_OK);
        off += mm_value_bytes(v);
    }
    *total = n;
    return buf;
}

/* Weights saved in bfloat16 (a half-size export of a model) load as float32, each the float its
 * bfloat16 holds: saved again, every tensor is the bfloat16 one widened. */
MM_TEST(load_bfloat16_weights)
{
    mm_model_config c = mm_model_config_default(MM_MODEL_PATCH, MM_TRUNK_VGG16);
    c.width_div = 16;
    c.height = c.width = 32;
    mm_backend *cpu;
    CHECK(mm_backend_create("cpu", &cpu) == MM_OK);
    mm_model m;
    mm_session s;
    CHECK(mm_model_build(&m, &c) == MM_OK);
    CHECK(mm_session_init(&s, m.g, cpu, 0) == MM_OK);
    mm_model_init(&m, &s, 21);
    char f32_path[512], bf16_path[512], back_path[512];
    snprintf(f32_path, sizeof f32_path, "%s/w32.safetensors", mm_test_tmpdir());
    snprintf(bf16_path, sizeof bf16_path, "%s/w16.safetensors", mm_test_tmpdir());
    snprintf(back_path, sizeof back_path, "%s/back.safetensors", mm_test_tmpdir());
    CHECK(mm_model_save(&m, &s, f32_path) == MM_OK);
    /* the same tensors as bfloat16 (the top half of each float) */
    mm_safetensors *f;
    CHECK(mm_safetensors_open(&f, f32_path) == MM_OK);
    int n = mm_safetensors_count(f);
    mm_st_tensor *t = calloc((size_t)n, sizeof *t);
    float **wide = calloc((size_t)n, sizeof *wide);
    for (int k = 0; k < n; k++) {
        const mm_st_entry *e = mm_safetensors_entry(f, k);
        float *w = malloc(e->bytes + 4);
        CHECK(mm_safetensors_read(f, e, w, e->bytes) == MM_OK);
        uint16_t *h = malloc((size_t)e->numel * 2 + 2);
        wide[k] = malloc(e->bytes + 4);
        for (int64_t i = 0; i < e->numel; i++) {
            uint32_t bits;
            memcpy(&bits, &w[i], 4);
            h[i] = (uint16_t)(bits >> 16);
            bits &= 0xffff0000u;
            memcpy(&wide[k][i], &bits, 4);
        }
        free(w);
        t[k] = (mm_st_tensor){.name = e->name, .dtype = MM_BF16, .ndim = e->ndim, .data = h};
        memcpy(t[k].shape, e->shape, sizeof e->shape);
    }
    CHECK(mm_safetensors_write(bf16_path, t, n, NULL, 0) == MM_OK);
    mm_status st = mm_model_load(&m, &s, bf16_path, MM_LOAD_ALL);
    CHECK_MSG(st == MM_OK, "%s", mm_last_error());
    CHECK(mm_model_save(&m, &s, back_path) == MM_OK);
    mm_safetensors *b;
    CHECK(mm_safetensors_open(&b, back_path) == MM_OK);
    for (int k = 0; k < n; k++) {
        const mm_st_entry *e = mm_safetensors_find(b, t[k].name);
        float *w = malloc(e->bytes + 4);
        CHECK(mm_safetensors_read(b, e, w, e->bytes) == MM_OK);
        CHECK_MSG(!memcmp(w, wide[k], e->bytes), "%s", t[k].name);
        free(w);
        free((void *)t[k].data);
        free(wide[k]);
    }
    mm_safetensors_close(b);
    mm_safetensors_close(f);
    free(t);
    free(wide);
    mm_session_free(&s);
    mm_model_free(&m);
    mm_backend_destroy(cpu);
}

MM_TEST(save_and_load_round_trip)
{
    mm_model_config c = mm_model_config_default(MM_MODEL_WHOLE, MM_TRUNK_VGG16);
    c.top = "64x1,fc8,shortcut";
    c.height = 96;
    c.width = 64;
    mm_backend *cpu;
    CHECK(mm_backend_create("cpu", &cpu) == MM_OK);
    mm_model m;
    mm_session a, b;
    CHECK(mm_model_build(&m, &c) == MM_OK);
    CHECK(mm_session_init(&a, m.g, cpu, 0) == MM_OK);
    CHECK(mm_session_init(&b, m.g, cpu, 0) == MM_OK);
    mm_model_init(&m, &a, 11);
    mm_model_init(&m, &b, 12);
    char path[512];
    snprintf(path, sizeof path, "%s/w.safetensors", mm_test_tmpdir());
    CHECK(mm_model_save(&m, &a, path) == MM_OK);
    CHECK(mm_model_load(&m, &b, path, MM_LOAD_ALL) == MM_OK);
    size_t na, nb;
    float *pa = read_all(&m, &a, &na), *pb = read_all(&m, &b, &nb);
    CHECK(na == nb && !memcmp(pa, pb, na));
    free(pa);
    free(pb);

    /* From a file already open (how checkpoints are read: once for metadata, weights and
     * moments): its own tensors, even after the path was replaced by other weights. */
    mm_safetensors *held;
    CHECK(mm_safetensors_open(&held, path) == MM_OK);
    mm_model_init(&m, &b, 13);
    CHECK(mm_model_save(&m, &b, path) == MM_OK);
    CHECK(mm_model_load_from(&m, &b, held, MM_LOAD_ALL) == MM_OK);
    mm_safetensors_close(held);
    pa = read_all(&m, &a, &na);
    pb = read_all(&m, &b, &nb);
    CHECK(na == nb && !memcmp(pa, pb, na));
    free(pa);
    free(pb);
    CHECK(mm_model_save(&m, &a, path) == MM_OK);

    /* Copying by name between sessions (a rebuilt graph for the next training stage). */
    mm_model m2;
    mm_model_config c2 = c;
    c2.training = true;
    c2.batch = 2;
    c2.trainable = "top.";
    mm_session s2;
    CHECK(mm_model_build(&m2, &c2) == MM_OK);
    CHECK(mm_session_init(&s2, m2.g, cpu, 2) == MM_OK);
    int copied = 0;
    CHECK(mm_model_copy_weights(&m2, &s2, &m, &a, &copied) == MM_OK);
    size_t n2;
    float *p2 = read_all(&m2, &s2, &n2);
    pa = read_all(&m, &a, &na);
    CHECK(n2 == na && !memcmp(p2, pa, na));
    CHECK(copied > 30);
    free(p2);
    free(pa);
    mm_session_free(&s2);
    mm_model_free(&m2);

    /* The file is in PyTorch's layout with metadata naming the model. */
    mm_safetensors *f;
    CHECK(mm_safetensors_open(&f, path) == MM_OK);
    const mm_st_entry *e = mm_safetensors_find(f, "features.0.weight");
    CHECK(e && e->ndim == 4 && e->shape[0] == 64 && e->shape[1] == 3 && e->shape[2] == 3);
    float *w = malloc(e->bytes), *ours = malloc(e->bytes);
    CHECK(mm_safetensors_read(f, e, w, e->bytes) == MM_OK);
    CHECK(mm_session_read(&a, mm_graph_find(m.g, "features.0.weight"), ours, e->bytes) == MM_OK);
    CHECK(w[((9 * 3 + 2) * 3 + 1) * 3 + 0] == ours[((9 * 3 + 1) * 3 + 0) * 3 + 2]);
    free(w);
    free(ours);
    CHECK(!strcmp(mm_safetensors_meta(f, "mammo.top"), "64x1,fc8,shortcut"));
    CHECK(!strcmp(mm_safetensors_meta(f, "mammo.net"), "vgg16"));
    CHECK(mm_safetensors_find(f, "top.1.bn.running_var") != NULL);
    mm_safetensors_close(f);

    /* A file of another model: its extra tensor is named. */
    mm_model p;
    mm_model_config pc = mm_model_config_default(MM_MODEL_PATCH, MM_TRUNK_VGG16);
    CHECK(mm_model_build(&p, &pc) == MM_OK);
    mm_session ps;
    CHECK(mm_session_init(&ps, p.g, cpu, 0) == MM_OK);
    CHECK(mm_model_load(&p, &ps, path, MM_LOAD_ALL) == MM_ERR_FORMAT);
    CHECK_MSG(strstr(mm_last_error(), "tensor 'top.0.0.conv.weight' is not part of the vgg16 "
                                      "patch model") != NULL, "%s", mm_last_error());
    /* ... and a trunk-only load takes what it needs. */
    CHECK(mm_model_load(&p, &ps, path, MM_LOAD_TRUNK) == MM_OK);
    mm_session_free(&ps);
    mm_model_free(&p);
    CHECK(mm_model_load(&m, &b, "/nonexistent/w.safetensors", MM_LOAD_ALL) == MM_ERR_IO);
    mm_session_free(&a);
    mm_session_free(&b);
    mm_model_free(&m);
    mm_backend_destroy(cpu);
}

/* The conversion with a heatmap: the whole-image model's 'hm' item applies the patch classifier's
 * dense layer after a 7x7/1 average pool. On a 224x224 image the trunk's map is 7x7, so the
 * heatmap is one position: ReLU of the patch classifier's logits. With top.fc selecting classes 0
 * and 1, the whole model's logits must equal relu(patch logits[0..1]). */
MM_TEST(heatmap_conversion_reproduces_the_patch_classifier)
{
    mm_backend *cpu;
    CHECK(mm_backend_create("cpu", &cpu) == MM_OK);
    mm_model_config pc = mm_model_config_default(MM_MODEL_PATCH, MM_TRUNK_RESNET50);
    mm_model p, w;
    mm_session ps, ws;
    CHECK(mm_model_build(&p, &pc) == MM_OK);
    CHECK(mm_session_init(&ps, p.g, cpu, 0) == MM_OK);
    mm_model_init(&p, &ps, 5);
    /* Non-trivial running statistics and a larger head so the logits spread both ways. */
    float stats_buf[2048];
    for (int id = 0; id < p.g->n_values; id++) {
        const mm_value *v = mm_graph_value(p.g, id);
        if (v->kind != MM_VALUE_STATE) continue;
        bool var = strstr(v->name, "running_var") != NULL;
        mm_test_fill_uniform(stats_buf, v->shape[0], (uint64_t)id, var ? 0.5f : -0.1f,
                             var ? 1.5f : 0.1f);
        CHECK(mm_session_write(&ps, id, stats_buf, (size_t)v->shape[0] * 4) == MM_OK);
    }
    float *fcw = malloc(5 * 2048 * 4), fcb[5];
    /* The pooled features are >= 0 (after ReLU): class 0's row is positive and class 1's
     * negative, so the heatmap's ReLU passes one and clips the other. */
    mm_test_fill_uniform(fcw, 5 * 2048, 99, -0.2f, 0.2f);
    for (int i = 0; i < 2048; i++) {
        fcw[i] = fabsf(fcw[i]);
        fcw[2048 + i] = -fabsf(fcw[2048 + i]);
    }
    mm_test_fill_uniform(fcb, 5, 98, -0.5f, 0.5f);
    CHECK(mm_session_write(&ps, mm_graph_find(p.g, "fc.weight"), fcw, 5 * 2048 * 4) == MM_OK);
    CHECK(mm_session_write(&ps, mm_graph_find(p.g, "fc.bias"), fcb, 20) == MM_OK);
    free(fcw);
    char path[512];
    snprintf(path, sizeof path, "%s/patch.safetensors", mm_test_tmpdir());
    CHECK(mm_model_save(&p, &ps, path) == MM_OK);

    mm_model_config wc = mm_model_config_default(MM_MODEL_WHOLE, MM_TRUNK_RESNET50);
    wc.top = "hm";
    wc.height = wc.width = 224;
    CHECK(mm_model_build(&w, &wc) == MM_OK);
    CHECK(mm_session_init(&ws, w.g, cpu, 0) == MM_OK);
    mm_model_init(&w, &ws, 6);
    CHECK_MSG(mm_model_load(&w, &ws, path, MM_LOAD_TRUNK) == MM_OK, "%s", mm_last_error());
    float sel[2 * 5] = {1, 0, 0, 0, 0, 0, 1, 0, 0, 0}, zero[2] = {0, 0};
    CHECK(mm_session_write(&ws, mm_graph_find(w.g, "top.fc.weight"), sel, sizeof sel) == MM_OK);
    CHECK(mm_session_write(&ws, mm_graph_find(w.g, "top.fc.bias"), zero, sizeof zero) == MM_OK);

    float *img = malloc(224 * 224 * 3 * 4);
    mm_test_fill_uniform(img, 224 * 224 * 3, 4, -2, 2);
    CHECK(mm_session_write(&ps, p.image, img, 224 * 224 * 3 * 4) == MM_OK);
    CHECK(mm_session_write(&ws, w.image, img, 224 * 224 * 3 * 4) == MM_OK);
    mm_session_forward(&ps);
    mm_session_forward(&ws);
    float pl[5], wl[2];
    CHECK(mm_session_read(&ps, p.logits, pl, sizeof pl) == MM_OK);
    CHECK(mm_session_read(&ws, w.logits, wl, sizeof wl) == MM_OK);
    printf("    patch logits %.4f %.4f -> whole %.4f %.4f\n", pl[0], pl[1], wl[0], wl[1]);
    CHECK(pl[0] > 0 && pl[1] < 0);
    for (int k = 0; k < 2; k++) CHECK_CLOSE(wl[k], fmaxf(pl[k], 0.0f), 1e-5, 1e-5);

    /* The trunk load needs the patch classifier's fc for the heatmap: a torchvision VGG-style
     * file without fc.* is named. */
    mm_model_config tc = mm_model_config_default(MM_MODEL_WHOLE, MM_TRUNK_RESNET50);
    tc.top = "hm,maxpool2";
    tc.height = tc.width = 288;
    mm_model t;
    mm_session ts;
    CHECK(mm_model_build(&t, &tc) == MM_OK);
    CHECK(mm_session_init(&ts, t.g, cpu, 0) == MM_OK);
    snprintf(path, sizeof path, "%s/whole.safetensors", mm_test_tmpdir());
    mm_model_init(&t, &ts, 1);
    CHECK(mm_model_save(&t, &ts, path) == MM_OK);
    CHECK(mm_model_load(&t, &ts, path, MM_LOAD_TRUNK) == MM_ERR_FORMAT);
    CHECK(strstr(mm_last_error(), "'fc.weight' is missing") != NULL);
    mm_session_free(&ts);
    mm_model_free(&t);

    free(img);
    mm_session_free(&ps);
    mm_session_free(&ws);
    mm_model_free(&p);
    mm_model_free(&w);
    mm_backend_destroy(cpu);
}
