/* The CUDA op table, part 2: element-wise ops, dropout, pooling (max pooling's recorded argmax
 * and its backward with and without the folded ReLU), dense, the weighted softmax cross-entropy,
 * flips, the fused Adam/SGD updates over flat buffers, and the batched transpose behind the
 * NCHW copies of convolutions. Each case runs on the CPU backend and
 * on the CUDA backend at fp32, tf32 and bf16 and is compared (tests/op_case.h).
 *
 * Without a GPU every test prints SKIPPED (no GPU); test_ops_cuda_misc_emu runs them on the
 * emulated GPU (tests/cuemu). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/philox.h"
#include "tests/op_case.h"
#ifdef MM_HAVE_CUDA
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_kernels.h"
#endif

/* ---- element-wise ---- */
static const int64_t ew_sizes[] = {1, 7, 1001, 4096, 3 * 5 * 7 * 11};

MM_TEST(cuda_relu)
{
    REQUIRE_GPU();
    for (size_t i = 0; i < sizeof ew_sizes / sizeof ew_sizes[0]; i++) {
        int64_t n = ew_sizes[i];
        tcase tc;
        tc_init(&tc, MM_OP_RELU, TOL_EXACT, 800 + i);
        tc.node.p.elementwise.n = n;
        tc_in(&tc, act_in(&tc, -1, 1, SHAPE(n)));
        tc_out(&tc, act_out(&tc, SHAPE(n)));
        tc.alias_out[0] = 0;
        tc_check(&tc, "relu");

        tc_init(&tc, MM_OP_RELU_BWD, TOL_EXACT, 850 + i);
        tc.node.backward = true;
        tc.node.p.elementwise.n = n;
        tc_in(&tc, act_in(&tc, -1, 1, SHAPE(n)));
        tc_in(&tc, act_in(&tc, -1, 1, SHAPE(n))); /* y: only its sign matters */
        tc_out(&tc, act_out(&tc, SHAPE(n)));
        tc.alias_out[0] = 0;
        tc_check(&tc, "relu bwd");

        /* y's sign as bits (runtime/relu_mask.c), then the backward from them; sizes not a
         * multiple of 8 leave a partial last byte */
        tc_init(&tc, MM_OP_RELU_MASK, TOL_EXACT, 870 + i);
        tc.node.backward = true;
        tc.node.p.elementwise.n = n;
        tc_in(&tc, tc_value(&tc, MM_VALUE_ACT, MM_F32, true, INIT_TIES, -1, 1, SHAPE(n)));
        tc_out(&tc, tc_value(&tc, MM_VALUE_ACT, MM_U8, false, INIT_NAN, 0, 0, SHAPE((n + 7) / 8)));
        tc_check(&tc, "relu mask");

        tc_init(&tc, MM_OP_RELU_BWD, TOL_EXACT, 880 + i);
        tc.node.backward = true;
        tc.node.p.elementwise.n = n;
        tc.node.p.elementwise.bits = true;
        tc_in(&tc, act_in(&tc, -1, 1, SHAPE(n)));
        tc_in(&tc, tc_value(&tc, MM_VALUE_ACT, MM_U8, false, INIT_LABELS, 0, 256,
                            SHAPE((n + 7) / 8)));
        tc_out(&tc, act_out(&tc, SHAPE(n)));
        tc.alias_out[0] = 0;
        tc_check(&tc, "relu bwd from bits");
    }
}

/* A ReLU backward that also takes a convolution's bias gradient (graph.h
 * mm_graph_fuse_bias_grad): dx from y or from its bits, and db += the column sums of dx, which
 * starts non-zero; dx in place over dy. Odd channel counts, rows not a multiple of a slice. */
