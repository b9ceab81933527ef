/* Nexmark event generator: see nexmark_gen.h for the model and the encoding.
 * Owns nothing: pure functions of (config, position). Strings are built on the stack and the
 * event's msgpack bytes written into the caller's array (nexmark_encode_event: no packer call
 * per field; nexmark_pack_event appends those bytes to a packer); no allocation per event.
 * Thread-safe. */
#include "nexmark_gen.h"

#include <string.h>

/* A small pseudo-random stream (SplitMix64) seeded by the event id. */
typedef struct nx_rng {
    uint64_t s;
} nx_rng_t;

static inline uint64_t nx_mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t nx_next(nx_rng_t *r) {
    r->s += 0x9e3779b97f4a7c15ull;
    return nx_mix(r->s);
}

/* Uniform in [0, n), n > 0 (multiply-shift; bias is negligible for the small n used here). */
static inline uint32_t nx_int(nx_rng_t *r, uint32_t n) {
    return (uint32_t)(((nx_next(r) >> 32) * (uint64_t)n) >> 32);
}

static inline uint64_t nx_long(nx_rng_t *r, uint64_t n) {
    return nx_next(r) % n;
}

static inline double nx_double(nx_rng_t *r) {
    return (double)(nx_next(r) >> 11) * 0x1.0p-53;
}

static const char *const FIRST_NAMES[] = {"Peter", "Paul",  "Luke",  "John",   "Saul",  "Vicky",
                                          "Kate",  "Julie", "Sarah", "Deiter", "Walter"};
static const char *const LAST_NAMES[] = {"Shultz", "Abrams", "Spencer", "White", "Bartels",
                                         "Walton", "Smith",  "Jones",   "Noris"};
static const char *const US_CITIES[] = {"Phoenix",  "Los Angeles", "San Francisco", "Boise",
                                        "Portland", "Bend",        "Redmond",       "Seattle",
                                        "Kent",     "Cheyenne"};
static const char *const US_STATES[] = {"AZ", "CA", "ID", "OR", "WA", "WY"};
static const char *const HOT_CHANNELS[] = {"Google", "Facebook", "Baidu", "Apple"};
static const char *const HOT_URLS[] = {
    "https://www.nexmark.com/googl/item.htm?query=1",
    "https://www.nexmark.com/faceb/item.htm?query=1",
    "https://www.nexmark.com/baidu/item.htm?query=1",
    "https://www.nexmark.com/apple/item.htm?query=1",
};
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define HOT_AUCTION_BATCH 100 /* hot auction: first of the last 100 auctions */
#define HOT_PERSON_BATCH 100  /* hot seller/bidder: first/second of the last 100 people */
#define HOT_CHANNELS_RATIO 2
#define CHANNELS_NUMBER 10000
#define MIN_STRING_LENGTH 3

void nexmark_config_default(nexmark_config_t *c) {
    memset(c, 0, sizeof(*c));
    c->base_time_ms = 1704067200000; /* 2024-01-01T00:00:00Z */
    c->events_per_sec = 10000.0;
    c->out_of_order_group = 1;
    c->late_fraction = 0.0;
    c->hot_auction_ratio = 2;
    c->hot_bidders_ratio = 4;
    c->hot_sellers_ratio = 4;
    c->num_active_people = 1000;
    c->num_in_flight_auctions = 100;
    c->avg_person_bytes = 200;
    c->avg_auction_bytes = 500;
    c->avg_bid_bytes = 100;
}

static inline int gen_event_kind(uint64_t event_id) {
    uint64_t rem = event_id % NEXMARK_PROPORTION_DENOMINATOR;
    if (rem < NEXMARK_PERSON_PROPORTION)
        return NEXMARK_PERSON;
    if (rem < NEXMARK_PERSON_PROPORTION + NEXMARK_AUCTION_PROPORTION)
        return NEXMARK_AUCTION;
    return NEXMARK_BID;
}

