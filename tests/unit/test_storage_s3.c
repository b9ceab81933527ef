/* Conformance of the storage interface (storage/storage.h), run against BOTH backends with the
 * same tests: POSIX in a temporary directory, and S3 against a real SeaweedFS started with
 * deploy/local/s3.sh on a free port, in a random bucket made by boto3. Covers put/get/stat,
 * overwrite, empty and binary objects, absent objects, the get bound, list (recursive and not,
 * more than 1000 keys to cross an S3 list page), delete, delete_prefix, put_file below and above
 * a lowered multipart threshold, get_file, put_files, bad keys, and the env counters.
 * Oracles weir did not write: the bytes of the local source files (memcmp), and for S3 boto3
 * (tests/storage/s3_oracle.py) listing the keys and sizes weir wrote, hashing the multipart
 * object and writing an object weir must read. S3 only: the three error lines (missing bucket,
 * refused credentials, unreachable endpoint), virtual-hosted addressing (bucket.localhost), and
 * the retries of a stopped server (WEIR_ENET after s3.retry.max-attempts, within the expected
 * time, retries counted) and the bounded wait on a frozen one (SIGSTOP: the low-speed abort). */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/sha.h>

#include "common/config.h"
#include "common/err.h"
#include "common/util.h"
#include "storage/storage.h"
#include "testutil.h"

#define AK "weir-test"
#define SK "weir-test-secret"

typedef struct fx {
    bool s3;
    char *tmp;   /* local files of the test */
    char *s3dir; /* the SeaweedFS DIR of deploy/local/s3.sh */
    int port;
    char endpoint[64];
    char bucket[64];
    char root[512]; /* the location under test */
    weir_storage_env_t *env;
    weir_storage_t *st;
} fx_t;

static fx_t POSIX_FX = {.s3 = false}, S3_FX = {.s3 = true};

/* ---- helpers ------------------------------------------------------------------------------ */

static void rand_hex(char *out, size_t nbytes) {
    uint8_t b[32];
    assert_true(nbytes <= sizeof b);
    assert_int_equal(weir_random_bytes(b, nbytes), 0);
    weir_hex_encode(b, nbytes, out);
}

/* Runs a shell command; @returns its stdout (malloc'd); fails the test on a non-zero exit. */
static char *sh(const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    size_t n;
    while ((n = fread(out + len, 1, cap - len - 1, p)) > 0) {
        len += n;
        if (len + 1 == cap)
            out = realloc(out, cap *= 2);
    }
    out[len] = '\0';
    int rc = pclose(p);
    if (rc != 0)
        fail_msg("command failed (%d): %s\n%s", rc, cmd, out);
    return out;
}

