/* stop_signal.c — see stop_signal.h. */
#include "base/stop_signal.h"

#include <string.h>
#include <unistd.h>

static const int k_signals[2] = {SIGINT, SIGTERM};
static volatile sig_atomic_t g_signal; /* the first one received, else 0 */
static const char *g_message;          /* written on the first one (NULL: none) */
static size_t g_message_len;

static void on_stop_signal(int sig) {
    if (g_signal) { /* the second: at once, as without a handler */
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    g_signal = sig;
    if (g_message) {
        ssize_t w = write(STDERR_FILENO, g_message, g_message_len);
        (void)w;
    }
}

void stop_signals_catch(const char *message, int restart, stop_signals_saved *saved) {
    g_message = message;
    g_message_len = message ? strlen(message) : 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = restart ? SA_RESTART : 0;
    for (int i = 0; i < 2; i++) {
        struct sigaction old;
        sigaction(k_signals[i], NULL, &old);
        if (saved) saved->old[i] = old;
        if (old.sa_handler != SIG_IGN) sigaction(k_signals[i], &sa, NULL);
    }
}

void stop_signals_restore(const stop_signals_saved *saved) {
    for (int i = 0; i < 2; i++) sigaction(k_signals[i], &saved->old[i], NULL);
}

int stop_signal(void) { return g_signal; }

void stop_signal_reset(void) { g_signal = 0; }
