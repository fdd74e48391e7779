/* fuzz_ckpt.c — libFuzzer target for PyTorch checkpoints (build: fuzz/README.md).
 * Byte 0 even: the rest is data.pkl for the restricted unpickler (ck_unpickle); odd: a whole
 * checkpoint file (zip) opened with ck_open, every tensor of its state dict read with
 * ck_tensor_data. Any crash, hang or leak is a bug (bad input must give an error return). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/util.h"
#include "formats/ckpt.h"

/* Reads every tensor among the values of a dict (the state dict, or the root). */
static void read_tensors(const ck_file *f, const ck_value *d) {
    if (!d || d->type != CK_DICT) return;
    for (size_t i = 1; i < d->n; i += 2) {
        size_t n;
        void *p = d->items[i]->type == CK_TENSOR ? ck_tensor_data(f, d->items[i], &n) : NULL;
        free(p);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    if (data[0] % 2 == 0) {
        ck_arena a = {0};
        ck_value *root;
        (void)ck_unpickle(data + 1, size - 1, &a, &root);
        ck_arena_free(&a);
        return 0;
    }
    int fd = memfd_create("fuzz_ckpt", 0);
    if (fd < 0) abort();
    if (write(fd, data + 1, size - 1) != (ssize_t)(size - 1)) abort();
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ck_file f;
    if (ck_open(&f, path) == 0) {
        const ck_value *sd = ck_dict_get(f.root, "state_dict");
        read_tensors(&f, sd ? sd : f.root);
        ck_close(&f);
    }
    close(fd);
    return 0;
}
