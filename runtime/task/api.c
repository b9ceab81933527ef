/* The runtime half of the public API (include/weir/weir.h) for code running inside a chain:
 * emitting (weir_emit, weir_packer, weir_emit_packed, and to side outputs weir_emit_to,
 * weir_emit_packed_to: routed by tag) together with the per-record half of the
 * output writer (key selectors, partitioning, writing a record into output channel buffers),
 * weir_unpack, the context getters (weir_subtask_index, weir_parallelism, weir_current_key,
 * weir_ctx_killpoint, weir_ctx_job_id, weir_ctx_attempt), the connectors' metrics
 * (weir_ctx_kafka_lag, weir_ctx_kafka_txn), the keyed-state accessors (weir_value_*,
 * weir_list_*, weir_mapstate_*, weir_reducing_*), the state prefetch of an input buffer's keys
 * (weir__task_prefetch) and failing (weir_fail, weir__task_fail).
 *
 * Invariants:
 *  - Records pass down the chain by pointer (weir_emit -> weir__task_deliver -> the next
 *    operator's process) and are never encoded inside a chain; only the tail's emit copies them
 *    into output buffers. The per-record path does no allocation, no lock and no syscall: it
 *    reads task->now_ns, which loop.c refreshes once per input buffer / source batch.
 *  - The whole per-record path from weir_emit to the channel buffer is in this file or inline in
 *    task_int.h, so it stays inlinable; only a full buffer leaves it (weir__task_send_out, which
 *    waits for a credit: a buffer is sent only with a credit in hand).
 *  - weir_packer / weir_emit_packed reuse ctx->sbuf; weir_unpack allocates in ctx->zone, which
 *    loop.c clears at the start of every input buffer and source batch: nothing is allocated per
 *    record once the scratch buffers have grown.
 *  - The first failure wins (one line, newlines replaced); it sets stop, after which every emit
 *    is a no-op and the loop exits. A key longer than WEIR_MAX_KEY_LEN (emitted, or returned by a
 *    key selector) fails the task.
 *  - A keyed-state accessor maps the node's state id to its column ctx->state_base + id and
 *    returns WEIR_EINVAL for an id the node did not declare (or without a backend).
 *  - While on_timer of an event-time timer runs (ctx->timer_ev, timers.c), weir_emit stamps the
 *    timer's timestamp on every record the operator emits.
 *
 * Threading: the task thread only (operators and user functions run on it). */
#include <stdarg.h>
#include <stdio.h>

#include "common/err.h"
#include "common/killpoint.h"
#include "common/util.h"
#include "runtime/dataplane/record.h"
#include "runtime/task/task_int.h"

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
/* Emit: the chain push and the per-record half of the output writer                        */
/* ---------------------------------------------------------------------------------------- */

/* Writes @p rec into the buffer of output channel @p o; a full buffer is sent first (waiting for
 * a credit). */
static inline void out_write(weir_task_t *t, weir_task_out_t *o, const weir_record_t *rec) {
    while (UNLIKELY(!weir_outchan_write_record(&o->ch, rec, t->now_ns))) {
        if (!weir_outchan_has_data(&o->ch)) {
            weir__task_fail(t, "a record of %zu bytes does not fit an output buffer",
                            weir_record_encoded_size(rec));
            return;
        }
        weir__task_send_out(t, o);
        if (t->stop)
            return;
    }
    weir__task_ctr_add(&t->m.records_out, 1);
}

/* The output writer's half of an emit to output @p tag (0 = main, else a side output) of chain
 * position @p pos (the tail, or a node with side outputs inside the chain): partition and write
 * to every out-edge leaving that position with that tag. */
