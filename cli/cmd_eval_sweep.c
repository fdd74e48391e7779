/* cmd_eval_sweep.c — `smdlm eval sweep`: generate and score a grid of
 * arms (models) × soft-masking on/off × sampling steps × seeds, the instrument for the
 * paper's "high-throughput" claim (quality against tokens revealed per step).
 *
 * Scores per cell: generative perplexity and mean unigram entropy under the causal evaluator
 * (MDLM's genppl), and — with --ref human texts — MAUVE of the samples against them, with the
 * evaluator as featurizer. Every arm gets the same seeds, lengths, sampler and evaluator. Each cell's samples are kept
 * (OUT/samples/ARM-SM-sSTEPS-seedS.jsonl), one JSON line per cell goes to OUT/cells.jsonl as
 * soon as it is scored, and the end writes OUT/sweep.json (mean ± standard deviation over the
 * seeds per arm × soft-masking × steps), OUT/sweep.md and the gnuplot figure OUT/sweep.png.
 *
 * Every arm is loaded and checked (MDLM, one canvas length) before any work. OUT/settings.json
 * records what decides a cell's numbers (evaluator, reference, samples per cell, sampler,
 * top-p, the arms); --resume with the same settings keeps the cells already in cells.jsonl
 * (whose samples file is there) and runs only the others: the grid may grow (more steps or
 * seeds) between the runs.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "common.h"
#include "eval/evaluator.h"
#include "eval/featurizer.h"
#include "compute/kernels.h"
#include "eval/mauve.h"
#include "generate/sampler.h"
#include "base/jsonutil.h"
#include "base/progress.h"
#include "base/util.h"

#define SWEEP_MAX_ARMS 8
#define SWEEP_MAX_LIST 32

typedef struct {
    char name[64];
    const char *dir;
    int trained_sm; /* the directory carries soft-masking values (transparency_config.json) */
} sweep_arm;

typedef struct {
    int arm, sm, steps, seed;
    double gen_ppl, entropy, mauve, seconds; /* mauve: NAN without --ref */
    long forwards, tokens;
    int done; /* scored (in this run or, with --resume, an earlier one) */
} sweep_cell;

/* "8,16,32" → values in [lo, hi]; at most SWEEP_MAX_LIST. */
static int parse_int_list(const char *s, const char *what, int lo, int hi, int *out, int *n) {
    *n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < lo || v > hi || (*end && *end != ',')) {
            SM_ERR("--%s '%s': expected comma-separated integers in [%d, %d]", what, s, lo, hi);
            return -1;
        }
        if (*n == SWEEP_MAX_LIST) {
            SM_ERR("--%s: at most %d values", what, SWEEP_MAX_LIST);
            return -1;
        }
        out[(*n)++] = (int)v;
        p = *end ? end + 1 : end;
    }
    if (*n == 0) {
        SM_ERR("--%s: empty list", what);
        return -1;
    }
    return 0;
}

