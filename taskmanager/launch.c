/* weir_taskmanager_main: the command line and the task manager's lifetime (the binary's main()
 * in main.c only adds signal handling).
 *
 *   weir-taskmanager [-c FILE] [-D key=value]...
 *
 * Exit codes: 0 after *stop (tasks canceled and joined), 1 when the task manager cannot start, 2
 * for bad arguments or configuration (including a malformed debug.kill-at, and a data plane beyond
 * loopback without security.insecure: docs/security.md). Threading: the calling thread runs the
 * loop. */
#include <stdio.h>

#include "common/config.h"
#include "common/killpoint.h"
#include "common/log.h"
#include "taskmanager/taskmanager.h"
#include "weir/host.h"

int weir_taskmanager_main(int argc, char **argv, char **envp, volatile sig_atomic_t *stop) {
    char err[512] = "";
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
    if (weir_config_check_binds(cfg, WEIR_CONFIG_TASKMANAGER, err, sizeof err) < 0) {
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
