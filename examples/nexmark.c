/* Example job: Nexmark queries q0, q1, q2 over generated auction events.
 *
 *   weir run build/examples/nexmark.so --query q0|q1|q2 --events N [--rate EVENTS_PER_SEC]
 *
 * nexmark-source (generator, N events; see nexmark_gen.h) -> rebalance -> query -> sink
 * (blackhole). q0: pass-through map. q1: bids only, price converted to euros (price * 89 / 100).
 * q2: bids whose auction % 123 == 0, mapped to [auction, price].
 * --rate limits the wall-clock rate and also sets the event-time rate (default 10,000/s).
 * Threading: define() runs once per subtask; udata is private to that subtask's thread. */
#include <errno.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>
#include <weir/weir.h>

#include "nexmark_gen.h"

#define USAGE "usage: nexmark.so --query q0|q1|q2 --events N [--rate EVENTS_PER_SEC]"

static void generate(weir_ctx_t *ctx, uint64_t index, void *udata) {
    const nexmark_config_t *cfg = udata;
    int64_t ts;
    nexmark_pack_event(cfg, index, weir_packer(ctx), &ts);
    weir_emit_packed(ctx, ts, NULL, 0);
}

static void q0_map(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    (void)udata;
    weir_emit(ctx, in);
}

/* True for a well-formed Bid array; sets *obj. */
static bool unpack_bid(weir_ctx_t *ctx, const weir_record_t *in, msgpack_object *obj) {
    if (weir_unpack(ctx, in, obj) != 0)
        return false;
    return obj->type == MSGPACK_OBJECT_ARRAY && obj->via.array.size == NEXMARK_BID_FIELDS &&
           obj->via.array.ptr[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
           obj->via.array.ptr[0].via.u64 == NEXMARK_BID;
}

static bool bids_filter(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    (void)udata;
    msgpack_object obj;
    return unpack_bid(ctx, in, &obj);
}

static void q1_map(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    (void)udata;
    msgpack_object obj;
    if (!unpack_bid(ctx, in, &obj)) {
        weir_fail(ctx, "q1: expected a bid");
        return;
    }
    const msgpack_object *f = obj.via.array.ptr;
    msgpack_packer *pk = weir_packer(ctx);
    msgpack_pack_array(pk, NEXMARK_BID_FIELDS);
    for (uint32_t i = 0; i < NEXMARK_BID_FIELDS; i++) {
        if (i == NEXMARK_BID_PRICE)
            msgpack_pack_int64(pk, f[i].via.i64 * 89 / 100); /* dollars to euros */
        else
            msgpack_pack_object(pk, f[i]);
    }
    weir_emit_packed(ctx, in->timestamp, in->key, in->key_len);
}

static bool q2_filter(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    (void)udata;
    msgpack_object obj;
    if (!unpack_bid(ctx, in, &obj))
        return false;
    return obj.via.array.ptr[NEXMARK_BID_AUCTION].via.u64 % 123 == 0;
}

static void q2_map(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    (void)udata;
    msgpack_object obj;
    if (!unpack_bid(ctx, in, &obj)) {
        weir_fail(ctx, "q2: expected a bid");
        return;
    }
    msgpack_packer *pk = weir_packer(ctx);
    msgpack_pack_array(pk, 2);
    msgpack_pack_object(pk, obj.via.array.ptr[NEXMARK_BID_AUCTION]);
    msgpack_pack_object(pk, obj.via.array.ptr[NEXMARK_BID_PRICE]);
    weir_emit_packed(ctx, in->timestamp, in->key, in->key_len);
}

static int define(weir_job_t *job, int argc, char **argv) {
    const char *query = NULL;
    uint64_t events = 0;
    bool have_events = false;
    double rate = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) {
            weir_job_error(job, "missing value for '%s'; " USAGE, a);
            return 1;
        }
        const char *v = argv[++i];
        char *end;
        errno = 0;
        if (strcmp(a, "--query") == 0) {
            query = v;
        } else if (strcmp(a, "--events") == 0) {
            events = strtoull(v, &end, 10);
            if (errno || *end || end == v || v[0] == '-') {
                weir_job_error(job, "bad --events '%s': expected a count; " USAGE, v);
                return 1;
            }
            have_events = true;
        } else if (strcmp(a, "--rate") == 0) {
            rate = strtod(v, &end);
            if (errno || *end || end == v || rate < 0) {
                weir_job_error(job, "bad --rate '%s': expected events per second >= 0; " USAGE, v);
                return 1;
            }
        } else {
            weir_job_error(job, "unknown argument '%s'; " USAGE, a);
            return 1;
        }
    }
    if (!query || !have_events) {
        weir_job_error(job, "missing %s; " USAGE, !query ? "--query" : "--events");
        return 1;
    }
    if (strcmp(query, "q0") != 0 && strcmp(query, "q1") != 0 && strcmp(query, "q2") != 0) {
        weir_job_error(job, "unknown query '%s' (supported: q0, q1, q2); " USAGE, query);
        return 1;
    }
    nexmark_config_t *cfg = weir_job_alloc(job, sizeof(*cfg));
    nexmark_config_default(cfg);
    if (rate > 0)
        cfg->events_per_sec = rate;
    weir_job_set_name(job, query[1] == '0'   ? "nexmark-q0"
                           : query[1] == '1' ? "nexmark-q1"
                                             : "nexmark-q2");
    weir_stream_t *src =
        weir_set_uid(weir_source_generator(job, "nexmark-source", events, rate, generate, cfg),
                     "nexmark-source");
    weir_stream_t *in = weir_rebalance(src);
    weir_stream_t *out;
    if (strcmp(query, "q0") == 0) {
        out = weir_map(in, "q0", q0_map, NULL);
    } else if (strcmp(query, "q1") == 0) {
        out = weir_map(weir_filter(in, "bids", bids_filter, NULL), "q1", q1_map, NULL);
    } else {
        out = weir_map(weir_filter(in, "q2-filter", q2_filter, NULL), "q2", q2_map, NULL);
    }
    weir_sink_blackhole(out, "sink");
    return 0;
}

WEIR_PLUGIN("nexmark", "Nexmark q0/q1/q2: --query q0|q1|q2 --events N [--rate EVENTS_PER_SEC]",
            define);
