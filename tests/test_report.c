/* Tests of the training log (runtime/jsonl, train/run_log), the progress display
 * (runtime/progress), the SVG charts (train/svg_plot) and `mammo report` through the built
 * binary: exit codes, the SVG elements and their coordinates, no NaN, atomic output. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "../kernels/philox.h"
#include "../runtime/jsonl.h"
#include "../runtime/progress.h"
#include "../runtime/strbuf.h"
#include "../train/metrics.h"
#include "../train/predictions.h"
#include "../train/run_log.h"
#include "../train/svg_plot.h"
#include "harness.h"

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = 0;
    fclose(f);
    return s;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
}

static int run_mammo(const char *args, char **out)
{
    char log[600], cmd[4096];
    snprintf(log, sizeof log, "%s/cmd-output.txt", mm_test_tmpdir());
    snprintf(cmd, sizeof cmd, "%s %s > '%s' 2>&1", MM_MAMMO_EXE, args, log);
    int st = system(cmd);
    *out = read_text(log);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *path_in(const char *dir, const char *name)
{
    mm_strbuf b;
    mm_strbuf_init(&b);
    mm_strbuf_printf(&b, "%s/%s", dir, name);
    return b.data;
}

/* ---- JSONL log ---- */

/* A run of `epochs` epochs of `steps` steps each, starting after `from_epoch`; loss falls. */
static void log_epochs(mm_jsonl *j, int from_epoch, int epochs, int steps, int val_auc)
{
    for (int e = from_epoch + 1; e <= from_epoch + epochs; e++) {
        double sum = 0;
        for (int s = 1; s <= steps; s++) {
            int64_t step = (int64_t)(e - 1) * steps + s;
            double loss = 1.0 / (1 + 0.05 * (double)step) +
                          0.05 * mm_philox_uniform(7, (uint64_t)step);
            sum += loss;
            mm_log_step ls = {e, step, loss, 1e-4, 30.0 + e, 1};
            CHECK(mm_jsonl_step(j, &ls) == MM_OK);
        }
        mm_log_epoch le;
        mm_log_epoch_init(&le);
        le.epoch = e;
        le.step = (int64_t)e * steps;
        le.train_loss = sum / steps;
        if (val_auc) le.val_auc = 0.6 + 0.03 * e;
        le.val_acc = 0.55 + 0.02 * e;
        le.lr = 1e-4;
        le.seconds = 12.5;
        le.best = e % 2;
        CHECK(mm_jsonl_epoch(j, &le) == MM_OK);
    }
}

MM_TEST(jsonl_lines_are_objects_with_event_and_time)
{
    char *path = path_in(mm_test_tmpdir(), "metrics.jsonl");
    mm_jsonl j;
    CHECK(mm_jsonl_open(&j, path, false) == MM_OK);
    CHECK(mm_jsonl_run(&j, "train-image", false, 0, 0) == MM_OK);
    CHECK(mm_jsonl_stage(&j, 1, "top layers", 1, 2, 0, 1e-4, 5000000000) == MM_OK);
    log_epochs(&j, 0, 2, 5, 1);
    mm_log_step nan_step = {3, 11, NAN, NAN, NAN, 0};
    CHECK(mm_jsonl_step(&j, &nan_step) == MM_OK);
    CHECK(mm_jsonl_end(&j, "diverged", 2, 11, 2, "val_auc", 0.66) == MM_OK);
    /* Lines are on disk before close (flushed per line). */
    char *text = read_text(path);
    int lines = 0;
    for (char *p = text; p && *p; p++) lines += *p == '\n';
    CHECK_EQ_INT(lines, 1 + 1 + 2 * (5 + 1) + 1 + 1);
    free(text);
    mm_jsonl_close(&j);

    FILE *f = fopen(path, "r");
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        json_error_t err;
        json_t *o = json_loads(line, 0, &err);
        CHECK_MSG(json_is_object(o), "line %d is not a JSON object: %s", n + 1, line);
        CHECK(!strncmp(line, "{\"event\":", 9));
        CHECK(json_is_string(json_object_get(o, "event")));
        double t = json_number_value(json_object_get(o, "time"));
        CHECK(t > 1.6e9 && t < 5e9);
        const char *ev = json_string_value(json_object_get(o, "event"));
        if (ev && !strcmp(ev, "step") && json_integer_value(json_object_get(o, "step")) == 11) {
            CHECK(json_is_null(json_object_get(o, "loss")));
            CHECK(json_object_get(o, "lr") == NULL); /* absent, not NaN */
        }
        if (ev && !strcmp(ev, "epoch")) {
            CHECK(json_object_get(o, "train_acc") == NULL);
            CHECK(json_is_number(json_object_get(o, "val_auc")));
            CHECK(json_is_boolean(json_object_get(o, "best")));
        }
        json_decref(o);
        n++;
    }
    fclose(f);

    mm_run_log log;
    CHECK(mm_run_log_read(&log, path) == MM_OK);
    CHECK_EQ_INT(log.n_steps, 11);
    CHECK_EQ_INT(log.n_epochs, 2);
    CHECK_EQ_INT(log.n_stages, 1);
    CHECK(log.has_end && !strcmp(log.end_status, "diverged") && log.end_best_epoch == 2);
    CHECK(isnan(log.steps[10].loss));
    CHECK(log.command && !strcmp(log.command, "train-image"));
    CHECK(log.stages[0].name && !strcmp(log.stages[0].name, "top layers"));
    CHECK_EQ_INT(log.stages[0].peak_bytes, 5000000000); /* over 2^32: a 64-bit integer */
    CHECK_EQ_INT(log.bad_lines, 0);
    mm_run_log_free(&log);
    free(path);
}

