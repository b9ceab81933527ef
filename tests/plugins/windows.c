/* Test plugin for event-time windows (tests/integration/27_windows.py): count and sum per key
 * per window, tumbling 1 s, sliding 4 s every 1 s, or sessions with a 500 ms gap.
 *
 *   events (generator, --events N at --rate R records/s, uid "events", 100 ms out of
 *   orderness) -> key_by (record key) -> windows (weir_window_aggregate, uid "windows",
 *   --kind tumbling|sliding|session, --lateness MS, late side output "late"; --process 1: the
 *   same count and sum from weir_window_process over the kept records) -> format (map):
 *   "<key> <start> <end> <count> <sum> <record timestamp>" -> exactly-once file sink --output
 *   (uid "out"); late side output -> format-late (map): "<key> <timestamp> <index>" ->
 *   exactly-once file sink --late-output (uid "late-out")
 *
 * Event index i (value i): key "k<i mod 16>", or "idle" while key i mod 16 pauses (sessions
 * need pauses: ((i/16 + 3*(i mod 16)) mod 64) >= 48, 512 ms of event time) unless the record
 * is very late (the "idle" session never ends: a very late record would join it); timestamp
 * BASE + 2*i - 10*((i*7919) mod 4) (out of order by < 40 ms, below the bound), minus a delay
 * for h = (i*2654435761) mod 1000000 (only for i >= 7000): h < --very-late PPM: 60000 ms (before
 * every on-time record, so late for every window whatever the lateness once each generator
 * subtask has emitted an on-time record, however far the subtasks drift apart: 12 s was not
 * enough when a loaded machine let one subtask run 2 s of wall time ahead of the other, and
 * the window operator's watermark is the minimum of theirs); else h < very + --late PPM:
 * 300 + h mod 500 ms
 * (late but within an allowed lateness of 1 s or more).
 * Threading: define() runs once per subtask; functions keep no state outside the window. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weir/weir.h>

#include "countsum_window.h"

#include "plugin_args.h"

#define USAGE                                                                                      \
    "usage: windows.so --output DIR --late-output DIR [--kind tumbling|sliding|session] "          \
    "[--lateness MS] [--very-late PPM] [--late PPM] [--process 0|1] [--events N] "                 \
    "[--rate R]"
#define BASE 1700000000000LL

typedef struct gen_conf {
    uint64_t very_ppm, late_ppm;
} gen_conf_t;

static void gen(weir_ctx_t *ctx, uint64_t i, void *udata) {
    const gen_conf_t *g = udata;
    int64_t ts = BASE + 2 * (int64_t)i - 10 * (int64_t)((i * 7919) % 4);
    uint64_t h = (i * 2654435761u) % 1000000;
    bool very = i >= 7000 && h < g->very_ppm;
    if (very)
        ts -= 60000;
    else if (i >= 7000 && h < g->very_ppm + g->late_ppm)
        ts -= 300 + (int64_t)(h % 500);
    unsigned k = (unsigned)(i % 16);
    char key[8];
    int n = !very && ((i / 16 + 3 * k) % 64) >= 48 ? snprintf(key, sizeof key, "idle")
                                                   : snprintf(key, sizeof key, "k%u", k);
    msgpack_pack_uint64(weir_packer(ctx), i);
    weir_emit_packed(ctx, ts, key, (uint32_t)n);
}

/* --process 1: weir_window_process computing the same count and sum from the kept records */
static void full_window(weir_ctx_t *ctx, const weir_window_t *w, const weir_record_t *recs,
                        size_t n, void *udata) {
    (void)udata;
    int64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        msgpack_object o;
        if (weir_unpack(ctx, &recs[i], &o) < 0)
            return;
        sum += (int64_t)o.via.u64;
    }
    msgpack_packer *pk = weir_packer(ctx);
    msgpack_pack_array(pk, 4);
    msgpack_pack_int64(pk, w->start);
    msgpack_pack_int64(pk, w->end);
    msgpack_pack_int64(pk, (int64_t)n);
    msgpack_pack_int64(pk, sum);
    uint32_t kl;
    const void *key = weir_current_key(ctx, &kl);
    weir_emit_packed(ctx, w->end - 1, key, kl);
}

static void emit_line(weir_ctx_t *ctx, const weir_record_t *in, const char *line, int n) {
    msgpack_packer *pk = weir_packer(ctx);
    msgpack_pack_str(pk, (size_t)n);
    msgpack_pack_str_body(pk, line, (size_t)n);
    weir_emit_packed(ctx, in->timestamp, in->key, in->key_len);
}

