/* Tests the job manager end to end in one process: the REST API over a real TCP socket (raw
 * HTTP/1.0, no client library) and the control plane with fake task managers (mock_tm.h: ZeroMQ
 * DEALERs speaking common/proto.h). Covers validation errors, registration, slot spreading and
 * placement in DEPLOY messages, job FINISHED / FAILED / CANCELED, heartbeat loss, the slot
 * request timeout, UNKNOWN for unregistered heartbeats and BLOB requests; the REST server's bearer
 * token, body limits and the checks of its settings (weir_rest_config_load); and attempt fencing
 * of slots: a subtask a live task manager did not confirm stopped keeps its slot taken there, a
 * lost task manager that comes back does not disturb the running attempt, and a task manager
 * running a task the job manager did not deploy on it is told to cancel it; the Flink-shaped views
 * (docs/rest.md), GET /metrics, the exception history and the log proxy (LOG_REQUEST/LOG, 404,
 * 400, 504). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>

#include <cmocka.h>

#include "common/config.h"
#include "common/err.h"
#include "common/prom.h"
#include "common/proto.h"
#include "common/util.h"
#include "jobmanager/jobmanager.h"
#include "jobmanager/jobmanager_int.h"
#include "mock_tm.h"
#include "testutil.h"

/* source(p=2) -> map(p=2) forward -> keyed process "count"(p=1) hash -> blackhole sink(p=1)
 * forward: vertices "src -> m" (p 2) and "count -> sink" (p 1, keyed); the job needs 2 slots. */
static const char *GRAPH =
    "{\"name\":\"testjob\",\"default_parallelism\":1,\"nodes\":["
    "{\"id\":0,\"kind\":\"source_generator\",\"name\":\"src\",\"uid\":\"src\",\"parallelism\":2,"
    "\"input\":-1},"
    "{\"id\":1,\"kind\":\"map\",\"name\":\"m\",\"parallelism\":2,\"input\":0,"
    "\"partitioning\":\"forward\"},"
    "{\"id\":2,\"kind\":\"process\",\"name\":\"count\",\"uid\":\"count\",\"parallelism\":1,"
    "\"input\":1,\"partitioning\":\"hash\",\"states\":[{\"name\":\"n\",\"type\":\"value\"}]},"
    "{\"id\":3,\"kind\":\"sink_blackhole\",\"name\":\"sink\",\"parallelism\":1,\"input\":2,"
    "\"partitioning\":\"forward\"}]}";

typedef struct fx {
    char *dir;
    weir_jobmanager_t *jm;
    pthread_t thread;
    void *zctx;
} fx_t;

static void *run_thread(void *arg) {
    weir_jobmanager_run(arg, -1);
    return NULL;
}

/* @p extra: NULL or NULL-terminated key, value pairs set last. */
static int start(void **state, const char *hb_timeout, const char *slot_timeout, bool ckpt,
                 const char *const *extra) {
    fx_t *f = calloc(1, sizeof *f);
    f->dir = weir_test_tmpdir("jmrest");
    char blobs[600], err[512];
    snprintf(blobs, sizeof blobs, "%s/blobs", f->dir);
    weir_config_t *cfg = weir_config_new();
    int rc = weir_config_set(cfg, "rest.port", "0", err, sizeof err) ||
             weir_config_set(cfg, "jobmanager.rpc.port", "0", err, sizeof err) ||
             weir_config_set(cfg, "rest.bind-address", "127.0.0.1", err, sizeof err) ||
             weir_config_set(cfg, "jobmanager.bind-host", "127.0.0.1", err, sizeof err) ||
             weir_config_set(cfg, "blob.storage.directory", blobs, err, sizeof err) ||
             weir_config_set(cfg, "heartbeat.interval", "100ms", err, sizeof err) ||
             weir_config_set(cfg, "heartbeat.timeout", hb_timeout, err, sizeof err) ||
             weir_config_set(cfg, "slot.request.timeout", slot_timeout, err, sizeof err);
    if (ckpt && !rc) {
        char ck[600], ha[600];
        snprintf(ck, sizeof ck, "%s/ck", f->dir);
        snprintf(ha, sizeof ha, "%s/ha", f->dir);
        rc = weir_config_set(cfg, "execution.checkpointing.interval", "100ms", err, sizeof err) ||
             weir_config_set(cfg, "state.checkpoints.dir", ck, err, sizeof err) ||
             weir_config_set(cfg, "high-availability.storageDir", ha, err, sizeof err) ||
             weir_config_set(cfg, "restart-strategy.type", "fixed-delay", err, sizeof err) ||
             weir_config_set(cfg, "restart-strategy.fixed-delay.attempts", "1", err, sizeof err) ||
             weir_config_set(cfg, "restart-strategy.fixed-delay.delay", "100ms", err, sizeof err);
    }
    for (size_t i = 0; extra && extra[i] && !rc; i += 2)
        rc = weir_config_set(cfg, extra[i], extra[i + 1], err, sizeof err);
    if (rc) {
        fprintf(stderr, "config: %s\n", err);
        return -1;
    }
    f->jm = weir_jobmanager_new(cfg, err, sizeof err);
    weir_config_destroy(&cfg);
    if (!f->jm) {
        fprintf(stderr, "jobmanager: %s\n", err);
        return -1;
    }
    pthread_create(&f->thread, NULL, run_thread, f->jm);
    f->zctx = zmq_ctx_new();
    *state = f;
    return 0;
}

#define TOKEN "Zm9vYmFyLXRva2VuLWZvci10ZXN0cw"

static int setup(void **state) {
    return start(state, "10s", "5min", false, NULL);
}
static int setup_short_hb(void **state) {
    return start(state, "400ms", "5min", false, NULL);
}
static int setup_short_slots(void **state) {
    return start(state, "10s", "300ms", false, NULL);
}
static int setup_ckpt(void **state) {
    return start(state, "10s", "5min", true, NULL);
}
static int setup_savepoints(void **state) {
    static const char *const extra[] = {"execution.checkpointing.interval", "1h",
                                        "restart-strategy.fixed-delay.attempts", "5", NULL};
    return start(state, "10s", "5min", true, extra); /* no periodic checkpoint interferes */
}
static int setup_auth(void **state) {
    static const char *const extra[] = {"rest.auth.token", TOKEN, "rest.max-request-size", "4kb",
                                        NULL};
    return start(state, "10s", "5min", false, extra);
}

static int teardown(void **state) {
    fx_t *f = *state;
    weir_jobmanager_stop(f->jm);
    pthread_join(f->thread, NULL);
    weir_jobmanager_destroy(&f->jm);
    zmq_ctx_term(f->zctx);
    weir_test_tmpdir_remove(f->dir);
    free(f);
    return 0;
}

/* ------------------------------------------------------------ raw HTTP client */

/* Sends one request with the header lines @p headers (each ending in \r\n; NULL: none); returns
 * the status and the whole answer (headers and body, malloc'd) in *answer. */
static int http_raw(fx_t *f, const char *method, const char *path, const char *headers,
                    const void *body, size_t len, char **answer) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->jm->rest_port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    char head[1024];
    int n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.0\r\nHost: localhost\r\n%sContent-Length: %zu\r\n\r\n", method,
                     path, headers ? headers : "", len);
    assert_int_equal(write(fd, head, (size_t)n), n);
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, (const char *)body + off, len - off);
        assert_true(w > 0);
        off += (size_t)w;
    }
    size_t cap = 1 << 16, got = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (got + 1 >= cap)
            buf = realloc(buf, cap *= 2);
        ssize_t r = read(fd, buf + got, cap - got - 1);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    buf[got] = 0;
    close(fd);
    int status = 0;
    assert_int_equal(sscanf(buf, "HTTP/1.%*d %d", &status), 1);
    *answer = buf;
    return status;
}

/* http_raw for a JSON answer: (if @p body_out) the parsed JSON body and (if @p head_out) the
 * answer's headers. */
static int http_ex(fx_t *f, const char *method, const char *path, const char *headers,
                   const void *body, size_t len, json_t **body_out, char *head_out,
                   size_t head_cap) {
    char *buf;
    int status = http_raw(f, method, path, headers, body, len, &buf);
    assert_non_null(strstr(buf, "Content-Type: application/json"));
    char *b = strstr(buf, "\r\n\r\n");
    assert_non_null(b);
    if (head_out)
        snprintf(head_out, head_cap, "%.*s", (int)(b - buf), buf);
    json_error_t jerr;
    json_t *j = json_loads(b + 4, 0, &jerr);
    if (!j)
        fail_msg("response is not JSON: %s", b + 4);
    free(buf);
    if (body_out)
        *body_out = j;
    else
        json_decref(j);
    return status;
}

static int http(fx_t *f, const char *method, const char *path, const void *body, size_t len,
                json_t **body_out) {
    return http_ex(f, method, path, NULL, body, len, body_out, NULL, 0);
}

static const char *jstr(json_t *j, const char *key) {
    return json_string_value(json_object_get(j, key));
}

/* ------------------------------------------------------------ fake task managers (mock_tm.h) */

static weir_mock_tm_t *tm_register(fx_t *f, const char *id, const char *addr, uint32_t slots) {
    weir_mock_tm_t *tm = weir_mock_tm_register(f->zctx, f->jm->rpc_port, id, addr, slots);
    assert_int_equal(tm->heartbeat_interval_ms, 100);
    return tm;
}

/* TASK_STATE of attempt 1 with metrics: records_out as given, 1 record in, 3 ms backpressured. */
static void tm_task_state(weir_mock_tm_t *tm, const char *job, uint32_t v, uint32_t st,
                          weir_task_state_t state, const char *message, uint64_t records_out) {
    weir_task_metrics_t mt = {
        .records_out = records_out, .records_in = 1, .backpressured_ns = 3000000};
    weir_mock_tm_task_state(tm, job, 1, v, st, state, message, &mt);
}

/* ------------------------------------------------------------ helpers */

