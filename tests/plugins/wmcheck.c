/* Test plugin for watermarks (tests/integration/22_watermarks.py): records, per record, the
 * event-time watermark the consuming subtask saw.
 *
 *   events (generator, --events N at --rate R records/s over all subtasks, uid "events",
 *   watermark strategy: --bound B ms out of orderness, --idle I ms idle timeout) -> key_by (the
 *   index mod 16) -> check (process, uid "check"): one line "<index> <timestamp>
 *   <weir_current_watermark> <subtask>" -> exactly-once file sink (--output DIR, uid "out")
 *
 * Event index i has timestamp BASE + 10*i - 10*((i * 7919) % J) with J = --jitter (default 4):
 * out of order by less than 10*J ms, which the test keeps below the bound. Generator subtask 1
 * (odd indices at -p 2) emits nothing: its split is idle from the start, while it walks its
 * indices at the same pace as subtask 0.
 *
 * With --kafka BOOTSTRAP --topic T the source is instead a bounded Kafka source at parallelism 1
 * (earliest to latest offset, value.format string: the value is the index as text, the timestamp
 * Kafka's, --rate records/s), so one subtask reads every partition: per-partition watermarks.
 * Threading: define() runs once per subtask; the functions keep no state. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weir/weir.h>

#include "plugin_args.h"

#define USAGE                                                                                      \
    "usage: wmcheck.so --output DIR [--events N] [--rate R] [--bound MS] [--idle MS] "             \
    "[--jitter J] [--kafka BOOTSTRAP --topic T]"
#define BASE 1700000000000LL

typedef struct gen_cfg {
    int64_t jitter;
} gen_cfg_t;

static void gen(weir_ctx_t *ctx, uint64_t index, void *udata) {
    const gen_cfg_t *g = udata;
    if (index % 2) /* subtask 1 of 2: an idle split */
        return;
    int64_t ts = BASE + 10 * (int64_t)index - 10 * (int64_t)((index * 7919) % (uint64_t)g->jitter);
    msgpack_pack_uint64(weir_packer(ctx), index);
    char key[8];
    int n = snprintf(key, sizeof key, "k%u", (unsigned)(index % 16));
    weir_emit_packed(ctx, ts, key, (uint32_t)n);
}

static void check(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    (void)udata;
    msgpack_object o;
    if (weir_unpack(ctx, in, &o) < 0)
        return;
    unsigned long long index = 0;
    if (o.type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        index = o.via.u64;
    } else if (o.type == MSGPACK_OBJECT_STR && o.via.str.size < 24) { /* Kafka: the text */
        char num[24];
        memcpy(num, o.via.str.ptr, o.via.str.size);
        num[o.via.str.size] = 0;
        index = strtoull(num, NULL, 10);
    }
    char line[96];
    int n = snprintf(line, sizeof line, "%llu %lld %lld %u", index, (long long)in->timestamp,
                     (long long)weir_current_watermark(ctx), weir_subtask_index(ctx));
    msgpack_packer *pk = weir_packer(ctx);
    msgpack_pack_str(pk, (size_t)n);
    msgpack_pack_str_body(pk, line, (size_t)n);
    weir_emit_packed(ctx, in->timestamp, in->key, in->key_len);
}

static int define(weir_job_t *job, int argc, char **argv) {
    const char *out = NULL, *kafka = NULL, *topic = NULL;
    uint64_t events = 6000;
    double rate = 3000;
    weir_watermark_strategy_t st = {.max_out_of_orderness_ms = 100, .idle_timeout_ms = 100};
    gen_cfg_t *g = weir_job_alloc(job, sizeof *g);
    g->jitter = 4;
    const plugin_arg_t args[] = {{"--output", PLUGIN_ARG_STR, &out},
                                 {"--events", PLUGIN_ARG_U64, &events},
                                 {"--rate", PLUGIN_ARG_DOUBLE, &rate},
                                 {"--bound", PLUGIN_ARG_I64, &st.max_out_of_orderness_ms},
                                 {"--idle", PLUGIN_ARG_I64, &st.idle_timeout_ms},
                                 {"--jitter", PLUGIN_ARG_I64, &g->jitter},
                                 {"--kafka", PLUGIN_ARG_STR, &kafka},
                                 {"--topic", PLUGIN_ARG_STR, &topic},
                                 {NULL, 0, NULL}};
    if (plugin_args_parse(job, argc, argv, args, USAGE))
        return 1;
    if (!out || g->jitter < 1 || !kafka != !topic) {
        weir_job_error(job, "--output is required, --jitter must be >= 1, --kafka goes with "
                            "--topic; " USAGE);
        return 1;
    }
    weir_stream_t *src;
    if (kafka) {
        char rate_s[32];
        snprintf(rate_s, sizeof rate_s, "%.0f", rate);
        /* clang-format off */
        const char *opts[] = {"bootstrap.servers", kafka, "topic", topic,
                              "scan.startup.mode", "earliest-offset",
                              "scan.bounded.mode", "latest-offset",
                              "value.format", "string",
                              "scan.rate-limit", rate_s, NULL};
        /* clang-format on */
        src = weir_set_parallelism(weir_source_kafka(job, "events", opts), 1);
    } else {
        src = weir_source_generator(job, "events", events, rate, gen, g);
    }
    weir_set_uid(src, "events");
    weir_set_watermark_strategy(src, &st);
    weir_stream_t *c = weir_process(weir_key_by(src, NULL, NULL), "check", check, NULL);
    weir_set_uid(c, "check");
    weir_set_uid(weir_sink_file(c, "out", out), "out");
    return 0;
}

WEIR_PLUGIN("wmcheck", "per-record watermarks of a generator with an idle split: " USAGE, define);
