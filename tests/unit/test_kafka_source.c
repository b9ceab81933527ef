/* Unit tests of the Kafka source's pure parts and of the record formats (connectors/kafka/
 * ksource.h, kformat.h), without a broker: UTF-8 checking, JSON -> msgpack (nested documents,
 * integers at and beyond the 64-bit limits, reals, escapes, every error with its position),
 * msgpack -> JSON (reals that read back, escapes, errors), keys, the raw and string formats both
 * ways; the partition -> subtask assignment against Flink's formula with Java's String.hashCode
 * computed here; option validation messages; the checkpoint state (round trip and refusals).
 * Oracles are independent of the code under test: msgpack-c's own packer builds the expected
 * msgpack bytes, expected JSON texts and Java hash codes are written out by hand (hash codes of
 * "hello" and "Hello World" are the well-known Java values). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "connectors/kafka/kafka.h"
#include "connectors/kafka/kformat.h"
#include "connectors/kafka/ksource.h"

/* ---- helpers ------------------------------------------------------------------------------ */

typedef struct mp {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} mp_t;

static void mp_init(mp_t *m) {
    msgpack_sbuffer_init(&m->sb);
    msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
}

static void mp_str(mp_t *m, const char *s) {
    msgpack_pack_str(&m->pk, strlen(s));
    msgpack_pack_str_body(&m->pk, s, strlen(s));
}

static weir_kformat_buf_t g_buf;

/* JSON text -> msgpack with the code under test; returns rc (bytes in *out, freed by caller). */
static int json_mp(const char *json, size_t len, mp_t *out, char *err, size_t errlen) {
    mp_init(out);
    return weir__kformat_to_msgpack(WEIR_KFORMAT_JSON, json, len, &out->pk, &g_buf, err, errlen);
}

static void assert_json_is(const char *json, const mp_t *expect) {
    mp_t got;
    char err[256] = "";
    int rc = json_mp(json, strlen(json), &got, err, sizeof(err));
    if (rc)
        fail_msg("JSON %s: %s", json, err);
    assert_int_equal(got.sb.size, expect->sb.size);
    assert_memory_equal(got.sb.data, expect->sb.data, got.sb.size);
    msgpack_sbuffer_destroy(&got.sb);
}

static void assert_json_error(const char *json, size_t len, const char *want) {
    mp_t got;
    char err[256] = "";
    int rc = json_mp(json, len, &got, err, sizeof(err));
    assert_int_equal(rc, WEIR_EINVAL);
    assert_int_equal(got.sb.size, 0); /* nothing packed on error */
    if (!strstr(err, want))
        fail_msg("JSON %.*s: error '%s' lacks '%s'", (int)len, json, err, want);
    msgpack_sbuffer_destroy(&got.sb);
}

/* msgpack (from msgpack-c) -> JSON with the code under test. */
static void assert_to_json(const mp_t *m, const char *want) {
    const void *out;
    size_t n;
    char err[256] = "";
    int rc = weir__kformat_from_msgpack(WEIR_KFORMAT_JSON, m->sb.data, m->sb.size, &g_buf, &out, &n,
                                        err, sizeof(err));
    if (rc)
        fail_msg("to JSON: %s (want %s)", err, want);
    if (n != strlen(want) || memcmp(out, want, n) != 0)
        fail_msg("to JSON: got '%.*s', want '%s'", (int)n, (const char *)out, want);
}

static void assert_to_json_error(const void *v, size_t len, const char *want) {
    const void *out;
    size_t n;
    char err[256] = "";
    int rc =
        weir__kformat_from_msgpack(WEIR_KFORMAT_JSON, v, len, &g_buf, &out, &n, err, sizeof(err));
    assert_int_equal(rc, WEIR_EINVAL);
    if (!strstr(err, want))
        fail_msg("error '%s' lacks '%s'", err, want);
}

static int teardown_buf(void **state) {
    (void)state;
    weir__kformat_buf_free(&g_buf);
    return 0;
}

/* ---- UTF-8 -------------------------------------------------------------------------------- */

static void test_utf8(void **state) {
    (void)state;
    struct {
        const char *s;
        size_t len, bad;
    } cases[] = {
        {"plain ascii", 11, 11},
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14, 14}, /* 2, 3 and 4 byte forms */
        {"\xef\xbf\xbf\xf4\x8f\xbf\xbf", 7, 7},                /* U+FFFF, U+10FFFF */
        {"ab\xc0\x80", 4, 2},                                  /* overlong NUL */
        {"ab\xc1\xbf", 4, 2},                                  /* overlong */
        {"\xe0\x80\x80", 3, 0},                                /* overlong 3-byte */
        {"\xf0\x80\x80\x80", 4, 0},                            /* overlong 4-byte */
        {"x\xed\xa0\x80", 4, 1},                               /* surrogate U+D800 */
        {"\xf4\x90\x80\x80", 4, 0},                            /* above U+10FFFF */
        {"\xf5\x80\x80\x80", 4, 0},
        {"abc\x80", 4, 3},    /* lone continuation */
        {"ab\xe2\x82", 4, 2}, /* truncated */
        {"\xc3(", 2, 0},      /* bad continuation */
        {"a\0b", 3, 3},       /* NUL is a character */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (weir__kformat_utf8_check(cases[i].s, cases[i].len) != cases[i].bad)
            fail_msg("case %zu: got %zu, want %zu", i,
                     weir__kformat_utf8_check(cases[i].s, cases[i].len), cases[i].bad);
}

/* ---- Kafka bytes -> msgpack ------------------------------------------------------------- */

static void test_raw_string_tombstone(void **state) {
    (void)state;
    char err[256];
    mp_t got, want;
    /* raw: bin of the bytes, whatever they are */
    mp_init(&got);
    assert_int_equal(weir__kformat_to_msgpack(WEIR_KFORMAT_RAW, "\xff\x00z", 3, &got.pk, &g_buf,
                                              err, sizeof(err)),
                     0);
    mp_init(&want);
    msgpack_pack_bin(&want.pk, 3);
    msgpack_pack_bin_body(&want.pk, "\xff\x00z", 3);
    assert_int_equal(got.sb.size, want.sb.size);
    assert_memory_equal(got.sb.data, want.sb.data, want.sb.size);
    msgpack_sbuffer_destroy(&got.sb);
    msgpack_sbuffer_destroy(&want.sb);
    /* string: str when UTF-8 */
    mp_init(&got);
    assert_int_equal(weir__kformat_to_msgpack(WEIR_KFORMAT_STRING, "h\xc3\xa9", 3, &got.pk, &g_buf,
                                              err, sizeof(err)),
                     0);
    mp_init(&want);
    mp_str(&want, "h\xc3\xa9");
    assert_int_equal(got.sb.size, want.sb.size);
    assert_memory_equal(got.sb.data, want.sb.data, want.sb.size);
    msgpack_sbuffer_destroy(&got.sb);
    msgpack_sbuffer_destroy(&want.sb);
    /* string: refused when not, naming the byte; nothing packed */
    mp_init(&got);
    assert_int_equal(weir__kformat_to_msgpack(WEIR_KFORMAT_STRING, "ab\xfe", 3, &got.pk, &g_buf,
                                              err, sizeof(err)),
                     WEIR_EINVAL);
    assert_non_null(strstr(err, "not UTF-8 at byte 2 of 3 (byte 0xfe)"));
    assert_non_null(strstr(err, "raw format"));
    assert_int_equal(got.sb.size, 0);
    /* a NULL value (tombstone) is nil in every format */
    for (int f = 0; f < 3; f++) {
        assert_int_equal(
            weir__kformat_to_msgpack((weir_kformat_t)f, NULL, 0, &got.pk, &g_buf, err, sizeof(err)),
            0);
        assert_int_equal(got.sb.size, (size_t)f + 1);
        assert_int_equal((uint8_t)got.sb.data[f], 0xc0);
    }
    msgpack_sbuffer_destroy(&got.sb);
    /* names */
    assert_string_equal(weir_kformat_names[WEIR_KFORMAT_RAW], "raw");
    assert_string_equal(weir_kformat_names[WEIR_KFORMAT_STRING], "string");
    assert_string_equal(weir_kformat_names[WEIR_KFORMAT_JSON], "json");
    assert_null(weir_kformat_names[3]);
}

