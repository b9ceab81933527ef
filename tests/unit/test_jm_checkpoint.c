/* Tests the job manager's checkpoint module without sockets: the _metadata format (round trip,
 * sha256 line checked with OpenSSL directly, base64 known vectors), fallback from a truncated or
 * corrupt _metadata to the previous checkpoint, half-written chk dirs, the restore bound (never a
 * checkpoint newer than the latest completed one), read errors injected through store_io.h
 * (retried, reported, never taken for corruption), retention + garbage collection over a fake
 * <ckdir> (the pinned checkpoint and its shared files are kept; an unreadable _metadata keeps
 * everything), configuration validation (values that cannot work are refused) and the
 * coordinator state machine. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/sha.h>

#include "common/config.h"
#include "common/err.h"
#include "common/util.h"
#include "jobmanager/ckpt_store.h"
#include "jobmanager/coordinator.h"
#include "storage/storage.h"
#include "savepoint/metadata.h"
#include "testutil.h"

static const char *JOB = "0123456789abcdef0123456789abcdef";

/* The checkpoint storage of the tests: the POSIX backend (storage/posix.c) rooted at a directory;
 * one open storage, reopened when the directory changes. */
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

static bool exists(const char *dir, const char *rel) {
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    struct stat st;
    return stat(p, &st) == 0;
}

static void touch(const char *dir, const char *rel) {
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    assert_int_equal(weir_write_file_atomic(p, "x", 1), 0);
}

/* A checkpoint with two tasks: (0,0) with op_state + a handle naming @p shared files, (1,0)
 * stateless. */
static void write_ckpt(const char *ckdir, uint64_t id, const char *shared1, const char *shared2) {
    char handle[512];
    snprintf(handle, sizeof handle,
             "{\"version\":1,\"checkpoint\":%llu,\"task\":\"0-0\",\"shared\":[{\"name\":\"%s\","
             "\"local\":\"1.sst\",\"size\":1},{\"name\":\"%s\",\"local\":\"2.sst\",\"size\":1}],"
             "\"private\":[]}",
             (unsigned long long)id, shared1, shared2);
    uint8_t op[3] = {0xff, 0x00, (uint8_t)id};
    weir_ckpt_task_t tasks[2] = {
        {.vertex = 0,
         .subtask = 0,
         .op_state = op,
         .op_state_len = 3,
         .keyed = handle,
         .state_size = 10},
        {.vertex = 1, .subtask = 0},
    };
    weir_ckpt_meta_t m = {.id = id,
                          .trigger_ms = 1000 + (int64_t)id,
                          .complete_ms = 2000,
                          .tasks = tasks,
                          .n_tasks = 2};
    strcpy(m.job, JOB);
    char err[256];
    assert_int_equal(weir_ckpt_meta_write(st_at(ckdir), &m, err, sizeof err), 0);
}

static void test_base64(void **state) {
    (void)state;
    /* RFC 4648 test vectors */
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *out[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char *e = weir_ckpt_b64_encode((const uint8_t *)in[i], strlen(in[i]));
        assert_string_equal(e, out[i]);
        free(e);
        uint8_t *d;
        size_t n;
        assert_int_equal(weir_ckpt_b64_decode(out[i], &d, &n), 0);
        assert_int_equal(n, strlen(in[i]));
        assert_memory_equal(d, in[i], n);
        free(d);
    }
    uint8_t *d;
    size_t n;
    assert_int_equal(weir_ckpt_b64_decode("Zm9", &d, &n), WEIR_ECORRUPT);
}

static void test_metadata_round_trip(void **state) {
    (void)state;
    char *dir = weir_test_tmpdir("jmckpt");
    write_ckpt(dir, 7, "inst-a", "inst-b");
    /* the last line is sha256 of every byte before it, computed here with OpenSSL directly */
    char path[1200];
    snprintf(path, sizeof path, "%s/chk-7/_metadata", dir);
    uint8_t *data;
    size_t len;
    assert_int_equal(weir_read_file(path, &data, &len), 0);
    assert_true(len > 73);
    assert_int_equal(data[len - 1], '\n');
    const char *line = (const char *)data + len - 72;
    assert_memory_equal(line, "sha256 ", 7);
    uint8_t digest[32];
    SHA256(data, len - 72, digest);
    char hex[65];
    for (int i = 0; i < 32; i++)
        sprintf(hex + 2 * i, "%02x", digest[i]);
    assert_memory_equal(line + 7, hex, 64);
    assert_non_null(strstr((const char *)data, "\"op_state\":\"/wAH\"")); /* ff 00 07 */
    assert_non_null(strstr((const char *)data, "\"keyed\":{\"version\":1"));
    free(data);

    weir_ckpt_meta_t m;
    char err[256];
    assert_int_equal(weir_ckpt_meta_read(st_at(dir), 7, NULL, &m, err, sizeof err), 0);
    assert_string_equal(m.job, JOB);
    assert_int_equal(m.id, 7);
    assert_int_equal(m.trigger_ms, 1007);
    assert_int_equal(m.complete_ms, 2000);
    assert_false(m.final);
    assert_int_equal(m.n_tasks, 2);
    assert_int_equal(m.tasks[0].op_state_len, 3);
    assert_memory_equal(m.tasks[0].op_state, "\xff\x00\x07", 3);
    assert_int_equal(m.tasks[0].state_size, 10);
    assert_non_null(strstr(m.tasks[0].keyed, "\"name\":\"inst-b\""));
    assert_int_equal(m.tasks[1].vertex, 1);
    assert_null(m.tasks[1].op_state);
    assert_null(m.tasks[1].keyed);
    weir_ckpt_meta_clear(&m);
    assert_int_equal(weir_ckpt_meta_read(st_at(dir), 8, NULL, &m, err, sizeof err), WEIR_ENOTFOUND);
    weir_test_tmpdir_remove(dir);
}

