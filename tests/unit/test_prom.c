/* Unit tests of common/prom.c, the Prometheus exposition both daemons' /metrics share: label
 * escaping, series names, one rendered subtask against literal expected lines (every family of
 * weir_task_metrics_t), the families left out for a subtask without a watermark (INT64_MIN), after
 * end of input (INT64_MAX), without Kafka (-1) and before the first state-cache read, the memory
 * pools, the process figures (against the kernel's VmRSS, VmSize and Threads in /proc/self/status,
 * and one more open fd seen as one more), the bearer-token check, and `promtool check metrics`
 * (Debian's prometheus package, an oracle weir did not write) on all of it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/prom.h"
#include "common/util.h"
#include "testutil.h"

/* Runs @p stmt writing to a memory stream f; @p buf gets the text (malloc'd). */
#define CAPTURE(buf, stmt)                                                                         \
    do {                                                                                           \
        size_t len_ = 0;                                                                           \
        FILE *f = open_memstream(&(buf), &len_);                                                   \
        assert_non_null(f);                                                                        \
        stmt;                                                                                      \
        assert_int_equal(fclose(f), 0);                                                            \
    } while (0)

static void test_label_escape(void **state) {
    (void)state;
    char *buf = NULL;
    CAPTURE(buf, weir_prom_label(f, "a\"b\\c\nd"); weir_prom_label(f, NULL));
    assert_string_equal(buf, "a\\\"b\\\\c\\nd");
    free(buf);
}

static void test_series(void **state) {
    (void)state;
    char *buf = NULL;
    CAPTURE(buf, weir_prom_family(f, "weir_x", "gauge", "An x.");
            weir_prom_series(f, "weir_x", NULL); fputs("1\n", f);
            weir_prom_series(f, "weir_x", "tm_id", "t\"1", "pool", "p", NULL); fputs("2\n", f));
    assert_string_equal(buf, "# HELP weir_x An x.\n"
                             "# TYPE weir_x gauge\n"
                             "weir_x 1\n"
                             "weir_x{tm_id=\"t\\\"1\",pool=\"p\"} 2\n");
    free(buf);
}

/* Subtask A: every field set; B: no watermark, no Kafka, no state-cache read; C: input ended. */
static const weir_task_metrics_t M_A = {.records_in = 10,
                                        .records_out = 21,
                                        .buffers_in_remote = 1,
                                        .bytes_in_remote = 2,
                                        .buffers_out_remote = 3,
                                        .bytes_out_remote = 4,
                                        .buffers_out_local = 5,
                                        .backpressured_ns = 10000000000ull,
                                        .buffers_in_local = 6,
                                        .bytes_in_local = 7,
                                        .bytes_out_local = 8,
                                        .busy_ns = 1500000000ull,
                                        .idle_ns = 250000000ull,
                                        .in_queued = 1,
                                        .in_capacity = 4,
                                        .out_queued = 0,
                                        .out_capacity = 0,
                                        .watermark = 1700000000123,
                                        .late_records_dropped = 9,
                                        .state_cache_hits = 3,
                                        .state_cache_misses = 1,
                                        .kafka_lag = 42,
                                        .kafka_tx_committed = 11,
                                        .kafka_tx_aborted = 12};
#define NOW_MS 1700000005623 /* 5.5 s after A's watermark */

#define LA                                                                                         \
    "{job_id=\"j1\",job_name=\"a\\\"b\\\\c\\nd\",vertex=\"src -> "                                 \
    "m\",vertex_id=\"0\",subtask=\"1\",tm_id=\"tm-a\"} "

