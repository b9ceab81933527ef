/* Internal interface between state/state.c (the backend) and state/snapshot.c (checkpoints):
 * read-only accessors of the backend's RocksDB handle and declarations, and the slot where
 * snapshot.c keeps its per-backend registry (instance id, uploaded/confirmed SST files).
 * Not for use outside state/. Threading as in state.h: the accessors are called on the subtask
 * thread (take/restore); the registry itself is guarded by its own mutex (snapshot.c). */
#ifndef WEIR_STATE_STATE_INT_H
#define WEIR_STATE_STATE_INT_H

#include <rocksdb/c.h>

#include "state/state.h"

/** The per-backend snapshot registry; defined and owned by snapshot.c. */
typedef struct weir_snapreg weir_snapreg_t;

rocksdb_t *weir_state_int_db(const weir_state_backend_t *sb);
const char *weir_state_int_path(const weir_state_backend_t *sb);
uint32_t weir_state_int_max_par(const weir_state_backend_t *sb);
uint32_t weir_state_int_n_states(const weir_state_backend_t *sb);
const char *weir_state_int_state_name(const weir_state_backend_t *sb, uint32_t i);
/** The registry slot (NULL until snapshot.c creates it); freed by weir_state_close. */
weir_snapreg_t **weir_state_int_snapreg(weir_state_backend_t *sb);

/** Tests and tools: writes the cache back (weir_state_flush), flushes the memtables and compacts
 * every column family fully (blocking), so the SST set is stable until the next write. */
int weir_state_int_compact(weir_state_backend_t *sb);

/** Frees a registry (snapshot.c). Accepts NULL. */
void weir_snapreg_free(weir_snapreg_t *reg);

#endif
