/* Unit tests of the exactly-once Kafka sink's transaction pool (connectors/kafka/txnpool.c)
 * against a model of a Kafka transaction coordinator written here from Kafka's documented
 * behaviour (transaction protocol version 1, as librdkafka uses it):
 * - InitProducerId(id): a new id gets a new producer id with epoch 0; a known id keeps its
 *   producer id and its epoch goes up by one; an open transaction of the id is aborted; producers
 *   with an older epoch are fenced (every later write, commit or abort of theirs is refused);
 * - a producer keeps its epoch across transactions; a transaction is open from its first record;
 *   DescribeTransactions reports the start time of the id's last transaction since its last
 *   InitProducerId (-1 when none), kept after it completed;
 * - EndTxn v1 (id, producer id, epoch, commit): unknown id or other producer id ->
 *   INVALID_PRODUCER_ID_MAPPING; another epoch -> INVALID_PRODUCER_EPOCH; open -> committed
 *   (NONE); already committed with that epoch -> NONE; otherwise INVALID_TXN_STATE; abort alike
 *   (open -> aborted, already aborted -> NONE, otherwise INVALID_TXN_STATE);
 * - the broker's timeout aborts an open transaction and bumps the epoch.
 * (The answers of a real Kafka 4.1.1 broker to each case are recorded in kproto.h.)
 * Oracles: a deterministic source emits 0, 1, 2, ... and restarts from the position of the
 * latest completed checkpoint; what read_committed consumers see (committed records in commit
 * order) must always be exactly 0..k-1 (no duplicate, no gap), all of 0..N-1 at the end, and no
 * transaction of the sink may stay open after a restore. Crashes leave zombies: the old pool
 * keeps its producers and may write, snapshot or act on a late notification afterwards. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"
#include "connectors/kafka/txnpool.h"

/* ---- the coordinator model ------------------------------------------------------------- */

enum { B_EMPTY, B_ONGOING, B_COMMITTED, B_ABORTED };
static const char *const b_state_names[] = {"Empty", "Ongoing", "CompleteCommit", "CompleteAbort"};

#define MAX_IDS 256
#define MAX_OPEN 512
#define MAX_VIS 8192

typedef struct bid {
    char id[WEIR_KTXN_ID_CAP];
    int64_t pid;
    int16_t epoch;
    int state;
    int64_t start_ms; /* of the last transaction since InitProducerId, -1 none */
    uint64_t recs[MAX_OPEN];
    size_t n;
} bid_t;

typedef struct broker {
    bid_t ids[MAX_IDS];
    size_t n_ids;
    int64_t next_pid;
    int64_t clock; /* the coordinator's milliseconds: one per transaction started */
    uint64_t visible[MAX_VIS];
    size_t n_visible;
    int inits, end_txns, timeouts;
} broker_t;

static bid_t *b_find(broker_t *b, const char *id, bool create) {
    for (size_t i = 0; i < b->n_ids; i++)
        if (strcmp(b->ids[i].id, id) == 0)
            return &b->ids[i];
    if (!create)
        return NULL;
    assert_true(b->n_ids < MAX_IDS);
    bid_t *t = &b->ids[b->n_ids++];
    memset(t, 0, sizeof(*t));
    snprintf(t->id, sizeof(t->id), "%s", id);
    t->pid = 1000 + b->next_pid++;
    t->epoch = -1;
    t->start_ms = -1;
    return t;
}

static void b_commit(broker_t *b, bid_t *t) {
    for (size_t i = 0; i < t->n; i++) {
        assert_true(b->n_visible < MAX_VIS);
        b->visible[b->n_visible++] = t->recs[i];
    }
    t->n = 0;
    t->state = B_COMMITTED;
}

static void b_abort(bid_t *t) {
    t->n = 0;
    t->state = B_ABORTED;
}

/* ---- the pool's I/O on the model --------------------------------------------------------- */

typedef struct mprod {
    bool live;
    char id[WEIR_KTXN_ID_CAP];
    int64_t pid;
    int16_t epoch;
} mprod_t;

typedef struct mio {
    broker_t *b;
    mprod_t prods[64];
    bool lease_lost; /* a zombie: its task manager's lease expired (weir_ctx_lease_valid) */
} mio_t;

static bool fenced(broker_t *b, const mprod_t *p) {
    bid_t *t = b_find(b, p->id, false);
    return !p->live || !t || t->pid != p->pid || t->epoch != p->epoch;
}

static int m_init(void *io, uint32_t k, const char *id, int64_t *pid, int16_t *epoch, char *err) {
    mio_t *m = io;
    if (m->lease_lost) /* as kafka_sink.c's io_init: never take an id over without a lease */
        return weir_errf(err, WEIR_KTXN_ERR_CAP, WEIR_ECANCELED, "lease lost");
    bid_t *t = b_find(m->b, id, true);
    if (t->state == B_ONGOING)
        b_abort(t);
    t->epoch++;
    t->state = B_EMPTY;
    t->start_ms = -1;
    m->b->inits++;
    *pid = t->pid;
    *epoch = t->epoch;
    if (k != UINT32_MAX)
        m->prods[k] = (mprod_t){.live = true, .pid = t->pid, .epoch = t->epoch};
    if (k != UINT32_MAX)
        snprintf(m->prods[k].id, sizeof(m->prods[k].id), "%s", id);
    return 0;
}

