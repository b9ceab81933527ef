/* weir_taskmanager_main: the command line and the task manager's lifetime (the binary's main()
 * in main.c only adds signal handling).
 *
 *   weir-taskmanager [-c FILE] [-D key=value]...
 *   weir-taskmanager --help     (usage on stdout, exit 0)
 *
 * Exit codes: 0 after *stop (tasks canceled and joined), 1 when the task manager cannot start, 2
 * for bad arguments or configuration (including a malformed debug.kill-at, a data plane beyond
 * loopback without security.insecure: docs/security.md, a bad metrics.reporter.prom.port or
 * taskmanager.log.tail-size, and an explicit metrics.reporter.prom.host beyond loopback without
 * rest.auth.token). Threading: the calling thread runs the
 * loop. */
#include <stdio.h>
#include <string.h>

#include "common/config.h"
#include "common/killpoint.h"
#include "common/log.h"
#include "taskmanager/taskmanager.h"
#include "taskmanager/tm_int.h"
#include "weir/host.h"

static const char USAGE[] =
    "Usage: weir-taskmanager [-c FILE] [-D key=value]...\n"
    "\n"
    "Runs a task manager: registers with the job manager at jobmanager.rpc.address:\n"
    "jobmanager.rpc.port (re-registering after it restarts), offers\n"
    "taskmanager.numberOfTaskSlots slots and runs the subtasks deployed to it. Runs until\n"
    "SIGTERM/SIGINT.\n"
    "\n"
    "Options:\n"
    "  -c, --config FILE   YAML configuration file (docs/configuration.md)\n"
    "  -D key=value        set a configuration key (repeatable; also WEIR_* variables, e.g.\n"
    "                      WEIR_TASKMANAGER_HOST for the address peers reach it at)\n"
    "  -h, --help          show this help\n"
    "Exit codes: 0 stopped, 1 cannot start, 2 configuration or usage error.\n";

int weir_taskmanager_main(int argc, char **argv, char **envp, volatile sig_atomic_t *stop) {
    char err[512] = "";
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(USAGE, stdout);
            return 0;
        }
    weir_config_t *cfg = weir_config_new();
    if (weir_config_from_args(cfg, &argc, argv, envp, err, sizeof err) < 0) {
        fprintf(stderr, "weir-taskmanager: %s\n", err);
        weir_config_destroy(&cfg);
        return 2;
    }
    if (argc > 1) {
        fprintf(stderr,
                "weir-taskmanager: unknown argument '%s' (usage: weir-taskmanager [-c FILE] "
                "[-D key=value]...)\n",
                argv[1]);
        weir_config_destroy(&cfg);
        return 2;
    }

    weir_killpoint_t kp; /* validated here for exit code 2; the task manager arms its own */
    const char *kill_at = weir_config_get_str(cfg, "debug.kill-at");
    if (weir_killpoint_init(&kp, kill_at) < 0) {
        fprintf(stderr,
                "weir-taskmanager: invalid debug.kill-at '%s': expected POINT or POINT:N with N "
                ">= 1\n",
                kill_at);
        weir_config_destroy(&cfg);
        return 2;
    }
    if (weir_config_check_binds(cfg, WEIR_CONFIG_TASKMANAGER, err, sizeof err) < 0 ||
        weir__tm_check_config(cfg, err, sizeof err) < 0) {
        fprintf(stderr, "weir-taskmanager: %s\n", err);
        weir_config_destroy(&cfg);
        return 2;
    }

    weir_taskmanager_t *tm = weir_taskmanager_new(cfg, err, sizeof err);
    if (!tm) {
        fprintf(stderr, "weir-taskmanager: %s\n", err);
        return 1;
    }
    int rc = weir_taskmanager_run(tm, stop);
    WEIR_INFO("taskmanager", "%s stopped", weir_taskmanager_id(tm));
    weir_taskmanager_destroy(&tm);
    return rc == 0 ? 0 : 1;
}
