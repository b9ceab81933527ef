/* Unit tests of common/config.c: documented defaults, YAML (flat and nested), WEIR_* env,
 * -D flags, precedence file < env < -D, argv handling and the one-line error texts; the listening
 * address policy (loopback unless authenticated or security.insecure) and the REST token's
 * sources. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/config.h"
#include "common/curve.h"
#include "common/err.h"
#include "common/util.h"
#include "testutil.h"

typedef struct fixture {
    char *dir;
    weir_config_t *cfg;
} fixture_t;

static int setup(void **state) {
    fixture_t *f = calloc(1, sizeof *f);
    f->dir = weir_test_tmpdir("test_config");
    f->cfg = weir_config_new();
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture_t *f = *state;
    weir_config_destroy(&f->cfg);
    assert_null(f->cfg);
    weir_test_tmpdir_remove(f->dir);
    free(f);
    return 0;
}

static const char *write_yaml(fixture_t *f, const char *name, const char *text) {
    static char path[600];
    snprintf(path, sizeof path, "%s/%s", f->dir, name);
    assert_int_equal(weir_write_file_atomic(path, text, strlen(text)), 0);
    return path;
}

/* The defaults written in docs/architecture.md (an independent oracle). */
static void test_defaults(void **state) {
    fixture_t *f = *state;
    weir_config_t *c = f->cfg;
    assert_string_equal(weir_config_get_str(c, "jobmanager.rpc.address"), "localhost");
    assert_int_equal(weir_config_get_int(c, "jobmanager.rpc.port"), 6123);
    assert_string_equal(weir_config_get_str(c, "jobmanager.bind-host"), "127.0.0.1");
    assert_string_equal(weir_config_get_str(c, "rest.address"), "localhost");
    assert_int_equal(weir_config_get_int(c, "rest.port"), 8081);
    assert_string_equal(weir_config_get_str(c, "rest.bind-address"), "127.0.0.1");
    assert_null(weir_config_get_str(c, "rest.auth.token"));
    assert_null(weir_config_get_str(c, "rest.auth.token-file"));
    assert_false(weir_config_get_bool(c, "rest.ssl.enabled"));
    assert_null(weir_config_get_str(c, "rest.ssl.certificate"));
    assert_null(weir_config_get_str(c, "rest.ssl.key"));
    assert_null(weir_config_get_str(c, "rest.ssl.trust-cert"));
    assert_true(weir_config_get_bytes(c, "rest.max-request-size") == 1u << 20);
    assert_int_equal(weir_config_get_int(c, "rest.max-connections"), 64);
    assert_int_equal(weir_config_get_ms(c, "rest.idleness-timeout"), 30000);
    assert_false(weir_config_get_bool(c, "security.insecure"));
    assert_string_equal(weir_config_get_str(c, "blob.storage.directory"), "/tmp/weir-blobs");
    assert_int_equal(weir_config_get_ms(c, "heartbeat.interval"), 1000);
    assert_int_equal(weir_config_get_ms(c, "heartbeat.timeout"), 10000);
    assert_int_equal(weir_config_get_ms(c, "slot.request.timeout"), 300000);
    assert_int_equal(weir_config_get_int(c, "parallelism.default"), 1);
    assert_int_equal(weir_config_get_int(c, "pipeline.max-parallelism"), 128);
    assert_int_equal(weir_config_get_int(c, "taskmanager.numberOfTaskSlots"), 1);
    assert_string_equal(weir_config_get_str(c, "taskmanager.host"), "127.0.0.1");
    assert_string_equal(weir_config_get_str(c, "taskmanager.bind-host"), "127.0.0.1");
    assert_int_equal(weir_config_get_int(c, "taskmanager.data.port"), 0);
    assert_null(weir_config_get_str(c, "taskmanager.resource-id"));
    assert_null(weir_config_get_str(c, "taskmanager.working-dir"));
    assert_true(weir_config_get_bytes(c, "taskmanager.memory.segment-size") == 32768);
    assert_int_equal(weir_config_get_int(c, "taskmanager.network.buffers-per-channel"), 4);
    assert_int_equal(weir_config_get_ms(c, "execution.buffer-timeout"), 5);
    assert_true(weir_config_get_bytes(c, "state.backend.cache-size") == 32u << 20);
    assert_true(weir_config_get_bytes(c, "state.backend.rocksdb.writebuffer.size") == 16u << 20);
    assert_true(weir_config_get_bytes(c, "state.backend.rocksdb.block.cache-size") == 16u << 20);
    assert_string_equal(weir_config_get_str(c, "log.level"), "info");
}

