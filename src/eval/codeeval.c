/* codeeval.c — see codeeval.h. */
#include "eval/codeeval.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "base/jsonutil.h"
#include "base/util.h"

#define CODE_MAX_FILE ((size_t)1 << 30)

/* A finished string (never NULL, "" when nothing was added). */
static char *sb_done(sm_buf *b) {
    if (!b->s) sm_buf_add(b, "", 0);
    return b->s;
}

/* ---- benchmarks ---- */

static const struct {
    const char *name, *file;
} g_bench[] = {
    [CODE_HUMANEVAL] = {"humaneval", "HumanEval.jsonl.gz"},
    [CODE_HUMANEVAL_PLUS] = {"humaneval-plus", "HumanEvalPlus.jsonl.gz"},
    [CODE_MBPP] = {"mbpp", "mbpp.jsonl"},
    [CODE_MBPP_SANITIZED] = {"mbpp-sanitized", "sanitized-mbpp.json"},
    [CODE_MBPP_PLUS] = {"mbpp-plus", "MbppPlus.jsonl.gz"},
};

int code_bench_parse(const char *name, code_bench *out) {
    for (size_t i = 0; i < sizeof g_bench / sizeof *g_bench; i++)
        if (!strcmp(name, g_bench[i].name)) {
            *out = (code_bench)i;
            return 0;
        }
    return SM_ERR("unknown benchmark '%s' (humaneval, humaneval-plus, mbpp, mbpp-sanitized, "
                  "mbpp-plus)", name);
}

const char *code_bench_name(code_bench b) { return g_bench[b].name; }
const char *code_bench_file(code_bench b) { return g_bench[b].file; }
int code_bench_is_humaneval(code_bench b) { return b == CODE_HUMANEVAL || b == CODE_HUMANEVAL_PLUS; }

/* ---- prompt formats ---- */

static const char *const g_format[] = {
    [CODE_FORMAT_COMPLETION] = "completion",
    [CODE_FORMAT_CHAT] = "chat",
    [CODE_FORMAT_HARNESS] = "harness-instruct",
};

int code_prompt_format_parse(const char *name, code_prompt_format *out) {
    for (size_t i = 0; i < sizeof g_format / sizeof *g_format; i++)
        if (!strcmp(name, g_format[i])) {
            *out = (code_prompt_format)i;
            return 0;
        }
    return SM_ERR("unknown prompt format '%s' (completion, chat, harness-instruct)", name);
}

const char *code_prompt_format_name(code_prompt_format f) { return g_format[f]; }

int code_format_check(code_bench b, code_prompt_format f) {
    if (f == CODE_FORMAT_HARNESS && b != CODE_MBPP && !code_bench_is_humaneval(b))
        return SM_ERR("--prompt-format harness-instruct: %s is not one of its benchmarks (humaneval, "
                      "humaneval-plus, mbpp); mbpp_plus_instruct reads evalplus/mbppplus's test_list, "
                      "which data/codebench/ does not hold", code_bench_name(b));
    return 0;
}

/* ---- warnings ---- */

static void warn_add(code_warnings *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn_add(code_warnings *w, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    w->msg = sm_realloc(w->msg, sizeof(char *) * (w->n + 1));
    w->msg[w->n++] = sm_strdup(buf);
}

void code_warnings_free(code_warnings *w) {
    for (size_t i = 0; i < w->n; i++) free(w->msg[i]);
    free(w->msg);
    w->msg = NULL;
    w->n = 0;
}

/* ---- reading ---- */

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* Whole file, gunzipped when its name ends in .gz; NUL-terminated. */
static int read_file_or_gz(const char *path, char **out, size_t *len) {
    if (!ends_with(path, ".gz")) return sm_read_file(path, CODE_MAX_FILE, out, len);
    int fd = sm_open_regular(path, NULL);
    if (fd < 0) return -1;
    gzFile gz = gzdopen(fd, "rb");
    if (!gz) {
        close(fd);
        return SM_ERR("cannot open '%s': %s", path, strerror(errno ? errno : ENOMEM));
    }
    sm_buf b = {0};
    char buf[65536];
    int n;
    while ((n = gzread(gz, buf, sizeof buf)) > 0) {
        if (b.len + (size_t)n > CODE_MAX_FILE) {
            gzclose(gz);
            free(b.s);
            return SM_ERR("'%s' decompresses to more than %zu bytes", path, CODE_MAX_FILE);
        }
        sm_buf_add(&b, buf, (size_t)n);
    }
    int err = 0;
    const char *msg = n < 0 ? gzerror(gz, &err) : NULL;
    if (n < 0) {
        SM_ERR("'%s': corrupt gzip data (%s)", path, msg ? msg : "?");
        gzclose(gz);
        free(b.s);
        return -1;
    }
    gzclose(gz);
    *out = sb_done(&b);
    *len = b.len;
    return 0;
}

/* read_file_or_gz of a text file: a NUL byte inside is an error naming the file. */
static int read_text(const char *path, char **out, size_t *len) {
    if (read_file_or_gz(path, out, len)) return -1;
    if (strlen(*out) == *len) return 0;
    free(*out);
    return SM_ERR("'%s' contains a NUL byte", path);
}

/* Calls fn on every non-blank line (NUL-terminated in place) with its 1-based number. */
typedef int (*line_fn)(void *user, char *line, long lineno);

static void for_each_line(char *text, size_t len, line_fn fn, void *user) {
    long lineno = 0;
    char *p = text, *end = text + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *stop = nl ? nl : end;
        lineno++;
        *stop = 0;
        if (p[strspn(p, " \t\r")]) fn(user, p, lineno);
        p = stop + 1;
    }
}

/* ---- problems ---- */

static char *dup_field(const cJSON *o, const char *key) {
    const char *v = json_get_string(o, key);
    return v ? sm_strdup(v) : NULL;
}

/* task_id as text: a string, or a non-negative integer (MBPP). */
static char *task_id_text(const cJSON *o) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "task_id");
    if (cJSON_IsString(t) && t->valuestring[0]) return sm_strdup(t->valuestring);
    if (cJSON_IsNumber(t) && t->valuedouble >= 0 && t->valuedouble < 1e9 &&
        t->valuedouble == (double)(long)t->valuedouble) {
        char buf[32];
        snprintf(buf, sizeof buf, "%ld", (long)t->valuedouble);
        return sm_strdup(buf);
    }
    return NULL;
}

