/* Unit tests of the keyed state backend (state/state.c): value/reducing through the write-back
 * cache (random operations against an in-test model, with eviction and close/reopen), list merge,
 * map prefix scans, the raw RocksDB key layout (key groups checked with an independent MurmurHash3
 * copy), error codes, directory removal, and an informative (not asserted) throughput figure. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>
#include <msgpack.h>
#include <rocksdb/c.h>

#include "common/err.h"
#include "common/util.h"
#include "state/state.h"
#include "testutil.h"

/* ------------------------------------------------------------------------------------------ */
/* helpers                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static char *subdir(const char *dir, const char *name) {
    char *p = malloc(strlen(dir) + strlen(name) + 2);
    assert_non_null(p);
    sprintf(p, "%s/%s", dir, name);
    return p;
}

static uint64_t rng_state;
static uint64_t rnd(void) { /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

static weir_state_backend_t *open_sb(const char *path, size_t cache, const weir_state_decl_t *d,
                                     uint32_t n) {
    weir_state_opts_t o = {.path = path,
                           .max_parallelism = 128,
                           .cache_bytes = cache,
                           .write_buffer_bytes = 1 << 20,
                           .block_cache_bytes = 1 << 20};
    char err[256];
    weir_state_backend_t *sb = weir_state_open(&o, d, n, err, sizeof(err));
    if (!sb)
        fail_msg("open failed: %s", err);
    return sb;
}

/* ------------------------------------------------------------------------------------------ */
/* value state against a model                                                                */
/* ------------------------------------------------------------------------------------------ */

#define VK 150
#define VMAX 48
typedef struct vmodel {
    bool present;
    uint32_t len;
    uint8_t b[VMAX];
} vmodel_t;

static void vkey(uint32_t i, char *buf, uint32_t *len) {
    /* different lengths; "k1" is a prefix of "k10".."k19" */
    int n = sprintf(buf, "k%u", i);
    if (i % 7 == 0)
        n += sprintf(buf + n, "-padding-%u", i);
    *len = (uint32_t)n;
}

static void check_value(weir_state_backend_t *sb, uint32_t st, const vmodel_t *m) {
    const void *v = NULL;
    uint32_t l = 0;
    int rc = weir_state_value_get(sb, st, &v, &l);
    if (!m->present) {
        assert_int_equal(rc, 1);
    } else {
        assert_int_equal(rc, 0);
        assert_int_equal(l, m->len);
        if (l)
            assert_memory_equal(v, m->b, l);
    }
}

static void test_value_random_vs_model(void **state) {
    (void)state;
    char *dir = weir_test_tmpdir("state");
    char *path = subdir(dir, "db");
    weir_state_decl_t d[2] = {{.name = "v0", .kind = WEIR_STATE_VALUE},
                              {.name = "v1", .kind = WEIR_STATE_VALUE}};
    static vmodel_t model[2][VK];
    memset(model, 0, sizeof(model));
    rng_state = 0x1234567u;
    weir_state_backend_t *sb = open_sb(path, 2048, d, 2);
    uint64_t evictions = 0;
    int reopens = 0;
    char kb[64];
    uint32_t kl;
    for (int op = 0; op < 6000; op++) {
        uint32_t k = (uint32_t)(rnd() % VK), st = (uint32_t)(rnd() % 2);
        vmodel_t *m = &model[st][k];
        vkey(k, kb, &kl);
        weir_state_set_key(sb, kb, kl);
        uint32_t r = (uint32_t)(rnd() % 100);
        if (r < 45) {
            uint8_t buf[VMAX];
            uint32_t len = (uint32_t)(rnd() % (VMAX + 1));
            for (uint32_t i = 0; i < len; i++)
                buf[i] = (uint8_t)rnd();
            assert_int_equal(weir_state_value_put(sb, st, buf, len), 0);
            m->present = true;
            m->len = len;
            memcpy(m->b, buf, len);
        } else if (r < 75) {
            /* compared below */
        } else if (r < 85) {
            assert_int_equal(weir_state_value_clear(sb, st), 0);
            m->present = false;
        } else if (r < 98) {
            assert_int_equal(weir_state_flush(sb), 0);
        } else {
            assert_int_equal(weir_state_flush(sb), 0);
            weir_state_stats_t s;
            weir_state_get_stats(sb, &s);
            evictions += s.evictions;
            weir_state_close(&sb, false);
            assert_null(sb);
            sb = open_sb(path, 2048, d, 2);
            reopens++;
            weir_state_set_key(sb, kb, kl);
        }
        check_value(sb, st, m);
        if (op % 1000 == 999) {
            for (uint32_t s2 = 0; s2 < 2; s2++)
                for (uint32_t k2 = 0; k2 < VK; k2++) {
                    vkey(k2, kb, &kl);
                    weir_state_set_key(sb, kb, kl);
                    check_value(sb, s2, &model[s2][k2]);
                }
        }
    }
    /* put of a value obtained from get (aliasing the cache) */
    vkey(3, kb, &kl);
    weir_state_set_key(sb, kb, kl);
    assert_int_equal(weir_state_value_put(sb, 0, "abcdef", 6), 0);
    const void *v;
    uint32_t l;
    assert_int_equal(weir_state_value_get(sb, 0, &v, &l), 0);
    assert_int_equal(weir_state_value_put(sb, 0, (const uint8_t *)v + 2, 3), 0);
    assert_int_equal(weir_state_value_get(sb, 0, &v, &l), 0);
    assert_int_equal(l, 3);
    assert_memory_equal(v, "cde", 3);

    weir_state_stats_t s;
    weir_state_get_stats(sb, &s);
    evictions += s.evictions;
    assert_true(evictions > 0);
    assert_true(reopens > 0);
    assert_true(s.cache_hits > 0 && s.cache_misses > 0);
    assert_true(s.cache_bytes <= 2048 + 512); /* budget + the one entry an operation returns */
    weir_state_close(&sb, true);
    weir_test_tmpdir_remove(dir);
    free(path);
}