/* Every key in the table is documented, unique and appears in docs/configuration.md. */
static void test_table_and_docs(void **state) {
    (void)state;
    const weir_config_key_t *k = weir_config_keys();
    size_t n = 0;
    uint8_t *doc = NULL;
    size_t doclen = 0;
    /* __FILE__ is <src>/tests/unit/test_config.c (CMake passes absolute paths). */
    char path[1024];
    snprintf(path, sizeof path, "%s", __FILE__);
    char *cut = strstr(path, "/tests/unit/test_config.c");
    assert_non_null(cut);
    snprintf(cut, sizeof path - (size_t)(cut - path), "/docs/configuration.md");
    int have_doc = weir_read_file(path, &doc, &doclen) == 0;
    assert_true(have_doc);
    for (; k[n].name; n++) {
        assert_non_null(k[n].doc);
        assert_true(strlen(k[n].doc) > 5);
        for (size_t j = 0; j < n; j++)
            assert_string_not_equal(k[n].name, k[j].name);
        char needle[256];
        snprintf(needle, sizeof needle, "`%s`", k[n].name);
        if (!strstr((char *)doc, needle))
            fail_msg("%s is not in docs/configuration.md", k[n].name);
    }
    assert_true(n >= 25);
    free(doc);
}

static void test_yaml(void **state) {
    fixture_t *f = *state;
    char err[512] = "";
    const char *p = write_yaml(f, "weir.yaml",
                               "# comment\n"
                               "rest.port: 9091\n"
                               "jobmanager:\n"
                               "  rpc:\n"
                               "    address: jm.example\n"
                               "    port: 7000\n"
                               "heartbeat.timeout: 30s\n"
                               "taskmanager.memory.segment-size: 64kb\n"
                               "taskmanager.resource-id: tm-7\n"
                               "blob.storage.directory: \"/var/blobs\"\n");
    assert_int_equal(weir_config_load_file(f->cfg, p, err, sizeof err), 0);
    assert_int_equal(weir_config_get_int(f->cfg, "rest.port"), 9091);
    assert_string_equal(weir_config_get_str(f->cfg, "jobmanager.rpc.address"), "jm.example");
    assert_int_equal(weir_config_get_int(f->cfg, "jobmanager.rpc.port"), 7000);
    assert_int_equal(weir_config_get_ms(f->cfg, "heartbeat.timeout"), 30000);
    assert_true(weir_config_get_bytes(f->cfg, "taskmanager.memory.segment-size") == 65536);
    assert_string_equal(weir_config_get_str(f->cfg, "taskmanager.resource-id"), "tm-7");
    assert_string_equal(weir_config_get_str(f->cfg, "blob.storage.directory"), "/var/blobs");

    /* null resets a key without default */
    p = write_yaml(f, "null.yaml", "taskmanager.resource-id: ~\n");
    assert_int_equal(weir_config_load_file(f->cfg, p, err, sizeof err), 0);
    assert_null(weir_config_get_str(f->cfg, "taskmanager.resource-id"));

    /* empty file is fine */
    p = write_yaml(f, "empty.yaml", "");
    assert_int_equal(weir_config_load_file(f->cfg, p, err, sizeof err), 0);
}

