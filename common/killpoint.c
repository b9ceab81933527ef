/* Owns the debug.kill-at fault-injection hook (see killpoint.h). The counter is the only
 * mutable state, atomic, in a struct owned by the process context. */
#include "killpoint.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "log.h"

int weir_killpoint_init(weir_killpoint_t *kp, const char *spec) {
    memset(kp, 0, sizeof *kp);
    atomic_init(&kp->remaining, 0);
    if (!spec || !*spec)
        return 0;
    const char *colon = strchr(spec, ':');
    size_t len = colon ? (size_t)(colon - spec) : strlen(spec);
    long n = 1;
    if (colon) {
        char *end;
        n = strtol(colon + 1, &end, 10);
        if (*end || end == colon + 1 || n < 1)
            return WEIR_ECONFIG;
    }
    if (len == 0 || len >= sizeof kp->point)
        return WEIR_ECONFIG;
    memcpy(kp->point, spec, len);
    kp->point[len] = '\0';
    atomic_store(&kp->remaining, n);
    kp->armed = true;
    return 0;
}

void weir_killpoint_hit(weir_killpoint_t *kp, const char *point) {
    if (!kp || !kp->armed || strcmp(kp->point, point) != 0)
        return;
    if (atomic_fetch_sub(&kp->remaining, 1) == 1) {
        WEIR_WARN("killpoint", "debug.kill-at: killing process %d at %s", (int)getpid(), point);
        kill(getpid(), SIGKILL);
        pause();
    }
}
