/* Owns the blob store directory: files named by the sha256 of their content, written atomically
 * (temp file + fsync + rename), so a file with a sha256 name is always complete. Reads re-hash the
 * content and report a mismatch as corruption. An optional read-only fallback directory (the HA
 * store's blobs/) is searched when a blob is not in the store's own directory. Threading: the
 * struct is immutable after weir_blobstore_new(), so every function may be called from any thread;
 * concurrent puts of the same blob are harmless (same content, atomic rename). */
#include "jobmanager/blobstore.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

struct weir_blobstore {
    char *dir;
    char *fallback; /* NULL or a second, read-only directory */
    size_t max_bytes;
};

weir_blobstore_t *weir_blobstore_new(const char *dir, size_t max_bytes, char *errstr,
                                     size_t errlen) {
    weir_blobstore_t *bs = calloc(1, sizeof *bs);
    if (!bs) {
        weir_fmt(errstr, errlen, "blob store: out of memory");
        return NULL;
    }
    bs->dir = strdup(dir);
    bs->max_bytes = max_bytes;
    if (!bs->dir) {
        weir_fmt(errstr, errlen, "blob store: out of memory");
        goto fail;
    }
    if (weir_mkdirs(dir) != 0) {
        weir_fmt(errstr, errlen,
                 "blob store: cannot create directory %s: %s (set blob.storage.directory to a "
                 "writable directory)",
                 dir, strerror(errno));
        goto fail;
    }
    return bs;
fail:
    weir_blobstore_destroy(&bs);
    return NULL;
}

void weir_blobstore_destroy(weir_blobstore_t **bs) {
    if (!bs || !*bs)
        return;
    free((*bs)->dir);
    free((*bs)->fallback);
    free(*bs);
    *bs = NULL;
}

const char *weir_blobstore_dir(const weir_blobstore_t *bs) {
    return bs->dir;
}

bool weir_blobstore_valid_sha(const char *sha256) {
    if (!sha256)
        return false;
    size_t i = 0;
    for (; sha256[i]; i++) {
        char c = sha256[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return i == 64;
}

int weir_blobstore_set_fallback(weir_blobstore_t *bs, const char *dir) {
    char *copy = dir ? strdup(dir) : NULL;
    if (dir && !copy)
        return WEIR_ENOMEM;
    free(bs->fallback);
    bs->fallback = copy;
    return 0;
}

/* The path of a blob: in the store's directory, or in the fallback when only it has the blob. */
static void blob_path(const weir_blobstore_t *bs, const char *sha, char *out, size_t cap) {
    weir_fmt(out, cap, "%s/%s", bs->dir, sha);
    struct stat st;
    if (bs->fallback && stat(out, &st) != 0) {
        char alt[4096];
        weir_fmt(alt, sizeof alt, "%s/%s", bs->fallback, sha);
        if (stat(alt, &st) == 0)
            weir_fmt(out, cap, "%s", alt);
    }
}

int weir_blobstore_put(weir_blobstore_t *bs, const void *data, size_t len, char sha_out[65]) {
    if (len > bs->max_bytes)
        return WEIR_ENOSPACE;
    weir_sha256_hex(data, len, sha_out);
    char path[4096];
    weir_fmt(path, sizeof path, "%s/%s", bs->dir, sha_out);
    struct stat st;
    if (stat(path, &st) == 0 && (uint64_t)st.st_size == (uint64_t)len)
        return 0;
    int rc = weir_write_file_atomic(path, data, len);
    if (rc != 0) {
        WEIR_ERROR("jobmanager", "blob store: cannot write %s: %s", path, strerror(errno));
        return WEIR_EIO;
    }
    return 0;
}

bool weir_blobstore_has(weir_blobstore_t *bs, const char *sha256) {
    if (!weir_blobstore_valid_sha(sha256))
        return false;
    char path[4096];
    blob_path(bs, sha256, path, sizeof path);
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int weir_blobstore_get(weir_blobstore_t *bs, const char *sha256, uint8_t **data, size_t *len) {
    *data = NULL;
    *len = 0;
    if (!weir_blobstore_valid_sha(sha256))
        return WEIR_EINVAL;
    char path[4096];
    blob_path(bs, sha256, path, sizeof path);
    uint8_t *buf = NULL;
    size_t n = 0;
    int rc = weir_read_file(path, &buf, &n);
    if (rc != 0)
        return rc == WEIR_ENOTFOUND ? WEIR_ENOTFOUND : WEIR_EIO;
    char actual[65];
    weir_sha256_hex(buf, n, actual);
    if (strcmp(actual, sha256) != 0) {
        WEIR_ERROR("jobmanager", "blob store: %s is corrupt (content hashes to %s)", path, actual);
        free(buf);
        return WEIR_ECORRUPT;
    }
    *data = buf;
    *len = n;
    return 0;
}