static void test_yaml_errors(void **state) {
    fixture_t *f = *state;
    char err[512] = "";
    char want[1024];

    const char *p = write_yaml(f, "weir.yaml", "rest.port: abc\n");
    assert_int_equal(weir_config_load_file(f->cfg, p, err, sizeof err), WEIR_ECONFIG);
    snprintf(want, sizeof want, "bad value 'abc' for rest.port (an integer from 0 to 65535) in %s",
             p);
    assert_string_equal(err, want);
    assert_int_equal(weir_config_get_int(f->cfg, "rest.port"), 8081); /* unchanged */

    p = write_yaml(f, "unknown.yaml", "rest:\n  prot: 1\n");
    assert_int_equal(weir_config_load_file(f->cfg, p, err, sizeof err), WEIR_ECONFIG);
    snprintf(want, sizeof want,
             "unknown configuration key 'rest.prot' (from %s): see docs/configuration.md", p);
    assert_string_equal(err, want);

    p = write_yaml(f, "list.yaml", "rest.port: [1, 2]\n");
    assert_int_equal(weir_config_load_file(f->cfg, p, err, sizeof err), WEIR_ECONFIG);
    assert_non_null(strstr(err, "list"));
    assert_non_null(strstr(err, p));

    p = write_yaml(f, "syntax.yaml", "a: b: c\n  - x\n");
    assert_int_equal(weir_config_load_file(f->cfg, p, err, sizeof err), WEIR_ECONFIG);
    assert_non_null(strstr(err, p));

    p = write_yaml(f, "dur.yaml", "heartbeat.interval: 10 parsecs\n");
    assert_int_equal(weir_config_load_file(f->cfg, p, err, sizeof err), WEIR_ECONFIG);
    assert_non_null(strstr(err, "heartbeat.interval"));
    assert_non_null(strstr(err, "duration"));

    char missing[600];
    snprintf(missing, sizeof missing, "%s/nope.yaml", f->dir);
    assert_int_equal(weir_config_load_file(f->cfg, missing, err, sizeof err), WEIR_ECONFIG);
    assert_non_null(strstr(err, missing));
}

static void test_set_and_kv(void **state) {
    fixture_t *f = *state;
    char err[512] = "";
    assert_int_equal(weir_config_set_kv(f->cfg, "rest.port=1234", err, sizeof err), 0);
    assert_int_equal(weir_config_get_int(f->cfg, "rest.port"), 1234);
    assert_int_equal(weir_config_set_kv(f->cfg, "rest.prot=1", err, sizeof err), WEIR_ECONFIG);
    assert_string_equal(
        err, "unknown configuration key 'rest.prot' (from -D): see docs/configuration.md");
    assert_int_equal(weir_config_set_kv(f->cfg, "rest.port", err, sizeof err), WEIR_ECONFIG);
    assert_non_null(strstr(err, "key=value"));
    assert_int_equal(weir_config_set_kv(f->cfg, "pipeline.max-parallelism=0", err, sizeof err),
                     WEIR_ECONFIG);
    assert_int_equal(weir_config_set_kv(f->cfg, "rest.port=70000", err, sizeof err), WEIR_ECONFIG);
    assert_int_equal(weir_config_get_int(f->cfg, "rest.port"), 1234);
    /* a value with '=' inside */
    assert_int_equal(weir_config_set_kv(f->cfg, "taskmanager.host=a=b", err, sizeof err), 0);
    assert_string_equal(weir_config_get_str(f->cfg, "taskmanager.host"), "a=b");
    assert_int_equal(weir_config_set(f->cfg, "execution.buffer-timeout", "100ms", err, sizeof err),
                     0);
    assert_int_equal(weir_config_get_ms(f->cfg, "execution.buffer-timeout"), 100);
    assert_int_equal(weir_config_set(f->cfg, "state.backend.cache-size", "lots", err, sizeof err),
                     WEIR_ECONFIG);
    assert_non_null(strstr(err, "'lots'"));
}

