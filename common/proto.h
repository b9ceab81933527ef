/* The control-plane protocol between the job manager and task managers: msgpack messages over
 * ZeroMQ (task manager DEALER with identity = its id -> job manager ROUTER). Each message is one
 * ZeroMQ frame holding one msgpack array: [type, version, fields...]. The field order of each type
 * is fixed by the encoder and decoder in proto.c (one place). Unknown types or a wrong version are
 * a protocol error naming the type.
 *
 * Flow:
 *   TM -> JM  REGISTER      on start and whenever the JM answers UNKNOWN
 *   JM -> TM  REGISTERED
 *   TM -> JM  HEARTBEAT     every heartbeat.interval, with the metrics of its running tasks
 *   JM -> TM  HEARTBEAT_ACK (or UNKNOWN when the JM does not know this TM: register again)
 *   JM -> TM  DEPLOY        one subtask; TM answers TASK_STATE RUNNING / FAILED
 *   TM -> JM  BLOB_REQUEST  when the plugin blob is not cached; JM -> TM BLOB
 *   JM -> TM  CANCEL        every subtask of (job, attempt) on that TM
 *   TM -> JM  TASK_STATE    on every subtask state change (with final metrics)
 *   JM -> TM  TRIGGER_CHECKPOINT  one source subtask: record position, emit barrier n
 *   TM -> JM  ACK_CHECKPOINT      one subtask's snapshot of n (or its final snapshot)
 *   TM -> JM  DECLINE_CHECKPOINT  one subtask could not snapshot n
 *   JM -> TM  NOTIFY_CHECKPOINT   checkpoint n of (job, attempt) is complete: commit
 */
#ifndef WEIR_COMMON_PROTO_H
#define WEIR_COMMON_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WEIR_PROTO_VERSION 1

typedef enum weir_msg_type {
    WEIR_MSG_REGISTER = 1,
    WEIR_MSG_REGISTERED = 2,
    WEIR_MSG_HEARTBEAT = 3,
    WEIR_MSG_HEARTBEAT_ACK = 4,
    WEIR_MSG_UNKNOWN = 5,
    WEIR_MSG_DEPLOY = 6,
    WEIR_MSG_CANCEL = 7,
    WEIR_MSG_TASK_STATE = 8,
    WEIR_MSG_BLOB_REQUEST = 9,
    WEIR_MSG_BLOB = 10,
    WEIR_MSG_TRIGGER_CHECKPOINT = 11,
    WEIR_MSG_ACK_CHECKPOINT = 12,
    WEIR_MSG_DECLINE_CHECKPOINT = 13,
    WEIR_MSG_NOTIFY_CHECKPOINT = 14,
} weir_msg_type_t;

/** Checkpointing mode of a deployed job. */
typedef enum weir_checkpoint_mode {
    WEIR_CHECKPOINT_NONE = 0,
    WEIR_CHECKPOINT_EXACTLY_ONCE = 1,
    WEIR_CHECKPOINT_AT_LEAST_ONCE = 2,
} weir_checkpoint_mode_t;

typedef enum weir_task_state {
    WEIR_TASK_CREATED = 0,
    WEIR_TASK_DEPLOYING,
    WEIR_TASK_RUNNING,
    WEIR_TASK_FINISHED,
    WEIR_TASK_CANCELING,
    WEIR_TASK_CANCELED,
    WEIR_TASK_FAILED,
} weir_task_state_t;

const char *weir_task_state_name(weir_task_state_t s); /* "RUNNING", ... */

/** Per-subtask counters, reported with heartbeats and final states. */
typedef struct weir_task_metrics {
    uint64_t records_in;
    uint64_t records_out;
    uint64_t buffers_in_remote; /* buffers received over ZeroMQ */
    uint64_t bytes_in_remote;
    uint64_t buffers_out_remote; /* buffers sent over ZeroMQ */
    uint64_t bytes_out_remote;
    uint64_t buffers_out_local; /* buffers passed to a subtask in the same task manager */
    uint64_t backpressured_ns;  /* time spent waiting for credit */
} weir_task_metrics_t;

