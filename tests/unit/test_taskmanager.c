/* Tests of the task manager's control loop (taskmanager/taskmanager.c) against a fake job manager:
 * a ZeroMQ ROUTER in the test speaking common/proto.h, a real weir_taskmanager_t on its own thread
 * running subtasks of the slowsink test plugin (an unbounded source into a slow sink: its tasks run
 * until canceled). Covers attempt fencing: a DEPLOY, TRIGGER or NOTIFY of an attempt older than
 * one that ran here is rejected; a DEPLOY of a newer attempt cancels the older one's tasks; a
 * re-registration (UNKNOWN) stops and joins every task before REGISTER goes out and refuses
 * deploys until REGISTERED. A TRIGGER's checkpoint kind and target reach the task (a
 * stop-with-savepoint). HEARTBEAT carries the /metrics port, RSS (checked against VmRSS) and CPU
 * time; LOG_REQUEST is answered with the log ring's tail. A malformed s3.* value (checkpoint
 * storage) makes weir-taskmanager exit 2 with the one line. Oracles: the messages the fake job
 * manager receives, in order. Every wait is bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <zmq.h>

#include "common/config.h"
#include "common/proto.h"
#include "common/util.h"
#include "runtime/graph/graph.h"
#include "runtime/graph/plugin.h"
#include "taskmanager/taskmanager.h"
#include "testutil.h"
#include "weir/host.h"

#define WAIT_MS 10000
#define JOB "0123456789abcdef0123456789abcdef"

typedef struct fx {
    char *dir;
    void *zctx, *router;
    int port;
    weir_taskmanager_t *tm;
    pthread_t thread;
    volatile sig_atomic_t stop;
    char plugin_path[1024];
    char sha[65];
    char *graph_json;
    char data_address[256]; /* the task manager's, from REGISTER */
} fx_t;

static void *tm_thread(void *arg) {
    fx_t *f = arg;
    weir_taskmanager_run(f->tm, &f->stop);
    return NULL;
}

/* ------------------------------------------------------------ the fake job manager */

static void jm_send(fx_t *f, const weir_msg_t *m) {
    uint8_t *data;
    size_t len;
    assert_int_equal(weir_msg_encode(m, &data, &len), 0);
    assert_int_equal(zmq_send(f->router, "tm-t", 4, ZMQ_SNDMORE), 4);
    assert_int_equal(zmq_send(f->router, data, len, 0), (int)len);
    free(data);
}

/* The next message from the task manager other than HEARTBEAT (BLOB_REQUEST is answered here).
 * @returns 0, or -1 after @p timeout_ms. */
static int jm_next(fx_t *f, weir_msg_t *out, int timeout_ms) {
    int64_t deadline = weir_now_ns() + (int64_t)timeout_ms * 1000000;
    for (;;) {
        int64_t left = (deadline - weir_now_ns()) / 1000000;
        if (left <= 0)
            return -1;
        zmq_pollitem_t it = {.socket = f->router, .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, left) <= 0)
            continue;
        zmq_msg_t id, body;
        zmq_msg_init(&id);
        zmq_msg_init(&body);
        assert_true(zmq_msg_recv(&id, f->router, 0) >= 0);
        assert_true(zmq_msg_more(&id));
        assert_true(zmq_msg_recv(&body, f->router, 0) >= 0);
        char err[256];
        memset(out, 0, sizeof *out);
        assert_int_equal(
            weir_msg_decode(zmq_msg_data(&body), zmq_msg_size(&body), out, err, sizeof err), 0);
        zmq_msg_close(&id);
        zmq_msg_close(&body);
        if (out->type == WEIR_MSG_HEARTBEAT) {
            weir_msg_clear(out);
            continue;
        }
        if (out->type == WEIR_MSG_BLOB_REQUEST) {
            assert_string_equal(out->blob_sha256, f->sha);
            weir_msg_t b = {.type = WEIR_MSG_BLOB};
            memcpy(b.blob_sha256, f->sha, 65);
            assert_int_equal(weir_read_file(f->plugin_path, &b.blob, &b.blob_len), 0);
            jm_send(f, &b);
            free(b.blob);
            weir_msg_clear(out);
            continue;
        }
        return 0;
    }
}

