/* libFuzzer target: the response decoders of the small Kafka protocol client
 * (connectors/kafka/kproto.h), i.e. every byte a Kafka broker (or anything listening where one
 * is configured) sends back to weir's sink, and the request encoders on fuzzed identifiers.
 *
 * Input: byte 0 selects the decoder (mod 6: ApiVersions, FindCoordinator, EndTxn,
 * DescribeTransactions, ListTransactions, Metadata); the rest is a response body (after the size
 * prefix) whose correlation id must be CORR (1) to be accepted.
 * Properties checked on every input (besides ASan/UBSan/LeakSanitizer):
 * - a decoder returns 0 or WEIR_ECORRUPT, and a callback decoder calls back only for a response
 *   it accepts (never for one it refuses);
 * - delivered strings are NUL-terminated inside their fields; a FindCoordinator answer of NONE
 *   has a host and a port in 1..65535; a Metadata broker too;
 * - decoding is deterministic (twice: the same outcome and entries), an accepted response is
 *   refused under any other correlation id, and its proper prefixes (len - 1, len / 2) and the
 *   response plus one byte are refused;
 * - the encoders, given the input's bytes as transactional ids, write exactly the length the
 *   layout of kproto.c gives, with the size prefix equal to the bytes that follow, or 0 for an
 *   id they must refuse (empty, longer than WEIR_KPROTO_MAX_TXN_ID).
 * Seeds: a valid response of each decoder (hand-built here: kproto has no response encoders),
 * with and without errors, tagged fields and skipped entries.
 *
 * Owns nothing beyond one input; no global state. Threading: libFuzzer's thread. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "connectors/kafka/kproto.h"
#include "fuzz_util.h"

#define CORR 1
#define N_DECODERS 6
#define MAX_SEEN 64

/* ---- seeds ---------------------------------------------------------------------------------- */

typedef struct out {
    uint8_t b[1024];
    size_t n;
} out_t;

static void o_u8(out_t *o, uint8_t v) {
    o->b[o->n++] = v;
}
static void o_i16(out_t *o, int16_t v) {
    o_u8(o, (uint8_t)((uint16_t)v >> 8));
    o_u8(o, (uint8_t)v);
}
static void o_i32(out_t *o, int32_t v) {
    o_i16(o, (int16_t)((uint32_t)v >> 16));
    o_i16(o, (int16_t)v);
}
static void o_i64(out_t *o, int64_t v) {
    o_i32(o, (int32_t)((uint64_t)v >> 32));
    o_i32(o, (int32_t)v);
}
static void o_str(out_t *o, const char *s) {
    o_i16(o, (int16_t)strlen(s));
    memcpy(o->b + o->n, s, strlen(s));
    o->n += strlen(s);
}
static void o_cstr(out_t *o, const char *s) { /* < 127 bytes: one varint byte */
    o_u8(o, (uint8_t)(strlen(s) + 1));
    memcpy(o->b + o->n, s, strlen(s));
    o->n += strlen(s);
}

static void seed(const char *name, uint8_t which, const out_t *o) {
    uint8_t buf[sizeof o->b + 1];
    buf[0] = which;
    memcpy(buf + 1, o->b, o->n);
    weir_fuzz_seed(name, buf, o->n + 1);
}