static const char EXPECTED_A[] =
    "# HELP weir_task_records_in_total Records read by the subtask.\n"
    "# TYPE weir_task_records_in_total counter\n"
    "weir_task_records_in_total" LA "10\n"
    "# HELP weir_task_records_out_total Records emitted by the subtask's chain.\n"
    "# TYPE weir_task_records_out_total counter\n"
    "weir_task_records_out_total" LA "21\n"
    "# HELP weir_task_buffers_in_remote_total Buffers received over ZeroMQ.\n"
    "# TYPE weir_task_buffers_in_remote_total counter\n"
    "weir_task_buffers_in_remote_total" LA "1\n"
    "# HELP weir_task_bytes_in_remote_total Bytes of buffers received over ZeroMQ.\n"
    "# TYPE weir_task_bytes_in_remote_total counter\n"
    "weir_task_bytes_in_remote_total" LA "2\n"
    "# HELP weir_task_buffers_in_local_total Buffers received from a subtask in the same task "
    "manager.\n"
    "# TYPE weir_task_buffers_in_local_total counter\n"
    "weir_task_buffers_in_local_total" LA "6\n"
    "# HELP weir_task_bytes_in_local_total Bytes of buffers received from a subtask in the same "
    "task manager.\n"
    "# TYPE weir_task_bytes_in_local_total counter\n"
    "weir_task_bytes_in_local_total" LA "7\n"
    "# HELP weir_task_buffers_out_remote_total Buffers sent over ZeroMQ.\n"
    "# TYPE weir_task_buffers_out_remote_total counter\n"
    "weir_task_buffers_out_remote_total" LA "3\n"
    "# HELP weir_task_bytes_out_remote_total Bytes of buffers sent over ZeroMQ.\n"
    "# TYPE weir_task_bytes_out_remote_total counter\n"
    "weir_task_bytes_out_remote_total" LA "4\n"
    "# HELP weir_task_buffers_out_local_total Buffers passed to a subtask in the same task "
    "manager.\n"
    "# TYPE weir_task_buffers_out_local_total counter\n"
    "weir_task_buffers_out_local_total" LA "5\n"
    "# HELP weir_task_bytes_out_local_total Bytes of buffers passed to a subtask in the same task "
    "manager.\n"
    "# TYPE weir_task_bytes_out_local_total counter\n"
    "weir_task_bytes_out_local_total" LA "8\n"
    "# HELP weir_task_busy_seconds_total Time processing records, timers and barriers.\n"
    "# TYPE weir_task_busy_seconds_total counter\n"
    "weir_task_busy_seconds_total" LA "1.500000000\n"
    "# HELP weir_task_idle_seconds_total Time waiting for input.\n"
    "# TYPE weir_task_idle_seconds_total counter\n"
    "weir_task_idle_seconds_total" LA "0.250000000\n"
    "# HELP weir_task_backpressured_seconds_total Time waiting for output credit "
    "(backpressure).\n"
    "# TYPE weir_task_backpressured_seconds_total counter\n"
    "weir_task_backpressured_seconds_total" LA "10.000000000\n"
    "# HELP weir_task_input_buffers_queued Input buffers queued now.\n"
    "# TYPE weir_task_input_buffers_queued gauge\n"
    "weir_task_input_buffers_queued" LA "1\n"
    "# HELP weir_task_input_buffers_capacity Input buffers possible (credits of all input "
    "channels).\n"
    "# TYPE weir_task_input_buffers_capacity gauge\n"
    "weir_task_input_buffers_capacity" LA "4\n"
    "# HELP weir_task_output_buffers_queued Output buffers filled and not yet sent or consumed.\n"
    "# TYPE weir_task_output_buffers_queued gauge\n"
    "weir_task_output_buffers_queued" LA "0\n"
    "# HELP weir_task_output_buffers_capacity Output buffers possible.\n"
    "# TYPE weir_task_output_buffers_capacity gauge\n"
    "weir_task_output_buffers_capacity" LA "0\n"
    "# HELP weir_task_input_buffer_usage Input buffers queued / possible (0..1).\n"
    "# TYPE weir_task_input_buffer_usage gauge\n"
    "weir_task_input_buffer_usage" LA "0.250000\n"
    "# HELP weir_task_output_buffer_usage Output buffers queued / possible (0..1).\n"
    "# TYPE weir_task_output_buffer_usage gauge\n"
    "weir_task_output_buffer_usage" LA "0.000000\n"
    "# HELP weir_task_watermark_seconds Current output watermark (event time, seconds since the "
    "epoch); absent before the first and after end of input.\n"
    "# TYPE weir_task_watermark_seconds gauge\n"
    "weir_task_watermark_seconds" LA "1700000000.123\n"
    "# HELP weir_task_watermark_lag_seconds Wall clock minus the current output watermark.\n"
    "# TYPE weir_task_watermark_lag_seconds gauge\n"
    "weir_task_watermark_lag_seconds" LA "5.500\n"
    "# HELP weir_task_late_records_dropped_total Records dropped as late by windows and interval "
    "joins.\n"
    "# TYPE weir_task_late_records_dropped_total counter\n"
    "weir_task_late_records_dropped_total" LA "9\n"
    "# HELP weir_task_state_cache_hits_total Write-back state cache hits.\n"
    "# TYPE weir_task_state_cache_hits_total counter\n"
    "weir_task_state_cache_hits_total" LA "3\n"
    "# HELP weir_task_state_cache_misses_total Write-back state cache misses (read from "
    "RocksDB).\n"
    "# TYPE weir_task_state_cache_misses_total counter\n"
    "weir_task_state_cache_misses_total" LA "1\n"
    "# HELP weir_task_state_cache_hit_ratio Hits / (hits + misses) of the write-back state cache; "
    "absent before the first read.\n"
    "# TYPE weir_task_state_cache_hit_ratio gauge\n"
    "weir_task_state_cache_hit_ratio" LA "0.750000\n"
    "# HELP weir_task_kafka_consumer_lag_records Kafka source: records behind the high "
    "watermarks, summed over its partitions.\n"
    "# TYPE weir_task_kafka_consumer_lag_records gauge\n"
    "weir_task_kafka_consumer_lag_records" LA "42\n"
    "# HELP weir_task_kafka_transactions_committed_total Kafka exactly-once sink: transactions "
    "committed.\n"
    "# TYPE weir_task_kafka_transactions_committed_total counter\n"
    "weir_task_kafka_transactions_committed_total" LA "11\n"
    "# HELP weir_task_kafka_transactions_aborted_total Kafka exactly-once sink: transactions "
    "aborted.\n"
    "# TYPE weir_task_kafka_transactions_aborted_total counter\n"
    "weir_task_kafka_transactions_aborted_total" LA "12\n";

