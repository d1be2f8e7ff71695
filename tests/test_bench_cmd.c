/* `mammo bench` and `mammo plan` as a user runs them (the built binary, through a shell): the one
 * machine-readable line the comparison scripts parse (bench/cpu_compare.sh, gpu_compare.sh), its
 * fields and their consistency, the recomputation switches, the profile, and bad flags (one
 * "mammo: ..." line, exit status 1). No timing is asserted: only that a step ran. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "tests/free_port.h"
#include "tests/harness.h"
#include "tools/proc_mem.h"

/* Runs `mammo ARGS 2>&1`; returns its output (malloc'ed) and exit status (ARGS may go on to
 * more commands, the last one's status then). */
static char *mammo(const char *args, int *status)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", MM_MAMMO_EXE, args);
    FILE *p = popen(cmd, "r");
    size_t cap = 1 << 16, len = 0, k;
    char *buf = malloc(cap);
    while (p && len < cap - 1 && (k = fread(buf + len, 1, cap - 1 - len, p)) > 0) len += k;
    buf[len] = '\0';
    int rc = p ? pclose(p) : -1;
    *status = rc == -1 ? -1 : WEXITSTATUS(rc);
    return buf;
}

MM_TEST(bench_prints_one_line_with_every_field)
{
    int st;
    char *out = mammo("bench --net resnet50 --input 64x64 --batch 2 --device cpu --steps 2 "
                      "--warmup 1", &st);
    CHECK_MSG(st == 0, "exit %d: %s", st, out);
    const char *line = strstr(out, "mammo net=resnet50 top=none input=64x64 batch=2 device=cpu "
                                   "precision=fp32 steps=2 ");
    CHECK_MSG(line != NULL, "no result line in: %s", out);
    if (line) {
        CHECK(mm_test_field(line, "images_per_s") > 0);
        CHECK(mm_test_field(line, "step_ms") > 0);
        /* images/s and ms/step describe the same timing */
        CHECK_CLOSE(mm_test_field(line, "images_per_s"), 2e3 / mm_test_field(line, "step_ms"), 0,
                    1e-2);
        double planned = mm_test_field(line, "planned_peak_bytes");
        CHECK(planned > 23.5e6 * 4 * 4); /* 23.5M parameters, gradients, Adam moments */
        /* on the cpu the peak is the plan's */
        CHECK_EQ_INT((int64_t)mm_test_field(line, "peak_mem_bytes"), (int64_t)planned);
        CHECK(isfinite(mm_test_field(line, "loss")) && mm_test_field(line, "loss") > 0);
        CHECK_EQ_INT((int64_t)mm_test_field(line, "recompute"), 1); /* the default */
        CHECK_EQ_INT((int64_t)mm_test_field(line, "recompute_conv"), 0); /* the cpu's */
        CHECK_EQ_INT((int64_t)mm_test_field(line, "deterministic"), 0);
        /* the scratch of the largest node (im2col buffers on the cpu), part of the peak */
        double ws = mm_test_field(line, "workspace_bytes");
        CHECK(ws > 0 && ws < planned);
        CHECK(mm_test_field(line, "setup_s") >= 0); /* building and planning */
        /* the process's resident memory over what it held before the step: the plan's arena
         * (touched as the step runs), a little more (OpenBLAS's buffers, the batch) */
        double host = mm_test_field(line, "host_peak_bytes");
        CHECK_MSG(host > 0.9 * planned && host < planned + 256e6, "host %.0f planned %.0f", host,
                  planned);
    }
    free(out);
}

MM_TEST(proc_mem_counts_touched_memory_once_freed)
{
    mm_proc_reset_peak();
    size_t base = mm_proc_rss_bytes(), bytes = 64u << 20;
    CHECK(base > 0);
    CHECK(mm_proc_peak_over(base) < bytes / 4);
    char *p = malloc(bytes);
    for (size_t i = 0; i < bytes; i += 4096) p[i] = (char)i; /* resident page by page */
    CHECK(mm_proc_rss_bytes() >= base + bytes - (1u << 20));
    free(p); /* an mmap'ed block: back to the kernel, the high-water mark stays */
    size_t peak = mm_proc_peak_over(base);
    CHECK_MSG(peak >= bytes - (1u << 20) && peak < 2 * bytes, "peak %zu", peak);
    mm_proc_reset_peak(); /* a new mark from what is resident now */
    CHECK(mm_proc_peak_over(mm_proc_rss_bytes()) < bytes / 4);
}

