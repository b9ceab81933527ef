/* Unit tests of the subtask metrics (runtime/task/: weir_task_get_metrics, the METRICS fields of
 * common/proto.h, and weir_task_get_operator_metrics): small jobs run in-process as tasks on one
 * or two data planes, their metrics checked against what the test itself counts and measures
 * (records its user functions saw, wall time by its own clock, bytes summed over both ends of
 * every channel), and sampled from the test thread while they run (counters never go back).
 *
 * Threading: the tasks' threads run the user functions (they count under a mutex); the test
 * thread samples metrics while they run, as the task manager's heartbeat does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/proto.h"
#include "common/util.h"
#include "connectors/registry.h"
#include "runtime/dataplane/dataplane.h"
#include "runtime/graph/graph.h"
#include "runtime/task/task.h"
#include "testutil.h"
#include "../plugins/countsum_window.h"

#define JOB_ID "00112233445566778899aabbccddeeff"
#define MAX_TASKS 8

/* ---- harness -------------------------------------------------------------------------------- */

typedef struct harness {
    weir_dataplane_t *dp[2];
    char *tmp;
    char ***placement;
    uint32_t n_vertices;
    pthread_mutex_t mu;
    weir_task_t *tasks[MAX_TASKS];
    int n_tasks, n_final;
    weir_task_state_t final[MAX_TASKS];
    int64_t started_ns[MAX_TASKS]; /* the test's clock just before weir_task_start */
    int64_t ended_ns[MAX_TASKS];   /* ... in the final state callback */
    /* what the user functions saw */
    uint64_t sink_count, map_count, late_emitted;
    int64_t sleep_ns; /* the slow sink: per record */
    /* checkpointing (the Kafka test): the test plays the coordinator */
    weir_checkpoint_mode_t ck_mode;
    char *ck_dir;
    uint64_t acks[8]; /* ACKs per checkpoint id < 8 */
} harness_t;

static void test_send(void *arg, const weir_msg_t *msg) {
    harness_t *h = arg;
    pthread_mutex_lock(&h->mu);
    if (msg->type == WEIR_MSG_ACK_CHECKPOINT && msg->checkpoint_id < 8)
        h->acks[msg->checkpoint_id]++;
    pthread_mutex_unlock(&h->mu);
}

static harness_t *g_h; /* the user functions' udata is the harness: set per test */

static void on_state(void *arg, weir_task_t *task, weir_task_state_t st, const char *msg) {
    (void)msg;
    harness_t *h = arg;
    if (st == WEIR_TASK_RUNNING)
        return;
    pthread_mutex_lock(&h->mu);
    for (int i = 0; i < h->n_tasks; i++)
        if (h->tasks[i] == task) {
            h->final[i] = st;
            h->ended_ns[i] = weir_now_ns();
        }
    h->n_final++;
    pthread_mutex_unlock(&h->mu);
}

static void harness_init(harness_t *h, int n_planes) {
    memset(h, 0, sizeof *h);
    char err[256];
    for (int i = 0; i < n_planes; i++) {
        h->dp[i] = weir_dataplane_new("127.0.0.1", 0, "127.0.0.1", err, sizeof err);
        assert_non_null(h->dp[i]);
    }
    h->tmp = weir_test_tmpdir("test_task_metrics");
    pthread_mutex_init(&h->mu, NULL);
    g_h = h;
}

static void harness_fini(harness_t *h) {
    for (int i = 0; i < h->n_tasks; i++)
        weir_task_destroy(&h->tasks[i]);
    for (uint32_t v = 0; v < h->n_vertices; v++)
        free(h->placement[v]);
    free(h->placement);
    for (int i = 0; i < 2; i++)
        weir_dataplane_destroy(&h->dp[i]);
    weir_test_tmpdir_remove(h->tmp);
    pthread_mutex_destroy(&h->mu);
    g_h = NULL;
}

typedef weir_job_t *(*build_fn)(harness_t *h);

/* Starts every subtask of the job; subtask s of every vertex runs on plane s % n_planes, and
 * with @p split_vertices vertex v on plane v % n_planes (every channel between vertices
 * remote). */
