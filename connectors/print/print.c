/* Print and blackhole sinks.
 *
 * Owns: the WEIR_OP_SINK_PRINT and WEIR_OP_SINK_BLACKHOLE operators (one line buffer and one value
 * formatter per print instance).
 * Print: each record becomes one line "<subtask+1>> <text>" on the process's stdout, written with
 * one fwrite per record (stdio locks per call, so lines of concurrent subtasks never interleave),
 * flushed at end of input and at close. Blackhole: counts records, logs the count at close.
 * Text of a value: a msgpack str/bin is written as is; anything else as msgpack-c's JSON-like
 * text (connectors/common/valuefmt.h). No allocation per record once warm.
 * Threading: an operator instance runs on its subtask thread only. */
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "connectors/common/valuefmt.h"
#include "connectors/print/print.h"

typedef struct weir_print_sink {
    weir_value_fmt_t fmt;
    char *line; /* "<n>> text\n" */
    size_t line_cap;
    uint64_t count;
    bool failed;
} weir_print_sink_t;

static void print_process(weir_operator_t *op, weir_ctx_t *ctx, const weir_record_t *rec) {
    weir_print_sink_t *s = op->impl;
    if (s->failed)
        return;
    const char *text;
    size_t len;
    if (weir__value_text(&s->fmt, rec->value, rec->value_len, &text, &len) != 0)
        goto oom;
    size_t need = len + 16;
    if (need > s->line_cap && weir_array_grow((void **)&s->line, &s->line_cap, need, 1, 256) != 0)
        goto oom;
    int p = snprintf(s->line, s->line_cap, "%u> ", op->subtask + 1);
    memcpy(s->line + p, text, len);
    s->line[(size_t)p + len] = '\n';
    fwrite(s->line, 1, (size_t)p + len + 1, stdout);
    s->count++;
    return;
oom:
    s->failed = true;
    weir_fail(ctx, "print sink '%s': out of memory", op->node->name);
}

static void print_end_input(weir_operator_t *op, weir_ctx_t *ctx) {
    (void)op;
    (void)ctx;
    fflush(stdout);
}

static void print_close(weir_operator_t *op) {
    weir_print_sink_t *s = op->impl;
    if (!s)
        return;
    fflush(stdout);
    weir__value_fmt_destroy(&s->fmt);
    free(s->line);
    free(s);
    op->impl = NULL;
}

static void blackhole_process(weir_operator_t *op, weir_ctx_t *ctx, const weir_record_t *rec) {
    (void)ctx;
    (void)rec;
    ((weir_print_sink_t *)op->impl)->count++;
}

static void blackhole_close(weir_operator_t *op) {
    weir_print_sink_t *s = op->impl;
    if (!s)
        return;
    WEIR_DEBUG("blackhole", "sink '%s' subtask %u discarded %llu records", op->node->name,
               op->subtask, (unsigned long long)s->count);
    print_close(op);
}

static const weir_operator_vt_t print_vt = {
    .process = print_process, .end_input = print_end_input, .close = print_close};
static const weir_operator_vt_t blackhole_vt = {.process = blackhole_process,
                                                .close = blackhole_close};

int weir__print_create(weir_operator_t *op, char *errstr, size_t errlen) {
    weir_print_sink_t *s = calloc(1, sizeof(*s));
    if (!s || weir__value_fmt_init(&s->fmt) != 0) {
        free(s);
        weir_fmt(errstr, errlen, "sink '%s': out of memory", op->node->name);
        return WEIR_ENOMEM;
    }
    op->impl = s;
    op->vt = op->node->kind == WEIR_OP_SINK_PRINT ? &print_vt : &blackhole_vt;
    return 0;
}