/* ------------------------------------------------------------------------------------------ */
/* list                                                                                       */
/* ------------------------------------------------------------------------------------------ */

typedef struct collect {
    int n;
    uint32_t len[16];
    uint8_t data[16][400];
    int stop_after; /* 0 = never */
} collect_t;

static int collect_fn(const void *val, uint32_t len, void *arg) {
    collect_t *c = arg;
    assert_true(c->n < 16 && len <= 400);
    c->len[c->n] = len;
    memcpy(c->data[c->n], val, len);
    c->n++;
    return (c->stop_after && c->n == c->stop_after) ? 7 : 0;
}

static void test_list(void **state) {
    (void)state;
    char *dir = weir_test_tmpdir("state");
    char *path = subdir(dir, "db");
    weir_state_decl_t d[1] = {{.name = "l", .kind = WEIR_STATE_LIST}};
    weir_state_backend_t *sb = open_sb(path, 0, d, 1);
    uint8_t big[300];
    for (int i = 0; i < 300; i++)
        big[i] = (uint8_t)(i * 7);
    weir_state_set_key(sb, "a", 1);
    assert_int_equal(weir_state_list_add(sb, 0, "x", 1), 0);
    assert_int_equal(weir_state_list_add(sb, 0, "", 0), 0);
    assert_int_equal(weir_state_list_add(sb, 0, "yz", 2), 0);
    assert_int_equal(weir_state_list_add(sb, 0, big, 300), 0);
    weir_state_set_key(sb, "ab", 2);
    assert_int_equal(weir_state_list_add(sb, 0, "q", 1), 0);

    for (int round = 0; round < 2; round++) {
        collect_t *c = calloc(1, sizeof(*c));
        weir_state_set_key(sb, "a", 1);
        assert_int_equal(weir_state_list_foreach(sb, 0, collect_fn, c), 0);
        assert_int_equal(c->n, 4);
        assert_int_equal(c->len[0], 1);
        assert_memory_equal(c->data[0], "x", 1);
        assert_int_equal(c->len[1], 0);
        assert_int_equal(c->len[2], 2);
        assert_memory_equal(c->data[2], "yz", 2);
        assert_int_equal(c->len[3], 300);
        assert_memory_equal(c->data[3], big, 300);
        memset(c, 0, sizeof(*c));
        c->stop_after = 2;
        assert_int_equal(weir_state_list_foreach(sb, 0, collect_fn, c), 7);
        assert_int_equal(c->n, 2);
        memset(c, 0, sizeof(*c));
        weir_state_set_key(sb, "ab", 2);
        assert_int_equal(weir_state_list_foreach(sb, 0, collect_fn, c), 0);
        assert_int_equal(c->n, 1);
        assert_memory_equal(c->data[0], "q", 1);
        free(c);
        /* survives close/reopen (partially merged in the memtable / SST) */
        weir_state_close(&sb, false);
        sb = open_sb(path, 0, d, 1);
    }
    weir_state_set_key(sb, "a", 1);
    assert_int_equal(weir_state_list_clear(sb, 0), 0);
    collect_t *c = calloc(1, sizeof(*c));
    assert_int_equal(weir_state_list_foreach(sb, 0, collect_fn, c), 0);
    assert_int_equal(c->n, 0);
    assert_int_equal(weir_state_list_add(sb, 0, "n", 1), 0);
    assert_int_equal(weir_state_list_foreach(sb, 0, collect_fn, c), 0);
    assert_int_equal(c->n, 1);
    assert_memory_equal(c->data[0], "n", 1);
    memset(c, 0, sizeof(*c));
    weir_state_set_key(sb, "ab", 2);
    assert_int_equal(weir_state_list_foreach(sb, 0, collect_fn, c), 0);
    assert_int_equal(c->n, 1);
    free(c);
    weir_state_close(&sb, true);
    weir_test_tmpdir_remove(dir);
    free(path);
}

/* ------------------------------------------------------------------------------------------ */
/* map                                                                                        */
/* ------------------------------------------------------------------------------------------ */

typedef struct mentry {
    uint32_t ul, vl;
    uint8_t uk[8], v[8];
} mentry_t;

typedef struct mcollect {
    int n;
    mentry_t e[64];
} mcollect_t;

static int mcollect_fn(const void *uk, uint32_t ul, const void *v, uint32_t vl, void *arg) {
    mcollect_t *c = arg;
    assert_true(c->n < 64 && ul <= 8 && vl <= 8);
    c->e[c->n].ul = ul;
    c->e[c->n].vl = vl;
    memcpy(c->e[c->n].uk, uk, ul);
    memcpy(c->e[c->n].v, v, vl);
    c->n++;
    return 0;
}

static int cmp_mentry(const void *a, const void *b) {
    const mentry_t *x = a, *y = b;
    uint32_t m = x->ul < y->ul ? x->ul : y->ul;
    int r = memcmp(x->uk, y->uk, m);
    if (r)
        return r;
    return (x->ul > y->ul) - (x->ul < y->ul);
}

