/* data.c — the token shard reader (see data.h for the format; data_prepare.c writes it).
 *
 * Every shard is mmap'ed read-only. shards_open checks meta.json (format, version, vocab
 * size, block length, token width, the list of files of the split and their block counts)
 * and every shard header against it, and the file size against the header, so that
 * shards_read_block only has to check token ids. Files and meta.json are untrusted: every
 * problem is an error naming the file (and the byte offset where there is one). */
#include "train/data.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/jsonutil.h"
#include "base/util.h"
#include "text/tokenizer.h"

#define META_MAX_BYTES ((size_t)64 << 20)

static uint32_t rd_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd_u64(const uint8_t *p) { return (uint64_t)rd_u32(p) | (uint64_t)rd_u32(p + 4) << 32; }

/* Non-negative integer ≤ 2^53 (exact in a double); absent is an error. */
static int meta_get_count(const cJSON *obj, const char *key, uint64_t *out, const char *what) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) return SM_ERR("%s: missing integer \"%s\"", what, key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0 ||
        v->valuedouble != floor(v->valuedouble) || v->valuedouble > 9007199254740992.0)
        return SM_ERR("%s: \"%s\" must be a non-negative integer", what, key);
    *out = (uint64_t)v->valuedouble;
    return 0;
}

/* A shard name from meta.json must stay inside the data directory. */
static int plain_name(const char *s) {
    return *s && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..");
}

static void unmap_file(shard_file *f) {
    if (f->map) munmap((void *)f->map, f->map_size);
    free(f->path);
    memset(f, 0, sizeof *f);
}