MM_TEST(jsonl_resume_after_crash_reads_as_one_history)
{
    char *path = path_in(mm_test_tmpdir(), "metrics.jsonl");
    mm_jsonl j;
    CHECK(mm_jsonl_open(&j, path, false) == MM_OK);
    CHECK(mm_jsonl_run(&j, "train-patch", false, 0, 0) == MM_OK);
    log_epochs(&j, 0, 3, 10, 0); /* epochs 1..3, steps 1..30 */
    mm_jsonl_close(&j);
    /* The process dies in the middle of a line... */
    FILE *f = fopen(path, "a");
    fputs("{\"event\":\"step\",\"epoch\":4,\"st", f);
    fclose(f);
    /* ...and resumes from the checkpoint of epoch 2 (step 20). */
    CHECK(mm_jsonl_open(&j, path, true) == MM_OK);
    CHECK(mm_jsonl_run(&j, "train-patch", true, 2, 20) == MM_OK);
    log_epochs(&j, 2, 3, 10, 0); /* epochs 3..5, steps 21..50 */
    CHECK(mm_jsonl_end(&j, "finished", 5, 50, -1, NULL, NAN) == MM_OK);
    mm_jsonl_close(&j);

    mm_run_log log;
    CHECK(mm_run_log_read(&log, path) == MM_OK);
    CHECK_EQ_INT(log.bad_lines, 1); /* only the cut line */
    CHECK_EQ_INT(log.resumes, 1);
    CHECK_EQ_INT(log.n_steps, 50);
    CHECK_EQ_INT(log.n_epochs, 5);
    for (int64_t i = 0; i < log.n_steps; i++) CHECK_EQ_INT(log.steps[i].step, i + 1);
    for (int i = 0; i < log.n_epochs; i++) CHECK_EQ_INT(log.epochs[i].epoch, i + 1);
    CHECK(log.has_end && !strcmp(log.end_status, "finished") && log.end_best_epoch == -1);
    mm_run_log_free(&log);

    /* A resume event drops what came after its checkpoint even when not redone. */
    CHECK(mm_jsonl_open(&j, path, true) == MM_OK);
    CHECK(mm_jsonl_run(&j, "train-patch", true, 4, 40) == MM_OK);
    mm_jsonl_close(&j);
    CHECK(mm_run_log_read(&log, path) == MM_OK);
    CHECK_EQ_INT(log.n_steps, 40);
    CHECK_EQ_INT(log.n_epochs, 4);
    CHECK(!log.has_end);
    mm_run_log_free(&log);
    free(path);
}

MM_TEST(jsonl_open_errors)
{
    mm_jsonl j;
    CHECK(mm_jsonl_open(&j, "/nonexistent-dir/metrics.jsonl", false) == MM_ERR_IO);
    CHECK(strstr(mm_last_error(), "/nonexistent-dir/metrics.jsonl") != NULL);
    mm_run_log log;
    CHECK(mm_run_log_read(&log, "/nonexistent-dir/metrics.jsonl") == MM_ERR_IO);
}

