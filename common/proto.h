/* The control-plane protocol between the job manager and task managers: msgpack messages over
 * ZeroMQ (task manager DEALER with identity = its id -> job manager ROUTER). Each message is one
 * ZeroMQ frame holding one msgpack array [type, version, field...]. The tables below ARE the wire
 * format: WEIR_PROTO_MESSAGES lists the types, WEIR_PROTO_FIELDS_<TYPE> the fields of each type in
 * wire order; proto.c expands them into the encoder and the decoder, so they cannot drift apart.
 * A message of an unknown type, another version, another field count, a field of another msgpack
 * type or beyond its bound, or with trailing bytes is a protocol error naming the type and field.
 *
 * Owns the message types, the format tables and the codec API (no state). Invariant: the tables
 * are the only description of the wire format (proto.c has none of its own; test_proto holds the
 * golden bytes of every type). Threading: the codec is stateless, any thread.
 */
#ifndef WEIR_COMMON_PROTO_H
#define WEIR_COMMON_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WEIR_PROTO_VERSION 1

// clang-format off
/* Field kinds. MSGPACK TYPE: "int" is any msgpack integer format on decode, checked against the
 * range (the encoder writes the smallest format). BOUND is a column of every field table, enforced
 * by the decoder; a kind without a bound takes 0 (anything else does not compile).
 *   KIND             MSGPACK TYPE                 C FIELD                          BOUND
 *   U32              int 0..BOUND                 uint32_t                         largest value
 *   U64              int 0..BOUND                 uint64_t                         largest value
 *   I64              int INT64_MIN..BOUND         int64_t                          largest value
 *   BOOL             true | false                 bool                             0
 *   STR              str | nil                    char *, nil = NULL               0
 *   FIXSTR           str | nil                    char[BOUND + 1], nil = ""        most bytes
 *   BIN              bin | nil                    uint8_t *<f>, size_t <f>_len     0
 *   TASK_STATE       int 0..BOUND                 weir_task_state_t                largest value
 *   CHECKPOINT_MODE  int 0..BOUND                 weir_checkpoint_mode_t           largest value
 *   METRICS          array [FIELDS_METRICS]       weir_task_metrics_t              0
 *   TASK             array [FIELDS_TASK]          tasks[0], n_tasks == 1           0
 *   TASKS            array of TASK                tasks[n_tasks]                   0
 *   ARGS             array of STR                 args[n_args]                     0
 *   PARALLELISM      array of U32                 vertex_parallelism[n_vertices]   0
 *   PLACEMENT        array [n_vertices] of        placement[v][s]                  0
 *                      array [vertex_parallelism[v]] of STR
 * Strings and binaries are bounded by the message only: every str/bin length and array count is
 * checked against the bytes left before anything is allocated. Strings must not contain NUL. */

/* Message types: M(NAME, TYPE NUMBER, DIRECTION, WHEN). WEIR_MSG_<NAME> = TYPE NUMBER. */
#define WEIR_PROTO_MESSAGES(M)                                                                     \
    M(REGISTER,            1, "TM -> JM", "on start and whenever the JM answers UNKNOWN")          \
    M(REGISTERED,          2, "JM -> TM", "answers REGISTER")                                      \
    M(HEARTBEAT,           3, "TM -> JM", "every heartbeat.interval, with its running tasks")      \
    M(HEARTBEAT_ACK,       4, "JM -> TM", "answers HEARTBEAT")                                     \
    M(UNKNOWN,             5, "JM -> TM", "answers HEARTBEAT of an unknown TM: register again")    \
    M(DEPLOY,              6, "JM -> TM", "one subtask; TM answers TASK_STATE RUNNING / FAILED")   \
    M(CANCEL,              7, "JM -> TM", "every subtask of (job, attempt) on that TM")            \
    M(TASK_STATE,          8, "TM -> JM", "on every subtask state change (with final metrics)")    \
    M(BLOB_REQUEST,        9, "TM -> JM", "the plugin blob of a DEPLOY is not cached")             \
    M(BLOB,               10, "JM -> TM", "answers BLOB_REQUEST")                                  \
    M(TRIGGER_CHECKPOINT, 11, "JM -> TM", "one source subtask: record position, emit barrier n")   \
    M(ACK_CHECKPOINT,     12, "TM -> JM", "one subtask's snapshot of n (or its final snapshot)")   \
    M(DECLINE_CHECKPOINT, 13, "TM -> JM", "one subtask could not snapshot n")                      \
    M(NOTIFY_CHECKPOINT,  14, "JM -> TM", "checkpoint n of (job, attempt) is complete: commit")  \
    M(LOG_REQUEST,        15, "JM -> TM", "GET /taskmanagers/{id}/log: send the tail of the log")  \
    M(LOG,                16, "TM -> JM", "answers LOG_REQUEST")

