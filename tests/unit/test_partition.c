/* Unit tests of runtime/dataplane/partition.c: forward, rebalance order and spread, hash placement
 * (a known key, agreement with key-group ranges, spread) and broadcast. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "runtime/graph/keygroup.h"
#include "runtime/dataplane/partition.h"

static void test_forward(void **state) {
    (void)state;
    weir_partitioner_t p;
    weir_partitioner_init(&p, WEIR_PART_FORWARD, 4, 128, 2);
    for (int i = 0; i < 10; i++)
        assert_int_equal(weir_partitioner_select(&p, "x", 1), 2);
}

static void test_rebalance(void **state) {
    (void)state;
    weir_partitioner_t p;
    weir_partitioner_init(&p, WEIR_PART_REBALANCE, 3, 128, 4); /* starts at 4 % 3 = 1 */
    const uint32_t want[] = {1, 2, 0, 1, 2, 0, 1};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        assert_int_equal(weir_partitioner_select(&p, NULL, 0), want[i]);
    uint32_t counts[5] = {0};
    weir_partitioner_init(&p, WEIR_PART_REBALANCE, 5, 128, 0);
    for (int i = 0; i < 5000; i++)
        counts[weir_partitioner_select(&p, NULL, 0)]++;
    for (int c = 0; c < 5; c++)
        assert_int_equal(counts[c], 1000);
}

static void test_hash(void **state) {
    (void)state;
    weir_partitioner_t p;
    weir_partitioner_init(&p, WEIR_PART_HASH, 4, 128, 0);
    /* murmur3("hello") = 0x248bfa47 -> key group 71 -> subtask 71*4/128 = 2 */
    assert_int_equal(weir_partitioner_select(&p, "hello", 5), 2);
    /* maxp 0 means the default 128 */
    weir_partitioner_t d;
    weir_partitioner_init(&d, WEIR_PART_HASH, 4, 0, 0);
    assert_int_equal(weir_partitioner_select(&d, "hello", 5), 2);

    uint32_t counts[4] = {0};
    char key[32];
    for (int i = 0; i < 20000; i++) {
        int n = snprintf(key, sizeof key, "user-%d", i);
        uint32_t c = weir_partitioner_select(&p, key, (uint32_t)n);
        assert_true(c < 4);
        assert_int_equal(weir_partitioner_select(&p, key, (uint32_t)n), c); /* stable */
        uint32_t kg = weir_keygroup_of(key, (size_t)n, 128);
        uint32_t f, l;
        weir_keygroup_range(c, 4, 128, &f, &l);
        assert_true(kg >= f && kg <= l);
        counts[c]++;
    }
    for (int c = 0; c < 4; c++)
        assert_true(counts[c] > 4000 && counts[c] < 6000); /* expected 5000 each */
}

static void test_broadcast(void **state) {
    (void)state;
    weir_partitioner_t p;
    weir_partitioner_init(&p, WEIR_PART_BROADCAST, 3, 128, 1);
    assert_int_equal(weir_partitioner_select(&p, "a", 1), WEIR_PARTITION_ALL);
    assert_int_equal(weir_partitioner_select(&p, NULL, 0), WEIR_PARTITION_ALL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward),
        cmocka_unit_test(test_rebalance),
        cmocka_unit_test(test_hash),
        cmocka_unit_test(test_broadcast),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