static void write_seeds(void) {
    out_t o = {.n = 0};
    o_i32(&o, CORR); /* ApiVersions */
    o_i16(&o, 0);
    o_i32(&o, 3);
    static const int16_t apis[][3] = {{10, 0, 6}, {26, 0, 5}, {65, 0, 0}};
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 3; k++)
            o_i16(&o, apis[i][k]);
    seed("api_versions", 0, &o);

    for (int e = 0; e < 2; e++) { /* FindCoordinator: found, refused with a message */
        o.n = 0;
        o_i32(&o, CORR);
        o_i32(&o, 0);
        o_i16(&o, e ? WEIR_KERR_COORDINATOR_NOT_AVAILABLE : 0);
        if (e)
            o_str(&o, "loading");
        else
            o_i16(&o, -1);
        o_i32(&o, e ? -1 : 3);
        o_str(&o, e ? "" : "broker-3.example");
        o_i32(&o, e ? -1 : 9092);
        seed(e ? "find_coordinator_refused" : "find_coordinator", 1, &o);
    }

    o.n = 0; /* EndTxn */
    o_i32(&o, CORR);
    o_i32(&o, 0);
    o_i16(&o, WEIR_KERR_PRODUCER_FENCED);
    seed("end_txn", 2, &o);

    o.n = 0; /* DescribeTransactions: a header tagged field, one state with a topic, one error */
    o_i32(&o, CORR);
    o_u8(&o, 1); /* 1 tagged field: tag 0, 1 byte */
    o_u8(&o, 0);
    o_u8(&o, 1);
    o_u8(&o, 0xaa);
    o_i32(&o, 0);
    o_u8(&o, 3);
    o_i16(&o, 0);
    o_cstr(&o, "weir-job-op-0-0");
    o_cstr(&o, "Ongoing");
    o_i32(&o, 60000);
    o_i64(&o, 1700000000000LL);
    o_i64(&o, 1000);
    o_i16(&o, 5);
    o_u8(&o, 2); /* 1 topic */
    o_cstr(&o, "out");
    o_u8(&o, 3); /* partitions [0, 1] */
    o_i32(&o, 0);
    o_i32(&o, 1);
    o_u8(&o, 0);
    o_u8(&o, 0);
    o_i16(&o, WEIR_KERR_TRANSACTIONAL_ID_NOT_FOUND);
    o_cstr(&o, "nope");
    o_cstr(&o, "");
    o_i32(&o, 0);
    o_i64(&o, -1);
    o_i64(&o, -1);
    o_i16(&o, -1);
    o_u8(&o, 1);
    o_u8(&o, 0);
    o_u8(&o, 0);
    seed("describe_txns", 3, &o);

    o.n = 0; /* ListTransactions: an unknown filter, two states */
    o_i32(&o, CORR);
    o_u8(&o, 0);
    o_i32(&o, 0);
    o_i16(&o, 0);
    o_u8(&o, 2);
    o_cstr(&o, "Bogus");
    o_u8(&o, 3);
    o_cstr(&o, "weir-a");
    o_i64(&o, 7);
    o_cstr(&o, "Ongoing");
    o_u8(&o, 0);
    o_cstr(&o, "other");
    o_i64(&o, 8);
    o_cstr(&o, "PrepareCommit");
    o_u8(&o, 0);
    o_u8(&o, 0);
    seed("list_txns", 4, &o);

    o.n = 0; /* Metadata: two brokers, one topic with a partition */
    o_i32(&o, CORR);
    o_i32(&o, 2);
    o_i32(&o, 1);
    o_str(&o, "127.0.0.1");
    o_i32(&o, 9092);
    o_i16(&o, -1);
    o_i32(&o, 2);
    o_str(&o, "b2");
    o_i32(&o, 9093);
    o_str(&o, "rack-a");
    o_i32(&o, 1);
    o_i32(&o, 1);
    o_i16(&o, 0);
    o_str(&o, "t");
    o_u8(&o, 0);
    o_i32(&o, 1);
    o_i16(&o, 0);
    o_i32(&o, 0);
    o_i32(&o, 1);
    o_i32(&o, 1);
    o_i32(&o, 1);
    o_i32(&o, 1);
    o_i32(&o, 1);
    seed("metadata", 5, &o);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    write_seeds();
    return 0;
}

/* ---- decoding ------------------------------------------------------------------------------- */

/* What one decode produced, compared between runs. */
typedef struct outcome {
    int rc;
    int16_t error;
    int32_t node, port;
    char host[256];
    size_t n;
    weir_kproto_api_range_t ranges[MAX_SEEN];
    weir_ktxn_info_t txns[MAX_SEEN];
    weir_kbroker_t brokers[MAX_SEEN];
} outcome_t;

static bool terminated(const char *s, size_t cap) {
    return memchr(s, '\0', cap) != NULL;
}

static int on_txn(const weir_ktxn_info_t *t, void *arg) {
    outcome_t *o = arg;
    WEIR_FUZZ_CHECK(terminated(t->txn_id, sizeof t->txn_id) &&
                        terminated(t->state, sizeof t->state),
                    "a delivered id or state is not terminated");
    if (o->n < MAX_SEEN)
        o->txns[o->n] = *t;
    o->n++;
    return 0;
}

static int on_broker(const weir_kbroker_t *b, void *arg) {
    outcome_t *o = arg;
    WEIR_FUZZ_CHECK(terminated(b->host, sizeof b->host) && b->host[0],
                    "a delivered broker host is empty or not terminated");
    WEIR_FUZZ_CHECK(b->port >= 1 && b->port <= 65535, "broker port %d", b->port);
    if (o->n < MAX_SEEN)
        o->brokers[o->n] = *b;
    o->n++;
    return 0;
}

static void decode(int which, const uint8_t *p, size_t len, int32_t corr, outcome_t *o) {
    memset(o, 0, sizeof *o);
    switch (which) {
    case 0:
        o->rc = weir_kproto_dec_api_versions(p, len, corr, &o->error, o->ranges, MAX_SEEN, &o->n);
        WEIR_FUZZ_CHECK(o->n <= MAX_SEEN, "%zu ranges stored in %d slots", o->n, MAX_SEEN);
        if (o->rc != 0)
            WEIR_FUZZ_CHECK(o->n == 0, "a refused ApiVersions stored %zu ranges", o->n);
        break;
    case 1:
        o->rc = weir_kproto_dec_find_coordinator(p, len, corr, &o->error, &o->node, o->host,
                                                 sizeof o->host, &o->port);
        WEIR_FUZZ_CHECK(terminated(o->host, sizeof o->host), "host not terminated");
        if (o->rc == 0 && o->error == 0)
            WEIR_FUZZ_CHECK(o->host[0] && o->port >= 1 && o->port <= 65535,
                            "NONE with host '%s' port %d", o->host, o->port);
        break;
    case 2:
        o->rc = weir_kproto_dec_end_txn(p, len, corr, &o->error);
        break;
    case 3:
        o->rc = weir_kproto_dec_describe_txns(p, len, corr, on_txn, o);
        break;
    case 4:
        o->rc = weir_kproto_dec_list_txns(p, len, corr, &o->error, on_txn, o);
        break;
    default:
        o->rc = weir_kproto_dec_metadata(p, len, corr, on_broker, o);
        break;
    }
    WEIR_FUZZ_CHECK(o->rc == 0 || o->rc == WEIR_ECORRUPT, "decoder %d returned %d", which, o->rc);
    if (o->rc != 0 && which >= 3)
        WEIR_FUZZ_CHECK(o->n == 0, "decoder %d called back %zu times for a refused response", which,
                        o->n);
}

