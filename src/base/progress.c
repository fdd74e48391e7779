/* progress.c — see progress.h. */
#include "base/progress.h"

#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/util.h"

void progress_start(progress *p, const char *prefix, int quiet) {
    *p = (progress){.prefix = prefix, .out = stderr, .t0 = sm_time_sec()};
    p->mode = quiet ? PROGRESS_OFF : isatty(STDERR_FILENO) ? PROGRESS_TTY : PROGRESS_LINES;
    p->every = p->mode == PROGRESS_TTY ? 0.2 : 5.0;
    const char *env = getenv("SMDLM_PROGRESS_SECONDS");
    char *end;
    double s = env ? strtod(env, &end) : -1;
    if (env && *env && !*end && s >= 0) p->every = s;
    p->t_last = p->t0;
}

void progress_report(progress *p, double done, double total, const char *fmt, ...) {
    if (!p || p->mode == PROGRESS_OFF) return;
    double now = sm_time_sec();
    if (!p->reported) p->reported = 1, p->t_first = now, p->done_first = done;
    if (now - p->t_last < p->every) return;
    p->t_last = now;
    if (p->mode == PROGRESS_TTY) fputs("\r\033[K", p->out);
    fprintf(p->out, "%s: ", p->prefix);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(p->out, fmt, ap);
    va_end(ap);
    fputs("  ", p->out);
    if (total > 0) fprintf(p->out, "%.0f/%.0f, ", done, total);
    fprintf(p->out, "%.0f s", now - p->t0);
    if (total > 0 && done > p->done_first && now > p->t_first)
        fprintf(p->out, ", ETA %.0f s", (total - done) * (now - p->t_first) / (done - p->done_first));
    fputs(p->mode == PROGRESS_TTY ? "" : "\n", p->out);
    p->on_screen = p->mode == PROGRESS_TTY;
    fflush(p->out);
}

void progress_clear(progress *p) {
    if (!p || !p->on_screen) return;
    fputs("\r\033[K", p->out);
    fflush(p->out);
    p->on_screen = 0;
}

void progress_note(progress *p, const char *fmt, ...) {
    if (!p || p->mode == PROGRESS_OFF) return;
    progress_clear(p);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(p->out, fmt, ap);
    va_end(ap);
    fflush(p->out);
}
