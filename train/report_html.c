/* The HTML report of a training run: see report_html.h. This file reads the run's files, builds
 * the page around the chart sections (report_charts.c) in memory, and writes it in one step. */
#include "report_html.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../runtime/progress.h"
#include "../runtime/strbuf.h"
#include "report_sections.h"
#include "svg_plot.h"

void mm_report_opts_init(mm_report_opts *o, const char *run_dir)
{
    memset(o, 0, sizeof *o);
    o->run_dir = run_dir;
    o->threshold = 0.5;
    o->resamples = 2000;
    o->seed = 0;
}

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

static mm_status load_roc(mm_report_inputs *r)
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

static mm_status load(mm_report_inputs *r)
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

static void report_free(mm_report_inputs *r)
{
    mm_run_log_free(&r->log);
    if (r->have_eval) mm_eval_free(&r->eval);
    free(r->eval_from);
    free(r->roc_note);
    json_decref(r->config);
    free(r->config_from);
}

/* ---- small helpers of the summary ---- */

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

/* The largest planned step of the stages (their "peak_bytes"), and each stage's when they
 * differ (a stage training fewer layers keeps fewer gradients and moments). */
static void section_memory_card(mm_strbuf *b, const mm_run_log *log)
{
    int64_t most = 0, least = INT64_MAX;
    for (int i = 0; i < log->n_stages; i++) {
        int64_t p = log->stages[i].peak_bytes;
        if (p <= 0) continue;
        if (p > most) most = p;
        if (p < least) least = p;
    }
    if (!most) return;
    char v[64], d[512] = "planned peak of a training step";
    snprintf(v, sizeof v, "%.1f MB", (double)most / 1e6);
    size_t n = strlen(d);
    for (int i = 0; least < most && i < log->n_stages && n < sizeof d - 64; i++)
        if (log->stages[i].peak_bytes > 0)
            n += (size_t)snprintf(d + n, sizeof d - n, " &middot; stage %d: %.1f MB",
                                  log->stages[i].stage, (double)log->stages[i].peak_bytes / 1e6);
    card(b, "Step memory", v, d);
}

static void section_summary(mm_strbuf *b, const mm_report_inputs *r)
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
    section_memory_card(b, log);
    mm_strbuf_puts(b, "</div>\n");
}

static void section_epochs(mm_strbuf *b, const mm_report_inputs *r)
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
                mm_report_put_num(b, "%.4f", v[c]);
                mm_strbuf_puts(b, "</td>");
            }
        if (show[5]) {
            mm_strbuf_puts(b, "<td>");
            mm_report_put_num(b, "%.3g", e->lr);
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

static void section_config(mm_strbuf *b, const mm_report_inputs *r)
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

static void page(mm_strbuf *b, const mm_report_inputs *r)
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
    mm_report_loss_section(b, r);
    mm_report_validation_section(b, r);
    mm_report_roc_section(b, r);
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
    mm_report_inputs r;
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
