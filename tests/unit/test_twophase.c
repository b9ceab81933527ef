/* Unit tests of the two-phase-commit helper (connectors/common/twophase.h) against an in-memory
 * fake transactional target. The fake keeps a "durable store" of transactions (open, pending,
 * committed, aborted) that survives a simulated crash (the helper is dropped without close, like
 * kill -9), and a visible output log appended at each commit. Oracles: hand-written expected
 * outputs, and a randomized replay model in which a deterministic source emits 0, 1, 2, ... and
 * restarts from the position of the latest completed checkpoint: the visible output must always
 * be a prefix of 0..N-1 (no duplicates, no gaps) and equal all of it at the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "connectors/common/twophase.h"

/* ---- the fake target ------------------------------------------------------------------- */

enum { T_OPEN, T_PENDING, T_COMMITTED, T_ABORTED };

#define MAX_TXN 4096
#define MAX_REC 65536

typedef struct fake_txn {
    int st;
    uint64_t recs[128];
    size_t n;
} fake_txn_t;

typedef struct fake {
    fake_txn_t txn[MAX_TXN];
    size_t n_txn;
    uint64_t visible[MAX_REC]; /* committed records in commit order */
    size_t n_visible;
    int commits, commit_noops, begins, aborts, lingering_aborted;
    bool fail_precommit;
} fake_t;

static int f_begin(void *target, uint64_t epoch, void **txn) {
    fake_t *f = target;
    (void)epoch;
    assert_true(f->n_txn < MAX_TXN);
    fake_txn_t *t = &f->txn[f->n_txn++];
    t->st = T_OPEN;
    t->n = 0;
    f->begins++;
    *txn = t;
    return 0;
}

static int f_precommit(void *target, void *txn, msgpack_packer *pk) {
    fake_t *f = target;
    fake_txn_t *t = txn;
    assert_int_equal(t->st, T_OPEN);
    if (f->fail_precommit) {
        t->st = T_ABORTED;
        return WEIR_EIO;
    }
    t->st = T_PENDING;
    msgpack_pack_array(pk, 1);
    msgpack_pack_uint64(pk, (uint64_t)(t - f->txn));
    return 0;
}

static size_t handle_id(const msgpack_object *h) {
    assert_int_equal(h->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(h->via.array.size, 1);
    return (size_t)h->via.array.ptr[0].via.u64;
}

static int f_commit(void *target, const msgpack_object *handle) {
    fake_t *f = target;
    size_t id = handle_id(handle);
    assert_true(id < f->n_txn);
    fake_txn_t *t = &f->txn[id];
    if (t->st == T_COMMITTED) {
        f->commit_noops++;
        return 0;
    }
    if (t->st != T_PENDING)
        return WEIR_ENOTFOUND; /* data lost */
    t->st = T_COMMITTED;
    f->commits++;
    for (size_t i = 0; i < t->n; i++) {
        assert_true(f->n_visible < MAX_REC);
        f->visible[f->n_visible++] = t->recs[i];
    }
    return 0;
}

static void f_abort(void *target, void *txn) {
    fake_t *f = target;
    fake_txn_t *t = txn;
    assert_int_equal(t->st, T_OPEN);
    t->st = T_ABORTED;
    f->aborts++;
}

static int f_abort_lingering(void *target, const msgpack_object *keep, size_t n_keep) {
    fake_t *f = target;
    for (size_t i = 0; i < f->n_txn; i++) {
        fake_txn_t *t = &f->txn[i];
        if (t->st != T_OPEN && t->st != T_PENDING)
            continue;
        bool kept = false;
        for (size_t j = 0; j < n_keep; j++)
            kept = kept || handle_id(&keep[j]) == i;
        if (!kept) {
            t->st = T_ABORTED;
            f->lingering_aborted++;
        }
    }
    return 0;
}

static const weir_2pc_ops_t fake_ops = {.begin = f_begin,
                                        .precommit = f_precommit,
                                        .commit = f_commit,
                                        .abort = f_abort,
                                        .abort_lingering = f_abort_lingering};

static void write_rec(weir_2pc_t *tp, uint64_t v) {
    void *txn;
    assert_int_equal(weir_2pc_txn(tp, &txn), 0);
    fake_txn_t *t = txn;
    assert_int_equal(t->st, T_OPEN);
    assert_true(t->n < 128);
    t->recs[t->n++] = v;
}

/* A packed snapshot, kept as bytes (what the job manager stores). */
typedef struct snap {
    msgpack_sbuffer sb;
    msgpack_unpacked u;
} snap_t;

static void snap_take(weir_2pc_t *tp, uint64_t id, snap_t *s) {
    msgpack_sbuffer_init(&s->sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &s->sb, msgpack_sbuffer_write);
    assert_int_equal(weir_2pc_snapshot(tp, id, &pk), 0);
    msgpack_unpacked_init(&s->u);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&s->u, s->sb.data, s->sb.size, &off),
                     MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, s->sb.size); /* exactly one object */
}

