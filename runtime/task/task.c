/* The subtask runtime: one thread per deployed subtask running one vertex's operator chain.
 *
 * Owns: the chain (operators + one weir_ctx_t per operator), the input gate (one weir_inchan_t
 * per upstream channel), the output writer (one partitioner per out-edge, one weir_outchan_t per
 * downstream channel), the subtask's mailbox and its state backend; plus the runtime half of the
 * public API (weir_emit, weir_packer, weir_unpack, keyed state accessors, ...).
 *
 * Invariants:
 *  - Everything but the counters (task->m) and task->state is touched by the task thread only.
 *    Counters have a single writer (the task thread) and are read with relaxed atomics.
 *  - A buffer is sent only with a credit in hand; while none is available the thread blocks on
 *    its mailbox handling only CREDIT and CANCEL, deferring every other message to a local FIFO
 *    that the main loop drains first (so input order per channel is kept).
 *  - Records pass down the chain by pointer; the per-record path does no allocation, no lock and
 *    no syscall (weir_now_ns once per input buffer / source batch).
 *  - The unpack zones are cleared at the start of every input buffer and source batch.
 *  - The final state callback (FINISHED / FAILED / CANCELED) is the last thing the thread does,
 *    after the operators were closed and the state removed.
 *  - Checkpoints (docs/checkpointing.md): sources snapshot only between run() calls; a
 *    non-source never processes an entry that follows barrier n on a channel before its snapshot
 *    of n (exactly-once): the channel is blocked (credits withheld) and its buffers wait in the
 *    channel's deferred queue as (buffer, offset). Barriers with an id <= the last snapshot (or
 *    below the alignment in progress) are stale and dropped.
 *  - ACKs of a subtask leave in snapshot order: with keyed state every ACK (also the final one)
 *    goes through the uploader's FIFO; the backend is closed only after the uploader joined.
 *  - Operator state is one msgpack array with one element per chain operator (nil when it has
 *    no snapshot hook); the final snapshot passes WEIR_CHECKPOINT_ID_FINAL to the hooks.
 *
 * Threading: weir_task_start / cancel / trigger / notify / destroy / getters run on the task
 * manager thread; the uploader thread (stateful chains with checkpointing on) uploads keyed
 * snapshots and sends ACKs through the spec's send callback; the rest runs on the task thread.
 * See runtime/README-task.md for the mailbox loop and the checkpoint path. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/killpoint.h"
#include "common/log.h"
#include "common/util.h"
#include "runtime/dataplane/dataplane.h"
#include "runtime/dataplane/record.h"
#include "state/snapshot.h"
#include "runtime/task/task_int.h"

#define COMP "task"
#define SOURCE_BUDGET 512u
#define ZONE_CHUNK (64u * 1024u)

#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

static inline void ctr_add(_Atomic uint64_t *a, uint64_t n) {
    /* single writer: a relaxed load + store needs no locked instruction */
    atomic_store_explicit(a, atomic_load_explicit(a, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size);
    if (!p)
        abort();
    return p;
}

static char *xstrdup(const char *s) {
    char *p = strdup(s ? s : "");
    if (!p)
        abort();
    return p;
}

/* ---------------------------------------------------------------------------------------- */
/* Failure                                                                                  */
/* ---------------------------------------------------------------------------------------- */

