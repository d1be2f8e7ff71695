/* Line charts as inline SVG: see svg_plot.h. */
#include "svg_plot.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Margins around the plot area, px: room for tick labels and axis labels. */
#define M_LEFT 66.0
#define M_RIGHT 18.0
#define M_TOP 14.0
#define M_BOTTOM 46.0

void mm_plot_init(mm_plot *p, const char *id, double width, double height, const char *xlabel,
                  const char *ylabel)
{
    memset(p, 0, sizeof *p);
    p->id = id;
    p->width = width;
    p->height = height;
    p->xlabel = xlabel;
    p->ylabel = ylabel;
    p->legend = MM_LEGEND_TOP_RIGHT;
}

mm_plot_series *mm_plot_add(mm_plot *p, mm_plot_style style, const char *name, const char *color,
                            const double *x, const double *y, int64_t n)
{
    MM_ASSERT(p->n_series < MM_PLOT_MAX_SERIES);
    mm_plot_series *s = &p->series[p->n_series++];
    memset(s, 0, sizeof *s);
    s->style = style;
    s->name = name;
    s->color = color;
    s->x = x;
    s->y = y;
    s->n = n;
    return s;
}

void mm_plot_add_vline(mm_plot *p, double x, const char *label)
{
    if (p->n_vlines == MM_PLOT_MAX_VLINES) return; /* more stage lines than fit: leave out */
    p->vlines[p->n_vlines].x = x;
    p->vlines[p->n_vlines].label = label;
    p->n_vlines++;
}

void mm_html_escape(mm_strbuf *out, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': mm_strbuf_puts(out, "&amp;"); break;
        case '<': mm_strbuf_puts(out, "&lt;"); break;
        case '>': mm_strbuf_puts(out, "&gt;"); break;
        case '"': mm_strbuf_puts(out, "&quot;"); break;
        case '\'': mm_strbuf_puts(out, "&#39;"); break;
        default: mm_strbuf_append(out, s, 1);
        }
    }
}

/* The nice step for covering `range` with about `target` intervals: 1, 2 or 5 times 10^k. */
static double nice_step(double range, int target, bool integer)
{
    double raw = range / (target > 0 ? target : 1);
    double mag = pow(10, floor(log10(raw)));
    double f = raw / mag;
    double step = (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
    if (integer && step < 1) step = 1;
    return step;
}

int mm_nice_ticks(double *ticks, int max, double lo, double hi, int target, bool integer,
                  double *step_out)
{
    double step = nice_step(hi - lo, target, integer);
    if (step_out) *step_out = step;
    int n = 0;
    /* Multiples of step from the first one >= lo; a hair of slack for rounding. */
    double eps = step * 1e-9;
    for (double k = ceil((lo - eps) / step); n < max; k++) {
        double t = k * step;
        if (t > hi + eps) break;
        ticks[n++] = fabs(t) < eps ? 0.0 : t;
    }
    return n;
}

static void format_tick(char *out, size_t size, double v, double step)
{
    if (fabs(v) >= 10000 && fmod(v, 1000) == 0 && step >= 1000) {
        snprintf(out, size, "%gk", v / 1000);
        return;
    }
    int decimals = step >= 1 ? 0 : (int)-floor(log10(step) + 1e-9);
    snprintf(out, size, "%.*f", decimals, v);
}

typedef struct frame {
    double x0, x1, y0, y1; /* data range */
    double left, top, w, h; /* plot area, px */
} frame;

static double px(const frame *f, double x)
{
    double t = (x - f->x0) / (f->x1 - f->x0);
    if (t < 0) t = 0;
    if (t > 1) t = 1;
    return f->left + t * f->w;
}

static double py(const frame *f, double y)
{
    double t = (y - f->y0) / (f->y1 - f->y0);
    if (t < 0) t = 0;
    if (t > 1) t = 1;
    return f->top + (1 - t) * f->h;
}

/* Data range over every series, for an axis (0: x, 1: y). */
static void data_range(const mm_plot *p, int axis, double *lo, double *hi)
{
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int s = 0; s < p->n_series; s++) {
        const mm_plot_series *se = &p->series[s];
        for (int64_t i = 0; i < se->n; i++) {
            double v[2] = {axis ? se->y[i] : se->x[i], axis && se->y2 ? se->y2[i] : NAN};
            for (int k = 0; k < 2; k++)
                if (isfinite(v[k])) {
                    if (v[k] < *lo) *lo = v[k];
                    if (v[k] > *hi) *hi = v[k];
                }
        }
    }
    for (int v = 0; axis == 0 && v < p->n_vlines; v++)
        if (isfinite(p->vlines[v].x)) {
            if (p->vlines[v].x < *lo) *lo = p->vlines[v].x;
            if (p->vlines[v].x > *hi) *hi = p->vlines[v].x;
        }
    if (*lo > *hi) { /* no data */
        *lo = 0;
        *hi = 1;
    }
    if (*lo == *hi) {
        double pad = fabs(*lo) > 0 ? fabs(*lo) * 0.1 : 0.5;
        *lo -= pad;
        *hi += pad;
    }
}

