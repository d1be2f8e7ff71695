/* The HTML report of a training run: see report_html.h. The page is built in memory from the
 * run's files and written in one step. */
#include "report_html.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../runtime/progress.h"
#include "../runtime/strbuf.h"
#include "evaluate.h"
#include "run_log.h"
#include "svg_plot.h"

/* Above this many logged steps the raw loss is drawn as a min-max band over buckets. */
#define MAX_RAW_POINTS 1500
#define BUCKETS 1000

#define C_BLUE "#0969da"
#define C_ORANGE "#d4731a"
#define C_GREEN "#1a7f37"
#define C_PURPLE "#8250df"
#define C_RED "#cf222e"
#define C_GRAY "#8c959f"

void mm_report_opts_init(mm_report_opts *o, const char *run_dir)
{
    memset(o, 0, sizeof *o);
    o->run_dir = run_dir;
    o->threshold = 0.5;
    o->resamples = 2000;
    o->seed = 0;
}

typedef struct report {
    const mm_report_opts *o;
    mm_run_log log;
    int have_eval;
    mm_eval eval;
    char *eval_from;   /* the file the ROC comes from */
    char *roc_note;    /* why there is no ROC, or NULL */
    json_t *config;
    char *config_from;
} report;

static char *join(const char *dir, const char *name)
{
    mm_strbuf b;
    mm_strbuf_init(&b);
    size_t n = strlen(dir);
    mm_strbuf_printf(&b, "%s%s%s", dir, n && dir[n - 1] == '/' ? "" : "/", name);
    return b.data;
}

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* ---- loading ---- */

static mm_status load_roc(report *r)
{
    const mm_report_opts *o = r->o;
    char *eval_path = o->eval ? mm_xstrdup(o->eval) : join(o->run_dir, "eval.json");
    char *pred_path = o->predictions ? mm_xstrdup(o->predictions)
                                     : join(o->run_dir, "predictions.csv");
    mm_status st = MM_OK;
    /* An explicit --eval wins; then eval.json; then predictions.csv. */
    if (o->eval || (!o->predictions && is_file(eval_path))) {
        st = mm_eval_read_json(&r->eval, eval_path);
        if (st == MM_OK) {
            r->have_eval = 1;
            r->eval_from = eval_path;
            eval_path = NULL;
        }
    } else if (o->predictions || is_file(pred_path)) {
        mm_predictions p;
        st = mm_predictions_read(&p, pred_path);
        if (st == MM_OK) {
            mm_status es = mm_eval_predictions(&r->eval, &p, pred_path, o->threshold,
                                               o->resamples, 0.95, o->seed);
            if (es == MM_OK) {
                r->have_eval = 1;
                r->eval_from = pred_path;
                pred_path = NULL;
            } else {
                r->roc_note = mm_xstrdup(mm_last_error()); /* e.g. no labels: say so */
            }
        }
        mm_predictions_free(&p);
    }
    free(eval_path);
    free(pred_path);
    return st;
}

