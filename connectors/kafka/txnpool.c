/* The exactly-once Kafka sink's pool of transactional ids and its 2PC target (txnpool.h; the
 * argument is in connectors/kafka/README.md, "Sink").
 *
 * Owns: the slots (one transactional id each) and their states, the 2PC helper of the sink.
 * Invariants: see txnpool.h; in short, a slot whose transaction a snapshot listed is neither
 * re-initialised nor given a new transaction before a later checkpoint completed; a refused
 * commit is an error naming the transaction, never ignored.
 * Threading: one subtask thread. */
#include "connectors/kafka/txnpool.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#define COMP "kafka-sink"

/* Ordering key of a checkpoint id: 0 (final) is the highest. */
static uint64_t ck_key(uint64_t id) {
    return id == 0 ? UINT64_MAX : id;
}

static int pool_errf(weir_ktxn_pool_t *p, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int pool_errf(weir_ktxn_pool_t *p, int rc, const char *fmt, ...) {
    int n = weir_fmt(p->err, sizeof(p->err), "Kafka sink '%s': ", p->name);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err + n, sizeof(p->err) - (size_t)n, fmt, ap);
    va_end(ap);
    return rc;
}

/* An I/O error: its message (already one line) after the sink's name. */
static int io_err(weir_ktxn_pool_t *p, int rc, const char *err) {
    return pool_errf(p, rc < 0 ? rc : WEIR_EIO, "%s", err);
}

/* Tells the I/O layer (metrics) that a transaction with records ended. */
static void ended(weir_ktxn_pool_t *p, bool committed) {
    if (p->io->ended)
        p->io->ended(p->io_arg, committed);
}

static void killpoint(weir_ktxn_pool_t *p, const char *point) {
    if (p->io->killpoint)
        p->io->killpoint(p->io_arg, point);
}

int weir__ktxn_pool_slot_of(const weir_ktxn_pool_t *p, const char *id) {
    char head[WEIR_KTXN_ID_CAP + 16];
    int hl = weir_fmt(head, sizeof(head), "%s-%u-", p->prefix, p->subtask);
    if (strncmp(id, head, (size_t)hl) != 0)
        return -1;
    const char *s = id + hl;
    char *end;
    unsigned long k = strtoul(s, &end, 10);
    if (end == s || *end || (s[0] == '0' && s[1]) || s[0] == '-' || s[0] == '+' || k >= p->size)
        return -1;
    return (int)k;
}

static int slot_init(weir_ktxn_pool_t *p, uint32_t k) {
    weir_ktxn_slot_t *s = &p->slots[k];
    char err[WEIR_KTXN_ERR_CAP];
    p->io->drop(p->io_arg, k);
    s->live = false;
    int rc = p->io->init(p->io_arg, k, s->id, &s->pid, &s->epoch, err);
    if (rc != 0) {
        s->state = WEIR_KTXN_EMPTY;
        return io_err(p, rc, err);
    }
    s->live = true;
    s->state = WEIR_KTXN_READY;
    s->start_ms = -1;
    WEIR_DEBUG(COMP, "%s: producer id %lld epoch %d", s->id, (long long)s->pid, s->epoch);
    return 0;
}

/* ---- the 2PC target ------------------------------------------------------------------------ */

static int tx_begin(void *target, uint64_t epoch, void **txn) {
    weir_ktxn_pool_t *p = target;
    (void)epoch;
    int64_t pick = -1;
    for (uint32_t k = 0; k < p->size && pick < 0; k++)
        if (p->slots[k].state == WEIR_KTXN_READY)
            pick = k;
    for (uint32_t k = 0; k < p->size && pick < 0; k++)
        if (p->slots[k].state == WEIR_KTXN_EMPTY) {
            int rc = slot_init(p, k);
            if (rc != 0)
                return rc;
            pick = k;
        }
    if (pick < 0)
        return pool_errf(p, WEIR_ESTATE,
                         "all %u transactional ids of subtask %u are held by pre-committed "
                         "transactions whose checkpoints did not complete yet: raise "
                         "sink.transactional-id-pool-size or find why checkpoints fail",
                         p->size, p->subtask);
    weir_ktxn_slot_t *s = &p->slots[pick];
    char err[WEIR_KTXN_ERR_CAP];
    int rc = p->io->begin(p->io_arg, (uint32_t)pick, err);
    if (rc != 0)
        return io_err(p, rc, err);
    s->state = WEIR_KTXN_OPEN;
    s->records = 0;
    *txn = s;
    return 0;
}

