/* File source: the lines of a file, or of every regular non-hidden file of a directory (sorted by
 * name, not recursive), split among the subtasks by byte range.
 *
 * Owns: the WEIR_OP_SOURCE_FILE operator and its pure helpers (file list, split range, line
 * reader, split reader; connectors/file/file.h). Rate limiting: connectors/common/pacing.h.
 * Split rule: a file of S bytes gives subtask i of p the range [i*S/p, (i+1)*S/p). A line belongs
 * to the subtask whose range contains the line's first byte (offset 0 or the byte after a '\n').
 * So a reader whose range starts at b > 0 skips to just after the first '\n' at or after b-1, and
 * reads lines while their first byte is < end, the last one possibly past end. Every line is read
 * by exactly one subtask. Lines are emitted without '\n' (and without a '\r' before it) as msgpack
 * str values with an empty key and the wall clock as timestamp.
 * Position (snapshot): [file index, byte offset of the next line to read in that file], where
 * offset 0 means "the file's split from its start"; a restore reopens the split there. Offsets
 * are line starts, so the reader's skip rule lands exactly on them. A restore at another
 * parallelism p' hands each old split (its id, the first start's parallelism P, its position)
 * whole to new subtask id mod p' (weir_file_splits_t), which reads its splits one after the
 * other; its position is then [P, [[split, file index, offset], ...]].
 * Event time: split i of the subtask's list is watermark split i, registered when its first line
 * is emitted and done when the next one starts (splits are read one after the other); the
 * timestamps are the wall clock, so a restore needs no stored maximum (docs/event-time.md).
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
#include "connectors/common/pacing.h"
#include "connectors/file/file.h"

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
        if (weir_array_grow((void **)&list, &cap, cnt + 1, sizeof(*list), 16) != 0) {
            free(full);
            errno = ENOMEM;
            goto fail_errno;
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
    if (r->wpos == r->cap && weir_array_grow((void **)&r->buf, &r->cap, r->cap + 1, 1, 16) != 0) {
        errno = ENOMEM;
        return WEIR_EIO;
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
/* Split reader: the subtask's splits of every file, with a resumable position             */
/* ---------------------------------------------------------------------------------------- */

void weir__split_reader_init(weir_split_reader_t *sr, char *const *files, size_t n_files,
                             uint32_t subtask, uint32_t parallelism) {
    memset(sr, 0, sizeof(*sr));
    sr->files = files;
    sr->n_files = n_files;
    sr->subtask = subtask;
    sr->parallelism = parallelism ? parallelism : 1;
    sr->r.fd = -1;
}

/* Opens file sr->cur's split (from sr->resume_off when later). @returns 0 or < 0. */
static int split_open(weir_split_reader_t *sr) {
    const char *f = sr->files[sr->cur];
    uint64_t resume = sr->resume_off;
    sr->cur++;
    sr->resume_off = 0;
    struct stat st;
    int rc;
    if (stat(f, &st) != 0) {
        rc = errno == ENOENT ? WEIR_ENOTFOUND : WEIR_EIO;
    } else {
        uint64_t start, end;
        weir__split_range((uint64_t)st.st_size, sr->subtask, sr->parallelism, &start, &end);
        /* resume is a line start of this split (or 0): opening there lands exactly on it. */
        rc = weir__line_reader_open(&sr->r, f, resume > start ? resume : start, end,
                                    FILE_SOURCE_BUF);
    }
    if (rc != 0) {
        weir_fmt(sr->errmsg, sizeof(sr->errmsg), "cannot read input '%s': %s", f, strerror(errno));
        weir__line_reader_close(&sr->r);
        return rc;
    }
    sr->reading = true;
    return 0;
}