MM_TEST(bench_recompute_switches_shrink_the_plan)
{
    int st;
    char *keep = mammo("bench --net vgg16 --top 64x1 --input 128x128 --batch 2 --device cpu "
                       "--steps 1 --warmup 0 --no-recompute", &st);
    CHECK_MSG(st == 0, "%s", keep);
    char *rec = mammo("bench --net vgg16 --top 64x1 --input 128x128 --batch 2 --device cpu "
                      "--steps 1 --warmup 0 --recompute --recompute-conv 27 --deterministic",
                      &st);
    CHECK_MSG(st == 0, "%s", rec);
    const char *a = strstr(keep, "mammo net="), *b = strstr(rec, "mammo net=");
    CHECK(a && b);
    if (a && b) {
        CHECK_EQ_INT((int64_t)mm_test_field(b, "recompute"), 1);
        CHECK_EQ_INT((int64_t)mm_test_field(b, "recompute_conv"), 27);
        CHECK_EQ_INT((int64_t)mm_test_field(b, "deterministic"), 1);
        /* VGG16's first convolution is recomputed: its output is not kept */
        double rec_peak = mm_test_field(b, "planned_peak_bytes");
        double keep_peak = mm_test_field(a, "planned_peak_bytes");
        CHECK_MSG(rec_peak < keep_peak, "recomputing %.0f bytes, keeping %.0f", rec_peak,
                  keep_peak);
        /* the same step: the same loss to the last printed digit */
        CHECK_CLOSE(mm_test_field(b, "loss"), mm_test_field(a, "loss"), 0, 0);
    }
    free(keep);
    free(rec);
}

/* --recompute-slack: more memory for fewer recomputing nodes, the same step. */
MM_TEST(recompute_slack_trades_memory_for_recomputation)
{
    int st;
    const char *small = "bench --net resnet50 --top [16-16-32]x2 --width-div 4 --input 160x128 "
                        "--batch 2 --device cpu --steps 1 --warmup 0 --recompute";
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s --recompute-slack 0", small);
    char *tight = mammo(cmd, &st);
    CHECK_MSG(st == 0, "%s", tight);
    snprintf(cmd, sizeof cmd, "%s --recompute-slack 50", small);
    char *loose = mammo(cmd, &st);
    CHECK_MSG(st == 0, "%s", loose);
    const char *a = strstr(tight, "mammo net="), *b = strstr(loose, "mammo net=");
    CHECK(a && b);
    if (a && b) {
        CHECK_EQ_INT((int64_t)mm_test_field(a, "recompute_slack"), 0);
        CHECK_EQ_INT((int64_t)mm_test_field(b, "recompute_slack"), 50);
        CHECK(mm_test_field(b, "planned_peak_bytes") > mm_test_field(a, "planned_peak_bytes"));
        CHECK_CLOSE(mm_test_field(b, "loss"), mm_test_field(a, "loss"), 0, 0);
    }
    free(tight);
    free(loose);
    /* full size: auto is 20% in fp32, nothing in bf16 */
    const char *full = "plan --net resnet50 --top [512-512-1024]x2,[512-512-1024]x2 "
                       "--input 1152x896 --batch 2";
    double peak[4], traffic[4];
    const char *extra[4] = {"--recompute-slack 0", "", "--precision bf16 --recompute-slack 0",
                            "--precision bf16"};
    for (int i = 0; i < 4; i++) {
        snprintf(cmd, sizeof cmd, "%s --traffic %s", full, extra[i]);
        char *out = mammo(cmd, &st);
        CHECK_MSG(st == 0, "%s", out);
        const char *p = strstr(out, "\npeak_bytes="), *t = strstr(out, "non_conv_traffic_bytes=");
        peak[i] = p ? strtod(p + strlen("\npeak_bytes="), NULL) : 0;
        traffic[i] = t ? strtod(t + strlen("non_conv_traffic_bytes="), NULL) : 0;
        /* the ReLU masks are all written by batch-norm applies (mm_graph_fuse_relu_mask) */
        CHECK(strstr(out, "  batchnorm_apply ") != NULL && strstr(out, "  relu_mask ") == NULL);
        free(out);
    }
    CHECK_MSG(peak[1] > peak[0] && peak[1] < peak[0] * 1.2, "fp32 peaks %.0f, %.0f", peak[0],
              peak[1]);
    /* what the memory buys: less traffic outside the convolutions (21.3 -> 17.2 GB) */
    CHECK_MSG(traffic[1] > 0 && traffic[1] < traffic[0] * 0.95, "fp32 traffic %.0f, %.0f",
              traffic[0], traffic[1]);
    CHECK_CLOSE(peak[3], peak[2], 0, 0);
    CHECK_CLOSE(traffic[3], traffic[2], 0, 0);
}

