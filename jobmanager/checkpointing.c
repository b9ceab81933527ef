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
 * Threading: every function runs on the job manager's main thread with jm->mu held, except the
 * items' run functions (sw_run), which run on the job manager's storage worker thread
 * (storage_worker.h) without any lock and touch only their item. The storage calls of a
 * checkpoint's life go there, in submission order: the one listing of <ckdir> (next_id), the
 * _metadata put then the HA pointer put of a completion, retention, deletes of failed or aborted
 * chk-<n> and savepoint directories, the end-of-job delete. Their results are applied here
 * (weir__jm_sw_apply_locked, at the start of the loop's periodic work): a completion counts only
 * for the same generation (job->sw_gen, bumped when the in-flight checkpoint is dropped), the same
 * id the coordinator is completing and a RUNNING job; a stale durable one becomes a restore point
 * (as a job manager killed at jm-after-metadata would leave it), never notified. While a job has
 * items on the worker (job->sw_pending) nothing is triggered, no restore is chosen (the next
 * attempt waits: a completion may still become its restore point) and its HA entry stays. A
 * frozen S3 server then delays checkpoints, never the loop (heartbeats). Still synchronous here:
 * the reads of a restore at deployment (deploy.c; retried transient errors, about 1.6 s per file
 * on POSIX, the S3 budget s3.retry.max-attempts x (s3.request-timeout + s3.retry.max-backoff) per
 * call on S3). */
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
#include "jobmanager/storage_worker.h"
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

/* ---------------------------------------------------------------- the storage worker */

/* How a completion failed: before the _metadata was durable (its directory can go), or at the
 * HA pointer (the checkpoint stays on disk: the pointer may name it after all). */
typedef enum complete_fail { FAIL_NONE = 0, FAIL_METADATA, FAIL_POINTER } complete_fail_t;

/* What an item of the storage worker does (its kind). */
enum { SW_LIST = 1, SW_COMPLETE, SW_SAVEPOINT, SW_RETAIN, SW_DELETE };

/* One storage operation of a job, with copies of everything it reads or writes: the worker never
 * touches a job struct (storage_worker.h). */
typedef struct sw_item {
    weir_jm_sw_item_t base;
    weir_storage_env_t *env;         /* the job manager's (thread-safe; outlives the worker) */
    weir_storage_t *ha_st;           /* the job manager's HA store (thread-safe) or NULL */
    char uri[WEIR_STORAGE_URI_MAX];  /* <ckdir>, the savepoint directory, or what to delete */
    char path[WEIR_STORAGE_URI_MAX]; /* SW_COMPLETE: <ckdir>/chk-<id> (what the HA pointer names) */
    uint64_t id; /* checkpoint id (SW_DELETE: chk-<id> of uri; 0 = all of uri) */
    bool final;
    uint32_t sp_kind;      /* SW_SAVEPOINT: WEIR_CK_SAVEPOINT or WEIR_CK_STOP */
    weir_ckpt_meta_t meta; /* SW_COMPLETE / SW_SAVEPOINT: the _metadata to write */
    /* SW_RETAIN */
    uint32_t num_retained;
    char **protect;
    size_t n_protect;
    weir_ckpt_gc_marks_t marks; /* the job's, lent for the round and given back by apply */
    /* SW_DELETE: the lines logged (empty: the default ones); end_rule: the end-of-job retention
     * rule's delete (job->ck_released once applied) */
    char ok_line[600], fail_prefix[600];
    bool end_rule;
    /* results */
    int rc;
    complete_fail_t fail;
    uint64_t max_dir; /* SW_LIST: the largest chk-<n> (0 none) */
    char err[4600];
} sw_item_t;

static void sw_item_free(weir_jm_sw_item_t *base) {
    sw_item_t *it = (sw_item_t *)base;
    weir_ckpt_meta_clear(&it->meta);
    for (size_t i = 0; i < it->n_protect; i++)
        free(it->protect[i]);
    free(it->protect);
    weir_ckpt_gc_marks_free(&it->marks);
    free(it);
}

static void sw_run(weir_jm_sw_item_t *base) {
    sw_item_t *it = (sw_item_t *)base;
    const char *job_id = it->base.job_id;
    if (it->base.kind == SW_SAVEPOINT) {
        it->rc = weir__jm_sp_write(it->env, it->ha_st, job_id, it->uri, &it->meta, it->err,
                                   sizeof it->err);
        return;
    }
    weir_storage_t *st = weir_storage_open(it->env, it->uri, it->err, sizeof it->err);
    if (!st) {
        it->rc = WEIR_ECONFIG;
        it->fail = FAIL_METADATA;
        if (it->base.kind == SW_DELETE || it->base.kind == SW_RETAIN)
            WEIR_WARN(COMP, "cannot open %s: %s", it->uri, it->err);
        return;
    }
    switch (it->base.kind) {
    case SW_LIST: {
        uint64_t *ids = NULL;
        size_t n = 0;
        it->rc = weir_ckpt_list_dirs(st, &ids, &n, NULL, it->err, sizeof it->err);
        it->max_dir = it->rc == 0 && n ? ids[n - 1] : 0;
        free(ids);
        break;
    }
    case SW_COMPLETE:
        it->rc = weir_ckpt_meta_write(st, &it->meta, it->err, sizeof it->err);
        if (it->rc != 0) {
            WEIR_WARN(COMP, "checkpoint %" PRIu64 " of job %s failed: %s", it->id, job_id, it->err);
            it->fail = FAIL_METADATA;
            break;
        }
        if (it->ha_st && (it->rc = weir_ha_set_checkpoint(it->ha_st, job_id, it->path, it->err,
                                                          sizeof it->err)) != 0) {
            WEIR_ERROR(COMP,
                       "checkpoint %" PRIu64 " of job %s failed: cannot write the HA pointer, "
                       "not notified, %s kept: %s",
                       it->id, job_id, it->path, it->err);
            it->fail = FAIL_POINTER;
        }
        break;
    case SW_RETAIN: {
        weir_ckpt_gc_stats_t gst;
        it->rc = weir_ckpt_retain(st, it->num_retained, 0, it->id, (const char *const *)it->protect,
                                  it->n_protect, &it->marks, NULL, &gst);
        if (it->rc != 0)
            WEIR_WARN(COMP, "retention of %s could not delete everything (tried again next time)",
                      it->uri);
        else if (gst.dirs_removed || gst.shared_removed)
            WEIR_DEBUG(COMP, "retention of %s: %u checkpoint dirs and %u shared files removed",
                       it->uri, gst.dirs_removed, gst.shared_removed);
        break;
    }
    case SW_DELETE:
        if (it->id) {
            it->rc = weir_ckpt_delete_dir(st, it->id, it->err, sizeof it->err);
            if (it->rc != 0)
                WEIR_WARN(COMP, "%s (retention deletes it later)", it->err);
            break;
        }
        it->rc = weir_storage_delete_prefix(st, "", it->err, sizeof it->err);
        if (it->rc != 0 && it->fail_prefix[0])
            WEIR_WARN(COMP, "%s: %s", it->fail_prefix, it->err);
        else if (it->rc != 0)
            WEIR_WARN(COMP, "cannot delete %s: %s", it->uri, it->err);
        else if (it->ok_line[0])
            WEIR_INFO(COMP, "%s", it->ok_line);
        break;
    }
    weir_storage_close(&st);
}

/* A new item of @p kind for @p job (NULL when out of memory: logged). */
static sw_item_t *sw_item_new(weir_jobmanager_t *jm, const weir_jm_job_t *job, int kind,
                              const char *uri) {
    sw_item_t *it = calloc(1, sizeof *it);
    if (!it) {
        WEIR_ERROR(COMP, "job %s: out of memory for a storage operation on %s", job->id, uri);
        return NULL;
    }
    it->base.kind = kind;
    it->base.run = sw_run;
    it->base.free = sw_item_free;
    memcpy(it->base.job_id, job->id, sizeof it->base.job_id);
    it->env = jm->storage_env;
    weir_fmt(it->uri, sizeof it->uri, "%s", uri ? uri : "");
    return it;
}

/* Hands @p it to the worker: the job counts it until its result is applied (no trigger, restore or
 * HA removal meanwhile). */
static void sw_submit_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, sw_item_t *it) {
    it->base.gen = job->sw_gen;
    job->sw_pending++;
    weir_jm_sw_submit(jm->sw, &it->base);
}

