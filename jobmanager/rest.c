/* Owns the job manager's REST API (docs/architecture.md, "REST API"): libmicrohttpd with its
 * internal polling thread, jansson for every body, the routes, the parsing of POST /jobs bodies
 * and the JSON views of jobs, checkpoints and task managers; and the REST server's security
 * (docs/security.md): the bearer token, HTTPS, and the bounds on bodies and connections.
 *
 * Invariants: when a token is configured, no handler runs for a request without it (but GET
 * /healthz and GET of the dashboard's static files, web.c): the request's body is read and
 * dropped, and the answer is 401. A request body is
 * accumulated across upload callbacks into a per-connection buffer capped by its route's limit
 * (WEIR_BLOB_MAX_BYTES for POST /blobs, rest.max-request-size for everything else); beyond it (or
 * when Content-Length says so) the rest is dropped and the answer is 413. At most
 * rest.max-connections connections are open at once; an idle one is closed after
 * rest.idleness-timeout. A job is in the table only after its HA entry was written; every answer
 * but the dashboard's files is a JSON object (errors: {"error": one line}).
 *
 * Threading: every handler runs on libmicrohttpd's single internal thread. Handlers read and
 * change the job and task-manager tables only with jm->mu held, and parse bodies and write files
 * (blob store, HA entry of a new job) without it; work for the main thread (deployment, CANCEL
 * messages) is queued under the mutex and the main thread is woken. jm->rest_cfg is written
 * before the server starts and only read afterwards. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "common/err.h"
#include "common/json.h"
#include "common/log.h"
#include "common/prom.h"
#include "common/util.h"
#include "jobmanager/ha.h"
#include "jobmanager/jobmanager_int.h"
#include "jobmanager/rest.h"
#include "jobmanager/web.h"

#define COMP "jobmanager"

/* Tokens shorter than this draw a warning at start. */
#define WEIR_REST_TOKEN_MIN_LEN 16

typedef struct rest_req {
    char *buf;
    size_t len, cap;
    size_t limit;          /* largest body of this route */
    bool blob;             /* POST /blobs */
    bool too_large;        /* the body exceeds limit: dropped, the answer is 413 */
    bool unauthorized;     /* no valid token: the body is dropped, the answer is 401 */
    bool bad_token;        /* a token was sent, and it is wrong */
    weir_jm_logreq_t *log; /* GET /taskmanagers/{id}/log: waiting (suspended) or answered */
} rest_req_t;

/* Answers @p body (consumed) with @p status, and the header @p hname: @p hval when hname is set. */
static enum MHD_Result reply_hdr(struct MHD_Connection *c, unsigned status, json_t *body,
                                 const char *hname, const char *hval) {
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text)
        return MHD_NO;
    size_t len = strlen(text);
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (hname)
        MHD_add_response_header(resp, hname, hval);
    enum MHD_Result rc = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* Answers @p len bytes of @p text (copied) with @p status and content type @p ctype. */
static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned status, const char *ctype,
                                  const void *text, size_t len) {
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    enum MHD_Result rc = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, json_t *body) {
    return reply_hdr(c, status, body, NULL, NULL);
}

static enum MHD_Result reply_error(struct MHD_Connection *c, unsigned status, const char *msg) {
    return reply(c, status, json_pack("{s:s}", "error", msg));
}

static json_t *metrics_json(const weir_task_metrics_t *m) {
    return json_pack(
        "{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "records_in", (json_int_t)m->records_in, "records_out",
        (json_int_t)m->records_out, "buffers_out_remote", (json_int_t)m->buffers_out_remote,
        "bytes_out_remote", (json_int_t)m->bytes_out_remote, "buffers_in_remote",
        (json_int_t)m->buffers_in_remote, "bytes_in_remote", (json_int_t)m->bytes_in_remote,
        "buffers_out_local", (json_int_t)m->buffers_out_local, "backpressured_ms",
        (json_int_t)(m->backpressured_ns / 1000000));
}

static json_t *str_or_null(const char *s) {
    return s ? json_string(s) : json_null();
}

/* Called with jm->mu held. */
static json_t *job_summary(const weir_jm_job_t *job) {
    return json_pack("{s:s,s:s,s:s,s:I,s:I}", "id", job->id, "name", job->name, "state",
                     weir__jm_job_state_name(job->state), "start_time", (json_int_t)job->start_ms,
                     "end_time", (json_int_t)job->end_ms);
}

/* Called with jm->mu held. */
/* A copy of a job graph for REST answers: connector option values that are secrets
 * (weir_option_is_secret: passwords, tokens, ...) replaced by "******". Task managers still get
 * the real graph. */
static json_t *graph_redacted(const json_t *graph) {
    json_t *g = json_deep_copy(graph);
    size_t i;
    json_t *node;
    json_array_foreach(json_object_get(g, "nodes"), i, node) {
        size_t k;
        json_t *pair;
        json_array_foreach(json_object_get(json_object_get(node, "config"), "options"), k, pair) {
            const char *key = json_string_value(json_array_get(pair, 0));
            if (key && weir_option_is_secret(key))
                json_array_set_new(pair, 1, json_string("******"));
        }
    }
    return g ? g : json_null();
}

