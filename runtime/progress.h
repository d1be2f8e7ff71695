/* Training progress on the console.
 *
 * On a terminal: one line redrawn in place with \r (at most every 0.1 s, and at the last step):
 *   epoch 3/50 [###########.........]  120/400  loss 0.5213  31.2 img/s  eta 1:23
 * Otherwise (a log file, a pipe, CI): plain lines, one when at least line_interval_s (default
 * 30 s) has passed since the previous one, and one at the end of every epoch:
 *   epoch 3/50 step 120/400 (30%) loss 0.5213 31.2 img/s eta 1:23
 * "loss" is the running mean of the epoch's step losses; img/s is images / wall time since the
 * epoch began; eta is the rest of the epoch at that pace.
 *
 *   mm_progress pr;
 *   mm_progress_init(&pr, stdout, MM_PROGRESS_AUTO);
 *   for (epoch = 1..E) {
 *       mm_progress_begin_epoch(&pr, epoch, E, steps_per_epoch);
 *       for (each step) { ...; mm_progress_step(&pr, loss, batch_images); }
 *       mm_progress_end_epoch(&pr, "epoch %d: train loss %.4f, val AUC %.4f", epoch, ...);
 *   }
 *
 * MM_PROGRESS_AUTO picks the bar when `out` is a terminal (isatty) and TERM is not "dumb";
 * the environment variable MM_PROGRESS=bar|lines|quiet overrides it. */
#ifndef MM_PROGRESS_H
#define MM_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

typedef enum mm_progress_mode {
    MM_PROGRESS_AUTO,
    MM_PROGRESS_BAR,   /* redraw one line with \r */
    MM_PROGRESS_LINES, /* plain lines at an interval */
    MM_PROGRESS_QUIET, /* only the end-of-epoch summaries and messages */
} mm_progress_mode;

typedef struct mm_progress {
    FILE *out;
    mm_progress_mode mode;    /* resolved: never AUTO */
    double line_interval_s;   /* LINES: seconds between lines (default 30) */
    double redraw_interval_s; /* BAR: seconds between redraws (default 0.1) */
    int width;                /* BAR: terminal columns (default 80) */
    double (*clock)(void);    /* monotonic seconds; tests may replace it */
    char label[64];           /* shown before "epoch", e.g. "stage 2"; "" for none */
    /* the current epoch */
    int epoch, n_epochs;
    int64_t step, steps, images;
    double loss_sum;
    int64_t loss_n;           /* finite losses summed */
    double t_begin, t_drawn;  /* clock at begin_epoch and at the last draw */
    int64_t step_drawn;       /* step of the last draw or line (-1: none) */
    int bar_open;             /* a bar is on screen without its newline */
} mm_progress;

/* out NULL: nothing is printed (a node of a group other than node 0). */
void mm_progress_init(mm_progress *p, FILE *out, mm_progress_mode mode);

/* Optional text before "epoch" (printf format; NULL or "" clears it). */
void mm_progress_set_label(mm_progress *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Starts an epoch (1-based) of `steps` steps; n_epochs <= 0 when unknown. */
void mm_progress_begin_epoch(mm_progress *p, int epoch, int n_epochs, int64_t steps);

/* One step done: its loss (NaN/inf are shown but kept out of the running mean) and how many
 * images it trained on. Redraws or prints a line when due. */
void mm_progress_step(mm_progress *p, double loss, int64_t images);

double mm_progress_loss(const mm_progress *p);          /* running mean; NaN before a step */
double mm_progress_images_per_s(const mm_progress *p);  /* NaN before time has passed */
double mm_progress_eta_s(const mm_progress *p);         /* rest of the epoch; NaN if unknown */

/* Ends the epoch: draws the final state (ending the bar's line), then prints the summary line
 * (printf format; NULL for none). */
void mm_progress_end_epoch(mm_progress *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints a message line (e.g. "saved checkpoint ...") without breaking the bar: the bar is
 * cleared, the message printed, and the bar redrawn below it. */
void mm_progress_printf(mm_progress *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* "1:23", "1:02:03" or "2d03h" for a duration in seconds; "?" when not finite. */
void mm_format_duration(char *out, size_t size, double seconds);

/* Monotonic seconds (the default clock). */
double mm_monotonic_s(void);

#endif
