/* The task manager context and its control loop.
 *
 * Owns: the configuration, the resource id, the working directory, the data plane, the DEALER
 * socket to the job manager, the plugin cache (sha256 -> verified file + loaded plugin), deploys
 * waiting for a blob, the list of live tasks, and the checkpoint storage env (storage/storage.h,
 * from the s3.* keys; every task uploads and restores keyed state through it, so the process
 * shares one bound on concurrent uploads and one set of counters) with the local recovery cache
 * "<workdir>/local-recovery/<job>/" (state/README.md "Local recovery": shared SSTs of the latest
 * restores, reused by the next restore of the same checkpoint here without a download).
 *
 * Invariants:
 *  - A plugin is opened only from bytes whose sha256 matched the name it was requested by.
 *  - Every deploy ends in exactly one TASK_STATE FAILED/CANCELED message or a started task, and
 *    every started task reports its final state before it is joined and forgotten.
 *  - Task state changes reach the job manager in the order the task produced them.
 *
 *  - Checkpoint control messages: TRIGGER_CHECKPOINT goes to the mailbox of the one subtask it
 *    names (with its kind and a savepoint's target directory, unchanged), NOTIFY_CHECKPOINT to
 *    every subtask of (job, attempt); DEPLOY's restore fields (the operator-state bundle and the
 *    keyed restore document) go to the task unchanged; ACK/DECLINE messages produced
 *    on task and uploader threads are encoded there and queued; only the loop thread touches the
 *    DEALER socket.
 *  - Registering again (an UNKNOWN while registered: a new job manager, or one that declared us
 *    lost; or heartbeat.timeout without a message from the job manager, checked before the
 *    messages that waited while the loop could not run, e.g. under SIGSTOP) first cancels every
 *    task, drops pending deploys and waits (REREGISTER_WAIT_NS) until the tasks stopped and were
 *    joined; only then REGISTER goes out. A task still running at the deadline is reported and
 *    "withheld": its slot is not offered, it is left out of heartbeats (it belongs to no
 *    registration), and once every withheld task ended and nothing else runs, the task manager
 *    registers again with all its slots. Until REGISTERED arrives, DEPLOY is refused (TASK_STATE
 *    FAILED), TRIGGER declined, NOTIFY dropped and UNKNOWN ignored (it answers a message sent
 *    before our REGISTER): they belong to a registration the job manager has replaced.
 *  - Attempt fencing: the newest attempt deployed here is remembered per job; a DEPLOY, TRIGGER or
 *    NOTIFY of an older attempt is rejected (FAILED, DECLINE, dropped), and a DEPLOY of a newer
 *    attempt cancels whatever of an older attempt of that job still runs here. The job manager's
 *    attempt numbers only grow, so an older attempt is always a stale one.
 *
 * Threading: everything runs on the loop thread except on_task_state() and task_send(), which
 * run on task (and uploader) threads and only append to mutex-protected lists (events, encoded
 * outgoing messages) and write one byte into a wake-up pipe that the loop polls with the socket;
 * the loop drains both lists every iteration (outgoing messages first). */
#include "taskmanager/taskmanager.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "common/curve.h"
#include "common/err.h"
#include "common/killpoint.h"
#include "common/json.h"
#include "common/log.h"
#include "common/prom.h"
#include "common/proto.h"
#include "common/util.h"
#include "connectors/registry.h"
#include "runtime/dataplane/dataplane.h"
#include "runtime/graph/graph.h"
#include "runtime/graph/plugin.h"
#include "runtime/task/task.h"
#include "storage/storage.h"
#include "taskmanager/logring.h"
#include "taskmanager/tm_int.h"
#include "taskmanager/memory_int.h"

#define COMP "taskmanager"
#define POLL_MS 50
#define SHUTDOWN_WAIT_NS (30LL * 1000 * 1000 * 1000)
#define TM_MAX_CONTROL_MSG ((int64_t)257 * 1024 * 1024) /* a 256 MiB plugin and its envelope */
/* How long a re-registration waits for the old tasks to stop before it offers the other slots. */
#define REREGISTER_WAIT_NS (10LL * 1000 * 1000 * 1000)
/* The largest log tail a LOG answer carries (LOG_REQUEST's bound) and taskmanager.log.tail-size. */
#define LOG_TAIL_MAX ((size_t)1 << 20)
#define LOG_RING_MAX ((uint64_t)64 << 20)

typedef struct tm_plugin {
    char sha[65];
    char *path;
    weir_plugin_t *plugin;
} tm_plugin_t;

typedef struct tm_task {
    weir_task_t *task;
    char job_id[33];
    uint32_t attempt, vertex, subtask;
    uint32_t parallelism; /* of its vertex */
    char *job_name;       /* for /metrics labels */
    char *vertex_name;
    bool withheld;      /* did not stop before a re-registration: its slot is not offered */
    uint64_t net_bytes; /* network buffers reserved for it (memory.c) */
} tm_task_t;

/* The newest attempt of a job deployed here (attempt fencing). */
typedef struct tm_attempt {
    char job_id[33];
    uint32_t attempt;
} tm_attempt_t;

typedef struct tm_out {
    uint8_t *data;
    size_t len;
} tm_out_t;

typedef struct tm_event {
    weir_task_t *task;
    weir_task_state_t state;
    char *message;
    weir_task_metrics_t metrics;
} tm_event_t;

struct weir_taskmanager {
    weir_config_t *cfg;
    char id[128];
    char *workdir;
    bool workdir_default;
    weir_storage_env_t *storage_env; /* outlives every task */
    char *recovery_dir;              /* <workdir>/local-recovery */
    char jm_endpoint[512];
    uint32_t slots;
    weir_dataplane_t *dp;
    void *zctx;
    void *dealer;

    tm_plugin_t *plugins;
    size_t n_plugins, cap_plugins;
    weir_msg_t *pending; /* deploys waiting for their plugin blob */
    size_t n_pending, cap_pending;
    /* Live tasks. Changed by the loop thread only and only under tasksmu; read by the loop
     * thread without it and by the /metrics thread (weir__tm_collect) under it. */
    pthread_mutex_t tasksmu;
    tm_task_t *tasks;
    size_t n_tasks, cap_tasks;
    tm_attempt_t *attempts; /* newest attempt per job deployed here; one entry per job */
    size_t n_attempts, cap_attempts;

    pthread_mutex_t evmu;
    tm_event_t *events;
    size_t n_events, cap_events;
    tm_out_t *outq; /* encoded messages from task threads (under evmu) */
    size_t n_outq, cap_outq;
    int wake[2]; /* pipe: task threads -> loop */

    weir_killpoint_t kp; /* debug.kill-at */
    bool incremental;    /* state.backend.incremental */

    int64_t hb_interval_ns, hb_timeout_ns;
    int64_t last_hb_ns, last_contact_ns;
    unsigned silent_periods; /* heartbeat.timeout periods without a message, in a row */
    /* The lease tasks check (weir_ctx_lease_valid): weir_now_ns() of the last message from the
     * job manager while registered, 0 while not registered; written by the loop thread only. */
    _Atomic int64_t lease_from_ns;
    bool registered;
    bool stopping;            /* re-registering: waiting for the old tasks to stop */
    int64_t stop_started_ns;  /* stopping: since when */
    int64_t stop_deadline_ns; /* stopping: REGISTER goes out at the latest then */
    uint32_t withheld_slots;  /* slots the last REGISTER did not offer (withheld tasks) */

    size_t buffer_size;
    int64_t buffer_timeout_ns;
    int64_t wm_interval_ns; /* pipeline.auto-watermark-interval */
    uint32_t credits;
    size_t cache_bytes;

