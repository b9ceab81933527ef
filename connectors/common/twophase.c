/* Two-phase-commit helper for exactly-once sinks (see connectors/common/twophase.h,
 * connectors/common/README.md and docs/checkpointing.md).
 *
 * Owns: the open transaction of the current epoch and the list of pre-committed, not yet
 * committed handles (packed msgpack bytes) with their checkpoint ids.
 * Invariants: the pending list is in pre-commit order; assigned entries precede unassigned ones;
 * an entry leaves the list only after its commit succeeded; nothing is packed into the caller's
 * packer unless the whole snapshot succeeded. Checkpoint id 0 (the final snapshot) orders after
 * every other id.
 * Threading: one subtask thread only; no allocation per record (only per epoch). */
#include "connectors/common/twophase.h"

#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#define COMP "2pc"

/* Ordering key of a checkpoint id: 0 (final) is the highest. */
static uint64_t ck_key(uint64_t id) {
    return id == 0 ? UINT64_MAX : id;
}

void weir_2pc_init(weir_2pc_t *tp, const weir_2pc_ops_t *ops, void *target) {
    memset(tp, 0, sizeof(*tp));
    tp->ops = ops;
    tp->target = target;
    tp->epoch = 1;
}

int weir_2pc_txn(weir_2pc_t *tp, void **txn) {
    if (!tp->has_txn) {
        int rc = tp->ops->begin(tp->target, tp->epoch, &tp->txn);
        if (rc != 0)
            return rc;
        tp->has_txn = true;
    }
    *txn = tp->txn;
    return 0;
}

static int pending_push(weir_2pc_t *tp, const char *data, size_t len) {
    if (weir_array_grow((void **)&tp->pending, &tp->cap_pending, tp->n_pending + 1,
                        sizeof(*tp->pending), 8) != 0)
        return WEIR_ENOMEM;
    char *copy = malloc(len ? len : 1);
    if (!copy)
        return WEIR_ENOMEM;
    memcpy(copy, data, len);
    tp->pending[tp->n_pending++] =
        (weir_2pc_pending_t){.checkpoint = 0, .assigned = false, .handle = copy, .len = len};
    return 0;
}

