/* Owns the REST views shaped like Flink's (docs/rest.md, "Flink-shaped views"; schemas in
 * docs/openapi.yaml): GET /overview, /config, /jobs/overview, /jobmanager/config,
 * /jobs/{id}/vertices/{vid}, /jobs/{id}/vertices/{vid}/backpressure,
 * /jobs/{id}/checkpoints/config, /jobs/{id}/checkpoints/details/{cid}, /jobs/{id}/exceptions and
 * /taskmanagers/{id}; and the masked configuration /jobmanager/config shows. Field names are
 * Flink's where the concept is the same; weir's own figures keep weir's names.
 *
 * Invariants: every view is built from the tables under jm->mu in one critical section (a
 * consistent snapshot) and is a JSON value owned by the caller; a secret configuration value is
 * never in a view (weir_option_is_secret: "******"); the backpressure ratios come from the last
 * two metric reports of each subtask (backpressured / busy / idle time deltas over the wall time
 * between them; 0 with fewer than two), the level as Flink's: ok < 0.10 <= low <= 0.5 < high.
 *
 * Threading: REST thread; takes jm->mu (weir__jm_config_view: start-up, no lock needed). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "jobmanager/jobmanager_int.h"

#ifndef WEIR_JM_VERSION
#define WEIR_JM_VERSION "unknown"
#endif

static json_t *str_or_null(const char *s) {
    return s ? json_string(s) : json_null();
}

static json_t *not_found(const char *what, const char *id) {
    char msg[320];
    weir_fmt(msg, sizeof msg, "no such %s: %.200s", what, id);
    return json_pack("{s:s}", "error", msg);
}

json_t *weir__jm_config_view(const weir_config_t *cfg) {
    json_t *arr = json_array();
    for (const weir_config_key_t *k = weir_config_keys(); k->name; k++) {
        const char *v = weir_config_get_str(cfg, k->name);
        if (!v)
            continue;
        json_array_append_new(arr, json_pack("{s:s,s:s}", "key", k->name, "value",
                                             weir_option_is_secret(k->name) ? "******" : v));
    }
    return arr;
}

/* ---- cluster ------------------------------------------------------------------------------- */

/* GET /overview (Flink's ClusterOverview). */
static json_t *overview_locked(weir_jobmanager_t *jm) {
    uint64_t slots = 0, free_slots = 0;
    for (size_t i = 0; i < jm->n_tms; i++) {
        slots += jm->tms[i]->slots_total;
        free_slots += jm->tms[i]->slots_free;
    }
    uint64_t by[WEIR_JOB_RESTARTING + 1] = {0};
    for (size_t j = 0; j < jm->n_jobs; j++)
        by[jm->jobs[j]->state]++;
    return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:s}", "taskmanagers", (json_int_t)jm->n_tms,
                     "slots-total", (json_int_t)slots, "slots-available", (json_int_t)free_slots,
                     "jobs-running",
                     (json_int_t)(by[WEIR_JOB_RUNNING] + by[WEIR_JOB_CREATED] +
                                  by[WEIR_JOB_CANCELING] + by[WEIR_JOB_RESTARTING]),
                     "jobs-finished", (json_int_t)by[WEIR_JOB_FINISHED], "jobs-cancelled",
                     (json_int_t)by[WEIR_JOB_CANCELED], "jobs-failed",
                     (json_int_t)by[WEIR_JOB_FAILED], "weir-version", WEIR_JM_VERSION);
}

/* GET /config (Flink's DashboardConfiguration). */
static json_t *dashboard_config_locked(weir_jobmanager_t *jm) {
    return json_pack("{s:i,s:s,s:i,s:s,s:s,s:{s:b,s:b,s:b,s:b},s:b}", "refresh-interval", 3000,
                     "timezone-name", "UTC", "timezone-offset", 0, "weir-version", WEIR_JM_VERSION,
                     "weir-revision", "", "features", "web-submit", false, "web-cancel", true,
                     "web-rescale", false, "web-history", false, "rest-auth", jm->rest_cfg.auth);
}

