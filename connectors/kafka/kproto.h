/* A minimal Kafka protocol client for what librdkafka cannot do: finish a transaction that
 * another producer instance (a killed or frozen earlier attempt) left pre-committed, and find
 * the transactions a sink left open. DESIGN.md section 6 and connectors/kafka/README.md say why.
 *
 * Requests (Kafka protocol, https://kafka.apache.org/protocol, all big-endian). Versions: for each
 * API the lowest one with the fields we need that a Kafka 4.1.1 broker accepts (its ApiVersions
 * answer: ApiVersions 0-4, Metadata 0-13, FindCoordinator 0-6, EndTxn 0-5,
 * DescribeTransactions 0-0, ListTransactions 0-2; KIP-896 removed none of these versions):
 *   ApiVersions            (key 18) v0   -- what the broker supports (probe, diagnostics)
 *   Metadata               (key 3)  v1   -- the brokers of the cluster (for ListTransactions)
 *   FindCoordinator        (key 10) v1   -- key type 1 = transaction coordinator
 *   EndTxn                 (key 26) v1   -- commit or abort (transactional.id, producer id, epoch)
 *   DescribeTransactions   (key 65) v0   -- state, producer id and epoch of transactional ids
 *   ListTransactions       (key 66) v0   -- the open transactions a broker coordinates
 * (the exact versions are fixed by the encoders and documented with byte layouts in kproto.c;
 * tests/unit/test_kproto.c checks them byte for byte). EndTxn v1 is transactions version 1
 * semantics (v5 would be KIP-890's version 2); below v2 the broker answers a fenced epoch with
 * INVALID_PRODUCER_EPOCH (47), never PRODUCER_FENCED (90) (measured: v2 answers 90).
 *
 * What a Kafka 4.1.1 broker answers (measured with tests/tools/weir_kproto_probe.c and a
 * librdkafka 2.0.2 transactional producer; pid/epoch = the pre-committed transaction's):
 *   EndTxn(commit, pid, epoch) on its Ongoing transaction          NONE; records visible to
 *                                                                  read_committed consumers
 *   the same again while the commit is in PrepareCommit            CONCURRENT_TRANSACTIONS (51)
 *                                                                  (the client retries: NONE)
 *   the same again once CompleteCommit                             NONE (idempotent)
 *   EndTxn(abort) after that commit                                INVALID_TXN_STATE (48)
 *   EndTxn(abort) on the Ongoing transaction; repeated             NONE; NONE (records hidden)
 *   EndTxn(commit) after that abort                                INVALID_TXN_STATE (48)
 *   a wrong epoch (lower or higher than the coordinator's)         INVALID_PRODUCER_EPOCH (47)
 *   a wrong producer id                                            INVALID_PRODUCER_ID_MAPPING
 *                                                                  (49)
 *   an unknown transactional id                                    INVALID_PRODUCER_ID_MAPPING
 *                                                                  (49)
 *   the id re-initialised since (init_transactions of a new        INVALID_PRODUCER_EPOCH (47),
 *   producer: epoch bumped), whether the transaction had been      commit and abort alike: the
 *   committed before (CompleteCommit -> Empty, epoch + 1) or was   answer does not tell whether
 *   still open (aborted by the init: Empty, epoch + 2)             the data was committed
 *   the transaction aborted by the broker's timeout                INVALID_PRODUCER_EPOCH (47)
 *   (transaction.timeout.ms passed): describe shows CompleteAbort, (EndTxn(abort, pid, epoch+1)
 *   the same producer id, epoch + 1, the same start time           answers NONE)
 *   EndTxn with the current epoch on an Empty id                   INVALID_TXN_STATE (48)
 * DescribeTransactions right after init_transactions (state Empty) reports the producer id and
 * epoch librdkafka uses (equal to its statistics' eos.producer_id / eos.producer_epoch); an
 * unknown id answers TRANSACTIONAL_ID_NOT_FOUND (105). TransactionStartTimeMs is -1 when no
 * transaction was ever started since the last init, else the wall-clock start of the last one.
 * librdkafka keeps the same (producer id, epoch) for every transaction of one producer
 * (transactions version 1): EndTxn(commit, pid, epoch) sent while that producer has begun its
 * NEXT transaction commits the next one, whatever it holds so far (measured). A (pid, epoch)
 * names one transaction only if its producer runs one transaction per init_transactions.
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
    int32_t txn_timeout_ms; /* DescribeTransactions only (-1 from ListTransactions) */
    int64_t txn_start_ms;   /* DescribeTransactions only: wall-clock start of the open
                               transaction, -1 when none is open (-1 from ListTransactions) */
} weir_ktxn_info_t;

