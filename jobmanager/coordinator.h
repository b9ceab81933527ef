/* The checkpoint coordinator of the job manager as pure functions (docs/checkpointing.md, steps
 * 1, 5 and 7, and the final checkpoint): the checkpointing configuration, and per job the
 * in-flight checkpoint and its acks, the final snapshots, the decisions (due, ready, expired,
 * failed beyond tolerance), the counters and the history served by GET /jobs/{id}/checkpoints.
 * No sockets, no files, no clocks of its own: the caller hands it times and messages and acts on
 * its answers (checkpointing.c sends TRIGGER/NOTIFY and writes the metadata via ckpt_store.h).
 *
 * Invariants: at most one checkpoint in flight (pending_id != 0); ids handed out grow; an ack
 * counts only for the in-flight id (a final ack for the in-flight and every later checkpoint,
 * so subtasks that finished early are part of every later checkpoint with their final state);
 * the history keeps the last WEIR_CKPT_HISTORY entries, oldest first.
 *
 * Threading: not thread-safe per object; the job manager calls it with its mutex held. */
#ifndef WEIR_JOBMANAGER_COORDINATOR_H
#define WEIR_JOBMANAGER_COORDINATOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/proto.h"
#include "jobmanager/ckpt_store.h"

/* ---- configuration ------------------------------------------------------------------------ */

typedef struct weir_ckpt_config {
    bool enabled; /* execution.checkpointing.interval is set */
    int64_t interval_ms;
    int64_t timeout_ms;
    int64_t min_pause_ms;
    int64_t tolerable; /* consecutive failed checkpoints tolerated */
    weir_checkpoint_mode_t mode;
    char dir[2048]; /* state.checkpoints.dir ("" when unset) */
    uint32_t num_retained;
    bool incremental;
} weir_ckpt_config_t;

/** Smallest checkpoint interval and timeout (ms), as in Flink. */
#define WEIR_CKPT_MIN_MS 10
/** Largest duration (ms) the coordinator can turn into nanoseconds. */
#define WEIR_CKPT_MAX_MS (INT64_MAX / 1000000)

/** Reads and validates execution.checkpointing.* and state.checkpoints.*: refused are an interval
 * (when set) or a timeout below WEIR_CKPT_MIN_MS, a duration above WEIR_CKPT_MAX_MS,
 * max-concurrent-checkpoints other than 1, num-retained < 1, a mode
 * other than EXACTLY_ONCE/AT_LEAST_ONCE and an interval without state.checkpoints.dir (a negative
 * tolerable-failed-checkpoints is refused by the configuration itself: integer keys are >= 0).
 * @returns 0 or WEIR_ECONFIG with one line naming the key(s) and the fix. */
int weir_ckpt_config_load(const weir_config_t *cfg, weir_ckpt_config_t *out, char *errstr,
                          size_t errlen);

/* ---- coordinator state --------------------------------------------------------------------- */

/** History entries kept per job (GET /jobs/{id}/checkpoints). */
#define WEIR_CKPT_HISTORY 50

typedef enum weir_ckpt_status {
    WEIR_CKPT_IN_PROGRESS = 0,
    WEIR_CKPT_COMPLETED,
    WEIR_CKPT_FAILED,
} weir_ckpt_status_t;

const char *weir_ckpt_status_name(weir_ckpt_status_t s);

/** One subtask's snapshot as acknowledged. */
typedef struct weir_ckpt_ack {
    bool acked;
    uint8_t *op_state;
    size_t op_state_len;
    char *keyed;
    uint64_t state_size, uploaded_size;
    uint64_t alignment_ns, sync_ns, async_ns;
} weir_ckpt_ack_t;

typedef struct weir_ckpt_hist {
    uint64_t id;
    weir_ckpt_status_t status;
    int64_t trigger_ms;
    int64_t duration_ms; /* -1 while in progress */
    uint64_t state_size, uploaded_size;
    int64_t alignment_ms, sync_ms, async_ms; /* max over subtasks */
    uint32_t kind;                           /* weir_ck_kind_t: checkpoint, savepoint, stop */
    char failure[256];
} weir_ckpt_hist_t;