static void test_json_nested(void **state) {
    (void)state;
    mp_t want;
    mp_init(&want);
    /* {"a": [1, -2, 3.5, true, false, null, "x"], "b": {"c": "é😀", "d": []}, "": {}} */
    msgpack_pack_map(&want.pk, 3);
    mp_str(&want, "a");
    msgpack_pack_array(&want.pk, 7);
    msgpack_pack_uint64(&want.pk, 1);
    msgpack_pack_int64(&want.pk, -2);
    msgpack_pack_double(&want.pk, 3.5);
    msgpack_pack_true(&want.pk);
    msgpack_pack_false(&want.pk);
    msgpack_pack_nil(&want.pk);
    mp_str(&want, "x");
    mp_str(&want, "b");
    msgpack_pack_map(&want.pk, 2);
    mp_str(&want, "c");
    mp_str(&want, "\xc3\xa9\xf0\x9f\x98\x80");
    mp_str(&want, "d");
    msgpack_pack_array(&want.pk, 0);
    mp_str(&want, "");
    msgpack_pack_map(&want.pk, 0);
    assert_json_is(" {\"a\" : [1,-2, 3.5 ,true,false,null,\"x\"],\n\t\"b\":{\"c\":\"\\u00e9\\ud83d"
                   "\\ude00\",\"d\":[ ]},\r\n\"\":{}} \n",
                   &want);
    /* the same with the characters as UTF-8 bytes */
    assert_json_is(
        "{\"a\":[1,-2,3.5,true,false,null,\"x\"],\"b\":{\"c\":\"\xc3\xa9\xf0\x9f\x98\x80\","
        "\"d\":[]},\"\":{}}",
        &want);
    msgpack_sbuffer_destroy(&want.sb);

    /* escapes, a NUL inside a string, duplicate names kept in order */
    mp_init(&want);
    msgpack_pack_map(&want.pk, 2);
    mp_str(&want, "k");
    msgpack_pack_str(&want.pk, 10);
    msgpack_pack_str_body(&want.pk, "\"\\/\b\f\n\r\t\0A", 10);
    mp_str(&want, "k");
    msgpack_pack_uint64(&want.pk, 2);
    assert_json_is("{\"k\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0000\\u0041\",\"k\":2}", &want);
    msgpack_sbuffer_destroy(&want.sb);

    /* nesting up to 32 levels is read, and msgpack-c (weir_unpack) reads the result */
    char deep[100];
    memset(deep, '[', 32);
    memset(deep + 32, ']', 32);
    mp_init(&want);
    for (int i = 0; i < 31; i++)
        msgpack_pack_array(&want.pk, 1);
    msgpack_pack_array(&want.pk, 0);
    deep[64] = 0;
    assert_json_is(deep, &want);
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    msgpack_object obj;
    size_t off = 0;
    assert_int_equal(msgpack_unpack(want.sb.data, want.sb.size, &off, &zone, &obj),
                     MSGPACK_UNPACK_SUCCESS);
    msgpack_zone_destroy(&zone);
    msgpack_sbuffer_destroy(&want.sb);
}

static void test_json_numbers(void **state) {
    (void)state;
    struct {
        const char *json;
        int kind; /* 0 uint, 1 int, 2 double */
        uint64_t u;
        int64_t i;
        double d;
    } cases[] = {
        {"0", 0, 0, 0, 0},
        {"-0", 1, 0, 0, 0}, /* integer zero */
        {"127", 0, 127, 0, 0},
        {"-33", 1, 0, -33, 0},
        {"18446744073709551615", 0, UINT64_MAX, 0, 0},
        {"9223372036854775807", 0, INT64_MAX, 0, 0},
        {"-9223372036854775808", 1, 0, INT64_MIN, 0},
        {"18446744073709551616", 2, 0, 0, 18446744073709551616.0}, /* beyond 64 bits */
        {"-9223372036854775809", 2, 0, 0, -9223372036854775809.0},
        {"123456789012345678901234567890", 2, 0, 0, 123456789012345678901234567890.0},
        {"3.25", 2, 0, 0, 3.25},
        {"-0.0", 2, 0, 0, -0.0},
        {"1e3", 2, 0, 0, 1000.0},
        {"1E+3", 2, 0, 0, 1000.0},
        {"2.5e-3", 2, 0, 0, 0.0025},
        {"0.1", 2, 0, 0, 0.1},
        {"1.7976931348623157e308", 2, 0, 0, 1.7976931348623157e308},
        {"4.9e-324", 2, 0, 0, 4.9e-324},
        {"1e-400", 2, 0, 0, 0.0}, /* underflows to zero: representable */
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        mp_t want;
        mp_init(&want);
        if (cases[k].kind == 0)
            msgpack_pack_uint64(&want.pk, cases[k].u);
        else if (cases[k].kind == 1)
            msgpack_pack_int64(&want.pk, cases[k].i);
        else
            msgpack_pack_double(&want.pk, cases[k].d);
        assert_json_is(cases[k].json, &want);
        msgpack_sbuffer_destroy(&want.sb);
    }
    /* a long real (more than the reader's stack copy holds) */
    char longnum[400];
    memset(longnum, '1', sizeof(longnum) - 1);
    longnum[1] = '.';
    longnum[sizeof(longnum) - 1] = 0;
    mp_t want;
    mp_init(&want);
    msgpack_pack_double(&want.pk, strtod(longnum, NULL));
    assert_json_is(longnum, &want);
    msgpack_sbuffer_destroy(&want.sb);
}

