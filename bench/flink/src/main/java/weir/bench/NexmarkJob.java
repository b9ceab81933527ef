/* weir's Nexmark queries on Flink's DataStream API, with the semantics of weir's
 * examples/nexmark*.c (examples/README.md) and of tests/nexmark_ref/queries.py:
 *
 *   NexmarkJob --query q0|q1|q2|q3|q4|q5|q7|q8|q11|q20|events --events N [--parallelism P]
 *       [--checkpoint-interval MS] [--checkpoint-dir URI] [--events-per-second R]
 *       [--out-of-order-group G] [--late-fraction F] [--output FILE] [--local]
 * (GenDump prints the generator's events without Flink.)
 *
 * Source: NexmarkSource (strided positions per subtask, like weir's nexmark-source). q0-q2:
 * source -> rebalance -> query -> DiscardingSink. q3-q11: the source carries a 4 s
 * bounded-out-of-orderness watermark strategy (timestamps = dateTime), filters ("selects") are
 * chained to it, the query's keyed operators follow and every result is its JSON line (the keys
 * weir writes) into a DiscardingSink, or, with --output FILE, collected by the client into FILE
 * (executeAndCollect; tests only; --query q3,q5,events runs several on one source and writes
 * FILE.<query> each). State: RocksDB (state.backend.type), exactly-once checkpoints
 * every --checkpoint-interval ms (default 10000; 0: none), incremental.
 * Threading: main() builds the job graph; functions run on Flink's task threads and keep only
 * Flink-managed keyed state (plus per-instance scratch, never shared). */
package weir.bench;

import java.io.BufferedWriter;
import java.io.FileOutputStream;
import java.io.OutputStreamWriter;
import java.io.PrintStream;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.apache.flink.api.common.ExecutionConfig;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.AggregateFunction;
import org.apache.flink.api.common.functions.CoGroupFunction;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeHint;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.api.java.tuple.Tuple3;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.streaming.api.functions.co.KeyedCoProcessFunction;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;
import org.apache.flink.streaming.api.functions.windowing.ProcessAllWindowFunction;
import org.apache.flink.streaming.api.functions.windowing.ProcessWindowFunction;
import org.apache.flink.streaming.api.windowing.assigners.EventTimeSessionWindows;
import org.apache.flink.streaming.api.windowing.assigners.SlidingEventTimeWindows;
import org.apache.flink.streaming.api.windowing.assigners.TumblingEventTimeWindows;
import org.apache.flink.streaming.api.windowing.assigners.WindowAssigner;
import org.apache.flink.streaming.api.windowing.triggers.EventTimeTrigger;
import org.apache.flink.streaming.api.windowing.triggers.Trigger;
import org.apache.flink.streaming.api.windowing.windows.TimeWindow;
import org.apache.flink.util.CloseableIterator;
import org.apache.flink.util.Collector;

public final class NexmarkJob {
    private NexmarkJob() {}

    static final String USAGE =
        "usage: NexmarkJob --query q0|q1|q2|q3|q4|q5|q7|q8|q11|q20|events --events N [--parallelism P]"
        + " [--checkpoint-interval MS] [--checkpoint-dir URI] [--events-per-second R]"
        + " [--out-of-order-group G] [--late-fraction F] [--output FILE] [--local]";

    static final long Q5_SIZE = 10000, Q5_SLIDE = 2000, Q7_SIZE = 10000, Q8_SIZE = 10000,
                      Q11_GAP = 10000;

