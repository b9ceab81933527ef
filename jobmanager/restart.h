/* Restart strategies of the job manager as pure functions (no sockets, no clocks of their own):
 * the job manager asks weir_restart_on_failure() at each failure whether the job may restart and
 * after which delay. Keys: restart-strategy.type = none | fixed-delay | exponential-delay (unset:
 * fixed-delay with unlimited attempts and 1 s delay when checkpointing is on, none otherwise). */
#ifndef WEIR_JOBMANAGER_RESTART_H
#define WEIR_JOBMANAGER_RESTART_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"

typedef enum weir_restart_type {
    WEIR_RESTART_NONE = 0,
    WEIR_RESTART_FIXED_DELAY,
    WEIR_RESTART_EXPONENTIAL_DELAY,
} weir_restart_type_t;

typedef struct weir_restart_cfg {
    weir_restart_type_t type;
    int64_t max_attempts; /* restarts allowed (exponential: between two resets); -1 = unlimited */
    int64_t delay_ms;     /* fixed-delay */
    int64_t initial_backoff_ms;
    int64_t max_backoff_ms;
    double multiplier;
    int64_t reset_threshold_ms; /* exponential: no failure for this long resets the backoff */
} weir_restart_cfg_t;

typedef struct weir_restart_state {
    uint32_t restarts;       /* restarts of the job so far (all strategies, never reset) */
    int64_t attempts;        /* restarts counted against max_attempts */
    int64_t backoff_ms;      /* exponential: the next delay (0 = not started) */
    int64_t last_failure_ms; /* -1 = none */
} weir_restart_state_t;

const char *weir_restart_type_name(weir_restart_type_t t);

/** Reads the restart-strategy.* keys. @p checkpointing selects the default when the type is unset.
 * @returns 0 or WEIR_ECONFIG with a one-line message naming the key. */
int weir_restart_config_load(const weir_config_t *cfg, bool checkpointing, weir_restart_cfg_t *out,
                             char *errstr, size_t errlen);

void weir_restart_state_init(weir_restart_state_t *st);

/** A failure at wall time @p now_ms: decides whether the job restarts. On true, *delay_ms is the
 * delay before the restart and the state counts the restart; on false the job must fail. */
bool weir_restart_on_failure(const weir_restart_cfg_t *cfg, weir_restart_state_t *st,
                             int64_t now_ms, int64_t *delay_ms);

#endif
