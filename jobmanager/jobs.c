/* Owns the job manager's job table: a job built from its plugin, args and graph (the plugin must
 * be in the blob store; the graph is parsed and finalized; per vertex its subtasks; the slots it
 * needs; its checkpoint directory and coordinator), lookups, and the lifecycle
 *   CREATED -> RUNNING -> FINISHED | FAILED | CANCELED, with CANCELING and RESTARTING in between:
 * subtask state reports, failover through the restart strategy (restart.h), failure, cancel
 * (CANCEL to each task manager still hosting a subtask) and the end of a stop (slots freed once
 * every subtask stopped, or after WEIR_JM_CANCEL_BOUND_MS, except the slots of subtasks a live task
 * manager did not confirm: those stay taken on it, see taskmanagers.c), and the reconciliation of
 * heartbeats (a task manager running a subtask the job manager did not deploy on it, for the
 * job's current attempt, is told to CANCEL it and its slot stays taken until it confirms).
 *
 * Invariants: jobs are never removed from the table (their HA entry is, at a terminal state); a
 * terminal state (FINISHED, FAILED, CANCELED) never changes; subtask updates are accepted only
 * from the task manager instance (seq) the subtask was deployed to, for the job's current attempt,
 * and never after a terminal subtask state; a job holds its slots from deployment until every
 * subtask is terminal (or its task manager is gone, or WEIR_JM_CANCEL_BOUND_MS passed after the
 * stop request); a subtask of a live task manager counts as stopped for the reuse of that task
 * manager's slots only once it confirmed (a final TASK_STATE); a job that fails or restarts first
 * aborts its in-flight checkpoint; messages of older attempts are ignored (but a final state
 * still confirms an unconfirmed subtask).
 *
 * Threading: *_locked functions run with jm->mu held, on the main thread or (find, add, cancel)
 * on the REST thread; weir__jm_job_check_plugin, weir__jm_job_new and weir__jm_job_free touch no
 * table and run without it. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "jobmanager/txguard.h"
#include "jobmanager/jobmanager_int.h"
#include "savepoint/plan.h"
#include "savepoint/read.h"
#include "jobmanager/scheduler.h"

#define COMP "jobmanager"

const char *weir__jm_job_state_name(weir_jm_job_state_t s) {
    switch (s) {
    case WEIR_JOB_CREATED:
        return "CREATED";
    case WEIR_JOB_RUNNING:
        return "RUNNING";
    case WEIR_JOB_CANCELING:
        return "CANCELING";
    case WEIR_JOB_FINISHED:
        return "FINISHED";
    case WEIR_JOB_FAILED:
        return "FAILED";
    case WEIR_JOB_CANCELED:
        return "CANCELED";
    case WEIR_JOB_RESTARTING:
        return "RESTARTING";
    }
    return "UNKNOWN";
}

static bool task_terminal(weir_task_state_t s) {
    return s == WEIR_TASK_FINISHED || s == WEIR_TASK_CANCELED || s == WEIR_TASK_FAILED;
}

void weir__jm_set_str(char **dst, const char *src) {
    char *copy = src ? strdup(src) : NULL;
    free(*dst);
    *dst = copy;
}

/* ---------------------------------------------------------------- table */

weir_jm_job_t *weir__jm_find_job_locked(weir_jobmanager_t *jm, const char *id) {
    for (size_t i = 0; i < jm->n_jobs; i++)
        if (strcmp(jm->jobs[i]->id, id) == 0)
            return jm->jobs[i];
    return NULL;
}

int weir__jm_add_job_locked(weir_jobmanager_t *jm, weir_jm_job_t *job) {
    if (jm->n_jobs == jm->cap_jobs) {
        size_t cap = jm->cap_jobs ? jm->cap_jobs * 2 : 16;
        weir_jm_job_t **jobs = realloc(jm->jobs, cap * sizeof *jobs);
        if (!jobs)
            return WEIR_ENOMEM;
        jm->jobs = jobs;
        jm->cap_jobs = cap;
    }
    jm->jobs[jm->n_jobs++] = job;
    return 0;
}