/* The fields of each type, after [type, version], in wire order: F(KIND, C FIELD of weir_msg_t,
 * BOUND, DESCRIPTION). The error text of a bad field names its C field. */
#define WEIR_PROTO_FIELDS_REGISTER(F)                                                              \
    F(STR,    tm_id,        0,          "task manager id (its ZeroMQ identity)")                   \
    F(STR,    data_address, 0,          "data-plane endpoint of the TM, tcp://host:port")          \
    F(STR,    host,         0,          "host the TM runs on")                                     \
    F(U32,    slots,        UINT32_MAX, "task slots")                                              \
    F(I64,    pid,          INT64_MAX,  "process id")

#define WEIR_PROTO_FIELDS_REGISTERED(F)                                                            \
    F(I64,    heartbeat_interval_ms, INT64_MAX, "heartbeat interval the TM must keep")

#define WEIR_PROTO_FIELDS_HEARTBEAT(F)                                                             \
    F(STR,    tm_id,        0,          "task manager id")                                         \
    F(TASKS,  tasks,        0,          "every running subtask with its metrics")                \
    F(U32,    metrics_port, 65535,      "port of its Prometheus endpoint, 0: off")                 \
    F(U64,    rss_bytes,    UINT64_MAX, "process resident set size")                              \
    F(U64,    cpu_ns,       UINT64_MAX, "process CPU time, user + system")                         \
    F(U64,    mem_process,  UINT64_MAX, "taskmanager.memory.process.size (the budget)")            \
    F(U64,    mem_network_total, UINT64_MAX, "network buffers: budget")                            \
    F(U64,    mem_network_used,  UINT64_MAX, "... in use")                                         \
    F(U64,    mem_managed_total, UINT64_MAX, "RocksDB block cache + write buffers: budget")        \
    F(U64,    mem_managed_used,  UINT64_MAX, "... in use")                                         \
    F(U64,    mem_state_cache_total, UINT64_MAX, "write-back state caches: budget")                \
    F(U64,    mem_state_cache_used,  UINT64_MAX, "... in use")

#define WEIR_PROTO_FIELDS_HEARTBEAT_ACK(F)
#define WEIR_PROTO_FIELDS_UNKNOWN(F)

#define WEIR_PROTO_FIELDS_DEPLOY(F)                                                                \
    F(FIXSTR, job_id,        32,         "job id (32 hex digits)")                                 \
    F(U32,    attempt,       UINT32_MAX, "attempt of the job")                                     \
    F(STR,    job_name,      0,          "job name")                                               \
    F(FIXSTR, plugin_sha256, 64,         "SHA-256 (hex) of the plugin blob: BLOB_REQUEST it")      \
    F(STR,    graph_json,    0,          "the job graph (JSON)")                                   \
    F(ARGS,   args,          0,          "the job's arguments")                                    \
    F(U32,    vertex,        UINT32_MAX, "the subtask to run: its vertex ...")                     \
    F(U32,    subtask,       UINT32_MAX, "... and its index in the vertex")                        \
    F(PARALLELISM, vertex_parallelism, 0, "parallelism of every vertex of the graph")              \
    F(PLACEMENT, placement,  0,          "[v][s]: data address of subtask s of vertex v; vertex "  \
                                         "and subtask above must lie inside it")                   \
    F(CHECKPOINT_MODE, checkpoint_mode, WEIR_CHECKPOINT_AT_LEAST_ONCE, "checkpointing mode")       \
    F(STR,    checkpoint_dir, 0,         "<state.checkpoints.dir>/<job id>; nil: no checkpoints")  \
    F(U64,    restore_checkpoint_id, UINT64_MAX, "0: fresh start; else restore that checkpoint")   \
    F(BIN,    restore_op_state, 0,       "restore: opaque operator state from the subtask's ACK")  \
    F(STR,    restore_keyed_handle, 0,   "restore: keyed-state handle (JSON) from its ACK")

