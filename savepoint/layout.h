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

#endif
