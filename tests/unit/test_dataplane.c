/* Tests of the ZeroMQ data plane (runtime/dataplane/dataplane.c): two data planes in one process on
 * 127.0.0.1 with ephemeral ports. Oracles: byte patterns generated independently on both sides
 * from the sequence number, explicit credit arithmetic, the stats counters, and frames written by
 * hand (the wire format of runtime/dataplane/README.md) for a peer of another attempt. Every wait
 * is bounded by a deadline so a bug fails the test instead of hanging. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <zmq.h>

#include "common/curve.h"
#include "common/err.h"
#include "common/util.h"
#include "runtime/dataplane/dataplane.h"
#include "testutil.h"

#define WAIT_MS 5000

typedef struct fixture {
    weir_dataplane_t *a, *b;
} fixture_t;

static int setup(void **state) {
    static fixture_t f;
    char err[256] = "";
    f.a = weir_dataplane_new("127.0.0.1", 0, "127.0.0.1", err, sizeof(err));
    if (!f.a)
        fail_msg("dataplane a: %s", err);
    f.b = weir_dataplane_new("127.0.0.1", 0, "127.0.0.1", err, sizeof(err));
    if (!f.b)
        fail_msg("dataplane b: %s", err);
    assert_string_not_equal(weir_dataplane_address(f.a), weir_dataplane_address(f.b));
    assert_int_equal(strncmp(weir_dataplane_address(f.a), "tcp://127.0.0.1:", 16), 0);
    *state = &f;
    return 0;
}

static int teardown(void **state) {
    fixture_t *f = *state;
    weir_dataplane_destroy(&f->a);
    weir_dataplane_destroy(&f->b);
    assert_null(f->a);
    return 0;
}

static weir_chankey_t mkkey(uint8_t jobbyte, uint32_t attempt, uint16_t edge) {
    weir_chankey_t k;
    memset(&k, 0, sizeof(k));
    memset(k.job, jobbyte, sizeof(k.job));
    k.attempt = attempt;
    k.edge = edge;
    k.src = 1;
    k.dst = 2;
    return k;
}

static int64_t deadline(int ms) {
    return weir_now_ns() + (int64_t)ms * 1000000;
}

/* Pops one message or fails the test after WAIT_MS. */
static weir_mbmsg_t pop(weir_mailbox_t *mb) {
    weir_mbmsg_t m;
    memset(&m, 0, sizeof(m));
    if (weir_mailbox_pop(mb, &m, deadline(WAIT_MS)) != 1)
        fail_msg("timed out waiting for a mailbox message");
    return m;
}

/* Pops credit messages until @p want credits on output @p index have arrived. */
static void expect_credits(weir_mailbox_t *mb, uint32_t index, uint32_t want) {
    uint32_t got = 0;
    while (got < want) {
        weir_mbmsg_t m = pop(mb);
        assert_int_equal(m.type, WEIR_MB_CREDIT);
        assert_int_equal(m.index, index);
        got += m.n;
    }
    assert_int_equal(got, want);
}

static void fill(uint8_t *p, size_t len, uint64_t seed) {
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (uint8_t)x;
    }
}

static weir_netbuf_t *mkbuf(const weir_chankey_t *k, size_t len, uint64_t seed) {
    weir_netbuf_t *b = weir_netbuf_new(k, len);
    fill(b->data, len, seed);
    b->len = len;
    return b;
}

static void check_buf(const weir_netbuf_t *b, const weir_chankey_t *k, size_t len, uint64_t seed) {
    static uint8_t expect[65536];
    assert_true(len <= sizeof(expect));
    assert_true(weir_chankey_equal(&b->key, k));
    assert_int_equal(b->len, len);
    fill(expect, len, seed);
    assert_memory_equal(b->data, expect, len);
}

typedef struct stat_wait {
    weir_dataplane_t *dp;
    size_t off; /* of the counter in weir_dataplane_stats_t */
    uint64_t min;
} stat_wait_t;

static bool stat_reached(void *arg) {
    stat_wait_t *w = arg;
    weir_dataplane_stats_t st;
    weir_dataplane_get_stats(w->dp, &st);
    return *(uint64_t *)((char *)&st + w->off) >= w->min;
}

static void wait_stat(weir_dataplane_t *dp, size_t off, uint64_t min) {
    stat_wait_t w = {.dp = dp, .off = off, .min = min};
    if (!weir_test_wait_until(stat_reached, &w, WAIT_MS, 1))
        fail_msg("timed out waiting for a stats counter to reach %llu", (unsigned long long)min);
}

