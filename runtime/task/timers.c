/* The runtime of keyed timers (include/weir/weir.h "Timers"): opening each timer-holding
 * operator's timer store (state/timers.h) once the backend is open or restored, the user API
 * (weir_timer_register_* / delete_*, weir_current_processing_time), firing event-time timers
 * when the chain's watermark advances (weir__task_wm_forward calls weir__task_timers_event
 * before the watermark goes downstream) and processing-time timers from the loop
 * (weir__task_timers_due, which also gives the loop its next wake-up).
 *
 * Invariants:
 *  - ctx->timers is non-NULL exactly for operators whose node has timers, from
 *    weir__task_timers_open until weir__task_timers_close (before the backend closes);
 *  - while on_timer of an event-time timer runs, ctx->timer_ev is set and weir_emit stamps the
 *    timer's timestamp on every record the operator emits;
 *  - a timer is removed from the store before its callback runs, so a failure in the callback
 *    never fires it twice within an attempt (a restore from an older checkpoint fires it again:
 *    exactly-once of its effects comes from the checkpoint, as for records).
 * Threading: the task thread only. */
#include <string.h>

#include "common/err.h"
#include "common/util.h"
#include "runtime/task/task_int.h"
#include "state/timers.h"

void weir__task_timers_open(weir_task_t *t) {
    for (uint32_t i = 0; i < t->n_ops && !t->stop; i++) {
        weir_ctx_t *c = &t->ctxs[i];
        const weir_node_t *n = c->op->node;
        if (!n->timers || !c->sb)
            continue;
        uint32_t st = 0;
        while (st < n->n_states && strcmp(n->states[st].name, WEIR_TIMERS_STATE) != 0)
            st++;
        if (st == n->n_states) {
            weir__task_fail(t, "%s: timers without the state '%s'", n->name, WEIR_TIMERS_STATE);
            return;
        }
        char err[256];
        c->timers = weir_timers_open(c->sb, c->state_base + st, err, sizeof err);
        if (!c->timers) {
            weir__task_fail(t, "%s: %s", n->name, err);
            return;
        }
        t->has_timers = true;
    }
}

void weir__task_timers_close(weir_task_t *t) {
    for (uint32_t i = 0; i < t->n_ops; i++)
        weir_timers_free(&t->ctxs[i].timers);
    t->has_timers = false;
}

/* Fires every timer of @p c's @p dom due at @p upto (timers registered meanwhile included). */
static void fire_due(weir_ctx_t *c, int dom, int64_t upto) {
    weir_task_t *t = c->task;
    const weir_node_t *n = c->op->node;
    while (!t->stop) {
        int64_t ts;
        const void *key;
        uint32_t len;
        int rc = weir_timers_pop(c->timers, dom, upto, &ts, &key, &len);
        if (rc == 0)
            return;
        if (rc < 0) {
            weir__task_fail(t, "%s: removing a fired timer: %s", n->name, weir_strerror(rc));
            return;
        }
        c->key = key;
        c->key_len = len;
        weir_state_set_key(c->sb, key, len);
        c->timer_ev = dom == WEIR_TIMER_EVENT;
        c->timer_ts = ts;
        if (n->on_timer)
            n->on_timer(c, ts, dom == WEIR_TIMER_EVENT ? WEIR_EVENT_TIME : WEIR_PROCESSING_TIME,
                        n->udata);
        c->timer_ev = false;
        c->key = NULL; /* the popped key is freed by the next pop */
        c->key_len = 0;
    }
}

void weir__task_timers_event(weir_task_t *t, int64_t wm) {
    for (uint32_t i = 0; i < t->n_ops && !t->stop; i++) {
        weir_ctx_t *c = &t->ctxs[i];
        if (c->timers && weir_timers_peek(c->timers, WEIR_TIMER_EVENT) <= wm)
            fire_due(c, WEIR_TIMER_EVENT, wm);
    }
}

int64_t weir__task_timers_due(weir_task_t *t, int64_t next_ns) {
    if (!t->has_timers)
        return next_ns;
    int64_t now_ms = weir_wall_ms();
    for (uint32_t i = 0; i < t->n_ops && !t->stop; i++) {
        weir_ctx_t *c = &t->ctxs[i];
        if (!c->timers)
            continue;
        if (weir_timers_peek(c->timers, WEIR_TIMER_PROC) <= now_ms) {
            t->now_ns = weir_now_ns();
            fire_due(c, WEIR_TIMER_PROC, now_ms);
        }
        int64_t e = weir_timers_peek(c->timers, WEIR_TIMER_PROC);
        if (e != INT64_MAX) {
            int64_t ms = e - now_ms; /* > 0; capped at a day: the loop just looks again */
            int64_t d = weir_now_ns() + (ms < 86400000 ? ms : 86400000) * 1000000;
            if (d < next_ns)
                next_ns = d;
        }
    }
    return next_ns;
}

/* ---------------------------------------------------------------------------------------- */
/* API                                                                                      */
/* ---------------------------------------------------------------------------------------- */

static int timer_op(weir_ctx_t *ctx, int dom, int64_t ts, bool reg) {
    if (!ctx || !ctx->timers || !ctx->key)
        return WEIR_EINVAL;
    int rc = reg ? weir_timers_register(ctx->timers, dom, ctx->key, ctx->key_len, ts)
                 : weir_timers_delete(ctx->timers, dom, ctx->key, ctx->key_len, ts);
    return rc; /* the loop recomputes its wake-up after every message it handles */
}

int weir_timer_register_event_time(weir_ctx_t *ctx, int64_t timestamp) {
    return timer_op(ctx, WEIR_TIMER_EVENT, timestamp, true);
}

int weir_timer_register_processing_time(weir_ctx_t *ctx, int64_t timestamp) {
    return timer_op(ctx, WEIR_TIMER_PROC, timestamp, true);
}

int weir_timer_delete_event_time(weir_ctx_t *ctx, int64_t timestamp) {
    return timer_op(ctx, WEIR_TIMER_EVENT, timestamp, false);
}

int weir_timer_delete_processing_time(weir_ctx_t *ctx, int64_t timestamp) {
    return timer_op(ctx, WEIR_TIMER_PROC, timestamp, false);
}

int64_t weir_current_processing_time(const weir_ctx_t *ctx) {
    (void)ctx;
    return weir_wall_ms();
}
