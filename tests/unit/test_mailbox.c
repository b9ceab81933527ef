/* Unit tests of runtime/dataplane/mailbox.c: FIFO order across ring growth and wrap-around,
 * timeouts (no wait, deadline, wake-up by a push from another thread), per-producer order with
 * several producer threads, and freeing of queued buffers on destroy. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "runtime/dataplane/mailbox.h"

static void test_fifo_growth(void **state) {
    (void)state;
    weir_mailbox_t *mb = weir_mailbox_new();
    weir_mbmsg_t m, o;
    uint32_t next_in = 0, next_out = 0;
    /* interleave pushes and pops so the ring wraps before it grows */
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < 7 + round * 3; i++) {
            memset(&m, 0, sizeof m);
            m.type = WEIR_MB_CREDIT;
            m.index = next_in++;
            m.n = 1;
            weir_mailbox_push(mb, &m);
        }
        for (int i = 0; i < 5 + round * 2; i++) {
            assert_int_equal(weir_mailbox_pop(mb, &o, 0), 1);
            assert_int_equal(o.index, next_out++);
        }
        assert_int_equal(weir_mailbox_size(mb), next_in - next_out);
    }
    while (weir_mailbox_pop(mb, &o, 0) == 1)
        assert_int_equal(o.index, next_out++);
    assert_int_equal(next_out, next_in);
    assert_int_equal(weir_mailbox_size(mb), 0);
    weir_mailbox_destroy(&mb);
    assert_null(mb);
    weir_mailbox_destroy(&mb);
}

static void test_timeouts(void **state) {
    (void)state;
    weir_mailbox_t *mb = weir_mailbox_new();
    weir_mbmsg_t o;
    int64_t t0 = weir_now_ns();
    assert_int_equal(weir_mailbox_pop(mb, &o, 0), 0);
    assert_true(weir_now_ns() - t0 < 50 * 1000000LL);

    t0 = weir_now_ns();
    assert_int_equal(weir_mailbox_pop(mb, &o, t0 + 60 * 1000000LL), 0);
    int64_t waited = weir_now_ns() - t0;
    assert_true(waited >= 60 * 1000000LL);
    assert_true(waited < 2000 * 1000000LL);

    /* a deadline in the past returns at once */
    t0 = weir_now_ns();
    assert_int_equal(weir_mailbox_pop(mb, &o, 1), 0);
    assert_true(weir_now_ns() - t0 < 50 * 1000000LL);
    weir_mailbox_destroy(&mb);
}

typedef struct producer {
    weir_mailbox_t *mb;
    uint32_t id;
    uint32_t count;
    int64_t delay_ns;
} producer_t;

static void *produce(void *arg) {
    producer_t *p = arg;
    for (uint32_t i = 0; i < p->count; i++) {
        if (p->delay_ns)
            weir_sleep_ns(p->delay_ns);
        weir_mbmsg_t m = {.type = WEIR_MB_CALL, .index = p->id, .n = i};
        weir_mailbox_push(p->mb, &m);
    }
    return NULL;
}

static void test_wakeup(void **state) {
    (void)state;
    weir_mailbox_t *mb = weir_mailbox_new();
    producer_t p = {.mb = mb, .id = 0, .count = 3, .delay_ns = 30 * 1000000LL};
    pthread_t th;
    int64_t t0 = weir_now_ns();
    assert_int_equal(pthread_create(&th, NULL, produce, &p), 0);
    weir_mbmsg_t o;
    /* wait forever: woken by each push */
    for (uint32_t i = 0; i < 3; i++) {
        assert_int_equal(weir_mailbox_pop(mb, &o, -1), 1);
        assert_int_equal(o.n, i);
    }
    assert_true(weir_now_ns() - t0 >= 90 * 1000000LL);
    pthread_join(th, NULL);
    /* a deadline far away is cut short by a push */
    p.count = 1;
    t0 = weir_now_ns();
    assert_int_equal(pthread_create(&th, NULL, produce, &p), 0);
    assert_int_equal(weir_mailbox_pop(mb, &o, t0 + 10000 * 1000000LL), 1);
    assert_true(weir_now_ns() - t0 < 5000 * 1000000LL);
    pthread_join(th, NULL);
    weir_mailbox_destroy(&mb);
}

static void test_many_producers(void **state) {
    (void)state;
    enum { NP = 4, N = 20000 };
    weir_mailbox_t *mb = weir_mailbox_new();
    producer_t ps[NP];
    pthread_t th[NP];
    for (uint32_t i = 0; i < NP; i++) {
        ps[i] = (producer_t){.mb = mb, .id = i, .count = N, .delay_ns = 0};
        assert_int_equal(pthread_create(&th[i], NULL, produce, &ps[i]), 0);
    }
    uint32_t next[NP] = {0};
    weir_mbmsg_t o;
    for (uint32_t got = 0; got < NP * N; got++) {
        assert_int_equal(weir_mailbox_pop(mb, &o, weir_now_ns() + 10000 * 1000000LL), 1);
        assert_true(o.index < NP);
        assert_int_equal(o.n, next[o.index]); /* per-producer FIFO */
        next[o.index]++;
    }
    for (uint32_t i = 0; i < NP; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(next[i], N);
    }
    assert_int_equal(weir_mailbox_size(mb), 0);
    weir_mailbox_destroy(&mb);
}

static int called;
static void call_fn(void *arg) {
    called += *(int *)arg;
}

static void test_ownership(void **state) {
    (void)state;
    weir_mailbox_t *mb = weir_mailbox_new();
    weir_chankey_t k;
    memset(&k, 0, sizeof k);
    for (int i = 0; i < 40; i++) {
        weir_mbmsg_t m = {
            .type = WEIR_MB_BUFFER, .index = (uint32_t)i, .buf = weir_netbuf_new(&k, 64)};
        m.buf->len = (size_t)i;
        weir_mailbox_push(mb, &m);
    }
    weir_mbmsg_t o;
    assert_int_equal(weir_mailbox_pop(mb, &o, 0), 1);
    assert_non_null(o.buf);
    assert_int_equal(o.buf->len, 0);
    weir_netbuf_free(&o.buf);
    int five = 5;
    weir_mbmsg_t c = {.type = WEIR_MB_CALL, .fn = call_fn, .arg = &five};
    weir_mailbox_push(mb, &c);
    assert_int_equal(weir_mailbox_size(mb), 40);
    /* destroy frees the 39 queued buffers: ASan's leak check fails otherwise */
    weir_mailbox_destroy(&mb);
    assert_int_equal(called, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_growth), cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_wakeup),      cmocka_unit_test(test_many_producers),
        cmocka_unit_test(test_ownership),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
