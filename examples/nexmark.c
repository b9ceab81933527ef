/* Example job: Nexmark queries q0, q1, q2 and the event dump `events` over generated auction
 * events (examples/README.md has the generator's rules and every option).
 *
 *   weir run build/examples/nexmark.so --query q0|q1|q2|events --events N [--rate R]
 *       [--events-per-second R] [--out-of-order-group G] [--late-fraction F] [--output DIR]
 *
 * nexmark-source (generator, N events; see nexmark_gen.h) -> rebalance -> query -> sink
 * (blackhole); events: nexmark-source -> events -> sink (forward, the exactly-once file sink
 * into --output, so sink subtask s writes source subtask s's events in emission order). q0:
 * pass-through map. q1: bids only, price converted to euros (price * 89 / 100). q2: bids whose
 * auction % 123 == 0, mapped to [auction, price]. events: every event as one JSON line with the
 * reference's field names.
 * --rate limits the wall-clock rate only; --events-per-second sets the event-time rate.
 * Record timestamps are the events' dateTime. The JSON writer is bounded (a line that would not
 * fit its buffer fails the subtask instead of being cut).
 * Threading: define() runs once per subtask; udata is private to that subtask's thread; the
 * config is read-only after define. */
#include <errno.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weir/weir.h>

#include "nexmark_gen.h"

#define USAGE                                                                                      \
    "usage: nexmark.so --query q0|q1|q2|events --events N [--rate EVENTS_PER_SEC] "                \
    "[--events-per-second R] [--out-of-order-group G] [--late-fraction F] [--output DIR]"

/* Out-of-orderness the generator must stay within (the reference's watermark delay). */
#define MAX_OUT_OF_ORDER_MS 4000

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

/* A bounded JSON line writer. */
typedef struct jbuf {
    char b[4096];
    size_t n;
    bool overflow;
} jbuf_t;

static void jb_raw(jbuf_t *j, const char *s, size_t n) {
    if (j->n + n > sizeof(j->b)) {
        j->overflow = true;
        return;
    }
    memcpy(j->b + j->n, s, n);
    j->n += n;
}

static void jb_printf(jbuf_t *j, const char *fmt, ...) {
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        j->overflow = true;
        return;
    }
    jb_raw(j, tmp, (size_t)n);
}

/* "key": value from a msgpack integer or string (strings JSON-escaped). */
static void jb_member(jbuf_t *j, const char *key, const msgpack_object *v) {
    jb_printf(j, "%s\"%s\":", j->n > 1 ? "," : "", key);
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        jb_printf(j, "%llu", (unsigned long long)v->via.u64);
    } else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        jb_printf(j, "%lld", (long long)v->via.i64);
    } else if (v->type == MSGPACK_OBJECT_STR) {
        jb_raw(j, "\"", 1);
        for (uint32_t i = 0; i < v->via.str.size; i++) {
            unsigned char ch = (unsigned char)v->via.str.ptr[i];
            if (ch == '"' || ch == '\\')
                jb_printf(j, "\\%c", ch);
            else if (ch < 0x20)
                jb_printf(j, "\\u%04x", ch);
            else
                jb_raw(j, (const char *)&ch, 1);
        }
        jb_raw(j, "\"", 1);
    } else {
        j->overflow = true; /* not an event field */
    }
}

static const char *const PERSON_KEYS[] = {"id",   "name",  "emailAddress", "creditCard",
                                          "city", "state", "dateTime",     "extra"};
static const char *const AUCTION_KEYS[] = {"id",       "itemName", "description", "initialBid",
                                           "reserve",  "dateTime", "expires",     "seller",
                                           "category", "extra"};
static const char *const BID_KEYS[] = {"auction", "bidder",   "price", "channel",
                                       "url",     "dateTime", "extra"};

/* events: one event -> one JSON line {"type": ..., <the reference's fields>}. */
static void events_map(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    (void)udata;
    msgpack_object obj;
    if (weir_unpack(ctx, in, &obj) != 0 || obj.type != MSGPACK_OBJECT_ARRAY ||
        obj.via.array.size < 1 || obj.via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        weir_fail(ctx, "events: expected a nexmark event array");
        return;
    }
    const msgpack_object *f = obj.via.array.ptr;
    const char *type;
    const char *const *keys;
    uint32_t nkeys;
    switch (f[0].via.u64) {
    case NEXMARK_PERSON:
        type = "person", keys = PERSON_KEYS, nkeys = NEXMARK_PERSON_FIELDS - 1;
        break;
    case NEXMARK_AUCTION:
        type = "auction", keys = AUCTION_KEYS, nkeys = NEXMARK_AUCTION_FIELDS - 1;
        break;
    case NEXMARK_BID:
        type = "bid", keys = BID_KEYS, nkeys = NEXMARK_BID_FIELDS - 1;
        break;
    default:
        weir_fail(ctx, "events: unknown event kind");
        return;
    }
    if (obj.via.array.size != nkeys + 1) {
        weir_fail(ctx, "events: %s event with %u fields, expected %u", type, obj.via.array.size,
                  nkeys + 1);
        return;
    }
    jbuf_t j = {.n = 0, .overflow = false};
    jb_raw(&j, "{", 1);
    jb_printf(&j, "\"type\":\"%s\"", type);
    for (uint32_t i = 0; i < nkeys; i++)
        jb_member(&j, keys[i], &f[i + 1]);
    jb_raw(&j, "}", 1);
    if (j.overflow) {
        weir_fail(ctx, "events: a %s event does not fit the %zu-byte JSON line buffer", type,
                  sizeof(j.b));
        return;
    }
    msgpack_packer *pk = weir_packer(ctx);
    msgpack_pack_str(pk, j.n);
    msgpack_pack_str_body(pk, j.b, j.n);
    weir_emit_packed(ctx, in->timestamp, in->key, in->key_len);
}