static inline int64_t gen_event_time_ms(const nexmark_config_t *c, uint64_t event_id) {
    double rate = c->events_per_sec > 0 ? c->events_per_sec : 10000.0;
    /* The reference's timestampForEvent: a double delay in us, the product truncated to whole
     * us, then divided (truncating) by 1000. */
    double delay_us = 1e6 / rate;
    return c->base_time_ms + (int64_t)((double)event_id * delay_us) / 1000;
}

static inline uint64_t gen_adjusted_event_number(const nexmark_config_t *c, uint64_t position) {
    uint64_t g = c->out_of_order_group > 0 ? c->out_of_order_group : 1;
    return position / g * g + position * 953 % g;
}

#define LATE_SALT 0x13198a2e03707344ull

static inline int64_t gen_late_shift_ms(const nexmark_config_t *c, uint64_t event_id) {
    if (!(c->late_fraction > 0))
        return 0;
    uint64_t h = nx_mix(event_id ^ LATE_SALT);
    if ((double)(h >> 11) * 0x1.0p-53 >= c->late_fraction)
        return 0;
    return NEXMARK_LATE_MIN_MS + (int64_t)(nx_mix(h) % NEXMARK_LATE_SPAN_MS);
}

static inline int64_t gen_last_base0_person_id(uint64_t event_id) {
    int64_t epoch = (int64_t)(event_id / NEXMARK_PROPORTION_DENOMINATOR);
    int64_t offset = (int64_t)(event_id % NEXMARK_PROPORTION_DENOMINATOR);
    if (offset >= NEXMARK_PERSON_PROPORTION)
        offset = NEXMARK_PERSON_PROPORTION - 1;
    return epoch * NEXMARK_PERSON_PROPORTION + offset;
}

static inline int64_t gen_last_base0_auction_id(uint64_t event_id) {
    int64_t epoch = (int64_t)(event_id / NEXMARK_PROPORTION_DENOMINATOR);
    int64_t offset = (int64_t)(event_id % NEXMARK_PROPORTION_DENOMINATOR);
    if (offset < NEXMARK_PERSON_PROPORTION) {
        epoch--; /* the last auction belongs to the previous block */
        offset = NEXMARK_AUCTION_PROPORTION - 1;
    } else if (offset >= NEXMARK_PERSON_PROPORTION + NEXMARK_AUCTION_PROPORTION) {
        offset = NEXMARK_AUCTION_PROPORTION - 1;
    } else {
        offset -= NEXMARK_PERSON_PROPORTION;
    }
    return epoch * NEXMARK_AUCTION_PROPORTION + offset;
}

/* A recent person (among the active ones, with a small lead into the future). */
static int64_t next_base0_person_id(const nexmark_config_t *c, uint64_t event_id, nx_rng_t *r) {
    int64_t num_people = gen_last_base0_person_id(event_id) + 1;
    int64_t active =
        num_people < (int64_t)c->num_active_people ? num_people : (int64_t)c->num_active_people;
    int64_t n = (int64_t)nx_long(r, (uint64_t)(active + NEXMARK_PERSON_ID_LEAD));
    return num_people - active + n;
}

/* A recent auction (among those in flight, with a small lead). */
static int64_t next_base0_auction_id(const nexmark_config_t *c, uint64_t event_id, nx_rng_t *r) {
    int64_t max_auction = gen_last_base0_auction_id(event_id);
    int64_t min_auction = max_auction - (int64_t)c->num_in_flight_auctions;
    if (min_auction < 0)
        min_auction = 0;
    return min_auction +
           (int64_t)nx_long(r, (uint64_t)(max_auction - min_auction + 1 + NEXMARK_AUCTION_ID_LEAD));
}

/* 2^y for 0 <= y < 63, without libm: 2^int(y) times a Taylor polynomial of e^(frac(y) ln 2)
 * (relative error below 2e-5, plenty for prices). */
static double pow2(double y) {
    int k = (int)y;
    double x = (y - k) * 0.6931471805599453;
    double p = 1 + x * (1 + x / 2 * (1 + x / 3 * (1 + x / 4 * (1 + x / 5 * (1 + x / 6)))));
    return p * (double)(1ull << k);
}