int weir__split_reader_next(weir_split_reader_t *sr, const char **line, size_t *len) {
    for (;;) {
        if (!sr->reading) {
            if (sr->cur >= sr->n_files)
                return 0;
            int rc = split_open(sr);
            if (rc != 0)
                return rc;
        }
        int rc = weir__line_reader_next(&sr->r, line, len);
        if (rc < 0) {
            weir_fmt(sr->errmsg, sizeof(sr->errmsg), "cannot read input '%s': %s",
                     sr->files[sr->cur - 1], strerror(errno));
            return rc;
        }
        if (rc == 1)
            return 1;
        weir__line_reader_close(&sr->r);
        sr->reading = false;
    }
}

void weir__split_reader_position(const weir_split_reader_t *sr, uint64_t *file_index,
                                 uint64_t *offset) {
    if (sr->reading) {
        *file_index = sr->cur - 1;
        *offset = sr->r.off; /* start of the next line (or the split's end) */
    } else {
        *file_index = sr->cur;
        *offset = sr->resume_off;
    }
}

void weir__split_reader_seek(weir_split_reader_t *sr, uint64_t file_index, uint64_t offset) {
    weir__line_reader_close(&sr->r);
    sr->reading = false;
    sr->cur = file_index < sr->n_files ? (size_t)file_index : sr->n_files;
    sr->resume_off = offset;
}

void weir__split_reader_close(weir_split_reader_t *sr) {
    weir__line_reader_close(&sr->r);
    sr->reading = false;
}

/* ---------------------------------------------------------------------------------------- */
/* The splits of a subtask (positions, rescaling)                                           */
/* ---------------------------------------------------------------------------------------- */

static void fsplits_add(weir_file_splits_t *fs, uint32_t id, uint64_t file, uint64_t off) {
    if (weir_array_grow((void **)&fs->v, &fs->cap, fs->n + 1, sizeof(*fs->v), 4) != 0)
        abort();
    size_t i = fs->n;
    while (i > 0 && fs->v[i - 1].id > id) /* keep ascending ids */
        i--;
    memmove(&fs->v[i + 1], &fs->v[i], (fs->n - i) * sizeof(*fs->v));
    fs->v[i] = (weir_file_split_t){.id = id, .file = file, .off = off};
    fs->n++;
}

void weir__file_splits_free(weir_file_splits_t *fs) {
    weir__split_reader_close(&fs->sr);
    free(fs->v);
    memset(fs, 0, sizeof(*fs));
    fs->sr.r.fd = -1;
}

void weir__file_splits_init(weir_file_splits_t *fs, uint32_t subtask, uint32_t parallelism) {
    weir__file_splits_free(fs);
    fs->parallelism = parallelism ? parallelism : 1;
    fsplits_add(fs, subtask, 0, 0);
}

static bool obj_u64(const msgpack_object *o, uint64_t *v) {
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return false;
    *v = o->via.u64;
    return true;
}

/* Adds the splits of old subtask @p old (of @p old_p) that go to @p subtask of @p p. */
static int fsplits_restore_one(weir_file_splits_t *fs, const msgpack_object *st, uint32_t old,
                               uint32_t old_p, uint32_t subtask, uint32_t p, char *errstr,
                               size_t errlen) {
    const msgpack_object *a = st->via.array.ptr;
    uint64_t file, off, par, id;
    if (st->type == MSGPACK_OBJECT_ARRAY && st->via.array.size == 2 && obj_u64(&a[0], &file) &&
        obj_u64(&a[1], &off)) {
        /* [file, offset]: the own split of old subtask `old` at its parallelism */
        if (fs->parallelism && fs->parallelism != old_p)
            return weir_errf(errstr, errlen, WEIR_ECORRUPT,
                             "old subtask %u's splits are of parallelism %u, another one's of %u",
                             old, old_p, fs->parallelism);
        fs->parallelism = old_p;
        if (old % p == subtask)
            fsplits_add(fs, old, file, off);
        return 0;
    }
    if (st->type != MSGPACK_OBJECT_ARRAY || st->via.array.size != 2 || !obj_u64(&a[0], &par) ||
        par == 0 || par > UINT32_MAX || a[1].type != MSGPACK_OBJECT_ARRAY)
        return weir_errf(errstr, errlen, WEIR_ECORRUPT,
                         "old subtask %u's position is neither [file, offset] nor [parallelism, "
                         "[[split, file, offset], ...]]",
                         old);
    if (fs->parallelism && fs->parallelism != par)
        return weir_errf(errstr, errlen, WEIR_ECORRUPT,
                         "old subtask %u's splits are of parallelism %llu, another one's of %u",
                         old, (unsigned long long)par, fs->parallelism);
    fs->parallelism = (uint32_t)par;
    for (uint32_t i = 0; i < a[1].via.array.size; i++) {
        const msgpack_object *e = &a[1].via.array.ptr[i];
        if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 3 ||
            !obj_u64(&e->via.array.ptr[0], &id) || !obj_u64(&e->via.array.ptr[1], &file) ||
            !obj_u64(&e->via.array.ptr[2], &off) || id >= par)
            return weir_errf(errstr, errlen, WEIR_ECORRUPT,
                             "old subtask %u's split %u is not [split < parallelism, file, offset]",
                             old, i);
        if (id % p == subtask)
            fsplits_add(fs, (uint32_t)id, file, off);
    }
    return 0;
}