static json_t *job_detail(const weir_jm_job_t *job) {
    json_t *vertices = json_array();
    for (uint32_t v = 0; v < job->n_vertices; v++) {
        json_t *subtasks = json_array();
        weir_task_metrics_t total = {0};
        for (uint32_t s = 0; s < job->parallelism[v]; s++) {
            const weir_jm_subtask_t *st = &job->subtasks[v][s];
            const weir_task_metrics_t *m = &st->metrics;
            total.records_in += m->records_in;
            total.records_out += m->records_out;
            total.buffers_in_remote += m->buffers_in_remote;
            total.bytes_in_remote += m->bytes_in_remote;
            total.buffers_out_remote += m->buffers_out_remote;
            total.bytes_out_remote += m->bytes_out_remote;
            total.buffers_out_local += m->buffers_out_local;
            total.backpressured_ns += m->backpressured_ns;
            json_array_append_new(subtasks,
                                  json_pack("{s:i,s:s,s:o,s:o,s:o,s:o}", "subtask", (int)s, "state",
                                            weir_task_state_name(st->state), "taskmanager",
                                            str_or_null(st->tm_id), "address",
                                            str_or_null(st->address), "message",
                                            str_or_null(st->message), "metrics", metrics_json(m)));
        }
        const weir_vertex_t *vx = &job->dag->vertices[v];
        /* the vertex's inputs in input order (a two-input head has two: 0 first, 1 second) */
        json_t *inputs = json_array();
        for (uint32_t k = 0; k < vx->n_in; k++) {
            const weir_edge_t *e = &job->dag->edges[vx->in_edges[k]];
            json_array_append_new(
                inputs, json_pack("{s:i,s:i,s:i,s:s}", "edge", (int)e->id, "source", (int)e->source,
                                  "input", (int)e->input, "partitioning", weir_part_name(e->part)));
        }
        json_array_append_new(vertices,
                              json_pack("{s:i,s:s,s:i,s:o,s:o,s:o}", "id", (int)v, "name", vx->name,
                                        "parallelism", (int)job->parallelism[v], "inputs", inputs,
                                        "metrics", metrics_json(&total), "subtasks", subtasks));
    }
    return json_pack("{s:s,s:s,s:s,s:o,s:s,s:I,s:I,s:i,s:i,s:o,s:o}", "id", job->id, "name",
                     job->name, "state", weir__jm_job_state_name(job->state), "message",
                     str_or_null(job->message), "plugin", job->plugin, "start_time",
                     (json_int_t)job->start_ms, "end_time", (json_int_t)job->end_ms, "restarts",
                     (int)job->restart.restarts, "attempt", (int)job->attempt, "graph",
                     graph_redacted(job->graph), "vertices", vertices);
}

static json_t *hist_json(const weir_ckpt_hist_t *h) {
    return json_pack("{s:I,s:b,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o}", "id", (json_int_t)h->id,
                     "is_savepoint", h->kind != WEIR_CK_CHECKPOINT, "checkpoint_type",
                     h->kind == WEIR_CK_STOP        ? "SYNC_SAVEPOINT"
                     : h->kind == WEIR_CK_SAVEPOINT ? "SAVEPOINT"
                                                    : "CHECKPOINT",
                     "status", weir_ckpt_status_name(h->status), "trigger_timestamp",
                     (json_int_t)h->trigger_ms, "duration_ms", (json_int_t)h->duration_ms,
                     "state_size", (json_int_t)h->state_size, "uploaded_size",
                     (json_int_t)h->uploaded_size, "alignment_duration_ms",
                     (json_int_t)h->alignment_ms, "sync_duration_ms", (json_int_t)h->sync_ms,
                     "async_duration_ms", (json_int_t)h->async_ms, "failure",
                     h->failure[0] ? json_string(h->failure) : json_null());
}

/* Called with jm->mu held: GET /jobs/{id}/checkpoints. */
static json_t *job_checkpoints(const weir_jm_job_t *job) {
    const weir_ckpt_coord_t *c = &job->ckpt;
    json_t *completed = json_null(), *restored = json_null();
    if (c->have_completed) {
        const weir_ckpt_hist_t *h = &c->latest;
        completed = json_pack(
            "{s:I,s:s,s:I,s:I,s:I,s:I,s:I}", "id", (json_int_t)h->id, "path", c->latest_path,
            "trigger_timestamp", (json_int_t)h->trigger_ms, "duration_ms",
            (json_int_t)h->duration_ms, "state_size", (json_int_t)h->state_size, "uploaded_size",
            (json_int_t)h->uploaded_size, "alignment_duration_ms", (json_int_t)h->alignment_ms);
    }
    if (c->have_restored)
        restored = json_pack(
            "{s:I,s:s,s:I,s:b}", "id", (json_int_t)c->restored_id, "path", c->restored_path,
            "restore_timestamp", (json_int_t)c->restored_ms, "is_savepoint",
            !job->ckdir || strncmp(c->restored_path, job->ckdir, strlen(job->ckdir)) != 0);
    json_t *hist = json_array();
    for (uint32_t i = 0; i < c->hist_len; i++)
        json_array_append_new(hist, hist_json(weir_ckpt_coord_hist(c, i)));
    return json_pack("{s:{s:I,s:I,s:I,s:I,s:I},s:{s:o,s:o},s:o}", "counts", "triggered",
                     (json_int_t)c->n_triggered, "in_progress", (json_int_t)(c->pending_id ? 1 : 0),
                     "completed", (json_int_t)c->n_completed, "failed", (json_int_t)c->n_failed,
                     "restored", (json_int_t)c->n_restored, "latest", "completed", completed,
                     "restored", restored, "history", hist);
}

