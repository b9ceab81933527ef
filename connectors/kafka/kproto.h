/* A minimal Kafka protocol client for what librdkafka cannot do: finish a transaction that
 * another producer instance (a killed or frozen earlier attempt) left pre-committed, and find
 * the transactions a sink left open. DESIGN.md section 6 and connectors/kafka/README.md say why.
 *
 * Requests (Kafka protocol, https://kafka.apache.org/protocol, all big-endian):
 *   ApiVersions            (key 18) v0   -- what the broker supports (probe, diagnostics)
 *   Metadata               (key 3)       -- the brokers of the cluster (for ListTransactions)
 *   FindCoordinator        (key 10) v1   -- key type 1 = transaction coordinator
 *   EndTxn                 (key 26) v1   -- commit or abort (transactional.id, producer id, epoch)
 *   DescribeTransactions   (key 65) v0   -- state, producer id and epoch of transactional ids
 *   ListTransactions       (key 66) v0   -- the open transactions a broker coordinates
 * (the exact versions are fixed by the encoders below and documented with byte layouts in
 * kproto.c; the unit tests check them byte for byte).
 *
 * Two layers: pure encoders/decoders over caller buffers (no I/O, fuzzed), and a blocking client
 * over plain TCP (PLAINTEXT listeners only) with a timeout on every call.
 * Threading: a weir_kclient_t is used by one thread at a time; the codec functions are pure. */
#ifndef WEIR_CONNECTORS_KAFKA_KPROTO_H
#define WEIR_CONNECTORS_KAFKA_KPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Largest response the client accepts (bytes after the 4-byte size prefix). */
#define WEIR_KPROTO_MAX_RESPONSE (16u << 20)
/** Longest transactional id handled (Kafka allows more; weir's ids are far shorter). */
#define WEIR_KPROTO_MAX_TXN_ID 255u

/* Kafka error codes the sink acts on (Kafka's own numbers). */
#define WEIR_KERR_NONE 0
#define WEIR_KERR_COORDINATOR_LOAD_IN_PROGRESS 14
#define WEIR_KERR_COORDINATOR_NOT_AVAILABLE 15
#define WEIR_KERR_NOT_COORDINATOR 16
#define WEIR_KERR_INVALID_PRODUCER_EPOCH 47
#define WEIR_KERR_INVALID_TXN_STATE 48
#define WEIR_KERR_INVALID_PRODUCER_ID_MAPPING 49
#define WEIR_KERR_CONCURRENT_TRANSACTIONS 51
#define WEIR_KERR_TRANSACTIONAL_ID_NOT_FOUND 105
#define WEIR_KERR_PRODUCER_FENCED 90

/** One transaction as ListTransactions / DescribeTransactions report it. */
typedef struct weir_ktxn_info {
    char txn_id[WEIR_KPROTO_MAX_TXN_ID + 1];
    int64_t producer_id;
    int16_t producer_epoch; /* DescribeTransactions only (-1 from ListTransactions) */
    char state[32];         /* "Empty", "Ongoing", "PrepareCommit", "CompleteCommit", ... */
    int16_t error;          /* per-id error of DescribeTransactions */
} weir_ktxn_info_t;

/* ---- pure codec (tests/unit/test_kproto.c, tests/fuzz) ---------------------------------- */

/** Encode one request, including the 4-byte size prefix and the request header (v1: api key,
 * api version, correlation id, client id). @returns the number of bytes written, or 0 when
 * @p cap is too small or an argument is out of range. */
size_t weir_kproto_enc_api_versions(uint8_t *buf, size_t cap, int32_t corr, const char *client_id);
size_t weir_kproto_enc_find_coordinator(uint8_t *buf, size_t cap, int32_t corr,
                                        const char *client_id, const char *key, int8_t key_type);
size_t weir_kproto_enc_end_txn(uint8_t *buf, size_t cap, int32_t corr, const char *client_id,
                               const char *txn_id, int64_t producer_id, int16_t producer_epoch,
                               bool commit);
size_t weir_kproto_enc_describe_txns(uint8_t *buf, size_t cap, int32_t corr, const char *client_id,
                                     const char *const *txn_ids, size_t n);
size_t weir_kproto_enc_list_txns(uint8_t *buf, size_t cap, int32_t corr, const char *client_id,
                                 const char *const *states, size_t n_states);

