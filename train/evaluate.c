/* Evaluation of a predictions file and its JSON form: see evaluate.h. */
#include "evaluate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/strbuf.h"

void mm_eval_free(mm_eval *e)
{
    free(e->source);
    free(e->roc);
    for (int m = 0; m < e->n_models; m++) free(e->models[m].name);
    free(e->models);
    memset(e, 0, sizeof *e);
}

mm_status mm_eval_predictions(mm_eval *e, const mm_predictions *p, const char *source,
                              double threshold, int resamples, double level, uint64_t seed)
{
    memset(e, 0, sizeof *e);
    e->source = mm_xstrdup(source);
    e->images = p->n;
    double *s;
    int *y;
    int64_t n;
    mm_predictions_labelled(&s, &y, &n, p, -1);
    e->labelled = n;
    e->unlabelled = p->n - n;
    for (int64_t i = 0; i < n; i++) e->positives += y[i];
    e->negatives = n - e->positives;
    mm_status st = MM_OK;
    if (n == 0)
        st = mm_fail(MM_ERR_FORMAT, "%s: no image has a label (0 or 1); evaluation needs labels",
                     source);
    else if (e->positives == 0 || e->negatives == 0)
        st = mm_fail(MM_ERR_FORMAT,
                     "%s: all %lld labelled images are %s; AUC needs both classes", source,
                     (long long)n,
                     e->positives ? "malignant (label 1)" : "not malignant (label 0)");
    if (st == MM_OK) st = mm_auc_bootstrap(&e->ci, s, y, n, resamples, level, seed);
    if (st == MM_OK) st = mm_roc_curve(&e->roc, &e->n_roc, s, y, n);
    if (st == MM_OK) mm_threshold_metrics_compute(&e->at, s, y, n, threshold);
    free(s);
    free(y);
    if (st == MM_OK && p->n_models) {
        e->models = mm_xcalloc((size_t)p->n_models, sizeof *e->models);
        e->n_models = p->n_models;
        for (int m = 0; m < p->n_models && st == MM_OK; m++) {
            e->models[m].name = mm_xstrdup(p->model_name[m]);
            mm_predictions_labelled(&s, &y, &n, p, m);
            st = mm_auc_bootstrap(&e->models[m].ci, s, y, n, resamples, level, seed);
            free(s);
            free(y);
        }
    }
    if (st != MM_OK) mm_eval_free(e);
    return st;
}

/* JSON has no NaN or infinity: such values become null. */
static json_t *num(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static json_t *ci_json(const mm_auc_ci *ci)
{
    return json_pack("{s:o, s:o, s:o, s:s, s:i, s:i, s:i, s:I}", "level", num(ci->level), "lo",
                     num(ci->lo), "hi", num(ci->hi), "method", "percentile bootstrap",
                     "resamples", ci->resamples, "used", ci->used, "skipped", ci->skipped,
                     "seed", (json_int_t)ci->seed);
}

json_t *mm_eval_to_json(const mm_eval *e)
{
    json_t *fpr = json_array(), *tpr = json_array(), *thr = json_array();
    for (int64_t i = 0; i < e->n_roc; i++) {
        json_array_append_new(fpr, json_real(e->roc[i].fpr));
        json_array_append_new(tpr, json_real(e->roc[i].tpr));
        json_array_append_new(thr, num(e->roc[i].threshold));
    }
    json_t *models = json_array();
    for (int m = 0; m < e->n_models; m++)
        json_array_append_new(models, json_pack("{s:s, s:o, s:o}", "name", e->models[m].name,
                                                "auc", num(e->models[m].ci.auc), "auc_ci",
                                                ci_json(&e->models[m].ci)));
    json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:o, s:o}", "predictions", e->source,
                          "images", (json_int_t)e->images, "labelled", (json_int_t)e->labelled,
                          "positives", (json_int_t)e->positives, "negatives",
                          (json_int_t)e->negatives, "unlabelled", (json_int_t)e->unlabelled,
                          "auc", num(e->ci.auc), "auc_ci", ci_json(&e->ci));
    MM_ASSERT(o != NULL);
    json_object_set_new(o, "threshold", num(e->at.threshold));
    json_object_set_new(o, "accuracy", num(e->at.accuracy));
    json_object_set_new(o, "sensitivity", num(e->at.sensitivity));
    json_object_set_new(o, "specificity", num(e->at.specificity));
    json_object_set_new(o, "tp", json_integer(e->at.tp));
    json_object_set_new(o, "fp", json_integer(e->at.fp));
    json_object_set_new(o, "tn", json_integer(e->at.tn));
    json_object_set_new(o, "fn", json_integer(e->at.fn));
    json_object_set_new(o, "roc", json_pack("{s:o, s:o, s:o}", "fpr", fpr, "tpr", tpr,
                                            "threshold", thr));
    json_object_set_new(o, "models", models);
    return o;
}