/* Maps one shard and checks its header against the data set's parameters. */
static int map_shard(shard_file *f, const char *path, int width, int block_len, uint64_t blocks) {
    memset(f, 0, sizeof *f);
    struct stat st;
    int fd = sm_open_regular(path, &st);
    if (fd < 0) return sm_wrap_error("token shard");
    size_t size = (size_t)st.st_size;
    if (size < SHARD_HEADER_BYTES) {
        close(fd);
        return SM_ERR("shard '%s' is truncated: %zu bytes, shorter than the %d-byte header", path,
                      size, SHARD_HEADER_BYTES);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return SM_ERR("cannot map shard '%s': %s", path, strerror(errno));
    f->map = map;
    f->map_size = size;
    f->path = sm_strdup(path);
    const uint8_t *h = f->map;
    if (memcmp(h, SHARD_MAGIC, 8) != 0) {
        SM_ERR("'%s' is not a token shard (bad magic at byte offset 0)", path);
        goto fail;
    }
    uint32_t version = rd_u32(h + 8), w = rd_u32(h + 12), L = rd_u32(h + 24), reserved = rd_u32(h + 28);
    uint64_t ntok = rd_u64(h + 16);
    if (version != SHARD_VERSION) {
        SM_ERR("shard '%s' has format version %u (this smdlm reads version %d)", path, version,
               SHARD_VERSION);
        goto fail;
    }
    if (w != 2 && w != 4) {
        SM_ERR("shard '%s' has token width %u bytes at byte offset 12 (expected 2 or 4)", path, w);
        goto fail;
    }
    if ((int)w != width) {
        SM_ERR("shard '%s' has token width %u but meta.json says %d", path, w, width);
        goto fail;
    }
    if (reserved != 0) {
        SM_ERR("shard '%s': reserved header field at byte offset 28 is %u (expected 0)", path, reserved);
        goto fail;
    }
    if (L != (uint32_t)block_len) {
        SM_ERR("shard '%s' has block length %u but meta.json says %d", path, L, block_len);
        goto fail;
    }
    if (ntok % L != 0) {
        SM_ERR("shard '%s': token count %llu is not a multiple of the block length %u", path,
               (unsigned long long)ntok, L);
        goto fail;
    }
    size_t data_bytes, want;
    if (ntok > SIZE_MAX || sm_mul_size((size_t)ntok, w, &data_bytes) ||
        sm_add_size(data_bytes, SHARD_HEADER_BYTES, &want)) {
        SM_ERR("shard '%s': token count %llu overflows", path, (unsigned long long)ntok);
        goto fail;
    }
    if (want != size) {
        SM_ERR("shard '%s' is %s: the header promises %llu tokens (%zu bytes) but the file has %zu",
               path, size < want ? "truncated" : "longer than its header says",
               (unsigned long long)ntok, want, size);
        goto fail;
    }
    f->nblocks = (size_t)(ntok / L);
    if ((uint64_t)f->nblocks != blocks) {
        SM_ERR("shard '%s' holds %zu blocks but meta.json says %llu", path, f->nblocks,
               (unsigned long long)blocks);
        goto fail;
    }
    return 0;
fail:
    unmap_file(f);
    return -1;
}

static int open_split(shard_set *s, const cJSON *meta, const char *dir, const char *split,
                      const char *what) {
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(meta, split);
    if (!cJSON_IsObject(sp)) return SM_ERR("%s: no \"%s\" split object", what, split);
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(sp, "files");
    if (!cJSON_IsArray(files)) return SM_ERR("%s: \"%s\".\"files\" must be an array", what, split);
    uint64_t total;
    if (meta_get_count(sp, "blocks", &total, what)) return -1;
    int n = cJSON_GetArraySize(files);
    s->files = sm_calloc((size_t)n, sizeof *s->files);
    uint64_t sum = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, files) {
        const char *name = cJSON_IsObject(it) ? json_get_string(it, "name") : NULL;
        if (!name || !plain_name(name))
            return SM_ERR("%s: entry %d of \"%s\".\"files\" needs a \"name\" (a file in the data "
                          "directory)", what, s->nfiles, split);
        uint64_t blocks;
        if (meta_get_count(it, "blocks", &blocks, what)) return -1;
        char *path = sm_path_join(dir, name);
        int rc = map_shard(&s->files[s->nfiles], path, s->token_bytes, s->block_len, blocks);
        free(path);
        if (rc) return -1;
        sum += s->files[s->nfiles].nblocks;
        s->nfiles++;
    }
    if (sum != total)
        return SM_ERR("%s: the \"%s\" files hold %llu blocks but \"blocks\" says %llu", what, split,
                      (unsigned long long)sum, (unsigned long long)total);
    s->nblocks = (size_t)sum;
    return 0;
}

int shards_open(shard_set *s, const char *dir, const char *split) {
    memset(s, 0, sizeof *s);
    if (strcmp(split, "train") != 0 && strcmp(split, "val") != 0)
        return SM_ERR("unknown split '%s' (expected train or val)", split);
    char *mpath = sm_path_join(dir, "meta.json"), *text = NULL;
    cJSON *meta = NULL;
    int rc = -1;
    if (sm_read_file(mpath, META_MAX_BYTES, &text, NULL)) {
        sm_wrap_error("'%s' is not a prepared data directory (smdlm data prepare writes meta.json "
                      "last)", dir);
        goto done;
    }
    if (!(meta = json_parse_object(text, mpath))) goto done;
    const char *fmt = json_get_string(meta, "format");
    if (!fmt || strcmp(fmt, "smdlm-tokens") != 0) {
        SM_ERR("%s: \"format\" must be \"smdlm-tokens\"", mpath);
        goto done;
    }
    int version, vocab, L, width;
    if (json_get_int(meta, "version", 0, 1 << 30, -1, &version, mpath) ||
        json_get_int(meta, "vocab_size", 1, 1 << 30, -1, &vocab, mpath) ||
        json_get_int(meta, "block_len", 3, 1 << 20, -1, &L, mpath) ||
        json_get_int(meta, "token_bytes", 2, 4, -1, &width, mpath))
        goto done;
    if (version != SHARD_VERSION) {
        SM_ERR("%s: data format version %d (this smdlm reads version %d)", mpath, version,
               SHARD_VERSION);
        goto done;
    }
    if (width != 2 && width != 4) {
        SM_ERR("%s: \"token_bytes\" must be 2 or 4", mpath);
        goto done;
    }
    if (width == 2 && vocab > 65536) {
        SM_ERR("%s: vocab_size %d does not fit 2-byte tokens", mpath, vocab);
        goto done;
    }
    s->token_bytes = width;
    s->block_len = L;
    s->vocab_size = vocab;
    rc = open_split(s, meta, dir, split, mpath);
done:
    if (rc) shards_close(s);
    cJSON_Delete(meta);
    free(text);
    free(mpath);
    return rc;
}

