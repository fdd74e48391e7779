/* tokenizer.c — byte-level BPE (GPT-2 / HF `tokenizers` ByteLevel + BPE). See tokenizer.h.
 *
 * Layout: UTF-8 helpers · hash maps · loading (vocab, merges, added tokens, tokenizer.json) ·
 * encoding (added-token split → GPT-2 regex → BPE merge loop) · decoding.
 * Details that matter for exact parity with HF (checked by tests/test_tokenizer.c):
 *   - Oniguruma's \s (used by HF's regex) is Unicode White_Space; PCRE2's UCP \s also matches
 *     U+180E, so the pattern spells the White_Space class out;
 *   - the merge loop is HF's: a min-heap on (rank, position), stale entries skipped when the
 *     pair at that position no longer merges into the same id (not GPT-2's "merge every
 *     occurrence of the best pair" loop, which differs on some vocabularies);
 *   - duplicate merges keep the rank of their last occurrence (HF collects into a hash map);
 *   - "#version" lines are skipped and do not count as ranks;
 *   - added tokens from tokenizer.json get the ids HF would assign (their vocabulary id, else
 *     the vocabulary size onwards); a file that says otherwise is rejected.
 */
#include "text/tokenizer.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <utf8proc.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "base/jsonutil.h"
#include "text/tokenizer_internal.h"
#include "base/util.h"

/* ---------------------------------------------------------------------------------------------
 * Byte ↔ unicode (GPT-2 bytes_to_unicode) and UTF-8 helpers */

static uint16_t g_b2u[256];  /* byte → code point */
static int16_t g_u2b[0x144]; /* code point → byte, -1 if none */
static pthread_once_t g_tables_once = PTHREAD_ONCE_INIT;

static void init_tables(void) {
    int n = 0;
    for (int i = 0; i < 0x144; i++) g_u2b[i] = -1;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae);
        g_b2u[b] = (uint16_t)(printable ? b : 256 + n++);
        g_u2b[g_b2u[b]] = (int16_t)b;
    }
}

/* Encode a code point (< 0x800 here) as UTF-8; returns the length. */
static size_t utf8_put_small(char *out, unsigned cp) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xc0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3f));
    return 2;
}

static bool is_cont(uint8_t c) { return (c & 0xc0) == 0x80; }

/* Length of the valid UTF-8 sequence at s[0..n) (1..4), or 0 when the bytes there do not form
 * one; *bad_len receives the length of the maximal invalid subsequence (Rust's Utf8Chunks). */
static size_t utf8_seq(const uint8_t *s, size_t n, size_t *bad_len) {
    uint8_t c = s[0];
    size_t i = 1;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        if (i < n && is_cont(s[i])) return 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        uint8_t lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
        if (i < n && s[i] >= lo && s[i] <= hi) {
            i++;
            if (i < n && is_cont(s[i])) return 3;
        }
    } else if (c >= 0xf0 && c <= 0xf4) {
        uint8_t lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
        if (i < n && s[i] >= lo && s[i] <= hi) {
            i++;
            if (i < n && is_cont(s[i])) {
                i++;
                if (i < n && is_cont(s[i])) return 4;
            }
        }
    }
    *bad_len = i;
    return 0;
}

/* Offset of the first invalid byte, or n when s is valid UTF-8. */
static size_t utf8_check(const uint8_t *s, size_t n) {
    size_t i = 0, bad;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = utf8_seq(s + i, n - i, &bad);
        if (!k) return i;
        i += k;
    }
    return n;
}

/* Code point of the valid UTF-8 sequence at s (length k). */
static unsigned utf8_cp(const uint8_t *s, size_t k) {
    switch (k) {
    case 1: return s[0];
    case 2: return ((s[0] & 0x1fu) << 6) | (s[1] & 0x3fu);
    case 3: return ((s[0] & 0x0fu) << 12) | ((s[1] & 0x3fu) << 6) | (s[2] & 0x3fu);
    default:
        return ((s[0] & 0x07u) << 18) | ((s[1] & 0x3fu) << 12) | ((s[2] & 0x3fu) << 6) |
               (s[3] & 0x3fu);
    }
}

/* Unicode White_Space (Rust regex \s, Oniguruma \s). */
static bool is_white_space(unsigned cp) {
    return (cp >= 0x09 && cp <= 0x0d) || cp == 0x20 || cp == 0x85 || cp == 0xa0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f ||
           cp == 0x205f || cp == 0x3000;
}

/* Length of the leading White_Space run of valid UTF-8 s[0..n). */
static size_t ws_prefix_len(const uint8_t *s, size_t n) {
    size_t i = 0, bad;
    while (i < n) {
        size_t k = utf8_seq(s + i, n - i, &bad);
        if (!k || !is_white_space(utf8_cp(s + i, k))) break;
        i += k;
    }
    return i;
}

/* Start of the trailing White_Space run of valid UTF-8 s[0..n). */
static size_t ws_suffix_start(const uint8_t *s, size_t n) {
    size_t end = n;
    while (end > 0) {
        size_t st = end - 1, bad;
        while (st > 0 && is_cont(s[st]) && end - st < 4) st--;
        size_t k = utf8_seq(s + st, end - st, &bad);
        if (k != end - st || !is_white_space(utf8_cp(s + st, k))) break;
        end = st;
    }
    return end;
}

/* ---------------------------------------------------------------------------------------------
 * Hash maps: string → id (open addressing), (id, id) → (rank, new id) */

typedef struct {
    const char *s; /* NULL: empty slot */
    uint32_t len;
    int32_t id;
} str_slot;

typedef struct {
    str_slot *slots;
    size_t mask, count;
} str_map;

typedef struct {
    uint64_t key; /* TOK_KEY_EMPTY: empty slot */
    uint32_t rank;
    int32_t new_id;
} pair_slot;

typedef struct {
    pair_slot *slots;
    size_t mask, count;
} pair_map;

static size_t pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

static void str_map_init(str_map *m, size_t expected) {
    size_t cap = pow2_at_least(expected * 2 + 1);
    m->slots = sm_calloc(cap, sizeof *m->slots);
    m->mask = cap - 1;
    m->count = 0;
}

static int32_t str_map_get(const str_map *m, const char *s, size_t n) {
    if (!m->slots) return -1;
    for (size_t i = tok_hash_bytes(s, n) & m->mask;; i = (i + 1) & m->mask) {
        const str_slot *e = &m->slots[i];
        if (!e->s) return -1;
        if (e->len == n && memcmp(e->s, s, n) == 0) return e->id;
    }
}

/* Insert; returns the existing id when s is already present, else -1. s must outlive m. */
static int32_t str_map_put(str_map *m, const char *s, size_t n, int32_t id) {
    SM_ASSERT(m->count * 2 < m->mask + 1);
    for (size_t i = tok_hash_bytes(s, n) & m->mask;; i = (i + 1) & m->mask) {
        str_slot *e = &m->slots[i];
        if (!e->s) {
            e->s = s;
            e->len = (uint32_t)n;
            e->id = id;
            m->count++;
            return -1;
        }
        if (e->len == n && memcmp(e->s, s, n) == 0) return e->id;
    }
}

static size_t pair_hash(uint64_t key, size_t mask) {
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 29) & mask;
}

static void pair_map_grow(pair_map *m) {
    void *slots = m->slots;
    tok_keymap_grow(&slots, &m->mask, sizeof *m->slots, 1024, pair_hash);
    m->slots = slots;
}

static uint64_t pair_key(int32_t a, int32_t b) {
    return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
}

/* Insert or overwrite (HF keeps the last rank of a duplicated merge). */
static void pair_map_put(pair_map *m, uint64_t key, uint32_t rank, int32_t new_id) {
    if (!m->slots || (m->count + 1) * 2 > m->mask + 1) pair_map_grow(m);
    size_t i = pair_hash(key, m->mask);
    while (m->slots[i].key != TOK_KEY_EMPTY && m->slots[i].key != key) i = (i + 1) & m->mask;
    if (m->slots[i].key == TOK_KEY_EMPTY) m->count++;
    m->slots[i] = (pair_slot){key, rank, new_id};
}

static const pair_slot *pair_map_get(const pair_map *m, int32_t a, int32_t b) {
    if (!m->slots) return NULL;
    uint64_t key = pair_key(a, b);
    for (size_t i = pair_hash(key, m->mask);; i = (i + 1) & m->mask) {
        const pair_slot *e = &m->slots[i];
        if (e->key == key) return e;
        if (e->key == TOK_KEY_EMPTY) return NULL;
    }
}

