/* Print and blackhole sinks, and the value-to-text formatting shared with the file sink.
 *
 * Print: each record becomes one line "<subtask+1>> <text>" on the process's stdout, written with
 * one fwrite per record (stdio locks per call, so lines of concurrent subtasks never interleave),
 * flushed at end of input and at close. Blackhole: counts records, logs the count at close.
 * Text of a value: a msgpack str/bin is written as is; anything else as msgpack-c's JSON-like
 * text. The formatter reuses one buffer and one zone: no allocation per record once warm.
 * Threading: an operator instance runs on its subtask thread only. */
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "connectors/common/connectors_int.h"

#define FMT_INITIAL 4096u
#define FMT_MAX (64u << 20)

int weir__value_fmt_init(weir_value_fmt_t *f) {
    memset(f, 0, sizeof(*f));
    f->buf = malloc(FMT_INITIAL);
    f->zone = msgpack_zone_new(8192);
    if (!f->buf || !f->zone) {
        weir__value_fmt_destroy(f);
        return WEIR_ENOMEM;
    }
    f->cap = FMT_INITIAL;
    return 0;
}

void weir__value_fmt_destroy(weir_value_fmt_t *f) {
    free(f->buf);
    f->buf = NULL;
    f->cap = 0;
    if (f->zone)
        msgpack_zone_free(f->zone);
    f->zone = NULL;
}

/* Header of a msgpack str or bin: @returns true with its size and payload length. */
static bool str_or_bin_header(const uint8_t *p, size_t n, size_t *hdr, size_t *len) {
    if (n == 0)
        return false;
    uint8_t b = p[0];
    if (b >= 0xa0 && b <= 0xbf) {
        *hdr = 1;
        *len = b & 0x1f;
    } else if ((b == 0xd9 || b == 0xc4) && n >= 2) {
        *hdr = 2;
        *len = p[1];
    } else if ((b == 0xda || b == 0xc5) && n >= 3) {
        *hdr = 3;
        *len = ((size_t)p[1] << 8) | p[2];
    } else if ((b == 0xdb || b == 0xc6) && n >= 5) {
        *hdr = 5;
        *len = ((size_t)p[1] << 24) | ((size_t)p[2] << 16) | ((size_t)p[3] << 8) | p[4];
    } else {
        return false;
    }
    return *hdr + *len <= n;
}

int weir__value_text(weir_value_fmt_t *f, const void *value, size_t value_len, const char **text,
                     size_t *text_len) {
    size_t hdr, len;
    if (str_or_bin_header(value, value_len, &hdr, &len)) {
        *text = (const char *)value + hdr;
        *text_len = len;
        return 0;
    }
    static const char invalid[] = "<invalid msgpack>";
    msgpack_object obj;
    size_t off = 0;
    msgpack_zone_clear(f->zone);
    msgpack_unpack_return ur = msgpack_unpack(value, value_len, &off, f->zone, &obj);
    if (ur != MSGPACK_UNPACK_SUCCESS && ur != MSGPACK_UNPACK_EXTRA_BYTES) {
        *text = invalid;
        *text_len = sizeof(invalid) - 1;
        return 0;
    }
    for (;;) {
        /* msgpack-c returns 0 when the text does not fit (every object prints something). */
        int n = msgpack_object_print_buffer(f->buf, f->cap, obj);
        if (n > 0 && (size_t)n + 1 < f->cap) {
            *text = f->buf;
            *text_len = (size_t)n;
            return 0;
        }
        if (f->cap >= FMT_MAX) { /* give up growing: truncated text */
            *text = f->buf;
            *text_len = n > 0 ? (size_t)n : 0;
            return 0;
        }
        char *nb = realloc(f->buf, f->cap * 2);
        if (!nb)
            return WEIR_ENOMEM;
        f->buf = nb;
        f->cap *= 2;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Operators                                                                                */
/* ---------------------------------------------------------------------------------------- */

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
    if (need > s->line_cap) {
        size_t ncap = s->line_cap ? s->line_cap : 256;
        while (ncap < need)
            ncap *= 2;
        char *nl = realloc(s->line, ncap);
        if (!nl)
            goto oom;
        s->line = nl;
        s->line_cap = ncap;
    }
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