/* ---- progress ---- */

static double fake_now;
static double fake_clock(void) { return fake_now; }

static char *progress_run(mm_progress_mode mode, int steps, double dt, int *n_lines)
{
    FILE *f = tmpfile();
    mm_progress p;
    mm_progress_init(&p, f, mode);
    p.clock = fake_clock;
    p.width = 100;
    fake_now = 1000;
    mm_progress_set_label(&p, "stage %d", 2);
    mm_progress_begin_epoch(&p, 3, 50, steps);
    double sum = 0;
    for (int s = 1; s <= steps; s++) {
        fake_now += dt;
        double loss = 1.0 / s;
        sum += loss;
        mm_progress_step(&p, loss, 2);
        if (s == 5) mm_progress_printf(&p, "saved checkpoint");
    }
    CHECK_CLOSE(mm_progress_loss(&p), sum / steps, 1e-12, 0);
    CHECK_CLOSE(mm_progress_images_per_s(&p), 2 / dt, 1e-9, 0);
    CHECK_CLOSE(mm_progress_eta_s(&p), 0, 0, 0);
    mm_progress_end_epoch(&p, "epoch %d: train loss %.4f", 3, sum / steps);
    long n = ftell(f);
    rewind(f);
    char *text = malloc((size_t)n + 1);
    size_t got = fread(text, 1, (size_t)n, f);
    text[got] = 0;
    fclose(f);
    *n_lines = 0;
    for (char *c = text; *c; c++) *n_lines += *c == '\n';
    return text;
}

MM_TEST(progress_plain_lines_at_interval)
{
    int lines;
    /* 100 steps of 1 s: a line every 30 s, the end line, the summary and the message. */
    char *t = progress_run(MM_PROGRESS_LINES, 100, 1.0, &lines);
    CHECK(strchr(t, '\r') == NULL && strchr(t, '\033') == NULL);
    CHECK_EQ_INT(lines, 3 + 1 + 1 + 1);
    CHECK(strstr(t, "stage 2 epoch 3/50 step 30/100 (30%) loss ") != NULL);
    CHECK(strstr(t, "step 100/100 (100%)") && strstr(t, "2.0 img/s") && strstr(t, "eta 0:00"));
    CHECK(strstr(t, "saved checkpoint\n") && strstr(t, "epoch 3: train loss 0.0519\n"));
    free(t);
    /* eta after 30 of 100 steps of 1 s: 70 s. */
    t = progress_run(MM_PROGRESS_LINES, 100, 1.0, &lines);
    CHECK(strstr(t, "step 30/100 (30%) loss 0.1332  2.0 img/s  eta 1:10") != NULL);
    free(t);
}

MM_TEST(progress_bar_redraws_in_place)
{
    int lines;
    char *t = progress_run(MM_PROGRESS_BAR, 40, 0.05, &lines);
    /* Redraws with \r, one newline for the message, one ending the bar, one for the summary. */
    CHECK(strchr(t, '\r') != NULL);
    CHECK_EQ_INT(lines, 3);
    CHECK(strstr(t, "stage 2 epoch 3/50 [") != NULL);
    CHECK(strstr(t, "]  40/40  loss ") != NULL);
    CHECK(strstr(t, "\r\033[Ksaved checkpoint\n") != NULL);
    /* Every drawn line fits the width (no wrapping). */
    for (char *seg = strtok(t, "\r\n"); seg; seg = strtok(NULL, "\r\n")) {
        size_t len = strlen(seg);
        if (!strncmp(seg, "\033[K", 3)) len -= 3;
        if (len >= 3 && !strcmp(seg + len - 3, "\033[K")) len -= 3;
        CHECK_MSG(len <= 99, "line of %zu columns: %s", len, seg);
    }
    free(t);
    /* About one redraw per 0.1 s: 40 steps of 0.05 s give ~20, not 40. */
    t = progress_run(MM_PROGRESS_BAR, 40, 0.05, &lines);
    int draws = 0;
    for (char *c = t; *c; c++) draws += *c == '\r';
    CHECK_MSG(draws >= 12 && draws <= 26, "%d redraws", draws);
    free(t);
}

