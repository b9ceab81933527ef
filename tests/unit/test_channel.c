/* Unit tests of runtime/dataplane/channel.c: the 28-byte key layout, buffers, sender accounting
 * (credits, buffer filling, oversized records, flush timing) and receiver accounting (no buffer
 * without credit, credits withheld while blocked), and a simulated sender/receiver pair. */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "runtime/dataplane/channel.h"

static weir_chankey_t key(void) {
    weir_chankey_t k;
    memset(&k, 0, sizeof k);
    for (int i = 0; i < 16; i++)
        k.job[i] = (uint8_t)(0xa0 + i);
    k.attempt = 0x01020304;
    k.edge = 0x0506;
    k.src = 0x0708;
    k.dst = 0x090a;
    return k;
}

static void test_chankey(void **state) {
    (void)state;
    weir_chankey_t k = key();
    uint8_t w[WEIR_CHANKEY_WIRE_SIZE];
    weir_chankey_encode(&k, w);
    uint8_t want[28];
    for (int i = 0; i < 16; i++)
        want[i] = (uint8_t)(0xa0 + i);
    const uint8_t tail[] = {0x04, 0x03, 0x02, 0x01, 0x06, 0x05, 0, 0, 0x08, 0x07, 0x0a, 0x09};
    memcpy(want + 16, tail, sizeof tail);
    assert_memory_equal(w, want, 28);

    weir_chankey_t d;
    assert_int_equal(weir_chankey_decode(w, 28, &d), 0);
    assert_true(weir_chankey_equal(&k, &d));
    assert_true(weir_chankey_hash(&k) == weir_chankey_hash(&d));
    assert_int_equal(weir_chankey_decode(w, 27, &d), WEIR_EPROTO);

    weir_chankey_t o = k;
    o.dst++;
    assert_false(weir_chankey_equal(&k, &o));
    assert_true(weir_chankey_hash(&k) != weir_chankey_hash(&o));
    o = k;
    o.job[15] ^= 1;
    assert_false(weir_chankey_equal(&k, &o));
    o = k;
    o.attempt++;
    assert_false(weir_chankey_equal(&k, &o));

    /* Edge ids are 32 bits on the wire: edges 1 and 65537 are different channels. */
    weir_chankey_t e1 = k, e2 = k;
    e1.edge = 1;
    e2.edge = 65537;
    uint8_t w1[WEIR_CHANKEY_WIRE_SIZE], w2[WEIR_CHANKEY_WIRE_SIZE];
    weir_chankey_encode(&e1, w1);
    weir_chankey_encode(&e2, w2);
    assert_memory_not_equal(w1, w2, WEIR_CHANKEY_WIRE_SIZE);
    assert_int_equal(weir_chankey_decode(w2, sizeof w2, &d), 0);
    assert_int_equal(d.edge, 65537);
    assert_false(weir_chankey_equal(&e1, &e2));
}

static void test_netbuf(void **state) {
    (void)state;
    weir_chankey_t k = key();
    weir_netbuf_t *b = weir_netbuf_new(&k, 100);
    assert_non_null(b);
    assert_int_equal(b->cap, 100);
    assert_int_equal(b->len, 0);
    memset(b->data, 0x5a, 100); /* writable for cap bytes (ASan) */
    assert_true(weir_chankey_equal(&b->key, &k));
    weir_netbuf_free(&b);
    assert_null(b);
    weir_netbuf_free(&b); /* NULL is fine */
}

static weir_record_t rec_of(const char *k, const char *v, int64_t ts) {
    weir_record_t r = {.timestamp = ts,
                       .key = k,
                       .key_len = (uint32_t)strlen(k),
                       .value = v,
                       .value_len = (uint32_t)strlen(v)};
    return r;
}

