/* The CUDA backend's cuDNN descriptors, checked WITHOUT a GPU (cuDNN's descriptor calls work on
 * machines with no GPU): for every convolution of ResNet50 (with the whole-image top blocks) and
 * VGG16 (with its top blocks) at 224x224 and 1152x896, batch 2, and for odd shapes, cuDNN's
 * output shape for the NHWC/OHWI descriptors the backend builds (and the NCHW/OIHW ones of its
 * copies) equals our shape rule (mm_conv_dims_finish), in fp32 and bf16. Runs in CI wherever the CUDA backend is compiled. */
#include <string.h>

#include "kernels/dims.h"
#include "runtime/backend.h"
#include "tests/harness.h"
#ifdef MM_HAVE_CUDA
#include "kernels/cuda/conv_cudnn.h"
#include "kernels/cuda/conv_graph.h"
#endif

typedef struct conv_walk {
    int n, h, w, c; /* current activation */
    int convs, mismatches;
} conv_walk;

/* A convolution of an [n,h,w,c] input with k square r x r filters, its output shape set. */
static mm_conv_dims square_conv(int n, int h, int w, int c, int k, int r, int stride, int pad)
{
    mm_conv_dims d;
    memset(&d, 0, sizeof d);
    d.n = n, d.h = h, d.w = w, d.c = c;
    d.k = k, d.r = r, d.s = r;
    d.stride_h = d.stride_w = stride;
    d.pad_h = d.pad_w = pad;
    CHECK(mm_conv_dims_finish(&d));
    return d;
}

/* One convolution from the current activation; advances it to the output. */
static void walk_conv(conv_walk *cw, int k, int r, int stride, int pad)
{
    mm_conv_dims d = square_conv(cw->n, cw->h, cw->w, cw->c, k, r, stride, pad);
#ifdef MM_HAVE_CUDA
    mm_dtype types[2] = {MM_F32, MM_BF16};
    for (int t = 0; t < 2; t++) {
        cudnnStatus_t s = CUDNN_STATUS_SUCCESS;
        for (int nchw = 0; nchw < 2; nchw++) { /* the NCHW copies (conv_nchw.h) too */
            int out[4] = {0, 0, 0, 0};
            s = mm_cudnn_conv_output_dims(&d, types[t], nchw, out);
            CHECK_MSG(s == CUDNN_STATUS_SUCCESS, "cuDNN descriptors: %s", cudnnGetErrorString(s));
            if (out[0] != d.n || out[1] != d.k || out[2] != d.oh || out[3] != d.ow) {
                cw->mismatches++;
                CHECK_MSG(0,
                          "x [%d,%d,%d,%d] w %dx%d/%d pad %d %s: cuDNN gives [%d,%d,%d,%d], "
                          "rule [%d,%d,%d,%d]",
                          d.n, d.h, d.w, d.c, r, r, stride, pad, nchw ? "NCHW" : "NHWC", out[0],
                          out[2], out[3], out[1], d.n, d.oh, d.ow, d.k);
            }
        }
        /* the graph API's descriptors of each direction finalize (conv_graph.c; the operation
         * graph itself needs a handle, so a GPU) */
        for (int dir = MM_CONV_GRAPH_FWD; dir <= MM_CONV_GRAPH_BWD_FILTER; dir++) {
            mm_conv_graph g;
            s = mm_conv_graph_init(&g, NULL, dir, &d, types[t], dir == 3 ? 1.0f : 0.0f, 16);
            CHECK_MSG(s == CUDNN_STATUS_SUCCESS, "graph direction %d x [%d,%d,%d,%d] w %dx%d/%d: %s",
                      dir, d.n, d.h, d.w, d.c, r, r, stride, cudnnGetErrorString(s));
            if (s == CUDNN_STATUS_SUCCESS) mm_conv_graph_free(&g);
        }
    }
#endif
    cw->convs++;
    cw->h = d.oh, cw->w = d.ow, cw->c = k;
}

static void walk_pool(conv_walk *cw, int k, int stride, int pad)
{
    mm_pool_dims p;
    memset(&p, 0, sizeof p);
    p.n = cw->n, p.h = cw->h, p.w = cw->w, p.c = cw->c;
    p.kh = p.kw = k;
    p.stride_h = p.stride_w = stride;
    p.pad_h = p.pad_w = pad;
    CHECK(mm_pool_dims_finish(&p));
    cw->h = p.oh, cw->w = p.ow;
}

/* A bottleneck unit (torchvision's: stride on the 3x3), with its projection shortcut when the
 * stride or width changes. */
