/* File sink: one line per record into part files of a directory, exactly once with checkpoints
 * (two-phase commit through connectors/common/twophase.h; rules in docs/checkpointing.md and
 * connectors/README.md, section "File sink part files").
 *
 * Owns: the WEIR_OP_SINK_FILE operator, the sink's identity (uuid from job id and operator), the
 * part writer with its attempt fence, and the file 2PC sink (the part writer driven by the 2PC
 * helper; connectors/file/file.h).
 * Files of subtask s of sink U (the uuid) written by attempt a, relative to the directory:
 * `.part-U-s-k.a<a>.inprogress` while written, `.part-U-s-k.a<a>.pending` once pre-committed
 * (flushed, fsynced, renamed; at a checkpoint barrier, at end of input, or when a file exceeds
 * 128 MiB), `part-U-s-k` once committed (the checkpoint that lists it is complete, or, without
 * checkpointing, at close after end of input); `.fence-U-s.a<a>` while attempt a holds the
 * fence of (U, s). Hidden names start with '.' so readers of the directory see committed files
 * only. k counts from 0 per subtask, continues from a restored checkpoint and skips every k
 * already committed in the directory. Every rename and delete is followed by an fsync of the
 * directory.
 * Invariants: one open file at most; files are created with O_EXCL (never by truncating); no
 * rename replaces an existing name (RENAME_NOREPLACE, or link + unlink where the filesystem
 * lacks it); a part file is committed only after the checkpoint that lists it completed; commit
 * is idempotent (pending gone + final present with the handle's size = done); restore and fresh
 * start delete only in-progress/pending files of this uuid and subtask written by OLDER attempts
 * and not listed in the restored checkpoint; before every create, rename or delete the writer
 * checks that its fence file still exists, and once it is gone (a newer attempt started) it
 * renames and deletes nothing but its own open in-progress file.
 * Line text: msgpack str/bin values as is, other values as JSON-like text
 * (connectors/common/valuefmt.h).
 * Threading: an operator instance runs on its subtask thread only. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "connectors/common/valuefmt.h"
#include "connectors/file/file.h"

#define COMP "file-sink"
#define PART_IOBUF (1u << 20)
/* Capacity of a name of this sink: ".part-" + uuid (36) + "-" + s (10) + "-" + k (20) + ".a" +
 * attempt (10) + ".inprogress" = 97 bytes at most. */
#define NAME_CAP 128

/* ---------------------------------------------------------------------------------------- */
/* Identity and names                                                                       */
/* ---------------------------------------------------------------------------------------- */

void weir__part_sink_uuid(const char *job_id, const char *uid, uint32_t node_id, char out[37]) {
    char node[16];
    weir_fmt(node, sizeof(node), "%u", node_id);
    const char *tag = uid ? "uid" : "node", *ident = uid ? uid : node;
    size_t cap = strlen(job_id) + strlen(ident) + 32;
    char *in = weir_xcalloc(cap, 1); /* small, bounded by the uid's length */
    int len = weir_fmt(in, cap, "weir-file-sink:%s:%s:%s", job_id, tag, ident);
    char hex[65];
    weir_sha256_hex(in, (size_t)len, hex);
    free(in);
    uint8_t b[16];
    (void)weir_hex_decode(hex, b, sizeof(b)); /* 64 valid hex digits */
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x80);   /* version 8 (RFC 9562: custom) */
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);   /* variant 10 */
    char h[33];
    weir_hex_encode(b, sizeof(b), h);
    weir_fmt(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", h, h + 8, h + 12, h + 16, h + 20);
}

static bool uuid_ok(const char *u) {
    size_t n = strlen(u);
    if (n == 0 || n > 36)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((u[i] >= '0' && u[i] <= '9') || (u[i] >= 'a' && u[i] <= 'z') || u[i] == '-'))
            return false;
    return true;
}

void weir__part_names(const weir_part_id_t *id, uint64_t k, char *pending, char *final,
                      size_t cap) {
    if (pending)
        weir_fmt(pending, cap, ".part-%s-%u-%llu.a%u.pending", id->uuid, id->subtask,
                 (unsigned long long)k, id->attempt);
    if (final)
        weir_fmt(final, cap, "part-%s-%u-%llu", id->uuid, id->subtask, (unsigned long long)k);
}

static void path_of(const weir_part_writer_t *w, const char *name, char *out, size_t cap) {
    weir_fmt(out, cap, "%s/%s", w->dir, name);
}

/* Parses a canonical decimal number (digits, no sign, no leading zero) at *p and advances *p. */
static bool parse_dec(const char **p, uint64_t max, uint64_t *v) {
    const char *s = *p;
    if (*s < '0' || *s > '9' || (s[0] == '0' && s[1] >= '0' && s[1] <= '9'))
        return false;
    uint64_t x = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        uint64_t d = (uint64_t)(*s - '0');
        if (x > (max - d) / 10)
            return false;
        x = x * 10 + d;
    }
    *p = s;
    *v = x;
    return true;
}

typedef enum name_kind { NAME_OTHER, NAME_LINGERING, NAME_FINAL, NAME_FENCE } name_kind_t;

/* The prefixes of one identity's names: `.part-U-s-` (its final names are the same without
 * the dot) and `.fence-U-s.a`. */
typedef struct name_prefixes {
    char part[NAME_CAP];
    size_t part_len;
    char fence[NAME_CAP];
    size_t fence_len;
} name_prefixes_t;

static void prefixes_init(name_prefixes_t *px, const weir_part_id_t *id) {
    px->part_len =
        (size_t)weir_fmt(px->part, sizeof(px->part), ".part-%s-%u-", id->uuid, id->subtask);
    px->fence_len =
        (size_t)weir_fmt(px->fence, sizeof(px->fence), ".fence-%s-%u.a", id->uuid, id->subtask);
}

