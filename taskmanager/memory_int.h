/* The task manager's memory budget (taskmanager.memory.*; docs/architecture.md "Memory"):
 * private between taskmanager.c (creates it at start, reserves network buffers at each deploy,
 * hands the shared state memory to every task, frees it at exit) and memory.c (the split, the
 * network reservations and the report of memory.h).
 * Threading: init / free on the loop thread; reserve / release on the loop thread; the report
 * (network_used is atomic, the state memory has its own lock) on any thread. */
#ifndef WEIR_TASKMANAGER_MEMORY_INT_H
#define WEIR_TASKMANAGER_MEMORY_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/proto.h"
#include "runtime/graph/graph.h"
#include "state/memory.h"
#include "taskmanager/memory.h"

typedef struct weir_tm_memory {
    uint64_t process; /* taskmanager.memory.process.size; 0 = no budget */
    uint64_t network_total, managed_total, state_cache_total, headroom;
    _Atomic uint64_t network_used; /* network buffers reserved by deployed subtasks */
    weir_state_memory_t *state;    /* shared by every state backend; NULL without a budget */
} weir_tm_memory_t;

/** Splits taskmanager.memory.process.size (README/docs: network = fraction clamped to min..max,
 * managed and state cache = their fractions, headroom = the rest, at least 64 MiB) and creates
 * the shared state memory. With process size 0 nothing is created and nothing is enforced.
 * 0, or WEIR_ECONFIG with one line naming the key to change. */
int weir__tm_memory_init(weir_tm_memory_t *m, const weir_config_t *cfg, char *errstr,
                         size_t errlen);
/** After every task was joined. Accepts a zeroed struct. */
void weir__tm_memory_free(weir_tm_memory_t *m);

/** Reserves the network buffers of subtask @p vertex of graph @p g: each input channel's
 * @p credits buffers plus one buffer being filled per output channel, @p segment bytes each.
 * Beyond the budget: WEIR_ENOMEM and one line in errstr naming the keys to raise (nothing
 * reserved). *@p reserved gets the bytes to release later. */
int weir__tm_memory_network_reserve(weir_tm_memory_t *m, const weir_job_t *g, uint32_t vertex,
                                    uint32_t credits, size_t segment, uint64_t *reserved,
                                    char *errstr, size_t errlen);
void weir__tm_memory_network_release(weir_tm_memory_t *m, uint64_t reserved);

/** Fills the HEARTBEAT mem_* fields of @p msg. */
void weir__tm_memory_heartbeat(weir_tm_memory_t *m, weir_msg_t *msg);

/** The task manager's budget (taskmanager.c). */
weir_tm_memory_t *weir__tm_memory(weir_taskmanager_t *tm);

#endif