int weir__file_splits_restore(weir_file_splits_t *fs, const weir_op_restore_t *r, uint32_t subtask,
                              uint32_t parallelism, char *errstr, size_t errlen) {
    weir__file_splits_free(fs);
    uint32_t p = parallelism ? parallelism : 1;
    int rc = 0;
    for (uint32_t i = 0; i < r->n && rc == 0; i++)
        rc = fsplits_restore_one(fs, &r->states[i], r->old_subtask[i], r->old_parallelism, subtask,
                                 p, errstr, errlen);
    for (size_t i = 1; i < fs->n && rc == 0; i++)
        if (fs->v[i].id == fs->v[i - 1].id)
            rc = weir_errf(errstr, errlen, WEIR_ECORRUPT, "split %u is held by two old subtasks",
                           fs->v[i].id);
    if (rc != 0)
        weir__file_splits_free(fs);
    return rc;
}

int weir__file_splits_start(weir_file_splits_t *fs, char *const *files, size_t n_files,
                            uint64_t *bad_file) {
    for (size_t i = 0; i < fs->n; i++)
        if (fs->v[i].file > n_files) {
            *bad_file = fs->v[i].file;
            return WEIR_ECORRUPT;
        }
    fs->files = files;
    fs->n_files = n_files;
    fs->cur = 0;
    return 0;
}

int weir__file_splits_next(weir_file_splits_t *fs, const char **line, size_t *len) {
    while (fs->cur < fs->n) {
        weir_file_split_t *sp = &fs->v[fs->cur];
        if (!fs->reading) {
            weir__split_reader_init(&fs->sr, fs->files, fs->n_files, sp->id, fs->parallelism);
            weir__split_reader_seek(&fs->sr, sp->file, sp->off);
            fs->reading = true;
        }
        int rc = weir__split_reader_next(&fs->sr, line, len);
        if (rc != 0)
            return rc;
        /* this split is read: it stays finished */
        weir__split_reader_close(&fs->sr);
        fs->reading = false;
        sp->file = fs->n_files;
        sp->off = 0;
        fs->cur++;
    }
    return 0;
}

