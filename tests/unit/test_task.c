/* Unit tests of the subtask runtime (runtime/task/): whole jobs run
 * in-process as tasks on one or two data planes (two planes exercise remote channels over
 * loopback), with a custom sink collecting the output, checked against independent
 * computations of the expected result.
 *
 * Checkpoint tests play the task manager and the coordinator: they trigger sources through the
 * task API, record the ACKs the tasks send (the send callback runs on the acking task's thread,
 * so it can read that task's exact counters at the moment of its snapshot) and notify. To restore
 * they play the savepoint module too: DEPLOY's operator-state bundle and keyed restore document
 * (docs/checkpointing.md) are built from the ACKs of the checkpoint restored. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <jansson.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/proto.h"
#include "common/util.h"
#include "connectors/registry.h"
#include "runtime/dataplane/dataplane.h"
#include "runtime/graph/graph.h"
#include "runtime/graph/keygroup.h"
#include "runtime/task/task.h"
#include "testutil.h"
#include "../plugins/countsum_window.h"

#define JOB_ID "0123456789abcdef0123456789abcdef"
#define MAX_TASKS 16

/* ---- shared collector --------------------------------------------------------------------- */

typedef struct collected {
    pthread_mutex_t mu;
    uint64_t count;
    uint64_t sum;
    uint64_t min_par[2]; /* smallest value seen per parity (UINT64_MAX: none) */
    uint64_t keyed_min[16];
    uint64_t keyed_last[16]; /* per key: largest value seen (rolling sums only grow) */
    uint64_t keyed_count[16];
    bool key_mismatch;
    /* jobs with connectors (build_copy_lines) */
    const char *in_path; /* file source input */
    const char *out_dir; /* file sink output */
    double rate;         /* file source lines/s over all subtasks */
    /* build_gen_rescale */
    uint32_t gen_par; /* the generator's parallelism */
    uint8_t *seen;    /* per value below n: how often the sink saw it */
    uint64_t seen_n;
    struct lc_log *lc; /* the lifecycle tests' log (build_lifecycle) */
    /* build_watermarks: what the map subtasks saw (weir_current_watermark per record) */
    int64_t wm_idle_ms; /* the strategy's idle timeout */
    int64_t wm_last[4]; /* per map subtask: the last watermark seen */
    uint64_t wm_back;   /* records that saw a lower watermark than an earlier one */
    uint64_t wm_late;   /* records with timestamp <= the watermark */
    uint64_t wm_at_min; /* records that saw INT64_MIN */
    /* side outputs (build_side_*): the side sink's records, and the largest watermark each sink
     * saw with a record (INT64_MIN: none) */
    uint64_t side_count, side_sum;
    int64_t side_wm_max, main_wm_max;
    struct tm_log *tm;   /* build_timers: the fired windows the sink saw */
    struct win_log *win; /* build_window: the window results the sink saw */
    /* two-input co-process (build_co_*): records per input, records of input 0 that saw
     * INT64_MIN, the largest timestamp input 1's source emitted (and whether it emitted its
     * last index), records of input 0 that saw a watermark above it while input 1 ran */
    uint64_t co_n[2], co_at_min[2];
    uint64_t co_b_count;  /* input 1's generator: indices (it ends after the last) */
    bool co_b_silent;     /* input 1's generator emits nothing */
    int64_t co_b_idle_ms; /* input 1's idle timeout */
    int64_t co_b_max;
    bool co_b_done;
    uint64_t co_checked, co_above;
    bool co_mod7; /* build_co_alignment: input 1 keyed by mod7_key, input 0 by the record key */
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

/* counts every value (build_gen_rescale) */
static void seen_fn(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    collected_t *c = udata;
    uint64_t v = value_of(ctx, in);
    pthread_mutex_lock(&c->mu);
    c->count++;
    if (v < c->seen_n && c->seen[v] < 255)
        c->seen[v]++;
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

/* counts, sums and keeps the smallest value per parity (= per generator subtask of p2) */
static void min_collect_fn(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    collected_t *c = udata;
    uint64_t v = value_of(ctx, in);
    pthread_mutex_lock(&c->mu);
    c->count++;
    c->sum += v;
    if (v < c->min_par[v % 2])
        c->min_par[v % 2] = v;
    pthread_mutex_unlock(&c->mu);
}

/* keyed counts: keeps the smallest count seen per key */
static void keyed_min_fn(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    collected_t *c = udata;
    uint64_t v = value_of(ctx, in);
    pthread_mutex_lock(&c->mu);
    c->count++;
    if (in->key_len == 2 && ((const char *)in->key)[0] == 'k') {
        int k = ((const char *)in->key)[1] - '0';
        if (k >= 0 && k < 7 && v < c->keyed_min[k])
            c->keyed_min[k] = v;
    } else {
        c->key_mismatch = true;
    }
    pthread_mutex_unlock(&c->mu);
}

static void failing_map(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    (void)udata;
    if (value_of(ctx, in) == 100)
        weir_fail(ctx, "boom at %d", 100);
    weir_emit(ctx, in);
}

/* ---- harness ------------------------------------------------------------------------------ */

typedef weir_job_t *(*build_fn)(collected_t *c, uint64_t n);

#define MAX_ACKS 256

typedef struct ack {
    uint32_t vertex, subtask;
    uint64_t id;
    bool final;
    bool decline;
    uint8_t *op_state;
    size_t op_len;
    char *handle;
    uint64_t alignment_ns;
    uint64_t records_out; /* the acking task's records_out at the ACK (sources) */
    uint64_t col_count;   /* the collector's count at the ACK */
    uint64_t col_right;   /* build_co_alignment: records of input 1 the co-process saw */
} ack_t;

typedef struct harness {
    weir_dataplane_t *dp[2];
    char *tmp;
    states_t st;
    collected_t col;
    char ***placement;
    uint32_t n_vertices;
    /* checkpointing */
    weir_checkpoint_mode_t ck_mode;
    const char *ck_dir;
    uint32_t attempt;
    uint64_t restore_id;
    const ack_t *restore_from; /* ACKs of restore_id to take op state and handles from */
    int n_restore_from;
    uint32_t restore_old_par[4];   /* per vertex: its parallelism in restore_from (0: the same) */
    bool restore_raw;              /* pass the ACKs' op state as the bundle, unchanged */
    const char *restore_savepoint; /* restore_id is a savepoint in this directory (no claim) */
    pthread_mutex_t ack_mu;
    ack_t acks[MAX_ACKS];
    int n_acks;
} harness_t;

static void test_send(void *arg, const weir_msg_t *msg) {
    harness_t *h = arg;
    ack_t a;
    memset(&a, 0, sizeof a);
    a.vertex = msg->vertex;
    a.subtask = msg->subtask;
    a.id = msg->checkpoint_id;
    a.final = msg->final;
    a.decline = msg->type == WEIR_MSG_DECLINE_CHECKPOINT;
    if (a.decline)
        fprintf(stderr, "decline %u.%u of %llu: %s\n", a.vertex, a.subtask,
                (unsigned long long)a.id, msg->error ? msg->error : "");
    if (msg->op_state_len) {
        a.op_state = malloc(msg->op_state_len);
        memcpy(a.op_state, msg->op_state, msg->op_state_len);
        a.op_len = msg->op_state_len;
    }
    a.handle = msg->keyed_handle ? strdup(msg->keyed_handle) : NULL;
    a.alignment_ns = msg->alignment_ns;
    pthread_mutex_lock(&h->st.mu);
    for (int i = 0; i < h->st.n_tasks; i++) {
        if (weir_task_vertex(h->st.tasks[i]) == a.vertex &&
            weir_task_subtask(h->st.tasks[i]) == a.subtask) {
            weir_task_metrics_t m;
            weir_task_get_metrics(h->st.tasks[i], &m);
            a.records_out = m.records_out;
        }
    }
    pthread_mutex_unlock(&h->st.mu);
    pthread_mutex_lock(&h->col.mu);
    a.col_count = h->col.count;
    a.col_right = h->col.co_n[1];
    pthread_mutex_unlock(&h->col.mu);
    pthread_mutex_lock(&h->ack_mu);
    if (h->n_acks < MAX_ACKS)
        h->acks[h->n_acks++] = a;
    else {
        free(a.op_state);
        free(a.handle);
    }
    pthread_mutex_unlock(&h->ack_mu);
}

static const ack_t *find_ack(const ack_t *acks, int n, uint32_t v, uint32_t s, uint64_t id,
                             bool final) {
    for (int i = 0; i < n; i++)
        if (acks[i].vertex == v && acks[i].subtask == s && acks[i].id == id &&
            acks[i].final == final && !acks[i].decline)
            return &acks[i];
    return NULL;
}

typedef struct ack_wait {
    harness_t *h;
    uint64_t id;
    bool final;
    int n;   /* wanted */
    int got; /* at the last look */
} ack_wait_t;

static bool enough_acks(void *arg) {
    ack_wait_t *w = arg;
    harness_t *h = w->h;
    pthread_mutex_lock(&h->ack_mu);
    w->got = 0;
    for (int i = 0; i < h->n_acks; i++)
        if (h->acks[i].id == w->id && h->acks[i].final == w->final && !h->acks[i].decline)
            w->got++;
    pthread_mutex_unlock(&h->ack_mu);
    return w->got >= w->n;
}

/* Waits (10 s at most) until @p n ACKs (not declines) of checkpoint @p id arrived. */
static int wait_acks(harness_t *h, uint64_t id, bool final, int n) {
    ack_wait_t w = {.h = h, .id = id, .final = final, .n = n};
    weir_test_wait_until(enough_acks, &w, 10000, 2);
    return w.got;
}

static bool all_running(void *arg) {
    harness_t *h = arg;
    pthread_mutex_lock(&h->st.mu);
    bool ok = h->st.n_running >= h->st.n_tasks;
    pthread_mutex_unlock(&h->st.mu);
    return ok;
}

static void wait_running(harness_t *h) {
    assert_true(weir_test_wait_until(all_running, h, 10000, 2));
}

static void harness_init(harness_t *h, int n_planes) {
    memset(h, 0, sizeof *h);
    char err[256];
    for (int i = 0; i < n_planes; i++) {
        h->dp[i] = weir_dataplane_new("127.0.0.1", 0, "127.0.0.1", err, sizeof err);
        assert_non_null(h->dp[i]);
    }
    h->tmp = weir_test_tmpdir("test_task");
    pthread_mutex_init(&h->st.mu, NULL);
    pthread_cond_init(&h->st.cv, NULL);
    pthread_mutex_init(&h->col.mu, NULL);
    pthread_mutex_init(&h->ack_mu, NULL);
    h->attempt = 1;
    h->col.min_par[0] = h->col.min_par[1] = UINT64_MAX;
    for (int k = 0; k < 16; k++)
        h->col.keyed_min[k] = UINT64_MAX;
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
    for (int i = 0; i < h->n_acks; i++) {
        free(h->acks[i].op_state);
        free(h->acks[i].handle);
    }
    weir_test_tmpdir_remove(h->tmp);
}

/* The operator-state bundle (the DEPLOY field restore_op_state; CONTRACT9 section 3) that
 * restores a subtask of parallelism @p par from its own ACKed op state @p op (one element per
 * chain operator): each element becomes [par, [[subtask, element]]], nil stays nil. Malloc'd
 * into *out; anything but an array is passed as it is. */
static void own_bundle(const uint8_t *op, size_t len, uint32_t par, uint32_t subtask, uint8_t **out,
                       size_t *out_len) {
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (msgpack_unpack_next(&u, (const char *)op, len, &off) == MSGPACK_UNPACK_SUCCESS &&
        u.data.type == MSGPACK_OBJECT_ARRAY) {
        msgpack_pack_array(&pk, u.data.via.array.size);
        for (uint32_t i = 0; i < u.data.via.array.size; i++) {
            if (u.data.via.array.ptr[i].type == MSGPACK_OBJECT_NIL) {
                msgpack_pack_nil(&pk);
                continue;
            }
            msgpack_pack_array(&pk, 2);
            msgpack_pack_uint32(&pk, par);
            msgpack_pack_array(&pk, 1);
            msgpack_pack_array(&pk, 2);
            msgpack_pack_uint32(&pk, subtask);
            msgpack_pack_object(&pk, u.data.via.array.ptr[i]);
        }
    } else {
        msgpack_sbuffer_write(&sb, (const char *)op, len);
    }
    msgpack_unpacked_destroy(&u);
    *out_len = sb.size;
    *out = (uint8_t *)msgpack_sbuffer_release(&sb);
    msgpack_sbuffer_destroy(&sb);
}

/* The bundle that restores a subtask of vertex @p v at another parallelism: for each chain
 * operator, [old_par, [[j, element of old subtask j], ...]] over every old subtask j whose
 * element is not nil (nil when none has one). */
static void union_bundle(const ack_t *acks, int n, uint32_t v, uint64_t id, uint32_t old_par,
                         uint8_t **out, size_t *out_len) {
    msgpack_unpacked u[8];
    uint32_t n_ops = 0;
    assert_true(old_par <= 8);
    for (uint32_t j = 0; j < old_par; j++) {
        const ack_t *a = find_ack(acks, n, v, j, id, false);
        if (!a) /* a subtask that finished early: its final snapshot counts (as in the JM) */
            a = find_ack(acks, n, v, j, 0, true);
        assert_non_null(a);
        msgpack_unpacked_init(&u[j]);
        size_t off = 0;
        assert_int_equal(msgpack_unpack_next(&u[j], (const char *)a->op_state, a->op_len, &off),
                         MSGPACK_UNPACK_SUCCESS);
        assert_int_equal(u[j].data.type, MSGPACK_OBJECT_ARRAY);
        n_ops = u[j].data.via.array.size;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, n_ops);
    for (uint32_t i = 0; i < n_ops; i++) {
        uint32_t k = 0;
        for (uint32_t j = 0; j < old_par; j++)
            k += u[j].data.via.array.ptr[i].type != MSGPACK_OBJECT_NIL;
        if (k == 0) {
            msgpack_pack_nil(&pk);
            continue;
        }
        msgpack_pack_array(&pk, 2);
        msgpack_pack_uint32(&pk, old_par);
        msgpack_pack_array(&pk, k);
        for (uint32_t j = 0; j < old_par; j++) {
            if (u[j].data.via.array.ptr[i].type == MSGPACK_OBJECT_NIL)
                continue;
            msgpack_pack_array(&pk, 2);
            msgpack_pack_uint32(&pk, j);
            msgpack_pack_object(&pk, u[j].data.via.array.ptr[i]);
        }
    }
    for (uint32_t j = 0; j < old_par; j++)
        msgpack_unpacked_destroy(&u[j]);
    *out_len = sb.size;
    *out = (uint8_t *)msgpack_sbuffer_release(&sb);
    msgpack_sbuffer_destroy(&sb);
}

/* DEPLOY's keyed restore document (CONTRACT section 4) for subtask @p s of a vertex of
 * parallelism @p p restored at the same parallelism from its own handle: from the job's own
 * checkpoint @p id in @p ck_dir (base <ck_dir>/chk-<id>, claimed), or from the savepoint in
 * directory @p savepoint (its own base, not claimed). malloc'd. */
static char *make_keyed_doc(const char *ck_dir, const char *savepoint, uint64_t id,
                            const char *handle, uint32_t maxp, uint32_t p, uint32_t s) {
    uint32_t first, last;
    weir_keygroup_range(s, p, maxp, &first, &last);
    char base[4096];
    if (savepoint)
        snprintf(base, sizeof base, "%s", savepoint);
    else
        snprintf(base, sizeof base, "%s/chk-%llu", ck_dir, (unsigned long long)id);
    size_t cap = strlen(base) + strlen(handle) + 256;
    char *doc = malloc(cap);
    snprintf(doc, cap,
             "{\"base\":\"%s\",\"claim\":%s,\"max_parallelism\":%u,"
             "\"range\":[%u,%u],\"sources\":[{\"range\":[%u,%u],\"handle\":%s}]}",
             base, savepoint ? "false" : "true", maxp, first, last, first, last, handle);
    return doc;
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
            spec.attempt = h->attempt;
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
            spec.checkpoint_mode = h->ck_mode;
            spec.checkpoint_dir = h->ck_dir;
            spec.send = test_send;
            spec.send_arg = h;
            spec.create_connector = weir_connector_create;
            spec.incremental = true;
            spec.restore_checkpoint_id = h->restore_id;
            char *doc = NULL;
            uint8_t *bundle = NULL;
            size_t bundle_len = 0;
            uint32_t old_par = v < 4 ? h->restore_old_par[v] : 0;
            if (h->restore_id && old_par && old_par != proto->vertices[v].parallelism) {
                union_bundle(h->restore_from, h->n_restore_from, v, h->restore_id, old_par, &bundle,
                             &bundle_len);
                spec.restore_op_state = bundle;
                spec.restore_op_state_len = bundle_len;
            } else if (h->restore_id) {
                const ack_t *a =
                    find_ack(h->restore_from, h->n_restore_from, v, s, h->restore_id, false);
                if (a && h->restore_raw) {
                    spec.restore_op_state = a->op_state;
                    spec.restore_op_state_len = a->op_len;
                } else if (a) {
                    own_bundle(a->op_state, a->op_len, proto->vertices[v].parallelism, s, &bundle,
                               &bundle_len);
                    spec.restore_op_state = bundle;
                    spec.restore_op_state_len = bundle_len;
                }
                if (a && a->handle) {
                    doc = make_keyed_doc(h->ck_dir, h->restore_savepoint, h->restore_id, a->handle,
                                         proto->max_parallelism, proto->vertices[v].parallelism, s);
                    spec.restore_keyed_handle = doc;
                }
            }
            pthread_mutex_lock(&h->st.mu);
            weir_task_t *t = weir_task_start(&spec, err, sizeof err);
            free(bundle);
            free(doc);
            if (!t)
                fail_msg("weir_task_start: %s", err);
            assert_null(spec.graph);
            h->st.tasks[h->st.n_tasks++] = t;
            pthread_mutex_unlock(&h->st.mu);
        }
    }
    weir_graph_destroy(&proto);
}

static bool all_final(void *arg) {
    harness_t *h = arg;
    pthread_mutex_lock(&h->st.mu);
    bool done = h->st.n_final >= h->st.n_tasks;
    pthread_mutex_unlock(&h->st.mu);
    return done;
}

