/* File source: the lines of a file, or of every regular non-hidden file of a directory (sorted by
 * name, not recursive), split among the subtasks by byte range.
 *
 * Split rule: a file of S bytes gives subtask i of p the range [i*S/p, (i+1)*S/p). A line belongs
 * to the subtask whose range contains the line's first byte (offset 0 or the byte after a '\n').
 * So a reader whose range starts at b > 0 skips to just after the first '\n' at or after b-1, and
 * reads lines while their first byte is < end, the last one possibly past end. Every line is read
 * by exactly one subtask. Lines are emitted without '\n' (and without a '\r' before it) as msgpack
 * str values with an empty key and the wall clock as timestamp.
 * Memory: one buffer per reader (1 MiB, grown only for longer lines); no allocation per line.
 * Threading: an operator instance runs on its subtask thread only. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/util.h"
#include "connectors/connectors_int.h"

#define FILE_SOURCE_BUF (1u << 20)

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void weir__file_list_free(char **files, size_t n) {
    if (!files)
        return;
    for (size_t i = 0; i < n; i++)
        free(files[i]);
    free(files);
}

int weir__file_list(const char *path, char ***files, size_t *n, char *errstr, size_t errlen) {
    struct stat st;
    char **list = NULL;
    size_t cnt = 0, cap = 0;
    DIR *d = NULL;
    *files = NULL;
    *n = 0;
    if (stat(path, &st) != 0)
        goto fail_errno;
    if (!S_ISDIR(st.st_mode)) {
        list = malloc(sizeof(*list));
        if (!list || !(list[0] = strdup(path))) {
            free(list);
            list = NULL; /* the failure path frees the list again */
            errno = ENOMEM;
            goto fail_errno;
        }
        *files = list;
        *n = 1;
        return 0;
    }
    d = opendir(path);
    if (!d)
        goto fail_errno;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        size_t plen = strlen(path) + strlen(de->d_name) + 2;
        char *full = malloc(plen);
        if (!full) {
            errno = ENOMEM;
            goto fail_errno;
        }
        snprintf(full, plen, "%s/%s", path, de->d_name);
        struct stat fst;
        if (stat(full, &fst) != 0 || !S_ISREG(fst.st_mode)) {
            free(full);
            errno = 0;
            continue;
        }
        if (cnt == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            char **nl = realloc(list, ncap * sizeof(*nl));
            if (!nl) {
                free(full);
                errno = ENOMEM;
                goto fail_errno;
            }
            list = nl;
            cap = ncap;
        }
        list[cnt++] = full;
        errno = 0;
    }
    if (errno != 0)
        goto fail_errno;
    closedir(d);
    if (cnt > 1)
        qsort(list, cnt, sizeof(*list), cmp_str);
    *files = list;
    *n = cnt;
    return 0;

fail_errno : {
    int e = errno;
    if (d)
        closedir(d);
    weir__file_list_free(list, cnt);
    weir_fmt(errstr, errlen, "%s", strerror(e));
    errno = e;
    return e == ENOENT ? WEIR_ENOTFOUND : WEIR_EIO;
}
}

void weir__split_range(uint64_t size, uint32_t i, uint32_t p, uint64_t *start, uint64_t *end) {
    /* size * i fits: files are far below 2^64 / 2^32 bytes. */
    *start = (uint64_t)((unsigned __int128)size * i / p);
    *end = (uint64_t)((unsigned __int128)size * (i + 1) / p);
}

/* Reads more bytes after compacting/growing the buffer. @returns 0 or WEIR_EIO. */
static int reader_fill(weir_line_reader_t *r) {
    if (r->rpos > 0) {
        memmove(r->buf, r->buf + r->rpos, r->wpos - r->rpos);
        r->wpos -= r->rpos;
        r->rpos = 0;
    }
    if (r->wpos == r->cap) {
        size_t ncap = r->cap * 2;
        char *nb = realloc(r->buf, ncap);
        if (!nb) {
            errno = ENOMEM;
            return WEIR_EIO;
        }
        r->buf = nb;
        r->cap = ncap;
    }
    for (;;) {
        ssize_t k = read(r->fd, r->buf + r->wpos, r->cap - r->wpos);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return WEIR_EIO;
        }
        if (k == 0)
            r->eof = true;
        r->wpos += (size_t)k;
        return 0;
    }
}

int weir__line_reader_open(weir_line_reader_t *r, const char *path, uint64_t start, uint64_t end,
                           size_t bufsize) {
    memset(r, 0, sizeof(*r));
    r->fd = -1;
    r->end = end;
    if (start >= end) { /* empty range: no line starts here */
        r->eof = true;
        r->off = end;
        return 0;
    }
    r->cap = bufsize < 16 ? 16 : bufsize;
    r->buf = malloc(r->cap);
    if (!r->buf) {
        errno = ENOMEM;
        return WEIR_EIO;
    }
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) {
        int e = errno;
        weir__line_reader_close(r);
        errno = e;
        return e == ENOENT ? WEIR_ENOTFOUND : WEIR_EIO;
    }
    if (start == 0)
        return 0;
    /* Skip to just after the first '\n' at or after start-1. */
    if (lseek(r->fd, (off_t)(start - 1), SEEK_SET) < 0)
        return WEIR_EIO;
    r->off = start - 1;
    for (;;) {
        char *nl = memchr(r->buf + r->rpos, '\n', r->wpos - r->rpos);
        if (nl) {
            size_t skip = (size_t)(nl - (r->buf + r->rpos)) + 1;
            r->rpos += skip;
            r->off += skip;
            return 0;
        }
        r->off += r->wpos - r->rpos;
        r->rpos = r->wpos = 0;
        if (r->eof) {
            return 0;
        }
        if (reader_fill(r) != 0)
            return WEIR_EIO;
    }
}

