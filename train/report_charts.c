/* The chart sections of the HTML report (report_sections.h): training loss, validation metrics
 * and the test ROC curve, each an inline SVG drawn with svg_plot.h plus its caption (and, for the
 * ROC, the table of test metrics beside it). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "report_sections.h"
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

void mm_report_loss_section(mm_strbuf *b, const mm_report_inputs *r)
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

void mm_report_validation_section(mm_strbuf *b, const mm_report_inputs *r)
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

void mm_report_roc_section(mm_strbuf *b, const mm_report_inputs *r)
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
    mm_report_put_num(b, "%.4f", e->at.accuracy);
    mm_strbuf_puts(b, "</td></tr>\n<tr><th>sensitivity</th><td>");
    mm_report_put_num(b, "%.4f", e->at.sensitivity);
    mm_strbuf_printf(b, " (%lld/%lld)</td></tr>\n<tr><th>specificity</th><td>",
                     (long long)e->at.tp, (long long)(e->at.tp + e->at.fn));
    mm_report_put_num(b, "%.4f", e->at.specificity);
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
