/* The command line with --device cuda, end to end, as a user runs it (the built binary through a
 * shell) on a small dataset of PNG mammograms (tests/png_dataset.h): the patch classifier, the
 * whole-image classifier in fp32 and in bf16, and predictions, each against the same command on
 * the CPU.
 * A training run's first step is compared (its loss: the same model, batch and data on both
 * devices); later steps are not, since Adam's first update takes the sign of every gradient
 * component, and components that are zero up to rounding then differ between the devices.
 * Predictions of one model must agree image by image. Two --deterministic runs must end with
 * the same weights to the bit.
 *
 * Without a GPU this prints SKIPPED (no GPU); its twin test_cli_cuda_emu runs the same commands
 * with mammo_emu, the command line on the emulated GPU (tests/cuemu). */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "runtime/backend.h"
#include "runtime/dist.h"
#include "tests/checkpoint_diff.h"
#include "tests/free_port.h"
#include "tests/harness.h"
#include "tests/png_dataset.h"

/* Runs `mammo ARGS` in the test's folder, its output appended to run.log there; returns the
 * exit status. */
static int mammo(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int mammo(const char *fmt, ...)
{
    char args[1536], cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s >>run.log 2>&1", mm_test_tmpdir(),
             MM_MAMMO_EXE, args);
    int rc = system(cmd);
    int st = rc == -1 ? -1 : WEXITSTATUS(rc);
    if (st != 0) fprintf(stderr, "    `mammo %s` exited %d (see run.log)\n", args, st);
    return st;
}

static char *path(const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", mm_test_tmpdir(), name);
    return buf[k];
}

/* The losses of the training steps in RUN/metrics.jsonl, in order; returns the count. */
static int step_losses(const char *run, double *loss, int cap)
{
    char file[600], line[1024];
    snprintf(file, sizeof file, "%s/metrics.jsonl", path(run));
    FILE *f = fopen(file, "r");
    int n = 0;
    while (f && fgets(line, sizeof line, f)) {
        const char *l = strstr(line, "\"event\":\"step\"") ? strstr(line, "\"loss\":") : NULL;
        if (!l) continue;
        if (n < cap) loss[n] = strtod(l + 7, NULL);
        n++;
    }
    if (f) fclose(f);
    return n;
}

/* Elements of the tensors of checkpoints a and b (in the test's folder) that differ bitwise
 * (-1: unreadable, or not the same tensors). */
static int64_t weights_differ(const char *a, const char *b)
{
    return checkpoint_elements_differ(path(a), path(b), NULL, 0);
}

/* The loss of the first training step in RUN/metrics.jsonl, or NAN. */
static double first_loss(const char *run)
{
    double loss = NAN;
    step_losses(run, &loss, 1);
    return loss;
}

/* The score column of a predictions CSV (image,label,score); returns the count. */
static int read_scores(const char *name, double *scores, int cap)
{
    FILE *f = fopen(path(name), "r");
    char line[1024];
    int n = 0;
    while (f && fgets(line, sizeof line, f)) {
        const char *c = strrchr(line, ',');
        if (!c || strstr(line, "score")) continue;
        if (n < cap) scores[n] = strtod(c + 1, NULL);
        n++;
    }
    if (f) fclose(f);
    return n;
}

/* patches/patches.csv with its first `keep` training rows only (two steps of 16). */
static void cut_patch_set(int keep)
{
    FILE *in = fopen(path("patches/patches.csv"), "r");
    FILE *out = fopen(path("patches/few.csv"), "w");
    CHECK(in && out);
    char line[2048];
    int kept = 0, row = 0;
    while (in && out && fgets(line, sizeof line, in)) {
        bool train = strstr(line, ",train,") != NULL;
        if (row++ == 0 || !train || kept++ < keep) fputs(line, out);
    }
    if (in) fclose(in);
    if (out) fclose(out);
}

static bool exists(const char *name)
{
    struct stat st;
    return stat(path(name), &st) == 0;
}

/* PNG mammograms (GPU machines build without DICOM, so no `mammo synth` there), prepared at
 * 96x64, and their 32-pixel patch set cut to `keep` training rows (patches/few.csv). */
static void patch_set(int keep)
{
    mm_status st = png_dataset_write(path("dl"), 40, 192, 128, 1);
    CHECK_MSG(st == MM_OK, "dataset: %s", mm_last_error());
    CHECK_EQ_INT(mammo("prep --index dl/index.csv --out prep --height 96 --width 64 --quiet"), 0);
    CHECK_EQ_INT(mammo("patches --index prep/index.csv --out patches --size 32 --seed 1 --quiet"),
                 0);
    cut_patch_set(keep);
}

/* The GPUs this machine has (2 emulated ones on the emulator: CUEMU_DEVICES, which mammo's
 * runs inherit). */
