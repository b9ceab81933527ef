/* Private helpers of the built-in connectors (connectors/). These are the pure parts of the
 * connectors: they never call the runtime API (weir_emit, weir_fail, ...), so unit tests drive
 * them directly. The operator glue in datagen.c, file_source.c, file_sink.c and print.c is thin.
 *
 * Threading: every object here is used by one subtask thread only. */
#ifndef WEIR_CONNECTORS_INT_H
#define WEIR_CONNECTORS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "runtime/task/operator.h"
#include "connectors/common/twophase.h"
#include "weir/weir.h"

/* ------------------------------------------------------------------------------------------ */
/* Datagen values and the index scheme shared by datagen and generator sources                */
/* ------------------------------------------------------------------------------------------ */

/** SplitMix64 finalizer: a bijective 64-bit mix. */
uint64_t weir__splitmix64(uint64_t x);

/** Value of record @p index: SEQUENCE -> start + index; RANDOM -> splitmix64(seed ^ index) %
 * random_max (random_max 0 = the full 64-bit range). */
uint64_t weir__datagen_value(const weir_datagen_opts_t *opts, uint64_t index);

/** Writes @p v as 8 bytes big-endian into @p out. */
void weir__be64(uint64_t v, uint8_t out[8]);

/** The record indices of one subtask: subtask s of p takes s, s+p, s+2p, ... while below
 * count (count 0 = unbounded). The position of the source is `next`. */
typedef struct weir_index_cursor {
    uint64_t next;
    uint64_t step;
    uint64_t count;
} weir_index_cursor_t;

static inline void weir__cursor_init(weir_index_cursor_t *c, uint32_t subtask, uint32_t parallelism,
                                     uint64_t count) {
    c->next = subtask;
    c->step = parallelism ? parallelism : 1;
    c->count = count;
}

static inline bool weir__cursor_more(const weir_index_cursor_t *c) {
    return c->count == 0 || c->next < c->count;
}

/** Returns the next index and advances. Call only when weir__cursor_more(). */
static inline uint64_t weir__cursor_take(weir_index_cursor_t *c) {
    uint64_t i = c->next;
    c->next += c->step;
    return i;
}

/** Source position of a cursor: how many records this subtask took so far (k; the next index
 * is subtask + k * step). */
static inline uint64_t weir__cursor_position(const weir_index_cursor_t *c, uint32_t subtask) {
    return (c->next - subtask) / c->step;
}

/** Moves a freshly initialised cursor to position @p k (restore). */
static inline void weir__cursor_seek(weir_index_cursor_t *c, uint32_t subtask, uint64_t k) {
    c->next = subtask + k * c->step;
}

/* ------------------------------------------------------------------------------------------ */
/* Rate limiting                                                                              */
/* ------------------------------------------------------------------------------------------ */

/** Schedule of one subtask: record k (0-based, counted by `emitted`) is due at
 * t0 + k * 1e9 / per_sec nanoseconds. per_sec 0 = unlimited. t0 is taken at the first call. */
typedef struct weir_rate {
    double per_sec; /* this subtask's share: total rate / parallelism */
    int64_t t0_ns;
    bool started;
    uint64_t emitted;
} weir_rate_t;

/** @p total_rate records/s over all subtasks (0 = unlimited), shared by @p parallelism. */
void weir__rate_init(weir_rate_t *r, double total_rate, uint32_t parallelism);

/** How many records may be emitted now (at most @p budget). When that is 0, *wake_ns is set to
 * the time the next record is due. Call weir__rate_note() with what was actually emitted. */
uint32_t weir__rate_permits(weir_rate_t *r, int64_t now_ns, uint32_t budget, int64_t *wake_ns);

/** Records that @p n records were emitted. */
static inline void weir__rate_note(weir_rate_t *r, uint64_t n) {
    r->emitted += n;
}

/** The monotonic time at which record number @p k of this schedule is due. */
int64_t weir__rate_due_ns(const weir_rate_t *r, uint64_t k);

/* ------------------------------------------------------------------------------------------ */
/* File source: input listing and split line reader                                           */
/* ------------------------------------------------------------------------------------------ */

/** Lists the input files of @p path: the path itself when it is a regular file, otherwise every
 * regular, non-hidden file directly inside the directory, sorted by name (strcmp). *files is a
 * malloc'd array of malloc'd full paths; free it with weir__file_list_free().
 * @returns 0, or WEIR_ENOTFOUND / WEIR_EIO with errno set (errstr names the path). */
int weir__file_list(const char *path, char ***files, size_t *n, char *errstr, size_t errlen);
void weir__file_list_free(char **files, size_t n);

/** Byte range [start, end) of split @p i of @p p over a file of @p size bytes. */
void weir__split_range(uint64_t size, uint32_t i, uint32_t p, uint64_t *start, uint64_t *end);

/** Reads the lines of one file that START in a byte range. A line starts at offset 0 or right
 * after a '\n'. The returned line excludes its '\n' and a '\r' just before it; the last line
 * counts without a '\n'. Lines may extend past the range end. */
