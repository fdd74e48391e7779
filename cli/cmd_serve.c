/* cmd_serve.c — `smdlm serve`: loads a model and serves it over HTTP with OpenAI's completion
 * API (src/server/, docs/SERVER.md) until SIGINT or SIGTERM, then stops gracefully: waiting
 * requests are answered 503, running ones finish, and the command exits 0. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common.h"
#include "server/server.h"

/* The model's name in answers: --alias, else the directory's last component. */
static const char *model_name(const char *alias, const char *dir) {
    if (alias) return alias;
    static char name[256];
    snprintf(name, sizeof name, "%s", dir);
    size_t n = strlen(name);
    while (n > 1 && name[n - 1] == '/') name[--n] = 0;
    const char *slash = strrchr(name, '/');
    return slash && slash[1] ? slash + 1 : name;
}

int cmd_serve(int argc, char **argv) {
    const char *model_dir = NULL, *alias = NULL, *quant = NULL;
    srv_config cfg = {.host = "127.0.0.1", .port = 8080, .parallel = 4, .queue = 16,
                      .timeout = 600, .client_timeout = 30};
    int threads = default_threads(), check_weights = 0, max_body_kib = 1024, no_batch = 0;
    float timeout = 600.0f;
    cli_opt opts[] = {
        {"model", 'm', OPT_STR, &model_dir, 0, 0, "DIR", "model directory (default: $SMDLM_MODEL, else the bundled models/default)"},
        {"host", 0, OPT_STR, &cfg.host, 0, 0, "ADDR", "numeric address to listen on (default 127.0.0.1)"},
        {"port", 0, OPT_INT, &cfg.port, 0, 65535, "N", "TCP port (default 8080; 0: any free port, printed at start)"},
        {"api-key", 0, OPT_STR, &cfg.api_key, 0, 0, "KEY", "require 'Authorization: Bearer KEY' (default: $SMDLM_API_KEY, else none)"},
        {"alias", 0, OPT_STR, &alias, 0, 0, "NAME", "the model's name in answers (default: the directory's name)"},
        {"parallel", 0, OPT_INT, &cfg.parallel, 1, 256, "N", "generations at once (default 4); MDLM: one batch, their forwards shared"},
        {"no-batch", 0, OPT_FLAG, &no_batch, 0, 0, "", "MDLM: one state per generation instead of one batch"},
        {"queue", 0, OPT_INT, &cfg.queue, 0, 1 << 20, "N", "requests that may wait beyond those; more get 429 (default 16)"},
        {"timeout", 0, OPT_FLOAT, &timeout, 0.001, 1e7, "S", "seconds a request may take from its arrival; then 504 (default 600)"},
        {"client-timeout", 0, OPT_INT, &cfg.client_timeout, 1, 86400, "S", "seconds a connection may stay silent before it is closed (default 30)"},
        {"max-body", 0, OPT_INT, &max_body_kib, 1, 1 << 20, "KIB", "largest request body in KiB; larger get 413 (default 1024)"},
        {"quant", 0, OPT_STR, &quant, 0, 0, "q8", "Dream/LLaDA: int8 projections"},
        {"check-weights", 0, OPT_FLAG, &check_weights, 0, 0, "", "scan every weight for NaN and infinities at load"},
        THREADS_OPT(threads),
        {0},
    };
    cli_command cmd = {"serve", "Serves a model over HTTP with OpenAI's completion API (docs/SERVER.md).",
                       "[-m DIR] [--host ADDR] [--port N] [--api-key KEY] [--parallel N] [options]",
                       opts};
    const char *pos[1];
    int npos, rc = cli_parse(&cmd, argc, argv, pos, 0, &npos);
    if (rc) return rc < 0 ? 1 : 0;
    if (!model_dir && !(model_dir = cli_default_model())) return cli_fail("serve");
    if (!cfg.api_key) cfg.api_key = getenv("SMDLM_API_KEY");
    if (cfg.api_key && !*cfg.api_key) return cli_error("serve", "--api-key must not be empty");
    cfg.timeout = timeout;
    cfg.batch = !no_batch;
    cfg.max_body = (size_t)max_body_kib * 1024;
    cfg.model_id = model_name(alias, model_dir);

    smdlm_load_params lp = smdlm_load_default_params();
    lp.threads = threads;
    lp.quant = quant;
    lp.need_tokenizer = 1; /* requests and answers are text */
    lp.check_weights = check_weights;
    smdlm_model *model = smdlm_model_load(model_dir, &lp);
    if (!model) return cli_fail("serve");

    /* SIGINT/SIGTERM are taken by sigwait below: blocked here, before any thread starts, so
     * every thread inherits the mask; a peer that closes early must not kill the process */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    srv_server *server = server_start(model, &cfg);
    if (!server) {
        smdlm_model_free(model);
        return cli_fail("serve");
    }
    const int batched = cfg.batch && smdlm_model_arch(model) == SMDLM_ARCH_MDLM;
    char sm[SM_DESCRIBE_CAP];
    const smdlm_softmask model_sm = smdlm_softmask_default(); /* what a request without "softmask" gets */
    fprintf(stderr, "smdlm serve: %s on http://%s%s%s:%d (parallel %d%s, queue %d, soft-masking %s)\n",
            cfg.model_id, strchr(cfg.host, ':') ? "[" : "", cfg.host,
            strchr(cfg.host, ':') ? "]" : "", server_port(server), cfg.parallel,
            batched ? " batched" : "", cfg.queue, cli_softmask_describe(model, &model_sm, sm));
    int sig;
    sigwait(&stop, &sig);
    fprintf(stderr, "smdlm serve: %s: finishing the running requests\n",
            sig == SIGTERM ? "SIGTERM" : "SIGINT");
    server_stop(server);
    smdlm_model_free(model);
    fprintf(stderr, "smdlm serve: stopped\n");
    return 0;
}
