/* A deployed subtask: a thread that runs one vertex's operator chain for one subtask index,
 * with an input gate (channels from every upstream subtask), a mailbox, the output writer
 * (partitioners + output channels) and, for keyed vertices, a state backend.
 *
 * The task manager creates tasks from DEPLOY messages and reads their state and metrics; the
 * task thread owns everything else. State changes are reported through the callback (called on
 * the task thread; it must not block). */
#ifndef WEIR_RUNTIME_TASK_H
#define WEIR_RUNTIME_TASK_H

#include <stddef.h>
#include <stdint.h>

#include "common/proto.h"
#include "dataplane.h"
#include "graph.h"

typedef struct weir_task weir_task_t;

typedef void (*weir_task_state_cb)(void *arg, weir_task_t *task, weir_task_state_t state,
                                   const char *message);

typedef struct weir_task_spec {
    char job_id[33];
    uint32_t attempt;
    weir_job_t *graph; /* built with define() and the submitted parallelism; the task owns it */
    void *plugin;      /* opaque, kept alive by the task manager while the task runs */
    uint32_t vertex;
    uint32_t subtask;
    char ***placement; /* placement[v][s] = data address hosting subtask s of vertex v;
                          copied by weir_task_start */
    weir_dataplane_t *dataplane;
    const char *work_dir;         /* task manager working directory; state goes below it */
    size_t buffer_size;           /* taskmanager.memory.segment-size */
    int64_t buffer_timeout_ns;    /* execution.buffer-timeout */
    uint32_t credits_per_channel; /* taskmanager.network.buffers-per-channel */
    size_t state_cache_bytes;     /* state.backend.cache-size per subtask */
    weir_task_state_cb on_state;
    void *cb_arg;
} weir_task_spec_t;

/** Starts the subtask thread. @returns NULL + errstr when the chain cannot be built. */
weir_task_t *weir_task_start(weir_task_spec_t *spec, char *errstr, size_t errlen);
/** Asks the task to stop (mailbox message); returns at once. */
void weir_task_cancel(weir_task_t *task);
/** Joins the thread and frees the task (removing its state directory). Clears the pointer. */
void weir_task_destroy(weir_task_t **task);

const char *weir_task_job_id(const weir_task_t *task);
uint32_t weir_task_attempt(const weir_task_t *task);
uint32_t weir_task_vertex(const weir_task_t *task);
uint32_t weir_task_subtask(const weir_task_t *task);
weir_task_state_t weir_task_state(const weir_task_t *task);
/** A consistent-enough snapshot of the counters (relaxed atomics). Any thread. */
void weir_task_get_metrics(const weir_task_t *task, weir_task_metrics_t *out);

#endif