static void upload_plugin(fx_t *f, char sha[65]) {
    json_t *j;
    assert_int_equal(http(f, "POST", "/blobs", "abc", 3, &j), 200);
    assert_string_equal(jstr(j, "sha256"),
                        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    memcpy(sha, jstr(j, "sha256"), 65);
    json_decref(j);
}

static void submit(fx_t *f, const char *sha, char id[33]) {
    char body[4096];
    snprintf(body, sizeof body, "{\"plugin\":\"%s\",\"args\":[\"--x\",\"1\"],\"graph\":%s}", sha,
             GRAPH);
    json_t *j;
    assert_int_equal(http(f, "POST", "/jobs", body, strlen(body), &j), 200);
    assert_int_equal(strlen(jstr(j, "jobid")), 32);
    memcpy(id, jstr(j, "jobid"), 33);
    json_decref(j);
}

static json_t *get_job(fx_t *f, const char *id) {
    char path[80];
    snprintf(path, sizeof path, "/jobs/%s", id);
    json_t *j;
    assert_int_equal(http(f, "GET", path, NULL, 0, &j), 200);
    return j;
}

typedef struct job_wait {
    fx_t *f;
    const char *id;
    const char *state;  /* job_in_state: the state waited for */
    weir_mock_tm_t *hb; /* job_in_state: heartbeats between polls when not NULL */
    json_t *job;        /* the job's JSON at the last poll */
} job_wait_t;

static bool job_in_state(void *arg) {
    job_wait_t *w = arg;
    json_decref(w->job);
    w->job = get_job(w->f, w->id);
    if (!strcmp(jstr(w->job, "state"), w->state))
        return true;
    if (w->hb)
        weir_mock_tm_heartbeat(w->hb);
    return false;
}

/* Polls the job (5 s) until it is in @p state (heartbeating from @p hb_tm if given). */
static json_t *wait_state(fx_t *f, const char *id, const char *state, weir_mock_tm_t *hb_tm) {
    job_wait_t w = {.f = f, .id = id, .state = state, .hb = hb_tm};
    if (!weir_test_wait_until(job_in_state, &w, 5000, 25))
        fail_msg("job %s never reached %s", id, state);
    return w.job;
}

/* Collects the DEPLOY messages of one fake TM: returns how many, checks common fields. */
static int collect_deploys(weir_mock_tm_t *s, const char *job, int expect, uint32_t vs[][2]) {
    for (int i = 0; i < expect; i++) {
        weir_msg_t m;
        assert_int_equal(weir_mock_tm_expect(s, WEIR_MSG_DEPLOY, &m, 5000), 0);
        assert_string_equal(m.job_id, job);
        assert_int_equal(m.attempt, 1);
        assert_string_equal(m.job_name, "testjob");
        assert_string_equal(m.plugin_sha256,
                            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_int_equal(m.n_args, 2);
        assert_string_equal(m.args[1], "1");
        assert_int_equal(m.n_vertices, 2);
        assert_int_equal(m.vertex_parallelism[0], 2);
        assert_int_equal(m.vertex_parallelism[1], 1);
        /* slot 0 -> tm-a, slot 1 -> tm-b */
        assert_string_equal(m.placement[0][0], "tcp://a:1");
        assert_string_equal(m.placement[0][1], "tcp://b:1");
        assert_string_equal(m.placement[1][0], "tcp://a:1");
        json_error_t jerr;
        json_t *g = json_loads(m.graph_json, 0, &jerr);
        assert_non_null(g);
        assert_string_equal(jstr(g, "name"), "testjob");
        json_decref(g);
        vs[i][0] = m.vertex;
        vs[i][1] = m.subtask;
        weir_msg_clear(&m);
    }
    return expect;
}

/* Uploads the plugin (its sha256 into @p sha), registers tm-a and tm-b (1 slot each), submits the
 * job (its id into @p id) and takes its three deploys: src -> m 0 and sink 0 on tm-a, src -> m 1
 * on tm-b. */
static void deploy_on_two_tms(fx_t *f, char sha[65], char id[33], weir_mock_tm_t **a,
                              weir_mock_tm_t **b) {
    upload_plugin(f, sha);
    *a = tm_register(f, "tm-a", "tcp://a:1", 1);
    *b = tm_register(f, "tm-b", "tcp://b:1", 1);
    submit(f, sha, id);
    uint32_t da[2][2], db[1][2];
    collect_deploys(*a, id, 2, da);
    collect_deploys(*b, id, 1, db);
}

/* ------------------------------------------------------------ tests */

static void test_rest_basics(void **state) {
    fx_t *f = *state;
    json_t *j;
    assert_int_equal(http(f, "GET", "/healthz", NULL, 0, &j), 200);
    assert_string_equal(jstr(j, "status"), "ok");
    json_decref(j);
    assert_int_equal(http(f, "GET", "/x", NULL, 0, &j), 404);
    assert_string_equal(jstr(j, "error"), "no such endpoint: GET /x");
    json_decref(j);
    assert_int_equal(http(f, "POST", "/jobs", "nope", 4, &j), 400);
    assert_true(strncmp(jstr(j, "error"), "request body is not JSON: ", 26) == 0);
    json_decref(j);
    const char *unk = "{\"plugin\":\"00000000000000000000000000000000000000000000000000000000000"
                      "00000\",\"graph\":{}}";
    assert_int_equal(http(f, "POST", "/jobs", unk, strlen(unk), &j), 400);
    assert_string_equal(jstr(j, "error"), "unknown plugin blob "
                                          "0000000000000000000000000000000000000000000000000000"
                                          "000000000000: upload it with POST /blobs first");
    json_decref(j);
    char sha[65];
    upload_plugin(f, sha);
    char body[512];
    snprintf(body, sizeof body, "{\"plugin\":\"%s\",\"graph\":{\"name\":\"g\",\"nodes\":[]}}", sha);
    assert_int_equal(http(f, "POST", "/jobs", body, strlen(body), &j), 400);
    assert_non_null(strstr(jstr(j, "error"), "graph JSON"));
    json_decref(j);
    assert_int_equal(http(f, "GET", "/jobs/0123", NULL, 0, &j), 404);
    json_decref(j);
    assert_int_equal(http(f, "GET", "/jobs", NULL, 0, &j), 200);
    assert_int_equal(json_array_size(json_object_get(j, "jobs")), 0);
    json_decref(j);
    assert_int_equal(http(f, "GET", "/taskmanagers", NULL, 0, &j), 200);
    assert_int_equal(json_array_size(json_object_get(j, "taskmanagers")), 0);
    json_decref(j);
}

/* POST /jobs with "jobId": a malformed one is a 400 (nothing added), a good one names the job,
 * the same id again (in any state) is a 409 and the table keeps one job of that id. */
static void test_post_job_id(void **state) {
    fx_t *f = *state;
    json_t *j;
    char sha[65], body[4096];
    upload_plugin(f, sha);
    static const char *const bad[] = {"\"0123\"",
                                      "\"00112233445566778899AABBCCDDEEFF\"",
                                      "\"00112233445566778899aabbccddeeff0\"",
                                      "\"00112233445566778899aabbccddeefg\"",
                                      "42",
                                      "null"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(body, sizeof body, "{\"plugin\":\"%s\",\"jobId\":%s,\"graph\":%s}", sha, bad[i],
                 GRAPH);
        assert_int_equal(http(f, "POST", "/jobs", body, strlen(body), &j), 400);
        assert_string_equal(jstr(j, "error"),
                            "\"jobId\" must be a job id: 32 lowercase hex digits");
        json_decref(j);
    }
    const char *id = "00112233445566778899aabbccddeeff";
    snprintf(body, sizeof body, "{\"plugin\":\"%s\",\"jobId\":\"%s\",\"graph\":%s}", sha, id,
             GRAPH);
    assert_int_equal(http(f, "POST", "/jobs", body, strlen(body), &j), 200);
    assert_string_equal(jstr(j, "jobid"), id);
    json_decref(j);
    j = get_job(f, id);
    assert_string_equal(jstr(j, "id"), id);
    json_decref(j);
    assert_int_equal(http(f, "POST", "/jobs", body, strlen(body), &j), 409);
    assert_string_equal(jstr(j, "error"), "job 00112233445566778899aabbccddeeff already exists");
    json_decref(j);
    char cancel[128];
    snprintf(cancel, sizeof cancel, "/jobs/%s", id);
    assert_int_equal(http(f, "PATCH", cancel, NULL, 0, &j), 202);
    json_decref(j);
    json_decref(wait_state(f, id, "CANCELED", NULL));
    assert_int_equal(http(f, "POST", "/jobs", body, strlen(body), &j), 409);
    json_decref(j);
    assert_int_equal(http(f, "GET", "/jobs", NULL, 0, &j), 200);
    assert_int_equal(json_array_size(json_object_get(j, "jobs")), 1);
    json_decref(j);
}

/* Connector options that are secrets never leave the job manager through REST. */
static void test_secret_options_masked(void **state) {
    fx_t *f = *state;
    char sha[65], body[2048];
    upload_plugin(f, sha);
    snprintf(body, sizeof body,
             "{\"plugin\":\"%s\",\"graph\":{\"name\":\"k\",\"default_parallelism\":1,"
             "\"nodes\":[{\"id\":0,\"kind\":\"source_generator\",\"name\":\"src\",\"uid\":\"src\","
             "\"parallelism\":1,\"input\":-1},{\"id\":1,\"kind\":\"sink_kafka\","
             "\"name\":\"out\",\"parallelism\":1,\"input\":0,\"partitioning\":\"forward\","
             "\"config\":{\"options\":[[\"bootstrap.servers\",\"b:1\"],[\"topic\",\"t\"],"
             "[\"properties.sasl.password\",\"hunter2\"],"
             "[\"properties.SSL.Key.PASSWORD\",\"pw2\"],"
             "[\"properties.sasl.oauthbearer.config\",\"principal=x secret=y\"]]}}]}}",
             sha);
    json_t *j;
    assert_int_equal(http(f, "POST", "/jobs", body, strlen(body), &j), 200);
    char id[33];
    memcpy(id, jstr(j, "jobid"), 33);
    json_decref(j);
    j = get_job(f, id);
    char *text = json_dumps(j, JSON_COMPACT);
    assert_null(strstr(text, "hunter2"));
    assert_null(strstr(text, "pw2"));
    assert_null(strstr(text, "secret=y"));
    json_t *opts = json_object_get(
        json_object_get(json_array_get(json_object_get(json_object_get(j, "graph"), "nodes"), 1),
                        "config"),
        "options");
    assert_int_equal(json_array_size(opts), 5);
    assert_string_equal(json_string_value(json_array_get(json_array_get(opts, 0), 1)), "b:1");
    assert_string_equal(json_string_value(json_array_get(json_array_get(opts, 2), 1)), "******");
    assert_string_equal(json_string_value(json_array_get(json_array_get(opts, 3), 1)), "******");
    assert_string_equal(json_string_value(json_array_get(json_array_get(opts, 4), 1)), "******");
    free(text);
    json_decref(j);
}

static void test_job_finishes(void **state) {
    fx_t *f = *state;
    char sha[65], id[33];
    upload_plugin(f, sha);
    weir_mock_tm_t *a = tm_register(f, "tm-a", "tcp://a:1", 1);
    weir_mock_tm_t *b = tm_register(f, "tm-b", "tcp://b:1", 1);
    json_t *j;
    assert_int_equal(http(f, "GET", "/taskmanagers", NULL, 0, &j), 200);
    json_t *tms = json_object_get(j, "taskmanagers");
    assert_int_equal(json_array_size(tms), 2);
    assert_string_equal(jstr(json_array_get(tms, 0), "id"), "tm-a");
    assert_string_equal(jstr(json_array_get(tms, 1), "data_address"), "tcp://b:1");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(tms, 0), "slots_free")), 1);
    json_decref(j);

    submit(f, sha, id);
    uint32_t da[2][2], db[1][2];
    collect_deploys(a, id, 2, da); /* src->m 0 and sink 0 */
    collect_deploys(b, id, 1, db); /* src->m 1 */
    assert_int_equal(db[0][0], 0);
    assert_int_equal(db[0][1], 1);
    assert_true((da[0][0] == 0 && da[1][0] == 1) || (da[0][0] == 1 && da[1][0] == 0));
    j = wait_state(f, id, "RUNNING", NULL);
    json_decref(j);
    assert_int_equal(http(f, "GET", "/taskmanagers", NULL, 0, &j), 200);
    tms = json_object_get(j, "taskmanagers");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(tms, 0), "slots_free")), 0);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(tms, 1), "slots_free")), 0);
    json_decref(j);

    tm_task_state(a, id, 0, 0, WEIR_TASK_RUNNING, NULL, 0);
    tm_task_state(a, id, 0, 0, WEIR_TASK_FINISHED, NULL, 10);
    tm_task_state(b, id, 0, 1, WEIR_TASK_FINISHED, NULL, 32);
    tm_task_state(a, id, 1, 0, WEIR_TASK_FINISHED, NULL, 0);
    j = wait_state(f, id, "FINISHED", NULL);
    assert_true(json_integer_value(json_object_get(j, "end_time")) >=
                json_integer_value(json_object_get(j, "start_time")));
    json_t *v0 = json_array_get(json_object_get(j, "vertices"), 0);
    assert_string_equal(jstr(v0, "name"), "src -> m");
    assert_int_equal(json_integer_value(json_object_get(v0, "parallelism")), 2);
    json_t *tot = json_object_get(v0, "metrics");
    assert_int_equal(json_integer_value(json_object_get(tot, "records_out")), 42);
    assert_int_equal(json_integer_value(json_object_get(tot, "backpressured_ms")), 6);
    json_t *s1 = json_array_get(json_object_get(v0, "subtasks"), 1);
    assert_string_equal(jstr(s1, "taskmanager"), "tm-b");
    assert_string_equal(jstr(s1, "address"), "tcp://b:1");
    assert_string_equal(jstr(s1, "state"), "FINISHED");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(s1, "metrics"), "records_out")), 32);
    assert_string_equal(jstr(json_object_get(j, "graph"), "name"), "testjob");
    json_decref(j);
    assert_int_equal(http(f, "GET", "/taskmanagers", NULL, 0, &j), 200);
    tms = json_object_get(j, "taskmanagers");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(tms, 0), "slots_free")), 1);
    json_decref(j);
    /* finished jobs stay listed; cancelling one is a conflict */
    assert_int_equal(http(f, "GET", "/jobs", NULL, 0, &j), 200);
    assert_string_equal(jstr(json_array_get(json_object_get(j, "jobs"), 0), "state"), "FINISHED");
    json_decref(j);
    char path[80];
    snprintf(path, sizeof path, "/jobs/%s/cancel", id);
    assert_int_equal(http(f, "POST", path, NULL, 0, &j), 409);
    json_decref(j);
    weir_mock_tm_close(&a);
    weir_mock_tm_close(&b);
}