static mm_status load(report *r)
{
    const mm_report_opts *o = r->o;
    struct stat st;
    if (stat(o->run_dir, &st) != 0)
        return mm_fail(MM_ERR_IO, "%s: no such run folder (%s)", o->run_dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return mm_fail(MM_ERR_ARG, "%s: not a folder; give the run folder a trainer wrote",
                       o->run_dir);
    char *metrics = o->metrics ? mm_xstrdup(o->metrics) : join(o->run_dir, "metrics.jsonl");
    if (!is_file(metrics)) {
        mm_status s = mm_fail(MM_ERR_IO,
                              "%s: not found; a run folder holds the metrics.jsonl that "
                              "mammo train-patch / train-image write",
                              metrics);
        free(metrics);
        return s;
    }
    mm_status s = mm_run_log_read(&r->log, metrics);
    free(metrics);
    MM_TRY(s);
    MM_TRY(load_roc(r));
    char *config = o->config ? mm_xstrdup(o->config) : join(o->run_dir, "config.json");
    if (o->config || is_file(config)) {
        json_error_t err;
        r->config = json_load_file(config, 0, &err);
        if (!r->config || !json_is_object(r->config)) {
            s = r->config ? mm_fail(MM_ERR_FORMAT, "%s: not a JSON object", config)
                          : mm_fail(MM_ERR_FORMAT, "%s line %d: %s", config, err.line, err.text);
            free(config);
            return s;
        }
        r->config_from = config;
    } else {
        free(config);
    }
    return MM_OK;
}

static void report_free(report *r)
{
    mm_run_log_free(&r->log);
    if (r->have_eval) mm_eval_free(&r->eval);
    free(r->eval_from);
    free(r->roc_note);
    json_decref(r->config);
    free(r->config_from);
}

/* ---- small formatting helpers ---- */

static void put_num(mm_strbuf *b, const char *fmt, double v)
{
    if (isfinite(v)) mm_strbuf_printf(b, fmt, v);
    else mm_strbuf_puts(b, "&ndash;");
}

static int best_epoch(const mm_run_log *log, const char *key)
{
    int best = -1;
    double bv = -INFINITY;
    for (int i = 0; i < log->n_epochs; i++) {
        double v = !strcmp(key, "val_auc") ? log->epochs[i].val_auc : log->epochs[i].val_acc;
        if (isfinite(v) && v > bv) {
            bv = v;
            best = i;
        }
    }
    return best;
}

static double median_rate(const mm_run_log *log)
{
    double *v = mm_xmalloc((size_t)(log->n_steps + 1) * sizeof *v);
    int64_t n = 0;
    for (int64_t i = 0; i < log->n_steps; i++)
        if (isfinite(log->steps[i].images_per_s)) v[n++] = log->steps[i].images_per_s;
    double m = NAN;
    if (n) {
        for (int64_t i = 1; i < n; i++) /* insertion sort: logs are at most a few 100k lines */
            for (int64_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
                double t = v[j];
                v[j] = v[j - 1];
                v[j - 1] = t;
            }
        m = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    }
    free(v);
    return m;
}

/* ---- page sections ---- */

static void card(mm_strbuf *b, const char *title, const char *value, const char *detail)
{
    mm_strbuf_puts(b, "<div class=\"card\"><div class=\"card-title\">");
    mm_html_escape(b, title);
    mm_strbuf_printf(b, "</div><div class=\"card-value\">%s</div><div class=\"card-detail\">%s"
                        "</div></div>\n", value, detail);
}

static void section_summary(mm_strbuf *b, const report *r)
{
    const mm_run_log *log = &r->log;
    char v[256], d[512];
    mm_strbuf_puts(b, "<div class=\"cards\">\n");
    const char *status = log->has_end && log->end_status ? log->end_status : "no end event";
    snprintf(d, sizeof d, "%s", log->has_end ? "" : "still running, or stopped without one");
    if (log->resumes)
        snprintf(d + strlen(d), sizeof d - strlen(d), "%sresumed %d time%s", d[0] ? "; " : "",
                 log->resumes, log->resumes > 1 ? "s" : "");
    mm_strbuf esc;
    mm_strbuf_init(&esc);
    mm_html_escape(&esc, status);
    card(b, "Status", mm_strbuf_str(&esc), d);
    mm_strbuf_free(&esc);

    /* The best epoch as the trainer chose it ("end" event), else the highest validation AUC
     * (or accuracy) logged. */
    const char *metric = NULL;
    double best_value = NAN;
    int best_at = -1;
    if (log->has_end && log->end_best_metric && isfinite(log->end_best_value)) {
        metric = log->end_best_metric;
        best_value = log->end_best_value;
        best_at = log->end_best_epoch;
    } else {
        metric = best_epoch(log, "val_auc") >= 0 ? "val_auc" : "val_acc";
        int be = best_epoch(log, metric);
        if (be >= 0) {
            best_value = !strcmp(metric, "val_auc") ? log->epochs[be].val_auc
                                                    : log->epochs[be].val_acc;
            best_at = log->epochs[be].epoch;
        }
    }
    if (isfinite(best_value)) {
        char title[96];
        if (!strcmp(metric, "val_auc"))
            snprintf(title, sizeof title, "Best validation AUC");
        else if (!strcmp(metric, "val_acc"))
            snprintf(title, sizeof title, "Best validation accuracy");
        else
            snprintf(title, sizeof title, "Best %.80s", metric);
        snprintf(v, sizeof v, "%.4f", best_value);
        if (best_at >= 0 && log->n_epochs)
            snprintf(d, sizeof d, "epoch %d of %d", best_at, log->epochs[log->n_epochs - 1].epoch);
        else
            d[0] = '\0';
        card(b, title, v, d);
    }
    if (r->have_eval) {
        snprintf(v, sizeof v, "%.4f", r->eval.ci.auc);
        snprintf(d, sizeof d, "%.0f%% CI %.4f&ndash;%.4f &middot; %lld images",
                 100 * r->eval.ci.level, r->eval.ci.lo, r->eval.ci.hi,
                 (long long)r->eval.labelled);
        card(b, "Test AUC", v, d);
    }
    if (log->n_steps || log->n_epochs) {
        int64_t steps = log->n_steps ? log->steps[log->n_steps - 1].step : 0;
        int epochs = log->n_epochs ? log->epochs[log->n_epochs - 1].epoch : 0;
        char dur[32];
        mm_format_duration(dur, sizeof dur, log->last_time - log->start_time);
        snprintf(v, sizeof v, "%s", dur);
        double rate = median_rate(log);
        int n = snprintf(d, sizeof d, "%d epochs &middot; %lld steps", epochs, (long long)steps);
        if (isfinite(rate)) snprintf(d + n, sizeof d - (size_t)n, " &middot; %.1f img/s", rate);
        card(b, "Training time", v, d);
    }
    mm_strbuf_puts(b, "</div>\n");
}

/* Centered moving average over the finite values (window w, odd). */
static void moving_average(double *out, const double *y, int64_t n, int64_t w)
{
    double *sum = mm_xmalloc((size_t)(n + 1) * sizeof *sum);
    int64_t *cnt = mm_xmalloc((size_t)(n + 1) * sizeof *cnt);
    sum[0] = 0;
    cnt[0] = 0;
    for (int64_t i = 0; i < n; i++) {
        int ok = isfinite(y[i]);
        sum[i + 1] = sum[i] + (ok ? y[i] : 0);
        cnt[i + 1] = cnt[i] + ok;
    }
    for (int64_t i = 0; i < n; i++) {
        int64_t a = i - w / 2, z = i + w / 2 + 1;
        if (a < 0) a = 0;
        if (z > n) z = n;
        int64_t c = cnt[z] - cnt[a];
        out[i] = c && isfinite(y[i]) ? (sum[z] - sum[a]) / (double)c : NAN;
    }
    free(sum);
    free(cnt);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void section_loss(mm_strbuf *b, const report *r)
{
    const mm_run_log *log = &r->log;
    mm_strbuf_puts(b, "<section><h2>Training loss</h2>\n");
    int64_t n = log->n_steps;
    if (n == 0 && log->n_epochs == 0) {
        mm_strbuf_puts(b, "<p class=\"note\">No training steps logged yet.</p></section>\n");
        return;
    }
    double *x = mm_xmalloc((size_t)(n + 1) * sizeof *x);
    double *y = mm_xmalloc((size_t)(n + 1) * sizeof *y);
    double *ma = mm_xmalloc((size_t)(n + 1) * sizeof *ma);
    for (int64_t i = 0; i < n; i++) {
        x[i] = (double)log->steps[i].step;
        y[i] = log->steps[i].loss;
    }
    int64_t w = n / 50;
    if (w < 1) w = 1;
    moving_average(ma, y, n, w | 1);

    mm_plot p;
    mm_plot_init(&p, "loss-chart", 1040, 380, "step", "loss");
    p.x_integer = true;
    /* buckets for long runs: min, max and the moving average at each bucket's middle */
    int64_t nb = n > MAX_RAW_POINTS ? BUCKETS : 0;
    double *bx = mm_xmalloc((size_t)(nb + 1) * sizeof *bx);
    double *blo = mm_xmalloc((size_t)(nb + 1) * sizeof *blo);
    double *bhi = mm_xmalloc((size_t)(nb + 1) * sizeof *bhi);
    double *bma = mm_xmalloc((size_t)(nb + 1) * sizeof *bma);
    for (int64_t k = 0; k < nb; k++) {
        int64_t a = k * n / nb, z = (k + 1) * n / nb;
        bx[k] = x[(a + z - 1) / 2];
        bma[k] = ma[(a + z - 1) / 2];
        blo[k] = INFINITY;
        bhi[k] = -INFINITY;
        for (int64_t i = a; i < z; i++)
            if (isfinite(y[i])) {
                if (y[i] < blo[k]) blo[k] = y[i];
                if (y[i] > bhi[k]) bhi[k] = y[i];
            }
        if (blo[k] > bhi[k]) blo[k] = bhi[k] = NAN;
    }
    if (n) {
        if (nb) {
            mm_plot_series *s = mm_plot_add(&p, MM_PLOT_BAND, "per step (range)", C_BLUE, bx,
                                            blo, nb);
            s->y2 = bhi;
            s->opacity = 0.22;
            s->css_class = "loss-steps";
        } else {
            /* Short runs: the raw curve alone; longer ones: raw (light) under its average. */
            mm_plot_series *s = mm_plot_add(&p, MM_PLOT_LINE, "per step", C_BLUE, x, y, n);
            s->css_class = "loss-steps";
            if (w > 1) {
                s->opacity = 0.35;
                s->line_width = 1;
            }
        }
        if (w > 1) {
            mm_plot_series *s =
                nb ? mm_plot_add(&p, MM_PLOT_LINE, "moving average", C_BLUE, bx, bma, nb)
                   : mm_plot_add(&p, MM_PLOT_LINE, "moving average", C_BLUE, x, ma, n);
            s->css_class = "loss-smooth";
        }
    }
    /* Epoch means at the step where each epoch ended. */
    int ne = log->n_epochs;
    double *ex = mm_xmalloc((size_t)(ne + 1) * sizeof *ex);
    double *ey = mm_xmalloc((size_t)(ne + 1) * sizeof *ey);
    double *vy = mm_xmalloc((size_t)(ne + 1) * sizeof *vy);
    char **tt = mm_xcalloc((size_t)(ne + 1), sizeof *tt); /* tooltips */
    char **vt = mm_xcalloc((size_t)(ne + 1), sizeof *vt);
    int have_val_loss = 0, have_train_loss = 0;
    for (int i = 0; i < ne; i++) {
        const mm_run_epoch *e = &log->epochs[i];
        int64_t at = e->step;
        if (at < 0) /* not logged: the last step of that epoch */
            for (int64_t k = 0; k < n; k++)
                if (log->steps[k].epoch == e->epoch) at = log->steps[k].step;
        ex[i] = at >= 0 ? (double)at : NAN;
        ey[i] = e->train_loss;
        vy[i] = e->val_loss;
        have_train_loss |= isfinite(e->train_loss);
        have_val_loss |= isfinite(e->val_loss);
        mm_strbuf t;
        mm_strbuf_init(&t);
        mm_strbuf_printf(&t, "epoch %d: train loss %.4f", e->epoch, e->train_loss);
        tt[i] = t.data;
        mm_strbuf_init(&t);
        mm_strbuf_printf(&t, "epoch %d: validation loss %.4f", e->epoch, e->val_loss);
        vt[i] = t.data;
    }
    if (have_train_loss) {
        mm_plot_series *s = mm_plot_add(&p, MM_PLOT_MARKERS, "epoch mean", C_ORANGE, ex, ey, ne);
        s->titles = (const char *const *)tt;
        s->css_class = "loss-epochs";
    }
    if (have_val_loss) {
        mm_plot_series *s = mm_plot_add(&p, MM_PLOT_LINE_MARKERS, "validation loss", C_PURPLE,
                                        ex, vy, ne);
        s->titles = (const char *const *)vt;
        s->css_class = "val-loss";
    }
    char stage_label[MM_PLOT_MAX_VLINES][48];
    for (int i = 0; i < log->n_stages && i < MM_PLOT_MAX_VLINES; i++) {
        if (log->stages[i].step <= 0) continue; /* the first stage starts at the axis */
        snprintf(stage_label[i], sizeof stage_label[i], "stage %d", log->stages[i].stage);
        mm_plot_add_vline(&p, (double)log->stages[i].step, stage_label[i]);
    }
    /* One spike (a bad batch, the first steps) should not flatten the whole curve: when the
     * largest loss is far above the 99th percentile, the axis stops there and says so. */
    double *sorted = mm_xmalloc((size_t)(n + 1) * sizeof *sorted);
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++)
        if (isfinite(y[i])) sorted[m++] = y[i];
    const char *clip_note = "";
    char clip_buf[96];
    if (m >= 100) {
        qsort(sorted, (size_t)m, sizeof *sorted, cmp_double);
        double p99 = sorted[(m * 99) / 100], lo = sorted[0], hi = sorted[m - 1];
        if (hi - lo > 3 * (p99 - lo) && p99 > lo) {
            p.fixed_y = true;
            p.ymin = lo - 0.05 * (p99 - lo);
            p.ymax = p99 + 0.15 * (p99 - lo);
            snprintf(clip_buf, sizeof clip_buf,
                     " The loss axis stops at %.3g; the largest loss, %.3g, is drawn at the top.",
                     p.ymax, hi);
            clip_note = clip_buf;
        }
    }
    mm_plot_svg(b, &p);
    mm_strbuf_printf(b, "<p class=\"caption\">Training loss per step%s%s, the mean loss of "
                        "each epoch%s.%s%s</p>\n",
                     nb ? " (shaded: its range within each of " : "",
                     nb ? "1000 buckets) and its moving average"
                        : w > 1 ? " (light) and its moving average" : "",
                     have_val_loss ? " and the validation loss" : "",
                     log->n_stages > 1 ? " Dashed lines: the schedule's stages." : "", clip_note);
    mm_strbuf_puts(b, "</section>\n");
    for (int i = 0; i < ne; i++) {
        free(tt[i]);
        free(vt[i]);
    }
    free(tt);
    free(vt);
    free(sorted);
    free(ex);
    free(ey);
    free(vy);
    free(bx);
    free(blo);
    free(bhi);
    free(bma);
    free(x);
    free(y);
    free(ma);
}

static void section_validation(mm_strbuf *b, const report *r)
{
    const mm_run_log *log = &r->log;
    int ne = log->n_epochs;
    double *ex = mm_xmalloc((size_t)(ne + 1) * sizeof *ex);
    double *col[3];
    char **titles[3];
    const char *keys[3] = {"validation AUC", "validation accuracy", "training accuracy"};
    const char *colors[3] = {C_BLUE, C_ORANGE, C_GREEN};
    int have[3] = {0, 0, 0};
    double lo = INFINITY, hi = -INFINITY;
    for (int k = 0; k < 3; k++) {
        col[k] = mm_xmalloc((size_t)(ne + 1) * sizeof *col[k]);
        titles[k] = mm_xcalloc((size_t)(ne + 1), sizeof *titles[k]);
    }
    for (int i = 0; i < ne; i++) {
        const mm_run_epoch *e = &log->epochs[i];
        ex[i] = e->epoch;
        double v[3] = {e->val_auc, e->val_acc, e->train_acc};
        for (int k = 0; k < 3; k++) {
            col[k][i] = v[k];
            if (!isfinite(v[k])) continue;
            have[k] = 1;
            if (v[k] < lo) lo = v[k];
            if (v[k] > hi) hi = v[k];
            mm_strbuf t;
            mm_strbuf_init(&t);
            mm_strbuf_printf(&t, "epoch %d: %s %.4f", e->epoch, keys[k], v[k]);
            titles[k][i] = t.data;
        }
    }
    mm_strbuf_puts(b, "<section><h2>Validation</h2>\n");
    if (!have[0] && !have[1] && !have[2]) {
        mm_strbuf_puts(b, "<p class=\"note\">No validation metrics logged.</p>\n");
    } else {
        mm_plot p;
        mm_plot_init(&p, "validation-chart", 1040, 340, "epoch", "metric");
        p.x_integer = true;
        p.legend = MM_LEGEND_BOTTOM_RIGHT;
        /* Fractions: the axis stays inside [0, 1], rounded out to 0.05. */
        if (lo >= 0 && hi <= 1) {
            p.fixed_y = true;
            p.ymin = fmax(0, floor((lo - 0.02) * 20) / 20);
            p.ymax = fmin(1, ceil((hi + 0.02) * 20) / 20);
        }
        for (int k = 0; k < 3; k++) {
            if (!have[k]) continue;
            mm_plot_series *s = mm_plot_add(&p, MM_PLOT_LINE_MARKERS, keys[k], colors[k], ex,
                                            col[k], ne);
            s->titles = (const char *const *)titles[k];
            s->css_class = k == 0 ? "val-auc" : k == 1 ? "val-acc" : "train-acc";
            s->dashed = k == 2;
        }
        int be = -1;
        if (log->end_best_epoch >= 0) be = log->end_best_epoch;
        else
            for (int i = 0; i < ne; i++)
                if (log->epochs[i].best == 1) be = log->epochs[i].epoch;
        if (be >= 0) mm_plot_add_vline(&p, be, "best");
        mm_plot_svg(b, &p);
        mm_strbuf_puts(b, "<p class=\"caption\">Per epoch, after training on it. Hover a point "
                          "for its value.</p>\n");
    }
    mm_strbuf_puts(b, "</section>\n");
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < ne; i++) free(titles[k][i]);
        free(titles[k]);
        free(col[k]);
    }
    free(ex);
}

