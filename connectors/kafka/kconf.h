/* Option handling shared by the Kafka source and sink: the Flink-style options of a node
 * (weir_node_option) checked against a table of known keys, typed getters with one-line errors,
 * and the "properties.<key>" pass-through to librdkafka.
 * Pure functions (librdkafka's conf objects only); any thread. */
#ifndef WEIR_CONNECTORS_KAFKA_KCONF_H
#define WEIR_CONNECTORS_KAFKA_KCONF_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/graph/graph.h"

/** Prefix of the options passed to librdkafka as they are (without the prefix). */
#define WEIR_KCONF_PROPERTIES "properties."

/** Every option of @p n is either in @p known (NULL-terminated) or starts with "properties.";
 * @p required (NULL-terminated, may be NULL) are present and not empty. @p api names the
 * connector in messages ("Kafka source"). @returns 0 or WEIR_EINVAL. */
int weir__kconf_check_keys(const weir_node_t *n, const char *api, const char *const *known,
                           const char *const *required, char *errstr, size_t errlen);

/** Option @p key as an integer in [min, max], @p def when absent. @returns 0 or WEIR_EINVAL. */
int weir__kconf_int(const weir_node_t *n, const char *api, const char *key, int64_t def,
                    int64_t min, int64_t max, int64_t *out, char *errstr, size_t errlen);

/** Option @p key as the index of one of @p names (NULL-terminated), @p def when absent.
 * @returns 0 or WEIR_EINVAL listing the allowed values. */
int weir__kconf_enum(const weir_node_t *n, const char *api, const char *key,
                     const char *const *names, int def, int *out, char *errstr, size_t errlen);

/** A new librdkafka conf holding bootstrap.servers and every "properties.X" option as X.
 * Properties in @p reserved (NULL-terminated; set by the connector itself) are refused, naming
 * the option that sets them instead. NULL on error (librdkafka's message in errstr). */
rd_kafka_conf_t *weir__kconf_new(const weir_node_t *n, const char *api, const char *const *reserved,
                                 char *errstr, size_t errlen);

/** Sets one librdkafka property, turning its error into one line. @returns 0 or WEIR_EINVAL. */
int weir__kconf_set(rd_kafka_conf_t *conf, const char *api, const weir_node_t *n, const char *key,
                    const char *value, char *errstr, size_t errlen);

#endif