/* (1) remote channel: initial credits, two buffers in order with identical bytes, a grant. */
static void test_remote_channel(void **state) {
    fixture_t *f = *state;
    weir_chankey_t k = mkkey(0x11, 1, 1);
    weir_mailbox_t *snd = weir_mailbox_new(), *rcv = weir_mailbox_new();
    weir_dataplane_stats_t a0, b0, a1, b1;
    weir_dataplane_get_stats(f->a, &a0);
    weir_dataplane_get_stats(f->b, &b0);

    assert_int_equal(weir_dataplane_open_input(f->b, &k, weir_dataplane_address(f->a), rcv, 3, 2),
                     0);
    assert_int_equal(weir_dataplane_open_output(f->a, &k, weir_dataplane_address(f->b), snd, 7), 0);
    assert_int_equal(weir_dataplane_open_output(f->a, &k, weir_dataplane_address(f->b), snd, 7),
                     WEIR_EEXIST);
    expect_credits(snd, 7, 2);

    assert_int_equal(weir_dataplane_send(f->a, mkbuf(&k, 1000, 1)), 0);
    assert_int_equal(weir_dataplane_send(f->a, mkbuf(&k, 3, 2)), 0);
    weir_mbmsg_t m = pop(rcv);
    assert_int_equal(m.type, WEIR_MB_BUFFER);
    assert_int_equal(m.index, 3);
    check_buf(m.buf, &k, 1000, 1);
    weir_netbuf_free(&m.buf);
    m = pop(rcv);
    assert_int_equal(m.type, WEIR_MB_BUFFER);
    check_buf(m.buf, &k, 3, 2);
    weir_netbuf_free(&m.buf);

    assert_int_equal(weir_dataplane_grant(f->b, &k, 1), 0);
    expect_credits(snd, 7, 1);
    assert_int_equal(weir_mailbox_size(snd), 0);
    assert_int_equal(weir_mailbox_size(rcv), 0);

    /* The sending data plane counts a frame after zmq_send returns, which can be after the peer
     * delivered it: wait for the sender-side counters, then check they are exact. */
    wait_stat(f->a, offsetof(weir_dataplane_stats_t, frames_out), a0.frames_out + 2);
    /* b sends 3 credit frames: the initial 2, the answer to a's credit request (a total of 2 that
     * delivers nothing new), and the grant of 1 */
    wait_stat(f->b, offsetof(weir_dataplane_stats_t, credits_out), b0.credits_out + 3);
    weir_dataplane_get_stats(f->a, &a1);
    weir_dataplane_get_stats(f->b, &b1);
    assert_int_equal(a1.frames_out - a0.frames_out, 2);
    assert_int_equal(a1.bytes_out - a0.bytes_out, 1003);
    assert_int_equal(b1.frames_in - b0.frames_in, 2);
    assert_int_equal(b1.bytes_in - b0.bytes_in, 1003);
    assert_int_equal(b1.credits_out - b0.credits_out, 3);
    assert_int_equal(a1.local_buffers, a0.local_buffers);

    /* send on a channel without an output end: error, buffer consumed */
    weir_chankey_t unk = mkkey(0x12, 1, 1);
    assert_int_equal(weir_dataplane_send(f->a, mkbuf(&unk, 10, 3)), WEIR_ENOTFOUND);
    assert_int_equal(weir_dataplane_grant(f->a, &unk, 1), WEIR_ENOTFOUND);

    weir_dataplane_close_mailbox(f->a, snd);
    weir_dataplane_close_mailbox(f->b, rcv);
    weir_mailbox_destroy(&snd);
    weir_mailbox_destroy(&rcv);
}

/* (1b) a remote buffer is received without a copy: the netbuf keeps the transport's message
 * (release set, its bytes not in a weir_netbuf_new block); freeing it releases the message
 * (ASan's leak check). Before, every received payload was copied into a new netbuf. */
static void test_remote_no_copy(void **state) {
    fixture_t *f = *state;
    weir_chankey_t k = mkkey(0x13, 1, 1);
    weir_mailbox_t *snd = weir_mailbox_new(), *rcv = weir_mailbox_new();
    assert_int_equal(weir_dataplane_open_input(f->b, &k, weir_dataplane_address(f->a), rcv, 0, 2),
                     0);
    assert_int_equal(weir_dataplane_open_output(f->a, &k, weir_dataplane_address(f->b), snd, 0), 0);
    expect_credits(snd, 0, 2);
    assert_int_equal(weir_dataplane_send(f->a, mkbuf(&k, 65536, 7)), 0);
    assert_int_equal(weir_dataplane_send(f->a, mkbuf(&k, 5, 8)), 0);
    for (int i = 0; i < 2; i++) {
        weir_mbmsg_t m = pop(rcv);
        assert_int_equal(m.type, WEIR_MB_BUFFER);
        check_buf(m.buf, &k, i == 0 ? 65536 : 5, i == 0 ? 7 : 8);
        assert_non_null(m.buf->release);
        assert_ptr_not_equal(m.buf->data, (uint8_t *)(m.buf + 1));
        weir_netbuf_free(&m.buf);
        assert_null(m.buf);
    }
    weir_dataplane_close_mailbox(f->a, snd);
    weir_dataplane_close_mailbox(f->b, rcv);
    weir_mailbox_destroy(&snd);
    weir_mailbox_destroy(&rcv);
}

