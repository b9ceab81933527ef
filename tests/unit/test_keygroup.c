/* Unit tests of runtime/graph/keygroup.c: MurmurHash3 x86_32 known vectors, Flink's documented
 * ranges, and a brute-force check that ranges partition [0, maxp) and agree with subtask(). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "runtime/graph/keygroup.h"

static void test_murmur_vectors(void **state) {
    (void)state;
    assert_int_equal(weir_keygroup_hash("", 0), 0);
    assert_int_equal(weir_keygroup_hash("hello", 5), 0x248bfa47u);
    const char *fox = "The quick brown fox jumps over the lazy dog";
    assert_int_equal(weir_keygroup_hash(fox, strlen(fox)), 0x2e4ff723u);
    assert_int_equal(weir_keygroup_hash("test", 4), 0xba6bd213u);
    /* key group = hash mod maxp */
    assert_int_equal(weir_keygroup_of("hello", 5, 128), 0x248bfa47u % 128);
    assert_int_equal(weir_keygroup_of("hello", 5, 1), 0);
    assert_int_equal(weir_keygroup_of(fox, strlen(fox), 1000), 0x2e4ff723u % 1000);
}

static void test_flink_ranges(void **state) {
    (void)state;
    /* KeyGroupRangeAssignment for maxp 128, p 3: [0,42] [43,85] [86,127] */
    uint32_t f, l;
    weir_keygroup_range(0, 3, 128, &f, &l);
    assert_int_equal(f, 0);
    assert_int_equal(l, 42);
    weir_keygroup_range(1, 3, 128, &f, &l);
    assert_int_equal(f, 43);
    assert_int_equal(l, 85);
    weir_keygroup_range(2, 3, 128, &f, &l);
    assert_int_equal(f, 86);
    assert_int_equal(l, 127);
    assert_int_equal(weir_keygroup_subtask(42, 3, 128), 0);
    assert_int_equal(weir_keygroup_subtask(43, 3, 128), 1);
    assert_int_equal(weir_keygroup_subtask(127, 3, 128), 2);
    weir_keygroup_range(0, 1, 128, &f, &l);
    assert_int_equal(f, 0);
    assert_int_equal(l, 127);
}

static void test_ranges_brute_force(void **state) {
    (void)state;
    static const uint32_t maxps[] = {1, 2, 3, 7, 10, 128, 129, 1000, 32768};
    for (size_t m = 0; m < sizeof maxps / sizeof maxps[0]; m++) {
        uint32_t maxp = maxps[m];
        for (uint32_t p = 1; p <= maxp && p <= 70; p++) {
            uint32_t next = 0;
            for (uint32_t s = 0; s < p; s++) {
                uint32_t f, l;
                weir_keygroup_range(s, p, maxp, &f, &l);
                assert_int_equal(f, next); /* contiguous, no gap, no overlap */
                assert_true(l >= f);       /* p <= maxp: never empty */
                for (uint32_t kg = f; kg <= l; kg++)
                    assert_int_equal(weir_keygroup_subtask(kg, p, maxp), s);
                next = l + 1;
            }
            assert_int_equal(next, maxp); /* covers 0..maxp-1 */
        }
    }
    /* more subtasks than key groups: extra subtasks get empty ranges, coverage still exact */
    uint32_t covered = 0;
    for (uint32_t s = 0; s < 5; s++) {
        uint32_t f, l;
        weir_keygroup_range(s, 5, 2, &f, &l);
        if (f <= l)
            covered += l - f + 1;
    }
    assert_int_equal(covered, 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_murmur_vectors),
        cmocka_unit_test(test_flink_ranges),
        cmocka_unit_test(test_ranges_brute_force),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
