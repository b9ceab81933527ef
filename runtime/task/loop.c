/* The subtask thread and its mailbox loop: weir__task_main opens the state (checkpoint.c) and
 * the operators, runs a source or consumes the input gate, handles end of input, tears down and
 * reports the final state. Also owns the buffer-level half of the output writer (sending a
 * buffer once a credit is in hand, the buffer timeout) and the two task-local FIFOs: mailbox
 * messages deferred while blocked on credit, and each input channel's queue of buffers waiting
 * behind a barrier (in->dq).
 *
 * Invariants:
 *  - Everything but the counters (task->m) and task->state is touched by the task thread only.
 *    Counters have a single writer (the task thread) and are read with relaxed atomics.
 *  - A buffer is sent only with a credit in hand; while none is available the thread blocks on
 *    its mailbox handling only CREDIT and CANCEL, deferring every other message to a local FIFO
 *    that the main loop drains first (so input order per channel is kept and no input is
 *    processed re-entrantly). Input credits are granted back only once a buffer was processed
 *    completely, so a slow consumer stops its producers transitively up to the sources. They
 *    are granted in batches of half a channel's credits (weir_inchan_consumed_batched): a
 *    sender without credit has all C of them outstanding, so once the receiver consumed what
 *    is in flight at least a batch is owed and granted; batching never stalls a sender.
 *  - Metrics (README.md "Metrics"): every blocking mailbox wait is bracketed by
 *    weir__task_clock_wait: idle in next_msg (only when nothing is queued), backpressured in
 *    weir__task_send_out; the final set_state ends the clock. in_held counts the buffers in the
 *    deferred FIFO and the channels' dq; each output's share of out_queued follows its credits.
 *  - task->now_ns is refreshed (weir_now_ns) once per input buffer / source batch / hook call,
 *    never per record; the unpack zones are cleared at the start of every input buffer and
 *    source batch.
 *  - A source snapshots only between run() calls (triggers are handled between them). After a
 *    stop-with-savepoint (checkpoint.c sets suspended) run() is never called again: the source
 *    serves its mailbox (credits, notify, cancel) until the stop's final notify.
 *  - A subtask that got the final notify of the stop-with-savepoint it snapshotted leaves its
 *    loop without end of input (no end_input, no final snapshot, no END downstream) and reports
 *    FINISHED.
 *  - A channel blocked by alignment (checkpoint.c) has the rest of the buffer holding the barrier
 *    and every later buffer queued in its in->dq as (buffer, offset); they are processed, before
 *    the mailbox, only once the channel is unblocked. So no entry that follows barrier n on a
 *    channel is processed before the snapshot of n (exactly-once).
 *  - Both FIFOs (deferred mailbox messages, deferred channel buffers) are rings bounded by
 *    credits; running out of memory while growing one aborts (weir_ring_grow).
 *  - User open/close (lifecycle.c): each operator's user open right after its built-in open,
 *    head to tail; the user close FINISHED after end_input and before the final snapshot, else
 *    (failed: FAILED; canceled or stopped: CANCELED) at the start of the teardown.
 *  - Teardown order: close the mailbox (nothing but the uploader pushes into it afterwards), join
 *    the uploader (in-flight uploads end before the backend closes), close the operators, close
 *    and remove the state; the final state callback (FINISHED / FAILED / CANCELED) is the last
 *    thing the thread does.
 *
 * Threading: the task thread only (SCHED_BATCH: weir_dataplane_sched_batch); the uploader and
 * connector threads it starts inherit the policy. weir__task_drop_messages runs in task_free
 * after the thread was joined (or never started). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "runtime/dataplane/dataplane.h"
#include "runtime/dataplane/record.h"
#include "runtime/task/task_int.h"

#define COMP "task"
#define SOURCE_BUDGET 512u

/* ---------------------------------------------------------------------------------------- */
/* Deferred messages (popped while blocked on credit)                                       */
/* ---------------------------------------------------------------------------------------- */

static void def_push(weir_task_t *t, const weir_mbmsg_t *msg) {
    if (msg->type == WEIR_MB_BUFFER) /* still queued input (the in_queued gauge) */
        weir__task_ctr_add(&t->m.in_held, 1);
    if (t->def_len == t->def_cap)
        weir_ring_grow((void **)&t->deferred, sizeof *t->deferred, &t->def_head, t->def_len,
                       &t->def_cap, 16);
    t->deferred[(t->def_head + t->def_len) % t->def_cap] = *msg;
    t->def_len++;
}

