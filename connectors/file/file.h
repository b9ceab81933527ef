/* The file source and the file sink (connectors/file/): their constructors for the registry and
 * their pure parts, which never call the runtime API (weir_emit, weir_fail, ...), so unit tests
 * drive them directly (tests/unit/test_connectors.c). The operator glue in file_source.c and
 * file_sink.c is thin. Rules (splits, part files, exactly once) in connectors/README.md.
 *
 * Threading: every object here is used by one subtask thread only. */
#ifndef WEIR_CONNECTORS_FILE_H
#define WEIR_CONNECTORS_FILE_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "connectors/common/twophase.h"
#include "runtime/task/operator.h"

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

/** The splits one file-source subtask reads, with their positions (connectors/README.md,
 * "File source splits" and "Rescaling"). A job's first start at parallelism P makes split s of
 * P = the byte range [i*S/P, (i+1)*S/P) of every input file i of S bytes, read file after file;
 * a split's position is (file index, offset) as in weir_split_reader_t. A restore at another
 * parallelism p' gives new subtask k every split whose id is k mod p' (P stays the splits'),
 * so a subtask may read several splits (one after the other, ascending id) or none. A finished
 * split (file index = number of files) stays finished. */
typedef struct weir_file_split {
    uint32_t id;
    uint64_t file, off; /* position; off 0 = the file's range from its start */
} weir_file_split_t;

typedef struct weir_file_splits {
    weir_file_split_t *v; /* ascending id */
    size_t n, cap;
    uint32_t parallelism; /* P of the first start: the splits' byte ranges */
    char *const *files;   /* set by weir__file_splits_start (the caller's) */
    size_t n_files;
    size_t cur;             /* the split being read (n: all read) */
    bool reading;           /* sr is open on v[cur] */
    weir_split_reader_t sr; /* sr.errmsg names the file after an error */
} weir_file_splits_t;

/** The splits of a fresh start: split @p subtask of @p parallelism from the beginning. */
void weir__file_splits_init(weir_file_splits_t *fs, uint32_t subtask, uint32_t parallelism);
/** Takes this subtask's share of restored positions @p r (weir__file_splits_pack's objects):
 * every split whose id is @p subtask mod @p parallelism; @p fs is replaced. @returns 0, or
 * WEIR_ECORRUPT with one line in @p errstr. */
int weir__file_splits_restore(weir_file_splits_t *fs, const weir_op_restore_t *r, uint32_t subtask,
                              uint32_t parallelism, char *errstr, size_t errlen);
/** Binds the input files (they stay the caller's). @returns 0, or WEIR_ECORRUPT when a position
 * lies past the files (*bad_file = that position's file index). */
int weir__file_splits_start(weir_file_splits_t *fs, char *const *files, size_t n_files,
                            uint64_t *bad_file);
/** Next line of the splits, in order: @returns 1 (valid until the next call), 0 when every split
 * is read, or WEIR_ENOTFOUND / WEIR_EIO (fs->sr.errmsg names the file). */
int weir__file_splits_next(weir_file_splits_t *fs, const char **line, size_t *len);
/** Packs the positions (one msgpack object): `[file index, offset]` when the subtask reads
 * exactly its own split of a first start at its parallelism (the layout of earlier versions),
 * else `[P, [[split, file index, offset], ...]]`. */
void weir__file_splits_pack(msgpack_packer *pk, const weir_file_splits_t *fs, uint32_t subtask,
                            uint32_t parallelism);
void weir__file_splits_free(weir_file_splits_t *fs);

/* ------------------------------------------------------------------------------------------ */
/* File sink: identity, part-file writer and attempt fence                                    */
/* ------------------------------------------------------------------------------------------ */

/** Who writes a part file (connectors/README.md, "File sink part files"): the sink's uuid
 * (derived from the job id and the sink operator, so no other job or sink has it and every
 * attempt of this job finds its own files), the subtask, and the deployment attempt (higher =
 * newer; carried by in-progress, pending and fence names). Names relative to the directory:
 *   `.part-<uuid>-<s>-<k>.a<attempt>.inprogress`  being written
 *   `.part-<uuid>-<s>-<k>.a<attempt>.pending`     pre-committed
 *   `part-<uuid>-<s>-<k>`                         committed
 *   `.fence-<uuid>-<s>.a<attempt>`                the attempt fence of (uuid, s)             */
typedef struct weir_part_id {
    char uuid[37]; /* weir__part_sink_uuid(), or any 1..36 characters of [0-9a-z-] */
    uint32_t subtask;
    uint32_t attempt;
} weir_part_id_t;