static void section_roc(mm_strbuf *b, const report *r)
{
    mm_strbuf_puts(b, "<section><h2>Test ROC curve</h2>\n");
    if (!r->have_eval) {
        mm_strbuf_puts(b, "<p class=\"note\">");
        if (r->roc_note) {
            mm_strbuf_puts(b, "No ROC curve: ");
            mm_html_escape(b, r->roc_note);
        } else {
            mm_strbuf_puts(b, "No test predictions in this folder (predictions.csv from "
                              "<code>mammo predict</code>, or eval.json from <code>mammo eval "
                              "--out</code>).");
        }
        mm_strbuf_puts(b, "</p></section>\n");
        return;
    }
    const mm_eval *e = &r->eval;
    int64_t n = e->n_roc;
    double *fx = mm_xmalloc((size_t)n * sizeof *fx), *ty = mm_xmalloc((size_t)n * sizeof *ty);
    for (int64_t i = 0; i < n; i++) {
        fx[i] = e->roc[i].fpr;
        ty[i] = e->roc[i].tpr;
    }
    mm_plot p;
    mm_plot_init(&p, "roc-chart", 460, 460, "false positive rate (1 \xe2\x88\x92 specificity)",
                 "true positive rate (sensitivity)");
    p.fixed_x = p.fixed_y = true;
    p.xmin = p.ymin = 0;
    p.xmax = p.ymax = 1;
    p.legend = MM_LEGEND_BOTTOM_RIGHT;
    static const double diag[2] = {0, 1};
    mm_plot_series *s = mm_plot_add(&p, MM_PLOT_LINE, "chance", C_GRAY, diag, diag, 2);
    s->dashed = true;
    s->line_width = 1.2;
    s->css_class = "chance";
    char name[160], op_name[160], op_title[200];
    snprintf(name, sizeof name, "AUC %.3f (%.0f%% CI %.3f\xe2\x80\x93%.3f)", e->ci.auc,
             100 * e->ci.level, e->ci.lo, e->ci.hi);
    s = mm_plot_add(&p, MM_PLOT_LINE, name, C_BLUE, fx, ty, n);
    s->line_width = 2.2;
    s->css_class = "roc-curve";
    double ox = 1 - e->at.specificity, oy = e->at.sensitivity;
    snprintf(op_name, sizeof op_name, "threshold %g", e->at.threshold);
    snprintf(op_title, sizeof op_title, "threshold %g: sensitivity %.3f, specificity %.3f",
             e->at.threshold, e->at.sensitivity, e->at.specificity);
    const char *op_titles[1] = {op_title};
    s = mm_plot_add(&p, MM_PLOT_MARKERS, op_name, C_RED, &ox, &oy, 1);
    s->titles = op_titles;
    s->css_class = "operating-point";
    mm_strbuf_puts(b, "<div class=\"roc-row\"><div>");
    mm_plot_svg(b, &p);
    mm_strbuf_puts(b, "</div><div class=\"roc-side\"><table class=\"kv\">\n");
    mm_strbuf_printf(b, "<tr><th>AUC</th><td>%.4f</td></tr>\n", e->ci.auc);
    mm_strbuf_printf(b, "<tr><th>%.0f%% CI</th><td>%.4f &ndash; %.4f</td></tr>\n",
                     100 * e->ci.level, e->ci.lo, e->ci.hi);
    mm_strbuf_printf(b, "<tr><th>bootstrap</th><td>%d resamples (percentile), seed %llu",
                     e->ci.resamples, (unsigned long long)e->ci.seed);
    if (e->ci.skipped) mm_strbuf_printf(b, "; %d single-class skipped", e->ci.skipped);
    mm_strbuf_puts(b, "</td></tr>\n");
    mm_strbuf_printf(b, "<tr><th>images</th><td>%lld (%lld malignant, %lld not)</td></tr>\n",
                     (long long)e->labelled, (long long)e->positives, (long long)e->negatives);
    if (e->unlabelled)
        mm_strbuf_printf(b, "<tr><th>unlabelled</th><td>%lld (not counted)</td></tr>\n",
                         (long long)e->unlabelled);
    mm_strbuf_printf(b, "<tr><th>threshold</th><td>%g</td></tr>\n", e->at.threshold);
    mm_strbuf_puts(b, "<tr><th>accuracy</th><td>");
    put_num(b, "%.4f", e->at.accuracy);
    mm_strbuf_puts(b, "</td></tr>\n<tr><th>sensitivity</th><td>");
    put_num(b, "%.4f", e->at.sensitivity);
    mm_strbuf_printf(b, " (%lld/%lld)</td></tr>\n<tr><th>specificity</th><td>",
                     (long long)e->at.tp, (long long)(e->at.tp + e->at.fn));
    put_num(b, "%.4f", e->at.specificity);
    mm_strbuf_printf(b, " (%lld/%lld)</td></tr>\n", (long long)e->at.tn,
                     (long long)(e->at.tn + e->at.fp));
    for (int m = 0; m < e->n_models; m++) {
        mm_strbuf_puts(b, "<tr><th>model ");
        mm_html_escape(b, e->models[m].name);
        mm_strbuf_printf(b, "</th><td>AUC %.4f (%.4f &ndash; %.4f)</td></tr>\n",
                         e->models[m].ci.auc, e->models[m].ci.lo, e->models[m].ci.hi);
    }
    mm_strbuf_puts(b, "</table>\n<p class=\"caption\">From ");
    mm_html_escape(b, r->eval_from);
    mm_strbuf_puts(b, ". Score &ge; threshold is called malignant.</p></div></div>\n</section>\n");
    free(fx);
    free(ty);
}

