/* Owns the fake task manager of the job-manager tests (mock_tm.h): one DEALER socket per mock,
 * encoding and decoding with common/proto.h.
 * Invariants: every message is one ZeroMQ frame; a received message that is not the expected type
 * is dropped; messages that do not decode fail the test.
 * Threading: a mock belongs to the thread that uses it (ZeroMQ sockets are not thread-safe). */
#include "mock_tm.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>
#include <zmq.h>

#include "common/util.h"

weir_mock_tm_t *weir_mock_tm_connect(void *zctx, int rpc_port, const char *id) {
    weir_mock_tm_t *tm = calloc(1, sizeof *tm);
    assert_non_null(tm);
    snprintf(tm->id, sizeof tm->id, "%s", id);
    tm->sock = zmq_socket(zctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(tm->sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(tm->sock, ZMQ_ROUTING_ID, id, strlen(id));
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", rpc_port);
    assert_int_equal(zmq_connect(tm->sock, ep), 0);
    return tm;
}

weir_mock_tm_t *weir_mock_tm_register(void *zctx, int rpc_port, const char *id,
                                      const char *data_address, uint32_t slots) {
    weir_mock_tm_t *tm = weir_mock_tm_connect(zctx, rpc_port, id);
    weir_msg_t m = {.type = WEIR_MSG_REGISTER,
                    .tm_id = tm->id,
                    .data_address = (char *)data_address,
                    .host = "127.0.0.1",
                    .slots = slots,
                    .pid = 42};
    weir_mock_tm_send(tm, &m);
    weir_msg_t r;
    assert_int_equal(weir_mock_tm_expect(tm, WEIR_MSG_REGISTERED, &r, 5000), 0);
    tm->heartbeat_interval_ms = r.heartbeat_interval_ms;
    weir_msg_clear(&r);
    return tm;
}

void weir_mock_tm_close(weir_mock_tm_t **tm) {
    if (!*tm)
        return;
    zmq_close((*tm)->sock);
    free(*tm);
    *tm = NULL;
}

void weir_mock_tm_send(weir_mock_tm_t *tm, const weir_msg_t *m) {
    uint8_t *data;
    size_t len;
    assert_int_equal(weir_msg_encode(m, &data, &len), 0);
    assert_int_equal(zmq_send(tm->sock, data, len, 0), (int)len);
    free(data);
}

int weir_mock_tm_expect(weir_mock_tm_t *tm, weir_msg_type_t type, weir_msg_t *out, int timeout_ms) {
    int64_t deadline = weir_now_ns() + (int64_t)timeout_ms * 1000000;
    for (;;) {
        int64_t left = (deadline - weir_now_ns()) / 1000000;
        if (left <= 0)
            return -1;
        zmq_pollitem_t it = {.socket = tm->sock, .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, left) <= 0)
            continue;
        zmq_msg_t m;
        zmq_msg_init(&m);
        assert_true(zmq_msg_recv(&m, tm->sock, 0) >= 0);
        char err[256];
        memset(out, 0, sizeof *out);
        assert_int_equal(weir_msg_decode(zmq_msg_data(&m), zmq_msg_size(&m), out, err, sizeof err),
                         0);
        zmq_msg_close(&m);
        if (out->type == type)
            return 0;
        weir_msg_clear(out);
    }
}

void weir_mock_tm_heartbeat(weir_mock_tm_t *tm) {
    weir_msg_t m = {.type = WEIR_MSG_HEARTBEAT, .tm_id = tm->id};
    weir_mock_tm_send(tm, &m);
}

void weir_mock_tm_heartbeat_tasks(weir_mock_tm_t *tm, const weir_msg_task_state_t *tasks,
                                  uint32_t n) {
    weir_msg_t m = {.type = WEIR_MSG_HEARTBEAT,
                    .tm_id = tm->id,
                    .tasks = (weir_msg_task_state_t *)tasks,
                    .n_tasks = n};
    weir_mock_tm_send(tm, &m);
}

void weir_mock_tm_task_state(weir_mock_tm_t *tm, const char *job, uint32_t attempt, uint32_t vertex,
                             uint32_t subtask, weir_task_state_t state, const char *message,
                             const weir_task_metrics_t *metrics) {
    weir_msg_task_state_t ts = {
        .attempt = attempt, .vertex = vertex, .subtask = subtask, .state = state};
    memcpy(ts.job_id, job, 33);
    ts.message = (char *)message;
    if (metrics)
        ts.metrics = *metrics;
    weir_msg_t m = {.type = WEIR_MSG_TASK_STATE, .tasks = &ts, .n_tasks = 1};
    weir_mock_tm_send(tm, &m);
}

const char *weir_mock_tm_opstate(char *buf, size_t cap, const char *s, uint32_t n_ops) {
    size_t len = strlen(s);
    assert_true(n_ops >= 1 && n_ops < 16 && len > 0 && len < 32 && len + n_ops + 2 < cap);
    size_t k = 0;
    buf[k++] = (char)(0x90 | n_ops);
    buf[k++] = (char)(0xa0 | len);
    memcpy(buf + k, s, len);
    k += len;
    for (uint32_t i = 1; i < n_ops; i++)
        buf[k++] = (char)0xc0;
    buf[k] = 0;
    return buf;
}

void weir_mock_tm_bundle_str(const uint8_t *bundle, size_t len, uint32_t op, char *out,
                             size_t cap) {
    out[0] = 0;
    if (!bundle || !len)
        return;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&u, (const char *)bundle, len, &off),
                     MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(u.data.type, MSGPACK_OBJECT_ARRAY);
    assert_true(op < u.data.via.array.size);
    const msgpack_object *e = &u.data.via.array.ptr[op];
    if (e->type != MSGPACK_OBJECT_NIL) {
        assert_int_equal(e->type, MSGPACK_OBJECT_ARRAY);
        assert_int_equal(e->via.array.size, 2);
        const msgpack_object *pairs = &e->via.array.ptr[1];
        assert_int_equal(pairs->type, MSGPACK_OBJECT_ARRAY);
        assert_true(pairs->via.array.size >= 1);
        const msgpack_object *pair = &pairs->via.array.ptr[0];
        assert_int_equal(pair->type, MSGPACK_OBJECT_ARRAY);
        const msgpack_object *st = &pair->via.array.ptr[1];
        assert_int_equal(st->type, MSGPACK_OBJECT_STR);
        snprintf(out, cap, "%llu:%llu:%.*s", (unsigned long long)e->via.array.ptr[0].via.u64,
                 (unsigned long long)pair->via.array.ptr[0].via.u64, (int)st->via.str.size,
                 st->via.str.ptr);
    }
    msgpack_unpacked_destroy(&u);
}