static void test_fallback(void **state) {
    (void)state;
    char *dir = weir_test_tmpdir("jmckpt");
    char ckdir[700], err[512];
    snprintf(ckdir, sizeof ckdir, "%s/%s", dir, JOB);
    weir_ckpt_meta_t m;
    /* missing directory */
    assert_int_equal(
        weir_ckpt_find_latest(st_at(ckdir), JOB, WEIR_CKPT_ANY, false, NULL, &m, err, sizeof err),
        WEIR_ENOTFOUND);
    assert_int_equal(
        weir_ckpt_find_latest(st_at(ckdir), JOB, WEIR_CKPT_ANY, true, NULL, &m, err, sizeof err),
        WEIR_ENOTFOUND);
    char expect[1024];
    snprintf(expect, sizeof expect, "checkpoint directory %s is missing: cannot restore job %s",
             ckdir, JOB);
    assert_string_equal(err, expect);
    assert_int_equal(weir_ckpt_max_dir_id(st_at(ckdir)), 0);

    write_ckpt(ckdir, 1, "a", "b");
    write_ckpt(ckdir, 2, "b", "c");
    write_ckpt(ckdir, 3, "c", "d");
    /* half-written chk-4: a task dir, no _metadata */
    char p[1200];
    snprintf(p, sizeof p, "%s/chk-4/0-0", ckdir);
    assert_int_equal(weir_mkdirs(p), 0);
    assert_int_equal(weir_ckpt_max_dir_id(st_at(ckdir)), 4);
    assert_int_equal(
        weir_ckpt_find_latest(st_at(ckdir), JOB, WEIR_CKPT_ANY, true, NULL, &m, err, sizeof err),
        0);
    assert_int_equal(m.id, 3);
    weir_ckpt_meta_clear(&m);

    /* truncate chk-3's metadata: falls back to chk-2 */
    snprintf(p, sizeof p, "%s/chk-3/_metadata", ckdir);
    uint8_t *data;
    size_t len;
    assert_int_equal(weir_read_file(p, &data, &len), 0);
    assert_int_equal(truncate(p, (off_t)(len - 30)), 0);
    assert_int_equal(
        weir_ckpt_find_latest(st_at(ckdir), JOB, WEIR_CKPT_ANY, true, NULL, &m, err, sizeof err),
        0);
    assert_int_equal(m.id, 2);
    weir_ckpt_meta_clear(&m);
    /* flip one byte of chk-2's JSON (sha256 line intact): falls back to chk-1 */
    snprintf(p, sizeof p, "%s/chk-2/_metadata", ckdir);
    free(data);
    assert_int_equal(weir_read_file(p, &data, &len), 0);
    data[20] ^= 0x01;
    assert_int_equal(weir_write_file_atomic(p, data, len), 0);
    free(data);
    assert_int_equal(weir_ckpt_meta_read(st_at(ckdir), 2, NULL, &m, err, sizeof err),
                     WEIR_ECORRUPT);
    assert_non_null(strstr(err, "sha256 mismatch"));
    assert_int_equal(
        weir_ckpt_find_latest(st_at(ckdir), JOB, WEIR_CKPT_ANY, true, NULL, &m, err, sizeof err),
        0);
    assert_int_equal(m.id, 1);
    assert_memory_equal(m.tasks[0].op_state, "\xff\x00\x01", 3);
    weir_ckpt_meta_clear(&m);
    /* an empty file is corrupt too; with nothing valid left, required fails */
    snprintf(p, sizeof p, "%s/chk-1/_metadata", ckdir);
    assert_int_equal(weir_write_file_atomic(p, "", 0), 0);
    assert_int_equal(
        weir_ckpt_find_latest(st_at(ckdir), JOB, WEIR_CKPT_ANY, false, NULL, &m, err, sizeof err),
        WEIR_ENOTFOUND);
    assert_int_equal(
        weir_ckpt_find_latest(st_at(ckdir), JOB, WEIR_CKPT_ANY, true, NULL, &m, err, sizeof err),
        WEIR_ENOTFOUND);
    assert_non_null(strstr(err, "no complete checkpoint in"));
    /* a checkpoint of another job is not taken */
    write_ckpt(ckdir, 5, "x", "y");
    assert_int_equal(weir_ckpt_find_latest(st_at(ckdir), "ffffffffffffffffffffffffffffffff",
                                           WEIR_CKPT_ANY, false, NULL, &m, err, sizeof err),
                     WEIR_ENOTFOUND);
    weir_test_tmpdir_remove(dir);
}

static void test_retention_gc(void **state) {
    (void)state;
    char *dir = weir_test_tmpdir("jmckpt");
    char ckdir[700], sh[800];
    snprintf(ckdir, sizeof ckdir, "%s/%s", dir, JOB);
    snprintf(sh, sizeof sh, "%s/shared", ckdir);
    assert_int_equal(weir_mkdirs(sh), 0);
    const char *files[] = {"a", "b", "c", "d", "e", "f", "g"};
    for (int i = 0; i < 7; i++) {
        char rel[32];
        snprintf(rel, sizeof rel, "shared/%s", files[i]);
        touch(ckdir, rel);
    }
    write_ckpt(ckdir, 1, "a", "b");
    write_ckpt(ckdir, 2, "b", "c");
    write_ckpt(ckdir, 3, "c", "d");
    write_ckpt(ckdir, 4, "d", "e");
    char p[1200];
    snprintf(p, sizeof p, "%s/chk-5/0-0", ckdir); /* half written */
    assert_int_equal(weir_mkdirs(p), 0);
    touch(ckdir, "chk-5/0-0/MANIFEST");
    const char *protect[] = {"{\"checkpoint\":0,\"shared\":[{\"name\":\"g\"}]}"};
    /* marks: what a retention round found unreferenced (deleted in the second round that finds
     * it unreferenced: an upload may be in progress); NULL: no grace */
    weir_ckpt_gc_marks_t marks = {0};

    /* in flight 5: nothing of shared/ is collected, chk-5 stays */
    weir_ckpt_gc_stats_t st;
    assert_int_equal(weir_ckpt_retain(st_at(ckdir), 2, 5, 0, protect, 1, NULL, NULL, &st), 0);
    assert_int_equal(st.dirs_removed, 2);
    assert_int_equal(st.shared_removed, 0);
    assert_false(exists(ckdir, "chk-1"));
    assert_false(exists(ckdir, "chk-2"));
    assert_true(exists(ckdir, "chk-3/_metadata"));
    assert_true(exists(ckdir, "chk-4/_metadata"));
    assert_true(exists(ckdir, "chk-5/0-0/MANIFEST"));
    for (int i = 0; i < 7; i++) {
        char rel[32];
        snprintf(rel, sizeof rel, "shared/%s", files[i]);
        assert_true(exists(ckdir, rel));
    }
    /* unreferenced entries found for the first time are kept (an upload may be in progress) */
    assert_int_equal(weir_ckpt_retain(st_at(ckdir), 2, 0, 0, protect, 1, &marks, NULL, &st), 0);
    assert_int_equal(st.shared_removed, 0);
    assert_int_equal(st.dirs_removed, 0);
    assert_true(exists(ckdir, "chk-5"));
    assert_int_equal(marks.n, 4); /* chk-5, shared/a, shared/b, shared/f */
    /* nothing in flight: exactly the referenced shared files remain (c, d by chk-3; d, e by
     * chk-4; g protected) and the half-written chk-5 goes: the second round finding them */
    assert_int_equal(weir_ckpt_retain(st_at(ckdir), 2, 0, 0, protect, 1, &marks, NULL, &st), 0);
    assert_int_equal(st.dirs_removed, 1);
    assert_int_equal(st.shared_removed, 3);
    assert_false(exists(ckdir, "chk-5"));
    const bool keep[] = {false, false, true, true, true, false, true};
    for (int i = 0; i < 7; i++) {
        char rel[32];
        snprintf(rel, sizeof rel, "shared/%s", files[i]);
        assert_int_equal(exists(ckdir, rel), keep[i]);
    }
    /* retained 1: chk-3 goes, then c too */
    assert_int_equal(weir_ckpt_retain(st_at(ckdir), 1, 0, 0, NULL, 0, NULL, NULL, &st), 0);
    assert_false(exists(ckdir, "chk-3"));
    assert_true(exists(ckdir, "chk-4/_metadata"));
    assert_false(exists(ckdir, "shared/c"));
    assert_false(exists(ckdir, "shared/g"));
    assert_true(exists(ckdir, "shared/d"));
    assert_true(exists(ckdir, "shared/e"));
    weir_ckpt_gc_marks_free(&marks);
    weir_test_tmpdir_remove(dir);
}

