/**
 * @file weir.h
 * @brief The public API for weir job plugins.
 *
 * A job is a shared library compiled against this header only. It exports one descriptor made
 * with WEIR_PLUGIN(). The `define` function builds the logical job graph with the functions
 * below. It must be deterministic: the `weir` CLI runs it to build the graph it submits, and every
 * task manager runs it again (same arguments) for each subtask it deploys, to obtain the function
 * pointers. Because define() runs once per subtask, the `udata` pointers it hands to operators are
 * private to that subtask's thread: user functions may mutate them without locks.
 *
 * Memory: allocate anything that must live as long as the job with weir_job_alloc() /
 * weir_job_strdup(); it is freed with the job. Records passed to user functions are read-only
 * views into network or chain buffers, valid only until the function returns.
 *
 * Record values are msgpack (msgpack-c). Read them in place with weir_unpack(); write them with
 * the packer from weir_packer() followed by weir_emit_packed().
 */
#ifndef WEIR_WEIR_H
#define WEIR_WEIR_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Everything declared here is exported by libweir.so (and by test hosts that load plugins); weir
 * builds its own code with hidden visibility, so nothing else is. */
#pragma GCC visibility push(default)

/** ABI version of this header. A plugin built against another version is rejected on load. */
#define WEIR_ABI_VERSION 1u
/** Magic number that starts every plugin descriptor ("WEIR"). */
#define WEIR_PLUGIN_MAGIC 0x57454952u
/** Name of the descriptor symbol the loader looks up. */
#define WEIR_PLUGIN_SYMBOL "weir_plugin_descriptor"
/** Largest key a record may carry, in bytes. */
#define WEIR_MAX_KEY_LEN 4096u

typedef struct weir_job weir_job_t;       /**< A job graph under construction (define time). */
typedef struct weir_stream weir_stream_t; /**< An operator's output in the graph. */
typedef struct weir_ctx weir_ctx_t;       /**< Runtime context handed to user functions. */
typedef int weir_state_id;                /**< Handle of a declared keyed state (>= 0). */

/** A record: event timestamp, key bytes and a msgpack value. Read-only view. */
typedef struct weir_record {
    int64_t timestamp;  /**< Event time in milliseconds since the epoch. */
    const void *key;    /**< Key bytes (may be NULL when key_len is 0). */
    uint32_t key_len;   /**< Key length in bytes, at most WEIR_MAX_KEY_LEN. */
    const void *value;  /**< msgpack-encoded value. */
    uint32_t value_len; /**< Value length in bytes. */
} weir_record_t;

/**
 * @brief Builds the job graph.
 * @param job   the graph under construction
 * @param argc  number of job arguments (argv[0] is the plugin path)
 * @param argv  job arguments, as given after PLUGIN.so on the `weir run` command line
 * @returns 0 on success; non-zero after weir_job_error() to reject the arguments.
 */
typedef int (*weir_define_fn)(weir_job_t *job, int argc, char **argv);

/** The descriptor every plugin exports (made by WEIR_PLUGIN). */
typedef struct weir_plugin_descriptor {
    uint32_t magic;          /**< WEIR_PLUGIN_MAGIC */
    uint32_t abi_version;    /**< WEIR_ABI_VERSION the plugin was compiled against */
    const char *name;        /**< job name */
    const char *description; /**< one line, shown by `weir info` */
    weir_define_fn define;   /**< builds the graph */
} weir_plugin_descriptor_t;

/** Declares the plugin descriptor. Use exactly once per plugin, at file scope. */
#define WEIR_PLUGIN(NAME, DESCRIPTION, DEFINE_FN)                                                  \
    __attribute__((visibility("default")))                                                         \
    const weir_plugin_descriptor_t weir_plugin_descriptor = {WEIR_PLUGIN_MAGIC, WEIR_ABI_VERSION,  \
                                                             (NAME), (DESCRIPTION), (DEFINE_FN)}

/* ---------------------------------------------------------------------------------------- */
/* User function types                                                                      */
/* ---------------------------------------------------------------------------------------- */

