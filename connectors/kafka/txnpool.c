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

static void pack_handle(msgpack_packer *pk, const weir_ktxn_slot_t *s) {
    msgpack_pack_array(pk, 4);
    size_t idl = strlen(s->id);
    msgpack_pack_str(pk, idl);
    msgpack_pack_str_body(pk, s->id, idl);
    msgpack_pack_int64(pk, s->pid);
    msgpack_pack_int16(pk, s->epoch);
    msgpack_pack_uint64(pk, s->records);
}

static int tx_precommit(void *target, void *txn, msgpack_packer *pk) {
    weir_ktxn_pool_t *p = target;
    weir_ktxn_slot_t *s = txn;
    uint32_t k = (uint32_t)(s - p->slots);
    char err[WEIR_KTXN_ERR_CAP];
    int rc = p->io->flush(p->io_arg, k, err);
    if (rc != 0)
        return io_err(p, rc, err);
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
        s->state = WEIR_KTXN_PRECOMMITTED;
    }
    pack_handle(pk, s);
    return 0;
}

typedef struct handle {
    char id[WEIR_KTXN_ID_CAP];
    int64_t pid;
    int16_t epoch;
    uint64_t records;
} handle_t;

static int handle_parse(weir_ktxn_pool_t *p, const msgpack_object *o, handle_t *h) {
    const msgpack_object *a = o->via.array.ptr;
    bool ok = o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 4 &&
              a[0].type == MSGPACK_OBJECT_STR && a[0].via.str.size > 0 &&
              a[0].via.str.size < WEIR_KTXN_ID_CAP &&
              !memchr(a[0].via.str.ptr, 0, a[0].via.str.size) &&
              a[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER && a[1].via.u64 <= INT64_MAX &&
              a[2].type == MSGPACK_OBJECT_POSITIVE_INTEGER && a[2].via.u64 <= INT16_MAX &&
              a[3].type == MSGPACK_OBJECT_POSITIVE_INTEGER;
    if (!ok)
        return pool_errf(p, WEIR_ECORRUPT, "a transaction handle in the checkpoint is malformed");
    memcpy(h->id, a[0].via.str.ptr, a[0].via.str.size);
    h->id[a[0].via.str.size] = 0;
    h->pid = (int64_t)a[1].via.u64;
    h->epoch = (int16_t)a[2].via.u64;
    h->records = a[3].via.u64;
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
        return 0;
    }
    /* Restored from a checkpoint: no producer of ours holds it. */
    int16_t kerr = 0;
    if ((rc = p->io->end_txn(p->io_arg, h.id, h.pid, h.epoch, &kerr, err)) != 0)
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
    return 0;
}

static void tx_abort(void *target, void *txn) {
    weir_ktxn_pool_t *p = target;
    weir_ktxn_slot_t *s = txn;
    uint32_t k = (uint32_t)(s - p->slots);
    char err[WEIR_KTXN_ERR_CAP];
    if (p->io->abort(p->io_arg, k, err) == 0) {
        s->state = WEIR_KTXN_READY;
        return;
    }
    WEIR_WARN(COMP, "abort of %s: %s (the next InitProducerId of this id aborts it)", s->id, err);
    p->io->drop(p->io_arg, k);
    s->live = false;
    s->state = WEIR_KTXN_EMPTY;
}

typedef struct foreign_scan {
    const weir_ktxn_pool_t *p;
    char (*ids)[WEIR_KTXN_ID_CAP];
    size_t n, cap;
} foreign_scan_t;

/* Collects ids `<prefix>-...` that no current subtask owns (owned: `<prefix>-<s>-<k>` with
 * s < parallelism and k < size, both canonical decimals). */
static int collect_foreign(const weir_ktxn_info_t *t, void *arg) {
    foreign_scan_t *f = arg;
    const weir_ktxn_pool_t *p = f->p;
    size_t pl = strlen(p->prefix);
    if (strncmp(t->txn_id, p->prefix, pl) != 0 || t->txn_id[pl] != '-')
        return 0;
    const char *s = t->txn_id + pl + 1;
    char *end;
    bool owned = *s >= '0' && *s <= '9';
    unsigned long sub = strtoul(s, &end, 10), k = 0;
    owned = owned && *end == '-' && sub < p->parallelism;
    if (owned) {
        s = end + 1;
        owned = *s >= '0' && *s <= '9';
        k = strtoul(s, &end, 10);
        owned = owned && !*end && k < p->size;
    }
    if (owned)
        return 0;
    if (weir_array_grow((void **)&f->ids, &f->cap, f->n + 1, sizeof(*f->ids), 8) != 0)
        return WEIR_ENOMEM;
    weir_fmt(f->ids[f->n++], WEIR_KTXN_ID_CAP, "%s", t->txn_id);
    return 0;
}

static int tx_abort_lingering(void *target, const msgpack_object *keep, size_t n_keep) {
    weir_ktxn_pool_t *p = target;
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
    if (p->subtask != 0)
        return 0;
    /* Subtask 0: open transactions of the prefix that no current subtask owns. */
    char err[WEIR_KTXN_ERR_CAP], head[WEIR_KTXN_MAX_PREFIX + 2];
    weir_fmt(head, sizeof(head), "%s-", p->prefix);
    foreign_scan_t f = {.p = p};
    rc = p->io->list_open(p->io_arg, head, collect_foreign, &f, err);
    if (rc != 0)
        rc = rc == WEIR_ENOMEM ? pool_errf(p, rc, "out of memory") : io_err(p, rc, err);
    for (size_t i = 0; rc == 0 && i < f.n; i++) {
        if ((rc = p->io->abort_id(p->io_arg, f.ids[i], err)) != 0)
            rc = io_err(p, rc, err);
        else
            WEIR_INFO(COMP, "aborted lingering transaction %s", f.ids[i]);
    }
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
    int rc = weir_2pc_snapshot(&p->tp, checkpoint_id, pk);
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
    p->restored_from = checkpoint_id;
    return weir_2pc_restore(&p->tp, checkpoint_id, state);
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