static void test_env(void **state) {
    fixture_t *f = *state;
    char err[512] = "";
    char *env[] = {"PATH=/bin",
                   "WEIR_REST_PORT=9000",
                   "WEIR_TASKMANAGER_NUMBEROFTASKSLOTS=4",
                   "WEIR_STATE_BACKEND_ROCKSDB_BLOCK_CACHE_SIZE=1mb",
                   "WEIR_LOG_LEVEL=debug",
                   "WEIR_BUILD=/x",
                   "WEIR_TEST_ANYTHING=1",
                   "WEIR_CHAOS_SIZE=small",
                   NULL};
    assert_int_equal(weir_config_load_env(f->cfg, env, err, sizeof err), 0);
    assert_int_equal(weir_config_get_int(f->cfg, "rest.port"), 9000);
    assert_int_equal(weir_config_get_int(f->cfg, "taskmanager.numberOfTaskSlots"), 4);
    assert_true(weir_config_get_bytes(f->cfg, "state.backend.rocksdb.block.cache-size") ==
                1u << 20);

    char *bad[] = {"WEIR_REST_PROT=1", NULL};
    assert_int_equal(weir_config_load_env(f->cfg, bad, err, sizeof err), WEIR_ECONFIG);
    assert_non_null(strstr(err, "WEIR_REST_PROT"));
    char *badval[] = {"WEIR_REST_PORT=x", NULL};
    assert_int_equal(weir_config_load_env(f->cfg, badval, err, sizeof err), WEIR_ECONFIG);
    assert_string_equal(
        err, "bad value 'x' for rest.port (an integer from 0 to 65535) in WEIR_REST_PORT");
}

static void test_precedence_and_args(void **state) {
    fixture_t *f = *state;
    char err[512] = "";
    const char *p = write_yaml(f, "weir.yaml",
                               "rest.port: 1111\n"
                               "jobmanager.rpc.port: 2222\n"
                               "taskmanager.host: from-file\n"
                               "parallelism.default: 3\n");
    char path[600];
    snprintf(path, sizeof path, "%s", p);
    char *env[] = {"WEIR_REST_PORT=3333", "WEIR_JOBMANAGER_RPC_PORT=4444", NULL};
    char *argv[] = {
        "weir", "run", "-c",  path, "-D", "rest.port=5555", "job.so", "-Dtaskmanager.host=from-d",
        "--",   "-D",  "x=y", NULL};
    int argc = 11;
    assert_int_equal(weir_config_from_args(f->cfg, &argc, argv, env, err, sizeof err), 0);
    assert_int_equal(weir_config_get_int(f->cfg, "rest.port"), 5555);           /* -D wins */
    assert_int_equal(weir_config_get_int(f->cfg, "jobmanager.rpc.port"), 4444); /* env > file */
    assert_string_equal(weir_config_get_str(f->cfg, "taskmanager.host"), "from-d");
    assert_int_equal(weir_config_get_int(f->cfg, "parallelism.default"), 3); /* file */
    assert_int_equal(argc, 6);
    const char *rest[] = {"weir", "run", "job.so", "--", "-D", "x=y"};
    for (int i = 0; i < 6; i++)
        assert_string_equal(argv[i], rest[i]);
    assert_null(argv[6]);
}

static void test_args_errors(void **state) {
    fixture_t *f = *state;
    char err[512] = "";
    char *argv1[] = {"weir-jobmanager", "-Drest.prot=1", NULL};
    int argc = 2;
    assert_int_equal(weir_config_from_args(f->cfg, &argc, argv1, NULL, err, sizeof err),
                     WEIR_ECONFIG);
    assert_string_equal(
        err, "unknown configuration key 'rest.prot' (from -D): see docs/configuration.md");
    char *argv2[] = {"weir-jobmanager", "-c", NULL};
    argc = 2;
    assert_int_equal(weir_config_from_args(f->cfg, &argc, argv2, NULL, err, sizeof err),
                     WEIR_ECONFIG);
    assert_non_null(strstr(err, "-c"));
    char *argv3[] = {"weir-jobmanager", "--config=/nonexistent/weir.yaml", NULL};
    argc = 2;
    assert_int_equal(weir_config_from_args(f->cfg, &argc, argv3, NULL, err, sizeof err),
                     WEIR_ECONFIG);
    assert_non_null(strstr(err, "/nonexistent/weir.yaml"));
    char *env[] = {"WEIR_NOPE=1", NULL};
    char *argv4[] = {"weir-taskmanager", NULL};
    argc = 1;
    assert_int_equal(weir_config_from_args(f->cfg, &argc, argv4, env, err, sizeof err),
                     WEIR_ECONFIG);
    assert_non_null(strstr(err, "WEIR_NOPE"));
}

/* What counts as loopback: literal addresses only (an oracle written here, from RFC 1122's
 * 127.0.0.0/8 and RFC 4291's ::1). */
