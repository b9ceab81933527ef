/* Owns GET /metrics of the job manager: the Prometheus text exposition format 0.0.4 of its jobs
 * (state, uptime, restarts, checkpoint counts and the latest completed checkpoint), of every
 * subtask's METRICS report (the fields of weir_task_metrics_t, common/proto.h), of the task
 * managers (slots, and the figures of their heartbeats: RSS, CPU, memory pools) and of the job
 * manager process (CPU, RSS, uptime). The list of families and their meaning is in docs/rest.md,
 * "Prometheus metrics".
 *
 * Invariants: every name starts with weir_; each family is written once (HELP, TYPE, then all of
 * its samples), so the output passes `promtool check metrics`; counters end in _total; times are
 * seconds and sizes bytes (Prometheus' base units); label values are escaped (backslash, double
 * quote, newline). Per-subtask series cover jobs that have not ended or ended less than
 * WEIR_JM_PROM_ENDED_MS ago, and only subtasks that were deployed; a watermark of INT64_MIN (none)
 * or INT64_MAX (input ended) has no watermark series, a Kafka lag below 0 (not a Kafka source)
 * none either.
 *
 * Threading: REST thread; the tables are read under jm->mu (one snapshot), the process figures
 * from /proc and clock_gettime. */
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/util.h"
#include "jobmanager/jobmanager_int.h"

