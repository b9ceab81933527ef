/* Tests the restart strategies (jobmanager/restart.c) as pure functions: the defaults with and
 * without checkpointing, fixed-delay limits, exponential-delay growth, cap and reset, and the
 * configuration errors. Expected delays are written out by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/config.h"
#include "common/err.h"
#include "jobmanager/restart.h"

static weir_config_t *cfg_with(const char *const *kv) {
    weir_config_t *cfg = weir_config_new();
    char err[256];
    for (; kv && *kv; kv++)
        assert_int_equal(weir_config_set_kv(cfg, *kv, err, sizeof err), 0);
    return cfg;
}

static void test_defaults(void **state) {
    (void)state;
    weir_config_t *cfg = cfg_with(NULL);
    weir_restart_cfg_t rc;
    weir_restart_state_t st;
    char err[256];
    int64_t d;
    assert_int_equal(weir_restart_config_load(cfg, false, &rc, err, sizeof err), 0);
    assert_int_equal(rc.type, WEIR_RESTART_NONE);
    weir_restart_state_init(&st);
    assert_false(weir_restart_on_failure(&rc, &st, 1000, &d));
    assert_int_equal(st.restarts, 0);
    /* checkpointing on: fixed-delay, unlimited, 1 s */
    assert_int_equal(weir_restart_config_load(cfg, true, &rc, err, sizeof err), 0);
    assert_int_equal(rc.type, WEIR_RESTART_FIXED_DELAY);
    weir_restart_state_init(&st);
    for (int i = 0; i < 500; i++) {
        assert_true(weir_restart_on_failure(&rc, &st, 1000 + i, &d));
        assert_int_equal(d, 1000);
    }
    assert_int_equal(st.restarts, 500);
    weir_config_destroy(&cfg);
}

static void test_fixed_delay(void **state) {
    (void)state;
    const char *kv[] = {"restart-strategy.type=fixed-delay",
                        "restart-strategy.fixed-delay.attempts=3",
                        "restart-strategy.fixed-delay.delay=250ms", NULL};
    weir_config_t *cfg = cfg_with(kv);
    weir_restart_cfg_t rc;
    weir_restart_state_t st;
    char err[256];
    int64_t d;
    assert_int_equal(weir_restart_config_load(cfg, false, &rc, err, sizeof err), 0);
    weir_restart_state_init(&st);
    for (int i = 0; i < 3; i++) {
        assert_true(weir_restart_on_failure(&rc, &st, 10 * i, &d));
        assert_int_equal(d, 250);
    }
    assert_false(weir_restart_on_failure(&rc, &st, 100, &d));
    assert_int_equal(st.restarts, 3);
    weir_config_destroy(&cfg);
}

static void test_exponential(void **state) {
    (void)state;
    const char *kv[] = {"restart-strategy.type=exponential-delay",
                        "restart-strategy.exponential-delay.initial-backoff=100ms",
                        "restart-strategy.exponential-delay.max-backoff=1s",
                        "restart-strategy.exponential-delay.backoff-multiplier=2.0",
                        "restart-strategy.exponential-delay.reset-backoff-threshold=10s",
                        NULL};
    weir_config_t *cfg = cfg_with(kv);
    weir_restart_cfg_t rc;
    weir_restart_state_t st;
    char err[256];
    int64_t d;
    assert_int_equal(weir_restart_config_load(cfg, true, &rc, err, sizeof err), 0);
    assert_int_equal(rc.type, WEIR_RESTART_EXPONENTIAL_DELAY);
    weir_restart_state_init(&st);
    const int64_t expect[] = {100, 200, 400, 800, 1000, 1000};
    int64_t now = 0;
    for (int i = 0; i < 6; i++) {
        now += 2000;
        assert_true(weir_restart_on_failure(&rc, &st, now, &d));
        assert_int_equal(d, expect[i]);
    }
    /* 10 s without failure: back to the initial backoff */
    now += 10000;
    assert_true(weir_restart_on_failure(&rc, &st, now, &d));
    assert_int_equal(d, 100);
    now += 1;
    assert_true(weir_restart_on_failure(&rc, &st, now, &d));
    assert_int_equal(d, 200);
    assert_int_equal(st.restarts, 8);
    weir_config_destroy(&cfg);

    /* attempts-before-reset-backoff limits the restarts between resets; multiplier 1.5 */
    const char *kv2[] = {"restart-strategy.type=exponential-delay",
                         "restart-strategy.exponential-delay.initial-backoff=100ms",
                         "restart-strategy.exponential-delay.max-backoff=1s",
                         "restart-strategy.exponential-delay.backoff-multiplier=1.5",
                         "restart-strategy.exponential-delay.reset-backoff-threshold=1min",
                         "restart-strategy.exponential-delay.attempts-before-reset-backoff=2",
                         NULL};
    cfg = cfg_with(kv2);
    assert_int_equal(weir_restart_config_load(cfg, true, &rc, err, sizeof err), 0);
    weir_restart_state_init(&st);
    assert_true(weir_restart_on_failure(&rc, &st, 0, &d));
    assert_int_equal(d, 100);
    assert_true(weir_restart_on_failure(&rc, &st, 1000, &d));
    assert_int_equal(d, 150);
    assert_false(weir_restart_on_failure(&rc, &st, 2000, &d));
    /* after the threshold the counter resets */
    assert_true(weir_restart_on_failure(&rc, &st, 2000 + 60000, &d));
    assert_int_equal(d, 100);
    weir_config_destroy(&cfg);
}

static void test_errors(void **state) {
    (void)state;
    weir_restart_cfg_t rc;
    char err[256];
    const char *kv1[] = {"restart-strategy.type=sometimes", NULL};
    weir_config_t *cfg = cfg_with(kv1);
    assert_int_equal(weir_restart_config_load(cfg, true, &rc, err, sizeof err), WEIR_ECONFIG);
    assert_non_null(strstr(err, "restart-strategy.type"));
    weir_config_destroy(&cfg);
    const char *kv2[] = {"restart-strategy.type=exponential-delay",
                         "restart-strategy.exponential-delay.backoff-multiplier=0.5", NULL};
    cfg = cfg_with(kv2);
    assert_int_equal(weir_restart_config_load(cfg, true, &rc, err, sizeof err), WEIR_ECONFIG);
    assert_non_null(strstr(err, "backoff-multiplier"));
    weir_config_destroy(&cfg);
    const char *kv3[] = {"restart-strategy.type=none", NULL};
    cfg = cfg_with(kv3);
    assert_int_equal(weir_restart_config_load(cfg, true, &rc, err, sizeof err), 0);
    assert_int_equal(rc.type, WEIR_RESTART_NONE);
    weir_config_destroy(&cfg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_fixed_delay),
        cmocka_unit_test(test_exponential),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
