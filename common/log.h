/* Logging: "LEVEL time [process] [thread identity] component: message" lines on stderr (and a
 * process's extra sink, e.g. the task manager's log ring). The threshold comes from the
 * WEIR_LOG_LEVEL environment variable (debug, info, warn, error), read per call (logging is never
 * on a hot path), else from the installed process identity (the task manager's log.level), else
 * info.
 *
 * Identity: a process may install who it is (the task manager its resource id) and a sink that
 * receives every line written; a thread may set the subtask it runs (job, attempt, task name),
 * printed on every line it logs:
 *
 *   INFO 2026-12-02T08:40:56.123Z tm-1a2b3c4d job=3f2a9c1d att=2 task="Map (2/4)" task: ...
 *
 * These are the one exception to "no global mutable state outside main" (like stderr itself):
 * log.c holds a pointer to the installed process identity (owned by its installer) and one
 * thread-local identity per thread. */
#ifndef WEIR_COMMON_LOG_H
#define WEIR_COMMON_LOG_H

#include <stddef.h>
#include <stdint.h>

typedef enum weir_log_level {
    WEIR_LOG_DEBUG = 0,
    WEIR_LOG_INFO = 1,
    WEIR_LOG_WARN = 2,
    WEIR_LOG_ERROR = 3,
} weir_log_level_t;

/** Receives each line written (with its '\n'); called on the logging thread, under no lock of
 * log.c. Must be thread-safe and must not log. */
typedef void (*weir_log_sink_fn)(void *arg, const char *line, size_t len);

/** Who the process is, and where its lines go besides stderr. Owned by the installer. */
typedef struct weir_log_process {
    char id[64];           /* printed after the time on every line ("" = nothing) */
    weir_log_sink_fn sink; /* NULL = stderr only */
    void *sink_arg;
    weir_log_level_t level; /* threshold when WEIR_LOG_LEVEL is unset (log.level; 0 = debug) */
} weir_log_process_t;

/** Parses "debug", "info", "warn" or "error". @returns 0, or -1 for anything else. */
int weir_log_level_parse(const char *s, weir_log_level_t *out);

/** Installs @p p for every thread (NULL uninstalls). @p p is borrowed until it is uninstalled:
 * install it before other threads log, uninstall it only after every thread that may log was
 * joined (a line being written then still reads it). */
void weir_log_install(const weir_log_process_t *p);

/** Sets the calling thread's identity, printed on every line it logs afterwards:
 * `job=<first 8 hex digits of job_id> att=<attempt> task="<task_name> (<subtask+1>/<parallelism>)"`
 * (Flink's task name; a '"' or control character of the name is printed as '\''/'?'). */
void weir_log_set_task(const char *job_id, uint32_t attempt, const char *task_name,
                       uint32_t subtask, uint32_t parallelism);
/** Clears the calling thread's identity. */
void weir_log_clear_task(void);

void weir_log(weir_log_level_t level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define WEIR_DEBUG(comp, ...) weir_log(WEIR_LOG_DEBUG, comp, __VA_ARGS__)
#define WEIR_INFO(comp, ...) weir_log(WEIR_LOG_INFO, comp, __VA_ARGS__)
#define WEIR_WARN(comp, ...) weir_log(WEIR_LOG_WARN, comp, __VA_ARGS__)
#define WEIR_ERROR(comp, ...) weir_log(WEIR_LOG_ERROR, comp, __VA_ARGS__)

#endif