/* Waits for a message of @p type (others fail the test). */
static void jm_expect(fx_t *f, weir_msg_type_t type, weir_msg_t *out) {
    if (jm_next(f, out, WAIT_MS) != 0)
        fail_msg("no message of type %d from the task manager", (int)type);
    if (out->type != type)
        fail_msg("expected message type %d, got %d", (int)type, (int)out->type);
}

/* Waits for TASK_STATE of (attempt, vertex) in @p state; returns its message (malloc'd or NULL).
 * Other TASK_STATEs are skipped, any other message fails the test. */
static char *jm_expect_task(fx_t *f, uint32_t attempt, uint32_t vertex, weir_task_state_t state) {
    for (;;) {
        weir_msg_t m;
        jm_expect(f, WEIR_MSG_TASK_STATE, &m);
        weir_msg_task_state_t *ts = &m.tasks[0];
        bool match = ts->attempt == attempt && ts->vertex == vertex && ts->state == state;
        char *msg = match && ts->message ? strdup(ts->message) : NULL;
        weir_msg_clear(&m);
        if (match)
            return msg;
    }
}

/* Waits until both subtasks (vertex 0 and 1) of @p attempt reported RUNNING, in any order. */
static void jm_expect_running(fx_t *f, uint32_t attempt) {
    bool running[2] = {false, false};
    while (!running[0] || !running[1]) {
        weir_msg_t m;
        jm_expect(f, WEIR_MSG_TASK_STATE, &m);
        weir_msg_task_state_t *ts = &m.tasks[0];
        if (ts->attempt == attempt && ts->state == WEIR_TASK_RUNNING && ts->vertex < 2)
            running[ts->vertex] = true;
        weir_msg_clear(&m);
    }
}

static void jm_registered(fx_t *f) {
    weir_msg_t r = {.type = WEIR_MSG_REGISTERED, .heartbeat_interval_ms = 100};
    jm_send(f, &r);
}

/* DEPLOY of subtask 0 of @p vertex, attempt @p attempt (both vertices placed here), with
 * checkpointing in @p mode. */
static void jm_deploy_ck(fx_t *f, uint32_t attempt, uint32_t vertex, weir_checkpoint_mode_t mode) {
    uint32_t par[2] = {1, 1};
    char *row0[1] = {f->data_address}, *row1[1] = {f->data_address};
    char **placement[2] = {row0, row1};
    char *args[] = {"--sink-rate", "10000"};
    weir_msg_t d = {.type = WEIR_MSG_DEPLOY,
                    .attempt = attempt,
                    .job_name = "slowsink",
                    .graph_json = f->graph_json,
                    .args = args,
                    .n_args = 2,
                    .vertex = vertex,
                    .subtask = 0,
                    .n_vertices = 2,
                    .vertex_parallelism = par,
                    .placement = placement,
                    .checkpoint_mode = mode};
    memcpy(d.job_id, JOB, 33);
    memcpy(d.plugin_sha256, f->sha, 65);
    jm_send(f, &d);
}

/* DEPLOY of subtask 0 of @p vertex, attempt @p attempt, checkpointing off. */
static void jm_deploy(fx_t *f, uint32_t attempt, uint32_t vertex) {
    jm_deploy_ck(f, attempt, vertex, WEIR_CHECKPOINT_NONE);
}

static void jm_job_msg(fx_t *f, weir_msg_type_t type, uint32_t attempt) {
    weir_msg_t m = {.type = type, .attempt = attempt, .checkpoint_id = 5, .vertex = 0};
    memcpy(m.job_id, JOB, 33);
    jm_send(f, &m);
}

/* ------------------------------------------------------------ fixture */

