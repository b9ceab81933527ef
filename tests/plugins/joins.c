/* Test plugin for the two-input operators (tests/integration/28_joins.py; docs/event-time.md
 * "Joins"): two generators, keyed by the record key, into one two-input operator chosen by
 * --mode, its lines into the exactly-once file sink.
 *
 *   left (generator, --left N indices at --rate R/s, uid "left") and right (generator,
 *   --right M indices at R*M/N/s, uid "right"), both with a 100 ms out-of-orderness watermark
 *   strategy -> key_by (record key) -> the operator (uid "op") -> format (map, chained) -> file
 *   sink (--output DIR, uid "out").
 *
 * Left index i: key "k<i mod 16>", value i, timestamp BASE + 10*i - 10*((i*7919) % 4).
 * Right index j: key "k<j mod 12>", value 1000000 + j, timestamp BASE + 25*j - 10*((j*104729) % 3).
 * Both are out of order by at most 30 ms, below the bound: no record is late.
 *
 * Modes and their lines (what the test's Python reference computes):
 *   coprocess: weir_co_process; fn1 and fn2 count the left / right records of the key in the
 *     1 s window holding them, in ONE shared map state (window end -> [left, right]), and
 *     register an event-time timer at the window end (shared timers); on_timer writes
 *     "<key> <window end> <left count> <right count>" and drops the entry.
 *   cogroup: weir_window_cogroup with --window (tumbling 1000 | sliding 1000/500 | session
 *     gap 40): "<key> <start> <end> <n left> <n right> <left values, comma separated, arrival
 *     order>|<right values>" (values sorted by the test: arrival order depends on timing).
 *   join: weir_window_join, same windows: "<key> <start> <end> <left value> <right value>".
 *   interval: weir_interval_join between --lower and --upper ms: "<key> <left value> <right
 *     value> <record timestamp>" (the record timestamp must be max(l.ts, r.ts)).
 * Threading: define() runs once per subtask; functions keep no state outside keyed state. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weir/weir.h>

#include "plugin_args.h"

#define USAGE                                                                                      \
    "usage: joins.so --output DIR --mode coprocess|cogroup|join|interval [--left N] [--right M] "  \
    "[--rate R] [--window tumbling|sliding|session] [--lower MS] [--upper MS]"
#define BASE 1700000000000LL
#define WINDOW 1000

static void gen_left(weir_ctx_t *ctx, uint64_t i, void *udata) {
    (void)udata;
    int64_t ts = BASE + 10 * (int64_t)i - 10 * (int64_t)((i * 7919) % 4);
    msgpack_pack_uint64(weir_packer(ctx), i);
    char key[8];
    int n = snprintf(key, sizeof key, "k%u", (unsigned)(i % 16));
    weir_emit_packed(ctx, ts, key, (uint32_t)n);
}

static void gen_right(weir_ctx_t *ctx, uint64_t j, void *udata) {
    (void)udata;
    int64_t ts = BASE + 25 * (int64_t)j - 10 * (int64_t)((j * 104729) % 3);
    msgpack_pack_uint64(weir_packer(ctx), 1000000 + j);
    char key[8];
    int n = snprintf(key, sizeof key, "k%u", (unsigned)(j % 12));
    weir_emit_packed(ctx, ts, key, (uint32_t)n);
}

/* The record's value (an unsigned integer). */
static uint64_t value_of(weir_ctx_t *ctx, const weir_record_t *r) {
    msgpack_object o;
    if (weir_unpack(ctx, r, &o) < 0 || o.type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        weir_fail(ctx, "joins: a record value is not an unsigned integer");
        return 0;
    }
    return o.via.u64;
}

/* Emits @p line (a msgpack str) with the current key and timestamp @p ts. */
static void emit_line(weir_ctx_t *ctx, int64_t ts, const char *line, size_t n) {
    msgpack_packer *pk = weir_packer(ctx);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, line, n);
    uint32_t kl;
    const void *key = weir_current_key(ctx, &kl);
    weir_emit_packed(ctx, ts, key, kl);
}

/* ---- coprocess ---------------------------------------------------------------------------- */

