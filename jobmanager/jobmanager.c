/* Owns the job manager's control plane: the task-manager table (registration, heartbeats, loss
 * detection through heartbeats and the ROUTER's disconnect events), the job table (lifecycle
 * CREATED -> RUNNING -> FINISHED | FAILED | CANCELED, with CANCELING and RESTARTING in between),
 * failover through the restart strategy (restart.c), deployment of attempts with their restore
 * fields (checkpoint.c), the HA records (ha.c), slot bookkeeping, and the ZeroMQ ROUTER that
 * carries the messages of common/proto.h.
 *
 * Invariants: a task manager's slots_free = slots_total - slots of jobs with slots_held that name
 * its seq; a job holds slots from deployment until every subtask is terminal (or its task manager
 * is gone, or WEIR_JM_CANCEL_BOUND_MS passed after the stop request); subtask updates are accepted
 * only from the task manager instance (seq) the subtask was deployed to, for the job's current
 * attempt, and never after a terminal state; a RESTARTING job deploys its next attempt only once
 * it holds no slots. Jobs are never removed (their HA entry is, at a terminal state).
 *
 * Threading: weir_jobmanager_run() runs on the main thread, which alone touches the ROUTER socket
 * and its monitor. REST handlers (libmicrohttpd thread) and the main thread change the tables
 * under jm->mu; outgoing messages are queued under the mutex and sent by the main thread. */
#include "jobmanager/jobmanager.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "jobmanager/ha.h"
#include "jobmanager/scheduler.h"

#define COMP "jobmanager"

struct weir_jm_out {
    uint8_t *ident;
    size_t ident_len;
    uint8_t *data;
    size_t len;
    weir_jm_out_t *next;
};

