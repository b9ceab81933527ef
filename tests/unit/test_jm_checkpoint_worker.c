/* Tests the job manager's storage worker (jobmanager/storage_worker.h) and the coordinator's
 * "completing" state (jobmanager/coordinator.h): items run one at a time in submission order on
 * another thread and come back in that order with a wake-up each; an item really writes through
 * the POSIX storage (the file is read back with stdio, not weir); destroy lets the running item
 * finish and drops the queued ones without running them; while a completion is being written
 * nothing is ready, due or expired, a new attempt clears it, and a late durable completion becomes
 * the restore point without touching the in-flight checkpoint. Against a real S3 server (SeaweedFS
 * via deploy/local/s3.sh, frozen with SIGSTOP): a job manager whose checkpoint completion is stuck
 * on S3 still handles a task failure at once (its loop is free), does not deploy the next attempt
 * while the completion may still land, and, once the server resumes and the _metadata and HA
 * pointer are durable, restores the next attempt from that checkpoint (never notified). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/config.h"
#include "common/err.h"
#include "common/util.h"
#include "jobmanager/coordinator.h"
#include "jobmanager/ha.h"
#include "jobmanager/jobmanager.h"
#include "mock_tm.h"
#include "jobmanager/storage_worker.h"
#include "storage/storage.h"
#include "testutil.h"

typedef struct rec {
    pthread_mutex_t mu;
    int ran[64];
    int n_ran;
    atomic_int freed, wakes;
    pthread_t worker_thread;
    bool other_thread; /* every run was on a thread other than the test's */
} rec_t;

typedef struct titem {
    weir_jm_sw_item_t base;
    rec_t *rec;
    int seq;
    int sleep_ms;
    weir_storage_t *st; /* when set: put "k<seq>" = "v<seq>" */
    int rc;
} titem_t;

static void t_run(weir_jm_sw_item_t *b) {
    titem_t *it = (titem_t *)b;
    if (it->sleep_ms) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)it->sleep_ms * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (it->st) {
        char key[32], val[32], err[512];
        snprintf(key, sizeof key, "k%d", it->seq);
        snprintf(val, sizeof val, "v%d", it->seq);
        it->rc = weir_storage_put(it->st, key, val, strlen(val), err, sizeof err);
    }
    pthread_mutex_lock(&it->rec->mu);
    it->rec->ran[it->rec->n_ran++] = it->seq;
    pthread_mutex_unlock(&it->rec->mu);
}

static void t_free(weir_jm_sw_item_t *b) {
    titem_t *it = (titem_t *)b;
    atomic_fetch_add(&it->rec->freed, 1);
    free(it);
}

static void t_wake(void *arg) {
    rec_t *r = arg;
    atomic_fetch_add(&r->wakes, 1);
}

static titem_t *mk(rec_t *r, int seq, int sleep_ms, weir_storage_t *st) {
    titem_t *it = calloc(1, sizeof *it);
    assert_non_null(it);
    it->base.run = t_run;
    it->base.free = t_free;
    it->base.kind = 1;
    it->rec = r;
    it->seq = seq;
    it->sleep_ms = sleep_ms;
    it->st = st;
    return it;
}

typedef struct waitarg {
    weir_jm_sw_t *sw;
    rec_t *rec;
    int want;
} waitarg_t;

static bool all_ran(void *arg) {
    waitarg_t *w = arg;
    pthread_mutex_lock(&w->rec->mu);
    bool ok = w->rec->n_ran >= w->want;
    pthread_mutex_unlock(&w->rec->mu);
    return ok && atomic_load(&w->rec->wakes) >= w->want;
}