/* (2) credits granted before open_output are kept and delivered on open_output. */
static void test_credits_before_output(void **state) {
    fixture_t *f = *state;
    weir_chankey_t k = mkkey(0x21, 1, 2);
    weir_mailbox_t *snd = weir_mailbox_new(), *rcv = weir_mailbox_new();
    weir_dataplane_stats_t a0;
    weir_dataplane_get_stats(f->a, &a0);

    assert_int_equal(weir_dataplane_open_input(f->b, &k, weir_dataplane_address(f->a), rcv, 0, 3),
                     0);
    assert_int_equal(weir_dataplane_grant(f->b, &k, 2), 0);
    /* both credit frames reached a before it knows the output end */
    wait_stat(f->a, offsetof(weir_dataplane_stats_t, credits_in), a0.credits_in + 2);
    assert_int_equal(weir_mailbox_size(snd), 0);
    assert_int_equal(weir_dataplane_open_output(f->a, &k, weir_dataplane_address(f->b), snd, 4), 0);
    expect_credits(snd, 4, 5);
    assert_int_equal(weir_mailbox_size(snd), 0);

    /* the same for a local channel */
    weir_chankey_t kl = mkkey(0x22, 1, 2);
    assert_int_equal(weir_dataplane_open_input(f->a, &kl, weir_dataplane_address(f->a), rcv, 0, 1),
                     0);
    assert_int_equal(weir_dataplane_grant(f->a, &kl, 2), 0);
    assert_int_equal(weir_mailbox_size(snd), 0);
    assert_int_equal(weir_dataplane_open_output(f->a, &kl, weir_dataplane_address(f->a), snd, 9),
                     0);
    expect_credits(snd, 9, 3);

    weir_dataplane_close_mailbox(f->a, snd);
    weir_dataplane_close_mailbox(f->a, rcv);
    weir_dataplane_close_mailbox(f->b, rcv);
    weir_mailbox_destroy(&snd);
    weir_mailbox_destroy(&rcv);
}

/* (3) a channel within one data plane bypasses the network and passes the buffer itself. */
static void test_local_channel(void **state) {
    fixture_t *f = *state;
    weir_chankey_t k = mkkey(0x31, 1, 3);
    weir_mailbox_t *snd = weir_mailbox_new(), *rcv = weir_mailbox_new();
    weir_dataplane_stats_t s0, s1;
    weir_dataplane_get_stats(f->a, &s0);
    const char *self = weir_dataplane_address(f->a);

    assert_int_equal(weir_dataplane_open_input(f->a, &k, self, rcv, 5, 2), 0);
    assert_int_equal(weir_dataplane_open_output(f->a, &k, self, snd, 6), 0);
    expect_credits(snd, 6, 2);
    weir_netbuf_t *b = mkbuf(&k, 500, 42);
    assert_int_equal(weir_dataplane_send(f->a, b), 0);
    /* local delivery is synchronous */
    assert_int_equal(weir_mailbox_size(rcv), 1);
    weir_mbmsg_t m = pop(rcv);
    assert_int_equal(m.type, WEIR_MB_BUFFER);
    assert_int_equal(m.index, 5);
    assert_ptr_equal(m.buf, b); /* no copy */
    check_buf(m.buf, &k, 500, 42);
    weir_netbuf_free(&m.buf);
    assert_int_equal(weir_dataplane_grant(f->a, &k, 1), 0);
    assert_int_equal(weir_mailbox_size(snd), 1);
    expect_credits(snd, 6, 1);

    weir_dataplane_get_stats(f->a, &s1);
    assert_int_equal(s1.local_buffers - s0.local_buffers, 1);
    assert_int_equal(s1.frames_out, s0.frames_out);
    assert_int_equal(s1.credits_out, s0.credits_out);
    assert_int_equal(s1.bytes_out, s0.bytes_out);

    weir_dataplane_close_mailbox(f->a, snd);
    weir_dataplane_close_mailbox(f->a, rcv);
    weir_mailbox_destroy(&snd);
    weir_mailbox_destroy(&rcv);
}

/* (4) streaming with a window of 4 credits. */
#define STREAM_N 1000
#define STREAM_LEN 32768
#define WINDOW 4

typedef struct streamer {
    weir_dataplane_t *dp;
    weir_mailbox_t *mb;
    weir_chankey_t key;
    const char *error; /* set by the thread on failure */
} streamer_t;

static void *stream_sender(void *arg) {
    streamer_t *s = arg;
    uint32_t credits = 0;
    for (uint64_t seq = 0; seq < STREAM_N;) {
        if (credits == 0) {
            weir_mbmsg_t m;
            if (weir_mailbox_pop(s->mb, &m, deadline(WAIT_MS)) != 1) {
                s->error = "sender timed out waiting for credit";
                return NULL;
            }
            if (m.type != WEIR_MB_CREDIT || m.index != 0) {
                s->error = "sender got a non-credit message";
                return NULL;
            }
            credits += m.n;
            continue;
        }
        weir_netbuf_t *b = mkbuf(&s->key, STREAM_LEN, seq + 1000);
        memcpy(b->data, &seq, sizeof(seq));
        credits--;
        if (weir_dataplane_send(s->dp, b) != 0) {
            s->error = "send failed";
            return NULL;
        }
        seq++;
    }
    return NULL;
}