mm_status mm_eval_write_json(const mm_eval *e, const char *path)
{
    /* One key per line: readable, and the long ROC arrays stay on one line each. */
    json_t *o = mm_eval_to_json(e);
    mm_strbuf b;
    mm_strbuf_init(&b);
    mm_strbuf_puts(&b, "{");
    const char *key;
    json_t *v;
    int first = 1;
    json_object_foreach(o, key, v) {
        char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(10));
        json_t *k = json_string(key);
        char *ktext = json_dumps(k, JSON_ENCODE_ANY);
        MM_ASSERT(text && ktext);
        mm_strbuf_printf(&b, "%s\n %s: %s", first ? "" : ",", ktext, text);
        first = 0;
        free(text);
        free(ktext);
        json_decref(k);
    }
    mm_strbuf_puts(&b, "\n}\n");
    json_decref(o);
    mm_status st = mm_write_text_atomic(path, mm_strbuf_str(&b), b.len);
    mm_strbuf_free(&b);
    return st;
}

/* ---- reading it back ---- */

static double get_num(json_t *o, const char *key, int *ok)
{
    json_t *v = json_object_get(o, key);
    if (json_is_number(v)) return json_number_value(v);
    if (!json_is_null(v)) *ok = 0; /* missing or not a number */
    return NAN;
}

static void read_ci(mm_auc_ci *ci, json_t *o, int *ok)
{
    memset(ci, 0, sizeof *ci);
    if (!json_is_object(o)) {
        *ok = 0;
        return;
    }
    ci->level = get_num(o, "level", ok);
    ci->lo = get_num(o, "lo", ok);
    ci->hi = get_num(o, "hi", ok);
    ci->resamples = (int)json_integer_value(json_object_get(o, "resamples"));
    ci->used = (int)json_integer_value(json_object_get(o, "used"));
    ci->skipped = (int)json_integer_value(json_object_get(o, "skipped"));
    ci->seed = (uint64_t)json_integer_value(json_object_get(o, "seed"));
}

