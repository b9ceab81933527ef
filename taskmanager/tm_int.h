/* Internal interface between the task manager's loop (taskmanager.c) and its Prometheus endpoint
 * (prom.c): a snapshot of the live tasks (the process figures: weir_prom_process_read,
 * common/prom.h).
 *
 * Threading: weir__tm_collect runs on the endpoint's HTTP thread; it copies what it needs under
 * the task manager's task-list mutex (the loop thread changes the list only under it). */
#ifndef WEIR_TASKMANAGER_TM_INT_H
#define WEIR_TASKMANAGER_TM_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/proto.h"
#include "runtime/task/task.h"
#include "taskmanager/taskmanager.h"

/** One chained operator of a subtask (per-operator counters). */
typedef struct weir_tm_op_view {
    char name[128];
    char uid[128];
    uint64_t records_in, records_out;
} weir_tm_op_view_t;

/** One live subtask, copied. */
typedef struct weir_tm_task_view {
    char job_id[33];
    char job_name[128];
    char vertex_name[256];
    uint32_t attempt, vertex, subtask, parallelism;
    weir_task_state_t state;
    weir_task_metrics_t m;
    weir_tm_op_view_t *ops; /* malloc'd, n_ops entries */
    size_t n_ops;
} weir_tm_task_view_t;

typedef struct weir_tm_view {
    char tm_id[128];
    uint32_t slots, slots_used;
    weir_tm_task_view_t *tasks; /* malloc'd */
    size_t n_tasks;
} weir_tm_view_t;

/** Copies the live tasks (withheld ones too: they still run here) of @p tm. Any thread. */
void weir__tm_collect(weir_taskmanager_t *tm, weir_tm_view_t *out);
void weir__tm_view_free(weir_tm_view_t *v);

/** The chained operators' counters of @p task into *@p ops (malloc'd) / *@p n (prom.c; the one
 * place that reads H-metrics' per-operator counters). */
void weir__tm_task_ops(const weir_task_t *task, weir_tm_op_view_t **ops, size_t *n);

/** Checks the task manager's own keys that a typo could break (metrics.reporter.prom.port,
 * taskmanager.log.tail-size). @returns 0, or WEIR_ECONFIG with one line naming the key. */
int weir__tm_check_config(const weir_config_t *cfg, char *errstr, size_t errlen);

/** The Prometheus endpoint (prom.c). */
typedef struct weir_tm_prom weir_tm_prom_t;

/** Checks metrics.reporter.prom.port: "N", "A-B" (A <= B) or "0". @returns 0, or WEIR_ECONFIG
 * with one line naming the key. */
int weir__tm_prom_ports(const weir_config_t *cfg, int *lo, int *hi, char *errstr, size_t errlen);

/** Starts /metrics per metrics.reporter.prom.* (NULL + *@p port 0 when disabled or no port of the
 * range could be bound: logged as a warning, the task manager runs on). A configuration error
 * (bad port text, unreadable token file) @returns NULL with errstr set and *@p port = -1. */
weir_tm_prom_t *weir__tm_prom_start(weir_taskmanager_t *tm, const weir_config_t *cfg, int *port,
                                    char *errstr, size_t errlen);
/** Stops the server (joins its thread). Accepts NULL; clears the pointer. */
void weir__tm_prom_stop(weir_tm_prom_t **p);

#endif
