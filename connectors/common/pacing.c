/* The rate limiter of the sources (connectors/common/pacing.h; the index cursor is all inline
 * there).
 *
 * Owns: nothing beyond the caller's weir_rate_t.
 * Invariants: a subtask's share is total rate / parallelism; record k is due at
 * t0 + k * 1e9 / share ns (rounded up), t0 being the time of the first weir__rate_permits call.
 * Permits never exceed the budget, never sleep, and with nothing due report the next due time.
 * Threading: a weir_rate_t is used by one subtask thread only; the functions are reentrant. */
#include "connectors/common/pacing.h"

#include <string.h>

void weir__rate_init(weir_rate_t *r, double total_rate, uint32_t parallelism) {
    memset(r, 0, sizeof(*r));
    if (total_rate > 0 && parallelism > 0)
        r->per_sec = total_rate / (double)parallelism;
}

int64_t weir__rate_due_ns(const weir_rate_t *r, uint64_t k) {
    if (r->per_sec <= 0)
        return r->t0_ns;
    double d = (double)k * 1e9 / r->per_sec;
    int64_t ns = (int64_t)d;
    if ((double)ns < d) /* ceil without libm */
        ns++;
    return r->t0_ns + ns;
}

uint32_t weir__rate_permits(weir_rate_t *r, int64_t now_ns, uint32_t budget, int64_t *wake_ns) {
    if (r->per_sec <= 0)
        return budget;
    if (!r->started) {
        r->started = true;
        r->t0_ns = now_ns;
    }
    double elapsed = (double)(now_ns - r->t0_ns);
    if (elapsed < 0)
        elapsed = 0;
    uint64_t allowed = (uint64_t)(elapsed * r->per_sec / 1e9) + 1; /* floor: elapsed >= 0 */
    if (allowed <= r->emitted) {
        int64_t due = weir__rate_due_ns(r, r->emitted);
        *wake_ns = due > now_ns ? due : now_ns + 1000;
        return 0;
    }
    uint64_t k = allowed - r->emitted;
    return k < budget ? (uint32_t)k : budget;
}
