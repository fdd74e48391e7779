/* bpe_train.c — byte-level BPE training. See bpe_train.h.
 *
 * Layout: hash maps · counting (inputs → documents → GPT-2 regex words → word table) ·
 * merging (HF BpeTrainer's loop) · output files.
 *
 * Reading a plain file in chunks gives the words of the whole document: a regex match is
 * counted only when it ends at least CARRY_MARGIN bytes before the end of the text read so
 * far (or at the end of the document). Every alternative of the GPT-2 pattern decides its
 * match from the characters up to one past its end (the `\s+(?!\S)` lookahead, a run's
 * terminator) or three bytes past its start (the contractions), so such a match is the one
 * the whole document gives; the rest is carried over to the next chunk and matched again.
 */
#include "text/bpe_train.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "text/corpus.h"
#include "text/tokenizer_internal.h"
#include "base/progress.h"
#include "base/util.h"

#define CARRY_MARGIN 16
#define DEFAULT_CHUNK ((size_t)1 << 20)
#define N_BYTES 256

static const char *const SPECIALS[2] = {"<|endoftext|>", "<|mask|>"};

/* ---------------------------------------------------------------------------------------------
 * Hash maps */

static uint64_t hash_u64(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return k;
}

/* byte strings (in an arena, by offset) → index; used for words and for tokens */
typedef struct {
    uint32_t *slots; /* index + 1; 0: empty */
    size_t mask, count;
} str_index;

typedef struct {
    char *bytes; /* arena */
    size_t nbytes, cap;
} arena;

static size_t arena_put(arena *a, const char *s, size_t n) {
    if (a->nbytes + n > a->cap) {
        a->cap = 2 * (a->nbytes + n) + 4096;
        a->bytes = sm_realloc(a->bytes, a->cap);
    }
    memcpy(a->bytes + a->nbytes, s, n);
    a->nbytes += n;
    return a->nbytes - n;
}

/* word / token records share the layout the index needs */
typedef struct {
    uint64_t off; /* into the arena */
    uint32_t len;
    uint64_t hash;
} str_rec;

static void str_index_grow(str_index *m, const str_rec *recs) {
    size_t cap = m->slots ? 2 * (m->mask + 1) : 1024;
    uint32_t *slots = sm_calloc(cap, sizeof *slots);
    for (size_t i = 0; m->slots && i <= m->mask; i++) {
        uint32_t v = m->slots[i];
        if (!v) continue;
        size_t j = recs[v - 1].hash & (cap - 1);
        while (slots[j]) j = (j + 1) & (cap - 1);
        slots[j] = v;
    }
    free(m->slots);
    m->slots = slots;
    m->mask = cap - 1;
}

/* Slot of s: holds index + 1 when present, 0 where it would go. */
static uint32_t *str_index_find(const str_index *m, const str_rec *recs, const char *base,
                                const char *s, size_t n, uint64_t h) {
    for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
        uint32_t v = m->slots[i];
        if (!v) return &m->slots[i];
        const str_rec *r = &recs[v - 1];
        if (r->hash == h && r->len == n && memcmp(base + r->off, s, n) == 0) return &m->slots[i];
    }
}

/* (left id, right id) → count, plus the per-merge "where" bookkeeping (see merge step) */
typedef struct {
    uint64_t key; /* TOK_KEY_EMPTY: empty */
    int64_t count;
    uint32_t stamp, widx; /* widx valid when stamp == the current merge's stamp */
} pair_slot;

typedef struct {
    pair_slot *slots;
    size_t mask, count;
} pair_map;

static uint64_t pair_key(uint32_t a, uint32_t b) { return ((uint64_t)a << 32) | b; }

static size_t pair_slot_of(uint64_t key, size_t mask) { return hash_u64(key) & mask; }

static void pair_map_grow(pair_map *m) {
    void *slots = m->slots;
    tok_keymap_grow(&slots, &m->mask, sizeof *m->slots, 4096, pair_slot_of);
    m->slots = slots;
}

/* The slot of key, inserted with count 0 if absent. Pointers stay valid until the next call. */
static pair_slot *pair_get(pair_map *m, uint64_t key) {
    if (!m->slots || (m->count + 1) * 2 > m->mask + 1) pair_map_grow(m);
    size_t i = pair_slot_of(key, m->mask);
    while (m->slots[i].key != TOK_KEY_EMPTY && m->slots[i].key != key) i = (i + 1) & m->mask;
    if (m->slots[i].key == TOK_KEY_EMPTY) {
        m->slots[i] = (pair_slot){.key = key};
        m->count++;
    }
    return &m->slots[i];
}

