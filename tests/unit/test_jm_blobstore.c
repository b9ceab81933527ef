/* Tests jobmanager/blobstore.c: put/get round trip, the sha256 of known strings (FIPS 180-2
 * vectors), idempotent put, a missing blob, an invalid name, the size limit, and a corrupted file
 * detected on get. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/util.h"
#include "jobmanager/blobstore.h"
#include "testutil.h"

typedef struct fixture {
    char *root;
    char dir[600];
    weir_blobstore_t *bs;
} fixture_t;

static int setup(void **state) {
    fixture_t *f = calloc(1, sizeof *f);
    f->root = weir_test_tmpdir("jmblob");
    /* a nested directory that does not exist yet: the store creates it */
    snprintf(f->dir, sizeof f->dir, "%s/a/blobs", f->root);
    char err[256];
    f->bs = weir_blobstore_new(f->dir, 1024, err, sizeof err);
    if (!f->bs)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture_t *f = *state;
    weir_blobstore_destroy(&f->bs);
    weir_test_tmpdir_remove(f->root);
    free(f);
    return 0;
}

static void test_known_sha_and_round_trip(void **state) {
    fixture_t *f = *state;
    char sha[65];
    assert_int_equal(weir_blobstore_put(f->bs, "abc", 3, sha), 0);
    assert_string_equal(sha, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    /* the file is named by the sha and holds the bytes */
    char path[800];
    snprintf(path, sizeof path, "%s/%s", f->dir, sha);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 3);
    assert_true(weir_blobstore_has(f->bs, sha));
    uint8_t *data = NULL;
    size_t len = 0;
    assert_int_equal(weir_blobstore_get(f->bs, sha, &data, &len), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(data, "abc", 3);
    free(data);
    /* second known vector, binary-safe content */
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    assert_int_equal(weir_blobstore_put(f->bs, two, strlen(two), sha), 0);
    assert_string_equal(sha, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    uint8_t bin[300];
    for (int i = 0; i < 300; i++)
        bin[i] = (uint8_t)(i * 7);
    assert_int_equal(weir_blobstore_put(f->bs, bin, sizeof bin, sha), 0);
    assert_int_equal(weir_blobstore_put(f->bs, bin, sizeof bin, sha), 0); /* again: no-op */
    assert_int_equal(weir_blobstore_get(f->bs, sha, &data, &len), 0);
    assert_int_equal(len, sizeof bin);
    assert_memory_equal(data, bin, sizeof bin);
    free(data);
}

static void test_missing_and_invalid(void **state) {
    fixture_t *f = *state;
    uint8_t *data = (uint8_t *)"x";
    size_t len = 5;
    const char *missing = "0000000000000000000000000000000000000000000000000000000000000000";
    assert_false(weir_blobstore_has(f->bs, missing));
    assert_int_equal(weir_blobstore_get(f->bs, missing, &data, &len), WEIR_ENOTFOUND);
    assert_null(data);
    assert_int_equal(len, 0);
    assert_int_equal(weir_blobstore_get(f->bs, "../../etc/passwd", &data, &len), WEIR_EINVAL);
    assert_false(weir_blobstore_valid_sha("ABCDEF"));
    assert_false(weir_blobstore_valid_sha(
        "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD")); /* upper case */
    assert_true(weir_blobstore_valid_sha(
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
}

static void test_size_limit(void **state) {
    fixture_t *f = *state;
    uint8_t big[1025];
    memset(big, 'z', sizeof big);
    char sha[65];
    assert_int_equal(weir_blobstore_put(f->bs, big, 1025, sha), WEIR_ENOSPACE);
    assert_int_equal(weir_blobstore_put(f->bs, big, 1024, sha), 0);
}

static void test_corrupt_detected(void **state) {
    fixture_t *f = *state;
    char sha[65];
    assert_int_equal(weir_blobstore_put(f->bs, "hello plugin", 12, sha), 0);
    char path[800];
    snprintf(path, sizeof path, "%s/%s", f->dir, sha);
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    fputc('H', fp); /* flip the first byte */
    fclose(fp);
    uint8_t *data = NULL;
    size_t len = 0;
    assert_int_equal(weir_blobstore_get(f->bs, sha, &data, &len), WEIR_ECORRUPT);
    assert_null(data);
}

static void test_unwritable_dir(void **state) {
    fixture_t *f = *state;
    /* a regular file where the directory should be */
    char path[800];
    snprintf(path, sizeof path, "%s/file", f->root);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fclose(fp);
    char sub[900];
    snprintf(sub, sizeof sub, "%s/blobs", path);
    char err[256] = "";
    weir_blobstore_t *bs = weir_blobstore_new(sub, 10, err, sizeof err);
    assert_null(bs);
    assert_non_null(strstr(err, "blob.storage.directory"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_known_sha_and_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_and_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_detected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unwritable_dir, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