void weir_mock_tm_ack(weir_mock_tm_t *tm, const char *job, uint32_t attempt, uint64_t checkpoint_id,
                      uint32_t vertex, uint32_t subtask, bool final, const char *op_state,
                      const char *keyed_handle) {
    weir_msg_t m = {.type = WEIR_MSG_ACK_CHECKPOINT,
                    .attempt = attempt,
                    .checkpoint_id = checkpoint_id,
                    .vertex = vertex,
                    .subtask = subtask,
                    .final = final,
                    .op_state = (uint8_t *)op_state,
                    .op_state_len = op_state ? strlen(op_state) : 0,
                    .keyed_handle = (char *)keyed_handle,
                    .state_size = 100,
                    .uploaded_size = 40,
                    .alignment_ns = 7000000};
    memcpy(m.job_id, job, 33);
    weir_mock_tm_send(tm, &m);
}

uint64_t weir_mock_tm_expect_trigger(weir_mock_tm_t *tm, const char *job, uint32_t vertex,
                                     uint32_t subtask) {
    weir_msg_t m;
    assert_int_equal(weir_mock_tm_expect(tm, WEIR_MSG_TRIGGER_CHECKPOINT, &m, 5000), 0);
    assert_string_equal(m.job_id, job);
    assert_int_equal(m.vertex, vertex);
    assert_int_equal(m.subtask, subtask);
    uint64_t id = m.checkpoint_id;
    weir_msg_clear(&m);
    return id;
}

uint64_t weir_mock_tm_expect_notify(weir_mock_tm_t *tm, const char *job, uint32_t attempt,
                                    bool final) {
    for (;;) {
        weir_msg_t m;
        assert_int_equal(weir_mock_tm_expect(tm, WEIR_MSG_NOTIFY_CHECKPOINT, &m, 5000), 0);
        assert_string_equal(m.job_id, job);
        assert_int_equal(m.attempt, attempt);
        bool f = m.final;
        uint64_t id = m.checkpoint_id;
        weir_msg_clear(&m);
        if (f == final)
            return id;
    }
}