typedef struct weir_line_reader {
    int fd;
    char *buf;
    size_t cap;
    size_t rpos, wpos; /* valid bytes buf[rpos, wpos) */
    uint64_t off;      /* file offset of buf[rpos] */
    uint64_t end;      /* lines must start before this offset */
    bool eof;
} weir_line_reader_t;

/** Opens @p path for the lines starting in [start, end). @p bufsize is the initial buffer (it
 * grows for longer lines). @returns 0 or WEIR_ENOTFOUND/WEIR_EIO (errno kept). */
int weir__line_reader_open(weir_line_reader_t *r, const char *path, uint64_t start, uint64_t end,
                           size_t bufsize);
/** Next line: @returns 1 with *line and *len set (valid until the next call), 0 at the end of the
 * range, or WEIR_EIO (errno kept). */
int weir__line_reader_next(weir_line_reader_t *r, const char **line, size_t *len);
/** Closes the file and frees the buffer. Safe to call twice. */
void weir__line_reader_close(weir_line_reader_t *r);

/** The lines of one subtask's splits of a list of files, file after file, with a position that
 * can be saved and resumed. Position = (file index, offset): the reader resumes in file `index`
 * at max(offset, split start), so offset is either a line start (the next line to read) or 0
 * (the file's split from its start). Takes ownership of nothing: `files` stays the caller's. */
typedef struct weir_split_reader {
    char *const *files;
    size_t n_files;
    size_t cur; /* index of the next file to open (the open one is cur - 1) */
    bool reading;
    weir_line_reader_t r;
    uint32_t subtask, parallelism;
    uint64_t resume_off; /* applies to file `cur` when it opens */
    char errmsg[512];
} weir_split_reader_t;

void weir__split_reader_init(weir_split_reader_t *sr, char *const *files, size_t n_files,
                             uint32_t subtask, uint32_t parallelism);
/** Next line: @returns 1 (line valid until the next call), 0 when every split is read, or
 * WEIR_ENOTFOUND / WEIR_EIO with sr->errmsg naming the file. */
int weir__split_reader_next(weir_split_reader_t *sr, const char **line, size_t *len);
/** The position to resume at: every line read so far is before it, every other after it. */
void weir__split_reader_position(const weir_split_reader_t *sr, uint64_t *file_index,
                                 uint64_t *offset);
/** Resumes at a position from weir__split_reader_position (call before the first next). */
void weir__split_reader_seek(weir_split_reader_t *sr, uint64_t file_index, uint64_t offset);
void weir__split_reader_close(weir_split_reader_t *sr);

/* ------------------------------------------------------------------------------------------ */
/* File sink: part-file writer                                                                */
/* ------------------------------------------------------------------------------------------ */

/** Writes lines to `<dir>/.part-<subtask>-<n>.inprogress`, rolling (fsync + rename to
 * `<dir>/part-<subtask>-<n>`) once a file exceeds roll_bytes. The first file is opened lazily at
 * the first line. errmsg holds a one-line message naming the file after an error. */
typedef struct weir_part_writer {
    char *dir;
    uint32_t subtask;
    uint64_t roll_bytes;
    uint64_t n;       /* number of the current (or next) part file */
    FILE *f;          /* NULL when no file is open */
    char *iobuf;      /* stdio buffer of f */
    uint64_t written; /* bytes in the current file */
    char cur[4096];   /* in-progress path of the current file */
    char errmsg[512];
} weir_part_writer_t;

#define WEIR_PART_ROLL_BYTES (128ull << 20)

/** Creates the directory (mkdir -p) and the writer. @returns 0 or WEIR_EIO (+ errstr). */
int weir__part_writer_init(weir_part_writer_t *w, const char *dir, uint32_t subtask,
                           uint64_t roll_bytes, char *errstr, size_t errlen);
/** Appends @p data + '\n'. @returns 0 or WEIR_EIO (w->errmsg names the file). */
int weir__part_writer_line(weir_part_writer_t *w, const void *data, size_t len);
/** Finishes the current file (flush, fsync, rename to its final name). No-op without one. */
int weir__part_writer_finish(weir_part_writer_t *w);
/** Closes and removes the current in-progress file (cancel). */
void weir__part_writer_abort(weir_part_writer_t *w);
/** Frees the writer (aborts an unfinished file). Safe to call twice. */
void weir__part_writer_destroy(weir_part_writer_t *w);

/* Two-phase-commit steps of the part writer (docs/checkpointing.md). Names are relative to the
 * writer's directory: `.part-<s>-<k>.inprogress` -> `.part-<s>-<k>.pending` -> `part-<s>-<k>`. */

/** Opens a new in-progress file for part w->n. @returns 0 or WEIR_EIO (w->errmsg). */
int weir__part_writer_begin(weir_part_writer_t *w);
/** Pre-commit: flush, fsync, close, rename the in-progress file to its pending name, fsync the
 * directory; *k and *size describe the part; w->n advances. The file is closed on every path.
 * @returns 0 or WEIR_EIO (w->errmsg). */
