/* Internal to cli/: the parsed command line shared by cli.c (parsing, run, list, cancel, info,
 * keygen, the main entry) and savepoints.c (savepoint, stop, validate), and the helpers both use.
 * Threading: single-threaded, as the whole command. */
#ifndef WEIR_CLI_INT_H
#define WEIR_CLI_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli/client.h"
#include "common/config.h"
#include "runtime/graph/graph.h"
#include "runtime/graph/plugin.h"

#define WEIR_CLI_EXIT_USAGE 2
/* Every GET that waits for something (a job's end, a savepoint) is sent this often. */
#define WEIR_CLI_POLL_INTERVAL_NS 200000000LL

typedef struct weir__cli {
    const char *cmd;
    const char *jobmanager; /* -m, or NULL */
    uint32_t parallelism;   /* -p, 0 = from config */
    bool detached;
    const char *savepoint_path; /* run/validate -s, --fromSavepoint; NULL = none */
    bool allow_non_restored;    /* run/validate -n, --allowNonRestoredState */
    const char *stop_target;    /* stop --savepointPath; NULL = state.savepoints.dir */
    const char *job_id;         /* run --job-id; NULL = the job manager picks one */
    const char **cfg_argv;      /* argv[0] + -c/-D options, for weir_config_from_args */
    int cfg_argc;
    char **pos; /* positional arguments of the command (PLUGIN.so + job args, JOBID) */
    int n_pos;
    weir_config_t *cfg;
    char *token;              /* rest.auth.token (or the content of rest.auth.token-file) */
    weir_client_opts_t copts; /* token and TLS settings of every client */
} weir__cli_t;

/** A client for the job manager of -m (or rest.address:rest.port). Never NULL. */
weir_client_t *weir__cli_client(const weir__cli_t *c);
/** Opens the plugin c->pos[0] and builds its graph with the job arguments (define() at the
 * default parallelism, then the connectors' option checks). @returns 0 or 1 after printing the
 * error. */
int weir__cli_build_graph(const weir__cli_t *c, weir_plugin_t **plugin, weir_job_t **job);
/** 0 when @p id can be a job id (it goes into a URL path), else 1 after printing
 * "weir: '<id>' is not a job id (32 hex digits, see weir list)". */
int weir__cli_check_jobid(const char *id);
/** A GET that may meet a job manager that is restarting: retried every poll interval while it is
 * unreachable, for at most 30 s. @returns 0 with *out, or 1 after printing the error. */
int weir__cli_poll_get(weir_client_t *client, const char *path, json_t **out);
/** Ctrl-C while waiting: exit 130 at once (what is waited for goes on in the cluster). */
void weir__cli_exit_on_sigint(void);
/** @p path as the job manager should see it: an absolute path stays, a relative one is joined to
 * the current directory (the job manager's is another), a URI ("scheme://...") stays. @returns 0
 * or 1 after printing the error. */
int weir__cli_abs_path(const char *path, char *out, size_t cap);

/** `weir savepoint JOBID [TARGET_DIR]`, `weir stop [--savepointPath DIR] JOBID`, `weir validate
 * -s PATH [-p N] [-n] PLUGIN.so [args]` (savepoints.c). @returns the exit code. */
int weir__cli_savepoint(weir__cli_t *c);
int weir__cli_stop(weir__cli_t *c);
int weir__cli_validate(weir__cli_t *c);

/** "<k>/<n> subtasks acknowledged, <size> written" with the size in B, KiB, MiB, GiB or TiB (one
 * decimal from KiB on), into @p buf (savepoints.c). */
void weir__cli_progress_text(char *buf, size_t cap, int64_t acked, int64_t total, int64_t bytes);

#endif
