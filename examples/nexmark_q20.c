/* Nexmark q20, expand bid with auction (nexmark/nexmark q20.sql): the unbounded inner join of
 * every bid with its auction, bid.auction = auction.id, kept when auction.category = 10, as
 * {"auction", "bidder", "price", "channel", "url", "bid_dateTime", "bid_extra", "itemName",
 * "description", "initialBid", "reserve", "auction_dateTime", "expires", "seller", "category",
 * "auction_extra"}: one line per joined bid whatever the arrival order.
 *
 *   select "q20-auctions" (every auction, key id) -> key_by --+
 *   select "q20-bids" (key auction) -> key_by ----------------+-> "q20-join" (weir_co_process
 *   keyed by auction id: auctions first, bids second) -> JSON -> sink.
 * State of "q20-join": one value "join" per auction id (msgpack), one of
 *   - the auction's event array as the source wrote it, once it arrived, if its category is 10;
 *   - its category alone (an integer), once it arrived, for any other category;
 *   - before it arrived: the bids for it that came first, their event arrays one after the
 *     other; when the auction arrives they are joined (category 10) or dropped, and replaced.
 * A bid that arrives after its auction is joined or dropped, never kept. Nothing expires: as in
 * the reference's regular join, a bid may come any time after its auction. That is the whole
 * SQL join because auction ids are unique (the generator derives each from one event number;
 * an auction id seen twice fails the subtask): once an id's auction is here no other auction
 * can join a later bid, so only bids without their auction need keeping. One value rather
 * than a list of early bids: a bid reads one key either way, and bids that wait a moment for
 * their auction (most early ones) then live and die in the write-back state cache instead of
 * each being a RocksDB merge and a delete.
 * Threading: subtask thread only; the state id is written at define time, read-only after. */
#include <stdlib.h>
#include <string.h>

#include "nexmark_gen.h"
#include "nexmark_queries.h"

#define Q20_CATEGORY 10

/* Auction fields the row reads beyond those in nexmark_queries.h. */
#define Q20_AUCTION_ITEM_NAME 2
#define Q20_AUCTION_DESCRIPTION 3
#define Q20_AUCTION_INITIAL_BID 4
#define Q20_AUCTION_RESERVE 5
#define Q20_AUCTION_EXTRA 10

typedef struct q20 {
    weir_state_id join;
} q20_t;

/* Emits the joined row of bid @p b and auction @p a (both unpacked event arrays). */
static void emit_row(weir_ctx_t *ctx, const msgpack_object *b, const msgpack_object *a,
                     int64_t ts) {
    const msgpack_object *bf = b->via.array.ptr, *af = a->via.array.ptr;
    nexmark_json_t j;
    nexmark_json_begin(&j);
    nexmark_json_member(&j, "auction", &bf[NEXMARK_BID_AUCTION]);
    nexmark_json_member(&j, "bidder", &bf[NEXMARK_BID_BIDDER]);
    nexmark_json_member(&j, "price", &bf[NEXMARK_BID_PRICE]);
    nexmark_json_member(&j, "channel", &bf[NEXMARK_BID_CHANNEL]);
    nexmark_json_member(&j, "url", &bf[NEXMARK_BID_URL]);
    nexmark_json_member(&j, "bid_dateTime", &bf[NEXMARK_BID_DATETIME]);
    nexmark_json_member(&j, "bid_extra", &bf[NEXMARK_BID_EXTRA]);
    nexmark_json_member(&j, "itemName", &af[Q20_AUCTION_ITEM_NAME]);
    nexmark_json_member(&j, "description", &af[Q20_AUCTION_DESCRIPTION]);
    nexmark_json_member(&j, "initialBid", &af[Q20_AUCTION_INITIAL_BID]);
    nexmark_json_member(&j, "reserve", &af[Q20_AUCTION_RESERVE]);
    nexmark_json_member(&j, "auction_dateTime", &af[NEXMARK_AUCTION_DATETIME]);
    nexmark_json_member(&j, "expires", &af[NEXMARK_AUCTION_EXPIRES]);
    nexmark_json_member(&j, "seller", &af[NEXMARK_AUCTION_SELLER]);
    nexmark_json_member(&j, "category", &af[NEXMARK_AUCTION_CATEGORY]);
    nexmark_json_member(&j, "auction_extra", &af[Q20_AUCTION_EXTRA]);
    nexmark_json_emit(&j, ctx, ts, "q20");
}

/* What the value "join" of a key holds (see the top of the file). */
typedef enum stored { STORED_BAD, STORED_CATEGORY, STORED_AUCTION, STORED_BIDS } stored_t;

/* Unpacks the object at @p *off of a stored value into @p z and @p out, advancing @p *off;
 *  false at the end or when it is not msgpack. */
static bool next_object(const void *p, uint32_t n, size_t *off, msgpack_zone *z,
                        msgpack_object *out) {
    if (*off >= n)
        return false;
    msgpack_unpack_return r = msgpack_unpack(p, n, off, z, out);
    return r == MSGPACK_UNPACK_SUCCESS || r == MSGPACK_UNPACK_EXTRA_BYTES;
}