const char *weir_jm_job_state_name(weir_jm_job_state_t s) {
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

static bool job_terminal(weir_jm_job_state_t s) {
    return s == WEIR_JOB_FINISHED || s == WEIR_JOB_FAILED || s == WEIR_JOB_CANCELED;
}

static bool task_terminal(weir_task_state_t s) {
    return s == WEIR_TASK_FINISHED || s == WEIR_TASK_CANCELED || s == WEIR_TASK_FAILED;
}

static void set_str(char **dst, const char *src) {
    char *copy = src ? strdup(src) : NULL;
    free(*dst);
    *dst = copy;
}

/* ---------------------------------------------------------------- tables */

weir_jm_tm_t *weir_jm_find_tm_seq_locked(weir_jobmanager_t *jm, uint64_t seq) {
    if (seq == 0)
        return NULL;
    for (size_t i = 0; i < jm->n_tms; i++)
        if (jm->tms[i]->seq == seq)
            return jm->tms[i];
    return NULL;
}

static weir_jm_tm_t *find_tm_id(weir_jobmanager_t *jm, const char *id) {
    for (size_t i = 0; i < jm->n_tms; i++)
        if (strcmp(jm->tms[i]->id, id) == 0)
            return jm->tms[i];
    return NULL;
}

static void tm_free(weir_jm_tm_t *tm) {
    if (!tm)
        return;
    free(tm->id);
    free(tm->ident);
    free(tm->data_address);
    free(tm->host);
    free(tm);
}

/* Removes @p tm from the table and frees it. */
static void tm_remove(weir_jobmanager_t *jm, weir_jm_tm_t *tm) {
    for (size_t i = 0; i < jm->n_tms; i++) {
        if (jm->tms[i] == tm) {
            memmove(&jm->tms[i], &jm->tms[i + 1], (jm->n_tms - i - 1) * sizeof *jm->tms);
            jm->n_tms--;
            break;
        }
    }
    tm_free(tm);
}

weir_jm_job_t *weir_jm_find_job_locked(weir_jobmanager_t *jm, const char *id) {
    for (size_t i = 0; i < jm->n_jobs; i++)
        if (strcmp(jm->jobs[i]->id, id) == 0)
            return jm->jobs[i];
    return NULL;
}

int weir_jm_add_job_locked(weir_jobmanager_t *jm, weir_jm_job_t *job) {
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

void weir_jm_job_free(weir_jm_job_t *job) {
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
    free(job->ckdir);
    free(job->ha_pointer);
    free(job);
}

weir_jm_job_t *weir_jm_job_from_request(weir_jobmanager_t *jm, const json_t *req, char *errstr,
                                        size_t errlen) {
    weir_jm_job_t *job = NULL;
    char gerr[512];
    if (!json_is_object(req)) {
        weir_fmt(errstr, errlen, "request body must be a JSON object with plugin, args, graph");
        return NULL;
    }
    const json_t *plugin = json_object_get(req, "plugin");
    if (!json_is_string(plugin) || !weir_blobstore_valid_sha(json_string_value(plugin))) {
        weir_fmt(errstr, errlen,
                 "\"plugin\" must be the sha256 (64 lowercase hex digits) of a "
                 "blob uploaded with POST /blobs");
        return NULL;
    }
    const char *sha = json_string_value(plugin);
    if (!weir_blobstore_has(jm->blobs, sha)) {
        weir_fmt(errstr, errlen, "unknown plugin blob %s: upload it with POST /blobs first", sha);
        return NULL;
    }
    const json_t *args = json_object_get(req, "args");
    if (args && !json_is_array(args)) {
        weir_fmt(errstr, errlen, "\"args\" must be an array of strings");
        return NULL;
    }
    const json_t *par = json_object_get(req, "parallelism");
    if (par && !json_is_null(par) && (!json_is_integer(par) || json_integer_value(par) < 1)) {
        weir_fmt(errstr, errlen, "\"parallelism\" must be an integer >= 1");
        return NULL;
    }
    const json_t *graph = json_object_get(req, "graph");
    if (!json_is_object(graph)) {
        weir_fmt(errstr, errlen, "\"graph\" must be the job graph object (see `weir info`)");
        return NULL;
    }
    job = calloc(1, sizeof *job);
    if (!job)
        goto oom;
    job->end_ms = -1;
    job->attempt = 1;
    memcpy(job->plugin, sha, 65);
    size_t n_args = args ? json_array_size(args) : 0;
    if (n_args) {
        job->args = calloc(n_args, sizeof *job->args);
        if (!job->args)
            goto oom;
        for (size_t i = 0; i < n_args; i++) {
            const json_t *a = json_array_get(args, i);
            if (!json_is_string(a)) {
                weir_fmt(errstr, errlen,
                         "\"args\" must be an array of strings (element %zu is not)", i);
                goto fail;
            }
            job->args[i] = strdup(json_string_value(a));
            if (!job->args[i])
                goto oom;
            job->n_args = (uint32_t)(i + 1);
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
    if (jm->ckcfg.enabled) {
        size_t n = strlen(jm->ckcfg.dir) + 40;
        job->ckdir = malloc(n);
        if (!job->ckdir)
            goto oom;
        weir_fmt(job->ckdir, n, "%s/%s", jm->ckcfg.dir, job->id);
    }
    weir_restart_state_init(&job->restart);
    job->start_ms = weir_wall_ms();
    job->created_ns = weir_now_ns();
    job->state = WEIR_JOB_CREATED;
    return job;
oom:
    weir_fmt(errstr, errlen, "job manager out of memory");
fail:
    weir_jm_job_free(job);
    return NULL;
}

/* ---------------------------------------------------------------- outgoing messages */

void weir_jm_wake(weir_jobmanager_t *jm) {
    uint64_t one = 1;
    ssize_t n = write(jm->wake_fd, &one, sizeof one);
    (void)n; /* EAGAIN means the counter is already non-zero: the loop wakes anyway */
}

/* Encodes @p msg and queues it for @p tm. */
void weir_jm_send_locked(weir_jobmanager_t *jm, const weir_jm_tm_t *tm, const weir_msg_t *msg) {
    weir_jm_out_t *o = calloc(1, sizeof *o);
    if (!o)
        goto oom;
    o->ident = malloc(tm->ident_len ? tm->ident_len : 1);
    if (!o->ident)
        goto oom;
    memcpy(o->ident, tm->ident, tm->ident_len);
    o->ident_len = tm->ident_len;
    if (weir_msg_encode(msg, &o->data, &o->len) != 0)
        goto oom;
    if (jm->out_tail)
        jm->out_tail->next = o;
    else
        jm->out_head = o;
    jm->out_tail = o;
    return;
oom:
    WEIR_ERROR(COMP, "out of memory: dropping a message of type %d to task manager %s",
               (int)msg->type, tm->id);
    if (o)
        free(o->ident);
    free(o);
}

static void send_locked(weir_jobmanager_t *jm, const weir_jm_tm_t *tm, const weir_msg_t *msg) {
    weir_jm_send_locked(jm, tm, msg);
}

/* Queues a reply to a routing id (for peers that are not in the table). */
static void reply_ident_locked(weir_jobmanager_t *jm, const uint8_t *ident, size_t ident_len,
                               const weir_msg_t *msg) {
    weir_jm_tm_t fake = {.id = "(unregistered)", .ident = (uint8_t *)ident, .ident_len = ident_len};
    send_locked(jm, &fake, msg);
}

static void zfree(void *data, void *hint) {
    (void)hint;
    free(data);
}

static void flush_locked(weir_jobmanager_t *jm) {
    while (jm->out_head) {
        weir_jm_out_t *o = jm->out_head;
        jm->out_head = o->next;
        if (!jm->out_head)
            jm->out_tail = NULL;
        zmq_msg_t part;
        int rc = zmq_send(jm->router, o->ident, o->ident_len, ZMQ_SNDMORE | ZMQ_DONTWAIT);
        if (rc >= 0) {
            zmq_msg_init_data(&part, o->data, o->len, zfree, NULL);
            o->data = NULL; /* owned by ZeroMQ now */
            if (zmq_msg_send(&part, jm->router, ZMQ_DONTWAIT) < 0) {
                WEIR_WARN(COMP, "cannot send a control message: %s", zmq_strerror(errno));
                zmq_msg_close(&part);
            }
        } else {
            WEIR_WARN(COMP, "cannot send a control message: %s", zmq_strerror(errno));
        }
        free(o->data);
        free(o->ident);
        free(o);
    }
}

/* ---------------------------------------------------------------- job lifecycle */

static weir_jm_tm_t *subtask_tm(weir_jobmanager_t *jm, const weir_jm_subtask_t *st) {
    return weir_jm_find_tm_seq_locked(jm, st->tm_seq);
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
        send_locked(jm, tm, &m);
    }
}

static void release_slots_locked(weir_jobmanager_t *jm, weir_jm_job_t *job) {
    if (!job->slots_held)
        return;
    for (uint32_t i = 0; i < job->slots_needed; i++) {
        weir_jm_tm_t *tm = weir_jm_find_tm_seq_locked(jm, job->slot_tm_seq[i]);
        if (tm && tm->slots_free < tm->slots_total)
            tm->slots_free++;
    }
    job->slots_held = false;
}

static void job_fail_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, const char *msg) {
    weir_jm_ckpt_abort_locked(jm, job, "the job failed");
    job->state = WEIR_JOB_FAILED;
    set_str(&job->message, msg);
    job->end_ms = weir_wall_ms();
    job->stop_ns = weir_now_ns();
    WEIR_WARN(COMP, "job %s (%s) FAILED: %s", job->id, job->name, msg);
    send_cancels_locked(jm, job);
}

void weir_jm_failover_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, const char *msg) {
    if (job->state != WEIR_JOB_RUNNING)
        return;
    int64_t delay_ms = 0;
    if (!weir_restart_on_failure(&jm->restart_cfg, &job->restart, weir_wall_ms(), &delay_ms)) {
        if (jm->restart_cfg.type != WEIR_RESTART_NONE)
            WEIR_WARN(COMP, "job %s (%s): no restart left (%s strategy, %u restarts so far)",
                      job->id, job->name, weir_restart_type_name(jm->restart_cfg.type),
                      job->restart.restarts);
        job_fail_locked(jm, job, msg);
        return;
    }
    weir_jm_ckpt_abort_locked(jm, job, "the job is restarting");
    job->state = WEIR_JOB_RESTARTING;
    set_str(&job->message, msg);
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

/* Frees the slots of stopped jobs and completes cancellations. */
static void check_stopped_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, int64_t now) {
    if (!job->slots_held || job->state == WEIR_JOB_RUNNING || job->state == WEIR_JOB_CREATED)
        return;
    bool all = job_all_stopped(jm, job);
    bool expired = now - job->stop_ns > (int64_t)WEIR_JM_CANCEL_BOUND_MS * 1000000;
    if (!all && !expired)
        return;
    if (!all)
        WEIR_WARN(COMP,
                  "job %s (%s): not every subtask confirmed the cancel within %d ms; freeing its "
                  "slots anyway",
                  job->id, job->name, WEIR_JM_CANCEL_BOUND_MS);
    release_slots_locked(jm, job);
    if (job->state == WEIR_JOB_CANCELING) {
        job->state = WEIR_JOB_CANCELED;
        job->end_ms = weir_wall_ms();
        WEIR_INFO(COMP, "job %s (%s) CANCELED", job->id, job->name);
    }
}

int weir_jm_cancel_job_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, char *errstr,
                              size_t errlen) {
    switch (job->state) {
    case WEIR_JOB_CREATED:
        job->state = WEIR_JOB_CANCELED;
        set_str(&job->message, "canceled by request");
        job->end_ms = weir_wall_ms();
        WEIR_INFO(COMP, "job %s (%s) CANCELED before it was scheduled", job->id, job->name);
        return 0;
    case WEIR_JOB_RUNNING:
        job->state = WEIR_JOB_CANCELING;
        set_str(&job->message, "canceled by request");
        job->stop_ns = weir_now_ns();
        WEIR_INFO(COMP, "job %s (%s) CANCELING", job->id, job->name);
        send_cancels_locked(jm, job);
        check_stopped_locked(jm, job, job->stop_ns);
        weir_jm_wake(jm);
        return 0;
    case WEIR_JOB_RESTARTING:
        set_str(&job->message, "canceled by request");
        if (job->slots_held) {
            job->state = WEIR_JOB_CANCELING; /* CANCEL was sent when it failed over */
            check_stopped_locked(jm, job, weir_now_ns());
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
                 weir_jm_job_state_name(job->state));
        return WEIR_EINVAL;
    }
}