static int setup(void **state) {
    fx_t *f = calloc(1, sizeof *f);
    f->dir = weir_test_tmpdir("tmfence");
    weir_test_plugin_path(WEIR_TEST_PLUGIN, "slowsink.so", f->plugin_path, sizeof f->plugin_path);
    uint8_t *bytes;
    size_t len;
    assert_int_equal(weir_read_file(f->plugin_path, &bytes, &len), 0);
    weir_sha256_hex(bytes, len, f->sha);
    free(bytes);
    char err[512] = "";
    weir_plugin_t *p = weir_plugin_open(f->plugin_path, err, sizeof err);
    if (!p)
        fail_msg("%s", err);
    /* a fast enough sink: a buffer (about 1300 records) takes about 0.1 s, so a cancel is quick */
    char *argv[] = {f->plugin_path, "--sink-rate", "10000"};
    weir_job_t *g = weir_plugin_build(p, 3, argv, 1, err, sizeof err);
    if (!g)
        fail_msg("%s", err);
    assert_int_equal(g->n_vertices, 2);
    json_t *j = weir_graph_to_json(g);
    f->graph_json = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    weir_graph_destroy(&g);
    weir_plugin_close(&p);

    f->zctx = zmq_ctx_new();
    f->router = zmq_socket(f->zctx, ZMQ_ROUTER);
    int zero = 0;
    zmq_setsockopt(f->router, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_bind(f->router, "tcp://127.0.0.1:*"), 0);
    char last[128];
    size_t sz = sizeof last;
    zmq_getsockopt(f->router, ZMQ_LAST_ENDPOINT, last, &sz);
    f->port = atoi(strrchr(last, ':') + 1);

    weir_config_t *cfg = weir_config_new();
    char port[16], wd[700];
    snprintf(port, sizeof port, "%d", f->port);
    snprintf(wd, sizeof wd, "%s/work", f->dir);
    const char *kv[][2] = {
        {"jobmanager.rpc.address", "127.0.0.1"},
        {"jobmanager.rpc.port", port},
        {"taskmanager.resource-id", "tm-t"},
        {"taskmanager.working-dir", wd},
        {"taskmanager.bind-host", "127.0.0.1"},
        {"taskmanager.host", "127.0.0.1"},
        {"taskmanager.numberOfTaskSlots", "2"},
        {"heartbeat.interval", "100ms"},
        {"heartbeat.timeout", "30s"},
        {"metrics.reporter.prom.port", "0"},
    };
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        if (weir_config_set(cfg, kv[i][0], kv[i][1], err, sizeof err) != 0)
            fail_msg("config %s: %s", kv[i][0], err);
    f->tm = weir_taskmanager_new(cfg, err, sizeof err);
    if (!f->tm)
        fail_msg("task manager: %s", err);
    assert_int_equal(pthread_create(&f->thread, NULL, tm_thread, f), 0);

    weir_msg_t m;
    jm_expect(f, WEIR_MSG_REGISTER, &m);
    assert_string_equal(m.tm_id, "tm-t");
    assert_int_equal(m.slots, 2);
    snprintf(f->data_address, sizeof f->data_address, "%s", m.data_address);
    weir_msg_clear(&m);
    jm_registered(f);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx_t *f = *state;
    f->stop = 1;
    pthread_join(f->thread, NULL);
    weir_taskmanager_destroy(&f->tm);
    zmq_close(f->router);
    zmq_ctx_term(f->zctx);
    free(f->graph_json);
    weir_test_tmpdir_remove(f->dir);
    free(f);
    return 0;
}

/* ------------------------------------------------------------ tests */

/* Older attempts are rejected once a newer one ran here; a newer DEPLOY cancels the older one's
 * tasks. */