/* Array of strings → malloc'ed copies; −1 when not an array of strings. */
static int string_list(const cJSON *o, const char *key, char ***out, int *n) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key);
    *out = NULL;
    *n = 0;
    if (!cJSON_IsArray(a)) return -1;
    int cnt = cJSON_GetArraySize(a);
    char **v = sm_calloc((size_t)cnt + 1, sizeof(char *));
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) {
        if (!cJSON_IsString(e)) {
            for (int j = 0; j < i; j++) free(v[j]);
            free(v);
            return -1;
        }
        v[i++] = sm_strdup(e->valuestring);
    }
    *out = v;
    *n = i;
    return 0;
}

static char *join_lines(char **v, int n) {
    sm_buf b = {0};
    for (int i = 0; i < n; i++) {
        sm_buf_str(&b, v[i]);
        sm_buf_str(&b, "\n");
    }
    return sb_done(&b);
}

static void problem_free(code_problem *p) {
    free(p->task_id);
    free(p->prompt);
    free(p->solution);
    free(p->test);
    free(p->entry_point);
    free(p->setup);
    free(p->record);
    for (int i = 0; i < p->nasserts; i++) free(p->asserts[i]);
    free(p->asserts);
    memset(p, 0, sizeof *p);
}

/* MBPP+ prompts are a docstring: its text lines are the description, its assert the example. */
static void mbpp_plus_prompt(code_problem *p, const char *doc) {
    sm_buf text = {0};
    const char *s = doc;
    while (*s) {
        const char *nl = strchr(s, '\n');
        size_t n = nl ? (size_t)(nl - s) : strlen(s);
        char *line = sm_malloc(n + 1);
        memcpy(line, s, n);
        line[n] = 0;
        char *t = line + strspn(line, " \t");
        if (!strncmp(t, "assert", 6)) {
            p->asserts = sm_realloc(p->asserts, sizeof(char *) * (size_t)(p->nasserts + 1));
            p->asserts[p->nasserts++] = sm_strdup(t);
        } else if (*t && strcmp(t, "\"\"\"")) {
            if (text.len) sm_buf_str(&text, " ");
            sm_buf_str(&text, t);
        }
        free(line);
        s += n + (nl ? 1 : 0);
    }
    p->prompt = sb_done(&text);
}

static int plus_fields_ok(const cJSON *o) {
    return cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(o, "base_input")) &&
           /* Mbpp/793 has "plus_input": {} (no inputs) */
           (cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(o, "plus_input")) ||
            cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(o, "plus_input"))) &&
           cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, "atol"));
}

/* Fills p from one record; NULL on success, else what is wrong. */
static const char *problem_from_json(code_problem *p, code_bench b, const cJSON *o) {
    memset(p, 0, sizeof *p);
    if (!(p->task_id = task_id_text(o))) return "missing task_id";
    switch (b) {
    case CODE_HUMANEVAL:
    case CODE_HUMANEVAL_PLUS:
        p->prompt = dup_field(o, "prompt");
        p->solution = dup_field(o, "canonical_solution");
        p->test = dup_field(o, "test");
        p->entry_point = dup_field(o, "entry_point");
        if (!p->prompt || !p->solution || !p->test || !p->entry_point)
            return "needs string fields prompt, canonical_solution, test, entry_point";
        if (b == CODE_HUMANEVAL_PLUS && !plus_fields_ok(o))
            return "needs base_input and plus_input (lists) and atol (a number)";
        return NULL;
    case CODE_MBPP:
        p->prompt = dup_field(o, "text");
        p->solution = dup_field(o, "code");
        p->setup = dup_field(o, "test_setup_code");
        if (!p->prompt || !p->solution || !p->setup ||
            string_list(o, "test_list", &p->asserts, &p->nasserts))
            return "needs text, code, test_setup_code (strings) and test_list (list of strings)";
        p->test = join_lines(p->asserts, p->nasserts);
        return NULL;
    case CODE_MBPP_SANITIZED: {
        char **imports;
        int nimp;
        p->prompt = dup_field(o, "prompt");
        p->solution = dup_field(o, "code");
        if (!p->prompt || !p->solution || string_list(o, "test_list", &p->asserts, &p->nasserts) ||
            string_list(o, "test_imports", &imports, &nimp))
            return "needs prompt, code (strings), test_list and test_imports (lists of strings)";
        p->setup = join_lines(imports, nimp);
        for (int i = 0; i < nimp; i++) free(imports[i]);
        free(imports);
        p->test = join_lines(p->asserts, p->nasserts);
        return NULL;
    }
    case CODE_MBPP_PLUS: {
        const char *doc = json_get_string(o, "prompt");
        p->solution = dup_field(o, "canonical_solution");
        p->test = dup_field(o, "assertion");
        p->entry_point = dup_field(o, "entry_point");
        if (!doc || !p->solution || !p->test || !p->entry_point)
            return "needs string fields prompt, canonical_solution, assertion, entry_point";
        if (!plus_fields_ok(o)) return "needs base_input and plus_input (lists) and atol (a number)";
        mbpp_plus_prompt(p, doc);
        return NULL;
    }
    }
    return "unknown benchmark";
}

typedef struct {
    code_set *s;
    const char *path;
    int all_tasks;
} load_ctx;

static int keep_problem(const code_set *s, const code_problem *p, int all_tasks) {
    if (s->bench != CODE_MBPP || all_tasks) return 1;
    long id = strtol(p->task_id, NULL, 10);
    return id >= 11 && id <= 510; /* MBPP's test split */
}

static void add_record(load_ctx *c, const cJSON *o, const char *where, const char *raw) {
    code_problem p;
    const char *bad = problem_from_json(&p, c->s->bench, o);
    if (!bad && code_set_find(c->s, p.task_id) >= 0) bad = "repeats an earlier task_id";
    if (bad) {
        warn_add(&c->s->warn, "%s: %s; skipped", where, bad);
        problem_free(&p);
        return;
    }
    if (!keep_problem(c->s, &p, c->all_tasks)) {
        problem_free(&p);
        return;
    }
    if (raw) p.record = sm_strdup(raw);
    c->s->p = sm_realloc(c->s->p, sizeof(code_problem) * (c->s->n + 1));
    c->s->p[c->s->n++] = p;
}

