/* Where the files of a keyed-state handle live, relative to the directory that holds the
 * _metadata listing the handle (the "base"). One rule for the state backend (restore), the job
 * manager and `weir validate` (checks that every file exists before anything runs).
 *
 *   handle layout       file kind  path
 *   checkpoint (none)   shared     <base>/../shared/<name>
 *   checkpoint (none)   private    <base>/../chk-<handle checkpoint>/<task>/<name>
 *   "self-contained"    both       <base>/<task>/<name>
 *
 * A checkpoint's base is <ckdir>/chk-<n>; a savepoint's is its own directory, which holds every
 * file it needs (so it can be moved or copied). Names and tasks never contain '/' (checked).
 * Pure functions, no state, thread-safe. */
#ifndef WEIR_SAVEPOINT_LAYOUT_H
#define WEIR_SAVEPOINT_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** The "layout" member of a self-contained keyed-state handle. */
#define WEIR_LAYOUT_SELF_CONTAINED "self-contained"

/** Writes the path of file @p name of a handle into @p out. @p self_contained: the handle has
 * "layout": "self-contained"; @p shared: the file is listed under "shared" (else "private").
 * @returns 0, or WEIR_EINVAL when a name or task is empty, ".", ".." or contains '/', or the
 * path does not fit. */
int weir_layout_keyed_file(const char *base, bool self_contained, uint64_t handle_checkpoint,
                           const char *task, bool shared, const char *name, char *out, size_t cap);

/** The storage location the keys of weir_layout_keyed_key are relative to, for a handle listed in
 * the _metadata at location @p base (a URI or absolute path: storage/storage.h): base itself for
 * a self-contained handle, else its parent (the job's checkpoint directory holding shared/ and
 * chk-<n>/). @returns 0 or WEIR_EINVAL (no parent, or it does not fit). */
int weir_layout_keyed_root(const char *base, bool self_contained, char *out, size_t cap);

/** The key of file @p name of a handle below weir_layout_keyed_root: "<task>/<name>"
 * (self-contained), "shared/<name>" or "chk-<handle_checkpoint>/<task>/<name>". @returns 0 or
 * WEIR_EINVAL (a bad name or task, or it does not fit). */
int weir_layout_keyed_key(bool self_contained, uint64_t handle_checkpoint, const char *task,
                          bool shared, const char *name, char *out, size_t cap);

#endif