/* What @p name is for the identity of @p px, exactly as this file writes names (anything else,
 * e.g. another uuid or subtask, or a name it never produces, is NAME_OTHER): an in-progress or
 * pending file (*k, *attempt), a final file (*k) or a fence (*attempt). */
static name_kind_t name_classify(const name_prefixes_t *px, const char *name, uint64_t *k,
                                 uint64_t *attempt) {
    const char *p;
    if (strncmp(name, px->part, px->part_len) == 0) {
        p = name + px->part_len;
        if (!parse_dec(&p, UINT64_MAX, k) || strncmp(p, ".a", 2) != 0)
            return NAME_OTHER;
        p += 2;
        if (!parse_dec(&p, UINT32_MAX, attempt))
            return NAME_OTHER;
        return strcmp(p, ".inprogress") == 0 || strcmp(p, ".pending") == 0 ? NAME_LINGERING
                                                                           : NAME_OTHER;
    }
    if (strncmp(name, px->part + 1, px->part_len - 1) == 0) {
        p = name + px->part_len - 1;
        return parse_dec(&p, UINT64_MAX, k) && *p == 0 ? NAME_FINAL : NAME_OTHER;
    }
    if (strncmp(name, px->fence, px->fence_len) == 0) {
        p = name + px->fence_len;
        return parse_dec(&p, UINT32_MAX, attempt) && *p == 0 ? NAME_FENCE : NAME_OTHER;
    }
    return NAME_OTHER;
}

/* ---------------------------------------------------------------------------------------- */
/* Part writer                                                                              */
/* ---------------------------------------------------------------------------------------- */

static int writer_error(weir_part_writer_t *w, const char *what, const char *path) {
    weir_fmt(w->errmsg, sizeof(w->errmsg), "cannot %s '%s': %s", what, path, strerror(errno));
    return WEIR_EIO;
}

/* Makes creations, renames and removals inside the directory durable. */
static int sync_dir(weir_part_writer_t *w) {
    return weir_fsync_dir(w->dir) == 0 ? 0 : writer_error(w, "fsync directory", w->dir);
}

int weir__part_fence_check(weir_part_writer_t *w) {
    if (!w->fenced) {
        if (access(w->fence, F_OK) == 0)
            return 0;
        if (errno != ENOENT)
            return writer_error(w, "check fence file", w->fence);
        w->fenced = true;
    }
    weir_fmt(w->errmsg, sizeof(w->errmsg),
             "attempt %u is fenced: its fence file '%s' is gone, so a newer attempt of this job "
             "started; it renames and deletes nothing more",
             w->id.attempt, w->fence);
    return WEIR_ECANCELED;
}

/* Takes the fence of (uuid, subtask) for this attempt. Create, then scan: of two attempts
 * starting together, either this scan sees the newer one's fence, or the newer one's scan (which
 * follows its creation, hence ours) sees ours and deletes it; so an older attempt never goes on
 * unfenced past the first check that follows a newer attempt's start. */
static int fence_take(weir_part_writer_t *w, char *errstr, size_t errlen) {
    name_prefixes_t px;
    prefixes_init(&px, &w->id);
    char own[NAME_CAP];
    weir_fmt(own, sizeof(own), "%s%u", px.fence, w->id.attempt);
    path_of(w, own, w->fence, sizeof(w->fence));
    int fd = open(w->fence, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 && errno == EEXIST)
        return weir_errf(errstr, errlen, WEIR_EEXIST,
                         "fence file '%s' already exists: attempt %u of this sink subtask was "
                         "started twice",
                         w->fence, w->id.attempt);
    if (fd < 0)
        return weir_errf(errstr, errlen, WEIR_EIO, "cannot create fence file '%s': %s", w->fence,
                         strerror(errno));
    close(fd);
    if (weir_fsync_dir(w->dir) != 0)
        return weir_errf(errstr, errlen, WEIR_EIO, "cannot fsync directory '%s': %s", w->dir,
                         strerror(errno));
    DIR *d = opendir(w->dir);
    if (!d)
        return weir_errf(errstr, errlen, WEIR_EIO, "cannot list directory '%s': %s", w->dir,
                         strerror(errno));
    uint64_t newest = w->id.attempt, k, a;
    size_t revoked = 0;
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (name_classify(&px, de->d_name, &k, &a) != NAME_FENCE || a == w->id.attempt)
            continue;
        if (a > newest) {
            newest = a;
        } else if (a < w->id.attempt) {
            char path[4096];
            path_of(w, de->d_name, path, sizeof(path));
            if (unlink(path) != 0 && errno != ENOENT)
                rc = weir_errf(errstr, errlen, WEIR_EIO, "cannot delete fence file '%s': %s", path,
                               strerror(errno));
            revoked++;
        }
    }
    closedir(d);
    if (rc == 0 && newest > w->id.attempt) {
        (void)unlink(w->fence); /* superseded before it began: leave no fence behind */
        w->fenced = true;
        rc =
            weir_errf(errstr, errlen, WEIR_ECANCELED,
                      "attempt %u of file sink %s subtask %u is superseded by attempt %llu "
                      "(whose fence file is in '%s'): it writes, renames and deletes nothing",
                      w->id.attempt, w->id.uuid, w->id.subtask, (unsigned long long)newest, w->dir);
    }
    if ((revoked > 0 || newest > w->id.attempt) && weir_fsync_dir(w->dir) != 0 && rc == 0)
        rc = weir_errf(errstr, errlen, WEIR_EIO, "cannot fsync directory '%s': %s", w->dir,
                       strerror(errno));
    if (rc == 0 && revoked > 0)
        WEIR_INFO(COMP,
                  "file sink %s subtask %u attempt %u fenced out %zu older attempt(s) in '%s'",
                  w->id.uuid, w->id.subtask, w->id.attempt, revoked, w->dir);
    return rc;
}