static void start_job(harness_t *h, build_fn build, int n_planes, bool split_vertices) {
    char err[512];
    weir_job_t *proto = build(h);
    if (weir_graph_finalize(proto, err, sizeof err) != 0)
        fail_msg("weir_graph_finalize: %s", err);
    h->n_vertices = proto->n_vertices;
    h->placement = calloc(proto->n_vertices, sizeof *h->placement);
    for (uint32_t v = 0; v < proto->n_vertices; v++) {
        h->placement[v] = calloc(proto->vertices[v].parallelism, sizeof(char *));
        for (uint32_t s = 0; s < proto->vertices[v].parallelism; s++)
            h->placement[v][s] =
                (char *)weir_dataplane_address(h->dp[(split_vertices ? v : s) % n_planes]);
    }
    for (uint32_t v = 0; v < proto->n_vertices; v++) {
        for (uint32_t s = 0; s < proto->vertices[v].parallelism; s++) {
            weir_job_t *g = build(h);
            assert_int_equal(weir_graph_finalize(g, err, sizeof err), 0);
            weir_task_spec_t spec = {0};
            memcpy(spec.job_id, JOB_ID, 33);
            spec.attempt = 1;
            spec.graph = g;
            spec.vertex = v;
            spec.subtask = s;
            spec.placement = h->placement;
            spec.dataplane = h->dp[(split_vertices ? v : s) % n_planes];
            spec.work_dir = h->tmp;
            spec.buffer_size = 4096; /* small: many buffers, credits run out */
            spec.buffer_timeout_ns = 2000000;
            spec.watermark_interval_ns = 50000000; /* build_late: 50 ms */
            spec.credits_per_channel = 2;
            spec.state_cache_bytes = 1 << 20;
            spec.on_state = on_state;
            spec.cb_arg = h;
            spec.create_connector = weir_connector_create;
            spec.checkpoint_mode = h->ck_mode;
            spec.checkpoint_dir = h->ck_dir;
            spec.send = test_send;
            spec.send_arg = h;
            pthread_mutex_lock(&h->mu);
            h->started_ns[h->n_tasks] = weir_now_ns();
            weir_task_t *t = weir_task_start(&spec, err, sizeof err);
            if (!t)
                fail_msg("weir_task_start: %s", err);
            h->tasks[h->n_tasks++] = t;
            pthread_mutex_unlock(&h->mu);
        }
    }
    weir_graph_destroy(&proto);
}

static bool all_final(void *arg) {
    harness_t *h = arg;
    pthread_mutex_lock(&h->mu);
    bool done = h->n_final >= h->n_tasks;
    pthread_mutex_unlock(&h->mu);
    return done;
}

static void wait_final(harness_t *h) {
    assert_true(weir_test_wait_until(all_final, h, 60000, 2));
    for (int i = 0; i < h->n_tasks; i++)
        assert_int_equal(h->final[i], WEIR_TASK_FINISHED);
}

static weir_task_t *task_of(harness_t *h, uint32_t vertex, uint32_t subtask) {
    for (int i = 0; i < h->n_tasks; i++)
        if (weir_task_vertex(h->tasks[i]) == vertex && weir_task_subtask(h->tasks[i]) == subtask)
            return h->tasks[i];
    fail_msg("no task %u.%u", vertex, subtask);
    return NULL;
}

/* One sample of every task: the time counters and the records never go back (a heartbeat must
 * never see a counter decrease: Prometheus reads that as a reset). */
typedef struct sample {
    weir_task_metrics_t m[MAX_TASKS];
} sample_t;

static void take_sample(harness_t *h, sample_t *prev, sample_t *cur, bool check) {
    for (int i = 0; i < h->n_tasks; i++) {
        weir_task_get_metrics(h->tasks[i], &cur->m[i]);
        const weir_task_metrics_t *a = &prev->m[i], *b = &cur->m[i];
        if (!check)
            continue;
        assert_true(b->busy_ns >= a->busy_ns);
        assert_true(b->idle_ns >= a->idle_ns);
        assert_true(b->backpressured_ns >= a->backpressured_ns);
        assert_true(b->records_in >= a->records_in);
        assert_true(b->records_out >= a->records_out);
        assert_true(b->in_queued <= b->in_capacity);
        assert_true(b->out_queued <= b->out_capacity);
    }
}