static enum MHD_Result post_blob(weir_jobmanager_t *jm, struct MHD_Connection *c, rest_req_t *r) {
    char msg[256];
    if (r->len == 0)
        return reply_error(c, MHD_HTTP_BAD_REQUEST, "empty blob: send the plugin bytes as body");
    char sha[65];
    int rc = weir_blobstore_put(jm->blobs, r->buf, r->len, sha);
    if (rc == WEIR_ENOSPACE) {
        weir_fmt(msg, sizeof msg, "blob too large: at most %zu bytes", WEIR_BLOB_MAX_BYTES);
        return reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE, msg);
    }
    if (rc != 0) {
        weir_fmt(msg, sizeof msg, "cannot store the blob in %s (see the job manager's log)",
                 weir_blobstore_dir(jm->blobs));
        return reply_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, msg);
    }
    WEIR_INFO(COMP, "stored blob %s (%zu bytes)", sha, r->len);
    return reply(c, MHD_HTTP_OK, json_pack("{s:s}", "sha256", sha));
}

/* Parses a POST /jobs body {"plugin", "args"?, "parallelism"?, "graph", "savepointPath"?,
 * "allowNonRestoredState"?, "jobId"?} into a CREATED job: the body's shape is checked here, in
 * this order, the plugin blob and the graph by jobs.c. @returns
 * NULL with a one-line message (for a 400) in errstr. Called without jm->mu. */
static weir_jm_job_t *job_from_request(weir_jobmanager_t *jm, const json_t *req, char *errstr,
                                       size_t errlen) {
    if (!json_is_object(req)) {
        weir_fmt(errstr, errlen, "request body must be a JSON object with plugin, args, graph");
        return NULL;
    }
    const char *sha = NULL; /* stays NULL when missing or not a string: refused by the check */
    weir_json_str(req, "request body", "plugin", true, &sha, NULL, 0);
    if (weir__jm_job_check_plugin(jm, sha, errstr, errlen) != 0)
        return NULL;
    /* "args": null is refused (not read as absent), hence no optional reader here */
    const json_t *args = json_object_get(req, "args");
    if (args && !json_is_array(args)) {
        weir_fmt(errstr, errlen, "\"args\" must be an array of strings");
        return NULL;
    }
    int64_t parallelism;
    if (weir_json_int(req, "request body", "parallelism", false, 1, INT64_MAX, 1, &parallelism,
                      NULL, 0) != 0) {
        weir_fmt(errstr, errlen, "\"parallelism\" must be an integer >= 1");
        return NULL;
    }
    const json_t *graph = json_object_get(req, "graph");
    if (!json_is_object(graph)) {
        weir_fmt(errstr, errlen, "\"graph\" must be the job graph object (see `weir info`)");
        return NULL;
    }
    size_t n_args = json_array_size(args);
    const char **argv = calloc(n_args ? n_args : 1, sizeof *argv);
    if (!argv) {
        weir_fmt(errstr, errlen, "job manager out of memory");
        return NULL;
    }
    for (size_t i = 0; i < n_args; i++) {
        argv[i] = json_string_value(json_array_get(args, i));
        if (!argv[i]) {
            weir_fmt(errstr, errlen, "\"args\" must be an array of strings (element %zu is not)",
                     i);
            free(argv);
            return NULL;
        }
    }
    const char *sp_path = NULL, *job_id = NULL;
    bool allow = false;
    if (weir_json_str(req, "request body", "savepointPath", false, &sp_path, errstr, errlen) != 0 ||
        weir_json_bool(req, "request body", "allowNonRestoredState", false, false, &allow, errstr,
                       errlen) != 0) {
        free(argv);
        return NULL;
    }
    if (json_object_get(req, "jobId") &&
        (weir_json_str(req, "request body", "jobId", false, &job_id, NULL, 0) != 0 ||
         !weir_ha_valid_job_id(job_id))) {
        weir_fmt(errstr, errlen, "\"jobId\" must be a job id: 32 lowercase hex digits");
        free(argv);
        return NULL;
    }
    weir_jm_job_t *job = weir__jm_job_new(jm, sha, argv, (uint32_t)n_args, graph, errstr, errlen);
    free(argv);
    if (job && job_id)
        weir__jm_job_set_id(jm, job, job_id);
    if (job && sp_path && weir__jm_job_set_restore(jm, job, sp_path, allow, errstr, errlen) != 0) {
        weir__jm_job_free(job);
        return NULL;
    }
    return job;
}