int weir__part_writer_init(weir_part_writer_t *w, const char *dir, const weir_part_id_t *id,
                           uint64_t roll_bytes, char *errstr, size_t errlen) {
    memset(w, 0, sizeof(*w));
    if (!uuid_ok(id->uuid))
        return weir_errf(errstr, errlen, WEIR_EINVAL,
                         "bad file sink id '%s': expected 1 to 36 characters of [0-9a-z-]",
                         id->uuid);
    if (weir_mkdirs(dir) != 0)
        return weir_errf(errstr, errlen, WEIR_EIO, "cannot create output directory '%s': %s", dir,
                         strerror(errno));
    w->dir = strdup(dir);
    if (!w->dir)
        return weir_errf(errstr, errlen, WEIR_ENOMEM, "out of memory");
    w->id = *id;
    w->roll_bytes = roll_bytes;
    int rc = fence_take(w, errstr, errlen);
    if (rc != 0) {
        free(w->dir);
        w->dir = NULL;
    }
    return rc;
}

static int writer_open(weir_part_writer_t *w) {
    int rc = weir__part_fence_check(w);
    if (rc != 0)
        return rc;
    char name[NAME_CAP];
    weir_fmt(name, sizeof(name), ".part-%s-%u-%llu.a%u.inprogress", w->id.uuid, w->id.subtask,
             (unsigned long long)w->n, w->id.attempt);
    path_of(w, name, w->cur, sizeof(w->cur));
    int fd = open(w->cur, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return writer_error(w, "create", w->cur);
    w->f = fdopen(fd, "w"); /* never truncates */
    if (!w->f) {
        rc = writer_error(w, "open", w->cur);
        close(fd);
        (void)unlink(w->cur); /* our own, empty */
        return rc;
    }
    if (!w->iobuf)
        w->iobuf = malloc(PART_IOBUF);
    if (w->iobuf)
        setvbuf(w->f, w->iobuf, _IOFBF, PART_IOBUF);
    w->written = 0;
    return 0;
}

/* Renames @p src to @p dst only when @p dst does not exist: renameat2(RENAME_NOREPLACE), or,
 * where the filesystem refuses that flag (NFS, some FUSE), link + unlink, which is just as
 * atomic about the target (link fails with EEXIST); a crash between the two leaves both names
 * on one file, which weir__part_commit recognises. @returns 0 or -1 with errno. */
static int rename_noreplace(weir_part_writer_t *w, const char *src, const char *dst) {
    if (!w->link_rename) {
        if (renameat2(AT_FDCWD, src, AT_FDCWD, dst, RENAME_NOREPLACE) == 0)
            return 0;
        if (errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
            return -1;
        w->link_rename = true;
        WEIR_INFO(COMP, "'%s' does not support RENAME_NOREPLACE: committing by link + unlink",
                  w->dir);
    }
    if (link(src, dst) != 0)
        return -1;
    return unlink(src);
}

static int rename_error(weir_part_writer_t *w, const char *src, const char *dst) {
    if (errno == EEXIST)
        weir_fmt(w->errmsg, sizeof(w->errmsg),
                 "cannot rename '%s': '%s' already exists and was not written by this attempt "
                 "(another job, sink or attempt?); nothing was replaced",
                 src, dst);
    else
        weir_fmt(w->errmsg, sizeof(w->errmsg), "cannot rename '%s' to '%s': %s", src, dst,
                 strerror(errno));
    return errno == EEXIST ? WEIR_EEXIST : WEIR_EIO;
}

/* Makes the open part file durable (flush, fsync, close), renames it to @p target (never over
 * an existing name) and makes the rename durable (fsync of the directory). A fenced writer
 * deletes its in-progress file instead (it is its own and no checkpoint lists it). */
static int close_and_rename(weir_part_writer_t *w, const char *target) {
    int rc = 0;
    if (fflush(w->f) != 0 || fsync(fileno(w->f)) != 0)
        rc = writer_error(w, "write", w->cur);
    if (fclose(w->f) != 0 && rc == 0)
        rc = writer_error(w, "write", w->cur);
    w->f = NULL;
    if (rc != 0)
        return rc;
    rc = weir__part_fence_check(w);
    if (rc == WEIR_ECANCELED)
        (void)unlink(w->cur);
    if (rc != 0)
        return rc;
    if (rename_noreplace(w, w->cur, target) != 0)
        return rename_error(w, w->cur, target);
    return sync_dir(w);
}

int weir__part_writer_finish(weir_part_writer_t *w) {
    if (!w->f)
        return 0;
    char name[NAME_CAP], final[4096];
    weir__part_names(&w->id, w->n, NULL, name, sizeof(name));
    path_of(w, name, final, sizeof(final));
    int rc = close_and_rename(w, final);
    if (rc != 0)
        return rc;
    w->n++;
    return 0;
}

int weir__part_writer_line(weir_part_writer_t *w, const void *data, size_t len) {
    if (!w->f) {
        int rc = writer_open(w);
        if (rc != 0)
            return rc;
    }
    if ((len > 0 && fwrite(data, 1, len, w->f) != len) || putc('\n', w->f) == EOF)
        return writer_error(w, "write", w->cur);
    w->written += len + 1;
    if (w->written > w->roll_bytes)
        return weir__part_writer_finish(w);
    return 0;
}

void weir__part_writer_abort(weir_part_writer_t *w) {
    if (!w->f)
        return;
    fclose(w->f);
    w->f = NULL;
    (void)unlink(w->cur); /* our own in-progress file (its name carries our attempt) */
}

int weir__part_writer_release(weir_part_writer_t *w) {
    if (w->fenced || !w->dir)
        return 0; /* the fence is a newer attempt's business now */
    if (unlink(w->fence) != 0 && errno != ENOENT)
        return writer_error(w, "delete fence file", w->fence);
    w->fenced = true;
    return sync_dir(w);
}

void weir__part_writer_destroy(weir_part_writer_t *w) {
    weir__part_writer_abort(w);
    free(w->iobuf);
    w->iobuf = NULL;
    free(w->dir);
    w->dir = NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Two-phase-commit steps                                                                   */
/* ---------------------------------------------------------------------------------------- */

int weir__part_writer_begin(weir_part_writer_t *w) {
    if (w->f)
        return 0;
    return writer_open(w);
}

int weir__part_writer_precommit(weir_part_writer_t *w, uint64_t *k, uint64_t *size) {
    if (!w->f) {
        weir_fmt(w->errmsg, sizeof(w->errmsg), "no open part file in '%s' to pre-commit", w->dir);
        return WEIR_EINVAL;
    }
    char name[NAME_CAP], pending[4096];
    weir__part_names(&w->id, w->n, name, NULL, sizeof(name));
    path_of(w, name, pending, sizeof(pending));
    int rc = close_and_rename(w, pending);
    if (rc != 0)
        return rc;
    *k = w->n;
    *size = w->written;
    w->n++;
    return 0;
}

int weir__part_commit(weir_part_writer_t *w, const char *pending, const char *final,
                      uint64_t size) {
    int rc = weir__part_fence_check(w);
    if (rc != 0)
        return rc;
    char src[4096], dst[4096];
    path_of(w, pending, src, sizeof(src));
    path_of(w, final, dst, sizeof(dst));
    if (rename_noreplace(w, src, dst) == 0) {
        rc = sync_dir(w);
        return rc == 0 ? 1 : rc;
    }
    struct stat a, b;
    if (errno == EEXIST) {
        if (stat(src, &a) == 0 && stat(dst, &b) == 0 && a.st_dev == b.st_dev &&
            a.st_ino == b.st_ino) {
            /* A link + unlink commit interrupted after the link: finish it. */
            if (unlink(src) != 0 && errno != ENOENT)
                return writer_error(w, "delete the pending name of committed", src);
            rc = sync_dir(w);
            return rc;
        }
        errno = EEXIST;
        return rename_error(w, src, dst);
    }
    if (errno != ENOENT)
        return rename_error(w, src, dst);
    if (stat(dst, &b) == 0) {
        if ((uint64_t)b.st_size == size)
            return 0; /* committed before (a restore, a repeated notify or a racing attempt) */
        weir_fmt(w->errmsg, sizeof(w->errmsg),
                 "cannot commit part file '%s': it is gone and '%s' holds %lld bytes, not the "
                 "%llu of this transaction (was the directory changed behind the job?)",
                 src, dst, (long long)b.st_size, (unsigned long long)size);
        return WEIR_EEXIST;
    }
    weir_fmt(w->errmsg, sizeof(w->errmsg),
             "cannot commit part file '%s': neither it nor '%s' exists; the output of a "
             "completed checkpoint was lost (was the directory changed behind the job?)",
             src, dst);
    return WEIR_ENOTFOUND;
}

int weir__part_abort_lingering(weir_part_writer_t *w, const char *const *keep, size_t n_keep) {
    int rc = weir__part_fence_check(w);
    if (rc != 0)
        return rc;
    name_prefixes_t px;
    prefixes_init(&px, &w->id);
    DIR *d = opendir(w->dir);
    if (!d)
        return writer_error(w, "list directory", w->dir);
    size_t removed = 0;
    uint64_t next = 0, k, a;
    bool any_final = false;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        name_kind_t kind = name_classify(&px, de->d_name, &k, &a);
        if (kind == NAME_FINAL) {
            any_final = true;
            if (k >= next)
                next = k == UINT64_MAX ? k : k + 1;
            continue;
        }
        if (kind != NAME_LINGERING || a >= w->id.attempt)
            continue; /* not ours, or this or a newer attempt's */
        bool kept = false;
        for (size_t i = 0; i < n_keep && !kept; i++)
            kept = strcmp(keep[i], de->d_name) == 0;
        if (kept)
            continue;
        rc = weir__part_fence_check(w);
        if (rc != 0)
            break;
        char path[4096];
        path_of(w, de->d_name, path, sizeof(path));
        if (unlink(path) != 0 && errno != ENOENT)
            rc = writer_error(w, "delete lingering file", path);
        else
            removed++;
    }
    closedir(d);
    if (removed > 0) {
        WEIR_INFO(COMP,
                  "deleted %zu lingering uncommitted part files of older attempts of file sink %s "
                  "subtask %u in '%s'",
                  removed, w->id.uuid, w->id.subtask, w->dir);
        int src = sync_dir(w);
        if (rc == 0)
            rc = src;
    }
    if (rc == 0 && any_final && next > w->n) {
        WEIR_WARN(COMP,
                  "file sink %s subtask %u attempt %u: parts up to %llu are already committed "
                  "beyond the starting point (next part %llu): numbering continues at %llu and "
                  "never replaces them, so records replayed since may appear twice",
                  w->id.uuid, w->id.subtask, w->id.attempt, (unsigned long long)(next - 1),
                  (unsigned long long)w->n, (unsigned long long)next);
        w->n = next;
    }
    return rc;
}

/* ---- the 2PC callbacks (target = weir_file_2pc_t, txn = its part writer) ---------------- */

static int cb_begin(void *target, uint64_t epoch, void **txn) {
    weir_file_2pc_t *s = target;
    (void)epoch;
    *txn = &s->w;
    return weir__part_writer_begin(&s->w);
}

static int cb_precommit(void *target, void *txn, msgpack_packer *pk) {
    weir_file_2pc_t *s = target;
    (void)txn;
    uint64_t k, size;
    int rc = weir__part_writer_precommit(&s->w, &k, &size);
    if (rc != 0)
        return rc;
    char pending[NAME_CAP], final[NAME_CAP];
    weir__part_names(&s->w.id, k, pending, final, NAME_CAP);
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint64(pk, k);
    msgpack_pack_str_with_body(pk, pending, strlen(pending));
    msgpack_pack_str_with_body(pk, final, strlen(final));
    msgpack_pack_uint64(pk, size);
    return 0;
}

/* Copies a handle's name field: a plain file name (no '/'). */
static bool handle_name(const msgpack_object *o, char *out, size_t cap) {
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size == 0 || o->via.str.size >= cap)
        return false;
    memcpy(out, o->via.str.ptr, o->via.str.size);
    out[o->via.str.size] = 0;
    return strchr(out, '/') == NULL && strcmp(out, ".") != 0 && strcmp(out, "..") != 0;
}

/* A handle: [k, pending name, final name, size]. */
static bool handle_parse(const msgpack_object *h, uint64_t *k, char *pending, char *final,
                         size_t cap, uint64_t *size) {
    if (h->type != MSGPACK_OBJECT_ARRAY || h->via.array.size != 4)
        return false;
    const msgpack_object *f = h->via.array.ptr;
    if (f[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        f[3].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return false;
    *k = f[0].via.u64;
    *size = f[3].via.u64;
    return handle_name(&f[1], pending, cap) && handle_name(&f[2], final, cap);
}

static int cb_commit(void *target, const msgpack_object *handle) {
    weir_file_2pc_t *s = target;
    uint64_t k, size;
    char pending[256], final[256];
    if (!handle_parse(handle, &k, pending, final, sizeof(pending), &size)) {
        weir_fmt(s->w.errmsg, sizeof(s->w.errmsg),
                 "malformed pre-committed part file handle in the checkpoint state of '%s'",
                 s->w.dir);
        return WEIR_ECORRUPT;
    }
    int rc = weir__part_commit(&s->w, pending, final, size);
    if (rc < 0)
        return rc;
    if (rc == 1 && s->after_rename)
        s->after_rename(s->hook_arg);
    return 0;
}

static void cb_abort(void *target, void *txn) {
    weir_file_2pc_t *s = target;
    (void)txn;
    weir__part_writer_abort(&s->w);
}

static int cb_abort_lingering(void *target, const msgpack_object *keep, size_t n_keep) {
    weir_file_2pc_t *s = target;
    /* The pending names the restored checkpoint lists: never deleted. */
    char(*names)[256] = calloc(n_keep ? n_keep : 1, sizeof(*names));
    const char **keep_names = calloc(n_keep ? n_keep : 1, sizeof(*keep_names));
    if (!names || !keep_names) {
        free(names);
        free(keep_names);
        weir_fmt(s->w.errmsg, sizeof(s->w.errmsg), "out of memory");
        return WEIR_ENOMEM;
    }
    size_t n = 0;
    for (size_t i = 0; i < n_keep; i++) {
        uint64_t k, size;
        char final[256];
        if (handle_parse(&keep[i], &k, names[n], final, sizeof(final), &size)) {
            keep_names[n] = names[n];
            n++;
        }
    }
    int rc = weir__part_abort_lingering(&s->w, keep_names, n);
    free(keep_names);
    free(names);
    return rc;
}

static const weir_2pc_ops_t file_2pc_ops = {.begin = cb_begin,
                                            .precommit = cb_precommit,
                                            .commit = cb_commit,
                                            .abort = cb_abort,
                                            .abort_lingering = cb_abort_lingering};

/* ---- the pure sink ----------------------------------------------------------------------- */

static int fs_err(weir_file_2pc_t *s, int rc) {
    if (rc != 0 && s->w.errmsg[0] == 0)
        weir_fmt(s->w.errmsg, sizeof(s->w.errmsg), "part files in '%s': %s", s->w.dir,
                 weir_strerror(rc));
    return rc;
}

int weir__fsink_init(weir_file_2pc_t *s, const char *dir, const weir_part_id_t *id,
                     uint64_t roll_bytes, char *errstr, size_t errlen) {
    memset(s, 0, sizeof(*s));
    /* The writer never rolls by itself: rolling is a pre-commit, done here. */
    int rc = weir__part_writer_init(&s->w, dir, id, UINT64_MAX, errstr, errlen);
    if (rc != 0)
        return rc;
    s->real_dir = realpath(s->w.dir, NULL);
    if (!s->real_dir)
        s->real_dir = weir_xstrdup(s->w.dir);
    s->roll_bytes = roll_bytes;
    weir_2pc_init(&s->tp, &file_2pc_ops, s);
    return 0;
}

/* One old subtask's state, parsed: [next k, pending list] (earlier versions) or [next k,
 * pending list, uuid, attempt, directory]. A state without its identity is taken as written by
 * this sink (uuid, directory) in an older attempt of this job. */
typedef struct old_state {
    uint64_t next_k;
    const msgpack_object *list;
    weir_part_id_t id; /* uuid, old subtask, attempt (0: unknown, earlier versions) */
    char dir[4096];
} old_state_t;

static int old_state_parse(weir_file_2pc_t *s, const msgpack_object *st, uint32_t old,
                           old_state_t *o) {
    const msgpack_object *a = st->via.array.ptr;
    memset(o, 0, sizeof(*o));
    bool ok = st->type == MSGPACK_OBJECT_ARRAY &&
              (st->via.array.size == 2 || st->via.array.size == 5) &&
              a[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER;
    if (ok && st->via.array.size == 5)
        ok = a[2].type == MSGPACK_OBJECT_STR && a[2].via.str.size < sizeof(o->id.uuid) &&
             a[3].type == MSGPACK_OBJECT_POSITIVE_INTEGER && a[3].via.u64 <= UINT32_MAX &&
             a[4].type == MSGPACK_OBJECT_STR && a[4].via.str.size > 0 &&
             a[4].via.str.size < sizeof(o->dir) && a[4].via.str.ptr[0] == '/' &&
             !memchr(a[4].via.str.ptr, 0, a[4].via.str.size);
    if (ok && st->via.array.size == 5) {
        memcpy(o->id.uuid, a[2].via.str.ptr, a[2].via.str.size);
        ok = uuid_ok(o->id.uuid);
        o->id.attempt = (uint32_t)a[3].via.u64;
        memcpy(o->dir, a[4].via.str.ptr, a[4].via.str.size);
    } else if (ok) {
        weir_fmt(o->id.uuid, sizeof(o->id.uuid), "%s", s->w.id.uuid);
        weir_fmt(o->dir, sizeof(o->dir), "%s", s->real_dir);
    }
    if (!ok) {
        weir_fmt(s->w.errmsg, sizeof(s->w.errmsg),
                 "malformed checkpoint state of the part files of old subtask %u in '%s'", old,
                 s->w.dir);
        return WEIR_ECORRUPT;
    }
    o->next_k = a[0].via.u64;
    o->list = &a[1];
    o->id.subtask = old;
    return 0;
}

int weir__fsink_restore(weir_file_2pc_t *s, uint64_t checkpoint_id, const msgpack_object *state) {
    s->w.errmsg[0] = 0;
    if (!state || state->type == MSGPACK_OBJECT_NIL)
        return fs_err(s, weir_2pc_restore(&s->tp, checkpoint_id, NULL));
    old_state_t o;
    int rc = old_state_parse(s, state, s->w.id.subtask, &o);
    if (rc != 0)
        return rc;
    s->w.n = o.next_k;
    return fs_err(s, weir_2pc_restore(&s->tp, checkpoint_id, o.list));
}

/* A writer acting on another identity's files (@p id in @p dir) under this writer's fence: its
 * fence checks are this attempt's. It owns nothing (never destroyed); w->n is not touched. */
static weir_part_writer_t writer_view(const weir_part_writer_t *w, const char *dir,
                                      const weir_part_id_t *id) {
    weir_part_writer_t v = *w;
    v.dir = (char *)dir;
    v.id = *id;
    v.f = NULL;
    v.iobuf = NULL;
    v.n = UINT64_MAX; /* numbering is the own identity's business */
    v.errmsg[0] = 0;
    return v;
}

/* Takes over old subtask o's files: commits what its state lists (the checkpoint is complete),
 * then deletes its lingering files of attempts below o->id.attempt (the bound) not listed. */
static int take_over(weir_file_2pc_t *s, const old_state_t *o) {
    weir_part_writer_t v = writer_view(&s->w, o->dir, &o->id);
    int rc = 0;
    size_t n = o->list->type == MSGPACK_OBJECT_ARRAY ? o->list->via.array.size : 0;
    const char **keep = weir_xcalloc(n ? n : 1, sizeof(*keep));
    char(*names)[256] = weir_xcalloc(n ? n : 1, sizeof(*names));
    if (o->list->type != MSGPACK_OBJECT_ARRAY && o->list->type != MSGPACK_OBJECT_NIL) {
        weir_fmt(v.errmsg, sizeof(v.errmsg), "malformed pending list of old subtask %u",
                 o->id.subtask);
        rc = WEIR_ECORRUPT;
    }
    size_t committed = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const msgpack_object *e = &o->list->via.array.ptr[i];
        uint64_t k, size;
        char final[256];
        if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 2 ||
            e->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
            !handle_parse(&e->via.array.ptr[1], &k, names[i], final, sizeof(final), &size)) {
            weir_fmt(v.errmsg, sizeof(v.errmsg),
                     "malformed pre-committed part file handle of old subtask %u in the "
                     "checkpoint state of '%s'",
                     o->id.subtask, o->dir);
            rc = WEIR_ECORRUPT;
            break;
        }
        keep[i] = names[i];
        rc = weir__part_commit(&v, names[i], final, size);
        committed += rc == 1;
        rc = rc < 0 ? rc : 0;
    }
    if (rc == 0)
        rc = weir__part_abort_lingering(&v, keep, n);
    if (rc == 0 && (committed > 0 || n > 0))
        WEIR_INFO(COMP,
                  "file sink %s subtask %u attempt %u: took over old subtask %u of sink %s in "
                  "'%s': %zu listed part files committed (%zu renamed now)",
                  s->w.id.uuid, s->w.id.subtask, s->w.id.attempt, o->id.subtask, o->id.uuid, o->dir,
                  n, committed);
    s->w.fenced |= v.fenced;
    if (rc != 0)
        weir_fmt(s->w.errmsg, sizeof(s->w.errmsg), "%s", v.errmsg);
    free(names);
    free(keep);
    return rc;
}

int weir__fsink_restore_from(weir_file_2pc_t *s, const weir_op_restore_t *r, uint32_t parallelism) {
    s->w.errmsg[0] = 0;
    uint32_t k = s->w.id.subtask, p = parallelism ? parallelism : 1;
    uint32_t mine = 0, last = 0;
    for (uint32_t i = 0; i < r->n; i++)
        if (r->old_subtask[i] % p == k) {
            mine++;
            last = i;
        }
    old_state_t *o = weir_xcalloc(1, sizeof(*o));
    int rc = 0;
    /* Its own state of this job (whose sink writes to one directory for the job's life): the
     * restore of a failover. */
    if (mine == 1 && r->old_subtask[last] == k) {
        rc = old_state_parse(s, &r->states[last], k, o);
        if (rc == 0 && strcmp(o->id.uuid, s->w.id.uuid) == 0) {
            free(o);
            return weir__fsink_restore(s, r->checkpoint_id, &r->states[last]);
        }
    }
    /* Otherwise take over every old subtask of this subtask, then start the own files. */
    uint64_t next_k = 0;
    for (uint32_t i = 0; i < r->n && rc == 0; i++) {
        if (r->old_subtask[i] % p != k)
            continue;
        if ((rc = old_state_parse(s, &r->states[i], r->old_subtask[i], o)) != 0)
            break;
        bool same_job = strcmp(o->id.uuid, s->w.id.uuid) == 0;
        /* The bound of what is lingering: of this job, every attempt older than this one; of
         * another job (resumed from its savepoint; it may still run), only the attempts older
         * than the one that took the snapshot. The directory: this job's own, or the one the
         * other job's state names, unless that path does not exist here (another mount point
         * of a shared filesystem): its files carry their job's uuid, so they are looked for in
         * this sink's directory then, and never mistaken for another's. */
        if (same_job)
            o->id.attempt = s->w.id.attempt;
        if (same_job || access(o->dir, F_OK) != 0)
            weir_fmt(o->dir, sizeof(o->dir), "%s", s->w.dir);
        if (same_job && o->id.subtask == k && o->next_k > next_k)
            next_k = o->next_k;
        rc = take_over(s, o);
    }
    free(o);
    if (rc != 0)
        return fs_err(s, rc);
    s->w.n = next_k;
    return fs_err(s, weir_2pc_restore(&s->tp, r->checkpoint_id, NULL));
}

int weir__fsink_start_fresh(weir_file_2pc_t *s) {
    s->w.errmsg[0] = 0;
    return fs_err(s, weir_2pc_start_fresh(&s->tp));
}

int weir__fsink_line(weir_file_2pc_t *s, const void *data, size_t len) {
    void *txn;
    int rc = weir_2pc_txn(&s->tp, &txn);
    if (rc == 0)
        rc = weir__part_writer_line(&s->w, data, len);
    if (rc == 0 && s->w.written > s->roll_bytes)
        rc = weir_2pc_roll(&s->tp);
    return fs_err(s, rc);
}

int weir__fsink_snapshot(weir_file_2pc_t *s, uint64_t checkpoint_id, msgpack_packer *pk) {
    /* Pack [next k, pending list]: the list goes to a scratch buffer first so that pk receives
     * one whole object or nothing. */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer spk;
    msgpack_packer_init(&spk, &sb, msgpack_sbuffer_write);
    int rc = weir_2pc_snapshot(&s->tp, checkpoint_id, &spk);
    if (rc == 0) {
        msgpack_pack_array(pk, 5);
        msgpack_pack_uint64(pk, s->w.n);
        pk->callback(pk->data, sb.data, sb.size);
        msgpack_pack_str_with_body(pk, s->w.id.uuid, strlen(s->w.id.uuid));
        msgpack_pack_uint32(pk, s->w.id.attempt);
        msgpack_pack_str_with_body(pk, s->real_dir, strlen(s->real_dir));
    }
    msgpack_sbuffer_destroy(&sb);
    return fs_err(s, rc);
}

int weir__fsink_notify(weir_file_2pc_t *s, uint64_t checkpoint_id, bool final) {
    s->w.errmsg[0] = 0;
    int rc = weir_2pc_notify(&s->tp, checkpoint_id, final);
    if (rc == 0 && final)
        s->done = true;
    return fs_err(s, rc);
}

int weir__fsink_end_input(weir_file_2pc_t *s) {
    s->ended = true;
    weir_2pc_end_input(&s->tp);
    return fs_err(s, weir_2pc_roll(&s->tp));
}

int weir__fsink_close(weir_file_2pc_t *s) {
    int rc = 0;
    if (s->ended && !weir_2pc_checkpointing(&s->tp)) {
        rc = fs_err(s, weir_2pc_commit_all(&s->tp));
        if (rc != 0)
            WEIR_ERROR(COMP, "%s", s->w.errmsg);
        else
            s->done = true;
    }
    /* Everything this attempt will ever commit is committed: give up the fence, so that a
     * finished job leaves only its part files. Otherwise (cancel, failure, pending files left)
     * the fence stays for the next attempt to take over. */
    bool complete = s->done && !s->tp.has_txn && s->tp.n_pending == 0;
    weir_2pc_close(&s->tp); /* aborts the open file, if any */
    if (complete && weir__part_writer_release(&s->w) != 0)
        WEIR_WARN(COMP, "%s", s->w.errmsg);
    weir__part_writer_destroy(&s->w);
    free(s->real_dir);
    s->real_dir = NULL;
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Operator                                                                                 */
/* ---------------------------------------------------------------------------------------- */

typedef struct weir_file_sink {
    weir_file_2pc_t fs;
    weir_value_fmt_t fmt;
    bool ready;    /* fs initialised */
    bool restored; /* restore() ran: open() must not abort lingering files */
    bool failed;   /* weir_fail already called */
} weir_file_sink_t;

static void killpoint_hook(void *arg) {
    weir_ctx_killpoint(arg, "commit-after-rename");
}

static int fsink_fail(weir_operator_t *op, weir_ctx_t *ctx, int rc) {
    weir_file_sink_t *s = op->impl;
    s->failed = true;
    weir_fail(ctx, "file sink '%s': %s", op->node->name,
              s->fs.w.errmsg[0] ? s->fs.w.errmsg : weir_strerror(rc));
    return rc;
}

static int fsink_ready(weir_operator_t *op, weir_ctx_t *ctx) {
    weir_file_sink_t *s = op->impl;
    if (s->ready)
        return 0;
    char err[512];
    const char *dir = op->node->path ? op->node->path : "";
    /* The identity of this sink's files (job, operator, subtask) and the attempt that fences
     * older ones (connectors/README.md, "File sink part files"). */
    weir_part_id_t id = {.subtask = op->subtask, .attempt = weir_ctx_attempt(ctx)};
    weir__part_sink_uuid(weir_ctx_job_id(ctx), op->node->uid, op->node->id, id.uuid);
    int rc = weir__fsink_init(&s->fs, dir, &id, WEIR_PART_ROLL_BYTES, err, sizeof(err));
    if (rc != 0) {
        s->failed = true;
        weir_fail(ctx, "file sink '%s': %s", op->node->name, err);
        return rc;
    }
    s->ready = true;
    return 0;
}

static int fsink_restore(weir_operator_t *op, weir_ctx_t *ctx, const weir_op_restore_t *r) {
    weir_file_sink_t *s = op->impl;
    int rc = fsink_ready(op, ctx);
    if (rc != 0)
        return rc;
    s->restored = true;
    rc = weir__fsink_restore_from(&s->fs, r, op->parallelism);
    return rc == 0 ? 0 : fsink_fail(op, ctx, rc);
}

static int fsink_open(weir_operator_t *op, weir_ctx_t *ctx) {
    weir_file_sink_t *s = op->impl;
    int rc = fsink_ready(op, ctx);
    if (rc != 0 || s->restored)
        return rc;
    rc = weir__fsink_start_fresh(&s->fs);
    return rc == 0 ? 0 : fsink_fail(op, ctx, rc);
}

static void fsink_process(weir_operator_t *op, weir_ctx_t *ctx, const weir_record_t *rec) {
    weir_file_sink_t *s = op->impl;
    if (s->failed)
        return;
    const char *text;
    size_t len;
    int rc = weir__value_text(&s->fmt, rec->value, rec->value_len, &text, &len);
    if (rc == 0)
        rc = weir__fsink_line(&s->fs, text, len);
    if (rc != 0)
        fsink_fail(op, ctx, rc);
}

static void fsink_end_input(weir_operator_t *op, weir_ctx_t *ctx) {
    weir_file_sink_t *s = op->impl;
    if (s->failed || !s->ready)
        return;
    int rc = weir__fsink_end_input(&s->fs);
    if (rc != 0)
        fsink_fail(op, ctx, rc);
}

static int fsink_snapshot(weir_operator_t *op, weir_ctx_t *ctx, uint64_t checkpoint_id,
                          msgpack_packer *pk) {
    weir_file_sink_t *s = op->impl;
    if (s->failed || !s->ready) {
        weir_fail(ctx, "file sink '%s': cannot snapshot a failed sink", op->node->name);
        return WEIR_EINVAL;
    }
    int rc = weir__fsink_snapshot(&s->fs, checkpoint_id, pk);
    return rc == 0 ? 0 : fsink_fail(op, ctx, rc);
}

static void fsink_notify(weir_operator_t *op, weir_ctx_t *ctx, uint64_t checkpoint_id, bool final) {
    weir_file_sink_t *s = op->impl;
    if (s->failed || !s->ready)
        return;
    s->fs.after_rename = killpoint_hook;
    s->fs.hook_arg = ctx;
    int rc = weir__fsink_notify(&s->fs, checkpoint_id, final);
    s->fs.after_rename = NULL;
    s->fs.hook_arg = NULL;
    if (rc != 0)
        fsink_fail(op, ctx, rc);
}

static void fsink_close(weir_operator_t *op) {
    weir_file_sink_t *s = op->impl;
    if (!s)
        return;
    if (s->ready) {
        if (s->failed)
            s->fs.ended = false;         /* a failed sink commits nothing */
        (void)weir__fsink_close(&s->fs); /* commits (no checkpointing) or aborts; logs errors */
    }
    weir__value_fmt_destroy(&s->fmt);
    free(s);
    op->impl = NULL;
}

static const weir_operator_vt_t file_sink_vt = {.open = fsink_open,
                                                .process = fsink_process,
                                                .end_input = fsink_end_input,
                                                .close = fsink_close,
                                                .snapshot = fsink_snapshot,
                                                .restore = fsink_restore,
                                                .notify_complete = fsink_notify};

int weir__file_sink_create(weir_operator_t *op, char *errstr, size_t errlen) {
    weir_file_sink_t *s = calloc(1, sizeof(*s));
    if (!s || weir__value_fmt_init(&s->fmt) != 0) {
        free(s);
        weir_fmt(errstr, errlen, "file sink '%s': out of memory", op->node->name);
        return WEIR_ENOMEM;
    }
    op->impl = s;
    op->vt = &file_sink_vt;
    return 0;
}