/* The number of subtasks of @p job in each Flink task status (Flink's "tasks" object). */
static json_t *task_counts(const weir_jm_job_t *job, uint32_t only_vertex) {
    uint64_t n[WEIR_TASK_FAILED + 1] = {0}, total = 0;
    for (uint32_t v = 0; v < job->n_vertices; v++) {
        if (only_vertex != UINT32_MAX && v != only_vertex)
            continue;
        for (uint32_t s = 0; s < job->parallelism[v]; s++, total++)
            n[job->subtasks[v][s].state]++;
    }
    return json_pack(
        "{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "total", (json_int_t)total, "created",
        (json_int_t)n[WEIR_TASK_CREATED], "scheduled", (json_int_t)0, "deploying",
        (json_int_t)n[WEIR_TASK_DEPLOYING], "running", (json_int_t)n[WEIR_TASK_RUNNING], "finished",
        (json_int_t)n[WEIR_TASK_FINISHED], "canceling", (json_int_t)n[WEIR_TASK_CANCELING],
        "canceled", (json_int_t)n[WEIR_TASK_CANCELED], "failed", (json_int_t)n[WEIR_TASK_FAILED],
        "reconciling", (json_int_t)0, "initializing", (json_int_t)0);
}

static int64_t job_duration_ms(const weir_jm_job_t *job, int64_t now_ms) {
    return (job->end_ms >= 0 ? job->end_ms : now_ms) - job->start_ms;
}

/* GET /jobs/overview (Flink's MultipleJobsDetails). */
static json_t *jobs_overview_locked(weir_jobmanager_t *jm) {
    json_t *arr = json_array();
    int64_t now = weir_wall_ms();
    for (size_t j = 0; j < jm->n_jobs; j++) {
        const weir_jm_job_t *job = jm->jobs[j];
        json_array_append_new(
            arr, json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:o}", "jid", job->id, "name", job->name,
                           "state", weir__jm_job_state_name(job->state), "start-time",
                           (json_int_t)job->start_ms, "end-time", (json_int_t)job->end_ms,
                           "duration", (json_int_t)job_duration_ms(job, now), "last-modification",
                           (json_int_t)(job->end_ms >= 0 ? job->end_ms : job->start_ms), "tasks",
                           task_counts(job, UINT32_MAX)));
    }
    return json_pack("{s:o}", "jobs", arr);
}

/* GET /taskmanagers/{id} (Flink's TaskManagerDetailsInfo, with weir's memory pools). */
static json_t *taskmanager_locked(weir_jobmanager_t *jm, const weir_jm_tm_t *tm) {
    json_t *slots = json_array();
    for (size_t j = 0; j < jm->n_jobs; j++) {
        const weir_jm_job_t *job = jm->jobs[j];
        if (!job->slots_held)
            continue;
        for (uint32_t i = 0; i < job->slots_needed; i++)
            if (job->slot_tm_seq[i] == tm->seq)
                json_array_append_new(slots, json_pack("{s:s,s:i}", "jobId", job->id, "index", i));
    }
    int64_t since_ms = (weir_now_ns() - tm->last_seen_ns) / 1000000;
    const char *port = strrchr(tm->data_address, ':');
    json_t *mem_cfg = json_pack(
        "{s:I,s:I,s:I,s:I}", "networkMemory", (json_int_t)tm->mem_network_total, "managedMemory",
        (json_int_t)tm->mem_managed_total, "stateCacheMemory",
        (json_int_t)tm->mem_state_cache_total, "totalProcessMemory", (json_int_t)tm->mem_process);
    json_t *metrics = json_pack(
        "{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:i}", "nettyShuffleMemoryUsed",
        (json_int_t)tm->mem_network_used, "nettyShuffleMemoryTotal",
        (json_int_t)tm->mem_network_total, "managedMemoryUsed", (json_int_t)tm->mem_managed_used,
        "managedMemoryTotal", (json_int_t)tm->mem_managed_total, "stateCacheUsed",
        (json_int_t)tm->mem_state_cache_used, "stateCacheTotal",
        (json_int_t)tm->mem_state_cache_total, "residentMemory", (json_int_t)tm->rss_bytes,
        "cpuTime", (json_int_t)(tm->cpu_ns / 1000000), "metricsPort", (int)tm->metrics_port);
    return json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:i,s:i,s:I,s:o,s:o,s:o}", "id", tm->id, "path",
                     tm->data_address, "host", tm->host, "dataPort",
                     (json_int_t)(port ? strtol(port + 1, NULL, 10) : 0), "pid",
                     (json_int_t)tm->pid, "timeSinceLastHeartbeat", (json_int_t)since_ms,
                     "slotsNumber", (int)tm->slots_total, "freeSlots", (int)tm->slots_free,
                     "registeredSince", (json_int_t)tm->registered_ms, "memoryConfiguration",
                     mem_cfg, "metrics", metrics, "allocatedSlots", slots);
}