MM_TEST(progress_duration_format)
{
    char b[32];
    mm_format_duration(b, sizeof b, 83);
    CHECK(!strcmp(b, "1:23"));
    mm_format_duration(b, sizeof b, 3723);
    CHECK(!strcmp(b, "1:02:03"));
    mm_format_duration(b, sizeof b, 2 * 86400 + 3 * 3600 + 5);
    CHECK(!strcmp(b, "2d03h"));
    mm_format_duration(b, sizeof b, NAN);
    CHECK(!strcmp(b, "?"));
}

/* ---- SVG ---- */

static int has_word(const char *s, const char *w);

MM_TEST(nice_ticks_cover_range_with_round_steps)
{
    const double ranges[][2] = {{0, 1}, {0.37, 0.93}, {1, 2400}, {-3.2, 7.9}, {0.2, 0.2001},
                                {12, 13}, {1, 50}};
    for (size_t r = 0; r < sizeof ranges / sizeof *ranges; r++) {
        double t[64], step;
        int n = mm_nice_ticks(t, 64, ranges[r][0], ranges[r][1], 6, false, &step);
        CHECK_MSG(n >= 3 && n <= 13, "range %zu: %d ticks", r, n);
        double mant = step / pow(10, floor(log10(step) + 1e-12));
        CHECK_MSG(fabs(mant - 1) < 1e-9 || fabs(mant - 2) < 1e-9 || fabs(mant - 5) < 1e-9,
                  "range %zu: step %g", r, step);
        for (int i = 0; i < n; i++) {
            CHECK(t[i] >= ranges[r][0] - 1e-9 && t[i] <= ranges[r][1] + 1e-9);
            CHECK(fabs(t[i] / step - round(t[i] / step)) < 1e-6);
            if (i) CHECK_CLOSE(t[i] - t[i - 1], step, 1e-9, 1e-9);
        }
    }
    double t[64], step;
    int n = mm_nice_ticks(t, 64, 1, 3, 10, true, &step);
    CHECK(step == 1 && n == 3);
}

MM_TEST(svg_breaks_lines_at_nan_and_escapes_text)
{
    double x[6] = {1, 2, 3, 4, 5, 6}, y[6] = {0.5, 0.4, NAN, 0.3, 0.2, 0.1};
    mm_plot p;
    mm_plot_init(&p, "t", 400, 300, "step <x>", "loss & more");
    mm_plot_series *s = mm_plot_add(&p, MM_PLOT_LINE, "a\"b", "#000", x, y, 6);
    s->css_class = "mine";
    mm_strbuf b;
    mm_strbuf_init(&b);
    mm_plot_svg(&b, &p);
    const char *svg = mm_strbuf_str(&b);
    CHECK(strstr(svg, "data-points=\"2\"") && strstr(svg, "data-points=\"3\""));
    CHECK(strstr(svg, "step &lt;x&gt;") && strstr(svg, "loss &amp; more") &&
          strstr(svg, "a&quot;b"));
    CHECK(!has_word(svg, "nan") && !has_word(svg, "inf"));
    /* the checker itself: printf's spellings are found, ordinary words are not */
    CHECK(has_word("x=\"nan\"", "nan") && has_word("1,-nan 2", "nan") && has_word("-inf", "inf"));
    CHECK(!has_word("dominant-baseline info", "nan") && !has_word("info", "inf"));
    mm_strbuf_free(&b);
}

/* ---- mammo report ---- */

/* Parses a points="x,y x,y ..." attribute starting at s; returns the number of pairs, -1 when a
 * coordinate is not a finite number inside [0, w] x [0, h]. */
static int parse_points(const char *s, double w, double h)
{
    int n = 0;
    while (*s && *s != '"') {
        char *end;
        double x = strtod(s, &end);
        if (end == s || *end != ',') return -1;
        s = end + 1;
        double y = strtod(s, &end);
        if (end == s) return -1;
        if (!isfinite(x) || !isfinite(y) || x < 0 || x > w || y < 0 || y > h) return -1;
        s = end;
        while (*s == ' ') s++;
        n++;
    }
    return n;
}

/* The polyline with class `cls` after the <svg id="svg_id": its data-points and parsed point
 * count (-1 when missing or bad). */
