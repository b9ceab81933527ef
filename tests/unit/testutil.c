/* Owns the unit tests' shared helpers (testutil.h): temporary directories under $WEIR_TEST_TMP,
 * wait-until with a deadline, plugin paths under the build directory, a free loopback port, shell
 * commands with their output through a file, paths in the repository.
 * Invariants: nothing is cached; every call reads the environment again; a helper that cannot
 * do its job fails the calling test.
 * Threading: call from the test's thread (a helper may fail the test); done() of
 * weir_test_wait_until runs on that thread too. */
#include "testutil.h"

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <errno.h>

#include "common/err.h"
#include "common/util.h"

char *weir_test_tmpdir(const char *name) {
    const char *base = getenv("WEIR_TEST_TMP");
    if (!base || !*base)
        base = "/tmp";
    if (weir_mkdirs(base) < 0)
        fail_msg("cannot create the test directory %s", base);
    size_t cap = strlen(base) + strlen(name) + 16;
    char *dir = malloc(cap);
    assert_non_null(dir);
    snprintf(dir, cap, "%s/%s-XXXXXX", base, name);
    if (!mkdtemp(dir))
        fail_msg("mkdtemp %s failed", dir);
    return dir;
}

void weir_test_tmpdir_remove(char *dir) {
    if (!dir)
        return;
    if (weir_rmtree(dir) < 0)
        fail_msg("cannot remove %s", dir);
    free(dir);
}

bool weir_test_wait_until(bool (*done)(void *arg), void *arg, int64_t timeout_ms, int64_t poll_ms) {
    int64_t deadline = weir_now_ns() + timeout_ms * 1000000;
    for (;;) {
        if (done(arg))
            return true;
        if (weir_now_ns() > deadline)
            return false;
        weir_sleep_ns(poll_ms * 1000000);
    }
}

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

void weir_test_plugin_dir(weir_test_plugin_kind_t kind, char *out, size_t cap) {
    const char *examples = getenv("WEIR_EXAMPLES");
    const char *build = getenv("WEIR_BUILD");
    char exe[PATH_MAX];
    if (kind == WEIR_EXAMPLE_PLUGIN && examples && *examples) {
        snprintf(out, cap, "%s", examples);
    } else {
        if (!build || !*build) {
            ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
            if (n <= 0)
                fail_msg("cannot read /proc/self/exe (set WEIR_BUILD)");
            exe[n] = '\0';
            for (int up = 0; up < 2; up++) { /* <build>/tests/test_NAME -> <build> */
                char *slash = strrchr(exe, '/');
                if (slash)
                    *slash = '\0';
            }
            build = exe;
        }
        snprintf(out, cap, "%s/%s", build,
                 kind == WEIR_EXAMPLE_PLUGIN ? "examples" : "tests/plugins");
    }
    if (!exists(out))
        fail_msg("plugins not found in %s (set WEIR_BUILD)", out);
}

void weir_test_plugin_path(weir_test_plugin_kind_t kind, const char *file, char *out, size_t cap) {
    char dir[PATH_MAX];
    weir_test_plugin_dir(kind, dir, sizeof dir);
    snprintf(out, cap, "%s/%s", dir, file);
    if (!exists(out))
        fail_msg("plugin %s not found (set WEIR_BUILD)", out);
}

int weir_test_flaky_read(void *ctx, const char *path, uint8_t **data, size_t *len) {
    weir_test_flaky_t *f = ctx;
    if (strstr(path, f->match)) {
        f->calls++;
        if (f->fails > 0) {
            f->fails--;
            errno = f->err;
            return WEIR_EIO;
        }
    }
    return weir_read_file(path, data, len);
}

int weir_test_value(char *buf, int k, int ver) {
    int n = snprintf(buf, 160, "value-%d-%d-", k, ver);
    uint64_t x = (uint64_t)k * 0x9E3779B97F4A7C15ULL ^ (uint64_t)(ver + 1) * 0xC2B2AE3D27D4EB4FULL;
    while (n < 100) {
        x ^= x >> 29;
        x *= 0xBF58476D1CE4E5B9ULL;
        x ^= x >> 32;
        buf[n++] = "0123456789abcdef"[x & 15];
    }
    buf[n] = '\0';
    return n;
}

/* MurmurHash3 x86_32 (seed 0), written independently of runtime/graph/keygroup.c. */
static uint32_t rotl32(uint32_t x, int r) {
    return (x << r) | (x >> (32 - r));
}
uint32_t weir_test_murmur3_32(const uint8_t *data, size_t len) {
    const uint32_t c1 = 0xcc9e2d51, c2 = 0x1b873593;
    uint32_t h = 0;
    size_t nb = len / 4;
    for (size_t i = 0; i < nb; i++) {
        uint32_t k = (uint32_t)data[4 * i] | (uint32_t)data[4 * i + 1] << 8 |
                     (uint32_t)data[4 * i + 2] << 16 | (uint32_t)data[4 * i + 3] << 24;
        k *= c1;
        k = rotl32(k, 15);
        k *= c2;
        h ^= k;
        h = rotl32(h, 13);
        h = h * 5 + 0xe6546b64;
    }
    const uint8_t *tail = data + nb * 4;
    uint32_t k = 0;
    switch (len & 3) {
    case 3:
        k ^= (uint32_t)tail[2] << 16;
        /* fall through */
    case 2:
        k ^= (uint32_t)tail[1] << 8;
        /* fall through */
    case 1:
        k ^= tail[0];
        k *= c1;
        k = rotl32(k, 15);
        k *= c2;
        h ^= k;
    }
    h ^= (uint32_t)len;
    h ^= h >> 16;
    h *= 0x85ebca6b;
    h ^= h >> 13;
    h *= 0xc2b2ae35;
    h ^= h >> 16;
    return h;
}

int weir_test_free_port(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t l = sizeof a;
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &l), 0);
    close(s);
    return ntohs(a.sin_port);
}

int weir_test_sh(char *out, size_t cap, const char *fmt, ...) {
    char cmd[8192], file[] = "/tmp/weir-test-sh-XXXXXX";
    int fd = mkstemp(file);
    assert_true(fd >= 0);
    close(fd);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof cmd);
    char full[8400];
    snprintf(full, sizeof full, "%s > %s 2>&1 < /dev/null", cmd, file);
    int rc = system(full);
    if (out && cap) {
        uint8_t *data = NULL;
        size_t len = 0;
        out[0] = 0;
        if (weir_read_file(file, &data, &len) == 0)
            snprintf(out, cap, "%s", (char *)data);
        free(data);
    }
    unlink(file);
    return rc;
}

void weir_test_src_path(const char *rel, char *out, size_t cap) {
    char repo[4096];
    snprintf(repo, sizeof repo, "%s", __FILE__);
    for (int i = 0; i < 3; i++) {
        char *slash = strrchr(repo, '/');
        if (!slash)
            fail_msg("testutil: cannot find the repository from %s", __FILE__);
        *slash = 0;
    }
    int n = snprintf(out, cap, "%s/%s", repo, rel);
    assert_true(n >= 0 && (size_t)n < cap);
}
