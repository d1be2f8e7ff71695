/* The HTML report of a training run (`mammo report RUN_DIR`): one self-contained page (inline
 * CSS and SVG, no scripts, no external files) with
 *   - a summary (status, best validation metric, test AUC with its confidence interval, time);
 *   - the training loss per step (raw, or a min-max band when there are many steps, and a
 *     moving average), the mean loss of each epoch and the validation loss, with the schedule's
 *     stage boundaries;
 *   - the validation AUC and accuracy (and training accuracy) per epoch, best epoch marked;
 *   - the ROC curve of the test predictions with its AUC, confidence interval and the operating
 *     point at the threshold, and the per-model AUCs of an ensemble;
 *   - a table per epoch and a table of the run's configuration (config.json, flattened).
 *
 * Inputs in RUN_DIR (each can be overridden):
 *   metrics.jsonl    required: the training log (runtime/jsonl.h)
 *   eval.json        optional: written by `mammo eval --out`; used for the ROC when present
 *   predictions.csv  optional: used for the ROC when there is no eval.json (evaluated here with
 *                    the threshold, resamples and seed below, the same defaults as mammo eval)
 *   config.json      optional: any JSON object, shown as a table
 * The page is written to RUN_DIR/report.html (temporary file + rename). */
#ifndef MM_REPORT_HTML_H
#define MM_REPORT_HTML_H

#include <stdint.h>

#include "../runtime/error.h"

typedef struct mm_report_opts {
    const char *run_dir;
    const char *metrics;     /* NULL: RUN_DIR/metrics.jsonl */
    const char *eval;        /* NULL: RUN_DIR/eval.json if it exists */
    const char *predictions; /* NULL: RUN_DIR/predictions.csv if it exists */
    const char *config;      /* NULL: RUN_DIR/config.json if it exists */
    const char *out;         /* NULL: RUN_DIR/report.html */
    double threshold;        /* for predictions.csv: default 0.5 */
    int resamples;           /* default 2000 */
    uint64_t seed;           /* default 0 */
} mm_report_opts;

/* Defaults for everything but run_dir. */
void mm_report_opts_init(mm_report_opts *o, const char *run_dir);

/* Reads the inputs and writes the page. Errors name the file: RUN_DIR missing or not a
 * folder, metrics.jsonl missing, an optional input that exists but is malformed, the page
 * that cannot be written. A predictions file without both classes is no error: the page says
 * why there is no ROC curve. On success *written (if not NULL) points to the page's path
 * (owned by the caller: free()). */
mm_status mm_report_write(const mm_report_opts *o, char **written);

#endif
