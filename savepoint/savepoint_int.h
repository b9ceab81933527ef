/* Internal to savepoint/: the checked view of a _metadata's tasks against an operator list
 * (view.c), shared by the reader (read.c) and the planner (plan.c). Not installed anywhere else:
 * no other module includes it. */
#ifndef WEIR_SAVEPOINT_INT_H
#define WEIR_SAVEPOINT_INT_H

#include <jansson.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "savepoint/metadata.h"

/** The old job's chains and the tasks of @p m indexed by (vertex, subtask). Everything that
 * weir__sp_view_build accepted is consistent: vertices 0..n_vertices-1 each hold a chain of
 * chain_len[v] >= 1 operators at indices 0..chain_len[v]-1 with one parallelism; uids are unique;
 * a keyed operator heads its chain; every task names an existing (vertex, subtask) once; an
 * op_state is exactly one msgpack array with one element per operator of the task's chain; a
 * keyed handle is a JSON object and its chain's head is keyed. */
typedef struct weir__sp_view {
    const weir_ckpt_meta_t *m;
    const weir_ckpt_op_t *ops;
    uint32_t n_ops;
    uint32_t n_vertices;
    uint32_t *chain_len;        /* [n_vertices] */
    uint32_t *parallelism;      /* [n_vertices] */
    uint32_t *voff;             /* [n_vertices + 1]: chain of v = by_pos[voff[v] .. voff[v + 1]) */
    uint32_t *by_pos;           /* op index by chain position */
    uint32_t *order;            /* task indices of m, sorted by (vertex, subtask) */
    msgpack_unpacked *op_state; /* [m->n_tasks]: the decoded array, type NIL when none */
    json_t **handle;            /* [m->n_tasks]: the parsed keyed handle, NULL when none */
} weir__sp_view_t;

/** Builds the view of @p m's tasks over @p ops (m->ops, or those of the old graph for a version 1
 * file). @p max_parallelism bounds the parallelisms (0: WEIR_MAX_MAX_PARALLELISM).
 * @returns 0, WEIR_ECORRUPT ("operator 3 'name': ..." / "task 1-2: ...") or WEIR_ENOMEM. */
int weir__sp_view_build(weir__sp_view_t *v, const weir_ckpt_meta_t *m, const weir_ckpt_op_t *ops,
                        uint32_t n_ops, uint32_t max_parallelism, char *errstr, size_t errlen);
void weir__sp_view_free(weir__sp_view_t *v);
/** The positions in v->order of the tasks of @p vertex: [*first, *first + *count). */
void weir__sp_view_tasks(const weir__sp_view_t *v, uint32_t vertex, uint32_t *first,
                         uint32_t *count);
/** The state of the operator at chain position @p index in task @p task (an index of m->tasks);
 * NULL when the task has no op_state or the element is nil. */
const msgpack_object *weir__sp_view_op_state(const weir__sp_view_t *v, uint32_t task,
                                             uint32_t index);

/** True when [p, p + len) is exactly one msgpack object whose containers never claim more
 * elements than bytes remain: msgpack-c then allocates O(len) to unpack it. */
bool weir__sp_msgpack_sane(const uint8_t *p, size_t len);

#endif
