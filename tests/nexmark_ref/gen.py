#!/usr/bin/env python3
"""Reference Nexmark event generator for weir's tests (standard library only).

Written from the generator rules in examples/README.md ("nexmark: the generator") and the
reference Nexmark generator's event-time model (Apache Beam NexmarkGenerator/GeneratorConfig,
nexmark/nexmark-flink): event numbers, the 1 person : 3 auctions : 46 bids blocks of 50, ids
derived from the event number, timestampForEvent, outOfOrderGroupSize. It is an independent
implementation used as the oracle of tests/integration/24_nexmark_events.py, not a port of
examples/nexmark_gen.c.

    python3 tests/nexmark_ref/gen.py --events N [--first I] [--events-per-second R]
        [--out-of-order-group G] [--late-fraction F]

prints the events at positions [I, I + N) as JSON lines, in position order.
"""

import argparse
import json
import sys

M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
EVENT_SALT = 0x243F6A8885A308D3
LATE_SALT = 0x13198A2E03707344
CHANNEL_SALT = 0x6A09E667F3BCC909

BASE_TIME_MS = 1704067200000  # 2024-01-01T00:00:00Z
PERSON_PROPORTION, AUCTION_PROPORTION, TOTAL_PROPORTION = 1, 3, 50
FIRST_PERSON_ID = FIRST_AUCTION_ID = 1000
FIRST_CATEGORY_ID, NUM_CATEGORIES = 10, 5
PERSON_ID_LEAD = AUCTION_ID_LEAD = 10
HOT_AUCTION_RATIO, HOT_BIDDERS_RATIO, HOT_SELLERS_RATIO = 2, 4, 4
NUM_ACTIVE_PEOPLE, NUM_IN_FLIGHT_AUCTIONS = 1000, 100
AVG_PERSON, AVG_AUCTION, AVG_BID = 200, 500, 100
LATE_MIN_MS, LATE_SPAN_MS = 5000, 5000

FIRST_NAMES = ["Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter"]
LAST_NAMES = ["Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris"]
CITIES = ["Phoenix", "Los Angeles", "San Francisco", "Boise", "Portland", "Bend", "Redmond", "Seattle",
          "Kent", "Cheyenne"]
STATES = ["AZ", "CA", "ID", "OR", "WA", "WY"]
HOT_CHANNELS = ["Google", "Facebook", "Baidu", "Apple"]
HOT_URLS = ["https://www.nexmark.com/%s/item.htm?query=1" % s for s in ("googl", "faceb", "baidu", "apple")]


