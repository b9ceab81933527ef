/* Owns the glue between the checkpoint coordinator and the job manager (docs/checkpointing.md):
 * per job on the main loop's tick, expiry of the in-flight checkpoint and the trigger when due
 * (TRIGGER_CHECKPOINT to each source subtask that has not finished; none when every source
 * finished); ACK/DECLINE_CHECKPOINT from the task managers (a final ack stands for its subtask in
 * every later checkpoint of the attempt);
 * completion (the _metadata via ckpt_store.h, the HA pointer, the kill point, retention, NOTIFY
 * to each task manager of the attempt); failure beyond tolerance (failover); the abort of the
 * in-flight checkpoint when a job stops or restarts; and the restore point of a new attempt. The
 * only checkpoint file that knows the job manager: coordinator.c and ckpt_store.c do not.
 *
 * Invariants: ids grow and are above every chk-* directory and every completed id (no trigger
 * while <ckdir> cannot be listed); at most one checkpoint in flight per job; a checkpoint
 * completes only once its _metadata and the directories above it are durable and then the HA
 * pointer names it (if HA is on): a failed pointer write fails the checkpoint like a decline
 * (not completed, not notified, counted against tolerable-failed-checkpoints) and keeps its
 * chk-<n> (the failed write may have replaced the pointer after all); retention runs only after
 * a completion and pins the checkpoint the pointer names; NOTIFY only after all of that; a
 * restore takes the latest completed checkpoint (this job manager's, or the HA pointer's), never
 * a newer chk-<n> that did not complete, and falls back only past a proven-corrupt _metadata;
 * garbage collection of shared/ runs only when nothing is in flight; acks count only for the
 * job's current attempt, from the task manager instance hosting that subtask; a declined or
 * expired checkpoint's chk-<n> directory is removed.
 *
 * Storage: every file operation goes through storage/storage.h (a POSIX directory or S3) with the
 * job manager's env; job->ck_st is rooted at <ckdir>, jm->ha_st at the HA store.
 *
 * Threading: every function runs on the job manager's main thread with jm->mu held (a restore
 * may sleep there while it retries a transient read error, about 1.6 s at most per file on
 * POSIX). On S3 every storage call there is synchronous and bounded by the S3 backend's budget:
 * s3.retry.max-attempts x (s3.request-timeout + s3.retry.max-backoff); a completion makes a
 * put, a put of the HA pointer, a listing and one read per retained checkpoint, so a stalled
 * server blocks the main loop for a few of those budgets at worst (STATUS/README: the figures). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "jobmanager/ckpt_store.h"
#include "jobmanager/coordinator.h"
#include "jobmanager/ha.h"
#include "jobmanager/jobmanager_int.h"
#include "savepoint/plan.h"
#include "savepoint/read.h"
#include "storage/storage.h"

#define COMP "checkpoint"

/* ---------------------------------------------------------------- storage locations */

int weir__jm_location_check(const char *key, const char *value, char *errstr, size_t errlen) {
    if (!strstr(value, "://") && value[0] != '/')
        return weir_errf(errstr, errlen, WEIR_ECONFIG,
                         "%s '%s' is not an absolute path: give the absolute path of a directory "
                         "shared by the job manager and the task managers, or s3://bucket/prefix",
                         key, value);
    char why[WEIR_STORAGE_URI_MAX + 256];
    if (weir_storage_uri_check(value, why, sizeof why) != 0)
        return weir_errf(errstr, errlen, WEIR_ECONFIG, "%s: %s", key, why);
    return 0;
}

weir_storage_t *weir__jm_storage_open(weir_jobmanager_t *jm, const char *uri, char *errstr,
                                      size_t errlen) {
    return weir_storage_open(jm->storage_env, uri, errstr, errlen);
}

int weir__jm_uri_delete(weir_jobmanager_t *jm, const char *uri) {
    char err[WEIR_STORAGE_URI_MAX + 256];
    weir_storage_t *st = weir_storage_open(jm->storage_env, uri, err, sizeof err);
    int rc = st ? weir_storage_delete_prefix(st, "", err, sizeof err) : WEIR_ECONFIG;
    weir_storage_close(&st);
    if (rc != 0)
        WEIR_WARN(COMP, "cannot delete %s: %s", uri, err);
    return rc;
}

