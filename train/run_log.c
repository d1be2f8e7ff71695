/* Reading metrics.jsonl back: see run_log.h. */
#include "run_log.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double get_num(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static int64_t get_int(json_t *o, const char *key, int64_t absent)
{
    json_t *v = json_object_get(o, key);
    if (json_is_integer(v)) return json_integer_value(v);
    if (json_is_real(v)) return (int64_t)json_real_value(v);
    return absent;
}

static char *get_str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? mm_xstrdup(s) : NULL;
}

/* Grows *arr (elements of `size` bytes) to hold n + 1. */
static void *grow(void *arr, int64_t n, int64_t *cap, size_t size)
{
    if (n < *cap) return arr;
    *cap = *cap ? 2 * *cap : 64;
    return mm_xrealloc(arr, (size_t)*cap * size);
}

static void drop_stages_from(mm_run_log *log, int keep)
{
    for (int i = keep; i < log->n_stages; i++) free(log->stages[i].name);
    log->n_stages = keep;
}

static void clear_end(mm_run_log *log)
{
    free(log->end_status);
    free(log->end_best_metric);
    log->end_status = log->end_best_metric = NULL;
    log->has_end = 0;
    log->end_best_epoch = -1;
    log->end_best_value = NAN;
}

typedef struct caps {
    int64_t steps, epochs, stages;
} caps;

/* Applies one event; returns 0 when it is not a known event. */
static int apply(mm_run_log *log, caps *cap, json_t *o)
{
    const char *ev = json_string_value(json_object_get(o, "event"));
    if (!ev) return 0;
    double t = get_num(o, "time");
    if (isfinite(t)) {
        if (isnan(log->start_time)) log->start_time = t;
        if (isnan(log->last_time) || t > log->last_time) log->last_time = t;
    }
    if (!strcmp(ev, "step")) {
        mm_run_step s;
        s.step = get_int(o, "step", -1);
        if (s.step < 0) return 0;
        s.epoch = (int)get_int(o, "epoch", 0);
        s.loss = get_num(o, "loss");
        s.lr = get_num(o, "lr");
        s.images_per_s = get_num(o, "images_per_s");
        s.time = t;
        while (log->n_steps && log->steps[log->n_steps - 1].step >= s.step) log->n_steps--;
        log->steps = grow(log->steps, log->n_steps, &cap->steps, sizeof s);
        log->steps[log->n_steps++] = s;
    } else if (!strcmp(ev, "epoch")) {
        mm_run_epoch e;
        e.epoch = (int)get_int(o, "epoch", -1);
        if (e.epoch < 0) return 0;
        e.step = get_int(o, "step", -1);
        e.train_loss = get_num(o, "train_loss");
        e.train_acc = get_num(o, "train_acc");
        e.val_loss = get_num(o, "val_loss");
        e.val_auc = get_num(o, "val_auc");
        e.val_acc = get_num(o, "val_acc");
        e.lr = get_num(o, "lr");
        e.seconds = get_num(o, "seconds");
        e.time = t;
        json_t *b = json_object_get(o, "best");
        e.best = json_is_boolean(b) ? json_is_true(b) : -1;
        while (log->n_epochs && log->epochs[log->n_epochs - 1].epoch >= e.epoch) log->n_epochs--;
        log->epochs = grow(log->epochs, log->n_epochs, &cap->epochs, sizeof e);
        log->epochs[log->n_epochs++] = e;
    } else if (!strcmp(ev, "stage")) {
        mm_run_stage s;
        s.stage = (int)get_int(o, "stage", -1);
        if (s.stage < 0) return 0;
        s.first_epoch = (int)get_int(o, "epoch", 0);
        s.epochs = (int)get_int(o, "epochs", -1);
        s.step = get_int(o, "step", 0);
        s.lr = get_num(o, "lr");
        s.peak_bytes = get_int(o, "peak_bytes", 0);
        int keep = log->n_stages;
        while (keep && log->stages[keep - 1].stage >= s.stage) keep--;
        drop_stages_from(log, keep);
        s.name = get_str(o, "name");
        log->stages = grow(log->stages, log->n_stages, &cap->stages, sizeof s);
        log->stages[log->n_stages++] = s;
    } else if (!strcmp(ev, "run")) {
        if (!log->command) log->command = get_str(o, "command");
        if (json_is_true(json_object_get(o, "resumed"))) {
            log->resumes++;
            int64_t step = get_int(o, "step", 0);
            int epoch = (int)get_int(o, "epoch", 0);
            while (log->n_steps && log->steps[log->n_steps - 1].step > step) log->n_steps--;
            while (log->n_epochs && log->epochs[log->n_epochs - 1].epoch > epoch) log->n_epochs--;
            int keep = log->n_stages;
            while (keep && log->stages[keep - 1].first_epoch > epoch) keep--;
            drop_stages_from(log, keep);
            clear_end(log);
        }
    } else if (!strcmp(ev, "end")) {
        clear_end(log);
        log->has_end = 1;
        log->end_status = get_str(o, "status");
        log->end_best_epoch = (int)get_int(o, "best_epoch", -1);
        log->end_best_metric = get_str(o, "best_metric");
        log->end_best_value = get_num(o, "best_value");
    } else {
        return 0;
    }
    return 1;
}

mm_status mm_run_log_read(mm_run_log *log, const char *path)
{
    memset(log, 0, sizeof *log);
    log->start_time = log->last_time = NAN;
    clear_end(log);
    FILE *f = fopen(path, "rb");
    if (!f) return mm_fail(MM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    caps cap = {0, 0, 0};
    char *line = NULL;
    size_t line_cap = 0;
    ssize_t len;
    while ((len = getline(&line, &line_cap, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        size_t a = strspn(line, " \t");
        if (line[a] == '\0') continue;
        json_error_t err;
        json_t *o = json_loadb(line, (size_t)len, 0, &err);
        if (!json_is_object(o) || !apply(log, &cap, o)) log->bad_lines++;
        json_decref(o);
    }
    free(line);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        mm_run_log_free(log);
        return mm_fail(MM_ERR_IO, "%s: read error", path);
    }
    return MM_OK;
}

void mm_run_log_free(mm_run_log *log)
{
    drop_stages_from(log, 0);
    free(log->stages);
    free(log->steps);
    free(log->epochs);
    free(log->command);
    clear_end(log);
    memset(log, 0, sizeof *log);
}