MM_TEST(cuda_relu_backward_with_bias_gradient)
{
    REQUIRE_GPU();
    const int64_t shapes[3][2] = {{37, 19}, {4099, 64}, {1000, 3}};
    for (int i = 0; i < 3; i++)
        for (int bits = 0; bits < 2; bits++) {
            int64_t m = shapes[i][0], c = shapes[i][1], n = m * c;
            tcase tc;
            tc_init(&tc, MM_OP_RELU_BWD, TOL_REDUCE, 890 + 2 * (uint64_t)i + (uint64_t)bits);
            tc.node.backward = true;
            tc.node.p.elementwise.n = n;
            tc.node.p.elementwise.bits = bits;
            tc.node.p.elementwise.colsum_c = (int)c;
            tc_in(&tc, act_in(&tc, -1, 1, SHAPE(m, c)));
            if (bits)
                tc_in(&tc, tc_value(&tc, MM_VALUE_ACT, MM_U8, false, INIT_LABELS, 0, 256,
                                    SHAPE((n + 7) / 8)));
            else
                tc_in(&tc, act_in(&tc, -1, 1, SHAPE(m, c))); /* y: only its sign matters */
            tc_out(&tc, act_out(&tc, SHAPE(m, c)));
            tc_out(&tc, grad_out(&tc, SHAPE(c)));
            tc.alias_out[0] = 0;
            char name[64];
            snprintf(name, sizeof name, "relu bwd%s + bias grad %lldx%lld", bits ? " from bits" : "",
                     (long long)m, (long long)c);
            tc_check(&tc, name);
        }
}

MM_TEST(cuda_add)
{
    REQUIRE_GPU();
    for (size_t i = 0; i < sizeof ew_sizes / sizeof ew_sizes[0]; i++) {
        int64_t n = ew_sizes[i];
        tcase tc;
        tc_init(&tc, MM_OP_ADD, TOL_EXACT, 900 + i);
        tc.node.p.elementwise.n = n;
        tc_in(&tc, act_in(&tc, -1, 1, SHAPE(n)));
        tc_in(&tc, act_in(&tc, -1, 1, SHAPE(n)));
        tc_out(&tc, act_out(&tc, SHAPE(n)));
        tc.alias_out[0] = (int)(i % 2); /* in place into a or b */
        tc_check(&tc, "add");
    }
}

MM_TEST(cuda_dropout)
{
    REQUIRE_GPU();
    const float ps[] = {0.0f, 0.3f, 0.5f};
    for (size_t i = 0; i < sizeof ew_sizes / sizeof ew_sizes[0]; i++) {
        int64_t n = ew_sizes[i];
        float p = ps[i % 3];
        tcase tc;
        tc_init(&tc, MM_OP_DROPOUT, TOL_EXACT, 1000 + i);
        tc.node.p.dropout.n = n;
        tc.node.p.dropout.p = p;
        tc.node.p.dropout.seed = 12345 + i;
        tc_in(&tc, act_in(&tc, -1, 1, SHAPE(n)));
        tc_out(&tc, act_out(&tc, SHAPE(n)));
        tc_out(&tc, tc_value(&tc, MM_VALUE_ACT, MM_U8, false, INIT_NAN, 0, 0, SHAPE(n)));
        tc.alias_out[0] = 0;
        tc_check(&tc, "dropout");

        tc_init(&tc, MM_OP_DROPOUT_BWD, TOL_EXACT, 1050 + i);
        tc.node.backward = true;
        tc.node.p.dropout.n = n;
        tc.node.p.dropout.p = p;
        tc.node.p.dropout.seed = 12345 + i;
        tc_in(&tc, act_in(&tc, -1, 1, SHAPE(n)));
        tc_in(&tc, tc_value(&tc, MM_VALUE_ACT, MM_U8, false, INIT_LABELS, 0, 2, SHAPE(n)));
        tc_out(&tc, act_out(&tc, SHAPE(n)));
        tc.alias_out[0] = 0;
        tc_check(&tc, "dropout bwd");
    }
}

