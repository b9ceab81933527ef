/* The pure codec of the small Kafka protocol client (kproto.h): request encoders and response
 * decoders over caller buffers. No I/O, no allocation, no global state: thread-safe, fuzzed
 * (tests/fuzz/fuzz_kproto.c), byte-exact unit tests (tests/unit/test_kproto.c).
 *
 * Invariants: an encoder writes either a whole request (size prefix included) or nothing useful
 * (returns 0). A decoder reads only inside [p, p + len); every length and count is checked
 * against the bytes left before it is used (a count is refused when its elements cannot fit even
 * at their smallest encoding, so no loop runs longer than the input), the correlation id must be
 * the expected one, and the response must end exactly where its last field ends; anything else
 * is WEIR_ECORRUPT. Decoders that call back validate the whole response first (a first pass
 * without callbacks), so a callback never sees an entry of a response later found corrupt.
 *
 * Source of the layouts: the protocol guide (https://kafka.apache.org/protocol) and the message
 * definitions of Kafka 4.1.1 (clients/src/main/resources/common/message/<Name>.json); field names
 * below are theirs. Versions were chosen against a Kafka 4.1.1 broker (its ApiVersions answer:
 * ApiVersions 0-4, Metadata 0-13, FindCoordinator 0-6, EndTxn 0-5, DescribeTransactions 0,
 * ListTransactions 0-2): for each API the lowest version with the fields we need.
 *
 * Primitive types (all big-endian):
 *   INT8/INT16/INT32/INT64   two's complement, 1/2/4/8 bytes
 *   BOOLEAN                  one byte, 0 = false, anything else = true (we write 1)
 *   STRING                   INT16 length N >= 0, then N bytes of UTF-8
 *   NULLABLE_STRING          as STRING; length -1 = null (no bytes follow)
 *   ARRAY                    INT32 count N, then N elements; -1 = null
 *   UNSIGNED_VARINT          7 bits per byte, least significant group first, high bit = more
 *                            bytes follow; at most 5 bytes for 32 bits
 *   COMPACT_STRING           UNSIGNED_VARINT N + 1, then N bytes (0 = null, only where nullable)
 *   COMPACT_ARRAY            UNSIGNED_VARINT N + 1, then N elements (0 = null)
 *   TAG_BUFFER               tagged fields: UNSIGNED_VARINT count, then per field UNSIGNED_VARINT
 *                            tag, UNSIGNED_VARINT size, size bytes. We write an empty buffer
 *                            (one 0x00 byte) and skip every field we read.
 * "Flexible" versions (DescribeTransactions v0, ListTransactions v0) use the compact forms and a
 * TAG_BUFFER at the end of every structure, request header v2 and response header v1.
 *
 * Request framing (every request):
 *   OFFSET SIZE  DESCRIPTION
 *   0      4     message size: INT32, bytes that follow
 *   4      2     RequestApiKey (INT16)
 *   6      2     RequestApiVersion (INT16)
 *   8      4     CorrelationId (INT32), echoed by the response
 *   12     2+n   ClientId (NULLABLE_STRING; a plain STRING even in header v2)
 *   [14+n  1     header v2 only: TAG_BUFFER, 0x00]
 *   ...          the request body (tables at each encoder)
 * Response framing: INT32 size, then CorrelationId (INT32) [+ TAG_BUFFER in header v1], then
 * the body. The decoders take the bytes after the size. */
#include "connectors/kafka/kproto.h"

#include <string.h>

#include "common/err.h"

#define API_METADATA 3
#define API_FIND_COORDINATOR 10
#define API_API_VERSIONS 18
#define API_END_TXN 26
#define API_DESCRIBE_TRANSACTIONS 65
#define API_LIST_TRANSACTIONS 66

#define INT16_STR_MAX 32767u

/* ---- writer ------------------------------------------------------------------------------- */

typedef struct kw {
    uint8_t *p;
    size_t cap, len;
    bool bad; /* out of room or an argument out of range: the encoder returns 0 */
} kw_t;

static void w_bytes(kw_t *w, const void *b, size_t n) {
    if (w->bad || w->cap - w->len < n) {
        w->bad = true;
        return;
    }
    if (n)
        memcpy(w->p + w->len, b, n);
    w->len += n;
}

static void w_u8(kw_t *w, uint8_t v) {
    w_bytes(w, &v, 1);
}

static void w_i16(kw_t *w, int16_t v) {
    uint16_t u = (uint16_t)v;
    uint8_t b[2] = {(uint8_t)(u >> 8), (uint8_t)u};
    w_bytes(w, b, sizeof b);
}

static void w_i32(kw_t *w, int32_t v) {
    uint32_t u = (uint32_t)v;
    uint8_t b[4] = {(uint8_t)(u >> 24), (uint8_t)(u >> 16), (uint8_t)(u >> 8), (uint8_t)u};
    w_bytes(w, b, sizeof b);
}