static int stop_at_first(void *arg, const char *name, bool is_dir, uint64_t size) {
    (void)arg, (void)name, (void)is_dir, (void)size;
    return 1;
}

int weir__jm_uri_has(weir_jobmanager_t *jm, const char *uri, const char *key) {
    char err[WEIR_STORAGE_URI_MAX + 256];
    weir_storage_t *st = weir_storage_open(jm->storage_env, uri, err, sizeof err);
    if (!st)
        return -1;
    int rc;
    if (key[0]) {
        uint64_t size;
        rc = weir_storage_stat(st, key, &size, err, sizeof err);
        rc = rc == 0 ? 1 : rc == WEIR_ENOTFOUND ? 0 : -1;
    } else {
        rc = weir_storage_list(st, "", false, stop_at_first, NULL, err, sizeof err);
        rc = rc == 1 ? 1 : rc == 0 ? 0 : -1;
    }
    weir_storage_close(&st);
    return rc;
}

int weir__jm_job_open_ckdir(weir_jobmanager_t *jm, weir_jm_job_t *job, char *errstr,
                            size_t errlen) {
    weir_storage_close(&job->ck_st);
    if (!job->ckdir)
        return 0;
    job->ck_st = weir_storage_open(jm->storage_env, job->ckdir, errstr, errlen);
    return job->ck_st ? 0 : WEIR_ECONFIG;
}

static bool job_all_running(const weir_jm_job_t *job) {
    for (uint32_t v = 0; v < job->n_vertices; v++)
        for (uint32_t s = 0; s < job->parallelism[v]; s++)
            if (job->subtasks[v][s].state != WEIR_TASK_RUNNING)
                return false;
    return true;
}

/* Makes next_id above every chk-* directory and the latest completed id. @returns false when
 * <ckdir> cannot be listed (no id is handed out then: it could reuse one). */
static bool ensure_next_id(weir_jm_job_t *job) {
    uint64_t *ids = NULL;
    size_t n = 0;
    char err[WEIR_STORAGE_URI_MAX + 256] = "";
    if (!job->ck_st || weir_ckpt_list_dirs(job->ck_st, &ids, &n, NULL, err, sizeof err) != 0) {
        WEIR_WARN(COMP, "cannot list %s: %s: no checkpoint of job %s triggered now", job->ckdir,
                  err, job->id);
        return false;
    }
    uint64_t above = (n ? ids[n - 1] : 0) + 1;
    free(ids);
    if (job->ckpt.latest_id + 1 > above)
        above = job->ckpt.latest_id + 1;
    if (job->ckpt.next_id < above)
        job->ckpt.next_id = above;
    return true;
}

void weir__jm_ckpt_abort_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, const char *why) {
    uint64_t id = job->ckpt.pending_id;
    if (id && job->ckpt.pending_kind != WEIR_CK_CHECKPOINT) {
        char msg[300];
        weir_fmt(msg, sizeof msg, "aborted: %s", why);
        weir__jm_sp_failed_locked(jm, job, id, msg, false, false);
    } else if (id && job->ck_st) {
        char err[WEIR_STORAGE_URI_MAX + 256];
        if (weir_ckpt_delete_dir(job->ck_st, id, err, sizeof err) != 0)
            WEIR_WARN(COMP, "%s (retention deletes it later)", err);
        WEIR_INFO(COMP, "checkpoint %" PRIu64 " of job %s aborted: %s", id, job->id, why);
    }
    weir_ckpt_coord_new_attempt(&job->ckpt, weir_now_ns(), why);
}