/* Busy + idle + backpressured of every task of @p h: within the wall time the test measured
 * around it (from just before its weir_task_start to its final state callback) and not more
 * than 3 % (plus 1 ms) below it. */
static void check_partition(harness_t *h) {
    for (int i = 0; i < h->n_tasks; i++) {
        weir_task_metrics_t m;
        weir_task_get_metrics(h->tasks[i], &m);
        uint64_t sum = m.busy_ns + m.idle_ns + m.backpressured_ns;
        int64_t wall_ns = h->ended_ns[i] - h->started_ns[i];
        assert_true(wall_ns > 0);
        assert_true(sum <= (uint64_t)wall_ns);
        assert_true((double)sum >= 0.97 * (double)wall_ns - 1e6);
    }
}

/* ---- user functions ------------------------------------------------------------------------- */

static void gen_fn(weir_ctx_t *ctx, uint64_t index, void *udata) {
    (void)udata;
    msgpack_pack_uint64(weir_packer(ctx), index);
    uint8_t key[8];
    for (int i = 0; i < 8; i++)
        key[i] = (uint8_t)(index >> (56 - 8 * i));
    weir_emit_packed(ctx, (int64_t)index, key, 8);
}

static uint64_t value_of(weir_ctx_t *ctx, const weir_record_t *in) {
    msgpack_object o;
    if (weir_unpack(ctx, in, &o) < 0)
        return 0;
    return o.type == MSGPACK_OBJECT_POSITIVE_INTEGER ? o.via.u64 : 0;
}

static void map_fn(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    harness_t *h = udata;
    uint64_t v = value_of(ctx, in);
    pthread_mutex_lock(&h->mu);
    h->map_count++;
    pthread_mutex_unlock(&h->mu);
    msgpack_pack_uint64(weir_packer(ctx), v + 1);
    weir_emit_packed(ctx, in->timestamp, in->key, in->key_len);
}

static bool even_fn(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    (void)udata;
    return value_of(ctx, in) % 2 == 0;
}

static void sink_fn(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    (void)ctx;
    (void)in;
    harness_t *h = udata;
    pthread_mutex_lock(&h->mu);
    h->sink_count++;
    int64_t ns = h->sleep_ns;
    pthread_mutex_unlock(&h->mu);
    if (ns)
        weir_sleep_ns(ns);
}

/* ---- jobs ----------------------------------------------------------------------------------- */

#define CHAIN_N 5000

/* generator -> map -> filter (even) -> sink, one chain of parallelism 1 */
static weir_job_t *build_chain(harness_t *h) {
    weir_job_t *job = weir_graph_new("chain", 1);
    weir_stream_t *s =
        weir_set_uid(weir_source_generator(job, "gen", CHAIN_N, 0, gen_fn, NULL), "gen");
    s = weir_set_uid(weir_map(s, "plus1", map_fn, h), "plus1-uid");
    s = weir_filter(s, "even", even_fn, NULL);
    weir_sink(s, "collect", sink_fn, h);
    return job;
}

#define SHUFFLE_N 40000

/* generator (p2) -> rebalance -> sink (p2): four channels between the vertices */
static weir_job_t *build_shuffle(harness_t *h) {
    weir_job_t *job = weir_graph_new("shuffle", 2);
    weir_stream_t *s =
        weir_set_uid(weir_source_generator(job, "gen", SHUFFLE_N, 0, gen_fn, NULL), "gen");
    weir_sink(weir_rebalance(s), "collect", sink_fn, h);
    return job;
}

#define SLOW_N 3000

/* generator (unlimited) -> rebalance -> a sink sleeping per record, parallelism 1 */
static weir_job_t *build_slow(harness_t *h) {
    weir_job_t *job = weir_graph_new("slow", 1);
    weir_stream_t *s =
        weir_set_uid(weir_source_generator(job, "gen", SLOW_N, 0, gen_fn, NULL), "gen");
    weir_sink(weir_rebalance(s), "slow", sink_fn, h);
    return job;
}

#define TRICKLE_N 40

