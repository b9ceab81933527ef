/* Owns the task manager's Prometheus endpoint: GET /metrics on metrics.reporter.prom.host
 * (default taskmanager.bind-host) and the first free port of metrics.reporter.prom.port (a port,
 * a range "A-B" tried in turn as Flink does, or 0 for any free port), served by libmicrohttpd's
 * internal thread; the text exposition format 0.0.4 of every live subtask's counters (labels
 * job_id, job_name, vertex, vertex_id, subtask, tm_id, as the job manager's /metrics), the
 * chained operators' records in/out, the memory budget report (taskmanager/memory.h) and the
 * process figures (CPU, RSS, threads, open fds, uptime). The per-subtask families, the memory
 * pools, the process figures, label escaping and the token check are common/prom.c's, shared
 * with the job manager's /metrics (same names, types, help and units).
 *
 * Invariants: with rest.auth.token (or -file) configured, no answer but 401 without
 * "Authorization: Bearer <token>" (digests compared in constant time); beyond loopback a token
 * is required (weir_config_check_binds refuses to start otherwise). A bind failure on every port
 * of the range is a warning, not fatal (as Flink's reporter): the heartbeat then says port 0.
 *
 * Threading: the handler runs on libmicrohttpd's thread and reads the tasks only through
 * weir__tm_collect (a copy under the task list's mutex); the memory report is any-thread. The
 * server is stopped (thread joined) before the task manager frees its tasks. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/prom.h"
#include "common/util.h"
#include "taskmanager/memory.h"
#include "taskmanager/tm_int.h"

#define COMP "taskmanager"

struct weir_tm_prom {
    weir_taskmanager_t *tm;
    struct MHD_Daemon *d;
    bool auth;
    char token_sha256[65];
    int64_t started_ns;  /* weir_now_ns() at start: uptime */
    double start_wall_s; /* wall clock at start: process_start_time_seconds */
};

/* ---- what the tasks and the memory budget report ------------------------------------------ */

void weir__tm_task_ops(const weir_task_t *task, weir_tm_op_view_t **ops, size_t *n) {
    *ops = NULL;
    *n = 0;
    size_t k = weir_task_operator_count(task);
    if (!k)
        return;
    *ops = weir_xcalloc(k, sizeof **ops);
    for (size_t i = 0; i < k; i++) {
        weir_operator_metrics_t om;
        memset(&om, 0, sizeof om);
        weir_task_get_operator_metrics(task, i, &om);
        weir_fmt((*ops)[i].name, sizeof(*ops)[i].name, "%s", om.name ? om.name : "");
        weir_fmt((*ops)[i].uid, sizeof(*ops)[i].uid, "%s", om.uid ? om.uid : "");
        (*ops)[i].records_in = om.records_in;
        (*ops)[i].records_out = om.records_out;
    }
    *n = k;
}

/* ---- exposition ------------------------------------------------------------------------------ */

/* The per-subtask families (common/prom.c, the same as the job manager's), then the chained
 * operators' records in/out. */
static void write_tasks(FILE *f, const weir_tm_view_t *v) {
    weir_prom_task_t *tasks = weir_xcalloc(v->n_tasks, sizeof *tasks); /* bounded by the slots */
    for (size_t i = 0; i < v->n_tasks; i++) {
        const weir_tm_task_view_t *t = &v->tasks[i];
        tasks[i] = (weir_prom_task_t){.job_id = t->job_id,
                                      .job_name = t->job_name,
                                      .vertex = t->vertex_name,
                                      .vertex_id = t->vertex,
                                      .subtask = t->subtask,
                                      .tm_id = v->tm_id,
                                      .m = &t->m};
    }
    weir_prom_task_families(f, tasks, v->n_tasks, weir_wall_ms());

    static const char *const ops_fam[2] = {"weir_operator_records_in_total",
                                           "weir_operator_records_out_total"};
    for (int k = 0; k < 2; k++) {
        weir_prom_family(f, ops_fam[k], "counter",
                         k ? "Records a chained operator emitted."
                           : "Records a chained operator received.");
        for (size_t i = 0; i < v->n_tasks; i++) {
            const weir_tm_task_view_t *t = &v->tasks[i];
            for (size_t o = 0; o < t->n_ops; o++) {
                fprintf(f, "%s{", ops_fam[k]);
                weir_prom_task_labels(f, &tasks[i]);
                fputs(",operator=\"", f);
                weir_prom_label(f, t->ops[o].name);
                fputs("\",operator_uid=\"", f);
                weir_prom_label(f, t->ops[o].uid);
                fprintf(f, "\",operator_index=\"%zu\"} %" PRIu64 "\n", o,
                        k ? t->ops[o].records_out : t->ops[o].records_in);
            }
        }
    }
    free(tasks);
}

