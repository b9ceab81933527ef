/* Unit tests of the keyed timer store (state/timers.c): firing order and dedup/delete against an
 * in-test model (a sorted array), the raw RocksDB layout of state/timers.h (key groups from an
 * independent MurmurHash3 copy), reload after close/reopen, and a snapshot of two backends
 * restored at parallelism 3 (key groups redistributed: each new subtask holds exactly the timers
 * of its keys). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <rocksdb/c.h>

#include "common/err.h"
#include "runtime/graph/keygroup.h"
#include "state/snapshot.h"
#include "snapshot_io.h"
#include "state/state_int.h"
#include "state/timers.h"
#include "testutil.h"

#define MAX_PAR 128u

static const weir_state_decl_t DECLS[2] = {
    {.name = "v", .kind = WEIR_STATE_VALUE},
    {.name = "weir.timers", .kind = WEIR_STATE_MAP},
};

static weir_state_opts_t opts_for(const char *path) {
    return (weir_state_opts_t){.path = path,
                               .max_parallelism = MAX_PAR,
                               .cache_bytes = 64 << 10,
                               .write_buffer_bytes = 256 << 10,
                               .block_cache_bytes = 1 << 20};
}

static weir_state_backend_t *open_sb(const char *path) {
    weir_state_opts_t o = opts_for(path);
    char err[256];
    weir_state_backend_t *sb = weir_state_open(&o, DECLS, 2, err, sizeof err);
    if (!sb)
        fail_msg("open: %s", err);
    return sb;
}

static weir_timers_t *open_tm(weir_state_backend_t *sb) {
    char err[256];
    weir_timers_t *tm = weir_timers_open(sb, 1, err, sizeof err);
    if (!tm)
        fail_msg("timers open: %s", err);
    return tm;
}

/* the model: timers as (domain, ts, key) */
typedef struct mt {
    int dom;
    int64_t ts;
    char key[16];
} mt_t;

static int cmp_fire(const void *a, const void *b) { /* ts, key length, key bytes */
    const mt_t *x = a, *y = b;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    size_t lx = strlen(x->key), ly = strlen(y->key);
    if (lx != ly)
        return lx < ly ? -1 : 1;
    return memcmp(x->key, y->key, lx);
}

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

#define NM 4000
static mt_t MODEL[NM];
static int n_model;

static int model_find(int dom, int64_t ts, const char *key) {
    for (int i = 0; i < n_model; i++)
        if (MODEL[i].dom == dom && MODEL[i].ts == ts && strcmp(MODEL[i].key, key) == 0)
            return i;
    return -1;
}

/* Random registers (with duplicates) and deletes (also of absent timers) of both domains. */
static void random_ops(weir_timers_t *tm, int n_ops) {
    for (int i = 0; i < n_ops; i++) {
        mt_t t = {.dom = (int)(rnd() % 2), .ts = (int64_t)(rnd() % 200) - 100};
        snprintf(t.key, sizeof t.key, "k%d", (int)(rnd() % 40));
        if (rnd() % 4 == 0) {
            assert_int_equal(weir_timers_delete(tm, t.dom, t.key, (uint32_t)strlen(t.key), t.ts),
                             0);
            int j = model_find(t.dom, t.ts, t.key);
            if (j >= 0)
                MODEL[j] = MODEL[--n_model];
        } else {
            assert_int_equal(weir_timers_register(tm, t.dom, t.key, (uint32_t)strlen(t.key), t.ts),
                             0);
            if (model_find(t.dom, t.ts, t.key) < 0)
                MODEL[n_model++] = t;
        }
    }
}

/* Pops every timer of @p dom up to @p upto and checks order and contents against the model. */
static void pop_and_check(weir_timers_t *tm, int dom, int64_t upto) {
    mt_t want[NM];
    int nw = 0;
    for (int i = 0; i < n_model; i++)
        if (MODEL[i].dom == dom && MODEL[i].ts <= upto)
            want[nw++] = MODEL[i];
    qsort(want, (size_t)nw, sizeof *want, cmp_fire);
    for (int i = 0; i < nw; i++) {
        assert_true(weir_timers_peek(tm, dom) == want[i].ts);
        int64_t ts;
        const void *k;
        uint32_t kl;
        assert_int_equal(weir_timers_pop(tm, dom, upto, &ts, &k, &kl), 1);
        assert_true(ts == want[i].ts);
        assert_int_equal(kl, strlen(want[i].key));
        assert_memory_equal(k, want[i].key, kl);
        int j = model_find(dom, ts, want[i].key);
        assert_true(j >= 0);
        MODEL[j] = MODEL[--n_model];
    }
    int64_t ts;
    const void *k;
    uint32_t kl;
    assert_int_equal(weir_timers_pop(tm, dom, upto, &ts, &k, &kl), 0);
    if (upto == INT64_MAX)
        assert_int_equal(weir_timers_count(tm, dom), 0);
    else
        assert_true(weir_timers_peek(tm, dom) > upto);
}

