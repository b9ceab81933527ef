/* Unit tests of state time to live (state/state.c): for every keyed state kind (value, list, map,
 * reducing), with an injected processing-time clock: an expired value is never returned (through
 * the write-back cache and from RocksDB after a reopen), ON_CREATE_AND_WRITE restarts on writes
 * only, ON_READ_AND_WRITE on reads too, list elements expire one by one; the compaction filter
 * removes expired entries (a forced full compaction of a few MB: the column family holds no
 * expired key afterwards and its approximate size shrinks); expiry times survive a snapshot and
 * restore; the background cleanup (weir_state_int_ttl_cleanup and the cleaner thread) compacts
 * a TTL family once per interval while it holds anything, so expired entries leave the disk
 * without any read or write (and without it they stay). The clock is an atomic read by
 * RocksDB's compaction threads and the cleaner thread too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>
#include <rocksdb/c.h>

#include "common/err.h"
#include "common/util.h"
#include "state/snapshot.h"
#include "snapshot_io.h"
#include "state/state.h"
#include "state/state_int.h"
#include "testutil.h"

#define TTL 1000

typedef struct tclock {
    _Atomic int64_t now;
} tclock_t;

static int64_t tclock_read(void *arg) {
    return atomic_load(&((tclock_t *)arg)->now);
}

static void set_now(tclock_t *c, int64_t t) {
    atomic_store(&c->now, t);
}

static void sum_fn(const msgpack_object *acc, const msgpack_object *in, msgpack_packer *out,
                   void *udata) {
    (void)udata;
    msgpack_pack_int64(out, acc->via.i64 + in->via.i64);
}

/* state 0: ON_CREATE_AND_WRITE, state 1: ON_READ_AND_WRITE, state 2: the same kind without TTL */
static void decls_of(weir_state_kind_t kind, weir_state_decl_t d[3]) {
    static char *names[3] = {"w", "rw", "plain"};
    for (int i = 0; i < 3; i++)
        d[i] = (weir_state_decl_t){.name = names[i],
                                   .kind = kind,
                                   .reduce = kind == WEIR_STATE_REDUCING ? sum_fn : NULL,
                                   .ttl_ms = i < 2 ? TTL : 0,
                                   .ttl_update = i == 1 ? WEIR_TTL_ON_READ_AND_WRITE
                                                        : WEIR_TTL_ON_CREATE_AND_WRITE};
}

static weir_state_opts_t opts_of(const char *path, tclock_t *c) {
    return (weir_state_opts_t){.path = path,
                               .max_parallelism = 128,
                               .cache_bytes = 1 << 20,
                               .write_buffer_bytes = 1 << 20,
                               .block_cache_bytes = 1 << 20,
                               .clock_ms = tclock_read,
                               .clock_arg = c,
                               .ttl_cleanup_ms = -1}; /* the tests below compact themselves */
}

static weir_state_backend_t *open_kind(const char *path, tclock_t *c, weir_state_kind_t kind) {
    weir_state_decl_t d[3];
    decls_of(kind, d);
    weir_state_opts_t o = opts_of(path, c);
    char err[256];
    weir_state_backend_t *sb = weir_state_open(&o, d, 3, err, sizeof err);
    if (!sb)
        fail_msg("open failed: %s", err);
    return sb;
}

/* ---- one write and one read per kind ------------------------------------------------------ */

static void put_one(weir_state_backend_t *sb, weir_state_kind_t kind, uint32_t st, int64_t v) {
    char buf[16];
    int n = snprintf(buf, sizeof buf, "%lld", (long long)v);
    switch (kind) {
    case WEIR_STATE_VALUE:
        assert_int_equal(weir_state_value_put(sb, st, buf, (uint32_t)n), 0);
        break;
    case WEIR_STATE_LIST:
        assert_int_equal(weir_state_list_add(sb, st, buf, (uint32_t)n), 0);
        break;
    case WEIR_STATE_MAP:
        assert_int_equal(weir_state_map_put(sb, st, "uk", 2, buf, (uint32_t)n), 0);
        break;
    case WEIR_STATE_REDUCING: {
        msgpack_sbuffer s;
        msgpack_sbuffer_init(&s);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &s, msgpack_sbuffer_write);
        msgpack_pack_int64(&pk, v);
        assert_int_equal(weir_state_reducing_add(sb, st, s.data, (uint32_t)s.size), 0);
        msgpack_sbuffer_destroy(&s);
        break;
    }
    }
}

