/* Unit tests of the connectors' pure helpers (connectors/connectors_int.h): file listing and
 * split line reading, the part-file writer, value formatting, datagen values and indices, and the
 * rate schedule. Oracles are independent: line lists the test itself generated, known SplitMix64
 * vectors, brute-force index coverage, hand-computed schedules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/util.h"
#include "connectors/connectors_int.h"

/* ---- fixtures ------------------------------------------------------------------------- */

static char g_tmp[4096];

static int setup_tmp(void **state) {
    (void)state;
    const char *base = getenv("WEIR_TEST_TMP");
    if (!base || !*base)
        base = "/tmp";
    weir_mkdirs(base);
    snprintf(g_tmp, sizeof(g_tmp), "%s/test_connectors-XXXXXX", base);
    assert_non_null(mkdtemp(g_tmp));
    return 0;
}

static int teardown_tmp(void **state) {
    (void)state;
    assert_int_equal(weir_rmtree(g_tmp), 0);
    return 0;
}

static void write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (len)
        assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static char *read_all(const char *path, size_t *len) {
    uint8_t *data;
    assert_int_equal(weir_read_file(path, &data, len), 0);
    return (char *)data;
}

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* Test PRNG (xorshift64*), independent of the code under test. */
static uint64_t rnd(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

/* A list of lines collected from readers. */
typedef struct lines {
    char **v;
    size_t n, cap;
} lines_t;

static void lines_add(lines_t *l, const char *s, size_t len) {
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = realloc(l->v, l->cap * sizeof(*l->v));
        assert_non_null(l->v);
    }
    char *c = malloc(len + 1);
    assert_non_null(c);
    memcpy(c, s, len);
    c[len] = 0;
    l->v[l->n++] = c;
}

