/* Reading a training run's metrics.jsonl (the schema is in runtime/jsonl.h) back into arrays,
 * for `mammo report`. Resumes are resolved: a "run" event with "resumed":true drops the earlier
 * step/epoch/stage/end events that the resumed process redoes; and a step (epoch, stage) event
 * whose number is not above the last one kept replaces it and drops those after it, so the log
 * reads as one history even without a "run" event. Lines that are not JSON objects with a known
 * "event" (a line cut short by a crash) are skipped and counted. Absent numbers are NaN. */
#ifndef MM_RUN_LOG_H
#define MM_RUN_LOG_H

#include <stdint.h>

#include "../runtime/error.h"

typedef struct mm_run_step {
    int64_t step;
    int epoch;
    double loss, lr, images_per_s, time;
} mm_run_step;

typedef struct mm_run_epoch {
    int epoch;
    int64_t step; /* steps done at its end; -1 when not logged */
    double train_loss, train_acc, val_loss, val_auc, val_acc, lr, seconds, time;
    int best;     /* -1 absent, 0, 1 */
} mm_run_epoch;

typedef struct mm_run_stage {
    int stage, first_epoch, epochs; /* epochs -1 when absent */
    int64_t step;
    double lr;
    int64_t peak_bytes; /* the planned peak of its training step; 0 when absent */
    char *name; /* NULL when absent */
} mm_run_stage;

typedef struct mm_run_log {
    mm_run_step *steps;   /* [n_steps] by increasing step */
    int64_t n_steps;
    mm_run_epoch *epochs; /* [n_epochs] by increasing epoch */
    int n_epochs;
    mm_run_stage *stages; /* [n_stages] by increasing stage */
    int n_stages;
    char *command;        /* of the first "run" event, or NULL */
    int resumes;          /* "run" events with resumed true */
    double start_time;    /* "time" of the first event; NaN if none */
    double last_time;     /* largest "time" seen */
    int has_end;
    char *end_status;     /* of the last "end" event (NULL if none) */
    int end_best_epoch;   /* -1 if absent */
    char *end_best_metric;
    double end_best_value;
    int64_t bad_lines;    /* lines that were not JSON objects with a known "event" */
} mm_run_log;

/* Reads `path`. MM_ERR_IO when it cannot be opened. An empty file is a valid, empty log. */
mm_status mm_run_log_read(mm_run_log *log, const char *path);
void mm_run_log_free(mm_run_log *log);

#endif
