/* Unit tests of runtime/dataplane/record.c: the byte layout against the documented table, round
 * trips, zero-copy reads, full buffers and every corruption the reader must report; barriers of
 * savepoints and stops with their kind and target directory. */
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

    /* a checkpoint's barrier: kind 0, no target (issue 9 added offsets 17..19) */
    assert_true(weir_bufwriter_barrier(&w, 7, -1, 0, NULL, 0));
    const uint8_t want_bar[] = {2,    7,    0,    0,    0,    0,    0,    0,    0,    0xff,
                                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00};
    assert_memory_equal(buf + sizeof want_rec, want_bar, sizeof want_bar);
    assert_int_equal(weir_barrier_encoded_size(0), sizeof want_bar);
    assert_true(weir_bufwriter_watermark(&w, 256));
    const uint8_t want_wm[] = {3, 0, 1, 0, 0, 0, 0, 0, 0};
    assert_memory_equal(buf + sizeof want_rec + 20, want_wm, sizeof want_wm);
    assert_true(weir_bufwriter_end(&w));
    assert_int_equal(buf[sizeof want_rec + 20 + 9], 4);
    assert_int_equal(w.len, sizeof want_rec + 20 + 9 + 1);

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
    assert_int_equal(ev.ck_kind, 0);
    assert_int_equal(ev.target_len, 0);
    assert_null(ev.target);
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
    assert_false(weir_bufwriter_barrier(&w2, 1, 1, 0, NULL, 0));

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
    uint8_t bar[20] = {2};
    assert_int_equal(next_of(bar, 16), WEIR_ECORRUPT);
    assert_int_equal(next_of(bar, 17), WEIR_ECORRUPT); /* the checkpoint kind is missing */
    assert_int_equal(next_of(bar, 19), WEIR_ECORRUPT);
    assert_int_equal(next_of(bar, 20), 1);
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

/* Savepoint and stop barriers: the kind and the target directory travel with the barrier
 * (offsets 17, 18, 20 of record.h), read zero-copy; the writer refuses what the reader would. */
