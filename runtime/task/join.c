/* Joins of two keyed streams (include/weir/weir.h "Two-input operators"; docs/event-time.md
 * "Joins"): weir_window_cogroup, weir_window_join and weir_interval_join, each a
 * weir_co_process operator (runtime/graph/define.c) with keyed map state and event-time timers.
 *
 * weir_window_cogroup and weir_window_join are window.c's record-keeping window operator on two
 * inputs (weir__window_cogroup_op: the same assignment, session merging, lateness and triggers;
 * each record kept with its side); a window join is a co-group whose function calls the join
 * function once per (left, right) pair, left-major in arrival order, the pairs stamped w->end-1.
 *
 * weir_interval_join keeps each record, per key, in the map state "weir.interval":
 * | user key OFFSET | SIZE | DESCRIPTION                                                 |
 * |-----------------|------|-------------------------------------------------------------|
 * | 0               | 1    | side: 0 left, 1 right                                       |
 * | 1               | 8    | timestamp, big-endian with the sign bit flipped (time order) |
 * | 9               | 8    | arrival sequence number (big-endian)                        |
 * value: the record's value bytes; the 1-byte user key "q" holds the key's next sequence number
 * (uint64, host). A record that is not late (timestamp >= the operator's watermark) is joined
 * with every kept record of the other side in its range, each pair emitted at once stamped
 * max(l.ts, r.ts), then kept with a cleanup timer at the first watermark after which no
 * partner can come: a left record at t at t + upper + 1, a right one at t - lower + 1 (a partner
 * below the watermark is late). A timer at T removes the key's records whose cleanup time is
 * <= T. Late records are dropped and counted (METRICS late_records_dropped).
 * Invariants: every kept record has a pending cleanup timer at its cleanup time (timers are
 * keyed state: checkpoints, savepoints and rescale carry both together).
 * Threading: the subtask thread only; an op struct belongs to one subtask (define() runs per
 * subtask). */
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "runtime/task/task_int.h"
#include "runtime/task/window.h"

#define ISTATE "weir.interval"

/* ---- window co-group and window join ------------------------------------------------------ */

weir_stream_t *weir_window_cogroup(weir_stream_t *left, weir_stream_t *right, const char *name,
                                   const weir_window_spec_t *spec, weir_cogroup_fn fn,
                                   void *udata) {
    if (!left || !left->job)
        return NULL;
    const char *bad = !fn ? "no co-group function: pass one" : weir__window_shape_check(spec);
    if (bad) {
        weir_job_error(left->job, "weir_window_cogroup '%s': %s", name ? name : "cogroup", bad);
        return NULL;
    }
    return weir__window_cogroup_op(left, right, name, spec, fn, udata);
}

typedef struct window_join {
    weir_join_fn fn;
    void *udata;
} window_join_t;

/* Calls @p fn with ctx's emits stamped @p ts (as on_timer's of an event-time timer are), then
 * restores what was stamped before. */
static void stamped(weir_ctx_t *ctx, int64_t ts, weir_join_fn fn, const weir_window_t *w,
                    const weir_record_t *l, const weir_record_t *r, void *udata) {
    bool ev = ctx->timer_ev;
    int64_t old = ctx->timer_ts;
    ctx->timer_ev = true;
    ctx->timer_ts = ts;
    fn(ctx, w, l, r, udata);
    ctx->timer_ev = ev;
    ctx->timer_ts = old;
}

static void join_pairs(weir_ctx_t *ctx, const weir_window_t *w, const weir_record_t *left,
                       size_t n_left, const weir_record_t *right, size_t n_right, void *udata) {
    const window_join_t *j = udata;
    for (size_t a = 0; a < n_left && !ctx->task->stop; a++)
        for (size_t b = 0; b < n_right; b++)
            stamped(ctx, w->end - 1, j->fn, w, &left[a], &right[b], j->udata);
}

weir_stream_t *weir_window_join(weir_stream_t *left, weir_stream_t *right, const char *name,
                                const weir_window_spec_t *spec, weir_join_fn fn, void *udata) {
    if (!left || !left->job)
        return NULL;
    const char *bad = !fn ? "no join function: pass one" : weir__window_shape_check(spec);
    if (bad) {
        weir_job_error(left->job, "weir_window_join '%s': %s", name ? name : "join", bad);
        return NULL;
    }
    window_join_t *j = weir_job_alloc(left->job, sizeof *j);
    j->fn = fn;
    j->udata = udata;
    return weir__window_cogroup_op(left, right, name, spec, join_pairs, j);
}

/* ---- interval join ------------------------------------------------------------------------ */

typedef struct interval_op {
    int64_t lower, upper;
    weir_join_fn fn;
    void *udata;
    weir_state_id st;
} interval_op_t;

static void enc_ts(int64_t v, unsigned char out[8]) {
    uint64_t u = (uint64_t)v ^ ((uint64_t)1 << 63);
    for (int i = 7; i >= 0; i--, u >>= 8)
        out[i] = (unsigned char)u;
}

static int64_t dec_ts(const unsigned char in[8]) {
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u = u << 8 | in[i];
    return (int64_t)(u ^ ((uint64_t)1 << 63));
}

static int64_t sat_add(int64_t a, int64_t b) {
    int64_t r;
    return __builtin_add_overflow(a, b, &r) ? (b > 0 ? INT64_MAX : INT64_MIN) : r;
}

/* The cleanup time of a record of @p side at @p ts: the first watermark after which every
 * partner it could have is late. */