static void m_drop(void *io, uint32_t k) {
    mio_t *m = io;
    m->prods[k].live = false;
}

static int m_begin(void *io, uint32_t k, char *err) {
    mio_t *m = io;
    if (fenced(m->b, &m->prods[k]))
        return weir_errf(err, WEIR_KTXN_ERR_CAP, WEIR_EIO, "begin: fenced");
    return 0;
}

/* A record into slot k's open transaction (what librdkafka's produce + AddPartitions do). */
static int m_write(mio_t *m, uint32_t k, uint64_t v) {
    mprod_t *p = &m->prods[k];
    if (fenced(m->b, p))
        return WEIR_EIO;
    bid_t *t = b_find(m->b, p->id, false);
    assert_true(t->n < MAX_OPEN);
    if (t->state != B_ONGOING)
        t->start_ms = ++m->b->clock;
    t->state = B_ONGOING;
    t->recs[t->n++] = v;
    return 0;
}

static int m_flush(void *io, uint32_t k, char *err) {
    mio_t *m = io;
    if (fenced(m->b, &m->prods[k]))
        return weir_errf(err, WEIR_KTXN_ERR_CAP, WEIR_EIO, "flush: fenced");
    return 0;
}

static int m_commit(void *io, uint32_t k, char *err) {
    mio_t *m = io;
    mprod_t *p = &m->prods[k];
    if (fenced(m->b, p))
        return weir_errf(err, WEIR_KTXN_ERR_CAP, WEIR_EIO, "commit: PRODUCER_FENCED");
    bid_t *t = b_find(m->b, p->id, false);
    if (t->state == B_ONGOING)
        b_commit(m->b, t);
    else if (t->state == B_ABORTED)
        return weir_errf(err, WEIR_KTXN_ERR_CAP, WEIR_EIO, "commit: INVALID_TXN_STATE");
    return 0;
}

static int m_abort(void *io, uint32_t k, char *err) {
    mio_t *m = io;
    mprod_t *p = &m->prods[k];
    if (fenced(m->b, p))
        return weir_errf(err, WEIR_KTXN_ERR_CAP, WEIR_EIO, "abort: PRODUCER_FENCED");
    bid_t *t = b_find(m->b, p->id, false);
    if (t->state == B_ONGOING)
        b_abort(t);
    return 0;
}

static int m_describe(void *io, const char *id, weir_ktxn_info_t *out, char *err) {
    mio_t *m = io;
    (void)err;
    memset(out, 0, sizeof(*out));
    bid_t *t = b_find(m->b, id, false);
    if (!t) {
        out->error = WEIR_KERR_TRANSACTIONAL_ID_NOT_FOUND;
        snprintf(out->state, sizeof(out->state), "Dead");
        return 0;
    }
    snprintf(out->txn_id, sizeof(out->txn_id), "%s", id);
    out->producer_id = t->pid;
    out->producer_epoch = t->epoch;
    out->txn_start_ms = t->start_ms;
    snprintf(out->state, sizeof(out->state), "%s", b_state_names[t->state]);
    return 0;
}

static int m_end_txn(void *io, const char *id, int64_t pid, int16_t epoch, bool commit,
                     int16_t *kerr, char *err) {
    mio_t *m = io;
    (void)err;
    m->b->end_txns++;
    bid_t *t = b_find(m->b, id, false);
    if (!t || t->pid != pid)
        *kerr = WEIR_KERR_INVALID_PRODUCER_ID_MAPPING;
    else if (epoch != t->epoch)
        *kerr = WEIR_KERR_INVALID_PRODUCER_EPOCH;
    else if (t->state == B_ONGOING) {
        if (commit)
            b_commit(m->b, t);
        else
            b_abort(t);
        *kerr = WEIR_KERR_NONE;
    } else if (t->state == (commit ? B_COMMITTED : B_ABORTED))
        *kerr = WEIR_KERR_NONE;
    else
        *kerr = WEIR_KERR_INVALID_TXN_STATE;
    return 0;
}

static int m_list_open(void *io, const char *prefix,
                       int (*fn)(const weir_ktxn_info_t *t, void *arg), void *arg, char *err) {
    mio_t *m = io;
    for (size_t i = 0; i < m->b->n_ids; i++) {
        bid_t *t = &m->b->ids[i];
        if (t->state != B_ONGOING || strncmp(t->id, prefix, strlen(prefix)) != 0)
            continue;
        weir_ktxn_info_t info;
        m_describe(io, t->id, &info, err);
        int rc = fn(&info, arg);
        if (rc)
            return rc;
    }
    return 0;
}