static void test_json_errors(void **state) {
    (void)state;
    struct {
        const char *json;
        const char *want;
    } cases[] = {
        {"", "line 1 column 1 (byte 0, at end of input): unexpected end of input"},
        {"   ", "unexpected end of input"},
        {"[1,\n 2,]", "line 2 column 4 (byte 7, at ']'): expected a value"},
        {"[1 2]", "line 1 column 4 (byte 3, at '2'): expected ',' or ']'"},
        {"{\"a\" 1}", "expected ':' after a member name"},
        {"{\"a\":1,}", "expected a member name"},
        {"{1:2}", "expected a member name"},
        {"{\"a\":1", "unterminated object"},
        {"[1,2", "unterminated array"},
        {"01", "leading zeros"},
        {"-", "a digit after '-'"},
        {"1.", "a digit after '.'"},
        {"1e", "a digit in its exponent"},
        {"+1", "expected a value"},
        {".5", "expected a value"},
        {"1e999", "number out of the range of a 64-bit float"},
        {"-1e999", "out of the range"},
        {"tru", "expected a value"},
        {"nul", "expected a value"},
        {"NaN", "expected a value"},
        {"1 2", "line 1 column 3 (byte 2, at '2'): unexpected data after the JSON document"},
        {"\"abc", "unterminated string"},
        {"\"a\\", "unterminated string"},
        {"\"\\x\"", "invalid escape"},
        {"\"\\u12\"", "4 hex digits"},
        {"\"\\u12g4\"", "4 hex digits"},
        {"\"\\udc00\"", "lone low surrogate"},
        {"\"\\ud800\"", "high surrogate not followed by a \\u low surrogate"},
        {"\"\\ud800\\u0041\"", "high surrogate not followed"},
        {"\"a\tb\"", "control character in a string"},
        {"\"\xc3(\"", "line 1 column 2 (byte 1, at byte 0xc3): string is not UTF-8"},
        {"\"\xed\xa0\x80\"", "string is not UTF-8"},
        {"// c\n1", "expected a value"},
        {"[1,]", "expected a value"},
        {"\xef\xbb\xbf{}", "expected a value"}, /* a byte order mark is not JSON */
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++)
        assert_json_error(cases[k].json, strlen(cases[k].json), cases[k].want);
    /* a NUL byte outside strings */
    assert_json_error("1\0", 2, "unexpected data after the JSON document");
    /* 33 levels are refused (msgpack-c could not read them) */
    char deep[100];
    memset(deep, '[', 33);
    memset(deep + 33, ']', 33);
    assert_json_error(deep, 66, "nesting deeper than 32");
    /* the column counts characters, not bytes */
    assert_json_error("[\"\xc3\xa9\xc3\xa9\" x]", strlen("[\"\xc3\xa9\xc3\xa9\" x]"),
                      "line 1 column 7 (byte 8, at 'x')");
}

/* ---- msgpack -> JSON -------------------------------------------------------------------- */

static void test_msgpack_to_json(void **state) {
    (void)state;
    mp_t m;
    mp_init(&m);
    msgpack_pack_map(&m.pk, 4);
    mp_str(&m, "n");
    msgpack_pack_array(&m.pk, 9);
    msgpack_pack_uint64(&m.pk, UINT64_MAX);
    msgpack_pack_int64(&m.pk, INT64_MIN);
    msgpack_pack_int8(&m.pk, -1);
    msgpack_pack_uint8(&m.pk, 200);
    msgpack_pack_int16(&m.pk, -300);
    msgpack_pack_nil(&m.pk);
    msgpack_pack_true(&m.pk);
    msgpack_pack_false(&m.pk);
    msgpack_pack_int32(&m.pk, -70000);
    mp_str(&m, "s");
    mp_str(&m, "a\"b\\c/\n\r\t\b\f\x01\x1f \xc3\xa9");
    msgpack_pack_bin(&m.pk, 3);
    msgpack_pack_bin_body(&m.pk, "key", 3); /* a bin key that is UTF-8 */
    msgpack_pack_bin(&m.pk, 2);
    msgpack_pack_bin_body(&m.pk, "ok", 2);
    mp_str(&m, "e");
    msgpack_pack_map(&m.pk, 0);
    assert_to_json(&m, "{\"n\":[18446744073709551615,-9223372036854775808,-1,200,-300,null,true,"
                       "false,-70000],\"s\":\"a\\\"b\\\\c/\\n\\r\\t\\b\\f\\u0001\\u001f \xc3\xa9\","
                       "\"key\":\"ok\",\"e\":{}}");
    msgpack_sbuffer_destroy(&m.sb);

    /* reals: the shortest text that reads back, always recognisable as a real */
    struct {
        double d;
        const char *want;
    } reals[] = {{0.1, "0.1"},
                 {1.0, "1.0"},
                 {-0.0, "-0.0"},
                 {1e300, "1e+300"},
                 {3.25, "3.25"},
                 {1.0 / 3, "0.3333333333333333"},
                 {123456789.0, "123456789.0"},
                 {1e21, "1e+21"},
                 {5e-324, "4.94065645841247e-324"}};
    for (size_t k = 0; k < sizeof(reals) / sizeof(reals[0]); k++) {
        mp_init(&m);
        msgpack_pack_double(&m.pk, reals[k].d);
        assert_to_json(&m, reals[k].want);
        msgpack_sbuffer_destroy(&m.sb);
    }
    mp_init(&m);
    msgpack_pack_float(&m.pk, 0.1f);
    assert_to_json(&m, "0.1");
    msgpack_sbuffer_destroy(&m.sb);

    /* errors */
    mp_init(&m);
    msgpack_pack_double(&m.pk, NAN);
    assert_to_json_error(m.sb.data, m.sb.size, "NaN and infinities have no JSON form");
    msgpack_sbuffer_destroy(&m.sb);
    mp_init(&m);
    msgpack_pack_map(&m.pk, 1);
    msgpack_pack_uint64(&m.pk, 1);
    msgpack_pack_uint64(&m.pk, 2);
    assert_to_json_error(m.sb.data, m.sb.size, "map key that is not a string");
    msgpack_sbuffer_destroy(&m.sb);
    mp_init(&m);
    msgpack_pack_array(&m.pk, 1);
    msgpack_pack_ext(&m.pk, 1, 5);
    msgpack_pack_ext_body(&m.pk, "x", 1);
    assert_to_json_error(m.sb.data, m.sb.size, "msgpack value at byte 1: msgpack ext types");
    msgpack_sbuffer_destroy(&m.sb);
    mp_init(&m);
    msgpack_pack_str(&m.pk, 2);
    msgpack_pack_str_body(&m.pk, "\xff\xfe", 2);
    assert_to_json_error(m.sb.data, m.sb.size, "string is not UTF-8 at byte 0 of 2");
    msgpack_sbuffer_destroy(&m.sb);
    mp_init(&m);
    msgpack_pack_bin(&m.pk, 1);
    msgpack_pack_bin_body(&m.pk, "\x80", 1);
    assert_to_json_error(m.sb.data, m.sb.size, "not UTF-8");
    msgpack_sbuffer_destroy(&m.sb);
    assert_to_json_error("\x92\x01", 2, "truncated msgpack value");
    assert_to_json_error("\xdd\xff\xff\xff\xff", 5, "truncated");
    assert_to_json_error("\xa5"
                         "ab",
                         3, "truncated");
    assert_to_json_error("\x01\x02", 2, "trailing bytes");
    assert_to_json_error("\xc1", 1, "invalid msgpack byte 0xc1");
    assert_to_json_error("", 0, "truncated");
    char deep[40];
    memset(deep, 0x91, 33);
    deep[33] = 0x01;
    assert_to_json_error(deep, 34, "nesting deeper than 32");
}