#define WEIR_PROTO_FIELDS_CANCEL(F)                                                                \
    F(FIXSTR, job_id,       32,         "job id")                                                  \
    F(U32,    attempt,      UINT32_MAX, "attempt to cancel")

#define WEIR_PROTO_FIELDS_TASK_STATE(F)                                                            \
    F(TASK,   tasks,        0,          "the subtask (exactly one) with its state and metrics")

#define WEIR_PROTO_FIELDS_BLOB_REQUEST(F)                                                          \
    F(FIXSTR, blob_sha256,  64,         "SHA-256 (hex) of the wanted blob")

#define WEIR_PROTO_FIELDS_BLOB(F)                                                                  \
    F(FIXSTR, blob_sha256,  64,         "SHA-256 (hex) of the blob")                               \
    F(BIN,    blob,         0,          "its bytes; nil when missing")                             \
    F(STR,    error,        0,          "why it is missing; nil when found")

#define WEIR_PROTO_FIELDS_TRIGGER_CHECKPOINT(F)                                                    \
    F(FIXSTR, job_id,        32,         "job id")                                                 \
    F(U32,    attempt,       UINT32_MAX, "attempt")                                                \
    F(U64,    checkpoint_id, UINT64_MAX, "checkpoint n")                                           \
    F(I64,    checkpoint_timestamp, INT64_MAX, "trigger wall time (ms)")                           \
    F(U32,    vertex,        UINT32_MAX, "the source subtask: its vertex ...")                     \
    F(U32,    subtask,       UINT32_MAX, "... and its index")                                      \
    F(U32,    ck_kind,       WEIR_CK_STOP, "0 checkpoint, 1 savepoint, "                           \
                                         "2 stop-with-savepoint")                                  \
    F(STR,    target,        0,          "savepoint: its directory (subtasks write "               \
                                         "<target>/<vertex>-<subtask>/); nil for a checkpoint")

#define WEIR_PROTO_FIELDS_ACK_CHECKPOINT(F)                                                        \
    F(FIXSTR, job_id,        32,         "job id")                                                 \
    F(U32,    attempt,       UINT32_MAX, "attempt")                                                \
    F(U64,    checkpoint_id, UINT64_MAX, "checkpoint n")                                           \
    F(U32,    vertex,        UINT32_MAX, "the subtask: its vertex ...")                            \
    F(U32,    subtask,       UINT32_MAX, "... and its index")                                      \
    F(BOOL,   final,         0,          "its last snapshot: it waits for the final NOTIFY")       \
    F(BIN,    op_state,      0,          "opaque state of its operator chain; nil: none")          \
    F(STR,    keyed_handle,  0,          "JSON naming its keyed-state files; nil: stateless")      \
    F(U64,    state_size,    UINT64_MAX, "bytes of state the checkpoint references")               \
    F(U64,    uploaded_size, UINT64_MAX, "bytes it wrote for this checkpoint")                     \
    F(U64,    alignment_ns,  UINT64_MAX, "first barrier -> last barrier")                          \
    F(U64,    sync_ns,       UINT64_MAX, "synchronous part of the snapshot")                       \
    F(U64,    async_ns,      UINT64_MAX, "asynchronous upload")

#define WEIR_PROTO_FIELDS_DECLINE_CHECKPOINT(F)                                                    \
    F(FIXSTR, job_id,        32,         "job id")                                                 \
    F(U32,    attempt,       UINT32_MAX, "attempt")                                                \
    F(U64,    checkpoint_id, UINT64_MAX, "checkpoint n")                                           \
    F(U32,    vertex,        UINT32_MAX, "the subtask: its vertex ...")                            \
    F(U32,    subtask,       UINT32_MAX, "... and its index")                                      \
    F(STR,    error,         0,          "why it could not snapshot")