/* ---------------------------------------------------------------------------------------------
 * The tokenizer */

typedef struct {
    char *content;
    size_t len;
    char *match; /* what is looked for in the text: content, normalized when `normalized` */
    size_t match_len;
    int32_t id;
    bool special, lstrip, rstrip, normalized;
} added_token;

/* Unicode normalization forms (tokenizer.json normalizers NFC, NFD, NFKC, NFKD). */
typedef enum { NORM_NFC, NORM_NFD, NORM_NFKC, NORM_NFKD } norm_form;

/* One pre-tokenizer of the pipeline, applied to every piece the previous one produced:
 * Split (Isolated) with a pattern, or ByteLevel (a prefix space, the GPT-2 regex if use_regex). */
typedef struct {
    pcre2_code *re; /* split pattern; NULL: no split */
    bool byte_level, add_prefix_space;
} pretok_step;

#define TOK_MAX_STEPS 8

/* Added tokens of one matching pass: a map content → index into added[], and for each first
 * byte the distinct token lengths, longest first, so that the longest token at a position is
 * found with one lookup per length (leftmost-longest, like HF's Aho-Corasick). */
typedef struct {
    str_map map;
    uint32_t *lens; /* lens[start[b] .. start[b+1]): lengths of tokens beginning with b */
    uint32_t start[257];
} added_set;

struct smdlm_tokenizer {
    /* model vocabulary */
    char *arena;          /* vocabulary strings, NUL-terminated, back to back */
    str_map vocab;        /* string → id (model vocabulary only) */
    size_t n_vocab;       /* number of vocabulary entries */
    pair_map merges;      /* (left id, right id) → (rank, merged id) */
    int32_t byte_id[256]; /* id of each byte's single-character token */
    bool ignore_merges;
    /* normalizer and pre-tokenizer pipelines */
    norm_form norm[TOK_MAX_STEPS];
    size_t n_norm;
    pretok_step steps[TOK_MAX_STEPS];
    size_t n_steps;
    /* added tokens */
    added_token *added;
    size_t n_added;
    str_map added_map;           /* content → index into added[] */
    added_set set_raw, set_norm; /* non-normalized (first pass), normalized (second pass) */
    int32_t role_id[TOK_N_ROLES]; /* tokenizer_config.json's bos/eos/pad/mask, -1: none */
    char *chat_template;          /* tokenizer_config.json's chat_template, or NULL */
    /* id tables */
    int32_t n_ids;       /* max id + 1 */
    const char **id_str; /* [n_ids] vocab string or added content; NULL: unassigned */
    uint8_t *dec;        /* decoded bytes of every id, back to back */
    size_t *dec_off;     /* [n_ids + 1] */
    uint8_t *special;    /* [n_ids] 1 for special added tokens */
};

void tok_free(smdlm_tokenizer *t) {
    if (!t) return;
    free(t->arena);
    free(t->vocab.slots);
    free(t->merges.slots);
    for (size_t i = 0; i < t->n_added; i++) {
        free(t->added[i].content);
        free(t->added[i].match);
    }
    free(t->added);
    free(t->added_map.slots);
    free(t->chat_template);
    free(t->special);
    for (size_t i = 0; i < t->n_steps; i++)
        if (t->steps[i].re) pcre2_code_free(t->steps[i].re);
    free(t->set_raw.map.slots);
    free(t->set_raw.lens);
    free(t->set_norm.map.slots);
    free(t->set_norm.lens);
    free(t->id_str);
    free(t->dec);
    free(t->dec_off);
    free(t);
}

int tok_vocab_size(const smdlm_tokenizer *t) { return t->n_ids; }

const char *tok_id_to_str(const smdlm_tokenizer *t, int32_t id) {
    if (!t || id < 0 || id >= t->n_ids) return NULL;
    return t->id_str[id];
}

int32_t tok_str_to_id(const smdlm_tokenizer *t, const char *s) {
    if (!t || !s) return -1;
    size_t n = strlen(s);
    int32_t k = str_map_get(&t->added_map, s, n);
    return k >= 0 ? t->added[k].id : str_map_get(&t->vocab, s, n);
}

int32_t tok_role_id(const smdlm_tokenizer *t, tok_role role) {
    if (!t || (int)role < 0 || role >= TOK_N_ROLES) return -1;
    return t->role_id[role];
}

int tok_is_special(const smdlm_tokenizer *t, int32_t id) {
    return t && id >= 0 && id < t->n_ids && t->special[id];
}

const char *tok_chat_template(const smdlm_tokenizer *t) { return t ? t->chat_template : NULL; }

/* ---------------------------------------------------------------------------------------------
 * Loading: vocabulary */

/* JSON number → id in [0, TOK_MAX_ID], or -1. */
static int32_t json_id(const cJSON *v) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0 && d <= TOK_MAX_ID) || d != (double)(int32_t)d) return -1;
    return (int32_t)d;
}