    public static void main(String[] argv) throws Exception {
        Map<String, String> a = Args.parse("NexmarkJob", argv, Set.of("--local"), USAGE);
        Gen gen = new Gen(Double.parseDouble(a.getOrDefault("--events-per-second", "10000")),
                          Long.parseLong(a.getOrDefault("--out-of-order-group", "1")),
                          Double.parseDouble(a.getOrDefault("--late-fraction", "0")));
        String query = a.get("--query");
        if (query == null || !a.containsKey("--events"))
            throw new IllegalArgumentException("NexmarkJob: --query and --events are required\n"
                                               + USAGE);
        long events = Long.parseLong(a.get("--events"));
        if (events <= 0)
            throw new IllegalArgumentException("NexmarkJob: --events must be > 0 (bounded runs)");
        int p = Integer.parseInt(a.getOrDefault("--parallelism", "2"));
        long interval = Long.parseLong(a.getOrDefault("--checkpoint-interval", "10000"));

        StreamExecutionEnvironment env = BenchEnv.create(a, p, interval);

        boolean eventTime = !(query.equals("q0") || query.equals("q1") || query.equals("q2")
                              || query.equals("events"));
        WatermarkStrategy<Event> wm =
            eventTime ? WatermarkStrategy.<Event>forBoundedOutOfOrderness(Duration.ofSeconds(4))
                            .withTimestampAssigner((e, t) -> e.dateTime)
                      : WatermarkStrategy.noWatermarks();
        DataStream<Event> src =
            env.fromSource(NexmarkSource.create(gen, events, p), wm, "nexmark-source");
        String output = a.get("--output");
        String name = "nexmark-" + query;
        switch (query) {
        case "q0":
            src.rebalance().map(e -> e).name("q0").returns(Event.class)
                .sinkTo(new DiscardingSink<>()).name("sink");
            env.execute(name);
            return;
        case "q1":
            src.rebalance().filter(e -> e.type == Gen.BID).name("bids").map(NexmarkJob::q1)
                .name("q1").returns(Event.class).sinkTo(new DiscardingSink<>()).name("sink");
            env.execute(name);
            return;
        case "q2":
            src.rebalance().filter(e -> e.type == Gen.BID && e.bid.auction % 123 == 0)
                .name("q2-filter").map(e -> Tuple2.of(e.bid.auction, e.bid.price)).name("q2")
                .returns(Types.TUPLE(Types.LONG, Types.LONG)).sinkTo(new DiscardingSink<>())
                .name("sink");
            env.execute(name);
            return;
        default:
            break;
        }
        /* Several event-time queries (and events) may run on one source in one job, their
         * lines tagged "<query>\t" and split into FILE.<query> by the client (tests). */
        String[] queries = query.split(",");
        DataStream<String> out = null;
        for (String q : queries) {
            DataStream<String> o = build(q, src);
            if (queries.length > 1)
                o = o.map(line -> q + "\t" + line).name("tag-" + q);
            out = out == null ? o : out.union(o);
        }
        if (output == null) {
            out.sinkTo(new DiscardingSink<>()).name("sink").setParallelism(out.getParallelism());
            env.execute(name);
            return;
        }
        Map<String, Writer> files = new HashMap<>();
        try (CloseableIterator<String> it = out.executeAndCollect(name)) {
            while (it.hasNext()) {
                String line = it.next(), q = query;
                if (queries.length > 1) {
                    int tab = line.indexOf('\t');
                    q = line.substring(0, tab);
                    line = line.substring(tab + 1);
                }
                String path = queries.length > 1 ? output + "." + q : output;
                Writer w = files.get(path);
                if (w == null) {
                    w = new BufferedWriter(new OutputStreamWriter(new FileOutputStream(path),
                                                                  StandardCharsets.UTF_8));
                    files.put(path, w);
                }
                w.write(line + "\n");
            }
        } finally {
            for (Writer w : files.values())
                w.close();
        }
    }

    /** The JSON lines of an event-time query (or the events) over @p src. */
    static DataStream<String> build(String query, DataStream<Event> src) {
        switch (query) {
        case "events":
            return src.map(Event::json).name("events");
        case "q3":
            return q3(src);
        case "q4":
            return q4(src);
        case "q5":
            return q5(src);
        case "q7":
            return q7(src);
        case "q8":
            return q8(src);
        case "q11":
            return q11(src);
        case "q20":
            return q20(src);
        default:
            throw new IllegalArgumentException("NexmarkJob: unknown query '" + query + "'\n"
                                               + USAGE);
        }
    }

    /* q1: bids with the price in euros (price * 89 / 100), every other field unchanged. */
    static Event q1(Event e) {
        Bid b = new Bid();
        b.auction = e.bid.auction;
        b.bidder = e.bid.bidder;
        b.price = e.bid.price * 89 / 100;
        b.channel = e.bid.channel;
        b.url = e.bid.url;
        b.dateTime = e.bid.dateTime;
        b.extra = e.bid.extra;
        Event o = new Event();
        o.type = Gen.BID;
        o.dateTime = e.dateTime;
        o.bid = b;
        return o;
    }