static void pack_handle(msgpack_packer *pk, const weir_ktxn_slot_t *s, int64_t start_ms) {
    msgpack_pack_array(pk, 5);
    size_t idl = strlen(s->id);
    msgpack_pack_str(pk, idl);
    msgpack_pack_str_body(pk, s->id, idl);
    msgpack_pack_int64(pk, s->pid);
    msgpack_pack_int16(pk, s->epoch);
    msgpack_pack_uint64(pk, s->records);
    msgpack_pack_int64(pk, start_ms);
}

static int tx_precommit(void *target, void *txn, msgpack_packer *pk) {
    weir_ktxn_pool_t *p = target;
    weir_ktxn_slot_t *s = txn;
    uint32_t k = (uint32_t)(s - p->slots);
    char err[WEIR_KTXN_ERR_CAP];
    int rc = p->io->flush(p->io_arg, k, err);
    if (rc != 0)
        return io_err(p, rc, err);
    int64_t start_ms = -1;
    if (s->records == 0) {
        /* Nothing was sent: end the empty transaction now; its handle commits nothing. */
        if ((rc = p->io->commit(p->io_arg, k, err)) != 0)
            return io_err(p, rc, err);
        s->state = WEIR_KTXN_READY;
    } else {
        /* The coordinator must hold the transaction open under this slot's producer id and
         * epoch: what a restore would commit with EndTxn. */
        weir_ktxn_info_t info;
        if ((rc = p->io->describe(p->io_arg, s->id, &info, err)) != 0)
            return io_err(p, rc, err);
        if (info.error != WEIR_KERR_NONE || strcmp(info.state, "Ongoing") != 0 ||
            info.producer_id != s->pid || info.producer_epoch != s->epoch)
            return pool_errf(p, WEIR_EIO,
                             "transaction %s is %s (%s, producer id %lld epoch %d; expected "
                             "Ongoing with %lld/%d) at pre-commit: it was aborted or fenced",
                             s->id, info.state, weir_kproto_err_name(info.error),
                             (long long)info.producer_id, info.producer_epoch, (long long)s->pid,
                             s->epoch);
        /* A restore tells this transaction from a later one of the same producer id and epoch
         * by its start time (tx_commit): two must never share one. */
        if (s->start_ms >= 0 && info.txn_start_ms == s->start_ms)
            return pool_errf(p, WEIR_EIO,
                             "transaction %s started at %lld ms like the previous transaction of "
                             "producer id %lld epoch %d: a restore could not tell them apart, so "
                             "it is not pre-committed (the job restarts and re-initialises the "
                             "id)",
                             s->id, (long long)info.txn_start_ms, (long long)s->pid, s->epoch);
        start_ms = info.txn_start_ms;
        s->start_ms = start_ms;
        s->state = WEIR_KTXN_PRECOMMITTED;
    }
    pack_handle(pk, s, start_ms);
    return 0;
}

typedef struct handle {
    char id[WEIR_KTXN_ID_CAP];
    int64_t pid;
    int16_t epoch;
    uint64_t records;
    int64_t start_ms; /* -1: unknown (handles of earlier versions, empty transactions) */
} handle_t;

