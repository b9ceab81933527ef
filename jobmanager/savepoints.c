/* Owns the savepoint requests of the job manager (docs/savepoints.md): POST /jobs/{id}/savepoints
 * and POST /jobs/{id}/stop create a request (a 32-hex request id), the main loop starts it as
 * soon as nothing is in flight and every subtask runs (a savepoint is a checkpoint of kind
 * WEIR_CK_SAVEPOINT or WEIR_CK_STOP whose barriers carry its directory), checkpointing.c hands
 * its completion or failure here, and GET /jobs/{id}/savepoints/{request-id} reads the status.
 *
 * A savepoint directory is <target>/savepoint-<first 6 hex of the job id>-<12 random hex> (a
 * location of storage/storage.h: a path or s3://), named here before the trigger (nothing is
 * created: on S3 there are no directories); the subtasks write their keyed files under it and the
 * job manager writes <dir>/_metadata last (one whole-object put, durable when it returns), so a
 * directory without _metadata is not a savepoint. A completed savepoint becomes the job's restore
 * point (the HA pointer names it, the coordinator's latest): a failover after it restores it, so
 * the sink transactions pre-committed at it are committed by the restore, never aborted (a job
 * resumed from it later finds them). An intermediate savepoint is never notified (nothing
 * commits at it; the next checkpoint commits its transactions); a failed one is removed. A
 * stop-savepoint is notified with final = true once its _metadata and the HA pointer are durable:
 * the subtasks commit everything and finish; the request completes when the job is FINISHED. If the
 * job fails in between, it restarts from that savepoint (nothing committed is replayed) and runs
 * on: the request fails and says so. A failed stop-savepoint fails the job over (its sources had
 * stopped), as Flink does.
 *
 * Invariants: at most one request per job is IN_PROGRESS and it is the coordinator's in-flight
 * checkpoint (or a written stop-savepoint waiting for FINISHED); requests leave QUEUED only in
 * submission order; a request never goes back to an earlier status.
 *
 * Storage: the _metadata and HA pointer writes (weir__jm_sp_write) run on the job manager's storage
 * worker (storage_worker.h), never under jm->mu; deletes of savepoint directories are handed to it
 * too (weir__jm_uri_delete_locked).
 *
 * Threading: every function runs with jm->mu held (REST thread or main thread), except
 * weir__jm_sp_write (the storage worker, no lock, touches no job). */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "jobmanager/ha.h"
#include "jobmanager/jobmanager_int.h"
#include "storage/storage.h"

#define COMP "savepoint"

weir_jm_savepoint_t *weir__jm_sp_find_locked(weir_jm_job_t *job, const char *rid) {
    for (size_t i = 0; i < job->n_sps; i++)
        if (strcmp(job->sps[i].rid, rid) == 0)
            return &job->sps[i];
    return NULL;
}

/* The request of checkpoint @p id (IN_PROGRESS), NULL when @p id is not a savepoint. */
static weir_jm_savepoint_t *sp_of_id(weir_jm_job_t *job, uint64_t id) {
    for (size_t i = 0; i < job->n_sps; i++)
        if (job->sps[i].status == WEIR_SP_IN_PROGRESS && job->sps[i].checkpoint_id == id)
            return &job->sps[i];
    return NULL;
}

static void sp_finish(weir_jm_savepoint_t *sp, weir_jm_sp_status_t status, const char *failure) {
    sp->status = status;
    sp->end_ms = weir_wall_ms();
    if (failure)
        weir__jm_set_str(&sp->failure, failure);
}

void weir__jm_sp_free(weir_jm_job_t *job) {
    for (size_t i = 0; i < job->n_sps; i++) {
        free(job->sps[i].target);
        free(job->sps[i].path);
        free(job->sps[i].failure);
    }
    free(job->sps);
    job->sps = NULL;
    job->n_sps = job->cap_sps = 0;
}

