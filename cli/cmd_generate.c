/* cmd_generate.c — `smdlm generate`: unconditional or prefix-prompted samples from an MDLM
 * with any sampler, with or without soft-masking; --visual redraws the canvas every step. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "common.h"
#include "kernels.h"
#include "sampler.h"
#include "util.h"

#define MASK_GLYPH "\xe2\x96\x91" /* ░ */

typedef struct {
    const model_dir *md;
    int visual_delay_ms;
    int tty;
} visual_ctx;

/* Text of ids[0..n) with masked positions shown as a placeholder. */
static char *render(const model_dir *md, const int32_t *ids, int n, int show_masks) {
    size_t cap = 256, len = 0;
    char *out = sm_malloc(cap);
    int mask = md->net.cfg.mask_id;
    for (int i = 0; i < n;) {
        int j = i;
        const char *piece = NULL;
        char *dec = NULL, num[16];
        size_t plen = 0;
        if (ids[i] == mask) {
            while (j < n && ids[j] == mask) j++;
            if (!show_masks) {
                i = j;
                continue;
            }
            for (int r = i; r < j; r++) {
                if (len + 4 > cap) out = sm_realloc(out, cap *= 2);
                memcpy(out + len, MASK_GLYPH, 3);
                len += 3;
            }
            i = j;
            continue;
        }
        while (j < n && ids[j] != mask) j++;
        if (md->tok && tok_decode(md->tok, ids + i, (size_t)(j - i), &dec, &plen) == 0) {
            piece = dec;
        } else { /* no tokenizer (or ids beyond it): print the ids */
            j = i + 1;
            plen = (size_t)snprintf(num, sizeof num, "[%d]", ids[i]);
            piece = num;
        }
        while (len + plen + 1 > cap) out = sm_realloc(out, cap *= 2);
        memcpy(out + len, piece, plen);
        len += plen;
        free(dec);
        i = j;
    }
    out[len] = 0;
    return out;
}

