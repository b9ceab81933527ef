/* The latency benchmark on Flink, with the shape of weir's bench/plugins/latency.c (driven by
 * bench/latency_bench.py beside weir's):
 *
 *   LatencyJob --events N --output DIR [--rate R] [--parallelism P] [--buffer-timeout MS]
 *       [--checkpoint-interval MS]
 *
 * source (DataGeneratorSource; --rate R records/s over all subtasks, each subtask R / P paced by
 * Pacer; 0 = unlimited) -> rebalance -> map (pass through) -> sink. The source
 * stamps each record, when it makes it, with the wall clock in microseconds (Instant.now():
 * CLOCK_REALTIME, the clock weir's generator reads) and its subtask index; the sink reads the
 * clock again and counts now - created in the histogram of latency.c (Hist: exact below 128 us,
 * then 64 sub-buckets per power of two). At end of input (SinkWriter.flush(true)) each sink
 * subtask writes DIR/latency-<subtask>.txt as lines "<bucket lower bound us> <count> <remote
 * count>" (remote: made by a source subtask of another index), to a temporary name renamed
 * whole: the files weir's sink writes, merged by the same Python code.
 * --buffer-timeout MS sets the job's execution.buffer-timeout (env.setBufferTimeout: 0 flushes
 * after every record); -1 (default) keeps the cluster's (Flink's default: 100 ms).
 * --checkpoint-interval MS (default 0: none, as weir's latency runs).
 * Prints "net-runtime-ms=N": JobExecutionResult.getNetRuntime(), the job's run as Flink measures it.
 * Pacer, not Flink's RateLimiterStrategy.perSecond: Flink's GuavaRateLimiter runs every acquire()
 * (one per record) on its own executor thread, a thread hop per record that caps a subtask far
 * below the rates measured here. Pacer paces like weir's generator (connectors/common/pacing.h):
 * a record is due at start + n / rate; acquire() returns a completed future while the subtask is
 * behind (no hop) and, when it is ahead, one completed by a timer at the next due time (the
 * records due by the wake-up then go out as a burst); it never sleeps on the task thread.
 * Threading: the generator runs on its source reader's thread, each sink writer on its subtask's
 * thread and owns its histogram; nothing is shared. */
package weir.bench;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.time.Instant;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.api.connector.sink2.WriterInitContext;
import org.apache.flink.api.connector.source.SourceReaderContext;
import org.apache.flink.api.connector.source.lib.NumberSequenceSource;
import org.apache.flink.api.connector.source.lib.NumberSequenceSource.NumberSequenceSplit;
import org.apache.flink.api.connector.source.util.ratelimit.RateLimiter;
import org.apache.flink.api.connector.source.util.ratelimit.RateLimiterStrategy;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.connector.datagen.source.DataGeneratorSource;
import org.apache.flink.connector.datagen.source.GeneratorFunction;
import org.apache.flink.core.execution.CheckpointingMode;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;

public final class LatencyJob {
    private LatencyJob() {}

    static final String USAGE = "usage: LatencyJob --events N --output DIR [--rate R] [--parallelism P]"
                                + " [--buffer-timeout MS] [--checkpoint-interval MS]";

    /** Wall clock in microseconds since the epoch. */
    static long nowUs() {
        Instant t = Instant.now();
        return t.getEpochSecond() * 1_000_000L + t.getNano() / 1000;
    }

    /** latency.c's log-linear histogram: exact below SUB us, then SUB / 2 buckets per power of 2. */
    static final class Hist {
        static final int SUB_BITS = 7, SUB = 1 << SUB_BITS, N_BUCKETS = SUB + 64 * SUB;
        final long[] all = new long[N_BUCKETS], remote = new long[N_BUCKETS];

        static int bucketOf(long v) {
            if (v < SUB)
                return (int)v;
            int e = 63 - Long.numberOfLeadingZeros(v); /* >= SUB_BITS */
            int sub = (int)(v >>> (e - SUB_BITS + 1)) & (SUB / 2 - 1);
            return SUB + (e - SUB_BITS) * (SUB / 2) + sub;
        }

        static long bucketLow(int b) {
            if (b < SUB)
                return b;
            int e = (b - SUB) / (SUB / 2) + SUB_BITS;
            long sub = (b - SUB) % (SUB / 2);
            return (1L << e) | (sub << (e - SUB_BITS + 1));
        }

        void add(long latencyUs, boolean isRemote) {
            int b = bucketOf(latencyUs > 0 ? latencyUs : 0);
            all[b]++;
            if (isRemote)
                remote[b]++;
        }