static int vocab_from_json(smdlm_tokenizer *t, const cJSON *obj, const char *what) {
    if (!cJSON_IsObject(obj)) return SM_ERR("%s: the vocabulary is not a JSON object", what);
    size_t n = 0, bytes = 0;
    for (const cJSON *e = obj->child; e; e = e->next) {
        if (!e->string) return SM_ERR("%s: vocabulary entry without a key", what);
        n++;
        bytes += strlen(e->string) + 1;
    }
    if (n == 0) return SM_ERR("%s: the vocabulary is empty", what);
    if (n > (size_t)TOK_MAX_ID + 1)
        return SM_ERR("%s: vocabulary too large (%zu entries)", what, n);
    t->arena = sm_malloc(bytes);
    str_map_init(&t->vocab, n);
    t->n_vocab = n;
    size_t off = 0;
    for (const cJSON *e = obj->child; e; e = e->next) {
        size_t len = strlen(e->string);
        size_t bad = utf8_check((const uint8_t *)e->string, len);
        if (bad != len)
            return SM_ERR("%s: vocabulary token '%s' is not valid UTF-8 (byte %zu)", what,
                          e->string, bad);
        if (len == 0) return SM_ERR("%s: empty vocabulary token", what);
        if (cJSON_IsNumber(e) && e->valuedouble < 0)
            return SM_ERR("%s: vocabulary token '%s' has a negative id (%g)", what, e->string,
                          e->valuedouble);
        int32_t id = json_id(e);
        if (id < 0)
            return SM_ERR("%s: vocabulary token '%s' has an invalid id (an integer in [0, %d] "
                          "is required)",
                          what, e->string, TOK_MAX_ID);
        memcpy(t->arena + off, e->string, len + 1);
        if (str_map_put(&t->vocab, t->arena + off, len, id) >= 0)
            return SM_ERR("%s: duplicate vocabulary token '%s'", what, e->string);
        off += len + 1;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Loading: merges */

typedef struct {
    char *buf;
    size_t cap;
} scratch_buf;

static char *scratch_reserve(scratch_buf *s, size_t n) {
    if (n > s->cap) {
        s->cap = n * 2;
        s->buf = sm_realloc(s->buf, s->cap);
    }
    return s->buf;
}

/* Add merge (a, b) with the given rank; `where` names it in errors ("merges.txt line 7"). */
static int add_merge(smdlm_tokenizer *t, const char *a, size_t na, const char *b, size_t nb,
                     uint32_t rank, scratch_buf *sb, const char *where) {
    int32_t ia = str_map_get(&t->vocab, a, na), ib = str_map_get(&t->vocab, b, nb);
    const char *miss = ia < 0 ? a : ib < 0 ? b : NULL;
    size_t nmiss = ia < 0 ? na : nb;
    char *ab = scratch_reserve(sb, na + nb + 1);
    memcpy(ab, a, na);
    memcpy(ab + na, b, nb);
    ab[na + nb] = 0;
    int32_t iab = miss ? -1 : str_map_get(&t->vocab, ab, na + nb);
    if (!miss && iab < 0) {
        miss = ab;
        nmiss = na + nb;
    }
    if (miss)
        return SM_ERR("%s: merge '%.*s %.*s': token '%.*s' is not in the vocabulary", where,
                      (int)na, a, (int)nb, b, (int)nmiss, miss);
    pair_map_put(&t->merges, pair_key(ia, ib), rank, iab);
    return 0;
}

/* One legacy merge string "a b" (exactly one space). */
static int add_merge_line(smdlm_tokenizer *t, const char *s, size_t n, uint32_t rank,
                          scratch_buf *sb, const char *where) {
    const char *sp = memchr(s, ' ', n);
    if (!sp || memchr(sp + 1, ' ', n - (size_t)(sp + 1 - s)))
        return SM_ERR("%s: bad merge '%.*s' (expected two tokens separated by one space)", where,
                      (int)(n > 200 ? 200 : n), s);
    return add_merge(t, s, (size_t)(sp - s), sp + 1, n - (size_t)(sp + 1 - s), rank, sb, where);
}

static bool is_version_line(const char *s, size_t n) {
    return n >= 8 && memcmp(s, "#version", 8) == 0;
}

static int merges_from_text(smdlm_tokenizer *t, const char *text, size_t len, const char *path) {
    scratch_buf sb = {0};
    uint32_t rank = 0;
    size_t lineno = 0;
    char where[512];
    for (size_t pos = 0; pos < len;) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        pos += n + (nl ? 1 : 0);
        lineno++;
        if (n && line[n - 1] == '\r') n--;
        if (n == 0 || is_version_line(line, n)) continue;
        snprintf(where, sizeof where, "'%s' line %zu", path, lineno);
        if (utf8_check((const uint8_t *)line, n) != n) {
            free(sb.buf);
            return SM_ERR("%s: merge is not valid UTF-8", where);
        }
        if (add_merge_line(t, line, n, rank++, &sb, where) != 0) {
            free(sb.buf);
            return -1;
        }
    }
    free(sb.buf);
    return 0;
}

static int merges_from_json(smdlm_tokenizer *t, const cJSON *arr, const char *path) {
    if (!cJSON_IsArray(arr)) return SM_ERR("'%s': model.merges is not an array", path);
    scratch_buf sb = {0};
    uint32_t rank = 0;
    size_t i = 0;
    int legacy = -1, rc = 0;
    char where[512];
    for (const cJSON *m = arr->child; m && rc == 0; m = m->next, i++) {
        snprintf(where, sizeof where, "'%s' model.merges[%zu]", path, i);
        int is_str = cJSON_IsString(m);
        if (legacy < 0) legacy = is_str;
        if (is_str != legacy) {
            rc = SM_ERR("%s: merges mix the \"a b\" and [\"a\", \"b\"] forms", where);
        } else if (is_str) {
            const char *s = m->valuestring;
            size_t n = strlen(s);
            if (is_version_line(s, n)) continue;
            rc = add_merge_line(t, s, n, rank++, &sb, where);
        } else if (!cJSON_IsArray(m) || cJSON_GetArraySize(m) != 2 || !cJSON_IsString(m->child) ||
                   !cJSON_IsString(m->child->next)) {
            rc = SM_ERR("%s: bad merge (expected \"a b\" or [\"a\", \"b\"])", where);
        } else {
            const char *a = m->child->valuestring, *b = m->child->next->valuestring;
            rc = add_merge(t, a, strlen(a), b, strlen(b), rank++, &sb, where);
        }
    }
    free(sb.buf);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Loading: added tokens, id tables, regex */

static void add_added(smdlm_tokenizer *t, const char *content, int32_t id, bool special,
                      bool lstrip, bool rstrip, bool normalized) {
    t->added = sm_realloc(t->added, (t->n_added + 1) * sizeof *t->added);
    size_t n = strlen(content);
    t->added[t->n_added++] = (added_token){sm_strdup(content), n,     sm_strdup(content), n, id,
                                           special,             lstrip, rstrip,             normalized};
}

typedef struct {
    uint8_t first;
    uint32_t len;
} first_len;

static int cmp_first_len(const void *pa, const void *pb) {
    const first_len *a = pa, *b = pb;
    if (a->first != b->first) return a->first < b->first ? -1 : 1;
    return a->len == b->len ? 0 : a->len > b->len ? -1 : 1;
}

static void build_set(smdlm_tokenizer *t, added_set *set, bool normalized) {
    first_len *fl = sm_malloc((t->n_added + 1) * sizeof *fl);
    size_t n = 0, u = 0;
    str_map_init(&set->map, t->n_added);
    for (size_t i = 0; i < t->n_added; i++) {
        const added_token *a = &t->added[i];
        if (a->normalized != normalized || a->match_len == 0) continue;
        if (str_map_put(&set->map, a->match, a->match_len, (int32_t)i) >= 0) continue; /* same
            normalized form as an earlier token: HF's matcher also finds the first */
        fl[n++] = (first_len){(uint8_t)a->match[0], (uint32_t)a->match_len};
    }
    qsort(fl, n, sizeof *fl, cmp_first_len);
    set->lens = sm_malloc((n + 1) * sizeof *set->lens);
    memset(set->start, 0, sizeof set->start);
    for (size_t i = 0; i < n; i++) {
        if (u && fl[i].first == fl[i - 1].first && fl[i].len == fl[i - 1].len) continue;
        set->lens[u++] = fl[i].len;
        set->start[fl[i].first + 1]++;
    }
    for (int b = 0; b < 256; b++) set->start[b + 1] += set->start[b];
    free(fl);
}

/* Decoded bytes of a token string: each character's byte, or the raw UTF-8 when a character
 * is outside the byte alphabet (HF's ByteLevel decoder). Returns the length written. */
static size_t token_bytes(const char *s, uint8_t *out) {
    size_t n = strlen(s), o = 0, bad;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq((const uint8_t *)s + i, n - i, &bad);
        unsigned cp = k ? utf8_cp((const uint8_t *)s + i, k) : 0xffffffffu;
        if (cp >= 0x144 || g_u2b[cp] < 0) {
            memcpy(out, s, n);
            return n;
        }
        out[o++] = (uint8_t)g_u2b[cp];
        i += k;
    }
    return o;
}

/* GPT-2's pattern with \s spelled out as Unicode White_Space (see the top of the file). */
#define WS "\\t-\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
static const char GPT2_PATTERN[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS
                                   "\\p{L}\\p{N}]+|[" WS "]+(?![^" WS "])|[" WS "]+";

static int normalize(const smdlm_tokenizer *t, const char *s, size_t n, char **out, size_t *len);

static int finish(smdlm_tokenizer *t, const char *what) {
    /* id table */
    int32_t max_id = -1;
    for (size_t i = 0; i <= t->vocab.mask; i++)
        if (t->vocab.slots[i].s && t->vocab.slots[i].id > max_id) max_id = t->vocab.slots[i].id;
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].id > max_id) max_id = t->added[i].id;
    t->n_ids = max_id + 1;
    t->id_str = sm_calloc((size_t)t->n_ids, sizeof *t->id_str);
    for (size_t i = 0; i <= t->vocab.mask; i++) {
        const str_slot *e = &t->vocab.slots[i];
        if (!e->s) continue;
        if (t->id_str[e->id])
            return SM_ERR("%s: duplicate id %d (tokens '%s' and '%s')", what, e->id,
                          t->id_str[e->id], e->s);
        t->id_str[e->id] = e->s;
    }
    for (size_t i = 0; i < t->n_added; i++) {
        const added_token *a = &t->added[i];
        const char *prev = t->id_str[a->id];
        if (prev && strcmp(prev, a->content) != 0)
            return SM_ERR("%s: duplicate id %d (token '%s' and added token '%s')", what, a->id,
                          prev, a->content);
        t->id_str[a->id] = a->content;
    }
    /* byte tokens */
    for (int b = 0; b < 256; b++) {
        char s[3];
        size_t n = utf8_put_small(s, g_b2u[b]);
        t->byte_id[b] = str_map_get(&t->vocab, s, n);
        if (t->byte_id[b] < 0)
            return SM_ERR("%s: the vocabulary lacks the byte-level token '%.*s' for byte 0x%02x "
                          "(not a byte-level BPE vocabulary)",
                          what, (int)n, s, b);
    }
    /* decode table */
    size_t total = 0;
    for (int32_t id = 0; id < t->n_ids; id++)
        if (t->id_str[id]) total += strlen(t->id_str[id]);
    t->dec = sm_malloc(total + 1);
    t->dec_off = sm_malloc(((size_t)t->n_ids + 1) * sizeof *t->dec_off);
    size_t off = 0;
    for (int32_t id = 0; id < t->n_ids; id++) {
        t->dec_off[id] = off;
        if (t->id_str[id]) off += token_bytes(t->id_str[id], t->dec + off);
    }
    t->dec_off[t->n_ids] = off;
    /* added tokens: content → index, special flags, normalized forms to look for */
    t->special = sm_calloc((size_t)t->n_ids, 1);
    str_map_init(&t->added_map, t->n_added);
    for (size_t i = 0; i < t->n_added; i++) {
        added_token *a = &t->added[i];
        SM_ASSERT(str_map_put(&t->added_map, a->content, a->len, (int32_t)i) < 0);
        if (a->special) t->special[a->id] = 1;
        char *norm;
        size_t nlen;
        if (a->normalized && normalize(t, a->content, a->len, &norm, &nlen) == 0 && norm) {
            free(a->match);
            a->match = norm;
            a->match_len = nlen;
        }
    }
    build_set(t, &t->set_raw, false);
    build_set(t, &t->set_norm, true);
    if (t->n_steps == 0) /* vocab.json + merges.txt: GPT-2's ByteLevel pre-tokenizer */
        t->steps[t->n_steps++] = (pretok_step){tok_gpt2_regex(), true, false};
    /* roles: tokenizer_config.json may set them later (tok_load_dir) */
    for (int r = 0; r < TOK_N_ROLES; r++) t->role_id[r] = -1;
    t->role_id[TOK_MASK] = tok_str_to_id(t, "<|mask|>");
    if (t->role_id[TOK_MASK] < 0) t->role_id[TOK_MASK] = tok_str_to_id(t, "<|mdm_mask|>");
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Shared with the BPE trainer (tokenizer_internal.h) */

pcre2_code *tok_gpt2_regex(void) {
    int err;
    PCRE2_SIZE erroff;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)GPT2_PATTERN, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP, &err, &erroff, NULL);
    SM_ASSERT(re != NULL);
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter on failure */
    return re;
}