static void test_config(void **state) {
    (void)state;
    weir_config_t *cfg = weir_config_new();
    weir_ckpt_config_t cc;
    char err[512];
    assert_int_equal(weir_ckpt_config_load(cfg, &cc, err, sizeof err), 0);
    assert_false(cc.enabled);
    assert_int_equal(cc.mode, WEIR_CHECKPOINT_NONE);
    assert_int_equal(
        weir_config_set(cfg, "execution.checkpointing.interval", "2s", err, sizeof err), 0);
    assert_int_equal(weir_ckpt_config_load(cfg, &cc, err, sizeof err), WEIR_ECONFIG);
    assert_string_equal(err, "execution.checkpointing.interval is set but state.checkpoints.dir is "
                             "not: set both");
    assert_int_equal(weir_config_set(cfg, "state.checkpoints.dir", "/x", err, sizeof err), 0);
    assert_int_equal(weir_ckpt_config_load(cfg, &cc, err, sizeof err), 0);
    assert_true(cc.enabled);
    assert_int_equal(cc.interval_ms, 2000);
    assert_int_equal(cc.mode, WEIR_CHECKPOINT_EXACTLY_ONCE);
    assert_string_equal(cc.dir, "/x");
    assert_int_equal(
        weir_config_set(cfg, "execution.checkpointing.mode", "exactly_once", err, sizeof err), 0);
    assert_int_equal(weir_ckpt_config_load(cfg, &cc, err, sizeof err), WEIR_ECONFIG);
    assert_non_null(strstr(err, "execution.checkpointing.mode"));
    assert_int_equal(
        weir_config_set(cfg, "execution.checkpointing.mode", "AT_LEAST_ONCE", err, sizeof err), 0);
    assert_int_equal(weir_ckpt_config_load(cfg, &cc, err, sizeof err), 0);
    assert_int_equal(cc.mode, WEIR_CHECKPOINT_AT_LEAST_ONCE);
    assert_int_equal(weir_config_set(cfg, "execution.checkpointing.max-concurrent-checkpoints", "2",
                                     err, sizeof err),
                     0);
    assert_int_equal(weir_ckpt_config_load(cfg, &cc, err, sizeof err), WEIR_ECONFIG);
    assert_non_null(strstr(err, "max-concurrent-checkpoints"));
    weir_config_destroy(&cfg);
}

static weir_ckpt_ack_t mk_ack(const char *op, const char *keyed, uint64_t size, uint64_t align_ms) {
    weir_ckpt_ack_t a = {
        .state_size = size, .uploaded_size = size / 2, .alignment_ns = align_ms * 1000000};
    if (op) {
        a.op_state = (uint8_t *)strdup(op);
        a.op_state_len = strlen(op);
    }
    if (keyed)
        a.keyed = strdup(keyed);
    return a;
}