int weir__jm_sp_request_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, uint32_t kind,
                               const char *target, bool cancel_job, char rid[33], char *errstr,
                               size_t errlen) {
    if (job->state != WEIR_JOB_RUNNING)
        return weir_errf(errstr, errlen, WEIR_ECONFLICT,
                         "job %s is %s: a savepoint needs a RUNNING job", job->id,
                         weir__jm_job_state_name(job->state));
    if (!job->ckdir)
        return weir_errf(errstr, errlen, WEIR_ECONFLICT,
                         "job %s runs without checkpoints: savepoints need "
                         "execution.checkpointing.interval and state.checkpoints.dir",
                         job->id);
    if (!target || !target[0])
        target = jm->savepoints_dir;
    if (!target || !target[0])
        return weir_errf(errstr, errlen, WEIR_EINVAL,
                         "no target directory: give one (weir savepoint JOBID DIR, "
                         "\"target-directory\") or set state.savepoints.dir");
    if (!strstr(target, "://") && target[0] != '/')
        return weir_errf(errstr, errlen, WEIR_EINVAL,
                         "target directory '%.256s' is not an absolute path: the job manager "
                         "resolves no relative paths (or give s3://bucket/prefix)",
                         target);
    if (strlen(target) > 1800)
        return weir_errf(errstr, errlen, WEIR_EINVAL, "target directory is too long (%zu bytes)",
                         strlen(target));
    char why[WEIR_STORAGE_URI_MAX + 256];
    weir_storage_t *tst = NULL;
    if (weir_storage_uri_check(target, why, sizeof why) != 0 ||
        !(tst = weir__jm_storage_open(jm, target, why, sizeof why)))
        return weir_errf(errstr, errlen, WEIR_EINVAL, "target directory: %s", why);
    char canon[WEIR_STORAGE_URI_MAX];
    weir_fmt(canon, sizeof canon, "%s", weir_storage_uri(tst));
    weir_storage_close(&tst);
    target = canon;
    for (size_t i = 0; i < job->n_sps; i++)
        if (job->sps[i].kind == WEIR_CK_STOP &&
            (job->sps[i].status == WEIR_SP_QUEUED || job->sps[i].status == WEIR_SP_IN_PROGRESS))
            return weir_errf(errstr, errlen, WEIR_ECONFLICT,
                             "job %s is being stopped with a savepoint (request %s)", job->id,
                             job->sps[i].rid);
    if (weir_array_grow((void **)&job->sps, &job->cap_sps, job->n_sps + 1, sizeof *job->sps, 4) !=
        0)
        return weir_errf(errstr, errlen, WEIR_ENOMEM, "job manager out of memory");
    weir_jm_savepoint_t *sp = &job->sps[job->n_sps];
    memset(sp, 0, sizeof *sp);
    weir_new_id(sp->rid);
    sp->kind = kind;
    sp->cancel_job = cancel_job;
    sp->status = WEIR_SP_QUEUED;
    sp->request_ms = weir_wall_ms();
    sp->target = strdup(target);
    if (!sp->target)
        return weir_errf(errstr, errlen, WEIR_ENOMEM, "job manager out of memory");
    job->n_sps++;
    memcpy(rid, sp->rid, 33);
    WEIR_INFO(COMP, "%s of job %s requested into %s (request %s)",
              kind == WEIR_CK_STOP ? "stop-with-savepoint" : "savepoint", job->id, sp->target,
              sp->rid);
    return 0;
}

bool weir__jm_sp_queued_locked(const weir_jm_job_t *job) {
    for (size_t i = 0; i < job->n_sps; i++)
        if (job->sps[i].status == WEIR_SP_QUEUED)
            return true;
    return false;
}

bool weir__jm_sp_active_locked(const weir_jm_job_t *job) {
    for (size_t i = 0; i < job->n_sps; i++)
        if (job->sps[i].status == WEIR_SP_QUEUED || job->sps[i].status == WEIR_SP_IN_PROGRESS)
            return true;
    return false;
}

bool weir__jm_sp_stopping_locked(const weir_jm_job_t *job) {
    for (size_t i = 0; i < job->n_sps; i++)
        if (job->sps[i].status == WEIR_SP_IN_PROGRESS && job->sps[i].written)
            return true;
    return false;
}

/* Names <target>/savepoint-<job6>-<rand12> (nothing is created: the task managers' uploads and
 * then the _metadata make it; a random name is never reused). */
static int make_dir(const weir_jm_job_t *job, weir_jm_savepoint_t *sp, char *errstr,
                    size_t errlen) {
    uint8_t rnd[6];
    char hex[13];
    if (weir_random_bytes(rnd, sizeof rnd) != 0)
        return weir_errf(errstr, errlen, WEIR_EIO, "no random bytes for the savepoint's name");
    weir_hex_encode(rnd, sizeof rnd, hex);
    char name[64], path[WEIR_STORAGE_URI_MAX];
    weir_fmt(name, sizeof name, "savepoint-%.6s-%s", job->id, hex);
    if (weir_storage_uri_join(sp->target, name, path, sizeof path) != 0)
        return weir_errf(errstr, errlen, WEIR_EINVAL, "savepoint directory %s/%s is too long",
                         sp->target, name);
    weir__jm_set_str(&sp->path, path);
    return sp->path ? 0 : WEIR_ENOMEM;
}

