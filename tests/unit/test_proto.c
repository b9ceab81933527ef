/* Unit tests of common/proto.c: round trips of every message type, hand-assembled msgpack bytes
 * (independent of the encoder), every error class, and fuzzing with random bytes, truncations and
 * byte flips (must never crash or leak: run under ASan). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <msgpack.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/proto.h"

static const char *JOB = "0123456789abcdef0123456789abcdef";
static const char *SHA = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

static void roundtrip(const weir_msg_t *in, weir_msg_t *out) {
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(weir_msg_encode(in, &buf, &len), 0);
    assert_non_null(buf);
    char err[256] = "";
    int rc = weir_msg_decode(buf, len, out, err, sizeof err);
    if (rc != 0)
        fail_msg("decode failed: %s", err);
    assert_int_equal(out->type, in->type);
    free(buf);
}

static weir_msg_task_state_t make_task(int i) {
    weir_msg_task_state_t t;
    memset(&t, 0, sizeof t);
    strcpy(t.job_id, JOB);
    t.attempt = 3 + (uint32_t)i;
    t.vertex = 2;
    t.subtask = (uint32_t)i;
    t.state = i % 2 ? WEIR_TASK_FAILED : WEIR_TASK_RUNNING;
    t.message = i % 2 ? strdup("map 'parse' subtask 1: boom") : NULL;
    t.metrics.records_in = 1000000000000ULL + (uint64_t)i;
    t.metrics.records_out = 7;
    t.metrics.buffers_in_remote = 8;
    t.metrics.bytes_in_remote = 9;
    t.metrics.buffers_out_remote = 10;
    t.metrics.bytes_out_remote = UINT64_MAX;
    t.metrics.buffers_out_local = 12;
    t.metrics.backpressured_ns = 13;
    t.metrics.buffers_in_local = 14;
    t.metrics.bytes_in_local = 1ULL << 33;
    t.metrics.bytes_out_local = 16;
    t.metrics.busy_ns = 17;
    t.metrics.idle_ns = 18;
    t.metrics.in_queued = 19;
    t.metrics.in_capacity = 20;
    t.metrics.out_queued = 21;
    t.metrics.out_capacity = 22;
    t.metrics.watermark = i % 2 ? INT64_MIN : -5;
    t.metrics.late_records_dropped = 24;
    t.metrics.state_cache_hits = 25;
    t.metrics.state_cache_misses = 26;
    t.metrics.kafka_lag = -1;
    t.metrics.kafka_tx_committed = 28;
    t.metrics.kafka_tx_aborted = 29;
    return t;
}

static void check_task(const weir_msg_task_state_t *a, const weir_msg_task_state_t *b) {
    assert_string_equal(a->job_id, b->job_id);
    assert_int_equal(a->attempt, b->attempt);
    assert_int_equal(a->vertex, b->vertex);
    assert_int_equal(a->subtask, b->subtask);
    assert_int_equal(a->state, b->state);
    if (a->message)
        assert_string_equal(a->message, b->message);
    else
        assert_null(b->message);
    assert_memory_equal(&a->metrics, &b->metrics, sizeof a->metrics);
}

static void test_register_roundtrip(void **state) {
    (void)state;
    weir_msg_t m = {.type = WEIR_MSG_REGISTER};
    m.tm_id = "tm-1";
    m.data_address = "tcp://127.0.0.1:40000";
    m.host = "127.0.0.1";
    m.slots = 4;
    m.pid = 123456;
    weir_msg_t o;
    roundtrip(&m, &o);
    assert_string_equal(o.tm_id, "tm-1");
    assert_string_equal(o.data_address, "tcp://127.0.0.1:40000");
    assert_string_equal(o.host, "127.0.0.1");
    assert_int_equal(o.slots, 4);
    assert_int_equal(o.pid, 123456);
    weir_msg_clear(&o);
    assert_null(o.tm_id);

    weir_msg_t r = {.type = WEIR_MSG_REGISTERED, .heartbeat_interval_ms = 1000};
    roundtrip(&r, &o);
    assert_int_equal(o.heartbeat_interval_ms, 1000);
    weir_msg_clear(&o);

    weir_msg_t a = {.type = WEIR_MSG_HEARTBEAT_ACK};
    roundtrip(&a, &o);
    weir_msg_clear(&o);
    weir_msg_t u = {.type = WEIR_MSG_UNKNOWN};
    roundtrip(&u, &o);
    weir_msg_clear(&o);
}

static void test_heartbeat_and_task_state(void **state) {
    (void)state;
    weir_msg_task_state_t tasks[3] = {make_task(0), make_task(1), make_task(2)};
    weir_msg_t m = {.type = WEIR_MSG_HEARTBEAT,
                    .tm_id = "tm-9",
                    .tasks = tasks,
                    .n_tasks = 3,
                    .metrics_port = 9251,
                    .rss_bytes = 1,
                    .cpu_ns = 2,
                    .mem_process = 3,
                    .mem_network_total = 4,
                    .mem_network_used = 5,
                    .mem_managed_total = 6,
                    .mem_managed_used = 7,
                    .mem_state_cache_total = 8,
                    .mem_state_cache_used = UINT64_MAX};
    weir_msg_t o;
    roundtrip(&m, &o);
    assert_string_equal(o.tm_id, "tm-9");
    assert_int_equal(o.n_tasks, 3);
    for (int i = 0; i < 3; i++)
        check_task(&tasks[i], &o.tasks[i]);
    assert_int_equal(o.metrics_port, 9251);
    assert_int_equal(o.rss_bytes, 1);
    assert_int_equal(o.cpu_ns, 2);
    assert_int_equal(o.mem_process, 3);
    assert_int_equal(o.mem_network_total, 4);
    assert_int_equal(o.mem_network_used, 5);
    assert_int_equal(o.mem_managed_total, 6);
    assert_int_equal(o.mem_managed_used, 7);
    assert_int_equal(o.mem_state_cache_total, 8);
    assert_true(o.mem_state_cache_used == UINT64_MAX);
    weir_msg_clear(&o);

    uint8_t tail[] = "INFO line\n";
    weir_msg_t log = {.type = WEIR_MSG_LOG,
                      .tm_id = "tm-9",
                      .request_id = 42,
                      .log_tail = tail,
                      .log_tail_len = sizeof tail - 1};
    roundtrip(&log, &o);
    assert_string_equal(o.tm_id, "tm-9");
    assert_int_equal(o.request_id, 42);
    assert_int_equal(o.log_tail_len, sizeof tail - 1);
    assert_memory_equal(o.log_tail, tail, sizeof tail - 1);
    weir_msg_clear(&o);

    weir_msg_t empty = {.type = WEIR_MSG_HEARTBEAT, .tm_id = "tm-9"};
    roundtrip(&empty, &o);
    assert_int_equal(o.n_tasks, 0);
    weir_msg_clear(&o);

    weir_msg_t ts = {.type = WEIR_MSG_TASK_STATE, .tasks = &tasks[1], .n_tasks = 1};
    roundtrip(&ts, &o);
    assert_int_equal(o.n_tasks, 1);
    check_task(&tasks[1], &o.tasks[0]);
    weir_msg_clear(&o);

    /* TASK_STATE carries exactly one task */
    weir_msg_t bad = {.type = WEIR_MSG_TASK_STATE, .tasks = tasks, .n_tasks = 2};
    uint8_t *buf;
    size_t len;
    assert_int_equal(weir_msg_encode(&bad, &buf, &len), WEIR_EINVAL);
    free(tasks[1].message);
}

