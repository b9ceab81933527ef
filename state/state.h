/* Keyed state on RocksDB. One backend per stateful subtask: one RocksDB instance under the task
 * manager's working directory, one column family per declared state, WAL off.
 *
 * RocksDB key layout (all states):
 *   OFFSET SIZE DESCRIPTION
 *   0      2    key group (uint16 big-endian): range scans per key group for rescaling
 *   2      4    key length k (uint32 big-endian)
 *   6      k    key bytes
 *   6+k    n    namespace bytes (empty for now; windows will use it)
 *   ...         map state only: the user key
 * The key length prefix keeps (key, namespace, user key) unambiguous.
 * The timer state of an operator with timers ("weir.timers") has its own layout after the same
 * key-group prefix: state/timers.h.
 *
 * Values: value/reducing: the bytes; list: a sequence of [u32 LE length][bytes] appended with a
 * RocksDB merge operator (no read on add); map: the bytes per user key.
 * A state with a time to live (weir_state_decl_t.ttl_ms > 0) stores its expiry time (int64 LE,
 * ms of the processing-time clock) in front of the bytes: value/reducing and each map value are
 * [expiry 8][bytes], each list element is [u32 LE length][expiry 8][bytes]. An expired value is
 * never returned (reads compare with the clock), is deleted when a read finds it, and a RocksDB
 * compaction filter drops it (a list keeps its live elements). See state/README.md.
 *
 * Hot keys live in a bounded write-back cache in front of RocksDB (value and reducing states):
 * reads fill it, writes dirty it, eviction and weir_state_flush() write dirty entries to RocksDB
 * in one WriteBatch. The cache counts against the memory budget given in the options.
 *
 * Threading: a backend is used by its subtask thread only. */
#ifndef WEIR_STATE_STATE_H
#define WEIR_STATE_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/graph/state_decl.h"

typedef struct weir_state_backend weir_state_backend_t;
struct weir_state_memory; /* state/memory.h */

typedef struct weir_state_opts {
    const char *path;          /* directory of the RocksDB instance (created) */
    uint32_t max_parallelism;  /* number of key groups */
    size_t cache_bytes;        /* write-back cache budget (default 32 MiB when 0) */
    size_t write_buffer_bytes; /* RocksDB memtable size (default 16 MiB when 0) */
    size_t block_cache_bytes;  /* RocksDB block cache (default 16 MiB when 0) */
    /* The task manager's shared memory (state/memory.h), NULL = none. With it the backend uses
     * its block cache (index and filter blocks in it), its write buffer manager (memtable size
     * from it) and reserves its write-back cache from its budget (evicting when it cannot):
     * cache_bytes, write_buffer_bytes and block_cache_bytes are ignored. It must outlive the
     * backend. */
    struct weir_state_memory *memory;
    /* Processing-time clock of state TTL, ms (NULL: weir_wall_ms). Also called by RocksDB's
     * compaction threads (the TTL compaction filter), so it must be thread-safe. */
    int64_t (*clock_ms)(void *arg);
    void *clock_arg;
    /* Background TTL cleanup (README.md "Time to live"): a thread of the backend compacts each
     * TTL state's column family (the compaction filter drops what expired) once per interval
     * of the TTL clock while the family holds anything. 0: each state's own time to live (at
     * least 1 s); > 0: this interval (ms) for every TTL state; < 0: no thread (compactions
     * RocksDB runs by itself still drop expired entries). */
    int64_t ttl_cleanup_ms;
} weir_state_opts_t;

/** Opens (creating) the backend with one column family per declared state. NULL + errstr. */
weir_state_backend_t *weir_state_open(const weir_state_opts_t *opts,
                                      const weir_state_decl_t *states, uint32_t n_states,
                                      char *errstr, size_t errlen);
/** Writes back nothing, closes RocksDB; with @p remove_files deletes the directory. */
void weir_state_close(weir_state_backend_t **sb, bool remove_files);

/** Sets the current key (the key group is derived from it). The bytes are copied. */
void weir_state_set_key(weir_state_backend_t *sb, const void *key, uint32_t len);

/* Get functions: 0 and the out pointers (valid until the next call on this backend), 1 when
 * absent, or a negative weir error. Others: 0 or a negative weir error. `st` is the index of the
 * declaration; using a state of the wrong kind is WEIR_EINVAL. */
int weir_state_value_get(weir_state_backend_t *sb, uint32_t st, const void **val, uint32_t *len);
int weir_state_value_put(weir_state_backend_t *sb, uint32_t st, const void *val, uint32_t len);
int weir_state_value_clear(weir_state_backend_t *sb, uint32_t st);

int weir_state_list_add(weir_state_backend_t *sb, uint32_t st, const void *val, uint32_t len);
int weir_state_list_foreach(weir_state_backend_t *sb, uint32_t st,
                            int (*fn)(const void *val, uint32_t len, void *arg), void *arg);
int weir_state_list_clear(weir_state_backend_t *sb, uint32_t st);

int weir_state_map_put(weir_state_backend_t *sb, uint32_t st, const void *ukey, uint32_t ulen,
                       const void *val, uint32_t len);
int weir_state_map_get(weir_state_backend_t *sb, uint32_t st, const void *ukey, uint32_t ulen,
                       const void **val, uint32_t *len);
int weir_state_map_remove(weir_state_backend_t *sb, uint32_t st, const void *ukey, uint32_t ulen);
int weir_state_map_foreach(weir_state_backend_t *sb, uint32_t st,
                           int (*fn)(const void *uk, uint32_t ul, const void *v, uint32_t vl,
                                     void *arg),
                           void *arg);
int weir_state_map_clear(weir_state_backend_t *sb, uint32_t st);

/** Combines @p val (msgpack) into the reducing state with its reduce function. A malformed
 * msgpack value is WEIR_ECORRUPT. */
int weir_state_reducing_add(weir_state_backend_t *sb, uint32_t st, const void *val, uint32_t len);
int weir_state_reducing_get(weir_state_backend_t *sb, uint32_t st, const void **val, uint32_t *len);
int weir_state_reducing_clear(weir_state_backend_t *sb, uint32_t st);

/** Queues user key @p key (@p len bytes) for the next weir_state_prefetch (the first key queued
 * after a prefetch starts a new batch). 0, WEIR_EINVAL or WEIR_ENOMEM. */
int weir_state_prefetch_key(weir_state_backend_t *sb, const void *key, uint32_t len);
/** Warms the cache for the queued batch of keys (the records of one input buffer) before they are
 * processed: for each value or reducing state among [@p st_first, @p st_first + @p st_count), the
 * queued keys that are not cached are read from RocksDB with one batched MultiGet and cached clean
 * (a missing key as absent); then the cache is trimmed to its budget. Changes no value and not
 * the current key: a later get of such a key is a cache hit. weir_state_set_key then takes each
 * queued key's encoding and hash when it is set in queue order. 0 or a negative weir error
 * (RocksDB errors are WEIR_ESTATE, logged). */
int weir_state_prefetch(weir_state_backend_t *sb, uint32_t st_first, uint32_t st_count);

/** Writes every dirty cache entry to RocksDB in one WriteBatch (before a snapshot). */
int weir_state_flush(weir_state_backend_t *sb);

typedef struct weir_state_stats {
    uint64_t cache_hits, cache_misses, evictions, flushed_entries;
    uint64_t prefetched; /* entries weir_state_prefetch read (counted in cache_misses too) */
    size_t cache_bytes;
} weir_state_stats_t;
void weir_state_get_stats(const weir_state_backend_t *sb, weir_state_stats_t *out);

#endif
