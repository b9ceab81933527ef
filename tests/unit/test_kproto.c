/* Unit tests of the small Kafka protocol client (connectors/kafka/kproto.h).
 *
 * Codec: every encoder against an expected byte array written by hand, field by field, from the
 * protocol's layout (https://kafka.apache.org/protocol and Kafka 4.1.1's message definitions;
 * the encoders are never used to build an expectation); decoders on hand-made responses, and on
 * every truncation, a trailing byte, a wrong correlation id and oversized counts and lengths
 * (all WEIR_ECORRUPT); error names against Kafka's own list.
 * Client: its I/O logic against fake brokers on loopback (a thread per fake that answers from a
 * script): timeouts within their bound, retries of CONCURRENT_TRANSACTIONS, re-resolution of the
 * coordinator on NOT_COORDINATOR, connection reuse and reconnection, oversized and mismatched
 * responses, ListTransactions over every broker of Metadata. Exactly-once itself needs the real
 * broker (tests/tools/weir_kproto_probe.c, integration tests). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/err.h"
#include "common/util.h"
#include "connectors/kafka/kproto.h"

#define CORR 0x01020304

static void assert_bytes(const uint8_t *got, size_t got_len, const uint8_t *want, size_t want_len) {
    assert_int_equal(got_len, want_len);
    assert_memory_equal(got, want, want_len);
}

/* ---- encoders, byte for byte ------------------------------------------------------------- */

static void test_enc_api_versions(void **state) {
    (void)state;
    static const uint8_t want[] = {
        0x00, 0x00, 0x00, 0x0e,           /* message size: 14 bytes follow */
        0x00, 0x12,                       /* RequestApiKey 18 = ApiVersions */
        0x00, 0x00,                       /* RequestApiVersion 0 */
        0x01, 0x02, 0x03, 0x04,           /* CorrelationId */
        0x00, 0x04, 'w',  'e',  'i', 'r', /* ClientId: INT16 length 4, "weir" */
    };
    uint8_t buf[64];
    assert_bytes(buf, weir_kproto_enc_api_versions(buf, sizeof buf, CORR, "weir"), want,
                 sizeof want);
}

static void test_enc_find_coordinator(void **state) {
    (void)state;
    static const uint8_t want[] = {
        0x00, 0x00, 0x00, 0x16,                /* message size: 22 bytes follow */
        0x00, 0x0a,                            /* RequestApiKey 10 = FindCoordinator */
        0x00, 0x01,                            /* RequestApiVersion 1 */
        0x01, 0x02, 0x03, 0x04,                /* CorrelationId */
        0x00, 0x04, 'w',  'e',  'i', 'r',      /* ClientId "weir" */
        0x00, 0x05, 't',  'x',  'n', '-', '1', /* Key: STRING "txn-1" */
        0x01,                                  /* KeyType: INT8 1 = transaction */
    };
    uint8_t buf[64];
    assert_bytes(buf, weir_kproto_enc_find_coordinator(buf, sizeof buf, CORR, "weir", "txn-1", 1),
                 want, sizeof want);
    /* a null client id is NULLABLE_STRING -1 */
    static const uint8_t want_null[] = {
        0x00, 0x00, 0x00, 0x0e,                         /* size 14 */
        0x00, 0x0a, 0x00, 0x01, 0x00, 0x00, 0x00, 0x09, /* key 10, v1, corr 9 */
        0xff, 0xff,                                     /* ClientId: null */
        0x00, 0x01, 'k',                                /* Key "k" */
        0x00,                                           /* KeyType 0 = group */
    };
    assert_bytes(buf, weir_kproto_enc_find_coordinator(buf, sizeof buf, 9, NULL, "k", 0), want_null,
                 sizeof want_null);
    /* too small a buffer, or an empty key: nothing */
    assert_int_equal(
        weir_kproto_enc_find_coordinator(buf, sizeof want - 1, CORR, "weir", "txn-1", 1), 0);
    assert_int_equal(weir_kproto_enc_find_coordinator(buf, sizeof buf, CORR, "weir", "", 1), 0);
}

