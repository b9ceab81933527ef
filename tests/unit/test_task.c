/* Unit tests of the subtask runtime (runtime/task.c, runtime/operators.c): whole jobs run
 * in-process as tasks on one or two data planes (two planes exercise remote channels over
 * loopback), with a custom sink collecting the output, checked against independent
 * computations of the expected result. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <unistd.h>

#include "common/proto.h"
#include "common/util.h"
#include "runtime/dataplane.h"
#include "runtime/graph.h"
#include "runtime/task.h"

#define JOB_ID "0123456789abcdef0123456789abcdef"
#define MAX_TASKS 16

/* ---- shared collector --------------------------------------------------------------------- */

typedef struct collected {
    pthread_mutex_t mu;
    uint64_t count;
    uint64_t sum;
    uint64_t keyed_last[16]; /* per key: largest value seen (rolling sums only grow) */
    uint64_t keyed_count[16];
    bool key_mismatch;
} collected_t;

typedef struct states {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n_final;
    int n_running;
    weir_task_state_t final[MAX_TASKS];
    char message[MAX_TASKS][512];
    weir_task_t *tasks[MAX_TASKS];
    int n_tasks;
} states_t;

static void on_state(void *arg, weir_task_t *task, weir_task_state_t st, const char *msg) {
    states_t *s = arg;
    pthread_mutex_lock(&s->mu);
    int idx = -1;
    for (int i = 0; i < s->n_tasks; i++)
        if (s->tasks[i] == task)
            idx = i;
    if (st == WEIR_TASK_RUNNING) {
        s->n_running++;
    } else if (idx >= 0 || s->n_tasks < MAX_TASKS) {
        if (idx < 0) { /* started callback before registration: unlikely; record anyway */
            idx = s->n_tasks++;
            s->tasks[idx] = task;
        }
        s->final[idx] = st;
        snprintf(s->message[idx], sizeof s->message[idx], "%s", msg ? msg : "");
        s->n_final++;
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* ---- user functions ----------------------------------------------------------------------- */

static void gen_fn(weir_ctx_t *ctx, uint64_t index, void *udata) {
    (void)udata;
    msgpack_packer *pk = weir_packer(ctx);
    msgpack_pack_uint64(pk, index);
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

static void double_fn(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    (void)udata;
    uint64_t v = value_of(ctx, in);
    msgpack_pack_uint64(weir_packer(ctx), v * 2);
    weir_emit_packed(ctx, in->timestamp, in->key, in->key_len);
}

static bool not_multiple_of_3(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    (void)udata;
    return value_of(ctx, in) % 3 != 0;
}

static void collect_fn(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    collected_t *c = udata;
    uint64_t v = value_of(ctx, in);
    pthread_mutex_lock(&c->mu);
    c->count++;
    c->sum += v;
    pthread_mutex_unlock(&c->mu);
}

/* key = "k<value % 7>" */
static uint32_t mod7_key(const weir_record_t *in, void *out, void *udata) {
    (void)udata;
    msgpack_zone z;
    msgpack_zone_init(&z, 256);
    msgpack_object o;
    size_t off = 0;
    uint64_t v = 0;
    if (msgpack_unpack(in->value, in->value_len, &off, &z, &o) == MSGPACK_UNPACK_SUCCESS)
        v = o.via.u64;
    msgpack_zone_destroy(&z);
    char *k = out;
    k[0] = 'k';
    k[1] = (char)('0' + v % 7);
    return 2;
}

static void sum_reduce(const msgpack_object *acc, const msgpack_object *in, msgpack_packer *out,
                       void *udata) {
    (void)udata;
    msgpack_pack_uint64(out, acc->via.u64 + in->via.u64);
}

static void keyed_collect_fn(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    collected_t *c = udata;
    uint64_t v = value_of(ctx, in);
    pthread_mutex_lock(&c->mu);
    c->count++;
    if (in->key_len != 2 || ((const char *)in->key)[0] != 'k') {
        c->key_mismatch = true;
    } else {
        int k = ((const char *)in->key)[1] - '0';
        if (k < 0 || k > 6) {
            c->key_mismatch = true;
        } else {
            if (v > c->keyed_last[k])
                c->keyed_last[k] = v;
            c->keyed_count[k]++;
        }
    }
    pthread_mutex_unlock(&c->mu);
}

/* keyed process with value state: counts records per key, emits the count */
static void count_process(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    weir_state_id st = *(weir_state_id *)udata;
    const void *v;
    uint32_t len;
    uint64_t n = 0;
    int rc = weir_value_get(ctx, st, &v, &len);
    if (rc == 0 && len == 8)
        memcpy(&n, v, 8);
    n++;
    weir_value_put(ctx, st, &n, 8);
    uint32_t klen;
    const void *key = weir_current_key(ctx, &klen);
    if (klen != in->key_len || memcmp(key, in->key, klen) != 0)
        weir_fail(ctx, "current key differs from the record key");
    msgpack_pack_uint64(weir_packer(ctx), n);
    weir_emit_packed(ctx, in->timestamp, in->key, in->key_len);
}

static void failing_map(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    (void)udata;
    if (value_of(ctx, in) == 100)
        weir_fail(ctx, "boom at %d", 100);
    weir_emit(ctx, in);
}

/* ---- harness ------------------------------------------------------------------------------ */

typedef weir_job_t *(*build_fn)(collected_t *c, uint64_t n);

typedef struct harness {
    weir_dataplane_t *dp[2];
    char tmp[256];
    states_t st;
    collected_t col;
    char ***placement;
    uint32_t n_vertices;
} harness_t;

static void harness_init(harness_t *h, int n_planes) {
    memset(h, 0, sizeof *h);
    char err[256];
    for (int i = 0; i < n_planes; i++) {
        h->dp[i] = weir_dataplane_new("127.0.0.1", 0, "127.0.0.1", err, sizeof err);
        assert_non_null(h->dp[i]);
    }
    const char *base = getenv("WEIR_TEST_TMP");
    if (!base || !*base)
        base = "/tmp";
    weir_mkdirs(base);
    snprintf(h->tmp, sizeof h->tmp, "%s/test_task.XXXXXX", base);
    assert_non_null(mkdtemp(h->tmp));
    pthread_mutex_init(&h->st.mu, NULL);
    pthread_cond_init(&h->st.cv, NULL);
    pthread_mutex_init(&h->col.mu, NULL);
}

static void harness_fini(harness_t *h) {
    for (int i = 0; i < h->st.n_tasks; i++)
        weir_task_destroy(&h->st.tasks[i]);
    for (uint32_t v = 0; v < h->n_vertices; v++) {
        free(h->placement[v]);
    }
    free(h->placement);
    for (int i = 0; i < 2; i++)
        weir_dataplane_destroy(&h->dp[i]);
    weir_rmtree(h->tmp);
}

/* Starts every subtask of the job built by @p build; subtask s runs on plane s % n_planes. */
static void start_job(harness_t *h, build_fn build, uint64_t n, int n_planes) {
    char err[512];
    weir_job_t *proto = build(&h->col, n);
    assert_int_equal(weir_graph_finalize(proto, err, sizeof err), 0);
    h->n_vertices = proto->n_vertices;
    h->placement = calloc(proto->n_vertices, sizeof *h->placement);
    for (uint32_t v = 0; v < proto->n_vertices; v++) {
        h->placement[v] = calloc(proto->vertices[v].parallelism, sizeof(char *));
        for (uint32_t s = 0; s < proto->vertices[v].parallelism; s++)
            h->placement[v][s] = (char *)weir_dataplane_address(h->dp[s % n_planes]);
    }
    for (uint32_t v = 0; v < proto->n_vertices; v++) {
        for (uint32_t s = 0; s < proto->vertices[v].parallelism; s++) {
            weir_job_t *g = build(&h->col, n); /* one graph per subtask, as define() does */
            assert_int_equal(weir_graph_finalize(g, err, sizeof err), 0);
            weir_task_spec_t spec = {0};
            memcpy(spec.job_id, JOB_ID, 33);
            spec.attempt = 1;
            spec.graph = g;
            spec.vertex = v;
            spec.subtask = s;
            spec.placement = h->placement;
            spec.dataplane = h->dp[s % n_planes];
            spec.work_dir = h->tmp;
            spec.buffer_size = 4096; /* small: many buffers, credits run out */
            spec.buffer_timeout_ns = 2000000;
            spec.credits_per_channel = 2;
            spec.state_cache_bytes = 1 << 20;
            spec.on_state = on_state;
            spec.cb_arg = &h->st;
            pthread_mutex_lock(&h->st.mu);
            weir_task_t *t = weir_task_start(&spec, err, sizeof err);
            if (!t)
                fail_msg("weir_task_start: %s", err);
            assert_null(spec.graph);
            h->st.tasks[h->st.n_tasks++] = t;
            pthread_mutex_unlock(&h->st.mu);
        }
    }
    weir_graph_destroy(&proto);
}

/* Waits until every task reported a final state (or 60 s). */
static void wait_final(harness_t *h) {
    int64_t deadline = weir_now_ns() + 60LL * 1000000000LL;
    pthread_mutex_lock(&h->st.mu);
    while (h->st.n_final < h->st.n_tasks && weir_now_ns() < deadline) {
        pthread_mutex_unlock(&h->st.mu);
        weir_sleep_ns(5000000);
        pthread_mutex_lock(&h->st.mu);
    }
    int nf = h->st.n_final, nt = h->st.n_tasks;
    pthread_mutex_unlock(&h->st.mu);
    assert_int_equal(nf, nt);
}

/* ---- jobs --------------------------------------------------------------------------------- */

/* generator(p2) -> map x2 (chained) -> rebalance -> filter !%3 (p3) -> sink (chained) */
static weir_job_t *build_stateless(collected_t *c, uint64_t n) {
    weir_job_t *job = weir_graph_new("stateless", 2);
    weir_stream_t *s = weir_source_generator(job, "gen", n, 0, gen_fn, NULL);
    s = weir_map(s, "double", double_fn, NULL);
    s = weir_rebalance(s);
    s = weir_filter(s, "not3", not_multiple_of_3, NULL);
    weir_set_parallelism(s, 3);
    s = weir_sink(s, "collect", collect_fn, c);
    weir_set_parallelism(s, 3);
    return job;
}

/* generator(p2) -> key_by(mod7 selector) -> reduce sum (p3) -> rebalance -> sink (p1) */
static weir_job_t *build_reduce(collected_t *c, uint64_t n) {
    weir_job_t *job = weir_graph_new("reduce", 2);
    weir_stream_t *s = weir_source_generator(job, "gen", n, 0, gen_fn, NULL);
    s = weir_key_by(s, mod7_key, NULL);
    s = weir_reduce(s, "sum", sum_reduce, NULL);
    weir_set_uid(s, "sum-uid");
    weir_set_parallelism(s, 3);
    s = weir_rebalance(s);
    s = weir_sink(s, "collect", keyed_collect_fn, c);
    weir_set_parallelism(s, 1);
    return job;
}

/* generator(p2) -> key_by(mod7) -> process counting with value state (p2) -> sink (p1) */
static weir_job_t *build_process(collected_t *c, uint64_t n) {
    weir_job_t *job = weir_graph_new("process", 2);
    weir_stream_t *s = weir_source_generator(job, "gen", n, 0, gen_fn, NULL);
    s = weir_key_by(s, mod7_key, NULL);
    weir_state_id *st = weir_job_alloc(job, sizeof *st);
    s = weir_process(s, "count", count_process, st);
    weir_set_uid(s, "count-uid");
    *st = weir_value_state(s, "n");
    s = weir_rebalance(s);
    s = weir_sink(s, "collect", keyed_collect_fn, c);
    weir_set_parallelism(s, 1);
    return job;
}

static weir_job_t *build_failing(collected_t *c, uint64_t n) {
    weir_job_t *job = weir_graph_new("failing", 1);
    weir_stream_t *s = weir_source_generator(job, "gen", n, 0, gen_fn, NULL);
    s = weir_rebalance(s);
    s = weir_map(s, "explode", failing_map, NULL);
    s = weir_sink(s, "collect", collect_fn, c);
    return job;
}

/* unbounded, rate-limited: only cancel ends it */
static weir_job_t *build_unbounded(collected_t *c, uint64_t n) {
    (void)n;
    weir_job_t *job = weir_graph_new("unbounded", 2);
    weir_stream_t *s = weir_source_generator(job, "gen", 0, 2000, gen_fn, NULL);
    s = weir_rebalance(s);
    s = weir_sink(s, "collect", collect_fn, c);
    return job;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void check_all(harness_t *h, weir_task_state_t want) {
    for (int i = 0; i < h->st.n_tasks; i++) {
        if (h->st.final[i] != want)
            fail_msg("task %d ended %s (%s), expected %s", i, weir_task_state_name(h->st.final[i]),
                     h->st.message[i], weir_task_state_name(want));
    }
}

static void run_stateless(int planes) {
    harness_t h;
    harness_init(&h, planes);
    const uint64_t n = 20000;
    start_job(&h, build_stateless, n, planes);
    wait_final(&h);
    check_all(&h, WEIR_TASK_FINISHED);
    /* oracle: brute force over the indices */
    uint64_t want_count = 0, want_sum = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t v = 2 * i;
        if (v % 3 != 0) {
            want_count++;
            want_sum += v;
        }
    }
    assert_int_equal(h.col.count, want_count);
    assert_int_equal(h.col.sum, want_sum);
    /* records_out of the source tasks add up to n (every record crossed the rebalance) */
    uint64_t out = 0, in = 0, remote = 0;
    for (int i = 0; i < h.st.n_tasks; i++) {
        weir_task_metrics_t m;
        weir_task_get_metrics(h.st.tasks[i], &m);
        if (weir_task_vertex(h.st.tasks[i]) == 0)
            out += m.records_out;
        else
            in += m.records_in;
        remote += m.buffers_out_remote;
    }
    assert_int_equal(out, n);
    assert_int_equal(in, n);
    if (planes == 2)
        assert_true(remote > 0);
    else
        assert_int_equal(remote, 0);
    harness_fini(&h);
}

static void test_stateless_local(void **state) {
    (void)state;
    run_stateless(1);
}

static void test_stateless_two_planes(void **state) {
    (void)state;
    run_stateless(2);
}

static void test_keyed_reduce(void **state) {
    (void)state;
    harness_t h;
    harness_init(&h, 2);
    const uint64_t n = 7000;
    start_job(&h, build_reduce, n, 2);
    wait_final(&h);
    check_all(&h, WEIR_TASK_FINISHED);
    uint64_t want_sum[7] = {0}, want_count[7] = {0};
    for (uint64_t i = 0; i < n; i++) {
        want_sum[i % 7] += i;
        want_count[i % 7]++;
    }
    assert_false(h.col.key_mismatch);
    assert_int_equal(h.col.count, n);
    for (int k = 0; k < 7; k++) {
        assert_int_equal(h.col.keyed_last[k], want_sum[k]);
        assert_int_equal(h.col.keyed_count[k], want_count[k]);
    }
    harness_fini(&h);
}

static void test_keyed_process_value_state(void **state) {
    (void)state;
    harness_t h;
    harness_init(&h, 1);
    const uint64_t n = 5000;
    start_job(&h, build_process, n, 1);
    wait_final(&h);
    check_all(&h, WEIR_TASK_FINISHED);
    assert_false(h.col.key_mismatch);
    assert_int_equal(h.col.count, n);
    for (int k = 0; k < 7; k++) {
        uint64_t want = n / 7 + ((uint64_t)k < n % 7 ? 1 : 0);
        assert_int_equal(h.col.keyed_last[k], want); /* final count per key */
    }
    harness_fini(&h);
}

static void test_user_failure(void **state) {
    (void)state;
    harness_t h;
    harness_init(&h, 1);
    start_job(&h, build_failing, 0 /* unbounded: only the failure stops the map */, 1);
    /* the map task fails; the source keeps running until canceled */
    int64_t deadline = weir_now_ns() + 30LL * 1000000000LL;
    bool failed = false;
    while (!failed && weir_now_ns() < deadline) {
        pthread_mutex_lock(&h.st.mu);
        for (int i = 0; i < h.st.n_tasks; i++)
            if (h.st.final[i] == WEIR_TASK_FAILED && h.st.n_final > 0)
                failed = true;
        pthread_mutex_unlock(&h.st.mu);
        weir_sleep_ns(5000000);
    }
    assert_true(failed);
    for (int i = 0; i < h.st.n_tasks; i++)
        weir_task_cancel(h.st.tasks[i]);
    wait_final(&h);
    int n_failed = 0;
    for (int i = 0; i < h.st.n_tasks; i++) {
        if (h.st.final[i] == WEIR_TASK_FAILED) {
            n_failed++;
            assert_string_equal(h.st.message[i], "explode: boom at 100");
        } else {
            assert_int_equal(h.st.final[i], WEIR_TASK_CANCELED);
        }
    }
    assert_int_equal(n_failed, 1);
    /* records after the failing one never reached the sink */
    assert_true(h.col.count <= 100);
    harness_fini(&h);
}

static void test_cancel(void **state) {
    (void)state;
    harness_t h;
    harness_init(&h, 2);
    start_job(&h, build_unbounded, 0, 2);
    weir_sleep_ns(300000000);
    for (int i = 0; i < h.st.n_tasks; i++) {
        assert_int_equal(weir_task_state(h.st.tasks[i]), WEIR_TASK_RUNNING);
        weir_task_cancel(h.st.tasks[i]);
    }
    wait_final(&h);
    check_all(&h, WEIR_TASK_CANCELED);
    pthread_mutex_lock(&h.col.mu);
    uint64_t got = h.col.count;
    pthread_mutex_unlock(&h.col.mu);
    /* 2000 records/s for 0.3 s: some arrived (buffer timeout flushes), not absurdly many */
    assert_true(got > 0);
    assert_true(got < 5000);
    harness_fini(&h);
}

static void test_bad_spec(void **state) {
    (void)state;
    harness_t h;
    harness_init(&h, 1);
    collected_t c;
    memset(&c, 0, sizeof c);
    char err[256] = "";
    weir_job_t *g = build_stateless(&c, 10);
    assert_int_equal(weir_graph_finalize(g, err, sizeof err), 0);
    char *row[3] = {"tcp://x:1", "tcp://x:1", "tcp://x:1"};
    char **placement[2] = {row, row};
    weir_task_spec_t spec = {0};
    memcpy(spec.job_id, "not-hex-not-hex-not-hex-not-hex!", 33);
    spec.graph = g;
    spec.vertex = 0;
    spec.subtask = 0;
    spec.placement = placement;
    spec.dataplane = h.dp[0];
    spec.work_dir = h.tmp;
    assert_null(weir_task_start(&spec, err, sizeof err));
    assert_non_null(strstr(err, "job id"));
    assert_null(spec.graph); /* consumed */
    harness_fini(&h);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stateless_local), cmocka_unit_test(test_stateless_two_planes),
        cmocka_unit_test(test_keyed_reduce),    cmocka_unit_test(test_keyed_process_value_state),
        cmocka_unit_test(test_user_failure),    cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_bad_spec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
