/* Tests jobmanager/scheduler.c: slots needed under slot sharing, spreading over task managers
 * (most free first, ties by registration order), not enough slots, and a brute-force check of
 * the greedy policy's balance property. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "common/err.h"
#include "jobmanager/scheduler.h"

static void test_slots_needed(void **state) {
    (void)state;
    uint32_t p[] = {2, 5, 1, 3};
    assert_int_equal(weir_sched_slots_needed(p, 4), 5);
    assert_int_equal(weir_sched_slots_needed(p, 1), 2);
    assert_int_equal(weir_sched_slots_needed(p, 0), 0);
}

static void test_spread_even(void **state) {
    (void)state;
    weir_sched_tm_t tms[3] = {{2, 2}, {2, 2}, {2, 2}};
    uint32_t out[6];
    assert_int_equal(weir_sched_assign(tms, 3, 3, out), 0);
    /* one slot on each, in registration order */
    assert_int_equal(out[0], 0);
    assert_int_equal(out[1], 1);
    assert_int_equal(out[2], 2);
    assert_int_equal(weir_sched_assign(tms, 3, 6, out), 0);
    uint32_t expect[6] = {0, 1, 2, 0, 1, 2};
    for (int i = 0; i < 6; i++)
        assert_int_equal(out[i], expect[i]);
}

static void test_spread_most_free_first(void **state) {
    (void)state;
    /* free 1, 4, 2: TM1 until it ties with TM2 (2 vs 2 -> TM1 wins the tie), ... */
    weir_sched_tm_t tms[3] = {{4, 1}, {4, 4}, {2, 2}};
    uint32_t out[5];
    assert_int_equal(weir_sched_assign(tms, 3, 5, out), 0);
    /* free after each pick: [1,3,2] [1,2,2] [1,1,2] [1,1,1] [0,1,1] */
    uint32_t expect[5] = {1, 1, 1, 2, 0};
    for (int i = 0; i < 5; i++)
        assert_int_equal(out[i], expect[i]);
    /* input untouched */
    assert_int_equal(tms[0].slots_free, 1);
    assert_int_equal(tms[1].slots_free, 4);
}

static void test_not_enough(void **state) {
    (void)state;
    weir_sched_tm_t tms[2] = {{2, 1}, {2, 1}};
    uint32_t out[3] = {99, 99, 99};
    assert_int_equal(weir_sched_assign(tms, 2, 3, out), WEIR_ENOSPACE);
    assert_int_equal(out[0], 99); /* untouched */
    assert_int_equal(weir_sched_free_slots(tms, 2), 2);
    /* no task managers at all */
    assert_int_equal(weir_sched_assign(NULL, 0, 1, out), WEIR_ENOSPACE);
    assert_int_equal(weir_sched_assign(tms, 2, 0, out), WEIR_EINVAL);
}

static void test_parallelism_above_slots(void **state) {
    (void)state;
    /* parallelism 4 needs 4 slots: one TM with 4 slots is enough, 3 are not */
    uint32_t p[] = {4, 4, 1};
    uint32_t needed = weir_sched_slots_needed(p, 3);
    weir_sched_tm_t one[1] = {{3, 3}};
    uint32_t out[4];
    assert_int_equal(weir_sched_assign(one, 1, needed, out), WEIR_ENOSPACE);
    one[0].slots_free = one[0].slots_total = 4;
    assert_int_equal(weir_sched_assign(one, 1, needed, out), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(out[i], 0);
}

/* Brute force over small configurations: never takes more than a TM has free, fails exactly
 * when the free total is short, and (each pick takes from a TM with the most free slots left)
 * afterwards no TM has more than one slot more left than any TM that received a slot. */
static void test_brute_force_balance(void **state) {
    (void)state;
    for (uint32_t a = 0; a <= 4; a++)
        for (uint32_t b = 0; b <= 4; b++)
            for (uint32_t c = 0; c <= 4; c++)
                for (uint32_t need = 1; need <= 12; need++) {
                    weir_sched_tm_t tms[3] = {{4, a}, {4, b}, {4, c}};
                    uint32_t out[12];
                    int rc = weir_sched_assign(tms, 3, need, out);
                    if (a + b + c < need) {
                        assert_int_equal(rc, WEIR_ENOSPACE);
                        continue;
                    }
                    assert_int_equal(rc, 0);
                    uint32_t taken[3] = {0, 0, 0};
                    for (uint32_t i = 0; i < need; i++) {
                        assert_true(out[i] < 3);
                        taken[out[i]]++;
                    }
                    uint32_t left[3] = {a - taken[0], b - taken[1], c - taken[2]};
                    assert_true(taken[0] <= a && taken[1] <= b && taken[2] <= c);
                    uint32_t max_left = 0, min_used_left = 99;
                    for (int i = 0; i < 3; i++) {
                        if (left[i] > max_left)
                            max_left = left[i];
                        if (taken[i] && left[i] < min_used_left)
                            min_used_left = left[i];
                    }
                    if (min_used_left != 99)
                        assert_true(max_left <= min_used_left + 1);
                }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slots_needed),
        cmocka_unit_test(test_spread_even),
        cmocka_unit_test(test_spread_most_free_first),
        cmocka_unit_test(test_not_enough),
        cmocka_unit_test(test_parallelism_above_slots),
        cmocka_unit_test(test_brute_force_balance),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
