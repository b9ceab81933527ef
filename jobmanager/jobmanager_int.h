/* Private declarations between the files of the job manager, grouped by the file that defines
 * them; each is used by one or two other files (what nearly every file uses is in jobmanager.h).
 * Functions named *_locked must be called with jm->mu held; see each file's opening comment for
 * its thread. */
#ifndef WEIR_JOBMANAGER_JOBMANAGER_INT_H
#define WEIR_JOBMANAGER_JOBMANAGER_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/proto.h"
#include "jobmanager/ckpt_store.h"
#include "jobmanager/jobmanager.h"

/** FINISHED, FAILED or CANCELED: the job's state never changes again. */
static inline bool weir__jm_job_terminal(weir_jm_job_state_t s) {
    return s == WEIR_JOB_FINISHED || s == WEIR_JOB_FAILED || s == WEIR_JOB_CANCELED;
}

/* ---- jobs.c: the job table and the job lifecycle ------------------------------------------- */

/** Replaces *dst with a copy of @p src (NULL: none; NULL too when the copy fails). */
void weir__jm_set_str(char **dst, const char *src);
/** Checks that @p sha (NULL: missing) names a blob of the store. @returns 0, or WEIR_EINVAL /
 * WEIR_ENOTFOUND with a one-line message (for a 400) in errstr. Call with the mutex NOT held. */
int weir__jm_job_check_plugin(weir_jobmanager_t *jm, const char *sha, char *errstr, size_t errlen);
/** Builds a CREATED job (new id) of plugin @p sha (checked) with a copy of @p args and @p graph
 * (parsed and finalized). @returns NULL with a one-line message (for a 400) in errstr. Call with
 * the mutex NOT held. */
weir_jm_job_t *weir__jm_job_new(weir_jobmanager_t *jm, const char *sha, const char *const *args,
                                uint32_t n_args, const json_t *graph, char *errstr, size_t errlen);
void weir__jm_job_free(weir_jm_job_t *job);
/** Gives a job that is not in the table yet the id @p id (32 hex digits; may be job->id) and the
 * checkpoint directory <state.checkpoints.dir>/<id>. */
void weir__jm_job_set_id(weir_jobmanager_t *jm, weir_jm_job_t *job, const char *id);
/** `run -s PATH`: reads the savepoint (or retained checkpoint) at @p path and checks that its
 * state maps onto the job (weir_restore_plan_build); the job then starts from it. @returns 0, or
 * an error with the one line for a 400 (nothing runs). Call with the mutex NOT held. */
int weir__jm_job_set_restore(weir_jobmanager_t *jm, weir_jm_job_t *job, const char *path,
                             bool allow_non_restored, char *errstr, size_t errlen);
/** A terminal job whose terminal work is done: slots freed, checkpoint retention applied, result
 * record written and HA entry removed, no savepoint request pending. */
bool weir__jm_job_settled_locked(const weir_jm_job_t *job);
/** Adds a job to the table (takes ownership). @returns 0 or WEIR_ENOMEM. */
int weir__jm_add_job_locked(weir_jobmanager_t *jm, weir_jm_job_t *job);
/** Cancels a job. @returns 0 (now CANCELING or CANCELED) or WEIR_EINVAL when it already ended
 * (message for a 409 in errstr). */
int weir__jm_cancel_job_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, char *errstr,
                               size_t errlen);
/** A job asked to stop: frees its slots once every subtask stopped (or WEIR_JM_CANCEL_BOUND_MS
 * passed: then the slots of subtasks a live task manager did not confirm stay taken on it) and
 * completes a cancel. */
void weir__jm_check_stopped_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, int64_t now);
/** A subtask state (or, with @p metrics_only, its metrics: a HEARTBEAT) reported by @p tm. A
 * final state also confirms an unconfirmed subtask of @p tm; a heartbeat naming a live subtask that
 * is neither deployed on this instance for the job's current attempt nor unconfirmed draws a
 * CANCEL of its (job, attempt). */
void weir__jm_apply_task_state_locked(weir_jobmanager_t *jm, weir_jm_tm_t *tm,
                                      const weir_msg_task_state_t *ts, bool metrics_only);

/* ---- taskmanagers.c: the task-manager table ------------------------------------------------- */

