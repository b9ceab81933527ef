/* Generic two-phase-commit helper for exactly-once sinks (docs/checkpointing.md, section
 * Two-phase-commit sinks). A sink embeds a weir_2pc_t and supplies callbacks that act on its
 * transactional target (the file sink: part files of a directory).
 *
 * Per subtask there is at most one open transaction (the current epoch), begun lazily on the
 * first write of an epoch (weir_2pc_txn). At checkpoint n (weir_2pc_snapshot) the open
 * transaction is pre-committed (durable, invisible) and its handle (one msgpack object packed by
 * the target) joins the pending list with n; the snapshot packs the whole pending list. When n
 * completes (weir_2pc_notify) every pending transaction with checkpoint <= n is committed.
 * A sink may also pre-commit mid-epoch (weir_2pc_roll, e.g. rolling by size): such handles are
 * "unassigned" until the next snapshot gives them its checkpoint id.
 *
 * Checkpoint id 0 is the final snapshot after end of input (docs/checkpointing.md): it orders
 * AFTER every other id, so a late notify of a periodic checkpoint never commits it; only the
 * final notify does.
 *
 * Snapshot format: a msgpack array of [checkpoint id, handle] pairs, oldest first.
 * Threading: one subtask thread only. */
#ifndef WEIR_CONNECTORS_TWOPHASE_H
#define WEIR_CONNECTORS_TWOPHASE_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Callbacks on the sink's transactional target. Every one gets the `target` given to
 * weir_2pc_init. Errors are negative weir codes; the target keeps its own error message. */
typedef struct weir_2pc_ops {
    /** Opens the transaction of epoch @p epoch (the id of the checkpoint expected to close it,
     * counted from the last snapshot or restore). @returns 0 with *txn set, or < 0. */
    int (*begin)(void *target, uint64_t epoch, void **txn);
    /** Makes @p txn durable but invisible and packs exactly one msgpack object, its handle,
     * into @p pk. The transaction is finished either way: after an error it must not be used
     * again (what is left of it is lingering). @returns 0 or < 0. */
    int (*precommit)(void *target, void *txn, msgpack_packer *pk);
    /** Makes a pre-committed transaction visible. Must be idempotent: committing a handle
     * that is already committed succeeds. @returns 0 or < 0 (data lost or I/O error). */
    int (*commit)(void *target, const msgpack_object *handle);
    /** Discards an open, not pre-committed transaction. */
    void (*abort)(void *target, void *txn);
    /** Discards every uncommitted transaction of this subtask (from any earlier attempt)
     * except the @p n_keep handles of @p keep. @returns 0 or < 0. */
    int (*abort_lingering)(void *target, const msgpack_object *keep, size_t n_keep);
} weir_2pc_ops_t;

typedef struct weir_2pc_pending {
    uint64_t checkpoint; /* valid when assigned */
    bool assigned;       /* false: rolled mid-epoch, joins the next snapshot */
    char *handle;        /* packed msgpack object (malloc'd) */
    size_t len;
} weir_2pc_pending_t;

typedef struct weir_2pc {
    const weir_2pc_ops_t *ops;
    void *target;
    void *txn; /* open transaction, valid when has_txn */
    bool has_txn;
    uint64_t epoch; /* epoch of the next transaction begun */
    weir_2pc_pending_t *pending;
    size_t n_pending, cap_pending;
    bool snapshotted; /* weir_2pc_snapshot was called at least once */
    bool restored;    /* weir_2pc_restore was called */
} weir_2pc_t;

/** Initialises @p tp (no allocation). */
void weir_2pc_init(weir_2pc_t *tp, const weir_2pc_ops_t *ops, void *target);

/** The open transaction, begun now when there is none. @returns 0 with *txn set, or the
 * error of begin(). */
int weir_2pc_txn(weir_2pc_t *tp, void **txn);

/** Pre-commits the open transaction (if any) now; its handle joins the next snapshot.
 * @returns 0, or the error of precommit() / WEIR_ENOMEM. */
int weir_2pc_roll(weir_2pc_t *tp);

/** Checkpoint @p checkpoint_id (0 = final): pre-commits the open transaction (if any), gives
 * every unassigned handle this id, and packs exactly one object (the pending list) into @p pk.
 * On error nothing is packed. @returns 0 or < 0. */
int weir_2pc_snapshot(weir_2pc_t *tp, uint64_t checkpoint_id, msgpack_packer *pk);

/** Checkpoint @p checkpoint_id completed: commits, oldest first, every pending transaction
 * whose checkpoint is <= it (0 counts as the highest id); @p final commits every assigned one.
 * Committed entries leave the list; on the first error the rest stay pending.
 * @returns 0 or the error of commit(). */
int weir_2pc_notify(weir_2pc_t *tp, uint64_t checkpoint_id, bool final);

/** Starting from checkpoint @p checkpoint_id with @p state (what weir_2pc_snapshot packed, or
 * NULL/nil for none): commits every listed handle (the checkpoint is complete), then aborts
 * every lingering transaction not listed. Call before the first write.
 * @returns 0, WEIR_ECORRUPT for a malformed state, or a callback's error. */
int weir_2pc_restore(weir_2pc_t *tp, uint64_t checkpoint_id, const msgpack_object *state);

/** As weir_2pc_restore for the pending lists of several old subtasks (a restore at another
 * parallelism: connectors/README.md, "Rescaling"): commits every handle of every list (nil
 * lists are skipped), in list order, then aborts every lingering transaction except all those
 * handles. @returns 0, WEIR_ECORRUPT, WEIR_ENOMEM or a callback's error. */
int weir_2pc_restore_many(weir_2pc_t *tp, uint64_t checkpoint_id, const msgpack_object *lists,
                          size_t n_lists);

/** Fresh start (no checkpoint): aborts every lingering transaction of this subtask.
 * @returns 0 or the error of abort_lingering(). */
int weir_2pc_start_fresh(weir_2pc_t *tp);

/** End of input: nothing to do, the final snapshot pre-commits (kept for symmetry). */
void weir_2pc_end_input(weir_2pc_t *tp);

/** Without checkpointing: pre-commits the open transaction and commits everything pending.
 * @returns 0 or the first error. */
int weir_2pc_commit_all(weir_2pc_t *tp);

/** True when snapshot or restore was ever called (the job checkpoints). */
static inline bool weir_2pc_checkpointing(const weir_2pc_t *tp) {
    return tp->snapshotted || tp->restored;
}

/** Aborts the open transaction (if any) and frees the pending list. Pre-committed but
 * uncommitted transactions are left lingering (a restore or fresh start cleans them). Safe to
 * call twice. */
void weir_2pc_close(weir_2pc_t *tp);

#endif
