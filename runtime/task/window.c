/* Keyed event-time windows (include/weir/weir.h "Windows"): weir_window_aggregate,
 * weir_window_process and weir_window_all_aggregate, built on a weir_process operator with keyed
 * state and event-time timers, using only the public state/timer/side-output API.
 *
 * State of a window operator (per key): the key's window index, value state "weir.window.index"
 * (WINDEX), holding every live window of the key, so that a record costs one read and one write
 * of a cached value (state/: the write-back cache, flushed at checkpoints) and no RocksDB access:
 * | OFFSET | SIZE | DESCRIPTION                                                             |
 * |--------|------|-------------------------------------------------------------------------|
 * | 0      | 8    | next arrival sequence number of a kept record (uint64, host)            |
 * | 8      | 4    | n: number of windows (uint32, host)                                     |
 * | 12     | ...  | n windows in ascending start, each:                                     |
 * |  +0    | 8    | start (int64, host): a pane [start, start+p) or a session's start       |
 * |  +8    | 8    | end (int64, host): start+p for a pane, the session's end                |
 * |  +16   | 8    | records added (uint64, host; a session carries those of the sessions it |
 * |        |      | merged): count_trigger fires the window at every N-th                   |
 * |  +24   | 8    | sessions: the time of the session's pending fire timer (int64, host;    |
 * |        |      | INT64_MIN: fired, waiting for its cleanup timer); panes: INT64_MIN      |
 * |  +32   | 4    | m (uint32, host)                                                        |
 * |  +36   | m    | aggregate: the accumulator (msgpack); weir_window_process/cogroup: the  |
 * |        |      | kept records (items, see "kept records" below)                          |
 * An empty index is cleared (no value). weir_window_process keeps the records (timestamp (8,
 * host) ++ value; weir_window_cogroup and weir_window_join, join.c: timestamp ++ side (1: 0
 * left, 1 right) ++ value) inline in the index while it stays within WINLINE_MAX bytes, beyond
 * that in the map state "weir.window.records" (WRECORDS: user key = the arrival sequence
 * number, 8 bytes big-endian), declared only by the record-keeping operators; a session merge
 * joins the merged windows' items, no record moves.
 * Tumbling and sliding windows keep panes of size p = gcd(size, slide): a record updates ONE
 * pane; a window [s, s+size) is the merge of its size/p panes when it fires.
 * The index and the records are keyed state like the timers: a checkpoint (which flushes the
 * cache first), a savepoint, a restore and a rescale carry them together, and a kill -9, a
 * freeze or a restore from an older checkpoint leaves the index, the records and the timers of
 * that one checkpoint. Savepoints of the earlier layout (map state "weir.window") are not read.
 *
 * Timers (one per (key, time), idempotent): at end-1 of the first unfired window of a pane
 * (fire), and at end-1+allowed lateness of the last window holding it (cleanup). A timer at T
 * fires the window ending T+1 if it has content, removes what no window needs any more (last
 * end-1+lateness <= T), and registers the next fire and cleanup times of what is left, so the
 * chain reaches every window with content. A session has one pending fire timer ("armed"): at
 * its end-1 when it starts; a merge keeps the earliest pending one of the merged sessions; when
 * that timer fires before the session's end-1 (the session grew since), it moves on to end-1;
 * at end-1 the session fires, its cleanup timer (end-1+lateness) is registered, and it is
 * removed when that one fires. A session extended by every record thus costs a few timers, not
 * one or two per record. A record late for every window it
 * belongs to (last end-1+lateness <= watermark) goes to late_tag or is dropped and counted; a
 * record for a fired window still within lateness updates it and the window fires again at
 * once (Flink's late firing), the result emitted with timestamp end-1.
 * count_trigger N (tumbling, sessions): every N-th record of the window fires it (FIRE, not
 * purge: it keeps accumulating), as Flink's CountTrigger.
 * Invariants: a pane in the index has a pending cleanup timer, and every window with content
 * whose end-1 is above the watermark has a pending fire timer or is reached by the chain; a
 * session that has not fired has a pending fire timer at its "armed" time <= end-1; one that
 * fired (armed INT64_MIN) has a pending cleanup timer at end-1+lateness; a kept record in the map
 * belongs to exactly one window's runs; sequence numbers only grow while the key has windows.
 * Threading: the subtask thread only; a window_op_t belongs to one subtask (define() runs per
 * subtask); every call works on its own copy of the key's index (state pointers are valid only
 * until the next state call, and user functions run in between). */
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "runtime/graph/graph.h"
#include "runtime/task/task_int.h"
#include "runtime/task/window.h"