static void section_epochs(mm_strbuf *b, const report *r)
{
    const mm_run_log *log = &r->log;
    if (!log->n_epochs) return;
    enum { NC = 8 };
    const char *heads[NC] = {"train loss", "train acc", "val loss", "val AUC",
                             "val acc",    "lr",        "time",     "best"};
    int show[NC] = {0};
    for (int i = 0; i < log->n_epochs; i++) {
        const mm_run_epoch *e = &log->epochs[i];
        double v[NC] = {e->train_loss, e->train_acc, e->val_loss, e->val_auc,
                        e->val_acc,    e->lr,        e->seconds,  e->best >= 0 ? 1 : NAN};
        for (int c = 0; c < NC; c++) show[c] |= isfinite(v[c]);
    }
    mm_strbuf_puts(b, "<section><h2>Epochs</h2>\n<div class=\"scroll\"><table class=\"grid\">"
                      "<thead><tr><th>epoch</th><th>step</th>");
    for (int c = 0; c < NC; c++)
        if (show[c]) mm_strbuf_printf(b, "<th>%s</th>", heads[c]);
    mm_strbuf_puts(b, "</tr></thead><tbody>\n");
    for (int i = 0; i < log->n_epochs; i++) {
        const mm_run_epoch *e = &log->epochs[i];
        mm_strbuf_printf(b, "<tr%s><td>%d</td><td>", e->best == 1 ? " class=\"best\"" : "",
                         e->epoch);
        if (e->step >= 0) mm_strbuf_printf(b, "%lld", (long long)e->step);
        else mm_strbuf_puts(b, "&ndash;");
        mm_strbuf_puts(b, "</td>");
        double v[5] = {e->train_loss, e->train_acc, e->val_loss, e->val_auc, e->val_acc};
        for (int c = 0; c < 5; c++)
            if (show[c]) {
                mm_strbuf_puts(b, "<td>");
                put_num(b, "%.4f", v[c]);
                mm_strbuf_puts(b, "</td>");
            }
        if (show[5]) {
            mm_strbuf_puts(b, "<td>");
            put_num(b, "%.3g", e->lr);
            mm_strbuf_puts(b, "</td>");
        }
        if (show[6]) {
            char dur[32];
            mm_format_duration(dur, sizeof dur, e->seconds);
            mm_strbuf_printf(b, "<td>%s</td>", isfinite(e->seconds) ? dur : "&ndash;");
        }
        if (show[7]) mm_strbuf_printf(b, "<td>%s</td>", e->best == 1 ? "&#9733;" : "");
        mm_strbuf_puts(b, "</tr>\n");
    }
    mm_strbuf_puts(b, "</tbody></table></div></section>\n");
}

