/* Unit tests of common/json.c: every member reader with the member present, absent, null,
 * required, of the wrong type and out of range, checking the value stored and the exact one-line
 * error text; a non-object is read as if every member were absent. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/json.h"

static json_t *parse(const char *text) {
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    if (!j)
        fail_msg("bad test JSON %s: %s", text, je.text);
    return j;
}

static const char *OBJ = "{\"i\": 7, \"neg\": -3, \"big\": 9223372036854775807, \"s\": \"text\","
                         " \"r\": 2.5, \"t\": true, \"f\": false, \"a\": [1, 2], \"n\": null,"
                         " \"o\": {}}";

static void test_int(void **state) {
    (void)state;
    json_t *o = parse(OBJ);
    char err[256];
    int64_t v = -1;
    /* present, in range; the bounds are inclusive */
    assert_int_equal(weir_json_int(o, "node 1", "i", true, 0, 10, 5, &v, err, sizeof err), 0);
    assert_int_equal(v, 7);
    assert_int_equal(weir_json_int(o, "node 1", "i", false, 7, 7, 5, &v, err, sizeof err), 0);
    assert_int_equal(v, 7);
    assert_int_equal(weir_json_int(o, "node 1", "neg", true, -3, 0, 5, &v, err, sizeof err), 0);
    assert_int_equal(v, -3);
    /* absent or null and not required: the default */
    v = -1;
    assert_int_equal(weir_json_int(o, "node 1", "x", false, 0, 10, 5, &v, err, sizeof err), 0);
    assert_int_equal(v, 5);
    v = -1;
    assert_int_equal(weir_json_int(o, "node 1", "n", false, 0, 10, 6, &v, err, sizeof err), 0);
    assert_int_equal(v, 6);
    /* absent or null and required */
    assert_int_equal(weir_json_int(o, "node 1", "x", true, 0, 10, 5, &v, err, sizeof err),
                     WEIR_EINVAL);
    assert_string_equal(err, "node 1: missing integer \"x\"");
    assert_int_equal(weir_json_int(o, "node 1", "n", true, 0, 10, 5, &v, err, sizeof err),
                     WEIR_EINVAL);
    assert_string_equal(err, "node 1: missing integer \"n\"");
    /* wrong type: a real, a string, a boolean */
    assert_int_equal(weir_json_int(o, "node 1", "r", true, 0, 10, 5, &v, err, sizeof err),
                     WEIR_EINVAL);
    assert_string_equal(err, "node 1: \"r\" must be an integer");
    assert_int_equal(weir_json_int(o, "node 1", "s", false, 0, 10, 5, &v, err, sizeof err),
                     WEIR_EINVAL);
    assert_string_equal(err, "node 1: \"s\" must be an integer");
    assert_int_equal(weir_json_int(o, "node 1", "t", false, 0, 10, 5, &v, err, sizeof err),
                     WEIR_EINVAL);
    assert_string_equal(err, "node 1: \"t\" must be an integer");
    /* out of range, either side */
    assert_int_equal(weir_json_int(o, "node 1", "i", true, 0, 6, 5, &v, err, sizeof err),
                     WEIR_EINVAL);
    assert_string_equal(err, "node 1: \"i\" = 7 is out of range [0, 6]");
    assert_int_equal(weir_json_int(o, "node 1", "neg", true, -2, 6, 5, &v, err, sizeof err),
                     WEIR_EINVAL);
    assert_string_equal(err, "node 1: \"neg\" = -3 is out of range [-2, 6]");
    /* no error buffer: still the error code */
    assert_int_equal(weir_json_int(o, "node 1", "x", true, 0, 10, 5, &v, NULL, 0), WEIR_EINVAL);
    json_decref(o);
}