static void w_i64(kw_t *w, int64_t v) {
    w_i32(w, (int32_t)(uint32_t)((uint64_t)v >> 32));
    w_i32(w, (int32_t)(uint32_t)(uint64_t)v);
}

static void w_uvarint(kw_t *w, uint32_t v) {
    while (v >= 0x80) {
        w_u8(w, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    w_u8(w, (uint8_t)v);
}

/* STRING, or NULLABLE_STRING -1 for NULL. */
static void w_str(kw_t *w, const char *s) {
    if (!s) {
        w_i16(w, -1);
        return;
    }
    size_t n = strlen(s);
    if (n > INT16_STR_MAX) {
        w->bad = true;
        return;
    }
    w_i16(w, (int16_t)n);
    w_bytes(w, s, n);
}

/* COMPACT_STRING (never null here). */
static void w_cstr(kw_t *w, const char *s) {
    size_t n = strlen(s);
    if (n > INT16_STR_MAX) {
        w->bad = true;
        return;
    }
    w_uvarint(w, (uint32_t)n + 1);
    w_bytes(w, s, n);
}

/* The size placeholder and the request header (v1, or v2 when @p flexible). */
static void w_header(kw_t *w, int16_t api_key, int16_t api_version, int32_t corr,
                     const char *client_id, bool flexible) {
    w_i32(w, 0); /* patched by w_finish */
    w_i16(w, api_key);
    w_i16(w, api_version);
    w_i32(w, corr);
    w_str(w, client_id);
    if (flexible)
        w_u8(w, 0); /* TAG_BUFFER: no tagged fields */
}

static size_t w_finish(kw_t *w) {
    if (w->bad || w->len < 4 || w->len - 4 > INT32_MAX)
        return 0;
    size_t body = w->len - 4;
    w->p[0] = (uint8_t)(body >> 24);
    w->p[1] = (uint8_t)(body >> 16);
    w->p[2] = (uint8_t)(body >> 8);
    w->p[3] = (uint8_t)body;
    return w->len;
}

static bool txn_id_ok(const char *id) {
    return id && *id && strlen(id) <= WEIR_KPROTO_MAX_TXN_ID;
}

/* ---- encoders ------------------------------------------------------------------------------ */

/* ApiVersions v0 (key 18): header v1, empty body.
 *   OFFSET SIZE DESCRIPTION
 *   0      4    size = 8 + 2 + n
 *   4      2    RequestApiKey = 18
 *   6      2    RequestApiVersion = 0
 *   8      4    CorrelationId
 *   12     2+n  ClientId */
size_t weir_kproto_enc_api_versions(uint8_t *buf, size_t cap, int32_t corr, const char *client_id) {
    kw_t w = {buf, cap, 0, false};
    w_header(&w, API_API_VERSIONS, 0, corr, client_id, false);
    return w_finish(&w);
}

/* FindCoordinator v1 (key 10; v1 adds KeyType; v3 is the first flexible version, v4 replaces
 * Key by a CoordinatorKeys array): header v1, then
 *   FIELD    TYPE    DESCRIPTION
 *   Key      STRING  the coordinator key: the transactional.id for KeyType 1
 *   KeyType  INT8    0 = group, 1 = transaction, 2 = share */
size_t weir_kproto_enc_find_coordinator(uint8_t *buf, size_t cap, int32_t corr,
                                        const char *client_id, const char *key, int8_t key_type) {
    if (!key || !*key || key_type < 0)
        return 0;
    kw_t w = {buf, cap, 0, false};
    w_header(&w, API_FIND_COORDINATOR, 1, corr, client_id, false);
    w_str(&w, key);
    w_u8(&w, (uint8_t)key_type);
    return w_finish(&w);
}

/* EndTxn v1 (key 26; v1 = v0; v2 lets the broker answer PRODUCER_FENCED instead of
 * INVALID_PRODUCER_EPOCH; v3 flexible; v5 = transactions version 2, KIP-890): header v1, then
 *   FIELD            TYPE     DESCRIPTION
 *   TransactionalId  STRING   the transaction to end
 *   ProducerId       INT64    the producer id the transaction runs under
 *   ProducerEpoch    INT16    the producer epoch it runs under
 *   Committed        BOOLEAN  1 = commit, 0 = abort */
size_t weir_kproto_enc_end_txn(uint8_t *buf, size_t cap, int32_t corr, const char *client_id,
                               const char *txn_id, int64_t producer_id, int16_t producer_epoch,
                               bool commit) {
    if (!txn_id_ok(txn_id) || producer_id < 0 || producer_epoch < 0)
        return 0;
    kw_t w = {buf, cap, 0, false};
    w_header(&w, API_END_TXN, 1, corr, client_id, false);
    w_str(&w, txn_id);
    w_i64(&w, producer_id);
    w_i16(&w, producer_epoch);
    w_u8(&w, commit ? 1 : 0);
    return w_finish(&w);
}

/* DescribeTransactions v0 (key 65; flexible from v0): header v2, then
 *   FIELD             TYPE                          DESCRIPTION
 *   TransactionalIds  COMPACT_ARRAY(COMPACT_STRING) the ids to describe
 *   _tagged_fields    TAG_BUFFER                    0x00 */
size_t weir_kproto_enc_describe_txns(uint8_t *buf, size_t cap, int32_t corr, const char *client_id,
                                     const char *const *txn_ids, size_t n) {
    if (n == 0 || n > 1000000 || !txn_ids)
        return 0;
    kw_t w = {buf, cap, 0, false};
    w_header(&w, API_DESCRIBE_TRANSACTIONS, 0, corr, client_id, true);
    w_uvarint(&w, (uint32_t)n + 1);
    for (size_t i = 0; i < n; i++) {
        if (!txn_id_ok(txn_ids[i]))
            return 0;
        w_cstr(&w, txn_ids[i]);
    }
    w_u8(&w, 0);
    return w_finish(&w);
}

/* ListTransactions v0 (key 66; flexible from v0; v1 adds DurationFilter, v2 a regex
 * TransactionalIdPattern): header v2, then
 *   FIELD              TYPE                          DESCRIPTION
 *   StateFilters       COMPACT_ARRAY(COMPACT_STRING) states to list; empty = all
 *   ProducerIdFilters  COMPACT_ARRAY(INT64)          producer ids to list; we send empty = all
 *   _tagged_fields     TAG_BUFFER                    0x00 */
size_t weir_kproto_enc_list_txns(uint8_t *buf, size_t cap, int32_t corr, const char *client_id,
                                 const char *const *states, size_t n_states) {
    if (n_states > 64 || (n_states && !states))
        return 0;
    kw_t w = {buf, cap, 0, false};
    w_header(&w, API_LIST_TRANSACTIONS, 0, corr, client_id, true);
    w_uvarint(&w, (uint32_t)n_states + 1);
    for (size_t i = 0; i < n_states; i++) {
        if (!states[i] || !*states[i] || strlen(states[i]) >= sizeof((weir_ktxn_info_t *)0)->state)
            return 0;
        w_cstr(&w, states[i]);
    }
    w_uvarint(&w, 1); /* ProducerIdFilters: empty */
    w_u8(&w, 0);
    return w_finish(&w);
}

/* Metadata v1 (key 3; v1: an empty Topics array asks for no topic, null for all; v4 adds
 * AllowAutoTopicCreation; v9 flexible): header v1, then
 *   FIELD   TYPE                 DESCRIPTION
 *   Topics  ARRAY(Name STRING)   count 0: no topics, the answer lists the brokers only */
size_t weir_kproto_enc_metadata(uint8_t *buf, size_t cap, int32_t corr, const char *client_id) {
    kw_t w = {buf, cap, 0, false};
    w_header(&w, API_METADATA, 1, corr, client_id, false);
    w_i32(&w, 0);
    return w_finish(&w);
}

/* ---- reader ------------------------------------------------------------------------------- */

typedef struct kr {
    const uint8_t *p;
    size_t len, off;
    bool bad; /* sticky: every later read returns zeros */
} kr_t;

static bool r_need(kr_t *r, size_t n) {
    if (r->bad || r->len - r->off < n) {
        r->bad = true;
        return false;
    }
    return true;
}

static size_t r_left(const kr_t *r) {
    return r->bad ? 0 : r->len - r->off;
}

static uint8_t r_u8(kr_t *r) {
    if (!r_need(r, 1))
        return 0;
    return r->p[r->off++];
}

static int16_t r_i16(kr_t *r) {
    if (!r_need(r, 2))
        return 0;
    const uint8_t *b = r->p + r->off;
    r->off += 2;
    return (int16_t)(uint16_t)((unsigned)b[0] << 8 | b[1]);
}

static int32_t r_i32(kr_t *r) {
    if (!r_need(r, 4))
        return 0;
    const uint8_t *b = r->p + r->off;
    r->off += 4;
    return (int32_t)((uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3]);
}

static int64_t r_i64(kr_t *r) {
    uint64_t hi = (uint32_t)r_i32(r);
    uint64_t lo = (uint32_t)r_i32(r);
    return (int64_t)(hi << 32 | lo);
}

static void r_skip(kr_t *r, size_t n) {
    if (r_need(r, n))
        r->off += n;
}

static uint32_t r_uvarint(kr_t *r) {
    uint32_t v = 0;
    for (int shift = 0; shift <= 28; shift += 7) {
        uint8_t b = r_u8(r);
        if (shift == 28 && b > 0x0f) { /* more than 32 bits */
            r->bad = true;
            return 0;
        }
        v |= (uint32_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return v;
    }
    return 0; /* unreachable: the 5th byte either ends or was refused */
}

/* ARRAY count whose elements take at least @p min_elem bytes each; -1 (null) when @p nullable
 * (returned as 0). */
static size_t r_count(kr_t *r, size_t min_elem, bool nullable) {
    int32_t n = r_i32(r);
    if (n == -1 && nullable)
        return 0;
    if (n < 0 || (size_t)n > r_left(r) / min_elem) {
        r->bad = true;
        return 0;
    }
    return (size_t)n;
}

/* COMPACT_ARRAY count (null refused: no array we read is nullable). */
static size_t r_ccount(kr_t *r, size_t min_elem) {
    uint32_t n = r_uvarint(r);
    if (n == 0 || (size_t)(n - 1) > r_left(r) / min_elem) {
        r->bad = true;
        return 0;
    }
    return n - 1;
}

/* A string's bytes: STRING/NULLABLE_STRING (INT16 length) or, when @p compact, COMPACT_STRING.
 * *s = NULL for null (refused unless @p nullable). */
static void r_str(kr_t *r, bool compact, bool nullable, const uint8_t **s, size_t *n) {
    int64_t len;
    *s = NULL;
    *n = 0;
    if (compact)
        len = (int64_t)r_uvarint(r) - 1;
    else
        len = r_i16(r);
    if (r->bad)
        return;
    if (len < 0) {
        if (len != -1 || !nullable)
            r->bad = true;
        return;
    }
    if (!r_need(r, (size_t)len))
        return;
    *s = r->p + r->off;
    *n = (size_t)len;
    r->off += (size_t)len;
}

/* A non-null string copied into @p dst (NUL-terminated). @returns false when it does not fit
 * or holds a NUL byte (the reader stays valid: the caller decides whether that is corrupt). */
static bool r_str_into(kr_t *r, bool compact, char *dst, size_t cap) {
    const uint8_t *s;
    size_t n;
    r_str(r, compact, false, &s, &n);
    dst[0] = '\0';
    if (r->bad || n >= cap || memchr(s, 0, n))
        return false;
    if (n)
        memcpy(dst, s, n);
    dst[n] = '\0';
    return true;
}

/* TAG_BUFFER: every tagged field skipped (none is one we need). */
static void r_tags(kr_t *r) {
    uint32_t count = r_uvarint(r);
    if (count > r_left(r) / 2) { /* each field takes at least 2 bytes (tag, size) */
        r->bad = true;
        return;
    }
    for (uint32_t i = 0; i < count && !r->bad; i++) {
        (void)r_uvarint(r); /* tag */
        r_skip(r, r_uvarint(r));
    }
}

/* Response header: CorrelationId (v0) [+ TAG_BUFFER (v1, flexible)]. */
static void r_header(kr_t *r, int32_t corr, bool flexible) {
    if (r_i32(r) != corr)
        r->bad = true;
    if (flexible)
        r_tags(r);
}

static int r_end(const kr_t *r) {
    return !r->bad && r->off == r->len ? 0 : WEIR_ECORRUPT;
}

/* ---- decoders ------------------------------------------------------------------------------ */

/* ApiVersions v0 response (header v0):
 *   OFFSET  SIZE  DESCRIPTION
 *   0       4     CorrelationId
 *   4       2     ErrorCode (35 UNSUPPORTED_VERSION: the list is still there)
 *   6       4     ApiKeys: ARRAY count N
 *   10+6i   2     ApiKey      \
 *   12+6i   2     MinVersion   } N times
 *   14+6i   2     MaxVersion  /
 * Stores the first @p cap ranges; *n = the number stored. */
int weir_kproto_dec_api_versions(const uint8_t *p, size_t len, int32_t corr, int16_t *error,
                                 weir_kproto_api_range_t *ranges, size_t cap, size_t *n) {
    kr_t r = {p, len, 0, false};
    *n = 0;
    r_header(&r, corr, false);
    int16_t err = r_i16(&r);
    size_t count = r_count(&r, 6, false);
    for (size_t i = 0; i < count && !r.bad; i++) {
        weir_kproto_api_range_t a = {r_i16(&r), r_i16(&r), r_i16(&r)};
        if (*n < cap && !r.bad)
            ranges[(*n)++] = a;
    }
    if (r_end(&r) != 0) {
        *n = 0;
        return WEIR_ECORRUPT;
    }
    *error = err;
    return 0;
}

/* FindCoordinator v1 response (header v0):
 *   FIELD           TYPE             DESCRIPTION
 *   CorrelationId   INT32
 *   ThrottleTimeMs  INT32
 *   ErrorCode       INT16            e.g. COORDINATOR_NOT_AVAILABLE (15)
 *   ErrorMessage    NULLABLE_STRING
 *   NodeId          INT32            -1 on error
 *   Host            STRING           "" on error
 *   Port            INT32            -1 on error */
int weir_kproto_dec_find_coordinator(const uint8_t *p, size_t len, int32_t corr, int16_t *error,
                                     int32_t *node_id, char *host, size_t host_cap, int32_t *port) {
    kr_t r = {p, len, 0, false};
    const uint8_t *msg;
    size_t msg_len;
    r_header(&r, corr, false);
    (void)r_i32(&r);
    int16_t err = r_i16(&r);
    r_str(&r, false, true, &msg, &msg_len);
    int32_t node = r_i32(&r);
    if (host_cap == 0 || !r_str_into(&r, false, host, host_cap))
        r.bad = true;
    int32_t prt = r_i32(&r);
    if (r_end(&r) != 0 || (err == 0 && (prt <= 0 || prt > 65535 || !host[0]))) {
        if (host_cap)
            host[0] = '\0';
        return WEIR_ECORRUPT;
    }
    *error = err;
    *node_id = node;
    *port = prt;
    return 0;
}

/* EndTxn v1 response (header v0):
 *   OFFSET  SIZE  DESCRIPTION
 *   0       4     CorrelationId
 *   4       4     ThrottleTimeMs
 *   8       2     ErrorCode */
int weir_kproto_dec_end_txn(const uint8_t *p, size_t len, int32_t corr, int16_t *error) {
    kr_t r = {p, len, 0, false};
    r_header(&r, corr, false);
    (void)r_i32(&r);
    int16_t err = r_i16(&r);
    if (r_end(&r) != 0)
        return WEIR_ECORRUPT;
    *error = err;
    return 0;
}

/* DescribeTransactions v0 response (header v1, flexible):
 *   FIELD                         TYPE                 DESCRIPTION
 *   CorrelationId                 INT32
 *   _tagged_fields (header)       TAG_BUFFER
 *   ThrottleTimeMs                INT32
 *   TransactionStates             COMPACT_ARRAY of:
 *     ErrorCode                   INT16                e.g. TRANSACTIONAL_ID_NOT_FOUND (105)
 *     TransactionalId             COMPACT_STRING
 *     TransactionState            COMPACT_STRING       "Empty", "Ongoing", "PrepareCommit", ...
 *     TransactionTimeoutMs        INT32
 *     TransactionStartTimeMs      INT64                -1 when no transaction is open
 *     ProducerId                  INT64
 *     ProducerEpoch               INT16
 *     Topics                      COMPACT_ARRAY of:
 *       Topic                     COMPACT_STRING
 *       Partitions                COMPACT_ARRAY(INT32)
 *       _tagged_fields            TAG_BUFFER
 *     _tagged_fields              TAG_BUFFER
 *   _tagged_fields                TAG_BUFFER
 * An id or state that does not fit weir_ktxn_info_t (or holds a NUL byte) is corrupt: we only
 * ask about ids of at most WEIR_KPROTO_MAX_TXN_ID bytes. */
static int describe_walk(kr_t *r, int32_t corr, int (*fn)(const weir_ktxn_info_t *, void *),
                         void *arg) {
    r_header(r, corr, true);
    (void)r_i32(r);
    /* smallest entry: 2 + 1 + 1 + 4 + 8 + 8 + 2 + 1 + 1 bytes */
    size_t count = r_ccount(r, 28);
    for (size_t i = 0; i < count && !r->bad; i++) {
        weir_ktxn_info_t t;
        memset(&t, 0, sizeof t);
        t.error = r_i16(r);
        if (!r_str_into(r, true, t.txn_id, sizeof t.txn_id) ||
            !r_str_into(r, true, t.state, sizeof t.state))
            r->bad = true;
        t.txn_timeout_ms = r_i32(r);
        t.txn_start_ms = r_i64(r);
        t.producer_id = r_i64(r);
        t.producer_epoch = r_i16(r);
        size_t topics = r_ccount(r, 3); /* topic name, partitions, tags: 1 byte each at least */
        for (size_t k = 0; k < topics && !r->bad; k++) {
            const uint8_t *s;
            size_t n;
            r_str(r, true, false, &s, &n);
            size_t parts = r_ccount(r, 4);
            r_skip(r, parts * 4);
            r_tags(r);
        }
        r_tags(r);
        if (r->bad)
            break;
        if (fn) {
            int rc = fn(&t, arg);
            if (rc != 0)
                return rc;
        }
    }
    r_tags(r);
    return r_end(r);
}

int weir_kproto_dec_describe_txns(const uint8_t *p, size_t len, int32_t corr,
                                  int (*fn)(const weir_ktxn_info_t *t, void *arg), void *arg) {
    kr_t check = {p, len, 0, false};
    int rc = describe_walk(&check, corr, NULL, NULL);
    if (rc != 0 || !fn)
        return rc;
    kr_t r = {p, len, 0, false};
    return describe_walk(&r, corr, fn, arg);
}

/* ListTransactions v0 response (header v1, flexible):
 *   FIELD                     TYPE                            DESCRIPTION
 *   CorrelationId             INT32
 *   _tagged_fields (header)   TAG_BUFFER
 *   ThrottleTimeMs            INT32
 *   ErrorCode                 INT16                           e.g. COORDINATOR_LOAD_IN_PROGRESS
 *   UnknownStateFilters       COMPACT_ARRAY(COMPACT_STRING)   filters the broker did not know
 *   TransactionStates         COMPACT_ARRAY of:
 *     TransactionalId         COMPACT_STRING
 *     ProducerId              INT64
 *     TransactionState        COMPACT_STRING
 *     _tagged_fields          TAG_BUFFER
 *   _tagged_fields            TAG_BUFFER
 * Entries whose id is longer than WEIR_KPROTO_MAX_TXN_ID or holds a NUL byte are skipped: they
 * cannot be weir's (weir names its ids, all shorter). A state that does not fit is corrupt. */
static int list_walk(kr_t *r, int32_t corr, int16_t *error,
                     int (*fn)(const weir_ktxn_info_t *, void *), void *arg) {
    r_header(r, corr, true);
    (void)r_i32(r);
    *error = r_i16(r);
    size_t unknown = r_ccount(r, 1);
    for (size_t i = 0; i < unknown && !r->bad; i++) {
        const uint8_t *s;
        size_t n;
        r_str(r, true, false, &s, &n);
    }
    size_t count = r_ccount(r, 1 + 8 + 1 + 1);
    for (size_t i = 0; i < count && !r->bad; i++) {
        weir_ktxn_info_t t;
        memset(&t, 0, sizeof t);
        const uint8_t *id;
        size_t id_len;
        r_str(r, true, false, &id, &id_len);
        t.producer_id = r_i64(r);
        t.producer_epoch = -1;
        t.txn_timeout_ms = -1;
        t.txn_start_ms = -1;
        if (!r_str_into(r, true, t.state, sizeof t.state))
            r->bad = true;
        r_tags(r);
        if (r->bad)
            break;
        bool ours = id_len <= WEIR_KPROTO_MAX_TXN_ID && !memchr(id, 0, id_len);
        if (fn && ours) {
            if (id_len)
                memcpy(t.txn_id, id, id_len);
            t.txn_id[id_len] = '\0';
            int rc = fn(&t, arg);
            if (rc != 0)
                return rc;
        }
    }
    r_tags(r);
    return r_end(r);
}

int weir_kproto_dec_list_txns(const uint8_t *p, size_t len, int32_t corr, int16_t *error,
                              int (*fn)(const weir_ktxn_info_t *t, void *arg), void *arg) {
    int16_t err = 0;
    kr_t check = {p, len, 0, false};
    int rc = list_walk(&check, corr, &err, NULL, NULL);
    if (rc != 0)
        return rc;
    *error = err;
    if (!fn)
        return 0;
    kr_t r = {p, len, 0, false};
    return list_walk(&r, corr, &err, fn, arg);
}

/* Metadata v1 response (header v0):
 *   FIELD              TYPE             DESCRIPTION
 *   CorrelationId      INT32
 *   Brokers            ARRAY of:
 *     NodeId           INT32
 *     Host             STRING
 *     Port             INT32
 *     Rack             NULLABLE_STRING
 *   ControllerId       INT32
 *   Topics             ARRAY of (none when none was asked for; skipped):
 *     ErrorCode        INT16
 *     Name             STRING
 *     IsInternal       BOOLEAN
 *     Partitions       ARRAY of:
 *       ErrorCode      INT16
 *       PartitionIndex INT32
 *       LeaderId       INT32
 *       ReplicaNodes   ARRAY(INT32)
 *       IsrNodes       ARRAY(INT32)
 * A broker without a host, with a host longer than 255 bytes or a port outside 1..65535 is
 * corrupt. */
static int metadata_walk(kr_t *r, int32_t corr, int (*fn)(const weir_kbroker_t *, void *),
                         void *arg) {
    r_header(r, corr, false);
    size_t brokers = r_count(r, 4 + 2 + 4 + 2, false);
    for (size_t i = 0; i < brokers && !r->bad; i++) {
        weir_kbroker_t b;
        memset(&b, 0, sizeof b);
        const uint8_t *rack;
        size_t rack_len;
        b.node_id = r_i32(r);
        if (!r_str_into(r, false, b.host, sizeof b.host) || !b.host[0])
            r->bad = true;
        b.port = r_i32(r);
        r_str(r, false, true, &rack, &rack_len);
        if (b.port <= 0 || b.port > 65535)
            r->bad = true;
        if (r->bad)
            break;
        if (fn) {
            int rc = fn(&b, arg);
            if (rc != 0)
                return rc;
        }
    }
    (void)r_i32(r); /* ControllerId */
    size_t topics = r_count(r, 2 + 2 + 1 + 4, false);
    for (size_t i = 0; i < topics && !r->bad; i++) {
        const uint8_t *s;
        size_t n;
        (void)r_i16(r);
        r_str(r, false, false, &s, &n);
        (void)r_u8(r);
        size_t parts = r_count(r, 2 + 4 + 4 + 4 + 4, false);
        for (size_t k = 0; k < parts && !r->bad; k++) {
            r_skip(r, 2 + 4 + 4);
            r_skip(r, 4 * r_count(r, 4, false));
            r_skip(r, 4 * r_count(r, 4, false));
        }
    }
    return r_end(r);
}

int weir_kproto_dec_metadata(const uint8_t *p, size_t len, int32_t corr,
                             int (*fn)(const weir_kbroker_t *b, void *arg), void *arg) {
    kr_t check = {p, len, 0, false};
    int rc = metadata_walk(&check, corr, NULL, NULL);
    if (rc != 0 || !fn)
        return rc;
    kr_t r = {p, len, 0, false};
    return metadata_walk(&r, corr, fn, arg);
}

/* ---- error names --------------------------------------------------------------------------- */

/* Kafka's error codes and names (org.apache.kafka.common.protocol.Errors of Kafka 4.1.1, listed
 * with Errors.values()). */
static const char *const KERR_NAMES[] = {
    [0] = "NONE",
    [1] = "OFFSET_OUT_OF_RANGE",
    [2] = "CORRUPT_MESSAGE",
    [3] = "UNKNOWN_TOPIC_OR_PARTITION",
    [4] = "INVALID_FETCH_SIZE",
    [5] = "LEADER_NOT_AVAILABLE",
    [6] = "NOT_LEADER_OR_FOLLOWER",
    [7] = "REQUEST_TIMED_OUT",
    [8] = "BROKER_NOT_AVAILABLE",
    [9] = "REPLICA_NOT_AVAILABLE",
    [10] = "MESSAGE_TOO_LARGE",
    [11] = "STALE_CONTROLLER_EPOCH",
    [12] = "OFFSET_METADATA_TOO_LARGE",
    [13] = "NETWORK_EXCEPTION",
    [14] = "COORDINATOR_LOAD_IN_PROGRESS",
    [15] = "COORDINATOR_NOT_AVAILABLE",
    [16] = "NOT_COORDINATOR",
    [17] = "INVALID_TOPIC_EXCEPTION",
    [18] = "RECORD_LIST_TOO_LARGE",
    [19] = "NOT_ENOUGH_REPLICAS",
    [20] = "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
    [21] = "INVALID_REQUIRED_ACKS",
    [22] = "ILLEGAL_GENERATION",
    [23] = "INCONSISTENT_GROUP_PROTOCOL",
    [24] = "INVALID_GROUP_ID",
    [25] = "UNKNOWN_MEMBER_ID",
    [26] = "INVALID_SESSION_TIMEOUT",
    [27] = "REBALANCE_IN_PROGRESS",
    [28] = "INVALID_COMMIT_OFFSET_SIZE",
    [29] = "TOPIC_AUTHORIZATION_FAILED",
    [30] = "GROUP_AUTHORIZATION_FAILED",
    [31] = "CLUSTER_AUTHORIZATION_FAILED",
    [32] = "INVALID_TIMESTAMP",
    [33] = "UNSUPPORTED_SASL_MECHANISM",
    [34] = "ILLEGAL_SASL_STATE",
    [35] = "UNSUPPORTED_VERSION",
    [36] = "TOPIC_ALREADY_EXISTS",
    [37] = "INVALID_PARTITIONS",
    [38] = "INVALID_REPLICATION_FACTOR",
    [39] = "INVALID_REPLICA_ASSIGNMENT",
    [40] = "INVALID_CONFIG",
    [41] = "NOT_CONTROLLER",
    [42] = "INVALID_REQUEST",
    [43] = "UNSUPPORTED_FOR_MESSAGE_FORMAT",
    [44] = "POLICY_VIOLATION",
    [45] = "OUT_OF_ORDER_SEQUENCE_NUMBER",
    [46] = "DUPLICATE_SEQUENCE_NUMBER",
    [47] = "INVALID_PRODUCER_EPOCH",
    [48] = "INVALID_TXN_STATE",
    [49] = "INVALID_PRODUCER_ID_MAPPING",
    [50] = "INVALID_TRANSACTION_TIMEOUT",
    [51] = "CONCURRENT_TRANSACTIONS",
    [52] = "TRANSACTION_COORDINATOR_FENCED",
    [53] = "TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
    [54] = "SECURITY_DISABLED",
    [55] = "OPERATION_NOT_ATTEMPTED",
    [56] = "KAFKA_STORAGE_ERROR",
    [57] = "LOG_DIR_NOT_FOUND",
    [58] = "SASL_AUTHENTICATION_FAILED",
    [59] = "UNKNOWN_PRODUCER_ID",
    [60] = "REASSIGNMENT_IN_PROGRESS",
    [61] = "DELEGATION_TOKEN_AUTH_DISABLED",
    [62] = "DELEGATION_TOKEN_NOT_FOUND",
    [63] = "DELEGATION_TOKEN_OWNER_MISMATCH",
    [64] = "DELEGATION_TOKEN_REQUEST_NOT_ALLOWED",
    [65] = "DELEGATION_TOKEN_AUTHORIZATION_FAILED",
    [66] = "DELEGATION_TOKEN_EXPIRED",
    [67] = "INVALID_PRINCIPAL_TYPE",
    [68] = "NON_EMPTY_GROUP",
    [69] = "GROUP_ID_NOT_FOUND",
    [70] = "FETCH_SESSION_ID_NOT_FOUND",
    [71] = "INVALID_FETCH_SESSION_EPOCH",
    [72] = "LISTENER_NOT_FOUND",
    [73] = "TOPIC_DELETION_DISABLED",
    [74] = "FENCED_LEADER_EPOCH",
    [75] = "UNKNOWN_LEADER_EPOCH",
    [76] = "UNSUPPORTED_COMPRESSION_TYPE",
    [77] = "STALE_BROKER_EPOCH",
    [78] = "OFFSET_NOT_AVAILABLE",
    [79] = "MEMBER_ID_REQUIRED",
    [80] = "PREFERRED_LEADER_NOT_AVAILABLE",
    [81] = "GROUP_MAX_SIZE_REACHED",
    [82] = "FENCED_INSTANCE_ID",
    [83] = "ELIGIBLE_LEADERS_NOT_AVAILABLE",
    [84] = "ELECTION_NOT_NEEDED",
    [85] = "NO_REASSIGNMENT_IN_PROGRESS",
    [86] = "GROUP_SUBSCRIBED_TO_TOPIC",
    [87] = "INVALID_RECORD",
    [88] = "UNSTABLE_OFFSET_COMMIT",
    [89] = "THROTTLING_QUOTA_EXCEEDED",
    [90] = "PRODUCER_FENCED",
    [91] = "RESOURCE_NOT_FOUND",
    [92] = "DUPLICATE_RESOURCE",
    [93] = "UNACCEPTABLE_CREDENTIAL",
    [94] = "INCONSISTENT_VOTER_SET",
    [95] = "INVALID_UPDATE_VERSION",
    [96] = "FEATURE_UPDATE_FAILED",
    [97] = "PRINCIPAL_DESERIALIZATION_FAILURE",
    [98] = "SNAPSHOT_NOT_FOUND",
    [99] = "POSITION_OUT_OF_RANGE",
    [100] = "UNKNOWN_TOPIC_ID",
    [101] = "DUPLICATE_BROKER_REGISTRATION",
    [102] = "BROKER_ID_NOT_REGISTERED",
    [103] = "INCONSISTENT_TOPIC_ID",
    [104] = "INCONSISTENT_CLUSTER_ID",
    [105] = "TRANSACTIONAL_ID_NOT_FOUND",
    [106] = "FETCH_SESSION_TOPIC_ID_ERROR",
    [107] = "INELIGIBLE_REPLICA",
    [108] = "NEW_LEADER_ELECTED",
    [109] = "OFFSET_MOVED_TO_TIERED_STORAGE",
    [110] = "FENCED_MEMBER_EPOCH",
    [111] = "UNRELEASED_INSTANCE_ID",
    [112] = "UNSUPPORTED_ASSIGNOR",
    [113] = "STALE_MEMBER_EPOCH",
    [114] = "MISMATCHED_ENDPOINT_TYPE",
    [115] = "UNSUPPORTED_ENDPOINT_TYPE",
    [116] = "UNKNOWN_CONTROLLER_ID",
    [117] = "UNKNOWN_SUBSCRIPTION_ID",
    [118] = "TELEMETRY_TOO_LARGE",
    [119] = "INVALID_REGISTRATION",
    [120] = "TRANSACTION_ABORTABLE",
    [121] = "INVALID_RECORD_STATE",
    [122] = "SHARE_SESSION_NOT_FOUND",
    [123] = "INVALID_SHARE_SESSION_EPOCH",
    [124] = "FENCED_STATE_EPOCH",
    [125] = "INVALID_VOTER_KEY",
    [126] = "DUPLICATE_VOTER",
    [127] = "VOTER_NOT_FOUND",
    [128] = "INVALID_REGULAR_EXPRESSION",
    [129] = "REBOOTSTRAP_REQUIRED",
    [130] = "STREAMS_INVALID_TOPOLOGY",
    [131] = "STREAMS_INVALID_TOPOLOGY_EPOCH",
    [132] = "STREAMS_TOPOLOGY_FENCED",
    [133] = "SHARE_SESSION_LIMIT_REACHED",
};

const char *weir_kproto_err_name(int16_t code) {
    if (code == -1)
        return "UNKNOWN_SERVER_ERROR";
    if (code >= 0 && (size_t)code < sizeof KERR_NAMES / sizeof *KERR_NAMES && KERR_NAMES[code])
        return KERR_NAMES[code];
    return "UNKNOWN";
}
