/* The `weir` command: run (load a plugin, build its graph, upload plugin + graph, optionally
 * wait for the end), list, cancel, info, keygen (a new cluster CURVE key file). Command forms,
 * messages and exit codes are a contract used by scripts (docs/cli.md): 0 success, 1 failure (job
 * failed, cluster or plugin error), 2 usage error, 130 interrupted while attached.
 *
 * Argument order: weir [GLOBAL OPTIONS] COMMAND [COMMAND OPTIONS] [PLUGIN.so [JOB ARGS...]].
 * Everything after PLUGIN.so belongs to the job and is never interpreted here; the config
 * options (-c, -D) are therefore collected only from before PLUGIN.so and handed to
 * weir_config_from_args() on their own.
 *
 * Every request carries the bearer token of rest.auth.token / rest.auth.token-file and uses HTTPS
 * when rest.ssl.enabled is true (the client verifies the server against rest.ssl.trust-cert):
 * the same keys as the job manager's, so one configuration file serves both (docs/security.md).
 *
 * Threading: single-threaded. The only signal handler (SIGINT while attached) calls _exit(130).
 */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/client.h"
#include "common/config.h"
#include "common/curve.h"
#include "common/err.h"
#include "common/util.h"
#include "connectors/registry.h"
#include "runtime/graph/graph.h"
#include "runtime/graph/plugin.h"
#include "weir/host.h"

#define EXIT_USAGE 2
#define POLL_INTERVAL_NS 200000000LL
#define POLL_UNREACHABLE_LIMIT 150 /* 30 s of failed polls */

static const char USAGE[] =
    "Usage:\n"
    "  weir [-m HOST:PORT] [-c FILE] [-D key=value]... run [-p N] [-d] PLUGIN.so [job args...]\n"
    "  weir [-m HOST:PORT] list\n"
    "  weir [-m HOST:PORT] cancel JOBID\n"
    "  weir info [-p N] PLUGIN.so [job args...]\n"
    "  weir keygen [FILE]\n"
    "  weir --help\n"
    "\n"
    "Commands:\n"
    "  run     build the job graph of PLUGIN.so, submit it and wait until the job ends\n"
    "  list    list the jobs of the cluster, in any state\n"
    "  cancel  cancel a job\n"
    "  info    print the job graph of PLUGIN.so as JSON (no cluster needed)\n"
    "  keygen  write a new cluster key pair (security.curve.key-file) to FILE, mode 0600,\n"
    "          never replacing a file; without FILE to stdout\n"
    "\n"
    "Options:\n"
    "  -m, --jobmanager HOST:PORT  job manager REST address (default rest.address:rest.port)\n"
    "  -c, --config FILE           YAML configuration file\n"
    "  -D key=value                set a configuration key (repeatable)\n"
    "  -p, --parallelism N         default parallelism of the job (default parallelism.default)\n"
    "  -d, --detached              run: return once the job is submitted\n"
    "  -h, --help                  show this help\n"
    "\n"
    "Arguments after PLUGIN.so are passed to the job's define() as argv[1..].\n"
    "A job manager that requires a token: -D rest.auth.token=TOKEN (or WEIR_REST_AUTH_TOKEN,\n"
    "or rest.auth.token-file); over HTTPS: -D rest.ssl.enabled=true -D rest.ssl.trust-cert=CA.pem\n"
    "Exit codes: 0 ok, 1 failure, 2 usage error, 130 interrupted.\n";

typedef struct cli {
    const char *cmd;
    const char *jobmanager; /* -m, or NULL */
    uint32_t parallelism;   /* -p, 0 = from config */
    bool detached;
    const char **cfg_argv; /* argv[0] + -c/-D options, for weir_config_from_args */
    int cfg_argc;
    char **pos; /* positional arguments of the command (PLUGIN.so + job args, JOBID) */
    int n_pos;
    weir_config_t *cfg;
    char *token;              /* rest.auth.token (or the content of rest.auth.token-file) */
    weir_client_opts_t copts; /* token and TLS settings of every client */
} cli_t;