static bool def_pop(weir_task_t *t, weir_mbmsg_t *msg) {
    if (!t->def_len)
        return false;
    *msg = t->deferred[t->def_head];
    t->def_head = (t->def_head + 1) % t->def_cap;
    t->def_len--;
    if (msg->type == WEIR_MB_BUFFER)
        weir__task_ctr_add(&t->m.in_held, (uint64_t)-1);
    return true;
}

/* Frees what a message owns: its buffer, the reason of UPLOADED, the target of TRIGGER. */
static void msg_free(weir_mbmsg_t *msg) {
    if (msg->type == WEIR_MB_UPLOADED || msg->type == WEIR_MB_TRIGGER)
        free(msg->arg);
    msg->arg = NULL;
    weir_netbuf_free(&msg->buf);
}

void weir__task_drop_messages(weir_task_t *t) {
    weir_mbmsg_t msg;
    while (def_pop(t, &msg))
        msg_free(&msg);
    free(t->deferred);
    while (t->mb && weir_mailbox_pop(t->mb, &msg, 0) > 0)
        msg_free(&msg);
}

/* ---------------------------------------------------------------------------------------- */
/* Output writer: sending buffers                                                           */
/* ---------------------------------------------------------------------------------------- */

/* Updates output @p o's share of the out_queued gauge: the buffers of its credit window that
 * the receiver has not returned yet (in flight, queued or being processed there, or consumed
 * and owed as a batch), credits_per_channel - credits once the receiver's first credits came
 * (nothing was sent before). A receiver granting more than this side's credits_per_channel
 * counts as 0. */
static void out_gauge(weir_task_t *t, weir_task_out_t *o) {
    uint32_t q = o->primed && o->ch.credits < t->credits_per_channel
                     ? t->credits_per_channel - o->ch.credits
                     : 0;
    if (q != o->queued) {
        weir__task_ctr_add(&t->m.out_queued, (uint64_t)q - (uint64_t)o->queued);
        o->queued = q;
    }
}

/* CREDIT: @p n credits for output @p idx. */
static void out_credit(weir_task_t *t, uint32_t idx, uint32_t n) {
    if (idx >= t->n_outs)
        return;
    weir_task_out_t *o = &t->outs[idx];
    weir_outchan_add_credit(&o->ch, n);
    o->primed = true;
    out_gauge(t, o);
}

/* Sends the current buffer of @p o, blocking for a credit first. Returns with t->stop set when
 * canceled (or failed) while waiting. */
void weir__task_send_out(weir_task_t *t, weir_task_out_t *o) {
    if (o->ch.credits == 0) {
        weir__task_clock_wait(t, WEIR_WAIT_BP, weir_now_ns());
        while (o->ch.credits == 0 && !t->stop) {
            weir_mbmsg_t msg;
            if (weir_mailbox_pop(t->mb, &msg, -1) <= 0)
                continue;
            if (msg.type == WEIR_MB_CREDIT) {
                out_credit(t, msg.index, msg.n);
            } else if (msg.type == WEIR_MB_CANCEL) {
                t->canceled = true;
                t->stop = true;
            } else {
                def_push(t, &msg);
            }
        }
        weir__task_clock_wait(t, WEIR_WAIT_NONE, weir_now_ns());
        if (t->stop)
            return;
    }
    weir_netbuf_t *buf = weir_outchan_take(&o->ch);
    out_gauge(t, o);
    size_t len = buf->len;
    int rc = weir_dataplane_send(t->dp, buf);
    if (rc < 0) {
        weir__task_fail(t, "sending a buffer on edge %u to subtask %u failed: %s", o->ch.key.edge,
                        o->ch.key.dst, weir_strerror(rc));
        return;
    }
    if (o->local) {
        weir__task_ctr_add(&t->m.buffers_out_local, 1);
        weir__task_ctr_add(&t->m.bytes_out_local, len);
    } else {
        weir__task_ctr_add(&t->m.buffers_out_remote, 1);
        weir__task_ctr_add(&t->m.bytes_out_remote, len);
    }
}

