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

#include "runtime/operator.h"
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
