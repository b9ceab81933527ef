/* Reads of the job manager's durable stores (checkpoint storage, ckpt_store.h, and the HA store,
 * ha.h) through the checkpoint storage interface (storage/storage.h) with bounded retries of
 * transient errors. No knowledge of the job manager. Durability of writes is the storage
 * backend's (storage.h: put is whole-or-nothing and durable before it returns).
 *
 * A read error is never taken for corruption. On a POSIX location a failed read (WEIR_EIO /
 * WEIR_ENET from the storage) is retried up to `attempts` times with a doubling delay, each
 * failure logged; an s3:// location is read once here (the S3 backend retries within
 * s3.retry.*). What still fails is returned as WEIR_EIO naming the object. An injected reader
 * (tests) gets the object's URI and is retried on a transient errno like the POSIX case. Only
 * the content of an object that was read whole can prove it corrupt (the caller decides).
 *
 * Threading: stateless; a read sleeps on the calling thread between attempts (at most about
 * 1.6 s with the defaults). */
#ifndef WEIR_JOBMANAGER_STORE_IO_H
#define WEIR_JOBMANAGER_STORE_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/storage.h"

/** Reads a whole object like weir_read_file (@p uri: the object's URI, a path for POSIX): 0
 * (*data malloc'd and NUL-terminated), WEIR_ENOTFOUND, or WEIR_EIO with errno set. Tests inject
 * failures through it. */
typedef int (*weir_store_read_fn)(void *ctx, const char *uri, uint8_t **data, size_t *len);

/** Reads of an object before a transient error is final, and the first delay (doubled each
 * time). */
#define WEIR_STORE_READ_ATTEMPTS 6
#define WEIR_STORE_READ_BACKOFF_MS 50
/** Largest object the job manager reads from its stores (a _metadata, an HA record). */
#define WEIR_STORE_READ_MAX ((size_t)256 * 1024 * 1024)

typedef struct weir_store_io {
    weir_store_read_fn read; /* NULL: weir_storage_get */
    void *ctx;               /* handed to read */
    uint32_t attempts;       /* 0: WEIR_STORE_READ_ATTEMPTS */
    int64_t backoff_ms;      /* 0: WEIR_STORE_READ_BACKOFF_MS; < 0: no delay */
} weir_store_io_t;

/** True for an errno a later read may not meet again. */
bool weir_store_transient(int errnum);

/** Reads object @p key of @p st whole through @p io (NULL: the defaults), at most @p max_len
 * bytes, retrying transient errors; each failed attempt is logged (WARN, component @p comp) with
 * the object. @returns 0, WEIR_ENOTFOUND, or WEIR_EIO with errstr "cannot read <uri>: <why>[
 * after K attempts]" (an injected reader: "<strerror> (errno N)"); the storage's permanent
 * WEIR_ENOSPACE (larger than @p max_len) and WEIR_ECONFIG (bucket, credentials) as they are. */
int weir_store_read(const weir_store_io_t *io, const char *comp, weir_storage_t *st,
                    const char *key, size_t max_len, uint8_t **data, size_t *len, char *errstr,
                    size_t errlen);

#endif