#define WINDEX "weir.window.index"
#define WRECORDS "weir.window.records"

typedef struct window_op {
    weir_window_spec_t spec;
    weir_aggregate_fns_t fns;
    void *udata;
    weir_state_id idx;              /* WINDEX: the key's windows */
    weir_state_id st;               /* RECORDS: kept records (keeps() only) */
    int64_t pane;                   /* pane size (tumbling: size, sliding: gcd(size, slide)) */
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

/* ----- the key's window index (value state WINDEX; layout in the opening comment) ----- */

/* One window of the index: data points into the loaded copy or into a buffer of the caller. */
typedef struct went {
    int64_t start, end;
    uint64_t count;
    int64_t armed; /* sessions: the pending fire timer (INT64_MIN: none, the session fired) */
    const unsigned char *data;
    uint32_t len;
} went_t;

/* The current key's index, loaded: a private copy (state pointers are valid only until the next
 * state call, and user functions run between load and store). */
typedef struct windex {
    uint64_t seq; /* next arrival sequence number of a kept record */
    went_t *e;    /* ascending start */
    size_t n, cap;
    unsigned char *raw; /* the loaded bytes */
    size_t raw_len;
    bool changed;
} windex_t;

#define WIDX_HDR 12u
#define WENT_HDR 36u

/* Loads the current key's index into @p x; false (after weir_fail) when it is malformed. */
static bool idx_load(weir_ctx_t *ctx, window_op_t *w, windex_t *x) {
    *x = (windex_t){0};
    const void *v;
    uint32_t len;
    int rc = weir_value_get(ctx, w->idx, &v, &len);
    if (rc != 0) {
        if (rc < 0)
            weir_fail(ctx, "window: reading the window index failed");
        return rc > 0;
    }
    x->raw = malloc(len ? len : 1);
    if (!x->raw)
        abort();
    memcpy(x->raw, v, len);
    x->raw_len = len;
    const unsigned char *p = x->raw, *end = p + len;
    uint32_t n;
    if (len < WIDX_HDR)
        goto bad;
    memcpy(&x->seq, p, 8);
    memcpy(&n, p + 8, 4);
    p += WIDX_HDR;
    if (n > (len - WIDX_HDR) / WENT_HDR)
        goto bad;
    if (weir_array_grow((void **)&x->e, &x->cap, n, sizeof *x->e, 8) != 0)
        abort();
    for (uint32_t i = 0; i < n; i++) {
        went_t *e = &x->e[i];
        if ((size_t)(end - p) < WENT_HDR)
            goto bad;
        memcpy(&e->start, p, 8);
        memcpy(&e->end, p + 8, 8);
        memcpy(&e->count, p + 16, 8);
        memcpy(&e->armed, p + 24, 8);
        memcpy(&e->len, p + 32, 4);
        p += WENT_HDR;
        if ((size_t)(end - p) < e->len)
            goto bad;
        e->data = p;
        p += e->len;
    }
    x->n = n;
    if (p == end)
        return true;
bad:
    x->n = 0;
    weir_fail(ctx, "window: the stored window index is malformed");
    return false;
}

static void idx_free(windex_t *x) {
    free(x->e);
    free(x->raw);
}

/* Writes @p x back when it changed (an empty index: the key's value is cleared). */
static void idx_store(weir_ctx_t *ctx, window_op_t *w, windex_t *x) {
    if (!x->changed)
        return;
    if (x->n == 0) {
        if (weir_value_clear(ctx, w->idx) != 0)
            weir_fail(ctx, "window: writing the window index failed");
        return;
    }
    size_t len = WIDX_HDR;
    for (size_t i = 0; i < x->n; i++)
        len += WENT_HDR + x->e[i].len;
    unsigned char *buf = malloc(len), *p = buf;
    if (!buf)
        abort();
    uint32_t n = (uint32_t)x->n;
    memcpy(p, &x->seq, 8);
    memcpy(p + 8, &n, 4);
    p += WIDX_HDR;
    for (size_t i = 0; i < x->n; i++) {
        const went_t *e = &x->e[i];
        memcpy(p, &e->start, 8);
        memcpy(p + 8, &e->end, 8);
        memcpy(p + 16, &e->count, 8);
        memcpy(p + 24, &e->armed, 8);
        memcpy(p + 32, &e->len, 4);
        if (e->len)
            memcpy(p + WENT_HDR, e->data, e->len);
        p += WENT_HDR + e->len;
    }
    if (len > UINT32_MAX || weir_value_put(ctx, w->idx, buf, (uint32_t)len) != 0)
        weir_fail(ctx, "window: writing the window index failed");
    free(buf);
}

/* The window starting at @p start, or NULL. */
static went_t *idx_find(windex_t *x, int64_t start) {
    for (size_t i = 0; i < x->n; i++)
        if (x->e[i].start == start)
            return &x->e[i];
    return NULL;
}

/* Inserts an empty window [start, end) in start order and returns it. */
static went_t *idx_insert(windex_t *x, int64_t start, int64_t end) {
    if (weir_array_grow((void **)&x->e, &x->cap, x->n + 1, sizeof *x->e, 8) != 0)
        abort();
    size_t i = x->n;
    while (i > 0 && x->e[i - 1].start > start)
        i--;
    memmove(&x->e[i + 1], &x->e[i], (x->n - i) * sizeof *x->e);
    x->n++;
    x->changed = true;
    x->e[i] = (went_t){.start = start, .end = end, .armed = INT64_MIN};
    return &x->e[i];
}

static void idx_remove(windex_t *x, went_t *e) {
    size_t i = (size_t)(e - x->e);
    memmove(&x->e[i], &x->e[i + 1], (x->n - i - 1) * sizeof *x->e);
    x->n--;
    x->changed = true;
}

/* ----- kept records (weir_window_process, weir_window_cogroup) ----- */

/* A window's kept records, in the index entry's data: items in ascending arrival sequence, each
 * | OFFSET | SIZE | DESCRIPTION                                                              |
 * |--------|------|--------------------------------------------------------------------------|
 * | 0      | 1    | 'i': a record inline, 'r': a run of records in the map state RECORDS      |
 * | 1      | 8    | 'i': its sequence number; 'r': the run's first sequence number (host)     |
 * | 9      | 4/8  | 'i': the record's length n (uint32); 'r': the run's last sequence number  |
 * | 13     | n    | 'i': the record: timestamp (8, host) ++ [side (1), cogroup only] ++ value |
 * A run's record with sequence s is the map entry [s, 8 bytes big-endian] -> the same record
 * bytes. A record is kept inline while the key's index stays within WINLINE_MAX bytes, else in
 * the map: a record costs no RocksDB access for small windows, and a hot key's index (rewritten
 * at each of its records) stays small. */
#define WINLINE_MAX 4096u

typedef struct item {
    uint64_t first, last;     /* sequence numbers (inline: first == last) */
    const unsigned char *rec; /* inline record, or NULL: the run is in the map */
    uint32_t len;
} item_t;

typedef struct kept {
    item_t *v;
    size_t n, cap;
    unsigned char *bytes; /* the serialized items an index entry points to */
    char *rec;            /* the new record of this call */
} kept_t;

static void kept_push(kept_t *k, item_t it) {
    if (!it.rec && k->n && !k->v[k->n - 1].rec && k->v[k->n - 1].last + 1 == it.first) {
        k->v[k->n - 1].last = it.last;
        return;
    }
    if (weir_array_grow((void **)&k->v, &k->cap, k->n + 1, sizeof *k->v, 8) != 0)
        abort();
    k->v[k->n++] = it;
}

/* Appends the items of @p e to @p k (kept_sort after the last window); false when malformed. */
static bool kept_of(kept_t *k, const went_t *e) {
    const unsigned char *p = e->data, *end = p + e->len;
    while (p < end) {
        item_t it = {0};
        if (end - p < 17)
            return false;
        memcpy(&it.first, p + 1, 8);
        if (p[0] == 'r') {
            memcpy(&it.last, p + 9, 8);
            p += 17;
        } else if (p[0] == 'i') {
            memcpy(&it.len, p + 9, 4);
            it.last = it.first;
            it.rec = p + 13;
            if ((size_t)(end - it.rec) < it.len)
                return false;
            p = it.rec + it.len;
        } else {
            return false;
        }
        kept_push(k, it);
    }
    return true;
}

static int by_first(const void *a, const void *b) {
    const item_t *x = a, *y = b;
    return x->first < y->first ? -1 : x->first > y->first;
}

/* Sorts the items (of several merged windows) and joins adjacent runs. */
static void kept_sort(kept_t *k) {
    if (k->n < 2)
        return;
    qsort(k->v, k->n, sizeof *k->v, by_first);
    size_t n = k->n;
    k->n = 0;
    for (size_t i = 0; i < n; i++)
        kept_push(k, k->v[i]);
}

/* Points @p e at the serialized items of @p k. */
static void kept_store(kept_t *k, went_t *e) {
    size_t len = 0;
    for (size_t i = 0; i < k->n; i++)
        len += k->v[i].rec ? 13 + (size_t)k->v[i].len : 17;
    unsigned char *p = realloc(k->bytes, len ? len : 1);
    if (!p)
        abort();
    k->bytes = p;
    for (size_t i = 0; i < k->n; i++) {
        const item_t *it = &k->v[i];
        p[0] = it->rec ? 'i' : 'r';
        memcpy(p + 1, &it->first, 8);
        if (it->rec) {
            memcpy(p + 9, &it->len, 4);
            memcpy(p + 13, it->rec, it->len);
            p += 13 + it->len;
        } else {
            memcpy(p + 9, &it->last, 8);
            p += 17;
        }
    }
    e->data = k->bytes;
    e->len = (uint32_t)len;
}

static void kept_free(kept_t *k) {
    free(k->v);
    free(k->bytes);
    free(k->rec);
}

static void seq_key(uint64_t seq, unsigned char k[8]) {
    for (int i = 7; i >= 0; i--, seq >>= 8)
        k[i] = (unsigned char)seq;
}

/* Keeps @p in under the next sequence number of @p x: inline in @p k, or in the map and a run of
 * @p k. */
static void keep_record(weir_ctx_t *ctx, window_op_t *w, windex_t *x, kept_t *k,
                        const weir_record_t *in) {
    uint64_t seq = x->seq++;
    x->changed = true;
    size_t hdr = w->cogroup ? 9 : 8, len = hdr + (size_t)in->value_len;
    char *buf = malloc(len);
    if (!buf)
        abort();
    memcpy(buf, &in->timestamp, 8);
    if (w->cogroup)
        buf[8] = (char)w->side;
    if (in->value_len)
        memcpy(buf + hdr, in->value, in->value_len);
    free(k->rec);
    k->rec = buf;
    if (x->raw_len + 13 + len <= WINLINE_MAX) {
        kept_push(k, (item_t){seq, seq, (const unsigned char *)buf, (uint32_t)len});
        return;
    }
    unsigned char key[8];
    seq_key(seq, key);
    if (weir_mapstate_put(ctx, w->st, key, 8, buf, (uint32_t)len) != 0)
        weir_fail(ctx, "window: writing a kept record failed");
    kept_push(k, (item_t){seq, seq, NULL, 0});
}

/* Removes the kept records of @p e that are in the map. */
static void drop_kept(weir_ctx_t *ctx, window_op_t *w, const went_t *e) {
    kept_t k = {0};
    if (!kept_of(&k, e))
        weir_fail(ctx, "window: a window's kept records are malformed");
    for (size_t i = 0; i < k.n; i++)
        for (uint64_t s = k.v[i].first; !k.v[i].rec && s <= k.v[i].last; s++) {
            unsigned char key[8];
            seq_key(s, key);
            if (weir_mapstate_remove(ctx, w->st, key, 8) != 0)
                weir_fail(ctx, "window: removing a kept record failed");
        }
    kept_free(&k);
}

/* Calls the process (or cogroup) function with the records of @p k (sorted) as @p win: cogroup
 * gets the left records first in recs[0..nl), the right ones after, each side in arrival
 * order. */
static void fire_kept(weir_ctx_t *ctx, window_op_t *w, const kept_t *k, weir_window_t win) {
    size_t n = 0, hdr = w->cogroup ? 9 : 8;
    for (size_t i = 0; i < k->n; i++)
        n += k->v[i].last - k->v[i].first + 1;
    if (!n)
        return;
    weir_record_t *all = weir_xcalloc(n, sizeof *all), *recs = weir_xcalloc(n, sizeof *recs);
    unsigned char *side = weir_xcalloc(n, 1);
    char **owned = weir_xcalloc(n, sizeof *owned); /* copies of the records read from the map */
    uint32_t kl;
    const void *key = weir_current_key(ctx, &kl);
    size_t m = 0, nl = 0;
    for (size_t i = 0; i < k->n; i++)
        for (uint64_t s = k->v[i].first; s <= k->v[i].last; s++) {
            const unsigned char *v = k->v[i].rec;
            uint32_t len = k->v[i].len;
            if (!v) {
                unsigned char sk[8];
                seq_key(s, sk);
                const void *mv;
                if (weir_mapstate_get(ctx, w->st, sk, 8, &mv, &len) != 0) {
                    weir_fail(ctx, "window: a kept record is missing");
                    goto out;
                }
                owned[m] = malloc(len ? len : 1);
                if (!owned[m])
                    abort();
                memcpy(owned[m], mv, len);
                v = (const unsigned char *)owned[m];
            }
            if (len < hdr) {
                weir_fail(ctx, "window: a kept record is malformed");
                goto out;
            }
            all[m] = (weir_record_t){0, key, kl, v + hdr, len - (uint32_t)hdr};
            memcpy(&all[m].timestamp, v, 8);
            side[m] = w->cogroup ? v[8] : 0;
            nl += side[m] == 0;
            m++;
        }
    size_t j = 0;
    for (int sd = 0; sd < 2; sd++) /* stable: arrival order within each side */
        for (size_t i = 0; i < m; i++)
            if (side[i] == sd)
                recs[j++] = all[i];
    if (w->cogroup)
        w->cogroup(ctx, &win, recs, nl, recs + nl, m - nl, w->udata);
    else
        w->process(ctx, &win, recs, m, w->udata);
out:
    for (size_t i = 0; i < n; i++)
        free(owned[i]);
    free(owned);
    free(all);
    free(recs);
    free(side);
}

/* Merges the panes of the window ending at @p end and emits its result if it has content. */
static void fire_panes(weir_ctx_t *ctx, window_op_t *w, windex_t *x, int64_t end) {
    int64_t lo = end - w->spec.size_ms;
    weir_window_t win = {lo, end};
    if (keeps(w)) {
        kept_t k = {0};
        bool ok = true;
        for (size_t i = 0; i < x->n; i++)
            if (x->e[i].start >= lo && x->e[i].start < end)
                ok = kept_of(&k, &x->e[i]) && ok;
        kept_sort(&k);
        if (ok)
            fire_kept(ctx, w, &k, win);
        else
            weir_fail(ctx, "window: a window's kept records are malformed");
        kept_free(&k);
        return;
    }
    acc_t a;
    acc_init(&a);
    acc_t b;
    acc_init(&b);
    for (size_t i = 0; i < x->n; i++) {
        const went_t *e = &x->e[i];
        if (e->start < lo || e->start >= end)
            continue;
        if (!acc_set_bytes(&b, e->data, e->len) || !acc_merge(w, &a, &b.obj, e->data, e->len)) {
            weir_fail(ctx, "window: a stored accumulator is not msgpack");
            break;
        }
    }
    if (a.set)
        w->fns.result(ctx, &win, &a.obj, w->udata);
    acc_free(&a);
    acc_free(&b);
}

static void late(weir_ctx_t *ctx, window_op_t *w, const weir_record_t *in) {
    if (w->spec.late_tag > 0)
        weir_emit_to(ctx, w->spec.late_tag, in);
    else
        weir__task_count_late(ctx); /* dropped */
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

/* Adds @p in to the window @p e: a kept record (the window's items become @p k's bytes) or the
 * accumulator (becomes @p out's bytes); both buffers must outlive the index's store. */
static void add_to(weir_ctx_t *ctx, window_op_t *w, windex_t *x, went_t *e, kept_t *k,
                   msgpack_sbuffer *out, const weir_record_t *in) {
    x->changed = true;
    if (keeps(w)) {
        if (!kept_of(k, e)) {
            weir_fail(ctx, "window: a window's kept records are malformed");
            return;
        }
        keep_record(ctx, w, x, k, in);
        kept_store(k, e);
        return;
    }
    acc_t acc;
    acc_init(&acc);
    if (e->len && !acc_set_bytes(&acc, e->data, e->len))
        weir_fail(ctx, "window: a stored accumulator is not msgpack");
    else if (add_record(ctx, w, &acc, in, out)) {
        e->data = (const unsigned char *)out->data;
        e->len = (uint32_t)out->size;
    }
    acc_free(&acc);
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
    windex_t x;
    if (!idx_load(ctx, w, &x)) {
        idx_free(&x);
        return;
    }
    went_t *e = idx_find(&x, ps);
    if (!e)
        e = idx_insert(&x, ps, ps + w->pane);
    kept_t k = {0};
    msgpack_sbuffer out;
    msgpack_sbuffer_init(&out);
    add_to(ctx, w, &x, e, &k, &out, in);
    uint64_t count = ++e->count;
    idx_store(ctx, w, &x);
    /* timers: the first window not fired yet, and the cleanup of the last one */
    int64_t fe = first;
    if (fe - 1 <= wm)
        fe += (floor_div(wm - (fe - 1), slide) + 1) * slide;
    if ((fe <= last && weir_timer_register_event_time(ctx, fe - 1) != 0) ||
        weir_timer_register_event_time(ctx, sat_add(last - 1, L)) != 0)
        weir_fail(ctx, "window: registering a timer failed");
    /* late firing: windows already fired but within the allowed lateness fire again */
    for (int64_t end = first; end <= last && end - 1 <= wm; end += slide)
        if (sat_add(end - 1, L) > wm)
            fire_panes(ctx, w, &x, end);
    /* count trigger (tumbling: the pane is the window); a late firing above already fired it */
    if (w->spec.count_trigger && count % w->spec.count_trigger == 0 && last - 1 > wm)
        fire_panes(ctx, w, &x, last);
    kept_free(&k);
    msgpack_sbuffer_destroy(&out);
    idx_free(&x);
}

static void on_timer_panes(weir_ctx_t *ctx, int64_t T, window_op_t *w) {
    int64_t L = w->spec.allowed_lateness_ms, slide = slide_of(w);
    int64_t end = T + 1;
    windex_t x;
    if (!idx_load(ctx, w, &x)) {
        idx_free(&x);
        return;
    }
    if (floor_div(end - w->spec.offset_ms, slide) * slide == end - w->spec.offset_ms)
        fire_panes(ctx, w, &x, end);
    int64_t next_fire = INT64_MAX, next_clean = INT64_MAX;
    for (size_t i = 0; i < x.n;) {
        went_t *e = &x.e[i];
        int64_t first, last;
        weir__window_pane_ends(&w->spec, w->pane, e->start, &first, &last);
        int64_t clean = sat_add(last - 1, L);
        if (clean <= T) {
            if (keeps(w))
                drop_kept(ctx, w, e);
            idx_remove(&x, e);
            continue;
        }
        i++;
        if (clean < next_clean)
            next_clean = clean;
        int64_t f = first;
        if (f - 1 <= T)
            f += (floor_div(T - (f - 1), slide) + 1) * slide;
        if (f <= last && f - 1 < next_fire)
            next_fire = f - 1;
    }
    idx_store(ctx, w, &x);
    idx_free(&x);
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

/* Fires the session @p e of the current key. */
static void session_fire(weir_ctx_t *ctx, window_op_t *w, const went_t *e) {
    weir_window_t win = {e->start, e->end};
    if (keeps(w)) {
        kept_t k = {0};
        if (kept_of(&k, e))
            fire_kept(ctx, w, &k, win);
        else
            weir_fail(ctx, "window: a window's kept records are malformed");
        kept_free(&k);
        return;
    }
    acc_t a;
    acc_init(&a);
    if (!acc_set_bytes(&a, e->data, e->len))
        weir_fail(ctx, "window: a stored session accumulator is not msgpack");
    else
        w->fns.result(ctx, &win, &a.obj, w->udata);
    acc_free(&a);
}

static void on_record_session(weir_ctx_t *ctx, const weir_record_t *in, window_op_t *w) {
    int64_t wm = weir_current_watermark(ctx), L = w->spec.allowed_lateness_ms;
    windex_t x;
    if (!idx_load(ctx, w, &x)) {
        idx_free(&x);
        return;
    }
    weir_window_session_t *all = weir_xcalloc(x.n, sizeof *all);
    for (size_t i = 0; i < x.n; i++)
        all[i] = (weir_window_session_t){x.e[i].start, x.e[i].end};
    int64_t start, end;
    weir__window_session_merge(all, x.n, in->timestamp, w->spec.gap_ms, &start, &end);
    free(all);
    if (sat_add(end - 1, L) <= wm) {
        idx_free(&x);
        late(ctx, w, in);
        return;
    }
    /* the sessions inside [start, end) merge into one: their accumulators (or records) and
     * counts; their timers stay: a timer is per (key, time), so one of them may be another
     * session's; a stale one finds no session ending (or expiring) at its time */
    acc_t acc;
    acc_init(&acc);
    kept_t k = {0};
    uint64_t count = 1;
    int64_t armed = INT64_MIN; /* the earliest pending fire timer of the merged sessions */
    for (size_t i = 0; i < x.n;) {
        went_t *e = &x.e[i];
        if (e->start < start || e->end > end) {
            i++;
            continue;
        }
        if (keeps(w)) {
            if (!kept_of(&k, e))
                weir_fail(ctx, "window: a window's kept records are malformed");
        } else {
            acc_t b;
            acc_init(&b);
            if (!acc_set_bytes(&b, e->data, e->len) || !acc_merge(w, &acc, &b.obj, e->data, e->len))
                weir_fail(ctx, "window: a stored session accumulator is not msgpack");
            acc_free(&b);
        }
        count += e->count;
        if (e->armed != INT64_MIN && (armed == INT64_MIN || e->armed < armed))
            armed = e->armed;
        idx_remove(&x, e);
    }
    kept_sort(&k);
    went_t *e = idx_insert(&x, start, end);
    msgpack_sbuffer out;
    msgpack_sbuffer_init(&out);
    if (keeps(w)) {
        keep_record(ctx, w, &x, &k, in);
        kept_store(&k, e);
    } else if (add_record(ctx, w, &acc, in, &out)) {
        e->data = (const unsigned char *)out.data;
        e->len = (uint32_t)out.size;
    }
    e->count = count;
    /* the new session's timers only: registering the fire time of a session of the key that
     * already fired (kept for the lateness) would fire it again, e.g. after a restore, when the
     * watermark starts over at INT64_MIN. A merged session's pending fire timer (at or before
     * the new end-1) is the new session's: when it fires it moves on to end-1, so a session
     * extended by many records costs a few timers, not one per record. A session late-fired
     * here gets its cleanup timer. */
    if (end - 1 > wm) {
        if (armed == INT64_MIN && weir_timer_register_event_time(ctx, end - 1) != 0)
            weir_fail(ctx, "window: registering a timer failed");
        e->armed = armed == INT64_MIN ? end - 1 : armed;
    } else if (weir_timer_register_event_time(ctx, sat_add(end - 1, L)) != 0) {
        weir_fail(ctx, "window: registering a timer failed");
    }
    idx_store(ctx, w, &x);
    bool count_fire = w->spec.count_trigger && count % w->spec.count_trigger == 0;
    if (end - 1 <= wm || count_fire) /* late firing within the lateness, or the count */
        session_fire(ctx, w, e);
    kept_free(&k);
    msgpack_sbuffer_destroy(&out);
    acc_free(&acc);
    idx_free(&x);
}

static void on_timer_session(weir_ctx_t *ctx, int64_t T, window_op_t *w) {
    int64_t L = w->spec.allowed_lateness_ms;
    windex_t x;
    if (!idx_load(ctx, w, &x)) {
        idx_free(&x);
        return;
    }
    for (size_t i = 0; i < x.n;) {
        went_t *e = &x.e[i];
        if (e->armed == T && e->end - 1 > T) { /* extended since: the timer moves to end-1 */
            e->armed = e->end - 1;
            x.changed = true;
            if (weir_timer_register_event_time(ctx, e->armed) != 0)
                weir_fail(ctx, "window: registering a timer failed");
        } else if (e->armed == T) { /* fires; kept until its cleanup timer */
            session_fire(ctx, w, e);
            e->armed = INT64_MIN;
            x.changed = true;
            if (sat_add(T, L) > T && weir_timer_register_event_time(ctx, sat_add(T, L)) != 0)
                weir_fail(ctx, "window: registering a timer failed");
        }
        if (e->armed == INT64_MIN && sat_add(e->end - 1, L) <= T) {
            if (keeps(w))
                drop_kept(ctx, w, e);
            idx_remove(&x, e);
            continue;
        }
        i++;
    }
    idx_store(ctx, w, &x);
    idx_free(&x);
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
    w->idx = weir_value_state(op, WINDEX);
    if (keeps(w))
        w->st = weir_map_state(op, WRECORDS);
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
