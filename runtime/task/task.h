/* A deployed subtask: a thread that runs one vertex's operator chain for one subtask index,
 * with an input gate (channels from every upstream subtask), a mailbox, the output writer
 * (partitioners + output channels) and, for keyed vertices, a state backend.
 *
 * The task manager creates tasks from DEPLOY messages and reads their state and metrics; the
 * task thread owns everything else. State changes are reported through the callback (called on
 * the task thread; it must not block). */
#ifndef WEIR_RUNTIME_TASK_H
#define WEIR_RUNTIME_TASK_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "common/killpoint.h"
#include "common/proto.h"
#include "runtime/dataplane/dataplane.h"
#include "runtime/graph/graph.h"
#include "runtime/task/operator.h"

typedef struct weir_task weir_task_t;

/** The checkpoint id operators' snapshot hooks (and the ACK) get for the final snapshot after
 * end of input; the coordinator counts it for every later checkpoint. Hooks must order it after
 * every real id (connectors/common/twophase.c does), so a late notify of an earlier checkpoint
 * never commits the final epoch; only notify_complete(final=true) does, which the task calls for
 * the first completed checkpoint that holds the final snapshot (docs/checkpointing.md). */
#define WEIR_CHECKPOINT_ID_FINAL 0

/** Sends a control message (ACK_CHECKPOINT / DECLINE_CHECKPOINT) to the job manager. Called on
 * the task thread or the task's uploader thread: must be thread-safe and must not block; @p msg
 * and everything it points to are only borrowed for the call. */
typedef void (*weir_task_send_cb)(void *arg, const weir_msg_t *msg);

typedef void (*weir_task_state_cb)(void *arg, weir_task_t *task, weir_task_state_t state,
                                   const char *message);

typedef struct weir_task_spec {
    char job_id[33];
    uint32_t attempt;
    weir_job_t *graph; /* built with define() and the submitted parallelism; the task owns it */
    void *plugin;      /* opaque, kept alive by the task manager while the task runs */
    uint32_t vertex;
    uint32_t subtask;
    char ***placement; /* placement[v][s] = data address hosting subtask s of vertex v;
                          copied by weir_task_start */
    weir_dataplane_t *dataplane;
    const char *work_dir;          /* task manager working directory; state goes below it */
    size_t buffer_size;            /* taskmanager.memory.segment-size */
    int64_t buffer_timeout_ns;     /* execution.buffer-timeout */
    int64_t watermark_interval_ns; /* pipeline.auto-watermark-interval; 0 = 200 ms */
    uint32_t credits_per_channel;  /* taskmanager.network.buffers-per-channel */
    size_t state_cache_bytes;      /* state.backend.cache-size per subtask */
    /* the task manager's shared keyed-state memory (state/memory.h; NULL = none: the backend
     * gets state_cache_bytes); must outlive the task */
    struct weir_state_memory *state_memory;
    weir_task_state_cb on_state;
    void *cb_arg;
    /* checkpointing (docs/checkpointing.md); all zero = off */
    weir_checkpoint_mode_t checkpoint_mode;
    const char *checkpoint_dir; /* <state.checkpoints.dir>/<job id> (a storage URI: s3://...
                                   or a path); copied */
    /* the task manager's checkpoint storage env (storage/storage.h): every upload and restore of
     * keyed state goes through it; must outlive the task. NULL: the task makes its own from
     * defaults when it needs one (tests; no s3.* settings then) */
    struct weir_storage_env *storage_env;
    /* the task manager's local recovery cache "<workdir>/local-recovery" (the task uses
     * <it>/<job id>/, state/snapshot.h weir_state_fetch_t); NULL = none; copied */
    const char *local_recovery_dir;
    uint64_t restore_checkpoint_id;  /* 0 = fresh start */
    const uint8_t *restore_op_state; /* the operator-state bundle of DEPLOY; copied */
    size_t restore_op_state_len;
    const char *restore_keyed_handle; /* the keyed restore document (JSON, the DEPLOY field of
                                         the same name: base, claim, range, sources with their
                                         handles); NULL = fresh keyed state; copied */
    bool incremental;                 /* state.backend.incremental */
    weir_killpoint_t *killpoint;      /* the task manager's debug.kill-at; may be NULL */
    weir_task_send_cb send;           /* ACK / DECLINE; NULL = dropped */
    void *send_arg;
    weir_connector_factory_fn create_connector; /* builds sources and connector sinks */
    /* The task manager's lease (weir_ctx_lease_valid): the weir_now_ns() time of the last message
     * from the job manager while registered (0 = none), and how long it holds. NULL = always
     * valid (no task manager). */
    const _Atomic int64_t *lease_from_ns;
    int64_t lease_ns;
} weir_task_spec_t;