/* Python's json module writes NaN, Infinity and -Infinity (MBPP+ has them in its test
 * inputs, which this harness does not read); cJSON does not accept them. Outside strings
 * they are rewritten in place to numbers of the same length: 0.0 and (−)1e999 padded. */
static void python_json_literals(char *s) {
    int in_str = 0;
    for (char *p = s; *p; p++) {
        if (in_str) {
            if (*p == '\\' && p[1]) p++;
            else if (*p == '"') in_str = 0;
        } else if (*p == '"') {
            in_str = 1;
        } else if (!strncmp(p, "NaN", 3)) {
            memcpy(p, "0.0", 3);
            p += 2;
        } else if (!strncmp(p, "Infinity", 8)) {
            memcpy(p, "1e999   ", 8);
            p += 7;
        }
    }
}

static int is_plus(code_bench b) { return b == CODE_HUMANEVAL_PLUS || b == CODE_MBPP_PLUS; }

static int load_line(void *user, char *line, long lineno) {
    load_ctx *c = user;
    char *raw = is_plus(c->s->bench) ? sm_strdup(line) : NULL; /* Python reads the inputs */
    python_json_literals(line);
    char where[600];
    snprintf(where, sizeof where, "%s:%ld", c->path, lineno);
    cJSON *o = json_parse_object(line, where);
    if (!o) {
        warn_add(&c->s->warn, "%s; skipped", smdlm_last_error());
        free(raw);
        return 0;
    }
    add_record(c, o, where, raw);
    cJSON_Delete(o);
    free(raw);
    return 0;
}

int code_set_load(code_set *s, code_bench b, const char *path, int all_tasks) {
    memset(s, 0, sizeof *s);
    s->bench = b;
    char *text;
    size_t len;
    if (read_text(path, &text, &len)) return -1;
    load_ctx c = {s, path, all_tasks};
    if (b == CODE_MBPP_SANITIZED) { /* one JSON array */
        cJSON *arr = cJSON_ParseWithLength(text, len);
        if (!cJSON_IsArray(arr)) {
            cJSON_Delete(arr);
            free(text);
            return SM_ERR("'%s' is not a JSON array (the sanitized MBPP format)", path);
        }
        long idx = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, arr) {
            char where[600];
            snprintf(where, sizeof where, "%s: record %ld", path, idx++);
            if (!cJSON_IsObject(e) || json_check_unique_keys(e, where)) {
                warn_add(&s->warn, "%s: not a JSON object with unique keys; skipped", where);
                continue;
            }
            add_record(&c, e, where, NULL);
        }
        cJSON_Delete(arr);
    } else {
        for_each_line(text, len, load_line, &c);
    }
    free(text);
    if (s->n == 0) {
        code_set_free(s);
        return SM_ERR("'%s' holds no valid %s problem", path, code_bench_name(b));
    }
    return 0;
}

void code_set_free(code_set *s) {
    for (size_t i = 0; i < s->n; i++) problem_free(&s->p[i]);
    free(s->p);
    code_warnings_free(&s->warn);
    memset(s, 0, sizeof *s);
}

void code_set_truncate(code_set *s, size_t n) {
    for (size_t i = n; i < s->n; i++) problem_free(&s->p[i]);
    if (n < s->n) s->n = n;
}

long code_set_find(const code_set *s, const char *task_id) {
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->p[i].task_id, task_id)) return (long)i;
    return -1;
}

/* ---- programs ---- */

/* The differential harness (Python) that checks one HumanEval+ / MBPP+ sample; the program
 * is this text plus a call _check(record, completion, full, base_only, dataset). */
