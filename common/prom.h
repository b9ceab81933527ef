/* The Prometheus text exposition format 0.0.4 shared by the job manager's GET /metrics
 * (jobmanager/prom.c) and the task manager's (taskmanager/prom.c): label escaping, HELP/TYPE
 * lines, one table of per-subtask families (every field of weir_task_metrics_t, common/proto.h)
 * that both render with the same names, types, help and units, the memory-budget families, the
 * process figures read from /proc, and the bearer-token check of both HTTP servers.
 *
 * Stateless; every function is safe to call from any thread (each writes only to its FILE). */
#ifndef WEIR_COMMON_PROM_H
#define WEIR_COMMON_PROM_H

#include <stdint.h>
#include <stdio.h>

#include "common/proto.h"

/** Writes @p s as a label value: backslash, double quote and newline escaped. NULL writes
 * nothing. */
void weir_prom_label(FILE *f, const char *s);

/** Writes the "# HELP" and "# TYPE" lines of family @p name. */
void weir_prom_family(FILE *f, const char *name, const char *type, const char *help);

/** Writes "name " or "name{k1=\"v1\",k2=\"v2\"} " (values escaped) for the NULL-terminated list
 * of key, value pairs that follows @p name; the caller prints the value and the newline. */
void weir_prom_series(FILE *f, const char *name, ...) __attribute__((sentinel));

/** One subtask's series: its labels and its last metrics. */
typedef struct weir_prom_task {
    const char *job_id, *job_name;
    const char *vertex; /* the vertex's name */
    uint32_t vertex_id, subtask;
    const char *tm_id;
    const weir_task_metrics_t *m;
} weir_prom_task_t;

/** Writes the labels of @p t without braces: job_id, job_name, vertex, vertex_id, subtask,
 * tm_id (a caller may append its own after a comma). */
void weir_prom_task_labels(FILE *f, const weir_prom_task_t *t);

/** Writes every per-subtask family (HELP, TYPE, then a sample of each of the @p n tasks): the
 * counters and gauges of weir_task_metrics_t (times in seconds), the buffer usage and state-cache
 * hit ratios, the watermark and its lag behind @p now_ms in seconds (absent for INT64_MIN: none,
 * and INT64_MAX: input ended) and the Kafka consumer lag (absent below 0: not a Kafka source). */
void weir_prom_task_families(FILE *f, const weir_prom_task_t *tasks, size_t n, int64_t now_ms);

/** One task manager's memory budget (taskmanager.memory.process.size and its pools). */
typedef struct weir_prom_memory {
    const char *tm_id;
    uint64_t process, network_total, network_used, managed_total, managed_used, state_cache_total,
        state_cache_used;
} weir_prom_memory_t;

/** Writes weir_taskmanager_memory_budget_bytes{tm_id,pool} (process, network, managed,
 * state_cache) and weir_taskmanager_memory_used_bytes{tm_id,pool} (the last three) of @p n task
 * managers. */
void weir_prom_memory_families(FILE *f, const weir_prom_memory_t *tms, size_t n);

/** Figures of the calling process; one it cannot read is 0. */
typedef struct weir_prom_process {
    uint64_t rss_bytes, vsize_bytes; /* /proc/self/statm */
    uint64_t cpu_ns;                 /* CLOCK_PROCESS_CPUTIME_ID: user + system */
    uint64_t threads;                /* /proc/self/status Threads: */
    uint64_t open_fds;               /* entries of /proc/self/fd */
} weir_prom_process_t;

void weir_prom_process_read(weir_prom_process_t *out);

/** Writes <prefix>cpu_seconds_total, <prefix>resident_memory_bytes,
 * <prefix>virtual_memory_bytes, <prefix>threads and <prefix>open_fds of @p p, each with the one
 * label @p key = @p value (none when @p key is NULL). */
void weir_prom_process_families(FILE *f, const char *prefix, const char *key, const char *value,
                                const weir_prom_process_t *p);

/** Checks an Authorization header against a configured token given as the hex SHA-256 of the
 * token: "Bearer <token>" (scheme case-insensitive, blanks around the token ignored). The sent
 * token is hashed and the two digests compared with CRYPTO_memcmp, so the time taken depends
 * neither on how much of it matched nor on the configured token's length.
 * @returns 1 the token matches, 0 a bearer token that does not match, -1 no bearer token (no
 * header, or another scheme). */
int weir_prom_bearer_check(const char *authorization, const char token_sha256[65]);

#endif
