/* Unit tests of runtime/task/watermark.c: the valve (minimum over active input channels,
 * idleness on and off, never backwards, INT64_MAX once every channel ended) and the per-split
 * generator (bound, idle splits, restore never below the checkpointed output). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "runtime/task/watermark.h"

#define MS 1000000LL

static void test_valve_min(void **state) {
    (void)state;
    weir_wm_valve_t v;
    assert_int_equal(weir_wm_valve_init(&v, 3), 0);
    assert_int_equal(weir_wm_valve_watermark(&v, 0, 10), 0); /* others at MIN */
    assert_int_equal(weir_wm_valve_watermark(&v, 1, 20), 0);
    assert_int_equal(weir_wm_valve_watermark(&v, 2, 5), WEIR_WM_ADVANCED);
    assert_int_equal(v.o.out, 5);
    assert_int_equal(weir_wm_valve_watermark(&v, 2, 30), WEIR_WM_ADVANCED);
    assert_int_equal(v.o.out, 10);
    weir_wm_valve_free(&v);
}

static void test_valve_never_backwards(void **state) {
    (void)state;
    weir_wm_valve_t v;
    assert_int_equal(weir_wm_valve_init(&v, 2), 0);
    weir_wm_valve_watermark(&v, 0, 100);
    assert_int_equal(weir_wm_valve_watermark(&v, 1, 100), WEIR_WM_ADVANCED);
    /* a lower watermark on a channel is ignored */
    assert_int_equal(weir_wm_valve_watermark(&v, 0, 50), 0);
    assert_int_equal(v.o.out, 100);
    /* a channel idle, then back active below the output: output stays */
    weir_wm_valve_status(&v, 1, true);
    assert_int_equal(weir_wm_valve_watermark(&v, 0, 200), WEIR_WM_ADVANCED);
    assert_int_equal(v.o.out, 200);
    assert_int_equal(weir_wm_valve_status(&v, 1, false), 0);
    assert_int_equal(v.o.out, 200);
    weir_wm_valve_free(&v);
}

static void test_valve_idle(void **state) {
    (void)state;
    weir_wm_valve_t v;
    assert_int_equal(weir_wm_valve_init(&v, 2), 0);
    assert_int_equal(weir_wm_valve_watermark(&v, 0, 7), 0); /* channel 1 holds it at MIN */
    assert_int_equal(weir_wm_valve_status(&v, 1, true), WEIR_WM_ADVANCED); /* idle: not held */
    assert_int_equal(v.o.out, 7);
    assert_false(v.o.idle);
    assert_int_equal(weir_wm_valve_status(&v, 0, true), WEIR_WM_STATUS); /* all idle */
    assert_true(v.o.idle);
    assert_int_equal(weir_wm_valve_watermark(&v, 1, 3), WEIR_WM_STATUS); /* active again */
    assert_false(v.o.idle);
    assert_int_equal(v.o.out, 7);
    weir_wm_valve_free(&v);
}

static void test_valve_end(void **state) {
    (void)state;
    weir_wm_valve_t v;
    assert_int_equal(weir_wm_valve_init(&v, 2), 0);
    weir_wm_valve_watermark(&v, 0, 40);
    weir_wm_valve_watermark(&v, 1, 50);
    assert_int_equal(weir_wm_valve_end(&v, 0), WEIR_WM_ADVANCED);
    assert_int_equal(v.o.out, 50);
    assert_int_equal(weir_wm_valve_end(&v, 1), WEIR_WM_ADVANCED);
    assert_int_equal(v.o.out, INT64_MAX);
    assert_int_equal(weir_wm_valve_watermark(&v, 1, 60), 0);
    weir_wm_valve_free(&v);
}

