/* Unit tests of the task manager's shared keyed-state memory (state/memory.c and the C++ shim
 * state/rocksdb_memory.cc): two backends' memtables are charged to the one block cache through
 * the one WriteBufferManager; writes beyond the manager's limit flush instead of
 * growing the memtables; the write-back caches of several backends stay within one budget (fair
 * shares) and lose no value; the report and the option checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "state/memory.h"
#include "state/state.h"
#include "testutil.h"

#define MIB ((uint64_t)1 << 20)

static const weir_state_decl_t DECL[] = {{.name = "v", .kind = WEIR_STATE_VALUE}};

static weir_state_backend_t *open_shared(const char *dir, const char *name,
                                         weir_state_memory_t *m) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    weir_state_opts_t o = {.path = path, .max_parallelism = 128, .memory = m};
    char err[256];
    weir_state_backend_t *sb = weir_state_open(&o, DECL, 1, err, sizeof err);
    if (!sb)
        fail_msg("open failed: %s", err);
    return sb;
}

static weir_state_memory_t *new_mem(uint64_t managed, uint64_t cache, uint64_t wb) {
    weir_state_memory_opts_t o = {.managed_bytes = managed,
                                  .write_buffer_ratio = 0.5,
                                  .high_prio_ratio = 0.1,
                                  .cache_bytes = cache,
                                  .write_buffer_bytes = wb};
    char err[256];
    weir_state_memory_t *m = weir_state_memory_new(&o, err, sizeof err);
    if (!m)
        fail_msg("memory: %s", err);
    return m;
}

/* Puts keys [from, to) with 100-byte values derived from the key and @p ver. */
static void put_range(weir_state_backend_t *sb, uint32_t from, uint32_t to, int ver) {
    char key[32], val[100];
    for (uint32_t i = from; i < to; i++) {
        int kl = snprintf(key, sizeof key, "key-%u", i);
        memset(val, 'a' + (int)((i + (uint32_t)ver) % 26), sizeof val);
        snprintf(val, sizeof val, "%u/%d", i, ver);
        weir_state_set_key(sb, key, (uint32_t)kl);
        assert_int_equal(weir_state_value_put(sb, 0, val, sizeof val), 0);
    }
}

static void check_range(weir_state_backend_t *sb, uint32_t from, uint32_t to, uint32_t step,
                        int ver) {
    char key[32], want[100];
    for (uint32_t i = from; i < to; i += step) {
        int kl = snprintf(key, sizeof key, "key-%u", i);
        memset(want, 'a' + (int)((i + (uint32_t)ver) % 26), sizeof want);
        snprintf(want, sizeof want, "%u/%d", i, ver);
        weir_state_set_key(sb, key, (uint32_t)kl);
        const void *v = NULL;
        uint32_t l = 0;
        assert_int_equal(weir_state_value_get(sb, 0, &v, &l), 0);
        assert_int_equal(l, sizeof want);
        assert_memory_equal(v, want, sizeof want);
    }
}

/* Flink's split: cache (3 - r) / 3, write buffer manager 2 r / 3 of the managed memory. */
static void test_sizes_and_options(void **st) {
    (void)st;
    weir_state_memory_t *m = new_mem(96 * MIB, 8 * MIB, 0);
    weir_state_memory_report_t r;
    weir_state_memory_report(m, &r);
    assert_int_equal(r.managed_total, 96 * MIB);
    assert_int_equal(r.block_cache_capacity, 80 * MIB); /* (3 - 0.5) / 3 * 96 */
    assert_int_equal(r.write_buffer_limit, 32 * MIB);   /* 2 * 0.5 / 3 * 96 */
    assert_int_equal(r.cache_total, 8 * MIB);
    assert_int_equal(r.cache_used, 0);
    assert_int_equal(r.backends, 0);
    weir_state_memory_destroy(&m);
    assert_null(m);

    weir_state_memory_opts_t bad = {.managed_bytes = MIB, .write_buffer_ratio = 1.5};
    char err[256] = "";
    assert_null(weir_state_memory_new(&bad, err, sizeof err));
    assert_non_null(strstr(err, "write-buffer ratio"));
}

/* Two DBs' memtables are charged to the one cache: its usage grows with what the write buffer
 * manager counts for both (without the shim's manager the cache would hold no reservation). */
