/* The restore plan: how the state in a checkpoint or savepoint (its _metadata) maps onto a new job
 * graph, which may be another version of the job (operators added, removed, re-chained) at other
 * parallelisms. Rules in savepoint/README.md ("The plan"):
 *  - old operators are matched to new graph nodes by uid (an old operator without uid by node id,
 *    when the old and new graphs have the same shape);
 *  - per uid a status: RESTORED, NEW (a stateful new operator: starts empty), DROPPED (state of
 *    an old uid with no operator in the new job: refused unless allow_non_restored) or
 *    INCOMPATIBLE (operator kind or keyed-state kind changed: always refused); a max parallelism
 *    change is always refused;
 *  - per new subtask: the operator-state bundle (one element per operator of its NEW chain, see
 *    contract section 3) and the keyed restore document (key-group ranges of the old subtasks that
 *    overlap the new subtask's, weir_keygroup_range).
 * Used by the job manager (POST /jobs with "savepointPath", and its own restores) and by
 * `weir validate` (the report).
 *
 * A plan is immutable once built: every function on it is thread-safe. It owns copies of what it
 * needs (the old metadata and both graphs may be freed after the build). */
#ifndef WEIR_SAVEPOINT_PLAN_H
#define WEIR_SAVEPOINT_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "runtime/graph/graph.h"
#include "savepoint/metadata.h"

typedef enum {
    WEIR_RESTORE_RESTORED,
    WEIR_RESTORE_NEW,
    WEIR_RESTORE_DROPPED,
    WEIR_RESTORE_INCOMPATIBLE
} weir_restore_status_t;

typedef struct weir_restore_plan weir_restore_plan_t;

/**
 * Plans the restore of @p old (read from @p base, the absolute directory holding its _metadata:
 * weir_savepoint_read's base) into @p new_graph (finalized). @p old_graph: the finalized graph
 * of the job that wrote @p old, needed only when @p old lists no operators (version 1); ignored
 * otherwise. @p claim goes into the keyed restore documents (true only when a job restores its
 * own checkpoint). @p allow_non_restored: drop the state of old uids the new job does not have.
 * @returns
 *  - 0: *plan is ready;
 *  - WEIR_EINVAL: refused, with one line naming every offending uid (incompatible operators,
 *    max parallelism, dropped state); *plan is STILL SET (for weir_restore_plan_report, which
 *    shows why) and must be freed; weir_restore_plan_subtask refuses it. Also WEIR_EINVAL with
 *    *plan NULL for bad arguments (a graph not finalized, a version 1 _metadata without
 *    @p old_graph);
 *  - WEIR_ECORRUPT: @p old's tasks do not match its operators (or @p old_graph); *plan NULL;
 *  - WEIR_ENOMEM; *plan NULL.
 */
int weir_restore_plan_build(const weir_ckpt_meta_t *old, const weir_job_t *old_graph,
                            const weir_job_t *new_graph, const char *base, bool claim,
                            bool allow_non_restored, weir_restore_plan_t **plan, char *errstr,
                            size_t errlen);

/**
 * What new subtask (@p vertex, @p subtask) restores: *op_bundle and *op_len the DEPLOY field
 * restore_op_state (msgpack: an array with one element per operator of the new chain, nil or
 * [old_parallelism, [[old_subtask, state], ...]]), *keyed_json the DEPLOY field
 * restore_keyed_handle (the keyed restore document). Both malloc'd; NULL / 0 = nothing to
 * restore (every element nil / no keyed source).
 * @returns 0, WEIR_EINVAL (a refused plan, or no such subtask in the new graph) or WEIR_ENOMEM.
 */
int weir_restore_plan_subtask(const weir_restore_plan_t *plan, uint32_t vertex, uint32_t subtask,
                              uint8_t **op_bundle, size_t *op_len, char **keyed_json);

/** The status of @p uid in the plan. @returns 0 or WEIR_ENOTFOUND (a stateless uid, or one that
 * neither job has). */
int weir_restore_plan_status(const weir_restore_plan_t *plan, const char *uid,
                             weir_restore_status_t *status);

/** Writes the human-readable plan (the `weir validate` text; format in savepoint/README.md). */
void weir_restore_plan_report(const weir_restore_plan_t *plan, FILE *out);

/** Frees the plan and sets *plan to NULL. Accepts NULL and *plan == NULL. */
void weir_restore_plan_free(weir_restore_plan_t **plan);

#endif
