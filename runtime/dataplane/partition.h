/* Partitioners: choose the output channel(s) of a record on one edge. One weir_partitioner_t per
 * (subtask, output edge), owned by the subtask thread. */
#ifndef WEIR_RUNTIME_PARTITION_H
#define WEIR_RUNTIME_PARTITION_H

#include <stdint.h>

#include "runtime/graph/graph.h"

#define WEIR_PARTITION_ALL UINT32_MAX /* broadcast: every channel */

typedef struct weir_partitioner {
    weir_part_t kind;
    uint32_t n_channels;      /* downstream parallelism */
    uint32_t max_parallelism; /* HASH */
    uint32_t self;            /* FORWARD: this subtask's index */
    uint32_t next;            /* REBALANCE: round-robin cursor */
} weir_partitioner_t;

/** Sets up a partitioner. FORWARD requires n_channels == upstream parallelism. REBALANCE starts
 * at channel (self % n_channels) so that parallel senders spread their first records. */
void weir_partitioner_init(weir_partitioner_t *p, weir_part_t kind, uint32_t n_channels,
                           uint32_t max_parallelism, uint32_t self);
/** The channel for a record with this key: an index < n_channels, or WEIR_PARTITION_ALL. */
uint32_t weir_partitioner_select(weir_partitioner_t *p, const void *key, uint32_t key_len);

#endif
