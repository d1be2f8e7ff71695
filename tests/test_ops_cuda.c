/* The CUDA op table, part 1: convolutions (cuDNN's legacy algorithms, its graph API's plans, the
 * 1x1 GEMM path, NCHW copies, chunks of samples) and batch norm, each case run on the CPU backend
 * (the executable specification) and on the CUDA backend at fp32, tf32 and bf16 and compared
 * (tests/op_case.h). Cases cover odd sizes, stride 2, padding, 1x1,
 * 3x3 and 7x7 kernels, batch 1 and 2, optional inputs and outputs absent, parameter gradients
 * accumulating into non-zero buffers, outputs written over NaN (so an element left unwritten
 * fails) and in-place variants (CUDA output sharing its input's buffer); and CUDA graph capture
 * and replay of a step piece.
 *
 * Without a GPU every test prints SKIPPED (no GPU); test_ops_cuda_emu runs them on the
 * emulated GPU (tests/cuemu). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tests/op_case.h"
#ifdef MM_HAVE_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif

/* ---- convolution ---- */
typedef struct conv_cfg {
    int n, h, w, c, k, r, stride, pad, bias;
} conv_cfg;

static const conv_cfg conv_cfgs[] = {
    {2, 7, 5, 3, 4, 3, 1, 1, 1},    /* odd sizes, 3x3, padding, bias */
    {1, 9, 11, 5, 6, 3, 2, 1, 0},   /* stride 2, batch 1 */
    {2, 8, 8, 8, 16, 1, 1, 0, 0},   /* 1x1: a GEMM */
    {2, 9, 7, 4, 8, 1, 2, 0, 1},    /* 1x1 stride 2 (projection shortcut) */
    {1, 13, 10, 3, 8, 7, 2, 3, 1},  /* 7x7 stride 2 (ResNet's first layer) */
    {2, 6, 9, 16, 8, 3, 2, 0, 0},   /* stride 2, no padding */
    {2, 28, 20, 64, 64, 3, 1, 1, 0}, /* tensor-core sized */
};

static mm_conv_dims conv_dims(const conv_cfg *c)
{
    mm_conv_dims d;
    memset(&d, 0, sizeof d);
    d.n = c->n, d.h = c->h, d.w = c->w, d.c = c->c, d.k = c->k, d.r = c->r, d.s = c->r;
    d.stride_h = d.stride_w = c->stride;
    d.pad_h = d.pad_w = c->pad;
    MM_ASSERT(mm_conv_dims_finish(&d));
    return d;
}

static void conv_forward_case(const mm_conv_dims *d, bool bias, uint64_t seed, const char *name)
{
    tcase tc;
    tc_init(&tc, MM_OP_CONV2D, TOL_GEMM, seed);
    tc.node.p.conv = *d;
    tc_in(&tc, act_in(&tc, -1, 1, SHAPE(d->n, d->h, d->w, d->c)));
    tc_in(&tc, f32_in(&tc, -0.5f, 0.5f, SHAPE(d->k, d->r, d->s, d->c)));
    if (bias) tc_in(&tc, f32_in(&tc, -1, 1, SHAPE(d->k)));
    tc_out(&tc, act_out(&tc, SHAPE(d->n, d->oh, d->ow, d->k)));
    tc_check(&tc, name);
}

/* With d->accumulate, a data gradient summed into an earlier one (graph.h
 * mm_graph_fuse_grad_add): dx = acc + the gradient, written over acc (the planner's case) and,
 * in the tc_check's plain run, into its own buffer. */
static void conv_bwd_data_case(const mm_conv_dims *d, uint64_t seed, const char *name)
{
    tcase tc;
    tc_init(&tc, MM_OP_CONV2D_BWD_DATA, TOL_GEMM, seed);
    tc.node.backward = true;
    tc.node.p.conv = *d;
    tc_in(&tc, act_in(&tc, -1, 1, SHAPE(d->n, d->oh, d->ow, d->k)));
    tc_in(&tc, f32_in(&tc, -0.5f, 0.5f, SHAPE(d->k, d->r, d->s, d->c)));
    if (d->accumulate) {
        tc_in(&tc, act_in(&tc, -1, 1, SHAPE(d->n, d->h, d->w, d->c)));
        tc.alias_out[0] = 2;
    }
    tc_out(&tc, act_out(&tc, SHAPE(d->n, d->h, d->w, d->c)));
    tc_check(&tc, name);
}

static void conv_bwd_filter_case(const mm_conv_dims *d, uint64_t seed, const char *name)
{
    tcase tc;
    tc_init(&tc, MM_OP_CONV2D_BWD_FILTER, TOL_GEMM, seed);
    tc.node.backward = true;
    tc.node.p.conv = *d;
    tc_in(&tc, act_in(&tc, -1, 1, SHAPE(d->n, d->oh, d->ow, d->k)));
    tc_in(&tc, act_in(&tc, -1, 1, SHAPE(d->n, d->h, d->w, d->c)));
    tc_out(&tc, grad_out(&tc, SHAPE(d->k, d->r, d->s, d->c)));
    tc_check(&tc, name);
}

/* A backward case on every conv_cfgs shape, with d.accumulate and d.overwrite as given; seeds
 * from `seed`, names "<what> cfg <i>". */
static void each_conv_cfg(void (*run)(const mm_conv_dims *, uint64_t, const char *),
                          int accumulate, int overwrite, uint64_t seed, const char *what)
{
    for (size_t i = 0; i < sizeof conv_cfgs / sizeof conv_cfgs[0]; i++) {
        mm_conv_dims d = conv_dims(&conv_cfgs[i]);
        d.accumulate = accumulate;
        d.overwrite = overwrite;
        char name[80];
        snprintf(name, sizeof name, "%s cfg %zu", what, i);
        run(&d, seed + i, name);
    }
}