/* A copy of exactly @p len bytes (ASan sees any read past it). */
static int decode_copy(int which, const uint8_t *p, size_t len, int32_t corr, outcome_t *o) {
    uint8_t *c = malloc(len ? len : 1);
    WEIR_FUZZ_CHECK(c, "out of memory");
    if (len)
        memcpy(c, p, len);
    decode(which, c, len, corr, o);
    free(c);
    return o->rc;
}

static bool same(const outcome_t *a, const outcome_t *b) {
    return a->rc == b->rc && a->error == b->error && a->node == b->node && a->port == b->port &&
           !strcmp(a->host, b->host) && a->n == b->n &&
           !memcmp(a->ranges, b->ranges, sizeof a->ranges) &&
           !memcmp(a->brokers, b->brokers, sizeof a->brokers) &&
           !memcmp(a->txns, b->txns, sizeof a->txns);
}

/* ---- encoding ------------------------------------------------------------------------------- */

static void check_encoders(const uint8_t *data, size_t size) {
    char id[WEIR_KPROTO_MAX_TXN_ID + 2];
    size_t n = 0;
    while (n < size && n < sizeof id - 1 && data[n])
        n++;
    memcpy(id, data, n);
    id[n] = '\0';
    bool ok = n >= 1 && n <= WEIR_KPROTO_MAX_TXN_ID;
    static uint8_t buf[4096];
    size_t len = weir_kproto_enc_end_txn(buf, sizeof buf, CORR, "weir", id, 1, 0, true);
    /* size, key, version, corr, client id "weir", id, pid, epoch, committed */
    size_t want = ok ? 4 + 2 + 2 + 4 + 6 + 2 + n + 8 + 2 + 1 : 0;
    WEIR_FUZZ_CHECK(len == want, "EndTxn of a %zu-byte id: %zu bytes, want %zu", n, len, want);
    if (len)
        WEIR_FUZZ_CHECK(
            ((size_t)buf[0] << 24 | (size_t)buf[1] << 16 | (size_t)buf[2] << 8 | buf[3]) == len - 4,
            "EndTxn size prefix");
    const char *ids[1] = {id};
    len = weir_kproto_enc_describe_txns(buf, sizeof buf, CORR, "weir", ids, 1);
    /* header v2 (+1 tag byte), compact array of 1, varint of n + 1 (1 or 2 bytes), id, tags */
    want = ok ? 4 + 2 + 2 + 4 + 6 + 1 + 1 + (n + 1 < 128 ? 1 : 2) + n + 1 : 0;
    WEIR_FUZZ_CHECK(len == want, "DescribeTransactions of a %zu-byte id: %zu bytes, want %zu", n,
                    len, want);
    len = weir_kproto_enc_find_coordinator(buf, sizeof buf, CORR, "weir", id, 1);
    want = n >= 1 ? 4 + 2 + 2 + 4 + 6 + 2 + n + 1 : 0;
    WEIR_FUZZ_CHECK(len == want, "FindCoordinator of a %zu-byte key: %zu bytes, want %zu", n, len,
                    want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0)
        return 0;
    int which = data[0] % N_DECODERS;
    const uint8_t *p = data + 1;
    size_t len = size - 1;
    static outcome_t a, b; /* large: off the stack */
    decode_copy(which, p, len, CORR, &a);
    decode_copy(which, p, len, CORR, &b);
    WEIR_FUZZ_CHECK(same(&a, &b), "decoder %d is not deterministic", which);
    if (a.rc == 0) {
        WEIR_FUZZ_CHECK(decode_copy(which, p, len, CORR + 1, &b) == WEIR_ECORRUPT,
                        "accepted under another correlation id");
        WEIR_FUZZ_CHECK(decode_copy(which, p, len - 1, CORR, &b) == WEIR_ECORRUPT,
                        "a prefix of len - 1 is accepted");
        WEIR_FUZZ_CHECK(decode_copy(which, p, len / 2, CORR, &b) == WEIR_ECORRUPT,
                        "a prefix of len / 2 is accepted");
        uint8_t *longer = malloc(len + 1);
        WEIR_FUZZ_CHECK(longer, "out of memory");
        memcpy(longer, p, len);
        longer[len] = 0;
        decode(which, longer, len + 1, CORR, &b);
        free(longer);
        WEIR_FUZZ_CHECK(b.rc == WEIR_ECORRUPT, "a trailing byte is accepted");
    }
    check_encoders(p, len);
    return 0;
}