static int visible_gpus(void)
{
    if (mm_cuda_emulated()) setenv("CUEMU_DEVICES", "2", 1);
    int n = 0;
    for (mm_backend *be = NULL; n < 64; n++) {
        char name[32];
        snprintf(name, sizeof name, "cuda:%d", n);
        if (mm_backend_open(name, MM_PRECISION_FP32, &be) != MM_OK) break;
        mm_backend_destroy(be);
    }
    return n;
}

MM_TEST(cli_trains_and_predicts_on_cuda)
{
    if (!mm_cuda_available(NULL, 0)) MM_SKIP("no GPU");
    const char *trunk = "--net resnet50 --width-div 16 --seed 1";
    patch_set(32);

    /* the patch classifier: one stage of two steps on each device */
    const char *devs[2] = {"cpu", "cuda"};
    double patch_loss[2], top_loss[2], predicted[2][64];
    int n_pred[2];
    for (int d = 0; d < 2; d++) {
        CHECK_EQ_INT(mammo("train-patch --patches patches/few.csv --run patch-%s %s --input 32x32 "
                           "--batch 16 --epochs 0,0,1 --lr 3e-3,3e-3,2e-3 --device %s",
                           devs[d], trunk, devs[d]),
                     0);
        char run[32];
        snprintf(run, sizeof run, "patch-%s", devs[d]);
        patch_loss[d] = first_loss(run);
    }
    CHECK_MSG(fabs(patch_loss[1] - patch_loss[0]) <= 1e-4 * fabs(patch_loss[0]),
              "train-patch first loss: cuda %.8g, cpu %.8g", patch_loss[1], patch_loss[0]);

    /* the whole-image classifier from the CPU's patch model: its top stage in fp32 on each
     * device, then the CUDA-trained model's predictions on both devices */
    for (int d = 0; d < 2; d++) {
        CHECK_EQ_INT(mammo("train-image --index prep/index.csv --patch-model "
                           "patch-cpu/best.safetensors --run image-%s --input 96x64 "
                           "--top '[32-32-128]x1' --batch 2 --epochs 1,0 --lr 1e-3,3e-4 --seed 1 "
                           "--device %s",
                           devs[d], devs[d]),
                     0);
        char run[32];
        snprintf(run, sizeof run, "image-%s", devs[d]);
        top_loss[d] = first_loss(run);
    }
    CHECK_MSG(fabs(top_loss[1] - top_loss[0]) <= 1e-4 * fabs(top_loss[0]),
              "train-image first loss: cuda %.8g, cpu %.8g", top_loss[1], top_loss[0]);

    /* the same run with every step after the first replayed as a CUDA graph: the same losses
     * step by step (the same kernels on the same batches). On the emulated GPU the two runs
     * choose the same algorithms, so every step agrees to rounding; on a card each run times
     * its own choices, and Adam's first update (the sign of each gradient component) makes
     * later steps drift apart, so there the first replayed step is compared, looser. */
    CHECK_EQ_INT(mammo("train-image --index prep/index.csv --patch-model "
                       "patch-cpu/best.safetensors --run image-graph --input 96x64 "
                       "--top '[32-32-128]x1' --batch 2 --epochs 1,0 --lr 1e-3,3e-4 --seed 1 "
                       "--device cuda --cuda-graph"),
                 0);
    double eager[64], replayed[64];
    int n_eager = step_losses("image-cuda", eager, 64);
    int n_replayed = step_losses("image-graph", replayed, 64);
    CHECK_MSG(n_eager >= 3 && n_replayed == n_eager, "%d steps eager, %d replayed", n_eager,
              n_replayed);
    int compared = mm_cuda_emulated() ? n_eager : 2;
    double tol = mm_cuda_emulated() ? 1e-5 : 1e-2;
    for (int i = 0; i < compared && i < n_replayed && i < 64; i++)
        CHECK_MSG(fabs(replayed[i] - eager[i]) <= tol * fabs(eager[i]),
                  "step %d: loss %.8g replayed, %.8g eager", i + 1, replayed[i], eager[i]);
    for (int d = 0; d < 2; d++) {
        CHECK_EQ_INT(mammo("predict --model image-cuda/best.safetensors --index prep/index.csv "
                           "--split test --tta --out pred-%s.csv --device %s",
                           devs[d], devs[d]),
                     0);
        char csv[32];
        snprintf(csv, sizeof csv, "pred-%s.csv", devs[d]);
        n_pred[d] = read_scores(csv, predicted[d], 64);
    }
    CHECK(n_pred[0] > 4 && n_pred[0] == n_pred[1]);
    for (int i = 0; i < n_pred[0] && i < 64; i++)
        CHECK_MSG(fabs(predicted[1][i] - predicted[0][i]) <= 1e-4,
                  "image %d: cuda score %.7g, cpu %.7g", i, predicted[1][i], predicted[0][i]);
    /* and with --deterministic (cuDNN's heuristic choices): the same scores to rounding */
    CHECK_EQ_INT(mammo("predict --model image-cuda/best.safetensors --index prep/index.csv "
                       "--split test --tta --out pred-det.csv --device cuda --deterministic"),
                 0);
    double det_scores[64];
    CHECK_EQ_INT(read_scores("pred-det.csv", det_scores, 64), n_pred[0]);
    for (int i = 0; i < n_pred[0] && i < 64; i++)
        CHECK_MSG(fabs(det_scores[i] - predicted[0][i]) <= 1e-4,
                  "image %d: deterministic cuda score %.7g, cpu %.7g", i, det_scores[i],
                  predicted[0][i]);

    /* all layers in bf16 (fp32 master weights): trains, and its first loss is the fp32 one up
     * to bf16's rounding of the activations. That rounding moves this loss a lot: the trunk's
     * layers have 4 to 128 channels (width 1/16) and its batch norms see 2 images, so nothing
     * averages the rounding out over some 50 layers (measured: 15% here, 1.7% at width 1/4). */
    const char *image = "train-image --index prep/index.csv --patch-model "
                        "patch-cpu/best.safetensors --input 96x64 --top '[32-32-128]x1' --batch 2 "
                        "--epochs 0,1 --lr 1e-3,3e-4 --seed 1";
    CHECK_EQ_INT(mammo("%s --run image-bf16 --device cuda --precision bf16", image), 0);
    CHECK(exists("image-bf16/best.safetensors"));
    CHECK_EQ_INT(mammo("%s --run image-all-cpu --device cpu", image), 0);
    double bf16 = first_loss("image-bf16"), fp32 = first_loss("image-all-cpu");
    CHECK_MSG(fabs(bf16 - fp32) <= 0.25 * fabs(fp32), "bf16 first loss %.6g, cpu fp32 %.6g", bf16,
              fp32);

    /* --deterministic: two runs end with the same weights to the bit (last.safetensors), also
     * where the emulated GPU's nondeterministic algorithms change their last bits every run
     * (CUEMU_NONDETERMINISTIC), and on a card, where two timed searches may choose differently;
     * emulated, two runs without the flag differ, so the check can fail */
    setenv("CUEMU_NONDETERMINISTIC", "1", 1);
    const char *modes[2] = {"det", "timed"};
    int64_t differ[2];
    for (int m = 0; m < 2; m++) {
        if (m == 1 && !mm_cuda_emulated()) break;
        for (int k = 0; k < 2; k++)
            CHECK_EQ_INT(mammo("%s --run image-%s%d --device cuda --precision tf32%s", image,
                               modes[m], k, m == 0 ? " --deterministic" : ""),
                         0);
        char a[32], b[32];
        snprintf(a, sizeof a, "image-%s0/last.safetensors", modes[m]);
        snprintf(b, sizeof b, "image-%s1/last.safetensors", modes[m]);
        differ[m] = weights_differ(a, b);
    }
    unsetenv("CUEMU_NONDETERMINISTIC");
    CHECK_MSG(differ[0] == 0, "%lld weights differ between two --deterministic runs",
              (long long)differ[0]);
    if (mm_cuda_emulated())
        CHECK_MSG(differ[1] > 0, "the runs without --deterministic end with the same weights "
                  "too: the check above cannot tell");
}