static int define(weir_job_t *job, int argc, char **argv) {
    const char *query = NULL;
    uint64_t events = 0;
    bool have_events = false;
    double rate = 0, events_per_sec = 10000.0, late_fraction = 0;
    uint64_t ooo_group = 1;
    const char *output = NULL;
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
        } else if (strcmp(a, "--events-per-second") == 0) {
            events_per_sec = strtod(v, &end);
            if (errno || *end || end == v || !(events_per_sec > 0) || events_per_sec > 1e9) {
                weir_job_error(job,
                               "bad --events-per-second '%s': expected an event-time rate in "
                               "(0, 1e9] events per second; " USAGE,
                               v);
                return 1;
            }
        } else if (strcmp(a, "--out-of-order-group") == 0) {
            ooo_group = strtoull(v, &end, 10);
            if (errno || *end || end == v || v[0] == '-' || ooo_group == 0 ||
                ooo_group % 953 == 0) {
                weir_job_error(job,
                               "bad --out-of-order-group '%s': expected a group size >= 1 that "
                               "is not a multiple of 953; " USAGE,
                               v);
                return 1;
            }
        } else if (strcmp(a, "--late-fraction") == 0) {
            late_fraction = strtod(v, &end);
            if (errno || *end || end == v || !(late_fraction >= 0 && late_fraction <= 1)) {
                weir_job_error(
                    job, "bad --late-fraction '%s': expected a fraction in [0, 1]; " USAGE, v);
                return 1;
            }
        } else if (strcmp(a, "--output") == 0) {
            output = v;
        } else {
            weir_job_error(job, "unknown argument '%s'; " USAGE, a);
            return 1;
        }
    }
    if (!query || !have_events) {
        weir_job_error(job, "missing %s; " USAGE, !query ? "--query" : "--events");
        return 1;
    }
    bool events_query = strcmp(query, "events") == 0;
    if (strcmp(query, "q0") != 0 && strcmp(query, "q1") != 0 && strcmp(query, "q2") != 0 &&
        !events_query) {
        weir_job_error(job, "unknown query '%s' (supported: q0, q1, q2, events); " USAGE, query);
        return 1;
    }
    if (events_query && !output) {
        weir_job_error(job, "--query events needs --output DIR; " USAGE);
        return 1;
    }
    if (!events_query && output) {
        weir_job_error(job, "--output is supported by --query events only; " USAGE);
        return 1;
    }
    /* Positions inside a group are at most G - 1 event numbers apart: keep that under 4 s. */
    double spread_ms = (double)(ooo_group - 1) * (1e3 / events_per_sec);
    if (spread_ms > MAX_OUT_OF_ORDER_MS - 2) {
        weir_job_error(job,
                       "--out-of-order-group %llu at %g events per second spreads events over "
                       "%.0f ms of event time, more than the %d ms out-of-orderness bound; use a "
                       "group of at most %.0f events (or --late-fraction for late events)",
                       (unsigned long long)ooo_group, events_per_sec, spread_ms,
                       MAX_OUT_OF_ORDER_MS, (MAX_OUT_OF_ORDER_MS - 2) * events_per_sec / 1e3 + 1);
        return 1;
    }
    nexmark_config_t *cfg = weir_job_alloc(job, sizeof(*cfg));
    nexmark_config_default(cfg);
    cfg->events_per_sec = events_per_sec;
    cfg->out_of_order_group = ooo_group;
    cfg->late_fraction = late_fraction;
    weir_job_set_name(job, events_query      ? "nexmark-events"
                           : query[1] == '0' ? "nexmark-q0"
                           : query[1] == '1' ? "nexmark-q1"
                                             : "nexmark-q2");
    weir_stream_t *src =
        weir_set_uid(weir_source_generator(job, "nexmark-source", events, rate, generate, cfg),
                     "nexmark-source");
    if (events_query) {
        /* Forward (chained): sink subtask s writes source subtask s's events in emission order. */
        weir_stream_t *json = weir_map(src, "events", events_map, NULL);
        weir_set_uid(weir_sink_file(json, "sink", output), "sink");
        return 0;
    }
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

WEIR_PLUGIN("nexmark",
            "Nexmark q0/q1/q2 and the event dump: --query q0|q1|q2|events --events N "
            "[--rate EVENTS_PER_SEC] [--events-per-second R] [--out-of-order-group G] "
            "[--late-fraction F] [--output DIR]",
            define);