/* A handle: [id, producer id, epoch, records] or [id, producer id, epoch, records, start ms]. */
static int handle_parse(weir_ktxn_pool_t *p, const msgpack_object *o, handle_t *h) {
    const msgpack_object *a = o->via.array.ptr;
    bool ok =
        o->type == MSGPACK_OBJECT_ARRAY && (o->via.array.size == 4 || o->via.array.size == 5) &&
        a[0].type == MSGPACK_OBJECT_STR && a[0].via.str.size > 0 &&
        a[0].via.str.size < WEIR_KTXN_ID_CAP && !memchr(a[0].via.str.ptr, 0, a[0].via.str.size) &&
        a[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER && a[1].via.u64 <= INT64_MAX &&
        a[2].type == MSGPACK_OBJECT_POSITIVE_INTEGER && a[2].via.u64 <= INT16_MAX &&
        a[3].type == MSGPACK_OBJECT_POSITIVE_INTEGER;
    h->start_ms = -1;
    if (ok && o->via.array.size == 5) {
        if (a[4].type == MSGPACK_OBJECT_POSITIVE_INTEGER && a[4].via.u64 <= INT64_MAX)
            h->start_ms = (int64_t)a[4].via.u64;
        else
            ok = a[4].type == MSGPACK_OBJECT_NEGATIVE_INTEGER && a[4].via.i64 == -1;
    }
    if (!ok)
        return pool_errf(p, WEIR_ECORRUPT, "a transaction handle in the checkpoint is malformed");
    memcpy(h->id, a[0].via.str.ptr, a[0].via.str.size);
    h->id[a[0].via.str.size] = 0;
    h->pid = (int64_t)a[1].via.u64;
    h->epoch = (int16_t)a[2].via.u64;
    h->records = a[3].via.u64;
    return 0;
}

/* Restoring handle @p h: is the coordinator's transaction under its producer id and epoch a
 * LATER one than h's (another start time)? Then h ended before it, and with this epoch only by
 * its commit (a pre-committed transaction is never aborted by its producer; the broker's timeout
 * and InitProducerId bump the epoch): h is committed. A later transaction still open belongs to
 * the job that wrote h, which went on after the snapshot restored here (a savepoint restored by
 * a new job, whose old job then reused the slot): it is aborted (EndTxn abort, same epoch), so
 * it neither blocks read_committed consumers nor is committed by this EndTxn. *done = true when
 * nothing is left to commit. @returns 0 or < 0. */
static int newer_transaction(weir_ktxn_pool_t *p, const handle_t *h, bool *done) {
    *done = false;
    if (h->start_ms < 0)
        return 0;
    char err[WEIR_KTXN_ERR_CAP];
    weir_ktxn_info_t info;
    int rc = p->io->describe(p->io_arg, h->id, &info, err);
    if (rc != 0)
        return pool_errf(p, rc < 0 ? rc : WEIR_EIO, "describing transaction %s: %s", h->id, err);
    if (info.error != WEIR_KERR_NONE || info.producer_id != h->pid ||
        info.producer_epoch != h->epoch || info.txn_start_ms < 0 ||
        info.txn_start_ms == h->start_ms)
        return 0;
    *done = true;
    WEIR_INFO(COMP,
              "transaction %s (producer id %lld, epoch %d, started at %lld ms) is committed: "
              "the coordinator is at a later transaction of that producer (%s, started at %lld "
              "ms)",
              h->id, (long long)h->pid, h->epoch, (long long)h->start_ms, info.state,
              (long long)info.txn_start_ms);
    if (strcmp(info.state, "Ongoing") != 0)
        return 0;
    int16_t kerr = 0;
    rc = p->io->end_txn(p->io_arg, h->id, h->pid, h->epoch, false, &kerr, err);
    if (rc != 0 || kerr != WEIR_KERR_NONE)
        WEIR_WARN(COMP,
                  "aborting the later transaction of %s (started at %lld ms, not ours): %s "
                  "(the broker's transaction timeout aborts it)",
                  h->id, (long long)info.txn_start_ms, rc != 0 ? err : weir_kproto_err_name(kerr));
    else
        WEIR_INFO(COMP, "aborted the later transaction of %s (started at %lld ms)", h->id,
                  (long long)info.txn_start_ms);
    return 0;
}

static int tx_commit(void *target, const msgpack_object *handle) {
    weir_ktxn_pool_t *p = target;
    handle_t h;
    int rc = handle_parse(p, handle, &h);
    if (rc != 0)
        return rc;
    if (h.records == 0)
        return 0; /* an empty transaction, ended at pre-commit */
    killpoint(p, "kafka-sink-commit");
    char err[WEIR_KTXN_ERR_CAP];
    int k = weir__ktxn_pool_slot_of(p, h.id);
    weir_ktxn_slot_t *s = k >= 0 ? &p->slots[k] : NULL;
    if (s && s->state == WEIR_KTXN_PRECOMMITTED && s->pid == h.pid && s->epoch == h.epoch) {
        if ((rc = p->io->commit(p->io_arg, (uint32_t)k, err)) != 0)
            return pool_errf(p, rc < 0 ? rc : WEIR_EIO,
                             "the pre-committed transaction %s (producer id %lld, epoch %d, "
                             "%llu records) could not be committed: %s; if the broker aborted it "
                             "(transaction.timeout.ms %lld), its records are lost",
                             h.id, (long long)h.pid, h.epoch, (unsigned long long)h.records, err,
                             (long long)p->txn_timeout_ms);
        s->state = WEIR_KTXN_RESERVED;
        s->free_after = s->last_ref;
        ended(p, true);
        return 0;
    }
    /* Restored from a checkpoint: no producer of ours holds it. */
    bool done;
    if ((rc = newer_transaction(p, &h, &done)) != 0 || done)
        return rc;
    int16_t kerr = 0;
    if ((rc = p->io->end_txn(p->io_arg, h.id, h.pid, h.epoch, true, &kerr, err)) != 0)
        return pool_errf(p, rc < 0 ? rc : WEIR_EIO, "committing transaction %s: %s", h.id, err);
    if (kerr != WEIR_KERR_NONE)
        return pool_errf(p, WEIR_EIO,
                         "the pre-committed transaction %s (producer id %lld, epoch %d, %llu "
                         "records) cannot be committed: the broker answered %s: it was aborted "
                         "(transaction.timeout.ms %lld passed before recovery?) or another job "
                         "uses the same transactional ids; its records are lost",
                         h.id, (long long)h.pid, h.epoch, (unsigned long long)h.records,
                         weir_kproto_err_name(kerr), (long long)p->txn_timeout_ms);
    WEIR_INFO(COMP, "committed recovered transaction %s (producer id %lld, epoch %d)", h.id,
              (long long)h.pid, h.epoch);
    ended(p, true);
    return 0;
}

static void tx_abort(void *target, void *txn) {
    weir_ktxn_pool_t *p = target;
    weir_ktxn_slot_t *s = txn;
    uint32_t k = (uint32_t)(s - p->slots);
    char err[WEIR_KTXN_ERR_CAP];
    if (p->io->abort(p->io_arg, k, err) == 0) {
        s->state = WEIR_KTXN_READY;
        if (s->records)
            ended(p, false);
        return;
    }
    WEIR_WARN(COMP, "abort of %s: %s (the next InitProducerId of this id aborts it)", s->id, err);
    p->io->drop(p->io_arg, k);
    s->live = false;
    s->state = WEIR_KTXN_EMPTY;
}

typedef struct foreign_scan {
    const weir_ktxn_pool_t *p;
    const char *listed; /* the prefix listed */
    char (*ids)[WEIR_KTXN_ID_CAP];
    size_t n, cap;
} foreign_scan_t;

/* Parses @p id as `<prefix>-<sub>-<k>` (decimals). */
static bool id_parse(const char *id, const char *prefix, unsigned long *sub, unsigned long *k) {
    size_t pl = strlen(prefix);
    if (strncmp(id, prefix, pl) != 0 || id[pl] != '-')
        return false;
    const char *s = id + pl + 1;
    char *end;
    if (*s < '0' || *s > '9')
        return false;
    *sub = strtoul(s, &end, 10);
    if (*end != '-')
        return false;
    s = end + 1;
    if (*s < '0' || *s > '9')
        return false;
    *k = strtoul(s, &end, 10);
    return !*end;
}

/* True when @p id is a restored handle's (restore in progress). */
static bool restored_id(const weir_ktxn_pool_t *p, const char *id) {
    for (size_t i = 0; p->rs && i < p->rs->n_handles; i++)
        if (strcmp(p->rs->handles[i], id) == 0)
            return true;
    return false;
}

/* True when a current subtask (`<prefix>-<s>-<k>` with s < parallelism and k < size) or, during
 * a restore, the new subtask taking over an old one (`<old prefix>-<j>-<m>` with j < the old
 * parallelism and m < its pool size) is responsible for @p id. */
static bool id_owned(const weir_ktxn_pool_t *p, const char *id) {
    unsigned long sub, k;
    if (id_parse(id, p->prefix, &sub, &k) && sub < p->parallelism && k < p->size)
        return true;
    for (size_t i = 0; p->rs && i < p->rs->n_old; i++) {
        const weir_ktxn_old_t *o = &p->rs->old[i];
        if (id_parse(id, o->prefix, &sub, &k) && sub < p->rs->old_parallelism && k < o->pool)
            return true;
    }
    return false;
}

/* Collects the listed ids that nobody else is responsible for and no restore keeps. */
static int collect_foreign(const weir_ktxn_info_t *t, void *arg) {
    foreign_scan_t *f = arg;
    size_t pl = strlen(f->listed);
    if (strncmp(t->txn_id, f->listed, pl) != 0 || t->txn_id[pl] != '-')
        return 0;
    if (id_owned(f->p, t->txn_id) || restored_id(f->p, t->txn_id))
        return 0;
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->ids[i], t->txn_id) == 0)
            return 0;
    if (weir_array_grow((void **)&f->ids, &f->cap, f->n + 1, sizeof(*f->ids), 8) != 0)
        return WEIR_ENOMEM;
    weir_fmt(f->ids[f->n++], WEIR_KTXN_ID_CAP, "%s", t->txn_id);
    return 0;
}