/* The mask really is Philox's, element for element (not only the same on both backends). */
MM_TEST(cuda_dropout_mask_is_philox)
{
    REQUIRE_GPU();
    mm_backend *be = cuda_backend(MM_PRECISION_FP32);
    int64_t n = 4099;
    float p = 0.25f;
    uint64_t seed = 99;
    float *x = mm_xmalloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) x[i] = 1.0f;
    void *dx = be->alloc(be, (size_t)n * 4), *dy = be->alloc(be, (size_t)n * 4);
    void *dm = be->alloc(be, (size_t)n);
    be->copy_to_device(be, dx, x, (size_t)n * 4);
    int64_t shape[1] = {n};
    mm_value vals[3];
    memset(vals, 0, sizeof vals);
    for (int i = 0; i < 3; i++) {
        vals[i].dtype = i == 2 ? MM_U8 : MM_F32;
        vals[i].ndim = 1;
        vals[i].shape[0] = n;
    }
    mm_node node;
    memset(&node, 0, sizeof node);
    node.op = MM_OP_DROPOUT;
    node.n_in = 1, node.n_out = 2;
    node.in[0] = 0, node.out[0] = 1, node.out[1] = 2;
    node.p.dropout.n = n, node.p.dropout.p = p, node.p.dropout.seed = seed;
    mm_graph g;
    memset(&g, 0, sizeof g);
    g.values = vals, g.n_values = 3, g.nodes = &node, g.n_nodes = 1, g.training = true;
    mm_tensor ins[1] = {mm_tensor_view(dx, MM_F32, 1, shape)};
    mm_tensor outs[2] = {mm_tensor_view(dy, MM_F32, 1, shape), mm_tensor_view(dm, MM_U8, 1, shape)};
    CHECK_EQ_INT(be->workspace_bytes(be, &g, &node), 0);
    be->run_node(be, &g, &node, ins, outs, NULL, 0);
    uint8_t *mask = mm_xmalloc((size_t)n);
    float *y = mm_xmalloc((size_t)n * sizeof(float));
    be->copy_to_host(be, mask, dm, (size_t)n);
    be->copy_to_host(be, y, dy, (size_t)n * 4);
    int64_t bad = 0, kept = 0;
    for (int64_t i = 0; i < n; i++) {
        int keep = mm_philox_uniform(seed, (uint64_t)i) >= p;
        kept += keep;
        bad += mask[i] != keep || y[i] != (keep ? 1.0f / (1.0f - p) : 0.0f);
    }
    CHECK_EQ_INT(bad, 0);
    CHECK(kept > n / 2 && kept < n); /* about 3/4 kept */
    be->free(be, dx);
    be->free(be, dy);
    be->free(be, dm);
    free(x);
    free(mask);
    free(y);
}

/* ---- pooling ---- */
typedef struct pool_cfg {
    int n, h, w, c, k, stride, pad, include_pad;
} pool_cfg;

static const pool_cfg pool_cfgs[] = {
    {2, 9, 7, 3, 3, 2, 1, 1},   /* ResNet's 3x3/2 pad 1: overlapping windows */
    {1, 8, 10, 5, 2, 2, 0, 1},  /* VGG's 2x2/2 */
    {2, 7, 7, 4, 3, 2, 1, 0},   /* average without the padding */
    {1, 11, 6, 2, 3, 1, 1, 1},  /* stride 1 */
    {2, 5, 9, 33, 2, 1, 0, 0},  /* many channels, stride 1 */
};

static mm_pool_dims pool_dims(const pool_cfg *c)
{
    mm_pool_dims d;
    memset(&d, 0, sizeof d);
    d.n = c->n, d.h = c->h, d.w = c->w, d.c = c->c, d.kh = d.kw = c->k;
    d.stride_h = d.stride_w = c->stride;
    d.pad_h = d.pad_w = c->pad;
    d.count_include_pad = c->include_pad;
    MM_ASSERT(mm_pool_dims_finish(&d));
    return d;
}

/* One pooling node. A forward max pool also records its argmax (u8 taps); a max-pool backward
 * reads random valid taps, and with d->relu_mask the pool's output y (initialised per `init`,
 * zeros and negatives included, so the mask matters); other pools' forward input is `init`. */
static void pool_case(mm_op op, const mm_pool_dims *d, bool backward, init_kind init,
                      uint64_t seed, const char *name)
{
    tcase tc;
    tc_init(&tc, op, TOL_REDUCE, seed);
    tc.node.p.pool = *d;
    tc.node.backward = backward;
    const bool max = op == MM_OP_MAXPOOL || op == MM_OP_MAXPOOL_BWD;
    if (!backward) {
        tc_in(&tc, tc_value(&tc, MM_VALUE_ACT, MM_F32, true, init, -1, 1,
                            SHAPE(d->n, d->h, d->w, d->c)));
        tc_out(&tc, act_out(&tc, SHAPE(d->n, d->oh, d->ow, d->c)));
        if (max)
            tc_out(&tc, tc_value(&tc, MM_VALUE_ACT, MM_U8, false, INIT_NAN, 0, 0,
                                 SHAPE(d->n, d->oh, d->ow, d->c)));
    } else {
        tc_in(&tc, act_in(&tc, -1, 1, SHAPE(d->n, d->oh, d->ow, d->c)));
        if (max) {
            tc_in(&tc, tc_value(&tc, MM_VALUE_ACT, MM_U8, false, INIT_TAPS, 0, 0,
                                SHAPE(d->n, d->oh, d->ow, d->c)));
            if (d->relu_mask)
                tc_in(&tc, tc_value(&tc, MM_VALUE_ACT, MM_F32, true, init, -1, 1,
                                    SHAPE(d->n, d->oh, d->ow, d->c)));
        }
        tc_out(&tc, act_out(&tc, SHAPE(d->n, d->h, d->w, d->c)));
    }
    tc_check(&tc, name);
}

