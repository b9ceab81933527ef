/* Tests of the window operator's state access (runtime/task/window.c "the key's window index"):
 * the operator runs on a real state backend and timer store, driven record by record and
 * watermark by watermark through its node's functions (no task, no network), and the map-state
 * calls it makes are counted through the linker's --wrap (tests/CMakeLists.txt). Checked: session
 * and tumbling aggregates and a co-group of small windows make no map-state call at all (their
 * windows live in the key's index, a cached value state), a process window on a hot key keeps
 * its index small by moving records to the map (at most one put, one get and one remove per
 * record, no iteration), and every result equals a brute-force model written here (sessions
 * merged with the gap, per-window counts, each side in arrival order). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/graph/graph.h"
#include "runtime/task/task_int.h"
#include "state/state.h"
#include "state/timers.h"
#include "testutil.h"

/* ---- map-state calls of window.c (counted) ---- */

static uint64_t n_put, n_get, n_remove, n_foreach, n_timer;
int __real_weir_timer_register_event_time(weir_ctx_t *ctx, int64_t timestamp);
int __wrap_weir_timer_register_event_time(weir_ctx_t *ctx, int64_t timestamp) {
    n_timer++;
    return __real_weir_timer_register_event_time(ctx, timestamp);
}
int __real_weir_mapstate_put(weir_ctx_t *ctx, weir_state_id st, const void *ukey, uint32_t ukey_len,
                             const void *val, uint32_t len);
int __wrap_weir_mapstate_put(weir_ctx_t *ctx, weir_state_id st, const void *ukey, uint32_t ukey_len,
                             const void *val, uint32_t len) {
    n_put++;
    return __real_weir_mapstate_put(ctx, st, ukey, ukey_len, val, len);
}
int __real_weir_mapstate_get(weir_ctx_t *ctx, weir_state_id st, const void *ukey, uint32_t ukey_len,
                             const void **val, uint32_t *len);
int __wrap_weir_mapstate_get(weir_ctx_t *ctx, weir_state_id st, const void *ukey, uint32_t ukey_len,
                             const void **val, uint32_t *len) {
    n_get++;
    return __real_weir_mapstate_get(ctx, st, ukey, ukey_len, val, len);
}
int __real_weir_mapstate_remove(weir_ctx_t *ctx, weir_state_id st, const void *ukey,
                                uint32_t ukey_len);
int __wrap_weir_mapstate_remove(weir_ctx_t *ctx, weir_state_id st, const void *ukey,
                                uint32_t ukey_len) {
    n_remove++;
    return __real_weir_mapstate_remove(ctx, st, ukey, ukey_len);
}
typedef int (*foreach_fn)(const void *, uint32_t, const void *, uint32_t, void *);
int __real_weir_mapstate_foreach(weir_ctx_t *ctx, weir_state_id st, foreach_fn fn, void *arg);
int __wrap_weir_mapstate_foreach(weir_ctx_t *ctx, weir_state_id st, foreach_fn fn, void *arg) {
    n_foreach++;
    return __real_weir_mapstate_foreach(ctx, st, fn, arg);
}

/* ---- a window operator on its own ---- */

typedef struct wop {
    weir_job_t *job;
    const weir_node_t *node;
    weir_task_t *task;
    weir_operator_t op;
    weir_ctx_t ctx;
    char *dir;
} wop_t;

/* Opens the state and timers of the node of @p s (the operator under test). */
static void wop_open(wop_t *h, weir_job_t *job, weir_stream_t *s) {
    assert_non_null(s);
    memset(h, 0, sizeof *h);
    h->job = job;
    h->node = &job->nodes[s->node];
    h->dir = weir_test_tmpdir("test_window_state");
    weir_state_opts_t o = {.path = h->dir, .max_parallelism = 128, .ttl_cleanup_ms = -1};
    char err[256];
    weir_state_backend_t *sb =
        weir_state_open(&o, h->node->states, h->node->n_states, err, sizeof err);
    assert_non_null(sb);
    h->task = calloc(1, sizeof *h->task);
    h->task->wm = INT64_MIN;
    h->task->ctxs = &h->ctx;
    h->task->n_ops = 1;
    h->op.node = h->node;
    h->op.parallelism = 1;
    h->ctx.task = h->task;
    h->ctx.op = &h->op;
    h->ctx.keyed = true;
    h->ctx.sb = sb;
    h->ctx.n_states = h->node->n_states;
    uint32_t tst = 0;
    while (tst < h->node->n_states && strcmp(h->node->states[tst].name, WEIR_TIMERS_STATE) != 0)
        tst++;
    assert_true(tst < h->node->n_states);
    h->ctx.timers = weir_timers_open(sb, tst, err, sizeof err);
    assert_non_null(h->ctx.timers);
    n_put = n_get = n_remove = n_foreach = n_timer = 0;
}

