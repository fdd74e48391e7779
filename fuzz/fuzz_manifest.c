/* fuzz_manifest.c — libFuzzer target for checkpoint manifests (build: fuzz/README.md).
 * The input is written as the COMPLETE marker of a directory that also holds two small files
 * (one of them listed correctly by the seed corpus) and checked with manifest_verify; any
 * crash, hang or leak is a bug (a bad manifest must give an error return). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "formats/manifest.h"

static char g_dir[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_dir[0]) {
        snprintf(g_dir, sizeof g_dir, "/tmp/fuzz-manifest-XXXXXX");
        if (!mkdtemp(g_dir)) abort();
        char *a = sm_path_join(g_dir, "a"), *b = sm_path_join(g_dir, "b.json");
        if (sm_write_file_atomic(a, "abc", 3) || sm_write_file_atomic(b, "{}\n", 3)) abort();
        free(a), free(b);
    }
    char *marker = sm_path_join(g_dir, MANIFEST_FILE);
    if (sm_write_file_atomic(marker, data, size)) abort();
    int rc = manifest_verify(g_dir);
    if (rc != 0 && rc != -1) abort(); /* the marker is there: 1 would be wrong */
    free(marker);
    return 0;
}