weir_jm_tm_t *weir__jm_find_tm_id_locked(weir_jobmanager_t *jm, const char *id);
void weir__jm_tm_free(weir_jm_tm_t *tm);
/** A REGISTER from routing id @p ident (@p ident_str printable; the id when the message has
 * none) on socket fd @p fd. */
void weir__jm_tm_register_locked(weir_jobmanager_t *jm, const uint8_t *ident, size_t ident_len,
                                 const char *ident_str, weir_msg_t *m, int fd);
/** Loses every task manager silent for more than heartbeat.timeout. */
void weir__jm_tm_check_heartbeats_locked(weir_jobmanager_t *jm, int64_t now);
/** The connection with socket fd @p fd closed: its task manager (if any) is lost. */
void weir__jm_tm_closed_locked(weir_jobmanager_t *jm, int fd);
/** Subtask (@p vertex, @p subtask) of (@p job_id, @p attempt) did not confirm its stop on @p tm in
 * time: its slot stays taken on @p tm until a final TASK_STATE confirms it. */
void weir__jm_tm_hold_unconfirmed_locked(weir_jobmanager_t *jm, weir_jm_tm_t *tm,
                                         const char *job_id, uint32_t attempt, uint32_t vertex,
                                         uint32_t subtask);
/** Finds the unconfirmed subtask of @p tm that @p ts names; with @p confirm (a final state) it is
 * forgotten and its slot freed. @returns true when @p ts named one. */
bool weir__jm_tm_unconfirmed_locked(weir_jobmanager_t *jm, weir_jm_tm_t *tm,
                                    const weir_msg_task_state_t *ts, bool confirm);

/* ---- deploy.c: scheduling, deployment, slots ------------------------------------------------ */

/** Deploys the jobs waiting for slots that can get them; fails those waiting too long. */
void weir__jm_schedule_locked(weir_jobmanager_t *jm, int64_t now);
/** Gives the job's slots back to their task managers (no-op when it holds none). */
void weir__jm_release_slots_locked(weir_jobmanager_t *jm, weir_jm_job_t *job);
/** Recomputes tm->slots_free: slots_total minus the slots jobs hold on it minus the slots of its
 * unconfirmed subtasks (never below 0). */
void weir__jm_tm_count_slots_locked(weir_jobmanager_t *jm, weir_jm_tm_t *tm);

/* ---- ha_jobs.c: the job table in the HA store ----------------------------------------------- */

/** Saves the HA entry of a new job (job.json + plugin copy). No-op without HA. Call with the mutex
 * NOT held, before the job is added. @returns 0 or a negative error with errstr. */
int weir__jm_ha_save_new_job(weir_jobmanager_t *jm, weir_jm_job_t *job, char *errstr,
                             size_t errlen);
/** Writes the job's job.json (attempt included; ha_saved on success). No-op without HA. With
 * jm->mu held once the job is in the table. @returns 0, or an error with one line in errstr. */
int weir__jm_ha_write_job(weir_jobmanager_t *jm, weir_jm_job_t *job, char *errstr, size_t errlen);
/** Removes the HA entry of a job that ended. */
void weir__jm_ha_remove_ended_locked(weir_jobmanager_t *jm, weir_jm_job_t *job);
/** Adds every job of the HA store to the table as RESTARTING. @returns 0 or a negative error. */
int weir__jm_ha_recover(weir_jobmanager_t *jm, char *errstr, size_t errlen);

/* ---- checkpointing.c: the checkpoint coordinator inside the job manager (main thread) ------- */

/** Periodic work of one job: expiry of the in-flight checkpoint, trigger when due. */
void weir__jm_ckpt_tick_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, int64_t now_ns);
/** An ACK_CHECKPOINT from @p tm (takes m->op_state and m->keyed_handle). */
void weir__jm_ckpt_on_ack_locked(weir_jobmanager_t *jm, weir_jm_tm_t *tm, weir_msg_t *m);
/** A DECLINE_CHECKPOINT from @p tm. */
void weir__jm_ckpt_on_decline_locked(weir_jobmanager_t *jm, weir_jm_tm_t *tm, const weir_msg_t *m);
/** Aborts the in-flight checkpoint of a job that stops or restarts (removes its directory, unless
 * its completion is being written: then it stays and a durable result becomes a restore point). */
void weir__jm_ckpt_abort_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, const char *why);

