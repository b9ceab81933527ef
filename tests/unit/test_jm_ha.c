/* Tests the job manager's HA store (jobmanager/ha.c): a job record, its plugin copy and its
 * checkpoint pointer survive a save/load round trip; removal; unreadable entries are skipped;
 * the blob store finds plugins in the HA blobs directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/util.h"
#include "jobmanager/blobstore.h"
#include "jobmanager/ha.h"
#include "testutil.h"

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
    assert_int_equal(weir_ha_save_job(dir, &j, err, sizeof err), 0);
    assert_int_equal(weir_ha_save_blob(dir, sha, "abc", 3, err, sizeof err), 0);
    /* a second job without pointer, and a broken entry */
    weir_ha_job_t j2 = j;
    memcpy(j2.id, "ffffffffffffffffffffffffffffffff", 33);
    j2.n_args = 0;
    j2.attempt = 1;
    assert_int_equal(weir_ha_save_job(dir, &j2, err, sizeof err), 0);
    char p[1200];
    snprintf(p, sizeof p, "%s/jobs/broken", dir);
    weir_mkdirs(p);
    snprintf(p, sizeof p, "%s/jobs/broken/job.json", dir);
    assert_int_equal(weir_write_file_atomic(p, "{\"id\":", 6), 0);
    assert_int_equal(weir_ha_set_checkpoint(dir, j.id, "/ck/00112233/chk-9", err, sizeof err), 0);

    weir_ha_job_t *jobs;
    size_t n;
    assert_int_equal(weir_ha_load_jobs(dir, &jobs, &n, err, sizeof err), 0);
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

    /* the blob store finds the plugin through the fallback */
    char bdir[700], hb[700];
    snprintf(bdir, sizeof bdir, "%s/store", dir);
    weir_blobstore_t *bs = weir_blobstore_new(bdir, 1 << 20, err, sizeof err);
    assert_non_null(bs);
    assert_false(weir_blobstore_has(bs, sha));
    weir_ha_blob_dir(dir, hb, sizeof hb);
    assert_int_equal(weir_blobstore_set_fallback(bs, hb), 0);
    assert_true(weir_blobstore_has(bs, sha));
    uint8_t *data;
    size_t len;
    assert_int_equal(weir_blobstore_get(bs, sha, &data, &len), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(data, "abc", 3);
    free(data);
    weir_blobstore_destroy(&bs);

    /* removal */
    assert_int_equal(weir_ha_remove_job(dir, j.id), 0);
    assert_int_equal(weir_ha_load_jobs(dir, &jobs, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(jobs[0].id, "ffffffffffffffffffffffffffffffff");
    weir_ha_jobs_free(jobs, n);
    weir_test_tmpdir_remove(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