mm_status mm_eval_read_json(mm_eval *e, const char *path)
{
    memset(e, 0, sizeof *e);
    FILE *f = fopen(path, "rb");
    if (!f) return mm_fail(MM_ERR_IO, "%s: cannot open", path);
    json_error_t jerr;
    json_t *o = json_loadf(f, 0, &jerr);
    fclose(f);
    if (!o)
        return mm_fail(MM_ERR_FORMAT, "%s line %d: not valid JSON: %s", path, jerr.line,
                       jerr.text);
    int ok = json_is_object(o);
    if (ok) {
        const char *src = json_string_value(json_object_get(o, "predictions"));
        e->source = mm_xstrdup(src ? src : path);
        e->images = json_integer_value(json_object_get(o, "images"));
        e->labelled = json_integer_value(json_object_get(o, "labelled"));
        e->positives = json_integer_value(json_object_get(o, "positives"));
        e->negatives = json_integer_value(json_object_get(o, "negatives"));
        e->unlabelled = json_integer_value(json_object_get(o, "unlabelled"));
        read_ci(&e->ci, json_object_get(o, "auc_ci"), &ok);
        e->ci.auc = get_num(o, "auc", &ok);
        e->at.threshold = get_num(o, "threshold", &ok);
        e->at.accuracy = get_num(o, "accuracy", &ok);
        e->at.sensitivity = get_num(o, "sensitivity", &ok);
        e->at.specificity = get_num(o, "specificity", &ok);
        e->at.tp = json_integer_value(json_object_get(o, "tp"));
        e->at.fp = json_integer_value(json_object_get(o, "fp"));
        e->at.tn = json_integer_value(json_object_get(o, "tn"));
        e->at.fn = json_integer_value(json_object_get(o, "fn"));
        json_t *roc = json_object_get(o, "roc");
        json_t *fpr = json_object_get(roc, "fpr"), *tpr = json_object_get(roc, "tpr");
        json_t *thr = json_object_get(roc, "threshold");
        size_t m = json_array_size(fpr);
        if (!json_is_array(fpr) || !json_is_array(tpr) || json_array_size(tpr) != m || m < 2)
            ok = 0;
        if (ok) {
            e->roc = mm_xmalloc(m * sizeof *e->roc);
            e->n_roc = (int64_t)m;
            for (size_t i = 0; i < m; i++) {
                json_t *x = json_array_get(fpr, i), *y = json_array_get(tpr, i);
                json_t *t = json_array_get(thr, i);
                if (!json_is_number(x) || !json_is_number(y)) ok = 0;
                e->roc[i].fpr = json_number_value(x);
                e->roc[i].tpr = json_number_value(y);
                e->roc[i].threshold = json_is_number(t) ? json_number_value(t) : INFINITY;
            }
        }
        json_t *models = json_object_get(o, "models");
        size_t nm = json_array_size(models);
        if (ok && nm) {
            e->models = mm_xcalloc(nm, sizeof *e->models);
            e->n_models = (int)nm;
            for (size_t i = 0; i < nm; i++) {
                json_t *mo = json_array_get(models, i);
                const char *name = json_string_value(json_object_get(mo, "name"));
                e->models[i].name = mm_xstrdup(name ? name : "?");
                read_ci(&e->models[i].ci, json_object_get(mo, "auc_ci"), &ok);
                e->models[i].ci.auc = get_num(mo, "auc", &ok);
            }
        }
    }
    json_decref(o);
    if (!ok) {
        mm_eval_free(e);
        return mm_fail(MM_ERR_FORMAT,
                       "%s: not an evaluation written by 'mammo eval --out' (missing or "
                       "malformed auc, auc_ci, threshold metrics or roc)",
                       path);
    }
    return MM_OK;
}

void mm_eval_print(FILE *f, const mm_eval *e)
{
    fprintf(f, "predictions  %s\n", e->source);
    fprintf(f, "images       %lld (%lld malignant, %lld not malignant", (long long)e->images,
            (long long)e->positives, (long long)e->negatives);
    if (e->unlabelled) fprintf(f, ", %lld unlabelled: not counted", (long long)e->unlabelled);
    fprintf(f, ")\n");
    fprintf(f, "AUC          %.4f  (%.0f%% CI %.4f - %.4f; percentile bootstrap, %d resamples",
            e->ci.auc, 100 * e->ci.level, e->ci.lo, e->ci.hi, e->ci.resamples);
    if (e->ci.skipped) fprintf(f, ", %d single-class skipped", e->ci.skipped);
    fprintf(f, ", seed %llu)\n", (unsigned long long)e->ci.seed);
    fprintf(f, "threshold    %g (score >= threshold is called malignant)\n", e->at.threshold);
    fprintf(f, "accuracy     %.4f  (%lld of %lld)\n", e->at.accuracy,
            (long long)(e->at.tp + e->at.tn), (long long)e->labelled);
    fprintf(f, "sensitivity  %.4f  (%lld of %lld malignant)\n", e->at.sensitivity,
            (long long)e->at.tp, (long long)(e->at.tp + e->at.fn));
    fprintf(f, "specificity  %.4f  (%lld of %lld not malignant)\n", e->at.specificity,
            (long long)e->at.tn, (long long)(e->at.tn + e->at.fp));
    for (int m = 0; m < e->n_models; m++)
        fprintf(f, "model %-6s AUC %.4f  (%.0f%% CI %.4f - %.4f)\n", e->models[m].name,
                e->models[m].ci.auc, 100 * e->models[m].ci.level, e->models[m].ci.lo,
                e->models[m].ci.hi);
}