static const char g_plus_harness[] =
    "# Differential test of one HumanEval+ / MBPP+ sample, the way EvalPlus checks it: expected\n"
    "# outputs from the canonical solution, the sample's outputs compared with them input by\n"
    "# input (float tolerance, per-input time limit max(4 s, 4 x reference time), EvalPlus's\n"
    "# special oracles); the first failing input ends the run.\n"
    "import copy, json, math, signal, sys, time\n"
    "\n"
    "_SET_EQ = {\"similar_elements\", \"find_char_long\", \"common_in_nested_lists\", \"extract_singly\",\n"
    "           \"larg_nnum\", \"intersection_array\", \"find_dissimilar\", \"Diff\"}\n"
    "_NOT_NONE = {\"check_str\", \"text_match_three\", \"text_starta_endb\"}\n"
    "\n"
    "\n"
    "def _tuples(x):\n"
    "    return tuple(_tuples(i) for i in x) if isinstance(x, list) else x\n"
    "\n"
    "\n"
    "def _mbpp_inputs(n, inputs):\n"
    "    # MBPP+ stores as JSON lists arguments that its functions take as tuples, sets or\n"
    "    # complex numbers; these are the conversions EvalPlus applies per task.\n"
    "    T = tuple\n"
    "    if n in (2, 116, 132, 143, 222, 261, 273, 394, 399, 421, 424, 429, 470, 560, 579, 596,\n"
    "             616, 630, 726, 740, 744, 809):\n"
    "        return [[T(a) for a in inp] for inp in inputs]\n"
    "    if n in (63, 64, 70, 94, 120, 237, 272, 299, 400, 409, 417, 438, 473, 614, 780):\n"
    "        return [[[T(a) for a in arg] for arg in inp] for inp in inputs]\n"
    "    if n in (75, 413, 444, 753):\n"
    "        return [[[T(a) for a in inp[0]]] + [inp[1]] for inp in inputs]\n"
    "    if n in (106, 750):\n"
    "        return [[inp[0]] + [T(inp[1])] for inp in inputs]\n"
    "    if n == 115:\n"
    "        return [[[set(a) if isinstance(a, list) and a else {} for a in inp[0]]] for inp in inputs]\n"
    "    if n == 124:\n"
    "        return [(float(inp[0]), complex(inp[1])) for inp in inputs]\n"
    "    if n in (250, 405, 446, 617, 720, 763, 808):\n"
    "        return [[T(inp[0])] + [inp[1]] for inp in inputs]\n"
    "    if n in (259, 401, 445):\n"
    "        return [[T(T(a) for a in arg) for arg in inp] for inp in inputs]\n"
    "    if n == 278:\n"
    "        return [[T(T(a) if isinstance(a, list) else a for a in inp[0])] for inp in inputs]\n"
    "    if n == 307:\n"
    "        return [[T(inp[0])] + [inp[1], inp[2]] for inp in inputs]\n"
    "    if n == 722:\n"
    "        return [[{k: T(v) for k, v in inp[0].items()}] + inp[1:] for inp in inputs]\n"
    "    if n == 252:\n"
    "        return [[complex(inp[0])] for inp in inputs]\n"
    "    if n in (580, 615, 791):\n"
    "        return [_tuples(inp) for inp in inputs]\n"
    "    return inputs\n"
    "\n"
    "\n"
    "def _poly(xs, x):\n"
    "    return sum(c * math.pow(x, i) for i, c in enumerate(xs))\n"
    "\n"
    "\n"
    "def _surface_area(base_edge, height):  # Mbpp/581: height is the pyramid's perpendicular height\n"
    "    slant = math.sqrt((base_edge / 2) ** 2 + height ** 2)\n"
    "    return round(base_edge ** 2 + 2 * base_edge * slant)\n"
    "\n"
    "\n"
    "def _digit_distance(a, b):  # Mbpp/558: shorter number padded with zeros\n"
    "    x, y = str(a), str(b)\n"
    "    w = max(len(x), len(y))\n"
    "    return sum(abs(int(p) - int(q)) for p, q in zip(x.zfill(w), y.zfill(w)))\n"
    "\n"
    "\n"
    "def _is_floats(x):\n"
    "    if isinstance(x, float):\n"
    "        return True\n"
    "    return isinstance(x, (list, tuple)) and len(x) > 0 and all(isinstance(i, float) for i in x)\n"
    "\n"
    "\n"
    "def _close(a, b, atol):\n"
    "    # numpy.allclose(a, b, rtol=1e-7, atol=atol) on numbers and equal-shaped sequences\n"
    "    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):\n"
    "        if not (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple))) or len(a) != len(b):\n"
    "            return False\n"
    "        return all(_close(x, y, atol) for x, y in zip(a, b))\n"
    "    try:\n"
    "        return bool(a == b) or bool(abs(a - b) <= atol + 1e-7 * abs(b))\n"
    "    except Exception:\n"
    "        return False\n"
    "\n"
    "\n"
    "class _Timeout(BaseException):\n"
    "    pass\n"
    "\n"
    "\n"
    "def _alarm(signum, frame):\n"
    "    raise _Timeout()\n"
    "\n"
    "\n"
    "def _short(x):\n"
    "    r = repr(x)\n"
    "    return r if len(r) <= 80 else r[:77] + \"...\"\n"
    "\n"
    "\n"
    "def _fail(msg):\n"
    "    sys.stdout.flush()\n"
    "    sys.stderr.write(msg + \"\\n\")\n"
    "    sys.stderr.flush()\n"
    "    raise SystemExit(1)\n"
    "\n"
    "\n"
    "def _check(rec, completion, full, base_only, dataset):\n"
    "    entry = rec[\"entry_point\"]\n"
    "    sets = [(\"base\", rec[\"base_input\"])]\n"
    "    if not base_only:\n"
    "        sets.append((\"plus\", rec[\"plus_input\"]))\n"
    "    if dataset == \"mbpp\":\n"
    "        n = int(rec[\"task_id\"].split(\"/\")[-1])\n"
    "        sets = [(kind, _mbpp_inputs(n, inputs)) for kind, inputs in sets]\n"
    "    ref_ns = {}\n"
    "    exec(rec[\"prompt\"] + rec[\"canonical_solution\"], ref_ns)\n"
    "    ref = ref_ns[entry]\n"
    "    cases = []\n"
    "    for kind, inputs in sets:\n"
    "        for i, inp in enumerate(inputs):\n"
    "            t = time.perf_counter()\n"
    "            exp = ref(*copy.deepcopy(inp))\n"
    "            t = time.perf_counter() - t\n"
    "            if dataset == \"mbpp\" and entry in _NOT_NONE:\n"
    "                exp = exp is not None\n"
    "            cases.append((kind, i, inp, exp, max(4.0, 4.0 * t)))\n"
    "    ns = {}\n"
    "    exec(completion if full else rec[\"prompt\"] + completion, ns)\n"
    "    fn = ns.get(entry)\n"
    "    if not callable(fn):\n"
    "        _fail(\"the solution defines no function %s\" % entry)\n"
    "    atol = rec[\"atol\"]\n"
    "    signal.signal(signal.SIGALRM, _alarm)\n"
    "    for kind, i, inp, exp, limit in cases:\n"
    "        where = \"%s input %d %s\" % (kind, i, _short(inp))\n"
    "        signal.setitimer(signal.ITIMER_REAL, limit)\n"
    "        try:\n"
    "            out = fn(*copy.deepcopy(inp))\n"
    "        except _Timeout:\n"
    "            _fail(\"%s: over the %.1f s time limit\" % (where, limit))\n"
    "        except BaseException as e:\n"
    "            signal.setitimer(signal.ITIMER_REAL, 0)\n"
    "            _fail(\"%s: %s: %s\" % (where, type(e).__name__, e))\n"
    "        signal.setitimer(signal.ITIMER_REAL, 0)\n"
    "        try:\n"
    "            exact = out == exp\n"
    "            if dataset == \"mbpp\":\n"
    "                if entry == \"are_equivalent\":\n"
    "                    exact = True\n"
    "                elif entry == \"sum_div\":\n"
    "                    exact = exact or out == 0\n"
    "                elif entry == \"surface_Area\":\n"
    "                    exact = exact or abs(out - _surface_area(*inp)) <= atol\n"
    "                elif entry == \"digit_distance_nums\":\n"
    "                    exact = exact or out == _digit_distance(*inp)\n"
    "                elif entry in _SET_EQ:\n"
    "                    exact = set(out) == set(exp)\n"
    "                elif entry in _NOT_NONE:\n"
    "                    exact = out == exp if isinstance(out, bool) else exp == (out is not None)\n"
    "            if dataset == \"humaneval\" and entry == \"find_zero\":\n"
    "                ok = abs(_poly(*inp, out)) <= atol\n"
    "            else:\n"
    "                if atol == 0 and _is_floats(exp):\n"
    "                    atol = 1e-6\n"
    "                if not exact and atol != 0:\n"
    "                    ok = (type(out) == type(exp) and\n"
    "                          (not isinstance(exp, (list, tuple)) or len(out) == len(exp)) and\n"
    "                          _close(out, exp, atol))\n"
    "                else:\n"
    "                    ok = bool(exact)\n"
    "        except Exception as e:\n"
    "            ok = False\n"
    "        if not ok:\n"
    "            _fail(\"%s: expected %s, got %s\" % (where, _short(exp), _short(out)))\n";