    /* ---------------------------------------------------------------- q3: local item suggestion */

    static DataStream<String> q3(DataStream<Event> src) {
        DataStream<Auction> auctions =
            src.filter(e -> e.type == Gen.AUCTION && e.auction.category == 10)
                .name("q3-auctions").map(e -> e.auction).returns(Auction.class).name("q3-auctions");
        DataStream<Person> persons =
            src.filter(e -> e.type == Gen.PERSON
                            && (e.person.state.equals("OR") || e.person.state.equals("ID")
                                || e.person.state.equals("CA")))
                .name("q3-persons").map(e -> e.person).returns(Person.class).name("q3-persons");
        return auctions.keyBy(x -> x.seller, Types.LONG)
            .connect(persons.keyBy(x -> x.id, Types.LONG))
            .process(new Q3Join())
            .name("q3-join")
            .uid("q3-join");
    }

    /** Per person id: the person (name, city, state) once seen; the ids of auctions that came
     * first. Every (auction, person) pair is emitted once, whichever came first. */
    static final class Q3Join extends KeyedCoProcessFunction<Long, Auction, Person, String> {
        private transient ValueState<Tuple3<String, String, String>> person;
        private transient ListState<Long> auctions;

        @Override
        public void open(OpenContext ctx) {
            person = getRuntimeContext().getState(new ValueStateDescriptor<>(
                "person", TypeInformation.of(new TypeHint<Tuple3<String, String, String>>() {})));
            auctions = getRuntimeContext().getListState(
                new ListStateDescriptor<>("auctions", Types.LONG));
        }

        @Override
        public void processElement1(Auction a, Context ctx, Collector<String> out)
            throws Exception {
            Tuple3<String, String, String> p = person.value();
            if (p != null)
                out.collect(q3Row(p, a.id));
            else
                auctions.add(a.id);
        }

        @Override
        public void processElement2(Person p, Context ctx, Collector<String> out)
            throws Exception {
            Tuple3<String, String, String> t = Tuple3.of(p.name, p.city, p.state);
            person.update(t);
            for (Long id : auctions.get())
                out.collect(q3Row(t, id));
            auctions.clear();
        }
    }

    /* {"name":..,"city":..,"state":..,"id":..} (Json's members all start with a comma). */
    static String q3Row(Tuple3<String, String, String> p, long id) {
        StringBuilder s = new StringBuilder(64);
        Json.str(s, "name", p.f0);
        Json.str(s, "city", p.f1);
        Json.str(s, "state", p.f2);
        Json.num(s, "id", id);
        return obj(s);
    }

    /** "{" + members without their leading comma + "}". */
    static String obj(StringBuilder members) {
        members.setCharAt(0, '{');
        return members.append('}').toString();
    }

    /* ------------------------------------------------------ q4: average price for a category */

    static DataStream<String> q4(DataStream<Event> src) {
        DataStream<Auction> auctions = src.filter(e -> e.type == Gen.AUCTION).name("q4-auctions")
                                           .map(e -> e.auction).returns(Auction.class)
                                           .name("q4-auctions");
        DataStream<Bid> bids = src.filter(e -> e.type == Gen.BID).name("q4-bids")
                                   .map(e -> e.bid).returns(Bid.class).name("q4-bids");
        DataStream<Tuple3<Long, Long, Long>> maxima =
            auctions.keyBy(x -> x.id, Types.LONG)
                .connect(bids.keyBy(x -> x.auction, Types.LONG))
                .process(new Q4Max())
                .returns(Types.TUPLE(Types.LONG, Types.LONG, Types.LONG))
                .name("q4-max")
                .uid("q4-max");
        return maxima.keyBy(t -> t.f0, Types.LONG).process(new Q4Avg()).name("q4-avg").uid("q4-avg");
    }

