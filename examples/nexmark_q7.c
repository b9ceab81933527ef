/* Nexmark q7, highest bid (nexmark/nexmark q7.sql): for every 10 s tumbling window [s, e) with
 * bids, MAX(price) over its bids; output every bid B with B.price = that max and
 * s <= B.dateTime <= e (BETWEEN includes both ends: a bid at exactly e, which belongs to the
 * next window, also matches this window's max), as {"auction", "bidder", "price", "dateTime",
 * "extra"}.
 *
 *   late split "q7-bids" (bids; late: ceil(dateTime / 10 s) * 10 s - 1 <= watermark, the end
 *   of the first window a bid can match) -> "q7-prepare" (flat_map: [auction, bidder, price,
 *   dateTime, extra, 0] at dateTime, and for a bid at exactly a multiple of 10 s a copy flagged
 *   1 at dateTime - 1, i.e. in the window that ends at its dateTime; --price-modulo M, a test
 *   knob, takes every price modulo M so that prices tie) -> "q7-max"
 *   (weir_window_all_aggregate, tumbling 10 s, parallelism 1; accumulator [max, [bids at max],
 *   [flagged copies with price >= max]]; the max is over unflagged bids only) -> JSON -> sink.
 * Threading: subtask thread only; no state outside the window operator. */
#include "nexmark_gen.h"
#include "nexmark_queries.h"

#define Q7_SIZE_MS 10000

static int64_t q7_first_end(int64_t ts) {
    return -nexmark_floor_div(-ts, Q7_SIZE_MS) * Q7_SIZE_MS; /* ceil to the window size */
}

static void prepare(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    const nexmark_query_opts_t *o = udata;
    msgpack_object obj;
    if (!nexmark_unpack_event(ctx, in, NEXMARK_BID, &obj)) {
        weir_fail(ctx, "q7-prepare: expected a bid");
        return;
    }
    const msgpack_object *f = obj.via.array.ptr;
    static const uint32_t keep[] = {NEXMARK_BID_AUCTION, NEXMARK_BID_BIDDER, NEXMARK_BID_PRICE,
                                    NEXMARK_BID_DATETIME, NEXMARK_BID_EXTRA};
    int copies = in->timestamp % Q7_SIZE_MS == 0 ? 2 : 1;
    for (int c = 0; c < copies; c++) {
        msgpack_packer *pk = weir_packer(ctx);
        msgpack_pack_array(pk, 6);
        for (uint32_t i = 0; i < 5; i++) {
            if (keep[i] == NEXMARK_BID_PRICE && o->price_modulo > 0)
                msgpack_pack_int64(pk, f[keep[i]].via.i64 % o->price_modulo);
            else
                msgpack_pack_object(pk, f[keep[i]]);
        }
        msgpack_pack_int(pk, c);
        weir_emit_packed(ctx, in->timestamp - c, NULL, 0);
    }
}

/* Accumulator: [max (-1: no unflagged bid yet), [bid...], [flagged copy...]]. */
static void max_create(msgpack_packer *acc, void *udata) {
    (void)udata;
    msgpack_pack_array(acc, 3);
    msgpack_pack_int64(acc, -1);
    msgpack_pack_array(acc, 0);
    msgpack_pack_array(acc, 0);
}

static bool acc_valid(const msgpack_object *a) {
    return a->type == MSGPACK_OBJECT_ARRAY && a->via.array.size == 3 &&
           a->via.array.ptr[1].type == MSGPACK_OBJECT_ARRAY &&
           a->via.array.ptr[2].type == MSGPACK_OBJECT_ARRAY;
}

static int64_t price_of(const msgpack_object *bid) {
    return bid->via.array.ptr[2].via.i64;
}

/* Up to two lists of bids; packs those whose price satisfies (== m) or (>= m). */
typedef struct lists {
    const msgpack_object *l[2];
} lists_t;

static void pack_filtered(msgpack_packer *out, lists_t ls, int64_t m, bool at_least) {
    uint32_t n = 0;
    for (int k = 0; k < 2; k++)
        for (uint32_t i = 0; ls.l[k] && i < ls.l[k]->via.array.size; i++) {
            int64_t p = price_of(&ls.l[k]->via.array.ptr[i]);
            n += at_least ? p >= m : p == m;
        }
    msgpack_pack_array(out, n);
    for (int k = 0; k < 2; k++)
        for (uint32_t i = 0; ls.l[k] && i < ls.l[k]->via.array.size; i++) {
            int64_t p = price_of(&ls.l[k]->via.array.ptr[i]);
            if (at_least ? p >= m : p == m)
                msgpack_pack_object(out, ls.l[k]->via.array.ptr[i]);
        }
}

