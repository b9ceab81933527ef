/* Kafka record bytes <-> weir record values (docs/kafka.md, "Formats").
 * Deserialisation (source): raw -> msgpack bin, string -> msgpack str (must be UTF-8), json ->
 * the JSON document as msgpack (objects -> maps, arrays, strings, integers, reals, true/false,
 * null). A NULL Kafka value (a tombstone) is nil in every format. Serialisation (sink): raw ->
 * the bytes of a msgpack str/bin (anything else is an error), string -> str/bin bytes as is,
 * other values as JSON text, json -> the msgpack value as JSON text (a bin becomes a JSON string
 * when it is UTF-8, else it is an error); nil -> NULL (a tombstone) in every format.
 * Pure functions; one weir_kformat_buf_t per subtask thread. */
#ifndef WEIR_CONNECTORS_KAFKA_KFORMAT_H
#define WEIR_CONNECTORS_KAFKA_KFORMAT_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum weir_kformat {
    WEIR_KFORMAT_RAW,
    WEIR_KFORMAT_STRING,
    WEIR_KFORMAT_JSON
} weir_kformat_t;

/** Names as in options: "raw", "string", "json" (NULL-terminated, index = weir_kformat_t). */
extern const char *const weir_kformat_names[];

/** Deepest nesting of JSON arrays/objects (and of msgpack arrays/maps written as JSON): the
 * limit of msgpack-c's unpacker (MSGPACK_EMBED_STACK_SIZE), so that weir_unpack() can read every
 * value the source makes. */
#define WEIR_KFORMAT_MAX_DEPTH 32

/** A reusable buffer (no allocation per record once warmed up): output bytes, and the scratch
 * the JSON reader keeps between its two passes (sizes of containers and strings). Zero it to
 * initialise; it grows to the largest record seen and is freed by weir__kformat_buf_free. */
typedef struct weir_kformat_buf {
    char *data;
    size_t len, cap;
    uint32_t *counts;
    size_t counts_cap; /* elements */
} weir_kformat_buf_t;
void weir__kformat_buf_free(weir_kformat_buf_t *b);

/** Index of the first byte of @p data that is not part of a well-formed UTF-8 sequence
 * (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF), or @p len when all of
 * it is UTF-8. */
size_t weir__kformat_utf8_check(const void *data, size_t len);

/** Kafka bytes -> one msgpack object packed into @p pk (source values); @p data NULL (a
 * tombstone) packs nil. @p scratch: the JSON reader's scratch. Nothing is packed on error.
 * @returns 0, or WEIR_EINVAL with a one-line reason (not UTF-8 at byte N; JSON error at line L
 * column C ...), WEIR_ENOMEM. */
int weir__kformat_to_msgpack(weir_kformat_t f, const void *data, size_t len, msgpack_packer *pk,
                             weir_kformat_buf_t *scratch, char *errstr, size_t errlen);

/** Kafka bytes -> record key bytes (source keys): raw and string as is (string checked UTF-8),
 * json as its msgpack encoding (in @p buf). A NULL Kafka key is the empty key. Sets *out and
 * *out_len to point into @p data or into @p buf. @returns 0, WEIR_EINVAL or WEIR_ENOMEM. */
int weir__kformat_key(weir_kformat_t f, const void *data, size_t len, weir_kformat_buf_t *buf,
                      const void **out, size_t *out_len, char *errstr, size_t errlen);

/** A msgpack value (record value) -> Kafka bytes. Sets *out and *out_len to point into @p value
 * (raw, string of str/bin) or into @p buf; a nil value sets *out = NULL, *out_len = 0 (produce a
 * tombstone). @returns 0, or WEIR_EINVAL with a reason, WEIR_ENOMEM. */
int weir__kformat_from_msgpack(weir_kformat_t f, const void *value, size_t value_len,
                               weir_kformat_buf_t *buf, const void **out, size_t *out_len,
                               char *errstr, size_t errlen);

#endif