/* generator at 40 records/s (one second) -> rebalance -> sink, parallelism 1 */
static weir_job_t *build_trickle(harness_t *h) {
    weir_job_t *job = weir_graph_new("trickle", 1);
    weir_stream_t *s =
        weir_set_uid(weir_source_generator(job, "gen", TRICKLE_N, TRICKLE_N, gen_fn, NULL), "gen");
    weir_sink(weir_rebalance(s), "collect", sink_fn, h);
    return job;
}

#define LATE_N 700
#define LATE_EVERY 100 /* every 100th record (but 0) carries timestamp 0: late */

/* Indices at 1000 records/s, event time index * 1000 ms (bound 0): every LATE_EVERY-th record
 * but the first carries timestamp 0, below the watermark by then (the periodic watermark runs
 * every 50 ms, at least 50 records earlier): late for its only window [0, 10). */
static void late_gen_fn(weir_ctx_t *ctx, uint64_t index, void *udata) {
    harness_t *h = udata;
    int64_t ts = (int64_t)index * 1000;
    if (index && index % LATE_EVERY == 0) {
        ts = 0;
        pthread_mutex_lock(&h->mu);
        h->late_emitted++;
        pthread_mutex_unlock(&h->mu);
    }
    msgpack_pack_uint64(weir_packer(ctx), index);
    weir_emit_packed(ctx, ts, "k", 1);
}

/* generator (event time) -> key_by -> tumbling 10 ms count/sum window -> sink, parallelism 1 */
static weir_job_t *build_late(harness_t *h) {
    weir_job_t *job = weir_graph_new("late", 1);
    weir_stream_t *s =
        weir_set_uid(weir_source_generator(job, "gen", LATE_N, 1000, late_gen_fn, h), "gen");
    weir_watermark_strategy_t wst = {.max_out_of_orderness_ms = 0};
    weir_set_watermark_strategy(s, &wst);
    weir_window_spec_t spec = {.kind = WEIR_WINDOW_TUMBLING, .size_ms = 10};
    static const weir_aggregate_fns_t fns = {countsum_create, countsum_add, countsum_merge,
                                             countsum_result};
    s = weir_set_uid(weir_window_aggregate(weir_key_by(s, NULL, NULL), "win", &spec, &fns, NULL),
                     "win");
    weir_sink(s, "collect", sink_fn, h);
    return job;
}

/* ---- tests ---------------------------------------------------------------------------------- */

/* Per-operator counters of a four-operator chain against what the user functions saw: the
 * generator emits CHAIN_N, the map gets and emits them all, the filter passes the even half,
 * the sink gets that half. Names and uids are the nodes'. */
static void test_operator_metrics(void **state) {
    (void)state;
    harness_t h;
    harness_init(&h, 1);
    start_job(&h, build_chain, 1, false);
    wait_final(&h);
    weir_task_t *t = h.tasks[0];
    assert_int_equal(weir_task_operator_count(t), 4);
    weir_operator_metrics_t om[5];
    for (size_t i = 0; i < 5; i++)
        weir_task_get_operator_metrics(t, i, &om[i]);
    assert_string_equal(om[0].name, "gen");
    assert_string_equal(om[1].name, "plus1");
    assert_string_equal(om[1].uid, "plus1-uid");
    assert_string_equal(om[2].name, "even");
    assert_string_equal(om[3].name, "collect");
    assert_null(om[4].name); /* out of range: zeroes */
    assert_int_equal(om[4].records_in + om[4].records_out, 0);
    uint64_t want_even = 0; /* values index + 1 that are even: the odd indices */
    for (uint64_t i = 0; i < CHAIN_N; i++)
        want_even += (i + 1) % 2 == 0;
    assert_int_equal(h.map_count, CHAIN_N);
    assert_int_equal(h.sink_count, want_even);
    assert_int_equal(om[0].records_in, 0);
    assert_int_equal(om[0].records_out, CHAIN_N);
    assert_int_equal(om[1].records_in, h.map_count);
    assert_int_equal(om[1].records_out, CHAIN_N);
    assert_int_equal(om[2].records_in, CHAIN_N);
    assert_int_equal(om[2].records_out, want_even);
    assert_int_equal(om[3].records_in, h.sink_count);
    assert_int_equal(om[3].records_out, 0);
    weir_task_metrics_t m;
    weir_task_get_metrics(t, &m);
    assert_int_equal(m.records_in, 0); /* a source task reads no input gate */
    assert_int_equal(m.kafka_lag, -1); /* not a Kafka source */
    assert_int_equal(m.kafka_tx_committed + m.kafka_tx_aborted, 0);
    assert_int_equal(m.watermark, INT64_MAX); /* the source's end of input */
    harness_fini(&h);
}