void weir__jm_job_free(weir_jm_job_t *job) {
    if (!job)
        return;
    free(job->name);
    free(job->message);
    for (uint32_t i = 0; i < job->n_args; i++)
        free(job->args[i]);
    free(job->args);
    json_decref(job->graph);
    free(job->graph_text);
    weir_graph_destroy(&job->dag);
    if (job->subtasks) {
        for (uint32_t v = 0; v < job->n_vertices; v++) {
            if (!job->subtasks[v])
                continue;
            for (uint32_t s = 0; s < job->parallelism[v]; s++) {
                free(job->subtasks[v][s].tm_id);
                free(job->subtasks[v][s].address);
                free(job->subtasks[v][s].message);
            }
            free(job->subtasks[v]);
        }
        free(job->subtasks);
    }
    free(job->parallelism);
    free(job->slot_tm_seq);
    weir_ckpt_coord_free(&job->ckpt);
    weir_storage_close(&job->ck_st);
    weir_ckpt_gc_marks_free(&job->gc_marks);
    free(job->ckdir);
    free(job->ha_pointer);
    free(job->restore_path);
    weir__jm_sp_free(job);
    weir__jm_exceptions_free(job);
    free(job);
}

int weir__jm_job_set_restore(weir_jobmanager_t *jm, weir_jm_job_t *job, const char *path,
                             bool allow_non_restored, char *errstr, size_t errlen) {
    weir_ckpt_meta_t meta;
    char base[WEIR_STORAGE_URI_MAX], err[WEIR_STORAGE_URI_MAX + 512] = "";
    int rc = weir_savepoint_read(jm->storage_env, path, &meta, base, sizeof base, err, sizeof err);
    if (rc != 0)
        return weir_errf(errstr, errlen, rc, "cannot restore from %s: %s", path, err);
    if (strlen(base) >= sizeof job->ckpt.restored_path - 64) {
        weir_ckpt_meta_clear(&meta);
        return weir_errf(errstr, errlen, WEIR_EINVAL,
                         "cannot restore from %s: its location is longer than %zu bytes", base,
                         sizeof job->ckpt.restored_path - 64);
    }
    weir_restore_plan_t *plan = NULL;
    rc = weir_restore_plan_build(&meta, NULL, job->dag, base, false, allow_non_restored, &plan, err,
                                 sizeof err);
    weir_restore_plan_free(&plan);
    weir_ckpt_meta_clear(&meta);
    if (rc != 0)
        return weir_errf(errstr, errlen, rc, "%s", err);
    weir__jm_set_str(&job->restore_path, base);
    job->allow_non_restored = allow_non_restored;
    return job->restore_path ? 0 : weir_errf(errstr, errlen, WEIR_ENOMEM, "out of memory");
}

bool weir__jm_job_settled_locked(const weir_jm_job_t *job) {
    return weir__jm_job_terminal(job->state) && !job->slots_held &&
           (!job->ckdir || job->ck_released) && !job->ha_saved && !weir__jm_sp_active_locked(job);
}

/* ---------------------------------------------------------------- construction */

void weir__jm_job_set_id(weir_jobmanager_t *jm, weir_jm_job_t *job, const char *id) {
    if (id != job->id)
        memcpy(job->id, id, sizeof job->id);
    job->id[32] = 0;
    if (job->ckdir) { /* allocated with room for the directory and any id */
        weir_fmt(job->ckdir, strlen(jm->ck_root) + 40, "%s/%s", jm->ck_root, job->id);
        char err[WEIR_STORAGE_URI_MAX + 256];
        if (weir__jm_job_open_ckdir(jm, job, err, sizeof err) != 0) {
            /* its root opened at start: out of memory. Without storage, no checkpoints. */
            WEIR_ERROR(COMP, "job %s runs without checkpoints: %s", job->id, err);
            free(job->ckdir);
            job->ckdir = NULL;
        }
    }
}