/* b'...' with every byte outside printable ASCII escaped (so any text, valid UTF-8 or not,
 * reaches Python intact). */
static void sb_py_bytes(sm_buf *b, const char *s) {
    static const char hex[] = "0123456789abcdef";
    sm_buf_str(b, "b'");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '\\' || *p == '\'') {
            char e[2] = {'\\', (char)*p};
            sm_buf_add(b, e, 2);
        } else if (*p >= 0x20 && *p < 0x7f) {
            sm_buf_add(b, (const char *)p, 1);
        } else {
            char e[4] = {'\\', 'x', hex[*p >> 4], hex[*p & 15]};
            sm_buf_add(b, e, 4);
        }
    }
    sm_buf_str(b, "'");
}

static char *plus_program(const code_set *s, const code_problem *p, const char *completion, int full) {
    sm_buf b = {0};
    sm_buf_str(&b, g_plus_harness);
    sm_buf_str(&b, "_check(json.loads(");
    sb_py_bytes(&b, p->record);
    sm_buf_str(&b, "), ");
    sb_py_bytes(&b, completion);
    sm_buf_str(&b, ".decode('utf-8', 'replace'), ");
    sm_buf_str(&b, full ? "True, " : "False, ");
    sm_buf_str(&b, s->plus_mode == CODE_PLUS_BASE ? "True, " : "False, ");
    sm_buf_str(&b, s->bench == CODE_MBPP_PLUS ? "'mbpp')\n" : "'humaneval')\n");
    return sb_done(&b);
}

/* The harness's sanitize (Dream's lm-evaluation-harness, tasks/humaneval/sanitize_utils.py;
 * see code_sanitize_program), then what a program does with its result. */
static const char g_sanitizer[] =
    "import ast, sys\n"
    "\n"
    "\n"
    "def _longest_parsing_run(lines):\n"
    "    # the contiguous run of lines that parses with the most non-blank lines (the first of equals)\n"
    "    best, most = \"\", 0\n"
    "    for i in range(len(lines)):\n"
    "        for j in range(i + 1, len(lines) + 1):\n"
    "            run = lines[i:j]\n"
    "            try:\n"
    "                ast.parse(\"\\n\".join(run))\n"
    "            except (SyntaxError, MemoryError):\n"
    "                continue\n"
    "            filled = len([l for l in run if l.strip()])\n"
    "            if filled > most:\n"
    "                best, most = \"\\n\".join(run), filled\n"
    "    return best\n"
    "\n"
    "\n"
    "def _names_used(node):\n"
    "    # names below node; an attribute counts by its own name and is not entered\n"
    "    used, todo = set(), [node]\n"
    "    while todo:\n"
    "        for child in ast.iter_child_nodes(todo.pop()):\n"
    "            if isinstance(child, ast.Name):\n"
    "                used.add(child.id)\n"
    "            elif isinstance(child, ast.Attribute):\n"
    "                used.add(child.attr)\n"
    "            else:\n"
    "                todo.append(child)\n"
    "    return used\n"
    "\n"
    "\n"
    "def _sanitize(text, entry):\n"
    "    text = text.replace(\"\\t\", \"    \").replace(\"\\r\\n\", \"\\n\").replace(\"\\r\", \"\\n\")\n"
    "    tree = ast.parse(_longest_parsing_run((text.strip() + \"\\n\").splitlines()[:100]))\n"
    "    imports, defs = [], {}  # a later definition of a name keeps the first one's place\n"
    "    for node in tree.body:\n"
    "        if isinstance(node, (ast.Import, ast.ImportFrom)):\n"
    "            imports.append(node)\n"
    "        elif isinstance(node, ast.ClassDef):\n"
    "            defs[node.name] = node\n"
    "        elif isinstance(node, ast.FunctionDef):\n"
    "            if any(isinstance(n, ast.Return) for n in ast.walk(node)):\n"
    "                defs[node.name] = node\n"
    "        elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):\n"
    "            defs[node.targets[0].id] = node\n"
    "    uses = {name: _names_used(node) for name, node in defs.items()}\n"
    "    reached, todo = set(), [entry]\n"
    "    while todo:\n"
    "        name = todo.pop()\n"
    "        if name not in reached:\n"
    "            reached.add(name)\n"
    "            todo.extend(uses.get(name, ()))\n"
    "    kept = [node for name, node in defs.items() if not entry or name in reached]\n"
    "    return \"\\n\".join(ast.unparse(node) for node in imports + kept)\n"
    "\n"
    "\n";

/* g_sanitizer + "_code = _sanitize(code, entry)\n" */
static void sanitized_code(sm_buf *b, const char *code, const char *entry_point) {
    sm_buf_str(b, g_sanitizer);
    sm_buf_str(b, "_code = _sanitize(");
    sb_py_bytes(b, code);
    sm_buf_str(b, ".decode('utf-8', 'replace'), ");
    sb_py_bytes(b, entry_point);
    sm_buf_str(b, ".decode('utf-8', 'replace'))\n");
}

char *code_sanitize_program(const char *code, const char *entry_point) {
    sm_buf b = {0};
    sanitized_code(&b, code, entry_point);
    sm_buf_str(&b, "sys.stdout.write(_code)\n");
    return sb_done(&b);
}