static void test_from_msgpack_formats(void **state) {
    (void)state;
    const void *out;
    size_t n;
    char err[256];
    mp_t m;
    /* raw and string: str and bin bytes as they are, pointing into the value */
    mp_init(&m);
    mp_str(&m, "hello");
    for (int f = 0; f < 2; f++) {
        assert_int_equal(weir__kformat_from_msgpack((weir_kformat_t)f, m.sb.data, m.sb.size, &g_buf,
                                                    &out, &n, err, sizeof(err)),
                         0);
        assert_int_equal(n, 5);
        assert_ptr_equal(out, m.sb.data + 1);
    }
    /* json: a JSON string */
    assert_int_equal(weir__kformat_from_msgpack(WEIR_KFORMAT_JSON, m.sb.data, m.sb.size, &g_buf,
                                                &out, &n, err, sizeof(err)),
                     0);
    assert_int_equal(n, 7);
    assert_memory_equal(out, "\"hello\"", 7);
    msgpack_sbuffer_destroy(&m.sb);
    mp_init(&m);
    msgpack_pack_bin(&m.pk, 2);
    msgpack_pack_bin_body(&m.pk, "\xff\x00", 2);
    assert_int_equal(weir__kformat_from_msgpack(WEIR_KFORMAT_RAW, m.sb.data, m.sb.size, &g_buf,
                                                &out, &n, err, sizeof(err)),
                     0);
    assert_int_equal(n, 2);
    assert_memory_equal(out, "\xff\x00", 2);
    msgpack_sbuffer_destroy(&m.sb);
    /* raw refuses other values; string writes them as JSON */
    mp_init(&m);
    msgpack_pack_array(&m.pk, 2);
    msgpack_pack_uint64(&m.pk, 42);
    mp_str(&m, "x");
    assert_int_equal(weir__kformat_from_msgpack(WEIR_KFORMAT_RAW, m.sb.data, m.sb.size, &g_buf,
                                                &out, &n, err, sizeof(err)),
                     WEIR_EINVAL);
    assert_non_null(strstr(err, "raw format writes msgpack str or bin values only"));
    assert_int_equal(weir__kformat_from_msgpack(WEIR_KFORMAT_STRING, m.sb.data, m.sb.size, &g_buf,
                                                &out, &n, err, sizeof(err)),
                     0);
    assert_int_equal(n, 8);
    assert_memory_equal(out, "[42,\"x\"]", 8);
    msgpack_sbuffer_destroy(&m.sb);
    /* nil: a tombstone in every format */
    for (int f = 0; f < 3; f++) {
        out = "x";
        n = 9;
        assert_int_equal(weir__kformat_from_msgpack((weir_kformat_t)f, "\xc0", 1, &g_buf, &out, &n,
                                                    err, sizeof(err)),
                         0);
        assert_null(out);
        assert_int_equal(n, 0);
    }
    /* trailing bytes after a str are refused too */
    assert_int_equal(weir__kformat_from_msgpack(WEIR_KFORMAT_STRING, "\xa1xy", 3, &g_buf, &out, &n,
                                                err, sizeof(err)),
                     WEIR_EINVAL);
    assert_non_null(strstr(err, "trailing bytes"));
}

static void test_json_round_trip(void **state) {
    (void)state;
    const char *doc = "{\"id\":12345678901234567890,\"neg\":-5,\"r\":[0.1,-2.5e-7,1e+300,1.0],"
                      "\"s\":\"tab\\there \\u00e9\\ud83d\\ude00\",\"o\":{\"z\":null,\"t\":true}}";
    mp_t m1;
    char err[256] = "";
    assert_int_equal(json_mp(doc, strlen(doc), &m1, err, sizeof(err)), 0);
    const void *text;
    size_t tlen;
    assert_int_equal(weir__kformat_from_msgpack(WEIR_KFORMAT_JSON, m1.sb.data, m1.sb.size, &g_buf,
                                                &text, &tlen, err, sizeof(err)),
                     0);
    const char *want =
        "{\"id\":12345678901234567890,\"neg\":-5,\"r\":[0.1,-2.5e-07,1e+300,1.0],"
        "\"s\":\"tab\\there \xc3\xa9\xf0\x9f\x98\x80\",\"o\":{\"z\":null,\"t\":true}}";
    if (tlen != strlen(want) || memcmp(text, want, tlen) != 0)
        fail_msg("got %.*s", (int)tlen, (const char *)text);
    char *copy = malloc(tlen);
    memcpy(copy, text, tlen);
    mp_t m2;
    assert_int_equal(json_mp(copy, tlen, &m2, err, sizeof(err)), 0);
    assert_int_equal(m1.sb.size, m2.sb.size);
    assert_memory_equal(m1.sb.data, m2.sb.data, m1.sb.size);
    free(copy);
    msgpack_sbuffer_destroy(&m1.sb);
    msgpack_sbuffer_destroy(&m2.sb);
}