void weir__jm_uri_delete_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, const char *uri) {
    sw_item_t *it = sw_item_new(jm, job, SW_DELETE, uri);
    if (it)
        sw_submit_locked(jm, job, it);
}

/* Removes chk-<id> of the job's <ckdir> on the worker (a failure is logged: retention deletes it
 * later). */
static void delete_chk_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, uint64_t id) {
    sw_item_t *it = sw_item_new(jm, job, SW_DELETE, job->ckdir);
    if (!it)
        return;
    it->id = id;
    sw_submit_locked(jm, job, it);
}

/* Makes next_id above every chk-* directory and the latest completed id: <ckdir> is listed once,
 * on the worker, when the job's checkpointing starts; afterwards next_id stays in memory above
 * every id handed out. @returns false while that listing is not done (no id is handed out then:
 * it could reuse one). */
static bool ensure_next_id(weir_jobmanager_t *jm, weir_jm_job_t *job, int64_t now_ns) {
    if (!job->ck_listed) {
        if (!job->sw_pending && now_ns >= job->ck_list_retry_ns) {
            sw_item_t *it = sw_item_new(jm, job, SW_LIST, job->ckdir);
            if (it)
                sw_submit_locked(jm, job, it);
        }
        return false;
    }
    uint64_t above = job->ckpt.latest_id + 1;
    if (job->ckpt.next_id < above)
        job->ckpt.next_id = above;
    return true;
}
void weir__jm_ckpt_abort_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, const char *why) {
    uint64_t id = job->ckpt.pending_id;
    /* a completion being written may still make it durable (and named by the HA pointer): its
     * directory stays; its result, stale now, records it as a restore point (apply) */
    bool writing = job->ckpt.completing_id != 0;
    job->sw_gen++;
    if (id && job->ckpt.pending_kind != WEIR_CK_CHECKPOINT) {
        char msg[300];
        weir_fmt(msg, sizeof msg, "aborted: %s", why);
        weir__jm_sp_failed_locked(jm, job, id, msg, false, writing);
    } else if (id && job->ck_st) {
        if (!writing)
            delete_chk_locked(jm, job, id);
        WEIR_INFO(COMP, "checkpoint %" PRIu64 " of job %s aborted: %s%s", id, job->id, why,
                  writing ? " (its metadata is being written: its directory stays)" : "");
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

/* Starts the completion of the in-flight checkpoint (or the final one): builds its _metadata and
 * hands it to the storage worker, which writes it and then the HA pointer; the coordinator is
 * busy (completing) until apply_complete_locked. @returns false with @p why when nothing was
 * started (the final checkpoint waits for the listing of <ckdir>: then @p why is empty). */
static bool complete_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, bool final, char *why,
                            size_t whylen) {
    weir_ckpt_coord_t *c = &job->ckpt;
    int64_t now = weir_now_ns(), wall = weir_wall_ms();
    why[0] = 0;
    uint64_t id;
    int64_t trigger_ms;
    if (final) {
        if (!ensure_next_id(jm, job, now))
            return false;
        id = weir_ckpt_coord_begin_final(c, now, wall);
        trigger_ms = wall;
    } else {
        id = c->pending_id;
        trigger_ms = c->pending_trigger_ms;
    }
    sw_item_t *it = sw_item_new(jm, job, SW_COMPLETE, job->ckdir);
    int rc = it ? weir_ckpt_coord_build_meta(c, job->id, id, final, trigger_ms, wall, &it->meta)
                : WEIR_ENOMEM;
    if (rc == 0)
        rc = weir_ckpt_meta_set_graph(&it->meta, job->dag);
    if (rc != 0) {
        if (it)
            sw_item_free(&it->base);
        WEIR_WARN(COMP, "checkpoint %" PRIu64 " of job %s failed: out of memory", id, job->id);
        weir_fmt(why, whylen, "failed: cannot write its metadata: out of memory");
        return false;
    }
    it->id = id;
    it->final = final;
    it->ha_st = jm->ha_st;
    weir_ckpt_chk_path(job->ckdir, id, it->path, sizeof it->path);
    weir_ckpt_coord_completing(c, id);
    sw_submit_locked(jm, job, it);
    return true;
}

/* Retention + GC of <ckdir> on the worker after checkpoint @p id completed (what the HA pointer
 * names now: pinned); final snapshots not yet part of a checkpoint are protected. The job's GC
 * marks go with the item and come back when it is applied (FIFO: before any later round); then
 * NOTIFY @p id goes out (the order of docs/checkpointing.md: retention, then NOTIFY), unless the
 * attempt changed meanwhile. @returns false when nothing was submitted (out of memory). */
static bool retain_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, uint64_t id, bool final) {
    weir_ckpt_coord_t *c = &job->ckpt;
    sw_item_t *it = sw_item_new(jm, job, SW_RETAIN, job->ckdir);
    if (!it)
        return false;
    it->id = id;
    it->final = final;
    it->num_retained = jm->ckcfg.num_retained;
    it->protect = calloc(c->n_subtasks ? c->n_subtasks : 1, sizeof *it->protect);
    for (uint32_t i = 0; it->protect && i < c->n_subtasks; i++)
        if (c->finals[i].acked && c->finals[i].keyed &&
            (it->protect[it->n_protect] = strdup(c->finals[i].keyed)))
            it->n_protect++;
    if (!it->protect && c->n_subtasks) {
        sw_item_free(&it->base); /* out of memory: no retention this time (tried next time) */
        return false;
    }
    it->marks = job->gc_marks;
    memset(&job->gc_marks, 0, sizeof job->gc_marks);
    sw_submit_locked(jm, job, it);
    return true;
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
    if (!keep_dir)
        delete_chk_locked(jm, job, id);
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

/* The result of a checkpoint completion: only a current one (same generation, still the one the
 * coordinator waits for, job RUNNING) completes: coordinator, kill point, retention, NOTIFY (when
 * the retention is applied). A
 * stale one that turned out durable is a restore point nobody was notified of (like a job
 * manager killed at jm-after-metadata); a stale failure changes nothing. */
static void apply_complete_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, sw_item_t *it) {
    weir_ckpt_coord_t *c = &job->ckpt;
    uint64_t id = it->id;
    bool current =
        it->base.gen == job->sw_gen && c->completing_id == id && job->state == WEIR_JOB_RUNNING;
    if (!current) {
        if (it->fail == FAIL_NONE) {
            weir_ckpt_coord_complete_late(c, id, it->final, it->path);
            WEIR_INFO(COMP,
                      "checkpoint %" PRIu64 " of job %s was written after the job stopped "
                      "waiting for it: a restore point (not notified)",
                      id, job->id);
        }
        return;
    }
    if (it->fail != FAIL_NONE) {
        char why[4700];
        if (it->fail == FAIL_METADATA)
            weir_fmt(why, sizeof why, "failed: cannot write its metadata: %s", it->err);
        else
            weir_fmt(why, sizeof why, "failed: cannot write the HA pointer: %s", it->err);
        weir_ckpt_coord_completing(c, 0);
        if (it->final) {
            c->final_done = false;
            weir__jm_failover_cause_locked(jm, job, "CheckpointFailure",
                                           "the final checkpoint could not be written", NULL);
        } else {
            failed_checkpoint_locked(jm, job, why, it->fail == FAIL_POINTER);
        }
        return;
    }
    weir_ckpt_coord_complete(c, id, it->final, it->path, weir_now_ns(), weir_wall_ms());
    WEIR_INFO(COMP,
              "checkpoint %" PRIu64 "%s of job %s completed in %" PRId64 " ms (%" PRIu64
              " bytes of state, %" PRIu64 " uploaded)",
              id, it->final ? " (final)" : "", job->id, c->latest.duration_ms, c->latest.state_size,
              c->latest.uploaded_size);
    weir_killpoint_hit(&jm->killpoint, "jm-after-metadata");
    if (!retain_locked(jm, job, id, it->final))
        notify_locked(jm, job, id, it->final); /* no retention this time (out of memory) */
}

