/* The task manager: registers its slots with the job manager, heartbeats, fetches and caches
 * plugin blobs, deploys and cancels subtasks, and owns the data plane. One context per process;
 * its loop runs on the thread that calls weir_taskmanager_run(). */
#ifndef WEIR_TASKMANAGER_TASKMANAGER_H
#define WEIR_TASKMANAGER_TASKMANAGER_H

#include <signal.h>
#include <stddef.h>

#include "common/config.h"

typedef struct weir_taskmanager weir_taskmanager_t;

/** Creates the task manager: resource id, working directory, data plane, control socket.
 * Takes ownership of @p cfg (also on failure). @returns NULL + errstr on error. */
weir_taskmanager_t *weir_taskmanager_new(weir_config_t *cfg, char *errstr, size_t errlen);

/** Runs the control loop until *@p stop becomes non-zero (SIGTERM/SIGINT), then cancels and
 * joins every task. @returns 0. */
int weir_taskmanager_run(weir_taskmanager_t *tm, volatile sig_atomic_t *stop);

/** Frees everything; removes the working directory when it is the default one (only the plugin
 * cache otherwise). Accepts NULL; clears the pointer. */
void weir_taskmanager_destroy(weir_taskmanager_t **tm);

/** The resource id ("tm-<8 hex>" unless configured). */
const char *weir_taskmanager_id(const weir_taskmanager_t *tm);

#endif