    weir_log_process_t logproc; /* installed into common/log.c: our id and the ring as a sink */
    bool log_installed;
    weir_tm_logring_t *logring; /* taskmanager.log.tail-size; NULL when 0 */
    weir_tm_prom_t *prom;       /* /metrics; NULL when off */
    uint32_t metrics_port;      /* its port (HEARTBEAT), 0 = off */
    weir_tm_memory_t mem;       /* taskmanager.memory.* (memory.c) */
};

/* The task manager's tables are small and bounded by slots and deploys: out of memory aborts. */
static void *grow(void *arr, size_t *cap, size_t need, size_t elem) {
    if (weir_array_grow(&arr, cap, need, elem, 8) != 0)
        abort();
    return arr;
}

weir_tm_memory_t *weir__tm_memory(weir_taskmanager_t *tm) {
    return &tm->mem;
}

const char *weir_taskmanager_id(const weir_taskmanager_t *tm) {
    return tm->id;
}

/* Frees the data plane's registry entries of (job, attempt) once no task of it runs or waits
 * here: its channels are closed, and later frames and credits for them are dropped. */
static void close_job_if_done(weir_taskmanager_t *tm, const char *job_id, uint32_t attempt) {
    for (size_t i = 0; i < tm->n_tasks; i++)
        if (tm->tasks[i].attempt == attempt && !strcmp(tm->tasks[i].job_id, job_id))
            return;
    for (size_t i = 0; i < tm->n_pending; i++)
        if (tm->pending[i].attempt == attempt && !strcmp(tm->pending[i].job_id, job_id))
            return;
    uint8_t job[16];
    if (weir_hex_decode(job_id, job, sizeof job) == 0)
        weir_dataplane_close_job(tm->dp, job, attempt);
}

/* ---------------------------------------------------------------------------------------- */
/* Sending                                                                                  */
/* ---------------------------------------------------------------------------------------- */

static void tm_send(weir_taskmanager_t *tm, const weir_msg_t *msg) {
    uint8_t *buf = NULL;
    size_t len = 0;
    if (weir_msg_encode(msg, &buf, &len) < 0) {
        WEIR_ERROR(COMP, "cannot encode message type %d", (int)msg->type);
        return;
    }
    if (zmq_send(tm->dealer, buf, len, ZMQ_DONTWAIT) < 0)
        WEIR_WARN(COMP, "cannot send message type %d to the job manager: %s", (int)msg->type,
                  zmq_strerror(errno));
    free(buf);
}

/* Sends REGISTER offering every slot no withheld task occupies (slot = (job, attempt, subtask):
 * the subtasks of one slot share it). */
static void send_register(weir_taskmanager_t *tm) {
    uint32_t withheld = 0;
    for (size_t i = 0; i < tm->n_tasks; i++) {
        const tm_task_t *t = &tm->tasks[i];
        bool seen = !t->withheld;
        for (size_t k = 0; k < i && !seen; k++)
            seen = tm->tasks[k].withheld && tm->tasks[k].subtask == t->subtask &&
                   tm->tasks[k].attempt == t->attempt && !strcmp(tm->tasks[k].job_id, t->job_id);
        withheld += !seen;
    }
    tm->withheld_slots = withheld < tm->slots ? withheld : tm->slots;
    weir_msg_t m = {.type = WEIR_MSG_REGISTER};
    m.tm_id = tm->id;
    m.data_address = (char *)weir_dataplane_address(tm->dp);
    m.host = (char *)weir_config_get_str(tm->cfg, "taskmanager.host");
    m.slots = tm->slots - tm->withheld_slots;
    m.pid = (int64_t)getpid();
    if (tm->withheld_slots)
        WEIR_WARN(COMP, "registering with %u of %u slots: %u held by tasks that did not stop",
                  m.slots, tm->slots, tm->withheld_slots);
    tm_send(tm, &m);
}

static void send_task_state(weir_taskmanager_t *tm, const char *job_id, uint32_t attempt,
                            uint32_t vertex, uint32_t subtask, weir_task_state_t state,
                            const char *message, const weir_task_metrics_t *metrics) {
    weir_msg_task_state_t ts = {0};
    weir_fmt(ts.job_id, sizeof ts.job_id, "%s", job_id);
    ts.attempt = attempt;
    ts.vertex = vertex;
    ts.subtask = subtask;
    ts.state = state;
    ts.message = (char *)message;
    if (metrics)
        ts.metrics = *metrics;
    weir_msg_t m = {.type = WEIR_MSG_TASK_STATE};
    m.tm_id = tm->id;
    m.tasks = &ts;
    m.n_tasks = 1;
    tm_send(tm, &m);
}

/* HEARTBEAT with every task of this registration (withheld tasks belong to none). */
static void send_heartbeat(weir_taskmanager_t *tm) {
    weir_msg_task_state_t *ts = calloc(tm->n_tasks ? tm->n_tasks : 1, sizeof *ts);
    if (!ts)
        abort();
    uint32_t n = 0;
    for (size_t i = 0; i < tm->n_tasks; i++) {
        tm_task_t *t = &tm->tasks[i];
        if (t->withheld)
            continue;
        weir_fmt(ts[n].job_id, sizeof ts[n].job_id, "%s", t->job_id);
        ts[n].attempt = t->attempt;
        ts[n].vertex = t->vertex;
        ts[n].subtask = t->subtask;
        ts[n].state = weir_task_state(t->task);
        weir_task_get_metrics(t->task, &ts[n].metrics);
        n++;
    }
    weir_msg_t m = {.type = WEIR_MSG_HEARTBEAT};
    m.tm_id = tm->id;
    m.tasks = ts;
    m.n_tasks = n;
    weir_prom_process_t pr;
    weir_prom_process_read(&pr);
    m.metrics_port = tm->metrics_port;
    m.rss_bytes = pr.rss_bytes;
    m.cpu_ns = pr.cpu_ns;
    weir__tm_memory_heartbeat(&tm->mem, &m);
    tm_send(tm, &m);
    free(ts);
}

/* ---------------------------------------------------------------------------------------- */
/* Task state events (task threads -> loop)                                                 */
/* ---------------------------------------------------------------------------------------- */

static void wake_loop(weir_taskmanager_t *tm) {
    if (tm->wake[1] >= 0) {
        char c = 1;
        ssize_t n = write(tm->wake[1], &c, 1); /* non-blocking: a full pipe is awake anyway */
        (void)n;
    }
}

static void drain_wake(weir_taskmanager_t *tm) {
    char buf[256];
    while (tm->wake[0] >= 0 && read(tm->wake[0], buf, sizeof buf) > 0) {
    }
}

/* Runs on task and uploader threads: encodes @p msg and queues it for the loop. */
static void task_send(void *arg, const weir_msg_t *msg) {
    weir_taskmanager_t *tm = arg;
    tm_out_t o = {0};
    if (weir_msg_encode(msg, &o.data, &o.len) < 0) {
        WEIR_ERROR(COMP, "cannot encode message type %d", (int)msg->type);
        return;
    }
    pthread_mutex_lock(&tm->evmu);
    tm->outq = grow(tm->outq, &tm->cap_outq, tm->n_outq + 1, sizeof *tm->outq);
    tm->outq[tm->n_outq++] = o;
    pthread_mutex_unlock(&tm->evmu);
    wake_loop(tm);
}