static void test_enc_end_txn(void **state) {
    (void)state;
    static const uint8_t want[] = {
        0x00, 0x00, 0x00, 0x1c,                         /* message size: 28 bytes follow */
        0x00, 0x1a,                                     /* RequestApiKey 26 = EndTxn */
        0x00, 0x01,                                     /* RequestApiVersion 1 */
        0x01, 0x02, 0x03, 0x04,                         /* CorrelationId */
        0x00, 0x04, 'w',  'e',  'i',  'r',              /* ClientId "weir" */
        0x00, 0x01, 't',                                /* TransactionalId: STRING "t" */
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, /* ProducerId: INT64 */
        0x0a, 0x0b,                                     /* ProducerEpoch: INT16 */
        0x01,                                           /* Committed: BOOLEAN true */
    };
    uint8_t buf[64];
    size_t n = weir_kproto_enc_end_txn(buf, sizeof buf, CORR, "weir", "t", 0x0102030405060708LL,
                                       0x0a0b, true);
    assert_bytes(buf, n, want, sizeof want);
    uint8_t want_abort[sizeof want];
    memcpy(want_abort, want, sizeof want);
    want_abort[sizeof want - 1] = 0x00; /* Committed: false */
    n = weir_kproto_enc_end_txn(buf, sizeof buf, CORR, "weir", "t", 0x0102030405060708LL, 0x0a0b,
                                false);
    assert_bytes(buf, n, want_abort, sizeof want_abort);
    /* every size short of the whole request writes nothing */
    for (size_t cap = 0; cap < sizeof want; cap++)
        assert_int_equal(weir_kproto_enc_end_txn(buf, cap, CORR, "weir", "t", 0x0102030405060708LL,
                                                 0x0a0b, true),
                         0);
    /* out of range: negative producer id or epoch, empty or over-long id */
    char long_id[WEIR_KPROTO_MAX_TXN_ID + 2];
    memset(long_id, 'x', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    uint8_t big[1024];
    assert_int_equal(weir_kproto_enc_end_txn(big, sizeof big, 1, "w", "t", -1, 0, true), 0);
    assert_int_equal(weir_kproto_enc_end_txn(big, sizeof big, 1, "w", "t", 1, -1, true), 0);
    assert_int_equal(weir_kproto_enc_end_txn(big, sizeof big, 1, "w", "", 1, 0, true), 0);
    assert_int_equal(weir_kproto_enc_end_txn(big, sizeof big, 1, "w", long_id, 1, 0, true), 0);
    long_id[WEIR_KPROTO_MAX_TXN_ID] = '\0'; /* exactly the maximum is fine */
    assert_int_equal(weir_kproto_enc_end_txn(big, sizeof big, 1, "w", long_id, 1, 0, true),
                     4 + 2 + 2 + 4 + 3 + 2 + WEIR_KPROTO_MAX_TXN_ID + 8 + 2 + 1);
}

static void test_enc_describe_txns(void **state) {
    (void)state;
    static const uint8_t want[] = {
        0x00, 0x00, 0x00, 0x16,           /* message size: 22 bytes follow */
        0x00, 0x41,                       /* RequestApiKey 65 = DescribeTransactions */
        0x00, 0x00,                       /* RequestApiVersion 0 (flexible) */
        0x01, 0x02, 0x03, 0x04,           /* CorrelationId */
        0x00, 0x04, 'w',  'e',  'i', 'r', /* ClientId: a plain STRING even in header v2 */
        0x00,                             /* header TAG_BUFFER: no tagged fields */
        0x03,                             /* TransactionalIds: COMPACT_ARRAY, 2 + 1 */
        0x02, 'a',                        /* COMPACT_STRING "a": length 1 + 1 */
        0x03, 'b',  'c',                  /* COMPACT_STRING "bc" */
        0x00,                             /* TAG_BUFFER */
    };
    uint8_t buf[64];
    const char *ids[] = {"a", "bc"};
    assert_bytes(buf, weir_kproto_enc_describe_txns(buf, sizeof buf, CORR, "weir", ids, 2), want,
                 sizeof want);

    /* a 200-byte id: COMPACT_STRING length 201 = UNSIGNED_VARINT 0xc9 0x01 */
    char id200[201];
    memset(id200, 'z', 200);
    id200[200] = '\0';
    const char *one[] = {id200};
    uint8_t big[512];
    size_t n = weir_kproto_enc_describe_txns(big, sizeof big, 5, "weir", one, 1);
    assert_int_equal(n, 4 + 2 + 2 + 4 + 6 + 1 + 1 + 2 + 200 + 1);
    assert_int_equal(big[19], 0x02); /* COMPACT_ARRAY: 1 + 1 */
    assert_int_equal(big[20], 0xc9); /* low 7 bits of 201 = 0x49, continuation bit */
    assert_int_equal(big[21], 0x01); /* 201 >> 7 */
    assert_int_equal(big[22], 'z');
    assert_int_equal(big[n - 1], 0x00);
    assert_int_equal(weir_kproto_enc_describe_txns(buf, sizeof buf, CORR, "weir", ids, 0), 0);
}

static void test_enc_list_txns(void **state) {
    (void)state;
    static const uint8_t want[] = {
        0x00, 0x00, 0x00, 0x1a,                     /* message size: 26 bytes follow */
        0x00, 0x42,                                 /* RequestApiKey 66 = ListTransactions */
        0x00, 0x00,                                 /* RequestApiVersion 0 (flexible) */
        0x01, 0x02, 0x03, 0x04,                     /* CorrelationId */
        0x00, 0x04, 'w',  'e',  'i', 'r',           /* ClientId */
        0x00,                                       /* header TAG_BUFFER */
        0x02,                                       /* StateFilters: COMPACT_ARRAY, 1 + 1 */
        0x08, 'O',  'n',  'g',  'o', 'i', 'n', 'g', /* COMPACT_STRING "Ongoing" (7 + 1) */
        0x01,                                       /* ProducerIdFilters: empty (0 + 1) */
        0x00,                                       /* TAG_BUFFER */
    };
    uint8_t buf[64];
    const char *states[] = {"Ongoing"};
    assert_bytes(buf, weir_kproto_enc_list_txns(buf, sizeof buf, CORR, "weir", states, 1), want,
                 sizeof want);
    static const uint8_t want_all[] = {
        0x00, 0x00, 0x00, 0x12,           /* size 18 */
        0x00, 0x42, 0x00, 0x00,           /* key 66, v0 */
        0x01, 0x02, 0x03, 0x04,           /* CorrelationId */
        0x00, 0x04, 'w',  'e',  'i', 'r', /* ClientId */
        0x00,                             /* header TAG_BUFFER */
        0x01,                             /* StateFilters: empty = all */
        0x01,                             /* ProducerIdFilters: empty */
        0x00,                             /* TAG_BUFFER */
    };
    assert_bytes(buf, weir_kproto_enc_list_txns(buf, sizeof buf, CORR, "weir", NULL, 0), want_all,
                 sizeof want_all);
}

static void test_enc_metadata(void **state) {
    (void)state;
    static const uint8_t want[] = {
        0x00, 0x00, 0x00, 0x12,           /* message size: 18 bytes follow */
        0x00, 0x03,                       /* RequestApiKey 3 = Metadata */
        0x00, 0x01,                       /* RequestApiVersion 1 */
        0x01, 0x02, 0x03, 0x04,           /* CorrelationId */
        0x00, 0x04, 'w',  'e',  'i', 'r', /* ClientId */
        0x00, 0x00, 0x00, 0x00,           /* Topics: ARRAY of 0 = no topic (brokers only) */
    };
    uint8_t buf[64];
    assert_bytes(buf, weir_kproto_enc_metadata(buf, sizeof buf, CORR, "weir"), want, sizeof want);
}

/* ---- decoders ------------------------------------------------------------------------------ */

/* Every proper prefix and the input plus one byte are corrupt; so is a wrong correlation id. */
typedef int (*dec_fn)(const uint8_t *p, size_t len, int32_t corr);

static void assert_strict(dec_fn dec, const uint8_t *resp, size_t len) {
    assert_int_equal(dec(resp, len, CORR), 0);
    for (size_t k = 0; k < len; k++) {
        uint8_t *copy = malloc(k ? k : 1); /* exactly k bytes: ASan catches any overread */
        memcpy(copy, resp, k);
        assert_int_equal(dec(copy, k, CORR), WEIR_ECORRUPT);
        free(copy);
    }
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, resp, len);
    longer[len] = 0;
    assert_int_equal(dec(longer, len + 1, CORR), WEIR_ECORRUPT);
    free(longer);
    assert_int_equal(dec(resp, len, CORR + 1), WEIR_ECORRUPT);
}

static int dec_end_txn_any(const uint8_t *p, size_t len, int32_t corr) {
    int16_t e;
    return weir_kproto_dec_end_txn(p, len, corr, &e);
}

static void test_dec_end_txn(void **state) {
    (void)state;
    static const uint8_t resp[] = {
        0x01, 0x02, 0x03, 0x04, /* CorrelationId */
        0x00, 0x00, 0x00, 0x00, /* ThrottleTimeMs */
        0x00, 0x2f,             /* ErrorCode 47 = INVALID_PRODUCER_EPOCH */
    };
    int16_t err = 0;
    assert_int_equal(weir_kproto_dec_end_txn(resp, sizeof resp, CORR, &err), 0);
    assert_int_equal(err, WEIR_KERR_INVALID_PRODUCER_EPOCH);
    assert_strict(dec_end_txn_any, resp, sizeof resp);
}

static int dec_fc_any(const uint8_t *p, size_t len, int32_t corr) {
    int16_t e;
    int32_t node, port;
    char host[64];
    return weir_kproto_dec_find_coordinator(p, len, corr, &e, &node, host, sizeof host, &port);
}

