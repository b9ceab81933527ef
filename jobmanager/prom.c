/* Owns GET /metrics of the job manager: the Prometheus text exposition format 0.0.4 of its jobs
 * (state, uptime, restarts, checkpoint counts and the latest completed checkpoint), of every
 * subtask's METRICS report (the fields of weir_task_metrics_t, common/proto.h), of the task
 * managers (slots, and the figures of their heartbeats: RSS, CPU, memory pools) and of the job
 * manager process (CPU, RSS, threads, open fds, uptime). The list of families and their meaning is
 * in docs/rest.md, "Prometheus metrics". What the task manager's /metrics shows too (the
 * per-subtask families, the memory pools, the process figures, label escaping) is written by
 * common/prom.c, so both daemons name, type and scale a figure the same way.
 *
 * Invariants: every name starts with weir_; each family is written once (HELP, TYPE, then all of
 * its samples), so the output passes `promtool check metrics`; counters end in _total; times are
 * seconds and sizes bytes (Prometheus' base units); label values are escaped (backslash, double
 * quote, newline: weir_prom_label). Per-subtask series cover jobs that have not ended or ended less
 * than WEIR_JM_PROM_ENDED_MS ago, and only subtasks that were deployed; a watermark of INT64_MIN
 * (none) or INT64_MAX (input ended) has no watermark series, a Kafka lag below 0 (not a Kafka
 * source) none either.
 *
 * Threading: REST thread; the tables are read under jm->mu (one snapshot), the process figures
 * from /proc and clock_gettime. */
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

#include "common/err.h"
#include "common/prom.h"
#include "common/util.h"
#include "jobmanager/jobmanager_int.h"

/* ---- per subtask (the families: common/prom.c) ----------------------------------------- */

static bool job_listed(const weir_jm_job_t *job, int64_t now_ms) {
    return !weir__jm_job_terminal(job->state) || now_ms - job->end_ms < WEIR_JM_PROM_ENDED_MS;
}

static void job_labels(FILE *f, const weir_jm_job_t *job) {
    fprintf(f, "job_id=\"%s\",job_name=\"", job->id);
    weir_prom_label(f, job->name);
    fputc('"', f);
}

/* The deployed subtasks of the listed jobs into @p out (when not NULL). @returns how many. */
static size_t listed_tasks(weir_jobmanager_t *jm, int64_t now_ms, weir_prom_task_t *out) {
    size_t n = 0;
    for (size_t j = 0; j < jm->n_jobs; j++) {
        const weir_jm_job_t *job = jm->jobs[j];
        if (!job_listed(job, now_ms))
            continue;
        for (uint32_t v = 0; v < job->n_vertices; v++)
            for (uint32_t s = 0; s < job->parallelism[v]; s++) {
                const weir_jm_subtask_t *st = &job->subtasks[v][s];
                if (!st->start_ms || !st->tm_id)
                    continue;
                if (out)
                    out[n] = (weir_prom_task_t){.job_id = job->id,
                                                .job_name = job->name,
                                                .vertex = job->dag->vertices[v].name,
                                                .vertex_id = v,
                                                .subtask = s,
                                                .tm_id = st->tm_id,
                                                .m = &st->metrics};
                n++;
            }
    }
    return n;
}

static int task_families(FILE *f, weir_jobmanager_t *jm, int64_t now_ms) {
    size_t n = listed_tasks(jm, now_ms, NULL);
    weir_prom_task_t *tasks = n ? calloc(n, sizeof *tasks) : NULL;
    if (n && !tasks)
        return WEIR_ENOMEM;
    listed_tasks(jm, now_ms, tasks);
    weir_prom_task_families(f, tasks, n, now_ms);
    free(tasks);
    return 0;
}

/* ---- per job ------------------------------------------------------------------------------- */

