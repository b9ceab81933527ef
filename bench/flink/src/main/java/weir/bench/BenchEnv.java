/*
 * The execution environment of the benchmark jobs with keyed state (NexmarkJob, KeyedCountJob):
 * RocksDB state with incremental checkpoints (weir's are incremental too), exactly-once
 * checkpoints every `interval` ms (0: none), a MiniCluster with --local, else the cluster the job
 * was submitted to; --checkpoint-dir sets where checkpoints go.
 */
package weir.bench;

import java.util.HashMap;
import java.util.Map;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.core.execution.CheckpointingMode;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;

final class BenchEnv {
    private BenchEnv() {}

    static StreamExecutionEnvironment create(Map<String, String> a, int p, long interval) {
        Map<String, String> conf = new HashMap<>();
        conf.put("state.backend.type", "rocksdb");
        conf.put("execution.checkpointing.incremental", "true");
        if (a.containsKey("--checkpoint-dir"))
            conf.put("execution.checkpointing.dir", a.get("--checkpoint-dir"));
        Configuration c = Configuration.fromMap(conf);
        StreamExecutionEnvironment env = a.containsKey("--local")
                                             ? StreamExecutionEnvironment.createLocalEnvironment(p, c)
                                             : StreamExecutionEnvironment.getExecutionEnvironment(c);
        env.setParallelism(p);
        if (interval > 0)
            env.enableCheckpointing(interval, CheckpointingMode.EXACTLY_ONCE);
        return env;
    }
}