static int polyline_points(const char *html, const char *svg_id, const char *cls, int *declared)
{
    char key[128];
    snprintf(key, sizeof key, "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"%s\"", svg_id);
    const char *svg = strstr(html, key);
    if (!svg) return -1;
    const char *end = strstr(svg, "</svg>");
    snprintf(key, sizeof key, "<polyline class=\"series %s\" data-points=\"", cls);
    const char *pl = strstr(svg, key);
    if (!pl || pl > end) return -1;
    *declared = atoi(pl + strlen(key));
    const char *pts = strstr(pl, "points=\"");
    pts = strstr(pts + 1, " points=\""); /* skip data-points */
    if (!pts) return -1;
    double w = 0, h = 0;
    sscanf(strstr(svg, "viewBox=\"") + 9, "0 0 %lf %lf", &w, &h);
    return parse_points(pts + 9, w, h);
}

static int count_str(const char *s, const char *sub)
{
    int n = 0;
    for (const char *p = strstr(s, sub); p; p = strstr(p + 1, sub)) n++;
    return n;
}

/* A run folder: metrics.jsonl with two stages, predictions.csv, config.json. Returns the
 * number of ROC points of the predictions. */
static int64_t make_run(const char *dir, int steps_per_epoch, int epochs, int val_auc)
{
    char *path = path_in(dir, "metrics.jsonl");
    mm_jsonl j;
    CHECK(mm_jsonl_open(&j, path, false) == MM_OK);
    CHECK(mm_jsonl_run(&j, "train-image", false, 0, 0) == MM_OK);
    /* the first stage trains the top only: fewer gradients and moments */
    CHECK(mm_jsonl_stage(&j, 1, "top", 1, 2, 0, 1e-4, 1234500000) == MM_OK);
    log_epochs(&j, 0, 2, steps_per_epoch, val_auc);
    CHECK(mm_jsonl_stage(&j, 2, "all", 3, epochs - 2, 2 * (int64_t)steps_per_epoch, 1e-5,
                         1744360192) == MM_OK);
    log_epochs(&j, 2, epochs - 2, steps_per_epoch, val_auc);
    CHECK(mm_jsonl_end(&j, "finished", epochs, (int64_t)epochs * steps_per_epoch, epochs - 1,
                       val_auc ? "val_auc" : "val_acc", 0.8) == MM_OK);
    mm_jsonl_close(&j);
    free(path);

    enum { N = 240 };
    double s[N];
    int y[N];
    mm_predictions p;
    mm_predictions_init(&p, 0, NULL);
    for (int i = 0; i < N; i++) {
        y[i] = i % 3 == 0;
        s[i] = round(100 * mm_philox_uniform(21, (uint64_t)i) * (y[i] ? 1 : 0.7)) / 100;
        char name[32];
        snprintf(name, sizeof name, "img%d.png", i);
        mm_predictions_add(&p, name, y[i], s[i], NULL);
    }
    path = path_in(dir, "predictions.csv");
    CHECK(mm_predictions_write(&p, path) == MM_OK);
    free(path);
    mm_predictions_free(&p);
    mm_roc_point *roc;
    int64_t m = 0;
    CHECK(mm_roc_curve(&roc, &m, s, y, N) == MM_OK);
    free(roc);

    path = path_in(dir, "config.json");
    write_file(path, "{\"net\": \"resnet50\", "
                     "\"top\": {\"spec\": \"512-512-1024x2\", \"blocks\": 2},"
                     " \"stages\": [{\"epochs\": 2, \"lr\": 0.0001}], \"note\": \"<b>x</b>\"}");
    free(path);
    return m;
}

/* printf writes NaN and infinity as "nan", "-nan", "inf", "-inf" (any case): look for those
 * as whole words, so words such as "dominant-baseline" or "info" do not count. */
static int has_word(const char *s, const char *w)
{
    size_t n = strlen(w);
    for (const char *p = s; *p; p++) {
        if (strncasecmp(p, w, n) != 0) continue;
        int before = p > s && ((p[-1] >= 'a' && p[-1] <= 'z') || (p[-1] >= 'A' && p[-1] <= 'Z') ||
                               p[-1] == '-' || p[-1] == '_');
        char a = p[n];
        int after = (a >= 'a' && a <= 'z') || (a >= 'A' && a <= 'Z') || a == '-' || a == '_';
        /* "-nan" is a minus sign when what precedes it is not a letter */
        if (p > s && p[-1] == '-' && !(p - 1 > s && ((p[-2] >= 'a' && p[-2] <= 'z') ||
                                                      (p[-2] >= 'A' && p[-2] <= 'Z'))))
            before = 0;
        if (!before && !after) return 1;
    }
    return 0;
}

