/* Datagen and user generator sources (index cursor and rate limiter: connectors/common/pacing.h).
 *
 * Owns: the WEIR_OP_SOURCE_DATAGEN and WEIR_OP_SOURCE_GENERATOR operators and the datagen value
 * helpers (splitmix64, datagen_value, be64; connectors/datagen/datagen.h).
 * Invariants: at the first start subtask s of p handles record indices s, s+p, s+2p, ... below
 * `count` (count 0 = unbounded): its split; a restore at another parallelism p' hands each old
 * split (id s, stride p, next index) whole to new subtask s mod p' (weir_gen_splits_t), so the
 * subtasks always produce disjoint, reproducible records whose union is every index. Values
 * depend only on the index (and the seed). Rate limiting never sleeps: run() returns
 * WEIR_SOURCE_MORE with *wake_ns set to when the next record is due; an unbounded subtask left
 * without splits idles the same way. At most `budget` records per run() call. Position
 * (snapshot): [k], the number of records the subtask emitted from its own split (the next index
 * is s + k*p), or [stride, [[split, next index], ...]] after a rescale.
 * Threading: an operator instance runs on its subtask thread only. */
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"
#include "connectors/common/pacing.h"
#include "connectors/datagen/datagen.h"

uint64_t weir__splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

uint64_t weir__datagen_value(const weir_datagen_opts_t *opts, uint64_t index) {
    if (opts->kind == WEIR_DATAGEN_RANDOM) {
        uint64_t v = weir__splitmix64(opts->seed ^ index);
        return opts->random_max ? v % opts->random_max : v;
    }
    return opts->start + index;
}

void weir__be64(uint64_t v, uint8_t out[8]) {
    for (int i = 7; i >= 0; i--) {
        out[i] = (uint8_t)(v & 0xff);
        v >>= 8;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Splits (positions)                                                                       */
/* ---------------------------------------------------------------------------------------- */

static void splits_add(weir_gen_splits_t *g, uint32_t id, uint64_t next) {
    if (weir_array_grow((void **)&g->v, &g->cap, g->n + 1, sizeof(*g->v), 4) != 0)
        abort();
    size_t i = g->n;
    while (i > 0 && g->v[i - 1].id > id) /* keep ascending ids */
        i--;
    memmove(&g->v[i + 1], &g->v[i], (g->n - i) * sizeof(*g->v));
    g->v[i] = (weir_gen_split_t){
        .id = id, .c = {.next = next, .step = g->stride, .count = g->count}, .max_ts = INT64_MIN};
    g->n++;
}

void weir__gen_splits_free(weir_gen_splits_t *g) {
    free(g->v);
    memset(g, 0, sizeof(*g));
}

void weir__gen_splits_init(weir_gen_splits_t *g, uint32_t subtask, uint32_t parallelism,
                           uint64_t count) {
    weir__gen_splits_free(g);
    g->stride = parallelism ? parallelism : 1;
    g->count = count;
    g->wm_floor = INT64_MIN;
    splits_add(g, subtask, subtask);
}

bool weir__gen_splits_more(const weir_gen_splits_t *g) {
    for (size_t i = 0; i < g->n; i++)
        if (weir__cursor_more(&g->v[i].c))
            return true;
    return false;
}

uint64_t weir__gen_splits_take(weir_gen_splits_t *g) {
    weir_index_cursor_t *best = NULL;
    for (size_t i = 0; i < g->n; i++)
        if (weir__cursor_more(&g->v[i].c) && (!best || g->v[i].c.next < best->next)) {
            best = &g->v[i].c;
            g->last = i;
        }
    return weir__cursor_take(best);
}

void weir__gen_splits_pack(msgpack_packer *pk, const weir_gen_splits_t *g, uint32_t subtask,
                           uint32_t parallelism) {
    if (g->n == 1 && g->v[0].id == subtask && g->stride == parallelism) {
        msgpack_pack_array(pk, 1);
        msgpack_pack_uint64(pk, weir__cursor_position(&g->v[0].c, subtask));
        return;
    }
    msgpack_pack_array(pk, 2);
    msgpack_pack_uint64(pk, g->stride);
    msgpack_pack_array(pk, g->n);
    for (size_t i = 0; i < g->n; i++) {
        msgpack_pack_array(pk, 2);
        msgpack_pack_uint32(pk, g->v[i].id);
        msgpack_pack_uint64(pk, g->v[i].c.next);
    }
}

static void pack_key(msgpack_packer *pk, const char *k) {
    msgpack_pack_str(pk, strlen(k));
    msgpack_pack_str_body(pk, k, strlen(k));
}

void weir__gen_splits_pack_wm(msgpack_packer *pk, const weir_gen_splits_t *g, uint32_t subtask,
                              uint32_t parallelism, int64_t wm, bool idle, const int64_t *max_ts) {
    msgpack_pack_map(pk, 4);
    pack_key(pk, "pos");
    weir__gen_splits_pack(pk, g, subtask, parallelism);
    pack_key(pk, "wm");
    msgpack_pack_int64(pk, wm);
    pack_key(pk, "idle");
    if (idle)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    pack_key(pk, "max");
    msgpack_pack_array(pk, g->n);
    for (size_t i = 0; i < g->n; i++) {
        msgpack_pack_array(pk, 2);
        msgpack_pack_uint32(pk, g->v[i].id);
        msgpack_pack_int64(pk, max_ts[i]);
    }
}

static bool obj_i64(const msgpack_object *o, int64_t *v) {
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *v = o->via.i64;
        return true;
    }
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= (uint64_t)INT64_MAX) {
        *v = (int64_t)o->via.u64;
        return true;
    }
    return false;
}

