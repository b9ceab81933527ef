/* The print and blackhole sinks (connectors/print/): their constructor for the registry.
 * Threading: an operator instance runs on its subtask thread only. */
#ifndef WEIR_CONNECTORS_PRINT_H
#define WEIR_CONNECTORS_PRINT_H

#include <stddef.h>

#include "runtime/task/operator.h"

/** Print and blackhole sinks: sets op->vt/op->impl (called by weir_connector_create).
 * @returns 0 or WEIR_ENOMEM (+ errstr). */
int weir__print_create(weir_operator_t *op, char *errstr, size_t errlen);

#endif
