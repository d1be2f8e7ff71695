/* The `mammo` command line: dispatches to one subcommand. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"

static const mm_command commands[] = {
    {"version", mm_cmd_version, "print the version and the backends of this build"},
    {"devices", mm_cmd_devices, "list the devices this build can use on this machine"},
    {"dicom", mm_cmd_dicom, "look inside a DICOM file (info) or export it as a 16-bit PNG (to-png)"},
    {"index", mm_cmd_index, "index a CBIS-DDSM or INbreast download: labels, ROIs, split"},
    {"prep", mm_cmd_prep, "convert an index's images and masks to training-size PNGs"},
    {"patches", mm_cmd_patches, "sample the 5-class patch set (background, calc/mass x ben/mal)"},
    {"forward", mm_cmd_forward, "evaluation forward pass of a net with torchvision weights"},
    {"summary", mm_cmd_summary, "layers, parameters, FLOPs and planned memory of a model"},
    {"plan", mm_cmd_plan, "planned memory of one training step (last line peak_bytes=N)"},
    {"train-patch", mm_cmd_train_patch, "train the 5-class patch classifier (3 stages)"},
    {"train-image", mm_cmd_train_image, "train the whole-image classifier end to end (2 stages)"},
    {"bench", mm_cmd_bench, "time training steps and report images/s and peak memory"},
    {"predict", mm_cmd_predict, "per-image scores of whole-image models, with flip TTA"},
    {"eval", mm_cmd_eval, "AUC with a bootstrap CI, ROC, sensitivity/specificity of predictions"},
    {"report", mm_cmd_report, "write RUN_DIR/report.html: loss, AUC and ROC curves as SVG"},
    {"synth", mm_cmd_synth, "write a synthetic CBIS-DDSM or INbreast dataset (real DICOMs, CSVs, XML)"},
};
static const int n_commands = (int)(sizeof commands / sizeof commands[0]);

static void usage(FILE *f)
{
    fprintf(f, "usage: mammo <command> [flags]   (mammo <command> --help for its flags)\n\n"
               "mammo trains whole-mammogram breast cancer classifiers end to end.\n\ncommands:\n");
    for (int i = 0; i < n_commands; i++)
        fprintf(f, "  %-14s %s\n", commands[i].name, commands[i].about);
}

/* OpenMP threads that spin while they wait for work take the cores from everything else: on a
 * machine where another process is busy (a data loader, a second job, CI running tests side by
 * side), a kernel's barrier then waits for a descheduled thread and a step becomes 10-30 times
 * slower (measured on 2 cores with libgomp's default of 300,000 spins). Never spinning (passive)
 * costs a futex wake-up per parallel region instead, 5-8 times slower for small tensors on an
 * idle machine. A short spin is the compromise measured best over both (2 cores: a small
 * training epoch 0.22-0.31 s idle and 1.0 s beside two busy processes, against 1.8 s and 0.45 s
 * passive, 0.33 s and 4.3 s always spinning). libgomp reads its settings before main() runs, so
 * when the user has set neither we set GOMP_SPINCOUNT and start the program again, once. */
static void prefer_short_openmp_spin(char **argv)
{
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
    setenv("GOMP_SPINCOUNT", "20000", 1);
    execv("/proc/self/exe", argv); /* returns only on failure: then go on as we are */
}

int main(int argc, char **argv)
{
    prefer_short_openmp_spin(argv);
    if (argc < 2) {
        usage(stderr);
        return 1;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (int i = 0; i < n_commands; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "mammo: unknown command '%s'; run 'mammo --help' for the list\n", argv[1]);
    return 1;
}
