/* The connector registry: maps a graph node's kind to its connector implementation. The task
 * runtime knows no connector; the task manager passes weir_connector_create to it as
 * weir_task_spec_t.create_connector.
 * Stateless; called on the subtask thread that builds the operator chain. */
#include "connectors/registry.h"

#include "common/err.h"
#include "common/util.h"
#include "connectors/datagen/datagen.h"
#include "connectors/file/file.h"
#include "connectors/kafka/kafka.h"
#include "connectors/print/print.h"
#include "runtime/task/operator.h"

int weir_connector_create(weir_operator_t *op, char *errstr, size_t errlen) {
    switch (op->node->kind) {
    case WEIR_OP_SOURCE_DATAGEN:
    case WEIR_OP_SOURCE_GENERATOR:
        return weir__datagen_create(op, errstr, errlen);
    case WEIR_OP_SOURCE_FILE:
        return weir__file_source_create(op, errstr, errlen);
    case WEIR_OP_SINK_FILE:
        return weir__file_sink_create(op, errstr, errlen);
    case WEIR_OP_SINK_PRINT:
    case WEIR_OP_SINK_BLACKHOLE:
        return weir__print_create(op, errstr, errlen);
    case WEIR_OP_SOURCE_KAFKA:
        return weir__kafka_source_create(op, errstr, errlen);
    default:
        weir_fmt(errstr, errlen, "operator '%s': kind %s is not a connector", op->node->name,
                 weir_op_kind_name(op->node->kind));
        return WEIR_EINVAL;
    }
}