static weir_prom_task_t task(const char *vertex, uint32_t v, uint32_t s,
                             const weir_task_metrics_t *m) {
    return (weir_prom_task_t){.job_id = "j1",
                              .job_name = "a\"b\\c\nd",
                              .vertex = vertex,
                              .vertex_id = v,
                              .subtask = s,
                              .tm_id = "tm-a",
                              .m = m};
}

/* `promtool check metrics` on @p text: its exit status (127 when it cannot run). */
static int promtool(const char *text) {
    char *dir = weir_test_tmpdir("prom");
    char path[4096], cmd[4200];
    snprintf(path, sizeof path, "%s/metrics.txt", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "promtool check metrics < '%s'", path);
    int st = system(cmd);
    weir_test_tmpdir_remove(dir);
    st = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
    if (st == 127)
        fail_msg("promtool not found: install Debian's prometheus package "
                 "(scripts/install-deps.sh)");
    return st;
}

static void test_task_families(void **state) {
    (void)state;
    char *buf = NULL;
    weir_prom_task_t one = task("src -> m", 0, 1, &M_A);
    CAPTURE(buf, weir_prom_task_families(f, &one, 1, NOW_MS));
    assert_string_equal(buf, EXPECTED_A);
    free(buf);

    /* B: no watermark (INT64_MIN), not a Kafka source (-1), no state-cache read yet;
     * C: the input ended (INT64_MAX). Their other families are there. */
    weir_task_metrics_t mb = M_A, mc = M_A;
    mb.watermark = INT64_MIN;
    mb.kafka_lag = -1;
    mb.state_cache_hits = mb.state_cache_misses = 0;
    mc.watermark = INT64_MAX;
    weir_prom_task_t three[3] = {task("src -> m", 0, 1, &M_A), task("sink", 1, 0, &mb),
                                 task("sink", 1, 1, &mc)};
    CAPTURE(buf, weir_prom_task_families(f, three, 3, NOW_MS));
#define LB                                                                                         \
    "{job_id=\"j1\",job_name=\"a\\\"b\\\\c\\nd\",vertex=\"sink\",vertex_id=\"1\",subtask=\"0\""
#define LC                                                                                         \
    "{job_id=\"j1\",job_name=\"a\\\"b\\\\c\\nd\",vertex=\"sink\",vertex_id=\"1\",subtask=\"1\""
    assert_null(strstr(buf, "weir_task_watermark_seconds" LB));
    assert_null(strstr(buf, "weir_task_watermark_lag_seconds" LB));
    assert_null(strstr(buf, "weir_task_kafka_consumer_lag_records" LB));
    assert_null(strstr(buf, "weir_task_state_cache_hit_ratio" LB));
    assert_null(strstr(buf, "weir_task_watermark_seconds" LC));
    assert_null(strstr(buf, "weir_task_watermark_lag_seconds" LC));
    assert_non_null(strstr(buf, "\nweir_task_watermark_seconds" LA "1700000000.123\n"));
    assert_non_null(strstr(buf, "\nweir_task_records_out_total" LB ",tm_id=\"tm-a\"} 21\n"));
    assert_non_null(strstr(buf, "\nweir_task_state_cache_hits_total" LB ",tm_id=\"tm-a\"} 0\n"));
    assert_non_null(
        strstr(buf, "\nweir_task_kafka_consumer_lag_records" LC ",tm_id=\"tm-a\"} 42\n"));
    /* every family's HELP once, even with no sample */
    char *p = buf;
    int helps = 0;
    while ((p = strstr(p, "# HELP weir_task_watermark_seconds "))) {
        helps++;
        p++;
    }
    assert_int_equal(helps, 1);
    assert_int_equal(promtool(buf), 0);
    free(buf);

    /* no subtasks: the families alone still pass promtool */
    CAPTURE(buf, weir_prom_task_families(f, NULL, 0, NOW_MS));
    assert_null(strstr(buf, "{"));
    assert_int_equal(promtool(buf), 0);
    free(buf);
}