static enum MHD_Result post_job(weir_jobmanager_t *jm, struct MHD_Connection *c, rest_req_t *r) {
    json_error_t jerr;
    json_t *req = json_loadb(r->buf ? r->buf : "", r->len, 0, &jerr);
    char msg[1024];
    if (!req) {
        weir_fmt(msg, sizeof msg, "request body is not JSON: %s", weir_json_error_text(&jerr));
        return reply_error(c, MHD_HTTP_BAD_REQUEST, msg);
    }
    weir_jm_job_t *job = job_from_request(jm, req, msg, sizeof msg);
    json_decref(req);
    if (!job)
        return reply_error(c, MHD_HTTP_BAD_REQUEST, msg);
    /* One REST thread serves every request: no other POST /jobs can add this id before ours. */
    pthread_mutex_lock(&jm->mu);
    bool exists = weir__jm_find_job_locked(jm, job->id) != NULL;
    pthread_mutex_unlock(&jm->mu);
    if (exists) {
        weir_fmt(msg, sizeof msg, "job %s already exists", job->id);
        weir__jm_job_free(job);
        return reply_error(c, MHD_HTTP_CONFLICT, msg);
    }
    if (weir__jm_ha_save_new_job(jm, job, msg, sizeof msg) != 0) {
        WEIR_ERROR(COMP, "%s", msg);
        weir__jm_job_free(job);
        return reply_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, msg);
    }
    char id[33];
    memcpy(id, job->id, sizeof id);
    pthread_mutex_lock(&jm->mu);
    int rc = weir__jm_add_job_locked(jm, job);
    if (rc == 0)
        WEIR_INFO(COMP, "job %s (%s) submitted: %u vertices, needs %u slots", job->id, job->name,
                  job->n_vertices, job->slots_needed);
    pthread_mutex_unlock(&jm->mu);
    if (rc != 0) {
        weir__jm_job_free(job);
        return reply_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "job manager out of memory");
    }
    weir__jm_wake(jm);
    return reply(c, MHD_HTTP_OK, json_pack("{s:s}", "jobid", id));
}

static enum MHD_Result list_jobs(weir_jobmanager_t *jm, struct MHD_Connection *c) {
    json_t *arr = json_array();
    pthread_mutex_lock(&jm->mu);
    for (size_t i = 0; i < jm->n_jobs; i++)
        json_array_append_new(arr, job_summary(jm->jobs[i]));
    pthread_mutex_unlock(&jm->mu);
    return reply(c, MHD_HTTP_OK, json_pack("{s:o}", "jobs", arr));
}

static enum MHD_Result get_job(weir_jobmanager_t *jm, struct MHD_Connection *c, const char *id,
                               bool checkpoints) {
    pthread_mutex_lock(&jm->mu);
    weir_jm_job_t *job = weir__jm_find_job_locked(jm, id);
    json_t *body = job ? (checkpoints ? job_checkpoints(job) : job_detail(job)) : NULL;
    pthread_mutex_unlock(&jm->mu);
    if (!job) {
        char msg[256];
        weir_fmt(msg, sizeof msg, "no such job: %.64s", id);
        return reply_error(c, MHD_HTTP_NOT_FOUND, msg);
    }
    return reply(c, MHD_HTTP_OK, body);
}

static enum MHD_Result cancel_job(weir_jobmanager_t *jm, struct MHD_Connection *c, const char *id) {
    char msg[256];
    pthread_mutex_lock(&jm->mu);
    weir_jm_job_t *job = weir__jm_find_job_locked(jm, id);
    int rc = WEIR_ENOTFOUND;
    const char *state = NULL;
    if (job) {
        rc = weir__jm_cancel_job_locked(jm, job, msg, sizeof msg);
        state = weir__jm_job_state_name(job->state);
    }
    pthread_mutex_unlock(&jm->mu);
    if (rc == WEIR_ENOTFOUND) {
        weir_fmt(msg, sizeof msg, "no such job: %.64s", id);
        return reply_error(c, MHD_HTTP_NOT_FOUND, msg);
    }
    if (rc != 0)
        return reply_error(c, MHD_HTTP_CONFLICT, msg);
    return reply(c, MHD_HTTP_ACCEPTED, json_pack("{s:s,s:s}", "jobid", id, "state", state));
}

/* POST /jobs/{id}/savepoints {"target-directory", "cancel-job"} and POST /jobs/{id}/stop
 * {"targetDirectory", "drain"} (Flink's bodies): 202 {"request-id"}. */
static enum MHD_Result post_savepoint(weir_jobmanager_t *jm, struct MHD_Connection *c,
                                      const char *id, rest_req_t *r, bool stop) {
    char msg[1024];
    json_error_t jerr;
    json_t *req = r->len ? json_loadb(r->buf, r->len, 0, &jerr) : json_object();
    if (!req) {
        weir_fmt(msg, sizeof msg, "request body is not JSON: %s", weir_json_error_text(&jerr));
        return reply_error(c, MHD_HTTP_BAD_REQUEST, msg);
    }
    const char *target = NULL;
    bool flag = false;
    int brc = !json_is_object(req)
                  ? weir_errf(msg, sizeof msg, WEIR_EINVAL, "request body must be a JSON object")
              : stop ? weir_json_str(req, "request body", "targetDirectory", false, &target, msg,
                                     sizeof msg)
                     : weir_json_str(req, "request body", "target-directory", false, &target, msg,
                                     sizeof msg);
    if (brc == 0)
        brc = weir_json_bool(req, "request body", stop ? "drain" : "cancel-job", false, false,
                             &flag, msg, sizeof msg);
    if (brc == 0 && stop && flag)
        brc = weir_errf(msg, sizeof msg, WEIR_EINVAL,
                        "\"drain\": true is not supported: weir stops without draining (sources "
                        "stop at the savepoint)");
    if (brc != 0) {
        json_decref(req);
        return reply_error(c, MHD_HTTP_BAD_REQUEST, msg);
    }
    char rid[33];
    pthread_mutex_lock(&jm->mu);
    weir_jm_job_t *job = weir__jm_find_job_locked(jm, id);
    int rc = job ? weir__jm_sp_request_locked(jm, job, stop ? WEIR_CK_STOP : WEIR_CK_SAVEPOINT,
                                              target, !stop && flag, rid, msg, sizeof msg)
                 : WEIR_ENOTFOUND;
    pthread_mutex_unlock(&jm->mu);
    json_decref(req);
    if (rc == WEIR_ENOTFOUND) {
        weir_fmt(msg, sizeof msg, "no such job: %.64s", id);
        return reply_error(c, MHD_HTTP_NOT_FOUND, msg);
    }
    if (rc != 0)
        return reply_error(c,
                           rc == WEIR_ECONFLICT ? MHD_HTTP_CONFLICT
                           : rc == WEIR_EINVAL  ? MHD_HTTP_BAD_REQUEST
                                                : MHD_HTTP_INTERNAL_SERVER_ERROR,
                           msg);
    weir__jm_wake(jm);
    return reply(c, MHD_HTTP_ACCEPTED, json_pack("{s:s}", "request-id", rid));
}

