/* `mammo eval`: AUC with a bootstrap confidence interval, ROC points, and accuracy, sensitivity
 * and specificity at a threshold, from a predictions CSV (train/predictions.h). */
#include <stdio.h>
#include <stdlib.h>

#include "../train/evaluate.h"
#include "args.h"
#include "commands.h"

int mm_cmd_eval(int argc, char **argv)
{
    mm_args a;
    mm_args_init(&a, "mammo eval", "--pred PRED.csv [flags]",
                 "Evaluates per-image predictions (a CSV with columns image,label,score as "
                 "'mammo predict' writes):\nROC AUC with a percentile-bootstrap confidence "
                 "interval (images resampled with replacement;\nresamples that draw a single "
                 "class are skipped and counted), accuracy, sensitivity and\nspecificity at the "
                 "threshold. Rows with label -1 (unknown) are counted and left out.");
    mm_args_str(&a, "pred", NULL, "predictions CSV (image,label,score[,score_<model>...])");
    mm_args_float(&a, "threshold", "0.5", "score >= threshold is called malignant");
    mm_args_int(&a, "bootstrap", "2000", "number of bootstrap resamples for the AUC interval");
    mm_args_float(&a, "level", "0.95", "confidence level of the interval");
    mm_args_int(&a, "seed", "0", "seed of the bootstrap resampling");
    mm_args_str(&a, "out", NULL, "also write the metrics and the ROC points as JSON here");
    if (mm_args_parse(&a, argc, argv) != MM_OK) return mm_cli_error();
    if (a.help) return 0;
    if (a.n_pos) {
        mm_fail(MM_ERR_ARG, "mammo eval: unexpected argument '%s'; the predictions file goes "
                            "after --pred", a.pos[0]);
        return mm_cli_error();
    }
    const char *pred = mm_args_get(&a, "pred");
    if (!pred) {
        mm_fail(MM_ERR_ARG, "mammo eval: --pred PRED.csv is required");
        return mm_cli_error();
    }
    double threshold, level;
    int64_t resamples, seed;
    if (mm_args_get_float(&a, "threshold", &threshold) != MM_OK ||
        mm_args_get_float(&a, "level", &level) != MM_OK ||
        mm_args_get_int(&a, "bootstrap", &resamples) != MM_OK ||
        mm_args_get_int(&a, "seed", &seed) != MM_OK)
        return mm_cli_error();
    if (resamples < 1 || resamples > 10000000) {
        mm_fail(MM_ERR_ARG, "mammo eval: --bootstrap %lld: give 1 to 10000000 resamples",
                (long long)resamples);
        return mm_cli_error();
    }
    if (!(level > 0 && level < 1)) {
        mm_fail(MM_ERR_ARG, "mammo eval: --level %g: give a number between 0 and 1, e.g. 0.95",
                level);
        return mm_cli_error();
    }
    if (seed < 0) {
        mm_fail(MM_ERR_ARG, "mammo eval: --seed %lld: give a non-negative integer",
                (long long)seed);
        return mm_cli_error();
    }

    mm_predictions p;
    mm_eval e;
    if (mm_predictions_read(&p, pred) != MM_OK) {
        mm_predictions_free(&p);
        return mm_cli_error();
    }
    mm_status st = mm_eval_predictions(&e, &p, pred, threshold, (int)resamples, level,
                                       (uint64_t)seed);
    mm_predictions_free(&p);
    if (st != MM_OK) return mm_cli_error();

    const char *out = mm_args_get(&a, "out");
    if (out) st = mm_eval_write_json(&e, out);
    if (st == MM_OK) {
        mm_eval_print(stdout, &e);
        if (out) printf("wrote        %s\n", out);
    }
    mm_eval_free(&e);
    return st == MM_OK ? 0 : mm_cli_error();
}
