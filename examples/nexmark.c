/* Example job: Nexmark queries q0, q1, q2, the event-time queries q3, q4, q5, q7, q8, q11, q20
 * (nexmark_q<N>.c) and the event dump `events` over generated auction events
 * (examples/README.md has the generator's rules, every query and every option).
 *
 *   weir run build/examples/nexmark.so --query q0|q1|q2|q3|q4|q5|q7|q8|q11|q20|events
 *       --events N [--rate R] [--events-per-second R] [--out-of-order-group G]
 *       [--late-fraction F] [--output DIR] [--late-output DIR] [--lateness MS]
 *       [--price-modulo M]
 *
 * nexmark-source (generator, N events; see nexmark_gen.h) -> rebalance -> query -> sink
 * (blackhole); events: nexmark-source -> events -> sink (forward, the exactly-once file sink
 * into --output, so sink subtask s writes source subtask s's events in emission order). q0:
 * pass-through map. q1: bids only, price converted to euros (price * 89 / 100). q2: bids whose
 * auction % 123 == 0, mapped to [auction, price]. events: every event as one JSON line with the
 * reference's field names. q3-q20: the source gets a 4 s bounded-out-of-orderness
 * watermark strategy and the query (nexmark_queries.h) writes JSON lines to --output (the
 * exactly-once file sink) or to a blackhole.
 * --rate limits the wall-clock rate only; --events-per-second sets the event-time rate.
 * Record timestamps are the events' dateTime. The JSON writer is bounded (a line that would not
 * fit its buffer fails the subtask instead of being cut).
 * Threading: define() runs once per subtask; udata is private to that subtask's thread; the
 * config is read-only after define. */
#include <errno.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weir/weir.h>

#include "nexmark_gen.h"
#include "nexmark_queries.h"

#define USAGE                                                                                      \
    "usage: nexmark.so --query q0|q1|q2|q3|q4|q5|q7|q8|q11|q20|events --events N "                 \
    "[--rate EVENTS_PER_SEC] [--events-per-second R] [--out-of-order-group G] "                    \
    "[--late-fraction F] [--output DIR] [--late-output DIR] [--lateness MS] [--price-modulo M]"

/* Out-of-orderness the generator must stay within (the reference's watermark delay). */
#define MAX_OUT_OF_ORDER_MS 4000
/* Largest --lateness (one day). */
#define MAX_LATENESS_MS (24LL * 3600 * 1000)

/* The queries: q0-q2 are built below, the event-time ones by nexmark_q<N>.c. */
typedef struct query {
    const char *name;
    int (*build)(weir_job_t *job, weir_stream_t *src, const nexmark_query_opts_t *o);
    bool output;   /* --output accepted */
    bool windowed; /* --late-output accepted */
    bool lateness; /* --lateness accepted */
} query_t;
static const query_t QUERIES[] = {
    {"q0", NULL, false, false, false},      {"q1", NULL, false, false, false},
    {"q2", NULL, false, false, false},      {"q3", nexmark_q3, true, false, false},
    {"q4", nexmark_q4, true, false, false}, {"q5", nexmark_q5, true, true, false},
    {"q7", nexmark_q7, true, true, false},  {"q8", nexmark_q8, true, true, true},
    {"q11", nexmark_q11, true, true, true}, {"q20", nexmark_q20, true, false, false},
    {"events", NULL, true, false, false},
};
#define QUERY_NAMES "q0, q1, q2, q3, q4, q5, q7, q8, q11, q20, events"

/* The event's bytes are encoded on the stack and emitted from there (the record is copied once,
 * into the output buffer or by the next operator). */
static void generate(weir_ctx_t *ctx, uint64_t index, void *udata) {
    const nexmark_config_t *cfg = udata;
    uint8_t buf[NEXMARK_MAX_EVENT_BYTES];
    weir_record_t rec = {0};
    rec.value_len = (uint32_t)nexmark_encode_event(cfg, index, buf, &rec.timestamp, NULL);
    rec.value = buf;
    weir_emit(ctx, &rec);
}

static void q0_map(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    (void)udata;
    weir_emit(ctx, in);
}