/* GET /jobs/{id}/savepoints/{request-id} */
static enum MHD_Result get_savepoint(weir_jobmanager_t *jm, struct MHD_Connection *c,
                                     const char *id, const char *rid) {
    char msg[256];
    pthread_mutex_lock(&jm->mu);
    weir_jm_job_t *job = weir__jm_find_job_locked(jm, id);
    json_t *body = job ? weir__jm_sp_status_json_locked(job, rid) : NULL;
    pthread_mutex_unlock(&jm->mu);
    if (!body) {
        if (job)
            weir_fmt(msg, sizeof msg, "no savepoint request %.64s for job %.64s", rid, id);
        else
            weir_fmt(msg, sizeof msg, "no such job: %.64s", id);
        return reply_error(c, MHD_HTTP_NOT_FOUND, msg);
    }
    return reply(c, MHD_HTTP_OK, body);
}

static enum MHD_Result list_tms(weir_jobmanager_t *jm, struct MHD_Connection *c) {
    json_t *arr = json_array();
    int64_t now = weir_now_ns();
    pthread_mutex_lock(&jm->mu);
    for (size_t i = 0; i < jm->n_tms; i++) {
        const weir_jm_tm_t *tm = jm->tms[i];
        json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:i,s:i,s:I,s:I}", "id", tm->id,
                                             "address", tm->host, "data_address", tm->data_address,
                                             "slots_total", (int)tm->slots_total, "slots_free",
                                             (int)tm->slots_free, "last_heartbeat_ms_ago",
                                             (json_int_t)((now - tm->last_seen_ns) / 1000000),
                                             "pid", (json_int_t)tm->pid));
    }
    pthread_mutex_unlock(&jm->mu);
    return reply(c, MHD_HTTP_OK, json_pack("{s:o}", "taskmanagers", arr));
}

/* GET /metrics: the Prometheus text exposition (prom.c). */
static enum MHD_Result get_metrics(weir_jobmanager_t *jm, struct MHD_Connection *c) {
    char *text = NULL;
    size_t len = 0;
    if (weir__jm_prom_render(jm, &text, &len) != 0)
        return reply_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "job manager out of memory");
    enum MHD_Result rc =
        reply_text(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
    return rc;
}

/* GET /taskmanagers/{id}/log[?bytes=N]: the first call suspends the connection and asks the task
 * manager (rest_log.c); the call after the resume answers the tail (200 text/plain) or 504. */
static enum MHD_Result get_tm_log(weir_jobmanager_t *jm, struct MHD_Connection *c,
                                  const char *tm_id, rest_req_t *r) {
    char msg[512];
    if (r->log) {
        const uint8_t *data;
        size_t len;
        switch (weir__jm_log_result(jm, r->log, &data, &len)) {
        case WEIR_JM_LOG_ANSWERED:
            return reply_text(c, MHD_HTTP_OK, "text/plain; charset=utf-8", data, len);
        case WEIR_JM_LOG_GONE:
            weir_fmt(msg, sizeof msg, "task manager %.200s left before it sent its log", tm_id);
            return reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, msg);
        default:
            weir_fmt(msg, sizeof msg,
                     "task manager %.200s did not send its log within %d ms (is it frozen or "
                     "overloaded?)",
                     tm_id, WEIR_JM_LOG_TIMEOUT_MS);
            return reply_error(c, MHD_HTTP_GATEWAY_TIMEOUT, msg);
        }
    }
    int64_t max_bytes = WEIR_JM_LOG_DEFAULT_BYTES;
    const char *b = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "bytes");
    if (b && weir_parse_int(b, 1, WEIR_JM_LOG_MAX_BYTES, &max_bytes) != 0) {
        weir_fmt(msg, sizeof msg, "bad value '%.64s' for bytes: an integer from 1 to %d", b,
                 WEIR_JM_LOG_MAX_BYTES);
        return reply_error(c, MHD_HTTP_BAD_REQUEST, msg);
    }
    bool oom = false;
    r->log = weir__jm_log_begin(jm, tm_id, (uint32_t)max_bytes, c, &oom);
    if (!r->log) {
        if (oom)
            return reply_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "job manager out of memory");
        weir_fmt(msg, sizeof msg, "no such task manager: %.200s", tm_id);
        return reply_error(c, MHD_HTTP_NOT_FOUND, msg);
    }
    /* The main thread resumes the connection only once it is marked suspended here. */
    MHD_suspend_connection(c);
    weir__jm_log_suspended(jm, r->log);
    return MHD_YES;
}

