/* `mammo predict`: per-image malignancy scores of whole-image models on one split of an index,
 * with flip test-time augmentation (--tta: the mean over the image and its horizontal, vertical
 * and double flips) and model averaging (the mean over the models), as the paper's best results. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/backend.h"
#include "../runtime/torch_pth.h"
#include "../train/checkpoint.h"
#include "../train/dataset.h"
#include "../train/infer.h"
#include "../train/predictions.h"
#include "args.h"
#include "commands.h"
#include "model_flags.h"

#define MAX_MODELS 16

/* Scores of one model read from the open file f: probability of class 1 for every image. */
static mm_status predict_from(double *score, const mm_safetensors *f, const mm_dataset *d,
                              int batch, bool tta, int threads, mm_backend *be)
{
    const char *path = mm_safetensors_path(f);
    mm_checkpoint_info info;
    MM_TRY(mm_checkpoint_info_from(f, &info));
    if (info.kind != MM_MODEL_WHOLE || info.classes != 2)
        return mm_fail(MM_ERR_ARG, "--model %s: a %s model with %d classes; predict needs a "
                       "whole-image classifier (mammo train-image)",
                       path, mm_model_kind_name(info.kind), info.classes);
    if (info.st.height < 1 || info.st.width < 1)
        return mm_fail(MM_ERR_FORMAT, "%s: metadata lacks the input size", path);
    mm_model_config mc = mm_model_config_default(MM_MODEL_WHOLE, info.trunk);
    mc.top = info.top;
    mc.classes = 2;
    mc.width_div = info.width_div;
    mc.batch = batch;
    mc.height = info.st.height;
    mc.width = info.st.width;
    mm_model m;
    MM_TRY(mm_model_build(&m, &mc));
    mm_session s;
    mm_status st = mm_session_init(&s, m.g, be, 0);
    if (st != MM_OK) {
        mm_model_free(&m);
        return st;
    }
    st = mm_model_load_from(&m, &s, f, MM_LOAD_ALL);
    float *probs = mm_xmalloc((size_t)d->n * 2 * sizeof(float));
    mm_infer_opts io = {info.st.rescale, info.st.pixel_mean, tta, threads};
    if (st == MM_OK) st = mm_infer(probs, &m, &s, d->items, d->n, &io);
    for (int i = 0; i < d->n && st == MM_OK; i++) score[i] = probs[2 * i + 1];
    free(probs);
    mm_session_free(&s);
    mm_model_free(&m);
    return st;
}

/* The checkpoint is opened once: its metadata shapes the model, its tensors fill it. */
static mm_status predict_one(double *score, const char *path, const mm_dataset *d, int batch,
                             bool tta, int threads, mm_backend *be)
{
    mm_safetensors *f;
    MM_TRY(mm_weights_open(&f, path)); /* a PyTorch file: says it is not mammo's */
    mm_status st = predict_from(score, f, d, batch, tta, threads, be);
    mm_safetensors_close(f);
    return st;
}