static void test_dec_find_coordinator(void **state) {
    (void)state;
    static const uint8_t resp[] = {
        0x01, 0x02, 0x03, 0x04,                                    /* CorrelationId */
        0x00, 0x00, 0x00, 0x00,                                    /* ThrottleTimeMs */
        0x00, 0x00,                                                /* ErrorCode NONE */
        0xff, 0xff,                                                /* ErrorMessage: null */
        0x00, 0x00, 0x00, 0x02,                                    /* NodeId 2 */
        0x00, 0x09, 'l',  'o',  'c', 'a', 'l', 'h', 'o', 's', 't', /* Host "localhost" */
        0x00, 0x00, 0x23, 0x84,                                    /* Port 9092 */
    };
    int16_t err = -7;
    int32_t node = 0, port = 0;
    char host[64];
    assert_int_equal(weir_kproto_dec_find_coordinator(resp, sizeof resp, CORR, &err, &node, host,
                                                      sizeof host, &port),
                     0);
    assert_int_equal(err, 0);
    assert_int_equal(node, 2);
    assert_string_equal(host, "localhost");
    assert_int_equal(port, 9092);
    assert_strict(dec_fc_any, resp, sizeof resp);
    /* the host does not fit the caller's buffer: corrupt, not truncated */
    assert_int_equal(
        weir_kproto_dec_find_coordinator(resp, sizeof resp, CORR, &err, &node, host, 9, &port),
        WEIR_ECORRUPT);

    static const uint8_t refused[] = {
        0x01, 0x02, 0x03, 0x04,      /* CorrelationId */
        0x00, 0x00, 0x00, 0x00,      /* ThrottleTimeMs */
        0x00, 0x0f,                  /* ErrorCode 15 = COORDINATOR_NOT_AVAILABLE */
        0x00, 0x03, 'n',  'o',  'p', /* ErrorMessage "nop" */
        0xff, 0xff, 0xff, 0xff,      /* NodeId -1 */
        0x00, 0x00,                  /* Host "" */
        0xff, 0xff, 0xff, 0xff,      /* Port -1 */
    };
    assert_int_equal(weir_kproto_dec_find_coordinator(refused, sizeof refused, CORR, &err, &node,
                                                      host, sizeof host, &port),
                     0);
    assert_int_equal(err, WEIR_KERR_COORDINATOR_NOT_AVAILABLE);
    assert_int_equal(node, -1);
    assert_string_equal(host, "");
    assert_strict(dec_fc_any, refused, sizeof refused);

    /* NONE with an empty host or port 0 is corrupt; so is a string length past the end */
    uint8_t bad[sizeof resp];
    memcpy(bad, resp, sizeof resp);
    bad[sizeof resp - 2] = 0;
    bad[sizeof resp - 1] = 0;
    assert_int_equal(dec_fc_any(bad, sizeof bad, CORR), WEIR_ECORRUPT);
    memcpy(bad, resp, sizeof resp);
    bad[16] = 0x7f; /* Host length 0x7f09 */
    assert_int_equal(dec_fc_any(bad, sizeof bad, CORR), WEIR_ECORRUPT);
    memcpy(bad, resp, sizeof resp);
    bad[10] = 0xff; /* ErrorMessage length -2 */
    bad[11] = 0xfe;
    assert_int_equal(dec_fc_any(bad, sizeof bad, CORR), WEIR_ECORRUPT);
}

static int dec_av_any(const uint8_t *p, size_t len, int32_t corr) {
    int16_t e;
    weir_kproto_api_range_t r[4];
    size_t n;
    return weir_kproto_dec_api_versions(p, len, corr, &e, r, 4, &n);
}

