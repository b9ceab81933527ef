/* The C++ shim of state/rocksdb_memory.cc: the shared block cache (with a high-priority pool)
 * and the WriteBufferManager that RocksDB 7.8's C API cannot create or attach. Private to state/
 * (memory.c and state.c). Threading: see rocksdb_memory.cc (RocksDB's objects are
 * thread-safe). */
#ifndef WEIR_STATE_ROCKSDB_MEMORY_H
#define WEIR_STATE_ROCKSDB_MEMORY_H

#include <rocksdb/c.h>
#include <stddef.h>

typedef struct weir_rdb_wbm weir_rdb_wbm_t;

/** An LRU cache of @p capacity bytes (not strict: full means evict; pinned blocks may exceed
 * it), @p high_prio_ratio of it kept for high-priority entries (index and filter blocks). A
 * normal rocksdb_cache_t (rocksdb_cache_destroy frees it). NULL when out of memory. */
rocksdb_cache_t *weir__rdb_cache_new(size_t capacity, double high_prio_ratio);
/** A WriteBufferManager of @p bytes charged to @p cache (its memtables reserve dummy entries
 * there), without allow_stall (rocksdb_memory.cc says why): a DB that writes while the memtables
 * of all DBs pass the manager's trigger flushes its largest memtable.
 * NULL when out of memory. */
weir_rdb_wbm_t *weir__rdb_wbm_new(size_t bytes, rocksdb_cache_t *cache);
/** Drops our reference (DBs opened with it keep theirs). Accepts NULL. */
void weir__rdb_wbm_free(weir_rdb_wbm_t *w);
/** Makes every DB opened with @p opt (and copies of it made afterwards) use @p w. */
void weir__rdb_options_set_wbm(rocksdb_options_t *opt, weir_rdb_wbm_t *w);
/** Memtable bytes of every DB using @p w / its limit. */
size_t weir__rdb_wbm_usage(const weir_rdb_wbm_t *w);
size_t weir__rdb_wbm_size(const weir_rdb_wbm_t *w);

#endif
