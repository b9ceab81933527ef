/* The job manager's blob store: plugin shared libraries stored by sha256 in one directory
 * (blob.storage.directory), one file per blob named by its 64-hex-digit sha256. */
#ifndef WEIR_JOBMANAGER_BLOBSTORE_H
#define WEIR_JOBMANAGER_BLOBSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Largest blob accepted (the REST side answers 413 above it). */
#define WEIR_BLOB_MAX_BYTES ((size_t)256 * 1024 * 1024)

typedef struct weir_blobstore weir_blobstore_t;

/** Opens (creating it if needed) the store in @p dir; blobs larger than @p max_bytes are refused.
 * @returns the store, or NULL with a one-line message in errstr. */
weir_blobstore_t *weir_blobstore_new(const char *dir, size_t max_bytes, char *errstr,
                                     size_t errlen);
void weir_blobstore_destroy(weir_blobstore_t **bs);

/** True when @p sha256 is 64 lowercase hex digits. */
bool weir_blobstore_valid_sha(const char *sha256);

/** Stores @p data, writing its sha256 (64 hex + NUL) into @p sha_out. Storing an existing blob
 * again is a no-op. @returns 0, WEIR_ENOSPACE (larger than max_bytes) or WEIR_EIO. */
int weir_blobstore_put(weir_blobstore_t *bs, const void *data, size_t len, char sha_out[65]);

/** True when a blob named @p sha256 exists (not verified). */
bool weir_blobstore_has(weir_blobstore_t *bs, const char *sha256);

/** Reads a blob into a malloc'd buffer (caller frees) and verifies its sha256.
 * @returns 0, WEIR_EINVAL (not a sha256), WEIR_ENOTFOUND, WEIR_ECORRUPT (content does not hash to
 *          its name) or WEIR_EIO. */
int weir_blobstore_get(weir_blobstore_t *bs, const char *sha256, uint8_t **data, size_t *len);

/** Also looks blobs up in @p dir (read-only; e.g. the HA store's blobs/) when they are not in
 * the store's own directory. Call before the store is shared between threads.
 * @returns 0 or WEIR_ENOMEM. */
int weir_blobstore_set_fallback(weir_blobstore_t *bs, const char *dir);

/** The directory of the store. */
const char *weir_blobstore_dir(const weir_blobstore_t *bs);

#endif
