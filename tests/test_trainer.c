/* The training commands end to end through the built `mammo`, on a tiny synthetic dataset:
 *  - a run interrupted after an epoch and resumed gives bitwise the losses of an uninterrupted run
 *    (within a stage: Adam's moments come back from the checkpoint; across stages too);
 *  - a process killed while it writes checkpoints never leaves a broken last.safetensors;
 *  - a loss that becomes NaN stops the run with one clear line, exit 1, and the last good
 *    checkpoint untouched;
 *  - a checkpoint of another architecture, a missing file and an index with wrong columns are each
 *    one clear line and exit 1;
 *  - train-image converts the patch classifier, predict writes scores for every test image, eval
 *    and report read them. */
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/safetensors.h"
#include "tests/checkpoint_diff.h"
#include "tests/free_port.h"
#include "tests/harness.h"
#include "train/run_log.h"

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = '\0';
    fclose(f);
    return s;
}

/* The step losses of a metrics.jsonl from epoch `from` on, as text ("1.96226335 2.24876094 ..."):
 * 9 significant digits identify a float32 exactly. */
static char *losses_from(const char *run, int from)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/metrics.jsonl", run);
    char *text = slurp(path), *out = calloc(1, 1 << 16);
    if (!text) return out;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        int epoch;
        char *e = strstr(line, "\"epoch\":"), *l = strstr(line, "\"loss\":");
        if (!strstr(line, "\"event\":\"step\"") || !e || !l) continue;
        epoch = atoi(e + 8);
        if (epoch < from) continue;
        char *end = strchr(l + 7, ',');
        strncat(out, l + 7, end ? (size_t)(end - l - 7) : strlen(l + 7));
        strcat(out, " ");
    }
    free(text);
    return out;
}

/* A tiny CBIS-DDSM-like dataset in dir: index, 128x96 PNGs, 32-pixel patches. */
static int make_data(const char *dir)
{
    return sh("cd '%s' && '%s' synth --layout cbis-ddsm --out s --patients 20 --seed 3 --height 128 "
              "--width 96 >/dev/null && '%s' index --cbis-ddsm s --out i.csv >/dev/null && '%s' prep "
              "--index i.csv --out p --height 128 --width 96 --quiet >/dev/null && '%s' patches "
              "--index p/index.csv --out pa --size 32 --per-roi 4 --quiet >/dev/null",
              dir, MM_MAMMO_EXE, MM_MAMMO_EXE, MM_MAMMO_EXE, MM_MAMMO_EXE);
}

#define PATCH_FLAGS "--width-div 16 --input 32x32 --batch 8 --threads 1 --dropout 0.2"

MM_TEST(resume_within_a_stage_is_bitwise)
{
    const char *d = mm_test_tmpdir();
    CHECK_EQ_INT(make_data(d), 0);
    /* uninterrupted: 3 epochs; interrupted: 2 epochs, then --resume to 3 */
    CHECK_EQ_INT(sh("cd '%s' && '%s' train-patch --patches pa/patches.csv --run a " PATCH_FLAGS
                    " --epochs 0,0,3 --lr 1e-3,1e-3,1e-3 >/dev/null", d, MM_MAMMO_EXE), 0);
    CHECK_EQ_INT(sh("cd '%s' && '%s' train-patch --patches pa/patches.csv --run b " PATCH_FLAGS
                    " --epochs 0,0,2 --lr 1e-3,1e-3,1e-3 >/dev/null", d, MM_MAMMO_EXE), 0);
    CHECK_EQ_INT(sh("cd '%s' && '%s' train-patch --patches pa/patches.csv --run b " PATCH_FLAGS
                    " --epochs 0,0,3 --lr 1e-3,1e-3,1e-3 --resume >/dev/null", d, MM_MAMMO_EXE), 0);
    char a[1024], b[1024];
    snprintf(a, sizeof a, "%s/a", d);
    snprintf(b, sizeof b, "%s/b", d);
    char *la = losses_from(a, 3), *lb = losses_from(b, 3), *la1 = losses_from(a, 1);
    CHECK(strlen(la) > 10);
    CHECK_MSG(!strcmp(la, lb), "epoch 3 losses differ:\n      uninterrupted %s\n      resumed       %s", la, lb);
    CHECK(strcmp(la, la1) != 0); /* the comparison is not vacuous: epochs 1-2 are there too */
    free(la);
    free(lb);
    free(la1);
}

