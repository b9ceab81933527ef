/* The connector registry: what the task manager hands the task runtime to build sources and
 * connector sinks (weir_task_spec_t.create_connector). */
#ifndef WEIR_CONNECTORS_REGISTRY_H
#define WEIR_CONNECTORS_REGISTRY_H

#include <stddef.h>

#include "runtime/task/operator.h"

/** Sets op->vt/op->impl for the connector of op->node->kind (a weir_connector_factory_fn).
 * @returns 0, or WEIR_EINVAL (+ errstr) for a kind that is not a connector. */
int weir_connector_create(weir_operator_t *op, char *errstr, size_t errlen);

#endif