    /** Per auction: [category, dateTime, expires] once it arrived, the highest qualifying price,
     * the [price, dateTime] of bids that came first. Emits [category, auction, max] on a rise. */
    static final class Q4Max
        extends KeyedCoProcessFunction<Long, Auction, Bid, Tuple3<Long, Long, Long>> {
        private transient ValueState<Tuple3<Long, Long, Long>> auction;
        private transient ValueState<Long> max;
        private transient ListState<Tuple2<Long, Long>> early;

        @Override
        public void open(OpenContext ctx) {
            auction = getRuntimeContext().getState(new ValueStateDescriptor<>(
                "auction", Types.TUPLE(Types.LONG, Types.LONG, Types.LONG)));
            max = getRuntimeContext().getState(new ValueStateDescriptor<>("max", Types.LONG));
            early = getRuntimeContext().getListState(
                new ListStateDescriptor<>("early", Types.TUPLE(Types.LONG, Types.LONG)));
        }

        private void raise(Tuple3<Long, Long, Long> auc, long price, Context ctx,
                           Collector<Tuple3<Long, Long, Long>> out) throws Exception {
            Long cur = max.value();
            if (cur != null && cur >= price)
                return;
            max.update(price);
            out.collect(Tuple3.of(auc.f0, ctx.getCurrentKey(), price));
        }

        @Override
        public void processElement1(Auction a, Context ctx,
                                    Collector<Tuple3<Long, Long, Long>> out) throws Exception {
            Tuple3<Long, Long, Long> auc = Tuple3.of(a.category, a.dateTime, a.expires);
            auction.update(auc);
            long best = -1;
            for (Tuple2<Long, Long> b : early.get())
                if (auc.f1 <= b.f1 && b.f1 <= auc.f2 && b.f0 > best)
                    best = b.f0;
            early.clear();
            if (best >= 0)
                raise(auc, best, ctx, out);
        }

        @Override
        public void processElement2(Bid b, Context ctx, Collector<Tuple3<Long, Long, Long>> out)
            throws Exception {
            Tuple3<Long, Long, Long> auc = auction.value();
            if (auc != null) {
                if (auc.f1 <= b.dateTime && b.dateTime <= auc.f2)
                    raise(auc, b.price, ctx, out);
                return;
            }
            early.add(Tuple2.of(b.price, b.dateTime));
        }
    }

    /** Per category: [sum, count, seq] and auction -> max; emits the new average. */
    static final class Q4Avg extends KeyedProcessFunction<Long, Tuple3<Long, Long, Long>, String> {
        private transient ValueState<Tuple3<Long, Long, Long>> agg;
        private transient MapState<Long, Long> maxima;

        @Override
        public void open(OpenContext ctx) {
            agg = getRuntimeContext().getState(new ValueStateDescriptor<>(
                "agg", Types.TUPLE(Types.LONG, Types.LONG, Types.LONG)));
            maxima = getRuntimeContext().getMapState(
                new MapStateDescriptor<>("maxima", Types.LONG, Types.LONG));
        }

        @Override
        public void processElement(Tuple3<Long, Long, Long> u, Context ctx, Collector<String> out)
            throws Exception {
            Tuple3<Long, Long, Long> g = agg.value();
            long sum = g == null ? 0 : g.f0, count = g == null ? 0 : g.f1,
                 seq = g == null ? 0 : g.f2;
            Long prev = maxima.get(u.f1);
            if (prev != null) {
                sum += u.f2 - prev;
            } else {
                sum += u.f2;
                count++;
            }
            seq++;
            maxima.put(u.f1, u.f2);
            agg.update(Tuple3.of(sum, count, seq));
            StringBuilder s = new StringBuilder(64);
            Json.num(s, "category", u.f0);
            Json.num(s, "avg", sum / count);
            Json.num(s, "seq", seq);
            out.collect(obj(s));
        }
    }

    /* ------------------------------------------------------------------------ q5: hot items */

    static DataStream<String> q5(DataStream<Event> src) {
        DataStream<Tuple3<Long, Long, Long>> counts = // [window end, auction, count]
            src.filter(e -> e.type == Gen.BID).name("q5-bids").map(e -> e.bid.auction)
                .returns(Types.LONG).name("q5-bids")
                .keyBy(x -> x, Types.LONG)
                .window(SlidingEventTimeWindows.of(Duration.ofMillis(Q5_SIZE),
                                                   Duration.ofMillis(Q5_SLIDE)))
                .aggregate(new Count<>(), new WindowCount())
                .returns(Types.TUPLE(Types.LONG, Types.LONG, Types.LONG))
                .name("q5-counts")
                .uid("q5-counts");
        return counts.keyBy(t -> t.f0, Types.LONG)
            .window(TumblingEventTimeWindows.of(Duration.ofMillis(Q5_SLIDE)))
            .aggregate(new HotAgg(), new HotResult())
            .name("q5-hot")
            .uid("q5-hot");
    }