int weir__line_reader_next(weir_line_reader_t *r, const char **line, size_t *len) {
    if (r->off >= r->end)
        return 0;
    size_t scanned = 0; /* bytes after rpos already known to hold no '\n' */
    for (;;) {
        char *start = r->buf + r->rpos;
        size_t avail = r->wpos - r->rpos;
        char *nl = avail > scanned ? memchr(start + scanned, '\n', avail - scanned) : NULL;
        if (nl) {
            size_t n = (size_t)(nl - start);
            r->rpos += n + 1;
            r->off += n + 1;
            if (n > 0 && start[n - 1] == '\r')
                n--;
            *line = start;
            *len = n;
            return 1;
        }
        if (r->eof) {
            if (avail == 0)
                return 0;
            r->rpos = r->wpos;
            r->off += avail;
            *line = start;
            *len = avail;
            return 1;
        }
        scanned = avail;
        if (reader_fill(r) != 0)
            return WEIR_EIO;
    }
}

void weir__line_reader_close(weir_line_reader_t *r) {
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    free(r->buf);
    r->buf = NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Operator                                                                                 */
/* ---------------------------------------------------------------------------------------- */

typedef struct weir_file_source {
    char **files;
    size_t n_files;
    size_t cur;   /* index of the next file to open */
    bool reading; /* reader holds an open range */
    weir_line_reader_t r;
    weir_rate_t rate;
} weir_file_source_t;

static int fsrc_open(weir_operator_t *op, weir_ctx_t *ctx) {
    weir_file_source_t *s = op->impl;
    const weir_node_t *n = op->node;
    char err[256] = "";
    const char *path = n->path ? n->path : "";
    int rc = weir__file_list(path, &s->files, &s->n_files, err, sizeof(err));
    if (rc != 0) {
        weir_fail(ctx, "file source '%s': cannot read input '%s': %s", n->name, path, err);
        return rc;
    }
    weir__rate_init(&s->rate, n->rate, op->parallelism);
    return 0;
}

/* Opens the next file's split. @returns 1 when one is open, 0 when no file is left, or < 0. */
static int fsrc_next_file(weir_operator_t *op, weir_ctx_t *ctx, weir_file_source_t *s) {
    while (s->cur < s->n_files) {
        const char *f = s->files[s->cur++];
        struct stat st;
        int rc = 0;
        uint64_t start = 0, end = 0;
        if (stat(f, &st) != 0) {
            rc = errno == ENOENT ? WEIR_ENOTFOUND : WEIR_EIO;
        } else {
            weir__split_range((uint64_t)st.st_size, op->subtask, op->parallelism, &start, &end);
            rc = weir__line_reader_open(&s->r, f, start, end, FILE_SOURCE_BUF);
        }
        if (rc != 0) {
            weir_fail(ctx, "file source '%s': cannot read input '%s': %s", op->node->name, f,
                      strerror(errno));
            weir__line_reader_close(&s->r);
            return rc;
        }
        s->reading = true;
        return 1;
    }
    return 0;
}

static int fsrc_run(weir_operator_t *op, weir_ctx_t *ctx, uint32_t budget, int64_t *wake_ns) {
    weir_file_source_t *s = op->impl;
    int64_t now = s->rate.per_sec > 0 ? weir_now_ns() : 0;
    uint32_t k = weir__rate_permits(&s->rate, now, budget, wake_ns);
    if (k == 0)
        return WEIR_SOURCE_MORE;
    int64_t ts = weir_wall_ms();
    uint32_t emitted = 0;
    while (emitted < k) {
        if (!s->reading) {
            int rc = fsrc_next_file(op, ctx, s);
            if (rc < 0)
                return rc;
            if (rc == 0) {
                weir__rate_note(&s->rate, emitted);
                return WEIR_SOURCE_END;
            }
        }
        const char *line;
        size_t len;
        int rc = weir__line_reader_next(&s->r, &line, &len);
        if (rc < 0) {
            weir_fail(ctx, "file source '%s': cannot read input '%s': %s", op->node->name,
                      s->files[s->cur - 1], strerror(errno));
            return rc;
        }
        if (rc == 0) {
            weir__line_reader_close(&s->r);
            s->reading = false;
            continue;
        }
        msgpack_packer *pk = weir_packer(ctx);
        msgpack_pack_str(pk, len);
        msgpack_pack_str_body(pk, line, len);
        weir_emit_packed(ctx, ts, NULL, 0);
        emitted++;
    }
    weir__rate_note(&s->rate, emitted);
    return WEIR_SOURCE_MORE;
}

static void fsrc_close(weir_operator_t *op) {
    weir_file_source_t *s = op->impl;
    if (!s)
        return;
    weir__line_reader_close(&s->r);
    weir__file_list_free(s->files, s->n_files);
    free(s);
    op->impl = NULL;
}

static const weir_operator_vt_t file_source_vt = {
    .open = fsrc_open, .run = fsrc_run, .close = fsrc_close};

int weir__file_source_create(weir_operator_t *op, char *errstr, size_t errlen) {
    weir_file_source_t *s = calloc(1, sizeof(*s));
    if (!s) {
        weir_fmt(errstr, errlen, "file source '%s': out of memory", op->node->name);
        return WEIR_ENOMEM;
    }
    s->r.fd = -1;
    op->impl = s;
    op->vt = &file_source_vt;
    return 0;
}
