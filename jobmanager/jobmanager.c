/* Owns the job manager's context and main loop (jobmanager.h): configuration, the ZeroMQ ROUTER
 * carrying the control messages of common/proto.h and its monitor (disconnect events), the
 * eventfd that wakes the loop, the queue of outgoing messages, the dispatch of each incoming
 * message (REGISTER and loss to taskmanagers.c, task states to jobs.c, checkpoint acks and
 * declines to checkpointing.c, BLOB_REQUEST answered here from the blob store), and the periodic
 * work of each iteration (heartbeat timeouts, ends of stops, checkpoint ticks, HA removal,
 * scheduling).
 *
 * Invariants: only the main thread touches the ROUTER and the monitor; messages are queued under
 * jm->mu and sent in queue order by the main thread; disconnect events are handled before the
 * messages that arrived after them; at most 1000 messages are handled per iteration so the
 * periodic work runs under a flood; HEARTBEAT or TASK_STATE from an unknown id gets UNKNOWN.
 *
 * Threading: weir_jobmanager_run() runs on the calling (main) thread and handles each message and
 * the periodic work with jm->mu held. The REST handlers (libmicrohttpd's thread, rest.c) change
 * the tables under jm->mu, queue messages and call weir__jm_wake(). jm->mu is the job manager's
 * only lock; it is never held while calling into libmicrohttpd (weir__jm_rest_stop waits for the
 * REST thread, which takes jm->mu). The storage worker thread (storage_worker.h) runs the
 * checkpoint and savepoint storage calls without jm->mu and wakes the loop through the eventfd;
 * its results are applied at the start of the periodic work. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <zmq.h>

#include "common/curve.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "jobmanager/ha.h"
#include "jobmanager/jobmanager_int.h"
#include "jobmanager/storage_worker.h"

#define COMP "jobmanager"

/* One encoded message waiting for the main thread to send it. */
struct weir_jm_out {
    uint8_t *ident;
    size_t ident_len;
    uint8_t *data;
    size_t len;
    weir_jm_out_t *next;
};

/* ---------------------------------------------------------------- outgoing messages */

static void sw_wake(void *jm) {
    weir__jm_wake(jm);
}

void weir__jm_wake(weir_jobmanager_t *jm) {
    uint64_t one = 1;
    ssize_t n = write(jm->wake_fd, &one, sizeof one);
    (void)n; /* EAGAIN means the counter is already non-zero: the loop wakes anyway */
}

