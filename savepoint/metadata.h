/* The _metadata file of a checkpoint or savepoint (docs/checkpointing.md, savepoint/README.md):
 * what every subtask acknowledged (operator state, keyed-state handle, size) and, from version 2
 * on, the operators of the graph that took it (uid, kind, chain position, parallelism, keyed
 * states) so that a different job (another version, another parallelism) can map the state by
 * operator uid. Written by the job manager when a checkpoint completes (jobmanager/ckpt_store.c
 * stores it), read by the job manager (restore), `weir validate` and the restore planner
 * (savepoint/plan.h).
 *
 * Layout (text; version 2 is written, versions 1 and 2 are read):
 *
 *   OFFSET     SIZE  DESCRIPTION
 *   0          B     JSON object, compact, members in this order:
 *                      "version": 2 (1: a file of weir before savepoints)
 *                      "job": job id (32 hex), "checkpoint": id n (uint)
 *                      "kind": "checkpoint" | "savepoint"                        (v2 only)
 *                      "trigger_time", "complete_time": wall ms, "final": bool
 *                      "max_parallelism": m (key groups; 0 = unknown)            (v2 only)
 *                      "operators": [{"uid": str|null, "name", "kind": op kind name,
 *                        "vertex", "index" (position in its chain), "parallelism",
 *                        "keyed": bool, "states": [{"name", "kind": state kind name,
 *                        "ttl_ms" (only when > 0)}]}]
 *                        (every node of the graph, in node order)                (v2 only)
 *                      "tasks": [{"vertex", "subtask", "op_state": base64|null,
 *                        "keyed": keyed-state handle object|null, "state_size"}]
 *   B          1     '\n'
 *   B+1        7     "sha256 "
 *   B+8        64    lowercase hex sha256 of bytes [0, B+1)
 *   B+72       1     '\n' (optional when reading)
 *
 * A task's op_state is the subtask's msgpack array with one element per operator of its chain
 * (runtime/task/checkpoint.c), nil for operators without state. A stop-with-savepoint is written
 * with "kind": "savepoint" (it reads back as WEIR_CK_SAVEPOINT).
 *
 * Plain data and pure functions: no files (ckpt_store.h writes and reads them, read.h reads a
 * savepoint), no state, thread-safe. */
#ifndef WEIR_SAVEPOINT_METADATA_H
#define WEIR_SAVEPOINT_METADATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/proto.h"
#include "runtime/graph/graph.h"

/** The current _metadata version (written); versions 1 and 2 are read. */
#define WEIR_CKPT_META_VERSION 2

typedef struct weir_ckpt_task {
    uint32_t vertex;
    uint32_t subtask;
    uint8_t *op_state; /* NULL = none */
    size_t op_state_len;
    char *keyed; /* keyed handle JSON text, NULL = stateless */
    uint64_t state_size;
} weir_ckpt_task_t;

/** One operator (graph node) of the job that took the checkpoint. Strings owned (malloc'd);
 * states[i].reduce is always NULL. */
typedef struct weir_ckpt_op {
    char *uid; /* NULL when the node had none */
    char *name;
    weir_op_kind_t kind;
    uint32_t vertex, index, parallelism;
    bool keyed;
    weir_state_decl_t *states;
    uint32_t n_states;
} weir_ckpt_op_t;

typedef struct weir_ckpt_meta {
    char job[33];
    uint64_t id;
    weir_ck_kind_t kind;
    int64_t trigger_ms;
    int64_t complete_ms;
    bool final;
    uint32_t max_parallelism; /* 0 = unknown (version 1) */
    weir_ckpt_op_t *ops;      /* owned, node order; NULL / 0 for version 1 */
    uint32_t n_ops;
    weir_ckpt_task_t *tasks; /* owned */
    uint32_t n_tasks;
} weir_ckpt_meta_t;

void weir_ckpt_meta_clear(weir_ckpt_meta_t *m);
/** Fills m->ops (replacing any) and m->max_parallelism from the finalized graph @p job: one
 * operator per node, in node order. @returns 0, WEIR_EINVAL (not finalized) or WEIR_ENOMEM. */
int weir_ckpt_meta_set_graph(weir_ckpt_meta_t *m, const weir_job_t *job);
/** The file content (version 2 JSON + "sha256 <hex>\n"), malloc'd. @returns 0, WEIR_ENOMEM or
 * WEIR_EINVAL (a keyed handle that is not JSON). */
int weir_ckpt_meta_encode(const weir_ckpt_meta_t *m, char **out, size_t *out_len);
/** Parses and verifies a file content (version 1 or 2). @returns 0, WEIR_ENOMEM or
 * WEIR_ECORRUPT with the reason in errstr. */
int weir_ckpt_meta_decode(const char *data, size_t len, weir_ckpt_meta_t *m, char *errstr,
                          size_t errlen);

/* ---- base64 (for op_state) ------------------------------------------------------------------ */

/** malloc'd NUL-terminated base64 of @p data. NULL on OOM. */
char *weir_ckpt_b64_encode(const uint8_t *data, size_t len);
/** Decodes base64 into a malloc'd buffer. @returns 0, WEIR_ECORRUPT or WEIR_ENOMEM. */
int weir_ckpt_b64_decode(const char *text, uint8_t **out, size_t *out_len);

#endif