static int parse_arm(const char *s, sweep_arm *a) {
    const char *eq = strchr(s, '=');
    size_t len = eq ? (size_t)(eq - s) : 0;
    if (!eq || len == 0 || len >= sizeof a->name || !eq[1]) {
        SM_ERR("arm '%s': expected NAME=MODEL_DIR (name of 1 to %zu characters)", s,
               sizeof a->name - 1);
        return -1;
    }
    for (size_t i = 0; i < len; i++)
        if (!(s[i] == '-' || s[i] == '_' || (s[i] >= '0' && s[i] <= '9') ||
              (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z'))) {
            SM_ERR("arm '%s': the name may hold letters, digits, '-' and '_' only", s);
            return -1;
        }
    memcpy(a->name, s, len);
    a->name[len] = 0;
    a->dir = eq + 1;
    return 0;
}

/* MAUVE's reference side: features of the human texts, computed once. */
typedef struct {
    float *feats; /* [n, dim] or NULL: no MAUVE */
    int n;
} sweep_ref;

/* Generates n unconditional samples (batches of B; sequence j draws with seed base + j) with
 * gp on the arm's generation state, writes them as {"text": ...} lines to path and scores them
 * under the featurizer's evaluator (and MAUVE against ref when it has features). */
static int run_cell(smdlm_state *state, smdlm_gen_params gp, int n, int B, uint64_t base_seed,
                    featurizer *fz, const sweep_ref *ref, const char *path, sweep_cell *c) {
    evaluator *ev = &fz->ev;
    float *feats = ref->feats ? sm_malloc(sizeof(float) * (size_t)n * fz->dim) : NULL;
    int nfeat = 0;
    char *tmp = NULL;
    FILE *f = sm_atomic_open(path, &tmp);
    if (!f) {
        free(feats);
        return -1;
    }
    double nll = 0.0, ent = 0.0, t0 = sm_time_sec();
    long scored = 0;
    int rc = 0;
    c->forwards = 0;
    c->tokens = 0;
    for (int j = 0; j < n && rc == 0; j += B) {
        smdlm_result r;
        gp.n = n - j < B ? n - j : B;
        gp.seed = base_seed + (uint64_t)j;
        if ((rc = smdlm_generate(state, NULL, &gp, &r))) break;
        c->forwards += r.stats.forwards;
        for (int s = 0; s < r.n && rc == 0; s++) {
            const char *text = r.text[s];
            int32_t *ids = NULL;
            size_t m = 0;
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "text", text);
            char *line = cJSON_PrintUnformatted(o);
            fprintf(f, "%s\n", line);
            free(line);
            cJSON_Delete(o);
            /* MDLM retokenises samples with the evaluator's tokenizer */
            rc = tok_encode(ev->tok, text, strlen(text), &ids, &m);
            /* the featurizer is the evaluator: its features come from the same ids (empty
             * samples carry no feature) */
            if (rc == 0 && feats && m > 0) {
                rc = featurize_ids(fz, ids, m, feats + (size_t)nfeat * fz->dim);
                nfeat += rc == 0;
            }
            if (rc) break;
            if (m > 0) {
                rc = evaluator_score(ev, ids, m, 0, ev->eos_id, &nll, &scored);
                ent += unigram_entropy(ids, m);
            }
            c->tokens += (long)m;
            free(ids);
        }
        smdlm_result_free(&r);
    }
    if (rc == 0 && scored == 0) rc = SM_ERR("%s: no sample has a token to score", path);
    c->mauve = NAN;
    if (rc == 0 && feats) {
        mauve_params mp;
        mauve_params_default(&mp);
        mauve_result mr;
        if (mauve_compute(ref->feats, ref->n, feats, nfeat, fz->dim, &mp, &mr)) {
            sm_wrap_error("MAUVE of %s", path);
            rc = -1;
        } else {
            c->mauve = mr.mauve;
            mauve_result_free(&mr);
        }
    }
    free(feats);
    if (sm_atomic_commit(f, tmp, path, rc == 0) || rc) return -1;
    c->gen_ppl = exp(nll / (double)scored);
    c->entropy = ent / n;
    c->seconds = sm_time_sec() - t0;
    return 0;
}

static void mean_std(const double *v, int n, double *mean, double *sd) {
    double s = 0, q = 0;
    for (int i = 0; i < n; i++) s += v[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) q += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(q / (n - 1)) : 0.0;
}

static const char *sm_name(int sm) { return sm ? "sm" : "no-sm"; }

/* OUT/sweep.json, OUT/sweep.md and OUT/sweep.dat (gnuplot data) from the scored cells;
 * returns the number of plotted series or −1. */
static int write_summary(const char *out, const sweep_arm *arms, int narms, const int *steps,
                         int nsteps, int nseeds, int T, const sweep_cell *cells, int ncells) {
    char path[1024];
    cJSON *root = cJSON_CreateObject(), *rows = cJSON_AddArrayToObject(root, "rows");
    cJSON_AddNumberToObject(root, "length", T);
    cJSON_AddNumberToObject(root, "seeds", nseeds);
    char mdpath[1024], *mdtmp = NULL;
    snprintf(mdpath, sizeof mdpath, "%s/sweep.md", out);
    snprintf(path, sizeof path, "%s/sweep.dat", out);
    FILE *md = sm_atomic_open(mdpath, &mdtmp), *dat = md ? fopen(path, "w") : NULL;
    if (!dat) {
        cJSON_Delete(root);
        if (md) sm_atomic_commit(md, mdtmp, mdpath, 0);
        return md ? SM_ERR("cannot write %s: %s", path, strerror(errno)) : -1;
    }
    fprintf(md, "| arm | soft-masking | steps | tokens/step | gen. PPL (mean ± sd) | entropy (mean ± sd) | MAUVE (mean ± sd) | s/cell |\n"
                "|---|---|---:|---:|---:|---:|---:|---:|\n");
    int series = 0;
    for (int a = 0; a < narms; a++)
        for (int sm = 1; sm >= 0; sm--) {
            int any = 0;
            for (int k = 0; k < nsteps; k++) {
                double p[SWEEP_MAX_LIST], e[SWEEP_MAX_LIST], mv[SWEEP_MAX_LIST], secs = 0;
                int n = 0;
                for (int i = 0; i < ncells; i++)
                    if (cells[i].arm == a && cells[i].sm == sm && cells[i].steps == steps[k]) {
                        p[n] = cells[i].gen_ppl;
                        e[n] = cells[i].entropy;
                        mv[n] = cells[i].mauve;
                        secs += cells[i].seconds;
                        n++;
                    }
                if (n == 0) continue;
                if (!any) fprintf(dat, "%s\"%s, SM %s\"\n", series++ ? "\n\n" : "", arms[a].name, sm ? "on" : "off");
                any = 1;
                double pm, ps, em, es, mm, ms, tps = (double)T / steps[k];
                mean_std(p, n, &pm, &ps);
                mean_std(e, n, &em, &es);
                mean_std(mv, n, &mm, &ms); /* NAN without --ref */
                char mtxt[48] = "–";
                if (!isnan(mm)) snprintf(mtxt, sizeof mtxt, "%.3f ± %.3f", mm, ms);
                fprintf(md, "| %s | %s | %d | %.3g | %.2f ± %.2f | %.3f ± %.3f | %s | %.1f |\n",
                        arms[a].name, sm ? "on" : "off", steps[k], tps, pm, ps, em, es, mtxt, secs / n);
                fprintf(dat, "%.6g %.9g %.9g %.9g %.9g %.9g %.9g\n", tps, pm, ps, em, es, mm, ms);
                cJSON *r = cJSON_CreateObject();
                cJSON_AddStringToObject(r, "arm", arms[a].name);
                cJSON_AddBoolToObject(r, "soft_masking", sm);
                cJSON_AddNumberToObject(r, "steps", steps[k]);
                cJSON_AddNumberToObject(r, "tokens_per_step", tps);
                cJSON_AddNumberToObject(r, "seeds", n);
                cJSON_AddNumberToObject(r, "gen_ppl_mean", pm);
                cJSON_AddNumberToObject(r, "gen_ppl_sd", ps);
                cJSON_AddNumberToObject(r, "entropy_mean", em);
                cJSON_AddNumberToObject(r, "entropy_sd", es);
                if (!isnan(mm)) {
                    cJSON_AddNumberToObject(r, "mauve_mean", mm);
                    cJSON_AddNumberToObject(r, "mauve_sd", ms);
                }
                cJSON_AddNumberToObject(r, "seconds_per_cell", secs / n);
                cJSON_AddItemToArray(rows, r);
            }
        }
    fclose(dat);
    char *js = cJSON_Print(root);
    cJSON_Delete(root);
    snprintf(path, sizeof path, "%s/sweep.json", out);
    int rc = sm_write_file_atomic(path, js, strlen(js));
    free(js);
    if (sm_atomic_commit(md, mdtmp, mdpath, 1)) rc = -1;
    return rc ? rc : series;
}

/* Figure: generative perplexity, entropy (and MAUVE) against tokens per step (log₂ x). */
static int plot_sweep(const char *out, int nseries, int with_mauve) {
    char path[1024];
    snprintf(path, sizeof path, "%s/sweep.gp", out);
    FILE *gp = fopen(path, "w");
    if (!gp) return SM_ERR("cannot write %s: %s", path, strerror(errno));
    fprintf(gp,
            "set terminal pngcairo size 1100,%d noenhanced font 'sans,10'\n"
            "set output '%s/sweep.png'\nset multiplot layout %d,1 title 'quality against tokens revealed per step'\n"
            "set grid\nset logscale x 2\nset key outside right\nset xlabel 'tokens per step'\n"
            "set ylabel 'generative perplexity'\n"
            "plot for [i=0:%d] '%s/sweep.dat' index i using 1:2:3 with yerrorlines lw 2 title columnheader(1)\n"
            "set ylabel 'unigram entropy (nats)'\n"
            "plot for [i=0:%d] '%s/sweep.dat' index i using 1:4:5 with yerrorlines lw 2 title columnheader(1)\n",
            with_mauve ? 1200 : 820, out, with_mauve ? 3 : 2, nseries - 1, out, nseries - 1, out);
    if (with_mauve)
        fprintf(gp, "set ylabel 'MAUVE'\n"
                    "plot for [i=0:%d] '%s/sweep.dat' index i using 1:6:7 with yerrorlines lw 2 title columnheader(1)\n",
                nseries - 1, out);
    fprintf(gp, "unset multiplot\n");
    fclose(gp);
    return cli_run_gnuplot(path);
}

static int cell_json_line(FILE *f, const sweep_arm *a, const sweep_cell *c, int T) {
    char mv[32] = "null";
    if (!isnan(c->mauve)) snprintf(mv, sizeof mv, "%.9g", c->mauve);
    fprintf(f, "{\"arm\":\"%s\",\"soft_masking\":%s,\"steps\":%d,\"tokens_per_step\":%.6g,"
               "\"seed\":%d,\"gen_ppl\":%.9g,\"entropy\":%.9g,\"mauve\":%s,\"eval_tokens\":%ld,"
               "\"forwards\":%ld,\"seconds\":%.3f}\n",
            a->name, c->sm ? "true" : "false", c->steps, (double)T / c->steps, c->seed, c->gen_ppl,
            c->entropy, mv, c->tokens, c->forwards, c->seconds);
    return fflush(f) == 0 ? 0 : SM_ERR("writing cells.jsonl: %s", strerror(errno));
}

/* Every arm loads as an MDLM model with a tokenizer and all share one canvas length (*T):
 * checked before any work. An arm whose soft-masking cells would run an untrained scale is
 * named on stderr (unless quiet). */
static int check_arms(sweep_arm *arms, int narms, const smdlm_load_params *lp, int sm_never, int quiet, int *T) {
    *T = 0;
    for (int a = 0; a < narms; a++) {
        smdlm_arch arch;
        if (smdlm_dir_arch(arms[a].dir, &arch)) return -1;
        if (arch != SMDLM_ARCH_MDLM)
            return SM_ERR("%s: a %s model; this command runs MDLM models only", arms[a].dir,
                          arch == SMDLM_ARCH_DREAM ? "Dream" : "LLaDA");
        smdlm_model *model = smdlm_model_load(arms[a].dir, lp);
        if (!model) return -1;
        int len = smdlm_max_length(model);
        smdlm_softmask sm = smdlm_model_softmask(model);
        arms[a].trained_sm = sm.mode == SMDLM_SM_ON;
        char desc[SM_DESCRIBE_CAP];
        if (arms[a].trained_sm && !sm_never && !quiet && cli_softmask_untrained(model, &sm))
            fprintf(stderr, "smdlm eval sweep: arm %s: soft-masking %s\n", arms[a].name,
                    cli_softmask_describe(model, &sm, desc));
        smdlm_model_free(model);
        if (*T && len != *T)
            return SM_ERR("arm %s: model length %d differs from the first arm's %d (every arm must "
                          "generate samples of one length)", arms[a].name, len, *T);
        *T = len;
    }
    return 0;
}

/* The grid in the order it runs: arm, SM on before off, steps, seeds. */
static int plan_cells(const sweep_arm *arms, int narms, const int *steps, int nsteps, const int *seeds,
                      int nseeds, int sm_both, int sm_never, sweep_cell *cells) {
    int n = 0;
    for (int a = 0; a < narms; a++)
        for (int sm = 1; sm >= 0; sm--) {
            /* soft-masking on: arms that carry trained values; off: arms without, or all with --sm both */
            if (sm && (sm_never || !arms[a].trained_sm)) continue;
            if (!sm && arms[a].trained_sm && !sm_both && !sm_never) continue;
            for (int k = 0; k < nsteps; k++)
                for (int s = 0; s < nseeds; s++)
                    cells[n++] = (sweep_cell){a, sm, steps[k], seeds[s], 0, 0, NAN, 0, 0, 0, 0};
        }
    return n;
}

static void sample_path(char *buf, size_t size, const char *samples_dir, const sweep_arm *a, const sweep_cell *c) {
    snprintf(buf, size, "%s/%s-%s-s%d-seed%d.jsonl", samples_dir, a->name, sm_name(c->sm), c->steps, c->seed);
}

/* What decides a cell's numbers, as one JSON line (paths absolute where they exist). */
static char *settings_line(const char *evaluator_dir, const char *ref_path, int n, const char *sampler,
                           float top_p, const sweep_arm *arms, int narms) {
    char buf[PATH_MAX];
    cJSON *o = cJSON_CreateObject(), *ja = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "evaluator", realpath(evaluator_dir, buf) ? buf : evaluator_dir);
    if (ref_path) cJSON_AddStringToObject(o, "ref", realpath(ref_path, buf) ? buf : ref_path);
    cJSON_AddNumberToObject(o, "samples", n);
    cJSON_AddStringToObject(o, "sampler", sampler);
    cJSON_AddNumberToObject(o, "top_p", top_p);
    for (int a = 0; a < narms; a++)
        cJSON_AddStringToObject(ja, arms[a].name, realpath(arms[a].dir, buf) ? buf : arms[a].dir);
    cJSON_AddItemToObject(o, "arms", ja);
    char *text = cJSON_PrintUnformatted(o), *line;
    cJSON_Delete(o);
    if (asprintf(&line, "%s\n", text) < 0) line = NULL;
    free(text);
    return line;
}

