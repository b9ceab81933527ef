/* Unit tests of the Nexmark event generator (examples/nexmark_gen.c): kind proportions (exact
 * from the block structure), id ranges against the standard generator's formulas computed here
 * by hand, field types, determinism and encoded sizes, and the reference's event-time rules
 * (fractional inter-event delay, out-of-order groups, late events); the direct encoding
 * (nexmark_encode_event) against msgpack-c's packing, and reading bids in place (nexmark_scan_bid,
 * q1's and q2's fast path) against unpacking them, on generated and on hand-made values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nexmark_gen.h"

#define N_EVENTS 100000

static msgpack_zone g_zone;

typedef struct packed {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} packed_t;

static void packed_init(packed_t *p) {
    msgpack_sbuffer_init(&p->sb);
    msgpack_packer_init(&p->pk, &p->sb, msgpack_sbuffer_write);
}

/* Packs event @p id and unpacks it into @p obj (checking it is exactly one msgpack value). */
static int gen(const nexmark_config_t *c, packed_t *p, uint64_t id, msgpack_object *obj,
               int64_t *ts) {
    msgpack_sbuffer_clear(&p->sb);
    int kind = nexmark_pack_event(c, id, &p->pk, ts);
    size_t off = 0;
    msgpack_zone_clear(&g_zone);
    assert_int_equal(msgpack_unpack(p->sb.data, p->sb.size, &off, &g_zone, obj),
                     MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, p->sb.size);
    assert_int_equal(obj->type, MSGPACK_OBJECT_ARRAY);
    assert_true(obj->via.array.size >= 1);
    assert_int_equal(obj->via.array.ptr[0].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_int_equal((int)obj->via.array.ptr[0].via.u64, kind);
    return kind;
}

static int64_t field_int(const msgpack_object *o, uint32_t i) {
    const msgpack_object *f = &o->via.array.ptr[i];
    assert_true(f->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
                f->type == MSGPACK_OBJECT_NEGATIVE_INTEGER);
    return f->via.i64;
}

static void assert_str(const msgpack_object *o, uint32_t i) {
    assert_int_equal(o->via.array.ptr[i].type, MSGPACK_OBJECT_STR);
}

static int setup(void **state) {
    (void)state;
    msgpack_zone_init(&g_zone, 8192);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    msgpack_zone_destroy(&g_zone);
    return 0;
}

static void test_proportions(void **state) {
    (void)state;
    nexmark_config_t c;
    nexmark_config_default(&c);
    packed_t p;
    packed_init(&p);
    uint64_t counts[3] = {0};
    for (uint64_t id = 0; id < N_EVENTS; id++) {
        msgpack_object o;
        int64_t ts;
        int k = gen(&c, &p, id, &o, &ts);
        assert_int_equal(k, nexmark_event_kind(id));
        counts[k]++;
    }
    assert_int_equal(counts[NEXMARK_PERSON], 2000);
    assert_int_equal(counts[NEXMARK_AUCTION], 6000);
    assert_int_equal(counts[NEXMARK_BID], 92000);
    /* Position within the block of 50 decides. */
    assert_int_equal(nexmark_event_kind(50), NEXMARK_PERSON);
    assert_int_equal(nexmark_event_kind(51), NEXMARK_AUCTION);
    assert_int_equal(nexmark_event_kind(53), NEXMARK_AUCTION);
    assert_int_equal(nexmark_event_kind(54), NEXMARK_BID);
    assert_int_equal(nexmark_event_kind(99), NEXMARK_BID);
    msgpack_sbuffer_destroy(&p.sb);
}

static void test_ids_and_fields(void **state) {
    (void)state;
    nexmark_config_t c;
    nexmark_config_default(&c);
    packed_t p;
    packed_init(&p);
    int64_t next_person = 1000, next_auction = 1000;
    uint64_t bids = 0, hot = 0;
    size_t bid_bytes = 0;
    for (uint64_t id = 0; id < N_EVENTS; id++) {
        msgpack_object o;
        int64_t ts;
        int k = gen(&c, &p, id, &o, &ts);
        /* 10,000 events/s of event time: 100 us apart. */
        assert_true(ts == c.base_time_ms + (int64_t)(id / 10));
        /* People created so far (0-based last id), computed from the block structure. */
        int64_t persons = (int64_t)(id / 50) + 1;
        int64_t auctions = (int64_t)(id / 50) * 3 + (id % 50 >= 4 ? 3 : (int64_t)(id % 50));
        if (k == NEXMARK_PERSON) {
            assert_int_equal(o.via.array.size, NEXMARK_PERSON_FIELDS);
            assert_int_equal(field_int(&o, 1), next_person++);
            for (uint32_t i = 2; i <= 6; i++)
                assert_str(&o, i);
            assert_int_equal(o.via.array.ptr[4].via.str.size, 19); /* "dddd dddd dddd dddd" */
            assert_true(field_int(&o, 7) == ts);
            assert_str(&o, 8);
        } else if (k == NEXMARK_AUCTION) {
            assert_int_equal(o.via.array.size, NEXMARK_AUCTION_FIELDS);
            assert_int_equal(field_int(&o, 1), next_auction++);
            assert_int_equal(field_int(&o, 1), 1000 + auctions - 1);
            assert_str(&o, 2);
            assert_str(&o, 3);
            int64_t initial = field_int(&o, 4), reserve = field_int(&o, 5);
            assert_true(initial >= 100 && initial <= 100000000);
            assert_true(reserve > initial);
            assert_true(field_int(&o, 6) == ts);
            assert_true(field_int(&o, 7) > ts); /* expires */
            int64_t seller = field_int(&o, 8);
            assert_true(seller >= 1000 && seller < 1000 + persons + NEXMARK_PERSON_ID_LEAD);
            int64_t cat = field_int(&o, 9);
            assert_true(cat >= 10 && cat < 15);
            assert_str(&o, 10);
        } else {
            assert_int_equal(o.via.array.size, NEXMARK_BID_FIELDS);
            int64_t auction = field_int(&o, NEXMARK_BID_AUCTION);
            assert_true(auction >= 1000 && auction < 1000 + auctions + NEXMARK_AUCTION_ID_LEAD);
            int64_t hot_auction = 1000 + ((auctions - 1) / 100) * 100;
            if (auction == hot_auction)
                hot++;
            int64_t bidder = field_int(&o, NEXMARK_BID_BIDDER);
            assert_true(bidder >= 1000 && bidder < 1000 + persons + NEXMARK_PERSON_ID_LEAD);
            int64_t price = field_int(&o, NEXMARK_BID_PRICE);
            assert_true(price >= 100 && price <= 100000000);
            assert_str(&o, NEXMARK_BID_CHANNEL);
            assert_str(&o, NEXMARK_BID_URL);
            assert_true(field_int(&o, NEXMARK_BID_DATETIME) == ts);
            assert_str(&o, NEXMARK_BID_EXTRA);
            /* extra: (100 - 32) +- 20% */
            uint32_t x = o.via.array.ptr[NEXMARK_BID_EXTRA].via.str.size;
            assert_true(x >= 54 && x <= 82);
            const char *xs = o.via.array.ptr[NEXMARK_BID_EXTRA].via.str.ptr;
            for (uint32_t i = 0; i < x; i++)
                assert_true(xs[i] >= 'a' && xs[i] <= 'z');
            bids++;
            bid_bytes += p.sb.size;
        }
    }
    assert_int_equal(next_person, 1000 + 2000);
    assert_int_equal(next_auction, 1000 + 6000);
    /* Hot auction ratio 2: about half the bids (plus a few random hits) go to the hot one. */
    double hot_frac = (double)hot / (double)bids;
    assert_true(hot_frac > 0.45 && hot_frac < 0.6);
    double avg = (double)bid_bytes / (double)bids;
    printf("average encoded bid: %.1f bytes, hot auction share %.3f\n", avg, hot_frac);
    assert_true(avg > 100 && avg < 200);
    msgpack_sbuffer_destroy(&p.sb);
}

static void test_helpers(void **state) {
    (void)state;
    assert_int_equal(nexmark_last_base0_person_id(0), 0);
    assert_int_equal(nexmark_last_base0_person_id(49), 0);
    assert_int_equal(nexmark_last_base0_person_id(50), 1);
    assert_int_equal(nexmark_last_base0_auction_id(1), 0);
    assert_int_equal(nexmark_last_base0_auction_id(3), 2);
    assert_int_equal(nexmark_last_base0_auction_id(4), 2);
    assert_int_equal(nexmark_last_base0_auction_id(50), 2); /* person event: previous block */
    assert_int_equal(nexmark_last_base0_auction_id(52), 4);
    nexmark_config_t c;
    nexmark_config_default(&c);
    c.events_per_sec = 1000; /* 1 ms apart */
    assert_true(nexmark_event_time_ms(&c, 1234) == c.base_time_ms + 1234);
}

static void test_determinism(void **state) {
    (void)state;
    nexmark_config_t c;
    nexmark_config_default(&c);
    packed_t a, b;
    packed_init(&a);
    packed_init(&b);
    int64_t ta, tb;
    uint64_t ids[] = {0, 1, 2, 3, 4, 5, 49, 50, 12345, 99999, 1000000007ull};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        msgpack_sbuffer_clear(&a.sb);
        msgpack_sbuffer_clear(&b.sb);
        nexmark_pack_event(&c, ids[i], &a.pk, &ta);
        /* interleave another event to show there is no hidden state */
        nexmark_pack_event(&c, ids[i] + 7, &b.pk, &tb);
        msgpack_sbuffer_clear(&b.sb);
        nexmark_pack_event(&c, ids[i], &b.pk, &tb);
        assert_int_equal(a.sb.size, b.sb.size);
        assert_memory_equal(a.sb.data, b.sb.data, a.sb.size);
        assert_true(ta == tb);
    }
    /* Different bids differ. */
    msgpack_sbuffer_clear(&a.sb);
    msgpack_sbuffer_clear(&b.sb);
    nexmark_pack_event(&c, 10, &a.pk, &ta);
    nexmark_pack_event(&c, 11, &b.pk, &tb);
    assert_true(a.sb.size != b.sb.size || memcmp(a.sb.data, b.sb.data, a.sb.size) != 0);
    msgpack_sbuffer_destroy(&a.sb);
    msgpack_sbuffer_destroy(&b.sb);
}

