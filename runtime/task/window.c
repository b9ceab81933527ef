/* Keyed event-time windows (include/weir/weir.h "Windows"): weir_window_aggregate,
 * weir_window_process and weir_window_all_aggregate, built on a weir_process operator with keyed
 * map state and event-time timers, using only the public state/timer/side-output API.
 *
 * State of a window operator (per key), map state "weir.window" (user key = start, 8 bytes
 * big-endian with the sign bit flipped so byte order is time order):
 * | kind              | OFFSET | SIZE | DESCRIPTION                                       |
 * |-------------------|--------|------|---------------------------------------------------|
 * | tumbling, sliding | 0      | n    | accumulator (msgpack) of the pane [start, start+p) |
 * | session           | 0      | 8    | end of the session (host int64)                    |
 * | session           | 8      | n    | accumulator (msgpack) of the session              |
 * weir_window_process keeps records instead (8-byte key: an empty pane marker, or the session's
 * end alone; 16-byte key start ++ arrival sequence: timestamp (8, host) ++ value, moved to the
 * merged session's start on a merge; 1-byte key "q": the key's next sequence number).
 * weir_window_cogroup and weir_window_join (join.c) keep records the same way on a two-input
 * operator, the value being timestamp (8, host) ++ side (1: 0 left, 1 right) ++ value.
 * Tumbling and sliding windows keep panes of size p = gcd(size, slide): a record updates ONE
 * pane; a window [s, s+size) is the merge of its size/p panes when it fires.
 *
 * Timers (one per (key, time), idempotent): at end-1 of the first unfired window of a pane or
 * session (fire), and at end-1+allowed lateness of the last window holding it (cleanup). A
 * timer at T fires the window ending T+1 if it has content, removes what no window needs any
 * more (last end-1+lateness <= T), and registers the next fire and cleanup times of what is
 * left, so the chain reaches every window with content. A record late for every window it
 * belongs to (last end-1+lateness <= watermark) goes to late_tag or is dropped and counted; a
 * record for a fired window still within lateness updates it and the window fires again at
 * once (Flink's late firing), the result emitted with timestamp end-1.
 * count_trigger N (tumbling, sessions): the window's record count at enc(start) ++ 'c' (9-byte
 * user key, uint64 host; sessions carry the merged sessions' counts); every N-th record fires
 * the window (FIRE, not purge: it keeps accumulating), as Flink's CountTrigger.
 * Invariants: a pane or session in state has a pending cleanup timer; every window with
 * content whose end-1 is above the watermark has a pending fire timer.
 * Threading: the subtask thread only; a window_op_t belongs to one subtask (define() runs per
 * subtask) and holds scratch buffers reused across calls. */
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "runtime/graph/graph.h"
#include "runtime/task/window.h"

#define WSTATE "weir.window"

typedef struct window_op {
    weir_window_spec_t spec;
    weir_aggregate_fns_t fns;
    void *udata;
    weir_state_id st;
    int64_t pane;                   /* pane size (tumbling: size, sliding: gcd(size, slide)) */
    uint64_t n_dropped;             /* late records dropped (no late_tag) */
    weir_window_process_fn process; /* weir_window_process: records kept, not accumulators */
    weir_cogroup_fn cogroup;        /* weir_window_cogroup (join.c): records kept with a side */
    int side;                       /* cogroup: the input of the record being handled (0, 1) */
} window_op_t;

/* Records are kept (not accumulated) by weir_window_process and weir_window_cogroup. */
static bool keeps(const window_op_t *w) {
    return w->process || w->cogroup;
}

/* An owned msgpack value and its unpacked object. */
typedef struct acc {
    msgpack_sbuffer buf;
    msgpack_zone zone;
    msgpack_object obj;
    bool set;
} acc_t;

static void acc_init(acc_t *a) {
    msgpack_sbuffer_init(&a->buf);
    msgpack_zone_init(&a->zone, 256);
    a->set = false;
}

static void acc_free(acc_t *a) {
    msgpack_sbuffer_destroy(&a->buf);
    msgpack_zone_destroy(&a->zone);
}

