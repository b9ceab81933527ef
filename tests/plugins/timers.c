/* Test plugin for keyed timers (tests/integration/25_timers.py): a 1 s tumbling count per key
 * built by hand from keyed state and event-time timers.
 *
 *   events (generator, --events N at --rate R records/s over all subtasks, uid "events",
 *   watermark strategy: 100 ms out of orderness) -> key_by (record key "k<index mod 16>") ->
 *   windows (process with on_timer, uid "windows"): per record count[window end]++ in a map
 *   state and an event-time timer at the window end (ts / 1000 + 1) * 1000 - 1; when it fires,
 *   emit [window end, count] and drop the count -> format (map, chained): one line
 *   "<key> <window end> <count> <record timestamp>" -> exactly-once file sink (--output DIR,
 *   uid "out")
 *
 * Event index i has timestamp BASE + 10*i - 10*((i * 7919) % 4): out of order by < 40 ms, below
 * the bound, so no record is late. The record timestamp in the line is the one the runtime
 * stamps on what on_timer emits (the timer's), so the test sees it equals the window end.
 * Threading: define() runs once per subtask; the functions keep no state outside keyed state. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weir/weir.h>

#include "plugin_args.h"

#define USAGE "usage: timers.so --output DIR [--events N] [--rate R]"
#define BASE 1700000000000LL
#define WINDOW 1000

static void gen(weir_ctx_t *ctx, uint64_t index, void *udata) {
    (void)udata;
    int64_t ts = BASE + 10 * (int64_t)index - 10 * (int64_t)((index * 7919) % 4);
    msgpack_pack_uint64(weir_packer(ctx), index);
    char key[8];
    int n = snprintf(key, sizeof key, "k%u", (unsigned)(index % 16));
    weir_emit_packed(ctx, ts, key, (uint32_t)n);
}

static void count(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    weir_state_id st = *(const weir_state_id *)udata;
    int64_t wend = (in->timestamp / WINDOW + 1) * WINDOW - 1, n = 0;
    const void *v;
    uint32_t len;
    if (weir_mapstate_get(ctx, st, &wend, 8, &v, &len) == 0 && len == 8)
        memcpy(&n, v, 8);
    n++;
    if (weir_mapstate_put(ctx, st, &wend, 8, &n, 8) != 0 ||
        weir_timer_register_event_time(ctx, wend) != 0)
        weir_fail(ctx, "keyed state or timer registration failed");
}

static void fire(weir_ctx_t *ctx, int64_t ts, weir_time_domain_t domain, void *udata) {
    weir_state_id st = *(const weir_state_id *)udata;
    if (domain != WEIR_EVENT_TIME) {
        weir_fail(ctx, "a processing-time timer fired, none was registered");
        return;
    }
    int64_t n = 0;
    const void *v;
    uint32_t len;
    if (weir_mapstate_get(ctx, st, &ts, 8, &v, &len) == 0 && len == 8)
        memcpy(&n, v, 8);
    weir_mapstate_remove(ctx, st, &ts, 8);
    msgpack_packer *pk = weir_packer(ctx);
    msgpack_pack_array(pk, 2);
    msgpack_pack_int64(pk, ts);
    msgpack_pack_int64(pk, n);
    uint32_t kl;
    const void *key = weir_current_key(ctx, &kl);
    weir_emit_packed(ctx, 0, key, kl); /* the runtime stamps the timer's timestamp */
}

static void format(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    (void)udata;
    msgpack_object o;
    if (weir_unpack(ctx, in, &o) < 0)
        return;
    if (o.type != MSGPACK_OBJECT_ARRAY || o.via.array.size != 2 || in->key_len > 8) {
        weir_fail(ctx, "unexpected window record");
        return;
    }
    char line[128];
    int n = snprintf(line, sizeof line, "%.*s %lld %lld %lld", (int)in->key_len,
                     (const char *)in->key, (long long)o.via.array.ptr[0].via.i64,
                     (long long)o.via.array.ptr[1].via.i64, (long long)in->timestamp);
    msgpack_packer *pk = weir_packer(ctx);
    msgpack_pack_str(pk, (size_t)n);
    msgpack_pack_str_body(pk, line, (size_t)n);
    weir_emit_packed(ctx, in->timestamp, in->key, in->key_len);
}

static int define(weir_job_t *job, int argc, char **argv) {
    const char *out = NULL;
    uint64_t events = 8000;
    double rate = 2000;
    const plugin_arg_t args[] = {{"--output", PLUGIN_ARG_STR, &out},
                                 {"--events", PLUGIN_ARG_U64, &events},
                                 {"--rate", PLUGIN_ARG_DOUBLE, &rate},
                                 {NULL, 0, NULL}};
    if (plugin_args_parse(job, argc, argv, args, USAGE))
        return 1;
    if (!out) {
        weir_job_error(job, "--output is required; " USAGE);
        return 1;
    }
    weir_stream_t *src = weir_source_generator(job, "events", events, rate, gen, NULL);
    weir_set_uid(src, "events");
    weir_watermark_strategy_t wst = {.max_out_of_orderness_ms = 100};
    weir_set_watermark_strategy(src, &wst);
    weir_state_id *st = weir_job_alloc(job, sizeof *st);
    weir_stream_t *w = weir_process(weir_key_by(src, NULL, NULL), "windows", count, st);
    weir_set_uid(w, "windows");
    *st = weir_map_state(w, "counts");
    weir_set_on_timer(w, fire);
    weir_stream_t *f = weir_set_uid(weir_map(w, "format", format, NULL), "format");
    weir_set_uid(weir_sink_file(f, "out", out), "out");
    return 0;
}

WEIR_PLUGIN("timers", "a 1 s tumbling count per key from keyed event-time timers: " USAGE, define);
