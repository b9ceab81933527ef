/* Job manager high availability (docs/checkpointing.md): with high-availability.storageDir set,
 * the job manager keeps, each file written atomically (weir_write_file_atomic):
 *   <ha>/jobs/<id>/job.json     {"id","name","graph","args","plugin","attempt","parallelism",
 *                                "submit_time"} (graph as parsed JSON)
 *   <ha>/jobs/<id>/checkpoint   the path of the job's latest completed checkpoint (one line)
 *   <ha>/blobs/<sha256>         a copy of the job's plugin
 *   <ha>/results/<id>.json      the job result store: written when the job reached FINISHED,
 *                               CANCELED or FAILED, before its jobs/<id> entry is removed; never
 *                               removed (weir_ha_result_t below)
 * A job's entry is removed when it reaches a terminal state (after its result record is durable).
 * Every write is durable (file and the directories above it up to <ha> fsynced) before it returns
 * 0; a write that fails may or may not have replaced the file. Reads at recovery retry transient
 * errors (store_io.h) and never take a read error for a corrupt record. Pure file functions, no
 * state; thread-safe as long as two callers do not write the same job at once. */
#ifndef WEIR_JOBMANAGER_HA_H
#define WEIR_JOBMANAGER_HA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jobmanager/store_io.h"

typedef struct weir_ha_job {
    char id[33];
    char *name;
    char *graph_json; /* compact JSON text */
    char **args;
    uint32_t n_args;
    char plugin[65];
    uint32_t attempt;
    uint32_t *parallelism; /* [n_vertices] */
    uint32_t n_vertices;
    int64_t submit_ms;
    char *checkpoint; /* load only: the pointer, NULL when none */
    char *savepoint;  /* `run -s`: the directory holding the _metadata it started from, or NULL */
    bool allow_non_restored;
} weir_ha_job_t;

/** One record of the job result store, <dir>/results/<id>.json, a JSON object:
 *   MEMBER      TYPE     DESCRIPTION
 *   id          string   the job id (32 lowercase hex digits), equal to the file's name
 *   name        string   the job's name
 *   state       string   FINISHED, CANCELED or FAILED
 *   end-time    integer  when it ended, milliseconds since the Unix epoch
 *   savepoint   string   optional: the stop-savepoint that ended it (absent: none)
 * Written once, atomically and durably, never garbage-collected. */
typedef struct weir_ha_result {
    char id[33];
    char *name;
    char state[16];
    int64_t end_ms;
    char *savepoint; /* NULL: none */
} weir_ha_result_t;

/** Writes <dir>/results/<id>.json (durably). @returns 0, WEIR_EINVAL (bad id or state), WEIR_EIO
 * or WEIR_ENOMEM with errstr. */
int weir_ha_save_result(const char *dir, const weir_ha_result_t *res, char *errstr, size_t errlen);
/** Reads <dir>/results/<id>.json through @p io (NULL: the defaults). @returns 0 (*res filled, free
 * with weir_ha_result_clear), WEIR_ENOTFOUND (no record), WEIR_ECORRUPT (not a valid record:
 * "<file>: <why>") or WEIR_EIO/WEIR_ENOMEM with errstr. */
int weir_ha_load_result(const char *dir, const char *id, const weir_store_io_t *io,
                        weir_ha_result_t *res, char *errstr, size_t errlen);
/** <dir>/results/<id>.json into @p out. */
void weir_ha_result_path(const char *dir, const char *id, char *out, size_t cap);
void weir_ha_result_clear(weir_ha_result_t *res);

/** The application job id: the first 32 hex digits of sha256("weir-application\n" +
 * @p cluster_id + "\n" + (@p savepoint_path or "")), into @p out (NUL-terminated). */
void weir_ha_application_job_id(const char *cluster_id, const char *savepoint_path, char out[33]);
/** True when @p id is 32 lowercase hex digits. */
bool weir_ha_valid_job_id(const char *id);

/** Writes <dir>/jobs/<id>/job.json. @returns 0 or WEIR_EIO / WEIR_ENOMEM with errstr. */
int weir_ha_save_job(const char *dir, const weir_ha_job_t *job, char *errstr, size_t errlen);
/** Writes <dir>/blobs/<sha> unless a file of that size exists. */
int weir_ha_save_blob(const char *dir, const char *sha, const void *data, size_t len, char *errstr,
                      size_t errlen);
/** Writes <dir>/jobs/<id>/checkpoint = @p path (durably). @returns 0, WEIR_EIO or WEIR_ENOMEM
 * with errstr; after an error the file names either the old or the new checkpoint. */
int weir_ha_set_checkpoint(const char *dir, const char *job_id, const char *path, char *errstr,
                           size_t errlen);
/** Removes <dir>/jobs/<id>. */
int weir_ha_remove_job(const char *dir, const char *job_id);
/** Loads every job in <dir>/jobs through @p io (NULL: the defaults). Entries without a job.json,
 * or whose job.json is not a valid record, are skipped with a WARN; a job.json or pointer that
 * cannot be read (after the retries of store_io.h) fails the load. @returns 0 (*jobs malloc'd,
 * free with weir_ha_jobs_free), WEIR_EIO ("HA: cannot read <file>: <strerror> (errno N)...") or
 * WEIR_ENOMEM. */
int weir_ha_load_jobs(const char *dir, const weir_store_io_t *io, weir_ha_job_t **jobs, size_t *n,
                      char *errstr, size_t errlen);
/** The blobs directory of the HA store (<dir>/blobs) into @p out. */
void weir_ha_blob_dir(const char *dir, char *out, size_t cap);
void weir_ha_job_clear(weir_ha_job_t *job);
void weir_ha_jobs_free(weir_ha_job_t *jobs, size_t n);

#endif
