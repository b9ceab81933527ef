/* File sink: one line per record into part files of a directory, exactly once with checkpoints
 * (two-phase commit through connectors/common/twophase.h; rules in docs/checkpointing.md and
 * connectors/README.md).
 *
 * Owns: the WEIR_OP_SINK_FILE operator, the part writer and the file 2PC sink (the part writer
 * driven by the 2PC helper; connectors/file/file.h).
 * Files of subtask s: `<dir>/.part-<s>-<k>.inprogress` while written, `.part-<s>-<k>.pending`
 * once pre-committed (flushed, fsynced, renamed; at a checkpoint barrier, at end of input, or
 * when a file exceeds 128 MiB), `part-<s>-<k>` once committed (the checkpoint that lists it is
 * complete, or, without checkpointing, at close after end of input). Hidden names start with '.'
 * so readers of the directory see committed files only. k counts from 0 per subtask and
 * continues from a restored checkpoint. Every rename is followed by an fsync of the directory.
 * Invariants: one open file at most; a part file is committed only after the checkpoint that
 * lists it completed; commit is idempotent (pending gone + final present = done).
 * Line text: msgpack str/bin values as is, other values as JSON-like text
 * (connectors/common/valuefmt.h).
 * Threading: an operator instance runs on its subtask thread only. */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "connectors/common/valuefmt.h"
#include "connectors/file/file.h"

#define PART_IOBUF (1u << 20)

int weir__part_writer_init(weir_part_writer_t *w, const char *dir, uint32_t subtask,
                           uint64_t roll_bytes, char *errstr, size_t errlen) {
    memset(w, 0, sizeof(*w));
    if (weir_mkdirs(dir) != 0) {
        weir_fmt(errstr, errlen, "cannot create output directory '%s': %s", dir, strerror(errno));
        return WEIR_EIO;
    }
    w->dir = strdup(dir);
    if (!w->dir) {
        weir_fmt(errstr, errlen, "out of memory");
        return WEIR_ENOMEM;
    }
    w->subtask = subtask;
    w->roll_bytes = roll_bytes;
    return 0;
}

static int writer_error(weir_part_writer_t *w, const char *what, const char *path) {
    weir_fmt(w->errmsg, sizeof(w->errmsg), "cannot %s '%s': %s", what, path, strerror(errno));
    return WEIR_EIO;
}

static int writer_open(weir_part_writer_t *w) {
    weir_fmt(w->cur, sizeof(w->cur), "%s/.part-%u-%llu.inprogress", w->dir, w->subtask,
             (unsigned long long)w->n);
    w->f = fopen(w->cur, "w");
    if (!w->f)
        return writer_error(w, "create", w->cur);
    if (!w->iobuf)
        w->iobuf = malloc(PART_IOBUF);
    if (w->iobuf)
        setvbuf(w->f, w->iobuf, _IOFBF, PART_IOBUF);
    w->written = 0;
    return 0;
}

/* Makes renames inside the directory durable. */
static int sync_dir(weir_part_writer_t *w) {
    return weir_fsync_dir(w->dir) == 0 ? 0 : writer_error(w, "fsync directory", w->dir);
}

/* Makes the open part file durable (flush, fsync, close), renames it to @p target and makes the
 * rename durable (fsync of the directory). @p what names the rename in errors. */
static int close_and_rename(weir_part_writer_t *w, const char *target, const char *what) {
    int rc = 0;
    if (fflush(w->f) != 0 || fsync(fileno(w->f)) != 0)
        rc = writer_error(w, "write", w->cur);
    if (fclose(w->f) != 0 && rc == 0)
        rc = writer_error(w, "write", w->cur);
    w->f = NULL;
    if (rc != 0)
        return rc;
    if (rename(w->cur, target) != 0)
        return writer_error(w, what, w->cur);
    return sync_dir(w);
}