static void task_vfail(weir_task_t *t, const char *prefix, const char *fmt, va_list ap) {
    if (t->failed)
        return; /* the first cause wins */
    size_t off = 0;
    if (prefix) {
        int n = weir_fmt(t->errmsg, sizeof t->errmsg, "%s: ", prefix);
        off = n < 0 ? 0 : (size_t)n;
        if (off >= sizeof t->errmsg)
            off = sizeof t->errmsg - 1;
    }
    vsnprintf(t->errmsg + off, sizeof t->errmsg - off, fmt, ap);
    for (char *p = t->errmsg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    t->failed = true;
    t->stop = true;
}

void weir__task_fail(weir_task_t *t, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    task_vfail(t, NULL, fmt, ap);
    va_end(ap);
}

void weir_fail(weir_ctx_t *ctx, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    task_vfail(ctx->task, ctx->op->node->name, fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------------------------------------- */
/* Deferred messages (popped while blocked on credit)                                        */
/* ---------------------------------------------------------------------------------------- */

/* Doubles a full ring of *cap elements of @p size bytes (at least @p min_cap), moving its @p len
 * elements from *head to the start of the new array. Both rings of this file (deferred mailbox
 * messages, deferred channel buffers) are bounded by credits; running out of memory aborts. */
static void ring_grow(void **ring, size_t size, size_t *head, size_t len, size_t *cap,
                      size_t min_cap) {
    size_t ncap = *cap ? *cap * 2 : min_cap;
    char *n = malloc(ncap * size);
    if (!n)
        abort();
    for (size_t i = 0; i < len; i++)
        memcpy(n + i * size, (char *)*ring + ((*head + i) % *cap) * size, size);
    free(*ring);
    *ring = n;
    *cap = ncap;
    *head = 0;
}

static void def_push(weir_task_t *t, const weir_mbmsg_t *msg) {
    if (t->def_len == t->def_cap)
        ring_grow((void **)&t->deferred, sizeof *t->deferred, &t->def_head, t->def_len, &t->def_cap,
                  16);
    t->deferred[(t->def_head + t->def_len) % t->def_cap] = *msg;
    t->def_len++;
}

static bool def_pop(weir_task_t *t, weir_mbmsg_t *msg) {
    if (!t->def_len)
        return false;
    *msg = t->deferred[t->def_head];
    t->def_head = (t->def_head + 1) % t->def_cap;
    t->def_len--;
    return true;
}

/* ---------------------------------------------------------------------------------------- */
/* Output writer                                                                            */
/* ---------------------------------------------------------------------------------------- */

/* Sends the current buffer of @p o, blocking for a credit first. Returns with t->stop set when
 * canceled (or failed) while waiting. */
static void send_out(weir_task_t *t, weir_task_out_t *o) {
    if (o->ch.credits == 0) {
        int64_t t0 = weir_now_ns();
        while (o->ch.credits == 0 && !t->stop) {
            weir_mbmsg_t msg;
            if (weir_mailbox_pop(t->mb, &msg, -1) <= 0)
                continue;
            if (msg.type == WEIR_MB_CREDIT) {
                if (msg.index < t->n_outs)
                    weir_outchan_add_credit(&t->outs[msg.index].ch, msg.n);
            } else if (msg.type == WEIR_MB_CANCEL) {
                t->canceled = true;
                t->stop = true;
            } else {
                def_push(t, &msg);
            }
        }
        ctr_add(&t->m.backpressured_ns, (uint64_t)(weir_now_ns() - t0));
        if (t->stop)
            return;
    }
    weir_netbuf_t *buf = weir_outchan_take(&o->ch);
    size_t len = buf->len;
    int rc = weir_dataplane_send(t->dp, buf);
    if (rc < 0) {
        weir__task_fail(t, "sending a buffer on edge %u to subtask %u failed: %s", o->ch.key.edge,
                        o->ch.key.dst, weir_strerror(rc));
        return;
    }
    if (o->local) {
        ctr_add(&t->m.buffers_out_local, 1);
    } else {
        ctr_add(&t->m.buffers_out_remote, 1);
        ctr_add(&t->m.bytes_out_remote, len);
    }
}

static inline void out_write(weir_task_t *t, weir_task_out_t *o, const weir_record_t *rec) {
    while (UNLIKELY(!weir_outchan_write_record(&o->ch, rec, t->now_ns))) {
        if (!weir_outchan_has_data(&o->ch)) {
            weir__task_fail(t, "a record of %zu bytes does not fit an output buffer",
                            weir_record_encoded_size(rec));
            return;
        }
        send_out(t, o);
        if (t->stop)
            return;
    }
    ctr_add(&t->m.records_out, 1);
}

/* The chain tail's emit: partition and write to every out-edge. */
static void task_output(weir_task_t *t, const weir_record_t *rec) {
    if (UNLIKELY(rec->key_len > WEIR_MAX_KEY_LEN)) {
        weir__task_fail(t, "%s: emitted a key of %u bytes (at most %u)",
                        t->ops[t->n_ops - 1].node->name, rec->key_len, WEIR_MAX_KEY_LEN);
        return;
    }
    for (uint32_t e = 0; e < t->n_oedges; e++) {
        weir_task_oedge_t *oe = &t->oedges[e];
        const weir_record_t *r = rec;
        weir_record_t kr;
        if (oe->key_fn) {
            kr = *rec;
            kr.key_len = oe->key_fn(rec, t->keybuf, oe->key_udata);
            if (UNLIKELY(kr.key_len > WEIR_MAX_KEY_LEN)) {
                weir__task_fail(t, "key selector of edge %u returned %u bytes (at most %u)", e,
                                kr.key_len, WEIR_MAX_KEY_LEN);
                return;
            }
            kr.key = t->keybuf;
            r = &kr;
        }
        if (oe->kind == WEIR_PART_FORWARD) {
            out_write(t, &t->outs[oe->first], r);
        } else {
            uint32_t c = weir_partitioner_select(&oe->part, r->key, r->key_len);
            if (c == WEIR_PARTITION_ALL) {
                for (uint32_t i = 0; i < oe->n_chans && !t->stop; i++)
                    out_write(t, &t->outs[oe->first + i], r);
            } else if (LIKELY(c < oe->n_chans)) {
                out_write(t, &t->outs[oe->first + c], r);
            }
        }
        if (UNLIKELY(t->stop))
            return;
    }
}

/* Sends every buffer whose timeout passed and that has a credit. @returns the earliest time a
 * pending buffer (with credit) becomes due, INT64_MAX when none. Channels without credit are
 * rechecked when their CREDIT message arrives. */
static int64_t flush_due(weir_task_t *t, int64_t now) {
    int64_t next = INT64_MAX;
    for (uint32_t i = 0; i < t->n_outs && !t->stop; i++) {
        weir_task_out_t *o = &t->outs[i];
        if (!weir_outchan_has_data(&o->ch) || o->ch.credits == 0)
            continue;
        if (weir_outchan_flush_due(&o->ch, now, t->buffer_timeout_ns)) {
            send_out(t, o);
        } else {
            int64_t due = o->ch.first_write_ns + t->buffer_timeout_ns;
            if (due < next)
                next = due;
        }
    }
    return next;
}

/* ---------------------------------------------------------------------------------------- */
/* Chain                                                                                    */
/* ---------------------------------------------------------------------------------------- */

static inline void deliver(weir_ctx_t *c, const weir_record_t *rec) {
    if (c->keyed) {
        c->key = rec->key;
        c->key_len = rec->key_len;
        if (c->sb)
            weir_state_set_key(c->sb, rec->key, rec->key_len);
    }
    c->op->vt->process(c->op, c, rec);
}

static void clear_zones(weir_task_t *t) {
    for (uint32_t i = 0; i < t->n_ops; i++) {
        weir_ctx_t *c = &t->ctxs[i];
        if (c->zone_used) {
            msgpack_zone_clear(&c->zone);
            c->zone_used = false;
        }
    }
}

void weir_emit(weir_ctx_t *ctx, const weir_record_t *rec) {
    weir_task_t *t = ctx->task;
    if (UNLIKELY(t->stop))
        return;
    if (ctx->next)
        deliver(ctx->next, rec);
    else
        task_output(t, rec);
}

msgpack_packer *weir_packer(weir_ctx_t *ctx) {
    ctx->sbuf.size = 0;
    return &ctx->pk;
}

void weir_emit_packed(weir_ctx_t *ctx, int64_t timestamp, const void *key, uint32_t key_len) {
    weir_record_t rec = {timestamp, key, key_len, ctx->sbuf.data, (uint32_t)ctx->sbuf.size};
    weir_emit(ctx, &rec);
}

int weir_unpack(weir_ctx_t *ctx, const weir_record_t *rec, msgpack_object *out) {
    size_t off = 0;
    ctx->zone_used = true;
    msgpack_unpack_return r =
        msgpack_unpack((const char *)rec->value, rec->value_len, &off, &ctx->zone, out);
    if (UNLIKELY(r != MSGPACK_UNPACK_SUCCESS)) {
        weir_fail(ctx, "malformed msgpack value (%u bytes)", rec->value_len);
        out->type = MSGPACK_OBJECT_NIL;
        return WEIR_ECORRUPT;
    }
    return 0;
}

uint32_t weir_subtask_index(const weir_ctx_t *ctx) {
    return ctx->task->subtask;
}

uint32_t weir_parallelism(const weir_ctx_t *ctx) {
    return ctx->op->parallelism;
}

const void *weir_current_key(const weir_ctx_t *ctx, uint32_t *key_len) {
    if (!ctx->keyed) {
        if (key_len)
            *key_len = 0;
        return NULL;
    }
    if (key_len)
        *key_len = ctx->key_len;
    return ctx->key;
}

/* ---------------------------------------------------------------------------------------- */
/* Keyed state: forwards to the backend with the node's column offset                       */
/* ---------------------------------------------------------------------------------------- */

#define STATE_COL(ctx, st)                                                                         \
    if (UNLIKELY(!(ctx)->sb || (st) < 0 || (uint32_t)(st) >= (ctx)->n_states))                     \
        return WEIR_EINVAL;                                                                        \
    uint32_t col = (ctx)->state_base + (uint32_t)(st)

int weir_value_get(weir_ctx_t *ctx, weir_state_id st, const void **val, uint32_t *len) {
    STATE_COL(ctx, st);
    return weir_state_value_get(ctx->sb, col, val, len);
}
int weir_value_put(weir_ctx_t *ctx, weir_state_id st, const void *val, uint32_t len) {
    STATE_COL(ctx, st);
    return weir_state_value_put(ctx->sb, col, val, len);
}
int weir_value_clear(weir_ctx_t *ctx, weir_state_id st) {
    STATE_COL(ctx, st);
    return weir_state_value_clear(ctx->sb, col);
}
int weir_list_add(weir_ctx_t *ctx, weir_state_id st, const void *val, uint32_t len) {
    STATE_COL(ctx, st);
    return weir_state_list_add(ctx->sb, col, val, len);
}
int weir_list_foreach(weir_ctx_t *ctx, weir_state_id st,
                      int (*fn)(const void *val, uint32_t len, void *arg), void *arg) {
    STATE_COL(ctx, st);
    return weir_state_list_foreach(ctx->sb, col, fn, arg);
}
int weir_list_clear(weir_ctx_t *ctx, weir_state_id st) {
    STATE_COL(ctx, st);
    return weir_state_list_clear(ctx->sb, col);
}
int weir_mapstate_put(weir_ctx_t *ctx, weir_state_id st, const void *ukey, uint32_t ukey_len,
                      const void *val, uint32_t len) {
    STATE_COL(ctx, st);
    return weir_state_map_put(ctx->sb, col, ukey, ukey_len, val, len);
}
int weir_mapstate_get(weir_ctx_t *ctx, weir_state_id st, const void *ukey, uint32_t ukey_len,
                      const void **val, uint32_t *len) {
    STATE_COL(ctx, st);
    return weir_state_map_get(ctx->sb, col, ukey, ukey_len, val, len);
}
int weir_mapstate_remove(weir_ctx_t *ctx, weir_state_id st, const void *ukey, uint32_t ukey_len) {
    STATE_COL(ctx, st);
    return weir_state_map_remove(ctx->sb, col, ukey, ukey_len);
}
int weir_mapstate_foreach(weir_ctx_t *ctx, weir_state_id st,
                          int (*fn)(const void *ukey, uint32_t ukey_len, const void *val,
                                    uint32_t len, void *arg),
                          void *arg) {
    STATE_COL(ctx, st);
    return weir_state_map_foreach(ctx->sb, col, fn, arg);
}
int weir_mapstate_clear(weir_ctx_t *ctx, weir_state_id st) {
    STATE_COL(ctx, st);
    return weir_state_map_clear(ctx->sb, col);
}
int weir_reducing_add(weir_ctx_t *ctx, weir_state_id st, const void *val, uint32_t len) {
    STATE_COL(ctx, st);
    return weir_state_reducing_add(ctx->sb, col, val, len);
}
int weir_reducing_get(weir_ctx_t *ctx, weir_state_id st, const void **val, uint32_t *len) {
    STATE_COL(ctx, st);
    return weir_state_reducing_get(ctx->sb, col, val, len);
}
int weir_reducing_clear(weir_ctx_t *ctx, weir_state_id st) {
    STATE_COL(ctx, st);
    return weir_state_reducing_clear(ctx->sb, col);
}

/* ---------------------------------------------------------------------------------------- */
/* Checkpoints: acks, the uploader thread, snapshots                                        */
/* ---------------------------------------------------------------------------------------- */

/* One asynchronous part of a snapshot (or just an ACK that must follow earlier ones). */
typedef struct up_job {
    struct up_job *next;
    weir_state_snapshot_t *snap; /* NULL: nothing to upload */
    uint64_t id;                 /* 0 for the final snapshot */
    bool final;
    uint8_t *op_state;
    size_t op_len;
    uint64_t alignment_ns, sync_ns;
} up_job_t;

struct weir_uploader {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    up_job_t *head, *tail;
    bool stop; /* leave once the queue is empty */
    bool drop; /* do not upload what is still queued (canceled / failed) */
};

static void up_job_free(up_job_t *j) {
    weir_state_snapshot_free(&j->snap);
    free(j->op_state);
    free(j);
}

/* Any thread: the fields used are immutable after start. */
static void send_ack(weir_task_t *t, uint64_t id, bool final, const uint8_t *op, size_t op_len,
                     const char *handle, uint64_t state_size, uint64_t uploaded,
                     uint64_t alignment_ns, uint64_t sync_ns, uint64_t async_ns) {
    weir_killpoint_hit(t->kp, "barrier-before-ack");
    weir_msg_t m;
    memset(&m, 0, sizeof m);
    m.type = WEIR_MSG_ACK_CHECKPOINT;
    memcpy(m.job_id, t->job_id, sizeof m.job_id);
    m.attempt = t->attempt;
    m.vertex = t->vertex;
    m.subtask = t->subtask;
    m.checkpoint_id = id;
    m.final = final;
    m.op_state = (uint8_t *)op;
    m.op_state_len = op_len;
    m.keyed_handle = (char *)handle;
    m.state_size = state_size;
    m.uploaded_size = uploaded;
    m.alignment_ns = alignment_ns;
    m.sync_ns = sync_ns;
    m.async_ns = async_ns;
    WEIR_DEBUG(COMP, "job %s vertex %u subtask %u: ack checkpoint %" PRIu64 "%s", t->job_id,
               t->vertex, t->subtask, id, final ? " (final)" : "");
    if (t->send)
        t->send(t->send_arg, &m);
}

static void send_decline(weir_task_t *t, uint64_t id, const char *why) {
    WEIR_WARN(COMP, "job %s vertex %u subtask %u: declining checkpoint %" PRIu64 ": %s", t->job_id,
              t->vertex, t->subtask, id, why);
    weir_msg_t m;
    memset(&m, 0, sizeof m);
    m.type = WEIR_MSG_DECLINE_CHECKPOINT;
    memcpy(m.job_id, t->job_id, sizeof m.job_id);
    m.attempt = t->attempt;
    m.vertex = t->vertex;
    m.subtask = t->subtask;
    m.checkpoint_id = id;
    m.error = (char *)why;
    if (t->send)
        t->send(t->send_arg, &m);
}

/* Uploader thread: uploads queued snapshots in order and sends their ACKs (or DECLINEs). */
static void *uploader_main(void *arg) {
    weir_task_t *t = arg;
    struct weir_uploader *u = t->up;
    char task_name[64];
    weir_fmt(task_name, sizeof task_name, "%u-%u", t->vertex, t->subtask);
    for (;;) {
        pthread_mutex_lock(&u->mu);
        while (!u->head && !u->stop)
            pthread_cond_wait(&u->cv, &u->mu);
        up_job_t *j = u->head;
        if (j) {
            u->head = j->next;
            if (!u->head)
                u->tail = NULL;
        }
        bool drop = u->drop;
        pthread_mutex_unlock(&u->mu);
        if (!j)
            break;
        if (drop) {
            up_job_free(j);
            continue;
        }
        int64_t t0 = weir_now_ns();
        char err[384] = "";
        char *handle = NULL;
        uint64_t state_size = 0, uploaded = 0;
        int rc = 0;
        if (j->snap) {
            if (!t->ck_dir) {
                weir_fmt(err, sizeof err, "no checkpoint directory (state.checkpoints.dir)");
                rc = WEIR_ECONFIG;
            } else {
                rc = weir_state_snapshot_upload(j->snap, t->ck_dir, task_name, t->incremental,
                                                &handle, &state_size, &uploaded, err, sizeof err);
            }
            weir_state_snapshot_free(&j->snap);
        }
        uint64_t async_ns = (uint64_t)(weir_now_ns() - t0);
        if (rc < 0) {
            char why[512];
            weir_fmt(why, sizeof why, "keyed state upload: %s", err[0] ? err : weir_strerror(rc));
            if (j->final) { /* the job cannot finish without it: fail the task */
                weir_mbmsg_t msg = {.type = WEIR_MB_UPLOADED, .id = 0, .arg = xstrdup(why)};
                weir_mailbox_push(t->mb, &msg);
            } else {
                send_decline(t, j->id, why);
            }
        } else {
            send_ack(t, j->id, j->final, j->op_state, j->op_len, handle, state_size + j->op_len,
                     uploaded, j->alignment_ns, j->sync_ns, async_ns);
        }
        free(handle);
        up_job_free(j);
    }
    return NULL;
}

static int uploader_start(weir_task_t *t) {
    struct weir_uploader *u = xcalloc(1, sizeof *u);
    pthread_mutex_init(&u->mu, NULL);
    pthread_cond_init(&u->cv, NULL);
    t->up = u;
    if (pthread_create(&u->thread, NULL, uploader_main, t) != 0) {
        pthread_cond_destroy(&u->cv);
        pthread_mutex_destroy(&u->mu);
        free(u);
        t->up = NULL;
        return WEIR_EIO;
    }
    char tname[16];
    snprintf(tname, sizeof tname, "weir-up-%u.%u", t->vertex, t->subtask);
    pthread_setname_np(u->thread, tname);
    return 0;
}

/* Waits for the upload in flight (and, unless @p drop, every queued one), joins the thread. */
static void uploader_stop(weir_task_t *t, bool drop) {
    struct weir_uploader *u = t->up;
    if (!u)
        return;
    pthread_mutex_lock(&u->mu);
    u->stop = true;
    u->drop = drop;
    pthread_cond_signal(&u->cv);
    pthread_mutex_unlock(&u->mu);
    pthread_join(u->thread, NULL);
    while (u->head) {
        up_job_t *j = u->head;
        u->head = j->next;
        up_job_free(j);
    }
    pthread_cond_destroy(&u->cv);
    pthread_mutex_destroy(&u->mu);
    free(u);
    t->up = NULL;
}

static void uploader_push(weir_task_t *t, up_job_t *j) {
    struct weir_uploader *u = t->up;
    pthread_mutex_lock(&u->mu);
    if (u->tail)
        u->tail->next = j;
    else
        u->head = j;
    u->tail = j;
    pthread_cond_signal(&u->cv);
    pthread_mutex_unlock(&u->mu);
}

/* True when [data, data+len) holds exactly one msgpack object. */
static bool one_object(const char *data, size_t len) {
    if (len == 0)
        return false;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    msgpack_unpack_return r = msgpack_unpack_next(&u, data, len, &off);
    msgpack_unpacked_destroy(&u);
    return r == MSGPACK_UNPACK_SUCCESS && off == len;
}

/* Writes barrier @p id into every output channel and sends every non-empty buffer. */
static void forward_barrier(weir_task_t *t, uint64_t id, int64_t ts) {
    int64_t now = weir_now_ns();
    for (uint32_t i = 0; i < t->n_outs && !t->stop; i++) {
        weir_task_out_t *o = &t->outs[i];
        while (!weir_outchan_write_barrier(&o->ch, id, ts, now)) {
            if (!weir_outchan_has_data(&o->ch)) {
                weir__task_fail(t, "cannot write barrier %" PRIu64 " on edge %u", id,
                                o->ch.key.edge);
                return;
            }
            send_out(t, o);
            if (t->stop)
                return;
        }
    }
    for (uint32_t i = 0; i < t->n_outs && !t->stop; i++)
        if (weir_outchan_has_data(&t->outs[i].ch))
            send_out(t, &t->outs[i]);
}

/* Snapshot of checkpoint @p id (@p final: the final snapshot, acked with id 0, no barrier).
 * Synchronous part here (operator snapshots into one msgpack array, keyed snapshot), then the
 * barrier goes downstream, then the asynchronous part (upload + ACK) on the uploader thread, or
 * the ACK right away for a chain without keyed state. */
static void take_checkpoint(weir_task_t *t, uint64_t id, int64_t ts, uint64_t alignment_ns,
                            bool final) {
    int64_t t0 = weir_now_ns();
    uint64_t hook_id = final ? WEIR_CHECKPOINT_ID_FINAL : id;
    t->ckbuf.size = 0;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &t->ckbuf, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, t->n_ops);
    for (uint32_t i = 0; i < t->n_ops; i++) {
        weir_operator_t *op = &t->ops[i];
        if (!op->vt->snapshot) {
            msgpack_pack_nil(&pk);
            continue;
        }
        size_t before = t->ckbuf.size;
        t->now_ns = weir_now_ns();
        int rc = op->vt->snapshot(op, &t->ctxs[i], hook_id, &pk);
        if (rc >= 0 && !t->stop && !one_object(t->ckbuf.data + before, t->ckbuf.size - before))
            weir__task_fail(t, "%s: snapshot must pack exactly one msgpack object", op->node->name);
        else if (rc < 0 && !t->failed)
            weir__task_fail(t, "%s: snapshot failed: %s", op->node->name, weir_strerror(rc));
        if (t->stop) {
            if (t->failed)
                send_decline(t, id, t->errmsg);
            return;
        }
    }
    weir_state_snapshot_t *snap = NULL;
    char why[512] = "";
    if (t->sb && !final) {
        char err[384] = "";
        snap = weir_state_snapshot_take(t->sb, id, err, sizeof err);
        if (!snap)
            weir_fmt(why, sizeof why, "keyed state snapshot: %s", err[0] ? err : "failed");
    }
    uint64_t sync_ns = (uint64_t)(weir_now_ns() - t0);
    if (!final)
        forward_barrier(t, id, ts); /* also when declined: downstream must not stay blocked */
    if (why[0]) {
        send_decline(t, id, why);
        return;
    }
    if (t->stop) {
        weir_state_snapshot_free(&snap);
        return;
    }
    uint64_t ack_id = final ? 0 : id;
    if (t->up) { /* keep ACKs in order behind earlier uploads */
        up_job_t *j = xcalloc(1, sizeof *j);
        j->snap = snap;
        j->id = ack_id;
        j->final = final;
        j->op_len = t->ckbuf.size;
        j->op_state = malloc(j->op_len ? j->op_len : 1);
        if (!j->op_state)
            abort();
        memcpy(j->op_state, t->ckbuf.data, j->op_len);
        j->alignment_ns = alignment_ns;
        j->sync_ns = sync_ns;
        uploader_push(t, j);
    } else {
        weir_state_snapshot_free(&snap);
        send_ack(t, ack_id, final, (const uint8_t *)t->ckbuf.data, t->ckbuf.size, NULL,
                 t->ckbuf.size, 0, alignment_ns, sync_ns, 0);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Alignment                                                                                */
/* ---------------------------------------------------------------------------------------- */

static void dq_push(weir_task_in_t *in, weir_netbuf_t *buf, size_t off) {
    if (in->dq_len == in->dq_cap)
        ring_grow((void **)&in->dq, sizeof *in->dq, &in->dq_head, in->dq_len, &in->dq_cap, 4);
    in->dq[(in->dq_head + in->dq_len) % in->dq_cap] = (weir_defbuf_t){buf, off};
    in->dq_len++;
}

static void dq_pop(weir_task_in_t *in) {
    in->dq_head = (in->dq_head + 1) % in->dq_cap;
    in->dq_len--;
}

/* Unblocks every channel (granting withheld credits) and forgets which barriers arrived. */
static void release_channels(weir_task_t *t) {
    for (uint32_t i = 0; i < t->n_ins; i++) {
        weir_task_in_t *in = &t->ins[i];
        in->arrived = false;
        if (in->ch.blocked) {
            uint32_t n = weir_inchan_unblock(&in->ch);
            if (n && !t->stop)
                weir_dataplane_grant(t->dp, &in->ch.key, n);
        }
    }
    t->n_arrived = 0;
    t->align_id = 0;
}

static void maybe_complete_alignment(weir_task_t *t) {
    if (!t->align_id || t->n_arrived < t->n_ins)
        return;
    uint64_t id = t->align_id;
    uint64_t alignment_ns = (uint64_t)(weir_now_ns() - t->align_start_ns);
    t->last_ck = id;
    take_checkpoint(t, id, t->align_ts, alignment_ns, false);
    release_channels(t);
}

static void on_barrier(weir_task_t *t, uint32_t idx, uint64_t id, int64_t ts) {
    if (t->ck_mode == WEIR_CHECKPOINT_NONE || t->final_sent || id <= t->last_ck ||
        (t->align_id && id < t->align_id))
        return; /* stale (an abandoned or older checkpoint) */
    if (id > t->align_id) {
        if (t->align_id) {
            WEIR_INFO(COMP,
                      "job %s vertex %u subtask %u: barrier %" PRIu64 " abandons the alignment of "
                      "checkpoint %" PRIu64,
                      t->job_id, t->vertex, t->subtask, id, t->align_id);
            release_channels(t);
        }
        t->align_id = id;
        t->align_ts = ts;
        t->align_start_ns = weir_now_ns();
        t->n_arrived = 0;
        for (uint32_t i = 0; i < t->n_ins; i++) {
            t->ins[i].arrived = t->ins[i].ch.ended;
            t->n_arrived += t->ins[i].ch.ended ? 1 : 0;
        }
    }
    weir_task_in_t *in = &t->ins[idx];
    if (in->arrived)
        return;
    in->arrived = true;
    t->n_arrived++;
    if (t->n_arrived < t->n_ins) {
        if (t->ck_mode == WEIR_CHECKPOINT_EXACTLY_ONCE)
            weir_inchan_block(&in->ch);
        return;
    }
    maybe_complete_alignment(t);
}

static void on_end(weir_task_t *t, uint32_t idx) {
    weir_task_in_t *in = &t->ins[idx];
    if (in->ch.ended)
        return;
    in->ch.ended = true;
    t->n_ended++;
    if (t->align_id && !in->arrived) { /* an ended channel counts as arrived */
        in->arrived = true;
        t->n_arrived++;
        maybe_complete_alignment(t);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Mailbox loop                                                                             */
/* ---------------------------------------------------------------------------------------- */

/* Processes the entries of @p d from d->off on. @returns true when the buffer is done with
 * (consumed and freed; its credit granted unless blocked or stopping), false when processing
 * stopped right after a barrier that blocked the channel: d->off then points behind it. */
static bool process_buffer(weir_task_t *t, uint32_t idx, weir_defbuf_t *d) {
    weir_task_in_t *in = &t->ins[idx];
    weir_netbuf_t *buf = d->buf;
    t->now_ns = weir_now_ns();
    clear_zones(t);

    weir_bufreader_t r;
    weir_bufreader_init(&r, buf->data + d->off, buf->len - d->off);
    weir_ctx_t *head = &t->ctxs[0];
    weir_event_t ev;
    uint64_t n = 0;
    bool blocked = false;
    for (;;) {
        int k = weir_bufreader_next(&r, &ev);
        if (k == 0)
            break;
        if (UNLIKELY(k < 0)) {
            weir__task_fail(t, "corrupt buffer on input channel %u (edge %u from subtask %u)", idx,
                            in->edge, in->src);
            break;
        }
        if (LIKELY(ev.kind == WEIR_EV_RECORD)) {
            n++;
            deliver(head, &ev.record);
            if (UNLIKELY(t->stop))
                break;
        } else if (ev.kind == WEIR_EV_END) {
            on_end(t, idx);
        } else if (ev.kind == WEIR_EV_BARRIER) {
            on_barrier(t, idx, ev.checkpoint_id, ev.timestamp);
            if (t->stop)
                break;
            if (in->ch.blocked) {
                d->off = (size_t)(r.pos - buf->data);
                blocked = true;
                break;
            }
        }
        /* watermarks: not handled yet */
    }
    ctr_add(&t->m.records_in, n);
    if (blocked && !t->stop)
        return false;
    uint32_t credits = weir_inchan_consumed(&in->ch);
    if (credits && !t->stop)
        weir_dataplane_grant(t->dp, &in->ch.key, credits);
    weir_netbuf_free(&d->buf);
    return true;
}

static void on_buffer(weir_task_t *t, weir_mbmsg_t *msg) {
    weir_netbuf_t *buf = msg->buf;
    if (msg->index >= t->n_ins || !buf) {
        weir__task_fail(t, "buffer for unknown input channel %u", msg->index);
        weir_netbuf_free(&buf);
        return;
    }
    weir_task_in_t *in = &t->ins[msg->index];
    if (weir_inchan_on_buffer(&in->ch, buf->len) < 0) {
        weir__task_fail(t,
                        "input channel %u (edge %u from subtask %u) delivered a buffer "
                        "without credit",
                        msg->index, in->edge, in->src);
        weir_netbuf_free(&buf);
        return;
    }
    if (in->remote) {
        ctr_add(&t->m.buffers_in_remote, 1);
        ctr_add(&t->m.bytes_in_remote, buf->len);
    }
    if (in->ch.blocked || in->dq_len) { /* behind a barrier, or behind data that is */
        dq_push(in, buf, 0);
        return;
    }
    weir_defbuf_t d = {buf, 0};
    if (!process_buffer(t, msg->index, &d))
        dq_push(in, d.buf, d.off);
}

/* Processes one deferred buffer of an unblocked channel. @returns true when there was one. */
static bool drain_deferred(weir_task_t *t) {
    for (uint32_t i = 0; i < t->n_ins && !t->stop; i++) {
        weir_task_in_t *in = &t->ins[i];
        if (in->ch.blocked || !in->dq_len)
            continue;
        weir_defbuf_t d = in->dq[in->dq_head];
        if (process_buffer(t, i, &d))
            dq_pop(in);
        else
            in->dq[in->dq_head].off = d.off;
        return true;
    }
    return false;
}

static void on_trigger(weir_task_t *t, uint64_t id, int64_t ts) {
    if (!t->is_source) {
        WEIR_WARN(COMP,
                  "job %s vertex %u subtask %u: trigger of checkpoint %" PRIu64
                  " ignored (not a source)",
                  t->job_id, t->vertex, t->subtask, id);
        return;
    }
    if (t->ck_mode == WEIR_CHECKPOINT_NONE || t->final_sent || id <= t->last_ck)
        return;
    t->last_ck = id;
    take_checkpoint(t, id, ts, 0, false);
}

static void on_notify(weir_task_t *t, uint64_t id, bool final) {
    if (t->ck_mode == WEIR_CHECKPOINT_NONE)
        return;
    if (final && !t->final_sent) {
        WEIR_WARN(COMP,
                  "job %s vertex %u subtask %u: final notify %" PRIu64
                  " before end of input: ignored",
                  t->job_id, t->vertex, t->subtask, id);
        return;
    }
    weir_killpoint_hit(t->kp, "notify-before-commit");
    for (uint32_t i = 0; i < t->n_ops && !t->stop; i++) {
        if (!t->ops[i].vt->notify_complete)
            continue;
        t->now_ns = weir_now_ns();
        t->ops[i].vt->notify_complete(&t->ops[i], &t->ctxs[i], id, final);
    }
    if (t->sb && !final)
        weir_state_snapshot_confirm(t->sb, id);
    if (final)
        t->final_notified = true;
}

static void handle_msg(weir_task_t *t, weir_mbmsg_t *msg) {
    switch (msg->type) {
    case WEIR_MB_BUFFER:
        on_buffer(t, msg);
        break;
    case WEIR_MB_CREDIT:
        if (msg->index < t->n_outs)
            weir_outchan_add_credit(&t->outs[msg->index].ch, msg->n);
        break;
    case WEIR_MB_CANCEL:
        t->canceled = true;
        t->stop = true;
        break;
    case WEIR_MB_CALL:
        if (msg->fn)
            msg->fn(msg->arg);
        break;
    case WEIR_MB_TRIGGER:
        on_trigger(t, msg->id, msg->ts);
        break;
    case WEIR_MB_NOTIFY:
        on_notify(t, msg->id, msg->flag);
        break;
    case WEIR_MB_UPLOADED: /* the final snapshot's upload failed; arg: the reason */
        weir__task_fail(t, "final snapshot: %s", msg->arg ? (const char *)msg->arg : "failed");
        free(msg->arg);
        break;
    default:
        weir_netbuf_free(&msg->buf);
        break;
    }
}

/* Gets the next message: deferred ones first. */
static int next_msg(weir_task_t *t, weir_mbmsg_t *msg, int64_t deadline) {
    if (def_pop(t, msg))
        return 1;
    return weir_mailbox_pop(t->mb, msg, deadline);
}

static int64_t to_deadline(int64_t next_flush) {
    if (next_flush == INT64_MAX)
        return -1;
    return next_flush > 0 ? next_flush : 1;
}

/* Runs a source until it ends. @returns true when it ended normally. */
static bool run_source(weir_task_t *t) {
    weir_operator_t *head = &t->ops[0];
    weir_ctx_t *hc = &t->ctxs[0];
    weir_mbmsg_t msg;
    while (!t->stop) {
        t->now_ns = weir_now_ns();
        clear_zones(t);
        int64_t wake = 0;
        int rc = head->vt->run(head, hc, SOURCE_BUDGET, &wake);
        if (t->stop)
            break;
        if (rc < 0) {
            weir__task_fail(t, "%s: source failed: %s", head->node->name, weir_strerror(rc));
            break;
        }
        if (rc == WEIR_SOURCE_END)
            return true;
        /* control messages, without waiting */
        while (!t->stop && next_msg(t, &msg, 0) > 0)
            handle_msg(t, &msg);
        int64_t now = weir_now_ns();
        int64_t next_flush = flush_due(t, now);
        while (wake > now && !t->stop) {
            int64_t dl = wake < next_flush ? wake : next_flush;
            if (next_msg(t, &msg, dl > 0 ? dl : 1) > 0)
                handle_msg(t, &msg);
            now = weir_now_ns();
            next_flush = flush_due(t, now);
        }
    }
    return false;
}

/* Consumes the input gate until every channel ended. @returns true when it did. */
static bool run_inputs(weir_task_t *t) {
    int64_t next_flush = INT64_MAX;
    weir_mbmsg_t msg;
    while (!t->stop && t->n_ended < t->n_ins) {
        if (drain_deferred(t)) {
            next_flush = flush_due(t, weir_now_ns());
            continue;
        }
        if (next_msg(t, &msg, to_deadline(next_flush)) > 0)
            handle_msg(t, &msg);
        if (t->stop)
            break;
        next_flush = flush_due(t, weir_now_ns());
    }
    return !t->stop;
}

/* Checkpointing on, after the final snapshot: handle the mailbox until the final notify. */
static void wait_final_notify(weir_task_t *t) {
    int64_t next_flush = INT64_MAX;
    weir_mbmsg_t msg;
    while (!t->stop && !t->final_notified) {
        if (next_msg(t, &msg, to_deadline(next_flush)) > 0)
            handle_msg(t, &msg);
        next_flush = flush_due(t, weir_now_ns());
    }
}

/* End of input: end_input head to tail; with checkpointing on the final snapshot (before END,
 * so downstream's final snapshot follows ours); END on every output, flush everything; with
 * checkpointing on, wait for the final notify. */
static void finish(weir_task_t *t) {
    for (uint32_t i = 0; i < t->n_ops && !t->stop; i++) {
        t->now_ns = weir_now_ns();
        clear_zones(t);
        if (t->ops[i].vt->end_input)
            t->ops[i].vt->end_input(&t->ops[i], &t->ctxs[i]);
    }
    bool ck = t->ck_mode != WEIR_CHECKPOINT_NONE;
    if (ck && !t->stop) {
        if (t->align_id) /* cannot happen: every channel ended, so every barrier "arrived" */
            release_channels(t);
        take_checkpoint(t, 0, weir_wall_ms(), 0, true);
        t->final_sent = true;
    }
    int64_t now = weir_now_ns();
    for (uint32_t i = 0; i < t->n_outs && !t->stop; i++) {
        weir_task_out_t *o = &t->outs[i];
        while (!weir_outchan_write_end(&o->ch, now)) {
            if (!weir_outchan_has_data(&o->ch)) {
                weir__task_fail(t, "cannot write end of input on edge %u", o->ch.key.edge);
                return;
            }
            send_out(t, o);
            if (t->stop)
                return;
        }
    }
    for (uint32_t i = 0; i < t->n_outs && !t->stop; i++)
        if (weir_outchan_has_data(&t->outs[i].ch))
            send_out(t, &t->outs[i]);
    if (ck && !t->stop)
        wait_final_notify(t);
}

static void set_state(weir_task_t *t, weir_task_state_t s, const char *message) {
    atomic_store_explicit(&t->state, (int)s, memory_order_release);
    if (t->on_state)
        t->on_state(t->cb_arg, t, s, message);
}

/* Starting from a checkpoint: hands every chain operator its element of the op_state array
 * (nil when the operator had none) before open. */
static void restore_operators(weir_task_t *t) {
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    const msgpack_object *elems = NULL;
    if (t->restore_op && t->restore_op_len) {
        size_t off = 0;
        msgpack_unpack_return r =
            msgpack_unpack_next(&u, (const char *)t->restore_op, t->restore_op_len, &off);
        if (r != MSGPACK_UNPACK_SUCCESS || off != t->restore_op_len ||
            u.data.type != MSGPACK_OBJECT_ARRAY || u.data.via.array.size != t->n_ops) {
            weir__task_fail(t,
                            "operator state of checkpoint %" PRIu64 " is not an array of %u "
                            "entries (one per chained operator): the job graph changed or the "
                            "checkpoint is corrupt",
                            t->restore_id, t->n_ops);
            msgpack_unpacked_destroy(&u);
            return;
        }
        elems = u.data.via.array.ptr;
    }
    msgpack_object nil = {.type = MSGPACK_OBJECT_NIL};
    for (uint32_t i = 0; i < t->n_ops && !t->stop; i++) {
        weir_operator_t *op = &t->ops[i];
        const msgpack_object *st = elems ? &elems[i] : &nil;
        if (!op->vt->restore) {
            if (st->type != MSGPACK_OBJECT_NIL)
                WEIR_WARN(COMP,
                          "%s: checkpoint %" PRIu64 " holds state for it, but it cannot "
                          "restore: ignored",
                          op->node->name, t->restore_id);
            continue;
        }
        int rc = op->vt->restore(op, &t->ctxs[i], t->restore_id, st);
        if (rc < 0 && !t->failed)
            weir__task_fail(t, "%s: restore from checkpoint %" PRIu64 " failed: %s", op->node->name,
                            t->restore_id, weir_strerror(rc));
    }
    msgpack_unpacked_destroy(&u);
}

static void open_state(weir_task_t *t) {
    char errstr[384] = "";
    char path[4096];
    weir_fmt(path, sizeof path, "%s/state", t->state_dir);
    weir_state_opts_t so = {.path = path,
                            .max_parallelism = t->graph->max_parallelism,
                            .cache_bytes = t->state_cache_bytes};
    if (weir_mkdirs(t->state_dir) < 0) {
        weir__task_fail(t, "cannot create state directory %s", t->state_dir);
        return;
    }
    if (t->restore_id && t->restore_handle) {
        if (!t->ck_dir) {
            weir__task_fail(t,
                            "restoring keyed state of checkpoint %" PRIu64
                            " needs the checkpoint directory (state.checkpoints.dir)",
                            t->restore_id);
            return;
        }
        t->sb = weir_state_restore(&so, t->decls, t->n_decls, t->ck_dir, t->restore_handle, errstr,
                                   sizeof errstr);
        if (!t->sb)
            weir__task_fail(t, "restoring keyed state of checkpoint %" PRIu64 ": %s", t->restore_id,
                            errstr[0] ? errstr : "failed");
    } else {
        t->sb = weir_state_open(&so, t->decls, t->n_decls, errstr, sizeof errstr);
        if (!t->sb)
            weir__task_fail(t, "state backend: %s", errstr[0] ? errstr : "open failed");
    }
    for (uint32_t i = 0; i < t->n_ops; i++)
        if (t->ctxs[i].n_states)
            t->ctxs[i].sb = t->sb;
    if (t->sb && t->ck_mode != WEIR_CHECKPOINT_NONE && uploader_start(t) < 0)
        weir__task_fail(t, "cannot start the snapshot uploader thread");
}

/* Removes the state directory and, when empty, its attempt and job parents. */
static void remove_state_dir(weir_task_t *t) {
    if (!t->state_dir)
        return;
    weir_rmtree(t->state_dir);
    char dir[4096];
    weir_fmt(dir, sizeof dir, "%s/%s/%u", t->work_dir, t->job_id, t->attempt);
    (void)rmdir(dir);
    weir_fmt(dir, sizeof dir, "%s/%s", t->work_dir, t->job_id);
    (void)rmdir(dir);
}

static void *task_main(void *arg) {
    weir_task_t *t = arg;

    if (t->n_decls)
        open_state(t);
    if (t->restore_id && !t->stop)
        restore_operators(t);
    for (uint32_t i = 0; i < t->n_ops && !t->stop; i++) {
        if (!t->ops[i].vt->open)
            continue;
        int rc = t->ops[i].vt->open(&t->ops[i], &t->ctxs[i]);
        if (rc < 0 && !t->failed)
            weir__task_fail(t, "%s: open failed: %s", t->ops[i].node->name, weir_strerror(rc));
    }
    bool ended = false;
    if (!t->stop) {
        set_state(t, WEIR_TASK_RUNNING, NULL);
        ended = t->is_source ? run_source(t) : run_inputs(t);
    }
    if (ended && !t->stop)
        finish(t);

    /* teardown: nothing is pushed into the mailbox after close_mailbox (but the uploader) */
    weir_dataplane_close_mailbox(t->dp, t->mb);
    uploader_stop(t, t->stop); /* in-flight uploads end before the backend closes */
    for (uint32_t i = 0; i < t->n_ops; i++) {
        if (t->op_created[i] && t->ops[i].vt->close)
            t->ops[i].vt->close(&t->ops[i]);
        t->op_created[i] = false;
    }
    weir_state_close(&t->sb, true);
    remove_state_dir(t);

    weir_task_state_t fin = t->failed     ? WEIR_TASK_FAILED
                            : t->canceled ? WEIR_TASK_CANCELED
                                          : WEIR_TASK_FINISHED;
    if (fin == WEIR_TASK_FAILED)
        WEIR_WARN(COMP, "job %s vertex %u subtask %u failed: %s", t->job_id, t->vertex, t->subtask,
                  t->errmsg);
    else
        WEIR_DEBUG(COMP, "job %s vertex %u subtask %u %s", t->job_id, t->vertex, t->subtask,
                   weir_task_state_name(fin));
    set_state(t, fin, fin == WEIR_TASK_FAILED ? t->errmsg : NULL);
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Construction                                                                             */
/* ---------------------------------------------------------------------------------------- */

static bool is_connector_kind(weir_op_kind_t k) {
    switch (k) {
    case WEIR_OP_SOURCE_DATAGEN:
    case WEIR_OP_SOURCE_FILE:
    case WEIR_OP_SOURCE_GENERATOR:
    case WEIR_OP_SINK_FILE:
    case WEIR_OP_SINK_PRINT:
    case WEIR_OP_SINK_BLACKHOLE:
        return true;
    default:
        return false;
    }
}

static void task_free(weir_task_t *t) {
    if (!t)
        return;
    uploader_stop(t, true);
    if (t->mb && t->dp)
        weir_dataplane_close_mailbox(t->dp, t->mb);
    for (uint32_t i = 0; t->ops && i < t->n_ops; i++)
        if (t->op_created && t->op_created[i] && t->ops[i].vt && t->ops[i].vt->close)
            t->ops[i].vt->close(&t->ops[i]);
    for (uint32_t i = 0; t->ctxs && i < t->n_ops; i++) {
        msgpack_sbuffer_destroy(&t->ctxs[i].sbuf);
        msgpack_zone_destroy(&t->ctxs[i].zone);
    }
    weir_state_close(&t->sb, true);
    remove_state_dir(t);
    for (uint32_t i = 0; t->outs && i < t->n_outs; i++)
        weir_outchan_destroy(&t->outs[i].ch);
    weir_mbmsg_t msg;
    while (def_pop(t, &msg)) {
        if (msg.type == WEIR_MB_UPLOADED)
            free(msg.arg);
        weir_netbuf_free(&msg.buf);
    }
    free(t->deferred);
    while (t->mb && weir_mailbox_pop(t->mb, &msg, 0) > 0) {
        if (msg.type == WEIR_MB_UPLOADED)
            free(msg.arg);
        weir_netbuf_free(&msg.buf);
    }
    weir_mailbox_destroy(&t->mb);
    for (uint32_t i = 0; t->ins && i < t->n_ins; i++) {
        weir_task_in_t *in = &t->ins[i];
        for (size_t k = 0; k < in->dq_len; k++)
            weir_netbuf_free(&in->dq[(in->dq_head + k) % in->dq_cap].buf);
        free(in->dq);
    }
    msgpack_sbuffer_destroy(&t->ckbuf);
    free(t->ck_dir);
    free(t->restore_op);
    free(t->restore_handle);
    if (t->placement && t->graph) {
        for (uint32_t v = 0; v < t->graph->n_vertices; v++) {
            for (uint32_t s = 0; t->placement[v] && s < t->graph->vertices[v].parallelism; s++)
                free(t->placement[v][s]);
            free(t->placement[v]);
        }
    }
    free(t->placement);
    for (uint32_t i = 0; t->decls && i < t->n_decls; i++)
        free(t->decls[i].name);
    free(t->decls);
    free(t->ops);
    free(t->ctxs);
    free(t->op_created);
    free(t->ins);
    free(t->outs);
    free(t->oedges);
    free(t->keybuf);
    free(t->work_dir);
    free(t->state_dir);
    weir_graph_destroy(&t->graph);
    free(t);
}

static int build_chain(weir_task_t *t, char *errstr, size_t errlen) {
    const weir_vertex_t *vx = t->vx;
    weir_job_t *g = t->graph;
    t->n_ops = vx->n_nodes;
    if (!t->n_ops) {
        weir_fmt(errstr, errlen, "vertex %u has no operators", t->vertex);
        return WEIR_EINVAL;
    }
    t->ops = xcalloc(t->n_ops, sizeof *t->ops);
    t->ctxs = xcalloc(t->n_ops, sizeof *t->ctxs);
    t->op_created = xcalloc(t->n_ops, sizeof *t->op_created);
    for (uint32_t i = 0; i < t->n_ops; i++) {
        weir_ctx_t *c = &t->ctxs[i];
        msgpack_sbuffer_init(&c->sbuf);
        msgpack_packer_init(&c->pk, &c->sbuf, msgpack_sbuffer_write);
        if (!msgpack_zone_init(&c->zone, ZONE_CHUNK))
            abort();
    }
    uint32_t n_decls = 0, n_stateful = 0;
    for (uint32_t i = 0; i < t->n_ops; i++) {
        const weir_node_t *node = &g->nodes[vx->nodes[i]];
        n_decls += node->n_states;
        n_stateful += node->n_states ? 1 : 0;
    }
    if (n_decls) {
        t->decls = xcalloc(n_decls, sizeof *t->decls);
        char sd[4096];
        weir_fmt(sd, sizeof sd, "%s/%s/%u/%u-%u", t->work_dir, t->job_id, t->attempt, t->vertex,
                 t->subtask);
        t->state_dir = xstrdup(sd);
    }

    for (uint32_t i = 0; i < t->n_ops; i++) {
        const weir_node_t *node = &g->nodes[vx->nodes[i]];
        weir_operator_t *op = &t->ops[i];
        weir_ctx_t *c = &t->ctxs[i];
        op->node = node;
        op->subtask = t->subtask;
        op->parallelism = vx->parallelism;
        c->task = t;
        c->pos = i;
        c->op = op;
        c->next = i + 1 < t->n_ops ? &t->ctxs[i + 1] : NULL;
        c->keyed = node->keyed;
        if (weir_op_is_source(node->kind) && i != 0) {
            weir_fmt(errstr, errlen, "source %s is not the head of its chain", node->name);
            return WEIR_EINVAL;
        }
        char err[256] = "";
        int rc = !is_connector_kind(node->kind) ? weir_operator_create_builtin(op, err, sizeof err)
                 : t->create_connector          ? t->create_connector(op, err, sizeof err)
                                                : WEIR_EINVAL;
        if (rc < 0 || !op->vt) {
            weir_fmt(errstr, errlen, "operator %s (%s): %s", node->name,
                     weir_op_kind_name(node->kind), err[0] ? err : weir_strerror(rc));
            return rc < 0 ? rc : WEIR_EINVAL;
        }
        t->op_created[i] = true;
        if (i == 0 && weir_op_is_source(node->kind)) {
            t->is_source = true;
            if (!op->vt->run) {
                weir_fmt(errstr, errlen, "source %s has no run function", node->name);
                return WEIR_EINVAL;
            }
        } else if (!op->vt->process) {
            weir_fmt(errstr, errlen, "operator %s has no process function", node->name);
            return WEIR_EINVAL;
        }
        /* states: (node, index) -> global column */
        c->state_base = t->n_decls;
        c->n_states = node->n_states;
        for (uint32_t s = 0; s < node->n_states; s++) {
            weir_state_decl_t *d = &t->decls[t->n_decls++];
            *d = node->states[s];
            if (n_stateful > 1) {
                char nm[512];
                weir_fmt(nm, sizeof nm, "%s/%s", node->uid ? node->uid : node->name,
                         node->states[s].name);
                d->name = xstrdup(nm);
            } else {
                d->name = xstrdup(node->states[s].name);
            }
            if (d->kind == WEIR_STATE_REDUCING && !d->reduce && node->kind == WEIR_OP_REDUCE &&
                s == 0) {
                d->reduce = (weir_reduce_fn)node->fn;
                d->reduce_udata = node->udata;
            }
            if (d->kind == WEIR_STATE_REDUCING && !d->reduce) {
                weir_fmt(errstr, errlen, "reducing state %s of %s has no reduce function",
                         node->states[s].name, node->name);
                return WEIR_EINVAL;
            }
        }
    }
    return 0;
}

static int build_gates(weir_task_t *t, char *errstr, size_t errlen) {
    weir_job_t *g = t->graph;
    const weir_vertex_t *vx = t->vx;
    const char *self = weir_dataplane_address(t->dp);
    int rc;

    /* input gate */
    uint32_t n = 0;
    for (uint32_t k = 0; k < vx->n_in; k++) {
        const weir_edge_t *e = &g->edges[vx->in_edges[k]];
        n += e->part == WEIR_PART_FORWARD ? 1 : g->vertices[e->source].parallelism;
    }
    t->ins = xcalloc(n, sizeof *t->ins);
    for (uint32_t k = 0; k < vx->n_in; k++) {
        const weir_edge_t *e = &g->edges[vx->in_edges[k]];
        const weir_vertex_t *u = &g->vertices[e->source];
        bool fwd = e->part == WEIR_PART_FORWARD;
        if (fwd && u->parallelism != vx->parallelism) {
            weir_fmt(errstr, errlen, "forward edge %u joins parallelism %u to %u", e->id,
                     u->parallelism, vx->parallelism);
            return WEIR_EINVAL;
        }
        uint32_t lo = fwd ? t->subtask : 0, hi = fwd ? t->subtask + 1 : u->parallelism;
        for (uint32_t src = lo; src < hi; src++) {
            weir_task_in_t *in = &t->ins[t->n_ins];
            weir_chankey_t key = {.attempt = t->attempt,
                                  .edge = (uint16_t)e->id,
                                  .src = (uint16_t)src,
                                  .dst = (uint16_t)t->subtask};
            memcpy(key.job, t->job_bin, 16);
            const char *addr = t->placement[e->source][src];
            in->remote = strcmp(addr, self) != 0;
            in->edge = e->id;
            in->src = src;
            weir_inchan_init(&in->ch, &key, t->credits_per_channel);
            rc = weir_dataplane_open_input(t->dp, &key, addr, t->mb, t->n_ins,
                                           t->credits_per_channel);
            if (rc < 0) {
                weir_fmt(errstr, errlen, "cannot open input channel (edge %u from %s): %s", e->id,
                         addr, weir_strerror(rc));
                return rc;
            }
            t->n_ins++;
        }
    }
    if (!t->is_source && t->n_ins == 0) {
        weir_fmt(errstr, errlen, "vertex %s has neither a source nor an input", vx->name);
        return WEIR_EINVAL;
    }

    /* output writer */
    n = 0;
    for (uint32_t k = 0; k < vx->n_out; k++) {
        const weir_edge_t *e = &g->edges[vx->out_edges[k]];
        n += e->part == WEIR_PART_FORWARD ? 1 : g->vertices[e->target].parallelism;
    }
    t->outs = xcalloc(n, sizeof *t->outs);
    t->oedges = xcalloc(vx->n_out, sizeof *t->oedges);
    t->keybuf = xcalloc(WEIR_MAX_KEY_LEN, 1);
    for (uint32_t k = 0; k < vx->n_out; k++) {
        const weir_edge_t *e = &g->edges[vx->out_edges[k]];
        const weir_vertex_t *w = &g->vertices[e->target];
        weir_task_oedge_t *oe = &t->oedges[t->n_oedges++];
        bool fwd = e->part == WEIR_PART_FORWARD;
        if (fwd && w->parallelism != vx->parallelism) {
            weir_fmt(errstr, errlen, "forward edge %u joins parallelism %u to %u", e->id,
                     vx->parallelism, w->parallelism);
            return WEIR_EINVAL;
        }
        oe->kind = e->part;
        oe->first = t->n_outs;
        oe->n_chans = fwd ? 1 : w->parallelism;
        weir_partitioner_init(&oe->part, e->part, w->parallelism, g->max_parallelism, t->subtask);
        const weir_node_t *whead = &g->nodes[w->nodes[0]];
        if (e->part == WEIR_PART_HASH && whead->has_key_fn) {
            if (!whead->key_fn) {
                weir_fmt(errstr, errlen,
                         "key selector of %s is missing (graph not built by "
                         "define())",
                         whead->name);
                return WEIR_EINVAL;
            }
            oe->key_fn = whead->key_fn;
            oe->key_udata = whead->key_udata;
        }
        for (uint32_t c = 0; c < oe->n_chans; c++) {
            uint32_t dst = fwd ? t->subtask : c;
            weir_task_out_t *o = &t->outs[t->n_outs];
            weir_chankey_t key = {.attempt = t->attempt,
                                  .edge = (uint16_t)e->id,
                                  .src = (uint16_t)t->subtask,
                                  .dst = (uint16_t)dst};
            memcpy(key.job, t->job_bin, 16);
            const char *addr = t->placement[e->target][dst];
            o->local = strcmp(addr, self) == 0;
            weir_outchan_init(&o->ch, &key, t->buffer_size);
            t->n_outs++;
            rc = weir_dataplane_open_output(t->dp, &key, addr, t->mb, t->n_outs - 1);
            if (rc < 0) {
                weir_fmt(errstr, errlen, "cannot open output channel (edge %u to %s): %s", e->id,
                         addr, weir_strerror(rc));
                return rc;
            }
        }
    }
    return 0;
}

weir_task_t *weir_task_start(weir_task_spec_t *spec, char *errstr, size_t errlen) {
    weir_job_t *g = spec->graph;
    spec->graph = NULL; /* the task owns it from here on, also on failure */
    weir_task_t *t = NULL;
    if (!g || !spec->dataplane || !spec->placement || spec->vertex >= g->n_vertices ||
        spec->subtask >= g->vertices[spec->vertex].parallelism) {
        weir_fmt(errstr, errlen, "bad task spec (vertex %u subtask %u)", spec->vertex,
                 spec->subtask);
        weir_graph_destroy(&g);
        return NULL;
    }
    t = xcalloc(1, sizeof *t);
    t->graph = g;
    memcpy(t->job_id, spec->job_id, sizeof t->job_id);
    t->job_id[32] = 0;
    if (weir_hex_decode(t->job_id, t->job_bin, 16) < 0) {
        weir_fmt(errstr, errlen, "bad job id '%s': expected 32 hex digits", t->job_id);
        goto fail;
    }
    t->attempt = spec->attempt;
    t->vertex = spec->vertex;
    t->subtask = spec->subtask;
    t->vx = &g->vertices[spec->vertex];
    t->dp = spec->dataplane;
    t->work_dir = xstrdup(spec->work_dir ? spec->work_dir : "/tmp");
    t->buffer_size = spec->buffer_size ? spec->buffer_size : 32768;
    t->buffer_timeout_ns = spec->buffer_timeout_ns;
    t->credits_per_channel = spec->credits_per_channel ? spec->credits_per_channel : 4;
    t->state_cache_bytes = spec->state_cache_bytes;
    t->on_state = spec->on_state;
    t->cb_arg = spec->cb_arg;
    t->ck_mode = spec->checkpoint_mode;
    t->ck_dir = spec->checkpoint_dir ? xstrdup(spec->checkpoint_dir) : NULL;
    t->restore_id = spec->restore_checkpoint_id;
    t->last_ck = spec->restore_checkpoint_id; /* ids grow: older barriers are stale */
    if (spec->restore_checkpoint_id && spec->restore_op_state && spec->restore_op_state_len) {
        t->restore_op = malloc(spec->restore_op_state_len);
        if (!t->restore_op)
            abort();
        memcpy(t->restore_op, spec->restore_op_state, spec->restore_op_state_len);
        t->restore_op_len = spec->restore_op_state_len;
    }
    if (spec->restore_checkpoint_id && spec->restore_keyed_handle)
        t->restore_handle = xstrdup(spec->restore_keyed_handle);
    t->incremental = spec->incremental;
    t->kp = spec->killpoint;
    t->send = spec->send;
    t->send_arg = spec->send_arg;
    t->create_connector = spec->create_connector;
    msgpack_sbuffer_init(&t->ckbuf);
    atomic_store(&t->state, (int)WEIR_TASK_DEPLOYING);

    t->placement = xcalloc(g->n_vertices, sizeof *t->placement);
    for (uint32_t v = 0; v < g->n_vertices; v++) {
        uint32_t p = g->vertices[v].parallelism;
        t->placement[v] = xcalloc(p, sizeof *t->placement[v]);
        for (uint32_t s = 0; s < p; s++) {
            const char *a = spec->placement[v] ? spec->placement[v][s] : NULL;
            if (!a) {
                weir_fmt(errstr, errlen, "no placement for subtask %u of vertex %u", s, v);
                goto fail;
            }
            t->placement[v][s] = xstrdup(a);
        }
    }
    t->mb = weir_mailbox_new();
    if (build_chain(t, errstr, errlen) < 0)
        goto fail;
    if (build_gates(t, errstr, errlen) < 0)
        goto fail;
    if (pthread_create(&t->thread, NULL, task_main, t) != 0) {
        weir_fmt(errstr, errlen, "cannot start the thread of subtask %u of %s", t->subtask,
                 t->vx->name);
        goto fail;
    }
    t->thread_started = true;
    char tname[16];
    snprintf(tname, sizeof tname, "weir-%u.%u", t->vertex, t->subtask);
    pthread_setname_np(t->thread, tname);
    return t;
fail:
    task_free(t);
    return NULL;
}

void weir_task_cancel(weir_task_t *task) {
    if (!task)
        return;
    weir_mbmsg_t msg = {.type = WEIR_MB_CANCEL};
    weir_mailbox_push(task->mb, &msg);
}

void weir_task_trigger(weir_task_t *task, uint64_t checkpoint_id, int64_t timestamp_ms) {
    if (!task)
        return;
    weir_mbmsg_t msg = {.type = WEIR_MB_TRIGGER, .id = checkpoint_id, .ts = timestamp_ms};
    weir_mailbox_push(task->mb, &msg);
}

void weir_task_notify(weir_task_t *task, uint64_t checkpoint_id, bool final) {
    if (!task)
        return;
    weir_mbmsg_t msg = {.type = WEIR_MB_NOTIFY, .id = checkpoint_id, .flag = final};
    weir_mailbox_push(task->mb, &msg);
}

void weir_ctx_killpoint(weir_ctx_t *ctx, const char *point) {
    if (ctx && ctx->task)
        weir_killpoint_hit(ctx->task->kp, point);
}

void weir_task_destroy(weir_task_t **task) {
    if (!task || !*task)
        return;
    weir_task_t *t = *task;
    *task = NULL;
    if (t->thread_started) {
        int s = atomic_load(&t->state);
        if (s != WEIR_TASK_FINISHED && s != WEIR_TASK_FAILED && s != WEIR_TASK_CANCELED)
            weir_task_cancel(t);
        pthread_join(t->thread, NULL);
    }
    task_free(t);
}

const char *weir_task_job_id(const weir_task_t *task) {
    return task->job_id;
}
uint32_t weir_task_attempt(const weir_task_t *task) {
    return task->attempt;
}
uint32_t weir_task_vertex(const weir_task_t *task) {
    return task->vertex;
}
uint32_t weir_task_subtask(const weir_task_t *task) {
    return task->subtask;
}
weir_task_state_t weir_task_state(const weir_task_t *task) {
    return (weir_task_state_t)atomic_load_explicit(&task->state, memory_order_acquire);
}

void weir_task_get_metrics(const weir_task_t *t, weir_task_metrics_t *out) {
#define LD(f) out->f = atomic_load_explicit(&t->m.f, memory_order_relaxed)
    LD(records_in);
    LD(records_out);
    LD(buffers_in_remote);
    LD(bytes_in_remote);
    LD(buffers_out_remote);
    LD(bytes_out_remote);
    LD(buffers_out_local);
    LD(backpressured_ns);
#undef LD
}
