/* Record formats of the Kafka connector (kformat.h; docs/kafka.md, "Formats"): UTF-8 checking,
 * JSON -> msgpack (source values and keys) and msgpack -> JSON (sink values).
 *
 * JSON -> msgpack runs in two passes over the input, so that nothing is packed unless the whole
 * document is valid and no tree is built: pass 1 checks the document (RFC 8259, strict: no
 * comments, no trailing commas, no leading zeros, strings UTF-8, \u escapes with paired
 * surrogates, nesting at most WEIR_KFORMAT_MAX_DEPTH) and appends to the scratch, in document
 * order, the element count of every array and object and the decoded byte length of every
 * string; pass 2 walks the same document again and packs, taking the msgpack headers' sizes from
 * that list. Numbers: an integer is a msgpack int (negative) or uint when it fits 64 bits, any
 * other number (a fraction, an exponent, or an integer beyond 64 bits) a float64; a number whose
 * magnitude overflows a double (1e999) is an error. Duplicate object names are kept, in order.
 *
 * msgpack -> JSON walks the msgpack bytes directly (no unpacking into a zone): nil, booleans,
 * integers, floats (the shortest text that reads back as the same value, always with a '.' or an
 * exponent so it reads back as a real), str (UTF-8, escaped per RFC 8259), bin (only when UTF-8),
 * arrays, and maps whose keys are str (or UTF-8 bin). ext types, NaN and infinities, other map
 * keys, truncated or trailing bytes are errors naming the problem.
 *
 * Memory: the caller's weir_kformat_buf_t, grown to the largest record and reused; nothing else.
 * Threading: pure functions; a buffer belongs to one thread. */
#include "connectors/kafka/kformat.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"

const char *const weir_kformat_names[] = {"raw", "string", "json", NULL};

void weir__kformat_buf_free(weir_kformat_buf_t *b) {
    free(b->data);
    free(b->counts);
    memset(b, 0, sizeof(*b));
}

static int buf_put(weir_kformat_buf_t *b, const void *data, size_t n) {
    if (b->len + n > b->cap && weir_array_grow((void **)&b->data, &b->cap, b->len + n, 1, 256) != 0)
        return WEIR_ENOMEM;
    if (n)
        memcpy(b->data + b->len, data, n);
    b->len += n;
    return 0;
}

static int buf_putc(weir_kformat_buf_t *b, char c) {
    return buf_put(b, &c, 1);
}

/* msgpack_packer write callback into a weir_kformat_buf_t. */
static int buf_msgpack_write(void *data, const char *bytes, size_t len) {
    return buf_put(data, bytes, len) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------------------------------ */
/* UTF-8                                                                                      */
/* ------------------------------------------------------------------------------------------ */

/* Length of the well-formed UTF-8 sequence at @p p (at most @p n bytes available), 0 when it is
 * not one (RFC 3629 table 3-7). */
static size_t utf8_seq(const uint8_t *p, size_t n) {
    uint8_t c = p[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return n >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (n < 3 || (p[2] & 0xc0) != 0x80)
            return 0;
        uint8_t lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
        return p[1] >= lo && p[1] <= hi ? 3 : 0;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (n < 4 || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80)
            return 0;
        uint8_t lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
        return p[1] >= lo && p[1] <= hi ? 4 : 0;
    }
    return 0;
}

size_t weir__kformat_utf8_check(const void *data, size_t len) {
    const uint8_t *p = data;
    size_t i = 0;
    while (i < len) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = utf8_seq(p + i, len - i);
        if (!k)
            return i;
        i += k;
    }
    return len;
}

static size_t utf8_encode(uint32_t cp, char out[4]) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* ------------------------------------------------------------------------------------------ */
/* JSON -> msgpack                                                                            */
/* ------------------------------------------------------------------------------------------ */

typedef struct jreader {
    const uint8_t *p;
    size_t len, pos;
    msgpack_packer *pk;        /* NULL in pass 1 */
    weir_kformat_buf_t *sizes; /* counts: container sizes and string lengths, document order */
    size_t n_sizes;            /* pass 1: appended so far; pass 2: consumed so far */
    int rc;                    /* first error (pass 1), or a packer failure (pass 2) */
    char *errstr;
    size_t errlen;
} jreader_t;

