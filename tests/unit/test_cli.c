/* Tests of the `weir` command (cli/) as its binary runs it: weir_cli_main of libweir.so, in this
 * process, with stdout and stderr captured into files. The job manager is a scripted HTTP
 * responder on loopback (a thread here: each test's handler answers every request and the
 * responder logs what it got), so the requests the CLI sends (methods, paths, JSON bodies) and
 * what it prints for each answer are checked without a cluster. Covered: the usage errors of the
 * savepoint commands (exit 2, one line), `weir savepoint` and `weir stop` (request bodies, paths
 * made absolute, progress lines at most once per second, the final and failure lines), `weir run
 * -s` (savepointPath / allowNonRestoredState, a refused restore), and `weir validate` against
 * _metadata files written here from the documented format (savepoint/metadata.h), no cluster.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/util.h"
#include "testutil.h"
#include "weir/host.h"

#define JOBID "00112233445566778899aabbccddeeff"
#define RID "0123456789abcdef0123456789abcdef"
#define MAX_LOG 256

/* ---- the scripted job manager --------------------------------------------------------------- */

typedef struct req {
    char method[16];
    char path[512];
    char *body; /* NUL-terminated */
} req_t;

typedef struct srv srv_t;
/* Answers @p r: writes the JSON body into @p out and @returns the HTTP status. */
typedef int (*handler_fn)(srv_t *s, const req_t *r, char *out, size_t cap);

struct srv {
    int fd;
    uint16_t port;
    pthread_t thread;
    pthread_mutex_t mu;
    handler_fn handler;
    req_t log[MAX_LOG];
    int n_log;
    /* for the handlers */
    int64_t t_first_get;
    int gets;
    const char *cause; /* failure-cause stack trace, or NULL */
};

/* Reads one request from @p fd into @p r. @returns 0 or -1. */
static int read_request(int fd, req_t *r) {
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    char *hdr_end = NULL;
    while (!hdr_end) {
        if (len + 1 >= cap) {
            free(buf);
            return -1;
        }
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n <= 0) {
            free(buf);
            return -1;
        }
        len += (size_t)n;
        buf[len] = '\0';
        hdr_end = strstr(buf, "\r\n\r\n");
    }
    size_t hdr_len = (size_t)(hdr_end - buf) + 4;
    size_t body_len = 0;
    const char *cl = strcasestr(buf, "\r\nContent-Length:");
    if (cl && cl < hdr_end)
        body_len = strtoull(cl + 17, NULL, 10);
    if (sscanf(buf, "%15s %511s", r->method, r->path) != 2) {
        free(buf);
        return -1;
    }
    r->body = malloc(body_len + 1);
    size_t have = len - hdr_len < body_len ? len - hdr_len : body_len;
    memcpy(r->body, buf + hdr_len, have);
    free(buf);
    while (have < body_len) {
        ssize_t n = read(fd, r->body + have, body_len - have);
        if (n <= 0) {
            free(r->body);
            return -1;
        }
        have += (size_t)n;
    }
    r->body[body_len] = '\0';
    return 0;
}

static void *srv_main(void *arg) {
    srv_t *s = arg;
    for (;;) {
        int c = accept(s->fd, NULL, NULL);
        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return NULL; /* shut down */
        }
        req_t r = {0};
        while (read_request(c, &r) == 0) {
            static char out[1 << 16];
            out[0] = '\0';
            int status = s->handler(s, &r, out, sizeof out);
            char head[256];
            int hn = snprintf(head, sizeof head,
                              "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                              "Content-Length: %zu\r\n\r\n",
                              status, strlen(out));
            pthread_mutex_lock(&s->mu);
            if (s->n_log < MAX_LOG)
                s->log[s->n_log++] = r;
            else
                free(r.body);
            pthread_mutex_unlock(&s->mu);
            memset(&r, 0, sizeof r);
            if (write(c, head, (size_t)hn) != hn ||
                write(c, out, strlen(out)) != (ssize_t)strlen(out))
                break;
        }
        close(c);
    }
}

static srv_t *srv_start(handler_fn handler) {
    srv_t *s = calloc(1, sizeof *s);
    s->handler = handler;
    pthread_mutex_init(&s->mu, NULL);
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s->fd, 8), 0);
    socklen_t al = sizeof a;
    assert_int_equal(getsockname(s->fd, (struct sockaddr *)&a, &al), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&s->thread, NULL, srv_main, s), 0);
    return s;
}