/* One table row per leaf of a JSON value, keyed by its path (a.b[2].c). */
static void config_rows(mm_strbuf *b, const char *path, json_t *v, int depth)
{
    if (json_is_object(v) && depth < 16) {
        const char *k;
        json_t *c;
        json_object_foreach(v, k, c) {
            mm_strbuf p;
            mm_strbuf_init(&p);
            mm_strbuf_printf(&p, "%s%s%s", path, path[0] ? "." : "", k);
            config_rows(b, mm_strbuf_str(&p), c, depth + 1);
            mm_strbuf_free(&p);
        }
        return;
    }
    int scalars = json_is_array(v);
    for (size_t i = 0; scalars && i < json_array_size(v); i++)
        scalars = !json_is_object(json_array_get(v, i)) && !json_is_array(json_array_get(v, i));
    if (json_is_array(v) && !scalars && depth < 16) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            mm_strbuf p;
            mm_strbuf_init(&p);
            mm_strbuf_printf(&p, "%s[%zu]", path, i);
            config_rows(b, mm_strbuf_str(&p), json_array_get(v, i), depth + 1);
            mm_strbuf_free(&p);
        }
        return;
    }
    mm_strbuf_puts(b, "<tr><th>");
    mm_html_escape(b, path);
    mm_strbuf_puts(b, "</th><td>");
    if (json_is_string(v)) {
        mm_html_escape(b, json_string_value(v));
    } else {
        char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(8));
        mm_html_escape(b, text ? text : "?");
        free(text);
    }
    mm_strbuf_puts(b, "</td></tr>\n");
}