/* Every subtask acked the in-flight savepoint: its _metadata into its own directory (no retention,
 * no shared files: the subtasks wrote self-contained snapshots) and the HA pointer, on the worker;
 * apply_savepoint_locked completes it. */
static void complete_savepoint_locked(weir_jobmanager_t *jm, weir_jm_job_t *job) {
    weir_ckpt_coord_t *c = &job->ckpt;
    uint64_t id = c->pending_id;
    sw_item_t *it = sw_item_new(jm, job, SW_SAVEPOINT, c->pending_target);
    int rc = it ? weir_ckpt_coord_build_meta(c, job->id, id, false, c->pending_trigger_ms,
                                             weir_wall_ms(), &it->meta)
                : WEIR_ENOMEM;
    if (rc == 0)
        rc = weir_ckpt_meta_set_graph(&it->meta, job->dag);
    if (rc != 0) {
        if (it)
            sw_item_free(&it->base);
        failed_checkpoint_locked(jm, job, "failed: out of memory", true);
        return;
    }
    it->meta.kind = WEIR_CK_SAVEPOINT;
    it->id = id;
    it->sp_kind = c->pending_kind;
    it->ha_st = jm->ha_st;
    weir_ckpt_coord_completing(c, id);
    sw_submit_locked(jm, job, it);
}