/* ---------------------------------------------------------------------------------------------
 * The trainer */

typedef struct {
    uint32_t *v;
    uint32_t n, cap;
} u32_list;

static void u32_push(u32_list *l, uint32_t x) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 4;
        l->v = sm_realloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = x;
}

/* A queue entry: HF's Merge {pair, count, pos}. */
typedef struct {
    int64_t count;
    uint32_t a, b;
    uint64_t seq; /* ties between entries of one pair: older first */
    u32_list pos; /* words to merge in */
} qentry;

typedef struct {
    uint32_t a, b, id;
} merge_rec;

struct bpe_trainer {
    bpe_train_opts o;
    pcre2_code *re;
    pcre2_match_data *md;
    uint16_t b2u[N_BYTES];
    uint32_t byte_id[N_BYTES]; /* byte → initial symbol id (code-point order) */
    /* word table */
    arena words_text;
    str_rec *words;
    uint64_t *word_count;
    size_t n_words, cap_words;
    str_index word_index;
    /* tokens (ids 0..255 the bytes, then merge results) */
    arena tok_text;
    str_rec *toks;
    size_t n_toks, cap_toks;
    str_index tok_index;
    char **tok_str; /* byte-level vocabulary strings, built by train */
    /* merges as written */
    merge_rec *merges;
    size_t n_merges;
    bool trained;
    bpe_train_stats st;
    progress prog; /* stderr (o.progress) */
};

void bpe_train_defaults(bpe_train_opts *o) {
    *o = (bpe_train_opts){.vocab_size = 0,
                          .min_frequency = 2,
                          .glob = "*",
                          .jsonl_field = "text",
                          .chunk_bytes = DEFAULT_CHUNK};
}

static uint32_t add_token(bpe_trainer *t, const char *s, size_t n) {
    if (t->n_toks == t->cap_toks) {
        t->cap_toks = t->cap_toks ? 2 * t->cap_toks : 1024;
        t->toks = sm_realloc(t->toks, t->cap_toks * sizeof *t->toks);
    }
    if (!t->tok_index.slots || (t->n_toks + 1) * 2 > t->tok_index.mask + 1)
        str_index_grow(&t->tok_index, t->toks);
    uint64_t h = tok_hash_bytes(s, n);
    uint32_t *slot = str_index_find(&t->tok_index, t->toks, t->tok_text.bytes, s, n, h);
    SM_ASSERT(*slot == 0);
    uint64_t off = arena_put(&t->tok_text, s, n);
    t->toks[t->n_toks] = (str_rec){off, (uint32_t)n, h};
    *slot = (uint32_t)++t->n_toks;
    return (uint32_t)(t->n_toks - 1);
}