/* Channels inside one task manager: every buffer and byte a source passed on is counted once on
 * each side (local, none remote); across two task managers: the same as remote, none local. */
static void run_shuffle(bool remote) {
    harness_t h;
    harness_init(&h, remote ? 2 : 1);
    start_job(&h, build_shuffle, remote ? 2 : 1, remote);
    wait_final(&h);
    assert_int_equal(h.sink_count, SHUFFLE_N);
    uint64_t out_bufs = 0, out_bytes = 0, in_bufs = 0, in_bytes = 0, other = 0, recs = 0;
    for (uint32_t s = 0; s < 2; s++) {
        weir_task_metrics_t src, dst;
        weir_task_get_metrics(task_of(&h, 0, s), &src);
        weir_task_get_metrics(task_of(&h, 1, s), &dst);
        out_bufs += remote ? src.buffers_out_remote : src.buffers_out_local;
        out_bytes += remote ? src.bytes_out_remote : src.bytes_out_local;
        in_bufs += remote ? dst.buffers_in_remote : dst.buffers_in_local;
        in_bytes += remote ? dst.bytes_in_remote : dst.bytes_in_local;
        other += remote ? src.buffers_out_local + src.bytes_out_local + dst.buffers_in_local +
                              dst.bytes_in_local
                        : src.buffers_out_remote + src.bytes_out_remote + dst.buffers_in_remote +
                              dst.bytes_in_remote;
        recs += dst.records_in;
        assert_int_equal(src.out_capacity, 2 * 2); /* 2 channels x 2 credits */
        assert_int_equal(dst.in_capacity, 2 * 2);
        assert_int_equal(dst.in_queued, 0); /* finished: everything processed */
        assert_int_equal(dst.watermark, INT64_MAX);
    }
    assert_int_equal(recs, SHUFFLE_N);
    assert_true(out_bufs > 4); /* many 4 KiB buffers */
    assert_true(out_bytes > (uint64_t)SHUFFLE_N * 10);
    assert_int_equal(in_bufs, out_bufs);
    assert_int_equal(in_bytes, out_bytes);
    assert_int_equal(other, 0);
    harness_fini(&h);
}

static void test_local_bytes(void **state) {
    (void)state;
    run_shuffle(false);
}

static void test_remote_bytes(void **state) {
    (void)state;
    run_shuffle(true);
}

/* A source far faster than its sink (100 us per record): the source is mostly backpressured,
 * the sink mostly busy; while it runs the source's output credit window is seen full and the
 * sink's input queue non-empty, and no counter ever goes back. The three times partition the
 * wall time. */
static void test_backpressured(void **state) {
    (void)state;
    harness_t h;
    harness_init(&h, 1);
    h.sleep_ns = 100000;
    start_job(&h, build_slow, 1, false);
    sample_t a = {0}, b = {0};
    take_sample(&h, &a, &a, false);
    bool out_full = false, in_seen = false;
    int src_i = weir_task_vertex(h.tasks[0]) == 0 ? 0 : 1;
    while (!all_final(&h)) {
        weir_sleep_ns(5000000);
        take_sample(&h, &a, &b, true);
        out_full |= b.m[src_i].out_queued == b.m[src_i].out_capacity;
        in_seen |= b.m[1 - src_i].in_queued > 0;
        a = b;
    }
    wait_final(&h);
    assert_int_equal(h.sink_count, SLOW_N);
    check_partition(&h);
    weir_task_metrics_t src, snk;
    weir_task_get_metrics(task_of(&h, 0, 0), &src);
    weir_task_get_metrics(task_of(&h, 1, 0), &snk);
    double src_wall = (double)(src.busy_ns + src.idle_ns + src.backpressured_ns);
    double snk_wall = (double)(snk.busy_ns + snk.idle_ns + snk.backpressured_ns);
    print_message("source: busy %.2f idle %.2f bp %.2f; sink: busy %.2f idle %.2f bp %.2f\n",
                  src.busy_ns / src_wall, src.idle_ns / src_wall, src.backpressured_ns / src_wall,
                  snk.busy_ns / snk_wall, snk.idle_ns / snk_wall, snk.backpressured_ns / snk_wall);
    assert_true(src.backpressured_ns > 0.7 * src_wall);
    assert_true(snk.busy_ns > 0.7 * snk_wall);
    assert_true(out_full);
    assert_int_equal(src.out_capacity, 2); /* one channel x 2 credits */
    assert_true(in_seen);
    harness_fini(&h);
}