MM_TEST(bench_profile_lists_the_ops)
{
    int st;
    char *out = mammo("bench --net resnet50 --input 64x64 --batch 2 --device cpu --steps 1 "
                      "--warmup 0 --profile 1", &st);
    CHECK_MSG(st == 0, "%s", out);
    CHECK(strstr(out, "profile: ") != NULL);
    CHECK(strstr(out, "by op: conv2d ") != NULL);
    CHECK(strstr(out, "slowest nodes:") != NULL);
    free(out);
}

MM_TEST(plan_lists_what_is_live_at_the_peak)
{
    int st;
    char *out = mammo("plan --net vgg16 --top 64x1 --input 128x96 --batch 2 --live 3", &st);
    CHECK_MSG(st == 0, "%s", out);
    const char *live = strstr(out, "live at the arena's peak: ");
    CHECK(live != NULL);
    if (live) {
        /* three values, and the scratch of the node at the peak when it has one */
        int rows = 0;
        for (const char *p = strchr(live, '\n'); p && p[1]; p = strchr(p + 1, '\n')) rows++;
        CHECK_MSG(rows == 3 + (strstr(live, " scratch of node ") != NULL), "%d rows: %s", rows,
                  live);
        CHECK(strstr(live, " MiB  [2, ") != NULL); /* shapes, batch first */
    }
    free(out);
}

/* The N of plan's last line, peak_bytes=N, or -1. */
static int64_t plan_peak(const char *args)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "plan %s", args);
    int st;
    char *out = mammo(cmd, &st);
    const char *last = strstr(out, "\npeak_bytes=");
    int64_t peak = st == 0 && last ? strtoll(last + strlen("\npeak_bytes="), NULL, 10) : -1;
    CHECK_MSG(peak > 0, "plan %s: exit %d: %s", args, st, out);
    free(out);
    return peak;
}

/* `mammo plan --device cpu --width-div N` is the step train-patch, train-image and bench run on
 * the cpu (the reduced-width nets of the demo included), byte for byte; the default plans cuda's
 * choices (cheap convolutions recomputed, ReLU sign bits), whose peak differs for this net. */
MM_TEST(plan_device_and_width_match_the_bench_step)
{
    const char *model = "--net vgg16 --top 64x1 --width-div 8 --input 128x96 --batch 2";
    char args[512];
    snprintf(args, sizeof args, "%s --device cpu", model);
    int64_t cpu = plan_peak(args), cuda = plan_peak(model);
    snprintf(args, sizeof args, "bench %s --device cpu --steps 1 --warmup 0", model);
    int st;
    char *out = mammo(args, &st);
    const char *line = strstr(out, "mammo net=");
    CHECK_MSG(st == 0 && line, "%s", out);
    if (line) CHECK_EQ_INT((int64_t)mm_test_field(line, "planned_peak_bytes"), cpu);
    free(out);
    CHECK_MSG(cpu != cuda, "cpu and cuda plans both %lld", (long long)cpu);
    CHECK(plan_peak("--net vgg16 --top 64x1 --input 128x96 --batch 2 --device cpu") > 4 * cpu);
}

/* Data-parallel replicas on the cpu (runtime/dist.h): every replica takes the same batch in
 * mammo bench, so the mean of two replicas' gradients, (g + g) / 2, is exactly each one's and
 * the run's losses must be the single replica's, bit for bit (with three, 3g / 3 may be an ulp
 * off, and four fast Adam steps of this small net turn that into a 1% change of the loss);
 * images/s counts every replica's images. */
/* `mammo bench --eval` times the evaluation pass `mammo plan --eval` plans (weights and the
 * forward pass's activations: no gradients, no optimizer), smaller than the training step's. */
