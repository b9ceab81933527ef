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

/* sideout.c: the side-output parts of finalize, the JSON form and the determinism check */

/** Finalize's check of node @p nd: its side-output names (when not built by define()) and the
 * tag it reads of its input. @returns 0 or WEIR_EINVAL with a one-line message. */
int weir__graph_side_check(const weir_job_t *job, const weir_node_t *nd, char *errstr,
                           size_t errlen);
/** Chaining of the consumers of a node with side outputs (arena array, one per node): true when
 * node i's input declares side outputs and i is the only consumer of the output it reads (main
 * or a tag). finalize chains such a node when it reads FORWARD and no other consumer of the
 * input was chained before it (the first one by id wins; a chain stays a line). */
const bool *weir__graph_side_chainable(weir_job_t *job);
/** Adds "side_outputs" (when the node declares any) and "input_tag" (when not 0) to @p jn.
 * @returns 0, or -1 when jansson fails. */
int weir__graph_side_to_json(const weir_node_t *n, json_t *jn);
/** Parses "side_outputs" and "input_tag" of node object @p jn into @p n (@p what: the node's
 * error prefix). @returns 0 or WEIR_EINVAL with a one-line message. */
int weir__graph_side_from_json(weir_job_t *job, weir_node_t *n, const json_t *jn, const char *what,
                               char *errstr, size_t errlen);
/** The determinism check of side outputs: @p b (built) against @p s (submitted). @returns 0 or
 * a negative error with the reason (without the "define() is not deterministic: " prefix). */
int weir__graph_side_compare(const weir_node_t *b, const weir_node_t *s, char *errstr,
                             size_t errlen);

#endif
