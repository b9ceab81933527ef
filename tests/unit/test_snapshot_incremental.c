/* The "must show" of incremental checkpoints (state/snapshot.c) at scale: more than 1 GB of keyed
 * value state (8 M keys x 128 hardly compressible bytes) written through the backend, a full
 * checkpoint, 1% of the keys updated, a second checkpoint: prints
 * "full=<bytes> incremental=<bytes> ratio=<x>" and asserts the increment is below 10% of the
 * full size. Then retention is simulated (checkpoint 1's private directory and every shared file
 * checkpoint 2 does not reference are deleted), checkpoint 2 is restored and sampled keys (old and
 * updated) are compared with the model (values are a pure function of key index and version),
 * and no file in shared/ may be unreferenced.
 *
 * Setup choice: keys are written in RocksDB key order (key group, then key), like a bulk load,
 * so flushed files do not overlap and compaction is mostly trivial moves: the ingest stays fast
 * on 2 cores. The 1% update is in random RocksDB order (real increments). The test waits for
 * background flushes/compactions to settle before checkpoint 1 (it does not force any). */
#include <dirent.h>
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
#include <jansson.h>

#include "common/err.h"
#include "common/util.h"
#include "runtime/graph/keygroup.h"
#include "state/snapshot.h"
#include "snapshot_io.h"
#include "state/state.h"
#include "state/state_int.h"
#include "testutil.h"

#define N_KEYS (8u << 20)
#define VAL_LEN 128u
#define MAX_PAR 128u
#define UPDATE_MOD 100u /* keys with index % 100 == UPDATE_REM get version 1 */
#define UPDATE_REM 37u

static double ms_since(int64_t t0) {
    return (double)(weir_now_ns() - t0) / 1e6;
}

static int key_of(uint32_t i, char *buf) {
    return snprintf(buf, 16, "k%08u", i);
}

/* The model: 128 bytes that are a pure function of (index, version). */
static void value_of(uint32_t i, uint32_t ver, uint8_t *out) {
    uint64_t x = (uint64_t)i * 0x9E3779B97F4A7C15ULL + (uint64_t)ver * 0xD1B54A32D192ED03ULL + 1;
    for (unsigned w = 0; w < VAL_LEN / 8; w++) {
        x += 0x9E3779B97F4A7C15ULL; /* splitmix64 */
        uint64_t z = x;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        z ^= z >> 31;
        memcpy(out + 8 * w, &z, 8);
    }
}

static uint32_t version_of(uint32_t i, bool updated) {
    return updated && i % UPDATE_MOD == UPDATE_REM ? 1u : 0u;
}

static void put(weir_state_backend_t *sb, uint32_t i, uint32_t ver) {
    char k[16];
    uint8_t v[VAL_LEN];
    int kl = key_of(i, k);
    value_of(i, ver, v);
    weir_state_set_key(sb, k, (uint32_t)kl);
    assert_int_equal(weir_state_value_put(sb, 0, v, VAL_LEN), 0);
}

static void check(weir_state_backend_t *sb, uint32_t i, uint32_t ver) {
    char k[16];
    uint8_t want[VAL_LEN];
    int kl = key_of(i, k);
    value_of(i, ver, want);
    weir_state_set_key(sb, k, (uint32_t)kl);
    const void *v;
    uint32_t len;
    assert_int_equal(weir_state_value_get(sb, 0, &v, &len), 0);
    assert_int_equal(len, VAL_LEN);
    assert_memory_equal(v, want, VAL_LEN);
}

/* Waits until RocksDB has no flush or compaction pending or running. */
static bool settled(void *sb) {
    return weir_state_int_idle(sb);
}

static void settle(weir_state_backend_t *sb) {
    if (!weir_test_wait_until(settled, sb, 5 * 60 * 1000, 50))
        fail_msg("RocksDB did not settle in 5 minutes");
}

static char *checkpoint(weir_state_backend_t *sb, uint64_t id, const char *ck, uint64_t *ss,
                        uint64_t *us) {
    char err[512];
    int64_t t0 = weir_now_ns();
    weir_state_snapshot_t *s = weir_state_snapshot_take(sb, id, err, sizeof(err));
    if (!s)
        fail_msg("take %llu: %s", (unsigned long long)id, err);
    double take_ms = ms_since(t0);
    t0 = weir_now_ns();
    char *h = NULL;
    if (upload_to(s, ck, "1-0", WEIR_UPLOAD_INCREMENTAL, &h, ss, us, err, sizeof(err)) != 0)
        fail_msg("upload %llu: %s", (unsigned long long)id, err);
    weir_state_snapshot_free(&s);
    print_message("checkpoint %llu: take %.1f ms (synchronous part), upload %.1f ms, state %llu "
                  "bytes, uploaded %llu bytes\n",
                  (unsigned long long)id, take_ms, ms_since(t0), (unsigned long long)*ss,
                  (unsigned long long)*us);
    return h;
}

static bool referenced(json_t *h, const char *name) {
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(h, "shared"), i, o) {
        if (strcmp(json_string_value(json_object_get(o, "name")), name) == 0)
            return true;
    }
    return false;
}

