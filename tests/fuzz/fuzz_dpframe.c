/* libFuzzer target: data-plane frames as any process that reaches a task manager's data port can
 * send them. dataplane.c parses frames in a static function of its network thread, reading its
 * ZeroMQ ROUTER socket, so there is no entry point without a socket: this target starts a real
 * data plane (weir_dataplane_new on 127.0.0.1, port 0), connects a ZeroMQ DEALER to it and sends
 * each input as one multipart message.
 *
 * Input layout (so that the fuzzer controls the number and sizes of the ZeroMQ parts):
 *   OFFSET SIZE DESCRIPTION
 *   0      1    parts - 1 in the low 2 bits (1..4 parts; the other bits are ignored)
 *   then, for every part but the last: 2 bytes length (uint16 LE, cut to what is left), bytes
 *   the last part: the rest of the input
 * A frame is part 1 [type u8: 1 data, 2 credit, 3 credit request][channel key, 28 bytes][credit
 * total u32 LE, credit only] and, for data, part 2 (the buffer); see dataplane.h. The DEALER's
 * routing id is FAKE_PEER, the registered peer of every channel end (the data plane accepts a
 * frame only from its channel's peer; test_dataplane covers other senders).
 *
 * Registered channels (job "fuzz-job-0000001", attempt 1): an input end (edge 0), an output end
 * (edge 1) and a sync input end (edge 2), all delivering into one mailbox; a second job is closed.
 * After each input the target sends a sync data frame with a fresh body and reads the mailbox up
 * to it: frames are processed in order on one connection, so what the mailbox holds before the
 * sync buffer is exactly what the input delivered.
 *
 * Properties checked on every input (besides ASan/UBSan/LeakSanitizer):
 * - exactly what the frame format allows is delivered: a data frame (1 or 2 parts, 29-byte
 *   header) for a registered input end gives one buffer on its index holding part 2's bytes, a
 *   credit frame (1 part, 33-byte header) for the registered output end whose total is ahead of
 *   the total seen so far by 1..2^31-1 gives the difference on the output's index, anything else
 *   delivers nothing;
 * - a delivered buffer carries its channel's key and is read to its end or to a corrupt entry by
 *   weir_bufreader_next, as the receiving subtask would.
 * Not checked here: that frames for unknown channels allocate nothing (test_dataplane counts the
 * registry's entries).
 * Seeds: valid data frames (with records, empty), credits, frames for unknown and closed channels,
 * and malformed ones (short header, three parts, unknown type).
 *
 * State: the data plane, mailbox and socket, made once in LLVMFuzzerInitialize (libFuzzer's API
 * leaves no other place) and destroyed at exit. Threading: libFuzzer's thread sends and reads the
 * mailbox; the data plane's network thread parses. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "common/err.h"
#include "common/util.h"
#include "fuzz_util.h"
#include "runtime/dataplane/dataplane.h"

#define FUZZ_MAX_INPUT 65536u
#define FRAME_DATA 1u
#define FRAME_CREDIT 2u
#define HDR_DATA (1u + WEIR_CHANKEY_WIRE_SIZE)
#define HDR_CREDIT (HDR_DATA + 4u)
#define MAX_PARTS 4
#define IDX_IN 0u
#define IDX_OUT 1u
#define IDX_SYNC 2u
#define FAKE_PEER "tcp://127.0.0.1:9" /* dialled in vain: credit requests and answers go there */
#define SYNC_WAIT_NS (10 * 1000000000LL)

typedef struct target {
    weir_dataplane_t *dp;
    weir_mailbox_t *mb;
    void *zctx;
    void *dealer;
    weir_chankey_t in, out, sync, closed;
    uint64_t n_sync;       /* sync frames sent: each carries its number */
    uint32_t credit_total; /* the output end's credit total as the data plane saw it */
} target_t;

static target_t g_t;

static weir_chankey_t key_of(const char job[16], uint16_t edge) {
    weir_chankey_t k = {.attempt = 1, .edge = edge, .src = 0, .dst = 0};
    memcpy(k.job, job, 16);
    return k;
}

/* ---- input layout -------------------------------------------------------------------------- */