static void job_families(FILE *f, weir_jobmanager_t *jm, int64_t now_ms) {
    weir_prom_family(f, "weir_job_state", "gauge",
                     "1 for the job's current state, 0 for the others.");
    for (size_t j = 0; j < jm->n_jobs; j++)
        for (int st = WEIR_JOB_CREATED; st <= WEIR_JOB_RESTARTING; st++) {
            fputs("weir_job_state{", f);
            job_labels(f, jm->jobs[j]);
            fprintf(f, ",state=\"%s\"} %d\n", weir__jm_job_state_name((weir_jm_job_state_t)st),
                    jm->jobs[j]->state == (weir_jm_job_state_t)st);
        }
    weir_prom_family(f, "weir_job_uptime_seconds", "gauge",
                     "Time since the job was submitted (until it ended).");
    for (size_t j = 0; j < jm->n_jobs; j++) {
        const weir_jm_job_t *job = jm->jobs[j];
        fputs("weir_job_uptime_seconds{", f);
        job_labels(f, job);
        fprintf(f, "} %.3f\n",
                (double)((job->end_ms >= 0 ? job->end_ms : now_ms) - job->start_ms) / 1000.0);
    }
    weir_prom_family(f, "weir_job_restarts_total", "counter", "Restarts of the job so far.");
    for (size_t j = 0; j < jm->n_jobs; j++) {
        fputs("weir_job_restarts_total{", f);
        job_labels(f, jm->jobs[j]);
        fprintf(f, "} %u\n", jm->jobs[j]->restart.restarts);
    }
    weir_prom_family(
        f, "weir_job_checkpoints_total", "counter",
        "Checkpoints (and savepoints) by outcome: triggered, completed, failed, restored.");
    for (size_t j = 0; j < jm->n_jobs; j++) {
        const weir_ckpt_coord_t *c = &jm->jobs[j]->ckpt;
        const char *names[] = {"triggered", "completed", "failed", "restored"};
        uint64_t values[] = {c->n_triggered, c->n_completed, c->n_failed, c->n_restored};
        for (int i = 0; i < 4; i++) {
            fputs("weir_job_checkpoints_total{", f);
            job_labels(f, jm->jobs[j]);
            fprintf(f, ",status=\"%s\"} %" PRIu64 "\n", names[i], values[i]);
        }
    }
    weir_prom_family(f, "weir_job_checkpoints_in_progress", "gauge",
                     "Checkpoints in flight (0 or 1).");
    for (size_t j = 0; j < jm->n_jobs; j++) {
        fputs("weir_job_checkpoints_in_progress{", f);
        job_labels(f, jm->jobs[j]);
        fprintf(f, "} %d\n", jm->jobs[j]->ckpt.pending_id != 0);
    }
    static const struct {
        const char *name, *help;
    } last[] = {
        {"weir_job_last_checkpoint_id", "Id of the latest completed checkpoint."},
        {"weir_job_last_checkpoint_duration_seconds",
         "Trigger to completion of the latest completed checkpoint."},
        {"weir_job_last_checkpoint_size_bytes",
         "State the latest completed checkpoint references."},
        {"weir_job_last_checkpoint_uploaded_bytes",
         "Bytes the latest completed checkpoint wrote (incremental)."},
        {"weir_job_last_checkpoint_alignment_seconds",
         "Barrier alignment of the latest completed checkpoint (max over subtasks)."},
    };
    for (int i = 0; i < 5; i++) {
        weir_prom_family(f, last[i].name, "gauge", last[i].help);
        for (size_t j = 0; j < jm->n_jobs; j++) {
            const weir_ckpt_coord_t *c = &jm->jobs[j]->ckpt;
            if (!c->have_completed)
                continue;
            const weir_ckpt_hist_t *h = &c->latest;
            fprintf(f, "%s{", last[i].name);
            job_labels(f, jm->jobs[j]);
            if (i == 0)
                fprintf(f, "} %" PRIu64 "\n", h->id);
            else if (i == 1)
                fprintf(f, "} %.3f\n", (double)h->duration_ms / 1000.0);
            else if (i == 2)
                fprintf(f, "} %" PRIu64 "\n", h->state_size);
            else if (i == 3)
                fprintf(f, "} %" PRIu64 "\n", h->uploaded_size);
            else
                fprintf(f, "} %.3f\n", (double)h->alignment_ms / 1000.0);
        }
    }
}

/* ---- task managers and the job manager ----------------------------------------------------- */

/* One sample per task manager of the u64 at @p offset of weir_jm_tm_t, times @p scale. */
static void tm_family(FILE *f, weir_jobmanager_t *jm, const char *name, const char *type,
                      const char *help, size_t offset, double scale) {
    weir_prom_family(f, name, type, help);
    for (size_t i = 0; i < jm->n_tms; i++) {
        weir_prom_series(f, name, "tm_id", jm->tms[i]->id, NULL);
        uint64_t v = *(const uint64_t *)((const char *)jm->tms[i] + offset);
        if (scale == 1)
            fprintf(f, "%" PRIu64 "\n", v);
        else
            fprintf(f, "%.9f\n", (double)v * scale);
    }
}