static void on_step(void *user, int step, int steps, const int32_t *x, int B, int T) {
    visual_ctx *v = user;
    char *text = render(v->md, x, T, 1); /* the first sample */
    if (v->tty) fputs("\x1b[H\x1b[2J", stdout);
    printf("step %d/%d\n%s\n", step, steps, text);
    if (!v->tty) printf("\n");
    fflush(stdout);
    free(text);
    if (v->visual_delay_ms > 0) {
        struct timespec ts = {v->visual_delay_ms / 1000, (long)(v->visual_delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static int write_jsonl(const char *path, const model_dir *md, const int32_t *x, int B, int T,
                       uint64_t seed, const sampler_params *sp) {
    FILE *f = !strcmp(path, "-") ? stdout : fopen(path, "w");
    if (!f) return SM_ERR("cannot create '%s'", path);
    for (int b = 0; b < B; b++) {
        cJSON *o = cJSON_CreateObject();
        char *text = render(md, x + (size_t)b * T, T, 0);
        cJSON_AddStringToObject(o, "text", text);
        cJSON_AddItemToObject(o, "ids", cJSON_CreateIntArray(x + (size_t)b * T, T));
        cJSON_AddNumberToObject(o, "seed", (double)(seed + (uint64_t)b));
        cJSON_AddStringToObject(o, "sampler", sampler_kind_name(sp->kind));
        cJSON_AddNumberToObject(o, "steps", sp->steps);
        cJSON_AddBoolToObject(o, "soft_masking", sp->sm.enabled);
        char *line = cJSON_PrintUnformatted(o);
        fprintf(f, "%s\n", line);
        free(line);
        free(text);
        cJSON_Delete(o);
    }
    if (f != stdout && fclose(f) != 0) return SM_ERR("cannot write '%s'", path);
    return 0;
}

int cmd_generate(int argc, char **argv) {
    const char *model = NULL, *prompt = NULL, *sampler = "ddpm_cache", *out = NULL;
    int len = 0, steps = 128, n = 1, visual = 0, delay = 60, no_noise_removal = 0, quiet = 0;
    int threads = default_threads();
    float top_p = 1.0f, eta = 0.02f, t_on = 0.55f, t_off = 0.05f, alpha_on = 0.9f;
    uint64_t seed = 0;
    sm_flags smf = {0};
    cli_opt opts[] = {
        {"model", 'm', OPT_STR, &model, 0, 0, "DIR", "model directory (required)"},
        {"prompt", 'p', OPT_STR, &prompt, 0, 0, "TEXT", "prefix that stays fixed"},
        {"len", 'l', OPT_INT, &len, 1, 1 << 20, "L", "canvas length in tokens (default: the model's length)"},
        {"steps", 's', OPT_INT, &steps, 1, 1000000, "S", "denoising steps (default 128)"},
        {"sampler", 0, OPT_STR, &sampler, 0, 0, "NAME", "ddpm, ddpm_cache (default), remdm-cap, remdm-loop"},
        {"top-p", 0, OPT_FLOAT, &top_p, 1e-6, 1, "P", "nucleus sampling (default 1 = off)"},
        {"seed", 0, OPT_U64, &seed, 0, 0, "N", "random seed (sample b uses seed + b)"},
        {"n", 'n', OPT_INT, &n, 1, 4096, "N", "number of samples, run as one batch"},
        {"eta", 0, OPT_FLOAT, &eta, 0, 1, "X", "ReMDM remasking strength (default 0.02)"},
        {"t-on", 0, OPT_FLOAT, &t_on, 0, 1, "X", "ReMDM-loop: loop phase starts (default 0.55)"},
        {"t-off", 0, OPT_FLOAT, &t_off, 0, 1, "X", "ReMDM-loop: loop phase ends (default 0.05)"},
        {"alpha-on", 0, OPT_FLOAT, &alpha_on, 1e-6, 1 - 1e-6, "X", "ReMDM-loop: α during the loop (default 0.9)"},
        {"no-noise-removal", 0, OPT_FLAG, &no_noise_removal, 0, 0, "", "skip the final argmax forward"},
        {"visual", 0, OPT_FLAG, &visual, 0, 0, "", "redraw the canvas at every step"},
        {"delay", 0, OPT_INT, &delay, 0, 10000, "MS", "pause between --visual frames (default 60)"},
        {"out", 'o', OPT_STR, &out, 0, 0, "FILE", "write samples as JSON lines (- for stdout)"},
        {"quiet", 'q', OPT_FLAG, &quiet, 0, 0, "", "no statistics on stderr"},
        SM_FLAG_OPTS(smf),
        THREADS_OPT(threads),
        {0},
    };
    cli_command cmd = {"generate", "Samples text from a masked diffusion model.",
                       "-m DIR [-p PROMPT] [--len L] [--steps S] [options]", opts};
    const char *pos[1];
    int npos, rc = cli_parse(&cmd, argc, argv, pos, 0, &npos);
    if (rc) return rc < 0 ? 1 : 0;
    if (!model) {
        fprintf(stderr, "smdlm generate: -m DIR is required\n");
        return 1;
    }
    sampler_params sp;
    sampler_params_default(&sp);
    if (sampler_kind_parse(sampler, &sp.kind)) return cli_fail("generate");
    sp.steps = steps;
    sp.top_p = top_p;
    sp.seed = seed;
    sp.eta = eta;
    sp.t_on = t_on;
    sp.t_off = t_off;
    sp.alpha_on = alpha_on;
    sp.noise_removal = !no_noise_removal;
    kernels_set_threads(threads);

    model_dir md;
    if (model_dir_load(&md, model, prompt ? 2 : 1)) return cli_fail("generate");
    const dit_config *c = &md.net.cfg;
    int status = 1;
    int32_t *x = NULL, *pids = NULL;
    uint8_t *fixed = NULL;
    size_t np = 0;
    if (sm_flags_resolve(&cmd, &smf, &md, &sp.sm)) goto done;
    if (!len) len = c->model_length;
    if (len > c->model_length) {
        SM_ERR("--len %d exceeds the model's length %d", len, c->model_length);
        goto done;
    }
    if (prompt && tok_encode(md.tok, prompt, strlen(prompt), &pids, &np)) goto done;
    if (np >= (size_t)len) {
        SM_ERR("the prompt has %zu tokens but the canvas holds only %d (raise --len)", np, len);
        goto done;
    }
    x = sm_malloc(sizeof(int32_t) * (size_t)n * len);
    fixed = sm_calloc((size_t)n * len, 1);
    for (int b = 0; b < n; b++)
        for (int i = 0; i < len; i++) {
            size_t at = (size_t)b * len + i;
            x[at] = (size_t)i < np ? pids[i] : c->mask_id;
            fixed[at] = (size_t)i < np;
        }
    visual_ctx vc = {&md, delay, isatty(STDOUT_FILENO)};
    if (visual) {
        sp.on_step = on_step;
        sp.user = &vc;
    }
    sampler_stats stats;
    if (sampler_run(&md.net, &sp, x, fixed, n, len, threads, &stats)) goto done;
    if (out) {
        if (write_jsonl(out, &md, x, n, len, seed, &sp)) goto done;
    } else if (!visual) {
        for (int b = 0; b < n; b++) {
            char *text = render(&md, x + (size_t)b * len, len, 0);
            printf(n > 1 ? "=== sample %d ===\n%s\n" : "%.0d%s\n", b, text);
            free(text);
        }
    }
    if (!quiet)
        fprintf(stderr,
                "smdlm generate: %s, %d steps, %d forwards, soft-masking %s, %d×%d tokens in %.2f s "
                "(%.1f tokens/s; SM inputs %.1f%% of forward time)\n",
                sampler_kind_name(sp.kind), stats.steps, stats.forwards, sp.sm.enabled ? "on" : "off",
                n, len, stats.seconds, (double)n * len / stats.seconds,
                stats.forward_seconds > 0 ? 100.0 * stats.sm_seconds / stats.forward_seconds : 0.0);
    status = 0;
done:
    if (status) cli_fail("generate");
    free(x);
    free(fixed);
    free(pids);
    model_dir_free(&md);
    return status;
}