/* `mammo bench` on cuda, stepping node by node, replaying its CUDA graph, and replaying it while
 * copying the batch in and reading the loss every step as training does (--feed): the same steps
 * on the same random batch with the weights kept (--lr 0), so the same loss; the peak is the
 * plan's. */
MM_TEST(cli_bench_on_cuda)
{
    if (!mm_cuda_available(NULL, 0)) MM_SKIP("no GPU");
    double loss[3];
    const char *modes[3] = {"", " --cuda-graph", " --cuda-graph --feed"};
    for (int graph = 0; graph < 3; graph++) {
        CHECK_EQ_INT(mammo("bench --net resnet50 --width-div 16 --top '[32-32-128]x1' "
                           "--input 64x48 --batch 2 --device cuda --precision bf16 --steps 3 "
                           "--warmup 1 --lr 0%s",
                           modes[graph]),
                     0);
        /* its result: the last such line of run.log */
        char line[2048] = "", buf[2048];
        FILE *f = fopen(path("run.log"), "r");
        while (f && fgets(buf, sizeof buf, f))
            if (!strncmp(buf, "mammo net=", 10)) memcpy(line, buf, sizeof line);
        if (f) fclose(f);
        CHECK_MSG(strstr(line, " device=cuda precision=bf16 ") != NULL, "no result line: %s",
                  line);
        loss[graph] = mm_test_field(line, "loss");
        CHECK(isfinite(loss[graph]) && loss[graph] > 0);
        /* the device memory held: the plan's, and cuBLAS's fixed 32 MiB of scratch, no more */
        double extra =
            mm_test_field(line, "peak_mem_bytes") - mm_test_field(line, "planned_peak_bytes");
        CHECK_MSG(extra >= 0 && extra <= 32 << 20, "%.0f bytes held beyond the plan", extra);
        CHECK_EQ_INT((int64_t)mm_test_field(line, "width_div"), 16);
        /* the convolutions' time as searched, for a profile to be set against */
        CHECK(mm_test_field(line, "conv_searched_ms") > 0);
        CHECK_EQ_INT((int64_t)mm_test_field(line, "feed"), graph == 2);
        /* how its convolution shapes run: ResNet50's 1x1s, 3x3s and stem, some way each */
        int legacy = -1, nchw = -1, graph_n = -1, gemm = -1;
        const char *convs = strstr(line, " convs=");
        CHECK_MSG(convs && sscanf(convs, " convs=legacy:%d,nchw:%d,graph:%d,gemm:%d", &legacy,
                                  &nchw, &graph_n, &gemm) == 4,
                  "no convs= field: %s", line);
        CHECK_MSG(legacy + nchw + graph_n + gemm >= 20,
                  "convs: legacy %d, nchw %d, graph %d, gemm %d", legacy, nchw, graph_n, gemm);
        /* bf16 data never goes to NCHW copies (a shape cuDNN has no bf16 algorithm for runs in
         * fp32 and may; the emulated cuDNN has them all) */
        if (mm_cuda_emulated()) CHECK_EQ_INT(nchw, 0);
    }
    /* emulated, the runs choose the same algorithms; on a card each run times its own, whose
     * bf16 sums round differently (with Adam steps, the runs would drift apart: after four,
     * H200 gave 0.93 and 0.59) */
    double tol = mm_cuda_emulated() ? 1e-6 : 2e-2;
    CHECK_MSG(fabs(loss[1] - loss[0]) <= tol * loss[0], "loss replaying %.7g, stepping %.7g",
              loss[1], loss[0]);
    CHECK_MSG(fabs(loss[2] - loss[0]) <= tol * loss[0], "loss fed %.7g, stepping %.7g", loss[2],
              loss[0]);
}

