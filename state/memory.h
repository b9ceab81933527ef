/* The keyed-state memory of one task manager, shared by all its state backends (as Flink's
 * managed memory): ONE RocksDB LRU block cache (index and filter blocks in it, in its
 * high-priority pool) and ONE WriteBufferManager charged to that cache (a DB that writes while
 * the memtables of all DBs pass its trigger flushes its largest), plus ONE budget for the
 * write-back state caches of every stateful subtask (a cache that cannot reserve more evicts
 * instead of growing). A backend opened with weir_state_opts_t.memory uses these instead of its own
 * cache, memtable limit and state-cache size. See state/README.md "Memory".
 *
 * Threading: every function may be called from any thread (a mutex guards the list of open
 * DBs; the state-cache budget is an atomic counter). The object must outlive every backend
 * opened with it (the task manager frees it after joining its tasks). */
#ifndef WEIR_STATE_MEMORY_H
#define WEIR_STATE_MEMORY_H

#include <stddef.h>
#include <stdint.h>

typedef struct weir_state_memory weir_state_memory_t;

typedef struct weir_state_memory_opts {
    uint64_t managed_bytes;      /* RocksDB: block cache + write buffers (> 0) */
    double write_buffer_ratio;   /* share of managed_bytes for memtables, (0, 1) (Flink: 0.5) */
    double high_prio_ratio;      /* share of the cache for index/filter blocks, [0, 1) (0.1) */
    uint64_t cache_bytes;        /* write-back state caches of all backends together */
    uint64_t write_buffer_bytes; /* memtable size per column family (0: 16 MiB) */
} weir_state_memory_opts_t;

/** Creates the shared cache and write buffer manager as Flink sizes them: cache capacity
 * (3 - r) / 3 * managed, write buffer manager 2 / 3 * r * managed, charged to the cache (a
 * mutable memtable may grow to 1.5x its share before it is switched), so cache + memtables stay
 * within managed_bytes. NULL + one line in errstr on bad options or out of memory. */
weir_state_memory_t *weir_state_memory_new(const weir_state_memory_opts_t *opts, char *errstr,
                                           size_t errlen);
/** Drops the task manager's references. Accepts NULL; clears the pointer. */
void weir_state_memory_destroy(weir_state_memory_t **m);

typedef struct weir_state_memory_report {
    uint64_t managed_total; /* managed_bytes */
    uint64_t block_cache_capacity;
    uint64_t block_cache_usage;  /* everything in the cache, memtable reservations included */
    uint64_t block_cache_pinned; /* entries in use (pinned) */
    uint64_t write_buffer_limit; /* the write buffer manager's size */
    uint64_t write_buffer_usage; /* memtables of all DBs, as the manager counts them */
    uint64_t memtables;          /* rocksdb_approximate_memory_usage: all memtables */
    uint64_t table_readers;      /* ... table readers (index/filter held outside the cache) */
    uint64_t cache_total;        /* write-back state caches: budget */
    uint64_t cache_used;         /* ... reserved by open backends */
    uint32_t backends;           /* open backends using this object */
} weir_state_memory_report_t;

/** What the shared objects hold now. Any thread. */
void weir_state_memory_report(weir_state_memory_t *m, weir_state_memory_report_t *out);

#endif
