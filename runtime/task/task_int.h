/* Internal layout of a subtask and of the context handed to user functions, the per-record
 * helpers that must inline into every file of the per-record path, and the few functions the
 * files of runtime/task/ call across each other (weir__task_*, grouped by the file defining them;
 * README.md has the file map). Only the .c files of runtime/task/ include this.
 *
 * Everything here is owned by the subtask thread, except the metrics (single writer: the task
 * thread; other threads read them with relaxed atomics, the clock under its sequence lock), the
 * state (atomic) and the identity and checkpoint settings, which are immutable once the thread runs
 * (the uploader thread reads them).
 */
#ifndef WEIR_RUNTIME_TASK_INT_H
#define WEIR_RUNTIME_TASK_INT_H

#include <msgpack.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/killpoint.h"
#include "runtime/dataplane/channel.h"
#include "runtime/dataplane/mailbox.h"
#include "runtime/dataplane/partition.h"
#include "runtime/task/operator.h"
#include "runtime/task/task.h"
#include "runtime/task/watermark.h"
#include "state/state.h"

/** Per-operator runtime context (one per chain position). */
struct weir_ctx {
    weir_task_t *task;
    uint32_t pos;          /* chain position, 0 = head */
    weir_operator_t *op;   /* the operator at this position */
    struct weir_ctx *next; /* next chain position; NULL for the tail (output writer) */
    uint32_t next_tag;     /* the output of this operator `next` reads (0 = main, else a side
                              output tag): emits to another tag are dropped */
    bool has_out;          /* out-edges leave from this position (the tail, or a node with side
                              outputs inside the chain) */
    msgpack_sbuffer sbuf;  /* scratch value buffer of weir_packer() */
    msgpack_packer pk;     /* packer writing into sbuf */
    msgpack_zone zone;     /* weir_unpack() zone, cleared per input buffer / source batch */
    bool zone_used;        /* zone holds allocations since the last clear */
    bool keyed;            /* node->keyed: current key is set before process */
    uint32_t in_idx;       /* head of a two-input node: the input of the record being
                              delivered (set per input buffer; 0 elsewhere) */
    const void *key;       /* current key (keyed operators, during process) */
    uint32_t key_len;
    weir_state_backend_t *sb; /* the subtask's backend when this node declares states */
    uint32_t state_base;      /* global column index of this node's state 0 */
    uint32_t n_states;        /* states declared by this node */
    bool lc_opened; /* lifecycle.c: the chain's opening reached this operator, not closed yet */
    bool lc_busy;   /* lifecycle.c: in the user open/close (weir_emit refuses) */
    struct weir_timers *timers; /* timers.c: the node's timer store; NULL without timers */
    int64_t timer_ts;           /* timers.c: timestamp of the event-time timer firing ... */
    bool timer_ev;              /* ... while its on_timer runs (weir_emit stamps it) */
    /* weir_task_get_operator_metrics (single writer: the task thread; relaxed atomics) */
    _Atomic uint64_t records_in;  /* records handed to this operator */
    _Atomic uint64_t records_out; /* records it emitted (every output, side outputs too) */
};

/** Counters read by other threads (single writer: the task thread). */
typedef struct weir_task_counters {
    _Atomic uint64_t records_in;
    _Atomic uint64_t records_out;
    _Atomic uint64_t buffers_in_remote;
    _Atomic uint64_t bytes_in_remote;
    _Atomic uint64_t buffers_out_remote;
    _Atomic uint64_t bytes_out_remote;
    _Atomic uint64_t buffers_out_local;
    _Atomic uint64_t buffers_in_local;
    _Atomic uint64_t bytes_in_local;
    _Atomic uint64_t bytes_out_local;
    _Atomic uint64_t late_records_dropped;
    _Atomic uint64_t kafka_tx_committed;
    _Atomic uint64_t kafka_tx_aborted;
    _Atomic int64_t kafka_lag;   /* -1: not a Kafka source, or unknown */
    _Atomic uint64_t in_held;    /* gauge: input buffers taken from the mailbox, not processed */
    _Atomic uint64_t out_queued; /* gauge: sum over outputs of out->queued (loop.c out_gauge) */
    _Atomic uint64_t state_cache_hits;   /* the state backend's, published per input buffer */
    _Atomic uint64_t state_cache_misses; /* (loop.c publish_state_stats) */
} weir_task_counters_t;