int weir__part_writer_finish(weir_part_writer_t *w) {
    if (!w->f)
        return 0;
    char final[4096];
    weir_fmt(final, sizeof(final), "%s/part-%u-%llu", w->dir, w->subtask, (unsigned long long)w->n);
    int rc = close_and_rename(w, final, "rename to final name");
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
    unlink(w->cur);
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

#define COMP "file-sink"

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
    char pending[4096];
    weir_fmt(pending, sizeof(pending), "%s/.part-%u-%llu.pending", w->dir, w->subtask,
             (unsigned long long)w->n);
    int rc = close_and_rename(w, pending, "rename to pending name");
    if (rc != 0)
        return rc;
    *k = w->n;
    *size = w->written;
    w->n++;
    return 0;
}

int weir__part_commit(weir_part_writer_t *w, const char *pending, const char *final) {
    char src[4096], dst[4096];
    weir_fmt(src, sizeof(src), "%s/%s", w->dir, pending);
    weir_fmt(dst, sizeof(dst), "%s/%s", w->dir, final);
    if (rename(src, dst) == 0) {
        int rc = sync_dir(w);
        return rc == 0 ? 1 : rc;
    }
    if (errno != ENOENT)
        return writer_error(w, "rename to final name", src);
    if (access(dst, F_OK) == 0)
        return 0; /* committed before (a restore or a repeated notify) */
    weir_fmt(w->errmsg, sizeof(w->errmsg),
             "cannot commit part file '%s': neither it nor '%s' exists; the output of a "
             "completed checkpoint was lost (was the directory changed behind the job?)",
             src, dst);
    return WEIR_ENOTFOUND;
}

/* Parses "<prefix><digits><suffix>" where suffix is .inprogress or .pending. */
static bool lingering_name(const char *name, const char *prefix, uint64_t *k) {
    size_t pl = strlen(prefix);
    if (strncmp(name, prefix, pl) != 0)
        return false;
    const char *p = name + pl;
    if (*p < '0' || *p > '9')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(p, &end, 10);
    if (errno != 0)
        return false;
    if (strcmp(end, ".inprogress") != 0 && strcmp(end, ".pending") != 0)
        return false;
    *k = v;
    return true;
}