/* The lines of run.log: how many, and the last. */
static int log_lines(char *last, size_t n)
{
    char buf[2048];
    int count = 0;
    last[0] = '\0';
    FILE *f = fopen(path("run.log"), "r");
    while (f && fgets(buf, sizeof buf, f)) {
        snprintf(last, n, "%s", buf);
        count++;
    }
    if (f) fclose(f);
    return count;
}

/* Checks that runs a and b (each called so in messages) logged `steps` steps of the same
 * losses, to a relative `rtol`. */
static void same_losses(const char *a, const char *a_is, const char *b, const char *b_is,
                        int steps, double rtol)
{
    double la[8], lb[8];
    int na = step_losses(a, la, 8), nb = step_losses(b, lb, 8);
    CHECK_EQ_INT(na, steps);
    CHECK_EQ_INT(nb, na);
    for (int i = 0; i < na && i < nb && i < 8; i++)
        CHECK_MSG(fabs(lb[i] - la[i]) <= rtol * fabs(la[i]), "step %d: %s %.8g, %s %.8g", i + 1,
                  b_is, lb[i], a_is, la[i]);
}

/* train-patch on two GPUs (emulated: CUEMU_DEVICES=2), data parallel with 8 images each, each
 * step after the first replayed as a CUDA graph, against the cpu with one batch of 16: VGG16 has
 * no batch norm and --no-balance makes every sample weigh 1, so the mean of the replicas'
 * averaged gradients is the batch of 16's, and each step's loss must agree. */
MM_TEST(cli_trains_with_replicas_on_cuda)
{
    if (!mm_cuda_available(NULL, 0)) MM_SKIP("no GPU");
    if (visible_gpus() < 2) MM_SKIP("needs 2 GPUs");
    patch_set(32);
    const char *flags = "--patches patches/few.csv --net vgg16 --width-div 16 --input 32x32 "
                        "--no-balance --epochs 0,0,1 --lr 1e-3,1e-3,1e-3 --seed 1";
    CHECK_EQ_INT(mammo("train-patch %s --run one --batch 16 --device cpu", flags), 0);
    CHECK_EQ_INT(mammo("train-patch %s --run two --batch 8 --device cuda --replicas 2 "
                       "--cuda-graph", flags),
                 0);
    same_losses("one", "cpu x 16", "two", "2 GPUs x 8", 2, 1e-4);
    CHECK(exists("two/best.safetensors"));
    if (mm_cuda_emulated()) unsetenv("CUEMU_DEVICES");
}