typedef struct lsum {
    int n;
    int64_t sum;
} lsum_t;

static int list_cb(const void *v, uint32_t len, void *arg) {
    lsum_t *s = arg;
    char buf[32] = {0};
    memcpy(buf, v, len < 31 ? len : 31);
    s->n++;
    s->sum += atoll(buf);
    return 0;
}

static int map_cb(const void *uk, uint32_t ul, const void *v, uint32_t vl, void *arg) {
    assert_int_equal(ul, 2);
    assert_memory_equal(uk, "uk", 2);
    return list_cb(v, vl, arg);
}

/* What a read sees: -1 when absent, else the value (list: the sum of the elements; the number
 * of elements in *n). Map state reads through get and foreach alternately (@p alt). */
static int64_t get_one(weir_state_backend_t *sb, weir_state_kind_t kind, uint32_t st, int *n,
                       bool alt) {
    const void *v;
    uint32_t len;
    int rc;
    char buf[32] = {0};
    lsum_t s = {0};
    *n = 1;
    switch (kind) {
    case WEIR_STATE_VALUE:
        rc = weir_state_value_get(sb, st, &v, &len);
        break;
    case WEIR_STATE_MAP:
        if (alt) {
            assert_int_equal(weir_state_map_foreach(sb, st, map_cb, &s), 0);
            *n = s.n;
            return s.n ? s.sum : -1;
        }
        rc = weir_state_map_get(sb, st, "uk", 2, &v, &len);
        break;
    case WEIR_STATE_LIST:
        assert_int_equal(weir_state_list_foreach(sb, st, list_cb, &s), 0);
        *n = s.n;
        return s.n ? s.sum : -1;
    case WEIR_STATE_REDUCING: {
        rc = weir_state_reducing_get(sb, st, &v, &len);
        if (rc == 1)
            return -1;
        assert_int_equal(rc, 0);
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t off = 0;
        assert_int_equal(msgpack_unpack_next(&u, v, len, &off), MSGPACK_UNPACK_SUCCESS);
        int64_t r = u.data.via.i64;
        msgpack_unpacked_destroy(&u);
        return r;
    }
    default:
        fail();
    }
    if (rc == 1)
        return -1;
    assert_int_equal(rc, 0);
    memcpy(buf, v, len < 31 ? len : 31);
    return atoll(buf);
}

static int64_t get1(weir_state_backend_t *sb, weir_state_kind_t kind, uint32_t st) {
    int n;
    return get_one(sb, kind, st, &n, false);
}

/* ---- expiry, refresh on read vs write ----------------------------------------------------- */

