/* posix.c — the POSIX directory backend of storage.h: a location is a directory (local disk,
 * NFS, a ReadWriteMany volume); object "a/b/c" is the file <root>/a/b/c.
 *
 * Invariants: an object appears only under its final name, complete and durable: it is written
 * (or hard-linked) to a hidden temporary name in its directory ".weir-tmp-<random>-<name>",
 * fsynced, renamed, and the directories from its own up to the root are fsynced when they were
 * created by this put (else only its own). Temporary names are never listed, read or returned;
 * one left by a killed process is garbage that delete_prefix removes with its directory. A
 * directory is never an object (stat / get of one: WEIR_ENOTFOUND). Hard links are used when the
 * source and the destination share a filesystem: callers never modify a file after handing it to
 * put_file / get_file (RocksDB's SSTs are immutable).
 * Threading: no state besides the root (immutable); any thread. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/util.h"
#include "storage/storage_int.h"

#define TMP_PREFIX ".weir-tmp-"
#define COPY_BUF (1u << 20)

typedef struct posix_root {
    char *dir; /* "/" or "/a/b" */
} posix_root_t;

static const char *root_of(const weir_storage_t *st) {
    return ((const posix_root_t *)st->impl)->dir;
}

/* "<root>/<key>" (key "" = the root) in malloc'd memory. */
static char *path_of(const weir_storage_t *st, const char *key) {
    const char *root = root_of(st);
    size_t n = strlen(root) + strlen(key) + 2;
    char *p = weir_xcalloc(1, n);
    if (!*key)
        snprintf(p, n, "%s", root);
    else
        snprintf(p, n, "%s%s%s", root, strcmp(root, "/") == 0 ? "" : "/", key);
    return p;
}

static int io_err(int code, char *errstr, size_t errlen, const char *op, const char *path,
                  int err) {
    const char *hint = err == ENOSPC   ? " (the disk is full: free space or move the location)"
                       : err == EACCES ? " (check the directory's permissions)"
                       : err == EROFS  ? " (a read-only filesystem)"
                                       : "";
    return weir_errf(errstr, errlen, code, "%s %s: %s%s", op, path, strerror(err), hint);
}

/* fsyncs the directories from dirname(@p path) up to the root (all of them when @p chain, else
 * only the first). */
static int sync_dirs(const weir_storage_t *st, const char *path, bool chain, char *errstr,
                     size_t errlen) {
    const char *root = root_of(st);
    size_t rl = strlen(root);
    char *d = weir_xstrdup(path);
    int rc = 0;
    for (;;) {
        char *slash = strrchr(d, '/');
        if (!slash)
            break;
        if (slash == d)
            slash[1] = '\0';
        else
            *slash = '\0';
        if (weir_fsync_dir(d) != 0) {
            rc = io_err(WEIR_EIO, errstr, errlen, "fsync", d, errno);
            break;
        }
        if (!chain || strlen(d) <= rl || slash == d)
            break;
    }
    free(d);
    return rc;
}

/* Makes the parent directory of @p path; *created tells whether it was absent. */
static int make_parent(const char *path, bool *created, char *errstr, size_t errlen) {
    char *d = weir_xstrdup(path);
    char *slash = strrchr(d, '/');
    int rc = 0;
    *created = false;
    if (slash && slash != d) {
        *slash = '\0';
        struct stat sb;
        if (stat(d, &sb) != 0) {
            *created = true;
            if (weir_mkdirs(d) != 0)
                rc = io_err(WEIR_EIO, errstr, errlen, "mkdir", d, errno);
        } else if (!S_ISDIR(sb.st_mode)) {
            rc = weir_errf(errstr, errlen, WEIR_EIO, "mkdir %s: a file is in the way", d);
        }
    }
    free(d);
    return rc;
}

