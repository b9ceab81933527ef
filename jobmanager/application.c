/* Owns application mode (jobmanager/README.md, "Application mode and shutdown"): a job manager
 * started with application.plugin runs that one job and exits when it ended. At start, after HA
 * recovery and the REST server are up, it decides once:
 *   1. <ha>/results/<id>.json exists (the job result store, ha.h): the job already ended; nothing
 *      runs and the job manager exits 0 (FINISHED, CANCELED) or 1 (FAILED);
 *   2. the job is in the table (recovered from HA): it resumes there, nothing is submitted;
 *   3. else the `weir` CLI is spawned (posix_spawn) to submit it with a fixed job id:
 *        <cli> -m <rest host>:<rest port> run -d --job-id <id> [-p N] [-s PATH [-n]]
 *              [-D rest.ssl.enabled=true -D rest.ssl.trust-cert=<rest.ssl.certificate>]
 *              <plugin> <job args...>
 *      with the REST token in its environment only (WEIR_REST_AUTH_TOKEN), never on its command
 *      line. The CLI builds the graph (it loads the plugin: the job manager itself never does).
 * The job id is application.job-id or derived from high-availability.cluster-id and
 * execution.savepoint.path (weir_ha_application_job_id): the same configuration finds its job in
 * HA after a restart; an upgrade from a new savepoint is a new job.
 *
 * Invariants: at most one child, reaped by the main loop (waitpid WNOHANG); a child that exits
 * non-zero (or 0) before the job is in the table fails the job manager with one line; the exit
 * code is decided only once the job is terminal and its terminal work is done (checkpoint
 * retention, slots freed, result record written and HA entry removed, no savepoint request
 * pending).
 *
 * Threading: weir__jm_app_check_config runs in main before anything starts; weir__jm_app_start in
 * main after weir_jobmanager_new (the REST thread runs: the table is read under jm->mu);
 * weir__jm_app_tick_locked on the main thread with jm->mu held; weir__jm_app_free on the main
 * thread after the loop. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "jobmanager/ha.h"
#include "jobmanager/jobmanager_int.h"
#include "storage/storage.h"

#define COMP "application"

extern char **environ;

struct weir_jm_app {
    char job_id[33];
    char *plugin;
    pid_t child;   /* 0: none (never spawned, or reaped) */
    bool job_seen; /* the job was in the table at least once */
    int exit_code; /* -1: keep running */
};

/* The job id of the configuration into @p out. @returns 0 or WEIR_ECONFIG with one line. */
static int job_id_of(const weir_config_t *cfg, char out[33], char *err, size_t errlen) {
    const char *id = weir_config_get_str(cfg, "application.job-id");
    if (id && *id) {
        if (!weir_ha_valid_job_id(id))
            return weir_errf(err, errlen, WEIR_ECONFIG,
                             "bad value '%s' for application.job-id: give 32 lowercase hex "
                             "digits, or unset it to derive the id",
                             id);
        memcpy(out, id, 33);
        return 0;
    }
    weir_ha_application_job_id(weir_config_get_str(cfg, "high-availability.cluster-id"),
                               weir_config_get_str(cfg, "execution.savepoint.path"), out);
    return 0;
}

int weir__jm_app_check_config(const weir_config_t *cfg, bool have_args, char *err, size_t errlen) {
    const char *plugin = weir_config_get_str(cfg, "application.plugin");
    const char *sp = weir_config_get_str(cfg, "execution.savepoint.path");
    if (!plugin || !*plugin) {
        if (have_args)
            return weir_errf(err, errlen, WEIR_ECONFIG,
                             "job arguments after '--' need application.plugin: set "
                             "-D application.plugin=/path/to/job.so (usage: weir-jobmanager "
                             "[-c FILE] [-D key=value]... [-- JOB ARGS...])");
        return 0;
    }
    struct stat st;
    const char *why = NULL;
    if (stat(plugin, &st) != 0)
        why = errno == ENOENT ? "does not exist" : strerror(errno);
    else if (!S_ISREG(st.st_mode))
        why = "is not a file";
    else if (access(plugin, R_OK) != 0)
        why = "cannot be read";
    if (why)
        return weir_errf(err, errlen, WEIR_ECONFIG,
                         "application.plugin %s: %s: give the path of the job's plugin .so on the "
                         "job manager's file system",
                         plugin, why);
    if (sp && *sp && !strstr(sp, "://") && sp[0] != '/')
        return weir_errf(err, errlen, WEIR_ECONFIG,
                         "execution.savepoint.path '%s' is not an absolute path: give the absolute "
                         "path of the savepoint directory (or s3://bucket/prefix)",
                         sp);
    if (sp && *sp && strstr(sp, "://") &&
        weir__jm_location_check("execution.savepoint.path", sp, err, errlen) != 0)
        return WEIR_ECONFIG;
    char id[33];
    return job_id_of(cfg, id, err, errlen);
}