static void dash_attr(mm_strbuf *o, bool dashed)
{
    if (dashed) mm_strbuf_puts(o, " stroke-dasharray=\"6 4\"");
}

static void draw_series(mm_strbuf *o, const frame *f, const mm_plot_series *s)
{
    double lw = s->line_width > 0 ? s->line_width : 2, op = s->opacity > 0 ? s->opacity : 1;
    const char *cls = s->css_class ? s->css_class : "";
    if (s->style == MM_PLOT_BAND) {
        mm_strbuf_printf(o, "<polygon class=\"band %s\" fill=\"%s\" fill-opacity=\"%.2f\" "
                            "stroke=\"none\" points=\"", cls, s->color, op);
        for (int64_t i = 0; i < s->n; i++)
            if (isfinite(s->x[i]) && isfinite(s->y2[i]))
                mm_strbuf_printf(o, "%.1f,%.1f ", px(f, s->x[i]), py(f, s->y2[i]));
        for (int64_t i = s->n - 1; i >= 0; i--)
            if (isfinite(s->x[i]) && isfinite(s->y[i]))
                mm_strbuf_printf(o, "%.1f,%.1f ", px(f, s->x[i]), py(f, s->y[i]));
        mm_strbuf_puts(o, "\"/>\n");
        return;
    }
    if (s->style == MM_PLOT_LINE || s->style == MM_PLOT_LINE_MARKERS) {
        /* One polyline per run of finite points. */
        for (int64_t i = 0; i < s->n;) {
            while (i < s->n && !(isfinite(s->x[i]) && isfinite(s->y[i]))) i++;
            int64_t j = i;
            while (j < s->n && isfinite(s->x[j]) && isfinite(s->y[j])) j++;
            if (j > i) {
                mm_strbuf_printf(o, "<polyline class=\"series %s\" data-points=\"%lld\" "
                                    "fill=\"none\" stroke=\"%s\" stroke-width=\"%.1f\" "
                                    "stroke-opacity=\"%.2f\" stroke-linejoin=\"round\"",
                                 cls, (long long)(j - i), s->color, lw, op);
                dash_attr(o, s->dashed);
                mm_strbuf_puts(o, " points=\"");
                for (int64_t k = i; k < j; k++)
                    mm_strbuf_printf(o, "%s%.1f,%.1f", k > i ? " " : "", px(f, s->x[k]),
                                     py(f, s->y[k]));
                mm_strbuf_puts(o, "\"/>\n");
            }
            i = j;
        }
    }
    if (s->style == MM_PLOT_MARKERS || s->style == MM_PLOT_LINE_MARKERS) {
        mm_strbuf_printf(o, "<g class=\"markers %s\" fill=\"%s\" stroke=\"#fff\" "
                            "stroke-width=\"1.2\">\n", cls, s->color);
        for (int64_t i = 0; i < s->n; i++) {
            if (!(isfinite(s->x[i]) && isfinite(s->y[i]))) continue;
            mm_strbuf_printf(o, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\">", px(f, s->x[i]),
                             py(f, s->y[i]), lw + 2);
            if (s->titles && s->titles[i]) {
                mm_strbuf_puts(o, "<title>");
                mm_html_escape(o, s->titles[i]);
                mm_strbuf_puts(o, "</title>");
            }
            mm_strbuf_puts(o, "</circle>\n");
        }
        mm_strbuf_puts(o, "</g>\n");
    }
}