/* Lists the open transactions of @p prefix into @p f (ids nobody else is responsible for). */
static int list_foreign(weir_ktxn_pool_t *p, const char *prefix, foreign_scan_t *f) {
    char err[WEIR_KTXN_ERR_CAP], head[WEIR_KTXN_MAX_PREFIX + 2];
    weir_fmt(head, sizeof(head), "%s-", prefix);
    f->listed = prefix;
    int rc = p->io->list_open(p->io_arg, head, collect_foreign, f, err);
    if (rc != 0)
        rc = rc == WEIR_ENOMEM ? pool_errf(p, rc, "out of memory") : io_err(p, rc, err);
    return rc;
}

/* Aborts one leftover id (InitProducerId of a throwaway producer); the kill point after the
 * first leftover of a restore. */
static int abort_leftover(weir_ktxn_pool_t *p, const char *id, bool *first) {
    char err[WEIR_KTXN_ERR_CAP];
    int rc = p->io->abort_id(p->io_arg, id, err);
    if (rc != 0)
        return io_err(p, rc, err);
    WEIR_INFO(COMP, "aborted lingering transaction %s", id);
    if (*first)
        killpoint(p, "kafka-sink-abort-lingering");
    *first = false;
    return 0;
}

static int tx_abort_lingering(void *target, const msgpack_object *keep, size_t n_keep) {
    weir_ktxn_pool_t *p = target;
    const weir_ktxn_restore_scope_t *rs = p->rs;
    int rc;
    /* The restored handles (committed just before) keep their slots until a later checkpoint
     * completes. */
    for (size_t i = 0; i < n_keep; i++) {
        handle_t h;
        if ((rc = handle_parse(p, &keep[i], &h)) != 0)
            return rc;
        int k = weir__ktxn_pool_slot_of(p, h.id);
        if (k >= 0 && h.records > 0) {
            p->slots[k].state = WEIR_KTXN_RESERVED;
            p->slots[k].free_after = ck_key(p->restored_from);
        }
    }
    /* Every other id of this subtask: InitProducerId aborts what an earlier attempt left open
     * and fences its producers (a frozen task manager that wakes up cannot write again). */
    bool first = true;
    for (uint32_t k = 0; k < p->size; k++) {
        if (p->slots[k].state != WEIR_KTXN_EMPTY)
            continue;
        if ((rc = slot_init(p, k)) != 0)
            return rc;
        if (first)
            killpoint(p, "kafka-sink-abort-lingering");
        first = false;
    }
    /* Every id of the old subtasks taken over (another parallelism or another job's prefix),
     * but the restored handles' (a restore of the same state again must find them as they are:
     * committed under their producer id and epoch). */
    char id[WEIR_KTXN_ID_CAP];
    for (size_t i = 0; rs && i < rs->n_old; i++) {
        const weir_ktxn_old_t *o = &rs->old[i];
        for (uint32_t m = 0; o->mine && m < o->pool; m++) {
            weir_fmt(id, sizeof(id), "%s-%u-%u", o->prefix, o->subtask, m);
            if (weir__ktxn_pool_slot_of(p, id) >= 0 || restored_id(p, id))
                continue;
            if ((rc = abort_leftover(p, id, &first)) != 0)
                return rc;
        }
    }
    if (p->subtask != 0)
        return 0;
    /* Subtask 0: open transactions of the prefix, and of the old job's prefixes, that no
     * current subtask owns and no new subtask takes over (another parallelism or pool size
     * before). */
    foreign_scan_t f = {.p = p};
    rc = list_foreign(p, p->prefix, &f);
    for (size_t i = 0; rc == 0 && rs && i < rs->n_old; i++) {
        bool seen = strcmp(rs->old[i].prefix, p->prefix) == 0;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(rs->old[j].prefix, rs->old[i].prefix) == 0;
        if (!seen)
            rc = list_foreign(p, rs->old[i].prefix, &f);
    }
    for (size_t i = 0; rc == 0 && i < f.n; i++)
        rc = abort_leftover(p, f.ids[i], &first);
    free(f.ids);
    return rc;
}