def mix(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


class Rng:
    """SplitMix64: the state advances by the golden constant, the output is mix(state)."""

    def __init__(self, state):
        self.s = state & M64

    def next(self):
        self.s = (self.s + GOLDEN) & M64
        return mix(self.s)

    def int(self, n):  # [0, n): high 32 bits scaled
        return ((self.next() >> 32) * n) >> 32

    def long(self, n):  # [0, n): modulo
        return self.next() % n

    def double(self):  # [0, 1): 53 bits
        return (self.next() >> 11) * 2.0 ** -53


class Config:
    def __init__(self, events_per_second=10000.0, group=1, late_fraction=0.0):
        self.delay_us = 1e6 / float(events_per_second)
        self.group = group
        self.late_fraction = late_fraction

    def time_of(self, number):
        # Java: baseTime + (long) (eventNumber * interEventDelayUs) / 1000 (truncating).
        return BASE_TIME_MS + int(float(number) * self.delay_us) // 1000

    def adjusted(self, position):
        g = self.group
        return (position // g) * g + (position * 953) % g

    def late_shift(self, number):
        if not self.late_fraction > 0:
            return 0
        h = mix(number ^ LATE_SALT)
        if (h >> 11) * 2.0 ** -53 >= self.late_fraction:
            return 0
        return LATE_MIN_MS + mix(h) % LATE_SPAN_MS


def last_person(number):
    return number // TOTAL_PROPORTION * PERSON_PROPORTION + min(number % TOTAL_PROPORTION, PERSON_PROPORTION - 1)


def last_auction(number):
    epoch, off = divmod(number, TOTAL_PROPORTION)
    if off < PERSON_PROPORTION:
        epoch, off = epoch - 1, AUCTION_PROPORTION - 1
    elif off >= PERSON_PROPORTION + AUCTION_PROPORTION:
        off = AUCTION_PROPORTION - 1
    else:
        off -= PERSON_PROPORTION
    return epoch * AUCTION_PROPORTION + off


def recent_person(number, r):
    people = last_person(number) + 1
    active = min(people, NUM_ACTIVE_PEOPLE)
    return people - active + r.long(active + PERSON_ID_LEAD)


def recent_auction(number, r):
    hi = last_auction(number)
    lo = max(hi - NUM_IN_FLIGHT_AUCTIONS, 0)
    return lo + r.long(hi - lo + 1 + AUCTION_ID_LEAD)


def price(r):
    # 100 * 10^(6u) cents via 2^y, y = 6u * log2(10), 2^frac by a degree-6 Taylor polynomial.
    y = r.double() * 6.0 * 3.321928094887362
    k = int(y)
    x = (y - k) * 0.6931471805599453
    p = 1 + x * (1 + x / 2 * (1 + x / 3 * (1 + x / 4 * (1 + x / 5 * (1 + x / 6)))))
    return int(p * float(1 << k) * 100.0 + 0.5)


def text(r, max_len):
    n = 3 + r.int(max_len - 3)
    out = []
    for i in range(n):
        if i % 8 == 0:
            word = r.next()
        b = (word >> (8 * (i % 8))) & 0xFF
        out.append(" " if b % 13 == 0 else chr(ord("a") + (b >> 1) % 26))
    return "".join(out).strip(" ")


def letters(r, n):
    out = []
    for i in range(n):
        if i % 8 == 0:
            word = r.next()
        b = (word >> (8 * (i % 8))) & 0xFF
        out.append(chr(ord("a") + b * 26 // 256))
    return "".join(out)


def extra(r, current, avg, cap):
    if current > avg:
        return ""
    want = avg - current
    delta = int(want * 0.2 + 0.5)
    size = want - delta + (r.int(2 * delta) if delta else 0)
    return letters(r, min(size, cap))


def person(cfg, number, r, ts):
    name = FIRST_NAMES[r.int(len(FIRST_NAMES))] + " " + LAST_NAMES[r.int(len(LAST_NAMES))]
    email = text(r, 7) + "@" + text(r, 5) + ".com"
    card = " ".join("%04d" % r.int(10000) for _ in range(4))
    city = CITIES[r.int(len(CITIES))]
    state = STATES[r.int(len(STATES))]
    current = 8 + len(name) + len(email) + len(card) + len(city) + len(state)
    return {"type": "person", "id": last_person(number) + FIRST_PERSON_ID, "name": name, "emailAddress": email,
            "creditCard": card, "city": city, "state": state, "dateTime": ts,
            "extra": extra(r, current, AVG_PERSON, 512)}


def auction(cfg, number, r, ts):
    if r.int(HOT_SELLERS_RATIO) > 0:
        seller = last_person(number) // 100 * 100
    else:
        seller = recent_person(number, r)
    category = FIRST_CATEGORY_ID + r.int(NUM_CATEGORIES)
    initial = price(r)
    events_ahead = NUM_IN_FLIGHT_AUCTIONS * TOTAL_PROPORTION // AUCTION_PROPORTION
    horizon = cfg.time_of(number + events_ahead) - ts
    expires = ts + 1 + r.long(max(horizon * 2, 1))
    item = text(r, 20)
    desc = text(r, 100)
    reserve = initial + price(r)
    current = 8 + len(item) + len(desc) + 40
    return {"type": "auction", "id": last_auction(number) + FIRST_AUCTION_ID, "itemName": item,
            "description": desc, "initialBid": initial, "reserve": reserve, "dateTime": ts, "expires": expires,
            "seller": seller + FIRST_PERSON_ID, "category": category,
            "extra": extra(r, current, AVG_AUCTION, 640)}


def bid(cfg, number, r, ts):
    if r.int(HOT_AUCTION_RATIO) > 0:
        auc = last_auction(number) // 100 * 100
    else:
        auc = recent_auction(number, r)
    if r.int(HOT_BIDDERS_RATIO) > 0:
        bidder = last_person(number) // 100 * 100 + 1
    else:
        bidder = recent_person(number, r)
    p = price(r)
    if r.int(2) > 0:
        i = r.int(len(HOT_CHANNELS))
        channel, url = HOT_CHANNELS[i], HOT_URLS[i]
    else:
        n = r.int(10000)
        channel = "channel-%d" % n
        url = "https://www.nexmark.com/%s/item.htm?query=1&channel_id=%d" % (letters(Rng(CHANNEL_SALT ^ n), 5), n)
    return {"type": "bid", "auction": auc + FIRST_AUCTION_ID, "bidder": bidder + FIRST_PERSON_ID, "price": p,
            "channel": channel, "url": url, "dateTime": ts, "extra": extra(r, 32, AVG_BID, 256)}


def event(cfg, position):
    """The event emitted at @position (a dict with the reference's field names)."""
    number = cfg.adjusted(position)
    r = Rng(mix(number ^ EVENT_SALT))
    ts = cfg.time_of(number) - cfg.late_shift(number)
    rem = number % TOTAL_PROPORTION
    if rem < PERSON_PROPORTION:
        return person(cfg, number, r, ts)
    if rem < PERSON_PROPORTION + AUCTION_PROPORTION:
        return auction(cfg, number, r, ts)
    return bid(cfg, number, r, ts)


def events(first, count, events_per_second=10000.0, group=1, late_fraction=0.0):
    cfg = Config(events_per_second, group, late_fraction)
    return [event(cfg, i) for i in range(first, first + count)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, required=True)
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--events-per-second", type=float, default=10000.0)
    ap.add_argument("--out-of-order-group", type=int, default=1)
    ap.add_argument("--late-fraction", type=float, default=0.0)
    a = ap.parse_args()
    for e in events(a.first, a.events, a.events_per_second, a.out_of_order_group, a.late_fraction):
        sys.stdout.write(json.dumps(e, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
