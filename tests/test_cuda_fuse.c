/* The CUDA backend's ReLU fusion analysis (kernels/cuda/fuse.c, on the graph's
 * mm_graph_relu_after), which needs no GPU: which batch norms and biased convolutions may apply
 * the ReLU that follows them, on graphs built with the graph API and differentiated, and which
 * may not (output read twice, kept as an output, feeding an add, a convolution without a bias). */
#include <stdlib.h>
#include <string.h>

#include "runtime/graph.h"
#include "runtime/graph_internal.h"
#include "runtime/planner.h"
#include "tests/harness.h"
#ifdef MM_HAVE_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif

typedef struct fnet {
    mm_graph *g;
    int bn_relu[8], bn_plain[8]; /* node ids: producers that must fuse, that must not */
    int n_relu, n_plain;
    int n_params;
} fnet;

static int last_node(const mm_graph *g) { return g->n_nodes - 1; }

static int conv_bn(fnet *m, int x, int cin, int cout, int *bn_node)
{
    char name[32];
    int64_t ws[4] = {cout, 3, 3, cin}, cs[1] = {cout};
    snprintf(name, sizeof name, "p%d", m->n_params++);
    int w = mm_graph_param(m->g, name, 4, ws);
    snprintf(name, sizeof name, "p%d", m->n_params++);
    int ga = mm_graph_param(m->g, name, 1, cs);
    snprintf(name, sizeof name, "p%d", m->n_params++);
    int be = mm_graph_param(m->g, name, 1, cs);
    snprintf(name, sizeof name, "s%d", m->n_params++);
    int rm = mm_graph_state(m->g, name, 1, cs);
    snprintf(name, sizeof name, "s%d", m->n_params++);
    int rv = mm_graph_state(m->g, name, 1, cs);
    int y = mm_batchnorm(m->g, mm_conv2d(m->g, x, w, -1, 1, 1), ga, be, rm, rv, 1e-5f, 0.1f);
    *bn_node = last_node(m->g);
    return y;
}

/* conv-BN-ReLU (fuses); conv-BN into a residual add, then ReLU (does not); conv-BN whose output
 * is also read by an add besides its ReLU (does not); conv-BN-ReLU with the BN output kept (does
 * not); conv-BN-ReLU (fuses); biased conv-ReLU (fuses); unbiased conv-ReLU (does not). */
static void build(fnet *m)
{
    memset(m, 0, sizeof *m);
    m->g = mm_graph_new(true);
    int64_t xs[4] = {2, 6, 5, 4}, ls[1] = {2};
    int x = mm_graph_input(m->g, "x", MM_F32, 4, xs);
    int labels = mm_graph_input(m->g, "labels", MM_I32, 1, ls);
    int bn;
    int a = mm_relu(m->g, conv_bn(m, x, 4, 4, &bn));
    m->bn_relu[m->n_relu++] = bn;
    int b = conv_bn(m, a, 4, 4, &bn);
    m->bn_plain[m->n_plain++] = bn;
    int r = mm_relu(m->g, mm_add(m->g, b, a));
    int c = conv_bn(m, r, 4, 4, &bn);
    m->bn_plain[m->n_plain++] = bn;
    int d = mm_add(m->g, mm_relu(m->g, c), c);
    int e = conv_bn(m, d, 4, 4, &bn);
    m->bn_plain[m->n_plain++] = bn;
    mm_graph_keep(m->g, e);
    int f = mm_relu(m->g, e);
    int h = mm_relu(m->g, conv_bn(m, f, 4, 4, &bn));
    m->bn_relu[m->n_relu++] = bn;
    /* VGG's conv (with bias) + ReLU fuses; without a bias it does not. */
    int64_t ws[4] = {4, 3, 3, 4}, bs[1] = {4};
    int w1 = mm_graph_param(m->g, "vw1", 4, ws), b1 = mm_graph_param(m->g, "vb1", 1, bs);
    h = mm_relu(m->g, mm_conv2d(m->g, h, w1, b1, 1, 1));
    m->bn_relu[m->n_relu++] = last_node(m->g) - 1;
    int w2 = mm_graph_param(m->g, "vw2", 4, ws);
    h = mm_relu(m->g, mm_conv2d(m->g, h, w2, -1, 1, 1));
    m->bn_plain[m->n_plain++] = last_node(m->g) - 1;
    int64_t fw[2] = {2, 4};
    int w = mm_graph_param(m->g, "fc", 2, fw);
    int loss = mm_softmax_xent(m->g, mm_dense(m->g, mm_global_avgpool(m->g, h), w, -1), labels, -1);
    CHECK_EQ_INT(mm_graph_backward(m->g, loss), MM_OK);
    CHECK_EQ_INT(mm_graph_status(m->g), MM_OK);
}

/* The pattern itself is the graph's (mm_graph_relu_after), so `mammo plan --traffic` can leave
 * out for cuda the ReLU passes the GPU never runs: exactly the ReLUs of the fusing producers. */