static void test_outchan(void **state) {
    (void)state;
    weir_chankey_t k = key();
    weir_outchan_t ch;
    weir_outchan_init(&ch, &k, 64);
    assert_int_equal(ch.credits, 0);
    assert_false(weir_outchan_has_data(&ch));
    assert_false(weir_outchan_flush_due(&ch, 1000, 0));

    /* 17 + 1 + 2 = 20 bytes each: three fit into 64, the fourth does not */
    weir_record_t r = rec_of("k", "vv", 5);
    assert_true(weir_outchan_write_record(&ch, &r, 1000));
    assert_true(weir_outchan_has_data(&ch));
    assert_true(weir_outchan_write_record(&ch, &r, 2000));
    assert_true(weir_outchan_write_record(&ch, &r, 3000));
    assert_false(weir_outchan_write_record(&ch, &r, 4000));
    /* flush timing counts from the first entry */
    assert_false(weir_outchan_flush_due(&ch, 1999, 1000));
    assert_true(weir_outchan_flush_due(&ch, 2000, 1000));

    weir_outchan_add_credit(&ch, 2);
    weir_netbuf_t *b = weir_outchan_take(&ch);
    assert_int_equal(ch.credits, 1);
    assert_int_equal(b->len, 60);
    assert_int_equal(b->cap, 64);
    assert_true(weir_chankey_equal(&b->key, &k));
    assert_false(weir_outchan_has_data(&ch));
    assert_int_equal(ch.buffers_sent, 1);
    assert_int_equal(ch.bytes_sent, 60);
    assert_int_equal(ch.records_sent, 3);
    weir_bufreader_t rd;
    weir_bufreader_init(&rd, b->data, b->len);
    weir_event_t ev;
    int n = 0;
    while (weir_bufreader_next(&rd, &ev) == 1) {
        assert_int_equal(ev.kind, WEIR_EV_RECORD);
        assert_memory_equal(ev.record.value, "vv", 2);
        n++;
    }
    assert_int_equal(n, 3);
    weir_netbuf_free(&b);

    /* a record larger than buffer_size: current data must go first, then it gets its own
     * buffer of exactly its size */
    assert_true(weir_outchan_write_record(&ch, &r, 5000));
    char big[200];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    weir_record_t rb = rec_of("big", big, 6);
    assert_false(weir_outchan_write_record(&ch, &rb, 5000));
    b = weir_outchan_take(&ch);
    assert_int_equal(b->len, 20);
    weir_netbuf_free(&b);
    assert_int_equal(ch.credits, 0);
    assert_true(weir_outchan_write_record(&ch, &rb, 6000));
    assert_int_equal(ch.cur->cap, weir_record_encoded_size(&rb));
    assert_false(weir_outchan_write_end(&ch, 6000)); /* exactly full */
    weir_outchan_add_credit(&ch, 1);
    b = weir_outchan_take(&ch);
    assert_int_equal(b->len, 17 + 3 + 199);
    weir_netbuf_free(&b);

    /* events */
    assert_true(weir_outchan_write_barrier(&ch, 9, 77, 0, NULL, 0, 7000));
    assert_true(weir_outchan_write_end(&ch, 7000));
    assert_int_equal(ch.w.len, 21); /* a checkpoint's barrier is 20 bytes since issue 9 */
    assert_int_equal(ch.records_sent, 5);
    weir_outchan_destroy(&ch); /* frees the unsent buffer (ASan leak check) */
}

/* A savepoint's barrier carries its target directory: one longer than the buffer goes after the
 * data in a buffer of its own size (like a big record); the format's bounds are refused before
 * anything is written. */
static void test_outchan_savepoint_barrier(void **state) {
    (void)state;
    weir_chankey_t k = key();
    weir_outchan_t ch;
    weir_outchan_init(&ch, &k, 64);
    weir_record_t r = rec_of("k", "vv", 5);
    assert_true(weir_outchan_write_record(&ch, &r, 1000));
    char target[300];
    memset(target, 'd', sizeof target);
    target[0] = '/';
    assert_false(weir_outchan_write_barrier(&ch, 4, 9, 2, target, sizeof target, 1000));
    weir_outchan_add_credit(&ch, 2);
    weir_netbuf_t *b = weir_outchan_take(&ch);
    assert_int_equal(b->len, 20);
    weir_netbuf_free(&b);
    assert_true(weir_outchan_write_barrier(&ch, 4, 9, 2, target, sizeof target, 2000));
    assert_int_equal(ch.cur->cap, 20 + sizeof target);
    b = weir_outchan_take(&ch);
    weir_bufreader_t rd;
    weir_bufreader_init(&rd, b->data, b->len);
    weir_event_t ev;
    assert_int_equal(weir_bufreader_next(&rd, &ev), 1);
    assert_int_equal(ev.kind, WEIR_EV_BARRIER);
    assert_int_equal(ev.checkpoint_id, 4);
    assert_int_equal(ev.ck_kind, 2);
    assert_int_equal(ev.target_len, sizeof target);
    assert_memory_equal(ev.target, target, sizeof target);
    assert_int_equal(weir_bufreader_next(&rd, &ev), 0);
    weir_netbuf_free(&b);
    /* out of the format's bounds: refused, nothing written */
    char huge[4096];
    memset(huge, 'h', sizeof huge);
    assert_false(weir_outchan_write_barrier(&ch, 5, 9, 1, huge, sizeof huge, 3000));
    assert_false(weir_outchan_write_barrier(&ch, 5, 9, 3, NULL, 0, 3000));
    assert_false(weir_outchan_write_barrier(&ch, 5, 9, 1, "a\0", 2, 3000));
    assert_false(weir_outchan_has_data(&ch));
    weir_outchan_destroy(&ch);
}