    /** count(*) as an aggregate (accumulator: the count). */
    static final class Count<T> implements AggregateFunction<T, Long, Long> {
        @Override
        public Long createAccumulator() { return 0L; }

        @Override
        public Long add(T v, Long acc) { return acc + 1; }

        @Override
        public Long getResult(Long acc) { return acc; }

        @Override
        public Long merge(Long a, Long b) { return a + b; }
    }

    static final class WindowCount
        extends ProcessWindowFunction<Long, Tuple3<Long, Long, Long>, Long, TimeWindow> {
        @Override
        public void process(Long auction, Context ctx, Iterable<Long> counts,
                            Collector<Tuple3<Long, Long, Long>> out) {
            out.collect(Tuple3.of(ctx.window().getEnd(), auction, counts.iterator().next()));
        }
    }

    /** Accumulator of q5-hot: the max count and the auctions at it. */
    public static final class Hot {
        public long max = -1;
        public List<Long> auctions = new ArrayList<>();

        public Hot() {}
    }

    static final class HotAgg implements AggregateFunction<Tuple3<Long, Long, Long>, Hot, Hot> {
        @Override
        public Hot createAccumulator() { return new Hot(); }

        @Override
        public Hot add(Tuple3<Long, Long, Long> v, Hot acc) {
            if (v.f2 > acc.max) {
                acc.max = v.f2;
                acc.auctions.clear();
            }
            if (v.f2 == acc.max)
                acc.auctions.add(v.f1);
            return acc;
        }

        @Override
        public Hot getResult(Hot acc) { return acc; }

        @Override
        public Hot merge(Hot a, Hot b) {
            if (b.max > a.max)
                return b;
            if (b.max == a.max)
                a.auctions.addAll(b.auctions);
            return a;
        }
    }

    static final class HotResult extends ProcessWindowFunction<Hot, String, Long, TimeWindow> {
        @Override
        public void process(Long end, Context ctx, Iterable<Hot> hots, Collector<String> out) {
            Hot h = hots.iterator().next();
            for (long auction : h.auctions) {
                StringBuilder s = new StringBuilder(48);
                Json.num(s, "auction", auction);
                Json.num(s, "num", h.max);
                out.collect(obj(s));
            }
        }
    }

    /* ---------------------------------------------------------------------- q7: highest bid */

    /** A bid of q7: copy = true for the flagged copy of a bid at an exact multiple of 10 s,
     * which belongs to the window ending at its dateTime (BETWEEN's closed end). */
    public static final class Q7Bid {
        public long auction, bidder, price, dateTime;
        public String extra;
        public boolean copy;

        public Q7Bid() {}
    }

    static DataStream<String> q7(DataStream<Event> src) {
        return src.filter(e -> e.type == Gen.BID).name("q7-bids")
            .flatMap((Event e, Collector<Q7Bid> out) -> {
                int copies = e.bid.dateTime % Q7_SIZE == 0 ? 2 : 1;
                for (int c = 0; c < copies; c++) {
                    Q7Bid b = new Q7Bid();
                    b.auction = e.bid.auction;
                    b.bidder = e.bid.bidder;
                    b.price = e.bid.price;
                    b.dateTime = e.bid.dateTime;
                    b.extra = e.bid.extra;
                    b.copy = c == 1;
                    out.collect(b);
                }
            })
            .returns(Q7Bid.class)
            .name("q7-prepare")
            .windowAll(new Q7Windows())
            .aggregate(new Q7Agg(), new Q7Result())
            .name("q7-max")
            .uid("q7-max");
    }

    /** Tumbling 10 s; a flagged copy goes to the window of dateTime - 1. */
    static final class Q7Windows extends WindowAssigner<Object, TimeWindow> {
        @Override
        public Collection<TimeWindow> assignWindows(Object o, long ts, WindowAssignerContext c) {
            Q7Bid b = (Q7Bid) o;
            long t = b.copy ? b.dateTime - 1 : b.dateTime;
            long start = Math.floorDiv(t, Q7_SIZE) * Q7_SIZE;
            return List.of(new TimeWindow(start, start + Q7_SIZE));
        }

