/* ckpt.c — see ckpt.h. Opcode names and encodings are those of CPython's pickletools. */
#include "formats/ckpt.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zip.h>

#include "base/util.h"

#define MEMO_MAX (1u << 20)    /* largest memo index accepted */
#define PICKLE_MAX ((size_t)1 << 30)

enum { G_ORDERED_DICT = 1, G_REBUILD_TENSOR, G_REBUILD_PARAMETER, G_STORAGE };

static const struct {
    const char *module, *name;
    int kind;
    st_dtype dtype;
} k_globals[] = {
    {"collections", "OrderedDict", G_ORDERED_DICT, ST_F32},
    {"torch._utils", "_rebuild_tensor_v2", G_REBUILD_TENSOR, ST_F32},
    {"torch._utils", "_rebuild_parameter", G_REBUILD_PARAMETER, ST_F32},
    {"torch", "FloatStorage", G_STORAGE, ST_F32},
    {"torch", "HalfStorage", G_STORAGE, ST_F16},
    {"torch", "BFloat16Storage", G_STORAGE, ST_BF16},
    {"torch", "DoubleStorage", G_STORAGE, ST_F64},
    {"torch", "LongStorage", G_STORAGE, ST_I64},
    {"torch", "IntStorage", G_STORAGE, ST_I32},
    {"torch", "ShortStorage", G_STORAGE, ST_I16},
    {"torch", "CharStorage", G_STORAGE, ST_I8},
    {"torch", "ByteStorage", G_STORAGE, ST_U8},
    {"torch", "BoolStorage", G_STORAGE, ST_BOOL},
};

/* ---- values ------------------------------------------------------------------------------ */

static ck_value *new_value(ck_arena *a, ck_type type) {
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 256;
        a->vals = sm_realloc(a->vals, sizeof *a->vals * a->cap);
    }
    ck_value *v = sm_calloc(1, sizeof *v);
    v->type = type;
    a->vals[a->n++] = v;
    return v;
}

void ck_arena_free(ck_arena *a) {
    for (size_t i = 0; i < a->n; i++) {
        free(a->vals[i]->s);
        free(a->vals[i]->items);
        free(a->vals[i]);
    }
    free(a->vals);
    memset(a, 0, sizeof *a);
}

static void push_item(ck_value *c, ck_value *v) {
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 8;
        c->items = sm_realloc(c->items, sizeof *c->items * c->cap);
    }
    c->items[c->n++] = v;
}

const ck_value *ck_dict_get(const ck_value *d, const char *key) {
    if (!d || d->type != CK_DICT) return NULL;
    for (size_t i = 0; i + 1 < d->n; i += 2)
        if (d->items[i]->type == CK_STR && !strcmp(d->items[i]->s, key)) return d->items[i + 1];
    return NULL;
}

/* ---- the machine ------------------------------------------------------------------------- */

typedef struct {
    const uint8_t *p;
    size_t n, pos, op_at; /* op_at: offset of the opcode being run (errors) */
    ck_arena *arena;
    ck_value **stack;
    size_t sp, scap;
    ck_value **memo;
    size_t memo_cap, memo_len; /* memo_len: indices stored (MEMOIZE's next index) */
} machine;