bool weir__jm_sp_start_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, int64_t now_ns,
                              uint32_t n_sources) {
    weir_jm_savepoint_t *sp = NULL;
    for (size_t i = 0; i < job->n_sps && !sp; i++)
        if (job->sps[i].status == WEIR_SP_QUEUED)
            sp = &job->sps[i];
    if (!sp)
        return false;
    if (n_sources == 0) {
        sp_finish(sp, WEIR_SP_FAILED,
                  "every source of the job has finished: it ends on its own with its final "
                  "checkpoint, no savepoint can be taken");
        return false;
    }
    char err[2400];
    if (make_dir(job, sp, err, sizeof err) != 0) {
        WEIR_WARN(COMP, "savepoint of job %s failed: %s", job->id, err);
        sp_finish(sp, WEIR_SP_FAILED, err);
        return false;
    }
    int64_t wall = weir_wall_ms();
    sp->checkpoint_id =
        weir_ckpt_coord_begin_savepoint(&job->ckpt, sp->kind, sp->path, now_ns, wall);
    sp->trigger_ms = wall;
    sp->status = WEIR_SP_IN_PROGRESS;
    uint32_t n = weir__jm_ckpt_trigger_locked(jm, job, sp->checkpoint_id, wall);
    WEIR_INFO(COMP, "%s %" PRIu64 " of job %s triggered into %s (%u source subtasks)",
              sp->kind == WEIR_CK_STOP ? "stop-with-savepoint" : "savepoint", sp->checkpoint_id,
              job->id, sp->path, n);
    return true;
}

/* Writes <dir>/_metadata of a completed savepoint: one whole-object put, durable when it
 * returns 0 (storage.h). */
static int write_metadata(weir_storage_env_t *env, const char *dir, const weir_ckpt_meta_t *m,
                          char *errstr, size_t errlen) {
    char *text = NULL;
    size_t len = 0;
    int rc = weir_ckpt_meta_encode(m, &text, &len);
    if (rc != 0)
        return weir_errf(errstr, errlen, rc, "cannot encode the metadata: %s", weir_strerror(rc));
    weir_storage_t *st = weir_storage_open(env, dir, errstr, errlen);
    rc = st ? weir_storage_put(st, "_metadata", text, len, errstr, errlen) : WEIR_ECONFIG;
    weir_storage_close(&st);
    free(text);
    return rc;
}

int weir__jm_sp_write(weir_storage_env_t *env, weir_storage_t *ha_st, const char *job_id,
                      const char *dir, const weir_ckpt_meta_t *meta, char *why, size_t whylen) {
    char err[WEIR_STORAGE_URI_MAX + 512] = "";
    int rc = write_metadata(env, dir, meta, err, sizeof err);
    if (rc != 0) {
        weir_fmt(why, whylen, "failed: %s", err);
        return rc;
    }
    if (ha_st && weir_ha_set_checkpoint(ha_st, job_id, dir, err, sizeof err) != 0) {
        /* the job goes on from its previous checkpoint; this savepoint stays usable */
        weir_fmt(why, whylen, "failed: cannot write the HA pointer: %s", err);
        return WEIR_EIO;
    }
    return 0;
}

void weir__jm_sp_completed_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, const char *dir) {
    weir_ckpt_coord_t *c = &job->ckpt;
    weir_jm_savepoint_t *sp = sp_of_id(job, c->pending_id);
    uint32_t kind = c->pending_kind;
    uint64_t id = c->pending_id;
    weir_ckpt_coord_complete(c, id, false, dir, weir_now_ns(), weir_wall_ms());
    uint64_t size = c->latest.id == id ? c->latest.state_size : 0;
    const weir_ckpt_hist_t *h = NULL;
    for (uint32_t i = 0; i < c->hist_len; i++)
        if (weir_ckpt_coord_hist(c, i)->id == id)
            h = weir_ckpt_coord_hist(c, i);
    if (h)
        size = h->state_size;
    WEIR_INFO(COMP, "%s %" PRIu64 " of job %s completed in %" PRId64 " ms: %s (%" PRIu64 " bytes)",
              kind == WEIR_CK_STOP ? "stop-with-savepoint" : "savepoint", id, job->id,
              h ? h->duration_ms : -1, dir, size);
    if (sp) {
        sp->state_size = size;
        if (kind == WEIR_CK_STOP) {
            sp->written = true; /* completes when the job is FINISHED */
        } else {
            sp_finish(sp, WEIR_SP_COMPLETED, NULL);
            if (sp->cancel_job) {
                char msg[256];
                weir__jm_cancel_job_locked(jm, job, msg, sizeof msg);
            }
        }
    }
}

