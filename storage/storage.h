/* Checkpoint storage (`weir_storage`): where checkpoints, savepoints and the HA store live. One
 * interface with the operations checkpointing needs, and two backends behind it: a POSIX
 * directory (local disk, NFS, a ReadWriteMany volume) and S3-compatible object storage. Nothing
 * outside this module knows which backend a location uses (storage/README.md).
 *
 * Locations are URIs: "s3://bucket[/prefix]" (S3), or an absolute path "/dir" or "file:///dir"
 * (POSIX). A weir_storage_t is rooted at one location; every operation names an object by a KEY
 * relative to that root: '/'-separated components, none empty, "." or "..", no leading or
 * trailing '/', at most WEIR_STORAGE_KEY_MAX bytes ("" = the root itself, for list and
 * delete_prefix only).
 *
 * Guarantees of every backend:
 *  - put / put_file: the object becomes visible whole or not at all, replacing any previous one
 *    (POSIX: temporary name, fsync, rename, directory fsyncs up to the root; S3: one PUT, or a
 *    multipart upload that is completed last). So "a checkpoint exists iff its _metadata exists"
 *    holds without rename on S3: _metadata is written last, by one put.
 *  - get / get_file / stat of an absent object: WEIR_ENOTFOUND (no retries, no log line).
 *  - delete / delete_prefix of an absent object: 0.
 *  - list: every object under a prefix as it is now (S3 lists are strongly consistent).
 *  - Transient failures (S3: connection errors, 5xx, 429/503 throttling) are retried with
 *    exponential backoff and jitter within s3.retry.* bounds; what still fails returns WEIR_EIO
 *    (unreachable endpoint: WEIR_ENET) with one line in errstr naming the location and the fix.
 *    Permanent errors return at once: a missing bucket or bad credentials WEIR_ECONFIG.
 *  - Errors are one line: "<op> <uri>: <what went wrong>[: <what to do>]".
 *
 * Threading: a weir_storage_env_t and every weir_storage_t are thread-safe (any number of threads
 * may call any operation at once). The env bounds the number of concurrent uploads of the whole
 * process (s3.upload.max-concurrent; put_files uses that many threads at most) and counts requests
 * and bytes (weir_storage_env_stats). The env must outlive the storages opened with it. */
#ifndef WEIR_STORAGE_STORAGE_H
#define WEIR_STORAGE_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"

#define WEIR_STORAGE_KEY_MAX 1024
/** Longest URI accepted (root or root + key). */
#define WEIR_STORAGE_URI_MAX 4096

typedef struct weir_storage_env weir_storage_env_t;
typedef struct weir_storage weir_storage_t;

/** Counters of one env since it was made (all backends together; POSIX counts too). */
typedef struct weir_storage_stats {
    uint64_t put_requests;    /* put, put_file (S3: PUT objects + multipart parts + completes) */
    uint64_t put_bytes;       /* payload bytes written */
    uint64_t get_requests;    /* get, get_file */
    uint64_t get_bytes;       /* payload bytes read */
    uint64_t list_requests;   /* list calls (S3: each ListObjectsV2 page) */
    uint64_t delete_requests; /* delete calls (S3: each DeleteObject / DeleteObjects batch) */
    uint64_t stat_requests;   /* stat calls (S3: HEAD) */
    uint64_t retries;         /* attempts repeated after a transient failure */
    uint64_t failures;        /* operations that returned an error other than WEIR_ENOTFOUND */
} weir_storage_stats_t;

/* ---- environment ------------------------------------------------------------------------- */

/** Reads the storage keys of @p cfg (NULL: defaults) — s3.endpoint, s3.access-key, s3.secret-key,
 * s3.path.style.access, s3.region, s3.multipart.threshold, s3.multipart.part-size,
 * s3.upload.max-concurrent, s3.retry.max-attempts, s3.retry.initial-backoff, s3.retry.max-backoff,
 * s3.connect-timeout, s3.request-timeout (docs/configuration.md) — and makes the per-process
 * environment. An S3 key is only checked for presence when an s3:// location is opened.
 * NULL + one line in errstr on a malformed value. */
weir_storage_env_t *weir_storage_env_new(const weir_config_t *cfg, char *errstr, size_t errlen);
/** Frees the env (every storage opened with it must be closed). Accepts NULL; clears the pointer.
 */
void weir_storage_env_free(weir_storage_env_t **env);
/** Copies the env's counters (relaxed atomics; any thread). */
void weir_storage_env_stats(const weir_storage_env_t *env, weir_storage_stats_t *out);

/* ---- locations --------------------------------------------------------------------------- */

/** Checks the form of a location URI without any I/O (configuration checks): "s3://" needs a
 * bucket (3..63 chars, [a-z0-9.-]); a path must be absolute. @returns 0 or WEIR_ECONFIG with
 * errstr "<uri>: <why>: use s3://bucket/prefix or an absolute path". */
