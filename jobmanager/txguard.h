/* The submission check of transactional sinks (docs/kafka.md, "Transaction timeout"): a Kafka
 * sink with exactly-once delivery keeps each transaction open from its first record until the
 * checkpoint after it completes, and, after a failure, until the restarted job commits it. If the
 * broker's transaction.timeout.ms passes first, the broker aborts the pre-committed records. The
 * job manager refuses a job whose configuration allows that.
 * Pure; any thread. */
#ifndef WEIR_JM_TXGUARD_H
#define WEIR_JM_TXGUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/graph/graph.h"

/** Time allowed for a restarted job to be deployed and to restore its sinks (on top of failure
 * detection and the restart delay). */
#define WEIR_TXGUARD_RECOVERY_MS 60000

/** What the check depends on (cluster configuration). */
typedef struct weir_txguard_cfg {
    bool checkpointing;
    int64_t interval_ms;          /* execution.checkpointing.interval */
    int64_t timeout_ms;           /* execution.checkpointing.timeout */
    int64_t heartbeat_timeout_ms; /* failure detection of a lost task manager */
    int64_t restart_delay_ms;     /* the longest delay of the restart strategy */
} weir_txguard_cfg_t;

/** The shortest safe transaction.timeout.ms: interval + checkpoint timeout + heartbeat timeout
 * + restart delay + WEIR_TXGUARD_RECOVERY_MS. */
int64_t weir_txguard_min_timeout(const weir_txguard_cfg_t *cfg);

/** Checks every exactly-once Kafka sink of @p dag. @returns 0, or WEIR_ECONFIG with one line
 * naming the sink, the figures and the fix. */
int weir_txguard_check(const weir_job_t *dag, const weir_txguard_cfg_t *cfg, char *errstr,
                       size_t errlen);

#endif