/* ---- a job's vertices ---------------------------------------------------------------------- */

/* Flink's vertex "metrics": bytes and records in/out, accumulated times (ms). */
static json_t *io_metrics(const weir_task_metrics_t *m) {
    return json_pack("{s:I,s:b,s:I,s:b,s:I,s:b,s:I,s:b,s:I,s:I,s:I}", "read-bytes",
                     (json_int_t)(m->bytes_in_remote + m->bytes_in_local), "read-bytes-complete",
                     true, "write-bytes", (json_int_t)(m->bytes_out_remote + m->bytes_out_local),
                     "write-bytes-complete", true, "read-records", (json_int_t)m->records_in,
                     "read-records-complete", true, "write-records", (json_int_t)m->records_out,
                     "write-records-complete", true, "accumulated-backpressured-time",
                     (json_int_t)(m->backpressured_ns / 1000000), "accumulated-idle-time",
                     (json_int_t)(m->idle_ns / 1000000), "accumulated-busy-time",
                     (json_int_t)(m->busy_ns / 1000000));
}

static void metrics_add(weir_task_metrics_t *t, const weir_task_metrics_t *m) {
    t->records_in += m->records_in;
    t->records_out += m->records_out;
    t->bytes_in_remote += m->bytes_in_remote;
    t->bytes_in_local += m->bytes_in_local;
    t->bytes_out_remote += m->bytes_out_remote;
    t->bytes_out_local += m->bytes_out_local;
    t->backpressured_ns += m->backpressured_ns;
    t->idle_ns += m->idle_ns;
    t->busy_ns += m->busy_ns;
}

/* GET /jobs/{id}/vertices/{vid} (Flink's JobVertexDetailsInfo). */
static json_t *vertex_locked(const weir_jm_job_t *job, uint32_t v) {
    json_t *subtasks = json_array();
    int64_t now = weir_wall_ms();
    weir_task_metrics_t total = {0};
    for (uint32_t s = 0; s < job->parallelism[v]; s++) {
        const weir_jm_subtask_t *st = &job->subtasks[v][s];
        metrics_add(&total, &st->metrics);
        int64_t start = st->start_ms ? st->start_ms : -1;
        int64_t end = st->end_ms ? st->end_ms : -1;
        int64_t duration = start < 0 ? -1 : (end >= 0 ? end : now) - start;
        const char *host = st->address;
        json_array_append_new(
            subtasks,
            json_pack("{s:i,s:s,s:i,s:o,s:o,s:o,s:I,s:I,s:I,s:o,s:o}", "subtask", (int)s, "status",
                      weir_task_state_name(st->state), "attempt",
                      (int)(job->attempt ? job->attempt - 1 : 0), "host", str_or_null(host),
                      "endpoint", str_or_null(st->address), "taskmanager-id",
                      str_or_null(st->tm_id), "start-time", (json_int_t)start, "end-time",
                      (json_int_t)end, "duration", (json_int_t)duration, "metrics",
                      io_metrics(&st->metrics), "message", str_or_null(st->message)));
    }
    const weir_vertex_t *vx = &job->dag->vertices[v];
    return json_pack("{s:i,s:s,s:i,s:i,s:I,s:o,s:o}", "id", (int)v, "name", vx->name, "parallelism",
                     (int)job->parallelism[v], "maxParallelism", (int)job->dag->max_parallelism,
                     "now", (json_int_t)now, "metrics", io_metrics(&total), "subtasks", subtasks);
}

static const char *bp_level(double ratio) {
    return ratio < 0.10 ? "ok" : ratio <= 0.5 ? "low" : "high";
}

/* @p now - @p before over @p wall_ns, within [0, 1]. */
static double ratio(uint64_t now, uint64_t before, int64_t wall_ns) {
    if (wall_ns <= 0 || now < before)
        return 0;
    double r = (double)(now - before) / (double)wall_ns;
    return r > 1 ? 1 : r;
}

