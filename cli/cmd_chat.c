/* cmd_chat.c — `smdlm chat`: a conversation with a Dream / LLaDA instruct model in its chat
 * template (smdlm_generate_chat, include/smdlm.h). On a terminal (standard input and output both
 * one): a "> " prompt, the reply's canvas redrawn in place at every denoising step, Ctrl-C
 * cancels the reply under way and keeps the conversation before it, Ctrl-C at the prompt or
 * Ctrl-D ends. Otherwise each line of standard input is a user message and each reply is
 * printed as it is, followed by a newline: the reply to a conversation equals `smdlm generate
 * --allow-special -f FILE` on the conversation rendered in the template. Every reply draws with
 * --seed. When the conversation no longer fits the model's length, its oldest exchanges are
 * left out (the system message stays). MDLM models have no chat template and are refused. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "commands.h"
#include "common.h"
#include "base/stop_signal.h"

#define MASK_GLYPH "\xe2\x96\x91" /* ░ */

typedef struct {
    const char *model, *system, *quant;
    int steps, threads, check_weights, delay;
    float top_p;
    uint64_t seed;
    sm_flags smf;
    smdlm_decoder_params dec;
} chat_opts;

/* The messages so far (contents owned), the system message first when there is one. */
typedef struct {
    smdlm_chat_message *msgs;
    size_t n, cap;
    size_t first; /* the oldest message after the system one that still fits */
} conversation;

static void conv_push(conversation *c, const char *role, const char *content) {
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 16;
        c->msgs = realloc(c->msgs, c->cap * sizeof *c->msgs);
        if (!c->msgs) abort();
    }
    char *copy = strdup(content);
    if (!copy) abort();
    c->msgs[c->n++] = (smdlm_chat_message){role, copy};
}

static void conv_pop(conversation *c) { free((char *)c->msgs[--c->n].content); }

static void conv_free(conversation *c) {
    while (c->n) conv_pop(c);
    free(c->msgs);
}

/* The messages the next reply sees: the system message (if any), then from c->first on. */
typedef struct {
    smdlm_chat_message *msgs;
    size_t n;
} conv_view;

static conv_view conv_window(const conversation *c, int has_system) {
    conv_view v = {malloc(sizeof *v.msgs * (c->n + 1)), 0};
    if (!v.msgs) abort();
    if (has_system) v.msgs[v.n++] = c->msgs[0];
    for (size_t i = c->first; i < c->n; i++) v.msgs[v.n++] = c->msgs[i];
    return v;
}

/* Leaves out the oldest user/assistant exchanges until the prompt and max_new tokens fit the
 * model; *prompt_len is the prompt's length then. 0, else 1 after the error (even the new user
 * message alone does not fit). */
static int fit_window(const smdlm_model *model, conversation *c, int has_system, int max_new,
                      int *prompt_len) {
    const int max = smdlm_max_length(model);
    for (;;) {
        conv_view v = conv_window(c, has_system);
        int32_t *ids;
        size_t n;
        int rc = smdlm_chat_tokenize(model, v.msgs, v.n, 0, &ids, &n);
        free(v.msgs);
        free(ids);
        if (rc) return cli_fail("chat");
        if ((long)n + max_new <= max) {
            *prompt_len = (int)n;
            return 0;
        }
        if (c->n - c->first < 3) /* only the new user message is left */
            return cli_error("chat", "the message makes a prompt of %zu tokens; with "
                             "--max-new-tokens %d it exceeds the model's length %d", n, max_new,
                             max);
        c->first += 2;
    }
}

/* ---- the canvas on a terminal --------------------------------------------------------- */

typedef struct {
    const smdlm_model *model;
    int prompt_len, eos;
    int delay_ms;   /* --delay: pause after each frame */
    int rows_shown; /* terminal rows of the frame on the screen */
} live_view;

/* Terminal rows that text takes at `cols` columns (one column per code point). */
static int text_rows(const char *s, int cols) {
    int rows = 1, col = 0;
    for (; *s; s++) {
        if (((unsigned char)*s & 0xc0) == 0x80) continue;
        if (*s == '\n' || col == cols) {
            rows++;
            col = 0;
        }
        if (*s != '\n') col++;
    }
    return rows;
}

static void erase_frame(live_view *v) {
    if (v->rows_shown > 1) printf("\x1b[%dA", v->rows_shown - 1);
    if (v->rows_shown > 0) fputs("\r\x1b[J", stdout);
    fflush(stdout);
    v->rows_shown = 0;
}

