/* The 10 M-key count on Flink, with the keys and event sequence of weir's
 * bench/plugins/keyedcount.c (bench.py keyed-count-10m runs both alternately):
 *
 *   KeyedCountJob --events N [--keys K] [--parallelism P] [--checkpoint-interval MS]
 *       [--local --output FILE]
 *
 * Source: record index i (0 <= i < N; subtask s of P emits s, s + P, ... in order, the split
 * layout of NexmarkSource, as weir's datagen source) has the key splitmix64(7 ^ i) mod K
 * (unsigned; weir's WEIR_DATAGEN_RANDOM with seed 7, connectors/datagen/datagen.c) ->
 * keyBy(key) -> KeyedProcessFunction with ValueState<Long>: the running count per key, emitted
 * after each update (weir's count emits it too) -> DiscardingSink. RocksDB state, incremental,
 * exactly-once checkpoints every --checkpoint-interval ms (default 1000; 0: none).
 * --local --output FILE (tests only): a MiniCluster, and each key's final count is written to
 * FILE as "key count" lines (the sink sees (key, count) pairs; the client keeps the maximum).
 * Threading: functions run on Flink's task threads and keep only Flink-managed keyed state. */
package weir.bench;

import java.io.BufferedWriter;
import java.io.FileOutputStream;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;
import java.util.Set;

import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.connector.source.util.ratelimit.RateLimiterStrategy;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.connector.datagen.source.DataGeneratorSource;
import org.apache.flink.connector.datagen.source.GeneratorFunction;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;
import org.apache.flink.util.CloseableIterator;
import org.apache.flink.util.Collector;

public final class KeyedCountJob {
    private KeyedCountJob() {}

    static final String USAGE = "usage: KeyedCountJob --events N [--keys K] [--parallelism P]"
                                + " [--checkpoint-interval MS] [--local --output FILE]";

    /** connectors/datagen/datagen.c weir__splitmix64. */
    static long splitmix64(long x) {
        x += 0x9e3779b97f4a7c15L;
        x = (x ^ (x >>> 30)) * 0xbf58476d1ce4e5b9L;
        x = (x ^ (x >>> 27)) * 0x94d049bb133111ebL;
        return x ^ (x >>> 31);
    }

    /** Split index -> position (NexmarkSource's layout) -> key. */
    static final class Keys implements GeneratorFunction<Long, Long> {
        private static final long serialVersionUID = 1L;
        private final long k, keys;
        private final int p;

        Keys(long events, int parallelism, long keys) {
            this.k = NexmarkSource.stride(events, parallelism);
            this.p = parallelism;
            this.keys = keys;
        }

        @Override
        public Long map(Long index) {
            long i = index;
            long v = splitmix64(7L ^ (i / k + (i % k) * p));
            return keys != 0 ? Long.remainderUnsigned(v, keys) : v;
        }
    }

    /** The running count per key in ValueState<Long>, emitted after each update. */
    static final class Count extends KeyedProcessFunction<Long, Long, Tuple2<Long, Long>> {
        private static final long serialVersionUID = 1L;
        private transient ValueState<Long> count;

        @Override
        public void open(OpenContext ctx) {
            count = getRuntimeContext().getState(new ValueStateDescriptor<>("count", Types.LONG));
        }

        @Override
        public void processElement(Long key, Context ctx, Collector<Tuple2<Long, Long>> out)
            throws Exception {
            Long n = count.value();
            long next = (n == null ? 0 : n) + 1;
            count.update(next);
            out.collect(Tuple2.of(key, next));
        }
    }

    public static void main(String[] argv) throws Exception {
        Map<String, String> a = Args.parse("KeyedCountJob", argv, Set.of("--local"), USAGE);
        if (!a.containsKey("--events"))
            throw new IllegalArgumentException("KeyedCountJob: --events is required\n" + USAGE);
        long events = Long.parseLong(a.get("--events"));
        long keys = Long.parseLong(a.getOrDefault("--keys", "10000000"));
        if (events <= 0 || keys < 0)
            throw new IllegalArgumentException("KeyedCountJob: --events must be > 0 and --keys >= 0");
        int p = Integer.parseInt(a.getOrDefault("--parallelism", "2"));
        long interval = Long.parseLong(a.getOrDefault("--checkpoint-interval", "1000"));

        StreamExecutionEnvironment env = BenchEnv.create(a, p, interval);
        DataGeneratorSource<Long> src =
            new DataGeneratorSource<>(new Keys(events, p, keys), new NexmarkSource.Splits(events, p),
                                      RateLimiterStrategy.noOp(), Types.LONG);
        DataStream<Tuple2<Long, Long>> counted =
            env.fromSource(src, WatermarkStrategy.noWatermarks(), "datagen")
                .keyBy(k -> k, Types.LONG)
                .process(new Count())
                .name("count")
                .returns(Types.TUPLE(Types.LONG, Types.LONG));
        String output = a.get("--output");
        if (output == null) {
            counted.sinkTo(new DiscardingSink<>()).name("blackhole");
            env.execute("keyed-count");
            return;
        }
        Map<Long, Long> last = new HashMap<>();
        try (CloseableIterator<Tuple2<Long, Long>> it = counted.executeAndCollect("keyed-count")) {
            while (it.hasNext()) {
                Tuple2<Long, Long> r = it.next();
                last.merge(r.f0, r.f1, Math::max);
            }
        }
        try (Writer w = new BufferedWriter(
                 new OutputStreamWriter(new FileOutputStream(output), StandardCharsets.UTF_8))) {
            for (Map.Entry<Long, Long> e : last.entrySet())
                w.write(e.getKey() + " " + e.getValue() + "\n");
        }
    }
}