static void test_deploy_cancel(void **state) {
    (void)state;
    weir_msg_t m = {.type = WEIR_MSG_DEPLOY};
    strcpy(m.job_id, JOB);
    m.attempt = 2;
    m.job_name = "wordcount";
    strcpy(m.plugin_sha256, SHA);
    m.graph_json = "{\"name\":\"wordcount\"}";
    char *args[] = {"job.so", "--rate", "1000"};
    m.args = args;
    m.n_args = 3;
    m.vertex = 1;
    m.subtask = 2;
    uint32_t par[] = {1, 3};
    char *p0[] = {"tcp://a:1"};
    char *p1[] = {"tcp://a:1", "tcp://b:2", "tcp://c:3"};
    char **placement[] = {p0, p1};
    m.n_vertices = 2;
    m.vertex_parallelism = par;
    m.placement = placement;
    weir_msg_t o;
    roundtrip(&m, &o);
    assert_string_equal(o.job_id, JOB);
    assert_int_equal(o.attempt, 2);
    assert_string_equal(o.job_name, "wordcount");
    assert_string_equal(o.plugin_sha256, SHA);
    assert_string_equal(o.graph_json, m.graph_json);
    assert_int_equal(o.n_args, 3);
    for (int i = 0; i < 3; i++)
        assert_string_equal(o.args[i], args[i]);
    assert_int_equal(o.vertex, 1);
    assert_int_equal(o.subtask, 2);
    assert_int_equal(o.n_vertices, 2);
    assert_int_equal(o.vertex_parallelism[0], 1);
    assert_int_equal(o.vertex_parallelism[1], 3);
    assert_string_equal(o.placement[0][0], "tcp://a:1");
    for (int s = 0; s < 3; s++)
        assert_string_equal(o.placement[1][s], p1[s]);
    assert_int_equal(o.checkpoint_mode, WEIR_CHECKPOINT_NONE);
    assert_null(o.checkpoint_dir);
    assert_int_equal(o.restore_checkpoint_id, 0);
    assert_null(o.restore_op_state);
    assert_null(o.restore_keyed_handle);
    weir_msg_clear(&o);

    /* With checkpointing and a restore. */
    uint8_t opst[] = {0x93, 0x01, 0x02, 0xc0};
    m.checkpoint_mode = WEIR_CHECKPOINT_AT_LEAST_ONCE;
    m.checkpoint_dir = "/ckpt/job";
    m.restore_checkpoint_id = 1ull << 40;
    m.restore_op_state = opst;
    m.restore_op_state_len = sizeof opst;
    m.restore_keyed_handle = "{\"shared\":[]}";
    roundtrip(&m, &o);
    assert_int_equal(o.checkpoint_mode, WEIR_CHECKPOINT_AT_LEAST_ONCE);
    assert_string_equal(o.checkpoint_dir, "/ckpt/job");
    assert_true(o.restore_checkpoint_id == 1ull << 40);
    assert_int_equal(o.restore_op_state_len, sizeof opst);
    assert_memory_equal(o.restore_op_state, opst, sizeof opst);
    assert_string_equal(o.restore_keyed_handle, m.restore_keyed_handle);
    weir_msg_clear(&o);

    weir_msg_t c = {.type = WEIR_MSG_CANCEL, .attempt = 5};
    strcpy(c.job_id, JOB);
    roundtrip(&c, &o);
    assert_string_equal(o.job_id, JOB);
    assert_int_equal(o.attempt, 5);
    weir_msg_clear(&o);
}