/* ---- checkpoint storage locations (checkpointing.c) ---- */
/** Checks the form of the location @p value of config key @p key (no I/O): a URI or an absolute
 * path. @returns 0 or WEIR_ECONFIG with one line naming the key and the fix. */
int weir__jm_location_check(const char *key, const char *value, char *errstr, size_t errlen);
/** Opens @p uri with the job manager's env (no I/O). NULL with errstr. */
weir_storage_t *weir__jm_storage_open(weir_jobmanager_t *jm, const char *uri, char *errstr,
                                      size_t errlen);
/** Deletes everything under @p uri (a savepoint or checkpoint directory) of @p job on the storage
 * worker (a failure is logged as a WARN naming it). */
void weir__jm_uri_delete_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, const char *uri);
/** Whether object @p key exists under @p uri: 1 yes, 0 no, < 0 it cannot be known (error). */
int weir__jm_uri_has(weir_jobmanager_t *jm, const char *uri, const char *key);
/** Applies the results of the storage worker's finished items (main thread): completions,
 * listings, retention marks; results of a stale generation are ignored (or, when durable, become a
 * restore point). */
void weir__jm_sw_apply_locked(weir_jobmanager_t *jm);
/** (Re)opens job->ck_st at job->ckdir. @returns 0 or an error with errstr. */
int weir__jm_job_open_ckdir(weir_jobmanager_t *jm, weir_jm_job_t *job, char *errstr, size_t errlen);
/** Finds the checkpoint or savepoint the next attempt of @p job restores: *meta->id == 0 = fresh
 * start; else @p base = the directory holding its _metadata and *claim = it is one of this job's
 * own checkpoints (its files may be shared by later checkpoints). @returns 0, or a negative error
 * with a one-line message (the job must fail). */
int weir__jm_ckpt_restore_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, weir_ckpt_meta_t *meta,
                                 char *base, size_t base_cap, bool *claim, char *errstr,
                                 size_t errlen);

/** A job that ended: applies execution.checkpointing.externalized-checkpoint-retention to its
 * checkpoint directory once (never to a savepoint, never while a subtask may still write). */
void weir__jm_ckpt_retention_on_end_locked(weir_jobmanager_t *jm, weir_jm_job_t *job);
/** Sends TRIGGER_CHECKPOINT @p id (kind and target of the coordinator's in-flight checkpoint) to
 * every source subtask that has not finished. @returns how many were sent. */
uint32_t weir__jm_ckpt_trigger_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, uint64_t id,
                                      int64_t wall);

/* ---- savepoints.c: savepoint requests ------------------------------------------------------- */

/** A new savepoint request (@p kind WEIR_CK_SAVEPOINT or WEIR_CK_STOP) into @p target (NULL:
 * state.savepoints.dir). @returns 0 with the request id in @p rid, WEIR_EINVAL (no or a bad
 * target: a 400), WEIR_ECONFLICT (the job is not RUNNING, has no checkpoints or is being
 * stopped: a 409) or WEIR_ENOMEM, with one line in errstr. */
int weir__jm_sp_request_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, uint32_t kind,
                               const char *target, bool cancel_job, char rid[33], char *errstr,
                               size_t errlen);
/** True when a stop-savepoint was written and the job is finishing: no checkpoint starts. */
bool weir__jm_sp_stopping_locked(const weir_jm_job_t *job);
/** The request @p rid of @p job, NULL when unknown. */
weir_jm_savepoint_t *weir__jm_sp_find_locked(weir_jm_job_t *job, const char *rid);
/** True when a request is QUEUED or IN_PROGRESS. */
bool weir__jm_sp_active_locked(const weir_jm_job_t *job);
/** True when a request waits to start (periodic checkpoints wait for it). */
bool weir__jm_sp_queued_locked(const weir_jm_job_t *job);
/** Starts the oldest queued request (nothing in flight, every subtask running; @p n_sources
 * source subtasks can be triggered: with none it fails, the job is ending). @returns true when a
 * savepoint is now in flight. */
bool weir__jm_sp_start_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, int64_t now_ns,
                              uint32_t n_sources);
/** Writes <dir>/_metadata from @p meta, then the HA pointer (@p ha_st, NULL = no HA) naming @p dir.
 * Runs on the storage worker: no lock, no job struct. @returns 0, or an error with @p why
 * ("failed: ...") when the savepoint is not complete. */