static int usage_error(const char *fmt, const char *a, const char *b) {
    fputs("weir: ", stderr);
    fprintf(stderr, fmt, a, b);
    fputs(" (see weir --help)\n", stderr);
    return EXIT_USAGE;
}

/* Handles one option at argv[*i] shared by the global and the command position. Returns 1 when
 * consumed, 0 when not an option we know, or -EXIT_USAGE after printing an error. */
static int parse_option(cli_t *c, int argc, char **argv, int *i, bool global) {
    const char *a = argv[*i];
    const char *where = c->cmd ? c->cmd : "weir";
    const char *val = NULL;
#define NEED_VALUE()                                                                               \
    do {                                                                                           \
        if (*i + 1 >= argc) {                                                                      \
            usage_error("option '%s' of '%s' needs a value", a, where);                            \
            return -EXIT_USAGE;                                                                    \
        }                                                                                          \
        val = argv[++*i];                                                                          \
    } while (0)

    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
        fputs(USAGE, stdout);
        exit(0);
    }
    if (!strcmp(a, "-m") || !strcmp(a, "--jobmanager")) {
        NEED_VALUE();
        c->jobmanager = val;
        return 1;
    }
    if (!strncmp(a, "--jobmanager=", 13)) {
        c->jobmanager = a + 13;
        return 1;
    }
    if (!strcmp(a, "-c") || !strcmp(a, "--config") || !strcmp(a, "--configFile") ||
        !strcmp(a, "-D")) {
        NEED_VALUE();
        c->cfg_argv[c->cfg_argc++] = a;
        c->cfg_argv[c->cfg_argc++] = val;
        return 1;
    }
    if (!strncmp(a, "-D", 2) || !strncmp(a, "--config=", 9) || !strncmp(a, "--configFile=", 13)) {
        c->cfg_argv[c->cfg_argc++] = a;
        return 1;
    }
    if (global)
        return 0;
    bool runlike = !strcmp(c->cmd, "run") || !strcmp(c->cmd, "info");
    if (runlike && (!strcmp(a, "-p") || !strcmp(a, "--parallelism") || !strncmp(a, "-p", 2))) {
        if (!strcmp(a, "-p") || !strcmp(a, "--parallelism"))
            NEED_VALUE();
        else
            val = a + 2;
        int64_t p;
        if (weir_parse_int(val, 1, 32768, &p) != 0) {
            usage_error("-p needs a parallelism between 1 and 32768, got '%s'%s", val, "");
            return -EXIT_USAGE;
        }
        c->parallelism = (uint32_t)p;
        return 1;
    }
    if (!strcmp(c->cmd, "run") && (!strcmp(a, "-d") || !strcmp(a, "--detached"))) {
        c->detached = true;
        return 1;
    }
    return 0;
#undef NEED_VALUE
}

