/* Deterministic mode of the CUDA backend (backend.h deterministic, --deterministic):
 *  - training steps of the small whole-image ResNet50 and VGG16 of nets/ (reduced width, 64x64,
 *    batch 2), each from a fresh backend that chooses its convolutions anew, give the same bits
 *    in fp32, tf32 and bf16;
 *  - on the emulated GPU with CUEMU_NONDETERMINISTIC=1 the algorithms cuDNN reports
 *    nondeterministic change their last bits every run (tests/cuemu/cuemu_conv.h), and the same
 *    steps without the mode differ: so the check above fails if the mode takes one of them;
 * (test_ops_cuda's cuda_conv2d_deterministic holds the convolutions this mode chooses to the
 * CPU's.)
 * Without a GPU every test prints SKIPPED (no GPU); test_deterministic_cuda_emu runs them on the
 * emulated GPU. */
#include <stdlib.h>

#include "nets/nets.h"
#include "tests/hand_nets.h"
#include "tests/harness.h"

/* One step of the small model of `trunk` on a fresh CUDA backend, deterministic or not. */
static float *step(mm_trunk trunk, mm_precision p, bool deterministic, int64_t *n)
{
    const char *top = trunk == MM_TRUNK_RESNET50 ? "[16-16-32]x1" : "32x1";
    mm_model_config c = hn_small_whole(trunk, top, 64, 64, true);
    mm_backend *be = NULL;
    mm_status st = mm_backend_cuda_create_ex(&be, p, 0);
    CHECK_MSG(st == MM_OK, "cuda backend: %s", mm_last_error());
    if (st != MM_OK) return NULL;
    be->deterministic = deterministic;
    mm_model_config_for_backend(&c, be);
    hn_built built;
    float *res = hn_run_model(&c, be, &built, n);
    mm_backend_destroy(be);
    return res;
}

static const mm_precision precisions[3] = {MM_PRECISION_FP32, MM_PRECISION_TF32,
                                           MM_PRECISION_BF16};

MM_TEST(cuda_deterministic_steps_repeat_bitwise)
{
    if (!mm_cuda_available(NULL, 0)) MM_SKIP("no GPU");
    setenv("CUEMU_NONDETERMINISTIC", "1", 1);
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < 3; i++) {
            mm_trunk trunk = t == 0 ? MM_TRUNK_RESNET50 : MM_TRUNK_VGG16;
            const char *what = mm_precision_name(precisions[i]);
            int64_t n[4];
            float *det[2], *free_run[2];
            for (int k = 0; k < 2; k++) det[k] = step(trunk, precisions[i], true, &n[k]);
            for (int k = 0; k < 2; k++) free_run[k] = step(trunk, precisions[i], false, &n[2 + k]);
            bool ok = det[0] && det[1] && free_run[0] && free_run[1] && n[0] == n[1] &&
                      n[2] == n[3];
            CHECK_MSG(ok, "%s %s: the steps could not be compared", mm_trunk_name(trunk), what);
            if (ok) {
                int64_t diff = hn_bitwise_diff(det[0], det[1], n[0]);
                CHECK_MSG(diff == 0, "%s %s: %lld of %lld results differ between deterministic "
                          "runs", mm_trunk_name(trunk), what, (long long)diff, (long long)n[0]);
                /* emulated, the nondeterministic algorithms the timed choice takes do move */
                if (mm_cuda_emulated())
                    CHECK_MSG(hn_bitwise_diff(free_run[0], free_run[1], n[2]) > 0,
                              "%s %s: the runs without the mode agree bitwise too: the test "
                              "cannot tell", mm_trunk_name(trunk), what);
            }
            for (int k = 0; k < 2; k++) {
                free(det[k]);
                free(free_run[k]);
            }
        }
    unsetenv("CUEMU_NONDETERMINISTIC");
}