static void test_older_attempts_rejected(void **state) {
    fx_t *f = *state;
    jm_deploy(f, 2, 0);
    jm_deploy(f, 2, 1);
    jm_expect_running(f, 2);

    /* a DEPLOY of attempt 1 (a job manager that lost track, or a message delayed across a
     * restart) fails at once */
    jm_deploy(f, 1, 0);
    char *why = jm_expect_task(f, 1, 0, WEIR_TASK_FAILED);
    assert_non_null(why);
    assert_non_null(strstr(why, "attempt 1 of job " JOB " is older than attempt 2, which already "
                                "ran on task manager tm-t"));
    free(why);
    /* a TRIGGER of attempt 1 is declined with the reason */
    jm_job_msg(f, WEIR_MSG_TRIGGER_CHECKPOINT, 1);
    weir_msg_t m;
    jm_expect(f, WEIR_MSG_DECLINE_CHECKPOINT, &m);
    assert_int_equal(m.attempt, 1);
    assert_string_equal(m.error, "a newer attempt of the job was deployed on this task manager");
    weir_msg_clear(&m);
    /* a NOTIFY of attempt 1 reaches no task: nothing comes back */
    jm_job_msg(f, WEIR_MSG_NOTIFY_CHECKPOINT, 1);
    assert_int_equal(jm_next(f, &m, 300), -1);

    /* attempt 3 of vertex 0 arrives while attempt 2 runs: attempt 2 is stale, canceled */
    jm_deploy(f, 3, 0);
    bool canceled[2] = {false, false}, running = false;
    while (!canceled[0] || !canceled[1] || !running) {
        jm_expect(f, WEIR_MSG_TASK_STATE, &m);
        weir_msg_task_state_t *ts = &m.tasks[0];
        if (ts->attempt == 2 && ts->state == WEIR_TASK_CANCELED)
            canceled[ts->vertex] = true;
        else if (ts->attempt == 3 && ts->state == WEIR_TASK_RUNNING)
            running = true;
        else
            assert_true(ts->attempt == 2 && ts->state == WEIR_TASK_CANCELING);
        weir_msg_clear(&m);
    }
    jm_job_msg(f, WEIR_MSG_CANCEL, 3);
    free(jm_expect_task(f, 3, 0, WEIR_TASK_CANCELED));
}

/* UNKNOWN: every task is stopped (final state sent, joined) before REGISTER goes out; a DEPLOY
 * that arrives before REGISTERED is refused; after REGISTERED deploys run again. */
static void test_reregister_stops_tasks_first(void **state) {
    fx_t *f = *state;
    jm_deploy(f, 1, 0);
    jm_deploy(f, 1, 1);
    jm_expect_running(f, 1);
    weir_msg_t u = {.type = WEIR_MSG_UNKNOWN};
    jm_send(f, &u);
    jm_send(f, &u); /* a second one (another queued heartbeat's answer) changes nothing */
    jm_deploy(f, 1, 0);
    bool ended[2] = {false, false}, refused = false;
    for (;;) {
        weir_msg_t m;
        if (jm_next(f, &m, WAIT_MS) != 0)
            fail_msg("the task manager did not register again");
        if (m.type == WEIR_MSG_REGISTER) {
            assert_int_equal(m.slots, 2);
            weir_msg_clear(&m);
            break;
        }
        assert_int_equal(m.type, WEIR_MSG_TASK_STATE);
        weir_msg_task_state_t *ts = &m.tasks[0];
        if (ts->state == WEIR_TASK_CANCELED) {
            ended[ts->vertex] = true;
        } else if (ts->state == WEIR_TASK_FAILED) {
            assert_non_null(strstr(ts->message, "task manager tm-t is registering again"));
            refused = true;
        } else {
            assert_int_equal(ts->state, WEIR_TASK_CANCELING);
        }
        weir_msg_clear(&m);
    }
    assert_true(ended[0] && ended[1]); /* both stopped before REGISTER */
    /* the refusal may also follow REGISTER (the tasks can stop before the DEPLOY is read): it
     * must come before REGISTERED; and nothing else comes, no second REGISTER */
    weir_msg_t m;
    while (jm_next(f, &m, 300) == 0) {
        assert_int_equal(m.type, WEIR_MSG_TASK_STATE);
        assert_false(refused);
        assert_int_equal(m.tasks[0].state, WEIR_TASK_FAILED);
        assert_non_null(strstr(m.tasks[0].message, "task manager tm-t is registering again"));
        refused = true;
        weir_msg_clear(&m);
    }
    assert_true(refused);
    jm_registered(f);
    jm_deploy(f, 2, 0);
    free(jm_expect_task(f, 2, 0, WEIR_TASK_RUNNING));
    jm_job_msg(f, WEIR_MSG_CANCEL, 2);
    free(jm_expect_task(f, 2, 0, WEIR_TASK_CANCELED));
}