static int parse_args(cli_t *c, int argc, char **argv) {
    c->cfg_argv = calloc((size_t)argc + 2, sizeof(char *));
    if (!c->cfg_argv)
        abort();
    c->cfg_argv[c->cfg_argc++] = argv[0];
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1] != '\0'; i++) {
        int r = parse_option(c, argc, argv, &i, true);
        if (r < 0)
            return -r;
        if (r == 0) {
            if (!strcmp(argv[i], "--version")) {
                printf("weir %s (plugin ABI %u)\n", "0.1.0", WEIR_ABI_VERSION);
                exit(0);
            }
            return usage_error("unknown option '%s'%s", argv[i], "");
        }
    }
    if (i >= argc) {
        fputs(USAGE, stderr);
        return EXIT_USAGE;
    }
    c->cmd = argv[i++];
    if (!strcmp(c->cmd, "help")) {
        fputs(USAGE, stdout);
        exit(0);
    }
    if (strcmp(c->cmd, "run") && strcmp(c->cmd, "list") && strcmp(c->cmd, "cancel") &&
        strcmp(c->cmd, "info") && strcmp(c->cmd, "keygen"))
        return usage_error("unknown command '%s'%s", c->cmd, "");
    bool runlike = !strcmp(c->cmd, "run") || !strcmp(c->cmd, "info");
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) {
            i++;
            break;
        }
        if (a[0] != '-' || a[1] == '\0') {
            if (runlike)
                break; /* PLUGIN.so: everything from here on belongs to the job */
            if (c->n_pos++ == 0)
                c->pos = &argv[i];
            continue;
        }
        int r = parse_option(c, argc, argv, &i, false);
        if (r < 0)
            return -r;
        if (r == 0)
            return usage_error("unknown option '%s' for '%s'", a, c->cmd);
    }
    if (runlike) {
        c->pos = &argv[i];
        c->n_pos = argc - i;
        if (c->n_pos == 0)
            return usage_error("'%s' needs PLUGIN.so%s", c->cmd, "");
    } else {
        if (!strcmp(c->cmd, "list") && c->n_pos != 0)
            return usage_error("'list' takes no arguments, got '%s'%s", c->pos[0], "");
        if (!strcmp(c->cmd, "cancel") && c->n_pos != 1)
            return usage_error("'cancel' needs exactly one JOBID%s%s", "", "");
        if (!strcmp(c->cmd, "keygen") && c->n_pos > 1)
            return usage_error("'keygen' takes at most one FILE, got '%s'%s", c->pos[1], "");
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */

static weir_client_t *make_client(const cli_t *c) {
    char addr[512];
    if (c->jobmanager)
        snprintf(addr, sizeof(addr), "%s", c->jobmanager);
    else
        snprintf(addr, sizeof(addr), "%s:%lld", weir_config_get_str(c->cfg, "rest.address"),
                 (long long)weir_config_get_int(c->cfg, "rest.port"));
    return weir_client_new(addr, &c->copts);
}

/* The client's token and TLS settings from the configuration (docs/security.md). @returns 0 or 1
 * after printing the error. */
static int client_options(cli_t *c) {
    char err[1400];
    if (weir_config_rest_token(c->cfg, &c->token, err, sizeof(err)) != 0) {
        fprintf(stderr, "weir: %s\n", err);
        return 1;
    }
    c->copts.token = c->token;
    c->copts.tls = weir_config_get_bool(c->cfg, "rest.ssl.enabled");
    c->copts.trust_cert = weir_config_get_str(c->cfg, "rest.ssl.trust-cert");
    return 0;
}

static uint32_t default_parallelism(const cli_t *c) {
    if (c->parallelism)
        return c->parallelism;
    int64_t p = weir_config_get_int(c->cfg, "parallelism.default");
    return p >= 1 && p <= 32768 ? (uint32_t)p : 1;
}

/* Opens the plugin and builds its graph. The job's argv is argv[0] = plugin path, then the job
 * arguments. @returns 0 or 1 after printing the error. */
static int build_graph(const cli_t *c, weir_plugin_t **plugin, weir_job_t **job) {
    char err[768];
    *plugin = weir_plugin_open(c->pos[0], err, sizeof(err));
    if (!*plugin) {
        fprintf(stderr, "weir: %s\n", err);
        return 1;
    }
    *job = weir_plugin_build(*plugin, c->n_pos, c->pos, default_parallelism(c), err, sizeof(err));
    if (!*job || weir_connectors_validate(*job, err, sizeof(err)) != 0) {
        fprintf(stderr, "weir: %s\n", err);
        weir_graph_destroy(job);
        weir_plugin_close(plugin);
        return 1;
    }
    return 0;
}

static int cmd_info(cli_t *c) {
    weir_plugin_t *plugin = NULL;
    weir_job_t *job = NULL;
    if (build_graph(c, &plugin, &job))
        return 1;
    json_t *j = weir_graph_to_json(job);
    int rc = 1;
    char *text = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
    if (text) {
        printf("%s\n", text);
        rc = 0;
    } else {
        fprintf(stderr, "weir: the graph of '%s' cannot be written as JSON\n", c->pos[0]);
    }
    free(text);
    json_decref(j);
    weir_graph_destroy(&job);
    weir_plugin_close(&plugin);
    return rc;
}

static void on_sigint(int sig) {
    (void)sig;
    _exit(130);
}

static int wait_for_job(weir_client_t *client, const char *jobid) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);

    char path[128], err[768];
    snprintf(path, sizeof(path), "/jobs/%s", jobid);
    int unreachable = 0;
    for (;;) {
        json_t *j = NULL;
        int rc = weir_client_request(client, "GET", path, NULL, 0, NULL, &j, err, sizeof(err));
        if (rc == WEIR_ENET) {
            if (++unreachable >= POLL_UNREACHABLE_LIMIT) {
                fprintf(stderr, "weir: %s\n", err);
                return 1;
            }
            weir_sleep_ns(POLL_INTERVAL_NS);
            continue;
        }
        if (rc != 0) {
            fprintf(stderr, "weir: %s\n", err);
            return 1;
        }
        unreachable = 0;
        const char *state = json_string_value(json_object_get(j, "state"));
        if (!state)
            state = "";
        if (!strcmp(state, "FINISHED")) {
            long long start = json_integer_value(json_object_get(j, "start_time"));
            long long end = json_integer_value(json_object_get(j, "end_time"));
            printf("Job has finished. Job Runtime: %lld ms\n", end > start ? end - start : 0);
            json_decref(j);
            return 0;
        }
        if (!strcmp(state, "FAILED") || !strcmp(state, "CANCELED")) {
            const char *msg = json_string_value(json_object_get(j, "message"));
            fprintf(stderr, "Job %s %s: %s\n", jobid, state, msg && *msg ? msg : "(no message)");
            json_decref(j);
            return 1;
        }
        json_decref(j);
        weir_sleep_ns(POLL_INTERVAL_NS);
    }
}