typedef struct weir_ckpt_coord {
    uint32_t n_vertices;
    uint32_t *offset; /* [n_vertices + 1]: index of (v, 0); offset[n_vertices] = n_subtasks */
    uint32_t n_subtasks;
    uint64_t next_id; /* 0 = not known yet (computed from <ckdir> on first use) */
    /* in flight (pending_id != 0) */
    uint64_t pending_id;
    uint32_t pending_kind;     /* weir_ck_kind_t of the in-flight one */
    char pending_target[2100]; /* a savepoint's directory ("" for a checkpoint) */
    int64_t pending_trigger_ms, pending_trigger_ns;
    weir_ckpt_ack_t *acks; /* [n_subtasks] */
    /* final snapshots of the current attempt */
    weir_ckpt_ack_t *finals; /* [n_subtasks] */
    uint32_t n_finals;
    bool final_done; /* the final checkpoint of this attempt was written */
    /* a completion is being written (_metadata, HA pointer) by the storage worker: the id (the
     * in-flight one, or the final checkpoint's); 0 = none. While set nothing is ready, due or
     * expired: the coordinator is busy until the result is applied */
    uint64_t completing_id;
    /* timing */
    int64_t running_since_ns; /* 0 = not all running yet this attempt */
    int64_t last_trigger_ns;  /* 0 = none this attempt */
    int64_t last_end_ns;      /* end of the last checkpoint (completed or failed); 0 = none */
    uint32_t consecutive_failures;
    /* statistics */
    uint64_t n_triggered, n_completed, n_failed, n_restored;
    weir_ckpt_hist_t hist[WEIR_CKPT_HISTORY]; /* ring */
    uint32_t hist_start, hist_len;
    bool have_completed;
    weir_ckpt_hist_t latest; /* the latest completed */
    char latest_path[2100];
    uint64_t latest_id;
    bool have_restored;
    uint64_t restored_id;
    char restored_path[2100];
    int64_t restored_ms;
} weir_ckpt_coord_t;

/** @returns 0 or WEIR_ENOMEM. */
int weir_ckpt_coord_init(weir_ckpt_coord_t *c, uint32_t n_vertices, const uint32_t *parallelism);
void weir_ckpt_coord_free(weir_ckpt_coord_t *c);
/** Flat index of subtask (v, s). */
uint32_t weir_ckpt_coord_index(const weir_ckpt_coord_t *c, uint32_t v, uint32_t s);

/** A new attempt: drops the in-flight checkpoint (recorded as FAILED with @p why, not counted as
 * a consecutive failure), the final snapshots and the timers. */
void weir_ckpt_coord_new_attempt(weir_ckpt_coord_t *c, int64_t now_ns, const char *why);
/** True when a periodic checkpoint should be triggered now: nothing in flight, every subtask
 * RUNNING (@p all_running; a subtask that sent its final snapshot stays RUNNING until the final
 * notify), not every subtask has sent its final snapshot (then the final checkpoint follows
 * instead), interval and min-pause passed. Subtasks that finished early do not stop periodic
 * checkpoints (docs/checkpointing.md, "Checkpoints after tasks finish"). */
bool weir_ckpt_coord_due(weir_ckpt_coord_t *c, const weir_ckpt_config_t *cfg, bool all_running,
                         int64_t now_ns);
/** True when subtask @p idx sent its final snapshot in this attempt (it reached its end of
 * input): a periodic checkpoint is not triggered at it, and its final snapshot stands for it in
 * every later checkpoint of the attempt. */
bool weir_ckpt_coord_finished(const weir_ckpt_coord_t *c, uint32_t idx);
/** Starts checkpoint c->next_id (which must be known); returns its id. */
uint64_t weir_ckpt_coord_begin(weir_ckpt_coord_t *c, int64_t now_ns, int64_t wall_ms);
/** Starts a savepoint (@p kind WEIR_CK_SAVEPOINT or WEIR_CK_STOP) into directory @p target with
 * id c->next_id (which must be known); returns its id. It is in flight like a checkpoint and,
 * once complete, the latest restore point like one (a failover restores it, so the transactions
 * pre-committed at it are committed, never aborted); it is never notified (except a stop), never
 * touched by retention; a failed savepoint is not counted against tolerable-failed-checkpoints. */