static void wop_close(wop_t *h) {
    weir_timers_free(&h->ctx.timers);
    weir_state_close(&h->ctx.sb, true);
    weir_test_tmpdir_remove(h->dir);
    free(h->task);
    weir_graph_destroy(&h->job);
}

/* One record of key @p key (input @p input of a co-group) at @p ts with value @p v. */
static void wop_record(wop_t *h, int input, const char *key, int64_t ts, const void *v,
                       uint32_t vlen) {
    weir_record_t r = {ts, key, (uint32_t)strlen(key), v, vlen};
    h->ctx.key = r.key;
    h->ctx.key_len = r.key_len;
    weir_state_set_key(h->ctx.sb, r.key, r.key_len);
    weir_process_fn fn = input ? (weir_process_fn)h->node->fn2 : (weir_process_fn)h->node->fn;
    fn(&h->ctx, &r, h->node->udata);
    h->ctx.key = NULL;
    assert_false(h->task->failed);
}

static void wop_watermark(wop_t *h, int64_t wm) {
    h->task->wm = wm;
    weir__task_timers_event(h->task, wm);
    assert_false(h->task->failed);
}

static weir_stream_t *source(weir_job_t *job, const char *name) {
    weir_datagen_opts_t o = {.kind = WEIR_DATAGEN_SEQUENCE, .count = 1};
    return weir_key_by(weir_source_datagen(job, name, &o), NULL, NULL);
}

/* ---- results ---- */

#define MAX_OUT 4096

typedef struct wout {
    char key[8];
    int64_t start, end, count, left, right;
} wout_t;

typedef struct wlog {
    wout_t v[MAX_OUT];
    size_t n;
    bool disorder; /* a side's records out of arrival order, or a record outside its window */
} wlog_t;

static wout_t *log_add(weir_ctx_t *ctx, wlog_t *l, const weir_window_t *w) {
    assert_true(l->n < MAX_OUT);
    wout_t *o = &l->v[l->n++];
    uint32_t kl;
    const void *k = weir_current_key(ctx, &kl);
    memset(o, 0, sizeof *o);
    memcpy(o->key, k, kl < sizeof o->key ? kl : sizeof o->key - 1);
    o->start = w->start;
    o->end = w->end;
    return o;
}

static void count_create(msgpack_packer *acc, void *udata) {
    (void)udata;
    msgpack_pack_int64(acc, 0);
}
static void count_add(const msgpack_object *acc, const weir_record_t *in, msgpack_packer *out,
                      void *udata) {
    (void)in, (void)udata;
    msgpack_pack_int64(out, acc->via.i64 + 1);
}
static void count_merge(const msgpack_object *a, const msgpack_object *b, msgpack_packer *out,
                        void *udata) {
    (void)udata;
    msgpack_pack_int64(out, a->via.i64 + b->via.i64);
}
static void count_result(weir_ctx_t *ctx, const weir_window_t *w, const msgpack_object *acc,
                         void *udata) {
    log_add(ctx, udata, w)->count = acc->via.i64;
}

/* Records' values are their arrival index (8 bytes) ++ padding: each side must come in order. */
static bool in_order(const weir_window_t *w, const weir_record_t *r, size_t n) {
    uint64_t prev = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t v;
        if (r[i].value_len < 8 || r[i].timestamp < w->start || r[i].timestamp >= w->end)
            return false;
        memcpy(&v, r[i].value, 8);
        if (i && v <= prev)
            return false;
        prev = v;
    }
    return true;
}

static void cogroup_fn(weir_ctx_t *ctx, const weir_window_t *w, const weir_record_t *left,
                       size_t nl, const weir_record_t *right, size_t nr, void *udata) {
    wlog_t *l = udata;
    wout_t *o = log_add(ctx, l, w);
    o->left = (int64_t)nl;
    o->right = (int64_t)nr;
    o->count = (int64_t)(nl + nr);
    if (!in_order(w, left, nl) || !in_order(w, right, nr))
        l->disorder = true;
}