static void test_loopback(void **state) {
    (void)state;
    const char *yes[] = {"127.0.0.1", "127.255.255.254", "127.0.1.1",
                         "localhost", "LocalHost",       "::1",
                         "[::1]",     "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1"};
    const char *no[] = {"0.0.0.0",
                        "::",
                        "*",
                        "10.0.0.1",
                        "128.0.0.1",
                        "126.255.255.255",
                        "lo",
                        "eth0",
                        "",
                        "127.0.0.1 ",
                        "127.1",
                        "127.0.0.1.example.com",
                        "localhost.example.com",
                        "::2",
                        "[::]",
                        "::ffff:10.0.0.1",
                        "localhost:8081"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        if (!weir_config_host_is_loopback(yes[i]))
            fail_msg("'%s' should be loopback", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (weir_config_host_is_loopback(no[i]))
            fail_msg("'%s' should not be loopback", no[i]);
    assert_false(weir_config_host_is_loopback(NULL));
    assert_string_equal(weir_config_bind_address("localhost"), "127.0.0.1");
    assert_string_equal(weir_config_bind_address("0.0.0.0"), "0.0.0.0");
}

static void set(weir_config_t *c, const char *key, const char *value) {
    char err[512];
    if (weir_config_set(c, key, value, err, sizeof err) != 0)
        fail_msg("%s", err);
}

static void test_check_binds(void **state) {
    fixture_t *f = *state;
    weir_config_t *c = f->cfg;
    char err[1024] = "";
    /* defaults: loopback everywhere */
    assert_int_equal(weir_config_check_binds(c, WEIR_CONFIG_JOBMANAGER, err, sizeof err), 0);
    assert_int_equal(weir_config_check_binds(c, WEIR_CONFIG_TASKMANAGER, err, sizeof err), 0);

    /* REST beyond loopback needs a token (either key) or security.insecure */
    set(c, "rest.bind-address", "0.0.0.0");
    assert_int_equal(weir_config_check_binds(c, WEIR_CONFIG_JOBMANAGER, err, sizeof err),
                     WEIR_ECONFIG);
    assert_string_equal(err, "rest.bind-address 0.0.0.0 is beyond loopback and REST has no "
                             "authentication: set rest.auth.token or rest.auth.token-file (or "
                             "security.insecure: true to serve REST unauthenticated)");
    set(c, "rest.auth.token", "t0k3n-t0k3n-t0k3n");
    assert_int_equal(weir_config_check_binds(c, WEIR_CONFIG_JOBMANAGER, err, sizeof err), 0);
    set(c, "rest.auth.token", NULL);
    set(c, "rest.auth.token-file", "/some/file");
    assert_int_equal(weir_config_check_binds(c, WEIR_CONFIG_JOBMANAGER, err, sizeof err), 0);
    set(c, "rest.auth.token-file", NULL);
    set(c, "security.insecure", "true");
    assert_int_equal(weir_config_check_binds(c, WEIR_CONFIG_JOBMANAGER, err, sizeof err), 0);
    set(c, "security.insecure", "false");
    set(c, "rest.bind-address", "::1");
    assert_int_equal(weir_config_check_binds(c, WEIR_CONFIG_JOBMANAGER, err, sizeof err), 0);

    /* RPC beyond loopback: a token does not help (the control plane has no authentication) */
    set(c, "rest.auth.token", "t0k3n-t0k3n-t0k3n");
    set(c, "jobmanager.bind-host", "192.168.1.5");
    assert_int_equal(weir_config_check_binds(c, WEIR_CONFIG_JOBMANAGER, err, sizeof err),
                     WEIR_ECONFIG);
    assert_string_equal(err, "jobmanager.bind-host 192.168.1.5 is beyond loopback and the control "
                             "plane has no authentication: set security.curve.key-file to the "
                             "cluster key (ZeroMQ CURVE, `weir keygen FILE`), or set "
                             "jobmanager.bind-host to 127.0.0.1, or set security.insecure: true "
                             "to accept control messages from anyone who can reach it");
    set(c, "security.insecure", "yes");
    assert_int_equal(weir_config_check_binds(c, WEIR_CONFIG_JOBMANAGER, err, sizeof err), 0);
    /* CURVE authenticates the control plane: no override needed */
    set(c, "security.insecure", "false");
    set(c, "security.curve.key-file", "/etc/weir/cluster.key");
    assert_int_equal(weir_config_check_binds(c, WEIR_CONFIG_JOBMANAGER, err, sizeof err), 0);
    set(c, "security.curve.key-file", NULL);
    /* the task manager's keys are not the job manager's business, and the other way round */
    set(c, "security.insecure", "false");
    set(c, "jobmanager.bind-host", "127.0.0.1");
    set(c, "taskmanager.bind-host", "0.0.0.0");
    assert_int_equal(weir_config_check_binds(c, WEIR_CONFIG_JOBMANAGER, err, sizeof err), 0);
    set(c, "rest.bind-address", "0.0.0.0");
    set(c, "rest.auth.token", NULL);
    assert_int_equal(weir_config_check_binds(c, WEIR_CONFIG_TASKMANAGER, err, sizeof err),
                     WEIR_ECONFIG);
    assert_string_equal(err, "taskmanager.bind-host 0.0.0.0 is beyond loopback and the data plane "
                             "has no authentication: set security.curve.key-file to the cluster "
                             "key (ZeroMQ CURVE, `weir keygen FILE`), or set taskmanager.bind-host "
                             "to 127.0.0.1, or set security.insecure: true to accept records and "
                             "credits from anyone who can reach it");
    set(c, "security.insecure", "true");
    assert_int_equal(weir_config_check_binds(c, WEIR_CONFIG_TASKMANAGER, err, sizeof err), 0);
    set(c, "security.insecure", "false");
    set(c, "security.curve.key-file", "/etc/weir/cluster.key");
    assert_int_equal(weir_config_check_binds(c, WEIR_CONFIG_TASKMANAGER, err, sizeof err), 0);
    set(c, "security.curve.key-file", NULL);
    set(c, "security.insecure", "true");

    /* a loopback data plane must be advertised as loopback (or as the very address it binds) */
    set(c, "security.insecure", "false");
    set(c, "taskmanager.bind-host", "127.0.0.1");
    set(c, "taskmanager.host", "worker-7.example.com");
    assert_int_equal(weir_config_check_binds(c, WEIR_CONFIG_TASKMANAGER, err, sizeof err),
                     WEIR_ECONFIG);
    assert_string_equal(err, "taskmanager.host worker-7.example.com is advertised to peers but the "
                             "data plane listens on taskmanager.bind-host 127.0.0.1 only: set "
                             "taskmanager.host to 127.0.0.1, or taskmanager.bind-host to an "
                             "address peers reach it by");
    set(c, "taskmanager.host", "localhost");
    assert_int_equal(weir_config_check_binds(c, WEIR_CONFIG_TASKMANAGER, err, sizeof err), 0);
    set(c, "taskmanager.bind-host", "10.0.0.7");
    set(c, "taskmanager.host", "10.0.0.7");
    assert_int_equal(weir_config_check_binds(c, WEIR_CONFIG_TASKMANAGER, err, sizeof err),
                     WEIR_ECONFIG);
    assert_non_null(strstr(err, "taskmanager.bind-host 10.0.0.7 is beyond loopback"));
}

static void test_rest_token(void **state) {
    fixture_t *f = *state;
    weir_config_t *c = f->cfg;
    char err[1024] = "", path[600];
    char *tok = (char *)"not touched";
    assert_int_equal(weir_config_rest_token(c, &tok, err, sizeof err), 0);
    assert_null(tok);

    set(c, "rest.auth.token", "abc.DEF-123_~+/=");
    assert_int_equal(weir_config_rest_token(c, &tok, err, sizeof err), 0);
    assert_string_equal(tok, "abc.DEF-123_~+/=");
    free(tok);

    /* the file: one trailing newline (LF or CRLF) is not part of the token */
    snprintf(path, sizeof path, "%s", write_yaml(f, "token", "s3cret-from-file\r\n"));
    set(c, "rest.auth.token-file", path);
    assert_int_equal(weir_config_rest_token(c, &tok, err, sizeof err), WEIR_ECONFIG);
    assert_string_equal(err, "both rest.auth.token and rest.auth.token-file are set: set one");
    set(c, "rest.auth.token", NULL);
    assert_int_equal(weir_config_rest_token(c, &tok, err, sizeof err), 0);
    assert_string_equal(tok, "s3cret-from-file");
    free(tok);
    tok = NULL;

    /* empty, unreadable, a directory, spaces, a second line */
    const char *bad[][2] = {{"", "is empty"},
                            {"\n", "is empty"},
                            {"two words\n", "(byte 4): use visible ASCII without spaces"},
                            {"line1\nline2\n", "(byte 6)"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(path, sizeof path, "%s", write_yaml(f, "token", bad[i][0]));
        assert_int_equal(weir_config_rest_token(c, &tok, err, sizeof err), WEIR_ECONFIG);
        assert_null(tok);
        if (!strstr(err, bad[i][1]) || !strstr(err, "rest.auth.token-file") || !strstr(err, path))
            fail_msg("token file %zu: '%s'", i, err);
    }
    snprintf(path, sizeof path, "%s/missing-token", f->dir);
    set(c, "rest.auth.token-file", path);
    assert_int_equal(weir_config_rest_token(c, &tok, err, sizeof err), WEIR_ECONFIG);
    char want[1024];
    snprintf(want, sizeof want, "cannot read rest.auth.token-file %s: No such file or directory",
             path);
    assert_string_equal(err, want);
    set(c, "rest.auth.token-file", f->dir);
    assert_int_equal(weir_config_rest_token(c, &tok, err, sizeof err), WEIR_ECONFIG);
    assert_non_null(strstr(err, "Is a directory"));
    set(c, "rest.auth.token-file", NULL);
    set(c, "rest.auth.token", "");
    assert_int_equal(weir_config_rest_token(c, &tok, err, sizeof err), WEIR_ECONFIG);
    assert_non_null(strstr(err, "rest.auth.token is empty"));
    set(c, "rest.auth.token", "caf\xc3\xa9");
    assert_int_equal(weir_config_rest_token(c, &tok, err, sizeof err), WEIR_ECONFIG);
    assert_non_null(strstr(err, "rest.auth.token holds a character"));
    assert_null(tok);

    /* the environment and YAML reach the same key (the CLI's sources) */
    char *env[] = {"WEIR_REST_AUTH_TOKEN=from-env", NULL};
    set(c, "rest.auth.token", NULL);
    assert_int_equal(weir_config_load_env(c, env, err, sizeof err), 0);
    assert_string_equal(weir_config_get_str(c, "rest.auth.token"), "from-env");
    const char *p = write_yaml(f, "w.yaml", "rest:\n  auth:\n    token: from-yaml\n");
    assert_int_equal(weir_config_load_file(c, p, err, sizeof err), 0);
    assert_string_equal(weir_config_get_str(c, "rest.auth.token"), "from-yaml");
}

/* The bounds are validated like every key: ranges and types, one line naming the key. */
static void test_rest_bounds(void **state) {
    fixture_t *f = *state;
    char err[512] = "";
    assert_int_equal(weir_config_set(f->cfg, "rest.max-connections", "0", err, sizeof err),
                     WEIR_ECONFIG);
    assert_string_equal(
        err, "bad value '0' for rest.max-connections (an integer from 1 to 65536) in the command "
             "line");
    assert_int_equal(weir_config_set(f->cfg, "rest.max-request-size", "lots", err, sizeof err),
                     WEIR_ECONFIG);
    assert_non_null(strstr(err, "rest.max-request-size"));
    assert_int_equal(weir_config_set(f->cfg, "security.insecure", "maybe", err, sizeof err),
                     WEIR_ECONFIG);
    assert_string_equal(err, "bad value 'maybe' for security.insecure (true or false) in the "
                             "command line");
    assert_int_equal(weir_config_set(f->cfg, "rest.idleness-timeout", "2s", err, sizeof err), 0);
    assert_int_equal(weir_config_get_ms(f->cfg, "rest.idleness-timeout"), 2000);
}

/* The CURVE key file: the key pairs of the zmq_curve(7) manual page are the oracle. */
#define MAN_SERVER_PUB "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
#define MAN_SERVER_SEC "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"
#define MAN_CLIENT_PUB "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"
#define MAN_CLIENT_SEC "D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs"
static void test_curve_keys(void **state) {
    fixture_t *f = *state;
    weir_config_t *c = f->cfg;
    char err[1024] = "", path[600];
    weir_curve_t k;
    /* unset: CURVE off */
    assert_int_equal(weir_curve_load(c, &k, err, sizeof err), 0);
    assert_false(k.enabled);

    assert_int_equal(weir_curve_parse("# a comment\n\npublic-key: " MAN_SERVER_PUB
                                      "\r\n  secret-key:\t" MAN_SERVER_SEC " \n",
                                      "F", &k, err, sizeof err),
                     0);
    assert_true(k.enabled);
    assert_string_equal(k.public_key, MAN_SERVER_PUB);
    assert_string_equal(k.secret_key, MAN_SERVER_SEC);
    const char *bad[][2] = {
        {"public-key: " MAN_CLIENT_PUB "\nsecret-key: " MAN_SERVER_SEC "\n",
         "F: the public key does not belong to the secret key (use a file made by `weir keygen "
         "FILE`)"},
        {"public-key: " MAN_SERVER_PUB "\n",
         "F has no secret-key line (make the file with `weir keygen FILE`)"},
        {"", "F has no public-key line (make the file with `weir keygen FILE`)"},
        {"public-key: " MAN_SERVER_PUB "x\nsecret-key: " MAN_SERVER_SEC "\n",
         "F line 1: a key is 40 Z85 characters (make the file with `weir keygen FILE`)"},
        {"public-key: " MAN_SERVER_PUB "\nsecret-key: JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh~\n",
         "F line 2: a key is 40 Z85 characters (make the file with `weir keygen FILE`)"},
        {"public-key: " MAN_SERVER_PUB "\nprivate: x\n",
         "F line 2: expected 'public-key: KEY' or 'secret-key: KEY' (make the file with `weir "
         "keygen FILE`)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(weir_curve_parse(bad[i][0], "F", &k, err, sizeof err), WEIR_ECONFIG);
        assert_string_equal(err, bad[i][1]);
        assert_false(k.enabled);
    }

    /* keygen: a new 0600 file that loads; never replaces a file */
    snprintf(path, sizeof path, "%s/cluster.key", f->dir);
    assert_int_equal(weir_curve_keygen(path, err, sizeof err), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    set(c, "security.curve.key-file", path);
    assert_int_equal(weir_curve_load(c, &k, err, sizeof err), 0);
    assert_true(k.enabled);
    assert_int_equal(strlen(k.public_key), 40);
    assert_int_equal(strlen(k.secret_key), 40);
    weir_curve_t k2;
    char path2[620];
    snprintf(path2, sizeof path2, "%s/other.key", f->dir);
    assert_int_equal(weir_curve_keygen(path2, err, sizeof err), 0);
    set(c, "security.curve.key-file", path2);
    assert_int_equal(weir_curve_load(c, &k2, err, sizeof err), 0);
    assert_string_not_equal(k.secret_key, k2.secret_key);
    assert_int_equal(weir_curve_keygen(path, err, sizeof err), WEIR_EIO);
    assert_non_null(strstr(err, "a key file is never replaced"));
    set(c, "security.curve.key-file", path);
    assert_int_equal(weir_curve_load(c, &k2, err, sizeof err), 0);
    assert_string_equal(k.secret_key, k2.secret_key);

    /* a missing file: one line naming the key */
    snprintf(path2, sizeof path2, "%s/missing.key", f->dir);
    set(c, "security.curve.key-file", path2);
    assert_int_equal(weir_curve_load(c, &k2, err, sizeof err), WEIR_ECONFIG);
    assert_non_null(strstr(err, "cannot read security.curve.key-file"));
    assert_non_null(strstr(err, "weir keygen FILE"));
    set(c, "security.curve.key-file", NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_table_and_docs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_yaml, setup, teardown),
        cmocka_unit_test_setup_teardown(test_yaml_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_and_kv, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_precedence_and_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_args_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loopback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_binds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rest_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_curve_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rest_bounds, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