/* A source trickling 40 records over a second: both it and its sink are mostly idle (the
 * source waits for its next record's time, the sink for input); the times partition the wall
 * time, and never go back while sampled. */
static void test_idle(void **state) {
    (void)state;
    harness_t h;
    harness_init(&h, 1);
    start_job(&h, build_trickle, 1, false);
    sample_t a = {0}, b = {0};
    take_sample(&h, &a, &a, false);
    while (!all_final(&h)) {
        weir_sleep_ns(3000000);
        take_sample(&h, &a, &b, true);
        a = b;
    }
    wait_final(&h);
    assert_int_equal(h.sink_count, TRICKLE_N);
    check_partition(&h);
    for (int i = 0; i < h.n_tasks; i++) {
        weir_task_metrics_t m;
        weir_task_get_metrics(h.tasks[i], &m);
        double w = (double)(m.busy_ns + m.idle_ns + m.backpressured_ns);
        print_message("task %u: busy %.3f idle %.3f bp %.3f of %.3f s\n",
                      weir_task_vertex(h.tasks[i]), m.busy_ns / w, m.idle_ns / w,
                      m.backpressured_ns / w, w / 1e9);
        assert_true(w > 0.8e9);
        assert_true(m.idle_ns > 0.8 * w);
        assert_true(m.backpressured_ns < 0.05 * w);
    }
    harness_fini(&h);
}

/* Records late for every window they belong to are dropped and counted: exactly the ones the
 * generator made late (each lies far below the watermark by then). */
static void test_late_dropped(void **state) {
    (void)state;
    harness_t h;
    harness_init(&h, 1);
    start_job(&h, build_late, 1, false);
    /* the watermark is INT64_MIN until the source's first periodic watermark */
    weir_task_metrics_t m;
    wait_final(&h);
    uint64_t late = 0;
    for (int i = 0; i < h.n_tasks; i++) {
        weir_task_get_metrics(h.tasks[i], &m);
        late += m.late_records_dropped;
        if (weir_task_vertex(h.tasks[i]) == 1)
            assert_int_equal(m.late_records_dropped, LATE_N / LATE_EVERY - 1);
    }
    assert_int_equal(h.late_emitted, LATE_N / LATE_EVERY - 1);
    assert_int_equal(late, h.late_emitted);
    /* every on-time record is its own window's result ([0, 10) holds index 0 only) */
    assert_int_equal(h.sink_count, LATE_N - h.late_emitted);
    harness_fini(&h);
}

/* Before the first watermark a task reports INT64_MIN, and kafka_lag -1 (not a Kafka source). */
static void test_initial_values(void **state) {
    (void)state;
    harness_t h;
    harness_init(&h, 1);
    start_job(&h, build_trickle, 1, false);
    for (int i = 0; i < h.n_tasks; i++) {
        weir_task_metrics_t m;
        weir_task_get_metrics(h.tasks[i], &m);
        assert_int_equal(m.watermark, INT64_MIN);
        assert_int_equal(m.kafka_lag, -1);
    }
    for (int i = 0; i < h.n_tasks; i++)
        weir_task_cancel(h.tasks[i]);
    assert_true(weir_test_wait_until(all_final, &h, 60000, 2));
    harness_fini(&h);
}

/* ---- Kafka: lag and transactions against a real broker ------------------------------------ */

#define KAFKA_N 3000

typedef struct kafka_env {
    char dir[2048];
    char bootstrap[64];
} kafka_env_t;

