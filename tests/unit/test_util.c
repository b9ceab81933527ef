/* Unit tests of common/util.c: known SHA-256 vectors, hex, ids, parsing tables, files, directory
 * fsync, array and ring-buffer growth. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/err.h"
#include "common/util.h"
#include "testutil.h"

static void test_sha256(void **state) {
    (void)state;
    char out[65];
    weir_sha256_hex("abc", 3, out);
    assert_string_equal(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    weir_sha256_hex("", 0, out);
    assert_string_equal(out, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *s = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    weir_sha256_hex(s, strlen(s), out);
    assert_string_equal(out, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_hex(void **state) {
    (void)state;
    const uint8_t in[] = {0x00, 0xff, 0x1a, 0x80, 0x09};
    char out[11];
    weir_hex_encode(in, sizeof in, out);
    assert_string_equal(out, "00ff1a8009");
    uint8_t back[5] = {0};
    assert_int_equal(weir_hex_decode("00FF1a8009", back, 5), 0);
    assert_memory_equal(back, in, 5);
    assert_int_equal(weir_hex_decode("0g", back, 1), WEIR_EINVAL);
    assert_int_equal(weir_hex_decode("0", back, 1), WEIR_EINVAL);
    assert_int_equal(weir_hex_decode("", back, 1), WEIR_EINVAL);
}

static void test_ids(void **state) {
    (void)state;
    char a[33], b[33];
    assert_int_equal(weir_new_id(a), 0);
    assert_int_equal(weir_new_id(b), 0);
    assert_int_equal(strlen(a), 32);
    assert_int_equal(strspn(a, "0123456789abcdef"), 32);
    assert_string_not_equal(a, b);
    uint8_t r[64] = {0};
    assert_int_equal(weir_random_bytes(r, sizeof r), 0);
    int nonzero = 0;
    for (size_t i = 0; i < sizeof r; i++)
        nonzero += r[i] != 0;
    assert_true(nonzero > 32); /* P(fail) is astronomically small */
}

static void test_clocks(void **state) {
    (void)state;
    int64_t t0 = weir_now_ns();
    weir_sleep_ns(20 * 1000000LL);
    int64_t t1 = weir_now_ns();
    assert_true(t1 - t0 >= 20 * 1000000LL);
    assert_true(t1 - t0 < 2000 * 1000000LL);
    int64_t wall = weir_wall_ms();
    int64_t now_s = (int64_t)time(NULL);
    assert_true(wall / 1000 >= now_s - 1 && wall / 1000 <= now_s + 1);
}

static void test_parse_duration(void **state) {
    (void)state;
    static const struct {
        const char *s;
        int64_t ms;
    } ok[] = {{"500ms", 500}, {"10s", 10000},     {"2min", 120000}, {"1h", 3600000},
              {"250", 250},   {"5 min", 300000},  {"3m", 180000},   {"1d", 86400000},
              {"0", 0},       {"7 SECONDS", 7000}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t v = -1;
        assert_int_equal(weir_parse_duration_ms(ok[i].s, &v), 0);
        assert_int_equal(v, ok[i].ms);
    }
    static const char *bad[] = {"",     "abc", "10x",    "-5s",
                                "1.5s", "s",   "10 s x", "99999999999999999999ms"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t v;
        assert_int_equal(weir_parse_duration_ms(bad[i], &v), WEIR_EINVAL);
    }
}

static void test_parse_bytes(void **state) {
    (void)state;
    static const struct {
        const char *s;
        uint64_t v;
    } ok[] = {{"32kb", 32768},         {"64mb", 67108864}, {"1gb", 1073741824ULL},
              {"4096", 4096},          {"8KiB", 8192},     {"2m", 2097152},
              {"1 GB", 1073741824ULL}, {"3b", 3},          {"1t", 1099511627776ULL}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        uint64_t v = 0;
        assert_int_equal(weir_parse_bytes(ok[i].s, &v), 0);
        assert_true(v == ok[i].v);
    }
    static const char *bad[] = {"", "kb", "12xb", "-1", "1.5mb", "99999999999999999999gb"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v;
        assert_int_equal(weir_parse_bytes(bad[i], &v), WEIR_EINVAL);
    }
}

