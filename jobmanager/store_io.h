/* Reads of the job manager's durable stores (checkpoint storage, ckpt_store.h, and the HA store,
 * ha.h) with bounded retries of transient errors, and the directory syncs both stores make before
 * a write counts as durable. No knowledge of the job manager.
 *
 * A read error is never taken for corruption: a transient one (EIO, EMFILE, ENFILE, ENOMEM,
 * EAGAIN, EINTR) is retried up to `attempts` times with a doubling delay, each failure logged with
 * the file and errno; what still fails is returned as WEIR_EIO naming the file and errno. Only the
 * content of a file that was read whole can prove it corrupt (the caller decides).
 *
 * Threading: stateless; a read sleeps on the calling thread between attempts (at most about
 * 1.6 s with the defaults). */
#ifndef WEIR_JOBMANAGER_STORE_IO_H
#define WEIR_JOBMANAGER_STORE_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Reads a whole file like weir_read_file: 0 (*data malloc'd and NUL-terminated), WEIR_ENOTFOUND,
 * or WEIR_EIO with errno set. Tests inject failures through it. */
typedef int (*weir_store_read_fn)(void *ctx, const char *path, uint8_t **data, size_t *len);

/** Reads of a file before a transient error is final, and the first delay (doubled each time). */
#define WEIR_STORE_READ_ATTEMPTS 6
#define WEIR_STORE_READ_BACKOFF_MS 50

typedef struct weir_store_io {
    weir_store_read_fn read; /* NULL: weir_read_file */
    void *ctx;               /* handed to read */
    uint32_t attempts;       /* 0: WEIR_STORE_READ_ATTEMPTS */
    int64_t backoff_ms;      /* 0: WEIR_STORE_READ_BACKOFF_MS; < 0: no delay */
} weir_store_io_t;

/** True for an errno a later read may not meet again. */
bool weir_store_transient(int errnum);

/** Reads @p path whole through @p io (NULL: the defaults), retrying transient errors; each failed
 * attempt is logged (WARN, component @p comp) with the file and errno. @returns 0, WEIR_ENOTFOUND,
 * or WEIR_EIO with errstr "cannot read <path>: <strerror> (errno N)[ after K attempts]". */
int weir_store_read(const weir_store_io_t *io, const char *comp, const char *path, uint8_t **data,
                    size_t *len, char *errstr, size_t errlen);

/** fsyncs each of the @p n directories (NULL entries and missing directories are skipped), making
 * the entries created or renamed in them durable. @returns 0 or WEIR_EIO with errstr "cannot fsync
 * directory <dir>: <strerror>". */
int weir_store_sync_dirs(const char *const *dirs, size_t n, char *errstr, size_t errlen);

#endif