static void test_keys(void **state) {
    (void)state;
    weir_kformat_buf_t kb = {0};
    const void *out;
    size_t n;
    char err[256];
    /* a NULL Kafka key: the empty key */
    for (int f = 0; f < 3; f++) {
        assert_int_equal(
            weir__kformat_key((weir_kformat_t)f, NULL, 0, &kb, &out, &n, err, sizeof(err)), 0);
        assert_int_equal(n, 0);
    }
    const char *raw = "\x01\xff";
    assert_int_equal(weir__kformat_key(WEIR_KFORMAT_RAW, raw, 2, &kb, &out, &n, err, sizeof(err)),
                     0);
    assert_ptr_equal(out, raw);
    assert_int_equal(n, 2);
    assert_int_equal(
        weir__kformat_key(WEIR_KFORMAT_STRING, raw, 2, &kb, &out, &n, err, sizeof(err)),
        WEIR_EINVAL);
    assert_non_null(strstr(err, "not UTF-8 at byte 1"));
    assert_int_equal(
        weir__kformat_key(WEIR_KFORMAT_STRING, "w\xc3\xa9", 3, &kb, &out, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 3);
    /* json: the msgpack encoding of the document */
    const char *jk = "{\"user\": 7}";
    assert_int_equal(
        weir__kformat_key(WEIR_KFORMAT_JSON, jk, strlen(jk), &kb, &out, &n, err, sizeof(err)), 0);
    mp_t want;
    mp_init(&want);
    msgpack_pack_map(&want.pk, 1);
    mp_str(&want, "user");
    msgpack_pack_uint64(&want.pk, 7);
    assert_int_equal(n, want.sb.size);
    assert_memory_equal(out, want.sb.data, n);
    msgpack_sbuffer_destroy(&want.sb);
    assert_int_equal(weir__kformat_key(WEIR_KFORMAT_JSON, "{", 1, &kb, &out, &n, err, sizeof(err)),
                     WEIR_EINVAL);
    assert_non_null(strstr(err, "JSON error at line 1 column 2"));
    weir__kformat_buf_free(&kb);
}

/* ---- assignment --------------------------------------------------------------------------- */

/* Java's String.hashCode, written out here: s[0]*31^(n-1) + ... + s[n-1] in 32-bit int
 * arithmetic (two's complement wrap). */
static int32_t java_hash_ref(const char *s) {
    int64_t h = 0;
    for (; *s; s++) {
        h = (h * 31 + (unsigned char)*s) % 4294967296LL;
        if (h < 0)
            h += 4294967296LL;
    }
    return h >= 2147483648LL ? (int32_t)(h - 4294967296LL) : (int32_t)h;
}

static void test_java_hash_and_owner(void **state) {
    (void)state;
    /* well-known Java values */
    assert_int_equal(weir__kafka_java_hash("hello"), 99162322);
    assert_int_equal(weir__kafka_java_hash("Hello World"), -862545276);
    assert_int_equal(weir__kafka_java_hash(""), 0);
    assert_int_equal(java_hash_ref("hello"), 99162322);
    assert_int_equal(java_hash_ref("Hello World"), -862545276);
    /* "test": 116*31^3 + 101*31^2 + 115*31 + 116 */
    assert_int_equal(weir__kafka_java_hash("test"), 116 * 29791 + 101 * 961 + 115 * 31 + 116);
    const char *names[] = {"orders", "wc-input", "a.b_c-D", "some-very-long-topic-name-1234567890"};
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(weir__kafka_java_hash(names[i]), java_hash_ref(names[i]));

    /* Flink: start = ((hash * 31) & 0x7fffffff) % p; owner = (start + partition) % p.
     * Expected owners of partitions 0..3 at parallelism 1, 3, 4, 7, computed with Java's int
     * semantics outside weir. */
    struct {
        const char *topic;
        uint32_t owners[16];
    } cases[] = {
        {"test", {0, 0, 0, 0, 1, 2, 0, 1, 2, 3, 0, 1, 3, 4, 5, 6}},
        {"hello", {0, 0, 0, 0, 2, 0, 1, 2, 2, 3, 0, 1, 5, 6, 0, 1}},
        {"Hello World", {0, 0, 0, 0, 2, 0, 1, 2, 0, 1, 2, 3, 4, 5, 6, 0}},
        {"orders", {0, 0, 0, 0, 0, 1, 2, 0, 3, 0, 1, 2, 3, 4, 5, 6}},
    };
    const uint32_t par[] = {1, 3, 4, 7};
    for (size_t c = 0; c < 4; c++)
        for (size_t k = 0; k < 4; k++)
            for (int32_t p = 0; p < 4; p++) {
                uint32_t got = weir__kafka_partition_owner(cases[c].topic, p, par[k]);
                if (got != cases[c].owners[k * 4 + (size_t)p])
                    fail_msg("%s-%d at parallelism %u: subtask %u, want %u", cases[c].topic, p,
                             par[k], got, cases[c].owners[k * 4 + (size_t)p]);
            }
    /* a topic's partitions go round-robin from its start: each subtask gets n/p of them */
    uint32_t counts[5] = {0};
    for (int32_t p = 0; p < 100; p++)
        counts[weir__kafka_partition_owner("orders", p, 5)]++;
    for (int i = 0; i < 5; i++)
        assert_int_equal(counts[i], 20);
    /* the largest partition number does not overflow */
    assert_true(weir__kafka_partition_owner("orders", INT32_MAX, 7) < 7);
}

/* ---- options ------------------------------------------------------------------------------ */

static int validate(const char *const *opts, char *err, size_t errlen) {
    weir_node_t n;
    memset(&n, 0, sizeof(n));
    n.kind = WEIR_OP_SOURCE_KAFKA;
    n.name = "src";
    n.options = (const char **)opts;
    while (opts[2 * n.n_options])
        n.n_options++;
    err[0] = 0;
    return weir__kafka_source_validate(&n, err, errlen);
}

#define B "bootstrap.servers", "127.0.0.1:1"

static void test_options(void **state) {
    (void)state;
    char err[512];
    struct {
        const char *opts[16];
        const char *want; /* NULL: valid */
    } cases[] = {
        {{B, "topic", "t", NULL}, NULL},
        {{B, "topic", "a, b.c ,d_e-1", NULL}, NULL},
        {{B, "topic-pattern", "in-[0-9]+", "group.id", "g", "scan.startup.mode", "group-offsets",
          NULL},
         NULL},
        {{B, "topic", "t", "scan.startup.mode", "timestamp", "scan.startup.timestamp-millis",
          "1700000000000", "scan.bounded.mode", "latest-offset", "isolation.level",
          "read_uncommitted", NULL},
         NULL},
        {{B, "topic", "t", "key.format", "json", "value.format", "raw",
          "scan.topic-partition-discovery.interval", "0", "properties.fetch.max.bytes", "1000000",
          "scan.rate-limit", "100", NULL},
         NULL},
        {{"topic", "t", NULL}, "Kafka source 'src': option 'bootstrap.servers' is required"},
        {{B, "topic", "t", "topics", "u", NULL},
         "Kafka source 'src': unknown option 'topics': use one of bootstrap.servers, topic"},
        {{B, NULL},
         "give exactly one of the options 'topic' (a comma-separated list) and "
         "'topic-pattern'"},
        {{B, "topic", "t", "topic-pattern", "t.*", NULL},
         "'topic-pattern' (a regular "
         "expression), not both"},
        {{B, "topic", "a,,b", NULL}, "option 'topic' is 'a,,b': '' is not a Kafka topic name"},
        {{B, "topic", "a b", NULL}, "'a b' is not a Kafka topic name"},
        {{B, "topic", "a,a", NULL}, "option 'topic' names 'a' twice"},
        {{B, "topic-pattern", "in-((", NULL},
         "option 'topic-pattern' is 'in-((': not a POSIX extended regular expression"},
        {{B, "topic", "t", "scan.startup.mode", "earliest", NULL},
         "option 'scan.startup.mode' is 'earliest': use one of earliest-offset, latest-offset, "
         "group-offsets, timestamp"},
        {{B, "topic", "t", "scan.startup.mode", "timestamp", NULL},
         "scan.startup.mode 'timestamp' needs the option 'scan.startup.timestamp-millis'"},
        {{B, "topic", "t", "scan.startup.timestamp-millis", "5", NULL},
         "'scan.startup.timestamp-millis' is only used with scan.startup.mode 'timestamp'"},
        {{B, "topic", "t", "scan.startup.mode", "timestamp", "scan.startup.timestamp-millis", "-1",
          NULL},
         "option 'scan.startup.timestamp-millis' is '-1': use an integer from 0"},
        {{B, "topic", "t", "scan.startup.mode", "group-offsets", NULL},
         "scan.startup.mode 'group-offsets' needs the option 'group.id'"},
        {{B, "topic", "t", "group.id", "", NULL}, "option 'group.id' is empty"},
        {{B, "topic", "t", "scan.bounded.mode", "timestamp", NULL},
         "option 'scan.bounded.mode' is 'timestamp': use one of unbounded, latest-offset"},
        {{B, "topic", "t", "scan.topic-partition-discovery.interval", "10s", NULL},
         "option 'scan.topic-partition-discovery.interval' is '10s': use an integer from 0"},
        {{B, "topic", "t", "isolation.level", "committed", NULL},
         "option 'isolation.level' is 'committed': use one of read_committed, read_uncommitted"},
        {{B, "topic", "t", "value.format", "avro", NULL},
         "option 'value.format' is 'avro': use one of raw, string, json"},
        {{B, "topic", "t", "key.format", "text", NULL}, "option 'key.format' is 'text'"},
        {{B, "topic", "t", "scan.rate-limit", "fast", NULL}, "option 'scan.rate-limit' is 'fast'"},
        {{B, "topic", "t", "properties.group.id", "g", NULL},
         "option 'properties.group.id' is set by the connector itself"},
        {{B, "topic", "t", "properties.enable.auto.commit", "true", NULL},
         "option 'properties.enable.auto.commit' is set by the connector itself"},
        {{B, "topic", "t", "properties.isolation.level", "read_committed", NULL},
         "'properties.isolation.level' is set by the connector itself"},
        {{B, "topic", "t", "properties.auto.offset.reset", "latest", NULL},
         "'properties.auto.offset.reset' is set by the connector itself"},
        {{B, "topic", "t", "properties.no.such.property", "1", NULL},
         "Kafka source 'src': librdkafka property 'no.such.property': "},
        {{B, "topic", "t", "properties.fetch.max.bytes", "many", NULL},
         "librdkafka property 'fetch.max.bytes'"},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        int rc = validate(cases[k].opts, err, sizeof(err));
        if (!cases[k].want) {
            if (rc != 0)
                fail_msg("case %zu: refused: %s", k, err);
            continue;
        }
        if (rc != WEIR_EINVAL || !strstr(err, cases[k].want))
            fail_msg("case %zu: rc %d, message '%s' lacks '%s'", k, rc, err, cases[k].want);
        assert_null(strchr(err, '\n')); /* one line */
    }
}

static void test_topic_matching(void **state) {
    (void)state;
    char err[256];
    weir_node_t n;
    memset(&n, 0, sizeof(n));
    n.name = "src";
    const char *pat[] = {B, "topic-pattern", "in-[0-9]+|x.*", NULL};
    n.options = pat;
    n.n_options = 2;
    weir_ksrc_opts_t o;
    assert_int_equal(weir__ksrc_opts_parse(&n, &o, err, sizeof(err)), 0);
    assert_true(weir__ksrc_topic_matches(&o, "in-1"));
    assert_true(weir__ksrc_topic_matches(&o, "in-42"));
    assert_true(weir__ksrc_topic_matches(&o, "xyz"));
    assert_false(weir__ksrc_topic_matches(&o, "in-"));
    assert_false(weir__ksrc_topic_matches(&o, "in-1a")); /* whole names only */
    assert_false(weir__ksrc_topic_matches(&o, "yin-1"));
    weir__ksrc_opts_free(&o);
    const char *all[] = {B, "topic-pattern", ".*", NULL};
    n.options = all;
    assert_int_equal(weir__ksrc_opts_parse(&n, &o, err, sizeof(err)), 0);
    assert_true(weir__ksrc_topic_matches(&o, "anything"));
    assert_false(weir__ksrc_topic_matches(&o, "__consumer_offsets"));
    assert_false(weir__ksrc_topic_matches(&o, "__transaction_state"));
    assert_int_equal(o.startup, WEIR_KSRC_START_EARLIEST); /* defaults */
    assert_false(o.bounded);
    assert_true(o.read_committed);
    assert_int_equal(o.discovery_ms, 10000);
    assert_int_equal(o.key_format, WEIR_KFORMAT_RAW);
    assert_int_equal(o.value_format, WEIR_KFORMAT_STRING);
    assert_null(o.group_id);
    weir__ksrc_opts_free(&o);
    const char *list[] = {B, "topic", " a , b", NULL};
    n.options = list;
    assert_int_equal(weir__ksrc_opts_parse(&n, &o, err, sizeof(err)), 0);
    assert_int_equal(o.n_topics, 2);
    assert_true(weir__ksrc_topic_matches(&o, "a"));
    assert_true(weir__ksrc_topic_matches(&o, "b"));
    assert_false(weir__ksrc_topic_matches(&o, "c"));
    assert_false(weir__ksrc_topic_matches(&o, " a "));
    weir__ksrc_opts_free(&o);
}

/* ---- state -------------------------------------------------------------------------------- */

static void unpack_into(const mp_t *m, msgpack_unpacked *u) {
    msgpack_unpacked_init(u);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(u, m->sb.data, m->sb.size, &off), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, m->sb.size);
}