static int cmd_run(cli_t *c) {
    int rc = 1;
    weir_plugin_t *plugin = NULL;
    weir_job_t *job = NULL;
    weir_client_t *client = NULL;
    json_t *graph = NULL, *req = NULL, *ans = NULL;
    char *body = NULL;
    uint8_t *bytes = NULL;
    size_t nbytes = 0;
    char err[768];

    if (build_graph(c, &plugin, &job))
        return 1;
    uint32_t parallelism = default_parallelism(c);
    graph = weir_graph_to_json(job);
    weir_graph_destroy(&job);
    weir_plugin_close(&plugin);
    if (!graph) {
        fprintf(stderr, "weir: the graph of '%s' cannot be written as JSON\n", c->pos[0]);
        goto done;
    }
    if (weir_read_file(c->pos[0], &bytes, &nbytes) != 0) {
        fprintf(stderr, "weir: cannot read plugin '%s'\n", c->pos[0]);
        goto done;
    }
    client = make_client(c);
    if (weir_client_request(client, "POST", "/blobs", bytes, nbytes, "application/octet-stream",
                            &ans, err, sizeof(err))) {
        fprintf(stderr, "weir: %s\n", err);
        goto done;
    }
    const char *sha = json_string_value(json_object_get(ans, "sha256"));
    if (!sha) {
        fprintf(stderr, "weir: the job manager at %s did not answer POST /blobs with a sha256\n",
                weir_client_address(client));
        goto done;
    }
    json_t *args = json_array();
    for (int i = 1; i < c->n_pos; i++)
        json_array_append_new(args, json_string(c->pos[i]));
    req = json_pack("{s:s, s:o, s:I, s:O}", "plugin", sha, "args", args, "parallelism",
                    (json_int_t)parallelism, "graph", graph);
    json_decref(ans);
    ans = NULL;
    body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    if (!body) {
        fprintf(stderr, "weir: job arguments must be valid UTF-8\n");
        goto done;
    }
    if (weir_client_request(client, "POST", "/jobs", body, strlen(body), "application/json", &ans,
                            err, sizeof(err))) {
        fprintf(stderr, "weir: %s\n", err);
        goto done;
    }
    const char *jobid = json_string_value(json_object_get(ans, "jobid"));
    if (!jobid) {
        fprintf(stderr, "weir: the job manager at %s did not answer POST /jobs with a jobid\n",
                weir_client_address(client));
        goto done;
    }
    printf("Job has been submitted with JobID %s\n", jobid);
    fflush(stdout);
    rc = c->detached ? 0 : wait_for_job(client, jobid);
done:
    json_decref(ans);
    json_decref(req);
    json_decref(graph);
    free(body);
    free(bytes);
    weir_client_destroy(&client);
    return rc;
}