static int tm_families(FILE *f, weir_jobmanager_t *jm) {
    uint64_t slots = 0, free_slots = 0;
    weir_prom_family(f, "weir_taskmanager_slots", "gauge", "Task slots of a task manager.");
    for (size_t i = 0; i < jm->n_tms; i++) {
        weir_prom_series(f, "weir_taskmanager_slots", "tm_id", jm->tms[i]->id, NULL);
        fprintf(f, "%u\n", jm->tms[i]->slots_total);
        slots += jm->tms[i]->slots_total;
        free_slots += jm->tms[i]->slots_free;
    }
    weir_prom_family(f, "weir_taskmanager_slots_free", "gauge",
                     "Free task slots of a task manager.");
    for (size_t i = 0; i < jm->n_tms; i++) {
        weir_prom_series(f, "weir_taskmanager_slots_free", "tm_id", jm->tms[i]->id, NULL);
        fprintf(f, "%u\n", jm->tms[i]->slots_free);
    }
    tm_family(f, jm, "weir_taskmanager_resident_memory_bytes", "gauge",
              "Resident set size of the task manager process (its last heartbeat).",
              offsetof(weir_jm_tm_t, rss_bytes), 1);
    tm_family(f, jm, "weir_taskmanager_cpu_seconds_total", "counter",
              "CPU time (user + system) of the task manager process (its last heartbeat).",
              offsetof(weir_jm_tm_t, cpu_ns), 1e-9);
    weir_prom_memory_t *mem = jm->n_tms ? calloc(jm->n_tms, sizeof *mem) : NULL;
    if (jm->n_tms && !mem)
        return WEIR_ENOMEM;
    for (size_t i = 0; i < jm->n_tms; i++) {
        const weir_jm_tm_t *t = jm->tms[i];
        mem[i] = (weir_prom_memory_t){.tm_id = t->id,
                                      .process = t->mem_process,
                                      .network_total = t->mem_network_total,
                                      .network_used = t->mem_network_used,
                                      .managed_total = t->mem_managed_total,
                                      .managed_used = t->mem_managed_used,
                                      .state_cache_total = t->mem_state_cache_total,
                                      .state_cache_used = t->mem_state_cache_used};
    }
    weir_prom_memory_families(f, mem, jm->n_tms);
    free(mem);
    weir_prom_family(f, "weir_jobmanager_taskmanagers", "gauge", "Registered task managers.");
    fprintf(f, "weir_jobmanager_taskmanagers %zu\n", jm->n_tms);
    weir_prom_family(f, "weir_jobmanager_slots", "gauge", "Task slots of all task managers.");
    fprintf(f, "weir_jobmanager_slots %" PRIu64 "\n", slots);
    weir_prom_family(f, "weir_jobmanager_slots_available", "gauge",
                     "Free task slots of all task managers.");
    fprintf(f, "weir_jobmanager_slots_available %" PRIu64 "\n", free_slots);
    uint64_t by[WEIR_JOB_RESTARTING + 1] = {0};
    for (size_t j = 0; j < jm->n_jobs; j++)
        by[jm->jobs[j]->state]++;
    weir_prom_family(f, "weir_jobmanager_jobs", "gauge", "Jobs in the job table by state.");
    for (int st = WEIR_JOB_CREATED; st <= WEIR_JOB_RESTARTING; st++)
        fprintf(f, "weir_jobmanager_jobs{state=\"%s\"} %" PRIu64 "\n",
                weir__jm_job_state_name((weir_jm_job_state_t)st), by[st]);
    return 0;
}

/* The job manager process (common/prom.c reads /proc) and its uptime. */
static void process_families(FILE *f, weir_jobmanager_t *jm, int64_t now_ms) {
    weir_prom_process_t pr;
    weir_prom_process_read(&pr);
    weir_prom_process_families(f, "weir_jobmanager_process_", NULL, NULL, &pr);
    weir_prom_family(f, "weir_jobmanager_uptime_seconds", "gauge",
                     "Time since the job manager started.");
    fprintf(f, "weir_jobmanager_uptime_seconds %.3f\n", (double)(now_ms - jm->start_ms) / 1000.0);
}

int weir__jm_prom_render(weir_jobmanager_t *jm, char **out, size_t *len) {
    *out = NULL;
    *len = 0;
    FILE *f = open_memstream(out, len);
    if (!f)
        return WEIR_ENOMEM;
    int64_t now_ms = weir_wall_ms();
    pthread_mutex_lock(&jm->mu);
    job_families(f, jm, now_ms);
    int rc = task_families(f, jm, now_ms);
    if (rc == 0)
        rc = tm_families(f, jm);
    pthread_mutex_unlock(&jm->mu);
    process_families(f, jm, now_ms);
    bool bad = ferror(f) != 0;
    if (fclose(f) != 0 || bad || rc != 0) {
        free(*out);
        *out = NULL;
        return WEIR_ENOMEM;
    }
    return 0;
}