static void test_stream_window(void **state) {
    fixture_t *f = *state;
    streamer_t s = {.dp = f->a, .key = mkkey(0x41, 1, 4)};
    s.mb = weir_mailbox_new();
    weir_mailbox_t *rcv = weir_mailbox_new();
    static uint8_t expect[STREAM_LEN];

    assert_int_equal(
        weir_dataplane_open_output(f->a, &s.key, weir_dataplane_address(f->b), s.mb, 0), 0);
    assert_int_equal(
        weir_dataplane_open_input(f->b, &s.key, weir_dataplane_address(f->a), rcv, 1, WINDOW), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, stream_sender, &s), 0);
    size_t max_held = 0;
    for (uint64_t seq = 0; seq < STREAM_N; seq++) {
        weir_mbmsg_t m;
        if (weir_mailbox_pop(rcv, &m, deadline(WAIT_MS)) != 1) {
            pthread_join(th, NULL);
            fail_msg("receiver timed out at buffer %llu (sender: %s)", (unsigned long long)seq,
                     s.error ? s.error : "ok");
        }
        size_t held = 1 + weir_mailbox_size(rcv);
        if (held > max_held)
            max_held = held;
        assert_true(held <= WINDOW);
        assert_int_equal(m.type, WEIR_MB_BUFFER);
        assert_int_equal(m.index, 1);
        assert_int_equal(m.buf->len, STREAM_LEN);
        uint64_t got;
        memcpy(&got, m.buf->data, sizeof(got));
        assert_int_equal(got, seq);
        fill(expect, STREAM_LEN, seq + 1000);
        memcpy(expect, &seq, sizeof(seq));
        assert_memory_equal(m.buf->data, expect, STREAM_LEN);
        weir_netbuf_free(&m.buf);
        if (seq % 100 == 0) {
            /* slow consumer: the window fills up. Wait for it rather than sleep a fixed time (on
             * a loaded machine the sender's thread may not run within 20 ms), then count what
             * is held: this buffer plus the queued ones, never more than the window. */
            int64_t until = deadline(WAIT_MS);
            while (1 + weir_mailbox_size(rcv) < WINDOW && weir_now_ns() < until)
                weir_sleep_ns(1000000);
            weir_sleep_ns(5000000); /* a sender exceeding the window would show by now */
            held = 1 + weir_mailbox_size(rcv);
            assert_true(held <= WINDOW);
            if (held > max_held)
                max_held = held;
        }
        assert_int_equal(weir_dataplane_grant(f->b, &s.key, 1), 0);
    }
    pthread_join(th, NULL);
    assert_null(s.error);
    assert_int_equal(max_held, WINDOW); /* the sender used the whole window, never more */
    weir_dataplane_stats_t st;
    weir_dataplane_get_stats(f->b, &st);
    assert_true(st.bytes_in >= (uint64_t)STREAM_N * STREAM_LEN);

    weir_dataplane_close_mailbox(f->a, s.mb);
    weir_dataplane_close_mailbox(f->b, rcv);
    weir_mailbox_destroy(&s.mb);
    weir_mailbox_destroy(&rcv);
}

/* (5) frames for a closed job are dropped; close_mailbox stops delivery. */
static void test_close(void **state) {
    fixture_t *f = *state;
    weir_chankey_t k = mkkey(0x51, 7, 5);
    weir_mailbox_t *snd = weir_mailbox_new(), *rcv = weir_mailbox_new();
    weir_dataplane_stats_t b0;

    assert_int_equal(weir_dataplane_open_output(f->a, &k, weir_dataplane_address(f->b), snd, 0), 0);
    assert_int_equal(weir_dataplane_open_input(f->b, &k, weir_dataplane_address(f->a), rcv, 0, 2),
                     0);
    expect_credits(snd, 0, 2);
    /* another attempt of the same job must survive close_job(attempt 7) */
    weir_chankey_t other = mkkey(0x51, 8, 5);
    assert_int_equal(
        weir_dataplane_open_input(f->b, &other, weir_dataplane_address(f->a), rcv, 1, 0), 0);

    weir_dataplane_close_job(f->b, k.job, 7);
    assert_int_equal(weir_dataplane_grant(f->b, &k, 1), WEIR_ENOTFOUND);
    assert_int_equal(weir_dataplane_grant(f->b, &other, 1), 0);
    assert_int_equal(weir_dataplane_open_input(f->b, &k, weir_dataplane_address(f->a), rcv, 0, 1),
                     WEIR_ECANCELED);
    weir_dataplane_get_stats(f->b, &b0);
    assert_int_equal(weir_dataplane_send(f->a, mkbuf(&k, 100, 5)), 0);
    wait_stat(f->b, offsetof(weir_dataplane_stats_t, dropped), b0.dropped + 1);
    weir_dataplane_stats_t b1;
    weir_dataplane_get_stats(f->b, &b1);
    assert_int_equal(b1.frames_in - b0.frames_in, 1);
    assert_int_equal(weir_mailbox_size(rcv), 0);
    weir_dataplane_close_mailbox(f->b, rcv);

    /* close_mailbox: the mailbox may be freed right away; later frames are dropped */
    weir_chankey_t k2 = mkkey(0x52, 1, 5);
    weir_mailbox_t *rcv2 = weir_mailbox_new();
    assert_int_equal(weir_dataplane_open_output(f->a, &k2, weir_dataplane_address(f->b), snd, 2),
                     0);
    assert_int_equal(weir_dataplane_open_input(f->b, &k2, weir_dataplane_address(f->a), rcv2, 0, 2),
                     0);
    expect_credits(snd, 2, 2);
    weir_dataplane_close_mailbox(f->b, rcv2);
    weir_mailbox_destroy(&rcv2); /* ASan catches any later push into it */
    weir_dataplane_get_stats(f->b, &b0);
    assert_int_equal(weir_dataplane_send(f->a, mkbuf(&k2, 100, 6)), 0);
    assert_int_equal(weir_dataplane_send(f->a, mkbuf(&k2, 100, 7)), 0);
    wait_stat(f->b, offsetof(weir_dataplane_stats_t, dropped), b0.dropped + 2);

    /* local channel: close_mailbox of the receiver turns sends into drops */
    weir_chankey_t k3 = mkkey(0x53, 1, 5);
    weir_mailbox_t *rcv3 = weir_mailbox_new();
    const char *self = weir_dataplane_address(f->a);
    assert_int_equal(weir_dataplane_open_input(f->a, &k3, self, rcv3, 0, 1), 0);
    assert_int_equal(weir_dataplane_open_output(f->a, &k3, self, snd, 3), 0);
    expect_credits(snd, 3, 1);
    weir_dataplane_close_mailbox(f->a, rcv3);
    weir_mailbox_destroy(&rcv3);
    weir_dataplane_stats_t a0, a1;
    weir_dataplane_get_stats(f->a, &a0);
    assert_int_equal(weir_dataplane_send(f->a, mkbuf(&k3, 10, 8)), 0);
    weir_dataplane_get_stats(f->a, &a1);
    assert_int_equal(a1.dropped - a0.dropped, 1);
    assert_int_equal(a1.local_buffers, a0.local_buffers);

    weir_dataplane_close_mailbox(f->a, snd);
    weir_mailbox_destroy(&snd);
    weir_mailbox_destroy(&rcv);
}