static void test_blob(void **state) {
    (void)state;
    uint8_t data[300];
    for (int i = 0; i < 300; i++)
        data[i] = (uint8_t)i;
    weir_msg_t req = {.type = WEIR_MSG_BLOB_REQUEST};
    strcpy(req.blob_sha256, SHA);
    weir_msg_t o;
    roundtrip(&req, &o);
    assert_string_equal(o.blob_sha256, SHA);
    weir_msg_clear(&o);

    weir_msg_t b = {.type = WEIR_MSG_BLOB, .blob = data, .blob_len = sizeof data};
    strcpy(b.blob_sha256, SHA);
    roundtrip(&b, &o);
    assert_int_equal(o.blob_len, 300);
    assert_memory_equal(o.blob, data, 300);
    assert_null(o.error);
    weir_msg_clear(&o);

    weir_msg_t missing = {.type = WEIR_MSG_BLOB, .error = "no such blob"};
    strcpy(missing.blob_sha256, SHA);
    roundtrip(&missing, &o);
    assert_null(o.blob);
    assert_string_equal(o.error, "no such blob");
    weir_msg_clear(&o);
}

/* Bytes written by hand from the documented layout, not by weir_msg_encode. */
static void test_hand_assembled(void **state) {
    (void)state;
    weir_msg_t o;
    char err[256];
    const uint8_t ack[] = {0x92, 0x04, 0x01};
    assert_int_equal(weir_msg_decode(ack, sizeof ack, &o, err, sizeof err), 0);
    assert_int_equal(o.type, WEIR_MSG_HEARTBEAT_ACK);
    weir_msg_clear(&o);

    /* [7, 1, "ab", 300] as CANCEL with attempt as uint16 */
    const uint8_t cancel[] = {0x94, 0x07, 0x01, 0xa2, 'a', 'b', 0xcd, 0x01, 0x2c};
    assert_int_equal(weir_msg_decode(cancel, sizeof cancel, &o, err, sizeof err), 0);
    assert_int_equal(o.type, WEIR_MSG_CANCEL);
    assert_string_equal(o.job_id, "ab");
    assert_int_equal(o.attempt, 300);
    weir_msg_clear(&o);

    /* REGISTERED with a negative int64 interval packed as int8 -> kept as is */
    const uint8_t reg[] = {0x93, 0x02, 0x01, 0xd0, 0xfb};
    assert_int_equal(weir_msg_decode(reg, sizeof reg, &o, err, sizeof err), 0);
    assert_int_equal(o.heartbeat_interval_ms, -5);
    weir_msg_clear(&o);

    /* The encoder's output for CANCEL matches the hand layout (fixarray, fixints, fixstr). */
    weir_msg_t c = {.type = WEIR_MSG_CANCEL, .attempt = 9};
    strcpy(c.job_id, "xy");
    uint8_t *buf;
    size_t len;
    assert_int_equal(weir_msg_encode(&c, &buf, &len), 0);
    const uint8_t want[] = {0x94, 0x07, 0x01, 0xa2, 'x', 'y', 0x09};
    assert_int_equal(len, sizeof want);
    assert_memory_equal(buf, want, sizeof want);
    free(buf);
}

static void test_checkpoint_messages(void **state) {
    (void)state;
    weir_msg_t o;
    weir_msg_t t = {.type = WEIR_MSG_TRIGGER_CHECKPOINT,
                    .attempt = 3,
                    .checkpoint_id = 77,
                    .checkpoint_timestamp = 1700000000123,
                    .vertex = 2,
                    .subtask = 5};
    strcpy(t.job_id, JOB);
    roundtrip(&t, &o);
    assert_string_equal(o.job_id, JOB);
    assert_int_equal(o.attempt, 3);
    assert_int_equal(o.checkpoint_id, 77);
    assert_true(o.checkpoint_timestamp == 1700000000123);
    assert_int_equal(o.vertex, 2);
    assert_int_equal(o.subtask, 5);
    assert_int_equal(o.ck_kind, WEIR_CK_CHECKPOINT);
    assert_null(o.target);
    weir_msg_clear(&o);
    /* a stop-with-savepoint names its target directory */
    t.ck_kind = WEIR_CK_STOP;
    t.target = "/savepoints/savepoint-012345-0123456789ab";
    roundtrip(&t, &o);
    assert_int_equal(o.ck_kind, WEIR_CK_STOP);
    assert_string_equal(o.target, "/savepoints/savepoint-012345-0123456789ab");
    assert_int_equal(o.checkpoint_id, 77);
    weir_msg_clear(&o);

    uint8_t opst[300];
    for (size_t i = 0; i < sizeof opst; i++)
        opst[i] = (uint8_t)(i * 7);
    weir_msg_t a = {.type = WEIR_MSG_ACK_CHECKPOINT,
                    .attempt = 1,
                    .checkpoint_id = 9,
                    .vertex = 1,
                    .subtask = 0,
                    .final = true,
                    .op_state = opst,
                    .op_state_len = sizeof opst,
                    .keyed_handle = "{\"k\":1}",
                    .state_size = 1ull << 33,
                    .uploaded_size = 4096,
                    .alignment_ns = 5,
                    .sync_ns = 6,
                    .async_ns = 7};
    strcpy(a.job_id, JOB);
    roundtrip(&a, &o);
    assert_true(o.final);
    assert_int_equal(o.checkpoint_id, 9);
    assert_int_equal(o.op_state_len, sizeof opst);
    assert_memory_equal(o.op_state, opst, sizeof opst);
    assert_string_equal(o.keyed_handle, "{\"k\":1}");
    assert_true(o.state_size == 1ull << 33);
    assert_int_equal(o.uploaded_size, 4096);
    assert_int_equal(o.alignment_ns, 5);
    assert_int_equal(o.sync_ns, 6);
    assert_int_equal(o.async_ns, 7);
    weir_msg_clear(&o);
    a.final = false;
    a.op_state = NULL;
    a.keyed_handle = NULL;
    roundtrip(&a, &o);
    assert_false(o.final);
    assert_null(o.op_state);
    assert_null(o.keyed_handle);
    weir_msg_clear(&o);

    weir_msg_t d = {
        .type = WEIR_MSG_DECLINE_CHECKPOINT, .checkpoint_id = 4, .vertex = 3, .error = "disk full"};
    strcpy(d.job_id, JOB);
    roundtrip(&d, &o);
    assert_int_equal(o.checkpoint_id, 4);
    assert_int_equal(o.vertex, 3);
    assert_string_equal(o.error, "disk full");
    weir_msg_clear(&o);

    weir_msg_t n = {
        .type = WEIR_MSG_NOTIFY_CHECKPOINT, .attempt = 2, .checkpoint_id = 12, .final = true};
    strcpy(n.job_id, JOB);
    roundtrip(&n, &o);
    assert_int_equal(o.attempt, 2);
    assert_int_equal(o.checkpoint_id, 12);
    assert_true(o.final);
    weir_msg_clear(&o);

    /* A boolean field holding an integer is rejected. */
    const uint8_t bad[] = {0x96, 0x0e, 0x01, 0xa1, 'j', 0x01, 0x05, 0x01};
    char err[256] = "";
    assert_int_equal(weir_msg_decode(bad, sizeof bad, &o, err, sizeof err), WEIR_EPROTO);
    assert_non_null(strstr(err, "final"));
}