static const weir_2pc_ops_t pool_2pc_ops = {.begin = tx_begin,
                                            .precommit = tx_precommit,
                                            .commit = tx_commit,
                                            .abort = tx_abort,
                                            .abort_lingering = tx_abort_lingering};

/* ---- the pool ------------------------------------------------------------------------------ */

void weir__ktxn_pool_init(weir_ktxn_pool_t *p, const weir_ktxn_io_t *io, void *io_arg,
                          const char *name, const char *prefix, uint32_t subtask,
                          uint32_t parallelism, uint32_t size, int64_t txn_timeout_ms) {
    memset(p, 0, sizeof(*p));
    p->io = io;
    p->io_arg = io_arg;
    p->name = name;
    weir_fmt(p->prefix, sizeof(p->prefix), "%s", prefix);
    p->subtask = subtask;
    p->parallelism = parallelism;
    p->size = size;
    p->txn_timeout_ms = txn_timeout_ms;
    p->slots = weir_xcalloc(size, sizeof(*p->slots));
    for (uint32_t k = 0; k < size; k++)
        weir_fmt(p->slots[k].id, WEIR_KTXN_ID_CAP, "%s-%u-%u", p->prefix, subtask, k);
    weir_2pc_init(&p->tp, &pool_2pc_ops, p);
}

