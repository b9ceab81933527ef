/* The exactly-once Kafka sink's transactions (connectors/kafka/README.md, "Sink"): a pool of
 * transactional ids `<prefix>-<subtask>-<k>` (k < size), one Kafka transaction per checkpoint
 * epoch driven by the 2PC helper (connectors/common/twophase.h), and the rules that make a
 * restore exact. The I/O (librdkafka producers, the kproto.h client) is behind weir_ktxn_io_t, so
 * that tests/unit/test_kafka_txnpool.c runs this exact logic against a model of the broker.
 *
 * Rules (the invariants the model test checks):
 * - each epoch's records go into one transaction on one slot; at a barrier it is flushed and its
 *   handle [transactional id, producer id, epoch, records] packed into the snapshot; when a
 *   checkpoint completes, the slots it lists commit;
 * - a slot listed by a snapshot is not reused (no new transaction, no InitProducerId) before a
 *   LATER checkpoint completed: no checkpoint that lists it can be restored any more, so the
 *   EndTxn of a restored handle can never commit a newer transaction of the same producer id and
 *   epoch (a producer keeps its epoch across transactions), and a refused EndTxn means the
 *   transaction is gone: the sink fails naming it;
 * - on restore the restored handles are committed (EndTxn; idempotent), their slots reserved, and
 *   every other slot re-initialised (InitProducerId aborts what an earlier attempt left open and
 *   fences its producers); subtask 0 also aborts open transactions of the prefix that no current
 *   subtask owns (another parallelism or pool size before);
 * - at another parallelism (or from another job's savepoint) subtask k takes over every old
 *   subtask j with j mod parallelism == k: commits j's handles, then re-initialises every other
 *   id <old prefix>-<j>-<m> of j's pool; subtask 0 aborts the open transactions of the old
 *   prefixes that no old or new subtask is responsible for, never a restored handle's id;
 * - a handle records the coordinator's start time of its transaction: a restore commits it only
 *   while the coordinator's transaction under its producer id and epoch is that one, so a
 *   savepoint restored after its job reused the slot (same producer id and epoch) never commits
 *   the newer transaction; two transactions of one producer id and epoch never share a start
 *   time (a pre-commit that would is refused).
 * Snapshot state: {"prefix": str, "pool": uint, "pending": <2PC pending list>} where a handle is
 * [transactional id, producer id, epoch, records, start ms] (states of earlier versions are the
 * bare list; handles without start ms are committed as before).
 * Threading: one subtask thread. */
#ifndef WEIR_CONNECTORS_KAFKA_TXNPOOL_H
#define WEIR_CONNECTORS_KAFKA_TXNPOOL_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "connectors/common/twophase.h"
#include "connectors/kafka/kproto.h"
#include "runtime/task/operator.h"

#define WEIR_KTXN_ID_CAP (WEIR_KPROTO_MAX_TXN_ID + 1)
#define WEIR_KTXN_MAX_PREFIX 200

typedef enum weir_ktxn_slot_state {
    WEIR_KTXN_EMPTY,        /* no producer (initialised on first use) */
    WEIR_KTXN_READY,        /* producer initialised, no transaction */
    WEIR_KTXN_OPEN,         /* transaction open: records go in */
    WEIR_KTXN_PRECOMMITTED, /* flushed and in a snapshot: waits for its checkpoint */
    WEIR_KTXN_RESERVED,     /* committed, but a checkpoint that may be restored lists it */
} weir_ktxn_slot_state_t;

typedef struct weir_ktxn_slot {
    char id[WEIR_KTXN_ID_CAP];
    weir_ktxn_slot_state_t state;
    int64_t pid;
    int16_t epoch;
    uint64_t records;    /* in the open or pre-committed transaction */
    uint64_t last_ref;   /* ordering key of the last snapshot that listed it */
    uint64_t free_after; /* RESERVED: free once a checkpoint with a higher key completes */
    int64_t start_ms;    /* coordinator start of its last pre-committed transaction, -1 none */
    bool live;           /* the I/O holds an initialised producer for it */
} weir_ktxn_slot_t;

/** The I/O of the pool. Every function returns 0 or a negative weir error after writing one
 * line into @p err (capacity WEIR_KTXN_ERR_CAP). Slot functions act on the producer of slot k. */