static void test_fifo_and_storage(void **state) {
    (void)state;
    char *dir = weir_test_tmpdir("jmsw");
    weir_config_t *cfg = weir_config_new();
    char err[1024];
    weir_storage_env_t *env = weir_storage_env_new(cfg, err, sizeof err);
    assert_non_null(env);
    weir_storage_t *st = weir_storage_open(env, dir, err, sizeof err);
    assert_non_null(st);
    rec_t r = {.mu = PTHREAD_MUTEX_INITIALIZER};
    weir_jm_sw_t *sw = weir_jm_sw_new(t_wake, &r, err, sizeof err);
    assert_non_null(sw);
    /* the first item is slow: later ones must still wait for it (one at a time, in order) */
    for (int i = 0; i < 20; i++)
        weir_jm_sw_submit(sw, &mk(&r, i, i == 0 ? 150 : 0, st)->base);
    assert_int_equal(weir_jm_sw_outstanding(sw), 20);
    waitarg_t w = {sw, &r, 20};
    assert_true(weir_test_wait_until(all_ran, &w, 10000, 5));
    for (int i = 0; i < 20; i++)
        assert_int_equal(r.ran[i], i);
    /* the results come back in submission order, each with its result */
    weir_jm_sw_item_t *list = weir_jm_sw_take_done(sw);
    int seq = 0;
    while (list) {
        weir_jm_sw_item_t *next = list->next;
        titem_t *it = (titem_t *)list;
        assert_int_equal(it->seq, seq++);
        assert_int_equal(it->rc, 0);
        list->free(list);
        list = next;
    }
    assert_int_equal(seq, 20);
    assert_int_equal(weir_jm_sw_outstanding(sw), 0);
    assert_null(weir_jm_sw_take_done(sw));
    /* what the items wrote is there (read with stdio) */
    for (int i = 0; i < 20; i += 7) {
        char path[2048], buf[32] = "", want[32];
        snprintf(path, sizeof path, "%s/k%d", dir, i);
        FILE *f = fopen(path, "r");
        assert_non_null(f);
        assert_non_null(fgets(buf, sizeof buf, f));
        fclose(f);
        snprintf(want, sizeof want, "v%d", i);
        assert_string_equal(buf, want);
    }
    weir_jm_sw_destroy(&sw);
    assert_null(sw);
    assert_int_equal(atomic_load(&r.freed), 20);
    weir_storage_close(&st);
    weir_storage_env_free(&env);
    weir_config_destroy(&cfg);
    weir_test_tmpdir_remove(dir);
}

static void test_destroy_drops_queued(void **state) {
    (void)state;
    rec_t r = {.mu = PTHREAD_MUTEX_INITIALIZER};
    char err[256];
    weir_jm_sw_t *sw = weir_jm_sw_new(t_wake, &r, err, sizeof err);
    assert_non_null(sw);
    weir_jm_sw_submit(sw, &mk(&r, 0, 300, NULL)->base);
    for (int i = 1; i < 10; i++)
        weir_jm_sw_submit(sw, &mk(&r, i, 0, NULL)->base);
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 50 * 1000000L}; /* item 0 is running */
    nanosleep(&ts, NULL);
    weir_jm_sw_destroy(&sw);
    /* the running item finished; the queued ones never ran; every item was freed once */
    assert_int_equal(r.n_ran, 1);
    assert_int_equal(r.ran[0], 0);
    assert_int_equal(atomic_load(&r.freed), 10);
    weir_jm_sw_destroy(&sw); /* accepts NULL */
}

