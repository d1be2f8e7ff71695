/* Line charts as inline SVG for the HTML report: axes with "nice" ticks (1, 2, 5 x 10^k), grid,
 * axis labels, a legend, vertical markers, and series drawn as polylines, markers or shaded
 * bands. No JavaScript: point markers carry <title> tooltips.
 *
 * Every coordinate is written with one decimal and is finite: non-finite data points are left
 * out (a line breaks there), and values outside the axis range are drawn clamped to its edge.
 * Each series' polyline carries class="series <css_class>" and data-points="<count>" so tests
 * (and readers of the HTML) can find it. */
#ifndef MM_SVG_PLOT_H
#define MM_SVG_PLOT_H

#include <stdbool.h>
#include <stdint.h>

#include "../runtime/strbuf.h"

typedef enum mm_plot_style {
    MM_PLOT_LINE,    /* a polyline */
    MM_PLOT_MARKERS, /* a circle per point */
    MM_PLOT_LINE_MARKERS,
    MM_PLOT_BAND,    /* a filled area between y (lower) and y2 (upper) */
} mm_plot_style;

typedef struct mm_plot_series {
    const char *name;      /* legend text; NULL: not in the legend */
    const char *css_class; /* extra class on its element, e.g. "roc-curve"; may be NULL */
    const double *x, *y;   /* [n] */
    const double *y2;      /* [n] upper edge of a band */
    int64_t n;
    mm_plot_style style;
    const char *color;     /* CSS color */
    double line_width;     /* px; 0: 2 */
    double opacity;        /* 0: 1 */
    bool dashed;
    const char *const *titles; /* [n] tooltip per marker, or NULL */
} mm_plot_series;

typedef struct mm_plot_vline {
    double x;
    const char *label; /* may be NULL */
} mm_plot_vline;

typedef enum mm_legend_pos { MM_LEGEND_TOP_RIGHT, MM_LEGEND_BOTTOM_RIGHT } mm_legend_pos;

#define MM_PLOT_MAX_SERIES 8
#define MM_PLOT_MAX_VLINES 16

typedef struct mm_plot {
    const char *id;            /* id attribute of the <svg> */
    const char *xlabel, *ylabel;
    double width, height;      /* px of the whole figure */
    bool fixed_x, fixed_y;     /* use xmin..xmax / ymin..ymax as given */
    double xmin, xmax, ymin, ymax;
    bool x_integer;            /* ticks at whole numbers only (epochs, steps) */
    mm_plot_series series[MM_PLOT_MAX_SERIES];
    int n_series;
    mm_plot_vline vlines[MM_PLOT_MAX_VLINES];
    int n_vlines;
    mm_legend_pos legend;
} mm_plot;

/* A plot of the given size with nothing in it. */
void mm_plot_init(mm_plot *p, const char *id, double width, double height, const char *xlabel,
                  const char *ylabel);

/* Adds a series (the arrays are not copied: keep them alive until mm_plot_svg). Returns it so
 * fields beyond these can be set. */
mm_plot_series *mm_plot_add(mm_plot *p, mm_plot_style style, const char *name, const char *color,
                            const double *x, const double *y, int64_t n);

void mm_plot_add_vline(mm_plot *p, double x, const char *label);

/* Appends the <svg> element. */
void mm_plot_svg(mm_strbuf *out, const mm_plot *p);

/* Tick positions: a "nice" step (1, 2 or 5 times a power of ten) giving about `target` ticks
 * over [lo, hi]; the ticks are the step's multiples inside [lo, hi]. Returns their number
 * (at most max). integer: the step is at least 1. */
int mm_nice_ticks(double *ticks, int max, double lo, double hi, int target, bool integer,
                  double *step);

/* Appends s with &, <, >, " and ' escaped for HTML text and attributes. */
void mm_html_escape(mm_strbuf *out, const char *s);

#endif