/* GET /jobs/{id}/vertices/{vid}/backpressure (Flink's JobVertexBackPressureInfo). */
static json_t *backpressure_locked(const weir_jm_job_t *job, uint32_t v) {
    json_t *subtasks = json_array();
    double worst = 0;
    for (uint32_t s = 0; s < job->parallelism[v]; s++) {
        const weir_jm_subtask_t *st = &job->subtasks[v][s];
        double bp = 0, busy = 0, idle = 0;
        if (st->prev_metrics_ns && st->metrics_ns > st->prev_metrics_ns) {
            int64_t wall = st->metrics_ns - st->prev_metrics_ns;
            bp = ratio(st->metrics.backpressured_ns, st->prev_metrics.backpressured_ns, wall);
            busy = ratio(st->metrics.busy_ns, st->prev_metrics.busy_ns, wall);
            idle = ratio(st->metrics.idle_ns, st->prev_metrics.idle_ns, wall);
        }
        if (bp > worst)
            worst = bp;
        json_array_append_new(
            subtasks, json_pack("{s:i,s:i,s:s,s:f,s:f,s:f}", "subtask", (int)s, "attempt-number",
                                (int)(job->attempt ? job->attempt - 1 : 0), "backpressure-level",
                                bp_level(bp), "ratio", bp, "busyRatio", busy, "idleRatio", idle));
    }
    return json_pack("{s:s,s:s,s:I,s:o}", "status", "ok", "backpressure-level", bp_level(worst),
                     "end-timestamp", (json_int_t)weir_wall_ms(), "subtasks", subtasks);
}

/* ---- a job's checkpoints ------------------------------------------------------------------- */

static const char *mode_name(weir_checkpoint_mode_t m) {
    return m == WEIR_CHECKPOINT_AT_LEAST_ONCE ? "at_least_once" : "exactly_once";
}

/* GET /jobs/{id}/checkpoints/config (Flink's CheckpointConfigInfo). */
static json_t *checkpoint_config_locked(weir_jobmanager_t *jm, const weir_jm_job_t *job) {
    const weir_ckpt_config_t *c = &jm->ckcfg;
    (void)job;
    return json_pack(
        "{s:b,s:s,s:I,s:I,s:I,s:i,s:{s:b,s:b},s:s,s:s,s:b,s:I,s:I,s:b,s:i,s:b}", "enabled",
        c->enabled, "mode", mode_name(c->mode), "interval",
        (json_int_t)(c->enabled ? c->interval_ms : INT64_MAX), "timeout", (json_int_t)c->timeout_ms,
        "min_pause", (json_int_t)c->min_pause_ms, "max_concurrent", 1, "externalization", "enabled",
        jm->ck_retention != WEIR_JM_NO_EXTERNALIZED, "delete_on_cancellation",
        jm->ck_retention != WEIR_JM_RETAIN_ON_CANCELLATION, "state_backend",
        "EmbeddedRocksDBStateBackend", "checkpoint_storage", "FileSystemCheckpointStorage",
        "unaligned_checkpoints", false, "tolerable_failed_checkpoints", (json_int_t)c->tolerable,
        "aligned_checkpoint_timeout", (json_int_t)0, "checkpoints_after_tasks_finish", true,
        "num_retained", (int)c->num_retained, "incremental", c->incremental);
}

/* GET /jobs/{id}/checkpoints/details/{cid} (Flink's CheckpointStatistics), or NULL when the
 * history no longer (or never) held it. */
static json_t *checkpoint_details_locked(const weir_jm_job_t *job, uint64_t id) {
    const weir_ckpt_coord_t *c = &job->ckpt;
    for (uint32_t i = 0; i < c->hist_len; i++) {
        const weir_ckpt_hist_t *h = weir_ckpt_coord_hist(c, i);
        if (h->id != id)
            continue;
        uint32_t n = c->n_subtasks;
        const char *path = c->have_completed && c->latest.id == id ? c->latest_path : NULL;
        json_t *body = json_pack(
            "{s:I,s:s,s:b,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:i,s:i,s:o,s:o,s:b}", "id",
            (json_int_t)h->id, "status", weir_ckpt_status_name(h->status), "is_savepoint",
            h->kind != WEIR_CK_CHECKPOINT, "checkpoint_type",
            h->kind == WEIR_CK_STOP        ? "SYNC_SAVEPOINT"
            : h->kind == WEIR_CK_SAVEPOINT ? "SAVEPOINT"
                                           : "CHECKPOINT",
            "trigger_timestamp", (json_int_t)h->trigger_ms, "latest_ack_timestamp",
            (json_int_t)(h->duration_ms >= 0 ? h->trigger_ms + h->duration_ms : -1), "state_size",
            (json_int_t)h->state_size, "checkpointed_size", (json_int_t)h->uploaded_size,
            "end_to_end_duration", (json_int_t)h->duration_ms, "alignment_duration",
            (json_int_t)h->alignment_ms, "sync_duration", (json_int_t)h->sync_ms, "async_duration",
            (json_int_t)h->async_ms, "processed_data", (json_int_t)0, "num_subtasks", (int)n,
            "num_acknowledged_subtasks", (int)(h->status == WEIR_CKPT_COMPLETED ? n : 0),
            "external_path", str_or_null(path), "failure_message",
            h->failure[0] ? json_string(h->failure) : json_null(), "discarded", false);
        return body;
    }
    return NULL;
}

