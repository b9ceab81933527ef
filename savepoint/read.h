/* Reading the state a job is started from with `-s PATH` (`weir run -s`, `weir validate`, the job
 * manager's POST /jobs "savepointPath"): a savepoint directory, a retained checkpoint directory
 * <ckdir>/chk-<n>, or the _metadata file in either. Everything is checked before anything runs:
 * the _metadata verifies, its tasks agree with its operators (version 2), and every file named by
 * every keyed-state handle exists with its recorded size (savepoint/layout.h says where).
 *
 * Stateless; thread-safe. */
#ifndef WEIR_SAVEPOINT_READ_H
#define WEIR_SAVEPOINT_READ_H

#include <stddef.h>

#include "savepoint/metadata.h"

/** Reads and checks the savepoint or retained checkpoint at @p path into @p m; @p base receives
 * the realpath of the directory holding _metadata (the "base" of the keyed handles' files).
 * @returns 0, or with one line in @p errstr (m cleared):
 *  - WEIR_ENOTFOUND: "<path> does not exist",
 *    "<path>: no _metadata: not a savepoint or checkpoint directory (was it completed?)",
 *    "<file>: missing (the savepoint is incomplete)" (a file of a keyed handle);
 *  - WEIR_ECORRUPT: "<base>/_metadata is corrupt: <reason>" (checksum, format, tasks that do not
 *    match the operators, a malformed keyed handle), "<file>: has N bytes, _metadata says M";
 *  - WEIR_EIO: "cannot read <file>: <strerror>" (nothing is known about its content);
 *  - WEIR_EINVAL: the base path does not fit @p base_cap. */
int weir_savepoint_read(const char *path, weir_ckpt_meta_t *m, char *base, size_t base_cap,
                        char *errstr, size_t errlen);

#endif