/** One broker as Metadata reports it. */
typedef struct weir_kbroker {
    int32_t node_id;
    char host[256];
    int32_t port;
} weir_kbroker_t;

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
/** Metadata asking for no topic: the answer lists the brokers. */
size_t weir_kproto_enc_metadata(uint8_t *buf, size_t cap, int32_t corr, const char *client_id);

/** Decoders take one response body WITHOUT the size prefix (starting at the correlation id)
 * and check the correlation id. Every length is bounded by @p len; anything malformed, a wrong
 * correlation id, or bytes after the last field is WEIR_ECORRUPT (never a crash); the outputs
 * are set only on success. @returns 0 or a negative weir error.
 * api_versions stores at most @p cap ranges (*n = the number stored); find_coordinator refuses
 * a host that does not fit @p host_cap, and NONE with an empty host or a port outside 1..65535. */
typedef struct weir_kproto_api_range {
    int16_t key, min, max;
} weir_kproto_api_range_t;
int weir_kproto_dec_api_versions(const uint8_t *p, size_t len, int32_t corr, int16_t *error,
                                 weir_kproto_api_range_t *ranges, size_t cap, size_t *n);
int weir_kproto_dec_find_coordinator(const uint8_t *p, size_t len, int32_t corr, int16_t *error,
                                     int32_t *node_id, char *host, size_t host_cap, int32_t *port);
int weir_kproto_dec_end_txn(const uint8_t *p, size_t len, int32_t corr, int16_t *error);
/** Calls @p fn for each transaction state in the response (stops and returns its non-zero
 * value). The callback decoders check the whole response before their first call: a corrupt
 * response calls nothing. An id or state that does not fit weir_ktxn_info_t is corrupt. */
int weir_kproto_dec_describe_txns(const uint8_t *p, size_t len, int32_t corr,
                                  int (*fn)(const weir_ktxn_info_t *t, void *arg), void *arg);
/** As describe; *error = the top-level error code. Entries whose id is longer than
 * WEIR_KPROTO_MAX_TXN_ID (or holds a NUL byte) are skipped: they cannot be weir's. */
int weir_kproto_dec_list_txns(const uint8_t *p, size_t len, int32_t corr, int16_t *error,
                              int (*fn)(const weir_ktxn_info_t *t, void *arg), void *arg);
/** Calls @p fn for each broker of a Metadata response. */
int weir_kproto_dec_metadata(const uint8_t *p, size_t len, int32_t corr,
                             int (*fn)(const weir_kbroker_t *b, void *arg), void *arg);

/** Kafka's name of an error code ("PRODUCER_FENCED"; Kafka 4.1.1's list), "UNKNOWN" for a code
 * it does not list (print the number too). Static strings; thread-safe. */
const char *weir_kproto_err_name(int16_t code);

/* ---- blocking client --------------------------------------------------------------------- */

typedef struct weir_kclient weir_kclient_t;