static size_t model_count(int dom) {
    size_t n = 0;
    for (int i = 0; i < n_model; i++)
        n += MODEL[i].dom == dom;
    return n;
}

/* Every stored RocksDB key follows the layout, in (key group, domain, timestamp) order, and the
 * stored set equals the model. */
static void check_layout(weir_state_backend_t *sb) {
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_iterator_t *it =
        rocksdb_create_iterator_cf(weir_state_int_db(sb), ro, weir_state_int_cf(sb, 1));
    int n = 0;
    uint32_t pkg = 0;
    int pdom = 0;
    int64_t pts = INT64_MIN;
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kl;
        const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
        assert_true(kl > 11 && kl < 11 + 16);
        char key[16] = {0};
        memcpy(key, k + 11, kl - 11);
        uint32_t kg = (uint32_t)k[0] << 8 | k[1];
        assert_int_equal(kg, (weir_test_murmur3_32(k + 11, kl - 11) % MAX_PAR));
        int dom = k[2];
        uint64_t u = 0;
        for (int i = 0; i < 8; i++)
            u = u << 8 | k[3 + i];
        int64_t ts = (int64_t)(u ^ (1ull << 63));
        assert_true(model_find(dom, ts, key) >= 0);
        if (n > 0 && kg == pkg && dom == pdom)
            assert_true(ts >= pts);
        pkg = kg, pdom = dom, pts = ts;
        n++;
    }
    assert_int_equal(n, n_model);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
}

static void test_order_dedup_delete_reload(void **unused) {
    (void)unused;
    char *tmp = weir_test_tmpdir("timers");
    char path[1024];
    snprintf(path, sizeof path, "%s/sb", tmp);
    weir_state_backend_t *sb = open_sb(path);
    weir_timers_t *tm = open_tm(sb);
    n_model = 0;
    /* register twice = once; delete of an absent timer is a no-op */
    assert_int_equal(weir_timers_register(tm, WEIR_TIMER_EVENT, "a", 1, 5), 0);
    assert_int_equal(weir_timers_register(tm, WEIR_TIMER_EVENT, "a", 1, 5), 0);
    assert_int_equal(weir_timers_count(tm, WEIR_TIMER_EVENT), 1);
    assert_int_equal(weir_timers_delete(tm, WEIR_TIMER_EVENT, "a", 1, 6), 0);
    assert_int_equal(weir_timers_delete(tm, WEIR_TIMER_PROC, "a", 1, 5), 0);
    assert_int_equal(weir_timers_count(tm, WEIR_TIMER_EVENT), 1);
    assert_int_equal(weir_timers_delete(tm, WEIR_TIMER_EVENT, "a", 1, 5), 0);
    assert_int_equal(weir_timers_count(tm, WEIR_TIMER_EVENT), 0);
    assert_true(weir_timers_peek(tm, WEIR_TIMER_EVENT) == INT64_MAX);
    assert_int_equal(weir_timers_register(tm, 2, "a", 1, 5), WEIR_EINVAL);

    random_ops(tm, 3000);
    assert_int_equal(weir_timers_count(tm, WEIR_TIMER_EVENT), model_count(WEIR_TIMER_EVENT));
    assert_int_equal(weir_timers_count(tm, WEIR_TIMER_PROC), model_count(WEIR_TIMER_PROC));
    check_layout(sb);
    /* reload: close everything, reopen, the same timers come back */
    weir_timers_free(&tm);
    weir_state_close(&sb, false);
    sb = open_sb(path);
    tm = open_tm(sb);
    assert_int_equal(weir_timers_count(tm, WEIR_TIMER_EVENT), model_count(WEIR_TIMER_EVENT));
    assert_int_equal(weir_timers_count(tm, WEIR_TIMER_PROC), model_count(WEIR_TIMER_PROC));
    pop_and_check(tm, WEIR_TIMER_EVENT, -50);
    pop_and_check(tm, WEIR_TIMER_PROC, 0);
    random_ops(tm, 1000);
    check_layout(sb);
    pop_and_check(tm, WEIR_TIMER_EVENT, INT64_MAX);
    pop_and_check(tm, WEIR_TIMER_PROC, INT64_MAX);
    assert_int_equal(n_model, 0);
    check_layout(sb);
    weir_timers_free(&tm);
    weir_state_close(&sb, true);
    weir_test_tmpdir_remove(tmp);
}

