/* cmd_eval_code.c — `smdlm eval code`: functional correctness of code samples on HumanEval,
 * HumanEval+, MBPP (full, sanitized) and MBPP+. Samples come from a file (openai/human-eval's
 * format), from the dataset's own solutions (--canonical) or from a model (-m); each is run
 * in the sandbox (src/eval/sandbox.h), -j at a time, and unbiased pass@k is reported.
 *
 * --records FILE gets each program's record as soon as it finishes (rewritten in sample order
 * at the end); --resume takes the records already in FILE whose code equals this run's sample
 * (with -m: the recorded completion instead of generating it again) and runs only the rest. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "eval/codeeval.h"
#include "commands.h"
#include "common.h"
#include "base/stop_signal.h"
#include "eval/sandbox.h"
#include "base/jsonutil.h"
#include "base/progress.h"
#include "base/util.h"

#define MAX_K 16

typedef struct {
    sbx_status status;
    double seconds;
    int exit_code;
    char reason[200];
    int done; /* run to its verdict (not stopped by a signal, not skipped after one) */
} run_outcome;

/* A record of an earlier run (--resume): problem, sample index within it, code, outcome. */
typedef struct {
    size_t problem;
    int sample;
    char *code;
    run_outcome out;
} prior_record;

typedef struct {
    prior_record *v; /* sorted by (problem, sample) */
    size_t n;
} prior_records;

typedef struct {
    const code_set *set;
    const code_samples *smp;
    const int *index_in_task; /* per sample: its index among its problem's samples */
    const sbx_config *cfg;
    const sbx_caps *caps;
    run_outcome *out;
    atomic_size_t next, done;
    pthread_mutex_t lock;
    progress *prog;
    FILE *records; /* each finished program's record, appended (NULL: none) */
    double t0;
} run_pool;

static cJSON *record_json(const code_set *set, const code_samples *smp, const run_outcome *out,
                          size_t i, int index_in_task);
static int print_line(FILE *f, cJSON *o);

static void run_one(run_pool *rp, int slot, size_t i) {
    const code_sample *s = &rp->smp->v[i];
    char *prog = code_program(rp->set, s->problem, s->completion, s->full);
    sbx_result r;
    run_outcome *o = &rp->out[i];
    if (sbx_run(rp->cfg, rp->caps, slot, prog, strlen(prog), &r)) {
        o->status = SBX_ERROR;
        o->exit_code = -1;
        o->done = 1;
        snprintf(o->reason, sizeof o->reason, "%s", smdlm_last_error());
    } else {
        o->status = r.status;
        o->seconds = r.seconds;
        o->exit_code = r.exit_code;
        memcpy(o->reason, r.reason, sizeof o->reason);
        o->done = !r.stopped;
        sbx_result_free(&r);
    }
    free(prog);
}

static void *run_worker(void *arg) {
    run_pool *rp = ((void **)arg)[0];
    int slot = (int)(intptr_t)((void **)arg)[1];
    size_t i;
    while (!stop_signal() && (i = atomic_fetch_add(&rp->next, 1)) < rp->smp->n) {
        if (rp->out[i].done) continue; /* resumed */
        run_one(rp, slot, i);
        size_t d = atomic_fetch_add(&rp->done, 1) + 1;
        pthread_mutex_lock(&rp->lock);
        if (rp->records && rp->out[i].done) {
            cJSON *r = record_json(rp->set, rp->smp, rp->out, i, rp->index_in_task[i]);
            print_line(rp->records, r);
            fflush(rp->records);
            cJSON_Delete(r);
        }
        progress_report(rp->prog, (double)d, (double)rp->smp->n, "programs run");
        pthread_mutex_unlock(&rp->lock);
    }
    return NULL;
}

static void run_all(run_pool *rp, int jobs) {
    pthread_t th[256];
    void *args[256][2];
    int n = jobs < 256 ? jobs : 256;
    for (int j = 0; j < n; j++) {
        args[j][0] = rp;
        args[j][1] = (void *)(intptr_t)j;
        if (pthread_create(&th[j], NULL, run_worker, args[j])) {
            n = j; /* run with the threads we have (at least this one: see below) */
            break;
        }
    }
    if (n == 0) { /* no thread could start: run here */
        void *self[2] = {rp, (void *)0};
        run_worker(self);
    }
    for (int j = 0; j < n; j++) pthread_join(th[j], NULL);
    progress_clear(rp->prog);
}

static int parse_k(const char *s, int *k, int *nk) {
    *nk = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || end == p || v < 1 || v > 1000000 || (*end && *end != ',') || *nk >= MAX_K)
            return SM_ERR("--k '%s': expected up to %d comma-separated integers ≥ 1", s, MAX_K);
        k[(*nk)++] = (int)v;
        p = *end ? end + 1 : end;
    }
    return *nk ? 0 : SM_ERR("--k is empty");
}

