/* Evaluation of a predictions file: what `mammo eval` prints and writes, and what `mammo report`
 * draws. Unlabelled rows (label -1) are counted and left out of every metric.
 *
 * The JSON form (mammo eval --out, read back by mammo report):
 *   {"predictions": "<path>",
 *    "images": 612, "labelled": 612, "positives": 210, "negatives": 402, "unlabelled": 0,
 *    "auc": 0.8634,
 *    "auc_ci": {"level": 0.95, "lo": 0.8312, "hi": 0.8921, "method": "percentile bootstrap",
 *               "resamples": 2000, "used": 2000, "skipped": 0, "seed": 0},
 *    "threshold": 0.5, "accuracy": 0.80, "sensitivity": 0.71, "specificity": 0.85,
 *    "tp": 150, "fp": 62, "tn": 340, "fn": 60,
 *    "roc": {"fpr": [0, ...], "tpr": [0, ...], "threshold": [null, 0.99, ...]},
 *    "models": [{"name": "1", "auc": 0.85, "auc_ci": {...}}, ...]}
 * The first ROC threshold (+infinity) is written as null; "models" lists the per-model columns
 * of the predictions file (empty when there are none). */
#ifndef MM_EVALUATE_H
#define MM_EVALUATE_H

#include <jansson.h>
#include <stdio.h>

#include "metrics.h"
#include "predictions.h"

typedef struct mm_eval_model {
    char *name;    /* the <name> of its score_<name> column */
    mm_auc_ci ci;  /* ci.auc is the model's AUC */
} mm_eval_model;

typedef struct mm_eval {
    char *source; /* the predictions file */
    int64_t images, labelled, positives, negatives, unlabelled;
    mm_auc_ci ci;            /* ci.auc: the AUC of the score column */
    mm_threshold_metrics at; /* accuracy, sensitivity, specificity at the threshold */
    mm_roc_point *roc;       /* [n_roc] */
    int64_t n_roc;
    int n_models;
    mm_eval_model *models;   /* [n_models] */
} mm_eval;

/* Computes everything from a predictions table. `source` names the file in messages and in the
 * result. Errors (MM_ERR_FORMAT, naming `source`): no labelled rows, a single class among the
 * labelled rows; and those of mm_auc_bootstrap (resamples < 1, level outside (0,1)). */
mm_status mm_eval_predictions(mm_eval *e, const mm_predictions *p, const char *source,
                              double threshold, int resamples, double level, uint64_t seed);

/* The JSON object above (a new reference). */
json_t *mm_eval_to_json(const mm_eval *e);

/* Writes mm_eval_to_json atomically (temporary file + rename), one top-level key per line. */
mm_status mm_eval_write_json(const mm_eval *e, const char *path);

/* Reads an eval JSON file back (missing file: MM_ERR_IO; malformed: MM_ERR_FORMAT naming it). */
mm_status mm_eval_read_json(mm_eval *e, const char *path);

/* The human summary mammo eval prints. */
void mm_eval_print(FILE *f, const mm_eval *e);

void mm_eval_free(mm_eval *e);

#endif
