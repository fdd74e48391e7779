/* cmd_plot.c — `smdlm plot`: training and validation loss (and the soft-masking values)
 * from train_log.jsonl files, drawn by gnuplot into a PNG; several logs share one figure. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "common.h"
#include "base/util.h"

#define MAX_LOGS 8

int plot_extract_log(const char *log, const char *dir, int i, int by_tokens, int *has_val, int *has_sm) {
    FILE *in = sm_fopen_regular(log);
    if (!in) return -1;
    char path[512];
    snprintf(path, sizeof path, "%s/log%d.train", dir, i);
    FILE *tr = fopen(path, "w");
    snprintf(path, sizeof path, "%s/log%d.val", dir, i);
    FILE *va = fopen(path, "w");
    if (!tr || !va) {
        SM_ERR("cannot write the plot data in '%s': %s", dir, strerror(errno));
        if (tr) fclose(tr);
        if (va) fclose(va);
        fclose(in);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0, points = 0;
    int rc = 0;
    while (getline(&line, &cap, in) > 0) {
        lineno++;
        cJSON *o = cJSON_Parse(line);
        if (!cJSON_IsObject(o)) {
            cJSON_Delete(o);
            rc = SM_ERR("%s:%ld: not a JSON object", log, lineno);
            break;
        }
        const cJSON *x = cJSON_GetObjectItem(o, by_tokens ? "tokens" : "step");
        const cJSON *loss = cJSON_GetObjectItem(o, "loss"), *val = cJSON_GetObjectItem(o, "val_nats");
        if (cJSON_IsNumber(x) && cJSON_IsNumber(loss)) {
            const cJSON *s = cJSON_GetObjectItem(o, "sm_scale"), *c = cJSON_GetObjectItem(o, "sm_centre"),
                        *k = cJSON_GetObjectItem(o, "sm_steepness");
            fprintf(tr, "%.17g %.9g %.9g %.9g %.9g\n", x->valuedouble, loss->valuedouble,
                    cJSON_IsNumber(s) ? s->valuedouble : 0, cJSON_IsNumber(c) ? c->valuedouble : 0,
                    cJSON_IsNumber(k) ? k->valuedouble : 0);
            if (cJSON_IsNumber(s) && s->valuedouble > 1e-4) *has_sm = 1;
            points++;
        }
        if (cJSON_IsNumber(x) && cJSON_IsNumber(val)) {
            fprintf(va, "%.17g %.9g\n", x->valuedouble, val->valuedouble);
            *has_val = 1;
        }
        cJSON_Delete(o);
    }
    free(line);
    fclose(in);
    fclose(tr);
    fclose(va);
    if (!rc && points == 0) rc = SM_ERR("%s: no training steps (lines with \"step\" and \"loss\")", log);
    return rc;
}

int cmd_plot(int argc, char **argv) {
    const char *out = NULL, *title = "smdlm training";
    int by_tokens = 0;
    cli_opt opts[] = {
        {"out", 'o', OPT_STR, &out, 0, 0, "FILE.png", "output image (required)"},
        {"tokens", 0, OPT_FLAG, &by_tokens, 0, 0, "", "x axis: tokens instead of steps"},
        {"title", 0, OPT_STR, &title, 0, 0, "TEXT", "figure title"},
        {0},
    };
    cli_command cmd = {"plot", "Plots loss curves (and soft-masking values) of train_log.jsonl files with gnuplot.",
                       "LOG.jsonl [LOG2.jsonl ...] -o FILE.png", opts};
    const char *logs[MAX_LOGS];
    int nlogs, rc = cli_parse(&cmd, argc, argv, logs, MAX_LOGS, &nlogs);
    if (rc) return rc < 0 ? 1 : 0;
    if (!out || nlogs == 0) {
        fprintf(stderr, "smdlm plot: give at least one log and -o FILE.png\n");
        return 1;
    }
    char dir[] = "/tmp/smdlm-plot-XXXXXX";
    if (!mkdtemp(dir)) {
        fprintf(stderr, "smdlm plot: cannot create a temporary directory\n");
        return 1;
    }
    int has_val = 0, has_sm = 0, status = 1;
    for (int i = 0; i < nlogs; i++)
        if (plot_extract_log(logs[i], dir, i, by_tokens, &has_val, &has_sm)) goto done;
    char script[600];
    snprintf(script, sizeof script, "%s/plot.gp", dir);
    FILE *gp = fopen(script, "w");
    if (!gp) goto done;
    fprintf(gp, "set terminal pngcairo size 1100,%d noenhanced font 'sans,10'\nset output '%s'\n",
            has_sm ? 800 : 520, out);
    if (has_sm) fprintf(gp, "set multiplot layout 2,1 title '%s'\n", title);
    else fprintf(gp, "set title '%s'\n", title);
    fprintf(gp, "set grid\nset key top right\nset xlabel '%s'\nset ylabel 'loss (nats/token)'\nplot ",
            by_tokens ? "tokens" : "step");
    for (int i = 0; i < nlogs; i++) {
        fprintf(gp, "%s'%s/log%d.train' using 1:2 with lines lw 1 title '%s train'", i ? ", " : "", dir, i, logs[i]);
        fprintf(gp, ", '%s/log%d.val' using 1:2 with linespoints lw 2 pt 7 title '%s validation'", dir, i, logs[i]);
    }
    fprintf(gp, "\n");
    if (has_sm) {
        fprintf(gp, "set ylabel 'soft-masking value'\nplot ");
        for (int i = 0; i < nlogs; i++)
            fprintf(gp, "%s'%s/log%d.train' using 1:3 with lines title '%s scale', "
                        "'%s/log%d.train' using 1:4 with lines title 'centre', "
                        "'%s/log%d.train' using 1:5 with lines title 'steepness'",
                    i ? ", " : "", dir, i, logs[i], dir, i, dir, i);
        fprintf(gp, "\nunset multiplot\n");
    }
    fclose(gp);
    if (cli_run_gnuplot(script)) goto done;
    status = 0;
done:
    if (status) cli_fail("plot");
    char rm[128];
    snprintf(rm, sizeof rm, "rm -rf '%s'", dir);
    if (system(rm) != 0) fprintf(stderr, "smdlm plot: could not remove %s\n", dir);
    return status;
}