static void test_memory_families(void **state) {
    (void)state;
    weir_prom_memory_t tms[2] = {{.tm_id = "tm-a",
                                  .process = 1073741824,
                                  .network_total = 1,
                                  .network_used = 2,
                                  .managed_total = 3,
                                  .managed_used = 4,
                                  .state_cache_total = 5,
                                  .state_cache_used = 6},
                                 {.tm_id = "tm-b"}};
    char *buf = NULL;
    CAPTURE(buf, weir_prom_memory_families(f, tms, 2));
    assert_string_equal(
        buf, "# HELP weir_taskmanager_memory_budget_bytes A pool of the task manager's memory "
             "budget (process: taskmanager.memory.process.size).\n"
             "# TYPE weir_taskmanager_memory_budget_bytes gauge\n"
             "weir_taskmanager_memory_budget_bytes{tm_id=\"tm-a\",pool=\"process\"} 1073741824\n"
             "weir_taskmanager_memory_budget_bytes{tm_id=\"tm-a\",pool=\"network\"} 1\n"
             "weir_taskmanager_memory_budget_bytes{tm_id=\"tm-a\",pool=\"managed\"} 3\n"
             "weir_taskmanager_memory_budget_bytes{tm_id=\"tm-a\",pool=\"state_cache\"} 5\n"
             "weir_taskmanager_memory_budget_bytes{tm_id=\"tm-b\",pool=\"process\"} 0\n"
             "weir_taskmanager_memory_budget_bytes{tm_id=\"tm-b\",pool=\"network\"} 0\n"
             "weir_taskmanager_memory_budget_bytes{tm_id=\"tm-b\",pool=\"managed\"} 0\n"
             "weir_taskmanager_memory_budget_bytes{tm_id=\"tm-b\",pool=\"state_cache\"} 0\n"
             "# HELP weir_taskmanager_memory_used_bytes Memory in use in a pool of the task "
             "manager's budget.\n"
             "# TYPE weir_taskmanager_memory_used_bytes gauge\n"
             "weir_taskmanager_memory_used_bytes{tm_id=\"tm-a\",pool=\"network\"} 2\n"
             "weir_taskmanager_memory_used_bytes{tm_id=\"tm-a\",pool=\"managed\"} 4\n"
             "weir_taskmanager_memory_used_bytes{tm_id=\"tm-a\",pool=\"state_cache\"} 6\n"
             "weir_taskmanager_memory_used_bytes{tm_id=\"tm-b\",pool=\"network\"} 0\n"
             "weir_taskmanager_memory_used_bytes{tm_id=\"tm-b\",pool=\"managed\"} 0\n"
             "weir_taskmanager_memory_used_bytes{tm_id=\"tm-b\",pool=\"state_cache\"} 0\n");
    assert_int_equal(promtool(buf), 0);
    free(buf);
}