MM_TEST(resume_across_stages_is_bitwise)
{
    const char *d = mm_test_tmpdir();
    CHECK_EQ_INT(make_data(d), 0);
    CHECK_EQ_INT(sh("cd '%s' && '%s' train-patch --patches pa/patches.csv --run a " PATCH_FLAGS
                    " --epochs 1,1,1 --lr 1e-3,1e-3,1e-3 >/dev/null", d, MM_MAMMO_EXE), 0);
    CHECK_EQ_INT(sh("cd '%s' && '%s' train-patch --patches pa/patches.csv --run b " PATCH_FLAGS
                    " --epochs 1,1,0 --lr 1e-3,1e-3,1e-3 >/dev/null", d, MM_MAMMO_EXE), 0);
    CHECK_EQ_INT(sh("cd '%s' && '%s' train-patch --patches pa/patches.csv --run b " PATCH_FLAGS
                    " --epochs 1,1,1 --lr 1e-3,1e-3,1e-3 --resume >/dev/null", d, MM_MAMMO_EXE), 0);
    char a[1024], b[1024];
    snprintf(a, sizeof a, "%s/a", d);
    snprintf(b, sizeof b, "%s/b", d);
    char *la = losses_from(a, 3), *lb = losses_from(b, 3);
    CHECK(strlen(la) > 10);
    CHECK_MSG(!strcmp(la, lb), "stage 3 losses differ:\n      uninterrupted %s\n      resumed       %s", la, lb);
    free(la);
    free(lb);
}

/* train-patch on dir's patches into the run folder dir/run, whose path goes to out; its exit
 * status. */
static int train_patch(char out[1024], const char *dir, const char *run, const char *flags)
{
    snprintf(out, 1024, "%s/%s", dir, run);
    return sh("cd '%s' && '%s' train-patch --patches pa/patches.csv --run %s %s >/dev/null", dir,
              MM_MAMMO_EXE, run, flags);
}

/* The "peak_bytes" of a run's first stage event, as `mammo report` reads it (0: none). */
static int64_t first_stage_peak(const char *run)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/metrics.jsonl", run);
    mm_run_log log;
    if (mm_run_log_read(&log, path) != MM_OK) return 0;
    int64_t v = log.n_stages ? log.stages[0].peak_bytes : 0;
    mm_run_log_free(&log);
    return v;
}

/* The recomputation switches change what the step keeps, never what it computes: bitwise the
 * same training, and planned peaks (logged in the stage event) in the order the plans give at
 * width 1/4 (`mammo plan --device cpu --patch --width-div 4 --input 32x32 --batch 8`: 25.9 MB by
 * default, 27.3 keeping everything, 25.2 recomputing ResNet50's cheap 1x1 convolutions too, 25.4
 * with that and 100% slack; at 1/16 the peak is where nothing is recomputed). */
MM_TEST(recompute_switches_train_the_same_bits)
{
    const char *d = mm_test_tmpdir();
    CHECK_EQ_INT(make_data(d), 0);
    const char *extra[] = {"", "--no-recompute", "--recompute-conv 128",
                           "--recompute-conv 128 --recompute-slack 100"};
    char run[4][1024], flags[512];
    int64_t peak[4];
    char *loss[4];
    for (int k = 0; k < 4; k++) {
        snprintf(flags, sizeof flags, "--width-div 4 --input 32x32 --batch 8 --threads 1 "
                 "--dropout 0.2 --epochs 0,0,1 --lr 1e-3,1e-3,1e-3 %s", extra[k]);
        char name[8];
        snprintf(name, sizeof name, "r%d", k);
        CHECK_EQ_INT(train_patch(run[k], d, name, flags), 0);
        peak[k] = first_stage_peak(run[k]);
        loss[k] = losses_from(run[k], 1);
    }
    CHECK(strlen(loss[0]) > 10);
    for (int k = 1; k < 4; k++)
        CHECK_MSG(!strcmp(loss[0], loss[k]), "losses differ:\n      default %s\n      %s %s",
                  loss[0], extra[k], loss[k]);
    CHECK_MSG(peak[2] > 0 && peak[2] < peak[3] && peak[3] < peak[0] && peak[0] < peak[1],
              "planned peaks: default %lld, keeping %lld, convolutions %lld, with slack %lld",
              (long long)peak[0], (long long)peak[1], (long long)peak[2], (long long)peak[3]);
    for (int k = 0; k < 4; k++) free(loss[k]);
}