static void write_tm(FILE *f, const weir_tm_prom_t *p, const weir_tm_view_t *v) {
    const char *id = v->tm_id;
#define TM_LINE(name, type, help, fmt, val)                                                        \
    do {                                                                                           \
        weir_prom_family(f, name, type, help);                                                     \
        weir_prom_series(f, name, "tm_id", id, NULL);                                              \
        fprintf(f, fmt "\n", val);                                                                 \
    } while (0)
    TM_LINE("weir_taskmanager_slots", "gauge", "Task slots of the task manager.", "%u", v->slots);
    TM_LINE("weir_taskmanager_slots_used", "gauge", "Slots occupied by live subtasks.", "%u",
            v->slots_used);
    TM_LINE("weir_taskmanager_tasks", "gauge", "Live subtasks.", "%zu", v->n_tasks);
    TM_LINE("weir_taskmanager_uptime_seconds", "gauge", "Time since the task manager started.",
            "%.3f", (double)(weir_now_ns() - p->started_ns) / 1e9);
    TM_LINE("weir_process_start_time_seconds", "gauge",
            "Start time of the task manager, seconds since the epoch.", "%.3f", p->start_wall_s);
    weir_prom_process_t pr;
    weir_prom_process_read(&pr);
    weir_prom_process_families(f, "weir_process_", "tm_id", id, &pr);
    weir_tm_memory_report_t mr;
    weir__tm_memory_report(p->tm, &mr);
    weir_prom_memory_t mem = {.tm_id = id,
                              .process = mr.process,
                              .network_total = mr.network_total,
                              .network_used = mr.network_used,
                              .managed_total = mr.managed_total,
                              .managed_used = mr.managed_used,
                              .state_cache_total = mr.state_cache_total,
                              .state_cache_used = mr.state_cache_used};
    weir_prom_memory_families(f, &mem, 1);
    TM_LINE("weir_rocksdb_block_cache_usage_bytes", "gauge",
            "Entries of the task manager's shared RocksDB block cache.", "%" PRIu64,
            mr.block_cache_usage);
    TM_LINE("weir_rocksdb_block_cache_pinned_usage_bytes", "gauge",
            "Pinned entries of the shared RocksDB block cache.", "%" PRIu64, mr.block_cache_pinned);
    TM_LINE("weir_rocksdb_memtable_bytes", "gauge",
            "Memtables of every RocksDB instance of the task manager.", "%" PRIu64, mr.memtables);
    TM_LINE("weir_rocksdb_table_readers_bytes", "gauge",
            "Index and filter blocks held outside the block cache.", "%" PRIu64, mr.table_readers);
#undef TM_LINE
}

/* The whole exposition, malloc'd. */
static char *exposition(weir_tm_prom_t *p, size_t *len) {
    weir_tm_view_t v;
    weir__tm_collect(p->tm, &v);
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    if (!f)
        abort();
    write_tm(f, p, &v);
    write_tasks(f, &v);
    fclose(f);
    weir__tm_view_free(&v);
    return buf;
}

/* ---- HTTP ------------------------------------------------------------------------------------ */

static enum MHD_Result answer(struct MHD_Connection *c, unsigned status, const char *ctype,
                              char *body, size_t len, const char *hname, const char *hval) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (hname)
        MHD_add_response_header(r, hname, hval);
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result text(struct MHD_Connection *c, unsigned status, const char *msg,
                            const char *hname, const char *hval) {
    char *b = weir_xstrdup(msg);
    return answer(c, status, "text/plain; charset=utf-8", b, strlen(b), hname, hval);
}

/* "Authorization: Bearer <token>" with the configured token (weir_prom_bearer_check: digests
 * compared in constant time, so the time taken does not depend on how much of it matched). */
static bool authorized(const weir_tm_prom_t *p, struct MHD_Connection *c) {
    return weir_prom_bearer_check(
               MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION),
               p->token_sha256) == 1;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
    (void)version;
    (void)upload;
    weir_tm_prom_t *p = cls;
    if (!*con_cls) { /* headers only: wait for the (dropped) body */
        *con_cls = p;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0;
        return MHD_YES;
    }
    if (p->auth && !authorized(p, c))
        return text(c, MHD_HTTP_UNAUTHORIZED,
                    "authentication required: send Authorization: Bearer <token> with the task "
                    "manager's rest.auth.token\n",
                    MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"weir\"");
    if (strcmp(url, "/metrics") != 0)
        return text(c, MHD_HTTP_NOT_FOUND, "not found: the task manager serves GET /metrics\n",
                    NULL, NULL);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed: use GET /metrics\n",
                    MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    size_t len = 0;
    char *body = exposition(p, &len);
    return answer(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body, len, NULL,
                  NULL);
}

/* ---- start / stop ---------------------------------------------------------------------------- */

int weir__tm_prom_ports(const weir_config_t *cfg, int *lo, int *hi, char *errstr, size_t errlen) {
    const char *s = weir_config_get_str(cfg, "metrics.reporter.prom.port");
    int64_t a = -1, b = -1;
    const char *dash = s ? strchr(s, '-') : NULL;
    bool ok;
    if (!s || !*s) {
        ok = false;
    } else if (dash) {
        char first[16];
        size_t n = (size_t)(dash - s);
        ok = n > 0 && n < sizeof first;
        if (ok) {
            memcpy(first, s, n);
            first[n] = '\0';
            ok = weir_parse_int(first, 1, 65535, &a) == 0 &&
                 weir_parse_int(dash + 1, 1, 65535, &b) == 0 && a <= b;
        }
    } else {
        ok = weir_parse_int(s, 0, 65535, &a) == 0;
        b = a;
    }
    if (!ok)
        return weir_errf(errstr, errlen, WEIR_ECONFIG,
                         "bad value '%s' for metrics.reporter.prom.port: expected a port, a range "
                         "like 9250-9260, or 0 for any free port",
                         s ? s : "");
    *lo = (int)a;
    *hi = (int)b;
    return 0;
}

