/* Keyed timers of one operator (Flink's timer service) on the operator's keyed-state backend.
 *
 * Timers are keyed state: they live in a column family of the backend (the declared map state
 * "weir.timers", WEIR_TIMERS_STATE of runtime/graph/graph.h, whose layout is this one, so
 * snapshots, savepoints, restore and rescale by key group carry them like any other state),
 * one RocksDB key per timer, ordered by (key group, domain, timestamp):
 *   OFFSET SIZE DESCRIPTION
 *   0      2    key group (uint16 big-endian), as every keyed state key
 *   2      1    domain: 0 = event time, 1 = processing time
 *   3      8    timestamp (int64 with the sign bit flipped, big-endian: byte order = time order)
 *   11     k    key bytes (the rest of the RocksDB key)
 * The value is empty. A timer is (key, domain, timestamp): registering it twice stores it once.
 *
 * In memory, a binary min-heap per domain (ordered by timestamp, then key bytes) holds every
 * timer of the subtask, with a hash index on (domain, timestamp, key) for dedup and delete:
 * "anything due?" is O(1), register / delete / pop are O(log n). weir_timers_open loads the heap
 * from the column family (after a restore it holds exactly the restored key groups).
 *
 * Consistency: every register / delete writes RocksDB at once (no write-back cache), so a
 * snapshot (which flushes the state cache and checkpoints RocksDB) holds exactly the timers
 * registered and not yet fired or deleted. A timer is removed (RocksDB and heap) when it is
 * popped, before its callback runs.
 * Threading: the subtask thread only (like its backend). */
#ifndef WEIR_STATE_TIMERS_H
#define WEIR_STATE_TIMERS_H

#include <stddef.h>
#include <stdint.h>

#include "state/state.h"

#define WEIR_TIMER_EVENT 0
#define WEIR_TIMER_PROC 1

typedef struct weir_timers weir_timers_t;

/** Opens the timers of declared state @p st of @p sb (kind map), loading every stored timer.
 * NULL + errstr. */
weir_timers_t *weir_timers_open(weir_state_backend_t *sb, uint32_t st, char *errstr, size_t errlen);
void weir_timers_free(weir_timers_t **tm);

/** Registers / deletes timer (@p key, @p domain, @p ts). Register of a present timer and delete
 * of an absent one do nothing. 0 or a negative weir error (WEIR_EINVAL: bad domain). */
int weir_timers_register(weir_timers_t *tm, int domain, const void *key, uint32_t len, int64_t ts);
int weir_timers_delete(weir_timers_t *tm, int domain, const void *key, uint32_t len, int64_t ts);

/** The earliest timestamp of @p domain (INT64_MAX when none). O(1). */
int64_t weir_timers_peek(const weir_timers_t *tm, int domain);

/** Removes the earliest timer of @p domain when its timestamp <= @p upto: 1 and its timestamp
 * and key (valid until the next weir_timers_pop or weir_timers_free: registering or deleting
 * timers meanwhile, e.g. in the timer's callback, keeps it), 0 when none is due, or a negative
 * weir error. */
int weir_timers_pop(weir_timers_t *tm, int domain, int64_t upto, int64_t *ts, const void **key,
                    uint32_t *len);

/** Number of timers of @p domain. */
size_t weir_timers_count(const weir_timers_t *tm, int domain);

#endif
