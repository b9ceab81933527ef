/**
 * @file host.h
 * @brief Entry points of the weir processes that load job plugins (not for plugins).
 *
 * The binaries `weir` and `weir-taskmanager` are each a main() that sets up signal handling and
 * calls one of these. Everything else lives in libweir.so, so a plugin and the process hosting it
 * share one copy of the runtime, and the plugin can bind to nothing but the declarations in
 * include/weir/ (libweir.so is built with hidden visibility).
 */
#ifndef WEIR_HOST_H
#define WEIR_HOST_H

#include <signal.h>

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

/** The `weir` command (docs/cli.md): @returns the process exit code (0, 1, 2 or 130). */
int weir_cli_main(int argc, char **argv, char **envp);

/** The task manager: parses `[-c FILE] [-D key=value]...`, registers with the job manager and runs
 * until `*stop` becomes non-zero (set by the caller's SIGTERM/SIGINT handler); then cancels and
 * joins its tasks. @returns 0 after a stop, 1 when it cannot start, 2 for bad arguments or
 * configuration. */
int weir_taskmanager_main(int argc, char **argv, char **envp, volatile sig_atomic_t *stop);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif /* WEIR_HOST_H */
