/* Owns the pieces of the Prometheus text exposition format 0.0.4 that the job manager's and the
 * task manager's GET /metrics share: label escaping, HELP/TYPE lines, series names with labels,
 * THE table of per-subtask families (TASK_FAMILIES: name, type, help and how the value comes
 * from weir_task_metrics_t), the memory-budget families, the process figures (/proc) and the
 * bearer-token check of both HTTP servers.
 *
 * Invariants: every family name starts with weir_; counters end in _total; times are seconds and
 * sizes bytes (Prometheus' base units), the watermark seconds since the epoch; a family is written
 * whole (HELP, TYPE, then all its samples) so the output passes `promtool check metrics`; a
 * sample that has no value (no watermark, not a Kafka source, no state-cache read yet) is left
 * out rather than written as a sentinel.
 *
 * Threading: stateless; any thread (each call writes only to the FILE it is given). */
#include "common/prom.h"

#include <dirent.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"

void weir_prom_label(FILE *f, const char *s) {
    for (; s && *s; s++) {
        if (*s == '\\')
            fputs("\\\\", f);
        else if (*s == '"')
            fputs("\\\"", f);
        else if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

void weir_prom_family(FILE *f, const char *name, const char *type, const char *help) {
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void weir_prom_series(FILE *f, const char *name, ...) {
    va_list ap;
    va_start(ap, name);
    fputs(name, f);
    const char *sep = "{";
    for (const char *k; (k = va_arg(ap, const char *));) {
        const char *v = va_arg(ap, const char *);
        fprintf(f, "%s%s=\"", sep, k);
        weir_prom_label(f, v);
        fputc('"', f);
        sep = ",";
    }
    va_end(ap);
    fputs(*sep == ',' ? "} " : " ", f);
}

/* ---- per subtask --------------------------------------------------------------------------- */

void weir_prom_task_labels(FILE *f, const weir_prom_task_t *t) {
    fputs("job_id=\"", f);
    weir_prom_label(f, t->job_id);
    fputs("\",job_name=\"", f);
    weir_prom_label(f, t->job_name);
    fputs("\",vertex=\"", f);
    weir_prom_label(f, t->vertex);
    fprintf(f, "\",vertex_id=\"%" PRIu32 "\",subtask=\"%" PRIu32 "\",tm_id=\"", t->vertex_id,
            t->subtask);
    weir_prom_label(f, t->tm_id);
    fputc('"', f);
}

/* How a family's value comes from weir_task_metrics_t (fields a, b). */
typedef enum {
    V_U64,           /* a */
    V_SECONDS,       /* a (nanoseconds) in seconds */
    V_RATIO,         /* a / b, 0 when b is 0 */
    V_HIT_RATIO,     /* a / (a + b); absent when both are 0 */
    V_WATERMARK,     /* a (ms since the epoch, int64) in seconds; absent for INT64_MIN/MAX */
    V_WATERMARK_LAG, /* now - a in seconds; absent as V_WATERMARK */
    V_NONNEG_I64,    /* a (int64); absent below 0 */
} value_kind_t;

typedef struct task_family {
    const char *name, *type, *help;
    value_kind_t kind;
    size_t a, b;
} task_family_t;

#define F(field) offsetof(weir_task_metrics_t, field)
#define COUNTER(name, field, help)                                                                 \
    { name, "counter", help, V_U64, F(field), 0 }
#define GAUGE(name, field, help)                                                                   \
    { name, "gauge", help, V_U64, F(field), 0 }
#define SECONDS(name, field, help)                                                                 \
    { name, "counter", help, V_SECONDS, F(field), 0 }
/* One family per field of weir_task_metrics_t, and the ones computed from several. */
static const task_family_t TASK_FAMILIES[] = {
    COUNTER("weir_task_records_in_total", records_in, "Records read by the subtask."),
    COUNTER("weir_task_records_out_total", records_out, "Records emitted by the subtask's chain."),
    COUNTER("weir_task_buffers_in_remote_total", buffers_in_remote,
            "Buffers received over ZeroMQ."),
    COUNTER("weir_task_bytes_in_remote_total", bytes_in_remote,
            "Bytes of buffers received over ZeroMQ."),
    COUNTER("weir_task_buffers_in_local_total", buffers_in_local,
            "Buffers received from a subtask in the same task manager."),
    COUNTER("weir_task_bytes_in_local_total", bytes_in_local,
            "Bytes of buffers received from a subtask in the same task manager."),
    COUNTER("weir_task_buffers_out_remote_total", buffers_out_remote, "Buffers sent over ZeroMQ."),
    COUNTER("weir_task_bytes_out_remote_total", bytes_out_remote,
            "Bytes of buffers sent over ZeroMQ."),
    COUNTER("weir_task_buffers_out_local_total", buffers_out_local,
            "Buffers passed to a subtask in the same task manager."),
    COUNTER("weir_task_bytes_out_local_total", bytes_out_local,
            "Bytes of buffers passed to a subtask in the same task manager."),
    SECONDS("weir_task_busy_seconds_total", busy_ns,
            "Time processing records, timers and barriers."),
    SECONDS("weir_task_idle_seconds_total", idle_ns, "Time waiting for input."),
    SECONDS("weir_task_backpressured_seconds_total", backpressured_ns,
            "Time waiting for output credit (backpressure)."),
    GAUGE("weir_task_input_buffers_queued", in_queued, "Input buffers queued now."),
    GAUGE("weir_task_input_buffers_capacity", in_capacity,
          "Input buffers possible (credits of all input channels)."),
    GAUGE("weir_task_output_buffers_queued", out_queued,
          "Output buffers filled and not yet sent or consumed."),
    GAUGE("weir_task_output_buffers_capacity", out_capacity, "Output buffers possible."),
    {"weir_task_input_buffer_usage", "gauge", "Input buffers queued / possible (0..1).", V_RATIO,
     F(in_queued), F(in_capacity)},
    {"weir_task_output_buffer_usage", "gauge", "Output buffers queued / possible (0..1).", V_RATIO,
     F(out_queued), F(out_capacity)},
    {"weir_task_watermark_seconds", "gauge",
     "Current output watermark (event time, seconds since the epoch); absent before the first "
     "and after end of input.",
     V_WATERMARK, F(watermark), 0},
    {"weir_task_watermark_lag_seconds", "gauge", "Wall clock minus the current output watermark.",
     V_WATERMARK_LAG, F(watermark), 0},
    COUNTER("weir_task_late_records_dropped_total", late_records_dropped,
            "Records dropped as late by windows and interval joins."),
    COUNTER("weir_task_state_cache_hits_total", state_cache_hits, "Write-back state cache hits."),
    COUNTER("weir_task_state_cache_misses_total", state_cache_misses,
            "Write-back state cache misses (read from RocksDB)."),
    {"weir_task_state_cache_hit_ratio", "gauge",
     "Hits / (hits + misses) of the write-back state cache; absent before the first read.",
     V_HIT_RATIO, F(state_cache_hits), F(state_cache_misses)},
    {"weir_task_kafka_consumer_lag_records", "gauge",
     "Kafka source: records behind the high watermarks, summed over its partitions.", V_NONNEG_I64,
     F(kafka_lag), 0},
    COUNTER("weir_task_kafka_transactions_committed_total", kafka_tx_committed,
            "Kafka exactly-once sink: transactions committed."),
    COUNTER("weir_task_kafka_transactions_aborted_total", kafka_tx_aborted,
            "Kafka exactly-once sink: transactions aborted."),
};
#undef SECONDS
#undef GAUGE
#undef COUNTER
#undef F

static uint64_t u64_at(const weir_task_metrics_t *m, size_t off) {
    return *(const uint64_t *)((const char *)m + off);
}

static int64_t i64_at(const weir_task_metrics_t *m, size_t off) {
    return *(const int64_t *)((const char *)m + off);
}

static void task_sample(FILE *f, const task_family_t *tf, const weir_prom_task_t *t,
                        int64_t now_ms) {
    const weir_task_metrics_t *m = t->m;
    uint64_t a = 0, b = 0;
    int64_t i = 0;
    switch (tf->kind) {
    case V_HIT_RATIO:
        if (u64_at(m, tf->a) + u64_at(m, tf->b) == 0)
            return;
        break;
    case V_WATERMARK:
    case V_WATERMARK_LAG:
        i = i64_at(m, tf->a);
        if (i == INT64_MIN || i == INT64_MAX)
            return;
        break;
    case V_NONNEG_I64:
        i = i64_at(m, tf->a);
        if (i < 0)
            return;
        break;
    default:
        break;
    }
    fprintf(f, "%s{", tf->name);
    weir_prom_task_labels(f, t);
    fputs("} ", f);
    switch (tf->kind) {
    case V_U64:
        fprintf(f, "%" PRIu64 "\n", u64_at(m, tf->a));
        break;
    case V_SECONDS:
        fprintf(f, "%.9f\n", (double)u64_at(m, tf->a) / 1e9);
        break;
    case V_RATIO:
    case V_HIT_RATIO:
        a = u64_at(m, tf->a);
        b = u64_at(m, tf->b) + (tf->kind == V_HIT_RATIO ? a : 0);
        fprintf(f, "%.6f\n", b ? (double)a / (double)b : 0.0);
        break;
    case V_WATERMARK:
        fprintf(f, "%.3f\n", (double)i / 1e3);
        break;
    case V_WATERMARK_LAG:
        fprintf(f, "%.3f\n", (double)(now_ms - i) / 1e3);
        break;
    case V_NONNEG_I64:
        fprintf(f, "%" PRId64 "\n", i);
        break;
    }
}

void weir_prom_task_families(FILE *f, const weir_prom_task_t *tasks, size_t n, int64_t now_ms) {
    for (size_t k = 0; k < sizeof TASK_FAMILIES / sizeof TASK_FAMILIES[0]; k++) {
        const task_family_t *tf = &TASK_FAMILIES[k];
        weir_prom_family(f, tf->name, tf->type, tf->help);
        for (size_t j = 0; j < n; j++)
            task_sample(f, tf, &tasks[j], now_ms);
    }
}

/* ---- memory budget ------------------------------------------------------------------------- */

void weir_prom_memory_families(FILE *f, const weir_prom_memory_t *tms, size_t n) {
    static const struct {
        const char *pool;
        size_t total, used;
    } POOLS[] = {
        {"process", offsetof(weir_prom_memory_t, process), 0},
        {"network", offsetof(weir_prom_memory_t, network_total),
         offsetof(weir_prom_memory_t, network_used)},
        {"managed", offsetof(weir_prom_memory_t, managed_total),
         offsetof(weir_prom_memory_t, managed_used)},
        {"state_cache", offsetof(weir_prom_memory_t, state_cache_total),
         offsetof(weir_prom_memory_t, state_cache_used)},
    };
    for (int used = 0; used < 2; used++) {
        const char *name =
            used ? "weir_taskmanager_memory_used_bytes" : "weir_taskmanager_memory_budget_bytes";
        weir_prom_family(f, name, "gauge",
                         used ? "Memory in use in a pool of the task manager's budget."
                              : "A pool of the task manager's memory budget (process: "
                                "taskmanager.memory.process.size).");
        for (size_t i = 0; i < n; i++)
            for (size_t p = (size_t)used; p < sizeof POOLS / sizeof POOLS[0]; p++) {
                weir_prom_series(f, name, "tm_id", tms[i].tm_id, "pool", POOLS[p].pool, NULL);
                fprintf(f, "%" PRIu64 "\n",
                        *(const uint64_t *)((const char *)&tms[i] +
                                            (used ? POOLS[p].used : POOLS[p].total)));
            }
    }
}

/* ---- the process --------------------------------------------------------------------------- */

void weir_prom_process_read(weir_prom_process_t *out) {
    memset(out, 0, sizeof *out);
    long page = sysconf(_SC_PAGESIZE);
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        unsigned long long size = 0, resident = 0;
        if (fscanf(f, "%llu %llu", &size, &resident) == 2 && page > 0) {
            out->vsize_bytes = size * (uint64_t)page;
            out->rss_bytes = resident * (uint64_t)page;
        }
        fclose(f);
    }
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) == 0)
        out->cpu_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    f = fopen("/proc/self/status", "r");
    if (f) {
        char line[256];
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, "Threads:", 8))
                out->threads = strtoull(line + 8, NULL, 10);
        fclose(f);
    }
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)))
            if (e->d_name[0] != '.')
                out->open_fds++;
        closedir(d);
        if (out->open_fds)
            out->open_fds--; /* the directory's own descriptor */
    }
}