/* The max-pool cases of one window configuration: the forward on random values and on ties
 * (argmax included), the backward from recorded taps, alone and with the ReLU folded in. */
static void maxpool_cases(const mm_pool_dims *d, uint64_t seed, const char *what)
{
    char name[96];
    snprintf(name, sizeof name, "maxpool %s", what);
    pool_case(MM_OP_MAXPOOL, d, false, INIT_RAND, seed, name);
    snprintf(name, sizeof name, "maxpool ties %s", what);
    pool_case(MM_OP_MAXPOOL, d, false, INIT_TIES, seed + 1, name);
    snprintf(name, sizeof name, "maxpool bwd %s", what);
    pool_case(MM_OP_MAXPOOL_BWD, d, true, INIT_RAND, seed + 2, name);
    mm_pool_dims m = *d;
    m.relu_mask = 1;
    snprintf(name, sizeof name, "maxpool bwd relu-masked %s", what);
    pool_case(MM_OP_MAXPOOL_BWD, &m, true, INIT_TIES, seed + 3, name);
}

/* Max pooling's own paths (pool.cu): channel counts divisible by 8 and by 4 take the 16-byte
 * vector kernels, the others (pool_cfgs above) the scalar ones; windows that do not overlap take
 * the cell backward (with pixels past the last window, padding, and gaps when k < stride), the
 * overlapping ones the tiled backward (several tiles, partial tiles, channel chunks with a
 * remainder, and a 7x7 window whose tile must shrink to fit shared memory). */
static const pool_cfg maxpool_cfgs[] = {
    {2, 37, 23, 64, 3, 2, 1, 1},  /* ResNet's 3x3/2 pad 1: 8-wide, 3x2 tiles, partial */
    {1, 20, 18, 12, 3, 2, 1, 1},  /* 4-wide */
    {2, 17, 35, 16, 3, 1, 1, 1},  /* stride 1: three covering rows per pixel */
    {1, 9, 7, 520, 3, 2, 1, 1},   /* 65 vectors: chunks of 8 and a remainder of 1 */
    {1, 20, 19, 64, 7, 1, 3, 1},  /* 7x7/1: the tile shrinks */
    {2, 19, 21, 64, 2, 2, 0, 1},  /* VGG's 2x2/2, 8-wide, odd sizes: last row and column unused */
    {1, 12, 10, 24, 2, 2, 1, 1},  /* 2x2/2 pad 1 */
    {2, 9, 11, 8, 1, 2, 0, 1},    /* 1x1/2: pixels between windows */
    {1, 10, 11, 4, 3, 3, 0, 1},   /* 3x3/3, 4-wide */
};

MM_TEST(cuda_maxpool)
{
    REQUIRE_GPU();
    for (size_t i = 0; i < sizeof pool_cfgs / sizeof pool_cfgs[0]; i++) {
        mm_pool_dims d = pool_dims(&pool_cfgs[i]);
        char what[32];
        snprintf(what, sizeof what, "scalar cfg %zu", i);
        maxpool_cases(&d, 1100 + 10 * i, what);
    }
}

MM_TEST(cuda_maxpool_vector)
{
    REQUIRE_GPU();
    for (size_t i = 0; i < sizeof maxpool_cfgs / sizeof maxpool_cfgs[0]; i++) {
        mm_pool_dims d = pool_dims(&maxpool_cfgs[i]);
        char what[32];
        snprintf(what, sizeof what, "cfg %zu", i);
        maxpool_cases(&d, 1400 + 10 * i, what);
    }
}

/* NaN: the forward returns it and records the window's last NaN as the maximum (the CPU's and
 * PyTorch's rule); a NaN pool output stops the gradient of the folded ReLU (NaN > 0 is false),
 * on the scalar and the vector paths. */