static void test_inchan(void **state) {
    (void)state;
    weir_chankey_t k = key();
    weir_inchan_t in;
    weir_inchan_init(&in, &k, 2);
    assert_int_equal(weir_inchan_on_buffer(&in, 10), 0);
    assert_int_equal(weir_inchan_on_buffer(&in, 20), 0);
    assert_int_equal(weir_inchan_on_buffer(&in, 30), WEIR_EPROTO); /* sender had no credit */
    assert_int_equal(in.held, 2);
    assert_int_equal(in.buffers_received, 2);
    assert_int_equal(in.bytes_received, 30);
    assert_int_equal(weir_inchan_consumed(&in), 1);
    assert_int_equal(weir_inchan_on_buffer(&in, 5), 0);

    weir_inchan_block(&in);
    assert_int_equal(weir_inchan_consumed(&in), 0);
    assert_int_equal(weir_inchan_consumed(&in), 0);
    assert_int_equal(in.withheld, 2);
    assert_int_equal(in.held, 0);
    /* withheld credits are still owed: the sender has none, so a buffer now is a violation */
    assert_int_equal(weir_inchan_on_buffer(&in, 5), WEIR_EPROTO);
    assert_int_equal(weir_inchan_unblock(&in), 2);
    assert_int_equal(in.withheld, 0);
    assert_int_equal(weir_inchan_unblock(&in), 0);
    assert_int_equal(weir_inchan_on_buffer(&in, 5), 0);
    assert_int_equal(weir_inchan_consumed(&in), 1);
}

/* Batched credits: half the capacity per grant, owed credits count against the capacity (a
 * buffer sent on them is a protocol error), are handed out by take_owed and by unblock. */