static void walk_bottleneck(conv_walk *cw, int mid, int out, int stride)
{
    conv_walk in = *cw;
    walk_conv(cw, mid, 1, 1, 0);
    walk_conv(cw, mid, 3, stride, 1);
    walk_conv(cw, out, 1, 1, 0);
    if (stride != 1 || in.c != out) {
        in.convs = in.mismatches = 0;
        walk_conv(&in, out, 1, stride, 0);
        cw->convs += in.convs;
        cw->mismatches += in.mismatches;
        CHECK(in.h == cw->h && in.w == cw->w);
    }
}

static conv_walk walk_resnet50(int h, int w)
{
    conv_walk cw = {2, h, w, 3, 0, 0};
    walk_conv(&cw, 64, 7, 2, 3);
    walk_pool(&cw, 3, 2, 1);
    const int blocks[4] = {3, 4, 6, 3}, planes[4] = {64, 128, 256, 512};
    for (int s = 0; s < 4; s++)
        for (int b = 0; b < blocks[s]; b++)
            walk_bottleneck(&cw, planes[s], planes[s] * 4, b == 0 && s > 0 ? 2 : 1);
    /* Whole-image top: [512-512-1024]x2 twice, each stage's first unit stride 2. */
    for (int s = 0; s < 2; s++)
        for (int b = 0; b < 2; b++) walk_bottleneck(&cw, 512, 1024, b == 0 ? 2 : 1);
    return cw;
}

static conv_walk walk_vgg16(int h, int w)
{
    conv_walk cw = {2, h, w, 3, 0, 0};
    /* channels of each 3x3 convolution; 0: a 2x2 max pool */
    const int cfg[] = {64,  64,  0,   128, 128, 0,   256, 256, 256,
                       0,   512, 512, 512, 0,   512, 512, 512, 0};
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
        if (cfg[i]) walk_conv(&cw, cfg[i], 3, 1, 1);
        else walk_pool(&cw, 2, 2, 0);
    }
    /* Whole-image top: 512x1, 512x1 (3x3 conv, BN, ReLU, 2x2 max pool). */
    for (int b = 0; b < 2; b++) {
        walk_conv(&cw, 512, 3, 1, 1);
        walk_pool(&cw, 2, 2, 0);
    }
    return cw;
}

MM_TEST(cudnn_resnet50_output_dims)
{
    conv_walk a = walk_resnet50(224, 224);
    CHECK_EQ_INT(a.convs, 53 + 2 * (2 * 3 + 1));
    CHECK_EQ_INT(a.mismatches, 0);
    conv_walk b = walk_resnet50(1152, 896);
    CHECK_EQ_INT(b.convs, a.convs);
    CHECK_EQ_INT(b.mismatches, 0);
    /* 1152x896 / 32 = 36x28 after the trunk, / 4 after the two top stages. */
    CHECK_EQ_INT(b.h, 9);
    CHECK_EQ_INT(b.w, 7);
    CHECK_EQ_INT(b.c, 1024);
#ifndef MM_HAVE_CUDA
    MM_SKIP("this build has no CUDA backend: shapes walked, cuDNN not asked");
#endif
}

MM_TEST(cudnn_vgg16_output_dims)
{
    conv_walk a = walk_vgg16(224, 224);
    CHECK_EQ_INT(a.convs, 15);
    CHECK_EQ_INT(a.mismatches, 0);
    conv_walk b = walk_vgg16(1152, 896);
    CHECK_EQ_INT(b.mismatches, 0);
    CHECK_EQ_INT(b.h, 9);
    CHECK_EQ_INT(b.w, 7);
#ifndef MM_HAVE_CUDA
    MM_SKIP("this build has no CUDA backend: shapes walked, cuDNN not asked");
#endif
}

/* The fused call's descriptors (cudnnConvolutionBiasActivationForward): the bias [1,k,1,1]
 * fp32 in the data's layout, and a ReLU. */