static int cmp_u16(const void *a, const void *b) {
    return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

int bpe_trainer_new(bpe_trainer **out, const bpe_train_opts *o) {
    *out = NULL;
    if (o->vocab_size < BPE_MIN_VOCAB || o->vocab_size > BPE_MAX_VOCAB)
        return SM_ERR("vocabulary size %d is out of range [%d, %d] (the 256 byte tokens, "
                      "<|endoftext|> and <|mask|> are always in it)",
                      o->vocab_size, BPE_MIN_VOCAB, BPE_MAX_VOCAB);
    if (!o->glob || !*o->glob) return SM_ERR("empty --glob pattern");
    if (!o->jsonl_field || !*o->jsonl_field) return SM_ERR("empty --jsonl-field name");
    bpe_trainer *t = sm_calloc(1, sizeof *t);
    t->o = *o;
    if (!t->o.chunk_bytes) t->o.chunk_bytes = DEFAULT_CHUNK;
    progress_start(&t->prog, "smdlm tokenizer train", !o->progress);
    t->re = tok_gpt2_regex();
    t->md = pcre2_match_data_create_from_pattern(t->re, NULL);
    SM_ASSERT(t->md != NULL);
    tok_byte_to_unicode(t->b2u);
    /* initial alphabet: the 256 byte symbols in code-point order (HF sorts it so) */
    uint16_t cps[N_BYTES];
    memcpy(cps, t->b2u, sizeof cps);
    qsort(cps, N_BYTES, sizeof *cps, cmp_u16);
    for (int i = 0; i < N_BYTES; i++)
        for (int b = 0; b < N_BYTES; b++)
            if (t->b2u[b] == cps[i]) t->byte_id[b] = (uint32_t)i;
    for (int i = 0; i < N_BYTES; i++)
        for (int b = 0; b < N_BYTES; b++)
            if (t->byte_id[b] == (uint32_t)i) {
                char c = (char)b;
                uint32_t id = add_token(t, &c, 1);
                SM_ASSERT(id == (uint32_t)i);
            }
    *out = t;
    return 0;
}

void bpe_trainer_free(bpe_trainer *t) {
    if (!t) return;
    pcre2_match_data_free(t->md);
    pcre2_code_free(t->re);
    free(t->words_text.bytes);
    free(t->words);
    free(t->word_count);
    free(t->word_index.slots);
    free(t->tok_text.bytes);
    free(t->toks);
    free(t->tok_index.slots);
    if (t->tok_str)
        for (size_t i = 0; i < t->n_toks; i++) free(t->tok_str[i]);
    free(t->tok_str);
    free(t->merges);
    free(t);
}

void bpe_trainer_stats(const bpe_trainer *t, bpe_train_stats *st) { *st = t->st; }


/* ---------------------------------------------------------------------------------------------
 * Counting */

static void count_word(bpe_trainer *t, const char *s, size_t n) {
    t->st.words++;
    uint64_t h = tok_hash_bytes(s, n);
    if (!t->word_index.slots || (t->n_words + 1) * 2 > t->word_index.mask + 1)
        str_index_grow(&t->word_index, t->words);
    uint32_t *slot = str_index_find(&t->word_index, t->words, t->words_text.bytes, s, n, h);
    if (*slot) {
        t->word_count[*slot - 1]++;
        return;
    }
    SM_ASSERT(t->n_words < UINT32_MAX - 1);
    if (t->n_words == t->cap_words) {
        t->cap_words = t->cap_words ? 2 * t->cap_words : 4096;
        t->words = sm_realloc(t->words, t->cap_words * sizeof *t->words);
        t->word_count = sm_realloc(t->word_count, t->cap_words * sizeof *t->word_count);
    }
    uint64_t off = arena_put(&t->words_text, s, n);
    t->words[t->n_words] = (str_rec){off, (uint32_t)n, h};
    t->word_count[t->n_words] = 1;
    *slot = (uint32_t)++t->n_words;
}

/* Counts the GPT-2 words of valid UTF-8 s[0..n); *used receives the bytes consumed. Unless
 * `last` (the end of the document), matches too close to the end are left for the next call. */
static int pretokenize(bpe_trainer *t, const char *s, size_t n, bool last, size_t *used) {
    size_t off = 0;
    int rc = 0;
    while (off < n) {
        int m = pcre2_match(t->re, (PCRE2_SPTR)s, n, off, PCRE2_NO_UTF_CHECK, t->md, NULL);
        size_t ms, me;
        if (m == PCRE2_ERROR_NOMATCH) {
            ms = me = n;
        } else if (m < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(m, msg, sizeof msg);
            rc = SM_ERR("pre-tokenizer regex failed: %s", (const char *)msg);
            break;
        } else {
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(t->md);
            ms = ov[0];
            me = ov[1];
            SM_ASSERT(ms >= off && me > ms && me <= n);
        }
        if (!last && me + CARRY_MARGIN > n) break;
        /* HF's Isolated split: text between matches (never left by this pattern) is a word */
        if (ms > off) count_word(t, s + off, ms - off);
        if (me > ms) count_word(t, s + ms, me - ms);
        off = me;
    }
    if (used) *used = off;
    return rc;
}

/* Checks a document (or the first n bytes of one) for UTF-8 and NUL; `what` names it. */
static int check_text(const char *s, size_t n, uint64_t base, const char *what) {
    size_t bad = tok_utf8_valid_prefix(s, n);
    if (bad != n)
        return SM_ERR("%s: invalid UTF-8 (byte 0x%02x at byte offset %llu): not a text file?",
                      what, (uint8_t)s[bad], (unsigned long long)(base + bad));
    const char *z = memchr(s, 0, n);
    if (z)
        return SM_ERR("%s: a NUL byte at byte offset %llu: not a text file?", what,
                      (unsigned long long)(base + (size_t)(z - s)));
    return 0;
}

int bpe_trainer_add_document(bpe_trainer *t, const char *text, size_t len) {
    if (t->trained) return SM_ERR("the trainer has already been trained");
    if (check_text(text, len, 0, "document")) return -1;
    t->st.documents++;
    t->st.bytes += len;
    return pretokenize(t, text, len, true, NULL);
}

/* Length of the incomplete UTF-8 sequence at the end of s[0..n) (0..3): bytes that may
 * become valid when the next chunk arrives. */
static size_t utf8_tail(const char *s, size_t n) {
    for (size_t k = 1; k <= 3 && k <= n; k++) {
        uint8_t c = (uint8_t)s[n - k];
        if ((c & 0xc0) == 0x80) continue; /* continuation: look further back */
        size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
        return need > k ? k : 0;
    }
    return 0;
}

static void count_progress(bpe_trainer *t) {
    progress_report(&t->prog, 0, 0, "counting: %llu files, %.1f MB, %zu distinct words",
                  (unsigned long long)t->st.files, (double)t->st.bytes / 1e6, t->n_words);
}

/* A plain file: one document, read in chunks. buf[start, end) is text read and not counted
 * yet; buf[0, valid) has been checked. */
static int add_text_file(bpe_trainer *t, const char *path) {
    FILE *f = sm_fopen_regular(path);
    if (!f) return -1;
    size_t cap = 0, start = 0, end = 0, valid = 0;
    char *buf = NULL;
    uint64_t base = 0; /* document offset of buf[0] */
    bool eof = false;
    int rc = 0;
    while (rc == 0 && !eof) {
        if (start > 0) {
            memmove(buf, buf + start, end - start);
            base += start;
            end -= start;
            valid -= start;
            start = 0;
        }
        /* at least a chunk; more when one word fills the buffer (linear time for long words) */
        size_t want = t->o.chunk_bytes > end ? t->o.chunk_bytes : end;
        if (end + want > cap) buf = sm_realloc(buf, cap = end + want);
        size_t got = fread(buf + end, 1, want, f);
        if (got < want) {
            if (ferror(f)) {
                rc = SM_ERR("cannot read '%s': %s", path, strerror(errno));
                break;
            }
            eof = true;
        }
        end += got;
        t->st.bytes += got;
        /* an incomplete UTF-8 sequence at the end waits for the next chunk */
        size_t stop = eof ? end : end - utf8_tail(buf, end);
        if (stop > valid) {
            rc = check_text(buf + valid, stop - valid, base + valid, path);
            valid = stop;
        }
        if (rc == 0) rc = pretokenize(t, buf, stop, eof, &start);
        if (rc == 0 && start == 0 && end >= BPE_MAX_DOC_BYTES)
            rc = SM_ERR("'%s': a word of more than %zu bytes at byte offset %llu (no space or "
                        "punctuation): not a text file?",
                        path, BPE_MAX_DOC_BYTES, (unsigned long long)base);
        count_progress(t);
    }
    free(buf);
    fclose(f);
    if (rc == 0) t->st.documents++;
    return rc;
}

static int add_jsonl_file(bpe_trainer *t, const char *path) {
    corpus_lines r;
    if (corpus_lines_open(&r, path, BPE_MAX_DOC_BYTES)) return -1;
    char *line;
    size_t n;
    long lineno = 0;
    int rc = 0;
    char what[1100];
    for (;;) {
        uint64_t before = r.consumed;
        int got = corpus_lines_next(&r, lineno + 1, &line, &n);
        if (got <= 0) {
            rc = got;
            break;
        }
        lineno++;
        t->st.bytes += r.consumed - before;
        snprintf(what, sizeof what, "'%s' line %ld", path, lineno);
        if (corpus_is_blank(line, n)) continue;
        if (memchr(line, 0, (size_t)n)) {
            rc = SM_ERR("%s: a NUL byte at byte %zu of the line: not a JSONL file?", what,
                        (size_t)((char *)memchr(line, 0, (size_t)n) - line));
            break;
        }
        const char *jend = NULL;
        cJSON *obj = cJSON_ParseWithLengthOpts(line, (size_t)n, &jend, 0);
        const cJSON *field = obj ? cJSON_GetObjectItemCaseSensitive(obj, t->o.jsonl_field) : NULL;
        if (!obj || !cJSON_IsObject(obj)) {
            size_t at = jend && jend >= line && jend <= line + n ? (size_t)(jend - line) : 0;
            rc = obj ? SM_ERR("%s: not a JSON object", what)
                     : SM_ERR("%s: invalid JSON near byte %zu", what, at);
        } else if (!cJSON_IsString(field)) {
            rc = SM_ERR("%s: no string field \"%s\" (see --jsonl-field)", what, t->o.jsonl_field);
        } else {
            size_t len = strlen(field->valuestring);
            rc = check_text(field->valuestring, len, 0, what);
            if (rc == 0) {
                t->st.documents++;
                rc = pretokenize(t, field->valuestring, len, true, NULL);
            }
        }
        cJSON_Delete(obj);
        if (rc) break;
        count_progress(t);
    }
    corpus_lines_close(&r);
    return rc;
}

static int add_file(void *ctx, const char *path) {
    bpe_trainer *t = ctx;
    t->st.files++;
    return corpus_is_jsonl(path) ? add_jsonl_file(t, path) : add_text_file(t, path);
}

int bpe_trainer_add_inputs(bpe_trainer *t, const char *const *inputs, int ninputs) {
    if (t->trained) return SM_ERR("the trainer has already been trained");
    double t0 = sm_time_sec();
    int rc = corpus_walk(inputs, ninputs, t->o.glob, NULL, add_file, t);
    t->st.count_seconds += sm_time_sec() - t0;
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Merging: HF BpeTrainer::do_train steps 3-5 */

/* max-heap order: count, then the smaller pair, then the older entry */
static bool q_before(const qentry *x, const qentry *y) {
    if (x->count != y->count) return x->count > y->count;
    if (x->a != y->a) return x->a < y->a;
    if (x->b != y->b) return x->b < y->b;
    return x->seq < y->seq;
}

typedef struct {
    qentry *v;
    size_t n, cap;
    uint64_t seq;
} heap;

static void heap_push(heap *h, qentry e) {
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 1024;
        h->v = sm_realloc(h->v, h->cap * sizeof *h->v);
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!q_before(&e, &h->v[p])) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = e;
}

static qentry heap_pop(heap *h) {
    qentry top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const qentry *best = &last;
        if (l < h->n && q_before(&h->v[l], best)) {
            m = l;
            best = &h->v[l];
        }
        if (r < h->n && q_before(&h->v[r], best)) m = r;
        if (m == i) break;
        h->v[i] = h->v[m];
        i = m;
    }
    if (h->n) h->v[i] = last;
    return top;
}

