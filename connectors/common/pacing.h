/* Pacing shared by the sources (datagen, generator, file): which record indices a subtask takes
 * (the index cursor) and when it may emit them (the rate limiter). Pure helpers: they never call
 * the runtime API, so unit tests drive them directly (tests/unit/test_connectors.c). Rules in
 * connectors/common/README.md.
 *
 * Threading: every object here is used by one subtask thread only. */
#ifndef WEIR_CONNECTORS_PACING_H
#define WEIR_CONNECTORS_PACING_H

#include <stdbool.h>
#include <stdint.h>

/* ------------------------------------------------------------------------------------------ */
/* Index cursor (datagen and generator sources)                                               */
/* ------------------------------------------------------------------------------------------ */

/** The record indices of one subtask: subtask s of p takes s, s+p, s+2p, ... while below
 * count (count 0 = unbounded). The position of the source is `next`. */
typedef struct weir_index_cursor {
    uint64_t next;
    uint64_t step;
    uint64_t count;
} weir_index_cursor_t;

static inline void weir__cursor_init(weir_index_cursor_t *c, uint32_t subtask, uint32_t parallelism,
                                     uint64_t count) {
    c->next = subtask;
    c->step = parallelism ? parallelism : 1;
    c->count = count;
}

static inline bool weir__cursor_more(const weir_index_cursor_t *c) {
    return c->count == 0 || c->next < c->count;
}

/** Returns the next index and advances. Call only when weir__cursor_more(). */
static inline uint64_t weir__cursor_take(weir_index_cursor_t *c) {
    uint64_t i = c->next;
    c->next += c->step;
    return i;
}

/** Source position of a cursor: how many records this subtask took so far (k; the next index
 * is subtask + k * step). */
static inline uint64_t weir__cursor_position(const weir_index_cursor_t *c, uint32_t subtask) {
    return (c->next - subtask) / c->step;
}

/** Moves a freshly initialised cursor to position @p k (restore). */
static inline void weir__cursor_seek(weir_index_cursor_t *c, uint32_t subtask, uint64_t k) {
    c->next = subtask + k * c->step;
}

/* ------------------------------------------------------------------------------------------ */
/* Rate limiting (all sources)                                                                */
/* ------------------------------------------------------------------------------------------ */

/** Schedule of one subtask: record k (0-based, counted by `emitted`) is due at
 * t0 + k * 1e9 / per_sec nanoseconds. per_sec 0 = unlimited. t0 is taken at the first call. */
typedef struct weir_rate {
    double per_sec; /* this subtask's share: total rate / parallelism */
    int64_t t0_ns;
    bool started;
    uint64_t emitted;
} weir_rate_t;

/** @p total_rate records/s over all subtasks (0 = unlimited), shared by @p parallelism. */
void weir__rate_init(weir_rate_t *r, double total_rate, uint32_t parallelism);

/** How many records may be emitted now (at most @p budget). When that is 0, *wake_ns is set to
 * the time the next record is due. Call weir__rate_note() with what was actually emitted. */
uint32_t weir__rate_permits(weir_rate_t *r, int64_t now_ns, uint32_t budget, int64_t *wake_ns);

/** Records that @p n records were emitted. */
static inline void weir__rate_note(weir_rate_t *r, uint64_t n) {
    r->emitted += n;
}

/** The monotonic time at which record number @p k of this schedule is due. */
int64_t weir__rate_due_ns(const weir_rate_t *r, uint64_t k);

#endif