typedef struct parts {
    int n;
    const uint8_t *p[MAX_PARTS];
    size_t len[MAX_PARTS];
} parts_t;

static void split(const uint8_t *data, size_t size, parts_t *out) {
    const uint8_t *end = data + size;
    out->n = size ? 1 + (data[0] & 3) : 1;
    const uint8_t *p = size ? data + 1 : data;
    for (int i = 0; i < out->n - 1; i++) {
        size_t len = 0;
        if (end - p >= 2) {
            len = (size_t)p[0] | (size_t)p[1] << 8;
            p += 2;
        } else {
            p = end;
        }
        if (len > (size_t)(end - p))
            len = (size_t)(end - p);
        out->p[i] = p;
        out->len[i] = len;
        p += len;
    }
    out->p[out->n - 1] = p;
    out->len[out->n - 1] = (size_t)(end - p);
}

/* The inverse of split(), for seeds. @returns the input length written to @p out. */
static size_t join(const parts_t *in, uint8_t *out) {
    size_t n = 0;
    out[n++] = (uint8_t)(in->n - 1);
    for (int i = 0; i < in->n; i++) {
        if (i < in->n - 1) {
            out[n++] = (uint8_t)in->len[i];
            out[n++] = (uint8_t)(in->len[i] >> 8);
        }
        memcpy(out + n, in->p[i], in->len[i]);
        n += in->len[i];
    }
    return n;
}

/* ---- seeds --------------------------------------------------------------------------------- */

static size_t header(uint8_t *h, unsigned type, const weir_chankey_t *k, uint32_t credits) {
    h[0] = (uint8_t)type;
    weir_chankey_encode(k, h + 1);
    if (type != FRAME_CREDIT)
        return HDR_DATA;
    for (int i = 0; i < 4; i++)
        h[HDR_DATA + i] = (uint8_t)(credits >> (8 * i));
    return HDR_CREDIT;
}

static void seed(const char *name, int n, const uint8_t *p0, size_t l0, const uint8_t *p1,
                 size_t l1, const uint8_t *p2, size_t l2) {
    parts_t ps = {.n = n, .p = {p0, p1, p2}, .len = {l0, l1, l2}};
    uint8_t buf[1024];
    weir_fuzz_seed(name, buf, join(&ps, buf));
}

static void write_seeds(const target_t *t) {
    uint8_t h[HDR_CREDIT], body[256];
    weir_bufwriter_t w;
    weir_bufwriter_init(&w, body, sizeof body);
    static const uint8_t val[] = {0xa3, 'o', 'n', 'e'};
    weir_record_t r = {.timestamp = 1,
                       .key = (const uint8_t *)"k",
                       .key_len = 1,
                       .value = val,
                       .value_len = sizeof val};
    bool ok = weir_bufwriter_record(&w, &r) && weir_bufwriter_barrier(&w, 3, 4, 1, "/sp/a", 5) &&
              weir_bufwriter_record(&w, &r) && weir_bufwriter_end(&w);
    WEIR_FUZZ_CHECK(ok, "seed buffer too small");
    size_t hl = header(h, FRAME_DATA, &t->in, 0);
    seed("data-records", 2, h, hl, body, w.len, NULL, 0);
    seed("data-no-body", 1, h, hl, NULL, 0, NULL, 0);
    seed("data-three-parts", 3, h, hl, body, w.len, body, 4);
    seed("data-short-header", 2, h, hl - 1, body, w.len, NULL, 0);
    hl = header(h, FRAME_DATA, &t->out, 0);
    seed("data-to-output-end", 2, h, hl, body, w.len, NULL, 0);
    hl = header(h, FRAME_DATA, &t->closed, 0);
    seed("data-closed-job", 2, h, hl, body, w.len, NULL, 0);
    hl = header(h, FRAME_CREDIT, &t->out, 3);
    seed("credit", 1, h, hl, NULL, 0, NULL, 0);
    seed("credit-with-body", 2, h, hl, body, 1, NULL, 0);
    h[0] = 7;
    seed("unknown-type", 1, h, hl, NULL, 0, NULL, 0);
    hl = header(h, FRAME_CREDIT, &t->in, UINT32_MAX);
    seed("credit-to-input-end", 1, h, hl, NULL, 0, NULL, 0);
    weir_chankey_t other = t->out;
    other.dst = 9;
    hl = header(h, FRAME_CREDIT, &other, 1);
    seed("credit-unknown", 1, h, hl, NULL, 0, NULL, 0);
}