static enum MHD_Result route(weir_jobmanager_t *jm, struct MHD_Connection *c, const char *url,
                             const char *method, rest_req_t *r) {
    bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    if (get && !strcmp(url, "/healthz"))
        return reply(c, MHD_HTTP_OK, json_pack("{s:s}", "status", "ok"));
    const weir_jm_web_asset_t *asset = get ? weir__jm_web_find(url) : NULL;
    if (asset)
        return weir__jm_web_reply(c, asset);
    if (post && !strcmp(url, "/blobs"))
        return post_blob(jm, c, r);
    if (!strcmp(url, "/jobs") || !strcmp(url, "/jobs/")) {
        if (post)
            return post_job(jm, c, r);
        if (get)
            return list_jobs(jm, c);
    }
    if (get && !strcmp(url, "/taskmanagers"))
        return list_tms(jm, c);
    if (get && !strcmp(url, "/metrics"))
        return get_metrics(jm, c);
    if (get && !strncmp(url, "/taskmanagers/", 14)) {
        const char *id = url + 14;
        size_t n = strlen(id);
        if (n > 4 && !strcmp(id + n - 4, "/log") && !memchr(id, '/', n - 4)) {
            char idbuf[256];
            if (n - 4 < sizeof idbuf) {
                memcpy(idbuf, id, n - 4);
                idbuf[n - 4] = 0;
                return get_tm_log(jm, c, idbuf, r);
            }
        }
    }
    if (get) {
        json_t *body = NULL;
        unsigned st = weir__jm_flink_get(jm, url, &body);
        if (st)
            return reply(c, st, body);
    }
    if (!strncmp(url, "/jobs/", 6)) {
        const char *id = url + 6;
        const char *slash = strchr(id, '/');
        size_t idlen = slash ? (size_t)(slash - id) : strlen(id);
        char idbuf[80];
        if (idlen > 0 && idlen < sizeof idbuf) {
            memcpy(idbuf, id, idlen);
            idbuf[idlen] = 0;
            if (!slash && get)
                return get_job(jm, c, idbuf, false);
            if (slash && get && !strcmp(slash, "/checkpoints"))
                return get_job(jm, c, idbuf, true);
            if (!slash && !strcmp(method, "PATCH"))
                return cancel_job(jm, c, idbuf);
            if (slash && post && !strcmp(slash, "/cancel"))
                return cancel_job(jm, c, idbuf);
            if (slash && post && !strcmp(slash, "/savepoints"))
                return post_savepoint(jm, c, idbuf, r, false);
            if (slash && post && !strcmp(slash, "/stop"))
                return post_savepoint(jm, c, idbuf, r, true);
            if (slash && get && !strncmp(slash, "/savepoints/", 12))
                return get_savepoint(jm, c, idbuf, slash + 12);
        }
    }
    char msg[512];
    weir_fmt(msg, sizeof msg, "no such endpoint: %.16s %.400s", method, url);
    return reply_error(c, MHD_HTTP_NOT_FOUND, msg);
}

/* Whether the request carries "Authorization: Bearer <token>" with the configured token
 * (weir_prom_bearer_check: digests compared in constant time). Sets r->bad_token when a bearer
 * token was sent but is wrong. */
static bool authorized(const weir_rest_config_t *rc, struct MHD_Connection *c, rest_req_t *r) {
    int ok = weir_prom_bearer_check(
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION),
        rc->token_sha256);
    r->bad_token = ok == 0;
    return ok == 1;
}

/* The answer to a request that did not pass: 401 (no valid token) before 413 (too large). */
static enum MHD_Result reply_refused(weir_jobmanager_t *jm, struct MHD_Connection *c,
                                     const rest_req_t *r) {
    char msg[256];
    if (r->unauthorized) {
        if (r->bad_token)
            return reply_hdr(c, MHD_HTTP_UNAUTHORIZED,
                             json_pack("{s:s}", "error",
                                       "invalid bearer token: it does not match the job "
                                       "manager's rest.auth.token"),
                             MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                             "Bearer realm=\"weir\", error=\"invalid_token\"");
        return reply_hdr(c, MHD_HTTP_UNAUTHORIZED,
                         json_pack("{s:s}", "error",
                                   "authentication required: send Authorization: Bearer "
                                   "<token> with the job manager's rest.auth.token"),
                         MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"weir\"");
    }
    if (r->blob)
        weir_fmt(msg, sizeof msg, "blob too large: at most %zu bytes", WEIR_BLOB_MAX_BYTES);
    else
        weir_fmt(msg, sizeof msg,
                 "request body too large: at most %zu bytes (rest.max-request-size)",
                 jm->rest_cfg.max_request);
    return reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE, msg);
}

/* The first call for a request (headers read, no body yet): its body limit, whether it is
 * authorized, and whether Content-Length already exceeds the limit. */
