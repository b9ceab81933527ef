/* Nexmark q5, hot items (nexmark/nexmark q5.sql): for every window of 10 s sliding by 2 s, the
 * auctions with the most bids in it (every auction whose count is the window's maximum; ties
 * all emitted), as {"auction": id, "num": count}.
 *
 *   late split "q5-bids" (bids, key auction; late: first window end - 1 <= watermark) ->
 *   key_by -> "q5-counts" (sliding 10 s / 2 s window aggregate: count per auction; result
 *   [auction, count] keyed by the window start, stamped end-1) -> key_by(window) -> "q5-hot"
 *   (tumbling 2 s window aggregate over the stamps end-1: each 2 s window holds the counts of
 *   exactly one 10 s window; accumulator [max, [auctions with max]]) -> JSON -> sink.
 * A count result stamped end-1 reaches "q5-hot" before its watermark reaches end-1 (the count
 * window fires before forwarding that watermark), so "q5-hot" sees every count of a window.
 * Threading: subtask thread only; no state outside the window operators. */
#include "nexmark_gen.h"
#include "nexmark_queries.h"

#define Q5_SIZE_MS 10000
#define Q5_SLIDE_MS 2000

static int64_t q5_first_end(int64_t ts) {
    return nexmark_floor_div(ts, Q5_SLIDE_MS) * Q5_SLIDE_MS + Q5_SLIDE_MS;
}

/* [auction, count], keyed by the window's start. */
static void count_result(weir_ctx_t *ctx, const weir_window_t *w, const msgpack_object *acc,
                         void *udata) {
    (void)udata;
    uint32_t kl;
    const void *key = weir_current_key(ctx, &kl);
    msgpack_packer *pk = weir_packer(ctx);
    msgpack_pack_array(pk, 2);
    msgpack_pack_uint64(pk, nexmark_key_to_u64(key, kl));
    msgpack_pack_int64(pk, acc->via.i64);
    unsigned char wkey[8];
    nexmark_key_u64((uint64_t)w->start, wkey);
    weir_emit_packed(ctx, w->end - 1, wkey, sizeof(wkey));
}

/* Hot accumulator: [max, [auction, ...]] (max -1: empty). */
static void hot_create(msgpack_packer *acc, void *udata) {
    (void)udata;
    msgpack_pack_array(acc, 2);
    msgpack_pack_int64(acc, -1);
    msgpack_pack_array(acc, 0);
}

static bool hot_valid(const msgpack_object *a) {
    return a->type == MSGPACK_OBJECT_ARRAY && a->via.array.size == 2 &&
           a->via.array.ptr[1].type == MSGPACK_OBJECT_ARRAY;
}

/* Packs [max(ma, mb), auctions of a and b whose count is that max]. */
static void hot_pack(msgpack_packer *out, int64_t ma, const msgpack_object *la, int64_t mb,
                     const msgpack_object *lb) {
    int64_t m = ma > mb ? ma : mb;
    uint32_t n = (ma == m ? la->via.array.size : 0) + (mb == m ? lb->via.array.size : 0);
    msgpack_pack_array(out, 2);
    msgpack_pack_int64(out, m);
    msgpack_pack_array(out, n);
    if (ma == m)
        for (uint32_t i = 0; i < la->via.array.size; i++)
            msgpack_pack_object(out, la->via.array.ptr[i]);
    if (mb == m)
        for (uint32_t i = 0; i < lb->via.array.size; i++)
            msgpack_pack_object(out, lb->via.array.ptr[i]);
}

static void hot_add(const msgpack_object *acc, const weir_record_t *in, msgpack_packer *out,
                    void *udata) {
    (void)udata;
    msgpack_object v;
    msgpack_zone z;
    msgpack_zone_init(&z, 64);
    size_t off = 0;
    bool ok = msgpack_unpack(in->value, in->value_len, &off, &z, &v) == MSGPACK_UNPACK_SUCCESS &&
              v.type == MSGPACK_OBJECT_ARRAY && v.via.array.size == 2 && hot_valid(acc);
    if (!ok) { /* not a count result: keep the accumulator */
        msgpack_pack_object(out, *acc);
    } else {
        msgpack_object one = {.type = MSGPACK_OBJECT_ARRAY,
                              .via.array = {.size = 1, .ptr = &v.via.array.ptr[0]}};
        hot_pack(out, acc->via.array.ptr[0].via.i64, &acc->via.array.ptr[1],
                 v.via.array.ptr[1].via.i64, &one);
    }
    msgpack_zone_destroy(&z);
}

static void hot_merge(const msgpack_object *a, const msgpack_object *b, msgpack_packer *out,
                      void *udata) {
    (void)udata;
    if (!hot_valid(a) || !hot_valid(b)) {
        msgpack_pack_object(out, hot_valid(a) ? *a : *b);
        return;
    }
    hot_pack(out, a->via.array.ptr[0].via.i64, &a->via.array.ptr[1], b->via.array.ptr[0].via.i64,
             &b->via.array.ptr[1]);
}

static void hot_result(weir_ctx_t *ctx, const weir_window_t *w, const msgpack_object *acc,
                       void *udata) {
    (void)udata;
    if (!hot_valid(acc)) {
        weir_fail(ctx, "q5-hot: malformed accumulator");
        return;
    }
    const msgpack_object *l = &acc->via.array.ptr[1];
    for (uint32_t i = 0; i < l->via.array.size; i++) {
        nexmark_json_t j;
        nexmark_json_begin(&j);
        nexmark_json_member(&j, "auction", &l->via.array.ptr[i]);
        nexmark_json_int(&j, "num", acc->via.array.ptr[0].via.i64);
        if (!nexmark_json_emit(&j, ctx, w->end - 1, "q5"))
            return;
    }
}

int nexmark_q5(weir_job_t *job, weir_stream_t *src, const nexmark_query_opts_t *o) {
    weir_stream_t *bids = nexmark_select(job, src, "q5-bids", NEXMARK_BID, NEXMARK_BID_AUCTION,
                                         NULL, q5_first_end, o);
    if (!bids)
        return -1;
    static const weir_aggregate_fns_t count_fns = {nexmark_count_create, nexmark_count_add,
                                                   nexmark_count_merge, count_result};
    weir_window_spec_t counts_spec = {
        .kind = WEIR_WINDOW_SLIDING, .size_ms = Q5_SIZE_MS, .slide_ms = Q5_SLIDE_MS};
    weir_stream_t *counts = weir_window_aggregate(weir_key_by(bids, NULL, NULL), "q5-counts",
                                                  &counts_spec, &count_fns, NULL);
    if (!counts)
        return -1;
    weir_set_uid(counts, "q5-counts");
    static const weir_aggregate_fns_t hot_fns = {hot_create, hot_add, hot_merge, hot_result};
    weir_window_spec_t hot_spec = {.kind = WEIR_WINDOW_TUMBLING, .size_ms = Q5_SLIDE_MS};
    weir_stream_t *hot =
        weir_window_aggregate(weir_key_by(counts, NULL, NULL), "q5-hot", &hot_spec, &hot_fns, NULL);
    if (!hot)
        return -1;
    weir_set_uid(hot, "q5-hot");
    nexmark_sink(hot, o);
    return 0;
}