int weir__jm_job_check_plugin(weir_jobmanager_t *jm, const char *sha, char *errstr, size_t errlen) {
    if (!sha || !weir_blobstore_valid_sha(sha)) {
        weir_fmt(errstr, errlen,
                 "\"plugin\" must be the sha256 (64 lowercase hex digits) of a "
                 "blob uploaded with POST /blobs");
        return WEIR_EINVAL;
    }
    if (!weir_blobstore_has(jm->blobs, sha)) {
        weir_fmt(errstr, errlen, "unknown plugin blob %s: upload it with POST /blobs first", sha);
        return WEIR_ENOTFOUND;
    }
    return 0;
}

weir_jm_job_t *weir__jm_job_new(weir_jobmanager_t *jm, const char *sha, const char *const *args,
                                uint32_t n_args, const json_t *graph, char *errstr, size_t errlen) {
    char gerr[512];
    weir_jm_job_t *job = calloc(1, sizeof *job);
    if (!job)
        goto oom;
    job->end_ms = -1;
    job->attempt = 1;
    memcpy(job->plugin, sha, 65);
    if (n_args) {
        job->args = calloc(n_args, sizeof *job->args);
        if (!job->args)
            goto oom;
        for (uint32_t i = 0; i < n_args; i++) {
            job->args[i] = strdup(args[i]);
            if (!job->args[i])
                goto oom;
            job->n_args = i + 1;
        }
    }
    gerr[0] = 0;
    job->dag = weir_graph_from_json(graph, gerr, sizeof gerr);
    if (!job->dag) {
        weir_fmt(errstr, errlen, "%s", gerr[0] ? gerr : "invalid job graph");
        goto fail;
    }
    if (job->dag->n_vertices == 0) {
        weir_fmt(errstr, errlen, "the job graph has no operators");
        goto fail;
    }
    const weir_restart_cfg_t *rs = &jm->restart_cfg;
    weir_txguard_cfg_t guard = {.checkpointing = jm->ckcfg.enabled,
                                .interval_ms = jm->ckcfg.interval_ms,
                                .timeout_ms = jm->ckcfg.timeout_ms,
                                .heartbeat_timeout_ms = jm->hb_timeout_ms,
                                .restart_delay_ms =
                                    rs->type == WEIR_RESTART_EXPONENTIAL_DELAY ? rs->max_backoff_ms
                                    : rs->type == WEIR_RESTART_FIXED_DELAY     ? rs->delay_ms
                                                                               : 0};
    if (weir_txguard_check(job->dag, &guard, errstr, errlen) != 0)
        goto fail;
    job->graph = json_deep_copy(graph);
    job->graph_text = job->graph ? json_dumps(job->graph, JSON_COMPACT) : NULL;
    job->name = strdup(job->dag->name ? job->dag->name : "unnamed");
    if (!job->graph || !job->graph_text || !job->name)
        goto oom;
    job->n_vertices = job->dag->n_vertices;
    job->parallelism = calloc(job->n_vertices, sizeof *job->parallelism);
    job->subtasks = calloc(job->n_vertices, sizeof *job->subtasks);
    if (!job->parallelism || !job->subtasks)
        goto oom;
    for (uint32_t v = 0; v < job->n_vertices; v++) {
        uint32_t p = job->dag->vertices[v].parallelism;
        if (p == 0) {
            weir_fmt(errstr, errlen, "vertex %u (%s) has parallelism 0", v,
                     job->dag->vertices[v].name);
            goto fail;
        }
        job->parallelism[v] = p;
        job->subtasks[v] = calloc(p, sizeof **job->subtasks);
        if (!job->subtasks[v])
            goto oom;
    }
    job->slots_needed = weir_sched_slots_needed(job->parallelism, job->n_vertices);
    job->slot_tm_seq = calloc(job->slots_needed, sizeof *job->slot_tm_seq);
    if (!job->slot_tm_seq)
        goto oom;
    if (weir_new_id(job->id) != 0) {
        weir_fmt(errstr, errlen, "cannot create a job id: no randomness");
        goto fail;
    }
    if (weir_ckpt_coord_init(&job->ckpt, job->n_vertices, job->parallelism) != 0)
        goto oom;
    if (jm->ckcfg.enabled && jm->ck_root) {
        size_t n = strlen(jm->ck_root) + 40;
        job->ckdir = malloc(n);
        if (!job->ckdir)
            goto oom;
    }
    weir__jm_job_set_id(jm, job, job->id);
    weir_restart_state_init(&job->restart);
    job->start_ms = weir_wall_ms();
    job->created_ns = weir_now_ns();
    job->state = WEIR_JOB_CREATED;
    return job;
oom:
    weir_fmt(errstr, errlen, "job manager out of memory");
fail:
    weir__jm_job_free(job);
    return NULL;
}