static rest_req_t *begin_request(weir_jobmanager_t *jm, struct MHD_Connection *c, const char *url,
                                 const char *method) {
    rest_req_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    r->blob = post && !strcmp(url, "/blobs");
    r->limit = r->blob ? WEIR_BLOB_MAX_BYTES : jm->rest_cfg.max_request;
    if (jm->rest_cfg.auth && !(get && (!strcmp(url, "/healthz") || weir__jm_web_find(url))))
        r->unauthorized = !authorized(&jm->rest_cfg, c, r);
    const char *cl =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end = NULL;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (errno == 0 && end != cl && *end == '\0' && n > r->limit)
            r->too_large = true;
    }
    return r;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
    (void)version;
    weir_jobmanager_t *jm = cls;
    rest_req_t *r = *con_cls;
    if (!r) {
        r = begin_request(jm, c, url, method);
        if (!r)
            return MHD_NO;
        *con_cls = r;
        /* A client that waits for "100 Continue" before sending its body gets the refusal
         * instead, and never sends the body (libmicrohttpd then closes the connection). */
        const char *expect =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
        if ((r->unauthorized || r->too_large) && expect && !strcasecmp(expect, "100-continue"))
            return reply_refused(jm, c, r);
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (r->unauthorized || r->too_large)
            return MHD_YES; /* dropped */
        if (n > r->limit - r->len) {
            r->too_large = true;
            free(r->buf);
            r->buf = NULL;
            r->len = r->cap = 0;
            return MHD_YES;
        }
        if (r->len + n > r->cap) {
            size_t cap = r->cap ? r->cap : 64 * 1024;
            while (cap < r->len + n)
                cap *= 2;
            char *buf = realloc(r->buf, cap);
            if (!buf)
                return MHD_NO;
            r->buf = buf;
            r->cap = cap;
        }
        memcpy(r->buf + r->len, upload_data, n);
        r->len += n;
        return MHD_YES;
    }
    if (r->unauthorized || r->too_large)
        return reply_refused(jm, c, r);
    return route(jm, c, url, method, r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)c;
    (void)toe;
    rest_req_t *r = *con_cls;
    if (r) {
        weir__jm_log_finish(cls, r->log);
        free(r->buf);
        free(r);
        *con_cls = NULL;
    }
}

/* ---- settings ------------------------------------------------------------------------------ */

