/* Owns the job manager's use of the HA store (ha.h) for its job table: the entry of a new job
 * (plugin copy + job.json) written before POST /jobs answers, job.json rewritten with each attempt
 * before the attempt deploys, the job result record written (ha.h) and then the entry removed once
 * the job ended, and at startup the recovery of every stored job as RESTARTING (deployed as the
 * stored attempt + 1, restored from the checkpoint its HA pointer names, or fresh without one); an
 * entry whose job has a result record already ended (the job manager died before removing it):
 * it is removed instead of run again. A record or pointer that cannot be read (after the
 * retries of store_io.h) fails the start of the job manager instead of losing the job or
 * restarting it without its checkpoint. The pointer itself is written by checkpointing.c after
 * each completed checkpoint. A recovered job's plugin is copied from the HA store (<ha>/blobs,
 * possibly on S3) into the local blob store when the local one lacks it.
 *
 * Invariants: job.json exists before the job is in the table and names each attempt before any
 * of its tasks runs; an entry is removed only once its job is FINISHED, FAILED or CANCELED;
 * job->ha_saved says the entry exists; all files are written atomically by ha.c.
 *
 * Threading: weir__jm_ha_save_new_job runs on the REST thread without jm->mu (the job is not in
 * the table yet); weir__jm_ha_recover runs in weir_jobmanager_new before any other thread starts;
 * the others on the main thread with jm->mu held. */
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "jobmanager/blobstore.h"
#include "jobmanager/ha.h"
#include "jobmanager/jobmanager_int.h"

#define COMP "jobmanager"

int weir__jm_ha_write_job(weir_jobmanager_t *jm, weir_jm_job_t *job, char *errstr, size_t errlen) {
    if (!jm->ha_dir)
        return 0;
    weir_ha_job_t h = {.name = job->name,
                       .graph_json = job->graph_text,
                       .args = job->args,
                       .n_args = job->n_args,
                       .attempt = job->attempt,
                       .parallelism = job->parallelism,
                       .n_vertices = job->n_vertices,
                       .submit_ms = job->start_ms,
                       .savepoint = job->restore_path,
                       .allow_non_restored = job->allow_non_restored};
    memcpy(h.id, job->id, sizeof h.id);
    memcpy(h.plugin, job->plugin, sizeof h.plugin);
    int rc = weir_ha_save_job(jm->ha_st, &h, errstr, errlen);
    if (rc != 0)
        return rc;
    job->ha_saved = true;
    return 0;
}

int weir__jm_ha_save_new_job(weir_jobmanager_t *jm, weir_jm_job_t *job, char *errstr,
                             size_t errlen) {
    if (!jm->ha_dir)
        return 0;
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = weir_blobstore_get(jm->blobs, job->plugin, &data, &len);
    if (rc != 0) {
        weir_fmt(errstr, errlen, "cannot read plugin blob %s for the HA store: %s", job->plugin,
                 weir_strerror(rc));
        return rc;
    }
    rc = weir_ha_save_blob(jm->ha_st, job->plugin, data, len, errstr, errlen);
    free(data);
    if (rc != 0)
        return rc;
    rc = weir__jm_ha_write_job(jm, job, errstr, errlen);
    if (rc != 0)
        WEIR_ERROR(COMP, "%s", errstr);
    return rc;
}

void weir__jm_ha_remove_ended_locked(weir_jobmanager_t *jm, weir_jm_job_t *job) {
    if (!job->ha_saved || !weir__jm_job_terminal(job->state))
        return;
    /* the result record first: a job manager that dies in between finds the record and never
     * runs the job again (weir__jm_ha_recover) */
    weir_ha_result_t res = {.name = job->name, .end_ms = job->end_ms};
    memcpy(res.id, job->id, sizeof res.id);
    weir_fmt(res.state, sizeof res.state, "%s", weir__jm_job_state_name(job->state));
    for (size_t i = 0; i < job->n_sps; i++)
        if (job->sps[i].kind == WEIR_CK_STOP && job->sps[i].status == WEIR_SP_COMPLETED)
            res.savepoint = job->sps[i].path;
    char err[4600];
    if (weir_ha_save_result(jm->ha_st, &res, err, sizeof err) != 0) {
        if (!job->result_warned) /* retried on every iteration; the HA entry stays meanwhile */
            WEIR_ERROR(COMP, "job %s %s: %s; retrying, its HA entry stays until it is written",
                       job->id, res.state, err);
        job->result_warned = true;
        return;
    }
    if (weir_ha_remove_job(jm->ha_st, job->id, err, sizeof err) != 0) {
        if (!job->result_warned) /* retried on every iteration */
            WEIR_ERROR(COMP, "job %s %s: cannot remove its HA entry: %s; retrying", job->id,
                       res.state, err);
        job->result_warned = true;
        return;
    }
    job->ha_saved = false;
}