typedef struct weir_msg_task_state {
    char job_id[33];
    uint32_t attempt;
    uint32_t vertex;
    uint32_t subtask;
    weir_task_state_t state;
    char *message; /* NULL or one line (FAILED: the cause) */
    weir_task_metrics_t metrics;
} weir_msg_task_state_t;

/** One decoded message. Strings and arrays are heap-owned; free with weir_msg_clear(). */
typedef struct weir_msg {
    weir_msg_type_t type;
    char *tm_id; /* REGISTER, HEARTBEAT */
    /* REGISTER */
    char *data_address;
    char *host;
    uint32_t slots;
    int64_t pid;
    /* REGISTERED */
    int64_t heartbeat_interval_ms;
    /* HEARTBEAT: running tasks; TASK_STATE: exactly one */
    weir_msg_task_state_t *tasks;
    uint32_t n_tasks;
    /* DEPLOY / CANCEL: job_id + attempt */
    char job_id[33];
    uint32_t attempt;
    /* DEPLOY */
    char *job_name;
    char plugin_sha256[65];
    char *graph_json;
    char **args;
    uint32_t n_args;
    uint32_t vertex;
    uint32_t subtask;
    uint32_t n_vertices;
    uint32_t *vertex_parallelism; /* [n_vertices] */
    char ***placement;            /* placement[v][s]: data address hosting subtask s of vertex v */
    /* DEPLOY: checkpointing and restore.
     * checkpoint_dir: <state.checkpoints.dir>/<job id>, NULL when checkpointing is off.
     * restore_checkpoint_id: 0 = fresh start; else the subtask starts from that checkpoint with
     * restore_op_state (opaque bytes from its ACK) and restore_keyed_handle (JSON from its ACK). */
    weir_checkpoint_mode_t checkpoint_mode;
    char *checkpoint_dir;
    uint64_t restore_checkpoint_id;
    uint8_t *restore_op_state;
    size_t restore_op_state_len;
    char *restore_keyed_handle;
    /* TRIGGER / ACK / DECLINE / NOTIFY: job_id, attempt, checkpoint_id; TRIGGER, ACK and
     * DECLINE also vertex + subtask (the fields above). */
    uint64_t checkpoint_id;
    int64_t checkpoint_timestamp; /* TRIGGER: trigger wall time (ms) */
    /* ACK: final = this is the subtask's last snapshot (all input consumed; it waits for the
     * final NOTIFY before it finishes). NOTIFY: final = commit everything, then finish. */
    bool final;
    /* ACK */
    uint8_t *op_state; /* opaque operator state of the subtask's chain (small) */
    size_t op_state_len;
    char *keyed_handle;     /* JSON describing the keyed-state files, NULL if stateless */
    uint64_t state_size;    /* bytes of state the checkpoint references for this subtask */
    uint64_t uploaded_size; /* bytes this subtask wrote for this checkpoint */
    uint64_t alignment_ns;  /* first barrier -> last barrier */
    uint64_t sync_ns;       /* synchronous part of the snapshot */
    uint64_t async_ns;      /* asynchronous upload */
    /* DECLINE: reason in `error` */
    /* BLOB_REQUEST / BLOB */
    char blob_sha256[65];
    uint8_t *blob;
    size_t blob_len;
    char *error; /* BLOB: why it is missing; NULL when found */
} weir_msg_t;

/** Encodes @p msg into a malloc'd buffer. @returns 0 or WEIR_ENOMEM. */
int weir_msg_encode(const weir_msg_t *msg, uint8_t **out, size_t *out_len);
/** Decodes one message. @returns 0, or WEIR_EPROTO with a one-line reason in errstr. */
int weir_msg_decode(const uint8_t *data, size_t len, weir_msg_t *msg, char *errstr, size_t errlen);
/** Frees what a decode (or a caller building a message with malloc'd fields) allocated. */
void weir_msg_clear(weir_msg_t *msg);

#endif
