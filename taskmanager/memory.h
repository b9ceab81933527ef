/* The task manager's memory report: the budget of taskmanager.memory.process.size, its parts and
 * what each part uses now. Filled by taskmanager/memory.c; read by the heartbeat (the HEARTBEAT
 * mem_* fields, common/proto.h) and by the Prometheus endpoint.
 *
 * Threading: weir__tm_memory_report may be called from any thread of the task manager. */
#ifndef WEIR_TASKMANAGER_MEMORY_H
#define WEIR_TASKMANAGER_MEMORY_H

#include <stdint.h>

#include "taskmanager/taskmanager.h"

/** Bytes; a *_total is a budget, a *_used what that part holds now. */
typedef struct weir_tm_memory_report {
    uint64_t process;       /* taskmanager.memory.process.size */
    uint64_t network_total; /* network buffers */
    uint64_t network_used;
    uint64_t managed_total; /* RocksDB: the shared block cache, which write buffers charge */
    uint64_t managed_used;
    uint64_t block_cache_usage;  /* of the shared block cache: all entries ... */
    uint64_t block_cache_pinned; /* ... and those pinned */
    uint64_t memtables;          /* every RocksDB instance's memtables */
    uint64_t table_readers;      /* index and filter blocks held outside the cache */
    uint64_t state_cache_total;  /* write-back state caches of all stateful subtasks */
    uint64_t state_cache_used;
} weir_tm_memory_report_t;

void weir__tm_memory_report(weir_taskmanager_t *tm, weir_tm_memory_report_t *out);

#endif