int mm_cmd_predict(int argc, char **argv)
{
    mm_args a;
    mm_args_init(&a, "mammo predict", "--model M1[,M2,...] --index INDEX.csv --out PRED.csv [flags]",
                 "Writes per-image scores (probability of malignancy) of one or more whole-image\n"
                 "models on a split of a prepped index: with --tta each score is the mean over the\n"
                 "four flips; with several models, the mean over the models (one column each too).");
    mm_args_str(&a, "model", NULL, "model file(s), comma-separated (required)");
    mm_args_str(&a, "index", NULL, "index.csv written by 'mammo prep' (required)");
    mm_args_str(&a, "split", "test", "train, val or test");
    mm_args_str(&a, "out", NULL, "predictions CSV to write (required)");
    mm_args_bool(&a, "tta", "average the four flip predictions");
    mm_args_int(&a, "batch", "2", "images per step");
    mm_args_int(&a, "threads", "0", "image decoding threads (0: all CPUs)");
    mm_args_str(&a, "device", "cpu", "cpu, cuda or cuda:N (GPU N)");
    mm_deterministic_flag_add(&a);
    mm_algo_cache_flag_add(&a);
    if (mm_args_parse(&a, argc, argv) != MM_OK) return mm_cli_error();
    if (a.help) return 0;
    const char *models = mm_args_get(&a, "model"), *index = mm_args_get(&a, "index"),
               *out = mm_args_get(&a, "out"), *split_name = mm_args_get(&a, "split");
    int64_t batch, threads;
    if (mm_args_get_int(&a, "batch", &batch) != MM_OK || mm_args_get_int(&a, "threads", &threads) != MM_OK)
        return mm_cli_error();
    if (!models || !index || !out) {
        mm_fail(MM_ERR_ARG, "mammo predict: --model, --index and --out are required");
        return mm_cli_error();
    }
    if (batch < 1 || batch > 4096 || threads < 0) {
        mm_fail(MM_ERR_ARG, "mammo predict: --batch must be 1..4096 and --threads >= 0");
        return mm_cli_error();
    }
    mm_split split;
    if (!strcmp(split_name, "train")) split = MM_SPLIT_TRAIN;
    else if (!strcmp(split_name, "val")) split = MM_SPLIT_VAL;
    else if (!strcmp(split_name, "test")) split = MM_SPLIT_TEST;
    else {
        mm_fail(MM_ERR_ARG, "--split %s: use train, val or test", split_name);
        return mm_cli_error();
    }

    char *list = mm_xstrdup(models), *paths[MAX_MODELS], *save = NULL;
    int n_models = 0;
    for (char *p = strtok_r(list, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        if (n_models == MAX_MODELS) {
            free(list);
            mm_fail(MM_ERR_ARG, "--model: at most %d models", MAX_MODELS);
            return mm_cli_error();
        }
        paths[n_models++] = p;
    }
    mm_dataset d;
    mm_backend *be = NULL;
    mm_status st = mm_dataset_from_index(&d, index, split, 0);
    if (st != MM_OK) {
        free(list);
        return mm_cli_error();
    }
    st = mm_backend_create(mm_args_get(&a, "device"), &be);
    if (st == MM_OK) mm_deterministic_flag_set(&a, be);
    if (st == MM_OK) st = mm_algo_cache_flag_apply(&a, mm_args_get(&a, "device"), be);
    double *scores = mm_xcalloc((size_t)d.n * (n_models ? n_models : 1), sizeof(double));
    for (int k = 0; k < n_models && st == MM_OK; k++) {
        double *col = mm_xmalloc((size_t)d.n * sizeof(double));
        st = predict_one(col, paths[k], &d, (int)batch, mm_args_get_bool(&a, "tta"), (int)threads, be);
        for (int i = 0; i < d.n && st == MM_OK; i++) scores[(size_t)i * n_models + k] = col[i];
        free(col);
    }
    if (st == MM_OK) {
        char names[MAX_MODELS][12];
        const char *name_ptrs[MAX_MODELS];
        for (int k = 0; k < n_models; k++) {
            snprintf(names[k], sizeof names[k], "%d", k + 1);
            name_ptrs[k] = names[k];
        }
        mm_predictions p;
        mm_predictions_init(&p, n_models > 1 ? n_models : 0, name_ptrs);
        for (int i = 0; i < d.n; i++) {
            double mean = 0;
            for (int k = 0; k < n_models; k++) mean += scores[(size_t)i * n_models + k];
            mean /= n_models;
            mm_predictions_add(&p, d.items[i].path, d.items[i].label, mean,
                               n_models > 1 ? &scores[(size_t)i * n_models] : NULL);
        }
        st = mm_predictions_write(&p, out);
        mm_predictions_free(&p);
        if (st == MM_OK)
            printf("%d images, %d model%s%s: %s\n", d.n, n_models, n_models > 1 ? "s" : "",
                   mm_args_get_bool(&a, "tta") ? ", flip TTA" : "", out);
    }
    free(scores);
    free(list);
    mm_dataset_free(&d);
    mm_backend_destroy(be);
    return st == MM_OK ? 0 : mm_cli_error();
}