static void test_state_round_trip(void **state) {
    (void)state;
    weir_kparts_t t = {0};
    /* added out of order; kept sorted by (topic, partition) */
    assert_true(weir__kparts_add(&t, "orders", 3, 100, 250) >= 0);
    assert_true(weir__kparts_add(&t, "clicks", 0, RD_KAFKA_OFFSET_BEGINNING, 0) >= 0);
    assert_true(weir__kparts_add(&t, "orders", 0, 7, 7) >= 0);
    assert_true(weir__kparts_add(&t, "orders", 12, INT64_MAX - 1, INT64_MAX) >= 0);
    assert_int_equal(t.n, 4);
    assert_string_equal(t.v[0].topic, "clicks");
    assert_int_equal(t.v[1].partition, 0);
    assert_int_equal(t.v[2].partition, 3);
    assert_int_equal(t.v[3].partition, 12);
    assert_int_equal(weir__kparts_find(&t, "orders", 3), 2);
    assert_int_equal(weir__kparts_find(&t, "orders", 4), -1);
    assert_int_equal(weir__kparts_find(&t, "zzz", 0), -1);
    for (int bounded = 0; bounded < 2; bounded++) {
        mp_t m;
        mp_init(&m);
        assert_int_equal(weir__ksrc_state_pack(&m.pk, &t, bounded), 0);
        /* the layout, read with msgpack-c */
        msgpack_unpacked u;
        unpack_into(&m, &u);
        assert_int_equal(u.data.type, MSGPACK_OBJECT_MAP);
        assert_int_equal(u.data.via.map.size, 3);
        weir_kparts_t back;
        bool b = !bounded;
        char err[256];
        assert_int_equal(weir__ksrc_state_unpack(&u.data, &back, &b, err, sizeof(err)), 0);
        assert_int_equal(b, bounded);
        assert_int_equal(back.n, t.n);
        for (size_t i = 0; i < t.n; i++) {
            assert_string_equal(back.v[i].topic, t.v[i].topic);
            assert_int_equal(back.v[i].partition, t.v[i].partition);
            assert_int_equal(back.v[i].next, t.v[i].next);
            assert_int_equal(back.v[i].stop, bounded ? t.v[i].stop : -1);
        }
        weir__kparts_free(&back);
        msgpack_unpacked_destroy(&u);
        msgpack_sbuffer_destroy(&m.sb);
    }
    /* an empty table (a subtask reading nothing) */
    weir_kparts_t empty = {0};
    mp_t m;
    mp_init(&m);
    assert_int_equal(weir__ksrc_state_pack(&m.pk, &empty, true), 0);
    msgpack_unpacked u;
    unpack_into(&m, &u);
    weir_kparts_t back;
    bool b;
    char err[256];
    assert_int_equal(weir__ksrc_state_unpack(&u.data, &back, &b, err, sizeof(err)), 0);
    assert_int_equal(back.n, 0);
    assert_true(b);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&m.sb);
    weir__kparts_free(&t);
}

/* Event time in the state: with has_et the state gets "event_time" {"wm", "idle", "max"} next to
 * the offsets (4 members); it reads back per partition; a restore from two old subtasks takes
 * the lowest watermark and is idle only when both were; a state without it restores none. */
