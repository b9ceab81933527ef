/* Owns the slot-assignment policy of the job manager (see scheduler.h): pure functions over
 * caller-owned arrays. Invariant: an assignment never takes more slots from a task manager than it
 * has free. Threading: none (callable from any thread; the job manager calls it under its mutex).
 */
#include "jobmanager/scheduler.h"

#include <stdlib.h>

#include "common/err.h"

uint32_t weir_sched_slots_needed(const uint32_t *parallelism, size_t n) {
    uint32_t max = 0;
    for (size_t i = 0; i < n; i++)
        if (parallelism[i] > max)
            max = parallelism[i];
    return max;
}

uint64_t weir_sched_free_slots(const weir_sched_tm_t *tms, size_t n) {
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += tms[i].slots_free;
    return sum;
}

int weir_sched_assign(const weir_sched_tm_t *tms, size_t n, uint32_t needed,
                      uint32_t *out_tm_index) {
    if (needed == 0)
        return WEIR_EINVAL;
    if (weir_sched_free_slots(tms, n) < needed)
        return WEIR_ENOSPACE;
    /* Taken so far per task manager; free left = slots_free - taken[i]. n is small (task
     * managers of one cluster), so an O(needed * n) scan is fine. */
    uint32_t taken_small[64];
    uint32_t *taken = taken_small;
    if (n > 64) {
        taken = calloc(n, sizeof *taken);
        if (!taken)
            return WEIR_ENOMEM;
    } else {
        for (size_t i = 0; i < n; i++)
            taken[i] = 0;
    }
    for (uint32_t slot = 0; slot < needed; slot++) {
        size_t best = n;
        uint32_t best_free = 0;
        for (size_t i = 0; i < n; i++) {
            uint32_t left = tms[i].slots_free - taken[i];
            if (left > best_free) {
                best = i;
                best_free = left;
            }
        }
        /* Cannot happen: the free total was checked above. */
        if (best == n)
            break;
        taken[best]++;
        out_tm_index[slot] = (uint32_t)best;
    }
    if (taken != taken_small)
        free(taken);
    return 0;
}