MM_TEST(cuda_maxpool_nan)
{
    REQUIRE_GPU();
    const pool_cfg cfgs[] = {pool_cfgs[0], pool_cfgs[1], maxpool_cfgs[0], maxpool_cfgs[5]};
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) {
        mm_pool_dims d = pool_dims(&cfgs[i]);
        pool_case(MM_OP_MAXPOOL, &d, false, INIT_NANS, 1460 + i, "maxpool nan");
        d.relu_mask = 1;
        pool_case(MM_OP_MAXPOOL_BWD, &d, true, INIT_NANS, 1480 + i, "maxpool bwd relu nan");
    }
}

MM_TEST(cuda_avgpool)
{
    REQUIRE_GPU();
    for (size_t i = 0; i < sizeof pool_cfgs / sizeof pool_cfgs[0]; i++) {
        mm_pool_dims d = pool_dims(&pool_cfgs[i]);
        pool_case(MM_OP_AVGPOOL, &d, false, INIT_RAND, 1200 + i, "avgpool");
        pool_case(MM_OP_AVGPOOL_BWD, &d, true, INIT_RAND, 1220 + i, "avgpool bwd");
    }
}

MM_TEST(cuda_adaptive_avgpool)
{
    REQUIRE_GPU();
    const int cfg[][6] = {{2, 7, 5, 3, 3, 2}, {1, 13, 10, 4, 4, 4}, {2, 9, 7, 8, 1, 1},
                          {1, 6, 6, 2, 6, 6}, {2, 5, 11, 5, 7, 3}};
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
        mm_pool_dims d;
        memset(&d, 0, sizeof d);
        d.n = cfg[i][0], d.h = cfg[i][1], d.w = cfg[i][2], d.c = cfg[i][3];
        d.oh = cfg[i][4], d.ow = cfg[i][5];
        pool_case(MM_OP_ADAPTIVE_AVGPOOL, &d, false, INIT_RAND, 1300 + i, "adaptive avgpool");
        pool_case(MM_OP_ADAPTIVE_AVGPOOL_BWD, &d, true, INIT_RAND, 1320 + i,
                  "adaptive avgpool bwd");
    }
}

MM_TEST(cuda_global_avgpool)
{
    REQUIRE_GPU();
    const int cfg[][4] = {{2, 7, 5, 37}, {1, 1, 1, 8}, {2, 36, 28, 64}};
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
        int n = cfg[i][0], h = cfg[i][1], w = cfg[i][2], c = cfg[i][3];
        tcase tc;
        tc_init(&tc, MM_OP_GLOBAL_AVGPOOL, TOL_REDUCE, 1400 + i);
        tc.node.p.gap.n = n, tc.node.p.gap.hw = (int64_t)h * w, tc.node.p.gap.c = c;
        tc_in(&tc, act_in(&tc, -1, 1, SHAPE(n, h, w, c)));
        tc_out(&tc, f32_out(&tc, SHAPE(n, c))); /* fp32 from here on in every precision */
        tc_check(&tc, "global avgpool");

        tc_init(&tc, MM_OP_GLOBAL_AVGPOOL_BWD, TOL_REDUCE, 1420 + i);
        tc.node.backward = true;
        tc.node.p.gap.n = n, tc.node.p.gap.hw = (int64_t)h * w, tc.node.p.gap.c = c;
        tc_in(&tc, f32_in(&tc, -1, 1, SHAPE(n, c)));
        tc_out(&tc, act_out(&tc, SHAPE(n, h, w, c)));
        tc_check(&tc, "global avgpool bwd");
    }
}