MM_TEST(cuda_conv2d_forward)
{
    REQUIRE_GPU();
    for (size_t i = 0; i < sizeof conv_cfgs / sizeof conv_cfgs[0]; i++) {
        mm_conv_dims d = conv_dims(&conv_cfgs[i]);
        char name[64];
        snprintf(name, sizeof name, "conv fwd cfg %zu", i);
        conv_forward_case(&d, conv_cfgs[i].bias, 100 + i, name);
    }
}

MM_TEST(cuda_conv2d_backward_data)
{
    REQUIRE_GPU();
    each_conv_cfg(conv_bwd_data_case, 0, 0, 200, "conv bwd data");
}

MM_TEST(cuda_conv2d_backward_data_accumulating)
{
    REQUIRE_GPU();
    each_conv_cfg(conv_bwd_data_case, 1, 0, 250, "conv bwd data + acc");
}

/* How many data-gradient shapes the backend ran as forward convolutions of dy (the bench line's
 * dgrad_fwd=). */
static int dgrad_fwd_count(mm_backend *be)
{
    char buf[512];
    be->describe(be, buf, sizeof buf);
    const char *p = strstr(buf, "dgrad_fwd=");
    return p ? atoi(p + strlen("dgrad_fwd=")) : -1;
}

/* Stride-1 data gradients run as forward convolutions of dy over the turned-around filter
 * (conv_cudnn.c, MM_CONV_DGRAD_FWD=1 wherever it applies): paddings from 0 to r-1, odd sizes,
 * 3x3 and 5x5, summing into an earlier gradient or not, on every path forward convolutions take
 * (cuDNN's legacy algorithms, graph plans, NCHW copies; our Winograd for the 3x3 ones), and
 * (every other shape, to keep a real card's searches few) in chunks of samples. */
static const conv_cfg turn_cfgs[] = {
    {2, 7, 5, 3, 4, 3, 1, 1, 1},   /* "same" padding */
    {2, 9, 7, 5, 6, 3, 1, 0, 0},   /* no padding: the turned convolution pads by 2 */
    {1, 8, 11, 4, 3, 5, 1, 1, 0},  /* 5x5, padding 1: turned, 3 */
    {2, 6, 6, 3, 5, 3, 1, 2, 0},   /* padding r-1: turned, none */
    {2, 28, 20, 64, 64, 3, 1, 1, 0}, /* tensor-core sized */
};

MM_TEST(cuda_conv2d_backward_data_as_forward)
{
    REQUIRE_GPU();
    const char *paths[5][3] = {{NULL, NULL, "legacy"},
                               {"MM_CUDNN_GRAPH", "1", "graph"},
                               {"MM_CONV_NCHW", "1", "nchw"},
                               {"MM_CONV_WINOGRAD", "2", "winograd 2x2"},
                               {"MM_CONV_WINOGRAD", "4", "winograd 4x4"}};
    setenv("MM_CONV_DGRAD_FWD", "1", 1);
    int before = dgrad_fwd_count(cuda_backend(MM_PRECISION_FP32));
    for (int p = 0; p < 5; p++)
        for (size_t i = 0; i < sizeof turn_cfgs / sizeof turn_cfgs[0]; i++)
            for (int chunks = 0; chunks < 1 + (int)(i % 2 == 0); chunks++) {
                conv_cfg cfg = turn_cfgs[i];
                cfg.n += chunks; /* chunks of 2 samples, then 1 */
                cfg.h += p;      /* a shape of its own on each path */
                mm_conv_dims d = conv_dims(&cfg);
                char bound[32], name[80];
                int64_t per = (int64_t)d.h * d.w * d.c, per_y = (int64_t)d.oh * d.ow * d.k;
                snprintf(bound, sizeof bound, "%lld", (long long)(2 * (per > per_y ? per : per_y)));
                if (chunks) setenv("MM_CONV_CHUNK_ELEMS", bound, 1);
                if (paths[p][0]) setenv(paths[p][0], paths[p][1], 1);
                uint64_t seed = 800 + 20 * (uint64_t)p + 2 * i + (uint64_t)chunks;
                for (int acc = 0; acc < 2; acc++) {
                    d.accumulate = acc;
                    snprintf(name, sizeof name, "%s conv bwd data as fwd%s%s cfg %zu", paths[p][2],
                             acc ? " + acc" : "", chunks ? " chunked" : "", i);
                    conv_bwd_data_case(&d, seed + 100 * (uint64_t)acc, name);
                }
                if (paths[p][0]) unsetenv(paths[p][0]);
                unsetenv("MM_CONV_CHUNK_ELEMS");
            }
    unsetenv("MM_CONV_DGRAD_FWD");
    /* every shape above ran so (counted by the data-gradient shapes of one precision) */
    int turned = dgrad_fwd_count(cuda_backend(MM_PRECISION_FP32)) - before;
    printf("    %d data-gradient shapes ran as forward convolutions\n", turned);
    CHECK_MSG(turned >= 55, "%d data-gradient shapes ran as forward convolutions", turned);
}

MM_TEST(cuda_conv2d_backward_filter)
{
    REQUIRE_GPU();
    each_conv_cfg(conv_bwd_filter_case, 0, 0, 300, "conv bwd filter");
}

/* The gradient's first writer (p.conv.overwrite) writes dw over what the buffer holds (non-zero
 * here, so an added gradient fails): cuDNN with beta 0, the GEMM with beta 0, bf16's staged
 * gradient cast instead of added. */
MM_TEST(cuda_conv2d_backward_filter_first_writer)
{
    REQUIRE_GPU();
    each_conv_cfg(conv_bwd_filter_case, 0, 1, 350, "conv bwd filter (first writer)");
}