int weir__jm_sp_write(struct weir_storage_env *env, struct weir_storage *ha_st, const char *job_id,
                      const char *dir, const weir_ckpt_meta_t *meta, char *why, size_t whylen);
/** The in-flight savepoint's _metadata (and HA pointer) at @p dir are durable: completes it in the
 * coordinator and its request (a stop-savepoint waits for FINISHED; cancel_job cancels). */
void weir__jm_sp_completed_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, const char *dir);
/** Savepoint @p id failed (@p why): the request fails, its directory goes (unless @p keep_dir:
 * the HA pointer may name it); with @p failover a failed stop fails the job over (its sources had
 * stopped). No-op when @p id is not a savepoint. */
void weir__jm_sp_failed_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, uint64_t id,
                               const char *why, bool failover, bool keep_dir);
/** Ends the requests of a job that is no longer RUNNING (a written stop-savepoint completes
 * when the job FINISHED). */
void weir__jm_sp_tick_locked(weir_jobmanager_t *jm, weir_jm_job_t *job);
/** GET /jobs/{id}/savepoints/{rid}: NULL when the request is unknown. */
json_t *weir__jm_sp_status_json_locked(weir_jm_job_t *job, const char *rid);
/** Frees the requests of a job. */
void weir__jm_sp_free(weir_jm_job_t *job);

/* ---- application.c: application mode (one job, submitted at start; main thread) ------------ */

/** Checks the application keys of @p cfg (@p have_args: job arguments after "--" were given).
 * @returns 0 or WEIR_ECONFIG with one line naming the key and the fix. */
int weir__jm_app_check_config(const weir_config_t *cfg, bool have_args, char *err, size_t errlen);
/** With application.plugin set: decides what to run (result store, HA, or spawns the CLI with
 * @p args). After weir_jobmanager_new. @returns 0 or an error with one line. */
int weir__jm_app_start(weir_jobmanager_t *jm, const weir_config_t *cfg, char *const *args,
                       int n_args, char *err, size_t errlen);
/** Reaps the CLI child; @returns -1 to keep running, else the job manager's exit code (0 the
 * application job FINISHED or was CANCELED, 1 it FAILED or was not submitted). */
int weir__jm_app_tick_locked(weir_jobmanager_t *jm);
/** Ends a child still running and frees the application state. Accepts none. */
void weir__jm_app_free(weir_jobmanager_t *jm);

/* ---- exceptions.c: each job's failure history ---------------------------------------------- */

/** What a failure names besides its line (each NULL when it names none). */
typedef struct weir_jm_cause {
    const char *task;     /* "<vertex> (s/p)" */
    const char *location; /* the task manager's data address */
    const char *tm_id;
} weir_jm_cause_t;

/** Records a failure of @p job: @p name its kind ("TaskFailure", "TaskManagerLost", ...), @p
 * message its one line, @p cause (NULL: none) the task and task manager it names. */
void weir__jm_exception_add_locked(weir_jm_job_t *job, const char *name, const char *message,
                                   const weir_jm_cause_t *cause);
void weir__jm_exceptions_free(weir_jm_job_t *job);
/** GET /jobs/{id}/exceptions: Flink's shape, exceptionHistory.entries newest first. */
json_t *weir__jm_exceptions_json_locked(const weir_jm_job_t *job);
/** weir__jm_failover_locked that records the failure as @p name with @p cause (NULL: none) in
 * the job's exception history when it acts (the job was RUNNING). */
void weir__jm_failover_cause_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, const char *name,
                                    const char *msg, const weir_jm_cause_t *cause);

/* ---- rest_flink.c: the Flink-shaped REST views ---------------------------------------------- */

/** Answers GET @p url when it is one of Flink's paths that rest_flink.c serves (/overview,
 * /config, /jobs/overview, /jobmanager/config, /jobs/{id}/vertices/{vid}[/backpressure],
 * /jobs/{id}/checkpoints/config, /jobs/{id}/checkpoints/details/{cid}, /jobs/{id}/exceptions,
 * /taskmanagers/{id}): @returns the HTTP status with the body in *body ({"error"} for 4xx), or 0
 * (nothing in *body) when @p url is none of them. Takes jm->mu. */