MM_TEST(bench_eval_runs_the_planned_forward_pass)
{
    const char *model = "--net vgg16 --top 64x1 --width-div 8 --input 128x96 --batch 2 "
                        "--device cpu";
    char args[512];
    snprintf(args, sizeof args, "%s --eval", model);
    int64_t planned = plan_peak(args);
    int64_t train = plan_peak(model);
    snprintf(args, sizeof args, "bench %s --eval --steps 2 --warmup 0 --feed", model);
    int st;
    char *out = mammo(args, &st);
    const char *line = strstr(out, "mammo net=");
    CHECK_MSG(st == 0 && line && strstr(line, " mode=eval"), "%s", out);
    if (line) {
        CHECK_EQ_INT((int64_t)mm_test_field(line, "planned_peak_bytes"), planned);
        CHECK(mm_test_field(line, "images_per_s") > 0);
        CHECK(isfinite(mm_test_field(line, "logit")));
    }
    CHECK(planned < train);
    free(out);
}

MM_TEST(bench_replicas_average_to_the_single_run)
{
    const char *cmd = "bench --net resnet50 --width-div 8 --input 64x64 --batch 2 --device cpu "
                      "--steps 3 --warmup 1 --lr 1e-3";
    char with[512];
    snprintf(with, sizeof with, "%s --replicas 2", cmd);
    int st1, st2;
    char *one = mammo(cmd, &st1), *two = mammo(with, &st2);
    CHECK_MSG(st1 == 0 && st2 == 0, "exit %d / %d: %s %s", st1, st2, one, two);
    const char *l1 = strstr(one, "mammo net="), *l2 = strstr(two, "mammo net=");
    CHECK(l1 && l2);
    if (l1 && l2) {
        CHECK_EQ_INT((int64_t)mm_test_field(l1, "replicas"), 1);
        CHECK_EQ_INT((int64_t)mm_test_field(l2, "replicas"), 2);
        CHECK_MSG(mm_test_field(l1, "loss") == mm_test_field(l2, "loss"), "loss %.9g vs %.9g",
                  mm_test_field(l1, "loss"), mm_test_field(l2, "loss"));
        CHECK_CLOSE(mm_test_field(l2, "images_per_s"), 4e3 / mm_test_field(l2, "step_ms"), 0,
                    1e-2);
        CHECK_EQ_INT((int64_t)mm_test_field(l2, "peak_mem_bytes"),
                     (int64_t)mm_test_field(l1, "peak_mem_bytes")); /* each replica's */
    }
    free(one);
    free(two);
}

/* bench across two nodes (--nodes 2, runtime/group.h) of one replica each, as two processes on
 * this machine: node 0 prints the group's line, with the loss of --replicas 2 (the same averaged
 * steps) and the images of both nodes; node 1 one line of its own. A node started with other
 * flags is refused on both, naming the flag. */
MM_TEST(bench_nodes_run_as_replicas_of_one_process)
{
    const char *cmd = "bench --net resnet50 --width-div 8 --input 64x64 --batch 2 --device cpu "
                      "--steps 3 --warmup 1 --lr 1e-3";
    char with[512], nodes[1536];
    snprintf(with, sizeof with, "%s --replicas 2", cmd);
    int port = free_port(), st1, st2;
    snprintf(nodes, sizeof nodes, "%s --nodes 2 --node-rank 0 --master 127.0.0.1:%d 2>&1 & '%s' "
             "%s --nodes 2 --node-rank 1 --master 127.0.0.1:%d 2>&1; wait $!", cmd, port,
             MM_MAMMO_EXE, cmd, port);
    char *one = mammo(with, &st1), *two = mammo(nodes, &st2);
    CHECK_MSG(st1 == 0 && st2 == 0, "exit %d / %d: %s %s", st1, st2, one, two);
    const char *l1 = strstr(one, "mammo net="), *l2 = strstr(two, "mammo net=");
    CHECK(l1 && l2);
    if (l1 && l2) {
        CHECK_EQ_INT((int64_t)mm_test_field(l2, "replicas"), 1);
        CHECK_EQ_INT((int64_t)mm_test_field(l2, "nodes"), 2);
        CHECK_MSG(mm_test_field(l1, "loss") == mm_test_field(l2, "loss"), "loss %.9g vs %.9g",
                  mm_test_field(l1, "loss"), mm_test_field(l2, "loss"));
        CHECK_CLOSE(mm_test_field(l2, "images_per_s"), 4e3 / mm_test_field(l2, "step_ms"), 0,
                    1e-2);
    }
    CHECK(strstr(two, "node 1 of 2: images_per_s=") != NULL);
    free(two);

    /* the same from a launcher's environment (srun's variables here): --nodes env */
    port = free_port();
    snprintf(nodes, sizeof nodes, "%s --nodes env --master 127.0.0.1:%d 2>&1 & SLURM_NTASKS=2 "
             "SLURM_PROCID=1 '%s' %s --nodes env --master 127.0.0.1:%d 2>&1; wait $!", cmd, port,
             MM_MAMMO_EXE, cmd, port);
    setenv("SLURM_NTASKS", "2", 1); /* node 0's, inherited through the shell */
    setenv("SLURM_PROCID", "0", 1);
    char *launched = mammo(nodes, &st2);
    unsetenv("SLURM_NTASKS");
    unsetenv("SLURM_PROCID");
    CHECK_MSG(st2 == 0, "exit %d: %s", st2, launched);
    const char *l3 = strstr(launched, "mammo net=");
    CHECK(l3 && l1 && mm_test_field(l3, "loss") == mm_test_field(l1, "loss"));
    CHECK(l3 && (int64_t)mm_test_field(l3, "nodes") == 2);
    free(launched);
    free(one);

    port = free_port();
    snprintf(nodes, sizeof nodes, "%s --nodes 2 --node-rank 0 --master 127.0.0.1:%d 2>&1 & '%s' "
             "%s --batch 4 --nodes 2 --node-rank 1 --master 127.0.0.1:%d 2>&1; wait $!", cmd,
             port, MM_MAMMO_EXE, cmd, port);
    char *refused = mammo(nodes, &st1);
    CHECK_EQ_INT(st1, 1);
    const char *first = strstr(refused, "node 1 runs with batch=4, node 0 with batch=2");
    CHECK_MSG(first && strstr(first + 1, "node 1 runs with batch=4, node 0 with batch=2"),
              "both nodes must say it: %s", refused);
    free(refused);
}