static void test_coordinator_completing(void **state) {
    (void)state;
    uint32_t par[1] = {1};
    weir_ckpt_coord_t c;
    assert_int_equal(weir_ckpt_coord_init(&c, 1, par), 0);
    weir_ckpt_config_t cfg = {
        .enabled = true, .interval_ms = 100, .timeout_ms = 1000, .min_pause_ms = 0, .tolerable = 0};
    int64_t ms = 1000000, t = 1000 * ms;
    assert_false(weir_ckpt_coord_due(&c, &cfg, true, t));
    c.next_id = 7;
    uint64_t id = weir_ckpt_coord_begin(&c, t + 100 * ms, 1);
    weir_ckpt_ack_t a = {.state_size = 3};
    assert_true(weir_ckpt_coord_ack(&c, 0, id, false, &a));
    assert_true(weir_ckpt_coord_ready(&c));
    weir_ckpt_coord_completing(&c, id);
    /* busy: not ready again, never expired (the write is bounded by the storage), not due */
    assert_false(weir_ckpt_coord_ready(&c));
    assert_false(weir_ckpt_coord_expired(&c, &cfg, t + 100000 * ms));
    assert_false(weir_ckpt_coord_due(&c, &cfg, true, t + 100000 * ms));
    /* the write failed: ready again (the caller then fails it) */
    weir_ckpt_coord_completing(&c, 0);
    assert_true(weir_ckpt_coord_ready(&c));
    assert_true(weir_ckpt_coord_expired(&c, &cfg, t + 100000 * ms));
    weir_ckpt_coord_completing(&c, id);
    weir_ckpt_coord_complete(&c, id, false, "/ck/chk-7", t + 200 * ms, 2);
    assert_int_equal(c.completing_id, 0);
    assert_int_equal(c.latest_id, 7);
    assert_int_equal(c.pending_id, 0);
    /* a completion being written when the attempt ends: the new attempt is not busy, and the
     * late durable result becomes the restore point (counted completed, not failed) */
    uint64_t id2 = weir_ckpt_coord_begin(&c, t + 400 * ms, 3);
    assert_int_equal(id2, 8);
    a = (weir_ckpt_ack_t){.state_size = 4};
    assert_true(weir_ckpt_coord_ack(&c, 0, id2, false, &a));
    weir_ckpt_coord_completing(&c, id2);
    weir_ckpt_coord_new_attempt(&c, t + 500 * ms, "the job is restarting");
    assert_int_equal(c.completing_id, 0);
    assert_int_equal(c.pending_id, 0);
    assert_int_equal(c.n_failed, 1);
    weir_ckpt_coord_complete_late(&c, id2, false, "/ck/chk-8");
    assert_int_equal(c.latest_id, 8);
    assert_string_equal(c.latest_path, "/ck/chk-8");
    assert_int_equal(c.n_failed, 0);
    assert_int_equal(c.n_completed, 2);
    /* an older late result never moves the restore point back */
    weir_ckpt_coord_complete_late(&c, 6, false, "/ck/chk-6");
    assert_int_equal(c.latest_id, 8);
    /* the final checkpoint: final_ready is false while it is being written */
    weir_ckpt_ack_t f = {.state_size = 1};
    assert_true(weir_ckpt_coord_ack(&c, 0, 0, true, &f));
    assert_true(weir_ckpt_coord_final_ready(&c));
    uint64_t fid = weir_ckpt_coord_begin_final(&c, t + 600 * ms, 4);
    weir_ckpt_coord_completing(&c, fid);
    assert_false(weir_ckpt_coord_final_ready(&c));
    weir_ckpt_coord_complete(&c, fid, true, "/ck/chk-9", t + 700 * ms, 5);
    assert_true(c.final_done);
    assert_false(weir_ckpt_coord_final_ready(&c));
    weir_ckpt_coord_free(&c);
}

/* ------------------------------------------------------------ a frozen S3 server */

#define S3_AK "weir-test"
#define S3_SK "weir-test-secret"
static const char *SHA_ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
static const char *JOB_ID = "00112233445566778899aabbccddeeff";
/* One-vertex chain: a generator source and a blackhole sink, parallelism 1. */
static const char *GRAPH1 =
    "{\"name\":\"swjob\",\"default_parallelism\":1,\"nodes\":["
    "{\"id\":0,\"kind\":\"source_generator\",\"name\":\"src\",\"uid\":\"src\",\"parallelism\":1,"
    "\"input\":-1},"
    "{\"id\":1,\"kind\":\"sink_blackhole\",\"name\":\"sink\",\"parallelism\":1,\"input\":0,"
    "\"partitioning\":\"forward\"}]}";

static void *run_jm(void *arg) {
    weir_jobmanager_run(arg, -1);
    return NULL;
}

static weir_jm_job_state_t job_state(weir_jobmanager_t *jm) {
    pthread_mutex_lock(&jm->mu);
    weir_jm_job_t *job = weir__jm_find_job_locked(jm, JOB_ID);
    weir_jm_job_state_t st = job ? job->state : WEIR_JOB_FAILED;
    pthread_mutex_unlock(&jm->mu);
    return st;
}

