/* Tests of runtime/plugin.c: loading the test plugins of tests/plugins (built into
 * <build>/tests/plugins/NAME.so) and the one-line error for each way a plugin can be wrong. The
 * plugins' weir_* references resolve against libweir.so, which this test links. */
#include <limits.h>
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

#include "runtime/graph/plugin.h"

typedef struct fixture {
    char plugins[PATH_MAX + 64]; /* directory holding the test plugins */
    char tmp[PATH_MAX];          /* fresh temporary directory */
} fixture_t;

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static int setup(void **state) {
    fixture_t *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    const char *build = getenv("WEIR_BUILD");
    char probe[PATH_MAX + 96];
    if (build && *build) {
        snprintf(f->plugins, sizeof(f->plugins), "%s/tests/plugins", build);
    } else {
        char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (n <= 0)
            return -1;
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        /* the test runs as <build>/tests/test_plugin */
        snprintf(f->plugins, sizeof(f->plugins), "%s/plugins", exe);
        snprintf(probe, sizeof(probe), "%s/good.so", f->plugins);
        if (!file_exists(probe))
            snprintf(f->plugins, sizeof(f->plugins), "%s/../tests/plugins", exe);
    }
    snprintf(probe, sizeof(probe), "%s/good.so", f->plugins);
    if (!file_exists(probe)) {
        fprintf(stderr, "test plugins not found in %s (set WEIR_BUILD)\n", f->plugins);
        return -1;
    }
    const char *base = getenv("WEIR_TEST_TMP");
    if (!base || !*base)
        base = "/tmp";
    mkdir(base, 0755);
    snprintf(f->tmp, sizeof(f->tmp), "%s/test_plugin.XXXXXX", base);
    if (!mkdtemp(f->tmp))
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture_t *f = *state;
    char cmd[PATH_MAX + 32];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->tmp);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

static void plugin_path(const fixture_t *f, const char *name, char *out, size_t cap) {
    snprintf(out, cap, "%s/%s", f->plugins, name);
}

/* Opens (and if that works, builds) @p path and expects an error containing @p phrase. */
static void expect_error(const char *path, const char *phrase, bool at_build) {
    char err[512] = "";
    weir_plugin_t *p = weir_plugin_open(path, err, sizeof(err));
    if (at_build) {
        if (!p)
            fail_msg("open %s failed: %s", path, err);
        char *argv[] = {(char *)path, NULL};
        weir_job_t *job = weir_plugin_build(p, 1, argv, 1, err, sizeof(err));
        assert_null(job);
        weir_plugin_close(&p);
    } else {
        if (p) {
            weir_plugin_close(&p);
            fail_msg("open %s succeeded", path);
        }
    }
    assert_null(strchr(err, '\n'));
    if (!strstr(err, phrase))
        fail_msg("error '%s' lacks '%s'", err, phrase);
}

static void test_good_plugin(void **state) {
    fixture_t *f = *state;
    char path[PATH_MAX + 128];
    plugin_path(f, "good.so", path, sizeof(path));
    char err[512] = "";
    weir_plugin_t *p = weir_plugin_open(path, err, sizeof(err));
    if (!p)
        fail_msg("open: %s", err);
    const weir_plugin_descriptor_t *d = weir_plugin_desc(p);
    assert_non_null(d);
    assert_string_equal(d->name, "good");
    assert_int_equal(d->abi_version, WEIR_ABI_VERSION);

    char *argv[] = {path, "42", NULL};
    weir_job_t *job = weir_plugin_build(p, 2, argv, 2, err, sizeof(err));
    if (!job)
        fail_msg("build: %s", err);
    assert_string_equal(job->name, "good");
    assert_int_equal(job->n_nodes, 4); /* key_by adds no node */
    assert_int_equal(job->nodes[0].kind, WEIR_OP_SOURCE_DATAGEN);
    assert_int_equal(job->nodes[0].datagen.count, 42); /* from argv[1] */
    assert_int_equal(job->nodes[2].kind, WEIR_OP_REDUCE);
    assert_string_equal(job->nodes[2].uid, "sum");
    assert_non_null(job->nodes[1].fn);
    assert_int_equal(job->n_vertices, 2);
    assert_string_equal(job->vertices[0].name, "numbers -> double");
    assert_string_equal(job->vertices[1].name, "sum -> print");
    assert_int_equal(job->vertices[1].parallelism, 2);
    assert_int_equal(job->n_edges, 1);
    assert_int_equal(job->edges[0].part, WEIR_PART_HASH);
    weir_graph_destroy(&job);

    /* define() is run again with other arguments: same plugin handle */
    char *argv2[] = {path, NULL};
    job = weir_plugin_build(p, 1, argv2, 1, err, sizeof(err));
    assert_non_null(job);
    assert_int_equal(job->nodes[0].datagen.count, 100);
    weir_graph_destroy(&job);
    weir_plugin_close(&p);
    assert_null(p);
    weir_plugin_close(&p); /* accepts NULL */
}

static void test_relative_name(void **state) {
    fixture_t *f = *state;
    char cwd[PATH_MAX];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(f->plugins), 0);
    char err[512] = "";
    /* without a '/', dlopen would search the library path: the loader must not */
    weir_plugin_t *p = weir_plugin_open("good.so", err, sizeof(err));
    assert_int_equal(chdir(cwd), 0);
    if (!p)
        fail_msg("open good.so: %s", err);
    weir_plugin_close(&p);
}

static void test_broken_plugins(void **state) {
    fixture_t *f = *state;
    char path[PATH_MAX + 128];
    plugin_path(f, "noabi.so", path, sizeof(path));
    expect_error(path, "was built for weir ABI 999 but this weir speaks ABI 1", false);
    plugin_path(f, "nodesc.so", path, sizeof(path));
    expect_error(path, "exports no weir_plugin_descriptor", false);
    plugin_path(f, "badmagic.so", path, sizeof(path));
    expect_error(path, "WEIR_PLUGIN(", false);
    plugin_path(f, "failing.so", path, sizeof(path));
    expect_error(path, "usage: failing INPUT OUTPUT (got 0 arguments)", true);
    plugin_path(f, "retcode.so", path, sizeof(path));
    expect_error(path, "returned 3", true);
}

static void test_bad_files(void **state) {
    fixture_t *f = *state;
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/text.so", f->tmp);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("this is not a shared library\n", fp);
    fclose(fp);
    expect_error(path, "is not a shared library (no ELF header)", false);
    expect_error(path, "-shared -fPIC", false);

    snprintf(path, sizeof(path), "%s/truncated.so", f->tmp);
    fp = fopen(path, "wb");
    assert_non_null(fp);
    fwrite("\177ELF\002\001\001", 1, 7, fp);
    fclose(fp);
    expect_error(path, "could not be loaded", false);

    snprintf(path, sizeof(path), "%s/empty.so", f->tmp);
    fp = fopen(path, "wb");
    assert_non_null(fp);
    fclose(fp);
    expect_error(path, "no ELF header", false);

    snprintf(path, sizeof(path), "%s/missing.so", f->tmp);
    expect_error(path, "not found", false);
    expect_error("definitely-missing-plugin.so", "plugin 'definitely-missing-plugin.so' not found",
                 false);
    expect_error(f->tmp, "is not a shared library", false);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_plugin),
        cmocka_unit_test(test_relative_name),
        cmocka_unit_test(test_broken_plugins),
        cmocka_unit_test(test_bad_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