        @Override
        public Trigger<Object, TimeWindow> getDefaultTrigger() { return EventTimeTrigger.create(); }

        @Override
        public TypeSerializer<TimeWindow> getWindowSerializer(ExecutionConfig c) {
            return new TimeWindow.Serializer();
        }

        @Override
        public boolean isEventTime() { return true; }
    }

    /** Accumulator of q7-max: the max over unflagged bids, the bids at it, the flagged copies
     * with a price >= it. */
    public static final class Q7Acc {
        public long max = -1;
        public List<Q7Bid> atMax = new ArrayList<>();
        public List<Q7Bid> copies = new ArrayList<>();

        public Q7Acc() {}
    }

    static final class Q7Agg implements AggregateFunction<Q7Bid, Q7Acc, Q7Acc> {
        @Override
        public Q7Acc createAccumulator() { return new Q7Acc(); }

        @Override
        public Q7Acc add(Q7Bid b, Q7Acc acc) {
            if (b.copy) {
                if (b.price >= acc.max)
                    acc.copies.add(b);
                return acc;
            }
            if (b.price > acc.max) {
                acc.max = b.price;
                acc.atMax.clear();
                acc.copies.removeIf(x -> x.price < b.price);
            }
            if (b.price == acc.max)
                acc.atMax.add(b);
            return acc;
        }

        @Override
        public Q7Acc getResult(Q7Acc acc) { return acc; }

        @Override
        public Q7Acc merge(Q7Acc a, Q7Acc b) {
            for (Q7Bid x : b.atMax)
                add(x, a);
            for (Q7Bid x : b.copies)
                add(x, a);
            return a;
        }
    }

    static final class Q7Result extends ProcessAllWindowFunction<Q7Acc, String, TimeWindow> {
        @Override
        public void process(Context ctx, Iterable<Q7Acc> accs, Collector<String> out) {
            Q7Acc acc = accs.iterator().next();
            if (acc.max < 0)
                return; /* only copies: the window had no bid of its own, so no max */
            for (Q7Bid b : acc.atMax)
                out.collect(q7Row(b));
            for (Q7Bid b : acc.copies)
                if (b.price == acc.max)
                    out.collect(q7Row(b));
        }
    }

    static String q7Row(Q7Bid b) {
        StringBuilder s = new StringBuilder(160);
        Json.num(s, "auction", b.auction);
        Json.num(s, "bidder", b.bidder);
        Json.num(s, "price", b.price);
        Json.num(s, "dateTime", b.dateTime);
        Json.str(s, "extra", b.extra);
        return obj(s);
    }

    /* ------------------------------------------------------------------ q8: monitor new users */

    static DataStream<String> q8(DataStream<Event> src) {
        DataStream<Person> persons = src.filter(e -> e.type == Gen.PERSON).name("q8-persons")
                                         .map(e -> e.person).returns(Person.class)
                                         .name("q8-persons");
        DataStream<Auction> auctions = src.filter(e -> e.type == Gen.AUCTION).name("q8-auctions")
                                           .map(e -> e.auction).returns(Auction.class)
                                           .name("q8-auctions");
        return persons.coGroup(auctions)
            .where(p -> p.id, Types.LONG)
            .equalTo(x -> x.seller, Types.LONG)
            .window(TumblingEventTimeWindows.of(Duration.ofMillis(Q8_SIZE)))
            .apply(new Q8Join(), Types.STRING)
            .name("q8-join")
            .uid("q8-join");
    }

    /** Persons who created an auction in the window they entered: one line per (id, name). */
    static final class Q8Join implements CoGroupFunction<Person, Auction, String> {
        @Override
        public void coGroup(Iterable<Person> ps, Iterable<Auction> as, Collector<String> out) {
            if (!as.iterator().hasNext())
                return;
            Set<String> seen = new LinkedHashSet<>();
            for (Person p : ps) {
                long start = Math.floorDiv(p.dateTime, Q8_SIZE) * Q8_SIZE;
                StringBuilder s = new StringBuilder(64);
                Json.num(s, "id", p.id);
                Json.str(s, "name", p.name);
                Json.num(s, "starttime", start);
                seen.add(obj(s));
            }
            for (String line : seen)
                out.collect(line);
        }
    }