static void test_u64(void **state) {
    (void)state;
    json_t *o = parse(OBJ);
    char err[256];
    uint64_t v = 1;
    assert_int_equal(weir_json_u64(o, "meta", "i", true, 9, &v, err, sizeof err), 0);
    assert_int_equal(v, 7);
    assert_int_equal(weir_json_u64(o, "meta", "big", true, 9, &v, err, sizeof err), 0);
    assert_int_equal(v, 9223372036854775807ull);
    v = 1;
    assert_int_equal(weir_json_u64(o, "meta", "x", false, 9, &v, err, sizeof err), 0);
    assert_int_equal(v, 9);
    v = 1;
    assert_int_equal(weir_json_u64(o, "meta", "n", false, 10, &v, err, sizeof err), 0);
    assert_int_equal(v, 10);
    assert_int_equal(weir_json_u64(o, "meta", "x", true, 9, &v, err, sizeof err), WEIR_EINVAL);
    assert_string_equal(err, "meta: missing integer \"x\"");
    assert_int_equal(weir_json_u64(o, "meta", "n", true, 9, &v, err, sizeof err), WEIR_EINVAL);
    assert_string_equal(err, "meta: missing integer \"n\"");
    assert_int_equal(weir_json_u64(o, "meta", "s", true, 9, &v, err, sizeof err), WEIR_EINVAL);
    assert_string_equal(err, "meta: \"s\" must be an integer");
    assert_int_equal(weir_json_u64(o, "meta", "neg", true, 9, &v, err, sizeof err), WEIR_EINVAL);
    assert_string_equal(err, "meta: \"neg\" = -3 is out of range [0, 9223372036854775807]");
    json_decref(o);
}

static void test_str(void **state) {
    (void)state;
    json_t *o = parse(OBJ);
    char err[256];
    const char *v = "unset";
    assert_int_equal(weir_json_str(o, "job", "s", true, &v, err, sizeof err), 0);
    assert_string_equal(v, "text");
    assert_ptr_equal(v, json_string_value(json_object_get(o, "s"))); /* borrowed */
    v = "unset";
    assert_int_equal(weir_json_str(o, "job", "x", false, &v, err, sizeof err), 0);
    assert_null(v);
    v = "unset";
    assert_int_equal(weir_json_str(o, "job", "n", false, &v, err, sizeof err), 0);
    assert_null(v);
    assert_int_equal(weir_json_str(o, "job", "x", true, &v, err, sizeof err), WEIR_EINVAL);
    assert_string_equal(err, "job: missing string \"x\"");
    assert_int_equal(weir_json_str(o, "job", "n", true, &v, err, sizeof err), WEIR_EINVAL);
    assert_string_equal(err, "job: missing string \"n\"");
    assert_int_equal(weir_json_str(o, "job", "i", true, &v, err, sizeof err), WEIR_EINVAL);
    assert_string_equal(err, "job: \"i\" must be a string");
    assert_int_equal(weir_json_str(o, "job", "a", false, &v, err, sizeof err), WEIR_EINVAL);
    assert_string_equal(err, "job: \"a\" must be a string");
    json_decref(o);
}

static void test_real(void **state) {
    (void)state;
    json_t *o = parse(OBJ);
    char err[256];
    double v = -1;
    assert_int_equal(weir_json_real(o, "rate", "r", true, 0, 1, &v, err, sizeof err), 0);
    assert_true(v == 2.5);
    assert_int_equal(weir_json_real(o, "rate", "r", true, 2.5, 1, &v, err, sizeof err), 0);
    assert_true(v == 2.5);
    /* integers are numbers too */
    assert_int_equal(weir_json_real(o, "rate", "i", true, 0, 1, &v, err, sizeof err), 0);
    assert_true(v == 7.0);
    v = -1;
    assert_int_equal(weir_json_real(o, "rate", "x", false, 0, 1.5, &v, err, sizeof err), 0);
    assert_true(v == 1.5);
    v = -1;
    assert_int_equal(weir_json_real(o, "rate", "n", false, 0, 0.25, &v, err, sizeof err), 0);
    assert_true(v == 0.25);
    assert_int_equal(weir_json_real(o, "rate", "x", true, 0, 1, &v, err, sizeof err), WEIR_EINVAL);
    assert_string_equal(err, "rate: missing number \"x\"");
    assert_int_equal(weir_json_real(o, "rate", "n", true, 0, 1, &v, err, sizeof err), WEIR_EINVAL);
    assert_string_equal(err, "rate: missing number \"n\"");
    assert_int_equal(weir_json_real(o, "rate", "s", true, 0, 1, &v, err, sizeof err), WEIR_EINVAL);
    assert_string_equal(err, "rate: \"s\" must be a number");
    assert_int_equal(weir_json_real(o, "rate", "t", true, 0, 1, &v, err, sizeof err), WEIR_EINVAL);
    assert_string_equal(err, "rate: \"t\" must be a number");
    /* below the minimum */
    assert_int_equal(weir_json_real(o, "rate", "r", true, 3, 1, &v, err, sizeof err), WEIR_EINVAL);
    assert_string_equal(err, "rate: \"r\" must be >= 3");
    assert_int_equal(weir_json_real(o, "rate", "neg", true, 0.5, 1, &v, err, sizeof err),
                     WEIR_EINVAL);
    assert_string_equal(err, "rate: \"neg\" must be >= 0.5");
    json_decref(o);
}