/* Gradient accumulation on one GPU: 2 micro-batches of 8 a step against the cpu's batch of 16
 * (VGG16 without batch norm, every sample weighing 1: the same mean gradient), step by step;
 * and on the emulator, bitwise the weights of --replicas 2 on two GPUs. */
MM_TEST(cli_accumulates_on_cuda)
{
    if (!mm_cuda_available(NULL, 0)) MM_SKIP("no GPU");
    patch_set(32);
    const char *flags = "--patches patches/few.csv --net vgg16 --width-div 16 --input 32x32 "
                        "--no-balance --epochs 0,0,1 --lr 1e-3,1e-3,1e-3 --seed 1";
    CHECK_EQ_INT(mammo("train-patch %s --run cpu16 --batch 16 --device cpu", flags), 0);
    CHECK_EQ_INT(mammo("train-patch %s --run acc --batch 8 --accumulate 2 --device cuda", flags),
                 0);
    same_losses("cpu16", "cpu x 16", "acc", "cuda 2 x 8 accumulated", 2, 1e-4);
    if (mm_cuda_emulated() && visible_gpus() >= 2) {
        CHECK_EQ_INT(mammo("train-patch %s --run rep --batch 8 --replicas 2 --device cuda",
                           flags),
                     0);
        CHECK_EQ_INT(weights_differ("acc/last.safetensors", "rep/last.safetensors"), 0);
        unsetenv("CUEMU_DEVICES");
    }
}

/* Two nodes (--nodes 2, runtime/group.h) of one GPU each, as two processes on this machine on
 * GPUs 0 and 1 (emulated: CUEMU_DEVICES=2, NCCL's communicator across the processes meeting in
 * a folder), against one process with --replicas 2 on the same GPUs: the same step losses and,
 * on the emulator (whose NCCL sums in rank order either way), the same weights to the bit. */
MM_TEST(cli_trains_on_two_nodes_on_cuda)
{
    if (!mm_cuda_available(NULL, 0)) MM_SKIP("no GPU");
    if (visible_gpus() < 2) MM_SKIP("needs 2 GPUs");
    char why[256];
    if (!mm_nccl_compiled(why, sizeof why)) MM_SKIP("built without NCCL");
    patch_set(32);
    const char *flags = "--patches patches/few.csv --net vgg16 --width-div 16 --input 32x32 "
                        "--no-balance --epochs 0,0,2 --lr 1e-3,1e-3,1e-3 --seed 1 --batch 8 "
                        "--deterministic";
    CHECK_EQ_INT(mammo("train-patch %s --run one --device cuda --replicas 2", flags), 0);
    char cmd[2048];
    int port = free_port();
    snprintf(cmd, sizeof cmd, "cd '%s' && export MM_GROUP_TIMEOUT_S=60 && "
             "{ timeout 300 '%s' train-patch %s --run two --device cuda:1 --nodes 2 --node-rank 1 "
             "--master 127.0.0.1:%d >>node1.log 2>&1 & } && timeout 300 '%s' train-patch %s "
             "--run two --device cuda:0 --nodes 2 --node-rank 0 --master 127.0.0.1:%d "
             ">>run.log 2>&1 && wait $!", mm_test_tmpdir(), MM_MAMMO_EXE, flags, port,
             MM_MAMMO_EXE, flags, port);
    CHECK_EQ_INT(system(cmd), 0);
    same_losses("one", "2 replicas", "two", "2 nodes", 4, 1e-5);
    if (mm_cuda_emulated())
        CHECK_EQ_INT(weights_differ("one/last.safetensors", "two/last.safetensors"), 0);
    if (mm_cuda_emulated()) unsetenv("CUEMU_DEVICES");
}

/* mammo bench's last result line in run.log into line[n]. */
static void last_result(char *line, size_t n)
{
    char buf[2048];
    line[0] = '\0';
    FILE *f = fopen(path("run.log"), "r");
    while (f && fgets(buf, sizeof buf, f))
        if (!strncmp(buf, "mammo net=", 10)) snprintf(line, n, "%s", buf);
    if (f) fclose(f);
}

/* `mammo bench --eval` on cuda (replaying its graph, reading the logits every pass as predict
 * does) computes the cpu's evaluation pass: the same weights (seed 42) and random batch give the
 * same first logit; the device holds the plan and cuBLAS's scratch, no more. */
