/* corpus.h — the training inputs that `smdlm data prepare` (data_prepare.c) and
 * `smdlm tokenizer train` (bpe_train.c) read: which files the input arguments name, and the
 * pieces both use to read documents from them.
 *
 * Usage:
 *     static int on_file(void *ctx, const char *path) { ... read path ...; return 0; }
 *     if (corpus_walk(inputs, ninputs, "*.txt", NULL, on_file, ctx) != 0)
 *         die(smdlm_last_error());
 *
 * Inputs, in the order given:
 *   - a directory is walked recursively: entries sorted by name (strcmp), names starting with
 *     '.' skipped, symbolic links to directories not followed (a link to a regular file is
 *     taken); its regular files whose name matches `glob` (fnmatch, no flags; a pattern
 *     containing '/' is matched against the path below the input directory instead) are
 *     taken. A directory without such files is an error ("no files matching");
 *   - a regular file is taken whatever its name;
 *   - anything else (missing, a device) is an error.
 * What a file holds is the caller's business; by convention a name ending in ".jsonl" is a
 * JSONL file (one JSON object per line, a string field of each line one document, blank
 * lines ignored) and any other file is one document. Documents must be UTF-8 without NUL.
 *
 * Errors are recorded with SM_ERR (smdlm_last_error()); every function returns 0 or -1.
 */
#ifndef SMDLM_CORPUS_H
#define SMDLM_CORPUS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Called once per file taken, in order; a non-zero return stops the walk and is returned
 * (the callback records its own error). */
typedef int (*corpus_file_fn)(void *ctx, const char *path);

/* Enumerates the files of inputs[0..ninputs) as described above, calling fn on each as it is
 * found (a directory's files are visited before the walk goes on, so errors from fn come in
 * input order). skip_dir (NULL: none) names a directory that the walk does not enter when
 * it appears inside an input directory (the same directory by device and inode; it need not
 * exist). */
int corpus_walk(const char *const *inputs, int ninputs, const char *glob, const char *skip_dir,
                corpus_file_fn fn, void *ctx);

/* 1 when path names a JSONL file (ends in ".jsonl"). */
int corpus_is_jsonl(const char *path);

/* 1 when s[0..n) holds only spaces, tabs and '\r' (a blank JSONL line). */
int corpus_is_blank(const char *s, size_t n);

/* Offset of the first byte of s[0..n) that is NUL (*is_nul = 1) or not part of valid UTF-8
 * (*is_nul = 0), or n when the text is clean (the check tok_encode applies, plus NUL). */
size_t corpus_check_text(const char *s, size_t n, int *is_nul);

/* Lines of a file through a bounded buffer (1 MiB, doubled up to max_line). */
typedef struct {
    FILE *f;
    const char *path;
    size_t max_line;
    char *buf;
    size_t cap, start, end;
    int eof;
    uint64_t consumed; /* bytes of the file returned so far, newlines included */
} corpus_lines;

/* Opens path ("cannot open" error). max_line (a power of two ≥ 1 MiB) bounds the buffer: a
 * line of max_line − 1 bytes or more is an error naming path and the line number. */
int corpus_lines_open(corpus_lines *r, const char *path, size_t max_line);
/* The next line, without its '\n', NUL-terminated in place (it may hold NUL bytes: *len is
 * its length); valid until the next call. lineno names the line in errors. Returns 1 for a
 * line, 0 at the end of the file, -1 on a read error or a line longer than max_line. */
int corpus_lines_next(corpus_lines *r, long lineno, char **line, size_t *len);
void corpus_lines_close(corpus_lines *r);

#endif