/* A price in cents, log-uniform between $1 and $1,000,000: 100 * 10^(6u), u uniform in [0,1). */
static int64_t next_price(nx_rng_t *r) {
    return (int64_t)(pow2(nx_double(r) * 6.0 * 3.321928094887362) * 100.0 + 0.5);
}

/* Random text of 3..max_len-1 lower-case letters and spaces, trimmed. @returns its length. */
static size_t next_string(nx_rng_t *r, char *out, uint32_t max_len) {
    size_t len = MIN_STRING_LENGTH + nx_int(r, max_len - MIN_STRING_LENGTH);
    uint64_t bits = 0;
    int left = 0;
    for (size_t i = 0; i < len; i++) {
        if (left == 0) {
            bits = nx_next(r);
            left = 8;
        }
        uint32_t v = (uint32_t)(bits & 0xff);
        bits >>= 8;
        left--;
        /* 1 in 13 is a space, otherwise a letter. */
        out[i] = (v % 13 == 0) ? ' ' : (char)('a' + (v >> 1) % 26);
    }
    size_t b = 0, e = len;
    while (b < e && out[b] == ' ')
        b++;
    while (e > b && out[e - 1] == ' ')
        e--;
    if (b > 0)
        memmove(out, out + b, e - b);
    return e - b;
}

/* Exactly @p len random lower-case letters, 8 per 64 random bits: each byte b becomes
 * 'a' + b * 26 / 256, computed for all 8 bytes at once in 16-bit lanes (byte k of the word is
 * letter k). Writes whole words: @p out has room for @p len rounded up to a multiple of 8 (the
 * bytes past @p len are scratch). */
static void next_exact_string(nx_rng_t *r, char *out, size_t len) {
    const uint64_t lanes = 0x00ff00ff00ff00ffull;
    for (size_t i = 0; i < len; i += 8) {
        uint64_t v = nx_next(r);
        uint64_t even = (((v & lanes) * 26) >> 8) & lanes;
        uint64_t odd = ((((v >> 8) & lanes) * 26) >> 8) & lanes;
        uint64_t letters = (even | (odd << 8)) + 0x6161616161616161ull; /* + 'a' per byte */
        memcpy(out + i, &letters, 8);
    }
}

/* The length of the padding that makes current + extra about @p avg on average (+-20%), at most
 * @p cap; its letters are the next_exact_string that follows (the last field of every event, so
 * it is written straight into the event: mp_extra). */
static size_t next_extra_len(nx_rng_t *r, size_t cap, size_t current, size_t avg) {
    if (current > avg)
        return 0;
    size_t want = avg - current;
    size_t delta = (size_t)((double)want * 0.2 + 0.5);
    size_t size = want - delta + (delta == 0 ? 0 : nx_int(r, (uint32_t)(2 * delta)));
    return size > cap ? cap : size;
}

/* The msgpack encoding, written straight into the event's bytes (no packer callback per field),
 * exactly as msgpack-c's msgpack_pack_int64 / msgpack_pack_str write them: the shortest form
 * (positive fixint, uint 8/16/32/64; negative fixint, int 8/16/32/64; fixstr, str 8/16/32), big
 * endian. tests/unit/test_nexmark_gen.c checks every event against msgpack-c's own packing. */
static inline uint8_t *put_be(uint8_t *p, uint8_t tag, uint64_t v, int bytes) {
    *p++ = tag;
    for (int i = bytes - 1; i >= 0; i--)
        *p++ = (uint8_t)(v >> (8 * i));
    return p;
}

static inline uint8_t *mp_int(uint8_t *p, int64_t d) {
    if (d < -(1LL << 5)) {
        if (d < -(1LL << 15))
            return d < -(1LL << 31) ? put_be(p, 0xd3, (uint64_t)d, 8)
                                    : put_be(p, 0xd2, (uint64_t)d, 4);
        return d < -(1LL << 7) ? put_be(p, 0xd1, (uint64_t)d, 2) : put_be(p, 0xd0, (uint64_t)d, 1);
    }
    if (d < (1LL << 7)) {
        *p++ = (uint8_t)d; /* positive or negative fixint */
        return p;
    }
    if (d < (1LL << 16))
        return d < (1LL << 8) ? put_be(p, 0xcc, (uint64_t)d, 1) : put_be(p, 0xcd, (uint64_t)d, 2);
    return d < (1LL << 32) ? put_be(p, 0xce, (uint64_t)d, 4) : put_be(p, 0xcf, (uint64_t)d, 8);
}