unsigned weir__jm_flink_get(weir_jobmanager_t *jm, const char *url, json_t **body);
/** The configuration as GET /jobmanager/config shows it: [{"key","value"}] of every key with a
 * value, secrets (weir_option_is_secret: tokens, passwords, ...) as "******". */
json_t *weir__jm_config_view(const weir_config_t *cfg);

/* ---- prom.c: GET /metrics, the Prometheus text exposition of the job manager ---------------- */

/** Jobs that ended longer ago than this are left out of the per-subtask series of /metrics. */
#define WEIR_JM_PROM_ENDED_MS (5 * 60 * 1000)

/** The exposition (text format 0.0.4) of every job, subtask and task manager and of the job
 * manager process, malloc'd into *out (*len bytes, NUL-terminated). Takes jm->mu. @returns 0 or
 * WEIR_ENOMEM. */
int weir__jm_prom_render(weir_jobmanager_t *jm, char **out, size_t *len);

/* ---- rest_log.c: GET /taskmanagers/{id}/log through LOG_REQUEST / LOG ----------------------- */

/** How long a log request waits for the task manager's LOG before it answers 504. */
#define WEIR_JM_LOG_TIMEOUT_MS 5000
/** ?bytes=N: default and largest tail (the LOG_REQUEST bound). */
#define WEIR_JM_LOG_DEFAULT_BYTES 65536
#define WEIR_JM_LOG_MAX_BYTES 1048576

/** Where a log request stands. */
typedef enum weir_jm_log_status {
    WEIR_JM_LOG_WAITING = 0,
    WEIR_JM_LOG_ANSWERED, /* data holds the tail */
    WEIR_JM_LOG_TIMED_OUT,
    WEIR_JM_LOG_GONE, /* the task manager left the table, or the job manager stops */
} weir_jm_log_status_t;

/** Sends LOG_REQUEST (@p max_bytes) to task manager @p tm_id for the REST connection @p conn (a
 * struct MHD_Connection *), which the caller then suspends and reports with
 * weir__jm_log_suspended. @returns the request (owned by jm->logreqs until weir__jm_log_finish),
 * or NULL when the task manager is not registered (or out of memory: *oom). Takes jm->mu. */
weir_jm_logreq_t *weir__jm_log_begin(weir_jobmanager_t *jm, const char *tm_id, uint32_t max_bytes,
                                     void *conn, bool *oom);
/** The connection of @p r is suspended: weir__jm_log_resume may resume it. Takes jm->mu. */
void weir__jm_log_suspended(weir_jobmanager_t *jm, weir_jm_logreq_t *r);
/** A LOG from @p tm (main thread): completes the request it answers. */
void weir__jm_log_on_answer_locked(weir_jobmanager_t *jm, const weir_jm_tm_t *tm, weir_msg_t *m);
/** Times out requests waiting longer than WEIR_JM_LOG_TIMEOUT_MS (main thread). */
void weir__jm_log_tick_locked(weir_jobmanager_t *jm, int64_t now_ns);
/** Resumes the connections of requests that are no longer waiting. Call WITHOUT jm->mu (it takes
 * it, and calls libmicrohttpd after releasing it). With @p all (the REST server stops) new
 * requests are refused (404), every waiting one ends (GONE) and is resumed, waiting up to 1 s for
 * a handler to mark its connection suspended: libmicrohttpd must not stop with one suspended. */
void weir__jm_log_resume(weir_jobmanager_t *jm, bool all);
/** The outcome of a resumed request: status, and for ANSWERED the tail (owned by the request).
 * Takes jm->mu. */
weir_jm_log_status_t weir__jm_log_result(weir_jobmanager_t *jm, weir_jm_logreq_t *r,
                                         const uint8_t **data, size_t *len);
/** Unlinks and frees a request (the REST connection ended). Takes jm->mu. Accepts NULL. */
void weir__jm_log_finish(weir_jobmanager_t *jm, weir_jm_logreq_t *r);

/* ---- rest.c: the REST API (libmicrohttpd's thread) ------------------------------------------ */

/** Starts libmicrohttpd on rest_bind:rest_port (updates rest_port when it was 0). */
int weir__jm_rest_start(weir_jobmanager_t *jm, char *errstr, size_t errlen);
void weir__jm_rest_stop(weir_jobmanager_t *jm);

#endif