static void test_barrier_kinds(void **state) {
    (void)state;
    const char *dir = "/sp/savepoint-012345-0123456789ab";
    uint16_t dl = (uint16_t)strlen(dir);
    uint8_t buf[128];
    weir_bufwriter_t w;
    weir_bufwriter_init(&w, buf, sizeof buf);
    assert_true(weir_bufwriter_barrier(&w, 0x0102, 5, 2, dir, dl));
    assert_int_equal(w.len, 20 + dl);
    assert_int_equal(weir_barrier_encoded_size(dl), 20 + dl);
    const uint8_t head[] = {2, 0x02, 0x01, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 2, dl, 0};
    assert_memory_equal(buf, head, sizeof head);
    assert_memory_equal(buf + 20, dir, dl); /* no NUL, not terminated */
    assert_true(weir_bufwriter_barrier(&w, 3, 6, 1, "/x", 2));
    assert_true(weir_bufwriter_end(&w));

    weir_bufreader_t rd;
    weir_bufreader_init(&rd, buf, w.len);
    weir_event_t ev;
    assert_int_equal(weir_bufreader_next(&rd, &ev), 1);
    assert_int_equal(ev.kind, WEIR_EV_BARRIER);
    assert_int_equal(ev.checkpoint_id, 0x0102);
    assert_int_equal(ev.timestamp, 5);
    assert_int_equal(ev.ck_kind, 2);
    assert_int_equal(ev.target_len, dl);
    assert_ptr_equal(ev.target, (const char *)buf + 20); /* zero-copy */
    assert_int_equal(weir_bufreader_next(&rd, &ev), 1);
    assert_int_equal(ev.ck_kind, 1);
    assert_int_equal(ev.target_len, 2);
    assert_memory_equal(ev.target, "/x", 2);
    assert_int_equal(weir_bufreader_next(&rd, &ev), 1);
    assert_int_equal(ev.kind, WEIR_EV_END);
    assert_int_equal(weir_bufreader_next(&rd, &ev), 0);

    /* every truncation of a barrier with a target is corrupt */
    size_t whole = 20 + dl;
    for (size_t cut = 1; cut < whole; cut++)
        assert_int_equal(next_of(buf, cut), WEIR_ECORRUPT);
    assert_int_equal(next_of(buf, whole), 1);
    /* a kind above 2 (stop-with-savepoint) */
    uint8_t bad[20 + 4096];
    memcpy(bad, buf, whole);
    bad[17] = 3;
    assert_int_equal(next_of(bad, whole), WEIR_ECORRUPT);
    bad[17] = 0xff;
    assert_int_equal(next_of(bad, whole), WEIR_ECORRUPT);
    /* a NUL inside the target */
    memcpy(bad, buf, whole);
    bad[25] = 0;
    assert_int_equal(next_of(bad, whole), WEIR_ECORRUPT);
    /* a target of 4095 bytes is the longest; 4096 is corrupt, even when the bytes are there */
    memset(bad, 'a', sizeof bad);
    memcpy(bad, head, 18);
    bad[18] = 0xff;
    bad[19] = 0x0f;
    assert_int_equal(next_of(bad, 20 + 4095), 1);
    bad[18] = 0x00;
    bad[19] = 0x10;
    assert_int_equal(next_of(bad, 20 + 4096), WEIR_ECORRUPT);
    bad[18] = 0xff;
    bad[19] = 0xff;
    assert_int_equal(next_of(bad, sizeof bad), WEIR_ECORRUPT);

    /* the writer refuses the same, leaving the buffer unchanged */
    uint8_t big[20 + 4096 + 16];
    char target[4097];
    memset(target, 't', sizeof target);
    weir_bufwriter_init(&w, big, sizeof big);
    assert_false(weir_bufwriter_barrier(&w, 1, 1, 3, NULL, 0));
    assert_false(weir_bufwriter_barrier(&w, 1, 1, 1, target, 4096));
    assert_false(weir_bufwriter_barrier(&w, 1, 1, 1, "a\0b", 3));
    assert_false(weir_bufwriter_barrier(&w, 1, 1, 1, NULL, 3));
    assert_int_equal(w.len, 0);
    assert_true(weir_bufwriter_barrier(&w, 1, 1, 1, target, 4095));
    assert_int_equal(w.len, 20 + 4095);
    /* no room: unchanged */
    assert_false(weir_bufwriter_barrier(&w, 2, 1, 1, target, 4095));
    assert_int_equal(w.len, 20 + 4095);
}

/* Watermark status (kind 5): round trip of both values; truncated or another value is corrupt. */
static void test_watermark_status(void **state) {
    (void)state;
    uint8_t buf[13];
    weir_bufwriter_t w;
    weir_bufwriter_init(&w, buf, sizeof buf);
    assert_true(weir_bufwriter_status(&w, true));
    assert_true(weir_bufwriter_watermark(&w, -42));
    assert_true(weir_bufwriter_status(&w, false));
    assert_int_equal(w.len, 2 + 9 + 2);
    assert_false(weir_bufwriter_status(&w, true)); /* full */
    weir_bufreader_t r;
    weir_event_t ev;
    weir_bufreader_init(&r, buf, w.len);
    assert_int_equal(weir_bufreader_next(&r, &ev), 1);
    assert_int_equal(ev.kind, WEIR_EV_STATUS);
    assert_true(ev.idle);
    assert_int_equal(weir_bufreader_next(&r, &ev), 1);
    assert_int_equal(ev.kind, WEIR_EV_WATERMARK);
    assert_int_equal(ev.timestamp, -42);
    assert_int_equal(weir_bufreader_next(&r, &ev), 1);
    assert_int_equal(ev.kind, WEIR_EV_STATUS);
    assert_false(ev.idle);
    assert_int_equal(weir_bufreader_next(&r, &ev), 0);
    const uint8_t bad[] = {5, 2}, trunc[] = {5};
    weir_bufreader_init(&r, bad, sizeof bad);
    assert_int_equal(weir_bufreader_next(&r, &ev), WEIR_ECORRUPT);
    weir_bufreader_init(&r, trunc, sizeof trunc);
    assert_int_equal(weir_bufreader_next(&r, &ev), WEIR_ECORRUPT);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout),           cmocka_unit_test(test_full_and_roundtrip),
        cmocka_unit_test(test_corrupt),          cmocka_unit_test(test_barrier_kinds),
        cmocka_unit_test(test_watermark_status),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