uint8_t *nexmark_mp_int(uint8_t *p, int64_t d) {
    return mp_int(p, d);
}

static inline uint8_t *mp_str_header(uint8_t *p, size_t n) {
    if (n < 32)
        *p++ = (uint8_t)(0xa0 | n);
    else if (n < 256)
        p = put_be(p, 0xd9, n, 1);
    else if (n < 65536)
        p = put_be(p, 0xda, n, 2);
    else
        p = put_be(p, 0xdb, n, 4);
    return p;
}

static inline uint8_t *mp_str(uint8_t *p, const char *s, size_t n) {
    p = mp_str_header(p, n);
    memcpy(p, s, n);
    return p + n;
}

/* The extra field: @p n random letters generated in place (the event's array has room for the
 * words next_exact_string writes past them: NEXMARK_MAX_EVENT_BYTES). */
static inline uint8_t *mp_extra(uint8_t *p, nx_rng_t *r, size_t n) {
    p = mp_str_header(p, n);
    next_exact_string(r, (char *)p, n);
    return p + n;
}

static inline uint8_t *mp_cstr(uint8_t *p, const char *s) {
    return mp_str(p, s, strlen(s));
}

/* fixarray header of @p n < 16 elements */
static inline uint8_t *mp_array(uint8_t *p, uint32_t n) {
    *p++ = (uint8_t)(0x90 | n);
    return p;
}

