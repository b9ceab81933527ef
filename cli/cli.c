/* The `weir` command: argument parsing and the entry point, and the commands run (load a plugin,
 * build its graph, upload plugin + graph, optionally from a savepoint, optionally wait for the
 * end), list, cancel, info, keygen (a new cluster CURVE key file); savepoint, stop and validate
 * live in savepoints.c. Command forms, messages and exit codes are a contract used by scripts
 * (docs/cli.md): 0 success, 1 failure (job failed, cluster or plugin error), 2 usage error, 130
 * interrupted while attached.
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
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli_int.h"
#include "cli/client.h"
#include "common/config.h"
#include "common/curve.h"
#include "common/err.h"
#include "common/util.h"
#include "connectors/registry.h"
#include "runtime/graph/graph.h"
#include "runtime/graph/plugin.h"
#include "weir/host.h"

#define EXIT_USAGE WEIR_CLI_EXIT_USAGE
#define POLL_INTERVAL_NS WEIR_CLI_POLL_INTERVAL_NS
#define POLL_UNREACHABLE_LIMIT 150 /* 30 s of failed polls */

static const char USAGE[] =
    "Usage:\n"
    "  weir [-m HOST:PORT] [-c FILE] [-D key=value]... run [-p N] [-d] [-s PATH [-n]]\n"
    "       [--job-id ID] PLUGIN.so [job args...]\n"
    "  weir [-m HOST:PORT] list\n"
    "  weir [-m HOST:PORT] cancel JOBID\n"
    "  weir [-m HOST:PORT] savepoint JOBID [TARGET_DIR]\n"
    "  weir [-m HOST:PORT] stop [--savepointPath DIR] JOBID\n"
    "  weir validate -s PATH [-p N] [-n] PLUGIN.so [job args...]\n"
    "  weir info [-p N] PLUGIN.so [job args...]\n"
    "  weir keygen [FILE]\n"
    "  weir --help\n"
    "\n"
    "Commands:\n"
    "  run        build the job graph of PLUGIN.so, submit it and wait until the job ends\n"
    "  list       list the jobs of the cluster, in any state\n"
    "  cancel     cancel a job\n"
    "  savepoint  write a savepoint of a running job into TARGET_DIR (default\n"
    "             state.savepoints.dir); the job goes on\n"
    "  stop       write a final savepoint, commit the sinks' output and finish the job\n"
    "  validate   check that PLUGIN.so can start from the savepoint PATH: per operator uid\n"
    "             restored, new, dropped or incompatible (no cluster needed)\n"
    "  info       print the job graph of PLUGIN.so as JSON (no cluster needed)\n"
    "  keygen     write a new cluster key pair (security.curve.key-file) to FILE, mode 0600,\n"
    "             never replacing a file; without FILE to stdout\n"
    "\n"
    "Options:\n"
    "  -m, --jobmanager HOST:PORT  job manager REST address (default rest.address:rest.port)\n"
    "  -c, --config FILE           YAML configuration file\n"
    "  -D key=value                set a configuration key (repeatable)\n"
    "  -p, --parallelism N         default parallelism of the job (default parallelism.default)\n"
    "  -d, --detached              run: return once the job is submitted\n"
    "  -s, --fromSavepoint PATH    run, validate: start from this savepoint or retained\n"
    "                              checkpoint (its directory or its _metadata file)\n"
    "  -n, --allowNonRestoredState\n"
    "                              run, validate: drop the state of operators (uids) the job no\n"
    "                              longer has instead of refusing to start\n"
    "      --job-id ID             run: the job's id (32 lowercase hex digits; default: a new\n"
    "                              random one; refused when the cluster has a job of that id)\n"
    "  -p, --savepointPath DIR     stop: where the savepoint goes (default state.savepoints.dir)\n"
    "  -h, --help                  show this help\n"
    "\n"
    "Arguments after PLUGIN.so are passed to the job's define() as argv[1..].\n"
    "A job manager that requires a token: -D rest.auth.token=TOKEN (or WEIR_REST_AUTH_TOKEN,\n"
    "or rest.auth.token-file); over HTTPS: -D rest.ssl.enabled=true -D rest.ssl.trust-cert=CA.pem\n"
    "Exit codes: 0 ok, 1 failure, 2 usage error, 130 interrupted.\n";