static void expect_error(const uint8_t *b, size_t n, const char *needle) {
    weir_msg_t o;
    char err[256] = "";
    assert_int_equal(weir_msg_decode(b, n, &o, err, sizeof err), WEIR_EPROTO);
    if (!strstr(err, needle))
        fail_msg("error '%s' does not mention '%s'", err, needle);
    assert_null(o.tm_id);
    assert_null(o.tasks);
}

static void test_errors(void **state) {
    (void)state;
    const uint8_t unknown[] = {0x92, 0x63, 0x01};
    expect_error(unknown, sizeof unknown, "unknown control message type 99");
    const uint8_t version[] = {0x92, 0x04, 0x02};
    expect_error(version, sizeof version, "version 2");
    const uint8_t arity[] = {0x93, 0x04, 0x01, 0x00};
    expect_error(arity, sizeof arity, "HEARTBEAT_ACK");
    const uint8_t type[] = {0x94, 0x07, 0x01, 0x05, 0x05};
    expect_error(type, sizeof type, "job_id");
    const uint8_t trailing[] = {0x92, 0x04, 0x01, 0x00};
    expect_error(trailing, sizeof trailing, "trailing");
    const uint8_t notarray[] = {0xa1, 'x'};
    expect_error(notarray, sizeof notarray, "array");
    const uint8_t hugearray[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0x04, 0x01};
    expect_error(hugearray, sizeof hugearray, "longer");
    uint8_t longjob[5 + 40 + 1] = {0x94, 0x07, 0x01, 0xd9, 40};
    memset(longjob + 5, 'a', 40);
    longjob[45] = 0x00;
    expect_error(longjob, sizeof longjob, "too long");
    expect_error(NULL, 0, "empty");
    /* A TASK_STATE with an unknown state number */
    const uint8_t st[] = {0x93, 0x08, 0x01, 0x97, 0xa0, 0, 0, 0, 0x63, 0xc0,
                          0x98, 0,    0,    0,    0,    0, 0, 0, 0};
    expect_error(st, sizeof st, "task.state");
    /* DEPLOY whose vertex is outside its placement */
    const uint8_t dep[] = {0xdc, 0x00, 0x11, 0x06, 0x01, 0xa0, 0x00, 0xc0, 0xa0, 0xc0, 0x90, 0x05,
                           0x00, 0x91, 0x01, 0x91, 0x91, 0xc0, 0x00, 0xc0, 0x00, 0xc0, 0xc0};
    expect_error(dep, sizeof dep, "outside");
}

/* The whole one-line error of one error class of each field kind (as the hand-written decoder
 * wrote them before the protocol became one table). */
static void expect_text(const uint8_t *b, size_t n, const char *want) {
    weir_msg_t o;
    char err[256] = "";
    assert_int_equal(weir_msg_decode(b, n, &o, err, sizeof err), WEIR_EPROTO);
    assert_string_equal(err, want);
}
#define EXPECT_TEXT(want, ...)                                                                     \
    do {                                                                                           \
        const uint8_t b_[] = {__VA_ARGS__};                                                        \
        expect_text(b_, sizeof b_, want);                                                          \
    } while (0)