/* The step losses of a run as numbers (losses_from's text parsed); returns the count. */
static int loss_values(const char *run, double *out, int cap)
{
    char *text = losses_from(run, 1), *p = text, *end;
    int n = 0;
    for (double v = strtod(p, &end); end != p && n < cap; v = strtod(p, &end)) {
        out[n++] = v;
        p = end;
    }
    free(text);
    return n;
}

/* Data-parallel replicas (--replicas 2, runtime/dist.h) with 4 images each train as one
 * replica with 8: the loader's order does not depend on the batch size, so a pair of batches of
 * 4 holds the images of one batch of 8, and VGG16 (no batch norm) with unit sample weights
 * (--no-balance) makes the mean of the two replicas' mean gradients that batch's mean gradient.
 * Every step's loss must agree to rounding (measured: 1e-6 relative at most over 66 steps). */
MM_TEST(replicas_train_as_one_batch_of_their_images)
{
    const char *d = mm_test_tmpdir();
    CHECK_EQ_INT(make_data(d), 0);
#define FLAGS "--net vgg16 --width-div 16 --input 32x32 --threads 1 --no-balance " \
              "--epochs 0,0,2 --lr 1e-4,1e-4,1e-4"
    char one[1024], two[1024];
    CHECK_EQ_INT(train_patch(one, d, "one", FLAGS " --batch 8"), 0);
    CHECK_EQ_INT(train_patch(two, d, "two", FLAGS " --batch 4 --replicas 2"), 0);
#undef FLAGS
    double l1[256], l2[256];
    int n1 = loss_values(one, l1, 256), n2 = loss_values(two, l2, 256);
    CHECK(n1 > 20);
    CHECK_EQ_INT(n2, n1);
    double worst = 0;
    for (int i = 0; i < n1 && i < n2; i++) worst = fmax(worst, fabs(l2[i] - l1[i]) / l1[i]);
    CHECK_MSG(worst <= 1e-5, "losses of 2 replicas x 4 and 1 x 8 differ by %.3g", worst);
    CHECK(fabs(l1[n1 - 1] - l1[0]) > 1e-3 * l1[0]); /* it trained */
}

/* Resuming a data-parallel run reproduces it bitwise: every replica gets the checkpoint's
 * weights and moments, and its own dropout masks, functions of (seed, replica, step). */
MM_TEST(resume_with_replicas_is_bitwise)
{
    const char *d = mm_test_tmpdir();
    CHECK_EQ_INT(make_data(d), 0);
    const char *flags = "--width-div 16 --input 32x32 --batch 4 --threads 1 --dropout 0.2 "
                        "--replicas 2 --lr 1e-3,1e-3,1e-3";
    CHECK_EQ_INT(sh("cd '%s' && '%s' train-patch --patches pa/patches.csv --run a %s "
                    "--epochs 0,1,2 >/dev/null", d, MM_MAMMO_EXE, flags), 0);
    CHECK_EQ_INT(sh("cd '%s' && '%s' train-patch --patches pa/patches.csv --run b %s "
                    "--epochs 0,1,1 >/dev/null", d, MM_MAMMO_EXE, flags), 0);
    CHECK_EQ_INT(sh("cd '%s' && '%s' train-patch --patches pa/patches.csv --run b %s "
                    "--epochs 0,1,2 --resume >/dev/null", d, MM_MAMMO_EXE, flags), 0);
    char a[1024], b[1024];
    snprintf(a, sizeof a, "%s/a", d);
    snprintf(b, sizeof b, "%s/b", d);
    char *la = losses_from(a, 3), *lb = losses_from(b, 3);
    CHECK(strlen(la) > 10);
    CHECK_MSG(!strcmp(la, lb), "epoch 3 losses differ:\n      uninterrupted %s\n      resumed "
              "      %s", la, lb);
    free(la);
    free(lb);
}

/* Two nodes (--nodes 2, runtime/group.h) on this machine, started alike but for --node-rank:
 * node 1 in the background, node 0 in front; 0 when both exit 0. */