/* Waits until every task reported a final state (or 60 s). */
static void wait_final(harness_t *h) {
    weir_test_wait_until(all_final, h, 60000, 5);
    pthread_mutex_lock(&h->st.mu);
    int nf = h->st.n_final, nt = h->st.n_tasks;
    pthread_mutex_unlock(&h->st.mu);
    assert_int_equal(nf, nt);
}

/* ---- watermarks (build_watermarks) -------------------------------------------------------- */

#define WM_STEP 10  /* ms of event time per index */
#define WM_BOUND 50 /* the strategy's out-of-orderness: above the jitter */

/* Timestamps out of order by up to 4 steps (40 ms < WM_BOUND); generator subtask 1 (odd
 * indices) emits nothing at all: its split is idle from the start. */
static void wm_gen_fn(weir_ctx_t *ctx, uint64_t index, void *udata) {
    (void)udata;
    if (index % 2)
        return;
    int64_t ts = 1000000 + (int64_t)index * WM_STEP - (int64_t)((index * 7919) % 5) * WM_STEP;
    msgpack_pack_uint64(weir_packer(ctx), index);
    weir_emit_packed(ctx, ts, NULL, 0);
}

static void wm_check_map(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    collected_t *c = udata;
    int64_t wm = weir_current_watermark(ctx);
    uint32_t s = weir_subtask_index(ctx);
    pthread_mutex_lock(&c->mu);
    if (wm < c->wm_last[s])
        c->wm_back++;
    c->wm_last[s] = wm;
    if (in->timestamp <= wm)
        c->wm_late++;
    if (wm == INT64_MIN)
        c->wm_at_min++;
    c->count++;
    pthread_mutex_unlock(&c->mu);
}

static void drop_fn(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    (void)ctx;
    (void)in;
    (void)udata;
}

/* generator(p2, strategy, 4000 indices/s) -> rebalance -> map checking watermarks (p3) -> sink */
static weir_job_t *build_watermarks(collected_t *c, uint64_t n) {
    weir_job_t *job = weir_graph_new("watermarks", 2);
    weir_stream_t *s =
        weir_set_uid(weir_source_generator(job, "gen", n, 4000, wm_gen_fn, NULL), "gen");
    weir_watermark_strategy_t st = {.max_out_of_orderness_ms = WM_BOUND,
                                    .idle_timeout_ms = c->wm_idle_ms};
    weir_set_watermark_strategy(s, &st);
    s = weir_map(weir_rebalance(s), "check", wm_check_map, c);
    weir_set_parallelism(s, 3);
    weir_set_parallelism(weir_sink(s, "drop", drop_fn, NULL), 3);
    return job;
}

/* ---- side outputs (build_side_*) ---------------------------------------------------------- */

/* Even values to the main output, odd ones to side output (intptr_t)udata. */
static void parity_split(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    uint64_t v = value_of(ctx, in);
    if (v % 2 == 0)
        weir_emit(ctx, in);
    else
        weir_emit_to(ctx, (int)(intptr_t)udata, in);
}

static void side_collect_fn(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    collected_t *c = udata;
    uint64_t v = value_of(ctx, in);
    int64_t wm = weir_current_watermark(ctx);
    pthread_mutex_lock(&c->mu);
    c->side_count++;
    c->side_sum += v;
    if (wm > c->side_wm_max)
        c->side_wm_max = wm;
    pthread_mutex_unlock(&c->mu);
}

static void main_collect_fn(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    collected_t *c = udata;
    int64_t wm = weir_current_watermark(ctx);
    collect_fn(ctx, in, udata);
    pthread_mutex_lock(&c->mu);
    if (wm > c->main_wm_max)
        c->main_wm_max = wm;
    pthread_mutex_unlock(&c->mu);
}

/* generator(p2, 3000 indices/s, watermarks) -> flat_map split -> side output's forward sink "odd"
 * (p2), one chain; the main output leaves the chain from the split: rebalance -> sink (p3) */
static weir_job_t *build_side_exchange(collected_t *c, uint64_t n) {
    weir_job_t *job = weir_graph_new("side", 2);
    weir_stream_t *s =
        weir_set_uid(weir_source_generator(job, "gen", n, 3000, gen_fn, NULL), "gen");
    weir_watermark_strategy_t st = {.max_out_of_orderness_ms = 0};
    weir_set_watermark_strategy(s, &st);
    weir_stream_t *split = weir_flat_map(s, "split", parity_split, (void *)(intptr_t)1);
    int odd = weir_side_output_tag(split, "odd");
    weir_set_parallelism(weir_sink(weir_rebalance(split), "even", main_collect_fn, c), 3);
    weir_sink(weir_side_output(split, odd), "odd", side_collect_fn, c);
    return job;
}

/* parity_split to tag 1, and every multiple of 3 also to tag 2 (declared, never consumed) */
static void split3(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    parity_split(ctx, in, udata);
    if (value_of(ctx, in) % 3 == 0)
        weir_emit_to(ctx, 2, in);
}

/* generator(p2) -> flat_map split3 -> main's forward sink "even", one chain; side output "odd"
 * leaves the chain from the split: rebalance -> sink (p3); side output "threes": no consumer */
static weir_job_t *build_side_chained(collected_t *c, uint64_t n) {
    weir_job_t *job = weir_graph_new("side", 2);
    weir_stream_t *s = weir_set_uid(weir_source_generator(job, "gen", n, 0, gen_fn, NULL), "gen");
    weir_stream_t *split = weir_flat_map(s, "split", split3, (void *)(intptr_t)1);
    int odd = weir_side_output_tag(split, "odd");
    weir_side_output_tag(split, "threes");
    weir_sink(split, "even", collect_fn, c);
    weir_set_parallelism(
        weir_sink(weir_rebalance(weir_side_output(split, odd)), "odd", side_collect_fn, c), 3);
    return job;
}

/* the split emits to tag 2, which it never declared */
static weir_job_t *build_side_undeclared(collected_t *c, uint64_t n) {
    weir_job_t *job = weir_graph_new("side", 1);
    weir_stream_t *s = weir_set_uid(weir_source_generator(job, "gen", n, 0, gen_fn, NULL), "gen");
    weir_stream_t *split = weir_flat_map(s, "split", parity_split, (void *)(intptr_t)2);
    int odd = weir_side_output_tag(split, "odd");
    weir_sink(weir_side_output(split, odd), "odd", side_collect_fn, c);
    weir_sink(weir_rebalance(split), "even", collect_fn, c);
    return job;
}

/* ---- jobs --------------------------------------------------------------------------------- */

