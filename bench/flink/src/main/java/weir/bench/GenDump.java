/* The generator alone (no Flink on the classpath): prints the events at positions
 * [first, first + count) as the JSON lines of weir's `nexmark.so --query events`, in position
 * order, for tests/bench/01_flink_generator.py.
 *
 *   java -cp weir-flink-nexmark.jar weir.bench.GenDump --events N [--first I]
 *       [--events-per-second R] [--out-of-order-group G] [--late-fraction F]
 *
 * Threading: single-threaded. */
package weir.bench;

import java.io.BufferedOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;

public final class GenDump {
    private GenDump() {}

    public static void main(String[] argv) {
        Map<String, String> a = new HashMap<>();
        for (int i = 0; i + 1 < argv.length; i += 2)
            a.put(argv[i], argv[i + 1]);
        if (argv.length % 2 != 0 || !a.containsKey("--events")) {
            System.err.println("usage: GenDump --events N [--first I] [--events-per-second R]"
                               + " [--out-of-order-group G] [--late-fraction F]");
            System.exit(2);
        }
        Gen gen = new Gen(Double.parseDouble(a.getOrDefault("--events-per-second", "10000")),
                          Long.parseLong(a.getOrDefault("--out-of-order-group", "1")),
                          Double.parseDouble(a.getOrDefault("--late-fraction", "0")));
        long first = Long.parseLong(a.getOrDefault("--first", "0"));
        long count = Long.parseLong(a.get("--events"));
        PrintStream o = new PrintStream(new BufferedOutputStream(System.out, 1 << 16), false,
                                        StandardCharsets.UTF_8);
        for (long i = first; i < first + count; i++)
            o.print(gen.event(i).json() + "\n");
        o.flush();
    }
}