static void test_state_event_time(void **state) {
    (void)state;
    weir_kparts_t a = {0}, b = {0};
    assert_true(weir__kparts_add(&a, "t", 0, 10, -1) >= 0);
    assert_true(weir__kparts_add(&b, "t", 1, 20, -1) >= 0);
    assert_int_equal(a.v[0].max_ts, INT64_MIN);
    a.v[0].max_ts = 5000;
    b.v[0].max_ts = -7; /* before the epoch: negative timestamps travel too */
    a.has_et = b.has_et = true;
    a.wm = 4000;
    a.idle = true;
    b.wm = 3000;
    b.idle = false;
    mp_t m[2];
    msgpack_unpacked u[2];
    msgpack_object st[2];
    uint32_t sub[2] = {0, 1};
    weir_kparts_t *src[2] = {&a, &b};
    for (int j = 0; j < 2; j++) {
        mp_init(&m[j]);
        assert_int_equal(weir__ksrc_state_pack(&m[j].pk, src[j], false), 0);
        unpack_into(&m[j], &u[j]);
        assert_int_equal(u[j].data.via.map.size, 4);
        st[j] = u[j].data;
    }
    weir_kparts_t back;
    bool bd = true;
    char err[256];
    assert_int_equal(weir__ksrc_state_unpack(&st[0], &back, &bd, err, sizeof(err)), 0);
    assert_true(back.has_et);
    assert_int_equal(back.wm, 4000);
    assert_true(back.idle);
    assert_int_equal(back.v[0].max_ts, 5000);
    weir__kparts_free(&back);
    /* 2 -> 1: one subtask takes both partitions */
    weir_op_restore_t r = {
        .checkpoint_id = 4, .old_parallelism = 2, .n = 2, .old_subtask = sub, .states = st};
    assert_int_equal(weir__ksrc_state_restore(&r, 0, 1, &back, &bd, err, sizeof(err)), 0);
    assert_int_equal(back.n, 2);
    assert_true(back.has_et);
    assert_int_equal(back.wm, 3000);
    assert_false(back.idle);
    assert_int_equal(back.v[0].max_ts, 5000);
    assert_int_equal(back.v[1].max_ts, -7);
    weir__kparts_free(&back);
    for (int j = 0; j < 2; j++) {
        msgpack_unpacked_destroy(&u[j]);
        msgpack_sbuffer_destroy(&m[j].sb);
    }
    /* without event time: 3 members, nothing restored */
    a.has_et = false;
    mp_init(&m[0]);
    assert_int_equal(weir__ksrc_state_pack(&m[0].pk, &a, false), 0);
    unpack_into(&m[0], &u[0]);
    assert_int_equal(u[0].data.via.map.size, 3);
    assert_int_equal(weir__ksrc_state_unpack(&u[0].data, &back, &bd, err, sizeof(err)), 0);
    assert_false(back.has_et);
    assert_int_equal(back.v[0].max_ts, INT64_MIN);
    weir__kparts_free(&back);
    msgpack_unpacked_destroy(&u[0]);
    msgpack_sbuffer_destroy(&m[0].sb);
    weir__kparts_free(&a);
    weir__kparts_free(&b);
}

/* Packs {"version": v, "bounded": b, "partitions": [entry]} with entry written by @p fn. */
static void bad_state(mp_t *m, int version, bool bounded, void (*entry)(msgpack_packer *pk)) {
    mp_init(m);
    msgpack_pack_map(&m->pk, 3);
    mp_str(m, "version");
    msgpack_pack_int32(&m->pk, version);
    mp_str(m, "bounded");
    bounded ? msgpack_pack_true(&m->pk) : msgpack_pack_false(&m->pk);
    mp_str(m, "partitions");
    msgpack_pack_array(&m->pk, entry ? 1 : 0);
    if (entry)
        entry(&m->pk);
}

static void pk_str(msgpack_packer *pk, const char *s) {
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}
static void e_ok(msgpack_packer *pk) {
    msgpack_pack_array(pk, 4);
    pk_str(pk, "t");
    msgpack_pack_int32(pk, 1);
    msgpack_pack_int64(pk, 5);
    msgpack_pack_int64(pk, 9);
}
static void e_three(msgpack_packer *pk) {
    msgpack_pack_array(pk, 3);
    pk_str(pk, "t");
    msgpack_pack_int32(pk, 1);
    msgpack_pack_int64(pk, 5);
}
static void e_badtopic(msgpack_packer *pk) {
    msgpack_pack_array(pk, 4);
    pk_str(pk, "a b");
    msgpack_pack_int32(pk, 1);
    msgpack_pack_int64(pk, 5);
    msgpack_pack_int64(pk, 9);
}
static void e_negpart(msgpack_packer *pk) {
    msgpack_pack_array(pk, 4);
    pk_str(pk, "t");
    msgpack_pack_int32(pk, -1);
    msgpack_pack_int64(pk, 5);
    msgpack_pack_int64(pk, 9);
}
static void e_next_end(msgpack_packer *pk) { /* -1 (RD_KAFKA_OFFSET_END) is a moving position */
    msgpack_pack_array(pk, 4);
    pk_str(pk, "t");
    msgpack_pack_int32(pk, 1);
    msgpack_pack_int64(pk, -1);
    msgpack_pack_int64(pk, 9);
}
static void e_nostop(msgpack_packer *pk) {
    msgpack_pack_array(pk, 4);
    pk_str(pk, "t");
    msgpack_pack_int32(pk, 1);
    msgpack_pack_int64(pk, 5);
    msgpack_pack_int64(pk, -1);
}

static void assert_state_refused(const mp_t *m, const char *want) {
    msgpack_unpacked u;
    unpack_into(m, &u);
    weir_kparts_t back;
    bool b = false;
    char err[256] = "";
    assert_int_equal(weir__ksrc_state_unpack(&u.data, &back, &b, err, sizeof(err)), WEIR_ECORRUPT);
    if (!strstr(err, want))
        fail_msg("'%s' lacks '%s'", err, want);
    assert_int_equal(back.n, 0);
    assert_null(back.v);
    msgpack_unpacked_destroy(&u);
}

static void test_state_refused(void **state) {
    (void)state;
    mp_t m;
    bad_state(&m, 1, true, e_ok);
    msgpack_unpacked u;
    unpack_into(&m, &u);
    weir_kparts_t back;
    bool b = false;
    char err[256];
    assert_int_equal(weir__ksrc_state_unpack(&u.data, &back, &b, err, sizeof(err)), 0);
    assert_int_equal(back.n, 1);
    weir__kparts_free(&back);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&m.sb);

    struct {
        int version;
        bool bounded;
        void (*entry)(msgpack_packer *pk);
        const char *want;
    } cases[] = {
        {2, true, e_ok, "state version 2: this weir reads version 1 only"},
        {1, true, e_three, "partition entry 0 is not [topic, partition, next offset"},
        {1, true, e_badtopic, "partition entry 0"},
        {1, true, e_negpart, "partition entry 0"},
        {1, true, e_next_end, "partition entry 0"},
        {1, true, e_nostop, "partition entry 0"}, /* bounded needs stops */
        {1, false, e_ok, "partition entry 0"},    /* unbounded has none */
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        bad_state(&m, cases[k].version, cases[k].bounded, cases[k].entry);
        assert_state_refused(&m, cases[k].want);
        msgpack_sbuffer_destroy(&m.sb);
    }
    /* duplicates */
    mp_init(&m);
    msgpack_pack_map(&m.pk, 3);
    mp_str(&m, "version");
    msgpack_pack_int32(&m.pk, 1);
    mp_str(&m, "bounded");
    msgpack_pack_true(&m.pk);
    mp_str(&m, "partitions");
    msgpack_pack_array(&m.pk, 2);
    e_ok(&m.pk);
    e_ok(&m.pk);
    assert_state_refused(&m, "partition t-1 appears twice");
    msgpack_sbuffer_destroy(&m.sb);
    /* not a map; missing members */
    mp_init(&m);
    msgpack_pack_array(&m.pk, 0);
    assert_state_refused(&m, "the state is not a map");
    msgpack_sbuffer_destroy(&m.sb);
    mp_init(&m);
    msgpack_pack_map(&m.pk, 1);
    mp_str(&m, "version");
    msgpack_pack_int32(&m.pk, 1);
    assert_state_refused(&m, "the state lacks \"bounded\"");
    msgpack_sbuffer_destroy(&m.sb);
    mp_init(&m);
    msgpack_pack_map(&m.pk, 0);
    assert_state_refused(&m, "the state has no \"version\"");
    msgpack_sbuffer_destroy(&m.sb);
}

/* Flink's owner with Java int arithmetic, written here from java_hash_ref. */
static uint32_t owner_ref(const char *topic, int32_t partition, uint32_t p) {
    int64_t h = ((int64_t)java_hash_ref(topic) * 31) % 4294967296LL;
    if (h < 0)
        h += 4294967296LL;
    int64_t start = (h & 0x7fffffff) % p;
    return (uint32_t)((start + partition) % p);
}