/* ---- dense ---- */
MM_TEST(cuda_dense)
{
    REQUIRE_GPU();
    const int cfg[][4] = {{2, 37, 5, 1}, {3, 64, 2, 0}, {1, 1024, 2, 1}, {32, 2048, 5, 1}};
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
        int n = cfg[i][0], k = cfg[i][1], o = cfg[i][2], bias = cfg[i][3];
        tcase tc;
        tc_init(&tc, MM_OP_DENSE, TOL_GEMM, 1500 + i);
        tc.node.p.dense.n = n, tc.node.p.dense.k = k, tc.node.p.dense.o = o;
        tc_in(&tc, f32_in(&tc, -1, 1, SHAPE(n, k)));
        tc_in(&tc, f32_in(&tc, -0.1f, 0.1f, SHAPE(o, k)));
        if (bias) tc_in(&tc, f32_in(&tc, -1, 1, SHAPE(o)));
        tc_out(&tc, f32_out(&tc, SHAPE(n, o)));
        tc_check(&tc, "dense");

        tc_init(&tc, MM_OP_DENSE_BWD_DATA, TOL_GEMM, 1520 + i);
        tc.node.backward = true;
        tc.node.p.dense.n = n, tc.node.p.dense.k = k, tc.node.p.dense.o = o;
        tc_in(&tc, f32_in(&tc, -1, 1, SHAPE(n, o)));
        tc_in(&tc, f32_in(&tc, -0.1f, 0.1f, SHAPE(o, k)));
        tc_out(&tc, f32_out(&tc, SHAPE(n, k)));
        tc_check(&tc, "dense bwd data");

        tc_init(&tc, MM_OP_DENSE_BWD_WEIGHT, TOL_GEMM, 1540 + i);
        tc.node.backward = true;
        tc.node.p.dense.n = n, tc.node.p.dense.k = k, tc.node.p.dense.o = o;
        tc_in(&tc, f32_in(&tc, -1, 1, SHAPE(n, o)));
        tc_in(&tc, f32_in(&tc, -1, 1, SHAPE(n, k)));
        tc_out(&tc, grad_out(&tc, SHAPE(o, k)));
        if (bias) tc_out(&tc, grad_out(&tc, SHAPE(o)));
        else tc.node.out[tc.node.n_out++] = -1;
        tc_check(&tc, "dense bwd weight");
    }
}

/* ---- softmax and the weighted cross-entropy ---- */
MM_TEST(cuda_softmax_xent)
{
    REQUIRE_GPU();
    const int cfg[][3] = {{2, 2, 1}, {3, 5, 0}, {32, 5, 1}, {300, 7, 1}};
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
        int n = cfg[i][0], c = cfg[i][1], weighted = cfg[i][2];
        tcase tc;
        tc_init(&tc, MM_OP_SOFTMAX, TOL_REDUCE, 1600 + i);
        tc.node.p.xent.n = n, tc.node.p.xent.c = c;
        tc_in(&tc, f32_in(&tc, -4, 4, SHAPE(n, c)));
        tc_out(&tc, f32_out(&tc, SHAPE(n, c)));
        tc_check(&tc, "softmax");

        tc_init(&tc, MM_OP_SOFTMAX_XENT, TOL_REDUCE, 1620 + i);
        tc.node.p.xent.n = n, tc.node.p.xent.c = c;
        tc_in(&tc, f32_in(&tc, -4, 4, SHAPE(n, c)));
        tc_in(&tc, tc_value(&tc, MM_VALUE_INPUT, MM_I32, false, INIT_LABELS, 0, (float)c,
                            SHAPE(n)));
        if (weighted) tc_in(&tc, f32_in(&tc, 0.2f, 3, SHAPE(n)));
        tc_out(&tc, f32_out(&tc, SHAPE(1)));
        tc_out(&tc, f32_out(&tc, SHAPE(n, c)));
        tc_check(&tc, "softmax xent");

        tc_init(&tc, MM_OP_SOFTMAX_XENT_BWD, TOL_REDUCE, 1640 + i);
        tc.node.backward = true;
        tc.node.p.xent.n = n, tc.node.p.xent.c = c, tc.node.p.xent.dloss = 1.0f;
        tc_in(&tc, f32_in(&tc, 0, 1, SHAPE(n, c)));
        tc_in(&tc, tc_value(&tc, MM_VALUE_INPUT, MM_I32, false, INIT_LABELS, 0, (float)c,
                            SHAPE(n)));
        if (weighted) tc_in(&tc, f32_in(&tc, 0.2f, 3, SHAPE(n)));
        tc_out(&tc, f32_out(&tc, SHAPE(n, c)));
        tc_check(&tc, "softmax xent bwd");
    }
}

/* ---- flips ---- */
MM_TEST(cuda_flip)
{
    REQUIRE_GPU();
    const int cfg[][4] = {{2, 5, 7, 3}, {1, 8, 6, 1}, {2, 3, 9, 16}};
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
        for (int axis = 1; axis <= 2; axis++) {
            int n = cfg[i][0], h = cfg[i][1], w = cfg[i][2], c = cfg[i][3];
            tcase tc;
            tc_init(&tc, MM_OP_FLIP, TOL_EXACT, 1700 + 2 * i + axis);
            tc.node.p.flip.n = n, tc.node.p.flip.h = h, tc.node.p.flip.w = w;
            tc.node.p.flip.c = c, tc.node.p.flip.axis = axis;
            tc_in(&tc, act_in(&tc, -1, 1, SHAPE(n, h, w, c)));
            tc_out(&tc, act_out(&tc, SHAPE(n, h, w, c)));
            tc_check(&tc, axis == 1 ? "flip rows" : "flip columns");
        }
    }
}

