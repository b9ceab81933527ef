/* Nexmark event generator (plugin-local, pure: no weir runtime calls).
 *
 * Follows the structure of the standard Nexmark generator (Apache Beam / nexmark-flink):
 *  - events come in blocks of 50: position 0 is a Person, 1..3 are Auctions, 4..49 are Bids
 *    (2% / 6% / 92%);
 *  - person and auction ids follow from the event id (first person id 1000, first auction id
 *    1000, categories 10..14); bids and auctions refer to recent ("active") people/auctions,
 *    with hot auctions (ratio 2), hot bidders (ratio 4) and hot sellers (ratio 4);
 *  - event time as the reference assigns it: the event with number n has the timestamp
 *    base time + (int64)(n * inter-event delay in us) / 1000, delay = 1e6 / events_per_sec;
 *  - the event emitted at position i (the generator's index) is the event with the adjusted
 *    number of i (reference outOfOrderGroupSize G: positions are permuted inside groups of G by
 *    (i * 953) % G), so timestamps are out of order by at most (G - 1) delays (< 4 s enforced by
 *    nexmark.c); with late_fraction > 0 a hashed fraction of the events is made late (see
 *    examples/README.md: "Event time");
 *  - all randomness is a pseudo-random stream seeded by the event number, so position i is the
 *    same bytes wherever and whenever it is generated (subtasks produce disjoint, reproducible
 *    events). The full rules, precise enough to re-implement them, are in examples/README.md.
 *
 * Encoding: one msgpack array per event, kind first:
 *   Person:  [0, id, name, email, credit_card, city, state, date_time, extra]
 *   Auction: [1, id, item_name, description, initial_bid, reserve, date_time, expires, seller,
 *             category, extra]
 *   Bid:     [2, auction, bidder, price, channel, url, date_time, extra]
 * date_time/expires are ms since the epoch; prices are in cents.
 * Threading: stateless functions over a read-only config. No allocation. */
#ifndef NEXMARK_GEN_H
#define NEXMARK_GEN_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NEXMARK_PERSON 0
#define NEXMARK_AUCTION 1
#define NEXMARK_BID 2

#define NEXMARK_PERSON_PROPORTION 1
#define NEXMARK_AUCTION_PROPORTION 3
#define NEXMARK_BID_PROPORTION 46
#define NEXMARK_PROPORTION_DENOMINATOR 50

#define NEXMARK_FIRST_PERSON_ID 1000
#define NEXMARK_FIRST_AUCTION_ID 1000
#define NEXMARK_FIRST_CATEGORY_ID 10
#define NEXMARK_NUM_CATEGORIES 5
#define NEXMARK_PERSON_ID_LEAD 10
#define NEXMARK_AUCTION_ID_LEAD 10

/* Array lengths (elements, kind included) of each event. */
#define NEXMARK_PERSON_FIELDS 9
#define NEXMARK_AUCTION_FIELDS 11
#define NEXMARK_BID_FIELDS 8

/* Field positions in a Bid array. */
#define NEXMARK_BID_AUCTION 1
#define NEXMARK_BID_BIDDER 2
#define NEXMARK_BID_PRICE 3
#define NEXMARK_BID_CHANNEL 4
#define NEXMARK_BID_URL 5
#define NEXMARK_BID_DATETIME 6
#define NEXMARK_BID_EXTRA 7

/* Late events (late_fraction > 0): moved back by NEXMARK_LATE_MIN_MS + [0, NEXMARK_LATE_SPAN_MS).
 */
#define NEXMARK_LATE_MIN_MS 5000
#define NEXMARK_LATE_SPAN_MS 5000

typedef struct nexmark_config {
    int64_t base_time_ms;            /* event time of event 0 */
    double events_per_sec;           /* event-time rate: inter-event delay = 1e6 / rate us */
    uint64_t out_of_order_group;     /* reference outOfOrderGroupSize, >= 1 (1: in order) */
    double late_fraction;            /* 0..1: share of events moved behind the watermark */
    uint32_t hot_auction_ratio;      /* 2 */
    uint32_t hot_bidders_ratio;      /* 4 */
    uint32_t hot_sellers_ratio;      /* 4 */
    uint32_t num_active_people;      /* 1000 */
    uint32_t num_in_flight_auctions; /* 100 */
    uint32_t avg_person_bytes;       /* 200 */
    uint32_t avg_auction_bytes;      /* 500 */
    uint32_t avg_bid_bytes;          /* 100 */
} nexmark_config_t;