static void test_coordinator(void **state) {
    (void)state;
    /* vertex 0 (p 2), vertex 1 (p 1): 3 subtasks */
    uint32_t par[2] = {2, 1};
    weir_ckpt_coord_t c;
    assert_int_equal(weir_ckpt_coord_init(&c, 2, par), 0);
    assert_int_equal(c.n_subtasks, 3);
    assert_int_equal(weir_ckpt_coord_index(&c, 1, 0), 2);
    weir_ckpt_config_t cfg = {.enabled = true,
                              .interval_ms = 100,
                              .timeout_ms = 1000,
                              .min_pause_ms = 50,
                              .tolerable = 1};
    int64_t ms = 1000000, t = 1000 * ms;
    assert_false(weir_ckpt_coord_due(&c, &cfg, false, t));
    assert_false(weir_ckpt_coord_due(&c, &cfg, true, t)); /* running since t */
    assert_false(weir_ckpt_coord_due(&c, &cfg, true, t + 99 * ms));
    assert_true(weir_ckpt_coord_due(&c, &cfg, true, t + 100 * ms));
    c.next_id = 5;
    uint64_t id = weir_ckpt_coord_begin(&c, t + 100 * ms, 777);
    assert_int_equal(id, 5);
    assert_false(weir_ckpt_coord_due(&c, &cfg, true, t + 300 * ms)); /* one in flight */
    /* stale id and unknown subtask are ignored */
    weir_ckpt_ack_t a = mk_ack("x", NULL, 1, 0);
    assert_false(weir_ckpt_coord_ack(&c, 0, 4, false, &a));
    a = mk_ack("x", NULL, 1, 0);
    assert_false(weir_ckpt_coord_ack(&c, 9, 5, false, &a));
    a = mk_ack("s0", "{\"shared\":[]}", 100, 3);
    assert_true(weir_ckpt_coord_ack(&c, 0, 5, false, &a));
    a = mk_ack("dup", NULL, 1, 0);
    assert_false(weir_ckpt_coord_ack(&c, 0, 5, false, &a)); /* duplicate */
    a = mk_ack("s1", NULL, 20, 9);
    assert_true(weir_ckpt_coord_ack(&c, 1, 5, false, &a));
    assert_false(weir_ckpt_coord_ready(&c));
    /* subtask 2 sends its final snapshot: counts for checkpoint 5 */
    a = mk_ack("fin2", NULL, 5, 1);
    assert_true(weir_ckpt_coord_ack(&c, 2, 0, true, &a));
    assert_true(weir_ckpt_coord_ready(&c));
    assert_false(weir_ckpt_coord_final_ready(&c));
    weir_ckpt_meta_t m;
    assert_int_equal(weir_ckpt_coord_build_meta(&c, JOB, 5, false, 777, 888, &m), 0);
    assert_int_equal(m.n_tasks, 3);
    assert_memory_equal(m.tasks[0].op_state, "s0", 2);
    assert_string_equal(m.tasks[0].keyed, "{\"shared\":[]}");
    assert_memory_equal(m.tasks[1].op_state, "s1", 2);
    assert_int_equal(m.tasks[2].vertex, 1);
    assert_int_equal(m.tasks[2].subtask, 0);
    assert_memory_equal(m.tasks[2].op_state, "fin2", 4);
    weir_ckpt_meta_clear(&m);
    weir_ckpt_coord_complete(&c, 5, false, "/ck/chk-5", t + 150 * ms, 900);
    assert_int_equal(c.n_completed, 1);
    assert_int_equal(c.latest.duration_ms, 50);
    assert_int_equal(c.latest.state_size, 125);
    assert_int_equal(c.latest.alignment_ms, 9);
    assert_int_equal(c.pending_id, 0);
    /* the final snapshot of one subtask does not stop periodic triggers (issue 7 item 4: it
     * did, so one source subtask that finished early stopped every checkpoint of the job) */
    assert_true(weir_ckpt_coord_due(&c, &cfg, true, t + 1000 * ms));
    a = mk_ack("fin0", NULL, 1, 0);
    assert_true(weir_ckpt_coord_ack(&c, 0, 0, true, &a));
    assert_false(weir_ckpt_coord_final_ready(&c));
    assert_true(weir_ckpt_coord_due(&c, &cfg, true, t + 1000 * ms));
    a = mk_ack("fin1", NULL, 1, 0);
    assert_true(weir_ckpt_coord_ack(&c, 1, 0, true, &a));
    assert_true(weir_ckpt_coord_final_ready(&c));
    /* every subtask finished: the final checkpoint follows instead of a periodic one */
    assert_false(weir_ckpt_coord_due(&c, &cfg, true, t + 1000 * ms));
    uint64_t fid = weir_ckpt_coord_begin_final(&c, t + 2000 * ms, 1000);
    assert_int_equal(fid, 6);
    assert_int_equal(weir_ckpt_coord_build_meta(&c, JOB, fid, true, 1000, 1001, &m), 0);
    assert_true(m.final);
    assert_memory_equal(m.tasks[0].op_state, "fin0", 4);
    assert_memory_equal(m.tasks[1].op_state, "fin1", 4);
    weir_ckpt_meta_clear(&m);
    weir_ckpt_coord_complete(&c, fid, true, "/ck/chk-6", t + 2001 * ms, 1002);
    assert_false(weir_ckpt_coord_final_ready(&c));
    assert_int_equal(c.latest_id, 6);

    /* new attempt: failures and the tolerance */
    weir_ckpt_coord_new_attempt(&c, t + 3000 * ms, "restart");
    assert_int_equal(c.n_finals, 0);
    t += 10000 * ms;
    assert_false(weir_ckpt_coord_due(&c, &cfg, true, t));
    assert_true(weir_ckpt_coord_due(&c, &cfg, true, t + 100 * ms));
    id = weir_ckpt_coord_begin(&c, t + 100 * ms, 5000);
    assert_int_equal(id, 7);
    assert_false(weir_ckpt_coord_expired(&c, &cfg, t + 1100 * ms));
    assert_true(weir_ckpt_coord_expired(&c, &cfg, t + 1101 * ms));
    assert_false(weir_ckpt_coord_fail(&c, "expired", cfg.tolerable, t + 1101 * ms)); /* 1 <= 1 */
    /* min-pause after the failure */
    assert_false(weir_ckpt_coord_due(&c, &cfg, true, t + 1150 * ms));
    assert_true(weir_ckpt_coord_due(&c, &cfg, true, t + 1151 * ms));
    id = weir_ckpt_coord_begin(&c, t + 1151 * ms, 6000);
    assert_int_equal(id, 8);
    assert_true(weir_ckpt_coord_fail(&c, "declined", cfg.tolerable, t + 1200 * ms)); /* 2 > 1 */
    assert_int_equal(c.n_failed, 2);
    assert_int_equal(c.n_triggered, 4);
    /* history: 5 COMPLETED, 6 COMPLETED, 7 FAILED, 8 FAILED */
    assert_int_equal(c.hist_len, 4);
    assert_int_equal(weir_ckpt_coord_hist(&c, 0)->status, WEIR_CKPT_COMPLETED);
    assert_int_equal(weir_ckpt_coord_hist(&c, 2)->id, 7);
    assert_string_equal(weir_ckpt_coord_hist(&c, 2)->failure, "expired");
    assert_int_equal(weir_ckpt_coord_hist(&c, 3)->status, WEIR_CKPT_FAILED);
    weir_ckpt_coord_free(&c);
}

/* Savepoints in the coordinator (docs/savepoints.md): in flight like a checkpoint, with their kind
 * and directory; complete, a savepoint (intermediate or stop) is the latest restore point; a
 * failed savepoint does not count against tolerable failures. */