static void test_gen_bound_and_idle(void **state) {
    (void)state;
    weir_wm_gen_t g;
    weir_wm_gen_init(&g, 100, 50, INT64_MIN);
    assert_int_equal(weir_wm_gen_poll(&g, 0), WEIR_WM_STATUS); /* no split: idle */
    assert_true(g.o.idle);
    assert_int_equal(weir_wm_gen_poll(&g, 0), 0); /* reported once */
    weir_wm_gen_split(&g, 0, INT64_MIN, 0);
    weir_wm_gen_split(&g, 1, INT64_MIN, 0); /* never gets a record */
    weir_wm_gen_record(&g, 0, 1000, 1 * MS);
    weir_wm_gen_record(&g, 0, 900, 2 * MS); /* out of order: max stays */
    assert_int_equal(weir_wm_gen_split_wm(&g, 0), 899);
    assert_int_equal(weir_wm_gen_poll(&g, 10 * MS), WEIR_WM_STATUS); /* active; split 1 holds */
    assert_false(g.o.idle);
    assert_int_equal(g.o.out, INT64_MIN);
    assert_int_equal(weir_wm_gen_poll(&g, 50 * MS), WEIR_WM_ADVANCED); /* split 1 idle */
    assert_int_equal(g.o.out, 899);
    assert_false(g.o.idle);
    assert_int_equal(weir_wm_gen_poll(&g, 60 * MS), WEIR_WM_STATUS); /* split 0 idle too */
    assert_true(g.o.idle);
    weir_wm_gen_record(&g, 0, 2000, 70 * MS);
    assert_int_equal(weir_wm_gen_poll(&g, 70 * MS), WEIR_WM_ADVANCED | WEIR_WM_STATUS);
    assert_int_equal(g.o.out, 1899);
    weir_wm_gen_free(&g);
}

static void test_gen_no_idle_and_restore(void **state) {
    (void)state;
    weir_wm_gen_t g;
    weir_wm_gen_init(&g, 0, 0, 500);  /* restored output 500 */
    weir_wm_gen_split(&g, 0, 300, 0); /* restored split max below it */
    assert_int_equal(weir_wm_gen_poll(&g, 1000 * MS), 0);
    assert_int_equal(g.o.out, 500); /* never below the checkpointed output */
    weir_wm_gen_record(&g, 0, 600, 1001 * MS);
    assert_int_equal(weir_wm_gen_poll(&g, 1001 * MS), WEIR_WM_ADVANCED);
    assert_int_equal(g.o.out, 599);
    weir_wm_gen_remove(&g, 0); /* the only split finished */
    assert_int_equal(weir_wm_gen_poll(&g, 1002 * MS), WEIR_WM_ADVANCED);
    assert_int_equal(g.o.out, INT64_MAX);
    weir_wm_gen_free(&g);
}

/* A split first seen at index 2 (a restored file source whose splits 0 and 1 are read): the
 * unregistered indices below it do not hold the watermark back. */
static void test_gen_sparse_splits(void **state) {
    (void)state;
    weir_wm_gen_t g;
    weir_wm_gen_init(&g, 0, 0, INT64_MIN);
    weir_wm_gen_record(&g, 2, 100, 0);
    assert_int_equal(weir_wm_gen_poll(&g, 0), WEIR_WM_ADVANCED);
    assert_int_equal(g.o.out, 99);
    weir_wm_gen_free(&g);
}

static void test_gen_overflow(void **state) {
    (void)state;
    weir_wm_gen_t g;
    weir_wm_gen_init(&g, 1000, 0, INT64_MIN);
    weir_wm_gen_record(&g, 0, INT64_MIN + 5, 0);
    assert_int_equal(weir_wm_gen_split_wm(&g, 0), INT64_MIN);
    weir_wm_gen_free(&g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valve_min),          cmocka_unit_test(test_valve_never_backwards),
        cmocka_unit_test(test_valve_idle),         cmocka_unit_test(test_valve_end),
        cmocka_unit_test(test_gen_bound_and_idle), cmocka_unit_test(test_gen_no_idle_and_restore),
        cmocka_unit_test(test_gen_overflow),       cmocka_unit_test(test_gen_sparse_splits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