static int m_abort_id(void *io, const char *id, char *err) {
    int64_t pid;
    int16_t epoch;
    return m_init(io, UINT32_MAX, id, &pid, &epoch, err);
}

static const weir_ktxn_io_t model_io = {.init = m_init,
                                        .drop = m_drop,
                                        .begin = m_begin,
                                        .flush = m_flush,
                                        .commit = m_commit,
                                        .abort = m_abort,
                                        .describe = m_describe,
                                        .end_txn = m_end_txn,
                                        .list_open = m_list_open,
                                        .abort_id = m_abort_id};

/* ---- helpers ------------------------------------------------------------------------------ */

typedef struct snap {
    msgpack_sbuffer sb;
    msgpack_unpacked u;
} snap_t;

static int snap_take(weir_ktxn_pool_t *p, uint64_t id, snap_t *s) {
    msgpack_sbuffer_init(&s->sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &s->sb, msgpack_sbuffer_write);
    int rc = weir__ktxn_pool_snapshot(p, id, &pk);
    msgpack_unpacked_init(&s->u);
    if (rc == 0) {
        size_t off = 0;
        assert_int_equal(msgpack_unpack_next(&s->u, s->sb.data, s->sb.size, &off),
                         MSGPACK_UNPACK_SUCCESS);
        assert_int_equal(off, s->sb.size);
    }
    return rc;
}

static void snap_free(snap_t *s) {
    msgpack_unpacked_destroy(&s->u);
    msgpack_sbuffer_destroy(&s->sb);
}

static int open_txns(const broker_t *b) {
    int n = 0;
    for (size_t i = 0; i < b->n_ids; i++)
        n += b->ids[i].state == B_ONGOING;
    return n;
}

static void assert_prefix(const broker_t *b) {
    for (size_t i = 0; i < b->n_visible; i++)
        if (b->visible[i] != i)
            fail_msg("visible[%zu] = %llu: a duplicate or a gap", i,
                     (unsigned long long)b->visible[i]);
}

/* kill -9: the pool's memory is gone, nothing is aborted or closed. */
static void pool_crash(weir_ktxn_pool_t *p) {
    for (size_t i = 0; i < p->tp.n_pending; i++)
        free(p->tp.pending[i].handle);
    free(p->tp.pending);
    free(p->slots);
    p->slots = NULL;
}

