/* The operator interface inside a subtask. A subtask runs a chain of operators (one per graph
 * node of its vertex) on one thread. Built-in transformations live in runtime/task/operators.c,
 * connectors (datagen, file, generator, print, blackhole) in connectors/. Every operator of a
 * chain receives its own weir_ctx_t; emitting from operator i calls operator i+1 directly
 * (chaining, no encoding) or, for the chain's tail, the subtask's output writer.
 *
 * Lifecycle on the subtask thread:
 *   create -> [restore] -> open -> (process | run | snapshot | notify_complete)* -> end_input
 *   -> [snapshot (final) -> notify_complete (final)] -> close.
 * restore is called only when the subtask starts from a checkpoint or savepoint and the
 * operator has state in it; close is always called, also after a failed open or on cancel. */
#ifndef WEIR_RUNTIME_OPERATOR_H
#define WEIR_RUNTIME_OPERATOR_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/graph/graph.h"

/* Return values of a source's run(). */
#define WEIR_SOURCE_MORE 1 /* call again */
#define WEIR_SOURCE_END 0  /* exhausted: end of input follows */

typedef struct weir_operator weir_operator_t;

/** What a restoring operator receives (the DEPLOY field restore_op_state: one
 * [old_parallelism, [[old_subtask, state], ...]] per chain operator, parsed by the task
 * runtime). */
typedef struct weir_op_restore {
    uint64_t checkpoint_id;       /* the checkpoint or savepoint restored */
    uint32_t old_parallelism;     /* of this operator (uid) when the snapshot was taken */
    uint32_t n;                   /* states handed to this subtask (>= 1) */
    const uint32_t *old_subtask;  /* [n] ascending: the old subtask each state belongs to */
    const msgpack_object *states; /* [n] what old_subtask[i] packed in its snapshot hook */
} weir_op_restore_t;

typedef struct weir_operator_vt {
    /** Prepares the operator (open files, allocate). @returns 0, or a negative weir error after
     * calling weir_fail() with a one-line message. May be NULL. */
    int (*open)(weir_operator_t *op, weir_ctx_t *ctx);
    /** Non-sources: handles one record. */
    void (*process)(weir_operator_t *op, weir_ctx_t *ctx, const weir_record_t *rec);
    /** Sources: emits at most @p budget records. When rate-limited and nothing is due, sets
     * *wake_ns to the weir_now_ns() time to be called again. @returns WEIR_SOURCE_MORE,
     * WEIR_SOURCE_END or a negative weir error after weir_fail(). */
    int (*run)(weir_operator_t *op, weir_ctx_t *ctx, uint32_t budget, int64_t *wake_ns);
    /** All input consumed (or source ended): flush, finish files. May be NULL. */
    void (*end_input)(weir_operator_t *op, weir_ctx_t *ctx);
    /** Frees everything; always called once. May be NULL. */
    void (*close)(weir_operator_t *op);
    /** Checkpoint @p checkpoint_id reached this operator (barrier aligned, or a source
     * trigger): pack exactly one msgpack object describing its state (a source's position, a
     * 2PC sink's pre-committed transactions) into @p pk. NULL = stateless (nil is stored).
     * @returns 0, or a negative weir error after weir_fail() (the checkpoint is declined). */
    int (*snapshot)(weir_operator_t *op, weir_ctx_t *ctx, uint64_t checkpoint_id,
                    msgpack_packer *pk);
    /** Starting from a checkpoint or savepoint: the states the operator's old subtasks packed
     * then (@p r, valid during the call only: copy what you keep). At the same parallelism
     * only this subtask's own state (r->n = 1, r->old_subtask[0] == op->subtask); at another
     * parallelism every old subtask's non-nil state, and each new subtask takes a
     * deterministic, disjoint share whose union is everything (connectors/README.md,
     * "Rescaling"). Not called when there is nothing to restore (a new operator, nil
     * everywhere). Called before open(). May be NULL. @returns 0 or a negative weir error
     * after weir_fail(). */
    int (*restore)(weir_operator_t *op, weir_ctx_t *ctx, const weir_op_restore_t *r);
    /** Checkpoint @p checkpoint_id is complete (its _metadata exists): a 2PC sink commits the
     * transactions pre-committed up to it. @p final: the checkpoint holds this subtask's final
     * snapshot (the first checkpoint completed after its end of input, or the job's final
     * checkpoint): commit everything, the final epoch too. May come more than once; commits
     * must be idempotent. May be NULL. */
    void (*notify_complete)(weir_operator_t *op, weir_ctx_t *ctx, uint64_t checkpoint_id,
                            bool final);
} weir_operator_vt_t;

