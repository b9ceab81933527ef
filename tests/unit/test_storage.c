/* Unit tests of storage/ (storage.c and the POSIX backend posix.c): location URIs (check,
 * canonical form, join, parent, base), key rules, the env's settings and their bounds, and every
 * operation of the POSIX backend against the file system as coreutils-level facts (the file's
 * bytes, what the directory holds, hidden temporary files never listed), the counters, and
 * put_files with more files than upload slots. The S3 backend and the conformance of both
 * backends to one behaviour are tested against a real S3 server elsewhere (storage/README.md). */
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

#include "common/config.h"
#include "common/err.h"
#include "common/util.h"
#include "storage/storage.h"
#include "testutil.h"

static void test_uri_check(void **state) {
    (void)state;
    char err[256];
    assert_int_equal(weir_storage_uri_check("s3://bucket/a/b", err, sizeof err), 0);
    assert_int_equal(weir_storage_uri_check("s3://my-bucket", err, sizeof err), 0);
    assert_int_equal(weir_storage_uri_check("/var/weir", err, sizeof err), 0);
    assert_int_equal(weir_storage_uri_check("file:///var/weir", err, sizeof err), 0);
    assert_int_equal(weir_storage_uri_check("s3://Bad_Bucket/x", err, sizeof err), WEIR_ECONFIG);
    assert_non_null(strstr(err, "bad bucket name"));
    assert_int_equal(weir_storage_uri_check("s3://ab", err, sizeof err), WEIR_ECONFIG);
    assert_int_equal(weir_storage_uri_check("relative/dir", err, sizeof err), WEIR_ECONFIG);
    assert_non_null(strstr(err, "relative path"));
    assert_int_equal(weir_storage_uri_check("gs://bucket/x", err, sizeof err), WEIR_ECONFIG);
    assert_non_null(strstr(err, "unknown scheme"));
    assert_int_equal(weir_storage_uri_check("/a/../b", err, sizeof err), WEIR_ECONFIG);
    assert_int_equal(weir_storage_uri_check("s3://bucket/a/./b", err, sizeof err), WEIR_ECONFIG);
    assert_int_equal(weir_storage_uri_check("file://rel", err, sizeof err), WEIR_ECONFIG);
    assert_int_equal(weir_storage_uri_check("", err, sizeof err), WEIR_ECONFIG);
}

static void test_uri_join_parent_base(void **state) {
    (void)state;
    char out[256];
    assert_int_equal(weir_storage_uri_join("s3://bucket/p/", "job/chk-3", out, sizeof out), 0);
    assert_string_equal(out, "s3://bucket/p/job/chk-3");
    assert_int_equal(weir_storage_uri_join("s3://bucket", "a", out, sizeof out), 0);
    assert_string_equal(out, "s3://bucket/a");
    assert_int_equal(weir_storage_uri_join("//var//weir/", "", out, sizeof out), 0);
    assert_string_equal(out, "/var/weir");
    assert_int_equal(weir_storage_uri_join("file:///x", "y/z", out, sizeof out), 0);
    assert_string_equal(out, "/x/y/z");
    assert_int_equal(weir_storage_uri_join("/", "y", out, sizeof out), 0);
    assert_string_equal(out, "/y");
    assert_int_equal(weir_storage_uri_join("/x", "../y", out, sizeof out), WEIR_EINVAL);
    assert_int_equal(weir_storage_uri_join("/x", "a//b", out, sizeof out), WEIR_EINVAL);
    assert_int_equal(weir_storage_uri_join("/x", "y", out, 4), WEIR_EINVAL);

    assert_int_equal(weir_storage_uri_parent("s3://bucket/p/job/chk-3", out, sizeof out), 0);
    assert_string_equal(out, "s3://bucket/p/job");
    assert_int_equal(weir_storage_uri_parent("s3://bucket/p", out, sizeof out), 0);
    assert_string_equal(out, "s3://bucket");
    assert_int_equal(weir_storage_uri_parent("s3://bucket", out, sizeof out), WEIR_EINVAL);
    assert_int_equal(weir_storage_uri_parent("/a/b/", out, sizeof out), 0);
    assert_string_equal(out, "/a");
    assert_int_equal(weir_storage_uri_parent("/a", out, sizeof out), 0);
    assert_string_equal(out, "/");
    assert_int_equal(weir_storage_uri_parent("/", out, sizeof out), WEIR_EINVAL);

    assert_string_equal(weir_storage_uri_base("s3://bucket/job/chk-7"), "chk-7");
    assert_string_equal(weir_storage_uri_base("/a/sp-1/"), "sp-1/");
}

