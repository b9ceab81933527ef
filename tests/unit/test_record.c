/* Unit tests of runtime/dataplane/record.c: the byte layout against the documented table, round
 * trips, zero-copy reads, full buffers and every corruption the reader must report. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "runtime/dataplane/record.h"

static void test_layout(void **state) {
    (void)state;
    uint8_t buf[128];
    weir_bufwriter_t w;
    weir_bufwriter_init(&w, buf, sizeof buf);
    weir_record_t r = {.timestamp = 0x0102030405060708LL,
                       .key = "ab",
                       .key_len = 2,
                       .value = "\x93\x01\x02\x03",
                       .value_len = 4};
    assert_true(weir_bufwriter_record(&w, &r));
    const uint8_t want_rec[] = {1, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, 2,    0,   0,
                                0, 4,    0,    0,    0,    'a',  'b',  0x93, 0x01, 0x02, 0x03};
    assert_int_equal(w.len, sizeof want_rec);
    assert_memory_equal(buf, want_rec, sizeof want_rec);
    assert_int_equal(weir_record_encoded_size(&r), sizeof want_rec);

    assert_true(weir_bufwriter_barrier(&w, 7, -1));
    const uint8_t want_bar[] = {2,    7,    0,    0,    0,    0,    0,    0,   0,
                                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    assert_memory_equal(buf + sizeof want_rec, want_bar, sizeof want_bar);
    assert_true(weir_bufwriter_watermark(&w, 256));
    const uint8_t want_wm[] = {3, 0, 1, 0, 0, 0, 0, 0, 0};
    assert_memory_equal(buf + sizeof want_rec + 17, want_wm, sizeof want_wm);
    assert_true(weir_bufwriter_end(&w));
    assert_int_equal(buf[sizeof want_rec + 17 + 9], 4);
    assert_int_equal(w.len, sizeof want_rec + 17 + 9 + 1);

    weir_bufreader_t rd;
    weir_bufreader_init(&rd, buf, w.len);
    weir_event_t ev;
    assert_int_equal(weir_bufreader_next(&rd, &ev), 1);
    assert_int_equal(ev.kind, WEIR_EV_RECORD);
    assert_true(ev.record.timestamp == 0x0102030405060708LL);
    assert_int_equal(ev.record.key_len, 2);
    assert_ptr_equal(ev.record.key, buf + 17); /* zero-copy */
    assert_ptr_equal(ev.record.value, buf + 19);
    assert_int_equal(ev.record.value_len, 4);
    assert_int_equal(weir_bufreader_next(&rd, &ev), 1);
    assert_int_equal(ev.kind, WEIR_EV_BARRIER);
    assert_int_equal(ev.checkpoint_id, 7);
    assert_int_equal(ev.timestamp, -1);
    assert_int_equal(weir_bufreader_next(&rd, &ev), 1);
    assert_int_equal(ev.kind, WEIR_EV_WATERMARK);
    assert_int_equal(ev.timestamp, 256);
    assert_int_equal(weir_bufreader_next(&rd, &ev), 1);
    assert_int_equal(ev.kind, WEIR_EV_END);
    assert_int_equal(weir_bufreader_next(&rd, &ev), 0);
    assert_int_equal(weir_bufreader_next(&rd, &ev), 0);
}

static void test_full_and_roundtrip(void **state) {
    (void)state;
    uint8_t buf[1000];
    weir_bufwriter_t w;
    weir_bufwriter_init(&w, buf, sizeof buf);
    char key[16], val[32];
    int n = 0;
    for (;; n++) {
        int kl = snprintf(key, sizeof key, "k%d", n);
        int vl = snprintf(val, sizeof val, "value-%d", n * 31);
        weir_record_t r = {.timestamp = n,
                           .key = key,
                           .key_len = (uint32_t)kl,
                           .value = val,
                           .value_len = (uint32_t)vl};
        size_t before = w.len;
        if (!weir_bufwriter_record(&w, &r)) {
            assert_int_equal(w.len, before); /* unchanged */
            assert_true(before + weir_record_encoded_size(&r) > sizeof buf);
            break;
        }
    }
    assert_true(n > 10);
    /* Empty key and value; key == NULL allowed */
    weir_bufwriter_t w2;
    uint8_t small[17];
    weir_bufwriter_init(&w2, small, sizeof small);
    weir_record_t empty = {.timestamp = -5};
    assert_true(weir_bufwriter_record(&w2, &empty));
    assert_false(weir_bufwriter_end(&w2));
    assert_false(weir_bufwriter_watermark(&w2, 1));
    assert_false(weir_bufwriter_barrier(&w2, 1, 1));

    weir_bufreader_t rd;
    weir_bufreader_init(&rd, buf, w.len);
    weir_event_t ev;
    for (int i = 0; i < n; i++) {
        assert_int_equal(weir_bufreader_next(&rd, &ev), 1);
        int kl = snprintf(key, sizeof key, "k%d", i);
        int vl = snprintf(val, sizeof val, "value-%d", i * 31);
        assert_int_equal(ev.record.timestamp, i);
        assert_int_equal(ev.record.key_len, kl);
        assert_memory_equal(ev.record.key, key, (size_t)kl);
        assert_int_equal(ev.record.value_len, vl);
        assert_memory_equal(ev.record.value, val, (size_t)vl);
    }
    assert_int_equal(weir_bufreader_next(&rd, &ev), 0);

    weir_bufreader_init(&rd, small, w2.len);
    assert_int_equal(weir_bufreader_next(&rd, &ev), 1);
    assert_int_equal(ev.record.key_len, 0);
    assert_int_equal(ev.record.value_len, 0);
    assert_int_equal(ev.record.timestamp, -5);
}