/* ---- routing ------------------------------------------------------------------------------- */

/* Copies the path segment at @p p (up to '/' or the end) into @p out; @returns the rest. */
static const char *segment(const char *p, char *out, size_t cap, bool *ok) {
    const char *slash = strchr(p, '/');
    size_t n = slash ? (size_t)(slash - p) : strlen(p);
    *ok = n > 0 && n < cap;
    if (*ok) {
        memcpy(out, p, n);
        out[n] = 0;
    }
    return p + n;
}

/* GET /jobs/{id}/...: @p rest is what follows the id ("" or "/..."). */
static unsigned job_get_locked(weir_jobmanager_t *jm, const char *id, const char *rest,
                               json_t **body) {
    bool vertices = !strncmp(rest, "/vertices/", 10);
    bool details = !strncmp(rest, "/checkpoints/details/", 21);
    if (strcmp(rest, "/exceptions") && strcmp(rest, "/checkpoints/config") && !vertices && !details)
        return 0;
    weir_jm_job_t *job = weir__jm_find_job_locked(jm, id);
    if (!job) {
        *body = not_found("job", id);
        return 404;
    }
    if (!strcmp(rest, "/exceptions")) {
        *body = weir__jm_exceptions_json_locked(job);
        return 200;
    }
    if (!strcmp(rest, "/checkpoints/config")) {
        *body = checkpoint_config_locked(jm, job);
        return 200;
    }
    if (details) {
        int64_t cid;
        if (weir_parse_int(rest + 21, 1, INT64_MAX, &cid) != 0 ||
            !(*body = checkpoint_details_locked(job, (uint64_t)cid))) {
            char what[96];
            weir_fmt(what, sizeof what, "checkpoint in the history of job %s", job->id);
            *body = not_found(what, rest + 21);
            return 404;
        }
        return 200;
    }
    char vid[32];
    bool ok;
    const char *after = segment(rest + 10, vid, sizeof vid, &ok);
    if (strcmp(after, "") && strcmp(after, "/backpressure"))
        return 0;
    int64_t v;
    if (!ok || weir_parse_int(vid, 0, (int64_t)job->n_vertices - 1, &v) != 0) {
        char what[80];
        weir_fmt(what, sizeof what, "vertex of job %s", job->id);
        *body = not_found(what, ok ? vid : rest + 10);
        return 404;
    }
    *body = *after ? backpressure_locked(job, (uint32_t)v) : vertex_locked(job, (uint32_t)v);
    return 200;
}

unsigned weir__jm_flink_get(weir_jobmanager_t *jm, const char *url, json_t **body) {
    unsigned status = 0;
    *body = NULL;
    pthread_mutex_lock(&jm->mu);
    if (!strcmp(url, "/overview")) {
        *body = overview_locked(jm);
        status = 200;
    } else if (!strcmp(url, "/config")) {
        *body = dashboard_config_locked(jm);
        status = 200;
    } else if (!strcmp(url, "/jobs/overview")) {
        *body = jobs_overview_locked(jm);
        status = 200;
    } else if (!strcmp(url, "/jobmanager/config")) {
        *body = json_deep_copy(jm->config_view);
        status = 200;
    } else if (!strncmp(url, "/taskmanagers/", 14) && !strchr(url + 14, '/') && url[14]) {
        const weir_jm_tm_t *tm = weir__jm_find_tm_id_locked(jm, url + 14);
        *body = tm ? taskmanager_locked(jm, tm) : not_found("task manager", url + 14);
        status = tm ? 200 : 404;
    } else if (!strncmp(url, "/jobs/", 6)) {
        char id[80];
        bool ok;
        const char *rest = segment(url + 6, id, sizeof id, &ok);
        if (ok)
            status = job_get_locked(jm, id, rest, body);
    }
    pthread_mutex_unlock(&jm->mu);
    if (status && !*body) {
        *body = json_pack("{s:s}", "error", "job manager out of memory");
        status = 500;
    }
    return status;
}