/* A "Name:  N kB" line of /proc/self/status, in bytes (or the bare number for Threads). */
static uint64_t status_field(const char *name) {
    FILE *f = fopen("/proc/self/status", "r");
    assert_non_null(f);
    char line[256];
    uint64_t v = 0;
    size_t n = strlen(name);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, name, n) && line[n] == ':')
            v = strtoull(line + n + 1, NULL, 10) * (strstr(line, "kB") ? 1024 : 1);
    fclose(f);
    return v;
}

static void test_process(void **state) {
    (void)state;
    /* something to count: the RSS grows by at least this, an fd more is open */
    size_t big = 32u << 20;
    char *mem = malloc(big);
    assert_non_null(mem);
    memset(mem, 1, big);
    weir_prom_process_t p;
    weir_prom_process_read(&p);
    uint64_t vmrss = status_field("VmRSS"), vmsize = status_field("VmSize");
    /* the kernel's own accounting, read just after: within 4 MiB */
    assert_true(p.rss_bytes >= big);
    assert_true(p.rss_bytes + (4u << 20) >= vmrss && vmrss + (4u << 20) >= p.rss_bytes);
    assert_true(p.vsize_bytes + (4u << 20) >= vmsize && vmsize + (4u << 20) >= p.vsize_bytes);
    assert_int_equal(p.threads, status_field("Threads"));
    assert_true(p.cpu_ns > 0);
    /* open fds: the test opens one more and sees one more */
    FILE *extra = fopen("/proc/self/status", "r");
    assert_non_null(extra);
    weir_prom_process_t q;
    weir_prom_process_read(&q);
    assert_int_equal(q.open_fds, p.open_fds + 1);
    fclose(extra);
    assert_true(p.open_fds >= 3); /* stdin, stdout, stderr */

    char *buf = NULL;
    weir_prom_process_t fixed = {
        .rss_bytes = 4096, .vsize_bytes = 8192, .cpu_ns = 1500000000, .threads = 3, .open_fds = 7};
    CAPTURE(buf, weir_prom_process_families(f, "weir_process_", "tm_id", "tm-a", &fixed);
            weir_prom_process_families(f, "weir_jobmanager_process_", NULL, NULL, &fixed));
    assert_non_null(strstr(buf, "# TYPE weir_process_cpu_seconds_total counter\n"
                                "weir_process_cpu_seconds_total{tm_id=\"tm-a\"} 1.500000000\n"));
    assert_non_null(strstr(buf, "\nweir_process_resident_memory_bytes{tm_id=\"tm-a\"} 4096\n"));
    assert_non_null(strstr(buf, "\nweir_process_virtual_memory_bytes{tm_id=\"tm-a\"} 8192\n"));
    assert_non_null(strstr(buf, "\nweir_process_threads{tm_id=\"tm-a\"} 3\n"));
    assert_non_null(strstr(buf, "\nweir_process_open_fds{tm_id=\"tm-a\"} 7\n"));
    assert_non_null(strstr(buf, "\nweir_jobmanager_process_cpu_seconds_total 1.500000000\n"));
    assert_non_null(strstr(buf, "\nweir_jobmanager_process_resident_memory_bytes 4096\n"));
    assert_int_equal(promtool(buf), 0);
    free(buf);
    free(mem);
}

static void test_bearer(void **state) {
    (void)state;
    char sha[65];
    weir_sha256_hex("s3cret", 6, sha);
    assert_int_equal(weir_prom_bearer_check("Bearer s3cret", sha), 1);
    assert_int_equal(weir_prom_bearer_check("bearer \t s3cret \t", sha), 1);
    assert_int_equal(weir_prom_bearer_check("Bearer s3cre", sha), 0);
    assert_int_equal(weir_prom_bearer_check("Bearer s3cret2", sha), 0);
    assert_int_equal(weir_prom_bearer_check("Bearer ", sha), 0);
    assert_int_equal(weir_prom_bearer_check(NULL, sha), -1);
    assert_int_equal(weir_prom_bearer_check("Basic czNjcmV0", sha), -1);
    assert_int_equal(weir_prom_bearer_check("Bearers3cret", sha), -1);
    assert_int_equal(weir_prom_bearer_check("Bearer", sha), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_label_escape),  cmocka_unit_test(test_series),
        cmocka_unit_test(test_task_families), cmocka_unit_test(test_memory_families),
        cmocka_unit_test(test_process),       cmocka_unit_test(test_bearer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