/* Writes value v through the pool (one record of the source). */
static int pool_write(weir_ktxn_pool_t *p, mio_t *m, uint64_t v) {
    uint32_t k;
    int rc = weir__ktxn_pool_txn(p, &k);
    if (rc == 0 && (rc = m_write(m, k, v)) == 0)
        p->slots[k].records++;
    return rc;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_ids_and_slot_of(void **state) {
    (void)state;
    broker_t *b = calloc(1, sizeof(*b));
    mio_t m = {.b = b};
    weir_ktxn_pool_t p;
    weir__ktxn_pool_init(&p, &model_io, &m, "out", "weir-j-sink", 3, 4, 5, 900000);
    assert_string_equal(p.slots[0].id, "weir-j-sink-3-0");
    assert_string_equal(p.slots[4].id, "weir-j-sink-3-4");
    assert_int_equal(weir__ktxn_pool_slot_of(&p, "weir-j-sink-3-4"), 4);
    assert_int_equal(weir__ktxn_pool_slot_of(&p, "weir-j-sink-3-5"), -1);  /* beyond the pool */
    assert_int_equal(weir__ktxn_pool_slot_of(&p, "weir-j-sink-2-1"), -1);  /* other subtask */
    assert_int_equal(weir__ktxn_pool_slot_of(&p, "weir-j-sink-3-01"), -1); /* not canonical */
    assert_int_equal(weir__ktxn_pool_slot_of(&p, "weir-j-sink-3-"), -1);
    assert_int_equal(weir__ktxn_pool_slot_of(&p, "weir-j-sinkX-3-1"), -1);
    weir__ktxn_pool_close(&p);
    free(b);
}

/* The steady state: epochs on rotating slots, a slot listed by a checkpoint is reused only after
 * a later one completed, commits in order. */
static void test_steady_state_rotation(void **state) {
    (void)state;
    broker_t *b = calloc(1, sizeof(*b));
    mio_t m = {.b = b};
    weir_ktxn_pool_t p;
    weir__ktxn_pool_init(&p, &model_io, &m, "out", "px", 0, 1, 4, 900000);
    assert_int_equal(weir__ktxn_pool_start_fresh(&p), 0);
    assert_int_equal(b->inits, 4); /* every id fenced at a fresh start */
    uint64_t v = 0;
    snap_t s[8];
    for (uint64_t ck = 1; ck <= 6; ck++) {
        for (int i = 0; i < 3; i++)
            assert_int_equal(pool_write(&p, &m, v++), 0);
        assert_int_equal(snap_take(&p, ck, &s[ck]), 0);
        assert_int_equal(b->n_visible, 3 * (ck - 1)); /* nothing visible before completion */
        assert_int_equal(weir__ktxn_pool_notify(&p, ck, false), 0);
        assert_int_equal(b->n_visible, 3 * ck);
        snap_free(&s[ck]);
    }
    assert_prefix(b);
    assert_int_equal(b->inits, 4); /* no slot re-initialised in the steady state */
    weir__ktxn_pool_close(&p);
    free(b);
}

/* Restoring a checkpoint commits its transaction with EndTxn, twice is harmless, and an EndTxn
 * the broker refuses (the transaction timed out) is an error naming it. */
static void test_restore_commits_and_detects_loss(void **state) {
    (void)state;
    broker_t *b = calloc(1, sizeof(*b));
    mio_t m = {.b = b};
    weir_ktxn_pool_t p;
    weir__ktxn_pool_init(&p, &model_io, &m, "out", "px", 0, 1, 4, 900000);
    assert_int_equal(weir__ktxn_pool_start_fresh(&p), 0);
    for (uint64_t v = 0; v < 5; v++)
        assert_int_equal(pool_write(&p, &m, v), 0);
    snap_t s;
    assert_int_equal(snap_take(&p, 1, &s), 0);
    /* crash before the notify: the attempt's memory is gone, the broker keeps it open */
    pool_crash(&p);
    mio_t m2 = {.b = b};
    for (int round = 0; round < 2; round++) {
        weir_ktxn_pool_t q;
        weir__ktxn_pool_init(&q, &model_io, &m2, "out", "px", 0, 1, 4, 900000);
        assert_int_equal(weir__ktxn_pool_restore(&q, 1, &s.u.data), 0);
        assert_int_equal(b->n_visible, 5);
        assert_int_equal(open_txns(b), 0);
        weir__ktxn_pool_close(&q);
    }
    assert_prefix(b);
    /* A second pre-committed transaction that the broker aborts by timeout. */
    weir_ktxn_pool_t q;
    weir__ktxn_pool_init(&q, &model_io, &m2, "out", "px", 0, 1, 4, 900000);
    assert_int_equal(weir__ktxn_pool_restore(&q, 1, &s.u.data), 0);
    for (uint64_t v = 5; v < 8; v++)
        assert_int_equal(pool_write(&q, &m2, v), 0);
    snap_t s2;
    assert_int_equal(snap_take(&q, 2, &s2), 0);
    for (size_t i = 0; i < b->n_ids; i++)
        if (b->ids[i].state == B_ONGOING) {
            b_abort(&b->ids[i]);
            b->ids[i].epoch++;
        }
    assert_int_not_equal(weir__ktxn_pool_notify(&q, 2, false), 0);
    assert_non_null(strstr(q.err, "could not be committed"));
    pool_crash(&q);
    weir_ktxn_pool_t r;
    weir__ktxn_pool_init(&r, &model_io, &m2, "out", "px", 0, 1, 4, 900000);
    assert_int_equal(weir__ktxn_pool_restore(&r, 2, &s2.u.data), WEIR_EIO);
    assert_non_null(
        strstr(r.err, "cannot be committed: the broker answered INVALID_PRODUCER_EPOCH"));
    assert_non_null(strstr(r.err, "its records are lost"));
    assert_int_equal(b->n_visible, 5); /* never a gap: nothing after the lost records */
    weir__ktxn_pool_close(&r);
    snap_free(&s);
    snap_free(&s2);
    free(b);
}

/* Subtask 0 aborts open transactions of ids no current subtask owns (an earlier parallelism). */
static void test_foreign_ids_aborted(void **state) {
    (void)state;
    broker_t *b = calloc(1, sizeof(*b));
    mio_t m = {.b = b};
    const char *leftovers[] = {"px-5-0", "px-0-9", "px-1-2", "pxy-0-0"};
    for (int i = 0; i < 4; i++) {
        bid_t *t = b_find(b, leftovers[i], true);
        t->epoch = 0;
        t->state = B_ONGOING;
        t->recs[t->n++] = 99;
    }
    weir_ktxn_pool_t p;
    weir__ktxn_pool_init(&p, &model_io, &m, "out", "px", 0, 2, 4, 900000);
    assert_int_equal(weir__ktxn_pool_start_fresh(&p), 0);
    /* px-5-0 (subtask 5 >= 2) and px-0-9 (k 9 >= 4) aborted; px-1-2 is subtask 1's own to
     * abort; pxy-0-0 is another prefix */
    assert_int_not_equal(b_find(b, "px-5-0", false)->state, B_ONGOING);
    assert_int_equal(b_find(b, "px-5-0", false)->n, 0);
    assert_int_not_equal(b_find(b, "px-0-9", false)->state, B_ONGOING);
    assert_int_equal(b_find(b, "px-0-9", false)->n, 0);
    assert_int_equal(b_find(b, "px-1-2", false)->state, B_ONGOING);
    assert_int_equal(b_find(b, "pxy-0-0", false)->state, B_ONGOING);
    weir__ktxn_pool_close(&p);
    free(b);
}

/* The old states a restore hands to new subtask k of np (CONTRACT9 section 3): at the same
 * parallelism only its own, otherwise every old one. */
typedef struct olds {
    uint32_t p;
    bool legacy; /* hand over the states as earlier versions packed them: the pending list */
    snap_t s[8];
    msgpack_object st[8];
    uint32_t sub[8];
} olds_t;

static weir_op_restore_t olds_for(olds_t *o, uint32_t k, uint32_t np) {
    weir_op_restore_t r = {.checkpoint_id = 2, .old_parallelism = o->p};
    for (uint32_t j = 0; j < o->p; j++) {
        o->st[j] = o->s[j].u.data;
        o->sub[j] = j;
        const msgpack_object *m = &o->s[j].u.data;
        for (uint32_t i = 0; o->legacy && i < m->via.map.size; i++)
            if (m->via.map.ptr[i].key.via.str.size == 7 &&
                memcmp(m->via.map.ptr[i].key.via.str.ptr, "pending", 7) == 0)
                o->st[j] = m->via.map.ptr[i].val;
    }
    if (np == o->p) {
        r.n = 1;
        r.old_subtask = &o->sub[k];
        r.states = &o->st[k];
    } else {
        r.n = o->p;
        r.old_subtask = o->sub;
        r.states = o->st;
    }
    return r;
}

/* How often @p v is visible. */
static int visible_count(const broker_t *b, uint64_t v) {
    int n = 0;
    for (size_t i = 0; i < b->n_visible; i++)
        n += b->visible[i] == v;
    return n;
}

/* A restore at another parallelism (a job resumed from a savepoint: new prefix "pn", or the same
 * explicit prefix "po", or "pn" from states of earlier versions, which carry no prefix; another
 * pool size too): p old subtasks each committed epoch 1,
 * pre-committed epoch 2 in the savepoint (subtask 1's epoch 2 is empty), left epoch 3 open
 * (subtask 0 also pre-committed it at a later checkpoint and lives on as a zombie); leftovers of
 * an older parallelism and pool size are open too. After the restore into np new subtasks every
 * savepoint transaction is committed exactly once, nothing of the old job is left open, and the
 * zombie can neither write nor commit anything new; a second restore (the new job's next
 * attempt) changes nothing; the new subtasks then commit their own transactions. */
static void test_rescale_restore(void **state) {
    (void)state;
    const uint32_t cases[][2] = {{2, 3}, {3, 1}, {4, 2}, {3, 3}, {1, 3}};
    for (int mode = 0; mode < 3; mode++)
        for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
            bool same_prefix = mode == 1;
            uint32_t p = cases[c][0], np = cases[c][1];
            broker_t *b = calloc(1, sizeof(*b));
            const char *leftovers[] = {"po-9-0", "po-0-6"};
            for (int i = 0; i < 2; i++) {
                bid_t *t = b_find(b, leftovers[i], true);
                t->epoch = 0;
                t->state = B_ONGOING;
                t->recs[t->n++] = 99999;
            }
            olds_t o = {.p = p, .legacy = mode == 2};
            weir_ktxn_pool_t old[8];
            mio_t om[8];
            for (uint32_t j = 0; j < p; j++) {
                om[j] = (mio_t){.b = b};
                weir__ktxn_pool_init(&old[j], &model_io, &om[j], "out", "po", j, p, 4, 900000);
                assert_int_equal(weir__ktxn_pool_start_fresh(&old[j]), 0);
                for (uint64_t i = 0; i < 3; i++)
                    assert_int_equal(pool_write(&old[j], &om[j], j * 1000 + i), 0);
                snap_t s1;
                assert_int_equal(snap_take(&old[j], 1, &s1), 0);
                snap_free(&s1);
                assert_int_equal(weir__ktxn_pool_notify(&old[j], 1, false), 0);
                if (j != 1)
                    for (uint64_t i = 10; i < 12; i++)
                        assert_int_equal(pool_write(&old[j], &om[j], j * 1000 + i), 0);
                assert_int_equal(snap_take(&old[j], 2, &o.s[j]), 0); /* the savepoint */
                for (uint64_t i = 20; i < 22; i++)
                    assert_int_equal(pool_write(&old[j], &om[j], j * 1000 + i), 0);
                if (j == 0) {
                    snap_t s3; /* a later checkpoint that never completes */
                    assert_int_equal(snap_take(&old[j], 3, &s3), 0);
                    snap_free(&s3);
                    assert_int_equal(pool_write(&old[j], &om[j], 30), 0);
                } else {
                    pool_crash(&old[j]);
                }
            }
            om[0].lease_lost = true; /* the zombie's task manager lost its lease */
            assert_int_equal(o.s[0].u.data.type, MSGPACK_OBJECT_MAP);
            weir_ktxn_pool_t nw[8];
            mio_t nm[8];
            for (int round = 0; round < 2; round++) {
                for (uint32_t k = 0; k < np; k++) {
                    nm[k] = (mio_t){.b = b};
                    weir__ktxn_pool_init(&nw[k], &model_io, &nm[k], "out",
                                         same_prefix ? "po" : "pn", k, np, 3, 900000);
                    weir_op_restore_t r = olds_for(&o, k, np);
                    if (weir__ktxn_pool_restore_from(&nw[k], &r) != 0)
                        fail_msg("%u -> %u: %s", p, np, nw[k].err);
                }
                /* exactly the savepoint's transactions (and epoch 1) are visible, once */
                size_t want = 0;
                for (uint32_t j = 0; j < p; j++) {
                    for (uint64_t i = 0; i < 22; i++) {
                        bool in = i < 3 || (i >= 10 && i < 12 && j != 1);
                        want += in;
                        if (visible_count(b, j * 1000 + i) != (in ? 1 : 0))
                            fail_msg("%u -> %u (mode %d): record %llu visible %d times", p, np,
                                     mode, (unsigned long long)(j * 1000 + i),
                                     visible_count(b, j * 1000 + i));
                    }
                }
                assert_int_equal(b->n_visible, want);
                /* nothing is left open; but a state of an earlier version names no prefix:
                 * old subtask 1's (nothing pending) cannot be known from its own state alone,
                 * which is all a subtask gets at the same parallelism: its epoch 3 stays open
                 * until the broker's timeout */
                for (size_t i = 0; i < b->n_ids; i++)
                    if (b->ids[i].state == B_ONGOING &&
                        !(mode == 2 && p == np && strncmp(b->ids[i].id, "po-1-", 5) == 0))
                        fail_msg("%u -> %u (mode %d): %s left open", p, np, mode, b->ids[i].id);
                if (round == 0)
                    for (uint32_t k = 0; k < np; k++)
                        pool_crash(&nw[k]);
            }
            /* the zombie wakes: its writes are refused, its late notify commits nothing new */
            size_t before = b->n_visible;
            assert_int_not_equal(pool_write(&old[0], &om[0], 31), 0);
            (void)weir__ktxn_pool_notify(&old[0], 2, false);
            assert_int_equal(b->n_visible, before);
            pool_crash(&old[0]);
            /* the new subtasks go on with their own transactions */
            for (uint32_t k = 0; k < np; k++) {
                assert_int_equal(pool_write(&nw[k], &nm[k], 50000 + k), 0);
                snap_t s5;
                assert_int_equal(snap_take(&nw[k], 5, &s5), 0);
                snap_free(&s5);
                assert_int_equal(weir__ktxn_pool_notify(&nw[k], 5, false), 0);
                assert_int_equal(visible_count(b, 50000 + k), 1);
                weir__ktxn_pool_close(&nw[k]);
            }
            assert_int_equal(b->n_visible, before + np);
            for (uint32_t j = 0; j < p; j++)
                snap_free(&o.s[j]);
            free(b);
        }
}