static void srv_stop(srv_t *s) {
    shutdown(s->fd, SHUT_RDWR);
    pthread_join(s->thread, NULL);
    close(s->fd);
    for (int i = 0; i < s->n_log; i++)
        free(s->log[i].body);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* The i-th logged request with @p method and @p path (NULL when there is none). */
static const req_t *srv_find(srv_t *s, const char *method, const char *path) {
    for (int i = 0; i < s->n_log; i++)
        if (!strcmp(s->log[i].method, method) && !strcmp(s->log[i].path, path))
            return &s->log[i];
    return NULL;
}

/* ---- running the command -------------------------------------------------------------------- */

typedef struct result {
    int rc;
    char *out, *err;
    double secs;
} result_t;

static char *slurp_fd(int fd) {
    off_t n = lseek(fd, 0, SEEK_END);
    char *s = calloc(1, (size_t)n + 1);
    if (pread(fd, s, (size_t)n, 0) != n)
        fail_msg("cannot read captured output");
    return s;
}

/* Runs `weir [-m 127.0.0.1:<port>] ARGS...` (NULL-terminated) with stdout and stderr captured,
 * and an empty environment. */
static result_t run_weir(const srv_t *s, ...) {
    char *argv[64];
    int argc = 0;
    char addr[64];
    argv[argc++] = strdup("weir");
    if (s) {
        snprintf(addr, sizeof addr, "127.0.0.1:%u", s->port);
        argv[argc++] = strdup("-m");
        argv[argc++] = strdup(addr);
    }
    va_list ap;
    va_start(ap, s);
    for (const char *a; (a = va_arg(ap, const char *)) != NULL;)
        argv[argc++] = strdup(a);
    va_end(ap);
    argv[argc] = NULL;
    char *envp[] = {NULL};

    FILE *fo = tmpfile(), *fe = tmpfile();
    fflush(stdout);
    fflush(stderr);
    int so = dup(1), se = dup(2);
    dup2(fileno(fo), 1);
    dup2(fileno(fe), 2);
    int64_t t0 = weir_now_ns();
    result_t r = {.rc = weir_cli_main(argc, argv, envp)};
    r.secs = (double)(weir_now_ns() - t0) / 1e9;
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    r.out = slurp_fd(fileno(fo));
    r.err = slurp_fd(fileno(fe));
    fclose(fo);
    fclose(fe);
    for (int i = 0; i < argc; i++)
        free(argv[i]);
    return r;
}

static void result_free(result_t *r) {
    free(r->out);
    free(r->err);
}

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static int count_prefix_lines(const char *s, const char *prefix) {
    int n = 0;
    for (const char *l = s; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        n += !strncmp(l, prefix, strlen(prefix));
    return n;
}

/* A usage error: exit 2, nothing on stdout, exactly one line on stderr holding every phrase. */
static void expect_usage(result_t r, ...) {
    if (r.rc != 2 || r.out[0] || count_lines(r.err) != 1 || strncmp(r.err, "weir: ", 6))
        fail_msg("wanted exit 2 and one line on stderr, got %d, stdout '%s', stderr '%s'", r.rc,
                 r.out, r.err);
    va_list ap;
    va_start(ap, r);
    for (const char *p; (p = va_arg(ap, const char *)) != NULL;)
        if (!strstr(r.err, p))
            fail_msg("'%s' lacks '%s'", r.err, p);
    va_end(ap);
    result_free(&r);
}

/* ---- usage errors --------------------------------------------------------------------------- */

static void test_usage_errors(void **state) {
    (void)state;
    char good[4096];
    weir_test_plugin_path(WEIR_TEST_PLUGIN, "good.so", good, sizeof good);
    /* missing JOBID */
    expect_usage(run_weir(NULL, "savepoint", NULL), "'savepoint' needs JOBID", "weir list", NULL);
    expect_usage(run_weir(NULL, "stop", NULL), "'stop' needs a JOBID", NULL);
    expect_usage(run_weir(NULL, "stop", "--savepointPath", "/sp", NULL), "'stop' needs a JOBID",
                 NULL);
    /* too many arguments */
    expect_usage(run_weir(NULL, "savepoint", JOBID, "/sp", "extra", NULL), "'extra'",
                 "JOBID [TARGET_DIR]", NULL);
    expect_usage(run_weir(NULL, "stop", JOBID, "/sp", NULL), "'/sp'", "--savepointPath DIR", NULL);
    /* unknown flags */
    expect_usage(run_weir(NULL, "savepoint", "--drain", JOBID, NULL),
                 "unknown option '--drain' for 'savepoint'", NULL);
    expect_usage(run_weir(NULL, "stop", "-x", JOBID, NULL), "unknown option '-x' for 'stop'", NULL);
    expect_usage(run_weir(NULL, "validate", "--frob", "-s", "/sp", good, NULL),
                 "unknown option '--frob' for 'validate'", NULL);
    expect_usage(run_weir(NULL, "list", "-s", "/sp", NULL), "unknown option '-s' for 'list'", NULL);
    /* an option without its value */
    expect_usage(run_weir(NULL, "run", "-s", NULL), "option '-s' of 'run' needs a value",
                 "savepoint", NULL);
    expect_usage(run_weir(NULL, "run", "--fromSavepoint=", good, NULL),
                 "option '--fromSavepoint' of 'run' needs a value", NULL);
    expect_usage(run_weir(NULL, "validate", "-s", NULL), "option '-s' of 'validate' needs a value",
                 NULL);
    expect_usage(run_weir(NULL, "stop", JOBID, "--savepointPath", NULL),
                 "option '--savepointPath' of 'stop' needs a value", "where the savepoint", NULL);
    /* -s took the plugin */
    expect_usage(run_weir(NULL, "run", "-s", good, NULL), "needs PLUGIN.so",
                 "taken as the savepoint", NULL);
    /* validate without its plugin, without -s */
    expect_usage(run_weir(NULL, "validate", "-s", "/sp", NULL), "'validate' needs PLUGIN.so", NULL);
    expect_usage(run_weir(NULL, "validate", good, NULL), "'validate' needs -s PATH", NULL);
    /* -n without -s */
    expect_usage(run_weir(NULL, "run", "-n", good, NULL), "--allowNonRestoredState", "add -s PATH",
                 NULL);
    /* -p of stop is the savepoint path, not a parallelism; of validate a parallelism */
    expect_usage(run_weir(NULL, "validate", "-p", "0", "-s", "/sp", good, NULL),
                 "-p needs a parallelism", NULL);
    /* a JOBID that cannot be one: as `weir cancel`, exit 1 */
    result_t r = run_weir(NULL, "savepoint", "../../x", NULL);
    assert_int_equal(r.rc, 1);
    assert_string_equal(r.err, "weir: '../../x' is not a job id (32 hex digits, see weir list)\n");
    result_free(&r);
}

/* ---- savepoint and stop --------------------------------------------------------------------- */

/* POST .../savepoints or .../stop -> 202 request id; GET: IN_PROGRESS for 2.5 s (acknowledged
 * grows with every poll, so every answer differs), then COMPLETED with a location or, when
 * s->cause is set, with that failure cause. */
static int savepoint_handler(srv_t *s, const req_t *r, char *out, size_t cap) {
    if (!strcmp(r->method, "POST") && (!strcmp(r->path, "/jobs/" JOBID "/savepoints") ||
                                       !strcmp(r->path, "/jobs/" JOBID "/stop"))) {
        snprintf(out, cap, "{\"request-id\": \"%s\"}", RID);
        return 202;
    }
    if (!strcmp(r->method, "GET") && !strcmp(r->path, "/jobs/" JOBID "/savepoints/" RID)) {
        if (s->gets++ == 0)
            s->t_first_get = weir_now_ns();
        if (weir_now_ns() - s->t_first_get < 2500000000LL) {
            snprintf(out, cap,
                     "{\"status\": {\"id\": \"IN_PROGRESS\"}, \"progress\": {\"acknowledged\": %d, "
                     "\"total\": 8, \"state_size\": 1572864}, \"checkpoint\": 7}",
                     s->gets < 8 ? s->gets : 7);
            return 200;
        }
        json_t *op = s->cause ? json_pack("{s:{s:s,s:s}}", "failure-cause", "class",
                                          "SavepointFailed", "stack-trace", s->cause)
                              : json_pack("{s:s}", "location", "/sp/savepoint-001122-aabbccddeeff");
        json_t *j = json_pack("{s:{s:s}, s:o, s:{s:i,s:i,s:i}, s:i}", "status", "id", "COMPLETED",
                              "operation", op, "progress", "acknowledged", 8, "total", 8,
                              "state_size", 3 << 20, "checkpoint", 7);
        char *t = json_dumps(j, JSON_COMPACT);
        snprintf(out, cap, "%s", t);
        free(t);
        json_decref(j);
        return 200;
    }
    snprintf(out, cap, "{\"error\": \"no route %s %s\"}", r->method, r->path);
    return 404;
}

static json_t *body_json(const req_t *r) {
    assert_non_null(r);
    json_error_t e;
    json_t *j = json_loads(r->body, 0, &e);
    if (!j)
        fail_msg("request body '%s' is not JSON: %s", r->body, e.text);
    return j;
}

/* The progress lines of a savepoint: the first exactly (the first answer's numbers, sizes as an
 * independent computation: 1572864 B = 1.5 MiB), and at most one per second of waiting. */
static void check_progress(const result_t *r) {
    int n = count_prefix_lines(r->out, "Waiting for response... (");
    const char *first = strstr(r->out, "Waiting for response... (");
    assert_non_null(first);
    static const char want[] =
        "Waiting for response... (1/8 subtasks acknowledged, 1.5 MiB written)\n";
    assert_memory_equal(first, want, strlen(want));
    /* about 13 answers came, each different: at most one line per started second */
    if (n < 2 || n > (int)r->secs + 1)
        fail_msg("%d progress lines in %.1f s:\n%s", n, r->secs, r->out);
}

static void test_savepoint(void **state) {
    (void)state;
    srv_t *s = srv_start(savepoint_handler);
    result_t r = run_weir(s, "savepoint", JOBID, "some/dir", NULL);
    if (r.rc != 0)
        fail_msg("exit %d: %s", r.rc, r.err);
    assert_string_equal(r.err, "");
    assert_int_equal(strncmp(r.out, "Triggering savepoint for job " JOBID ".\n", 48), 0);
    check_progress(&r);
    /* the last line is the contract's; the one before reports id, duration and size */
    const char *last = strstr(r.out, "Savepoint completed. Path: ");
    assert_non_null(last);
    assert_string_equal(last, "Savepoint completed. Path: /sp/savepoint-001122-aabbccddeeff\n");
    assert_non_null(strstr(r.out, "Savepoint 7 took "));
    assert_non_null(strstr(r.out, "(8/8 subtasks acknowledged, 3.0 MiB written).\n"));
    /* the body: the relative target made absolute against the current directory */
    json_t *b = body_json(srv_find(s, "POST", "/jobs/" JOBID "/savepoints"));
    char cwd[4096], want[4200];
    assert_non_null(getcwd(cwd, sizeof cwd));
    snprintf(want, sizeof want, "%s/some/dir", cwd);
    assert_string_equal(json_string_value(json_object_get(b, "target-directory")), want);
    assert_true(json_is_false(json_object_get(b, "cancel-job")));
    json_decref(b);
    result_free(&r);
    srv_stop(s);

    /* no TARGET_DIR: null (the job manager's state.savepoints.dir) */
    s = srv_start(savepoint_handler);
    r = run_weir(s, "savepoint", JOBID, NULL);
    assert_int_equal(r.rc, 0);
    b = body_json(srv_find(s, "POST", "/jobs/" JOBID "/savepoints"));
    assert_true(json_is_null(json_object_get(b, "target-directory")));
    json_decref(b);
    result_free(&r);
    srv_stop(s);
}

static void test_savepoint_failure(void **state) {
    (void)state;
    srv_t *s = srv_start(savepoint_handler);
    s->cause = "subtask 'count' 1 declined checkpoint 7: disk full\n  at snapshot.c:120";
    result_t r = run_weir(s, "savepoint", JOBID, "/sp", NULL);
    assert_int_equal(r.rc, 1);
    /* one line, the cause's first */
    assert_string_equal(
        r.err, "weir: savepoint failed: subtask 'count' 1 declined checkpoint 7: disk full\n");
    assert_null(strstr(r.out, "Savepoint completed"));
    result_free(&r);
    srv_stop(s);
}

static int refuse_handler(srv_t *s, const req_t *r, char *out, size_t cap) {
    (void)s;
    (void)r;
    snprintf(out, cap, "{\"error\": \"job " JOBID " is not RUNNING (FINISHED)\"}");
    return 409;
}

static void test_savepoint_refused(void **state) {
    (void)state;
    srv_t *s = srv_start(refuse_handler);
    result_t r = run_weir(s, "savepoint", JOBID, NULL);
    assert_int_equal(r.rc, 1);
    assert_string_equal(r.err, "weir: job " JOBID " is not RUNNING (FINISHED)\n");
    result_free(&r);
    srv_stop(s);
}

static void test_stop(void **state) {
    (void)state;
    srv_t *s = srv_start(savepoint_handler);
    result_t r = run_weir(s, "stop", "--savepointPath", "/data/sp", JOBID, NULL);
    if (r.rc != 0)
        fail_msg("exit %d: %s", r.rc, r.err);
    assert_int_equal(strncmp(r.out, "Suspending job " JOBID ".\n", 48), 0);
    check_progress(&r);
    assert_non_null(
        strstr(r.out, "\nSavepoint completed. Path: /sp/savepoint-001122-aabbccddeeff\n"));
    json_t *b = body_json(srv_find(s, "POST", "/jobs/" JOBID "/stop"));
    assert_string_equal(json_string_value(json_object_get(b, "targetDirectory")), "/data/sp");
    assert_true(json_is_false(json_object_get(b, "drain")));
    json_decref(b);
    assert_null(srv_find(s, "POST", "/jobs/" JOBID "/savepoints"));
    result_free(&r);
    srv_stop(s);

    /* Flink's short form -p DIR, after the JOBID; without it null */
    s = srv_start(savepoint_handler);
    r = run_weir(s, "stop", JOBID, "-p", "/data/sp2", NULL);
    assert_int_equal(r.rc, 0);
    b = body_json(srv_find(s, "POST", "/jobs/" JOBID "/stop"));
    assert_string_equal(json_string_value(json_object_get(b, "targetDirectory")), "/data/sp2");
    json_decref(b);
    result_free(&r);
    srv_stop(s);
    s = srv_start(savepoint_handler);
    r = run_weir(s, "stop", JOBID, NULL);
    assert_int_equal(r.rc, 0);
    b = body_json(srv_find(s, "POST", "/jobs/" JOBID "/stop"));
    assert_true(json_is_null(json_object_get(b, "targetDirectory")));
    json_decref(b);
    result_free(&r);
    srv_stop(s);
}

/* ---- run -s --------------------------------------------------------------------------------- */

/* POST /blobs -> a sha; POST /jobs -> 400 with the planner's line when the body asks to restore
 * without allowNonRestoredState, else a job id (the test runs detached). */
static int run_handler(srv_t *s, const req_t *r, char *out, size_t cap) {
    (void)s;
    if (!strcmp(r->path, "/blobs")) {
        snprintf(out, cap, "{\"sha256\": \"%064d\"}", 0);
        return 200;
    }
    if (!strcmp(r->path, "/jobs")) {
        json_t *b = json_loads(r->body, 0, NULL);
        bool allow = json_is_true(json_object_get(b, "allowNonRestoredState"));
        json_decref(b);
        if (!allow) {
            snprintf(out, cap,
                     "{\"error\": \"state of operator uid(s) 'gone' in /sp has no operator in the "
                     "new job: pass --allowNonRestoredState to drop it\"}");
            return 400;
        }
        snprintf(out, cap, "{\"jobid\": \"%s\"}", JOBID);
        return 200;
    }
    return 404;
}

static void test_run_from_savepoint(void **state) {
    (void)state;
    char good[4096];
    weir_test_plugin_path(WEIR_TEST_PLUGIN, "good.so", good, sizeof good);
    srv_t *s = srv_start(run_handler);
    result_t r = run_weir(s, "run", "-d", "-s", "sp/savepoint-1", good, NULL);
    assert_int_equal(r.rc, 1);
    assert_string_equal(r.err, "weir: state of operator uid(s) 'gone' in /sp has no operator in "
                               "the new job: pass --allowNonRestoredState to drop it\n");
    json_t *b = body_json(srv_find(s, "POST", "/jobs"));
    char cwd[4096], want[4200];
    assert_non_null(getcwd(cwd, sizeof cwd));
    snprintf(want, sizeof want, "%s/sp/savepoint-1", cwd);
    assert_string_equal(json_string_value(json_object_get(b, "savepointPath")), want);
    assert_true(json_is_false(json_object_get(b, "allowNonRestoredState")));
    assert_non_null(json_object_get(b, "graph"));
    json_decref(b);
    result_free(&r);
    srv_stop(s);

    s = srv_start(run_handler);
    r = run_weir(s, "run", "--fromSavepoint", "/abs/sp", "--allowNonRestoredState", "-d", good,
                 NULL);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.out, "Job has been submitted with JobID " JOBID "\n");
    b = body_json(srv_find(s, "POST", "/jobs"));
    assert_string_equal(json_string_value(json_object_get(b, "savepointPath")), "/abs/sp");
    assert_true(json_is_true(json_object_get(b, "allowNonRestoredState")));
    json_decref(b);
    result_free(&r);
    srv_stop(s);

    /* -n, and without -s no restore members at all */
    s = srv_start(run_handler);
    r = run_weir(s, "run", "-s", "/abs/sp", "-n", "-d", good, NULL);
    assert_int_equal(r.rc, 0);
    b = body_json(srv_find(s, "POST", "/jobs"));
    assert_true(json_is_true(json_object_get(b, "allowNonRestoredState")));
    json_decref(b);
    result_free(&r);
    srv_stop(s);
    s = srv_start(run_handler);
    r = run_weir(s, "run", "-d", good, NULL);
    b = body_json(srv_find(s, "POST", "/jobs"));
    assert_null(json_object_get(b, "savepointPath"));
    assert_null(json_object_get(b, "allowNonRestoredState"));
    json_decref(b);
    result_free(&r);
    srv_stop(s);
}

/* ---- validate ------------------------------------------------------------------------------- */

/* Writes <dir>/_metadata (savepoint/metadata.h, version 2) of a savepoint of tests/plugins/good.c
 * at parallelism 1 ([numbers -> double], [sum -> print]), max parallelism @p maxp; with @p gone an
 * extra old source 'gone' (its own vertex 2) that has operator state. The numbers source has a
 * position; the reduce's state 'reduce' is of kind @p sum_kind (good.c's is "reducing") and its
 * keyed handle is self-contained (savepoint/layout.h) with one file, <dir>/1-0/000009.sst, of 5
 * bytes, written here. */
static void write_metadata(const char *dir, int maxp, bool gone, const char *sum_kind) {
    /* op_state: one msgpack element per operator of the chain, base64 (Python's base64 module):
     * [[5], nil] = 92 91 05 c0 and [[7]] = 91 91 07 */
    const char *b64_0 = "kpEFwA==", *b64_2 = "kZEH";
    json_t *ops = json_pack(
        "[{s:s,s:s,s:s,s:i,s:i,s:i,s:b,s:[]}, {s:n,s:s,s:s,s:i,s:i,s:i,s:b,s:[]},"
        " {s:s,s:s,s:s,s:i,s:i,s:i,s:b,s:[{s:s,s:s}]}, {s:n,s:s,s:s,s:i,s:i,s:i,s:b,s:[]}]",
        "uid", "numbers", "name", "numbers", "kind", "source_datagen", "vertex", 0, "index", 0,
        "parallelism", 1, "keyed", 0, "states", /**/ "uid", "name", "double", "kind", "map",
        "vertex", 0, "index", 1, "parallelism", 1, "keyed", 0, "states", /**/ "uid", "sum", "name",
        "sum", "kind", "reduce", "vertex", 1, "index", 0, "parallelism", 1, "keyed", 1, "states",
        "name", "reduce", "kind", sum_kind, /**/ "uid", "name", "print", "kind", "sink_print",
        "vertex", 1, "index", 1, "parallelism", 1, "keyed", 0, "states");
    json_t *handle =
        json_pack("{s:s,s:i,s:s,s:[],s:[{s:s,s:i,s:b}]}", "layout", "self-contained", "checkpoint",
                  7, "task", "1-0", "shared", "private", "name", "000009.sst", "size", 5, "sst", 1);
    json_t *tasks = json_pack("[{s:i,s:i,s:s,s:n,s:i}, {s:i,s:i,s:n,s:o,s:i}]", "vertex", 0,
                              "subtask", 0, "op_state", b64_0, "keyed", "state_size", 4, "vertex",
                              1, "subtask", 0, "op_state", "keyed", handle, "state_size", 5);
    char sst_dir[4200], sst[4300];
    snprintf(sst_dir, sizeof sst_dir, "%s/1-0", dir);
    snprintf(sst, sizeof sst, "%s/000009.sst", sst_dir);
    assert_int_equal(mkdir(sst_dir, 0755), 0);
    assert_int_equal(weir_write_file_atomic(sst, "hello", 5), 0);
    assert_non_null(ops);
    assert_non_null(tasks);
    if (gone) {
        json_array_append_new(ops, json_pack("{s:s,s:s,s:s,s:i,s:i,s:i,s:b,s:[]}", "uid", "gone",
                                             "name", "gone", "kind", "source_datagen", "vertex", 2,
                                             "index", 0, "parallelism", 1, "keyed", 0, "states"));
        json_array_append_new(tasks, json_pack("{s:i,s:i,s:s,s:n,s:i}", "vertex", 2, "subtask", 0,
                                               "op_state", b64_2, "keyed", "state_size", 3));
    }
    json_t *root =
        json_pack("{s:i,s:s,s:i,s:s,s:i,s:i,s:b,s:i,s:o,s:o}", "version", 2, "job", JOBID,
                  "checkpoint", 7, "kind", "savepoint", "trigger_time", 1000, "complete_time", 2000,
                  "final", 0, "max_parallelism", maxp, "operators", ops, "tasks", tasks);
    assert_non_null(root);
    char *text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    size_t n = strlen(text);
    char *file = malloc(n + 80);
    memcpy(file, text, n);
    file[n++] = '\n';
    char hex[65];
    weir_sha256_hex(file, n, hex);
    n += (size_t)sprintf(file + n, "sha256 %s\n", hex);
    char path[4200];
    snprintf(path, sizeof path, "%s/_metadata", dir);
    assert_int_equal(weir_write_file_atomic(path, file, n), 0);
    free(file);
    free(text);
}

static void test_validate(void **state) {
    (void)state;
    char good[4096];
    weir_test_plugin_path(WEIR_TEST_PLUGIN, "good.so", good, sizeof good);
    char *dir = weir_test_tmpdir("cli-validate");
    char sp[4200];

    /* the same job at another parallelism: everything restored, exit 0, the report on stdout */
    snprintf(sp, sizeof sp, "%s/same", dir);
    assert_int_equal(mkdir(sp, 0755), 0);
    write_metadata(sp, 128, false, "reducing");
    result_t r = run_weir(NULL, "validate", "-s", sp, "-p", "3", good, NULL);
    if (r.rc != 0)
        fail_msg("exit %d, stderr: %s, stdout: %s", r.rc, r.err, r.out);
    assert_string_equal(r.err, "");
    if (!strstr(r.out, "uid 'numbers' (source_datagen 'numbers', parallelism 1 -> 3): restored") ||
        !strstr(r.out, "uid 'sum' (reduce 'sum', parallelism 1 -> 3): restored") ||
        !strstr(r.out, "new subtask 2: groups"))
        fail_msg("the report lacks a uid, its status, the rescale or the key groups:\n%s", r.out);
    result_free(&r);
    /* its _metadata file names it too */
    char meta[4300];
    snprintf(meta, sizeof meta, "%s/_metadata", sp);
    r = run_weir(NULL, "validate", "-s", meta, good, NULL);
    assert_int_equal(r.rc, 0);
    result_free(&r);

    /* an old uid the new job lacks: refused naming it, unless -n */
    snprintf(sp, sizeof sp, "%s/gone", dir);
    assert_int_equal(mkdir(sp, 0755), 0);
    write_metadata(sp, 128, true, "reducing");
    r = run_weir(NULL, "validate", "-s", sp, good, NULL);
    assert_int_equal(r.rc, 1);
    if (count_lines(r.err) != 1 || strncmp(r.err, "weir: ", 6) || !strstr(r.err, "'gone'") ||
        !strstr(r.err, "--allowNonRestoredState"))
        fail_msg("wanted one line naming 'gone' and the flag, got '%s'", r.err);
    assert_non_null(strstr(r.out, "'gone'")); /* the report shows why */
    result_free(&r);
    r = run_weir(NULL, "validate", "-n", "-s", sp, good, NULL);
    if (r.rc != 0)
        fail_msg("-n: exit %d: %s", r.rc, r.err);
    assert_non_null(strstr(r.out, "dropped"));
    result_free(&r);

    /* another max parallelism: refused, -n does not help */
    snprintf(sp, sizeof sp, "%s/maxp", dir);
    assert_int_equal(mkdir(sp, 0755), 0);
    write_metadata(sp, 256, false, "reducing");
    r = run_weir(NULL, "validate", "-n", "-s", sp, good, NULL);
    assert_int_equal(r.rc, 1);
    if (count_lines(r.err) != 1 || !strstr(r.err, "max parallelism 256") || !strstr(r.err, "128"))
        fail_msg("wanted one line naming both max parallelisms, got '%s'", r.err);
    result_free(&r);

    /* a keyed state whose kind changed: refused naming the uid and both kinds, -n or not */
    snprintf(sp, sizeof sp, "%s/kind", dir);
    assert_int_equal(mkdir(sp, 0755), 0);
    write_metadata(sp, 128, false, "value");
    r = run_weir(NULL, "validate", "-n", "-s", sp, good, NULL);
    assert_int_equal(r.rc, 1);
    if (count_lines(r.err) != 1 || !strstr(r.err, "'sum'") || !strstr(r.err, "value state") ||
        !strstr(r.err, "reducing state"))
        fail_msg("wanted one line naming 'sum' and both kinds, got '%s'", r.err);
    assert_non_null(strstr(r.out, "incompatible"));
    result_free(&r);

    /* a file of a keyed handle of another size, or missing: one line naming it, exit 1 */
    char file[4300];
    snprintf(file, sizeof file, "%s/same/1-0/000009.sst", dir);
    assert_int_equal(weir_write_file_atomic(file, "hello!", 6), 0);
    snprintf(sp, sizeof sp, "%s/same", dir);
    r = run_weir(NULL, "validate", "-s", sp, good, NULL);
    assert_int_equal(r.rc, 1);
    assert_int_equal(count_lines(r.err), 1);
    if (!strstr(r.err, file) || !strstr(r.err, "has 6 bytes, _metadata says 5"))
        fail_msg("wanted the file and both sizes, got '%s'", r.err);
    assert_string_equal(r.out, "");
    result_free(&r);
    assert_int_equal(unlink(file), 0);
    r = run_weir(NULL, "validate", "-s", sp, good, NULL);
    assert_int_equal(r.rc, 1);
    assert_int_equal(count_lines(r.err), 1);
    if (!strstr(r.err, file) || !strstr(r.err, "missing"))
        fail_msg("wanted the missing file named, got '%s'", r.err);
    result_free(&r);

    /* not a savepoint: the reader's line, exit 1 */
    r = run_weir(NULL, "validate", "-s", dir, good, NULL);
    assert_int_equal(r.rc, 1);
    assert_int_equal(count_lines(r.err), 1);
    assert_non_null(strstr(r.err, "no _metadata"));
    assert_string_equal(r.out, "");
    result_free(&r);
    /* a corrupt one: a byte of the JSON changed, the checksum line kept */
    snprintf(sp, sizeof sp, "%s/same/_metadata", dir);
    uint8_t *data;
    size_t len;
    assert_int_equal(weir_read_file(sp, &data, &len), 0);
    data[2] ^= 1;
    assert_int_equal(weir_write_file_atomic(sp, data, len), 0);
    free(data);
    r = run_weir(NULL, "validate", "-s", sp, good, NULL);
    assert_int_equal(r.rc, 1);
    assert_int_equal(count_lines(r.err), 1);
    assert_non_null(strstr(r.err, "is corrupt"));
    result_free(&r);
    weir_test_tmpdir_remove(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_savepoint),
        cmocka_unit_test(test_savepoint_failure),
        cmocka_unit_test(test_savepoint_refused),
        cmocka_unit_test(test_stop),
        cmocka_unit_test(test_run_from_savepoint),
        cmocka_unit_test(test_validate),
    };
    return cmocka_run_group_tests(tests, 0, NULL);
}
