/* The datagen and generator sources (connectors/datagen/): their constructor for the registry
 * and the pure value helpers, which never call the runtime API so unit tests drive them directly
 * (tests/unit/test_connectors.c). The index cursor and rate limiter they share with the file
 * source are in connectors/common/pacing.h.
 *
 * Threading: pure functions; an operator instance runs on its subtask thread only. */
#ifndef WEIR_CONNECTORS_DATAGEN_H
#define WEIR_CONNECTORS_DATAGEN_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/task/operator.h"
#include "weir/weir.h"

/** SplitMix64 finalizer: a bijective 64-bit mix. */
uint64_t weir__splitmix64(uint64_t x);

/** Value of record @p index: SEQUENCE -> start + index; RANDOM -> splitmix64(seed ^ index) %
 * random_max (random_max 0 = the full 64-bit range). */
uint64_t weir__datagen_value(const weir_datagen_opts_t *opts, uint64_t index);

/** Writes @p v as 8 bytes big-endian into @p out. */
void weir__be64(uint64_t v, uint8_t out[8]);

/** Datagen and generator sources: sets op->vt/op->impl (called by weir_connector_create).
 * @returns 0 or WEIR_ENOMEM (+ errstr). */
int weir__datagen_create(weir_operator_t *op, char *errstr, size_t errlen);

#endif
