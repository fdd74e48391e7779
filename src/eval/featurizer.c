/* featurizer.c — MAUVE's featurizer (last-token final hidden state of a causal model) and the
 * JSON-lines text reader. */
#include "eval/featurizer.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "base/jsonutil.h"
#include "base/util.h"

int featurizer_load(featurizer *f, const char *dir, int max_len, int threads) {
    memset(f, 0, sizeof *f);
    if (max_len < 1) return SM_ERR("maximum text length %d < 1", max_len);
    if (evaluator_load(&f->ev, dir, threads)) return sm_wrap_error("featurizer %s", dir);
    f->max_len = max_len < f->ev.context ? max_len : f->ev.context;
    f->dim = f->ev.kind == EVALUATOR_GPT2 ? f->ev.gpt2.cfg.n_embd : f->ev.dit.cfg.hidden;
    return 0;
}

void featurizer_free(featurizer *f) {
    evaluator_free(&f->ev);
    memset(f, 0, sizeof *f);
}

int featurize_ids(featurizer *f, const int32_t *ids, size_t n, float *out) {
    if (n < 1) return SM_ERR("no tokens to featurize");
    const int T = n < (size_t)f->max_len ? (int)n : f->max_len;
    const int32_t last = T - 1;
    evaluator *e = &f->ev;
    for (int i = 0; i < T; i++)
        if (ids[i] < 0 || ids[i] >= e->vocab_size)
            return SM_ERR("token id %d at position %d is outside the featurizer's vocabulary "
                          "[0, %d)", ids[i], i, e->vocab_size);
    if (e->kind == EVALUATOR_GPT2) return gpt2_hidden(&e->gpt2, ids, 1, T, &last, 1, out);
    if (e->acts.T != T) { /* DiT activations are sized for one sequence length */
        dit_acts_free(&e->acts);
        if (dit_acts_alloc(&e->acts, &e->dit.cfg, 1, T, e->threads)) return -1;
    }
    float sigma = 0.0f; /* causal models carry no time conditioning */
    dit_embed_ids(&e->dit, &e->acts, ids, 1, T);
    dit_forward_hidden(&e->dit, &e->acts, &sigma, 1, T);
    memcpy(out, e->acts.h + (size_t)last * f->dim, sizeof(float) * (size_t)f->dim);
    return 0;
}

int featurize_text(featurizer *f, const char *text, size_t len, float *out) {
    int32_t *ids = NULL;
    size_t n = 0;
    if (tok_encode(f->ev.tok, text, len, &ids, &n)) return -1;
    int rc = n ? featurize_ids(f, ids, n, out) : 1;
    free(ids);
    return rc;
}

/* ---- JSON lines -------------------------------------------------------------------------- */

int jsonl_for_each_text(const char *path, const char *field, FILE *warn, jsonl_text_fn fn,
                        void *ctx, jsonl_stats *st) {
    memset(st, 0, sizeof *st);
    FILE *fp = sm_fopen_regular(path);
    if (!fp) return -1;
    char *line = NULL, what[600];
    size_t cap = 0;
    ssize_t got;
    long lineno = 0;
    int rc = 0;
    while (rc == 0 && (got = getline(&line, &cap, fp)) >= 0) {
        lineno++;
        if ((size_t)got != strlen(line)) {
            rc = SM_ERR("%s:%ld: NUL byte in the line", path, lineno);
            break;
        }
        if (line[strspn(line, " \t\r\n")] == 0) continue; /* blank line */
        st->lines++;
        snprintf(what, sizeof what, "%s:%ld", path, lineno);
        cJSON *obj = json_parse_object(line, what);
        const char *text = obj ? json_get_string(obj, field) : NULL;
        if (!text) {
            if (obj) SM_ERR("%s: missing string field \"%s\"", what, field);
            if (warn) fprintf(warn, "smdlm: %s (line skipped)\n", smdlm_last_error());
            st->malformed++;
        } else if (!*text) {
            if (warn) fprintf(warn, "smdlm: %s: empty text (skipped)\n", what);
            st->empty++;
        } else {
            int r = fn(ctx, text, strlen(text), lineno);
            if (r > 0) {
                if (warn) fprintf(warn, "smdlm: %s: no tokens (skipped)\n", what);
                st->empty++;
            } else if (r < 0) {
                rc = sm_wrap_error("%s", what);
            } else {
                st->texts++;
            }
        }
        cJSON_Delete(obj);
    }
    if (rc == 0 && ferror(fp)) rc = SM_ERR("reading '%s': %s", path, strerror(errno));
    free(line);
    fclose(fp);
    return rc;
}

typedef struct {
    featurizer *f;
    float *feat;
    int n, cap;
    progress *prog;
    double t0;
} feat_acc;

/* jsonl_text_fn: 1 = no tokens, −1 = error */
static int feat_one(void *ctx, const char *text, size_t len, long lineno) {
    feat_acc *a = ctx;
    (void)lineno;
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 64;
        a->feat = sm_realloc(a->feat, sizeof(float) * (size_t)a->cap * a->f->dim);
    }
    int rc = featurize_text(a->f, text, len, a->feat + (size_t)a->n * a->f->dim);
    if (rc) return rc;
    a->n++;
    progress_report(a->prog, 0, 0, "featurized %d texts (%.1f/s)", a->n, a->n / (sm_time_sec() - a->t0 + 1e-9));
    return 0;
}

int featurize_jsonl(featurizer *f, const char *path, const char *field, FILE *warn,
                    progress *prog, float **out, int *n, jsonl_stats *st) {
    feat_acc a = {.f = f, .prog = prog, .t0 = sm_time_sec()};
    int rc = jsonl_for_each_text(path, field, warn, feat_one, &a, st);
    progress_clear(prog);
    if (rc) {
        free(a.feat);
        return rc;
    }
    *out = a.feat;
    *n = a.n;
    return 0;
}
