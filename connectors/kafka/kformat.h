/* Kafka record bytes <-> weir record values (docs/kafka.md, "Formats").
 * Deserialisation (source): raw -> msgpack bin, string -> msgpack str (must be UTF-8), json ->
 * the JSON document as msgpack (objects -> maps, arrays, strings, integers, reals, true/false,
 * null). Serialisation (sink): raw -> the bytes of a msgpack str/bin (anything else is an error),
 * string -> str/bin bytes as is, other values as JSON text, json -> the msgpack value as JSON
 * text (a bin becomes a JSON string when it is UTF-8, else it is an error).
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

/** A reusable output buffer (no allocation per record once warmed up). */
typedef struct weir_kformat_buf {
    char *data;
    size_t len, cap;
} weir_kformat_buf_t;
void weir__kformat_buf_free(weir_kformat_buf_t *b);

/** Kafka bytes -> one msgpack object packed into @p pk (source values). @returns 0, or
 * WEIR_EINVAL with a one-line reason (not UTF-8 at byte N; JSON error at line:column ...). */
int weir__kformat_to_msgpack(weir_kformat_t f, const void *data, size_t len, msgpack_packer *pk,
                             char *errstr, size_t errlen);

/** Kafka bytes -> record key bytes (source keys): raw and string as is (string checked UTF-8),
 * json as its msgpack encoding. Result in @p out. @returns 0 or WEIR_EINVAL. */
int weir__kformat_key(weir_kformat_t f, const void *data, size_t len, weir_kformat_buf_t *out,
                      char *errstr, size_t errlen);

/** A msgpack value (record value) -> Kafka bytes. Sets *out and *out_len to point into @p value
 * (raw, or string of a str or bin) or into @p buf. @returns 0, or WEIR_EINVAL with a reason. */
int weir__kformat_from_msgpack(weir_kformat_t f, const void *value, size_t value_len,
                               weir_kformat_buf_t *buf, const void **out, size_t *out_len,
                               char *errstr, size_t errlen);

#endif
