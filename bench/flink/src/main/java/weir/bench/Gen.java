/* The Nexmark generator, ported from examples/nexmark_gen.c (the rules are in examples/README.md,
 * "The generator"): the event at a position is a pure function of (config, position), so the
 * same seed-free config and position give the same event as weir's nexmark.so, field for field.
 * tests/bench/01_flink_generator.py compares the JSON lines of both byte for byte.
 * Unsigned 64-bit arithmetic is spelled out (>>>, Long.remainderUnsigned); doubles are IEEE
 * like the C build with -ffp-contract=off (Java never fuses a multiply-add on its own).
 * Threading: stateless apart from the immutable config; every method is thread-safe. */
package weir.bench;

import java.io.Serializable;

public final class Gen implements Serializable {
    private static final long serialVersionUID = 1L;

    public static final int PERSON = 0, AUCTION = 1, BID = 2;
    static final long BASE_TIME_MS = 1704067200000L; /* 2024-01-01T00:00:00Z */
    static final long EVENT_SALT = 0x243f6a8885a308d3L;
    static final long LATE_SALT = 0x13198a2e03707344L;
    static final long CHANNEL_SALT = 0x6a09e667f3bcc909L;
    static final long GOLDEN = 0x9e3779b97f4a7c15L;

    static final String[] FIRST_NAMES = {"Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate",
                                         "Julie", "Sarah", "Deiter", "Walter"};
    static final String[] LAST_NAMES = {"Shultz", "Abrams", "Spencer", "White", "Bartels",
                                        "Walton", "Smith", "Jones", "Noris"};
    static final String[] CITIES = {"Phoenix", "Los Angeles", "San Francisco", "Boise", "Portland",
                                    "Bend", "Redmond", "Seattle", "Kent", "Cheyenne"};
    static final String[] STATES = {"AZ", "CA", "ID", "OR", "WA", "WY"};
    static final String[] HOT_CHANNELS = {"Google", "Facebook", "Baidu", "Apple"};
    static final String[] HOT_URLS = {"https://www.nexmark.com/googl/item.htm?query=1",
                                      "https://www.nexmark.com/faceb/item.htm?query=1",
                                      "https://www.nexmark.com/baidu/item.htm?query=1",
                                      "https://www.nexmark.com/apple/item.htm?query=1"};

    final double delayUs;      /* 1e6 / events per second */
    final long group;          /* out-of-order group, >= 1 */
    final double lateFraction; /* 0..1 */

    public Gen(double eventsPerSecond, long group, double lateFraction) {
        this.delayUs = 1e6 / (eventsPerSecond > 0 ? eventsPerSecond : 10000.0);
        this.group = group > 0 ? group : 1;
        this.lateFraction = lateFraction;
    }