/* The reference's event-time rules: timestampForEvent with a fractional delay, the
 * outOfOrderGroupSize permutation, and late events (see examples/README.md "Event time"). */
static void test_event_time(void **state) {
    (void)state;
    nexmark_config_t c;
    nexmark_config_default(&c);
    assert_int_equal(c.out_of_order_group, 1);
    c.events_per_sec = 3000; /* 333.33.. us apart: trunc(n * delay) us, then trunc / 1000 */
    assert_true(nexmark_event_time_ms(&c, 0) == c.base_time_ms);
    assert_true(nexmark_event_time_ms(&c, 2) == c.base_time_ms); /* 666 us */
    assert_true(nexmark_event_time_ms(&c, 3) ==
                c.base_time_ms + 1); /* 1000 us (the old whole-us delay gave 999) */
    assert_true(nexmark_event_time_ms(&c, 3001) == c.base_time_ms + 1000);
    for (uint64_t i = 0; i < 100; i++)
        assert_int_equal(nexmark_adjusted_event_number(&c, i), i); /* group 1: in order */

    /* Group 1000: a permutation of each group, (i * 953) % 1000 inside it. */
    c.out_of_order_group = 1000;
    static unsigned char seen[1000];
    memset(seen, 0, sizeof(seen));
    for (uint64_t i = 2000; i < 3000; i++) {
        uint64_t a = nexmark_adjusted_event_number(&c, i);
        assert_true(a >= 2000 && a < 3000);
        assert_int_equal(a, 2000 + i * 953 % 1000);
        assert_int_equal(seen[a - 2000], 0);
        seen[a - 2000] = 1;
    }
    packed_t p;
    packed_init(&p);
    msgpack_object o;
    int64_t ts;
    /* The event at position 1 is event number 953: its kind, ids and time are 953's. */
    int k = gen(&c, &p, 1, &o, &ts);
    assert_int_equal(k, nexmark_event_kind(953));
    assert_true(ts == nexmark_event_time_ms(&c, 953));

    /* Late events: about late_fraction of them, 5..10 s earlier; date_time is the timestamp. */
    c.out_of_order_group = 1;
    c.events_per_sec = 10000;
    c.late_fraction = 0.05;
    uint64_t late = 0;
    for (uint64_t i = 0; i < 20000; i++) {
        int64_t shift = nexmark_late_shift_ms(&c, i);
        assert_true(shift == 0 || (shift >= NEXMARK_LATE_MIN_MS &&
                                   shift < NEXMARK_LATE_MIN_MS + NEXMARK_LATE_SPAN_MS));
        k = gen(&c, &p, i, &o, &ts);
        assert_true(ts == nexmark_event_time_ms(&c, i) - shift);
        uint32_t dt = k == NEXMARK_PERSON ? 7 : k == NEXMARK_AUCTION ? 6 : NEXMARK_BID_DATETIME;
        assert_true(field_int(&o, dt) == ts);
        if (k == NEXMARK_AUCTION)
            assert_true(field_int(&o, 7) > ts);
        late += shift != 0;
    }
    assert_true(late > 800 && late < 1200);
    c.late_fraction = 0;
    assert_true(nexmark_late_shift_ms(&c, 12345) == 0);
    msgpack_sbuffer_destroy(&p.sb);
}