/* --resume: the cells of an earlier run with these settings, taken from OUT/cells.jsonl into
 * the planned grid (their samples file must be there). Returns the number kept, −1 on error. */
static int resume_cells(const char *out, const char *settings, const sweep_arm *arms, sweep_cell *cells,
                        int ncells, const char *samples_dir) {
    char *path = sm_path_join(out, "settings.json"), *text = NULL;
    int rc = sm_file_exists(path) ? sm_read_file(path, 1 << 20, &text, NULL) : 1;
    if (rc == 0 && strcmp(text, settings))
        rc = SM_ERR("--resume: %s was swept with other settings:\n  then: %s  now:  %s(without --resume "
                    "the sweep starts over)", out, text, settings);
    free(text), free(path);
    if (rc) return rc < 0 ? -1 : 0; /* no settings file: nothing to resume */
    path = sm_path_join(out, "cells.jsonl");
    text = NULL;
    if (sm_file_exists(path) && sm_read_file(path, (size_t)1 << 28, &text, NULL)) rc = -1;
    int kept = 0;
    for (char *line = text, *end; rc == 0 && line && *line; line = end + 1) {
        end = strchr(line, '\n');
        if (!end) break; /* a line cut by a kill */
        cJSON *o = cJSON_ParseWithLength(line, (size_t)(end - line));
        const char *arm = json_get_string(o, "arm");
        const cJSON *sm = cJSON_GetObjectItemCaseSensitive(o, "soft_masking"), *mv = cJSON_GetObjectItemCaseSensitive(o, "mauve");
        for (int i = 0; arm && cJSON_IsBool(sm) && i < ncells; i++) {
            sweep_cell *c = &cells[i];
            char sp[1200];
            sample_path(sp, sizeof sp, samples_dir, &arms[c->arm], c);
            if (c->done || strcmp(arms[c->arm].name, arm) || c->sm != cJSON_IsTrue(sm) ||
                c->steps != cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "steps")) ||
                c->seed != cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "seed")) || !sm_file_exists(sp))
                continue;
            c->gen_ppl = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "gen_ppl"));
            c->entropy = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "entropy"));
            c->mauve = cJSON_IsNumber(mv) ? mv->valuedouble : NAN;
            c->tokens = (long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "eval_tokens"));
            c->forwards = (long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "forwards"));
            c->seconds = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "seconds"));
            c->done = 1;
            kept++;
            break;
        }
        cJSON_Delete(o);
    }
    free(text), free(path);
    return rc ? -1 : kept;
}

