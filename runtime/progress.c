/* Training progress on the console: see progress.h. */
#include "progress.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "env.h"

double mm_monotonic_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static mm_progress_mode resolve_mode(FILE *out, mm_progress_mode mode)
{
    if (mode != MM_PROGRESS_AUTO) return mode;
    static const char *const words[] = {"bar", "lines", "quiet"};
    static const mm_progress_mode modes[] = {MM_PROGRESS_BAR, MM_PROGRESS_LINES,
                                             MM_PROGRESS_QUIET};
    int asked = mm_env_word("MM_PROGRESS", words, 3);
    if (asked >= 0) return modes[asked];
    const char *term = getenv("TERM");
    if (isatty(fileno(out)) && !(term && !strcmp(term, "dumb"))) return MM_PROGRESS_BAR;
    return MM_PROGRESS_LINES;
}

void mm_progress_init(mm_progress *p, FILE *out, mm_progress_mode mode)
{
    memset(p, 0, sizeof *p);
    p->out = out;
    p->mode = out ? resolve_mode(out, mode) : MM_PROGRESS_QUIET;
    p->line_interval_s = 30;
    p->redraw_interval_s = 0.1;
    p->width = 80;
    p->clock = mm_monotonic_s;
    p->step_drawn = -1;
    struct winsize ws;
    if (p->mode == MM_PROGRESS_BAR && out && isatty(fileno(out)) &&
        ioctl(fileno(out), TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
        p->width = ws.ws_col;
}

void mm_progress_set_label(mm_progress *p, const char *fmt, ...)
{
    p->label[0] = '\0';
    if (!fmt) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->label, sizeof p->label, fmt, ap);
    va_end(ap);
}

void mm_progress_begin_epoch(mm_progress *p, int epoch, int n_epochs, int64_t steps)
{
    p->epoch = epoch;
    p->n_epochs = n_epochs;
    p->steps = steps;
    p->step = 0;
    p->images = 0;
    p->loss_sum = 0;
    p->loss_n = 0;
    p->t_begin = p->t_drawn = p->clock();
    p->step_drawn = -1;
}

double mm_progress_loss(const mm_progress *p)
{
    return p->loss_n ? p->loss_sum / (double)p->loss_n : NAN;
}

double mm_progress_images_per_s(const mm_progress *p)
{
    double dt = p->clock() - p->t_begin;
    return dt > 0 ? (double)p->images / dt : NAN;
}

double mm_progress_eta_s(const mm_progress *p)
{
    if (p->step <= 0 || p->steps <= 0) return NAN;
    double per_step = (p->clock() - p->t_begin) / (double)p->step;
    return per_step * (double)(p->steps > p->step ? p->steps - p->step : 0);
}

void mm_format_duration(char *out, size_t size, double s)
{
    if (!isfinite(s) || s < 0) {
        snprintf(out, size, "?");
        return;
    }
    long long t = (long long)(s + 0.5);
    if (t >= 86400)
        snprintf(out, size, "%lldd%02lldh", t / 86400, t % 86400 / 3600);
    else if (t >= 3600)
        snprintf(out, size, "%lld:%02lld:%02lld", t / 3600, t % 3600 / 60, t % 60);
    else
        snprintf(out, size, "%lld:%02lld", t / 60, t % 60);
}

/* The parts of a progress line: "epoch 3/50" and the numbers after the step count. */
static void describe(const mm_progress *p, char *head, size_t head_size, char *tail,
                     size_t tail_size)
{
    char ep[64];
    if (p->n_epochs > 0) snprintf(ep, sizeof ep, "epoch %d/%d", p->epoch, p->n_epochs);
    else snprintf(ep, sizeof ep, "epoch %d", p->epoch);
    snprintf(head, head_size, "%s%s%s", p->label, p->label[0] ? " " : "", ep);
    char loss[32], rate[32], eta[32];
    double l = mm_progress_loss(p), r = mm_progress_images_per_s(p);
    if (isfinite(l) && fabs(l) >= 1e-3 && fabs(l) < 1e4) snprintf(loss, sizeof loss, "%.4f", l);
    else if (isfinite(l)) snprintf(loss, sizeof loss, "%.3e", l);
    else snprintf(loss, sizeof loss, "-");
    if (isfinite(r)) snprintf(rate, sizeof rate, "%.1f", r);
    else snprintf(rate, sizeof rate, "-");
    mm_format_duration(eta, sizeof eta, mm_progress_eta_s(p));
    snprintf(tail, tail_size, "loss %s  %s img/s  eta %s", loss, rate, eta);
}

static void draw_bar(mm_progress *p)
{
    char head[128], tail[128], count[64], line[512];
    describe(p, head, sizeof head, tail, sizeof tail);
    if (p->steps > 0)
        snprintf(count, sizeof count, "%lld/%lld", (long long)p->step, (long long)p->steps);
    else
        snprintf(count, sizeof count, "%lld", (long long)p->step);
    /* The bar takes what the text leaves of the terminal's width, 10 to 30 cells, or is left
     * out on a narrow terminal; the line must never wrap or \r would not return to its start. */
    int text = (int)(strlen(head) + strlen(count) + strlen(tail)) + 6;
    int cells = p->width - 1 - text - 3;
    if (cells > 30) cells = 30;
    int n = 0;
    n += snprintf(line + n, sizeof line - (size_t)n, "%s ", head);
    if (cells >= 10 && p->steps > 0) {
        int done = (int)((double)cells * (double)p->step / (double)p->steps);
        if (done > cells) done = cells;
        line[n++] = '[';
        for (int i = 0; i < cells; i++) line[n++] = i < done ? '#' : '.';
        line[n++] = ']';
        line[n] = '\0';
    }
    snprintf(line + n, sizeof line - (size_t)n, "  %s  %s", count, tail);
    if ((int)strlen(line) > p->width - 1) line[p->width - 1] = '\0';
    /* \r returns to the line's start; ESC[K clears what a longer previous line left behind. */
    fprintf(p->out, "\r%s\033[K", line);
    fflush(p->out);
    p->bar_open = 1;
}

static void print_line(mm_progress *p)
{
    char head[128], tail[128];
    describe(p, head, sizeof head, tail, sizeof tail);
    if (p->steps > 0)
        fprintf(p->out, "%s step %lld/%lld (%d%%) %s\n", head, (long long)p->step,
                (long long)p->steps, (int)(100.0 * (double)p->step / (double)p->steps), tail);
    else
        fprintf(p->out, "%s step %lld %s\n", head, (long long)p->step, tail);
    fflush(p->out);
}

static void draw(mm_progress *p, double now)
{
    if (p->mode == MM_PROGRESS_BAR) draw_bar(p);
    else if (p->mode == MM_PROGRESS_LINES) print_line(p);
    p->t_drawn = now;
    p->step_drawn = p->step;
}

void mm_progress_step(mm_progress *p, double loss, int64_t images)
{
    p->step++;
    p->images += images;
    if (isfinite(loss)) {
        p->loss_sum += loss;
        p->loss_n++;
    }
    double now = p->clock();
    if (p->mode == MM_PROGRESS_BAR) {
        if (now - p->t_drawn >= p->redraw_interval_s || p->step == p->steps || p->step == 1)
            draw(p, now);
    } else if (p->mode == MM_PROGRESS_LINES) {
        if (now - p->t_drawn >= p->line_interval_s) draw(p, now);
    }
}

static void vsummary(mm_progress *p, const char *fmt, va_list ap)
{
    if (!p->out) return;
    vfprintf(p->out, fmt, ap);
    fputc('\n', p->out);
    fflush(p->out);
}

void mm_progress_end_epoch(mm_progress *p, const char *fmt, ...)
{
    if (p->mode == MM_PROGRESS_BAR) {
        if (!p->bar_open || p->step_drawn != p->step) draw(p, p->clock());
        fputc('\n', p->out);
        p->bar_open = 0;
    } else if (p->mode == MM_PROGRESS_LINES && p->step_drawn != p->step) {
        draw(p, p->clock());
    }
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsummary(p, fmt, ap);
        va_end(ap);
    }
    if (p->out) fflush(p->out);
}

void mm_progress_printf(mm_progress *p, const char *fmt, ...)
{
    int reopen = p->bar_open;
    if (reopen) fputs("\r\033[K", p->out);
    va_list ap;
    va_start(ap, fmt);
    vsummary(p, fmt, ap);
    va_end(ap);
    if (reopen) draw_bar(p);
}