/* A task manager instance disappeared (heartbeat timeout or restart): forget it and fail the
 * running jobs that had subtasks on it. */
static void tm_lost_locked(weir_jobmanager_t *jm, weir_jm_tm_t *tm, const char *why) {
    char msg[1024];
    weir_fmt(msg, sizeof msg, "task manager %s (%s) lost: %s", tm->id, tm->data_address, why);
    WEIR_WARN(COMP, "%s", msg);
    uint64_t seq = tm->seq;
    tm_remove(jm, tm);
    int64_t now = weir_now_ns();
    for (size_t j = 0; j < jm->n_jobs; j++) {
        weir_jm_job_t *job = jm->jobs[j];
        if (!job->slots_held)
            continue;
        bool on_it = false;
        for (uint32_t i = 0; i < job->slots_needed; i++)
            if (job->slot_tm_seq[i] == seq)
                on_it = true;
        if (on_it && job->state == WEIR_JOB_RUNNING)
            weir_jm_failover_locked(jm, job, msg);
        check_stopped_locked(jm, job, now);
    }
}

/* The restore fields of subtask (v, s) from @p meta (NULL when it has none). */
static const weir_ckpt_task_t *restore_task(const weir_ckpt_meta_t *meta, uint32_t v, uint32_t s) {
    for (uint32_t i = 0; meta && i < meta->n_tasks; i++)
        if (meta->tasks[i].vertex == v && meta->tasks[i].subtask == s)
            return &meta->tasks[i];
    return NULL;
}

/* Writes the job's HA record (attempt included). */
static void ha_save_locked(weir_jobmanager_t *jm, weir_jm_job_t *job) {
    if (!jm->ha_dir)
        return;
    weir_ha_job_t h = {.name = job->name,
                       .graph_json = job->graph_text,
                       .args = job->args,
                       .n_args = job->n_args,
                       .attempt = job->attempt,
                       .parallelism = job->parallelism,
                       .n_vertices = job->n_vertices,
                       .submit_ms = job->start_ms};
    memcpy(h.id, job->id, sizeof h.id);
    memcpy(h.plugin, job->plugin, sizeof h.plugin);
    char err[512];
    if (weir_ha_save_job(jm->ha_dir, &h, err, sizeof err) != 0)
        WEIR_ERROR(COMP, "%s", err);
    else
        job->ha_saved = true;
}

int weir_jm_ha_save_new_job(weir_jobmanager_t *jm, weir_jm_job_t *job, char *errstr,
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
    rc = weir_ha_save_blob(jm->ha_dir, job->plugin, data, len, errstr, errlen);
    free(data);
    if (rc != 0)
        return rc;
    ha_save_locked(jm, job);
    return job->ha_saved ? 0 : WEIR_EIO;
}

