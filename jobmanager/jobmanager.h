/* The job manager's context: configuration, the task-manager and job tables, the queue of
 * outgoing messages; the public entry points (weir_jobmanager_new/run/stop/destroy, used by main.c
 * and the tests) and the few internal functions every part of the job manager uses (queue a
 * message, wake the main loop, look up a job or a task manager instance, fail over a job, name a
 * job state). Declarations only some files need are in jobmanager_int.h.
 *
 * Everything in the tables is guarded by weir_jobmanager_t.mu, the job manager's only lock;
 * functions named *_locked must be called with it held.
 *
 * Threads: the main thread runs weir_jobmanager_run() (owns the ZeroMQ ROUTER, sends and receives
 * every control message); libmicrohttpd's internal thread runs the REST handlers, which change the
 * tables under the mutex, queue outgoing messages and wake the main thread through an eventfd. */
#ifndef WEIR_JOBMANAGER_JOBMANAGER_H
#define WEIR_JOBMANAGER_JOBMANAGER_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/killpoint.h"
#include "common/proto.h"
#include "jobmanager/blobstore.h"
#include "jobmanager/ckpt_store.h"
#include "jobmanager/coordinator.h"
#include "jobmanager/rest.h"
#include "jobmanager/restart.h"
#include "runtime/graph/graph.h"

/** A job that was asked to stop (cancel or failure) stops waiting for its subtasks after this
 * long even when not every subtask confirmed: its other slots are freed, the slots of subtasks
 * whose task manager did not confirm stay taken on that task manager until it does (or it is
 * lost and registers again). */
#define WEIR_JM_CANCEL_BOUND_MS 10000

/** execution.checkpointing.externalized-checkpoint-retention: what happens to a job's checkpoint
 * directory when the job ends. */
typedef enum weir_jm_retention {
    WEIR_JM_RETAIN_ON_CANCELLATION = 0, /* always kept */
    WEIR_JM_DELETE_ON_CANCELLATION,     /* deleted when canceled */
    WEIR_JM_NO_EXTERNALIZED,            /* deleted when canceled or finished (kept when failed) */
} weir_jm_retention_t;

typedef enum weir_jm_job_state {
    WEIR_JOB_CREATED = 0, /* waiting for slots */
    WEIR_JOB_RUNNING,
    WEIR_JOB_CANCELING,
    WEIR_JOB_FINISHED,
    WEIR_JOB_FAILED,
    WEIR_JOB_CANCELED,
    WEIR_JOB_RESTARTING, /* failed over: tasks canceled, waiting for the delay and slots */
} weir_jm_job_state_t;

/** "CREATED", "RUNNING", ... as the REST API shows it. */
const char *weir__jm_job_state_name(weir_jm_job_state_t s);

/** A subtask that a task manager instance was asked to stop and has not confirmed stopped (no
 * TASK_STATE FINISHED/CANCELED/FAILED yet) when its job stopped waiting for it: its slot stays
 * taken on that instance (attempt fencing, see taskmanagers.c). */
typedef struct weir_jm_unconfirmed {
    char job_id[33];
    uint32_t attempt, vertex, subtask;
} weir_jm_unconfirmed_t;

/** One registered task manager instance. */
typedef struct weir_jm_tm {
    char *id;
    uint8_t *ident; /* ZeroMQ routing id of its DEALER */
    size_t ident_len;
    char *data_address;
    char *host;
    int64_t pid;
    uint32_t slots_total;
    uint32_t slots_free;
    uint64_t seq;          /* unique per registration (never 0) */
    int64_t last_seen_ns;  /* weir_now_ns() of the last message */
    int fd;                /* the job manager's socket fd of its connection (-1 = unknown) */
    int64_t registered_ms; /* wall clock of its REGISTER */
    /* its own figures from the last HEARTBEAT (common/proto.h; zeros until one carries them) */
    uint32_t metrics_port;
    uint64_t rss_bytes, cpu_ns;
    uint64_t mem_process, mem_network_total, mem_network_used, mem_managed_total, mem_managed_used,
        mem_state_cache_total, mem_state_cache_used;
    weir_jm_unconfirmed_t *unconfirmed; /* their slots are not free (deploy.c counts them) */
    size_t n_unconfirmed, cap_unconfirmed;
} weir_jm_tm_t;

/** One subtask (vertex v, subtask s) of a job. */
typedef struct weir_jm_subtask {
    weir_task_state_t state;
    uint64_t tm_seq; /* hosting task manager instance; 0 = not deployed */
    char *tm_id;     /* copies, kept after the task manager is gone */
    char *address;
    char *message;
    weir_task_metrics_t metrics;
    int64_t start_ms, end_ms; /* wall clock: deployed, reached a final state (0 = not yet) */
    /* the two latest metric reports (weir_now_ns() of each; 0 = none): the backpressure, busy
     * and idle ratios of GET .../backpressure are their deltas over the wall time between */
    int64_t metrics_ns, prev_metrics_ns;
    weir_task_metrics_t prev_metrics;
} weir_jm_subtask_t;

