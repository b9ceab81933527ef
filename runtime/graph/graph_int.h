/* Internal interface of the graph model (graph.c) for the other files of runtime/graph/: the
 * define-time API (define.c) and the JSON form (graph_json.c) build nodes through it. Not for use
 * outside runtime/graph/. Threading as in graph.h: a graph is owned by one thread at a time. */
#ifndef WEIR_RUNTIME_GRAPH_INT_H
#define WEIR_RUNTIME_GRAPH_INT_H

#include <stdarg.h>
#include <stddef.h>

#include "runtime/graph/graph.h"

/** Zeroed memory of @p size bytes from the job's arena (max_align_t aligned; aborts on OOM). */
void *weir__graph_alloc(weir_job_t *job, size_t size);
/** A copy of @p s in the job's arena; NULL for NULL. */
char *weir__graph_strdup(weir_job_t *job, const char *s);

/** Records the first define-time error (one line) and marks the job failed; later calls are
 * ignored. weir_job_error() is this with varargs. */
void weir__graph_verror(weir_job_t *job, const char *fmt, va_list ap);
void weir__graph_error(weir_job_t *job, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** Records "<what> is not valid UTF-8: use UTF-8 text" unless @p s is UTF-8 (names, uids and
 * paths end up in JSON). */
void weir__graph_check_text(weir_job_t *job, const char *what, const char *s);

/** Appends a node of @p kind named @p name (the kind name when NULL or empty): no input,
 * FORWARD, everything else zero. The pointer is valid until the next node is added. */
weir_node_t *weir__graph_add_node(weir_job_t *job, weir_op_kind_t kind, const char *name);
/** Declares state @p name on node @p n; @p api names the caller in errors (empty or duplicate
 * names). @returns the state's index, or -1 with the error recorded on the job. */
weir_state_id weir__graph_add_state(weir_job_t *job, weir_node_t *n, const char *api,
                                    const char *name, weir_state_kind_t kind, weir_reduce_fn fn,
                                    void *udata);

#endif
