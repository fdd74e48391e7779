/* safetensors.h — hardened reader (mmap, single file or sharded index) and atomic writer.
 *
 * Validation follows docs/DESIGN.md §6 and the reference reader: header length ≤ 100 MB and ≤ file
 * size − 8, UTF-8 JSON object, `__metadata__` string→string only, dtype allow-list, shape
 * entries non-negative, overflow-checked sizes, offsets sorted contiguous/non-overlapping and
 * exactly covering the data section, no duplicate names. Errors name file, tensor and reason.
 */
#ifndef SMDLM_SAFETENSORS_H
#define SMDLM_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ST_MAX_DIMS 8

typedef enum {
    ST_F32 = 0,
    ST_F16,
    ST_BF16,
    ST_F64,
    ST_I64,
    ST_I32,
    ST_I16,
    ST_I8,
    ST_U8,
    ST_BOOL,
} st_dtype;

typedef struct {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t numel;
    size_t nbytes;
    const uint8_t *data; /* points into the read-only mapping; may be unaligned */
    int file_index;      /* which shard holds it */
} st_tensor;

typedef struct {
    char *path;
    void *map;
    size_t map_size;
} st_file;

typedef struct {
    st_tensor *tensors; /* sorted by name */
    int ntensors;
    st_file *files;
    int nfiles;
    char **meta;        /* __metadata__ as key, value, key, value, ... */
    int nmeta;          /* number of pairs */
} st_archive;

/* One file. On error returns -1 (smdlm_last_error names file, tensor, reason). */
int st_open_file(st_archive *a, const char *path);
/* A model directory: model.safetensors, or model.safetensors.index.json + its shards. */
int st_open_dir(st_archive *a, const char *dir);
void st_close(st_archive *a);

const st_tensor *st_find(const st_archive *a, const char *name);
/* A __metadata__ value of the (first) file, or NULL. */
const char *st_metadata(const st_archive *a, const char *key);
size_t st_dtype_size(st_dtype dt);
const char *st_dtype_name(st_dtype dt);

/* Convert a floating tensor (F32/F16/BF16/F64) to fp32 into out[numel]. */
int st_tensor_to_f32(const st_tensor *t, float *out);
/* Scans every floating tensor (in name order) for NaN and infinities (F64: values beyond the
 * float range too); −1 with an error naming the file, the first bad tensor, the value and its
 * index. Reads every byte of the weights: an opt-in load check (--check-weights). */
int st_check_finite(const st_archive *a);

/* Expected-tensor registry: every entry must exist with exactly this shape (and a floating
 * dtype, or I8 where int8 is set). `unknown_ok` lists name suffixes that may appear in the file
 * without being expected (e.g. "rotary_emb.inv_freq"); any other unexpected tensor is an
 * error. */
typedef struct {
    const char *name;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    bool int8; /* an I8 tensor (saved q8 weights) */
} st_expect;
int st_check_expected(const st_archive *a, const st_expect *expected, int n,
                      const char *const *unknown_ok, int n_unknown_ok);

/* fp32 views of n floating tensors (checked beforehand with st_check_expected): F32 data
 * aligned to 4 bytes is used in place (out[i] points into the mapping); the others are
 * converted into one allocation returned in *owned (NULL when nothing needed converting;
 * released with free). */
int st_bind_f32(const st_archive *a, const char *const *names, int n, const float **out,
                float **owned);
/* st_check_expected, then st_bind_f32 of the same tensors: views[i] is expected[i]'s. */
int st_load_f32(const st_archive *a, const st_expect *expected, int n,
                const char *const *unknown_ok, int n_unknown_ok, const float **views,
                float **owned);

/* Writer: tensors are laid out in the order given, header padded to 8 bytes, written to a
 * temporary file, fsync'ed and renamed. `metadata` is NULL or NULL-terminated key/value
 * pairs. */
typedef struct {
    const char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data;
} st_write_entry;
int st_write(const char *path, const st_write_entry *entries, int n,
             const char *const *metadata);

/* bf16/f16 scalar conversions (round-to-nearest-even for f32 → bf16). */
float st_bf16_to_f32(uint16_t h);
uint16_t st_f32_to_bf16(float f);
float st_f16_to_f32(uint16_t h);

#endif
