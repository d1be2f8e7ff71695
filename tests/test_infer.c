/* Evaluation-mode inference (train/infer.c) and its test-time augmentation: the probabilities
 * with --tta must be the average of plain inference over the four flipped copies of every image
 * (none, columns, rows, both), flipped here in the image files themselves, so the check does not
 * share the code under test. Three images with batch 2: the short last batch is padded. On the
 * CPU, and on CUDA where there is a GPU (test_infer_emu: the emulated one).
 *
 * A TTA that did nothing, flipped the wrong axis, skipped a view or mixed up images would move
 * some probability: the test also checks that the flips change the result at all. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/philox.h"
#include "nets/nets.h"
#include "runtime/backend.h"
#include "runtime/session.h"
#include "tests/harness.h"
#include "tools/png_io.h"
#include "train/infer.h"

#define H 64
#define W 48
#define N_IMAGES 3
#define CLASSES 2

/* Image i as 16-bit pixels, flipped by `view` (0 none, 1 columns, 2 rows, 3 both). */
static void make_png(const char *path, int i, int view)
{
    mm_image img = {H, W, 16, malloc((size_t)H * W * sizeof(uint16_t))};
    uint16_t *px = img.pixels;
    for (int r = 0; r < H; r++)
        for (int c = 0; c < W; c++) {
            int rr = view & 2 ? H - 1 - r : r, cc = view & 1 ? W - 1 - c : c;
            /* a bright blob off-centre on noise, different per image: flips matter */
            double d = hypot(rr - H * (0.3 + 0.2 * i), cc - W * 0.7);
            double v = 40000.0 * exp(-d * d / 120.0) +
                       8000.0 * mm_philox_uniform(77 + (uint64_t)i, (uint64_t)(rr * W + cc));
            px[r * W + c] = (uint16_t)v;
        }
    CHECK_EQ_INT(mm_png_write(path, &img), MM_OK);
    mm_image_free(&img);
}

static void check_tta(const char *device)
{
    char paths[4][N_IMAGES][600];
    mm_loader_item items[4][N_IMAGES];
    for (int v = 0; v < 4; v++)
        for (int i = 0; i < N_IMAGES; i++) {
            snprintf(paths[v][i], sizeof paths[v][i], "%s/img%d_view%d.png", mm_test_tmpdir(), i,
                     v);
            make_png(paths[v][i], i, v);
            items[v][i] = (mm_loader_item){paths[v][i], i % CLASSES, 1.0f};
        }
    mm_backend *be = NULL;
    CHECK_EQ_INT(mm_backend_open(device, MM_PRECISION_FP32, &be), MM_OK);
    if (!be) return;
    mm_model_config c = mm_model_config_default(MM_MODEL_WHOLE, MM_TRUNK_RESNET50);
    c.top = "[16-16-64]x1";
    c.width_div = 16;
    c.batch = 2;
    c.height = H;
    c.width = W;
    c.training = false;
    mm_model_config_for_backend(&c, be);
    mm_model m;
    mm_session s;
    CHECK_EQ_INT(mm_model_build(&m, &c), MM_OK);
    CHECK_EQ_INT(mm_session_init(&s, m.g, be, 0), MM_OK);
    mm_model_init(&m, &s, 5);

    mm_infer_opts plain = {1.0f / 65535.0f, 0.3f, false, 1}, tta = plain;
    tta.tta = true;
    float got[N_IMAGES * CLASSES], view[N_IMAGES * CLASSES], want[N_IMAGES * CLASSES] = {0};
    CHECK_EQ_INT(mm_infer(got, &m, &s, items[0], N_IMAGES, &tta), MM_OK);
    double moved = 0;
    for (int v = 0; v < 4; v++) {
        CHECK_EQ_INT(mm_infer(view, &m, &s, items[v], N_IMAGES, &plain), MM_OK);
        for (int k = 0; k < N_IMAGES * CLASSES; k++) want[k] += view[k] / 4; /* infer.c's order */
        if (v == 0)
            for (int k = 0; k < N_IMAGES * CLASSES; k++) moved = fmax(moved, fabs(got[k] - view[k]));
    }
    double worst = 0;
    for (int k = 0; k < N_IMAGES * CLASSES; k++) worst = fmax(worst, fabs(got[k] - want[k]));
    printf("    %s: TTA moved the probabilities by up to %.3g; off the flipped files' mean by "
           "%.3g\n",
           device, moved, worst);
    CHECK_MSG(worst <= 1e-6, "%s: TTA differs from the mean over the flipped images by %g",
              device, worst);
    CHECK_MSG(moved > 1e-4, "%s: the flips changed nothing (%g): the test proves nothing", device,
              moved);
    mm_session_free(&s);
    mm_model_free(&m);
    mm_backend_destroy(be);
}

MM_TEST(tta_is_the_mean_over_the_flipped_images) { check_tta("cpu"); }

MM_TEST(tta_on_cuda_is_the_mean_over_the_flipped_images)
{
    if (!mm_cuda_available(NULL, 0)) MM_SKIP("no GPU");
    check_tta("cuda");
}
