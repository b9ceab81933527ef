/* File sink: one line per record into part files of a directory.
 *
 * Files: `<dir>/.part-<subtask>-<n>.inprogress` while written (hidden: readers of the directory
 * see finished files only); when a file exceeds 128 MiB, and at end of input, it is flushed,
 * fsynced and renamed to `<dir>/part-<subtask>-<n>`; n counts from 0 per subtask. The first file
 * is opened at the first record (a subtask without records leaves no file). A cancel (close
 * without end_input) removes the in-progress file. A write error fails the task naming the file.
 * Line text: msgpack str/bin values as is, other values as JSON-like text (see print.c).
 * Threading: an operator instance runs on its subtask thread only. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/util.h"
#include "connectors/connectors_int.h"

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

int weir__part_writer_finish(weir_part_writer_t *w) {
    if (!w->f)
        return 0;
    char final[4096];
    weir_fmt(final, sizeof(final), "%s/part-%u-%llu", w->dir, w->subtask, (unsigned long long)w->n);
    int rc = 0;
    if (fflush(w->f) != 0 || fsync(fileno(w->f)) != 0)
        rc = writer_error(w, "write", w->cur);
    if (fclose(w->f) != 0 && rc == 0)
        rc = writer_error(w, "write", w->cur);
    w->f = NULL;
    if (rc != 0)
        return rc;
    if (rename(w->cur, final) != 0)
        return writer_error(w, "rename to final name", w->cur);
    /* Make the rename durable. */
    int dfd = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
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
/* Operator                                                                                 */
/* ---------------------------------------------------------------------------------------- */

typedef struct weir_file_sink {
    weir_part_writer_t w;
    weir_value_fmt_t fmt;
    bool ready;  /* writer initialised */
    bool failed; /* weir_fail already called */
} weir_file_sink_t;

static int fsink_open(weir_operator_t *op, weir_ctx_t *ctx) {
    weir_file_sink_t *s = op->impl;
    char err[512];
    const char *dir = op->node->path ? op->node->path : "";
    int rc =
        weir__part_writer_init(&s->w, dir, op->subtask, WEIR_PART_ROLL_BYTES, err, sizeof(err));
    if (rc != 0) {
        weir_fail(ctx, "file sink '%s': %s", op->node->name, err);
        return rc;
    }
    s->ready = true;
    return 0;
}

static void fsink_process(weir_operator_t *op, weir_ctx_t *ctx, const weir_record_t *rec) {
    weir_file_sink_t *s = op->impl;
    if (s->failed)
        return;
    const char *text;
    size_t len;
    int rc = weir__value_text(&s->fmt, rec->value, rec->value_len, &text, &len);
    if (rc == 0)
        rc = weir__part_writer_line(&s->w, text, len);
    if (rc != 0) {
        s->failed = true;
        weir_fail(ctx, "file sink '%s': %s", op->node->name,
                  s->w.errmsg[0] ? s->w.errmsg : weir_strerror(rc));
    }
}

static void fsink_end_input(weir_operator_t *op, weir_ctx_t *ctx) {
    weir_file_sink_t *s = op->impl;
    if (s->failed || !s->ready)
        return;
    if (weir__part_writer_finish(&s->w) != 0) {
        s->failed = true;
        weir_fail(ctx, "file sink '%s': %s", op->node->name, s->w.errmsg);
    }
}

static void fsink_close(weir_operator_t *op) {
    weir_file_sink_t *s = op->impl;
    if (!s)
        return;
    weir__part_writer_destroy(&s->w); /* removes an unfinished in-progress file */
    weir__value_fmt_destroy(&s->fmt);
    free(s);
    op->impl = NULL;
}

static const weir_operator_vt_t file_sink_vt = {.open = fsink_open,
                                                .process = fsink_process,
                                                .end_input = fsink_end_input,
                                                .close = fsink_close};

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