#define RS_TOPICS 3
static const char *const rs_topics[RS_TOPICS] = {"orders", "clicks", "wc-input"};
static const int32_t rs_parts[RS_TOPICS] = {7, 3, 12};

/* The next / stop offsets the test gives each partition (distinct for every partition). */
static int64_t rs_next(size_t t, int32_t part) {
    return part % 4 == 3 ? RD_KAFKA_OFFSET_BEGINNING : 1000 * (int64_t)t + 10 * part + 1;
}

/* The states of p old subtasks reading every partition of rs_topics (each the ones Flink's rule
 * gives it at p), packed with weir__ksrc_state_pack; what @p k of @p np receives. */
typedef struct kstates {
    uint32_t p;
    mp_t m[8];
    msgpack_unpacked u[8];
    msgpack_object st[8];
    uint32_t sub[8];
} kstates_t;

static void kstates_make(kstates_t *ks, uint32_t p, bool bounded) {
    ks->p = p;
    for (uint32_t j = 0; j < p; j++) {
        weir_kparts_t t = {0};
        for (size_t ti = 0; ti < RS_TOPICS; ti++)
            for (int32_t part = 0; part < rs_parts[ti]; part++)
                if (owner_ref(rs_topics[ti], part, p) == j)
                    assert_true(weir__kparts_add(&t, rs_topics[ti], part, rs_next(ti, part),
                                                 bounded ? 5000 + part : -1) >= 0);
        mp_init(&ks->m[j]);
        assert_int_equal(weir__ksrc_state_pack(&ks->m[j].pk, &t, bounded), 0);
        weir__kparts_free(&t);
        unpack_into(&ks->m[j], &ks->u[j]);
        ks->st[j] = ks->u[j].data;
        ks->sub[j] = j;
    }
}

static weir_op_restore_t kstates_for(kstates_t *ks, uint32_t k, uint32_t np) {
    weir_op_restore_t r = {.checkpoint_id = 4, .old_parallelism = ks->p};
    if (np == ks->p) {
        r.n = 1;
        r.old_subtask = &ks->sub[k];
        r.states = &ks->st[k];
    } else {
        r.n = ks->p;
        r.old_subtask = ks->sub;
        r.states = ks->st;
    }
    return r;
}

static void kstates_free(kstates_t *ks) {
    for (uint32_t j = 0; j < ks->p; j++) {
        msgpack_unpacked_destroy(&ks->u[j]);
        msgpack_sbuffer_destroy(&ks->m[j].sb);
    }
}

/* Restoring at another parallelism: every partition of the old states goes to exactly one new
 * subtask, the one Flink's rule names at the new parallelism (computed here independently), with
 * its next and stop offsets unchanged; at the same parallelism each subtask gets its own. */
static void test_state_rescale(void **state) {
    (void)state;
    const uint32_t cases[][2] = {{2, 3}, {3, 1}, {4, 2}, {3, 3}, {1, 5}, {5, 5}};
    for (int bounded = 0; bounded < 2; bounded++)
        for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
            uint32_t p = cases[c][0], np = cases[c][1];
            kstates_t ks;
            kstates_make(&ks, p, bounded);
            int seen[RS_TOPICS][12] = {{0}};
            for (uint32_t k = 0; k < np; k++) {
                weir_op_restore_t r = kstates_for(&ks, k, np);
                weir_kparts_t t;
                bool b = !bounded;
                char err[384];
                assert_int_equal(weir__ksrc_state_restore(&r, k, np, &t, &b, err, sizeof(err)), 0);
                assert_int_equal(b, bounded);
                for (size_t i = 0; i < t.n; i++) {
                    size_t ti = 0;
                    while (ti < RS_TOPICS && strcmp(rs_topics[ti], t.v[i].topic) != 0)
                        ti++;
                    assert_true(ti < RS_TOPICS);
                    int32_t part = t.v[i].partition;
                    assert_true(part < rs_parts[ti]);
                    assert_int_equal(owner_ref(rs_topics[ti], part, np), k);
                    assert_int_equal(t.v[i].next, rs_next(ti, part));
                    assert_int_equal(t.v[i].stop, bounded ? 5000 + part : -1);
                    seen[ti][part]++;
                }
                weir__kparts_free(&t);
            }
            for (size_t ti = 0; ti < RS_TOPICS; ti++)
                for (int32_t part = 0; part < rs_parts[ti]; part++)
                    if (seen[ti][part] != 1)
                        fail_msg("%u -> %u: %s-%d restored %d times", p, np, rs_topics[ti], part,
                                 seen[ti][part]);
            kstates_free(&ks);
        }

    /* Refused: a partition in two old states; a state holding another subtask's partition at
     * the same parallelism; bounded and unbounded states mixed. */
    kstates_t ks;
    kstates_make(&ks, 2, true);
    weir_kparts_t t;
    bool b;
    char err[384] = "";
    msgpack_object twice[2] = {ks.st[0], ks.st[0]};
    uint32_t subs[2] = {0, 1};
    weir_op_restore_t r = {
        .checkpoint_id = 4, .old_parallelism = 2, .n = 2, .old_subtask = subs, .states = twice};
    assert_int_equal(weir__ksrc_state_restore(&r, 0, 3, &t, &b, err, sizeof(err)), WEIR_ECORRUPT);
    assert_non_null(strstr(err, "is in the states of two old subtasks"));
    assert_int_equal(t.n, 0);
    r = (weir_op_restore_t){.checkpoint_id = 4,
                            .old_parallelism = 2,
                            .n = 1,
                            .old_subtask = &subs[1],
                            .states = &ks.st[0]};
    assert_int_equal(weir__ksrc_state_restore(&r, 1, 2, &t, &b, err, sizeof(err)), WEIR_ECORRUPT);
    assert_non_null(strstr(err, "old subtask 1's state holds partition "));
    assert_non_null(strstr(err, ", which subtask 0 reads at parallelism 2"));
    kstates_t ku;
    kstates_make(&ku, 2, false);
    msgpack_object mixed[2] = {ks.st[0], ku.st[1]};
    r = (weir_op_restore_t){
        .checkpoint_id = 4, .old_parallelism = 2, .n = 2, .old_subtask = subs, .states = mixed};
    assert_int_equal(weir__ksrc_state_restore(&r, 0, 1, &t, &b, err, sizeof(err)), WEIR_ECORRUPT);
    assert_non_null(strstr(err, "old subtask 1's state is unbounded, old subtask 0's is not"));
    kstates_free(&ks);
    kstates_free(&ku);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8),
        cmocka_unit_test_teardown(test_raw_string_tombstone, teardown_buf),
        cmocka_unit_test_teardown(test_json_nested, teardown_buf),
        cmocka_unit_test_teardown(test_json_numbers, teardown_buf),
        cmocka_unit_test_teardown(test_json_errors, teardown_buf),
        cmocka_unit_test_teardown(test_msgpack_to_json, teardown_buf),
        cmocka_unit_test_teardown(test_from_msgpack_formats, teardown_buf),
        cmocka_unit_test_teardown(test_json_round_trip, teardown_buf),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_java_hash_and_owner),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_topic_matching),
        cmocka_unit_test(test_state_round_trip),
        cmocka_unit_test(test_state_event_time),
        cmocka_unit_test(test_state_refused),
        cmocka_unit_test(test_state_rescale),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
