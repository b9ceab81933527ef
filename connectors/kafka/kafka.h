/* The Kafka connector (docs/kafka.md, connectors/kafka/README.md): the source and the sink
 * operators and their option checks. Internal to connectors/; the registry calls these.
 * Threading: an operator instance runs on its subtask thread; the validate functions are pure. */
#ifndef WEIR_CONNECTORS_KAFKA_KAFKA_H
#define WEIR_CONNECTORS_KAFKA_KAFKA_H

#include <stddef.h>

#include "runtime/task/operator.h"

/** Sets op->vt/op->impl for a WEIR_OP_SOURCE_KAFKA node. @returns 0 or WEIR_EINVAL. */
int weir__kafka_source_create(weir_operator_t *op, char *errstr, size_t errlen);
/** Sets op->vt/op->impl for a WEIR_OP_SINK_KAFKA node. @returns 0 or WEIR_EINVAL. */
int weir__kafka_sink_create(weir_operator_t *op, char *errstr, size_t errlen);

/** Checks the options of a Kafka source / sink node as at submission (no network): unknown or
 * malformed options, missing required ones, librdkafka properties librdkafka does not know.
 * @returns 0, or WEIR_EINVAL with one line naming the operator, the option and the fix. */
int weir__kafka_source_validate(const weir_node_t *n, char *errstr, size_t errlen);
int weir__kafka_sink_validate(const weir_node_t *n, char *errstr, size_t errlen);

#endif