static char *upload(weir_state_backend_t *sb, const char *dir, const char *task) {
    char err[512];
    weir_state_snapshot_t *s = weir_state_snapshot_take(sb, 1, err, sizeof err);
    if (!s)
        fail_msg("take: %s", err);
    char *h = NULL;
    uint64_t ss = 0, us = 0;
    if (upload_to(s, dir, task, WEIR_UPLOAD_INCREMENTAL, &h, &ss, &us, err, sizeof err) != 0)
        fail_msg("upload: %s", err);
    weir_state_snapshot_free(&s);
    return h;
}

/* Timers of two subtasks, snapshotted and restored at parallelism 3 by key group. */
static void test_snapshot_rescale_2_to_3(void **unused) {
    (void)unused;
    char *tmp = weir_test_tmpdir("timers-rescale");
    char ck[1024];
    snprintf(ck, sizeof ck, "%s/ck", tmp);
    char *handles[2];
    enum { NK = 300 };
    for (uint32_t s = 0; s < 2; s++) {
        char path[1024], task[16];
        snprintf(path, sizeof path, "%s/old-%u", tmp, s);
        snprintf(task, sizeof task, "1-%u", s);
        weir_state_backend_t *sb = open_sb(path);
        weir_timers_t *tm = open_tm(sb);
        uint32_t first, last;
        weir_keygroup_range(s, 2, MAX_PAR, &first, &last);
        for (int k = 0; k < NK; k++) {
            char key[16];
            snprintf(key, sizeof key, "k%d", k);
            uint32_t kg = weir_test_murmur3_32((const uint8_t *)key, strlen(key)) % MAX_PAR;
            if (kg < first || kg > last)
                continue;
            assert_int_equal(weir_timers_register(tm, WEIR_TIMER_EVENT, key, strlen(key), k), 0);
            assert_int_equal(weir_timers_register(tm, WEIR_TIMER_PROC, key, strlen(key), -k), 0);
        }
        handles[s] = upload(sb, ck, task);
        weir_timers_free(&tm);
        weir_state_close(&sb, false);
    }
    char base[1100];
    snprintf(base, sizeof base, "%s/chk-1", ck);
    int seen[NK] = {0};
    for (uint32_t k = 0; k < 3; k++) {
        uint32_t first, last;
        weir_keygroup_range(k, 3, MAX_PAR, &first, &last);
        json_t *srcs = json_array();
        for (uint32_t i = 0; i < 2; i++) {
            uint32_t a, b;
            weir_keygroup_range(i, 2, MAX_PAR, &a, &b);
            if (b < first || a > last)
                continue;
            json_error_t je;
            json_t *h = json_loads(handles[i], 0, &je);
            assert_non_null(h);
            json_array_append_new(
                srcs, json_pack("{s:[i,i], s:o}", "range", (int)a, (int)b, "handle", h));
        }
        json_t *doc =
            json_pack("{s:s, s:b, s:i, s:[i,i], s:o}", "base", base, "claim", 0, "max_parallelism",
                      (int)MAX_PAR, "range", (int)first, (int)last, "sources", srcs);
        char *text = json_dumps(doc, JSON_COMPACT);
        json_decref(doc);
        char path[1024], err[1024];
        snprintf(path, sizeof path, "%s/new-%u", tmp, k);
        weir_state_opts_t o = opts_for(path);
        weir_state_backend_t *sb = restore_doc_plan(&o, DECLS, 2, text, err, sizeof err);
        if (!sb)
            fail_msg("restore: %s", err);
        free(text);
        weir_timers_t *tm = open_tm(sb);
        size_t n_ev = weir_timers_count(tm, WEIR_TIMER_EVENT);
        assert_int_equal(weir_timers_count(tm, WEIR_TIMER_PROC), n_ev);
        int64_t prev = INT64_MIN;
        for (size_t j = 0; j < n_ev; j++) {
            int64_t ts;
            const void *kp;
            uint32_t kl;
            assert_int_equal(weir_timers_pop(tm, WEIR_TIMER_EVENT, INT64_MAX, &ts, &kp, &kl), 1);
            assert_true(ts >= prev);
            prev = ts;
            char key[16] = {0};
            memcpy(key, kp, kl);
            assert_int_equal(atoi(key + 1), (int)ts);
            uint32_t kg = weir_test_murmur3_32(kp, kl) % MAX_PAR;
            assert_true(kg >= first && kg <= last);
            assert_int_equal(seen[ts], 0);
            seen[ts] = 1;
        }
        weir_timers_free(&tm);
        weir_state_close(&sb, true);
    }
    for (int k = 0; k < NK; k++)
        assert_int_equal(seen[k], 1); /* every timer restored exactly once */
    free(handles[0]);
    free(handles[1]);
    weir_test_tmpdir_remove(tmp);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_dedup_delete_reload),
        cmocka_unit_test(test_snapshot_rescale_2_to_3),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
