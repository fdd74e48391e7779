/* featurizer.h — text → feature vectors for MAUVE: the final hidden state at the last token of
 * each text under a causal model (krishnap25/mauve featurize_tokens_from_model: GPT-2's
 * hidden_states[-1], i.e. after ln_f), and a JSON-lines reader of texts.
 *
 * The featurizer is an evaluator directory (evaluator.h): Hugging Face GPT-2 (the reference
 * uses gpt2-large) or the project's causal DiT, whose feature is the input of its output
 * linear (after the final norm and modulation). Texts are tokenised with the model's own
 * tokenizer and cut to their first max_len tokens (and the model's context), one unpadded
 * forward each. Not thread-safe: a featurizer owns its model's workspace.
 */
#ifndef SMDLM_FEATURIZER_H
#define SMDLM_FEATURIZER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/progress.h"
#include "eval/evaluator.h"

typedef struct {
    evaluator ev;
    int max_len; /* tokens kept per text: min(--max-len, the model's context) */
    int dim;     /* feature dimension (hidden size) */
} featurizer;

int featurizer_load(featurizer *f, const char *dir, int max_len, int threads);
void featurizer_free(featurizer *f);

/* out[dim] for ids[0..n) (n ≥ 1; only the first max_len are used). */
int featurize_ids(featurizer *f, const int32_t *ids, size_t n, float *out);
/* out[dim] for a text; returns 1 (nothing written) when it has no tokens. */
int featurize_text(featurizer *f, const char *text, size_t len, float *out);

/* Counts of a JSON-lines pass. */
typedef struct {
    long lines;     /* non-blank lines */
    long texts;     /* texts handed to the callback */
    long malformed; /* lines that are not an object with a string `field` (skipped) */
    long empty;     /* empty texts (skipped, as the reference drops them) */
} jsonl_stats;

/* Calls fn(ctx, text, len, lineno) for the string `field` of every line of path (blank
 * lines ignored). Malformed lines and empty texts are counted, reported on warn (may be
 * NULL) with file:line, and skipped; a non-zero return of fn stops the pass with -1. Errors:
 * the file cannot be read, or a line holds a NUL byte. */
typedef int (*jsonl_text_fn)(void *ctx, const char *text, size_t len, long lineno);
int jsonl_for_each_text(const char *path, const char *field, FILE *warn, jsonl_text_fn fn,
                        void *ctx, jsonl_stats *st);

/* Features of every text of a JSON-lines file: *out malloc'ed [*n, f->dim]. Texts that
 * tokenise to nothing count as empty. prog (may be NULL) gets a running count. */
int featurize_jsonl(featurizer *f, const char *path, const char *field, FILE *warn,
                    progress *prog, float **out, int *n, jsonl_stats *st);

#endif