static void drain_outq(weir_taskmanager_t *tm) {
    pthread_mutex_lock(&tm->evmu);
    tm_out_t *q = tm->outq;
    size_t n = tm->n_outq;
    tm->outq = NULL;
    tm->n_outq = tm->cap_outq = 0;
    pthread_mutex_unlock(&tm->evmu);
    for (size_t i = 0; i < n; i++) {
        if (zmq_send(tm->dealer, q[i].data, q[i].len, ZMQ_DONTWAIT) < 0)
            WEIR_WARN(COMP, "cannot send a checkpoint message to the job manager: %s",
                      zmq_strerror(errno));
        free(q[i].data);
    }
    free(q);
}

/* Runs on a task thread: must not block. */
static void on_task_state(void *arg, weir_task_t *task, weir_task_state_t state,
                          const char *message) {
    weir_taskmanager_t *tm = arg;
    tm_event_t ev = {
        .task = task, .state = state, .message = message ? weir_xstrdup(message) : NULL};
    weir_task_get_metrics(task, &ev.metrics);
    pthread_mutex_lock(&tm->evmu);
    tm->events = grow(tm->events, &tm->cap_events, tm->n_events + 1, sizeof *tm->events);
    tm->events[tm->n_events++] = ev;
    pthread_mutex_unlock(&tm->evmu);
    wake_loop(tm);
}

/* Takes task @p k out of the list (under tasksmu), then joins and frees it. */
static void remove_task(weir_taskmanager_t *tm, size_t k) {
    pthread_mutex_lock(&tm->tasksmu);
    tm_task_t t = tm->tasks[k];
    tm->tasks[k] = tm->tasks[--tm->n_tasks];
    pthread_mutex_unlock(&tm->tasksmu);
    weir_task_destroy(&t.task);
    weir__tm_memory_network_release(&tm->mem, t.net_bytes);
    free(t.job_name);
    free(t.vertex_name);
}

static bool is_final(weir_task_state_t s) {
    return s == WEIR_TASK_FINISHED || s == WEIR_TASK_FAILED || s == WEIR_TASK_CANCELED;
}

static void drain_events(weir_taskmanager_t *tm) {
    drain_outq(tm); /* a task's ACKs go out before its later state changes */
    pthread_mutex_lock(&tm->evmu);
    tm_event_t *evs = tm->events;
    size_t n = tm->n_events;
    tm->events = NULL;
    tm->n_events = tm->cap_events = 0;
    pthread_mutex_unlock(&tm->evmu);

    for (size_t i = 0; i < n; i++) {
        tm_event_t *ev = &evs[i];
        size_t k = 0;
        while (k < tm->n_tasks && tm->tasks[k].task != ev->task)
            k++;
        if (k == tm->n_tasks) {
            free(ev->message);
            continue; /* cannot happen: tasks are forgotten only after their final event */
        }
        tm_task_t *t = &tm->tasks[k];
        if (ev->state == WEIR_TASK_FAILED)
            WEIR_WARN(COMP, "task %s/%u.%u (attempt %u) FAILED: %s", t->job_id, t->vertex,
                      t->subtask, t->attempt, ev->message ? ev->message : "");
        else
            WEIR_INFO(COMP, "task %s/%u.%u (attempt %u) %s (in %" PRIu64 ", out %" PRIu64 ")",
                      t->job_id, t->vertex, t->subtask, t->attempt, weir_task_state_name(ev->state),
                      ev->metrics.records_in, ev->metrics.records_out);
        send_task_state(tm, t->job_id, t->attempt, t->vertex, t->subtask, ev->state, ev->message,
                        &ev->metrics);
        if (is_final(ev->state)) {
            char job_id[33];
            uint32_t attempt = t->attempt;
            memcpy(job_id, t->job_id, sizeof job_id);
            remove_task(tm, k);
            close_job_if_done(tm, job_id, attempt);
        }
        free(ev->message);
    }
    free(evs);
}

/* ---------------------------------------------------------------------------------------- */
/* Attempt fencing                                                                          */
/* ---------------------------------------------------------------------------------------- */

/* The newest attempt of @p job_id deployed here, 0 when none. */
static uint32_t newest_attempt(const weir_taskmanager_t *tm, const char *job_id) {
    for (size_t i = 0; i < tm->n_attempts; i++)
        if (!strcmp(tm->attempts[i].job_id, job_id))
            return tm->attempts[i].attempt;
    return 0;
}

/* Cancels every task of @p job_id whose attempt lies in [lo, hi]; its pending deploys are answered
 * CANCELED and dropped. @returns the number of tasks canceled. */
static size_t cancel_attempts(weir_taskmanager_t *tm, const char *job_id, uint32_t lo,
                              uint32_t hi) {
    size_t n = 0;
    for (size_t i = 0; i < tm->n_tasks; i++) {
        tm_task_t *t = &tm->tasks[i];
        if (!strcmp(t->job_id, job_id) && t->attempt >= lo && t->attempt <= hi) {
            weir_task_cancel(t->task);
            n++;
        }
    }
    size_t keep = 0;
    for (size_t i = 0; i < tm->n_pending; i++) {
        weir_msg_t *d = &tm->pending[i];
        if (!strcmp(d->job_id, job_id) && d->attempt >= lo && d->attempt <= hi) {
            weir_task_metrics_t zero = {0};
            send_task_state(tm, d->job_id, d->attempt, d->vertex, d->subtask, WEIR_TASK_CANCELED,
                            NULL, &zero);
            weir_msg_clear(d);
        } else {
            tm->pending[keep++] = *d;
        }
    }
    tm->n_pending = keep;
    return n;
}

/* A deploy of @p attempt of @p job_id was accepted: it is the newest attempt here now, and whatever
 * of an older attempt of that job still runs is stale (the job manager moved on). */