static void test_task_failure_and_cancel(void **state) {
    fx_t *f = *state;
    char sha[65], id[33];
    weir_mock_tm_t *a, *b;
    deploy_on_two_tms(f, sha, id, &a, &b);
    tm_task_state(b, id, 0, 1, WEIR_TASK_FAILED, "boom", 0);
    json_t *j = wait_state(f, id, "FAILED", NULL);
    assert_string_equal(jstr(j, "message"), "src -> m (2/2) on tm-b: boom");
    json_decref(j);
    weir_msg_t m;
    assert_int_equal(weir_mock_tm_expect(a, WEIR_MSG_CANCEL, &m, 5000), 0);
    assert_string_equal(m.job_id, id);
    weir_msg_clear(&m);
    tm_task_state(a, id, 0, 0, WEIR_TASK_CANCELED, NULL, 0);
    tm_task_state(a, id, 1, 0, WEIR_TASK_CANCELED, NULL, 0);

    /* a second job, canceled by PATCH */
    char id2[33], path[80];
    submit(f, sha, id2);
    uint32_t da[2][2], db[1][2];
    collect_deploys(a, id2, 2, da);
    collect_deploys(b, id2, 1, db);
    snprintf(path, sizeof path, "/jobs/%s", id2);
    assert_int_equal(http(f, "PATCH", path, NULL, 0, &j), 202);
    assert_string_equal(jstr(j, "state"), "CANCELING");
    assert_string_equal(jstr(j, "jobid"), id2);
    json_decref(j);
    assert_int_equal(weir_mock_tm_expect(a, WEIR_MSG_CANCEL, &m, 5000), 0);
    assert_string_equal(m.job_id, id2);
    weir_msg_clear(&m);
    assert_int_equal(weir_mock_tm_expect(b, WEIR_MSG_CANCEL, &m, 5000), 0);
    weir_msg_clear(&m);
    j = get_job(f, id2);
    assert_string_equal(jstr(j, "state"), "CANCELING");
    json_decref(j);
    tm_task_state(a, id2, 0, 0, WEIR_TASK_CANCELED, NULL, 0);
    tm_task_state(a, id2, 1, 0, WEIR_TASK_CANCELED, NULL, 0);
    tm_task_state(b, id2, 0, 1, WEIR_TASK_CANCELED, NULL, 0);
    j = wait_state(f, id2, "CANCELED", NULL);
    json_decref(j);
    assert_int_equal(http(f, "PATCH", path, NULL, 0, &j), 409);
    json_decref(j);
    /* all slots free again */
    assert_int_equal(http(f, "GET", "/taskmanagers", NULL, 0, &j), 200);
    json_t *tms = json_object_get(j, "taskmanagers");
    for (int i = 0; i < 2; i++)
        assert_int_equal(
            json_integer_value(json_object_get(json_array_get(tms, (size_t)i), "slots_free")), 1);
    json_decref(j);
    weir_mock_tm_close(&a);
    weir_mock_tm_close(&b);
}

static void test_tm_lost(void **state) {
    fx_t *f = *state;
    char sha[65], id[33];
    weir_mock_tm_t *a, *b;
    deploy_on_two_tms(f, sha, id, &a, &b);
    /* only tm-a heartbeats */
    json_t *j = wait_state(f, id, "FAILED", a);
    const char *msg = jstr(j, "message");
    const char *prefix = "task manager tm-b (tcp://b:1) lost: no heartbeat for ";
    assert_true(strncmp(msg, prefix, strlen(prefix)) == 0);
    json_decref(j);
    /* the exception history names the lost task manager */
    char xpath[96];
    snprintf(xpath, sizeof xpath, "/jobs/%s/exceptions", id);
    assert_int_equal(http(f, "GET", xpath, NULL, 0, &j), 200);
    json_t *xe = json_object_get(json_object_get(j, "exceptionHistory"), "entries");
    assert_int_equal(json_array_size(xe), 1);
    assert_string_equal(jstr(json_array_get(xe, 0), "exceptionName"), "TaskManagerLost");
    assert_string_equal(jstr(json_array_get(xe, 0), "taskManagerId"), "tm-b");
    assert_string_equal(jstr(json_array_get(xe, 0), "location"), "tcp://b:1");
    assert_true(strncmp(jstr(json_array_get(xe, 0), "stacktrace"), prefix, strlen(prefix)) == 0);
    json_decref(j);
    weir_msg_t m;
    assert_int_equal(weir_mock_tm_expect(a, WEIR_MSG_CANCEL, &m, 5000), 0);
    weir_msg_clear(&m);
    weir_mock_tm_heartbeat(a);
    assert_int_equal(http(f, "GET", "/taskmanagers", NULL, 0, &j), 200);
    json_t *tms = json_object_get(j, "taskmanagers");
    assert_int_equal(json_array_size(tms), 1);
    assert_string_equal(jstr(json_array_get(tms, 0), "id"), "tm-a");
    json_decref(j);
    /* the lost one heartbeats again: told to register */
    weir_mock_tm_heartbeat(b);
    assert_int_equal(weir_mock_tm_expect(b, WEIR_MSG_UNKNOWN, &m, 5000), 0);
    weir_msg_clear(&m);
    weir_mock_tm_close(&a);
    weir_mock_tm_close(&b);
}

static void test_tm_restart(void **state) {
    fx_t *f = *state;
    char sha[65], id[33];
    weir_mock_tm_t *a, *b;
    deploy_on_two_tms(f, sha, id, &a, &b);
    /* tm-b restarts: a new connection with the same id registers while its tasks run */
    weir_mock_tm_close(&b);
    b = tm_register(f, "tm-b", "tcp://b:2", 3);
    json_t *j = wait_state(f, id, "FAILED", NULL);
    /* the disconnect event usually wins; a re-registration first is also a loss */
    const char *msg = jstr(j, "message");
    if (strcmp(msg, "task manager tm-b (tcp://b:1) lost: connection closed") != 0)
        assert_string_equal(msg,
                            "task manager tm-b (tcp://b:1) lost: it registered again (restarted)");
    json_decref(j);
    assert_int_equal(http(f, "GET", "/taskmanagers", NULL, 0, &j), 200);
    json_t *tms = json_object_get(j, "taskmanagers");
    assert_int_equal(json_array_size(tms), 2);
    json_t *nb = json_array_get(tms, 1);
    assert_string_equal(jstr(nb, "data_address"), "tcp://b:2");
    assert_int_equal(json_integer_value(json_object_get(nb, "slots_free")), 3);
    json_decref(j);
    weir_mock_tm_close(&a);
    weir_mock_tm_close(&b);
}

static bool waiting_message_or_left(void *arg) {
    job_wait_t *w = arg;
    json_decref(w->job);
    w->job = get_job(w->f, w->id);
    return strcmp(jstr(w->job, "state"), "CREATED") || jstr(w->job, "message");
}

static void test_slot_timeout(void **state) {
    fx_t *f = *state;
    char sha[65], id[33];
    upload_plugin(f, sha);
    weir_mock_tm_t *a = tm_register(f, "tm-a", "tcp://a:1", 1);
    submit(f, sha, id);
    /* The waiting message is set by the job manager loop's first scheduling attempt, which can
     * come a moment after the submit answered: wait for it (bounded) while the job is CREATED. */
    job_wait_t w = {.f = f, .id = id};
    weir_test_wait_until(waiting_message_or_left, &w, 1000, 5);
    json_t *j = w.job;
    if (!strcmp(jstr(j, "state"), "CREATED")) {
        assert_non_null(jstr(j, "message"));
        assert_non_null(strstr(jstr(j, "message"), "needs 2, 1 free"));
    }
    json_decref(j);
    j = wait_state(f, id, "FAILED", a);
    assert_string_equal(jstr(j, "message"),
                        "not enough task slots: the job needs 2, 1 free after 300 ms (start more "
                        "task managers, add taskmanager.numberOfTaskSlots or lower -p)");
    json_decref(j);
    /* a CREATED job can be canceled directly */
    char id2[33], path[80];
    submit(f, sha, id2);
    snprintf(path, sizeof path, "/jobs/%s/cancel", id2);
    assert_int_equal(http(f, "POST", path, NULL, 0, &j), 202);
    json_decref(j);
    j = get_job(f, id2);
    assert_string_equal(jstr(j, "state"), "CANCELED");
    json_decref(j);
    weir_mock_tm_close(&a);
}

static void test_blob_request(void **state) {
    fx_t *f = *state;
    char sha[65];
    upload_plugin(f, sha);
    weir_mock_tm_t *a = tm_register(f, "tm-a", "tcp://a:1", 1);
    weir_msg_t req = {.type = WEIR_MSG_BLOB_REQUEST, .tm_id = "tm-a"};
    memcpy(req.blob_sha256, sha, 65);
    weir_mock_tm_send(a, &req);
    weir_msg_t m;
    assert_int_equal(weir_mock_tm_expect(a, WEIR_MSG_BLOB, &m, 5000), 0);
    assert_null(m.error);
    assert_int_equal(m.blob_len, 3);
    assert_memory_equal(m.blob, "abc", 3);
    weir_msg_clear(&m);
    memset(req.blob_sha256, 'f', 64);
    weir_mock_tm_send(a, &req);
    assert_int_equal(weir_mock_tm_expect(a, WEIR_MSG_BLOB, &m, 5000), 0);
    assert_non_null(m.error);
    assert_non_null(strstr(m.error, "not found"));
    weir_msg_clear(&m);
    weir_mock_tm_close(&a);
}

/* ------------------------------------------------------------ checkpoints and recovery */

/* Receives @p n DEPLOYs of @p attempt; checks the checkpoint fields; fills restore info. */
static void expect_deploys(weir_mock_tm_t *s, const char *job, const char *ckdir, uint32_t attempt,
                           int n, uint64_t *restore_id, char ops[][64], char keyed[][256]) {
    for (int i = 0; i < n; i++) {
        weir_msg_t m;
        assert_int_equal(weir_mock_tm_expect(s, WEIR_MSG_DEPLOY, &m, 5000), 0);
        assert_string_equal(m.job_id, job);
        assert_int_equal(m.attempt, attempt);
        assert_int_equal(m.checkpoint_mode, WEIR_CHECKPOINT_EXACTLY_ONCE);
        assert_string_equal(m.checkpoint_dir, ckdir);
        *restore_id = m.restore_checkpoint_id;
        uint32_t k = m.vertex * 2 + m.subtask;
        ops[k][0] = keyed[k][0] = 0;
        weir_mock_tm_bundle_str(m.restore_op_state, m.restore_op_state_len, 0, ops[k], 64);
        if (m.restore_keyed_handle)
            snprintf(keyed[k], 256, "%s", m.restore_keyed_handle);
        weir_msg_clear(&m);
    }
}

static bool file_gone(void *path) {
    uint8_t *data;
    size_t len;
    int rc = weir_read_file(path, &data, &len);
    if (rc == 0)
        free(data);
    return rc == WEIR_ENOTFOUND;
}