static char *default_data_path(code_bench b) {
    char *rel = sm_path_join("codebench", code_bench_file(b));
    char *path = cli_data_path(rel);
    free(rel);
    return path;
}

static void print_warnings(const code_warnings *w, int quiet) {
    if (quiet) return;
    size_t shown = w->n < 20 ? w->n : 20;
    for (size_t i = 0; i < shown; i++) fprintf(stderr, "smdlm eval code: warning: %s\n", w->msg[i]);
    if (w->n > shown) fprintf(stderr, "smdlm eval code: warning: %zu more skipped records\n", w->n - shown);
}

typedef struct {
    const char *model, *adapter, *quant;
    int n, gen_len, threads, no_sm, sm_on;
    smdlm_gen_params gp; /* the flags shared with `smdlm generate` */
    code_prompt_opts prompt;
    uint64_t seed;
} gen_flags;

static int by_problem_sample(const void *a, const void *b) {
    const prior_record *x = a, *y = b;
    if (x->problem != y->problem) return x->problem < y->problem ? -1 : 1;
    return (x->sample > y->sample) - (x->sample < y->sample);
}

static const prior_record *prior_find(const prior_records *pr, size_t problem, int sample) {
    prior_record key = {.problem = problem, .sample = sample};
    return pr->n ? bsearch(&key, pr->v, pr->n, sizeof key, by_problem_sample) : NULL;
}

/* The records in path (one JSON object per line, as record_json writes them) of problems in
 * the set; lines that are cut, malformed or of unknown problems are left out, and so are
 * sandbox errors (run again). */
static int prior_load(prior_records *pr, const char *path, const code_set *set) {
    char *text;
    memset(pr, 0, sizeof *pr);
    if (!sm_file_exists(path)) return 0;
    if (sm_read_file(path, (size_t)1 << 31, &text, NULL)) return -1;
    size_t cap = 0;
    for (char *line = text, *end; (end = strchr(line, '\n')); line = end + 1) {
        cJSON *o = cJSON_ParseWithLength(line, (size_t)(end - line));
        const char *task = json_get_string(o, "task_id"), *result = json_get_string(o, "result");
        const char *code = json_get_string(o, "completion"), *err = json_get_string(o, "error");
        const char *format = json_get_string(o, "prompt_format");
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(o, "sample");
        if (!code) code = json_get_string(o, "solution");
        long problem = task ? code_set_find(set, task) : -1;
        int status = -1;
        for (int st = 0; result && st < SBX_ERROR; st++)
            if (!strcmp(result, sbx_status_name((sbx_status)st))) status = st;
        /* a record of another prompt format was checked by another program */
        int same_format = !strcmp(format ? format : "completion", code_prompt_format_name(set->format));
        if (problem >= 0 && code && status >= 0 && cJSON_IsNumber(k) && same_format) {
            if (pr->n == cap) pr->v = sm_realloc(pr->v, sizeof *pr->v * (cap = cap ? 2 * cap : 64));
            prior_record *r = &pr->v[pr->n++];
            *r = (prior_record){(size_t)problem, k->valueint, sm_strdup(code), {(sbx_status)status, 0, 0, "", 1}};
            r->out.seconds = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "seconds"));
            if (err) snprintf(r->out.reason, sizeof r->out.reason, "%s", err);
        }
        cJSON_Delete(o);
    }
    free(text);
    if (pr->n) qsort(pr->v, pr->n, sizeof *pr->v, by_problem_sample);
    return 0;
}

static void prior_free(prior_records *pr) {
    for (size_t i = 0; i < pr->n; i++) free(pr->v[i].code);
    free(pr->v);
}

static smdlm_model *load_model(const gen_flags *g) {
    smdlm_load_params lp = smdlm_load_default_params();
    lp.threads = g->threads;
    lp.quant = g->quant;
    lp.adapter = g->adapter;
    return smdlm_model_load(g->model, &lp);
}

/* -n completions per problem from the model, seeds seed + i; a completion that prior holds
 * is taken from there. A problem whose prompt does not fit the model's length gets -n empty
 * completions and its reason in unfit[problem] (malloc'ed; NULL for the others), with a
 * warning: it counts as failed. */
