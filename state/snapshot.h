/* Snapshots of keyed state for checkpoints and savepoints: incremental RocksDB checkpoints in
 * shared storage, self-contained copies for savepoints, restore (with key-group rescaling) from
 * them, and redistribution of operator state.
 *
 * Every location is a checkpoint storage URI (storage/storage.h: s3://bucket/prefix or an
 * absolute path); files are objects under keys of the storage rooted there.
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
 * Savepoint storage (WEIR_UPLOAD_SELF_CONTAINED; <dir> = the savepoint directory):
 *   <dir>/<task>/<file>                             every file of the snapshot, SSTs included
 * and the handle is the same object plus "layout": "self-contained", with "shared" empty and
 * every file in "private", SSTs marked "sst": true (restore may hard-link them). Paths are
 * relative to the directory holding _metadata (savepoint/layout.h), so the directory can move.
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
#include "storage/storage.h"

typedef struct weir_state_snapshot weir_state_snapshot_t;

/** Synchronous part: writes dirty cache entries (weir_state_flush) and creates a RocksDB
 * checkpoint (hard links; log_size_for_flush = 0 so the memtable is included) in a local
 * directory beside the backend's. NULL + errstr on error. */
weir_state_snapshot_t *weir_state_snapshot_take(weir_state_backend_t *sb, uint64_t checkpoint_id,
                                                char *errstr, size_t errlen);

typedef enum {
    WEIR_UPLOAD_INCREMENTAL,    /* checkpoint: SSTs not yet confirmed into shared/ */
    WEIR_UPLOAD_FULL,           /* checkpoint: every SST into shared/ under a checkpoint-unique
                                   name, nothing recorded */
    WEIR_UPLOAD_SELF_CONTAINED, /* savepoint: every file into <dir>/<task>/, nothing recorded */
} weir_upload_mode_t;

/** Asynchronous part: uploads the snapshot into the storage @p st and returns the handle JSON
 * (malloc'd), the bytes the handle references (state_size) and the bytes written now
 * (uploaded_size). INCREMENTAL / FULL: st is rooted at the job's checkpoint directory; new SSTs
 * become shared/<name>, the rest chk-<n>/<task>/<file>; INCREMENTAL records the SSTs it wrote
 * as pending (confirm). FULL uploads every SST again. SELF_CONTAINED: st is rooted at the
 * savepoint directory; every file becomes <task>/<file> and nothing is recorded (a savepoint's
 * files are never referenced by a later checkpoint). The files go up with
 * weir_storage_put_files (parallel, bounded by the env's upload slots; each object whole or not
 * at all). Removes the local checkpoint directory on success.
 * @returns 0 or a negative weir error with errstr. */
int weir_state_snapshot_upload(weir_state_snapshot_t *snap, weir_storage_t *st, const char *task,
                               weir_upload_mode_t mode, char **handle_json, uint64_t *state_size,
                               uint64_t *uploaded_size, char *errstr, size_t errlen);

/** Frees a snapshot (removing its local directory if the upload did not). Accepts NULL. */
void weir_state_snapshot_free(weir_state_snapshot_t **snap);

/** Checkpoint @p checkpoint_id completed: the SST files its upload wrote are now confirmed. */
void weir_state_snapshot_confirm(weir_state_backend_t *sb, uint64_t checkpoint_id);

/** Where a restore fetches from: the storage env (required) and the local recovery cache. */
typedef struct weir_state_fetch {
    weir_storage_env_t *env; /* opens the storage of every source */
    const char *cache_dir;   /* the job's "<task manager workdir>/local-recovery/<job>"; NULL =
                                no cache (every file fetched) */
    const char *owner; /* the restoring task "<vertex>-<subtask>" (a plain name; with cache_dir):
                          the cache keeps the files of its latest restore */
} weir_state_fetch_t;

/** Restore from a keyed restore document (the DEPLOY field restore_keyed_handle, built by the
 * savepoint module):
 *   {"base": "<URI of the directory holding the _metadata>", "claim": bool, "max_parallelism": m,
 *    "range": [first, last],
 *    "sources": [{"range": [a, b], "handle": {<keyed-state handle of an old subtask>}}, ...]}
 * The new backend at opts->path holds exactly the key groups [first, last] of every source
 * (keys of other groups are removed), the declared states (a state absent from the sources
 * starts empty; families the new job does not declare are not copied). Each source's files are
 * objects of the storage opened (with fetch->env) at weir_layout_keyed_root(base) under the keys
 * weir_layout_keyed_key(); each is fetched with weir_storage_get_file and must exist with its
 * recorded size ("checkpoint file <uri> is missing: ..." / "... has N bytes, expected M: ...").
 * Local recovery: with fetch->cache_dir (the job's "<task manager workdir>/local-recovery/<job>";
 * NULL = no cache) the shared SSTs (unique, immutable names) are fetched into
 * <cache_dir>/<name in shared/> — a cached file of the recorded size is used without a download
 * — and hard-linked from there; after the restore the cache keeps the files of the latest
 * restore of every task that restored into it and drops the rest (README.md "Local recovery").
 * Other files are fetched fresh. The source overlapping most is restored whole and clipped
 * (DeleteRange and compaction of the removed groups); every other source is opened read-only
 * from a temporary copy and its keys of [first, last] are written into SST files and ingested. With
 * claim true (the job's own checkpoint) the shared SSTs of the whole-restored source count as
 * uploaded (confirmed); with claim false nothing does, so the next checkpoint is complete on its
 * own. Nothing under base is ever created, changed or deleted (objects are only read). opts->path
 * and the scratch directory "<opts->path>.restore" are removed first (a restore killed half-way
 * leaves only scratch). NULL + errstr (one line) on error. */
weir_state_backend_t *weir_state_restore_plan(const weir_state_opts_t *opts,
                                              const weir_state_decl_t *states, uint32_t n_states,
                                              const weir_state_fetch_t *fetch,
                                              const char *restore_json, char *errstr,
                                              size_t errlen);

/** Restore of one checkpoint-layout handle of the same parallelism from @p checkpoint_dir (the
 * URI of the job's directory holding shared/ and chk-<n>/): weir_state_restore_plan with base
 * "<checkpoint_dir>/chk-<handle's checkpoint>", the whole key-group range and claim true. */
weir_state_backend_t *weir_state_restore(const weir_state_opts_t *opts,
                                         const weir_state_decl_t *states, uint32_t n_states,
                                         const weir_state_fetch_t *fetch,
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