static void test_dec_api_versions(void **state) {
    (void)state;
    static const uint8_t resp[] = {
        0x01, 0x02, 0x03, 0x04,             /* CorrelationId */
        0x00, 0x00,                         /* ErrorCode */
        0x00, 0x00, 0x00, 0x02,             /* ApiKeys: 2 */
        0x00, 0x1a, 0x00, 0x00, 0x00, 0x05, /* EndTxn 0..5 */
        0x00, 0x41, 0x00, 0x00, 0x00, 0x00, /* DescribeTransactions 0..0 */
    };
    int16_t err = -7;
    weir_kproto_api_range_t r[4];
    size_t n = 0;
    assert_int_equal(weir_kproto_dec_api_versions(resp, sizeof resp, CORR, &err, r, 4, &n), 0);
    assert_int_equal(err, 0);
    assert_int_equal(n, 2);
    assert_int_equal(r[0].key, 26);
    assert_int_equal(r[0].min, 0);
    assert_int_equal(r[0].max, 5);
    assert_int_equal(r[1].key, 65);
    /* fewer slots than entries: the first ones */
    assert_int_equal(weir_kproto_dec_api_versions(resp, sizeof resp, CORR, &err, r, 1, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(r[0].key, 26);
    assert_strict(dec_av_any, resp, sizeof resp);
    /* a count far beyond the bytes: refused before any loop */
    uint8_t huge[sizeof resp];
    memcpy(huge, resp, sizeof resp);
    huge[6] = 0x7f;
    huge[7] = 0xff;
    huge[8] = 0xff;
    huge[9] = 0xff;
    assert_int_equal(dec_av_any(huge, sizeof huge, CORR), WEIR_ECORRUPT);
    huge[6] = 0xff; /* count -1 (null) is not allowed here */
    assert_int_equal(dec_av_any(huge, sizeof huge, CORR), WEIR_ECORRUPT);
}

typedef struct seen {
    weir_ktxn_info_t t[8];
    int n;
    int stop_at; /* return 99 from this call (1-based), 0 = never */
} seen_t;

static int record_txn(const weir_ktxn_info_t *t, void *arg) {
    seen_t *s = arg;
    if (s->n < 8)
        s->t[s->n] = *t;
    s->n++;
    return s->n == s->stop_at ? 99 : 0;
}

/* DescribeTransactions v0 response with two states; the first carries one topic. */
static const uint8_t DESCRIBE_RESP[] = {
    0x01, 0x02, 0x03, 0x04,       /* CorrelationId */
    0x01, 0x00, 0x02, 0xaa, 0xbb, /* header TAG_BUFFER: 1 field, tag 0, size 2, 2 bytes (skipped) */
    0x00, 0x00, 0x00, 0x00,       /* ThrottleTimeMs */
    0x03,                         /* TransactionStates: COMPACT_ARRAY of 2 */
    /* [0] */
    0x00, 0x00,                                           /* ErrorCode NONE */
    0x03, 't', '1',                                       /* TransactionalId "t1" */
    0x08, 'O', 'n', 'g', 'o', 'i', 'n', 'g',              /* TransactionState "Ongoing" */
    0x00, 0x00, 0xea, 0x60,                               /* TransactionTimeoutMs 60000 */
    0x00, 0x00, 0x01, 0x90, 0x00, 0x00, 0x00, 0x01,       /* TransactionStartTimeMs */
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xe8,       /* ProducerId 1000 */
    0x00, 0x05,                                           /* ProducerEpoch 5 */
    0x02,                                                 /* Topics: 1 */
    0x02, 'T',                                            /*   Topic "T" */
    0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, /* Partitions [0, 7] */
    0x00,                                                 /*   TAG_BUFFER */
    0x00,                                                 /* TAG_BUFFER */
    /* [1] */
    0x00, 0x69,                                     /* ErrorCode 105 TRANSACTIONAL_ID_NOT_FOUND */
    0x03, 't', '2',                                 /* TransactionalId "t2" */
    0x01,                                           /* TransactionState "" */
    0x00, 0x00, 0x00, 0x00,                         /* TransactionTimeoutMs 0 */
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* TransactionStartTimeMs -1 */
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* ProducerId -1 */
    0xff, 0xff,                                     /* ProducerEpoch -1 */
    0x01,                                           /* Topics: empty */
    0x00,                                           /* TAG_BUFFER */
    0x00,                                           /* TAG_BUFFER */
};

static int dec_describe_any(const uint8_t *p, size_t len, int32_t corr) {
    seen_t s = {.n = 0};
    int rc = weir_kproto_dec_describe_txns(p, len, corr, record_txn, &s);
    if (rc != 0)
        assert_int_equal(s.n, 0); /* nothing delivered from a corrupt response */
    return rc;
}

static void test_dec_describe_txns(void **state) {
    (void)state;
    seen_t s = {.n = 0};
    assert_int_equal(
        weir_kproto_dec_describe_txns(DESCRIBE_RESP, sizeof DESCRIBE_RESP, CORR, record_txn, &s),
        0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.t[0].txn_id, "t1");
    assert_string_equal(s.t[0].state, "Ongoing");
    assert_int_equal(s.t[0].error, 0);
    assert_int_equal(s.t[0].producer_id, 1000);
    assert_int_equal(s.t[0].producer_epoch, 5);
    assert_int_equal(s.t[0].txn_timeout_ms, 60000);
    assert_int_equal(s.t[0].txn_start_ms, 0x0000019000000001LL);
    assert_string_equal(s.t[1].txn_id, "t2");
    assert_int_equal(s.t[1].error, WEIR_KERR_TRANSACTIONAL_ID_NOT_FOUND);
    assert_int_equal(s.t[1].producer_id, -1);
    assert_int_equal(s.t[1].producer_epoch, -1);
    assert_string_equal(s.t[1].state, "");
    /* the callback's non-zero value stops the walk and is returned */
    seen_t stop = {.n = 0, .stop_at = 1};
    assert_int_equal(
        weir_kproto_dec_describe_txns(DESCRIBE_RESP, sizeof DESCRIBE_RESP, CORR, record_txn, &stop),
        99);
    assert_int_equal(stop.n, 1);
    assert_strict(dec_describe_any, DESCRIBE_RESP, sizeof DESCRIBE_RESP);

    uint8_t bad[sizeof DESCRIBE_RESP];
    /* a compact array count of 2^31 (varint 0x80 0x80 0x80 0x80 0x08) */
    memcpy(bad, DESCRIBE_RESP, sizeof bad);
    uint8_t huge[sizeof DESCRIBE_RESP + 4];
    memcpy(huge, DESCRIBE_RESP, 13);
    memcpy(huge + 13, (const uint8_t[]){0x80, 0x80, 0x80, 0x80, 0x08}, 5);
    memcpy(huge + 18, DESCRIBE_RESP + 14, sizeof DESCRIBE_RESP - 14);
    assert_int_equal(dec_describe_any(huge, sizeof huge, CORR), WEIR_ECORRUPT);
    /* a 6-byte varint (more than 32 bits) */
    memcpy(huge + 13, (const uint8_t[]){0x83, 0x80, 0x80, 0x80, 0x80}, 5);
    assert_int_equal(dec_describe_any(huge, sizeof huge, CORR), WEIR_ECORRUPT);
    /* a null array (count 0) where none is allowed */
    bad[13] = 0x00;
    assert_int_equal(dec_describe_any(bad, sizeof bad, CORR), WEIR_ECORRUPT);
    /* a state of 32+ bytes does not fit: corrupt */
    memcpy(bad, DESCRIBE_RESP, sizeof bad);
    bad[19] = 0x28; /* "Ongoing" claims 39 bytes */
    assert_int_equal(dec_describe_any(bad, sizeof bad, CORR), WEIR_ECORRUPT);
    /* a NUL inside the id */
    memcpy(bad, DESCRIBE_RESP, sizeof bad);
    bad[17] = 0x00;
    assert_int_equal(dec_describe_any(bad, sizeof bad, CORR), WEIR_ECORRUPT);
    /* a tagged field longer than the response */
    memcpy(bad, DESCRIBE_RESP, sizeof bad);
    bad[6] = 0x7f;
    assert_int_equal(dec_describe_any(bad, sizeof bad, CORR), WEIR_ECORRUPT);
}

/* ListTransactions v0 response: one unknown filter, three states, the second with an id of 256
 * bytes (skipped: longer than any weir id). */
static size_t list_resp(uint8_t *b) {
    size_t n = 0;
    static const uint8_t head[] = {
        0x01, 0x02, 0x03, 0x04,                         /* CorrelationId */
        0x00,                                           /* header TAG_BUFFER */
        0x00, 0x00, 0x00, 0x00,                         /* ThrottleTimeMs */
        0x00, 0x00,                                     /* ErrorCode */
        0x02, 0x04, 'B',  'a',  'd',                    /* UnknownStateFilters: ["Bad"] */
        0x04,                                           /* TransactionStates: 3 */
        0x04, 'w',  '-',  '1',                          /* [0] TransactionalId "w-1" */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, /* ProducerId 7 */
        0x08, 'O',  'n',  'g',  'o',  'i',  'n',  'g',  /* TransactionState "Ongoing" */
        0x00,                                           /* TAG_BUFFER */
        0x81, 0x02, /* [1] TransactionalId: COMPACT_STRING length 256 + 1 = 257 = 0x81 0x02 */
    };
    memcpy(b, head, sizeof head);
    n = sizeof head;
    memset(b + n, 'w', 256);
    n += 256;
    static const uint8_t tail[] = {
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, /* ProducerId 8 */
        0x06, 'E',  'm',  'p',  't',  'y',              /* TransactionState "Empty" */
        0x00,                                           /* TAG_BUFFER */
        0x02, 'x',                                      /* [2] TransactionalId "x" */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, /* ProducerId 9 */
        0x0e, 'P',  'r',  'e',  'p',  'a',  'r',  'e',
        'C',  'o',  'm',  'm',  'i',  't', /* PrepareCommit */
        0x00,                              /* TAG_BUFFER */
        0x00,                              /* TAG_BUFFER */
    };
    memcpy(b + n, tail, sizeof tail);
    return n + sizeof tail;
}

static int dec_list_any(const uint8_t *p, size_t len, int32_t corr) {
    seen_t s = {.n = 0};
    int16_t err;
    int rc = weir_kproto_dec_list_txns(p, len, corr, &err, record_txn, &s);
    if (rc != 0)
        assert_int_equal(s.n, 0);
    return rc;
}

static void test_dec_list_txns(void **state) {
    (void)state;
    uint8_t resp[512];
    size_t len = list_resp(resp);
    seen_t s = {.n = 0};
    int16_t err = -7;
    assert_int_equal(weir_kproto_dec_list_txns(resp, len, CORR, &err, record_txn, &s), 0);
    assert_int_equal(err, 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.t[0].txn_id, "w-1");
    assert_int_equal(s.t[0].producer_id, 7);
    assert_int_equal(s.t[0].producer_epoch, -1);
    assert_string_equal(s.t[0].state, "Ongoing");
    assert_string_equal(s.t[1].txn_id, "x");
    assert_int_equal(s.t[1].producer_id, 9);
    assert_string_equal(s.t[1].state, "PrepareCommit");
    assert_strict(dec_list_any, resp, len);
}

typedef struct brokers_seen {
    weir_kbroker_t b[4];
    int n;
} brokers_seen_t;

static int record_broker(const weir_kbroker_t *b, void *arg) {
    brokers_seen_t *s = arg;
    if (s->n < 4)
        s->b[s->n] = *b;
    s->n++;
    return 0;
}

static const uint8_t METADATA_RESP[] = {
    0x01, 0x02, 0x03, 0x04, /* CorrelationId */
    0x00, 0x00, 0x00, 0x02, /* Brokers: 2 */
    0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 'a',  0x00, 0x00, 0x00, 0x01, 0xff, 0xff, /* 1 a:1 null */
    0x00, 0x00, 0x00, 0x02, 0x00, 0x01, 'b',  0x00, 0x00, 0xff, 0xff, 0x00, 0x02,
    'r',  '1',                          /* 2 b:65535 rack "r1" */
    0x00, 0x00, 0x00, 0x01,             /* ControllerId */
    0x00, 0x00, 0x00, 0x01,             /* Topics: 1 (skipped) */
    0x00, 0x00, 0x00, 0x01, 'T',  0x00, /* ErrorCode, Name "T", IsInternal */
    0x00, 0x00, 0x00, 0x01,             /* Partitions: 1 */
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, /* ErrorCode, Index 0, Leader 1 */
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01,             /* ReplicaNodes [1] */
    0x00, 0x00, 0x00, 0x00,                                     /* IsrNodes [] */
};

static int dec_meta_any(const uint8_t *p, size_t len, int32_t corr) {
    brokers_seen_t s = {.n = 0};
    int rc = weir_kproto_dec_metadata(p, len, corr, record_broker, &s);
    if (rc != 0)
        assert_int_equal(s.n, 0);
    return rc;
}

static void test_dec_metadata(void **state) {
    (void)state;
    brokers_seen_t s = {.n = 0};
    assert_int_equal(
        weir_kproto_dec_metadata(METADATA_RESP, sizeof METADATA_RESP, CORR, record_broker, &s), 0);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.b[0].node_id, 1);
    assert_string_equal(s.b[0].host, "a");
    assert_int_equal(s.b[0].port, 1);
    assert_string_equal(s.b[1].host, "b");
    assert_int_equal(s.b[1].port, 65535);
    assert_strict(dec_meta_any, METADATA_RESP, sizeof METADATA_RESP);
    uint8_t bad[sizeof METADATA_RESP];
    memcpy(bad, METADATA_RESP, sizeof bad);
    bad[16] = 0x00;
    bad[17] = 0x00;
    bad[18] = 0x00; /* port 0 */
    assert_int_equal(dec_meta_any(bad, sizeof bad, CORR), WEIR_ECORRUPT);
}

static void test_err_names(void **state) {
    (void)state;
    /* Kafka 4.1.1's org.apache.kafka.common.protocol.Errors */
    assert_string_equal(weir_kproto_err_name(0), "NONE");
    assert_string_equal(weir_kproto_err_name(-1), "UNKNOWN_SERVER_ERROR");
    assert_string_equal(weir_kproto_err_name(14), "COORDINATOR_LOAD_IN_PROGRESS");
    assert_string_equal(weir_kproto_err_name(15), "COORDINATOR_NOT_AVAILABLE");
    assert_string_equal(weir_kproto_err_name(16), "NOT_COORDINATOR");
    assert_string_equal(weir_kproto_err_name(47), "INVALID_PRODUCER_EPOCH");
    assert_string_equal(weir_kproto_err_name(48), "INVALID_TXN_STATE");
    assert_string_equal(weir_kproto_err_name(49), "INVALID_PRODUCER_ID_MAPPING");
    assert_string_equal(weir_kproto_err_name(51), "CONCURRENT_TRANSACTIONS");
    assert_string_equal(weir_kproto_err_name(90), "PRODUCER_FENCED");
    assert_string_equal(weir_kproto_err_name(105), "TRANSACTIONAL_ID_NOT_FOUND");
    assert_string_equal(weir_kproto_err_name(133), "SHARE_SESSION_LIMIT_REACHED");
    assert_string_equal(weir_kproto_err_name(134), "UNKNOWN");
    assert_string_equal(weir_kproto_err_name(-2), "UNKNOWN");
    assert_string_equal(weir_kproto_err_name(INT16_MAX), "UNKNOWN");
}

/* ---- the client against fake brokers -------------------------------------------------------- */

typedef enum fake_mode {
    FAKE_NORMAL,
    FAKE_SILENT,      /* reads requests, never answers */
    FAKE_OVERSIZE,    /* answers with a size prefix beyond WEIR_KPROTO_MAX_RESPONSE */
    FAKE_BAD_CORR,    /* answers with another correlation id */
    FAKE_CLOSE_AFTER, /* closes the connection after each answer */
} fake_mode_t;

typedef struct fake {
    int lfd, port;
    pthread_t th;
    atomic_bool stop;
    fake_mode_t mode;
    int coord_port;      /* reported by FindCoordinator (0: this fake) */
    int16_t end_errs[8]; /* EndTxn answers in turn, then NONE */
    int n_end_errs;
    int16_t find_errs[8]; /* FindCoordinator answers in turn, then NONE */
    int n_find_errs;
    int meta_ports[2]; /* brokers Metadata lists */
    int n_meta;
    const char *list_ids[3]; /* ListTransactions answer (state Ongoing) */
    int n_list;
    atomic_int accepts, finds, ends, describes, lists, metas;
    int64_t last_pid;
    int16_t last_epoch;
    bool last_commit;
} fake_t;

typedef struct out {
    uint8_t b[1024];
    size_t n;
} out_t;

static void o_bytes(out_t *o, const void *p, size_t n) {
    memcpy(o->b + o->n, p, n);
    o->n += n;
}
static void o_i8(out_t *o, uint8_t v) {
    o->b[o->n++] = v;
}
static void o_i16(out_t *o, int16_t v) {
    o_i8(o, (uint8_t)((uint16_t)v >> 8));
    o_i8(o, (uint8_t)v);
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
    o_bytes(o, s, strlen(s));
}
static void o_cstr(out_t *o, const char *s) { /* short strings only: one varint byte */
    o_i8(o, (uint8_t)(strlen(s) + 1));
    o_bytes(o, s, strlen(s));
}

static bool read_full(int fd, uint8_t *p, size_t n, fake_t *f) {
    while (n) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 50) <= 0) {
            if (atomic_load(&f->stop))
                return false;
            continue;
        }
        ssize_t k = recv(fd, p, n, 0);
        if (k <= 0)
            return false;
        p += k;
        n -= (size_t)k;
    }
    return true;
}