static int64_t cleanup_at(const interval_op_t *o, int side, int64_t ts) {
    return sat_add(side == 0 ? sat_add(ts, o->upper) : sat_add(ts, -o->lower), 1);
}

/* One kept record (copied out of the state's iteration). */
typedef struct ikept {
    unsigned char ukey[17];
    int64_t ts;
    int side;
    char *val;
    uint32_t len;
} ikept_t;

typedef struct ikept_list {
    ikept_t *v;
    size_t n, cap;
    int side;       /* collect this side only (-1: both) */
    int64_t lo, hi; /* timestamps within [lo, hi] */
} ikept_list_t;

static int collect(const void *uk, uint32_t ukl, const void *v, uint32_t len, void *arg) {
    ikept_list_t *l = arg;
    const unsigned char *k = uk;
    if (ukl != 17 || (l->side >= 0 && k[0] != l->side))
        return 0;
    int64_t ts = dec_ts(k + 1);
    if (ts < l->lo || ts > l->hi)
        return 0;
    if (l->n == l->cap) {
        size_t cap = l->cap;
        if (weir_array_grow((void **)&l->v, &cap, l->n + 1, sizeof *l->v, 16) != 0)
            abort();
        l->cap = cap;
    }
    ikept_t *e = &l->v[l->n++];
    memcpy(e->ukey, k, 17);
    e->ts = ts;
    e->side = k[0];
    e->len = len;
    e->val = malloc(len ? len : 1);
    if (!e->val)
        abort();
    memcpy(e->val, v, len);
    return 0;
}

static void ikept_free(ikept_list_t *l) {
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].val);
    free(l->v);
}

static void interval_record(weir_ctx_t *ctx, const weir_record_t *in, interval_op_t *o, int side) {
    if (in->timestamp < weir_current_watermark(ctx)) {
        weir__task_count_late(ctx);
        return;
    }
    /* partners: a left record at t pairs right ones in [t + lower, t + upper], a right one at
     * t left ones in [t - upper, t - lower] */
    ikept_list_t l = {.side = !side};
    l.lo = side == 0 ? sat_add(in->timestamp, o->lower) : sat_add(in->timestamp, -o->upper);
    l.hi = side == 0 ? sat_add(in->timestamp, o->upper) : sat_add(in->timestamp, -o->lower);
    weir_mapstate_foreach(ctx, o->st, collect, &l);
    for (size_t i = 0; i < l.n && !ctx->task->stop; i++) {
        weir_record_t p = {l.v[i].ts, in->key, in->key_len, l.v[i].val, l.v[i].len};
        int64_t ts = p.timestamp > in->timestamp ? p.timestamp : in->timestamp;
        stamped(ctx, ts, o->fn, NULL, side == 0 ? in : &p, side == 0 ? &p : in, o->udata);
    }
    ikept_free(&l);
    uint64_t seq = 0;
    const void *v;
    uint32_t len;
    if (weir_mapstate_get(ctx, o->st, "q", 1, &v, &len) == 0 && len == 8)
        memcpy(&seq, v, 8);
    unsigned char k[17];
    k[0] = (unsigned char)side;
    enc_ts(in->timestamp, k + 1);
    for (int i = 16; i >= 9; i--)
        k[i] = (unsigned char)(seq >> (8 * (16 - i)));
    seq++;
    if (weir_mapstate_put(ctx, o->st, "q", 1, &seq, 8) != 0 ||
        weir_mapstate_put(ctx, o->st, k, 17, in->value, in->value_len) != 0 ||
        weir_timer_register_event_time(ctx, cleanup_at(o, side, in->timestamp)) != 0)
        weir_fail(ctx, "interval join: keeping a record failed");
}

static void interval_left(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    interval_record(ctx, in, udata, 0);
}

static void interval_right(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    interval_record(ctx, in, udata, 1);
}

static void interval_timer(weir_ctx_t *ctx, int64_t T, weir_time_domain_t domain, void *udata) {
    interval_op_t *o = udata;
    if (domain != WEIR_EVENT_TIME)
        return;
    ikept_list_t l = {.side = -1, .lo = INT64_MIN, .hi = INT64_MAX};
    weir_mapstate_foreach(ctx, o->st, collect, &l);
    size_t left = 0;
    for (size_t i = 0; i < l.n; i++) {
        if (cleanup_at(o, l.v[i].side, l.v[i].ts) <= T)
            weir_mapstate_remove(ctx, o->st, l.v[i].ukey, 17);
        else
            left++;
    }
    if (!left)
        weir_mapstate_remove(ctx, o->st, "q", 1);
    ikept_free(&l);
}

weir_stream_t *weir_interval_join(weir_stream_t *left, weir_stream_t *right, const char *name,
                                  int64_t lower_ms, int64_t upper_ms, weir_join_fn fn,
                                  void *udata) {
    if (!left || !left->job)
        return NULL;
    const char *bad = !fn                   ? "no join function: pass one"
                      : lower_ms > upper_ms ? "lower_ms is above upper_ms: pass lower <= upper"
                                            : NULL;
    if (bad) {
        weir_job_error(left->job, "weir_interval_join '%s': %s", name ? name : "interval_join",
                       bad);
        return NULL;
    }
    interval_op_t *o = weir_job_alloc(left->job, sizeof *o);
    o->lower = lower_ms;
    o->upper = upper_ms;
    o->fn = fn;
    o->udata = udata;
    weir_stream_t *op = weir_co_process(left, right, name, interval_left, interval_right, o);
    if (!op)
        return NULL;
    o->st = weir_map_state(op, ISTATE);
    weir_set_on_timer(op, interval_timer);
    return op;
}