/* The DEPLOY of @p attempt within @p timeout_ms: its restore id, its op state into @p op. */
static uint64_t expect_deploy(weir_mock_tm_t *tm, uint32_t attempt, char op[64], int timeout_ms) {
    weir_msg_t m;
    assert_int_equal(weir_mock_tm_expect(tm, WEIR_MSG_DEPLOY, &m, timeout_ms), 0);
    assert_string_equal(m.job_id, JOB_ID);
    assert_int_equal(m.attempt, attempt);
    uint64_t id = m.restore_checkpoint_id;
    op[0] = 0;
    weir_mock_tm_bundle_str(m.restore_op_state, m.restore_op_state_len, 0, op, 64);
    weir_msg_clear(&m);
    return id;
}

static void test_frozen_s3_completion(void **state) {
    (void)state;
    char sh[1200], oracle[1200], out[16384], err[1024];
    weir_test_src_path("deploy/local/s3.sh", sh, sizeof sh);
    weir_test_src_path("tests/storage/s3_oracle.py", oracle, sizeof oracle);
    char *dir = weir_test_tmpdir("jmswfrozen");
    int port = weir_test_free_port();
    if (weir_test_sh(out, sizeof out, "bash %s start %s/weed %d", sh, dir, port) != 0)
        fail_msg("s3.sh start: %s", out);
    char endpoint[64], bucket[64], ha_uri[128], ck_uri[128], blobs[800], pidfile[800];
    snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d", port);
    uint8_t rnd[6];
    char hex[13];
    assert_int_equal(weir_random_bytes(rnd, sizeof rnd), 0);
    weir_hex_encode(rnd, sizeof rnd, hex);
    snprintf(bucket, sizeof bucket, "weir-jmsw-%s", hex);
    /* the bucket made with boto3 (not weir) */
    if (weir_test_sh(out, sizeof out, "python3 %s %s " S3_AK " " S3_SK " mkbucket %s", oracle,
                     endpoint, bucket) != 0)
        fail_msg("boto3 create_bucket: %s", out);
    snprintf(ha_uri, sizeof ha_uri, "s3://%s/ha", bucket);
    snprintf(ck_uri, sizeof ck_uri, "s3://%s/ck", bucket);
    snprintf(blobs, sizeof blobs, "%s/blobs", dir);
    snprintf(pidfile, sizeof pidfile, "%s/weed/pid", dir);
    uint8_t *pdata = NULL;
    size_t plen = 0;
    assert_int_equal(weir_read_file(pidfile, &pdata, &plen), 0);
    pid_t weed = (pid_t)atoi((char *)pdata);
    free(pdata);
    assert_true(weed > 1);

    const char *kv[][2] = {
        {"rest.port", "0"},
        {"jobmanager.rpc.port", "0"},
        {"rest.bind-address", "127.0.0.1"},
        {"jobmanager.bind-host", "127.0.0.1"},
        {"blob.storage.directory", blobs},
        {"heartbeat.interval", "100ms"},
        {"execution.checkpointing.interval", "100ms"},
        {"state.checkpoints.dir", ck_uri},
        {"high-availability.storageDir", ha_uri},
        {"restart-strategy.type", "fixed-delay"},
        {"restart-strategy.fixed-delay.attempts", "5"},
        {"restart-strategy.fixed-delay.delay", "100ms"},
        {"s3.endpoint", endpoint},
        {"s3.access-key", S3_AK},
        {"s3.secret-key", S3_SK},
        {"s3.path.style.access", "true"},
    };
    weir_config_t *cfg = weir_config_new();
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        if (weir_config_set(cfg, kv[i][0], kv[i][1], err, sizeof err) != 0)
            fail_msg("%s: %s", kv[i][0], err);
    /* the job's HA record on S3: the job manager recovers it and deploys attempt 2 */
    weir_storage_env_t *env = weir_storage_env_new(cfg, err, sizeof err);
    assert_non_null(env);
    weir_storage_t *ha = weir_storage_open(env, ha_uri, err, sizeof err);
    assert_non_null(ha);
    uint32_t par[] = {1};
    weir_ha_job_t j = {.name = "swjob",
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
    weir_jobmanager_t *jm = weir_jobmanager_new(cfg, err, sizeof err);
    weir_config_destroy(&cfg);
    if (!jm)
        fail_msg("job manager: %s", err);
    pthread_t thread;
    pthread_create(&thread, NULL, run_jm, jm);
    void *zctx = zmq_ctx_new();
    weir_mock_tm_t *tm = weir_mock_tm_register(zctx, jm->rpc_port, "tm-a", "tcp://a:1", 1);
    char op[64], ops[64];
    assert_int_equal(expect_deploy(tm, 2, op, 10000), 0);
    weir_mock_tm_task_state(tm, JOB_ID, 2, 0, 0, WEIR_TASK_RUNNING, NULL, NULL);
    uint64_t n1 = weir_mock_tm_expect_trigger(tm, JOB_ID, 0, 0);
    weir_mock_tm_ack(tm, JOB_ID, 2, n1, 0, 0, false, weir_mock_tm_opstate(ops, 64, "at-n1", 2),
                     NULL);
    assert_int_equal(weir_mock_tm_expect_notify(tm, JOB_ID, 2, false), n1);
    uint64_t n2 = weir_mock_tm_expect_trigger(tm, JOB_ID, 0, 0);
    assert_true(n2 > n1);

    /* S3 freezes; every subtask acks n2: its completion is stuck on the worker */
    assert_int_equal(kill(weed, SIGSTOP), 0);
    weir_mock_tm_ack(tm, JOB_ID, 2, n2, 0, 0, false, weir_mock_tm_opstate(ops, 64, "at-n2", 2),
                     NULL);
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 300 * 1000000L};
    nanosleep(&ts, NULL);
    /* the loop is free: a task failure is handled at once (the job restarts) */
    int64_t t0 = weir_now_ns();
    weir_mock_tm_task_state(tm, JOB_ID, 2, 0, 0, WEIR_TASK_FAILED, "boom", NULL);
    while (job_state(jm) != WEIR_JOB_RESTARTING && weir_now_ns() - t0 < 2000000000LL)
        nanosleep(&ts, NULL);
    assert_int_equal(job_state(jm), WEIR_JOB_RESTARTING);
    /* nothing notified, no next attempt while the completion may still land */
    weir_msg_t m;
    int got_notify = weir_mock_tm_expect(tm, WEIR_MSG_NOTIFY_CHECKPOINT, &m, 200);
    if (got_notify == 0)
        weir_msg_clear(&m);
    int got_deploy = weir_mock_tm_expect(tm, WEIR_MSG_DEPLOY, &m, 2500);
    if (got_deploy == 0)
        weir_msg_clear(&m);
    assert_int_equal(kill(weed, SIGCONT), 0);
    assert_int_not_equal(got_notify, 0);
    assert_int_not_equal(got_deploy, 0);
    /* the server resumes: n2's _metadata and pointer land (stale: the attempt ended) and the next
     * attempt restores n2, with its state */
    assert_int_equal(expect_deploy(tm, 3, op, 60000), n2);
    assert_string_equal(op, "1:0:at-n2");
    pthread_mutex_lock(&jm->mu);
    weir_jm_job_t *job = weir__jm_find_job_locked(jm, JOB_ID);
    assert_non_null(job);
    assert_int_equal(job->ckpt.latest_id, n2);
    pthread_mutex_unlock(&jm->mu);
    char key[128];
    snprintf(key, sizeof key, "jobs/%s/checkpoint", JOB_ID);
    uint8_t *ptr = NULL;
    size_t plen2 = 0;
    assert_int_equal(weir_storage_get(ha, key, 4096, &ptr, &plen2, err, sizeof err), 0);
    char want[512], got[512];
    snprintf(want, sizeof want, "%s/%s/chk-%llu\n", ck_uri, JOB_ID, (unsigned long long)n2);
    snprintf(got, sizeof got, "%.*s", (int)plen2, (char *)ptr);
    free(ptr);
    assert_string_equal(got, want);

    weir_mock_tm_close(&tm);
    weir_jobmanager_stop(jm);
    pthread_join(thread, NULL);
    weir_jobmanager_destroy(&jm);
    zmq_ctx_term(zctx);
    weir_storage_close(&ha);
    weir_storage_env_free(&env);
    weir_test_sh(out, sizeof out, "bash %s stop %s/weed", sh, dir);
    weir_test_tmpdir_remove(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_and_storage),
        cmocka_unit_test(test_destroy_drops_queued),
        cmocka_unit_test(test_coordinator_completing),
        cmocka_unit_test(test_frozen_s3_completion),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
