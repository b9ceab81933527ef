/* Unit tests of the Nexmark event generator (examples/nexmark_gen.c): kind proportions (exact
 * from the block structure), id ranges against the standard generator's formulas computed here
 * by hand, field types, determinism and encoded sizes, and the reference's event-time rules
 * (fractional inter-event delay, out-of-order groups, late events). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proportions), cmocka_unit_test(test_ids_and_fields),
        cmocka_unit_test(test_helpers),     cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_event_time),  cmocka_unit_test(test_speed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
