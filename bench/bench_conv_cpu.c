/* CPU convolution benchmark: GFLOP/s of forward, backward-data and backward-filter at ResNet50's
 * layer shapes, next to this machine's own OpenBLAS SGEMM rate on a large square product.
 *
 * Usage: bench_conv_cpu [H W [BATCH [NET]]]   (default 224 224 2 resnet50; e.g. 1152 896 2 for
 * whole images; NET vgg16 for VGG16's layers)
 * MM_CONV_WS_MB=N sets the im2col chunk budget (mm_cpu_conv_ws_budget) to N MB, for tuning;
 * MM_CONV_WINOGRAD_MIN=N runs 3x3 stride-1 layers as Winograd from N output pixels (default 1024;
 * a huge N: never), MM_CONV_TURN_MIN=N stride-1 data gradients turned from N (default 256).
 * Threads: OMP_NUM_THREADS (the kernels run everything, GEMMs included, on the OpenMP threads).
 *
 * A pass of a convolution costs 2 * (n*oh*ow) * k * (r*s*c) floating-point operations; forward,
 * backward data and backward filter cost one pass each. Each number is the best of at least
 * MIN_REPS timed runs after a warm-up run, repeated until MIN_SECONDS have passed (so that a
 * machine shared with other work still shows what the code can do), at most MAX_REPS.
 * OpenBLAS's SGEMM is measured the same way before and after the layers; the better rate is used.
 * "ratio" is the whole layer's rate (all three passes) over SGEMM's. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/cpu/blas.h"
#include "kernels/cpu/cpu_internal.h"
#include "kernels/cpu/cpu_kernels.h"
#include "runtime/env.h"
#include "runtime/error.h"

#define MIN_REPS 3
#define MAX_REPS 20
#define MIN_SECONDS 0.3

typedef struct layer {
    const char *name;
    int h, w, c, k, r, stride, pad; /* h, w at a 224x224 input */
} layer;

/* torchvision's ResNet50 (v1.5: the stride sits on the 3x3 convolution). */
static const layer layers[] = {
    {"conv1 7x7/2", 224, 224, 3, 64, 7, 2, 3},
    {"layer1 1x1 reduce", 56, 56, 256, 64, 1, 1, 0},
    {"layer1 3x3", 56, 56, 64, 64, 3, 1, 1},
    {"layer1 1x1 expand", 56, 56, 64, 256, 1, 1, 0},
    {"layer2 3x3/2", 56, 56, 128, 128, 3, 2, 1},
    {"layer2 1x1/2 downsample", 56, 56, 256, 512, 1, 2, 0},
    {"layer2 1x1 reduce", 28, 28, 512, 128, 1, 1, 0},
    {"layer2 3x3", 28, 28, 128, 128, 3, 1, 1},
    {"layer2 1x1 expand", 28, 28, 128, 512, 1, 1, 0},
    {"layer3 3x3/2", 28, 28, 256, 256, 3, 2, 1},
    {"layer3 1x1/2 downsample", 28, 28, 512, 1024, 1, 2, 0},
    {"layer3 1x1 reduce", 14, 14, 1024, 256, 1, 1, 0},
    {"layer3 3x3", 14, 14, 256, 256, 3, 1, 1},
    {"layer3 1x1 expand", 14, 14, 256, 1024, 1, 1, 0},
    {"layer4 3x3/2", 14, 14, 512, 512, 3, 2, 1},
    {"layer4 1x1/2 downsample", 14, 14, 1024, 2048, 1, 2, 0},
    {"layer4 1x1 reduce", 7, 7, 2048, 512, 1, 1, 0},
    {"layer4 3x3", 7, 7, 512, 512, 3, 1, 1},
    {"layer4 1x1 expand", 7, 7, 512, 2048, 1, 1, 0},
};
#define N_LAYERS ((int)(sizeof layers / sizeof layers[0]))

