/* evaluator.c — causal scoring of text samples with GPT-2 or the project's causal DiT. */
#include "eval/evaluator.h"

#include <math.h>
#include <string.h>

#include "compute/kernels.h"
#include "models/model.h"
#include "base/util.h"

/* config.json's model_type decides: "gpt2", else a DiT that must be the causal variant. */
int evaluator_load(evaluator *e, const char *dir, int threads) {
    memset(e, 0, sizeof *e);
    e->threads = threads;
    char type[32];
    if (model_dir_type(dir, type, sizeof type)) return -1;
    if (!strcmp(type, "gpt2")) {
        e->kind = EVALUATOR_GPT2;
        if (gpt2_load(&e->gpt2, dir)) return -1;
        e->vocab_size = e->gpt2.cfg.vocab_size;
        e->context = e->gpt2.cfg.n_positions;
        e->eos_id = e->gpt2.cfg.eos_id;
    } else {
        dit_config cfg;
        if (model_dir_read_config(&cfg, dir)) return -1;
        if (!cfg.causal) {
            SM_ERR("%s: an evaluator must be causal (GPT-2, or a DiT trained with --objective ar); "
                   "this is a masked diffusion model", dir);
            return -1;
        }
        e->kind = EVALUATOR_DIT;
        if (dit_model_load(&e->dit, &cfg, dir)) return -1;
        e->vocab_size = cfg.vocab_size;
        e->context = cfg.model_length;
        e->eos_id = -1;
    }
    if (tok_load_dir(&e->tok, dir)) {
        sm_wrap_error("the evaluator's tokenizer");
        evaluator_free(e);
        return -1;
    }
    if (tok_vocab_size(e->tok) > e->vocab_size) {
        SM_ERR("%s: the tokenizer has %d ids but the evaluator only %d", dir,
               tok_vocab_size(e->tok), e->vocab_size);
        evaluator_free(e);
        return -1;
    }
    if (e->eos_id < 0) e->eos_id = tok_str_to_id(e->tok, "<|endoftext|>");
    return 0;
}

void evaluator_free(evaluator *e) {
    if (e->kind == EVALUATOR_GPT2) gpt2_free(&e->gpt2);
    else {
        dit_acts_free(&e->acts);
        dit_model_free(&e->dit);
    }
    tok_free(e->tok);
    memset(e, 0, sizeof *e);
}

int evaluator_logits(evaluator *e, const int32_t *ids, int T, float *logits) {
    if (T < 1 || T > e->context) {
        SM_ERR("sequence of %d tokens: the evaluator takes 1 to %d", T, e->context);
        return -1;
    }
    for (int i = 0; i < T; i++)
        if (ids[i] < 0 || ids[i] >= e->vocab_size) {
            SM_ERR("token id %d at position %d is outside the evaluator's vocabulary [0, %d)",
                   ids[i], i, e->vocab_size);
            return -1;
        }
    if (e->kind == EVALUATOR_GPT2) return gpt2_forward(&e->gpt2, ids, 1, T, logits);
    float sigma = 0.0f; /* causal models carry no time conditioning */
    if (e->acts.T != T) { /* DiT activations are sized for one sequence length */
        dit_acts_free(&e->acts);
        if (dit_acts_alloc(&e->acts, &e->dit.cfg, 1, T, e->threads)) return -1;
    }
    dit_forward(&e->dit, &e->acts, ids, &sigma, 1, T, logits);
    return 0;
}

int evaluator_score(evaluator *e, const int32_t *ids, size_t n, int ctx_len, int eos,
                    double *nll_sum, long *count) {
    const int P = e->context, V = e->vocab_size;
    const int C = ctx_len > 0 && ctx_len < P ? ctx_len : P;
    float *logits = NULL;
    const size_t rows = n < (size_t)C ? n : (size_t)C;
    if (SM_CHECK_MEMORY(sm_size_mul(rows * sizeof(float), (size_t)V), "the logits of %zu positions "
                        "over %d tokens", rows, V))
        return -1;
    if (n > 1) logits = sm_malloc(sizeof(float) * rows * (size_t)V);
    int rc = 0;
    for (size_t s = 0; s < n && rc == 0; s += (size_t)C) {
        int L = (int)(n - s < (size_t)C ? n - s : (size_t)C);
        if (L < 2) break; /* a one-token chunk predicts nothing */
        if ((rc = evaluator_logits(e, ids + s, L, logits))) break;
        int eos_seen = eos >= 0 && ids[s] == eos; /* the reference's cumsum includes position 0 */
        for (int j = 0; j + 1 < L; j++) {
            int32_t tgt = ids[s + (size_t)j + 1];
            int is_eos = eos >= 0 && tgt == eos;
            eos_seen += is_eos;
            /* counted: a non-EOS target, or the chunk's first EOS (cumsum == 1) */
            if (is_eos && eos_seen != 1) continue;
            float *row = logits + (size_t)j * V;
            if (log_softmax_row(row, V)) {
                rc = SM_ERR("the evaluator's prediction of token %zu is NaN or infinite (its "
                            "weights hold non-finite values, or its activations overflow)",
                            s + (size_t)j + 1);
                break;
            }
            *nll_sum -= (double)row[tgt];
            (*count)++;
        }
    }
    free(logits);
    return rc;
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

double unigram_entropy(const int32_t *ids, size_t n) {
    if (n == 0) return 0.0;
    int32_t *s = sm_malloc(sizeof *s * n);
    memcpy(s, ids, sizeof *s * n);
    qsort(s, n, sizeof *s, cmp_i32);
    double h = 0.0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && s[j] == s[i]) j++;
        double p = (double)(j - i) / (double)n;
        h -= p * log(p);
        i = j;
    }
    free(s);
    return h;
}
