/* Owns the restart strategies (restart.h): configuration parsing and the pure decision function.
 * Invariants: a fixed-delay strategy allows at most max_attempts restarts over the job's life; an
 * exponential-delay strategy's delay starts at initial-backoff, grows by backoff-multiplier up to
 * max-backoff, and returns to initial-backoff (with its attempt counter) after
 * reset-backoff-threshold without failure. Threading: none (the caller serialises). */
#include "jobmanager/restart.h"

#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"

const char *weir_restart_type_name(weir_restart_type_t t) {
    switch (t) {
    case WEIR_RESTART_NONE:
        return "none";
    case WEIR_RESTART_FIXED_DELAY:
        return "fixed-delay";
    case WEIR_RESTART_EXPONENTIAL_DELAY:
        return "exponential-delay";
    }
    return "?";
}

int weir_restart_config_load(const weir_config_t *cfg, bool checkpointing, weir_restart_cfg_t *out,
                             char *errstr, size_t errlen) {
    memset(out, 0, sizeof *out);
    out->max_attempts = -1;
    out->delay_ms = weir_config_get_ms(cfg, "restart-strategy.fixed-delay.delay");
    out->initial_backoff_ms =
        weir_config_get_ms(cfg, "restart-strategy.exponential-delay.initial-backoff");
    out->max_backoff_ms = weir_config_get_ms(cfg, "restart-strategy.exponential-delay.max-backoff");
    out->reset_threshold_ms =
        weir_config_get_ms(cfg, "restart-strategy.exponential-delay.reset-backoff-threshold");
    const char *mult =
        weir_config_get_str(cfg, "restart-strategy.exponential-delay.backoff-multiplier");
    char *end = NULL;
    out->multiplier = mult ? strtod(mult, &end) : 2.0;
    if (mult && (end == mult || *end || !(out->multiplier >= 1.0) || out->multiplier > 1e6)) {
        weir_fmt(errstr, errlen,
                 "bad value '%s' for restart-strategy.exponential-delay.backoff-multiplier (a "
                 "number >= 1.0, e.g. 2.0)",
                 mult);
        return WEIR_ECONFIG;
    }
    const char *type = weir_config_get_str(cfg, "restart-strategy.type");
    if (!type || !*type) {
        if (checkpointing) {
            out->type = WEIR_RESTART_FIXED_DELAY;
            out->max_attempts = -1;
            out->delay_ms = 1000;
        } else {
            out->type = WEIR_RESTART_NONE;
        }
        return 0;
    }
    if (!strcmp(type, "none") || !strcmp(type, "off") || !strcmp(type, "disable")) {
        out->type = WEIR_RESTART_NONE;
    } else if (!strcmp(type, "fixed-delay") || !strcmp(type, "fixeddelay")) {
        out->type = WEIR_RESTART_FIXED_DELAY;
        out->max_attempts = weir_config_get_int(cfg, "restart-strategy.fixed-delay.attempts");
    } else if (!strcmp(type, "exponential-delay") || !strcmp(type, "exponentialdelay")) {
        out->type = WEIR_RESTART_EXPONENTIAL_DELAY;
        out->max_attempts = weir_config_get_int(
            cfg, "restart-strategy.exponential-delay.attempts-before-reset-backoff");
        if (out->initial_backoff_ms > out->max_backoff_ms) {
            weir_fmt(errstr, errlen,
                     "restart-strategy.exponential-delay.initial-backoff (%lld ms) is larger than "
                     "max-backoff (%lld ms): lower it or raise max-backoff",
                     (long long)out->initial_backoff_ms, (long long)out->max_backoff_ms);
            return WEIR_ECONFIG;
        }
    } else {
        weir_fmt(errstr, errlen,
                 "bad value '%s' for restart-strategy.type (none, fixed-delay or "
                 "exponential-delay)",
                 type);
        return WEIR_ECONFIG;
    }
    return 0;
}

void weir_restart_state_init(weir_restart_state_t *st) {
    memset(st, 0, sizeof *st);
    st->last_failure_ms = -1;
}

bool weir_restart_on_failure(const weir_restart_cfg_t *cfg, weir_restart_state_t *st,
                             int64_t now_ms, int64_t *delay_ms) {
    int64_t previous = st->last_failure_ms;
    st->last_failure_ms = now_ms;
    *delay_ms = 0;
    switch (cfg->type) {
    case WEIR_RESTART_NONE:
        return false;
    case WEIR_RESTART_FIXED_DELAY:
        if (cfg->max_attempts >= 0 && st->attempts >= cfg->max_attempts)
            return false;
        *delay_ms = cfg->delay_ms;
        break;
    case WEIR_RESTART_EXPONENTIAL_DELAY:
        if (previous >= 0 && now_ms - previous >= cfg->reset_threshold_ms) {
            st->backoff_ms = 0;
            st->attempts = 0;
        }
        if (cfg->max_attempts >= 0 && st->attempts >= cfg->max_attempts)
            return false;
        if (st->backoff_ms <= 0) {
            st->backoff_ms = cfg->initial_backoff_ms;
        }
        *delay_ms = st->backoff_ms < cfg->max_backoff_ms ? st->backoff_ms : cfg->max_backoff_ms;
        double next = (double)*delay_ms * cfg->multiplier;
        st->backoff_ms = next >= (double)cfg->max_backoff_ms ? cfg->max_backoff_ms : (int64_t)next;
        if (st->backoff_ms <= 0)
            st->backoff_ms = 1; /* initial-backoff 0: keep growing from 1 ms */
        break;
    }
    st->attempts++;
    st->restarts++;
    return true;
}
