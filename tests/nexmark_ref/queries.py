#!/usr/bin/env python3
"""Reference Nexmark queries for weir's tests (standard library only; never imports weir code).

Computes the result of a query over a list of events with the field names of `nexmark.so --query
events` (JSON lines: {"type": "person"|"auction"|"bid", ...}), from the nexmark/nexmark
project's SQL (nexmark-flink/src/main/resources/queries/q<N>.sql), written independently of
examples/nexmark_q*.c. Times are ms since the epoch; windows are [start, end).

Each function returns the list of result rows (dicts whose keys are the SELECT's columns), in
no particular order: the tests compare multisets (and, for q4, the final value per key).

    python3 tests/nexmark_ref/queries.py --query q5 EVENTS_FILE_OR_DIR...

prints the rows as JSON lines, sorted.
"""

import argparse
import json
import os
import sys
from collections import defaultdict


def _bids(events):
    return [e for e in events if e["type"] == "bid"]


def q3(events):
    """Local item suggestion: auction A JOIN person P ON A.seller = P.id WHERE A.category = 10
    AND P.state IN ('OR', 'ID', 'CA'): (P.name, P.city, P.state, A.id) per pair."""
    persons = {}
    for e in events:
        if e["type"] == "person" and e["state"] in ("OR", "ID", "CA"):
            persons.setdefault(e["id"], []).append(e)
    rows = []
    for a in events:
        if a["type"] == "auction" and a["category"] == 10:
            for p in persons.get(a["seller"], []):
                rows.append({"name": p["name"], "city": p["city"], "state": p["state"], "id": a["id"]})
    return rows


def q4_final(events):
    """Average price for a category: per auction A, final = MAX(B.price) over the bids B with
    B.auction = A.id and A.dateTime <= B.dateTime <= A.expires (auctions without such a bid are
    not in the inner result); per category, AVG(final) of BIGINT values: the sum divided by the
    count, truncated toward zero as Java's long division. {category: avg}."""
    auctions = {a["id"]: a for a in events if a["type"] == "auction"}
    final = {}
    for b in _bids(events):
        a = auctions.get(b["auction"])
        if a is not None and a["dateTime"] <= b["dateTime"] <= a["expires"]:
            final[a["id"]] = max(final.get(a["id"], b["price"]), b["price"])
    per_cat = defaultdict(list)
    for aid, m in final.items():
        per_cat[auctions[aid]["category"]].append(m)
    out = {}
    for cat, ms in per_cat.items():
        s, n = sum(ms), len(ms)
        out[cat] = abs(s) // n * (1 if s >= 0 else -1)
    return out


def q4(events):
    """The final rows of q4 (one per category: the value of its last update)."""
    return [{"category": c, "avg": v} for c, v in q4_final(events).items()]


def hop_counts(events, size=10000, slide=2000):
    """{window start: {auction: count(*)}} of the bids per HOP window (slide 2 s, size 10 s)."""
    counts = defaultdict(lambda: defaultdict(int))
    for b in _bids(events):
        t = b["dateTime"]
        start = t // slide * slide  # the last window starting at or before t
        while start > t - size:
            counts[start][b["auction"]] += 1
            start -= slide
    return counts


def q5(events):
    """Hot items: per HOP window, count(*) per auction; rows of the auctions whose count is >=
    the window's max count (every auction tied at the max)."""
    rows = []
    for per_auction in hop_counts(events).values():
        maxn = max(per_auction.values())
        rows += [{"auction": a, "num": n} for a, n in per_auction.items() if n >= maxn]
    return rows


def tumble_max(events, size=10000):
    """{window end: MAX(price)} of the bids per TUMBLE window."""
    out = {}
    for b in _bids(events):
        end = b["dateTime"] // size * size + size
        out[end] = max(out.get(end, b["price"]), b["price"])
    return out