static int train_on_two_nodes(char out[1024], const char *dir, const char *run,
                              const char *flags)
{
    snprintf(out, 1024, "%s/%s", dir, run);
    char master[64];
    snprintf(master, sizeof master, "127.0.0.1:%d", free_port());
    return sh("cd '%s' && export MM_GROUP_TIMEOUT_S=60 && "
              "{ timeout 300 '%s' train-patch --patches pa/patches.csv --run %s %s --nodes 2 "
              "--node-rank 1 --master %s >node1.out 2>&1 & } && "
              "timeout 300 '%s' train-patch --patches pa/patches.csv --run %s %s --nodes 2 "
              "--node-rank 0 --master %s >/dev/null && wait $!",
              dir, MM_MAMMO_EXE, run, flags, master, MM_MAMMO_EXE, run, flags, master);
}

/* Checks that runs a and b logged the same step losses from epoch `from` on and that their last
 * checkpoints hold the same tensors, bitwise (a_is and b_is name them in messages). */
static void same_training(const char *a, const char *a_is, const char *b, const char *b_is,
                          int from)
{
    char *la = losses_from(a, from), *lb = losses_from(b, from);
    CHECK(strlen(la) > 10);
    CHECK_MSG(!strcmp(la, lb), "losses from epoch %d differ:\n      %s %s\n      %s %s", from,
              a_is, la, b_is, lb);
    free(la);
    free(lb);
    char pa[1100], pb[1100], names[512];
    snprintf(pa, sizeof pa, "%s/last.safetensors", a);
    snprintf(pb, sizeof pb, "%s/last.safetensors", b);
    int64_t differ = checkpoint_elements_differ(pa, pb, names, sizeof names);
    CHECK_MSG(differ == 0, "the checkpoints of %s and %s differ in %lld elements, of %s", a_is,
              b_is, (long long)differ, names);
}

/* Two nodes of one replica each train bitwise as one process with two replicas on the cpu:
 * each node's share of every step's batches, dropout masks by global rank, the gradient mean
 * summed in rank order; and the weights, moments and losses of node 0's checkpoints are those
 * of --replicas 2. Then a run of two nodes interrupted after one epoch and resumed on two nodes
 * (only node 0 reads the checkpoint) continues as the uninterrupted one. Node 1 says so. */
MM_TEST(two_nodes_train_bitwise_as_two_replicas)
{
    const char *d = mm_test_tmpdir();
    CHECK_EQ_INT(make_data(d), 0);
    const char *flags = "--width-div 16 --input 32x32 --batch 4 --threads 1 --dropout 0.2 "
                        "--lr 1e-3,1e-3,1e-3";
    char one[1024], two[1024], resumed[1024], f[512];
    snprintf(f, sizeof f, "%s --epochs 0,1,1 --replicas 2", flags);
    CHECK_EQ_INT(train_patch(one, d, "one", f), 0);
    snprintf(f, sizeof f, "%s --epochs 0,1,1", flags);
    CHECK_EQ_INT(train_on_two_nodes(two, d, "two", f), 0);
    same_training(one, "2 replicas", two, "2 nodes", 1);

    /* resumed on two nodes: epoch 3 as the uninterrupted run of one process */
    snprintf(f, sizeof f, "%s --epochs 0,1,2 --replicas 2 --resume", flags);
    CHECK_EQ_INT(train_patch(one, d, "one", f), 0);
    snprintf(f, sizeof f, "%s --epochs 0,1,2 --resume", flags);
    CHECK_EQ_INT(train_on_two_nodes(resumed, d, "two", f), 0);
    same_training(one, "2 replicas", two, "2 nodes resumed", 3);
    char path[1024];
    snprintf(path, sizeof path, "%s/node1.out", d);
    char *said = slurp(path);
    CHECK_MSG(said && strstr(said, "node 1 of 2: done; node 0 holds the model in two/"),
              "node 1 said: %s", said ? said : "(nothing)");
    free(said);
}

/* Gradient accumulation (--accumulate 2) trains bitwise as two replicas on the cpu: the same
 * batches a step, the mean of their gradients summed in the same order (VGG16: no batch-norm
 * statistics, which K micro-batches update K times, as PyTorch's accumulation does, and one
 * replica's once). Then a run with accumulation and dropout interrupted after a stage and
 * resumed continues bitwise: the masks of each micro-batch are functions of the step. */