/* Sends NOTIFY_CHECKPOINT to every task manager hosting a subtask of the current attempt. */
static void notify_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, uint64_t id, bool final) {
    uint64_t sent[256];
    size_t n_sent = 0;
    for (uint32_t v = 0; v < job->n_vertices; v++)
        for (uint32_t s = 0; s < job->parallelism[v]; s++) {
            uint64_t seq = job->subtasks[v][s].tm_seq;
            bool dup = false;
            for (size_t k = 0; k < n_sent && !dup; k++)
                dup = sent[k] == seq;
            weir_jm_tm_t *tm = dup ? NULL : weir__jm_find_tm_seq_locked(jm, seq);
            if (!tm)
                continue;
            if (n_sent < sizeof sent / sizeof sent[0])
                sent[n_sent++] = seq;
            weir_msg_t m = {.type = WEIR_MSG_NOTIFY_CHECKPOINT,
                            .attempt = job->attempt,
                            .checkpoint_id = id,
                            .final = final};
            memcpy(m.job_id, job->id, sizeof m.job_id);
            weir__jm_send_locked(jm, tm, &m);
        }
}

/* How a completion failed: before the _metadata was durable (its directory can go), or at the
 * HA pointer (the checkpoint stays on disk: the pointer may name it after all). */
typedef enum complete_fail { FAIL_NONE = 0, FAIL_METADATA, FAIL_POINTER } complete_fail_t;

/* Writes the _metadata of the in-flight checkpoint (or the final one) and syncs the directories
 * above it, then the HA pointer; only then is the checkpoint complete: kill point, retention,
 * NOTIFY. On failure @p why says what failed and nothing after it happened. */
static complete_fail_t complete_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, bool final,
                                       char *why, size_t whylen) {
    weir_ckpt_coord_t *c = &job->ckpt;
    int64_t now = weir_now_ns(), wall = weir_wall_ms();
    uint64_t id;
    int64_t trigger_ms;
    if (final) {
        if (!ensure_next_id(job)) {
            weir_fmt(why, whylen, "failed: cannot list %s", job->ckdir);
            return FAIL_METADATA;
        }
        id = weir_ckpt_coord_begin_final(c, now, wall);
        trigger_ms = wall;
    } else {
        id = c->pending_id;
        trigger_ms = c->pending_trigger_ms;
    }
    weir_ckpt_meta_t meta;
    char err[4600] = "";
    int rc = weir_ckpt_coord_build_meta(c, job->id, id, final, trigger_ms, wall, &meta);
    if (rc == 0)
        rc = weir_ckpt_meta_set_graph(&meta, job->dag);
    if (rc == 0)
        rc = weir_ckpt_meta_write(job->ck_st, &meta, err, sizeof err);
    else
        weir_fmt(err, sizeof err, "out of memory");
    weir_ckpt_meta_clear(&meta);
    if (rc != 0) {
        WEIR_WARN(COMP, "checkpoint %" PRIu64 " of job %s failed: %s", id, job->id, err);
        weir_fmt(why, whylen, "failed: cannot write its metadata: %s", err);
        return FAIL_METADATA;
    }
    char path[WEIR_STORAGE_URI_MAX];
    weir_ckpt_chk_path(job->ckdir, id, path, sizeof path);
    if (jm->ha_st && weir_ha_set_checkpoint(jm->ha_st, job->id, path, err, sizeof err) != 0) {
        WEIR_ERROR(COMP,
                   "checkpoint %" PRIu64 " of job %s failed: cannot write the HA pointer, "
                   "not notified, %s kept: %s",
                   id, job->id, path, err);
        weir_fmt(why, whylen, "failed: cannot write the HA pointer: %s", err);
        return FAIL_POINTER;
    }
    weir_ckpt_coord_complete(c, id, final, path, weir_now_ns(), weir_wall_ms());
    WEIR_INFO(COMP,
              "checkpoint %" PRIu64 "%s of job %s completed in %" PRId64 " ms (%" PRIu64
              " bytes of state, %" PRIu64 " uploaded)",
              id, final ? " (final)" : "", job->id, c->latest.duration_ms, c->latest.state_size,
              c->latest.uploaded_size);
    weir_killpoint_hit(&jm->killpoint, "jm-after-metadata");
    /* retention + GC; id is what the HA pointer names now (pinned); final snapshots not yet part
     * of a checkpoint are protected */
    const char **protect = calloc(c->n_subtasks ? c->n_subtasks : 1, sizeof *protect);
    size_t n_protect = 0;
    for (uint32_t i = 0; protect && i < c->n_subtasks; i++)
        if (c->finals[i].acked && c->finals[i].keyed)
            protect[n_protect++] = c->finals[i].keyed;
    weir_ckpt_gc_stats_t st;
    if (weir_ckpt_retain(job->ck_st, jm->ckcfg.num_retained, c->pending_id, id, protect, n_protect,
                         &job->gc_marks, NULL, &st) != 0)
        WEIR_WARN(COMP, "retention of %s could not delete everything (tried again next time)",
                  job->ckdir);
    else if (st.dirs_removed || st.shared_removed)
        WEIR_DEBUG(COMP, "retention of %s: %u checkpoint dirs and %u shared files removed",
                   job->ckdir, st.dirs_removed, st.shared_removed);
    free(protect);
    notify_locked(jm, job, id, final);
    return FAIL_NONE;
}

