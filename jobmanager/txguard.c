/* The submission check of exactly-once Kafka sinks against the transaction timeout
 * (txguard.h). Reads only the sink options it needs ("sink.delivery-guarantee",
 * "transaction.timeout.ms"); the connector itself validates everything else in the CLI.
 * Pure; any thread. */
#include "jobmanager/txguard.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"

int64_t weir_txguard_min_timeout(const weir_txguard_cfg_t *cfg) {
    return cfg->interval_ms + cfg->timeout_ms + cfg->heartbeat_timeout_ms + cfg->restart_delay_ms +
           WEIR_TXGUARD_RECOVERY_MS;
}

int weir_txguard_check(const weir_job_t *dag, const weir_txguard_cfg_t *cfg, char *errstr,
                       size_t errlen) {
    for (uint32_t i = 0; i < dag->n_nodes; i++) {
        const weir_node_t *n = &dag->nodes[i];
        const char *dg =
            n->kind == WEIR_OP_SINK_KAFKA ? weir_node_option(n, "sink.delivery-guarantee") : NULL;
        if (!dg || strcmp(dg, "exactly-once") != 0)
            continue;
        if (!cfg->checkpointing)
            return weir_errf(errstr, errlen, WEIR_ECONFIG,
                             "Kafka sink '%s': exactly-once delivery commits at checkpoints, and "
                             "checkpointing is off: set execution.checkpointing.interval",
                             n->name);
        const char *t = weir_node_option(n, "transaction.timeout.ms");
        int64_t tmo = WEIR_KAFKA_DEFAULT_TXN_TIMEOUT_MS;
        if (t) {
            char *end;
            errno = 0;
            long long v = strtoll(t, &end, 10);
            if (!*t || *end || errno || v <= 0)
                return weir_errf(errstr, errlen, WEIR_ECONFIG,
                                 "Kafka sink '%s': transaction.timeout.ms '%s' is not a positive "
                                 "integer",
                                 n->name, t);
            tmo = v;
        }
        int64_t need = weir_txguard_min_timeout(cfg);
        if (tmo < need)
            return weir_errf(
                errstr, errlen, WEIR_ECONFIG,
                "Kafka sink '%s': transaction.timeout.ms %lld is shorter than checkpoint interval "
                "%lld + checkpoint timeout %lld + heartbeat timeout %lld + restart delay %lld + "
                "%d for recovery = %lld ms: the broker could abort a pre-committed transaction "
                "before it is committed and its records would be lost; raise "
                "transaction.timeout.ms (at most the broker's transaction.max.timeout.ms) or "
                "lower execution.checkpointing.timeout",
                n->name, (long long)tmo, (long long)cfg->interval_ms, (long long)cfg->timeout_ms,
                (long long)cfg->heartbeat_timeout_ms, (long long)cfg->restart_delay_ms,
                WEIR_TXGUARD_RECOVERY_MS, (long long)need);
    }
    return 0;
}