static char *oracle(fx_t *f, const char *fmt, ...) {
    char args[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    return sh("python3 %s/tests/storage/s3_oracle.py %s %s %s %s", WEIR_SRC_DIR, f->endpoint, AK,
              SK, args);
}

static const char *s3_sh(void) {
    const char *o = getenv("WEIR_S3_SH");
    return o && *o ? o : WEIR_SRC_DIR "/deploy/local/s3.sh";
}

static weir_storage_env_t *env_with(const char *endpoint, const char *ak, const char *sk,
                                    bool path_style, const char *attempts) {
    weir_config_t *cfg = weir_config_new();
    char err[512] = "";
    const char *kv[][2] = {
        {"s3.endpoint", endpoint},
        {"s3.access-key", ak},
        {"s3.secret-key", sk},
        {"s3.path.style.access", path_style ? "true" : "false"},
        {"s3.multipart.threshold", "6mb"},
        {"s3.multipart.part-size", "5mb"},
        {"s3.retry.max-attempts", attempts},
        {"s3.retry.initial-backoff", "100ms"},
        {"s3.retry.max-backoff", "400ms"},
        {"s3.connect-timeout", "1s"},
        {"s3.request-timeout", "30s"},
    };
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        if (kv[i][1] && weir_config_set(cfg, kv[i][0], kv[i][1], err, sizeof err) != 0)
            fail_msg("%s: %s", kv[i][0], err);
    weir_storage_env_t *env = weir_storage_env_new(cfg, err, sizeof err);
    if (!env)
        fail_msg("weir_storage_env_new: %s", err);
    weir_config_destroy(&cfg);
    return env;
}

static weir_storage_t *open_or_fail(weir_storage_env_t *env, const char *uri) {
    char err[512] = "";
    weir_storage_t *st = weir_storage_open(env, uri, err, sizeof err);
    if (!st)
        fail_msg("open %s: %s", uri, err);
    return st;
}

static void write_local(const char *path, const void *data, size_t len) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static uint8_t *random_buf(size_t len) {
    uint8_t *b = malloc(len);
    assert_non_null(b);
    for (size_t done = 0; done < len; done += 65536)
        assert_int_equal(weir_random_bytes(b + done, len - done < 65536 ? len - done : 65536), 0);
    return b;
}

#define OK(call)                                                                                   \
    do {                                                                                           \
        char err_[1024] = "";                                                                      \
        int rc_ = (call);                                                                          \
        if (rc_ != 0)                                                                              \
            fail_msg("%s -> %d: %s", #call, rc_, err_);                                            \
    } while (0)
/* the err_ buffer of OK() is passed as `E` */
#define E err_, sizeof err_

/* ---- fixtures ----------------------------------------------------------------------------- */

static int setup_posix(void **state) {
    fx_t *f = &POSIX_FX;
    f->tmp = weir_test_tmpdir("storage-conf");
    snprintf(f->root, sizeof f->root, "%s/root", f->tmp);
    f->env = env_with(NULL, NULL, NULL, true, "3");
    f->st = open_or_fail(f->env, f->root);
    *state = f;
    return 0;
}

static int setup_s3(void **state) {
    fx_t *f = &S3_FX;
    f->tmp = weir_test_tmpdir("storage-s3");
    f->s3dir = weir_test_tmpdir("seaweedfs");
    f->port = weir_test_free_port();
    /* -s3.domainName: bucket.localhost:PORT is virtual-hosted addressing */
    /* s3.sh's output through a file, never a pipe: the server it leaves running must not hold
     * the read end of popen open (fread would wait for it) */
    char *out = sh("S3_EXTRA_ARGS=-s3.domainName=localhost bash %s start %s %d >%s/start.log "
                   "2>&1 </dev/null; rc=$?; cat %s/start.log; exit $rc",
                   s3_sh(), f->s3dir, f->port, f->s3dir, f->s3dir);
    printf("# %s", out);
    free(out);
    snprintf(f->endpoint, sizeof f->endpoint, "http://127.0.0.1:%d", f->port);
    char hex[17];
    rand_hex(hex, 8);
    snprintf(f->bucket, sizeof f->bucket, "weir-conf-%s", hex);
    free(oracle(f, "mkbucket %s", f->bucket));
    weir_fmt(f->root, sizeof f->root, "s3://%s/conf/root", f->bucket);
    f->env = env_with(f->endpoint, AK, SK, true, "3");
    f->st = open_or_fail(f->env, f->root);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx_t *f = *state;
    weir_storage_close(&f->st);
    weir_storage_env_free(&f->env);
    if (f->s3dir) {
        free(sh("bash %s stop %s >/dev/null 2>&1 </dev/null", s3_sh(), f->s3dir));
        weir_test_tmpdir_remove(f->s3dir);
    }
    weir_test_tmpdir_remove(f->tmp);
    return 0;
}

/* ---- list collection ------------------------------------------------------------------------ */

typedef struct names {
    char *lines; /* "name d|f size\n" sorted by collect_sorted */
    size_t n;
    char **v;
    size_t cap;
} names_t;

static int add_name(void *arg, const char *name, bool is_dir, uint64_t size) {
    names_t *ns = arg;
    if (ns->n == ns->cap) {
        ns->cap = ns->cap ? ns->cap * 2 : 64;
        ns->v = realloc(ns->v, ns->cap * sizeof *ns->v);
    }
    char line[1200];
    snprintf(line, sizeof line, "%s %c %llu", name, is_dir ? 'd' : 'f', (unsigned long long)size);
    ns->v[ns->n++] = strdup(line);
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists @p prefix and @returns the entries sorted, joined by ',' (malloc'd). */
static char *list_str(fx_t *f, const char *prefix, bool recursive, size_t *count) {
    names_t ns = {0};
    OK(weir_storage_list(f->st, prefix, recursive, add_name, &ns, E));
    if (ns.n)
        qsort(ns.v, ns.n, sizeof *ns.v, cmp_str);
    size_t total = 1;
    for (size_t i = 0; i < ns.n; i++)
        total += strlen(ns.v[i]) + 1;
    char *s = calloc(1, total);
    for (size_t i = 0; i < ns.n; i++) {
        if (i)
            strcat(s, ",");
        strcat(s, ns.v[i]);
        free(ns.v[i]);
    }
    free(ns.v);
    if (count)
        *count = ns.n;
    return s;
}

static int stop_at_first(void *arg, const char *name, bool is_dir, uint64_t size) {
    (void)name, (void)is_dir, (void)size;
    (*(int *)arg)++;
    return 77;
}

/* ---- conformance (both backends) ------------------------------------------------------------ */

static void test_put_get_stat(void **state) {
    fx_t *f = *state;
    uint8_t bin[256];
    for (int i = 0; i < 256; i++)
        bin[i] = (uint8_t)i;
    OK(weir_storage_put(f->st, "pgs/bin", bin, sizeof bin, E));
    OK(weir_storage_put(f->st, "pgs/empty", "", 0, E));
    OK(weir_storage_put(f->st, "pgs/name with space+plus%&=?", "x", 1, E));
    uint8_t *data = NULL;
    size_t len = 0;
    OK(weir_storage_get(f->st, "pgs/bin", 1 << 20, &data, &len, E));
    assert_int_equal(len, 256);
    assert_memory_equal(data, bin, 256);
    assert_int_equal(data[256], 0); /* the NUL beyond */
    free(data);
    OK(weir_storage_get(f->st, "pgs/empty", 16, &data, &len, E));
    assert_int_equal(len, 0);
    assert_non_null(data);
    free(data);
    OK(weir_storage_get(f->st, "pgs/name with space+plus%&=?", 16, &data, &len, E));
    assert_int_equal(len, 1);
    assert_int_equal(data[0], 'x');
    free(data);
    uint64_t size = 0;
    OK(weir_storage_stat(f->st, "pgs/bin", &size, E));
    assert_int_equal(size, 256);
    OK(weir_storage_stat(f->st, "pgs/empty", &size, E));
    assert_int_equal(size, 0);
    /* overwrite replaces */
    OK(weir_storage_put(f->st, "pgs/bin", "new", 3, E));
    OK(weir_storage_get(f->st, "pgs/bin", 1 << 20, &data, &len, E));
    assert_int_equal(len, 3);
    assert_memory_equal(data, "new", 3);
    free(data);
    /* the bound of get */
    char err[512] = "";
    assert_int_equal(weir_storage_stat(f->st, "pgs/bin", &size, err, sizeof err), 0);
    OK(weir_storage_put(f->st, "pgs/big", bin, sizeof bin, E));
    data = NULL;
    assert_int_equal(weir_storage_get(f->st, "pgs/big", 100, &data, &len, err, sizeof err),
                     WEIR_ENOSPACE);
    assert_null(data);
    assert_non_null(strstr(err, "more than 100"));
    assert_non_null(strstr(err, "pgs/big"));
    OK(weir_storage_delete_prefix(f->st, "pgs", E));
}

static void test_absent(void **state) {
    fx_t *f = *state;
    char err[512] = "";
    uint8_t *data = NULL;
    size_t len = 0;
    uint64_t size = 0;
    weir_storage_stats_t before, after;
    weir_storage_env_stats(f->env, &before);
    assert_int_equal(weir_storage_get(f->st, "absent/x", 100, &data, &len, err, sizeof err),
                     WEIR_ENOTFOUND);
    assert_int_equal(weir_storage_stat(f->st, "absent/x", &size, err, sizeof err), WEIR_ENOTFOUND);
    char path[1024];
    snprintf(path, sizeof path, "%s/absent.out", f->tmp);
    assert_int_equal(weir_storage_get_file(f->st, "absent/x", path, &size, err, sizeof err),
                     WEIR_ENOTFOUND);
    /* nothing left behind: neither the file nor a temporary one */
    char *ls = sh("ls -A %s", f->tmp);
    assert_null(strstr(ls, "absent"));
    free(ls);
    OK(weir_storage_delete(f->st, "absent/x", E));
    OK(weir_storage_delete_prefix(f->st, "absent", E));
    size_t n = 99;
    char *s = list_str(f, "absent", true, &n);
    assert_int_equal(n, 0);
    free(s);
    weir_storage_env_stats(f->env, &after);
    assert_int_equal(after.failures, before.failures); /* absence is not a failure */
    assert_int_equal(after.retries, before.retries);
}

static void test_bad_keys(void **state) {
    fx_t *f = *state;
    const char *bad[] = {"", "/a", "a/", "a//b", "../x", "a/./b", "a/.."};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[512] = "";
        assert_int_equal(weir_storage_put(f->st, bad[i], "x", 1, err, sizeof err), WEIR_EINVAL);
        assert_non_null(strstr(err, "bad object key"));
        uint8_t *d = NULL;
        size_t l;
        assert_int_equal(weir_storage_get(f->st, bad[i], 10, &d, &l, err, sizeof err), WEIR_EINVAL);
    }
    char longkey[WEIR_STORAGE_KEY_MAX + 2];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    char err[512] = "";
    assert_int_equal(weir_storage_put(f->st, longkey, "x", 1, err, sizeof err), WEIR_EINVAL);
}

static void test_list(void **state) {
    fx_t *f = *state;
    OK(weir_storage_put(f->st, "ls/top", "12345", 5, E));
    OK(weir_storage_put(f->st, "ls/a/one", "1", 1, E));
    OK(weir_storage_put(f->st, "ls/a/b/two", "22", 2, E));
    OK(weir_storage_put(f->st, "ls/a/b/c/three", "333", 3, E));
    OK(weir_storage_put(f->st, "ls/ab", "4444", 4, E)); /* shares the characters "a" with a/ */
    char *s = list_str(f, "ls", false, NULL);
    assert_string_equal(s, "a d 0,ab f 4,top f 5");
    free(s);
    s = list_str(f, "ls", true, NULL);
    assert_string_equal(s, "a/b/c/three f 3,a/b/two f 2,a/one f 1,ab f 4,top f 5");
    free(s);
    s = list_str(f, "ls/a", false, NULL);
    assert_string_equal(s, "b d 0,one f 1");
    free(s);
    s = list_str(f, "ls/a/b", true, NULL);
    assert_string_equal(s, "c/three f 3,two f 2");
    free(s);
    /* a key is not a directory: listing an object's name lists nothing */
    size_t n = 9;
    s = list_str(f, "ls/top", true, &n);
    assert_int_equal(n, 0);
    free(s);
    /* the callback's non-zero return stops the listing and is returned */
    char err[512] = "";
    int calls = 0;
    assert_int_equal(weir_storage_list(f->st, "ls", true, stop_at_first, &calls, err, sizeof err),
                     77);
    assert_int_equal(calls, 1);
    /* delete one, then the whole prefix */
    OK(weir_storage_delete(f->st, "ls/a/one", E));
    s = list_str(f, "ls/a", true, NULL);
    assert_string_equal(s, "b/c/three f 3,b/two f 2");
    free(s);
    OK(weir_storage_delete_prefix(f->st, "ls/a", E));
    s = list_str(f, "ls", false, NULL);
    assert_string_equal(s, "ab f 4,top f 5");
    free(s);
    OK(weir_storage_delete_prefix(f->st, "ls", E));
    s = list_str(f, "", false, &n);
    assert_null(strstr(s, "ls "));
    free(s);
}

/* 1100 files through put_files (parallel uploads), listed across S3's 1000-key pages. */
static void test_many_keys(void **state) {
    fx_t *f = *state;
    enum { N = 1100 };
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/many", f->tmp);
    assert_int_equal(mkdir(dir, 0755), 0);
    weir_storage_upload_t *ups = calloc(N, sizeof *ups);
    char **keys = calloc(N, sizeof *keys), **paths = calloc(N, sizeof *paths);
    for (int i = 0; i < N; i++) {
        char k[64], p[1100], body[32];
        snprintf(k, sizeof k, "many/d%d/k%04d", i % 3, i);
        snprintf(p, sizeof p, "%s/f%04d", dir, i);
        int bl = snprintf(body, sizeof body, "body %d", i);
        write_local(p, body, (size_t)bl);
        keys[i] = strdup(k);
        paths[i] = strdup(p);
        ups[i] = (weir_storage_upload_t){.key = keys[i], .path = paths[i]};
    }
    weir_storage_stats_t before, after;
    weir_storage_env_stats(f->env, &before);
    OK(weir_storage_put_files(f->st, ups, N, E));
    for (int i = 0; i < N; i++) {
        char body[32];
        assert_int_equal(ups[i].size, (uint64_t)snprintf(body, sizeof body, "body %d", i));
    }
    size_t n = 0;
    char *s = list_str(f, "many", true, &n);
    assert_int_equal(n, N);
    assert_non_null(strstr(s, "d1/k1099 f 9"));
    assert_non_null(strstr(s, "d0/k0000 f 6"));
    free(s);
    s = list_str(f, "many", false, &n);
    assert_string_equal(s, "d0 d 0,d1 d 0,d2 d 0");
    free(s);
    weir_storage_env_stats(f->env, &after);
    assert_int_equal(after.put_requests - before.put_requests, N);
    if (f->s3) {
        /* 1100 keys need two ListObjectsV2 pages; the non-recursive list one, plus one probe
         * per directory it names (SeaweedFS keeps emptied folders for a while) */
        assert_int_equal(after.list_requests - before.list_requests, 2 + 1 + 3);
        char *o = oracle(f, "ls %s conf/root/many/", f->bucket);
        size_t lines = 0;
        for (char *c = o; *c; c++)
            lines += *c == '\n';
        assert_int_equal(lines, N);
        assert_non_null(strstr(o, "conf/root/many/d2/k0005 6\n"));
        free(o);
    }
    OK(weir_storage_delete_prefix(f->st, "many", E));
    s = list_str(f, "many", true, &n);
    assert_int_equal(n, 0);
    free(s);
    s = list_str(f, "", false, &n);
    assert_null(strstr(s, "many"));
    free(s);
    for (int i = 0; i < N; i++)
        free(keys[i]), free(paths[i]);
    free(keys), free(paths), free(ups);
}

/* put_file small and multipart (above the lowered 6 MB threshold: 5 MB parts), get_file back,
 * byte for byte. */
static void test_files(void **state) {
    fx_t *f = *state;
    const size_t sizes[] = {0, 1000, 6u << 20, (12u << 20) + 12345};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t len = sizes[i];
        uint8_t *buf = random_buf(len ? len : 1);
        char src[1024], dst[1024], key[64];
        snprintf(src, sizeof src, "%s/src%zu", f->tmp, i);
        snprintf(dst, sizeof dst, "%s/dst%zu", f->tmp, i);
        snprintf(key, sizeof key, "files/f%zu", i);
        write_local(src, buf, len);
        weir_storage_stats_t before, after;
        weir_storage_env_stats(f->env, &before);
        uint64_t size = 99;
        OK(weir_storage_put_file(f->st, key, src, &size, E));
        assert_int_equal(size, len);
        weir_storage_env_stats(f->env, &after);
        assert_int_equal(after.put_bytes - before.put_bytes, len);
        if (f->s3) {
            /* single PUT below the threshold; create + parts + complete above it */
            uint64_t want = len >= (6u << 20) ? 1 + (len + (5u << 20) - 1) / (5u << 20) + 1 : 1;
            assert_int_equal(after.put_requests - before.put_requests, want);
            unsigned char md[SHA256_DIGEST_LENGTH];
            SHA256(buf, len, md);
            char hex[65];
            weir_hex_encode(md, sizeof md, hex);
            char *o = oracle(f, "sha256 %s conf/root/%s", f->bucket, key);
            assert_int_equal(strncmp(o, hex, 64), 0);
            free(o);
        }
        OK(weir_storage_stat(f->st, key, &size, E));
        assert_int_equal(size, len);
        write_local(dst, "old", 3); /* replaced whole */
        size = 99;
        OK(weir_storage_get_file(f->st, key, dst, &size, E));
        assert_int_equal(size, len);
        uint8_t *got = NULL;
        size_t got_len = 0;
        assert_int_equal(weir_read_file(dst, &got, &got_len), 0);
        assert_int_equal(got_len, len);
        if (len)
            assert_memory_equal(got, buf, len);
        free(got);
        free(buf);
    }
    /* no temporary file left beside the destinations */
    char *ls = sh("ls -A %s", f->tmp);
    assert_null(strstr(ls, "tmp"));
    free(ls);
    char err[512] = "";
    char missing[1024];
    snprintf(missing, sizeof missing, "%s/no-such-file", f->tmp);
    assert_int_not_equal(weir_storage_put_file(f->st, "files/x", missing, NULL, err, sizeof err),
                         0);
    assert_non_null(strstr(err, "no-such-file"));
    OK(weir_storage_delete_prefix(f->st, "files", E));
}

/* ---- S3 only ------------------------------------------------------------------------------ */

/* An object boto3 wrote is read by weir, byte for byte. */
static void test_s3_foreign_object(void **state) {
    fx_t *f = *state;
    char src[1024];
    snprintf(src, sizeof src, "%s/foreign", f->tmp);
    uint8_t *buf = random_buf(70000);
    write_local(src, buf, 70000);
    free(oracle(f, "put %s conf/root/foreign/obj %s", f->bucket, src));
    uint8_t *data = NULL;
    size_t len = 0;
    OK(weir_storage_get(f->st, "foreign/obj", 1 << 20, &data, &len, E));
    assert_int_equal(len, 70000);
    assert_memory_equal(data, buf, 70000);
    free(data);
    free(buf);
    OK(weir_storage_delete_prefix(f->st, "foreign", E));
}

static void test_s3_missing_bucket(void **state) {
    fx_t *f = *state;
    char uri[256], err[512] = "";
    snprintf(uri, sizeof uri, "s3://weir-missing-%s/p", f->bucket + 10);
    weir_storage_t *st = open_or_fail(f->env, uri);
    /* reads only: SeaweedFS makes a missing bucket on PUT for an admin identity (S3 refuses) */
    uint8_t *d = NULL;
    size_t l = 0;
    assert_int_equal(weir_storage_get(st, "k", 10, &d, &l, err, sizeof err), WEIR_ECONFIG);
    char want[1024];
    snprintf(want, sizeof want,
             "get %s/k: bucket weir-missing-%s does not exist: create it or fix "
             "the bucket in the location",
             uri, f->bucket + 10);
    assert_string_equal(err, want);
    assert_int_equal(weir_storage_list(st, "", true, add_name, &(names_t){0}, err, sizeof err),
                     WEIR_ECONFIG);
    assert_non_null(strstr(err, "does not exist: create it or fix the bucket in the location"));
    weir_storage_close(&st);
}

static void test_s3_bad_credentials(void **state) {
    fx_t *f = *state;
    const char *pairs[][2] = {{AK, "wrong-secret"}, {"nobody", SK}};
    for (int i = 0; i < 2; i++) {
        weir_storage_env_t *env = env_with(f->endpoint, pairs[i][0], pairs[i][1], true, "3");
        weir_storage_t *st = open_or_fail(env, f->root);
        char err[512] = "";
        assert_int_equal(weir_storage_put(st, "k", "x", 1, err, sizeof err), WEIR_ECONFIG);
        assert_non_null(strstr(err, "put "));
        assert_non_null(strstr(err, "/conf/root/k: the credentials are refused (s3.access-key / "
                                    "s3.secret-key)"));
        uint8_t *d = NULL;
        size_t l;
        assert_int_equal(weir_storage_get(st, "k", 10, &d, &l, err, sizeof err), WEIR_ECONFIG);
        weir_storage_stats_t stats;
        weir_storage_env_stats(env, &stats);
        assert_int_equal(stats.retries, 0); /* permanent: no retry */
        assert_int_equal(stats.failures, 2);
        weir_storage_close(&st);
        weir_storage_env_free(&env);
    }
}

static void test_s3_unreachable(void **state) {
    fx_t *f = *state;
    char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", weir_test_free_port());
    weir_storage_env_t *env = env_with(ep, AK, SK, true, "2");
    weir_storage_t *st = open_or_fail(env, f->root);
    char err[512] = "";
    assert_int_equal(weir_storage_put(st, "k", "x", 1, err, sizeof err), WEIR_ENET);
    char want[1024];
    weir_fmt(want, sizeof want, "put %s/k: cannot reach s3.endpoint %s: ", f->root, ep);
    assert_int_equal(strncmp(err, want, strlen(want)), 0);
    weir_storage_close(&st);
    weir_storage_env_free(&env);
}

/* bucket.localhost:PORT — SeaweedFS started with -s3.domainName=localhost */
static void test_s3_virtual_hosted(void **state) {
    fx_t *f = *state;
    char ep[64];
    snprintf(ep, sizeof ep, "http://localhost:%d", f->port);
    weir_storage_env_t *env = env_with(ep, AK, SK, false, "3");
    weir_storage_t *st = open_or_fail(env, f->root);
    OK(weir_storage_put(st, "vh/obj", "virtual", 7, E));
    uint8_t *d = NULL;
    size_t l = 0;
    OK(weir_storage_get(f->st, "vh/obj", 100, &d, &l, E)); /* read back path-style */
    assert_int_equal(l, 7);
    assert_memory_equal(d, "virtual", 7);
    free(d);
    size_t n = 0;
    char *s = NULL;
    names_t ns = {0};
    OK(weir_storage_list(st, "vh", true, add_name, &ns, E));
    assert_int_equal(ns.n, 1);
    assert_string_equal(ns.v[0], "obj f 7");
    free(ns.v[0]);
    free(ns.v);
    OK(weir_storage_delete_prefix(st, "vh", E));
    s = list_str(f, "vh", true, &n);
    assert_int_equal(n, 0);
    free(s);
    weir_storage_close(&st);
    weir_storage_env_free(&env);
}

/* A frozen server (SIGSTOP: connections are accepted by the kernel, nothing answers): each
 * attempt ends by the low-speed abort (below 1 KiB/s for 10 s), so 2 attempts fail within
 * [20 s, 25 s], never hang; the server answers again after SIGCONT. */
static void test_s3_server_frozen(void **state) {
    fx_t *f = *state;
    char *pid = sh("cat %s/pid", f->s3dir);
    int p = atoi(pid);
    free(pid);
    assert_true(p > 1);
    weir_storage_env_t *env = env_with(f->endpoint, AK, SK, true, "2");
    weir_storage_t *st = open_or_fail(env, f->root);
    assert_int_equal(kill(p, SIGSTOP), 0);
    char err[512] = "";
    uint8_t *d = NULL;
    size_t l = 0;
    int64_t t0 = weir_now_ns();
    int rc = weir_storage_get(st, "frozen", 10, &d, &l, err, sizeof err);
    int64_t ms = (weir_now_ns() - t0) / 1000000;
    assert_int_equal(kill(p, SIGCONT), 0);
    printf("# frozen server: %d %s (%lld ms)\n", rc, err, (long long)ms);
    assert_int_equal(rc, WEIR_ENET);
    assert_non_null(strstr(err, "does not answer in time: "));
    assert_non_null(strstr(err, "(2 attempts)"));
    assert_true(ms >= 20000);
    assert_true(ms < 25000);
    weir_storage_stats_t stats;
    weir_storage_env_stats(env, &stats);
    assert_int_equal(stats.retries, 1);
    OK(weir_storage_put(st, "frozen", "thawed", 6, E)); /* answers again */
    OK(weir_storage_delete(st, "frozen", E));
    weir_storage_close(&st);
    weir_storage_env_free(&env);
}

/* Last of the S3 group: the server stopped. 3 attempts, backoff 100 ms then 200 ms (half of each
 * fixed, half random): ENET after [100, 300] ms of sleep plus three refused connects. */
static void test_s3_server_stopped(void **state) {
    fx_t *f = *state;
    free(sh("bash %s stop %s >/dev/null 2>&1 </dev/null", s3_sh(), f->s3dir));
    weir_storage_stats_t before, after;
    weir_storage_env_stats(f->env, &before);
    char err[512] = "";
    int64_t t0 = weir_now_ns();
    assert_int_equal(weir_storage_put(f->st, "k", "x", 1, err, sizeof err), WEIR_ENET);
    int64_t ms = (weir_now_ns() - t0) / 1000000;
    weir_storage_env_stats(f->env, &after);
    printf("# stopped server: %s (%lld ms)\n", err, (long long)ms);
    assert_non_null(strstr(err, "cannot reach s3.endpoint"));
    assert_non_null(strstr(err, "(3 attempts)"));
    assert_int_equal(after.retries - before.retries, 2);
    assert_int_equal(after.failures - before.failures, 1);
    assert_true(ms >= 100);
    assert_true(ms < 3000);
}

int main(void) {
    const struct CMUnitTest common[] = {
        cmocka_unit_test(test_put_get_stat), cmocka_unit_test(test_absent),
        cmocka_unit_test(test_bad_keys),     cmocka_unit_test(test_list),
        cmocka_unit_test(test_many_keys),    cmocka_unit_test(test_files),
    };
    const struct CMUnitTest s3_only[] = {
        cmocka_unit_test(test_put_get_stat),       cmocka_unit_test(test_absent),
        cmocka_unit_test(test_bad_keys),           cmocka_unit_test(test_list),
        cmocka_unit_test(test_many_keys),          cmocka_unit_test(test_files),
        cmocka_unit_test(test_s3_foreign_object),  cmocka_unit_test(test_s3_missing_bucket),
        cmocka_unit_test(test_s3_bad_credentials), cmocka_unit_test(test_s3_unreachable),
        cmocka_unit_test(test_s3_virtual_hosted),  cmocka_unit_test(test_s3_server_frozen),
        cmocka_unit_test(test_s3_server_stopped),
    };
    int fails =
        cmocka_run_group_tests_name("storage conformance: POSIX", common, setup_posix, teardown);
    fails += cmocka_run_group_tests_name("storage conformance: S3 (SeaweedFS)", s3_only, setup_s3,
                                         teardown);
    return fails;
}