static void process_fn(weir_ctx_t *ctx, const weir_window_t *w, const weir_record_t *recs, size_t n,
                       void *udata) {
    wlog_t *l = udata;
    log_add(ctx, l, w)->count = (int64_t)n;
    if (!in_order(w, recs, n))
        l->disorder = true;
}

/* The logged window of @p key starting at @p start, NULL if none (each at most once). */
static const wout_t *find_out(const wlog_t *l, const char *key, int64_t start) {
    const wout_t *f = NULL;
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->v[i].key, key) && l->v[i].start == start) {
            assert_null(f);
            f = &l->v[i];
        }
    return f;
}

/* ---- the record stream: keys k0..k4, 50 ms apart and a 400 ms pause every 37 records, out of
 * order by at most 120 ms (< BOUND: no record is late) ---- */

#define N_REC 2000
#define N_KEYS 5
#define BOUND 200

static int64_t rec_ts(int i) {
    /* bursts and pauses per key so that sessions (gap 300 ms) both merge and end */
    return 1000 + (int64_t)i * 50 + (int64_t)(i / 37) * 400 - (int64_t)((i * 7919) % 4) * 40;
}

static void rec_key(int i, char out[8]) {
    snprintf(out, 8, "k%d", (i * 31 + i / 7) % N_KEYS);
}

/* Feeds the stream with a watermark of max ts - BOUND after every record, then the end. */
static void feed(wop_t *h, bool two_inputs) {
    int64_t max = INT64_MIN;
    for (int i = 0; i < N_REC; i++) {
        char key[8], val[8];
        rec_key(i, key);
        uint64_t seq = (uint64_t)i + 1;
        memcpy(val, &seq, 8);
        int64_t ts = rec_ts(i);
        wop_record(h, two_inputs ? i % 3 == 0 : 0, key, ts, val, 8);
        max = ts > max ? ts : max;
        wop_watermark(h, max - BOUND);
    }
    wop_watermark(h, INT64_MAX);
}

/* Session windows, gap 300 ms, counting: the model merges each key's sorted timestamps; fewer
 * timer registrations than records. */
static void test_session_aggregate(void **state) {
    (void)state;
    static wlog_t l;
    memset(&l, 0, sizeof l);
    weir_job_t *job = weir_graph_new("w", 1);
    static const weir_aggregate_fns_t fns = {count_create, count_add, count_merge, count_result};
    weir_window_spec_t spec = {.kind = WEIR_WINDOW_SESSION, .gap_ms = 300};
    wop_t h;
    wop_open(&h, job, weir_window_aggregate(source(job, "s"), "win", &spec, &fns, &l));
    feed(&h, false);
    size_t expect = 0;
    for (int k = 0; k < N_KEYS; k++) {
        int64_t ts[N_REC];
        int n = 0;
        char key[8], want[8];
        snprintf(want, sizeof want, "k%d", k);
        for (int i = 0; i < N_REC; i++) {
            rec_key(i, key);
            if (!strcmp(key, want))
                ts[n++] = rec_ts(i);
        }
        for (int i = 1; i < n; i++) /* insertion sort: small n */
            for (int j = i; j > 0 && ts[j - 1] > ts[j]; j--) {
                int64_t t = ts[j];
                ts[j] = ts[j - 1];
                ts[j - 1] = t;
            }
        for (int i = 0; i < n;) {
            int j = i + 1;
            while (j < n && ts[j] <= ts[j - 1] + 300) /* touching sessions merge */
                j++;
            const wout_t *o = find_out(&l, want, ts[i]);
            assert_non_null(o);
            assert_int_equal(o->end, ts[j - 1] + 300);
            assert_int_equal(o->count, j - i);
            expect++;
            i = j;
        }
    }
    assert_int_equal(l.n, expect);
    print_message("sessions: %zu windows; map calls: put %llu get %llu remove %llu foreach %llu; "
                  "timer registrations %llu\n",
                  l.n, (unsigned long long)n_put, (unsigned long long)n_get,
                  (unsigned long long)n_remove, (unsigned long long)n_foreach,
                  (unsigned long long)n_timer);
    /* the key's sessions are its index: no map-state call, no iteration per record */
    assert_int_equal(n_put + n_get + n_remove + n_foreach, 0);
    /* a session's fire timer follows its end lazily (moved on when it fires before the end),
     * and the cleanup timer is registered when the session fires: fewer than one registration
     * per record (two per record before: fire and cleanup at every extension) */
    assert_true(n_timer < N_REC);
    wop_close(&h);
}