#define WEIR_PROTO_FIELDS_LOG_REQUEST(F)                                                           \
    F(U64,    request_id,   UINT64_MAX, "answered in LOG")                                         \
    F(U32,    max_bytes,    1048576,    "at most this many bytes of the tail")

#define WEIR_PROTO_FIELDS_LOG(F)                                                                   \
    F(STR,    tm_id,        0,          "task manager id")                                         \
    F(U64,    request_id,   UINT64_MAX, "of the LOG_REQUEST")                                      \
    F(BIN,    log_tail,     0,          "the last <= max_bytes bytes of its log, from a line start")

#define WEIR_PROTO_FIELDS_NOTIFY_CHECKPOINT(F)                                                     \
    F(FIXSTR, job_id,        32,         "job id")                                                 \
    F(U32,    attempt,       UINT32_MAX, "attempt")                                                \
    F(U64,    checkpoint_id, UINT64_MAX, "checkpoint n, complete")                                 \
    F(BOOL,   final,         0,          "commit everything, then finish")

/* TASK: one subtask (weir_msg_task_state_t), an array of these fields; errors say "task.<field>". */
#define WEIR_PROTO_FIELDS_TASK(F)                                                                  \
    F(FIXSTR, job_id,       32,         "job id")                                                  \
    F(U32,    attempt,      UINT32_MAX, "attempt")                                                 \
    F(U32,    vertex,       UINT32_MAX, "vertex")                                                  \
    F(U32,    subtask,      UINT32_MAX, "index in the vertex")                                     \
    F(TASK_STATE, state,    WEIR_TASK_FAILED, "state")                                             \
    F(STR,    message,      0,          "nil or one line (FAILED: the cause)")                     \
    F(METRICS, metrics,     0,          "its counters")

/* METRICS: weir_task_metrics_t, an array of these fields; errors say "task.metrics". */
#define WEIR_PROTO_FIELDS_METRICS(F)                                                               \
    F(U64,    records_in,         UINT64_MAX, "records read")                                      \
    F(U64,    records_out,        UINT64_MAX, "records emitted")                                   \
    F(U64,    buffers_in_remote,  UINT64_MAX, "buffers received over ZeroMQ")                     \
    F(U64,    bytes_in_remote,    UINT64_MAX, "their bytes")                                       \
    F(U64,    buffers_out_remote, UINT64_MAX, "buffers sent over ZeroMQ")                         \
    F(U64,    bytes_out_remote,   UINT64_MAX, "their bytes")                                       \
    F(U64,    buffers_out_local,  UINT64_MAX, "buffers passed to a subtask in the same TM")        \
    F(U64,    backpressured_ns,   UINT64_MAX, "time spent waiting for credit")                     \
    F(U64,    buffers_in_local,   UINT64_MAX, "buffers received from a subtask in the same TM")    \
    F(U64,    bytes_in_local,     UINT64_MAX, "their bytes")                                       \
    F(U64,    bytes_out_local,    UINT64_MAX, "bytes of buffers_out_local")                        \
    F(U64,    busy_ns,            UINT64_MAX, "time processing (not idle, not backpressured)")     \
    F(U64,    idle_ns,            UINT64_MAX, "time waiting for input")                            \
    F(U64,    in_queued,          UINT64_MAX, "gauge: input buffers queued now")                   \
    F(U64,    in_capacity,        UINT64_MAX, "gauge: input buffers possible (credits)")           \
    F(U64,    out_queued,         UINT64_MAX, "gauge: output buffers not yet sent or consumed")    \
    F(U64,    out_capacity,       UINT64_MAX, "gauge: output buffers possible")                    \
    F(I64,    watermark,          INT64_MAX,  "current output watermark, INT64_MIN: none")         \
    F(U64,    late_records_dropped, UINT64_MAX, "records dropped as late")                         \
    F(U64,    state_cache_hits,   UINT64_MAX, "write-back state cache hits")                       \
    F(U64,    state_cache_misses, UINT64_MAX, "its misses (read from RocksDB)")                    \
    F(I64,    kafka_lag,          INT64_MAX,  "Kafka source: records behind the high watermark; "  \
                                              "-1: not a Kafka source or unknown")                 \
    F(U64,    kafka_tx_committed, UINT64_MAX, "Kafka exactly-once sink: transactions committed")   \
    F(U64,    kafka_tx_aborted,   UINT64_MAX, "... and aborted")