static void test_coordinator_savepoints(void **state) {
    (void)state;
    uint32_t par[1] = {2};
    weir_ckpt_coord_t c;
    assert_int_equal(weir_ckpt_coord_init(&c, 1, par), 0);
    int64_t ms = 1000000, t = 1000 * ms;
    c.next_id = 3;
    uint64_t id = weir_ckpt_coord_begin(&c, t, 100);
    weir_ckpt_ack_t a = mk_ack("a", NULL, 10, 0);
    assert_true(weir_ckpt_coord_ack(&c, 0, id, false, &a));
    uint64_t size = 0;
    assert_int_equal(weir_ckpt_coord_acked(&c, &size), 1);
    assert_int_equal(size, 10);
    a = mk_ack("b", NULL, 10, 0);
    assert_true(weir_ckpt_coord_ack(&c, 1, id, false, &a));
    weir_ckpt_coord_complete(&c, id, false, "/ck/chk-3", t + ms, 101);
    assert_int_equal(c.latest_id, 3);

    /* an intermediate savepoint: kind and target kept; complete, it is the latest restore point
     * (a failover restores it: its pre-committed transactions are committed, never aborted) */
    id = weir_ckpt_coord_begin_savepoint(&c, WEIR_CK_SAVEPOINT, "/sp/savepoint-x", t + 2 * ms, 200);
    assert_int_equal(id, 4);
    assert_int_equal(c.pending_kind, WEIR_CK_SAVEPOINT);
    assert_string_equal(c.pending_target, "/sp/savepoint-x");
    assert_int_equal(weir_ckpt_coord_acked(&c, NULL), 0);
    a = mk_ack("c", NULL, 7, 0);
    assert_true(weir_ckpt_coord_ack(&c, 0, 4, false, &a));
    a = mk_ack("d", NULL, 8, 0);
    assert_true(weir_ckpt_coord_ack(&c, 1, 4, false, &a));
    assert_true(weir_ckpt_coord_ready(&c));
    weir_ckpt_coord_complete(&c, 4, false, "/sp/savepoint-x", t + 3 * ms, 201);
    assert_int_equal(c.latest_id, 4);
    assert_string_equal(c.latest_path, "/sp/savepoint-x");
    assert_int_equal(c.pending_id, 0);
    assert_int_equal(c.pending_kind, WEIR_CK_CHECKPOINT);
    assert_string_equal(c.pending_target, "");
    const weir_ckpt_hist_t *h = weir_ckpt_coord_hist(&c, c.hist_len - 1);
    assert_int_equal(h->id, 4);
    assert_int_equal(h->kind, WEIR_CK_SAVEPOINT);
    assert_int_equal(h->status, WEIR_CKPT_COMPLETED);
    assert_int_equal(h->state_size, 15);

    /* failed savepoints are recorded but never fail the job over (tolerable = 0) */
    for (int i = 0; i < 3; i++) {
        id = weir_ckpt_coord_begin_savepoint(&c, WEIR_CK_SAVEPOINT, "/sp/y", t + 4 * ms, 300);
        assert_false(weir_ckpt_coord_fail(&c, "declined", 0, t + 5 * ms));
    }
    assert_int_equal(c.consecutive_failures, 0);
    assert_int_equal(weir_ckpt_coord_hist(&c, c.hist_len - 1)->status, WEIR_CKPT_FAILED);
    /* ... while a failed checkpoint does */
    id = weir_ckpt_coord_begin(&c, t + 6 * ms, 400);
    assert_true(weir_ckpt_coord_fail(&c, "declined", 0, t + 7 * ms));

    /* a stop-savepoint becomes the latest: the job ends there, a failover restores it */
    id = weir_ckpt_coord_begin_savepoint(&c, WEIR_CK_STOP, "/sp/savepoint-z", t + 8 * ms, 500);
    a = mk_ack("e", NULL, 1, 0);
    assert_true(weir_ckpt_coord_ack(&c, 0, id, false, &a));
    a = mk_ack("f", NULL, 1, 0);
    assert_true(weir_ckpt_coord_ack(&c, 1, id, false, &a));
    weir_ckpt_coord_complete(&c, id, false, "/sp/savepoint-z", t + 9 * ms, 501);
    assert_int_equal(c.latest_id, id);
    assert_string_equal(c.latest_path, "/sp/savepoint-z");
    assert_int_equal(weir_ckpt_coord_hist(&c, c.hist_len - 1)->kind, WEIR_CK_STOP);
    weir_ckpt_coord_free(&c);
}

/* Checkpoints after tasks finish (docs/checkpointing.md): a subtask that sent its final snapshot
 * is not triggered, its final snapshot stands for it in every later checkpoint of the attempt, and
 * periodic checkpoints go on until every subtask finished; then the final checkpoint. */
