/* The task manager's log ring: the last taskmanager.log.tail-size bytes of its log lines, for
 * LOG_REQUEST (GET /taskmanagers/{id}/log through the job manager). Installed into common/log.c
 * as the process's sink by the task manager.
 *
 * Threading: append and tail from any thread (one mutex). */
#ifndef WEIR_TASKMANAGER_LOGRING_H
#define WEIR_TASKMANAGER_LOGRING_H

#include <stddef.h>
#include <stdint.h>

typedef struct weir_tm_logring weir_tm_logring_t;

/** A ring of exactly @p cap bytes (allocated now; never grows). @p cap >= 1. */
weir_tm_logring_t *weir__tm_logring_new(size_t cap);
/** Appends @p len bytes (one or more whole lines); the oldest bytes are dropped beyond the
 * capacity. A weir_log_sink_fn (@p ring is the weir_tm_logring_t). */
void weir__tm_logring_append(void *ring, const char *line, size_t len);
/** The last at most @p max bytes, starting at a line boundary (a partly dropped first line is
 * left out): *@p out is malloc'd (NULL when empty). @returns the length. */
size_t weir__tm_logring_tail(weir_tm_logring_t *r, size_t max, uint8_t **out);
/** Bytes held now (<= the capacity). */
size_t weir__tm_logring_used(weir_tm_logring_t *r);
void weir__tm_logring_destroy(weir_tm_logring_t **r);

#endif