static void expiry_for(weir_state_kind_t kind) {
    char *dir = weir_test_tmpdir("ttl-expiry");
    char path[512];
    snprintf(path, sizeof path, "%s/db", dir);
    tclock_t c;
    set_now(&c, 10000);
    weir_state_backend_t *sb = open_kind(path, &c, kind);
    for (int k = 0; k < 2; k++) { /* k 0: through the cache; k 1: flushed, reopened, from RocksDB */
        char key[8];
        snprintf(key, sizeof key, "key%d", k);
        int64_t t0 = 10000 + k * 100000;
        set_now(&c, t0);
        weir_state_set_key(sb, key, 4);
        for (uint32_t st = 0; st < 3; st++)
            put_one(sb, kind, st, 7);
        if (k == 1) {
            assert_int_equal(weir_state_flush(sb), 0);
            weir_state_close(&sb, false);
            sb = open_kind(path, &c, kind);
            weir_state_set_key(sb, key, 4);
        }
        set_now(&c, t0 + 500); /* read: refreshes "rw" to t0 + 1500 */
        assert_int_equal(get1(sb, kind, 0), 7);
        assert_int_equal(get1(sb, kind, 1), 7);
        set_now(&c, t0 + TTL - 1);
        assert_int_equal(get1(sb, kind, 0), 7);
        set_now(&c, t0 + TTL); /* expiry <= now: expired */
        assert_int_equal(get1(sb, kind, 0), -1);
        assert_int_equal(get1(sb, kind, 1), 7); /* refreshed to t0 + 2000 */
        assert_int_equal(get1(sb, kind, 2), 7); /* no TTL */
        set_now(&c, t0 + 2 * TTL - 1);
        assert_int_equal(get1(sb, kind, 0), -1); /* still gone (deleted when found expired) */
        assert_int_equal(get1(sb, kind, 1), 7);
        set_now(&c, t0 + 3 * TTL - 1);
        assert_int_equal(get1(sb, kind, 1), -1);
        assert_int_equal(get1(sb, kind, 2), 7);

        /* writes restart both; a read does not restart "w" */
        int64_t t1 = t0 + 10 * TTL;
        set_now(&c, t1);
        put_one(sb, kind, 0, 5);
        set_now(&c, t1 + 600);
        put_one(sb, kind, 0, 5); /* restarts: expires at t1 + 1600 */
        /* reducing: 5 + 5; a list's elements expire one by one (the first at t1 + 1000) */
        int64_t want = kind == WEIR_STATE_REDUCING ? 10 : 5;
        int n;
        set_now(&c, t1 + 999);
        assert_int_equal(get_one(sb, kind, 0, &n, false), kind == WEIR_STATE_LIST ? 10 : want);
        set_now(&c, t1 + 1200);
        assert_int_equal(get_one(sb, kind, 0, &n, false), want);
        assert_int_equal(n, 1);
        set_now(&c, t1 + 1599);
        assert_int_equal(get_one(sb, kind, 0, &n, true), want);
        assert_int_equal(n, 1);
        set_now(&c, t1 + 1600);
        assert_int_equal(get_one(sb, kind, 0, &n, true), -1);
        if (kind == WEIR_STATE_REDUCING) { /* an expired accumulator starts over */
            put_one(sb, kind, 0, 3);
            assert_int_equal(get1(sb, kind, 0), 3);
        }
    }
    weir_state_close(&sb, true);
    weir_test_tmpdir_remove(dir);
}

static void test_expiry_value(void **state) {
    (void)state;
    expiry_for(WEIR_STATE_VALUE);
}
static void test_expiry_list(void **state) {
    (void)state;
    expiry_for(WEIR_STATE_LIST);
}
static void test_expiry_map(void **state) {
    (void)state;
    expiry_for(WEIR_STATE_MAP);
}
static void test_expiry_reducing(void **state) {
    (void)state;
    expiry_for(WEIR_STATE_REDUCING);
}

/* ---- compaction filter: expired entries disappear, the size shrinks ----------------------- */

#define NKEYS 12000
#define VBYTES 200

static uint64_t rnd64(uint64_t *s) { /* xorshift64* */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

static uint64_t cf_size(weir_state_backend_t *sb, uint32_t st) {
    const char *start = "";
    size_t sl = 0;
    const char *lim = "\xff\xff\xff\xff";
    size_t ll = 4;
    uint64_t size = 0;
    char *err = NULL;
    rocksdb_approximate_sizes_cf(weir_state_int_db(sb), weir_state_int_cf(sb, st), 1, &start, &sl,
                                 &lim, &ll, &size, &err);
    assert_null(err);
    return size;
}

/* Keys in the column family of @p st (raw, bypassing TTL checks) and their value bytes. */
static uint64_t cf_keys(weir_state_backend_t *sb, uint32_t st, uint64_t *vbytes) {
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_iterator_t *it =
        rocksdb_create_iterator_cf(weir_state_int_db(sb), ro, weir_state_int_cf(sb, st));
    uint64_t n = 0;
    *vbytes = 0;
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t vl;
        rocksdb_iter_value(it, &vl);
        *vbytes += vl;
        n++;
    }
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    return n;
}