static void test_bool(void **state) {
    (void)state;
    json_t *o = parse(OBJ);
    char err[256];
    bool v = false;
    assert_int_equal(weir_json_bool(o, "flags", "t", true, false, &v, err, sizeof err), 0);
    assert_true(v);
    assert_int_equal(weir_json_bool(o, "flags", "f", true, true, &v, err, sizeof err), 0);
    assert_false(v);
    assert_int_equal(weir_json_bool(o, "flags", "x", false, true, &v, err, sizeof err), 0);
    assert_true(v);
    assert_int_equal(weir_json_bool(o, "flags", "n", false, false, &v, err, sizeof err), 0);
    assert_false(v);
    assert_int_equal(weir_json_bool(o, "flags", "x", true, true, &v, err, sizeof err), WEIR_EINVAL);
    assert_string_equal(err, "flags: missing boolean \"x\"");
    assert_int_equal(weir_json_bool(o, "flags", "n", true, true, &v, err, sizeof err), WEIR_EINVAL);
    assert_string_equal(err, "flags: missing boolean \"n\"");
    assert_int_equal(weir_json_bool(o, "flags", "i", true, true, &v, err, sizeof err), WEIR_EINVAL);
    assert_string_equal(err, "flags: \"i\" must be true or false");
    assert_int_equal(weir_json_bool(o, "flags", "s", false, true, &v, err, sizeof err),
                     WEIR_EINVAL);
    assert_string_equal(err, "flags: \"s\" must be true or false");
    json_decref(o);
}

static void test_array(void **state) {
    (void)state;
    json_t *o = parse(OBJ);
    char err[256];
    const json_t *v = NULL;
    assert_int_equal(weir_json_array(o, "graph", "a", true, &v, err, sizeof err), 0);
    assert_ptr_equal(v, json_object_get(o, "a")); /* borrowed */
    assert_int_equal(json_array_size(v), 2);
    v = o;
    assert_int_equal(weir_json_array(o, "graph", "x", false, &v, err, sizeof err), 0);
    assert_null(v);
    v = o;
    assert_int_equal(weir_json_array(o, "graph", "n", false, &v, err, sizeof err), 0);
    assert_null(v);
    assert_int_equal(weir_json_array(o, "graph", "x", true, &v, err, sizeof err), WEIR_EINVAL);
    assert_string_equal(err, "graph: missing array \"x\"");
    assert_int_equal(weir_json_array(o, "graph", "n", true, &v, err, sizeof err), WEIR_EINVAL);
    assert_string_equal(err, "graph: missing array \"n\"");
    assert_int_equal(weir_json_array(o, "graph", "o", true, &v, err, sizeof err), WEIR_EINVAL);
    assert_string_equal(err, "graph: \"o\" must be an array");
    assert_int_equal(weir_json_array(o, "graph", "s", false, &v, err, sizeof err), WEIR_EINVAL);
    assert_string_equal(err, "graph: \"s\" must be an array");
    json_decref(o);
}

/* Reading from something that is not an object: every member is absent. */
static void test_not_an_object(void **state) {
    (void)state;
    json_t *arr = parse("[1, 2]");
    char err[256];
    int64_t i = -1;
    assert_int_equal(weir_json_int(arr, "x", "i", false, 0, 10, 4, &i, err, sizeof err), 0);
    assert_int_equal(i, 4);
    assert_int_equal(weir_json_int(arr, "x", "i", true, 0, 10, 4, &i, err, sizeof err),
                     WEIR_EINVAL);
    assert_string_equal(err, "x: missing integer \"i\"");
    const char *s = "unset";
    assert_int_equal(weir_json_str(NULL, "x", "s", false, &s, err, sizeof err), 0);
    assert_null(s);
    assert_int_equal(weir_json_str(NULL, "x", "s", true, &s, err, sizeof err), WEIR_EINVAL);
    assert_string_equal(err, "x: missing string \"s\"");
    json_decref(arr);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_int),           cmocka_unit_test(test_u64),
        cmocka_unit_test(test_str),           cmocka_unit_test(test_real),
        cmocka_unit_test(test_bool),          cmocka_unit_test(test_array),
        cmocka_unit_test(test_not_an_object),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
