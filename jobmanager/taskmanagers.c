/* Owns the job manager's task-manager table: registration (a new instance per REGISTER, answered
 * with REGISTERED), lookups by id and by registration number, loss: a heartbeat silent for more
 * than heartbeat.timeout, a closed connection (the ROUTER's monitor reports the fd), or a REGISTER
 * with an id that still hosts subtasks (a restart). A lost task manager is removed and each
 * RUNNING job with a slot on it fails over ("task manager <id> (<data address>) lost: ...").
 * Also the unconfirmed subtasks of each instance (attempt fencing): subtasks it was asked to stop
 * and has not confirmed stopped when their job stopped waiting (WEIR_JM_CANCEL_BOUND_MS); their
 * slots stay taken on that instance until a final TASK_STATE confirms them.
 *
 * Invariants: each registration gets a new seq (never 0, never reused), so messages of an old
 * instance never match a subtask deployed to a new one; the table keeps registration order (the
 * scheduler's tie break); a removed task manager is freed at once and only its seq remains in the
 * jobs (subtasks keep copies of its id and address); fd is the connection's socket fd as last
 * seen in ZMQ_SRCFD (-1 = unknown). Fencing: a task manager declared lost keeps no slot (it is
 * removed; its tasks may still run, frozen or partitioned); it gets slots again only as a new
 * instance, and a task manager registers only after it stopped its old tasks (it offers none of
 * the slots of a task that did not stop: taskmanager/taskmanager.c), so a slot offered by an
 * instance never hosts a task of an earlier attempt; the slot of an unconfirmed subtask is never
 * offered by the instance that runs it.
 *
 * Threading: main thread with jm->mu held (the REST thread only reads the table, under jm->mu). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "jobmanager/jobmanager_int.h"

#define COMP "jobmanager"

weir_jm_tm_t *weir__jm_find_tm_seq_locked(weir_jobmanager_t *jm, uint64_t seq) {
    if (seq == 0)
        return NULL;
    for (size_t i = 0; i < jm->n_tms; i++)
        if (jm->tms[i]->seq == seq)
            return jm->tms[i];
    return NULL;
}

weir_jm_tm_t *weir__jm_find_tm_id_locked(weir_jobmanager_t *jm, const char *id) {
    for (size_t i = 0; i < jm->n_tms; i++)
        if (strcmp(jm->tms[i]->id, id) == 0)
            return jm->tms[i];
    return NULL;
}

void weir__jm_tm_free(weir_jm_tm_t *tm) {
    if (!tm)
        return;
    free(tm->unconfirmed);
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
    weir__jm_tm_free(tm);
}

/* A task manager instance disappeared (heartbeat timeout or restart): forget it and fail the
 * running jobs that had subtasks on it. */
static void tm_lost_locked(weir_jobmanager_t *jm, weir_jm_tm_t *tm, const char *why) {
    char msg[1024];
    weir_fmt(msg, sizeof msg, "task manager %s (%s) lost: %s", tm->id, tm->data_address, why);
    WEIR_WARN(COMP, "%s", msg);
    uint64_t seq = tm->seq;
    char tm_id[256], tm_addr[512]; /* the exception history names it after it is freed */
    weir_fmt(tm_id, sizeof tm_id, "%s", tm->id);
    weir_fmt(tm_addr, sizeof tm_addr, "%s", tm->data_address);
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
        if (on_it && job->state == WEIR_JOB_RUNNING) {
            weir_jm_cause_t cause = {.location = tm_addr, .tm_id = tm_id};
            weir__jm_failover_cause_locked(jm, job, "TaskManagerLost", msg, &cause);
        }
        weir__jm_check_stopped_locked(jm, job, now);
    }
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