/* The three directions again on backends in deterministic mode (backend.h: cuDNN's heuristic
 * order among deterministic algorithms, the GEMM for 1x1 stride-1 shapes), which choose other
 * algorithms than the timed search. */
MM_TEST(cuda_conv2d_deterministic)
{
    REQUIRE_GPU();
    tc_deterministic = true;
    for (size_t i = 0; i < sizeof conv_cfgs / sizeof conv_cfgs[0]; i++) {
        mm_conv_dims d = conv_dims(&conv_cfgs[i]);
        char name[64];
        snprintf(name, sizeof name, "deterministic conv fwd cfg %zu", i);
        conv_forward_case(&d, conv_cfgs[i].bias, 700 + i, name);
        snprintf(name, sizeof name, "deterministic conv bwd data cfg %zu", i);
        conv_bwd_data_case(&d, 720 + i, name);
        snprintf(name, sizeof name, "deterministic conv bwd filter cfg %zu", i);
        conv_bwd_filter_case(&d, 740 + i, name);
    }
    tc_deterministic = false;
}

/* 1x1 stride-1 convolutions forced onto the cuBLAS GEMM path (conv_gemm.c) with MM_CONV_GEMM=1,
 * which is read when a shape is first planned: these shapes appear nowhere else in this file, so
 * the cached choices of the tests above do not hide the GEMM. Odd channel counts, a bias, and
 * tensor-core sized ones; the weight gradient accumulates into a non-zero buffer. */
static const conv_cfg gemm_cfgs[] = {
    {1, 5, 7, 24, 40, 1, 1, 0, 1},
    {2, 9, 6, 64, 32, 1, 1, 0, 0},
    {2, 3, 11, 5, 3, 1, 1, 0, 1},
};

/* The three directions of each shape, and the data gradient summed into an earlier one, with
 * environment variable env set to "1" (read when a shape is first planned). */
static void forced_cases(const conv_cfg *cfgs, size_t n, const char *env, const char *label,
                         uint64_t seed)
{
    setenv(env, "1", 1);
    for (size_t i = 0; i < n; i++) {
        mm_conv_dims d = conv_dims(&cfgs[i]);
        char name[64];
        snprintf(name, sizeof name, "%s conv fwd cfg %zu", label, i);
        conv_forward_case(&d, cfgs[i].bias, seed + i, name);
        snprintf(name, sizeof name, "%s conv bwd data cfg %zu", label, i);
        conv_bwd_data_case(&d, seed + 20 + i, name);
        snprintf(name, sizeof name, "%s conv bwd filter cfg %zu", label, i);
        conv_bwd_filter_case(&d, seed + 40 + i, name);
        d.accumulate = 1;
        snprintf(name, sizeof name, "%s conv bwd data + acc cfg %zu", label, i);
        conv_bwd_data_case(&d, seed + 60 + i, name);
    }
    unsetenv(env);
}

#ifdef MM_HAVE_CUDA
/* How the shapes planned so far in precision p run, printed. */
static mm_conv_counts counts_of(mm_precision p)
{
    mm_cuda_ctx *ctx = cuda_backend(p)->ctx;
    mm_conv_counts n = mm_conv_cache_counts(ctx->convs);
    printf("    %s: %d shapes on legacy algorithms, %d on NCHW copies, %d on graph plans, %d as "
           "GEMMs, %d as Winograd (%d F(4x4, 3x3))\n",
           mm_precision_name(p), n.legacy, n.nchw, n.graph, n.gemm, n.wino, n.wino4);
    return n;
}
#endif

MM_TEST(cuda_conv2d_1x1_gemm)
{
    REQUIRE_GPU();
    forced_cases(gemm_cfgs, sizeof gemm_cfgs / sizeof gemm_cfgs[0], "MM_CONV_GEMM", "gemm", 500);
}

/* Convolutions forced onto the plans of cuDNN's graph API (conv_graph.c) with MM_CUDNN_GRAPH=1,
 * read when a shape is first planned: shapes that appear nowhere else in this file, so no cached
 * legacy choice hides the graph. 3x3 with padding and a bias, strided, 7x7, tensor-core sized;
 * the weight gradient accumulates into a non-zero buffer (beta 1 in fp32). */
static const conv_cfg graph_cfgs[] = {
    {2, 11, 6, 5, 7, 3, 1, 1, 1},
    {1, 10, 13, 8, 12, 3, 2, 1, 0},
    {2, 15, 12, 3, 16, 7, 2, 3, 0},
    {2, 20, 16, 32, 64, 3, 1, 1, 0},
};

MM_TEST(cuda_conv2d_graph_api)
{
    REQUIRE_GPU();
    forced_cases(graph_cfgs, sizeof graph_cfgs / sizeof graph_cfgs[0], "MM_CUDNN_GRAPH", "graph",
                 560);
#ifdef MM_HAVE_CUDA
    /* the graph's plans really ran: every precision chose some */
    for (int pi = 0; pi < 3; pi++) {
        mm_conv_counts n = counts_of(precisions[pi]);
        CHECK_MSG(n.graph > 0, "%s: no convolution ran on a graph plan",
                  mm_precision_name(precisions[pi]));
    }
#endif
}