static void deploy_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, const uint32_t *idx,
                          const weir_ckpt_meta_t *meta) {
    weir_jm_tm_t **slot_tm = calloc(job->slots_needed, sizeof *slot_tm);
    char ***placement = calloc(job->n_vertices, sizeof *placement);
    if (!slot_tm || !placement)
        goto oom;
    for (uint32_t v = 0; v < job->n_vertices; v++) {
        placement[v] = calloc(job->parallelism[v], sizeof **placement);
        if (!placement[v])
            goto oom;
    }
    size_t distinct = 0;
    for (uint32_t i = 0; i < job->slots_needed; i++) {
        slot_tm[i] = jm->tms[idx[i]];
        bool seen = false;
        for (uint32_t k = 0; k < i; k++)
            seen = seen || slot_tm[k] == slot_tm[i];
        distinct += !seen;
    }
    for (uint32_t i = 0; i < job->slots_needed; i++) {
        slot_tm[i]->slots_free--;
        job->slot_tm_seq[i] = slot_tm[i]->seq;
    }
    job->slots_held = true;
    uint32_t n_subtasks = 0;
    for (uint32_t v = 0; v < job->n_vertices; v++)
        for (uint32_t s = 0; s < job->parallelism[v]; s++) {
            placement[v][s] = slot_tm[s]->data_address;
            weir_jm_subtask_t *st = &job->subtasks[v][s];
            st->tm_seq = slot_tm[s]->seq;
            set_str(&st->tm_id, slot_tm[s]->id);
            set_str(&st->address, slot_tm[s]->data_address);
            st->state = WEIR_TASK_DEPLOYING;
            n_subtasks++;
        }
    job->state = WEIR_JOB_RUNNING;
    set_str(&job->message, NULL);
    ha_save_locked(jm, job); /* the attempt, before any task of it runs */
    for (uint32_t v = 0; v < job->n_vertices; v++)
        for (uint32_t s = 0; s < job->parallelism[v]; s++) {
            const weir_ckpt_task_t *rt = meta && meta->id ? restore_task(meta, v, s) : NULL;
            weir_msg_t m = {
                .type = WEIR_MSG_DEPLOY,
                .attempt = job->attempt,
                .job_name = job->name,
                .graph_json = job->graph_text,
                .args = job->args,
                .n_args = job->n_args,
                .vertex = v,
                .subtask = s,
                .n_vertices = job->n_vertices,
                .vertex_parallelism = job->parallelism,
                .placement = placement,
                .checkpoint_mode = job->ckdir ? jm->ckcfg.mode : WEIR_CHECKPOINT_NONE,
                .checkpoint_dir = job->ckdir,
                .restore_checkpoint_id = meta ? meta->id : 0,
                .restore_op_state = rt ? rt->op_state : NULL,
                .restore_op_state_len = rt ? rt->op_state_len : 0,
                .restore_keyed_handle = rt ? rt->keyed : NULL,
            };
            memcpy(m.job_id, job->id, sizeof m.job_id);
            memcpy(m.plugin_sha256, job->plugin, sizeof m.plugin_sha256);
            send_locked(jm, slot_tm[s], &m);
        }
    WEIR_INFO(COMP,
              "job %s (%s) RUNNING: %u subtasks deployed in %u slots on %zu task managers "
              "(attempt %u%s)",
              job->id, job->name, n_subtasks, job->slots_needed, distinct, job->attempt,
              meta && meta->id ? ", restored" : "");
    goto done;
oom:
    WEIR_ERROR(COMP, "out of memory while deploying job %s", job->id);
done:
    if (placement)
        for (uint32_t v = 0; v < job->n_vertices; v++)
            free(placement[v]);
    free(placement);
    free(slot_tm);
}

static void schedule_locked(weir_jobmanager_t *jm, int64_t now) {
    weir_sched_tm_t *arr = NULL;
    uint32_t *idx = NULL;
    for (size_t j = 0; j < jm->n_jobs; j++) {
        weir_jm_job_t *job = jm->jobs[j];
        bool restarting = job->state == WEIR_JOB_RESTARTING;
        if (job->state != WEIR_JOB_CREATED &&
            !(restarting && !job->slots_held && now >= job->restart_at_ns))
            continue;
        int64_t wait_since = restarting ? job->restart_at_ns : job->created_ns;
        if (!arr && jm->n_tms) {
            arr = calloc(jm->n_tms, sizeof *arr);
            if (!arr)
                return;
        }
        for (size_t i = 0; i < jm->n_tms; i++) {
            arr[i].slots_total = jm->tms[i]->slots_total;
            arr[i].slots_free = jm->tms[i]->slots_free;
        }
        free(idx);
        idx = calloc(job->slots_needed, sizeof *idx);
        if (!idx)
            break;
        int rc =
            jm->n_tms ? weir_sched_assign(arr, jm->n_tms, job->slots_needed, idx) : WEIR_ENOSPACE;
        if (rc == 0) {
            weir_ckpt_meta_t meta;
            char err[1024] = "";
            if (restarting)
                job->attempt++;
            if (weir_jm_ckpt_restore_locked(jm, job, &meta, err, sizeof err) != 0) {
                job->state = WEIR_JOB_FAILED;
                set_str(&job->message, err);
                job->end_ms = weir_wall_ms();
                WEIR_WARN(COMP, "job %s (%s) FAILED: %s", job->id, job->name, err);
                continue;
            }
            free(job->ha_pointer);
            job->ha_pointer = NULL;
            if (restarting)
                for (uint32_t v = 0; v < job->n_vertices; v++)
                    for (uint32_t s = 0; s < job->parallelism[v]; s++) {
                        weir_jm_subtask_t *st = &job->subtasks[v][s];
                        set_str(&st->message, NULL);
                        memset(&st->metrics, 0, sizeof st->metrics);
                    }
            deploy_locked(jm, job, idx, &meta);
            weir_ckpt_meta_clear(&meta);
            continue;
        }
        uint64_t free_slots = arr ? weir_sched_free_slots(arr, jm->n_tms) : 0;
        if (now - wait_since > jm->slot_timeout_ms * 1000000) {
            char msg[512];
            weir_fmt(msg, sizeof msg,
                     "not enough task slots: the job needs %u, %" PRIu64 " free after %" PRId64
                     " ms (start more task managers, add taskmanager.numberOfTaskSlots or lower "
                     "-p)",
                     job->slots_needed, free_slots, jm->slot_timeout_ms);
            job->state = WEIR_JOB_FAILED;
            set_str(&job->message, msg);
            job->end_ms = weir_wall_ms();
            WEIR_WARN(COMP, "job %s (%s) FAILED: %s", job->id, job->name, msg);
        } else {
            char msg[256];
            weir_fmt(msg, sizeof msg,
                     "waiting for task slots: the job needs %u, %" PRIu64 " free (%" PRIu64
                     " missing)",
                     job->slots_needed, free_slots, job->slots_needed - free_slots);
            if (!job->message || strcmp(job->message, msg) != 0)
                set_str(&job->message, msg);
        }
    }
    free(idx);
    free(arr);
}

/* ---------------------------------------------------------------- message handling */