void weir__jm_sp_failed_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, uint64_t id,
                               const char *why, bool failover, bool keep_dir) {
    weir_jm_savepoint_t *sp = sp_of_id(job, id);
    if (!sp || sp->written)
        return;
    char msg[600];
    weir_fmt(msg, sizeof msg, "savepoint %" PRIu64 " %s", id, why);
    WEIR_WARN(COMP, "job %s: %s", job->id, msg);
    sp_finish(sp, WEIR_SP_FAILED, msg);
    if (sp->path && !keep_dir)
        weir__jm_uri_delete_locked(
            jm, job, sp->path); /* never complete: no _metadata, nothing refers to it */
    if (failover && sp->kind == WEIR_CK_STOP && job->state == WEIR_JOB_RUNNING) {
        char fmsg[700];
        weir_fmt(fmsg, sizeof fmsg, "stop-with-savepoint failed (%s): its sources had stopped",
                 msg);
        weir__jm_failover_cause_locked(jm, job, "StopWithSavepointFailure", fmsg, NULL);
    }
}

void weir__jm_sp_tick_locked(weir_jobmanager_t *jm, weir_jm_job_t *job) {
    if (job->state == WEIR_JOB_RUNNING)
        return;
    for (size_t i = 0; i < job->n_sps; i++) {
        weir_jm_savepoint_t *sp = &job->sps[i];
        if (sp->status != WEIR_SP_QUEUED && sp->status != WEIR_SP_IN_PROGRESS)
            continue;
        if (sp->written && job->state == WEIR_JOB_FINISHED) {
            sp_finish(sp, WEIR_SP_COMPLETED, NULL);
            WEIR_INFO(COMP, "job %s stopped with savepoint %s", job->id, sp->path);
            continue;
        }
        char msg[1200];
        if (sp->written)
            weir_fmt(msg, sizeof msg,
                     "the job %s after its stop-savepoint %s was written (%s): it restores "
                     "from that savepoint and keeps running",
                     weir__jm_job_state_name(job->state), sp->path,
                     job->message ? job->message : "no message");
        else
            weir_fmt(msg, sizeof msg, "the job is %s: %s", weir__jm_job_state_name(job->state),
                     job->message ? job->message : "no message");
        if (sp->status == WEIR_SP_IN_PROGRESS && !sp->written && sp->path)
            weir__jm_uri_delete_locked(jm, job, sp->path);
        sp_finish(sp, WEIR_SP_FAILED, msg);
    }
}

json_t *weir__jm_sp_status_json_locked(weir_jm_job_t *job, const char *rid) {
    weir_jm_savepoint_t *sp = weir__jm_sp_find_locked(job, rid);
    if (!sp)
        return NULL;
    bool done = sp->status == WEIR_SP_COMPLETED || sp->status == WEIR_SP_FAILED;
    json_t *o = json_object();
    json_object_set_new(o, "status", json_pack("{s:s}", "id", done ? "COMPLETED" : "IN_PROGRESS"));
    if (sp->status == WEIR_SP_COMPLETED)
        json_object_set_new(o, "operation", json_pack("{s:s}", "location", sp->path));
    else if (sp->status == WEIR_SP_FAILED)
        json_object_set_new(o, "operation",
                            json_pack("{s:{s:s,s:s}}", "failure-cause", "class", "SavepointFailed",
                                      "stack-trace", sp->failure ? sp->failure : "failed"));
    uint64_t size = sp->state_size;
    uint32_t acked = 0;
    uint32_t total = job->ckpt.n_subtasks;
    if (sp->status == WEIR_SP_IN_PROGRESS && !sp->written &&
        job->ckpt.pending_id == sp->checkpoint_id)
        acked = weir_ckpt_coord_acked(&job->ckpt, &size);
    else if (sp->written || sp->status == WEIR_SP_COMPLETED)
        acked = total;
    json_object_set_new(o, "progress",
                        json_pack("{s:i,s:i,s:I}", "acknowledged", (int)acked, "total", (int)total,
                                  "state_size", (json_int_t)size));
    json_object_set_new(o, "checkpoint", json_integer((json_int_t)sp->checkpoint_id));
    json_object_set_new(o, "kind", json_string(sp->kind == WEIR_CK_STOP ? "stop" : "savepoint"));
    json_object_set_new(o, "request_time", json_integer(sp->request_ms));
    if (sp->trigger_ms)
        json_object_set_new(o, "trigger_time", json_integer(sp->trigger_ms));
    if (done && sp->trigger_ms)
        json_object_set_new(o, "duration_ms", json_integer(sp->end_ms - sp->trigger_ms));
    return o;
}