struct weir_operator {
    const weir_operator_vt_t *vt;
    const weir_node_t *node;
    uint32_t subtask;
    uint32_t parallelism;
    void *impl; /* owned by the operator implementation */
};

/** Fault injection (docs/checkpointing.md): SIGKILLs the process when the task manager's
 * debug.kill-at names @p point and this is its Nth hit. Implemented by the task runtime. */
void weir_ctx_killpoint(weir_ctx_t *ctx, const char *point);

/** The job id (32 hex digits) and the deployment attempt (counted from 1 per job; a newer
 * attempt has a higher number) of the subtask running @p ctx. A sink names and fences its
 * artifacts with them (connectors/README.md, "File sink part files"). Implemented by the task
 * runtime. */
const char *weir_ctx_job_id(const weir_ctx_t *ctx);
uint32_t weir_ctx_attempt(const weir_ctx_t *ctx);

/** The task manager's lease: false once it has not heard from the job manager for longer than
 * heartbeat.timeout - heartbeat.interval while registered (*silent_ms says how long; -1 = not
 * registered). Such a task manager may have been declared lost while frozen (SIGSTOP, a long
 * pause, a partition), and a newer attempt may already run elsewhere: a sink checks the lease
 * before it takes over something a newer attempt may own (the Kafka sink before InitProducerId)
 * and fails instead. Always true outside a task manager. Implemented by the task runtime. */
bool weir_ctx_lease_valid(const weir_ctx_t *ctx, int64_t *silent_ms);

/* Connector metrics, reported in the subtask's METRICS (common/proto.h) with every heartbeat.
 * Task thread only; a NULL @p ctx is ignored (unit tests drive connectors without a task). */
/** A Kafka source's lag: the sum over its partitions of (high watermark - position); -1 unknown.
 * Set it at most about once a second, never per record. */
void weir_ctx_kafka_lag(weir_ctx_t *ctx, int64_t lag);
/** A Kafka exactly-once sink ended a transaction: committed, or (@p committed false) aborted. */
void weir_ctx_kafka_txn(weir_ctx_t *ctx, bool committed);

/* Event time in sources (docs/event-time.md). A source with a watermark strategy reports which of
 * its splits each record comes from; the runtime keeps one maximum timestamp per split and emits
 * the minimum over the active splits. Splits are dense indices of this subtask (0, 1, ...); a
 * source that never calls these has one split, 0 (the datagen / generator subtask range). Every
 * call is a no-op (weir_source_split_max: INT64_MIN) when the source has no strategy.
 * Implemented by the task runtime; task thread only. */
/** True when the source of @p ctx has a watermark strategy. */
bool weir_source_has_watermarks(const weir_ctx_t *ctx);
/** Registers split @p split with the maximum timestamp it had at the checkpoint (@p max_ts;
 * INT64_MIN when fresh). Call in open() (after restore()). */
void weir_source_split_add(weir_ctx_t *ctx, uint32_t split, int64_t max_ts);
/** Records emitted from now on belong to split @p split (registered on first use). */
void weir_source_split(weir_ctx_t *ctx, uint32_t split);
/** Split @p split ended: it no longer holds the watermark back. */
void weir_source_split_done(weir_ctx_t *ctx, uint32_t split);
/** The maximum timestamp seen in split @p split (what a snapshot stores with its position). */
int64_t weir_source_split_max(const weir_ctx_t *ctx, uint32_t split);
/** The subtask's last emitted watermark (a snapshot stores it), INT64_MIN when none. */
int64_t weir_source_watermark(const weir_ctx_t *ctx);
/** True when the subtask's last emitted status is idle (a snapshot stores it). */
bool weir_source_idle(const weir_ctx_t *ctx);
/** Restore: the subtask's watermark never goes below @p wm (the minimum over the restored
 * states it took splits from) and, when @p idle (every one of them was idle), it starts idle
 * with every registered split idle until its next record; both are emitted when the source
 * starts, before any record. Call in open(), after weir_source_split_add. */
void weir_source_watermark_floor(weir_ctx_t *ctx, int64_t wm, bool idle);

/** Sets op->vt/op->impl for a connector kind (sources, file/print/blackhole sinks). The task
 * runtime knows no connector: the host passes one of these in weir_task_spec_t (the task manager
 * passes weir_connector_create from connectors/registry.c). @returns 0, or WEIR_EINVAL for a kind
 * it does not know. */
typedef int (*weir_connector_factory_fn)(weir_operator_t *op, char *errstr, size_t errlen);

/** Sets op->vt/op->impl for a built-in transformation or a custom sink (map, flat_map, filter,
 * process, reduce, sink). @returns 0 or WEIR_EINVAL. */
int weir_operator_create_builtin(weir_operator_t *op, char *errstr, size_t errlen);

#endif
