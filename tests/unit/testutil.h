/* Helpers shared by the unit tests (tests/unit/testutil.c, the static library weir_testutil that
 * every unit test links): fresh temporary directories, waiting for a condition with a deadline,
 * and the paths of the test and example plugins. Each helper fails the calling cmocka test
 * (fail_msg) instead of returning an error. Stateless; call them from the test's thread. */
#ifndef WEIR_TESTS_TESTUTIL_H
#define WEIR_TESTS_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** A fresh empty directory "<base>/<name>-XXXXXX", base being $WEIR_TEST_TMP (ctest sets
 * <build>/test-tmp) or /tmp, created when missing. @returns the malloc'd path. */
char *weir_test_tmpdir(const char *name);
/** Removes @p dir and everything under it (rm -rf; the test fails when that fails) and frees the
 * path. NULL is ignored. */
void weir_test_tmpdir_remove(char *dir);

/** Calls @p done(arg) until it returns true, sleeping @p poll_ms between calls. @returns true as
 * soon as it does, false when it still does not after @p timeout_ms (it is called once more after
 * the deadline). */
bool weir_test_wait_until(bool (*done)(void *arg), void *arg, int64_t timeout_ms, int64_t poll_ms);

typedef enum weir_test_plugin_kind {
    WEIR_TEST_PLUGIN,    /* tests/plugins/NAME.c built into <build>/tests/plugins/NAME.so */
    WEIR_EXAMPLE_PLUGIN, /* examples/NAME.c built into $WEIR_EXAMPLES or <build>/examples */
} weir_test_plugin_kind_t;

/** The directory holding the plugins of @p kind into @p out. <build> is $WEIR_BUILD, else the
 * parent of the test executable's directory (unit tests run as <build>/tests/test_NAME). The test
 * fails when the directory does not exist. */
void weir_test_plugin_dir(weir_test_plugin_kind_t kind, char *out, size_t cap);
/** The path of plugin @p file (e.g. "good.so") of @p kind into @p out; the test fails when the
 * file does not exist. */
void weir_test_plugin_path(weir_test_plugin_kind_t kind, const char *file, char *out, size_t cap);

/** A reader (the signature of jobmanager/store_io.h's injectable reader) that fails with errno
 * @c err (returning WEIR_EIO) for paths containing @c match, @c fails times, then reads normally
 * with weir_read_file; @c calls counts the reads of matching paths. */
typedef struct weir_test_flaky {
    const char *match;
    int err;
    int fails;
    int calls;
} weir_test_flaky_t;
int weir_test_flaky_read(void *ctx, const char *path, uint8_t **data, size_t *len);

/** Writes a value of about 100 hardly compressible bytes, a pure function of (@p k, @p ver), and a
 * NUL into @p buf (at least 160 bytes). @returns its length. */
int weir_test_value(char *buf, int k, int ver);

/** A TCP port of 127.0.0.1 free now (bound to port 0, read, closed). */
int weir_test_free_port(void);

/** Runs the shell command made from @p fmt (printf-style) with stdin from /dev/null and stdout and
 * stderr into a temporary file, never a pipe (a server the command leaves running, such as
 * deploy/local/s3.sh's, would hold a pipe's write end open); that output into @p out
 * (NUL-terminated, cut to @p cap; @p out may be NULL). @returns the status system() returns. */
int weir_test_sh(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/** "<the repository>/<rel>" into @p out: the repository is found from this file's own path
 * (<repo>/tests/unit/testutil.c, absolute as CMake compiles it). */
void weir_test_src_path(const char *rel, char *out, size_t cap);

/** MurmurHash3 x86_32 with seed 0, written independently of runtime/graph/keygroup.c: the tests'
 * oracle for key groups (Flink's assignment: hash % max parallelism). */
uint32_t weir_test_murmur3_32(const uint8_t *data, size_t len);

#endif