/** One failure of a job (GET /jobs/{id}/exceptions, Flink's exceptionHistory entry). */
typedef struct weir_jm_exception {
    char *name;      /* exceptionName: what failed, e.g. "TaskFailure", "TaskManagerLost" */
    char *message;   /* stacktrace: our one line */
    int64_t time_ms; /* wall clock */
    char *task;      /* taskName "<vertex> (s/p)", NULL when no task is named */
    char *location;  /* the task manager's data address, NULL when none */
    char *tm_id;     /* taskManagerId, NULL when none */
} weir_jm_exception_t;

/** Exceptions kept per job (newest first in REST; the oldest are dropped). */
#define WEIR_JM_EXCEPTION_HISTORY 16

/** A savepoint request (POST /jobs/{id}/savepoints or /stop), jobmanager/savepoints.c. */
typedef enum weir_jm_sp_status {
    WEIR_SP_QUEUED = 0, /* waits until nothing is in flight and every subtask runs */
    WEIR_SP_IN_PROGRESS,
    WEIR_SP_COMPLETED,
    WEIR_SP_FAILED,
} weir_jm_sp_status_t;

typedef struct weir_jm_savepoint {
    char rid[33];  /* request id */
    uint32_t kind; /* WEIR_CK_SAVEPOINT or WEIR_CK_STOP */
    bool cancel_job;
    weir_jm_sp_status_t status;
    bool written;           /* a stop-savepoint's _metadata is durable: waits for FINISHED */
    char *target;           /* the directory asked for (or state.savepoints.dir) */
    char *path;             /* <target>/savepoint-<job6>-<rand12>, once started */
    char *failure;          /* FAILED: one line */
    uint64_t checkpoint_id; /* its id in the job's checkpoint sequence, once started */
    int64_t request_ms, trigger_ms, end_ms;
    uint64_t state_size;
} weir_jm_savepoint_t;

typedef struct weir_jm_job {
    char id[33];
    char *name;
    weir_jm_job_state_t state;
    char *message;    /* NULL or one line */
    int64_t start_ms; /* wall clock */
    int64_t end_ms;   /* -1 while not ended */
    int64_t created_ns;
    int64_t stop_ns; /* when it was asked to stop (cancel / failure) */
    uint32_t attempt;
    char plugin[65];
    char **args;
    uint32_t n_args;
    json_t *graph;    /* as submitted */
    char *graph_text; /* compact dump of graph */
    weir_job_t *dag;  /* parsed + finalized */
    uint32_t n_vertices;
    uint32_t *parallelism;        /* [n_vertices] */
    weir_jm_subtask_t **subtasks; /* [v][s] */
    uint32_t slots_needed;
    uint64_t *slot_tm_seq; /* [slots_needed] */
    bool slots_held;
    /* checkpoints and recovery */
    char *ckdir; /* URI <state.checkpoints.dir>/<id>; NULL when checkpointing is off */
    struct weir_storage *ck_st;    /* storage rooted at ckdir (NULL when ckdir is) */
    weir_ckpt_gc_marks_t gc_marks; /* what the last retention round found unreferenced */
    weir_ckpt_coord_t ckpt;        /* coordinator state (initialised for every job) */
    /* the storage worker (storage_worker.h, checkpointing.c): items of this job submitted and not
     * applied yet (no trigger, no restore, no HA removal while > 0); the generation, bumped when
     * the in-flight checkpoint is dropped (results of older generations are stale); whether
     * next_id is above every chk-* of <ckdir> (listed once) */
    uint32_t sw_pending;
    uint64_t sw_gen;
    bool ck_listed;
    int64_t ck_list_retry_ns;     /* a failed listing is retried from then on */
    weir_restart_state_t restart; /* restart strategy state; restart.restarts = restarts so far */
    int64_t restart_at_ns;        /* RESTARTING: earliest deployment of the next attempt */
    char *ha_pointer;             /* HA pointer loaded at startup (NULL: none) */
    bool ha_saved;                /* an HA entry exists for this job */
    bool result_warned;           /* writing its job result record failed once (logged) */
    /* savepoints: requests, and the savepoint (or retained checkpoint) it started from */
    weir_jm_savepoint_t *sps;
    size_t n_sps, cap_sps;
    char *restore_path; /* `run -s`: the URI of the directory holding its _metadata; NULL = none */
    bool allow_non_restored;
    bool ck_released; /* the end-of-job retention rule ran */
    /* failure history (exceptions.c): a ring of WEIR_JM_EXCEPTION_HISTORY, exc_len used */
    weir_jm_exception_t exc[WEIR_JM_EXCEPTION_HISTORY];
    uint32_t exc_start, exc_len;
    uint64_t exc_total; /* failures recorded so far (truncated = exc_total > exc_len) */
} weir_jm_job_t;

typedef struct weir_jm_out weir_jm_out_t;
typedef struct weir_jm_app weir_jm_app_t;
typedef struct weir_jm_logreq weir_jm_logreq_t;