/** map: emits exactly one record per input (with weir_emit or weir_emit_packed). */
typedef void (*weir_map_fn)(weir_ctx_t *ctx, const weir_record_t *in, void *udata);
/** flat_map: emits zero or more records per input. */
typedef void (*weir_flat_map_fn)(weir_ctx_t *ctx, const weir_record_t *in, void *udata);
/** filter: returns true to keep the record (forwarded unchanged). */
typedef bool (*weir_filter_fn)(weir_ctx_t *ctx, const weir_record_t *in, void *udata);
/**
 * key selector: writes the key of @p in into @p key_out (capacity WEIR_MAX_KEY_LEN) and returns
 * its length. A NULL key selector in weir_key_by() keeps the record's own key.
 */
typedef uint32_t (*weir_key_fn)(const weir_record_t *in, void *key_out, void *udata);
/** keyed process function: the context's current key is the record's key; state is scoped to it. */
typedef void (*weir_process_fn)(weir_ctx_t *ctx, const weir_record_t *in, void *udata);
/**
 * reduce: combines accumulator @p acc and input @p in (both msgpack objects) and packs the new
 * accumulator into @p out (exactly one msgpack object).
 */
typedef void (*weir_reduce_fn)(const msgpack_object *acc, const msgpack_object *in,
                               msgpack_packer *out, void *udata);
/** sink: consumes a record. */
typedef void (*weir_sink_fn)(weir_ctx_t *ctx, const weir_record_t *in, void *udata);
/**
 * generator source: emits the records of event number @p index. Subtask s of p is called with
 * index = s, s + p, s + 2p, ... while index < count (count 0 means unbounded). The position of a
 * generator source is the next index, so it rewinds exactly on restore.
 */
typedef void (*weir_generator_fn)(weir_ctx_t *ctx, uint64_t index, void *udata);

/* ---------------------------------------------------------------------------------------- */
/* Job-level functions (define time)                                                        */
/* ---------------------------------------------------------------------------------------- */