static void co_count(weir_ctx_t *ctx, const weir_record_t *in, weir_state_id st, int side) {
    int64_t wend = (in->timestamp / WINDOW + 1) * WINDOW - 1, n[2] = {0, 0};
    const void *v;
    uint32_t len;
    if (weir_mapstate_get(ctx, st, &wend, 8, &v, &len) == 0 && len == 16)
        memcpy(n, v, 16);
    n[side]++;
    if (weir_mapstate_put(ctx, st, &wend, 8, n, 16) != 0 ||
        weir_timer_register_event_time(ctx, wend) != 0)
        weir_fail(ctx, "keyed state or timer registration failed");
}

static void co_left(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    co_count(ctx, in, *(const weir_state_id *)udata, 0);
}

static void co_right(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    co_count(ctx, in, *(const weir_state_id *)udata, 1);
}

static void co_fire(weir_ctx_t *ctx, int64_t ts, weir_time_domain_t domain, void *udata) {
    weir_state_id st = *(const weir_state_id *)udata;
    if (domain != WEIR_EVENT_TIME) {
        weir_fail(ctx, "a processing-time timer fired, none was registered");
        return;
    }
    int64_t n[2] = {0, 0};
    const void *v;
    uint32_t len;
    if (weir_mapstate_get(ctx, st, &ts, 8, &v, &len) == 0 && len == 16)
        memcpy(n, v, 16);
    weir_mapstate_remove(ctx, st, &ts, 8);
    uint32_t kl;
    const char *key = weir_current_key(ctx, &kl);
    char line[128];
    int w = snprintf(line, sizeof line, "%.*s %" PRId64 " %" PRId64 " %" PRId64, (int)kl, key, ts,
                     n[0], n[1]);
    emit_line(ctx, 0, line, (size_t)w); /* the runtime stamps the timer's timestamp */
}

/* ---- cogroup, join, interval ------------------------------------------------------------- */

/* Appends the values of @p recs, comma separated, to @p line at *pos (capacity cap). */
static void put_values(weir_ctx_t *ctx, char *line, size_t cap, size_t *pos,
                       const weir_record_t *recs, size_t n) {
    for (size_t i = 0; i < n && *pos < cap; i++)
        *pos += (size_t)snprintf(line + *pos, cap - *pos, "%s%" PRIu64, i ? "," : "",
                                 value_of(ctx, &recs[i]));
}

static void cogroup_fn(weir_ctx_t *ctx, const weir_window_t *w, const weir_record_t *left,
                       size_t n_left, const weir_record_t *right, size_t n_right, void *udata) {
    (void)udata;
    size_t cap = 64 + 24 * (n_left + n_right), pos = 0;
    char *line = malloc(cap);
    if (!line)
        abort();
    uint32_t kl;
    const char *key = weir_current_key(ctx, &kl);
    pos += (size_t)snprintf(line, cap, "%.*s %" PRId64 " %" PRId64 " %zu %zu ", (int)kl, key,
                            w->start, w->end, n_left, n_right);
    put_values(ctx, line, cap, &pos, left, n_left);
    pos += (size_t)snprintf(line + pos, cap - pos, "|");
    put_values(ctx, line, cap, &pos, right, n_right);
    emit_line(ctx, w->end - 1, line, pos);
    free(line);
}

static void join_fn(weir_ctx_t *ctx, const weir_window_t *w, const weir_record_t *l,
                    const weir_record_t *r, void *udata) {
    (void)udata;
    uint32_t kl;
    const char *key = weir_current_key(ctx, &kl);
    char line[160];
    int n;
    if (w)
        n = snprintf(line, sizeof line, "%.*s %" PRId64 " %" PRId64 " %" PRIu64 " %" PRIu64,
                     (int)kl, key, w->start, w->end, value_of(ctx, l), value_of(ctx, r));
    else /* interval join: the record timestamp is the runtime's max(l.ts, r.ts) */
        n = snprintf(line, sizeof line, "%.*s %" PRIu64 " %" PRIu64, (int)kl, key, value_of(ctx, l),
                     value_of(ctx, r));
    emit_line(ctx, 0, line, (size_t)n); /* 0: the runtime stamps the pair's timestamp */
}

/* ---- define ------------------------------------------------------------------------------- */

/* Interval join lines get " <record timestamp>" appended (the test checks it is
 * max(l.ts, r.ts)); other lines pass through. */