/* torchvision's VGG16: every convolution 3x3, stride 1, padding 1. */
static const layer vgg16_layers[] = {
    {"conv1_1", 224, 224, 3, 64, 3, 1, 1},     {"conv1_2", 224, 224, 64, 64, 3, 1, 1},
    {"conv2_1", 112, 112, 64, 128, 3, 1, 1},   {"conv2_2", 112, 112, 128, 128, 3, 1, 1},
    {"conv3_1", 56, 56, 128, 256, 3, 1, 1},    {"conv3_2/3", 56, 56, 256, 256, 3, 1, 1},
    {"conv4_1", 28, 28, 256, 512, 3, 1, 1},    {"conv4_2/3", 28, 28, 512, 512, 3, 1, 1},
    {"conv5_1/2/3", 14, 14, 512, 512, 3, 1, 1},
};
#define N_VGG16_LAYERS ((int)(sizeof vgg16_layers / sizeof vgg16_layers[0]))

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static float *random_buffer(size_t n, unsigned seed)
{
    float *x = mm_xmalloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
    }
    return x;
}

/* OpenBLAS's own threaded SGEMM with `threads` threads, or (threads = 0) mm_cpu_sgemm:
 * single-threaded OpenBLAS on each OpenMP thread, as the kernels run it. */