uint64_t weir_ckpt_coord_begin_savepoint(weir_ckpt_coord_t *c, uint32_t kind, const char *target,
                                         int64_t now_ns, int64_t wall_ms);
/** Subtasks that acknowledged the in-flight checkpoint (or stand in it with their final
 * snapshot), and the bytes of state they reported. */
uint32_t weir_ckpt_coord_acked(const weir_ckpt_coord_t *c, uint64_t *state_size);
/** An ACK of subtask @p idx. A final ack (@p final) is kept as the subtask's final snapshot and
 * counts for the in-flight and every later checkpoint; otherwise it must name the in-flight id.
 * Takes ownership of ack->op_state and ack->keyed (freed when ignored). @returns true when
 * accepted. */
bool weir_ckpt_coord_ack(weir_ckpt_coord_t *c, uint32_t idx, uint64_t id, bool final,
                         weir_ckpt_ack_t *ack);
/** True when every subtask acked the in-flight checkpoint (or sent its final snapshot). */
bool weir_ckpt_coord_ready(const weir_ckpt_coord_t *c);
/** True when every subtask sent its final snapshot, nothing is in flight and the final
 * checkpoint was not written yet. */
bool weir_ckpt_coord_final_ready(const weir_ckpt_coord_t *c);
/** Copies the in-flight checkpoint (or, with @p final, the final snapshots) into @p m (tasks in
 * (vertex, subtask) order; vertex/subtask from @p vs_of). @returns 0 or WEIR_ENOMEM. */
int weir_ckpt_coord_build_meta(const weir_ckpt_coord_t *c, const char *job_id, uint64_t id,
                               bool final, int64_t trigger_ms, int64_t complete_ms,
                               weir_ckpt_meta_t *m);
/** Records the completion of @p id (the in-flight one, or a final checkpoint begun with
 * weir_ckpt_coord_begin_final) stored at @p path. Resets the consecutive failure count. */
void weir_ckpt_coord_complete(weir_ckpt_coord_t *c, uint64_t id, bool final, const char *path,
                              int64_t now_ns, int64_t wall_ms);
/** The _metadata (and HA pointer) of @p id (the in-flight checkpoint, or the final one just begun)
 * are being written: nothing is ready, due or expired until weir_ckpt_coord_complete, _fail or
 * _new_attempt (or weir_ckpt_coord_completing(c, 0): the write failed). */
void weir_ckpt_coord_completing(weir_ckpt_coord_t *c, uint64_t id);
/** A completion the coordinator no longer waited for (the attempt ended meanwhile) turned out
 * durable: @p id at @p path is a restore point (the latest, when above it); nothing else changes
 * (no in-flight checkpoint is touched, nothing is notified). */
void weir_ckpt_coord_complete_late(weir_ckpt_coord_t *c, uint64_t id, bool final, const char *path);
/** Takes the next id for the final checkpoint and records it as IN_PROGRESS. */
uint64_t weir_ckpt_coord_begin_final(weir_ckpt_coord_t *c, int64_t now_ns, int64_t wall_ms);
/** Aborts the in-flight checkpoint with @p why. @returns true when the consecutive failures now
 * exceed @p tolerable (the job must fail over). */
bool weir_ckpt_coord_fail(weir_ckpt_coord_t *c, const char *why, int64_t tolerable, int64_t now_ns);
/** True when the in-flight checkpoint is older than the timeout. */
bool weir_ckpt_coord_expired(const weir_ckpt_coord_t *c, const weir_ckpt_config_t *cfg,
                             int64_t now_ns);
/** Records a restore from checkpoint @p id at @p path. */
void weir_ckpt_coord_restored(weir_ckpt_coord_t *c, uint64_t id, const char *path, int64_t wall_ms);
/** The i-th history entry, oldest first (i < c->hist_len). */
const weir_ckpt_hist_t *weir_ckpt_coord_hist(const weir_ckpt_coord_t *c, uint32_t i);

#endif