static void apply_task_state_locked(weir_jobmanager_t *jm, weir_jm_tm_t *tm,
                                    const weir_msg_task_state_t *ts, bool metrics_only) {
    weir_jm_job_t *job = weir_jm_find_job_locked(jm, ts->job_id);
    if (!job || ts->attempt != job->attempt || ts->vertex >= job->n_vertices ||
        ts->subtask >= job->parallelism[ts->vertex])
        return;
    weir_jm_subtask_t *st = &job->subtasks[ts->vertex][ts->subtask];
    if (st->tm_seq != tm->seq || task_terminal(st->state))
        return;
    st->metrics = ts->metrics;
    if (metrics_only)
        return;
    st->state = ts->state;
    if (ts->message)
        set_str(&st->message, ts->message);
    const char *vname = job->dag->vertices[ts->vertex].name;
    WEIR_DEBUG(COMP, "job %s: %s (%u/%u) on %s -> %s", job->id, vname, ts->subtask + 1,
               job->parallelism[ts->vertex], tm->id, weir_task_state_name(ts->state));
    if (job->state == WEIR_JOB_RUNNING) {
        if (ts->state == WEIR_TASK_FAILED || ts->state == WEIR_TASK_CANCELED) {
            char msg[2048];
            weir_fmt(msg, sizeof msg, "%s (%u/%u) on %s: %s", vname, ts->subtask + 1,
                     job->parallelism[ts->vertex], tm->id,
                     ts->message
                         ? ts->message
                         : (ts->state == WEIR_TASK_CANCELED ? "canceled unexpectedly" : "failed"));
            weir_jm_failover_locked(jm, job, msg);
        } else if (ts->state == WEIR_TASK_FINISHED) {
            bool all = true;
            for (uint32_t v = 0; v < job->n_vertices && all; v++)
                for (uint32_t s = 0; s < job->parallelism[v] && all; s++)
                    all = job->subtasks[v][s].state == WEIR_TASK_FINISHED;
            if (all) {
                job->state = WEIR_JOB_FINISHED;
                job->end_ms = weir_wall_ms();
                release_slots_locked(jm, job);
                WEIR_INFO(COMP, "job %s (%s) FINISHED", job->id, job->name);
            }
        }
    }
    check_stopped_locked(jm, job, weir_now_ns());
}

static bool tm_hosts_tasks(weir_jobmanager_t *jm, const weir_jm_tm_t *tm) {
    for (size_t j = 0; j < jm->n_jobs; j++) {
        const weir_jm_job_t *job = jm->jobs[j];
        if (!job->slots_held)
            continue;
        for (uint32_t i = 0; i < job->slots_needed; i++)
            if (job->slot_tm_seq[i] == tm->seq)
                return true;
    }
    return false;
}

static void handle_register_locked(weir_jobmanager_t *jm, const uint8_t *ident, size_t ident_len,
                                   const char *ident_str, weir_msg_t *m, int fd) {
    const char *id = m->tm_id && m->tm_id[0] ? m->tm_id : ident_str;
    weir_jm_tm_t *old = find_tm_id(jm, id);
    if (old) {
        if (tm_hosts_tasks(jm, old))
            tm_lost_locked(jm, old, "it registered again (restarted)");
        else
            tm_remove(jm, old);
    }
    weir_jm_tm_t *tm = calloc(1, sizeof *tm);
    if (!tm)
        goto oom;
    tm->id = strdup(id);
    tm->ident = malloc(ident_len ? ident_len : 1);
    tm->data_address = strdup(m->data_address ? m->data_address : "");
    tm->host = strdup(m->host ? m->host : "");
    if (!tm->id || !tm->ident || !tm->data_address || !tm->host)
        goto oom;
    memcpy(tm->ident, ident, ident_len);
    tm->ident_len = ident_len;
    tm->pid = m->pid;
    tm->slots_total = tm->slots_free = m->slots;
    tm->seq = ++jm->next_seq;
    tm->last_seen_ns = weir_now_ns();
    tm->fd = fd;
    if (jm->n_tms == jm->cap_tms) {
        size_t cap = jm->cap_tms ? jm->cap_tms * 2 : 8;
        weir_jm_tm_t **tms = realloc(jm->tms, cap * sizeof *tms);
        if (!tms)
            goto oom;
        jm->tms = tms;
        jm->cap_tms = cap;
    }
    jm->tms[jm->n_tms++] = tm;
    WEIR_INFO(COMP, "task manager %s registered: %u slots, data %s, host %s, pid %" PRId64, tm->id,
              tm->slots_total, tm->data_address, tm->host, tm->pid);
    weir_msg_t r = {.type = WEIR_MSG_REGISTERED, .heartbeat_interval_ms = jm->hb_interval_ms};
    send_locked(jm, tm, &r);
    return;
oom:
    WEIR_ERROR(COMP, "out of memory registering task manager %s", id);
    tm_free(tm);
}