/* The result of a savepoint's writes: a current one completes it (a stop-savepoint then becomes
 * the job's restore point and every subtask gets NOTIFY final: commit everything, finish); a stale
 * durable one is a restore point. */
static void apply_savepoint_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, sw_item_t *it) {
    weir_ckpt_coord_t *c = &job->ckpt;
    uint64_t id = it->id;
    bool current =
        it->base.gen == job->sw_gen && c->completing_id == id && job->state == WEIR_JOB_RUNNING;
    if (!current) {
        if (it->rc == 0) {
            weir_ckpt_coord_complete_late(c, id, false, it->uri);
            WEIR_INFO(COMP,
                      "savepoint %" PRIu64 " of job %s was written after the job stopped waiting "
                      "for it: %s stays, a restore point",
                      id, job->id, it->uri);
        }
        return;
    }
    if (it->rc != 0) {
        weir_ckpt_coord_completing(c, 0);
        failed_checkpoint_locked(jm, job, it->err, true);
        return;
    }
    weir__jm_sp_completed_locked(jm, job, it->uri);
    weir_killpoint_hit(&jm->killpoint, "jm-after-savepoint");
    if (it->sp_kind == WEIR_CK_STOP)
        notify_locked(jm, job, id, true);
}

void weir__jm_sw_apply_locked(weir_jobmanager_t *jm) {
    if (!jm->sw)
        return;
    weir_jm_sw_item_t *list = weir_jm_sw_take_done(jm->sw);
    while (list) {
        weir_jm_sw_item_t *next = list->next;
        sw_item_t *it = (sw_item_t *)list;
        weir_jm_job_t *job = weir__jm_find_job_locked(jm, it->base.job_id);
        if (job && job->sw_pending)
            job->sw_pending--;
        if (job) {
            switch (it->base.kind) {
            case SW_LIST:
                if (it->rc == 0) {
                    if (job->ckpt.next_id < it->max_dir + 1)
                        job->ckpt.next_id = it->max_dir + 1;
                    job->ck_listed = true;
                } else {
                    WEIR_WARN(COMP, "cannot list %s: %s: no checkpoint of job %s triggered now",
                              job->ckdir, it->err, job->id);
                    job->ck_list_retry_ns = weir_now_ns() + 1000000000LL;
                }
                break;
            case SW_COMPLETE:
                apply_complete_locked(jm, job, it);
                break;
            case SW_SAVEPOINT:
                apply_savepoint_locked(jm, job, it);
                break;
            case SW_DELETE:
                if (it->end_rule)
                    job->ck_released = true;
                break;
            case SW_RETAIN:
                weir_ckpt_gc_marks_free(&job->gc_marks);
                job->gc_marks = it->marks;
                memset(&it->marks, 0, sizeof it->marks);
                if (it->base.gen == job->sw_gen && job->state == WEIR_JOB_RUNNING)
                    notify_locked(jm, job, it->id, it->final);
                break;
            default:
                break;
            }
        }
        it->base.free(&it->base);
        list = next;
    }
}