MM_TEST(accumulation_trains_as_replicas_and_resumes_bitwise)
{
    const char *d = mm_test_tmpdir();
    CHECK_EQ_INT(make_data(d), 0);
    const char *vgg = "--net vgg16 --width-div 16 --input 32x32 --batch 4 --threads 1 "
                      "--epochs 0,1,1 --lr 1e-3,1e-3,1e-3";
    char acc[1024], rep[1024], f[512];
    snprintf(f, sizeof f, "%s --accumulate 2", vgg);
    CHECK_EQ_INT(train_patch(acc, d, "acc", f), 0);
    snprintf(f, sizeof f, "%s --replicas 2", vgg);
    CHECK_EQ_INT(train_patch(rep, d, "rep", f), 0);
    same_training(acc, "2 micro-batches", rep, "2 replicas", 1);

    const char *res = "--width-div 16 --input 32x32 --batch 4 --threads 1 --dropout 0.2 "
                      "--accumulate 2 --lr 1e-3,1e-3,1e-3";
    char whole[1024], cut[1024];
    snprintf(f, sizeof f, "%s --epochs 0,1,2", res);
    CHECK_EQ_INT(train_patch(whole, d, "whole", f), 0);
    snprintf(f, sizeof f, "%s --epochs 0,1,1", res);
    CHECK_EQ_INT(train_patch(cut, d, "cut", f), 0);
    snprintf(f, sizeof f, "%s --epochs 0,1,2 --resume", res);
    CHECK_EQ_INT(train_patch(cut, d, "cut", f), 0);
    same_training(whole, "uninterrupted", cut, "resumed", 3);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static pid_t start_training(const char *dir, bool resume)
{
    pid_t pid = fork();
    if (pid == 0) {
        char cmd[2048];
        snprintf(cmd, sizeof cmd, "cd '%s' && exec '%s' train-patch --patches pa/patches.csv "
                 "--run k " PATCH_FLAGS " --epochs 0,0,400 --lr 1e-4,1e-4,1e-4 %s >/dev/null 2>&1",
                 dir, MM_MAMMO_EXE, resume ? "--resume" : "");
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void sleep_s(double s)
{
    struct timespec t = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&t, NULL);
}

MM_TEST(killed_while_writing_keeps_a_valid_checkpoint)
{
    const char *d = mm_test_tmpdir();
    CHECK_EQ_INT(make_data(d), 0);
    char last[1024];
    snprintf(last, sizeof last, "%s/k/last.safetensors", d);
    /* the first run: wait for its first checkpoint, which also measures an epoch's time (this
     * machine, this build: sanitizers make it slow) */
    double t0 = now_s(), epoch_s = -1;
    pid_t pid = start_training(d, false);
    struct stat sb;
    while (now_s() - t0 < 300 && epoch_s < 0) {
        sleep_s(0.02);
        if (stat(last, &sb) == 0) epoch_s = now_s() - t0;
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    CHECK_MSG(epoch_s > 0, "no checkpoint within 300 s");
    if (epoch_s < 0) return;
    /* then resumed runs killed at moments spread over a few epochs, so some land while a
     * checkpoint is being written; the file must always open and carry its metadata */
    int valid = 0, kills = 0;
    for (int round = 0; round < 10; round++) {
        pid = start_training(d, true);
        sleep_s(epoch_s * (0.5 + 0.37 * round));
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        kills += WIFSIGNALED(status);
        mm_safetensors *f;
        mm_status st = mm_safetensors_open(&f, last);
        CHECK_MSG(st == MM_OK, "round %d: %s", round, mm_last_error());
        if (st == MM_OK) {
            valid++;
            CHECK(mm_safetensors_meta(f, "epoch") != NULL);
            mm_safetensors_close(f);
        }
    }
    CHECK(kills > 0);
    CHECK_EQ_INT(valid, 10);
}

MM_TEST(nan_loss_stops_and_keeps_the_last_checkpoint)
{
    const char *d = mm_test_tmpdir();
    CHECK_EQ_INT(make_data(d), 0);
    CHECK_EQ_INT(sh("cd '%s' && '%s' train-patch --patches pa/patches.csv --run n " PATCH_FLAGS
                    " --epochs 0,0,1 --lr 1e-3,1e-3,1e-3 >/dev/null", d, MM_MAMMO_EXE), 0);
    char last[1024], log[1024];
    snprintf(last, sizeof last, "%s/n/last.safetensors", d);
    snprintf(log, sizeof log, "%s/err.txt", d);
    CHECK_EQ_INT(sh("cp '%s' '%s/before.bin'", last, d), 0);
    /* an absurd learning rate: the weights overflow within a few steps */
    int rc = sh("cd '%s' && '%s' train-patch --patches pa/patches.csv --run n " PATCH_FLAGS
                " --epochs 0,0,4 --lr 1e38,1e38,1e38 --resume >/dev/null 2>err.txt", d, MM_MAMMO_EXE);
    CHECK_EQ_INT(rc, 1);
    char *err = slurp(log);
    CHECK(err && strstr(err, "mammo: the loss became"));
    CHECK(err && strstr(err, "last.safetensors"));
    CHECK(err && strchr(err, '\n') == strrchr(err, '\n')); /* one line */
    /* the checkpoint after epoch 1 is intact: the same bytes as before the failed run */
    CHECK_EQ_INT(sh("cmp -s '%s' '%s/before.bin'", last, d), 0);
    mm_safetensors *f;
    CHECK(mm_safetensors_open(&f, last) == MM_OK);
    if (f) {
        const char *ep = mm_safetensors_meta(f, "epoch");
        CHECK(ep && !strcmp(ep, "1"));
        mm_safetensors_close(f);
    }
    free(err);
}

MM_TEST(bad_input_is_one_clear_line)
{
    const char *d = mm_test_tmpdir();
    CHECK_EQ_INT(make_data(d), 0);
    CHECK_EQ_INT(sh("cd '%s' && '%s' train-patch --patches pa/patches.csv --run r " PATCH_FLAGS
                    " --epochs 0,0,1 --lr 1e-3,1e-3,1e-3 >/dev/null", d, MM_MAMMO_EXE), 0);
    struct {
        const char *args, *want;
    } cases[] = {
        {"train-patch --patches pa/patches.csv --run r --net vgg16 --width-div 16 --input 32x32 "
         "--batch 8 --epochs 0,0,2 --lr 1e-3,1e-3,1e-3 --resume", "vgg16"},
        {"train-patch --patches missing.csv --run x --epochs 0,0,1 --lr 1,1,1", "missing.csv"},
        {"train-image --index pa/patches.csv --patch-model r/best.safetensors --run y", "patches.csv"},
        {"train-image --index p/index.csv --patch-model nothing.safetensors --run y", "nothing.safetensors"},
        {"train-patch --patches pa/patches.csv --run z --epochs 1,2 --lr 1e-3,1e-3", "--epochs"},
        {"predict --model r/best.safetensors --index p/index.csv --out q.csv", "whole-image"},
        {"train-patch --patches pa/patches.csv --run z --bogus 1", "--bogus"},
        {"train-patch --patches pa/patches.csv --run g --width-div 16 --input 32x32 --batch 8 "
         "--epochs 0,0,1 --lr 1e-3,1e-3,1e-3 --cuda-graph", "--cuda-graph: the cpu device"},
        {"train-patch --patches pa/patches.csv --run g --cuda-graph --dropout 0.5", "--dropout 0"},
        {"train-patch --patches pa/patches.csv --run g --replicas 0", "--replicas 0: use 1 to 64"},
        {"train-patch --patches pa/patches.csv --run g --recompute-conv -2", "--recompute-conv -2"},
        {"train-image --index p/index.csv --patch-model r/best.safetensors --run y "
         "--recompute-slack x", "--recompute-slack x"},
        {"train-patch --patches pa/patches.csv --run g --width-div 16 --input 32x32 --batch 200 "
         "--replicas 2 --epochs 0,0,1 --lr 1,1,1", "fewer than --batch 200 x --replicas 2"},
        {"train-image --index p/index.csv --patch-model r/best.safetensors --run y --device meta "
         "--replicas 2", "meta"},
        {"train-patch --patches pa/patches.csv --run g --nodes 2", "--master HOST:PORT"},
        {"train-patch --patches pa/patches.csv --run g --nodes 2 --node-rank 2 --master h:1",
         "--node-rank 2: use 0 to 1"},
        {"train-patch --patches pa/patches.csv --run g --nodes 2 --master h", "--master 'h'"},
        {"train-patch --patches pa/patches.csv --run g --nodes 0", "--nodes 0: use 1 to 1024"},
        {"train-patch --patches pa/patches.csv --run g --accumulate 0", "--accumulate 0: use 1"},
        {"train-patch --patches pa/patches.csv --run g --width-div 16 --input 32x32 --batch 200 "
         "--accumulate 2 --epochs 0,0,1 --lr 1,1,1", "fewer than --batch 200 x --replicas 1 x "
         "--accumulate"},
        {"train-patch --patches pa/patches.csv --run g --width-div 16 --input 32x32 --batch 200 "
         "--nodes 2 --master h:1 --epochs 0,0,1 --lr 1,1,1",
         "fewer than --batch 200 x --replicas 1 x --nodes"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = sh("cd '%s' && '%s' %s >/dev/null 2>err.txt", d, MM_MAMMO_EXE, cases[i].args);
        char path[1024];
        snprintf(path, sizeof path, "%s/err.txt", d);
        char *err = slurp(path);
        CHECK_MSG(rc == 1, "%s: exit %d", cases[i].args, rc);
        CHECK_MSG(err && !strncmp(err, "mammo: ", 7) && strstr(err, cases[i].want) &&
                      strchr(err, '\n') == strrchr(err, '\n'),
                  "%s: message '%s' should be one line naming %s", cases[i].args, err ? err : "",
                  cases[i].want);
        free(err);
    }
    /* a truncated image is named when training reads it, and a run that failed before writing
     * anything leaves no folder (the cases above made g and y before failing) */
    CHECK_EQ_INT(sh("cd '%s' && f=$(ls p/images/*.png | head -n 1) && head -c 200 \"$f\" >t.png && "
                    "mv t.png \"$f\" && '%s' train-image --index p/index.csv --patch-model "
                    "r/best.safetensors --run w --input 128x96 --top 64x1 --batch 2 --epochs 1,0 "
                    "--lr 1e-3,1e-3 >/dev/null 2>err.txt",
                    d, MM_MAMMO_EXE),
                 1);
    char path[1024];
    snprintf(path, sizeof path, "%s/err.txt", d);
    char *err = slurp(path);
    CHECK_MSG(err && strstr(err, "mammo: p/images/") && strstr(err, "truncated PNG"), "%s",
              err ? err : "");
    free(err);
    const char *gone[] = {"g", "w", "x", "y", "z"};
    for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", d, gone[i]);
        struct stat sb;
        CHECK_MSG(stat(path, &sb) != 0, "%s: left behind", path);
    }
    /* the run folder of the first case is untouched: its checkpoint is still the resnet one */
    char last[1024];
    snprintf(last, sizeof last, "%s/r/last.safetensors", d);
    mm_safetensors *f;
    CHECK(mm_safetensors_open(&f, last) == MM_OK);
    if (f) {
        CHECK(!strcmp(mm_safetensors_meta(f, "trunk"), "resnet50"));
        mm_safetensors_close(f);
    }
}

MM_TEST(whole_image_pipeline_predict_eval_report)
{
    const char *d = mm_test_tmpdir();
    CHECK_EQ_INT(make_data(d), 0);
    CHECK_EQ_INT(sh("cd '%s' && '%s' train-patch --patches pa/patches.csv --run pr " PATCH_FLAGS
                    " --epochs 0,0,1 --lr 1e-3,1e-3,1e-3 >/dev/null", d, MM_MAMMO_EXE), 0);
    CHECK_EQ_INT(sh("cd '%s' && '%s' train-image --index p/index.csv --patch-model "
                    "pr/best.safetensors --run ir --input 128x96 --top '[32-32-64]x1' --epochs 1,1 "
                    "--lr 1e-3,1e-4 --threads 1 >/dev/null", d, MM_MAMMO_EXE), 0);
    CHECK_EQ_INT(sh("cd '%s' && '%s' predict --model ir/best.safetensors,ir/last.safetensors "
                    "--index p/index.csv --split train --tta --out ir/pred.csv >/dev/null",
                    d, MM_MAMMO_EXE), 0);
    char path[1024];
    snprintf(path, sizeof path, "%s/ir/pred.csv", d);
    char *csv = slurp(path);
    CHECK(csv && strstr(csv, "score_1") && strstr(csv, "score_2"));
    int rows = 0;
    for (char *p = csv; p && *p; p++) rows += *p == '\n';
    free(csv);
    /* every training image (the index's train split) has a row, plus the header */
    CHECK(rows > 5);
    CHECK_EQ_INT(sh("cd '%s' && '%s' eval --pred ir/pred.csv --out ir/eval.json >/dev/null && "
                    "'%s' report ir >/dev/null && test -s ir/report.html",
                    d, MM_MAMMO_EXE, MM_MAMMO_EXE), 0);
}
