/* libFuzzer target: the record formats of the Kafka connector (connectors/kafka/kformat.h) on
 * bytes a Kafka producer chose (the source's JSON and string values and keys) and on msgpack
 * values a job built (the sink's JSON and raw/string serialisation).
 *
 * Properties checked on every input (besides ASan/UBSan/LeakSanitizer):
 * - JSON -> msgpack either succeeds with exactly one msgpack object (msgpack-c reads it back,
 *   consuming every byte), or fails with WEIR_EINVAL, one non-empty line, and nothing packed;
 * - round trip: an accepted document's msgpack converts to JSON (always: JSON -> msgpack makes
 *   only str keys, UTF-8 strings and finite reals), that JSON converts to the same msgpack bytes
 *   again, and to the same JSON text again (a fixed point after one step);
 * - the JSON key of the same input is the same msgpack bytes as the value;
 * - string format: accepted iff weir__kformat_utf8_check finds no bad byte (checked against a
 *   decoder written here), and then it is a msgpack str of the input bytes;
 * - msgpack -> JSON of the raw input (as a record value): when accepted, msgpack-c also reads
 *   the input as exactly one object, and the JSON text reads back (JSON -> msgpack succeeds);
 *   when refused, one non-empty line; raw/string formats accept exactly str, bin and nil values.
 * Seeds: JSON documents (nested, numbers at the 64-bit limits, escapes, surrogate pairs) and
 * msgpack values packed with msgpack-c.
 *
 * Owns one weir_kformat_buf_t per call (freed); no global state. Threading: libFuzzer's thread. */
#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "connectors/kafka/kformat.h"
#include "fuzz_util.h"

static void check_line(const char *err) {
    WEIR_FUZZ_CHECK(err[0] != 0, "refusal without a message");
    WEIR_FUZZ_CHECK(strchr(err, '\n') == NULL, "message spans lines: %s", err);
}

/* msgpack-c reads @p data as exactly one object of @p len bytes. */
static bool msgpack_one_object(const void *data, size_t len) {
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    msgpack_unpack_return r = msgpack_unpack_next(&u, data, len, &off);
    msgpack_unpacked_destroy(&u);
    return r == MSGPACK_UNPACK_SUCCESS && off == len;
}

/* Strict UTF-8 written independently: decodes code points and checks their ranges. */
static bool utf8_ok(const uint8_t *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint32_t c = p[i], cp;
        size_t k;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            k = 2;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            k = 3;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            k = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + k > n)
            return false;
        for (size_t j = 1; j < k; j++) {
            if ((p[i + j] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + j] & 0x3f);
        }
        static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[k] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k;
    }
    return true;
}

static void seed_msgpack(void) {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    msgpack_pack_str(&pk, 1);
    msgpack_pack_str_body(&pk, "a", 1);
    msgpack_pack_array(&pk, 5);
    msgpack_pack_uint64(&pk, UINT64_MAX);
    msgpack_pack_int64(&pk, INT64_MIN);
    msgpack_pack_double(&pk, 0.1);
    msgpack_pack_float(&pk, 2.5f);
    msgpack_pack_nil(&pk);
    msgpack_pack_bin(&pk, 1);
    msgpack_pack_bin_body(&pk, "b", 1);
    msgpack_pack_bin(&pk, 2);
    msgpack_pack_bin_body(&pk, "\xff\x01", 2);
    msgpack_pack_str(&pk, 1);
    msgpack_pack_str_body(&pk, "c", 1);
    msgpack_pack_ext(&pk, 3, 1);
    msgpack_pack_ext_body(&pk, "xyz", 3);
    weir_fuzz_seed("msgpack-map", sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    static const char *const docs[] = {
        "{\"a\":[1,-2,3.5,true,false,null,\"x\"],\"b\":{\"c\":\"\\u00e9\\ud83d\\ude00\"}}",
        "[18446744073709551615,18446744073709551616,-9223372036854775808,-9223372036854775809]",
        "[0.1,-0.0,1e308,4.9e-324,1E+2,2.5e-3,123456789012345678901234567890]",
        "\"esc \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u0000 \\u001f\"",
        " { \"k\" : { \"k\" : [ [ ] , { } ] } , \"k\" : \"dup\" } ",
        "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"",
        "true",
        "{\"a\":1,}",
    };
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++)
        weir_fuzz_seedf(docs[i], strlen(docs[i]), "json-%zu", i);
    char deep[80]; /* the deepest nesting read (32 levels) and one more */
    for (int levels = 32; levels <= 33; levels++) {
        memset(deep, '[', (size_t)levels);
        deep[levels] = '1';
        memset(deep + levels + 1, ']', (size_t)levels);
        weir_fuzz_seedf(deep, 2 * (size_t)levels + 1, "json-nested-%d", levels);
    }
    seed_msgpack();
    return 0;
}