/* "<dir of path>/.weir-tmp-<hex>-<base of path>" */
static char *tmp_of(const char *path) {
    uint8_t r[6];
    char hex[13];
    if (weir_random_bytes(r, sizeof r) != 0)
        memset(r, 0, sizeof r);
    weir_hex_encode(r, sizeof r, hex);
    const char *slash = strrchr(path, '/');
    size_t dl = (size_t)(slash - path);
    size_t n = strlen(path) + sizeof TMP_PREFIX + sizeof hex + 2;
    char *t = weir_xcalloc(1, n);
    snprintf(t, n, "%.*s/" TMP_PREFIX "%s-%s", (int)dl, path, hex, slash + 1);
    return t;
}

/* Copies @p in to @p out; *n receives the bytes. -1 with errno on error. */
static int copy_fd(int in, int out, uint64_t *n) {
    uint8_t *buf = malloc(COPY_BUF);
    if (!buf) {
        errno = ENOMEM;
        return -1;
    }
    *n = 0;
    for (;;) {
        ssize_t r = read(in, buf, COPY_BUF);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            free(buf);
            return -1;
        }
        if (r == 0)
            break;
        if (weir_write_all(out, buf, (size_t)r) != 0) {
            free(buf);
            return -1;
        }
        *n += (uint64_t)r;
    }
    free(buf);
    return 0;
}

/* Places the content of @p src (a local file) at @p dst: hard link or copy to a temporary name
 * beside it, fsync, rename. *size = bytes. */
static int place_file(const char *src, const char *dst, uint64_t *size, const char *op,
                      char *errstr, size_t errlen) {
    char *tmp = tmp_of(dst);
    int rc = 0, in = -1, out = -1;
    struct stat sb;
    if (link(src, tmp) == 0) {
        out = open(tmp, O_RDONLY | O_CLOEXEC);
        if (out < 0 || fstat(out, &sb) != 0 || fsync(out) != 0) {
            rc = io_err(WEIR_EIO, errstr, errlen, op, dst, errno);
            goto done;
        }
        *size = (uint64_t)sb.st_size;
    } else {
        if (errno == ENOENT && access(src, F_OK) != 0) {
            rc = weir_errf(errstr, errlen, WEIR_EIO, "%s %s: source file %s: %s", op, dst, src,
                           strerror(ENOENT));
            goto done;
        }
        in = open(src, O_RDONLY | O_CLOEXEC);
        if (in < 0) {
            rc = weir_errf(errstr, errlen, WEIR_EIO, "%s %s: cannot open %s: %s", op, dst, src,
                           strerror(errno));
            goto done;
        }
        out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (out < 0 || copy_fd(in, out, size) != 0 || fsync(out) != 0) {
            rc = io_err(WEIR_EIO, errstr, errlen, op, dst, errno);
            goto done;
        }
    }
    if (close(out) != 0) {
        out = -1;
        rc = io_err(WEIR_EIO, errstr, errlen, op, dst, errno);
        goto done;
    }
    out = -1;
    if (rename(tmp, dst) != 0)
        rc = io_err(WEIR_EIO, errstr, errlen, op, dst, errno);
done:
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    if (rc != 0)
        (void)unlink(tmp);
    free(tmp);
    return rc;
}

/* ---- ops ---------------------------------------------------------------------------------- */

static int px_put(weir_storage_t *st, const char *key, const void *data, size_t len, char *errstr,
                  size_t errlen) {
    char *path = path_of(st, key);
    bool created = false;
    int rc = make_parent(path, &created, errstr, errlen);
    char *tmp = NULL;
    int fd = -1;
    if (rc != 0)
        goto done;
    tmp = tmp_of(path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || weir_write_all(fd, data, len) != 0 || fsync(fd) != 0) {
        rc = io_err(WEIR_EIO, errstr, errlen, "put", path, errno);
        goto done;
    }
    if (close(fd) != 0) {
        fd = -1;
        rc = io_err(WEIR_EIO, errstr, errlen, "put", path, errno);
        goto done;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        rc = io_err(WEIR_EIO, errstr, errlen, "put", path, errno);
        goto done;
    }
    rc = sync_dirs(st, path, created, errstr, errlen);
    if (rc == 0)
        weir__storage_count(&st->env->put_bytes, len);
done:
    weir__storage_count(&st->env->put_requests, 1);
    if (fd >= 0)
        close(fd);
    if (rc != 0 && tmp)
        (void)unlink(tmp);
    free(tmp);
    free(path);
    return rc;
}