void tok_byte_to_unicode(uint16_t out[256]) {
    pthread_once(&g_tables_once, init_tables);
    memcpy(out, g_b2u, sizeof g_b2u);
}

size_t tok_utf8_valid_prefix(const char *s, size_t n) { return utf8_check((const uint8_t *)s, n); }

void tok_keymap_grow(void **slots, size_t *mask, size_t slot_size, size_t first_cap,
                     size_t (*slot_of)(uint64_t key, size_t mask)) {
    size_t old_cap = *slots ? *mask + 1 : 0, cap = old_cap ? 2 * old_cap : first_cap;
    const char *old = *slots;
    char *t = sm_calloc(cap, slot_size);
    const uint64_t empty = TOK_KEY_EMPTY;
    for (size_t i = 0; i < cap; i++) memcpy(t + i * slot_size, &empty, sizeof empty);
    for (size_t j = 0; j < old_cap; j++) {
        uint64_t key;
        memcpy(&key, old + j * slot_size, sizeof key);
        if (key == TOK_KEY_EMPTY) continue;
        size_t i = slot_of(key, cap - 1);
        for (;; i = (i + 1) & (cap - 1)) {
            uint64_t k;
            memcpy(&k, t + i * slot_size, sizeof k);
            if (k == TOK_KEY_EMPTY) break;
        }
        memcpy(t + i * slot_size, old + j * slot_size, slot_size);
    }
    free(*slots);
    *slots = t;
    *mask = cap - 1;
}

static smdlm_tokenizer *tok_new(void) {
    pthread_once(&g_tables_once, init_tables);
    smdlm_tokenizer *t = sm_calloc(1, sizeof *t);
    return t;
}

static cJSON *parse_json_file(const char *path, char **text_out) {
    char *text;
    size_t len;
    if (sm_read_file(path, TOK_MAX_FILE_BYTES, &text, &len) != 0) return NULL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        size_t off = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
        SM_ERR("'%s': invalid JSON near byte %zu", path, off);
        free(text);
        return NULL;
    }
    if (text_out)
        *text_out = text;
    else
        free(text);
    return root;
}

static int cmp_added_id(const void *pa, const void *pb) {
    const added_token *a = pa, *b = pb;
    return a->id < b->id ? -1 : a->id > b->id;
}

/* GPT-2 convention for vocab.json + merges.txt: "<|...|>" entries are special added tokens. */
static void add_convention_specials(smdlm_tokenizer *t) {
    for (size_t i = 0; i <= t->vocab.mask; i++) {
        const str_slot *e = &t->vocab.slots[i];
        if (e->s && e->len >= 5 && memcmp(e->s, "<|", 2) == 0 &&
            memcmp(e->s + e->len - 2, "|>", 2) == 0)
            add_added(t, e->s, e->id, true, false, false, false);
    }
    if (t->n_added > 1) qsort(t->added, t->n_added, sizeof *t->added, cmp_added_id); /* by id */
}

int tok_load_files(smdlm_tokenizer **out, const char *vocab_json, const char *merges_txt) {
    *out = NULL;
    smdlm_tokenizer *t = tok_new();
    cJSON *root = parse_json_file(vocab_json, NULL);
    char *merges = NULL;
    size_t mlen = 0;
    int rc = -1;
    char what[512];
    snprintf(what, sizeof what, "'%s'", vocab_json);
    if (!root) goto done;
    if (vocab_from_json(t, root, what) != 0) goto done;
    if (sm_read_file(merges_txt, TOK_MAX_FILE_BYTES, &merges, &mlen) != 0) goto done;
    if (merges_from_text(t, merges, mlen, merges_txt) != 0) goto done;
    add_convention_specials(t);
    rc = finish(t, what);
done:
    cJSON_Delete(root);
    free(merges);
    if (rc != 0) {
        tok_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Loading: tokenizer.json */

static const char *json_type_name(const cJSON *o) {
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(o, "type");
    return cJSON_IsString(ty) ? ty->valuestring : "?";
}

/* A field that must be absent, null, or one of the accepted values. */
static bool json_null_or_empty(const cJSON *v) {
    return !v || cJSON_IsNull(v) || (cJSON_IsString(v) && v->valuestring[0] == 0);
}

static int json_bool_field(const cJSON *o, const char *key, bool dflt, bool *out,
                           const char *what) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) {
        *out = dflt;
        return 0;
    }
    if (!cJSON_IsBool(v)) return SM_ERR("%s: '%s' is not a boolean", what, key);
    *out = cJSON_IsTrue(v);
    return 0;
}