/* The in-flight checkpoint failed (@p why): its directory is removed unless @p keep_dir, and the
 * failure counts against tolerable-failed-checkpoints. */
static void failed_checkpoint_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, const char *why,
                                     bool keep_dir) {
    uint64_t id = job->ckpt.pending_id;
    if (job->ckpt.pending_kind != WEIR_CK_CHECKPOINT) {
        weir_ckpt_coord_fail(&job->ckpt, why, jm->ckcfg.tolerable, weir_now_ns()); /* not counted */
        weir__jm_sp_failed_locked(jm, job, id, why, true, keep_dir);
        return;
    }
    if (!keep_dir) {
        char err[WEIR_STORAGE_URI_MAX + 256];
        if (weir_ckpt_delete_dir(job->ck_st, id, err, sizeof err) != 0)
            WEIR_WARN(COMP, "%s (retention deletes it later)", err);
    }
    bool over = weir_ckpt_coord_fail(&job->ckpt, why, jm->ckcfg.tolerable, weir_now_ns());
    if (over) {
        char msg[600];
        weir_fmt(msg, sizeof msg,
                 "checkpoint %" PRIu64 " %s (%u consecutive failed checkpoints, "
                 "execution.checkpointing.tolerable-failed-checkpoints = %" PRId64 ")",
                 id, why, job->ckpt.consecutive_failures, jm->ckcfg.tolerable);
        weir__jm_failover_cause_locked(jm, job, "CheckpointFailure", msg, NULL);
    }
}

/* Every subtask acked the in-flight savepoint: its _metadata into its own directory (no retention,
 * no shared files: the subtasks wrote self-contained snapshots); a stop-savepoint then becomes the
 * job's restore point and every subtask gets NOTIFY final: commit everything, finish. */
static void complete_savepoint_locked(weir_jobmanager_t *jm, weir_jm_job_t *job) {
    weir_ckpt_coord_t *c = &job->ckpt;
    uint64_t id = c->pending_id;
    uint32_t kind = c->pending_kind;
    weir_ckpt_meta_t meta;
    char why[2600] = "";
    int rc = weir_ckpt_coord_build_meta(c, job->id, id, false, c->pending_trigger_ms,
                                        weir_wall_ms(), &meta);
    if (rc == 0)
        rc = weir_ckpt_meta_set_graph(&meta, job->dag);
    if (rc == 0) {
        meta.kind = WEIR_CK_SAVEPOINT;
        rc = weir__jm_sp_complete_locked(jm, job, &meta, why, sizeof why);
    } else {
        weir_fmt(why, sizeof why, "failed: out of memory");
    }
    weir_ckpt_meta_clear(&meta);
    if (rc != 0) {
        failed_checkpoint_locked(jm, job, why, true);
        return;
    }
    weir_killpoint_hit(&jm->killpoint, "jm-after-savepoint");
    if (kind == WEIR_CK_STOP)
        notify_locked(jm, job, id, true);
}