MM_TEST(cudnn_bias_relu_descriptors)
{
#ifdef MM_HAVE_CUDA
    mm_conv_dims d = square_conv(2, 36, 28, 512, 256, 3, 1, 1);
    for (int nchw = 0; nchw < 2; nchw++) {
        mm_conv_descs cd;
        CHECK_EQ_INT(mm_conv_descs_init(&cd, &d, MM_F32, MM_PRECISION_TF32, nchw), 0);
        CHECK_EQ_INT(mm_conv_descs_add_bias_relu(&cd, &d, nchw), 0);
        cudnnDataType_t dt;
        int n, c, h, w, sn, sc, sh, sw;
        CHECK_EQ_INT(cudnnGetTensor4dDescriptor(cd.bias, &dt, &n, &c, &h, &w, &sn, &sc, &sh, &sw),
                     0);
        CHECK(dt == CUDNN_DATA_FLOAT && n == 1 && c == 256 && h == 1 && w == 1);
        cudnnActivationMode_t mode;
        cudnnNanPropagation_t nan;
        double coef;
        CHECK_EQ_INT(cudnnGetActivationDescriptor(cd.relu, &mode, &nan, &coef), 0);
        CHECK(mode == CUDNN_ACTIVATION_RELU);
        mm_conv_descs_free(&cd);
        CHECK(cd.bias == NULL && cd.relu == NULL);
    }
#else
    MM_SKIP("this build has no CUDA backend");
#endif
}

MM_TEST(cudnn_odd_shapes_output_dims)
{
    /* Odd sizes, stride 2 with and without padding, 1x1 stride 2, 7x7, batch 1. */
    const int shapes[][6] = {
        /* h, w, c, k, r, stride; the padding is in pads[] */
        {7, 5, 3, 4, 3, 1}, {7, 5, 3, 4, 3, 2}, {9, 11, 2, 3, 1, 2}, {13, 10, 3, 5, 7, 2},
        {1, 1, 8, 8, 1, 1}, {6, 9, 5, 2, 3, 2},
    };
    const int pads[] = {1, 1, 0, 3, 0, 0};
    for (size_t i = 0; i < sizeof pads / sizeof pads[0]; i++) {
        for (int n = 1; n <= 2; n++) {
            conv_walk cw = {n, shapes[i][0], shapes[i][1], shapes[i][2], 0, 0};
            walk_conv(&cw, shapes[i][3], shapes[i][4], shapes[i][5], pads[i]);
            CHECK_EQ_INT(cw.mismatches, 0);
        }
    }
#ifndef MM_HAVE_CUDA
    MM_SKIP("this build has no CUDA backend: shapes walked, cuDNN not asked");
#endif
}

#ifdef MM_HAVE_CUDA
/* An output shape that does not follow from the convolution is refused when the operation is
 * finalized, in every direction: the descriptors really are checked. */
MM_TEST(cudnn_graph_refuses_a_wrong_output_shape)
{
    mm_conv_dims d = square_conv(2, 12, 10, 8, 16, 3, 1, 1);
    d.oh += 1;
    for (int dir = MM_CONV_GRAPH_FWD; dir <= MM_CONV_GRAPH_BWD_FILTER; dir++) {
        mm_conv_graph g;
        cudnnStatus_t s = mm_conv_graph_init(&g, NULL, dir, &d, MM_F32, 0.0f, 16);
        CHECK_MSG(s != CUDNN_STATUS_SUCCESS, "direction %d accepted an output of %d rows", dir,
                  d.oh);
        if (s == CUDNN_STATUS_SUCCESS) mm_conv_graph_free(&g);
    }
}
#endif

#ifdef MM_HAVE_CUDA
/* cuDNN takes tensors of at most 2^31 - 1 elements, in either layout: the premise of the CUDA
 * backend's check_graph, which refuses bigger ones with a tier-1 message before planning. A
 * convolution whose output [1,8192,4095,64] is just under the limit gets its descriptors; with
 * one more column of output (2^31 elements) they are refused. */
MM_TEST(cudnn_refuses_tensors_of_2g_elements)
{
    mm_conv_dims d = square_conv(1, 8192, 4095, 3, 64, 3, 1, 1);
    for (int nchw = 0; nchw < 2; nchw++) {
        mm_conv_descs cd;
        cudnnStatus_t s = mm_conv_descs_init(&cd, &d, MM_F32, 0, nchw);
        CHECK_MSG(s == CUDNN_STATUS_SUCCESS, "2^31 - 2^19 elements: %s", cudnnGetErrorString(s));
        if (s == CUDNN_STATUS_SUCCESS) mm_conv_descs_free(&cd);
    }
    d.w = 4096;
    CHECK(mm_conv_dims_finish(&d));
    for (int nchw = 0; nchw < 2; nchw++) {
        mm_conv_descs cd;
        cudnnStatus_t s = mm_conv_descs_init(&cd, &d, MM_F32, 0, nchw);
        CHECK_MSG(s != CUDNN_STATUS_SUCCESS, "cuDNN took an output of 2^31 elements");
        if (s == CUDNN_STATUS_SUCCESS) mm_conv_descs_free(&cd);
    }
}
#endif