int weir__ktxn_pool_txn(weir_ktxn_pool_t *p, uint32_t *k) {
    void *txn;
    int rc = weir_2pc_txn(&p->tp, &txn);
    if (rc == 0)
        *k = (uint32_t)((weir_ktxn_slot_t *)txn - p->slots);
    return rc;
}

int weir__ktxn_pool_snapshot(weir_ktxn_pool_t *p, uint64_t checkpoint_id, msgpack_packer *pk) {
    /* {"prefix", "pool", "pending"}: the list goes to a scratch buffer first so that pk receives
     * one whole object or nothing. */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer spk;
    msgpack_packer_init(&spk, &sb, msgpack_sbuffer_write);
    int rc = weir_2pc_snapshot(&p->tp, checkpoint_id, &spk);
    if (rc == 0) {
        msgpack_pack_map(pk, 3);
        msgpack_pack_str_with_body(pk, "prefix", 6);
        msgpack_pack_str_with_body(pk, p->prefix, strlen(p->prefix));
        msgpack_pack_str_with_body(pk, "pool", 4);
        msgpack_pack_uint32(pk, p->size);
        msgpack_pack_str_with_body(pk, "pending", 7);
        pk->callback(pk->data, sb.data, sb.size);
    }
    msgpack_sbuffer_destroy(&sb);
    if (rc != 0)
        return rc;
    for (uint32_t k = 0; k < p->size; k++)
        if (p->slots[k].state == WEIR_KTXN_PRECOMMITTED)
            p->slots[k].last_ref = ck_key(checkpoint_id);
    killpoint(p, "kafka-sink-precommitted");
    return 0;
}

int weir__ktxn_pool_notify(weir_ktxn_pool_t *p, uint64_t checkpoint_id, bool final) {
    int rc = weir_2pc_notify(&p->tp, checkpoint_id, final);
    if (rc != 0)
        return rc;
    uint64_t key = ck_key(checkpoint_id);
    for (uint32_t k = 0; k < p->size; k++) {
        weir_ktxn_slot_t *s = &p->slots[k];
        if (s->state == WEIR_KTXN_RESERVED && s->free_after < key)
            s->state = s->live ? WEIR_KTXN_READY : WEIR_KTXN_EMPTY;
    }
    return 0;
}

