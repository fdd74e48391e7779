/* fuzz_config.c — libFuzzer target for the JSON configs a user hands over: a model's
 * config.json (dit_config_parse) and transparency_config.json (sm_params_load_json). Byte 0
 * picks the parser; a parser never aborts on bad input, so any crash is a bug. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "models/dit.h"
#include "softmask/softmask.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    char *text = malloc(size);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = 0;
    if (data[0] & 1) {
        char path[] = "/tmp/fuzz-sm-XXXXXX";
        int fd = mkstemp(path);
        if (fd >= 0) {
            if (write(fd, text, size - 1) == (ssize_t)(size - 1)) {
                sm_params p;
                sm_params_default(&p);
                if (sm_params_load_json(&p, path) == 0) sm_params_validate(&p);
            }
            close(fd);
            unlink(path);
        }
    } else {
        dit_config c;
        dit_config_parse(&c, text, "fuzz");
    }
    free(text);
    return 0;
}