static void note_attempt(weir_taskmanager_t *tm, const char *job_id, uint32_t attempt) {
    tm_attempt_t *a = NULL;
    for (size_t i = 0; i < tm->n_attempts && !a; i++)
        if (!strcmp(tm->attempts[i].job_id, job_id))
            a = &tm->attempts[i];
    if (a && a->attempt >= attempt)
        return;
    if (!a) {
        tm->attempts =
            grow(tm->attempts, &tm->cap_attempts, tm->n_attempts + 1, sizeof *tm->attempts);
        a = &tm->attempts[tm->n_attempts++];
        weir_fmt(a->job_id, sizeof a->job_id, "%s", job_id);
    }
    a->attempt = attempt;
    if (attempt > 1) {
        size_t n = cancel_attempts(tm, job_id, 0, attempt - 1);
        if (n)
            WEIR_WARN(COMP, "attempt %u of job %s deployed: canceling %zu tasks of older attempts",
                      attempt, job_id, n);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Deploys                                                                                  */
/* ---------------------------------------------------------------------------------------- */

static void deploy_failed(weir_taskmanager_t *tm, const weir_msg_t *d, const char *why) {
    WEIR_WARN(COMP, "deploy of job %s vertex %u subtask %u (attempt %u) failed: %s", d->job_id,
              d->vertex, d->subtask, d->attempt, why);
    weir_task_metrics_t zero = {0};
    send_task_state(tm, d->job_id, d->attempt, d->vertex, d->subtask, WEIR_TASK_FAILED, why, &zero);
}

static tm_plugin_t *find_plugin(weir_taskmanager_t *tm, const char *sha) {
    for (size_t i = 0; i < tm->n_plugins; i++)
        if (!strcmp(tm->plugins[i].sha, sha))
            return &tm->plugins[i];
    return NULL;
}

/* Builds the graph with the plugin and starts the task. Consumes nothing of @p d. */
static void do_deploy(weir_taskmanager_t *tm, const weir_msg_t *d, tm_plugin_t *p) {
    char err[512] = "";
    weir_job_t *sub = NULL, *built = NULL;
    char **argv = NULL;
    json_error_t je;
    json_t *root = json_loads(d->graph_json ? d->graph_json : "", 0, &je);
    if (!root) {
        weir_fmt(err, sizeof err, "submitted graph is not JSON: %s (line %d)",
                 weir_json_error_text(&je), je.line);
        goto fail;
    }
    sub = weir_graph_from_json(root, err, sizeof err);
    json_decref(root);
    if (!sub)
        goto fail;
    argv = calloc((size_t)d->n_args + 2, sizeof *argv);
    if (!argv)
        abort();
    argv[0] = p->path;
    for (uint32_t i = 0; i < d->n_args; i++)
        argv[i + 1] = d->args[i];
    built = weir_plugin_build(p->plugin, (int)d->n_args + 1, argv, sub->default_parallelism, err,
                              sizeof err);
    if (!built)
        goto fail;
    if (weir_graph_apply_submitted(built, sub, err, sizeof err) < 0)
        goto fail;
    weir_graph_destroy(&sub);
    if (d->vertex >= built->n_vertices || d->n_vertices != built->n_vertices || !d->placement ||
        !d->vertex_parallelism) {
        weir_fmt(err, sizeof err, "deploy names vertex %u of %u, the graph has %u vertices",
                 d->vertex, d->n_vertices, built->n_vertices);
        goto fail;
    }
    for (uint32_t v = 0; v < built->n_vertices; v++) {
        if (d->vertex_parallelism[v] != built->vertices[v].parallelism) {
            weir_fmt(err, sizeof err, "deploy gives vertex %u parallelism %u, the graph %u", v,
                     d->vertex_parallelism[v], built->vertices[v].parallelism);
            goto fail;
        }
    }
    uint64_t net_bytes = 0;
    if (weir__tm_memory_network_reserve(&tm->mem, built, d->vertex, tm->credits, tm->buffer_size,
                                        &net_bytes, err, sizeof err) < 0)
        goto fail;
    weir_task_spec_t spec = {0};
    weir_fmt(spec.job_id, sizeof spec.job_id, "%s", d->job_id);
    spec.attempt = d->attempt;
    spec.graph = built;
    built = NULL; /* the task owns it now, also on failure */
    spec.plugin = p->plugin;
    spec.vertex = d->vertex;
    spec.subtask = d->subtask;
    spec.placement = d->placement;
    spec.dataplane = tm->dp;
    spec.work_dir = tm->workdir;
    spec.buffer_size = tm->buffer_size;
    spec.buffer_timeout_ns = tm->buffer_timeout_ns;
    spec.watermark_interval_ns = tm->wm_interval_ns;
    spec.credits_per_channel = tm->credits;
    spec.state_cache_bytes = tm->cache_bytes;
    spec.state_memory = tm->mem.state; /* NULL without a budget: state_cache_bytes per subtask */
    spec.on_state = on_task_state;
    spec.lease_from_ns = &tm->lease_from_ns;
    /* the job manager declares a task manager lost after heartbeat.timeout of silence */
    spec.lease_ns = tm->hb_timeout_ns - tm->hb_interval_ns > tm->hb_interval_ns
                        ? tm->hb_timeout_ns - tm->hb_interval_ns
                        : tm->hb_interval_ns;
    spec.cb_arg = tm;
    spec.checkpoint_mode = d->checkpoint_mode;
    spec.checkpoint_dir = d->checkpoint_dir;
    spec.storage_env = tm->storage_env;
    spec.local_recovery_dir = tm->recovery_dir;
    spec.restore_checkpoint_id = d->restore_checkpoint_id;
    spec.restore_op_state = d->restore_op_state;
    spec.restore_op_state_len = d->restore_op_state_len;
    spec.restore_keyed_handle = d->restore_keyed_handle;
    spec.incremental = tm->incremental;
    spec.killpoint = &tm->kp;
    spec.send = task_send;
    spec.send_arg = tm;
    spec.create_connector = weir_connector_create;
    tm_task_t nt = {.attempt = d->attempt,
                    .vertex = d->vertex,
                    .subtask = d->subtask,
                    .parallelism = spec.graph->vertices[d->vertex].parallelism,
                    .job_name = weir_xstrdup(d->job_name ? d->job_name : ""),
                    .vertex_name = weir_xstrdup(spec.graph->vertices[d->vertex].name),
                    .net_bytes = net_bytes};
    weir_fmt(nt.job_id, sizeof nt.job_id, "%s", d->job_id);
    nt.task = weir_task_start(&spec, err, sizeof err); /* owns the graph from here on */
    if (!nt.task) {
        free(nt.job_name);
        free(nt.vertex_name);
        weir__tm_memory_network_release(&tm->mem, net_bytes);
        goto fail;
    }
    pthread_mutex_lock(&tm->tasksmu);
    tm->tasks = grow(tm->tasks, &tm->cap_tasks, tm->n_tasks + 1, sizeof *tm->tasks);
    tm->tasks[tm->n_tasks++] = nt;
    pthread_mutex_unlock(&tm->tasksmu);
    free(argv);
    return;
fail:
    if (!err[0])
        weir_fmt(err, sizeof err, "deploy failed");
    deploy_failed(tm, d, err);
    weir_graph_destroy(&sub);
    weir_graph_destroy(&built);
    free(argv);
}

static bool blob_requested(weir_taskmanager_t *tm, const char *sha) {
    for (size_t i = 0; i < tm->n_pending; i++)
        if (!strcmp(tm->pending[i].plugin_sha256, sha))
            return true;
    return false;
}

/* Takes ownership of *d (moves it; a refused deploy is left to the caller). */
static void on_deploy(weir_taskmanager_t *tm, weir_msg_t *d) {
    char why[256];
    uint32_t newest = newest_attempt(tm, d->job_id);
    if (!tm->registered) {
        weir_fmt(why, sizeof why,
                 "task manager %s is registering again: the deploy belongs to a registration the "
                 "job manager replaced",
                 tm->id);
        deploy_failed(tm, d, why);
        return;
    }
    if (d->attempt < newest) {
        weir_fmt(why, sizeof why,
                 "attempt %u of job %s is older than attempt %u, which already ran on task "
                 "manager %s",
                 d->attempt, d->job_id, newest, tm->id);
        deploy_failed(tm, d, why);
        return;
    }
    WEIR_INFO(COMP, "deploying job %s (%s) vertex %u subtask %u attempt %u", d->job_id,
              d->job_name ? d->job_name : "?", d->vertex, d->subtask, d->attempt);
    note_attempt(tm, d->job_id, d->attempt);
    tm_plugin_t *p = find_plugin(tm, d->plugin_sha256);
    if (p) {
        do_deploy(tm, d, p);
        weir_msg_clear(d);
        return;
    }
    bool asked = blob_requested(tm, d->plugin_sha256);
    tm->pending = grow(tm->pending, &tm->cap_pending, tm->n_pending + 1, sizeof *tm->pending);
    tm->pending[tm->n_pending++] = *d;
    memset(d, 0, sizeof *d);
    if (!asked) {
        weir_msg_t req = {.type = WEIR_MSG_BLOB_REQUEST};
        req.tm_id = tm->id;
        weir_fmt(req.blob_sha256, sizeof req.blob_sha256, "%s",
                 tm->pending[tm->n_pending - 1].plugin_sha256);
        WEIR_INFO(COMP, "fetching plugin blob %s", req.blob_sha256);
        tm_send(tm, &req);
    }
}

/* Runs (p != NULL) or fails (why) every pending deploy of @p sha. */
static void resolve_pending(weir_taskmanager_t *tm, const char *sha, tm_plugin_t *p,
                            const char *why) {
    size_t keep = 0;
    for (size_t i = 0; i < tm->n_pending; i++) {
        weir_msg_t *d = &tm->pending[i];
        if (strcmp(d->plugin_sha256, sha) != 0) {
            tm->pending[keep++] = *d;
            continue;
        }
        if (p)
            do_deploy(tm, d, p);
        else
            deploy_failed(tm, d, why);
        weir_msg_clear(d);
    }
    tm->n_pending = keep;
}

static void on_blob(weir_taskmanager_t *tm, weir_msg_t *m) {
    char sha[65], why[600];
    weir_fmt(sha, sizeof sha, "%s", m->blob_sha256);
    if (!blob_requested(tm, sha))
        return;
    if (m->error || !m->blob) {
        weir_fmt(why, sizeof why, "plugin blob %s is not available: %s", sha,
                 m->error ? m->error : "empty answer");
        resolve_pending(tm, sha, NULL, why);
        return;
    }
    char got[65];
    weir_sha256_hex(m->blob, m->blob_len, got);
    if (strcmp(got, sha) != 0) {
        weir_fmt(why, sizeof why, "plugin blob %s failed verification", sha);
        resolve_pending(tm, sha, NULL, why);
        return;
    }
    char dir[PATH_MAX], path[PATH_MAX];
    weir_fmt(dir, sizeof dir, "%s/blobs", tm->workdir);
    weir_fmt(path, sizeof path, "%s/%s.so", dir, sha);
    if (weir_mkdirs(dir) < 0 || weir_write_file_atomic(path, m->blob, m->blob_len) < 0) {
        weir_fmt(why, sizeof why, "cannot store plugin blob %s in %s: %s", sha, dir,
                 strerror(errno));
        resolve_pending(tm, sha, NULL, why);
        return;
    }
    char err[512] = "";
    weir_plugin_t *pl = weir_plugin_open(path, err, sizeof err);
    if (!pl) {
        resolve_pending(tm, sha, NULL, err[0] ? err : "cannot open plugin");
        return;
    }
    tm->plugins = grow(tm->plugins, &tm->cap_plugins, tm->n_plugins + 1, sizeof *tm->plugins);
    tm_plugin_t *p = &tm->plugins[tm->n_plugins++];
    memcpy(p->sha, sha, sizeof p->sha);
    p->path = weir_xstrdup(path);
    p->plugin = pl;
    WEIR_INFO(COMP, "plugin blob %s verified (%zu bytes)", sha, m->blob_len);
    resolve_pending(tm, sha, p, NULL);
}

static void on_cancel(weir_taskmanager_t *tm, const weir_msg_t *m) {
    WEIR_INFO(COMP, "canceling job %s attempt %u", m->job_id, m->attempt);
    cancel_attempts(tm, m->job_id, m->attempt, m->attempt);
}

/* Why a TRIGGER or NOTIFY of (job, attempt) must not reach a task here (NULL: it may): it belongs
 * to a registration the job manager replaced, or to an attempt older than one deployed here. */
static const char *fenced(const weir_taskmanager_t *tm, const weir_msg_t *m) {
    if (!tm->registered)
        return "the task manager is registering again";
    if (m->attempt < newest_attempt(tm, m->job_id))
        return "a newer attempt of the job was deployed on this task manager";
    return NULL;
}

/* TRIGGER_CHECKPOINT: to the one subtask it names; DECLINE when it does not run here or is
 * fenced. */
static void on_trigger(weir_taskmanager_t *tm, const weir_msg_t *m) {
    const char *why = fenced(tm, m);
    for (size_t i = 0; i < tm->n_tasks && !why; i++) {
        tm_task_t *t = &tm->tasks[i];
        if (!strcmp(t->job_id, m->job_id) && t->attempt == m->attempt && t->vertex == m->vertex &&
            t->subtask == m->subtask) {
            weir_task_trigger(t->task, m->checkpoint_id, m->checkpoint_timestamp,
                              (weir_ck_kind_t)m->ck_kind, m->target);
            return;
        }
    }
    WEIR_WARN(COMP,
              "trigger of checkpoint %" PRIu64 " for job %s vertex %u subtask %u "
              "(attempt %u): %s",
              m->checkpoint_id, m->job_id, m->vertex, m->subtask, m->attempt,
              why ? why : "no such task here");
    weir_msg_t d = {.type = WEIR_MSG_DECLINE_CHECKPOINT};
    memcpy(d.job_id, m->job_id, sizeof d.job_id);
    d.attempt = m->attempt;
    d.vertex = m->vertex;
    d.subtask = m->subtask;
    d.checkpoint_id = m->checkpoint_id;
    d.error = why ? (char *)why : "the subtask is not running on this task manager";
    tm_send(tm, &d);
}

/* NOTIFY_CHECKPOINT: to every subtask of (job, attempt); dropped when fenced (a later attempt
 * restoring that checkpoint commits its transactions). */
static void on_notify(weir_taskmanager_t *tm, const weir_msg_t *m) {
    const char *why = fenced(tm, m);
    if (why) {
        WEIR_WARN(COMP, "notify of checkpoint %" PRIu64 " for job %s (attempt %u) dropped: %s",
                  m->checkpoint_id, m->job_id, m->attempt, why);
        return;
    }
    for (size_t i = 0; i < tm->n_tasks; i++) {
        tm_task_t *t = &tm->tasks[i];
        if (!strcmp(t->job_id, m->job_id) && t->attempt == m->attempt)
            weir_task_notify(t->task, m->checkpoint_id, m->final);
    }
}

/* LOG_REQUEST: LOG with the last max_bytes (at most 1 MiB) of the log ring, from a line start
 * (empty when taskmanager.log.tail-size is 0). Answered also while registering again: it
 * changes nothing here. */
static void on_log_request(weir_taskmanager_t *tm, const weir_msg_t *m) {
    size_t max = m->max_bytes < LOG_TAIL_MAX ? m->max_bytes : LOG_TAIL_MAX;
    weir_msg_t r = {.type = WEIR_MSG_LOG};
    r.tm_id = tm->id;
    r.request_id = m->request_id;
    if (tm->logring)
        r.log_tail_len = weir__tm_logring_tail(tm->logring, max, &r.log_tail);
    tm_send(tm, &r);
    free(r.log_tail);
}

/* ---------------------------------------------------------------------------------------- */
/* /metrics: a copy of the live tasks (any thread)                                          */
/* ---------------------------------------------------------------------------------------- */

void weir__tm_collect(weir_taskmanager_t *tm, weir_tm_view_t *out) {
    memset(out, 0, sizeof *out);
    weir_fmt(out->tm_id, sizeof out->tm_id, "%s", tm->id);
    out->slots = tm->slots;
    pthread_mutex_lock(&tm->tasksmu);
    out->tasks = weir_xcalloc(tm->n_tasks ? tm->n_tasks : 1, sizeof *out->tasks);
    for (size_t i = 0; i < tm->n_tasks; i++) {
        const tm_task_t *t = &tm->tasks[i];
        weir_tm_task_view_t *v = &out->tasks[out->n_tasks++];
        memcpy(v->job_id, t->job_id, sizeof v->job_id);
        weir_fmt(v->job_name, sizeof v->job_name, "%s", t->job_name);
        weir_fmt(v->vertex_name, sizeof v->vertex_name, "%s", t->vertex_name);
        v->attempt = t->attempt;
        v->vertex = t->vertex;
        v->subtask = t->subtask;
        v->parallelism = t->parallelism;
        v->state = weir_task_state(t->task);
        weir_task_get_metrics(t->task, &v->m);
        weir__tm_task_ops(t->task, &v->ops, &v->n_ops);
        bool seen = false; /* subtasks of one (job, attempt, subtask index) share a slot */
        for (size_t k = 0; k < i && !seen; k++)
            seen = tm->tasks[k].subtask == t->subtask && tm->tasks[k].attempt == t->attempt &&
                   !strcmp(tm->tasks[k].job_id, t->job_id);
        out->slots_used += !seen;
    }
    pthread_mutex_unlock(&tm->tasksmu);
}

void weir__tm_view_free(weir_tm_view_t *v) {
    for (size_t i = 0; i < v->n_tasks; i++)
        free(v->tasks[i].ops);
    free(v->tasks);
    memset(v, 0, sizeof *v);
}

/* ---------------------------------------------------------------------------------------- */
/* Registration                                                                             */
/* ---------------------------------------------------------------------------------------- */

/* The job manager does not know this registration any more (UNKNOWN), or has not answered for
 * heartbeat.timeout: it has failed our tasks over (or will, when it sees REGISTER). Cancel every
 * task and drop pending deploys; REGISTER goes out once they stopped (finish_stopping). */
static void reregister(weir_taskmanager_t *tm, const char *why) {
    tm->registered = false;
    atomic_store_explicit(&tm->lease_from_ns, 0, memory_order_relaxed);
    if (tm->stopping)
        return;
    tm->stopping = true;
    tm->stop_started_ns = weir_now_ns();
    tm->stop_deadline_ns = tm->stop_started_ns + REREGISTER_WAIT_NS;
    WEIR_INFO(COMP, "%s: registering again once %zu tasks stopped (%zu pending deploys dropped)",
              why, tm->n_tasks, tm->n_pending);
    for (size_t i = 0; i < tm->n_tasks; i++)
        weir_task_cancel(tm->tasks[i].task);
    for (size_t i = 0; i < tm->n_pending; i++)
        weir_msg_clear(&tm->pending[i]);
    tm->n_pending = 0;
}

/* Stopping: REGISTER once every task canceled by reregister() was joined (drain_events) or the
 * deadline passed; a task still running then is withheld (its slot is not offered). */
static void finish_stopping(weir_taskmanager_t *tm, int64_t now) {
    bool waiting = false;
    for (size_t i = 0; i < tm->n_tasks && !waiting; i++)
        waiting = !tm->tasks[i].withheld;
    if (waiting && now < tm->stop_deadline_ns)
        return;
    if (!waiting)
        WEIR_INFO(COMP, "old tasks stopped and joined in %" PRId64 " ms: registering",
                  (now - tm->stop_started_ns) / 1000000);
    for (size_t i = 0; i < tm->n_tasks; i++) {
        tm_task_t *t = &tm->tasks[i];
        if (t->withheld)
            continue;
        WEIR_WARN(COMP,
                  "task %s/%u.%u (attempt %u) did not stop within %lld ms: its slot is not offered "
                  "until it does",
                  t->job_id, t->vertex, t->subtask, t->attempt,
                  (long long)(REREGISTER_WAIT_NS / 1000000));
        t->withheld = true;
    }
    tm->stopping = false;
    tm->last_contact_ns = now; /* the job manager gets a whole heartbeat.timeout to answer */
    send_register(tm);
}

/* Nothing came from the job manager for heartbeat.timeout (it is gone, or this process could not
 * run: then the messages waiting now are stale, and it has declared us lost). Checked before
 * those messages are handled. */
static void check_contact(weir_taskmanager_t *tm) {
    int64_t now = weir_now_ns();
    if (tm->stopping || now - tm->last_contact_ns < tm->hb_timeout_ns)
        return;
    char why[640];
    weir_fmt(why, sizeof why, "no message from the job manager at %s for %" PRId64 " ms",
             tm->jm_endpoint, (now - tm->last_contact_ns) / 1000000);
    WEIR_WARN(COMP, "%s", why);
    tm->last_contact_ns = now;
    /* A job manager that vanished without closing its connection (its pod or node lost, a
     * partition) leaves the DEALER's TCP connection half-open, and ZeroMQ reconnects (resolving
     * jobmanager.rpc.address again: a replaced pod has a new IP) only once a connection broke.
     * The second silent period in a row (the REGISTER of the first got no answer either) opens a
     * new connection, which does both. Not the first: after a freeze (SIGSTOP) the messages
     * that waited in the connection must still be received, and refused while stopping. */
    if (tm->silent_periods++ > 0) {
        WEIR_INFO(COMP, "opening a new connection to the job manager at %s (resolved again)",
                  tm->jm_endpoint);
        if (zmq_disconnect(tm->dealer, tm->jm_endpoint) != 0 ||
            zmq_connect(tm->dealer, tm->jm_endpoint) != 0)
            WEIR_WARN(COMP, "cannot reconnect to the job manager at %s: %s", tm->jm_endpoint,
                      zmq_strerror(errno));
    }
    reregister(tm, why);
}

/* ---------------------------------------------------------------------------------------- */
/* Loop                                                                                     */
/* ---------------------------------------------------------------------------------------- */

static void handle_message(weir_taskmanager_t *tm, const uint8_t *data, size_t len) {
    weir_msg_t m;
    memset(&m, 0, sizeof m);
    char err[256];
    if (weir_msg_decode(data, len, &m, err, sizeof err) < 0) {
        WEIR_WARN(COMP, "bad message from the job manager: %s", err);
        weir_msg_clear(&m);
        return;
    }
    tm->last_contact_ns = weir_now_ns();
    tm->silent_periods = 0;
    if (tm->registered && !tm->stopping)
        atomic_store_explicit(&tm->lease_from_ns, tm->last_contact_ns, memory_order_relaxed);
    switch (m.type) {
    case WEIR_MSG_REGISTERED:
        if (tm->stopping)
            break; /* answers a REGISTER sent before the tasks were stopped: a new one follows */
        atomic_store_explicit(&tm->lease_from_ns, tm->last_contact_ns, memory_order_relaxed);
        if (!tm->registered)
            WEIR_INFO(COMP, "registered at %s as %s with %u slots, data at %s", tm->jm_endpoint,
                      tm->id, tm->slots, weir_dataplane_address(tm->dp));
        tm->registered = true;
        if (m.heartbeat_interval_ms > 0)
            tm->hb_interval_ns = m.heartbeat_interval_ms * 1000000LL;
        break;
    case WEIR_MSG_HEARTBEAT_ACK:
        break;
    case WEIR_MSG_UNKNOWN:
        /* Unregistered, it answers a message sent before our REGISTER (it comes before
         * REGISTERED on this connection): only the first UNKNOWN counts. */
        if (tm->registered) {
            char why[256];
            weir_fmt(why, sizeof why, "the job manager does not know %s", tm->id);
            reregister(tm, why);
        }
        break;
    case WEIR_MSG_DEPLOY:
        on_deploy(tm, &m);
        break;
    case WEIR_MSG_CANCEL:
        on_cancel(tm, &m);
        break;
    case WEIR_MSG_BLOB:
        on_blob(tm, &m);
        break;
    case WEIR_MSG_TRIGGER_CHECKPOINT:
        on_trigger(tm, &m);
        break;
    case WEIR_MSG_NOTIFY_CHECKPOINT:
        on_notify(tm, &m);
        break;
    case WEIR_MSG_LOG_REQUEST:
        on_log_request(tm, &m);
        break;
    default:
        WEIR_WARN(COMP, "unexpected message type %d from the job manager", (int)m.type);
        break;
    }
    weir_msg_clear(&m);
}

/* Receives every waiting message (each is one frame; extra frames are skipped). */
static void receive_all(weir_taskmanager_t *tm) {
    for (;;) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, tm->dealer, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&part);
            return;
        }
        int more = zmq_msg_more(&part);
        size_t sz = zmq_msg_size(&part);
        if (sz > 0)
            handle_message(tm, zmq_msg_data(&part), sz);
        zmq_msg_close(&part);
        while (more) { /* not part of the protocol: drain */
            zmq_msg_init(&part);
            if (zmq_msg_recv(&part, tm->dealer, 0) < 0) {
                zmq_msg_close(&part);
                break;
            }
            more = zmq_msg_more(&part);
            zmq_msg_close(&part);
        }
    }
}