int cmd_eval_sweep(int argc, char **argv) {
    const char *evaluator_dir = NULL, *out = NULL, *ref_path = NULL, *steps_s = "8,16,32,64,128,256",
               *seeds_s = "0,1,2", *sampler = "ddpm_cache", *sm_mode = "auto";
    int n = 32, batch = 16, threads = default_threads(), quiet = 0, resume = 0;
    float top_p = 1.0f;
    cli_opt opts[] = {
        {"evaluator", 'e', OPT_STR, &evaluator_dir, 0, 0, "DIR", "causal evaluator: GPT-2 or a causal DiT (required)"},
        {"out", 'o', OPT_STR, &out, 0, 0, "DIR", "output directory (required)"},
        {"ref", 'r', OPT_STR, &ref_path, 0, 0, "FILE", "human texts (JSON lines) for MAUVE; the evaluator is the featurizer"},
        {"steps", 0, OPT_STR, &steps_s, 0, 0, "LIST", "sampling steps (default 8,16,32,64,128,256)"},
        {"seeds", 0, OPT_STR, &seeds_s, 0, 0, "LIST", "seeds (default 0,1,2)"},
        {"samples", 'n', OPT_INT, &n, 1, 1 << 20, "N", "samples per cell (default 32)"},
        {"batch", 'b', OPT_INT, &batch, 1, 4096, "B", "sequences generated together (default 16)"},
        {"sampler", 0, OPT_STR, &sampler, 0, 0, "NAME", "ddpm_cache (default), ddpm, remdm-cap, remdm-loop"},
        {"top-p", 0, OPT_FLOAT, &top_p, 1e-6, 1, "P", "nucleus sampling (default 1: off)"},
        {"sm", 0, OPT_STR, &sm_mode, 0, 0, "MODE", "auto (default: on for arms with a transparency_config.json), both (also off for those), off"},
        {"resume", 0, OPT_FLAG, &resume, 0, 0, "", "keep the cells an interrupted sweep with these settings left in OUT"},
        {"quiet", 'q', OPT_FLAG, &quiet, 0, 0, "", "no progress lines"},
        THREADS_OPT(threads),
        {0},
    };
    cli_command cmd = {"eval sweep",
                       "Generates and scores a grid: arms × soft-masking × steps × seeds.",
                       "-e EVALUATOR -o DIR [options] NAME=MODEL_DIR [NAME=MODEL_DIR ...]", opts};
    const char *pos[SWEEP_MAX_ARMS];
    int npos, rc = cli_parse(&cmd, argc, argv, pos, SWEEP_MAX_ARMS, &npos);
    if (rc) return rc < 0 ? 1 : 0;
    if (!evaluator_dir || !out || npos == 0) {
        fprintf(stderr, "smdlm eval sweep: -e EVALUATOR, -o DIR and at least one NAME=MODEL_DIR are required\n");
        return 1;
    }
    sweep_arm arms[SWEEP_MAX_ARMS];
    int steps[SWEEP_MAX_LIST], seeds[SWEEP_MAX_LIST], nsteps, nseeds;
    int sm_both = !strcmp(sm_mode, "both"), sm_never = !strcmp(sm_mode, "off");
    smdlm_gen_params gp = smdlm_gen_default_params();
    gp.top_p = top_p;
    gp.mdlm.sampler = sampler;
    sampler_kind kind; /* checked now rather than after the evaluator's features */
    if (parse_int_list(steps_s, "steps", 1, 1 << 20, steps, &nsteps) ||
        parse_int_list(seeds_s, "seeds", 0, 1 << 30, seeds, &nseeds) ||
        sampler_kind_parse(sampler, &kind))
        return cli_fail("eval sweep");
    if (!sm_both && !sm_never && strcmp(sm_mode, "auto")) {
        fprintf(stderr, "smdlm eval sweep: --sm '%s': expected auto, both or off\n", sm_mode);
        return 1;
    }
    for (int a = 0; a < npos; a++) {
        if (parse_arm(pos[a], &arms[a])) return cli_fail("eval sweep");
        for (int b = 0; b < a; b++)
            if (!strcmp(arms[a].name, arms[b].name)) {
                fprintf(stderr, "smdlm eval sweep: arm name '%s' given twice\n", arms[a].name);
                return 1;
            }
    }
    kernels_set_threads(threads);
    smdlm_load_params lp = smdlm_load_default_params();
    lp.threads = threads;
    lp.need_tokenizer = 1;
    char *samples_dir = sm_path_join(out, "samples"), *cells_path = sm_path_join(out, "cells.jsonl");
    char *settings = settings_line(evaluator_dir, ref_path, n, sampler, top_p, arms, npos);
    featurizer fz;
    sweep_ref ref = {NULL, 0};
    int fz_loaded = 0, ncells = 0, status = 1, T = 0;
    sweep_cell *cells = NULL;
    FILE *cf = NULL;
    if (check_arms(arms, npos, &lp, sm_never, quiet, &T) || sm_mkdir_p(samples_dir)) goto done;
    cells = sm_calloc((size_t)npos * 2 * nsteps * nseeds, sizeof *cells);
    ncells = plan_cells(arms, npos, steps, nsteps, seeds, nseeds, sm_both, sm_never, cells);
    int resumed = resume ? resume_cells(out, settings, arms, cells, ncells, samples_dir) : 0;
    if (resumed < 0) goto done;
    if (resume && !quiet)
        fprintf(stderr, "smdlm eval sweep: resuming: %d of %d cells already scored in %s\n", resumed, ncells,
                cells_path);
    {   /* cells.jsonl starts over with the kept cells, settings.json records this sweep's */
        char *settings_path = sm_path_join(out, "settings.json"), *kept = NULL;
        size_t kept_len = 0;
        FILE *mem = open_memstream(&kept, &kept_len);
        for (int i = 0; i < ncells; i++)
            if (cells[i].done) cell_json_line(mem, &arms[cells[i].arm], &cells[i], T);
        fclose(mem);
        int bad = sm_write_file_atomic(settings_path, settings, strlen(settings)) ||
                  sm_write_file_atomic(cells_path, kept, kept_len);
        free(settings_path), free(kept);
        if (bad) goto done;
    }
    if (!(cf = fopen(cells_path, "a"))) {
        SM_ERR("cannot write '%s': %s", cells_path, strerror(errno));
        goto done;
    }
    if (featurizer_load(&fz, evaluator_dir, 1024, threads)) goto done;
    fz_loaded = 1;
    progress prog;
    progress_start(&prog, "smdlm eval sweep", quiet);
    if (ref_path && resumed < ncells) {
        jsonl_stats js;
        if (featurize_jsonl(&fz, ref_path, "text", stderr, &prog, &ref.feats, &ref.n, &js)) goto done;
    }
    double t0 = sm_time_sec();
    int done_cells = resumed;
    for (int i = 0; i < ncells;) {
        const int a = cells[i].arm;
        int last = i; /* the arm's cells are [i, last) */
        while (last < ncells && cells[last].arm == a) last++;
        smdlm_model *model = NULL;
        smdlm_state *state = NULL;
        for (; i < last; i++) {
            sweep_cell *c = &cells[i];
            if (c->done) continue;
            if (!model && (!(model = smdlm_model_load(arms[a].dir, &lp)) || !(state = smdlm_state_new(model))))
                break;
            gp.sm.mode = c->sm ? SMDLM_SM_ON : SMDLM_SM_OFF;
            gp.steps = c->steps;
            char name[1200];
            sample_path(name, sizeof name, samples_dir, &arms[a], c);
            progress_report(&prog, done_cells, ncells, "%s %s steps %d seed %d: %d samples of %d tokens",
                            arms[a].name, sm_name(c->sm), c->steps, c->seed, n, T);
            /* the same seeds for every arm: seed s draws sequence j with s·2³² + j */
            if (run_cell(state, gp, n, batch, (uint64_t)c->seed << 32, &fz, &ref, name, c) ||
                cell_json_line(cf, &arms[a], c, T))
                break;
            c->done = 1;
            done_cells++;
        }
        if (state) smdlm_state_free(state);
        if (model) smdlm_model_free(model);
        if (i < last) {
            progress_clear(&prog);
            goto done;
        }
    }
    progress_clear(&prog);
    int series = write_summary(out, arms, npos, steps, nsteps, nseeds, T, cells, ncells);
    if (series < 0) goto done;
    if (series > 0) {
        if (plot_sweep(out, series, ref.feats != NULL)) goto done;
    }
    if (!quiet) fprintf(stderr, "%d cells in %.1f s; table %s/sweep.md, figure %s/sweep.png\n", ncells,
                        sm_time_sec() - t0, out, out);
    status = 0;
done:
    if (status) cli_fail("eval sweep");
    if (cf) fclose(cf);
    if (fz_loaded) featurizer_free(&fz);
    free(ref.feats);
    free(cells);
    free(samples_dir);
    free(cells_path);
    free(settings);
    return status;
}