/* Unpacks a->buf into a->obj; false when the bytes are not one msgpack object. */
static bool acc_load(acc_t *a) {
    msgpack_zone_clear(&a->zone);
    size_t off = 0;
    a->set = a->buf.size > 0 && msgpack_unpack(a->buf.data, a->buf.size, &off, &a->zone, &a->obj) ==
                                    MSGPACK_UNPACK_SUCCESS;
    return a->set;
}

static bool acc_set_bytes(acc_t *a, const void *p, size_t n) {
    a->buf.size = 0;
    msgpack_sbuffer_write(&a->buf, p, n);
    return acc_load(a);
}

/* a = merge(a, b) (a unset: a copy of b). */
static bool acc_merge(const window_op_t *w, acc_t *a, const msgpack_object *b, const void *raw,
                      size_t n) {
    if (!a->set)
        return acc_set_bytes(a, raw, n);
    msgpack_sbuffer out;
    msgpack_sbuffer_init(&out);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &out, msgpack_sbuffer_write);
    w->fns.merge(&a->obj, b, &pk, w->udata);
    bool ok = acc_set_bytes(a, out.data, out.size);
    msgpack_sbuffer_destroy(&out);
    return ok;
}

static int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int64_t sat_add(int64_t a, int64_t b) {
    int64_t r;
    return __builtin_add_overflow(a, b, &r) ? (b > 0 ? INT64_MAX : INT64_MIN) : r;
}

static void enc(int64_t v, unsigned char out[8]) {
    uint64_t u = (uint64_t)v ^ ((uint64_t)1 << 63);
    for (int i = 7; i >= 0; i--, u >>= 8)
        out[i] = (unsigned char)u;
}

static int64_t dec(const unsigned char in[8]) {
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u = u << 8 | in[i];
    return (int64_t)(u ^ ((uint64_t)1 << 63));
}

static int64_t slide_of(const window_op_t *w) {
    return w->spec.kind == WEIR_WINDOW_SLIDING ? w->spec.slide_ms : w->spec.size_ms;
}

/* Window assignment (runtime/task/window.h). */
int64_t weir__window_pane_start(const weir_window_spec_t *s, int64_t pane, int64_t ts) {
    return s->offset_ms + floor_div(ts - s->offset_ms, pane) * pane;
}

void weir__window_pane_ends(const weir_window_spec_t *s, int64_t pane, int64_t ps,
                            int64_t *first_end, int64_t *last_end) {
    int64_t slide = s->kind == WEIR_WINDOW_SLIDING ? s->slide_ms : s->size_ms;
    int64_t last = s->offset_ms + floor_div(ps - s->offset_ms, slide) * slide;
    int64_t first = last - floor_div(last - (ps + pane - s->size_ms), slide) * slide;
    *first_end = first + s->size_ms;
    *last_end = last + s->size_ms;
}

static int64_t gcd64(int64_t a, int64_t b) {
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* weir_window_process: a record of pane ps is the entry enc(ps) ++ seq (8 bytes big-endian, the
 * key's arrival counter kept at the 1-byte user key "q") -> timestamp (8 bytes, host) ++ value;
 * the pane's 8-byte entry enc(ps) is an empty marker (what the timers and cleanup see). */
typedef struct kept {
    uint64_t seq;
    int64_t ts;
    int side; /* cogroup: 0 left, 1 right (the byte after the timestamp); else 0 */
    char *val;
    uint32_t len;
} kept_t;

typedef struct kept_list {
    kept_t *v;
    unsigned char (*ukey)[16];
    size_t n, cap;
    int64_t lo, hi; /* pane starts collected: [lo, hi) */
    bool sided;     /* cogroup: values are timestamp ++ side byte ++ value */
} kept_list_t;

static int collect_kept(const void *uk, uint32_t ukl, const void *v, uint32_t len, void *arg) {
    kept_list_t *l = arg;
    size_t hdr = l->sided ? 9 : 8;
    if (ukl != 16 || len < hdr)
        return 0;
    int64_t ps = dec(uk);
    if (ps < l->lo || ps >= l->hi)
        return 0;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        l->ukey = realloc(l->ukey, l->cap * sizeof *l->ukey);
        if (!l->v || !l->ukey)
            abort();
    }
    kept_t *k = &l->v[l->n];
    memcpy(l->ukey[l->n], uk, 16);
    l->n++;
    k->seq = 0;
    for (int i = 8; i < 16; i++)
        k->seq = k->seq << 8 | ((const unsigned char *)uk)[i];
    memcpy(&k->ts, v, 8);
    k->side = l->sided ? ((const unsigned char *)v)[8] : 0;
    k->len = len - (uint32_t)hdr;
    k->val = malloc(k->len ? k->len : 1);
    if (!k->val)
        abort();
    memcpy(k->val, (const char *)v + hdr, k->len);
    return 0;
}

static void kept_free(kept_list_t *l) {
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].val);
    free(l->v);
    free(l->ukey);
}

