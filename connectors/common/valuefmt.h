/* Value formatting for the file and print sinks: the line text of a record value. A msgpack str
 * or bin value is its bytes as is; any other value msgpack-c's JSON-like text
 * (msgpack_object_print_buffer, e.g. `[1, "a"]`); an unparsable value "<invalid msgpack>".
 *
 * The str/bin case is inline here (it is per record); the rest is in valuefmt.c.
 * Threading: a weir_value_fmt_t is used by one subtask thread only. */
#ifndef WEIR_CONNECTORS_VALUEFMT_H
#define WEIR_CONNECTORS_VALUEFMT_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Formats record values as line text. Reuses one buffer and one msgpack zone (no allocation
 * per record once warmed up). */
typedef struct weir_value_fmt {
    char *buf;
    size_t cap;
    msgpack_zone *zone;
} weir_value_fmt_t;

int weir__value_fmt_init(weir_value_fmt_t *f);
void weir__value_fmt_destroy(weir_value_fmt_t *f);

/** Text of a value that is not a msgpack str/bin: JSON-like text in f->buf, or
 * "<invalid msgpack>". @returns 0 or WEIR_ENOMEM. Use weir__value_text(). */
int weir__value_text_other(weir_value_fmt_t *f, const void *value, size_t value_len,
                           const char **text, size_t *text_len);

/* Header of a msgpack str or bin: @returns true with its size and payload length. */
static inline bool weir__str_or_bin_header(const uint8_t *p, size_t n, size_t *hdr, size_t *len) {
    if (n == 0)
        return false;
    uint8_t b = p[0];
    if (b >= 0xa0 && b <= 0xbf) {
        *hdr = 1;
        *len = b & 0x1f;
    } else if ((b == 0xd9 || b == 0xc4) && n >= 2) {
        *hdr = 2;
        *len = p[1];
    } else if ((b == 0xda || b == 0xc5) && n >= 3) {
        *hdr = 3;
        *len = ((size_t)p[1] << 8) | p[2];
    } else if ((b == 0xdb || b == 0xc6) && n >= 5) {
        *hdr = 5;
        *len = ((size_t)p[1] << 24) | ((size_t)p[2] << 16) | ((size_t)p[3] << 8) | p[4];
    } else {
        return false;
    }
    return *hdr + *len <= n;
}

/** Text of a value: a msgpack str/bin -> its bytes (pointing into the value); anything else ->
 * JSON-like text (msgpack_object_print_buffer) in f->buf; a value that does not parse ->
 * "<invalid msgpack>". @returns 0 or WEIR_ENOMEM. */
static inline int weir__value_text(weir_value_fmt_t *f, const void *value, size_t value_len,
                                   const char **text, size_t *text_len) {
    size_t hdr, len;
    if (weir__str_or_bin_header(value, value_len, &hdr, &len)) {
        *text = (const char *)value + hdr;
        *text_len = len;
        return 0;
    }
    return weir__value_text_other(f, value, value_len, text, text_len);
}

#endif