static void test_coordinator_finished_subtasks(void **state) {
    (void)state;
    /* vertex 0 (p 3, the source), vertex 1 (p 1): 4 subtasks */
    uint32_t par[2] = {3, 1};
    weir_ckpt_coord_t c;
    assert_int_equal(weir_ckpt_coord_init(&c, 2, par), 0);
    weir_ckpt_config_t cfg = {.enabled = true,
                              .interval_ms = 200,
                              .timeout_ms = 10000,
                              .min_pause_ms = 0,
                              .tolerable = 0};
    int64_t ms = 1000000, t = 5000 * ms;
    assert_false(weir_ckpt_coord_due(&c, &cfg, true, t));
    /* source subtasks 1 and 2 have nothing to read: final snapshots before any checkpoint */
    weir_ckpt_ack_t a = mk_ack("end1", NULL, 1, 0);
    assert_true(weir_ckpt_coord_ack(&c, 1, 0, true, &a));
    a = mk_ack("end2", NULL, 1, 0);
    assert_true(weir_ckpt_coord_ack(&c, 2, 0, true, &a));
    assert_false(weir_ckpt_coord_finished(&c, 0));
    assert_true(weir_ckpt_coord_finished(&c, 1));
    assert_true(weir_ckpt_coord_finished(&c, 2));
    assert_false(weir_ckpt_coord_finished(&c, 3));
    assert_false(weir_ckpt_coord_finished(&c, 99));
    assert_false(weir_ckpt_coord_final_ready(&c));
    /* three periodic checkpoints: acks from the running subtasks complete them */
    uint64_t ids[3];
    for (int k = 0; k < 3; k++) {
        t += 200 * ms;
        assert_true(weir_ckpt_coord_due(&c, &cfg, true, t));
        ids[k] = weir_ckpt_coord_begin(&c, t, 1000 + k);
        assert_false(weir_ckpt_coord_ready(&c));
        char op[16];
        snprintf(op, sizeof op, "pos%d", k);
        a = mk_ack(op, "{\"shared\":[]}", 10, 0);
        assert_true(weir_ckpt_coord_ack(&c, 0, ids[k], false, &a));
        assert_false(weir_ckpt_coord_ready(&c));
        a = mk_ack("sink", NULL, 10, 0);
        assert_true(weir_ckpt_coord_ack(&c, 3, ids[k], false, &a));
        assert_true(weir_ckpt_coord_ready(&c));
        weir_ckpt_meta_t m;
        assert_int_equal(weir_ckpt_coord_build_meta(&c, JOB, ids[k], false, 1000, 1001, &m), 0);
        assert_false(m.final);
        assert_int_equal(m.n_tasks, 4);
        assert_memory_equal(m.tasks[0].op_state, op, strlen(op));
        assert_non_null(m.tasks[0].keyed);
        assert_int_equal(m.tasks[1].op_state_len, 4);
        assert_memory_equal(m.tasks[1].op_state, "end1", 4); /* its final state, every time */
        assert_null(m.tasks[1].keyed);
        assert_memory_equal(m.tasks[2].op_state, "end2", 4);
        assert_memory_equal(m.tasks[3].op_state, "sink", 4);
        weir_ckpt_meta_clear(&m);
        weir_ckpt_coord_complete(&c, ids[k], false, "/ck/chk", t + 10 * ms, 1002);
    }
    assert_int_equal(ids[1], ids[0] + 1);
    assert_int_equal(c.n_completed, 3);
    /* a repeated final ack is ignored */
    a = mk_ack("again", NULL, 1, 0);
    assert_false(weir_ckpt_coord_ack(&c, 1, 0, true, &a));
    /* the last source subtask ends while checkpoint 4 is in flight: its final counts for 4 */
    t += 200 * ms;
    assert_true(weir_ckpt_coord_due(&c, &cfg, true, t));
    uint64_t id = weir_ckpt_coord_begin(&c, t, 2000);
    a = mk_ack("end0", NULL, 1, 0);
    assert_true(weir_ckpt_coord_ack(&c, 0, 0, true, &a));
    assert_false(weir_ckpt_coord_ready(&c));
    a = mk_ack("sink4", NULL, 1, 0);
    assert_true(weir_ckpt_coord_ack(&c, 3, id, false, &a));
    assert_true(weir_ckpt_coord_ready(&c));
    weir_ckpt_meta_t m;
    assert_int_equal(weir_ckpt_coord_build_meta(&c, JOB, id, false, 2000, 2001, &m), 0);
    assert_memory_equal(m.tasks[0].op_state, "end0", 4);
    assert_null(m.tasks[0].keyed); /* a final snapshot carries no keyed state */
    weir_ckpt_meta_clear(&m);
    weir_ckpt_coord_complete(&c, id, false, "/ck/chk", t + 10 * ms, 2002);
    /* the sink still runs: periodic checkpoints go on */
    t += 200 * ms;
    assert_true(weir_ckpt_coord_due(&c, &cfg, true, t));
    id = weir_ckpt_coord_begin(&c, t, 3000);
    a = mk_ack("end3", NULL, 1, 0); /* the sink ends: every input ended, no barrier came */
    assert_true(weir_ckpt_coord_ack(&c, 3, 0, true, &a));
    assert_true(weir_ckpt_coord_ready(&c));
    assert_false(weir_ckpt_coord_final_ready(&c)); /* one in flight */
    weir_ckpt_coord_complete(&c, id, false, "/ck/chk", t + 10 * ms, 3002);
    /* everything ended: no periodic checkpoint, the final one instead */
    assert_false(weir_ckpt_coord_due(&c, &cfg, true, t + 1000 * ms));
    assert_true(weir_ckpt_coord_final_ready(&c));
    uint64_t fid = weir_ckpt_coord_begin_final(&c, t + 20 * ms, 4000);
    assert_int_equal(fid, id + 1);
    assert_int_equal(weir_ckpt_coord_build_meta(&c, JOB, fid, true, 4000, 4001, &m), 0);
    assert_true(m.final);
    assert_memory_equal(m.tasks[0].op_state, "end0", 4);
    assert_memory_equal(m.tasks[1].op_state, "end1", 4);
    assert_memory_equal(m.tasks[3].op_state, "end3", 4);
    weir_ckpt_meta_clear(&m);
    weir_ckpt_coord_complete(&c, fid, true, "/ck/chk-final", t + 30 * ms, 4002);
    assert_false(weir_ckpt_coord_due(&c, &cfg, true, t + 2000 * ms));
    /* a new attempt forgets who finished */
    weir_ckpt_coord_new_attempt(&c, t + 3000 * ms, "restart");
    assert_false(weir_ckpt_coord_finished(&c, 1));
    weir_ckpt_coord_free(&c);
}

/* Refuses @p value for @p key at load (WEIR_ECONFIG) with one line naming the key and @p fix. */
static void refused(const char *key, const char *value, const char *fix) {
    weir_config_t *cfg = weir_config_new();
    weir_ckpt_config_t cc;
    char err[512];
    assert_int_equal(
        weir_config_set(cfg, "execution.checkpointing.interval", "1s", err, sizeof err), 0);
    assert_int_equal(weir_config_set(cfg, "state.checkpoints.dir", "/x", err, sizeof err), 0);
    assert_int_equal(weir_config_set(cfg, key, value, err, sizeof err), 0);
    err[0] = 0;
    assert_int_equal(weir_ckpt_config_load(cfg, &cc, err, sizeof err), WEIR_ECONFIG);
    if (!strstr(err, key) || !strstr(err, fix) || strchr(err, '\n'))
        fail_msg("%s=%s: '%s' should be one line naming the key and '%s'", key, value, err, fix);
    weir_config_destroy(&cfg);
}

static void accepted(const char *key, const char *value) {
    weir_config_t *cfg = weir_config_new();
    weir_ckpt_config_t cc;
    char err[512] = "";
    assert_int_equal(
        weir_config_set(cfg, "execution.checkpointing.interval", "1s", err, sizeof err), 0);
    assert_int_equal(weir_config_set(cfg, "state.checkpoints.dir", "/x", err, sizeof err), 0);
    assert_int_equal(weir_config_set(cfg, key, value, err, sizeof err), 0);
    if (weir_ckpt_config_load(cfg, &cc, err, sizeof err) != 0)
        fail_msg("%s=%s refused: %s", key, value, err);
    weir_config_destroy(&cfg);
}

