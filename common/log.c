/* Owns log formatting and the log identities (common/log.h). Each line is formatted into one
 * buffer and written with one fwrite on an unbuffered stderr, so lines from different threads do
 * not interleave within a line; then handed to the installed process sink, if any.
 *
 * State (the documented exception to "no global mutable state"): the installed process identity
 * (an atomic pointer to the installer's struct, acquire/release) and each thread's task identity
 * (thread-local, written only by its own thread). Threading: any thread. */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOG_MSG_MAX 2048
#define LOG_IDENT_MAX 256

static _Atomic(const weir_log_process_t *) g_process;
static _Thread_local char tl_ident[LOG_IDENT_MAX]; /* "" or "job=... att=... task=\"...\"" */

void weir_log_install(const weir_log_process_t *p) {
    atomic_store_explicit(&g_process, p, memory_order_release);
}

void weir_log_set_task(const char *job_id, uint32_t attempt, const char *task_name,
                       uint32_t subtask, uint32_t parallelism) {
    char name[160];
    size_t n = 0;
    for (const char *s = task_name ? task_name : "?"; *s && n + 1 < sizeof name; s++) {
        unsigned char c = (unsigned char)*s;
        name[n++] = c == '"' ? '\'' : c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    name[n] = '\0';
    snprintf(tl_ident, sizeof tl_ident, "job=%.8s att=%u task=\"%s (%u/%u)\"",
             job_id ? job_id : "?", attempt, name, subtask + 1, parallelism);
}

void weir_log_clear_task(void) {
    tl_ident[0] = '\0';
}

int weir_log_level_parse(const char *s, weir_log_level_t *out) {
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; s && i < 4; i++)
        if (!strcmp(s, names[i])) {
            *out = (weir_log_level_t)i;
            return 0;
        }
    return -1;
}

static weir_log_level_t threshold(const weir_log_process_t *p) {
    weir_log_level_t l;
    const char *s = getenv("WEIR_LOG_LEVEL");
    if (s)
        return weir_log_level_parse(s, &l) == 0 ? l : WEIR_LOG_INFO;
    return p ? p->level : WEIR_LOG_INFO;
}

void weir_log(weir_log_level_t level, const char *component, const char *fmt, ...) {
    static const char *const names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    const weir_log_process_t *p = atomic_load_explicit(&g_process, memory_order_acquire);
    if (level < threshold(p))
        return;
    char msg[LOG_MSG_MAX];
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
    const char *pid = p && p->id[0] ? p->id : "";
    char line[LOG_MSG_MAX + LOG_IDENT_MAX + 160];
    int n = snprintf(line, sizeof line, "%s %s.%03ldZ %s%s%s%s%s: %s\n", names[level], when,
                     ts.tv_nsec / 1000000L, pid, *pid ? " " : "", tl_ident, tl_ident[0] ? " " : "",
                     component, msg);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    if ((size_t)n >= sizeof line)
        line[len - 1] = '\n'; /* truncated: still one whole line */
    fwrite(line, 1, len, stderr);
    if (p && p->sink)
        p->sink(p->sink_arg, line, len);
}
