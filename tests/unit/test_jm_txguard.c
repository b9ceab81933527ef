/* Tests the job manager's transaction-timeout check of exactly-once Kafka sinks
 * (jobmanager/txguard.c) on graphs built with the public define API: a safe configuration
 * passes, an unsafe one is refused with the figures, exactly-once without checkpointing is
 * refused, other delivery modes and other sinks are not checked. Minimum timeouts are written out
 * by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "jobmanager/txguard.h"
#include "runtime/graph/graph.h"
#include "weir/weir.h"

static weir_job_t *job_with_sink(const char *delivery, const char *timeout) {
    weir_job_t *job = weir_graph_new("t", 1);
    weir_datagen_opts_t o = {.count = 1};
    weir_stream_t *src = weir_source_datagen(job, "src", &o);
    const char *opts[12];
    size_t n = 0;
    opts[n++] = "bootstrap.servers";
    opts[n++] = "127.0.0.1:9092";
    opts[n++] = "topic";
    opts[n++] = "out";
    if (delivery) {
        opts[n++] = "sink.delivery-guarantee";
        opts[n++] = delivery;
    }
    if (timeout) {
        opts[n++] = "transaction.timeout.ms";
        opts[n++] = timeout;
    }
    opts[n] = NULL;
    weir_sink_kafka(src, "out", opts);
    return job;
}

static const weir_txguard_cfg_t base = {.checkpointing = true,
                                        .interval_ms = 500,
                                        .timeout_ms = 600000,
                                        .heartbeat_timeout_ms = 10000,
                                        .restart_delay_ms = 1000};

static void test_min_timeout(void **state) {
    (void)state;
    /* 500 + 600000 + 10000 + 1000 + 60000 */
    assert_int_equal(weir_txguard_min_timeout(&base), 671500);
}

static void test_default_timeout_is_safe(void **state) {
    (void)state;
    weir_job_t *job = job_with_sink("exactly-once", NULL); /* 900000 by default */
    char err[512] = "";
    assert_int_equal(weir_txguard_check(job, &base, err, sizeof err), 0);
    weir_graph_destroy(&job);
}

static void test_short_timeout_refused(void **state) {
    (void)state;
    weir_job_t *job = job_with_sink("exactly-once", "600000");
    char err[768] = "";
    assert_int_equal(weir_txguard_check(job, &base, err, sizeof err), WEIR_ECONFIG);
    assert_non_null(strstr(err, "Kafka sink 'out': transaction.timeout.ms 600000 is shorter"));
    assert_non_null(strstr(err, "= 671500 ms"));
    assert_non_null(strstr(err, "raise transaction.timeout.ms"));
    /* exactly at the minimum is accepted */
    weir_graph_destroy(&job);
    job = job_with_sink("exactly-once", "671500");
    assert_int_equal(weir_txguard_check(job, &base, err, sizeof err), 0);
    weir_graph_destroy(&job);
}

static void test_without_checkpointing_refused(void **state) {
    (void)state;
    weir_job_t *job = job_with_sink("exactly-once", NULL);
    weir_txguard_cfg_t cfg = base;
    cfg.checkpointing = false;
    char err[512] = "";
    assert_int_equal(weir_txguard_check(job, &cfg, err, sizeof err), WEIR_ECONFIG);
    assert_non_null(strstr(err, "set execution.checkpointing.interval"));
    weir_graph_destroy(&job);
}

static void test_other_modes_not_checked(void **state) {
    (void)state;
    char err[512] = "";
    weir_txguard_cfg_t cfg = base;
    cfg.checkpointing = false;
    const char *modes[] = {"at-least-once", "none", NULL};
    for (int i = 0; i < 3; i++) {
        weir_job_t *job = job_with_sink(modes[i], "1000");
        assert_int_equal(weir_txguard_check(job, &cfg, err, sizeof err), 0);
        weir_graph_destroy(&job);
    }
}

static void test_bad_timeout_refused(void **state) {
    (void)state;
    weir_job_t *job = job_with_sink("exactly-once", "15min");
    char err[512] = "";
    assert_int_equal(weir_txguard_check(job, &base, err, sizeof err), WEIR_ECONFIG);
    assert_non_null(strstr(err, "'15min' is not a positive integer"));
    weir_graph_destroy(&job);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_min_timeout),
        cmocka_unit_test(test_default_timeout_is_safe),
        cmocka_unit_test(test_short_timeout_refused),
        cmocka_unit_test(test_without_checkpointing_refused),
        cmocka_unit_test(test_other_modes_not_checked),
        cmocka_unit_test(test_bad_timeout_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