/* ---- optimizers over flat buffers: 3 steps on both backends ---- */
static void optim_case(bool adam, int variant)
{
    int64_t n = 1001;
    mm_backend *bes[2] = {cpu_backend(), cuda_backend(MM_PRECISION_FP32)};
    float *res[2][3];
    for (int b = 0; b < 2; b++) {
        mm_backend *be = bes[b];
        float *h = mm_xmalloc((size_t)n * sizeof(float));
        void *d[4];
        for (int k = 0; k < 4; k++) {
            d[k] = be->alloc(be, (size_t)n * 4);
            /* parameters and gradients random, moments from 0 */
            mm_test_fill_uniform(h, n, 77 + (uint64_t)k, -1.0f, 1.0f);
            if (k == 1 || k == 2) memset(h, 0, (size_t)n * 4);
            be->copy_to_device(be, d[k], h, (size_t)n * 4);
        }
        for (int step = 1; step <= 3; step++) {
            if (adam) {
                mm_adam_params a = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f, 0, step};
                if (variant == 1) a.weight_decay = 0.01f;
                if (variant == 2) a.weight_decay = 0.01f, a.decoupled = 1;
                be->adam(be, d[0], d[1], d[2], d[3], n, &a);
            } else {
                mm_sgd_params s = {0.01f, 0.9f, 0.0f, 0};
                if (variant == 1) s.weight_decay = 1e-4f, s.nesterov = 1;
                if (variant == 2) s.momentum = 0.0f;
                be->sgd(be, d[0], d[1], d[3], n, &s);
            }
        }
        if (be->sync) be->sync(be);
        for (int k = 0; k < 3; k++) {
            res[b][k] = mm_xmalloc((size_t)n * sizeof(float));
            be->copy_to_host(be, res[b][k], d[k], (size_t)n * 4);
        }
        for (int k = 0; k < 4; k++) be->free(be, d[k]);
        free(h);
    }
    const char *names[3] = {"param", "moment 1", "moment 2"};
    for (int k = 0; k < (adam ? 3 : 2); k++) {
        char what[64];
        snprintf(what, sizeof what, "%s variant %d %s", adam ? "adam" : "sgd", variant, names[k]);
        /* optim_math.h makes the update bitwise the same on both backends */
        CHECK_ARRAYS(what, res[1][k], res[0][k], n, 0, 0);
    }
    for (int b = 0; b < 2; b++)
        for (int k = 0; k < 3; k++) free(res[b][k]);
}

MM_TEST(cuda_adam)
{
    REQUIRE_GPU();
    for (int v = 0; v < 3; v++) optim_case(true, v);
}

MM_TEST(cuda_sgd)
{
    REQUIRE_GPU();
    for (int v = 0; v < 3; v++) optim_case(false, v);
}

/* Gradient accumulation over 3 micro-batches on both backends: bitwise (one add, one divide). */
MM_TEST(cuda_grad_accumulate)
{
    REQUIRE_GPU();
    int64_t n = 1003;
    mm_backend *bes[2] = {cpu_backend(), cuda_backend(MM_PRECISION_FP32)};
    float *res[2], *h = mm_xmalloc((size_t)n * sizeof(float));
    for (int b = 0; b < 2; b++) {
        mm_backend *be = bes[b];
        float *acc = be->alloc(be, (size_t)n * 4), *g = be->alloc(be, (size_t)n * 4);
        for (int k = 0; k < 3; k++) {
            mm_test_fill_uniform(h, n, 90 + (uint64_t)k, -1.0f, 1.0f);
            be->copy_to_device(be, g, h, (size_t)n * 4);
            be->accumulate(be, acc, g, n, k, 3);
        }
        if (be->sync) be->sync(be);
        res[b] = mm_xmalloc((size_t)n * sizeof(float));
        be->copy_to_host(be, res[b], g, (size_t)n * 4);
        be->free(be, acc);
        be->free(be, g);
    }
    CHECK_ARRAYS("accumulated mean", res[1], res[0], n, 0, 0);
    free(res[0]);
    free(res[1]);
    free(h);
}

