/* Owns key groups: MurmurHash3 x86_32 (seed 0) of the key bytes, key group = hash mod
 * max_parallelism, and the contiguous key-group range of each subtask, with the same arithmetic
 * as Flink's KeyGroupRangeAssignment:
 *   subtask(kg)    = kg * parallelism / max_parallelism
 *   range(subtask) = [ceil(subtask * maxp / p), ceil((subtask + 1) * maxp / p) - 1]
 * Invariants: for 1 <= p <= maxp the ranges partition [0, maxp) and subtask(kg) is the subtask
 * whose range holds kg. Threading: pure functions. */
#include "runtime/graph/keygroup.h"

#include <assert.h>
#include <string.h>

static inline uint32_t rotl32(uint32_t x, int r) {
    return (x << r) | (x >> (32 - r));
}

uint32_t weir_keygroup_hash(const void *key, size_t len) {
    const uint8_t *data = key;
    const uint32_t c1 = 0xcc9e2d51u, c2 = 0x1b873593u;
    uint32_t h = 0; /* seed */
    size_t nblocks = len / 4;
    for (size_t i = 0; i < nblocks; i++) {
        const uint8_t *b = data + 4 * i;
        uint32_t k =
            (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        k *= c1;
        k = rotl32(k, 15);
        k *= c2;
        h ^= k;
        h = rotl32(h, 13);
        h = h * 5 + 0xe6546b64u;
    }
    const uint8_t *tail = data + 4 * nblocks;
    uint32_t k = 0;
    switch (len & 3) {
    case 3:
        k ^= (uint32_t)tail[2] << 16;
        /* fall through */
    case 2:
        k ^= (uint32_t)tail[1] << 8;
        /* fall through */
    case 1:
        k ^= tail[0];
        k *= c1;
        k = rotl32(k, 15);
        k *= c2;
        h ^= k;
    }
    h ^= (uint32_t)len;
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

uint32_t weir_keygroup_of(const void *key, size_t len, uint32_t max_parallelism) {
    assert(max_parallelism > 0);
    return weir_keygroup_hash(key, len) % max_parallelism;
}

uint32_t weir_keygroup_subtask(uint32_t kg, uint32_t parallelism, uint32_t max_parallelism) {
    assert(max_parallelism > 0 && kg < max_parallelism);
    return (uint32_t)((uint64_t)kg * parallelism / max_parallelism);
}

void weir_keygroup_range(uint32_t subtask, uint32_t parallelism, uint32_t max_parallelism,
                         uint32_t *first, uint32_t *last) {
    assert(parallelism > 0);
    uint64_t maxp = max_parallelism, p = parallelism;
    uint64_t start = ((uint64_t)subtask * maxp + p - 1) / p;
    uint64_t end = (((uint64_t)subtask + 1) * maxp + p - 1) / p; /* exclusive */
    *first = (uint32_t)start;
    /* Empty range (possible only when parallelism > max_parallelism): first > last. */
    if (end == 0) {
        *first = 1;
        *last = 0;
        return;
    }
    *last = (uint32_t)(end - 1);
}
