/* The connector registry: what the task manager hands the task runtime to build sources and
 * connector sinks (weir_task_spec_t.create_connector). */
#ifndef WEIR_CONNECTORS_REGISTRY_H
#define WEIR_CONNECTORS_REGISTRY_H

#include <stddef.h>

#include "runtime/task/operator.h"

/** Sets op->vt/op->impl for the connector of op->node->kind (a weir_connector_factory_fn).
 * @returns 0, or WEIR_EINVAL (+ errstr) for a kind that is not a connector. */
int weir_connector_create(weir_operator_t *op, char *errstr, size_t errlen);

/** Checks the connector options of every node of @p job as at submission, without connecting
 * anywhere (the CLI calls it after define()). @returns 0, or WEIR_EINVAL with one line naming
 * the operator and the option. */
int weir_connectors_validate(const weir_job_t *job, char *errstr, size_t errlen);

#endif
