/*
 * Command-line options of the benchmark jobs (NexmarkJob, KeyedCountJob, LatencyJob): "--name
 * value" pairs, plus bare flags the job names. Anything else is refused with one line naming the
 * job and the argument, followed by the job's usage.
 */
package weir.bench;

import java.util.HashMap;
import java.util.Map;
import java.util.Set;

final class Args {
    private Args() {}

    /** The options of @p argv: each "--name value" as name -> value, each flag as flag -> "1". */
    static Map<String, String> parse(String job, String[] argv, Set<String> flags, String usage) {
        Map<String, String> a = new HashMap<>();
        for (int i = 0; i < argv.length; i++) {
            String k = argv[i];
            if (flags.contains(k)) {
                a.put(k, "1");
            } else if (k.startsWith("--") && i + 1 < argv.length) {
                a.put(k, argv[++i]);
            } else {
                throw new IllegalArgumentException(job + ": unexpected argument '" + k + "'\n"
                                                   + usage);
            }
        }
        return a;
    }
}
