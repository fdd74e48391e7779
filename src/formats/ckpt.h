/* ckpt.h — PyTorch checkpoints (torch.save's zip format: PREFIX/data.pkl + PREFIX/data/KEY per
 * storage; Lightning's .ckpt is one) read without Python, through a restricted unpickler.
 *
 * The unpickler is a stack machine that builds values; it calls nothing. It knows the opcodes
 * of pickle protocols 2–4 that torch.save emits for plain data (None, bools, ints, floats,
 * strings, bytes, tuples, lists, dicts, memo, marks) and exactly these globals:
 *   collections.OrderedDict            → a dict
 *   torch._utils._rebuild_tensor_v2    → a tensor view of a storage
 *   torch._utils._rebuild_parameter    → the tensor itself
 *   torch.{Float,Half,BFloat16,Double,Long,Int,Short,Char,Byte,Bool}Storage
 *                                      → a dtype, in a ('storage', type, key, location, numel)
 *                                        persistent id
 * Any other global (os.system, builtins.eval, an OmegaConf class, …), any other opcode, a
 * persistent id of another shape and anything that does not fit the stack is an error naming it
 * and the byte offset in data.pkl.
 */
#ifndef SMDLM_CKPT_H
#define SMDLM_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "formats/safetensors.h"

typedef enum {
    CK_NONE = 0,
    CK_BOOL,
    CK_INT,
    CK_FLOAT,
    CK_STR,    /* s, n bytes (UTF-8 as pickled) */
    CK_BYTES,
    CK_TUPLE,  /* items */
    CK_LIST,
    CK_DICT,   /* items: key, value, key, value, … in insertion order */
    CK_TENSOR,
    CK_STORAGE,
    CK_GLOBAL, /* an allowlisted callable (internal) */
    CK_MARK,   /* internal */
} ck_type;

#define CK_MAX_DIMS 8

typedef struct ck_value ck_value;
struct ck_value {
    ck_type type;
    int64_t i;           /* CK_BOOL, CK_INT; CK_GLOBAL: which */
    double f;
    char *s;             /* CK_STR, CK_BYTES (NUL-terminated copy), CK_STORAGE: its key */
    size_t n;            /* length of s; items of a container */
    ck_value **items;
    size_t cap;
    /* CK_STORAGE */
    st_dtype dtype;
    int64_t numel;
    /* CK_TENSOR */
    ck_value *storage;
    int64_t offset, ndim, shape[CK_MAX_DIMS], stride[CK_MAX_DIMS];
};

/* Every value of one load lives in the arena and goes with it. */
typedef struct {
    ck_value **vals;
    size_t n, cap;
} ck_arena;

/* Unpickles n bytes (data.pkl) into *root. 0, or −1 with an error naming the offset and what was
 * refused. The entry a libFuzzer target calls. */
int ck_unpickle(const uint8_t *data, size_t n, ck_arena *arena, ck_value **root);
void ck_arena_free(ck_arena *arena);

/* A checkpoint: its zip archive and the unpickled root. */
typedef struct {
    void *zip;           /* libzip's zip_t */
    char *prefix;        /* "archive/" or the file's own folder name */
    ck_arena arena;
    ck_value *root;
    char *path;
} ck_file;

/* Opens a torch.save zip file (a Lightning .ckpt) and unpickles its data.pkl; the old
 * pre-zip format is refused by name. */
int ck_open(ck_file *f, const char *path);
void ck_close(ck_file *f);

/* The value of key in a dict (NULL when absent or not a dict). */
const ck_value *ck_dict_get(const ck_value *dict, const char *key);

/* The contiguous bytes of a tensor in its dtype (numel · size), read from the archive: NULL
 * with an error when the storage entry is missing or too small for the view. *numel is set. */
void *ck_tensor_data(const ck_file *f, const ck_value *t, size_t *numel);

#endif