        /** Writes the non-empty buckets to @p path (via a temporary file renamed whole). */
        void write(Path path) throws IOException {
            Path tmp = Paths.get(path + ".tmp");
            try (Writer w = Files.newBufferedWriter(tmp, StandardCharsets.US_ASCII)) {
                for (int b = 0; b < N_BUCKETS; b++)
                    if (all[b] != 0)
                        w.write(bucketLow(b) + " " + all[b] + " " + remote[b] + "\n");
            }
            Files.move(tmp, path, StandardCopyOption.ATOMIC_MOVE);
        }
    }

    /** A source subtask's pacing at a fixed rate (see the file comment). */
    static final class Pacer implements RateLimiter<NumberSequenceSplit> {
        /** Wakes paced subtasks that are ahead of schedule (daemon: one per task manager JVM). */
        private static final ScheduledExecutorService TIMER =
            Executors.newSingleThreadScheduledExecutor(r -> {
                Thread t = new Thread(r, "weir-latency-pacer");
                t.setDaemon(true);
                return t;
            });
        private final double nsPerRecord;
        private long start = -1, granted;

        Pacer(double perSecond) {
            nsPerRecord = 1e9 / perSecond;
        }

        @Override
        public CompletionStage<Void> acquire(int permits) {
            long now = System.nanoTime();
            if (start < 0)
                start = now;
            long due = start + (long)(granted * nsPerRecord);
            granted += permits;
            if (due <= now)
                return CompletableFuture.completedFuture(null);
            CompletableFuture<Void> f = new CompletableFuture<>();
            TIMER.schedule(() -> f.complete(null), due - now, TimeUnit.NANOSECONDS);
            return f;
        }
    }

    /** Index -> (created_us, source subtask). */
    static final class Stamp implements GeneratorFunction<Long, Tuple2<Long, Integer>> {
        private static final long serialVersionUID = 1L;
        private transient int subtask;

        @Override
        public void open(SourceReaderContext ctx) {
            subtask = ctx.getIndexOfSubtask();
        }

        @Override
        public Tuple2<Long, Integer> map(Long index) {
            return Tuple2.of(nowUs(), subtask);
        }
    }

    static final class HistSink implements Sink<Tuple2<Long, Integer>> {
        private static final long serialVersionUID = 1L;
        private final String dir;

        HistSink(String dir) {
            this.dir = dir;
        }

        @Override
        public SinkWriter<Tuple2<Long, Integer>> createWriter(WriterInitContext ctx) {
            int subtask = ctx.getTaskInfo().getIndexOfThisSubtask();
            Hist h = new Hist();
            return new SinkWriter<>() {
                @Override
                public void write(Tuple2<Long, Integer> r, Context c) {
                    h.add(nowUs() - r.f0, r.f1 != subtask);
                }

                @Override
                public void flush(boolean endOfInput) throws IOException {
                    if (endOfInput)
                        h.write(Paths.get(dir, "latency-" + subtask + ".txt"));
                }

                @Override
                public void close() {}
            };
        }
    }

    public static void main(String[] argv) throws Exception {
        Map<String, String> a = Args.parse("LatencyJob", argv, Set.of(), USAGE);
        if (!a.containsKey("--events") || !a.containsKey("--output"))
            throw new IllegalArgumentException("LatencyJob: --events and --output are required\n"
                                               + USAGE);
        long events = Long.parseLong(a.get("--events"));
        if (events <= 0)
            throw new IllegalArgumentException("LatencyJob: --events must be > 0 (bounded runs)");
        double rate = Double.parseDouble(a.getOrDefault("--rate", "0"));
        int p = Integer.parseInt(a.getOrDefault("--parallelism", "2"));
        long bufferTimeout = Long.parseLong(a.getOrDefault("--buffer-timeout", "-1"));
        long interval = Long.parseLong(a.getOrDefault("--checkpoint-interval", "0"));

        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(p);
        if (bufferTimeout >= 0)
            env.setBufferTimeout(bufferTimeout);
        if (interval > 0)
            env.enableCheckpointing(interval, CheckpointingMode.EXACTLY_ONCE);
        TypeInformation<Tuple2<Long, Integer>> type = Types.TUPLE(Types.LONG, Types.INT);
        DataGeneratorSource<Tuple2<Long, Integer>> src = new DataGeneratorSource<>(
            new Stamp(), new NumberSequenceSource(0, events - 1),
            rate > 0 ? (RateLimiterStrategy<NumberSequenceSplit>)p2 -> new Pacer(rate / p2)
                     : RateLimiterStrategy.noOp(),
            type);
        env.fromSource(src, WatermarkStrategy.noWatermarks(), "gen")
            .rebalance()
            .map(r -> r)
            .name("pass")
            .returns(type)
            .sinkTo(new HistSink(a.get("--output")))
            .name("latency-sink");
        // Flink's own measure of the job's run, without the JVM and MiniCluster start
        System.out.println("net-runtime-ms=" + env.execute("latency").getNetRuntime());
    }
}
