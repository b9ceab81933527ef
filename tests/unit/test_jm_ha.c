/* Tests the job manager's HA store (jobmanager/ha.c): a job record, its plugin copy and its
 * checkpoint pointer survive a save/load round trip; removal; unreadable entries are skipped;
 * the blob store finds plugins in the HA blobs directory. A read error at recovery (injected
 * through store_io.h) is retried and then fails the load instead of dropping the job or its
 * pointer. A job manager with fake task managers (mock_tm.h) whose HA pointer cannot be written:
 * the checkpoint fails (not completed, not notified, counted against the tolerance), the attempt
 * that follows restores the checkpoint the pointer names, retention kept it, and checkpoints
 * complete again once the pointer can be written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <jansson.h>
#include <zmq.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/util.h"
#include "jobmanager/blobstore.h"
#include "jobmanager/ha.h"
#include "jobmanager/jobmanager.h"
#include "jobmanager/store_io.h"
#include "mock_tm.h"
#include "savepoint/read.h"
#include "storage/storage.h"
#include "testutil.h"

/* The HA store of the tests: the POSIX backend (storage/posix.c) rooted at a directory; one open
 * storage, reopened when the directory changes. */
static weir_storage_env_t *g_env;
static weir_storage_t *g_st;

static weir_storage_t *st_at(const char *dir) {
    if (g_st && strcmp(weir_storage_uri(g_st), dir) == 0)
        return g_st;
    weir_storage_close(&g_st);
    char err[512];
    if (!g_env)
        g_env = weir_storage_env_new(NULL, err, sizeof err);
    assert_non_null(g_env);
    g_st = weir_storage_open(g_env, dir, err, sizeof err);
    if (!g_st)
        fail_msg("%s", err);
    return g_st;
}

static int teardown_storage(void **state) {
    (void)state;
    weir_storage_close(&g_st);
    weir_storage_env_free(&g_env);
    return 0;
}