/* Records the first error at the current position: "JSON error at line L column C: ...". */
static int jerr(jreader_t *r, const char *what) {
    if (r->rc)
        return r->rc;
    unsigned line = 1, col = 1;
    for (size_t i = 0; i < r->pos && i < r->len; i++) {
        if (r->p[i] == '\n') {
            line++;
            col = 1;
        } else if ((r->p[i] & 0xc0) != 0x80) { /* count characters, not UTF-8 continuations */
            col++;
        }
    }
    char near[16] = "end of input";
    if (r->pos < r->len) {
        uint8_t c = r->p[r->pos];
        if (c >= 0x21 && c < 0x7f)
            snprintf(near, sizeof(near), "'%c'", c);
        else
            snprintf(near, sizeof(near), "byte 0x%02x", c);
    }
    r->rc = weir_errf(r->errstr, r->errlen, WEIR_EINVAL,
                      "JSON error at line %u column %u (byte %zu, at %s): %s", line, col, r->pos,
                      near, what);
    return r->rc;
}

/* Pass 1: appends one size; returns its index (or SIZE_MAX after an error). */
static size_t size_push(jreader_t *r, uint32_t v) {
    weir_kformat_buf_t *b = r->sizes;
    if (r->n_sizes + 1 > b->counts_cap &&
        weir_array_grow((void **)&b->counts, &b->counts_cap, r->n_sizes + 1, sizeof(uint32_t),
                        64) != 0) {
        r->rc = weir_errf(r->errstr, r->errlen, WEIR_ENOMEM, "out of memory reading JSON");
        return SIZE_MAX;
    }
    b->counts[r->n_sizes] = v;
    return r->n_sizes++;
}

static uint32_t size_pop(jreader_t *r) {
    return r->sizes->counts[r->n_sizes++];
}

