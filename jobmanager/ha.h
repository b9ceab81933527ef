/* Job manager high availability (docs/checkpointing.md): with high-availability.storageDir set
 * (a directory or an s3:// location: storage/storage.h), the job manager keeps, each object
 * written whole (weir_storage_put: the old or the new one is visible, never a part):
 *   <ha>/jobs/<id>/job.json     {"id","name","graph","args","plugin","attempt","parallelism",
 *                                "submit_time"} (graph as parsed JSON)
 *   <ha>/jobs/<id>/checkpoint   the URI of the job's latest completed checkpoint (one line)
 *   <ha>/blobs/<sha256>         a copy of the job's plugin
 *   <ha>/results/<id>.json      the job result store: written when the job reached FINISHED,
 *                               CANCELED or FAILED, before its jobs/<id> entry is removed; never
 *                               removed (weir_ha_result_t below)
 * A job's entry is removed when it reaches a terminal state (after its result record is durable).
 * Every write is durable (the storage's put) before it returns 0; a write that fails may or may
 * not have replaced the object. Reads at recovery retry transient
 * errors (store_io.h) and never take a read error for a corrupt record. Pure file functions, no
 * state; thread-safe as long as two callers do not write the same job at once. */
#ifndef WEIR_JOBMANAGER_HA_H
#define WEIR_JOBMANAGER_HA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jobmanager/store_io.h"
#include "storage/storage.h"

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

/** One record of the job result store, <ha>/results/<id>.json, a JSON object:
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

/** Writes <ha>/results/<id>.json (durably). @returns 0, WEIR_EINVAL (bad id or state), WEIR_EIO
 * or WEIR_ENOMEM with errstr. */
int weir_ha_save_result(weir_storage_t *ha, const weir_ha_result_t *res, char *errstr,
                        size_t errlen);
/** Reads <ha>/results/<id>.json through @p io (NULL: the defaults). @returns 0 (*res filled, free
 * with weir_ha_result_clear), WEIR_ENOTFOUND (no record), WEIR_ECORRUPT (not a valid record:
 * "<file>: <why>") or WEIR_EIO/WEIR_ENOMEM with errstr. */
int weir_ha_load_result(weir_storage_t *ha, const char *id, const weir_store_io_t *io,
                        weir_ha_result_t *res, char *errstr, size_t errlen);
/** The URI <ha>/results/<id>.json into @p out. */
void weir_ha_result_path(const char *ha_uri, const char *id, char *out, size_t cap);
void weir_ha_result_clear(weir_ha_result_t *res);

/** The application job id: the first 32 hex digits of sha256("weir-application\n" +
 * @p cluster_id + "\n" + (@p savepoint_path or "")), into @p out (NUL-terminated). */
void weir_ha_application_job_id(const char *cluster_id, const char *savepoint_path, char out[33]);
/** True when @p id is 32 lowercase hex digits. */
bool weir_ha_valid_job_id(const char *id);

/** Writes <ha>/jobs/<id>/job.json. @returns 0 or WEIR_EIO / WEIR_ENOMEM with errstr. */
int weir_ha_save_job(weir_storage_t *ha, const weir_ha_job_t *job, char *errstr, size_t errlen);
/** Writes <ha>/blobs/<sha> unless an object of that size exists. */
int weir_ha_save_blob(weir_storage_t *ha, const char *sha, const void *data, size_t len,
                      char *errstr, size_t errlen);
/** Writes <ha>/jobs/<id>/checkpoint = @p path (durably). @returns 0, WEIR_EIO or WEIR_ENOMEM
 * with errstr; after an error the file names either the old or the new checkpoint. */
int weir_ha_set_checkpoint(weir_storage_t *ha, const char *job_id, const char *path, char *errstr,
                           size_t errlen);
/** Removes every object under <ha>/jobs/<id>. @returns 0 or the storage's error. */
int weir_ha_remove_job(weir_storage_t *ha, const char *job_id, char *errstr, size_t errlen);
/** Loads every job in <ha>/jobs through @p io (NULL: the defaults). Entries without a job.json,
 * or whose job.json is not a valid record, are skipped with a WARN; a job.json or pointer that
 * cannot be read (after the retries of store_io.h) fails the load. @returns 0 (*jobs malloc'd,
 * free with weir_ha_jobs_free), WEIR_EIO ("HA: cannot read <file>: <strerror> (errno N)...") or
 * WEIR_ENOMEM. */
int weir_ha_load_jobs(weir_storage_t *ha, const weir_store_io_t *io, weir_ha_job_t **jobs,
                      size_t *n, char *errstr, size_t errlen);
/** Reads <ha>/blobs/<sha> (at most @p max_len bytes) through @p io (NULL: the defaults).
 * @returns 0 (*data malloc'd), WEIR_ENOTFOUND, or WEIR_EIO / WEIR_ENOSPACE with errstr. */
int weir_ha_load_blob(weir_storage_t *ha, const char *sha, size_t max_len,
                      const weir_store_io_t *io, uint8_t **data, size_t *len, char *errstr,
                      size_t errlen);
void weir_ha_job_clear(weir_ha_job_t *job);
void weir_ha_jobs_free(weir_ha_job_t *jobs, size_t n);

#endif