static void section_config(mm_strbuf *b, const report *r)
{
    if (!r->config) return;
    mm_strbuf_puts(b, "<section><h2>Configuration</h2>\n<table class=\"kv config\">\n");
    config_rows(b, "", r->config, 0);
    mm_strbuf_puts(b, "</table>\n<p class=\"caption\">From ");
    mm_html_escape(b, r->config_from);
    mm_strbuf_puts(b, ".</p></section>\n");
}

static const char *css =
    "*{box-sizing:border-box}"
    "body{margin:0;background:#f6f8fa;color:#24292f;"
    "font:14px/1.5 system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif}"
    "main{max-width:1100px;margin:0 auto;padding:28px 24px 40px}"
    "header h1{font-size:24px;margin:0 0 2px}"
    "header .sub{color:#57606a;font-size:13px;word-break:break-all}"
    "section{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:16px 20px;"
    "margin:18px 0}"
    "h2{font-size:16px;margin:0 0 10px}"
    ".cards{display:flex;flex-wrap:wrap;gap:12px;margin:18px 0}"
    ".card{flex:1 1 200px;background:#fff;border:1px solid #d0d7de;border-radius:8px;"
    "padding:12px 16px}"
    ".card-title{color:#57606a;font-size:12px;text-transform:uppercase;letter-spacing:.04em}"
    ".card-value{font-size:24px;font-weight:600;margin:2px 0}"
    ".card-detail{color:#57606a;font-size:12.5px}"
    "svg.chart{display:block;max-width:100%;height:auto}"
    ".caption,.note{color:#57606a;font-size:12.5px;margin:6px 0 0}"
    ".roc-row{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}"
    ".roc-side{flex:1 1 300px}"
    "table{border-collapse:collapse;font-size:13px}"
    "table.kv th{text-align:left;font-weight:500;color:#57606a;padding:3px 16px 3px 0;"
    "vertical-align:top;white-space:nowrap}"
    "table.kv td{padding:3px 0;font-variant-numeric:tabular-nums;word-break:break-all}"
    "table.grid{width:100%}"
    "table.grid th,table.grid td{padding:4px 10px;text-align:right;"
    "border-bottom:1px solid #eaeef2;font-variant-numeric:tabular-nums}"
    "table.grid th{background:#f6f8fa;font-weight:600}"
    "table.grid tr.best td{background:#fff8c5}"
    ".scroll{overflow-x:auto;max-height:520px;overflow-y:auto}"
    "code{background:#eff1f3;padding:1px 4px;border-radius:4px;font-size:12.5px}"
    "footer{color:#8c959f;font-size:12px;text-align:center}";

