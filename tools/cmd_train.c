/* `mammo train-patch` and `mammo train-image`: the paper's two training commands (trainer.h).
 *
 * train-patch: the 5-class patch classifier on a patch set (`mammo patches`), 3 stages by default:
 *   the last layer at 1e-3 for 3 epochs, the top layers at 1e-4 for 10, all layers at 1e-5 for 37.
 * train-image: the whole-image classifier from a patch classifier (--patch-model, converted: trunk
 *   kept, top blocks new) or a whole-image model (--init, transfer), on a prepped index, 2 stages:
 *   the new top layers first, then everything. The paper gives no numbers for this schedule; the
 *   defaults (1e-4 for 10 epochs, then 1e-5 for 40, early stopping after 10 epochs without a better
 *   validation AUC) follow the reference's Adam runs. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/dist.h"
#include "../train/checkpoint.h"
#include "../train/trainer.h"
#include "args.h"
#include "commands.h"
#include "model_flags.h"

/* "3,10,37" -> ints; "1e-3,1e-4" -> doubles. Returns the count or -1. */
static int parse_list(const char *s, double *out, int max)
{
    int n = 0;
    while (s && *s) {
        if (n == max) return -1;
        char *end;
        out[n++] = strtod(s, &end);
        if (end == s || (*end != ',' && *end != '\0')) return -1;
        s = *end ? end + 1 : end;
    }
    return n;
}

static void add_common_flags(mm_args *a, const char *input, const char *batch, const char *epochs,
                             const char *lrs)
{
    mm_args_str(a, "net", "resnet50", "trunk: resnet50 or vgg16");
    mm_width_div_flag_add(a);
    mm_scratch_flag_add(a);
    mm_args_bool(a, "no-recompute",
                 "keep every activation the backward pass reads instead of recomputing the cheap "
                 "ones (more memory; on the CPU about 5% faster for narrow nets)");
    mm_recompute_conv_flag_add(a);
    mm_recompute_slack_flag_add(a);
    mm_args_str(a, "run", NULL, "run folder for checkpoints, logs and the report (required)");
    mm_args_str(a, "input", input, "image size HEIGHTxWIDTH");
    mm_args_int(a, "batch", batch, "images per step");
    mm_args_int(a, "eval-batch", "0", "images per validation step (0: as --batch)");
    mm_args_str(a, "epochs", epochs, "epochs of each stage, comma-separated");
    mm_args_str(a, "lr", lrs, "learning rate of each stage, comma-separated");
    mm_args_float(a, "weight-decay", "0", "L2 weight decay (Adam)");
    mm_args_bool(a, "adamw", "decoupled weight decay (AdamW) instead of L2");
    mm_args_float(a, "dropout", "0", "dropout before the output layer");
    mm_args_bool(a, "no-augment", "turn off the on-the-fly augmentation");
    mm_args_bool(a, "no-balance", "turn off the class-balanced sample weights");
    mm_args_int(a, "patience", "0", "stop after this many epochs without a better validation metric (0: never)");
    mm_args_int(a, "seed", "0", "seed of initialisation, order and augmentation");
    mm_args_int(a, "threads", "0", "image decoding threads (0: all CPUs)");
    mm_args_str(a, "device", "cpu", "cpu, cuda or cuda:N (GPU N)");
    mm_args_str(a, "precision", "fp32", "fp32, tf32 or bf16 (cuda)");
    mm_args_bool(a, "cuda-graph", "replay each training step as one CUDA graph (cuda, no dropout)");
    mm_args_int(a, "replicas", "1",
                "data parallel: train on this many GPUs from --device's on, --batch images each "
                "a step, their gradients averaged (NCCL)");
    mm_args_int(a, "accumulate", "1",
                "gradient accumulation: each optimizer step averages the gradients of this many "
                "batches (of --batch images, on each replica) run one after the other");
    mm_nodes_flags_add(a);
    mm_deterministic_flag_add(a);
    mm_algo_cache_flag_add(a);
    mm_args_bool(a, "resume", "continue the run in --run from its last checkpoint");
}