/* Is @p o an event array of @p kind with @p fields elements? */
static bool is_event(const msgpack_object *o, int kind, uint32_t fields) {
    return o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == fields &&
           o->via.array.ptr[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
           o->via.array.ptr[0].via.u64 == (uint64_t)kind;
}

/* Classifies a stored value by its first object (left in @p first). */
static stored_t classify(const void *p, uint32_t n, msgpack_zone *z, msgpack_object *first) {
    size_t off = 0;
    if (!next_object(p, n, &off, z, first))
        return STORED_BAD;
    if (first->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
        first->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return off == n ? STORED_CATEGORY : STORED_BAD;
    if (is_event(first, NEXMARK_AUCTION, NEXMARK_AUCTION_FIELDS))
        return off == n ? STORED_AUCTION : STORED_BAD;
    return is_event(first, NEXMARK_BID, NEXMARK_BID_FIELDS) ? STORED_BIDS : STORED_BAD;
}

static void on_auction(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    const q20_t *q = udata;
    msgpack_object a;
    if (!nexmark_unpack_event(ctx, in, NEXMARK_AUCTION, &a)) {
        weir_fail(ctx, "q20-join: expected an auction on the first input");
        return;
    }
    bool wanted = nexmark_field_int(&a, NEXMARK_AUCTION_CATEGORY) == Q20_CATEGORY;
    const void *v;
    uint32_t n;
    int rc = weir_value_get(ctx, q->join, &v, &n);
    if (rc < 0)
        return;
    if (rc == 0) { /* bids that came first: join them now (category 10) or drop them */
        msgpack_zone z;
        msgpack_zone_init(&z, 2048);
        msgpack_object b;
        stored_t kind = classify(v, n, &z, &b);
        if (kind != STORED_BIDS) {
            weir_fail(ctx,
                      kind == STORED_BAD ? "q20-join: a stored value is neither an auction, a "
                                           "category nor bids"
                                         : "q20-join: auction %lld arrived twice (q20 needs "
                                           "unique auction ids, as the generator makes them)",
                      (long long)nexmark_field_int(&a, NEXMARK_AUCTION_ID));
            msgpack_zone_destroy(&z);
            return;
        }
        size_t off = 0;
        bool ok = true;
        while (ok && wanted && off < n) {
            ok = next_object(v, n, &off, &z, &b) && is_event(&b, NEXMARK_BID, NEXMARK_BID_FIELDS);
            if (ok)
                emit_row(ctx, &b, &a, in->timestamp);
        }
        msgpack_zone_destroy(&z);
        if (!ok) {
            weir_fail(ctx, "q20-join: a stored early bid is not a bid event");
            return;
        }
    }
    if (wanted) {
        weir_value_put(ctx, q->join, in->value, in->value_len);
        return;
    }
    unsigned char cat[9]; /* the category alone: enough to drop the auction's later bids */
    msgpack_sbuffer b = {.data = (char *)cat, .size = 0, .alloc = sizeof(cat)};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    msgpack_pack_object(&pk, a.via.array.ptr[NEXMARK_AUCTION_CATEGORY]);
    weir_value_put(ctx, q->join, b.data, (uint32_t)b.size);
}

static void on_bid(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    const q20_t *q = udata;
    const void *v;
    uint32_t n;
    int rc = weir_value_get(ctx, q->join, &v, &n);
    if (rc < 0)
        return;
    if (rc == 1) { /* its auction has not arrived (yet): keep the bid as it came */
        weir_value_put(ctx, q->join, in->value, in->value_len);
        return;
    }
    if (n == 1 && *(const unsigned char *)v < 0x80)
        return; /* a category alone (a positive fixint): the bid joins nothing */
    msgpack_zone z;
    msgpack_zone_init(&z, 1024);
    msgpack_object a, b;
    switch (classify(v, n, &z, &a)) {
    case STORED_CATEGORY: /* another category: the bid joins nothing */
        break;
    case STORED_AUCTION:
        if (nexmark_unpack_event(ctx, in, NEXMARK_BID, &b))
            emit_row(ctx, &b, &a, in->timestamp);
        else
            weir_fail(ctx, "q20-join: expected a bid on the second input");
        break;
    case STORED_BIDS: { /* append it to the bids waiting for their auction */
        char *all = malloc((size_t)n + in->value_len);
        if (!all) {
            weir_fail(ctx, "q20-join: out of memory appending an early bid");
            break;
        }
        memcpy(all, v, n);
        memcpy(all + n, in->value, in->value_len);
        weir_value_put(ctx, q->join, all, n + in->value_len);
        free(all);
        break;
    }
    case STORED_BAD:
        weir_fail(ctx, "q20-join: a stored value is neither an auction, a category nor bids");
        break;
    }
    msgpack_zone_destroy(&z);
}

int nexmark_q20(weir_job_t *job, weir_stream_t *src, const nexmark_query_opts_t *o) {
    weir_stream_t *auctions = nexmark_select(job, src, "q20-auctions", NEXMARK_AUCTION,
                                             NEXMARK_AUCTION_ID, NULL, NULL, o);
    weir_stream_t *bids =
        nexmark_select(job, src, "q20-bids", NEXMARK_BID, NEXMARK_BID_AUCTION, NULL, NULL, o);
    q20_t *q = weir_job_alloc(job, sizeof(*q));
    weir_stream_t *join =
        weir_co_process(weir_key_by(auctions, NULL, NULL), weir_key_by(bids, NULL, NULL),
                        "q20-join", on_auction, on_bid, q);
    if (!join)
        return -1;
    weir_set_uid(join, "q20-join");
    q->join = weir_value_state(join, "join");
    nexmark_sink(join, o);
    return 0;
}