static void test_checkpoint_restart_final(void **state) {
    fx_t *f = *state;
    char sha[65], id[33], ckdir[700], path[900];
    upload_plugin(f, sha);
    weir_mock_tm_t *a = tm_register(f, "tm-a", "tcp://a:1", 1);
    weir_mock_tm_t *b = tm_register(f, "tm-b", "tcp://b:1", 1);
    submit(f, sha, id);
    snprintf(ckdir, sizeof ckdir, "%s/ck/%s", f->dir, id);
    snprintf(path, sizeof path, "%s/ha/jobs/%s/job.json", f->dir, id);
    uint8_t *data;
    size_t len;
    assert_int_equal(weir_read_file(path, &data, &len), 0);
    assert_non_null(strstr((char *)data, "\"attempt\":1"));
    free(data);
    snprintf(path, sizeof path, "%s/ha/blobs/%s", f->dir, sha);
    assert_int_equal(weir_read_file(path, &data, &len), 0);
    assert_memory_equal(data, "abc", 3);
    free(data);

    uint64_t rid = 99;
    char ops[4][64], keyed[4][256];
    expect_deploys(a, id, ckdir, 1, 2, &rid, ops, keyed);
    assert_int_equal(rid, 0);
    expect_deploys(b, id, ckdir, 1, 1, &rid, ops, keyed);
    weir_mock_tm_task_state(a, id, 1, 0, 0, WEIR_TASK_RUNNING, NULL, NULL);
    weir_mock_tm_task_state(a, id, 1, 1, 0, WEIR_TASK_RUNNING, NULL, NULL);
    weir_mock_tm_task_state(b, id, 1, 0, 1, WEIR_TASK_RUNNING, NULL, NULL);
    /* triggers go to the source subtasks only */
    uint64_t n = weir_mock_tm_expect_trigger(a, id, 0, 0);
    assert_int_equal(weir_mock_tm_expect_trigger(b, id, 0, 1), n);
    assert_int_equal(n, 1);
    char handle[256];
    snprintf(handle, sizeof handle,
             "{\"version\":1,\"checkpoint\":%d,\"task\":\"1-0\",\"shared\":[],"
             "\"private\":[]}",
             (int)n);
    char op[64];
    weir_mock_tm_ack(a, id, 1, n + 7, 0, 0, false, weir_mock_tm_opstate(op, 64, "stale", 2),
                     NULL); /* wrong id: ignored */
    weir_mock_tm_ack(a, id, 1, n, 0, 0, false, weir_mock_tm_opstate(op, 64, "pos-0", 2), NULL);
    weir_mock_tm_ack(a, id, 1, n, 1, 0, false, NULL, handle);
    weir_mock_tm_ack(b, id, 1, n, 0, 1, false, weir_mock_tm_opstate(op, 64, "pos-1", 2), NULL);
    assert_int_equal(weir_mock_tm_expect_notify(a, id, 1, false), n);
    assert_int_equal(weir_mock_tm_expect_notify(b, id, 1, false), n);
    /* _metadata is durable before the notify; the HA pointer names it */
    snprintf(path, sizeof path, "%s/chk-%d/_metadata", ckdir, (int)n);
    assert_int_equal(weir_read_file(path, &data, &len), 0);
    assert_non_null(strstr((char *)data, "\"op_state\":\"kqVwb3MtMMA=\"")); /* ["pos-0", nil] */
    free(data);
    snprintf(path, sizeof path, "%s/ha/jobs/%s/checkpoint", f->dir, id);
    assert_int_equal(weir_read_file(path, &data, &len), 0);
    char expect_ptr[800];
    snprintf(expect_ptr, sizeof expect_ptr, "%s/chk-%d\n", ckdir, (int)n);
    assert_string_equal((char *)data, expect_ptr);
    free(data);
    json_t *j;
    snprintf(path, sizeof path, "/jobs/%s/checkpoints", id);
    assert_int_equal(http(f, "GET", path, NULL, 0, &j), 200);
    json_t *counts = json_object_get(j, "counts");
    assert_true(json_integer_value(json_object_get(counts, "completed")) >= 1);
    json_t *lc = json_object_get(json_object_get(j, "latest"), "completed");
    assert_int_equal(json_integer_value(json_object_get(lc, "id")), (json_int_t)n);
    assert_int_equal(json_integer_value(json_object_get(lc, "state_size")), 300);
    assert_int_equal(json_integer_value(json_object_get(lc, "alignment_duration_ms")), 7);
    assert_true(json_is_null(json_object_get(json_object_get(j, "latest"), "restored")));
    json_t *h0 = json_array_get(json_object_get(j, "history"), 0);
    assert_string_equal(jstr(h0, "status"), "COMPLETED");
    json_decref(j);

    /* a task fails: RESTARTING, CANCEL, then attempt 2 restores checkpoint n */
    weir_mock_tm_task_state(b, id, 1, 0, 1, WEIR_TASK_FAILED, "boom", NULL);
    weir_msg_t m;
    assert_int_equal(weir_mock_tm_expect(a, WEIR_MSG_CANCEL, &m, 5000), 0);
    assert_int_equal(m.attempt, 1);
    weir_msg_clear(&m);
    j = get_job(f, id);
    assert_string_equal(jstr(j, "state"), "RESTARTING");
    json_decref(j);
    weir_mock_tm_task_state(a, id, 1, 0, 0, WEIR_TASK_CANCELED, NULL, NULL);
    weir_mock_tm_task_state(a, id, 1, 1, 0, WEIR_TASK_CANCELED, NULL, NULL);
    expect_deploys(a, id, ckdir, 2, 2, &rid, ops, keyed);
    assert_int_equal(rid, n);
    expect_deploys(b, id, ckdir, 2, 1, &rid, ops, keyed);
    assert_int_equal(rid, n);
    assert_string_equal(ops[0], "2:0:pos-0"); /* same parallelism: its own state only */
    assert_string_equal(ops[1], "2:1:pos-1");
    assert_string_equal(ops[2], ""); /* the keyed vertex had no operator state */
    assert_non_null(strstr(keyed[2], "\"task\":\"1-0\""));
    j = get_job(f, id);
    assert_string_equal(jstr(j, "state"), "RUNNING");
    assert_int_equal(json_integer_value(json_object_get(j, "restarts")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "attempt")), 2);
    json_decref(j);
    assert_int_equal(http(f, "GET", path, NULL, 0, &j), 200);
    json_t *lr = json_object_get(json_object_get(j, "latest"), "restored");
    assert_int_equal(json_integer_value(json_object_get(lr, "id")), (json_int_t)n);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "counts"), "restored")),
                     1);
    json_decref(j);

    /* attempt 2 ends: final snapshots -> final checkpoint -> NOTIFY final -> FINISHED */
    weir_mock_tm_task_state(a, id, 1, 0, 0, WEIR_TASK_FAILED, "stale attempt", NULL); /* ignored */
    weir_mock_tm_task_state(a, id, 2, 0, 0, WEIR_TASK_RUNNING, NULL, NULL);
    weir_mock_tm_task_state(a, id, 2, 1, 0, WEIR_TASK_RUNNING, NULL, NULL);
    weir_mock_tm_task_state(b, id, 2, 0, 1, WEIR_TASK_RUNNING, NULL, NULL);
    weir_mock_tm_ack(a, id, 2, 0, 0, 0, true, weir_mock_tm_opstate(op, 64, "end-0", 2), NULL);
    weir_mock_tm_ack(b, id, 2, 0, 0, 1, true, weir_mock_tm_opstate(op, 64, "end-1", 2), NULL);
    weir_mock_tm_ack(a, id, 2, 0, 1, 0, true, NULL, handle);
    uint64_t fin = weir_mock_tm_expect_notify(a, id, 2, true);
    assert_true(fin > n);
    assert_int_equal(weir_mock_tm_expect_notify(b, id, 2, true), fin);
    snprintf(path, sizeof path, "%s/chk-%d/_metadata", ckdir, (int)fin);
    assert_int_equal(weir_read_file(path, &data, &len), 0);
    assert_non_null(strstr((char *)data, "\"final\":true"));
    assert_non_null(strstr((char *)data, "\"op_state\":\"kqVlbmQtMcA=\"")); /* ["end-1", nil] */
    free(data);
    /* num-retained 1: the restored checkpoint n is gone now */
    snprintf(path, sizeof path, "%s/chk-%d", ckdir, (int)n);
    assert_int_not_equal(weir_read_file(path, &data, &len), 0);
    weir_mock_tm_task_state(a, id, 2, 0, 0, WEIR_TASK_FINISHED, NULL, NULL);
    weir_mock_tm_task_state(a, id, 2, 1, 0, WEIR_TASK_FINISHED, NULL, NULL);
    weir_mock_tm_task_state(b, id, 2, 0, 1, WEIR_TASK_FINISHED, NULL, NULL);
    j = wait_state(f, id, "FINISHED", NULL);
    json_decref(j);
    /* the HA entry goes with the terminal state */
    snprintf(path, sizeof path, "%s/ha/jobs/%s/job.json", f->dir, id);
    assert_true(weir_test_wait_until(file_gone, path, 2000, 10));
    weir_mock_tm_close(&a);
    weir_mock_tm_close(&b);
}

/* ------------------------------------------------------------ savepoints (docs/savepoints.md) */

/* Receives the TRIGGER of (0, @p subtask) and checks its kind; copies its target into @p target.
 * @returns its checkpoint id. */
static uint64_t expect_sp_trigger(weir_mock_tm_t *tm, const char *job, uint32_t subtask,
                                  uint32_t kind, char *target, size_t cap) {
    weir_msg_t m;
    assert_int_equal(weir_mock_tm_expect(tm, WEIR_MSG_TRIGGER_CHECKPOINT, &m, 5000), 0);
    assert_string_equal(m.job_id, job);
    assert_int_equal(m.vertex, 0);
    assert_int_equal(m.subtask, subtask);
    assert_int_equal(m.ck_kind, kind);
    assert_non_null(m.target);
    snprintf(target, cap, "%s", m.target);
    uint64_t id = m.checkpoint_id;
    weir_msg_clear(&m);
    return id;
}

static json_t *sp_status(fx_t *f, const char *id, const char *rid, int expect_code) {
    char path[200];
    snprintf(path, sizeof path, "/jobs/%s/savepoints/%s", id, rid);
    json_t *j = NULL;
    assert_int_equal(http(f, "GET", path, NULL, 0, &j), expect_code);
    return j;
}

static void sp_request(fx_t *f, const char *id, const char *what, const char *body, int code,
                       char rid[33], const char *msg_part) {
    char path[200];
    snprintf(path, sizeof path, "/jobs/%s/%s", id, what);
    json_t *j = NULL;
    assert_int_equal(http(f, "POST", path, body, strlen(body), &j), code);
    if (rid)
        memcpy(rid, jstr(j, "request-id"), 33);
    if (msg_part) {
        const char *e = jstr(j, "error");
        if (!e || !strstr(e, msg_part))
            fail_msg("answer %s does not contain '%s'", e ? e : "(none)", msg_part);
    }
    json_decref(j);
}

/* Savepoint, stop-with-savepoint and run -s against fake task managers: TRIGGER carries the kind
 * and a fresh directory under the target; an intermediate savepoint completes without NOTIFY and
 * becomes the job's restore point; a stop sends NOTIFY final and completes when the job is
 * FINISHED; a job submitted with savepointPath gets each subtask's own state back; a savepoint
 * whose uid is missing from the new job is refused naming it; bad requests get 400/404/409. */