/* JSON -> msgpack (+ the round-trip properties). */
static void fuzz_json(const uint8_t *data, size_t size) {
    weir_kformat_buf_t buf = {0}, buf2 = {0};
    msgpack_sbuffer m1, m2;
    msgpack_packer pk;
    char err[512] = "";
    msgpack_sbuffer_init(&m1);
    msgpack_packer_init(&pk, &m1, msgpack_sbuffer_write);
    int rc = weir__kformat_to_msgpack(WEIR_KFORMAT_JSON, data, size, &pk, &buf, err, sizeof(err));
    const void *key;
    size_t key_len;
    char kerr[512] = "";
    int krc =
        weir__kformat_key(WEIR_KFORMAT_JSON, data, size, &buf2, &key, &key_len, kerr, sizeof(kerr));
    WEIR_FUZZ_CHECK(rc == krc, "value rc %d, key rc %d", rc, krc);
    if (rc != 0) {
        WEIR_FUZZ_CHECK(rc == WEIR_EINVAL, "rc %d", rc);
        check_line(err);
        WEIR_FUZZ_CHECK(m1.size == 0, "%zu bytes packed before the error '%s'", m1.size, err);
        goto out;
    }
    WEIR_FUZZ_CHECK(msgpack_one_object(m1.data, m1.size), "not one msgpack object");
    WEIR_FUZZ_CHECK(key_len == m1.size && memcmp(key, m1.data, m1.size) == 0,
                    "the key differs from the value");
    const void *j1;
    size_t j1_len;
    rc = weir__kformat_from_msgpack(WEIR_KFORMAT_JSON, m1.data, m1.size, &buf, &j1, &j1_len, err,
                                    sizeof(err));
    WEIR_FUZZ_CHECK(rc == 0, "msgpack of a JSON document does not convert back: %s", err);
    WEIR_FUZZ_CHECK(j1 != NULL || m1.size == 1, "a tombstone from a non-null document");
    if (!j1) { /* null -> nil -> tombstone */
        WEIR_FUZZ_CHECK((uint8_t)m1.data[0] == 0xc0, "NULL out for a value that is not nil");
        goto out;
    }
    char *text1 = malloc(j1_len ? j1_len : 1);
    WEIR_FUZZ_CHECK(text1 != NULL, "out of memory");
    memcpy(text1, j1, j1_len);
    msgpack_sbuffer_init(&m2);
    msgpack_packer_init(&pk, &m2, msgpack_sbuffer_write);
    rc = weir__kformat_to_msgpack(WEIR_KFORMAT_JSON, text1, j1_len, &pk, &buf, err, sizeof(err));
    WEIR_FUZZ_CHECK(rc == 0, "JSON written from msgpack does not read back: %s: %.*s", err,
                    (int)j1_len, text1);
    WEIR_FUZZ_CHECK(m2.size == m1.size && memcmp(m1.data, m2.data, m1.size) == 0,
                    "msgpack -> JSON -> msgpack changed the value: %.*s", (int)j1_len, text1);
    const void *j2;
    size_t j2_len;
    rc = weir__kformat_from_msgpack(WEIR_KFORMAT_JSON, m2.data, m2.size, &buf, &j2, &j2_len, err,
                                    sizeof(err));
    WEIR_FUZZ_CHECK(rc == 0 && j2_len == j1_len && memcmp(j2, text1, j1_len) == 0,
                    "JSON text not a fixed point: %.*s", (int)j1_len, text1);
    free(text1);
    msgpack_sbuffer_destroy(&m2);
out:
    msgpack_sbuffer_destroy(&m1);
    weir__kformat_buf_free(&buf);
    weir__kformat_buf_free(&buf2);
}