static void timers(weir_taskmanager_t *tm) {
    int64_t now = weir_now_ns();
    if (tm->stopping) {
        finish_stopping(tm, now);
    } else if (tm->registered && tm->withheld_slots && tm->n_tasks == 0 && tm->n_pending == 0) {
        WEIR_INFO(COMP,
                  "the tasks that did not stop have ended: registering again with all %u "
                  "slots",
                  tm->slots);
        reregister(tm, "withheld slots are free");
    }
    if (tm->registered && now - tm->last_hb_ns >= tm->hb_interval_ns) {
        send_heartbeat(tm);
        tm->last_hb_ns = now;
    }
}

int weir_taskmanager_run(weir_taskmanager_t *tm, volatile sig_atomic_t *stop) {
    tm->last_contact_ns = weir_now_ns();
    tm->last_hb_ns = 0;
    send_register(tm);
    while (!*stop) {
        zmq_pollitem_t it[2] = {{tm->dealer, 0, ZMQ_POLLIN, 0}, {NULL, tm->wake[0], ZMQ_POLLIN, 0}};
        int rc = zmq_poll(it, 2, POLL_MS);
        if (rc < 0 && errno != EINTR)
            WEIR_WARN(COMP, "zmq_poll: %s", zmq_strerror(errno));
        if (*stop)
            break;
        if (rc > 0 && (it[1].revents & ZMQ_POLLIN))
            drain_wake(tm);
        check_contact(tm); /* before messages that may have waited through a freeze */
        if (rc > 0 && (it[0].revents & ZMQ_POLLIN))
            receive_all(tm);
        drain_events(tm);
        timers(tm);
    }

    WEIR_INFO(COMP, "shutting down: canceling %zu tasks", tm->n_tasks);
    for (size_t i = 0; i < tm->n_tasks; i++)
        weir_task_cancel(tm->tasks[i].task);
    int64_t deadline = weir_now_ns() + SHUTDOWN_WAIT_NS;
    while (tm->n_tasks && weir_now_ns() < deadline) {
        weir_sleep_ns(10 * 1000 * 1000);
        drain_events(tm);
    }
    if (tm->n_tasks)
        WEIR_WARN(COMP, "%zu tasks did not stop in time; joining them", tm->n_tasks);
    while (tm->n_tasks) {
        remove_task(tm, tm->n_tasks - 1); /* joins */
        drain_events(tm);
    }
    drain_events(tm);
    for (size_t i = 0; i < tm->n_pending; i++)
        weir_msg_clear(&tm->pending[i]);
    tm->n_pending = 0;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Construction                                                                             */
/* ---------------------------------------------------------------------------------------- */

int weir__tm_check_config(const weir_config_t *cfg, char *errstr, size_t errlen) {
    int lo, hi;
    int rc = weir__tm_prom_ports(cfg, &lo, &hi, errstr, errlen);
    if (rc != 0)
        return rc;
    weir_log_level_t level;
    if (weir_log_level_parse(weir_config_get_str(cfg, "log.level"), &level) != 0)
        return weir_errf(errstr, errlen, WEIR_ECONFIG,
                         "bad value '%s' for log.level: expected debug, info, warn or error",
                         weir_config_get_str(cfg, "log.level"));
    if (weir_config_get_bytes(cfg, "taskmanager.log.tail-size") > LOG_RING_MAX)
        return weir_errf(errstr, errlen, WEIR_ECONFIG,
                         "bad value '%s' for taskmanager.log.tail-size: at most 64mb",
                         weir_config_get_str(cfg, "taskmanager.log.tail-size"));
    /* the s3.* keys (checkpoint storage): a malformed value is a configuration error (exit 2) */
    weir_storage_env_t *env = weir_storage_env_new(cfg, errstr, errlen);
    if (!env)
        return WEIR_ECONFIG;
    weir_storage_env_free(&env);
    return 0;
}

/* Our id on every log line, and the newest taskmanager.log.tail-size bytes in the ring. */
static int install_log(weir_taskmanager_t *tm, char *errstr, size_t errlen) {
    int rc = weir__tm_check_config(tm->cfg, errstr, errlen);
    if (rc != 0)
        return rc;
    uint64_t tail = weir_config_get_bytes(tm->cfg, "taskmanager.log.tail-size");
    if (tail)
        tm->logring = weir__tm_logring_new((size_t)tail);
    weir_fmt(tm->logproc.id, sizeof tm->logproc.id, "%s", tm->id);
    tm->logproc.sink = tm->logring ? weir__tm_logring_append : NULL;
    tm->logproc.sink_arg = tm->logring;
    if (weir_log_level_parse(weir_config_get_str(tm->cfg, "log.level"), &tm->logproc.level) != 0)
        tm->logproc.level = WEIR_LOG_INFO;
    weir_log_install(&tm->logproc);
    tm->log_installed = true;
    return 0;
}

weir_taskmanager_t *weir_taskmanager_new(weir_config_t *cfg, char *errstr, size_t errlen) {
    weir_taskmanager_t *tm = calloc(1, sizeof *tm);
    if (!tm)
        abort();
    tm->cfg = cfg;
    tm->wake[0] = tm->wake[1] = -1;
    pthread_mutex_init(&tm->evmu, NULL);
    pthread_mutex_init(&tm->tasksmu, NULL);
    if (pipe2(tm->wake, O_NONBLOCK | O_CLOEXEC) != 0) {
        tm->wake[0] = tm->wake[1] = -1;
        weir_fmt(errstr, errlen, "cannot create the wake-up pipe: %s", strerror(errno));
        goto fail;
    }
    const char *kill_at = weir_config_get_str(cfg, "debug.kill-at");
    if (weir_killpoint_init(&tm->kp, kill_at) < 0) {
        weir_fmt(errstr, errlen,
                 "invalid debug.kill-at '%s': expected POINT or POINT:N with N >= 1", kill_at);
        goto fail;
    }
    if (tm->kp.armed)
        WEIR_WARN(COMP, "debug.kill-at armed: %s", kill_at);
    tm->incremental = weir_config_get_bool(cfg, "state.backend.incremental");

    const char *rid = weir_config_get_str(cfg, "taskmanager.resource-id");
    if (rid && *rid) {
        weir_fmt(tm->id, sizeof tm->id, "%s", rid);
    } else {
        uint8_t rnd[4];
        char hex[9];
        if (weir_random_bytes(rnd, sizeof rnd) < 0) {
            weir_fmt(errstr, errlen,
                     "cannot draw a random resource id: set "
                     "taskmanager.resource-id");
            goto fail;
        }
        weir_hex_encode(rnd, sizeof rnd, hex);
        weir_fmt(tm->id, sizeof tm->id, "tm-%s", hex);
    }
    if (install_log(tm, errstr, errlen) != 0)
        goto fail;
    const char *wd = weir_config_get_str(cfg, "taskmanager.working-dir");
    if (wd && *wd) {
        tm->workdir = weir_xstrdup(wd);
    } else {
        char buf[PATH_MAX];
        weir_fmt(buf, sizeof buf, "/tmp/weir-tm-%s", tm->id);
        tm->workdir = weir_xstrdup(buf);
        tm->workdir_default = true;
    }
    if (weir_mkdirs(tm->workdir) < 0) {
        weir_fmt(errstr, errlen,
                 "cannot create working directory %s: %s (set "
                 "taskmanager.working-dir)",
                 tm->workdir, strerror(errno));
        goto fail;
    }
    if (!(tm->storage_env = weir_storage_env_new(cfg, errstr, errlen)))
        goto fail;
    char rdir[PATH_MAX];
    weir_fmt(rdir, sizeof rdir, "%s/local-recovery", tm->workdir);
    tm->recovery_dir = weir_xstrdup(rdir);

    int64_t slots = weir_config_get_int(cfg, "taskmanager.numberOfTaskSlots");
    tm->slots = slots > 0 ? (uint32_t)slots : 1;
    tm->hb_interval_ns = weir_config_get_ms(cfg, "heartbeat.interval") * 1000000LL;
    tm->hb_timeout_ns = weir_config_get_ms(cfg, "heartbeat.timeout") * 1000000LL;
    if (tm->hb_interval_ns <= 0)
        tm->hb_interval_ns = 1000000000LL;
    if (tm->hb_timeout_ns <= 0)
        tm->hb_timeout_ns = 10 * tm->hb_interval_ns;
    tm->buffer_size = (size_t)weir_config_get_bytes(cfg, "taskmanager.memory.segment-size");
    tm->buffer_timeout_ns = weir_config_get_ms(cfg, "execution.buffer-timeout") * 1000000LL;
    tm->wm_interval_ns = weir_config_get_ms(cfg, "pipeline.auto-watermark-interval") * 1000000LL;
    int64_t credits = weir_config_get_int(cfg, "taskmanager.network.buffers-per-channel");
    tm->credits = credits > 0 ? (uint32_t)credits : 1;
    tm->cache_bytes = (size_t)weir_config_get_bytes(cfg, "state.backend.cache-size");
    if (weir__tm_memory_init(&tm->mem, cfg, errstr, errlen) != 0)
        goto fail;

    char err[256] = "";
    /* Loopback unless configured otherwise: weir_config_check_binds() (called by
     * weir_taskmanager_main) refuses an unauthenticated data plane beyond it. */
    weir_curve_t curve;
    if (weir_curve_load(cfg, &curve, errstr, errlen) != 0)
        goto fail;
    uint64_t max_frame = weir_config_get_bytes(cfg, "taskmanager.network.max-frame-size");
    weir_dataplane_opts_t dpo = {
        .bind_host = weir_config_bind_address(weir_config_get_str(cfg, "taskmanager.bind-host")),
        .port = (int)weir_config_get_int(cfg, "taskmanager.data.port"),
        .advertise_host = weir_config_get_str(cfg, "taskmanager.host"),
        .curve = &curve,
        .max_buffer = max_frame > tm->buffer_size ? max_frame : tm->buffer_size,
    };
    tm->dp = weir_dataplane_new_opts(&dpo, err, sizeof err);
    if (!tm->dp) {
        weir_fmt(errstr, errlen, "data plane: %s", err[0] ? err : "cannot start");
        goto fail;
    }

    weir_fmt(tm->jm_endpoint, sizeof tm->jm_endpoint, "tcp://%s:%" PRId64,
             weir_config_get_str(cfg, "jobmanager.rpc.address"),
             weir_config_get_int(cfg, "jobmanager.rpc.port"));
    tm->zctx = zmq_ctx_new();
    if (!tm->zctx) {
        weir_fmt(errstr, errlen, "cannot create a ZeroMQ context: %s", zmq_strerror(errno));
        goto fail;
    }
    tm->dealer = zmq_socket(tm->zctx, ZMQ_DEALER);
    int linger = 0;
    /* from the job manager: control messages and plugins (at most WEIR_BLOB_MAX_BYTES, 256 MiB) */
    int64_t max_msg = TM_MAX_CONTROL_MSG;
    if (!tm->dealer || zmq_setsockopt(tm->dealer, ZMQ_ROUTING_ID, tm->id, strlen(tm->id)) != 0 ||
        zmq_setsockopt(tm->dealer, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_setsockopt(tm->dealer, ZMQ_MAXMSGSIZE, &max_msg, sizeof max_msg) != 0 ||
        weir_curve_client(tm->dealer, &curve) != 0 ||
        zmq_connect(tm->dealer, tm->jm_endpoint) != 0) {
        weir_fmt(errstr, errlen,
                 "cannot connect to the job manager at %s: %s (check "
                 "jobmanager.rpc.address and jobmanager.rpc.port)",
                 tm->jm_endpoint, zmq_strerror(errno));
        goto fail;
    }
    WEIR_INFO(COMP, "task manager %s: working dir %s, data at %s, job manager %s (%s)", tm->id,
              tm->workdir, weir_dataplane_address(tm->dp), tm->jm_endpoint,
              curve.enabled ? "CURVE" : "no authentication");
    memset(&curve, 0, sizeof curve);
    int mport = 0;
    tm->prom = weir__tm_prom_start(tm, cfg, &mport, errstr, errlen);
    if (mport < 0)
        goto fail;
    tm->metrics_port = (uint32_t)mport;
    return tm;
fail:
    weir_taskmanager_destroy(&tm);
    return NULL;
}

void weir_taskmanager_destroy(weir_taskmanager_t **tmp) {
    if (!tmp || !*tmp)
        return;
    weir_taskmanager_t *tm = *tmp;
    *tmp = NULL;
    weir__tm_prom_stop(&tm->prom); /* its thread reads the tasks */
    while (tm->n_tasks)
        remove_task(tm, tm->n_tasks - 1);
    drain_events(tm);
    for (size_t i = 0; i < tm->n_outq; i++)
        free(tm->outq[i].data);
    free(tm->outq);
    if (tm->wake[0] >= 0)
        close(tm->wake[0]);
    if (tm->wake[1] >= 0)
        close(tm->wake[1]);
    free(tm->tasks);
    free(tm->attempts);
    for (size_t i = 0; i < tm->n_pending; i++)
        weir_msg_clear(&tm->pending[i]);
    free(tm->pending);
    for (size_t i = 0; i < tm->n_plugins; i++) {
        weir_plugin_close(&tm->plugins[i].plugin);
        free(tm->plugins[i].path);
    }
    free(tm->plugins);
    if (tm->dealer)
        zmq_close(tm->dealer);
    if (tm->zctx)
        zmq_ctx_term(tm->zctx);
    weir_dataplane_destroy(&tm->dp);
    weir__tm_memory_free(&tm->mem); /* after every task (and its state backend) is gone */
    if (tm->workdir) {
        if (tm->workdir_default) {
            weir_rmtree(tm->workdir);
        } else {
            char dir[PATH_MAX];
            weir_fmt(dir, sizeof dir, "%s/blobs", tm->workdir);
            weir_rmtree(dir);
        }
    }
    free(tm->workdir);
    free(tm->recovery_dir);
    weir_storage_env_free(&tm->storage_env); /* every task (and uploader) was joined above */
    /* every thread that logs (tasks, uploaders, the data plane's, /metrics) was joined above */
    if (tm->log_installed)
        weir_log_install(NULL);
    weir__tm_logring_destroy(&tm->logring);
    pthread_mutex_destroy(&tm->tasksmu);
    pthread_mutex_destroy(&tm->evmu);
    weir_config_destroy(&tm->cfg);
    free(tm);
}