static void test_memtables_charged_to_shared_cache(void **st) {
    (void)st;
    char *dir = weir_test_tmpdir("membudget-charge");
    weir_state_memory_t *m = new_mem(96 * MIB, 64 * MIB, 64 * MIB);
    weir_state_backend_t *a = open_shared(dir, "a", m), *b = open_shared(dir, "b", m);
    weir_state_memory_report_t r0, r1;
    weir_state_memory_report(m, &r0);
    assert_int_equal(r0.backends, 2);
    put_range(a, 0, 40000, 1); /* ~5 MB of memtable each (cache write-back on flush) */
    put_range(b, 0, 40000, 2);
    assert_int_equal(weir_state_flush(a), 0);
    assert_int_equal(weir_state_flush(b), 0);
    weir_state_memory_report(m, &r1);
    print_message("memtables %llu, manager %llu, cache usage %llu -> %llu\n",
                  (unsigned long long)r1.memtables, (unsigned long long)r1.write_buffer_usage,
                  (unsigned long long)r0.block_cache_usage,
                  (unsigned long long)r1.block_cache_usage);
    assert_true(r1.memtables >= 2 * 4 * MIB);
    assert_true(r1.write_buffer_usage >= 2 * 4 * MIB);
    assert_true(r1.block_cache_usage >= r1.write_buffer_usage); /* the cache holds them */
    assert_true(r1.block_cache_usage >= r0.block_cache_usage + 2 * 4 * MIB);
    weir_state_close(&a, true);
    weir_state_memory_report(m, &r1);
    assert_int_equal(r1.backends, 1);
    weir_state_close(&b, true);
    weir_state_memory_destroy(&m);
    weir_test_tmpdir_remove(dir);
}

/* Writes far beyond the write buffer manager's limit: memtables are flushed (a writing DB
 * flushes its largest once the memtables of both pass the manager's trigger) so they never grow
 * past it by more than one switch (Flink's 1.5x), and every value is kept. */
static void test_write_buffer_limit(void **st) {
    (void)st;
    char *dir = weir_test_tmpdir("membudget-limit");
    /* manager 2/3 * 0.5 * 12 MiB = 4 MiB; memtables of 4 MiB per column family */
    weir_state_memory_t *m = new_mem(12 * MIB, 4 * MIB, 4 * MIB);
    weir_state_backend_t *a = open_shared(dir, "a", m), *b = open_shared(dir, "b", m);
    uint64_t max_mem = 0;
    for (uint32_t i = 0; i < 40; i++) { /* 40 x 2 x 5,000 x ~120 bytes = ~48 MB */
        put_range(a, i * 5000, (i + 1) * 5000, 3);
        put_range(b, i * 5000, (i + 1) * 5000, 4);
        assert_int_equal(weir_state_flush(a), 0);
        assert_int_equal(weir_state_flush(b), 0);
        weir_state_memory_report_t r;
        weir_state_memory_report(m, &r);
        if (r.memtables > max_mem) /* RocksDB's own count, not the manager's */
            max_mem = r.memtables;
    }
    print_message("largest memtable total %llu (limit %llu)\n", (unsigned long long)max_mem,
                  (unsigned long long)(4 * MIB));
    /* without the manager the two DBs would hold up to 2 x 2 memtables of 4 MiB (16 MiB) */
    assert_true(max_mem <= 4 * MIB * 3 / 2 + MIB);
    check_range(a, 0, 200000, 97, 3);
    check_range(b, 0, 200000, 89, 4);
    weir_state_close(&a, true);
    weir_state_close(&b, true);
    weir_state_memory_destroy(&m);
    weir_test_tmpdir_remove(dir);
}

/* Three backends share a 3 MiB write-back budget: the sum of their caches and of their
 * reservations never exceeds it, each stays within its fair share, and nothing is lost (evicted
 * dirty entries go to RocksDB). */
static void test_state_cache_budget(void **st) {
    (void)st;
    char *dir = weir_test_tmpdir("membudget-cache");
    const uint64_t total = 3 * MIB;
    weir_state_memory_t *m = new_mem(32 * MIB, total, 4 * MIB);
    weir_state_backend_t *sb[3] = {open_shared(dir, "a", m), open_shared(dir, "b", m),
                                   open_shared(dir, "c", m)};
    for (uint32_t round = 0; round < 10; round++) {
        for (int k = 0; k < 3; k++) {
            put_range(sb[k], round * 10000, (round + 1) * 10000, k);
            weir_state_stats_t s[3];
            uint64_t sum = 0;
            for (int j = 0; j < 3; j++) {
                weir_state_get_stats(sb[j], &s[j]);
                sum += s[j].cache_bytes;
                /* fair share + the one entry an operation may keep above it */
                assert_true(s[j].cache_bytes <= total / 3 + 256);
            }
            weir_state_memory_report_t r;
            weir_state_memory_report(m, &r);
            assert_true(r.cache_used <= total);
            assert_true(sum <= r.cache_used + 3 * 256);
        }
    }
    weir_state_stats_t s;
    weir_state_get_stats(sb[0], &s);
    assert_true(s.evictions > 0);
    for (int k = 0; k < 3; k++)
        check_range(sb[k], 0, 100000, 37, k);
    weir_state_close(&sb[0], true);
    weir_state_memory_report_t r;
    weir_state_memory_report(m, &r);
    assert_true(r.cache_used <= 2 * (total / 3)); /* the closed one's reservation came back */
    weir_state_close(&sb[1], true);
    weir_state_close(&sb[2], true);
    weir_state_memory_report(m, &r);
    assert_int_equal(r.cache_used, 0);
    assert_int_equal(r.backends, 0);
    weir_state_memory_destroy(&m);
    weir_test_tmpdir_remove(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes_and_options),
        cmocka_unit_test(test_memtables_charged_to_shared_cache),
        cmocka_unit_test(test_write_buffer_limit),
        cmocka_unit_test(test_state_cache_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