/* (6) attempt fencing: once attempt 2 of a job opened a channel end in a data plane, frames and
 * credits of attempt 1 are dropped there even when they come from the channel's own peer and the
 * channel of attempt 1 is still registered (a task of attempt 1 that is stopping); open_* of
 * attempt 1 fails and its sends and grants go nowhere; attempt 2 is untouched. Each side is fenced
 * while the other still runs attempt 1, so the frames are real ones from the real peer. */
static void test_attempt_fence(void **state) {
    fixture_t *f = *state;
    weir_chankey_t k1 = mkkey(0x7a, 1, 7), k1b = mkkey(0x7a, 1, 8), k2 = mkkey(0x7a, 2, 7);
    weir_mailbox_t *snd = weir_mailbox_new(), *rcv = weir_mailbox_new();
    weir_mailbox_t *snd2 = weir_mailbox_new(), *rcv2 = weir_mailbox_new();
    const char *addr_a = weir_dataplane_address(f->a), *addr_b = weir_dataplane_address(f->b);
    weir_dataplane_stats_t a0, b0, a1, b1;

    /* attempt 1 runs: a sends to b on k1 */
    assert_int_equal(weir_dataplane_open_output(f->a, &k1, addr_b, snd, 0), 0);
    assert_int_equal(weir_dataplane_open_input(f->b, &k1, addr_a, rcv, 0, 2), 0);
    expect_credits(snd, 0, 2);

    /* attempt 2 opens its input end in b only: b fences attempt 1, a does not know yet. A buffer
     * a sends on k1 (its peer, its registered channel) is dropped at b, as a fence, not as a
     * forgery; b's grants on k1 go nowhere; b refuses to open an end of attempt 1. */
    weir_dataplane_get_stats(f->b, &b0);
    assert_int_equal(weir_dataplane_open_input(f->b, &k2, addr_a, rcv2, 0, 1), 0);
    /* its initial grant leaves on the network thread: let it go before counting */
    wait_stat(f->b, offsetof(weir_dataplane_stats_t, credits_out), b0.credits_out + 1);
    weir_dataplane_get_stats(f->b, &b0);
    assert_int_equal(weir_dataplane_send(f->a, mkbuf(&k1, 100, 1)), 0);
    wait_stat(f->b, offsetof(weir_dataplane_stats_t, dropped), b0.dropped + 1);
    weir_dataplane_get_stats(f->b, &b1);
    assert_int_equal(b1.frames_in - b0.frames_in, 1);
    assert_int_equal(b1.rejected, b0.rejected);
    assert_int_equal(weir_mailbox_size(rcv), 0);
    /* counted from here: a's credit request for k1 (sent when it opened its output, before b
     * opened the input) may have been answered after b0 was taken; it came before the buffer
     * above on the same connection, so it is behind us now */
    weir_dataplane_get_stats(f->b, &b0);
    assert_int_equal(weir_dataplane_grant(f->b, &k1, 1), 0);
    weir_dataplane_get_stats(f->b, &b1);
    assert_int_equal(b1.credits_out, b0.credits_out);
    assert_int_equal(weir_dataplane_open_input(f->b, &k1b, addr_a, rcv, 1, 1), WEIR_ECANCELED);

    /* attempt 2 opens its output end in a: a fences attempt 1 too */
    assert_int_equal(weir_dataplane_open_output(f->a, &k2, addr_b, snd2, 0), 0);
    expect_credits(snd2, 0, 1);
    assert_int_equal(weir_dataplane_open_output(f->a, &k1b, addr_b, snd, 1), WEIR_ECANCELED);
    weir_dataplane_get_stats(f->a, &a0);
    assert_int_equal(weir_dataplane_send(f->a, mkbuf(&k1, 10, 9)), 0);
    weir_dataplane_get_stats(f->a, &a1);
    assert_int_equal(a1.dropped - a0.dropped, 1);
    assert_int_equal(a1.frames_out, a0.frames_out);

    /* attempt 2 is untouched */
    assert_int_equal(weir_dataplane_send(f->a, mkbuf(&k2, 64, 10)), 0);
    weir_mbmsg_t m = pop(rcv2);
    assert_int_equal(m.type, WEIR_MB_BUFFER);
    check_buf(m.buf, &k2, 64, 10);
    weir_netbuf_free(&m.buf);
    assert_int_equal(weir_mailbox_size(rcv), 0);
    assert_int_equal(weir_mailbox_size(snd), 0);

    /* credits: the other way round, job 0x7b: a fenced, b still on attempt 1 grants on k1; the
     * credit frame from a's peer is dropped at a and never reaches the stopping sender */
    weir_chankey_t j1 = mkkey(0x7b, 1, 7), j2 = mkkey(0x7b, 2, 7);
    weir_mailbox_t *snd3 = weir_mailbox_new(), *rcv3 = weir_mailbox_new(),
                   *snd4 = weir_mailbox_new();
    weir_dataplane_get_stats(f->a, &a0);
    assert_int_equal(weir_dataplane_open_input(f->b, &j1, addr_a, rcv3, 0, 1), 0);
    assert_int_equal(weir_dataplane_open_output(f->a, &j1, addr_b, snd3, 0), 0);
    expect_credits(snd3, 0, 1);
    /* two credit frames reach a: b's initial grant and b's answer to a's request for the total
     * (whichever comes second delivers nothing: the total is not ahead) */
    wait_stat(f->a, offsetof(weir_dataplane_stats_t, credits_in), a0.credits_in + 2);
    assert_int_equal(weir_dataplane_open_output(f->a, &j2, addr_b, snd4, 0), 0);
    weir_dataplane_get_stats(f->a, &a0);
    assert_int_equal(weir_dataplane_grant(f->b, &j1, 3), 0);
    wait_stat(f->a, offsetof(weir_dataplane_stats_t, dropped), a0.dropped + 1);
    weir_dataplane_get_stats(f->a, &a1);
    assert_int_equal(a1.credits_in - a0.credits_in, 1);
    assert_int_equal(a1.rejected, a0.rejected);
    assert_int_equal(weir_mailbox_size(snd3), 0);

    weir_dataplane_close_mailbox(f->a, snd);
    weir_dataplane_close_mailbox(f->a, snd2);
    weir_dataplane_close_mailbox(f->a, snd3);
    weir_dataplane_close_mailbox(f->a, snd4);
    weir_dataplane_close_mailbox(f->b, rcv);
    weir_dataplane_close_mailbox(f->b, rcv2);
    weir_dataplane_close_mailbox(f->b, rcv3);
    weir_mailbox_destroy(&snd);
    weir_mailbox_destroy(&snd2);
    weir_mailbox_destroy(&snd3);
    weir_mailbox_destroy(&snd4);
    weir_mailbox_destroy(&rcv);
    weir_mailbox_destroy(&rcv2);
    weir_mailbox_destroy(&rcv3);
}

