/* Owns the reads of the job manager's durable stores (store_io.h): one read of a storage object
 * with bounded retries of transient errors (the reader injectable for tests).
 *
 * Invariants: a read error is reported as WEIR_EIO (never as corrupt data) naming the object; a
 * transient error is retried at most io->attempts - 1 times, each failure logged; an absent
 * object is WEIR_ENOTFOUND at once (absence is an answer, not an error); an s3:// location is
 * not retried here (its backend retried already: retries would multiply).
 *
 * Threading: stateless; sleeps on the calling thread between attempts. */
#include "jobmanager/store_io.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

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

int weir_store_read(const weir_store_io_t *io, const char *comp, weir_storage_t *st,
                    const char *key, size_t max_len, uint8_t **data, size_t *len, char *errstr,
                    size_t errlen) {
    static const weir_store_io_t defaults = {0};
    if (!io)
        io = &defaults;
    char uri[WEIR_STORAGE_URI_MAX];
    if (weir_storage_uri_join(weir_storage_uri(st), key, uri, sizeof uri) != 0)
        return weir_errf(errstr, errlen, WEIR_EIO, "cannot read %s/%s: the URI is too long",
                         weir_storage_uri(st), key);
    bool s3 = strncmp(uri, "s3://", 5) == 0;
    uint32_t attempts = io->attempts ? io->attempts : WEIR_STORE_READ_ATTEMPTS;
    if (s3 && !io->read)
        attempts = 1;
    int64_t delay = io->backoff_ms ? io->backoff_ms : WEIR_STORE_READ_BACKOFF_MS;
    *data = NULL;
    *len = 0;
    for (uint32_t a = 1;; a++) {
        char why[WEIR_STORAGE_URI_MAX + 256] = "";
        bool transient;
        int rc, fail = WEIR_EIO;
        if (io->read) {
            errno = 0;
            rc = io->read(io->ctx, uri, data, len);
            if (rc == 0 || rc == WEIR_ENOTFOUND)
                return rc;
            int e = errno ? errno : EIO;
            transient = weir_store_transient(e);
            weir_fmt(why, sizeof why, "%s (errno %d)", strerror(e), e);
        } else {
            rc = weir_storage_get(st, key, max_len, data, len, why, sizeof why);
            if (rc == 0 || rc == WEIR_ENOTFOUND)
                return rc;
            /* the storage's line is "get <uri>: <what>": keep <what> */
            const char *p = strstr(why, uri);
            if (p && p[strlen(uri)] == ':' && p[strlen(uri) + 1] == ' ')
                memmove(why, p + strlen(uri) + 2, strlen(p + strlen(uri) + 2) + 1);
            transient = rc == WEIR_EIO || rc == WEIR_ENET;
            if (rc == WEIR_ENOSPACE || rc == WEIR_ECONFIG)
                fail = rc; /* permanent: too large, or a missing bucket / refused credentials */
        }
        free(*data);
        *data = NULL;
        *len = 0;
        if (!transient || a >= attempts) {
            if (a > 1)
                return weir_errf(errstr, errlen, fail,
                                 "cannot read %s: %s after %" PRIu32 " attempts", uri, why, a);
            return weir_errf(errstr, errlen, fail, "cannot read %s: %s", uri, why);
        }
        WEIR_WARN(comp,
                  "cannot read %s: %s, a transient error: reading again in %" PRId64
                  " ms (attempt %" PRIu32 " of %" PRIu32 ")",
                  uri, why, delay > 0 ? delay : 0, a + 1, attempts);
        if (delay > 0) {
            weir_sleep_ns(delay * 1000000);
            delay *= 2;
        }
    }
}