/* A savepoint restored after its job went on and reused the savepoint's slot: the slot's
 * producer keeps its id and epoch, so the coordinator holds a LATER transaction under the
 * handle's (pid, epoch). The restore must not commit it (variant 0: pre-committed and still
 * open when the job was cancelled; its records belong to epochs the new job replays), nor
 * report the savepoint's committed transaction as lost (variant 1: the later one was aborted
 * when the job was cancelled); the later transaction is not left open either. */
static void test_savepoint_slot_reused(void **state) {
    (void)state;
    for (int variant = 0; variant < 2; variant++) {
        broker_t *b = calloc(1, sizeof(*b));
        mio_t m = {.b = b};
        weir_ktxn_pool_t p;
        weir__ktxn_pool_init(&p, &model_io, &m, "out", "po", 0, 1, 3, 900000);
        assert_int_equal(weir__ktxn_pool_start_fresh(&p), 0);
        assert_int_equal(pool_write(&p, &m, 1), 0);
        snap_t sp; /* the savepoint (never notified) */
        assert_int_equal(snap_take(&p, 2, &sp), 0);
        uint32_t hk = UINT32_MAX;
        for (uint32_t k = 0; k < 3; k++)
            if (p.slots[k].state == WEIR_KTXN_PRECOMMITTED)
                hk = k;
        assert_true(hk != UINT32_MAX);
        /* the job goes on until a transaction opens on the savepoint's slot again */
        uint64_t id = 3, v = 100;
        uint32_t open_k = UINT32_MAX;
        for (int i = 0; i < 20 && open_k != hk; i++) {
            assert_int_equal(pool_write(&p, &m, v++), 0);
            assert_int_equal(weir__ktxn_pool_txn(&p, &open_k), 0);
            if (open_k == hk)
                break;
            snap_t s;
            assert_int_equal(snap_take(&p, id, &s), 0);
            snap_free(&s);
            assert_int_equal(weir__ktxn_pool_notify(&p, id++, false), 0);
        }
        assert_int_equal(open_k, hk);
        assert_int_equal(visible_count(b, 1), 1); /* the savepoint's, committed by the job */
        uint64_t later = v - 1;                   /* in the later transaction on that slot */
        if (variant == 0) {
            snap_t s;
            assert_int_equal(snap_take(&p, id, &s), 0); /* pre-committed, never completes */
            snap_free(&s);
        }
        weir__ktxn_pool_close(&p); /* cancelled: aborts the open transaction (variant 1) */
        assert_int_equal(open_txns(b), variant == 0 ? 1 : 0);
        /* a new job resumes from the savepoint */
        mio_t m2 = {.b = b};
        weir_ktxn_pool_t q;
        weir__ktxn_pool_init(&q, &model_io, &m2, "out", "pn", 0, 1, 3, 900000);
        uint32_t sub = 0;
        weir_op_restore_t r = {.checkpoint_id = 2,
                               .old_parallelism = 1,
                               .n = 1,
                               .old_subtask = &sub,
                               .states = &sp.u.data};
        if (weir__ktxn_pool_restore_from(&q, &r) != 0)
            fail_msg("variant %d: %s", variant, q.err);
        assert_int_equal(visible_count(b, 1), 1);     /* exactly once */
        assert_int_equal(visible_count(b, later), 0); /* the later transaction: not committed */
        assert_int_equal(open_txns(b), 0);            /* and not left open */
        weir__ktxn_pool_close(&q);
        snap_free(&sp);
        free(b);
    }
}