static void test_round_trip(void **state) {
    (void)state;
    char *dir = weir_test_tmpdir("jmha");
    char err[512];
    char *args[] = {"--in", "a b"};
    uint32_t par[] = {2, 1};
    /* sha256("abc") */
    const char *sha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    weir_ha_job_t j = {.id = "00112233445566778899aabbccddeeff",
                       .name = "wordcount",
                       .graph_json = "{\"name\":\"wordcount\",\"nodes\":[]}",
                       .args = args,
                       .n_args = 2,
                       .attempt = 3,
                       .parallelism = par,
                       .n_vertices = 2,
                       .submit_ms = 1234567};
    memcpy(j.plugin, sha, 65);
    assert_int_equal(weir_ha_save_job(st_at(dir), &j, err, sizeof err), 0);
    assert_int_equal(weir_ha_save_blob(st_at(dir), sha, "abc", 3, err, sizeof err), 0);
    /* a second job without pointer, and a broken entry */
    weir_ha_job_t j2 = j;
    memcpy(j2.id, "ffffffffffffffffffffffffffffffff", 33);
    j2.n_args = 0;
    j2.attempt = 1;
    assert_int_equal(weir_ha_save_job(st_at(dir), &j2, err, sizeof err), 0);
    char p[1200];
    snprintf(p, sizeof p, "%s/jobs/broken", dir);
    weir_mkdirs(p);
    snprintf(p, sizeof p, "%s/jobs/broken/job.json", dir);
    assert_int_equal(weir_write_file_atomic(p, "{\"id\":", 6), 0);
    assert_int_equal(
        weir_ha_set_checkpoint(st_at(dir), j.id, "/ck/00112233/chk-9", err, sizeof err), 0);

    weir_ha_job_t *jobs;
    size_t n;
    assert_int_equal(weir_ha_load_jobs(st_at(dir), NULL, &jobs, &n, err, sizeof err), 0);
    assert_int_equal(n, 2);
    weir_ha_job_t *a = strcmp(jobs[0].id, j.id) == 0 ? &jobs[0] : &jobs[1];
    weir_ha_job_t *b = a == &jobs[0] ? &jobs[1] : &jobs[0];
    assert_string_equal(a->id, j.id);
    assert_string_equal(a->name, "wordcount");
    assert_string_equal(a->graph_json, "{\"name\":\"wordcount\",\"nodes\":[]}");
    assert_int_equal(a->n_args, 2);
    assert_string_equal(a->args[1], "a b");
    assert_string_equal(a->plugin, sha);
    assert_int_equal(a->attempt, 3);
    assert_int_equal(a->n_vertices, 2);
    assert_int_equal(a->parallelism[0], 2);
    assert_int_equal(a->submit_ms, 1234567);
    assert_string_equal(a->checkpoint, "/ck/00112233/chk-9");
    assert_string_equal(b->id, "ffffffffffffffffffffffffffffffff");
    assert_null(b->checkpoint);
    assert_int_equal(b->n_args, 0);
    weir_ha_jobs_free(jobs, n);

    /* the plugin copy reads back (the job manager copies it into its blob store at recovery),
     * bounded; an absent one is WEIR_ENOTFOUND */
    uint8_t *data;
    size_t len;
    assert_int_equal(
        weir_ha_load_blob(st_at(dir), sha, 1 << 20, NULL, &data, &len, err, sizeof err), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(data, "abc", 3);
    free(data);
    char hb[800];
    snprintf(hb, sizeof hb, "%s/blobs/%s", dir, sha);
    struct stat bst;
    assert_int_equal(stat(hb, &bst), 0); /* where ha.h says */
    assert_int_equal(weir_ha_load_blob(st_at(dir), sha, 2, NULL, &data, &len, err, sizeof err),
                     WEIR_ENOSPACE);
    assert_int_equal(
        weir_ha_load_blob(st_at(dir), "00", 1 << 20, NULL, &data, &len, err, sizeof err),
        WEIR_ENOTFOUND);

    /* removal */
    assert_int_equal(weir_ha_remove_job(st_at(dir), j.id, err, sizeof err), 0);
    assert_int_equal(weir_ha_load_jobs(st_at(dir), NULL, &jobs, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(jobs[0].id, "ffffffffffffffffffffffffffffffff");
    weir_ha_jobs_free(jobs, n);
    weir_test_tmpdir_remove(dir);
}

/* ------------------------------------------------------------ injected read errors */

static const char *SHA_ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
static const char *JOB_ID = "00112233445566778899aabbccddeeff";

/* One-vertex-chain graph: a generator source and a blackhole sink, parallelism 1. */
static const char *GRAPH1 =
    "{\"name\":\"hajob\",\"default_parallelism\":1,\"nodes\":["
    "{\"id\":0,\"kind\":\"source_generator\",\"name\":\"src\",\"uid\":\"src\",\"parallelism\":1,"
    "\"input\":-1},"
    "{\"id\":1,\"kind\":\"sink_blackhole\",\"name\":\"sink\",\"parallelism\":1,\"input\":0,"
    "\"partitioning\":\"forward\"}]}";

static void save_record(const char *ha) {
    char err[512];
    uint32_t par[] = {1};
    weir_ha_job_t j = {.name = "hajob",
                       .graph_json = (char *)GRAPH1,
                       .attempt = 1,
                       .parallelism = par,
                       .n_vertices = 1,
                       .submit_ms = 1};
    memcpy(j.id, JOB_ID, 33);
    memcpy(j.plugin, SHA_ABC, 65);
    assert_int_equal(weir_ha_save_blob(st_at(ha), SHA_ABC, "abc", 3, err, sizeof err), 0);
    assert_int_equal(weir_ha_save_job(st_at(ha), &j, err, sizeof err), 0);
}

static void test_load_read_errors(void **state) {
    (void)state;
    char *dir = weir_test_tmpdir("jmha");
    char err[1024];
    save_record(dir);
    assert_int_equal(weir_ha_set_checkpoint(st_at(dir), JOB_ID, "/ck/x/chk-4", err, sizeof err), 0);
    weir_ha_job_t *jobs;
    size_t n;
    int transient[] = {EIO, EMFILE, ENFILE, ENOMEM};
    const char *files[] = {"job.json", "/checkpoint"};
    for (int f = 0; f < 2; f++)
        for (int k = 0; k < 4; k++) {
            /* two failures, then the read works: the job and its pointer are loaded */
            weir_test_flaky_t fl = {.match = files[f], .err = transient[k], .fails = 2};
            weir_store_io_t io = {
                .read = weir_test_flaky_read, .ctx = &fl, .attempts = 4, .backoff_ms = 1};
            assert_int_equal(weir_ha_load_jobs(st_at(dir), &io, &jobs, &n, err, sizeof err), 0);
            assert_int_equal(fl.calls, 3);
            assert_int_equal(n, 1);
            assert_string_equal(jobs[0].checkpoint, "/ck/x/chk-4");
            weir_ha_jobs_free(jobs, n);
            /* failing on every attempt: the load fails naming the file and errno (the job is not
             * dropped, its pointer not taken as absent) */
            fl.fails = 100;
            fl.calls = 0;
            assert_int_equal(weir_ha_load_jobs(st_at(dir), &io, &jobs, &n, err, sizeof err),
                             WEIR_EIO);
            assert_int_equal(fl.calls, 4);
            assert_int_equal(n, 0);
            char expect[1300];
            snprintf(expect, sizeof expect, "%s/jobs/%s/%s: %s (errno %d) after 4 attempts", dir,
                     JOB_ID, f == 0 ? "job.json" : "checkpoint", strerror(transient[k]),
                     transient[k]);
            if (!strstr(err, expect))
                fail_msg("error '%s' does not contain '%s'", err, expect);
        }
    /* a non-transient error is not retried, and not taken for a corrupt record either */
    weir_test_flaky_t fl = {.match = "job.json", .err = EACCES, .fails = 1};
    weir_store_io_t io = {.read = weir_test_flaky_read, .ctx = &fl, .attempts = 4, .backoff_ms = 1};
    assert_int_equal(weir_ha_load_jobs(st_at(dir), &io, &jobs, &n, err, sizeof err), WEIR_EIO);
    assert_int_equal(fl.calls, 1);
    assert_non_null(strstr(err, "Permission denied (errno 13)"));
    /* a directory in place of job.json is no object (storage.h): the entry has no job.json and
     * is skipped with a WARN, like one whose job.json was never written */
    char p[1200];
    snprintf(p, sizeof p, "%s/jobs/%s/job.json", dir, JOB_ID);
    assert_int_equal(unlink(p), 0);
    assert_int_equal(mkdir(p, 0755), 0);
    assert_int_equal(weir_ha_load_jobs(st_at(dir), NULL, &jobs, &n, err, sizeof err), 0);
    assert_int_equal(n, 0);
    weir_test_tmpdir_remove(dir);
}

static void test_pointer_write_fails(void **state) {
    (void)state;
    char *dir = weir_test_tmpdir("jmha");
    char err[1024], p[1200];
    save_record(dir);
    /* the pointer's name is taken by a directory: the atomic rename fails */
    snprintf(p, sizeof p, "%s/jobs/%s/checkpoint", dir, JOB_ID);
    assert_int_equal(mkdir(p, 0755), 0);
    assert_int_not_equal(weir_ha_set_checkpoint(st_at(dir), JOB_ID, "/ck/x/chk-5", err, sizeof err),
                         0);
    assert_non_null(strstr(err, "HA: cannot write"));
    assert_non_null(strstr(err, "/checkpoint"));
    weir_test_tmpdir_remove(dir);
}

/* ------------------------------------------------------------ the job result store */

#define JOB_ID_LIT "00112233445566778899aabbccddeeff" /* = JOB_ID */

/* Writes @p text as <ha>/results/<JOB_ID>.json. */
static void put_result(const char *ha, const char *text) {
    char d[700], p[800];
    snprintf(d, sizeof d, "%s/results", ha);
    assert_int_equal(weir_mkdirs(d), 0);
    snprintf(p, sizeof p, "%s/%s.json", d, JOB_ID);
    assert_int_equal(weir_write_file_atomic(p, text, strlen(text)), 0);
}

/* A record round-trips with and without savepoint; the file is the documented JSON object (read
 * back by jansson, not by ha.c); a missing record is WEIR_ENOTFOUND; damaged ones are
 * WEIR_ECORRUPT naming the file; a bad id or state is refused when writing. */
static void test_result_store(void **state) {
    (void)state;
    char *dir = weir_test_tmpdir("jmresult");
    char err[1024], path[800];
    weir_ha_result_t r = {.name = "wordcount", .state = "FINISHED", .end_ms = 1700000000123};
    memcpy(r.id, JOB_ID, 33);
    weir_ha_result_t got;
    assert_int_equal(weir_ha_load_result(st_at(dir), JOB_ID, NULL, &got, err, sizeof err),
                     WEIR_ENOTFOUND);
    assert_int_equal(weir_ha_save_result(st_at(dir), &r, err, sizeof err), 0);
    weir_ha_result_path(dir, JOB_ID, path, sizeof path);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    assert_non_null(root);
    assert_string_equal(json_string_value(json_object_get(root, "id")), JOB_ID);
    assert_string_equal(json_string_value(json_object_get(root, "name")), "wordcount");
    assert_string_equal(json_string_value(json_object_get(root, "state")), "FINISHED");
    assert_true(json_integer_value(json_object_get(root, "end-time")) == 1700000000123);
    assert_null(json_object_get(root, "savepoint"));
    json_decref(root);
    assert_int_equal(weir_ha_load_result(st_at(dir), JOB_ID, NULL, &got, err, sizeof err), 0);
    assert_string_equal(got.id, JOB_ID);
    assert_string_equal(got.name, "wordcount");
    assert_string_equal(got.state, "FINISHED");
    assert_true(got.end_ms == 1700000000123);
    assert_null(got.savepoint);
    weir_ha_result_clear(&got);

    r.savepoint = "/sp/savepoint-001122-aabbccddeeff";
    memcpy(r.state, "CANCELED", 9);
    assert_int_equal(weir_ha_save_result(st_at(dir), &r, err, sizeof err), 0);
    assert_int_equal(weir_ha_load_result(st_at(dir), JOB_ID, NULL, &got, err, sizeof err), 0);
    assert_string_equal(got.state, "CANCELED");
    assert_string_equal(got.savepoint, "/sp/savepoint-001122-aabbccddeeff");
    weir_ha_result_clear(&got);

    memcpy(r.state, "RUNNING", 8);
    assert_int_equal(weir_ha_save_result(st_at(dir), &r, err, sizeof err), WEIR_EINVAL);
    memcpy(r.state, "FAILED", 7);
    memcpy(r.id, "0011", 5);
    assert_int_equal(weir_ha_save_result(st_at(dir), &r, err, sizeof err), WEIR_EINVAL);

    static const char *const bad[] = {
        "not json",
        "{\"id\":\"ffffffffffffffffffffffffffffffff\",\"state\":\"FAILED\",\"end-time\":1}",
        "{\"id\":\"" JOB_ID_LIT "\",\"state\":\"RUNNING\",\"end-time\":1}",
        "{\"id\":\"" JOB_ID_LIT "\",\"state\":\"FAILED\"}",
        "{\"id\":\"" JOB_ID_LIT "\",\"state\":\"FAILED\",\"end-time\":1,\"savepoint\":3}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        put_result(dir, bad[i]);
        err[0] = 0;
        assert_int_equal(weir_ha_load_result(st_at(dir), JOB_ID, NULL, &got, err, sizeof err),
                         WEIR_ECORRUPT);
        assert_non_null(strstr(err, path));
    }
    weir_test_tmpdir_remove(dir);
}

/* The application job id is the documented sha256 prefix (expected values computed with Python's
 * hashlib, not with weir): it depends on the cluster id and the savepoint path. */
static void test_application_job_id(void **state) {
    (void)state;
    char id[33];
    weir_ha_application_job_id("default", NULL, id);
    assert_string_equal(id, "cd3bdc7392b8dba8a046d23d36661487");
    weir_ha_application_job_id("default", "", id);
    assert_string_equal(id, "cd3bdc7392b8dba8a046d23d36661487");
    weir_ha_application_job_id("weir", "/var/lib/weir/savepoints/savepoint-abc123-0123456789ab",
                               id);
    assert_string_equal(id, "d07840e970f584512195b9f1b027acda");
    assert_true(weir_ha_valid_job_id(id));
    assert_false(weir_ha_valid_job_id("D07840E970F584512195B9F1B027ACDA"));
    assert_false(weir_ha_valid_job_id("d07840e970f584512195b9f1b027acd"));
    assert_false(weir_ha_valid_job_id("d07840e970f584512195b9f1b027acdag"));
    assert_false(weir_ha_valid_job_id(NULL));
}

/* A job manager dies after writing a job's result record and before removing its HA entry: the
 * next one finds the record, removes the entry and does not run the job again. */
static void test_recover_skips_ended_job(void **state) {
    (void)state;
    char *dir = weir_test_tmpdir("jmresultrec");
    char ha[700], blobs[700], jdir[800], err[1024];
    snprintf(ha, sizeof ha, "%s/ha", dir);
    snprintf(blobs, sizeof blobs, "%s/blobs", dir);
    save_record(ha);
    weir_ha_result_t r = {.name = "hajob", .state = "FINISHED", .end_ms = 5};
    memcpy(r.id, JOB_ID, 33);
    assert_int_equal(weir_ha_save_result(st_at(ha), &r, err, sizeof err), 0);
    const char *kv[][2] = {{"rest.port", "0"},
                           {"jobmanager.rpc.port", "0"},
                           {"rest.bind-address", "127.0.0.1"},
                           {"jobmanager.bind-host", "127.0.0.1"},
                           {"blob.storage.directory", blobs},
                           {"high-availability.storageDir", ha}};
    weir_config_t *cfg = weir_config_new();
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        assert_int_equal(weir_config_set(cfg, kv[i][0], kv[i][1], err, sizeof err), 0);
    weir_jobmanager_t *jm = weir_jobmanager_new(cfg, err, sizeof err);
    weir_config_destroy(&cfg);
    if (!jm)
        fail_msg("job manager: %s", err);
    assert_int_equal(jm->n_jobs, 0);
    snprintf(jdir, sizeof jdir, "%s/jobs/%s", ha, JOB_ID);
    struct stat st;
    assert_int_not_equal(stat(jdir, &st), 0);
    weir_jobmanager_destroy(&jm);
    weir_test_tmpdir_remove(dir);
}

/* Locations and storage settings the job manager cannot use are refused at start, one line naming
 * the key and the fix. */
static void test_bad_locations(void **state) {
    (void)state;
    char *dir = weir_test_tmpdir("jmbadloc");
    char blobs[700], err[1024];
    snprintf(blobs, sizeof blobs, "%s/blobs", dir);
    const char *bad[][3] = {
        {"state.savepoints.dir", "s3://B/x", "s3://bucket/prefix"},
        {"high-availability.storageDir", "relative/ha", "not an absolute path"},
        {"s3.retry.max-attempts", "zero", "s3.retry.max-attempts"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *kv[][2] = {{"rest.port", "0"},
                               {"jobmanager.rpc.port", "0"},
                               {"rest.bind-address", "127.0.0.1"},
                               {"jobmanager.bind-host", "127.0.0.1"},
                               {"blob.storage.directory", blobs},
                               {bad[i][0], bad[i][1]}};
        weir_config_t *cfg = weir_config_new();
        err[0] = 0;
        int set = 0;
        for (size_t k = 0; k < sizeof kv / sizeof kv[0]; k++)
            set |= weir_config_set(cfg, kv[k][0], kv[k][1], err, sizeof err);
        weir_jobmanager_t *jm = set ? NULL : weir_jobmanager_new(cfg, err, sizeof err);
        weir_config_destroy(&cfg);
        if (jm) {
            weir_jobmanager_destroy(&jm);
            fail_msg("%s = %s accepted", bad[i][0], bad[i][1]);
        }
        if (!strstr(err, bad[i][0]) && !strstr(err, bad[i][1]))
            fail_msg("'%s' names neither %s nor its value", err, bad[i][0]);
        if (!strstr(err, bad[i][2]) || strchr(err, '\n'))
            fail_msg("'%s' does not say '%s' in one line", err, bad[i][2]);
    }
    weir_test_tmpdir_remove(dir);
}

/* ------------------------------------------------------------ a failing HA pointer */

typedef struct jmfx {
    char *dir;
    char ha[600], ck[600];
    weir_jobmanager_t *jm;
    pthread_t thread;
    void *zctx;
} jmfx_t;

static void *run_jm(void *arg) {
    weir_jobmanager_run(arg, -1);
    return NULL;
}

static void jm_start(jmfx_t *f) {
    f->dir = weir_test_tmpdir("jmhafail");
    snprintf(f->ha, sizeof f->ha, "%s/ha", f->dir);
    snprintf(f->ck, sizeof f->ck, "%s/ck", f->dir);
    char blobs[700], err[512];
    snprintf(blobs, sizeof blobs, "%s/blobs", f->dir);
    save_record(f->ha); /* recovered at start: deployed as attempt 2 */
    const char *kv[][2] = {
        {"rest.port", "0"},
        {"jobmanager.rpc.port", "0"},
        {"rest.bind-address", "127.0.0.1"},
        {"jobmanager.bind-host", "127.0.0.1"},
        {"blob.storage.directory", blobs},
        {"heartbeat.interval", "100ms"},
        {"execution.checkpointing.interval", "100ms"},
        {"execution.checkpointing.tolerable-failed-checkpoints", "0"},
        {"state.checkpoints.dir", f->ck},
        {"high-availability.storageDir", f->ha},
        {"restart-strategy.type", "fixed-delay"},
        {"restart-strategy.fixed-delay.attempts", "5"},
        {"restart-strategy.fixed-delay.delay", "100ms"},
    };
    weir_config_t *cfg = weir_config_new();
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        assert_int_equal(weir_config_set(cfg, kv[i][0], kv[i][1], err, sizeof err), 0);
    f->jm = weir_jobmanager_new(cfg, err, sizeof err);
    weir_config_destroy(&cfg);
    if (!f->jm)
        fail_msg("job manager: %s", err);
    pthread_create(&f->thread, NULL, run_jm, f->jm);
    f->zctx = zmq_ctx_new();
}

static void jm_stop(jmfx_t *f) {
    weir_jobmanager_stop(f->jm);
    pthread_join(f->thread, NULL);
    weir_jobmanager_destroy(&f->jm);
    zmq_ctx_term(f->zctx);
    weir_test_tmpdir_remove(f->dir);
}

/* Receives the DEPLOY of attempt @p attempt (one subtask); @returns its restore id and copies its
 * op state into @p op. */
static uint64_t expect_deploy(weir_mock_tm_t *tm, uint32_t attempt, char op[64]) {
    weir_msg_t m;
    assert_int_equal(weir_mock_tm_expect(tm, WEIR_MSG_DEPLOY, &m, 5000), 0);
    assert_string_equal(m.job_id, JOB_ID);
    assert_int_equal(m.attempt, attempt);
    assert_int_equal(m.vertex, 0);
    assert_int_equal(m.subtask, 0);
    uint64_t id = m.restore_checkpoint_id;
    weir_mock_tm_bundle_str(m.restore_op_state, m.restore_op_state_len, 0, op, 64);
    weir_msg_clear(&m);
    return id;
}

static void read_pointer(const jmfx_t *f, char *out, size_t cap) {
    char p[800];
    snprintf(p, sizeof p, "%s/jobs/%s/checkpoint", f->ha, JOB_ID);
    uint8_t *data;
    size_t len;
    assert_int_equal(weir_read_file(p, &data, &len), 0);
    snprintf(out, cap, "%s", (char *)data);
    free(data);
}

static bool chk_exists(const jmfx_t *f, uint64_t id, const char *rel) {
    char p[900];
    snprintf(p, sizeof p, "%s/%s/chk-%llu%s", f->ck, JOB_ID, (unsigned long long)id, rel);
    struct stat st;
    return stat(p, &st) == 0;
}

static void test_jm_pointer_failure(void **state) {
    (void)state;
    jmfx_t f = {0};
    jm_start(&f);
    weir_mock_tm_t *tm = weir_mock_tm_register(f.zctx, f.jm->rpc_port, "tm-a", "tcp://a:1", 1);
    char op[64], ops[64], ptr[900], expect[900];
    assert_int_equal(expect_deploy(tm, 2, op), 0);
    weir_mock_tm_task_state(tm, JOB_ID, 2, 0, 0, WEIR_TASK_RUNNING, NULL, NULL);
    /* n1 completes: the pointer names it */
    uint64_t n1 = weir_mock_tm_expect_trigger(tm, JOB_ID, 0, 0);
    weir_mock_tm_ack(tm, JOB_ID, 2, n1, 0, 0, false, weir_mock_tm_opstate(ops, 64, "at-n1", 2),
                     NULL);
    assert_int_equal(weir_mock_tm_expect_notify(tm, JOB_ID, 2, false), n1);
    read_pointer(&f, ptr, sizeof ptr);
    snprintf(expect, sizeof expect, "%s/%s/chk-%llu\n", f.ck, JOB_ID, (unsigned long long)n1);
    assert_string_equal(ptr, expect);

    /* the pointer cannot be written any more (a directory takes its name) */
    char p[800], keep[820];
    snprintf(p, sizeof p, "%s/jobs/%s/checkpoint", f.ha, JOB_ID);
    snprintf(keep, sizeof keep, "%s.keep", p);
    assert_int_equal(rename(p, keep), 0);
    assert_int_equal(mkdir(p, 0755), 0);
    uint64_t n2 = weir_mock_tm_expect_trigger(tm, JOB_ID, 0, 0);
    assert_true(n2 > n1);
    weir_mock_tm_ack(tm, JOB_ID, 2, n2, 0, 0, false, weir_mock_tm_opstate(ops, 64, "at-n2", 2),
                     NULL);
    /* n2 fails: no NOTIFY (its transactions stay uncommitted) */
    weir_msg_t m;
    int got = weir_mock_tm_expect(tm, WEIR_MSG_NOTIFY_CHECKPOINT, &m, 1000);
    if (got == 0) {
        uint64_t id = m.checkpoint_id;
        weir_msg_clear(&m);
        fail_msg("checkpoint %llu was notified although the HA pointer could not be written",
                 (unsigned long long)id);
    }
    pthread_mutex_lock(&f.jm->mu);
    weir_jm_job_t *job = weir__jm_find_job_locked(f.jm, JOB_ID);
    assert_non_null(job);
    const weir_ckpt_coord_t *c = &job->ckpt;
    assert_int_equal(c->latest_id, n1);
    assert_int_equal(c->n_completed, 1);
    assert_int_equal(c->n_failed, 1);
    const weir_ckpt_hist_t *h = NULL;
    for (uint32_t i = 0; i < c->hist_len; i++)
        if (weir_ckpt_coord_hist(c, i)->id == n2)
            h = weir_ckpt_coord_hist(c, i);
    assert_non_null(h);
    assert_int_equal(h->status, WEIR_CKPT_FAILED);
    assert_non_null(strstr(h->failure, "cannot write the HA pointer"));
    /* tolerable-failed-checkpoints = 0: one failure fails the job over */
    assert_int_equal(job->state, WEIR_JOB_RESTARTING);
    pthread_mutex_unlock(&f.jm->mu);
    /* retention kept what the pointer names; n2 stays on disk (the pointer might name it) */
    assert_true(chk_exists(&f, n1, "/_metadata"));
    assert_true(chk_exists(&f, n2, "/_metadata"));

    /* the next attempt restores n1, the latest completed checkpoint, not the newer n2 */
    weir_mock_tm_task_state(tm, JOB_ID, 2, 0, 0, WEIR_TASK_CANCELED, NULL, NULL);
    assert_int_equal(expect_deploy(tm, 3, op), n1);
    assert_string_equal(op, "1:0:at-n1");
    weir_mock_tm_task_state(tm, JOB_ID, 3, 0, 0, WEIR_TASK_RUNNING, NULL, NULL);

    /* the pointer can be written again: the next checkpoint completes, retention removes the
     * older ones */
    assert_int_equal(rmdir(p), 0);
    assert_int_equal(rename(keep, p), 0);
    uint64_t n3 = weir_mock_tm_expect_trigger(tm, JOB_ID, 0, 0);
    assert_true(n3 > n2);
    weir_mock_tm_ack(tm, JOB_ID, 3, n3, 0, 0, false, weir_mock_tm_opstate(ops, 64, "at-n3", 2),
                     NULL);
    assert_int_equal(weir_mock_tm_expect_notify(tm, JOB_ID, 3, false), n3);
    read_pointer(&f, ptr, sizeof ptr);
    snprintf(expect, sizeof expect, "%s/%s/chk-%llu\n", f.ck, JOB_ID, (unsigned long long)n3);
    assert_string_equal(ptr, expect);
    assert_false(chk_exists(&f, n1, ""));
    assert_false(chk_exists(&f, n2, ""));
    weir_mock_tm_close(&tm);
    jm_stop(&f);
}

/* The attempt is in the HA record before any task of it runs: a restart whose job.json cannot be
 * written is not deployed (a job manager taking over would reuse the attempt number, which task
 * managers and data planes fence by); it stays RESTARTING and deploys once the record is written.
 */
static void test_jm_attempt_record_failure(void **state) {
    (void)state;
    jmfx_t f = {0};
    jm_start(&f);
    /* the recovered job's plugin was copied from <ha>/blobs into the local blob store (its name
     * is sha256("abc"), the FIPS 180-2 vector), read through the job manager's storage env */
    char blob[900];
    snprintf(blob, sizeof blob, "%s/blobs/%s", f.dir, SHA_ABC);
    uint8_t *bd;
    size_t bl;
    assert_int_equal(weir_read_file(blob, &bd, &bl), 0);
    assert_int_equal(bl, 3);
    assert_memory_equal(bd, "abc", 3);
    free(bd);
    weir_storage_stats_t ss;
    weir_storage_env_stats(f.jm->storage_env, &ss);
    assert_true(ss.get_requests >= 2); /* job.json and the blob at least */
    weir_mock_tm_t *tm = weir_mock_tm_register(f.zctx, f.jm->rpc_port, "tm-a", "tcp://a:1", 1);
    char op[64];
    assert_int_equal(expect_deploy(tm, 2, op), 0);
    weir_mock_tm_task_state(tm, JOB_ID, 2, 0, 0, WEIR_TASK_RUNNING, NULL, NULL);

    /* job.json cannot be written any more (a directory takes its name); the task fails */
    char p[800], keep[820];
    snprintf(p, sizeof p, "%s/jobs/%s/job.json", f.ha, JOB_ID);
    snprintf(keep, sizeof keep, "%s.keep", p);
    assert_int_equal(rename(p, keep), 0);
    assert_int_equal(mkdir(p, 0755), 0);
    weir_mock_tm_task_state(tm, JOB_ID, 2, 0, 0, WEIR_TASK_FAILED, "boom", NULL);
    weir_msg_t m;
    int got = weir_mock_tm_expect(tm, WEIR_MSG_DEPLOY, &m, 1500);
    if (got == 0) {
        uint32_t attempt = m.attempt;
        weir_msg_clear(&m);
        fail_msg("attempt %u was deployed although the HA record could not name it", attempt);
    }
    pthread_mutex_lock(&f.jm->mu);
    weir_jm_job_t *job = weir__jm_find_job_locked(f.jm, JOB_ID);
    assert_non_null(job);
    assert_int_equal(job->state, WEIR_JOB_RESTARTING);
    assert_int_equal(job->attempt, 2);
    assert_non_null(job->message);
    assert_non_null(strstr(job->message, "cannot record attempt 3 in the HA store"));
    pthread_mutex_unlock(&f.jm->mu);

    /* the record can be written again: attempt 3 is deployed, and job.json names it */
    assert_int_equal(rmdir(p), 0);
    assert_int_equal(rename(keep, p), 0);
    assert_int_equal(expect_deploy(tm, 3, op), 0);
    json_error_t jerr;
    json_t *rec = json_load_file(p, 0, &jerr);
    assert_non_null(rec);
    assert_int_equal(json_integer_value(json_object_get(rec, "attempt")), 3);
    json_decref(rec);
    weir_mock_tm_close(&tm);
    jm_stop(&f);
}

/* ------------------------------------------------------------ checkpoints and HA on S3 */

/* Against a real S3 server: SeaweedFS started with deploy/local/s3.sh on a free port, a random
 * bucket made with boto3 (the oracle, tests/storage/s3_oracle.py: it also lists and reads what the
 * job manager wrote). */

#define S3_AK "weir-test"
#define S3_SK "weir-test-secret"

/* boto3 against the endpoint (tests/storage/s3_oracle.py): "ls PREFIX" (one "<key> <size>" line
 * per object), "get KEY", "mkbucket". */
static int boto(char *out, size_t cap, const char *endpoint, const char *bucket, const char *what,
                const char *arg) {
    char oracle[1200];
    weir_test_src_path("tests/storage/s3_oracle.py", oracle, sizeof oracle);
    if (strcmp(what, "mkbucket") == 0)
        return weir_test_sh(out, cap, "python3 %s '%s' " S3_AK " " S3_SK " mkbucket '%s'", oracle,
                            endpoint, bucket);
    return weir_test_sh(out, cap, "python3 %s '%s' " S3_AK " " S3_SK " %s '%s' '%s'", oracle,
                        endpoint, what, bucket, arg);
}

typedef struct s3fx {
    char sh[1200], *dir, endpoint[64], bucket[64], ha[128], ck[128], blobs[800];
    weir_jobmanager_t *jm;
    pthread_t thread;
    void *zctx;
} s3fx_t;

static void s3_jm_start(s3fx_t *f) {
    const char *kv[][2] = {
        {"rest.port", "0"},
        {"jobmanager.rpc.port", "0"},
        {"rest.bind-address", "127.0.0.1"},
        {"jobmanager.bind-host", "127.0.0.1"},
        {"blob.storage.directory", f->blobs},
        {"heartbeat.interval", "100ms"},
        {"execution.checkpointing.interval", "100ms"},
        {"state.checkpoints.num-retained", "1"},
        {"state.checkpoints.dir", f->ck},
        {"high-availability.storageDir", f->ha},
        {"restart-strategy.type", "fixed-delay"},
        {"restart-strategy.fixed-delay.attempts", "5"},
        {"restart-strategy.fixed-delay.delay", "100ms"},
        {"s3.endpoint", f->endpoint},
        {"s3.access-key", S3_AK},
        {"s3.secret-key", S3_SK},
        {"s3.path.style.access", "true"},
    };
    char err[1024];
    weir_config_t *cfg = weir_config_new();
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        if (weir_config_set(cfg, kv[i][0], kv[i][1], err, sizeof err) != 0)
            fail_msg("%s: %s", kv[i][0], err);
    f->jm = weir_jobmanager_new(cfg, err, sizeof err);
    weir_config_destroy(&cfg);
    if (!f->jm)
        fail_msg("job manager: %s", err);
    pthread_create(&f->thread, NULL, run_jm, f->jm);
}

static void s3_jm_stop(s3fx_t *f) {
    weir_jobmanager_stop(f->jm);
    pthread_join(f->thread, NULL);
    weir_jobmanager_destroy(&f->jm);
}

/* A job manager whose checkpoints and HA store are on S3: it recovers a job from the HA records
 * on S3 (and its plugin from <ha>/blobs), completes checkpoints whose _metadata and HA pointer
 * boto3 then finds, retention deletes the older one from the bucket, and a second job manager
 * restores the job from the latest checkpoint on S3. */
static void test_jm_on_s3(void **state) {
    (void)state;
    s3fx_t f = {0};
    weir_test_src_path("deploy/local/s3.sh", f.sh, sizeof f.sh);
    char err[1024];
    f.dir = weir_test_tmpdir("jms3");
    int port = weir_test_free_port();
    char out[16384];
    if (weir_test_sh(out, sizeof out, "bash %s start %s/weed %d", f.sh, f.dir, port) != 0)
        fail_msg("s3.sh start: %s", out);
    snprintf(f.endpoint, sizeof f.endpoint, "http://127.0.0.1:%d", port);
    uint8_t rnd[6];
    char hex[13];
    assert_int_equal(weir_random_bytes(rnd, sizeof rnd), 0);
    weir_hex_encode(rnd, sizeof rnd, hex);
    snprintf(f.bucket, sizeof f.bucket, "weir-jm-%s", hex);
    if (boto(out, sizeof out, f.endpoint, f.bucket, "mkbucket", "-") != 0)
        fail_msg("boto3 create_bucket: %s", out);
    snprintf(f.ha, sizeof f.ha, "s3://%s/ha", f.bucket);
    snprintf(f.ck, sizeof f.ck, "s3://%s/ck", f.bucket);
    snprintf(f.blobs, sizeof f.blobs, "%s/blobs", f.dir);

    /* the job's HA records on S3, written through the storage interface */
    weir_config_t *cfg = weir_config_new();
    weir_config_set(cfg, "s3.endpoint", f.endpoint, err, sizeof err);
    weir_config_set(cfg, "s3.access-key", S3_AK, err, sizeof err);
    weir_config_set(cfg, "s3.secret-key", S3_SK, err, sizeof err);
    weir_config_set(cfg, "s3.path.style.access", "true", err, sizeof err);
    weir_storage_env_t *env = weir_storage_env_new(cfg, err, sizeof err);
    weir_config_destroy(&cfg);
    assert_non_null(env);
    weir_storage_t *ha = weir_storage_open(env, f.ha, err, sizeof err);
    assert_non_null(ha);
    uint32_t par[] = {1};
    weir_ha_job_t j = {.name = "hajob",
                       .graph_json = (char *)GRAPH1,
                       .attempt = 1,
                       .parallelism = par,
                       .n_vertices = 1,
                       .submit_ms = 1};
    memcpy(j.id, JOB_ID, 33);
    memcpy(j.plugin, SHA_ABC, 65);
    if (weir_ha_save_blob(ha, SHA_ABC, "abc", 3, err, sizeof err) != 0 ||
        weir_ha_save_job(ha, &j, err, sizeof err) != 0)
        fail_msg("HA on S3: %s", err);
    weir_storage_close(&ha);
    assert_int_equal(boto(out, sizeof out, f.endpoint, f.bucket, "ls", "ha/"), 0);
    char want[1024];
    snprintf(want, sizeof want, "ha/jobs/%s/job.json ", JOB_ID);
    if (!strstr(out, want) ||
        !strstr(out, "ha/blobs/"
                     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad 3"))
        fail_msg("boto3 does not list the HA records:\n%s", out);

    /* a job manager recovers the job from S3 and deploys attempt 2 */
    s3_jm_start(&f);
    f.zctx = zmq_ctx_new();
    weir_mock_tm_t *tm = weir_mock_tm_register(f.zctx, f.jm->rpc_port, "tm-a", "tcp://a:1", 1);
    char op[64], ops[64];
    assert_int_equal(expect_deploy(tm, 2, op), 0);
    weir_mock_tm_task_state(tm, JOB_ID, 2, 0, 0, WEIR_TASK_RUNNING, NULL, NULL);
    uint64_t n1 = weir_mock_tm_expect_trigger(tm, JOB_ID, 0, 0);
    weir_mock_tm_ack(tm, JOB_ID, 2, n1, 0, 0, false, weir_mock_tm_opstate(ops, 64, "at-n1", 2),
                     NULL);
    assert_int_equal(weir_mock_tm_expect_notify(tm, JOB_ID, 2, false), n1);
    /* boto3 finds its _metadata and the HA pointer naming it */
    char key[256];
    snprintf(key, sizeof key, "ha/jobs/%s/checkpoint", JOB_ID);
    assert_int_equal(boto(out, sizeof out, f.endpoint, f.bucket, "get", key), 0);
    snprintf(want, sizeof want, "s3://%s/ck/%s/chk-%llu\n", f.bucket, JOB_ID,
             (unsigned long long)n1);
    assert_string_equal(out, want);
    snprintf(key, sizeof key, "ck/%s/", JOB_ID);
    assert_int_equal(boto(out, sizeof out, f.endpoint, f.bucket, "ls", key), 0);
    snprintf(want, sizeof want, "ck/%s/chk-%llu/_metadata ", JOB_ID, (unsigned long long)n1);
    if (!strstr(out, want))
        fail_msg("boto3 does not list %s:\n%s", want, out);

    /* n2 completes; retention (1 retained) deletes chk-n1 from the bucket */
    uint64_t n2 = weir_mock_tm_expect_trigger(tm, JOB_ID, 0, 0);
    assert_true(n2 > n1);
    weir_mock_tm_ack(tm, JOB_ID, 2, n2, 0, 0, false, weir_mock_tm_opstate(ops, 64, "at-n2", 2),
                     NULL);
    assert_int_equal(weir_mock_tm_expect_notify(tm, JOB_ID, 2, false), n2);
    assert_int_equal(boto(out, sizeof out, f.endpoint, f.bucket, "ls", key), 0);
    snprintf(want, sizeof want, "ck/%s/chk-%llu/_metadata ", JOB_ID, (unsigned long long)n2);
    if (!strstr(out, want))
        fail_msg("boto3 does not list %s:\n%s", want, out);
    snprintf(want, sizeof want, "ck/%s/chk-%llu/", JOB_ID, (unsigned long long)n1);
    if (strstr(out, want))
        fail_msg("retention left %s:\n%s", want, out);
    weir_storage_stats_t ss;
    weir_storage_env_stats(f.jm->storage_env, &ss);
    assert_true(ss.put_requests >= 4); /* two _metadata, two pointers */
    assert_true(ss.delete_requests >= 1);
    weir_mock_tm_close(&tm);
    s3_jm_stop(&f);

    /* a new job manager (the local blob store emptied: the plugin comes from S3 again) restores
     * the job from the latest checkpoint on S3 */
    char rm[900];
    snprintf(rm, sizeof rm, "%s/%s", f.blobs, SHA_ABC);
    assert_int_equal(unlink(rm), 0);
    s3_jm_start(&f);
    tm = weir_mock_tm_register(f.zctx, f.jm->rpc_port, "tm-a", "tcp://a:1", 1);
    assert_int_equal(expect_deploy(tm, 3, op), n2);
    assert_string_equal(op, "1:0:at-n2");
    weir_mock_tm_close(&tm);
    s3_jm_stop(&f);
    zmq_ctx_term(f.zctx);

    /* weir_savepoint_read on S3: the retained checkpoint by its directory and by its _metadata
     * object (the base is the directory's URI), an absent location */
    weir_ckpt_meta_t meta;
    char base[WEIR_STORAGE_URI_MAX], uri[512], meta_uri[600];
    snprintf(uri, sizeof uri, "%s/%s/chk-%llu", f.ck, JOB_ID, (unsigned long long)n2);
    snprintf(meta_uri, sizeof meta_uri, "%s/_metadata", uri);
    const char *forms[] = {uri, meta_uri};
    for (int i = 0; i < 2; i++) {
        if (weir_savepoint_read(env, forms[i], &meta, base, sizeof base, err, sizeof err) != 0)
            fail_msg("read %s: %s", forms[i], err);
        assert_string_equal(base, uri);
        assert_int_equal(meta.id, n2);
        assert_string_equal(meta.job, JOB_ID);
        weir_ckpt_meta_clear(&meta);
    }
    snprintf(uri, sizeof uri, "s3://%s/nothing", f.bucket);
    assert_int_equal(weir_savepoint_read(env, uri, &meta, base, sizeof base, err, sizeof err),
                     WEIR_ENOTFOUND);
    snprintf(want, sizeof want, "%s does not exist", uri);
    assert_string_equal(err, want);
    /* a self-contained savepoint written to S3: its keyed file is checked by size, and its
     * absence named with its URI */
    snprintf(uri, sizeof uri, "s3://%s/sp/savepoint-001122-aabbccddeeff", f.bucket);
    weir_storage_t *sp = weir_storage_open(env, uri, err, sizeof err);
    assert_non_null(sp);
    const char *handle = "{\"version\":1,\"checkpoint\":9,\"task\":\"0-0\",\"layout\":"
                         "\"self-contained\",\"shared\":[],\"private\":[{\"name\":"
                         "\"MANIFEST\",\"size\":5}]}";
    weir_ckpt_task_t task = {.vertex = 0, .subtask = 0, .keyed = (char *)handle};
    weir_ckpt_meta_t sm = {
        .id = 9, .trigger_ms = 1, .complete_ms = 2, .tasks = &task, .n_tasks = 1};
    memcpy(sm.job, JOB_ID, 33);
    char *text = NULL;
    size_t tlen = 0;
    assert_int_equal(weir_ckpt_meta_encode(&sm, &text, &tlen), 0);
    assert_int_equal(weir_storage_put(sp, "_metadata", text, tlen, err, sizeof err), 0);
    free(text);
    assert_int_equal(weir_storage_put(sp, "0-0/MANIFEST", "12345", 5, err, sizeof err), 0);
    if (weir_savepoint_read(env, uri, &meta, base, sizeof base, err, sizeof err) != 0)
        fail_msg("read %s: %s", uri, err);
    assert_string_equal(base, uri);
    assert_int_equal(meta.id, 9);
    weir_ckpt_meta_clear(&meta);
    assert_int_equal(weir_storage_put(sp, "0-0/MANIFEST", "1234", 4, err, sizeof err), 0);
    assert_int_equal(weir_savepoint_read(env, uri, &meta, base, sizeof base, err, sizeof err),
                     WEIR_ECORRUPT);
    snprintf(want, sizeof want, "%s/0-0/MANIFEST: has 4 bytes, _metadata says 5", uri);
    assert_string_equal(err, want);
    assert_int_equal(weir_storage_delete(sp, "0-0/MANIFEST", err, sizeof err), 0);
    assert_int_equal(weir_savepoint_read(env, uri, &meta, base, sizeof base, err, sizeof err),
                     WEIR_ENOTFOUND);
    snprintf(want, sizeof want, "%s/0-0/MANIFEST: missing (the savepoint is incomplete)", uri);
    assert_string_equal(err, want);
    weir_storage_close(&sp);
    weir_storage_env_free(&env);
    weir_test_sh(out, sizeof out, "bash %s stop %s/weed", f.sh, f.dir);
    weir_test_tmpdir_remove(f.dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),         cmocka_unit_test(test_result_store),
        cmocka_unit_test(test_application_job_id), cmocka_unit_test(test_recover_skips_ended_job),
        cmocka_unit_test(test_load_read_errors),   cmocka_unit_test(test_pointer_write_fails),
        cmocka_unit_test(test_jm_pointer_failure), cmocka_unit_test(test_jm_attempt_record_failure),
        cmocka_unit_test(test_bad_locations),      cmocka_unit_test(test_jm_on_s3),
    };
    return cmocka_run_group_tests(tests, NULL, teardown_storage);
}