static kafka_env_t g_kafka;

/* The repository root, from this file's path (tests/unit/test_task_metrics.c). */
static void src_root(char *out, size_t cap) {
    snprintf(out, cap, "%s", __FILE__);
    char *p = strstr(out, "/tests/unit/");
    if (p)
        *p = 0;
}

/* weir_source_kafka (rate-limited) -> weir_sink_kafka exactly-once, parallelism 1: one chain */
static weir_job_t *build_kafka(harness_t *h) {
    (void)h;
    weir_job_t *job = weir_graph_new("kafka", 1);
    const char *src_opts[] = {"bootstrap.servers", g_kafka.bootstrap, "topic",
                              "metrics-in",        "scan.rate-limit", "1000",
                              "value.format",      "string",          NULL};
    weir_stream_t *s = weir_set_uid(weir_source_kafka(job, "kin", src_opts), "kin");
    const char *sink_opts[] = {"bootstrap.servers",
                               g_kafka.bootstrap,
                               "topic",
                               "metrics-out",
                               "sink.delivery-guarantee",
                               "exactly-once",
                               "transaction.timeout.ms",
                               "60000",
                               NULL};
    weir_set_uid(weir_sink_kafka(s, "kout", sink_opts), "kout");
    return job;
}

/* Produces @p n lines "<first + i>" to metrics-in with kcat (not weir's client). */
static void produce(uint64_t first, uint64_t n) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "kcat -P -b %s -t metrics-in", g_kafka.bootstrap);
    FILE *f = popen(cmd, "w");
    assert_non_null(f);
    for (uint64_t i = 0; i < n; i++)
        fprintf(f, "%llu\n", (unsigned long long)(first + i));
    assert_int_equal(pclose(f), 0);
}

typedef struct wait_arg {
    harness_t *h;
    uint64_t records; /* records_out at least */
    int64_t lag;      /* kafka_lag equal (INT64_MIN: any) */
    uint64_t ck;      /* ACKs of this checkpoint id (0: none) */
    uint64_t commits; /* kafka_tx_committed at least */
} wait_arg_t;

/* What the source operator (chain position 0) emitted: the task's records_out counts records
 * written to output channels, and this chain ends in the sink. */
static uint64_t source_out(weir_task_t *t) {
    weir_operator_metrics_t om;
    weir_task_get_operator_metrics(t, 0, &om);
    return om.records_out;
}

static bool reached(void *arg) {
    wait_arg_t *w = arg;
    weir_task_metrics_t m;
    weir_task_get_metrics(w->h->tasks[0], &m);
    m.records_out = source_out(w->h->tasks[0]);
    pthread_mutex_lock(&w->h->mu);
    bool acked = !w->ck || w->h->acks[w->ck] > 0;
    pthread_mutex_unlock(&w->h->mu);
    return m.records_out >= w->records && (w->lag == INT64_MIN || m.kafka_lag == w->lag) && acked &&
           m.kafka_tx_committed >= w->commits;
}

/* Checkpoint @p id: trigger, wait for the ACK, notify; then the sink's transaction commits. */
static void checkpoint(harness_t *h, uint64_t id, uint64_t commits) {
    weir_task_trigger(h->tasks[0], id, weir_wall_ms(), WEIR_CK_CHECKPOINT, NULL);
    wait_arg_t w = {.h = h, .lag = INT64_MIN, .ck = id};
    assert_true(weir_test_wait_until(reached, &w, 30000, 5));
    weir_task_notify(h->tasks[0], id, false);
    w.commits = commits;
    assert_true(weir_test_wait_until(reached, &w, 30000, 5));
}

/* A Kafka source 3000 records behind, read at 1000 records/s: its lag, sampled while it runs,
 * lies between what the test produced minus what the source emitted by then and what it
 * produced (the lag is refreshed once a second), and drops to 0 once everything is read; the
 * exactly-once sink counts the transactions of two completed checkpoints as committed and the
 * one open with records at cancel as aborted. */