/* After an ack (or a tick): completes what is ready. */
static void progress_locked(weir_jobmanager_t *jm, weir_jm_job_t *job) {
    if (job->state != WEIR_JOB_RUNNING)
        return;
    char why[2600];
    if (weir_ckpt_coord_ready(&job->ckpt) && job->ckpt.pending_kind != WEIR_CK_CHECKPOINT) {
        complete_savepoint_locked(jm, job);
    } else if (weir_ckpt_coord_ready(&job->ckpt)) {
        complete_fail_t f = complete_locked(jm, job, false, why, sizeof why);
        if (f != FAIL_NONE)
            failed_checkpoint_locked(jm, job, why, f == FAIL_POINTER);
    }
    if (job->state == WEIR_JOB_RUNNING && weir_ckpt_coord_final_ready(&job->ckpt)) {
        if (complete_locked(jm, job, true, why, sizeof why) != FAIL_NONE) {
            job->ckpt.final_done = false;
            weir__jm_failover_cause_locked(jm, job, "CheckpointFailure",
                                           "the final checkpoint could not be written", NULL);
        }
    }
}

/* The subtasks a periodic checkpoint starts at: every subtask of a source vertex that has not
 * sent its final snapshot (a finished one ignores triggers; its final snapshot stands for it).
 * Non-sources are reached by barriers, or by END from upstreams that finished, which counts as
 * the barrier in their alignment. With @p id != 0 sends TRIGGER_CHECKPOINT @p id to each whose
 * task manager is known. @returns how many subtasks qualify (with @p id: how many were sent). */
uint32_t weir__jm_ckpt_trigger_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, uint64_t id,
                                      int64_t wall) {
    uint32_t n = 0;
    for (uint32_t v = 0; v < job->n_vertices; v++) {
        const weir_vertex_t *vx = &job->dag->vertices[v];
        if (!weir_op_is_source(job->dag->nodes[vx->nodes[0]].kind))
            continue;
        for (uint32_t s = 0; s < job->parallelism[v]; s++) {
            if (weir_ckpt_coord_finished(&job->ckpt, weir_ckpt_coord_index(&job->ckpt, v, s)))
                continue;
            weir_jm_tm_t *tm = weir__jm_find_tm_seq_locked(jm, job->subtasks[v][s].tm_seq);
            if (!tm)
                continue;
            n++;
            if (!id)
                continue;
            weir_msg_t m = {.type = WEIR_MSG_TRIGGER_CHECKPOINT,
                            .attempt = job->attempt,
                            .checkpoint_id = id,
                            .checkpoint_timestamp = wall,
                            .vertex = v,
                            .subtask = s,
                            .ck_kind = job->ckpt.pending_kind,
                            .target =
                                job->ckpt.pending_target[0] ? job->ckpt.pending_target : NULL};
            memcpy(m.job_id, job->id, sizeof m.job_id);
            weir__jm_send_locked(jm, tm, &m);
        }
    }
    return n;
}

void weir__jm_ckpt_tick_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, int64_t now_ns) {
    if (!jm->ckcfg.enabled || !job->ckdir || job->state != WEIR_JOB_RUNNING)
        return;
    weir_ckpt_coord_t *c = &job->ckpt;
    if (weir_ckpt_coord_expired(c, &jm->ckcfg, now_ns)) {
        char why[128];
        weir_fmt(why, sizeof why, "expired: not complete within %" PRId64 " ms",
                 jm->ckcfg.timeout_ms);
        WEIR_INFO(COMP, "checkpoint %" PRIu64 " of job %s %s", c->pending_id, job->id, why);
        failed_checkpoint_locked(jm, job, why, false);
        return;
    }
    progress_locked(jm, job);
    if (job->state != WEIR_JOB_RUNNING || weir__jm_sp_stopping_locked(job))
        return; /* after a stop-savepoint: nothing more until the job has finished */
    if (weir__jm_sp_queued_locked(job)) {
        /* a savepoint goes first: it starts when nothing is in flight and every subtask runs
         * (periodic checkpoints wait for it) */
        if (!c->pending_id && job_all_running(job) && ensure_next_id(job))
            weir__jm_sp_start_locked(
                jm, job, now_ns, c->final_done ? 0 : weir__jm_ckpt_trigger_locked(jm, job, 0, 0));
        return;
    }
    if (!weir_ckpt_coord_due(c, &jm->ckcfg, job_all_running(job), now_ns) || !ensure_next_id(job))
        return;
    uint32_t n_sources = weir__jm_ckpt_trigger_locked(jm, job, 0, 0);
    if (n_sources == 0)
        return; /* every source finished: the rest drains into the final checkpoint */
    int64_t wall = weir_wall_ms();
    uint64_t id = weir_ckpt_coord_begin(c, now_ns, wall);
    uint32_t n = weir__jm_ckpt_trigger_locked(jm, job, id, wall);
    uint32_t finished = 0;
    for (uint32_t i = 0; i < c->n_subtasks; i++)
        finished += weir_ckpt_coord_finished(c, i) ? 1 : 0;
    WEIR_INFO(COMP,
              "checkpoint %" PRIu64 " of job %s triggered (%u source subtasks; %u of %u subtasks "
              "finished, in it with their final state)",
              id, job->id, n, finished, c->n_subtasks);
}