/* Fills the parts of the config both commands share; errors name the flag. */
static mm_status common_config(mm_train_config *c, const mm_args *a, int default_stages)
{
    int64_t batch, eval_batch, patience, seed, threads, replicas, accumulate;
    double wd, dropout, epochs[MM_MAX_STAGES], lrs[MM_MAX_STAGES];
    MM_TRY(mm_trunk_parse(&c->trunk, mm_args_get(a, "net"), "--net"));
    c->run_dir = mm_args_get(a, "run");
    if (!c->run_dir) return mm_fail(MM_ERR_ARG, "%s: --run DIR is required", a->prog);
    MM_TRY(mm_parse_hw(mm_args_get(a, "input"), "--input", &c->height, &c->width));
    MM_TRY(mm_args_get_int(a, "batch", &batch));
    MM_TRY(mm_width_div_flag_get(a, &c->width_div));
    MM_TRY(mm_scratch_flag_get(a, &c->scratch_budget, &c->scratch_strict));
    c->no_recompute = mm_args_get_bool(a, "no-recompute");
    MM_TRY(mm_recompute_conv_flag_get(a, &c->recompute_conv));
    MM_TRY(mm_recompute_slack_flag_get(a, &c->recompute_slack));
    MM_TRY(mm_args_get_int(a, "eval-batch", &eval_batch));
    MM_TRY(mm_args_get_int(a, "patience", &patience));
    MM_TRY(mm_args_get_int(a, "seed", &seed));
    MM_TRY(mm_args_get_int(a, "threads", &threads));
    MM_TRY(mm_args_get_int(a, "replicas", &replicas));
    if (replicas < 1 || replicas > MM_MAX_REPLICAS)
        return mm_fail(MM_ERR_ARG, "--replicas %lld: use 1 to %d (one per GPU)",
                       (long long)replicas, MM_MAX_REPLICAS);
    MM_TRY(mm_args_get_int(a, "accumulate", &accumulate));
    if (accumulate < 1 || accumulate > 4096)
        return mm_fail(MM_ERR_ARG, "--accumulate %lld: use 1 (none) to 4096 batches a step",
                       (long long)accumulate);
    c->accumulate = (int)accumulate;
    MM_TRY(mm_nodes_flags_get(a, &c->nodes, &c->node_rank, &c->master));
    MM_TRY(mm_args_get_float(a, "weight-decay", &wd));
    MM_TRY(mm_args_get_float(a, "dropout", &dropout));
    if (batch < 1 || batch > 4096) return mm_fail(MM_ERR_ARG, "--batch %lld: must be 1..4096", (long long)batch);
    if (eval_batch < 0 || eval_batch > 4096) return mm_fail(MM_ERR_ARG, "--eval-batch: must be 0..4096");
    if (patience < 0 || threads < 0 || wd < 0 || dropout < 0 || dropout >= 1)
        return mm_fail(MM_ERR_ARG, "%s: --patience, --threads, --weight-decay must be >= 0 and "
                       "--dropout in [0, 1)", a->prog);
    int ne = parse_list(mm_args_get(a, "epochs"), epochs, MM_MAX_STAGES);
    int nl = parse_list(mm_args_get(a, "lr"), lrs, MM_MAX_STAGES);
    if (ne < 1 || ne != default_stages)
        return mm_fail(MM_ERR_ARG, "--epochs %s: give %d comma-separated epoch counts",
                       mm_args_get(a, "epochs"), default_stages);
    if (nl != ne)
        return mm_fail(MM_ERR_ARG, "--lr %s: give one learning rate per stage (%d)",
                       mm_args_get(a, "lr"), ne);
    c->n_stages = ne;
    for (int i = 0; i < ne; i++) {
        if (epochs[i] < 0 || epochs[i] != (int)epochs[i] || !(lrs[i] > 0))
            return mm_fail(MM_ERR_ARG, "--epochs/--lr: stage %d needs a whole epoch count >= 0 and "
                           "a positive learning rate", i + 1);
        c->stages[i].epochs = (int)epochs[i];
        c->stages[i].lr = lrs[i];
    }
    c->batch = (int)batch;
    c->eval_batch = eval_batch ? (int)eval_batch : (int)batch;
    c->patience = (int)patience;
    c->seed = (uint64_t)seed;
    c->threads = (int)threads;
    c->weight_decay = wd;
    c->decoupled_wd = mm_args_get_bool(a, "adamw");
    c->dropout = (float)dropout;
    c->augment = !mm_args_get_bool(a, "no-augment");
    c->class_balanced = !mm_args_get_bool(a, "no-balance");
    c->device = mm_args_get(a, "device");
    c->precision = mm_args_get(a, "precision");
    c->cuda_graph = mm_args_get_bool(a, "cuda-graph");
    c->replicas = (int)replicas;
    c->deterministic = mm_args_get_bool(a, "deterministic");
    MM_TRY(mm_algo_cache_flag_get(a, c->device, c->algo_cache_dir, sizeof c->algo_cache_dir));
    c->resume = mm_args_get_bool(a, "resume");
    if (c->cuda_graph && c->dropout > 0)
        return mm_fail(MM_ERR_ARG, "%s: --cuda-graph replays one recorded step, so dropout would "
                       "draw the same mask every step; use --dropout 0 or leave --cuda-graph out",
                       a->prog);
    return MM_OK;
}