/* Pairs touched by one merge step, in first-touch order (HF's where_to_update). */
typedef struct {
    uint64_t *keys;
    u32_list *pos;
    size_t n, cap;
    uint32_t stamp;
} where_set;

static void where_add(where_set *w, pair_slot *s, uint32_t word) {
    if (s->stamp != w->stamp) {
        if (w->n == w->cap) {
            w->cap = w->cap ? 2 * w->cap : 256;
            w->keys = sm_realloc(w->keys, w->cap * sizeof *w->keys);
            w->pos = sm_realloc(w->pos, w->cap * sizeof *w->pos);
        }
        s->stamp = w->stamp;
        s->widx = (uint32_t)w->n;
        w->keys[w->n] = s->key;
        w->pos[w->n++] = (u32_list){0};
    }
    u32_list *l = &w->pos[s->widx];
    if (!l->n || l->v[l->n - 1] != word) u32_push(l, word); /* a set of words */
}

typedef struct {
    uint32_t *sym;   /* symbols of every word, back to back */
    uint64_t *off;   /* [n_words] */
    uint32_t *len;   /* [n_words], shrinks as symbols merge */
} word_syms;

/* One pair-count change of HF's Word::merge, applied at once. */
static void change(pair_map *pc, where_set *w, uint32_t a, uint32_t b, int delta, uint64_t wc,
                   uint32_t word) {
    pair_slot *s = pair_get(pc, pair_key(a, b));
    s->count += delta * (int64_t)wc;
    if (delta > 0) where_add(w, s, word);
}