/* The string format against the independent UTF-8 decoder. */
static void fuzz_string(const uint8_t *data, size_t size) {
    weir_kformat_buf_t buf = {0};
    msgpack_sbuffer sb;
    msgpack_packer pk;
    char err[512] = "";
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    bool ok = utf8_ok(data, size);
    WEIR_FUZZ_CHECK((weir__kformat_utf8_check(data, size) == size) == ok, "UTF-8 check disagrees");
    int rc = weir__kformat_to_msgpack(WEIR_KFORMAT_STRING, data, size, &pk, &buf, err, sizeof(err));
    WEIR_FUZZ_CHECK((rc == 0) == ok, "string format rc %d for %s input", rc,
                    ok ? "UTF-8" : "non-UTF-8");
    if (rc == 0) {
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t off = 0;
        WEIR_FUZZ_CHECK(msgpack_unpack_next(&u, sb.data, sb.size, &off) == MSGPACK_UNPACK_SUCCESS &&
                            u.data.type == MSGPACK_OBJECT_STR && u.data.via.str.size == size &&
                            (size == 0 || memcmp(u.data.via.str.ptr, data, size) == 0),
                        "string format changed the bytes");
        msgpack_unpacked_destroy(&u);
    } else {
        check_line(err);
        WEIR_FUZZ_CHECK(sb.size == 0, "packed before the error");
    }
    msgpack_sbuffer_destroy(&sb);
    weir__kformat_buf_free(&buf);
}

/* The input as a msgpack record value, to Kafka bytes in every format. */
static void fuzz_msgpack(const uint8_t *data, size_t size) {
    weir_kformat_buf_t buf = {0};
    char err[512] = "";
    const void *out;
    size_t out_len;
    /* msgpack-c is asked only about accepted inputs: it allocates what a header claims before
     * reading the elements (a map32 of 2^32 entries), which the converters refuse first */
    int rc = weir__kformat_from_msgpack(WEIR_KFORMAT_JSON, data, size, &buf, &out, &out_len, err,
                                        sizeof(err));
    if (rc == 0) {
        WEIR_FUZZ_CHECK(msgpack_one_object(data, size),
                        "accepted what msgpack-c does not read as one object");
        if (out) {
            msgpack_sbuffer sb;
            msgpack_packer pk;
            msgpack_sbuffer_init(&sb);
            msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
            weir_kformat_buf_t b2 = {0};
            char e2[512] = "";
            int rc2 =
                weir__kformat_to_msgpack(WEIR_KFORMAT_JSON, out, out_len, &pk, &b2, e2, sizeof(e2));
            WEIR_FUZZ_CHECK(rc2 == 0, "written JSON does not read back: %s: %.*s", e2, (int)out_len,
                            (const char *)out);
            msgpack_sbuffer_destroy(&sb);
            weir__kformat_buf_free(&b2);
        }
    } else {
        WEIR_FUZZ_CHECK(rc == WEIR_EINVAL, "rc %d", rc);
        check_line(err);
    }
    uint8_t t = size ? data[0] : 0;
    bool bytes = size && (t == 0xc0 || (t >= 0xa0 && t <= 0xbf) || (t >= 0xd9 && t <= 0xdb) ||
                          (t >= 0xc4 && t <= 0xc6));
    rc = weir__kformat_from_msgpack(WEIR_KFORMAT_RAW, data, size, &buf, &out, &out_len, err,
                                    sizeof(err));
    WEIR_FUZZ_CHECK(rc != 0 || (bytes && msgpack_one_object(data, size)),
                    "raw accepted a value that is not str/bin/nil");
    if (rc == 0 && out)
        WEIR_FUZZ_CHECK((const uint8_t *)out > data &&
                            (const uint8_t *)out + out_len == data + size,
                        "raw bytes are not the value's body");
    if (rc)
        check_line(err);
    rc = weir__kformat_from_msgpack(WEIR_KFORMAT_STRING, data, size, &buf, &out, &out_len, err,
                                    sizeof(err));
    if (rc)
        check_line(err);
    weir__kformat_buf_free(&buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_json(data, size);
    fuzz_string(data, size);
    fuzz_msgpack(data, size);
    return 0;
}