static int cmd_list(cli_t *c) {
    weir_client_t *client = make_client(c);
    json_t *ans = NULL;
    char err[768];
    int rc = 1;
    if (weir_client_request(client, "GET", "/jobs", NULL, 0, NULL, &ans, err, sizeof(err))) {
        fprintf(stderr, "weir: %s\n", err);
        goto done;
    }
    json_t *jobs = json_object_get(ans, "jobs");
    if (!json_is_array(jobs)) {
        fprintf(stderr, "weir: the job manager at %s answered GET /jobs without a job list\n",
                weir_client_address(client));
        goto done;
    }
    if (json_array_size(jobs) == 0)
        printf("No running jobs.\n");
    size_t i;
    json_t *j;
    json_array_foreach(jobs, i, j) {
        const char *id = json_string_value(json_object_get(j, "id"));
        const char *name = json_string_value(json_object_get(j, "name"));
        const char *state = json_string_value(json_object_get(j, "state"));
        printf("%s : %s (%s)\n", id ? id : "?", name ? name : "?", state ? state : "?");
    }
    rc = 0;
done:
    json_decref(ans);
    weir_client_destroy(&client);
    return rc;
}

static int cmd_cancel(cli_t *c) {
    const char *id = c->pos[0];
    char path[256], err[768];
    /* the id goes into a URL path: accept only what a job id can be */
    if (strlen(id) > 128 || strspn(id, "0123456789abcdefABCDEF-") != strlen(id)) {
        fprintf(stderr, "weir: '%s' is not a job id (32 hex digits, see weir list)\n", id);
        return 1;
    }
    snprintf(path, sizeof(path), "/jobs/%s", id);
    weir_client_t *client = make_client(c);
    int rc = weir_client_request(client, "PATCH", path, NULL, 0, NULL, NULL, err, sizeof(err));
    weir_client_destroy(&client);
    if (rc) {
        fprintf(stderr, "weir: %s\n", err);
        return 1;
    }
    printf("Cancelled job %s.\n", id);
    return 0;
}

int weir_cli_main(int argc, char **argv, char **envp) {
    cli_t c = {0};
    int rc = parse_args(&c, argc, argv);
    if (rc)
        goto out;
    char err[768];
    c.cfg = weir_config_new();
    c.cfg_argv[c.cfg_argc] = NULL;
    if (weir_config_from_args(c.cfg, &c.cfg_argc, (char **)c.cfg_argv, envp, err, sizeof(err))) {
        fprintf(stderr, "weir: %s\n", err);
        rc = 1;
        goto out;
    }
    if (c.cfg_argc > 1) { /* cannot happen: only -c/-D were collected */
        fprintf(stderr, "weir: unexpected option '%s'\n", c.cfg_argv[1]);
        rc = EXIT_USAGE;
        goto out;
    }
    if (!strcmp(c.cmd, "info")) {
        rc = cmd_info(&c);
        goto out;
    }
    if (!strcmp(c.cmd, "keygen")) {
        rc = weir_curve_keygen(c.n_pos ? c.pos[0] : NULL, err, sizeof err) ? 1 : 0;
        if (rc)
            fprintf(stderr, "weir: %s\n", err);
        goto out;
    }
    if (client_options(&c) != 0) {
        rc = 1;
        goto out;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (!strcmp(c.cmd, "run"))
        rc = cmd_run(&c);
    else if (!strcmp(c.cmd, "list"))
        rc = cmd_list(&c);
    else
        rc = cmd_cancel(&c);
    curl_global_cleanup();
out:
    if (c.token) {
        memset(c.token, 0, strlen(c.token));
        free(c.token);
    }
    weir_config_destroy(&c.cfg);
    free(c.cfg_argv);
    return rc;
}