static void test_map_prefixes(void **state) {
    (void)state;
    char *dir = weir_test_tmpdir("state");
    char *path = subdir(dir, "db");
    weir_state_decl_t d[1] = {{.name = "m", .kind = WEIR_STATE_MAP}};
    weir_state_backend_t *sb = open_sb(path, 0, d, 1);
    const void *v;
    uint32_t l;
    mcollect_t *c = calloc(1, sizeof(*c));

    /* key "a" + ukey "bc" and key "ab" + ukey "c" must not collide */
    weir_state_set_key(sb, "a", 1);
    assert_int_equal(weir_state_map_put(sb, 0, "bc", 2, "v1", 2), 0);
    weir_state_set_key(sb, "ab", 2);
    assert_int_equal(weir_state_map_put(sb, 0, "c", 1, "v2", 2), 0);
    assert_int_equal(weir_state_map_get(sb, 0, "bc", 2, &v, &l), 1);
    assert_int_equal(weir_state_map_get(sb, 0, "c", 1, &v, &l), 0);
    assert_int_equal(l, 2);
    assert_memory_equal(v, "v2", 2);
    weir_state_set_key(sb, "a", 1);
    assert_int_equal(weir_state_map_get(sb, 0, "c", 1, &v, &l), 1);
    assert_int_equal(weir_state_map_foreach(sb, 0, mcollect_fn, c), 0);
    assert_int_equal(c->n, 1);
    assert_int_equal(c->e[0].ul, 2);
    assert_memory_equal(c->e[0].uk, "bc", 2);

    /* random operations on keys "k", "kk", a 300-byte key and that key + "z", against a model */
    char long1[301], long2[302];
    memset(long1, 'L', 300);
    long1[300] = 0;
    memcpy(long2, long1, 300);
    long2[300] = 'z';
    long2[301] = 0;
    const char *keys[4] = {"k", "kk", long1, long2};
    uint32_t klens[4] = {1, 2, 300, 301};
    static const char *const uks[] = {"", "x", "xy", "x\0", "y", "\xff", "\xff\xff", "\x01"};
    static const uint32_t ukl[] = {0, 1, 2, 2, 1, 1, 2, 1};
    enum { NU = 8 };
    struct {
        bool present;
        uint8_t v[4];
    } model[4][NU];
    memset(model, 0, sizeof(model));
    rng_state = 99;
    for (int op = 0; op < 1500; op++) {
        uint32_t k = (uint32_t)(rnd() % 4), u = (uint32_t)(rnd() % NU);
        weir_state_set_key(sb, keys[k], klens[k]);
        uint32_t r = (uint32_t)(rnd() % 100);
        if (r < 50) {
            uint8_t val[4];
            for (int i = 0; i < 4; i++)
                val[i] = (uint8_t)rnd();
            assert_int_equal(weir_state_map_put(sb, 0, uks[u], ukl[u], val, 4), 0);
            model[k][u].present = true;
            memcpy(model[k][u].v, val, 4);
        } else if (r < 75) {
            assert_int_equal(weir_state_map_remove(sb, 0, uks[u], ukl[u]), 0);
            model[k][u].present = false;
        } else if (r < 78) {
            assert_int_equal(weir_state_map_clear(sb, 0), 0);
            for (int i = 0; i < NU; i++)
                model[k][i].present = false;
        }
        int rc = weir_state_map_get(sb, 0, uks[u], ukl[u], &v, &l);
        if (model[k][u].present) {
            assert_int_equal(rc, 0);
            assert_int_equal(l, 4);
            assert_memory_equal(v, model[k][u].v, 4);
        } else {
            assert_int_equal(rc, 1);
        }
        /* foreach of every key equals the model's entries in byte order */
        if (op % 50 == 0 || r >= 75) {
            for (uint32_t k2 = 0; k2 < 4; k2++) {
                mentry_t exp[NU];
                int ne = 0;
                for (uint32_t i = 0; i < NU; i++)
                    if (model[k2][i].present) {
                        exp[ne].ul = ukl[i];
                        memcpy(exp[ne].uk, uks[i], ukl[i]);
                        memcpy(exp[ne].v, model[k2][i].v, 4);
                        ne++;
                    }
                qsort(exp, (size_t)ne, sizeof(exp[0]), cmp_mentry);
                memset(c, 0, sizeof(*c));
                weir_state_set_key(sb, keys[k2], klens[k2]);
                assert_int_equal(weir_state_map_foreach(sb, 0, mcollect_fn, c), 0);
                assert_int_equal(c->n, ne);
                for (int i = 0; i < ne; i++) {
                    assert_int_equal(c->e[i].ul, exp[i].ul);
                    assert_memory_equal(c->e[i].uk, exp[i].uk, exp[i].ul);
                    assert_int_equal(c->e[i].vl, 4);
                    assert_memory_equal(c->e[i].v, exp[i].v, 4);
                }
            }
        }
    }
    /* the first entries survived all of that */
    weir_state_set_key(sb, "a", 1);
    assert_int_equal(weir_state_map_get(sb, 0, "bc", 2, &v, &l), 0);
    assert_memory_equal(v, "v1", 2);
    weir_state_close(&sb, true);
    free(c);
    weir_test_tmpdir_remove(dir);
    free(path);
}

/* ------------------------------------------------------------------------------------------ */
/* reducing                                                                                   */
/* ------------------------------------------------------------------------------------------ */

static void sum_reduce(const msgpack_object *acc, const msgpack_object *in, msgpack_packer *out,
                       void *udata) {
    int *calls = udata;
    (*calls)++;
    int64_t a = acc->type == MSGPACK_OBJECT_NEGATIVE_INTEGER ? acc->via.i64 : (int64_t)acc->via.u64;
    int64_t b = in->type == MSGPACK_OBJECT_NEGATIVE_INTEGER ? in->via.i64 : (int64_t)in->via.u64;
    msgpack_pack_int64(out, a + b);
}

static size_t pack_i64(int64_t x, uint8_t *buf) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_int64(&pk, x);
    size_t n = sb.size;
    memcpy(buf, sb.data, n);
    msgpack_sbuffer_destroy(&sb);
    return n;
}

