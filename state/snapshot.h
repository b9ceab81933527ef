/* Snapshots of keyed state for checkpoints: incremental RocksDB checkpoints in shared storage,
 * restore from them, and redistribution of operator state.
 *
 * Checkpoint storage of one job (<checkpoint_dir> = <state.checkpoints.dir>/<job id>):
 *   <checkpoint_dir>/shared/<instance>-<sst name>   immutable RocksDB SST files, shared between
 *                                                   checkpoints (incremental)
 *   <checkpoint_dir>/chk-<n>/<task>/                the snapshot's other files (MANIFEST, CURRENT,
 *                                                   OPTIONS), private to checkpoint n
 *   <checkpoint_dir>/chk-<n>/_metadata              written by the job manager, last
 * <instance> is a random id per opened RocksDB instance, so files of different subtasks, attempts
 * and restores never collide. <task> is "<vertex>-<subtask>".
 *
 * Keyed-state handle (JSON text in ACK_CHECKPOINT, stored in _metadata, given back on restore).
 * The job manager relies on "shared" only (retention and garbage collection):
 *   {"version": 1, "checkpoint": n, "task": "<vertex>-<subtask>",
 *    "shared": [{"name": "<file name in shared/>", "local": "<sst name>", "size": bytes}],
 *    "private": [{"name": "<file name in chk-n/<task>/>", "size": bytes}],
 *    "max_parallelism": m, "states": ["name", ...]}
 *
 * Incremental rule: an SST file is uploaded once; later snapshots reference it. A file counts as
 * uploaded only after a checkpoint that referenced it COMPLETED (weir_state_snapshot_confirm):
 * files uploaded for a checkpoint that never completed may be deleted by the job manager's garbage
 * collection, so they are uploaded again. Files restored from a checkpoint are confirmed.
 *
 * Threading: take / confirm / restore run on the subtask thread; upload runs on any other thread
 * while the subtask goes on (the snapshot owns copies of everything it needs; the backend must
 * outlive the upload). */
#ifndef WEIR_STATE_SNAPSHOT_H
#define WEIR_STATE_SNAPSHOT_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "state/state.h"

typedef struct weir_state_snapshot weir_state_snapshot_t;

/** Synchronous part: writes dirty cache entries (weir_state_flush) and creates a RocksDB
 * checkpoint (hard links; log_size_for_flush = 0 so the memtable is included) in a local
 * directory beside the backend's. NULL + errstr on error. */
weir_state_snapshot_t *weir_state_snapshot_take(weir_state_backend_t *sb, uint64_t checkpoint_id,
                                                char *errstr, size_t errlen);

/** Asynchronous part: copies the snapshot into <checkpoint_dir> (new SSTs into shared/, the rest
 * into chk-<n>/<task>/; each file written to a temporary name, fsynced, renamed), and returns the
 * handle JSON (malloc'd), the bytes the checkpoint references (state_size) and the bytes written
 * now (uploaded_size). With @p incremental false every SST is uploaded again. Removes the local
 * checkpoint directory. @returns 0 or a negative weir error with errstr. */
int weir_state_snapshot_upload(weir_state_snapshot_t *snap, const char *checkpoint_dir,
                               const char *task, bool incremental, char **handle_json,
                               uint64_t *state_size, uint64_t *uploaded_size, char *errstr,
                               size_t errlen);

/** Frees a snapshot (removing its local directory if the upload did not). Accepts NULL. */
void weir_state_snapshot_free(weir_state_snapshot_t **snap);

/** Checkpoint @p checkpoint_id completed: the SST files its upload wrote are now confirmed. */
void weir_state_snapshot_confirm(weir_state_backend_t *sb, uint64_t checkpoint_id);

/** Restore: copies (or hard-links) the files of @p handle_json from @p checkpoint_dir into
 * opts->path and opens the backend there. Checks every file exists with the recorded size
 * ("checkpoint file <path> is missing: the checkpoint directory was removed or is incomplete").
 * NULL + errstr on error. */
weir_state_backend_t *weir_state_restore(const weir_state_opts_t *opts,
                                         const weir_state_decl_t *states, uint32_t n_states,
                                         const char *checkpoint_dir, const char *handle_json,
                                         char *errstr, size_t errlen);

/* ---- Operator (non-keyed) state redistribution for rescaling ---------------------------- */

typedef enum weir_opstate_mode {
    WEIR_OPSTATE_SPLIT, /* the union of all elements is divided round-robin among new subtasks */
    WEIR_OPSTATE_UNION, /* every new subtask gets every element */
} weir_opstate_mode_t;

/** One element of a list-shaped operator state (opaque bytes). */
typedef struct weir_opstate_elem {
    const uint8_t *data;
    size_t len;
} weir_opstate_elem_t;

/** Redistributes the elements of @p n_old subtasks' lists (old[i] has old_n[i] elements) to
 * @p n_new subtasks. out[j] (malloc'd arrays, out_n[j] elements; elements point into the input)
 * in a deterministic order: SPLIT assigns the k-th element of the concatenation (old subtask
 * order) to new subtask k mod n_new. @returns 0 or WEIR_ENOMEM. */
int weir_opstate_redistribute(weir_opstate_mode_t mode, const weir_opstate_elem_t *const *old,
                              const size_t *old_n, uint32_t n_old, uint32_t n_new,
                              weir_opstate_elem_t **out, size_t *out_n);

#endif
