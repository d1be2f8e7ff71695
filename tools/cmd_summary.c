/* `mammo summary` and `mammo plan`: the layers, parameter count, FLOPs and planned memory of one
 * training step (or an evaluation with --eval) of any model, computed on the meta backend (shapes
 * only), so full-size models at 1152x896 take milliseconds on any machine. */
#include <stdio.h>
#include <string.h>

#include "../nets/nets.h"
#include "../runtime/backend.h"
#include "../runtime/planner.h"
#include "commands.h"
#include "model_flags.h"

static void add_flags(mm_args *a)
{
    mm_model_flags_add(a, true);
    mm_width_div_flag_add(a);
    mm_args_str(a, "device", "cuda", "the device whose choices to plan: cuda (recomputing cheap "
                "convolutions; ReLU sign bits) or cpu (what train-patch, train-image and bench "
                "--device cpu run, byte for byte)");
    mm_args_bool(a, "eval", "plan an evaluation forward pass instead of a training step");
    mm_args_str(a, "trainable", NULL, "comma-separated name prefixes of the trainable parameters "
                "(e.g. top.); default all");
    mm_args_str(a, "optimizer", "adam", "optimizer state to plan: adam (2 slots), sgd (1), none");
    mm_args_bool(a, "no-recompute", "keep every activation backward reads (no recomputation)");
    mm_args_int(a, "live", "0", "mammo plan: also list the N largest activations live at the "
                "arena's peak");
    mm_args_bool(a, "traffic", "mammo plan: also print the activation bytes the step's nodes "
                 "read and write, by op");
    mm_args_str(a, "precision", "fp32", "fp32, tf32 or bf16 (bf16: activations stored in bf16, "
                "as the cuda backend does; cpu: fp32 only)");
    mm_recompute_conv_flag_add(a);
    mm_recompute_slack_flag_add(a);
}

/* --device: cpu, or cuda (cuda:N) planned as the cuda backend chooses; nothing is opened (meta
 * runs no step to plan for). */
static mm_status plan_device(const char *name, mm_precision precision, mm_device_kind *device)
{
    int gpu;
    MM_TRY(mm_device_resolve(name, precision, device, &gpu));
    if (*device == MM_DEVICE_META)
        return mm_fail(MM_ERR_ARG, "--device meta: plan and summary run on meta anyway; give the "
                       "device to plan for, cpu or cuda");
    return MM_OK;
}

static mm_status run(const mm_args *a, bool table)
{
    mm_model_config c;
    MM_TRY(mm_model_flags_get(&c, a, true));
    MM_TRY(mm_width_div_flag_get(a, &c.width_div));
    c.training = !mm_args_get_bool(a, "eval");
    c.trainable = mm_args_get(a, "trainable");
    int64_t recompute_conv, live;
    MM_TRY(mm_args_get_int(a, "live", &live));
    if (live < 0) return mm_fail(MM_ERR_ARG, "--live %lld: must be >= 0", (long long)live);
    MM_TRY(mm_recompute_conv_flag_get(a, &recompute_conv));
    mm_precision precision;
    MM_TRY(mm_precision_parse(mm_args_get(a, "precision"), &precision));
    mm_device_kind device = MM_DEVICE_CUDA;
    MM_TRY(plan_device(mm_args_get(a, "device"), precision, &device));
    mm_model_config_for_device(&c, device, precision);
    double slack;
    MM_TRY(mm_recompute_slack_flag_get(a, &slack));
    mm_model_config_recompute(&c, mm_args_get_bool(a, "no-recompute"), recompute_conv, slack);
    const char *opt = mm_args_get(a, "optimizer");
    int slots;
    if (!strcmp(opt, "adam"))
        slots = 2;
    else if (!strcmp(opt, "sgd"))
        slots = 1;
    else if (!strcmp(opt, "none"))
        slots = 0;
    else
        return mm_fail(MM_ERR_ARG, "--optimizer: unknown '%s'; use adam, sgd or none", opt);
    if (!c.training) slots = 0;

    mm_backend *be;
    MM_TRY(mm_backend_create("meta", &be));
    mm_model m;
    mm_status st = mm_model_build(&m, &c);
    if (st != MM_OK) {
        mm_backend_destroy(be);
        return st;
    }
    mm_plan plan;
    st = mm_plan_make(&plan, m.g, be, slots);
    if (st == MM_OK) {
        if (!table && mm_args_get_bool(a, "traffic"))
            mm_graph_print_traffic(m.g, device == MM_DEVICE_CUDA, stdout);
        if (table)
            mm_model_summary(&m, &plan, stdout);
        else
            mm_plan_print(&plan, stdout);
        if (!table && live > 0) mm_plan_print_live(&plan, m.g, (int)live, stdout);
        mm_plan_free(&plan);
    }
    mm_model_free(&m);
    mm_backend_destroy(be);
    return st;
}

static int command(int argc, char **argv, bool table)
{
    mm_args a;
    if (table)
        mm_args_init(&a, "mammo summary", "--net resnet50 [--top SPEC] [--input HxW] [--batch B]",
                     "Prints the layers (op, output shape, parameters, FLOPs), the totals and the\n"
                     "planned memory of one training step (meta backend: no data, no arithmetic).");
    else
        mm_args_init(&a, "mammo plan", "--net resnet50 [--top SPEC] [--input HxW] [--batch B]",
                     "Prints the memory plan of one training step; the last line is peak_bytes=N.");
    add_flags(&a);
    if (mm_args_parse(&a, argc, argv) != MM_OK) return mm_cli_error();
    if (a.help) return 0;
    if (run(&a, table) != MM_OK) return mm_cli_error();
    return 0;
}

int mm_cmd_summary(int argc, char **argv) { return command(argc, argv, true); }

int mm_cmd_plan(int argc, char **argv) { return command(argc, argv, false); }