/* The reply's canvas of the first sample: after the prompt, up to the first EOS revealed. */
static void show_frame(live_view *v, const smdlm_step *s) {
    const int32_t *reply = s->ids + v->prompt_len;
    int len = s->T - v->prompt_len;
    for (int i = 0; i < len; i++)
        if (reply[i] == v->eos) len = i;
    char *text, status[64];
    smdlm_canvas_text(v->model, reply, (size_t)len, MASK_GLYPH, &text);
    if (s->steps > 0) snprintf(status, sizeof status, "[step %d/%d] ", s->step, s->steps);
    else snprintf(status, sizeof status, "[step %d] ", s->step);
    struct winsize ws;
    const int cols = ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col ? ws.ws_col : 80;
    const int lines = ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row ? ws.ws_row : 24;
    size_t need = strlen(status) + strlen(text) + 1;
    char *frame = malloc(need);
    if (!frame) abort();
    snprintf(frame, need, "%s%s", status, text);
    for (char *c = frame; *c; c++) /* control characters of the model's text would move the cursor */
        if ((unsigned char)*c < 0x20 && *c != '\n') *c = ' ';
    int rows = text_rows(frame, cols);
    if (rows >= lines) { /* a frame taller than the screen cannot be redrawn in place */
        frame[strlen(status) - 1] = 0;
        rows = 1;
    }
    erase_frame(v);
    fputs("\x1b[2m", stdout);
    fputs(frame, stdout);
    fputs("\x1b[0m", stdout);
    fflush(stdout);
    v->rows_shown = rows;
    free(frame);
    free(text);
    cli_sleep_ms(v->delay_ms);
}

static int on_step(void *user, const smdlm_step *s) {
    if (stop_signal()) return 1;
    if (user) show_frame(user, s);
    return 0;
}

/* ---- the conversation ----------------------------------------------------------------- */

typedef struct {
    const chat_opts *o;
    const smdlm_model *model;
    smdlm_state *state;
    smdlm_gen_params gp;
    conversation conv;
    int has_system, tty;
} chat_session;

/* The reply to the conversation with `line` as the next user message. 0: answered (or
 * cancelled by Ctrl-C on a terminal); 1: an error (reported); 128 + signal: stopped. The user
 * message stays in the conversation only when it was answered. */
static int reply(chat_session *cs, const char *line) {
    conv_push(&cs->conv, "user", line);
    live_view view = {cs->model, 0, smdlm_eos_id(cs->model), cs->o->delay, 0};
    if (fit_window(cs->model, &cs->conv, cs->has_system, cs->gp.decoder.max_new_tokens,
                   &view.prompt_len)) {
        conv_pop(&cs->conv);
        return 1;
    }
    cs->gp.user = cs->tty ? &view : NULL;
    conv_view v = conv_window(&cs->conv, cs->has_system);
    smdlm_result r;
    int rc = smdlm_generate_chat(cs->state, v.msgs, v.n, &cs->gp, &r);
    free(v.msgs);
    if (cs->tty) erase_frame(&view);
    int status = 0;
    if (rc == SMDLM_OK) {
        printf("%s\n", r.text[0]);
        if (cs->tty)
            fprintf(stderr, "\x1b[2m(%ld tokens, %d steps, %d forwards, %.2f s)\x1b[0m\n",
                    r.stats.tokens, r.stats.steps, r.stats.forwards, r.stats.seconds);
        fflush(stdout);
        conv_push(&cs->conv, "assistant", r.text[0]);
    } else {
        conv_pop(&cs->conv);
        if (rc != SMDLM_ABORTED) status = cli_fail("chat");
        else if (stop_signal() == SIGINT && cs->tty) {
            fprintf(stderr, "[reply cancelled]\n");
            stop_signal_reset();
        } else status = 128 + stop_signal();
    }
    smdlm_result_free(&r);
    return status;
}

/* Reads a line into *line (newline and a trailing CR removed). 1: a line; 0: end of input or a
 * signal; -1: a line holding a NUL byte. */
static int read_line(char **line, size_t *cap) {
    ssize_t n = getline(line, cap, stdin);
    if (n < 0) return 0;
    if (memchr(*line, 0, (size_t)n)) return -1;
    while (n > 0 && ((*line)[n - 1] == '\n' || (*line)[n - 1] == '\r')) (*line)[--n] = 0;
    return 1;
}

/* On a terminal: waits until a line can be read, or a stop signal came (0). SIGINT and SIGTERM
 * stay blocked from the check until ppoll unblocks them atomically: a Ctrl-C that lands between
 * the prompt and the read is not lost (read() would wait for a line that never comes). A
 * canonical terminal hands read() one line at a time, so stdin's buffer is empty here. */