/* HF's Word::merge: every non-overlapping (a, b), left to right, becomes r. */
static void merge_word(word_syms *ws, uint32_t word, uint32_t a, uint32_t b, uint32_t r,
                       uint64_t wc, pair_map *pc, where_set *w) {
    uint32_t *s = ws->sym + ws->off[word], n = ws->len[word], o = 0;
    for (uint32_t i = 0; i < n;) {
        if (s[i] == a && i + 1 < n && s[i + 1] == b) {
            if (o > 0) {
                change(pc, w, s[o - 1], a, -1, wc, word);
                change(pc, w, s[o - 1], r, +1, wc, word);
            }
            if (i + 2 < n) {
                change(pc, w, b, s[i + 2], -1, wc, word);
                change(pc, w, r, s[i + 2], +1, wc, word);
            }
            s[o++] = r;
            i += 2;
        } else {
            s[o++] = s[i++];
        }
    }
    ws->len[word] = o;
}

static void push_touched(heap *h, pair_map *pc, where_set *w) {
    for (size_t i = 0; i < w->n; i++) {
        pair_slot *s = pair_get(pc, w->keys[i]);
        if (s->count > 0)
            heap_push(h, (qentry){s->count, (uint32_t)(w->keys[i] >> 32), (uint32_t)w->keys[i],
                                  h->seq++, w->pos[i]});
        else
            free(w->pos[i].v);
    }
    w->n = 0;
    w->stamp++;
}