static void draw_legend(mm_strbuf *o, const frame *f, const mm_plot *p)
{
    int n = 0;
    size_t longest = 0;
    for (int s = 0; s < p->n_series; s++)
        if (p->series[s].name) {
            n++;
            if (strlen(p->series[s].name) > longest) longest = strlen(p->series[s].name);
        }
    if (!n) return;
    double row = 18, w = 38 + 6.4 * (double)longest, h = 8 + row * n;
    double x = f->left + f->w - w - 8;
    double y = p->legend == MM_LEGEND_TOP_RIGHT ? f->top + 8 : f->top + f->h - h - 8;
    mm_strbuf_printf(o, "<g class=\"legend\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
                        "height=\"%.1f\" rx=\"4\" fill=\"#fff\" fill-opacity=\"0.88\" "
                        "stroke=\"#d0d7de\"/>\n", x, y, w, h);
    int k = 0;
    for (int s = 0; s < p->n_series; s++) {
        const mm_plot_series *se = &p->series[s];
        if (!se->name) continue;
        double cy = y + 4 + row * k + row / 2;
        if (se->style == MM_PLOT_BAND) {
            mm_strbuf_printf(o, "<rect x=\"%.1f\" y=\"%.1f\" width=\"20\" height=\"10\" "
                                "fill=\"%s\" fill-opacity=\"%.2f\"/>", x + 8, cy - 5, se->color,
                             se->opacity > 0 ? se->opacity : 1);
        } else {
            if (se->style != MM_PLOT_MARKERS) {
                mm_strbuf_printf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                                    "stroke=\"%s\" stroke-width=\"%.1f\"", x + 8, cy, x + 28, cy,
                                 se->color, se->line_width > 0 ? se->line_width : 2);
                dash_attr(o, se->dashed);
                mm_strbuf_puts(o, "/>");
            }
            if (se->style != MM_PLOT_LINE)
                mm_strbuf_printf(o, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"/>",
                                 x + 18, cy, se->color);
        }
        mm_strbuf_printf(o, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" "
                            "dominant-baseline=\"middle\" fill=\"#24292f\">", x + 34, cy);
        mm_html_escape(o, se->name);
        mm_strbuf_puts(o, "</text>\n");
        k++;
    }
    mm_strbuf_puts(o, "</g>\n");
}