static void skip_ws(jreader_t *r) {
    while (r->pos < r->len) {
        uint8_t c = r->p[r->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            return;
        r->pos++;
    }
}

static void pk_check(jreader_t *r, int prc) {
    if (prc != 0 && !r->rc)
        r->rc = weir_errf(r->errstr, r->errlen, WEIR_ENOMEM, "out of memory packing msgpack");
}

static int hex4(const uint8_t *p, uint32_t *out) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        uint8_t c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* A string at r->pos (on its '"'). Pass 1 checks it and records its decoded length; pass 2
 * packs it as a msgpack str. @returns 0 or the error. */
static int read_string(jreader_t *r) {
    size_t decoded = 0;
    bool emit = r->pk != NULL;
    if (emit)
        pk_check(r, msgpack_pack_str(r->pk, size_pop(r)));
    r->pos++; /* the opening quote */
    for (;;) {
        size_t run = r->pos;
        while (r->pos < r->len) { /* a run of bytes copied as they are */
            uint8_t c = r->p[r->pos];
            if (c == '"' || c == '\\' || c < 0x20)
                break;
            if (c < 0x80) {
                r->pos++;
                continue;
            }
            size_t k = utf8_seq(r->p + r->pos, r->len - r->pos);
            if (!k)
                return jerr(r, "string is not UTF-8");
            r->pos += k;
        }
        decoded += r->pos - run;
        if (emit && r->pos > run)
            pk_check(r, msgpack_pack_str_body(r->pk, r->p + run, r->pos - run));
        if (r->pos >= r->len)
            return jerr(r, "unterminated string");
        uint8_t c = r->p[r->pos];
        if (c == '"')
            break;
        if (c < 0x20)
            return jerr(r, "control character in a string: write it as an escape (\\n, \\u0001)");
        /* an escape */
        if (r->pos + 1 >= r->len)
            return jerr(r, "unterminated string");
        uint8_t e = r->p[r->pos + 1];
        char out[4];
        size_t n = 1;
        switch (e) {
        case '"':
        case '\\':
        case '/':
            out[0] = (char)e;
            break;
        case 'b':
            out[0] = '\b';
            break;
        case 'f':
            out[0] = '\f';
            break;
        case 'n':
            out[0] = '\n';
            break;
        case 'r':
            out[0] = '\r';
            break;
        case 't':
            out[0] = '\t';
            break;
        case 'u': {
            uint32_t cp;
            if (r->pos + 6 > r->len || hex4(r->p + r->pos + 2, &cp) != 0)
                return jerr(r, "\\u must be followed by 4 hex digits");
            if (cp >= 0xdc00 && cp <= 0xdfff)
                return jerr(r, "lone low surrogate in a \\u escape");
            if (cp >= 0xd800 && cp <= 0xdbff) {
                uint32_t lo;
                if (r->pos + 12 > r->len || r->p[r->pos + 6] != '\\' || r->p[r->pos + 7] != 'u' ||
                    hex4(r->p + r->pos + 8, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff)
                    return jerr(r, "high surrogate not followed by a \\u low surrogate");
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                r->pos += 6;
            }
            n = utf8_encode(cp, out);
            r->pos += 4;
            break;
        }
        default:
            return jerr(r, "invalid escape: use \\\" \\\\ \\/ \\b \\f \\n \\r \\t or \\uXXXX");
        }
        r->pos += 2;
        decoded += n;
        if (emit)
            pk_check(r, msgpack_pack_str_body(r->pk, out, n));
    }
    r->pos++; /* the closing quote */
    if (!emit) {
        if (decoded > UINT32_MAX)
            return jerr(r, "string longer than 4 GiB");
        size_push(r, (uint32_t)decoded);
    }
    return r->rc;
}

static bool is_digit(uint8_t c) {
    return c >= '0' && c <= '9';
}

static int read_number(jreader_t *r) {
    size_t start = r->pos;
    bool neg = false, integral = true;
    if (r->p[r->pos] == '-') {
        neg = true;
        r->pos++;
    }
    if (r->pos >= r->len || !is_digit(r->p[r->pos]))
        return jerr(r, "a number needs a digit after '-'");
    if (r->p[r->pos] == '0') {
        r->pos++;
        if (r->pos < r->len && is_digit(r->p[r->pos]))
            return jerr(r, "a number cannot have leading zeros");
    } else {
        while (r->pos < r->len && is_digit(r->p[r->pos]))
            r->pos++;
    }
    if (r->pos < r->len && r->p[r->pos] == '.') {
        integral = false;
        r->pos++;
        if (r->pos >= r->len || !is_digit(r->p[r->pos]))
            return jerr(r, "a number needs a digit after '.'");
        while (r->pos < r->len && is_digit(r->p[r->pos]))
            r->pos++;
    }
    if (r->pos < r->len && (r->p[r->pos] == 'e' || r->p[r->pos] == 'E')) {
        integral = false;
        r->pos++;
        if (r->pos < r->len && (r->p[r->pos] == '+' || r->p[r->pos] == '-'))
            r->pos++;
        if (r->pos >= r->len || !is_digit(r->p[r->pos]))
            return jerr(r, "a number needs a digit in its exponent");
        while (r->pos < r->len && is_digit(r->p[r->pos]))
            r->pos++;
    }
    if (integral) { /* exact in 64 bits? */
        uint64_t v = 0;
        bool fits = true;
        for (size_t i = start + (neg ? 1 : 0); i < r->pos && fits; i++) {
            unsigned d = (unsigned)(r->p[i] - '0');
            if (v > (UINT64_MAX - d) / 10)
                fits = false;
            else
                v = v * 10 + d;
        }
        if (fits && neg && v <= (uint64_t)INT64_MAX + 1) {
            if (r->pk) /* -(v) without overflow: v - 1 fits int64 */
                pk_check(r, msgpack_pack_int64(r->pk, v ? -(int64_t)(v - 1) - 1 : 0));
            return r->rc;
        }
        if (fits && !neg) {
            if (r->pk)
                pk_check(r, msgpack_pack_uint64(r->pk, v));
            return r->rc;
        }
    }
    /* a real: strtod on a NUL-terminated copy */
    size_t n = r->pos - start;
    char small[128];
    char *text = n < sizeof(small) ? small : malloc(n + 1);
    if (!text)
        return r->rc = weir_errf(r->errstr, r->errlen, WEIR_ENOMEM, "out of memory reading JSON");
    memcpy(text, r->p + start, n);
    text[n] = 0;
    errno = 0;
    double d = strtod(text, NULL);
    if (text != small)
        free(text);
    if (isinf(d)) {
        r->pos = start;
        return jerr(r, "number out of the range of a 64-bit float");
    }
    if (r->pk)
        pk_check(r, msgpack_pack_double(r->pk, d));
    return r->rc;
}

static int read_literal(jreader_t *r, const char *word) {
    size_t n = strlen(word);
    if (r->len - r->pos < n || memcmp(r->p + r->pos, word, n) != 0)
        return jerr(r, "expected a value (object, array, string, number, true, false, null)");
    r->pos += n;
    if (r->pk) {
        if (word[0] == 't')
            pk_check(r, msgpack_pack_true(r->pk));
        else if (word[0] == 'f')
            pk_check(r, msgpack_pack_false(r->pk));
        else
            pk_check(r, msgpack_pack_nil(r->pk));
    }
    return r->rc;
}

static int read_value(jreader_t *r, int depth);

/* An array or object at r->pos (on its '[' or '{'). */
static int read_container(jreader_t *r, int depth) {
    bool obj = r->p[r->pos] == '{';
    uint8_t close = obj ? '}' : ']';
    if (depth >= WEIR_KFORMAT_MAX_DEPTH)
        return jerr(r, "nesting deeper than 32 arrays/objects (the limit of msgpack-c, which reads "
                       "weir's values)");
    size_t slot = 0;
    if (r->pk) {
        uint32_t n = size_pop(r);
        pk_check(r, obj ? msgpack_pack_map(r->pk, n) : msgpack_pack_array(r->pk, n));
    } else if ((slot = size_push(r, 0)) == SIZE_MAX) {
        return r->rc;
    }
    r->pos++;
    uint64_t count = 0;
    skip_ws(r);
    if (r->pos < r->len && r->p[r->pos] == close) {
        r->pos++;
        return r->rc;
    }
    for (;;) {
        skip_ws(r);
        if (obj) {
            if (r->pos >= r->len || r->p[r->pos] != '"')
                return jerr(r, "expected a member name (a string)");
            if (read_string(r) != 0)
                return r->rc;
            skip_ws(r);
            if (r->pos >= r->len || r->p[r->pos] != ':')
                return jerr(r, "expected ':' after a member name");
            r->pos++;
        }
        if (read_value(r, depth + 1) != 0)
            return r->rc;
        count++;
        skip_ws(r);
        if (r->pos >= r->len)
            return jerr(r, obj ? "unterminated object" : "unterminated array");
        if (r->p[r->pos] == close) {
            r->pos++;
            break;
        }
        if (r->p[r->pos] != ',')
            return jerr(r, obj ? "expected ',' or '}'" : "expected ',' or ']'");
        r->pos++;
    }
    if (!r->pk) {
        if (count > UINT32_MAX)
            return jerr(r, "more than 2^32-1 elements");
        r->sizes->counts[slot] = (uint32_t)count;
    }
    return r->rc;
}

static int read_value(jreader_t *r, int depth) {
    skip_ws(r);
    if (r->pos >= r->len)
        return jerr(r, "unexpected end of input: expected a value");
    uint8_t c = r->p[r->pos];
    switch (c) {
    case '{':
    case '[':
        return read_container(r, depth);
    case '"':
        return read_string(r);
    case 't':
        return read_literal(r, "true");
    case 'f':
        return read_literal(r, "false");
    case 'n':
        return read_literal(r, "null");
    default:
        if (c == '-' || is_digit(c))
            return read_number(r);
        return jerr(r, "expected a value (object, array, string, number, true, false, null)");
    }
}

/* One pass over a whole document. */
static int read_document(jreader_t *r) {
    r->pos = 0;
    r->n_sizes = 0;
    if (read_value(r, 0) != 0)
        return r->rc;
    skip_ws(r);
    if (r->pos != r->len)
        return jerr(r, "unexpected data after the JSON document");
    return r->rc;
}

static int json_to_msgpack(const void *data, size_t len, msgpack_packer *pk,
                           weir_kformat_buf_t *scratch, char *errstr, size_t errlen) {
    jreader_t r = {
        .p = data, .len = len, .pk = NULL, .sizes = scratch, .errstr = errstr, .errlen = errlen};
    if (read_document(&r) != 0)
        return r.rc;
    r.pk = pk;
    return read_document(&r);
}

/* ------------------------------------------------------------------------------------------ */
/* Kafka bytes -> weir values and keys                                                        */
/* ------------------------------------------------------------------------------------------ */

static int utf8_or_error(const void *data, size_t len, char *errstr, size_t errlen) {
    size_t bad = weir__kformat_utf8_check(data, len);
    if (bad == len)
        return 0;
    return weir_errf(errstr, errlen, WEIR_EINVAL,
                     "not UTF-8 at byte %zu of %zu (byte 0x%02x): use the raw format for binary "
                     "data",
                     bad, len, ((const uint8_t *)data)[bad]);
}

int weir__kformat_to_msgpack(weir_kformat_t f, const void *data, size_t len, msgpack_packer *pk,
                             weir_kformat_buf_t *scratch, char *errstr, size_t errlen) {
    int prc;
    if (!data)
        prc = msgpack_pack_nil(pk);
    else if (f == WEIR_KFORMAT_RAW)
        prc = msgpack_pack_bin(pk, len) || msgpack_pack_bin_body(pk, data, len);
    else if (f == WEIR_KFORMAT_STRING) {
        int rc = utf8_or_error(data, len, errstr, errlen);
        if (rc)
            return rc;
        prc = msgpack_pack_str(pk, len) || msgpack_pack_str_body(pk, data, len);
    } else {
        return json_to_msgpack(data, len, pk, scratch, errstr, errlen);
    }
    return prc ? weir_errf(errstr, errlen, WEIR_ENOMEM, "out of memory packing msgpack") : 0;
}

int weir__kformat_key(weir_kformat_t f, const void *data, size_t len, weir_kformat_buf_t *buf,
                      const void **out, size_t *out_len, char *errstr, size_t errlen) {
    if (!data) {
        *out = "";
        *out_len = 0;
        return 0;
    }
    if (f == WEIR_KFORMAT_JSON) {
        msgpack_packer pk;
        msgpack_packer_init(&pk, buf, buf_msgpack_write);
        buf->len = 0;
        int rc = json_to_msgpack(data, len, &pk, buf, errstr, errlen);
        if (rc)
            return rc;
        *out = buf->data;
        *out_len = buf->len;
        return 0;
    }
    if (f == WEIR_KFORMAT_STRING) {
        int rc = utf8_or_error(data, len, errstr, errlen);
        if (rc)
            return rc;
    }
    *out = data;
    *out_len = len;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* msgpack -> JSON                                                                            */
/* ------------------------------------------------------------------------------------------ */

typedef struct mreader {
    const uint8_t *p;
    size_t len, pos;
    weir_kformat_buf_t *out;
    char *errstr;
    size_t errlen;
} mreader_t;

static int merr(mreader_t *r, const char *what) {
    return weir_errf(r->errstr, r->errlen, WEIR_EINVAL, "msgpack value at byte %zu: %s", r->pos,
                     what);
}

static int mneed(mreader_t *r, size_t n) {
    return r->len - r->pos >= n ? 0 : merr(r, "truncated msgpack value");
}

static uint64_t be(const uint8_t *p, size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Reads a big-endian unsigned field of @p n bytes. */
static int mread(mreader_t *r, size_t n, uint64_t *v) {
    if (mneed(r, n))
        return WEIR_EINVAL;
    *v = be(r->p + r->pos, n);
    r->pos += n;
    return 0;
}

static int put_text(mreader_t *r, const char *s) {
    return buf_put(r->out, s, strlen(s));
}

/* A double as the shortest "%.{15,16,17}g" text reading back as the same value, with ".0"
 * appended when it would read back as an integer. */
static int put_real(mreader_t *r, double d, bool single) {
    if (isnan(d) || isinf(d))
        return merr(r, "NaN and infinities have no JSON form");
    char text[40];
    for (int prec = single ? 6 : 15; prec <= 17; prec++) {
        snprintf(text, sizeof(text), "%.*g", prec, d);
        double back = strtod(text, NULL);
        if (single ? (float)back == (float)d : back == d)
            break;
    }
    if (!strpbrk(text, ".eE"))
        strcat(text, ".0");
    return put_text(r, text);
}

/* A JSON string of @p n bytes at @p s (UTF-8 checked), escaped per RFC 8259. */
static int put_string(mreader_t *r, const uint8_t *s, size_t n) {
    size_t bad = weir__kformat_utf8_check(s, n);
    if (bad != n) {
        char what[96];
        snprintf(what, sizeof(what), "string is not UTF-8 at byte %zu of %zu", bad, n);
        return merr(r, what);
    }
    int rc = buf_putc(r->out, '"');
    size_t run = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        uint8_t c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        rc = buf_put(r->out, s + run, i - run);
        char esc[8];
        switch (c) {
        case '"':
            strcpy(esc, "\\\"");
            break;
        case '\\':
            strcpy(esc, "\\\\");
            break;
        case '\n':
            strcpy(esc, "\\n");
            break;
        case '\r':
            strcpy(esc, "\\r");
            break;
        case '\t':
            strcpy(esc, "\\t");
            break;
        case '\b':
            strcpy(esc, "\\b");
            break;
        case '\f':
            strcpy(esc, "\\f");
            break;
        default:
            snprintf(esc, sizeof(esc), "\\u%04x", c);
        }
        if (!rc)
            rc = put_text(r, esc);
        run = i + 1;
    }
    if (!rc)
        rc = buf_put(r->out, s + run, n - run);
    if (!rc)
        rc = buf_putc(r->out, '"');
    return rc ? weir_errf(r->errstr, r->errlen, WEIR_ENOMEM, "out of memory writing JSON") : 0;
}

static int mvalue(mreader_t *r, int depth, bool key);

static int mcontainer(mreader_t *r, int depth, uint64_t n, bool map) {
    if (depth >= WEIR_KFORMAT_MAX_DEPTH)
        return merr(r, "nesting deeper than 32 arrays/maps");
    if (n > r->len - r->pos) /* every element takes at least one byte */
        return merr(r, "truncated msgpack value");
    int rc = buf_putc(r->out, map ? '{' : '[');
    for (uint64_t i = 0; i < n && !rc; i++) {
        if (i)
            rc = buf_putc(r->out, ',');
        if (!rc && map) {
            rc = mvalue(r, depth + 1, true);
            if (!rc)
                rc = buf_putc(r->out, ':');
        }
        if (!rc)
            rc = mvalue(r, depth + 1, false);
    }
    if (!rc)
        rc = buf_putc(r->out, map ? '}' : ']');
    return rc;
}

static int mvalue(mreader_t *r, int depth, bool key) {
    uint64_t v;
    if (mneed(r, 1))
        return WEIR_EINVAL;
    uint8_t t = r->p[r->pos++];
    bool str = (t >= 0xa0 && t <= 0xbf) || (t >= 0xd9 && t <= 0xdb);
    bool bin = t >= 0xc4 && t <= 0xc6;
    if (str || bin) {
        if (t >= 0xa0 && t <= 0xbf)
            v = t & 0x1f;
        else if (mread(r, (size_t)1 << (str ? t - 0xd9 : t - 0xc4), &v))
            return WEIR_EINVAL;
        if (mneed(r, v))
            return WEIR_EINVAL;
        const uint8_t *s = r->p + r->pos;
        r->pos += v;
        return put_string(r, s, v);
    }
    if (key)
        return merr(r, "a map key that is not a string has no JSON form");
    char text[32];
    int rc = 0;
    if (t <= 0x7f) {
        snprintf(text, sizeof(text), "%u", t);
    } else if (t >= 0xe0) {
        snprintf(text, sizeof(text), "%d", (int8_t)t);
    } else if (t >= 0x80 && t <= 0x8f) {
        return mcontainer(r, depth, t & 0x0f, true);
    } else if (t >= 0x90 && t <= 0x9f) {
        return mcontainer(r, depth, t & 0x0f, false);
    } else {
        switch (t) {
        case 0xc0:
            strcpy(text, "null");
            break;
        case 0xc2:
            strcpy(text, "false");
            break;
        case 0xc3:
            strcpy(text, "true");
            break;
        case 0xca: {
            if (mread(r, 4, &v))
                return WEIR_EINVAL;
            uint32_t u = (uint32_t)v;
            float f;
            memcpy(&f, &u, sizeof(f));
            return put_real(r, f, true);
        }
        case 0xcb: {
            if (mread(r, 8, &v))
                return WEIR_EINVAL;
            double d;
            memcpy(&d, &v, sizeof(d));
            return put_real(r, d, false);
        }
        case 0xcc:
        case 0xcd:
        case 0xce:
        case 0xcf:
            if (mread(r, (size_t)1 << (t - 0xcc), &v))
                return WEIR_EINVAL;
            snprintf(text, sizeof(text), "%llu", (unsigned long long)v);
            break;
        case 0xd0:
        case 0xd1:
        case 0xd2:
        case 0xd3: {
            size_t n = (size_t)1 << (t - 0xd0);
            if (mread(r, n, &v))
                return WEIR_EINVAL;
            int64_t s = n == 8 ? (int64_t)v : (int64_t)(v << (64 - 8 * n)) >> (64 - 8 * n);
            snprintf(text, sizeof(text), "%lld", (long long)s);
            break;
        }
        case 0xdc:
        case 0xdd:
        case 0xde:
        case 0xdf:
            if (mread(r, (t & 1) ? 4 : 2, &v))
                return WEIR_EINVAL;
            return mcontainer(r, depth, v, t >= 0xde);
        default: /* 0xc1 (never used), ext types */
            r->pos--;
            return merr(r, t == 0xc1 ? "invalid msgpack byte 0xc1"
                                     : "msgpack ext types have no JSON form");
        }
    }
    rc = put_text(r, text);
    return rc ? weir_errf(r->errstr, r->errlen, WEIR_ENOMEM, "out of memory writing JSON") : 0;
}

/* For a str/bin value, its bytes. @returns 1 for str/bin, 0 for nil, 2 for other values,
 * WEIR_EINVAL when truncated. */
static int peek_bytes(mreader_t *r, const uint8_t **s, size_t *n) {
    if (mneed(r, 1))
        return WEIR_EINVAL;
    uint8_t t = r->p[0];
    uint64_t v;
    if (t == 0xc0) {
        r->pos = 1;
        return 0;
    }
    if (t >= 0xa0 && t <= 0xbf) {
        v = t & 0x1f;
        r->pos = 1;
    } else if ((t >= 0xd9 && t <= 0xdb) || (t >= 0xc4 && t <= 0xc6)) {
        r->pos = 1;
        if (mread(r, (size_t)1 << (t >= 0xd9 ? t - 0xd9 : t - 0xc4), &v))
            return WEIR_EINVAL;
    } else {
        return 2;
    }
    if (mneed(r, v))
        return WEIR_EINVAL;
    *s = r->p + r->pos;
    *n = v;
    r->pos += v;
    return 1;
}

int weir__kformat_from_msgpack(weir_kformat_t f, const void *value, size_t value_len,
                               weir_kformat_buf_t *buf, const void **out, size_t *out_len,
                               char *errstr, size_t errlen) {
    mreader_t r = {.p = value, .len = value_len, .out = buf, .errstr = errstr, .errlen = errlen};
    const uint8_t *s = NULL;
    size_t n = 0;
    int kind = peek_bytes(&r, &s, &n);
    if (kind < 0)
        return kind;
    if (kind < 2 && r.pos != r.len)
        return merr(&r, "trailing bytes after the value");
    if (kind == 0) { /* nil: a tombstone */
        *out = NULL;
        *out_len = 0;
        return 0;
    }
    if (kind == 1 && f != WEIR_KFORMAT_JSON) {
        *out = s;
        *out_len = n;
        return 0;
    }
    if (f == WEIR_KFORMAT_RAW)
        return weir_errf(errstr, errlen, WEIR_EINVAL,
                         "the raw format writes msgpack str or bin values only (got msgpack byte "
                         "0x%02x): use value.format json or string",
                         ((const uint8_t *)value)[0]);
    r.pos = 0;
    buf->len = 0;
    int rc = mvalue(&r, 0, false);
    if (rc)
        return rc;
    if (r.pos != r.len)
        return merr(&r, "trailing bytes after the value");
    *out = buf->data;
    *out_len = buf->len;
    return 0;
}