/* Normalizer: null, NFC/NFD/NFKC/NFKD, or a Sequence of those (nested Sequences flatten). */
static int parse_normalizer(smdlm_tokenizer *t, const cJSON *n, const char *path, int depth) {
    if (!n || cJSON_IsNull(n)) return 0;
    const char *ty = json_type_name(n);
    static const char *const forms[] = {"NFC", "NFD", "NFKC", "NFKD"};
    if (!cJSON_IsObject(n))
        return SM_ERR("'%s': normalizer is not an object", path);
    if (strcmp(ty, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers");
        if (!cJSON_IsArray(list) || depth > 4)
            return SM_ERR("'%s': normalizer Sequence without a 'normalizers' array", path);
        for (const cJSON *e = list->child; e; e = e->next)
            if (parse_normalizer(t, e, path, depth + 1) != 0) return -1;
        return 0;
    }
    for (int f = 0; f < 4; f++)
        if (strcmp(ty, forms[f]) == 0) {
            if (t->n_norm == TOK_MAX_STEPS)
                return SM_ERR("'%s': more than %d normalizers", path, TOK_MAX_STEPS);
            t->norm[t->n_norm++] = (norm_form)f;
            return 0;
        }
    return SM_ERR("'%s': unsupported normalizer '%s' (supported: null, NFC, NFD, NFKC, NFKD, "
                  "Sequence)",
                  path, ty);
}

/* Translates a tokenizer.json regex (Oniguruma syntax) for PCRE2: \s and \S become the Unicode
 * White_Space class that Oniguruma uses (PCRE2's UCP \s also matches U+180E); constructs whose
 * meaning differs between the two engines are rejected. Returns a malloc'ed pattern or NULL. */
static char *translate_regex(const char *re, const char *where) {
    static const char ws[] = WS;
    size_t n = strlen(re), o = 0;
    char *out = sm_malloc(n * (sizeof ws + 4) + 1);
    bool in_class = false;
    for (size_t i = 0; i < n; i++) {
        char ch = re[i];
        if (ch == '\\' && i + 1 < n) {
            char e = re[++i];
            if (e == 's' || (e == 'S' && !in_class)) {
                const char *pre = in_class ? "" : e == 's' ? "[" : "[^";
                o += (size_t)sprintf(out + o, "%s%s%s", pre, ws, in_class ? "" : "]");
                continue;
            }
            if (e == 'S' || e == 'h' || e == 'H' || e == 'Q' || e == 'R' || e == 'X') {
                free(out);
                SM_ERR("%s: regex escape \\%c is unsupported", where, e);
                return NULL;
            }
            out[o++] = ch;
            out[o++] = e;
            continue;
        }
        if (ch == '[') {
            if (in_class && re[i + 1] != ':') {
                free(out);
                SM_ERR("%s: nested character classes are unsupported", where);
                return NULL;
            }
            if (!in_class) {
                in_class = true;
                out[o++] = ch;
                if (re[i + 1] == '^') out[o++] = re[++i];
                if (re[i + 1] == ']') out[o++] = re[++i]; /* a leading ] is literal */
                continue;
            }
            const char *close = strstr(re + i, ":]"); /* POSIX class [:alpha:] */
            size_t k = close ? (size_t)(close - (re + i)) + 2 : 1;
            memcpy(out + o, re + i, k);
            o += k;
            i += k - 1;
            continue;
        }
        if (ch == ']' && in_class) in_class = false;
        if (ch == '&' && in_class && re[i + 1] == '&') {
            free(out);
            SM_ERR("%s: character class intersection (&&) is unsupported", where);
            return NULL;
        }
        out[o++] = ch;
    }
    out[o] = 0;
    return out;
}

/* Compiles a split pattern ({"Regex": ...} or {"String": ...}) with UTF + UCP (JIT if possible). */
static pcre2_code *compile_pattern(const cJSON *pat, const char *where) {
    const char *rx = json_get_string(pat, "Regex"), *lit = json_get_string(pat, "String");
    if (!cJSON_IsObject(pat) || (!rx == !lit) || (lit && !lit[0])) {
        SM_ERR("%s: pattern must be {\"Regex\": ...} or a non-empty {\"String\": ...}", where);
        return NULL;
    }
    char *src;
    if (rx) {
        if (!(src = translate_regex(rx, where))) return NULL;
    } else { /* literal: quote every ASCII punctuation character */
        size_t n = strlen(lit), o = 0;
        src = sm_malloc(2 * n + 1);
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)lit[i];
            if (c < 0x80 && !(c >= '0' && c <= '9') && !((c | 0x20) >= 'a' && (c | 0x20) <= 'z'))
                src[o++] = '\\';
            src[o++] = (char)c;
        }
        src[o] = 0;
    }
    int err;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)src, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP,
                                   &err, &off, NULL);
    free(src);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        SM_ERR("%s: bad regex '%.200s': %s (at offset %zu)", where, rx ? rx : lit,
               (const char *)msg, (size_t)off);
        return NULL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter on failure */
    return re;
}

/* Pre-tokenizer: ByteLevel, Split (Isolated, not inverted) or a Sequence of them. */
static int parse_pretok(smdlm_tokenizer *t, const cJSON *p, const char *path, int depth) {
    char what[512];
    snprintf(what, sizeof what, "'%s' pre_tokenizer", path);
    if (!cJSON_IsObject(p)) return SM_ERR("%s: missing or not an object", what);
    const char *ty = json_type_name(p);
    if (strcmp(ty, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
        if (!cJSON_IsArray(list) || depth > 4)
            return SM_ERR("%s: Sequence without a 'pretokenizers' array", what);
        for (const cJSON *e = list->child; e; e = e->next)
            if (parse_pretok(t, e, path, depth + 1) != 0) return -1;
        return 0;
    }
    if (t->n_steps == TOK_MAX_STEPS) return SM_ERR("%s: more than %d steps", what, TOK_MAX_STEPS);
    pretok_step st = {0};
    if (strcmp(ty, "ByteLevel") == 0) {
        bool use_regex;
        if (json_bool_field(p, "add_prefix_space", true, &st.add_prefix_space, what) != 0 ||
            json_bool_field(p, "use_regex", true, &use_regex, what) != 0)
            return -1;
        st.byte_level = true;
        if (use_regex) st.re = tok_gpt2_regex();
    } else if (strcmp(ty, "Split") == 0) {
        const char *beh = json_get_string(p, "behavior");
        bool invert;
        if (json_bool_field(p, "invert", false, &invert, what) != 0) return -1;
        if (!beh || strcmp(beh, "Isolated") != 0 || invert)
            return SM_ERR("%s: Split with behavior '%s'%s is unsupported (only Isolated, not "
                          "inverted)",
                          what, beh ? beh : "?", invert ? " inverted" : "");
        if (!(st.re = compile_pattern(cJSON_GetObjectItemCaseSensitive(p, "pattern"), what)))
            return -1;
    } else {
        return SM_ERR("%s: unsupported type '%s' (supported: ByteLevel, Split, Sequence)", what,
                      ty);
    }
    t->steps[t->n_steps++] = st;
    return 0;
}

static int check_pipeline(smdlm_tokenizer *t, const cJSON *root, const char *path) {
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "version");
    if (ver && !(cJSON_IsString(ver) && strcmp(ver->valuestring, "1.0") == 0))
        return SM_ERR("'%s': unknown tokenizer.json version", path);
    if (parse_normalizer(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), path, 0) != 0 ||
        parse_pretok(t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), path, 0) != 0)
        return -1;
    bool byte_level = false;
    for (size_t i = 0; i < t->n_steps; i++) byte_level |= t->steps[i].byte_level;
    if (!byte_level)
        return SM_ERR("'%s': the pre_tokenizer has no ByteLevel step (not a byte-level BPE "
                      "tokenizer)",
                      path);
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    if (dec && !cJSON_IsNull(dec) &&
        !(cJSON_IsObject(dec) && strcmp(json_type_name(dec), "ByteLevel") == 0))
        return SM_ERR("'%s': unsupported decoder '%s' (only ByteLevel is supported)", path,
                      json_type_name(dec));
    return 0;
}

static int check_model(smdlm_tokenizer *t, const cJSON *model, const char *path) {
    if (!cJSON_IsObject(model)) return SM_ERR("'%s': missing model", path);
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (ty && !(cJSON_IsString(ty) && strcmp(ty->valuestring, "BPE") == 0))
        return SM_ERR("'%s': unsupported model type '%s' (only BPE is supported)", path,
                      json_type_name(model));
    const cJSON *drop = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (drop && !cJSON_IsNull(drop) && !(cJSON_IsNumber(drop) && drop->valuedouble == 0))
        return SM_ERR("'%s': BPE dropout is unsupported", path);
    if (!json_null_or_empty(cJSON_GetObjectItemCaseSensitive(model, "continuing_subword_prefix")) ||
        !json_null_or_empty(cJSON_GetObjectItemCaseSensitive(model, "end_of_word_suffix")))
        return SM_ERR("'%s': BPE continuing_subword_prefix/end_of_word_suffix are unsupported",
                      path);
    const cJSON *fb = cJSON_GetObjectItemCaseSensitive(model, "byte_fallback");
    if (fb && !cJSON_IsNull(fb) && !cJSON_IsFalse(fb))
        return SM_ERR("'%s': BPE byte_fallback is unsupported (byte-level BPE has no use for it)",
                      path);
    char what[512];
    snprintf(what, sizeof what, "'%s' model", path);
    return json_bool_field(model, "ignore_merges", false, &t->ignore_merges, what);
}

/* One entry of added_tokens (see added_from_json). */
static int added_one(smdlm_tokenizer *t, const cJSON *a, str_map *seen, int64_t *next_id,
                     const char *path, size_t i) {
    char what[512];
    snprintf(what, sizeof what, "'%s' added_tokens[%zu]", path, i);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(a, "content");
    if (!cJSON_IsObject(a) || !cJSON_IsString(c) || !c->valuestring[0])
        return SM_ERR("%s: missing or empty content", what);
    const char *s = c->valuestring;
    size_t n = strlen(s);
    if (utf8_check((const uint8_t *)s, n) != n)
        return SM_ERR("%s: content is not valid UTF-8", what);
    const cJSON *idv = cJSON_GetObjectItemCaseSensitive(a, "id");
    if (cJSON_IsNumber(idv) && idv->valuedouble < 0)
        return SM_ERR("%s: '%s' has a negative id", what, s);
    int32_t id = json_id(idv);
    if (id < 0) return SM_ERR("%s: '%s' has an invalid id", what, s);
    bool single, lstrip, rstrip, normalized, special;
    if (json_bool_field(a, "single_word", false, &single, what) ||
        json_bool_field(a, "lstrip", false, &lstrip, what) ||
        json_bool_field(a, "rstrip", false, &rstrip, what) ||
        json_bool_field(a, "normalized", true, &normalized, what) ||
        json_bool_field(a, "special", false, &special, what))
        return -1;
    if (single) return SM_ERR("%s: '%s': single_word added tokens are unsupported", what, s);
    if (str_map_put(seen, s, n, 0) >= 0) return SM_ERR("%s: duplicate added token '%s'", what, s);
    int64_t expect = str_map_get(&t->vocab, s, n);
    if (expect < 0) expect = (*next_id)++;
    if (expect > TOK_MAX_ID) return SM_ERR("%s: '%s': id too large", what, s);
    if (id != expect)
        return SM_ERR("%s: '%s' has id %d but the tokenizers library assigns it id %lld "
                      "(mismatched id)",
                      what, s, id, (long long)expect);
    add_added(t, s, id, special, lstrip, rstrip, normalized);
    return 0;
}