int weir__part_writer_precommit(weir_part_writer_t *w, uint64_t *k, uint64_t *size);
/** Commit: renames `<dir>/<pending>` to `<dir>/<final>` and fsyncs the directory. @returns 1
 * when renamed, 0 when already committed (pending missing, final present), WEIR_ENOTFOUND when
 * both are missing (data lost) or WEIR_EIO (w->errmsg). */
int weir__part_commit(weir_part_writer_t *w, const char *pending, const char *final);
/** Deletes this subtask's `.part-<s>-<k>.inprogress` and `.pending` files whose k is not in
 * @p keep. @returns 0 or WEIR_EIO (w->errmsg). */
int weir__part_abort_lingering(weir_part_writer_t *w, const uint64_t *keep, size_t n_keep);

/** The exactly-once file sink without the runtime glue: a part writer driven by the 2PC helper.
 * One transaction = one part file; a file above roll_bytes is pre-committed early and joins the
 * next checkpoint. Snapshot state: [next part number, <2PC pending list>] where a handle is
 * [k, pending name, final name, size]. Without checkpointing (never snapshotted nor restored)
 * close() after end_input commits directly; otherwise close() only aborts the open file. */
typedef struct weir_file_2pc {
    weir_part_writer_t w;
    weir_2pc_t tp;
    uint64_t roll_bytes;
    bool ended; /* end_input was called */
    /* Called after each commit rename (the glue hits the commit-after-rename kill point). */
    void (*after_rename)(void *arg);
    void *hook_arg;
} weir_file_2pc_t;

/** Creates the directory and the sink. @returns 0 or WEIR_EIO/WEIR_ENOMEM (+ errstr). */
int weir__fsink_init(weir_file_2pc_t *s, const char *dir, uint32_t subtask, uint64_t roll_bytes,
                     char *errstr, size_t errlen);
/** Restore from a checkpoint (state nil/NULL = none): commit recovered, abort lingering, resume
 * part numbering. @returns 0 or < 0 (s->w.errmsg). */
int weir__fsink_restore(weir_file_2pc_t *s, uint64_t checkpoint_id, const msgpack_object *state);
/** Fresh start: deletes this subtask's lingering in-progress and pending files. */
int weir__fsink_start_fresh(weir_file_2pc_t *s);
/** Appends one line (begins the epoch's file if needed). @returns 0 or < 0 (s->w.errmsg). */
int weir__fsink_line(weir_file_2pc_t *s, const void *data, size_t len);
/** Pre-commits and packs one object into @p pk. @returns 0 or < 0 (s->w.errmsg). */
int weir__fsink_snapshot(weir_file_2pc_t *s, uint64_t checkpoint_id, msgpack_packer *pk);
/** Commits the files of checkpoints <= checkpoint_id (all when final). */
int weir__fsink_notify(weir_file_2pc_t *s, uint64_t checkpoint_id, bool final);
/** End of input: pre-commits the open file (it joins the final snapshot, or close() commits it
 * when the job does not checkpoint). @returns 0 or < 0 (s->w.errmsg). */
int weir__fsink_end_input(weir_file_2pc_t *s);
/** Commits directly when ended and never checkpointed, otherwise aborts the open file; frees
 * everything. @returns 0 or the commit error (logged). Safe to call twice. */
int weir__fsink_close(weir_file_2pc_t *s);

/* ------------------------------------------------------------------------------------------ */
/* Value formatting for the file and print sinks                                              */
/* ------------------------------------------------------------------------------------------ */

/** Formats record values as line text for the file and print sinks. Reuses one buffer and one
 * msgpack zone (no allocation per record once warmed up). */
typedef struct weir_value_fmt {
    char *buf;
    size_t cap;
    msgpack_zone *zone;
} weir_value_fmt_t;

int weir__value_fmt_init(weir_value_fmt_t *f);
void weir__value_fmt_destroy(weir_value_fmt_t *f);
/** Text of a value: a msgpack str/bin -> its bytes (pointing into the value); anything else ->
 * JSON-like text (msgpack_object_print_buffer) in f->buf; a value that does not parse ->
 * "<invalid msgpack>". @returns 0 or WEIR_ENOMEM. */
int weir__value_text(weir_value_fmt_t *f, const void *value, size_t value_len, const char **text,
                     size_t *text_len);

/* ------------------------------------------------------------------------------------------ */
/* Operator constructors (called by weir_connector_create in registry.c)                      */
/* ------------------------------------------------------------------------------------------ */

/** Datagen and generator sources. */
int weir__datagen_create(weir_operator_t *op, char *errstr, size_t errlen);
int weir__file_source_create(weir_operator_t *op, char *errstr, size_t errlen);
int weir__file_sink_create(weir_operator_t *op, char *errstr, size_t errlen);
/** Print and blackhole sinks. */
int weir__print_create(weir_operator_t *op, char *errstr, size_t errlen);

#endif