/* Forward convolutions and filter gradients forced onto Winograd F(2x2, 3x3) and F(4x4, 3x3)
 * (conv_wino.h, MM_CONV_WINOGRAD=2 / 4): paddings 0 to 2, output sizes that the tiles divide and
 * that they do not (pixels of the last tiles past the edge must not be written, and every output
 * pixel must: outputs start as NaN), channel counts that take F(2x2, 3x3)'s 4-wide kernels and
 * that do not, a bias, batch 1 and 2; the filter gradient added to a non-zero buffer and written
 * over it (its first writer); once with every tile in one chunk and once in chunks of 7 tiles
 * (MM_CONV_WINO_TILES, the last chunk short: the filter gradient sums the chunks). F(4x4, 3x3)
 * runs in fp32 only (tf32 takes F(2x2, 3x3)), bf16 has none: its cases run on cuDNN. (The data
 * gradients run as Winograd forward convolutions in cuda_conv2d_backward_data_as_forward.) */
static const conv_cfg wino_cfgs[] = {
    {2, 9, 7, 5, 6, 3, 1, 0, 1},     /* no padding: output 7x5; 5 channels in, 6 out */
    {1, 8, 10, 8, 12, 3, 1, 1, 0},   /* "same" padding, even output, 4-wide */
    {2, 5, 6, 4, 3, 3, 1, 2, 1},     /* padding 2: output 7x8 */
    {2, 16, 12, 32, 16, 3, 1, 1, 0}, /* wider */
};

MM_TEST(cuda_conv2d_winograd)
{
    REQUIRE_GPU();
#ifdef MM_HAVE_CUDA
    mm_conv_counts before[2];
    for (int pi = 0; pi < 2; pi++) before[pi] = counts_of(precisions[pi]);
#endif
    for (int m = 2; m <= 4; m += 2)
        for (int chunked = 0; chunked < 2; chunked++) {
            setenv("MM_CONV_WINOGRAD", m == 2 ? "2" : "4", 1);
            if (chunked) setenv("MM_CONV_WINO_TILES", "7", 1);
            for (size_t i = 0; i < sizeof wino_cfgs / sizeof wino_cfgs[0]; i++) {
                conv_cfg cfg = wino_cfgs[i];
                cfg.w += chunked; /* a shape of its own */
                mm_conv_dims d = conv_dims(&cfg);
                char name[64];
                snprintf(name, sizeof name, "winograd %dx%d%s conv fwd cfg %zu", m, m,
                         chunked ? " chunked" : "", i);
                uint64_t seed = 900 + 10 * (uint64_t)(m + chunked) + i;
                conv_forward_case(&d, cfg.bias, seed, name);
                for (int first = 0; first < 2; first++) {
                    d.overwrite = first;
                    snprintf(name, sizeof name, "winograd %dx%d%s conv bwd filter%s cfg %zu", m,
                             m, chunked ? " chunked" : "", first ? " (first writer)" : "", i);
                    conv_bwd_filter_case(&d, seed + 100 + 50 * (uint64_t)first, name);
                }
            }
            unsetenv("MM_CONV_WINO_TILES");
            unsetenv("MM_CONV_WINOGRAD");
        }
#ifdef MM_HAVE_CUDA
    /* every case above ran so (16 forward shapes, 32 filter gradients): in fp32 half of them as
     * F(4x4, 3x3), in tf32 none */
    for (int pi = 0; pi < 2; pi++) {
        mm_conv_counts now = counts_of(precisions[pi]);
        int n = now.wino - before[pi].wino, n4 = now.wino4 - before[pi].wino4;
        CHECK_MSG(n == 48 && n4 == (pi == 0 ? 24 : 0),
                  "%s: %d of 48 shapes ran as Winograd, %d as F(4x4, 3x3)",
                  mm_precision_name(precisions[pi]), n, n4);
    }
#endif
}

MM_TEST(cuda_conv2d_backward_bias)
{
    REQUIRE_GPU();
    for (size_t i = 0; i < sizeof conv_cfgs / sizeof conv_cfgs[0]; i++) {
        mm_conv_dims d = conv_dims(&conv_cfgs[i]);
        tcase tc;
        tc_init(&tc, MM_OP_CONV2D_BWD_BIAS, TOL_REDUCE, 400 + i);
        tc.node.backward = true;
        tc.node.p.conv = d;
        tc_in(&tc, act_in(&tc, -1, 1, SHAPE(d.n, d.oh, d.ow, d.k)));
        tc_out(&tc, grad_out(&tc, SHAPE(d.k)));
        char name[64];
        snprintf(name, sizeof name, "conv bwd bias cfg %zu", i);
        tc_check(&tc, name);
    }
}

/* ---- batch norm ---- */
typedef struct bn_cfg {
    int n, h, w, c;
    float lo, hi; /* input range: an offset mean tests the variance's precision */
} bn_cfg;

/* c divisible by 4 takes the kernels' 4-channel forms (cuda_chan.cuh, the 4-channel sums); 12
 * has 3 channel quads (a grid rounded to a multiple of 3 blocks), and with 5 x 3 rows an odd
 * count of quads (the mask's last byte from one); 24, 6 quads. */
static const bn_cfg bn_cfgs[] = {
    {2, 5, 7, 3, -1, 1},
    {1, 9, 11, 37, -2, 3},
    {2, 64, 48, 64, 5, 7},
    {2, 3, 3, 1, -1, 1},
    {1, 9, 7, 24, -1, 2},
    {1, 5, 3, 12, 3, 4},
};

static void bn_params(tcase *tc, const bn_cfg *b, bool training)
{
    tc->node.p.bn.m = (int64_t)b->n * b->h * b->w;
    tc->node.p.bn.c = b->c;
    tc->node.p.bn.eps = 1e-5f;
    tc->node.p.bn.momentum = 0.1f;
    tc->node.p.bn.training = training;
    tc->training = training;
}

/* join: a residual join done by the batch norm (graph.h mm_graph_fuse_residual): 0 none, 1 the
 * residual added (in[5]; the output over it), 2 added and the ReLU applied. */