/* added_tokens: ids as HF assigns them (vocabulary id if the content is in the vocabulary, else
 * the next id from the vocabulary size on); a file whose ids disagree is rejected. */
static int added_from_json(smdlm_tokenizer *t, const cJSON *arr, const char *path) {
    if (!arr || cJSON_IsNull(arr)) return 0;
    if (!cJSON_IsArray(arr)) return SM_ERR("'%s': added_tokens is not an array", path);
    int64_t next_id = (int64_t)t->n_vocab;
    size_t i = 0;
    str_map seen; /* contents so far (pointers into the cJSON tree) */
    str_map_init(&seen, (size_t)cJSON_GetArraySize(arr));
    int rc = 0;
    for (const cJSON *a = arr->child; a && rc == 0; a = a->next, i++)
        rc = added_one(t, a, &seen, &next_id, path, i);
    free(seen.slots);
    return rc;
}

int tok_load_json(smdlm_tokenizer **out, const char *path) {
    *out = NULL;
    smdlm_tokenizer *t = tok_new();
    cJSON *root = parse_json_file(path, NULL);
    int rc = -1;
    if (!root) goto done;
    if (!cJSON_IsObject(root)) {
        SM_ERR("'%s': invalid JSON: not an object", path);
        goto done;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (check_pipeline(t, root, path) != 0 || check_model(t, model, path) != 0) goto done;
    char what[512];
    snprintf(what, sizeof what, "'%s' model.vocab", path);
    if (vocab_from_json(t, cJSON_GetObjectItemCaseSensitive(model, "vocab"), what) != 0) goto done;
    if (merges_from_json(t, cJSON_GetObjectItemCaseSensitive(model, "merges"), path) != 0)
        goto done;
    if (added_from_json(t, cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), path) != 0)
        goto done;
    snprintf(what, sizeof what, "'%s'", path);
    rc = finish(t, what);
done:
    cJSON_Delete(root);
    if (rc != 0) {
        tok_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

/* DIR/tokenizer_config.json (optional): the bos/eos/pad/mask tokens (a string, or an AddedToken
 * object with "content"; null or absent: undeclared) and the chat template. */
static int read_tokenizer_config(smdlm_tokenizer *t, const char *dir) {
    char *path = sm_path_join(dir, "tokenizer_config.json"), *text = NULL;
    size_t len;
    cJSON *root = NULL;
    int rc = 0;
    if (!sm_file_exists(path)) goto done;
    rc = -1;
    if (sm_read_file(path, TOK_MAX_FILE_BYTES, &text, &len) != 0) goto done;
    char what[512];
    snprintf(what, sizeof what, "'%s'", path);
    if (!(root = json_parse_object(text, what))) goto done;
    static const char *const keys[TOK_N_ROLES] = {"bos_token", "eos_token", "pad_token",
                                                  "mask_token"};
    for (int r = 0; r < TOK_N_ROLES; r++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, keys[r]);
        if (!v || cJSON_IsNull(v)) continue;
        if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
        if (!cJSON_IsString(v)) {
            SM_ERR("%s: %s is not a string or an object with a string \"content\"", what,
                   keys[r]);
            goto done;
        }
        int32_t id = tok_str_to_id(t, v->valuestring);
        if (id < 0) {
            SM_ERR("%s: %s '%.200s' is not a token of the tokenizer", what, keys[r],
                   v->valuestring);
            goto done;
        }
        t->role_id[r] = id;
    }
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(root, "chat_template");
    if (cJSON_IsArray(ct)) /* [{"name": "default", "template": ...}, ...] */
        for (const cJSON *e = ct->child; e; e = e->next) {
            const char *name = json_get_string(e, "name");
            if (name && strcmp(name, "default") == 0) ct = cJSON_GetObjectItemCaseSensitive(e, "template");
        }
    if (cJSON_IsString(ct)) t->chat_template = sm_strdup(ct->valuestring);
    rc = 0;
done:
    cJSON_Delete(root);
    free(text);
    free(path);
    return rc;
}

int tok_load_dir(smdlm_tokenizer **out, const char *dir) {
    *out = NULL;
    char *tj = sm_path_join(dir, "tokenizer.json");
    char *vj = sm_path_join(dir, "vocab.json");
    char *mt = sm_path_join(dir, "merges.txt");
    int rc;
    if (sm_file_exists(tj))
        rc = tok_load_json(out, tj);
    else if (sm_file_exists(vj) && sm_file_exists(mt))
        rc = tok_load_files(out, vj, mt);
    else
        rc = SM_ERR("'%s': no tokenizer.json, nor vocab.json + merges.txt", dir);
    if (rc == 0 && read_tokenizer_config(*out, dir) != 0) {
        tok_free(*out);
        *out = NULL;
        rc = -1;
    }
    free(tj);
    free(vj);
    free(mt);
    return rc;
}

const char *const tok_dir_files[TOK_DIR_NFILES] = {"tokenizer.json", "vocab.json", "merges.txt",
                                                   "tokenizer_config.json", "special_tokens_map.json"};

static int dir_has(const char *dir, const char *name) {
    char *path = sm_path_join(dir, name);
    int yes = sm_file_exists(path);
    free(path);
    return yes;
}

int tok_dir_has_tokenizer(const char *dir) {
    return dir_has(dir, "tokenizer.json") || dir_has(dir, "vocab.json");
}

int tok_copy_dir(const char *from, const char *to, const char **copied, int *ncopied) {
    int n = 0;
    for (int i = 0; i < TOK_DIR_NFILES; i++) {
        if (!dir_has(from, tok_dir_files[i])) continue;
        char *a = sm_path_join(from, tok_dir_files[i]), *b = sm_path_join(to, tok_dir_files[i]);
        int rc = sm_copy_file(a, b);
        free(a), free(b);
        if (rc) return -1;
        if (copied) copied[n] = tok_dir_files[i];
        n++;
    }
    if (ncopied) *ncopied = n;
    return 0;
}

/* FNV-1a (64-bit) over bytes, continuing from h. */
static uint64_t fnv1a64(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

int tok_fingerprint_dir(const char *dir, char out[TOK_FINGERPRINT_SIZE]) {
    static const char *const json_only[] = {"tokenizer.json", NULL};
    static const char *const bpe_pair[] = {"vocab.json", "merges.txt", NULL};
    const char *const *files = dir_has(dir, "tokenizer.json") ? json_only : dir_has(dir, "vocab.json") ? bpe_pair : NULL;
    if (!files) return 1;
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; files[i]; i++) {
        char *path = sm_path_join(dir, files[i]), *data, len[32];
        size_t n;
        int rc = sm_read_file(path, TOK_MAX_FILE_BYTES, &data, &n);
        free(path);
        if (rc) return sm_wrap_error("fingerprinting the tokenizer in '%s'", dir);
        snprintf(len, sizeof len, "%zu", n);
        h = fnv1a64(h, files[i], strlen(files[i]) + 1); /* name and length delimit the files */
        h = fnv1a64(h, len, strlen(len) + 1);
        h = fnv1a64(h, data, n);
        free(data);
    }
    snprintf(out, TOK_FINGERPRINT_SIZE, "fnv1a64:%016llx", (unsigned long long)h);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Encoding */

typedef struct {
    int32_t c;          /* token id */
    int32_t prev, next; /* neighbours (-1: none) */
    int32_t len;        /* 0: merged away */
} bpe_sym;

typedef struct {
    uint32_t rank, pos;
    int32_t new_id;
} bpe_merge;

/* Per-call cache of BPE results for short words (HF keeps a shared one; per call keeps
 * encoding lock-free). Open addressing, grown up to WC_MAX_SLOTS, then full. */
#define WC_MAX_WORD 48
#define WC_MAX_SLOTS (1u << 16)

typedef struct {
    uint32_t word_off; /* into bytes; UINT32_MAX: empty */
    uint32_t ids_off;  /* into ids */
    uint8_t word_len, n_ids;
} wc_slot;

typedef struct {
    wc_slot *slots;
    size_t mask, count;
    uint8_t *bytes;
    size_t nbytes, cap_bytes;
    int32_t *ids;
    size_t nids, cap_ids;
} word_cache;

typedef struct {
    const smdlm_tokenizer *t;
    word_cache wc;
    pcre2_match_data *md;
    bpe_sym *sym;
    bpe_merge *heap;
    size_t cap;       /* capacity of sym (heap has 3× that) */
    scratch_buf buf;  /* ignore_merges lookups */
    scratch_buf pbuf[TOK_MAX_STEPS]; /* per step: pieces with the prefix space prepended */
    bool allow_special;              /* match special added tokens in the text */
    int32_t *ids;
    size_t n, ids_cap;
} enc_ctx;

static void push_id(enc_ctx *c, int32_t id) {
    if (c->n == c->ids_cap) {
        c->ids_cap = c->ids_cap ? c->ids_cap * 2 : 256;
        c->ids = sm_realloc(c->ids, c->ids_cap * sizeof *c->ids);
    }
    c->ids[c->n++] = id;
}

static bool merge_less(const bpe_merge *a, const bpe_merge *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(bpe_merge *h, size_t *n, bpe_merge m) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!merge_less(&m, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = m;
}

static bpe_merge heap_pop(bpe_merge *h, size_t *n) {
    bpe_merge top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const bpe_merge *best = &last;
        if (l < *n && merge_less(&h[l], best)) {
            m = l;
            best = &h[l];
        }
        if (r < *n && merge_less(&h[r], best)) m = r;
        if (m == i) break;
        h[i] = h[m];
        i = m;
    }
    if (*n) h[i] = last;
    return top;
}

static void push_pair(const smdlm_tokenizer *t, bpe_merge *h, size_t *nh, const bpe_sym *sym,
                      int32_t left, int32_t right) {
    const pair_slot *p = pair_map_get(&t->merges, sym[left].c, sym[right].c);
    if (p) heap_push(h, nh, (bpe_merge){p->rank, (uint32_t)left, p->new_id});
}

static void wc_free(word_cache *wc) {
    free(wc->slots);
    free(wc->bytes);
    free(wc->ids);
}

static wc_slot *wc_find(const word_cache *wc, const uint8_t *w, size_t n) {
    for (size_t i = tok_hash_bytes((const char *)w, n) & wc->mask;; i = (i + 1) & wc->mask) {
        wc_slot *e = &wc->slots[i];
        if (e->word_off == UINT32_MAX) return e;
        if (e->word_len == n && memcmp(wc->bytes + e->word_off, w, n) == 0) return e;
    }
}

static void wc_grow(word_cache *wc) {
    size_t old_cap = wc->slots ? wc->mask + 1 : 0, cap = old_cap ? old_cap * 2 : 256;
    wc_slot *old = wc->slots;
    wc->slots = sm_malloc(cap * sizeof *wc->slots);
    for (size_t i = 0; i < cap; i++) wc->slots[i].word_off = UINT32_MAX;
    wc->mask = cap - 1;
    for (size_t j = 0; j < old_cap; j++)
        if (old[j].word_off != UINT32_MAX)
            *wc_find(wc, wc->bytes + old[j].word_off, old[j].word_len) = old[j];
    free(old);
}

/* Remember ids[0..k) as the encoding of word w[0..n). */
static void wc_put(word_cache *wc, const uint8_t *w, size_t n, const int32_t *ids, size_t k) {
    if (k > UINT8_MAX) return;
    if (!wc->slots || (wc->count + 1) * 2 > wc->mask + 1) {
        if (wc->slots && wc->mask + 1 >= WC_MAX_SLOTS) return; /* full */
        wc_grow(wc);
    }
    wc_slot *e = wc_find(wc, w, n);
    if (e->word_off != UINT32_MAX) return;
    if (wc->nbytes + n > wc->cap_bytes) {
        wc->cap_bytes = 2 * (wc->nbytes + n) + 1024;
        wc->bytes = sm_realloc(wc->bytes, wc->cap_bytes);
    }
    if (wc->nids + k > wc->cap_ids) {
        wc->cap_ids = 2 * (wc->nids + k) + 256;
        wc->ids = sm_realloc(wc->ids, wc->cap_ids * sizeof *wc->ids);
    }
    memcpy(wc->bytes + wc->nbytes, w, n);
    memcpy(wc->ids + wc->nids, ids, k * sizeof *ids);
    *e = (wc_slot){(uint32_t)wc->nbytes, (uint32_t)wc->nids, (uint8_t)n, (uint8_t)k};
    wc->nbytes += n;
    wc->nids += k;
    wc->count++;
}

/* BPE on one pre-tokenized word (raw bytes), HF's Word::merge_all without dropout. */
static void bpe_word(enc_ctx *c, const uint8_t *w, size_t n) {
    const smdlm_tokenizer *t = c->t;
    if (n == 1) {
        push_id(c, t->byte_id[w[0]]);
        return;
    }
    if (t->ignore_merges) {
        char *s = scratch_reserve(&c->buf, 2 * n);
        size_t k = 0;
        for (size_t i = 0; i < n; i++) k += utf8_put_small(s + k, g_b2u[w[i]]);
        int32_t id = str_map_get(&t->vocab, s, k);
        if (id >= 0) {
            push_id(c, id);
            return;
        }
    }
    bool cacheable = n <= WC_MAX_WORD;
    if (cacheable && c->wc.slots) {
        const wc_slot *e = wc_find(&c->wc, w, n);
        if (e->word_off != UINT32_MAX) {
            for (size_t i = 0; i < e->n_ids; i++) push_id(c, c->wc.ids[e->ids_off + i]);
            return;
        }
    }
    size_t first = c->n;
    if (n > c->cap) {
        c->cap = n * 2;
        c->sym = sm_realloc(c->sym, c->cap * sizeof *c->sym);
        c->heap = sm_realloc(c->heap, 3 * c->cap * sizeof *c->heap);
    }
    bpe_sym *sym = c->sym;
    bpe_merge *h = c->heap;
    size_t nh = 0;
    for (size_t i = 0; i < n; i++)
        sym[i] = (bpe_sym){t->byte_id[w[i]], (int32_t)i - 1, i + 1 < n ? (int32_t)i + 1 : -1, 1};
    for (size_t i = 0; i + 1 < n; i++) push_pair(t, h, &nh, sym, (int32_t)i, (int32_t)i + 1);
    while (nh) {
        bpe_merge top = heap_pop(h, &nh);
        bpe_sym *cur = &sym[top.pos];
        if (cur->len == 0 || cur->next < 0) continue;
        int32_t nx = cur->next;
        const pair_slot *p = pair_map_get(&t->merges, cur->c, sym[nx].c);
        if (!p || p->new_id != top.new_id) continue; /* stale entry */
        cur->c = top.new_id;
        cur->len += sym[nx].len;
        cur->next = sym[nx].next;
        sym[nx].len = 0;
        if (cur->next >= 0) sym[cur->next].prev = (int32_t)top.pos;
        if (cur->prev >= 0) push_pair(t, h, &nh, sym, cur->prev, (int32_t)top.pos);
        if (cur->next >= 0) push_pair(t, h, &nh, sym, (int32_t)top.pos, cur->next);
    }
    for (size_t i = 0; i < n; i++)
        if (sym[i].len) push_id(c, sym[i].c);
    if (cacheable) wc_put(&c->wc, w, n, c->ids + first, c->n - first);
}

static int pretok(enc_ctx *c, size_t step, const char *s, size_t n);

/* HF's Split with behavior Isolated: every match is a piece, and so is the text between matches.
 * An empty match only separates the text at its position (the search then moves on by one
 * character, as Oniguruma's iterator does). */
static int split_isolated(enc_ctx *c, const pcre2_code *re, size_t step, const char *s, size_t n) {
    size_t off = 0, piece = 0; /* where the search goes on; start of the text not yet passed on */
    while (off <= n) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s, n, off, PCRE2_NO_UTF_CHECK, c->md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) { /* e.g. the match limit of a pathological pattern */
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return SM_ERR("pre-tokenizer regex failed at byte %zu: %s", off, (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->md);
        size_t ms = ov[0], me = ov[1];
        SM_ASSERT(ms >= off && me >= ms && me <= n);
        if (ms > piece && pretok(c, step + 1, s + piece, ms - piece)) return -1;
        if (me > ms && pretok(c, step + 1, s + ms, me - ms)) return -1;
        piece = me;
        if (me > ms) {
            off = me;
        } else { /* empty match: step over one character */
            if (me == n) break;
            size_t k = 1;
            while (me + k < n && is_cont((uint8_t)s[me + k])) k++;
            off = me + k;
        }
    }
    return piece < n ? pretok(c, step + 1, s + piece, n - piece) : 0;
}

/* Runs pre-tokenizer `step` and the later ones on s[0..n), then BPE on every final piece. */
static int pretok(enc_ctx *c, size_t step, const char *s, size_t n) {
    if (n == 0) return 0;
    if (step == c->t->n_steps) {
        bpe_word(c, (const uint8_t *)s, n);
        return 0;
    }
    const pretok_step *p = &c->t->steps[step];
    if (p->add_prefix_space && s[0] != ' ') { /* ByteLevel: per piece, as HF */
        char *b = scratch_reserve(&c->pbuf[step], n + 1);
        b[0] = ' ';
        memcpy(b + 1, s, n);
        s = b;
        n++;
    }
    return p->re ? split_isolated(c, p->re, step, s, n) : pretok(c, step + 1, s, n);
}

/* Applies the normalizer to s[0..n): *out is a malloc'ed copy, or NULL when the text is left as
 * it is (no normalizer, or ASCII, which every normalization form keeps). */
static int normalize(const smdlm_tokenizer *t, const char *s, size_t n, char **out, size_t *len) {
    *out = NULL;
    *len = n;
    size_t i = 0;
    if (t->n_norm == 0) return 0;
    while (i < n && (uint8_t)s[i] < 0x80) i++;
    if (i == n) return 0;
    char *cur = NULL;
    for (size_t k = 0; k < t->n_norm; k++) {
        static const int opts[] = {
            UTF8PROC_COMPOSE,                      /* NFC */
            UTF8PROC_DECOMPOSE,                    /* NFD */
            UTF8PROC_COMPOSE | UTF8PROC_COMPAT,    /* NFKC */
            UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT}; /* NFKD */
        utf8proc_uint8_t *dst = NULL;
        utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)(cur ? cur : s),
                                          (utf8proc_ssize_t)*len, &dst,
                                          (utf8proc_option_t)(UTF8PROC_STABLE | opts[t->norm[k]]));
        free(cur);
        if (r < 0) return SM_ERR("normalization failed: %s", utf8proc_errmsg(r));
        cur = (char *)dst;
        *len = (size_t)r;
    }
    *out = cur;
    return 0;
}