static void test_savepoint_stop_resume(void **state) {
    fx_t *f = *state;
    char sha[65], id[33], ckdir[700], rid[33], target[1200], sp1[1200], sp2[1200], body[4096];
    char path[1400], op[64];
    upload_plugin(f, sha);
    weir_mock_tm_t *a = tm_register(f, "tm-a", "tcp://a:1", 1);
    weir_mock_tm_t *b = tm_register(f, "tm-b", "tcp://b:1", 1);
    submit(f, sha, id);
    snprintf(ckdir, sizeof ckdir, "%s/ck/%s", f->dir, id);
    uint64_t rst;
    char ops[4][64], keyed[4][256];
    expect_deploys(a, id, ckdir, 1, 2, &rst, ops, keyed);
    expect_deploys(b, id, ckdir, 1, 1, &rst, ops, keyed);
    weir_mock_tm_task_state(a, id, 1, 0, 0, WEIR_TASK_RUNNING, NULL, NULL);
    weir_mock_tm_task_state(a, id, 1, 1, 0, WEIR_TASK_RUNNING, NULL, NULL);
    weir_mock_tm_task_state(b, id, 1, 0, 1, WEIR_TASK_RUNNING, NULL, NULL);

    /* refusals: no target (no state.savepoints.dir), a relative one, drain, unknown request */
    sp_request(f, id, "savepoints", "{}", 400, NULL, "state.savepoints.dir");
    sp_request(f, id, "savepoints", "{\"target-directory\":\"sp\"}", 400, NULL,
               "not an absolute path");
    sp_request(f, id, "stop", "{\"drain\":true}", 400, NULL, "drain");
    json_decref(sp_status(f, id, "0123", 404));

    /* an intermediate savepoint */
    snprintf(body, sizeof body, "{\"target-directory\":\"%s/sp\"}", f->dir);
    sp_request(f, id, "savepoints", body, 202, rid, NULL);
    uint64_t n = expect_sp_trigger(a, id, 0, WEIR_CK_SAVEPOINT, target, sizeof target);
    char expect_prefix[1000];
    snprintf(expect_prefix, sizeof expect_prefix, "%s/sp/savepoint-%.6s-", f->dir, id);
    assert_memory_equal(target, expect_prefix, strlen(expect_prefix));
    assert_int_equal(strlen(target), strlen(expect_prefix) + 12);
    assert_int_equal(expect_sp_trigger(b, id, 1, WEIR_CK_SAVEPOINT, sp1, sizeof sp1), n);
    assert_string_equal(sp1, target);
    json_t *j = sp_status(f, id, rid, 200);
    assert_string_equal(jstr(json_object_get(j, "status"), "id"), "IN_PROGRESS");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "progress"), "total")),
                     3);
    json_decref(j);
    weir_mock_tm_ack(a, id, 1, n, 0, 0, false, weir_mock_tm_opstate(op, 64, "sp-0", 2), NULL);
    weir_mock_tm_ack(b, id, 1, n, 0, 1, false, weir_mock_tm_opstate(op, 64, "sp-1", 2), NULL);
    weir_mock_tm_ack(a, id, 1, n, 1, 0, false, NULL, NULL);
    for (int i = 0; i < 200; i++) {
        j = sp_status(f, id, rid, 200);
        if (!strcmp(jstr(json_object_get(j, "status"), "id"), "COMPLETED"))
            break;
        json_decref(j);
        j = NULL;
        usleep(10000);
    }
    assert_non_null(j);
    assert_string_equal(jstr(json_object_get(j, "operation"), "location"), target);
    assert_int_equal(json_integer_value(json_object_get(j, "checkpoint")), (json_int_t)n);
    json_decref(j);
    snprintf(path, sizeof path, "%s/_metadata", target);
    uint8_t *data;
    size_t len;
    assert_int_equal(weir_read_file(path, &data, &len), 0);
    assert_non_null(strstr((char *)data, "\"kind\":\"savepoint\""));
    free(data);
    weir_msg_t m;
    assert_int_not_equal(weir_mock_tm_expect(a, WEIR_MSG_NOTIFY_CHECKPOINT, &m, 300), 0);
    snprintf(path, sizeof path, "/jobs/%s/checkpoints", id);
    assert_int_equal(http(f, "GET", path, NULL, 0, &j), 200);
    /* the savepoint is the job's restore point now (a failover restores it) */
    json_t *lcomp = json_object_get(json_object_get(j, "latest"), "completed");
    assert_int_equal(json_integer_value(json_object_get(lcomp, "id")), (json_int_t)n);
    assert_string_equal(jstr(lcomp, "path"), target);
    json_t *h = json_array_get(json_object_get(j, "history"), 0);
    assert_true(json_is_true(json_object_get(h, "is_savepoint")));
    assert_string_equal(jstr(h, "status"), "COMPLETED");
    json_decref(j);

    /* the HA pointer names the savepoint, and a failure now restores it (its pre-committed output
     * is then committed by the restore, never aborted by a fall back to an older checkpoint) */
    snprintf(path, sizeof path, "%s/ha/jobs/%s/checkpoint", f->dir, id);
    assert_int_equal(weir_read_file(path, &data, &len), 0);
    assert_memory_equal(data, target, strlen(target));
    free(data);
    weir_mock_tm_task_state(b, id, 1, 0, 1, WEIR_TASK_FAILED, "boom", NULL);
    assert_int_equal(weir_mock_tm_expect(a, WEIR_MSG_CANCEL, &m, 5000), 0);
    weir_msg_clear(&m);
    weir_mock_tm_task_state(a, id, 1, 0, 0, WEIR_TASK_CANCELED, NULL, NULL);
    weir_mock_tm_task_state(a, id, 1, 1, 0, WEIR_TASK_CANCELED, NULL, NULL);
    expect_deploys(a, id, ckdir, 2, 2, &rst, ops, keyed);
    assert_int_equal(rst, n);
    expect_deploys(b, id, ckdir, 2, 1, &rst, ops, keyed);
    assert_string_equal(ops[0], "2:0:sp-0");
    assert_string_equal(ops[1], "2:1:sp-1");
    weir_mock_tm_task_state(a, id, 2, 0, 0, WEIR_TASK_RUNNING, NULL, NULL);
    weir_mock_tm_task_state(a, id, 2, 1, 0, WEIR_TASK_RUNNING, NULL, NULL);
    weir_mock_tm_task_state(b, id, 2, 0, 1, WEIR_TASK_RUNNING, NULL, NULL);
    /* its owner deletes the savepoint; the next failure restores what came before it (here: no
     * checkpoint, a fresh start: nothing was committed at the savepoint) instead of failing */
    assert_int_equal(weir_rmtree(target), 0);
    weir_mock_tm_task_state(b, id, 2, 0, 1, WEIR_TASK_FAILED, "boom", NULL);
    assert_int_equal(weir_mock_tm_expect(a, WEIR_MSG_CANCEL, &m, 5000), 0);
    weir_msg_clear(&m);
    weir_mock_tm_task_state(a, id, 2, 0, 0, WEIR_TASK_CANCELED, NULL, NULL);
    weir_mock_tm_task_state(a, id, 2, 1, 0, WEIR_TASK_CANCELED, NULL, NULL);
    expect_deploys(a, id, ckdir, 3, 2, &rst, ops, keyed);
    assert_int_equal(rst, 0);
    expect_deploys(b, id, ckdir, 3, 1, &rst, ops, keyed);
    assert_string_equal(ops[0], "");
    weir_mock_tm_task_state(a, id, 3, 0, 0, WEIR_TASK_RUNNING, NULL, NULL);
    weir_mock_tm_task_state(a, id, 3, 1, 0, WEIR_TASK_RUNNING, NULL, NULL);
    weir_mock_tm_task_state(b, id, 3, 0, 1, WEIR_TASK_RUNNING, NULL, NULL);

    /* stop with a savepoint: NOTIFY final, COMPLETED only once the job FINISHED */
    snprintf(body, sizeof body, "{\"targetDirectory\":\"%s/sp\"}", f->dir);
    sp_request(f, id, "stop", body, 202, rid, NULL);
    sp_request(f, id, "stop", body, 409, NULL, "being stopped");
    uint64_t s = expect_sp_trigger(a, id, 0, WEIR_CK_STOP, sp2, sizeof sp2);
    assert_true(s > n);
    assert_string_not_equal(sp2, sp1);
    assert_int_equal(expect_sp_trigger(b, id, 1, WEIR_CK_STOP, target, sizeof target), s);
    weir_mock_tm_ack(a, id, 3, s, 0, 0, false, weir_mock_tm_opstate(op, 64, "stop-0", 2), NULL);
    weir_mock_tm_ack(b, id, 3, s, 0, 1, false, weir_mock_tm_opstate(op, 64, "stop-1", 2), NULL);
    weir_mock_tm_ack(a, id, 3, s, 1, 0, false, NULL, NULL);
    assert_int_equal(weir_mock_tm_expect_notify(a, id, 3, true), s);
    assert_int_equal(weir_mock_tm_expect_notify(b, id, 3, true), s);
    j = sp_status(f, id, rid, 200);
    assert_string_equal(jstr(json_object_get(j, "status"), "id"), "IN_PROGRESS");
    json_decref(j);
    weir_mock_tm_task_state(a, id, 3, 0, 0, WEIR_TASK_FINISHED, NULL, NULL);
    weir_mock_tm_task_state(a, id, 3, 1, 0, WEIR_TASK_FINISHED, NULL, NULL);
    weir_mock_tm_task_state(b, id, 3, 0, 1, WEIR_TASK_FINISHED, NULL, NULL);
    json_decref(wait_state(f, id, "FINISHED", NULL));
    for (int i = 0; i < 200; i++) {
        j = sp_status(f, id, rid, 200);
        if (!strcmp(jstr(json_object_get(j, "status"), "id"), "COMPLETED"))
            break;
        json_decref(j);
        j = NULL;
        usleep(10000);
    }
    assert_non_null(j);
    assert_string_equal(jstr(json_object_get(j, "operation"), "location"), sp2);
    json_decref(j);
    sp_request(f, id, "savepoints", body, 409, NULL, "FINISHED");

    /* run -s: every subtask gets its own state back (same parallelism), ids go on above s */
    snprintf(body, sizeof body, "{\"plugin\":\"%s\",\"graph\":%s,\"savepointPath\":\"%s\"}", sha,
             GRAPH, sp2);
    assert_int_equal(http(f, "POST", "/jobs", body, strlen(body), &j), 200);
    char id2[33];
    memcpy(id2, jstr(j, "jobid"), 33);
    json_decref(j);
    snprintf(ckdir, sizeof ckdir, "%s/ck/%s", f->dir, id2);
    expect_deploys(a, id2, ckdir, 1, 2, &rst, ops, keyed);
    assert_int_equal(rst, s);
    expect_deploys(b, id2, ckdir, 1, 1, &rst, ops, keyed);
    assert_string_equal(ops[0], "2:0:stop-0");
    assert_string_equal(ops[1], "2:1:stop-1");
    assert_string_equal(ops[2], "");

    /* a new job without the uid "src": refused, naming it; a corrupt _metadata: refused */
    char graph2[2048];
    snprintf(graph2, sizeof graph2, "%s", GRAPH);
    char *u = strstr(graph2, "\"uid\":\"src\"");
    assert_non_null(u);
    memcpy(u, "\"uid\":\"sr2\"", 11);
    snprintf(body, sizeof body, "{\"plugin\":\"%s\",\"graph\":%s,\"savepointPath\":\"%s\"}", sha,
             graph2, sp2);
    assert_int_equal(http(f, "POST", "/jobs", body, strlen(body), &j), 400);
    const char *e = jstr(j, "error");
    assert_non_null(e);
    assert_non_null(strstr(e, "'src'"));
    assert_non_null(strstr(e, "--allowNonRestoredState"));
    json_decref(j);
    snprintf(path, sizeof path, "%s/_metadata", sp2);
    FILE *fp = fopen(path, "r+");
    assert_non_null(fp);
    fputc('X', fp);
    fclose(fp);
    snprintf(body, sizeof body, "{\"plugin\":\"%s\",\"graph\":%s,\"savepointPath\":\"%s\"}", sha,
             GRAPH, sp2);
    assert_int_equal(http(f, "POST", "/jobs", body, strlen(body), &j), 400);
    e = jstr(j, "error");
    assert_non_null(e);
    assert_non_null(strstr(e, "_metadata"));
    assert_null(strchr(e, '\n'));
    json_decref(j);
    weir_mock_tm_close(&a);
    weir_mock_tm_close(&b);
}

/* ------------------------------------------------------------ REST security */

/* rest.auth.token: every route but GET /healthz needs the bearer token; a refused request runs no
 * handler (its upload is not stored); the body limit applies after the token check. */
static void test_auth(void **state) {
    fx_t *f = *state;
    json_t *j;
    char head[4096];
    assert_int_equal(http(f, "GET", "/healthz", NULL, 0, &j), 200);
    assert_string_equal(jstr(j, "status"), "ok");
    json_decref(j);
    const char *bad[] = {
        NULL,
        "Authorization: Bearer nope\r\n",
        "Authorization: Basic " TOKEN "\r\n",
        "Authorization: Bearer " TOKEN "x\r\n",
        "Authorization: Bearer x" TOKEN "\r\n",
        "Authorization: Bearer Zm9vYmFyLXRva2VuLWZvci10ZXN0c\r\n", /* one character short */
        "Authorization: Bearer\r\n",
        "Authorization: " TOKEN "\r\n",
        "Authorization: Bearer" TOKEN "\r\n",
        "X-Token: " TOKEN "\r\n",
    };
    const char *routes[][2] = {{"GET", "/jobs"},
                               {"POST", "/jobs"},
                               {"GET", "/jobs/0123"},
                               {"PATCH", "/jobs/0123"},
                               {"POST", "/jobs/0123/cancel"},
                               {"GET", "/taskmanagers"},
                               {"POST", "/blobs"},
                               {"GET", "/nope"},
                               {"POST", "/healthz"},
                               {"GET", "/metrics"},
                               {"GET", "/overview"},
                               {"GET", "/jobs/overview"},
                               {"GET", "/jobmanager/config"},
                               {"GET", "/taskmanagers/tm-a"},
                               {"GET", "/taskmanagers/tm-a/log"},
                               {"GET", "/jobs/0123/exceptions"}};
    for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
        for (size_t r = 0; r < sizeof routes / sizeof routes[0]; r++) {
            int st = http_ex(f, routes[r][0], routes[r][1], bad[b], "{}", 2, &j, head, sizeof head);
            if (st != 401)
                fail_msg("%s %s with %s: %d", routes[r][0], routes[r][1],
                         bad[b] ? bad[b] : "no header", st);
            assert_non_null(strstr(head, "WWW-Authenticate: Bearer realm=\"weir\""));
            const char *e = jstr(j, "error");
            assert_non_null(e);
            assert_non_null(strstr(e, "rest.auth.token"));
            json_decref(j);
        }
    }
    assert_int_equal(http_ex(f, "GET", "/jobs", NULL, NULL, 0, &j, NULL, 0), 401);
    assert_string_equal(jstr(j, "error"), "authentication required: send Authorization: Bearer "
                                          "<token> with the job manager's rest.auth.token");
    json_decref(j);
    assert_int_equal(http_ex(f, "GET", "/jobs", "Authorization: Bearer nope\r\n", NULL, 0, &j, head,
                             sizeof head),
                     401);
    assert_string_equal(
        jstr(j, "error"),
        "invalid bearer token: it does not match the job manager's rest.auth.token");
    assert_non_null(strstr(head, "error=\"invalid_token\""));
    json_decref(j);

    /* the token; the scheme in any case, spaces around the token */
    const char *ok = "Authorization: Bearer " TOKEN "\r\n";
    assert_int_equal(http_ex(f, "GET", "/jobs", ok, NULL, 0, &j, NULL, 0), 200);
    assert_int_equal(json_array_size(json_object_get(j, "jobs")), 0);
    json_decref(j);
    assert_int_equal(
        http_ex(f, "GET", "/jobs", "authorization: bEaReR   " TOKEN "  \r\n", NULL, 0, &j, NULL, 0),
        200);
    json_decref(j);
    /* GET /jobmanager/config never shows the token */
    char *answer;
    assert_int_equal(http_raw(f, "GET", "/jobmanager/config", ok, NULL, 0, &answer), 200);
    assert_null(strstr(answer, TOKEN));
    json_t *cfg = json_loads(strstr(answer, "\r\n\r\n") + 4, 0, NULL);
    free(answer);
    assert_true(json_is_array(cfg));
    size_t k;
    json_t *kv;
    int seen = 0;
    json_array_foreach(cfg, k, kv) {
        if (!strcmp(jstr(kv, "key"), "rest.auth.token")) {
            assert_string_equal(jstr(kv, "value"), "******");
            seen++;
        }
        if (!strcmp(jstr(kv, "key"), "rest.max-request-size")) {
            assert_string_equal(jstr(kv, "value"), "4kb");
            seen++;
        }
    }
    assert_int_equal(seen, 2);
    json_decref(cfg);

    /* a refused upload is not stored: the job that names it is refused as unknown */
    assert_int_equal(http(f, "POST", "/blobs", "abc", 3, &j), 401);
    json_decref(j);
    const char *sha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    char body[8192];
    snprintf(body, sizeof body, "{\"plugin\":\"%s\",\"graph\":%s}", sha, GRAPH);
    assert_int_equal(http_ex(f, "POST", "/jobs", ok, body, strlen(body), &j, NULL, 0), 400);
    assert_non_null(strstr(jstr(j, "error"), "unknown plugin blob"));
    json_decref(j);
    assert_int_equal(http_ex(f, "POST", "/blobs", ok, "abc", 3, &j, NULL, 0), 200);
    assert_string_equal(jstr(j, "sha256"), sha);
    json_decref(j);

    /* rest.max-request-size (4kb here) for JSON, 413 only with the token; /blobs has its own */
    char *big = malloc(64 * 1024);
    memset(big, ' ', 64 * 1024);
    assert_int_equal(http_ex(f, "POST", "/jobs", ok, big, 4097, &j, NULL, 0), 413);
    assert_string_equal(jstr(j, "error"),
                        "request body too large: at most 4096 bytes (rest.max-request-size)");
    json_decref(j);
    assert_int_equal(http_ex(f, "POST", "/jobs", NULL, big, 4097, &j, NULL, 0), 401);
    json_decref(j);
    assert_int_equal(http_ex(f, "POST", "/jobs", ok, big, 4096, &j, NULL, 0), 400);
    assert_non_null(strstr(jstr(j, "error"), "not JSON"));
    json_decref(j);
    assert_int_equal(http_ex(f, "POST", "/blobs", ok, big, 64 * 1024, &j, NULL, 0), 200);
    json_decref(j);
    free(big);
}