static int next_of(const uint8_t *b, size_t n) {
    /* Exact-size heap copy so ASan catches any over-read. */
    uint8_t *c = malloc(n ? n : 1);
    memcpy(c, b, n);
    weir_bufreader_t rd;
    weir_bufreader_init(&rd, c, n);
    weir_event_t ev;
    int rc = weir_bufreader_next(&rd, &ev);
    if (rc < 0)
        assert_ptr_equal(rd.pos, c); /* stays at the bad entry */
    free(c);
    return rc;
}

static void test_corrupt(void **state) {
    (void)state;
    uint8_t buf[64];
    weir_bufwriter_t w;
    weir_bufwriter_init(&w, buf, sizeof buf);
    weir_record_t r = {.timestamp = 1, .key = "key", .key_len = 3, .value = "v", .value_len = 1};
    assert_true(weir_bufwriter_record(&w, &r));
    /* every truncation of a record is corrupt */
    for (size_t cut = 1; cut < w.len; cut++)
        assert_int_equal(next_of(buf, cut), WEIR_ECORRUPT);
    assert_int_equal(next_of(buf, w.len), 1);

    /* key longer than WEIR_MAX_KEY_LEN */
    uint8_t big[17] = {1};
    uint32_t k = WEIR_MAX_KEY_LEN + 1;
    memcpy(big + 9, &k, 4); /* little-endian host */
    assert_int_equal(next_of(big, sizeof big), WEIR_ECORRUPT);
    /* value length that would overflow */
    uint8_t ovf[17] = {1};
    uint32_t v = 0xffffffffu;
    memcpy(ovf + 13, &v, 4);
    assert_int_equal(next_of(ovf, sizeof ovf), WEIR_ECORRUPT);
    /* unknown kinds */
    const uint8_t zero[] = {0}, five[] = {5}, ff[] = {0xff};
    assert_int_equal(next_of(zero, 1), WEIR_ECORRUPT);
    assert_int_equal(next_of(five, 1), WEIR_ECORRUPT);
    assert_int_equal(next_of(ff, 1), WEIR_ECORRUPT);
    /* truncated events */
    uint8_t bar[17] = {2};
    assert_int_equal(next_of(bar, 16), WEIR_ECORRUPT);
    assert_int_equal(next_of(bar, 17), 1);
    uint8_t wm[9] = {3};
    assert_int_equal(next_of(wm, 8), WEIR_ECORRUPT);
    assert_int_equal(next_of(wm, 9), 1);

    /* random garbage: never crashes, always terminates */
    uint32_t s = 12345;
    for (int iter = 0; iter < 5000; iter++) {
        uint8_t g[64];
        size_t n = (size_t)(iter % 64);
        for (size_t i = 0; i < n; i++) {
            s = s * 1103515245u + 12345u;
            g[i] = (uint8_t)(s >> 16);
            if (i % 17 == 0)
                g[i] = (uint8_t)(1 + (s >> 8) % 4);
        }
        uint8_t *c = malloc(n ? n : 1);
        memcpy(c, g, n);
        weir_bufreader_t rd;
        weir_bufreader_init(&rd, c, n);
        weir_event_t ev;
        int rc, steps = 0;
        while ((rc = weir_bufreader_next(&rd, &ev)) == 1) {
            assert_true(rd.pos <= c + n);
            assert_true(++steps <= 64);
        }
        assert_true(rc == 0 || rc == WEIR_ECORRUPT);
        free(c);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_full_and_roundtrip),
        cmocka_unit_test(test_corrupt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