#define FAIL(m, ...) fail_at(m, __VA_ARGS__)
static int fail_at(const machine *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail_at(const machine *m, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sm_set_error("ck_unpickle", "data.pkl offset %zu: %s", m->op_at, msg);
}

static int take(machine *m, size_t k, const uint8_t **out) {
    if (k > m->n - m->pos) return FAIL(m, "truncated (%zu bytes needed, %zu left)", k, m->n - m->pos);
    *out = m->p + m->pos;
    m->pos += k;
    return 0;
}

static uint64_t le(const uint8_t *b, int k) {
    uint64_t v = 0;
    for (int i = k - 1; i >= 0; i--) v = v << 8 | b[i];
    return v;
}

static void push(machine *m, ck_value *v) {
    if (m->sp == m->scap) {
        m->scap = m->scap ? 2 * m->scap : 64;
        m->stack = sm_realloc(m->stack, sizeof *m->stack * m->scap);
    }
    m->stack[m->sp++] = v;
}

static int pop(machine *m, ck_value **v) {
    if (m->sp == 0 || m->stack[m->sp - 1]->type == CK_MARK)
        return FAIL(m, "the stack is empty where a value is needed");
    *v = m->stack[--m->sp];
    return 0;
}

static int top(machine *m, ck_value **v) {
    if (m->sp == 0 || m->stack[m->sp - 1]->type == CK_MARK)
        return FAIL(m, "the stack is empty where a value is needed");
    *v = m->stack[m->sp - 1];
    return 0;
}

/* The index of the topmost mark. */
static int find_mark(machine *m, size_t *at) {
    for (size_t i = m->sp; i > 0; i--)
        if (m->stack[i - 1]->type == CK_MARK) {
            *at = i - 1;
            return 0;
        }
    return FAIL(m, "no mark on the stack");
}

static int memo_put(machine *m, uint64_t idx) {
    ck_value *v = NULL;
    if (top(m, &v)) return -1;
    if (idx >= MEMO_MAX) return FAIL(m, "memo index %llu is too large", (unsigned long long)idx);
    if (idx >= m->memo_cap) {
        size_t cap = m->memo_cap ? m->memo_cap : 64;
        while (cap <= idx) cap *= 2;
        m->memo = sm_realloc(m->memo, sizeof *m->memo * cap);
        memset(m->memo + m->memo_cap, 0, sizeof *m->memo * (cap - m->memo_cap));
        m->memo_cap = cap;
    }
    m->memo_len += m->memo[idx] == NULL;
    m->memo[idx] = v;
    return 0;
}

static int memo_get(machine *m, uint64_t idx) {
    if (idx >= m->memo_cap || !m->memo[idx])
        return FAIL(m, "memo index %llu was never stored", (unsigned long long)idx);
    push(m, m->memo[idx]);
    return 0;
}

static int push_string(machine *m, ck_type type, size_t len) {
    const uint8_t *b = NULL;
    if (take(m, len, &b)) return -1;
    ck_value *v = new_value(m->arena, type);
    v->s = sm_malloc(len + 1);
    memcpy(v->s, b, len);
    v->s[len] = 0;
    v->n = len;
    push(m, v);
    return 0;
}

/* A length field of k bytes, then the string. */
static int op_string(machine *m, ck_type type, int k) {
    const uint8_t *b = NULL;
    if (take(m, (size_t)k, &b)) return -1;
    const uint64_t len = le(b, k);
    if (len > m->n - m->pos) return FAIL(m, "string of %llu bytes runs past the end",
                                         (unsigned long long)len);
    return push_string(m, type, (size_t)len);
}

static int op_global(machine *m, const char *module, const char *name) {
    for (size_t i = 0; i < sizeof k_globals / sizeof *k_globals; i++)
        if (!strcmp(module, k_globals[i].module) && !strcmp(name, k_globals[i].name)) {
            ck_value *v = new_value(m->arena, CK_GLOBAL);
            v->i = k_globals[i].kind;
            v->dtype = k_globals[i].dtype;
            push(m, v);
            return 0;
        }
    return FAIL(m, "refused global %s.%s: only the globals a state dict needs are allowed "
                   "(collections.OrderedDict, torch._utils._rebuild_tensor_v2, "
                   "torch._utils._rebuild_parameter, torch.*Storage)", module, name);
}

/* GLOBAL: "module\nname\n" */
static int op_global_text(machine *m) {
    char parts[2][256];
    for (int k = 0; k < 2; k++) {
        const uint8_t *nl = memchr(m->p + m->pos, '\n', m->n - m->pos);
        if (!nl || (size_t)(nl - (m->p + m->pos)) >= sizeof parts[k])
            return FAIL(m, "GLOBAL without a short newline-terminated name");
        const size_t len = (size_t)(nl - (m->p + m->pos));
        memcpy(parts[k], m->p + m->pos, len);
        parts[k][len] = 0;
        m->pos += len + 1;
    }
    return op_global(m, parts[0], parts[1]);
}

static int op_stack_global(machine *m) {
    ck_value *name = NULL, *module = NULL;
    if (pop(m, &name) || pop(m, &module)) return -1;
    if (name->type != CK_STR || module->type != CK_STR)
        return FAIL(m, "STACK_GLOBAL needs two strings");
    return op_global(m, module->s, name->s);
}

static int is_int(const ck_value *v) { return v->type == CK_INT; }

/* _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata]) */
static int rebuild_tensor(machine *m, const ck_value *args) {
    if (args->n < 6 || args->n > 7) return FAIL(m, "_rebuild_tensor_v2 takes 6 or 7 arguments");
    const ck_value *st = args->items[0], *off = args->items[1], *size = args->items[2],
                   *stride = args->items[3];
    if (st->type != CK_STORAGE || !is_int(off) || off->i < 0 || size->type != CK_TUPLE ||
        stride->type != CK_TUPLE || size->n != stride->n || size->n > CK_MAX_DIMS)
        return FAIL(m, "_rebuild_tensor_v2 with arguments that are not (storage, offset, size, "
                       "stride) of at most %d dimensions", CK_MAX_DIMS);
    ck_value *t = new_value(m->arena, CK_TENSOR);
    t->storage = (ck_value *)st;
    t->dtype = st->dtype;
    t->offset = off->i;
    t->ndim = (int64_t)size->n;
    for (size_t d = 0; d < size->n; d++) {
        if (!is_int(size->items[d]) || !is_int(stride->items[d]) || size->items[d]->i < 0 ||
            stride->items[d]->i < 0)
            return FAIL(m, "_rebuild_tensor_v2 with a size or stride that is not a natural number");
        t->shape[d] = size->items[d]->i;
        t->stride[d] = stride->items[d]->i;
    }
    push(m, t);
    return 0;
}

static int op_reduce(machine *m) {
    ck_value *args = NULL, *fn = NULL;
    if (pop(m, &args) || pop(m, &fn)) return -1;
    if (fn->type != CK_GLOBAL || args->type != CK_TUPLE)
        return FAIL(m, "REDUCE needs an allowed global and a tuple of arguments");
    switch (fn->i) {
    case G_ORDERED_DICT:
        if (args->n) return FAIL(m, "OrderedDict() with arguments");
        push(m, new_value(m->arena, CK_DICT));
        return 0;
    case G_REBUILD_TENSOR: return rebuild_tensor(m, args);
    case G_REBUILD_PARAMETER:
        if (args->n != 3 || args->items[0]->type != CK_TENSOR)
            return FAIL(m, "_rebuild_parameter takes (tensor, requires_grad, hooks)");
        push(m, args->items[0]);
        return 0;
    default: return FAIL(m, "a storage type cannot be called");
    }
}

/* ('storage', storage type, key, location, numel) */
static int op_persid(machine *m) {
    ck_value *pid = NULL;
    if (pop(m, &pid)) return -1;
    if (pid->type != CK_TUPLE || pid->n != 5 || pid->items[0]->type != CK_STR ||
        strcmp(pid->items[0]->s, "storage") || pid->items[1]->type != CK_GLOBAL ||
        pid->items[1]->i != G_STORAGE || pid->items[2]->type != CK_STR ||
        pid->items[3]->type != CK_STR || !is_int(pid->items[4]) || pid->items[4]->i < 0)
        return FAIL(m, "a persistent id that is not ('storage', type, key, location, numel)");
    const char *key = pid->items[2]->s;
    if (!*key || strspn(key, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_") !=
                     pid->items[2]->n)
        return FAIL(m, "storage key \"%.40s\" is not a plain name", key);
    ck_value *st = new_value(m->arena, CK_STORAGE);
    st->s = sm_strdup(key);
    st->n = pid->items[2]->n;
    st->dtype = pid->items[1]->dtype;
    st->numel = pid->items[4]->i;
    push(m, st);
    return 0;
}

/* Items above the topmost mark into container c (pairs for a dict), the mark removed. */
static int pop_to_mark(machine *m, ck_value *c, int pairs) {
    size_t at = 0;
    if (find_mark(m, &at)) return -1;
    if (pairs && (m->sp - at - 1) % 2) return FAIL(m, "an odd number of dict items");
    for (size_t i = at + 1; i < m->sp; i++) push_item(c, m->stack[i]);
    m->sp = at;
    return 0;
}

/* SETITEM(S) (key, value pairs into a dict) and APPEND(S) (values into a list): the values above
 * the topmost mark (many) or the top pair / value, into the container below them. */
static int op_add_items(machine *m, ck_type into, int many) {
    const int pairs = into == CK_DICT;
    ck_value *tmp = new_value(m->arena, CK_TUPLE), *c = NULL;
    if (many) {
        if (pop_to_mark(m, tmp, pairs)) return -1;
    } else {
        ck_value *k = NULL, *v = NULL;
        if (pop(m, &v) || (pairs && pop(m, &k))) return -1;
        if (pairs) push_item(tmp, k);
        push_item(tmp, v);
    }
    if (top(m, &c)) return -1;
    if (c->type != into)
        return FAIL(m, "%s on something that is not a %s", pairs ? "SETITEM(S)" : "APPEND(S)",
                    pairs ? "dict" : "list");
    for (size_t i = 0; i < tmp->n; i++) push_item(c, tmp->items[i]);
    return 0;
}

static int op_tuple(machine *m, int k) {
    ck_value *t = new_value(m->arena, CK_TUPLE);
    if (k < 0) {
        if (pop_to_mark(m, t, 0)) return -1;
    } else {
        if (m->sp < (size_t)k) return FAIL(m, "TUPLE%d with fewer values on the stack", k);
        for (size_t i = m->sp - (size_t)k; i < m->sp; i++) {
            if (m->stack[i]->type == CK_MARK) return FAIL(m, "TUPLE%d across a mark", k);
            push_item(t, m->stack[i]);
        }
        m->sp -= (size_t)k;
    }
    push(m, t);
    return 0;
}

/* BUILD: the only object with state a state dict has is an OrderedDict with attributes
 * (state_dict()'s _metadata); the state is dropped. */
static int op_build(machine *m) {
    ck_value *state = NULL, *obj = NULL;
    if (pop(m, &state) || top(m, &obj)) return -1;
    if (obj->type != CK_DICT || (state->type != CK_DICT && state->type != CK_NONE))
        return FAIL(m, "BUILD on something other than a dict");
    return 0;
}

static int step(machine *m, int op, int *done) {
    const uint8_t *b = NULL;
    ck_value *v = NULL;
    switch (op) {
    case 0x80: /* PROTO */
        if (take(m, 1, &b)) return -1;
        return b[0] >= 2 && b[0] <= 5 ? 0 : FAIL(m, "pickle protocol %d", b[0]);
    case 0x95: return take(m, 8, &b); /* FRAME: a length hint */
    case '.': *done = 1; return 0;    /* STOP */
    case '(': push(m, new_value(m->arena, CK_MARK)); return 0;
    case '}': push(m, new_value(m->arena, CK_DICT)); return 0;
    case ']': push(m, new_value(m->arena, CK_LIST)); return 0;
    case ')': push(m, new_value(m->arena, CK_TUPLE)); return 0;
    case 'N': push(m, new_value(m->arena, CK_NONE)); return 0;
    case 0x88: case 0x89:
        v = new_value(m->arena, CK_BOOL);
        v->i = op == 0x88;
        push(m, v);
        return 0;
    case 'J': case 'K': case 'M': { /* BININT (signed 4), BININT1, BININT2 (unsigned) */
        const int k = op == 'J' ? 4 : op == 'K' ? 1 : 2;
        if (take(m, (size_t)k, &b)) return -1;
        v = new_value(m->arena, CK_INT);
        v->i = k == 4 ? (int32_t)(uint32_t)le(b, 4) : (int64_t)le(b, k);
        push(m, v);
        return 0;
    }
    case 0x8a: { /* LONG1: n bytes, little-endian two's complement */
        if (take(m, 1, &b)) return -1;
        const int k = b[0];
        if (k > 8) return FAIL(m, "an integer of %d bytes", k);
        if (take(m, (size_t)k, &b)) return -1;
        uint64_t u = le(b, k);
        if (k && k < 8 && (b[k - 1] & 0x80)) u |= ~(uint64_t)0 << (8 * k);
        v = new_value(m->arena, CK_INT);
        v->i = (int64_t)u;
        push(m, v);
        return 0;
    }
    case 'G': { /* BINFLOAT: big-endian double */
        if (take(m, 8, &b)) return -1;
        uint64_t u = 0;
        for (int i = 0; i < 8; i++) u = u << 8 | b[i];
        v = new_value(m->arena, CK_FLOAT);
        memcpy(&v->f, &u, sizeof v->f);
        push(m, v);
        return 0;
    }
    case 'X': return op_string(m, CK_STR, 4);
    case 0x8c: return op_string(m, CK_STR, 1);
    case 0x8d: return op_string(m, CK_STR, 8);
    case 'C': return op_string(m, CK_BYTES, 1);
    case 'B': return op_string(m, CK_BYTES, 4);
    case 0x8e: return op_string(m, CK_BYTES, 8);
    case 'q': return take(m, 1, &b) || memo_put(m, b[0]);
    case 'r': return take(m, 4, &b) || memo_put(m, le(b, 4));
    case 0x94: return memo_put(m, m->memo_len);
    case 'h': return take(m, 1, &b) || memo_get(m, b[0]);
    case 'j': return take(m, 4, &b) || memo_get(m, le(b, 4));
    case 't': return op_tuple(m, -1);
    case 0x85: return op_tuple(m, 1);
    case 0x86: return op_tuple(m, 2);
    case 0x87: return op_tuple(m, 3);
    case 's': return op_add_items(m, CK_DICT, 0);
    case 'u': return op_add_items(m, CK_DICT, 1);
    case 'a': return op_add_items(m, CK_LIST, 0);
    case 'e': return op_add_items(m, CK_LIST, 1);
    case 'c': return op_global_text(m);
    case 0x93: return op_stack_global(m);
    case 'R': return op_reduce(m);
    case 'Q': return op_persid(m);
    case 'b': return op_build(m);
    case '0': return pop(m, &v);
    case '1': {
        size_t at = 0;
        if (find_mark(m, &at)) return -1;
        m->sp = at;
        return 0;
    }
    case '2':
        if (top(m, &v)) return -1;
        push(m, v);
        return 0;
    default: return FAIL(m, "refused opcode 0x%02x", op);
    }
}

int ck_unpickle(const uint8_t *data, size_t n, ck_arena *arena, ck_value **root) {
    machine m = {.p = data, .n = n, .arena = arena};
    int done = 0, rc = 0;
    while (!done && rc == 0) {
        m.op_at = m.pos;
        if (m.pos >= n) {
            rc = FAIL(&m, "the pickle ends without STOP");
            break;
        }
        rc = step(&m, data[m.pos++], &done);
    }
    if (rc == 0 && m.sp != 1) rc = FAIL(&m, "STOP with %zu values on the stack", m.sp);
    if (rc == 0) *root = m.stack[0];
    free(m.stack);
    free(m.memo);
    return rc ? -1 : 0;
}

/* ---- the zip archive --------------------------------------------------------------------- */

/* The whole entry `name` of the archive (at most max bytes). */
static void *read_entry(const ck_file *f, const char *name, size_t max, size_t *len) {
    zip_t *z = f->zip;
    zip_stat_t zs;
    if (zip_stat(z, name, 0, &zs) || !(zs.valid & ZIP_STAT_SIZE)) {
        SM_ERR("%s: no entry %s in the archive", f->path, name);
        return NULL;
    }
    if (zs.size > max) {
        SM_ERR("%s: entry %s holds %llu bytes, more than the %zu expected", f->path, name,
               (unsigned long long)zs.size, max);
        return NULL;
    }
    zip_file_t *zf = zip_fopen(z, name, 0);
    if (!zf) {
        SM_ERR("%s: cannot open entry %s: %s", f->path, name, zip_strerror(z));
        return NULL;
    }
    uint8_t *buf = sm_malloc(zs.size ? (size_t)zs.size : 1);
    const zip_int64_t got = zip_fread(zf, buf, zs.size);
    zip_fclose(zf);
    if (got < 0 || (zip_uint64_t)got != zs.size) {
        SM_ERR("%s: entry %s is damaged (read %lld of %llu bytes)", f->path, name, (long long)got,
               (unsigned long long)zs.size);
        free(buf);
        return NULL;
    }
    *len = (size_t)zs.size;
    return buf;
}

/* The folder of data.pkl: torch.save writes ARCHIVE/data.pkl with one folder of any name. */
static int find_prefix(ck_file *f) {
    const zip_int64_t n = zip_get_num_entries(f->zip, 0);
    for (zip_int64_t i = 0; i < n; i++) {
        const char *name = zip_get_name(f->zip, (zip_uint64_t)i, 0);
        const char *slash = name ? strchr(name, '/') : NULL;
        if (slash && !strcmp(slash, "/data.pkl")) {
            f->prefix = sm_malloc((size_t)(slash - name) + 2);
            memcpy(f->prefix, name, (size_t)(slash - name) + 1);
            f->prefix[slash - name + 1] = 0;
            return 0;
        }
    }
    return SM_ERR("%s: a zip archive without FOLDER/data.pkl: not a torch.save checkpoint", f->path);
}

int ck_open(ck_file *f, const char *path) {
    memset(f, 0, sizeof *f);
    f->path = sm_strdup(path);
    int fd = sm_open_regular(path, NULL);
    if (fd < 0) {
        ck_close(f);
        return -1;
    }
    unsigned char magic[4] = {0};
    const ssize_t got = pread(fd, magic, sizeof magic, 0);
    if (got == 4 && magic[0] == 0x80 && magic[1] == 0x02) {
        close(fd);
        ck_close(f);
        return SM_ERR("%s: the legacy (pre-zip) torch.save format is not supported: re-save it "
                      "with a PyTorch of version 1.6 or later", path);
    }
    int zerr = 0;
    f->zip = zip_fdopen(fd, ZIP_RDONLY, &zerr);
    if (!f->zip) {
        zip_error_t e;
        zip_error_init_with_code(&e, zerr);
        SM_ERR("%s: not a readable zip archive (%s)", path, zip_error_strerror(&e));
        zip_error_fini(&e);
        close(fd);
        ck_close(f);
        return -1;
    }
    char *pkl = NULL;
    uint8_t *data = NULL;
    size_t n = 0;
    int rc = find_prefix(f);
    if (rc == 0) {
        pkl = sm_malloc(strlen(f->prefix) + 9);
        sprintf(pkl, "%sdata.pkl", f->prefix);
        data = read_entry(f, pkl, PICKLE_MAX, &n);
        rc = data ? ck_unpickle(data, n, &f->arena, &f->root) : -1;
        if (rc && data) sm_wrap_error("%s", path);
    }
    free(pkl);
    free(data);
    if (rc) ck_close(f);
    return rc;
}

void ck_close(ck_file *f) {
    if (f->zip) zip_discard(f->zip);
    ck_arena_free(&f->arena);
    free(f->prefix);
    free(f->path);
    memset(f, 0, sizeof *f);
}

void *ck_tensor_data(const ck_file *f, const ck_value *t, size_t *numel) {
    if (!t || t->type != CK_TENSOR) {
        SM_ERR("%s: not a tensor", f->path);
        return NULL;
    }
    const size_t es = st_dtype_size(t->dtype);
    size_t n = 1, last = (size_t)t->offset; /* last: largest storage index the view reads */
    for (int64_t d = 0; d < t->ndim; d++) n = sm_size_mul(n, (size_t)t->shape[d]);
    for (int64_t d = 0; d < t->ndim && n; d++)
        last = sm_size_add(last, sm_size_mul((size_t)t->shape[d] - 1, (size_t)t->stride[d]));
    const ck_value *st = t->storage;
    if (n && (last == SIZE_MAX || last >= (size_t)st->numel)) {
        SM_ERR("%s: a tensor view reads past its storage %s of %lld elements", f->path, st->s,
               (long long)st->numel);
        return NULL;
    }
    char *name = sm_malloc(strlen(f->prefix) + st->n + 6);
    sprintf(name, "%sdata/%s", f->prefix, st->s);
    size_t len = 0;
    uint8_t *raw = read_entry(f, name, sm_size_mul((size_t)st->numel, es), &len);
    free(name);
    if (!raw) return NULL;
    if (n && (last + 1) * es > len) {
        SM_ERR("%s: storage %s holds %zu bytes, fewer than its tensors read", f->path, st->s, len);
        free(raw);
        return NULL;
    }
    uint8_t *out = sm_malloc(n ? n * es : 1);
    int64_t idx[CK_MAX_DIMS] = {0};
    for (size_t i = 0; i < n; i++) { /* row-major walk of the view */
        size_t src = (size_t)t->offset;
        for (int64_t d = 0; d < t->ndim; d++) src += (size_t)idx[d] * (size_t)t->stride[d];
        memcpy(out + i * es, raw + src * es, es);
        for (int64_t d = t->ndim - 1; d >= 0 && ++idx[d] == t->shape[d]; d--) idx[d] = 0;
    }
    free(raw);
    *numel = n;
    return out;
}