/** The standard configuration; base time 2024-01-01T00:00:00Z. */
void nexmark_config_default(nexmark_config_t *c);

/** NEXMARK_PERSON, NEXMARK_AUCTION or NEXMARK_BID for event @p event_id. */
int nexmark_event_kind(uint64_t event_id);
/** Event time of event number @p event_id in ms since the epoch (before any late shift). */
int64_t nexmark_event_time_ms(const nexmark_config_t *c, uint64_t event_id);
/** The event number emitted at position @p position (reference nextAdjustedEventNumber). */
uint64_t nexmark_adjusted_event_number(const nexmark_config_t *c, uint64_t position);
/** How far (ms, 0 if on time) event number @p event_id is moved back by late_fraction. */
int64_t nexmark_late_shift_ms(const nexmark_config_t *c, uint64_t event_id);
/** 0-based id of the last person created at or before @p event_id (-1 for none). */
int64_t nexmark_last_base0_person_id(uint64_t event_id);
/** 0-based id of the last auction created at or before @p event_id (-1 for none). */
int64_t nexmark_last_base0_auction_id(uint64_t event_id);

/* Room for one encoded event: the largest, an auction, is under 840 bytes (item name < 20,
 * description < 100, extra <= 640 characters), and the encoder may write up to 7 scratch bytes
 * past the event's end (whole words of letters). */
#define NEXMARK_MAX_EVENT_BYTES 1024

/** Encodes the event emitted at position @p position into @p out: the same msgpack bytes as
 * nexmark_pack_event, written directly (no packer). Sets *ts_ms to its event time and, when @p
 * kind is not NULL, *kind to its kind. @returns the number of bytes. */
size_t nexmark_encode_event(const nexmark_config_t *c, uint64_t position,
                            uint8_t out[NEXMARK_MAX_EVENT_BYTES], int64_t *ts_ms, int *kind);

/** Writes @p d at @p p in msgpack-c's encoding of msgpack_pack_int64 (the shortest form: at most
 * 9 bytes). @returns the end of what it wrote. */
uint8_t *nexmark_mp_int(uint8_t *p, int64_t d);

/** Packs the event emitted at position @p position (one msgpack array: the event with number
 * nexmark_adjusted_event_number(position)) into @p pk; sets *ts_ms to its event time (its
 * date_time field). @returns its kind. */
int nexmark_pack_event(const nexmark_config_t *c, uint64_t position, msgpack_packer *pk,
                       int64_t *ts_ms);

/* Reading a bid in place (q1, q2): the fields they need, without unpacking the event. */
typedef struct nexmark_bid_view {
    const uint8_t *value; /* the bid's bytes */
    size_t len;
    int64_t auction, price;
    const uint8_t *price_at; /* where the price's encoding starts */
    const uint8_t *tail;     /* where it ends (the channel starts) */
} nexmark_bid_view_t;

/* A [auction, price] row (nexmark_q2_row) is at most this long. */
#define NEXMARK_Q2_BYTES 19

/** Scans @p value as an event in msgpack-c's canonical form (what msgpack_pack_object writes for
 * an unpacked value and what the generator writes): a fixarray of ints and strings, each in its
 * shortest encoding, ending exactly at @p len, its first field the kind (an int >= 0).
 * @returns 1 for a bid (kind NEXMARK_BID, NEXMARK_BID_FIELDS fields, auction and price ints;
 * fills @p b), 0 for a canonical value that is not a bid (another kind or another field count,
 * as nexmark_unpack_event decides), -1 for anything else: another encoding, other types,
 * trailing bytes, malformed or truncated input (the caller unpacks it the generic way). */
int nexmark_scan_bid(const void *value, size_t len, nexmark_bid_view_t *b);
/** Writes the bid of @p b with its price replaced by @p price into @p out (room for b->len + 9
 * bytes): the same bytes as unpacking the bid and packing every field, the price as an int64.
 * @returns the length. */
size_t nexmark_bid_with_price(const nexmark_bid_view_t *b, int64_t price, uint8_t *out);
/** Writes the msgpack array [auction, price] of @p b into @p out. @returns the length. */
size_t nexmark_q2_row(const nexmark_bid_view_t *b, uint8_t out[NEXMARK_Q2_BYTES]);

#endif
