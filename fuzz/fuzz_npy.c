/* fuzz_npy.c — libFuzzer target for the .npy reader (build: fuzz/README.md).
 * The input is written to a memfd and read with npy_read and npy_read_ids; any crash,
 * hang or leak is a bug (bad input must give an error return). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "formats/npy.h"
#include "base/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int fd = memfd_create("fuzz_npy", 0);
    if (fd < 0) abort();
    if (size && write(fd, data, size) != (ssize_t)size) abort();
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    npy_array a;
    if (npy_read(path, &a) == 0) {
        size_t esz = a.dtype == NPY_I8 ? 8 : 4;
        volatile uint8_t sink = 0;
        for (size_t i = 0; i < a.numel * esz; i++) sink ^= ((uint8_t *)a.data)[i];
        (void)sink;
        npy_free(&a);
    }
    int32_t *ids = NULL;
    int B, T;
    if (npy_read_ids(path, 1000, &ids, &B, &T) == 0) {
        if ((size_t)B * (size_t)T == 0) abort();
        for (size_t i = 0; i < (size_t)B * (size_t)T; i++)
            if (ids[i] < 0 || ids[i] >= 1000) abort();
        free(ids);
    }
    close(fd);
    return 0;
}