void mm_plot_svg(mm_strbuf *o, const mm_plot *p)
{
    frame f;
    f.left = M_LEFT;
    f.top = M_TOP;
    f.w = p->width - M_LEFT - M_RIGHT;
    f.h = p->height - M_TOP - M_BOTTOM;
    double xt[64], yt[64], xstep, ystep;
    int nx, ny;
    if (p->fixed_x) {
        f.x0 = p->xmin;
        f.x1 = p->xmax;
    } else {
        data_range(p, 0, &f.x0, &f.x1);
        double pad = 0.03 * (f.x1 - f.x0); /* markers at the ends stay off the axes */
        f.x0 -= pad;
        f.x1 += pad;
    }
    if (p->fixed_y) {
        f.y0 = p->ymin;
        f.y1 = p->ymax;
    } else {
        data_range(p, 1, &f.y0, &f.y1);
        /* Widen the y range to the nice ticks around the data. */
        double step = nice_step(f.y1 - f.y0, 5, false);
        f.y0 = floor(f.y0 / step + 1e-9) * step;
        f.y1 = ceil(f.y1 / step - 1e-9) * step;
        if (f.y1 <= f.y0) f.y1 = f.y0 + step;
    }
    nx = mm_nice_ticks(xt, 64, f.x0, f.x1, (int)(f.w / 90) + 1, p->x_integer, &xstep);
    ny = mm_nice_ticks(yt, 64, f.y0, f.y1, (int)(f.h / 50) + 1, false, &ystep);

    mm_strbuf_printf(o, "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"%s\" class=\"chart\" "
                        "viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" height=\"%.0f\" "
                        "font-family=\"system-ui, -apple-system, 'Segoe UI', sans-serif\">\n",
                     p->id ? p->id : "chart", p->width, p->height, p->width, p->height);
    mm_strbuf_printf(o, "<rect class=\"plot-area\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
                        "height=\"%.1f\" fill=\"#fbfcfd\" stroke=\"none\"/>\n",
                     f.left, f.top, f.w, f.h);
    /* grid and ticks */
    char label[64];
    mm_strbuf_puts(o, "<g class=\"grid\" stroke=\"#e6e9ed\" stroke-width=\"1\">\n");
    for (int i = 0; i < nx; i++)
        mm_strbuf_printf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n",
                         px(&f, xt[i]), f.top, px(&f, xt[i]), f.top + f.h);
    for (int i = 0; i < ny; i++)
        mm_strbuf_printf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", f.left,
                         py(&f, yt[i]), f.left + f.w, py(&f, yt[i]));
    mm_strbuf_puts(o, "</g>\n<g class=\"ticks\" font-size=\"11\" fill=\"#57606a\">\n");
    for (int i = 0; i < nx; i++) {
        format_tick(label, sizeof label, xt[i], xstep);
        mm_strbuf_printf(o, "<text class=\"xtick\" x=\"%.1f\" y=\"%.1f\" "
                            "text-anchor=\"middle\">%s</text>\n",
                         px(&f, xt[i]), f.top + f.h + 16, label);
    }
    for (int i = 0; i < ny; i++) {
        format_tick(label, sizeof label, yt[i], ystep);
        mm_strbuf_printf(o, "<text class=\"ytick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" "
                            "dominant-baseline=\"middle\">%s</text>\n",
                         f.left - 7, py(&f, yt[i]), label);
    }
    mm_strbuf_puts(o, "</g>\n");
    /* axes */
    mm_strbuf_printf(o, "<g class=\"axes\" stroke=\"#57606a\" stroke-width=\"1\">"
                        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/></g>\n",
                     f.left, f.top + f.h, f.left + f.w, f.top + f.h, f.left, f.top, f.left,
                     f.top + f.h);
    mm_strbuf_printf(o, "<text class=\"xlabel\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" "
                        "font-size=\"12.5\" fill=\"#24292f\">",
                     f.left + f.w / 2, p->height - 8);
    mm_html_escape(o, p->xlabel);
    mm_strbuf_printf(o, "</text>\n<text class=\"ylabel\" transform=\"translate(15 %.1f) "
                        "rotate(-90)\" text-anchor=\"middle\" font-size=\"12.5\" "
                        "fill=\"#24292f\">",
                     f.top + f.h / 2);
    mm_html_escape(o, p->ylabel);
    mm_strbuf_puts(o, "</text>\n");
    /* vertical markers (stage boundaries) */
    for (int v = 0; v < p->n_vlines; v++) {
        double x = px(&f, p->vlines[v].x);
        mm_strbuf_printf(o, "<g class=\"vline\"><line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
                            "y2=\"%.1f\" stroke=\"#8c959f\" stroke-dasharray=\"3 3\"/>",
                         x, f.top, x, f.top + f.h);
        if (p->vlines[v].label) {
            mm_strbuf_printf(o, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10.5\" "
                                "fill=\"#6e7781\">", x + 4, f.top + 12);
            mm_html_escape(o, p->vlines[v].label);
            mm_strbuf_puts(o, "</text>");
        }
        mm_strbuf_puts(o, "</g>\n");
    }
    for (int s = 0; s < p->n_series; s++) draw_series(o, &f, &p->series[s]);
    draw_legend(o, &f, p);
    mm_strbuf_puts(o, "</svg>\n");
}
