/* Owns log formatting. Each line is written with one fprintf call on an unbuffered stderr, so
 * lines from different threads do not interleave within a line. No state. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static weir_log_level_t threshold(void) {
    const char *s = getenv("WEIR_LOG_LEVEL");
    if (!s)
        return WEIR_LOG_INFO;
    if (!strcmp(s, "debug"))
        return WEIR_LOG_DEBUG;
    if (!strcmp(s, "warn"))
        return WEIR_LOG_WARN;
    if (!strcmp(s, "error"))
        return WEIR_LOG_ERROR;
    return WEIR_LOG_INFO;
}

void weir_log(weir_log_level_t level, const char *component, const char *fmt, ...) {
    static const char *const names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    if (level < threshold())
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(stderr, "%s %s.%03ldZ %s: %s\n", names[level], when, ts.tv_nsec / 1000000L, component,
            msg);
}
