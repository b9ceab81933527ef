/* Nexmark q4, average price for a category (nexmark/nexmark q4.sql): per auction the highest
 * price of its bids with auction.dateTime <= bid.dateTime <= auction.expires, and per category
 * the average of those maxima (BIGINT: the sum divided by the count, truncated), as
 * {"category", "avg", "seq"}: one line per update of a category's average, seq 1, 2, ... per
 * category, so the final value of a category is its line with the highest seq.
 *
 *   select "q4-auctions" (key id) -> key_by --+
 *   select "q4-bids" (key auction) -> key_by -+-> "q4-max" (weir_co_process keyed by auction id:
 *   emits [category, auction, max] whenever the auction's max rises) -> key_by(category) ->
 *   "q4-avg" (weir_process keyed by category: sum, count, max per auction, seq; emits the line).
 * State of "q4-max" per auction: value "auction" = [category, dateTime, expires] once it
 * arrived; value "max" = the highest qualifying price so far; list "early" = [price, dateTime]
 * of the bids that arrived before the auction (checked and cleared when it arrives). State of
 * "q4-avg" per category: value "agg" = [sum, count, seq]; map "maxima" auction id -> max. As the
 * reference's regular join and group-by, nothing expires.
 * The intermediate averages depend on arrival order (a max rises once or several times); the
 * final value per category does not: every qualifying bid reaches "q4-max".
 * Threading: subtask thread only; the state ids are written at define time, read-only after. */
#include <string.h>

#include "nexmark_gen.h"
#include "nexmark_queries.h"

typedef struct q4 {
    weir_state_id auction, max, early; /* q4-max */
    weir_state_id agg, maxima;         /* q4-avg */
} q4_t;

/* Reads an int64 array of @p n stored as msgpack; false when absent or malformed. */
static bool get_ints(weir_ctx_t *ctx, weir_state_id st, int64_t *out, uint32_t n) {
    const void *v;
    uint32_t len;
    if (weir_value_get(ctx, st, &v, &len) != 0)
        return false;
    msgpack_zone z;
    msgpack_zone_init(&z, 64);
    msgpack_object o;
    size_t off = 0;
    bool ok = msgpack_unpack(v, len, &off, &z, &o) == MSGPACK_UNPACK_SUCCESS &&
              o.type == MSGPACK_OBJECT_ARRAY && o.via.array.size == n;
    for (uint32_t i = 0; ok && i < n; i++)
        out[i] = o.via.array.ptr[i].via.i64;
    msgpack_zone_destroy(&z);
    return ok;
}

/* Packs an int64 array into @p b (reset first). */
static void pack_ints(msgpack_sbuffer *b, const int64_t *v, uint32_t n) {
    msgpack_sbuffer_clear(b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, b, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, n);
    for (uint32_t i = 0; i < n; i++)
        msgpack_pack_int64(&pk, v[i]);
}

static int put_ints(weir_ctx_t *ctx, weir_state_id st, const int64_t *v, uint32_t n) {
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    pack_ints(&b, v, n);
    int rc = weir_value_put(ctx, st, b.data, (uint32_t)b.size);
    msgpack_sbuffer_destroy(&b);
    return rc;
}

/* Raises the auction's max to @p price when higher; emits [category, auction, max] then. */
static void raise_max(weir_ctx_t *ctx, const q4_t *q, const int64_t auc[3], int64_t price,
                      int64_t ts) {
    int64_t cur[1];
    if (get_ints(ctx, q->max, cur, 1) && cur[0] >= price)
        return;
    cur[0] = price;
    if (put_ints(ctx, q->max, cur, 1) < 0)
        return;
    uint32_t kl;
    const void *key = weir_current_key(ctx, &kl);
    msgpack_packer *pk = weir_packer(ctx);
    msgpack_pack_array(pk, 3);
    msgpack_pack_int64(pk, auc[0]);
    msgpack_pack_uint64(pk, nexmark_key_to_u64(key, kl));
    msgpack_pack_int64(pk, price);
    unsigned char ck[8];
    nexmark_key_u64((uint64_t)auc[0], ck);
    weir_emit_packed(ctx, ts, ck, sizeof(ck));
}

static bool qualifies(const int64_t auc[3], int64_t bid_ts) {
    return auc[1] <= bid_ts && bid_ts <= auc[2];
}

/* The highest qualifying price among the early bids (no state call inside the iteration). */
typedef struct early_scan {
    const int64_t *auc;
    int64_t best; /* -1: none */
} early_scan_t;

static int check_early(const void *val, uint32_t len, void *arg) {
    early_scan_t *e = arg;
    msgpack_zone z;
    msgpack_zone_init(&z, 64);
    msgpack_object o;
    size_t off = 0;
    if (msgpack_unpack(val, len, &off, &z, &o) == MSGPACK_UNPACK_SUCCESS &&
        o.type == MSGPACK_OBJECT_ARRAY && o.via.array.size == 2 &&
        qualifies(e->auc, o.via.array.ptr[1].via.i64) && o.via.array.ptr[0].via.i64 > e->best)
        e->best = o.via.array.ptr[0].via.i64;
    msgpack_zone_destroy(&z);
    return 0;
}