/* The command line as JSON, for config.json and the checkpoints. */
static char *config_json(const mm_args *a)
{
    json_t *o = json_object();
    json_object_set_new(o, "command", json_string(a->prog));
    for (int i = 0; i < a->n; i++) {
        const char *v = mm_args_get(a, a->flags[i].name);
        if (a->flags[i].type == MM_ARG_BOOL) json_object_set_new(o, a->flags[i].name, json_boolean(v != NULL));
        else if (v) json_object_set_new(o, a->flags[i].name, json_string(v));
    }
    char *s = json_dumps(o, JSON_SORT_KEYS | JSON_INDENT(2));
    json_decref(o);
    return s;
}

/* Trains on the two splits (freed here, as is nothing else) and prints where the model is. */
static int train_and_report(mm_train_config *c, const mm_args *a, mm_dataset *train, mm_dataset *val)
{
    c->train = train;
    c->val = val;
    char *json = config_json(a);
    c->config_json = json;
    double best = 0;
    mm_status st = mm_train_run(c, &best);
    mm_dataset_free(train);
    mm_dataset_free(val);
    free(json);
    if (st != MM_OK) return mm_cli_error();
    if (c->node_rank > 0) {
        printf("node %d of %d: done; node 0 holds the model in %s/best.safetensors\n",
               c->node_rank, c->nodes, c->run_dir);
        return 0;
    }
    printf("best validation %s %.4f; model: %s/best.safetensors\n",
           c->classes == 2 ? "AUC" : "accuracy", best, c->run_dir);
    return 0;
}

int mm_cmd_train_patch(int argc, char **argv)
{
    mm_args a;
    mm_args_init(&a, "mammo train-patch", "--patches OUT/patches.csv --run DIR [flags]",
                 "Trains the 5-class patch classifier (background, calc benign, calc malignant,\n"
                 "mass benign, mass malignant) with the paper's 3-stage schedule: the last layer,\n"
                 "then the top layers, then all layers.");
    mm_args_str(&a, "patches", NULL, "patches.csv written by 'mammo patches' (required)");
    add_common_flags(&a, "224x224", "32", "3,10,37", "1e-3,1e-4,1e-5");
    mm_args_str(&a, "top-layers", NULL, "name prefixes trained in stage 2 (default: the net's top block and fc)");
    mm_args_str(&a, "init", NULL,
                "torchvision weights whose trunk starts the net, e.g. ImageNet: safetensors, or "
                "the .pth torchvision downloads");
    if (mm_args_parse(&a, argc, argv) != MM_OK) return mm_cli_error();
    if (a.help) return 0;
    mm_train_config c;
    mm_train_config_defaults(&c);
    c.command = "train-patch";
    c.kind = MM_MODEL_PATCH;
    c.classes = 5;
    c.class_names = "background,calc_ben,calc_mal,mass_ben,mass_mal";
    if (common_config(&c, &a, 3) != MM_OK) return mm_cli_error();
    const char *patches = mm_args_get(&a, "patches");
    if (!patches) {
        mm_fail(MM_ERR_ARG, "mammo train-patch: --patches is required (the patches.csv of 'mammo patches')");
        return mm_cli_error();
    }
    c.stages[0].trainable = mm_model_stage_trainable(MM_MODEL_PATCH, c.trunk, 1);
    c.stages[1].trainable = mm_args_get(&a, "top-layers") ? mm_args_get(&a, "top-layers")
                                                          : mm_model_stage_trainable(MM_MODEL_PATCH, c.trunk, 2);
    c.stages[2].trainable = NULL;
    c.init = mm_args_get(&a, "init");
    c.init_mode = MM_LOAD_TRUNK;
    mm_dataset train, val;
    if (mm_dataset_from_patches(&train, patches, "train") != MM_OK) return mm_cli_error();
    if (mm_dataset_from_patches(&val, patches, "val") != MM_OK) {
        mm_dataset_free(&train);
        return mm_cli_error();
    }
    return train_and_report(&c, &a, &train, &val);
}