/* q1 and q2 read a bid's fields in place (nexmark_scan_bid: no unpack into a zone, no packing
 * field by field) when the value is in msgpack-c's canonical form, as the generator writes it;
 * anything else takes the generic path through weir_unpack, which keeps its behaviour and its
 * errors. For a canonical value both paths give the same bytes (tests/unit/test_nexmark_gen.c). */

/* q1's filter hands the bid it read to q1's map, which is chained right after it: the map gets
 * the very record the filter passed (same value pointer and length), so it reuses the view
 * instead of reading the bid again. One per subtask (define() runs per subtask: udata is
 * private to the subtask's thread). */
typedef struct bid_memo {
    const void *value; /* the record the view belongs to; NULL: none */
    uint32_t len;
    nexmark_bid_view_t view;
} bid_memo_t;

static bool bids_filter(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    bid_memo_t *memo = udata;
    memo->value = NULL;
    int k = nexmark_scan_bid(in->value, in->value_len, &memo->view);
    if (k >= 0) {
        if (k == 1) {
            memo->value = in->value;
            memo->len = in->value_len;
        }
        return k == 1;
    }
    msgpack_object obj;
    return nexmark_unpack_event(ctx, in, NEXMARK_BID, &obj);
}

static void q1_map(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    bid_memo_t *memo = udata;
    nexmark_bid_view_t scanned;
    const nexmark_bid_view_t *b = &memo->view;
    bool bid = memo->value == in->value && memo->len == in->value_len;
    memo->value = NULL;
    if (!bid) {
        b = &scanned;
        bid = nexmark_scan_bid(in->value, in->value_len, &scanned) == 1;
    }
    uint8_t out[NEXMARK_MAX_EVENT_BYTES + 9]; /* the bid, a price of up to 9 bytes */
    if (bid && b->len <= NEXMARK_MAX_EVENT_BYTES) {
        size_t n = nexmark_bid_with_price(b, b->price * 89 / 100, out); /* dollars to euros */
        weir_record_t r = {in->timestamp, in->key, in->key_len, out, (uint32_t)n};
        weir_emit(ctx, &r);
        return;
    }
    msgpack_object obj;
    if (!nexmark_unpack_event(ctx, in, NEXMARK_BID, &obj)) {
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
    nexmark_bid_view_t b;
    int k = nexmark_scan_bid(in->value, in->value_len, &b);
    if (k >= 0)
        return k == 1 && (uint64_t)b.auction % 123 == 0;
    msgpack_object obj;
    if (!nexmark_unpack_event(ctx, in, NEXMARK_BID, &obj))
        return false;
    return obj.via.array.ptr[NEXMARK_BID_AUCTION].via.u64 % 123 == 0;
}

static void q2_map(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    (void)udata;
    nexmark_bid_view_t b;
    if (nexmark_scan_bid(in->value, in->value_len, &b) == 1) {
        uint8_t out[NEXMARK_Q2_BYTES];
        weir_record_t r = {in->timestamp, in->key, in->key_len, out,
                           (uint32_t)nexmark_q2_row(&b, out)};
        weir_emit(ctx, &r);
        return;
    }
    msgpack_object obj;
    if (!nexmark_unpack_event(ctx, in, NEXMARK_BID, &obj)) {
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
    double rate = 0, events_per_sec = 10000.0, late_fraction = 0;
    uint64_t ooo_group = 1;
    const char *output = NULL, *late_output = NULL;
    int64_t lateness = 0, price_modulo = 0;
    bool have_lateness = false;
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
        } else if (strcmp(a, "--late-output") == 0) {
            late_output = v;
        } else if (strcmp(a, "--price-modulo") == 0) {
            long long m = strtoll(v, &end, 10);
            if (errno || *end || end == v || m < 1 || m > 1000000000) {
                weir_job_error(job,
                               "bad --price-modulo '%s': expected a modulus in 1 .. 1000000000; "
                               "" USAGE,
                               v);
                return 1;
            }
            price_modulo = m;
        } else if (strcmp(a, "--lateness") == 0) {
            long long l = strtoll(v, &end, 10);
            if (errno || *end || end == v || l < 0 || l > MAX_LATENESS_MS) {
                weir_job_error(job,
                               "bad --lateness '%s': expected an allowed lateness in ms within "
                               "0 .. %lld; " USAGE,
                               v, (long long)MAX_LATENESS_MS);
                return 1;
            }
            lateness = l;
            have_lateness = true;
        } else {
            weir_job_error(job, "unknown argument '%s'; " USAGE, a);
            return 1;
        }
    }
    if (!query || !have_events) {
        weir_job_error(job, "missing %s; " USAGE, !query ? "--query" : "--events");
        return 1;
    }
    const query_t *q = NULL;
    for (size_t k = 0; k < sizeof(QUERIES) / sizeof(QUERIES[0]); k++)
        if (strcmp(query, QUERIES[k].name) == 0)
            q = &QUERIES[k];
    if (!q) {
        weir_job_error(job, "unknown query '%s' (supported: " QUERY_NAMES "); " USAGE, query);
        return 1;
    }
    bool events_query = strcmp(query, "events") == 0;
    if (events_query && !output) {
        weir_job_error(job, "--query events needs --output DIR; " USAGE);
        return 1;
    }
    if (!q->output && output) {
        weir_job_error(job,
                       "--output is not supported by %s (q0, q1 and q2 end in a blackhole "
                       "sink); " USAGE,
                       query);
        return 1;
    }
    if (!q->windowed && late_output) {
        weir_job_error(job, "--late-output is supported by the windowed queries only "
                            "(q5, q7, q8, q11); " USAGE);
        return 1;
    }
    if (!q->lateness && have_lateness) {
        weir_job_error(job,
                       "--lateness is not supported by %s (only q8 and q11 have an allowed "
                       "lateness); " USAGE,
                       query);
        return 1;
    }
    if (price_modulo && strcmp(query, "q7") != 0) {
        weir_job_error(job, "--price-modulo is a test knob of q7 only; " USAGE);
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
    char job_name[32];
    snprintf(job_name, sizeof(job_name), "nexmark-%s", query);
    weir_job_set_name(job, job_name);
    weir_stream_t *src =
        weir_set_uid(weir_source_generator(job, "nexmark-source", events, rate, generate, cfg),
                     "nexmark-source");
    if (events_query) {
        /* Forward (chained): sink subtask s writes source subtask s's events in emission order. */
        weir_stream_t *json = weir_map(src, "events", nexmark_events_json, NULL);
        weir_set_uid(weir_sink_file(json, "sink", output), "sink");
        return 0;
    }
    if (q->build) {
        weir_watermark_strategy_t st = {.max_out_of_orderness_ms = MAX_OUT_OF_ORDER_MS};
        weir_set_watermark_strategy(src, &st);
        nexmark_query_opts_t *o = weir_job_alloc(job, sizeof(*o));
        o->lateness_ms = lateness;
        o->output = output;
        o->late_output = late_output;
        o->price_modulo = price_modulo;
        return q->build(job, src, o) == 0 ? 0 : 1;
    }
    weir_stream_t *in = weir_rebalance(src);
    weir_stream_t *out;
    if (strcmp(query, "q0") == 0) {
        out = weir_map(in, "q0", q0_map, NULL);
    } else if (strcmp(query, "q1") == 0) {
        bid_memo_t *memo = weir_job_alloc(job, sizeof(*memo));
        memo->value = NULL;
        out = weir_map(weir_filter(in, "bids", bids_filter, memo), "q1", q1_map, memo);
    } else {
        out = weir_map(weir_filter(in, "q2-filter", q2_filter, NULL), "q2", q2_map, NULL);
    }
    weir_sink_blackhole(out, "sink");
    return 0;
}

WEIR_PLUGIN(
    "nexmark",
    "Nexmark q0-q5, q7, q8, q11, q20 and the event dump: --query "
    "q0|q1|q2|q3|q4|q5|q7|q8|q11|q20|events "
    "--events N [--rate EVENTS_PER_SEC] [--events-per-second R] [--out-of-order-group G] "
    "[--late-fraction F] [--output DIR] [--late-output DIR] [--lateness MS] [--price-modulo M]",
    define);