/** The uuid of a file sink: SHA-256 of "weir-file-sink:<job id>:uid:<uid>" (or
 * ":node:<node id>" when the operator has no uid), its first 16 bytes with the version (8) and
 * variant (RFC 9562) bits set, printed 8-4-4-4-12 in lowercase hex. */
void weir__part_sink_uuid(const char *job_id, const char *uid, uint32_t node_id, char out[37]);

/** Part file names of @p id: `.part-<uuid>-<s>-<k>.a<attempt>.pending` into @p pending and
 * `part-<uuid>-<s>-<k>` into @p final (either may be NULL). */
void weir__part_names(const weir_part_id_t *id, uint64_t k, char *pending, char *final, size_t cap);

/** Writes lines to `<dir>/.part-<uuid>-<s>-<n>.a<attempt>.inprogress`, rolling (fsync + rename
 * to `<dir>/part-<uuid>-<s>-<n>`) once a file exceeds roll_bytes. The first file is opened lazily
 * at the first line. Every file is created with O_EXCL and every rename refuses to replace an
 * existing name. The writer holds its attempt's fence from init on: before each create, rename
 * or delete it checks that its fence file still exists (no newer attempt started); once fenced
 * it creates, renames and deletes nothing but its own open in-progress file. errmsg holds a
 * one-line message naming the file after an error. */
typedef struct weir_part_writer {
    char *dir;
    weir_part_id_t id;
    uint64_t roll_bytes;
    uint64_t n;       /* number of the current (or next) part file */
    FILE *f;          /* NULL when no file is open */
    char *iobuf;      /* stdio buffer of f */
    uint64_t written; /* bytes in the current file */
    char cur[4096];   /* in-progress path of the current file */
    char fence[4096]; /* path of this attempt's fence file */
    bool fenced;      /* a newer attempt started (the fence file is gone) */
    bool link_rename; /* the filesystem refused RENAME_NOREPLACE: link + unlink instead */
    char errmsg[512];
} weir_part_writer_t;

#define WEIR_PART_ROLL_BYTES (128ull << 20)

/** Creates the directory (mkdir -p) and the writer, and takes the attempt fence of (uuid,
 * subtask): creates `.fence-<uuid>-<s>.a<attempt>` (O_EXCL), then deletes the fence files of
 * older attempts (from then on they are fenced). @returns 0, WEIR_EINVAL (bad uuid),
 * WEIR_EEXIST (this attempt's fence exists: started twice), WEIR_ECANCELED (a newer attempt's
 * fence exists: this attempt is superseded and touches nothing) or WEIR_EIO (+ errstr). */
int weir__part_writer_init(weir_part_writer_t *w, const char *dir, const weir_part_id_t *id,
                           uint64_t roll_bytes, char *errstr, size_t errlen);
/** Appends @p data + '\n'. @returns 0 or WEIR_EIO (w->errmsg names the file). */
int weir__part_writer_line(weir_part_writer_t *w, const void *data, size_t len);
/** Finishes the current file (flush, fsync, rename to its final name). No-op without one. */
int weir__part_writer_finish(weir_part_writer_t *w);
/** Closes and removes the current in-progress file (cancel). */
void weir__part_writer_abort(weir_part_writer_t *w);
/** Gives up the fence (deletes this attempt's fence file) once the writer's output is complete:
 * nothing of this attempt will ever be committed again. @returns 0 or WEIR_EIO (w->errmsg). */
int weir__part_writer_release(weir_part_writer_t *w);
/** Frees the writer (aborts an unfinished file; the fence stays). Safe to call twice. */
void weir__part_writer_destroy(weir_part_writer_t *w);

/** Checks that this attempt still holds its fence. @returns 0, or WEIR_ECANCELED when a newer
 * attempt started (w->fenced set, w->errmsg says so) or WEIR_EIO. */
int weir__part_fence_check(weir_part_writer_t *w);

/* Two-phase-commit steps of the part writer (docs/checkpointing.md); names relative to the
 * writer's directory: in-progress -> pending -> final (weir_part_id_t). */

/** Opens a new in-progress file for part w->n. @returns 0 or WEIR_EIO / WEIR_ECANCELED. */
int weir__part_writer_begin(weir_part_writer_t *w);
/** Pre-commit: flush, fsync, close, rename the in-progress file to its pending name, fsync the
 * directory; *k and *size describe the part; w->n advances. The file is closed on every path.
 * @returns 0 or WEIR_EIO / WEIR_ECANCELED (w->errmsg). */