void shards_close(shard_set *s) {
    for (int i = 0; i < s->nfiles; i++) unmap_file(&s->files[i]);
    free(s->files);
    memset(s, 0, sizeof *s);
}

int shards_read_block(const shard_set *s, size_t i, int32_t *out) {
    SM_ASSERT(i < s->nblocks);
    int fi = 0;
    while (i >= s->files[fi].nblocks) i -= s->files[fi++].nblocks;
    const shard_file *f = &s->files[fi];
    size_t L = (size_t)s->block_len, off = SHARD_HEADER_BYTES + i * L * (size_t)s->token_bytes;
    const uint8_t *p = f->map + off;
    uint32_t bad = 0;
    if (s->token_bytes == 2) {
        for (size_t j = 0; j < L; j++) {
            uint32_t v = (uint32_t)p[2 * j] | (uint32_t)p[2 * j + 1] << 8;
            out[j] = (int32_t)v;
            bad |= v >= (uint32_t)s->vocab_size;
        }
    } else {
        for (size_t j = 0; j < L; j++) {
            uint32_t v = rd_u32(p + 4 * j);
            out[j] = (int32_t)v;
            bad |= v >= (uint32_t)s->vocab_size;
        }
    }
    if (bad)
        for (size_t j = 0; j < L; j++)
            if ((uint32_t)out[j] >= (uint32_t)s->vocab_size)
                return SM_ERR("shard '%s': token id %u at byte offset %zu is not below the "
                              "vocabulary size %d", f->path, (uint32_t)out[j],
                              off + j * (size_t)s->token_bytes, s->vocab_size);
    return 0;
}

int data_check_tokenizer(const char *data_dir, const char *model_dir, int allow_mismatch, const char *who) {
    char model_fp[TOK_FINGERPRINT_SIZE];
    int has = tok_fingerprint_dir(model_dir, model_fp);
    if (has) return has < 0 ? -1 : 0; /* no tokenizer: nothing to compare */
    char *mpath = sm_path_join(data_dir, "meta.json"), *text = NULL;
    cJSON *meta = NULL;
    int rc = -1;
    if (sm_read_file(mpath, META_MAX_BYTES, &text, NULL) || !(meta = json_parse_object(text, mpath))) goto done;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, "tokenizer_fingerprint");
    rc = 0;
    if (!v) {
        fprintf(stderr, "%s: note: %s records no tokenizer fingerprint (prepared by an older smdlm): "
                        "the tokenizer of %s cannot be checked against the data\n", who, mpath, model_dir);
    } else if (!cJSON_IsString(v)) {
        rc = SM_ERR("%s: \"tokenizer_fingerprint\" must be a string", mpath);
    } else if (strcmp(v->valuestring, model_fp) != 0) {
        char msg[8192];
        snprintf(msg, sizeof msg, "the tokenizer of %s (%s) differs from the one the data in %s were "
                 "prepared with (%s): the data's ids would mean other text to the model", model_dir,
                 model_fp, data_dir, v->valuestring);
        if (allow_mismatch)
            fprintf(stderr, "%s: warning: %s (--allow-mismatch)\n", who, msg);
        else
            rc = SM_ERR("%s; --allow-mismatch goes on anyway", msg);
    }
done:
    cJSON_Delete(meta);
    free(text);
    free(mpath);
    return rc;
}