static void snap_free(snap_t *s) {
    msgpack_unpacked_destroy(&s->u);
    msgpack_sbuffer_destroy(&s->sb);
}

/* kill -9: the helper's memory is gone, nothing is aborted; the store keeps everything. */
static void crash(weir_2pc_t *tp) {
    for (size_t i = 0; i < tp->n_pending; i++)
        free(tp->pending[i].handle);
    free(tp->pending);
    memset(tp, 0, sizeof(*tp));
}

static void assert_visible(const fake_t *f, const uint64_t *want, size_t n) {
    assert_int_equal(f->n_visible, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(f->visible[i], want[i]);
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_basic_commit_order(void **state) {
    (void)state;
    fake_t *f = calloc(1, sizeof(*f));
    weir_2pc_t tp;
    weir_2pc_init(&tp, &fake_ops, f);
    assert_int_equal(weir_2pc_start_fresh(&tp), 0);
    assert_int_equal(f->begins, 0); /* lazily */
    write_rec(&tp, 1);
    write_rec(&tp, 2);
    assert_int_equal(f->begins, 1);
    snap_t s1, s2, s3;
    snap_take(&tp, 1, &s1);
    /* The snapshot lists exactly the pre-committed transaction with its checkpoint. */
    assert_int_equal(s1.u.data.type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(s1.u.data.via.array.size, 1);
    assert_int_equal(s1.u.data.via.array.ptr[0].via.array.ptr[0].via.u64, 1);
    write_rec(&tp, 3);
    snap_take(&tp, 2, &s2);
    assert_int_equal(s2.u.data.via.array.size, 2); /* 1 not yet committed: still listed */
    /* An epoch without records: no transaction. */
    snap_take(&tp, 3, &s3);
    assert_int_equal(f->begins, 2);
    assert_int_equal(f->n_visible, 0); /* nothing visible before a notify */
    assert_int_equal(weir_2pc_notify(&tp, 1, false), 0);
    assert_visible(f, (uint64_t[]){1, 2}, 2);
    assert_int_equal(weir_2pc_notify(&tp, 1, false), 0); /* repeated: nothing */
    assert_visible(f, (uint64_t[]){1, 2}, 2);
    assert_int_equal(weir_2pc_notify(&tp, 3, false), 0); /* 2 was lost: 3 covers it */
    assert_visible(f, (uint64_t[]){1, 2, 3}, 3);
    assert_int_equal(tp.n_pending, 0);
    assert_int_equal(f->commits, 2);
    write_rec(&tp, 4);
    weir_2pc_close(&tp); /* cancel: the open transaction is aborted */
    assert_int_equal(f->aborts, 1);
    assert_int_equal(f->txn[2].st, T_ABORTED);
    assert_visible(f, (uint64_t[]){1, 2, 3}, 3);
    snap_free(&s1);
    snap_free(&s2);
    snap_free(&s3);
    free(f);
}

static void test_crash_restore(void **state) {
    (void)state;
    for (int variant = 0; variant < 2; variant++) {
        fake_t *f = calloc(1, sizeof(*f));
        weir_2pc_t tp;
        weir_2pc_init(&tp, &fake_ops, f);
        assert_int_equal(weir_2pc_start_fresh(&tp), 0);
        write_rec(&tp, 10);
        snap_t s1, s2;
        snap_take(&tp, 1, &s1);
        write_rec(&tp, 20);
        snap_take(&tp, 2, &s2);
        assert_int_equal(weir_2pc_notify(&tp, 1, false), 0);
        write_rec(&tp, 30); /* epoch 3, open */
        crash(&tp);
        assert_visible(f, (uint64_t[]){10}, 1);
        weir_2pc_init(&tp, &fake_ops, f);
        if (variant == 0) {
            /* Checkpoint 2 completed (notify lost in the crash): restore commits it. */
            assert_int_equal(weir_2pc_restore(&tp, 2, &s2.u.data), 0);
            assert_visible(f, (uint64_t[]){10, 20}, 2);
            assert_int_equal(f->commit_noops, 1); /* epoch 1 was committed already */
            assert_int_equal(f->txn[1].st, T_COMMITTED);
        } else {
            /* Checkpoint 2 never completed: restore from 1; epoch 2's pending is aborted. */
            assert_int_equal(weir_2pc_restore(&tp, 1, &s1.u.data), 0);
            assert_visible(f, (uint64_t[]){10}, 1);
            assert_int_equal(f->txn[1].st, T_ABORTED);
        }
        assert_int_equal(f->txn[2].st, T_ABORTED); /* epoch 3's open transaction */
        assert_true(weir_2pc_checkpointing(&tp));
        assert_int_equal(tp.n_pending, 0);
        /* Restoring the same state twice (a second crash) changes nothing. */
        size_t before = f->n_visible;
        crash(&tp);
        weir_2pc_init(&tp, &fake_ops, f);
        assert_int_equal(weir_2pc_restore(&tp, 2, variant == 0 ? &s2.u.data : &s1.u.data), 0);
        assert_int_equal(f->n_visible, before);
        weir_2pc_close(&tp);
        snap_free(&s1);
        snap_free(&s2);
        free(f);
    }
}

static void test_final_checkpoint_orders_last(void **state) {
    (void)state;
    fake_t *f = calloc(1, sizeof(*f));
    weir_2pc_t tp;
    weir_2pc_init(&tp, &fake_ops, f);
    write_rec(&tp, 1);
    snap_t s5, s0;
    snap_take(&tp, 5, &s5);
    write_rec(&tp, 2);
    weir_2pc_end_input(&tp);
    snap_take(&tp, 0, &s0); /* final snapshot */
    /* A late notify of 5 commits epoch 5 only, never the final epoch. */
    assert_int_equal(weir_2pc_notify(&tp, 5, false), 0);
    assert_visible(f, (uint64_t[]){1}, 1);
    assert_int_equal(weir_2pc_notify(&tp, 1000, false), 0);
    assert_visible(f, (uint64_t[]){1}, 1);
    assert_int_equal(weir_2pc_notify(&tp, 6, true), 0);
    assert_visible(f, (uint64_t[]){1, 2}, 2);
    weir_2pc_close(&tp);
    assert_int_equal(f->aborts, 0);
    snap_free(&s5);
    snap_free(&s0);
    free(f);
}

static void test_roll_and_commit_all(void **state) {
    (void)state;
    fake_t *f = calloc(1, sizeof(*f));
    weir_2pc_t tp;
    weir_2pc_init(&tp, &fake_ops, f);
    write_rec(&tp, 1);
    assert_int_equal(weir_2pc_roll(&tp), 0); /* early pre-commit, unassigned */
    write_rec(&tp, 2);
    assert_int_equal(weir_2pc_notify(&tp, 7, false), 0); /* unassigned: not committed */
    assert_int_equal(f->n_visible, 0);
    /* No checkpointing: commit_all pre-commits the open one and commits all, in order. */
    assert_false(weir_2pc_checkpointing(&tp));
    assert_int_equal(weir_2pc_commit_all(&tp), 0);
    assert_visible(f, (uint64_t[]){1, 2}, 2);
    weir_2pc_close(&tp);

    /* With a snapshot, the rolled transaction joins that checkpoint. */
    memset(f, 0, sizeof(*f));
    weir_2pc_init(&tp, &fake_ops, f);
    write_rec(&tp, 1);
    assert_int_equal(weir_2pc_roll(&tp), 0);
    write_rec(&tp, 2);
    snap_t s;
    snap_take(&tp, 4, &s);
    assert_int_equal(s.u.data.via.array.size, 2);
    for (int i = 0; i < 2; i++)
        assert_int_equal(s.u.data.via.array.ptr[i].via.array.ptr[0].via.u64, 4);
    assert_int_equal(weir_2pc_notify(&tp, 4, false), 0);
    assert_visible(f, (uint64_t[]){1, 2}, 2);
    weir_2pc_close(&tp);
    snap_free(&s);
    free(f);
}

static void test_precommit_failure_packs_nothing(void **state) {
    (void)state;
    fake_t *f = calloc(1, sizeof(*f));
    weir_2pc_t tp;
    weir_2pc_init(&tp, &fake_ops, f);
    write_rec(&tp, 1);
    f->fail_precommit = true;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    assert_int_equal(weir_2pc_snapshot(&tp, 1, &pk), WEIR_EIO);
    assert_int_equal(sb.size, 0);
    assert_int_equal(tp.n_pending, 0);
    assert_false(tp.has_txn);
    weir_2pc_close(&tp);
    assert_int_equal(f->aborts, 0); /* the failed transaction is not aborted twice */
    msgpack_sbuffer_destroy(&sb);
    free(f);
}

static void test_restore_rejects_malformed(void **state) {
    (void)state;
    fake_t *f = calloc(1, sizeof(*f));
    weir_2pc_t tp;
    weir_2pc_init(&tp, &fake_ops, f);
    msgpack_object bad = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = 3};
    assert_int_equal(weir_2pc_restore(&tp, 1, &bad), WEIR_ECORRUPT);
    msgpack_object nil = {.type = MSGPACK_OBJECT_NIL};
    assert_int_equal(weir_2pc_restore(&tp, 1, &nil), 0);
    weir_2pc_close(&tp);
    free(f);
}

/* A restore at another parallelism hands one subtask the pending lists of several old subtasks
 * (weir_2pc_restore_many): every listed transaction is committed once, in list order; nothing
 * listed is aborted; every other lingering transaction is; a second restore of the same lists
 * changes nothing; a malformed list commits nothing at all. */
static void test_restore_many(void **state) {
    (void)state;
    fake_t *f = calloc(1, sizeof(*f));
    weir_2pc_t a, b;
    weir_2pc_init(&a, &fake_ops, f);
    weir_2pc_init(&b, &fake_ops, f);
    write_rec(&a, 1);
    write_rec(&b, 2);
    write_rec(&b, 3);
    snap_t sa, sb;
    snap_take(&a, 5, &sa);
    snap_take(&b, 5, &sb);
    write_rec(&a, 4); /* open after the snapshot: lingering */
    crash(&a);
    crash(&b);
    /* a malformed second list: nothing is committed, not even the first list's */
    msgpack_object bad = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = 3};
    msgpack_object with_bad[2] = {sa.u.data, bad};
    weir_2pc_t n;
    weir_2pc_init(&n, &fake_ops, f);
    assert_int_equal(weir_2pc_restore_many(&n, 5, with_bad, 2), WEIR_ECORRUPT);
    assert_int_equal(f->n_visible, 0);
    assert_int_equal(f->lingering_aborted, 0);
    weir_2pc_close(&n);
    msgpack_object nil = {.type = MSGPACK_OBJECT_NIL};
    msgpack_object lists[3] = {sa.u.data, nil, sb.u.data};
    for (int round = 0; round < 2; round++) {
        weir_2pc_init(&n, &fake_ops, f);
        assert_int_equal(weir_2pc_restore_many(&n, 5, lists, 3), 0);
        assert_visible(f, (uint64_t[]){1, 2, 3}, 3);
        assert_int_equal(f->txn[0].st, T_COMMITTED);
        assert_int_equal(f->txn[1].st, T_COMMITTED);
        assert_int_equal(f->txn[2].st, T_ABORTED); /* a's open transaction */
        assert_int_equal(f->lingering_aborted, 1);
        assert_int_equal(f->commits, 2);
        assert_int_equal(f->commit_noops, round == 0 ? 0 : 2);
        assert_true(weir_2pc_checkpointing(&n));
        assert_int_equal(n.epoch, 6);
        /* the restored subtask goes on with its own transactions */
        write_rec(&n, 7);
        snap_t s6;
        snap_take(&n, 6, &s6);
        snap_free(&s6);
        crash(&n);
        f->txn[f->n_txn - 1].st = T_ABORTED; /* not part of this check */
    }
    /* no list at all: only abort-lingering (a new subtask of an up-scale) */
    weir_2pc_init(&n, &fake_ops, f);
    assert_int_equal(weir_2pc_restore_many(&n, 5, NULL, 0), 0);
    assert_true(weir_2pc_checkpointing(&n));
    assert_int_equal(f->n_visible, 3);
    weir_2pc_close(&n);
    snap_free(&sa);
    snap_free(&sb);
    free(f);
}

/* Test PRNG (xorshift64*), independent of the code under test. */
static uint64_t rnd(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static void test_random_replay_exactly_once(void **state) {
    (void)state;
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (int round = 0; round < 200; round++) {
        fake_t *f = calloc(1, sizeof(*f));
        assert_non_null(f);
        const uint64_t N = 60 + rnd(&seed) % 100;
        /* Checkpoints: sink state + source position; "completed" ones have _metadata. */
        snap_t snaps[256];
        uint64_t pos_at[256];
        bool taken[256] = {0};
        uint64_t next_id = 1, last_completed = 0;
        uint64_t pos = 0; /* the source's next record */
        weir_2pc_t tp;
        weir_2pc_init(&tp, &fake_ops, f);
        assert_int_equal(weir_2pc_start_fresh(&tp), 0);
        int steps = 0;
        while (pos < N) {
            assert_true(++steps < 10000);
            uint64_t op = rnd(&seed) % 10;
            if (op < 6) {
                write_rec(&tp, pos++);
            } else if (op < 8 && next_id < 250) {
                uint64_t id = next_id++;
                snap_take(&tp, id, &snaps[id]);
                taken[id] = true;
                pos_at[id] = pos;
                if (rnd(&seed) % 3 != 0) { /* completes; the notify may get lost */
                    last_completed = id;
                    if (rnd(&seed) % 2)
                        assert_int_equal(weir_2pc_notify(&tp, id, false), 0);
                }
            } else if (op == 8) {
                /* crash, restart from the latest completed checkpoint (or from scratch) */
                crash(&tp);
                weir_2pc_init(&tp, &fake_ops, f);
                if (last_completed) {
                    assert_int_equal(
                        weir_2pc_restore(&tp, last_completed, &snaps[last_completed].u.data), 0);
                    pos = pos_at[last_completed];
                } else {
                    assert_int_equal(weir_2pc_start_fresh(&tp), 0);
                    pos = 0;
                }
            }
            /* Invariant: visible = exactly 0..k-1 for some k <= committed position. */
            for (size_t i = 0; i < f->n_visible; i++)
                assert_int_equal(f->visible[i], i);
            assert_true(f->n_visible <= (last_completed ? pos_at[last_completed] : 0));
        }
        /* End of input: final snapshot, final checkpoint completes, final notify. */
        weir_2pc_end_input(&tp);
        snap_t fin;
        snap_take(&tp, 0, &fin);
        assert_int_equal(weir_2pc_notify(&tp, next_id, true), 0);
        assert_int_equal(f->n_visible, N);
        for (size_t i = 0; i < N; i++)
            assert_int_equal(f->visible[i], i);
        weir_2pc_close(&tp);
        snap_free(&fin);
        for (int i = 0; i < 256; i++)
            if (taken[i])
                snap_free(&snaps[i]);
        free(f);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_commit_order),
        cmocka_unit_test(test_crash_restore),
        cmocka_unit_test(test_final_checkpoint_orders_last),
        cmocka_unit_test(test_roll_and_commit_all),
        cmocka_unit_test(test_precommit_failure_packs_nothing),
        cmocka_unit_test(test_restore_rejects_malformed),
        cmocka_unit_test(test_restore_many),
        cmocka_unit_test(test_random_replay_exactly_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