static void pack_acc(msgpack_packer *out, int64_t m, lists_t bids, lists_t copies) {
    msgpack_pack_array(out, 3);
    msgpack_pack_int64(out, m);
    pack_filtered(out, bids, m, false);
    pack_filtered(out, copies, m, true);
}

static void max_add(const msgpack_object *acc, const weir_record_t *in, msgpack_packer *out,
                    void *udata) {
    (void)udata;
    msgpack_object v;
    msgpack_zone z;
    msgpack_zone_init(&z, 256);
    size_t off = 0;
    bool ok = msgpack_unpack(in->value, in->value_len, &off, &z, &v) == MSGPACK_UNPACK_SUCCESS &&
              v.type == MSGPACK_OBJECT_ARRAY && v.via.array.size == 6 && acc_valid(acc);
    if (!ok) {
        msgpack_pack_object(out, *acc);
    } else {
        int64_t m = acc->via.array.ptr[0].via.i64, p = price_of(&v);
        bool flagged = v.via.array.ptr[5].via.i64 != 0;
        msgpack_object one = {.type = MSGPACK_OBJECT_ARRAY, .via.array = {.size = 1, .ptr = &v}};
        lists_t bids = {{&acc->via.array.ptr[1], NULL}}, copies = {{&acc->via.array.ptr[2], NULL}};
        if (flagged)
            copies.l[1] = &one;
        else if (p >= m) {
            bids.l[1] = &one;
            m = p;
        }
        pack_acc(out, m, bids, copies);
    }
    msgpack_zone_destroy(&z);
}

static void max_merge(const msgpack_object *a, const msgpack_object *b, msgpack_packer *out,
                      void *udata) {
    (void)udata;
    if (!acc_valid(a) || !acc_valid(b)) {
        msgpack_pack_object(out, acc_valid(a) ? *a : *b);
        return;
    }
    int64_t ma = a->via.array.ptr[0].via.i64, mb = b->via.array.ptr[0].via.i64;
    lists_t bids = {{&a->via.array.ptr[1], &b->via.array.ptr[1]}};
    lists_t copies = {{&a->via.array.ptr[2], &b->via.array.ptr[2]}};
    pack_acc(out, ma > mb ? ma : mb, bids, copies);
}

static bool emit_bid(weir_ctx_t *ctx, const weir_window_t *w, const msgpack_object *bid) {
    const msgpack_object *f = bid->via.array.ptr;
    nexmark_json_t j;
    nexmark_json_begin(&j);
    nexmark_json_member(&j, "auction", &f[0]);
    nexmark_json_member(&j, "bidder", &f[1]);
    nexmark_json_member(&j, "price", &f[2]);
    nexmark_json_member(&j, "dateTime", &f[3]);
    nexmark_json_member(&j, "extra", &f[4]);
    return nexmark_json_emit(&j, ctx, w->end - 1, "q7");
}

static void max_result(weir_ctx_t *ctx, const weir_window_t *w, const msgpack_object *acc,
                       void *udata) {
    (void)udata;
    if (!acc_valid(acc)) {
        weir_fail(ctx, "q7-max: malformed accumulator");
        return;
    }
    int64_t m = acc->via.array.ptr[0].via.i64;
    if (m < 0) /* only copies: the window has no bid of its own, so no max */
        return;
    for (int k = 1; k <= 2; k++) {
        const msgpack_object *l = &acc->via.array.ptr[k];
        for (uint32_t i = 0; i < l->via.array.size; i++)
            if (price_of(&l->via.array.ptr[i]) == m && !emit_bid(ctx, w, &l->via.array.ptr[i]))
                return;
    }
}

int nexmark_q7(weir_job_t *job, weir_stream_t *src, const nexmark_query_opts_t *o) {
    weir_stream_t *bids =
        nexmark_select(job, src, "q7-bids", NEXMARK_BID, 0, NULL, q7_first_end, o);
    if (!bids)
        return -1;
    weir_stream_t *prep =
        weir_set_uid(weir_flat_map(bids, "q7-prepare", prepare, (void *)o), "q7-prepare");
    static const weir_aggregate_fns_t fns = {max_create, max_add, max_merge, max_result};
    weir_window_spec_t spec = {.kind = WEIR_WINDOW_TUMBLING, .size_ms = Q7_SIZE_MS};
    weir_stream_t *max = weir_window_all_aggregate(prep, "q7-max", &spec, &fns, NULL);
    if (!max)
        return -1;
    weir_set_uid(max, "q7-max");
    weir_set_parallelism(nexmark_sink(max, o), 1); /* forward from the single window subtask */
    return 0;
}