int weir_storage_uri_check(const char *uri, char *errstr, size_t errlen);
/** Writes "<uri>/<key>" (no doubled '/') into @p out; key "" copies uri. @returns 0 or WEIR_EINVAL
 * (a bad key, or it does not fit). */
int weir_storage_uri_join(const char *uri, const char *key, char *out, size_t cap);
/** Writes the parent of @p uri ("s3://b/a/c" -> "s3://b/a", "/x/y" -> "/x") into @p out.
 * @returns 0, or WEIR_EINVAL for a root without parent ("s3://b", "/") or if it does not fit. */
int weir_storage_uri_parent(const char *uri, char *out, size_t cap);
/** The last component of @p uri ("s3://b/a/chk-3" -> "chk-3"); points into uri. */
const char *weir_storage_uri_base(const char *uri);

/** Opens the location @p uri (no I/O: nothing is created; a POSIX root is created by the first
 * put). NULL + errstr (WEIR_ECONFIG: bad URI, or an s3:// location without s3.endpoint /
 * s3.access-key / s3.secret-key). */
weir_storage_t *weir_storage_open(weir_storage_env_t *env, const char *uri, char *errstr,
                                  size_t errlen);
/** Closes @p *st and clears it. Accepts NULL. */
void weir_storage_close(weir_storage_t **st);
/** The canonical root URI (no trailing '/'; a POSIX root as an absolute path, no "file://"). */
const char *weir_storage_uri(const weir_storage_t *st);
/** The env it was opened with. */
weir_storage_env_t *weir_storage_env(const weir_storage_t *st);

/* ---- objects ----------------------------------------------------------------------------- */

/** Writes object @p key whole from memory (see the guarantees above). */
int weir_storage_put(weir_storage_t *st, const char *key, const void *data, size_t len,
                     char *errstr, size_t errlen);
/** Writes object @p key from the local file @p path (S3: multipart above s3.multipart.threshold;
 * POSIX: a hard link when on the same filesystem, else a copy). @p size (may be NULL) receives its
 * size. Waits for an upload slot of the env (s3.upload.max-concurrent). */
int weir_storage_put_file(weir_storage_t *st, const char *key, const char *path, uint64_t *size,
                          char *errstr, size_t errlen);

/** One upload of weir_storage_put_files. */
typedef struct weir_storage_upload {
    const char *key;  /* object key */
    const char *path; /* local file */
    uint64_t size;    /* out: bytes written */
} weir_storage_upload_t;
/** Uploads @p n files with up to s3.upload.max-concurrent threads (the env's slots bound the whole
 * process); stops starting new ones after the first failure. @returns 0 or the first error. */
int weir_storage_put_files(weir_storage_t *st, weir_storage_upload_t *files, size_t n, char *errstr,
                           size_t errlen);

/** Reads object @p key into malloc'd *data (a NUL byte is appended beyond *len). Objects larger
 * than @p max_len fail with WEIR_ENOSPACE ("... is N bytes, more than M"). WEIR_ENOTFOUND if
 * absent. */
int weir_storage_get(weir_storage_t *st, const char *key, size_t max_len, uint8_t **data,
                     size_t *len, char *errstr, size_t errlen);
/** Copies object @p key to the local file @p path, which appears whole (temporary name beside it,
 * fsync, rename) or not at all (POSIX: a hard link when possible). @p size (may be NULL) receives
 * the bytes. WEIR_ENOTFOUND if absent. */
int weir_storage_get_file(weir_storage_t *st, const char *key, const char *path, uint64_t *size,
                          char *errstr, size_t errlen);
/** Size of object @p key. WEIR_ENOTFOUND if absent. */
int weir_storage_stat(weir_storage_t *st, const char *key, uint64_t *size, char *errstr,
                      size_t errlen);

/** Called by weir_storage_list for each entry; @p name is relative to the listed prefix. A
 * non-zero return stops the listing and is returned by it. */
typedef int (*weir_storage_list_fn)(void *arg, const char *name, bool is_dir, uint64_t size);
/** Lists what is under @p prefix ("" = the root). @p recursive: every object, @p name its key
 * below the prefix ("a/b/c"), is_dir false. Not recursive: the immediate children, objects
 * (is_dir false) and "directories" (is_dir true, size 0: a name some longer key continues with
 * '/'). Order unspecified. An absent prefix lists nothing (0). POSIX: temporary files of an
 * unfinished put are never listed. */
int weir_storage_list(weir_storage_t *st, const char *prefix, bool recursive,
                      weir_storage_list_fn fn, void *arg, char *errstr, size_t errlen);

/** Deletes object @p key (absent: 0). */
int weir_storage_delete(weir_storage_t *st, const char *key, char *errstr, size_t errlen);
/** Deletes every object under @p prefix ("" = everything under the root; POSIX: the directory
 * tree). Absent: 0. */
int weir_storage_delete_prefix(weir_storage_t *st, const char *prefix, char *errstr, size_t errlen);

#endif