int mm_cmd_train_image(int argc, char **argv)
{
    mm_args a;
    mm_args_init(&a, "mammo train-image",
                 "--index INDEX.csv (--patch-model P | --init M) --run DIR [flags]",
                 "Trains the whole-image classifier end to end with image labels only: a patch\n"
                 "classifier's trunk (--patch-model) plus new top blocks (--top), or a whole-image\n"
                 "model to fine-tune on another dataset (--init, e.g. DDSM -> INbreast). Two\n"
                 "stages: the new top layers, then all layers.");
    mm_args_str(&a, "index", NULL, "index.csv written by 'mammo prep' (required)");
    mm_args_str(&a, "patch-model", NULL, "patch classifier to convert (its trunk is kept)");
    mm_args_str(&a, "init", NULL, "whole-image model to start from (transfer learning)");
    mm_args_str(&a, "top", "[512-512-1024]x2,[512-512-1024]x2", "top blocks (see 'mammo summary --help')");
    mm_args_int(&a, "subset-patients", "0", "train on this many training patients only (0: all)");
    add_common_flags(&a, "1152x896", "2", "10,40", "1e-4,1e-5");
    if (mm_args_parse(&a, argc, argv) != MM_OK) return mm_cli_error();
    if (a.help) return 0;
    mm_train_config c;
    mm_train_config_defaults(&c);
    c.command = "train-image";
    c.kind = MM_MODEL_WHOLE;
    c.classes = 2;
    c.class_names = "negative,positive";
    if (common_config(&c, &a, 2) != MM_OK) return mm_cli_error();
    const char *index = mm_args_get(&a, "index"), *patch = mm_args_get(&a, "patch-model"),
               *init = mm_args_get(&a, "init");
    int64_t subset;
    if (mm_args_get_int(&a, "subset-patients", &subset) != MM_OK) return mm_cli_error();
    if (!index) {
        mm_fail(MM_ERR_ARG, "mammo train-image: --index is required (the index.csv of 'mammo prep')");
        return mm_cli_error();
    }
    if (!c.resume && (!patch) == (!init)) {
        mm_fail(MM_ERR_ARG, "mammo train-image: give exactly one of --patch-model and --init");
        return mm_cli_error();
    }
    if (subset < 0) {
        mm_fail(MM_ERR_ARG, "--subset-patients %lld: must be >= 0", (long long)subset);
        return mm_cli_error();
    }
    c.top = mm_args_get(&a, "top");
    c.stages[0].trainable = mm_model_stage_trainable(MM_MODEL_WHOLE, c.trunk, 1);
    c.stages[1].trainable = NULL;
    if (init) {
        /* transfer: the file's architecture decides --net/--top; check before loading */
        mm_checkpoint_info info;
        if (mm_checkpoint_info_read(init, &info) != MM_OK) return mm_cli_error();
        if (info.kind != MM_MODEL_WHOLE) {
            mm_fail(MM_ERR_ARG, "--init %s: holds a %s model; pass a whole-image model (or use "
                    "--patch-model for a patch classifier)", init, mm_model_kind_name(info.kind));
            return mm_cli_error();
        }
        c.trunk = info.trunk;
        c.width_div = info.width_div;
        c.top = mm_xstrdup(info.top);
        c.init = init;
        c.init_mode = MM_LOAD_ALL;
    } else if (patch) {
        /* conversion: the patch classifier decides the trunk */
        mm_checkpoint_info info;
        if (mm_checkpoint_info_read(patch, &info) != MM_OK) return mm_cli_error();
        if (info.kind != MM_MODEL_PATCH) {
            mm_fail(MM_ERR_ARG, "--patch-model %s: holds a %s model, not a patch classifier%s",
                    patch, mm_model_kind_name(info.kind),
                    info.kind == MM_MODEL_TORCHVISION
                        ? " (torchvision weights start one: mammo train-patch --init)" : "");
            return mm_cli_error();
        }
        if (mm_args_given(&a, "net") && info.trunk != c.trunk) {
            mm_fail(MM_ERR_ARG, "--patch-model %s is a %s; it does not match --net %s", patch,
                    mm_trunk_name(info.trunk), mm_trunk_name(c.trunk));
            return mm_cli_error();
        }
        c.trunk = info.trunk;
        c.width_div = info.width_div;
        c.init = patch;
        c.init_mode = MM_LOAD_TRUNK;
    }
    mm_dataset train, val;
    if (mm_dataset_from_index(&train, index, MM_SPLIT_TRAIN, (int)subset) != MM_OK)
        return mm_cli_error();
    if (mm_dataset_from_index(&val, index, MM_SPLIT_VAL, 0) != MM_OK) {
        mm_dataset_free(&train);
        return mm_cli_error();
    }
    int rc = train_and_report(&c, &a, &train, &val);
    if (init) free((char *)c.top);
    return rc;
}