/* The map of weir__gen_splits_pack_wm: its members (NULL when absent). */
static const msgpack_object *map_get(const msgpack_object *m, const char *k) {
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *key = &m->via.map.ptr[i].key;
        if (key->type == MSGPACK_OBJECT_STR && key->via.str.size == strlen(k) &&
            memcmp(key->via.str.ptr, k, key->via.str.size) == 0)
            return &m->via.map.ptr[i].val;
    }
    return NULL;
}

static bool obj_u64(const msgpack_object *o, uint64_t *v) {
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return false;
    *v = o->via.u64;
    return true;
}

/* Adds the splits of old subtask @p old (of @p old_p) that go to @p subtask of @p p. */
static int splits_restore_one(weir_gen_splits_t *g, const msgpack_object *st, uint32_t old,
                              uint32_t old_p, uint32_t subtask, uint32_t p, char *errstr,
                              size_t errlen) {
    const msgpack_object *a = st->via.array.ptr;
    uint64_t k, stride, id, next;
    if (st->type == MSGPACK_OBJECT_ARRAY && st->via.array.size == 1 && obj_u64(&a[0], &k)) {
        /* [k]: the own split of old subtask `old` at its parallelism */
        if (g->stride && g->stride != old_p)
            return weir_errf(errstr, errlen, WEIR_ECORRUPT,
                             "old subtask %u's position has stride %u, another one %llu", old,
                             old_p, (unsigned long long)g->stride);
        g->stride = old_p;
        if (old % p == subtask)
            splits_add(g, old, old + k * old_p);
        return 0;
    }
    if (st->type != MSGPACK_OBJECT_ARRAY || st->via.array.size != 2 || !obj_u64(&a[0], &stride) ||
        stride == 0 || stride > UINT32_MAX || a[1].type != MSGPACK_OBJECT_ARRAY)
        return weir_errf(errstr, errlen, WEIR_ECORRUPT,
                         "old subtask %u's position is neither [k] nor [stride, [[split, next "
                         "index], ...]]",
                         old);
    if (g->stride && g->stride != stride)
        return weir_errf(errstr, errlen, WEIR_ECORRUPT,
                         "old subtask %u's position has stride %llu, another one %llu", old,
                         (unsigned long long)stride, (unsigned long long)g->stride);
    g->stride = stride;
    for (uint32_t i = 0; i < a[1].via.array.size; i++) {
        const msgpack_object *e = &a[1].via.array.ptr[i];
        if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 2 ||
            !obj_u64(&e->via.array.ptr[0], &id) || !obj_u64(&e->via.array.ptr[1], &next) ||
            id >= stride || next % stride != id)
            return weir_errf(errstr, errlen, WEIR_ECORRUPT,
                             "old subtask %u's split %u is not [split < stride, next index of "
                             "that split]",
                             old, i);
        if (id % p == subtask)
            splits_add(g, (uint32_t)id, next);
    }
    return 0;
}