    static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
        z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
        return z ^ (z >>> 31);
    }

    /** SplitMix64 stream. */
    static final class Rng {
        long s;

        Rng(long s) { this.s = s; }

        long next() {
            s += GOLDEN;
            return mix(s);
        }

        int nextInt(int n) { return (int) (((next() >>> 32) * (long) n) >>> 32); }

        long nextLong(long n) { return Long.remainderUnsigned(next(), n); }

        double nextDouble() { return (double) (next() >>> 11) * 0x1.0p-53; }
    }

    public long timeOf(long number) {
        return BASE_TIME_MS + ((long) ((double) number * delayUs)) / 1000;
    }

    public long adjusted(long position) {
        return position / group * group + Long.remainderUnsigned(position * 953, group);
    }

    public long lateShift(long number) {
        if (!(lateFraction > 0))
            return 0;
        long h = mix(number ^ LATE_SALT);
        if ((double) (h >>> 11) * 0x1.0p-53 >= lateFraction)
            return 0;
        return 5000 + Long.remainderUnsigned(mix(h), 5000);
    }

    public static int kind(long number) {
        long rem = number % 50;
        return rem < 1 ? PERSON : rem < 4 ? AUCTION : BID;
    }

    static long lastPerson(long n) {
        return n / 50 + Math.min(n % 50, 0);
    }

    static long lastAuction(long n) {
        long epoch = n / 50, off = n % 50;
        if (off < 1) {
            epoch--;
            off = 2;
        } else if (off >= 4) {
            off = 2;
        } else {
            off -= 1;
        }
        return epoch * 3 + off;
    }

    static long recentPerson(long n, Rng r) {
        long people = lastPerson(n) + 1;
        long active = Math.min(people, 1000);
        return people - active + r.nextLong(active + 10);
    }

    static long recentAuction(long n, Rng r) {
        long hi = lastAuction(n);
        long lo = Math.max(hi - 100, 0);
        return lo + r.nextLong(hi - lo + 1 + 10);
    }

    static long price(Rng r) {
        double y = r.nextDouble() * 6.0 * 3.321928094887362;
        int k = (int) y;
        double x = (y - k) * 0.6931471805599453;
        double p = 1 + x * (1 + x / 2 * (1 + x / 3 * (1 + x / 4 * (1 + x / 5 * (1 + x / 6)))));
        return (long) (p * (double) (1L << k) * 100.0 + 0.5);
    }

    static String text(Rng r, int maxLen) {
        int len = 3 + r.nextInt(maxLen - 3);
        char[] out = new char[len];
        long word = 0;
        for (int i = 0; i < len; i++) {
            if (i % 8 == 0)
                word = r.next();
            int b = (int) ((word >>> (8 * (i % 8))) & 0xff);
            out[i] = b % 13 == 0 ? ' ' : (char) ('a' + (b >> 1) % 26);
        }
        int s = 0, e = len;
        while (s < e && out[s] == ' ')
            s++;
        while (e > s && out[e - 1] == ' ')
            e--;
        return new String(out, s, e - s);
    }

    static String letters(Rng r, int n) {
        char[] out = new char[n];
        long word = 0;
        for (int i = 0; i < n; i++) {
            if (i % 8 == 0)
                word = r.next();
            int b = (int) ((word >>> (8 * (i % 8))) & 0xff);
            out[i] = (char) ('a' + b * 26 / 256);
        }
        return new String(out);
    }

    static String extra(Rng r, int current, int avg, int cap) {
        if (current > avg)
            return "";
        int want = avg - current;
        int delta = (int) (want * 0.2 + 0.5);
        int size = want - delta + (delta == 0 ? 0 : r.nextInt(2 * delta));
        return letters(r, Math.min(size, cap));
    }

    /** The event emitted at @p position. */
    public Event event(long position) {
        long n = adjusted(position);
        Rng r = new Rng(mix(n ^ EVENT_SALT));
        long ts = timeOf(n) - lateShift(n);
        Event e = new Event();
        e.dateTime = ts;
        switch (kind(n)) {
        case PERSON: {
            Person p = new Person();
            p.id = lastPerson(n) + 1000;
            p.name = FIRST_NAMES[r.nextInt(FIRST_NAMES.length)] + " "
                     + LAST_NAMES[r.nextInt(LAST_NAMES.length)];
            p.emailAddress = text(r, 7) + "@" + text(r, 5) + ".com";
            StringBuilder card = new StringBuilder(19);
            for (int g = 0; g < 4; g++) {
                int v = r.nextInt(10000);
                if (g > 0)
                    card.append(' ');
                card.append((char) ('0' + v / 1000)).append((char) ('0' + v / 100 % 10))
                    .append((char) ('0' + v / 10 % 10)).append((char) ('0' + v % 10));
            }
            p.creditCard = card.toString();
            p.city = CITIES[r.nextInt(CITIES.length)];
            p.state = STATES[r.nextInt(STATES.length)];
            int current = 8 + p.name.length() + p.emailAddress.length() + p.creditCard.length()
                          + p.city.length() + p.state.length();
            p.dateTime = ts;
            p.extra = extra(r, current, 200, 512);
            e.type = PERSON;
            e.person = p;
            break;
        }
        case AUCTION: {
            Auction a = new Auction();
            a.id = lastAuction(n) + 1000;
            long seller = r.nextInt(4) > 0 ? lastPerson(n) / 100 * 100 : recentPerson(n, r);
            a.seller = seller + 1000;
            a.category = 10 + r.nextInt(5);
            a.initialBid = price(r);
            long horizon = timeOf(n + 100 * 50 / 3) - ts;
            a.expires = ts + 1 + r.nextLong(Math.max(horizon * 2, 1));
            a.itemName = text(r, 20);
            a.description = text(r, 100);
            a.reserve = a.initialBid + price(r);
            a.dateTime = ts;
            a.extra = extra(r, 8 + a.itemName.length() + a.description.length() + 40, 500, 640);
            e.type = AUCTION;
            e.auction = a;
            break;
        }
        default: {
            Bid b = new Bid();
            long auction = r.nextInt(2) > 0 ? lastAuction(n) / 100 * 100 : recentAuction(n, r);
            b.auction = auction + 1000;
            long bidder = r.nextInt(4) > 0 ? lastPerson(n) / 100 * 100 + 1 : recentPerson(n, r);
            b.bidder = bidder + 1000;
            b.price = price(r);
            if (r.nextInt(2) > 0) {
                int i = r.nextInt(HOT_CHANNELS.length);
                b.channel = HOT_CHANNELS[i];
                b.url = HOT_URLS[i];
            } else {
                int c = r.nextInt(10000);
                b.channel = "channel-" + c;
                b.url = "https://www.nexmark.com/" + letters(new Rng(CHANNEL_SALT ^ c), 5)
                        + "/item.htm?query=1&channel_id=" + c;
            }
            b.dateTime = ts;
            b.extra = extra(r, 32, 100, 256);
            e.type = BID;
            e.bid = b;
            break;
        }
        }
        return e;
    }
}