static int generate_samples(const gen_flags *g, const code_set *set, code_samples *out, char **unfit,
                            progress *prog, const prior_records *prior) {
    smdlm_model *model = load_model(g);
    if (!model) return -1;
    smdlm_state *state = smdlm_state_new(model);
    code_gen_opts o = {g->gp, g->gen_len, g->prompt};
    o.gp.sm.mode = g->no_sm ? SMDLM_SM_OFF : g->sm_on ? SMDLM_SM_ON : SMDLM_SM_MODEL;
    memset(out, 0, sizeof *out);
    int rc = 0;
    for (size_t p = 0; p < set->n && !rc; p++) {
        char why[160];
        int fits = code_prompt_fits(model, set, p, &o, why, sizeof why);
        if (fits < 0) {
            rc = -1;
            break;
        }
        if (fits == 1) {
            unfit[p] = sm_strdup(why);
            progress_note(prog, "smdlm eval code: warning: %s: %s; counted as failed\n", set->p[p].task_id, why);
        }
        for (int i = 0; i < g->n; i++) {
            const prior_record *pr = prior_find(prior, p, i);
            char *completion = unfit[p] ? sm_strdup("") : pr ? sm_strdup(pr->code) : NULL;
            if (!completion && code_generate(model, state, set, p, &o, g->seed + (uint64_t)i, &completion)) {
                rc = -1;
                break;
            }
            code_samples_add(out, p, completion);
            progress_report(prog, (double)out->n, (double)(set->n * (size_t)g->n), "samples generated");
        }
    }
    progress_clear(prog);
    smdlm_state_free(state);
    smdlm_model_free(model);
    return rc;
}

/* --dump-prompts: {"task_id", "prompt"} per problem, the exact text the model would be given. */
static int dump_prompts(const gen_flags *g, const code_set *set, const char *path) {
    smdlm_model *model = load_model(g);
    if (!model) return -1;
    sm_buf b = {0};
    int rc = 0;
    for (size_t p = 0; p < set->n && !rc; p++) {
        char *text;
        if ((rc = code_model_prompt(model, set, p, &g->prompt, g->gp.system, &text))) break;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "task_id", set->p[p].task_id);
        cJSON_AddStringToObject(o, "prompt", text);
        char *line = cJSON_PrintUnformatted(o);
        sm_buf_str(&b, line);
        sm_buf_str(&b, "\n");
        free(line);
        cJSON_Delete(o);
        free(text);
    }
    if (!rc) rc = sm_write_file_atomic(path, b.s ? b.s : "", b.len);
    free(b.s);
    smdlm_model_free(model);
    return rc;
}

static void add_caps(cJSON *o, const sbx_caps *c, const sbx_config *cfg) {
    cJSON *s = cJSON_AddObjectToObject(o, "sandbox");
    cJSON_AddBoolToObject(s, "network_namespace", c->netns);
    cJSON_AddBoolToObject(s, "pid_namespace", c->pidns);
    cJSON_AddBoolToObject(s, "read_only_mounts", c->rdonly);
    cJSON_AddBoolToObject(s, "private_root", c->private_root);
    cJSON_AddBoolToObject(s, "fresh_proc", c->procfs);
    cJSON_AddBoolToObject(s, "seccomp", c->seccomp);
    cJSON_AddBoolToObject(s, "unprivileged_uid", c->drop_uid);
    cJSON_AddBoolToObject(s, "process_limit", c->nproc_enforced);
    cJSON_AddNumberToObject(s, "timeout_s", cfg->timeout_s);
    cJSON_AddNumberToObject(s, "memory_mb", (double)(cfg->mem_bytes >> 20));
    cJSON_AddStringToObject(s, "python", cfg->python);
}

static cJSON *record_json(const code_set *set, const code_samples *smp, const run_outcome *out,
                          size_t i, int index_in_task) {
    const code_sample *s = &smp->v[i];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "task_id", set->p[s->problem].task_id);
    cJSON_AddNumberToObject(o, "sample", index_in_task);
    cJSON_AddStringToObject(o, "prompt_format", code_prompt_format_name(set->format));
    cJSON_AddStringToObject(o, "result", sbx_status_name(out[i].status));
    cJSON_AddBoolToObject(o, "passed", out[i].status == SBX_PASSED);
    if (out[i].reason[0]) cJSON_AddStringToObject(o, "error", out[i].reason);
    else cJSON_AddNullToObject(o, "error");
    cJSON_AddNumberToObject(o, "seconds", (double)(long)(out[i].seconds * 1000) / 1000.0);
    cJSON_AddStringToObject(o, smp->v[i].full ? "solution" : "completion", s->completion);
    return o;
}

static int print_line(FILE *f, cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    int ok = s && fprintf(f, "%s\n", s) > 0;
    free(s);
    return ok;
}

/* After SIGINT/SIGTERM stopped the runs (each killed with its process group and namespace, its
 * directory removed): the records of the programs that finished, then 128 + the signal. */