/* ---- layout (layout.cu): the batched transpose of the NCHW copies (conv_nchw.h) ----
 * Against the naive loop, bitwise (a copy, or one fp32 add): sizes around the 32 x 32 tile,
 * a single element, one very long side, written over NaN and added to non-zero values. */
MM_TEST(cuda_transpose)
{
    REQUIRE_GPU();
#ifdef MM_HAVE_CUDA
    static const int64_t sizes[][3] = {{1, 1, 1}, {2, 33, 65}, {3, 70, 5}, {1, 5, 1000},
                                       {2, 32, 64}, {1, 4099, 3}};
    mm_backend *be = cuda_backend(MM_PRECISION_FP32);
    cudaStream_t st = ((mm_cuda_ctx *)be->ctx)->stream;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        int batch = (int)sizes[i][0];
        int64_t rows = sizes[i][1], cols = sizes[i][2], n = batch * rows * cols;
        float *x = mm_xmalloc((size_t)n * sizeof(float)), *y0 = mm_xmalloc((size_t)n * 4);
        float *want = mm_xmalloc((size_t)n * 4), *got = mm_xmalloc((size_t)n * 4);
        for (int64_t j = 0; j < n; j++) {
            x[j] = mm_philox_uniform(1000 + i, (uint64_t)j) * 2 - 1;
            y0[j] = mm_philox_uniform(2000 + i, (uint64_t)j) * 2 - 1;
        }
        void *dx = be->alloc(be, (size_t)n * 4), *dy = be->alloc(be, (size_t)n * 4);
        be->copy_to_device(be, dx, x, (size_t)n * 4);
        for (int acc = 0; acc < 2; acc++) {
            if (acc) {
                be->copy_to_device(be, dy, y0, (size_t)n * 4);
            } else {
                for (int64_t j = 0; j < n; j++) got[j] = NAN;
                be->copy_to_device(be, dy, got, (size_t)n * 4);
            }
            mm_cuda_transpose(dy, dx, batch, rows, cols, acc, st);
            be->sync(be);
            be->copy_to_host(be, got, dy, (size_t)n * 4);
            for (int b = 0; b < batch; b++)
                for (int64_t r = 0; r < rows; r++)
                    for (int64_t c = 0; c < cols; c++) {
                        int64_t o = (b * cols + c) * rows + r;
                        float v = x[(b * rows + r) * cols + c];
                        want[o] = acc ? y0[o] + v : v;
                    }
            int64_t bad = 0;
            for (int64_t j = 0; j < n; j++) bad += memcmp(&want[j], &got[j], 4) != 0;
            CHECK_MSG(bad == 0, "transpose [%d,%lld,%lld]%s: %lld elements differ", batch,
                      (long long)rows, (long long)cols, acc ? " accumulating" : "",
                      (long long)bad);
        }
        be->free(be, dx);
        be->free(be, dy);
        free(x), free(y0), free(want), free(got);
    }
#endif
}

/* Host buffers for the per-step copies (mm_host_alloc): page-locked on CUDA, so copies from them
 * run at the bus's speed; a round trip through the device keeps every byte. */
MM_TEST(cuda_host_buffers_are_page_locked)
{
    REQUIRE_GPU();
#ifdef MM_HAVE_CUDA
    mm_backend *be = cuda_backend(MM_PRECISION_FP32);
    size_t n = 3 * 1000 * 1001;
    float *h = mm_host_alloc(be, n * sizeof(float)), *back = mm_xmalloc(n * sizeof(float));
    struct cudaPointerAttributes a;
    CHECK(cudaPointerGetAttributes(&a, h) == cudaSuccess && a.type == cudaMemoryTypeHost);
    for (size_t i = 0; i < n; i++) h[i] = (float)i * 0.5f - 7.0f;
    void *d = be->alloc(be, n * sizeof(float));
    be->copy_to_device(be, d, h, n * sizeof(float));
    memset(h, 0, n * sizeof(float)); /* the copy has finished with it when copy_to_device returns */
    be->copy_to_host(be, back, d, n * sizeof(float));
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += back[i] != (float)i * 0.5f - 7.0f;
    CHECK_MSG(bad == 0, "%zu of %zu values changed on the way", bad, n);
    be->free(be, d);
    mm_host_free(be, h);
    free(back);
#endif
}