static char *vocab_string(const bpe_trainer *t, const char *bytes, size_t n) {
    char *s = sm_malloc(2 * n + 1), *p = s;
    for (size_t i = 0; i < n; i++) {
        unsigned cp = t->b2u[(uint8_t)bytes[i]];
        if (cp < 0x80) {
            *p++ = (char)cp;
        } else {
            *p++ = (char)(0xc0 | (cp >> 6));
            *p++ = (char)(0x80 | (cp & 0x3f));
        }
    }
    *p = 0;
    return s;
}

int bpe_trainer_train(bpe_trainer *t) {
    if (t->trained) return SM_ERR("the trainer has already been trained");
    if (t->n_words == 0)
        return SM_ERR("no text to train on (%llu files, %llu documents: all empty)",
                      (unsigned long long)t->st.files, (unsigned long long)t->st.documents);
    t->trained = true;
    double t0 = sm_time_sec();
    t->st.unique_words = t->n_words;
    /* words as symbol sequences */
    word_syms ws;
    ws.sym = sm_malloc((t->words_text.nbytes + 1) * sizeof *ws.sym);
    ws.off = sm_malloc(t->n_words * sizeof *ws.off);
    ws.len = sm_malloc(t->n_words * sizeof *ws.len);
    for (size_t i = 0; i < t->n_words; i++) {
        const str_rec *r = &t->words[i];
        ws.off[i] = r->off;
        ws.len[i] = r->len;
        for (uint32_t k = 0; k < r->len; k++)
            ws.sym[r->off + k] = t->byte_id[(uint8_t)t->words_text.bytes[r->off + k]];
    }
    /* count pairs; one queue entry per pair with the words that have it */
    pair_map pc = {0};
    where_set w = {.stamp = 1};
    heap h = {0};
    for (uint32_t i = 0; i < (uint32_t)t->n_words; i++) {
        const uint32_t *s = ws.sym + ws.off[i];
        for (uint32_t k = 0; k + 1 < ws.len[i]; k++)
            change(&pc, &w, s[k], s[k + 1], +1, t->word_count[i], i);
    }
    push_touched(&h, &pc, &w);
    /* merge */
    const int n_special = 2;
    size_t vocab = N_BYTES + (size_t)n_special, cap_merges = 0;
    uint64_t min_freq = t->o.min_frequency;
    char *buf = NULL;
    size_t buf_cap = 0;
    for (;;) {
        if (vocab >= (size_t)t->o.vocab_size) break;
        if (h.n == 0) {
            t->st.stopped_early = 1;
            break;
        }
        qentry top = heap_pop(&h);
        int64_t cur = pair_get(&pc, pair_key(top.a, top.b))->count;
        if (top.count != cur) { /* stale: back in with the current count */
            top.count = cur;
            heap_push(&h, top);
            continue;
        }
        if (top.count < 1 || (uint64_t)top.count < min_freq) {
            free(top.pos.v);
            t->st.stopped_early = 1;
            break;
        }
        /* the new token: an existing string keeps its id */
        const str_rec *ra = &t->toks[top.a], *rb = &t->toks[top.b];
        size_t n = (size_t)ra->len + rb->len;
        if (n > buf_cap) buf = sm_realloc(buf, buf_cap = 2 * n);
        memcpy(buf, t->tok_text.bytes + ra->off, ra->len);
        memcpy(buf + ra->len, t->tok_text.bytes + rb->off, rb->len);
        uint32_t *slot = str_index_find(&t->tok_index, t->toks, t->tok_text.bytes, buf, n,
                                        tok_hash_bytes(buf, n));
        uint32_t r;
        if (*slot) {
            r = *slot - 1;
        } else {
            r = add_token(t, buf, n);
            vocab++;
        }
        if (t->n_merges == cap_merges) {
            cap_merges = cap_merges ? 2 * cap_merges : 1024;
            t->merges = sm_realloc(t->merges, cap_merges * sizeof *t->merges);
        }
        t->merges[t->n_merges++] = (merge_rec){top.a, top.b, r};
        t->st.last_count = (uint64_t)top.count;
        for (uint32_t k = 0; k < top.pos.n; k++) {
            uint32_t word = top.pos.v[k];
            merge_word(&ws, word, top.a, top.b, r, t->word_count[word], &pc, &w);
        }
        free(top.pos.v);
        push_touched(&h, &pc, &w);
        progress_report(&t->prog, (double)vocab, t->o.vocab_size, "merging: vocabulary (last pair count %lld)",
                        (long long)t->st.last_count);
    }
    progress_clear(&t->prog);
    free(buf);
    for (size_t i = 0; i < h.n; i++) free(h.v[i].pos.v);
    free(h.v);
    free(w.keys);
    free(w.pos);
    free(pc.slots);
    free(ws.sym);
    free(ws.off);
    free(ws.len);
    /* duplicated merges keep their last rank (what the library saves) */
    pair_map last = {0};
    for (size_t i = 0; i < t->n_merges; i++)
        pair_get(&last, pair_key(t->merges[i].a, t->merges[i].b))->count = (int64_t)i;
    size_t o = 0;
    for (size_t i = 0; i < t->n_merges; i++)
        if (pair_get(&last, pair_key(t->merges[i].a, t->merges[i].b))->count == (int64_t)i)
            t->merges[o++] = t->merges[i];
    t->n_merges = o;
    free(last.slots);
    /* vocabulary strings */
    t->tok_str = sm_malloc(t->n_toks * sizeof *t->tok_str);
    for (size_t i = 0; i < t->n_toks; i++)
        t->tok_str[i] = vocab_string(t, t->tok_text.bytes + t->toks[i].off, t->toks[i].len);
    t->st.merges = (int)t->n_merges;
    t->st.vocab_size = (int)t->n_toks + n_special;
    t->st.merge_seconds = sm_time_sec() - t0;
    return 0;
}