/** What the task thread is doing, for busy / idle / backpressured time (weir_task_get_metrics
 * reads a consistent copy: a sequence lock with a single writer, the task thread). */
typedef enum weir_task_wait {
    WEIR_WAIT_NONE = 0, /* busy: processing records, timers, barriers, opening, closing */
    WEIR_WAIT_IDLE,     /* blocked on the mailbox for input (or a source's wake-up time) */
    WEIR_WAIT_BP,       /* blocked on the mailbox for an output credit */
} weir_task_wait_t;

/** The thread's wall time split into idle, backpressured and (the rest) busy. Every member is
 * written by the task thread only, inside seq odd; readers retry while seq is odd or changed. */
typedef struct weir_task_clock {
    _Atomic uint64_t seq;
    _Atomic int64_t start_ns; /* weir_task_start, just before the thread starts */
    _Atomic int64_t end_ns;   /* the final state (0: not yet) */
    _Atomic int64_t idle_ns;  /* finished idle waits */
    _Atomic int64_t bp_ns;    /* finished backpressured waits */
    _Atomic int wait;         /* weir_task_wait_t in progress */
    _Atomic int64_t since_ns; /* ... since */
} weir_task_clock_t;

/** One output channel and where it goes. */
typedef struct weir_task_out {
    weir_outchan_t ch;
    bool local;      /* receiver lives in this task manager */
    bool primed;     /* the receiver's first credits arrived */
    uint32_t queued; /* its share of the out_queued gauge (loop.c, out_gauge) */
} weir_task_out_t;

/** One out-edge of the vertex: a partitioner over a contiguous run of outs[]. */
typedef struct weir_task_oedge {
    weir_partitioner_t part;
    weir_part_t kind;
    uint32_t first;     /* index in outs[] of channel 0 of this edge */
    uint32_t n_chans;   /* 1 for FORWARD, else the target parallelism */
    weir_key_fn key_fn; /* HASH edge whose consumer has a key selector; NULL otherwise */
    void *key_udata;
    uint32_t tag; /* the output of its source node it carries (0 = main, else a side tag) */
    uint32_t pos; /* chain position of its source node (the tail unless side outputs) */
} weir_task_oedge_t;

/** A received buffer whose processing has not finished: entries from `off` on are pending. */
typedef struct weir_defbuf {
    weir_netbuf_t *buf;
    size_t off;
} weir_defbuf_t;

/** One input channel. */
typedef struct weir_task_in {
    weir_inchan_t ch;
    bool remote; /* sender lives in another task manager */
    uint32_t edge, src;
    uint32_t input;    /* which input of the head its edge feeds (0, or 1 of a two-input head) */
    bool arrived;      /* barrier of the current alignment arrived here (or the channel ended) */
    weir_defbuf_t *dq; /* alignment: buffers waiting behind a barrier, FIFO (ring) */
    size_t dq_head, dq_len, dq_cap;
} weir_task_in_t;

struct weir_uploader; /* checkpoint.c: the asynchronous part of snapshots of stateful chains */

/** A checkpoint barrier as the task handles it (a source's trigger, a barrier read from an input
 * channel, the one it forwards). @p target points into the buffer being read, a mailbox message
 * or the task: valid for the call only. */
typedef struct weir_task_barrier {
    uint64_t id;
    int64_t ts;          /* trigger wall time (ms) */
    weir_ck_kind_t kind; /* checkpoint, savepoint or stop-with-savepoint */
    const char *target;  /* savepoint directory (target_len bytes, not terminated); NULL */
    uint16_t target_len; /* 0 for a checkpoint */
} weir_task_barrier_t;

