/* Owns scheduling, deployment and the slot bookkeeping of the job manager. Each main-loop
 * iteration: every CREATED job, and every RESTARTING job whose restart delay passed and that holds
 * no slots, asks the scheduler (scheduler.h) for its slots; when they are found the attempt's
 * restore point is looked up (checkpointing.c; a job whose checkpoint is gone fails), its HA record
 * is rewritten with the attempt (ha_jobs.c; a restart whose record cannot be written stays
 * RESTARTING and tries again 2 s later), the slots are taken and a DEPLOY goes to every subtask;
 * otherwise the job waits ("waiting for task slots: ...") and fails after slot.request.timeout
 * (counted from submission, or from the end of the restart delay).
 *
 * Invariants: a task manager's slots_free = slots_total - slots of jobs with slots_held that name
 * its seq (taken here on deployment, given back by weir__jm_release_slots_locked) - slots of its
 * unconfirmed subtasks (taskmanagers.c), never below 0, recomputed whenever one of them changes;
 * slot i hosts subtask i of every vertex with parallelism > i; a RESTARTING job deploys attempt + 1
 * only once it holds no slots; the HA record names the attempt before any task of it runs; the
 * attempt numbers of a job only grow (task managers reject anything of an older attempt than one
 * they ran).
 *
 * Threading: main thread with jm->mu held. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "jobmanager/jobmanager_int.h"
#include "savepoint/plan.h"
#include "savepoint/read.h"
#include "jobmanager/scheduler.h"

#define COMP "jobmanager"

static void deploy_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, const uint32_t *idx,
                          const weir_ckpt_meta_t *meta, const weir_restore_plan_t *plan) {
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
    for (uint32_t i = 0; i < job->slots_needed; i++)
        job->slot_tm_seq[i] = slot_tm[i]->seq;
    job->slots_held = true;
    for (uint32_t i = 0; i < job->slots_needed; i++)
        weir__jm_tm_count_slots_locked(jm, slot_tm[i]);
    uint32_t n_subtasks = 0;
    for (uint32_t v = 0; v < job->n_vertices; v++)
        for (uint32_t s = 0; s < job->parallelism[v]; s++) {
            placement[v][s] = slot_tm[s]->data_address;
            weir_jm_subtask_t *st = &job->subtasks[v][s];
            st->tm_seq = slot_tm[s]->seq;
            weir__jm_set_str(&st->tm_id, slot_tm[s]->id);
            weir__jm_set_str(&st->address, slot_tm[s]->data_address);
            st->state = WEIR_TASK_DEPLOYING;
            st->start_ms = weir_wall_ms();
            st->end_ms = 0;
            st->metrics_ns = st->prev_metrics_ns = 0;
            n_subtasks++;
        }
    job->state = WEIR_JOB_RUNNING;
    weir__jm_set_str(&job->message, NULL);
    for (uint32_t v = 0; v < job->n_vertices; v++)
        for (uint32_t s = 0; s < job->parallelism[v]; s++) {
            uint8_t *bundle = NULL;
            size_t bundle_len = 0;
            char *keyed = NULL;
            if (plan && weir_restore_plan_subtask(plan, v, s, &bundle, &bundle_len, &keyed) != 0) {
                free(bundle);
                free(keyed);
                goto oom;
            }
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
                .restore_op_state = bundle,
                .restore_op_state_len = bundle_len,
                .restore_keyed_handle = keyed,
            };
            memcpy(m.job_id, job->id, sizeof m.job_id);
            memcpy(m.plugin_sha256, job->plugin, sizeof m.plugin_sha256);
            weir__jm_send_locked(jm, slot_tm[s], &m);
            free(bundle);
            free(keyed);
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

void weir__jm_schedule_locked(weir_jobmanager_t *jm, int64_t now) {
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
            char err[3000] = "";
            char base[2200];
            bool claim = false;
            if (restarting)
                job->attempt++;
            int rrc = weir__jm_ckpt_restore_locked(jm, job, &meta, base, sizeof base, &claim, err,
                                                   sizeof err);
            weir_restore_plan_t *plan = NULL;
            if (rrc == 0 && meta.id) {
                /* the state of the restored snapshot mapped onto this job's operators (by uid,
                 * by key-group range): refused here only if the job changed since submission
                 * checked it (a savepoint of run -s was checked then) */
                char perr[2048] = "";
                rrc = weir_restore_plan_build(&meta, meta.n_ops ? NULL : job->dag, job->dag, base,
                                              claim, job->allow_non_restored, &plan, perr,
                                              sizeof perr);
                if (rrc != 0) {
                    weir_ckpt_meta_clear(&meta);
                    weir_fmt(err, sizeof err, "cannot restore job %s from %s: %s", job->id, base,
                             perr);
                }
            }
            if (rrc == WEIR_EIO && restarting) {
                /* the checkpoint storage cannot be read now (retried already): not corruption,
                 * so neither a fallback nor a failure; the next try is in 2 s */
                job->attempt--;
                job->restart_at_ns = now + 2000000000LL;
                weir__jm_set_str(&job->message, err);
                WEIR_WARN(COMP, "job %s (%s) stays RESTARTING: %s", job->id, job->name, err);
                continue;
            }
            if (rrc != 0) {
                job->state = WEIR_JOB_FAILED;
                weir__jm_exception_add_locked(job, "RestoreFailure", err, NULL);
                weir__jm_set_str(&job->message, err);
                job->end_ms = weir_wall_ms();
                WEIR_WARN(COMP, "job %s (%s) FAILED: %s", job->id, job->name, err);
                continue;
            }
            /* the attempt in the HA record before any task of it runs: a job manager that takes
             * over must never reuse an attempt number (task managers and data planes fence by it)
             */
            int hrc = weir__jm_ha_write_job(jm, job, err, sizeof err);
            if (hrc != 0 && !restarting) {
                WEIR_ERROR(COMP, "%s", err); /* attempt 1 is in the record written at submission */
            } else if (hrc != 0) {
                job->attempt--;
                job->restart_at_ns = now + 2000000000LL;
                weir_ckpt_meta_clear(&meta);
                weir_restore_plan_free(&plan);
                char msg[1200];
                weir_fmt(msg, sizeof msg, "cannot record attempt %u in the HA store: %s",
                         job->attempt + 1, err);
                weir__jm_set_str(&job->message, msg);
                WEIR_WARN(COMP, "job %s (%s) stays RESTARTING, trying again in 2 s: %s", job->id,
                          job->name, msg);
                continue;
            }
            free(job->ha_pointer);
            job->ha_pointer = NULL;
            if (restarting)
                for (uint32_t v = 0; v < job->n_vertices; v++)
                    for (uint32_t s = 0; s < job->parallelism[v]; s++) {
                        weir_jm_subtask_t *st = &job->subtasks[v][s];
                        weir__jm_set_str(&st->message, NULL);
                        memset(&st->metrics, 0, sizeof st->metrics);
                    }
            deploy_locked(jm, job, idx, &meta, plan);
            weir_restore_plan_free(&plan);
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
            weir__jm_exception_add_locked(job, "NoResourceAvailable", msg, NULL);
            weir__jm_set_str(&job->message, msg);
            job->end_ms = weir_wall_ms();
            WEIR_WARN(COMP, "job %s (%s) FAILED: %s", job->id, job->name, msg);
        } else {
            char msg[256];
            weir_fmt(msg, sizeof msg,
                     "waiting for task slots: the job needs %u, %" PRIu64 " free (%" PRIu64
                     " missing)",
                     job->slots_needed, free_slots, job->slots_needed - free_slots);
            if (!job->message || strcmp(job->message, msg) != 0)
                weir__jm_set_str(&job->message, msg);
        }
    }
    free(idx);
    free(arr);
}