/* The address the child reaches the REST server at: rest.bind-address, a wildcard one as the
 * loopback address. */
static void rest_address(const weir_jobmanager_t *jm, char *out, size_t cap) {
    const char *h = jm->rest_bind;
    if (!strcmp(h, "0.0.0.0") || !strcmp(h, "*") || !h[0])
        h = "127.0.0.1";
    else if (!strcmp(h, "::") || !strcmp(h, "[::]"))
        h = "::1";
    if (strchr(h, ':') && h[0] != '[')
        weir_fmt(out, cap, "[%s]:%d", h, jm->rest_port);
    else
        weir_fmt(out, cap, "%s:%d", h, jm->rest_port);
}

/* application.cli, or `weir` next to this executable. */
static int cli_path(const weir_config_t *cfg, char *out, size_t cap, char *err, size_t errlen) {
    const char *cli = weir_config_get_str(cfg, "application.cli");
    if (cli && *cli) {
        weir_fmt(out, cap, "%s", cli);
        return 0;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return weir_errf(err, errlen, WEIR_ECONFIG,
                         "cannot find the job manager's executable (%s): set application.cli",
                         strerror(errno));
    self[n] = 0;
    char *slash = strrchr(self, '/');
    if (slash)
        *slash = 0;
    weir_fmt(out, cap, "%s/weir", self);
    return 0;
}

/* The environment of the child: ours without REST token variables, plus the token. */
static char **child_env(const char *token) {
    size_t n = 0;
    while (environ && environ[n])
        n++;
    char **env = weir_xcalloc(n + 2, sizeof *env);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "WEIR_REST_AUTH_TOKEN", 20) != 0)
            env[k++] = environ[i];
    if (token) {
        size_t len = strlen("WEIR_REST_AUTH_TOKEN=") + strlen(token) + 1;
        env[k] = weir_xcalloc(len, 1);
        weir_fmt(env[k], len, "WEIR_REST_AUTH_TOKEN=%s", token);
    }
    return env;
}

/* Spawns the CLI that submits the job. @returns 0 or an error with one line. */
static int spawn_cli(weir_jobmanager_t *jm, const weir_config_t *cfg, char *const *args, int n_args,
                     char *err, size_t errlen) {
    weir_jm_app_t *app = jm->app;
    char cli[PATH_MAX], addr[300], par[32];
    int rc = cli_path(cfg, cli, sizeof cli, err, errlen);
    if (rc != 0)
        return rc;
    char *token = NULL;
    if ((rc = weir_config_rest_token(cfg, &token, err, errlen)) != 0)
        return rc;
    rest_address(jm, addr, sizeof addr);
    const char **argv = weir_xcalloc((size_t)n_args + 24, sizeof *argv);
    int a = 0;
    argv[a++] = cli;
    argv[a++] = "-m";
    argv[a++] = addr;
    const char *cert = weir_config_get_str(cfg, "rest.ssl.certificate");
    char trust[PATH_MAX + 32];
    if (weir_config_get_bool(cfg, "rest.ssl.enabled")) {
        weir_fmt(trust, sizeof trust, "rest.ssl.trust-cert=%s", cert ? cert : "");
        argv[a++] = "-D";
        argv[a++] = "rest.ssl.enabled=true";
        argv[a++] = "-D";
        argv[a++] = trust;
    }
    argv[a++] = "run";
    argv[a++] = "-d";
    argv[a++] = "--job-id";
    argv[a++] = app->job_id;
    weir_fmt(par, sizeof par, "%" PRId64, weir_config_get_int(cfg, "parallelism.default"));
    argv[a++] = "-p";
    argv[a++] = par;
    const char *sp = weir_config_get_str(cfg, "execution.savepoint.path");
    if (sp && *sp) {
        argv[a++] = "-s";
        argv[a++] = sp;
        if (weir_config_get_bool(cfg, "execution.savepoint.ignore-unclaimed-state"))
            argv[a++] = "-n";
    }
    argv[a++] = app->plugin;
    for (int i = 0; i < n_args; i++)
        argv[a++] = args[i];
    argv[a] = NULL;
    char **env = child_env(token);
    pid_t pid;
    int e = posix_spawn(&pid, cli, NULL, NULL, (char *const *)argv, env);
    if (token) {
        for (size_t i = 0; env[i]; i++)
            if (!strncmp(env[i], "WEIR_REST_AUTH_TOKEN=", 21)) {
                memset(env[i], 0, strlen(env[i]));
                free(env[i]);
            }
        memset(token, 0, strlen(token));
        free(token);
    }
    free(env);
    free(argv);
    if (e != 0)
        return weir_errf(err, errlen, WEIR_EIO,
                         "application mode: cannot start the weir CLI %s: %s (set "
                         "application.cli to the weir executable)",
                         cli, strerror(e));
    app->child = pid;
    WEIR_INFO(COMP,
              "submitting application job %s: %s -m %s run -d --job-id %s -p %s%s%s %s with %d "
              "job arguments (pid %d)",
              app->job_id, cli, addr, app->job_id, par, sp && *sp ? " -s " : "", sp ? sp : "",
              app->plugin, n_args, (int)pid);
    return 0;
}