/* ---------------------------------------------------------------- job lifecycle */

static weir_jm_tm_t *subtask_tm(weir_jobmanager_t *jm, const weir_jm_subtask_t *st) {
    return weir__jm_find_tm_seq_locked(jm, st->tm_seq);
}

/* Sends CANCEL to every task manager still hosting a non-terminal subtask of @p job. */
static void send_cancels_locked(weir_jobmanager_t *jm, weir_jm_job_t *job) {
    for (size_t i = 0; i < jm->n_tms; i++) {
        weir_jm_tm_t *tm = jm->tms[i];
        bool hosts = false;
        for (uint32_t v = 0; v < job->n_vertices && !hosts; v++)
            for (uint32_t s = 0; s < job->parallelism[v] && !hosts; s++)
                if (job->subtasks[v][s].tm_seq == tm->seq &&
                    !task_terminal(job->subtasks[v][s].state))
                    hosts = true;
        if (!hosts)
            continue;
        weir_msg_t m = {.type = WEIR_MSG_CANCEL, .attempt = job->attempt};
        memcpy(m.job_id, job->id, sizeof m.job_id);
        weir__jm_send_locked(jm, tm, &m);
    }
}

static void job_fail_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, const char *msg) {
    weir__jm_ckpt_abort_locked(jm, job, "the job failed");
    job->state = WEIR_JOB_FAILED;
    weir__jm_set_str(&job->message, msg);
    job->end_ms = weir_wall_ms();
    job->stop_ns = weir_now_ns();
    WEIR_WARN(COMP, "job %s (%s) FAILED: %s", job->id, job->name, msg);
    send_cancels_locked(jm, job);
}

void weir__jm_failover_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, const char *msg) {
    weir__jm_failover_cause_locked(jm, job, "JobFailure", msg, NULL);
}

void weir__jm_failover_cause_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, const char *name,
                                    const char *msg, const weir_jm_cause_t *cause) {
    if (job->state != WEIR_JOB_RUNNING)
        return;
    weir__jm_exception_add_locked(job, name, msg, cause);
    int64_t delay_ms = 0;
    if (!weir_restart_on_failure(&jm->restart_cfg, &job->restart, weir_wall_ms(), &delay_ms)) {
        if (jm->restart_cfg.type != WEIR_RESTART_NONE)
            WEIR_WARN(COMP, "job %s (%s): no restart left (%s strategy, %u restarts so far)",
                      job->id, job->name, weir_restart_type_name(jm->restart_cfg.type),
                      job->restart.restarts);
        job_fail_locked(jm, job, msg);
        return;
    }
    weir__jm_ckpt_abort_locked(jm, job, "the job is restarting");
    job->state = WEIR_JOB_RESTARTING;
    weir__jm_set_str(&job->message, msg);
    job->stop_ns = weir_now_ns();
    job->restart_at_ns = job->stop_ns + delay_ms * 1000000;
    WEIR_WARN(COMP, "job %s (%s) RESTARTING in %" PRId64 " ms (restart %u, attempt %u failed): %s",
              job->id, job->name, delay_ms, job->restart.restarts, job->attempt, msg);
    send_cancels_locked(jm, job);
}

/* True when every deployed subtask ended or lost its task manager. */
static bool job_all_stopped(weir_jobmanager_t *jm, const weir_jm_job_t *job) {
    for (uint32_t v = 0; v < job->n_vertices; v++)
        for (uint32_t s = 0; s < job->parallelism[v]; s++) {
            const weir_jm_subtask_t *st = &job->subtasks[v][s];
            if (st->tm_seq && !task_terminal(st->state) && subtask_tm(jm, st))
                return false;
        }
    return true;
}