bool weir__task_write_event(weir_task_t *t, const weir_task_barrier_t *b) {
    int64_t now = weir_now_ns();
    for (uint32_t i = 0; i < t->n_outs && !t->stop; i++) {
        weir_task_out_t *o = &t->outs[i];
        while (!b ? !weir_outchan_write_end(&o->ch, now)
                  : !weir_outchan_write_barrier(&o->ch, b->id, b->ts, (uint8_t)b->kind, b->target,
                                                b->target_len, now)) {
            if (!weir_outchan_has_data(&o->ch)) {
                if (!b)
                    weir__task_fail(t, "cannot write end of input on edge %u", o->ch.key.edge);
                else
                    weir__task_fail(t, "cannot write barrier %" PRIu64 " on edge %u", b->id,
                                    o->ch.key.edge);
                return false;
            }
            weir__task_send_out(t, o);
            if (t->stop)
                return false;
        }
    }
    for (uint32_t i = 0; i < t->n_outs && !t->stop; i++)
        if (weir_outchan_has_data(&t->outs[i].ch))
            weir__task_send_out(t, &t->outs[i]);
    return true;
}

/* Writes a watermark (@p status false) or a status into every output channel, sending full
 * buffers as credits allow. */
static void write_wm(weir_task_t *t, bool status, bool idle, int64_t wm) {
    int64_t now = weir_now_ns();
    for (uint32_t i = 0; i < t->n_outs && !t->stop; i++) {
        weir_task_out_t *o = &t->outs[i];
        while (status ? !weir_outchan_write_status(&o->ch, idle, now)
                      : !weir_outchan_write_watermark(&o->ch, wm, now)) {
            weir__task_send_out(t, o); /* a full buffer: an empty one always fits */
            if (t->stop)
                return;
        }
    }
}

void weir__task_wm_forward(weir_task_t *t, unsigned flags, int64_t wm, bool idle) {
    /* active before the new watermark; idle after it (a watermark marks its channel active) */
    if ((flags & WEIR_WM_STATUS) && !idle) {
        t->wm_idle = false;
        write_wm(t, true, false, 0);
    }
    if (flags & WEIR_WM_ADVANCED && wm > t->wm) {
        t->wm = wm;
        atomic_store_explicit(&t->wm_pub, wm, memory_order_relaxed);
        if (t->has_timers) /* due event-time timers fire before the watermark goes on */
            weir__task_timers_event(t, wm);
        write_wm(t, false, false, wm);
    }
    if ((flags & WEIR_WM_STATUS) && idle) {
        t->wm_idle = true;
        write_wm(t, true, true, 0);
    }
}

void weir__task_wm_poll(weir_task_t *t, int64_t now_ns) {
    t->wm_next_ns = now_ns + t->wm_interval_ns;
    unsigned f = weir_wm_gen_poll(t->wmgen, now_ns);
    if (f)
        weir__task_wm_forward(t, f, t->wmgen->o.out, t->wmgen->o.idle);
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
            weir__task_send_out(t, o);
        } else {
            int64_t due = o->ch.first_write_ns + t->buffer_timeout_ns;
            if (due < next)
                next = due;
        }
    }
    return next;
}

/* ---------------------------------------------------------------------------------------- */
/* Input: buffers and the channels' deferred queues                                         */
/* ---------------------------------------------------------------------------------------- */

static void clear_zones(weir_task_t *t) {
    for (uint32_t i = 0; i < t->n_ops; i++) {
        weir_ctx_t *c = &t->ctxs[i];
        if (c->zone_used) {
            msgpack_zone_clear(&c->zone);
            c->zone_used = false;
        }
    }
}

/* The deferred buffers of every channel count in the in_queued gauge (t->m.in_held). */
static void dq_push(weir_task_t *t, weir_task_in_t *in, weir_netbuf_t *buf, size_t off) {
    weir__task_ctr_add(&t->m.in_held, 1);
    if (in->dq_len == in->dq_cap)
        weir_ring_grow((void **)&in->dq, sizeof *in->dq, &in->dq_head, in->dq_len, &in->dq_cap, 4);
    in->dq[(in->dq_head + in->dq_len) % in->dq_cap] = (weir_defbuf_t){buf, off};
    in->dq_len++;
}

static void dq_pop(weir_task_t *t, weir_task_in_t *in) {
    weir__task_ctr_add(&t->m.in_held, (uint64_t)-1);
    in->dq_head = (in->dq_head + 1) % in->dq_cap;
    in->dq_len--;
}

/* Processes the entries of @p d from d->off on. @returns true when the buffer is done with
 * (consumed and freed; its credit granted unless blocked or stopping), false when processing
 * stopped right after a barrier that blocked the channel: d->off then points behind it. */
/* Copies the state backend's cache counters (plain fields of the task thread) into the atomics
 * other threads read (weir_task_get_metrics). */