static double sgemm_gflops(int n, int threads)
{
    float *a = random_buffer((size_t)n * n, 1), *b = random_buffer((size_t)n * n, 2),
          *c = random_buffer((size_t)n * n, 3);
    if (threads) mm_blas_set_threads(threads);
    double best = 1e30, start = now();
    for (int rep = 0; rep <= MAX_REPS && (rep <= MIN_REPS || now() - start < MIN_SECONDS);
         rep++) {
        double t0 = now();
        if (threads)
            mm_blas_sgemm(CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        else
            mm_cpu_sgemm(CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double t = now() - t0;
        if (rep > 0 && t < best) best = t; /* rep 0 warms up */
    }
    if (threads) mm_blas_set_threads(1); /* back to how the kernels run it */
    free(a), free(b), free(c);
    return 2.0 * n * n * (double)n / best * 1e-9;
}

typedef struct result {
    const char *name;
    char shape[48];
    double gflop, rate[3], all; /* GFLOP of the three passes; GFLOP/s */
    int direct, large;
} result;

int main(int argc, char **argv)
{
    int H = argc > 2 ? atoi(argv[1]) : 224, W = argc > 2 ? atoi(argv[2]) : 224;
    int batch = argc > 3 ? atoi(argv[3]) : 2;
    const char *net = argc > 4 ? argv[4] : "resnet50";
    int vgg = !strcmp(net, "vgg16");
    if (H < 32 || W < 32 || batch < 1 || (!vgg && strcmp(net, "resnet50"))) {
        fprintf(stderr, "usage: bench_conv_cpu [H W [BATCH [resnet50|vgg16]]]  (H, W >= 32)\n");
        return 1;
    }
    const layer *table = vgg ? vgg16_layers : layers;
    int n_layers = vgg ? N_VGG16_LAYERS : N_LAYERS;
    int64_t ws_mb = (int64_t)(mm_cpu_conv_ws_budget >> 20);
    mm_env_int("MM_CONV_WS_MB", 1, 1 << 20, &ws_mb);
    mm_cpu_conv_ws_budget = (size_t)ws_mb << 20;
    mm_cpu_conv_read_env();
    int threads_omp = omp_get_max_threads();
    double peak = sgemm_gflops(2048, threads_omp), ours = sgemm_gflops(2048, 0);

    result res[N_LAYERS > N_VGG16_LAYERS ? N_LAYERS : N_VGG16_LAYERS];
    int nres = 0;
    for (int li = 0; li < n_layers; li++) {
        const layer *L = &table[li];
        mm_conv_dims d = {.n = batch, .h = L->h * H / 224, .w = L->w * W / 224, .c = L->c,
                          .k = L->k, .r = L->r, .s = L->r, .stride_h = L->stride,
                          .stride_w = L->stride, .pad_h = L->pad, .pad_w = L->pad};
        if (!mm_conv_dims_finish(&d)) continue;
        size_t nx = (size_t)d.n * d.h * d.w * d.c, ny = (size_t)d.n * d.oh * d.ow * d.k;
        size_t nw = (size_t)d.k * d.r * d.s * d.c;
        float *x = random_buffer(nx, 10), *w = random_buffer(nw, 11), *dy = random_buffer(ny, 12);
        float *y = mm_xmalloc(sizeof(float) * ny), *dx = mm_xmalloc(sizeof(float) * nx);
        float *dw = random_buffer(nw, 13);
        size_t wsb = mm_cpu_conv2d_workspace(&d);
        size_t wsb_dx = mm_cpu_conv2d_backward_data_workspace(&d);
        void *ws = mm_xmalloc(wsb ? wsb : 1), *ws_dx = mm_xmalloc(wsb_dx ? wsb_dx : 1);
        double pass = 2.0 * d.n * d.oh * d.ow * (double)d.k * d.r * d.s * d.c;
        double best[3] = {1e30, 1e30, 1e30}, start = now();
        for (int rep = 0; rep <= MAX_REPS && (rep <= MIN_REPS || now() - start < MIN_SECONDS);
             rep++) {
            double t[4];
            t[0] = now();
            mm_cpu_conv2d_forward(y, x, w, NULL, &d, ws);
            t[1] = now();
            mm_cpu_conv2d_backward_data(dx, dy, w, &d, ws_dx);
            t[2] = now();
            mm_cpu_conv2d_backward_filter(dw, dy, x, &d, ws);
            t[3] = now();
            for (int p = 0; p < 3 && rep > 0; p++)
                if (t[p + 1] - t[p] < best[p]) best[p] = t[p + 1] - t[p];
        }
        result *r = &res[nres++];
        r->name = L->name;
        snprintf(r->shape, sizeof r->shape, "%d,%d,%d,%d->%d", d.n, d.h, d.w, d.c, d.k);
        r->gflop = 3 * pass * 1e-9;
        for (int p = 0; p < 3; p++) r->rate[p] = pass / best[p] * 1e-9;
        r->all = r->gflop / (best[0] + best[1] + best[2]);
        r->direct = wsb == 0;
        /* "Large": at least 0.3 GFLOP per pass at 224x224, batch 2: conv1, every 3x3 and the
         * strided 1x1 downsamples (the other 1x1 layers are plain GEMMs, 0.2 GFLOP). */
        r->large = pass / ((double)H * W / (224.0 * 224.0)) / batch * 2 >= 0.3e9;
        free(x), free(w), free(dy), free(y), free(dx), free(dw), free(ws), free(ws_dx);
    }
    double peak2 = sgemm_gflops(2048, threads_omp);
    if (peak2 > peak) peak = peak2;

    const char *policy = getenv("OMP_WAIT_POLICY");
    printf("bench_conv_cpu: %s convolutions, batch %d, %dx%d input, %d OpenMP threads, "
           "OMP_WAIT_POLICY=%s, im2col chunks of at most %zu MB\n",
           vgg ? "VGG16" : "ResNet50", batch, H, W, threads_omp, policy ? policy : "(unset)",
           mm_cpu_conv_ws_budget >> 20);
    printf("%s; Winograd from %lld output pixels, turned data gradients from %lld\n",
           mm_blas_describe(), (long long)mm_cpu_winograd_min_pixels,
           (long long)mm_cpu_conv_turn_min_pixels);
    printf("OpenBLAS SGEMM 2048x2048x2048: %.1f GFLOP/s (its own %d threads); split over the "
           "OpenMP threads as the kernels run it: %.1f GFLOP/s\n\n",
           peak, threads_omp, ours);
    printf("%-24s %16s %9s %7s %7s %7s %7s %6s\n", "layer (GFLOP/s)", "n,h,w,c->k", "GFLOP",
           "fwd", "bwd-d", "bwd-f", "all", "ratio");
    double big_flops = 0, big_time = 0, all_flops = 0, all_time = 0;
    for (int i = 0; i < nres; i++) {
        const result *r = &res[i];
        printf("%-24s %16s %9.3f %7.1f %7.1f %7.1f %7.1f %6.2f%s\n", r->name, r->shape, r->gflop,
               r->rate[0], r->rate[1], r->rate[2], r->all, r->all / peak,
               r->direct ? "  (direct GEMM)" : "");
        all_flops += r->gflop, all_time += r->gflop / r->all;
        if (r->large) big_flops += r->gflop, big_time += r->gflop / r->all;
    }
    printf("\nall layers:   %.1f GFLOP/s = %.2f of SGEMM\n", all_flops / all_time,
           all_flops / all_time / peak);
    if (big_time > 0)
        printf("large layers (7x7, 3x3, strided 1x1): %.1f GFLOP/s = %.2f of SGEMM "
               "(target >= 0.50)\n",
               big_flops / big_time, big_flops / big_time / peak);
    return 0;
}
