/* Reading the state a job is started from with `-s PATH` (`weir run -s`, `weir validate`, the job
 * manager's POST /jobs "savepointPath"): a savepoint directory, a retained checkpoint directory
 * <ckdir>/chk-<n>, or the _metadata object in either, each a local path or a URI
 * (storage/storage.h: "s3://bucket/p/savepoint-x", "/abs/dir"). Everything is checked before
 * anything runs: the _metadata verifies, its tasks agree with its operators (version 2), and every
 * file named by every keyed-state handle exists with its recorded size (savepoint/layout.h says
 * where).
 *
 * Stateless; thread-safe (the env is). */
#ifndef WEIR_SAVEPOINT_READ_H
#define WEIR_SAVEPOINT_READ_H

#include <stddef.h>

#include "savepoint/metadata.h"
#include "storage/storage.h"

/** Reads and checks the savepoint or retained checkpoint at @p path through @p env into @p m;
 * @p base receives the canonical URI of the directory holding _metadata (the "base" of the keyed
 * handles' files: a POSIX one as its realpath, an S3 one as s3://bucket/prefix). A relative path
 * is taken relative to the working directory. @returns 0, or with one line in @p errstr (m
 * cleared):
 *  - WEIR_ENOTFOUND: "<path> does not exist",
 *    "<path>: no _metadata: not a savepoint or checkpoint directory (was it completed?)",
 *    "<uri>: missing (the savepoint is incomplete)" (a file of a keyed handle);
 *  - WEIR_ECORRUPT: "<base>/_metadata is corrupt: <reason>" (checksum, format, tasks that do not
 *    match the operators, a malformed keyed handle), "<uri>: has N bytes, _metadata says M";
 *  - WEIR_EIO / WEIR_ENET: "cannot read <uri>: <why>" (nothing is known about its content);
 *  - WEIR_ECONFIG: a bad URI, or an s3:// one without the s3.* settings it needs;
 *  - WEIR_EINVAL: the base URI does not fit @p base_cap. */
int weir_savepoint_read(weir_storage_env_t *env, const char *path, weir_ckpt_meta_t *m, char *base,
                        size_t base_cap, char *errstr, size_t errlen);

#endif