MM_TEST(relu_after_marks_the_pairs_and_traffic_leaves_them_out)
{
    fnet m;
    build(&m);
    mm_graph_uses u = mm_graph_uses_of(m.g);
    int found = 0;
    double relu_bytes = 0;
    for (int n = 0; n < m.g->n_nodes; n++) {
        int j = mm_graph_relu_after(m.g, &u, n);
        if (j < 0) continue;
        found++;
        relu_bytes += mm_node_activation_bytes(m.g, &m.g->nodes[j]);
        bool expected = false;
        for (int i = 0; i < m.n_relu; i++) expected = expected || m.bn_relu[i] == n;
        CHECK_MSG(expected, "node %d (%s) marked", n, mm_node_op_name(&m.g->nodes[n]));
    }
    CHECK_EQ_INT(found, m.n_relu);
    for (int i = 0; i < m.n_plain; i++)
        CHECK_EQ_INT(mm_graph_relu_after(m.g, &u, m.bn_plain[i]), -1);
    mm_graph_uses_free(&u);

    double total[2] = {0, 0};
    for (int fused = 0; fused < 2; fused++) {
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        mm_graph_print_traffic(m.g, fused, f);
        fclose(f);
        const char *t = strstr(text, "traffic_bytes=");
        total[fused] = t ? strtod(t + strlen("traffic_bytes="), NULL) : -1;
        char want[96];
        snprintf(want, sizeof want, "(relu applied by the node before it: %d nodes", m.n_relu);
        CHECK_MSG((strstr(text, want) != NULL) == (fused == 1), "fused %d: %s", fused, text);
        free(text);
    }
    CHECK(relu_bytes > 0);
    CHECK_CLOSE(total[0] - total[1], relu_bytes, 0.5, 0);
    mm_graph_free(m.g);
}

MM_TEST(cuda_fusion_finds_bn_relu_pairs)
{
    fnet m;
    build(&m);
#ifndef MM_HAVE_CUDA
    mm_graph_free(m.g);
    MM_SKIP("this build has no CUDA backend");
#else
    mm_cuda_fusion f;
    memset(&f, 0, sizeof f);
    mm_cuda_fusion_analyse(&f, m.g);
    CHECK_EQ_INT(f.n_fused, m.n_relu);
    for (int i = 0; i < m.n_relu; i++) {
        int n = m.bn_relu[i];
        const mm_node *bn = &m.g->nodes[n];
        CHECK(bn->op == MM_OP_BATCHNORM || bn->op == MM_OP_CONV2D);
        CHECK_EQ_INT(mm_cuda_fusion_code(&f, m.g, bn), MM_FUSE_APPLY_RELU);
        int j = f.partner[n];
        CHECK_EQ_INT(m.g->nodes[j].op, MM_OP_RELU);
        CHECK_EQ_INT(m.g->nodes[j].in[0], bn->out[0]);
        CHECK_EQ_INT(mm_cuda_fusion_code(&f, m.g, &m.g->nodes[j]), MM_FUSE_RELU_DONE);
        /* A copy of the node (as a session makes for dropout) runs unfused. */
        mm_node copy = *bn;
        CHECK_EQ_INT(mm_cuda_fusion_code(&f, m.g, &copy), MM_FUSE_NONE);
        /* The ReLU is skipped once per fused BN run, not otherwise. */
        CHECK(!mm_cuda_fusion_take_applied(&f, m.g, &m.g->nodes[j]));
        mm_cuda_fusion_mark_applied(&f, m.g, bn);
        CHECK(mm_cuda_fusion_take_applied(&f, m.g, &m.g->nodes[j]));
        CHECK(!mm_cuda_fusion_take_applied(&f, m.g, &m.g->nodes[j]));
    }
    for (int i = 0; i < m.n_plain; i++)
        CHECK_EQ_INT(mm_cuda_fusion_code(&f, m.g, &m.g->nodes[m.bn_plain[i]]), MM_FUSE_NONE);
    /* Nothing else is marked, and backward nodes never are. */
    int marked = 0;
    for (int n = 0; n < m.g->n_nodes; n++) {
        marked += f.code[n] != MM_FUSE_NONE;
        if (m.g->nodes[n].backward) CHECK_EQ_INT(f.code[n], MM_FUSE_NONE);
    }
    CHECK_EQ_INT(marked, 2 * m.n_relu);

    /* Another graph at another address: the analysis of the first does not apply to it. */
    fnet m2;
    build(&m2);
    CHECK_EQ_INT(mm_cuda_fusion_code(&f, m2.g, &m2.g->nodes[m2.bn_relu[0]]), MM_FUSE_NONE);

    /* MM_NO_FUSE turns it off. */
    setenv("MM_NO_FUSE", "1", 1);
    mm_cuda_fusion_analyse(&f, m.g);
    unsetenv("MM_NO_FUSE");
    CHECK_EQ_INT(f.n_fused, 0);
    CHECK_EQ_INT(mm_cuda_fusion_code(&f, m.g, &m.g->nodes[m.bn_relu[0]]), MM_FUSE_NONE);
    mm_cuda_fusion_free(&f);
    mm_graph_free(m.g);
    mm_graph_free(m2.g);
#endif
}