/* Writes the decimal digits of @p v at @p out. @returns the number of characters. */
static size_t put_u64(char *out, uint64_t v) {
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

static uint8_t *pack_person(const nexmark_config_t *c, uint64_t event_id, nx_rng_t *r, int64_t ts,
                            uint8_t *p) {
    char name[32], email[32], card[24];
    int64_t id = gen_last_base0_person_id(event_id) + NEXMARK_FIRST_PERSON_ID;
    const char *first = FIRST_NAMES[nx_int(r, NELEM(FIRST_NAMES))];
    const char *last = LAST_NAMES[nx_int(r, NELEM(LAST_NAMES))];
    size_t name_len = (size_t)snprintf(name, sizeof(name), "%s %s", first, last);
    size_t e = next_string(r, email, 7);
    email[e++] = '@';
    e += next_string(r, email + e, 5);
    memcpy(email + e, ".com", 4);
    e += 4;
    size_t card_len = 0;
    for (int g = 0; g < 4; g++) {
        uint32_t v = nx_int(r, 10000);
        if (g > 0)
            card[card_len++] = ' ';
        card[card_len++] = (char)('0' + v / 1000);
        card[card_len++] = (char)('0' + v / 100 % 10);
        card[card_len++] = (char)('0' + v / 10 % 10);
        card[card_len++] = (char)('0' + v % 10);
    }
    const char *city = US_CITIES[nx_int(r, NELEM(US_CITIES))];
    const char *state = US_STATES[nx_int(r, NELEM(US_STATES))];
    size_t current = 8 + name_len + e + card_len + strlen(city) + strlen(state);
    size_t x = next_extra_len(r, 512, current, c->avg_person_bytes);

    p = mp_array(p, NEXMARK_PERSON_FIELDS);
    p = mp_int(p, NEXMARK_PERSON);
    p = mp_int(p, id);
    p = mp_str(p, name, name_len);
    p = mp_str(p, email, e);
    p = mp_str(p, card, card_len);
    p = mp_cstr(p, city);
    p = mp_cstr(p, state);
    p = mp_int(p, ts);
    return mp_extra(p, r, x);
}

static uint8_t *pack_auction(const nexmark_config_t *c, uint64_t event_id, nx_rng_t *r, int64_t ts,
                             uint8_t *p) {
    char item[32], desc[128];
    int64_t id = gen_last_base0_auction_id(event_id) + NEXMARK_FIRST_AUCTION_ID;
    int64_t seller;
    if (nx_int(r, c->hot_sellers_ratio) > 0)
        seller = (gen_last_base0_person_id(event_id) / HOT_PERSON_BATCH) * HOT_PERSON_BATCH;
    else
        seller = next_base0_person_id(c, event_id, r);
    seller += NEXMARK_FIRST_PERSON_ID;
    int64_t category = NEXMARK_FIRST_CATEGORY_ID + nx_int(r, NEXMARK_NUM_CATEGORIES);
    int64_t initial_bid = next_price(r);
    /* Auctions last about as long as it takes for num_in_flight_auctions more to be created:
     * 1 + uniform [0, 2 * horizon) ms. */
    uint64_t events_for_auctions = (uint64_t)c->num_in_flight_auctions *
                                   NEXMARK_PROPORTION_DENOMINATOR / NEXMARK_AUCTION_PROPORTION;
    int64_t horizon = gen_event_time_ms(c, event_id + events_for_auctions) - ts;
    int64_t span = horizon * 2 > 1 ? horizon * 2 : 1;
    int64_t expires = ts + 1 + (int64_t)nx_long(r, (uint64_t)span);
    size_t item_len = next_string(r, item, 20);
    size_t desc_len = next_string(r, desc, 100);
    int64_t reserve = initial_bid + next_price(r);
    size_t current = 8 + item_len + desc_len + 8 + 8 + 8 + 8 + 8;
    size_t x = next_extra_len(r, 640, current, c->avg_auction_bytes);

    p = mp_array(p, NEXMARK_AUCTION_FIELDS);
    p = mp_int(p, NEXMARK_AUCTION);
    p = mp_int(p, id);
    p = mp_str(p, item, item_len);
    p = mp_str(p, desc, desc_len);
    p = mp_int(p, initial_bid);
    p = mp_int(p, reserve);
    p = mp_int(p, ts);
    p = mp_int(p, expires);
    p = mp_int(p, seller);
    p = mp_int(p, category);
    return mp_extra(p, r, x);
}

static uint8_t *pack_bid(const nexmark_config_t *c, uint64_t event_id, nx_rng_t *r, int64_t ts,
                         uint8_t *p) {
    char channel[32], url[128];
    int64_t auction;
    if (nx_int(r, c->hot_auction_ratio) > 0)
        auction = (gen_last_base0_auction_id(event_id) / HOT_AUCTION_BATCH) * HOT_AUCTION_BATCH;
    else
        auction = next_base0_auction_id(c, event_id, r);
    auction += NEXMARK_FIRST_AUCTION_ID;
    int64_t bidder;
    if (nx_int(r, c->hot_bidders_ratio) > 0)
        bidder = (gen_last_base0_person_id(event_id) / HOT_PERSON_BATCH) * HOT_PERSON_BATCH + 1;
    else
        bidder = next_base0_person_id(c, event_id, r);
    bidder += NEXMARK_FIRST_PERSON_ID;
    int64_t price = next_price(r);
    size_t channel_len, url_len;
    if (nx_int(r, HOT_CHANNELS_RATIO) > 0) {
        uint32_t i = nx_int(r, NELEM(HOT_CHANNELS));
        channel_len = strlen(HOT_CHANNELS[i]);
        memcpy(channel, HOT_CHANNELS[i], channel_len);
        url_len = strlen(HOT_URLS[i]);
        memcpy(url, HOT_URLS[i], url_len);
    } else {
        /* A channel's url depends on the channel number only (like a cache of channels). */
        uint32_t n = nx_int(r, CHANNELS_NUMBER);
        memcpy(channel, "channel-", 8);
        channel_len = 8 + put_u64(channel + 8, n);
        nx_rng_t cr = {.s = 0x6a09e667f3bcc909ull ^ n};
        static const char prefix[] = "https://www.nexmark.com/";
        url_len = sizeof(prefix) - 1;
        memcpy(url, prefix, url_len);
        next_exact_string(&cr, url + url_len, 5);
        url_len += 5;
        memcpy(url + url_len, "/item.htm?query=1&channel_id=", 29);
        url_len += 29;
        url_len += put_u64(url + url_len, n);
    }
    size_t x = next_extra_len(r, 256, 8 + 8 + 8 + 8, c->avg_bid_bytes);

    p = mp_array(p, NEXMARK_BID_FIELDS);
    p = mp_int(p, NEXMARK_BID);
    p = mp_int(p, auction);
    p = mp_int(p, bidder);
    p = mp_int(p, price);
    p = mp_str(p, channel, channel_len);
    p = mp_str(p, url, url_len);
    p = mp_int(p, ts);
    return mp_extra(p, r, x);
}

size_t nexmark_encode_event(const nexmark_config_t *c, uint64_t position,
                            uint8_t out[NEXMARK_MAX_EVENT_BYTES], int64_t *ts_ms, int *kind) {
    uint64_t event_id = gen_adjusted_event_number(c, position);
    nx_rng_t r = {.s = nx_mix(event_id ^ 0x243f6a8885a308d3ull)};
    int64_t ts = gen_event_time_ms(c, event_id) - gen_late_shift_ms(c, event_id);
    int k = gen_event_kind(event_id);
    uint8_t *end;
    switch (k) {
    case NEXMARK_PERSON:
        end = pack_person(c, event_id, &r, ts, out);
        break;
    case NEXMARK_AUCTION:
        end = pack_auction(c, event_id, &r, ts, out);
        break;
    default:
        end = pack_bid(c, event_id, &r, ts, out);
        break;
    }
    *ts_ms = ts;
    if (kind)
        *kind = k;
    return (size_t)(end - out);
}

int nexmark_pack_event(const nexmark_config_t *c, uint64_t position, msgpack_packer *pk,
                       int64_t *ts_ms) {
    uint8_t buf[NEXMARK_MAX_EVENT_BYTES];
    int kind;
    size_t n = nexmark_encode_event(c, position, buf, ts_ms, &kind);
    pk->callback(pk->data, (const char *)buf, n); /* the encoded array, appended as is */
    return kind;
}

/* ---------------------------------------------------------------------------------------- */
/* Reading a bid in place                                                                   */
/* ---------------------------------------------------------------------------------------- */

static inline uint64_t be_read(const uint8_t *p, int bytes) {
    uint64_t v = 0;
    for (int k = 0; k < bytes; k++)
        v = v << 8 | p[k];
    return v;
}

/* One int or string at @p p in its canonical (msgpack-c) encoding: @returns its end, NULL for
 * anything else or when it runs past @p end. */
static const uint8_t *scan_field(const uint8_t *p, const uint8_t *end, bool *is_int, int64_t *v) {
    if (p >= end)
        return NULL;
    uint8_t tag = *p;
    if (tag <= 0x7f || tag >= 0xe0) { /* positive / negative fixint: always canonical */
        *is_int = true;
        *v = (int8_t)tag;
        return p + 1;
    }
    if ((tag & 0xe0) == 0xa0) { /* fixstr */
        size_t n = tag & 0x1f;
        *is_int = false;
        return (size_t)(end - p - 1) >= n ? p + 1 + n : NULL;
    }
    if (tag >= 0xcc && tag <= 0xd3) { /* uint 8/16/32/64, int 8/16/32/64 */
        int w = 1 << ((tag - 0xcc) & 3);
        if (end - p - 1 < w)
            return NULL;
        uint64_t raw = be_read(p + 1, w);
        int64_t d;
        if (tag <= 0xcf) {
            if (raw > (uint64_t)INT64_MAX)
                return NULL;
            d = (int64_t)raw;
        } else { /* sign-extend */
            d = w == 8 ? (int64_t)raw : (int64_t)(raw << (64 - 8 * w)) >> (64 - 8 * w);
        }
        /* the shortest form (mp_int): uint for d >= 128 above the next smaller width, int for
         * d < -32 below the next smaller width's range */
        static const int64_t min_uint[4] = {128, 256, 65536, 4294967296LL};
        static const int64_t max_int[4] = {-33, -129, -32769, -2147483649LL};
        if (tag <= 0xcf ? d < min_uint[tag - 0xcc] : d > max_int[tag - 0xd0])
            return NULL;
        *is_int = true;
        *v = d;
        return p + 1 + w;
    }
    if (tag >= 0xd9 && tag <= 0xdb) { /* str 8/16/32 */
        int w = tag == 0xd9 ? 1 : tag == 0xda ? 2 : 4;
        if (end - p - 1 < w)
            return NULL;
        uint64_t n = be_read(p + 1, w);
        uint64_t lo = tag == 0xd9 ? 32 : tag == 0xda ? 256 : 65536;
        if (n < lo || (uint64_t)(end - p - 1 - w) < n)
            return NULL; /* not the shortest form, or truncated */
        *is_int = false;
        return p + 1 + w + n;
    }
    return NULL;
}

int nexmark_scan_bid(const void *value, size_t len, nexmark_bid_view_t *b) {
    const uint8_t *p = value, *end = p + len;
    if (len < 2 || (p[0] & 0xf0) != 0x90)
        return -1;
    uint32_t n = p[0] & 0x0f;
    bool kind_int = false, is_int[NEXMARK_BID_FIELDS];
    int64_t kind = -1, v[NEXMARK_BID_FIELDS];
    p++;
    for (uint32_t k = 0; k < n; k++) {
        bool ii;
        int64_t x = 0;
        if (k == NEXMARK_BID_PRICE)
            b->price_at = p;
        else if (k == NEXMARK_BID_PRICE + 1)
            b->tail = p;
        p = scan_field(p, end, &ii, &x);
        if (!p)
            return -1;
        if (k == 0) {
            kind_int = ii;
            kind = x;
        }
        if (k < NEXMARK_BID_FIELDS) {
            is_int[k] = ii;
            v[k] = x;
        }
    }
    if (p != end || !kind_int || kind < 0)
        return -1; /* trailing bytes; a kind that is not an unsigned int */
    if (kind != NEXMARK_BID || n != NEXMARK_BID_FIELDS)
        return 0;
    if (!is_int[NEXMARK_BID_AUCTION] || !is_int[NEXMARK_BID_PRICE])
        return -1;
    b->value = value;
    b->len = len;
    b->auction = v[NEXMARK_BID_AUCTION];
    b->price = v[NEXMARK_BID_PRICE];
    return 1;
}

size_t nexmark_bid_with_price(const nexmark_bid_view_t *b, int64_t price, uint8_t *out) {
    size_t head = (size_t)(b->price_at - b->value);
    size_t tail = (size_t)(b->value + b->len - b->tail);
    memcpy(out, b->value, head);
    uint8_t *p = mp_int(out + head, price);
    memcpy(p, b->tail, tail);
    return (size_t)(p + tail - out);
}

size_t nexmark_q2_row(const nexmark_bid_view_t *b, uint8_t out[NEXMARK_Q2_BYTES]) {
    uint8_t *p = mp_array(out, 2);
    p = mp_int(p, b->auction);
    p = mp_int(p, b->price);
    return (size_t)(p - out);
}

int64_t nexmark_last_base0_person_id(uint64_t event_id) {
    return gen_last_base0_person_id(event_id);
}

int64_t nexmark_last_base0_auction_id(uint64_t event_id) {
    return gen_last_base0_auction_id(event_id);
}

int64_t nexmark_event_time_ms(const nexmark_config_t *c, uint64_t event_id) {
    return gen_event_time_ms(c, event_id);
}

uint64_t nexmark_adjusted_event_number(const nexmark_config_t *c, uint64_t position) {
    return gen_adjusted_event_number(c, position);
}

int64_t nexmark_late_shift_ms(const nexmark_config_t *c, uint64_t event_id) {
    return gen_late_shift_ms(c, event_id);
}

int nexmark_event_kind(uint64_t event_id) {
    return gen_event_kind(event_id);
}