static void bn_join(tcase *tc, const bn_cfg *b, int join)
{
    if (join == 0) return;
    tc->node.p.bn.add = true;
    tc->node.p.bn.relu = join == 2;
    tc_in(tc, act_in(tc, -2, 2, SHAPE(b->n, b->h, b->w, b->c)));
    tc->alias_out[0] = 5;
}

static const char *join_name(int join) { return join == 2 ? "+add+relu" : join ? "+add" : ""; }

/* x, gamma, beta and the running statistics of a forward batch norm. */
static void bn_forward_inputs(tcase *tc, const bn_cfg *b)
{
    tc_in(tc, act_in(tc, b->lo, b->hi, SHAPE(b->n, b->h, b->w, b->c)));
    tc_in(tc, f32_in(tc, 0.5f, 1.5f, SHAPE(b->c)));
    tc_in(tc, f32_in(tc, -0.5f, 0.5f, SHAPE(b->c)));
    tc_in(tc, tc_value(tc, MM_VALUE_STATE, MM_F32, false, INIT_RAND, -1, 1, SHAPE(b->c)));
    tc_in(tc, tc_value(tc, MM_VALUE_STATE, MM_F32, false, INIT_RAND, 0.5f, 2, SHAPE(b->c)));
}

MM_TEST(cuda_batchnorm_forward_train)
{
    REQUIRE_GPU();
    for (size_t i = 0; i < sizeof bn_cfgs / sizeof bn_cfgs[0]; i++)
        for (int join = 0; join < 3; join++) {
            const bn_cfg *b = &bn_cfgs[i];
            tcase tc;
            tc_init(&tc, MM_OP_BATCHNORM, TOL_REDUCE, 500 + 3 * i + (uint64_t)join);
            bn_params(&tc, b, true);
            bn_forward_inputs(&tc, b);
            bn_join(&tc, b, join);
            tc_out(&tc, act_out(&tc, SHAPE(b->n, b->h, b->w, b->c)));
            tc_out(&tc, f32_out(&tc, SHAPE(b->c)));
            tc_out(&tc, f32_out(&tc, SHAPE(b->c)));
            char name[64];
            snprintf(name, sizeof name, "bn train%s cfg %zu", join_name(join), i);
            tc_check(&tc, name);
        }
}

MM_TEST(cuda_batchnorm_forward_eval)
{
    REQUIRE_GPU();
    for (size_t i = 0; i < sizeof bn_cfgs / sizeof bn_cfgs[0]; i++)
        for (int join = 0; join < 3; join++) {
            const bn_cfg *b = &bn_cfgs[i];
            tcase tc;
            tc_init(&tc, MM_OP_BATCHNORM, TOL_REDUCE, 600 + 3 * i + (uint64_t)join);
            bn_params(&tc, b, false);
            bn_forward_inputs(&tc, b);
            tc.alias_out[0] = 0;
            bn_join(&tc, b, join);
            tc_out(&tc, act_out(&tc, SHAPE(b->n, b->h, b->w, b->c)));
            char name[64];
            snprintf(name, sizeof name, "bn eval%s cfg %zu", join_name(join), i);
            tc_check(&tc, name);
        }
}

/* An MM_OP_BN_APPLY case: x and the saved statistics of config b, with the ReLU, the residual
 * join (bn_join), y written over x in the in-place runs; the caller adds the outputs. */
static void bn_apply_case(tcase *tc, const bn_cfg *b, bool relu, int join, uint64_t seed)
{
    tc_init(tc, MM_OP_BN_APPLY, TOL_REDUCE, seed);
    tc->node.backward = true;
    bn_params(tc, b, true);
    tc->node.p.bn.relu = relu;
    float mid = 0.5f * (b->lo + b->hi), sd = (b->hi - b->lo) / sqrtf(12.0f);
    tc_in(tc, act_in(tc, b->lo, b->hi, SHAPE(b->n, b->h, b->w, b->c)));
    tc_in(tc, f32_in(tc, 0.5f, 1.5f, SHAPE(b->c)));
    tc_in(tc, f32_in(tc, -0.5f, 0.5f, SHAPE(b->c)));
    tc_in(tc, f32_in(tc, mid - 0.3f, mid + 0.3f, SHAPE(b->c)));
    tc_in(tc, f32_in(tc, 0.8f / sd, 1.2f / sd, SHAPE(b->c)));
    tc->alias_out[0] = 0;
    bn_join(tc, b, join);
}

/* A training output recomputed from saved statistics (recompute.c), with and without the ReLU,
 * with the residual join, in place (over x, or over the residual) too. */
MM_TEST(cuda_batchnorm_apply)
{
    REQUIRE_GPU();
    for (size_t i = 0; i < sizeof bn_cfgs / sizeof bn_cfgs[0]; i++)
        for (int variant = 0; variant < 4; variant++) {
            const bn_cfg *b = &bn_cfgs[i];
            tcase tc;
            int join = variant >= 2 ? variant - 1 : 0; /* 2: +add, 3: +add+relu */
            bn_apply_case(&tc, b, variant == 1, join, 650 + 4 * i + (uint64_t)variant);
            tc_out(&tc, act_out(&tc, SHAPE(b->n, b->h, b->w, b->c)));
            char name[64];
            snprintf(name, sizeof name, "bn apply%s%s cfg %zu", variant == 1 ? "+relu" : "",
                     join_name(join), i);
            tc_check(&tc, name);
        }
}

/* The apply with a ReLU mask folded in (mm_graph_fuse_relu_mask): y as the plain apply (against
 * the CPU, within tolerance), and bits that are exactly the sign of the y the GPU wrote, in place
 * or not (against the CPU's bits they could differ where y is within rounding of 0). */