/* generator(p2) -> map x2 (chained) -> rebalance -> filter !%3 (p3) -> sink (chained) */
static weir_job_t *build_stateless(collected_t *c, uint64_t n) {
    weir_job_t *job = weir_graph_new("stateless", 2);
    weir_stream_t *s = weir_set_uid(weir_source_generator(job, "gen", n, 0, gen_fn, NULL), "gen");
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
    weir_stream_t *s = weir_set_uid(weir_source_generator(job, "gen", n, 0, gen_fn, NULL), "gen");
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
    weir_stream_t *s = weir_set_uid(weir_source_generator(job, "gen", n, 0, gen_fn, NULL), "gen");
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

/* count_process taking 2 ms a record: with one subtask and 7 keys in turn, a key comes back
 * after >= 14 ms */
static void slow_count_process(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    weir_sleep_ns(2000000);
    count_process(ctx, in, udata);
}

/* build_process with the count in a value state of time to live 5 ms, process at p1 */
static weir_job_t *build_process_ttl(collected_t *c, uint64_t n) {
    weir_job_t *job = weir_graph_new("process-ttl", 2);
    weir_stream_t *s = weir_set_uid(weir_source_generator(job, "gen", n, 0, gen_fn, NULL), "gen");
    s = weir_key_by(s, mod7_key, NULL);
    weir_state_id *st = weir_job_alloc(job, sizeof *st);
    s = weir_process(s, "count", slow_count_process, st);
    weir_set_parallelism(weir_set_uid(s, "count-uid"), 1);
    *st = weir_value_state(s, "n");
    weir_state_set_ttl(s, *st, 5, WEIR_TTL_ON_CREATE_AND_WRITE);
    s = weir_rebalance(s);
    s = weir_sink(s, "collect", keyed_collect_fn, c);
    weir_set_parallelism(s, 1);
    return job;
}

static weir_job_t *build_failing(collected_t *c, uint64_t n) {
    weir_job_t *job = weir_graph_new("failing", 1);
    weir_stream_t *s = weir_set_uid(weir_source_generator(job, "gen", n, 0, gen_fn, NULL), "gen");
    s = weir_rebalance(s);
    s = weir_map(s, "explode", failing_map, NULL);
    s = weir_sink(s, "collect", collect_fn, c);
    return job;
}

/* unbounded, rate-limited: only cancel ends it */
static weir_job_t *build_unbounded(collected_t *c, uint64_t n) {
    (void)n;
    weir_job_t *job = weir_graph_new("unbounded", 2);
    weir_stream_t *s =
        weir_set_uid(weir_source_generator(job, "gen", 0, 2000, gen_fn, NULL), "gen");
    s = weir_rebalance(s);
    s = weir_sink(s, "collect", collect_fn, c);
    return job;
}

/* generator(p2, n; unbounded when n = 0) -> rebalance -> sink (p1): two input channels */
static weir_job_t *build_two_inputs(collected_t *c, uint64_t n) {
    weir_job_t *job = weir_graph_new("two-inputs", 2);
    weir_stream_t *s = weir_set_uid(weir_source_generator(job, "gen", n, 0, gen_fn, NULL), "gen");
    s = weir_rebalance(s);
    s = weir_sink(s, "collect", min_collect_fn, c);
    weir_set_parallelism(s, 1);
    return job;
}

/* generator(p2, unbounded) -> key_by(mod7) -> count with value state (p2) -> sink (p1) */
static weir_job_t *build_keyed_counts(collected_t *c, uint64_t n) {
    (void)n;
    weir_job_t *job = weir_graph_new("keyed-counts", 2);
    weir_stream_t *s =
        weir_set_uid(weir_source_generator(job, "gen", 0, 20000, gen_fn, NULL), "gen");
    s = weir_key_by(s, mod7_key, NULL);
    weir_state_id *st = weir_job_alloc(job, sizeof *st);
    s = weir_process(s, "count", count_process, st);
    weir_set_uid(s, "count-uid");
    *st = weir_value_state(s, "n");
    s = weir_rebalance(s);
    s = weir_sink(s, "collect", keyed_min_fn, c);
    weir_set_parallelism(s, 1);
    return job;
}

/* generator(n, rate-limited, parallelism c->gen_par) -> rebalance -> sink counting every value
 * (p1) */
static weir_job_t *build_gen_rescale(collected_t *c, uint64_t n) {
    weir_job_t *job = weir_graph_new("gen-rescale", 2);
    weir_stream_t *s = weir_source_generator(job, "gen", n, 12000, gen_fn, NULL);
    weir_set_uid(s, "gen-uid");
    weir_set_parallelism(s, c->gen_par);
    s = weir_rebalance(s);
    s = weir_sink(s, "collect", seen_fn, c);
    weir_set_parallelism(s, 1);
    return job;
}

/* file source (p2, rate-limited) -> file sink, chained: one vertex of two subtasks */
static weir_job_t *build_copy_lines(collected_t *c, uint64_t n) {
    (void)n;
    weir_job_t *job = weir_graph_new("copy-lines", 2);
    weir_stream_t *s = weir_set_uid(weir_source_file(job, "lines", c->in_path, c->rate), "lines");
    weir_set_uid(weir_sink_file(s, "sink", c->out_dir), "sink");
    return job;
}

/* value = the string "g<index>" (the file sink writes it as is: one line per record) */
static void gen_str_fn(weir_ctx_t *ctx, uint64_t index, void *udata) {
    (void)udata;
    char v[32];
    int n = snprintf(v, sizeof v, "g%llu", (unsigned long long)index);
    msgpack_packer *pk = weir_packer(ctx);
    msgpack_pack_str(pk, (size_t)n);
    msgpack_pack_str_body(pk, v, (size_t)n);
    weir_emit_packed(ctx, (int64_t)index, NULL, 0);
}

/* generator(p2, unbounded, rate-limited) -> rebalance -> file sink (p1): two input channels into
 * a two-phase-commit sink */
static weir_job_t *build_gen_file_sink(collected_t *c, uint64_t n) {
    (void)n;
    weir_job_t *job = weir_graph_new("gen-file-sink", 2);
    weir_stream_t *s = weir_source_generator(job, "gen", 0, 4000, gen_str_fn, NULL);
    weir_set_uid(s, "gen-uid");
    s = weir_rebalance(s);
    s = weir_sink_file(s, "sink", c->out_dir);
    weir_set_uid(s, "sink-uid");
    weir_set_parallelism(s, 1);
    return job;
}

/* generator(p2, unbounded) -> key_by(mod7) -> count (p2, value state) -> key_by(mod7) -> count
 * of counts (p1, value state) -> sink (chained): two aligned keyed vertices in a row, the second
 * one holding the sink (vertex 2 = [recount, collect]) */
static weir_job_t *build_keyed_twice(collected_t *c, uint64_t n) {
    (void)n;
    weir_job_t *job = weir_graph_new("keyed-twice", 2);
    weir_stream_t *s = weir_source_generator(job, "gen", 0, 20000, gen_fn, NULL);
    weir_set_uid(s, "gen-uid");
    s = weir_key_by(s, mod7_key, NULL);
    weir_state_id *st = weir_job_alloc(job, 2 * sizeof *st);
    s = weir_process(s, "count", count_process, &st[0]);
    weir_set_uid(s, "count-uid");
    st[0] = weir_value_state(s, "n");
    s = weir_key_by(s, mod7_key, NULL);
    s = weir_process(s, "recount", count_process, &st[1]);
    weir_set_uid(s, "recount-uid");
    st[1] = weir_value_state(s, "n");
    weir_set_parallelism(s, 1);
    s = weir_sink(s, "collect", keyed_min_fn, c);
    weir_set_parallelism(s, 1);
    return job;
}

/* The generator's position in its op state: [[k]] (a one-operator chain). UINT64_MAX if not. */
static uint64_t gen_position(const ack_t *a) {
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    uint64_t k = UINT64_MAX;
    if (a &&
        msgpack_unpack_next(&u, (const char *)a->op_state, a->op_len, &off) ==
            MSGPACK_UNPACK_SUCCESS &&
        u.data.type == MSGPACK_OBJECT_ARRAY && u.data.via.array.size == 1) {
        msgpack_object e = u.data.via.array.ptr[0];
        if (e.type == MSGPACK_OBJECT_ARRAY && e.via.array.size == 1 &&
            e.via.array.ptr[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            k = e.via.array.ptr[0].via.u64;
    }
    msgpack_unpacked_destroy(&u);
    return k;
}

/* True when the op state is [nil] (a one-operator chain without snapshot hook). */
static bool op_state_is_nil1(const ack_t *a) {
    static const uint8_t want[] = {0x91, 0xc0};
    return a->op_len == sizeof want && memcmp(a->op_state, want, sizeof want) == 0;
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

/* Watermarks across a rebalance and two data planes: every map subtask sees a non-decreasing
 * watermark, no record at or below it (the input is out of order within the bound), and every
 * task ends at INT64_MAX. Generator subtask 1 emits nothing: with idleness on it does not hold
 * the watermark back (most records see one); with idleness off it does (almost every record sees
 * INT64_MIN until it ends). */
static void run_watermarks(int64_t idle_ms, uint64_t *at_min, uint64_t *count) {
    harness_t h;
    harness_init(&h, 2);
    h.col.wm_idle_ms = idle_ms;
    for (int i = 0; i < 4; i++)
        h.col.wm_last[i] = INT64_MIN;
    start_job(&h, build_watermarks, 4000, 2);
    wait_final(&h);
    check_all(&h, WEIR_TASK_FINISHED);
    assert_int_equal(h.col.count, 2000);
    assert_int_equal(h.col.wm_back, 0);
    assert_int_equal(h.col.wm_late, 0);
    for (int i = 0; i < h.st.n_tasks; i++)
        assert_true(weir_task_watermark(h.st.tasks[i]) == INT64_MAX);
    *at_min = h.col.wm_at_min;
    *count = h.col.count;
    harness_fini(&h);
}

static void test_watermarks(void **state) {
    (void)state;
    uint64_t at_min, count;
    run_watermarks(50, &at_min, &count);
    if (at_min * 2 >= count)
        fail_msg("idleness on: %llu of %llu records saw no watermark", (unsigned long long)at_min,
                 (unsigned long long)count);
    run_watermarks(0, &at_min, &count);
    if (at_min * 10 < count * 9)
        fail_msg("idleness off: only %llu of %llu records saw no watermark (the idle split "
                 "should hold it back)",
                 (unsigned long long)at_min, (unsigned long long)count);
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

/* The declared TTL reaches the running subtask's state: every count expired before its key came
 * back (build_process without TTL counts to n / 7: test_keyed_process_value_state). */
static void test_keyed_process_state_ttl(void **state) {
    (void)state;
    harness_t h;
    harness_init(&h, 1);
    const uint64_t n = 140;
    start_job(&h, build_process_ttl, n, 1);
    wait_final(&h);
    check_all(&h, WEIR_TASK_FINISHED);
    assert_false(h.col.key_mismatch);
    assert_int_equal(h.col.count, n);
    for (int k = 0; k < 7; k++) {
        assert_int_equal(h.col.keyed_count[k], n / 7);
        assert_int_equal(h.col.keyed_last[k], 1); /* never counted past 1 */
    }
    harness_fini(&h);
}

static bool some_task_failed(void *arg) {
    harness_t *h = arg;
    bool failed = false;
    pthread_mutex_lock(&h->st.mu);
    for (int i = 0; i < h->st.n_tasks; i++)
        if (h->st.final[i] == WEIR_TASK_FAILED && h->st.n_final > 0)
            failed = true;
    pthread_mutex_unlock(&h->st.mu);
    return failed;
}

static void test_user_failure(void **state) {
    (void)state;
    harness_t h;
    harness_init(&h, 1);
    start_job(&h, build_failing, 0 /* unbounded: only the failure stops the map */, 1);
    /* the map task fails; the source keeps running until canceled */
    assert_true(weir_test_wait_until(some_task_failed, &h, 30000, 5));
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

/* Side outputs: even values to the main output, odd ones to a side output; exact counts and sums
 * on both sinks (a brute-force oracle), over two data planes. The chain layout is checked too. */
static void test_side_outputs(void **state) {
    (void)state;
    const uint64_t n = 3000;
    uint64_t want_even = 0, want_odd = 0, sum_even = 0, sum_odd = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (i % 2) {
            want_odd++;
            sum_odd += i;
        } else {
            want_even++;
            sum_even += i;
        }
    }
    char err[512];
    /* the side output chained, the main one through a rebalance leaving the chain from the
     * split; watermarks reach both consumers */
    harness_t h;
    harness_init(&h, 2);
    h.col.side_wm_max = h.col.main_wm_max = INT64_MIN;
    weir_job_t *g = build_side_exchange(&h.col, n);
    assert_int_equal(weir_graph_finalize(g, err, sizeof err), 0);
    assert_int_equal(g->n_vertices, 2);
    assert_string_equal(g->vertices[0].name, "gen -> split -> odd");
    assert_string_equal(g->vertices[1].name, "even");
    weir_graph_destroy(&g);
    start_job(&h, build_side_exchange, n, 2);
    wait_final(&h);
    check_all(&h, WEIR_TASK_FINISHED);
    assert_int_equal(h.col.count, want_even);
    assert_int_equal(h.col.sum, sum_even);
    assert_int_equal(h.col.side_count, want_odd);
    assert_int_equal(h.col.side_sum, sum_odd);
    assert_true(h.col.side_wm_max > INT64_MIN);
    assert_true(h.col.main_wm_max > INT64_MIN);
    harness_fini(&h);

    /* the main output chained, a side output through a rebalance leaving the chain from the
     * split, another side output without a consumer (dropped) */
    harness_init(&h, 2);
    g = build_side_chained(&h.col, n);
    assert_int_equal(weir_graph_finalize(g, err, sizeof err), 0);
    assert_int_equal(g->n_vertices, 2);
    assert_string_equal(g->vertices[0].name, "gen -> split -> even");
    assert_string_equal(g->vertices[1].name, "odd");
    weir_graph_destroy(&g);
    start_job(&h, build_side_chained, n, 2);
    wait_final(&h);
    check_all(&h, WEIR_TASK_FINISHED);
    assert_int_equal(h.col.count, want_even);
    assert_int_equal(h.col.sum, sum_even);
    assert_int_equal(h.col.side_count, want_odd);
    assert_int_equal(h.col.side_sum, sum_odd);
    harness_fini(&h);

    /* a tag never declared fails the subtask with one line naming the operator and the tag */
    harness_init(&h, 1);
    start_job(&h, build_side_undeclared, 0, 1);
    assert_true(weir_test_wait_until(some_task_failed, &h, 30000, 5));
    for (int i = 0; i < h.st.n_tasks; i++)
        weir_task_cancel(h.st.tasks[i]);
    wait_final(&h);
    int n_failed = 0;
    for (int i = 0; i < h.st.n_tasks; i++) {
        if (h.st.final[i] != WEIR_TASK_FAILED)
            continue;
        n_failed++;
        assert_string_equal(h.st.message[i],
                            "split: weir_emit_to: side output tag 2 is not declared (the operator "
                            "declares 1): use a tag returned by weir_side_output_tag");
    }
    assert_int_equal(n_failed, 1);
    assert_int_equal(h.col.side_count, 0);
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

/* Exactly-once alignment: source 0 gets the trigger first; while its barrier sits at the sink,
 * source 1 keeps sending. If the sink processed anything behind barrier n on channel 0 before
 * its snapshot, its count at the snapshot would exceed what the sources emitted before n. */
static void run_alignment(weir_checkpoint_mode_t mode) {
    harness_t h;
    harness_init(&h, 1);
    h.ck_mode = mode;
    start_job(&h, build_two_inputs, 0, 1);
    wait_running(&h);
    weir_sleep_ns(20000000);
    weir_task_t *src[2] = {NULL, NULL};
    for (int i = 0; i < h.st.n_tasks; i++)
        if (weir_task_vertex(h.st.tasks[i]) == 0)
            src[weir_task_subtask(h.st.tasks[i])] = h.st.tasks[i];
    assert_non_null(src[0]);
    assert_non_null(src[1]);
    const uint64_t n_ck = 4;
    for (uint64_t id = 1; id <= n_ck; id++) {
        weir_task_trigger(src[id % 2], id, weir_wall_ms(), WEIR_CK_CHECKPOINT, NULL);
        weir_sleep_ns(15000000); /* the other source runs on meanwhile */
        weir_task_trigger(src[(id + 1) % 2], id, weir_wall_ms(), WEIR_CK_CHECKPOINT, NULL);
        assert_int_equal(wait_acks(&h, id, false, 3), 3);
    }
    for (int i = 0; i < h.st.n_tasks; i++)
        weir_task_cancel(h.st.tasks[i]);
    wait_final(&h);
    check_all(&h, WEIR_TASK_CANCELED);
    assert_int_equal(weir_task_state(src[0]), WEIR_TASK_CANCELED);
    for (uint64_t id = 1; id <= n_ck; id++) {
        const ack_t *a0 = find_ack(h.acks, h.n_acks, 0, 0, id, false);
        const ack_t *a1 = find_ack(h.acks, h.n_acks, 0, 1, id, false);
        const ack_t *sk = find_ack(h.acks, h.n_acks, 1, 0, id, false);
        assert_non_null(a0);
        assert_non_null(a1);
        assert_non_null(sk);
        /* the generator's snapshot is the count it emitted, as the runtime counted it */
        assert_int_equal(gen_position(a0), a0->records_out);
        assert_int_equal(gen_position(a1), a1->records_out);
        assert_true(op_state_is_nil1(sk));
        assert_true(sk->alignment_ns > 0);
        uint64_t before = a0->records_out + a1->records_out;
        if (mode == WEIR_CHECKPOINT_EXACTLY_ONCE)
            assert_int_equal(sk->col_count, before);
        else
            assert_true(sk->col_count >= before);
        if (id > 1) {
            const ack_t *prev = find_ack(h.acks, h.n_acks, 1, 0, id - 1, false);
            assert_true(sk->col_count > prev->col_count); /* data flowed between */
        }
    }
    harness_fini(&h);
}

static void test_alignment_exactly_once(void **state) {
    (void)state;
    run_alignment(WEIR_CHECKPOINT_EXACTLY_ONCE);
}

static void test_alignment_at_least_once(void **state) {
    (void)state;
    run_alignment(WEIR_CHECKPOINT_AT_LEAST_ONCE);
}

/* ---- two inputs: a co-process over two sources (build_co_*) -------------------------------- */

/* Input 0 of the co-process: forwarded to the chained sink (which counts it); its watermark is
 * checked against what input 1's source emitted so far. */
static void co_first(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    collected_t *c = udata;
    int64_t wm = weir_current_watermark(ctx);
    pthread_mutex_lock(&c->mu);
    c->co_n[0]++;
    if (wm == INT64_MIN)
        c->co_at_min[0]++;
    if (!c->co_b_done && wm != INT64_MIN) {
        c->co_checked++;
        if (wm >= c->co_b_max) /* input 1's watermark is below its max timestamp */
            c->co_above++;
    }
    if (in->timestamp <= wm)
        c->wm_late++;
    if (c->co_mod7 && in->key_len != 8) /* the record key (gen_fn: 8 bytes), not input 1's */
        c->key_mismatch = true;
    pthread_mutex_unlock(&c->mu);
    weir_emit(ctx, in);
}

/* Input 1: counted here only (the sink never sees it). */
static void co_second(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    collected_t *c = udata;
    uint64_t v = value_of(ctx, in);
    pthread_mutex_lock(&c->mu);
    c->co_n[1]++;
    /* each input's edge partitions by its own key selector: input 1's is mod7_key */
    if (c->co_mod7 && (in->key_len != 2 || memcmp(in->key, (char[]){'k', (char)('0' + v % 7)}, 2)))
        c->key_mismatch = true;
    pthread_mutex_unlock(&c->mu);
}

/* Input 1's generator: event time far behind input 0's (1000 + index), or nothing at all. */
static void co_b_gen(weir_ctx_t *ctx, uint64_t index, void *udata) {
    collected_t *c = udata;
    if (!c->co_b_silent) {
        int64_t ts = 1000 + (int64_t)index;
        pthread_mutex_lock(&c->mu);
        if (ts > c->co_b_max)
            c->co_b_max = ts;
        pthread_mutex_unlock(&c->mu);
        msgpack_pack_uint64(weir_packer(ctx), index);
        weir_emit_packed(ctx, ts, "b", 1);
    }
    if (c->co_b_count && index + 1 == c->co_b_count) {
        pthread_mutex_lock(&c->mu);
        c->co_b_done = true;
        pthread_mutex_unlock(&c->mu);
    }
}

/* a: generator(p2, unbounded, as fast as possible) and b: generator(p1, 500/s), both keyed,
 * -> co_process(p1) -> sink(p1, chained): three input channels, one slow */
static weir_job_t *build_co_alignment(collected_t *c, uint64_t n) {
    (void)n;
    weir_job_t *job = weir_graph_new("co-alignment", 2);
    weir_stream_t *a = weir_set_uid(weir_source_generator(job, "a", 0, 0, gen_fn, NULL), "a");
    weir_stream_t *b = weir_set_uid(weir_source_generator(job, "b", 0, 500, co_b_gen, c), "b");
    weir_set_parallelism(b, 1);
    c->co_mod7 = true;
    weir_stream_t *co = weir_co_process(weir_key_by(a, NULL, NULL), weir_key_by(b, mod7_key, NULL),
                                        "co", co_first, co_second, c);
    weir_set_parallelism(co, 1);
    weir_set_parallelism(weir_sink(co, "collect", collect_fn, c), 1);
    return job;
}

/* a: generator(p1, n at 4000/s, watermarks bound WM_BOUND) and b: generator(p1, co_b_count at
 * 100/s, same bound, idle timeout co_b_idle_ms) -> co_process(p1) -> sink */
static weir_job_t *build_co_watermarks(collected_t *c, uint64_t n) {
    weir_job_t *job = weir_graph_new("co-watermarks", 1);
    weir_stream_t *a = weir_set_uid(weir_source_generator(job, "a", n, 4000, wm_gen_fn, NULL), "a");
    weir_stream_t *b =
        weir_set_uid(weir_source_generator(job, "b", c->co_b_count, 100, co_b_gen, c), "b");
    weir_watermark_strategy_t st = {.max_out_of_orderness_ms = WM_BOUND};
    weir_set_watermark_strategy(a, &st);
    st.idle_timeout_ms = c->co_b_idle_ms;
    weir_set_watermark_strategy(b, &st);
    weir_stream_t *co = weir_co_process(weir_key_by(a, NULL, NULL), weir_key_by(b, NULL, NULL),
                                        "co", co_first, co_second, c);
    weir_sink(co, "collect", collect_fn, c);
    return job;
}

/* gen(p2, n) keyed twice, by the record key and by mod7_key -> co_process(p2) -> sink: one
 * stream as both inputs under two key selectors, two edges between the same two vertices */
static weir_job_t *build_co_self(collected_t *c, uint64_t n) {
    weir_job_t *job = weir_graph_new("co-self", 2);
    weir_stream_t *g = weir_set_uid(weir_source_generator(job, "gen", n, 0, gen_fn, NULL), "gen");
    c->co_mod7 = true;
    weir_stream_t *co = weir_co_process(weir_key_by(g, NULL, NULL), weir_key_by(g, mod7_key, NULL),
                                        "co", co_first, co_second, c);
    weir_sink(co, "collect", collect_fn, c);
    return job;
}

/* Every record reaches the co-process twice, once per input, each time partitioned by that
 * input's key selector and handed to that input's function. */
static void test_co_process_self(void **state) {
    (void)state;
    harness_t h;
    harness_init(&h, 2);
    start_job(&h, build_co_self, 3000, 2);
    wait_final(&h);
    check_all(&h, WEIR_TASK_FINISHED);
    assert_int_equal(h.col.co_n[0], 3000);
    assert_int_equal(h.col.co_n[1], 3000);
    assert_int_equal(h.col.count, 3000);
    assert_int_equal(h.col.sum, 3000 * 2999 / 2);
    assert_false(h.col.key_mismatch);
    harness_fini(&h);
}

/* Interval join (build_interval_late): left indices at 1000/s, key "x" and timestamp
 * 1000 + index (no partner), except index 0 and the last one: key "k", timestamp 1000; right: one
 * record, key "k", timestamp 1000, then its input ends. */
static void il_left(weir_ctx_t *ctx, uint64_t index, void *udata) {
    const collected_t *c = udata;
    bool k = index == 0 || index + 1 == c->co_b_count;
    msgpack_pack_uint64(weir_packer(ctx), index);
    weir_emit_packed(ctx, k ? 1000 : 1000 + (int64_t)index, k ? "k" : "x", 1);
}

static void il_right(weir_ctx_t *ctx, uint64_t index, void *udata) {
    (void)udata;
    msgpack_pack_uint64(weir_packer(ctx), 1000000 + index);
    weir_emit_packed(ctx, 1000, "k", 1);
}

static void il_pair(weir_ctx_t *ctx, const weir_window_t *w, const weir_record_t *l,
                    const weir_record_t *r, void *udata) {
    (void)udata;
    assert_null(w);
    msgpack_pack_uint64(weir_packer(ctx), value_of(ctx, l) * 10000000 + value_of(ctx, r));
    weir_emit_packed(ctx, 0, l->key, l->key_len); /* the runtime stamps max(l.ts, r.ts) */
}

/* counts the pairs; sum: their values; min_par[0]: records not stamped 1000 */
static void il_collect(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    collected_t *c = udata;
    uint64_t v = value_of(ctx, in);
    pthread_mutex_lock(&c->mu);
    c->count++;
    c->sum += v;
    if (in->timestamp != 1000)
        c->wm_back++;
    pthread_mutex_unlock(&c->mu);
}

/* left: generator(p1, co_b_count at 1000/s, bound 0) and right: generator(p1, 1 record, bound
 * 0) -> interval join [-5000, 5000] (p1) -> sink */
static weir_job_t *build_interval_late(collected_t *c, uint64_t n) {
    (void)n;
    weir_job_t *job = weir_graph_new("interval-late", 1);
    weir_stream_t *l =
        weir_set_uid(weir_source_generator(job, "l", c->co_b_count, 1000, il_left, c), "l");
    weir_stream_t *r = weir_set_uid(weir_source_generator(job, "r", 1, 0, il_right, c), "r");
    weir_watermark_strategy_t st = {.max_out_of_orderness_ms = 0};
    weir_set_watermark_strategy(l, &st);
    weir_set_watermark_strategy(r, &st);
    weir_stream_t *j = weir_interval_join(weir_key_by(l, NULL, NULL), weir_key_by(r, NULL, NULL),
                                          "ij", -5000, 5000, il_pair, NULL);
    weir_sink(weir_set_uid(j, "ij"), "collect", il_collect, c);
    return job;
}

/* A record below the interval join's watermark when it arrives is late: dropped, even though
 * its partner is still kept (its cleanup time, 1000 + 5000 + 1, is far above the watermark).
 * Left index 0 (timestamp 1000, the watermark still low) pairs with the right record; the last
 * left index (timestamp 1000 again, arriving 1.5 s later, after the right input ended and
 * left's watermarks passed 1000 + several hundred) is late. The pair is stamped max(l.ts,
 * r.ts) = 1000 although the function emits timestamp 0. */
static void test_interval_join_late(void **state) {
    (void)state;
    harness_t h;
    harness_init(&h, 1);
    h.col.co_b_count = 1500;
    start_job(&h, build_interval_late, 0, 1);
    wait_final(&h);
    check_all(&h, WEIR_TASK_FINISHED);
    assert_int_equal(h.col.count, 1);
    assert_int_equal(h.col.sum, 0 * 10000000 + 1000000); /* left 0 with right 0 */
    assert_int_equal(h.col.wm_back, 0);
    harness_fini(&h);
}

/* Barrier alignment over both inputs of a co-process (test_alignment_exactly_once's check on a
 * two-input vertex): the three sources are triggered 10 ms apart, so the barriers of a
 * checkpoint reach the co-process at different times on its three channels (two of input 0,
 * one of input 1, which is slow). Exactly once: its snapshot has seen exactly the records each
 * source emitted before its own snapshot, input by input (fn1 and fn2 got their own input's). */
static void test_co_process_alignment(void **state) {
    (void)state;
    harness_t h;
    harness_init(&h, 2);
    h.ck_mode = WEIR_CHECKPOINT_EXACTLY_ONCE;
    start_job(&h, build_co_alignment, 0, 2);
    wait_running(&h);
    weir_sleep_ns(50000000);
    weir_task_t *a[2] = {NULL, NULL}, *b = NULL;
    for (int i = 0; i < h.st.n_tasks; i++) {
        if (weir_task_vertex(h.st.tasks[i]) == 0)
            a[weir_task_subtask(h.st.tasks[i])] = h.st.tasks[i];
        if (weir_task_vertex(h.st.tasks[i]) == 1)
            b = h.st.tasks[i];
    }
    assert_non_null(a[0]);
    assert_non_null(a[1]);
    assert_non_null(b);
    const uint64_t n_ck = 4;
    for (uint64_t id = 1; id <= n_ck; id++) {
        weir_task_t *order[3] = {a[id % 2], b, a[(id + 1) % 2]};
        if (id % 2) { /* the slow input's barrier first or in the middle */
            order[0] = b;
            order[1] = a[id % 2];
        }
        for (int k = 0; k < 3; k++) {
            weir_task_trigger(order[k], id, weir_wall_ms(), WEIR_CK_CHECKPOINT, NULL);
            weir_sleep_ns(10000000);
        }
        assert_int_equal(wait_acks(&h, id, false, 4), 4);
    }
    for (int i = 0; i < h.st.n_tasks; i++)
        weir_task_cancel(h.st.tasks[i]);
    wait_final(&h);
    check_all(&h, WEIR_TASK_CANCELED);
    assert_false(h.col.key_mismatch);
    for (uint64_t id = 1; id <= n_ck; id++) {
        const ack_t *a0 = find_ack(h.acks, h.n_acks, 0, 0, id, false);
        const ack_t *a1 = find_ack(h.acks, h.n_acks, 0, 1, id, false);
        const ack_t *b0 = find_ack(h.acks, h.n_acks, 1, 0, id, false);
        const ack_t *co = find_ack(h.acks, h.n_acks, 2, 0, id, false);
        assert_non_null(a0);
        assert_non_null(a1);
        assert_non_null(b0);
        assert_non_null(co);
        assert_true(co->alignment_ns > 0);
        assert_int_equal(co->col_count, a0->records_out + a1->records_out); /* input 0: fn1 */
        assert_int_equal(co->col_right, b0->records_out);                   /* input 1: fn2 */
        if (id > 1) {
            const ack_t *prev = find_ack(h.acks, h.n_acks, 2, 0, id - 1, false);
            assert_true(co->col_count > prev->col_count);
            assert_true(co->col_right > prev->col_right); /* the slow input flowed too */
        }
    }
    harness_fini(&h);
}

/* The co-process's watermark is the minimum over its two inputs. Input 1 emits event time far
 * behind input 0 (1000 + index, at 100/s for 2 s, input 0 ends in 0.5 s): while it runs, no
 * record of input 0 sees a watermark at or above input 1's largest timestamp. With input 1
 * silent and idle after 50 ms it does not hold the watermark back (most records of input 0 see
 * one); silent and never idle, it does (almost none do). */
static void run_co_watermarks(bool silent, int64_t idle_ms, collected_t *out) {
    harness_t h;
    harness_init(&h, 2);
    h.col.co_b_count = 200;
    h.col.co_b_silent = silent;
    h.col.co_b_idle_ms = idle_ms;
    h.col.co_b_max = INT64_MIN;
    start_job(&h, build_co_watermarks, 2000, 2);
    wait_final(&h);
    check_all(&h, WEIR_TASK_FINISHED);
    assert_int_equal(h.col.co_n[0], 1000); /* wm_gen_fn emits the even indices */
    assert_int_equal(h.col.co_n[1], silent ? 0 : 200);
    assert_int_equal(h.col.wm_late, 0);
    for (int i = 0; i < h.st.n_tasks; i++)
        assert_true(weir_task_watermark(h.st.tasks[i]) == INT64_MAX);
    pthread_mutex_lock(&h.col.mu);
    *out = h.col;
    pthread_mutex_unlock(&h.col.mu);
    harness_fini(&h);
}

static void test_co_process_watermarks(void **state) {
    (void)state;
    collected_t c;
    run_co_watermarks(false, 0, &c); /* slow input: it holds the minimum */
    if (c.co_checked == 0 || c.co_above != 0)
        fail_msg("slow input: %llu of %llu records of input 0 saw a watermark at or above input "
                 "1's timestamps",
                 (unsigned long long)c.co_above, (unsigned long long)c.co_checked);
    run_co_watermarks(true, 50, &c); /* idle input: excluded */
    if (c.co_at_min[0] * 2 >= c.co_n[0])
        fail_msg("idle input: %llu of %llu records saw no watermark",
                 (unsigned long long)c.co_at_min[0], (unsigned long long)c.co_n[0]);
    run_co_watermarks(true, 0, &c); /* silent, never idle: it holds the watermark back */
    if (c.co_at_min[0] * 10 < c.co_n[0] * 9)
        fail_msg("silent input without idleness: only %llu of %llu records saw no watermark",
                 (unsigned long long)c.co_at_min[0], (unsigned long long)c.co_n[0]);
}

/* End of input with checkpointing on: every task acks its final snapshot (id 0, final), the
 * sink's after it saw every record; nobody finishes before the final notify. */
static void test_final_checkpoint(void **state) {
    (void)state;
    harness_t h;
    harness_init(&h, 2);
    h.ck_mode = WEIR_CHECKPOINT_EXACTLY_ONCE;
    const uint64_t n = 6000;
    start_job(&h, build_two_inputs, n, 2);
    assert_int_equal(wait_acks(&h, 0, true, 3), 3);
    weir_sleep_ns(100000000);
    pthread_mutex_lock(&h.st.mu);
    int nf = h.st.n_final;
    pthread_mutex_unlock(&h.st.mu);
    assert_int_equal(nf, 0);
    for (int i = 0; i < h.st.n_tasks; i++)
        assert_int_equal(weir_task_state(h.st.tasks[i]), WEIR_TASK_RUNNING);
    const ack_t *sk = find_ack(h.acks, h.n_acks, 1, 0, 0, true);
    assert_non_null(sk);
    assert_int_equal(sk->col_count, n);
    assert_int_equal(gen_position(find_ack(h.acks, h.n_acks, 0, 0, 0, true)), n / 2);
    /* the sink acked after both sources (END follows the final snapshot) */
    pthread_mutex_lock(&h.ack_mu);
    assert_int_equal(h.acks[2].vertex, 1);
    pthread_mutex_unlock(&h.ack_mu);
    /* a notify of an ordinary checkpoint does not finish anything */
    for (int i = 0; i < h.st.n_tasks; i++)
        weir_task_notify(h.st.tasks[i], 3, false);
    weir_sleep_ns(50000000);
    pthread_mutex_lock(&h.st.mu);
    nf = h.st.n_final;
    pthread_mutex_unlock(&h.st.mu);
    assert_int_equal(nf, 0);
    for (int i = 0; i < h.st.n_tasks; i++)
        weir_task_notify(h.st.tasks[i], 4, true);
    wait_final(&h);
    check_all(&h, WEIR_TASK_FINISHED);
    assert_int_equal(h.col.count, n);
    assert_int_equal(h.col.sum, n * (n - 1) / 2);
    harness_fini(&h);
}

static void cancel_and_wait(harness_t *h) {
    for (int i = 0; i < h->st.n_tasks; i++)
        weir_task_cancel(h->st.tasks[i]);
    wait_final(h);
    check_all(h, WEIR_TASK_CANCELED);
}

static bool both_inputs_seen(void *arg) {
    harness_t *h = arg;
    pthread_mutex_lock(&h->col.mu);
    bool both = h->col.min_par[0] != UINT64_MAX && h->col.min_par[1] != UINT64_MAX;
    pthread_mutex_unlock(&h->col.mu);
    return both;
}

/* Restore: run, checkpoint 1, cancel; attempt 2 restores from the ACKs of 1 and the sources
 * resume exactly at their positions. */
static void test_restore_sources(void **state) {
    (void)state;
    harness_t h1;
    harness_init(&h1, 1);
    h1.ck_mode = WEIR_CHECKPOINT_EXACTLY_ONCE;
    start_job(&h1, build_two_inputs, 0, 1);
    wait_running(&h1);
    weir_sleep_ns(30000000);
    for (int i = 0; i < h1.st.n_tasks; i++)
        if (weir_task_vertex(h1.st.tasks[i]) == 0)
            weir_task_trigger(h1.st.tasks[i], 1, weir_wall_ms(), WEIR_CK_CHECKPOINT, NULL);
    assert_int_equal(wait_acks(&h1, 1, false, 3), 3);
    weir_sleep_ns(20000000); /* more data after the checkpoint: must be replayed */
    cancel_and_wait(&h1);
    uint64_t k[2];
    for (uint32_t s = 0; s < 2; s++) {
        const ack_t *a = find_ack(h1.acks, h1.n_acks, 0, s, 1, false);
        assert_non_null(a);
        k[s] = a->records_out;
        assert_true(k[s] > 0);
    }

    harness_t h2;
    harness_init(&h2, 1);
    h2.ck_mode = WEIR_CHECKPOINT_EXACTLY_ONCE;
    h2.attempt = 2;
    h2.restore_id = 1;
    h2.restore_from = h1.acks;
    h2.n_restore_from = h1.n_acks;
    start_job(&h2, build_two_inputs, 0, 1);
    wait_running(&h2);
    weir_test_wait_until(both_inputs_seen, &h2, 10000, 2);
    /* subtask s of 2 emits s, s+2, ...: after k records it resumes at s + 2k */
    assert_int_equal(h2.col.min_par[0], 0 + 2 * k[0]);
    assert_int_equal(h2.col.min_par[1], 1 + 2 * k[1]);
    /* a checkpoint after the restore: ids below the restored one are stale, above work */
    for (int i = 0; i < h2.st.n_tasks; i++)
        if (weir_task_vertex(h2.st.tasks[i]) == 0)
            weir_task_trigger(h2.st.tasks[i], 2, weir_wall_ms(), WEIR_CK_CHECKPOINT, NULL);
    assert_int_equal(wait_acks(&h2, 2, false, 3), 3);
    const ack_t *a0 = find_ack(h2.acks, h2.n_acks, 0, 0, 2, false);
    assert_true(gen_position(a0) > k[0]);
    cancel_and_wait(&h2);
    harness_fini(&h2);
    harness_fini(&h1);
}

/* Restore at another parallelism through the runtime (the operator-state bundle of CONTRACT9
 * section 3): a bounded generator stopped at a checkpoint at parallelism 2 resumes at 3 and
 * then (from a checkpoint of that run) at 1; across the three runs the sink sees every value
 * below n exactly once: the values emitted before each checkpoint's barrier (the oracle: each
 * old subtask j emitted j, j+p, ... up to its position) come from the earlier run, all others
 * from the later ones. */
static void test_restore_rescaled_sources(void **state) {
    (void)state;
    const uint64_t n = 6000;
    uint8_t *emitted = calloc(n, 1); /* by the earlier runs before their barriers */
    assert_non_null(emitted);
    const uint32_t pars[] = {2, 3, 1};
    harness_t h[3];
    for (int run = 0; run < 3; run++) {
        harness_t *hr = &h[run];
        harness_init(hr, 1);
        hr->ck_mode = WEIR_CHECKPOINT_EXACTLY_ONCE;
        hr->col.gen_par = pars[run];
        hr->col.seen_n = n;
        hr->col.seen = calloc(n, 1);
        if (run > 0) {
            hr->attempt = (uint32_t)run + 1;
            hr->restore_id = (uint64_t)run;
            hr->restore_from = h[run - 1].acks;
            hr->n_restore_from = h[run - 1].n_acks;
            hr->restore_old_par[0] = pars[run - 1];
        }
        start_job(hr, build_gen_rescale, n, 1);
        wait_running(hr);
        if (run < 2) { /* a checkpoint part way, then cancel */
            weir_sleep_ns(40000000);
            for (int i = 0; i < hr->st.n_tasks; i++)
                if (weir_task_vertex(hr->st.tasks[i]) == 0)
                    weir_task_trigger(hr->st.tasks[i], (uint64_t)run + 1, weir_wall_ms(),
                                      WEIR_CK_CHECKPOINT, NULL);
            /* at 3, source subtask 2 has no split: it ended at once (its final snapshot
             * stands in for it), so it acks no checkpoint */
            int want = (int)pars[run] + (run == 1 ? 0 : 1);
            assert_int_equal(wait_acks(hr, (uint64_t)run + 1, false, want), want);
            if (run == 1)
                assert_non_null(find_ack(hr->acks, hr->n_acks, 0, 2, 0, true));
            cancel_and_wait(hr);
            continue;
        }
        assert_int_equal(wait_acks(hr, 0, true, (int)pars[run] + 1), (int)pars[run] + 1);
        for (int i = 0; i < hr->st.n_tasks; i++)
            weir_task_notify(hr->st.tasks[i], 9, true);
        wait_final(hr);
        check_all(hr, WEIR_TASK_FINISHED);
    }
    /* Oracle: what each run emitted before its checkpoint's barrier, from the positions in
     * its ACKs (the documented layouts, read with msgpack-c): run 1's subtask j of 2 packed [k]
     * (it emitted j, j+2, ..., below j + 2k); run 2's subtasks packed [2, [[split, next], ...]]
     * (split i emitted i + 2m from run 1's next of split i up to next). Run 3 (to the end) must
     * see exactly every other value, once. */
    uint64_t next1[2];
    for (uint32_t j = 0; j < 2; j++) {
        const ack_t *a = find_ack(h[0].acks, h[0].n_acks, 0, j, 1, false);
        uint64_t k = gen_position(a);
        assert_true(k != UINT64_MAX);
        next1[j] = j + 2 * k;
        for (uint64_t v = j; v < next1[j] && v < n; v += 2)
            emitted[v]++;
    }
    for (uint32_t k = 0; k < 3; k++) {
        const ack_t *a = find_ack(h[1].acks, h[1].n_acks, 0, k, 2, false);
        if (k == 2) /* no split: finished at once, its final snapshot */
            a = find_ack(h[1].acks, h[1].n_acks, 0, k, 0, true);
        assert_non_null(a);
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t off = 0;
        assert_int_equal(msgpack_unpack_next(&u, (const char *)a->op_state, a->op_len, &off),
                         MSGPACK_UNPACK_SUCCESS);
        const msgpack_object *st = &u.data.via.array.ptr[0]; /* [2, [[split, next], ...]] */
        assert_int_equal(st->type, MSGPACK_OBJECT_ARRAY);
        assert_int_equal(st->via.array.size, 2);
        assert_int_equal(st->via.array.ptr[0].via.u64, 2);
        const msgpack_object *sp = &st->via.array.ptr[1];
        assert_int_equal(sp->via.array.size, k < 2 ? 1 : 0); /* split k % 3: k = 0, 1 */
        for (uint32_t i = 0; i < sp->via.array.size; i++) {
            uint64_t id = sp->via.array.ptr[i].via.array.ptr[0].via.u64;
            uint64_t next = sp->via.array.ptr[i].via.array.ptr[1].via.u64;
            assert_int_equal(id, k);
            for (uint64_t v = next1[id]; v < next && v < n; v += 2)
                emitted[v]++;
        }
        msgpack_unpacked_destroy(&u);
    }
    for (uint64_t v = 0; v < n; v++) {
        if (emitted[v] > 1)
            fail_msg("value %llu emitted before two checkpoints", (unsigned long long)v);
        if (h[2].col.seen[v] != (emitted[v] ? 0 : 1))
            fail_msg("value %llu: seen %u times by the last run, emitted before a checkpoint %u "
                     "times",
                     (unsigned long long)v, h[2].col.seen[v], emitted[v]);
    }
    for (int run = 2; run >= 0; run--) {
        free(h[run].col.seen);
        harness_fini(&h[run]);
    }
    free(emitted);
}

/* A restore with operator state that does not match the chain fails the task with a message. */
static void test_restore_bad_op_state(void **state) {
    (void)state;
    harness_t h;
    harness_init(&h, 1);
    ack_t bad[3];
    memset(bad, 0, sizeof bad);
    static uint8_t two_nils[] = {0x92, 0xc0, 0xc0}; /* [nil, nil]: the chains have one operator */
    for (int i = 0; i < 3; i++) {
        bad[i].vertex = i < 2 ? 0 : 1;
        bad[i].subtask = i < 2 ? (uint32_t)i : 0;
        bad[i].id = 7;
        bad[i].op_state = two_nils;
        bad[i].op_len = sizeof two_nils;
    }
    h.ck_mode = WEIR_CHECKPOINT_EXACTLY_ONCE;
    h.restore_id = 7;
    h.restore_from = bad;
    h.n_restore_from = 3;
    start_job(&h, build_two_inputs, 0, 1);
    wait_final(&h);
    for (int i = 0; i < h.st.n_tasks; i++) {
        assert_int_equal(h.st.final[i], WEIR_TASK_FAILED);
        assert_non_null(strstr(h.st.message[i], "operator state of checkpoint 7"));
    }
    harness_fini(&h);
}

/* A bundle element that is not nil or [old parallelism, [[old subtask, state], ...]] (old
 * subtasks ascending, below the old parallelism) fails the task naming the operator. */
static void test_restore_malformed_bundle(void **state) {
    (void)state;
    static uint8_t cases[][12] = {
        {0x91, 0x91, 0x05},                         /* [[5]] */
        {0x91, 0x92, 0x00, 0x91, 0x92, 0x00, 0xc0}, /* [[0, [[0, nil]]]]: parallelism 0 */
        {0x91, 0x92, 0x02, 0x90},                   /* [[2, []]]: no pair */
        {0x91, 0x92, 0x02, 0x91, 0x92, 0x02, 0x01}, /* [[2, [[2, 1]]]]: subtask >= 2 */
        {0x91, 0x92, 0x02, 0x92, 0x92, 0x01, 0x01, 0x92, 0x00, 0x01}, /* descending */
    };
    static const size_t lens[] = {3, 7, 4, 7, 10};
    for (size_t c = 0; c < 5; c++) {
        harness_t h;
        harness_init(&h, 1);
        ack_t bad[3];
        memset(bad, 0, sizeof bad);
        for (int i = 0; i < 3; i++) {
            bad[i].vertex = i < 2 ? 0 : 1;
            bad[i].subtask = i < 2 ? (uint32_t)i : 0;
            bad[i].id = 7;
            bad[i].op_state = cases[c];
            bad[i].op_len = lens[c];
        }
        h.ck_mode = WEIR_CHECKPOINT_EXACTLY_ONCE;
        h.restore_id = 7;
        h.restore_from = bad;
        h.n_restore_from = 3;
        h.restore_raw = true;
        start_job(&h, build_two_inputs, 0, 1);
        wait_final(&h);
        for (int i = 0; i < h.st.n_tasks; i++) {
            assert_int_equal(h.st.final[i], WEIR_TASK_FAILED);
            if (!strstr(h.st.message[i], "its operator state in checkpoint 7 is malformed"))
                fail_msg("case %zu: %s", c, h.st.message[i]);
        }
        harness_fini(&h);
    }
}

static bool all_keys_seen(void *arg) {
    harness_t *h = arg;
    pthread_mutex_lock(&h->col.mu);
    bool all = true;
    for (int k = 0; k < 7; k++)
        all = all && h->col.keyed_min[k] != UINT64_MAX;
    pthread_mutex_unlock(&h->col.mu);
    return all;
}

/* Keyed state: checkpoint, cancel, restore: per key the counts go on from the snapshot. */
static void test_restore_keyed(void **state) {
    (void)state;
    char *ckdir = weir_test_tmpdir("test_task_ck");

    harness_t h1;
    harness_init(&h1, 1);
    h1.ck_mode = WEIR_CHECKPOINT_EXACTLY_ONCE;
    h1.ck_dir = ckdir;
    start_job(&h1, build_keyed_counts, 0, 1);
    wait_running(&h1);
    weir_sleep_ns(100000000);
    for (int i = 0; i < h1.st.n_tasks; i++)
        if (weir_task_vertex(h1.st.tasks[i]) == 0)
            weir_task_trigger(h1.st.tasks[i], 1, weir_wall_ms(), WEIR_CK_CHECKPOINT, NULL);
    assert_int_equal(wait_acks(&h1, 1, false, 5), 5);
    for (uint32_t s = 0; s < 2; s++) {
        const ack_t *a = find_ack(h1.acks, h1.n_acks, 1, s, 1, false);
        assert_non_null(a);
        assert_non_null(a->handle); /* keyed vertex */
        assert_null(find_ack(h1.acks, h1.n_acks, 0, s, 1, false)->handle);
    }
    for (int i = 0; i < h1.st.n_tasks; i++)
        weir_task_notify(h1.st.tasks[i], 1, false);
    weir_sleep_ns(50000000);
    cancel_and_wait(&h1);
    /* oracle: per key, how many of the indices emitted before the barrier map to it */
    uint64_t want[7] = {0};
    for (uint32_t s = 0; s < 2; s++) {
        uint64_t k = find_ack(h1.acks, h1.n_acks, 0, s, 1, false)->records_out;
        for (uint64_t j = 0; j < k; j++)
            want[(s + 2 * j) % 7]++;
    }

    harness_t h2;
    harness_init(&h2, 1);
    h2.ck_mode = WEIR_CHECKPOINT_EXACTLY_ONCE;
    h2.ck_dir = ckdir;
    h2.attempt = 2;
    h2.restore_id = 1;
    h2.restore_from = h1.acks;
    h2.n_restore_from = h1.n_acks;
    start_job(&h2, build_keyed_counts, 0, 1);
    wait_running(&h2);
    weir_test_wait_until(all_keys_seen, &h2, 10000, 5);
    cancel_and_wait(&h2);
    assert_false(h2.col.key_mismatch);
    for (int k = 0; k < 7; k++)
        assert_int_equal(h2.col.keyed_min[k], want[k] + 1);
    harness_fini(&h2);
    harness_fini(&h1);
    weir_test_tmpdir_remove(ckdir);
}

/* ---- checkpoints after tasks finish (docs/checkpointing.md) -------------------------------- */

/* Every line (without its '\n') of the committed (non-hidden) files of @p dir, sorted. */
typedef struct lines {
    char **v;
    size_t n, cap;
} lines_t;

static int cmp_line(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void lines_add_text(lines_t *l, const char *data, size_t len) {
    size_t b = 0;
    for (size_t i = 0; i < len; i++) {
        if (data[i] != '\n')
            continue;
        assert_int_equal(weir_array_grow((void **)&l->v, &l->cap, l->n + 1, sizeof *l->v, 64), 0);
        l->v[l->n] = malloc(i - b + 1);
        memcpy(l->v[l->n], data + b, i - b);
        l->v[l->n++][i - b] = 0;
        b = i + 1;
    }
    assert_int_equal(b, len); /* every line ends with '\n' */
}

static void lines_free(lines_t *l) {
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static void committed_lines(const char *dir, lines_t *out) {
    memset(out, 0, sizeof *out);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue; /* in progress / pending: invisible */
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        uint8_t *data;
        size_t len;
        assert_int_equal(weir_read_file(p, &data, &len), 0);
        lines_add_text(out, (const char *)data, len);
        free(data);
    }
    closedir(d);
    if (out->n > 1)
        qsort(out->v, out->n, sizeof *out->v, cmp_line);
}

typedef struct commit_wait {
    const char *dir;
    const char *line; /* wanted among the committed lines */
    size_t n;         /* wanted number of committed lines (0: any) */
} commit_wait_t;

static bool lines_committed(void *arg) {
    commit_wait_t *w = arg;
    lines_t l;
    committed_lines(w->dir, &l);
    bool found = false;
    for (size_t i = 0; i < l.n && !found; i++)
        found = strcmp(l.v[i], w->line) == 0;
    bool ok = found && (!w->n || l.n >= w->n);
    lines_free(&l);
    return ok;
}

/* The file source's byte offset in a (lines -> sink) chain's op state [[file, offset], sink]. */
static uint64_t file_source_offset(const ack_t *a) {
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    uint64_t pos = UINT64_MAX;
    if (msgpack_unpack_next(&u, (const char *)a->op_state, a->op_len, &off) ==
            MSGPACK_UNPACK_SUCCESS &&
        u.data.type == MSGPACK_OBJECT_ARRAY && u.data.via.array.size == 2) {
        msgpack_object e = u.data.via.array.ptr[0];
        if (e.type == MSGPACK_OBJECT_ARRAY && e.via.array.size == 2 &&
            e.via.array.ptr[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
            e.via.array.ptr[0].via.u64 == 0 &&
            e.via.array.ptr[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            pos = e.via.array.ptr[1].via.u64;
    }
    msgpack_unpacked_destroy(&u);
    return pos;
}

/* A subtask that finished early is part of later checkpoints with its final snapshot, and its
 * 2PC sink commits on the first of them that completes, long before the job ends. One file:
 * line 1 is longer than half of it, so (split by byte range, p 2) subtask 0 reads line 1 only
 * and finishes at once, while subtask 1 streams the short lines (rate-limited). The oracle is the
 * input file itself. */
static void test_finished_subtask_commits(void **state) {
    (void)state;
    harness_t h;
    harness_init(&h, 1);
    h.ck_mode = WEIR_CHECKPOINT_EXACTLY_ONCE;
    char in[1024], out[1024];
    snprintf(in, sizeof in, "%s/input.txt", h.tmp);
    snprintf(out, sizeof out, "%s/out", h.tmp);
    const int n_short = 300;
    size_t cap = 64 * 1024, len = 0;
    char *text = malloc(cap);
    for (int i = 0; i < 3000; i++)
        len += (size_t)snprintf(text + len, cap - len, "%sw%d", i ? " " : "", i);
    size_t line1_len = len;
    text[len++] = '\n';
    size_t short_start = len;
    for (int i = 0; i < n_short; i++)
        len += (size_t)snprintf(text + len, cap - len, "s%d x y\n", i);
    assert_true(line1_len + 1 > len / 2); /* subtask 1's range starts inside line 1 */
    assert_int_equal(weir_write_file_atomic(in, text, len), 0);
    char *line1 = strndup(text, line1_len);
    h.col.in_path = in;
    h.col.out_dir = out;
    h.col.rate = 400; /* 200 lines/s for subtask 1: about 1.5 s */
    start_job(&h, build_copy_lines, 0, 1);
    weir_task_t *src[2] = {NULL, NULL};
    for (int i = 0; i < h.st.n_tasks; i++)
        src[weir_task_subtask(h.st.tasks[i])] = h.st.tasks[i];
    assert_non_null(src[0]);
    assert_non_null(src[1]);

    /* subtask 0 reaches its end at once: final snapshot; subtask 1 still streams */
    assert_int_equal(wait_acks(&h, 0, true, 1), 1);
    assert_non_null(find_ack(h.acks, h.n_acks, 0, 0, 0, true));
    /* checkpoint 1: the finished subtask ignores the trigger (its final snapshot stands for it,
     * the coordinator counts it); the running one snapshots */
    weir_task_trigger(src[0], 1, weir_wall_ms(), WEIR_CK_CHECKPOINT, NULL);
    weir_task_trigger(src[1], 1, weir_wall_ms(), WEIR_CK_CHECKPOINT, NULL);
    assert_int_equal(wait_acks(&h, 1, false, 1), 1);
    const ack_t *a1 = find_ack(h.acks, h.n_acks, 0, 1, 1, false);
    assert_non_null(a1);
    uint64_t off1 = file_source_offset(a1);
    assert_true(off1 >= short_start && off1 < len); /* inside the short lines */
    weir_sleep_ns(50000000);
    assert_null(find_ack(h.acks, h.n_acks, 0, 0, 1, false));
    assert_null(find_ack(h.acks, h.n_acks, 0, 1, 0, true)); /* subtask 1 has not finished */

    /* checkpoint 1 completes: subtask 0's final epoch (line 1) is committed now, subtask 1's
     * epoch up to the barrier too; nobody finishes before the final notify */
    weir_task_notify(src[0], 1, false);
    weir_task_notify(src[1], 1, false);
    lines_t got, want = {0};
    lines_add_text(&want, text, (size_t)off1); /* line 1 + the short lines before the barrier */
    qsort(want.v, want.n, sizeof *want.v, cmp_line);
    commit_wait_t w = {.dir = out, .line = line1, .n = want.n};
    assert_true(weir_test_wait_until(lines_committed, &w, 10000, 5));
    committed_lines(out, &got);
    assert_int_equal(got.n, want.n);
    for (size_t i = 0; i < got.n; i++)
        assert_string_equal(got.v[i], want.v[i]);
    size_t n_after_1 = got.n;
    lines_free(&got);
    lines_free(&want);
    assert_int_equal(weir_task_state(src[0]), WEIR_TASK_RUNNING);

    /* subtask 1 ends; a late notify of checkpoint 1, which it snapshotted itself, must not
     * commit its final epoch (nor does a repeated one change subtask 0's output) */
    assert_int_equal(wait_acks(&h, 0, true, 2), 2);
    weir_task_notify(src[1], 1, false);
    weir_task_notify(src[0], 1, false);
    weir_sleep_ns(100000000);
    committed_lines(out, &got);
    assert_int_equal(got.n, n_after_1);
    lines_free(&got);
    pthread_mutex_lock(&h.st.mu);
    int nf = h.st.n_final;
    pthread_mutex_unlock(&h.st.mu);
    assert_int_equal(nf, 0);

    /* the final checkpoint: everything committed, exactly the input */
    weir_task_notify(src[0], 2, true);
    weir_task_notify(src[1], 2, true);
    wait_final(&h);
    check_all(&h, WEIR_TASK_FINISHED);
    committed_lines(out, &got);
    lines_add_text(&want, text, len);
    qsort(want.v, want.n, sizeof *want.v, cmp_line);
    assert_int_equal(got.n, (size_t)n_short + 1);
    assert_int_equal(got.n, want.n);
    for (size_t i = 0; i < got.n; i++)
        assert_string_equal(got.v[i], want.v[i]);
    lines_free(&got);
    lines_free(&want);
    free(line1);
    free(text);
    harness_fini(&h);
}

/* ---- savepoints and stop-with-savepoint (docs/checkpointing.md) ------------------------------ */

static bool path_exists(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static bool path_exists(const char *fmt, ...) {
    char p[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p, sizeof p, fmt, ap);
    va_end(ap);
    struct stat st;
    return stat(p, &st) == 0;
}

/* The size of file "<dir>/<name>" (stat: the file system is the oracle), -1 when missing. */
static int64_t file_size(const char *dir, const char *name) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode) ? (int64_t)st.st_size : -1;
}

/* Checks that every entry of the handle's array @p key is a file of @p dir with the size the
 * handle records. @returns the number of entries marked "sst": true. */
static size_t check_files(json_t *h, const char *key, const char *dir) {
    json_t *arr = json_object_get(h, key);
    assert_true(json_is_array(arr));
    size_t i, n_sst = 0;
    json_t *f;
    json_array_foreach(arr, i, f) {
        const char *name = json_string_value(json_object_get(f, "name"));
        assert_non_null(name);
        int64_t want = (int64_t)json_integer_value(json_object_get(f, "size"));
        if (file_size(dir, name) != want)
            fail_msg("%s/%s: %lld bytes, the handle says %lld", dir, name,
                     (long long)file_size(dir, name), (long long)want);
        n_sst += json_is_true(json_object_get(f, "sst")) ? 1 : 0;
    }
    return n_sst;
}

/* A savepoint's keyed handle is self-contained: every file (SSTs too) in <target>/<v>-<s>/. */
static void check_self_contained(const char *handle, const char *target, uint32_t v, uint32_t s) {
    assert_non_null(handle);
    json_error_t je;
    json_t *h = json_loads(handle, 0, &je);
    assert_non_null(h);
    const char *layout = json_string_value(json_object_get(h, "layout"));
    if (!layout || strcmp(layout, "self-contained") != 0)
        fail_msg("keyed handle of %u-%u is not self-contained: %s", v, s, handle);
    assert_int_equal(json_array_size(json_object_get(h, "shared")), 0);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%u-%u", target, v, s);
    assert_true(check_files(h, "private", dir) > 0); /* its SSTs are there, not in shared/ */
    json_decref(h);
}

/* A checkpoint's keyed handle names only files of the checkpoint directory, each with its size:
 * shared SSTs in <ck_dir>/shared/, the rest in <ck_dir>/chk-<n>/<v>-<s>/. */
static void check_checkpoint_handle(const char *handle, const char *ck_dir, uint64_t n, uint32_t v,
                                    uint32_t s) {
    assert_non_null(handle);
    json_error_t je;
    json_t *h = json_loads(handle, 0, &je);
    assert_non_null(h);
    assert_null(json_object_get(h, "layout"));
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/shared", ck_dir);
    check_files(h, "shared", dir);
    assert_true(json_array_size(json_object_get(h, "shared")) > 0);
    snprintf(dir, sizeof dir, "%s/chk-%llu/%u-%u", ck_dir, (unsigned long long)n, v, s);
    check_files(h, "private", dir);
    json_decref(h);
}

static weir_task_t *task_of(harness_t *h, uint32_t v, uint32_t s) {
    for (int i = 0; i < h->st.n_tasks; i++)
        if (weir_task_vertex(h->st.tasks[i]) == v && weir_task_subtask(h->st.tasks[i]) == s)
            return h->st.tasks[i];
    fail_msg("no task %u.%u", v, s);
    return NULL;
}

/* The keyed handle of the ACK of @p id by subtask @p v.@p s (the test fails without one). */
static const char *handle_of(harness_t *h, uint32_t v, uint32_t s, uint64_t id) {
    pthread_mutex_lock(&h->ack_mu);
    const ack_t *a = find_ack(h->acks, h->n_acks, v, s, id, false);
    pthread_mutex_unlock(&h->ack_mu);
    if (!a || !a->handle)
        fail_msg("no ACK of %llu with a keyed handle from subtask %u.%u", (unsigned long long)id, v,
                 s);
    return a->handle; /* ACKs are only appended: the entry stays */
}

static bool has_ack(harness_t *h, uint32_t v, uint32_t s, uint64_t id) {
    pthread_mutex_lock(&h->ack_mu);
    bool found = find_ack(h->acks, h->n_acks, v, s, id, false) != NULL;
    pthread_mutex_unlock(&h->ack_mu);
    return found;
}

/* ---- function lifecycle (include/weir/weir.h, "Function lifecycle") ----------------------------
 */

#define LC_MAX 64

typedef struct lc_event {
    char op[16];
    char what; /* 'o' open, 'c' close */
    int why;   /* close reason */
    uint32_t subtask, attempt;
    bool final_acked; /* at close: this subtask's final snapshot was already ACKed */
    int argc;
    char arg0[16];
    int state_rc; /* a keyed-state call inside the callback */
} lc_event_t;

typedef struct lc_log {
    pthread_mutex_t mu;
    harness_t *h;
    lc_event_t ev[LC_MAX];
    int n;
    const char *fail_open; /* the operator whose open returns 1 */
    uint64_t fail_at;      /* the map weir_fails at this value (0 = never) */
    bool emit_in_close;    /* the sink emits from close */
} lc_log_t;

typedef struct lc_udata {
    collected_t *c;
    const char *name;
    uint32_t vertex;
} lc_udata_t;

static void lc_record(lc_udata_t *u, weir_ctx_t *ctx, char what, int why) {
    lc_log_t *log = u->c->lc;
    uint32_t s = weir_subtask_index(ctx);
    bool acked = false;
    if (what == 'c') {
        pthread_mutex_lock(&log->h->ack_mu);
        acked = find_ack(log->h->acks, log->h->n_acks, u->vertex, s, 0, true) != NULL;
        pthread_mutex_unlock(&log->h->ack_mu);
    }
    int argc = -1;
    const char *const *args = weir_job_args(ctx, &argc);
    const void *v;
    uint32_t len;
    int state_rc = weir_value_get(ctx, 0, &v, &len);
    pthread_mutex_lock(&log->mu);
    if (log->n < LC_MAX) {
        lc_event_t *e = &log->ev[log->n++];
        snprintf(e->op, sizeof e->op, "%s", u->name);
        e->what = what;
        e->why = why;
        e->subtask = s;
        e->attempt = weir_attempt_number(ctx);
        e->final_acked = acked;
        e->argc = argc;
        snprintf(e->arg0, sizeof e->arg0, "%s", argc > 0 ? args[0] : "");
        e->state_rc = state_rc;
    }
    pthread_mutex_unlock(&log->mu);
}

static int lc_open(weir_ctx_t *ctx, void *udata) {
    lc_udata_t *u = udata;
    lc_record(u, ctx, 'o', -1);
    return u->c->lc->fail_open && strcmp(u->c->lc->fail_open, u->name) == 0 ? 1 : 0;
}

static void lc_close(weir_ctx_t *ctx, weir_close_reason_t why, void *udata) {
    lc_udata_t *u = udata;
    lc_record(u, ctx, 'c', (int)why);
    if (u->c->lc->emit_in_close && u->vertex == 1) {
        msgpack_pack_nil(weir_packer(ctx));
        weir_emit_packed(ctx, 0, NULL, 0);
    }
}

static void lc_map_fn(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    lc_udata_t *u = udata;
    if (u->c->lc->fail_at && value_of(ctx, in) == u->c->lc->fail_at)
        weir_fail(ctx, "boom at %llu", (unsigned long long)u->c->lc->fail_at);
    weir_emit(ctx, in);
}

static void lc_sink_fn(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    lc_udata_t *u = udata;
    collect_fn(ctx, in, u->c);
}

static lc_udata_t *lc_ud(weir_job_t *job, collected_t *c, const char *name, uint32_t vertex) {
    lc_udata_t *u = weir_job_alloc(job, sizeof *u);
    *u = (lc_udata_t){c, name, vertex};
    return u;
}

/* generator(p2, n; unbounded when 0; with open/close) -> map (chained, open/close) -> rebalance
 * -> sink (p1, open/close); job arguments "lc.so alpha beta" as define() would have had them */
static weir_job_t *build_lifecycle(collected_t *c, uint64_t n) {
    weir_job_t *job = weir_graph_new("lifecycle", 2);
    const char *argv[] = {"lc.so", "alpha", "beta"};
    job->argc = 3;
    job->argv = weir_job_alloc(job, 4 * sizeof(char *));
    for (int i = 0; i < 3; i++)
        job->argv[i] = weir_job_strdup(job, argv[i]);
    lc_udata_t *ug = lc_ud(job, c, "gen", 0);
    weir_stream_t *s =
        weir_set_uid(weir_source_generator(job, "gen", n, n ? 0 : 2000, gen_fn, ug), "gen");
    weir_set_lifecycle(s, lc_open, lc_close);
    lc_udata_t *um = lc_ud(job, c, "map", 0);
    s = weir_set_lifecycle(weir_map(s, "map", lc_map_fn, um), lc_open, lc_close);
    s = weir_rebalance(s);
    lc_udata_t *us = lc_ud(job, c, "sink", 1);
    s = weir_set_lifecycle(weir_sink(s, "sink", lc_sink_fn, us), lc_open, lc_close);
    weir_set_parallelism(s, 1);
    return job;
}

static void lc_init(harness_t *h, lc_log_t *log) {
    memset(log, 0, sizeof *log);
    pthread_mutex_init(&log->mu, NULL);
    log->h = h;
    h->col.lc = log;
}

/* The events of subtask @p s of operators @p ops (a vertex's chain) as text: "o:gen o:map
 * c:map:0 c:gen:0" (close with its reason); every event is checked for attempt and arguments. */
static void lc_seq(harness_t *h, lc_log_t *log, const char *const *ops, uint32_t s, char *out,
                   size_t cap) {
    size_t off = 0;
    out[0] = 0;
    pthread_mutex_lock(&log->mu);
    for (int i = 0; i < log->n; i++) {
        const lc_event_t *e = &log->ev[i];
        bool mine = false;
        for (int k = 0; ops[k]; k++)
            mine |= strcmp(ops[k], e->op) == 0;
        if (!mine || e->subtask != s)
            continue;
        assert_int_equal(e->attempt, h->attempt);
        assert_int_equal(e->argc, 2);
        assert_string_equal(e->arg0, "alpha");
        assert_int_equal(e->state_rc, WEIR_EINVAL); /* no keyed state in open/close */
        if (e->what == 'o')
            off += (size_t)snprintf(out + off, cap - off, "%so:%s", off ? " " : "", e->op);
        else
            off +=
                (size_t)snprintf(out + off, cap - off, "%sc:%s:%d", off ? " " : "", e->op, e->why);
    }
    pthread_mutex_unlock(&log->mu);
}

static const char *const LC_V0[] = {"gen", "map", NULL};
static const char *const LC_V1[] = {"sink", NULL};

/* End of input with checkpointing on: every subtask opens head to tail once, closes tail to head
 * once with FINISHED, before its final snapshot is ACKed (the sink's close flushes into the final
 * checkpoint); the attempt number and the job arguments are visible. */
static void test_lifecycle_finished(void **state) {
    (void)state;
    harness_t h;
    harness_init(&h, 1);
    lc_log_t log;
    lc_init(&h, &log);
    h.attempt = 7;
    h.ck_mode = WEIR_CHECKPOINT_EXACTLY_ONCE;
    const uint64_t n = 3000;
    start_job(&h, build_lifecycle, n, 1);
    assert_int_equal(wait_acks(&h, 0, true, 3), 3);
    char seq[256];
    for (uint32_t s = 0; s < 2; s++) {
        lc_seq(&h, &log, LC_V0, s, seq, sizeof seq);
        assert_string_equal(seq, "o:gen o:map c:map:0 c:gen:0");
    }
    lc_seq(&h, &log, LC_V1, 0, seq, sizeof seq);
    assert_string_equal(seq, "o:sink c:sink:0");
    pthread_mutex_lock(&log.mu);
    for (int i = 0; i < log.n; i++)
        if (log.ev[i].what == 'c')
            assert_false(log.ev[i].final_acked);
    int n_ev = log.n;
    pthread_mutex_unlock(&log.mu);
    for (int i = 0; i < h.st.n_tasks; i++)
        weir_task_notify(h.st.tasks[i], 1, true);
    wait_final(&h);
    check_all(&h, WEIR_TASK_FINISHED);
    assert_int_equal(h.col.count, n);
    assert_int_equal(log.n, n_ev); /* never twice */
    harness_fini(&h);
}

/* A later operator's open fails: the subtask fails naming it, and both operators whose open ran
 * close with FAILED, tail to head; the sink (another subtask, canceled) closes with CANCELED. */
static void test_lifecycle_open_fails(void **state) {
    (void)state;
    harness_t h;
    harness_init(&h, 1);
    lc_log_t log;
    lc_init(&h, &log);
    log.fail_open = "map";
    start_job(&h, build_lifecycle, 0, 1);
    assert_true(weir_test_wait_until(some_task_failed, &h, 30000, 5));
    for (int i = 0; i < h.st.n_tasks; i++)
        weir_task_cancel(h.st.tasks[i]);
    wait_final(&h);
    char seq[256];
    for (int i = 0; i < h.st.n_tasks; i++) {
        if (weir_task_vertex(h.st.tasks[i]) == 0) {
            assert_int_equal(h.st.final[i], WEIR_TASK_FAILED);
            assert_string_equal(h.st.message[i], "map: open failed (returned 1)");
        } else {
            assert_int_equal(h.st.final[i], WEIR_TASK_CANCELED);
        }
    }
    for (uint32_t s = 0; s < 2; s++) {
        lc_seq(&h, &log, LC_V0, s, seq, sizeof seq);
        assert_string_equal(seq, "o:gen o:map c:map:1 c:gen:1");
    }
    lc_seq(&h, &log, LC_V1, 0, seq, sizeof seq);
    assert_string_equal(seq, "o:sink c:sink:2");
    assert_int_equal(h.col.count, 0); /* no record before every open */
    harness_fini(&h);
}

/* weir_fail in the map: its subtask closes FAILED (map, then the generator); the other source
 * subtask and the sink, canceled, close CANCELED. */
static void test_lifecycle_fail(void **state) {
    (void)state;
    harness_t h;
    harness_init(&h, 1);
    lc_log_t log;
    lc_init(&h, &log);
    log.fail_at = 100; /* even: subtask 0 of the generator emits it */
    start_job(&h, build_lifecycle, 0, 1);
    assert_true(weir_test_wait_until(some_task_failed, &h, 30000, 5));
    for (int i = 0; i < h.st.n_tasks; i++)
        weir_task_cancel(h.st.tasks[i]);
    wait_final(&h);
    char seq[256];
    lc_seq(&h, &log, LC_V0, 0, seq, sizeof seq);
    assert_string_equal(seq, "o:gen o:map c:map:1 c:gen:1");
    lc_seq(&h, &log, LC_V0, 1, seq, sizeof seq);
    assert_string_equal(seq, "o:gen o:map c:map:2 c:gen:2");
    lc_seq(&h, &log, LC_V1, 0, seq, sizeof seq);
    assert_string_equal(seq, "o:sink c:sink:2");
    assert_string_equal(h.st.message[0], "map: boom at 100");
    harness_fini(&h);
}

/* Cancel: every operator closes CANCELED once, tail to head. */
static void test_lifecycle_cancel(void **state) {
    (void)state;
    harness_t h;
    harness_init(&h, 2);
    lc_log_t log;
    lc_init(&h, &log);
    start_job(&h, build_lifecycle, 0, 2);
    wait_running(&h);
    weir_sleep_ns(100000000);
    cancel_and_wait(&h);
    char seq[256];
    for (uint32_t s = 0; s < 2; s++) {
        lc_seq(&h, &log, LC_V0, s, seq, sizeof seq);
        assert_string_equal(seq, "o:gen o:map c:map:2 c:gen:2");
    }
    lc_seq(&h, &log, LC_V1, 0, seq, sizeof seq);
    assert_string_equal(seq, "o:sink c:sink:2");
    assert_true(h.col.count > 0);
    harness_fini(&h);
}

/* Stop-with-savepoint: the subtasks end FINISHED without end of input, and every operator closes
 * CANCELED once (no FINISHED: the input did not end). */
static void test_lifecycle_stop(void **state) {
    (void)state;
    harness_t h;
    harness_init(&h, 1);
    lc_log_t log;
    lc_init(&h, &log);
    h.ck_mode = WEIR_CHECKPOINT_EXACTLY_ONCE;
    char sp[4096];
    snprintf(sp, sizeof sp, "%s/savepoint-1", h.tmp);
    start_job(&h, build_lifecycle, 0, 1);
    wait_running(&h);
    weir_sleep_ns(50000000);
    for (uint32_t s = 0; s < 2; s++)
        weir_task_trigger(task_of(&h, 0, s), 1, weir_wall_ms(), WEIR_CK_STOP, sp);
    assert_int_equal(wait_acks(&h, 1, false, 3), 3);
    for (int i = 0; i < h.st.n_tasks; i++)
        weir_task_notify(h.st.tasks[i], 1, true);
    wait_final(&h);
    check_all(&h, WEIR_TASK_FINISHED);
    char seq[256];
    for (uint32_t s = 0; s < 2; s++) {
        lc_seq(&h, &log, LC_V0, s, seq, sizeof seq);
        assert_string_equal(seq, "o:gen o:map c:map:2 c:gen:2");
    }
    lc_seq(&h, &log, LC_V1, 0, seq, sizeof seq);
    assert_string_equal(seq, "o:sink c:sink:2");
    harness_fini(&h);
}

/* An emit from close fails the subtask with one line naming the operator (the operator after it
 * is already closed); close still ran exactly once. */
static void test_lifecycle_emit_in_close(void **state) {
    (void)state;
    harness_t h;
    harness_init(&h, 1);
    lc_log_t log;
    lc_init(&h, &log);
    log.emit_in_close = true;
    start_job(&h, build_lifecycle, 100, 1);
    wait_final(&h);
    for (int i = 0; i < h.st.n_tasks; i++) {
        if (weir_task_vertex(h.st.tasks[i]) == 1) {
            assert_int_equal(h.st.final[i], WEIR_TASK_FAILED);
            assert_string_equal(h.st.message[i],
                                "sink: weir_emit in open or close: emit from the operator's "
                                "function, not from its lifecycle callbacks");
        } else {
            assert_int_equal(h.st.final[i], WEIR_TASK_FINISHED);
        }
    }
    char seq[256];
    lc_seq(&h, &log, LC_V1, 0, seq, sizeof seq);
    assert_string_equal(seq, "o:sink c:sink:0");
    harness_fini(&h);
}

/* Savepoint barriers go through two aligned keyed vertices in a row (2 inputs each) with their
 * kind and target: every keyed subtask, the sink's vertex included, writes its self-contained
 * files into <target>/<vertex>-<subtask>/ and nothing into the checkpoint directory. Exactly-once
 * also takes the "abandon" path: savepoint 2 reaches the counts on one channel only, savepoint 3
 * abandons it and is the one forwarded, with its own target. */
static void run_savepoint_barriers(weir_checkpoint_mode_t mode) {
    harness_t h;
    harness_init(&h, 2);
    char ck[4096], sp[3][4096];
    snprintf(ck, sizeof ck, "%s/ck", h.tmp);
    for (int i = 0; i < 3; i++)
        snprintf(sp[i], sizeof sp[i], "%s/sp/savepoint-012345-%012d", h.tmp, i + 1);
    h.ck_mode = mode;
    h.ck_dir = ck;
    start_job(&h, build_keyed_twice, 0, 2);
    wait_running(&h);
    weir_sleep_ns(50000000);
    weir_task_t *src[2] = {task_of(&h, 0, 0), task_of(&h, 0, 1)};

    /* savepoint 1: source 0 first, source 1 15 ms later (alignment holds channel 0 meanwhile) */
    weir_task_trigger(src[0], 1, weir_wall_ms(), WEIR_CK_SAVEPOINT, sp[0]);
    weir_sleep_ns(15000000);
    weir_task_trigger(src[1], 1, weir_wall_ms(), WEIR_CK_SAVEPOINT, sp[0]);
    assert_int_equal(wait_acks(&h, 1, false, 5), 5);
    for (uint32_t s = 0; s < 2; s++) {
        check_self_contained(handle_of(&h, 1, s, 1), sp[0], 1, s);
        pthread_mutex_lock(&h.ack_mu);
        const ack_t *a = find_ack(h.acks, h.n_acks, 0, s, 1, false);
        pthread_mutex_unlock(&h.ack_mu);
        assert_true(a && !a->handle); /* the sources are stateless */
        assert_false(path_exists("%s/0-%u", sp[0], s));
    }
    /* vertex 2 (recount + sink) got barrier 1 from both counts, kind and target intact */
    check_self_contained(handle_of(&h, 2, 0, 1), sp[0], 2, 0);
    assert_false(path_exists("%s/chk-1", ck)); /* a savepoint writes nothing there */
    assert_false(path_exists("%s/shared", ck));

    if (mode == WEIR_CHECKPOINT_EXACTLY_ONCE) {
        /* savepoint 2 from source 0 only: the counts align it on one channel ... */
        weir_task_trigger(src[0], 2, weir_wall_ms(), WEIR_CK_SAVEPOINT, sp[1]);
        weir_sleep_ns(50000000);
        /* ... until savepoint 3 arrives from source 1 and abandons it */
        weir_task_trigger(src[1], 3, weir_wall_ms(), WEIR_CK_SAVEPOINT, sp[2]);
        weir_sleep_ns(15000000);
        weir_task_trigger(src[0], 3, weir_wall_ms(), WEIR_CK_SAVEPOINT, sp[2]);
        assert_int_equal(wait_acks(&h, 3, false, 5), 5);
        assert_true(has_ack(&h, 0, 0, 2)); /* source 0 snapshotted 2 */
        for (uint32_t s = 0; s < 2; s++) {
            assert_false(has_ack(&h, 1, s, 2)); /* abandoned */
            assert_false(path_exists("%s/1-%u", sp[1], s));
        }
        assert_false(has_ack(&h, 2, 0, 2));
        assert_false(path_exists("%s", sp[1])); /* nobody wrote into savepoint 2's target */
        for (uint32_t s = 0; s < 2; s++)
            check_self_contained(handle_of(&h, 1, s, 3), sp[2], 1, s);
        check_self_contained(handle_of(&h, 2, 0, 3), sp[2], 2, 0);
    }
    cancel_and_wait(&h);
    harness_fini(&h);
}

static void test_savepoint_barriers_exactly_once(void **state) {
    (void)state;
    run_savepoint_barriers(WEIR_CHECKPOINT_EXACTLY_ONCE);
}

static void test_savepoint_barriers_at_least_once(void **state) {
    (void)state;
    run_savepoint_barriers(WEIR_CHECKPOINT_AT_LEAST_ONCE);
}

/* The committed lines of the file sink as "g<index>" texts equal exactly what the two generator
 * subtasks emitted before positions k[0], k[1] (subtask s of 2 emits s, s + 2, ...). */
static void check_committed_prefix(const char *out, const uint64_t k[2]) {
    lines_t got, want = {0};
    committed_lines(out, &got);
    for (uint32_t s = 0; s < 2; s++) {
        for (uint64_t j = 0; j < k[s]; j++) {
            char line[32];
            int n = snprintf(line, sizeof line, "g%llu\n", (unsigned long long)(s + 2 * j));
            lines_add_text(&want, line, (size_t)n);
        }
    }
    if (want.n > 1)
        qsort(want.v, want.n, sizeof *want.v, cmp_line);
    if (got.n != want.n)
        fail_msg("%zu lines committed, expected %zu", got.n, want.n);
    for (size_t i = 0; i < got.n; i++)
        assert_string_equal(got.v[i], want.v[i]);
    lines_free(&got);
    lines_free(&want);
}

typedef struct count_wait {
    const char *dir;
    size_t n;
} count_wait_t;

static bool n_committed(void *arg) {
    count_wait_t *w = arg;
    lines_t l;
    committed_lines(w->dir, &l);
    bool ok = l.n >= w->n;
    lines_free(&l);
    return ok;
}

/* The generators' positions in their snapshots of @p id (each equal to what the runtime counted
 * it emitted at that moment). */
static void positions_at(harness_t *h, uint64_t id, uint64_t k[2]) {
    for (uint32_t s = 0; s < 2; s++) {
        pthread_mutex_lock(&h->ack_mu);
        const ack_t *a = find_ack(h->acks, h->n_acks, 0, s, id, false);
        pthread_mutex_unlock(&h->ack_mu);
        assert_non_null(a); /* ACKs are only appended: the entry stays */
        k[s] = gen_position(a);
        assert_int_equal(k[s], a->records_out);
    }
}

/* Savepoints commit nothing (they are never notified); the next checkpoint's notify commits what
 * they pre-committed. A stop-with-savepoint: the sources emit nothing after its barrier (their
 * counters stand still, the sink received exactly that), the job keeps running until the stop's
 * final notify, which commits everything and finishes every subtask without end of input (no
 * final snapshot is acked). The committed output is exactly what the sources emitted. */
static void test_stop_with_savepoint(void **state) {
    (void)state;
    harness_t h;
    harness_init(&h, 2);
    h.ck_mode = WEIR_CHECKPOINT_EXACTLY_ONCE;
    char out[4096], sp2[4096], sp4[4096];
    snprintf(out, sizeof out, "%s/out", h.tmp);
    snprintf(sp2, sizeof sp2, "%s/savepoint-2", h.tmp);
    snprintf(sp4, sizeof sp4, "%s/savepoint-4", h.tmp);
    h.col.out_dir = out;
    start_job(&h, build_gen_file_sink, 0, 2);
    wait_running(&h);
    weir_sleep_ns(100000000);
    weir_task_t *src[2] = {task_of(&h, 0, 0), task_of(&h, 0, 1)}, *sink = task_of(&h, 1, 0);
    uint64_t k[2];

    /* checkpoint 1, notified: its epoch is committed */
    for (int s = 0; s < 2; s++)
        weir_task_trigger(src[s], 1, weir_wall_ms(), WEIR_CK_CHECKPOINT, NULL);
    assert_int_equal(wait_acks(&h, 1, false, 3), 3);
    for (int i = 0; i < h.st.n_tasks; i++)
        weir_task_notify(h.st.tasks[i], 1, false);
    positions_at(&h, 1, k);
    count_wait_t cw = {.dir = out, .n = k[0] + k[1]};
    assert_true(weir_test_wait_until(n_committed, &cw, 10000, 5));
    check_committed_prefix(out, k);

    /* savepoint 2: the sink pre-commits, nothing is notified, nothing more is committed */
    weir_sleep_ns(50000000);
    for (int s = 0; s < 2; s++)
        weir_task_trigger(src[s], 2, weir_wall_ms(), WEIR_CK_SAVEPOINT, sp2);
    assert_int_equal(wait_acks(&h, 2, false, 3), 3);
    weir_sleep_ns(100000000);
    check_committed_prefix(out, k);

    /* checkpoint 3's notify commits savepoint 2's transaction and its own */
    for (int s = 0; s < 2; s++)
        weir_task_trigger(src[s], 3, weir_wall_ms(), WEIR_CK_CHECKPOINT, NULL);
    assert_int_equal(wait_acks(&h, 3, false, 3), 3);
    for (int i = 0; i < h.st.n_tasks; i++)
        weir_task_notify(h.st.tasks[i], 3, false);
    positions_at(&h, 3, k);
    cw.n = k[0] + k[1];
    assert_true(weir_test_wait_until(n_committed, &cw, 10000, 5));
    check_committed_prefix(out, k);

    /* stop-with-savepoint 4: source 0 stops first, source 1 runs on for 20 ms */
    weir_task_trigger(src[0], 4, weir_wall_ms(), WEIR_CK_STOP, sp4);
    weir_sleep_ns(20000000);
    weir_task_trigger(src[1], 4, weir_wall_ms(), WEIR_CK_STOP, sp4);
    assert_int_equal(wait_acks(&h, 4, false, 3), 3);
    uint64_t k4[2];
    positions_at(&h, 4, k4);
    weir_sleep_ns(200000000); /* the sources would emit 800 more records meanwhile */
    for (uint32_t s = 0; s < 2; s++) {
        weir_task_metrics_t m;
        weir_task_get_metrics(src[s], &m);
        assert_int_equal(m.records_out, k4[s]); /* nothing after the barrier */
        assert_int_equal(weir_task_state(src[s]), WEIR_TASK_RUNNING);
    }
    weir_task_metrics_t sm;
    weir_task_get_metrics(sink, &sm);
    assert_int_equal(sm.records_in, k4[0] + k4[1]);
    assert_int_equal(weir_task_state(sink), WEIR_TASK_RUNNING);
    pthread_mutex_lock(&h.st.mu);
    int nf = h.st.n_final;
    pthread_mutex_unlock(&h.st.mu);
    assert_int_equal(nf, 0);
    check_committed_prefix(out, k); /* the stop's transaction is pre-committed, not committed */

    /* the stop's final notify: everything committed, every subtask FINISHED */
    for (int i = 0; i < h.st.n_tasks; i++)
        weir_task_notify(h.st.tasks[i], 4, true);
    wait_final(&h);
    check_all(&h, WEIR_TASK_FINISHED);
    check_committed_prefix(out, k4);
    /* no end of input, no final snapshot: no final ACK (the threads ended: no lock needed) */
    for (int i = 0; i < h.n_acks; i++)
        assert_false(h.acks[i].final);
    harness_fini(&h);
}

/* A savepoint's keyed SSTs are never confirmed, and neither is anything at a notify of a
 * savepoint's id (the job manager sends none, but the rule must not depend on it): checkpoint 1
 * is uploaded but never completes and its shared files are deleted (as the job manager's garbage
 * collection may), then savepoint 2 is taken and notified, then checkpoint 3: its handle must
 * name only files of the checkpoint directory that exist with their sizes. Had the notify of 2
 * confirmed (confirm(n) confirms every pending upload <= n), checkpoint 3 would reference the
 * deleted SSTs of 1 without uploading them. */
static void test_savepoint_never_confirms(void **state) {
    (void)state;
    harness_t h;
    harness_init(&h, 1);
    char ck[2048], sp[2048], dir[4096];
    snprintf(ck, sizeof ck, "%s/ck", h.tmp);
    snprintf(sp, sizeof sp, "%s/savepoint-2", h.tmp);
    h.ck_mode = WEIR_CHECKPOINT_EXACTLY_ONCE;
    h.ck_dir = ck;
    start_job(&h, build_keyed_counts, 0, 1);
    wait_running(&h);
    weir_sleep_ns(100000000);
    for (uint32_t s = 0; s < 2; s++)
        weir_task_trigger(task_of(&h, 0, s), 1, weir_wall_ms(), WEIR_CK_CHECKPOINT, NULL);
    assert_int_equal(wait_acks(&h, 1, false, 5), 5);
    /* checkpoint 1 expires: never notified, its files collected */
    snprintf(dir, sizeof dir, "%s/shared", ck);
    assert_true(path_exists("%s", dir));
    assert_int_equal(weir_rmtree(dir), 0);
    snprintf(dir, sizeof dir, "%s/chk-1", ck);
    assert_int_equal(weir_rmtree(dir), 0);

    weir_sleep_ns(50000000);
    for (uint32_t s = 0; s < 2; s++)
        weir_task_trigger(task_of(&h, 0, s), 2, weir_wall_ms(), WEIR_CK_SAVEPOINT, sp);
    assert_int_equal(wait_acks(&h, 2, false, 5), 5);
    for (uint32_t s = 0; s < 2; s++)
        check_self_contained(handle_of(&h, 1, s, 2), sp, 1, s);
    assert_false(path_exists("%s/shared", ck));
    for (int i = 0; i < h.st.n_tasks; i++)
        weir_task_notify(h.st.tasks[i], 2, false);

    weir_sleep_ns(50000000);
    for (uint32_t s = 0; s < 2; s++)
        weir_task_trigger(task_of(&h, 0, s), 3, weir_wall_ms(), WEIR_CK_CHECKPOINT, NULL);
    assert_int_equal(wait_acks(&h, 3, false, 5), 5);
    for (uint32_t s = 0; s < 2; s++)
        check_checkpoint_handle(handle_of(&h, 1, s, 3), ck, 3, 1, s);
    cancel_and_wait(&h);
    harness_fini(&h);
}

/* Every file under @p dir (recursively) with its size and modification time, sorted: what a
 * restore must leave as it was. */
static void tree_listing(const char *dir, lines_t *out) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        struct stat st;
        assert_int_equal(stat(p, &st), 0);
        if (S_ISDIR(st.st_mode)) {
            tree_listing(p, out);
            continue;
        }
        char line[4200];
        int n = snprintf(line, sizeof line, "%s %lld %lld.%09ld\n", p, (long long)st.st_size,
                         (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
        lines_add_text(out, line, (size_t)n);
    }
    closedir(d);
    if (out->n > 1)
        qsort(out->v, out->n, sizeof *out->v, cmp_line);
}

/* A new job resumes from a savepoint (keyed restore document with the savepoint as base, no
 * claim): per key the counts go on from the savepoint, the savepoint's files are left exactly as
 * they were, and the new job's first checkpoint references only files of its own checkpoint
 * directory (complete on its own). */
static void test_restore_from_savepoint(void **state) {
    (void)state;
    harness_t h1;
    harness_init(&h1, 1);
    char ck1[2048], ck2[2048], sp[2048];
    snprintf(ck1, sizeof ck1, "%s/ck-old", h1.tmp);
    snprintf(ck2, sizeof ck2, "%s/ck-new", h1.tmp);
    snprintf(sp, sizeof sp, "%s/savepoint-012345-0123456789ab", h1.tmp);
    h1.ck_mode = WEIR_CHECKPOINT_EXACTLY_ONCE;
    h1.ck_dir = ck1;
    start_job(&h1, build_keyed_counts, 0, 1);
    wait_running(&h1);
    weir_sleep_ns(100000000);
    for (uint32_t s = 0; s < 2; s++)
        weir_task_trigger(task_of(&h1, 0, s), 1, weir_wall_ms(), WEIR_CK_SAVEPOINT, sp);
    assert_int_equal(wait_acks(&h1, 1, false, 5), 5);
    cancel_and_wait(&h1);
    for (uint32_t s = 0; s < 2; s++)
        check_self_contained(handle_of(&h1, 1, s, 1), sp, 1, s);
    uint64_t want[7] = {0};
    uint64_t k[2];
    positions_at(&h1, 1, k);
    for (uint32_t s = 0; s < 2; s++)
        for (uint64_t j = 0; j < k[s]; j++)
            want[(s + 2 * j) % 7]++;
    lines_t before, after;
    memset(&before, 0, sizeof before);
    memset(&after, 0, sizeof after);
    tree_listing(sp, &before);

    harness_t h2; /* another job: its own checkpoint directory */
    harness_init(&h2, 1);
    h2.ck_mode = WEIR_CHECKPOINT_EXACTLY_ONCE;
    h2.ck_dir = ck2;
    h2.restore_id = 1;
    h2.restore_from = h1.acks;
    h2.n_restore_from = h1.n_acks;
    h2.restore_savepoint = sp;
    start_job(&h2, build_keyed_counts, 0, 1);
    wait_running(&h2);
    weir_test_wait_until(all_keys_seen, &h2, 10000, 5);
    for (uint32_t s = 0; s < 2; s++)
        weir_task_trigger(task_of(&h2, 0, s), 2, weir_wall_ms(), WEIR_CK_CHECKPOINT, NULL);
    assert_int_equal(wait_acks(&h2, 2, false, 5), 5);
    cancel_and_wait(&h2);
    assert_false(h2.col.key_mismatch);
    for (int key = 0; key < 7; key++)
        assert_int_equal(h2.col.keyed_min[key], want[key] + 1);
    for (uint32_t s = 0; s < 2; s++)
        check_checkpoint_handle(handle_of(&h2, 1, s, 2), ck2, 2, 1, s);
    tree_listing(sp, &after);
    assert_int_equal(after.n, before.n);
    for (size_t i = 0; i < after.n; i++)
        assert_string_equal(after.v[i], before.v[i]);
    lines_free(&before);
    lines_free(&after);
    harness_fini(&h2);
    harness_fini(&h1);
}

/* ---- windows (build_window) ----------------------------------------------------------------- */

/* State writes of the window operator, counted through the linker's --wrap (tests/CMakeLists.txt
 * wraps weir_mapstate_put and weir_timer_register_event_time for test_task): a process-wide
 * counter is the only way to see calls made inside runtime/task/window.c. */
static _Atomic uint64_t win_puts, win_timer_regs;
int __real_weir_mapstate_put(weir_ctx_t *ctx, weir_state_id st, const void *ukey, uint32_t ukey_len,
                             const void *val, uint32_t len);
int __wrap_weir_mapstate_put(weir_ctx_t *ctx, weir_state_id st, const void *ukey, uint32_t ukey_len,
                             const void *val, uint32_t len) {
    win_puts++;
    return __real_weir_mapstate_put(ctx, st, ukey, ukey_len, val, len);
}
int __real_weir_timer_register_event_time(weir_ctx_t *ctx, int64_t timestamp);
int __wrap_weir_timer_register_event_time(weir_ctx_t *ctx, int64_t timestamp) {
    win_timer_regs++;
    return __real_weir_timer_register_event_time(ctx, timestamp);
}

#define WIN_SIZE 60000
#define WIN_KEYS 7

typedef struct win_out {
    int key;
    int64_t start, end, count, sum, rec_ts;
} win_out_t;

typedef struct win_log {
    int64_t slide;
    bool all;     /* weir_window_all_aggregate instead of keyed */
    bool process; /* weir_window_process (records kept) instead of the aggregate */
    uint64_t count_trigger;
    win_out_t v[8192];
    size_t n;
    uint64_t bad;
} win_log_t;

static int64_t win_ts(uint64_t i) { /* 100 ms of event time per index, out of order by < 40 */
    return 1000000 + (int64_t)i * 100 - (int64_t)((i * 7919) % 4) * 10;
}

static void win_gen_fn(weir_ctx_t *ctx, uint64_t index, void *udata) {
    (void)udata;
    msgpack_pack_uint64(weir_packer(ctx), index);
    weir_emit_packed(ctx, win_ts(index), NULL, 0);
}

static void win_sink(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    collected_t *c = udata;
    msgpack_object o;
    if (weir_unpack(ctx, in, &o) < 0)
        return;
    pthread_mutex_lock(&c->mu);
    win_log_t *l = c->win;
    if (o.type != MSGPACK_OBJECT_ARRAY || o.via.array.size != 4 || in->key_len < 2 ||
        l->n == sizeof l->v / sizeof l->v[0]) {
        l->bad++;
    } else {
        win_out_t *e = &l->v[l->n++];
        e->key = l->all ? 0 : ((const char *)in->key)[1] - '0';
        e->start = o.via.array.ptr[0].via.i64;
        e->end = o.via.array.ptr[1].via.i64;
        e->count = o.via.array.ptr[2].via.i64;
        e->sum = o.via.array.ptr[3].via.i64;
        e->rec_ts = in->timestamp;
    }
    c->count++;
    pthread_mutex_unlock(&c->mu);
}

/* weir_window_process: count and sum over the records, which come in arrival order */
static void win_process(weir_ctx_t *ctx, const weir_window_t *w, const weir_record_t *recs,
                        size_t n, void *udata) {
    int64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        msgpack_object o;
        if (weir_unpack(ctx, &recs[i], &o) < 0 || recs[i].timestamp < w->start ||
            recs[i].timestamp >= w->end) {
            weir_fail(ctx, "window_process: a record outside its window");
            return;
        }
        sum += (int64_t)o.via.u64;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    countsum_pack(&pk, (int64_t)n, sum);
    msgpack_zone z;
    msgpack_zone_init(&z, 64);
    msgpack_object acc;
    size_t off = 0;
    if (msgpack_unpack(sb.data, sb.size, &off, &z, &acc) == MSGPACK_UNPACK_SUCCESS)
        countsum_result(ctx, w, &acc, udata);
    msgpack_zone_destroy(&z);
    msgpack_sbuffer_destroy(&sb);
}

/* generator(p2, strategy, rate 20000/s) -> key_by(value % 7) -> sliding window 60 s every
 * c->win->slide (p2, uid "win") -> rebalance -> sink (p1); or window_all (p1) */
static weir_job_t *build_window(collected_t *c, uint64_t n) {
    weir_job_t *job = weir_graph_new("windows", 2);
    weir_stream_t *s =
        weir_set_uid(weir_source_generator(job, "gen", n, 20000, win_gen_fn, NULL), "gen");
    weir_watermark_strategy_t wst = {.max_out_of_orderness_ms = WM_BOUND};
    weir_set_watermark_strategy(s, &wst);
    weir_window_spec_t spec = {.kind = c->win->slide == WIN_SIZE ? WEIR_WINDOW_TUMBLING
                                                                 : WEIR_WINDOW_SLIDING,
                               .size_ms = WIN_SIZE,
                               .slide_ms = c->win->slide,
                               .count_trigger = c->win->count_trigger};
    static const weir_aggregate_fns_t fns = {countsum_create, countsum_add, countsum_merge,
                                             countsum_result};
    if (c->win->process)
        s = weir_window_process(weir_key_by(s, mod7_key, NULL), "win", &spec, win_process, NULL);
    else if (c->win->all)
        s = weir_window_all_aggregate(s, "win", &spec, &fns, NULL);
    else
        s = weir_window_aggregate(weir_key_by(s, mod7_key, NULL), "win", &spec, &fns, NULL);
    weir_set_uid(s, "win");
    s = weir_set_parallelism(weir_sink(weir_rebalance(s), "collect", win_sink, c), 1);
    return job;
}

/* Runs the window job over @p n records; checks every window against a brute-force model (each
 * window once, exact count and sum, stamped end-1); returns the state writes per record. */
static double run_window(int64_t slide, bool all, bool process, uint64_t count_trigger,
                         uint64_t n) {
    harness_t h;
    harness_init(&h, 2);
    win_log_t *l = calloc(1, sizeof *l);
    l->slide = slide;
    l->all = all;
    l->process = process;
    l->count_trigger = count_trigger;
    h.col.win = l;
    win_puts = 0;
    win_timer_regs = 0;
    start_job(&h, build_window, n, 2);
    wait_final(&h);
    check_all(&h, WEIR_TASK_FINISHED);
    assert_int_equal(l->bad, 0);
    uint64_t writes = win_puts + win_timer_regs;
    size_t expect = 0;
    int nkeys = all ? 1 : WIN_KEYS;
    for (int k = 0; k < nkeys; k++) {
        int64_t lo = win_ts(0) - WIN_SIZE, hi = win_ts(n - 1) + WIN_SIZE;
        for (int64_t st = lo / slide * slide; st < hi; st += slide) {
            int64_t cnt = 0, sum = 0;
            for (uint64_t i = 0; i < n; i++) {
                int64_t ts = win_ts(i);
                if ((all || (int)(i % WIN_KEYS) == k) && st <= ts && ts < st + WIN_SIZE) {
                    cnt++;
                    sum += (int64_t)i;
                }
            }
            if (!cnt)
                continue;
            /* count trigger: firings at N, 2N, ... records, then the final one at end-1 */
            size_t firings = count_trigger ? (size_t)(cnt / (int64_t)count_trigger) + 1 : 1;
            expect += firings;
            size_t found = 0;
            for (size_t j = 0; j < l->n; j++)
                if (l->v[j].key == k && l->v[j].start == st) {
                    found++;
                    assert_int_equal(l->v[j].end, st + WIN_SIZE);
                    if (found < firings) {
                        assert_int_equal(l->v[j].count, (int64_t)(found * count_trigger));
                        continue;
                    }
                    assert_int_equal(l->v[j].count, cnt);
                    assert_int_equal(l->v[j].sum, sum);
                    assert_int_equal(l->v[j].rec_ts, st + WIN_SIZE - 1);
                }
            assert_int_equal(found, firings);
        }
    }
    assert_int_equal(l->n, expect);
    free(l);
    harness_fini(&h);
    return (double)writes / (double)n;
}

/* Sliding windows with panes: exact results against the model, and the state writes (pane puts
 * + timer registrations, per record and per firing) do not grow with size/slide: 60 s every 1 s
 * (60 windows per record) within 2x of 60 s every 30 s (2 windows per record). */
static void test_window_sliding_cost(void **state) {
    (void)state;
    double w1 = run_window(1000, false, false, 0, 3000);
    double w30 = run_window(30000, false, false, 0, 3000);
    print_message("window state writes per record: 60 s/1 s %.2f, 60 s/30 s %.2f\n", w1, w30);
    /* per record 1 pane put + at most 2 timer registrations, plus per fired window at most 2
     * timer registrations (windows fire once each): far below one write per window (60) */
    assert_true(w1 < 10.0 && w30 < 10.0);
    assert_true(w1 <= 2 * w30 && w30 <= 2 * w1);
}

/* weir_window_all_aggregate: one key, parallelism 1, tumbling 60 s. */
static void test_window_all(void **state) {
    (void)state;
    run_window(WIN_SIZE, true, false, 0, 3000);
}

/* count_trigger: a tumbling window also fires at every 25th record (the keyed aggregate and
 * the full-window process function), then once more at end-1 with its total. */
static void test_window_count_trigger(void **state) {
    (void)state;
    run_window(WIN_SIZE, false, false, 25, 3000);
    run_window(WIN_SIZE, false, true, 25, 3000);
}

/* weir_window_process: every record of the window, in arrival order, sliding 60 s every 30 s
 * and tumbling 60 s; the kept records are removed with their panes. */
static void test_window_process(void **state) {
    (void)state;
    run_window(30000, false, true, 0, 3000);
    run_window(WIN_SIZE, false, true, 0, 3000);
}

/* ---- keyed timers (build_timers) ----------------------------------------------------------- */

#define TM_WIN 100 /* ms: event-time window of the hand-built tumbling count */
#define TM_KEYS 7

typedef struct tm_out {
    int key;
    int64_t wend, count, rec_ts;
} tm_out_t;

typedef struct tm_log {
    tm_out_t v[20000];
    size_t n;
    uint64_t pt_fired, pt_early, bad;
    uint64_t follow; /* timers registered in on_timer that fired within the same advance */
    uint64_t late;   /* window records the sink received at or below its watermark */
} tm_log_t;

static int64_t tm_ts(uint64_t i) { /* out of order by up to 4 steps, as wm_gen_fn */
    return 1000000 + (int64_t)i * WM_STEP - (int64_t)((i * 7919) % 5) * WM_STEP;
}

static int64_t tm_wend(int64_t ts) {
    return (ts / TM_WIN + 1) * TM_WIN - 1;
}

static void tm_gen_fn(weir_ctx_t *ctx, uint64_t index, void *udata) {
    (void)udata;
    msgpack_pack_uint64(weir_packer(ctx), index);
    weir_emit_packed(ctx, tm_ts(index), NULL, 0);
}

/* per record: count[window end]++ (map state), event-time timer at the window end, and a
 * processing-time timer 20 ms ahead */
static void tm_process(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    weir_state_id st = *(const weir_state_id *)udata; /* tm_ud_t starts with it */
    int64_t wend = tm_wend(in->timestamp), n = 0;
    const void *v;
    uint32_t len;
    if (weir_mapstate_get(ctx, st, &wend, 8, &v, &len) == 0 && len == 8)
        memcpy(&n, v, 8);
    n++;
    if (weir_mapstate_put(ctx, st, &wend, 8, &n, 8) != 0 ||
        weir_timer_register_event_time(ctx, wend) != 0 ||
        weir_timer_register_processing_time(ctx, weir_current_processing_time(ctx) + 20) != 0 ||
        weir_timer_register_event_time(ctx, wend + 1) != 0 || /* deleted: never fires */
        weir_timer_delete_event_time(ctx, wend + 1) != 0)
        weir_fail(ctx, "state or timer call failed");
}

typedef struct tm_ud {
    weir_state_id st;
    collected_t *c;
} tm_ud_t;

static void tm_on_timer(weir_ctx_t *ctx, int64_t ts, weir_time_domain_t dom, void *udata) {
    const tm_ud_t *u = udata;
    weir_state_id st = u->st;
    if (dom == WEIR_PROCESSING_TIME) {
        bool early = weir_current_processing_time(ctx) < ts;
        pthread_mutex_lock(&u->c->mu);
        u->c->tm->pt_fired++;
        u->c->tm->pt_early += early;
        pthread_mutex_unlock(&u->c->mu);
        return;
    }
    const void *v;
    uint32_t len;
    int64_t n = 0;
    if (weir_mapstate_get(ctx, st, &ts, 8, &v, &len) == 0 && len == 8)
        memcpy(&n, v, 8);
    weir_mapstate_remove(ctx, st, &ts, 8);
    if (ts % TM_WIN == 0) {
        weir_fail(ctx, "deleted timer %lld fired", (long long)ts);
        return;
    }
    if (ts % TM_WIN == TM_WIN - 2) { /* a follow-up: n is the watermark its window fired at */
        bool same = n == weir_current_watermark(ctx) && n != 0;
        pthread_mutex_lock(&u->c->mu);
        if (same)
            u->c->tm->follow++;
        else
            u->c->tm->bad++;
        pthread_mutex_unlock(&u->c->mu);
        return;
    }
    /* a follow-up timer below the watermark, registered here: fires within this advance */
    int64_t f = ts - 1, wm = weir_current_watermark(ctx);
    if (weir_mapstate_put(ctx, st, &f, 8, &wm, 8) != 0 ||
        weir_timer_register_event_time(ctx, f) != 0)
        weir_fail(ctx, "follow-up timer registration failed");
    if (weir_current_watermark(ctx) < ts)
        weir_fail(ctx, "timer %lld fired below the watermark", (long long)ts);
    uint32_t kl;
    const void *key = weir_current_key(ctx, &kl);
    msgpack_packer *pk = weir_packer(ctx);
    msgpack_pack_array(pk, 2);
    msgpack_pack_int64(pk, ts);
    msgpack_pack_int64(pk, n);
    weir_emit_packed(ctx, 0 /* stamped with ts by the runtime */, key, kl);
}

static void tm_sink(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    collected_t *c = udata;
    msgpack_object o;
    if (weir_unpack(ctx, in, &o) < 0)
        return;
    pthread_mutex_lock(&c->mu);
    tm_log_t *l = c->tm;
    if (o.type != MSGPACK_OBJECT_ARRAY || o.via.array.size != 2 || in->key_len != 2 ||
        l->n == sizeof l->v / sizeof l->v[0]) {
        l->bad++;
    } else {
        tm_out_t *e = &l->v[l->n++];
        e->key = ((const char *)in->key)[1] - '0';
        e->wend = o.via.array.ptr[0].via.i64;
        e->count = o.via.array.ptr[1].via.i64;
        e->rec_ts = in->timestamp;
        /* emitted before the watermark that fired it went downstream: not late here */
        if (in->timestamp <= weir_current_watermark(ctx))
            l->late++;
    }
    c->count++;
    pthread_mutex_unlock(&c->mu);
}

/* generator(p2, strategy, rate 4000/s) -> key_by(value % 7) -> process with timers (p2) ->
 * rebalance -> sink (p1) */
static weir_job_t *build_timers(collected_t *c, uint64_t n) {
    weir_job_t *job = weir_graph_new("timers", 2);
    weir_stream_t *s =
        weir_set_uid(weir_source_generator(job, "gen", n, 4000, tm_gen_fn, NULL), "gen");
    weir_watermark_strategy_t wst = {.max_out_of_orderness_ms = WM_BOUND};
    weir_set_watermark_strategy(s, &wst);
    s = weir_key_by(s, mod7_key, NULL);
    tm_ud_t *u = weir_job_alloc(job, sizeof *u);
    u->c = c;
    s = weir_process(s, "windows", tm_process, u);
    weir_set_uid(s, "windows");
    u->st = weir_map_state(s, "counts");
    weir_set_on_timer(s, tm_on_timer);
    s = weir_set_parallelism(weir_sink(weir_rebalance(s), "collect", tm_sink, c), 1);
    return job;
}

/* The oracle: per (key, window end), the number of indices below n (an independent model of the
 * windows; keys are "k<index % 7>" like mod7_key). Checks @p l's entries [0, upto) + [from, n)
 * equal it exactly, each stamped with its window end, per key in ascending window order within
 * each run. */
static void tm_check(const tm_log_t *l, uint64_t n, size_t upto, size_t from) {
    enum { MAXW = 2048 };
    static int64_t want[TM_KEYS][MAXW];
    memset(want, 0, sizeof want);
    int64_t base = tm_wend(tm_ts(0)) - TM_WIN * 8;
    for (uint64_t i = 0; i < n; i++) {
        int64_t w = (tm_wend(tm_ts(i)) - base) / TM_WIN;
        assert_true(w >= 0 && w < MAXW);
        want[i % TM_KEYS][w]++;
    }
    int64_t last[TM_KEYS];
    for (int k = 0; k < TM_KEYS; k++)
        last[k] = INT64_MIN;
    for (size_t j = 0; j < l->n; j++) {
        if (j >= upto && j < from)
            continue;
        if (j == from)
            for (int k = 0; k < TM_KEYS; k++)
                last[k] = INT64_MIN; /* the restored run: a new sequence per key */
        const tm_out_t *e = &l->v[j];
        assert_true(e->key >= 0 && e->key < TM_KEYS);
        assert_true(e->rec_ts == e->wend);
        assert_true(e->wend > last[e->key]);
        last[e->key] = e->wend;
        int64_t w = (e->wend - base) / TM_WIN;
        assert_true(w >= 0 && w < MAXW && (e->wend - base) % TM_WIN == 0);
        assert_int_equal(want[e->key][w], e->count); /* each window once, with its count */
        want[e->key][w] = 0;
    }
    for (int k = 0; k < TM_KEYS; k++)
        for (int w = 0; w < MAXW; w++)
            assert_int_equal(want[k][w], 0);
}

/* Event-time timers fire in order per key with the exact counts; the final watermark fires the
 * rest; processing-time timers fire, never early. */
static void test_timers_windows(void **state) {
    (void)state;
    harness_t h;
    harness_init(&h, 2);
    tm_log_t *l = calloc(1, sizeof *l);
    h.col.tm = l;
    start_job(&h, build_timers, 2000, 2);
    wait_final(&h);
    check_all(&h, WEIR_TASK_FINISHED);
    assert_int_equal(l->bad, 0);
    assert_int_equal(l->pt_early, 0);
    assert_true(l->pt_fired > 0);
    assert_int_equal(l->follow, l->n);
    assert_int_equal(l->late, 0);
    tm_check(l, 2000, l->n, l->n);
    free(l);
    harness_fini(&h);
}

/* An empty key is a key: records keyed to zero bytes register event-time timers, and each
 * (key, timestamp) fires once with the empty key current (the timer calls once refused a
 * current key of length 0). */
static uint32_t empty_key(const weir_record_t *in, void *out, void *udata) {
    (void)in, (void)out, (void)udata;
    return 0;
}

static void ek_process(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    (void)udata;
    if (weir_timer_register_event_time(ctx, in->timestamp) != 0)
        weir_fail(ctx, "registering a timer under the empty key failed");
}

static void ek_on_timer(weir_ctx_t *ctx, int64_t ts, weir_time_domain_t dom, void *udata) {
    collected_t *c = udata;
    uint32_t kl = 1;
    const void *k = weir_current_key(ctx, &kl);
    pthread_mutex_lock(&c->mu);
    c->count++;
    c->sum += (uint64_t)ts;
    if (!k || kl != 0 || dom != WEIR_EVENT_TIME)
        c->key_mismatch = true;
    pthread_mutex_unlock(&c->mu);
}

static weir_job_t *build_empty_key(collected_t *c, uint64_t n) {
    weir_job_t *job = weir_graph_new("empty-key", 2);
    weir_stream_t *s =
        weir_set_uid(weir_source_generator(job, "gen", n, 0, tm_gen_fn, NULL), "gen");
    weir_watermark_strategy_t wst = {.max_out_of_orderness_ms = WM_BOUND};
    weir_set_watermark_strategy(s, &wst);
    s = weir_process(weir_key_by(s, empty_key, NULL), "timers", ek_process, c);
    weir_set_uid(s, "timers");
    weir_set_on_timer(s, ek_on_timer);
    weir_sink_blackhole(s, "drop");
    return job;
}

static void test_timers_empty_key(void **state) {
    (void)state;
    harness_t h;
    harness_init(&h, 2);
    start_job(&h, build_empty_key, 500, 2);
    wait_final(&h);
    check_all(&h, WEIR_TASK_FINISHED);
    /* the oracle: the distinct timestamps of the 500 records, each fired once */
    uint64_t n = 0, sum = 0;
    for (uint64_t i = 0; i < 500; i++) {
        bool dup = false;
        for (uint64_t j = 0; j < i && !dup; j++)
            dup = tm_ts(j) == tm_ts(i);
        if (!dup)
            n++, sum += (uint64_t)tm_ts(i);
    }
    assert_false(h.col.key_mismatch);
    assert_int_equal(h.col.count, n);
    assert_int_equal(h.col.sum, sum);
    harness_fini(&h);
}

/* Timers are keyed state: checkpoint mid-run, cancel, restore; the sink's records before the
 * barrier plus the restored run's equal the oracle exactly (no window lost or fired twice). */
static void test_timers_restore(void **state) {
    (void)state;
    char *ckdir = weir_test_tmpdir("test_task_tm");
    tm_log_t *l = calloc(1, sizeof *l);
    harness_t h1;
    harness_init(&h1, 1);
    h1.ck_mode = WEIR_CHECKPOINT_EXACTLY_ONCE;
    h1.ck_dir = ckdir;
    h1.col.tm = l;
    start_job(&h1, build_timers, 4000, 1);
    wait_running(&h1);
    weir_sleep_ns(300000000);
    for (int i = 0; i < h1.st.n_tasks; i++)
        if (weir_task_vertex(h1.st.tasks[i]) == 0)
            weir_task_trigger(h1.st.tasks[i], 1, weir_wall_ms(), WEIR_CK_CHECKPOINT, NULL);
    assert_int_equal(wait_acks(&h1, 1, false, 5), 5);
    const ack_t *sa = find_ack(h1.acks, h1.n_acks, 2, 0, 1, false);
    assert_non_null(sa);
    size_t upto = (size_t)sa->col_count; /* the sink's records before the barrier */
    for (int i = 0; i < h1.st.n_tasks; i++)
        weir_task_notify(h1.st.tasks[i], 1, false);
    cancel_and_wait(&h1);
    assert_true(upto > 0 && upto < l->n + 1);
    size_t from = l->n;

    harness_t h2;
    harness_init(&h2, 1);
    h2.ck_mode = WEIR_CHECKPOINT_EXACTLY_ONCE;
    h2.ck_dir = ckdir;
    h2.attempt = 2;
    h2.restore_id = 1;
    h2.restore_from = h1.acks;
    h2.n_restore_from = h1.n_acks;
    h2.col.tm = l;
    start_job(&h2, build_timers, 4000, 1);
    assert_int_equal(wait_acks(&h2, 0, true, 5), 5); /* the final snapshots */
    for (int i = 0; i < h2.st.n_tasks; i++)
        weir_task_notify(h2.st.tasks[i], 2, true);
    wait_final(&h2);
    check_all(&h2, WEIR_TASK_FINISHED);
    assert_int_equal(l->bad, 0);
    print_message("timers restore: %zu windows before the barrier, %zu after the restore\n", upto,
                  l->n - from);
    assert_int_equal(l->late, 0);
    tm_check(l, 4000, upto, from);
    free(l);
    harness_fini(&h2);
    harness_fini(&h1);
    weir_test_tmpdir_remove(ckdir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stateless_local),
        cmocka_unit_test(test_watermarks),
        cmocka_unit_test(test_stateless_two_planes),
        cmocka_unit_test(test_keyed_reduce),
        cmocka_unit_test(test_keyed_process_value_state),
        cmocka_unit_test(test_keyed_process_state_ttl),
        cmocka_unit_test(test_user_failure),
        cmocka_unit_test(test_side_outputs),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_bad_spec),
        cmocka_unit_test(test_alignment_exactly_once),
        cmocka_unit_test(test_alignment_at_least_once),
        cmocka_unit_test(test_co_process_alignment),
        cmocka_unit_test(test_co_process_watermarks),
        cmocka_unit_test(test_interval_join_late),
        cmocka_unit_test(test_co_process_self),
        cmocka_unit_test(test_final_checkpoint),
        cmocka_unit_test(test_restore_sources),
        cmocka_unit_test(test_restore_bad_op_state),
        cmocka_unit_test(test_restore_rescaled_sources),
        cmocka_unit_test(test_restore_malformed_bundle),
        cmocka_unit_test(test_restore_keyed),
        cmocka_unit_test(test_finished_subtask_commits),
        cmocka_unit_test(test_savepoint_barriers_exactly_once),
        cmocka_unit_test(test_savepoint_barriers_at_least_once),
        cmocka_unit_test(test_stop_with_savepoint),
        cmocka_unit_test(test_savepoint_never_confirms),
        cmocka_unit_test(test_restore_from_savepoint),
        cmocka_unit_test(test_lifecycle_finished),
        cmocka_unit_test(test_lifecycle_open_fails),
        cmocka_unit_test(test_lifecycle_fail),
        cmocka_unit_test(test_lifecycle_cancel),
        cmocka_unit_test(test_lifecycle_stop),
        cmocka_unit_test(test_lifecycle_emit_in_close),
        cmocka_unit_test(test_window_sliding_cost),
        cmocka_unit_test(test_window_all),
        cmocka_unit_test(test_window_process),
        cmocka_unit_test(test_window_count_trigger),
        cmocka_unit_test(test_timers_windows),
        cmocka_unit_test(test_timers_empty_key),
        cmocka_unit_test(test_timers_restore),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