/* Destroy with frames still queued and an unreachable peer must not leak or hang. */
static void test_destroy_with_pending(void **state) {
    (void)state;
    char err[256] = "";
    weir_dataplane_t *dp = weir_dataplane_new("127.0.0.1", 0, NULL, err, sizeof(err));
    assert_non_null(dp);
    weir_chankey_t k = mkkey(0x61, 1, 6);
    weir_mailbox_t *snd = weir_mailbox_new();
    /* port 1 on loopback: nobody listens; frames stay queued while connecting */
    assert_int_equal(weir_dataplane_open_output(dp, &k, "tcp://127.0.0.1:1", snd, 0), 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(weir_dataplane_send(dp, mkbuf(&k, 4096, (uint64_t)i)), 0);
    weir_dataplane_destroy(&dp);
    assert_null(dp);
    weir_dataplane_destroy(&dp); /* NULL accepted */
    weir_mailbox_destroy(&snd);

    dp = weir_dataplane_new("256.0.0.1", 0, NULL, err, sizeof(err));
    assert_null(dp);
    assert_non_null(strstr(err, "256.0.0.1"));
}

/* A raw ZeroMQ peer: a DEALER with routing id @p ident (NULL: ZeroMQ's), CURVE client with @p k
 * (NULL: none; the server key is @p server_pub). */
static void *raw_peer(void *zctx, const char *endpoint, const char *ident, const weir_curve_t *k,
                      const char *server_pub) {
    void *s = zmq_socket(zctx, ZMQ_DEALER);
    int zero = 0;
    assert_non_null(s);
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    if (ident)
        assert_int_equal(zmq_setsockopt(s, ZMQ_ROUTING_ID, ident, strlen(ident)), 0);
    if (k) {
        assert_int_equal(zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server_pub, 40), 0);
        assert_int_equal(zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, k->public_key, 40), 0);
        assert_int_equal(zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, k->secret_key, 40), 0);
    }
    assert_int_equal(zmq_connect(s, endpoint), 0);
    return s;
}

