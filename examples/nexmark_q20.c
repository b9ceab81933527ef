/* Nexmark q20, expand bid with auction (nexmark/nexmark q20.sql): the unbounded inner join of
 * every bid with its auction, bid.auction = auction.id, kept when auction.category = 10, as
 * {"auction", "bidder", "price", "channel", "url", "bid_dateTime", "bid_extra", "itemName",
 * "description", "initialBid", "reserve", "auction_dateTime", "expires", "seller", "category",
 * "auction_extra"}: one line per joined bid whatever the arrival order.
 *
 *   select "q20-auctions" (every auction, key id) -> key_by --+
 *   select "q20-bids" (key auction) -> key_by ----------------+-> "q20-join" (weir_co_process
 *   keyed by auction id: auctions first, bids second) -> JSON -> sink.
 * State of "q20-join" per auction id: value "auction" = the auction's event array (msgpack, as
 * the source wrote it) when its category is 10, else its category alone (a msgpack integer);
 * list "early" = the bids (event arrays) that arrived before their auction, joined (category
 * 10) or dropped (any other) and cleared when it arrives. Bids that arrive after their auction
 * are never kept. Nothing expires: as the reference's regular join, a bid can arrive any time
 * after its auction. This is the whole SQL join because auction ids are unique (the generator
 * derives each from one event number): once an id's auction is here no other auction can join
 * a later bid, so only bids without their auction need keeping.
 * Invariant: "auction" and "early" are never both set for a key.
 * Threading: subtask thread only; the state ids are written at define time, read-only after. */
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
    weir_state_id auction, early;
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

/* Unpacks stored event bytes of @p kind into @p z; false when they are not such an event. */
static bool unpack_stored(const void *p, uint32_t n, int kind, uint32_t fields, msgpack_zone *z,
                          msgpack_object *out) {
    size_t off = 0;
    return msgpack_unpack(p, n, &off, z, out) == MSGPACK_UNPACK_SUCCESS &&
           out->type == MSGPACK_OBJECT_ARRAY && out->via.array.size == fields &&
           out->via.array.ptr[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
           out->via.array.ptr[0].via.u64 == (uint64_t)kind;
}

typedef struct waiting {
    weir_ctx_t *ctx;
    const msgpack_object *auction; /* NULL: not category 10, the bids are dropped */
    int64_t ts;
    bool bad;
} waiting_t;

static int emit_waiting(const void *val, uint32_t len, void *arg) {
    waiting_t *w = arg;
    if (!w->auction)
        return 0;
    msgpack_zone z;
    msgpack_zone_init(&z, 512);
    msgpack_object b;
    if (unpack_stored(val, len, NEXMARK_BID, NEXMARK_BID_FIELDS, &z, &b))
        emit_row(w->ctx, &b, w->auction, w->ts);
    else
        w->bad = true;
    msgpack_zone_destroy(&z);
    return w->bad;
}

static void on_auction(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    const q20_t *q = udata;
    msgpack_object a;
    if (!nexmark_unpack_event(ctx, in, NEXMARK_AUCTION, &a)) {
        weir_fail(ctx, "q20-join: expected an auction on the first input");
        return;
    }
    bool wanted = nexmark_field_int(&a, NEXMARK_AUCTION_CATEGORY) == Q20_CATEGORY;
    int rc;
    if (wanted) {
        rc = weir_value_put(ctx, q->auction, in->value, in->value_len);
    } else { /* the category alone: enough to drop the auction's later bids */
        msgpack_sbuffer b;
        msgpack_sbuffer_init(&b);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
        msgpack_pack_object(&pk, a.via.array.ptr[NEXMARK_AUCTION_CATEGORY]);
        rc = weir_value_put(ctx, q->auction, b.data, (uint32_t)b.size);
        msgpack_sbuffer_destroy(&b);
    }
    if (rc < 0)
        return;
    waiting_t w = {ctx, wanted ? &a : NULL, in->timestamp, false};
    if (weir_list_foreach(ctx, q->early, emit_waiting, &w) != 0)
        return;
    if (w.bad) {
        weir_fail(ctx, "q20-join: a stored early bid is not a bid event");
        return;
    }
    weir_list_clear(ctx, q->early);
}

static void on_bid(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    const q20_t *q = udata;
    const void *av;
    uint32_t an;
    int rc = weir_value_get(ctx, q->auction, &av, &an);
    if (rc < 0)
        return;
    if (rc == 1) { /* its auction has not arrived (yet): keep the bid as it came */
        weir_list_add(ctx, q->early, in->value, in->value_len);
        return;
    }
    msgpack_zone z;
    msgpack_zone_init(&z, 1024);
    msgpack_object a, b;
    size_t off = 0;
    if (msgpack_unpack(av, an, &off, &z, &a) != MSGPACK_UNPACK_SUCCESS)
        weir_fail(ctx, "q20-join: a stored auction is not msgpack");
    else if (a.type != MSGPACK_OBJECT_ARRAY)
        ; /* another category: the bid joins nothing */
    else if (a.via.array.size != NEXMARK_AUCTION_FIELDS)
        weir_fail(ctx, "q20-join: a stored auction is not an auction event");
    else if (!nexmark_unpack_event(ctx, in, NEXMARK_BID, &b))
        weir_fail(ctx, "q20-join: expected a bid on the second input");
    else
        emit_row(ctx, &b, &a, in->timestamp);
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
    q->auction = weir_value_state(join, "auction");
    q->early = weir_list_state(join, "early");
    nexmark_sink(join, o);
    return 0;
}