static void publish_state_stats(weir_task_t *t) {
    if (!t->sb)
        return;
    weir_state_stats_t st;
    weir_state_get_stats(t->sb, &st);
    atomic_store_explicit(&t->m.state_cache_hits, st.cache_hits, memory_order_relaxed);
    atomic_store_explicit(&t->m.state_cache_misses, st.cache_misses, memory_order_relaxed);
}

static bool process_buffer(weir_task_t *t, uint32_t idx, weir_defbuf_t *d) {
    weir_task_in_t *in = &t->ins[idx];
    weir_netbuf_t *buf = d->buf;
    t->now_ns = weir_now_ns();
    clear_zones(t);

    weir_bufreader_t r;
    weir_bufreader_init(&r, buf->data + d->off, buf->len - d->off);
    weir_ctx_t *head = &t->ctxs[0];
    head->in_idx = in->input; /* a two-input head dispatches on it (operators.c) */
    weir__task_prefetch(head, buf->data + d->off, buf->len - d->off);
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
            weir__task_deliver(head, &ev.record);
            if (UNLIKELY(t->stop))
                break;
        } else if (ev.kind == WEIR_EV_WATERMARK) {
            unsigned f = weir_wm_valve_watermark(&t->valve, idx, ev.timestamp);
            if (f)
                weir__task_wm_forward(t, f, t->valve.o.out, t->valve.o.idle);
        } else if (ev.kind == WEIR_EV_STATUS) {
            unsigned f = weir_wm_valve_status(&t->valve, idx, ev.idle);
            if (f)
                weir__task_wm_forward(t, f, t->valve.o.out, t->valve.o.idle);
        } else if (ev.kind == WEIR_EV_END) {
            unsigned f = weir_wm_valve_end(&t->valve, idx);
            if (f)
                weir__task_wm_forward(t, f, t->valve.o.out, t->valve.o.idle);
            weir__task_on_end(t, idx);
        } else if (ev.kind == WEIR_EV_BARRIER) {
            weir_task_barrier_t b = {.id = ev.checkpoint_id,
                                     .ts = ev.timestamp,
                                     .kind = (weir_ck_kind_t)ev.ck_kind,
                                     .target = ev.target,
                                     .target_len = ev.target_len};
            weir__task_on_barrier(t, idx, &b);
            if (t->stop)
                break;
            if (in->ch.blocked) {
                d->off = (size_t)(r.pos - buf->data);
                blocked = true;
                break;
            }
        }
    }
    weir__task_ctr_add(&t->m.records_in, n);
    weir__task_ctr_add(&head->records_in, n);
    publish_state_stats(t);
    if (blocked && !t->stop)
        return false;
    uint32_t credits = weir_inchan_consumed_batched(&in->ch);
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
        weir__task_ctr_add(&t->m.buffers_in_remote, 1);
        weir__task_ctr_add(&t->m.bytes_in_remote, buf->len);
    } else {
        weir__task_ctr_add(&t->m.buffers_in_local, 1);
        weir__task_ctr_add(&t->m.bytes_in_local, buf->len);
    }
    if (in->ch.blocked || in->dq_len) { /* behind a barrier, or behind data that is */
        dq_push(t, in, buf, 0);
        return;
    }
    weir_defbuf_t d = {buf, 0};
    if (!process_buffer(t, msg->index, &d))
        dq_push(t, in, d.buf, d.off);
}

/* Processes one deferred buffer of an unblocked channel. @returns true when there was one. */
static bool drain_deferred(weir_task_t *t) {
    for (uint32_t i = 0; i < t->n_ins && !t->stop; i++) {
        weir_task_in_t *in = &t->ins[i];
        if (in->ch.blocked || !in->dq_len)
            continue;
        weir_defbuf_t d = in->dq[in->dq_head];
        if (process_buffer(t, i, &d))
            dq_pop(t, in);
        else
            in->dq[in->dq_head].off = d.off;
        return true;
    }
    return false;
}

/* ---------------------------------------------------------------------------------------- */
/* Mailbox loop                                                                             */
/* ---------------------------------------------------------------------------------------- */