static void test_env_settings(void **state) {
    (void)state;
    char err[256];
    weir_config_t *cfg = weir_config_new();
    weir_storage_env_t *env = weir_storage_env_new(cfg, err, sizeof err);
    assert_non_null(env);
    weir_storage_env_free(&env);
    assert_null(env);

    assert_int_equal(weir_config_set(cfg, "s3.multipart.part-size", "1mb", err, sizeof err), 0);
    assert_null(weir_storage_env_new(cfg, err, sizeof err));
    assert_non_null(strstr(err, "s3.multipart.part-size"));
    assert_int_equal(weir_config_set(cfg, "s3.multipart.part-size", "8mb", err, sizeof err), 0);
    assert_int_equal(weir_config_set(cfg, "s3.multipart.threshold", "6mb", err, sizeof err), 0);
    assert_null(weir_storage_env_new(cfg, err, sizeof err));
    assert_non_null(strstr(err, "s3.multipart.threshold"));
    assert_int_equal(weir_config_set(cfg, "s3.multipart.threshold", "64mb", err, sizeof err), 0);
    assert_int_equal(weir_config_set(cfg, "s3.upload.max-concurrent", "0", err, sizeof err), 0);
    assert_null(weir_storage_env_new(cfg, err, sizeof err));
    assert_non_null(strstr(err, "s3.upload.max-concurrent"));
    assert_int_equal(weir_config_set(cfg, "s3.upload.max-concurrent", "2", err, sizeof err), 0);
    assert_int_equal(weir_config_set(cfg, "s3.endpoint", "127.0.0.1:8333", err, sizeof err), 0);
    assert_null(weir_storage_env_new(cfg, err, sizeof err));
    assert_non_null(strstr(err, "scheme"));
    assert_int_equal(weir_config_set(cfg, "s3.endpoint", "http://127.0.0.1:8333", err, sizeof err),
                     0);
    env = weir_storage_env_new(cfg, err, sizeof err);
    assert_non_null(env);
    weir_storage_env_free(&env);
    weir_config_destroy(&cfg);
}

/* ---- POSIX backend ------------------------------------------------------------------------ */

typedef struct fixture {
    char *dir;
    weir_storage_env_t *env;
    weir_storage_t *st;
} fixture_t;

static int setup(void **state) {
    fixture_t *f = calloc(1, sizeof *f);
    char err[256];
    f->dir = weir_test_tmpdir("storage");
    f->env = weir_storage_env_new(NULL, err, sizeof err);
    char uri[1024];
    snprintf(uri, sizeof uri, "file://%s/root/", f->dir);
    f->st = weir_storage_open(f->env, uri, err, sizeof err);
    if (!f->env || !f->st)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture_t *f = *state;
    weir_storage_close(&f->st);
    weir_storage_env_free(&f->env);
    weir_test_tmpdir_remove(f->dir);
    free(f);
    return 0;
}

static char *read_local(const char *path, size_t *len) {
    uint8_t *d = NULL;
    if (weir_read_file(path, &d, len) != 0)
        return NULL;
    return (char *)d;
}

static void write_local(const char *path, const char *text) {
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
}