static void test_config_refusals(void **state) {
    (void)state;
    /* a timeout of 0 makes every checkpoint expire: the job fails over forever */
    refused("execution.checkpointing.timeout", "0", "set it to 10ms or more");
    refused("execution.checkpointing.timeout", "9ms", "below the minimum of 10 ms");
    accepted("execution.checkpointing.timeout", "10ms");
    refused("execution.checkpointing.interval", "0", "set it to 10ms or more");
    refused("execution.checkpointing.interval", "9ms", "below the minimum of 10 ms");
    accepted("execution.checkpointing.interval", "10ms");
    /* durations turned into nanoseconds must not overflow */
    refused("execution.checkpointing.interval", "9223372036855ms", "at most 9223372036854 ms");
    refused("execution.checkpointing.timeout", "9223372036855ms", "at most 9223372036854 ms");
    refused("execution.checkpointing.min-pause", "9223372036855ms", "at most 9223372036854 ms");
    accepted("execution.checkpointing.timeout", "9223372036854ms");
    /* works, as in Flink: a min-pause above the interval, a timeout below the interval */
    accepted("execution.checkpointing.min-pause", "1h");
    accepted("execution.checkpointing.timeout", "100ms");
    refused("state.checkpoints.num-retained", "0", ">= 1");
    /* the timeout is checked with checkpointing off too: the value cannot work */
    weir_config_t *cfg = weir_config_new();
    weir_ckpt_config_t cc;
    char err[512];
    assert_int_equal(weir_config_set(cfg, "execution.checkpointing.timeout", "0", err, sizeof err),
                     0);
    assert_int_equal(weir_ckpt_config_load(cfg, &cc, err, sizeof err), WEIR_ECONFIG);
    assert_non_null(strstr(err, "execution.checkpointing.timeout"));
    /* a negative tolerance is refused by the configuration itself, naming the key */
    assert_int_not_equal(weir_config_set(cfg,
                                         "execution.checkpointing.tolerable-failed-checkpoints",
                                         "-1", err, sizeof err),
                         0);
    assert_non_null(strstr(err, "execution.checkpointing.tolerable-failed-checkpoints"));
    weir_config_destroy(&cfg);
}

static void test_restore_bound(void **state) {
    (void)state;
    char *dir = weir_test_tmpdir("jmckpt");
    char ckdir[700], err[1024], p[1200];
    snprintf(ckdir, sizeof ckdir, "%s/%s", dir, JOB);
    weir_ckpt_meta_t m;
    write_ckpt(ckdir, 1, "a", "b");
    write_ckpt(ckdir, 2, "b", "c");
    write_ckpt(ckdir, 3, "c", "d"); /* its HA pointer write failed: never completed */
    /* the latest completed is 2: chk-3 is not taken although it verifies */
    assert_int_equal(weir_ckpt_find_latest(st_at(ckdir), JOB, 2, true, NULL, &m, err, sizeof err),
                     0);
    assert_int_equal(m.id, 2);
    weir_ckpt_meta_clear(&m);
    assert_int_equal(weir_ckpt_find_latest(st_at(ckdir), JOB, 3, true, NULL, &m, err, sizeof err),
                     0);
    assert_int_equal(m.id, 3);
    weir_ckpt_meta_clear(&m);
    /* the latest completed one vanished: an error, no silent fallback to chk-1 */
    snprintf(p, sizeof p, "%s/chk-2", ckdir);
    assert_int_equal(weir_rmtree(p), 0);
    assert_int_equal(weir_ckpt_find_latest(st_at(ckdir), JOB, 2, true, NULL, &m, err, sizeof err),
                     WEIR_ENOTFOUND);
    char expect[1024];
    snprintf(expect, sizeof expect,
             "checkpoint directory %s/chk-2 is missing: cannot restore job %s", ckdir, JOB);
    assert_string_equal(err, expect);
    /* ... or only its _metadata */
    write_ckpt(ckdir, 2, "b", "c");
    snprintf(p, sizeof p, "%s/chk-2/_metadata", ckdir);
    assert_int_equal(unlink(p), 0);
    assert_int_equal(weir_ckpt_find_latest(st_at(ckdir), JOB, 2, true, NULL, &m, err, sizeof err),
                     WEIR_ENOTFOUND);
    assert_non_null(strstr(err, "_metadata does not exist but checkpoint 2 completed"));
    /* a proven-corrupt _metadata of the latest completed one falls back */
    assert_int_equal(weir_write_file_atomic(p, "{\"version\":1", 12), 0);
    assert_int_equal(weir_ckpt_find_latest(st_at(ckdir), JOB, 2, true, NULL, &m, err, sizeof err),
                     0);
    assert_int_equal(m.id, 1);
    weir_ckpt_meta_clear(&m);
    /* the id of an HA pointer */
    uint64_t id = 0;
    assert_true(weir_ckpt_id_of_path("/ck/job/chk-17", &id));
    assert_int_equal(id, 17);
    assert_true(weir_ckpt_id_of_path("chk-3/", &id));
    assert_int_equal(id, 3);
    assert_false(weir_ckpt_id_of_path("/ck/job/chk-", &id));
    assert_false(weir_ckpt_id_of_path("/ck/job/chk-0", &id));
    assert_false(weir_ckpt_id_of_path("/ck/job/shared", &id));
    weir_test_tmpdir_remove(dir);
}

/* Runs find_latest with stderr captured; returns its code, the log in @p log. */
static int find_logged(const char *ckdir, uint64_t bound, const weir_store_io_t *io,
                       weir_ckpt_meta_t *m, char *err, size_t errlen, char *log, size_t logcap) {
    char tmpl[] = "/tmp/jmckpt-log-XXXXXX";
    int fd = mkstemp(tmpl);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    int rc = weir_ckpt_find_latest(st_at(ckdir), JOB, bound, true, io, m, err, errlen);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    ssize_t n = pread(fd, log, logcap - 1, 0);
    log[n > 0 ? n : 0] = 0;
    close(fd);
    unlink(tmpl);
    fputs(log, stderr);
    return rc;
}