static void test_parse_bool_int(void **state) {
    (void)state;
    bool b = false;
    assert_int_equal(weir_parse_bool("true", &b), 0);
    assert_true(b);
    assert_int_equal(weir_parse_bool("No", &b), 0);
    assert_false(b);
    assert_int_equal(weir_parse_bool("1", &b), 0);
    assert_true(b);
    assert_int_equal(weir_parse_bool("0", &b), 0);
    assert_false(b);
    assert_int_equal(weir_parse_bool("maybe", &b), WEIR_EINVAL);
    assert_int_equal(weir_parse_bool("", &b), WEIR_EINVAL);

    int64_t v = 0;
    assert_int_equal(weir_parse_int("8081", 0, 65535, &v), 0);
    assert_int_equal(v, 8081);
    assert_int_equal(weir_parse_int("-3", -10, 10, &v), 0);
    assert_int_equal(v, -3);
    assert_int_equal(weir_parse_int("65536", 0, 65535, &v), WEIR_EINVAL);
    assert_int_equal(weir_parse_int("abc", 0, 100, &v), WEIR_EINVAL);
    assert_int_equal(weir_parse_int("12abc", 0, 100, &v), WEIR_EINVAL);
    assert_int_equal(weir_parse_int("", 0, 100, &v), WEIR_EINVAL);
    assert_int_equal(weir_parse_int("0x10", 0, 100, &v), WEIR_EINVAL);
    assert_int_equal(weir_parse_int("99999999999999999999", INT64_MIN, INT64_MAX, &v), WEIR_EINVAL);
}