/* Sends a data frame (body != NULL) or a credit frame carrying @p n. */
static void raw_send(void *s, uint8_t type, const weir_chankey_t *k, const void *body, size_t len,
                     uint32_t n) {
    uint8_t hdr[1 + WEIR_CHANKEY_WIRE_SIZE + 4];
    hdr[0] = type;
    weir_chankey_encode(k, hdr + 1);
    memcpy(hdr + 1 + WEIR_CHANKEY_WIRE_SIZE, &n, 4); /* little endian host (x86-64, arm64) */
    if (type == 1) {
        zmq_send(s, hdr, 1 + WEIR_CHANKEY_WIRE_SIZE, ZMQ_SNDMORE);
        zmq_send(s, body, len, 0);
    } else {
        zmq_send(s, hdr, sizeof hdr, 0);
    }
}

/* (7) a frame or credit from a peer that is not the channel's is dropped, and frames for unknown
 * channels allocate nothing (before: a credit for an unknown key made a registry entry). */
static void test_forged_frames(void **state) {
    fixture_t *f = *state;
    weir_chankey_t k = mkkey(0x71, 1, 7);
    weir_mailbox_t *snd = weir_mailbox_new(), *rcv = weir_mailbox_new();
    const char *a = weir_dataplane_address(f->a), *b = weir_dataplane_address(f->b);
    assert_int_equal(weir_dataplane_open_output(f->a, &k, b, snd, 0), 0);
    assert_int_equal(weir_dataplane_open_input(f->b, &k, a, rcv, 0, 2), 0);
    expect_credits(snd, 0, 2);
    weir_dataplane_stats_t a0, b0, a1, b1;
    weir_dataplane_get_stats(f->a, &a0);
    weir_dataplane_get_stats(f->b, &b0);

    void *zctx = zmq_ctx_new();
    void *evil = raw_peer(zctx, b, "tcp://127.0.0.1:1", NULL, NULL);
    void *evil_a = raw_peer(zctx, a, "tcp://127.0.0.1:1", NULL, NULL);
    raw_send(evil, 1, &k, "forged", 6, 0);  /* data into b's input: its peer is a */
    raw_send(evil_a, 2, &k, NULL, 0, 1000); /* credit to a's output: its peer is b */
    raw_send(evil_a, 3, &k, NULL, 0, 0);    /* credit request to a: a has no input end */
    enum { N = 20000 };
    for (uint32_t i = 0; i < N; i++) { /* credits and data for channels nobody registered */
        weir_chankey_t r = mkkey(0x72, i, (uint16_t)i);
        raw_send(evil_a, 2, &r, NULL, 0, 1 + i);
        raw_send(evil, 1, &r, "x", 1, 0);
    }
    wait_stat(f->a, offsetof(weir_dataplane_stats_t, dropped), a0.dropped + 2 + N);
    wait_stat(f->b, offsetof(weir_dataplane_stats_t, dropped), b0.dropped + 1 + N);
    weir_dataplane_get_stats(f->a, &a1);
    weir_dataplane_get_stats(f->b, &b1);
    assert_int_equal(a1.rejected - a0.rejected, 1);
    assert_int_equal(b1.rejected - b0.rejected, 1);
    assert_int_equal(a1.entries, a0.entries);
    assert_int_equal(b1.entries, b0.entries);
    assert_int_equal(weir_mailbox_size(snd), 0);
    assert_int_equal(weir_mailbox_size(rcv), 0);

    /* the real peer still gets through */
    assert_int_equal(weir_dataplane_send(f->a, mkbuf(&k, 50, 9)), 0);
    weir_mbmsg_t m = pop(rcv);
    assert_int_equal(m.type, WEIR_MB_BUFFER);
    check_buf(m.buf, &k, 50, 9);
    weir_netbuf_free(&m.buf);

    zmq_close(evil);
    zmq_close(evil_a);
    zmq_ctx_term(zctx);
    /* closing the job frees its entries */
    weir_dataplane_close_job(f->a, k.job, 1);
    weir_dataplane_close_job(f->b, k.job, 1);
    weir_dataplane_get_stats(f->a, &a1);
    weir_dataplane_get_stats(f->b, &b1);
    assert_int_equal(a1.entries, a0.entries - 1);
    assert_int_equal(b1.entries, b0.entries - 1);
    weir_dataplane_close_mailbox(f->a, snd);
    weir_dataplane_close_mailbox(f->b, rcv);
    weir_mailbox_destroy(&snd);
    weir_mailbox_destroy(&rcv);
}