static void compaction_for(weir_state_kind_t kind) {
    char *dir = weir_test_tmpdir("ttl-compact");
    char path[512];
    snprintf(path, sizeof path, "%s/db", dir);
    tclock_t c;
    set_now(&c, 1000);
    weir_state_backend_t *sb = open_kind(path, &c, kind);
    char val[VBYTES];
    uint8_t mp[VBYTES + 8];
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    for (int i = 0; i < NKEYS; i++) {
        char key[16];
        int kl = snprintf(key, sizeof key, "k%d", i);
        weir_state_set_key(sb, key, (uint32_t)kl);
        for (int b = 0; b < VBYTES; b++) /* incompressible */
            val[b] = (char)(rnd64(&seed) >> 56);
        for (uint32_t st = 0; st < 3; st += 2) { /* "w" (TTL) and "plain" */
            if (kind == WEIR_STATE_VALUE)
                assert_int_equal(weir_state_value_put(sb, st, val, VBYTES), 0);
            else if (kind == WEIR_STATE_LIST)
                assert_int_equal(weir_state_list_add(sb, st, val, VBYTES), 0);
            else if (kind == WEIR_STATE_MAP)
                assert_int_equal(weir_state_map_put(sb, st, "uk", 2, val, VBYTES), 0);
            else { /* a msgpack bin of VBYTES */
                mp[0] = 0xc5;
                mp[1] = VBYTES >> 8;
                mp[2] = VBYTES & 0xff;
                memcpy(mp + 3, val, VBYTES);
                assert_int_equal(weir_state_reducing_add(sb, st, mp, VBYTES + 3), 0);
            }
        }
    }
    assert_int_equal(weir_state_int_compact(sb), 0);
    uint64_t vb, vb_plain;
    assert_int_equal(cf_keys(sb, 0, &vb), NKEYS);
    uint64_t before = cf_size(sb, 0);
    assert_true(before > (uint64_t)NKEYS * VBYTES / 4); /* a few MB (values compress somewhat) */
    if (kind == WEIR_STATE_LIST) { /* a second element per key that outlives the first */
        set_now(&c, 1900);
        for (int i = 0; i < NKEYS; i++) {
            char key[16];
            int kl = snprintf(key, sizeof key, "k%d", i);
            weir_state_set_key(sb, key, (uint32_t)kl);
            assert_int_equal(weir_state_list_add(sb, 0, "x", 1), 0);
        }
        assert_int_equal(weir_state_int_compact(sb), 0);
    }
    set_now(&c, 1000 + TTL); /* everything written at 1000 expired (the list's "x" lives) */
    assert_int_equal(weir_state_int_compact(sb), 0);
    uint64_t after = cf_size(sb, 0);
    uint64_t n = cf_keys(sb, 0, &vb);
    if (kind == WEIR_STATE_LIST) { /* each list rewritten to its live element: len, expiry, "x" */
        assert_int_equal(n, NKEYS);
        assert_int_equal(vb, (uint64_t)NKEYS * (4 + 8 + 1));
    } else {
        assert_int_equal(n, 0);
    }
    assert_int_equal(cf_keys(sb, 2, &vb_plain), NKEYS); /* no TTL: untouched */
    print_message("%s: TTL family %llu -> %llu bytes (no-TTL family %llu)\n",
                  kind == WEIR_STATE_VALUE  ? "value"
                  : kind == WEIR_STATE_LIST ? "list"
                  : kind == WEIR_STATE_MAP  ? "map"
                                            : "reducing",
                  (unsigned long long)before, (unsigned long long)after,
                  (unsigned long long)cf_size(sb, 2));
    /* a list keeps 13 of its 217 value bytes per key */
    assert_true(after < before / (kind == WEIR_STATE_LIST ? 4 : 10));
    /* and nothing expired is returned */
    weir_state_set_key(sb, "k7", 2);
    int nn;
    int64_t got = get_one(sb, kind, 0, &nn, false);
    if (kind == WEIR_STATE_LIST)
        assert_int_equal(nn, 1);
    else
        assert_int_equal(got, -1);
    weir_state_close(&sb, true);
    weir_test_tmpdir_remove(dir);
}