/** Sets the job name (default: the descriptor's name). */
void weir_job_set_name(weir_job_t *job, const char *name);
/** Default parallelism for operators without weir_set_parallelism (the `-p` flag). */
uint32_t weir_job_parallelism(const weir_job_t *job);
/** Sets the maximum parallelism (number of key groups, default 128, at most 32768). */
void weir_job_set_max_parallelism(weir_job_t *job, uint32_t max_parallelism);
/** Allocates zeroed memory that lives as long as the job. Never returns NULL (aborts on OOM). */
void *weir_job_alloc(weir_job_t *job, size_t size);
/** Copies @p s into job-lifetime memory. */
char *weir_job_strdup(weir_job_t *job, const char *s);
/** Records a define-time error (printed by the CLI as one line); define() then returns non-zero. */
void weir_job_error(weir_job_t *job, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---------------------------------------------------------------------------------------- */
/* Sources                                                                                  */
/* ---------------------------------------------------------------------------------------- */

/** What the datagen source produces. */
typedef enum weir_datagen_kind {
    WEIR_DATAGEN_SEQUENCE = 0, /**< start, start+1, ... as msgpack unsigned integers */
    WEIR_DATAGEN_RANDOM = 1,   /**< uniform random integers in [0, random_max) */
} weir_datagen_kind_t;

/** Options of the datagen source. Zero-initialise, then set what you need. */
typedef struct weir_datagen_opts {
    weir_datagen_kind_t kind;
    uint64_t count;      /**< total records over all subtasks; 0 = unbounded */
    uint64_t start;      /**< first sequence value */
    uint64_t random_max; /**< exclusive bound of random values (0 = 2^64) */
    uint64_t seed;       /**< random seed (combined with the record index: deterministic) */
    double rate;         /**< records per second over all subtasks; 0 = as fast as possible */
} weir_datagen_opts_t;

/**
 * @brief Built-in datagen source: value is a msgpack unsigned integer; key is its 8-byte
 * big-endian encoding; timestamp is the wall clock in ms.
 */
weir_stream_t *weir_source_datagen(weir_job_t *job, const char *name,
                                   const weir_datagen_opts_t *opts);

/**
 * @brief Built-in file source: the lines of @p path (a file, or every regular file of a
 * directory, in name order), without the trailing newline, each as a msgpack str value with an
 * empty key. Files are split into byte ranges among the subtasks.
 * @param rate lines per second over all subtasks; 0 = as fast as possible
 */
weir_stream_t *weir_source_file(weir_job_t *job, const char *name, const char *path, double rate);

/**
 * @brief Kafka source (docs/kafka.md): the records of a topic list or pattern, partitions
 * assigned to subtasks deterministically, offsets in checkpoints, read_committed by default.
 * Each record's key is the Kafka key (per "key.format"), its value the Kafka value as msgpack
 * (per "value.format": raw -> bin, string -> str, json -> the JSON as msgpack), its timestamp
 * the Kafka record timestamp.
 * @param options key, value, key, value, ..., NULL: Flink-style connector options, e.g.
 *   "bootstrap.servers", "topic" (comma-separated) or "topic-pattern", "group.id",
 *   "scan.startup.mode" (earliest-offset, latest-offset, group-offsets, timestamp),
 *   "scan.bounded.mode" (unbounded, latest-offset), "properties.<librdkafka key>". Unknown or
 *   malformed options are refused when the job is submitted.
 */
weir_stream_t *weir_source_kafka(weir_job_t *job, const char *name, const char *const *options);
/** @brief A user generator source (see weir_generator_fn). */
weir_stream_t *weir_source_generator(weir_job_t *job, const char *name, uint64_t count, double rate,
                                     weir_generator_fn fn, void *udata);

/* ---------------------------------------------------------------------------------------- */
/* Event time                                                                               */
/* ---------------------------------------------------------------------------------------- */

/** Watermark strategy of a source, applied per split (file split, Kafka partition, datagen or
 *  generator subtask range) and combined as the minimum over the subtask's active splits. */
typedef struct weir_watermark_strategy {
    int64_t max_out_of_orderness_ms; /**< watermark = max timestamp seen - this - 1 */
    int64_t idle_timeout_ms;         /**< a split (and a subtask) with no record for this long
                                          is idle and does not hold the minimum back; 0 = never */
} weir_watermark_strategy_t;
/** Sets the watermark strategy of a source operator (refused at define time on another op). */
weir_stream_t *weir_set_watermark_strategy(weir_stream_t *source,
                                           const weir_watermark_strategy_t *strategy);
/** The current event-time watermark of the running operator (INT64_MIN before the first). */
int64_t weir_current_watermark(const weir_ctx_t *ctx);

/* ---------------------------------------------------------------------------------------- */
/* Transformations                                                                          */
/* ---------------------------------------------------------------------------------------- */

weir_stream_t *weir_map(weir_stream_t *in, const char *name, weir_map_fn fn, void *udata);
weir_stream_t *weir_flat_map(weir_stream_t *in, const char *name, weir_flat_map_fn fn, void *udata);
weir_stream_t *weir_filter(weir_stream_t *in, const char *name, weir_filter_fn fn, void *udata);

/** Hash-partitions by key (key group of the key): the next operator is keyed. */
weir_stream_t *weir_key_by(weir_stream_t *in, weir_key_fn fn, void *udata);
/** Round-robin partitioning to the next operator. */
weir_stream_t *weir_rebalance(weir_stream_t *in);
/** Every record goes to every subtask of the next operator. */
weir_stream_t *weir_broadcast(weir_stream_t *in);

/** Keyed process function; @p keyed must come from weir_key_by(). Declare state on the result. */
weir_stream_t *weir_process(weir_stream_t *keyed, const char *name, weir_process_fn fn,
                            void *udata);
/**
 * Rolling reduce per key; @p keyed must come from weir_key_by(). Emits the new accumulator
 * (key = the record's key) for every input record. Its state is a reducing state named "reduce".
 */
weir_stream_t *weir_reduce(weir_stream_t *keyed, const char *name, weir_reduce_fn fn, void *udata);

/* ---------------------------------------------------------------------------------------- */
/* Sinks                                                                                    */
/* ---------------------------------------------------------------------------------------- */

/**
 * File sink: writes each record's value as one line (a msgpack str/bin is written as is, other
 * values as JSON-like text) to part files `part-<uuid>-<subtask>-<n>` in @p dir, where the uuid
 * is derived from the job id and the sink (its uid, else its node id), so several jobs and sinks
 * can share @p dir. Files in progress have hidden names (leading '.'); readers of @p dir see only
 * finished files.
 */
weir_stream_t *weir_sink_file(weir_stream_t *in, const char *name, const char *dir);
/**
 * Kafka sink (docs/kafka.md): each record to a topic; the Kafka key is the record's key (per
 * "key.format"), the value the record's value (per "value.format": raw, string, json).
 * @param options key, value, ..., NULL, e.g. "bootstrap.servers", "topic",
 *   "sink.delivery-guarantee" (none, at-least-once, exactly-once: one Kafka transaction per
 *   checkpoint, committed when the checkpoint completes), "sink.transactional-id-prefix",
 *   "transaction.timeout.ms", "sink.partitioner" (default, fixed, round-robin),
 *   "properties.<librdkafka key>".
 */
weir_stream_t *weir_sink_kafka(weir_stream_t *in, const char *name, const char *const *options);
/** Print sink: the task manager's stdout, each line prefixed with "<subtask+1>> ". */
weir_stream_t *weir_sink_print(weir_stream_t *in, const char *name);
/** Discards records (counts them). */
weir_stream_t *weir_sink_blackhole(weir_stream_t *in, const char *name);
/** A user sink. */
weir_stream_t *weir_sink(weir_stream_t *in, const char *name, weir_sink_fn fn, void *udata);

/* ---------------------------------------------------------------------------------------- */
/* Operator settings (define time)                                                          */
/* ---------------------------------------------------------------------------------------- */

/** Stable id matching the operator across processes and savepoints. Required for state. */
weir_stream_t *weir_set_uid(weir_stream_t *op, const char *uid);
/** Parallelism of this operator (default: the job's). */
weir_stream_t *weir_set_parallelism(weir_stream_t *op, uint32_t parallelism);

/** Declares keyed value state on a process operator. @returns the state handle. */
weir_state_id weir_value_state(weir_stream_t *op, const char *name);
/** Declares keyed list state. */
weir_state_id weir_list_state(weir_stream_t *op, const char *name);
/** Declares keyed map state (user key -> value). */
weir_state_id weir_map_state(weir_stream_t *op, const char *name);
/** Declares keyed reducing state; values must be msgpack. */
weir_state_id weir_reducing_state(weir_stream_t *op, const char *name, weir_reduce_fn fn,
                                  void *udata);

typedef enum weir_ttl_update {
    WEIR_TTL_ON_CREATE_AND_WRITE = 0, /**< a write restarts the time to live */
    WEIR_TTL_ON_READ_AND_WRITE = 1,   /**< a read restarts it too */
} weir_ttl_update_t;
/** Gives declared state @p st of @p op a time to live (processing time, ms > 0): an expired
 *  value is never returned, and is removed in the background (RocksDB compaction filter).
 *  Every state kind: a value or reducing state expires as a whole, a list state per element,
 *  a map state per user key. Reads check the task manager's wall clock (ms since the epoch);
 *  an expired value reads as absent and is deleted then, and compactions drop what expired.
 *  At most WEIR_MAX_STATE_TTL_MS (about 100 years). A savepoint restores only into a job that
 *  declares the state with TTL the same way as the job that took it (TTL or none; the
 *  duration and update mode may change). @returns 0, or -1 with the define error set. */
int weir_state_set_ttl(weir_stream_t *op, weir_state_id st, int64_t ttl_ms,
                       weir_ttl_update_t update);
#define WEIR_MAX_STATE_TTL_MS ((int64_t)100 * 366 * 24 * 3600 * 1000)

/* ---------------------------------------------------------------------------------------- */
/* Function lifecycle (Flink's RichFunction open/close)                                     */
/* ---------------------------------------------------------------------------------------- */

/*
 * Lifecycle of one subtask attempt (a deployment of the subtask; a restart after a failure, a
 * rescale or a resume from a savepoint is a new attempt with a higher weir_attempt_number()):
 *
 *  - open runs once per attempt, on the subtask's thread, after the subtask restored its state
 *    and before its first record (a generator source: before its first call), operator by
 *    operator in chain order from the source side. open may read the context (subtask index,
 *    parallelism, job arguments, attempt number) and open resources. It may not emit (the
 *    downstream operator of the chain is not open yet) and may not use keyed state (there is no
 *    current key: the state calls return WEIR_EINVAL). A non-zero return (or weir_fail) fails
 *    the subtask with one line naming the operator.
 *  - close runs exactly once per attempt for every operator whose open was called (also the one
 *    whose open failed, and every operator before it), in reverse chain order, with the reason:
 *    WEIR_CLOSE_FINISHED at end of input, after the last record, and for a sink before the
 *    subtask's final snapshot (so what close flushes is covered by the final checkpoint);
 *    WEIR_CLOSE_FAILED when this subtask failed (weir_fail, a runtime error, a failed open);
 *    WEIR_CLOSE_CANCELED when the attempt was canceled: `weir cancel`, the failover of the job
 *    after ANOTHER subtask failed (this one did not), a stop-with-savepoint (the job ends
 *    without end of input). close may not emit (the downstream operator is already closed: an
 *    emit fails the subtask) nor use keyed state. close is never called twice, and never when
 *    the process dies (kill -9, a crash): recovery must not depend on it.
 */

/** Why close is called (see above). */
typedef enum weir_close_reason {
    WEIR_CLOSE_FINISHED = 0, /**< input ended; a sink's close runs before its final checkpoint */
    WEIR_CLOSE_FAILED = 1,   /**< this subtask failed (a failover cancels the others) */
    WEIR_CLOSE_CANCELED = 2, /**< the attempt was canceled (job cancel, failover, stop) */
} weir_close_reason_t;
/** open: returns 0, or non-zero to fail the subtask. @p udata is the function's udata. */
typedef int (*weir_open_fn)(weir_ctx_t *ctx, void *udata);
/** close: releases what open acquired; @p why says how the attempt ends for this subtask. */
typedef void (*weir_close_fn)(weir_ctx_t *ctx, weir_close_reason_t why, void *udata);
/** Optional open/close of a user operator (map, flat_map, filter, process, reduce, sink,
 *  generator source): once per subtask attempt, same udata as the function. Either may be
 *  NULL; a second call replaces the first. On a built-in connector (datagen, file, Kafka
 *  sources; file, Kafka, print, blackhole sinks) it is a define-time error. */
weir_stream_t *weir_set_lifecycle(weir_stream_t *op, weir_open_fn open, weir_close_fn close);
/** Job arguments (argv[1..] of define) inside user functions: *argc of them, NULL-terminated;
 *  an empty list when the job has none. */
const char *const *weir_job_args(const weir_ctx_t *ctx, int *argc);
/** Attempt number of this subtask's deployment (1, 2, ...). */
uint32_t weir_attempt_number(const weir_ctx_t *ctx);

/* ---------------------------------------------------------------------------------------- */
/* Timers (Flink's TimerService of a KeyedProcessFunction)                                  */
/* ---------------------------------------------------------------------------------------- */

/*
 * A weir_process operator with an on_timer callback has keyed timers: per key, one timer per
 * (key, domain, timestamp) (registering it again does nothing; deleting an absent one does
 * nothing). Timers are keyed state of the operator: checkpoints, savepoints, restore and rescale
 * carry them with the key groups of their keys.
 *  - An event-time timer fires when the operator's input watermark reaches its timestamp
 *    (watermark >= timestamp), in timestamp order, before that watermark goes downstream;
 *    during on_timer weir_current_watermark() is the new watermark. Records emitted by on_timer
 *    of an event-time timer carry the timer's timestamp (whatever the record says). A timer
 *    registered inside on_timer at or below the watermark fires within the same advance. The
 *    final watermark at end of input (INT64_MAX) fires every event-time timer.
 *  - A processing-time timer fires when weir_current_processing_time() reaches its timestamp
 *    (the subtask's loop wakes up for the earliest one). Processing-time timers still pending at
 *    end of input are dropped, not fired (as Flink's finished tasks); after a restore they fire
 *    as soon as their time has passed.
 *  - on_timer runs on the subtask thread with the timer's key as current key (keyed state and
 *    weir_current_key are the timer's key's), never concurrently with the function.
 */

/** Time domain of a timer. */
typedef enum weir_time_domain {
    WEIR_EVENT_TIME = 0,      /**< fires when the operator's watermark reaches the time */
    WEIR_PROCESSING_TIME = 1, /**< fires when the wall clock (ms) reaches the time */
} weir_time_domain_t;
/** Timer callback of a keyed process operator: the timer's key is the current key. */
typedef void (*weir_timer_fn)(weir_ctx_t *ctx, int64_t timestamp, weir_time_domain_t domain,
                              void *udata);
/** Sets the timer callback of a weir_process operator (same udata as its function). On another
 *  operator, or with a NULL callback, it is a define-time error. */
weir_stream_t *weir_set_on_timer(weir_stream_t *process_op, weir_timer_fn on_timer);
/** Timers of the current key; one timer per (key, domain, timestamp); 0 or a negative weir
 *  error (no current key, not a process operator with on_timer). */
int weir_timer_register_event_time(weir_ctx_t *ctx, int64_t timestamp);
int weir_timer_register_processing_time(weir_ctx_t *ctx, int64_t timestamp);
int weir_timer_delete_event_time(weir_ctx_t *ctx, int64_t timestamp);
int weir_timer_delete_processing_time(weir_ctx_t *ctx, int64_t timestamp);
/** The processing time (wall clock, ms) as timers see it. */
int64_t weir_current_processing_time(const weir_ctx_t *ctx);

/* ---------------------------------------------------------------------------------------- */
/* Side outputs                                                                             */
/* ---------------------------------------------------------------------------------------- */

/** Declares a side output named @p name of a user-function operator (map, flat_map, filter,
 *  process, reduce, generator source) at define time. @returns its tag (>= 1) or -1 (error
 *  recorded on the job). Names are 1..128 bytes of UTF-8 and unique per operator; at most 16
 *  side outputs per operator; the n-th declared gets tag n. */
int weir_side_output_tag(weir_stream_t *op, const char *name);
/** The stream of the records @p op emits to @p tag (consumed like any stream). */
weir_stream_t *weir_side_output(weir_stream_t *op, int tag);
/** Emits to a side output of the running operator (a tag nobody consumes drops the record; a
 *  tag the operator never declared fails the subtask). */
void weir_emit_to(weir_ctx_t *ctx, int tag, const weir_record_t *rec);
/** weir_emit_packed to a side output. */
void weir_emit_packed_to(weir_ctx_t *ctx, int tag, int64_t timestamp, const void *key,
                         uint32_t key_len);

/* ---------------------------------------------------------------------------------------- */
/* Windows (docs/event-time.md "Windows")                                                   */
/* ---------------------------------------------------------------------------------------- */

/*
 * Event-time windows on a keyed stream. The window operator is a weir_process operator with
 * keyed state and event-time timers: give it a uid (weir_set_uid) like any keyed operator, and
 * declare the late side output on it (weir_side_output_tag) before passing the tag in the spec.
 *  - A window fires when the operator's watermark reaches end-1 (only windows with content).
 *  - A record whose windows all have end-1+allowed_lateness <= watermark is late: it goes to
 *    late_tag, or is dropped (counted) when late_tag is 0.
 *  - A record for a fired window with end-1+allowed_lateness > watermark updates it and the
 *    window fires again at once with the updated result (Flink's late firing).
 *  - State of a window is removed when the watermark passes end-1+allowed_lateness.
 * result() emits with weir_emit_packed; use timestamp w->end - 1 (on a timer firing the
 * runtime stamps end-1 whatever the record says).
 */
typedef enum weir_window_kind {
    WEIR_WINDOW_TUMBLING = 0, /**< [k*size+offset, (k+1)*size+offset) */
    WEIR_WINDOW_SLIDING = 1,  /**< size, every slide (slide divides into panes of gcd) */
    WEIR_WINDOW_SESSION = 2,  /**< records closer than gap merge (a record exactly gap after
                                   the previous one's timestamp continues the session: windows
                                   [ts, ts+gap) that touch merge, as Flink) */
} weir_window_kind_t;
typedef struct weir_window_spec {
    weir_window_kind_t kind;
    int64_t size_ms, slide_ms, gap_ms, offset_ms;
    int64_t allowed_lateness_ms; /**< late but within: the window fires again with the update */
    uint64_t count_trigger;      /**< 0: fire at watermark >= end-1; N: also every N records
                                      of the window (tumbling and session windows; sliding:
                                      a define-time error for now) */
    int late_tag;                /**< side-output tag (weir_side_output_tag on the window op)
                                      for records too late to count; 0 = drop (counted) */
} weir_window_spec_t;
typedef struct weir_window {
    int64_t start, end;
} weir_window_t; /**< [start, end) */
/** Incremental aggregation: accumulators are msgpack (stored in keyed state). */
typedef struct weir_aggregate_fns {
    void (*create)(msgpack_packer *acc_out, void *udata);
    void (*add)(const msgpack_object *acc, const weir_record_t *in, msgpack_packer *acc_out,
                void *udata);
    void (*merge)(const msgpack_object *a, const msgpack_object *b, msgpack_packer *out,
                  void *udata); /**< required for sessions and sliding windows (panes) */
    void (*result)(weir_ctx_t *ctx, const weir_window_t *w, const msgpack_object *acc,
                   void *udata); /**< emits the window's result(s) (weir_emit...) */
} weir_aggregate_fns_t;
/** Keyed window with incremental aggregation; @p keyed comes from weir_key_by. A sliding
 *  window updates one pane of gcd(size, slide) per record and merges size/gcd panes when it
 *  fires. A bad spec is a define-time error (NULL returned). */
weir_stream_t *weir_window_aggregate(weir_stream_t *keyed, const char *name,
                                     const weir_window_spec_t *spec,
                                     const weir_aggregate_fns_t *fns, void *udata);
/** Full-window process function: every record of the window (in arrival order). */
typedef void (*weir_window_process_fn)(weir_ctx_t *ctx, const weir_window_t *w,
                                       const weir_record_t *records, size_t n, void *udata);
/** Keyed window keeping every record (map state per pane or session, one entry per record)
 *  and calling @p fn with all of them when the window fires (a session merge moves them). */
weir_stream_t *weir_window_process(weir_stream_t *keyed, const char *name,
                                   const weir_window_spec_t *spec, weir_window_process_fn fn,
                                   void *udata);
/** Non-keyed variant (Flink's windowAll): every record under one key, parallelism 1; its
 *  input is repartitioned by that key (the operator still needs a uid). */
weir_stream_t *weir_window_all_aggregate(weir_stream_t *in, const char *name,
                                         const weir_window_spec_t *spec,
                                         const weir_aggregate_fns_t *fns, void *udata);

/* ---------------------------------------------------------------------------------------- */
/* Two-input operators (docs/event-time.md "Joins")                                         */
/* ---------------------------------------------------------------------------------------- */

/** Keyed two-input process function (Flink's connect(a, b).keyBy(..).process(
 *  KeyedCoProcessFunction)): @p first and @p second both come from weir_key_by; records with
 *  equal keys reach the same subtask, where fn1 (records of first) and fn2 (records of second)
 *  share the operator's keyed state and timers (weir_set_on_timer: one on_timer for both).
 *  The operator's watermark is the minimum over both inputs (idle inputs excluded); barriers
 *  are aligned over both. Declare state, timers, side outputs and lifecycle on the result, like
 *  on weir_process. Both inputs must belong to the same job; a stream used as both inputs is a
 *  define-time error. */
weir_stream_t *weir_co_process(weir_stream_t *first, weir_stream_t *second, const char *name,
                               weir_process_fn fn1, weir_process_fn fn2, void *udata);

/** Window co-group (Flink's coGroup().where().equalTo().window()): for each key and window with
 *  records on at least one side, fn gets the window and all records of each side (arrival
 *  order) when the watermark reaches end-1; emit with timestamp w->end - 1. Tumbling, sliding
 *  and session windows; allowed_lateness, count_trigger and late_tag as for weir_window_process
 *  (or a define-time error saying which field is not supported yet). Records are kept in keyed
 *  state until their window fires. */
typedef void (*weir_cogroup_fn)(weir_ctx_t *ctx, const weir_window_t *w,
                                const weir_record_t *left, size_t n_left,
                                const weir_record_t *right, size_t n_right, void *udata);
weir_stream_t *weir_window_cogroup(weir_stream_t *left, weir_stream_t *right, const char *name,
                                   const weir_window_spec_t *spec, weir_cogroup_fn fn,
                                   void *udata);

/** One joined pair (window join: the pair's window in @p w; interval join: @p w is NULL). */
typedef void (*weir_join_fn)(weir_ctx_t *ctx, const weir_window_t *w, const weir_record_t *left,
                             const weir_record_t *right, void *udata);
/** Window join (Flink's join().where().equalTo().window()): the cross product of each key's
 *  left and right records in the same window, fn once per pair when the window fires (inner
 *  join: nothing for a window with one side empty). Output timestamp w->end - 1. */
weir_stream_t *weir_window_join(weir_stream_t *left, weir_stream_t *right, const char *name,
                                const weir_window_spec_t *spec, weir_join_fn fn, void *udata);
/** Interval join (Flink's intervalJoin().between(lower, upper)): pairs l, r with equal keys and
 *  l.ts + lower_ms <= r.ts <= l.ts + upper_ms (both bounds included; lower_ms <= upper_ms, either
 *  may be negative). A pair is emitted as soon as its second record arrives, timestamp
 *  max(l.ts, r.ts). A record whose timestamp is below the operator's watermark when it arrives
 *  is late: dropped and counted (as Flink). Each record is kept in keyed state until the
 *  watermark passes the last timestamp a partner of it could have, then removed by a timer. */
weir_stream_t *weir_interval_join(weir_stream_t *left, weir_stream_t *right, const char *name,
                                  int64_t lower_ms, int64_t upper_ms, weir_join_fn fn,
                                  void *udata);

/* ---------------------------------------------------------------------------------------- */
/* Runtime: inside user functions                                                           */
/* ---------------------------------------------------------------------------------------- */

/** Emits a record downstream. The bytes are copied (or passed through a chain) before return. */
void weir_emit(weir_ctx_t *ctx, const weir_record_t *rec);
/**
 * Returns a packer writing into the context's scratch value buffer (reset by this call). Pack
 * exactly one msgpack object, then call weir_emit_packed().
 */
msgpack_packer *weir_packer(weir_ctx_t *ctx);
/** Emits the value packed since weir_packer(), with the given timestamp and key. */
void weir_emit_packed(weir_ctx_t *ctx, int64_t timestamp, const void *key, uint32_t key_len);
/**
 * Unpacks a record value in place (strings and binaries point into the record). The object is
 * valid until the user function returns. @returns 0, or a negative weir error for a malformed
 * value (the runtime then fails the task with a message naming the operator).
 */
int weir_unpack(weir_ctx_t *ctx, const weir_record_t *rec, msgpack_object *out);

/** Index of this subtask, 0-based. */
uint32_t weir_subtask_index(const weir_ctx_t *ctx);
/** Parallelism of this operator. */
uint32_t weir_parallelism(const weir_ctx_t *ctx);
/** Current key in a keyed operator (NULL/0 elsewhere). */
const void *weir_current_key(const weir_ctx_t *ctx, uint32_t *key_len);
/** Fails the task with a one-line message (the job fails or restarts). */
void weir_fail(weir_ctx_t *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Keyed state (current key). Get functions return 0 and set the out pointers (valid until the
 * next state call), 1 when there is no value, or a negative weir error. Others return 0 or a
 * negative weir error. */
int weir_value_get(weir_ctx_t *ctx, weir_state_id st, const void **val, uint32_t *len);
int weir_value_put(weir_ctx_t *ctx, weir_state_id st, const void *val, uint32_t len);
int weir_value_clear(weir_ctx_t *ctx, weir_state_id st);

int weir_list_add(weir_ctx_t *ctx, weir_state_id st, const void *val, uint32_t len);
/** Calls @p fn for every element in insertion order; stops early when fn returns non-zero. */
int weir_list_foreach(weir_ctx_t *ctx, weir_state_id st,
                      int (*fn)(const void *val, uint32_t len, void *arg), void *arg);
int weir_list_clear(weir_ctx_t *ctx, weir_state_id st);

int weir_mapstate_put(weir_ctx_t *ctx, weir_state_id st, const void *ukey, uint32_t ukey_len,
                      const void *val, uint32_t len);
int weir_mapstate_get(weir_ctx_t *ctx, weir_state_id st, const void *ukey, uint32_t ukey_len,
                      const void **val, uint32_t *len);
int weir_mapstate_remove(weir_ctx_t *ctx, weir_state_id st, const void *ukey, uint32_t ukey_len);
/** Calls @p fn for every entry of the current key in user-key byte order. */
int weir_mapstate_foreach(weir_ctx_t *ctx, weir_state_id st,
                          int (*fn)(const void *ukey, uint32_t ukey_len, const void *val,
                                    uint32_t len, void *arg),
                          void *arg);
int weir_mapstate_clear(weir_ctx_t *ctx, weir_state_id st);

/** Adds a msgpack value to a reducing state (combined with the state's reduce function). */
int weir_reducing_add(weir_ctx_t *ctx, weir_state_id st, const void *val, uint32_t len);
int weir_reducing_get(weir_ctx_t *ctx, weir_state_id st, const void **val, uint32_t *len);
int weir_reducing_clear(weir_ctx_t *ctx, weir_state_id st);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif /* WEIR_WEIR_H */