/* (8) CURVE: two members with the cluster key exchange buffers; a peer without the key, or with
 * another key pair that knows the server's public key, delivers nothing. */
static void test_curve(void **state) {
    (void)state;
    char err[256] = "", *dir = weir_test_tmpdir("dp-curve"), path[600], text[256];
    snprintf(path, sizeof path, "%s/cluster.key", dir);
    assert_int_equal(weir_curve_keygen(path, err, sizeof err), 0);
    uint8_t *data = NULL;
    size_t len = 0;
    assert_int_equal(weir_read_file(path, &data, &len), 0);
    weir_curve_t key, other;
    assert_int_equal(weir_curve_parse((char *)data, "k", &key, err, sizeof err), 0);
    free(data);
    char pub[41], sec[41];
    assert_int_equal(zmq_curve_keypair(pub, sec), 0);
    snprintf(text, sizeof text, "public-key: %s\nsecret-key: %s\n", pub, sec);
    assert_int_equal(weir_curve_parse(text, "o", &other, err, sizeof err), 0);

    weir_dataplane_opts_t o = {.bind_host = "127.0.0.1", .curve = &key, .max_buffer = 4096};
    weir_dataplane_t *a = weir_dataplane_new_opts(&o, err, sizeof err);
    weir_dataplane_t *b = weir_dataplane_new_opts(&o, err, sizeof err);
    assert_non_null(a);
    assert_non_null(b);
    const char *aa = weir_dataplane_address(a), *ba = weir_dataplane_address(b);
    weir_chankey_t k = mkkey(0x81, 1, 8);
    weir_mailbox_t *snd = weir_mailbox_new(), *rcv = weir_mailbox_new();
    assert_int_equal(weir_dataplane_open_input(b, &k, aa, rcv, 0, 3), 0);
    assert_int_equal(weir_dataplane_open_output(a, &k, ba, snd, 0), 0);
    expect_credits(snd, 0, 3);
    assert_int_equal(weir_dataplane_send(a, mkbuf(&k, 1000, 1)), 0);
    weir_mbmsg_t m = pop(rcv);
    check_buf(m.buf, &k, 1000, 1);
    weir_netbuf_free(&m.buf);

    /* impostors: the right routing id, but no key / a key pair that is not the cluster's */
    weir_dataplane_stats_t b0, b1;
    weir_dataplane_get_stats(b, &b0);
    void *zctx = zmq_ctx_new();
    void *plain = raw_peer(zctx, ba, aa, NULL, NULL);
    void *wrong = raw_peer(zctx, ba, aa, &other, key.public_key);
    for (int i = 0; i < 200; i++) {
        raw_send(plain, 1, &k, "forged", 6, 0);
        raw_send(wrong, 1, &k, "forged", 6, 0);
    }
    /* a member with the key, feeding a channel whose peer it is, proves the frames above had
     * time to arrive (a's own connection holds routing id aa, so the member has another) */
    weir_chankey_t k2 = mkkey(0x82, 1, 8);
    assert_int_equal(weir_dataplane_open_input(b, &k2, "tcp://member:1", rcv, 1, 0), 0);
    void *member = raw_peer(zctx, ba, "tcp://member:1", &key, key.public_key);
    raw_send(member, 1, &k2, "member", 6, 0);
    m = pop(rcv);
    assert_int_equal(m.buf->len, 6);
    assert_memory_equal(m.buf->data, "member", 6);
    weir_netbuf_free(&m.buf);
    weir_sleep_ns(200 * 1000000LL);
    assert_int_equal(weir_mailbox_size(rcv), 0);
    weir_dataplane_get_stats(b, &b1);
    assert_int_equal(b1.frames_in - b0.frames_in, 1);
    assert_true(b1.frames_in > 0);
    /* a buffer larger than max_buffer disconnects its sender */
    static uint8_t big[8192];
    raw_send(member, 1, &k2, big, sizeof big, 0);
    weir_sleep_ns(200 * 1000000LL);
    weir_dataplane_get_stats(b, &b1);
    assert_int_equal(b1.frames_in - b0.frames_in, 1);
    assert_int_equal(weir_mailbox_size(rcv), 0);

    zmq_close(plain);
    zmq_close(wrong);
    zmq_close(member);
    zmq_ctx_term(zctx);
    weir_dataplane_close_mailbox(a, snd);
    weir_dataplane_close_mailbox(b, rcv);
    weir_dataplane_destroy(&a);
    weir_dataplane_destroy(&b);
    weir_mailbox_destroy(&snd);
    weir_mailbox_destroy(&rcv);
    weir_test_tmpdir_remove(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_remote_channel),
        cmocka_unit_test(test_remote_no_copy),
        cmocka_unit_test(test_credits_before_output),
        cmocka_unit_test(test_local_channel),
        cmocka_unit_test(test_stream_window),
        cmocka_unit_test(test_close),
        cmocka_unit_test(test_destroy_with_pending),
        cmocka_unit_test(test_forged_frames),
        cmocka_unit_test(test_curve),
        cmocka_unit_test(test_attempt_fence),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
