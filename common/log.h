/* Logging: "LEVEL time component: message" lines on stderr. The threshold comes from the
 * WEIR_LOG_LEVEL environment variable (debug, info, warn, error; default info), read per call:
 * logging is never on a hot path. */
#ifndef WEIR_COMMON_LOG_H
#define WEIR_COMMON_LOG_H

typedef enum weir_log_level {
    WEIR_LOG_DEBUG = 0,
    WEIR_LOG_INFO = 1,
    WEIR_LOG_WARN = 2,
    WEIR_LOG_ERROR = 3,
} weir_log_level_t;

void weir_log(weir_log_level_t level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define WEIR_DEBUG(comp, ...) weir_log(WEIR_LOG_DEBUG, comp, __VA_ARGS__)
#define WEIR_INFO(comp, ...) weir_log(WEIR_LOG_INFO, comp, __VA_ARGS__)
#define WEIR_WARN(comp, ...) weir_log(WEIR_LOG_WARN, comp, __VA_ARGS__)
#define WEIR_ERROR(comp, ...) weir_log(WEIR_LOG_ERROR, comp, __VA_ARGS__)

#endif
