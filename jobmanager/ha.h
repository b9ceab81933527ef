/* Job manager high availability (docs/checkpointing.md): with high-availability.storageDir set,
 * the job manager keeps, each file written atomically (weir_write_file_atomic):
 *   <ha>/jobs/<id>/job.json     {"id","name","graph","args","plugin","attempt","parallelism",
 *                                "submit_time"} (graph as parsed JSON)
 *   <ha>/jobs/<id>/checkpoint   the path of the job's latest completed checkpoint (one line)
 *   <ha>/blobs/<sha256>         a copy of the job's plugin
 * A job's entry is removed when it reaches a terminal state. Every write is durable (file and the
 * directories above it up to <ha> fsynced) before it returns 0; a write that fails may or may not
 * have replaced the file. Reads at recovery retry transient errors (store_io.h) and never take a
 * read error for a corrupt record. Pure file functions, no state; thread-safe as long as two
 * callers do not write the same job at once. */
#ifndef WEIR_JOBMANAGER_HA_H
#define WEIR_JOBMANAGER_HA_H

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