MM_TEST(cli_bench_eval_on_cuda_gives_the_cpu_logits)
{
    if (!mm_cuda_available(NULL, 0)) MM_SKIP("no GPU");
    const char *model = "--net resnet50 --width-div 16 --top '[32-32-128]x1' --input 64x48 "
                        "--batch 2 --eval";
    char line[2048];
    CHECK_EQ_INT(mammo("bench %s --device cpu --steps 1 --warmup 0", model), 0);
    last_result(line, sizeof line);
    CHECK_MSG(strstr(line, " mode=eval") != NULL, "no eval result: %s", line);
    double cpu = mm_test_field(line, "logit");
    CHECK_EQ_INT(mammo("bench %s --device cuda --cuda-graph --feed --steps 2 --warmup 1", model),
                 0);
    last_result(line, sizeof line);
    CHECK_MSG(strstr(line, " mode=eval") && strstr(line, " device=cuda "), "no eval result: %s",
              line);
    double cuda = mm_test_field(line, "logit");
    CHECK_MSG(isfinite(cpu) && fabs(cuda - cpu) <= 1e-4 + 1e-3 * fabs(cpu),
              "first logit: cuda %g, cpu %g", cuda, cpu);
    double extra =
        mm_test_field(line, "peak_mem_bytes") - mm_test_field(line, "planned_peak_bytes");
    CHECK_MSG(extra >= 0 && extra <= 32 << 20, "%.0f bytes held beyond the plan", extra);
}

/* Data-parallel replicas on two GPUs (emulated: CUEMU_DEVICES=2): every replica takes the same
 * batch in mammo bench, so the NCCL-averaged steps must give the single GPU's loss; each
 * captured as its own CUDA graph, fed every step; more replicas than GPUs is refused in one line
 * naming --replicas. */
MM_TEST(cli_bench_replicas_on_cuda)
{
    if (!mm_cuda_available(NULL, 0)) MM_SKIP("no GPU");
    int gpus = visible_gpus();
    if (gpus < 2) MM_SKIP("needs 2 GPUs");
    const char *cmd = "bench --net resnet50 --width-div 16 --top '[32-32-128]x1' --input 64x48 "
                      "--batch 2 --device cuda --steps 3 --warmup 1 --lr 1e-3 --cuda-graph "
                      "--feed";
    double loss[2];
    for (int n = 1; n <= 2; n++) {
        CHECK_EQ_INT(mammo("%s --replicas %d", cmd, n), 0);
        char line[2048];
        last_result(line, sizeof line);
        CHECK_EQ_INT((int64_t)mm_test_field(line, "replicas"), n);
        loss[n - 1] = mm_test_field(line, "loss");
        CHECK(isfinite(loss[n - 1]) && loss[n - 1] > 0);
    }
    /* emulated, both GPUs choose the same algorithms; on cards each times its own */
    double tol = mm_cuda_emulated() ? 1e-6 : 2e-2;
    CHECK_MSG(fabs(loss[1] - loss[0]) <= tol * loss[0], "loss on 2 GPUs %.7g, on 1 %.7g", loss[1],
              loss[0]);
    CHECK_EQ_INT(mammo("%s --replicas %d", cmd, gpus + 1), 1);
    char last[1024];
    log_lines(last, sizeof last);
    char want[64];
    snprintf(want, sizeof want, "mammo: --replicas %d: replica %d:", gpus + 1, gpus);
    CHECK_MSG(strstr(last, want) != NULL, "%s", last);
    if (mm_cuda_emulated()) unsetenv("CUEMU_DEVICES");
}

/* What the GPU cannot take ends in one line that names it, exit status 1: an image whose
 * activation is over cuDNN's limit of 2^31 - 1 elements (VGG16's first at 8192x4096: bigger
 * batches are split, one image cannot be), refused before any algorithm search or allocation; a GPU that is not there (cuda:64); and, on the emulated
 * GPU, whose memory a test can shrink (CUEMU_DEVICE_MB), a step bigger than the device. */
MM_TEST(cli_cuda_refuses_what_does_not_fit)
{
    if (!mm_cuda_available(NULL, 0)) MM_SKIP("no GPU");
    char last[2048];
    CHECK_EQ_INT(mammo("bench --net vgg16 --top 512x1,512x1 --input 8192x4096 --batch 1 "
                       "--device cuda --steps 1"),
                 1);
    CHECK_EQ_INT(log_lines(last, sizeof last), 1);
    CHECK_MSG(strstr(last, "mammo: --device cuda: the conv2d output [1, 8192, 4096, 64] has "
                           "2147483648 elements per image, more than cuDNN's limit") == last,
              "%s", last);
    /* a GPU index past the last GPU */
    CHECK_EQ_INT(mammo("bench --net resnet50 --width-div 16 --input 64x48 --device cuda:64 "
                       "--steps 1"),
                 1);
    CHECK_EQ_INT(log_lines(last, sizeof last), 2);
    CHECK_MSG(strstr(last, "mammo: --device cuda:64: no such GPU") == last, "%s", last);
    if (!mm_cuda_emulated()) return;
    setenv("CUEMU_DEVICE_MB", "40", 1); /* cuBLAS's 32 MiB fit, the step does not */
    CHECK_EQ_INT(mammo("bench --net resnet50 --width-div 16 --top '[32-32-128]x1' "
                       "--input 512x384 --batch 2 --device cuda --steps 1"),
                 1);
    unsetenv("CUEMU_DEVICE_MB");
    CHECK_EQ_INT(log_lines(last, sizeof last), 3);
    CHECK_MSG(strstr(last, "mammo: cuda device: cannot allocate ") == last &&
                  strstr(last, "use a smaller batch or input size"),
              "%s", last);
}