static void task_output(weir_task_t *t, uint32_t pos, uint32_t tag, const weir_record_t *rec) {
    if (UNLIKELY(rec->key_len > WEIR_MAX_KEY_LEN)) {
        weir__task_fail(t, "%s: emitted a key of %u bytes (at most %u)", t->ops[pos].node->name,
                        rec->key_len, WEIR_MAX_KEY_LEN);
        return;
    }
    for (uint32_t e = 0; e < t->n_oedges; e++) {
        weir_task_oedge_t *oe = &t->oedges[e];
        if (oe->tag != tag || oe->pos != pos)
            continue; /* another output (sideout: tags per edge) */
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

/* Emits @p rec to output @p tag (0 = main) of the operator at @p ctx: the next chain position
 * gets it when it reads that output, and the out-edges leaving this position with that tag (the
 * tail's, or a node's with side outputs inside the chain); an output nobody consumes drops it. */
static inline void emit_tagged(weir_ctx_t *ctx, uint32_t tag, const weir_record_t *rec) {
    weir_task_t *t = ctx->task;
    if (UNLIKELY(t->stop || ctx->lc_busy)) {
        if (!t->stop)
            weir__task_lc_emit_refused(ctx);
        return;
    }
    weir__task_ctr_add(&ctx->records_out, 1);
    if (t->wmgen && ctx->pos == 0) { /* a source's record: its split's max timestamp */
        weir_wm_gen_record(t->wmgen, t->wm_split, rec->timestamp, t->now_ns);
        if (UNLIKELY(t->wm_idle)) /* active again before the record goes out */
            weir__task_wm_poll(t, t->now_ns);
    }
    weir_record_t stamped;
    if (UNLIKELY(ctx->timer_ev)) { /* on_timer of an event-time timer: its timestamp */
        stamped = *rec;
        stamped.timestamp = ctx->timer_ts;
        rec = &stamped;
    }
    if (ctx->next && LIKELY(ctx->next_tag == tag)) {
        weir__task_ctr_add(&ctx->next->records_in, 1);
        weir__task_deliver(ctx->next, rec);
        if (LIKELY(!ctx->has_out) || t->stop)
            return;
    }
    if (ctx->has_out)
        task_output(t, ctx->pos, tag, rec);
}

void weir_emit(weir_ctx_t *ctx, const weir_record_t *rec) {
    emit_tagged(ctx, 0, rec);
}

void weir_emit_to(weir_ctx_t *ctx, int tag, const weir_record_t *rec) {
    const weir_node_t *n = ctx->op->node;
    if (UNLIKELY(tag < 1 || (uint32_t)tag > n->n_side)) {
        if (!ctx->task->stop)
            weir_fail(ctx,
                      "weir_emit_to: side output tag %d is not declared (the operator declares "
                      "%u): use a tag returned by weir_side_output_tag",
                      tag, n->n_side);
        return;
    }
    emit_tagged(ctx, (uint32_t)tag, rec);
}

msgpack_packer *weir_packer(weir_ctx_t *ctx) {
    ctx->sbuf.size = 0;
    return &ctx->pk;
}

void weir_emit_packed(weir_ctx_t *ctx, int64_t timestamp, const void *key, uint32_t key_len) {
    weir_record_t rec = {timestamp, key, key_len, ctx->sbuf.data, (uint32_t)ctx->sbuf.size};
    weir_emit(ctx, &rec);
}

void weir_emit_packed_to(weir_ctx_t *ctx, int tag, int64_t timestamp, const void *key,
                         uint32_t key_len) {
    weir_record_t rec = {timestamp, key, key_len, ctx->sbuf.data, (uint32_t)ctx->sbuf.size};
    weir_emit_to(ctx, tag, &rec);
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

/* ---------------------------------------------------------------------------------------- */
/* Context                                                                                  */
/* ---------------------------------------------------------------------------------------- */

uint32_t weir_subtask_index(const weir_ctx_t *ctx) {
    return ctx->task->subtask;
}

int64_t weir_current_watermark(const weir_ctx_t *ctx) {
    return ctx->task->wm;
}

bool weir_source_has_watermarks(const weir_ctx_t *ctx) {
    return ctx->task->wmgen != NULL;
}

void weir_source_split_add(weir_ctx_t *ctx, uint32_t split, int64_t max_ts) {
    weir_task_t *t = ctx->task;
    if (t->wmgen)
        weir_wm_gen_split(t->wmgen, split, max_ts, weir_now_ns());
}

void weir_source_split(weir_ctx_t *ctx, uint32_t split) {
    ctx->task->wm_split = split;
}

void weir_source_split_done(weir_ctx_t *ctx, uint32_t split) {
    weir_task_t *t = ctx->task;
    if (t->wmgen)
        weir_wm_gen_remove(t->wmgen, split);
}

int64_t weir_source_split_max(const weir_ctx_t *ctx, uint32_t split) {
    const weir_task_t *t = ctx->task;
    return t->wmgen && split < t->wmgen->n ? t->wmgen->splits[split].wm : INT64_MIN;
}

int64_t weir_source_watermark(const weir_ctx_t *ctx) {
    const weir_task_t *t = ctx->task;
    return t->wmgen ? t->wmgen->o.out : INT64_MIN;
}

bool weir_source_idle(const weir_ctx_t *ctx) {
    const weir_task_t *t = ctx->task;
    return t->wmgen && t->wmgen->o.idle;
}

void weir_source_watermark_floor(weir_ctx_t *ctx, int64_t wm, bool idle) {
    weir_task_t *t = ctx->task;
    if (!t->wmgen)
        return;
    if (wm > t->wmgen->o.out)
        t->wmgen->o.out = wm;
    if (idle) {
        t->wmgen->o.idle = true;
        for (uint32_t i = 0; i < t->wmgen->n; i++)
            t->wmgen->splits[i].idle = true;
    }
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

void weir_ctx_killpoint(weir_ctx_t *ctx, const char *point) {
    if (ctx && ctx->task)
        weir_killpoint_hit(ctx->task->kp, point);
}

const char *weir_ctx_job_id(const weir_ctx_t *ctx) {
    return ctx->task->job_id;
}

uint32_t weir_ctx_attempt(const weir_ctx_t *ctx) {
    return ctx->task->attempt;
}

bool weir_ctx_lease_valid(const weir_ctx_t *ctx, int64_t *silent_ms) {
    const weir_task_t *t = ctx->task;
    if (!t || !t->lease_from_ns) {
        *silent_ms = 0;
        return true;
    }
    int64_t from = atomic_load_explicit(t->lease_from_ns, memory_order_relaxed);
    int64_t silent = from ? weir_now_ns() - from : INT64_MAX;
    *silent_ms = from ? silent / 1000000 : -1;
    return silent < t->lease_ns;
}

void weir_ctx_kafka_lag(weir_ctx_t *ctx, int64_t lag) {
    if (ctx && ctx->task)
        atomic_store_explicit(&ctx->task->m.kafka_lag, lag < 0 ? -1 : lag, memory_order_relaxed);
}

void weir_ctx_kafka_txn(weir_ctx_t *ctx, bool committed) {
    if (ctx && ctx->task)
        weir__task_ctr_add(
            committed ? &ctx->task->m.kafka_tx_committed : &ctx->task->m.kafka_tx_aborted, 1);
}

/* ---------------------------------------------------------------------------------------- */
/* Keyed state: forwards to the backend with the node's column offset                       */
/* ---------------------------------------------------------------------------------------- */

#define STATE_COL(ctx, st)                                                                         \
    if (UNLIKELY(!(ctx)->sb || (st) < 0 || (uint32_t)(st) >= (ctx)->n_states))                     \
        return WEIR_EINVAL;                                                                        \
    uint32_t col = (ctx)->state_base + (uint32_t)(st)

void weir__task_prefetch(weir_ctx_t *head, const uint8_t *data, size_t len) {
    if (!head->keyed || !head->sb)
        return;
    const weir_state_decl_t *d = head->task->decls + head->state_base;
    bool cached = false; /* value and reducing states go through the cache */
    for (uint32_t i = 0; i < head->n_states; i++)
        cached |= d[i].kind == WEIR_STATE_VALUE || d[i].kind == WEIR_STATE_REDUCING;
    if (!cached)
        return;
    weir_bufreader_t r;
    weir_bufreader_init(&r, data, len);
    weir_event_t ev;
    while (weir_bufreader_next(&r, &ev) > 0)
        if (ev.kind == WEIR_EV_RECORD &&
            weir_state_prefetch_key(head->sb, ev.record.key, ev.record.key_len) != 0)
            return;
    (void)weir_state_prefetch(head->sb, head->state_base, head->n_states);
}

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
