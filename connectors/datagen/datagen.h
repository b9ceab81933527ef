/* The datagen and generator sources (connectors/datagen/): their constructor for the registry
 * and the pure value helpers, which never call the runtime API so unit tests drive them directly
 * (tests/unit/test_connectors.c). The index cursor and rate limiter they share with the file
 * source are in connectors/common/pacing.h.
 *
 * Threading: pure functions; an operator instance runs on its subtask thread only. */
#ifndef WEIR_CONNECTORS_DATAGEN_H
#define WEIR_CONNECTORS_DATAGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "connectors/common/pacing.h"
#include "runtime/task/operator.h"
#include "weir/weir.h"

/** SplitMix64 finalizer: a bijective 64-bit mix. */
uint64_t weir__splitmix64(uint64_t x);

/** Value of record @p index: SEQUENCE -> start + index; RANDOM -> splitmix64(seed ^ index) %
 * random_max (random_max 0 = the full 64-bit range). */
uint64_t weir__datagen_value(const weir_datagen_opts_t *opts, uint64_t index);

/** Writes @p v as 8 bytes big-endian into @p out. */
void weir__be64(uint64_t v, uint8_t out[8]);

/** The record indices a datagen or generator subtask emits, as splits (connectors/README.md,
 * "Indices" and "Rescaling"). A job's first start makes one split per subtask: split s of p
 * holds the indices s, s+p, s+2p, ... below count (count 0 = unbounded); the stride p stays the
 * split's forever. A restore at another parallelism p' gives new subtask k every split whose
 * id is k mod p', so a subtask may run several splits (it emits the smallest pending index
 * first) or none. Finished splits (next >= count) stay in the set, finished. */
typedef struct weir_gen_split {
    uint32_t id; /* the subtask that owned it at the first start */
    weir_index_cursor_t c;
    int64_t max_ts; /* event time: restored max record timestamp (INT64_MIN: none) */
} weir_gen_split_t;

typedef struct weir_gen_splits {
    weir_gen_split_t *v; /* ascending id */
    size_t n, cap;
    uint64_t stride; /* the parallelism of the first start (every split's step) */
    uint64_t count;
    size_t last;      /* index in v of the split of the last weir__gen_splits_take */
    int64_t wm_floor; /* event time: restored watermark floor (INT64_MIN: none) */
    bool wm_idle;     /* event time: every old subtask it took splits from was idle */
    bool wm_seen;     /* restore: some event-time state contributed splits */
} weir_gen_splits_t;

/** The splits of a fresh start: split @p subtask of @p parallelism. */
void weir__gen_splits_init(weir_gen_splits_t *g, uint32_t subtask, uint32_t parallelism,
                           uint64_t count);
void weir__gen_splits_free(weir_gen_splits_t *g);
/** True when some split has an index left. */
bool weir__gen_splits_more(const weir_gen_splits_t *g);
/** The smallest pending index of all splits, and advances its split. Call only when
 * weir__gen_splits_more(). */
uint64_t weir__gen_splits_take(weir_gen_splits_t *g);
/** Packs the position (one msgpack object): `[k]` when the subtask runs exactly its own split
 * of a first start at its parallelism (k records emitted: the next index is subtask + k*p, the
 * layout of earlier versions), else `[stride, [[split id, next index], ...]]`. */
void weir__gen_splits_pack(msgpack_packer *pk, const weir_gen_splits_t *g, uint32_t subtask,
                           uint32_t parallelism);
/** With a watermark strategy the snapshot is `{"pos": <position above>, "wm": the subtask's
 * watermark, "idle": its status, "max": [[split id, max timestamp], ...]}` (a map, so a state
 * without it is the layout above). @p max_ts: one per split of @p g, in its order. */
void weir__gen_splits_pack_wm(msgpack_packer *pk, const weir_gen_splits_t *g, uint32_t subtask,
                              uint32_t parallelism, int64_t wm, bool idle, const int64_t *max_ts);
/** Takes this subtask's share of restored positions @p r (weir__gen_splits_pack's objects, or
 * the map of weir__gen_splits_pack_wm: then each split's max_ts, wm_floor (the minimum "wm"
 * over the states it took splits from) and wm_idle (all of them idle) are restored too):
 * every split whose id is @p subtask mod @p parallelism. @p g is replaced (possibly by no
 * split at all). @returns 0, or WEIR_ECORRUPT with one line in @p errstr. */
int weir__gen_splits_restore(weir_gen_splits_t *g, const weir_op_restore_t *r, uint32_t subtask,
                             uint32_t parallelism, uint64_t count, char *errstr, size_t errlen);

/** Datagen and generator sources: sets op->vt/op->impl (called by weir_connector_create).
 * @returns 0 or WEIR_ENOMEM (+ errstr). */
int weir__datagen_create(weir_operator_t *op, char *errstr, size_t errlen);

#endif
