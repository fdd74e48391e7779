/* install_example.c — a program outside the source tree's build: tests/test_install.sh
 * compiles it against an installed smdlm with `pkg-config --cflags --libs smdlm` alone and
 * runs it on a model directory (argv[1]). Prints one 32-token sample; exit 0 on success. */
#include <smdlm.h>
#include <stdio.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]);
        return 2;
    }
    smdlm_load_params lp = smdlm_load_default_params();
    lp.threads = 1;
    smdlm_model *model = smdlm_model_load(argv[1], &lp);
    smdlm_state *st = model ? smdlm_state_new(model) : NULL;
    smdlm_gen_params gp = smdlm_gen_default_params();
    gp.mdlm.len = 32;
    gp.steps = 8;
    gp.seed = 1;
    smdlm_result r;
    int rc = st ? smdlm_generate(st, NULL, &gp, &r) : SMDLM_ERROR;
    if (rc == SMDLM_OK) {
        printf("%s\n%d forwards\n", r.text[0], r.stats.forwards);
        smdlm_result_free(&r);
    } else {
        fprintf(stderr, "install_example: %s\n", smdlm_last_error());
    }
    smdlm_state_free(st);
    smdlm_model_free(model);
    return rc == SMDLM_OK ? 0 : 1;
}