static int64_t unpack_i64(const void *p, uint32_t len) {
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&u, p, len, &off), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, len);
    int64_t r = 0;
    if (u.data.type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        r = u.data.via.i64;
    else if (u.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        r = (int64_t)u.data.via.u64;
    else
        fail_msg("not an integer");
    msgpack_unpacked_destroy(&u);
    return r;
}

static void test_reducing_sum(void **state) {
    (void)state;
    char *dir = weir_test_tmpdir("state");
    char *path = subdir(dir, "db");
    int calls = 0;
    weir_state_decl_t d[2] = {
        {.name = "v", .kind = WEIR_STATE_VALUE},
        {.name = "sum", .kind = WEIR_STATE_REDUCING, .reduce = sum_reduce, .reduce_udata = &calls}};
    weir_state_backend_t *sb = open_sb(path, 1024, d, 2);
    uint8_t buf[16];
    const void *v;
    uint32_t l;

    /* first add stores the value as is, without calling reduce */
    weir_state_set_key(sb, "first", 5);
    assert_int_equal(weir_state_reducing_get(sb, 1, &v, &l), 1);
    assert_int_equal(weir_state_reducing_add(sb, 1, "\x05", 1), 0);
    assert_int_equal(calls, 0);
    assert_int_equal(weir_state_reducing_get(sb, 1, &v, &l), 0);
    assert_int_equal(l, 1);
    assert_memory_equal(v, "\x05", 1);
    assert_int_equal(weir_state_reducing_add(sb, 1, "\x03", 1), 0);
    assert_int_equal(calls, 1);
    assert_int_equal(weir_state_reducing_get(sb, 1, &v, &l), 0);
    assert_int_equal(unpack_i64(v, l), 8);

    /* random adds over 60 keys vs an oracle, tiny cache, flushes and reopens */
    enum { NK = 60 };
    int64_t sum[NK];
    bool present[NK];
    memset(sum, 0, sizeof(sum));
    memset(present, 0, sizeof(present));
    rng_state = 4242;
    char kb[32];
    for (int op = 0; op < 4000; op++) {
        uint32_t k = (uint32_t)(rnd() % NK);
        int kl = sprintf(kb, "r%u", k);
        weir_state_set_key(sb, kb, (uint32_t)kl);
        uint32_t r = (uint32_t)(rnd() % 100);
        if (r < 80) {
            int64_t x = (int64_t)(rnd() % 200001) - 100000;
            size_t n = pack_i64(x, buf);
            assert_int_equal(weir_state_reducing_add(sb, 1, buf, (uint32_t)n), 0);
            sum[k] += x;
            present[k] = true;
        } else if (r < 85) {
            assert_int_equal(weir_state_reducing_clear(sb, 1), 0);
            sum[k] = 0;
            present[k] = false;
        } else if (r < 97) {
            assert_int_equal(weir_state_flush(sb), 0);
        } else {
            assert_int_equal(weir_state_flush(sb), 0);
            weir_state_close(&sb, false);
            sb = open_sb(path, 1024, d, 2);
            weir_state_set_key(sb, kb, (uint32_t)kl);
        }
        int rc = weir_state_reducing_get(sb, 1, &v, &l);
        if (present[k]) {
            assert_int_equal(rc, 0);
            assert_int_equal(unpack_i64(v, l), sum[k]);
        } else {
            assert_int_equal(rc, 1);
        }
        /* the value state of the same key is independent */
        assert_int_equal(weir_state_value_get(sb, 0, &v, &l), 1);
    }
    weir_state_stats_t s;
    weir_state_get_stats(sb, &s);
    assert_true(s.evictions > 0);
    weir_state_close(&sb, true);
    weir_test_tmpdir_remove(dir);
    free(path);
}

static void test_reducing_corrupt(void **state) {
    (void)state;
    char *dir = weir_test_tmpdir("state");
    char *path = subdir(dir, "db");
    int calls = 0;
    weir_state_decl_t d[1] = {
        {.name = "sum", .kind = WEIR_STATE_REDUCING, .reduce = sum_reduce, .reduce_udata = &calls}};
    weir_state_backend_t *sb = open_sb(path, 0, d, 1);
    const void *v;
    uint32_t l;
    weir_state_set_key(sb, "k", 1);
    /* never-used byte, truncated str, empty, two objects */
    assert_int_equal(weir_state_reducing_add(sb, 0, "\xc1", 1), WEIR_ECORRUPT);
    assert_int_equal(weir_state_reducing_add(sb, 0,
                                             "\xa5"
                                             "a",
                                             2),
                     WEIR_ECORRUPT);
    assert_int_equal(weir_state_reducing_add(sb, 0, "", 0), WEIR_ECORRUPT);
    assert_int_equal(weir_state_reducing_add(sb, 0, "\x01\x02", 2), WEIR_ECORRUPT);
    assert_int_equal(weir_state_reducing_get(sb, 0, &v, &l), 1);
    assert_int_equal(weir_state_reducing_add(sb, 0, "\x0a", 1), 0);
    assert_int_equal(weir_state_reducing_add(sb, 0, "\xcd\x12", 2), WEIR_ECORRUPT); /* u16 cut */
    assert_int_equal(calls, 0);
    assert_int_equal(weir_state_reducing_get(sb, 0, &v, &l), 0);
    assert_int_equal(unpack_i64(v, l), 10);
    weir_state_close(&sb, true);
    weir_test_tmpdir_remove(dir);
    free(path);
}

/* ------------------------------------------------------------------------------------------ */
/* raw layout and key groups                                                                  */
/* ------------------------------------------------------------------------------------------ */

static void test_murmur_oracle(void **state) {
    (void)state;
    /* published MurmurHash3 x86_32 vectors (seed 0) validate the test's own oracle */
    assert_int_equal(weir_test_murmur3_32((const uint8_t *)"", 0), 0);
    assert_int_equal(weir_test_murmur3_32((const uint8_t *)"hello", 5), 0x248bfa47u);
    assert_int_equal(
        weir_test_murmur3_32((const uint8_t *)"The quick brown fox jumps over the lazy dog", 43),
        0x2e4ff723u);
}

static void test_layout_keygroups(void **state) {
    (void)state;
    char *dir = weir_test_tmpdir("state");
    char *path = subdir(dir, "db");
    weir_state_decl_t d[2] = {{.name = "v", .kind = WEIR_STATE_VALUE},
                              {.name = "m", .kind = WEIR_STATE_MAP}};
    weir_state_backend_t *sb = open_sb(path, 0, d, 2);
    enum { NK = 64 };
    char kb[32];
    for (uint32_t i = 0; i < NK; i++) {
        int kl = sprintf(kb, "key%u", i);
        weir_state_set_key(sb, kb, (uint32_t)kl);
        assert_int_equal(weir_state_value_put(sb, 0, &i, sizeof(i)), 0);
        assert_int_equal(weir_state_map_put(sb, 1, "u", 1, &i, sizeof(i)), 0);
    }
    assert_int_equal(weir_state_flush(sb), 0);
    weir_state_close(&sb, false);

    /* open the RocksDB directly and check every stored key */
    rocksdb_options_t *o = rocksdb_options_create();
    const char *names[3] = {"default", "v", "m"};
    const rocksdb_options_t *co[3] = {o, o, o};
    rocksdb_column_family_handle_t *h[3];
    char *err = NULL;
    rocksdb_t *db = rocksdb_open_for_read_only_column_families(o, path, 3, names, co, h, 0, &err);
    if (err)
        fail_msg("raw open: %s", err);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    for (int cf = 1; cf <= 2; cf++) {
        rocksdb_iterator_t *it = rocksdb_create_iterator_cf(db, ro, h[cf]);
        bool seen[NK] = {false};
        uint32_t prev_kg = 0, n = 0, distinct = 0;
        for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
            size_t kl, vl;
            const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
            const char *val = rocksdb_iter_value(it, &vl);
            assert_true(kl >= 6);
            uint32_t kg = (uint32_t)k[0] << 8 | k[1];
            uint32_t len = (uint32_t)k[2] << 24 | (uint32_t)k[3] << 16 | (uint32_t)k[4] << 8 | k[5];
            assert_int_equal(kl, 6 + len + (cf == 2 ? 1 : 0));
            if (cf == 2)
                assert_int_equal(k[6 + len], 'u');
            assert_int_equal(kg, weir_test_murmur3_32(k + 6, len) % 128);
            assert_true(kg >= prev_kg); /* sorted by key group first */
            if (n == 0 || kg != prev_kg)
                distinct++;
            prev_kg = kg;
            uint32_t i;
            assert_int_equal(vl, sizeof(i));
            memcpy(&i, val, sizeof(i));
            assert_true(i < NK && !seen[i]);
            seen[i] = true;
            int el = sprintf(kb, "key%u", i);
            assert_int_equal(len, (uint32_t)el);
            assert_memory_equal(k + 6, kb, len);
            n++;
        }
        assert_int_equal(n, NK);
        assert_true(distinct > 10);
        rocksdb_iter_destroy(it);
    }
    rocksdb_readoptions_destroy(ro);
    for (int i = 0; i < 3; i++)
        rocksdb_column_family_handle_destroy(h[i]);
    rocksdb_close(db);
    rocksdb_options_destroy(o);
    weir_test_tmpdir_remove(dir);
    free(path);
}