/* After an ack (or a tick): completes what is ready. */
static void progress_locked(weir_jobmanager_t *jm, weir_jm_job_t *job) {
    if (job->state != WEIR_JOB_RUNNING)
        return;
    char why[2600];
    if (weir_ckpt_coord_ready(&job->ckpt) && job->ckpt.pending_kind != WEIR_CK_CHECKPOINT) {
        complete_savepoint_locked(jm, job);
    } else if (weir_ckpt_coord_ready(&job->ckpt)) {
        if (!complete_locked(jm, job, false, why, sizeof why))
            failed_checkpoint_locked(jm, job, why, false);
    }
    if (job->state == WEIR_JOB_RUNNING && weir_ckpt_coord_final_ready(&job->ckpt)) {
        if (!complete_locked(jm, job, true, why, sizeof why) && why[0]) {
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
    /* storage work of this job on the worker (a completion, retention, a delete, the listing):
     * nothing starts meanwhile (retention must not meet a new checkpoint's directory) */
    if (job->sw_pending || !ensure_next_id(jm, job, now_ns))
        return;
    if (weir__jm_sp_queued_locked(job)) {
        /* a savepoint goes first: it starts when nothing is in flight and every subtask runs
         * (periodic checkpoints wait for it) */
        if (!c->pending_id && !c->completing_id && job_all_running(job))
            weir__jm_sp_start_locked(
                jm, job, now_ns, c->final_done ? 0 : weir__jm_ckpt_trigger_locked(jm, job, 0, 0));
        return;
    }
    if (!weir_ckpt_coord_due(c, &jm->ckcfg, job_all_running(job), now_ns))
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
    if (!job || !job->ckpt.pending_id || m->checkpoint_id != job->ckpt.pending_id ||
        job->ckpt.completing_id)
        return; /* (every subtask acked it: its completion is being written) */
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
    if (job->sw_pending)
        return; /* storage work of the job is still on the worker: it goes first */
    bool del =
        (job->state == WEIR_JOB_CANCELED && jm->ck_retention != WEIR_JM_RETAIN_ON_CANCELLATION) ||
        (job->state == WEIR_JOB_FINISHED && jm->ck_retention == WEIR_JM_NO_EXTERNALIZED);
    if (!del) {
        job->ck_released = true;
        if (job->state == WEIR_JOB_CANCELED && job->ckpt.have_completed)
            WEIR_INFO(COMP, "job %s canceled: its checkpoints stay in %s (latest: %s)", job->id,
                      job->ckdir, job->ckpt.latest_path);
        return;
    }
    sw_item_t *it = sw_item_new(jm, job, SW_DELETE, job->ckdir);
    if (!it)
        return;
    weir_fmt(it->fail_prefix, sizeof it->fail_prefix,
             "job %s %s: cannot delete its checkpoint directory", job->id,
             weir__jm_job_state_name(job->state));
    weir_fmt(it->ok_line, sizeof it->ok_line,
             "job %s %s: its checkpoint directory %s was deleted (%s)", job->id,
             weir__jm_job_state_name(job->state), job->ckdir,
             jm->ck_retention == WEIR_JM_NO_EXTERNALIZED ? "NO_EXTERNALIZED_CHECKPOINTS"
                                                         : "DELETE_ON_CANCELLATION");
    it->end_rule = true;           /* released when applied (tried once, as before) */
    sw_submit_locked(jm, job, it); /* the HA entry goes after it (jobmanager.c) */
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
    if (job->sw_pending) /* a completion may still become the restore point: wait for it */
        return weir_errf(errstr, errlen, WEIR_EIO,
                         "the checkpoint storage work of job %s (a completion or a delete) is "
                         "not finished: cannot restore it now",
                         job->id);
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
