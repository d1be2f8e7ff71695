/* The training metrics log: a JSONL file (one JSON object per line, each line flushed as it is
 * written, so `tail -f` and a crash both see whole lines). The trainer writes RUN_DIR/metrics.jsonl
 * with the events below; `mammo report` reads it (train/run_log.h).
 *
 * ---- event schema (version 1) ----
 * Every line is an object with "event" (a string) and "time" (seconds since the Unix epoch, wall
 * clock, a number; the writer adds it). Epochs count from 1; "step" is always the global number
 * of optimizer steps done since the run began (1-based, it keeps counting across epochs, stages
 * and resumes). Fields marked (opt) may be absent; readers ignore fields they do not know.
 *
 *   {"event":"run", "version":1, "command":"train-image", "resumed":false, "epoch":0, "step":0}
 *       A training process starts. On --resume: "resumed":true with "epoch" = epochs completed
 *       and "step" = steps completed in the checkpoint it continues from; readers then drop any
 *       earlier step event with a larger step and epoch event with a larger epoch (the
 *       resumed run redoes them), and any earlier "end".
 *   {"event":"stage", "stage":2, "name":"top layers", "epoch":4, "epochs":10, "step":1200,
 *    "lr":1e-4, "peak_bytes":1744360192}
 *       A stage of the schedule begins: its 1-based number, a name (opt), its first epoch, its
 *       number of epochs (opt), the steps done before it, its learning rate (opt), the planned
 *       peak memory of its training step on one device (opt; weights, gradients, optimizer
 *       state, activations and scratch).
 *   {"event":"step", "epoch":1, "step":10, "loss":0.52, "lr":1e-4, "images_per_s":31.2,
 *    "steps":10}
 *       Training loss: "loss" is the mean of the training losses of the last "steps" (opt,
 *       default 1) optimizer steps up to and including "step". lr (opt), images_per_s (opt).
 *   {"event":"epoch", "epoch":1, "step":400, "train_loss":0.61, "train_acc":0.7,
 *    "val_loss":0.58, "val_auc":0.81, "val_acc":0.75, "lr":1e-4, "seconds":312.5, "best":true}
 *       An epoch ends: "step" = steps done at its end; train_loss = mean training loss over the
 *       epoch; the validation results (opt: val_auc for the whole-image classifier, val_acc for
 *       the patch classifier); "best" (opt): this epoch's checkpoint is the best so far.
 *   {"event":"end", "status":"finished", "epochs":50, "step":20000, "best_epoch":37,
 *    "best_metric":"val_auc", "best_value":0.91}
 *       The run ends. status: "finished", "early_stopped", "diverged" (a NaN loss) or
 *       "interrupted". best_* (opt).
 *
 * In the C structs below a double that is NaN and an int that is -1 mean "absent": the field is
 * not written. */
#ifndef MM_JSONL_H
#define MM_JSONL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"

#define MM_JSONL_VERSION 1

typedef struct mm_jsonl {
    FILE *f;
    char *path;
} mm_jsonl;

/* Opens `path` for writing: append = true keeps what is there (resume) and starts on a fresh
 * line if the last one was cut short by a crash; false truncates. A zeroed mm_jsonl that was
 * never opened takes every event and writes nothing (the nodes of a group other than 0). */
mm_status mm_jsonl_open(mm_jsonl *j, const char *path, bool append);
void mm_jsonl_close(mm_jsonl *j);

/* Writes one object as one line and flushes. Adds "time" if the object has none. Does not take
 * the reference. MM_ERR_IO (naming the file) when the write fails, e.g. a full disk. */
mm_status mm_jsonl_write(mm_jsonl *j, json_t *obj);

/* ---- typed events ---- */

mm_status mm_jsonl_run(mm_jsonl *j, const char *command, bool resumed, int epoch, int64_t step);

/* name may be NULL; epochs -1, lr NaN and peak_bytes 0 when absent. peak_bytes: the planned
 * peak memory of the stage's training step ("peak_bytes", as `mammo bench`'s
 * planned_peak_bytes). */
mm_status mm_jsonl_stage(mm_jsonl *j, int stage, const char *name, int first_epoch, int epochs,
                         int64_t step, double lr, size_t peak_bytes);

typedef struct mm_log_step {
    int epoch;
    int64_t step;
    double loss;
    double lr;           /* NaN: absent */
    double images_per_s; /* NaN: absent */
    int steps;           /* steps averaged in loss; <= 1: one (not written) */
} mm_log_step;

mm_status mm_jsonl_step(mm_jsonl *j, const mm_log_step *e);

typedef struct mm_log_epoch {
    int epoch;
    int64_t step;
    double train_loss, train_acc, val_loss, val_auc, val_acc, lr, seconds; /* NaN: absent */
    int best;                                                            /* -1 absent, 0, 1 */
} mm_log_epoch;

/* Every double NaN, best -1, epoch and step 0. */
void mm_log_epoch_init(mm_log_epoch *e);
mm_status mm_jsonl_epoch(mm_jsonl *j, const mm_log_epoch *e);

/* best_metric NULL / best_epoch -1 / best_value NaN when absent. */
mm_status mm_jsonl_end(mm_jsonl *j, const char *status, int epochs, int64_t step, int best_epoch,
                       const char *best_metric, double best_value);

/* Seconds since the Unix epoch (wall clock), as written in "time". */
double mm_wall_time(void);

#endif