int weir__ktxn_pool_restore(weir_ktxn_pool_t *p, uint64_t checkpoint_id,
                            const msgpack_object *state) {
    uint32_t own = p->subtask;
    weir_op_restore_t r = {.checkpoint_id = checkpoint_id,
                           .old_parallelism = p->parallelism,
                           .n = state && state->type != MSGPACK_OBJECT_NIL ? 1 : 0,
                           .old_subtask = &own,
                           .states = state};
    return weir__ktxn_pool_restore_from(p, &r);
}

/* One old subtask's state: {"prefix", "pool", "pending"}, or (earlier versions) the bare pending
 * list of a pool of this pool's size. Fills @p o and *list. */
static int old_state_parse(weir_ktxn_pool_t *p, const msgpack_object *st, uint32_t old,
                           weir_ktxn_old_t *o, const msgpack_object **list) {
    static const msgpack_object nil = {.type = MSGPACK_OBJECT_NIL};
    memset(o, 0, sizeof(*o));
    o->subtask = old;
    o->mine = old % p->parallelism == p->subtask;
    if (st->type == MSGPACK_OBJECT_ARRAY || st->type == MSGPACK_OBJECT_NIL) {
        /* The prefix is the one of its handles' ids `<prefix>-<old>-<m>` (else another old
         * state's, else this pool's: weir__ktxn_pool_restore_from). */
        weir_fmt(o->prefix, sizeof(o->prefix), "%s", p->prefix);
        o->guessed = true;
        o->pool = p->size;
        *list = st;
        const msgpack_object *e = st->type == MSGPACK_OBJECT_ARRAY && st->via.array.size > 0
                                      ? &st->via.array.ptr[0]
                                      : NULL;
        const msgpack_object *h = e && e->type == MSGPACK_OBJECT_ARRAY && e->via.array.size == 2 &&
                                          e->via.array.ptr[1].type == MSGPACK_OBJECT_ARRAY &&
                                          e->via.array.ptr[1].via.array.size > 0
                                      ? &e->via.array.ptr[1].via.array.ptr[0]
                                      : NULL;
        char id[WEIR_KTXN_ID_CAP], tail[32];
        if (h && h->type == MSGPACK_OBJECT_STR && h->via.str.size < sizeof(id)) {
            memcpy(id, h->via.str.ptr, h->via.str.size);
            id[h->via.str.size] = 0;
            char *dash = strrchr(id, '-');
            if (dash) {
                *dash = 0;
                dash = strrchr(id, '-');
            }
            int tl = weir_fmt(tail, sizeof(tail), "-%u", old);
            if (dash && dash > id && strcmp(dash, tail) == 0 && tl > 0 &&
                (size_t)(dash - id) <= WEIR_KTXN_MAX_PREFIX) {
                *dash = 0;
                weir_fmt(o->prefix, sizeof(o->prefix), "%s", id);
                o->guessed = false;
            }
        }
        return 0;
    }
    *list = &nil;
    bool has_prefix = false, has_pool = false;
    for (uint32_t i = 0; st->type == MSGPACK_OBJECT_MAP && i < st->via.map.size; i++) {
        const msgpack_object *k = &st->via.map.ptr[i].key, *v = &st->via.map.ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR)
            continue;
        if (k->via.str.size == 6 && memcmp(k->via.str.ptr, "prefix", 6) == 0 &&
            v->type == MSGPACK_OBJECT_STR && v->via.str.size > 0 &&
            v->via.str.size <= WEIR_KTXN_MAX_PREFIX &&
            !memchr(v->via.str.ptr, 0, v->via.str.size)) {
            memcpy(o->prefix, v->via.str.ptr, v->via.str.size);
            has_prefix = true;
        } else if (k->via.str.size == 4 && memcmp(k->via.str.ptr, "pool", 4) == 0 &&
                   v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= 1024) {
            o->pool = (uint32_t)v->via.u64;
            has_pool = true;
        } else if (k->via.str.size == 7 && memcmp(k->via.str.ptr, "pending", 7) == 0 &&
                   v->type == MSGPACK_OBJECT_ARRAY) {
            *list = v;
        }
    }
    if (!has_prefix || !has_pool || (*list)->type != MSGPACK_OBJECT_ARRAY)
        return pool_errf(p, WEIR_ECORRUPT,
                         "the checkpoint state of old subtask %u is not {\"prefix\", \"pool\", "
                         "\"pending\"}",
                         old);
    return 0;
}