/* A co-group of tumbling 500 ms windows (one record in three on the right): per key and window
 * the counts of both sides, each side in arrival order; all kept inline in the index. */
static void test_cogroup_inline(void **state) {
    (void)state;
    static wlog_t l;
    memset(&l, 0, sizeof l);
    weir_job_t *job = weir_graph_new("w", 1);
    weir_window_spec_t spec = {.kind = WEIR_WINDOW_TUMBLING, .size_ms = 500};
    wop_t h;
    wop_open(&h, job,
             weir_window_cogroup(source(job, "a"), source(job, "b"), "co", &spec, cogroup_fn, &l));
    feed(&h, true);
    assert_false(l.disorder);
    size_t expect = 0;
    for (int k = 0; k < N_KEYS; k++)
        for (int64_t st = 0; st < rec_ts(N_REC - 1) + 1000; st += 500) {
            char want[8], key[8];
            snprintf(want, sizeof want, "k%d", k);
            int64_t left = 0, right = 0;
            for (int i = 0; i < N_REC; i++) {
                rec_key(i, key);
                if (!strcmp(key, want) && rec_ts(i) >= st && rec_ts(i) < st + 500)
                    *(i % 3 == 0 ? &right : &left) += 1;
            }
            const wout_t *o = find_out(&l, want, st);
            if (!left && !right) {
                assert_null(o);
                continue;
            }
            assert_non_null(o);
            assert_int_equal(o->left, left);
            assert_int_equal(o->right, right);
            expect++;
        }
    assert_int_equal(l.n, expect);
    print_message("cogroup: %zu windows; map calls: put %llu get %llu remove %llu foreach %llu\n",
                  l.n, (unsigned long long)n_put, (unsigned long long)n_get,
                  (unsigned long long)n_remove, (unsigned long long)n_foreach);
    assert_int_equal(n_put + n_get + n_remove + n_foreach, 0);
    wop_close(&h);
}

/* weir_window_process on one hot key: 3000 records of 200 bytes, tumbling 10 s windows of 1000
 * records each; beyond the index's inline budget records go to the map: at most one put, one
 * get (at the firing) and one remove (at the cleanup) per record, never an iteration. */
static void test_process_hot_key(void **state) {
    (void)state;
    static wlog_t l;
    memset(&l, 0, sizeof l);
    weir_job_t *job = weir_graph_new("w", 1);
    weir_window_spec_t spec = {.kind = WEIR_WINDOW_TUMBLING, .size_ms = 10000};
    wop_t h;
    wop_open(&h, job, weir_window_process(source(job, "s"), "win", &spec, process_fn, &l));
    const int n = 3000;
    for (int i = 0; i < n; i++) {
        char val[200] = {0};
        uint64_t seq = (uint64_t)i + 1;
        memcpy(val, &seq, 8);
        wop_record(&h, 0, "hot", (int64_t)i * 10, val, sizeof val);
        if (i % 100 == 99)
            wop_watermark(&h, (int64_t)i * 10 - 50);
    }
    wop_watermark(&h, INT64_MAX);
    assert_false(l.disorder);
    assert_int_equal(l.n, 3);
    for (int64_t st = 0; st < 30000; st += 10000) {
        const wout_t *o = find_out(&l, "hot", st);
        assert_non_null(o);
        assert_int_equal(o->count, 1000);
    }
    print_message("hot key: map calls: put %llu get %llu remove %llu foreach %llu\n",
                  (unsigned long long)n_put, (unsigned long long)n_get,
                  (unsigned long long)n_remove, (unsigned long long)n_foreach);
    assert_true(n_put > 0 && n_put < (uint64_t)n); /* some inline, the rest in the map */
    assert_int_equal(n_get, n_put);
    assert_int_equal(n_remove, n_put);
    assert_int_equal(n_foreach, 0);
    wop_close(&h);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_session_aggregate),
        cmocka_unit_test(test_cogroup_inline),
        cmocka_unit_test(test_process_hot_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
