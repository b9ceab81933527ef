/* Argument parsing for the test plugins: `--flag value` pairs described by a table, so each
 * plugin states its flags once. Header-only (each plugin is one .c file built into its own .so).
 * Every value is checked (numbers must parse whole); an unknown flag or a bad value is a
 * define-time error naming the flag and ending with the plugin's usage. Stateless. */
#ifndef WEIR_TESTS_PLUGIN_ARGS_H
#define WEIR_TESTS_PLUGIN_ARGS_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "weir/weir.h"

typedef enum {
    PLUGIN_ARG_STR,    /**< dst: const char ** */
    PLUGIN_ARG_U64,    /**< dst: uint64_t * */
    PLUGIN_ARG_I64,    /**< dst: int64_t * */
    PLUGIN_ARG_INT,    /**< dst: int * */
    PLUGIN_ARG_DOUBLE, /**< dst: double * */
} plugin_arg_kind_t;

typedef struct {
    const char *flag; /**< "--output" */
    plugin_arg_kind_t kind;
    void *dst;
} plugin_arg_t;

/* 0, or 1 after weir_job_error. @p args ends with an entry whose flag is NULL. */
static inline int plugin_args_parse(weir_job_t *job, int argc, char **argv,
                                    const plugin_arg_t *args, const char *usage) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const plugin_arg_t *p = args;
        while (p->flag && strcmp(p->flag, a) != 0)
            p++;
        if (!p->flag) {
            weir_job_error(job, "unknown argument '%s'; %s", a, usage);
            return 1;
        }
        if (i + 1 >= argc) {
            weir_job_error(job, "missing value for '%s'; %s", a, usage);
            return 1;
        }
        const char *v = argv[++i];
        char *end = NULL;
        errno = 0;
        switch (p->kind) {
        case PLUGIN_ARG_STR:
            *(const char **)p->dst = v;
            continue;
        case PLUGIN_ARG_U64:
            if (v[0] != '-')
                *(uint64_t *)p->dst = strtoull(v, &end, 10);
            break;
        case PLUGIN_ARG_I64:
            *(int64_t *)p->dst = strtoll(v, &end, 10);
            break;
        case PLUGIN_ARG_INT: {
            long x = strtol(v, &end, 10);
            if (x < INT32_MIN || x > INT32_MAX)
                errno = ERANGE;
            *(int *)p->dst = (int)x;
            break;
        }
        case PLUGIN_ARG_DOUBLE:
            *(double *)p->dst = strtod(v, &end);
            break;
        }
        if (!end || end == v || *end || errno) {
            weir_job_error(job, "bad value '%s' for '%s'; %s", v, a, usage);
            return 1;
        }
    }
    return 0;
}

#endif