static int wait_line(void) {
    sigset_t stops, old;
    sigemptyset(&stops);
    sigaddset(&stops, SIGINT);
    sigaddset(&stops, SIGTERM);
    sigprocmask(SIG_BLOCK, &stops, &old);
    int ready = 0;
    while (!ready && !stop_signal()) {
        struct pollfd p = {STDIN_FILENO, POLLIN, 0};
        const int r = ppoll(&p, 1, NULL, &old);
        ready = r > 0 || (r < 0 && errno != EINTR); /* an error: getline reports it */
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    return ready;
}

static int converse(chat_session *cs) {
    char *line = NULL;
    size_t cap = 0;
    int status = 0;
    for (long number = 1; !status; number++) {
        if (stop_signal()) { /* Ctrl-C after the reply ended: at the prompt */
            status = 128 + stop_signal();
            break;
        }
        if (cs->tty) {
            fputs("> ", stdout);
            fflush(stdout);
        }
        const int got = cs->tty && !wait_line() ? 0 : read_line(&line, &cap);
        if (got < 0) {
            status = cli_error("chat", "line %ld holds a NUL byte", number);
            if (cs->tty) status = 0;
            continue;
        }
        if (!got) {
            if (stop_signal()) status = 128 + stop_signal();
            else if (ferror(stdin)) status = cli_error("chat", "cannot read standard input");
            if (cs->tty) putchar('\n');
            break;
        }
        if (!line[0]) continue;
        status = reply(cs, line);
        if (status == 1 && cs->tty) status = 0; /* on a terminal the conversation goes on */
    }
    free(line);
    return status;
}

static smdlm_model *load_chat_model(const chat_opts *o) {
    smdlm_load_params lp = smdlm_load_default_params();
    lp.threads = o->threads;
    lp.quant = o->quant;
    lp.need_tokenizer = 1;
    lp.check_weights = o->check_weights;
    smdlm_model *model = smdlm_model_load(o->model, &lp);
    if (!model) cli_fail("chat");
    return model;
}

/* The template must render before the first message is typed. */
static int check_template(const smdlm_model *model) {
    smdlm_chat_message probe = {"user", ""};
    int32_t *ids;
    size_t n;
    int rc = smdlm_chat_tokenize(model, &probe, 1, 0, &ids, &n);
    free(ids);
    return rc ? cli_fail("chat") : 0;
}

static int chat_run(const cli_command *cmd, chat_opts *o) {
    smdlm_arch arch;
    if (smdlm_dir_arch(o->model, &arch)) return cli_fail("chat");
    if (arch == SMDLM_ARCH_MDLM)
        return cli_error("chat", "%s is an MDLM model, which has no chat template: chat needs a "
                         "Dream or LLaDA instruct model (smdlm generate -p TEXT continues text "
                         "with an MDLM)", o->model);
    if (decoder_flags_check(cmd, arch, &o->dec) || cli_check_quant("chat", o->quant)) return 1;
    smdlm_gen_params gp = smdlm_gen_default_params();
    gp.seed = o->seed;
    gp.steps = cli_seen(cmd, "steps") ? o->steps : o->dec.max_new_tokens;
    gp.top_p = o->top_p;
    gp.decoder = o->dec;
    gp.on_step = on_step;
    if (sm_flags_softmask(cmd, &o->smf, &gp.sm)) return cli_fail("chat");
    smdlm_model *model = load_chat_model(o);
    if (!model) return 1;
    if (check_template(model)) {
        smdlm_model_free(model);
        return 1;
    }
    char desc[SM_DESCRIBE_CAP];
    if (cli_softmask_untrained(model, &gp.sm))
        fprintf(stderr, "smdlm chat: soft-masking %s\n", cli_softmask_describe(model, &gp.sm, desc));
    chat_session cs = {o, model, smdlm_state_new(model), gp, {0}, o->system != NULL,
                       isatty(STDIN_FILENO) && isatty(STDOUT_FILENO)};
    if (o->system) conv_push(&cs.conv, "system", o->system);
    cs.conv.first = cs.conv.n;
    stop_signals_catch(NULL, 0, NULL);
    int status = converse(&cs);
    conv_free(&cs.conv);
    smdlm_state_free(cs.state);
    smdlm_model_free(model);
    return status;
}

int cmd_chat(int argc, char **argv) {
    chat_opts o = {.steps = 128, .threads = default_threads(), .top_p = 1.0f,
                   .dec = smdlm_gen_default_params().decoder};
    cli_opt opts[] = {
        {"model", 'm', OPT_STR, &o.model, 0, 0, "DIR", "Dream or LLaDA instruct model directory (default: $SMDLM_MODEL)"},
        {"system", 0, OPT_STR, &o.system, 0, 0, "TEXT", "system message (default: the template's)"},
        {"steps", 's', OPT_INT, &o.steps, 1, 1000000, "S", "denoising steps per reply (default: --max-new-tokens)"},
        {"top-p", 0, OPT_FLOAT, &o.top_p, 1e-6, 1, "P", "nucleus sampling (default 1 = off)"},
        {"seed", 0, OPT_U64, &o.seed, 0, 0, "N", "random seed of every reply"},
        DECODER_FLAG_OPTS(o.dec),
        {"quant", 0, OPT_STR, &o.quant, 0, 0, "q8", "int8 projections"},
        {"check-weights", 0, OPT_FLAG, &o.check_weights, 0, 0, "", "scan every weight for NaN and infinities at load"},
        {"delay", 0, OPT_INT, &o.delay, 0, 10000, "MS", "on a terminal: pause after each frame of the canvas (default 0)"},
        SM_FLAG_OPTS(o.smf),
        THREADS_OPT(o.threads),
        {0},
    };
    cli_command cmd = {"chat", "Chats with a Dream or LLaDA instruct model in its chat template.",
                       "[-m DIR] [--system TEXT] [--max-new-tokens N] [--steps S] [options]", opts};
    const char *pos[1];
    int npos, rc = cli_parse(&cmd, argc, argv, pos, 0, &npos);
    if (rc) return rc < 0 ? 1 : 0;
    if (!o.model && !(o.model = cli_default_model())) return cli_fail("chat");
    return chat_run(&cmd, &o);
}