/** Starts the subtask thread. @returns NULL + errstr when the chain cannot be built. */
weir_task_t *weir_task_start(weir_task_spec_t *spec, char *errstr, size_t errlen);
/** Asks the task to stop (mailbox message); returns at once. */
void weir_task_cancel(weir_task_t *task);
/** Checkpoint @p checkpoint_id of kind @p kind triggered at @p timestamp_ms (TRIGGER_CHECKPOINT,
 * sources only); @p target: a savepoint's directory (copied; the subtasks write
 * <target>/<vertex>-<subtask>/), NULL for a checkpoint. After a stop-with-savepoint the source
 * emits nothing more and waits for the final notify. Returns at once (mailbox message). */
void weir_task_trigger(weir_task_t *task, uint64_t checkpoint_id, int64_t timestamp_ms,
                       weir_ck_kind_t kind, const char *target);
/** Checkpoint @p checkpoint_id is complete (NOTIFY_CHECKPOINT); @p final: the job's final
 * checkpoint, or the stop-with-savepoint the subtask snapshotted (it then commits everything and
 * finishes without end of input). Returns at once. */
void weir_task_notify(weir_task_t *task, uint64_t checkpoint_id, bool final);
/** Joins the thread and frees the task (removing its state directory). Clears the pointer. */
void weir_task_destroy(weir_task_t **task);

const char *weir_task_job_id(const weir_task_t *task);
uint32_t weir_task_attempt(const weir_task_t *task);
uint32_t weir_task_vertex(const weir_task_t *task);
uint32_t weir_task_subtask(const weir_task_t *task);
/** The chain's current event-time watermark (INT64_MIN before the first; INT64_MAX after end of
 * input). Any thread (relaxed atomic). */
int64_t weir_task_watermark(const weir_task_t *task);
weir_task_state_t weir_task_state(const weir_task_t *task);
/** A consistent-enough snapshot of the counters (relaxed atomics). Any thread, while the task
 * exists (until weir_task_destroy). Every field but state_cache_hits / state_cache_misses (0
 * here: the state backend counts them). busy_ns + idle_ns + backpressured_ns is the wall time
 * of the subtask from weir_task_start to now (to its final state once it has one): idle is the
 * time blocked on the mailbox for input (a source: for its wake-up time), backpressured the
 * time blocked for an output credit, busy the rest (records, timers, barriers, snapshots, open
 * and close). Gauges: in_queued = input buffers queued in the mailbox or held back (alignment,
 * deferred) and not processed, of in_capacity = input channels x credits per channel;
 * out_queued = buffers of the output channels' credit windows not returned by the receivers
 * yet, of out_capacity = output channels x credits per channel. watermark: INT64_MIN before
 * the first, INT64_MAX after end of input; kafka_lag: -1 unless a Kafka source reported it. */
void weir_task_get_metrics(const weir_task_t *task, weir_task_metrics_t *out);

/** Counters of one operator of the chain (Flink's per-operator numRecordsIn/Out). */
typedef struct weir_operator_metrics {
    const char *name;     /* the node's name; owned by the task (valid until weir_task_destroy) */
    const char *uid;      /* the node's uid; NULL when not set */
    uint32_t node;        /* the node's id in the job graph */
    uint64_t records_in;  /* records handed to it (the head: every record of the input gate) */
    uint64_t records_out; /* records it emitted, to every output (side outputs too) */
} weir_operator_metrics_t;

/** The number of chained operators of @p task (head first). Any thread. */
size_t weir_task_operator_count(const weir_task_t *task);
/** The counters of chain position @p i (< weir_task_operator_count; zeroes otherwise). Any
 * thread, while the task exists (relaxed atomics, single writer: the task thread). */
void weir_task_get_operator_metrics(const weir_task_t *task, size_t i,
                                    weir_operator_metrics_t *out);

#endif