static void handle_message_locked(weir_jobmanager_t *jm, const uint8_t *ident, size_t ident_len,
                                  const uint8_t *data, size_t len, int fd) {
    char ident_str[256];
    size_t n = ident_len < sizeof ident_str - 1 ? ident_len : sizeof ident_str - 1;
    memcpy(ident_str, ident, n);
    ident_str[n] = 0;
    weir_msg_t m;
    memset(&m, 0, sizeof m);
    char err[256] = "";
    if (weir_msg_decode(data, len, &m, err, sizeof err) != 0) {
        WEIR_WARN(COMP, "bad control message from %s: %s", ident_str, err);
        weir_msg_clear(&m);
        return;
    }
    const char *id = m.tm_id && m.tm_id[0] ? m.tm_id : ident_str;
    weir_jm_tm_t *tm = NULL;
    switch (m.type) {
    case WEIR_MSG_REGISTER:
        handle_register_locked(jm, ident, ident_len, ident_str, &m, fd);
        break;
    case WEIR_MSG_HEARTBEAT:
    case WEIR_MSG_TASK_STATE:
        tm = find_tm_id(jm, id);
        if (!tm) {
            WEIR_INFO(COMP, "%s from unknown task manager %s: asking it to register",
                      m.type == WEIR_MSG_HEARTBEAT ? "heartbeat" : "task state", id);
            weir_msg_t r = {.type = WEIR_MSG_UNKNOWN};
            reply_ident_locked(jm, ident, ident_len, &r);
            break;
        }
        tm->last_seen_ns = weir_now_ns();
        if (fd >= 0)
            tm->fd = fd;
        for (uint32_t i = 0; i < m.n_tasks; i++)
            apply_task_state_locked(jm, tm, &m.tasks[i], m.type == WEIR_MSG_HEARTBEAT);
        if (m.type == WEIR_MSG_HEARTBEAT) {
            weir_msg_t r = {.type = WEIR_MSG_HEARTBEAT_ACK};
            send_locked(jm, tm, &r);
        }
        break;
    case WEIR_MSG_ACK_CHECKPOINT:
    case WEIR_MSG_DECLINE_CHECKPOINT:
        tm = find_tm_id(jm, id);
        if (!tm)
            break; /* an instance the job manager forgot: its tasks are stale */
        tm->last_seen_ns = weir_now_ns();
        if (m.type == WEIR_MSG_ACK_CHECKPOINT)
            weir_jm_ckpt_on_ack_locked(jm, tm, &m);
        else
            weir_jm_ckpt_on_decline_locked(jm, tm, &m);
        break;
    case WEIR_MSG_BLOB_REQUEST: {
        tm = find_tm_id(jm, id);
        if (tm)
            tm->last_seen_ns = weir_now_ns();
        weir_msg_t r = {.type = WEIR_MSG_BLOB};
        memcpy(r.blob_sha256, m.blob_sha256, sizeof r.blob_sha256);
        r.blob_sha256[64] = 0;
        char why[512];
        int rc = weir_blobstore_get(jm->blobs, m.blob_sha256, &r.blob, &r.blob_len);
        if (rc != 0) {
            weir_fmt(why, sizeof why, "blob %s %s in the job manager's blob store (%s)",
                     m.blob_sha256,
                     rc == WEIR_ENOTFOUND  ? "not found"
                     : rc == WEIR_ECORRUPT ? "is corrupt"
                     : rc == WEIR_EINVAL   ? "is not a sha256"
                                           : "cannot be read",
                     weir_blobstore_dir(jm->blobs));
            r.error = why;
            WEIR_WARN(COMP, "task manager %s asked for %s", id, why);
        }
        reply_ident_locked(jm, ident, ident_len, &r);
        free(r.blob);
        break;
    }
    default:
        WEIR_WARN(COMP, "unexpected control message type %d from %s", (int)m.type, ident_str);
        break;
    }
    weir_msg_clear(&m);
}

static void periodic_locked(weir_jobmanager_t *jm) {
    int64_t now = weir_now_ns();
    for (size_t i = 0; i < jm->n_tms;) {
        weir_jm_tm_t *tm = jm->tms[i];
        int64_t silent_ms = (now - tm->last_seen_ns) / 1000000;
        if (silent_ms > jm->hb_timeout_ms) {
            char why[128];
            weir_fmt(why, sizeof why, "no heartbeat for %" PRId64 " ms", silent_ms);
            tm_lost_locked(jm, tm, why); /* removes tms[i] */
            continue;
        }
        i++;
    }
    for (size_t j = 0; j < jm->n_jobs; j++) {
        weir_jm_job_t *job = jm->jobs[j];
        check_stopped_locked(jm, job, now);
        weir_jm_ckpt_tick_locked(jm, job, now);
        if (job->ha_saved && job_terminal(job->state)) {
            weir_ha_remove_job(jm->ha_dir, job->id);
            job->ha_saved = false;
        }
    }
    schedule_locked(jm, now);
}

/* Reads the ROUTER's monitor events: a closed task-manager connection is lost at once. */
static void drain_monitor_locked(weir_jobmanager_t *jm) {
    for (;;) {
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, jm->monitor, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            return;
        }
        uint16_t event = 0;
        uint32_t value = 0;
        if (zmq_msg_size(&ev) >= 6) {
            memcpy(&event, zmq_msg_data(&ev), 2);
            memcpy(&value, (uint8_t *)zmq_msg_data(&ev) + 2, 4);
        }
        bool more = zmq_msg_more(&ev);
        zmq_msg_close(&ev);
        if (more) {
            zmq_msg_init(&addr);
            zmq_msg_recv(&addr, jm->monitor, 0);
            zmq_msg_close(&addr);
        }
        if (event != ZMQ_EVENT_DISCONNECTED)
            continue;
        for (size_t i = 0; i < jm->n_tms; i++) {
            if (jm->tms[i]->fd == (int)value) {
                tm_lost_locked(jm, jm->tms[i], "connection closed");
                break;
            }
        }
    }
}

/* Loads the jobs of the HA store: each restarts (attempt + 1) from its latest checkpoint. */
static int ha_load(weir_jobmanager_t *jm, char *errstr, size_t errlen) {
    weir_ha_job_t *jobs = NULL;
    size_t n = 0;
    int rc = weir_ha_load_jobs(jm->ha_dir, &jobs, &n, errstr, errlen);
    if (rc != 0)
        return rc;
    int64_t now = weir_now_ns();
    for (size_t i = 0; i < n; i++) {
        weir_ha_job_t *h = &jobs[i];
        json_error_t jerr;
        json_t *graph = json_loads(h->graph_json, 0, &jerr);
        json_t *args = json_array();
        for (uint32_t a = 0; a < h->n_args; a++)
            json_array_append_new(args, json_string(h->args[a]));
        json_t *req = json_pack("{s:s,s:o,s:o}", "plugin", h->plugin, "args", args, "graph",
                                graph ? graph : json_null());
        char err[1024] = "";
        weir_jm_job_t *job = req ? weir_jm_job_from_request(jm, req, err, sizeof err) : NULL;
        json_decref(req);
        if (!job) {
            WEIR_ERROR(COMP, "HA: cannot recover job %s: %s", h->id,
                       err[0] ? err : "out of memory");
            continue;
        }
        memcpy(job->id, h->id, sizeof job->id);
        if (job->ckdir)
            weir_fmt(job->ckdir, strlen(jm->ckcfg.dir) + 40, "%s/%s", jm->ckcfg.dir, job->id);
        job->start_ms = h->submit_ms;
        job->attempt = h->attempt ? h->attempt : 1;
        job->state = WEIR_JOB_RESTARTING;
        job->restart_at_ns = now;
        job->created_ns = now;
        job->ha_saved = true;
        job->ha_pointer = h->checkpoint;
        h->checkpoint = NULL;
        set_str(&job->message, "recovered by a new job manager: waiting for task slots");
        if (weir_jm_add_job_locked(jm, job) != 0) {
            weir_jm_job_free(job);
            continue;
        }
        WEIR_INFO(COMP, "HA: recovered job %s (%s), attempt %u, checkpoint %s", job->id, job->name,
                  job->attempt, job->ha_pointer ? job->ha_pointer : "none");
    }
    weir_ha_jobs_free(jobs, n);
    return 0;
}