static void test_compaction_value(void **state) {
    (void)state;
    compaction_for(WEIR_STATE_VALUE);
}
static void test_compaction_list(void **state) {
    (void)state;
    compaction_for(WEIR_STATE_LIST);
}
static void test_compaction_map(void **state) {
    (void)state;
    compaction_for(WEIR_STATE_MAP);
}
static void test_compaction_reducing(void **state) {
    (void)state;
    compaction_for(WEIR_STATE_REDUCING);
}

/* ---- snapshot and restore keep the expiry times ------------------------------------------- */

static void test_snapshot_restore(void **state) {
    (void)state;
    weir_state_kind_t kinds[4] = {WEIR_STATE_VALUE, WEIR_STATE_LIST, WEIR_STATE_MAP,
                                  WEIR_STATE_REDUCING};
    for (int k = 0; k < 4; k++) {
        char *dir = weir_test_tmpdir("ttl-snap");
        char path[512], path2[512], ck[512];
        snprintf(path, sizeof path, "%s/db", dir);
        snprintf(path2, sizeof path2, "%s/db2", dir);
        snprintf(ck, sizeof ck, "%s/ck", dir);
        tclock_t c;
        set_now(&c, 50000);
        weir_state_backend_t *sb = open_kind(path, &c, kinds[k]);
        weir_state_set_key(sb, "a", 1);
        put_one(sb, kinds[k], 0, 9);
        set_now(&c, 50400);
        weir_state_set_key(sb, "b", 1);
        put_one(sb, kinds[k], 0, 4);
        char err[256];
        weir_state_snapshot_t *s = weir_state_snapshot_take(sb, 1, err, sizeof err);
        assert_non_null(s);
        char *h = NULL;
        uint64_t ss, us;
        assert_int_equal(upload_to(s, ck, "1-0", WEIR_UPLOAD_FULL, &h, &ss, &us, err, sizeof err),
                         0);
        weir_state_snapshot_free(&s);
        weir_state_close(&sb, true);

        weir_state_decl_t d[3];
        decls_of(kinds[k], d);
        weir_state_opts_t o = opts_of(path2, &c);
        set_now(&c, 50000 + TTL - 1);
        sb = restore_ck(&o, d, 3, ck, h, err, sizeof err);
        if (!sb)
            fail_msg("restore failed: %s", err);
        weir_state_set_key(sb, "a", 1);
        assert_int_equal(get1(sb, kinds[k], 0), 9);
        set_now(&c, 50000 + TTL);
        assert_int_equal(get1(sb, kinds[k], 0), -1);
        weir_state_set_key(sb, "b", 1);
        assert_int_equal(get1(sb, kinds[k], 0), 4);
        set_now(&c, 50400 + TTL);
        assert_int_equal(get1(sb, kinds[k], 0), -1);
        free(h);
        weir_state_close(&sb, true);
        weir_test_tmpdir_remove(dir);
    }
}

/* ---- background cleanup ------------------------------------------------------------------- */

static uint64_t sst_bytes(weir_state_backend_t *sb, uint32_t st) {
    uint64_t v = 0;
    assert_int_equal(rocksdb_property_int_cf(weir_state_int_db(sb), weir_state_int_cf(sb, st),
                                             "rocksdb.total-sst-files-size", &v),
                     0);
    return v;
}