/* The plugin of a recovered job into the local blob store from the HA store's copy, unless the
 * local store has it. An absent copy is left to the plugin check (an error line naming it); a
 * copy that cannot be read fails (not lost: the next start tries again). */
static int fetch_blob(weir_jobmanager_t *jm, const char *sha, char *errstr, size_t errlen) {
    if (!weir_blobstore_valid_sha(sha) || weir_blobstore_has(jm->blobs, sha))
        return 0;
    uint8_t *data = NULL;
    size_t len = 0;
    int rc =
        weir_ha_load_blob(jm->ha_st, sha, WEIR_BLOB_MAX_BYTES, NULL, &data, &len, errstr, errlen);
    if (rc == WEIR_ENOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    char got[65];
    rc = weir_blobstore_put(jm->blobs, data, len, got);
    free(data);
    if (rc != 0)
        return weir_errf(errstr, errlen, rc, "cannot store plugin blob %s in %s: %s", sha,
                         weir_blobstore_dir(jm->blobs), weir_strerror(rc));
    if (strcmp(got, sha) != 0)
        WEIR_WARN(COMP, "HA: blob %s/blobs/%s is corrupt (its sha256 is %s)", jm->ha_dir, sha, got);
    return 0;
}

int weir__jm_ha_recover(weir_jobmanager_t *jm, char *errstr, size_t errlen) {
    weir_ha_job_t *jobs = NULL;
    size_t n = 0;
    int rc = weir_ha_load_jobs(jm->ha_st, NULL, &jobs, &n, errstr, errlen);
    if (rc != 0)
        return rc;
    int64_t now = weir_now_ns();
    for (size_t i = 0; i < n; i++) {
        weir_ha_job_t *h = &jobs[i];
        weir_ha_result_t res;
        int r = weir_ha_load_result(jm->ha_st, h->id, NULL, &res, errstr, errlen);
        if (r == 0) { /* it ended; the job manager died before it removed the entry */
            WEIR_INFO(COMP,
                      "HA: job %s already reached %s (its job result record): its HA entry "
                      "is removed, the job is not run again",
                      h->id, res.state);
            weir_ha_result_clear(&res);
            char rerr[WEIR_STORAGE_URI_MAX + 256];
            if (weir_ha_remove_job(jm->ha_st, h->id, rerr, sizeof rerr) != 0)
                WEIR_WARN(COMP, "HA: %s (removed again when the job manager restarts)", rerr);
            continue;
        }
        if (r != WEIR_ENOTFOUND && r != WEIR_ECORRUPT) {
            weir_ha_jobs_free(jobs, n);
            return r;
        }
        if (r == WEIR_ECORRUPT)
            WEIR_WARN(COMP, "HA: %s: recovering job %s", errstr, h->id);
        errstr[0] = 0;
        json_error_t jerr;
        json_t *graph = json_loads(h->graph_json, 0, &jerr); /* text we dumped: fails on OOM */
        char err[WEIR_STORAGE_URI_MAX + 1024] = "";
        weir_jm_job_t *job = NULL;
        if (graph && fetch_blob(jm, h->plugin, err, sizeof err) != 0) {
            json_decref(graph);
            weir_ha_jobs_free(jobs, n);
            return weir_errf(errstr, errlen, WEIR_EIO, "cannot recover job %s: %s", h->id, err);
        }
        if (weir__jm_job_check_plugin(jm, h->plugin, err, sizeof err) == 0 && graph)
            job = weir__jm_job_new(jm, h->plugin, (const char *const *)h->args, h->n_args, graph,
                                   err, sizeof err);
        json_decref(graph);
        if (!job) {
            WEIR_ERROR(COMP, "HA: cannot recover job %s: %s", h->id,
                       err[0] ? err : "out of memory");
            continue;
        }
        weir__jm_job_set_id(jm, job, h->id);
        job->start_ms = h->submit_ms;
        job->attempt = h->attempt ? h->attempt : 1;
        job->state = WEIR_JOB_RESTARTING;
        job->restart_at_ns = now;
        job->created_ns = now;
        job->ha_saved = true;
        job->ha_pointer = h->checkpoint;
        h->checkpoint = NULL;
        job->restore_path = h->savepoint; /* checked when it was submitted */
        h->savepoint = NULL;
        job->allow_non_restored = h->allow_non_restored;
        weir__jm_set_str(&job->message, "recovered by a new job manager: waiting for task slots");
        if (weir__jm_add_job_locked(jm, job) != 0) {
            weir__jm_job_free(job);
            continue;
        }
        WEIR_INFO(COMP, "HA: recovered job %s (%s), attempt %u, checkpoint %s", job->id, job->name,
                  job->attempt, job->ha_pointer ? job->ha_pointer : "none");
    }
    weir_ha_jobs_free(jobs, n);
    return 0;
}