/* The stop bound passed: every subtask a live task manager did not confirm keeps its slot taken
 * on that task manager (an unconfirmed subtask) until it confirms. */
static void hold_unconfirmed_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, int64_t bound_ms) {
    for (uint32_t v = 0; v < job->n_vertices; v++)
        for (uint32_t s = 0; s < job->parallelism[v]; s++) {
            weir_jm_subtask_t *st = &job->subtasks[v][s];
            weir_jm_tm_t *tm = st->tm_seq && !task_terminal(st->state) ? subtask_tm(jm, st) : NULL;
            if (!tm)
                continue;
            WEIR_WARN(COMP,
                      "job %s (%s): %s (%u/%u, attempt %u) on task manager %s did not confirm the "
                      "cancel within %" PRId64 " ms; its slot stays taken there until it does",
                      job->id, job->name, job->dag->vertices[v].name, s + 1, job->parallelism[v],
                      job->attempt, tm->id, bound_ms);
            weir__jm_tm_hold_unconfirmed_locked(jm, tm, job->id, job->attempt, v, s);
        }
}

/* Frees the slots of stopped jobs and completes cancellations. */
void weir__jm_check_stopped_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, int64_t now) {
    if (!job->slots_held || job->state == WEIR_JOB_RUNNING || job->state == WEIR_JOB_CREATED)
        return;
    bool all = job_all_stopped(jm, job);
    int64_t bound_ms = jm->cancel_bound_ms > 0 ? jm->cancel_bound_ms : WEIR_JM_CANCEL_BOUND_MS;
    bool expired = now - job->stop_ns > bound_ms * 1000000;
    if (!all && !expired)
        return;
    if (!all)
        hold_unconfirmed_locked(jm, job, bound_ms);
    weir__jm_release_slots_locked(jm, job);
    if (job->state == WEIR_JOB_CANCELING) {
        job->state = WEIR_JOB_CANCELED;
        job->end_ms = weir_wall_ms();
        WEIR_INFO(COMP, "job %s (%s) CANCELED", job->id, job->name);
    }
}

int weir__jm_cancel_job_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, char *errstr,
                               size_t errlen) {
    switch (job->state) {
    case WEIR_JOB_CREATED:
        job->state = WEIR_JOB_CANCELED;
        weir__jm_set_str(&job->message, "canceled by request");
        job->end_ms = weir_wall_ms();
        WEIR_INFO(COMP, "job %s (%s) CANCELED before it was scheduled", job->id, job->name);
        return 0;
    case WEIR_JOB_RUNNING:
        job->state = WEIR_JOB_CANCELING;
        weir__jm_set_str(&job->message, "canceled by request");
        job->stop_ns = weir_now_ns();
        WEIR_INFO(COMP, "job %s (%s) CANCELING", job->id, job->name);
        send_cancels_locked(jm, job);
        weir__jm_check_stopped_locked(jm, job, job->stop_ns);
        weir__jm_wake(jm);
        return 0;
    case WEIR_JOB_RESTARTING:
        weir__jm_set_str(&job->message, "canceled by request");
        if (job->slots_held) {
            job->state = WEIR_JOB_CANCELING; /* CANCEL was sent when it failed over */
            weir__jm_check_stopped_locked(jm, job, weir_now_ns());
        } else {
            job->state = WEIR_JOB_CANCELED;
            job->end_ms = weir_wall_ms();
            WEIR_INFO(COMP, "job %s (%s) CANCELED while restarting", job->id, job->name);
        }
        return 0;
    case WEIR_JOB_CANCELING:
        return 0;
    default:
        weir_fmt(errstr, errlen, "job %s is already %s: nothing to cancel", job->id,
                 weir__jm_job_state_name(job->state));
        return WEIR_EINVAL;
    }
}

/* A heartbeat of @p tm names a live subtask the job manager did not deploy on this instance for
 * the job's current attempt (an older attempt, a job it does not know, or a deployment to an
 * earlier instance of the same id): CANCEL its (job, attempt) there, once, and keep its slot
 * taken until @p tm confirms the stop. */