static void check_no_nan(const char *html)
{
    CHECK_MSG(!has_word(html, "nan"), "a NaN in the page");
    CHECK_MSG(!has_word(html, "inf") && !has_word(html, "infinity"), "an infinity in the page");
}

MM_TEST(report_writes_svg_charts_with_roc_points)
{
    const char *dir = mm_test_tmpdir();
    int64_t m = make_run(dir, 40, 6, 1);
    char args[1200], *out;
    snprintf(args, sizeof args, "report '%s'", dir);
    int rc = run_mammo(args, &out);
    CHECK_EQ_INT(rc, 0);
    CHECK(out && strstr(out, "report.html"));
    free(out);
    char *page = path_in(dir, "report.html");
    char *html = read_text(page);
    CHECK(html != NULL);
    if (!html) return;
    CHECK(!strncmp(html, "<!DOCTYPE html>", 15) && strstr(html, "</html>\n"));
    /* Self-contained: no scripts, nothing fetched (the only URL is the SVG namespace). */
    CHECK(strstr(html, "<script") == NULL && strstr(html, "src=") == NULL);
    CHECK_EQ_INT(count_str(html, "http"), count_str(html, "http://www.w3.org/2000/svg"));
    /* The ROC polyline has one point per ROC point, inside the chart. */
    int declared = -1;
    int got = polyline_points(html, "roc-chart", "roc-curve", &declared);
    CHECK_EQ_INT(declared, m);
    CHECK_EQ_INT(got, m);
    /* The loss per step: 240 steps, plus the moving average. */
    got = polyline_points(html, "loss-chart", "loss-steps", &declared);
    CHECK_EQ_INT(got, 240);
    CHECK_EQ_INT(declared, 240);
    got = polyline_points(html, "loss-chart", "loss-smooth", &declared);
    CHECK_EQ_INT(got, 240);
    /* Epoch means: 6 markers; the validation AUC: a line of 6 points; the stage 2 line. */
    const char *loss = strstr(html, "id=\"loss-chart\"");
    const char *markers = loss ? strstr(loss, "<g class=\"markers loss-epochs\"") : NULL;
    CHECK(markers && count_str(markers, "<circle") >= 6);
    got = polyline_points(html, "validation-chart", "val-auc", &declared);
    CHECK_EQ_INT(got, 6);
    got = polyline_points(html, "validation-chart", "val-acc", &declared);
    CHECK_EQ_INT(got, 6);
    CHECK(strstr(html, ">stage 2</text>") != NULL);
    CHECK(strstr(html, "class=\"xtick\"") && strstr(html, "class=\"ytick\""));
    CHECK(strstr(html, "class=\"legend\"") && strstr(html, "Best validation AUC"));
    CHECK(strstr(html, "AUC 0.") && strstr(html, "95% CI"));
    /* The configuration, flattened and escaped. */
    CHECK(strstr(html, "<th>top.spec</th><td>512-512-1024x2</td>") != NULL);
    CHECK(strstr(html, "<th>stages[0].lr</th>") != NULL);
    /* the largest stage's planned step, and each stage's as they differ */
    CHECK(strstr(html, "Step memory</div><div class=\"card-value\">1744.4 MB</div>") != NULL);
    CHECK(strstr(html, "stage 1: 1234.5 MB &middot; stage 2: 1744.4 MB") != NULL);
    CHECK(strstr(html, "&lt;b&gt;x&lt;/b&gt;") != NULL);
    check_no_nan(html);
    free(html);
    /* Nothing but the page was added to the folder (the temporary file is gone). */
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "test $(ls -A '%s' | grep -v cmd-output | wc -l) -eq 4", dir);
    CHECK(system(cmd) == 0);
    free(page);
}