static void format(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    if (!*(const bool *)udata) {
        weir_emit(ctx, in);
        return;
    }
    msgpack_object o;
    if (weir_unpack(ctx, in, &o) < 0 || o.type != MSGPACK_OBJECT_STR) {
        weir_fail(ctx, "joins: an interval join line is not a string");
        return;
    }
    char line[200];
    int n = snprintf(line, sizeof line, "%.*s %" PRId64, (int)o.via.str.size, o.via.str.ptr,
                     in->timestamp);
    emit_line(ctx, in->timestamp, line, (size_t)n);
}

static int define(weir_job_t *job, int argc, char **argv) {
    const char *out = NULL, *mode = NULL, *window = "tumbling";
    uint64_t n_left = 5000, n_right = 2000;
    double rate = 1250;
    int64_t lower = -300, upper = 200;
    const plugin_arg_t args[] = {{"--output", PLUGIN_ARG_STR, &out},
                                 {"--mode", PLUGIN_ARG_STR, &mode},
                                 {"--left", PLUGIN_ARG_U64, &n_left},
                                 {"--right", PLUGIN_ARG_U64, &n_right},
                                 {"--rate", PLUGIN_ARG_DOUBLE, &rate},
                                 {"--window", PLUGIN_ARG_STR, &window},
                                 {"--lower", PLUGIN_ARG_I64, &lower},
                                 {"--upper", PLUGIN_ARG_I64, &upper},
                                 {NULL, 0, NULL}};
    if (plugin_args_parse(job, argc, argv, args, USAGE))
        return 1;
    if (!out || !mode) {
        weir_job_error(job, "--output and --mode are required; " USAGE);
        return 1;
    }
    weir_watermark_strategy_t wst = {.max_out_of_orderness_ms = 100};
    weir_stream_t *l = weir_source_generator(job, "left", n_left, rate, gen_left, NULL);
    weir_set_watermark_strategy(weir_set_uid(l, "left"), &wst);
    double rrate = n_left ? rate * (double)n_right / (double)n_left : rate;
    weir_stream_t *r = weir_source_generator(job, "right", n_right, rrate, gen_right, NULL);
    weir_set_watermark_strategy(weir_set_uid(r, "right"), &wst);
    l = weir_key_by(l, NULL, NULL);
    r = weir_key_by(r, NULL, NULL);
    weir_stream_t *op = NULL;
    if (strcmp(mode, "coprocess") == 0) {
        weir_state_id *st = weir_job_alloc(job, sizeof *st);
        op = weir_co_process(l, r, "op", co_left, co_right, st);
        *st = weir_map_state(op, "counts");
        weir_set_on_timer(op, co_fire);
    } else if (strcmp(mode, "cogroup") == 0 || strcmp(mode, "join") == 0) {
        weir_window_spec_t spec = {.kind = WEIR_WINDOW_TUMBLING, .size_ms = WINDOW};
        if (strcmp(window, "sliding") == 0)
            spec = (weir_window_spec_t){
                .kind = WEIR_WINDOW_SLIDING, .size_ms = WINDOW, .slide_ms = WINDOW / 2};
        else if (strcmp(window, "session") == 0)
            spec = (weir_window_spec_t){.kind = WEIR_WINDOW_SESSION, .gap_ms = 100};
        else if (strcmp(window, "tumbling") != 0) {
            weir_job_error(job, "unknown --window '%s'; " USAGE, window);
            return 1;
        }
        op = mode[0] == 'c' ? weir_window_cogroup(l, r, "op", &spec, cogroup_fn, NULL)
                            : weir_window_join(l, r, "op", &spec, join_fn, NULL);
    } else if (strcmp(mode, "interval") == 0) {
        op = weir_interval_join(l, r, "op", lower, upper, join_fn, NULL);
    } else {
        weir_job_error(job, "unknown --mode '%s'; " USAGE, mode);
        return 1;
    }
    bool *stamp = weir_job_alloc(job, sizeof *stamp);
    *stamp = strcmp(mode, "interval") == 0;
    weir_set_uid(op, "op");
    weir_stream_t *f = weir_set_uid(weir_map(op, "format", format, stamp), "format");
    weir_set_uid(weir_sink_file(f, "out", out), "out");
    return 0;
}

WEIR_PLUGIN("joins", "two-input operators over two generators: " USAGE, define);