/* A listening TCP socket on @p host and the first free port of [lo, hi]; -1 with errno. */
static int listen_on(const char *host, int lo, int hi, int *bound) {
    int last_errno = EADDRINUSE;
    for (int port = lo; port <= hi; port++) {
        char ps[16];
        weir_fmt(ps, sizeof ps, "%d", port);
        struct addrinfo hints = {.ai_family = AF_UNSPEC,
                                 .ai_socktype = SOCK_STREAM,
                                 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
        struct addrinfo *res = NULL;
        int gai = getaddrinfo(host, ps, &hints, &res);
        if (gai != 0) {
            errno = EADDRNOTAVAIL;
            return -1;
        }
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
            int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
            if (fd < 0) {
                last_errno = errno;
                continue;
            }
            int one = 1;
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 64) == 0) {
                struct sockaddr_storage ss;
                socklen_t sl = sizeof ss;
                getsockname(fd, (struct sockaddr *)&ss, &sl);
                *bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                        : ((struct sockaddr_in *)&ss)->sin_port);
                freeaddrinfo(res);
                return fd;
            }
            last_errno = errno;
            close(fd);
        }
        freeaddrinfo(res);
    }
    errno = last_errno;
    return -1;
}

weir_tm_prom_t *weir__tm_prom_start(weir_taskmanager_t *tm, const weir_config_t *cfg, int *port,
                                    char *errstr, size_t errlen) {
    *port = 0;
    if (!weir_config_get_bool(cfg, "metrics.reporter.prom.enabled"))
        return NULL;
    int lo, hi;
    if (weir__tm_prom_ports(cfg, &lo, &hi, errstr, errlen) != 0) {
        *port = -1;
        return NULL;
    }
    char *token = NULL;
    if (weir_config_rest_token(cfg, &token, errstr, errlen) != 0) {
        *port = -1;
        return NULL;
    }
    weir_tm_prom_t *p = weir_xcalloc(1, sizeof *p);
    p->tm = tm;
    p->started_ns = weir_now_ns();
    p->start_wall_s = (double)weir_wall_ms() / 1e3;
    if (token) {
        p->auth = true;
        weir_sha256_hex(token, strlen(token), p->token_sha256);
        memset(token, 0, strlen(token));
        free(token);
    }
    const char *host = weir_config_get_str(cfg, "metrics.reporter.prom.host");
    if (!host || !*host) {
        host = weir_config_get_str(cfg, "taskmanager.bind-host");
        /* inherited beyond loopback without a token: off (an explicit host is refused at start
         * by weir_config_check_binds; security.insecure serves it with a warning) */
        if (!p->auth && !weir_config_host_is_loopback(host) &&
            !weir_config_get_bool(cfg, "security.insecure")) {
            WEIR_WARN(COMP,
                      "metrics: /metrics is off: taskmanager.bind-host %s is beyond loopback and "
                      "no rest.auth.token is set (set rest.auth.token or rest.auth.token-file, or "
                      "metrics.reporter.prom.host: 127.0.0.1)",
                      host ? host : "(unset)");
            free(p);
            return NULL;
        }
        if (!p->auth && !weir_config_host_is_loopback(host))
            WEIR_WARN(COMP,
                      "security.insecure: /metrics at taskmanager.bind-host %s has no "
                      "rest.auth.token: anyone who can reach it can read its metrics",
                      host);
    }
    host = weir_config_bind_address(host);
    const char *ports = weir_config_get_str(cfg, "metrics.reporter.prom.port");
    int bound = 0;
    int fd = listen_on(host, lo, hi, &bound);
    if (fd < 0) {
        WEIR_WARN(COMP,
                  "metrics: cannot listen on %s port %s (metrics.reporter.prom.port): %s; "
                  "/metrics is off (set a free port, a range like 9250-9260, or 0)",
                  host, ports, strerror(errno));
        free(p);
        return NULL;
    }
    p->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, on_request, p,
                            MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT, (unsigned)16,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
    if (!p->d) {
        close(fd);
        WEIR_WARN(COMP, "metrics: cannot start the HTTP server on %s port %d; /metrics is off",
                  host, bound);
        free(p);
        return NULL;
    }
    *port = bound;
    WEIR_INFO(COMP, "metrics: Prometheus endpoint at http://%s:%d/metrics (%s)", host, bound,
              p->auth ? "bearer token required" : "no authentication");
    return p;
}

void weir__tm_prom_stop(weir_tm_prom_t **pp) {
    if (!pp || !*pp)
        return;
    weir_tm_prom_t *p = *pp;
    *pp = NULL;
    if (p->d)
        MHD_stop_daemon(p->d);
    free(p);
}