size_t bpe_trainer_n_merges(const bpe_trainer *t) { return t->n_merges; }

void bpe_trainer_merge(const bpe_trainer *t, size_t i, const char **left, const char **right) {
    SM_ASSERT(t->trained && i < t->n_merges);
    *left = t->tok_str[t->merges[i].a];
    *right = t->tok_str[t->merges[i].b];
}

/* ---------------------------------------------------------------------------------------------
 * Output */

/* A JSON string as serde_json writes it: ", \ and control characters escaped, the rest raw. */
static void sb_json_str(sm_buf *b, const char *s) {
    sm_buf_add(b, "\"", 1);
    for (const char *p = s; *p; p++) {
        uint8_t c = (uint8_t)*p;
        switch (c) {
        case '"': sm_buf_add(b, "\\\"", 2); break;
        case '\\': sm_buf_add(b, "\\\\", 2); break;
        case '\b': sm_buf_add(b, "\\b", 2); break;
        case '\f': sm_buf_add(b, "\\f", 2); break;
        case '\n': sm_buf_add(b, "\\n", 2); break;
        case '\r': sm_buf_add(b, "\\r", 2); break;
        case '\t': sm_buf_add(b, "\\t", 2); break;
        default:
            if (c < 0x20)
                sm_buf_printf(b, "\\u%04x", c);
            else
                sm_buf_add(b, p, 1);
        }
    }
    sm_buf_add(b, "\"", 1);
}

/* {"token":id,...} in id order, the special tokens last. */
static void sb_vocab(sm_buf *b, const bpe_trainer *t) {
    sm_buf_add(b, "{", 1);
    for (size_t i = 0; i < t->n_toks; i++) {
        if (i) sm_buf_add(b, ",", 1);
        sb_json_str(b, t->tok_str[i]);
        sm_buf_printf(b, ":%zu", i);
    }
    for (int k = 0; k < 2; k++) {
        sm_buf_add(b, ",", 1);
        sb_json_str(b, SPECIALS[k]);
        sm_buf_printf(b, ":%zu", t->n_toks + (size_t)k);
    }
    sm_buf_add(b, "}", 1);
}

static int write_out(const char *dir, const char *name, sm_buf *b) {
    char *path = sm_path_join(dir, name);
    int rc = sm_write_file_atomic(path, b->s, b->len);
    free(path);
    b->len = 0;
    return rc;
}