static void page(mm_strbuf *b, const report *r)
{
    mm_strbuf_puts(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                      "<title>mammo report: ");
    mm_html_escape(b, r->o->run_dir);
    mm_strbuf_printf(b, "</title>\n<style>%s</style>\n</head>\n<body><main>\n", css);
    mm_strbuf_puts(b, "<header><h1>Training report</h1><div class=\"sub\">");
    mm_html_escape(b, r->o->run_dir);
    if (r->log.command) {
        mm_strbuf_puts(b, " &middot; <code>mammo ");
        mm_html_escape(b, r->log.command);
        mm_strbuf_puts(b, "</code>");
    }
    if (isfinite(r->log.start_time)) {
        time_t t = (time_t)r->log.start_time;
        struct tm tm;
        char when[64];
        localtime_r(&t, &tm);
        strftime(when, sizeof when, "%Y-%m-%d %H:%M", &tm);
        mm_strbuf_printf(b, " &middot; started %s", when);
    }
    mm_strbuf_puts(b, "</div></header>\n");
    section_summary(b, r);
    section_loss(b, r);
    section_validation(b, r);
    section_roc(b, r);
    section_epochs(b, r);
    section_config(b, r);
    time_t now = time(NULL);
    struct tm tm;
    char when[64];
    localtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M", &tm);
    mm_strbuf_printf(b, "<footer>Written by mammo report on %s", when);
    if (r->log.bad_lines)
        mm_strbuf_printf(b, " &middot; %lld unreadable line%s of metrics.jsonl skipped",
                         (long long)r->log.bad_lines, r->log.bad_lines > 1 ? "s" : "");
    mm_strbuf_puts(b, "</footer>\n</main></body>\n</html>\n");
}

mm_status mm_report_write(const mm_report_opts *o, char **written)
{
    report r;
    memset(&r, 0, sizeof r);
    r.o = o;
    mm_status st = load(&r);
    if (st == MM_OK) {
        mm_strbuf b;
        mm_strbuf_init(&b);
        page(&b, &r);
        char *out = o->out ? mm_xstrdup(o->out) : join(o->run_dir, "report.html");
        st = mm_write_text_atomic(out, mm_strbuf_str(&b), b.len);
        mm_strbuf_free(&b);
        if (st == MM_OK && written) *written = out;
        else free(out);
    }
    report_free(&r);
    return st;
}