/* The job and subtask a checkpoint message names, when it is current and from the right task
 * manager instance; NULL otherwise (stale: ignored). */
static weir_jm_job_t *msg_job(weir_jobmanager_t *jm, const weir_jm_tm_t *tm, const weir_msg_t *m) {
    weir_jm_job_t *job = weir__jm_find_job_locked(jm, m->job_id);
    if (!job || !job->ckdir || job->state != WEIR_JOB_RUNNING || m->attempt != job->attempt ||
        m->vertex >= job->n_vertices || m->subtask >= job->parallelism[m->vertex])
        return NULL;
    if (job->subtasks[m->vertex][m->subtask].tm_seq != tm->seq)
        return NULL;
    return job;
}

void weir__jm_ckpt_on_ack_locked(weir_jobmanager_t *jm, weir_jm_tm_t *tm, weir_msg_t *m) {
    weir_jm_job_t *job = msg_job(jm, tm, m);
    if (!job)
        return;
    weir_ckpt_ack_t ack = {.op_state = m->op_state,
                           .op_state_len = m->op_state_len,
                           .keyed = m->keyed_handle,
                           .state_size = m->state_size,
                           .uploaded_size = m->uploaded_size,
                           .alignment_ns = m->alignment_ns,
                           .sync_ns = m->sync_ns,
                           .async_ns = m->async_ns};
    m->op_state = NULL;
    m->op_state_len = 0;
    m->keyed_handle = NULL;
    uint32_t idx = weir_ckpt_coord_index(&job->ckpt, m->vertex, m->subtask);
    bool ok = weir_ckpt_coord_ack(&job->ckpt, idx, m->checkpoint_id, m->final, &ack);
    WEIR_DEBUG(COMP, "job %s: %s ack of checkpoint %" PRIu64 " from vertex %u subtask %u%s",
               job->id, m->final ? "final" : "", m->checkpoint_id, m->vertex, m->subtask,
               ok ? "" : " ignored");
    if (ok)
        progress_locked(jm, job);
}

void weir__jm_ckpt_on_decline_locked(weir_jobmanager_t *jm, weir_jm_tm_t *tm, const weir_msg_t *m) {
    weir_jm_job_t *job = msg_job(jm, tm, m);
    if (!job || !job->ckpt.pending_id || m->checkpoint_id != job->ckpt.pending_id)
        return;
    char why[600];
    weir_fmt(why, sizeof why, "declined: %s (%u/%u): %s", job->dag->vertices[m->vertex].name,
             m->subtask + 1, job->parallelism[m->vertex], m->error ? m->error : "no reason");
    WEIR_INFO(COMP, "checkpoint %" PRIu64 " of job %s %s", m->checkpoint_id, job->id, why);
    failed_checkpoint_locked(jm, job, why, false);
}