/** Decoders take one response body WITHOUT the size prefix (starting at the correlation id)
 * and check the correlation id. Every length is bounded by @p len; anything malformed is
 * WEIR_ECORRUPT (never a crash). @returns 0 or a negative weir error. */
typedef struct weir_kproto_api_range {
    int16_t key, min, max;
} weir_kproto_api_range_t;
int weir_kproto_dec_api_versions(const uint8_t *p, size_t len, int32_t corr, int16_t *error,
                                 weir_kproto_api_range_t *ranges, size_t cap, size_t *n);
int weir_kproto_dec_find_coordinator(const uint8_t *p, size_t len, int32_t corr, int16_t *error,
                                     int32_t *node_id, char *host, size_t host_cap, int32_t *port);
int weir_kproto_dec_end_txn(const uint8_t *p, size_t len, int32_t corr, int16_t *error);
/** Calls @p fn for each transaction state in the response (stops and returns its non-zero
 * value). */
int weir_kproto_dec_describe_txns(const uint8_t *p, size_t len, int32_t corr,
                                  int (*fn)(const weir_ktxn_info_t *t, void *arg), void *arg);
int weir_kproto_dec_list_txns(const uint8_t *p, size_t len, int32_t corr, int16_t *error,
                              int (*fn)(const weir_ktxn_info_t *t, void *arg), void *arg);

/** Kafka's name of an error code ("PRODUCER_FENCED"), "UNKNOWN(<n>)" otherwise (static
 * strings; thread-safe). */
const char *weir_kproto_err_name(int16_t code);

/* ---- blocking client --------------------------------------------------------------------- */

typedef struct weir_kclient weir_kclient_t;

/** A client for @p bootstrap ("host:port[,host:port...]", as librdkafka's bootstrap.servers;
 * a "PLAINTEXT://" prefix is accepted). Connects lazily. @p timeout_ms bounds every call
 * (connect, send, receive, retries of retriable coordinator errors). NULL on bad arguments
 * (message in errstr). */
weir_kclient_t *weir_kclient_new(const char *bootstrap, const char *client_id, int timeout_ms,
                                 char *errstr, size_t errlen);
void weir_kclient_free(weir_kclient_t *c);

/** Api key of EndTxn, as passed to the hook below. */
#define WEIR_KPROTO_API_END_TXN 26
/** Called after a request was sent and before its answer is read (kill points in tests). */
typedef void (*weir_kclient_hook_fn)(void *arg, int16_t api_key);
void weir_kclient_set_hook(weir_kclient_t *c, weir_kclient_hook_fn after_send, void *arg);

/** EndTxn for @p txn_id with the given producer id and epoch, sent to the transaction's
 * coordinator (FindCoordinator, cached; re-resolved on NOT_COORDINATOR / COORDINATOR_*; retried
 * on CONCURRENT_TRANSACTIONS and COORDINATOR_LOAD_IN_PROGRESS until the timeout).
 * @returns 0 when the broker answered; *kerr is its error code (WEIR_KERR_NONE: done, also when
 * the transaction was already completed the same way with the same epoch). < 0 (WEIR_EIO,
 * WEIR_ETIMEDOUT, WEIR_ECORRUPT) when no answer could be had; message in errstr. */
int weir_kclient_end_txn(weir_kclient_t *c, const char *txn_id, int64_t producer_id,
                         int16_t producer_epoch, bool commit, int16_t *kerr, char *errstr,
                         size_t errlen);

/** DescribeTransactions of one id at its coordinator. @returns 0 with *out filled (out->error
 * is the per-id error, e.g. TRANSACTIONAL_ID_NOT_FOUND), or < 0 as above. */
int weir_kclient_describe_txn(weir_kclient_t *c, const char *txn_id, weir_ktxn_info_t *out,
                              char *errstr, size_t errlen);

/** ListTransactions on every broker of the cluster (Metadata gives them), filtered to the given
 * states (NULL/0 = all); @p fn is called for each whose id starts with @p prefix.
 * @returns 0, fn's non-zero value, or < 0 as above. */
int weir_kclient_list_txns(weir_kclient_t *c, const char *prefix, const char *const *states,
                           size_t n_states, int (*fn)(const weir_ktxn_info_t *t, void *arg),
                           void *arg, char *errstr, size_t errlen);

#endif
