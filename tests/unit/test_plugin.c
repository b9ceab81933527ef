/* Tests of runtime/graph/plugin.c: loading the test plugins of tests/plugins (built into
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
#include "testutil.h"

typedef struct fixture {
    char plugins[PATH_MAX]; /* directory holding the test plugins */
    char *tmp;              /* fresh temporary directory */
} fixture_t;

static int setup(void **state) {
    fixture_t *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    weir_test_plugin_dir(WEIR_TEST_PLUGIN, f->plugins, sizeof(f->plugins));
    f->tmp = weir_test_tmpdir("test_plugin");
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture_t *f = *state;
    weir_test_tmpdir_remove(f->tmp);
    free(f);
    return 0;
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
    (void)state;
    char path[PATH_MAX + 128];
    weir_test_plugin_path(WEIR_TEST_PLUGIN, "good.so", path, sizeof(path));
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
    /* the arguments are kept for weir_job_args (argv[0] included, NULL-terminated) */
    assert_int_equal(job->argc, 2);
    assert_string_equal(job->argv[1], "42");
    assert_null(job->argv[2]);
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
    (void)state;
    char path[PATH_MAX + 128];
    weir_test_plugin_path(WEIR_TEST_PLUGIN, "noabi.so", path, sizeof(path));
    expect_error(path, "was built for weir ABI 999 but this weir speaks ABI 1", false);
    weir_test_plugin_path(WEIR_TEST_PLUGIN, "nodesc.so", path, sizeof(path));
    expect_error(path, "exports no weir_plugin_descriptor", false);
    weir_test_plugin_path(WEIR_TEST_PLUGIN, "badmagic.so", path, sizeof(path));
    expect_error(path, "WEIR_PLUGIN(", false);
    weir_test_plugin_path(WEIR_TEST_PLUGIN, "failing.so", path, sizeof(path));
    expect_error(path, "usage: failing INPUT OUTPUT (got 0 arguments)", true);
    weir_test_plugin_path(WEIR_TEST_PLUGIN, "retcode.so", path, sizeof(path));
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