static void test_posix_put_get(void **state) {
    fixture_t *f = *state;
    char err[256], path[1024];
    snprintf(path, sizeof path, "%s/root", f->dir);
    assert_string_equal(weir_storage_uri(f->st), path);
    assert_ptr_equal(weir_storage_env(f->st), f->env);

    assert_int_equal(weir_storage_put(f->st, "job/chk-1/_metadata", "first", 5, err, sizeof err),
                     0);
    assert_int_equal(weir_storage_put(f->st, "job/chk-1/_metadata", "second!", 7, err, sizeof err),
                     0);
    snprintf(path, sizeof path, "%s/root/job/chk-1/_metadata", f->dir);
    size_t len = 0;
    char *text = read_local(path, &len);
    assert_non_null(text);
    assert_int_equal(len, 7);
    assert_memory_equal(text, "second!", 7);
    free(text);

    uint8_t *data = NULL;
    assert_int_equal(
        weir_storage_get(f->st, "job/chk-1/_metadata", 100, &data, &len, err, sizeof err), 0);
    assert_int_equal(len, 7);
    assert_string_equal((char *)data, "second!"); /* NUL appended */
    free(data);
    assert_int_equal(
        weir_storage_get(f->st, "job/chk-1/_metadata", 6, &data, &len, err, sizeof err),
        WEIR_ENOSPACE);
    assert_null(data);
    assert_int_equal(
        weir_storage_get(f->st, "job/chk-2/_metadata", 100, &data, &len, err, sizeof err),
        WEIR_ENOTFOUND);
    assert_int_equal(weir_storage_get(f->st, "job/chk-1", 100, &data, &len, err, sizeof err),
                     WEIR_ENOTFOUND); /* a directory is no object */

    uint64_t size = 0;
    assert_int_equal(weir_storage_stat(f->st, "job/chk-1/_metadata", &size, err, sizeof err), 0);
    assert_int_equal(size, 7);
    assert_int_equal(weir_storage_stat(f->st, "nope", &size, err, sizeof err), WEIR_ENOTFOUND);
    assert_int_equal(weir_storage_stat(f->st, "job", &size, err, sizeof err), WEIR_ENOTFOUND);

    assert_int_equal(weir_storage_put(f->st, "../escape", "x", 1, err, sizeof err), WEIR_EINVAL);
    assert_non_null(strstr(err, "bad object key"));
    assert_int_equal(weir_storage_put(f->st, "/abs", "x", 1, err, sizeof err), WEIR_EINVAL);
    assert_int_equal(weir_storage_put(f->st, "a/", "x", 1, err, sizeof err), WEIR_EINVAL);
    assert_int_equal(weir_storage_put(f->st, "", "x", 1, err, sizeof err), WEIR_EINVAL);
    snprintf(path, sizeof path, "%s/escape", f->dir);
    assert_int_not_equal(access(path, F_OK), 0);

    weir_storage_stats_t s;
    weir_storage_env_stats(f->env, &s);
    assert_int_equal(s.put_requests, 2);
    assert_int_equal(s.put_bytes, 12);
    assert_int_equal(s.get_requests, 4);
    assert_int_equal(s.get_bytes, 7);
    assert_int_equal(s.stat_requests, 3);
    assert_int_equal(s.failures, 1); /* the ENOSPACE; not found is no failure */
}

typedef struct listing {
    char names[32][128];
    bool dirs[32];
    uint64_t sizes[32];
    int n;
} listing_t;

static int collect(void *arg, const char *name, bool is_dir, uint64_t size) {
    listing_t *l = arg;
    if (l->n == 32)
        return WEIR_ENOSPACE;
    snprintf(l->names[l->n], sizeof l->names[0], "%s", name);
    l->dirs[l->n] = is_dir;
    l->sizes[l->n++] = size;
    return 0;
}

static int find(const listing_t *l, const char *name) {
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->names[i], name) == 0)
            return i;
    return -1;
}

