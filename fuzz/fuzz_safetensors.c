/* fuzz_safetensors.c — libFuzzer target for the safetensors reader (build: fuzz/README.md).
 *
 * Input byte 0 picks the mode; the rest is the payload:
 *   even: the payload is a .safetensors file, opened with st_open_file; on success every
 *         tensor is looked up, converted to f32 where floating, and checked against a small
 *         expected-tensor registry;
 *   odd:  the payload is model.safetensors.index.json in a directory that holds two valid
 *         shards, opened with st_open_dir.
 * The reader must never crash, hang or leak on any input: every failure is an error return.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "formats/safetensors.h"
#include "base/util.h"

static char g_dir[64];
static char g_index[128];

static void write_shards(void) {
    float a[3] = {1, 2, 3}, b[2] = {4, 5};
    uint16_t c[4] = {0x3f80, 0x4000, 0x4040, 0x4080};
    const st_write_entry s1[] = {{"a", ST_F32, 1, {3}, a}, {"c", ST_BF16, 2, {2, 2}, c}};
    const st_write_entry s2[] = {{"b", ST_F32, 1, {2}, b}};
    char *p1 = sm_path_join(g_dir, "model-00001-of-00002.safetensors");
    char *p2 = sm_path_join(g_dir, "model-00002-of-00002.safetensors");
    if (st_write(p1, s1, 2, NULL) != 0 || st_write(p2, s2, 1, NULL) != 0) {
        fprintf(stderr, "fuzz setup: %s\n", smdlm_last_error());
        abort();
    }
    free(p1);
    free(p2);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    strcpy(g_dir, "/tmp/smdlm_fuzz_st_XXXXXX");
    if (!mkdtemp(g_dir)) abort();
    snprintf(g_index, sizeof g_index, "%s/model.safetensors.index.json", g_dir);
    write_shards();
    return 0;
}

static void exercise(const st_archive *a) {
    for (int i = 0; i < a->ntensors; i++) {
        const st_tensor *t = &a->tensors[i];
        if (st_find(a, t->name) != t) abort(); /* sorted, unique names */
        if (t->dtype == ST_F32 || t->dtype == ST_F16 || t->dtype == ST_BF16 ||
            t->dtype == ST_F64) {
            float *out = malloc(t->numel ? t->numel * sizeof *out : 1);
            if (st_tensor_to_f32(t, out) != 0) abort();
            free(out);
        }
    }
    static const st_expect exp[] = {{"a", 1, {3}}, {"b", 2, {2, 2}}};
    static const char *const ok[] = {"inv_freq"};
    (void)st_check_expected(a, exp, 2, ok, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    st_archive a;
    if ((data[0] & 1) == 0) {
        int fd = memfd_create("fuzz_st", 0);
        if (fd < 0) abort();
        if (size > 1 && write(fd, data + 1, size - 1) != (ssize_t)(size - 1)) abort();
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        if (st_open_file(&a, path) == 0) {
            exercise(&a);
            st_close(&a);
        }
        close(fd);
    } else {
        FILE *f = fopen(g_index, "wb");
        if (!f) abort();
        if (size > 1 && fwrite(data + 1, 1, size - 1, f) != size - 1) abort();
        fclose(f);
        if (st_open_dir(&a, g_dir) == 0) {
            exercise(&a);
            st_close(&a);
        }
    }
    return 0;
}