static void test_incremental_1gb(void **unused) {
    (void)unused;
    char *tmp = weir_test_tmpdir("snapinc");
    char db[1100], db2[1100], ck[1100], p[2048];
    snprintf(db, sizeof(db), "%s/db", tmp);
    snprintf(db2, sizeof(db2), "%s/restored", tmp);
    snprintf(ck, sizeof(ck), "%s/ck", tmp);

    weir_state_decl_t decl = {.name = "v", .kind = WEIR_STATE_VALUE};
    weir_state_opts_t o = {.path = db,
                           .max_parallelism = MAX_PAR,
                           .cache_bytes = 64u << 20,
                           .write_buffer_bytes = 64u << 20,
                           .block_cache_bytes = 32u << 20};
    char err[512];
    weir_state_backend_t *sb = weir_state_open(&o, &decl, 1, err, sizeof(err));
    if (!sb)
        fail_msg("open: %s", err);

    /* bulk load in RocksDB key order: counting sort of the indices by key group */
    int64_t t0 = weir_now_ns();
    uint32_t *kg = malloc(N_KEYS * sizeof(*kg)), *order = malloc(N_KEYS * sizeof(*order));
    uint32_t cnt[MAX_PAR + 1] = {0};
    assert_non_null(kg);
    assert_non_null(order);
    for (uint32_t i = 0; i < N_KEYS; i++) {
        char k[16];
        int kl = key_of(i, k);
        kg[i] = weir_keygroup_of(k, (size_t)kl, MAX_PAR);
        cnt[kg[i] + 1]++;
    }
    for (uint32_t g = 0; g < MAX_PAR; g++)
        cnt[g + 1] += cnt[g];
    for (uint32_t i = 0; i < N_KEYS; i++)
        order[cnt[kg[i]]++] = i; /* stable: within a key group, by index = by key bytes */
    free(kg);
    for (uint32_t n = 0; n < N_KEYS; n++)
        put(sb, order[n], 0);
    free(order);
    settle(sb);
    print_message("loaded %u keys x %u bytes in %.1f s\n", N_KEYS, VAL_LEN, ms_since(t0) / 1e3);

    uint64_t full_ss, full_us, inc_ss, inc_us;
    char *h1 = checkpoint(sb, 1, ck, &full_ss, &full_us);
    assert_true(full_ss >= (1ull << 30)); /* at least 1 GiB of state */
    assert_int_equal(full_us, full_ss);
    weir_state_snapshot_confirm(sb, 1);

    /* update 1% of the keys (random RocksDB order) */
    for (uint32_t i = UPDATE_REM; i < N_KEYS; i += UPDATE_MOD)
        put(sb, i, 1);
    char *h2 = checkpoint(sb, 2, ck, &inc_ss, &inc_us);
    weir_state_snapshot_confirm(sb, 2);
    print_message("full=%llu incremental=%llu ratio=%.4f\n", (unsigned long long)full_us,
                  (unsigned long long)inc_us, (double)inc_us / (double)full_us);
    assert_true(inc_us * 10 < full_us);
    weir_state_close(&sb, true);

    /* retention: drop checkpoint 1 (private files and every shared file 2 does not reference) */
    json_error_t je;
    json_t *j1 = json_loads(h1, 0, &je), *j2 = json_loads(h2, 0, &je);
    assert_non_null(j1);
    assert_non_null(j2);
    snprintf(p, sizeof(p), "%s/chk-1", ck);
    assert_int_equal(weir_rmtree(p), 0);
    snprintf(p, sizeof(p), "%s/shared", ck);
    DIR *d = opendir(p);
    assert_non_null(d);
    struct dirent *de;
    size_t n_deleted = 0, n_kept = 0;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        /* nothing but the two checkpoints' files (no temporaries) */
        assert_true(referenced(j1, de->d_name) || referenced(j2, de->d_name));
        if (!referenced(j2, de->d_name)) {
            char f[2400];
            snprintf(f, sizeof(f), "%s/%s", p, de->d_name);
            assert_int_equal(unlink(f), 0);
            n_deleted++;
        } else {
            n_kept++;
        }
    }
    closedir(d);
    assert_int_equal(n_kept, json_array_size(json_object_get(j2, "shared")));
    print_message("retention: %zu shared files deleted, %zu kept\n", n_deleted, n_kept);

    /* restore checkpoint 2 and sample old and updated keys */
    t0 = weir_now_ns();
    weir_state_opts_t o2 = o;
    o2.path = db2;
    weir_state_backend_t *r = restore_ck(&o2, &decl, 1, ck, h2, err, sizeof(err));
    if (!r)
        fail_msg("restore: %s", err);
    print_message("restored in %.1f ms\n", ms_since(t0));
    uint64_t x = 42;
    for (int s = 0; s < 100000; s++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint32_t i = (uint32_t)(x % N_KEYS);
        if (s % 2 == 0) /* half of the samples among the updated keys */
            i = i - i % UPDATE_MOD + UPDATE_REM < N_KEYS ? i - i % UPDATE_MOD + UPDATE_REM : i;
        check(r, i, version_of(i, true));
    }
    check(r, 0, 0);
    check(r, N_KEYS - 1, version_of(N_KEYS - 1, true));
    weir_state_close(&r, true);

    /* every file in shared/ is referenced by the retained checkpoint */
    d = opendir(p);
    assert_non_null(d);
    size_t n_left = 0;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        assert_true(referenced(j2, de->d_name));
        n_left++;
    }
    closedir(d);
    assert_int_equal(n_left, n_kept);
    json_decref(j1);
    json_decref(j2);
    free(h1);
    free(h2);
    weir_test_tmpdir_remove(tmp);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_incremental_1gb)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