static void test_posix_list_delete(void **state) {
    fixture_t *f = *state;
    char err[256], path[1024];
    assert_int_equal(weir_storage_put(f->st, "j/chk-1/_metadata", "m1", 2, err, sizeof err), 0);
    assert_int_equal(weir_storage_put(f->st, "j/chk-1/t-0/MANIFEST", "abc", 3, err, sizeof err), 0);
    assert_int_equal(weir_storage_put(f->st, "j/shared/a.sst", "12345", 5, err, sizeof err), 0);
    /* a temporary file of a killed put: never listed */
    snprintf(path, sizeof path, "%s/root/j/shared/.weir-tmp-0011-b.sst", f->dir);
    write_local(path, "partial");

    listing_t l = {0};
    assert_int_equal(weir_storage_list(f->st, "j", false, collect, &l, err, sizeof err), 0);
    assert_int_equal(l.n, 2);
    assert_true(find(&l, "chk-1") >= 0 && l.dirs[find(&l, "chk-1")]);
    assert_true(find(&l, "shared") >= 0 && l.dirs[find(&l, "shared")]);

    memset(&l, 0, sizeof l);
    assert_int_equal(weir_storage_list(f->st, "j", true, collect, &l, err, sizeof err), 0);
    assert_int_equal(l.n, 3);
    int i = find(&l, "chk-1/t-0/MANIFEST");
    assert_true(i >= 0);
    assert_false(l.dirs[i]);
    assert_int_equal(l.sizes[i], 3);
    assert_true(find(&l, "shared/a.sst") >= 0);
    assert_true(find(&l, "chk-1/_metadata") >= 0);

    memset(&l, 0, sizeof l);
    assert_int_equal(weir_storage_list(f->st, "absent", true, collect, &l, err, sizeof err), 0);
    assert_int_equal(l.n, 0);
    memset(&l, 0, sizeof l);
    assert_int_equal(weir_storage_list(f->st, "", false, collect, &l, err, sizeof err), 0);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.names[0], "j");

    assert_int_equal(weir_storage_delete(f->st, "j/shared/a.sst", err, sizeof err), 0);
    assert_int_equal(weir_storage_delete(f->st, "j/shared/a.sst", err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/root/j/shared/a.sst", f->dir);
    assert_int_not_equal(access(path, F_OK), 0);
    assert_int_equal(weir_storage_delete_prefix(f->st, "j/chk-1", err, sizeof err), 0);
    assert_int_equal(weir_storage_delete_prefix(f->st, "j/chk-9", err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/root/j/chk-1", f->dir);
    assert_int_not_equal(access(path, F_OK), 0);
    memset(&l, 0, sizeof l);
    assert_int_equal(weir_storage_list(f->st, "j", true, collect, &l, err, sizeof err), 0);
    assert_int_equal(l.n, 0);
}

static void test_posix_files(void **state) {
    fixture_t *f = *state;
    char err[256], src[1024], dst[1024];
    enum { N = 9 };
    weir_storage_upload_t up[N];
    char keys[N][64], paths[N][1024];
    for (int i = 0; i < N; i++) {
        snprintf(paths[i], sizeof paths[i], "%s/local-%d.sst", f->dir, i);
        char text[64];
        snprintf(text, sizeof text, "sst number %d", i);
        write_local(paths[i], text);
        snprintf(keys[i], sizeof keys[i], "j/shared/inst-%d.sst", i);
        up[i] = (weir_storage_upload_t){.key = keys[i], .path = paths[i]};
    }
    assert_int_equal(weir_storage_put_files(f->st, up, N, err, sizeof err), 0);
    for (int i = 0; i < N; i++) {
        char text[64], got[1024];
        snprintf(text, sizeof text, "sst number %d", i);
        assert_int_equal(up[i].size, strlen(text));
        snprintf(got, sizeof got, "%s/root/%s", f->dir, keys[i]);
        size_t len = 0;
        char *g = read_local(got, &len);
        assert_non_null(g);
        assert_int_equal(len, strlen(text));
        assert_memory_equal(g, text, len);
        free(g);
    }
    /* a missing source file fails the batch with its name */
    snprintf(src, sizeof src, "%s/missing.sst", f->dir);
    weir_storage_upload_t bad[2] = {{.key = "j/x", .path = paths[0]}, {.key = "j/y", .path = src}};
    assert_int_equal(weir_storage_put_files(f->st, bad, 2, err, sizeof err), WEIR_EIO);
    assert_non_null(strstr(err, "missing.sst"));

    snprintf(dst, sizeof dst, "%s/restored.sst", f->dir);
    uint64_t size = 0;
    assert_int_equal(weir_storage_get_file(f->st, keys[3], dst, &size, err, sizeof err), 0);
    assert_int_equal(size, strlen("sst number 3"));
    size_t len = 0;
    char *g = read_local(dst, &len);
    assert_non_null(g);
    assert_memory_equal(g, "sst number 3", len);
    free(g);
    assert_int_equal(weir_storage_get_file(f->st, "j/shared/none", dst, &size, err, sizeof err),
                     WEIR_ENOTFOUND);

    weir_storage_stats_t s;
    weir_storage_env_stats(f->env, &s);
    assert_int_equal(s.put_requests, N + 2);
    assert_int_equal(s.get_requests, 2);
}

static void test_s3_needs_settings(void **state) {
    (void)state;
    char err[256];
    weir_storage_env_t *env = weir_storage_env_new(NULL, err, sizeof err);
    assert_non_null(env);
    weir_storage_t *st = weir_storage_open(env, "s3://bucket/x", err, sizeof err);
    assert_null(st); /* no s3.endpoint / keys */
    assert_true(strlen(err) > 0);
    assert_null(weir_storage_open(env, "relative", err, sizeof err));
    assert_non_null(strstr(err, "relative path"));
    weir_storage_env_free(&env);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uri_check),
        cmocka_unit_test(test_uri_join_parent_base),
        cmocka_unit_test(test_env_settings),
        cmocka_unit_test_setup_teardown(test_posix_put_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_posix_list_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_posix_files, setup, teardown),
        cmocka_unit_test(test_s3_needs_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