static void test_fmt(void **state) {
    (void)state;
    char buf[8];
    int n = weir_fmt(buf, sizeof buf, "%s-%d", "abcdef", 12345);
    assert_int_equal(n, 12);
    assert_string_equal(buf, "abcdef-");
}

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static void test_files(void **state) {
    (void)state;
    char *dir = weir_test_tmpdir("test_util");
    char path[512];

    snprintf(path, sizeof path, "%s/missing", dir);
    uint8_t *data;
    size_t len;
    assert_int_equal(weir_read_file(path, &data, &len), WEIR_ENOTFOUND);

    snprintf(path, sizeof path, "%s/a.txt", dir);
    assert_int_equal(weir_write_file_atomic(path, "hello", 5), 0);
    assert_int_equal(weir_read_file(path, &data, &len), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(data, "hello", 5);
    assert_int_equal(data[5], 0);
    free(data);

    /* Overwrite with a larger file (more than the initial read chunk) */
    size_t big = 100000;
    uint8_t *blob = malloc(big);
    for (size_t i = 0; i < big; i++)
        blob[i] = (uint8_t)(i * 7 + 3);
    assert_int_equal(weir_write_file_atomic(path, blob, big), 0);
    assert_int_equal(weir_read_file(path, &data, &len), 0);
    assert_int_equal(len, big);
    assert_memory_equal(data, blob, big);
    free(data);
    free(blob);
    assert_int_equal(count_entries(dir), 1); /* no temp file left behind */

    /* Empty file */
    snprintf(path, sizeof path, "%s/empty", dir);
    assert_int_equal(weir_write_file_atomic(path, "", 0), 0);
    assert_int_equal(weir_read_file(path, &data, &len), 0);
    assert_int_equal(len, 0);
    free(data);

    /* Writing into a missing directory fails cleanly */
    snprintf(path, sizeof path, "%s/no/such/dir/x", dir);
    assert_int_equal(weir_write_file_atomic(path, "x", 1), WEIR_EIO);

    /* mkdirs + rmtree */
    snprintf(path, sizeof path, "%s/x/y/z", dir);
    assert_int_equal(weir_mkdirs(path), 0);
    assert_int_equal(weir_mkdirs(path), 0); /* idempotent */
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    char fpath[600];
    snprintf(fpath, sizeof fpath, "%s/f", path);
    assert_int_equal(weir_write_file_atomic(fpath, "1", 1), 0);
    snprintf(path, sizeof path, "%s/x/y/z/f", dir);
    assert_int_equal(weir_mkdirs(path), WEIR_EIO); /* a file is in the way */
    snprintf(path, sizeof path, "%s/x", dir);
    assert_int_equal(weir_rmtree(path), 0);
    assert_int_not_equal(stat(path, &st), 0);
    assert_int_equal(weir_rmtree(path), 0); /* missing is fine */

    assert_int_equal(weir_rmtree(dir), 0);
    assert_int_not_equal(stat(dir, &st), 0);
    free(dir);
}

static void test_fsync_dir(void **state) {
    (void)state;
    char *dir = weir_test_tmpdir("test_util");
    assert_int_equal(weir_fsync_dir(dir), 0);
    char missing[600];
    snprintf(missing, sizeof missing, "%s/missing", dir);
    assert_int_equal(weir_fsync_dir(missing), WEIR_EIO);
    weir_test_tmpdir_remove(dir);
}

static void test_array_grow(void **state) {
    (void)state;
    /* from nothing: the first allocation is min_cap elements */
    int *a = NULL;
    size_t cap = 0;
    assert_int_equal(weir_array_grow((void **)&a, &cap, 1, sizeof *a, 4), 0);
    assert_non_null(a);
    assert_int_equal(cap, 4);
    /* min_cap 0 starts at 1 and doubles until the need fits */
    int *b = NULL;
    size_t bcap = 0;
    assert_int_equal(weir_array_grow((void **)&b, &bcap, 3, sizeof *b, 0), 0);
    assert_int_equal(bcap, 4);
    free(b);
    /* from nothing with a need above min_cap: min_cap doubled until it fits */
    b = NULL;
    bcap = 0;
    assert_int_equal(weir_array_grow((void **)&b, &bcap, 9, sizeof *b, 4), 0);
    assert_int_equal(bcap, 16);
    free(b);

    /* growth keeps the contents */
    for (int i = 0; i < 4; i++)
        a[i] = 100 + i;
    assert_int_equal(weir_array_grow((void **)&a, &cap, 5, sizeof *a, 4), 0);
    assert_int_equal(cap, 8);
    for (int i = 0; i < 4; i++)
        assert_int_equal(a[i], 100 + i);

    /* a need that fits is a no-op: same array, same capacity */
    int *before = a;
    assert_int_equal(weir_array_grow((void **)&a, &cap, 8, sizeof *a, 4), 0);
    assert_ptr_equal(a, before);
    assert_int_equal(cap, 8);
    assert_int_equal(weir_array_grow((void **)&a, &cap, 0, sizeof *a, 4), 0);
    assert_ptr_equal(a, before);
    assert_int_equal(cap, 8);

    /* a capacity that cannot be reached: WEIR_ENOMEM, array and capacity unchanged */
    assert_int_equal(weir_array_grow((void **)&a, &cap, SIZE_MAX, sizeof *a, 4), WEIR_ENOMEM);
    assert_ptr_equal(a, before);
    assert_int_equal(cap, 8);
    for (int i = 0; i < 4; i++)
        assert_int_equal(a[i], 100 + i);
    free(a);
}

static void test_ring_grow(void **state) {
    (void)state;
    /* a full ring of 4 that wrapped: logical order 0 1 2 3 starts at index 2 */
    size_t cap = 4, head = 2, len = 4;
    int *ring = malloc(cap * sizeof *ring);
    assert_non_null(ring);
    for (size_t i = 0; i < len; i++)
        ring[(head + i) % cap] = (int)i;
    assert_int_equal(ring[0], 2);
    weir_ring_grow((void **)&ring, sizeof *ring, &head, len, &cap, 8);
    assert_int_equal(cap, 8);
    assert_int_equal(head, 0);
    for (size_t i = 0; i < len; i++)
        assert_int_equal(ring[i], (int)i);

    /* fill it, wrap it again and grow: order kept, capacity still a power of two */
    for (size_t i = len; i < cap; i++)
        ring[i] = (int)i;
    len = cap;
    head = 5; /* rotate: logical i at (5 + i) % 8 */
    int *rot = malloc(cap * sizeof *rot);
    assert_non_null(rot);
    for (size_t i = 0; i < len; i++)
        rot[(head + i) % cap] = ring[i];
    free(ring);
    ring = rot;
    weir_ring_grow((void **)&ring, sizeof *ring, &head, len, &cap, 8);
    assert_int_equal(cap, 16);
    assert_int_equal(cap & (cap - 1), 0);
    assert_int_equal(head, 0);
    for (size_t i = 0; i < len; i++)
        assert_int_equal(ring[i], (int)i);
    free(ring);

    /* an empty ring gets min_cap */
    int *empty = NULL;
    size_t ecap = 0, ehead = 0;
    weir_ring_grow((void **)&empty, sizeof *empty, &ehead, 0, &ecap, 8);
    assert_non_null(empty);
    assert_int_equal(ecap, 8);
    assert_int_equal(ehead, 0);
    free(empty);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256),
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_clocks),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_parse_bytes),
        cmocka_unit_test(test_parse_bool_int),
        cmocka_unit_test(test_fmt),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_fsync_dir),
        cmocka_unit_test(test_array_grow),
        cmocka_unit_test(test_ring_grow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
