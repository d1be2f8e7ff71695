/* `mammo report RUN_DIR`: writes RUN_DIR/report.html, a self-contained page with the training
 * loss and validation curves and the test ROC curve as inline SVG (train/report_html.h). */
#include <stdio.h>
#include <stdlib.h>

#include "../train/report_html.h"
#include "args.h"
#include "commands.h"

int mm_cmd_report(int argc, char **argv)
{
    mm_args a;
    mm_args_init(&a, "mammo report", "RUN_DIR [flags]",
                 "Writes RUN_DIR/report.html: the training loss per step and per epoch, the\n"
                 "validation AUC and accuracy per epoch, the ROC curve of the test predictions\n"
                 "with its AUC and bootstrap confidence interval, and the run's configuration.\n"
                 "Reads RUN_DIR/metrics.jsonl (required), and when present RUN_DIR/eval.json\n"
                 "(mammo eval --out), else RUN_DIR/predictions.csv (mammo predict), and\n"
                 "RUN_DIR/config.json.");
    mm_args_str(&a, "metrics", NULL, "training log instead of RUN_DIR/metrics.jsonl");
    mm_args_str(&a, "eval", NULL, "evaluation JSON instead of RUN_DIR/eval.json");
    mm_args_str(&a, "pred", NULL, "predictions CSV instead of RUN_DIR/predictions.csv");
    mm_args_str(&a, "config", NULL, "configuration JSON instead of RUN_DIR/config.json");
    mm_args_str(&a, "out", NULL, "page to write instead of RUN_DIR/report.html");
    mm_args_float(&a, "threshold", "0.5", "threshold for a predictions CSV (as mammo eval)");
    mm_args_int(&a, "bootstrap", "2000", "bootstrap resamples for a predictions CSV");
    mm_args_int(&a, "seed", "0", "bootstrap seed for a predictions CSV");
    if (mm_args_parse(&a, argc, argv) != MM_OK) return mm_cli_error();
    if (a.help) return 0;
    if (a.n_pos != 1) {
        mm_fail(MM_ERR_ARG, "mammo report: give one run folder (mammo report RUN_DIR)%s",
                a.n_pos ? "; got more than one" : "");
        return mm_cli_error();
    }
    mm_report_opts o;
    mm_report_opts_init(&o, a.pos[0]);
    o.metrics = mm_args_get(&a, "metrics");
    o.eval = mm_args_get(&a, "eval");
    o.predictions = mm_args_get(&a, "pred");
    o.config = mm_args_get(&a, "config");
    o.out = mm_args_get(&a, "out");
    int64_t resamples, seed;
    if (mm_args_get_float(&a, "threshold", &o.threshold) != MM_OK ||
        mm_args_get_int(&a, "bootstrap", &resamples) != MM_OK ||
        mm_args_get_int(&a, "seed", &seed) != MM_OK)
        return mm_cli_error();
    if (resamples < 1 || resamples > 10000000 || seed < 0) {
        mm_fail(MM_ERR_ARG, "mammo report: --bootstrap takes 1 to 10000000 and --seed a "
                            "non-negative integer");
        return mm_cli_error();
    }
    if (o.eval && o.predictions) {
        mm_fail(MM_ERR_ARG, "mammo report: give --eval or --pred, not both");
        return mm_cli_error();
    }
    o.resamples = (int)resamples;
    o.seed = (uint64_t)seed;
    char *written = NULL;
    if (mm_report_write(&o, &written) != MM_OK) return mm_cli_error();
    printf("wrote %s\n", written);
    free(written);
    return 0;
}
