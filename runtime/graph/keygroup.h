/* Key groups: hash(key) mod max_parallelism, and the contiguous key-group range each subtask
 * owns (group g belongs to subtask g * parallelism / max_parallelism, as in Flink). Rescaling is
 * a matter of these ranges. Pure functions. */
#ifndef WEIR_RUNTIME_KEYGROUP_H
#define WEIR_RUNTIME_KEYGROUP_H

#include <stddef.h>
#include <stdint.h>

#define WEIR_DEFAULT_MAX_PARALLELISM 128u
#define WEIR_MAX_MAX_PARALLELISM 32768u

/** MurmurHash3 x86_32 of the key bytes with seed 0 (stable across processes and versions). */
uint32_t weir_keygroup_hash(const void *key, size_t len);
/** Key group of a key: hash mod max_parallelism. */
uint32_t weir_keygroup_of(const void *key, size_t len, uint32_t max_parallelism);
/** Subtask owning key group @p kg. */
uint32_t weir_keygroup_subtask(uint32_t kg, uint32_t parallelism, uint32_t max_parallelism);
/** Key groups [*first, *last] (inclusive) owned by @p subtask; empty when *first > *last. */
void weir_keygroup_range(uint32_t subtask, uint32_t parallelism, uint32_t max_parallelism,
                         uint32_t *first, uint32_t *last);

#endif