/* Event time members of old subtask @p old's map state @p st (the position already restored):
 * the max timestamps of the splits it gave us, and the watermark floor. */
static int splits_restore_wm(weir_gen_splits_t *g, const msgpack_object *st, uint32_t old,
                             size_t n_before, char *errstr, size_t errlen) {
    const msgpack_object *wm = map_get(st, "wm"), *max = map_get(st, "max"),
                         *idle = map_get(st, "idle");
    int64_t w;
    if (!wm || !obj_i64(wm, &w) || !max || max->type != MSGPACK_OBJECT_ARRAY || !idle ||
        idle->type != MSGPACK_OBJECT_BOOLEAN)
        return weir_errf(errstr, errlen, WEIR_ECORRUPT,
                         "old subtask %u's event-time state lacks \"wm\", \"idle\" or \"max\"",
                         old);
    if (g->n >
        n_before) { /* a subtask taking splits of several old ones: the lowest, idle if all */
        bool first = !g->wm_seen;
        if (first || w < g->wm_floor)
            g->wm_floor = w;
        g->wm_idle = (first || g->wm_idle) && idle->via.boolean;
        g->wm_seen = true;
    }
    for (uint32_t i = 0; i < max->via.array.size; i++) {
        const msgpack_object *e = &max->via.array.ptr[i];
        uint64_t id;
        int64_t ts;
        if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 2 ||
            !obj_u64(&e->via.array.ptr[0], &id) || !obj_i64(&e->via.array.ptr[1], &ts))
            return weir_errf(errstr, errlen, WEIR_ECORRUPT,
                             "old subtask %u's max timestamp %u is not [split, timestamp]", old, i);
        for (size_t k = 0; k < g->n; k++)
            if (g->v[k].id == id)
                g->v[k].max_ts = ts;
    }
    return 0;
}