int weir__part_abort_lingering(weir_part_writer_t *w, const uint64_t *keep, size_t n_keep) {
    char prefix[64];
    weir_fmt(prefix, sizeof(prefix), ".part-%u-", w->subtask);
    DIR *d = opendir(w->dir);
    if (!d)
        return writer_error(w, "list directory", w->dir);
    int rc = 0;
    size_t removed = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t k;
        if (!lingering_name(de->d_name, prefix, &k))
            continue;
        bool kept = false;
        for (size_t i = 0; i < n_keep && !kept; i++)
            kept = keep[i] == k;
        if (kept)
            continue;
        char path[4096];
        weir_fmt(path, sizeof(path), "%s/%s", w->dir, de->d_name);
        if (unlink(path) != 0 && errno != ENOENT) {
            rc = writer_error(w, "delete lingering file", path);
            break;
        }
        removed++;
    }
    closedir(d);
    if (rc == 0 && removed > 0) {
        WEIR_INFO(COMP, "deleted %zu lingering uncommitted part files of subtask %u in '%s'",
                  removed, w->subtask, w->dir);
        rc = sync_dir(w);
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
    char pending[128], final[128];
    weir_fmt(pending, sizeof(pending), ".part-%u-%llu.pending", s->w.subtask,
             (unsigned long long)k);
    weir_fmt(final, sizeof(final), "part-%u-%llu", s->w.subtask, (unsigned long long)k);
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

static bool handle_parse(const msgpack_object *h, uint64_t *k, char *pending, char *final,
                         size_t cap) {
    if (h->type != MSGPACK_OBJECT_ARRAY || h->via.array.size != 4)
        return false;
    const msgpack_object *f = h->via.array.ptr;
    if (f[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        f[3].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return false;
    *k = f[0].via.u64;
    return handle_name(&f[1], pending, cap) && handle_name(&f[2], final, cap);
}

static int cb_commit(void *target, const msgpack_object *handle) {
    weir_file_2pc_t *s = target;
    uint64_t k;
    char pending[256], final[256];
    if (!handle_parse(handle, &k, pending, final, sizeof(pending))) {
        weir_fmt(s->w.errmsg, sizeof(s->w.errmsg),
                 "malformed pre-committed part file handle in the checkpoint state of '%s'",
                 s->w.dir);
        return WEIR_ECORRUPT;
    }
    int rc = weir__part_commit(&s->w, pending, final);
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
    uint64_t *ks = calloc(n_keep ? n_keep : 1, sizeof(*ks));
    if (!ks) {
        weir_fmt(s->w.errmsg, sizeof(s->w.errmsg), "out of memory");
        return WEIR_ENOMEM;
    }
    size_t n = 0;
    for (size_t i = 0; i < n_keep; i++) {
        char pending[256], final[256];
        if (handle_parse(&keep[i], &ks[n], pending, final, sizeof(pending)))
            n++;
    }
    int rc = weir__part_abort_lingering(&s->w, ks, n);
    free(ks);
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

int weir__fsink_init(weir_file_2pc_t *s, const char *dir, uint32_t subtask, uint64_t roll_bytes,
                     char *errstr, size_t errlen) {
    memset(s, 0, sizeof(*s));
    /* The writer never rolls by itself: rolling is a pre-commit, done here. */
    int rc = weir__part_writer_init(&s->w, dir, subtask, UINT64_MAX, errstr, errlen);
    if (rc != 0)
        return rc;
    s->roll_bytes = roll_bytes;
    weir_2pc_init(&s->tp, &file_2pc_ops, s);
    return 0;
}

int weir__fsink_restore(weir_file_2pc_t *s, uint64_t checkpoint_id, const msgpack_object *state) {
    s->w.errmsg[0] = 0;
    if (!state || state->type == MSGPACK_OBJECT_NIL)
        return fs_err(s, weir_2pc_restore(&s->tp, checkpoint_id, NULL));
    if (state->type != MSGPACK_OBJECT_ARRAY || state->via.array.size != 2 ||
        state->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        weir_fmt(s->w.errmsg, sizeof(s->w.errmsg),
                 "malformed checkpoint state of the part files in '%s'", s->w.dir);
        return WEIR_ECORRUPT;
    }
    s->w.n = state->via.array.ptr[0].via.u64;
    return fs_err(s, weir_2pc_restore(&s->tp, checkpoint_id, &state->via.array.ptr[1]));
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
        msgpack_pack_array(pk, 2);
        msgpack_pack_uint64(pk, s->w.n);
        pk->callback(pk->data, sb.data, sb.size);
    }
    msgpack_sbuffer_destroy(&sb);
    return fs_err(s, rc);
}

int weir__fsink_notify(weir_file_2pc_t *s, uint64_t checkpoint_id, bool final) {
    return fs_err(s, weir_2pc_notify(&s->tp, checkpoint_id, final));
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
    }
    weir_2pc_close(&s->tp); /* aborts the open file, if any */
    weir__part_writer_destroy(&s->w);
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
    int rc = weir__fsink_init(&s->fs, dir, op->subtask, WEIR_PART_ROLL_BYTES, err, sizeof(err));
    if (rc != 0) {
        s->failed = true;
        weir_fail(ctx, "file sink '%s': %s", op->node->name, err);
        return rc;
    }
    s->ready = true;
    return 0;
}

static int fsink_restore(weir_operator_t *op, weir_ctx_t *ctx, uint64_t checkpoint_id,
                         const msgpack_object *state) {
    weir_file_sink_t *s = op->impl;
    int rc = fsink_ready(op, ctx);
    if (rc != 0)
        return rc;
    s->restored = true;
    rc = weir__fsink_restore(&s->fs, checkpoint_id, state);
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
