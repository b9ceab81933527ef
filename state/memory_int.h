/* Internal interface between state/memory.c (the task manager's shared keyed-state memory) and
 * state/state.c (a backend opened with weir_state_opts_t.memory). Not for use outside state/.
 * Threading: any thread (memory.h). */
#ifndef WEIR_STATE_MEMORY_INT_H
#define WEIR_STATE_MEMORY_INT_H

#include <rocksdb/c.h>
#include <stdbool.h>

#include "state/memory.h"
#include "state/rocksdb_memory.h"

/** The shared block cache (owned by @p m: never destroy it). */
rocksdb_cache_t *weir__state_memory_cache(const weir_state_memory_t *m);
/** The shared write buffer manager (owned by @p m). */
weir_rdb_wbm_t *weir__state_memory_wbm(const weir_state_memory_t *m);
/** Memtable size per column family. */
size_t weir__state_memory_write_buffer(const weir_state_memory_t *m);

/** Adds an open DB to the list the report reads (before the backend is used). 0 or
 * WEIR_ENOMEM. */
int weir__state_memory_attach(weir_state_memory_t *m, rocksdb_t *db);
/** Removes @p db (before it closes) and returns the backend's @p reserved cache bytes. */
void weir__state_memory_detach(weir_state_memory_t *m, rocksdb_t *db, size_t reserved);

/** Reserves more write-back cache for a backend that holds @p held bytes of reservation and
 * needs at least @p need bytes in total: grants a whole number of chunks (at least 64 KiB,
 * 1/256 of the budget, at most 4 MiB) when the budget has them and the backend stays within its
 * fair share (budget / open backends, but never less than one chunk). @returns the bytes
 * granted (added to the backend's reservation), 0 when none: the backend then evicts instead
 * of growing. Lock-free (compare-and-swap). */
size_t weir__state_memory_reserve(weir_state_memory_t *m, size_t held, size_t need);

#endif