/* Encodes @p msg and queues it for @p tm. */
void weir__jm_send_locked(weir_jobmanager_t *jm, const weir_jm_tm_t *tm, const weir_msg_t *msg) {
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

/* Queues a reply to a routing id (for peers that are not in the table). */
static void reply_ident_locked(weir_jobmanager_t *jm, const uint8_t *ident, size_t ident_len,
                               const weir_msg_t *msg) {
    weir_jm_tm_t fake = {.id = "(unregistered)", .ident = (uint8_t *)ident, .ident_len = ident_len};
    weir__jm_send_locked(jm, &fake, msg);
}

static void zfree(void *data, void *hint) {
    (void)hint;
    free(data);
}

/* Sends the queued messages (main thread only: the ROUTER is not thread-safe). */
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

/* ---------------------------------------------------------------- incoming messages */

/* Decodes one control message from the peer with routing id @p ident and dispatches it. */
static void handle_message_locked(weir_jobmanager_t *jm, const uint8_t *ident, size_t ident_len,
                                  const uint8_t *data, size_t len, int fd) {
    /* The routing id is the sender's name, the only one: task managers set it to their id before
     * they connect, and with CURVE only holders of the cluster key connect at all. A peer without
     * a textual routing id (ZeroMQ makes one starting with a zero byte) is not a task manager. */
    char ident_str[256];
    if (ident_len == 0 || ident_len >= sizeof ident_str || memchr(ident, 0, ident_len)) {
        WEIR_WARN(COMP, "control message from a peer without a task-manager routing id dropped");
        return;
    }
    memcpy(ident_str, ident, ident_len);
    ident_str[ident_len] = 0;
    weir_msg_t m;
    memset(&m, 0, sizeof m);
    char err[256] = "";
    if (weir_msg_decode(data, len, &m, err, sizeof err) != 0) {
        WEIR_WARN(COMP, "bad control message from %s: %s", ident_str, err);
        weir_msg_clear(&m);
        return;
    }
    /* A body naming another task manager than the connection is a forgery (or a bug): never act
     * on it in anyone's name. */
    if (m.tm_id && m.tm_id[0] && strcmp(m.tm_id, ident_str) != 0) {
        WEIR_WARN(COMP,
                  "control message of type %d from %s names task manager %s in its body: dropped "
                  "(a task manager is identified by its connection's routing id)",
                  (int)m.type, ident_str, m.tm_id);
        weir_msg_clear(&m);
        return;
    }
    const char *id = ident_str;
    weir_jm_tm_t *tm = NULL;
    switch (m.type) {
    case WEIR_MSG_REGISTER:
        weir__jm_tm_register_locked(jm, ident, ident_len, ident_str, &m, fd);
        break;
    case WEIR_MSG_HEARTBEAT:
    case WEIR_MSG_TASK_STATE:
        tm = weir__jm_find_tm_id_locked(jm, id);
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
            weir__jm_apply_task_state_locked(jm, tm, &m.tasks[i], m.type == WEIR_MSG_HEARTBEAT);
        if (m.type == WEIR_MSG_HEARTBEAT) {
            tm->metrics_port = m.metrics_port;
            tm->rss_bytes = m.rss_bytes;
            tm->cpu_ns = m.cpu_ns;
            tm->mem_process = m.mem_process;
            tm->mem_network_total = m.mem_network_total;
            tm->mem_network_used = m.mem_network_used;
            tm->mem_managed_total = m.mem_managed_total;
            tm->mem_managed_used = m.mem_managed_used;
            tm->mem_state_cache_total = m.mem_state_cache_total;
            tm->mem_state_cache_used = m.mem_state_cache_used;
            weir_msg_t r = {.type = WEIR_MSG_HEARTBEAT_ACK};
            weir__jm_send_locked(jm, tm, &r);
        }
        break;
    case WEIR_MSG_ACK_CHECKPOINT:
    case WEIR_MSG_DECLINE_CHECKPOINT:
        tm = weir__jm_find_tm_id_locked(jm, id);
        if (!tm)
            break; /* an instance the job manager forgot: its tasks are stale */
        tm->last_seen_ns = weir_now_ns();
        if (m.type == WEIR_MSG_ACK_CHECKPOINT)
            weir__jm_ckpt_on_ack_locked(jm, tm, &m);
        else
            weir__jm_ckpt_on_decline_locked(jm, tm, &m);
        break;
    case WEIR_MSG_LOG:
        tm = weir__jm_find_tm_id_locked(jm, id);
        if (!tm)
            break; /* its request was answered GONE or timed out */
        tm->last_seen_ns = weir_now_ns();
        weir__jm_log_on_answer_locked(jm, tm, &m);
        break;
    case WEIR_MSG_BLOB_REQUEST: {
        tm = weir__jm_find_tm_id_locked(jm, id);
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

/* ---------------------------------------------------------------- periodic work */

/* Heartbeat timeouts, ends of stops, checkpoint ticks, HA removal, then scheduling. */
static void periodic_locked(weir_jobmanager_t *jm) {
    int64_t now = weir_now_ns();
    weir__jm_sw_apply_locked(jm); /* results of the storage worker first */
    weir__jm_tm_check_heartbeats_locked(jm, now);
    weir__jm_log_tick_locked(jm, now);
    for (size_t j = 0; j < jm->n_jobs; j++) {
        weir_jm_job_t *job = jm->jobs[j];
        weir__jm_check_stopped_locked(jm, job, now);
        weir__jm_ckpt_tick_locked(jm, job, now);
        weir__jm_sp_tick_locked(jm, job);
        weir__jm_ckpt_retention_on_end_locked(jm, job);
        if (!job->sw_pending) /* after its checkpoint writes and deletes: none recreates it */
            weir__jm_ha_remove_ended_locked(jm, job);
    }
    weir__jm_schedule_locked(jm, now);
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
        if (event == ZMQ_EVENT_DISCONNECTED)
            weir__jm_tm_closed_locked(jm, (int)value);
    }
}

/* ---------------------------------------------------------------- shutdown with savepoints */

/* One job stopped with a savepoint at shutdown (jobmanager.shutdown.savepoint). */
typedef struct shutdown_req {
    char job[33];
    char rid[33];
    bool done;
} shutdown_req_t;

/* The shutdown in progress; main thread only (locals of weir_jobmanager_run). */
typedef struct shutdown {
    bool active;
    bool failed;
    int64_t deadline_ns;
    shutdown_req_t *reqs;
    size_t n, cap;
} shutdown_t;

/* First SIGTERM/SIGINT with jobmanager.shutdown.savepoint: asks every RUNNING job to stop with a
 * savepoint into state.savepoints.dir; the others stay in HA as they are. */
static void shutdown_begin_locked(weir_jobmanager_t *jm, shutdown_t *sd) {
    sd->active = true;
    sd->deadline_ns = weir_now_ns() + jm->shutdown_timeout_ms * 1000000;
    WEIR_INFO(COMP,
              "shutdown: stopping every RUNNING job with a savepoint into %s (timeout %" PRId64
              " ms; a second signal exits at once)",
              jm->savepoints_dir, jm->shutdown_timeout_ms);
    for (size_t j = 0; j < jm->n_jobs; j++) {
        weir_jm_job_t *job = jm->jobs[j];
        if (weir__jm_job_terminal(job->state))
            continue;
        if (job->state != WEIR_JOB_RUNNING) {
            WEIR_INFO(COMP, "shutdown: job %s is %s: not stopped, %s", job->id,
                      weir__jm_job_state_name(job->state),
                      job->ha_saved ? "it stays in HA and the next job manager resumes it"
                                    : "it is lost (no high-availability.storageDir)");
            continue;
        }
        char rid[33], err[1024];
        if (weir__jm_sp_request_locked(jm, job, WEIR_CK_STOP, jm->savepoints_dir, false, rid, err,
                                       sizeof err) != 0) {
            WEIR_ERROR(COMP, "shutdown: job %s cannot be stopped with a savepoint: %s%s", job->id,
                       err, job->ha_saved ? " (it stays in HA)" : "");
            sd->failed = true;
            continue;
        }
        weir_array_grow((void **)&sd->reqs, &sd->cap, sd->n + 1, sizeof *sd->reqs, 4);
        shutdown_req_t *r = &sd->reqs[sd->n++];
        memcpy(r->job, job->id, sizeof r->job);
        memcpy(r->rid, rid, sizeof r->rid);
        r->done = false;
    }
}

/* @returns -1 while a shutdown savepoint is pending, else the exit code (0 all stopped). */
static int shutdown_check_locked(weir_jobmanager_t *jm, shutdown_t *sd) {
    bool pending = false;
    for (size_t i = 0; i < sd->n; i++) {
        shutdown_req_t *r = &sd->reqs[i];
        if (r->done)
            continue;
        weir_jm_job_t *job = weir__jm_find_job_locked(jm, r->job);
        const weir_jm_savepoint_t *sp = job ? weir__jm_sp_find_locked(job, r->rid) : NULL;
        if (sp && sp->status == WEIR_SP_COMPLETED && weir__jm_job_settled_locked(job)) {
            WEIR_INFO(COMP, "shutdown: job %s stopped with savepoint %s", r->job, sp->path);
            r->done = true;
        } else if (!sp || sp->status == WEIR_SP_FAILED) {
            WEIR_ERROR(COMP,
                       "shutdown: the stop-with-savepoint of job %s failed: %s; it stays in HA "
                       "(the next job manager resumes it from its latest checkpoint)",
                       r->job, sp && sp->failure ? sp->failure : "request lost");
            r->done = true;
            sd->failed = true;
        } else {
            pending = true;
        }
    }
    if (!pending)
        return sd->failed ? 1 : 0;
    if (weir_now_ns() < sd->deadline_ns)
        return -1;
    for (size_t i = 0; i < sd->n; i++)
        if (!sd->reqs[i].done)
            WEIR_ERROR(COMP,
                       "shutdown: job %s was not stopped within "
                       "jobmanager.shutdown.savepoint-timeout (%" PRId64 " ms): it stays in HA "
                       "(the next job manager resumes it from its latest checkpoint)",
                       sd->reqs[i].job, jm->shutdown_timeout_ms);
    return 1;
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
    jm->start_ms = weir_wall_ms();
    jm->config_view = weir__jm_config_view(cfg);
    atomic_init(&jm->stop, false);
    jm->rest_bind = strdup(weir_config_get_str(cfg, "rest.bind-address"));
    jm->rpc_bind =
        strdup(weir_config_bind_address(weir_config_get_str(cfg, "jobmanager.bind-host")));
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
    if (weir_rest_config_load(cfg, &jm->rest_cfg, errstr, errlen) != 0)
        goto fail;
    if (!(jm->storage_env = weir_storage_env_new(cfg, errstr, errlen)))
        goto fail;
    const char *spd = weir_config_get_str(cfg, "state.savepoints.dir");
    if (spd && *spd) {
        if (weir__jm_location_check("state.savepoints.dir", spd, errstr, errlen) != 0)
            goto fail;
        if (!(jm->savepoints_dir = strdup(spd)))
            goto fail;
    }
    if (jm->ckcfg.dir[0]) {
        weir_storage_t *root = NULL;
        if (weir__jm_location_check("state.checkpoints.dir", jm->ckcfg.dir, errstr, errlen) != 0 ||
            !(root = weir__jm_storage_open(jm, jm->ckcfg.dir, errstr, errlen)))
            goto fail;
        jm->ck_root = strdup(weir_storage_uri(root));
        weir_storage_close(&root);
        if (!jm->ck_root)
            goto fail;
    }
    const char *ret =
        weir_config_get_str(cfg, "execution.checkpointing.externalized-checkpoint-retention");
    if (!ret || !strcmp(ret, "RETAIN_ON_CANCELLATION"))
        jm->ck_retention = WEIR_JM_RETAIN_ON_CANCELLATION;
    else if (!strcmp(ret, "DELETE_ON_CANCELLATION"))
        jm->ck_retention = WEIR_JM_DELETE_ON_CANCELLATION;
    else if (!strcmp(ret, "NO_EXTERNALIZED_CHECKPOINTS"))
        jm->ck_retention = WEIR_JM_NO_EXTERNALIZED;
    else {
        weir_fmt(errstr, errlen,
                 "bad value '%s' for execution.checkpointing.externalized-checkpoint-retention: "
                 "use RETAIN_ON_CANCELLATION, DELETE_ON_CANCELLATION or "
                 "NO_EXTERNALIZED_CHECKPOINTS",
                 ret);
        goto fail;
    }
    jm->shutdown_sp = weir_config_get_bool(cfg, "jobmanager.shutdown.savepoint");
    jm->shutdown_timeout_ms = weir_config_get_ms(cfg, "jobmanager.shutdown.savepoint-timeout");
    if (jm->shutdown_sp && !jm->savepoints_dir) {
        weir_fmt(errstr, errlen,
                 "jobmanager.shutdown.savepoint is true but state.savepoints.dir is not set: set "
                 "it to the directory of the shutdown savepoints");
        goto fail;
    }
    const char *ha = weir_config_get_str(cfg, "high-availability.storageDir");
    if (ha && *ha) {
        if (weir__jm_location_check("high-availability.storageDir", ha, errstr, errlen) != 0 ||
            !(jm->ha_st = weir__jm_storage_open(jm, ha, errstr, errlen)))
            goto fail;
        if (!(jm->ha_dir = strdup(weir_storage_uri(jm->ha_st))))
            goto fail;
    }
    jm->blobs = weir_blobstore_new(weir_config_get_str(cfg, "blob.storage.directory"),
                                   WEIR_BLOB_MAX_BYTES, errstr, errlen);
    if (!jm->blobs)
        goto fail;
    jm->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (jm->wake_fd < 0) {
        weir_fmt(errstr, errlen, "job manager: eventfd: %s", strerror(errno));
        goto fail;
    }
    if (!(jm->sw = weir_jm_sw_new(sw_wake, jm, errstr, errlen)))
        goto fail;
    jm->zctx = zmq_ctx_new();
    if (!jm->zctx) {
        weir_fmt(errstr, errlen, "job manager: cannot create a ZeroMQ context: %s",
                 zmq_strerror(errno));
        goto fail;
    }
    weir_curve_t curve;
    if (weir_curve_load(cfg, &curve, errstr, errlen) != 0)
        goto fail;
    if (curve.enabled && !(jm->zap = weir_zap_start(jm->zctx, &curve, errstr, errlen)))
        goto fail;
    jm->router = zmq_socket(jm->zctx, ZMQ_ROUTER);
    if (!jm->router) {
        weir_fmt(errstr, errlen, "job manager: cannot create the RPC socket: %s",
                 zmq_strerror(errno));
        goto fail;
    }
    int64_t maxmsg = (int64_t)weir_config_get_bytes(cfg, "jobmanager.rpc.max-message-size");
    if (weir_curve_server(jm->router, &curve) != 0 ||
        zmq_setsockopt(jm->router, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) != 0) {
        weir_fmt(errstr, errlen, "job manager: cannot secure the RPC socket: %s",
                 zmq_strerror(errno));
        goto fail;
    }
    memset(&curve, 0, sizeof curve);
    /* A task manager that restarts with the same id takes its id over from the old connection,
     * which may linger half-open for minutes after a crash. A newcomer can do that only if it can
     * connect: with CURVE, only a cluster member (docs/security.md). The take-over is a REGISTER,
     * which ends the old instance (taskmanagers.c). */
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
    if (jm->ha_dir && weir__jm_ha_recover(jm, errstr, errlen) != 0)
        goto fail;
    if (jm->ckcfg.enabled)
        WEIR_INFO(
            COMP, "checkpoints every %" PRId64 " ms (%s) in %s, %u retained; restart strategy %s",
            jm->ckcfg.interval_ms,
            jm->ckcfg.mode == WEIR_CHECKPOINT_EXACTLY_ONCE ? "EXACTLY_ONCE" : "AT_LEAST_ONCE",
            jm->ckcfg.dir, jm->ckcfg.num_retained, weir_restart_type_name(jm->restart_cfg.type));
    if (weir__jm_rest_start(jm, errstr, errlen) != 0)
        goto fail;
    WEIR_INFO(COMP, "RPC at tcp://%s:%d (%s)", jm->rpc_bind, jm->rpc_port,
              jm->zap ? "CURVE: cluster key holders only" : "no authentication");
    return jm;
fail:
    weir_jobmanager_destroy(&jm);
    return NULL;
}

void weir_jobmanager_stop(weir_jobmanager_t *jm) {
    atomic_store(&jm->stop, true);
    weir__jm_wake(jm);
}

int weir_jobmanager_run(weir_jobmanager_t *jm, int stop_fd) {
    int result = 0;
    shutdown_t sd = {0};
    pthread_mutex_lock(&jm->mu);
    int app_code = weir__jm_app_tick_locked(jm);
    pthread_mutex_unlock(&jm->mu);
    if (app_code >= 0)
        return app_code;
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
        if (n > 0 && stop_fd >= 0 && (items[3].revents & ZMQ_POLLIN)) {
            uint8_t info[128]; /* one struct signalfd_siginfo */
            ssize_t r = read(stop_fd, info, sizeof info);
            (void)r;
            if (!jm->shutdown_sp || sd.active) {
                if (sd.active) {
                    WEIR_WARN(COMP, "shutdown: second signal: exiting now, the jobs stay in HA");
                    result = 1;
                }
                break;
            }
            pthread_mutex_lock(&jm->mu);
            shutdown_begin_locked(jm, &sd);
            pthread_mutex_unlock(&jm->mu);
        }
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
        /* a shutdown decides alone; else the application job's end ends the job manager */
        int code = sd.active ? shutdown_check_locked(jm, &sd) : weir__jm_app_tick_locked(jm);
        pthread_mutex_unlock(&jm->mu);
        weir__jm_log_resume(jm, false); /* answered or timed-out log requests */
        if (code >= 0) {
            result = code;
            break;
        }
    }
    free(sd.reqs);
    return result;
}

void weir_jobmanager_destroy(weir_jobmanager_t **jmp) {
    if (!jmp || !*jmp)
        return;
    weir_jobmanager_t *jm = *jmp;
    weir__jm_rest_stop(jm);
    /* the storage worker before anything it uses (the env, the HA store, the wake fd): the item
     * running finishes, queued and unapplied ones are dropped (nothing is complete that was not
     * applied: restore is bounded by what completed) */
    weir_jm_sw_destroy(&jm->sw);
    while (jm->logreqs) /* none once libmicrohttpd closed every connection; kept safe anyway */
        weir__jm_log_finish(jm, jm->logreqs);
    json_decref(jm->config_view);
    weir__jm_app_free(jm);
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
    weir_zap_stop(&jm->zap);
    if (jm->zctx)
        zmq_ctx_term(jm->zctx);
    if (jm->wake_fd >= 0)
        close(jm->wake_fd);
    for (size_t i = 0; i < jm->n_tms; i++)
        weir__jm_tm_free(jm->tms[i]);
    free(jm->tms);
    for (size_t i = 0; i < jm->n_jobs; i++)
        weir__jm_job_free(jm->jobs[i]);
    free(jm->jobs);
    weir_blobstore_destroy(&jm->blobs);
    weir_rest_config_clear(&jm->rest_cfg);
    free(jm->rest_bind);
    free(jm->rpc_bind);
    free(jm->ha_dir);
    free(jm->ck_root);
    free(jm->savepoints_dir);
    weir_storage_close(&jm->ha_st);
    weir_storage_env_free(&jm->storage_env); /* after the jobs: they closed their storages */
    pthread_mutex_destroy(&jm->mu);
    free(jm);
    *jmp = NULL;
}
