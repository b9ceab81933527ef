/* Datagen and user generator sources (index cursor and rate limiter: connectors/common/pacing.h).
 *
 * Owns: the WEIR_OP_SOURCE_DATAGEN and WEIR_OP_SOURCE_GENERATOR operators and the datagen value
 * helpers (splitmix64, datagen_value, be64; connectors/datagen/datagen.h).
 * Invariants: subtask s of p handles record indices s, s+p, s+2p, ... below `count` (count 0 =
 * unbounded), so subtasks produce disjoint, reproducible records. Values depend only on the index
 * (and the seed). Rate limiting never sleeps: run() returns WEIR_SOURCE_MORE with *wake_ns set to
 * when the next record is due. At most `budget` records per run() call. Position (snapshot):
 * [k], the number of records the subtask emitted; a restore resumes at index s + k*p.
 * Threading: an operator instance runs on its subtask thread only. */
#include <stdlib.h>

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
/* Operators                                                                                */
/* ---------------------------------------------------------------------------------------- */

typedef struct weir_gen_source {
    weir_index_cursor_t idx;
    weir_rate_t rate;
    bool restored;
    uint64_t restore_k; /* position to resume at when restored */
} weir_gen_source_t;

static int gen_open(weir_operator_t *op, weir_ctx_t *ctx) {
    weir_gen_source_t *g = op->impl;
    const weir_node_t *n = op->node;
    if (n->kind == WEIR_OP_SOURCE_GENERATOR && n->fn == NULL) {
        weir_fail(ctx, "generator source '%s': no generator function (define() did not set one)",
                  n->name);
        return WEIR_EINVAL;
    }
    weir__cursor_init(&g->idx, op->subtask, op->parallelism,
                      n->kind == WEIR_OP_SOURCE_DATAGEN ? n->datagen.count : n->count);
    if (g->restored)
        weir__cursor_seek(&g->idx, op->subtask, g->restore_k);
    double rate = n->kind == WEIR_OP_SOURCE_DATAGEN ? n->datagen.rate : n->rate;
    weir__rate_init(&g->rate, rate, op->parallelism);
    return 0;
}

/* How many records this call may emit, or 0 with *wake_ns set. */
static uint32_t gen_permits(weir_gen_source_t *g, uint32_t budget, int64_t *wake_ns) {
    int64_t now = g->rate.per_sec > 0 ? weir_now_ns() : 0;
    return weir__rate_permits(&g->rate, now, budget, wake_ns);
}

static int datagen_run(weir_operator_t *op, weir_ctx_t *ctx, uint32_t budget, int64_t *wake_ns) {
    weir_gen_source_t *g = op->impl;
    const weir_datagen_opts_t *opts = &op->node->datagen;
    if (!weir__cursor_more(&g->idx))
        return WEIR_SOURCE_END;
    uint32_t k = gen_permits(g, budget, wake_ns);
    if (k == 0)
        return WEIR_SOURCE_MORE;
    int64_t ts = weir_wall_ms();
    uint32_t i = 0;
    uint8_t key[8];
    for (; i < k && weir__cursor_more(&g->idx); i++) {
        uint64_t v = weir__datagen_value(opts, weir__cursor_take(&g->idx));
        msgpack_packer *pk = weir_packer(ctx);
        msgpack_pack_uint64(pk, v);
        weir__be64(v, key);
        weir_emit_packed(ctx, ts, key, sizeof(key));
    }
    weir__rate_note(&g->rate, i);
    return weir__cursor_more(&g->idx) ? WEIR_SOURCE_MORE : WEIR_SOURCE_END;
}

static int generator_run(weir_operator_t *op, weir_ctx_t *ctx, uint32_t budget, int64_t *wake_ns) {
    weir_gen_source_t *g = op->impl;
    weir_generator_fn fn = (weir_generator_fn)op->node->fn;
    void *udata = op->node->udata;
    if (!weir__cursor_more(&g->idx))
        return WEIR_SOURCE_END;
    uint32_t k = gen_permits(g, budget, wake_ns);
    if (k == 0)
        return WEIR_SOURCE_MORE;
    uint32_t i = 0;
    for (; i < k && weir__cursor_more(&g->idx); i++) {
        fn(ctx, weir__cursor_take(&g->idx), udata);
    }
    weir__rate_note(&g->rate, i);
    return weir__cursor_more(&g->idx) ? WEIR_SOURCE_MORE : WEIR_SOURCE_END;
}

/* Position: [k], the number of records this subtask emitted (its next index is s + k*p). */
static int gen_snapshot(weir_operator_t *op, weir_ctx_t *ctx, uint64_t checkpoint_id,
                        msgpack_packer *pk) {
    weir_gen_source_t *g = op->impl;
    (void)ctx;
    (void)checkpoint_id;
    msgpack_pack_array(pk, 1);
    uint64_t k = g->idx.step ? weir__cursor_position(&g->idx, op->subtask) : g->restore_k;
    msgpack_pack_uint64(pk, k);
    return 0;
}

static int gen_restore(weir_operator_t *op, weir_ctx_t *ctx, uint64_t checkpoint_id,
                       const msgpack_object *state) {
    weir_gen_source_t *g = op->impl;
    (void)checkpoint_id;
    if (!state || state->type == MSGPACK_OBJECT_NIL)
        return 0; /* no position stored: start from the beginning */
    if (state->type != MSGPACK_OBJECT_ARRAY || state->via.array.size != 1 ||
        state->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        weir_fail(ctx, "source '%s': malformed position in the checkpoint state", op->node->name);
        return WEIR_ECORRUPT;
    }
    g->restored = true;
    g->restore_k = state->via.array.ptr[0].via.u64;
    return 0;
}

static void gen_close(weir_operator_t *op) {
    free(op->impl);
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
    op->impl = g;
    op->vt = op->node->kind == WEIR_OP_SOURCE_DATAGEN ? &datagen_vt : &generator_vt;
    return 0;
}