/* The harness's test programs (CODE_FORMAT_HARNESS; see codeeval.h). */
static char *harness_program(const code_set *s, const code_problem *p, const char *completion, int full) {
    sm_buf b = {0};
    if (s->bench == CODE_MBPP) {
        sm_buf_str(&b, completion);
        for (int k = 0; k < p->nasserts && k < 3; k++) {
            sm_buf_str(&b, "\n");
            sm_buf_str(&b, p->asserts[k]);
        }
        return sb_done(&b);
    }
    sm_buf code = {0}, test = {0};
    if (!full) sm_buf_str(&code, p->prompt);
    sm_buf_str(&code, completion);
    sanitized_code(&b, sb_done(&code), p->entry_point);
    sm_buf_str(&test, "\n");
    sm_buf_str(&test, p->test);
    sm_buf_str(&test, "\ncheck(");
    sm_buf_str(&test, p->entry_point);
    sm_buf_str(&test, ")");
    sm_buf_str(&b, "exec(compile(_code + ");
    sb_py_bytes(&b, sb_done(&test));
    sm_buf_str(&b, ".decode('utf-8', 'replace'), '<program>', 'exec'), {'__name__': '__main__'})\n");
    free(code.s);
    free(test.s);
    return sb_done(&b);
}

char *code_program(const code_set *s, size_t i, const char *completion, int full) {
    SM_ASSERT(i < s->n);
    const code_problem *p = &s->p[i];
    if (s->format == CODE_FORMAT_HARNESS) return harness_program(s, p, completion, full);
    if (p->record && s->plus_mode != CODE_PLUS_FIELD) return plus_program(s, p, completion, full);
    sm_buf b = {0};
    switch (s->bench) {
    case CODE_HUMANEVAL:
    case CODE_HUMANEVAL_PLUS:
        if (!full) sm_buf_str(&b, p->prompt);
        sm_buf_str(&b, completion);
        sm_buf_str(&b, "\n");
        sm_buf_str(&b, p->test);
        sm_buf_str(&b, "\n");
        sm_buf_str(&b, "check(");
        sm_buf_str(&b, p->entry_point);
        sm_buf_str(&b, ")");
        break;
    case CODE_MBPP:
        sm_buf_str(&b, completion);
        sm_buf_str(&b, "\n");
        sm_buf_str(&b, p->setup);
        sm_buf_str(&b, "\n");
        sm_buf_str(&b, p->test);
        break;
    case CODE_MBPP_SANITIZED:
        sm_buf_str(&b, p->setup);
        sm_buf_str(&b, "\n");
        sm_buf_str(&b, completion);
        sm_buf_str(&b, "\n");
        sm_buf_str(&b, p->test);
        break;
    case CODE_MBPP_PLUS:
        sm_buf_str(&b, "import math\n");
        sm_buf_str(&b, completion);
        sm_buf_str(&b, "\n");
        sm_buf_str(&b, p->test);
        break;
    }
    return sb_done(&b);
}

/* ---- samples ---- */

void code_samples_add(code_samples *out, size_t problem, char *completion_owned) {
    out->v = sm_realloc(out->v, sizeof(code_sample) * (out->n + 1));
    out->v[out->n++] = (code_sample){problem, completion_owned, 0};
}

typedef struct {
    code_samples *out;
    const code_set *s;
    const char *path;
} samples_ctx;

static int sample_line(void *user, char *line, long lineno) {
    samples_ctx *c = user;
    char where[600];
    snprintf(where, sizeof where, "%s:%ld", c->path, lineno);
    cJSON *o = json_parse_object(line, where);
    if (!o) {
        warn_add(&c->out->warn, "%s; skipped", smdlm_last_error());
        return 0;
    }
    char *id = task_id_text(o);
    const char *comp = json_get_string(o, "completion");
    const char *sol = comp ? NULL : json_get_string(o, "solution");
    long idx = id ? code_set_find(c->s, id) : -1;
    if (!id)
        warn_add(&c->out->warn, "%s: missing task_id; skipped", where);
    else if (!comp && !sol)
        warn_add(&c->out->warn, "%s: missing string field \"completion\"; skipped", where);
    else if (idx < 0)
        warn_add(&c->out->warn, "%s: task_id '%.200s' is not a problem of this set; skipped", where, id);
    else {
        code_samples_add(c->out, (size_t)idx, sm_strdup(comp ? comp : sol));
        c->out->v[c->out->n - 1].full = sol != NULL;
    }
    free(id);
    cJSON_Delete(o);
    return 0;
}

int code_samples_load(code_samples *out, const code_set *s, const char *path) {
    memset(out, 0, sizeof *out);
    char *text;
    size_t len;
    if (read_text(path, &text, &len)) return -1;
    samples_ctx c = {out, s, path};
    for_each_line(text, len, sample_line, &c);
    free(text);
    return 0;
}

void code_samples_canonical(code_samples *out, const code_set *s) {
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < s->n; i++) code_samples_add(out, i, sm_strdup(s->p[i].solution));
}

int code_samples_write(const code_samples *smp, const code_set *s, const char *path) {
    sm_buf b = {0};
    for (size_t i = 0; i < smp->n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "task_id", s->p[smp->v[i].problem].task_id);
        cJSON_AddStringToObject(o, smp->v[i].full ? "solution" : "completion", smp->v[i].completion);
        char *line = cJSON_PrintUnformatted(o);
        SM_ASSERT(line);
        sm_buf_str(&b, line);
        sm_buf_str(&b, "\n");
        free(line);
        cJSON_Delete(o);
    }
    sb_done(&b);
    int rc = sm_write_file_atomic(path, b.s, b.len);
    free(b.s);
    return rc;
}

void code_samples_free(code_samples *smp) {
    for (size_t i = 0; i < smp->n; i++) free(smp->v[i].completion);
    free(smp->v);
    code_warnings_free(&smp->warn);
    memset(smp, 0, sizeof *smp);
}

/* ---- prompts ---- */