static void on_auction(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    const q4_t *q = udata;
    msgpack_object a;
    if (!nexmark_unpack_event(ctx, in, NEXMARK_AUCTION, &a)) {
        weir_fail(ctx, "q4-max: expected an auction on the first input");
        return;
    }
    int64_t auc[3] = {nexmark_field_int(&a, NEXMARK_AUCTION_CATEGORY),
                      nexmark_field_int(&a, NEXMARK_AUCTION_DATETIME),
                      nexmark_field_int(&a, NEXMARK_AUCTION_EXPIRES)};
    if (put_ints(ctx, q->auction, auc, 3) < 0)
        return;
    early_scan_t e = {auc, -1};
    if (weir_list_foreach(ctx, q->early, check_early, &e) != 0 ||
        weir_list_clear(ctx, q->early) != 0)
        return;
    if (e.best >= 0)
        raise_max(ctx, q, auc, e.best, in->timestamp);
}

static void on_bid(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    const q4_t *q = udata;
    msgpack_object b;
    if (!nexmark_unpack_event(ctx, in, NEXMARK_BID, &b)) {
        weir_fail(ctx, "q4-max: expected a bid on the second input");
        return;
    }
    int64_t price = nexmark_field_int(&b, NEXMARK_BID_PRICE);
    int64_t ts = nexmark_field_int(&b, NEXMARK_BID_DATETIME);
    int64_t auc[3];
    if (get_ints(ctx, q->auction, auc, 3)) {
        if (qualifies(auc, ts))
            raise_max(ctx, q, auc, price, in->timestamp);
        return;
    }
    int64_t early[2] = {price, ts};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    pack_ints(&sb, early, 2);
    weir_list_add(ctx, q->early, sb.data, (uint32_t)sb.size);
    msgpack_sbuffer_destroy(&sb);
}

/* q4-avg: [category, auction, max] -> the category's new average. */
static void on_max(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    const q4_t *q = udata;
    msgpack_object u;
    if (weir_unpack(ctx, in, &u) != 0 || u.type != MSGPACK_OBJECT_ARRAY || u.via.array.size != 3) {
        weir_fail(ctx, "q4-avg: expected [category, auction, max]");
        return;
    }
    int64_t category = u.via.array.ptr[0].via.i64, max = u.via.array.ptr[2].via.i64;
    unsigned char ak[8];
    nexmark_key_u64(u.via.array.ptr[1].via.u64, ak);
    int64_t agg[3] = {0, 0, 0}; /* sum, count, seq */
    if (!get_ints(ctx, q->agg, agg, 3))
        agg[0] = agg[1] = agg[2] = 0;
    const void *old;
    uint32_t oldlen;
    int rc = weir_mapstate_get(ctx, q->maxima, ak, sizeof(ak), &old, &oldlen);
    if (rc < 0)
        return;
    if (rc == 0 && oldlen == sizeof(int64_t)) {
        int64_t prev;
        memcpy(&prev, old, sizeof(prev));
        agg[0] += max - prev;
    } else {
        agg[0] += max;
        agg[1] += 1;
    }
    agg[2] += 1;
    if (weir_mapstate_put(ctx, q->maxima, ak, sizeof(ak), &max, sizeof(max)) < 0 ||
        put_ints(ctx, q->agg, agg, 3) < 0)
        return;
    nexmark_json_t j;
    nexmark_json_begin(&j);
    nexmark_json_int(&j, "category", category);
    nexmark_json_int(&j, "avg", agg[0] / agg[1]);
    nexmark_json_int(&j, "seq", agg[2]);
    nexmark_json_emit(&j, ctx, in->timestamp, "q4");
}

int nexmark_q4(weir_job_t *job, weir_stream_t *src, const nexmark_query_opts_t *o) {
    weir_stream_t *auctions =
        nexmark_select(job, src, "q4-auctions", NEXMARK_AUCTION, NEXMARK_AUCTION_ID, NULL, NULL, o);
    weir_stream_t *bids =
        nexmark_select(job, src, "q4-bids", NEXMARK_BID, NEXMARK_BID_AUCTION, NULL, NULL, o);
    q4_t *q = weir_job_alloc(job, sizeof(*q));
    weir_stream_t *max =
        weir_co_process(weir_key_by(auctions, NULL, NULL), weir_key_by(bids, NULL, NULL), "q4-max",
                        on_auction, on_bid, q);
    if (!max)
        return -1;
    weir_set_uid(max, "q4-max");
    q->auction = weir_value_state(max, "auction");
    q->max = weir_value_state(max, "max");
    q->early = weir_list_state(max, "early");
    weir_stream_t *avg = weir_process(weir_key_by(max, NULL, NULL), "q4-avg", on_max, q);
    weir_set_uid(avg, "q4-avg");
    q->agg = weir_value_state(avg, "agg");
    q->maxima = weir_map_state(avg, "maxima");
    nexmark_sink(avg, o);
    return 0;
}