/* Answers one request (header v1 or v2) according to the fake's script. */
static void answer(fake_t *f, int fd, const uint8_t *req, size_t len) {
    int16_t key = (int16_t)(req[0] << 8 | req[1]);
    int32_t corr =
        (int32_t)((uint32_t)req[4] << 24 | (uint32_t)req[5] << 16 | (uint32_t)req[6] << 8 | req[7]);
    size_t off = 8;
    int16_t cid_len = (int16_t)(req[off] << 8 | req[off + 1]);
    off += 2 + (cid_len > 0 ? (size_t)cid_len : 0);
    out_t o = {.n = 4};
    o_i32(&o, f->mode == FAKE_BAD_CORR ? corr + 1 : corr);
    if (key == 10) { /* FindCoordinator v1 */
        int i = atomic_fetch_add(&f->finds, 1);
        int16_t e = i < f->n_find_errs ? f->find_errs[i] : 0;
        o_i32(&o, 0);
        o_i16(&o, e);
        o_i16(&o, -1);
        o_i32(&o, e ? -1 : 1);
        o_str(&o, e ? "" : "127.0.0.1");
        o_i32(&o, e ? -1 : f->coord_port ? f->coord_port : f->port);
    } else if (key == 26) { /* EndTxn v1 */
        int i = atomic_fetch_add(&f->ends, 1);
        uint16_t id_len = (uint16_t)(req[off] << 8 | req[off + 1]);
        const uint8_t *q = req + off + 2 + id_len;
        f->last_pid = 0;
        for (int k = 0; k < 8; k++)
            f->last_pid = f->last_pid << 8 | q[k];
        f->last_epoch = (int16_t)(q[8] << 8 | q[9]);
        f->last_commit = q[10] != 0;
        o_i32(&o, 0);
        o_i16(&o, i < f->n_end_errs ? f->end_errs[i] : 0);
    } else if (key == 65) { /* DescribeTransactions v0 */
        atomic_fetch_add(&f->describes, 1);
        size_t p = off + 1; /* header TAG_BUFFER */
        char id[64] = {0};
        size_t n = req[p + 1] - 1u; /* one id, short */
        memcpy(id, req + p + 2, n < 63 ? n : 63);
        o_i8(&o, 0);  /* header TAG_BUFFER */
        o_i32(&o, 0); /* ThrottleTimeMs */
        o_i8(&o, 2);  /* 1 state */
        o_i16(&o, 0);
        o_cstr(&o, id);
        o_cstr(&o, "Ongoing");
        o_i32(&o, 60000);
        o_i64(&o, 12345);
        o_i64(&o, 42);
        o_i16(&o, 3);
        o_i8(&o, 1); /* no topics */
        o_i8(&o, 0);
        o_i8(&o, 0);
    } else if (key == 66) { /* ListTransactions v0 */
        atomic_fetch_add(&f->lists, 1);
        o_i8(&o, 0);
        o_i32(&o, 0);
        o_i16(&o, 0);
        o_i8(&o, 1); /* no unknown filters */
        o_i8(&o, (uint8_t)(f->n_list + 1));
        for (int i = 0; i < f->n_list; i++) {
            o_cstr(&o, f->list_ids[i]);
            o_i64(&o, 100 + i);
            o_cstr(&o, "Ongoing");
            o_i8(&o, 0);
        }
        o_i8(&o, 0);
    } else if (key == 3) { /* Metadata v1 */
        atomic_fetch_add(&f->metas, 1);
        o_i32(&o, f->n_meta);
        for (int i = 0; i < f->n_meta; i++) {
            o_i32(&o, i + 1);
            o_str(&o, "127.0.0.1");
            o_i32(&o, f->meta_ports[i]);
            o_i16(&o, -1);
        }
        o_i32(&o, 1);
        o_i32(&o, 0);
    } else {
        return; /* not expected: no answer, the test times out and fails */
    }
    (void)len;
    uint32_t size = (uint32_t)o.n - 4;
    if (f->mode == FAKE_OVERSIZE)
        size = WEIR_KPROTO_MAX_RESPONSE + 1;
    o.b[0] = (uint8_t)(size >> 24);
    o.b[1] = (uint8_t)(size >> 16);
    o.b[2] = (uint8_t)(size >> 8);
    o.b[3] = (uint8_t)size;
    /* a short send shows as a client failure in the test thread (no cmocka asserts here) */
    (void)!send(fd, o.b, o.n, MSG_NOSIGNAL);
}

