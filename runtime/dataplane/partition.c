/* Owns partitioners: forward (same index), rebalance (round robin from self % n), hash (key ->
 * key group -> owning subtask, see keygroup.h) and broadcast (WEIR_PARTITION_ALL).
 * Invariants: select() returns an index < n_channels or WEIR_PARTITION_ALL.
 * Threading: one partitioner per (subtask, output edge), used by that subtask's thread only. */
#include "runtime/dataplane/partition.h"

#include <assert.h>

#include "runtime/graph/keygroup.h"

void weir_partitioner_init(weir_partitioner_t *p, weir_part_t kind, uint32_t n_channels,
                           uint32_t max_parallelism, uint32_t self) {
    assert(n_channels > 0);
    p->kind = kind;
    p->n_channels = n_channels;
    p->max_parallelism = max_parallelism ? max_parallelism : WEIR_DEFAULT_MAX_PARALLELISM;
    p->self = self;
    p->next = self % n_channels;
    if (kind == WEIR_PART_FORWARD)
        assert(self < n_channels);
}

uint32_t weir_partitioner_select(weir_partitioner_t *p, const void *key, uint32_t key_len) {
    switch (p->kind) {
    case WEIR_PART_FORWARD:
        return p->self;
    case WEIR_PART_REBALANCE: {
        uint32_t c = p->next;
        p->next = c + 1 == p->n_channels ? 0 : c + 1;
        return c;
    }
    case WEIR_PART_HASH: {
        uint32_t kg = weir_keygroup_of(key, key_len, p->max_parallelism);
        return weir_keygroup_subtask(kg, p->n_channels, p->max_parallelism);
    }
    case WEIR_PART_BROADCAST:
        return WEIR_PARTITION_ALL;
    }
    assert(!"unknown partitioning");
    return 0;
}