MM_TEST(cuda_batchnorm_apply_with_relu_mask)
{
    REQUIRE_GPU();
    for (size_t i = 0; i < sizeof bn_cfgs / sizeof bn_cfgs[0]; i++)
        for (int variant = 0; variant < 3; variant++) {
            const bn_cfg *b = &bn_cfgs[i];
            int64_t n = (int64_t)b->n * b->h * b->w * b->c;
            tcase tc;
            /* variant 2: the residual join, +add+relu */
            bn_apply_case(&tc, b, variant != 1, variant == 2 ? 2 : 0,
                          700 + 3 * i + (uint64_t)variant);
            int y = act_out(&tc, SHAPE(b->n, b->h, b->w, b->c));
            int bits = tc_value(&tc, MM_VALUE_ACT, MM_U8, false, INIT_NAN, 0, 0,
                                SHAPE((n + 7) / 8));
            tc_out(&tc, y);
            tc_out(&tc, bits);
            for (int pi = 0; pi < 3; pi++)
                for (int aliased = 0; aliased < 2; aliased++) {
                    mm_precision p = precisions[pi];
                    bool bf16 = p == MM_PRECISION_BF16, clob_cpu[MAXV], clob_gpu[MAXV];
                    float **init = tc_make_init(&tc, bf16);
                    float **want = tc_run(&tc, cpu_backend(), init, false, false, clob_cpu);
                    float **got = tc_run(&tc, cuda_backend(p), init, bf16, aliased, clob_gpu);
                    char what[96];
                    snprintf(what, sizeof what, "bn apply%s with mask cfg %zu %s%s",
                             variant == 1 ? "" : variant == 2 ? "+add+relu" : "+relu", i,
                             mm_precision_name(p), aliased ? " in place" : "");
                    double tol = tolerance(TOL_REDUCE, p, bf16), scale = 0;
                    for (int64_t j = 0; j < n; j++)
                        if (fabs(want[y][j]) > scale) scale = fabs(want[y][j]);
                    CHECK_ARRAYS(what, got[y], want[y], n, tol * scale, tol);
                    int64_t wrong = 0;
                    for (int64_t j = 0; j < n; j++) {
                        unsigned bit = ((unsigned)got[bits][j / 8] >> (j % 8)) & 1u;
                        wrong += bit != (got[y][j] > 0.0f ? 1u : 0u);
                    }
                    for (int64_t j = n; j < 8 * ((n + 7) / 8); j++) /* the last byte's spare bits */
                        wrong += (((unsigned)got[bits][j / 8] >> (j % 8)) & 1u) != 0;
                    CHECK_MSG(wrong == 0, "%s: %lld bits differ from the sign of y", what,
                              (long long)wrong);
                    free_arrays(init, tc.nv);
                    free_arrays(want, tc.nv);
                    free_arrays(got, tc.nv);
                }
        }
}

/* which: 0 all outputs, 1 no dgamma/dbeta (frozen), 2 no dx (nothing upstream).
 * relu: the backward of a following ReLU folded in (graph.h fuse_relu_bwd): 0 none, 1 reading
 * the ReLU's output, 2 reading its sign as bits. */
static void bn_backward_case(const bn_cfg *b, int which, int relu, uint64_t seed)
{
    tcase tc;
    tc_init(&tc, MM_OP_BATCHNORM_BWD, TOL_REDUCE, seed);
    tc.node.backward = true;
    bn_params(&tc, b, true);
    tc.node.p.bn.relu_bwd = relu > 0;
    tc.node.p.bn.relu_bits = relu == 2;
    int64_t m = (int64_t)b->n * b->h * b->w;
    tc_in(&tc, act_in(&tc, -1, 1, SHAPE(b->n, b->h, b->w, b->c)));
    int x = act_in(&tc, b->lo, b->hi, SHAPE(b->n, b->h, b->w, b->c));
    tc_in(&tc, x);
    tc_in(&tc, f32_in(&tc, 0.5f, 1.5f, SHAPE(b->c)));
    /* save_mean / save_invstd near the batch's own: mean of the range, 1/std of a uniform. */
    float mid = 0.5f * (b->lo + b->hi), sd = (b->hi - b->lo) / sqrtf(12.0f);
    tc_in(&tc, f32_in(&tc, mid - 0.05f, mid + 0.05f, SHAPE(b->c)));
    tc_in(&tc, f32_in(&tc, 0.9f / sd, 1.1f / sd, SHAPE(b->c)));
    if (relu == 1) tc_in(&tc, act_in(&tc, -1, 1, SHAPE(b->n, b->h, b->w, b->c)));
    if (relu == 2)
        tc_in(&tc, tc_value(&tc, MM_VALUE_ACT, MM_U8, false, INIT_LABELS, 0, 256,
                            SHAPE((m * b->c + 7) / 8)));
    if (which == 2) tc.node.out[tc.node.n_out++] = -1;
    else tc_out(&tc, act_out(&tc, SHAPE(b->n, b->h, b->w, b->c)));
    if (which == 1) {
        tc.node.out[tc.node.n_out++] = -1;
        tc.node.out[tc.node.n_out++] = -1;
    } else {
        tc_out(&tc, grad_out(&tc, SHAPE(b->c)));
        tc_out(&tc, grad_out(&tc, SHAPE(b->c)));
    }
    if (which != 2) tc.alias_out[0] = 0; /* dx may alias dy */
    char name[64];
    snprintf(name, sizeof name, "bn bwd (variant %d%s) %dx%dx%dx%d", which,
             relu == 1 ? ", relu" : relu == 2 ? ", relu bits" : "", b->n, b->h, b->w, b->c);
    tc_check(&tc, name);
}