/* NKEYS incompressible values into "w" (TTL) and "plain" at the clock's time, written back and
 * flushed into SST files. */
static void fill_values(weir_state_backend_t *sb) {
    char val[VBYTES];
    uint64_t seed = 0x51ed2701f3a5c7b9ULL;
    for (int i = 0; i < NKEYS; i++) {
        char key[16];
        int kl = snprintf(key, sizeof key, "k%d", i);
        weir_state_set_key(sb, key, (uint32_t)kl);
        for (int b = 0; b < VBYTES; b++)
            val[b] = (char)(rnd64(&seed) >> 56);
        assert_int_equal(weir_state_value_put(sb, 0, val, VBYTES), 0);
        assert_int_equal(weir_state_value_put(sb, 2, val, VBYTES), 0);
    }
    assert_int_equal(weir_state_flush(sb), 0);
    rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
    char *err = NULL;
    for (uint32_t st = 0; st < 3 && !err; st += 2)
        rocksdb_flush_cf(weir_state_int_db(sb), fo, weir_state_int_cf(sb, st), &err);
    rocksdb_flushoptions_destroy(fo);
    assert_null(err);
}

static bool family_empty(void *arg) {
    return sst_bytes(arg, 0) == 0;
}

static weir_state_backend_t *open_cleanup(const char *path, tclock_t *c, int64_t cleanup_ms) {
    weir_state_decl_t d[3];
    decls_of(WEIR_STATE_VALUE, d);
    weir_state_opts_t o = opts_of(path, c);
    o.ttl_cleanup_ms = cleanup_ms;
    char err[256];
    weir_state_backend_t *sb = weir_state_open(&o, d, 3, err, sizeof err);
    if (!sb)
        fail_msg("open failed: %s", err);
    return sb;
}

/* One cleanup round at a time (no thread): a TTL family is compacted once its interval (here
 * the TTL) passed since the open or its previous cleanup, and only while it holds anything;
 * live entries survive a cleanup, expired ones are gone from the disk after it. */
static void test_cleanup_rounds(void **state) {
    (void)state;
    char *dir = weir_test_tmpdir("ttl-clean");
    char path[512];
    snprintf(path, sizeof path, "%s/db", dir);
    tclock_t c;
    set_now(&c, 1000);
    weir_state_backend_t *sb = open_cleanup(path, &c, -1);
    fill_values(sb);
    uint64_t vb, before = sst_bytes(sb, 0);
    assert_true(before > (uint64_t)NKEYS * VBYTES / 2);
    set_now(&c, 1000 + TTL - 1); /* interval not over (and nothing expired) */
    assert_int_equal(weir_state_int_ttl_cleanup(sb), 0);
    assert_int_equal(cf_keys(sb, 0, &vb), NKEYS);
    set_now(&c, 1000 + TTL); /* everything in "w" expired; "rw" is empty, "plain" has no TTL */
    assert_int_equal(weir_state_int_ttl_cleanup(sb), 1);
    assert_int_equal(cf_keys(sb, 0, &vb), 0);
    assert_int_equal(sst_bytes(sb, 0), 0);
    assert_int_equal(cf_keys(sb, 2, &vb), NKEYS);
    assert_true(sst_bytes(sb, 2) > (uint64_t)NKEYS * VBYTES / 2);
    print_message("cleanup round: TTL family %llu -> 0 bytes of SST files without a read\n",
                  (unsigned long long)before);
    set_now(&c, 3500); /* an empty family is not compacted again */
    assert_int_equal(weir_state_int_ttl_cleanup(sb), 0);
    weir_state_set_key(sb, "x", 1);
    assert_int_equal(weir_state_value_put(sb, 0, "live", 4), 0); /* expires at 4500 */
    assert_int_equal(weir_state_flush(sb), 0);
    set_now(&c, 4000); /* interval over, family not empty: compacted, the live entry stays */
    assert_int_equal(weir_state_int_ttl_cleanup(sb), 1);
    assert_int_equal(cf_keys(sb, 0, &vb), 1);
    set_now(&c, 4600); /* expired, but the interval since 4000 is not over */
    assert_int_equal(weir_state_int_ttl_cleanup(sb), 0);
    assert_int_equal(cf_keys(sb, 0, &vb), 1);
    set_now(&c, 5000);
    assert_int_equal(weir_state_int_ttl_cleanup(sb), 1);
    assert_int_equal(cf_keys(sb, 0, &vb), 0);
    weir_state_close(&sb, true);
    weir_test_tmpdir_remove(dir);
}

