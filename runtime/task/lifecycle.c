/* The function lifecycle of a subtask attempt (include/weir/weir.h, "Function lifecycle"): the
 * user open/close callbacks that weir_set_lifecycle put on a node, the calls that loop.c makes at
 * chain setup and teardown, and the context getters that go with them (weir_job_args,
 * weir_attempt_number).
 *
 * Invariants:
 *  - Operator i's user open runs once, after its built-in open (operators.c / the connector) and
 *    after the state restore, in chain order from the head; the chain stops at the first failure.
 *    ctx->lc_opened is set when the opening reaches the operator (before its open is called), so
 *    the operator whose open failed is closed too.
 *  - weir__task_lc_close closes every operator with lc_opened from the tail to the head and
 *    clears lc_opened first: close is never called twice, whoever calls (finish at end of input
 *    with FINISHED, the teardown with FAILED or CANCELED).
 *  - During open and close ctx->lc_busy is set: weir_emit fails the subtask instead of emitting
 *    (the downstream operator is not open yet / already closed), and ctx->sb is NULL, so every
 *    keyed-state call returns WEIR_EINVAL (there is no current key).
 *
 * Threading: the task thread only. */
#include "common/err.h"
#include "runtime/task/task_int.h"

/* Calls @p fn with the lifecycle guard of @p c set (no emit, no keyed state). */
static int call_open(weir_ctx_t *c, weir_open_fn fn) {
    weir_state_backend_t *sb = c->sb;
    c->sb = NULL;
    c->lc_busy = true;
    int rc = fn(c, c->op->node->udata);
    c->lc_busy = false;
    c->sb = sb;
    return rc;
}

static void call_close(weir_ctx_t *c, weir_close_fn fn, weir_close_reason_t why) {
    weir_state_backend_t *sb = c->sb;
    c->sb = NULL;
    c->lc_busy = true;
    fn(c, why, c->op->node->udata);
    c->lc_busy = false;
    c->sb = sb;
}

void weir__task_lc_open(weir_task_t *t, uint32_t i) {
    weir_ctx_t *c = &t->ctxs[i];
    const weir_node_t *n = c->op->node;
    c->lc_opened = true;
    if (!n->open_fn)
        return;
    int rc = call_open(c, n->open_fn);
    if (rc != 0 && !t->failed)
        weir__task_fail(t, "%s: open failed (returned %d)", n->name, rc);
}

void weir__task_lc_close(weir_task_t *t, weir_close_reason_t why) {
    for (uint32_t i = t->n_ops; i-- > 0;) {
        weir_ctx_t *c = &t->ctxs[i];
        if (!c->lc_opened)
            continue;
        c->lc_opened = false;
        if (c->op->node->close_fn)
            call_close(c, c->op->node->close_fn, why);
    }
}

void weir__task_lc_emit_refused(weir_ctx_t *ctx) {
    weir_fail(ctx, "weir_emit in open or close: emit from the operator's function, not from its "
                   "lifecycle callbacks");
}

const char *const *weir_job_args(const weir_ctx_t *ctx, int *argc) {
    static const char *const none[1] = {NULL};
    const weir_job_t *g = ctx->task->graph;
    if (!g || g->argc < 2 || !g->argv) {
        if (argc)
            *argc = 0;
        return none;
    }
    if (argc)
        *argc = g->argc - 1;
    return (const char *const *)g->argv + 1;
}

uint32_t weir_attempt_number(const weir_ctx_t *ctx) {
    return ctx->task->attempt;
}