/* The default rest.max-request-size (1 MiB) without a token: 413 for a larger JSON body, a larger
 * plugin upload still accepted. */
static void test_body_limit(void **state) {
    fx_t *f = *state;
    json_t *j;
    size_t n = (1u << 20) + 1;
    char *big = malloc(n);
    memset(big, ' ', n);
    assert_int_equal(http(f, "POST", "/jobs", big, n, &j), 413);
    assert_string_equal(jstr(j, "error"),
                        "request body too large: at most 1048576 bytes (rest.max-request-size)");
    json_decref(j);
    assert_int_equal(http(f, "PATCH", "/jobs/0123", big, n, &j), 413);
    json_decref(j);
    assert_int_equal(http(f, "POST", "/blobs", big, n, &j), 200);
    json_decref(j);
    assert_int_equal(http(f, "POST", "/jobs", big, n - 1, &j), 400);
    json_decref(j);
    free(big);
}

static void cfg_set(weir_config_t *cfg, const char *key, const char *value) {
    char err[512];
    if (weir_config_set(cfg, key, value, err, sizeof err) != 0)
        fail_msg("%s", err);
}

/* One line naming the key for each mistake in the REST settings; the token kept as its sha256. */
static void test_rest_config(void **state) {
    (void)state;
    char *dir = weir_test_tmpdir("jmrestcfg");
    char err[1024], path[700], want[1400];
    weir_config_t *cfg = weir_config_new();
    weir_rest_config_t rc;
    assert_int_equal(weir_rest_config_load(cfg, &rc, err, sizeof err), 0);
    assert_false(rc.auth);
    assert_null(rc.cert_pem);
    assert_true(rc.max_request == 1u << 20);
    assert_int_equal(rc.max_connections, 64);
    assert_int_equal(rc.idle_timeout_s, 30);
    weir_rest_config_clear(&rc);

    /* sha256 of the token by coreutils: printf %s TOKEN | sha256sum */
    cfg_set(cfg, "rest.auth.token", TOKEN);
    cfg_set(cfg, "rest.idleness-timeout", "1500ms");
    assert_int_equal(weir_rest_config_load(cfg, &rc, err, sizeof err), 0);
    assert_true(rc.auth);
    assert_string_equal(rc.token_sha256,
                        "11c9d369fede3e1f6b899621d7964108d4009908552e20618962464462673c78");
    assert_int_equal(rc.idle_timeout_s, 2);
    weir_rest_config_clear(&rc);
    assert_false(rc.auth);

    const char *bounds[][3] = {
        {"rest.max-request-size", "1023",
         "bad value '1023' for rest.max-request-size (a size from 1kb to 256mb)"},
        {"rest.max-request-size", "257mb",
         "bad value '257mb' for rest.max-request-size (a size from 1kb to 256mb)"},
        {"rest.idleness-timeout", "999ms",
         "bad value '999ms' for rest.idleness-timeout (a duration from 1s to 1d)"},
    };
    for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++) {
        weir_config_t *c2 = weir_config_new();
        cfg_set(c2, bounds[i][0], bounds[i][1]);
        assert_int_equal(weir_rest_config_load(c2, &rc, err, sizeof err), WEIR_ECONFIG);
        assert_string_equal(err, bounds[i][2]);
        weir_config_destroy(&c2);
    }

    cfg_set(cfg, "rest.ssl.enabled", "true");
    assert_int_equal(weir_rest_config_load(cfg, &rc, err, sizeof err), WEIR_ECONFIG);
    assert_string_equal(
        err, "rest.ssl.enabled is true but rest.ssl.certificate is not set: set it to a PEM file");
    snprintf(path, sizeof path, "%s/cert.pem", dir);
    cfg_set(cfg, "rest.ssl.certificate", path);
    cfg_set(cfg, "rest.ssl.key", path);
    assert_int_equal(weir_rest_config_load(cfg, &rc, err, sizeof err), WEIR_ECONFIG);
    snprintf(want, sizeof want, "cannot read rest.ssl.certificate %s: No such file or directory",
             path);
    assert_string_equal(err, want);
    assert_int_equal(weir_write_file_atomic(path, "not a certificate\n", 18), 0);
    assert_int_equal(weir_rest_config_load(cfg, &rc, err, sizeof err), WEIR_ECONFIG);
    snprintf(want, sizeof want,
             "rest.ssl.certificate %s is not a PEM certificate (-----BEGIN CERTIFICATE-----)",
             path);
    assert_string_equal(err, want);
    assert_null(rc.cert_pem);

    /* the job manager refuses to start on the same mistakes */
    snprintf(path, sizeof path, "%s/no-token", dir);
    cfg_set(cfg, "rest.ssl.enabled", "false");
    cfg_set(cfg, "rest.auth.token", NULL);
    cfg_set(cfg, "rest.auth.token-file", path);
    cfg_set(cfg, "rest.port", "0");
    cfg_set(cfg, "jobmanager.rpc.port", "0");
    snprintf(want, sizeof want, "%s/blobs", dir);
    cfg_set(cfg, "blob.storage.directory", want);
    weir_jobmanager_t *jm = weir_jobmanager_new(cfg, err, sizeof err);
    assert_null(jm);
    snprintf(want, sizeof want, "cannot read rest.auth.token-file %s: No such file or directory",
             path);
    assert_string_equal(err, want);
    weir_config_destroy(&cfg);
    weir_test_tmpdir_remove(dir);
}

/* ------------------------------------------------------------ attempt fencing of slots */

/* slots_free of task manager @p id in GET /taskmanagers (-1 when it is not listed). */
static int tm_slots_free(fx_t *f, const char *id) {
    json_t *j;
    assert_int_equal(http(f, "GET", "/taskmanagers", NULL, 0, &j), 200);
    json_t *tms = json_object_get(j, "taskmanagers");
    int free_slots = -1;
    for (size_t i = 0; i < json_array_size(tms); i++)
        if (!strcmp(jstr(json_array_get(tms, i), "id"), id))
            free_slots =
                (int)json_integer_value(json_object_get(json_array_get(tms, i), "slots_free"));
    json_decref(j);
    return free_slots;
}

typedef struct slots_wait {
    fx_t *f;
    const char *id;
    int want;
} slots_wait_t;

static bool slots_are(void *arg) {
    slots_wait_t *w = arg;
    return tm_slots_free(w->f, w->id) == w->want;
}

/* Waits (5 s) until task manager @p id shows @p want free slots. */
static void wait_slots_free(fx_t *f, const char *id, int want) {
    slots_wait_t w = {.f = f, .id = id, .want = want};
    if (!weir_test_wait_until(slots_are, &w, 5000, 10))
        fail_msg("task manager %s: %d free slots, expected %d", id, tm_slots_free(f, id), want);
}

/* Receives @p n DEPLOYs of (@p job, @p attempt) on @p s; every one must place subtask (v, s) of
 * slot 0 at @p slot0 and of slot 1 at @p slot1. */
static void expect_attempt(weir_mock_tm_t *s, const char *job, uint32_t attempt, int n,
                           const char *slot0, const char *slot1) {
    for (int i = 0; i < n; i++) {
        weir_msg_t m;
        assert_int_equal(weir_mock_tm_expect(s, WEIR_MSG_DEPLOY, &m, 5000), 0);
        assert_string_equal(m.job_id, job);
        assert_int_equal(m.attempt, attempt);
        assert_string_equal(m.placement[0][0], slot0);
        assert_string_equal(m.placement[1][0], slot0);
        assert_string_equal(m.placement[0][1], slot1);
        weir_msg_clear(&m);
    }
}

/* A failover whose CANCEL one live task manager never confirms: after the stop bound the job
 * restarts on other slots, and the unconfirmed task manager's slot stays taken until it confirms
 * (before the fix its slot was freed after the bound and the next attempt was deployed into it,
 * beside a task of the old attempt that may still run). */
static void test_unconfirmed_cancel_keeps_slot(void **state) {
    fx_t *f = *state;
    pthread_mutex_lock(&f->jm->mu);
    f->jm->cancel_bound_ms = 300;
    pthread_mutex_unlock(&f->jm->mu);
    char sha[65], id[33];
    upload_plugin(f, sha);
    weir_mock_tm_t *a = tm_register(f, "tm-a", "tcp://a:1", 1);
    weir_mock_tm_t *b = tm_register(f, "tm-b", "tcp://b:1", 1);
    weir_mock_tm_t *c = tm_register(f, "tm-c", "tcp://c:1", 1);
    submit(f, sha, id);
    expect_attempt(a, id, 1, 2, "tcp://a:1", "tcp://b:1");
    expect_attempt(b, id, 1, 1, "tcp://a:1", "tcp://b:1");
    weir_mock_tm_task_state(b, id, 1, 0, 1, WEIR_TASK_FAILED, "boom", NULL);
    weir_msg_t m;
    assert_int_equal(weir_mock_tm_expect(a, WEIR_MSG_CANCEL, &m, 5000), 0);
    assert_int_equal(m.attempt, 1);
    weir_msg_clear(&m);
    /* tm-a stays silent about its two subtasks (one slot): attempt 2 goes to tm-b and tm-c */
    expect_attempt(b, id, 2, 2, "tcp://b:1", "tcp://c:1");
    expect_attempt(c, id, 2, 1, "tcp://b:1", "tcp://c:1");
    json_t *j = get_job(f, id);
    assert_string_equal(jstr(j, "state"), "RUNNING");
    assert_int_equal(json_integer_value(json_object_get(j, "attempt")), 2);
    json_decref(j);
    assert_int_equal(tm_slots_free(f, "tm-a"), 0);
    assert_int_equal(tm_slots_free(f, "tm-b"), 0);
    assert_int_equal(tm_slots_free(f, "tm-c"), 0);
    /* tm-a confirms one subtask: the slot hosts the other one too */
    weir_mock_tm_task_state(a, id, 1, 0, 0, WEIR_TASK_CANCELED, NULL, NULL);
    weir_mock_tm_heartbeat(a);
    weir_mock_tm_expect(a, WEIR_MSG_HEARTBEAT_ACK, &m, 5000);
    weir_msg_clear(&m);
    assert_int_equal(tm_slots_free(f, "tm-a"), 0);
    /* ... and the other: the slot is offered again */
    weir_mock_tm_task_state(a, id, 1, 1, 0, WEIR_TASK_CANCELED, NULL, NULL);
    wait_slots_free(f, "tm-a", 1);
    j = get_job(f, id);
    assert_string_equal(jstr(j, "state"), "RUNNING");
    assert_int_equal(json_integer_value(json_object_get(j, "attempt")), 2);
    json_decref(j);
    weir_mock_tm_close(&a);
    weir_mock_tm_close(&b);
    weir_mock_tm_close(&c);
}