/* A TRIGGER's kind and target reach the task: a stop-with-savepoint makes the source ack and
 * stop (the sink acks behind its barrier), the job keeps running, and the final NOTIFY of the stop
 * finishes both subtasks (they never reached end of input: the source is unbounded). With the
 * kind lost on the way, the source would go on and the final NOTIFY would be ignored. */
static void test_stop_with_savepoint_trigger(void **state) {
    fx_t *f = *state;
    jm_deploy_ck(f, 1, 0, WEIR_CHECKPOINT_EXACTLY_ONCE);
    jm_deploy_ck(f, 1, 1, WEIR_CHECKPOINT_EXACTLY_ONCE);
    jm_expect_running(f, 1);
    char target[1024];
    snprintf(target, sizeof target, "%s/savepoint-012345-0123456789ab", f->dir);
    weir_msg_t t = {.type = WEIR_MSG_TRIGGER_CHECKPOINT,
                    .attempt = 1,
                    .checkpoint_id = 7,
                    .checkpoint_timestamp = weir_wall_ms(),
                    .vertex = 0,
                    .subtask = 0,
                    .ck_kind = WEIR_CK_STOP,
                    .target = target};
    memcpy(t.job_id, JOB, 33);
    jm_send(f, &t);
    bool acked[2] = {false, false};
    while (!acked[0] || !acked[1]) {
        weir_msg_t m;
        jm_expect(f, WEIR_MSG_ACK_CHECKPOINT, &m);
        assert_int_equal(m.checkpoint_id, 7);
        assert_false(m.final);
        assert_true(m.vertex < 2);
        acked[m.vertex] = true;
        weir_msg_clear(&m);
    }
    /* stopped, not finished: nothing more comes until the final NOTIFY */
    weir_msg_t m;
    assert_int_equal(jm_next(f, &m, 300), -1);
    weir_msg_t n = {
        .type = WEIR_MSG_NOTIFY_CHECKPOINT, .attempt = 1, .checkpoint_id = 7, .final = true};
    memcpy(n.job_id, JOB, 33);
    jm_send(f, &n);
    bool finished[2] = {false, false};
    while (!finished[0] || !finished[1]) {
        jm_expect(f, WEIR_MSG_TASK_STATE, &m);
        weir_msg_task_state_t *ts = &m.tasks[0];
        assert_int_equal(ts->attempt, 1);
        assert_int_equal(ts->state, WEIR_TASK_FINISHED);
        finished[ts->vertex] = true;
        weir_msg_clear(&m);
    }
}

/* The next HEARTBEAT (other messages fail the test). */
static void jm_heartbeat(fx_t *f, weir_msg_t *out) {
    int64_t deadline = weir_now_ns() + (int64_t)WAIT_MS * 1000000;
    while (weir_now_ns() < deadline) {
        zmq_pollitem_t it = {.socket = f->router, .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, 100) <= 0)
            continue;
        zmq_msg_t id, body;
        zmq_msg_init(&id);
        zmq_msg_init(&body);
        assert_true(zmq_msg_recv(&id, f->router, 0) >= 0);
        assert_true(zmq_msg_recv(&body, f->router, 0) >= 0);
        char err[256];
        memset(out, 0, sizeof *out);
        assert_int_equal(
            weir_msg_decode(zmq_msg_data(&body), zmq_msg_size(&body), out, err, sizeof err), 0);
        zmq_msg_close(&id);
        zmq_msg_close(&body);
        if (out->type == WEIR_MSG_HEARTBEAT)
            return;
        fail_msg("expected a heartbeat, got message type %d", (int)out->type);
    }
    fail_msg("no heartbeat within %d ms", WAIT_MS);
}

