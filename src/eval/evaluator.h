/* evaluator.h — a causal language model that scores text: Hugging Face GPT-2 (the paper's
 * evaluator, GPT-2 Large) or the project's own causal DiT (`smdlm train --objective ar`),
 * the natural evaluator on the project's own data. Chosen by config.json's model_type
 * ("gpt2", or "mdlm" with "causal": true).
 */
#ifndef SMDLM_EVALUATOR_H
#define SMDLM_EVALUATOR_H

#include <stddef.h>
#include <stdint.h>

#include "models/dit.h"
#include "models/gpt2.h"
#include "text/tokenizer.h"

typedef enum { EVALUATOR_GPT2 = 0, EVALUATOR_DIT } evaluator_kind;

typedef struct {
    evaluator_kind kind;
    gpt2_model gpt2;
    dit_model dit;
    dit_acts acts;         /* causal DiT scratch for the last sequence length */
    smdlm_tokenizer *tok;
    int vocab_size;
    int context;           /* longest sequence one forward takes */
    int eos_id;            /* −1 when the model has none */
    int threads;
} evaluator;

/* Loads DIR (config.json, weights, tokenizer). Errors name the file and the reason. */
int evaluator_load(evaluator *e, const char *dir, int threads);
void evaluator_free(evaluator *e);

/* logits[T, V] of one sequence ids[0..T) (T ≤ context; ids < vocab_size). */
int evaluator_logits(evaluator *e, const int32_t *ids, int T, float *logits);

/* Summed next-token NLL (nats) of ids[0..n), scored as MDLM's compute_generative_perplexity:
 * the sequence is cut into chunks of ctx_len tokens (ctx_len ≤ 0 or > context: the
 * evaluator's context), each chunk scored on its own (its first token is never predicted);
 * a target counts when it is not EOS or when it is the chunk's first EOS (with eos < 0 every
 * target counts). Adds to *nll_sum and *count. */
int evaluator_score(evaluator *e, const int32_t *ids, size_t n, int ctx_len, int eos,
                    double *nll_sum, long *count);

/* Unigram entropy (nats) of the token counts of ids[0..n) (duo metrics.py record_entropy). */
double unigram_entropy(const int32_t *ids, size_t n);

#endif