/* Longest added token of `set` starting at s[pos], or -1. */
static int32_t added_match(const added_set *set, const char *s, size_t n, size_t pos) {
    uint8_t b = (uint8_t)s[pos];
    for (uint32_t k = set->start[b]; k < set->start[b + 1]; k++) {
        if (set->lens[k] > n - pos) continue;
        int32_t idx = str_map_get(&set->map, s + pos, set->lens[k]);
        if (idx >= 0) return idx;
    }
    return -1;
}

static int split_added(enc_ctx *c, const added_set *set, const char *s, size_t n, int pass);

/* Text between added tokens: pass 0 (non-normalized tokens) normalizes it and hands it to pass 1
 * (normalized tokens), pass 1 to the pre-tokenizer. */
static int between(enc_ctx *c, const char *s, size_t n, int pass) {
    if (pass == 1) return pretok(c, 0, s, n);
    char *norm;
    size_t len;
    if (normalize(c->t, s, n, &norm, &len) != 0) return -1;
    int rc = split_added(c, &c->t->set_norm, norm ? norm : s, len, 1);
    free(norm);
    return rc;
}

/* HF's AddedVocabulary::find_matches + split: leftmost-longest matches of `set`, lstrip/rstrip
 * extending a match over White_Space, ids of matches pushed, the text between passed on. */