/** A client for @p bootstrap ("host:port[,host:port...]", as librdkafka's bootstrap.servers;
 * a "PLAINTEXT://" prefix is accepted; "[v6]:port" too). Connects lazily. @p timeout_ms bounds
 * every call (connect, send, receive, and the retries: I/O errors, NOT_COORDINATOR,
 * COORDINATOR_NOT_AVAILABLE, COORDINATOR_LOAD_IN_PROGRESS, CONCURRENT_TRANSACTIONS are retried
 * with a backoff of 20 ms doubling to 500 ms until it passes; host name resolution is not
 * bounded). @p client_id NULL = "weir". NULL on bad arguments (message in errstr). */
weir_kclient_t *weir_kclient_new(const char *bootstrap, const char *client_id, int timeout_ms,
                                 char *errstr, size_t errlen);
void weir_kclient_free(weir_kclient_t *c);

/** Api key of EndTxn, as passed to the hook below. */
#define WEIR_KPROTO_API_END_TXN 26
/** Called after a request was sent and before its answer is read (kill points in tests). */
typedef void (*weir_kclient_hook_fn)(void *arg, int16_t api_key);
void weir_kclient_set_hook(weir_kclient_t *c, weir_kclient_hook_fn after_send, void *arg);

/** ApiVersions of the first bootstrap broker that answers (diagnostics: which versions of each
 * API it accepts). Stores at most @p cap ranges, *n = the number stored. @returns 0 (*error =
 * the broker's top-level error code) or < 0 as below. */
int weir_kclient_api_versions(weir_kclient_t *c, int16_t *error, weir_kproto_api_range_t *ranges,
                              size_t cap, size_t *n, char *errstr, size_t errlen);

/** EndTxn for @p txn_id with the given producer id and epoch, sent to the transaction's
 * coordinator (FindCoordinator, cached; re-resolved on NOT_COORDINATOR / COORDINATOR_*; retried
 * on CONCURRENT_TRANSACTIONS and COORDINATOR_LOAD_IN_PROGRESS until the timeout).
 * @returns 0 when the broker answered; *kerr is its error code (WEIR_KERR_NONE: done, also when
 * the transaction was already completed the same way with the same epoch; the table at the top
 * says what the others mean), or the non-retriable error FindCoordinator answered; errstr is ""
 * for NONE, else one line naming the broker, the request and the error. < 0 when no answer
 * could be had: WEIR_ETIMEDOUT (the timeout passed; errstr ends with the last failure, e.g.
 * "connect: Connection refused"), WEIR_ECORRUPT (a malformed or oversized answer; never
 * retried), WEIR_EINVAL (bad arguments), WEIR_ENOMEM. */
int weir_kclient_end_txn(weir_kclient_t *c, const char *txn_id, int64_t producer_id,
                         int16_t producer_epoch, bool commit, int16_t *kerr, char *errstr,
                         size_t errlen);

/** DescribeTransactions of one id at its coordinator. @returns 0 with *out filled (out->error
 * is the per-id error, e.g. TRANSACTIONAL_ID_NOT_FOUND, or FindCoordinator's non-retriable
 * error), or < 0 as above. */
int weir_kclient_describe_txn(weir_kclient_t *c, const char *txn_id, weir_ktxn_info_t *out,
                              char *errstr, size_t errlen);

/** ListTransactions on every broker of the cluster (Metadata gives them), filtered to the given
 * states (NULL/0 = all; at most 64); @p fn is called for each whose id starts with @p prefix,
 * only once every broker answered (never for a partial list), outside any I/O: it may call the
 * client (e.g. EndTxn). Entries carry producer_epoch -1 (DescribeTransactions has it).
 * @returns 0, fn's non-zero value, WEIR_EPROTO when a broker answered a non-retriable error
 * (errstr names it), or < 0 as above. */
int weir_kclient_list_txns(weir_kclient_t *c, const char *prefix, const char *const *states,
                           size_t n_states, int (*fn)(const weir_ktxn_info_t *t, void *arg),
                           void *arg, char *errstr, size_t errlen);

#endif