static void test_inchan_batched(void **state) {
    (void)state;
    weir_chankey_t k = key();
    weir_inchan_t in;
    weir_inchan_init(&in, &k, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(weir_inchan_on_buffer(&in, 10), 0);
    assert_int_equal(weir_inchan_consumed_batched(&in), 0); /* 1 owed: below the batch of 2 */
    assert_int_equal(in.owed, 1);
    assert_int_equal(weir_inchan_on_buffer(&in, 10), WEIR_EPROTO); /* the sender has none */
    assert_int_equal(weir_inchan_consumed_batched(&in), 2);
    assert_int_equal(in.owed, 0);
    assert_int_equal(weir_inchan_consumed_batched(&in), 0);
    assert_int_equal(weir_inchan_take_owed(&in), 1);
    assert_int_equal(weir_inchan_take_owed(&in), 0);
    /* blocked: consumed buffers are withheld, owed ones come back with the unblock */
    assert_int_equal(weir_inchan_consumed_batched(&in), 0);
    assert_int_equal(in.owed, 1);
    weir_inchan_block(&in);
    assert_int_equal(weir_inchan_on_buffer(&in, 10), 0);
    assert_int_equal(weir_inchan_consumed_batched(&in), 0);
    assert_int_equal(in.withheld, 1);
    assert_int_equal(weir_inchan_unblock(&in), 2);
    assert_int_equal(in.owed + in.withheld + in.held, 0);
    /* capacity 1: every credit at once */
    weir_inchan_init(&in, &k, 1);
    assert_int_equal(weir_inchan_on_buffer(&in, 10), 0);
    assert_int_equal(weir_inchan_consumed_batched(&in), 1);
}

/* A sender and a receiver exchanging buffers through a FIFO "wire", with the receiver
 * consuming at random and blocking at random. Checks: nothing is sent without credit, at most
 * capacity buffers are ever in flight + held, every record arrives in order. */
static void simulate(bool batched) {
    weir_chankey_t k = key();
    const uint32_t cap = batched ? 4 : 3; /* 4: batches of 2 */
    weir_outchan_t out;
    weir_inchan_t in;
    weir_outchan_init(&out, &k, 128);
    weir_inchan_init(&in, &k, cap);
    weir_outchan_add_credit(&out, cap); /* initial grant */

    weir_netbuf_t *wire[64];
    size_t wire_n = 0;
    weir_netbuf_t *held[64];
    size_t held_n = 0;
    uint32_t rnd = 7;
    const int total = 3000;
    int produced = 0, next_expected = 0;
    int64_t now = 0;
    char key_s[16], val[32];
    while (next_expected < total) {
        now += 1000;
        rnd = rnd * 1664525u + 1013904223u;
        int action = (int)((rnd >> 16) % 4);
        if (action == 0 && produced < total) {
            int kl = snprintf(key_s, sizeof key_s, "%d", produced);
            int vl = snprintf(val, sizeof val, "v%d", produced);
            weir_record_t r = {.timestamp = produced,
                               .key = key_s,
                               .key_len = (uint32_t)kl,
                               .value = val,
                               .value_len = (uint32_t)vl};
            if (weir_outchan_write_record(&out, &r, now)) {
                produced++;
            } else if (out.credits > 0) {
                wire[wire_n++] = weir_outchan_take(&out);
            }
        } else if (action == 1 && weir_outchan_has_data(&out) && out.credits > 0 &&
                   (produced == total || weir_outchan_flush_due(&out, now, 5000))) {
            wire[wire_n++] = weir_outchan_take(&out);
        } else if (action == 2 && wire_n > 0) {
            weir_netbuf_t *b = wire[0];
            memmove(wire, wire + 1, --wire_n * sizeof *wire);
            assert_int_equal(weir_inchan_on_buffer(&in, b->len), 0);
            held[held_n++] = b;
        } else if (action == 3 && held_n > 0) {
            weir_netbuf_t *b = held[0];
            memmove(held, held + 1, --held_n * sizeof *held);
            weir_bufreader_t rd;
            weir_bufreader_init(&rd, b->data, b->len);
            weir_event_t ev;
            while (weir_bufreader_next(&rd, &ev) == 1) {
                assert_int_equal(ev.record.timestamp, next_expected);
                next_expected++;
            }
            weir_netbuf_free(&b);
            weir_outchan_add_credit(&out, batched ? weir_inchan_consumed_batched(&in)
                                                  : weir_inchan_consumed(&in));
            if ((rnd >> 8) % 7 == 0)
                weir_inchan_block(&in);
            else if (in.blocked && (rnd >> 8) % 3 == 0)
                weir_outchan_add_credit(&out, weir_inchan_unblock(&in));
        } else if (in.blocked && (rnd >> 4) % 5 == 0) {
            weir_outchan_add_credit(&out, weir_inchan_unblock(&in));
        }
        /* the invariant of credit-based flow control */
        assert_true(out.credits + wire_n + in.held + in.withheld + in.owed == cap);
        assert_true(wire_n + held_n <= cap);
    }
    assert_int_equal(next_expected, total);
    assert_true(out.buffers_sent >= (uint64_t)total * 20 / 128);
    weir_outchan_destroy(&out);
}

static void test_simulation(void **state) {
    (void)state;
    simulate(false);
}

static void test_simulation_batched(void **state) {
    (void)state;
    simulate(true);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chankey),    cmocka_unit_test(test_netbuf),
        cmocka_unit_test(test_outchan),    cmocka_unit_test(test_outchan_savepoint_barrier),
        cmocka_unit_test(test_inchan),     cmocka_unit_test(test_inchan_batched),
        cmocka_unit_test(test_simulation), cmocka_unit_test(test_simulation_batched),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