static int split_added(enc_ctx *c, const added_set *set, const char *s, size_t n, int pass) {
    const smdlm_tokenizer *t = c->t;
    size_t start_offset = 0, pos = 0;
    bool any = set->start[256] > 0;
    while (any && pos < n) {
        int32_t k = added_match(set, s, n, pos);
        if (k < 0) {
            pos++;
            continue;
        }
        const added_token *a = &t->added[k];
        size_t start = pos, stop = pos + a->match_len;
        pos = stop;
        if (a->special && !c->allow_special) continue; /* plain text (HF split_special_tokens) */
        if (a->lstrip) /* not before the previous match: also keeps this linear */
            start = start_offset +
                    ws_suffix_start((const uint8_t *)s + start_offset, start - start_offset);
        if (a->rstrip) stop += ws_prefix_len((const uint8_t *)s + stop, n - stop);
        if (start_offset < start && between(c, s + start_offset, start - start_offset, pass))
            return -1;
        push_id(c, a->id);
        start_offset = stop;
    }
    return start_offset < n ? between(c, s + start_offset, n - start_offset, pass) : 0;
}

int tok_encode(const smdlm_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n) {
    return tok_encode_ex(t, text, len, TOK_ALLOW_SPECIAL, ids, n);
}

int tok_encode_ex(const smdlm_tokenizer *t, const char *text, size_t len, unsigned flags,
                  int32_t **ids, size_t *n) {
    *ids = NULL;
    *n = 0;
    if (!text && len) return SM_ERR("NULL text");
    if (len > (size_t)INT32_MAX)
        return SM_ERR("text too long (%zu bytes, limit %d)", len, INT32_MAX);
    size_t bad = utf8_check((const uint8_t *)text, len);
    if (bad != len)
        return SM_ERR("input text is not valid UTF-8 (invalid byte 0x%02x at byte offset %zu)",
                      (uint8_t)text[bad], bad);
    enc_ctx c = {.t = t, .allow_special = (flags & TOK_ALLOW_SPECIAL) != 0};
    c.md = pcre2_match_data_create(1, NULL); /* only the whole match is read */
    SM_ASSERT(c.md != NULL);
    int rc = len ? split_added(&c, &t->set_raw, text, len, 0) : 0;
    pcre2_match_data_free(c.md);
    free(c.sym);
    free(c.heap);
    free(c.buf.buf);
    for (size_t i = 0; i < TOK_MAX_STEPS; i++) free(c.pbuf[i].buf);
    wc_free(&c.wc);
    if (rc != 0) {
        free(c.ids);
        return -1;
    }
    *ids = c.ids ? c.ids : sm_malloc(sizeof(int32_t));
    *n = c.n;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Decoding */

int tok_decode(const smdlm_tokenizer *t, const int32_t *ids, size_t n, char **text, size_t *len) {
    return tok_decode_ex(t, ids, n, 0, text, len);
}

int tok_decode_ex(const smdlm_tokenizer *t, const int32_t *ids, size_t n, unsigned flags,
                  char **text, size_t *len) {
    bool skip = (flags & TOK_SKIP_SPECIAL) != 0;
    *text = NULL;
    *len = 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_ids || !t->id_str[ids[i]])
            return SM_ERR("token id %d at position %zu is out of range (vocabulary size %d)",
                          ids[i], i, t->n_ids);
        if (!(skip && t->special[ids[i]])) total += t->dec_off[ids[i] + 1] - t->dec_off[ids[i]];
    }
    uint8_t *bytes = sm_malloc(total + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (skip && t->special[ids[i]]) continue;
        size_t a = t->dec_off[ids[i]], b = t->dec_off[ids[i] + 1];
        memcpy(bytes + o, t->dec + a, b - a);
        o += b - a;
    }
    /* lossy UTF-8: each maximal invalid subsequence → U+FFFD (EF BF BD) */
    char *out = sm_malloc(3 * total + 1);
    size_t w = 0;
    for (size_t i = 0; i < total;) {
        size_t bad = 0, k = bytes[i] < 0x80 ? 1 : utf8_seq(bytes + i, total - i, &bad);
        if (k) {
            memcpy(out + w, bytes + i, k);
            w += k;
            i += k;
        } else {
            memcpy(out + w, "\xef\xbf\xbd", 3);
            w += 3;
            i += bad;
        }
    }
    out[w] = 0;
    free(bytes);
    *text = out;
    *len = w;
    return 0;
}