static void handle_msg(weir_task_t *t, weir_mbmsg_t *msg) {
    switch (msg->type) {
    case WEIR_MB_BUFFER:
        on_buffer(t, msg);
        break;
    case WEIR_MB_CREDIT:
        out_credit(t, msg->index, msg->n);
        break;
    case WEIR_MB_CANCEL:
        t->canceled = true;
        t->stop = true;
        break;
    case WEIR_MB_CALL:
        if (msg->fn)
            msg->fn(msg->arg);
        break;
    case WEIR_MB_TRIGGER: {
        const char *target = msg->arg;
        size_t len = target ? strlen(target) : 0;
        weir_task_barrier_t b = {.id = msg->id, .ts = msg->ts, .kind = (weir_ck_kind_t)msg->n};
        if (len <= WEIR_BARRIER_TARGET_MAX) { /* else: no target, the savepoint is declined */
            b.target = len ? target : NULL;
            b.target_len = (uint16_t)len;
        }
        weir__task_on_trigger(t, &b);
        free(msg->arg);
        break;
    }
    case WEIR_MB_NOTIFY:
        weir__task_on_notify(t, msg->id, msg->flag);
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

/* Gets the next message: deferred ones first. Waiting (@p deadline not 0, and the mailbox
 * empty) is idle time; a message already queued is taken without reading the clock. */
static int next_msg(weir_task_t *t, weir_mbmsg_t *msg, int64_t deadline) {
    if (def_pop(t, msg))
        return 1;
    int rc = weir_mailbox_pop(t->mb, msg, 0);
    if (rc > 0 || deadline == 0)
        return rc;
    weir__task_clock_wait(t, WEIR_WAIT_IDLE, weir_now_ns());
    rc = weir_mailbox_pop(t->mb, msg, deadline);
    weir__task_clock_wait(t, WEIR_WAIT_NONE, weir_now_ns());
    return rc;
}

static int64_t to_deadline(int64_t next_flush) {
    if (next_flush == INT64_MAX)
        return -1;
    return next_flush > 0 ? next_flush : 1;
}

/* Suspended source (it snapshotted a stop-with-savepoint): run() is not called again; the
 * mailbox is served (credits, notify, cancel) until the stop's final notify or a cancel. */
static void serve_suspended(weir_task_t *t) {
    weir_mbmsg_t msg;
    while (!t->stop && !t->final_notified) {
        int64_t next_flush = flush_due(t, weir_now_ns());
        if (next_msg(t, &msg, to_deadline(next_flush)) > 0)
            handle_msg(t, &msg);
    }
}

/* Runs a source until it ends. @returns true when it ended normally (not when stopped by a
 * stop-with-savepoint, canceled or failed). */
static bool run_source(weir_task_t *t) {
    weir_operator_t *head = &t->ops[0];
    weir_ctx_t *hc = &t->ctxs[0];
    weir_mbmsg_t msg;
    while (!t->stop) {
        if (t->suspended) {
            serve_suspended(t);
            return false;
        }
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
        if (t->wmgen && weir_now_ns() >= t->wm_next_ns)
            weir__task_wm_poll(t, weir_now_ns());
        /* control messages, without waiting */
        while (!t->stop && next_msg(t, &msg, 0) > 0)
            handle_msg(t, &msg);
        int64_t now = weir_now_ns();
        int64_t next_flush = weir__task_timers_due(t, flush_due(t, now));
        while (wake > now && !t->stop && !t->suspended) {
            int64_t dl = wake < next_flush ? wake : next_flush;
            if (t->wmgen && t->wm_next_ns < dl)
                dl = t->wm_next_ns;
            if (next_msg(t, &msg, dl > 0 ? dl : 1) > 0)
                handle_msg(t, &msg);
            now = weir_now_ns();
            if (t->wmgen && now >= t->wm_next_ns)
                weir__task_wm_poll(t, now);
            next_flush = weir__task_timers_due(t, flush_due(t, now));
        }
    }
    return false;
}

/* Consumes the input gate until every channel ended. @returns true when it did; false when
 * stopped, or when the final notify of a stop-with-savepoint it snapshotted arrived first. */
static bool run_inputs(weir_task_t *t) {
    int64_t next_flush = weir__task_timers_due(t, INT64_MAX);
    weir_mbmsg_t msg;
    while (!t->stop && t->n_ended < t->n_ins && !t->final_notified) {
        if (drain_deferred(t)) {
            next_flush = flush_due(t, weir_now_ns());
            continue;
        }
        if (next_msg(t, &msg, to_deadline(next_flush)) > 0)
            handle_msg(t, &msg);
        if (t->stop)
            break;
        next_flush = weir__task_timers_due(t, flush_due(t, weir_now_ns()));
    }
    return !t->stop && !t->final_notified;
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

/* End of input: end_input head to tail; the user close (FINISHED, tail to head); with
 * checkpointing on the final snapshot (before END,
 * so downstream's final snapshot follows ours); END on every output, flush everything; with
 * checkpointing on, wait for the final notify. */
static void finish(weir_task_t *t) {
    if (t->is_source) /* the final watermark (Flink's MAX_WATERMARK), with or without a strategy */
        weir__task_wm_forward(t, WEIR_WM_ADVANCED | (t->wm_idle ? WEIR_WM_STATUS : 0), INT64_MAX,
                              false);
    for (uint32_t i = 0; i < t->n_ops && !t->stop; i++) {
        t->now_ns = weir_now_ns();
        clear_zones(t);
        if (t->ops[i].vt->end_input)
            t->ops[i].vt->end_input(&t->ops[i], &t->ctxs[i]);
    }
    if (!t->stop) /* user close before the final snapshot: what it flushes is in it */
        weir__task_lc_close(t, WEIR_CLOSE_FINISHED);
    bool ck = t->ck_mode != WEIR_CHECKPOINT_NONE;
    if (ck && !t->stop)
        weir__task_final_snapshot(t);
    if (!weir__task_write_event(t, NULL))
        return;
    if (ck && !t->stop)
        wait_final_notify(t);
}

static void set_state(weir_task_t *t, weir_task_state_t s, const char *message) {
    if (s != WEIR_TASK_RUNNING) { /* final: the thread's wall time ends (busy/idle/bp) */
        int64_t now = weir_now_ns();
        atomic_store_explicit(&t->clk.end_ns, now, memory_order_relaxed);
        weir__task_clock_wait(t, WEIR_WAIT_NONE, now); /* publishes end_ns too */
    }
    atomic_store_explicit(&t->state, (int)s, memory_order_release);
    if (t->on_state)
        t->on_state(t->cb_arg, t, s, message);
}

void *weir__task_main(void *arg) {
    weir_task_t *t = arg;
    weir_thread_name("weir-task-%u.%u", t->vertex, t->subtask); /* vertex.subtask */
    weir_log_set_task(t->job_id, t->attempt, t->graph->vertices[t->vertex].name, t->subtask,
                      t->graph->vertices[t->vertex].parallelism); /* H-tm: log identity */
    weir_dataplane_sched_batch(); /* hand-offs without wake-up preemption */

    if (t->n_decls)
        weir__task_open_state(t);
    if (t->n_decls && !t->stop)
        weir__task_timers_open(t);
    if (t->restore_id && !t->stop)
        weir__task_restore_operators(t);
    for (uint32_t i = 0; i < t->n_ops && !t->stop; i++) {
        int rc = t->ops[i].vt->open ? t->ops[i].vt->open(&t->ops[i], &t->ctxs[i]) : 0;
        if (rc < 0 && !t->failed)
            weir__task_fail(t, "%s: open failed: %s", t->ops[i].node->name, weir_strerror(rc));
        if (!t->stop)
            weir__task_lc_open(t, i); /* the user open (lifecycle.c) */
    }
    bool ended = false;
    if (!t->stop) {
        set_state(t, WEIR_TASK_RUNNING, NULL);
        if (t->wmgen) { /* splits: registered by the source's open(), or by a first record */
            int64_t now = weir_now_ns();
            t->wm_next_ns = now + t->wm_interval_ns;
            /* restored: never below the checkpoint's watermark, idle if it was */
            if (t->wmgen->o.out > t->wm)
                weir__task_wm_forward(t, WEIR_WM_ADVANCED, t->wmgen->o.out, false);
            if (t->wmgen->o.idle)
                weir__task_wm_forward(t, WEIR_WM_STATUS, t->wm, true);
        }
        ended = t->is_source ? run_source(t) : run_inputs(t);
    }
    if (ended && !t->stop)
        finish(t);

    /* user close of what finish() did not close: this subtask failed, or it was canceled or
     * stopped by a stop-with-savepoint (lifecycle.c; never twice) */
    weir__task_lc_close(t, t->failed ? WEIR_CLOSE_FAILED : WEIR_CLOSE_CANCELED);
    /* teardown: nothing is pushed into the mailbox after close_mailbox (but the uploader) */
    weir_dataplane_close_mailbox(t->dp, t->mb);
    weir__task_uploader_stop(t, t->stop); /* in-flight uploads end before the backend closes */
    weir__task_timers_close(t);
    for (uint32_t i = 0; i < t->n_ops; i++) {
        if (t->op_created[i] && t->ops[i].vt->close)
            t->ops[i].vt->close(&t->ops[i]);
        t->op_created[i] = false;
    }
    weir_state_close(&t->sb, true);
    weir__task_remove_state_dir(t);

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