void weir_prom_process_families(FILE *f, const char *prefix, const char *key, const char *value,
                                const weir_prom_process_t *p) {
    const struct {
        const char *suffix, *type, *help;
        uint64_t v;
        double scale; /* 0: an integer */
    } rows[] = {
        {"cpu_seconds_total", "counter", "CPU time (user + system) of the process.", p->cpu_ns,
         1e-9},
        {"resident_memory_bytes", "gauge", "Resident set size of the process.", p->rss_bytes, 0},
        {"virtual_memory_bytes", "gauge", "Virtual memory size of the process.", p->vsize_bytes, 0},
        {"threads", "gauge", "Threads of the process.", p->threads, 0},
        {"open_fds", "gauge", "Open file descriptors of the process.", p->open_fds, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char name[128];
        weir_fmt(name, sizeof name, "%s%s", prefix, rows[i].suffix);
        weir_prom_family(f, name, rows[i].type, rows[i].help);
        weir_prom_series(f, name, key, value, NULL);
        if (rows[i].scale)
            fprintf(f, "%.9f\n", (double)rows[i].v * rows[i].scale);
        else
            fprintf(f, "%" PRIu64 "\n", rows[i].v);
    }
}

/* ---- the bearer token ---------------------------------------------------------------------- */

int weir_prom_bearer_check(const char *h, const char token_sha256[65]) {
    if (!h || strncasecmp(h, "Bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t'))
        return -1;
    h += 7;
    while (*h == ' ' || *h == '\t')
        h++;
    size_t n = strlen(h);
    while (n > 0 && (h[n - 1] == ' ' || h[n - 1] == '\t'))
        n--;
    char sha[65];
    weir_sha256_hex(h, n, sha);
    return CRYPTO_memcmp(sha, token_sha256, 64) == 0 ? 1 : 0;
}
