/* The JSONL metrics log writer: see jsonl.h for the event schema. */
#include "jsonl.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double mm_wall_time(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

mm_status mm_jsonl_open(mm_jsonl *j, const char *path, bool append)
{
    memset(j, 0, sizeof *j);
    FILE *f = fopen(path, append ? "a+" : "w");
    if (!f) return mm_fail(MM_ERR_IO, "%s: cannot open for writing: %s", path, strerror(errno));
    if (append && fseek(f, -1, SEEK_END) == 0) {
        /* A process killed mid-line leaves a partial last line; end it, so the next event is
         * a line of its own and only the partial one is unreadable. */
        int last = fgetc(f);
        fseek(f, 0, SEEK_END);
        if (last != '\n' && last != EOF) fputc('\n', f);
    }
    j->f = f;
    j->path = mm_xstrdup(path);
    return MM_OK;
}

void mm_jsonl_close(mm_jsonl *j)
{
    if (j->f) fclose(j->f);
    free(j->path);
    memset(j, 0, sizeof *j);
}

mm_status mm_jsonl_write(mm_jsonl *j, json_t *obj)
{
    MM_ASSERT(json_is_object(obj));
    if (!j->f) return MM_OK; /* never opened: the events are dropped */
    json_t *o = json_copy(obj);
    if (!json_object_get(o, "time")) json_object_set_new(o, "time", json_real(mm_wall_time()));
    /* JSON_PRESERVE_ORDER keeps "event" first, which makes the file easy to read by eye. */
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    json_decref(o);
    MM_ASSERT(line != NULL);
    int bad = fputs(line, j->f) < 0 || fputc('\n', j->f) == EOF || fflush(j->f) != 0;
    free(line);
    if (bad) return mm_fail(MM_ERR_IO, "%s: cannot write: %s", j->path, strerror(errno));
    return MM_OK;
}

static void set_num(json_t *o, const char *key, double v)
{
    if (isfinite(v)) json_object_set_new(o, key, json_real(v));
}

/* Writes and releases a new event object. */
static mm_status emit(mm_jsonl *j, json_t *o)
{
    mm_status s = mm_jsonl_write(j, o);
    json_decref(o);
    return s;
}

static json_t *event(const char *name)
{
    json_t *o = json_object();
    json_object_set_new(o, "event", json_string(name));
    return o;
}

mm_status mm_jsonl_run(mm_jsonl *j, const char *command, bool resumed, int epoch, int64_t step)
{
    json_t *o = event("run");
    json_object_set_new(o, "version", json_integer(MM_JSONL_VERSION));
    if (command) json_object_set_new(o, "command", json_string(command));
    json_object_set_new(o, "resumed", json_boolean(resumed));
    json_object_set_new(o, "epoch", json_integer(epoch));
    json_object_set_new(o, "step", json_integer(step));
    return emit(j, o);
}

mm_status mm_jsonl_stage(mm_jsonl *j, int stage, const char *name, int first_epoch, int epochs,
                         int64_t step, double lr, size_t peak_bytes)
{
    json_t *o = event("stage");
    json_object_set_new(o, "stage", json_integer(stage));
    if (name) json_object_set_new(o, "name", json_string(name));
    json_object_set_new(o, "epoch", json_integer(first_epoch));
    if (epochs >= 0) json_object_set_new(o, "epochs", json_integer(epochs));
    json_object_set_new(o, "step", json_integer(step));
    set_num(o, "lr", lr);
    if (peak_bytes) json_object_set_new(o, "peak_bytes", json_integer((json_int_t)peak_bytes));
    return emit(j, o);
}

mm_status mm_jsonl_step(mm_jsonl *j, const mm_log_step *e)
{
    json_t *o = event("step");
    json_object_set_new(o, "epoch", json_integer(e->epoch));
    json_object_set_new(o, "step", json_integer(e->step));
    /* A NaN loss is what the trainer stops on; it is logged as null so the line stays JSON. */
    json_object_set_new(o, "loss", isfinite(e->loss) ? json_real(e->loss) : json_null());
    set_num(o, "lr", e->lr);
    set_num(o, "images_per_s", e->images_per_s);
    if (e->steps > 1) json_object_set_new(o, "steps", json_integer(e->steps));
    return emit(j, o);
}

void mm_log_epoch_init(mm_log_epoch *e)
{
    memset(e, 0, sizeof *e);
    e->train_loss = e->train_acc = e->val_loss = e->val_auc = e->val_acc = NAN;
    e->lr = e->seconds = NAN;
    e->best = -1;
}

mm_status mm_jsonl_epoch(mm_jsonl *j, const mm_log_epoch *e)
{
    json_t *o = event("epoch");
    json_object_set_new(o, "epoch", json_integer(e->epoch));
    json_object_set_new(o, "step", json_integer(e->step));
    set_num(o, "train_loss", e->train_loss);
    set_num(o, "train_acc", e->train_acc);
    set_num(o, "val_loss", e->val_loss);
    set_num(o, "val_auc", e->val_auc);
    set_num(o, "val_acc", e->val_acc);
    set_num(o, "lr", e->lr);
    set_num(o, "seconds", e->seconds);
    if (e->best >= 0) json_object_set_new(o, "best", json_boolean(e->best));
    return emit(j, o);
}

mm_status mm_jsonl_end(mm_jsonl *j, const char *status, int epochs, int64_t step, int best_epoch,
                       const char *best_metric, double best_value)
{
    json_t *o = event("end");
    json_object_set_new(o, "status", json_string(status));
    json_object_set_new(o, "epochs", json_integer(epochs));
    json_object_set_new(o, "step", json_integer(step));
    if (best_epoch >= 0) json_object_set_new(o, "best_epoch", json_integer(best_epoch));
    if (best_metric) json_object_set_new(o, "best_metric", json_string(best_metric));
    set_num(o, "best_value", best_value);
    return emit(j, o);
}