static int px_put_file(weir_storage_t *st, const char *key, const char *src, uint64_t *size,
                       char *errstr, size_t errlen) {
    char *path = path_of(st, key);
    bool created = false;
    int rc = make_parent(path, &created, errstr, errlen);
    if (rc == 0)
        rc = place_file(src, path, size, "put", errstr, errlen);
    if (rc == 0)
        rc = sync_dirs(st, path, created, errstr, errlen);
    weir__storage_count(&st->env->put_requests, 1);
    if (rc == 0)
        weir__storage_count(&st->env->put_bytes, *size);
    free(path);
    return rc;
}

static int not_found(char *errstr, size_t errlen, const char *op, const char *path) {
    return weir_errf(errstr, errlen, WEIR_ENOTFOUND, "%s %s: no such object", op, path);
}

static int px_get(weir_storage_t *st, const char *key, size_t max_len, uint8_t **data, size_t *len,
                  char *errstr, size_t errlen) {
    char *path = path_of(st, key);
    weir__storage_count(&st->env->get_requests, 1);
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0) {
        rc = errno == ENOENT || errno == ENOTDIR
                 ? not_found(errstr, errlen, "get", path)
                 : io_err(WEIR_EIO, errstr, errlen, "get", path, errno);
        goto done;
    }
    if (fstat(fd, &sb) != 0) {
        rc = io_err(WEIR_EIO, errstr, errlen, "get", path, errno);
        goto done;
    }
    if (S_ISDIR(sb.st_mode)) {
        rc = not_found(errstr, errlen, "get", path);
        goto done;
    }
    if ((uint64_t)sb.st_size > max_len) {
        rc = weir_errf(errstr, errlen, WEIR_ENOSPACE, "get %s: is %llu bytes, more than %zu", path,
                       (unsigned long long)sb.st_size, max_len);
        goto done;
    }
    size_t cap = (size_t)sb.st_size + 1, n = 0;
    uint8_t *buf = malloc(cap);
    if (!buf) {
        rc = weir_errf(errstr, errlen, WEIR_ENOMEM, "get %s: out of memory", path);
        goto done;
    }
    for (;;) { /* read to the end: the size may have changed since fstat */
        if (n + 1 >= cap) {
            if (cap > max_len) {
                free(buf);
                rc = weir_errf(errstr, errlen, WEIR_ENOSPACE, "get %s: more than %zu bytes", path,
                               max_len);
                goto done;
            }
            uint8_t *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                rc = weir_errf(errstr, errlen, WEIR_ENOMEM, "get %s: out of memory", path);
                goto done;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            free(buf);
            rc = io_err(WEIR_EIO, errstr, errlen, "get", path, errno);
            goto done;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (n > max_len) {
        free(buf);
        rc = weir_errf(errstr, errlen, WEIR_ENOSPACE, "get %s: more than %zu bytes", path, max_len);
        goto done;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    weir__storage_count(&st->env->get_bytes, n);
done:
    if (fd >= 0)
        close(fd);
    free(path);
    return rc;
}

static int px_get_file(weir_storage_t *st, const char *key, const char *dst, uint64_t *size,
                       char *errstr, size_t errlen) {
    char *path = path_of(st, key);
    weir__storage_count(&st->env->get_requests, 1);
    struct stat sb;
    int rc;
    if (stat(path, &sb) != 0 || S_ISDIR(sb.st_mode))
        rc = (errno == ENOENT || errno == ENOTDIR || S_ISDIR(sb.st_mode))
                 ? not_found(errstr, errlen, "get", path)
                 : io_err(WEIR_EIO, errstr, errlen, "get", path, errno);
    else
        rc = place_file(path, dst, size, "get", errstr, errlen);
    if (rc == 0)
        weir__storage_count(&st->env->get_bytes, *size);
    free(path);
    return rc;
}

static int px_stat(weir_storage_t *st, const char *key, uint64_t *size, char *errstr,
                   size_t errlen) {
    char *path = path_of(st, key);
    weir__storage_count(&st->env->stat_requests, 1);
    struct stat sb;
    int rc = 0;
    if (stat(path, &sb) != 0)
        rc = errno == ENOENT || errno == ENOTDIR
                 ? not_found(errstr, errlen, "stat", path)
                 : io_err(WEIR_EIO, errstr, errlen, "stat", path, errno);
    else if (S_ISDIR(sb.st_mode))
        rc = not_found(errstr, errlen, "stat", path);
    else
        *size = (uint64_t)sb.st_size;
    free(path);
    return rc;
}

/* Walks @p dir; @p rel is its name below the listed prefix ("" at the top). */
static int walk(const char *dir, const char *rel, bool recursive, weir_storage_list_fn fn,
                void *arg, char *errstr, size_t errlen) {
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;
        return io_err(WEIR_EIO, errstr, errlen, "list", dir, errno);
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (errno = 0, e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
            strncmp(e->d_name, TMP_PREFIX, sizeof TMP_PREFIX - 1) == 0)
            continue;
        size_t pl = strlen(dir) + strlen(e->d_name) + 2, rl = strlen(rel) + strlen(e->d_name) + 2;
        char *p = weir_xcalloc(1, pl), *r = weir_xcalloc(1, rl);
        snprintf(p, pl, "%s/%s", strcmp(dir, "/") == 0 ? "" : dir, e->d_name);
        snprintf(r, rl, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
        struct stat sb;
        if (lstat(p, &sb) != 0) {
            if (errno != ENOENT) /* removed meanwhile: not listed */
                rc = io_err(WEIR_EIO, errstr, errlen, "list", p, errno);
        } else if (S_ISDIR(sb.st_mode)) {
            rc = recursive ? walk(p, r, true, fn, arg, errstr, errlen) : fn(arg, r, true, 0);
        } else if (S_ISREG(sb.st_mode)) {
            rc = fn(arg, r, false, (uint64_t)sb.st_size);
        }
        free(p);
        free(r);
    }
    if (rc == 0 && errno != 0)
        rc = io_err(WEIR_EIO, errstr, errlen, "list", dir, errno);
    closedir(d);
    return rc;
}

static int px_list(weir_storage_t *st, const char *prefix, bool recursive, weir_storage_list_fn fn,
                   void *arg, char *errstr, size_t errlen) {
    char *path = path_of(st, prefix);
    weir__storage_count(&st->env->list_requests, 1);
    int rc = walk(path, "", recursive, fn, arg, errstr, errlen);
    free(path);
    return rc;
}

static int px_del(weir_storage_t *st, const char *key, char *errstr, size_t errlen) {
    char *path = path_of(st, key);
    weir__storage_count(&st->env->delete_requests, 1);
    int rc = 0;
    if (unlink(path) != 0 && errno != ENOENT && errno != ENOTDIR)
        rc = errno == EISDIR ? 0 : io_err(WEIR_EIO, errstr, errlen, "delete", path, errno);
    free(path);
    return rc;
}

static int px_del_prefix(weir_storage_t *st, const char *prefix, char *errstr, size_t errlen) {
    char *path = path_of(st, prefix);
    weir__storage_count(&st->env->delete_requests, 1);
    int rc = 0;
    if (weir_rmtree(path) != 0)
        rc = io_err(WEIR_EIO, errstr, errlen, "delete", path, errno);
    free(path);
    return rc;
}

static void px_close(void *impl) {
    posix_root_t *r = impl;
    free(r->dir);
    free(r);
}

static const weir_storage_ops_t posix_ops = {
    .put = px_put,
    .put_file = px_put_file,
    .get = px_get,
    .get_file = px_get_file,
    .stat = px_stat,
    .list = px_list,
    .del = px_del,
    .del_prefix = px_del_prefix,
    .close = px_close,
};

int weir__storage_posix_open(weir_storage_t *st, const char *dir, char *errstr, size_t errlen) {
    (void)errstr;
    (void)errlen;
    posix_root_t *r = weir_xcalloc(1, sizeof *r);
    r->dir = weir_xstrdup(dir);
    st->impl = r;
    st->ops = &posix_ops;
    return 0;
}