int weir__part_writer_precommit(weir_part_writer_t *w, uint64_t *k, uint64_t *size);
/** Commit: renames `<dir>/<pending>` to `<dir>/<final>` unless `<final>` exists, and fsyncs the
 * directory. @returns 1 when renamed; 0 when already committed (pending gone and final present
 * with @p size bytes, or both names one file: an interrupted link + unlink, finished now);
 * WEIR_EEXIST when final exists but is not this transaction's (w->errmsg names both files);
 * WEIR_ENOTFOUND when both are missing (data lost); WEIR_ECANCELED (fenced) or WEIR_EIO. */
int weir__part_commit(weir_part_writer_t *w, const char *pending, const char *final, uint64_t size);
/** Start scan (restore and fresh start): deletes this identity's `.inprogress` / `.pending`
 * files of OLDER attempts (same uuid and subtask) whose name is not in @p keep, and moves w->n
 * past every committed `part-<uuid>-<s>-<k>` so that no part number is used twice. Files of
 * other jobs, sinks, subtasks or of newer attempts, and names it did not produce, are never
 * touched. @returns 0 or WEIR_EIO / WEIR_ECANCELED (w->errmsg). */
int weir__part_abort_lingering(weir_part_writer_t *w, const char *const *keep, size_t n_keep);

/** The exactly-once file sink without the runtime glue: a part writer driven by the 2PC helper.
 * One transaction = one part file; a file above roll_bytes is pre-committed early and joins the
 * next checkpoint. Snapshot state: [next part number, <2PC pending list>, uuid, attempt,
 * directory] where a handle is [k, pending name, final name, size] (names relative to the
 * directory, the absolute path of the sink's directory; states of earlier versions end after
 * the list). Without checkpointing (never snapshotted nor restored) close() after end_input
 * commits directly; otherwise close() only aborts the open file. */
typedef struct weir_file_2pc {
    weir_part_writer_t w;
    char *real_dir; /* realpath of w.dir (the directory a snapshot records) */
    weir_2pc_t tp;
    uint64_t roll_bytes;
    bool ended; /* end_input was called */
    bool done;  /* everything this attempt will write is committed (final notify or close) */
    /* Called after each commit rename (the glue hits the commit-after-rename kill point). */
    void (*after_rename)(void *arg);
    void *hook_arg;
} weir_file_2pc_t;

/** Creates the directory and the sink and takes the attempt fence (weir__part_writer_init).
 * @returns 0 or WEIR_EIO/WEIR_ENOMEM/WEIR_EINVAL/WEIR_EEXIST/WEIR_ECANCELED (+ errstr). */
int weir__fsink_init(weir_file_2pc_t *s, const char *dir, const weir_part_id_t *id,
                     uint64_t roll_bytes, char *errstr, size_t errlen);
/** Restore from a checkpoint (state nil/NULL = none): commit recovered, abort lingering, resume
 * part numbering. @returns 0 or < 0 (s->w.errmsg). */
int weir__fsink_restore(weir_file_2pc_t *s, uint64_t checkpoint_id, const msgpack_object *state);
/** Restore from the states of old subtasks @p r, at @p parallelism (connectors/README.md,
 * "Rescaling"): the subtask takes over every old subtask j with j mod parallelism == its own:
 * commits the files j's state lists (in the directory j's state names, or the sink's own when
 * that path does not exist here or j is of this job), deletes j's lingering
 * in-progress and pending files not listed (of attempts older than the one that took the
 * snapshot, or of any older attempt when j's files carry this sink's own uuid), then starts its
 * own part files as a restore does (abort lingering of its older attempts, numbering past every
 * committed part). Its own state of the same job (same uuid, subtask and directory) takes the
 * path of weir__fsink_restore exactly. @returns 0 or < 0 (s->w.errmsg). */
int weir__fsink_restore_from(weir_file_2pc_t *s, const weir_op_restore_t *r, uint32_t parallelism);
/** Fresh start: deletes this sink subtask's lingering in-progress and pending files of older
 * attempts. */
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
/** Commits directly when ended and never checkpointed, otherwise aborts the open file; gives
 * up the fence when everything is committed (done); frees everything. @returns 0 or the commit
 * error (logged). Safe to call twice. */
int weir__fsink_close(weir_file_2pc_t *s);

/* ------------------------------------------------------------------------------------------ */
/* Operator constructors (called by weir_connector_create in registry.c)                      */
/* ------------------------------------------------------------------------------------------ */

/** File source: sets op->vt/op->impl. @returns 0 or WEIR_ENOMEM (+ errstr). */
int weir__file_source_create(weir_operator_t *op, char *errstr, size_t errlen);
/** File sink: sets op->vt/op->impl. @returns 0 or WEIR_ENOMEM (+ errstr). */
int weir__file_sink_create(weir_operator_t *op, char *errstr, size_t errlen);

#endif