/* ---- setup --------------------------------------------------------------------------------- */

static void teardown(void) {
    target_t *t = &g_t;
    if (t->dealer)
        zmq_close(t->dealer);
    if (t->zctx)
        zmq_ctx_term(t->zctx);
    if (t->dp)
        weir_dataplane_close_mailbox(t->dp, t->mb);
    weir_dataplane_destroy(&t->dp);
    weir_mailbox_destroy(&t->mb);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    target_t *t = &g_t;
    char err[512] = "";
    t->in = key_of("fuzz-job-0000001", 0);
    t->out = key_of("fuzz-job-0000001", 1);
    t->sync = key_of("fuzz-job-0000001", 2);
    t->closed = key_of("fuzz-job-0000002", 0);
    write_seeds(t);
    t->dp = weir_dataplane_new("127.0.0.1", 0, "127.0.0.1", err, sizeof err);
    WEIR_FUZZ_CHECK(t->dp, "%s", err);
    t->mb = weir_mailbox_new();
    int rc = weir_dataplane_open_input(t->dp, &t->in, FAKE_PEER, t->mb, IDX_IN, 0);
    rc = rc ? rc : weir_dataplane_open_output(t->dp, &t->out, FAKE_PEER, t->mb, IDX_OUT);
    rc = rc ? rc : weir_dataplane_open_input(t->dp, &t->sync, FAKE_PEER, t->mb, IDX_SYNC, 0);
    WEIR_FUZZ_CHECK(rc == 0, "cannot register the channels: %d", rc);
    weir_dataplane_close_job(t->dp, t->closed.job, t->closed.attempt);
    t->zctx = zmq_ctx_new();
    t->dealer = t->zctx ? zmq_socket(t->zctx, ZMQ_DEALER) : NULL;
    int zero = 0;
    WEIR_FUZZ_CHECK(t->dealer && !zmq_setsockopt(t->dealer, ZMQ_LINGER, &zero, sizeof zero) &&
                        !zmq_setsockopt(t->dealer, ZMQ_SNDHWM, &zero, sizeof zero) &&
                        !zmq_setsockopt(t->dealer, ZMQ_ROUTING_ID, FAKE_PEER, strlen(FAKE_PEER)) &&
                        !zmq_connect(t->dealer, weir_dataplane_address(t->dp)),
                    "cannot connect to %s: %s", weir_dataplane_address(t->dp),
                    zmq_strerror(zmq_errno()));
    atexit(teardown);
    return 0;
}

/* ---- one input ----------------------------------------------------------------------------- */

typedef struct expect {
    bool any;
    weir_mb_type_t type;
    uint32_t index;
    const uint8_t *body; /* WEIR_MB_BUFFER */
    size_t len;
    uint32_t n; /* WEIR_MB_CREDIT */
} expect_t;

/* What the frame format (dataplane.h) says the data plane delivers for @p ps. */
static expect_t expected(target_t *t, const parts_t *ps) {
    expect_t e = {.any = false};
    const uint8_t *h = ps->p[0];
    weir_chankey_t k;
    if (ps->n > 2 || ps->len[0] < HDR_DATA || weir_chankey_decode(h + 1, ps->len[0] - 1, &k))
        return e;
    if (h[0] == FRAME_DATA && ps->len[0] == HDR_DATA) {
        bool in = weir_chankey_equal(&k, &t->in), sync = weir_chankey_equal(&k, &t->sync);
        if (in || sync)
            e = (expect_t){.any = true,
                           .type = WEIR_MB_BUFFER,
                           .index = in ? IDX_IN : IDX_SYNC,
                           .body = ps->n == 2 ? ps->p[1] : NULL,
                           .len = ps->n == 2 ? ps->len[1] : 0};
    } else if (h[0] == FRAME_CREDIT && ps->len[0] == HDR_CREDIT && ps->n == 1 &&
               weir_chankey_equal(&k, &t->out)) {
        const uint8_t *c = h + HDR_DATA;
        uint32_t total =
            (uint32_t)c[0] | (uint32_t)c[1] << 8 | (uint32_t)c[2] << 16 | (uint32_t)c[3] << 24;
        uint32_t n = total - t->credit_total;
        if (n != 0 && n < 0x80000000u) {
            t->credit_total = total;
            e = (expect_t){.any = true, .type = WEIR_MB_CREDIT, .index = IDX_OUT, .n = n};
        }
    }
    return e;
}

