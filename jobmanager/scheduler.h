/* Slot scheduling of the job manager as pure functions over plain structs (no sockets, no locks),
 * so it can be unit tested. Slot sharing: a job needs max(vertex parallelism) slots; slot i hosts
 * subtask i of every vertex whose parallelism is > i. Slots spread over task managers: one slot at
 * a time from the task manager with the most free slots left (ties: lowest index, which callers
 * keep in registration order). */
#ifndef WEIR_JOBMANAGER_SCHEDULER_H
#define WEIR_JOBMANAGER_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>

/** What the scheduler needs to know about one task manager. */
typedef struct weir_sched_tm {
    uint32_t slots_total;
    uint32_t slots_free;
} weir_sched_tm_t;

/** Slots a job needs: the largest parallelism of its vertices (0 when n == 0). */
uint32_t weir_sched_slots_needed(const uint32_t *parallelism, size_t n);

/** Sum of free slots over @p n task managers. */
uint64_t weir_sched_free_slots(const weir_sched_tm_t *tms, size_t n);

/**
 * Chooses @p needed slots: out_tm_index[i] = index (into @p tms) of the task manager hosting
 * slot i of the job. Does not change @p tms.
 * @returns 0, WEIR_EINVAL when needed == 0, or WEIR_ENOSPACE when fewer than @p needed slots are
 *          free (then @p out_tm_index is untouched).
 */
int weir_sched_assign(const weir_sched_tm_t *tms, size_t n, uint32_t needed,
                      uint32_t *out_tm_index);

#endif