static void format(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    (void)udata;
    msgpack_object o;
    if (weir_unpack(ctx, in, &o) < 0)
        return;
    if (o.type != MSGPACK_OBJECT_ARRAY || o.via.array.size != 4 || in->key_len > 8) {
        weir_fail(ctx, "unexpected window record");
        return;
    }
    const msgpack_object *a = o.via.array.ptr;
    char line[160];
    int n = snprintf(line, sizeof line, "%.*s %lld %lld %lld %lld %lld", (int)in->key_len,
                     (const char *)in->key, (long long)a[0].via.i64, (long long)a[1].via.i64,
                     (long long)a[2].via.i64, (long long)a[3].via.i64, (long long)in->timestamp);
    emit_line(ctx, in, line, n);
}

static void format_late(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    (void)udata;
    msgpack_object o;
    if (weir_unpack(ctx, in, &o) < 0)
        return;
    char line[96];
    int n = snprintf(line, sizeof line, "%.*s %lld %llu", (int)in->key_len, (const char *)in->key,
                     (long long)in->timestamp, (unsigned long long)o.via.u64);
    emit_line(ctx, in, line, n);
}

static int define(weir_job_t *job, int argc, char **argv) {
    const char *out = NULL, *late_out = NULL, *kind = "tumbling";
    uint64_t events = 12000;
    double rate = 3000;
    int64_t lateness = 0;
    int process = 0;
    gen_conf_t *g = weir_job_alloc(job, sizeof *g);
    const plugin_arg_t args[] = {
        {"--output", PLUGIN_ARG_STR, &out},       {"--late-output", PLUGIN_ARG_STR, &late_out},
        {"--kind", PLUGIN_ARG_STR, &kind},        {"--lateness", PLUGIN_ARG_I64, &lateness},
        {"--process", PLUGIN_ARG_INT, &process},  {"--very-late", PLUGIN_ARG_U64, &g->very_ppm},
        {"--late", PLUGIN_ARG_U64, &g->late_ppm}, {"--events", PLUGIN_ARG_U64, &events},
        {"--rate", PLUGIN_ARG_DOUBLE, &rate},     {NULL, 0, NULL}};
    if (plugin_args_parse(job, argc, argv, args, USAGE))
        return 1;
    if (!out || !late_out) {
        weir_job_error(job, "--output and --late-output are required; " USAGE);
        return 1;
    }
    weir_window_spec_t spec = {.allowed_lateness_ms = lateness, .late_tag = 1};
    if (!strcmp(kind, "tumbling")) {
        spec.kind = WEIR_WINDOW_TUMBLING;
        spec.size_ms = 1000;
    } else if (!strcmp(kind, "sliding")) {
        spec.kind = WEIR_WINDOW_SLIDING;
        spec.size_ms = 4000;
        spec.slide_ms = 1000;
    } else if (!strcmp(kind, "session")) {
        spec.kind = WEIR_WINDOW_SESSION;
        spec.gap_ms = 500;
    } else {
        weir_job_error(job, "unknown --kind '%s'; " USAGE, kind);
        return 1;
    }
    weir_stream_t *src = weir_source_generator(job, "events", events, rate, gen, g);
    weir_set_uid(src, "events");
    weir_watermark_strategy_t wst = {.max_out_of_orderness_ms = 100};
    weir_set_watermark_strategy(src, &wst);
    static const weir_aggregate_fns_t fns = {countsum_create, countsum_add, countsum_merge,
                                             countsum_result};
    weir_stream_t *keyed = weir_key_by(src, NULL, NULL);
    weir_stream_t *w = process ? weir_window_process(keyed, "windows", &spec, full_window, NULL)
                               : weir_window_aggregate(keyed, "windows", &spec, &fns, NULL);
    weir_set_uid(w, "windows");
    if (weir_side_output_tag(w, "late") != spec.late_tag) {
        weir_job_error(job, "the late side output did not get tag %d", spec.late_tag);
        return 1;
    }
    weir_stream_t *f = weir_set_uid(weir_map(w, "format", format, NULL), "format");
    weir_set_uid(weir_sink_file(f, "out", out), "out");
    weir_stream_t *l = weir_set_uid(
        weir_map(weir_side_output(w, 1), "format-late", format_late, NULL), "format-late");
    weir_set_uid(weir_sink_file(l, "late-out", late_out), "late-out");
    return 0;
}

WEIR_PLUGIN("windows", "count and sum per key per event-time window: " USAGE, define);