/* ------------------------------------------------------------------------------------------ */
/* RocksDB options for large state (state/README.md "RocksDB")                                */
/* ------------------------------------------------------------------------------------------ */

/* The contents of the newest OPTIONS-<n> file RocksDB wrote into @p path (malloc'd). */
static char *read_options_file(const char *path) {
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "ls -v '%s' | grep '^OPTIONS-' | tail -1", path);
    FILE *ls = popen(cmd, "r");
    assert_non_null(ls);
    char name[256] = "";
    assert_non_null(fgets(name, sizeof(name), ls));
    pclose(ls);
    name[strcspn(name, "\n")] = '\0';
    char *file = subdir(path, name);
    FILE *f = fopen(file, "r");
    assert_non_null(f);
    char *buf = calloc(1, 1 << 20);
    assert_non_null(buf);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    assert_true(n > 0);
    fclose(f);
    free(file);
    return buf;
}

/* Counts the lines of @p text equal to @p line (leading blanks ignored). */
static int count_lines(const char *text, const char *line) {
    int n = 0;
    size_t l = strlen(line);
    for (const char *p = text; p && *p;) {
        while (*p == ' ')
            p++;
        if (strncmp(p, line, l) == 0 && (p[l] == '\n' || p[l] == '\0'))
            n++;
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return n;
}

/* Every column family (default + the two states) has universal compaction and a whole-key bloom
 * filter in its SSTs; the values still read back after a close and reopen under those options. */
static void test_large_state_options(void **state) {
    (void)state;
    char *dir = weir_test_tmpdir("state");
    char *path = subdir(dir, "db");
    weir_state_decl_t d[2] = {{.name = "v", .kind = WEIR_STATE_VALUE},
                              {.name = "t", .kind = WEIR_STATE_VALUE, .ttl_ms = 60000}};
    weir_state_backend_t *sb = open_sb(path, 64 << 10, d, 2);
    char kb[32];
    for (uint32_t i = 0; i < 20000; i++) {
        int kl = sprintf(kb, "k%u", i);
        weir_state_set_key(sb, kb, (uint32_t)kl);
        assert_int_equal(weir_state_value_put(sb, 0, &i, sizeof(i)), 0);
        assert_int_equal(weir_state_value_put(sb, 1, &i, sizeof(i)), 0);
    }
    assert_int_equal(weir_state_flush(sb), 0);
    weir_state_close(&sb, false);
    char *opts = read_options_file(path);
    assert_int_equal(count_lines(opts, "compaction_style=kCompactionStyleUniversal"), 3);
    assert_true(count_lines(opts, "whole_key_filtering=true") == 3);
    int bloom = 0;
    for (const char *p = opts; (p = strstr(p, "filter_policy=bloomfilter")); p++)
        bloom++;
    assert_int_equal(bloom, 3);
    free(opts);
    sb = open_sb(path, 64 << 10, d, 2);
    for (uint32_t i = 0; i < 20000; i += 997) {
        int kl = sprintf(kb, "k%u", i);
        weir_state_set_key(sb, kb, (uint32_t)kl);
        for (uint32_t st = 0; st < 2; st++) {
            const void *v;
            uint32_t len, got;
            assert_int_equal(weir_state_value_get(sb, st, &v, &len), 0);
            assert_int_equal(len, sizeof(got));
            memcpy(&got, v, sizeof(got));
            assert_int_equal(got, i);
        }
    }
    weir_state_close(&sb, true);
    weir_test_tmpdir_remove(dir);
    free(path);
}

/* Reads of keys the memtable does not hold stop at its bloom filter (RocksDB's perf context
 * counts each such read as a memtable bloom miss) and the OPTIONS carry the data-block hash
 * index; a key the memtable holds still reads back (a bloom hit). */
static void test_memtable_filter(void **state) {
    (void)state;
    char *dir = weir_test_tmpdir("state");
    char *path = subdir(dir, "db");
    weir_state_decl_t d[1] = {{.name = "v", .kind = WEIR_STATE_VALUE}};
    weir_state_backend_t *sb = open_sb(path, 64 << 10, d, 1);
    char kb[32];
    for (uint32_t i = 0; i < 4000; i++) { /* ~150 KB: stays in the 1 MiB memtable */
        int kl = sprintf(kb, "k%u", i);
        weir_state_set_key(sb, kb, (uint32_t)kl);
        assert_int_equal(weir_state_value_put(sb, 0, &i, sizeof(i)), 0);
    }
    assert_int_equal(weir_state_flush(sb), 0);
    rocksdb_set_perf_level(rocksdb_enable_count);
    rocksdb_perfcontext_t *pc = rocksdb_perfcontext_create();
    rocksdb_perfcontext_reset(pc);
    const uint32_t absent = 500;
    for (uint32_t i = 0; i < absent; i++) {
        int kl = sprintf(kb, "absent%u", i);
        weir_state_set_key(sb, kb, (uint32_t)kl);
        assert_int_equal(weir_state_value_get(sb, 0, NULL, NULL), 1);
    }
    uint64_t miss = rocksdb_perfcontext_metric(pc, rocksdb_bloom_memtable_miss_count);
    /* 10 bits per key: about 1 % false positives; none filtered before the filter existed */
    assert_true(miss >= absent * 9 / 10);
    rocksdb_perfcontext_reset(pc);
    weir_state_close(&sb, false); /* the cache goes: the next reads reach RocksDB */
    sb = open_sb(path, 64 << 10, d, 1);
    rocksdb_perfcontext_reset(pc);
    for (uint32_t i = 0; i < 4000; i += 37) {
        int kl = sprintf(kb, "k%u", i);
        weir_state_set_key(sb, kb, (uint32_t)kl);
        const void *v;
        uint32_t len, got;
        assert_int_equal(weir_state_value_get(sb, 0, &v, &len), 0);
        assert_int_equal(len, sizeof(got));
        memcpy(&got, v, sizeof(got));
        assert_int_equal(got, i);
    }
    rocksdb_perfcontext_destroy(pc);
    rocksdb_set_perf_level(rocksdb_disable);
    weir_state_close(&sb, false);
    char *opts = read_options_file(path);
    assert_true(count_lines(opts, "memtable_whole_key_filtering=true") == 2);
    assert_true(count_lines(opts, "memtable_prefix_bloom_size_ratio=0.020000") == 2);
    assert_true(count_lines(opts, "data_block_index_type=kDataBlockBinaryAndHash") == 2);
    free(opts);
    weir_state_close(&sb, true);
    weir_test_tmpdir_remove(dir);
    free(path);
}

/* weir_state_prefetch against a model: keys written and written back, then a fresh backend
 * (empty cache) prefetches a batch of present and absent keys, duplicates included, with a
 * dirty entry of its own in the cache; every get after it is a hit returning the model's value
 * (the dirty one unchanged), the list state is left alone, and set_key in queue order and out
 * of it gives the same results. */
static void test_prefetch(void **state) {
    (void)state;
    char *dir = weir_test_tmpdir("state");
    char *path = subdir(dir, "db");
    weir_state_decl_t d[3] = {{.name = "v", .kind = WEIR_STATE_VALUE},
                              {.name = "l", .kind = WEIR_STATE_LIST},
                              {.name = "w", .kind = WEIR_STATE_VALUE}};
    weir_state_backend_t *sb = open_sb(path, 1 << 20, d, 3);
    char kb[32];
    for (uint32_t i = 0; i < 1000; i += 2) { /* even keys present in v, multiples of 4 in w */
        int kl = sprintf(kb, "key-%u", i);
        weir_state_set_key(sb, kb, (uint32_t)kl);
        assert_int_equal(weir_state_value_put(sb, 0, &i, sizeof(i)), 0);
        if (i % 4 == 0)
            assert_int_equal(weir_state_value_put(sb, 2, kb, (uint32_t)kl), 0);
    }
    assert_int_equal(weir_state_flush(sb), 0);
    weir_state_close(&sb, false);
    sb = open_sb(path, 1 << 20, d, 3);
    uint32_t dirty_key = 10, dirty_val = 4242;
    int dl = sprintf(kb, "key-%u", dirty_key);
    weir_state_set_key(sb, kb, (uint32_t)dl);
    assert_int_equal(weir_state_value_put(sb, 0, &dirty_val, sizeof(dirty_val)), 0);

    /* a batch: keys 0..199, then 0..49 again, then the empty key */
    uint32_t order[251];
    uint32_t n = 0;
    for (uint32_t i = 0; i < 200; i++)
        order[n++] = i;
    for (uint32_t i = 0; i < 50; i++)
        order[n++] = i;
    for (uint32_t i = 0; i < n; i++) {
        int kl = sprintf(kb, "key-%u", order[i]);
        assert_int_equal(weir_state_prefetch_key(sb, kb, (uint32_t)kl), 0);
    }
    assert_int_equal(weir_state_prefetch_key(sb, "", 0), 0);
    n++;
    weir_state_stats_t s0, s1;
    weir_state_get_stats(sb, &s0);
    assert_int_equal(weir_state_prefetch(sb, 0, 3), 0);
    weir_state_get_stats(sb, &s1);
    /* 200 distinct keys + the empty key per value state, minus key-10 of v (cached, dirty) */
    assert_int_equal(s1.prefetched - s0.prefetched, 2 * 201 - 1);
    for (int pass = 0; pass < 2; pass++) { /* pass 0 in queue order, pass 1 backwards */
        for (uint32_t j = 0; j < n; j++) {
            uint32_t i = pass == 0 ? j : n - 1 - j;
            int kl = i == n - 1 ? 0 : sprintf(kb, "key-%u", order[i]);
            uint32_t k = i == n - 1 ? UINT32_MAX : order[i];
            weir_state_set_key(sb, kb, (uint32_t)kl);
            const void *v;
            uint32_t len, got;
            int rc = weir_state_value_get(sb, 0, &v, &len);
            if (k == dirty_key) {
                assert_int_equal(rc, 0);
                memcpy(&got, v, sizeof(got));
                assert_int_equal(got, dirty_val);
            } else if (k != UINT32_MAX && k % 2 == 0) {
                assert_int_equal(rc, 0);
                assert_int_equal(len, sizeof(got));
                memcpy(&got, v, sizeof(got));
                assert_int_equal(got, k);
            } else {
                assert_int_equal(rc, 1);
            }
            rc = weir_state_value_get(sb, 2, &v, &len);
            if (k != UINT32_MAX && k % 4 == 0) {
                assert_int_equal(rc, 0);
                assert_int_equal(len, (uint32_t)kl);
                assert_memory_equal(v, kb, len);
            } else {
                assert_int_equal(rc, 1);
            }
        }
    }
    weir_state_stats_t s2;
    weir_state_get_stats(sb, &s2);
    assert_int_equal(s2.cache_misses, s1.cache_misses); /* every read was prefetched */
    assert_int_equal(s2.prefetched, s1.prefetched);
    /* a prefetch over only the list state reads nothing; bad ranges are refused */
    assert_int_equal(weir_state_prefetch_key(sb, "key-999", 7), 0);
    assert_int_equal(weir_state_prefetch(sb, 1, 1), 0);
    weir_state_get_stats(sb, &s1);
    assert_int_equal(s1.prefetched, s2.prefetched);
    assert_int_equal(weir_state_prefetch(sb, 2, 2), WEIR_EINVAL);
    assert_int_equal(weir_state_prefetch(sb, 4, 0), WEIR_EINVAL);
    assert_int_equal(weir_state_prefetch_key(sb, NULL, 3), WEIR_EINVAL);
    /* the prefetched dirty value was kept and reaches RocksDB at the next write-back */
    assert_int_equal(weir_state_flush(sb), 0);
    weir_state_close(&sb, false);
    sb = open_sb(path, 1 << 20, d, 3);
    dl = sprintf(kb, "key-%u", dirty_key);
    weir_state_set_key(sb, kb, (uint32_t)dl);
    const void *v;
    uint32_t len, got;
    assert_int_equal(weir_state_value_get(sb, 0, &v, &len), 0);
    memcpy(&got, v, sizeof(got));
    assert_int_equal(got, dirty_val);
    /* a value growing from a small buffer to one above the cache's small-block size and back */
    static uint8_t big[3000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 7);
    for (uint32_t len = 1; len <= sizeof big; len = len * 3 + 1) {
        assert_int_equal(weir_state_value_put(sb, 0, big, len), 0);
        assert_int_equal(weir_state_value_get(sb, 0, &v, &got), 0);
        assert_int_equal(got, len);
        assert_memory_equal(v, big, len);
    }
    assert_int_equal(weir_state_value_put(sb, 0, big + 1, 5), 0);
    assert_int_equal(weir_state_flush(sb), 0);
    weir_state_close(&sb, false);
    sb = open_sb(path, 1 << 20, d, 3);
    weir_state_set_key(sb, kb, (uint32_t)dl);
    assert_int_equal(weir_state_value_get(sb, 0, &v, &got), 0);
    assert_int_equal(got, 5);
    assert_memory_equal(v, big + 1, 5);
    weir_state_close(&sb, true);
    weir_test_tmpdir_remove(dir);
    free(path);
}

/* ------------------------------------------------------------------------------------------ */
/* errors, removal                                                                            */
/* ------------------------------------------------------------------------------------------ */

static void test_errors_and_remove(void **state) {
    (void)state;
    char *dir = weir_test_tmpdir("state");
    char *path = subdir(dir, "a/b/db"); /* parents are created */
    weir_state_decl_t d[3] = {{.name = "v", .kind = WEIR_STATE_VALUE},
                              {.name = "l", .kind = WEIR_STATE_LIST},
                              {.name = "nofn", .kind = WEIR_STATE_REDUCING}};
    weir_state_backend_t *sb = open_sb(path, 0, d, 3);
    const void *v;
    uint32_t l;
    assert_int_equal(weir_state_value_get(sb, 0, &v, &l), WEIR_EINVAL); /* no key yet */
    weir_state_set_key(sb, "k", 1);
    assert_int_equal(weir_state_value_get(sb, 0, &v, &l), 1);
    assert_int_equal(weir_state_value_get(sb, 1, &v, &l), WEIR_EINVAL);
    assert_int_equal(weir_state_value_get(sb, 9, &v, &l), WEIR_EINVAL);
    assert_int_equal(weir_state_list_add(sb, 0, "x", 1), WEIR_EINVAL);
    assert_int_equal(weir_state_map_put(sb, 1, "x", 1, "y", 1), WEIR_EINVAL);
    assert_int_equal(weir_state_reducing_add(sb, 0, "\x01", 1), WEIR_EINVAL);
    assert_int_equal(weir_state_reducing_add(sb, 2, "\x01", 1), WEIR_EINVAL); /* no reduce fn */
    assert_int_equal(weir_state_value_put(sb, 0, "x", 1), 0);
    assert_int_equal(weir_state_flush(sb), 0);
    weir_state_close(&sb, false);
    struct stat stt;
    assert_int_equal(stat(path, &stt), 0);

    /* reopen with one more state: existing data kept, new column family created */
    weir_state_decl_t d2[4] = {d[0], d[1], d[2], {.name = "m", .kind = WEIR_STATE_MAP}};
    sb = open_sb(path, 0, d2, 4);
    weir_state_set_key(sb, "k", 1);
    assert_int_equal(weir_state_value_get(sb, 0, &v, &l), 0);
    assert_memory_equal(v, "x", 1);
    weir_state_close(&sb, false);
    /* reopen declaring fewer states: the other column families are still opened */
    sb = open_sb(path, 0, d, 1);
    weir_state_set_key(sb, "k", 1);
    assert_int_equal(weir_state_value_get(sb, 0, &v, &l), 0);
    weir_state_close(&sb, true);
    errno = 0;
    assert_int_equal(stat(path, &stt), -1);
    assert_int_equal(errno, ENOENT);

    /* bad declarations */
    weir_state_decl_t dup[2] = {{.name = "s", .kind = WEIR_STATE_VALUE},
                                {.name = "s", .kind = WEIR_STATE_MAP}};
    weir_state_opts_t o = {.path = path, .max_parallelism = 128};
    char err[256];
    assert_null(weir_state_open(&o, dup, 2, err, sizeof(err)));
    assert_non_null(strstr(err, "declared twice"));
    weir_test_tmpdir_remove(dir);
    free(path);
}

/* ------------------------------------------------------------------------------------------ */
/* throughput (printed, not asserted)                                                         */
/* ------------------------------------------------------------------------------------------ */

static double counter_run(const char *path, size_t cache, uint32_t nkeys, uint32_t nops) {
    weir_state_decl_t d[1] = {{.name = "c", .kind = WEIR_STATE_VALUE}};
    weir_state_backend_t *sb = open_sb(path, cache, d, 1);
    uint64_t *oracle = calloc(nkeys, sizeof(*oracle));
    assert_non_null(oracle);
    rng_state = 7;
    int64_t t0 = weir_now_ns();
    char kb[32];
    for (uint32_t op = 0; op < nops; op++) {
        uint32_t k = (uint32_t)(rnd() % nkeys);
        int kl = sprintf(kb, "counter-%08u", k);
        weir_state_set_key(sb, kb, (uint32_t)kl);
        const void *v;
        uint32_t l;
        uint64_t c = 0;
        int rc = weir_state_value_get(sb, 0, &v, &l);
        if (rc == 0)
            memcpy(&c, v, sizeof(c));
        else
            assert_int_equal(rc, 1);
        assert_int_equal(c, oracle[k]);
        c++;
        oracle[k] = c;
        assert_int_equal(weir_state_value_put(sb, 0, &c, sizeof(c)), 0);
    }
    assert_int_equal(weir_state_flush(sb), 0);
    int64_t t1 = weir_now_ns();
    weir_state_close(&sb, true);
    free(oracle);
    return (double)nops / ((double)(t1 - t0) / 1e9);
}

static void test_counter_throughput(void **state) {
    (void)state;
    const char *e = getenv("WEIR_STATE_BENCH_OPS");
    uint32_t nops = e ? (uint32_t)strtoul(e, NULL, 10) : 300000;
    char *dir = weir_test_tmpdir("state");
    char *p1 = subdir(dir, "big"), *p2 = subdir(dir, "tiny");
    double big = counter_run(p1, 32u << 20, 100000, nops);
    double tiny = counter_run(p2, 64u << 10, 100000, nops);
    printf("[ INFO     ] get-then-put counter, 100k keys, %u ops: cache 32 MiB %.0f ops/s, "
           "cache 64 KiB %.0f ops/s\n",
           nops, big, tiny);
    assert_true(big > 0 && tiny > 0);
    weir_test_tmpdir_remove(dir);
    free(p1);
    free(p2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_value_random_vs_model), cmocka_unit_test(test_list),
        cmocka_unit_test(test_map_prefixes),          cmocka_unit_test(test_reducing_sum),
        cmocka_unit_test(test_reducing_corrupt),      cmocka_unit_test(test_murmur_oracle),
        cmocka_unit_test(test_layout_keygroups),      cmocka_unit_test(test_errors_and_remove),
        cmocka_unit_test(test_counter_throughput),    cmocka_unit_test(test_large_state_options),
        cmocka_unit_test(test_memtable_filter),       cmocka_unit_test(test_prefetch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
