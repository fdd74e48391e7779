/* progress.h — the one progress reporter of every long command (generate, eval, data prepare,
 * tokenizer train, train): on a terminal one line rewritten in place (\r), elsewhere (a log
 * file, a pipe) one plain line every few seconds, so a redirected log holds no \r; -q gives
 * PROGRESS_OFF. Reports go to stderr.
 *
 * The interval is 0.2 s on a terminal and 5 s otherwise; the environment variable
 * SMDLM_PROGRESS_SECONDS sets it for both (0: every report). A line is
 *   PREFIX: MESSAGE  [DONE/TOTAL, ]ELAPSED s[, ETA N s]
 * with the ETA from the rate since the first report (a resumed run counts from there).
 * Every function but progress_start takes NULL (no reporting) too.
 */
#ifndef SMDLM_PROGRESS_H
#define SMDLM_PROGRESS_H

#include <stdio.h>

typedef enum { PROGRESS_OFF = 0, PROGRESS_TTY, PROGRESS_LINES } progress_mode;

typedef struct {
    const char *prefix; /* "smdlm generate" */
    progress_mode mode;
    double every;       /* seconds between two lines */
    double t0;          /* progress_start */
    double t_last;      /* the last line shown */
    double t_first, done_first; /* the first report: the base of the rate */
    int reported;       /* a report was made */
    int on_screen;      /* PROGRESS_TTY: a line that the next output must clear */
    FILE *out;          /* stderr */
} progress;

/* Starts the clock; quiet gives PROGRESS_OFF, else the mode follows isatty(stderr). */
void progress_start(progress *p, const char *prefix, int quiet);
/* Where the work stands: shown when the interval has passed since the last line (the first
 * report too). total ≤ 0: no count and no ETA. */
void progress_report(progress *p, double done, double total, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Clears the line in place (PROGRESS_TTY): at the end of the work, and before other output
 * so that it starts on a clean line. */
void progress_clear(progress *p);
/* A line that stays (a validation result, a warning): the in-place line cleared first.
 * Shown in every mode but PROGRESS_OFF. */
void progress_note(progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