struct weir_task {
    /* identity (immutable after start) */
    char job_id[33];
    uint8_t job_bin[16];
    uint32_t attempt;
    uint32_t vertex;
    uint32_t subtask;
    weir_job_t *graph;
    const weir_vertex_t *vx;
    char ***placement; /* copy: placement[v][s] */
    weir_dataplane_t *dp;
    char *work_dir;
    char *state_dir; /* <work_dir>/<job>/<attempt>/<vertex>-<subtask>; NULL when stateless */
    size_t buffer_size;
    int64_t buffer_timeout_ns;
    uint32_t credits_per_channel;
    size_t state_cache_bytes;
    struct weir_state_memory *state_memory; /* spec->state_memory */
    weir_task_state_cb on_state;
    void *cb_arg;

    pthread_t thread;
    bool thread_started;
    weir_mailbox_t *mb;
    _Atomic int state; /* weir_task_state_t */
    weir_task_counters_t m;
    weir_task_clock_t clk;

    /* chain */
    uint32_t n_ops;
    weir_operator_t *ops;
    weir_ctx_t *ctxs;
    bool *op_created;
    bool is_source;

    /* state */
    weir_state_decl_t *decls; /* all states of the chain, in (node, index) order */
    uint32_t n_decls;
    weir_state_backend_t *sb;

    /* input gate */
    weir_task_in_t *ins;
    uint32_t n_ins;
    uint32_t n_ended;

    /* output writer */
    weir_task_out_t *outs;
    uint32_t n_outs;
    weir_task_oedge_t *oedges;
    uint32_t n_oedges;
    uint8_t *keybuf; /* WEIR_MAX_KEY_LEN scratch for key selectors */

    /* messages popped while blocked on credit, handled first by the main loop */
    weir_mbmsg_t *deferred;
    size_t def_head, def_len, def_cap;

    /* checkpointing (immutable after start) */
    weir_checkpoint_mode_t ck_mode;
    char *ck_dir; /* <state.checkpoints.dir>/<job> (storage URI); NULL when not given */
    struct weir_storage_env *storage_env; /* the spec's, or own_env */
    struct weir_storage_env *own_env;     /* made by open_state when the spec gave none */
    char *recovery_dir;                   /* <local_recovery_dir>/<job>; NULL = no cache */
    uint64_t restore_id;
    uint8_t *restore_op;
    size_t restore_op_len;
    char *restore_handle; /* the keyed restore document (docs/checkpointing.md); NULL = fresh */
    bool incremental;
    weir_killpoint_t *kp;
    const _Atomic int64_t *lease_from_ns; /* from the spec; NULL = always valid */
    int64_t lease_ns;
    void (*send)(void *arg, const weir_msg_t *msg);
    void *send_arg;
    weir_connector_factory_fn create_connector; /* from the spec; NULL = no connectors */

    /* checkpointing (task thread) */
    uint64_t align_id;         /* checkpoint being aligned, 0 = none */
    int64_t align_ts;          /* its trigger time (ms) */
    weir_ck_kind_t align_kind; /* its kind ... */
    char *align_target;        /* ... and target (malloc'd, NUL-terminated; NULL = none) */
    int64_t align_start_ns;    /* first barrier of it */
    uint32_t n_arrived;        /* channels whose barrier arrived (or that ended) */
    uint64_t last_ck;          /* latest checkpoint snapshotted (barriers <= it are stale) */
    bool final_sent;           /* final snapshot taken: waiting for the final notify */
    bool final_committed;      /* a checkpoint holding the final snapshot was notified */
    bool final_notified;       /* final notify handled: finish */
    uint64_t stop_ck;          /* stop-with-savepoint this subtask snapshotted (0 = none) */
    bool suspended;            /* source: snapshotted a stop-with-savepoint, run() is not called */
    uint64_t *sp_ids; /* savepoints snapshotted and not yet passed by a notified checkpoint */
    size_t n_sp_ids, cap_sp_ids;
    msgpack_sbuffer ckbuf;    /* operator-state scratch */
    struct weir_uploader *up; /* stateful chains with checkpointing on */

