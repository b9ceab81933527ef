/* weir-jobmanager: parses the command line and configuration, runs the job manager's main loop on
 * the main thread until SIGTERM/SIGINT, then closes sockets and exits (0; with
 * jobmanager.shutdown.savepoint after stopping the running jobs with savepoints: 0, or 1 when one
 * failed or timed out). In application mode (application.plugin; job arguments after "--") it
 * exits with the application job's end instead (application.c). Signals are blocked in every
 * thread and read through a signalfd polled by the main loop, so there is no signal handler and
 * no global state. Configuration errors (checkpointing, restart strategy, kill point, REST
 * settings, a listening address beyond loopback without authentication: docs/security.md;
 * application mode and shutdown keys) exit 2. --help prints the usage on stdout and exits 0.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "common/config.h"
#include "common/err.h"
#include "common/killpoint.h"
#include "common/log.h"
#include "common/util.h"
#include "jobmanager/coordinator.h"
#include "jobmanager/jobmanager.h"
#include "jobmanager/jobmanager_int.h"
#include "jobmanager/rest.h"
#include "jobmanager/restart.h"

extern char **environ;

static const char USAGE[] =
    "Usage: weir-jobmanager [-c FILE] [-D key=value]... [-- JOB ARGS...]\n"
    "\n"
    "Runs the job manager: the RPC endpoint of the task managers (jobmanager.rpc.port) and the\n"
    "REST API (rest.port). Runs until SIGTERM/SIGINT.\n"
    "\n"
    "Options:\n"
    "  -c, --config FILE   YAML configuration file (docs/configuration.md)\n"
    "  -D key=value        set a configuration key (repeatable; also WEIR_* variables)\n"
    "  -h, --help          show this help\n"
    "  -- JOB ARGS...      application mode: the arguments of the job of application.plugin\n"
    "\n"
    "Application mode: -D application.plugin=/path/job.so submits that job at start (from\n"
    "execution.savepoint.path if set), resumes it from high-availability.storageDir after a\n"
    "restart and exits when it ends: 0 FINISHED or CANCELED, 1 FAILED.\n"
    "Graceful shutdown: with jobmanager.shutdown.savepoint=true, SIGTERM stops every running\n"
    "job with a savepoint into state.savepoints.dir before exiting (a second signal exits at\n"
    "once). Exit codes: 0 ok, 1 failure, 2 configuration or usage error.\n";

/* Every check of the configuration weir_jobmanager_new() would fail on, without side effects;
 * then the listening addresses (docs/security.md). @returns 0 or an error with one line. */
static int check_config(const weir_config_t *cfg, char *err, size_t errlen) {
    weir_ckpt_config_t ckcfg;
    weir_restart_cfg_t rcfg;
    weir_killpoint_t kp;
    weir_rest_config_t restcfg;
    int rc;
    if ((rc = weir_ckpt_config_load(cfg, &ckcfg, err, errlen)) != 0 ||
        (rc = weir_restart_config_load(cfg, ckcfg.enabled, &rcfg, err, errlen)) != 0)
        return rc;
    if (weir_killpoint_init(&kp, weir_config_get_str(cfg, "debug.kill-at")) != 0)
        return weir_errf(err, errlen, WEIR_ECONFIG,
                         "bad value '%s' for debug.kill-at (POINT or POINT:N)",
                         weir_config_get_str(cfg, "debug.kill-at"));
    if ((rc = weir_rest_config_load(cfg, &restcfg, err, errlen)) != 0)
        return rc;
    weir_rest_config_clear(&restcfg);
    const char *spd = weir_config_get_str(cfg, "state.savepoints.dir");
    if (weir_config_get_bool(cfg, "jobmanager.shutdown.savepoint") && (!spd || !*spd))
        return weir_errf(err, errlen, WEIR_ECONFIG,
                         "jobmanager.shutdown.savepoint is true but state.savepoints.dir is not "
                         "set: set it to the directory of the shutdown savepoints");
    /* the storage env (s3.* values) and every location it opens (s3:// needs s3.endpoint and the
     * credentials): no I/O */
    weir_storage_env_t *env = weir_storage_env_new(cfg, err, errlen);
    if (!env)
        return WEIR_ECONFIG;
    static const char *const keys[] = {"state.checkpoints.dir", "state.savepoints.dir",
                                       "high-availability.storageDir", "execution.savepoint.path"};
    rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof keys / sizeof keys[0]; i++) {
        const char *v = weir_config_get_str(cfg, keys[i]);
        if (!v || !*v)
            continue;
        if (i == 3 && !strstr(v, "://"))
            continue; /* a path: weir__jm_app_check_config's line */
        rc = weir__jm_location_check(keys[i], v, err, errlen);
        char why[WEIR_STORAGE_URI_MAX + 256];
        weir_storage_t *st = rc == 0 ? weir_storage_open(env, v, why, sizeof why) : NULL;
        if (rc == 0 && !st)
            rc = weir_errf(err, errlen, WEIR_ECONFIG, "%s: %s", keys[i], why);
        weir_storage_close(&st);
    }
    weir_storage_env_free(&env);
    if (rc != 0)
        return rc;
    return weir_config_check_binds(cfg, WEIR_CONFIG_JOBMANAGER, err, errlen);
}

int main(int argc, char **argv) {
    char err[WEIR_STORAGE_URI_MAX + 512] = "";
    weir_config_t *cfg = weir_config_new();
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(USAGE, stdout);
            weir_config_destroy(&cfg);
            return 0;
        }
    if (weir_config_from_args(cfg, &argc, argv, environ, err, sizeof err) != 0) {
        fprintf(stderr, "weir-jobmanager: %s\n", err);
        weir_config_destroy(&cfg);
        return 2;
    }
    /* what remains: "--" and the job arguments after it */
    bool dashdash = argc > 1 && !strcmp(argv[1], "--");
    if (argc > 1 && !dashdash) {
        fprintf(stderr,
                "weir-jobmanager: unknown argument '%s' (usage: weir-jobmanager [-c FILE] "
                "[-D key=value]... [-- JOB ARGS...])\n",
                argv[1]);
        weir_config_destroy(&cfg);
        return 2;
    }
    char **job_args = dashdash ? argv + 2 : NULL;
    int n_job_args = dashdash ? argc - 2 : 0;
    /* Configuration mistakes exit 2 before anything starts. */
    if (check_config(cfg, err, sizeof err) != 0 ||
        weir__jm_app_check_config(cfg, dashdash, err, sizeof err) != 0) {
        fprintf(stderr, "weir-jobmanager: %s\n", err);
        weir_config_destroy(&cfg);
        return 2;
    }
    /* Block the stop signals before any thread starts (libmicrohttpd's inherits the mask). */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) {
        fprintf(stderr, "weir-jobmanager: signalfd: %s\n", strerror(errno));
        weir_config_destroy(&cfg);
        return 1;
    }
    weir_jobmanager_t *jm = weir_jobmanager_new(cfg, err, sizeof err);
    if (jm && weir__jm_app_start(jm, cfg, job_args, n_job_args, err, sizeof err) != 0)
        weir_jobmanager_destroy(&jm);
    weir_config_destroy(&cfg);
    if (!jm) {
        fprintf(stderr, "weir-jobmanager: %s\n", err);
        close(sfd);
        return 1;
    }
    int rc = weir_jobmanager_run(jm, sfd);
    WEIR_INFO("jobmanager", "shutting down");
    weir_jobmanager_destroy(&jm);
    close(sfd);
    return rc == 0 ? 0 : 1;
}