static void test_error_texts(void **state) {
    (void)state;
    EXPECT_TEXT("bad CANCEL message: attempt: integer out of range", 0x94, 0x07, 0x01, 0xa2, 'a',
                'b', 0xff);
    EXPECT_TEXT("bad REGISTERED message: heartbeat_interval_ms: integer out of range", 0x93, 0x02,
                0x01, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
    EXPECT_TEXT("bad REGISTERED message: heartbeat_interval_ms: expected an integer", 0x93, 0x02,
                0x01, 0xa1, 'x');
    EXPECT_TEXT("bad DEPLOY message: checkpoint_mode: unknown mode", 0xdc, 0x00, 0x11, 0x06, 0x01,
                0xa0, 0x00, 0xc0, 0xa0, 0xc0, 0x90, 0x00, 0x00, 0x91, 0x01, 0x91, 0x91, 0xc0, 0x03,
                0xc0, 0x00, 0xc0, 0xc0);
    EXPECT_TEXT("bad DEPLOY message: placement: expected 1 elements, got 0", 0xdc, 0x00, 0x11, 0x06,
                0x01, 0xa0, 0x00, 0xc0, 0xa0, 0xc0, 0x90, 0x00, 0x00, 0x91, 0x01, 0x91, 0x90, 0x00,
                0xc0, 0x00, 0xc0, 0xc0);
    EXPECT_TEXT("bad BLOB message: blob: expected binary data", 0x95, 0x0a, 0x01, 0xa2, 'a', 'b',
                0xa1, 'x', 0xc0);
    EXPECT_TEXT("bad CANCEL message: job_id: string contains NUL", 0x94, 0x07, 0x01, 0xa2, 'a',
                0x00, 0x01);
    EXPECT_TEXT("bad HEARTBEAT message: task.metrics: expected 24 elements, got 23", 0x9e, 0x03,
                0x01, 0xa1, 't', 0x91, 0x97, 0xa0, 0, 0, 0, 0, 0xc0, 0xdc, 0x00, 0x17, 0, 0, 0, 0,
                0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    EXPECT_TEXT("bad LOG_REQUEST message: max_bytes: integer out of range", 0x94, 0x0f, 0x01, 0x01,
                0xce, 0x00, 0x10, 0x00, 0x01);
    EXPECT_TEXT("bad HEARTBEAT_ACK message: message: expected 0 fields, got 1", 0x93, 0x04, 0x01,
                0x00);
    EXPECT_TEXT("HEARTBEAT_ACK message of protocol version 2, expected 1: upgrade both sides", 0x92,
                0x04, 0x02);
    EXPECT_TEXT("bad BLOB_REQUEST message: blob_sha256: truncated", 0x93, 0x09, 0x01, 0xd9, 0x40,
                'a');
    EXPECT_TEXT("bad control message: message: expected [type, version, ...]", 0x91, 0x04);
    /* a checkpoint kind beyond stop-with-savepoint (2) */
    EXPECT_TEXT("bad TRIGGER_CHECKPOINT message: ck_kind: integer out of range", 0x9a, 0x0b, 0x01,
                0xa1, 'j', 0x01, 0x07, 0x00, 0x00, 0x00, 0x03, 0xc0);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)rng_state;
}

static int try_decode(const uint8_t *b, size_t n) {
    weir_msg_t o;
    char err[256];
    int rc = weir_msg_decode(b, n, &o, err, sizeof err);
    assert_true(rc == 0 || rc == WEIR_EPROTO);
    if (rc == 0) {
        /* Anything accepted must encode again (the decoder produced a consistent message). */
        uint8_t *again;
        size_t alen;
        assert_int_equal(weir_msg_encode(&o, &again, &alen), 0);
        free(again);
    }
    weir_msg_clear(&o);
    return rc;
}

static void test_fuzz(void **state) {
    (void)state;
    /* 1. random bytes, biased to start like a message */
    uint8_t buf[256];
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = rnd() % sizeof buf;
        for (size_t i = 0; i < n; i++)
            buf[i] = (uint8_t)rnd();
        if (n > 2 && iter % 2) {
            buf[0] = (uint8_t)(0x90 | (rnd() % 13));
            buf[1] = (uint8_t)(1 + rnd() % 10);
            buf[2] = 0x01;
        }
        try_decode(buf, n);
    }
    /* 2. every truncation and many byte flips of valid messages of every type */
    weir_msg_task_state_t tasks[2] = {make_task(0), make_task(1)};
    uint32_t par[] = {2};
    char *p0[] = {"tcp://a:1", "tcp://b:2"};
    char **placement[] = {p0};
    char *args[] = {"x", "y"};
    uint8_t blob[40] = {1, 2, 3};
    weir_msg_t msgs[] = {
        {.type = WEIR_MSG_REGISTER,
         .tm_id = "t",
         .data_address = "tcp://x:1",
         .host = "h",
         .slots = 2,
         .pid = 77},
        {.type = WEIR_MSG_HEARTBEAT, .tm_id = "t", .tasks = tasks, .n_tasks = 2},
        {.type = WEIR_MSG_TASK_STATE, .tasks = tasks + 1, .n_tasks = 1},
        {.type = WEIR_MSG_DEPLOY,
         .job_name = "j",
         .graph_json = "{}",
         .args = args,
         .n_args = 2,
         .vertex = 0,
         .subtask = 1,
         .n_vertices = 1,
         .vertex_parallelism = par,
         .placement = placement},
        {.type = WEIR_MSG_BLOB, .blob = blob, .blob_len = sizeof blob, .error = NULL},
    };
    strcpy(msgs[3].job_id, JOB);
    strcpy(msgs[3].plugin_sha256, SHA);
    strcpy(msgs[4].blob_sha256, SHA);
    for (size_t k = 0; k < sizeof msgs / sizeof msgs[0]; k++) {
        uint8_t *enc;
        size_t len;
        assert_int_equal(weir_msg_encode(&msgs[k], &enc, &len), 0);
        assert_int_equal(try_decode(enc, len), 0);
        for (size_t cut = 0; cut < len; cut++) {
            uint8_t *copy = malloc(cut ? cut : 1); /* exact size: ASan sees over-reads */
            memcpy(copy, enc, cut);
            assert_int_equal(try_decode(copy, cut), WEIR_EPROTO);
            free(copy);
        }
        uint8_t *copy = malloc(len);
        for (int flip = 0; flip < 3000; flip++) {
            memcpy(copy, enc, len);
            int nflips = 1 + (int)(rnd() % 3);
            for (int j = 0; j < nflips; j++)
                copy[rnd() % len] = (uint8_t)rnd();
            try_decode(copy, len);
        }
        free(copy);
        free(enc);
    }
    free(tasks[1].message);
}