/* MBPP tasks 2, 3 and 4 (the usual few-shot examples, outside the 11–510 test split). */
static const struct {
    const char *text, *code, *tests[3];
} g_shots[3] = {
    {"Write a function to find the similar elements from the given two tuple lists.",
     "def similar_elements(test_tup1, test_tup2):\n  res = tuple(set(test_tup1) & set(test_tup2))\n"
     "  return (res) ",
     {"assert similar_elements((3, 4, 5, 6),(5, 7, 4, 10)) == (4, 5)",
      "assert similar_elements((1, 2, 3, 4),(5, 4, 3, 7)) == (3, 4)",
      "assert similar_elements((11, 12, 14, 13),(17, 15, 14, 13)) == (13, 14)"}},
    {"Write a python function to identify non-prime numbers.",
     "import math\ndef is_not_prime(n):\n    result = False\n    for i in range(2,int(math.sqrt(n)) + 1):\n"
     "        if n % i == 0:\n            result = True\n    return result",
     {"assert is_not_prime(2) == False", "assert is_not_prime(10) == True",
      "assert is_not_prime(35) == True"}},
    {"Write a function to find the largest integers from a given list of numbers using heap queue "
     "algorithm.",
     "import heapq as hq\ndef heap_queue_largest(nums,n):\n  largest_nums = hq.nlargest(n, nums)\n"
     "  return largest_nums",
     {"assert heap_queue_largest( [25, 35, 22, 85, 14, 65, 75, 22, 58],3)==[85, 75, 65] ",
      "assert heap_queue_largest( [25, 35, 22, 85, 14, 65, 75, 22, 58],2)==[85, 75] ",
      "assert heap_queue_largest( [25, 35, 22, 85, 14, 65, 75, 22, 58],5)==[85, 75, 65, 58, 35]"}},
};

static void mbpp_task(sm_buf *b, const char *text, const char *const *tests, int ntests) {
    sm_buf_str(b, "You are an expert Python programmer, and here is your task: ");
    sm_buf_str(b, text);
    sm_buf_str(b, " Your code should pass these tests:\n\n");
    for (int i = 0; i < ntests; i++) {
        sm_buf_str(b, tests[i]);
        sm_buf_str(b, "\n");
    }
}

/* lm-evaluation-harness's instruct tasks (Dream's copy, with the reference's patch): the user
 * message is doc_to_text, the reply starts with gen_prefix (docs/DESIGN.md §6.8). */
static const char g_harness_he_text[] =
    "Write a solution to the following problem and make sure that it passes the tests:\n```";
static const char g_harness_prefix[] = "Here is the completed function:\n```python\n";

static char *harness_prompt(const code_set *s, const code_problem *p) {
    sm_buf b = {0};
    if (code_bench_is_humaneval(s->bench)) {
        sm_buf_str(&b, g_harness_he_text);
        sm_buf_str(&b, p->prompt);
        return sb_done(&b);
    }
    /* the three asserts joined by "\n", without a newline after the last */
    mbpp_task(&b, p->prompt, (const char *const *)p->asserts, p->nasserts < 3 ? p->nasserts : 3);
    if (b.len && b.s[b.len - 1] == '\n') b.s[--b.len] = 0;
    return sb_done(&b);
}

char *code_gen_prefix(const code_set *s, size_t i) {
    SM_ASSERT(i < s->n);
    if (s->format != CODE_FORMAT_HARNESS) return NULL;
    sm_buf b = {0};
    sm_buf_str(&b, g_harness_prefix);
    if (code_bench_is_humaneval(s->bench)) {
        sm_buf_str(&b, s->p[i].prompt);
        sm_buf_str(&b, "\n");
    }
    return sb_done(&b);
}

char *code_prompt(const code_set *s, size_t i, const code_prompt_opts *o) {
    SM_ASSERT(i < s->n);
    const code_problem *p = &s->p[i];
    int chat = s->format == CODE_FORMAT_CHAT;
    if (s->format == CODE_FORMAT_HARNESS) return harness_prompt(s, p);
    sm_buf b = {0};
    if (code_bench_is_humaneval(s->bench)) {
        if (!chat) return sm_strdup(p->prompt);
        sm_buf_str(&b, "Complete the following Python function. Answer with the whole function in "
                   "one ```python code block.\n```python\n");
        sm_buf_str(&b, p->prompt);
        sm_buf_str(&b, "```\n");
        return sb_done(&b);
    }
    if (chat) {
        mbpp_task(&b, p->prompt, (const char *const *)p->asserts, p->nasserts);
        sm_buf_str(&b, "Answer with the code in one ```python code block.\n");
        return sb_done(&b);
    }
    for (int k = 0; k < o->shots && k < 3; k++) {
        mbpp_task(&b, g_shots[k].text, g_shots[k].tests, 3);
        sm_buf_str(&b, "[BEGIN]\n");
        sm_buf_str(&b, g_shots[k].code);
        sm_buf_str(&b, "\n[DONE]\n\n");
    }
    mbpp_task(&b, p->prompt, (const char *const *)p->asserts, p->nasserts);
    sm_buf_str(&b, "[BEGIN]\n");
    return sb_done(&b);
}

int code_model_prompt(const smdlm_model *model, const code_set *s, size_t i,
                      const code_prompt_opts *o, const char *system, char **text) {
    char *prompt = code_prompt(s, i, o);
    if (s->format == CODE_FORMAT_COMPLETION) {
        *text = prompt;
        return 0;
    }
    char *prefix = code_gen_prefix(s, i);
    smdlm_chat_message m[3];
    size_t n = 0;
    if (system) m[n++] = (smdlm_chat_message){"system", system};
    m[n++] = (smdlm_chat_message){"user", prompt};
    if (prefix) m[n++] = (smdlm_chat_message){"assistant", prefix};
    int rc = smdlm_chat_text(model, m, n, prefix != NULL, text);
    free(prompt);
    free(prefix);
    return rc;
}

/* ---- extraction ---- */

static const char *const g_end_tokens[] = {"<|endoftext|>", "<|im_end|>", "<|eot_id|>", NULL};
static const char *const g_stops_humaneval[] = {"\ndef", "\nclass", "\nif", "\nprint", "\n#", NULL};
static const char *const g_stops_mbpp[] = {"[DONE]", "\n[BEGIN]", "\nYou are an expert",
                                           "\nassert", "\nif __name__", "\nprint(", NULL};

static size_t first_stop(const char *s, size_t n, const char *const *stops) {
    for (int i = 0; stops[i]; i++) {
        const char *hit = memmem(s, n, stops[i], strlen(stops[i]));
        if (hit) n = (size_t)(hit - s);
    }
    return n;
}

static char *dup_n(const char *s, size_t n) {
    char *r = sm_malloc(n + 1);
    memcpy(r, s, n);
    r[n] = 0;
    return r;
}

/* Contents of the first ```python block (else the first ``` block); an unterminated block
 * runs to the end; no fence: the whole text. */