/* ---------------------------------------------------------------- lifecycle */

weir_jobmanager_t *weir_jobmanager_new(const weir_config_t *cfg, char *errstr, size_t errlen) {
    weir_jobmanager_t *jm = calloc(1, sizeof *jm);
    if (!jm) {
        weir_fmt(errstr, errlen, "job manager: out of memory");
        return NULL;
    }
    pthread_mutex_init(&jm->mu, NULL);
    jm->wake_fd = -1;
    atomic_init(&jm->stop, false);
    jm->rest_bind = strdup(weir_config_get_str(cfg, "rest.bind-address"));
    jm->rpc_bind = strdup(weir_config_get_str(cfg, "jobmanager.bind-host"));
    if (!jm->rest_bind || !jm->rpc_bind) {
        weir_fmt(errstr, errlen, "job manager: out of memory");
        goto fail;
    }
    int64_t rest_port = weir_config_get_int(cfg, "rest.port");
    int64_t rpc_port = weir_config_get_int(cfg, "jobmanager.rpc.port");
    if (rest_port < 0 || rest_port > 65535 || rpc_port < 0 || rpc_port > 65535) {
        weir_fmt(errstr, errlen,
                 "rest.port (%" PRId64 ") and jobmanager.rpc.port (%" PRId64
                 ") must be in 0..65535",
                 rest_port, rpc_port);
        goto fail;
    }
    jm->rest_port = (int)rest_port;
    jm->rpc_port = (int)rpc_port;
    jm->hb_interval_ms = weir_config_get_ms(cfg, "heartbeat.interval");
    jm->hb_timeout_ms = weir_config_get_ms(cfg, "heartbeat.timeout");
    jm->slot_timeout_ms = weir_config_get_ms(cfg, "slot.request.timeout");
    if (weir_ckpt_config_load(cfg, &jm->ckcfg, errstr, errlen) != 0 ||
        weir_restart_config_load(cfg, jm->ckcfg.enabled, &jm->restart_cfg, errstr, errlen) != 0)
        goto fail;
    if (weir_killpoint_init(&jm->killpoint, weir_config_get_str(cfg, "debug.kill-at")) != 0) {
        weir_fmt(errstr, errlen, "bad value '%s' for debug.kill-at (POINT or POINT:N)",
                 weir_config_get_str(cfg, "debug.kill-at"));
        goto fail;
    }
    const char *ha = weir_config_get_str(cfg, "high-availability.storageDir");
    if (ha && *ha) {
        jm->ha_dir = strdup(ha);
        if (!jm->ha_dir || weir_mkdirs(ha) != 0) {
            weir_fmt(errstr, errlen,
                     "cannot create high-availability.storageDir %s: %s (set it to a writable "
                     "directory)",
                     ha, strerror(errno));
            goto fail;
        }
    }
    jm->blobs = weir_blobstore_new(weir_config_get_str(cfg, "blob.storage.directory"),
                                   WEIR_BLOB_MAX_BYTES, errstr, errlen);
    if (!jm->blobs)
        goto fail;
    if (jm->ha_dir) {
        char bdir[4200];
        weir_ha_blob_dir(jm->ha_dir, bdir, sizeof bdir);
        if (weir_blobstore_set_fallback(jm->blobs, bdir) != 0) {
            weir_fmt(errstr, errlen, "job manager: out of memory");
            goto fail;
        }
    }
    jm->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (jm->wake_fd < 0) {
        weir_fmt(errstr, errlen, "job manager: eventfd: %s", strerror(errno));
        goto fail;
    }
    jm->zctx = zmq_ctx_new();
    if (!jm->zctx) {
        weir_fmt(errstr, errlen, "job manager: cannot create a ZeroMQ context: %s",
                 zmq_strerror(errno));
        goto fail;
    }
    jm->router = zmq_socket(jm->zctx, ZMQ_ROUTER);
    if (!jm->router) {
        weir_fmt(errstr, errlen, "job manager: cannot create the RPC socket: %s",
                 zmq_strerror(errno));
        goto fail;
    }
    int one = 1, zero = 0, hwm = 100000;
    zmq_setsockopt(jm->router, ZMQ_ROUTER_HANDOVER, &one, sizeof one);
    zmq_setsockopt(jm->router, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(jm->router, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(jm->router, ZMQ_RCVHWM, &hwm, sizeof hwm);
    char ep[300];
    if (jm->rpc_port)
        weir_fmt(ep, sizeof ep, "tcp://%s:%d", jm->rpc_bind, jm->rpc_port);
    else
        weir_fmt(ep, sizeof ep, "tcp://%s:*", jm->rpc_bind);
    if (zmq_bind(jm->router, ep) != 0) {
        weir_fmt(errstr, errlen,
                 "job manager: cannot bind RPC to %s: %s (set jobmanager.rpc.port or "
                 "jobmanager.bind-host)",
                 ep, zmq_strerror(errno));
        goto fail;
    }
    if (jm->rpc_port == 0) {
        char last[300];
        size_t sz = sizeof last;
        if (zmq_getsockopt(jm->router, ZMQ_LAST_ENDPOINT, last, &sz) == 0) {
            const char *colon = strrchr(last, ':');
            if (colon)
                jm->rpc_port = atoi(colon + 1);
        }
    }
    if (zmq_socket_monitor(jm->router, "inproc://weir-jm-monitor", ZMQ_EVENT_DISCONNECTED) != 0 ||
        !(jm->monitor = zmq_socket(jm->zctx, ZMQ_PAIR)) ||
        zmq_setsockopt(jm->monitor, ZMQ_RCVHWM, &zero, sizeof zero) != 0 ||
        zmq_connect(jm->monitor, "inproc://weir-jm-monitor") != 0) {
        weir_fmt(errstr, errlen, "job manager: cannot monitor the RPC socket: %s",
                 zmq_strerror(errno));
        goto fail;
    }
    zmq_setsockopt(jm->monitor, ZMQ_LINGER, &zero, sizeof zero);
    if (jm->ha_dir && ha_load(jm, errstr, errlen) != 0)
        goto fail;
    if (jm->ckcfg.enabled)
        WEIR_INFO(
            COMP, "checkpoints every %" PRId64 " ms (%s) in %s, %u retained; restart strategy %s",
            jm->ckcfg.interval_ms,
            jm->ckcfg.mode == WEIR_CHECKPOINT_EXACTLY_ONCE ? "EXACTLY_ONCE" : "AT_LEAST_ONCE",
            jm->ckcfg.dir, jm->ckcfg.num_retained, weir_restart_type_name(jm->restart_cfg.type));
    if (weir_jm_rest_start(jm, errstr, errlen) != 0)
        goto fail;
    WEIR_INFO(COMP, "REST at http://%s:%d, RPC at tcp://%s:%d", jm->rest_bind, jm->rest_port,
              jm->rpc_bind, jm->rpc_port);
    return jm;
fail:
    weir_jobmanager_destroy(&jm);
    return NULL;
}

void weir_jobmanager_stop(weir_jobmanager_t *jm) {
    atomic_store(&jm->stop, true);
    weir_jm_wake(jm);
}

int weir_jobmanager_run(weir_jobmanager_t *jm, int stop_fd) {
    int result = 0;
    while (!atomic_load(&jm->stop)) {
        zmq_pollitem_t items[4] = {
            {.socket = jm->router, .events = ZMQ_POLLIN},
            {.socket = NULL, .fd = jm->wake_fd, .events = ZMQ_POLLIN},
            {.socket = jm->monitor, .events = ZMQ_POLLIN},
            {.socket = NULL, .fd = stop_fd, .events = ZMQ_POLLIN},
        };
        int n = zmq_poll(items, stop_fd >= 0 ? 4 : 3, 50);
        if (n < 0 && errno != EINTR) {
            WEIR_ERROR(COMP, "zmq_poll: %s", zmq_strerror(errno));
            result = WEIR_ENET;
            break;
        }
        if (n > 0 && (items[1].revents & ZMQ_POLLIN)) {
            uint64_t v;
            ssize_t r = read(jm->wake_fd, &v, sizeof v);
            (void)r;
        }
        if (n > 0 && stop_fd >= 0 && (items[3].revents & ZMQ_POLLIN))
            break;
        /* Disconnects first: they happened before anything still queued on the ROUTER. */
        pthread_mutex_lock(&jm->mu);
        drain_monitor_locked(jm);
        flush_locked(jm);
        pthread_mutex_unlock(&jm->mu);
        /* Drain what arrived (bounded, so periodic work still runs under a flood). */
        for (int i = 0; i < 1000; i++) {
            zmq_msg_t ident, part;
            zmq_msg_init(&ident);
            if (zmq_msg_recv(&ident, jm->router, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&ident);
                break;
            }
            zmq_msg_init(&part);
            bool have = false;
            int more = zmq_msg_more(&ident);
            while (more) {
                /* Keep the last frame: the message (an empty delimiter may precede it). */
                zmq_msg_close(&part);
                zmq_msg_init(&part);
                if (zmq_msg_recv(&part, jm->router, 0) < 0) {
                    have = false;
                    break;
                }
                have = true;
                more = zmq_msg_more(&part);
            }
            if (have) {
                int fd = zmq_msg_get(&part, ZMQ_SRCFD);
                pthread_mutex_lock(&jm->mu);
                handle_message_locked(jm, zmq_msg_data(&ident), zmq_msg_size(&ident),
                                      zmq_msg_data(&part), zmq_msg_size(&part), fd);
                flush_locked(jm);
                pthread_mutex_unlock(&jm->mu);
            }
            zmq_msg_close(&part);
            zmq_msg_close(&ident);
        }
        pthread_mutex_lock(&jm->mu);
        periodic_locked(jm);
        flush_locked(jm);
        pthread_mutex_unlock(&jm->mu);
    }
    return result;
}

void weir_jobmanager_destroy(weir_jobmanager_t **jmp) {
    if (!jmp || !*jmp)
        return;
    weir_jobmanager_t *jm = *jmp;
    weir_jm_rest_stop(jm);
    while (jm->out_head) {
        weir_jm_out_t *o = jm->out_head;
        jm->out_head = o->next;
        free(o->ident);
        free(o->data);
        free(o);
    }
    /* Stop the monitor before closing its reader: libzmq's I/O thread blocks forever sending an
     * event to a PAIR whose peer is gone. */
    if (jm->router && jm->monitor)
        zmq_socket_monitor(jm->router, NULL, 0);
    if (jm->monitor)
        zmq_close(jm->monitor);
    if (jm->router)
        zmq_close(jm->router);
    if (jm->zctx)
        zmq_ctx_term(jm->zctx);
    if (jm->wake_fd >= 0)
        close(jm->wake_fd);
    for (size_t i = 0; i < jm->n_tms; i++)
        tm_free(jm->tms[i]);
    free(jm->tms);
    for (size_t i = 0; i < jm->n_jobs; i++)
        weir_jm_job_free(jm->jobs[i]);
    free(jm->jobs);
    weir_blobstore_destroy(&jm->blobs);
    free(jm->rest_bind);
    free(jm->rpc_bind);
    free(jm->ha_dir);
    pthread_mutex_destroy(&jm->mu);
    free(jm);
    *jmp = NULL;
}