MM_TEST(report_prefers_eval_json_and_handles_long_runs)
{
    const char *dir = mm_test_tmpdir();
    make_run(dir, 1000, 4, 0); /* 4000 steps: drawn as buckets; patch run: accuracy only */
    char *pred = path_in(dir, "predictions.csv"), *ev = path_in(dir, "eval.json");
    char args[2000], *out;
    snprintf(args, sizeof args, "eval --pred '%s' --out '%s' --threshold 0.3 --bootstrap 300",
             pred, ev);
    CHECK_EQ_INT(run_mammo(args, &out), 0);
    free(out);
    snprintf(args, sizeof args, "report '%s'", dir);
    CHECK_EQ_INT(run_mammo(args, &out), 0);
    free(out);
    char *page = path_in(dir, "report.html");
    char *html = read_text(page);
    CHECK(html != NULL);
    if (!html) return;
    CHECK(strstr(html, "eval.json") != NULL);
    CHECK(strstr(html, "300 resamples") != NULL && strstr(html, "threshold 0.3") != NULL);
    int declared;
    CHECK_EQ_INT(polyline_points(html, "loss-chart", "loss-smooth", &declared), 1000);
    CHECK(strstr(html, "<polygon class=\"band loss-steps\"") != NULL);
    CHECK(polyline_points(html, "validation-chart", "val-auc", &declared) == -1);
    CHECK_EQ_INT(polyline_points(html, "validation-chart", "val-acc", &declared), 4);
    CHECK(strstr(html, "Best validation accuracy") != NULL);
    check_no_nan(html);
    free(html);
    free(page);
    free(pred);
    free(ev);
}

MM_TEST(report_without_predictions_or_labels_says_why)
{
    const char *dir = mm_test_tmpdir();
    make_run(dir, 5, 3, 1);
    char *pred = path_in(dir, "predictions.csv");
    write_file(pred, "image,label,score\na.png,-1,0.3\nb.png,-1,0.7\n");
    char args[1200], *out;
    snprintf(args, sizeof args, "report '%s'", dir);
    CHECK_EQ_INT(run_mammo(args, &out), 0);
    free(out);
    char *page = path_in(dir, "report.html");
    char *html = read_text(page);
    CHECK(html && strstr(html, "No ROC curve: ") && strstr(html, "no image has a label"));
    CHECK(html && strstr(html, "id=\"roc-chart\"") == NULL);
    free(html);
    remove(pred);
    CHECK_EQ_INT(run_mammo(args, &out), 0);
    free(out);
    html = read_text(page);
    CHECK(html && strstr(html, "No test predictions in this folder"));
    check_no_nan(html ? html : "");
    free(html);
    free(page);
    free(pred);
}

MM_TEST(report_bad_input_one_line_exit_1_nothing_damaged)
{
    const char *dir = mm_test_tmpdir();
    char args[1200], *out;
    struct {
        const char *setup, *args, *want;
    } cases[] = {
        {NULL, "report '%s/nope'", "nope: no such run folder"},
        {NULL, "report '%s/metrics.jsonl'", "not a folder"},
        {NULL, "report '%s/empty'", "metrics.jsonl: not found"},
        {"config.json", "report '%s'", "config.json line 1"},
        {"predictions.csv", "report '%s'", "predictions.csv line 2: score 'x' is not a number"},
        {"eval.json", "report '%s'", "eval.json: not an evaluation"},
        {NULL, "report", "give one run folder"},
    };
    make_run(dir, 5, 3, 1);
    char *empty = path_in(dir, "empty");
    mkdir(empty, 0755);
    free(empty);
    char *page = path_in(dir, "report.html");
    write_file(page, "previous report");
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *bad = NULL, *saved = NULL;
        if (cases[i].setup) {
            bad = path_in(dir, cases[i].setup);
            saved = read_text(bad);
            if (!strcmp(cases[i].setup, "config.json")) write_file(bad, "{\"net\": ");
            else if (!strcmp(cases[i].setup, "eval.json")) write_file(bad, "{\"auc\": 0.5}");
            else write_file(bad, "image,label,score\na.png,1,x\n");
        }
        snprintf(args, sizeof args, cases[i].args, dir);
        int rc = run_mammo(args, &out);
        CHECK_MSG(rc == 1, "case %zu: exit %d", i, rc);
        int lines = 0;
        for (char *c = out; out && *c; c++) lines += *c == '\n';
        CHECK_MSG(out && !strncmp(out, "mammo: ", 7) && lines == 1 && strstr(out, cases[i].want),
                  "case %zu: '%s' lacks '%s' on one line", i, out ? out : "", cases[i].want);
        free(out);
        char *now = read_text(page);
        CHECK_MSG(now && !strcmp(now, "previous report"), "case %zu: report.html changed", i);
        free(now);
        if (bad) {
            if (saved) write_file(bad, saved);
            else remove(bad);
        }
        free(bad);
        free(saved);
    }
    free(page);
}