/* One message of every type (some types twice, to cover nil/present optional fields), filled so
 * that every integer width, str/bin size class and nil case the encoder can emit appears. */
enum { N_SAMPLES = 21 };
static uint32_t s_par[] = {1, 3};
static char *s_p0[] = {"tcp://a:1"};
static char *s_p1[] = {"tcp://a:1", NULL, "tcp://c:3"};
static char **s_placement[] = {s_p0, s_p1};
static char *s_args[] = {"job.so", NULL, "a string of exactly thirty-two b"};
static uint8_t s_bin[40] = {0x93, 0x01, 0x02, 0xc0, 0xff};

static void samples(weir_msg_t m[N_SAMPLES], weir_msg_task_state_t tasks[2]) {
    memset(m, 0, N_SAMPLES * sizeof *m);
    tasks[0] = make_task(0);
    tasks[1] = make_task(1);
    m[0] = (weir_msg_t){.type = WEIR_MSG_REGISTER,
                        .tm_id = "tm-1",
                        .data_address = "tcp://127.0.0.1:40000",
                        .host = NULL,
                        .slots = 300,
                        .pid = -70000};
    m[1] = (weir_msg_t){.type = WEIR_MSG_REGISTERED, .heartbeat_interval_ms = 100000};
    m[2] = (weir_msg_t){.type = WEIR_MSG_HEARTBEAT,
                        .tm_id = "tm-9",
                        .tasks = tasks,
                        .n_tasks = 2,
                        .metrics_port = 9249,
                        .rss_bytes = 1ULL << 31,
                        .cpu_ns = 3,
                        .mem_process = 1ULL << 32,
                        .mem_network_total = 5,
                        .mem_network_used = 6,
                        .mem_managed_total = 7,
                        .mem_managed_used = 8,
                        .mem_state_cache_total = 9,
                        .mem_state_cache_used = 10};
    m[3] = (weir_msg_t){.type = WEIR_MSG_HEARTBEAT_ACK};
    m[4] = (weir_msg_t){.type = WEIR_MSG_UNKNOWN};
    m[5] = (weir_msg_t){.type = WEIR_MSG_DEPLOY,
                        .attempt = 70000,
                        .job_name = "wordcount",
                        .graph_json = "{\"name\":\"wordcount\",\"vertices\":[1,2,3,4,5,6]}",
                        .args = s_args,
                        .n_args = 3,
                        .vertex = 1,
                        .subtask = 2,
                        .n_vertices = 2,
                        .vertex_parallelism = s_par,
                        .placement = s_placement};
    strcpy(m[5].job_id, JOB);
    strcpy(m[5].plugin_sha256, SHA);
    m[6] = m[5];
    m[6].checkpoint_mode = WEIR_CHECKPOINT_EXACTLY_ONCE;
    m[6].checkpoint_dir = "/ckpt/0123456789abcdef0123456789abcdef";
    m[6].restore_checkpoint_id = 1ull << 40;
    m[6].restore_op_state = s_bin;
    m[6].restore_op_state_len = 5;
    m[6].restore_keyed_handle = "{\"shared\":[]}";
    m[7] = (weir_msg_t){.type = WEIR_MSG_CANCEL, .attempt = 200};
    strcpy(m[7].job_id, JOB);
    m[8] = (weir_msg_t){.type = WEIR_MSG_TASK_STATE, .tasks = tasks + 1, .n_tasks = 1};
    m[9] = (weir_msg_t){.type = WEIR_MSG_BLOB_REQUEST};
    strcpy(m[9].blob_sha256, SHA);
    m[10] = (weir_msg_t){.type = WEIR_MSG_BLOB, .blob = s_bin, .blob_len = sizeof s_bin};
    strcpy(m[10].blob_sha256, SHA);
    m[11] = (weir_msg_t){.type = WEIR_MSG_BLOB, .error = "no such blob"};
    strcpy(m[11].blob_sha256, "ab");
    m[12] = (weir_msg_t){.type = WEIR_MSG_TRIGGER_CHECKPOINT,
                         .attempt = 3,
                         .checkpoint_id = 77,
                         .checkpoint_timestamp = 1700000000123,
                         .vertex = 2,
                         .subtask = 5};
    strcpy(m[12].job_id, JOB);
    m[13] = (weir_msg_t){.type = WEIR_MSG_ACK_CHECKPOINT,
                         .attempt = 1,
                         .checkpoint_id = 9,
                         .vertex = 1,
                         .subtask = 0,
                         .final = true,
                         .op_state = s_bin,
                         .op_state_len = 3,
                         .keyed_handle = "{\"k\":1}",
                         .state_size = 1ull << 33,
                         .uploaded_size = 4096,
                         .alignment_ns = 5,
                         .sync_ns = 60000,
                         .async_ns = UINT64_MAX};
    strcpy(m[13].job_id, JOB);
    m[14] = (weir_msg_t){.type = WEIR_MSG_ACK_CHECKPOINT, .checkpoint_id = 10};
    strcpy(m[14].job_id, "j");
    m[15] = (weir_msg_t){.type = WEIR_MSG_DECLINE_CHECKPOINT,
                         .attempt = 2,
                         .checkpoint_id = 4,
                         .vertex = 3,
                         .subtask = 1,
                         .error = "disk full"};
    strcpy(m[15].job_id, JOB);
    m[16] = (weir_msg_t){.type = WEIR_MSG_NOTIFY_CHECKPOINT, .attempt = 2, .checkpoint_id = 12};
    strcpy(m[16].job_id, JOB);
    m[17] = m[16];
    m[17].final = true;
    m[18] = m[12];
    m[18].ck_kind = WEIR_CK_SAVEPOINT;
    m[18].target = "/sp/savepoint-012345-0123456789ab";
    m[19] = (weir_msg_t){.type = WEIR_MSG_LOG_REQUEST, .request_id = 70000, .max_bytes = 1 << 20};
    m[20] = (weir_msg_t){.type = WEIR_MSG_LOG,
                         .tm_id = "tm-9",
                         .request_id = 1,
                         .log_tail = s_bin,
                         .log_tail_len = 5};
}

