/* Internal interface between state/state.c (the backend), state/snapshot.c (checkpoints) and
 * state/restore.c (restore): accessors of the backend's RocksDB handle, options and
 * declarations, the slot where snapshot.c keeps its per-backend registry (instance id,
 * uploaded/confirmed SST files), and snapshot.c's helpers.
 * Not for use outside state/. Threading as in state.h: the accessors are called on the subtask
 * thread (take/restore); the registry itself is guarded by its own mutex (snapshot.c). */
#ifndef WEIR_STATE_STATE_INT_H
#define WEIR_STATE_STATE_INT_H

#include <rocksdb/c.h>

#include "state/state.h"

/** The per-backend snapshot registry; defined and owned by snapshot.c. */
typedef struct weir_snapreg weir_snapreg_t;

rocksdb_t *weir_state_int_db(const weir_state_backend_t *sb);
/** True when RocksDB has no flush or compaction running or pending (benchmarks and tests wait for
 * it before they measure or look at files). */
bool weir_state_int_idle(const weir_state_backend_t *sb);
const char *weir_state_int_path(const weir_state_backend_t *sb);
uint32_t weir_state_int_max_par(const weir_state_backend_t *sb);
uint32_t weir_state_int_n_states(const weir_state_backend_t *sb);
const char *weir_state_int_state_name(const weir_state_backend_t *sb, uint32_t i);
/** The registry slot (NULL until snapshot.c creates it); freed by weir_state_close. */
weir_snapreg_t **weir_state_int_snapreg(weir_state_backend_t *sb);

/** The backend's RocksDB options (merge operator, table factory): for opening other instances
 * read-only and for SstFileWriter during a restore. Owned by the backend. */
rocksdb_options_t *weir_state_int_options(const weir_state_backend_t *sb);
/** The backend's write options (WAL off). */
rocksdb_writeoptions_t *weir_state_int_wo(const weir_state_backend_t *sb);
/** The column family of declared state @p i (NULL when out of range). */
rocksdb_column_family_handle_t *weir_state_int_cf(const weir_state_backend_t *sb, uint32_t i);
/** Restore: drops every column family that no declared state uses (the default family, which
 * cannot be dropped, is emptied instead). 0 or WEIR_ESTATE with errstr. */
int weir_state_int_drop_undeclared(weir_state_backend_t *sb, char *errstr, size_t errlen);

/** Tests and tools: writes the cache back (weir_state_flush), flushes the memtables and compacts
 * every column family fully (blocking), so the SST set is stable until the next write. */
int weir_state_int_compact(weir_state_backend_t *sb);

/** One round of the background TTL cleanup (the cleaner thread's body, README.md "Time to
 * live"): compacts fully each TTL state's column family whose cleanup interval passed on the TTL
 * clock since its previous cleanup (or the open) and that holds anything (SST files or memtable
 * entries). Tests call it on a backend opened with ttl_cleanup_ms < 0 (no thread), one thread at
 * a time; blocking. @returns the number of column families compacted. */
uint32_t weir_state_int_ttl_cleanup(weir_state_backend_t *sb);

/** Frees a registry (snapshot.c). Accepts NULL. */
void weir_snapreg_free(weir_snapreg_t *reg);

/* snapshot.c helpers used by restore.c */

/** A plain file name: not empty, not "." or "..", no '/'. */
bool weir__snap_safe_name(const char *s);
/** Records local SST @p local as already uploaded under @p shared (confirmed), creating the
 * backend's registry (with a new instance id) if needed. 0 or WEIR_ENOMEM. */
int weir__snap_confirm_restored(weir_state_backend_t *sb, const char *local, const char *shared);

#endif