static void send_parts(void *s, const parts_t *ps) {
    for (int i = 0; i < ps->n; i++) {
        int flags = i < ps->n - 1 ? ZMQ_SNDMORE : 0;
        WEIR_FUZZ_CHECK(zmq_send(s, ps->p[i], ps->len[i], flags) == (int)ps->len[i], "zmq_send: %s",
                        zmq_strerror(zmq_errno()));
    }
}

/* Reads a delivered buffer as the receiving subtask does. */
static void read_buffer(const weir_netbuf_t *b) {
    weir_bufreader_t r;
    weir_event_t ev;
    weir_bufreader_init(&r, b->data, b->len);
    int rc;
    while ((rc = weir_bufreader_next(&r, &ev)) == 1) {
    }
    WEIR_FUZZ_CHECK(rc == 0 || rc == WEIR_ECORRUPT, "reader returned %d", rc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > FUZZ_MAX_INPUT)
        return -1;
    target_t *t = &g_t;
    parts_t ps;
    split(data, size, &ps);
    expect_t e = expected(t, &ps);
    send_parts(t->dealer, &ps);

    uint8_t hdr[HDR_DATA];
    uint64_t sync_id = ++t->n_sync;
    header(hdr, FRAME_DATA, &t->sync, 0);
    parts_t sync = {.n = 2, .p = {hdr, (const uint8_t *)&sync_id}, .len = {sizeof hdr, 8}};
    send_parts(t->dealer, &sync);

    int delivered = 0;
    for (;;) {
        weir_mbmsg_t m;
        WEIR_FUZZ_CHECK(weir_mailbox_pop(t->mb, &m, weir_now_ns() + SYNC_WAIT_NS) == 1,
                        "the sync frame did not arrive within %lld s (data plane stuck?)",
                        SYNC_WAIT_NS / 1000000000LL);
        bool is_sync = m.type == WEIR_MB_BUFFER && m.index == IDX_SYNC && m.buf->len == 8 &&
                       !memcmp(m.buf->data, &sync_id, 8) && delivered == (e.any ? 1 : 0);
        if (is_sync) {
            WEIR_FUZZ_CHECK(weir_chankey_equal(&m.buf->key, &t->sync), "sync buffer's key");
            weir_netbuf_free(&m.buf);
            break;
        }
        delivered++;
        WEIR_FUZZ_CHECK(e.any && delivered == 1,
                        "delivered %s #%d on index %u, the frame format allows %s",
                        m.type == WEIR_MB_BUFFER ? "a buffer" : "a message", delivered, m.index,
                        e.any ? "one" : "nothing");
        WEIR_FUZZ_CHECK(m.type == e.type && m.index == e.index,
                        "delivered type %d index %u, "
                        "expected type %d index %u",
                        (int)m.type, m.index, (int)e.type, e.index);
        if (m.type == WEIR_MB_CREDIT) {
            WEIR_FUZZ_CHECK(m.n == e.n, "credit %u delivered as %u", e.n, m.n);
        } else {
            WEIR_FUZZ_CHECK(m.buf->len == e.len && (!e.len || !memcmp(m.buf->data, e.body, e.len)),
                            "buffer of %zu bytes delivered as %zu bytes", e.len, m.buf->len);
            WEIR_FUZZ_CHECK(weir_chankey_equal(&m.buf->key, m.index == IDX_IN ? &t->in : &t->sync),
                            "buffer delivered with another channel's key");
            read_buffer(m.buf);
            weir_netbuf_free(&m.buf);
        }
    }
    return 0;
}