/* Packs into a fixed buffer (no allocation), like the runtime's packer. */
typedef struct fixed {
    char buf[4096];
    size_t len;
} fixed_t;

static int fixed_write(void *data, const char *buf, size_t len) {
    fixed_t *f = data;
    if (f->len + len > sizeof(f->buf))
        return -1;
    memcpy(f->buf + f->len, buf, len);
    f->len += len;
    return 0;
}

static void test_speed(void **state) {
    (void)state;
    nexmark_config_t c;
    nexmark_config_default(&c);
    fixed_t f = {.len = 0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &f, fixed_write);
    const uint64_t n = 300000;
    struct timespec t0, t1;
    uint64_t sum = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (uint64_t i = 0; i < n; i++) {
        int64_t ts;
        f.len = 0;
        nexmark_pack_event(&c, i, &pk, &ts);
        sum += f.len;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ns =
        ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / (double)n;
    printf("nexmark generation: %.0f ns/event (%.1f bytes/event)\n", ns, (double)sum / (double)n);
    assert_true(sum > 0);
    /* Generous bound: this also runs under ASan/UBSan. The release target is < 150 ns. */
    assert_true(ns < 5000);
}

/* msgpack-c's own packing of @p obj into @p p (cleared first). */
static void repack(packed_t *p, const msgpack_object *obj) {
    msgpack_sbuffer_clear(&p->sb);
    msgpack_pack_object(&p->pk, *obj);
}

/* nexmark_encode_event writes exactly the bytes msgpack-c packs for the same values (the bytes
 * the generator wrote through a packer before), for every kind, also out of order and late. */
static void test_encode_is_msgpack(void **state) {
    (void)state;
    nexmark_config_t cfgs[2];
    nexmark_config_default(&cfgs[0]);
    nexmark_config_default(&cfgs[1]);
    cfgs[1].out_of_order_group = 37;
    cfgs[1].late_fraction = 0.1;
    packed_t a, b;
    packed_init(&a);
    packed_init(&b);
    size_t max = 0;
    for (int k = 0; k < 2; k++) {
        for (uint64_t pos = 0; pos < N_EVENTS; pos++) {
            uint8_t buf[NEXMARK_MAX_EVENT_BYTES];
            int64_t ts, ts2;
            int kind;
            size_t n = nexmark_encode_event(&cfgs[k], pos, buf, &ts, &kind);
            assert_true(n <= sizeof buf);
            if (n > max)
                max = n;
            msgpack_object obj;
            assert_int_equal(gen(&cfgs[k], &a, pos, &obj, &ts2), kind);
            assert_true(ts == ts2);
            assert_int_equal(a.sb.size, n); /* nexmark_pack_event appends the same bytes */
            assert_memory_equal(a.sb.data, buf, n);
            repack(&b, &obj);
            assert_int_equal(b.sb.size, n);
            assert_memory_equal(b.sb.data, buf, n);
        }
    }
    printf("largest event: %zu bytes (bound %d)\n", max, NEXMARK_MAX_EVENT_BYTES);
    msgpack_sbuffer_destroy(&a.sb);
    msgpack_sbuffer_destroy(&b.sb);
}

/* What the generic path of q1/q2 (nexmark.c: weir_unpack, then packing field by field) decides
 * and writes for @p v: -1 malformed (the job fails), 0 not a bid, 1 a bid with its q1 value in
 * @p q1 and its q2 row in @p q2. */
static int generic_bid(const void *v, size_t len, packed_t *q1, packed_t *q2) {
    msgpack_object obj;
    size_t off = 0;
    msgpack_zone_clear(&g_zone);
    if (msgpack_unpack(v, len, &off, &g_zone, &obj) != MSGPACK_UNPACK_SUCCESS)
        return -1;
    if (!(obj.type == MSGPACK_OBJECT_ARRAY && obj.via.array.size == NEXMARK_BID_FIELDS &&
          obj.via.array.ptr[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
          obj.via.array.ptr[0].via.u64 == NEXMARK_BID))
        return 0;
    const msgpack_object *f = obj.via.array.ptr;
    msgpack_sbuffer_clear(&q1->sb);
    msgpack_pack_array(&q1->pk, NEXMARK_BID_FIELDS);
    for (uint32_t i = 0; i < NEXMARK_BID_FIELDS; i++) {
        if (i == NEXMARK_BID_PRICE)
            msgpack_pack_int64(&q1->pk, f[i].via.i64 * 89 / 100);
        else
            msgpack_pack_object(&q1->pk, f[i]);
    }
    msgpack_sbuffer_clear(&q2->sb);
    msgpack_pack_array(&q2->pk, 2);
    msgpack_pack_object(&q2->pk, f[NEXMARK_BID_AUCTION]);
    msgpack_pack_object(&q2->pk, f[NEXMARK_BID_PRICE]);
    return 1;
}

/* The fast path agrees with the generic one wherever it answers (scan >= 0). */
static void check_scan(const void *v, size_t len, int want_scan) {
    packed_t q1, q2;
    packed_init(&q1);
    packed_init(&q2);
    nexmark_bid_view_t b;
    int scan = nexmark_scan_bid(v, len, &b);
    assert_int_equal(scan, want_scan);
    int gen = generic_bid(v, len, &q1, &q2);
    if (scan == 0)
        assert_int_equal(gen, 0);
    if (scan == 1) {
        assert_int_equal(gen, 1);
        uint8_t *out = malloc(len + 9), row[NEXMARK_Q2_BYTES];
        assert_non_null(out);
        size_t n = nexmark_bid_with_price(&b, b.price * 89 / 100, out);
        assert_int_equal(n, q1.sb.size);
        assert_memory_equal(out, q1.sb.data, n);
        free(out);
        n = nexmark_q2_row(&b, row);
        assert_int_equal(n, q2.sb.size);
        assert_memory_equal(row, q2.sb.data, n);
    }
    msgpack_sbuffer_destroy(&q1.sb);
    msgpack_sbuffer_destroy(&q2.sb);
}

/* A bid packed by msgpack-c with the given auction, price and strings. */
static void pack_bid(packed_t *p, int64_t auction, int64_t price, const char *channel,
                     size_t channel_len) {
    msgpack_sbuffer_clear(&p->sb);
    msgpack_pack_array(&p->pk, NEXMARK_BID_FIELDS);
    msgpack_pack_uint8(&p->pk, NEXMARK_BID);
    msgpack_pack_int64(&p->pk, auction);
    msgpack_pack_int64(&p->pk, 1001);
    msgpack_pack_int64(&p->pk, price);
    msgpack_pack_str(&p->pk, channel_len);
    msgpack_pack_str_body(&p->pk, channel, channel_len);
    msgpack_pack_str(&p->pk, 3);
    msgpack_pack_str_body(&p->pk, "url", 3);
    msgpack_pack_int64(&p->pk, 1704067200000);
    msgpack_pack_str(&p->pk, 0);
}

static void test_scan_bid(void **state) {
    (void)state;
    nexmark_config_t c;
    nexmark_config_default(&c);
    packed_t p;
    packed_init(&p);
    /* generated events: every bid is read in place, everything else is "not a bid" */
    for (uint64_t pos = 0; pos < N_EVENTS; pos++) {
        uint8_t buf[NEXMARK_MAX_EVENT_BYTES];
        int64_t ts;
        int kind;
        size_t n = nexmark_encode_event(&c, pos, buf, &ts, &kind);
        check_scan(buf, n, kind == NEXMARK_BID ? 1 : 0);
    }
    /* canonical bids at every width of auction and price, negative ones, long strings */
    static const int64_t vals[] = {0,
                                   1,
                                   31,
                                   127,
                                   128,
                                   255,
                                   256,
                                   65535,
                                   65536,
                                   4294967295LL,
                                   1LL << 32,
                                   INT64_MAX / 89,
                                   -1,
                                   -32,
                                   -33,
                                   -128,
                                   -129,
                                   -32768,
                                   -32769,
                                   -2147483648LL,
                                   -2147483649LL,
                                   INT64_MIN / 89};
    char big[70000];
    memset(big, 'x', sizeof big);
    static const size_t lens[] = {0, 5, 31, 32, 255, 256, 65535, 65536, 70000};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++)
        for (size_t j = 0; j < sizeof vals / sizeof vals[0]; j++) {
            pack_bid(&p, vals[i], vals[j], big, lens[(i + j) % 9]);
            check_scan(p.sb.data, p.sb.size, 1);
        }
    /* every truncation of a bid, and trailing bytes: the generic path decides */
    pack_bid(&p, 1000, 12345, "Google", 6);
    uint8_t bid[256];
    size_t bid_len = p.sb.size;
    memcpy(bid, p.sb.data, bid_len);
    for (size_t n = 0; n < bid_len; n++)
        check_scan(bid, n, -1);
    bid[bid_len] = 0x00;
    check_scan(bid, bid_len + 1, -1);
    /* not the shortest form: the price 5 as uint16, a short string as str 8, an array 16 */
    static const uint8_t u16_price[] = {0x98, 0x02, 0x01, 0x02, 0xcd, 0x00,
                                        0x05, 0xa0, 0xa0, 0x01, 0xa0};
    check_scan(u16_price, sizeof u16_price, -1);
    static const uint8_t int8_pos[] = {0x98, 0x02, 0x01, 0x02, 0xd0, 0x05, 0xa0, 0xa0, 0x01, 0xa0};
    check_scan(int8_pos, sizeof int8_pos, -1);
    static const uint8_t int16_300[] = {0x98, 0x02, 0x01, 0x02, 0xd1, 0x01,
                                        0x2c, 0xa0, 0xa0, 0x01, 0xa0}; /* canonical: uint16 */
    check_scan(int16_300, sizeof int16_300, -1);
    static const uint8_t str8_short[] = {0x98, 0x02, 0x01, 0x02, 0x05, 0xd9,
                                         0x01, 'a',  0xa0, 0x01, 0xa0};
    check_scan(str8_short, sizeof str8_short, -1);
    static const uint8_t arr16[] = {0xdc, 0x00, 0x08, 0x02, 0x01, 0x02,
                                    0x05, 0xa0, 0xa0, 0x01, 0xa0};
    check_scan(arr16, sizeof arr16, -1);
    /* a uint64 above INT64_MAX, a price that is a string, a float field, a kind that is not an
     * int: the generic path */
    static const uint8_t u64_big[] = {0x98, 0x02, 0xcf, 0x80, 0,    0,    0,    0,   0,
                                      0,    0,    0x02, 0x05, 0xa0, 0xa0, 0x01, 0xa0};
    check_scan(u64_big, sizeof u64_big, -1);
    static const uint8_t str_price[] = {0x98, 0x02, 0x01, 0x02, 0xa1, '5', 0xa0, 0xa0, 0x01, 0xa0};
    check_scan(str_price, sizeof str_price, -1);
    static const uint8_t nil_field[] = {0x98, 0x02, 0x01, 0x02, 0x05, 0xc0, 0xa0, 0x01, 0xa0};
    check_scan(nil_field, sizeof nil_field, -1);
    static const uint8_t str_kind[] = {0x98, 0xa1, '2', 0x01, 0x02, 0x05, 0xa0, 0xa0, 0x01, 0xa0};
    check_scan(str_kind, sizeof str_kind, -1);
    static const uint8_t neg_kind[] = {0x98, 0xff, 0x01, 0x02, 0x05, 0xa0, 0xa0, 0x01, 0xa0};
    check_scan(neg_kind, sizeof neg_kind, -1);
    /* canonical values that are not bids: another kind, seven fields, an empty array */
    static const uint8_t person[] = {0x93, 0x00, 0x01, 0xa0};
    check_scan(person, sizeof person, 0);
    static const uint8_t seven[] = {0x97, 0x02, 0x01, 0x02, 0x05, 0xa0, 0xa0, 0x01};
    check_scan(seven, sizeof seven, 0);
    static const uint8_t kind9[] = {0x98, 0x09, 0x01, 0x02, 0x05, 0xa0, 0xa0, 0x01, 0xa0};
    check_scan(kind9, sizeof kind9, 0);
    static const uint8_t empty[] = {0x90};
    check_scan(empty, sizeof empty, -1);
    msgpack_sbuffer_destroy(&p.sb);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proportions),       cmocka_unit_test(test_ids_and_fields),
        cmocka_unit_test(test_helpers),           cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_event_time),        cmocka_unit_test(test_speed),
        cmocka_unit_test(test_encode_is_msgpack), cmocka_unit_test(test_scan_bid),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