/* A task manager declared lost keeps no slot; when it comes back (the new attempt already runs
 * elsewhere) it is told to register, registers as a new instance offering its slots, and the
 * running attempt is not disturbed. A task it still runs of the old attempt (reported in its
 * heartbeat) draws a CANCEL and keeps its slot taken until it confirms. */
static void test_lost_tm_returns(void **state) {
    fx_t *f = *state;
    char sha[65], id[33];
    upload_plugin(f, sha);
    weir_mock_tm_t *a = tm_register(f, "tm-a", "tcp://a:1", 1);
    weir_mock_tm_t *b = tm_register(f, "tm-b", "tcp://b:1", 1);
    weir_mock_tm_t *c = tm_register(f, "tm-c", "tcp://c:1", 1);
    submit(f, sha, id);
    expect_attempt(a, id, 1, 2, "tcp://a:1", "tcp://b:1");
    expect_attempt(b, id, 1, 1, "tcp://a:1", "tcp://b:1");
    /* tm-b is lost (its connection goes; it may well be alive) */
    weir_mock_tm_close(&b);
    weir_msg_t m;
    assert_int_equal(weir_mock_tm_expect(a, WEIR_MSG_CANCEL, &m, 5000), 0);
    weir_msg_clear(&m);
    assert_int_equal(tm_slots_free(f, "tm-b"), -1);
    weir_mock_tm_task_state(a, id, 1, 0, 0, WEIR_TASK_CANCELED, NULL, NULL);
    weir_mock_tm_task_state(a, id, 1, 1, 0, WEIR_TASK_CANCELED, NULL, NULL);
    expect_attempt(a, id, 2, 2, "tcp://a:1", "tcp://c:1");
    expect_attempt(c, id, 2, 1, "tcp://a:1", "tcp://c:1");

    /* it comes back, still running its subtask of attempt 1 */
    weir_msg_task_state_t old = {
        .attempt = 1, .vertex = 0, .subtask = 1, .state = WEIR_TASK_RUNNING};
    memcpy(old.job_id, id, 33);
    b = weir_mock_tm_connect(f->zctx, f->jm->rpc_port, "tm-b");
    weir_mock_tm_heartbeat_tasks(b, &old, 1);
    assert_int_equal(weir_mock_tm_expect(b, WEIR_MSG_UNKNOWN, &m, 5000), 0);
    weir_msg_clear(&m);
    weir_msg_t reg = {.type = WEIR_MSG_REGISTER,
                      .tm_id = "tm-b",
                      .data_address = "tcp://b:1",
                      .host = "127.0.0.1",
                      .slots = 1,
                      .pid = 42};
    weir_mock_tm_send(b, &reg);
    assert_int_equal(weir_mock_tm_expect(b, WEIR_MSG_REGISTERED, &m, 5000), 0);
    weir_msg_clear(&m);
    assert_int_equal(tm_slots_free(f, "tm-b"), 1);
    json_t *j = get_job(f, id);
    assert_string_equal(jstr(j, "state"), "RUNNING");
    assert_int_equal(json_integer_value(json_object_get(j, "attempt")), 2);
    assert_int_equal(json_integer_value(json_object_get(j, "restarts")), 1);
    json_decref(j);
    /* had it registered without stopping that task, its heartbeat tells: CANCEL, slot taken */
    weir_mock_tm_heartbeat_tasks(b, &old, 1);
    assert_int_equal(weir_mock_tm_expect(b, WEIR_MSG_CANCEL, &m, 5000), 0);
    assert_string_equal(m.job_id, id);
    assert_int_equal(m.attempt, 1);
    weir_msg_clear(&m);
    assert_int_equal(tm_slots_free(f, "tm-b"), 0);
    /* once: the next heartbeat naming it draws no second CANCEL */
    weir_mock_tm_heartbeat_tasks(b, &old, 1);
    assert_int_equal(weir_mock_tm_expect(b, WEIR_MSG_HEARTBEAT_ACK, &m, 5000), 0);
    weir_msg_clear(&m);
    assert_int_equal(weir_mock_tm_expect(b, WEIR_MSG_CANCEL, &m, 200), -1);
    old.state = WEIR_TASK_CANCELED;
    weir_mock_tm_send(b, &(weir_msg_t){.type = WEIR_MSG_TASK_STATE, .tasks = &old, .n_tasks = 1});
    wait_slots_free(f, "tm-b", 1);
    /* the running attempt never noticed */
    j = get_job(f, id);
    assert_string_equal(jstr(j, "state"), "RUNNING");
    assert_int_equal(json_integer_value(json_object_get(j, "attempt")), 2);
    assert_int_equal(json_integer_value(json_object_get(j, "restarts")), 1);
    json_decref(j);
    weir_mock_tm_close(&a);
    weir_mock_tm_close(&b);
    weir_mock_tm_close(&c);
}

/* ------------------------------------------------------------ Flink-shaped views, /metrics, logs
 */

/* GET @p path (200 expected) and returns its JSON. */
static json_t *get_json(fx_t *f, const char *fmt, const char *id) {
    char path[256];
    snprintf(path, sizeof path, fmt, id);
    json_t *j;
    int st = http(f, "GET", path, NULL, 0, &j);
    if (st != 200)
        fail_msg("GET %s: %d %s", path, st, json_dumps(j, 0));
    return j;
}

/* HEARTBEAT of tm-a: subtasks (0,0) and (1,0) running with @p m0 and zeros, and the task
 * manager's own figures (memory budget 1 GiB, RSS 123456789, metrics port 9249). */
static void heartbeat_figures(weir_mock_tm_t *a, const char *id, const weir_task_metrics_t *m0) {
    weir_msg_task_state_t ts[2] = {{.attempt = 1, .vertex = 0, .subtask = 0},
                                   {.attempt = 1, .vertex = 1, .subtask = 0}};
    for (int i = 0; i < 2; i++) {
        memcpy(ts[i].job_id, id, 33);
        ts[i].state = WEIR_TASK_RUNNING;
    }
    ts[0].metrics = *m0;
    weir_msg_t m = {.type = WEIR_MSG_HEARTBEAT,
                    .tm_id = a->id,
                    .tasks = ts,
                    .n_tasks = 2,
                    .metrics_port = 9249,
                    .rss_bytes = 123456789,
                    .cpu_ns = 2500000000,
                    .mem_process = 1u << 30,
                    .mem_network_total = 64u << 20,
                    .mem_network_used = 1u << 20,
                    .mem_managed_total = 400u << 20,
                    .mem_managed_used = 10u << 20,
                    .mem_state_cache_total = 100u << 20,
                    .mem_state_cache_used = 3u << 20};
    weir_mock_tm_send(a, &m);
}

typedef struct vertex_wait {
    fx_t *f;
    const char *id;
    int64_t write_records; /* of subtask 0 of vertex 0 */
    const char *level;     /* NULL, or the backpressure level of that subtask */
} vertex_wait_t;

static bool vertex_reached(void *arg) {
    vertex_wait_t *w = arg;
    json_t *j = get_json(
        w->f, w->level ? "/jobs/%s/vertices/0/backpressure" : "/jobs/%s/vertices/0", w->id);
    json_t *s0 = json_array_get(json_object_get(j, "subtasks"), 0);
    bool ok = w->level ? !strcmp(jstr(s0, "backpressure-level"), w->level)
                       : json_integer_value(json_object_get(json_object_get(s0, "metrics"),
                                                            "write-records")) == w->write_records;
    json_decref(j);
    return ok;
}

static int64_t jint(json_t *j, const char *key) {
    json_t *v = json_object_get(j, key);
    if (!json_is_integer(v))
        fail_msg("\"%s\" is not an integer", key);
    return json_integer_value(v);
}