typedef struct weir_jobmanager {
    pthread_mutex_t mu;
    /* configuration (copied) */
    char *rest_bind;
    int rest_port;               /* the real port once bound */
    weir_rest_config_t rest_cfg; /* authentication, HTTPS, bounds */
    char *rpc_bind;
    int rpc_port; /* the real port once bound */
    int64_t hb_interval_ms;
    int64_t hb_timeout_ms;
    int64_t slot_timeout_ms;
    int64_t cancel_bound_ms; /* 0 = WEIR_JM_CANCEL_BOUND_MS (tests lower it) */
    weir_ckpt_config_t ckcfg;
    weir_restart_cfg_t restart_cfg;
    /* checkpoint storage (storage/storage.h): one env for the process (s3.* settings, counters,
     * upload slots); the HA store and the job's checkpoint directories are opened with it */
    struct weir_storage_env *storage_env;
    struct weir_storage *ha_st; /* rooted at ha_dir, NULL = no HA */
    struct weir_jm_sw *sw;      /* the storage worker thread (storage_worker.h) */
    char *ha_dir;               /* high-availability.storageDir as a canonical URI, NULL = no HA */
    char *ck_root;         /* state.checkpoints.dir as a canonical URI, NULL = checkpoints off */
    char *savepoints_dir;  /* state.savepoints.dir (URI or absolute path), NULL = none */
    uint32_t ck_retention; /* WEIR_JM_RETAIN_* of externalized-checkpoint-retention */
    weir_killpoint_t killpoint;
    void *monitor; /* PAIR socket receiving the ROUTER's disconnect events */
    weir_blobstore_t *blobs;
    /* task managers in registration order */
    weir_jm_tm_t **tms;
    size_t n_tms, cap_tms;
    uint64_t next_seq;
    /* jobs in submission order; never removed */
    weir_jm_job_t **jobs;
    size_t n_jobs, cap_jobs;
    /* messages queued for the main thread to send */
    weir_jm_out_t *out_head, *out_tail;
    void *zctx;
    void *router;
    struct weir_zap *zap; /* CURVE's ZAP handler in zctx; NULL without security.curve.key-file */
    int wake_fd;
    struct MHD_Daemon *mhd;
    atomic_bool stop;
    weir_jm_app_t *app; /* application mode (application.c); NULL = session mode */
    /* jobmanager.shutdown.savepoint: stop RUNNING jobs with a savepoint on SIGTERM/SIGINT */
    bool shutdown_sp;
    int64_t shutdown_timeout_ms;
    /* GET /jobmanager/config: every key that has a value, secrets masked (written before the
     * REST server starts, read-only afterwards) */
    json_t *config_view;
    int64_t start_ms; /* wall clock of weir_jobmanager_new */
    /* GET /taskmanagers/{id}/log requests waiting for a LOG answer (rest_log.c) */
    weir_jm_logreq_t *logreqs;
    uint64_t next_log_request;
    bool log_closing; /* the REST server stops: no new log request */
} weir_jobmanager_t;

/** Creates the job manager from @p cfg: opens the blob store, recovers the jobs of the HA store,
 * binds the RPC socket and starts the REST server. @returns NULL with a one-line message in errstr
 * on failure. */
weir_jobmanager_t *weir_jobmanager_new(const weir_config_t *cfg, char *errstr, size_t errlen);
/** Runs the main loop on the calling thread until weir_jobmanager_stop() or until @p stop_fd
 * (-1: none; a signalfd, read here) becomes readable; with jobmanager.shutdown.savepoint the
 * first signal stops every RUNNING job with a savepoint and the loop returns when they ended (0)
 * or failed or timed out (1); a second signal returns at once (1). In application mode it also
 * returns when the application job ended and its terminal work is done: 0 FINISHED or CANCELED,
 * 1 FAILED or not submitted. @returns 0, 1 or a negative error. */
int weir_jobmanager_run(weir_jobmanager_t *jm, int stop_fd);
/** Asks the main loop to return. Thread-safe. */
void weir_jobmanager_stop(weir_jobmanager_t *jm);
/** Stops the REST server, closes sockets, frees everything. Accepts NULL. */
void weir_jobmanager_destroy(weir_jobmanager_t **jm);

/* ---- used by most files of the job manager ----------------------------------------------------
 */

/** Wakes the main loop (REST side, after queuing work). Thread-safe. */
void weir__jm_wake(weir_jobmanager_t *jm);
/** Queues @p msg for @p tm (sent by the main thread). */
void weir__jm_send_locked(weir_jobmanager_t *jm, const weir_jm_tm_t *tm, const weir_msg_t *msg);
weir_jm_job_t *weir__jm_find_job_locked(weir_jobmanager_t *jm, const char *id);
/** The task manager instance with registration number @p seq, or NULL when gone. */
weir_jm_tm_t *weir__jm_find_tm_seq_locked(weir_jobmanager_t *jm, uint64_t seq);
/** A failure of a RUNNING job: RESTARTING (tasks canceled, in-flight checkpoint aborted) when the
 * restart strategy allows it, FAILED with @p msg otherwise. */
void weir__jm_failover_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, const char *msg);

#endif