static int by_seq(const void *a, const void *b) {
    const kept_t *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The stored value of a kept record: timestamp (8, host) ++ [side (1), cogroup only] ++ value,
 * malloc'd; *len its size. */
static char *kept_value(const window_op_t *w, int64_t ts, int side, const void *val, uint32_t vlen,
                        uint32_t *len) {
    size_t hdr = w->cogroup ? 9 : 8;
    char *buf = malloc(hdr + (size_t)vlen);
    if (!buf)
        abort();
    memcpy(buf, &ts, 8);
    if (w->cogroup)
        buf[8] = (char)side;
    memcpy(buf + hdr, val, vlen);
    *len = (uint32_t)hdr + vlen;
    return buf;
}

/* Keeps @p in under the pane or session starting at @p ps (@p marker: write the pane's marker). */
static void keep_record(weir_ctx_t *ctx, window_op_t *w, int64_t ps, const weir_record_t *in,
                        bool marker) {
    uint64_t seq = 0;
    const void *v;
    uint32_t len;
    if (weir_mapstate_get(ctx, w->st, "q", 1, &v, &len) == 0 && len == 8)
        memcpy(&seq, v, 8);
    unsigned char k[16];
    enc(ps, k);
    for (int i = 15; i >= 8; i--)
        k[i] = (unsigned char)(seq >> (8 * (15 - i)));
    seq++;
    uint32_t blen;
    char *buf = kept_value(w, in->timestamp, w->side, in->value, in->value_len, &blen);
    if (weir_mapstate_put(ctx, w->st, "q", 1, &seq, 8) != 0 ||
        weir_mapstate_put(ctx, w->st, k, 16, buf, blen) != 0 ||
        (marker && weir_mapstate_put(ctx, w->st, k, 8, "", 0) != 0))
        weir_fail(ctx, "window: writing the pane state failed");
    free(buf);
}

/* Calls the process (or cogroup) function with the records kept under starts [lo, hi), if any,
 * as @p win: cogroup gets the left records first in recs[0..nl), the right ones after, each
 * side in arrival order. */
static void fire_kept(weir_ctx_t *ctx, window_op_t *w, int64_t lo, int64_t hi, weir_window_t win) {
    kept_list_t l = {.lo = lo, .hi = hi, .sided = w->cogroup != NULL};
    weir_mapstate_foreach(ctx, w->st, collect_kept, &l);
    if (l.n) {
        qsort(l.v, l.n, sizeof *l.v, by_seq);
        weir_record_t *recs = weir_xcalloc(l.n, sizeof *recs);
        uint32_t kl;
        const void *key = weir_current_key(ctx, &kl);
        size_t nl = 0, k = 0;
        for (size_t i = 0; i < l.n; i++)
            nl += l.v[i].side == 0;
        for (int side = 0; side < 2; side++) /* stable: arrival order within each side */
            for (size_t i = 0; i < l.n; i++)
                if (l.v[i].side == side)
                    recs[k++] = (weir_record_t){l.v[i].ts, key, kl, l.v[i].val, l.v[i].len};
        if (w->cogroup)
            w->cogroup(ctx, &win, recs, nl, recs + nl, l.n - nl, w->udata);
        else
            w->process(ctx, &win, recs, l.n, w->udata);
        free(recs);
    }
    kept_free(&l);
}

/* Moves the kept records of the session starting at @p from to the session starting at @p to
 * (a merge), keeping their sequence numbers. */
static void move_kept(weir_ctx_t *ctx, window_op_t *w, int64_t from, int64_t to) {
    kept_list_t l = {.lo = from, .hi = from + 1, .sided = w->cogroup != NULL};
    weir_mapstate_foreach(ctx, w->st, collect_kept, &l);
    for (size_t i = 0; i < l.n; i++) {
        unsigned char k[16];
        enc(to, k);
        memcpy(k + 8, l.ukey[i] + 8, 8);
        uint32_t blen;
        char *buf = kept_value(w, l.v[i].ts, l.v[i].side, l.v[i].val, l.v[i].len, &blen);
        if (weir_mapstate_put(ctx, w->st, k, 16, buf, blen) != 0 ||
            weir_mapstate_remove(ctx, w->st, l.ukey[i], 16) != 0)
            weir_fail(ctx, "window: moving a merged session's records failed");
        free(buf);
    }
    kept_free(&l);
}

/* Removes the kept records of the pane starting at @p ps. */
static void drop_kept(weir_ctx_t *ctx, window_op_t *w, int64_t ps) {
    kept_list_t l = {.lo = ps, .hi = ps + 1, .sided = w->cogroup != NULL};
    weir_mapstate_foreach(ctx, w->st, collect_kept, &l);
    for (size_t i = 0; i < l.n; i++)
        weir_mapstate_remove(ctx, w->st, l.ukey[i], 16);
    kept_free(&l);
}

/* Merges the panes of the window ending at @p end and emits its result if it has content. */
static void fire_panes(weir_ctx_t *ctx, window_op_t *w, int64_t end) {
    if (keeps(w)) {
        fire_kept(ctx, w, end - w->spec.size_ms, end, (weir_window_t){end - w->spec.size_ms, end});
        return;
    }
    acc_t a;
    acc_init(&a);
    acc_t b;
    acc_init(&b);
    for (int64_t ps = end - w->spec.size_ms; ps < end; ps += w->pane) {
        unsigned char k[8];
        enc(ps, k);
        const void *v;
        uint32_t len;
        if (weir_mapstate_get(ctx, w->st, k, 8, &v, &len) != 0)
            continue;
        if (!acc_set_bytes(&b, v, len) || !acc_merge(w, &a, &b.obj, v, len)) {
            weir_fail(ctx, "window: a stored accumulator is not msgpack");
            break;
        }
    }
    if (a.set) {
        weir_window_t win = {end - w->spec.size_ms, end};
        w->fns.result(ctx, &win, &a.obj, w->udata);
    }
    acc_free(&a);
    acc_free(&b);
}

static void late(weir_ctx_t *ctx, window_op_t *w, const weir_record_t *in) {
    if (w->spec.late_tag > 0)
        weir_emit_to(ctx, w->spec.late_tag, in);
    else
        w->n_dropped++;
}

/* Packs add(acc, in) into @p out (acc unset: add(create(), in)); false after weir_fail. */
static bool add_record(weir_ctx_t *ctx, window_op_t *w, acc_t *acc, const weir_record_t *in,
                       msgpack_sbuffer *out) {
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    if (!acc->set) {
        msgpack_sbuffer tmp;
        msgpack_sbuffer_init(&tmp);
        msgpack_packer tp;
        msgpack_packer_init(&tp, &tmp, msgpack_sbuffer_write);
        w->fns.create(&tp, w->udata);
        bool ok = acc_set_bytes(acc, tmp.data, tmp.size);
        msgpack_sbuffer_destroy(&tmp);
        if (!ok) {
            weir_fail(ctx, "window: create did not pack one msgpack object");
            return false;
        }
    }
    w->fns.add(&acc->obj, in, &pk, w->udata);
    return true;
}

/* count_trigger: the window's record count at the 9-byte user key enc(start) ++ 'c' (written to
 * @p k) into *n; false (and 0) when there is none. */
static bool count_get(weir_ctx_t *ctx, window_op_t *w, int64_t start, unsigned char k[9],
                      uint64_t *n) {
    enc(start, k);
    k[8] = 'c';
    const void *v;
    uint32_t len;
    *n = 0;
    if (weir_mapstate_get(ctx, w->st, k, 9, &v, &len) != 0 || len != 8)
        return false;
    memcpy(n, v, 8);
    return true;
}

/* Adds @p add to the count of the window starting at @p start (a merge carries the merged
 * sessions' counts) and returns the new count. */
static uint64_t count_add(weir_ctx_t *ctx, window_op_t *w, int64_t start, uint64_t add) {
    unsigned char k[9];
    uint64_t n;
    count_get(ctx, w, start, k, &n);
    n += add;
    if (weir_mapstate_put(ctx, w->st, k, 9, &n, 8) != 0)
        weir_fail(ctx, "window: writing the record count failed");
    return n;
}

/* Removes the count of the window starting at @p start, returning it (0: none). */
static uint64_t count_take(weir_ctx_t *ctx, window_op_t *w, int64_t start) {
    if (!w->spec.count_trigger)
        return 0;
    unsigned char k[9];
    uint64_t n;
    if (count_get(ctx, w, start, k, &n))
        weir_mapstate_remove(ctx, w->st, k, 9);
    return n;
}

static void on_record_panes(weir_ctx_t *ctx, const weir_record_t *in, window_op_t *w) {
    int64_t wm = weir_current_watermark(ctx), L = w->spec.allowed_lateness_ms;
    int64_t slide = slide_of(w);
    int64_t ps = weir__window_pane_start(&w->spec, w->pane, in->timestamp), first, last;
    weir__window_pane_ends(&w->spec, w->pane, ps, &first, &last);
    if (sat_add(last - 1, L) <= wm) {
        late(ctx, w, in);
        return;
    }
    if (keeps(w)) {
        keep_record(ctx, w, ps, in, true);
        goto timers;
    }
    unsigned char k[8];
    enc(ps, k);
    acc_t acc;
    acc_init(&acc);
    msgpack_sbuffer out;
    msgpack_sbuffer_init(&out);
    const void *v;
    uint32_t len;
    if (weir_mapstate_get(ctx, w->st, k, 8, &v, &len) == 0 && !acc_set_bytes(&acc, v, len))
        weir_fail(ctx, "window: a stored accumulator is not msgpack");
    else if (add_record(ctx, w, &acc, in, &out) &&
             weir_mapstate_put(ctx, w->st, k, 8, out.data, (uint32_t)out.size) != 0)
        weir_fail(ctx, "window: writing the pane state failed");
    acc_free(&acc);
    msgpack_sbuffer_destroy(&out);
timers:; /* the first window not fired yet, and the cleanup of the last one */
    int64_t e = first;
    if (e - 1 <= wm)
        e += (floor_div(wm - (e - 1), slide) + 1) * slide;
    if ((e <= last && weir_timer_register_event_time(ctx, e - 1) != 0) ||
        weir_timer_register_event_time(ctx, sat_add(last - 1, L)) != 0)
        weir_fail(ctx, "window: registering a timer failed");
    /* late firing: windows already fired but within the allowed lateness fire again */
    for (int64_t end = first; end <= last && end - 1 <= wm; end += slide)
        if (sat_add(end - 1, L) > wm)
            fire_panes(ctx, w, end);
    /* count trigger (tumbling: the pane is the window); a late firing above already fired it */
    if (w->spec.count_trigger && count_add(ctx, w, ps, 1) % w->spec.count_trigger == 0 &&
        last - 1 > wm)
        fire_panes(ctx, w, last);
}

typedef struct entries {
    int64_t *start;
    size_t n, cap;
} entries_t;

static int collect(const void *uk, uint32_t ukl, const void *v, uint32_t len, void *arg) {
    (void)v;
    (void)len;
    entries_t *e = arg;
    if (ukl != 8)
        return 0;
    if (e->n == e->cap) {
        e->cap = e->cap ? 2 * e->cap : 16;
        e->start = realloc(e->start, e->cap * sizeof *e->start);
        if (!e->start)
            abort();
    }
    e->start[e->n++] = dec(uk);
    return 0;
}

static void on_timer_panes(weir_ctx_t *ctx, int64_t T, window_op_t *w) {
    int64_t L = w->spec.allowed_lateness_ms, slide = slide_of(w);
    int64_t end = T + 1;
    if (floor_div(end - w->spec.offset_ms, slide) * slide == end - w->spec.offset_ms)
        fire_panes(ctx, w, end);
    entries_t e = {0};
    weir_mapstate_foreach(ctx, w->st, collect, &e);
    int64_t next_fire = INT64_MAX, next_clean = INT64_MAX;
    for (size_t i = 0; i < e.n; i++) {
        int64_t first, last;
        weir__window_pane_ends(&w->spec, w->pane, e.start[i], &first, &last);
        int64_t clean = sat_add(last - 1, L);
        if (clean <= T) {
            unsigned char k[8];
            enc(e.start[i], k);
            weir_mapstate_remove(ctx, w->st, k, 8);
            count_take(ctx, w, e.start[i]);
            if (keeps(w))
                drop_kept(ctx, w, e.start[i]);
            continue;
        }
        if (clean < next_clean)
            next_clean = clean;
        int64_t f = first;
        if (f - 1 <= T)
            f += (floor_div(T - (f - 1), slide) + 1) * slide;
        if (f <= last && f - 1 < next_fire)
            next_fire = f - 1;
    }
    free(e.start);
    if ((next_fire != INT64_MAX && weir_timer_register_event_time(ctx, next_fire) != 0) ||
        (next_clean != INT64_MAX && weir_timer_register_event_time(ctx, next_clean) != 0))
        weir_fail(ctx, "window: registering a timer failed");
}

/* ----- sessions ----- */

void weir__window_session_merge(const weir_window_session_t *s, size_t n, int64_t ts, int64_t gap,
                                int64_t *start, int64_t *end) {
    *start = ts;
    *end = sat_add(ts, gap);
    for (size_t i = 0; i < n; i++) /* touching or overlapping sessions merge */
        if (s[i].start <= sat_add(ts, gap) && ts <= s[i].end) {
            *start = s[i].start < *start ? s[i].start : *start;
            *end = s[i].end > *end ? s[i].end : *end;
        }
}

typedef struct sessions {
    weir_window_session_t *s;
    size_t n, cap;
} sessions_t;

static int collect_session(const void *uk, uint32_t ukl, const void *v, uint32_t len, void *arg) {
    sessions_t *e = arg;
    if (ukl != 8 || len < 8)
        return 0;
    if (e->n == e->cap) {
        e->cap = e->cap ? 2 * e->cap : 8;
        e->s = realloc(e->s, e->cap * sizeof *e->s);
        if (!e->s)
            abort();
    }
    int64_t end;
    memcpy(&end, v, 8);
    e->s[e->n++] = (weir_window_session_t){dec(uk), end};
    return 0;
}

static bool session_acc(weir_ctx_t *ctx, window_op_t *w, int64_t start, acc_t *into) {
    unsigned char k[8];
    enc(start, k);
    const void *v;
    uint32_t len;
    if (weir_mapstate_get(ctx, w->st, k, 8, &v, &len) != 0 || len < 8)
        return false;
    acc_t b;
    acc_init(&b);
    bool ok = acc_set_bytes(&b, (const char *)v + 8, len - 8) &&
              acc_merge(w, into, &b.obj, (const char *)v + 8, len - 8);
    acc_free(&b);
    if (!ok)
        weir_fail(ctx, "window: a stored session accumulator is not msgpack");
    return ok;
}

/* Fires the session [start, end) of the current key. */
static void session_fire(weir_ctx_t *ctx, window_op_t *w, int64_t start, int64_t end) {
    weir_window_t win = {start, end};
    if (keeps(w)) {
        fire_kept(ctx, w, start, start + 1, win);
        return;
    }
    acc_t a;
    acc_init(&a);
    if (session_acc(ctx, w, start, &a))
        w->fns.result(ctx, &win, &a.obj, w->udata);
    acc_free(&a);
}

static void on_record_session(weir_ctx_t *ctx, const weir_record_t *in, window_op_t *w) {
    int64_t wm = weir_current_watermark(ctx), L = w->spec.allowed_lateness_ms;
    sessions_t all = {0};
    weir_mapstate_foreach(ctx, w->st, collect_session, &all);
    int64_t start, end;
    weir__window_session_merge(all.s, all.n, in->timestamp, w->spec.gap_ms, &start, &end);
    if (sat_add(end - 1, L) <= wm) {
        free(all.s);
        late(ctx, w, in);
        return;
    }
    acc_t acc;
    acc_init(&acc);
    uint64_t count = 1;
    for (size_t i = 0; i < all.n; i++) {
        weir_window_session_t s = all.s[i];
        if (s.start < start || s.end > end)
            continue;
        if (keeps(w) && s.start != start)
            move_kept(ctx, w, s.start, start);
        else if (!keeps(w))
            session_acc(ctx, w, s.start, &acc);
        count += count_take(ctx, w, s.start);
        unsigned char k[8];
        enc(s.start, k);
        /* its timers stay: a timer is per (key, time), so one of them may be another
         * session's; a stale one finds no session ending (or expiring) at its time */
        weir_mapstate_remove(ctx, w->st, k, 8);
    }
    msgpack_sbuffer out;
    msgpack_sbuffer_init(&out);
    msgpack_sbuffer_write(&out, (const char *)&end, 8);
    if (keeps(w))
        keep_record(ctx, w, start, in, false);
    if (keeps(w) || add_record(ctx, w, &acc, in, &out)) {
        unsigned char k[8];
        enc(start, k);
        if (weir_mapstate_put(ctx, w->st, k, 8, out.data, (uint32_t)out.size) != 0)
            weir_fail(ctx, "window: writing the session state failed");
    }
    msgpack_sbuffer_destroy(&out);
    acc_free(&acc);
    /* the new session's timers only: registering the fire time of a session of the key that
     * already fired (kept for the lateness) would fire it again, e.g. after a restore, when the
     * watermark starts over at INT64_MIN */
    free(all.s);
    if ((end - 1 > wm && weir_timer_register_event_time(ctx, end - 1)) ||
        weir_timer_register_event_time(ctx, sat_add(end - 1, L)) != 0)
        weir_fail(ctx, "window: registering a timer failed");
    bool count_fire =
        w->spec.count_trigger && count_add(ctx, w, start, count) % w->spec.count_trigger == 0;
    if (end - 1 <= wm || count_fire) /* late firing within the lateness, or the count */
        session_fire(ctx, w, start, end);
}

static void on_timer_session(weir_ctx_t *ctx, int64_t T, window_op_t *w) {
    int64_t L = w->spec.allowed_lateness_ms;
    sessions_t all = {0};
    weir_mapstate_foreach(ctx, w->st, collect_session, &all);
    for (size_t i = 0; i < all.n; i++) {
        weir_window_session_t s = all.s[i];
        if (s.end - 1 == T)
            session_fire(ctx, w, s.start, s.end);
        if (sat_add(s.end - 1, L) <= T) {
            unsigned char k[8];
            enc(s.start, k);
            weir_mapstate_remove(ctx, w->st, k, 8);
            count_take(ctx, w, s.start);
            if (keeps(w))
                drop_kept(ctx, w, s.start);
        }
    }
    free(all.s);
}

static void on_record(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    window_op_t *w = udata;
    if (w->spec.kind == WEIR_WINDOW_SESSION)
        on_record_session(ctx, in, w);
    else
        on_record_panes(ctx, in, w);
}

/* weir_window_cogroup's two functions: the record's side, then the one-input path. */
static void on_left(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    ((window_op_t *)udata)->side = 0;
    on_record(ctx, in, udata);
}

static void on_right(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    ((window_op_t *)udata)->side = 1;
    on_record(ctx, in, udata);
}

static void on_timer(weir_ctx_t *ctx, int64_t ts, weir_time_domain_t domain, void *udata) {
    window_op_t *w = udata;
    if (domain != WEIR_EVENT_TIME)
        return;
    if (w->spec.kind == WEIR_WINDOW_SESSION)
        on_timer_session(ctx, ts, w);
    else
        on_timer_panes(ctx, ts, w);
}

/* The spec's problem in one line, or NULL. */
const char *weir__window_spec_check(const weir_window_spec_t *s, const weir_aggregate_fns_t *f) {
    if (!f || !f->create || !f->add || !f->result)
        return "aggregate functions need create, add and result";
    const char *bad = weir__window_shape_check(s);
    if (bad || s->kind == WEIR_WINDOW_TUMBLING || f->merge)
        return bad;
    return s->kind == WEIR_WINDOW_SLIDING ? "a sliding window needs the merge function (panes)"
                                          : "a session window needs the merge function";
}

const char *weir__window_shape_check(const weir_window_spec_t *s) {
    if (!s)
        return "no window spec: pass one";
    if (s->allowed_lateness_ms < 0)
        return "allowed_lateness_ms is negative: use 0 or more";
    if (s->count_trigger && s->kind == WEIR_WINDOW_SLIDING)
        return "count_trigger is not supported for sliding windows yet (panes): use 0";
    switch (s->kind) {
    case WEIR_WINDOW_TUMBLING:
        return s->size_ms > 0 ? NULL : "a tumbling window needs size_ms > 0";
    case WEIR_WINDOW_SLIDING:
        return s->size_ms > 0 && s->slide_ms > 0
                   ? NULL
                   : "a sliding window needs size_ms > 0 and slide_ms > 0";
    case WEIR_WINDOW_SESSION:
        return s->gap_ms > 0 ? NULL : "a session window needs gap_ms > 0";
    }
    return "unknown window kind: use WEIR_WINDOW_TUMBLING, _SLIDING or _SESSION";
}

/* The window operator: a weir_process (or, with @p right, a weir_co_process) with the window
 * state and timers. */
static weir_stream_t *window_op(weir_stream_t *keyed, weir_stream_t *right, const char *name,
                                const weir_window_spec_t *spec, const weir_aggregate_fns_t *fns,
                                weir_window_process_fn process, weir_cogroup_fn cogroup,
                                void *udata) {
    window_op_t *w = weir_job_alloc(keyed->job, sizeof *w);
    if (!w)
        return NULL;
    w->spec = *spec;
    if (fns)
        w->fns = *fns;
    w->process = process;
    w->cogroup = cogroup;
    w->udata = udata;
    w->pane =
        spec->kind == WEIR_WINDOW_SLIDING ? gcd64(spec->size_ms, spec->slide_ms) : spec->size_ms;
    weir_stream_t *op = right ? weir_co_process(keyed, right, name, on_left, on_right, w)
                              : weir_process(keyed, name, on_record, w);
    if (!op)
        return NULL;
    w->st = weir_map_state(op, WSTATE);
    weir_set_on_timer(op, on_timer);
    return op;
}

weir_stream_t *weir_window_process(weir_stream_t *keyed, const char *name,
                                   const weir_window_spec_t *spec, weir_window_process_fn fn,
                                   void *udata) {
    if (!keyed || !keyed->job)
        return NULL;
    const char *bad = !fn ? "no process function: pass one" : weir__window_shape_check(spec);
    if (bad) {
        weir_job_error(keyed->job, "weir_window_process '%s': %s", name ? name : "window", bad);
        return NULL;
    }
    return window_op(keyed, NULL, name, spec, NULL, fn, NULL, udata);
}

weir_stream_t *weir__window_cogroup_op(weir_stream_t *left, weir_stream_t *right, const char *name,
                                       const weir_window_spec_t *spec, weir_cogroup_fn fn,
                                       void *udata) {
    return window_op(left, right, name, spec, NULL, NULL, fn, udata);
}

weir_stream_t *weir_window_aggregate(weir_stream_t *keyed, const char *name,
                                     const weir_window_spec_t *spec,
                                     const weir_aggregate_fns_t *fns, void *udata) {
    if (!keyed || !keyed->job)
        return NULL;
    const char *bad = weir__window_spec_check(spec, fns);
    if (bad) {
        weir_job_error(keyed->job, "weir_window_aggregate '%s': %s", name ? name : "window", bad);
        return NULL;
    }
    return window_op(keyed, NULL, name, spec, fns, NULL, NULL, udata);
}

static uint32_t const_key(const weir_record_t *in, void *key_out, void *udata) {
    (void)in;
    (void)udata;
    memcpy(key_out, "all", 3);
    return 3;
}

weir_stream_t *weir_window_all_aggregate(weir_stream_t *in, const char *name,
                                         const weir_window_spec_t *spec,
                                         const weir_aggregate_fns_t *fns, void *udata) {
    weir_stream_t *op =
        weir_window_aggregate(weir_key_by(in, const_key, NULL), name, spec, fns, udata);
    return weir_set_parallelism(op, 1);
}