/* `mammo bench --scratch-mb N`: the convolutions' scratch may add up to N MiB to the peak for
 * faster algorithms, so fewer nodes are limited and the peak stays within N MiB of --scratch-mb
 * 0's (graph.h scratch_budget; the planner's own test checks the placement). The default, auto,
 * limits only the nodes a cap does not slow down much: never more than 0 does, and on the
 * emulator none under a cap, each keeping its scratch (ws_kept), where its only algorithm without
 * workspace is made 3 times slower (cuDNN's legacy algorithms alone, on a device slowed down so
 * that times are above the 0.02 ms that always counts as little); those whose scratch halves on
 * chunks of one sample at no cost run so (ws_chunked), and only they need less. */
MM_TEST(cli_bench_scratch_budget)
{
    if (!mm_cuda_available(NULL, 0)) MM_SKIP("no GPU");
    double peak[3], limited[3], kept[3], chunked[3];
    const char *mb[3] = {"0", "64", "auto"};
    for (int k = 0; k < 3; k++) {
        if (mm_cuda_emulated()) {
            setenv("CUEMU_CLOCK_SCALE", "1000", 1);
            setenv("CUEMU_NO_WS_COST", "3", 1);
            setenv("MM_CUDNN_GRAPH", "0", 1);
        }
        CHECK_EQ_INT(mammo("bench --net resnet50 --width-div 16 --top '[32-32-128]x1' "
                           "--input 128x96 --batch 2 --device cuda --steps 1 --warmup 1 "
                           "--scratch-mb %s",
                           mb[k]),
                     0);
        unsetenv("CUEMU_CLOCK_SCALE");
        unsetenv("CUEMU_NO_WS_COST");
        unsetenv("MM_CUDNN_GRAPH");
        char last[2048];
        log_lines(last, sizeof last);
        peak[k] = mm_test_field(last, "planned_peak_bytes");
        limited[k] = mm_test_field(last, "ws_limited");
        kept[k] = mm_test_field(last, "ws_kept");
        chunked[k] = mm_test_field(last, "ws_chunked");
    }
    CHECK_MSG(limited[1] <= limited[0],
              "nodes limited: %.0f with 64 MiB of budget, %.0f without", limited[1], limited[0]);
    CHECK_MSG(limited[2] <= limited[0], "nodes limited: %.0f auto, %.0f with --scratch-mb 0",
              limited[2], limited[0]);
    CHECK_MSG(kept[0] == 0 && kept[1] == 0, "ws_kept %.0f and %.0f with a budget", kept[0],
              kept[1]);
    if (mm_cuda_emulated()) /* the emulator's algorithms want scratch of about their operands */
        CHECK_MSG(limited[0] > 0 && limited[1] == 0 && limited[2] == chunked[2] && kept[2] > 0 &&
                      chunked[2] > 0,
                  "limited %.0f / %.0f / %.0f, kept auto %.0f, on chunks %.0f", limited[0],
                  limited[1], limited[2], kept[2], chunked[2]);
    CHECK_MSG(peak[1] <= peak[0] + (64 << 20), "peak %.0f with 64 MiB of budget, %.0f without",
              peak[1], peak[0]);
    CHECK_EQ_INT(mammo("bench --net resnet50 --width-div 16 --device cuda --steps 1 "
                       "--scratch-mb lots"),
                 1);
    char last[2048];
    log_lines(last, sizeof last);
    CHECK_MSG(strstr(last, "--scratch-mb lots: must be auto or 0..1048576") != NULL, "%s", last);
}

/* Convolutions split into chunks of samples (as those over cuDNN's 2^31 elements are; the
 * bound lowered with MM_CONV_CHUNK_ELEMS so the stem's batch of 2 runs as two chunks of one):
 * the same step, so the same loss. */