typedef weir__cli_t cli_t;

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("weir: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(" (see weir --help)\n", stderr);
    va_end(ap);
    return EXIT_USAGE;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Handles one option at argv[*i] shared by the global and the command position. Returns 1 when
 * consumed, 0 when not an option we know, or -EXIT_USAGE after printing an error. */
static int parse_option(cli_t *c, int argc, char **argv, int *i, bool global) {
    const char *a = argv[*i];
    const char *where = c->cmd ? c->cmd : "weir";
    const char *val = NULL;
#define NEED_VALUE() NEED_VALUE_HINT("")
/* an option whose value names a path: a missing or empty value is refused with @p hint */
#define NEED_VALUE_HINT(hint)                                                                      \
    do {                                                                                           \
        if (*i + 1 >= argc) {                                                                      \
            usage_error("option '%s' of '%s' needs a value%s", a, where, hint);                    \
            return -EXIT_USAGE;                                                                    \
        }                                                                                          \
        val = argv[++*i];                                                                          \
    } while (0)
#define PATH_VALUE(prefix, hint)                                                                   \
    do {                                                                                           \
        size_t plen_ = strlen(prefix);                                                             \
        if (!strncmp(a, prefix "=", plen_ + 1))                                                    \
            val = a + plen_ + 1;                                                                   \
        else                                                                                       \
            NEED_VALUE_HINT(hint);                                                                 \
        if (!*val) {                                                                               \
            usage_error("option '%s' of '%s' needs a value%s", prefix, where, hint);               \
            return -EXIT_USAGE;                                                                    \
        }                                                                                          \
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
    bool restoring = !strcmp(c->cmd, "run") || !strcmp(c->cmd, "validate");
    static const char SP_HINT[] =
        ": PATH, the savepoint or retained checkpoint directory to start from";
    if (restoring && !strcmp(a, "-s")) {
        PATH_VALUE("-s", SP_HINT);
        c->savepoint_path = val;
        return 1;
    }
    if (restoring && (!strcmp(a, "--fromSavepoint") || !strncmp(a, "--fromSavepoint=", 16))) {
        PATH_VALUE("--fromSavepoint", SP_HINT);
        c->savepoint_path = val;
        return 1;
    }
    if (restoring && (!strcmp(a, "-n") || !strcmp(a, "--allowNonRestoredState"))) {
        c->allow_non_restored = true;
        return 1;
    }
    static const char STOP_HINT[] = ": DIR, where the savepoint is written";
    if (!strcmp(c->cmd, "stop") && !strcmp(a, "-p")) {
        PATH_VALUE("-p", STOP_HINT);
        c->stop_target = val;
        return 1;
    }
    if (!strcmp(c->cmd, "stop") &&
        (!strcmp(a, "--savepointPath") || !strncmp(a, "--savepointPath=", 16))) {
        PATH_VALUE("--savepointPath", STOP_HINT);
        c->stop_target = val;
        return 1;
    }
    bool runlike = !strcmp(c->cmd, "run") || !strcmp(c->cmd, "info") || !strcmp(c->cmd, "validate");
    if (runlike && (!strcmp(a, "-p") || !strcmp(a, "--parallelism") || !strncmp(a, "-p", 2))) {
        if (!strcmp(a, "-p") || !strcmp(a, "--parallelism"))
            NEED_VALUE();
        else
            val = a + 2;
        int64_t p;
        if (weir_parse_int(val, 1, 32768, &p) != 0) {
            usage_error("-p needs a parallelism between 1 and 32768, got '%s'", val);
            return -EXIT_USAGE;
        }
        c->parallelism = (uint32_t)p;
        return 1;
    }
    if (!strcmp(c->cmd, "run") && (!strcmp(a, "--job-id") || !strncmp(a, "--job-id=", 9))) {
        PATH_VALUE("--job-id", ": ID, 32 lowercase hex digits");
        size_t n = strspn(val, "0123456789abcdef");
        if (n != 32 || val[n]) {
            usage_error("--job-id needs 32 lowercase hex digits, got '%s'", val);
            return -EXIT_USAGE;
        }
        c->job_id = val;
        return 1;
    }
    if (!strcmp(c->cmd, "run") && (!strcmp(a, "-d") || !strcmp(a, "--detached"))) {
        c->detached = true;
        return 1;
    }
    return 0;
#undef NEED_VALUE
#undef NEED_VALUE_HINT
#undef PATH_VALUE
}

/* Parses argv into @p c; @p posv (argc entries) collects the positional arguments of commands
 * that are not run-like (options may stand between them). @returns 0 or the exit code. */
static int parse_args(cli_t *c, int argc, char **argv, char **posv) {
    c->cfg_argv = weir_xcalloc((size_t)argc + 2, sizeof(char *));
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
            return usage_error("unknown option '%s'", argv[i]);
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
    static const char *const commands[] = {"run",  "list",      "cancel",   "info", "keygen",
                                           "stop", "savepoint", "validate", NULL};
    bool known = false;
    for (int k = 0; commands[k]; k++)
        known = known || !strcmp(c->cmd, commands[k]);
    if (!known)
        return usage_error("unknown command '%s'", c->cmd);
    bool runlike = !strcmp(c->cmd, "run") || !strcmp(c->cmd, "info") || !strcmp(c->cmd, "validate");
    c->pos = posv;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) {
            i++;
            break;
        }
        if (a[0] != '-' || a[1] == '\0') {
            if (runlike)
                break; /* PLUGIN.so: everything from here on belongs to the job */
            posv[c->n_pos++] = argv[i];
            continue;
        }
        int r = parse_option(c, argc, argv, &i, false);
        if (r < 0)
            return -r;
        if (r == 0)
            return usage_error("unknown option '%s' for '%s'", a, c->cmd);
    }
    if (!runlike && i < argc) /* after "--" */
        while (i < argc)
            posv[c->n_pos++] = argv[i++];
    if (runlike) {
        c->pos = &argv[i];
        c->n_pos = argc - i;
        if (c->n_pos == 0 && c->savepoint_path && ends_with(c->savepoint_path, ".so"))
            return usage_error("'%s' needs PLUGIN.so: '%s' was taken as the savepoint path of -s: "
                               "give -s PATH, then PLUGIN.so",
                               c->cmd, c->savepoint_path);
        if (c->n_pos == 0)
            return usage_error("'%s' needs PLUGIN.so", c->cmd);
        if (!strcmp(c->cmd, "validate") && !c->savepoint_path)
            return usage_error("'validate' needs -s PATH: the savepoint or retained checkpoint to "
                               "check %s against",
                               c->pos[0]);
        if (c->allow_non_restored && !c->savepoint_path)
            return usage_error("--allowNonRestoredState applies only when starting from a "
                               "savepoint: add -s PATH");
    } else {
        if (!strcmp(c->cmd, "list") && c->n_pos != 0)
            return usage_error("'list' takes no arguments, got '%s'", c->pos[0]);
        if (!strcmp(c->cmd, "cancel") && c->n_pos != 1)
            return usage_error("'cancel' needs exactly one JOBID");
        if (!strcmp(c->cmd, "keygen") && c->n_pos > 1)
            return usage_error("'keygen' takes at most one FILE, got '%s'", c->pos[1]);
        if (!strcmp(c->cmd, "savepoint") && c->n_pos == 0)
            return usage_error("'savepoint' needs JOBID [TARGET_DIR]: the id of a running job "
                               "(weir list shows them)");
        if (!strcmp(c->cmd, "savepoint") && c->n_pos > 2)
            return usage_error("'savepoint' takes JOBID [TARGET_DIR], got a third argument '%s'",
                               c->pos[2]);
        if (!strcmp(c->cmd, "stop") && c->n_pos == 0)
            return usage_error("'stop' needs a JOBID: the id of a running job (weir list shows "
                               "them)");
        if (!strcmp(c->cmd, "stop") && c->n_pos > 1)
            return usage_error("'stop' takes one JOBID, got a second argument '%s': give the "
                               "savepoint directory with --savepointPath DIR",
                               c->pos[1]);
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */

weir_client_t *weir__cli_client(const cli_t *c) {
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

/* The job's argv is argv[0] = plugin path, then the job arguments. */
int weir__cli_build_graph(const cli_t *c, weir_plugin_t **plugin, weir_job_t **job) {
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
    if (weir__cli_build_graph(c, &plugin, &job))
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

void weir__cli_exit_on_sigint(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
}

int weir__cli_poll_get(weir_client_t *client, const char *path, json_t **out) {
    char err[768];
    for (int unreachable = 0;;) {
        int rc = weir_client_request(client, "GET", path, NULL, 0, NULL, out, err, sizeof(err));
        if (rc == WEIR_ENET && ++unreachable < POLL_UNREACHABLE_LIMIT) {
            weir_sleep_ns(POLL_INTERVAL_NS);
            continue;
        }
        if (rc != 0) {
            fprintf(stderr, "weir: %s\n", err);
            return 1;
        }
        return 0;
    }
}

int weir__cli_check_jobid(const char *id) {
    /* the id goes into a URL path: accept only what a job id can be */
    if (strlen(id) > 128 || strspn(id, "0123456789abcdefABCDEF-") != strlen(id)) {
        fprintf(stderr, "weir: '%s' is not a job id (32 hex digits, see weir list)\n", id);
        return 1;
    }
    return 0;
}

int weir__cli_abs_path(const char *path, char *out, size_t cap) {
    int n;
    if (path[0] == '/' || strstr(path, "://")) {
        n = weir_fmt(out, cap, "%s", path);
    } else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd)) {
            fprintf(stderr, "weir: cannot make '%s' absolute: the current directory: %s\n", path,
                    strerror(errno));
            return 1;
        }
        while (path[0] == '.' && path[1] == '/')
            path += 2;
        n = weir_fmt(out, cap, "%s%s%s", cwd, strcmp(cwd, "/") ? "/" : "",
                     strcmp(path, ".") ? path : "");
    }
    if (n < 0 || (size_t)n >= cap) {
        fprintf(stderr, "weir: the path '%s' is too long (at most %zu bytes)\n", path, cap - 1);
        return 1;
    }
    return 0;
}

static int wait_for_job(weir_client_t *client, const char *jobid) {
    weir__cli_exit_on_sigint();
    char path[160];
    snprintf(path, sizeof(path), "/jobs/%s", jobid);
    for (;;) {
        json_t *j = NULL;
        if (weir__cli_poll_get(client, path, &j))
            return 1;
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
    char err[768], sp_abs[PATH_MAX] = "";

    if (c->savepoint_path && weir__cli_abs_path(c->savepoint_path, sp_abs, sizeof sp_abs))
        return 1;
    if (weir__cli_build_graph(c, &plugin, &job))
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
    client = weir__cli_client(c);
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
    if (req && sp_abs[0]) { /* the job manager restores from it or refuses with one line */
        json_t *sp = json_string(sp_abs);
        if (!sp) {
            fprintf(stderr, "weir: the savepoint path '%s' must be valid UTF-8\n", sp_abs);
            goto done;
        }
        json_object_set_new(req, "savepointPath", sp);
        json_object_set_new(req, "allowNonRestoredState", json_boolean(c->allow_non_restored));
    }
    if (req && c->job_id)
        json_object_set_new(req, "jobId", json_string(c->job_id));
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
    weir_client_t *client = weir__cli_client(c);
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
    if (weir__cli_check_jobid(id))
        return 1;
    snprintf(path, sizeof(path), "/jobs/%s", id);
    weir_client_t *client = weir__cli_client(c);
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
    char **posv = weir_xcalloc((size_t)argc + 1, sizeof(char *));
    int rc = parse_args(&c, argc, argv, posv);
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
    if (!strcmp(c.cmd, "validate")) {
        rc = weir__cli_validate(&c);
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
    else if (!strcmp(c.cmd, "savepoint"))
        rc = weir__cli_savepoint(&c);
    else if (!strcmp(c.cmd, "stop"))
        rc = weir__cli_stop(&c);
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
    free(posv);
    return rc;
}