def q7(events, size=10000):
    """Highest bid: per TUMBLE window, maxprice and window_end; every bid B with B.price =
    maxprice and window_end - 10 s <= B.dateTime <= window_end (BETWEEN: both ends)."""
    maxprice = tumble_max(events, size)
    rows = []
    for b in _bids(events):
        t = b["dateTime"]
        # window ends E with E - size <= t <= E: the end of t's own window and, when t is a
        # multiple of size, t itself (the end of the previous window)
        for end in {-(-t // size) * size, t // size * size + size}:
            if maxprice.get(end) == b["price"]:
                rows.append({"auction": b["auction"], "price": b["price"], "bidder": b["bidder"],
                             "dateTime": t, "extra": b["extra"]})
    return rows


def q8(events, size=10000):
    """Monitor new users: persons P (GROUP BY id, name, TUMBLE window) JOIN auction sellers A
    (GROUP BY seller, window) ON P.id = A.seller AND the same window: (P.id, P.name, window_start)
    once per person and window."""
    sellers = {(a["seller"], a["dateTime"] // size * size) for a in events if a["type"] == "auction"}
    rows = {(p["id"], p["name"], p["dateTime"] // size * size) for p in events if p["type"] == "person"}
    return [{"id": i, "name": n, "starttime": s} for i, n, s in rows if (i, s) in sellers]


def q11(events, gap=10000):
    """User sessions: per bidder, SESSION windows with a 10 s gap (a bid at exactly the previous
    bid + gap continues the session: Flink's session windows [t, t + gap) merge when they touch);
    count(*), SESSION_START, SESSION_END (= last bid + gap)."""
    per_bidder = defaultdict(list)
    for b in _bids(events):
        per_bidder[b["bidder"]].append(b["dateTime"])
    rows = []
    for bidder, times in per_bidder.items():
        times.sort()
        start, end, n = times[0], times[0] + gap, 0
        for t in times:
            if t > end:
                rows.append({"bidder": bidder, "bid_count": n, "starttime": start, "endtime": end})
                start, n = t, 0
            end = max(end, t + gap)
            n += 1
        rows.append({"bidder": bidder, "bid_count": n, "starttime": start, "endtime": end})
    return rows


Q20_BID = [("auction", "auction"), ("bidder", "bidder"), ("price", "price"), ("channel", "channel"),
           ("url", "url"), ("bid_dateTime", "dateTime"), ("bid_extra", "extra")]
Q20_AUCTION = [("itemName", "itemName"), ("description", "description"), ("initialBid", "initialBid"),
               ("reserve", "reserve"), ("auction_dateTime", "dateTime"), ("expires", "expires"),
               ("seller", "seller"), ("category", "category"), ("auction_extra", "extra")]


def q20(events):
    """Expand bid with auction: bid B INNER JOIN auction A ON B.auction = A.id WHERE A.category =
    10 (no time condition: an unbounded join), one row per matching (bid, auction) pair with
    the columns auction, bidder, price, channel, url, bid_dateTime, bid_extra, itemName,
    description, initialBid, reserve, auction_dateTime, expires, seller, category,
    auction_extra."""
    auctions = defaultdict(list)
    for a in events:
        if a["type"] == "auction" and a["category"] == 10:
            auctions[a["id"]].append(a)
    rows = []
    for b in _bids(events):
        for a in auctions.get(b["auction"], []):
            row = {col: b[f] for col, f in Q20_BID}
            row.update({col: a[f] for col, f in Q20_AUCTION})
            rows.append(row)
    return rows


QUERIES = {"q3": q3, "q4": q4, "q5": q5, "q7": q7, "q8": q8, "q11": q11, "q20": q20}


def read_events(paths):
    """Events from JSON-lines files or directories of committed part files (hidden names
    skipped)."""
    out = []
    for p in paths:
        files = [p] if os.path.isfile(p) else [os.path.join(p, n) for n in sorted(os.listdir(p))
                                                 if not n.startswith(".")]
        for f in files:
            with open(f, encoding="utf-8") as fh:
                out += [json.loads(line) for line in fh if line.strip()]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--query", required=True, choices=sorted(QUERIES))
    ap.add_argument("events", nargs="+", help="events files or directories")
    a = ap.parse_args()
    rows = QUERIES[a.query](read_events(a.events))
    for line in sorted(json.dumps(r, sort_keys=True, separators=(",", ":")) for r in rows):
        sys.stdout.write(line + "\n")


if __name__ == "__main__":
    main()