/* Never prompts for a pass phrase: an encrypted key is refused. */
static int no_passphrase(char *buf, int size, int rwflag, void *u) {
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

/* Reads the PEM file named by @p key into *out (NUL-terminated). */
static int read_pem(const weir_config_t *cfg, const char *key, char **out, char *errstr,
                    size_t errlen) {
    const char *path = weir_config_get_str(cfg, key);
    if (!path || !*path)
        return weir_errf(errstr, errlen, WEIR_ECONFIG,
                         "rest.ssl.enabled is true but %s is not set: set it to a PEM file", key);
    uint8_t *data = NULL;
    size_t len = 0;
    if (weir_read_file(path, &data, &len) != 0)
        return weir_errf(errstr, errlen, WEIR_ECONFIG, "cannot read %s %s: %s", key, path,
                         strerror(errno));
    *out = (char *)data;
    return 0;
}

/* Checks that the certificate and key parse and belong together, so a mistake is one line
 * naming the key instead of a TLS handshake failure later. */
static int check_tls_pair(const weir_config_t *cfg, const char *cert_pem, const char *key_pem,
                          char *errstr, size_t errlen) {
    const char *cert_path = weir_config_get_str(cfg, "rest.ssl.certificate");
    const char *key_path = weir_config_get_str(cfg, "rest.ssl.key");
    int rc = 0;
    BIO *cb = BIO_new_mem_buf(cert_pem, -1), *kb = BIO_new_mem_buf(key_pem, -1);
    X509 *x = cb ? PEM_read_bio_X509(cb, NULL, no_passphrase, NULL) : NULL;
    EVP_PKEY *k = x && kb ? PEM_read_bio_PrivateKey(kb, NULL, no_passphrase, NULL) : NULL;
    if (!cb || !kb)
        rc = weir_errf(errstr, errlen, WEIR_ENOMEM, "job manager: out of memory");
    else if (!x)
        rc = weir_errf(errstr, errlen, WEIR_ECONFIG,
                       "rest.ssl.certificate %s is not a PEM certificate (-----BEGIN "
                       "CERTIFICATE-----)",
                       cert_path);
    else if (!k)
        rc = weir_errf(errstr, errlen, WEIR_ECONFIG,
                       "rest.ssl.key %s is not an unencrypted PEM private key", key_path);
    else if (X509_check_private_key(x, k) != 1)
        rc = weir_errf(errstr, errlen, WEIR_ECONFIG,
                       "rest.ssl.key %s is not the key of rest.ssl.certificate %s", key_path,
                       cert_path);
    ERR_clear_error();
    EVP_PKEY_free(k);
    X509_free(x);
    BIO_free(kb);
    BIO_free(cb);
    return rc;
}

int weir_rest_config_load(const weir_config_t *cfg, weir_rest_config_t *out, char *errstr,
                          size_t errlen) {
    memset(out, 0, sizeof *out);
    char *token = NULL;
    int rc = weir_config_rest_token(cfg, &token, errstr, errlen);
    if (rc != 0)
        return rc;
    if (token) {
        out->auth = true;
        out->token_len = strlen(token);
        weir_sha256_hex(token, out->token_len, out->token_sha256);
        OPENSSL_cleanse(token, out->token_len);
        free(token);
    }
    uint64_t max_request = weir_config_get_bytes(cfg, "rest.max-request-size");
    if (max_request < 1024 || max_request > WEIR_BLOB_MAX_BYTES)
        return weir_errf(errstr, errlen, WEIR_ECONFIG,
                         "bad value '%s' for rest.max-request-size (a size from 1kb to 256mb)",
                         weir_config_get_str(cfg, "rest.max-request-size"));
    out->max_request = (size_t)max_request;
    out->max_connections = (unsigned)weir_config_get_int(cfg, "rest.max-connections");
    int64_t idle_ms = weir_config_get_ms(cfg, "rest.idleness-timeout");
    if (idle_ms < 1000 || idle_ms > 86400000)
        return weir_errf(errstr, errlen, WEIR_ECONFIG,
                         "bad value '%s' for rest.idleness-timeout (a duration from 1s to 1d)",
                         weir_config_get_str(cfg, "rest.idleness-timeout"));
    out->idle_timeout_s = (unsigned)((idle_ms + 999) / 1000);
    if (!weir_config_get_bool(cfg, "rest.ssl.enabled"))
        return 0;
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
        return weir_errf(errstr, errlen, WEIR_ECONFIG,
                         "rest.ssl.enabled is true but this libmicrohttpd has no TLS support "
                         "(install one built with GnuTLS)");
    if ((rc = read_pem(cfg, "rest.ssl.certificate", &out->cert_pem, errstr, errlen)) != 0 ||
        (rc = read_pem(cfg, "rest.ssl.key", &out->key_pem, errstr, errlen)) != 0 ||
        (rc = check_tls_pair(cfg, out->cert_pem, out->key_pem, errstr, errlen)) != 0) {
        weir_rest_config_clear(out);
        return rc;
    }
    return 0;
}

void weir_rest_config_clear(weir_rest_config_t *rc) {
    if (rc->key_pem)
        OPENSSL_cleanse(rc->key_pem, strlen(rc->key_pem));
    free(rc->key_pem);
    free(rc->cert_pem);
    memset(rc, 0, sizeof *rc);
}

/* ---- server -------------------------------------------------------------------------------- */

int weir__jm_rest_start(weir_jobmanager_t *jm, char *errstr, size_t errlen) {
    const weir_rest_config_t *rc = &jm->rest_cfg;
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char port[16];
    weir_fmt(port, sizeof port, "%d", jm->rest_port);
    int gai = getaddrinfo(jm->rest_bind, port, &hints, &res);
    if (gai != 0 || !res) {
        weir_fmt(errstr, errlen, "REST: cannot resolve rest.bind-address '%s': %s", jm->rest_bind,
                 gai_strerror(gai));
        return WEIR_ECONFIG;
    }
    /* suspend/resume: a log request waits for its task manager without blocking the thread */
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
    if (res->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (rc->cert_pem)
        flags |= MHD_USE_TLS;
    struct MHD_OptionItem tls[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, rc->cert_pem},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, rc->key_pem},
        {MHD_OPTION_END, 0, NULL},
    };
    jm->mhd = MHD_start_daemon(flags, (uint16_t)jm->rest_port, NULL, NULL, on_request, jm,
                               MHD_OPTION_SOCK_ADDR, res->ai_addr, MHD_OPTION_NOTIFY_COMPLETED,
                               on_completed, jm, MHD_OPTION_CONNECTION_TIMEOUT, rc->idle_timeout_s,
                               MHD_OPTION_CONNECTION_LIMIT, rc->max_connections, MHD_OPTION_ARRAY,
                               rc->cert_pem ? tls : &tls[2], MHD_OPTION_END);
    freeaddrinfo(res);
    if (!jm->mhd) {
        weir_fmt(errstr, errlen,
                 "REST: cannot listen on %s:%d (port in use? set rest.port or rest.bind-address)",
                 jm->rest_bind, jm->rest_port);
        return WEIR_ENET;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(jm->mhd, MHD_DAEMON_INFO_BIND_PORT);
    if (info && info->port)
        jm->rest_port = info->port;
    WEIR_INFO(COMP, "REST at %s://%s:%d: %s, at most %u connections, JSON bodies up to %zu bytes",
              rc->cert_pem ? "https" : "http", jm->rest_bind, jm->rest_port,
              rc->auth ? "bearer token required" : "no authentication", rc->max_connections,
              rc->max_request);
    if (rc->auth && rc->token_len < WEIR_REST_TOKEN_MIN_LEN)
        WEIR_WARN(COMP,
                  "rest.auth.token is %zu characters long: use a random one of at least %d (e.g. "
                  "`openssl rand -hex 32`)",
                  rc->token_len, WEIR_REST_TOKEN_MIN_LEN);
    if (rc->auth && !rc->cert_pem && !weir_config_host_is_loopback(jm->rest_bind))
        WEIR_WARN(COMP,
                  "REST at %s without rest.ssl.enabled: the bearer token crosses the network in "
                  "clear text",
                  jm->rest_bind);
    return 0;
}

void weir__jm_rest_stop(weir_jobmanager_t *jm) {
    if (jm->mhd) {
        weir__jm_log_resume(jm, true); /* no connection stays suspended */
        MHD_stop_daemon(jm->mhd);
        jm->mhd = NULL;
    }
}
