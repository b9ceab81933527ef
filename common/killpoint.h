/* Fault injection for tests: the `debug.kill-at` key ("POINT" or "POINT:N") makes a process
 * SIGKILL itself the Nth time (default 1st) code reaches the named point. Used by the kill-point
 * tests to crash a process at an exact step of the checkpoint protocol. Points (see
 * docs/checkpointing.md): barrier-before-ack, notify-before-commit, commit-after-rename
 * (task manager); jm-after-metadata, jm-after-savepoint (job manager). Unarmed (no key) it costs
 * one branch. Thread-safe: the counter is atomic. */
#ifndef WEIR_COMMON_KILLPOINT_H
#define WEIR_COMMON_KILLPOINT_H

#include <stdatomic.h>
#include <stdbool.h>

typedef struct weir_killpoint {
    bool armed;
    char point[64];
    atomic_long remaining;
} weir_killpoint_t;

/** Arms @p kp from a spec ("POINT" or "POINT:N"); NULL or "" leaves it unarmed.
 * @returns 0 or WEIR_ECONFIG for a malformed spec. */
int weir_killpoint_init(weir_killpoint_t *kp, const char *spec);
/** If @p kp is armed for @p point and this is the Nth hit: logs and SIGKILLs the process. */
void weir_killpoint_hit(weir_killpoint_t *kp, const char *point);

#endif