static void lines_free(lines_t *l) {
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

/* Reads all splits of @p path for parallelism @p p, in subtask order, into @p out. */
static void read_splits(const char *path, uint32_t p, size_t bufsize, lines_t *out) {
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    for (uint32_t i = 0; i < p; i++) {
        uint64_t start, end;
        weir__split_range((uint64_t)st.st_size, i, p, &start, &end);
        weir_line_reader_t r;
        assert_int_equal(weir__line_reader_open(&r, path, start, end, bufsize), 0);
        const char *line;
        size_t len;
        int rc;
        while ((rc = weir__line_reader_next(&r, &line, &len)) == 1)
            lines_add(out, line, len);
        assert_int_equal(rc, 0);
        weir__line_reader_close(&r);
    }
}

static void assert_lines(const lines_t *got, const char *const *want, size_t n) {
    assert_int_equal(got->n, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(got->v[i], want[i]);
}

/* ---- split ranges and line reading ----------------------------------------------------- */

static void test_split_range(void **state) {
    (void)state;
    uint64_t s, e, prev_end = 0;
    for (uint32_t i = 0; i < 3; i++) {
        weir__split_range(10, i, 3, &s, &e);
        assert_int_equal(s, prev_end);
        prev_end = e;
    }
    assert_int_equal(prev_end, 10);
    weir__split_range(10, 1, 3, &s, &e);
    assert_int_equal(s, 3); /* 10*1/3 */
    assert_int_equal(e, 6); /* 10*2/3 */
}

static void test_random_files_every_line_once(void **state) {
    (void)state;
    uint64_t seed = 0x1234567;
    char path[4200];
    snprintf(path, sizeof(path), "%s/random.txt", g_tmp);
    for (int round = 0; round < 30; round++) {
        size_t nlines = rnd(&seed) % 60;
        bool trailing_nl = rnd(&seed) % 2;
        lines_t want = {0};
        size_t cap = 1 << 16, len = 0;
        char *content = malloc(cap);
        assert_non_null(content);
        for (size_t i = 0; i < nlines; i++) {
            size_t ll = (rnd(&seed) % 4 == 0) ? 0 : rnd(&seed) % 120;
            if (round % 7 == 6)
                ll = rnd(&seed) % 3000; /* long lines: force buffer growth */
            char buf[3000];
            for (size_t k = 0; k < ll; k++) {
                char c = (char)(' ' + rnd(&seed) % 95); /* printable, no '\n' or '\r' */
                buf[k] = c;
            }
            while (len + ll + 2 > cap) {
                cap *= 2;
                content = realloc(content, cap);
                assert_non_null(content);
            }
            memcpy(content + len, buf, ll);
            len += ll;
            bool last = i + 1 == nlines;
            if (!last || trailing_nl)
                content[len++] = '\n';
            /* A final empty line without '\n' is not a line. */
            if (!(last && !trailing_nl && ll == 0))
                lines_add(&want, buf, ll);
        }
        write_file(path, content, len);
        for (uint32_t p = 1; p <= 5; p++) {
            size_t bufs[] = {16, 1 << 20};
            for (int b = 0; b < 2; b++) {
                lines_t got = {0};
                read_splits(path, p, bufs[b], &got);
                assert_lines(&got, (const char *const *)want.v, want.n);
                lines_free(&got);
            }
        }
        lines_free(&want);
        free(content);
    }
}

static void test_crlf(void **state) {
    (void)state;
    char path[4200];
    snprintf(path, sizeof(path), "%s/crlf.txt", g_tmp);
    const char text[] = "alpha\r\nbeta\r\n\r\ngam\rma\r\n";
    write_file(path, text, sizeof(text) - 1);
    const char *want[] = {"alpha", "beta", "", "gam\rma"};
    for (uint32_t p = 1; p <= 5; p++) {
        lines_t got = {0};
        read_splits(path, p, 64, &got);
        assert_lines(&got, want, 4);
        lines_free(&got);
    }
}

static void test_no_trailing_newline(void **state) {
    (void)state;
    char path[4200];
    snprintf(path, sizeof(path), "%s/nonl.txt", g_tmp);
    write_file(path, "one\ntwo\nthree", 13);
    const char *want[] = {"one", "two", "three"};
    for (uint32_t p = 1; p <= 5; p++) {
        lines_t got = {0};
        read_splits(path, p, 1 << 20, &got);
        assert_lines(&got, want, 3);
        lines_free(&got);
    }
}

static void test_empty_file(void **state) {
    (void)state;
    char path[4200];
    snprintf(path, sizeof(path), "%s/empty.txt", g_tmp);
    write_file(path, "", 0);
    for (uint32_t p = 1; p <= 5; p++) {
        lines_t got = {0};
        read_splits(path, p, 1 << 20, &got);
        assert_int_equal(got.n, 0);
        lines_free(&got);
    }
    /* A file with only a newline has one empty line. */
    write_file(path, "\n", 1);
    const char *want[] = {""};
    for (uint32_t p = 1; p <= 3; p++) {
        lines_t got = {0};
        read_splits(path, p, 1 << 20, &got);
        assert_lines(&got, want, 1);
        lines_free(&got);
    }
}

static void test_directory_listing(void **state) {
    (void)state;
    char dir[4200], p[4300];
    snprintf(dir, sizeof(dir), "%s/in", g_tmp);
    assert_int_equal(weir_mkdirs(dir), 0);
    snprintf(p, sizeof(p), "%s/b.txt", dir);
    write_file(p, "b1\nb2\n", 6);
    snprintf(p, sizeof(p), "%s/a.txt", dir);
    write_file(p, "a1\n", 3);
    snprintf(p, sizeof(p), "%s/c.txt", dir);
    write_file(p, "c1\nc2\nc3", 8);
    snprintf(p, sizeof(p), "%s/.hidden", dir);
    write_file(p, "h\n", 2);
    snprintf(p, sizeof(p), "%s/sub", dir);
    assert_int_equal(weir_mkdirs(p), 0);
    snprintf(p, sizeof(p), "%s/sub/z.txt", dir);
    write_file(p, "z\n", 2);

    char **files;
    size_t n;
    char err[256];
    assert_int_equal(weir__file_list(dir, &files, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 3);
    const char *names[] = {"a.txt", "b.txt", "c.txt"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
        assert_string_equal(files[i], p);
    }
    /* Every line of every file, once, for several parallelisms. */
    const char *want[] = {"a1", "b1", "b2", "c1", "c2", "c3"};
    for (uint32_t par = 1; par <= 4; par++) {
        lines_t got = {0};
        for (size_t i = 0; i < n; i++)
            read_splits(files[i], par, 1 << 20, &got);
        assert_lines(&got, want, 6);
        lines_free(&got);
    }
    weir__file_list_free(files, n);

    /* A single file lists as itself. */
    snprintf(p, sizeof(p), "%s/a.txt", dir);
    assert_int_equal(weir__file_list(p, &files, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 1);
    assert_string_equal(files[0], p);
    weir__file_list_free(files, n);

    /* A missing path is an error naming the cause. */
    snprintf(p, sizeof(p), "%s/missing", g_tmp);
    assert_int_equal(weir__file_list(p, &files, &n, err, sizeof(err)), WEIR_ENOTFOUND);
    assert_non_null(strstr(err, "No such file"));
    weir_line_reader_t r;
    assert_int_equal(weir__line_reader_open(&r, p, 0, 10, 64), WEIR_ENOTFOUND);
}

/* ---- part-file writer ------------------------------------------------------------------ */

static void test_part_writer(void **state) {
    (void)state;
    char dir[4200], inprog[4300], final[4300];
    snprintf(dir, sizeof(dir), "%s/out/nested", g_tmp);
    weir_part_writer_t w;
    char err[256];
    assert_int_equal(weir__part_writer_init(&w, dir, 3, WEIR_PART_ROLL_BYTES, err, sizeof(err)), 0);
    snprintf(inprog, sizeof(inprog), "%s/.part-3-0.inprogress", dir);
    snprintf(final, sizeof(final), "%s/part-3-0", dir);
    assert_false(exists(inprog)); /* opened lazily */
    assert_int_equal(weir__part_writer_line(&w, "hello world", 11), 0);
    assert_int_equal(weir__part_writer_line(&w, "", 0), 0);
    assert_int_equal(weir__part_writer_line(&w, "x", 1), 0);
    assert_true(exists(inprog));
    assert_false(exists(final));
    assert_int_equal(weir__part_writer_finish(&w), 0);
    assert_false(exists(inprog));
    assert_true(exists(final));
    size_t len;
    char *data = read_all(final, &len);
    assert_int_equal(len, 15);
    assert_memory_equal(data, "hello world\n\nx\n", 15);
    free(data);
    /* The next line starts part 1. */
    assert_int_equal(weir__part_writer_line(&w, "again", 5), 0);
    snprintf(inprog, sizeof(inprog), "%s/.part-3-1.inprogress", dir);
    assert_true(exists(inprog));
    /* Cancel: the in-progress file disappears, finished ones stay. */
    weir__part_writer_destroy(&w);
    assert_false(exists(inprog));
    assert_true(exists(final));
    snprintf(final, sizeof(final), "%s/part-3-1", dir);
    assert_false(exists(final));
}

static void test_part_writer_roll(void **state) {
    (void)state;
    char dir[4200], p[4300];
    snprintf(dir, sizeof(dir), "%s/roll", g_tmp);
    weir_part_writer_t w;
    char err[256];
    assert_int_equal(weir__part_writer_init(&w, dir, 0, 10, err, sizeof(err)), 0);
    /* 4-byte lines + '\n' = 5 bytes: a file rolls once it holds more than 10 bytes (3 lines). */
    for (int i = 0; i < 7; i++) {
        char line[8];
        snprintf(line, sizeof(line), "L%03d", i);
        assert_int_equal(weir__part_writer_line(&w, line, 4), 0);
    }
    assert_int_equal(weir__part_writer_finish(&w), 0);
    const char *want[] = {"L000\nL001\nL002\n", "L003\nL004\nL005\n", "L006\n"};
    for (int n = 0; n < 3; n++) {
        snprintf(p, sizeof(p), "%s/part-0-%d", dir, n);
        size_t len;
        char *data = read_all(p, &len);
        assert_int_equal(len, strlen(want[n]));
        assert_memory_equal(data, want[n], len);
        free(data);
    }
    snprintf(p, sizeof(p), "%s/part-0-3", dir);
    assert_false(exists(p));
    weir__part_writer_destroy(&w);
}

static void test_part_writer_bad_dir(void **state) {
    (void)state;
    char file[4200], dir[4300];
    snprintf(file, sizeof(file), "%s/plainfile", g_tmp);
    write_file(file, "x", 1);
    snprintf(dir, sizeof(dir), "%s/sub", file); /* below a regular file: cannot exist */
    weir_part_writer_t w;
    char err[512] = "";
    assert_int_equal(weir__part_writer_init(&w, dir, 0, 100, err, sizeof(err)), WEIR_EIO);
    assert_non_null(strstr(err, dir));
}

/* ---- value formatting ------------------------------------------------------------------ */

static void fmt_check(weir_value_fmt_t *f, void (*pack)(msgpack_packer *), const char *want) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack(&pk);
    const char *text;
    size_t len;
    assert_int_equal(weir__value_text(f, sb.data, sb.size, &text, &len), 0);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(text, want, len);
    msgpack_sbuffer_destroy(&sb);
}

static void pack_str(msgpack_packer *pk) {
    msgpack_pack_str(pk, 5);
    msgpack_pack_str_body(pk, "hi yo", 5);
}
static void pack_long_str(msgpack_packer *pk) {
    char buf[300];
    memset(buf, 'q', sizeof(buf));
    msgpack_pack_str(pk, sizeof(buf)); /* str16 header */
    msgpack_pack_str_body(pk, buf, sizeof(buf));
}
static void pack_bin(msgpack_packer *pk) {
    msgpack_pack_bin(pk, 3);
    msgpack_pack_bin_body(pk, "a\0b", 3);
}
static void pack_int(msgpack_packer *pk) {
    msgpack_pack_uint64(pk, 42);
}
static void pack_arr(msgpack_packer *pk) {
    msgpack_pack_array(pk, 2);
    msgpack_pack_int(pk, 1);
    msgpack_pack_int(pk, -2);
}
static void pack_big_array(msgpack_packer *pk) {
    msgpack_pack_array(pk, 3000); /* text larger than the initial buffer */
    for (int i = 0; i < 3000; i++)
        msgpack_pack_int(pk, 7);
}

static void test_value_text(void **state) {
    (void)state;
    weir_value_fmt_t f;
    assert_int_equal(weir__value_fmt_init(&f), 0);
    fmt_check(&f, pack_str, "hi yo");
    char q[301];
    memset(q, 'q', 300);
    q[300] = 0;
    fmt_check(&f, pack_long_str, q);
    fmt_check(&f, pack_int, "42");
    fmt_check(&f, pack_arr, "[1, -2]");
    /* bin: raw bytes, including the NUL */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack_bin(&pk);
    const char *text;
    size_t len;
    assert_int_equal(weir__value_text(&f, sb.data, sb.size, &text, &len), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(text, "a\0b", 3);
    msgpack_sbuffer_destroy(&sb);
    /* big array: 3000 times "7" separated by ", " plus brackets */
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack_big_array(&pk);
    assert_int_equal(weir__value_text(&f, sb.data, sb.size, &text, &len), 0);
    assert_int_equal(len, 2 + 3000 + 2 * 2999);
    assert_true(text[0] == '[' && text[len - 1] == ']');
    msgpack_sbuffer_destroy(&sb);
    /* truncated str header: not a valid value */
    const char bad[] = {(char)0xa5, 'a'};
    assert_int_equal(weir__value_text(&f, bad, sizeof(bad), &text, &len), 0);
    assert_int_equal(len, strlen("<invalid msgpack>"));
    assert_memory_equal(text, "<invalid msgpack>", len);
    weir__value_fmt_destroy(&f);
}

/* ---- datagen ------------------------------------------------------------------------------ */

static void test_splitmix_vectors(void **state) {
    (void)state;
    /* The SplitMix64 generator seeded with 0 yields these (reference sequence). */
    assert_true(weir__splitmix64(0) == 0xe220a8397b1dcdafull);
    assert_true(weir__splitmix64(0x9e3779b97f4a7c15ull) == 0x6e789e6aa1b965f4ull);
    assert_true(weir__splitmix64(2 * 0x9e3779b97f4a7c15ull) == 0x06c45d188009454full);
}

static void test_datagen_values(void **state) {
    (void)state;
    weir_datagen_opts_t o = {0};
    o.kind = WEIR_DATAGEN_SEQUENCE;
    o.start = 100;
    assert_true(weir__datagen_value(&o, 0) == 100);
    assert_true(weir__datagen_value(&o, 41) == 141);
    o.kind = WEIR_DATAGEN_RANDOM;
    o.seed = 0;
    o.random_max = 0;
    assert_true(weir__datagen_value(&o, 0) == 0xe220a8397b1dcdafull);
    o.random_max = 1000;
    assert_true(weir__datagen_value(&o, 0) == 0xe220a8397b1dcdafull % 1000);
    o.seed = 5;
    for (uint64_t i = 0; i < 10000; i++) {
        uint64_t v = weir__datagen_value(&o, i);
        assert_true(v < 1000);
        assert_true(v == weir__datagen_value(&o, i)); /* deterministic */
    }
    uint8_t k[8];
    weir__be64(0x0102030405060708ull, k);
    const uint8_t want[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    assert_memory_equal(k, want, 8);
}

static void test_datagen_indices(void **state) {
    (void)state;
    for (uint64_t count = 1; count <= 23; count++) {
        for (uint32_t p = 1; p <= 5; p++) {
            uint32_t seen[32] = {0};
            for (uint32_t s = 0; s < p; s++) {
                weir_index_cursor_t c;
                weir__cursor_init(&c, s, p, count);
                uint64_t prev = 0;
                bool first = true;
                while (weir__cursor_more(&c)) {
                    uint64_t i = weir__cursor_take(&c);
                    assert_true(i < count);
                    assert_int_equal(i % p, s);
                    if (!first)
                        assert_int_equal(i, prev + p);
                    assert_true(first ? i == s : true);
                    first = false;
                    prev = i;
                    seen[i]++;
                }
            }
            for (uint64_t i = 0; i < count; i++)
                assert_int_equal(seen[i], 1); /* every index exactly once */
        }
    }
    /* count 0 = unbounded */
    weir_index_cursor_t c;
    weir__cursor_init(&c, 2, 3, 0);
    for (int i = 0; i < 1000; i++) {
        assert_true(weir__cursor_more(&c));
        assert_int_equal(weir__cursor_take(&c), 2 + 3 * (uint64_t)i);
    }
}

/* ---- rate schedule --------------------------------------------------------------------- */

static void test_rate_schedule(void **state) {
    (void)state;
    weir_rate_t r;
    int64_t wake = -1;
    /* Unlimited: the whole budget, whenever. */
    weir__rate_init(&r, 0, 4);
    assert_int_equal(weir__rate_permits(&r, 123, 500, &wake), 500);
    assert_int_equal(wake, -1);

    /* 100/s over 4 subtasks = 25/s here: one record every 40 ms. */
    const int64_t t0 = 5000000000;
    const int64_t ms = 1000000;
    weir__rate_init(&r, 100, 4);
    assert_int_equal(weir__rate_permits(&r, t0, 100, &wake), 1); /* record 0 due at t0 */
    weir__rate_note(&r, 1);
    assert_int_equal(weir__rate_permits(&r, t0 + 10 * ms, 100, &wake), 0);
    assert_int_equal(wake, t0 + 40 * ms);
    assert_int_equal(weir__rate_permits(&r, t0 + 40 * ms, 100, &wake), 1);
    weir__rate_note(&r, 1);
    /* At t0 + 1 s records 0..25 are due (26); 2 were emitted. */
    assert_int_equal(weir__rate_permits(&r, t0 + 1000 * ms, 100, &wake), 24);
    /* The budget caps a catch-up. */
    assert_int_equal(weir__rate_permits(&r, t0 + 1000 * ms, 5, &wake), 5);
    weir__rate_note(&r, 24);
    wake = -1;
    assert_int_equal(weir__rate_permits(&r, t0 + 1000 * ms, 100, &wake), 0);
    assert_int_equal(wake, t0 + 1040 * ms);
    assert_int_equal(weir__rate_due_ns(&r, 50), t0 + 2000 * ms);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_range),
        cmocka_unit_test_setup_teardown(test_random_files_every_line_once, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_crlf, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_no_trailing_newline, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_empty_file, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_directory_listing, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_part_writer, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_part_writer_roll, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_part_writer_bad_dir, setup_tmp, teardown_tmp),
        cmocka_unit_test(test_value_text),
        cmocka_unit_test(test_splitmix_vectors),
        cmocka_unit_test(test_datagen_values),
        cmocka_unit_test(test_datagen_indices),
        cmocka_unit_test(test_rate_schedule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