/* Two transactions of one producer id and epoch with the same coordinator start time could not
 * be told apart by a restore: such a pre-commit is refused. */
static void test_same_start_refused(void **state) {
    (void)state;
    broker_t *b = calloc(1, sizeof(*b));
    mio_t m = {.b = b};
    weir_ktxn_pool_t p;
    weir__ktxn_pool_init(&p, &model_io, &m, "out", "px", 0, 1, 3, 900000);
    assert_int_equal(weir__ktxn_pool_start_fresh(&p), 0);
    assert_int_equal(pool_write(&p, &m, 1), 0);
    uint32_t k;
    assert_int_equal(weir__ktxn_pool_txn(&p, &k), 0);
    p.slots[k].start_ms = b_find(b, p.slots[k].id, false)->start_ms; /* as if it repeated */
    snap_t s;
    assert_int_equal(snap_take(&p, 1, &s), WEIR_EIO);
    snap_free(&s);
    assert_non_null(strstr(p.err, "like the previous transaction of producer id"));
    assert_non_null(strstr(p.err, "a restore could not tell them apart"));
    weir__ktxn_pool_close(&p);
    free(b);
}

/* Test PRNG (xorshift64*), independent of the code under test. */
static uint64_t rnd(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

typedef struct attempt {
    weir_ktxn_pool_t p;
    mio_t m;
    bool alive;
    uint64_t snapped[64]; /* checkpoints it snapshotted (for late notifications) */
    size_t n_snapped;
} attempt_t;

static void attempt_drop(attempt_t *a) {
    if (a->alive)
        pool_crash(&a->p); /* its producers simply stop */
    a->alive = false;
}

static void test_random_crashes_zombies_exactly_once(void **state) {
    (void)state;
    uint64_t seed = 0x2545f4914f6cdd1dull;
    int zombie_writes_refused = 0, restores = 0, losses_detected = 0, exhausted = 0;
    for (int round = 0; round < 300; round++) {
        broker_t *b = calloc(1, sizeof(*b));
        bool timeouts = round % 5 == 4; /* some rounds let the broker abort by timeout */
        const uint64_t N = 80 + rnd(&seed) % 120;
        snap_t snaps[200];
        bool taken[200] = {0}, completed[200] = {0};
        uint64_t pos_at[200];
        uint64_t next_id = 1, last_completed = 0, pos = 0;
        attempt_t *cur = calloc(1, sizeof(*cur)), *zombie = calloc(1, sizeof(*zombie));
        cur->m.b = b;
        zombie->m.b = b;
        weir__ktxn_pool_init(&cur->p, &model_io, &cur->m, "out", "px", 0, 1, 6, 900000);
        cur->alive = true;
        assert_int_equal(weir__ktxn_pool_start_fresh(&cur->p), 0);
        bool lost = false;
        int steps = 0;
        while (pos < N && !lost) {
            assert_true(++steps < 20000);
            uint64_t op = rnd(&seed) % 20;
            int rc = 0;
            if (op < 11) {
                rc = pool_write(&cur->p, &cur->m, pos);
                if (rc == 0)
                    pos++;
            } else if (op < 15 && next_id < 190) {
                uint64_t id = next_id++;
                rc = snap_take(&cur->p, id, &snaps[id]);
                if (rc == 0) {
                    taken[id] = true;
                    pos_at[id] = pos;
                    cur->snapped[cur->n_snapped++ % 64] = id;
                    if (rnd(&seed) % 3 != 0) { /* completes; the notification may be lost */
                        last_completed = id;
                        completed[id] = true;
                        if (rnd(&seed) % 4 != 0)
                            rc = weir__ktxn_pool_notify(&cur->p, id, false);
                    }
                } else {
                    snap_free(&snaps[id]);
                }
            } else if (op < 17 && zombie->alive) {
                /* the zombie acts: writes, snapshots, or a late notification of a completed
                 * checkpoint it had snapshotted */
                uint64_t z = rnd(&seed) % 3;
                if (z == 0) {
                    if (pool_write(&zombie->p, &zombie->m, 1u << 30) != 0)
                        zombie_writes_refused++, attempt_drop(zombie);
                } else if (z == 1) {
                    snap_t zs;
                    if (snap_take(&zombie->p, 199, &zs) != 0)
                        attempt_drop(zombie);
                    snap_free(&zs);
                } else if (zombie->n_snapped) {
                    uint64_t id =
                        zombie->snapped[rnd(&seed) %
                                        (zombie->n_snapped < 64 ? zombie->n_snapped : 64)];
                    if (completed[id] && weir__ktxn_pool_notify(&zombie->p, id, false))
                        attempt_drop(zombie);
                }
            } else if (op == 17 && timeouts) {
                /* the broker's timeout aborts an open transaction (maybe a pre-committed one) */
                for (size_t i = 0; i < b->n_ids; i++)
                    if (b->ids[i].state == B_ONGOING && rnd(&seed) % 2) {
                        b_abort(&b->ids[i]);
                        b->ids[i].epoch++;
                        b->timeouts++;
                        break;
                    }
            } else if (op >= 18) {
                rc = WEIR_ECANCELED; /* a crash */
            }
            if (rc != 0) {
                if (rc != WEIR_ECANCELED) {
                    /* outside timeout rounds only an exhausted pool may fail a healthy sink */
                    if (!timeouts && rc != WEIR_ESTATE)
                        fail_msg("round %d: unexpected error %d: %s", round, rc, cur->p.err);
                    exhausted += rc == WEIR_ESTATE;
                }
                /* restart from the latest completed checkpoint; the old attempt may live on */
                attempt_drop(zombie);
                free(zombie);
                attempt_t *old = cur;
                if (rnd(&seed) % 2) {
                    zombie = old;
                    zombie->m.lease_lost = true;
                } else {
                    attempt_drop(old);
                    zombie = old;
                }
                cur = calloc(1, sizeof(*cur));
                cur->m.b = b;
                weir__ktxn_pool_init(&cur->p, &model_io, &cur->m, "out", "px", 0, 1, 6, 900000);
                cur->alive = true;
                restores++;
                if (last_completed)
                    rc = weir__ktxn_pool_restore(&cur->p, last_completed,
                                                 &snaps[last_completed].u.data);
                else
                    rc = weir__ktxn_pool_start_fresh(&cur->p);
                pos = last_completed ? pos_at[last_completed] : 0;
                if (rc != 0) {
                    /* only a transaction the broker aborted can make a restore fail */
                    assert_true(timeouts);
                    assert_non_null(strstr(cur->p.err, "its records are lost"));
                    losses_detected++;
                    lost = true;
                } else {
                    assert_int_equal(open_txns(b), 0); /* nothing of ours lingers */
                }
            }
            assert_prefix(b);
            assert_true(b->n_visible <= (last_completed ? pos_at[last_completed] : 0));
        }
        if (!lost) {
            int rc = weir__ktxn_pool_end_input(&cur->p);
            snap_t fin;
            bool snapped = false;
            if (rc == 0) {
                rc = snap_take(&cur->p, 0, &fin);
                snapped = true;
            }
            if (rc == 0)
                rc = weir__ktxn_pool_notify(&cur->p, next_id, true);
            if (snapped)
                snap_free(&fin);
            if (rc == 0) {
                assert_int_equal(b->n_visible, N);
            } else {
                assert_true(timeouts); /* a loss must surface as an error, never as success */
                losses_detected++;
            }
            assert_prefix(b);
        }
        attempt_drop(zombie);
        if (cur->alive)
            weir__ktxn_pool_close(&cur->p);
        free(cur);
        free(zombie);
        for (int i = 0; i < 200; i++)
            if (taken[i])
                snap_free(&snaps[i]);
        free(b);
    }
    printf("restores %d, zombie writes refused %d, losses detected %d, exhausted pools %d\n",
           restores, zombie_writes_refused, losses_detected, exhausted);
    assert_true(restores > 300);
    assert_true(zombie_writes_refused > 10);
    assert_true(losses_detected > 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_and_slot_of),
        cmocka_unit_test(test_steady_state_rotation),
        cmocka_unit_test(test_restore_commits_and_detects_loss),
        cmocka_unit_test(test_foreign_ids_aborted),
        cmocka_unit_test(test_random_crashes_zombies_exactly_once),
        cmocka_unit_test(test_rescale_restore),
        cmocka_unit_test(test_savepoint_slot_reused),
        cmocka_unit_test(test_same_start_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