void weir__jm_tm_register_locked(weir_jobmanager_t *jm, const uint8_t *ident, size_t ident_len,
                                 const char *ident_str, weir_msg_t *m, int fd) {
    /* The id is the connection's routing id (jobmanager.c dropped a body naming another). */
    const char *id = ident_str;
    weir_jm_tm_t *old = weir__jm_find_tm_id_locked(jm, id);
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
    /* A task manager registers after it stopped its old tasks and offers only free slots. */
    tm->slots_total = tm->slots_free = m->slots;
    tm->seq = ++jm->next_seq;
    tm->last_seen_ns = weir_now_ns();
    tm->registered_ms = weir_wall_ms();
    tm->fd = fd;
    void *tms = jm->tms;
    if (weir_array_grow(&tms, &jm->cap_tms, jm->n_tms + 1, sizeof *jm->tms, 8) != 0)
        goto oom;
    jm->tms = tms;
    jm->tms[jm->n_tms++] = tm;
    WEIR_INFO(COMP, "task manager %s registered: %u slots, data %s, host %s, pid %" PRId64, tm->id,
              tm->slots_total, tm->data_address, tm->host, tm->pid);
    weir_msg_t r = {.type = WEIR_MSG_REGISTERED, .heartbeat_interval_ms = jm->hb_interval_ms};
    weir__jm_send_locked(jm, tm, &r);
    return;
oom:
    WEIR_ERROR(COMP, "out of memory registering task manager %s", id);
    weir__jm_tm_free(tm);
}

/* ---------------------------------------------------------------- unconfirmed subtasks */

void weir__jm_tm_hold_unconfirmed_locked(weir_jobmanager_t *jm, weir_jm_tm_t *tm,
                                         const char *job_id, uint32_t attempt, uint32_t vertex,
                                         uint32_t subtask) {
    weir_msg_task_state_t probe = {.attempt = attempt, .vertex = vertex, .subtask = subtask};
    weir_fmt(probe.job_id, sizeof probe.job_id, "%s", job_id);
    if (weir__jm_tm_unconfirmed_locked(jm, tm, &probe, false))
        return;
    void *arr = tm->unconfirmed;
    if (weir_array_grow(&arr, &tm->cap_unconfirmed, tm->n_unconfirmed + 1, sizeof *tm->unconfirmed,
                        8) != 0) {
        /* The slot then counts as free: the state before fencing, logged. */
        WEIR_ERROR(COMP,
                   "out of memory: the slot of task %s/%u.%u on task manager %s counts as free",
                   job_id, vertex, subtask, tm->id);
        return;
    }
    tm->unconfirmed = arr;
    weir_jm_unconfirmed_t *u = &tm->unconfirmed[tm->n_unconfirmed++];
    memcpy(u->job_id, probe.job_id, sizeof u->job_id);
    u->attempt = attempt;
    u->vertex = vertex;
    u->subtask = subtask;
    weir__jm_tm_count_slots_locked(jm, tm);
}

bool weir__jm_tm_unconfirmed_locked(weir_jobmanager_t *jm, weir_jm_tm_t *tm,
                                    const weir_msg_task_state_t *ts, bool confirm) {
    for (size_t i = 0; i < tm->n_unconfirmed; i++) {
        weir_jm_unconfirmed_t *u = &tm->unconfirmed[i];
        if (u->attempt != ts->attempt || u->vertex != ts->vertex || u->subtask != ts->subtask ||
            strcmp(u->job_id, ts->job_id) != 0)
            continue;
        if (confirm) {
            WEIR_INFO(COMP, "task manager %s confirmed task %s/%u.%u (attempt %u) %s", tm->id,
                      u->job_id, u->vertex, u->subtask, u->attempt,
                      weir_task_state_name(ts->state));
            *u = tm->unconfirmed[--tm->n_unconfirmed];
            weir__jm_tm_count_slots_locked(jm, tm);
        }
        return true;
    }
    return false;
}

/* ---------------------------------------------------------------- loss detection */

void weir__jm_tm_check_heartbeats_locked(weir_jobmanager_t *jm, int64_t now) {
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
}

void weir__jm_tm_closed_locked(weir_jobmanager_t *jm, int fd) {
    for (size_t i = 0; i < jm->n_tms; i++) {
        if (jm->tms[i]->fd == fd) {
            tm_lost_locked(jm, jm->tms[i], "connection closed");
            break;
        }
    }
}