static void test_read_errors(void **state) {
    (void)state;
    char *dir = weir_test_tmpdir("jmckpt");
    char ckdir[700], err[1024], log[8192], path[900];
    snprintf(ckdir, sizeof ckdir, "%s/%s", dir, JOB);
    snprintf(path, sizeof path, "%s/chk-2/_metadata", ckdir);
    write_ckpt(ckdir, 1, "a", "b");
    write_ckpt(ckdir, 2, "b", "c");
    weir_ckpt_meta_t m;
    int transient[] = {EIO, EMFILE, ENFILE, ENOMEM};
    for (int k = 0; k < 4; k++) {
        /* fails twice, then reads: chk-2 is restored, each failure logged with file and errno */
        weir_test_flaky_t f = {.match = "chk-2/_metadata", .err = transient[k], .fails = 2};
        weir_store_io_t io = {
            .read = weir_test_flaky_read, .ctx = &f, .attempts = 4, .backoff_ms = 1};
        assert_int_equal(find_logged(ckdir, 2, &io, &m, err, sizeof err, log, sizeof log), 0);
        assert_int_equal(m.id, 2);
        assert_int_equal(f.calls, 3);
        weir_ckpt_meta_clear(&m);
        char line[1300];
        snprintf(line, sizeof line, "cannot read %s: %s (errno %d), a transient error", path,
                 strerror(transient[k]), transient[k]);
        if (!strstr(log, line))
            fail_msg("no log line '%s' in:\n%s", line, log);
        assert_null(strstr(log, "corrupt"));
        /* fails on every attempt: an error naming the file and errno, no fallback to chk-1 */
        f.fails = 100;
        f.calls = 0;
        assert_int_equal(find_logged(ckdir, 2, &io, &m, err, sizeof err, log, sizeof log),
                         WEIR_EIO);
        assert_int_equal(f.calls, 4);
        snprintf(line, sizeof line,
                 "cannot read %s: %s (errno %d) after 4 attempts: cannot restore job %s", path,
                 strerror(transient[k]), transient[k], JOB);
        assert_string_equal(err, line);
        assert_null(strstr(log, "corrupt"));
        assert_null(strstr(log, "falling back"));
        /* meta_read says EIO, not corrupt */
        f.fails = 100;
        assert_int_equal(weir_ckpt_meta_read(st_at(ckdir), 2, &io, &m, err, sizeof err), WEIR_EIO);
    }
    /* a directory in place of the _metadata is no object (storage.h): chk-2 has no _metadata,
     * which fails a restore bounded by completed checkpoint 2 and is skipped without a bound */
    assert_int_equal(unlink(path), 0);
    assert_int_equal(mkdir(path, 0755), 0);
    assert_int_equal(weir_ckpt_find_latest(st_at(ckdir), JOB, 2, true, NULL, &m, err, sizeof err),
                     WEIR_ENOTFOUND);
    assert_non_null(strstr(err, "does not exist but checkpoint 2 completed"));
    assert_int_equal(
        weir_ckpt_find_latest(st_at(ckdir), JOB, WEIR_CKPT_ANY, true, NULL, &m, err, sizeof err),
        0);
    assert_int_equal(m.id, 1);
    weir_ckpt_meta_clear(&m);
    weir_test_tmpdir_remove(dir);
}

static void test_retention_pinned(void **state) {
    (void)state;
    char *dir = weir_test_tmpdir("jmckpt");
    char ckdir[700], sh[800];
    snprintf(ckdir, sizeof ckdir, "%s/%s", dir, JOB);
    snprintf(sh, sizeof sh, "%s/shared", ckdir);
    assert_int_equal(weir_mkdirs(sh), 0);
    const char *files[] = {"a", "b", "c", "d", "e", "f"};
    for (int i = 0; i < 6; i++) {
        char rel[32];
        snprintf(rel, sizeof rel, "shared/%s", files[i]);
        touch(ckdir, rel);
    }
    write_ckpt(ckdir, 1, "a", "b");
    write_ckpt(ckdir, 2, "b", "c"); /* the HA pointer names it */
    write_ckpt(ckdir, 3, "d", "d");
    write_ckpt(ckdir, 4, "e", "e");
    weir_ckpt_gc_stats_t st;
    /* retained 1 is chk-4; chk-2 is pinned: it and b, c stay */
    assert_int_equal(weir_ckpt_retain(st_at(ckdir), 1, 0, 2, NULL, 0, NULL, NULL, &st), 0);
    assert_false(exists(ckdir, "chk-1"));
    assert_true(exists(ckdir, "chk-2/_metadata"));
    assert_false(exists(ckdir, "chk-3"));
    assert_true(exists(ckdir, "chk-4/_metadata"));
    const bool keep[] = {false, true, true, false, true, false};
    for (int i = 0; i < 6; i++) {
        char rel[32];
        snprintf(rel, sizeof rel, "shared/%s", files[i]);
        assert_int_equal(exists(ckdir, rel), keep[i]);
    }
    /* an unreadable _metadata (EIO) keeps its checkpoint and every shared file this round */
    write_ckpt(ckdir, 5, "f", "f");
    touch(ckdir, "shared/f");
    touch(ckdir, "shared/x");
    weir_test_flaky_t f = {.match = "chk-4/_metadata", .err = EIO, .fails = 100};
    weir_store_io_t io = {.read = weir_test_flaky_read, .ctx = &f, .attempts = 2, .backoff_ms = -1};
    assert_int_equal(weir_ckpt_retain(st_at(ckdir), 1, 0, 5, NULL, 0, NULL, &io, &st), WEIR_EIO);
    assert_int_equal(st.shared_removed, 0);
    assert_true(exists(ckdir, "chk-4/_metadata"));
    assert_true(exists(ckdir, "shared/x"));
    assert_false(exists(ckdir, "chk-2")); /* read fine, not pinned any more, not retained */
    /* readable again: chk-4 goes, so do e and x */
    assert_int_equal(weir_ckpt_retain(st_at(ckdir), 1, 0, 5, NULL, 0, NULL, NULL, &st), 0);
    assert_false(exists(ckdir, "chk-4"));
    assert_false(exists(ckdir, "shared/e"));
    assert_false(exists(ckdir, "shared/x"));
    assert_true(exists(ckdir, "shared/f"));
    /* a pinned checkpoint that cannot be read: kept, and nothing of shared/ collected */
    write_ckpt(ckdir, 6, "a", "a");
    weir_test_flaky_t g = {.match = "chk-5/_metadata", .err = EIO, .fails = 100};
    io.ctx = &g;
    assert_int_equal(weir_ckpt_retain(st_at(ckdir), 1, 0, 5, NULL, 0, NULL, &io, &st), WEIR_EIO);
    assert_true(exists(ckdir, "chk-5/_metadata"));
    assert_true(exists(ckdir, "shared/f"));
    weir_test_tmpdir_remove(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_metadata_round_trip),
        cmocka_unit_test(test_fallback),
        cmocka_unit_test(test_retention_gc),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_coordinator),
        cmocka_unit_test(test_coordinator_finished_subtasks),
        cmocka_unit_test(test_coordinator_savepoints),
        cmocka_unit_test(test_config_refusals),
        cmocka_unit_test(test_restore_bound),
        cmocka_unit_test(test_read_errors),
        cmocka_unit_test(test_retention_pinned),
    };
    return cmocka_run_group_tests(tests, NULL, teardown_storage);
}
