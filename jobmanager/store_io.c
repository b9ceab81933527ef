/* Owns the reads and directory syncs of the job manager's durable stores (store_io.h): one read
 * with bounded retries of transient errors (the reader injectable for tests) and the fsync of a
 * list of directories.
 *
 * Invariants: a read error is reported as WEIR_EIO (never as corrupt data) with the file and errno;
 * a transient error is retried at most io->attempts - 1 times, each failure logged; ENOENT is
 * WEIR_ENOTFOUND at once (absence is an answer, not an error).
 *
 * Threading: stateless; sleeps on the calling thread between attempts. */
#include "jobmanager/store_io.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

bool weir_store_transient(int errnum) {
    switch (errnum) {
    case EIO:
    case EMFILE:
    case ENFILE:
    case ENOMEM:
    case EAGAIN:
    case EINTR:
        return true;
    default:
        return false;
    }
}

int weir_store_read(const weir_store_io_t *io, const char *comp, const char *path, uint8_t **data,
                    size_t *len, char *errstr, size_t errlen) {
    static const weir_store_io_t defaults = {0};
    if (!io)
        io = &defaults;
    uint32_t attempts = io->attempts ? io->attempts : WEIR_STORE_READ_ATTEMPTS;
    int64_t delay = io->backoff_ms ? io->backoff_ms : WEIR_STORE_READ_BACKOFF_MS;
    *data = NULL;
    *len = 0;
    for (uint32_t a = 1;; a++) {
        errno = 0;
        int rc = io->read ? io->read(io->ctx, path, data, len) : weir_read_file(path, data, len);
        if (rc == 0 || rc == WEIR_ENOTFOUND)
            return rc;
        int e = errno ? errno : EIO;
        if (!weir_store_transient(e))
            return weir_errf(errstr, errlen, WEIR_EIO, "cannot read %s: %s (errno %d)", path,
                             strerror(e), e);
        if (a >= attempts)
            return weir_errf(errstr, errlen, WEIR_EIO,
                             "cannot read %s: %s (errno %d) after %" PRIu32 " attempts", path,
                             strerror(e), e, attempts);
        WEIR_WARN(comp,
                  "cannot read %s: %s (errno %d), a transient error: reading again in %" PRId64
                  " ms (attempt %" PRIu32 " of %" PRIu32 ")",
                  path, strerror(e), e, delay > 0 ? delay : 0, a + 1, attempts);
        if (delay > 0) {
            weir_sleep_ns(delay * 1000000);
            delay *= 2;
        }
    }
}

int weir_store_sync_dirs(const char *const *dirs, size_t n, char *errstr, size_t errlen) {
    for (size_t i = 0; i < n; i++) {
        if (!dirs[i])
            continue;
        struct stat st;
        if (stat(dirs[i], &st) != 0 && errno == ENOENT)
            continue;
        if (weir_fsync_dir(dirs[i]) != 0)
            return weir_errf(errstr, errlen, WEIR_EIO, "cannot fsync directory %s: %s", dirs[i],
                             strerror(errno));
    }
    return 0;
}