/* VmRSS of /proc/self/status, in bytes (an oracle beside the task manager's statm reading). */
static uint64_t vmrss(void) {
    FILE *st = fopen("/proc/self/status", "r");
    assert_non_null(st);
    char line[256];
    uint64_t kb = 0;
    while (fgets(line, sizeof line, st))
        if (!strncmp(line, "VmRSS:", 6))
            kb = strtoull(line + 6, NULL, 10);
    fclose(st);
    return kb * 1024;
}

/* HEARTBEAT carries the /metrics port, RSS and CPU time; LOG_REQUEST is answered with LOG: the
 * tail of the log ring, at most max_bytes, from a line start, with the task manager's id on
 * every line. */
static void test_log_request_and_heartbeat_figures(void **state) {
    fx_t *f = *state;
    weir_msg_t hb;
    jm_heartbeat(f, &hb);
    assert_string_equal(hb.tm_id, "tm-t");
    assert_true(hb.metrics_port > 0); /* metrics.reporter.prom.port 0: a free port */
    uint64_t rss = vmrss();
    assert_true(hb.rss_bytes > rss / 2 && hb.rss_bytes < rss * 2);
    assert_true(hb.cpu_ns > 0);
    weir_msg_clear(&hb);

    const uint32_t maxes[] = {65536, 50};
    for (size_t i = 0; i < 2; i++) {
        weir_msg_t rq = {.type = WEIR_MSG_LOG_REQUEST, .request_id = 42 + i, .max_bytes = maxes[i]};
        jm_send(f, &rq);
        weir_msg_t m;
        jm_expect(f, WEIR_MSG_LOG, &m);
        assert_int_equal(m.request_id, 42 + i);
        assert_string_equal(m.tm_id, "tm-t");
        assert_true(m.log_tail_len <= maxes[i]);
        if (i == 0) {
            assert_true(m.log_tail_len > 0);
            char *tail = calloc(1, m.log_tail_len + 1);
            memcpy(tail, m.log_tail, m.log_tail_len);
            assert_int_equal(tail[m.log_tail_len - 1], '\n');
            assert_true(!strncmp(tail, "INFO ", 5) || !strncmp(tail, "WARN ", 5) ||
                        !strncmp(tail, "DEBUG ", 6) || !strncmp(tail, "ERROR ", 6));
            assert_non_null(strstr(tail, "Z tm-t taskmanager: registered at "));
            for (char *l = tail; *l; l = strchr(l, '\n') + 1)
                assert_non_null(strstr(l, "Z tm-t ")); /* every line names the task manager */
            free(tail);
        }
        weir_msg_clear(&m);
    }
}

/* A bad s3.* value is a configuration error: exit code 2 and one line on stderr naming the key,
 * before anything starts (no job manager is needed). */
static void test_bad_s3_setting_exits_2(void **state) {
    (void)state;
    char *dir = weir_test_tmpdir("tm-s3");
    char errf[700];
    snprintf(errf, sizeof errf, "%s/stderr", dir);
    int fd = open(errf, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fd, 2), 2);
    char a0[] = "weir-taskmanager", a1[] = "-D", a2[] = "s3.retry.max-attempts=0";
    char *argv[] = {a0, a1, a2, NULL};
    char *envp[] = {NULL};
    volatile sig_atomic_t stop = 1;
    int rc = weir_taskmanager_main(3, argv, envp, &stop);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fd);
    assert_int_equal(rc, 2);
    uint8_t *text = NULL;
    size_t len = 0;
    assert_int_equal(weir_read_file(errf, &text, &len), 0);
    assert_non_null(strstr((char *)text, "weir-taskmanager: "));
    assert_non_null(strstr((char *)text, "s3.retry.max-attempts"));
    assert_non_null(strchr((char *)text, '\n'));
    assert_ptr_equal(strchr((char *)text, '\n'), (char *)text + len - 1); /* one line */
    free(text);
    weir_test_tmpdir_remove(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_s3_setting_exits_2),
        cmocka_unit_test_setup_teardown(test_log_request_and_heartbeat_figures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_older_attempts_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reregister_stops_tasks_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_with_savepoint_trigger, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
