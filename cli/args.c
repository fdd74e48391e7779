/* args.c — see args.h. */
#include "args.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void cli_usage(FILE *f, const cli_command *cmd) {
    fprintf(f, "usage: smdlm %s %s\n  %s\n\noptions:\n", cmd->name, cmd->usage, cmd->summary);
    for (const cli_opt *o = cmd->opts; o->name; o++) {
        char left[64];
        if (o->short_name)
            snprintf(left, sizeof left, "-%c, --%s %s", o->short_name, o->name,
                     o->type == OPT_FLAG ? "" : o->metavar);
        else
            snprintf(left, sizeof left, "    --%s %s", o->name, o->type == OPT_FLAG ? "" : o->metavar);
        fprintf(f, "  %-30s %s\n", left, o->help);
    }
    fprintf(f, "  %-30s %s\n", "-h, --help", "show this help");
}

static int set_value(const cli_command *cmd, cli_opt *o, const char *val) {
    char *end;
    errno = 0;
    switch (o->type) {
    case OPT_FLAG: *(int *)o->dst = 1; return 0;
    case OPT_STR:
        if (!*val) goto bad;
        *(const char **)o->dst = val;
        return 0;
    case OPT_INT: {
        long v = strtol(val, &end, 10);
        if (errno || end == val || *end || v < (long)o->lo || v > (long)o->hi) goto range;
        *(int *)o->dst = (int)v;
        return 0;
    }
    case OPT_U64: {
        if (*val == '-') goto bad;
        unsigned long long v = strtoull(val, &end, 10);
        if (errno || end == val || *end) goto bad;
        *(uint64_t *)o->dst = (uint64_t)v;
        return 0;
    }
    case OPT_FLOAT: {
        double v = strtod(val, &end);
        if (errno || end == val || *end || !isfinite(v) || v < o->lo || v > o->hi) goto range;
        *(float *)o->dst = (float)v;
        return 0;
    }
    }
bad:
    fprintf(stderr, "smdlm %s: invalid value '%s' for --%s\n", cmd->name, val, o->name);
    return -1;
range:
    fprintf(stderr, "smdlm %s: invalid value '%s' for --%s (expected %s in [%g, %g])\n", cmd->name,
            val, o->name, o->type == OPT_INT ? "an integer" : "a number", o->lo, o->hi);
    return -1;
}

int cli_parse(cli_command *cmd, int argc, char **argv, const char **pos, int max_pos, int *npos) {
    *npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            cli_usage(stdout, cmd);
            return 1;
        }
        if (a[0] != '-' || !a[1] || !strcmp(a, "--")) {
            if (!strcmp(a, "--")) {
                for (i++; i < argc; i++) {
                    if (*npos >= max_pos) goto extra;
                    pos[(*npos)++] = argv[i];
                }
                break;
            }
            if (*npos >= max_pos) goto extra;
            pos[(*npos)++] = a;
            continue;
        }
        cli_opt *o = NULL;
        const char *inline_val = NULL;
        if (a[1] == '-') {
            const char *eq = strchr(a + 2, '=');
            size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
            for (cli_opt *c = cmd->opts; c->name; c++)
                if (strlen(c->name) == len && !strncmp(c->name, a + 2, len)) o = c;
            if (eq) inline_val = eq + 1;
        } else if (!a[2]) {
            for (cli_opt *c = cmd->opts; c->name; c++)
                if (c->short_name == a[1]) o = c;
        }
        if (!o) {
            fprintf(stderr, "smdlm %s: unknown option '%s' (see smdlm %s --help)\n", cmd->name, a,
                    cmd->name);
            return -1;
        }
        o->seen = 1;
        if (o->type == OPT_FLAG) {
            if (inline_val) {
                fprintf(stderr, "smdlm %s: --%s takes no value\n", cmd->name, o->name);
                return -1;
            }
            *(int *)o->dst = 1;
            continue;
        }
        const char *val = inline_val;
        if (!val) {
            if (i + 1 >= argc) {
                fprintf(stderr, "smdlm %s: option '%s' needs a value (%s)\n", cmd->name, a, o->metavar);
                return -1;
            }
            val = argv[++i];
        }
        if (set_value(cmd, o, val)) return -1;
    }
    return 0;
extra:
    fprintf(stderr, "smdlm %s: unexpected argument '%s'\n", cmd->name, argv[argc - 1]);
    return -1;
}

const cli_opt *cli_find(const cli_command *cmd, const char *name) {
    for (const cli_opt *o = cmd->opts; o->name; o++)
        if (!strcmp(o->name, name)) return o;
    return NULL;
}

int cli_seen(const cli_command *cmd, const char *name) {
    const cli_opt *o = cli_find(cmd, name);
    return o && o->seen;
}