int weir__ktxn_pool_restore_from(weir_ktxn_pool_t *p, const weir_op_restore_t *r) {
    p->restored_from = r->checkpoint_id;
    p->err[0] = 0;
    weir_ktxn_restore_scope_t rs = {.old_parallelism = r->old_parallelism};
    rs.old = weir_xcalloc(r->n ? r->n : 1, sizeof(*rs.old));
    const msgpack_object **lists = weir_xcalloc(r->n ? r->n : 1, sizeof(*lists));
    msgpack_object *mine = weir_xcalloc(r->n ? r->n : 1, sizeof(*mine));
    size_t n_mine = 0, cap = 0;
    int rc = 0;
    for (uint32_t i = 0; i < r->n && rc == 0; i++) {
        rc = old_state_parse(p, &r->states[i], r->old_subtask[i], &rs.old[i], &lists[i]);
        rs.n_old = i + 1;
        const msgpack_object *l = lists[i];
        for (uint32_t e = 0; rc == 0 && l->type == MSGPACK_OBJECT_ARRAY && e < l->via.array.size;
             e++) {
            const msgpack_object *pair = &l->via.array.ptr[e];
            const msgpack_object *h = pair->type == MSGPACK_OBJECT_ARRAY &&
                                              pair->via.array.size == 2 &&
                                              pair->via.array.ptr[1].type == MSGPACK_OBJECT_ARRAY &&
                                              pair->via.array.ptr[1].via.array.size >= 1
                                          ? &pair->via.array.ptr[1].via.array.ptr[0]
                                          : NULL;
            if (!h || h->type != MSGPACK_OBJECT_STR || h->via.str.size >= WEIR_KTXN_ID_CAP) {
                rc = pool_errf(p, WEIR_ECORRUPT,
                               "a transaction handle of old subtask %u in the checkpoint is "
                               "malformed",
                               r->old_subtask[i]);
                break;
            }
            if (weir_array_grow((void **)&rs.handles, &cap, rs.n_handles + 1, sizeof(*rs.handles),
                                8) != 0)
                abort();
            memcpy(rs.handles[rs.n_handles], h->via.str.ptr, h->via.str.size);
            rs.handles[rs.n_handles++][h->via.str.size] = 0;
        }
        if (rc == 0 && rs.old[i].mine)
            mine[n_mine++] = *l;
    }
    /* All old subtasks of an operator share its prefix. */
    for (uint32_t i = 0; rc == 0 && i < rs.n_old; i++)
        for (uint32_t j = 0; rs.old[i].guessed && j < rs.n_old; j++)
            if (!rs.old[j].guessed) {
                memcpy(rs.old[i].prefix, rs.old[j].prefix, sizeof(rs.old[i].prefix));
                rs.old[i].guessed = false;
            }
    if (rc == 0) {
        p->rs = &rs;
        rc = weir_2pc_restore_many(&p->tp, r->checkpoint_id, mine, n_mine);
        p->rs = NULL;
        if (rc == WEIR_ECORRUPT && !p->err[0])
            pool_errf(p, rc, "the pending transactions in the checkpoint are malformed");
    }
    free(rs.handles);
    free(rs.old);
    free(lists);
    free(mine);
    return rc;
}

int weir__ktxn_pool_start_fresh(weir_ktxn_pool_t *p) {
    return weir_2pc_start_fresh(&p->tp);
}

int weir__ktxn_pool_end_input(weir_ktxn_pool_t *p) {
    weir_2pc_end_input(&p->tp);
    return weir_2pc_roll(&p->tp);
}

bool weir__ktxn_pool_checkpointing(const weir_ktxn_pool_t *p) {
    return weir_2pc_checkpointing(&p->tp);
}

int weir__ktxn_pool_commit_all(weir_ktxn_pool_t *p) {
    return weir_2pc_commit_all(&p->tp);
}

void weir__ktxn_pool_close(weir_ktxn_pool_t *p) {
    if (!p->slots)
        return;
    weir_2pc_close(&p->tp); /* aborts the open transaction, if any */
    for (uint32_t k = 0; k < p->size; k++)
        p->io->drop(p->io_arg, k);
    free(p->slots);
    p->slots = NULL;
}