MM_TEST(cli_bench_in_chunks_of_samples)
{
    if (!mm_cuda_available(NULL, 0)) MM_SKIP("no GPU");
    double loss[2];
    for (int k = 0; k < 2; k++) {
        if (k) setenv("MM_CONV_CHUNK_ELEMS", "10000", 1); /* the 64x48x3 input: 9216 a sample */
        CHECK_EQ_INT(mammo("bench --net resnet50 --width-div 16 --top '[32-32-128]x1' "
                           "--input 64x48 --batch 2 --device cuda --steps 1 --warmup 1"),
                     0);
        unsetenv("MM_CONV_CHUNK_ELEMS");
        char last[2048];
        log_lines(last, sizeof last);
        loss[k] = mm_test_field(last, "loss");
    }
    double tol = mm_cuda_emulated() ? 1e-6 : 1e-2; /* a card's runs time their own algorithms */
    CHECK_MSG(isfinite(loss[0]) && fabs(loss[1] - loss[0]) <= tol * loss[0],
              "loss in chunks %.7g, whole %.7g", loss[1], loss[0]);
}

/* The search times each graph plan once (MM_CUDNN_VERBOSE=1 lists them per shape): the fallback
 * list repeats engines of heuristics mode A (the emulator's engine 11 is in both, as cuDNN's
 * engines were on the H200), and a configuration is the same when its engine and knob choices
 * are, so it is not timed twice and a slot of the search goes to another. */
MM_TEST(cli_search_times_each_graph_plan_once)
{
    if (!mm_cuda_available(NULL, 0)) MM_SKIP("no GPU");
    setenv("MM_CUDNN_VERBOSE", "1", 1);
    CHECK_EQ_INT(mammo("bench --net resnet50 --width-div 16 --top '[32-32-128]x1' --input 64x48 "
                       "--batch 2 --device cuda --precision fp32 --steps 1 --warmup 0"),
                 0);
    unsetenv("MM_CUDNN_VERBOSE");
    FILE *f = fopen(path("run.log"), "r");
    char line[1024], shape[512] = "", seen[64][24];
    int n_seen = 0, plans = 0, repeats = 0;
    while (f && fgets(line, sizeof line, f)) {
        const char *e = strstr(line, ": engine ");
        if (strncmp(line, "mammo: cudnn graph ", 19) != 0 || !e) continue;
        /* the shape is what comes before ": engine", then the engine and its knobs' hash */
        size_t len = (size_t)(e - line);
        if (len >= sizeof shape) len = sizeof shape - 1;
        if (strncmp(line, shape, len) != 0 || shape[len] != '\0') {
            memcpy(shape, line, len);
            shape[len] = '\0';
            n_seen = 0;
        }
        char engine[24] = "", knobs[24] = "";
        sscanf(e + 9, "%11s knobs %11s", engine, knobs);
        strcat(engine, "/");
        strcat(engine, knobs);
        for (int i = 0; i < n_seen; i++) repeats += strcmp(seen[i], engine) == 0;
        if (n_seen < 64) snprintf(seen[n_seen++], sizeof seen[0], "%s", engine);
        plans++;
    }
    if (f) fclose(f);
    CHECK_MSG(plans >= 20, "%d graph plans timed", plans);
    CHECK_MSG(repeats == 0, "%d plans timed twice for one shape (see run.log)", repeats);
}

/* `mammo bench --profile N` on cuda puts each convolution's time in the step beside its search's
 * (backend.h chosen_ms), and sums both over the searched nodes: the sum as searched is the bench
 * line's conv_searched_ms. */
MM_TEST(cli_profile_beside_the_searches)
{
    if (!mm_cuda_available(NULL, 0)) MM_SKIP("no GPU");
    CHECK_EQ_INT(mammo("bench --net resnet50 --width-div 16 --top '[32-32-128]x1' --input 64x48 "
                       "--batch 2 --device cuda --steps 1 --warmup 1 --profile 2"),
                 0);
    FILE *f = fopen(path("run.log"), "r");
    char line[1024];
    double step_ms = -1, searched_ms = -1, bench_searched = -1;
    int nodes = 0, beside = 0;
    while (f && fgets(line, sizeof line, f)) {
        if (!strncmp(line, "mammo net=", 10))
            bench_searched = mm_test_field(line, "conv_searched_ms");
        sscanf(line, "searched nodes: %lf ms per step in %d nodes, %lf ms as", &step_ms, &nodes,
               &searched_ms);
        const char *s = strstr(line, " (searched ");
        beside += s && (strstr(line, "  conv2d") || strstr(line, "  conv2d_bwd")) &&
                  atof(s + 11) >= 0;
    }
    if (f) fclose(f);
    /* ResNet50's 53 convolutions (+ the top's 4) in three directions, less the stem's data
     * gradient; recomputed ones run twice but are one node each time */
    CHECK_MSG(nodes >= 150 && step_ms > 0, "searched nodes: %d, %.3f ms in the step", nodes,
              step_ms);
    CHECK_MSG(fabs(searched_ms - bench_searched) <= 1e-3 + 1e-3 * bench_searched,
              "searched %.4f ms in the profile, conv_searched_ms=%.4f", searched_ms,
              bench_searched);
    CHECK_MSG(beside > 0, "no convolution of the slowest nodes with its searched time");
}