static char *fenced_block(const char *s, size_t n) {
    const char *open = memmem(s, n, "```python", 9);
    size_t skip = 9;
    if (!open) {
        open = memmem(s, n, "```", 3);
        skip = 3;
    }
    if (!open) return dup_n(s, n);
    const char *body = open + skip;
    const char *nl = memchr(body, '\n', (size_t)(s + n - body));
    body = nl ? nl + 1 : s + n; /* the rest of the fence line is its language tag */
    const char *close = memmem(body, (size_t)(s + n - body), "```", 3);
    return dup_n(body, close ? (size_t)(close - body) : (size_t)(s + n - body));
}

/* The harness's `until` of each task (humaneval.yaml with the reference's "<|im_end|>";
 * mbpp_instruct.yaml). */
static const char *const g_until_harness_humaneval[] = {"\nclass", "\ndef", "\n#", "\nif", "\nprint",
                                                        "<|im_end|>", NULL};
static const char *const g_until_harness_mbpp[] = {"```", NULL};

static char *harness_extract(const code_set *s, const char *generated) {
    int he = code_bench_is_humaneval(s->bench);
    size_t n = first_stop(generated, strlen(generated), he ? g_until_harness_humaneval : g_until_harness_mbpp);
    if (!he) return dup_n(generated, n);
    /* build_predictions_instruct: prompt + "\n" + r.split("```python\n", 1)[-1].split("```")[0] */
    const char *open = memmem(generated, n, "```python\n", 10);
    const char *body = open ? open + 10 : generated;
    size_t left = (size_t)(generated + n - body);
    const char *close = memmem(body, left, "```", 3);
    size_t k = close ? (size_t)(close - body) : left;
    char *r = sm_malloc(k + 2);
    r[0] = '\n';
    memcpy(r + 1, body, k);
    r[k + 1] = 0;
    return r;
}

char *code_extract(const code_set *s, const char *generated) {
    if (s->format == CODE_FORMAT_HARNESS) return harness_extract(s, generated);
    size_t n = first_stop(generated, strlen(generated), g_end_tokens);
    if (s->format == CODE_FORMAT_CHAT) return fenced_block(generated, n);
    n = first_stop(generated, n,
                   code_bench_is_humaneval(s->bench) ? g_stops_humaneval : g_stops_mbpp);
    return dup_n(generated, n);
}

/* ---- generation ---- */

/* 1 with the reason in why when a prompt of np tokens plus gen_len generated ones exceeds
 * the model's length, else 0. */
static int prompt_too_long(const smdlm_model *model, size_t np, int gen_len, char *why, size_t cap) {
    const int max_len = smdlm_max_length(model);
    if ((long)np + gen_len <= max_len) return 0;
    snprintf(why, cap, "prompt of %zu tokens does not fit the context of %d with max_new_tokens %d", np, max_len,
             gen_len);
    return 1;
}

/* The text generation starts from: the prompt, or for the harness its rendered chat text
 * (encoded with control tokens parsed); NULL on error. */
static char *generation_prompt(const smdlm_model *model, const code_set *s, size_t i, const code_gen_opts *o) {
    char *prompt = NULL;
    if (s->format != CODE_FORMAT_HARNESS) return code_prompt(s, i, &o->prompt);
    return code_model_prompt(model, s, i, &o->prompt, o->gp.system, &prompt) ? NULL : prompt;
}

int code_prompt_fits(const smdlm_model *model, const code_set *s, size_t i, const code_gen_opts *o,
                     char *why, size_t cap) {
    char *prompt = generation_prompt(model, s, i, o);
    int32_t *ids = NULL;
    size_t np = 0;
    int rc = !prompt || smdlm_tokenize(model, prompt, 1, &ids, &np) ? -1
                                                                     : prompt_too_long(model, np, o->gen_len, why, cap);
    free(ids);
    free(prompt);
    return rc;
}

int code_generate(const smdlm_model *model, smdlm_state *state, const code_set *s, size_t i,
                  const code_gen_opts *o, uint64_t seed, char **completion) {
    int harness = s->format == CODE_FORMAT_HARNESS;
    char *prompt = NULL, *raw = NULL;
    int32_t *ids = NULL;
    size_t np = 0;
    smdlm_result r = {0};
    int rc = -1;
    char why[160];
    if (!(prompt = generation_prompt(model, s, i, o))) goto done;
    if (smdlm_tokenize(model, prompt, 1, &ids, &np)) goto done;
    if (prompt_too_long(model, np, o->gen_len, why, sizeof why)) {
        SM_ERR("%s: %s", s->p[i].task_id, why);
        goto done;
    }
    smdlm_gen_params gp = o->gp;
    gp.mdlm.len = (int)np + o->gen_len;     /* MDLM: the canvas, prompt included */
    gp.decoder.max_new_tokens = o->gen_len; /* Dream / LLaDA */
    gp.seed = seed;
    gp.n = 1;
    gp.chat = s->format == CODE_FORMAT_CHAT; /* Dream / LLaDA: the prompt is a user message */
    if (harness) {
        gp.allow_special = 1;
        gp.system = NULL;
    }
    if (smdlm_generate(state, prompt, &gp, &r) != SMDLM_OK) {
        sm_wrap_error("%s", s->p[i].task_id);
        goto done;
    }
    /* An MDLM returns its whole canvas, which starts with the prompt (byte-level BPE round
     * trip); Dream / LLaDA return the completion alone. The harness decodes the tokens before
     * the EOS with special tokens as text (its `until` holds one). */
    const char *text = r.text[0];
    if (harness) {
        if (smdlm_detokenize(model, r.ids + r.prompt_len, (size_t)r.gen_len[0], &raw)) goto done;
        text = raw;
    }
    size_t pl = strlen(prompt);
    const char *gen = !gp.chat && !harness && !strncmp(text, prompt, pl) ? text + pl : text;
    *completion = code_extract(s, gen);
    rc = 0;
done:
    smdlm_result_free(&r);
    free(raw);
    free(ids);
    free(prompt);
    return rc;
}

/* ---- pass@k ---- */

double code_pass_at_k(int n, int c, int k) {
    SM_ASSERT(n >= 0 && c >= 0 && c <= n && k >= 1 && k <= n);
    if (n - c < k) return 1.0;
    double prod = 1.0; /* C(n−c, k)/C(n, k) as a product of c factors, each in [0, 1) */
    for (int i = n - c + 1; i <= n; i++) prod *= 1.0 - (double)k / (double)i;
    return 1.0 - prod;
}