static void cancel_stray_locked(weir_jobmanager_t *jm, weir_jm_tm_t *tm,
                                const weir_msg_task_state_t *ts) {
    if (task_terminal(ts->state) || weir__jm_tm_unconfirmed_locked(jm, tm, ts, false))
        return;
    WEIR_WARN(COMP,
              "task manager %s runs task %s/%u.%u (attempt %u), which is not deployed there: "
              "canceling it; its slot stays taken until it stops",
              tm->id, ts->job_id, ts->vertex, ts->subtask, ts->attempt);
    weir__jm_tm_hold_unconfirmed_locked(jm, tm, ts->job_id, ts->attempt, ts->vertex, ts->subtask);
    weir_msg_t m = {.type = WEIR_MSG_CANCEL, .attempt = ts->attempt};
    memcpy(m.job_id, ts->job_id, sizeof m.job_id);
    weir__jm_send_locked(jm, tm, &m);
}

void weir__jm_apply_task_state_locked(weir_jobmanager_t *jm, weir_jm_tm_t *tm,
                                      const weir_msg_task_state_t *ts, bool metrics_only) {
    if (!metrics_only && task_terminal(ts->state))
        weir__jm_tm_unconfirmed_locked(jm, tm, ts, true);
    weir_jm_job_t *job = weir__jm_find_job_locked(jm, ts->job_id);
    weir_jm_subtask_t *st = job && ts->attempt == job->attempt && ts->vertex < job->n_vertices &&
                                    ts->subtask < job->parallelism[ts->vertex]
                                ? &job->subtasks[ts->vertex][ts->subtask]
                                : NULL;
    if (!st || st->tm_seq != tm->seq) {
        if (metrics_only)
            cancel_stray_locked(jm, tm, ts);
        return;
    }
    if (task_terminal(st->state))
        return;
    /* the two latest reports: GET .../backpressure divides their deltas by the time between */
    st->prev_metrics = st->metrics;
    st->prev_metrics_ns = st->metrics_ns;
    st->metrics = ts->metrics;
    st->metrics_ns = weir_now_ns();
    if (metrics_only)
        return;
    st->state = ts->state;
    if (task_terminal(ts->state))
        st->end_ms = weir_wall_ms();
    if (ts->message)
        weir__jm_set_str(&st->message, ts->message);
    const char *vname = job->dag->vertices[ts->vertex].name;
    WEIR_DEBUG(COMP, "job %s: %s (%u/%u) on %s -> %s", job->id, vname, ts->subtask + 1,
               job->parallelism[ts->vertex], tm->id, weir_task_state_name(ts->state));
    if (job->state == WEIR_JOB_RUNNING) {
        if (ts->state == WEIR_TASK_FAILED || ts->state == WEIR_TASK_CANCELED) {
            char msg[2048], task[512];
            weir_fmt(msg, sizeof msg, "%s (%u/%u) on %s: %s", vname, ts->subtask + 1,
                     job->parallelism[ts->vertex], tm->id,
                     ts->message
                         ? ts->message
                         : (ts->state == WEIR_TASK_CANCELED ? "canceled unexpectedly" : "failed"));
            weir_fmt(task, sizeof task, "%s (%u/%u)", vname, ts->subtask + 1,
                     job->parallelism[ts->vertex]);
            weir_jm_cause_t cause = {.task = task, .location = tm->data_address, .tm_id = tm->id};
            weir__jm_failover_cause_locked(jm, job, "TaskFailure", msg, &cause);
        } else if (ts->state == WEIR_TASK_FINISHED) {
            bool all = true;
            for (uint32_t v = 0; v < job->n_vertices && all; v++)
                for (uint32_t s = 0; s < job->parallelism[v] && all; s++)
                    all = job->subtasks[v][s].state == WEIR_TASK_FINISHED;
            if (all) {
                job->state = WEIR_JOB_FINISHED;
                job->end_ms = weir_wall_ms();
                weir__jm_release_slots_locked(jm, job);
                WEIR_INFO(COMP, "job %s (%s) FINISHED", job->id, job->name);
            }
        }
    }
    weir__jm_check_stopped_locked(jm, job, weir_now_ns());
}
