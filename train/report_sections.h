/* Internal to the HTML report (report_html.h): what report_html.c (loading the run's files, the
 * page, the summary and tables) shares with report_charts.c (the chart sections). */
#ifndef MM_REPORT_SECTIONS_H
#define MM_REPORT_SECTIONS_H

#include <jansson.h>
#include <math.h>

#include "../runtime/strbuf.h"
#include "evaluate.h"
#include "report_html.h"
#include "run_log.h"

/* The run's inputs, loaded. */
typedef struct mm_report_inputs {
    const mm_report_opts *o;
    mm_run_log log;
    int have_eval;
    mm_eval eval;
    char *eval_from;   /* the file the ROC comes from */
    char *roc_note;    /* why there is no ROC, or NULL */
    json_t *config;
    char *config_from;
} mm_report_inputs;

/* A number with printf format `fmt`, or a dash when it is not finite. */
static inline void mm_report_put_num(mm_strbuf *b, const char *fmt, double v)
{
    if (isfinite(v)) mm_strbuf_printf(b, fmt, v);
    else mm_strbuf_puts(b, "&ndash;");
}

/* Each appends one <section> with its chart (or a note saying why there is none). */
void mm_report_loss_section(mm_strbuf *b, const mm_report_inputs *r);
void mm_report_validation_section(mm_strbuf *b, const mm_report_inputs *r);
/* The ROC curve with the test metrics and per-model AUCs beside it. */
void mm_report_roc_section(mm_strbuf *b, const mm_report_inputs *r);

#endif
