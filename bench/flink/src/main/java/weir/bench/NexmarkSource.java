/* The Nexmark source: Flink's DataGeneratorSource over a number sequence whose splits are laid out
 * so that subtask s of p generates the positions s, s + p, s + 2p, ... < N in that order, as weir's
 * nexmark-source does (examples/README.md, "Positions and event numbers"): split s holds the
 * indices [s * K, s * K + count(s)) with K = ceil(N / p), and index i maps to position
 * (i / K) + (i % K) * p. The split's progress is checkpointed by Flink (NumberSequenceSplit), so a
 * restore regenerates exactly the positions not yet emitted.
 * Threading: the generator function runs on its source reader's thread; config is immutable. */
package weir.bench;

import java.util.ArrayList;
import java.util.List;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.connector.source.lib.NumberSequenceSource;
import org.apache.flink.api.connector.source.util.ratelimit.RateLimiterStrategy;
import org.apache.flink.connector.datagen.source.DataGeneratorSource;
import org.apache.flink.connector.datagen.source.GeneratorFunction;

final class NexmarkSource {
    private NexmarkSource() {}

    /** Indices per split (K). */
    static long stride(long events, int parallelism) {
        return (events + parallelism - 1) / parallelism;
    }

    /** Positions below @p events congruent to @p s modulo @p p. */
    static long countOf(long events, int p, int s) {
        return events > s ? (events - s + p - 1) / p : 0;
    }

    static final class Splits extends NumberSequenceSource {
        private static final long serialVersionUID = 1L;
        private final long events;
        private final int parallelism;

        Splits(long events, int parallelism) {
            super(0, Math.max(events, 1) - 1);
            this.events = events;
            this.parallelism = parallelism;
        }

        @Override
        protected List<NumberSequenceSplit> splitNumberRange(long from, long to, int numSplits) {
            if (numSplits != parallelism)
                throw new IllegalStateException("nexmark source: " + numSplits
                                                + " source subtasks, expected --parallelism "
                                                + parallelism + " (set both alike)");
            long k = stride(events, parallelism);
            List<NumberSequenceSplit> out = new ArrayList<>();
            for (int s = 0; s < parallelism; s++) {
                long n = countOf(events, parallelism, s);
                if (n > 0)
                    out.add(new NumberSequenceSplit(String.valueOf(s + 1), s * k, s * k + n - 1));
            }
            return out;
        }
    }

    static final class Fn implements GeneratorFunction<Long, Event> {
        private static final long serialVersionUID = 1L;
        private final Gen gen;
        private final long k;
        private final int p;

        Fn(Gen gen, long events, int parallelism) {
            this.gen = gen;
            this.k = stride(events, parallelism);
            this.p = parallelism;
        }

        @Override
        public Event map(Long index) {
            long i = index;
            return gen.event(i / k + (i % k) * p);
        }
    }

    static DataGeneratorSource<Event> create(Gen gen, long events, int parallelism) {
        return new DataGeneratorSource<>(new Fn(gen, events, parallelism),
                                         new Splits(events, parallelism), RateLimiterStrategy.noOp(),
                                         TypeInformation.of(Event.class));
    }
}
