/* Checkpoint storage of the job manager (docs/checkpointing.md): the atomic write of _metadata
 * (its format, weir_ckpt_meta_t and base64 are savepoint/metadata.h), the search for the latest
 * restorable checkpoint, and retention + garbage collection of a job's checkpoint directory.
 * Knows nothing of the job manager (no sockets, no jobmanager.h): it is handed a storage rooted at
 * the job's checkpoint directory (storage/storage.h: a POSIX directory or an s3:// prefix) and
 * metadata.
 *
 * <ckdir> = <state.checkpoints.dir>/<job id>, the root of @p ck below; keys are relative to it. A
 * checkpoint exists iff <ckdir>/chk-<n>/_metadata exists and verifies (written atomically, last;
 * layout in savepoint/metadata.h).
 *
 * Other entries of <ckdir>: chk-<n>/ (the private files of checkpoint n, written by the task
 * managers), shared/ (files of incremental snapshots, referenced by name from keyed handles) and
 * chk-0 (never touched).
 *
 * Reads go through a weir_store_io_t (store_io.h; NULL = the defaults): a read error is retried
 * when transient and then reported as WEIR_EIO, never taken for corruption. Writes are whole
 * objects (weir_storage_put): durable and visible whole or not at all when they return 0.
 *
 * Threading: stateless functions; callers must not change the same <ckdir> concurrently (the job
 * manager calls them on its main thread with its mutex held). */
#ifndef WEIR_JOBMANAGER_CKPT_STORE_H
#define WEIR_JOBMANAGER_CKPT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jobmanager/store_io.h"
#include "savepoint/metadata.h"
#include "storage/storage.h"

/* ---- _metadata files ------------------------------------------------------------------------ */

/** Writes <ckdir>/chk-<m->id>/_metadata whole (one weir_storage_put: durable and complete when
 * it returns 0). @returns 0, WEIR_EIO / WEIR_ENET / WEIR_ECONFIG (errstr names the object: the
 * storage's line) or an encoding error. */
int weir_ckpt_meta_write(weir_storage_t *ck, const weir_ckpt_meta_t *m, char *errstr,
                         size_t errlen);
/** Reads and verifies <ckdir>/chk-<id>/_metadata through @p io. @returns 0, WEIR_ENOTFOUND,
 * WEIR_ECORRUPT (proven: bad checksum or format) or WEIR_EIO (it could not be read, errstr names
 * the object and why: nothing is known about its content). */
int weir_ckpt_meta_read(weir_storage_t *ck, uint64_t id, const weir_store_io_t *io,
                        weir_ckpt_meta_t *m, char *errstr, size_t errlen);

/* ---- directories --------------------------------------------------------------------------- */

/** The URI of checkpoint @p id: <ckdir>/chk-<id>, into @p out. */
void weir_ckpt_chk_path(const char *ckdir, uint64_t id, char *out, size_t cap);
/** The key of checkpoint @p id below <ckdir>: "chk-<id>". */
void weir_ckpt_chk_key(uint64_t id, char *out, size_t cap);
/** Ids of the chk-<n> directories (prefixes) in @p ck (n >= 1), ascending, malloc'd. @returns 0
 * (*n = 0 when there are none or <ckdir> is missing), WEIR_ENOMEM, or the storage's error with
 * errstr (may be NULL). @p any (may be NULL) is set when <ckdir> holds anything at all. */
int weir_ckpt_list_dirs(weir_storage_t *ck, uint64_t **ids, size_t *n, bool *any, char *errstr,
                        size_t errlen);
/** The largest n of a chk-<n> directory in @p ck, 0 when none (or when it cannot be listed). */
uint64_t weir_ckpt_max_dir_id(weir_storage_t *ck);
/** Deletes checkpoint directory chk-<id> of @p ck (absent: 0). */
int weir_ckpt_delete_dir(weir_storage_t *ck, uint64_t id, char *errstr, size_t errlen);
/** The id of a path ending in chk-<n> (the HA pointer). @returns false when it does not. */
bool weir_ckpt_id_of_path(const char *path, uint64_t *id);

/** No upper bound for weir_ckpt_find_latest. */
#define WEIR_CKPT_ANY UINT64_MAX

/** Finds the checkpoint to restore job @p job_id from: the newest chk-n with n <= @p max_id (the
 * latest completed checkpoint; newer directories never completed and are skipped with a WARN)
 * whose _metadata verifies. With a bound, chk-<max_id> and its _metadata must exist; only a
 * proven-corrupt _metadata is skipped, with a WARN "checkpoint chk-n of job X is corrupt (...):
 * falling back to chk-m"; a read error (after the retries of @p io) fails the search.
 * @returns 0 (found, *out filled), WEIR_ENOTFOUND (none; an error with errstr when @p required or
 * bounded: "checkpoint directory <path> is missing: cannot restore job X", "<path>/_metadata does
 * not exist but checkpoint n completed: ..." or "no complete checkpoint in <path>: ...") or
 * WEIR_EIO ("cannot read <file>: <strerror> (errno N)...: cannot restore job X"). */
int weir_ckpt_find_latest(weir_storage_t *ck, const char *job_id, uint64_t max_id, bool required,
                          const weir_store_io_t *io, weir_ckpt_meta_t *out, char *errstr,
                          size_t errlen);

typedef struct weir_ckpt_gc_stats {
    uint32_t dirs_removed;
    uint32_t shared_removed;
} weir_ckpt_gc_stats_t;

/** What one retention round found unreferenced (kept by the caller from round to round): an
 * unreferenced entry is deleted only when the previous round with the same marks found it
 * unreferenced too (object storage has no modification times: this is the grace that keeps an
 * upload in progress, e.g. a final snapshot not acknowledged yet). Zero-initialized = no round
 * yet; free with weir_ckpt_gc_marks_free. */
typedef struct weir_ckpt_gc_marks {
    char **names; /* "shared/<name>" or "chk-<n>" */
    size_t n, cap;
} weir_ckpt_gc_marks_t;
void weir_ckpt_gc_marks_free(weir_ckpt_gc_marks_t *marks);

/** Retention: keeps the newest @p num_retained valid checkpoints and @p pinned (the checkpoint
 * the HA pointer names; 0 = none), deletes older chk-* dirs and chk-* dirs without a valid
 * _metadata (except @p in_flight, @p pinned, chk-0 and dirs a retained handle's "checkpoint"
 * names). When @p in_flight is 0 it also deletes every object in <ckdir>/shared/ that no retained
 * checkpoint, not @p pinned and no handle in @p protect references. A _metadata that cannot be
 * read (WEIR_EIO) keeps its directory and every file of shared/ this round (also when @p pinned
 * cannot be read). With @p marks, an unreferenced entry (a chk-<n> without a valid _metadata
 * below @p pinned, or a file of shared/) is deleted only when the previous round found it
 * unreferenced too (uploads of final snapshots that have not been acknowledged yet are kept).
 * @p marks NULL: no grace. @returns 0, WEIR_EIO or WEIR_ENOMEM. */
int weir_ckpt_retain(weir_storage_t *ck, uint32_t num_retained, uint64_t in_flight, uint64_t pinned,
                     const char *const *protect, size_t n_protect, weir_ckpt_gc_marks_t *marks,
                     const weir_store_io_t *io, weir_ckpt_gc_stats_t *stats);

#endif