int weir__gen_splits_restore(weir_gen_splits_t *g, const weir_op_restore_t *r, uint32_t subtask,
                             uint32_t parallelism, uint64_t count, char *errstr, size_t errlen) {
    weir__gen_splits_free(g);
    g->count = count;
    g->wm_floor = INT64_MIN;
    uint32_t p = parallelism ? parallelism : 1;
    int rc = 0;
    for (uint32_t i = 0; i < r->n && rc == 0; i++) {
        const msgpack_object *st = &r->states[i], *pos = st;
        if (st->type == MSGPACK_OBJECT_MAP && !(pos = map_get(st, "pos"))) {
            rc = weir_errf(errstr, errlen, WEIR_ECORRUPT, "old subtask %u's state lacks \"pos\"",
                           r->old_subtask[i]);
            break;
        }
        size_t before = g->n;
        rc = splits_restore_one(g, pos, r->old_subtask[i], r->old_parallelism, subtask, p, errstr,
                                errlen);
        if (rc == 0 && st->type == MSGPACK_OBJECT_MAP)
            rc = splits_restore_wm(g, st, r->old_subtask[i], before, errstr, errlen);
    }
    for (size_t i = 1; i < g->n && rc == 0; i++)
        if (g->v[i].id == g->v[i - 1].id)
            rc = weir_errf(errstr, errlen, WEIR_ECORRUPT, "split %u is held by two old subtasks",
                           g->v[i].id);
    for (size_t i = 0; i < g->n; i++)
        g->v[i].c.step = g->stride;
    if (rc != 0)
        weir__gen_splits_free(g);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Operators                                                                                */
/* ---------------------------------------------------------------------------------------- */

/* An unbounded subtask left without splits by a rescale is idle: it serves its mailbox
 * (checkpoints, cancel) and checks back this often. */
#define GEN_IDLE_NS 1000000000LL

typedef struct weir_gen_source {
    weir_gen_splits_t splits;
    weir_rate_t rate;
} weir_gen_source_t;

static uint64_t gen_count(const weir_node_t *n) {
    return n->kind == WEIR_OP_SOURCE_DATAGEN ? n->datagen.count : n->count;
}

static int gen_open(weir_operator_t *op, weir_ctx_t *ctx) {
    weir_gen_source_t *g = op->impl;
    const weir_node_t *n = op->node;
    if (n->kind == WEIR_OP_SOURCE_GENERATOR && n->fn == NULL) {
        weir_fail(ctx, "generator source '%s': no generator function (define() did not set one)",
                  n->name);
        return WEIR_EINVAL;
    }
    double rate = n->kind == WEIR_OP_SOURCE_DATAGEN ? n->datagen.rate : n->rate;
    weir__rate_init(&g->rate, rate, op->parallelism);
    /* event time: split i of this subtask is g->splits.v[i] (restored max timestamps) */
    for (size_t i = 0; i < g->splits.n; i++)
        weir_source_split_add(ctx, (uint32_t)i, g->splits.v[i].max_ts);
    weir_source_watermark_floor(ctx, g->splits.wm_floor, g->splits.wm_idle);
    return 0;
}

/* How many records this call may emit, or 0 with *wake_ns set. */
static uint32_t gen_permits(weir_gen_source_t *g, uint32_t budget, int64_t *wake_ns) {
    int64_t now = g->rate.per_sec > 0 ? weir_now_ns() : 0;
    return weir__rate_permits(&g->rate, now, budget, wake_ns);
}

/* Before emitting: WEIR_SOURCE_END when bounded and done, WEIR_SOURCE_MORE with *wake_ns set
 * when idle (unbounded without splits) or rate-limited (*k = 0), else 0 with *k permits. */
static int gen_before(weir_gen_source_t *g, uint32_t budget, int64_t *wake_ns, uint32_t *k) {
    *k = 0;
    if (!weir__gen_splits_more(&g->splits)) {
        if (g->splits.count != 0)
            return WEIR_SOURCE_END;
        *wake_ns = weir_now_ns() + GEN_IDLE_NS;
        return WEIR_SOURCE_MORE;
    }
    *k = gen_permits(g, budget, wake_ns);
    return *k == 0 ? WEIR_SOURCE_MORE : 0;
}

static int datagen_run(weir_operator_t *op, weir_ctx_t *ctx, uint32_t budget, int64_t *wake_ns) {
    weir_gen_source_t *g = op->impl;
    const weir_datagen_opts_t *opts = &op->node->datagen;
    uint32_t k;
    int rc = gen_before(g, budget, wake_ns, &k);
    if (k == 0)
        return rc;
    int64_t ts = weir_wall_ms();
    uint32_t i = 0;
    uint8_t key[8];
    for (; i < k && weir__gen_splits_more(&g->splits); i++) {
        uint64_t v = weir__datagen_value(opts, weir__gen_splits_take(&g->splits));
        weir_source_split(ctx, (uint32_t)g->splits.last);
        msgpack_packer *pk = weir_packer(ctx);
        msgpack_pack_uint64(pk, v);
        weir__be64(v, key);
        weir_emit_packed(ctx, ts, key, sizeof(key));
    }
    weir__rate_note(&g->rate, i);
    return weir__gen_splits_more(&g->splits) || g->splits.count == 0 ? WEIR_SOURCE_MORE
                                                                     : WEIR_SOURCE_END;
}

static int generator_run(weir_operator_t *op, weir_ctx_t *ctx, uint32_t budget, int64_t *wake_ns) {
    weir_gen_source_t *g = op->impl;
    weir_generator_fn fn = (weir_generator_fn)op->node->fn;
    void *udata = op->node->udata;
    uint32_t k;
    int rc = gen_before(g, budget, wake_ns, &k);
    if (k == 0)
        return rc;
    uint32_t i = 0;
    for (; i < k && weir__gen_splits_more(&g->splits); i++) {
        uint64_t index = weir__gen_splits_take(&g->splits);
        weir_source_split(ctx, (uint32_t)g->splits.last);
        fn(ctx, index, udata);
    }
    weir__rate_note(&g->rate, i);
    return weir__gen_splits_more(&g->splits) || g->splits.count == 0 ? WEIR_SOURCE_MORE
                                                                     : WEIR_SOURCE_END;
}

/* Position: weir__gen_splits_pack ([k] for a subtask running its own split). */
static int gen_snapshot(weir_operator_t *op, weir_ctx_t *ctx, uint64_t checkpoint_id,
                        msgpack_packer *pk) {
    weir_gen_source_t *g = op->impl;
    (void)checkpoint_id;
    if (!weir_source_has_watermarks(ctx)) {
        weir__gen_splits_pack(pk, &g->splits, op->subtask, op->parallelism);
        return 0;
    }
    int64_t *max_ts = weir_xcalloc(g->splits.n, sizeof *max_ts);
    for (size_t i = 0; i < g->splits.n; i++)
        max_ts[i] = weir_source_split_max(ctx, (uint32_t)i);
    weir__gen_splits_pack_wm(pk, &g->splits, op->subtask, op->parallelism,
                             weir_source_watermark(ctx), weir_source_idle(ctx), max_ts);
    free(max_ts);
    return 0;
}

static int gen_restore(weir_operator_t *op, weir_ctx_t *ctx, const weir_op_restore_t *r) {
    weir_gen_source_t *g = op->impl;
    char err[256];
    if (weir__gen_splits_restore(&g->splits, r, op->subtask, op->parallelism, gen_count(op->node),
                                 err, sizeof(err)) != 0) {
        weir_fail(ctx, "source '%s': malformed position in the checkpoint state: %s",
                  op->node->name, err);
        return WEIR_ECORRUPT;
    }
    return 0;
}

static void gen_close(weir_operator_t *op) {
    weir_gen_source_t *g = op->impl;
    if (g)
        weir__gen_splits_free(&g->splits);
    free(g);
    op->impl = NULL;
}

static const weir_operator_vt_t datagen_vt = {.open = gen_open,
                                              .run = datagen_run,
                                              .close = gen_close,
                                              .snapshot = gen_snapshot,
                                              .restore = gen_restore};
static const weir_operator_vt_t generator_vt = {.open = gen_open,
                                                .run = generator_run,
                                                .close = gen_close,
                                                .snapshot = gen_snapshot,
                                                .restore = gen_restore};

int weir__datagen_create(weir_operator_t *op, char *errstr, size_t errlen) {
    weir_gen_source_t *g = calloc(1, sizeof(*g));
    if (!g) {
        weir_fmt(errstr, errlen, "source '%s': out of memory", op->node->name);
        return WEIR_ENOMEM;
    }
    /* A fresh start's split; a restore replaces it. */
    weir__gen_splits_init(&g->splits, op->subtask, op->parallelism, gen_count(op->node));
    op->impl = g;
    op->vt = op->node->kind == WEIR_OP_SOURCE_DATAGEN ? &datagen_vt : &generator_vt;
    return 0;
}