void weir__jm_ckpt_retention_on_end_locked(weir_jobmanager_t *jm, weir_jm_job_t *job) {
    if (job->ck_released || !job->ckdir || job->slots_held ||
        (job->state != WEIR_JOB_CANCELED && job->state != WEIR_JOB_FINISHED &&
         job->state != WEIR_JOB_FAILED))
        return;
    job->ck_released = true;
    bool del =
        (job->state == WEIR_JOB_CANCELED && jm->ck_retention != WEIR_JM_RETAIN_ON_CANCELLATION) ||
        (job->state == WEIR_JOB_FINISHED && jm->ck_retention == WEIR_JM_NO_EXTERNALIZED);
    if (!del) {
        if (job->state == WEIR_JOB_CANCELED && job->ckpt.have_completed)
            WEIR_INFO(COMP, "job %s canceled: its checkpoints stay in %s (latest: %s)", job->id,
                      job->ckdir, job->ckpt.latest_path);
        return;
    }
    char err[WEIR_STORAGE_URI_MAX + 256];
    if (weir_storage_delete_prefix(job->ck_st, "", err, sizeof err) != 0) {
        WEIR_WARN(COMP, "job %s %s: cannot delete its checkpoint directory: %s", job->id,
                  weir__jm_job_state_name(job->state), err);
        return;
    }
    WEIR_INFO(COMP, "job %s %s: its checkpoint directory %s was deleted (%s)", job->id,
              weir__jm_job_state_name(job->state), job->ckdir,
              jm->ck_retention == WEIR_JM_NO_EXTERNALIZED ? "NO_EXTERNALIZED_CHECKPOINTS"
                                                          : "DELETE_ON_CANCELLATION");
}

/* True when @p path is <ckdir>/chk-<n> of this job (its id into *id). */
static bool own_checkpoint(const weir_jm_job_t *job, const char *path, uint64_t *id) {
    if (!job->ckdir || !weir_ckpt_id_of_path(path, id))
        return false;
    size_t n = strlen(job->ckdir);
    return strncmp(path, job->ckdir, n) == 0 && path[n] == '/' && !strchr(path + n + 1, '/');
}

/* True when the savepoint at @p path (the job's restore point after it completed) was deleted by
 * its owner: no _metadata there. Nothing was committed at an intermediate savepoint, so the latest
 * checkpoint before it is as good a restore point (its pending output is aborted and replayed).
 * Not the savepoint the job was submitted with (run -s): that one is required. */
static bool savepoint_gone(weir_jobmanager_t *jm, const weir_jm_job_t *job, const char *path) {
    if (job->restore_path && strcmp(path, job->restore_path) == 0)
        return false;
    if (weir__jm_uri_has(jm, path, "_metadata") != 0)
        return false; /* there, or it cannot be known now */
    WEIR_WARN(COMP,
              "savepoint %s of job %s was deleted: restoring the latest checkpoint before it "
              "instead",
              path, job->id);
    return true;
}

/* Reads the savepoint (or another job's retained checkpoint) at @p path for a restore. */
static int restore_savepoint(weir_jobmanager_t *jm, weir_jm_job_t *job, const char *path,
                             weir_ckpt_meta_t *meta, char *base, size_t base_cap, char *errstr,
                             size_t errlen) {
    char err[WEIR_STORAGE_URI_MAX + 512] = "";
    int rc = weir_savepoint_read(jm->storage_env, path, meta, base, base_cap, err, sizeof err);
    if (rc != 0)
        return weir_errf(errstr, errlen, rc, "cannot restore job %s from %s: %s", job->id, path,
                         err);
    return 0;
}