static int stop_after_signal(const code_set *set, const code_samples *smp, const run_outcome *out,
                             const char *records_path, int json) {
    char *tmp = NULL;
    FILE *rec = records_path ? sm_atomic_open(records_path, &tmp) : NULL;
    if (records_path && !rec) fprintf(stderr, "smdlm eval code: %s\n", smdlm_last_error());
    int *n_of = sm_calloc(set->n, sizeof(int));
    size_t finished = 0;
    for (size_t i = 0; i < smp->n; i++) {
        int index_in_task = n_of[smp->v[i].problem]++;
        if (!out[i].done) continue;
        finished++;
        cJSON *r = record_json(set, smp, out, i, index_in_task);
        if (rec) print_line(rec, r);
        if (json) print_line(stdout, r);
        cJSON_Delete(r);
    }
    free(n_of);
    if (rec && sm_atomic_commit(rec, tmp, records_path, 1))
        fprintf(stderr, "smdlm eval code: %s\n", smdlm_last_error());
    fprintf(stderr, "smdlm eval code: stopped by signal %d: %zu of %zu programs run%s%s\n",
            stop_signal(), finished, smp->n, rec ? "; their records in " : "",
            rec ? records_path : "");
    return 128 + stop_signal();
}

int cmd_eval_code(int argc, char **argv) {
    const char *bench_name = "humaneval", *data = NULL, *samples_path = NULL, *out_path = NULL;
    const char *records_path = NULL, *samples_out = NULL, *k_list = "1,10,100";
    const char *format_name = NULL, *dump_path = NULL;
    int canonical = 0, json = 0, quiet = 0, limit = 0, all_tasks = 0, mem_mb = 2048;
    int base_only = 0, test_field = 0, resume = 0, chat = 0;
    int jobs = default_threads();
    float timeout = 10.0f;
    gen_flags g = {.n = 1, .gen_len = 256, .threads = default_threads(), .gp = smdlm_gen_default_params(),
                   .prompt = {3}};
    sbx_config cfg = sbx_default_config();
    cli_opt opts[] = {
        {"bench", 'b', OPT_STR, &bench_name, 0, 0, "NAME", "humaneval (default), humaneval-plus, mbpp, mbpp-sanitized, mbpp-plus"},
        {"data", 0, OPT_STR, &data, 0, 0, "FILE", "problems file (default: data/codebench/ of the benchmark)"},
        {"samples", 's', OPT_STR, &samples_path, 0, 0, "FILE", "JSON lines {task_id, completion} to evaluate"},
        {"canonical", 0, OPT_FLAG, &canonical, 0, 0, "", "evaluate the dataset's own solutions"},
        {"model", 'm', OPT_STR, &g.model, 0, 0, "DIR", "generate the samples with this model"},
        {"adapter", 0, OPT_STR, &g.adapter, 0, 0, "DIR", "-m, Dream/LLaDA: a PEFT LoRA/DoRA adapter directory to apply"},
        {"samples-out", 0, OPT_STR, &samples_out, 0, 0, "FILE", "write the evaluated samples as JSON lines"},
        {"all-tasks", 0, OPT_FLAG, &all_tasks, 0, 0, "", "full MBPP: all 974 tasks, not the test split 11-510"},
        {"limit", 0, OPT_INT, &limit, 0, 1000000, "N", "only the first N problems"},
        {"base-only", 0, OPT_FLAG, &base_only, 0, 0, "", "HumanEval+/MBPP+: EvalPlus's base inputs only (\"base\" score)"},
        {"test-field", 0, OPT_FLAG, &test_field, 0, 0, "", "HumanEval+/MBPP+: run the record's test/assertion field instead"},
        {"k", 0, OPT_STR, &k_list, 0, 0, "K,...", "pass@k values (default 1,10,100; only k ≤ samples per problem)"},
        {"jobs", 'j', OPT_INT, &jobs, 1, 256, "N", "programs run at once (default: all cores)"},
        {"timeout", 0, OPT_FLOAT, &timeout, 0.1, 3600, "S", "wall-clock seconds per program (default 10; 60 for EvalPlus tests)"},
        {"memory-mb", 0, OPT_INT, &mem_mb, 64, 1 << 20, "MB", "address-space limit per program (default 2048; 4096 for EvalPlus tests)"},
        {"python", 0, OPT_STR, &cfg.python, 0, 0, "PATH", "interpreter (default /usr/bin/python3)"},
        {"out", 'o', OPT_STR, &out_path, 0, 0, "FILE", "write the overall results as JSON"},
        {"records", 0, OPT_STR, &records_path, 0, 0, "FILE", "one JSON line per sample (result, error), written as each finishes"},
        {"resume", 0, OPT_FLAG, &resume, 0, 0, "", "with --records: keep the records already there, run only the other samples"},
        {"json", 0, OPT_FLAG, &json, 0, 0, "", "JSON lines on stdout: one per sample, then the overall one"},
        {"quiet", 'q', OPT_FLAG, &quiet, 0, 0, "", "no sandbox report or warnings on stderr"},
        {"n", 'n', OPT_INT, &g.n, 1, 100000, "N", "-m: samples per problem (seeds seed, seed+1, ...)"},
        {"max-new-tokens", 0, OPT_INT, &g.gen_len, 1, 1 << 20, "N", "-m: tokens generated after the prompt (default 256)"},
        {"steps", 0, OPT_INT, &g.gp.steps, 1, 1000000, "S", "-m: denoising steps (default 128)"},
        {"sampler", 0, OPT_STR, &g.gp.mdlm.sampler, 0, 0, "NAME", "-m, MDLM: ddpm, ddpm_cache (default), remdm-cap, remdm-loop"},
        {"top-p", 0, OPT_FLOAT, &g.gp.top_p, 1e-6, 1, "P", "-m: nucleus sampling (default 1 = off)"},
        {"seed", 0, OPT_U64, &g.seed, 0, 0, "N", "-m: seed of the first sample of each problem (default 0)"},
        {"tokens-per-step", 0, OPT_INT, &g.gp.decoder.tokens_per_step, 1, 1 << 20, "K", "-m, Dream/LLaDA: steps = ceil(max-new-tokens / K)"},
        {"temperature", 0, OPT_FLOAT, &g.gp.decoder.temperature, 0, 1e6, "T", "-m, Dream/LLaDA: 0 = argmax (default)"},
        {"top-k", 0, OPT_INT, &g.gp.decoder.top_k, 0, 1 << 30, "K", "-m, Dream/LLaDA: keep the K most likely tokens (0 = off)"},
        {"alg", 0, OPT_STR, &g.gp.decoder.alg, 0, 0, "NAME", "-m, Dream: origin (default), maskgit_plus, topk_margin, entropy"},
        {"alg-temp", 0, OPT_FLOAT, &g.gp.decoder.alg_temp, 0, 1e6, "T", "-m, Dream: sample positions by confidence (0 = top)"},
        {"block-length", 0, OPT_INT, &g.gp.decoder.block_length, 1, 1 << 20, "L", "-m, LLaDA: semi-autoregressive block (default 32); Dream: Fast-dLLM's block-wise decoding"},
        {"remasking", 0, OPT_STR, &g.gp.decoder.remasking, 0, 0, "NAME", "-m, LLaDA: low_confidence (default) or random"},
        {"threshold", 0, OPT_FLOAT, &g.gp.decoder.threshold, 0, 1, "TAU", "-m, Dream/LLaDA: reveal every position with confidence ≥ TAU"},
        {"eos-penalty", 0, OPT_FLOAT, &g.gp.decoder.eos_penalty, -1e6, 1e6, "X", "-m, Dream/LLaDA: subtracted from the EOS logit"},
        {"quant", 0, OPT_STR, &g.quant, 0, 0, "q8", "-m, Dream/LLaDA: int8 projections"},
        {"shots", 0, OPT_INT, &g.prompt.shots, 0, 3, "N", "-m, MBPP: worked examples in the prompt, 0 or 3 (default 3)"},
        {"chat", 0, OPT_FLAG, &chat, 0, 0, "", "-m: instruction prompt as a chat message; code from the first ```python block (--prompt-format chat)"},
        {"prompt-format", 0, OPT_STR, &format_name, 0, 0, "NAME", "completion (default), chat, harness-instruct (lm-evaluation-harness's humaneval_instruct / mbpp_instruct)"},
        {"dump-prompts", 0, OPT_STR, &dump_path, 0, 0, "FILE", "-m: write each problem's prompt as the model gets it (JSON lines task_id, prompt) and stop"},
        {"system", 0, OPT_STR, &g.gp.system, 0, 0, "TEXT", "-m, chat or harness-instruct: system prompt"},
        {"sm", 0, OPT_FLAG, &g.sm_on, 0, 0, "", "-m: soft-masking on (default: as the model directory says)"},
        {"no-sm", 0, OPT_FLAG, &g.no_sm, 0, 0, "", "-m: soft-masking off"},
        THREADS_OPT(g.threads),
        {0},
    };
    cli_command cmd = {"eval code",
                       "Functional correctness (pass@k) of code samples, each run in a sandbox.",
                       "[--bench NAME] (--samples FILE | --canonical | -m MODEL) [options]", opts};
    const char *pos[1];
    int npos, rc = cli_parse(&cmd, argc, argv, pos, 0, &npos);
    if (rc) return rc < 0 ? 1 : 0;
    if ((samples_path != NULL) + canonical + (g.model != NULL) != 1) {
        fprintf(stderr, "smdlm eval code: give exactly one of --samples FILE, --canonical, -m MODEL\n");
        return 1;
    }
    if (g.adapter && !g.model) {
        fprintf(stderr, "smdlm eval code: --adapter applies to -m MODEL\n");
        return 1;
    }
    if (g.sm_on && g.no_sm) {
        fprintf(stderr, "smdlm eval code: --sm and --no-sm exclude each other\n");
        return 1;
    }
    if (base_only && test_field) {
        fprintf(stderr, "smdlm eval code: --base-only and --test-field exclude each other\n");
        return 1;
    }
    if (resume && !records_path) {
        fprintf(stderr, "smdlm eval code: --resume needs --records FILE (the records it continues)\n");
        return 1;
    }
    if (cli_seen(&cmd, "block-length")) /* a Dream model reads its own field (LLaDA's default is 32) */
        g.gp.decoder.dream_block_length = g.gp.decoder.block_length;
    if (dump_path && !g.model) {
        fprintf(stderr, "smdlm eval code: --dump-prompts needs -m MODEL (its tokenizer and chat template)\n");
        return 1;
    }
    if (chat && format_name && strcmp(format_name, "chat")) {
        fprintf(stderr, "smdlm eval code: --chat and --prompt-format %s exclude each other\n", format_name);
        return 1;
    }
    int ks[MAX_K], nk;
    code_bench bench;
    code_prompt_format format = chat ? CODE_FORMAT_CHAT : CODE_FORMAT_COMPLETION;
    if (parse_k(k_list, ks, &nk) || code_bench_parse(bench_name, &bench) ||
        (format_name && code_prompt_format_parse(format_name, &format)) || code_format_check(bench, format))
        return cli_fail("eval code");
    if (format == CODE_FORMAT_HARNESS && cli_seen(&cmd, "shots")) {
        fprintf(stderr, "smdlm eval code: --prompt-format harness-instruct has no worked examples (the reference runs --num_fewshot 0); leave out --shots\n");
        return 1;
    }
    if (format == CODE_FORMAT_HARNESS && base_only) {
        fprintf(stderr, "smdlm eval code: --prompt-format harness-instruct runs the record's test (no --base-only)\n");
        return 1;
    }
    /* the harness checks HumanEval+ with the record's test field */
    if (format == CODE_FORMAT_HARNESS) test_field = 1;
    int differential = (bench == CODE_HUMANEVAL_PLUS || bench == CODE_MBPP_PLUS) && !test_field;
    /* EvalPlus allows each input max(4 s, 4 × the reference's time): a whole task can need
     * tens of seconds (Mbpp/599's canonical solution takes ~20 s on a busy core) */
    cfg.timeout_s = differential && !cli_seen(&cmd, "timeout") ? 60.0 : timeout;
    /* EvalPlus gives its checker 4 GiB; ours also holds the expected outputs (Mbpp/255's
     * canonical output alone is ~1 GB) */
    cfg.mem_bytes = (size_t)(differential && !cli_seen(&cmd, "memory-mb") ? 4096 : mem_mb) << 20;
    if (access(cfg.python, X_OK)) {
        fprintf(stderr, "smdlm eval code: cannot run the interpreter '%s': %s\n", cfg.python, strerror(errno));
        return 1;
    }

    char *data_path = data ? sm_strdup(data) : default_data_path(bench);
    code_set set;
    code_samples smp = {0};
    run_outcome *out = NULL;
    int *index_in_task = NULL;
    char **unfit = NULL; /* -m: per problem, why its prompt does not fit the model (NULL: it fits) */
    prior_records prior = {0};
    FILE *rec = NULL;
    int status = 1;
    if (code_set_load(&set, bench, data_path, all_tasks)) {
        free(data_path);
        return cli_fail("eval code");
    }
    print_warnings(&set.warn, quiet);
    set.plus_mode = test_field ? CODE_PLUS_FIELD : base_only ? CODE_PLUS_BASE : CODE_PLUS_ALL;
    set.format = format;
    if (limit) code_set_truncate(&set, (size_t)limit);
    if (dump_path) {
        status = dump_prompts(&g, &set, dump_path) ? 1 : 0;
        goto done;
    }
    unfit = sm_calloc(set.n, sizeof *unfit);
    progress prog;
    progress_start(&prog, "smdlm eval code", quiet);
    if (resume && prior_load(&prior, records_path, &set)) goto done;
    if (samples_path) {
        if (code_samples_load(&smp, &set, samples_path)) goto done;
        print_warnings(&smp.warn, quiet);
        if (smp.n == 0) {
            SM_ERR("'%s' holds no usable sample", samples_path);
            goto done;
        }
    } else if (canonical) {
        code_samples_canonical(&smp, &set);
    } else if (generate_samples(&g, &set, &smp, unfit, &prog, &prior)) {
        goto done;
    }
    if (samples_out && code_samples_write(&smp, &set, samples_out)) goto done;

    /* what an earlier run finished (--resume) is kept: its records start the file */
    out = sm_calloc(smp.n, sizeof *out);
    index_in_task = sm_calloc(smp.n, sizeof(int));
    int *n_in = sm_calloc(set.n, sizeof(int));
    size_t kept = 0, unfit_samples = 0, unfit_problems = 0;
    for (size_t i = 0; i < smp.n; i++) {
        size_t p = smp.v[i].problem;
        index_in_task[i] = n_in[p]++;
        const prior_record *pr = prior_find(&prior, p, index_in_task[i]);
        if (unfit[p]) { /* never run: failed, with the reason */
            out[i] = (run_outcome){SBX_FAILED, 0.0, -1, "", 1};
            snprintf(out[i].reason, sizeof out[i].reason, "%s", unfit[p]);
            unfit_samples++;
        } else if (pr && !strcmp(pr->code, smp.v[i].completion)) {
            out[i] = pr->out, kept++;
        }
    }
    free(n_in);
    for (size_t p = 0; p < set.n; p++) unfit_problems += unfit[p] != NULL;
    if (resume && !quiet)
        fprintf(stderr, "smdlm eval code: resuming: %zu of %zu programs already run in %s\n", kept, smp.n,
                records_path);
    if (records_path) {
        char *tmp;
        FILE *f = sm_atomic_open(records_path, &tmp);
        for (size_t i = 0; f && i < smp.n; i++)
            if (out[i].done) {
                cJSON *r = record_json(&set, &smp, out, i, index_in_task[i]);
                print_line(f, r);
                cJSON_Delete(r);
            }
        if (!f || sm_atomic_commit(f, tmp, records_path, 1)) goto done;
        if (!(rec = fopen(records_path, "a"))) {
            SM_ERR("cannot write '%s': %s", records_path, strerror(errno));
            goto done;
        }
    }

    /* from here on a signal stops the runs and keeps what finished (the short probe cleans up) */
    cfg.stop = stop_signal;
    stop_signals_catch(NULL, 0, NULL);
    sbx_caps caps;
    sbx_probe(&cfg, &caps);
    char desc[512];
    sbx_caps_describe(&caps, &cfg, desc, sizeof desc);
    if (!quiet) fprintf(stderr, "smdlm eval code: sandbox: %s\n", desc);

    run_pool rp = {&set, &smp, index_in_task, &cfg, &caps, out, 0, kept + unfit_samples, PTHREAD_MUTEX_INITIALIZER,
                   &prog, rec, sm_time_sec()};
    run_all(&rp, jobs);
    double seconds = sm_time_sec() - rp.t0;
    if (rec) fclose(rec); /* the records are written again below, in sample order */
    rec = NULL;
    if (stop_signal()) {
        status = stop_after_signal(&set, &smp, out, records_path, json);
        goto done;
    }

    /* per problem: n samples, c passed */
    int *n_of = sm_calloc(set.n, sizeof(int)), *c_of = sm_calloc(set.n, sizeof(int));
    size_t counts[SBX_ERROR + 1] = {0};
    char *rec_tmp = NULL;
    if (records_path && !(rec = sm_atomic_open(records_path, &rec_tmp))) {
        free(n_of), free(c_of);
        goto done;
    }
    for (size_t i = 0; i < smp.n; i++) {
        size_t p = smp.v[i].problem;
        counts[out[i].status]++;
        cJSON *r = record_json(&set, &smp, out, i, n_of[p]);
        if (rec) print_line(rec, r);
        if (json) print_line(stdout, r);
        cJSON_Delete(r);
        n_of[p]++;
        c_of[p] += out[i].status == SBX_PASSED;
    }
    int rec_ok = !rec || sm_atomic_commit(rec, rec_tmp, records_path, 1) == 0;
    rec = NULL;
    int min_n = INT_MAX;
    size_t evaluated = 0, passed = counts[SBX_PASSED];
    for (size_t p = 0; p < set.n; p++)
        if (n_of[p]) {
            evaluated++;
            if (n_of[p] < min_n) min_n = n_of[p];
        }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "bench", code_bench_name(bench));
    cJSON_AddStringToObject(o, "data", data_path);
    cJSON_AddStringToObject(o, "source", samples_path ? samples_path : canonical ? "canonical" : g.model);
    if (g.adapter) cJSON_AddStringToObject(o, "adapter", g.adapter);
    cJSON_AddStringToObject(o, "tests", !differential ? "asserts" : base_only ? "evalplus base" : "evalplus base+plus");
    cJSON_AddStringToObject(o, "prompt_format", code_prompt_format_name(format));
    cJSON_AddNumberToObject(o, "problems", (double)set.n);
    cJSON_AddNumberToObject(o, "problems_evaluated", (double)evaluated);
    cJSON_AddNumberToObject(o, "samples", (double)smp.n);
    cJSON_AddNumberToObject(o, "passed", (double)passed);
    cJSON_AddNumberToObject(o, "failed", (double)counts[SBX_FAILED]);
    cJSON_AddNumberToObject(o, "timed_out", (double)counts[SBX_TIMEOUT]);
    cJSON_AddNumberToObject(o, "output_limit", (double)counts[SBX_OUTPUT_LIMIT]);
    cJSON_AddNumberToObject(o, "sandbox_errors", (double)counts[SBX_ERROR]);
    cJSON_AddNumberToObject(o, "skipped_records", (double)(set.warn.n + smp.warn.n));
    cJSON *pk = cJSON_AddObjectToObject(o, "pass_at_k");
    char line[512];
    int at = snprintf(line, sizeof line, "%s: %zu/%zu samples passed on %zu/%zu problems", code_bench_name(bench),
                      passed, smp.n, evaluated, set.n);
    for (int j = 0; j < nk; j++) {
        if (ks[j] > min_n) continue; /* as human-eval: only k that every problem allows */
        double sum = 0.0;
        for (size_t p = 0; p < set.n; p++)
            if (n_of[p]) sum += code_pass_at_k(n_of[p], c_of[p], ks[j]);
        char key[32];
        snprintf(key, sizeof key, "%d", ks[j]);
        cJSON_AddNumberToObject(pk, key, sum / (double)evaluated);
        if (at > 0 && (size_t)at < sizeof line)
            at += snprintf(line + at, sizeof line - (size_t)at, ", pass@%d %.4f", ks[j], sum / (double)evaluated);
    }
    if (unfit_problems && at > 0 && (size_t)at < sizeof line)
        snprintf(line + at, sizeof line - (size_t)at, "; %zu problems counted as failed: prompt longer than the context",
                 unfit_problems);
    if (g.model) {
        cJSON *gj = cJSON_AddObjectToObject(o, "generation");
        cJSON_AddNumberToObject(gj, "n", g.n);
        cJSON_AddNumberToObject(gj, "max_new_tokens", g.gen_len);
        cJSON_AddNumberToObject(gj, "steps", g.gp.steps);
        cJSON_AddNumberToObject(gj, "seed", (double)g.seed);
        cJSON_AddStringToObject(gj, "style", code_prompt_format_name(format));
        if (!code_bench_is_humaneval(bench) && format != CODE_FORMAT_HARNESS)
            cJSON_AddNumberToObject(gj, "shots", g.prompt.shots);
        cJSON_AddStringToObject(gj, "soft_masking", g.no_sm ? "off" : g.sm_on ? "on" : "model default");
        cJSON_AddNumberToObject(gj, "problems_prompt_too_long", (double)unfit_problems);
    }
    cJSON_AddNumberToObject(o, "seconds", (double)(long)(seconds * 100) / 100.0);
    cJSON_AddNumberToObject(o, "jobs", jobs);
    add_caps(o, &caps, &cfg);
    free(n_of), free(c_of);
    int ok = rec_ok;
    if (json) print_line(stdout, o);
    else printf("%s (%.1f s)\n", line, seconds);
    if (out_path) {
        char *text = cJSON_Print(o);
        ok = ok && text && sm_write_file_atomic(out_path, text, strlen(text)) == 0;
        free(text);
    }
    cJSON_Delete(o);
    if (!ok) {
        SM_ERR("cannot write the results");
        goto done;
    }
    if (evaluated < set.n && !quiet)
        fprintf(stderr, "smdlm eval code: warning: %zu of %zu problems have no sample; pass@k is over the %zu that do\n",
                set.n - evaluated, set.n, evaluated);
    if (counts[SBX_ERROR]) {
        SM_ERR("%zu programs could not be run in the sandbox (see the records)", counts[SBX_ERROR]);
        goto done;
    }
    status = 0;
done:
    if (status == 1) cli_fail("eval code");
    if (rec) fclose(rec);
    prior_free(&prior);
    for (size_t p = 0; unfit && p < set.n; p++) free(unfit[p]);
    free(unfit);
    free(index_in_task);
    free(out);
    free(data_path);
    code_samples_free(&smp);
    code_set_free(&set);
    return status;
}