MM_TEST(cuda_batchnorm_backward)
{
    REQUIRE_GPU();
    for (size_t i = 0; i < sizeof bn_cfgs / sizeof bn_cfgs[0]; i++)
        for (int which = 0; which < 3; which++)
            for (int relu = 0; relu < 3; relu++)
                bn_backward_case(&bn_cfgs[i], which, relu,
                                 700 + 9 * i + 3 * (uint64_t)which + (uint64_t)relu);
}

/* ---- CUDA graph capture: conv + bias then ReLU captured once, replayed on new input ---- */
MM_TEST(cuda_graph_capture_replay)
{
    REQUIRE_GPU();
    for (int pi = 0; pi < 3; pi++) {
        mm_precision p = precisions[pi];
        mm_backend *be = cuda_backend(p);
        CHECK(be->begin_capture && be->end_capture && be->replay);
        conv_cfg cc = {2, 12, 10, 8, 16, 3, 2, 1, 1};
        mm_conv_dims d = conv_dims(&cc);
        mm_dtype at = p == MM_PRECISION_BF16 ? MM_BF16 : MM_F32;
        mm_value vals[5];
        memset(vals, 0, sizeof vals);
        int64_t shapes[5][4] = {{d.n, d.h, d.w, d.c}, {d.k, d.r, d.s, d.c}, {d.k, 0, 0, 0},
                                {d.n, d.oh, d.ow, d.k}, {d.n, d.oh, d.ow, d.k}};
        int ndims[5] = {4, 4, 1, 4, 4};
        mm_dtype dts[5] = {at, MM_F32, MM_F32, at, at};
        void *dev[5];
        for (int i = 0; i < 5; i++) {
            vals[i].dtype = dts[i];
            vals[i].ndim = ndims[i];
            memcpy(vals[i].shape, shapes[i], sizeof shapes[i]);
            dev[i] = be->alloc(be, (size_t)value_numel(&vals[i]) * mm_dtype_size(dts[i]));
        }
        mm_node nodes[2];
        memset(nodes, 0, sizeof nodes);
        nodes[0].op = MM_OP_CONV2D, nodes[0].n_in = 3, nodes[0].n_out = 1;
        nodes[0].in[0] = 0, nodes[0].in[1] = 1, nodes[0].in[2] = 2, nodes[0].out[0] = 3;
        nodes[0].p.conv = d;
        nodes[1].op = MM_OP_RELU, nodes[1].n_in = 1, nodes[1].n_out = 1;
        nodes[1].in[0] = 3, nodes[1].out[0] = 4;
        nodes[1].p.elementwise.n = value_numel(&vals[4]);
        mm_graph g;
        memset(&g, 0, sizeof g);
        g.values = vals, g.n_values = 5, g.nodes = nodes, g.n_nodes = 2, g.training = true;
        size_t wsb = be->workspace_bytes(be, &g, &nodes[0]);
        CHECK_EQ_INT(be->workspace_bytes(be, &g, &nodes[1]), 0);
        void *ws = wsb ? be->alloc(be, wsb) : NULL;
        mm_tensor v[5];
        for (int i = 0; i < 5; i++) v[i] = mm_tensor_view(dev[i], dts[i], ndims[i], shapes[i]);

        /* Host data: weights and bias once, two different inputs. */
        int64_t nx = value_numel(&vals[0]), nw = value_numel(&vals[1]), ny = value_numel(&vals[4]);
        float *hx = mm_xmalloc((size_t)nx * 4), *hw = mm_xmalloc((size_t)nw * 4), hb[16];
        mm_test_fill_uniform(hw, nw, 5, -0.5f, 0.5f);
        mm_test_fill_uniform(hb, d.k, 6, -1, 1);
        be->copy_to_device(be, dev[1], hw, (size_t)nw * 4);
        be->copy_to_device(be, dev[2], hb, (size_t)d.k * 4);

        /* One eager run first, as a session does before capturing (kernels loaded, libraries
         * initialised), then the capture. */
        be->run_node(be, &g, &nodes[0], &v[0], &v[3], ws, wsb);
        be->run_node(be, &g, &nodes[1], &v[3], &v[4], NULL, 0);
        be->sync(be);
        CHECK_EQ_INT(be->begin_capture(be), MM_OK);
        be->run_node(be, &g, &nodes[0], &v[0], &v[3], ws, wsb);
        be->run_node(be, &g, &nodes[1], &v[3], &v[4], NULL, 0);
        mm_status s = be->end_capture(be);
        CHECK_MSG(s == MM_OK, "end_capture: %s", mm_last_error());

        float *direct = mm_xmalloc((size_t)ny * 4), *replayed = mm_xmalloc((size_t)ny * 4);
        void *raw = mm_xmalloc((size_t)ny * 4);
        for (int round = 0; round < 2 && s == MM_OK; round++) {
            mm_test_fill_uniform(hx, nx, 10 + (uint64_t)round, -1, 1);
            void *px = pack(hx, nx, at);
            be->copy_to_device(be, dev[0], px, (size_t)nx * mm_dtype_size(at));
            free(px);
            be->replay(be);
            be->sync(be);
            be->copy_to_host(be, raw, dev[4], (size_t)ny * mm_dtype_size(at));
            unpack(replayed, raw, ny, at);
            be->zero(be, dev[4], (size_t)ny * mm_dtype_size(at));
            be->run_node(be, &g, &nodes[0], &v[0], &v[3], ws, wsb);
            be->run_node(be, &g, &nodes[1], &v[3], &v[4], NULL, 0);
            be->copy_to_host(be, raw, dev[4], (size_t)ny * mm_dtype_size(at));
            unpack(direct, raw, ny, at);
            char what[64];
            snprintf(what, sizeof what, "replay round %d %s", round, mm_precision_name(p));
            /* The same kernels on the same data: equal up to an algorithm that is not bitwise
             * deterministic (a bf16 output may then round the other way). */
            double tol = p == MM_PRECISION_BF16 ? 1e-2 : 1e-5;
            CHECK_ARRAYS(what, replayed, direct, ny, tol, tol);
        }
        free(raw);
        free(direct);
        free(replayed);
        free(hx);
        free(hw);
        if (ws) be->free(be, ws);
        for (int i = 0; i < 5; i++) be->free(be, dev[i]);
    }
}