#define WEIR_KTXN_ERR_CAP 512
typedef struct weir_ktxn_io {
    /** A new producer for slot k's id: InitProducerId (aborts the id's open transaction, fences
     * older producers); sets the producer id and epoch the coordinator gave it. */
    int (*init)(void *io, uint32_t k, const char *id, int64_t *pid, int16_t *epoch, char *err);
    /** Drops slot k's producer (nothing sent), if any. */
    void (*drop)(void *io, uint32_t k);
    int (*begin)(void *io, uint32_t k, char *err);
    /** Waits until every record of the open transaction is acknowledged (delivery errors are
     * errors). */
    int (*flush)(void *io, uint32_t k, char *err);
    /** Ends the open transaction of slot k through its producer. */
    int (*commit)(void *io, uint32_t k, char *err);
    int (*abort)(void *io, uint32_t k, char *err);
    /** The coordinator's view of a transactional id. */
    int (*describe)(void *io, const char *id, weir_ktxn_info_t *out, char *err);
    /** EndTxn(commit or abort) for a transaction no producer of this pool holds; *kerr is the
     * broker's answer. */
    int (*end_txn)(void *io, const char *id, int64_t pid, int16_t epoch, bool commit, int16_t *kerr,
                   char *err);
    /** Open transactions whose id starts with @p prefix. */
    int (*list_open)(void *io, const char *prefix, int (*fn)(const weir_ktxn_info_t *t, void *arg),
                     void *arg, char *err);
    /** Aborts the open transaction of a foreign id (InitProducerId with a throwaway producer). */
    int (*abort_id)(void *io, const char *id, char *err);
    /** A kill point (tests); may be NULL. */
    void (*killpoint)(void *io, const char *point);
    /** A transaction of this pool holding records ended: committed (pre-committed by this
     * subtask, or restored from a checkpoint) or aborted by its producer. Aborts of lingering or
     * foreign ids at restore are not counted (InitProducerId does not say whether one was
     * open). Metrics; may be NULL. */
    void (*ended)(void *io, bool committed);
} weir_ktxn_io_t;

/** An old subtask whose state a restore hands to this pool (txnpool.c, "Restore"). */
typedef struct weir_ktxn_old {
    char prefix[WEIR_KTXN_MAX_PREFIX + 1];
    uint32_t subtask, pool;
    bool mine;    /* taken over by this subtask */
    bool guessed; /* a state of an earlier version without a handle: prefix not known */
} weir_ktxn_old_t;

/** What a restore in progress knows about the old job (NULL outside a restore). */
typedef struct weir_ktxn_restore_scope {
    weir_ktxn_old_t *old; /* every state's */
    size_t n_old;
    uint32_t old_parallelism;
    char (*handles)[WEIR_KTXN_ID_CAP]; /* the ids of every restored handle (never aborted) */
    size_t n_handles;
} weir_ktxn_restore_scope_t;

typedef struct weir_ktxn_pool {
    const weir_ktxn_io_t *io;
    void *io_arg;
    const char *name; /* the operator, for messages */
    char prefix[WEIR_KTXN_MAX_PREFIX + 1];
    uint32_t subtask, parallelism, size;
    int64_t txn_timeout_ms; /* for messages */
    weir_ktxn_slot_t *slots;
    weir_2pc_t tp;
    uint64_t restored_from;
    const weir_ktxn_restore_scope_t *rs; /* during a restore */
    char err[768];
} weir_ktxn_pool_t;

/** Sets up @p pool (slots EMPTY). @p prefix at most WEIR_KTXN_MAX_PREFIX characters. */
void weir__ktxn_pool_init(weir_ktxn_pool_t *pool, const weir_ktxn_io_t *io, void *io_arg,
                          const char *name, const char *prefix, uint32_t subtask,
                          uint32_t parallelism, uint32_t size, int64_t txn_timeout_ms);

/** The slot of the open transaction, begun now when there is none. @returns 0 with *k set (the
 * caller sends the record through slot k's producer, then counts it in slots[k].records). */
int weir__ktxn_pool_txn(weir_ktxn_pool_t *pool, uint32_t *k);

/** Checkpoint @p checkpoint_id (0 = final): pre-commits the open transaction and packs the
 * pending handles (weir_2pc_snapshot's format). */
int weir__ktxn_pool_snapshot(weir_ktxn_pool_t *pool, uint64_t checkpoint_id, msgpack_packer *pk);

/** Checkpoint @p checkpoint_id completed: commits what it lists; frees slots listed only by
 * older checkpoints. */
int weir__ktxn_pool_notify(weir_ktxn_pool_t *pool, uint64_t checkpoint_id, bool final);

/** Start from checkpoint @p checkpoint_id with this subtask's own @p state of the same
 * parallelism (nil/NULL: none) / start fresh. */
int weir__ktxn_pool_restore(weir_ktxn_pool_t *pool, uint64_t checkpoint_id,
                            const msgpack_object *state);
/** Start from the states of old subtasks @p r (any parallelism, any job: the rules above). */
int weir__ktxn_pool_restore_from(weir_ktxn_pool_t *pool, const weir_op_restore_t *r);
int weir__ktxn_pool_start_fresh(weir_ktxn_pool_t *pool);

/** End of input: pre-commits the open transaction (its handle joins the final snapshot). */
int weir__ktxn_pool_end_input(weir_ktxn_pool_t *pool);

/** True when the job checkpoints (snapshot or restore happened). */
bool weir__ktxn_pool_checkpointing(const weir_ktxn_pool_t *pool);
/** Without checkpointing, after end of input: commits everything pending. */
int weir__ktxn_pool_commit_all(weir_ktxn_pool_t *pool);

/** Aborts the open transaction, drops every producer, frees the pool. Pre-committed
 * transactions stay for the next attempt. */
void weir__ktxn_pool_close(weir_ktxn_pool_t *pool);

/** Slot index of @p id when it is `<prefix>-<subtask>-<k>` of this pool, else -1. */
int weir__ktxn_pool_slot_of(const weir_ktxn_pool_t *pool, const char *id);

#endif