static void *fake_main(void *arg) {
    fake_t *f = arg;
    while (!atomic_load(&f->stop)) {
        struct pollfd pfd = {.fd = f->lfd, .events = POLLIN};
        if (poll(&pfd, 1, 50) <= 0)
            continue;
        int fd = accept(f->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        atomic_fetch_add(&f->accepts, 1);
        for (;;) {
            uint8_t hdr[4], req[4096];
            if (!read_full(fd, hdr, 4, f))
                break;
            uint32_t n =
                (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
            if (n > sizeof req || !read_full(fd, req, n, f))
                break;
            if (f->mode == FAKE_SILENT)
                continue;
            answer(f, fd, req, n);
            if (f->mode == FAKE_CLOSE_AFTER)
                break;
        }
        close(fd);
    }
    return NULL;
}

static fake_t *fake_start(fake_mode_t mode) {
    fake_t *f = calloc(1, sizeof *f);
    f->mode = mode;
    f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(f->lfd, 8), 0);
    socklen_t sl = sizeof a;
    getsockname(f->lfd, (struct sockaddr *)&a, &sl);
    f->port = ntohs(a.sin_port);
    return f;
}

static void fake_run(fake_t *f) {
    assert_int_equal(pthread_create(&f->th, NULL, fake_main, f), 0);
}

static void fake_stop(fake_t *f) {
    atomic_store(&f->stop, true);
    pthread_join(f->th, NULL);
    close(f->lfd);
    free(f);
}

static weir_kclient_t *client_for(const fake_t *f, int timeout_ms) {
    char boot[64], err[256];
    weir_fmt(boot, sizeof boot, "127.0.0.1:%d", f->port);
    weir_kclient_t *c = weir_kclient_new(boot, "test", timeout_ms, err, sizeof err);
    assert_non_null(c);
    return c;
}

static void test_client_bootstrap_parse(void **state) {
    (void)state;
    char err[256];
    static const char *const good[] = {"127.0.0.1:9092", "PLAINTEXT://h:1,h2:65535", " a:1 , b:2 ",
                                       "[::1]:9092"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        weir_kclient_t *c = weir_kclient_new(good[i], NULL, 1000, err, sizeof err);
        assert_non_null(c);
        weir_kclient_free(c);
    }
    static const struct {
        const char *in, *msg;
    } bad[] = {
        {"", "kafka bootstrap: empty (expected host:port)"},
        {"host", "kafka bootstrap 'host': expected host:port"},
        {"h:0", "kafka bootstrap 'h:0': port must be 1..65535"},
        {"h:65536", "kafka bootstrap 'h:65536': port must be 1..65535"},
        {"h:1,,h:2", "kafka bootstrap: empty or over-long entry (expected host:port[,...])"},
        {"SSL://h:1", "kafka bootstrap 'SSL://h:1': only PLAINTEXT listeners are supported"},
        {"::1:9092", "kafka bootstrap '::1:9092': expected host:port"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = '\0';
        assert_null(weir_kclient_new(bad[i].in, NULL, 1000, err, sizeof err));
        assert_string_equal(err, bad[i].msg);
    }
    assert_null(weir_kclient_new("h:1", NULL, 0, err, sizeof err));
    assert_string_equal(err, "kafka client: timeout must be > 0 ms (got 0)");
}

static void test_client_end_txn_retries_concurrent(void **state) {
    (void)state;
    fake_t *f = fake_start(FAKE_NORMAL);
    f->find_errs[0] = WEIR_KERR_COORDINATOR_NOT_AVAILABLE; /* the first lookup: retried */
    f->n_find_errs = 1;
    f->end_errs[0] = WEIR_KERR_CONCURRENT_TRANSACTIONS;
    f->end_errs[1] = WEIR_KERR_COORDINATOR_LOAD_IN_PROGRESS;
    f->n_end_errs = 2;
    fake_run(f);
    weir_kclient_t *c = client_for(f, 5000);
    char err[512];
    int16_t kerr = -7;
    assert_int_equal(weir_kclient_end_txn(c, "weir-t-0", 77, 3, true, &kerr, err, sizeof err), 0);
    assert_int_equal(kerr, 0);
    assert_string_equal(err, "");
    assert_int_equal(atomic_load(&f->finds), 2);
    assert_int_equal(atomic_load(&f->ends), 3);
    assert_int_equal(f->last_pid, 77);
    assert_int_equal(f->last_epoch, 3);
    assert_true(f->last_commit);
    /* the coordinator is cached and the connection reused */
    assert_int_equal(weir_kclient_end_txn(c, "weir-t-0", 77, 3, false, &kerr, err, sizeof err), 0);
    assert_false(f->last_commit);
    assert_int_equal(atomic_load(&f->finds), 2);
    assert_int_equal(atomic_load(&f->ends), 4);
    assert_int_equal(atomic_load(&f->accepts), 1);
    weir_kclient_free(c);
    fake_stop(f);
}

static void test_client_end_txn_broker_error(void **state) {
    (void)state;
    fake_t *f = fake_start(FAKE_NORMAL);
    f->end_errs[0] = WEIR_KERR_INVALID_PRODUCER_EPOCH;
    f->n_end_errs = 1;
    fake_run(f);
    weir_kclient_t *c = client_for(f, 5000);
    char err[512], want[512];
    int16_t kerr = 0;
    assert_int_equal(weir_kclient_end_txn(c, "tx", 5, 1, true, &kerr, err, sizeof err), 0);
    assert_int_equal(kerr, WEIR_KERR_INVALID_PRODUCER_EPOCH);
    weir_fmt(want, sizeof want,
             "kafka 127.0.0.1:%d: EndTxn(commit, producer id 5, epoch 1) of transactional id "
             "'tx': INVALID_PRODUCER_EPOCH (47)",
             f->port);
    assert_string_equal(err, want);
    assert_int_equal(atomic_load(&f->ends), 1); /* not retried */
    weir_kclient_free(c);
    fake_stop(f);
}

static void test_client_not_coordinator_reresolves(void **state) {
    (void)state;
    /* the bootstrap broker names another broker as coordinator; that one answers
     * NOT_COORDINATOR once, so the client asks the bootstrap broker again */
    fake_t *coord = fake_start(FAKE_NORMAL);
    coord->end_errs[0] = WEIR_KERR_NOT_COORDINATOR;
    coord->n_end_errs = 1;
    fake_run(coord);
    fake_t *boot = fake_start(FAKE_NORMAL);
    boot->coord_port = coord->port;
    fake_run(boot);
    weir_kclient_t *c = client_for(boot, 5000);
    char err[512];
    int16_t kerr = -7;
    assert_int_equal(weir_kclient_end_txn(c, "tx", 5, 1, true, &kerr, err, sizeof err), 0);
    assert_int_equal(kerr, 0);
    assert_int_equal(atomic_load(&boot->finds), 2);
    assert_int_equal(atomic_load(&coord->ends), 2);
    assert_int_equal(atomic_load(&boot->ends), 0);
    weir_kclient_free(c);
    fake_stop(boot);
    fake_stop(coord);
}

static void test_client_timeout_silent(void **state) {
    (void)state;
    fake_t *f = fake_start(FAKE_SILENT);
    fake_run(f);
    weir_kclient_t *c = client_for(f, 300);
    char err[512];
    int16_t kerr;
    int64_t t0 = weir_now_ns();
    assert_int_equal(weir_kclient_end_txn(c, "tx", 5, 1, true, &kerr, err, sizeof err),
                     WEIR_ETIMEDOUT);
    int64_t ms = (weir_now_ns() - t0) / 1000000;
    assert_true(ms >= 290 && ms < 1500);
    assert_non_null(strstr(err, "FindCoordinator: no answer within"));
    assert_non_null(strstr(err, "gave up after"));
    weir_ktxn_info_t t;
    t0 = weir_now_ns();
    assert_int_equal(weir_kclient_describe_txn(c, "tx", &t, err, sizeof err), WEIR_ETIMEDOUT);
    ms = (weir_now_ns() - t0) / 1000000;
    assert_true(ms >= 290 && ms < 1500);
    weir_kclient_free(c);
    fake_stop(f);
}

static void test_client_timeout_retrying(void **state) {
    (void)state;
    /* CONCURRENT_TRANSACTIONS for ever: retried with backoff until the timeout */
    fake_t *f = fake_start(FAKE_NORMAL);
    for (int i = 0; i < 8; i++)
        f->end_errs[i] = WEIR_KERR_CONCURRENT_TRANSACTIONS;
    f->n_end_errs = 8;
    fake_run(f);
    weir_kclient_t *c = client_for(f, 400);
    char err[512];
    int16_t kerr;
    int64_t t0 = weir_now_ns();
    assert_int_equal(weir_kclient_end_txn(c, "tx", 5, 1, true, &kerr, err, sizeof err),
                     WEIR_ETIMEDOUT);
    int64_t ms = (weir_now_ns() - t0) / 1000000;
    assert_true(ms < 1500);
    assert_true(atomic_load(&f->ends) >= 3);
    assert_non_null(strstr(err, "CONCURRENT_TRANSACTIONS (51)"));
    weir_kclient_free(c);
    fake_stop(f);
}

static void test_client_refused_connect(void **state) {
    (void)state;
    fake_t *f = fake_start(FAKE_NORMAL); /* never run: the port is closed below */
    int port = f->port;
    close(f->lfd);
    free(f);
    char boot[64], err[512];
    weir_fmt(boot, sizeof boot, "127.0.0.1:%d", port);
    weir_kclient_t *c = weir_kclient_new(boot, NULL, 300, err, sizeof err);
    int16_t kerr;
    int64_t t0 = weir_now_ns();
    assert_int_equal(weir_kclient_end_txn(c, "tx", 5, 1, true, &kerr, err, sizeof err),
                     WEIR_ETIMEDOUT);
    assert_true((weir_now_ns() - t0) / 1000000 < 1500);
    char want[128];
    weir_fmt(want, sizeof want, "kafka 127.0.0.1:%d: connect: Connection refused", port);
    assert_non_null(strstr(err, want));
    weir_kclient_free(c);
}

static void test_client_oversize_and_bad_corr(void **state) {
    (void)state;
    fake_t *f = fake_start(FAKE_OVERSIZE);
    fake_run(f);
    weir_kclient_t *c = client_for(f, 2000);
    char err[512], want[256];
    int16_t kerr;
    assert_int_equal(weir_kclient_end_txn(c, "tx", 5, 1, true, &kerr, err, sizeof err),
                     WEIR_ECORRUPT);
    weir_fmt(want, sizeof want,
             "kafka 127.0.0.1:%d: FindCoordinator: response size %u outside 4..%u bytes", f->port,
             (unsigned)WEIR_KPROTO_MAX_RESPONSE + 1, (unsigned)WEIR_KPROTO_MAX_RESPONSE);
    assert_string_equal(err, want);
    weir_kclient_free(c);
    fake_stop(f);

    f = fake_start(FAKE_BAD_CORR);
    fake_run(f);
    c = client_for(f, 2000);
    assert_int_equal(weir_kclient_end_txn(c, "tx", 5, 1, true, &kerr, err, sizeof err),
                     WEIR_ECORRUPT);
    weir_fmt(want, sizeof want,
             "kafka 127.0.0.1:%d: FindCoordinator: malformed response (or wrong correlation id)",
             f->port);
    assert_string_equal(err, want);
    weir_kclient_free(c);
    fake_stop(f);
}

static void test_client_reconnects(void **state) {
    (void)state;
    /* the broker closes the connection after every answer: each request after the first finds
     * a stale connection and is sent again on a new one */
    fake_t *f = fake_start(FAKE_CLOSE_AFTER);
    fake_run(f);
    weir_kclient_t *c = client_for(f, 5000);
    char err[512];
    int16_t kerr = -7;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(weir_kclient_end_txn(c, "tx", 5, 1, true, &kerr, err, sizeof err), 0);
        assert_int_equal(kerr, 0);
    }
    assert_int_equal(atomic_load(&f->finds), 1);
    assert_int_equal(atomic_load(&f->ends), 3);
    assert_int_equal(atomic_load(&f->accepts), 4);
    weir_kclient_free(c);
    fake_stop(f);
}

static void test_client_describe(void **state) {
    (void)state;
    fake_t *f = fake_start(FAKE_NORMAL);
    fake_run(f);
    weir_kclient_t *c = client_for(f, 5000);
    char err[512];
    weir_ktxn_info_t t;
    assert_int_equal(weir_kclient_describe_txn(c, "weir-x-1", &t, err, sizeof err), 0);
    assert_string_equal(t.txn_id, "weir-x-1");
    assert_string_equal(t.state, "Ongoing");
    assert_int_equal(t.producer_id, 42);
    assert_int_equal(t.producer_epoch, 3);
    assert_int_equal(t.txn_timeout_ms, 60000);
    assert_int_equal(t.txn_start_ms, 12345);
    assert_int_equal(t.error, 0);
    weir_kclient_free(c);
    fake_stop(f);
}

typedef struct listed {
    weir_kclient_t *c;
    char ids[8][32];
    int n;
} listed_t;

static int on_listed(const weir_ktxn_info_t *t, void *arg) {
    listed_t *l = arg;
    if (l->n < 8)
        weir_fmt(l->ids[l->n], sizeof l->ids[0], "%s", t->txn_id);
    l->n++;
    /* callbacks may use the client (e.g. abort what they find) */
    char err[256];
    int16_t kerr;
    return weir_kclient_end_txn(l->c, t->txn_id, t->producer_id, 0, false, &kerr, err, sizeof err);
}

static void test_client_list_all_brokers(void **state) {
    (void)state;
    fake_t *a = fake_start(FAKE_NORMAL), *b = fake_start(FAKE_NORMAL);
    a->list_ids[0] = "weir-j-0";
    a->list_ids[1] = "other-1";
    a->n_list = 2;
    b->list_ids[0] = "weir-j-1";
    b->n_list = 1;
    a->meta_ports[0] = a->port;
    a->meta_ports[1] = b->port;
    a->n_meta = 2;
    fake_run(a);
    fake_run(b);
    listed_t l = {.c = client_for(a, 5000)};
    char err[512];
    assert_int_equal(weir_kclient_list_txns(l.c, "weir-", NULL, 0, on_listed, &l, err, sizeof err),
                     0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.ids[0], "weir-j-0");
    assert_string_equal(l.ids[1], "weir-j-1");
    assert_int_equal(atomic_load(&a->metas), 1);
    assert_int_equal(atomic_load(&a->lists), 1);
    assert_int_equal(atomic_load(&b->lists), 1);
    assert_int_equal(atomic_load(&a->ends), 2); /* the callbacks' aborts */
    weir_kclient_free(l.c);
    fake_stop(a);
    fake_stop(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_enc_api_versions),
        cmocka_unit_test(test_enc_find_coordinator),
        cmocka_unit_test(test_enc_end_txn),
        cmocka_unit_test(test_enc_describe_txns),
        cmocka_unit_test(test_enc_list_txns),
        cmocka_unit_test(test_enc_metadata),
        cmocka_unit_test(test_dec_end_txn),
        cmocka_unit_test(test_dec_find_coordinator),
        cmocka_unit_test(test_dec_api_versions),
        cmocka_unit_test(test_dec_describe_txns),
        cmocka_unit_test(test_dec_list_txns),
        cmocka_unit_test(test_dec_metadata),
        cmocka_unit_test(test_err_names),
        cmocka_unit_test(test_client_bootstrap_parse),
        cmocka_unit_test(test_client_end_txn_retries_concurrent),
        cmocka_unit_test(test_client_end_txn_broker_error),
        cmocka_unit_test(test_client_not_coordinator_reresolves),
        cmocka_unit_test(test_client_timeout_silent),
        cmocka_unit_test(test_client_timeout_retrying),
        cmocka_unit_test(test_client_refused_connect),
        cmocka_unit_test(test_client_oversize_and_bad_corr),
        cmocka_unit_test(test_client_reconnects),
        cmocka_unit_test(test_client_describe),
        cmocka_unit_test(test_client_list_all_brokers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