int weir__jm_app_start(weir_jobmanager_t *jm, const weir_config_t *cfg, char *const *args,
                       int n_args, char *err, size_t errlen) {
    const char *plugin = weir_config_get_str(cfg, "application.plugin");
    if (!plugin || !*plugin)
        return 0;
    weir_jm_app_t *app = weir_xcalloc(1, sizeof *app);
    app->exit_code = -1;
    app->plugin = weir_xstrdup(plugin);
    jm->app = app;
    int rc = job_id_of(cfg, app->job_id, err, errlen);
    if (rc != 0)
        return rc;
    if (jm->ha_dir) {
        weir_ha_result_t res;
        char path[WEIR_STORAGE_URI_MAX + 64];
        weir_ha_result_path(jm->ha_dir, app->job_id, path, sizeof path);
        rc = weir_ha_load_result(jm->ha_st, app->job_id, NULL, &res, err, errlen);
        if (rc == 0) {
            WEIR_INFO(COMP, "application job %s already reached %s (%s); nothing to run",
                      app->job_id, res.state, path);
            app->exit_code = strcmp(res.state, "FAILED") == 0 ? 1 : 0;
            weir_ha_result_clear(&res);
            return 0;
        }
        if (rc != WEIR_ENOTFOUND)
            return rc;
    }
    pthread_mutex_lock(&jm->mu);
    weir_jm_job_t *job = weir__jm_find_job_locked(jm, app->job_id);
    if (job) {
        app->job_seen = true;
        WEIR_INFO(COMP, "application job %s recovered from HA (%s): not submitted again",
                  app->job_id, weir__jm_job_state_name(job->state));
    }
    pthread_mutex_unlock(&jm->mu);
    if (job)
        return 0;
    return spawn_cli(jm, cfg, args, n_args, err, errlen);
}

/* Reaps the child when it exited. @returns -1 while it runs (or there is none), else its exit
 * code (128 + N when killed by signal N). */
static int reap(weir_jm_app_t *app) {
    if (app->child <= 0)
        return -1;
    int st;
    pid_t r = waitpid(app->child, &st, WNOHANG);
    if (r == 0 || (r < 0 && errno == EINTR))
        return -1;
    app->child = 0;
    if (r < 0)
        return 0; /* not our child any more: the job table decides */
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

int weir__jm_app_tick_locked(weir_jobmanager_t *jm) {
    weir_jm_app_t *app = jm->app;
    if (!app)
        return -1;
    if (app->exit_code >= 0)
        return app->exit_code;
    weir_jm_job_t *job = weir__jm_find_job_locked(jm, app->job_id);
    int code = reap(app);
    if (job)
        app->job_seen = true;
    if (code >= 0 && !app->job_seen) {
        WEIR_ERROR(COMP,
                   "application job %s (%s) was not submitted: the weir CLI exited with code %d "
                   "(its error is above)",
                   app->job_id, app->plugin, code);
        return app->exit_code = 1;
    }
    if (!job || !weir__jm_job_terminal(job->state))
        return -1;
    if (!weir__jm_job_settled_locked(job))
        return -1;
    app->exit_code = job->state == WEIR_JOB_FAILED ? 1 : 0;
    WEIR_INFO(COMP, "application job %s %s%s%s: exiting %d", app->job_id,
              weir__jm_job_state_name(job->state), job->message ? ": " : "",
              job->message ? job->message : "", app->exit_code);
    return app->exit_code;
}

void weir__jm_app_free(weir_jobmanager_t *jm) {
    weir_jm_app_t *app = jm->app;
    if (!app)
        return;
    if (app->child > 0) { /* still submitting: it must not outlive us unobserved */
        kill(app->child, SIGTERM);
        waitpid(app->child, NULL, 0);
    }
    free(app->plugin);
    free(app);
    jm->app = NULL;
}