void weir__file_splits_pack(msgpack_packer *pk, const weir_file_splits_t *fs, uint32_t subtask,
                            uint32_t parallelism) {
    bool canonical = fs->n == 1 && fs->v[0].id == subtask && fs->parallelism == parallelism;
    if (!canonical) {
        msgpack_pack_array(pk, 2);
        msgpack_pack_uint32(pk, fs->parallelism);
        msgpack_pack_array(pk, fs->n);
    }
    for (size_t i = 0; i < fs->n; i++) {
        uint64_t file = fs->v[i].file, off = fs->v[i].off;
        if (fs->reading && i == fs->cur)
            weir__split_reader_position(&fs->sr, &file, &off);
        msgpack_pack_array(pk, canonical ? 2 : 3);
        if (!canonical)
            msgpack_pack_uint32(pk, fs->v[i].id);
        msgpack_pack_uint64(pk, file);
        msgpack_pack_uint64(pk, off);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Operator                                                                                 */
/* ---------------------------------------------------------------------------------------- */

typedef struct weir_file_source {
    char **files;
    size_t n_files;
    weir_file_splits_t splits;
    weir_rate_t rate;
    size_t wm_split; /* event time: the split whose records are being emitted (SIZE_MAX: none) */
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
    uint64_t bad;
    if (weir__file_splits_start(&s->splits, s->files, s->n_files, &bad) != 0) {
        weir_fail(ctx,
                  "file source '%s': the checkpoint's position (file %llu) is past the %zu "
                  "input files of '%s'; was the input changed?",
                  n->name, (unsigned long long)bad, s->n_files, path);
        return WEIR_ECORRUPT;
    }
    weir__rate_init(&s->rate, n->rate, op->parallelism);
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
        const char *line;
        size_t len;
        int rc = weir__file_splits_next(&s->splits, &line, &len);
        if (rc < 0) {
            weir_fail(ctx, "file source '%s': %s", op->node->name, s->splits.sr.errmsg);
            return rc;
        }
        if (rc == 0) {
            weir__rate_note(&s->rate, emitted);
            return WEIR_SOURCE_END;
        }
        if (s->splits.cur != s->wm_split) { /* event time: a split ended, the next began */
            if (s->wm_split != SIZE_MAX)
                weir_source_split_done(ctx, (uint32_t)s->wm_split);
            s->wm_split = s->splits.cur;
            weir_source_split(ctx, (uint32_t)s->wm_split);
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

/* Position: weir__file_splits_pack ([file index, offset] for a subtask reading its own split). */
static int fsrc_snapshot(weir_operator_t *op, weir_ctx_t *ctx, uint64_t checkpoint_id,
                         msgpack_packer *pk) {
    weir_file_source_t *s = op->impl;
    (void)ctx;
    (void)checkpoint_id;
    weir__file_splits_pack(pk, &s->splits, op->subtask, op->parallelism);
    return 0;
}

static int fsrc_restore(weir_operator_t *op, weir_ctx_t *ctx, const weir_op_restore_t *r) {
    weir_file_source_t *s = op->impl;
    char err[256];
    if (weir__file_splits_restore(&s->splits, r, op->subtask, op->parallelism, err, sizeof(err)) !=
        0) {
        weir_fail(ctx, "file source '%s': malformed position in the checkpoint state: %s",
                  op->node->name, err);
        return WEIR_ECORRUPT;
    }
    return 0;
}

static void fsrc_close(weir_operator_t *op) {
    weir_file_source_t *s = op->impl;
    if (!s)
        return;
    weir__file_splits_free(&s->splits);
    weir__file_list_free(s->files, s->n_files);
    free(s);
    op->impl = NULL;
}

static const weir_operator_vt_t file_source_vt = {.open = fsrc_open,
                                                  .run = fsrc_run,
                                                  .close = fsrc_close,
                                                  .snapshot = fsrc_snapshot,
                                                  .restore = fsrc_restore};

int weir__file_source_create(weir_operator_t *op, char *errstr, size_t errlen) {
    weir_file_source_t *s = calloc(1, sizeof(*s));
    if (!s) {
        weir_fmt(errstr, errlen, "file source '%s': out of memory", op->node->name);
        return WEIR_ENOMEM;
    }
    s->splits.sr.r.fd = -1;
    s->wm_split = SIZE_MAX;
    /* A fresh start's split; a restore replaces it. */
    weir__file_splits_init(&s->splits, op->subtask, op->parallelism);
    op->impl = s;
    op->vt = &file_source_vt;
    return 0;
}