static void test_kafka_lag_and_transactions(void **state) {
    (void)state;
    if (!g_kafka.bootstrap[0])
        skip();
    harness_t h;
    harness_init(&h, 1);
    h.ck_mode = WEIR_CHECKPOINT_EXACTLY_ONCE;
    size_t len = strlen(h.tmp) + 8;
    h.ck_dir = malloc(len);
    snprintf(h.ck_dir, len, "%s/ck", h.tmp);
    produce(0, KAFKA_N);
    start_job(&h, build_kafka, 1, false);
    weir_task_t *t = h.tasks[0];
    bool lag_seen = false;
    weir_task_metrics_t m;
    uint64_t out;
    do {
        weir_sleep_ns(20000000);
        weir_task_get_metrics(t, &m);
        out = source_out(t); /* read after the lag: at least what the lag was computed from */
        if (m.kafka_lag > 0) {
            lag_seen = true;
            assert_true(m.kafka_lag <= KAFKA_N);
            assert_true(m.kafka_lag >= (int64_t)(KAFKA_N - out));
        }
    } while (out < KAFKA_N / 2);
    assert_true(lag_seen);
    checkpoint(&h, 1, 1);
    wait_arg_t w = {.h = &h, .records = KAFKA_N, .lag = 0};
    assert_true(weir_test_wait_until(reached, &w, 30000, 10));
    checkpoint(&h, 2, 2);
    produce(KAFKA_N, 10); /* into a new transaction, open at the cancel */
    w.records = KAFKA_N + 10;
    assert_true(weir_test_wait_until(reached, &w, 30000, 10));
    weir_task_cancel(t);
    assert_true(weir_test_wait_until(all_final, &h, 60000, 5));
    weir_task_get_metrics(t, &m);
    assert_int_equal(h.final[0], WEIR_TASK_CANCELED);
    assert_int_equal(source_out(t), KAFKA_N + 10);
    assert_int_equal(m.kafka_lag, 0);
    assert_int_equal(m.kafka_tx_committed, 2);
    assert_int_equal(m.kafka_tx_aborted, 1);
    free(h.ck_dir);
    harness_fini(&h);
}

/* Starts a broker for the Kafka test (deploy/local/kafka.sh on a free port); without java, kcat
 * or the broker the test is skipped. */
static int kafka_setup(void **state) {
    (void)state;
    memset(&g_kafka, 0, sizeof g_kafka);
    if (system("command -v java >/dev/null && command -v kcat >/dev/null") != 0)
        return 0;
    char root[1024], cmd[16384];
    src_root(root, sizeof root);
    char *tmp = weir_test_tmpdir("test_task_metrics_kafka");
    snprintf(g_kafka.dir, sizeof g_kafka.dir, "%s", tmp);
    free(tmp);
    int port = weir_test_free_port();
    snprintf(cmd, sizeof cmd,
             "%s/deploy/local/kafka.sh start %s/broker %d >%s/kafka-start.log 2>&1", root,
             g_kafka.dir, port, g_kafka.dir);
    if (port > 0 && system(cmd) == 0)
        snprintf(g_kafka.bootstrap, sizeof g_kafka.bootstrap, "127.0.0.1:%d", port);
    else
        print_message("no Kafka broker (%s): the Kafka test is skipped\n", cmd);
    return 0;
}

static int kafka_teardown(void **state) {
    (void)state;
    if (!g_kafka.dir[0])
        return 0;
    char root[1024], cmd[16384];
    src_root(root, sizeof root);
    snprintf(cmd, sizeof cmd, "%s/deploy/local/kafka.sh stop %s/broker >/dev/null 2>&1", root,
             g_kafka.dir);
    if (system(cmd) != 0)
        print_message("kafka.sh stop failed\n");
    char *dir = strdup(g_kafka.dir);
    weir_test_tmpdir_remove(dir);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_operator_metrics),
        cmocka_unit_test(test_local_bytes),
        cmocka_unit_test(test_remote_bytes),
        cmocka_unit_test(test_backpressured),
        cmocka_unit_test(test_idle),
        cmocka_unit_test(test_late_dropped),
        cmocka_unit_test(test_initial_values),
    };
    const struct CMUnitTest kafka[] = {
        cmocka_unit_test(test_kafka_lag_and_transactions),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    return failed + cmocka_run_group_tests(kafka, kafka_setup, kafka_teardown);
}
