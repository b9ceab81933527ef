/* Unit tests of runtime/task/window.c's window assignment: tumbling panes (offset, negative
 * timestamps), sliding panes of gcd(size, slide) and the first/last window holding a pane,
 * session merging (overlap, the exactly-gap touch, bridging two sessions), spec checks. The
 * expected values come from a brute-force model over window starts, not from the code. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "runtime/task/window.h"

/* Brute force: the ends of the first and the last window [s, s+size), s = offset + k*slide,
 * holding the whole pane [ps, ps+pane). */
static void model_ends(int64_t size, int64_t slide, int64_t offset, int64_t pane, int64_t ps,
                       int64_t *first, int64_t *last) {
    *first = INT64_MAX;
    *last = INT64_MIN;
    for (int64_t k = -1000; k <= 1000; k++) {
        int64_t s = offset + k * slide;
        if (s <= ps && ps + pane <= s + size) {
            if (s + size < *first)
                *first = s + size;
            if (s + size > *last)
                *last = s + size;
        }
    }
}

static void check_sliding(int64_t size, int64_t slide, int64_t offset, int64_t pane) {
    weir_window_spec_t s = {.kind = size == slide ? WEIR_WINDOW_TUMBLING : WEIR_WINDOW_SLIDING,
                            .size_ms = size,
                            .slide_ms = slide,
                            .offset_ms = offset};
    for (int64_t ts = -3 * size - 7; ts < 3 * size + 7; ts++) {
        int64_t ps = weir__window_pane_start(&s, pane, ts);
        assert_true(ps <= ts && ts < ps + pane);
        assert_int_equal(((ps - offset) % pane + pane) % pane, 0);
        int64_t f, l, mf, ml;
        weir__window_pane_ends(&s, pane, ps, &f, &l);
        model_ends(size, slide, offset, pane, ps, &mf, &ml);
        assert_int_equal(f, mf);
        assert_int_equal(l, ml);
        if (pane == slide) /* then every pane is in size/slide windows */
            assert_int_equal((l - f) / slide + 1, size / slide);
    }
}

static void test_tumbling(void **state) {
    (void)state;
    weir_window_spec_t s = {.kind = WEIR_WINDOW_TUMBLING, .size_ms = 1000};
    assert_int_equal(weir__window_pane_start(&s, 1000, 1999), 1000);
    assert_int_equal(weir__window_pane_start(&s, 1000, 2000), 2000);
    assert_int_equal(weir__window_pane_start(&s, 1000, -1), -1000); /* negative: floor */
    assert_int_equal(weir__window_pane_start(&s, 1000, -1000), -1000);
    assert_int_equal(weir__window_pane_start(&s, 1000, -1001), -2000);
    s.offset_ms = 300;
    assert_int_equal(weir__window_pane_start(&s, 1000, 299), -700);
    assert_int_equal(weir__window_pane_start(&s, 1000, 300), 300);
    check_sliding(10, 10, 0, 10);
    check_sliding(10, 10, 3, 10);
}

static void test_sliding_panes(void **state) {
    (void)state;
    check_sliding(40, 10, 0, 10); /* 4 s every 1 s: panes of the slide */
    check_sliding(10, 4, 0, 2);   /* gcd 2: a window is 5 panes, a pane in 2 or 3 windows... */
    check_sliding(10, 4, 3, 2);   /* ... with an offset */
    check_sliding(60, 1, 0, 1);
    check_sliding(60, 30, -5, 30);
}

static void test_session_merge(void **state) {
    (void)state;
    int64_t s, e;
    weir__window_session_merge(NULL, 0, 100, 50, &s, &e);
    assert_true(s == 100 && e == 150);
    weir_window_session_t one[] = {{100, 150}};
    weir__window_session_merge(one, 1, 150, 50, &s, &e); /* exactly gap after: continues */
    assert_true(s == 100 && e == 200);
    weir__window_session_merge(one, 1, 151, 50, &s, &e); /* one past: a new session */
    assert_true(s == 151 && e == 201);
    weir__window_session_merge(one, 1, 50, 50, &s, &e); /* ends exactly at the start: touches */
    assert_true(s == 50 && e == 150);
    weir__window_session_merge(one, 1, 49, 50, &s, &e);
    assert_true(s == 49 && e == 99);
    weir__window_session_merge(one, 1, 120, 50, &s, &e); /* inside */
    assert_true(s == 100 && e == 170);
    weir_window_session_t two[] = {{100, 150}, {180, 230}, {400, 450}};
    weir__window_session_merge(two, 3, 150, 50, &s, &e); /* bridges the first two */
    assert_true(s == 100 && e == 230);
    weir__window_session_merge(two, 3, 160, 50, &s, &e); /* 10 after the first's end */
    assert_true(s == 160 && e == 230);
    weir_window_session_t neg[] = {{-300, -250}};
    weir__window_session_merge(neg, 1, -250, 50, &s, &e); /* negative timestamps */
    assert_true(s == -300 && e == -200);
}

static void nop_create(msgpack_packer *o, void *u) {
    (void)o;
    (void)u;
}
static void nop_add(const msgpack_object *a, const weir_record_t *in, msgpack_packer *o, void *u) {
    (void)a;
    (void)in;
    (void)o;
    (void)u;
}
static void nop_merge(const msgpack_object *a, const msgpack_object *b, msgpack_packer *o,
                      void *u) {
    (void)a;
    (void)b;
    (void)o;
    (void)u;
}
static void nop_result(weir_ctx_t *c, const weir_window_t *w, const msgpack_object *a, void *u) {
    (void)c;
    (void)w;
    (void)a;
    (void)u;
}

static void test_spec_check(void **state) {
    (void)state;
    weir_aggregate_fns_t f = {nop_create, nop_add, NULL, nop_result};
    weir_window_spec_t s = {.kind = WEIR_WINDOW_TUMBLING, .size_ms = 1000};
    assert_null(weir__window_spec_check(&s, &f));
    s.size_ms = 0;
    assert_string_equal(weir__window_spec_check(&s, &f), "a tumbling window needs size_ms > 0");
    s = (weir_window_spec_t){.kind = WEIR_WINDOW_SLIDING, .size_ms = 4000, .slide_ms = 1000};
    assert_string_equal(weir__window_spec_check(&s, &f),
                        "a sliding window needs the merge function (panes)");
    s = (weir_window_spec_t){.kind = WEIR_WINDOW_SESSION};
    assert_string_equal(weir__window_spec_check(&s, &f), "a session window needs gap_ms > 0");
    s = (weir_window_spec_t){.kind = WEIR_WINDOW_TUMBLING, .size_ms = 1, .count_trigger = 3};
    assert_null(weir__window_spec_check(&s, &f));
    f.merge = nop_merge;
    s = (weir_window_spec_t){
        .kind = WEIR_WINDOW_SLIDING, .size_ms = 4, .slide_ms = 2, .count_trigger = 3};
    assert_non_null(weir__window_spec_check(&s, &f));
    f.merge = NULL;
    s = (weir_window_spec_t){.kind = WEIR_WINDOW_TUMBLING, .size_ms = 1, .allowed_lateness_ms = -1};
    assert_non_null(weir__window_spec_check(&s, &f));
    f.add = NULL;
    s.allowed_lateness_ms = 0;
    assert_non_null(weir__window_spec_check(&s, &f));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tumbling),
        cmocka_unit_test(test_sliding_panes),
        cmocka_unit_test(test_session_merge),
        cmocka_unit_test(test_spec_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