    /* event time (task thread): docs/event-time.md */
    int64_t wm;             /* the chain's current watermark (INT64_MIN before the first) */
    _Atomic int64_t wm_pub; /* copy of wm for other threads (weir_task_watermark) */
    bool wm_idle;           /* the status last forwarded downstream */
    weir_wm_valve_t valve;  /* non-source: per input channel watermark and idleness */
    weir_wm_gen_t *wmgen;   /* source with a strategy: per-split generator; NULL otherwise */
    uint32_t wm_split;      /* source: split of the records being emitted (weir_source_split) */
    int64_t wm_next_ns;     /* source: next periodic watermark poll */
    int64_t wm_interval_ns;
    bool has_timers; /* timers.c: some operator of the chain has timers */

    int64_t now_ns; /* refreshed per input buffer / source batch */
    bool stop;      /* leave the main loop (failed or canceled) */
    bool failed;
    bool canceled;
    char errmsg[512];
};

#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Per-record helpers: inline, so the per-record path stays free of calls across files. */

/** Adds @p n to counter @p a. Single writer (the task thread): a relaxed load + store needs no
 * locked instruction. */
static inline void weir__task_ctr_add(_Atomic uint64_t *a, uint64_t n) {
    atomic_store_explicit(a, atomic_load_explicit(a, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/** Starts (@p w: WEIR_WAIT_IDLE or WEIR_WAIT_BP) or ends (WEIR_WAIT_NONE, adding the wait to
 * its total) a wait of the task thread, at weir_now_ns() time @p now. Task thread. */
static inline void weir__task_clock_wait(weir_task_t *t, weir_task_wait_t w, int64_t now) {
    weir_task_clock_t *c = &t->clk;
    uint64_t seq = atomic_load_explicit(&c->seq, memory_order_relaxed);
    atomic_store_explicit(&c->seq, seq + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    int cur = atomic_load_explicit(&c->wait, memory_order_relaxed);
    if (cur != WEIR_WAIT_NONE) {
        int64_t d = now - atomic_load_explicit(&c->since_ns, memory_order_relaxed);
        _Atomic int64_t *tot = cur == WEIR_WAIT_IDLE ? &c->idle_ns : &c->bp_ns;
        if (d > 0)
            atomic_store_explicit(tot, atomic_load_explicit(tot, memory_order_relaxed) + d,
                                  memory_order_relaxed);
    }
    atomic_store_explicit(&c->wait, (int)w, memory_order_relaxed);
    atomic_store_explicit(&c->since_ns, now, memory_order_relaxed);
    atomic_store_explicit(&c->seq, seq + 2, memory_order_release);
}

/** A window or interval join at @p ctx dropped a late record (METRICS late_records_dropped). */
static inline void weir__task_count_late(weir_ctx_t *ctx) {
    weir__task_ctr_add(&ctx->task->m.late_records_dropped, 1);
}

/** Hands @p rec to the operator at chain position @p c (by pointer, never encoded); a keyed
 * operator gets its current key (ctx and state backend) set first. Task thread. */
static inline void weir__task_deliver(weir_ctx_t *c, const weir_record_t *rec) {
    if (c->keyed) {
        c->key = rec->key ? rec->key : ""; /* an empty key is a key: non-NULL means "current" */
        c->key_len = rec->key_len;
        if (c->sb)
            weir_state_set_key(c->sb, rec->key, rec->key_len);
    }
    c->op->vt->process(c->op, c, rec);
}

/* api.c */

/** Before the records of one input buffer (@p len bytes at @p data) go to the keyed head @p head:
 * reads the value and reducing state of their keys that the state cache lacks with one batched
 * RocksDB MultiGet per state (weir_state_prefetch). Only warms the cache: a failure here is
 * left to the operator's own read. No-op unless the head is keyed with such states. Task
 * thread. */
void weir__task_prefetch(weir_ctx_t *head, const uint8_t *data, size_t len);

/** Fails the task with a formatted one-line message (no operator prefix); the first failure
 * wins; sets stop. Task thread. */
void weir__task_fail(weir_task_t *task, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* timers.c */

/** Opens the timer store of every operator with timers (after the backend opened or restored);
 * fails the task on error. */
void weir__task_timers_open(weir_task_t *t);
/** Frees the timer stores (before the backend closes). */
void weir__task_timers_close(weir_task_t *t);
/** The chain's watermark advanced to @p wm (t->wm already holds it): fires the due event-time
 * timers of each operator in chain order, before the watermark goes downstream. */
void weir__task_timers_event(weir_task_t *t, int64_t wm);
/** Fires the due processing-time timers; @returns min(@p next_ns, the monotonic time of the
 * earliest pending one). */
int64_t weir__task_timers_due(weir_task_t *t, int64_t next_ns);

/* loop.c */

/** The subtask thread (started by weir_task_start); @p arg is the task. */
void *weir__task_main(void *arg);
/** Sends the current buffer of @p o, first waiting on the mailbox for a credit (handling CREDIT
 * and CANCEL, deferring every other message). Returns with stop set when canceled or failed. */
void weir__task_send_out(weir_task_t *task, weir_task_out_t *o);
/** Writes one in-band event into every output channel: barrier @p b (its kind and target
 * unchanged) or, when @p b is NULL, end of input; sends full buffers as credits allow, then
 * every non-empty buffer. @returns false when the task failed (the event did not fit an empty
 * buffer) or is stopping. */
bool weir__task_write_event(weir_task_t *t, const weir_task_barrier_t *b);
/** Forwards what a watermark combination reported (@p flags: WEIR_WM_*): a new status
 * @p idle and/or a new watermark @p wm (becomes the chain's current watermark), written into
 * every output channel (sent as buffers fill or time out). Task thread. */
void weir__task_wm_forward(weir_task_t *t, unsigned flags, int64_t wm, bool idle);
/** Source with a strategy: polls the generator now (periodically, or at once when an idle
 * source emits again) and forwards what changed. */
void weir__task_wm_poll(weir_task_t *t, int64_t now_ns);
/** Frees every message still deferred or queued in the mailbox (task_free). */
void weir__task_drop_messages(weir_task_t *task);

/* lifecycle.c (task thread; include/weir/weir.h, "Function lifecycle") */

/** Operator @p i's user open (after its built-in open); a non-zero return fails the task with
 * "<operator>: open failed (returned N)". Marks the operator opened either way. */
void weir__task_lc_open(weir_task_t *task, uint32_t i);
/** User close with @p why of every opened operator, tail to head; each at most once. */
void weir__task_lc_close(weir_task_t *task, weir_close_reason_t why);
/** weir_emit from inside open/close: fails the task naming the operator. */
void weir__task_lc_emit_refused(weir_ctx_t *ctx);

/* checkpoint.c (task thread, but weir__task_uploader_stop: also task_free) */

/** Opens the chain's keyed-state backend (restored when starting from a checkpoint with a keyed
 * handle) and, with checkpointing on, starts the uploader thread. Failures fail the task. */
void weir__task_open_state(weir_task_t *task);
/** Hands every chain operator its element of the restored operator-state array. */
void weir__task_restore_operators(weir_task_t *task);
/** Waits for the upload in flight (and, unless @p drop, every queued one) and joins the
 * uploader thread; no-op without one. */
void weir__task_uploader_stop(weir_task_t *task, bool drop);
/** Removes the state directory and, when empty, its attempt and job parents. */
void weir__task_remove_state_dir(weir_task_t *task);
/** Barrier @p b arrived on input channel @p idx: alignment (its kind and target are copied). */
void weir__task_on_barrier(weir_task_t *task, uint32_t idx, const weir_task_barrier_t *b);
/** END arrived on input channel @p idx (counts as its barrier for the alignment in progress). */
void weir__task_on_end(weir_task_t *task, uint32_t idx);
/** WEIR_MB_TRIGGER: a source snapshots checkpoint @p b (between two run() calls); after a
 * stop-with-savepoint it is suspended (run() is not called again). */
void weir__task_on_trigger(weir_task_t *task, const weir_task_barrier_t *b);
/** WEIR_MB_NOTIFY: checkpoint @p id completed (@p final: the final one, or the stop-with-savepoint
 * this subtask snapshotted: then it finishes without end of input). */
void weir__task_on_notify(weir_task_t *task, uint64_t id, bool final);
/** End of input with checkpointing on: the final snapshot (before END goes downstream). */
void weir__task_final_snapshot(weir_task_t *task);

#endif
