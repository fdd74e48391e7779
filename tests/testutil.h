/* testutil.h — helpers shared by the C tests: tolerance checks that print the worst element,
 * fixture loading. Every comparison returns non-zero on mismatch so cmocka fails the test. */
#ifndef SMDLM_TESTUTIL_H
#define SMDLM_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#ifndef FIXTURES_DIR
#define FIXTURES_DIR "tests/fixtures"
#endif

/* |got − ref| ≤ atol + rtol·|ref| elementwise; prints the worst element (by excess over the
 * bound) and returns the number of violations. */
size_t tu_compare_f32(const char *what, const float *got, const float *ref, size_t n,
                      float atol, float rtol);
/* Exact comparison of integer arrays; prints the first mismatch. */
size_t tu_compare_i32(const char *what, const int32_t *got, const int32_t *ref, size_t n);

/* Load a fixture .npy as float32 / int32 (converted from i8 if needed); aborts the test
 * (fail()) when the file is missing. Caller frees. */
float *tu_load_f32(const char *path, size_t *n);
int32_t *tu_load_i32(const char *path, size_t *n, int64_t *shape, int *ndim);

/* rc must be an error and smdlm_last_error() must contain every word of the NULL-terminated
 * list; prints the message. */
void tu_expect_error(int rc, const char *what, const char *const *words);
/* Same for a bad file: the message must also name the file, and the words are looked for
 * with the file name blanked out (names such as st_hole.safetensors contain the words). */
void tu_expect_file_error(int rc, const char *file, const char *const *words);

/* Runs `$SMDLM ARGS` (ARGS a shell fragment, standard input /dev/null unless it redirects it;
 * $SMDLM defaults to build/smdlm) and captures
 * stdout + stderr into *out (malloc'ed; out may be NULL). Returns the exit status, or
 * 1000 + the signal number when the program crashed. */
int tu_run(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Each of the n argument strings (smdlm arguments; string i at args + i·stride) must exit
 * with status 1 and print a message containing word[i] — never crash. Prints each. */
void tu_expect_cli_errors(const char *args, size_t stride, const char *const *word, int n);

/* A fresh temporary directory /tmp/smdlm-TAG-XXXXXX written into dir[n] (a group setup);
 * tu_tmpdir_remove deletes it with its contents (the teardown). 0 or -1. */
int tu_tmpdir_make(char *dir, size_t n, const char *tag);
int tu_tmpdir_remove(const char *dir);

/* Runs the cmocka group once per code path from the active one down (avx512, avx2, generic: each
 * forced with cpu_isa_force, so every loop of compute/rows.h, the linear layers' tile kernels
 * and the optimiser take that path), named "NAME avx2" etc.; returns the number of failures. */
int tu_run_group_per_isa(const char *name, const struct CMUnitTest *tests, size_t n);
#define TU_RUN_PER_ISA(name, tests) tu_run_group_per_isa(name, tests, sizeof(tests) / sizeof *(tests))

/* Path inside the fixture directory, in a static buffer (not thread-safe). */
const char *tu_fixture(const char *fmt, ...);

/* A model directory at dir (created) of symbolic links to the fixture model's *.json and
 * *.safetensors and to every file of the fixture tokenizer (names inside tests/fixtures). */
void tu_link_model_dir(const char *dir, const char *model, const char *tokenizer);

#endif
