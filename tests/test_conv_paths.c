/* The CPU's faster ways to run convolutions in whole training steps: Winograd F(2x2, 3x3)
 * (kernels/cpu/winograd.c) and stride-1 data gradients run as forward convolutions of dy
 * (conv2d.c), with their thresholds at 0 so that every convolution they apply to takes them,
 * against the same step with neither (im2col GEMMs, tested against the naive loops and finite
 * differences in test_ops_cpu): small whole-image VGG16 and ResNet50 of nets/ (width 1/16, so
 * 16 to 128 channels where they apply); the loss and probabilities, then every gradient and BN
 * statistic, each array against its largest element.
 *
 * How close is close enough. VGG16 (no batch norm) agrees to 1e-4 (measured 9e-6). ResNet50 at
 * batch 2 does not take rounding quietly: with im2col alone, OpenBLAS's Haswell kernels against
 * its SkylakeX ones move the gradients of layer3.4 and everything before it by up to 0.6% of
 * their largest element (a ReLU input within rounding of zero flips), and Winograd against
 * im2col by up to 2.3%. So ResNet50's arrays are held to 5%: a wrong transform, tile or sum is
 * off by the whole value (each such sabotage fails both tests).
 */
#include <math.h>
#include <stdlib.h>

#include "kernels/cpu/cpu_internal.h"
#include "nets/nets.h"
#include "runtime/backend.h"
#include "runtime/session.h"
#include "tests/hand_nets.h"
#include "tests/harness.h"

/* One step of c on a fresh cpu backend with the faster paths everywhere (fast) or nowhere:
 * hn_results' arrays (the loss, the probabilities, then the gradients and statistics in the
 * graph's order). m is left built for the caller to walk the values. */
static float *one_step(const mm_model_config *c, int fast, mm_model *m)
{
    int64_t saved_wino = mm_cpu_winograd_min_pixels, saved_turn = mm_cpu_conv_turn_min_pixels;
    mm_cpu_winograd_min_pixels = mm_cpu_conv_turn_min_pixels = fast ? 0 : INT64_MAX;
    float *res = NULL;
    mm_backend *be = NULL;
    mm_session s;
    int64_t n;
    if (mm_model_build(m, c) == MM_OK && mm_backend_cpu_create(&be) == MM_OK &&
        mm_session_init(&s, m->g, be, 2) == MM_OK) {
        mm_model_init(m, &s, 5);
        hn_write_inputs(&s, m->g);
        mm_session_run(&s);
        res = hn_results(&s, m->g, m->loss, m->probs, &n);
        mm_session_free(&s);
    }
    CHECK_MSG(res != NULL, "%s", mm_last_error());
    if (be) mm_backend_destroy(be);
    mm_cpu_winograd_min_pixels = saved_wino, mm_cpu_conv_turn_min_pixels = saved_turn;
    return res;
}

/* Largest |a - b| over the largest |b| of n elements. */
static double rel_to_max(const float *a, const float *b, int64_t n)
{
    double max = 0, err = 0;
    for (int64_t i = 0; i < n; i++) {
        if (fabs(b[i]) > max) max = fabs(b[i]);
        double e = fabs((double)a[i] - b[i]);
        if (!(e <= err)) err = e; /* a NaN sticks */
    }
    return max > 0 ? err / max : err;
}

static void same_step(const mm_model_config *c, double tol)
{
    mm_model fast, plain;
    float *a = one_step(c, 1, &fast), *b = one_step(c, 0, &plain);
    if (a && b) {
        const mm_graph *g = plain.g;
        const float *p = a, *q = b;
        double worst = 0;
        int64_t differ = 0;
        for (int v = 0; v < g->n_values; v++) {
            const mm_value *val = &g->values[v];
            int forward = v == plain.loss || v == plain.probs;
            if (!forward && val->kind != MM_VALUE_GRAD && val->kind != MM_VALUE_STATE) continue;
            int64_t n = mm_shape_numel(val->ndim, val->shape);
            double e = rel_to_max(p, q, n);
            CHECK_MSG(e <= (forward ? 1e-5 : tol), "%s: off by %.3g of its largest element",
                      forward ? (v == plain.loss ? "the loss" : "the probabilities") : val->name,
                      e);
            if (!(e <= worst)) worst = e;
            differ += hn_bitwise_diff(p, q, n);
            p += n, q += n;
        }
        printf("  worst array off by %.3g of its largest element\n", worst);
        CHECK_MSG(differ > 0, "the same bits: the faster paths did not run");
    }
    free(a), free(b);
    mm_model_free(&fast), mm_model_free(&plain);
}

MM_TEST(vgg16_step_with_winograd_and_turned_gradients)
{
    mm_model_config c = hn_small_whole(MM_TRUNK_VGG16, "32x1,32x1", 128, 128, true);
    same_step(&c, 1e-4);
}

MM_TEST(resnet50_step_with_winograd_and_turned_gradients)
{
    mm_model_config c =
        hn_small_whole(MM_TRUNK_RESNET50, "[16-16-32]x2,[16-16-32]x1", 256, 192, true);
    same_step(&c, 0.05);
}