/* Bad flags: one line naming the flag, exit status 1, nothing else printed. */
MM_TEST(bench_and_plan_refuse_bad_flags)
{
    const char *cases[][2] = {
        {"bench --net resnet51", "--net"},
        {"bench --batch 0", "--batch"},
        {"bench --input 64", "--input"},
        {"bench --width-div 3", "--width-div 3"},
        {"bench --device meta", "--device meta"},
        {"bench --precision fp16", "fp16"},
        {"bench --recompute-conv x", "--recompute-conv"},
        {"bench --recompute-slack -1", "--recompute-slack -1: must be auto or a percentage"},
        {"plan --recompute-slack lots", "--recompute-slack lots"},
        {"plan --recompute-conv -5", "--recompute-conv"},
        {"plan --live -3", "--live -3: must be >= 0"},
        {"plan --precision int8", "int8"},
        {"plan --device cpu --precision bf16", "--precision bf16: the cpu device computes in fp32"},
        {"plan --device gpu", "--device gpu: unknown device; use cpu, cuda or cuda:N"},
        {"plan --device meta", "--device meta: plan and summary run on meta anyway"},
        {"plan --width-div 5", "--width-div 5"},
        {"summary --width-div 0", "--width-div 0"},
        {"bench --device cpu --cuda-graph --steps 1", "--cuda-graph"},
        {"bench --device cuda:x", "--device cuda:x"},
        {"bench --device gpu", "--device gpu"},
        {"bench --scratch-mb -1", "--scratch-mb -1"},
        {"bench --nodes x", "--nodes x: give a count (1 to 1024) or env"},
        {"bench --nodes 2 --node-rank 2 --master h:1", "--node-rank 2: use 0 to 1"},
        {"bench --scratch-mb lots", "--scratch-mb lots: must be auto or"},
        {"bench --lr -1", "--lr in [0, 1000)"},
        {"bench --lr x", "--lr"},
        {"bench --profile -1", "--profile not negative"},
        {"bench --profile x", "--profile x: not an integer"},
        {"bench --replicas 0", "--replicas 1 to 64"},
        {"bench --replicas two", "--replicas two"},
        {"bench --device meta --replicas 2", "--device meta"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int st;
        char *out = mammo(cases[i][0], &st);
        CHECK_MSG(st == 1, "'%s' exited %d: %s", cases[i][0], st, out);
        CHECK_MSG(!strncmp(out, "mammo: ", 7) && strstr(out, cases[i][1]) != NULL,
                  "'%s' printed: %s", cases[i][0], out);
        size_t len = strlen(out);
        CHECK_MSG(len > 0 && strchr(out, '\n') == out + len - 1, "'%s': not one line: %s",
                  cases[i][0], out);
        free(out);
    }
}
