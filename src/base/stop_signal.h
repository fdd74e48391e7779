/* stop_signal.h — SIGINT and SIGTERM as a request to stop, for the commands that keep their
 * work (train writes a checkpoint, generate and eval flush what is finished): after
 * stop_signals_catch the first of them is only recorded (stop_signal()), with an optional
 * message written to stderr at once; a second ends the process at once, as without a handler.
 * A signal ignored at the call stays ignored. One record per process.
 */
#ifndef SMDLM_STOP_SIGNAL_H
#define SMDLM_STOP_SIGNAL_H

#include <signal.h>

/* The handlers stop_signals_catch replaced. */
typedef struct {
    struct sigaction old[2]; /* SIGINT, SIGTERM */
} stop_signals_saved;

/* Installs the handler for SIGINT and SIGTERM. message: written by the handler on the first
 * signal (a string that lives as long as the handler; NULL: none). restart: system calls that
 * the signal interrupts resume (SA_RESTART) instead of failing with EINTR. saved (NULL: not
 * kept) receives the previous handlers for stop_signals_restore. */
void stop_signals_catch(const char *message, int restart, stop_signals_saved *saved);
void stop_signals_restore(const stop_signals_saved *saved);
/* The first SIGINT/SIGTERM received since the handler was installed (or reset), else 0. */
int stop_signal(void);
/* Forgets the signal received (an interactive command that handled it and goes on, or a
 * new run). */
void stop_signal_reset(void);

#endif