/* Given back when the job stopped (jobs.c) or finished. */
void weir__jm_release_slots_locked(weir_jobmanager_t *jm, weir_jm_job_t *job) {
    if (!job->slots_held)
        return;
    job->slots_held = false;
    for (uint32_t i = 0; i < job->slots_needed; i++) {
        weir_jm_tm_t *tm = weir__jm_find_tm_seq_locked(jm, job->slot_tm_seq[i]);
        if (tm)
            weir__jm_tm_count_slots_locked(jm, tm);
    }
}

void weir__jm_tm_count_slots_locked(weir_jobmanager_t *jm, weir_jm_tm_t *tm) {
    uint64_t taken = 0;
    for (size_t j = 0; j < jm->n_jobs; j++) {
        const weir_jm_job_t *job = jm->jobs[j];
        if (!job->slots_held)
            continue;
        for (uint32_t i = 0; i < job->slots_needed; i++)
            taken += job->slot_tm_seq[i] == tm->seq;
    }
    /* Slot i hosts subtask i of every vertex: unconfirmed subtasks with the same (job, attempt,
     * subtask) share one slot. */
    for (size_t i = 0; i < tm->n_unconfirmed; i++) {
        const weir_jm_unconfirmed_t *u = &tm->unconfirmed[i];
        bool seen = false;
        for (size_t k = 0; k < i && !seen; k++)
            seen = tm->unconfirmed[k].subtask == u->subtask &&
                   tm->unconfirmed[k].attempt == u->attempt &&
                   strcmp(tm->unconfirmed[k].job_id, u->job_id) == 0;
        taken += !seen;
    }
    tm->slots_free = taken < tm->slots_total ? tm->slots_total - (uint32_t)taken : 0;
}