/* The bytes of samples() as encoded by the hand-written encoder before the protocol became one
 * table (captured from commit 69cc051): the table-driven encoder must reproduce them exactly.
 * Changed deliberately since: TRIGGER_CHECKPOINT (samples 12 and 18) gained ck_kind and target
 * (issue 9, savepoints): 0x98 -> 0x9a (two more fields), then 0x00 0xc0 (a checkpoint, no
 * target) or 0x01 and the target string. */
static const char *const GOLDEN[N_SAMPLES] = {
    "970101a4746d2d31b57463703a2f2f3132372e302e302e313a3430303030c0cd012cd2fffeee90",
    "930201ce000186a0",
    "9e0301a4746d2d399297d92030313233343536373839616263646566303132333435363738396162"
    "6364656603020002c0dc0018cf000000e8d4a510000708090acfffffffffffffffff0c0d0ecf0000"
    "00020000000010111213141516fb18191aff1c1d97d9203031323334353637383961626364656630"
    "31323334353637383961626364656604020106bb6d61702027706172736527207375627461736b20"
    "313a20626f6f6ddc0018cf000000e8d4a510010708090acfffffffffffffffff0c0d0ecf00000002"
    "0000000010111213141516d3800000000000000018191aff1c1dcd2421ce8000000003cf00000001"
    "0000000005060708090a",
    "920401",
    "920501",
    "dc00110601d9203031323334353637383961626364656630313233343536373839616263646566ce"
    "00011170a9776f7264636f756e74d940626137383136626638663031636665613431343134306465"
    "35646165323232336230303336316133393631373761396362343130666636316632303031356164"
    "d92d7b226e616d65223a22776f7264636f756e74222c227665727469636573223a5b312c322c332c"
    "342c352c365d7d93a66a6f622e736fc0d9206120737472696e67206f662065786163746c79207468"
    "697274792d74776f206201029201039291a97463703a2f2f613a3193a97463703a2f2f613a31c0a9"
    "7463703a2f2f633a3300c000c0c0",
    "dc00110601d9203031323334353637383961626364656630313233343536373839616263646566ce"
    "00011170a9776f7264636f756e74d940626137383136626638663031636665613431343134306465"
    "35646165323232336230303336316133393631373761396362343130666636316632303031356164"
    "d92d7b226e616d65223a22776f7264636f756e74222c227665727469636573223a5b312c322c332c"
    "342c352c365d7d93a66a6f622e736fc0d9206120737472696e67206f662065786163746c79207468"
    "697274792d74776f206201029201039291a97463703a2f2f613a3193a97463703a2f2f613a31c0a9"
    "7463703a2f2f633a3301d9262f636b70742f30313233343536373839616263646566303132333435"
    "36373839616263646566cf0000010000000000c405930102c0ffad7b22736861726564223a5b5d7d",
    "940701d9203031323334353637383961626364656630313233343536373839616263646566ccc8",
    "93080197d92030313233343536373839616263646566303132333435363738396162636465660402"
    "0106bb6d61702027706172736527207375627461736b20313a20626f6f6ddc0018cf000000e8d4a5"
    "10010708090acfffffffffffffffff0c0d0ecf000000020000000010111213141516d38000000000"
    "00000018191aff1c1d",
    "930901d9406261373831366266386630316366656134313431343064653564616532323233623030"
    "3336316133393631373761396362343130666636316632303031356164",
    "950a01d9406261373831366266386630316366656134313431343064653564616532323233623030"
    "3336316133393631373761396362343130666636316632303031356164c428930102c0ff00000000"
    "00000000000000000000000000000000000000000000000000000000000000c0",
    "950a01a26162c0ac6e6f207375636820626c6f62",
    "9a0b01d9203031323334353637383961626364656630313233343536373839616263646566034dcf"
    "0000018bcfe5687b020500c0",
    "9f0c01d9203031323334353637383961626364656630313233343536373839616263646566010901"
    "00c3c403930102a77b226b223a317dcf0000000200000000cd100005cdea60cfffffffffffffffff",
    "9f0c01a16a000a0000c2c0c00000000000",
    "980d01d9203031323334353637383961626364656630313233343536373839616263646566020403"
    "01a96469736b2066756c6c",
    "960e01d9203031323334353637383961626364656630313233343536373839616263646566020cc2",
    "960e01d9203031323334353637383961626364656630313233343536373839616263646566020cc3",
    "9a0b01d9203031323334353637383961626364656630313233343536373839616263646566034dcf"
    "0000018bcfe5687b020501d9212f73702f73617665706f696e742d3031323334352d303132333435"
    "363738396162",
    "940f01ce00011170ce00100000",
    "951001a4746d2d3901c405930102c0ff",
};