static void test_flink_views(void **state) {
    fx_t *f = *state;
    char sha[65], id[33];
    weir_mock_tm_t *a, *b;
    deploy_on_two_tms(f, sha, id, &a, &b);
    json_decref(wait_state(f, id, "RUNNING", NULL));
    tm_task_state(a, id, 0, 0, WEIR_TASK_RUNNING, NULL, 0);

    /* two reports of (0,0): records and bytes, then 10 s backpressured within them (ratio 1) */
    weir_task_metrics_t m0 = {.records_in = 10,
                              .records_out = 20,
                              .bytes_in_remote = 100,
                              .bytes_in_local = 50,
                              .bytes_out_remote = 7,
                              .bytes_out_local = 3,
                              .busy_ns = 4000000,
                              .idle_ns = 5000000,
                              .watermark = INT64_MIN,
                              .kafka_lag = -1};
    heartbeat_figures(a, id, &m0);
    vertex_wait_t w = {.f = f, .id = id, .write_records = 20};
    assert_true(weir_test_wait_until(vertex_reached, &w, 5000, 20));
    m0.backpressured_ns = 10000000000ull;
    m0.records_out = 21;
    heartbeat_figures(a, id, &m0);
    w.level = "high";
    assert_true(weir_test_wait_until(vertex_reached, &w, 5000, 20));

    json_t *j = get_json(f, "/jobs/%s/vertices/0", id);
    assert_string_equal(jstr(j, "name"), "src -> m");
    assert_int_equal(jint(j, "parallelism"), 2);
    assert_int_equal(jint(j, "maxParallelism"), 128);
    json_t *s0 = json_array_get(json_object_get(j, "subtasks"), 0);
    assert_string_equal(jstr(s0, "status"), "RUNNING");
    assert_string_equal(jstr(s0, "taskmanager-id"), "tm-a");
    assert_string_equal(jstr(s0, "endpoint"), "tcp://a:1");
    assert_int_equal(jint(s0, "attempt"), 0);
    assert_true(jint(s0, "start-time") > 0);
    assert_int_equal(jint(s0, "end-time"), -1);
    json_t *mt = json_object_get(s0, "metrics");
    assert_int_equal(jint(mt, "read-bytes"), 150);
    assert_int_equal(jint(mt, "write-bytes"), 10);
    assert_int_equal(jint(mt, "read-records"), 10);
    assert_int_equal(jint(mt, "write-records"), 21);
    assert_int_equal(jint(mt, "accumulated-backpressured-time"), 10000);
    assert_int_equal(jint(mt, "accumulated-busy-time"), 4);
    assert_int_equal(jint(mt, "accumulated-idle-time"), 5);
    assert_string_equal(jstr(json_array_get(json_object_get(j, "subtasks"), 1), "taskmanager-id"),
                        "tm-b");
    json_decref(j);
    j = get_json(f, "/jobs/%s/vertices/0/backpressure", id);
    assert_string_equal(jstr(j, "backpressure-level"), "high");
    s0 = json_array_get(json_object_get(j, "subtasks"), 0);
    assert_true(json_real_value(json_object_get(s0, "ratio")) == 1.0);
    /* subtask 1 reported nothing: no ratio yet */
    assert_string_equal(
        jstr(json_array_get(json_object_get(j, "subtasks"), 1), "backpressure-level"), "ok");
    json_decref(j);
    char path[160];
    snprintf(path, sizeof path, "/jobs/%s/vertices/2", id);
    assert_int_equal(http(f, "GET", path, NULL, 0, &j), 404);
    json_decref(j);
    snprintf(path, sizeof path, "/jobs/%s/vertices/x/backpressure", id);
    assert_int_equal(http(f, "GET", path, NULL, 0, &j), 404);
    json_decref(j);
    assert_int_equal(http(f, "GET", "/jobs/0123/exceptions", NULL, 0, &j), 404);
    assert_string_equal(jstr(j, "error"), "no such job: 0123");
    json_decref(j);

    j = get_json(f, "/overview", NULL);
    assert_int_equal(jint(j, "taskmanagers"), 2);
    assert_int_equal(jint(j, "slots-total"), 2);
    assert_int_equal(jint(j, "slots-available"), 0);
    assert_int_equal(jint(j, "jobs-running"), 1);
    json_decref(j);
    j = get_json(f, "/jobs/overview", NULL);
    json_t *j0 = json_array_get(json_object_get(j, "jobs"), 0);
    assert_string_equal(jstr(j0, "jid"), id);
    assert_string_equal(jstr(j0, "state"), "RUNNING");
    assert_int_equal(jint(json_object_get(j0, "tasks"), "total"), 3);
    /* heartbeats carry metrics only: (0,0) reported RUNNING, the others are still DEPLOYING */
    assert_int_equal(jint(json_object_get(j0, "tasks"), "running"), 1);
    assert_int_equal(jint(json_object_get(j0, "tasks"), "deploying"), 2);
    json_decref(j);
    j = get_json(f, "/taskmanagers/tm-a", NULL);
    assert_int_equal(jint(j, "slotsNumber"), 1);
    assert_int_equal(jint(j, "freeSlots"), 0);
    assert_int_equal(jint(j, "dataPort"), 1);
    assert_int_equal(jint(json_object_get(j, "memoryConfiguration"), "totalProcessMemory"),
                     1 << 30);
    assert_int_equal(jint(json_object_get(j, "memoryConfiguration"), "managedMemory"), 400 << 20);
    assert_int_equal(jint(json_object_get(j, "metrics"), "residentMemory"), 123456789);
    assert_int_equal(jint(json_object_get(j, "metrics"), "managedMemoryUsed"), 10 << 20);
    assert_int_equal(jint(json_object_get(j, "metrics"), "cpuTime"), 2500);
    assert_int_equal(jint(json_object_get(j, "metrics"), "metricsPort"), 9249);
    assert_string_equal(jstr(json_array_get(json_object_get(j, "allocatedSlots"), 0), "jobId"), id);
    json_decref(j);
    assert_int_equal(http(f, "GET", "/taskmanagers/nope", NULL, 0, &j), 404);
    assert_string_equal(jstr(j, "error"), "no such task manager: nope");
    json_decref(j);
    j = get_json(f, "/jobs/%s/checkpoints/config", id);
    assert_false(json_is_true(json_object_get(j, "enabled")));
    json_decref(j);
    snprintf(path, sizeof path, "/jobs/%s/checkpoints/details/1", id);
    assert_int_equal(http(f, "GET", path, NULL, 0, &j), 404);
    json_decref(j);
    j = get_json(f, "/config", NULL);
    assert_int_equal(jint(j, "refresh-interval"), 3000);
    json_decref(j);

    /* /metrics: the subtask's counters with every label, the task manager's figures */
    char *answer;
    assert_int_equal(http_raw(f, "GET", "/metrics", NULL, NULL, 0, &answer), 200);
    assert_non_null(strstr(answer, "Content-Type: text/plain; version=0.0.4; charset=utf-8"));
    char line[512];
    snprintf(line, sizeof line,
             "\nweir_task_records_out_total{job_id=\"%s\",job_name=\"testjob\",vertex=\"src -> "
             "m\",vertex_id=\"0\",subtask=\"0\",tm_id=\"tm-a\"} 21\n",
             id);
    assert_non_null(strstr(answer, line));
    snprintf(line, sizeof line,
             "\nweir_task_backpressured_seconds_total{job_id=\"%s\",job_name=\"testjob\","
             "vertex=\"src -> m\",vertex_id=\"0\",subtask=\"0\",tm_id=\"tm-a\"} 10.000000000\n",
             id);
    assert_non_null(strstr(answer, line));
    snprintf(line, sizeof line,
             "\nweir_job_state{job_id=\"%s\",job_name=\"testjob\",state=\"RUNNING\"} 1\n", id);
    assert_non_null(strstr(answer, line));
    assert_non_null(strstr(answer, "\nweir_taskmanager_resident_memory_bytes{tm_id=\"tm-a\"} "
                                   "123456789\n"));
    assert_non_null(strstr(answer, "\nweir_taskmanager_memory_budget_bytes{tm_id=\"tm-a\","
                                   "pool=\"process\"} 1073741824\n"));
    assert_non_null(strstr(answer, "\nweir_jobmanager_slots 2\n"));
    /* no watermark yet (INT64_MIN), not a Kafka source (-1): no such series for (0,0) */
    snprintf(line, sizeof line,
             "weir_task_watermark_seconds{job_id=\"%s\",job_name=\"testjob\","
             "vertex=\"src -> m\",vertex_id=\"0\",subtask=\"0\"",
             id);
    assert_null(strstr(answer, line));
    free(answer);

    /* a watermark (ms since the epoch) is exposed in seconds */
    m0.watermark = 1700000000123;
    heartbeat_figures(a, id, &m0);
    snprintf(line, sizeof line,
             "\nweir_task_watermark_seconds{job_id=\"%s\",job_name=\"testjob\","
             "vertex=\"src -> m\",vertex_id=\"0\",subtask=\"0\",tm_id=\"tm-a\"} 1700000000.12",
             id);
    bool seen = false;
    for (int i = 0; i < 250 && !seen; i++) {
        assert_int_equal(http_raw(f, "GET", "/metrics", NULL, NULL, 0, &answer), 200);
        seen = strstr(answer, line) != NULL;
        free(answer);
        if (!seen)
            usleep(20000);
    }
    assert_true(seen);

    /* a task failure: the exception names the task and its task manager */
    tm_task_state(b, id, 0, 1, WEIR_TASK_FAILED, "boom", 0);
    json_decref(wait_state(f, id, "FAILED", NULL));
    j = get_json(f, "/jobs/%s/exceptions", id);
    json_t *e0 =
        json_array_get(json_object_get(json_object_get(j, "exceptionHistory"), "entries"), 0);
    assert_string_equal(jstr(e0, "exceptionName"), "TaskFailure");
    assert_string_equal(jstr(e0, "stacktrace"), "src -> m (2/2) on tm-b: boom");
    assert_string_equal(jstr(e0, "taskName"), "src -> m (2/2)");
    assert_string_equal(jstr(e0, "taskManagerId"), "tm-b");
    assert_string_equal(jstr(e0, "location"), "tcp://b:1");
    assert_true(jint(e0, "timestamp") > 0);
    assert_string_equal(jstr(j, "root-exception"), "src -> m (2/2) on tm-b: boom");
    json_decref(j);
    weir_mock_tm_close(&a);
    weir_mock_tm_close(&b);
}

/* The exposition escapes label values (Prometheus text format 0.0.4). */
static void test_prom_label_escape(void **state) {
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    weir_prom_label(m, "a\"b\\c\nd");
    fclose(m);
    assert_string_equal(buf, "a\\\"b\\\\c\\nd");
    free(buf);
}

/* The exception history keeps the newest WEIR_JM_EXCEPTION_HISTORY failures, newest first, and
 * says it dropped older ones. */
static void test_exception_ring(void **state) {
    (void)state;
    weir_jm_job_t *job = calloc(1, sizeof *job);
    char line[32];
    for (int i = 0; i < 20; i++) {
        snprintf(line, sizeof line, "failure %d", i);
        weir_jm_cause_t cause = {.task = "t (1/1)", .tm_id = "tm-x"};
        weir__jm_exception_add_locked(job, "TaskFailure", line, i % 2 ? &cause : NULL);
    }
    json_t *j = weir__jm_exceptions_json_locked(job);
    json_t *entries = json_object_get(json_object_get(j, "exceptionHistory"), "entries");
    assert_int_equal(json_array_size(entries), WEIR_JM_EXCEPTION_HISTORY);
    assert_string_equal(jstr(json_array_get(entries, 0), "stacktrace"), "failure 19");
    assert_string_equal(jstr(json_array_get(entries, 0), "taskManagerId"), "tm-x");
    assert_true(json_is_null(json_object_get(json_array_get(entries, 1), "taskManagerId")));
    assert_string_equal(jstr(json_array_get(entries, 15), "stacktrace"), "failure 4");
    assert_true(json_is_true(json_object_get(j, "truncated")));
    assert_string_equal(jstr(j, "root-exception"), "failure 19");
    json_decref(j);
    weir__jm_exceptions_free(job);
    free(job);
}

typedef struct log_client {
    fx_t *f;
    const char *path;
    int status;
    char *answer;
    int64_t ms; /* how long the request took */
} log_client_t;

static void *log_client(void *arg) {
    log_client_t *c = arg;
    int64_t t0 = weir_now_ns();
    c->status = http_raw(c->f, "GET", c->path, NULL, NULL, 0, &c->answer);
    c->ms = (weir_now_ns() - t0) / 1000000;
    return NULL;
}

static void send_log(weir_mock_tm_t *tm, uint64_t request_id, const char *tail) {
    weir_msg_t m = {.type = WEIR_MSG_LOG,
                    .tm_id = tm->id,
                    .request_id = request_id,
                    .log_tail = (uint8_t *)tail,
                    .log_tail_len = strlen(tail)};
    weir_mock_tm_send(tm, &m);
}

/* GET /taskmanagers/{id}/log: 404 unknown, 400 bad bytes, the tail of the LOG answer (cut to
 * bytes from a line start) while the REST server keeps answering others, 504 after 5 s of
 * silence, a late answer ignored. */
static void test_log_proxy(void **state) {
    fx_t *f = *state;
    weir_mock_tm_t *a = tm_register(f, "tm-a", "tcp://a:1", 1);
    json_t *j;
    assert_int_equal(http(f, "GET", "/taskmanagers/nope/log", NULL, 0, &j), 404);
    assert_string_equal(jstr(j, "error"), "no such task manager: nope");
    json_decref(j);
    assert_int_equal(http(f, "GET", "/taskmanagers/tm-a/log?bytes=0", NULL, 0, &j), 400);
    assert_string_equal(jstr(j, "error"), "bad value '0' for bytes: an integer from 1 to 1048576");
    json_decref(j);
    assert_int_equal(http(f, "GET", "/taskmanagers/tm-a/log?bytes=1048577", NULL, 0, &j), 400);
    json_decref(j);

    log_client_t c = {.f = f, .path = "/taskmanagers/tm-a/log?bytes=12"};
    pthread_t t;
    pthread_create(&t, NULL, log_client, &c);
    weir_msg_t m;
    assert_int_equal(weir_mock_tm_expect(a, WEIR_MSG_LOG_REQUEST, &m, 5000), 0);
    assert_int_equal(m.max_bytes, 12);
    uint64_t rid = m.request_id;
    weir_msg_clear(&m);
    /* the REST thread is not blocked by the waiting request */
    assert_int_equal(http(f, "GET", "/healthz", NULL, 0, &j), 200);
    json_decref(j);
    send_log(a, rid + 100, "not this one\n"); /* answers nothing: dropped */
    send_log(a, rid, "first line\nsecond\nthird\n");
    pthread_join(t, NULL);
    assert_int_equal(c.status, 200);
    assert_non_null(strstr(c.answer, "Content-Type: text/plain; charset=utf-8"));
    assert_string_equal(strstr(c.answer, "\r\n\r\n") + 4, "third\n");
    free(c.answer);

    /* the default size; no answer within 5 s: 504 */
    log_client_t c2 = {.f = f, .path = "/taskmanagers/tm-a/log"};
    pthread_create(&t, NULL, log_client, &c2);
    assert_int_equal(weir_mock_tm_expect(a, WEIR_MSG_LOG_REQUEST, &m, 5000), 0);
    assert_int_equal(m.max_bytes, 65536);
    rid = m.request_id;
    weir_msg_clear(&m);
    pthread_join(t, NULL);
    assert_int_equal(c2.status, 504);
    assert_true(c2.ms >= 4900 && c2.ms < 9000);
    j = json_loads(strstr(c2.answer, "\r\n\r\n") + 4, 0, NULL);
    assert_string_equal(jstr(j, "error"), "task manager tm-a did not send its log within 5000 ms "
                                          "(is it frozen or overloaded?)");
    json_decref(j);
    free(c2.answer);
    send_log(a, rid, "too late\n"); /* ignored */
    assert_int_equal(http(f, "GET", "/healthz", NULL, 0, &j), 200);
    json_decref(j);
    weir_mock_tm_close(&a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rest_basics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_job_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_job_finishes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_options_masked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_failure_and_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tm_lost, setup_short_hb, teardown),
        cmocka_unit_test_setup_teardown(test_tm_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slot_timeout, setup_short_slots, teardown),
        cmocka_unit_test_setup_teardown(test_blob_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_restart_final, setup_ckpt, teardown),
        cmocka_unit_test_setup_teardown(test_savepoint_stop_resume, setup_savepoints, teardown),
        cmocka_unit_test_setup_teardown(test_auth, setup_auth, teardown),
        cmocka_unit_test_setup_teardown(test_body_limit, setup, teardown),
        cmocka_unit_test(test_rest_config),
        cmocka_unit_test_setup_teardown(test_unconfirmed_cancel_keeps_slot, setup_ckpt, teardown),
        cmocka_unit_test_setup_teardown(test_lost_tm_returns, setup_ckpt, teardown),
        cmocka_unit_test_setup_teardown(test_flink_views, setup, teardown),
        cmocka_unit_test(test_prom_label_escape),
        cmocka_unit_test(test_exception_ring),
        cmocka_unit_test_setup_teardown(test_log_proxy, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