/* Pre-commits the open transaction into an unassigned pending entry. */
static int precommit_open(weir_2pc_t *tp) {
    if (!tp->has_txn)
        return 0;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    void *txn = tp->txn;
    tp->has_txn = false; /* finished either way */
    tp->txn = NULL;
    int rc = tp->ops->precommit(tp->target, txn, &pk);
    if (rc == 0 && sb.size == 0)
        rc = WEIR_EINVAL; /* the target packed no handle */
    if (rc == 0)
        rc = pending_push(tp, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

int weir_2pc_roll(weir_2pc_t *tp) {
    return precommit_open(tp);
}

/* Writes raw, already packed msgpack bytes into a packer. */
static int pack_raw(msgpack_packer *pk, const char *data, size_t len) {
    return pk->callback(pk->data, data, len);
}

int weir_2pc_snapshot(weir_2pc_t *tp, uint64_t checkpoint_id, msgpack_packer *pk) {
    tp->snapshotted = true;
    int rc = precommit_open(tp);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < tp->n_pending; i++) {
        if (!tp->pending[i].assigned) {
            tp->pending[i].assigned = true;
            tp->pending[i].checkpoint = checkpoint_id;
        }
    }
    if (checkpoint_id != 0)
        tp->epoch = checkpoint_id + 1;
    /* Pack into a scratch buffer first so that the caller's packer gets all or nothing. */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer spk;
    msgpack_packer_init(&spk, &sb, msgpack_sbuffer_write);
    rc = msgpack_pack_array(&spk, tp->n_pending);
    for (size_t i = 0; rc == 0 && i < tp->n_pending; i++) {
        rc = msgpack_pack_array(&spk, 2);
        if (rc == 0)
            rc = msgpack_pack_uint64(&spk, tp->pending[i].checkpoint);
        if (rc == 0)
            rc = pack_raw(&spk, tp->pending[i].handle, tp->pending[i].len);
    }
    if (rc == 0)
        rc = pack_raw(pk, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return rc == 0 ? 0 : WEIR_ENOMEM;
}

/* Commits one packed handle. */
static int commit_bytes(weir_2pc_t *tp, const char *data, size_t len) {
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    int rc;
    if (msgpack_unpack_next(&u, data, len, &off) != MSGPACK_UNPACK_SUCCESS)
        rc = WEIR_ECORRUPT;
    else
        rc = tp->ops->commit(tp->target, &u.data);
    msgpack_unpacked_destroy(&u);
    return rc;
}

int weir_2pc_notify(weir_2pc_t *tp, uint64_t checkpoint_id, bool final) {
    uint64_t upto = ck_key(checkpoint_id);
    size_t done = 0;
    int rc = 0;
    while (done < tp->n_pending) {
        weir_2pc_pending_t *p = &tp->pending[done];
        if (!p->assigned || (!final && ck_key(p->checkpoint) > upto))
            break; /* the list is in checkpoint order */
        rc = commit_bytes(tp, p->handle, p->len);
        if (rc != 0)
            break;
        free(p->handle);
        done++;
    }
    if (done > 0) {
        memmove(tp->pending, tp->pending + done, (tp->n_pending - done) * sizeof(*tp->pending));
        tp->n_pending -= done;
    }
    return rc;
}

int weir_2pc_restore(weir_2pc_t *tp, uint64_t checkpoint_id, const msgpack_object *state) {
    return weir_2pc_restore_many(tp, checkpoint_id, state, state ? 1 : 0);
}

int weir_2pc_restore_many(weir_2pc_t *tp, uint64_t checkpoint_id, const msgpack_object *lists,
                          size_t n_lists) {
    tp->restored = true;
    tp->epoch = checkpoint_id + 1;
    size_t n = 0;
    for (size_t l = 0; l < n_lists; l++) {
        if (lists[l].type == MSGPACK_OBJECT_NIL)
            continue;
        if (lists[l].type != MSGPACK_OBJECT_ARRAY)
            return WEIR_ECORRUPT;
        n += lists[l].via.array.size;
    }
    if (n == 0)
        return tp->ops->abort_lingering(tp->target, NULL, 0);
    msgpack_object *keep = calloc(n, sizeof(*keep));
    if (!keep)
        return WEIR_ENOMEM;
    int rc = 0;
    size_t k = 0;
    for (size_t l = 0; l < n_lists; l++) {
        if (lists[l].type == MSGPACK_OBJECT_NIL)
            continue;
        for (uint32_t i = 0; i < lists[l].via.array.size; i++) {
            const msgpack_object *e = &lists[l].via.array.ptr[i];
            if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 2 ||
                e->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
                rc = WEIR_ECORRUPT;
                goto done;
            }
            keep[k++] = e->via.array.ptr[1];
        }
    }
    /* Checkpoint checkpoint_id is complete: everything it lists must become visible. */
    for (size_t i = 0; i < n; i++) {
        rc = tp->ops->commit(tp->target, &keep[i]);
        if (rc != 0)
            goto done;
    }
    rc = tp->ops->abort_lingering(tp->target, keep, n);
    if (rc == 0)
        WEIR_DEBUG(COMP, "restored checkpoint %llu: committed %zu recovered transactions",
                   (unsigned long long)checkpoint_id, n);
done:
    free(keep);
    return rc;
}

int weir_2pc_start_fresh(weir_2pc_t *tp) {
    return tp->ops->abort_lingering(tp->target, NULL, 0);
}

void weir_2pc_end_input(weir_2pc_t *tp) {
    (void)tp;
}

int weir_2pc_commit_all(weir_2pc_t *tp) {
    int rc = precommit_open(tp);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < tp->n_pending; i++)
        tp->pending[i].assigned = true; /* no checkpoints: commit in order */
    return weir_2pc_notify(tp, 0, true);
}

void weir_2pc_close(weir_2pc_t *tp) {
    if (tp->has_txn) {
        tp->ops->abort(tp->target, tp->txn);
        tp->has_txn = false;
        tp->txn = NULL;
    }
    for (size_t i = 0; i < tp->n_pending; i++)
        free(tp->pending[i].handle);
    free(tp->pending);
    tp->pending = NULL;
    tp->n_pending = tp->cap_pending = 0;
}