static void test_golden_bytes(void **state) {
    (void)state;
    weir_msg_t m[N_SAMPLES];
    weir_msg_task_state_t tasks[2];
    samples(m, tasks);
    bool all_types[WEIR_MSG_LOG + 1] = {false};
    int mismatches = 0;
    for (int k = 0; k < N_SAMPLES; k++) {
        uint8_t *buf;
        size_t len;
        assert_int_equal(weir_msg_encode(&m[k], &buf, &len), 0);
        char *hex = malloc(2 * len + 1);
        for (size_t i = 0; i < len; i++)
            sprintf(hex + 2 * i, "%02x", buf[i]);
        hex[2 * len] = '\0';
        if (!GOLDEN[k] || strcmp(hex, GOLDEN[k]) != 0) {
            print_message("sample %d (type %d) encodes as\n    \"%s\",\n", k, (int)m[k].type, hex);
            mismatches++;
        }
        weir_msg_t o;
        roundtrip(&m[k], &o);
        weir_msg_clear(&o);
        all_types[m[k].type] = true;
        free(hex);
        free(buf);
    }
    for (int t = WEIR_MSG_REGISTER; t <= WEIR_MSG_LOG; t++)
        assert_true(all_types[t]);
    free(tasks[1].message);
    assert_int_equal(mismatches, 0);
}

/* Random truncations, byte flips, inserted and deleted bytes of every sample (every message type):
 * the decoder must return 0 or WEIR_EPROTO, never crash or leak (ASan), fixed seed. */
static void test_fuzz_every_type(void **state) {
    (void)state;
    weir_msg_t m[N_SAMPLES];
    weir_msg_task_state_t tasks[2];
    samples(m, tasks);
    rng_state = 0x243f6a8885a308d3ULL;
    for (int k = 0; k < N_SAMPLES; k++) {
        uint8_t *enc;
        size_t len;
        assert_int_equal(weir_msg_encode(&m[k], &enc, &len), 0);
        assert_int_equal(try_decode(enc, len), 0);
        for (int iter = 0; iter < 2000; iter++) {
            uint8_t *copy = malloc(len + 1);
            memcpy(copy, enc, len);
            size_t n = len;
            switch (rnd() % 4) {
            case 0: /* truncation: never a whole message */
                n = rnd() % len;
                assert_int_equal(try_decode(copy, n), WEIR_EPROTO);
                free(copy);
                continue;
            case 1: /* bit flips */
                for (int j = 1 + (int)(rnd() % 3); j > 0; j--)
                    copy[rnd() % len] ^= (uint8_t)(1u << (rnd() % 8));
                break;
            case 2: /* a byte inserted */
            {
                size_t at = rnd() % (len + 1);
                memmove(copy + at + 1, copy + at, len - at);
                copy[at] = (uint8_t)rnd();
                n = len + 1;
                break;
            }
            default: /* a byte deleted */
            {
                size_t at = rnd() % len;
                memmove(copy + at, copy + at + 1, len - at - 1);
                n = len - 1;
                break;
            }
            }
            uint8_t *exact = malloc(n ? n : 1); /* exact size: ASan sees over-reads */
            memcpy(exact, copy, n);
            try_decode(exact, n);
            free(exact);
            free(copy);
        }
        free(enc);
    }
    free(tasks[1].message);
}

static void test_state_names(void **state) {
    (void)state;
    assert_string_equal(weir_task_state_name(WEIR_TASK_CREATED), "CREATED");
    assert_string_equal(weir_task_state_name(WEIR_TASK_DEPLOYING), "DEPLOYING");
    assert_string_equal(weir_task_state_name(WEIR_TASK_RUNNING), "RUNNING");
    assert_string_equal(weir_task_state_name(WEIR_TASK_FINISHED), "FINISHED");
    assert_string_equal(weir_task_state_name(WEIR_TASK_CANCELING), "CANCELING");
    assert_string_equal(weir_task_state_name(WEIR_TASK_CANCELED), "CANCELED");
    assert_string_equal(weir_task_state_name(WEIR_TASK_FAILED), "FAILED");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_roundtrip),
        cmocka_unit_test(test_heartbeat_and_task_state),
        cmocka_unit_test(test_deploy_cancel),
        cmocka_unit_test(test_checkpoint_messages),
        cmocka_unit_test(test_blob),
        cmocka_unit_test(test_hand_assembled),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_fuzz),
        cmocka_unit_test(test_state_names),
        cmocka_unit_test(test_golden_bytes),
        cmocka_unit_test(test_fuzz_every_type),
        cmocka_unit_test(test_error_texts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