    /* --------------------------------------------------------------------- q11: user sessions */

    static DataStream<String> q11(DataStream<Event> src) {
        return src.filter(e -> e.type == Gen.BID).name("q11-bids").map(e -> e.bid.bidder)
            .returns(Types.LONG).name("q11-bids")
            .keyBy(x -> x, Types.LONG)
            .window(EventTimeSessionWindows.withGap(Duration.ofMillis(Q11_GAP)))
            .aggregate(new Count<>(), new Q11Result())
            .name("q11-sessions")
            .uid("q11-sessions");
    }

    static final class Q11Result extends ProcessWindowFunction<Long, String, Long, TimeWindow> {
        @Override
        public void process(Long bidder, Context ctx, Iterable<Long> counts,
                            Collector<String> out) {
            StringBuilder s = new StringBuilder(96);
            Json.num(s, "bidder", bidder);
            Json.num(s, "bid_count", counts.iterator().next());
            Json.num(s, "starttime", ctx.window().getStart());
            Json.num(s, "endtime", ctx.window().getEnd());
            out.collect(obj(s));
        }
    }

    /* ------------------------------------------------------- q20: expand bid with auction */

    static DataStream<String> q20(DataStream<Event> src) {
        DataStream<Auction> auctions = src.filter(e -> e.type == Gen.AUCTION).name("q20-auctions")
                                           .map(e -> e.auction).returns(Auction.class)
                                           .name("q20-auctions");
        DataStream<Bid> bids = src.filter(e -> e.type == Gen.BID).name("q20-bids")
                                   .map(e -> e.bid).returns(Bid.class).name("q20-bids");
        return auctions.keyBy(x -> x.id, Types.LONG)
            .connect(bids.keyBy(x -> x.auction, Types.LONG))
            .process(new Q20Join())
            .name("q20-join")
            .uid("q20-join");
    }

    /** Per auction id, as weir's q20-join (examples/nexmark_q20.c): value "auction" = the
     * auction whole when its category is 10, else an Auction holding only its category; list
     * "early" = the bids that came before their auction (joined or dropped, then cleared, when
     * it arrives). A bid after its auction is joined (category 10) or dropped, never kept. */
    static final class Q20Join extends KeyedCoProcessFunction<Long, Auction, Bid, String> {
        private transient ValueState<Auction> auction;
        private transient ListState<Bid> early;

        @Override
        public void open(OpenContext ctx) {
            auction = getRuntimeContext().getState(
                new ValueStateDescriptor<>("auction", Auction.class));
            early = getRuntimeContext().getListState(new ListStateDescriptor<>("early", Bid.class));
        }

        @Override
        public void processElement1(Auction a, Context ctx, Collector<String> out)
            throws Exception {
            boolean wanted = a.category == 10;
            Auction kept = a;
            if (!wanted) {
                kept = new Auction();
                kept.category = a.category;
            }
            auction.update(kept);
            if (wanted)
                for (Bid b : early.get())
                    out.collect(q20Row(b, a));
            early.clear();
        }

        @Override
        public void processElement2(Bid b, Context ctx, Collector<String> out) throws Exception {
            Auction a = auction.value();
            if (a == null)
                early.add(b);
            else if (a.category == 10)
                out.collect(q20Row(b, a));
        }
    }

    /* The joined row, keys in weir's order (nexmark_q20.c). */
    static String q20Row(Bid b, Auction a) {
        StringBuilder s = new StringBuilder(1024);
        Json.num(s, "auction", b.auction);
        Json.num(s, "bidder", b.bidder);
        Json.num(s, "price", b.price);
        Json.str(s, "channel", b.channel);
        Json.str(s, "url", b.url);
        Json.num(s, "bid_dateTime", b.dateTime);
        Json.str(s, "bid_extra", b.extra);
        Json.str(s, "itemName", a.itemName);
        Json.str(s, "description", a.description);
        Json.num(s, "initialBid", a.initialBid);
        Json.num(s, "reserve", a.reserve);
        Json.num(s, "auction_dateTime", a.dateTime);
        Json.num(s, "expires", a.expires);
        Json.num(s, "seller", a.seller);
        Json.num(s, "category", a.category);
        Json.str(s, "auction_extra", a.extra);
        return obj(s);
    }
}