int weir__jm_ckpt_restore_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, weir_ckpt_meta_t *meta,
                                 char *base, size_t base_cap, bool *claim, char *errstr,
                                 size_t errlen) {
    memset(meta, 0, sizeof *meta);
    base[0] = 0;
    *claim = false;
    /* Candidates, newest id wins: the latest checkpoint this job manager completed (a
     * stop-savepoint counts: the job ended there), the one this job last restored, the one the HA
     * pointer of a previous job manager names; with none of them, the savepoint the job was
     * submitted with (run -s). A chk-<n> of <ckdir> is this job's own (claimed: later incremental
     * checkpoints share its files); anything else is a savepoint or another job's retained
     * checkpoint (not claimed: never changed, the first checkpoint after it is complete alone). */
    weir_ckpt_coord_t *c = &job->ckpt;
    uint64_t best_id = 0;
    const char *best = NULL;
    char ha_path[WEIR_STORAGE_URI_MAX] = "";
    if (c->have_completed && c->latest_id > best_id) {
        best_id = c->latest_id;
        best = c->latest_path;
    }
    if (c->have_restored && c->restored_id > best_id) {
        best_id = c->restored_id;
        best = c->restored_path;
    }
    if (job->ha_pointer && !own_checkpoint(job, job->ha_pointer, &(uint64_t){0}) &&
        savepoint_gone(jm, job, job->ha_pointer)) {
        free(job->ha_pointer);  /* the user deleted it: the checkpoints before it are the restore */
        job->ha_pointer = NULL; /* points, nothing was committed at it */
    }
    if (job->ha_pointer) {
        uint64_t pid = 0;
        int has = weir__jm_uri_has(jm, job->ha_pointer, "");
        if (has < 0)
            return weir_errf(errstr, errlen, WEIR_EIO,
                             "cannot list %s (the HA pointer): cannot restore job %s now",
                             job->ha_pointer, job->id);
        if (has == 0) {
            weir_fmt(errstr, errlen, "checkpoint directory %s is missing: cannot restore job %s",
                     job->ha_pointer, job->id);
            return WEIR_ENOTFOUND;
        }
        if (!own_checkpoint(job, job->ha_pointer, &pid)) {
            /* a stop-savepoint: its id is in its _metadata */
            int rc =
                restore_savepoint(jm, job, job->ha_pointer, meta, base, base_cap, errstr, errlen);
            if (rc != 0)
                return rc;
            pid = meta->id;
            weir_ckpt_meta_clear(meta);
        }
        if (pid > best_id) {
            best_id = pid;
            weir_fmt(ha_path, sizeof ha_path, "%s", job->ha_pointer);
            best = ha_path;
        }
    }
    uint64_t own_id = 0;
    if (best && !own_checkpoint(job, best, &own_id) && savepoint_gone(jm, job, best)) {
        /* the savepoint that was the restore point is gone: the latest checkpoint before it */
        uint64_t below = 0, *ids = NULL;
        size_t n_ids = 0;
        best = NULL;
        if (job->ck_st && weir_ckpt_list_dirs(job->ck_st, &ids, &n_ids, NULL, NULL, 0) == 0)
            for (size_t i = 0; i < n_ids; i++)
                if (ids[i] < best_id)
                    below = ids[i]; /* ascending: the newest chk-<n> before the savepoint */
        free(ids);
        weir_ckpt_meta_t probe;
        if (below && weir_ckpt_find_latest(job->ck_st, job->id, below, false, NULL, &probe, errstr,
                                           errlen) == 0) {
            weir_ckpt_chk_path(job->ckdir, probe.id, ha_path, sizeof ha_path);
            best = ha_path;
            weir_ckpt_meta_clear(&probe);
        }
    }
    if (best && own_checkpoint(job, best, &own_id)) {
        int rc =
            weir_ckpt_find_latest(job->ck_st, job->id, own_id, true, NULL, meta, errstr, errlen);
        if (rc != 0)
            return rc;
        weir_ckpt_chk_path(job->ckdir, meta->id, base, base_cap);
        *claim = true;
    } else {
        const char *path = best ? best : job->restore_path;
        if (!path)
            return 0; /* a fresh start (a chk-<n> on disk never completed) */
        int rc = restore_savepoint(jm, job, path, meta, base, base_cap, errstr, errlen);
        if (rc != 0)
            return rc;
    }
    weir_ckpt_coord_restored(c, meta->id, base, weir_wall_ms());
    if (c->next_id <= meta->id)
        c->next_id = meta->id + 1; /* ids go on above the restored one, also from a savepoint */
    WEIR_INFO(COMP, "%s %" PRIu64 "%s: restoring job %s (attempt %u) from %s",
              *claim ? "checkpoint" : "savepoint", meta->id, meta->final ? " (final)" : "", job->id,
              job->attempt, base);
    return 0;
}