/* The cleaner thread (default interval: the TTL, at least 1 s): after the clock passes the
 * expiry, the expired family's SST files go away by themselves within a few wake-ups, live
 * entries and the family without TTL stay; with the cleanup off (ttl_cleanup_ms < 0) nothing
 * removes them (no read, no write, no compaction RocksDB would start by itself). */
static void test_cleanup_thread(void **state) {
    (void)state;
    char *dir = weir_test_tmpdir("ttl-thread");
    char on[512], off[512];
    snprintf(on, sizeof on, "%s/on", dir);
    snprintf(off, sizeof off, "%s/off", dir);
    tclock_t c;
    set_now(&c, 1000);
    weir_state_backend_t *sb = open_cleanup(on, &c, 0);
    weir_state_backend_t *sb_off = open_cleanup(off, &c, -1);
    fill_values(sb);
    fill_values(sb_off);
    uint64_t vb, before = sst_bytes(sb, 0);
    set_now(&c, 1000 + TTL - 1); /* nothing expired: wake-ups may compact, nothing is dropped */
    weir_sleep_ns(600 * 1000000LL);
    assert_int_equal(cf_keys(sb, 0, &vb), NKEYS);
    set_now(&c, 1000 + 2 * TTL);
    int64_t t0 = weir_wall_ms();
    assert_true(weir_test_wait_until(family_empty, sb, 20000, 20));
    int64_t waited = weir_wall_ms() - t0;
    assert_int_equal(cf_keys(sb, 0, &vb), 0);
    assert_int_equal(cf_keys(sb, 2, &vb), NKEYS);
    print_message("cleaner thread: TTL family %llu -> 0 bytes %lld ms after the expiry\n",
                  (unsigned long long)before, (long long)waited);
    weir_sleep_ns(300 * 1000000LL);
    assert_int_equal(cf_keys(sb_off, 0, &vb), NKEYS); /* without the cleanup: still on disk */
    assert_true(sst_bytes(sb_off, 0) >= before / 2);
    weir_state_close(&sb, true);
    weir_state_close(&sb_off, true);
    weir_test_tmpdir_remove(dir);
}

/* ---- bad declarations --------------------------------------------------------------------- */

static void test_open_errors(void **state) {
    (void)state;
    char *dir = weir_test_tmpdir("ttl-err");
    char path[512];
    snprintf(path, sizeof path, "%s/db", dir);
    tclock_t c;
    set_now(&c, 0);
    weir_state_decl_t d = {.name = "v", .kind = WEIR_STATE_VALUE, .ttl_ms = -5};
    weir_state_opts_t o = opts_of(path, &c);
    char err[256];
    assert_null(weir_state_open(&o, &d, 1, err, sizeof err));
    assert_non_null(strstr(err, "time to live"));
    weir_test_tmpdir_remove(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expiry_value),     cmocka_unit_test(test_expiry_list),
        cmocka_unit_test(test_expiry_map),       cmocka_unit_test(test_expiry_reducing),
        cmocka_unit_test(test_compaction_value), cmocka_unit_test(test_compaction_list),
        cmocka_unit_test(test_compaction_map),   cmocka_unit_test(test_compaction_reducing),
        cmocka_unit_test(test_snapshot_restore), cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_cleanup_rounds),   cmocka_unit_test(test_cleanup_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