void weir__jm_prom_label(FILE *f, const char *s) {
    for (; s && *s; s++) {
        if (*s == '\\')
            fputs("\\\\", f);
        else if (*s == '"')
            fputs("\\\"", f);
        else if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

static void family(FILE *f, const char *name, const char *type, const char *help) {
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* ---- per subtask --------------------------------------------------------------------------- */

typedef enum { U64, I64, NS_AS_S } field_kind_t;

/* One family per field of weir_task_metrics_t (watermark, lag and usage ratios are computed). */
typedef struct task_family {
    const char *name, *type, *help;
    size_t offset;
    field_kind_t kind;
} task_family_t;

#define TF(name, type, field, kind, help)                                                          \
    { name, type, help, offsetof(weir_task_metrics_t, field), kind }
static const task_family_t TASK_FAMILIES[] = {
    TF("weir_task_records_in_total", "counter", records_in, U64, "Records read by the subtask."),
    TF("weir_task_records_out_total", "counter", records_out, U64,
       "Records emitted by the subtask's chain."),
    TF("weir_task_buffers_in_remote_total", "counter", buffers_in_remote, U64,
       "Buffers received over ZeroMQ."),
    TF("weir_task_bytes_in_remote_total", "counter", bytes_in_remote, U64,
       "Bytes of buffers received over ZeroMQ."),
    TF("weir_task_buffers_in_local_total", "counter", buffers_in_local, U64,
       "Buffers received from a subtask in the same task manager."),
    TF("weir_task_bytes_in_local_total", "counter", bytes_in_local, U64,
       "Bytes of buffers received from a subtask in the same task manager."),
    TF("weir_task_buffers_out_remote_total", "counter", buffers_out_remote, U64,
       "Buffers sent over ZeroMQ."),
    TF("weir_task_bytes_out_remote_total", "counter", bytes_out_remote, U64,
       "Bytes of buffers sent over ZeroMQ."),
    TF("weir_task_buffers_out_local_total", "counter", buffers_out_local, U64,
       "Buffers passed to a subtask in the same task manager."),
    TF("weir_task_bytes_out_local_total", "counter", bytes_out_local, U64,
       "Bytes of buffers passed to a subtask in the same task manager."),
    TF("weir_task_busy_seconds_total", "counter", busy_ns, NS_AS_S,
       "Time processing records, timers and barriers."),
    TF("weir_task_idle_seconds_total", "counter", idle_ns, NS_AS_S, "Time waiting for input."),
    TF("weir_task_backpressured_seconds_total", "counter", backpressured_ns, NS_AS_S,
       "Time waiting for output credit (backpressure)."),
    TF("weir_task_input_buffers_queued", "gauge", in_queued, U64, "Input buffers queued now."),
    TF("weir_task_input_buffers_capacity", "gauge", in_capacity, U64,
       "Input buffers possible (credits of all input channels)."),
    TF("weir_task_output_buffers_queued", "gauge", out_queued, U64,
       "Output buffers filled and not yet sent or consumed."),
    TF("weir_task_output_buffers_capacity", "gauge", out_capacity, U64, "Output buffers possible."),
    TF("weir_task_late_records_dropped_total", "counter", late_records_dropped, U64,
       "Records dropped as late by windows and interval joins."),
    TF("weir_task_state_cache_hits_total", "counter", state_cache_hits, U64,
       "Write-back state cache hits."),
    TF("weir_task_state_cache_misses_total", "counter", state_cache_misses, U64,
       "Write-back state cache misses (read from RocksDB)."),
    TF("weir_task_kafka_transactions_committed_total", "counter", kafka_tx_committed, U64,
       "Kafka exactly-once sink: transactions committed."),
    TF("weir_task_kafka_transactions_aborted_total", "counter", kafka_tx_aborted, U64,
       "Kafka exactly-once sink: transactions aborted."),
};
#undef TF

/* The families computed from several fields. */
enum {
    C_IN_USAGE,
    C_OUT_USAGE,
    C_WATERMARK,
    C_WATERMARK_LAG,
    C_KAFKA_LAG,
    C_COUNT,
};
static const struct {
    const char *name, *type, *help;
} COMPUTED[C_COUNT] = {
    {"weir_task_input_buffer_usage", "gauge", "Input buffers queued / possible (0..1)."},
    {"weir_task_output_buffer_usage", "gauge", "Output buffers queued / possible (0..1)."},
    {"weir_task_watermark_seconds", "gauge",
     "Current output watermark (event time, seconds since the epoch)."},
    {"weir_task_watermark_lag_seconds", "gauge", "Wall clock minus the current output watermark."},
    {"weir_task_kafka_consumer_lag_records", "gauge",
     "Kafka source: records behind the high watermark, summed over its partitions."},
};

static bool job_listed(const weir_jm_job_t *job, int64_t now_ms) {
    return !weir__jm_job_terminal(job->state) || now_ms - job->end_ms < WEIR_JM_PROM_ENDED_MS;
}

static void job_labels(FILE *f, const weir_jm_job_t *job) {
    fprintf(f, "job_id=\"%s\",job_name=\"", job->id);
    weir__jm_prom_label(f, job->name);
    fputc('"', f);
}

static void task_labels(FILE *f, const weir_jm_job_t *job, uint32_t v, uint32_t s) {
    fputc('{', f);
    job_labels(f, job);
    fputs(",vertex=\"", f);
    weir__jm_prom_label(f, job->dag->vertices[v].name);
    fprintf(f, "\",vertex_id=\"%u\",subtask=\"%u\",tm_id=\"", v, s);
    weir__jm_prom_label(f, job->subtasks[v][s].tm_id);
    fputs("\"}", f);
}

/* Writes the sample of computed family @p which for @p m; nothing when it has no value. */
static void computed_sample(FILE *f, int which, const weir_task_metrics_t *m, int64_t now_ms,
                            const weir_jm_job_t *job, uint32_t v, uint32_t s) {
    double value;
    switch (which) {
    case C_IN_USAGE:
        value = m->in_capacity ? (double)m->in_queued / (double)m->in_capacity : 0;
        break;
    case C_OUT_USAGE:
        value = m->out_capacity ? (double)m->out_queued / (double)m->out_capacity : 0;
        break;
    case C_WATERMARK:
    case C_WATERMARK_LAG:
        if (m->watermark == INT64_MIN || m->watermark == INT64_MAX)
            return;
        value = (which == C_WATERMARK ? (double)m->watermark : (double)(now_ms - m->watermark)) /
                1000.0;
        break;
    default:
        if (m->kafka_lag < 0)
            return;
        value = (double)m->kafka_lag;
        break;
    }
    fputs(COMPUTED[which].name, f);
    task_labels(f, job, v, s);
    fprintf(f, " %.17g\n", value);
}

static void task_families(FILE *f, weir_jobmanager_t *jm, int64_t now_ms) {
    size_t n = sizeof TASK_FAMILIES / sizeof TASK_FAMILIES[0];
    for (size_t k = 0; k < n + C_COUNT; k++) {
        const task_family_t *tf = k < n ? &TASK_FAMILIES[k] : NULL;
        if (tf)
            family(f, tf->name, tf->type, tf->help);
        else
            family(f, COMPUTED[k - n].name, COMPUTED[k - n].type, COMPUTED[k - n].help);
        for (size_t j = 0; j < jm->n_jobs; j++) {
            const weir_jm_job_t *job = jm->jobs[j];
            if (!job_listed(job, now_ms))
                continue;
            for (uint32_t v = 0; v < job->n_vertices; v++)
                for (uint32_t s = 0; s < job->parallelism[v]; s++) {
                    const weir_jm_subtask_t *st = &job->subtasks[v][s];
                    if (!st->start_ms || !st->tm_id)
                        continue;
                    if (!tf) {
                        computed_sample(f, (int)(k - n), &st->metrics, now_ms, job, v, s);
                        continue;
                    }
                    const char *p = (const char *)&st->metrics + tf->offset;
                    fputs(tf->name, f);
                    task_labels(f, job, v, s);
                    if (tf->kind == NS_AS_S)
                        fprintf(f, " %.9f\n", (double)*(const uint64_t *)p / 1e9);
                    else if (tf->kind == I64)
                        fprintf(f, " %" PRId64 "\n", *(const int64_t *)p);
                    else
                        fprintf(f, " %" PRIu64 "\n", *(const uint64_t *)p);
                }
        }
    }
}

/* ---- per job ------------------------------------------------------------------------------- */

static void job_families(FILE *f, weir_jobmanager_t *jm, int64_t now_ms) {
    family(f, "weir_job_state", "gauge", "1 for the job's current state, 0 for the others.");
    for (size_t j = 0; j < jm->n_jobs; j++)
        for (int st = WEIR_JOB_CREATED; st <= WEIR_JOB_RESTARTING; st++) {
            fputs("weir_job_state{", f);
            job_labels(f, jm->jobs[j]);
            fprintf(f, ",state=\"%s\"} %d\n", weir__jm_job_state_name((weir_jm_job_state_t)st),
                    jm->jobs[j]->state == (weir_jm_job_state_t)st);
        }
    family(f, "weir_job_uptime_seconds", "gauge",
           "Time since the job was submitted (until it ended).");
    for (size_t j = 0; j < jm->n_jobs; j++) {
        const weir_jm_job_t *job = jm->jobs[j];
        fputs("weir_job_uptime_seconds{", f);
        job_labels(f, job);
        fprintf(f, "} %.3f\n",
                (double)((job->end_ms >= 0 ? job->end_ms : now_ms) - job->start_ms) / 1000.0);
    }
    family(f, "weir_job_restarts_total", "counter", "Restarts of the job so far.");
    for (size_t j = 0; j < jm->n_jobs; j++) {
        fputs("weir_job_restarts_total{", f);
        job_labels(f, jm->jobs[j]);
        fprintf(f, "} %u\n", jm->jobs[j]->restart.restarts);
    }
    family(f, "weir_job_checkpoints_total", "counter",
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
    family(f, "weir_job_checkpoints_in_progress", "gauge", "Checkpoints in flight (0 or 1).");
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
        family(f, last[i].name, "gauge", last[i].help);
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

static void tm_gauge(FILE *f, weir_jobmanager_t *jm, const char *name, const char *type,
                     const char *help, size_t offset, double scale) {
    family(f, name, type, help);
    for (size_t i = 0; i < jm->n_tms; i++) {
        fprintf(f, "%s{tm_id=\"", name);
        weir__jm_prom_label(f, jm->tms[i]->id);
        uint64_t v = *(const uint64_t *)((const char *)jm->tms[i] + offset);
        if (scale == 1)
            fprintf(f, "\"} %" PRIu64 "\n", v);
        else
            fprintf(f, "\"} %.9f\n", (double)v * scale);
    }
}

static void tm_families(FILE *f, weir_jobmanager_t *jm) {
    uint64_t slots = 0, free_slots = 0;
    family(f, "weir_taskmanager_slots", "gauge", "Task slots of a task manager.");
    for (size_t i = 0; i < jm->n_tms; i++) {
        fputs("weir_taskmanager_slots{tm_id=\"", f);
        weir__jm_prom_label(f, jm->tms[i]->id);
        fprintf(f, "\"} %u\n", jm->tms[i]->slots_total);
        slots += jm->tms[i]->slots_total;
        free_slots += jm->tms[i]->slots_free;
    }
    family(f, "weir_taskmanager_slots_free", "gauge", "Free task slots of a task manager.");
    for (size_t i = 0; i < jm->n_tms; i++) {
        fputs("weir_taskmanager_slots_free{tm_id=\"", f);
        weir__jm_prom_label(f, jm->tms[i]->id);
        fprintf(f, "\"} %u\n", jm->tms[i]->slots_free);
    }
    tm_gauge(f, jm, "weir_taskmanager_resident_memory_bytes", "gauge",
             "Resident set size of the task manager process (its last heartbeat).",
             offsetof(weir_jm_tm_t, rss_bytes), 1);
    tm_gauge(f, jm, "weir_taskmanager_cpu_seconds_total", "counter",
             "CPU time (user + system) of the task manager process (its last heartbeat).",
             offsetof(weir_jm_tm_t, cpu_ns), 1e-9);
    static const struct {
        const char *pool;
        size_t total, used;
    } pools[] = {
        {"process", offsetof(weir_jm_tm_t, mem_process), 0},
        {"network", offsetof(weir_jm_tm_t, mem_network_total),
         offsetof(weir_jm_tm_t, mem_network_used)},
        {"managed", offsetof(weir_jm_tm_t, mem_managed_total),
         offsetof(weir_jm_tm_t, mem_managed_used)},
        {"state_cache", offsetof(weir_jm_tm_t, mem_state_cache_total),
         offsetof(weir_jm_tm_t, mem_state_cache_used)},
    };
    for (int used = 0; used < 2; used++) {
        const char *name =
            used ? "weir_taskmanager_memory_used_bytes" : "weir_taskmanager_memory_budget_bytes";
        family(f, name, "gauge",
               used ? "Memory in use in a pool of the task manager's budget."
                    : "A pool of the task manager's memory budget (process: "
                      "taskmanager.memory.process.size).");
        for (size_t i = 0; i < jm->n_tms; i++)
            for (int p = used; p < 4; p++) {
                fprintf(f, "%s{tm_id=\"", name);
                weir__jm_prom_label(f, jm->tms[i]->id);
                fprintf(f, "\",pool=\"%s\"} %" PRIu64 "\n", pools[p].pool,
                        *(const uint64_t *)((const char *)jm->tms[i] +
                                            (used ? pools[p].used : pools[p].total)));
            }
    }
    family(f, "weir_jobmanager_taskmanagers", "gauge", "Registered task managers.");
    fprintf(f, "weir_jobmanager_taskmanagers %zu\n", jm->n_tms);
    family(f, "weir_jobmanager_slots", "gauge", "Task slots of all task managers.");
    fprintf(f, "weir_jobmanager_slots %" PRIu64 "\n", slots);
    family(f, "weir_jobmanager_slots_available", "gauge", "Free task slots of all task managers.");
    fprintf(f, "weir_jobmanager_slots_available %" PRIu64 "\n", free_slots);
    uint64_t by[WEIR_JOB_RESTARTING + 1] = {0};
    for (size_t j = 0; j < jm->n_jobs; j++)
        by[jm->jobs[j]->state]++;
    family(f, "weir_jobmanager_jobs", "gauge", "Jobs in the job table by state.");
    for (int st = WEIR_JOB_CREATED; st <= WEIR_JOB_RESTARTING; st++)
        fprintf(f, "weir_jobmanager_jobs{state=\"%s\"} %" PRIu64 "\n",
                weir__jm_job_state_name((weir_jm_job_state_t)st), by[st]);
}

/* The job manager process: CPU from clock_gettime, RSS from /proc/self/statm. */
static void process_families(FILE *f, weir_jobmanager_t *jm, int64_t now_ms) {
    struct timespec ts = {0};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    unsigned long long pages = 0, resident = 0;
    FILE *statm = fopen("/proc/self/statm", "r");
    if (statm) {
        if (fscanf(statm, "%llu %llu", &pages, &resident) != 2)
            resident = 0;
        fclose(statm);
    }
    long page = sysconf(_SC_PAGESIZE);
    family(f, "weir_jobmanager_process_cpu_seconds_total", "counter",
           "CPU time (user + system) of the job manager process.");
    fprintf(f, "weir_jobmanager_process_cpu_seconds_total %.9f\n",
            (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
    family(f, "weir_jobmanager_process_resident_memory_bytes", "gauge",
           "Resident set size of the job manager process.");
    fprintf(f, "weir_jobmanager_process_resident_memory_bytes %llu\n",
            resident * (unsigned long long)(page > 0 ? page : 4096));
    family(f, "weir_jobmanager_uptime_seconds", "gauge", "Time since the job manager started.");
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
    task_families(f, jm, now_ms);
    tm_families(f, jm);
    pthread_mutex_unlock(&jm->mu);
    process_families(f, jm, now_ms);
    if (ferror(f) || fclose(f) != 0) {
        free(*out);
        *out = NULL;
        return WEIR_ENOMEM;
    }
    return 0;
}