// clang-format on

typedef enum weir_msg_type {
#define WEIR_PROTO_TYPE_ENUM(name, number, direction, when) WEIR_MSG_##name = number,
    WEIR_PROTO_MESSAGES(WEIR_PROTO_TYPE_ENUM)
#undef WEIR_PROTO_TYPE_ENUM
} weir_msg_type_t;

typedef enum weir_checkpoint_mode {
    WEIR_CHECKPOINT_NONE = 0,
    WEIR_CHECKPOINT_EXACTLY_ONCE = 1,
    WEIR_CHECKPOINT_AT_LEAST_ONCE = 2,
} weir_checkpoint_mode_t;

/** What a TRIGGER_CHECKPOINT (and the barrier it starts) takes (docs/checkpointing.md,
 * "Savepoints and stop-with-savepoint"): a checkpoint (incremental keyed upload into the job's
 * checkpoint directory, notified when complete), a savepoint (self-contained keyed upload into
 * its target directory, never notified) or a stop-with-savepoint (a savepoint after which the
 * sources stop emitting; its completion is notified with final = true and the job finishes). */
typedef enum weir_ck_kind {
    WEIR_CK_CHECKPOINT = 0,
    WEIR_CK_SAVEPOINT = 1,
    WEIR_CK_STOP = 2,
} weir_ck_kind_t;

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
    uint64_t buffers_in_local;  /* buffers received from a subtask in the same task manager */
    uint64_t bytes_in_local;
    uint64_t bytes_out_local; /* bytes of buffers_out_local */
    /* busy + idle + backpressured partition the subtask thread's wall time */
    uint64_t busy_ns;
    uint64_t idle_ns;
    uint64_t in_queued;   /* gauge: input buffers queued now */
    uint64_t in_capacity; /* gauge: input buffers possible (credits of all input channels) */
    uint64_t out_queued;  /* gauge: output buffers filled and not yet sent or consumed */
    uint64_t out_capacity;
    int64_t watermark; /* current output watermark, INT64_MIN: none */
    uint64_t late_records_dropped;
    uint64_t state_cache_hits;
    uint64_t state_cache_misses;
    int64_t kafka_lag; /* Kafka source: sum over its partitions of high watermark - position; -1 */
    uint64_t kafka_tx_committed;
    uint64_t kafka_tx_aborted;
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
    /* TRIGGER: ck_kind is a weir_ck_kind_t; target: the savepoint directory (subtasks write
     * <target>/<vertex>-<subtask>/), NULL for a checkpoint */
    uint32_t ck_kind;
    char *target;
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
    /* HEARTBEAT: the task manager's own figures (memory: the budget of
     * taskmanager.memory.process.size and its parts, taskmanager/memory.h) */
    uint32_t metrics_port; /* its Prometheus endpoint, 0: off */
    uint64_t rss_bytes;
    uint64_t cpu_ns;
    uint64_t mem_process;
    uint64_t mem_network_total;
    uint64_t mem_network_used;
    uint64_t mem_managed_total;
    uint64_t mem_managed_used;
    uint64_t mem_state_cache_total;
    uint64_t mem_state_cache_used;
    /* LOG_REQUEST / LOG */
    uint64_t request_id;
    uint32_t max_bytes; /* LOG_REQUEST: at most 1 MiB */
    uint8_t *log_tail;  /* LOG: the tail, starting at a line boundary */
    size_t log_tail_len;
} weir_msg_t;

/** Encodes @p msg into a malloc'd buffer. @returns 0 or WEIR_ENOMEM. */
int weir_msg_encode(const weir_msg_t *msg, uint8_t **out, size_t *out_len);
/** Decodes one message. @returns 0, or WEIR_EPROTO with a one-line reason in errstr. */
int weir_msg_decode(const uint8_t *data, size_t len, weir_msg_t *msg, char *errstr, size_t errlen);
/** Frees what a decode (or a caller building a message with malloc'd fields) allocated. */
void weir_msg_clear(weir_msg_t *msg);

#endif