/* The output directory exists (created with its parents) and takes new files. */
static int prepare_out_dir(const char *dir) {
    if (sm_mkdir_p(dir)) return -1;
    if (access(dir, W_OK | X_OK) != 0)
        return SM_ERR("cannot write to directory '%s': %s", dir, strerror(errno));
    return 0;
}

int bpe_trainer_save(const bpe_trainer *t, const char *dir) {
    if (!t->trained) return SM_ERR("the trainer has not been trained");
    if (prepare_out_dir(dir)) return -1;
    sm_buf b = {0};
    int rc = 0;
    size_t eot = t->n_toks, mask = t->n_toks + 1;
    /* vocab.json + merges.txt (what the library's BPE model save writes) */
    sb_vocab(&b, t);
    rc = write_out(dir, "vocab.json", &b);
    sm_buf_str(&b, "#version: 0.2\n");
    for (size_t i = 0; i < t->n_merges; i++) {
        sm_buf_str(&b, t->tok_str[t->merges[i].a]);
        sm_buf_add(&b, " ", 1);
        sm_buf_str(&b, t->tok_str[t->merges[i].b]);
        sm_buf_add(&b, "\n", 1);
    }
    if (rc == 0) rc = write_out(dir, "merges.txt", &b);
    /* tokenizer.json, field for field as the library saves it (pretty = false) */
    sm_buf_str(&b, "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":[");
    for (int k = 0; k < 2; k++) {
        sm_buf_printf(&b, "%s{\"id\":%zu,\"content\":", k ? "," : "", k ? mask : eot);
        sb_json_str(&b, SPECIALS[k]);
        sm_buf_str(&b, ",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,"
                   "\"normalized\":false,\"special\":true}");
    }
    sm_buf_str(&b, "],\"normalizer\":null,"
               "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
               "\"trim_offsets\":true,\"use_regex\":true},"
               "\"post_processor\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,"
               "\"trim_offsets\":false,\"use_regex\":true},"
               "\"decoder\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,"
               "\"trim_offsets\":true,\"use_regex\":true},"
               "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,"
               "\"continuing_subword_prefix\":null,\"end_of_word_suffix\":null,"
               "\"fuse_unk\":false,\"byte_fallback\":false,\"ignore_merges\":false,\"vocab\":");
    sb_vocab(&b, t);
    sm_buf_str(&b, ",\"merges\":[");
    for (size_t i = 0; i < t->n_merges; i++) {
        sm_buf_str(&b, i ? ",[" : "[");
        sb_json_str(&b, t->tok_str[t->merges[i].a]);
        sm_buf_add(&b, ",", 1);
        sb_json_str(&b, t->tok_str[t->merges[i].b]);
        sm_buf_add(&b, "]", 1);
    }
    sm_buf_str(&b, "]}}");
    if (rc == 0) rc = write_out(dir, "tokenizer.json", &b);
    /* tokenizer_config.json for transformers (AutoTokenizer → GPT2TokenizerFast) */
    sm_buf_str(&b, "{\n"
               "  \"tokenizer_class\": \"GPT2Tokenizer\",\n"
               "  \"add_prefix_space\": false,\n"
               "  \"bos_token\": \"<|endoftext|>\",\n"
               "  \"eos_token\": \"<|endoftext|>\",\n"
               "  \"unk_token\": \"<|endoftext|>\",\n"
               "  \"mask_token\": \"<|mask|>\",\n"
               "  \"clean_up_tokenization_spaces\": false\n"
               "}\n");
    if (rc == 0) rc = write_out(dir, "tokenizer_config.json", &b);
    free(b.s);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * The whole job */

int bpe_train(const bpe_train_opts *o, const char *const *inputs, int ninputs,
              const char *out_dir, bpe_train_stats *stats) {
    memset(stats, 0, sizeof *stats);
    bpe_trainer *t;
    if (bpe_trainer_new(&t, o)) return -1;
    if (ninputs < 1) {
        bpe_trainer_free(t);
        return SM_ERR("no inputs given");
    }
    int rc = prepare_out_dir(out_dir);
    if (rc == 0) rc = bpe_trainer_add_inputs(t, inputs, ninputs);
    if (rc == 0) rc = bpe_trainer_train(t);
    if (rc == 0) rc = bpe_trainer_save(t, out_dir);
    bpe_trainer_stats(t, stats);
    bpe_trainer_free(t);
    return rc;
}