/* Convolutions forced onto NCHW copies of their operands (conv_nchw.h) with MM_CONV_NCHW=1, read
 * when a shape is first planned: shapes that appear nowhere else in this file. The copies apply
 * to fp32 data (the fp32 and tf32 precisions; bf16 stays in NHWC) and to kernels larger than
 * 1x1: 3x3 with padding and a bias, strided, 7x7 with padding, a 5x5 with more channels, and a
 * 1x1 that must stay off them. The transposes back add to a non-zero weight gradient and to the
 * earlier data gradient in the summing case. */
static const conv_cfg nchw_cfgs[] = {
    {2, 9, 7, 5, 6, 3, 1, 1, 1},
    {1, 11, 14, 7, 9, 3, 2, 1, 0},
    {2, 14, 11, 3, 10, 7, 2, 3, 1},
    {2, 12, 10, 33, 40, 5, 1, 2, 0},
    {2, 5, 6, 9, 7, 1, 1, 0, 0},
};

MM_TEST(cuda_conv2d_nchw_copies)
{
    REQUIRE_GPU();
    forced_cases(nchw_cfgs, sizeof nchw_cfgs / sizeof nchw_cfgs[0], "MM_CONV_NCHW", "nchw", 620);
#ifdef MM_HAVE_CUDA
    for (int pi = 0; pi < 3; pi++) {
        mm_conv_counts n = counts_of(precisions[pi]);
        /* bf16 data never goes to NCHW copies (a shape cuDNN has no bf16 algorithm for runs in
         * fp32 and may: on a card, odd channel counts can; the emulated cuDNN has them all) */
        if (precisions[pi] == MM_PRECISION_BF16) {
            if (mm_cuda_emulated())
                CHECK_MSG(n.nchw == 0, "bf16: %d shapes ran on NCHW copies", n.nchw);
        } else /* 4 shapes x 3 directions, the data gradient both plain and summing */
            CHECK_MSG(n.nchw >= 16, "%s: only %d shapes ran on NCHW copies",
                      mm_precision_name(precisions[pi]), n.nchw);
    }
#endif
}

/* A convolution over more elements than cuDNN takes (2^31) runs on chunks of samples
 * (conv_cudnn.c); MM_CONV_CHUNK_ELEMS lowers that bound so small shapes show it: 3 samples in
 * chunks of 2 and 1, on each path (legacy algorithms, graph plans, the 1x1 GEMM, NCHW copies),
 * in the three directions with the summing data gradient, the bias, and the weight gradient
 * accumulating over the chunks, against the CPU. Each path gets shapes of its own (the widths
 * differ), so no cached choice hides it. */
static const conv_cfg chunk_cfgs[] = {
    {3, 10, 9, 6, 5, 3, 1, 1, 1},
    {3, 7, 12, 4, 9, 3, 2, 1, 0},
    {3, 6, 5, 12, 10, 1, 1, 0, 1},
};

MM_TEST(cuda_conv2d_in_chunks_of_samples)
{
    REQUIRE_GPU();
    const char *paths[4][2] = {
        {NULL, "legacy"}, {"MM_CUDNN_GRAPH", "graph"}, {"MM_CONV_GEMM", "gemm"},
        {"MM_CONV_NCHW", "nchw"}};
    for (int p = 0; p < 4; p++)
        for (size_t i = 0; i < sizeof chunk_cfgs / sizeof chunk_cfgs[0]; i++) {
            conv_cfg cfg = chunk_cfgs[i];
            cfg.w += 2 * p;
            mm_conv_dims d = conv_dims(&cfg);
            int64_t per = (int64_t)d.h * d.w * d.c, per_y = (int64_t)d.oh * d.ow * d.k;
            char bound[32], name[64];
            snprintf(bound, sizeof bound, "%lld", (long long)(2 * (per > per_y ? per : per_y)));
            setenv("MM_CONV_CHUNK_ELEMS", bound, 1); /* chunks of 2 samples, then 1 */
            if (paths[p][0]) setenv(paths[p][0], "1", 1);
            uint64_t seed = 700 + 10 * (uint64_t)p + i;
            snprintf(name, sizeof name, "chunked %s conv fwd cfg %zu", paths[p][1], i);
            conv_forward_case(&d, cfg.bias, seed, name);
            snprintf(name, sizeof name, "chunked %s conv bwd data cfg %zu", paths[p][1], i);
            conv_bwd_data_case(&d, seed + 100, name);
            snprintf(name, sizeof name, "chunked %s conv bwd filter cfg %zu", paths[p][1], i);
            conv_bwd_filter_case(&d, seed + 200, name);
            d.overwrite = 1; /* its chunks add into the gradient zeroed first */
            snprintf(name, sizeof name, "chunked %s conv bwd filter (first) cfg %zu", paths[p][1], i);
            conv_bwd_filter_case(&d, seed + 400, name);
            d.overwrite = 0;
            d.accumulate = 1;
            snprintf(name, sizeof name, "chunked %s conv bwd data + acc cfg %zu", paths[p][1], i);
            conv_bwd_data_case(&d, seed + 300, name);
            if (paths[p][0]) unsetenv(paths[p][0]);
            unsetenv("MM_CONV_CHUNK_ELEMS");
        }
}
