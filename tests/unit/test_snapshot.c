/* Unit tests of keyed-state snapshots (state/snapshot.c): take + upload + restore round trips of
 * value/list/map/reducing state against an in-test model (changes after the snapshot must not
 * appear), incremental uploads (sizes recomputed independently from the handle and the files on
 * disk), confirm semantics, restore errors (missing/truncated files, bad handles), private files
 * of several checkpoints and tasks, and operator-state redistribution checked by brute force. */
#include <dirent.h>
#include <pthread.h>
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
#include <msgpack.h>

#include "common/err.h"
#include "common/util.h"
#include "state/snapshot.h"
#include "snapshot_io.h"
#include "state/state.h"
#include "state/state_int.h"
#include "testutil.h"

/* ------------------------------------------------------------------------------------------ */
/* helpers                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static char *pjoin(const char *a, const char *b) {
    char *p = malloc(strlen(a) + strlen(b) + 2);
    assert_non_null(p);
    sprintf(p, "%s/%s", a, b);
    return p;
}

static bool exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static uint64_t fsize(const char *p) {
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    return (uint64_t)st.st_size;
}

static uint64_t rng_state;
static uint64_t rnd(void) { /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

static void sum_reduce(const msgpack_object *acc, const msgpack_object *in, msgpack_packer *out,
                       void *udata) {
    (void)udata;
    msgpack_pack_int64(out, acc->via.i64 + in->via.i64);
}

enum { ST_V, ST_L, ST_M, ST_R, N_ST };
static const weir_state_decl_t DECLS[N_ST] = {
    {.name = "v", .kind = WEIR_STATE_VALUE},
    {.name = "l", .kind = WEIR_STATE_LIST},
    {.name = "m", .kind = WEIR_STATE_MAP},
    {.name = "r", .kind = WEIR_STATE_REDUCING, .reduce = sum_reduce},
};

static weir_state_opts_t opts_for(const char *path) {
    return (weir_state_opts_t){.path = path,
                               .max_parallelism = 64,
                               .cache_bytes = 64 << 10, /* small: evictions happen */
                               .write_buffer_bytes = 256 << 10,
                               .block_cache_bytes = 1 << 20};
}

static weir_state_backend_t *open_sb(const char *path) {
    weir_state_opts_t o = opts_for(path);
    char err[512];
    weir_state_backend_t *sb = weir_state_open(&o, DECLS, N_ST, err, sizeof(err));
    if (!sb)
        fail_msg("open failed: %s", err);
    return sb;
}

/* ------------------------------------------------------------------------------------------ */
/* the model                                                                                  */
/* ------------------------------------------------------------------------------------------ */

#define NK 2000
#define NU 4
typedef struct model {
    int vver[NK];     /* -1 absent */
    int lcount[NK];   /* list elements "e-<k>-<j>-<lgen>" j < lcount */
    int lgen[NK];     /* bumped by clear so old elements differ */
    int mver[NK][NU]; /* -1 absent */
    int64_t rsum[NK];
    bool rhas[NK];
} model_t;

static void model_init(model_t *m) {
    memset(m, 0, sizeof(*m));
    for (int k = 0; k < NK; k++) {
        m->vver[k] = -1;
        for (int u = 0; u < NU; u++)
            m->mver[k][u] = -1;
    }
}

static void set_key(weir_state_backend_t *sb, int k) {
    char key[32];
    int n = snprintf(key, sizeof(key), "key-%d", k);
    weir_state_set_key(sb, key, (uint32_t)n);
}

/* @p n random operations applied to the backend and the model. */
static void random_ops(weir_state_backend_t *sb, model_t *m, int n) {
    char buf[200];
    for (int i = 0; i < n; i++) {
        int k = (int)(rnd() % NK);
        set_key(sb, k);
        int op = (int)(rnd() % 10);
        if (op <= 3) {
            int ver = (int)(rnd() % 1000);
            int l = weir_test_value(buf, k, ver);
            assert_int_equal(weir_state_value_put(sb, ST_V, buf, (uint32_t)l), 0);
            m->vver[k] = ver;
        } else if (op == 4) {
            assert_int_equal(weir_state_value_clear(sb, ST_V), 0);
            m->vver[k] = -1;
        } else if (op == 5) {
            int l = snprintf(buf, sizeof(buf), "e-%d-%d-%d", k, m->lcount[k], m->lgen[k]);
            assert_int_equal(weir_state_list_add(sb, ST_L, buf, (uint32_t)l), 0);
            m->lcount[k]++;
        } else if (op == 6 && rnd() % 4 == 0) {
            assert_int_equal(weir_state_list_clear(sb, ST_L), 0);
            m->lcount[k] = 0;
            m->lgen[k]++;
        } else if (op == 7) {
            int u = (int)(rnd() % NU), ver = (int)(rnd() % 1000);
            char uk[8];
            int ul = snprintf(uk, sizeof(uk), "u%d", u);
            int l = weir_test_value(buf, k, ver);
            assert_int_equal(weir_state_map_put(sb, ST_M, uk, (uint32_t)ul, buf, (uint32_t)l), 0);
            m->mver[k][u] = ver;
        } else if (op == 8) {
            int u = (int)(rnd() % NU);
            char uk[8];
            int ul = snprintf(uk, sizeof(uk), "u%d", u);
            assert_int_equal(weir_state_map_remove(sb, ST_M, uk, (uint32_t)ul), 0);
            m->mver[k][u] = -1;
        } else {
            int64_t d = (int64_t)(rnd() % 2001) - 1000;
            char pb[16];
            msgpack_sbuffer sbuf;
            msgpack_sbuffer_init(&sbuf);
            msgpack_packer pk;
            msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
            msgpack_pack_int64(&pk, d);
            memcpy(pb, sbuf.data, sbuf.size);
            assert_int_equal(weir_state_reducing_add(sb, ST_R, pb, (uint32_t)sbuf.size), 0);
            msgpack_sbuffer_destroy(&sbuf);
            m->rsum[k] = m->rhas[k] ? m->rsum[k] + d : d;
            m->rhas[k] = true;
        }
    }
}

typedef struct lctx {
    int k, gen, n;
} lctx_t;

static int list_cb(const void *v, uint32_t len, void *arg) {
    lctx_t *c = arg;
    char want[64];
    int l = snprintf(want, sizeof(want), "e-%d-%d-%d", c->k, c->n, c->gen);
    assert_int_equal(len, (uint32_t)l);
    assert_memory_equal(v, want, len);
    c->n++;
    return 0;
}

typedef struct mctx {
    const model_t *m;
    int k, n;
} mctx_t;

static int map_cb(const void *uk, uint32_t ul, const void *v, uint32_t vl, void *arg) {
    mctx_t *c = arg;
    assert_true(ul == 2 && ((const char *)uk)[0] == 'u');
    int u = ((const char *)uk)[1] - '0';
    assert_true(u >= 0 && u < NU);
    assert_true(c->m->mver[c->k][u] >= 0);
    char want[200];
    int l = weir_test_value(want, c->k, c->m->mver[c->k][u]);
    assert_int_equal(vl, (uint32_t)l);
    assert_memory_equal(v, want, vl);
    c->n++;
    return 0;
}

static void verify(weir_state_backend_t *sb, const model_t *m) {
    char want[200];
    for (int k = 0; k < NK; k++) {
        set_key(sb, k);
        const void *v;
        uint32_t len;
        int rc = weir_state_value_get(sb, ST_V, &v, &len);
        if (m->vver[k] < 0) {
            assert_int_equal(rc, 1);
        } else {
            assert_int_equal(rc, 0);
            int l = weir_test_value(want, k, m->vver[k]);
            assert_int_equal(len, (uint32_t)l);
            assert_memory_equal(v, want, len);
        }
        lctx_t lc = {.k = k, .gen = m->lgen[k]};
        assert_int_equal(weir_state_list_foreach(sb, ST_L, list_cb, &lc), 0);
        assert_int_equal(lc.n, m->lcount[k]);
        mctx_t mc = {.m = m, .k = k};
        assert_int_equal(weir_state_map_foreach(sb, ST_M, map_cb, &mc), 0);
        int nm = 0;
        for (int u = 0; u < NU; u++)
            nm += m->mver[k][u] >= 0;
        assert_int_equal(mc.n, nm);
        rc = weir_state_reducing_get(sb, ST_R, &v, &len);
        if (!m->rhas[k]) {
            assert_int_equal(rc, 1);
        } else {
            assert_int_equal(rc, 0);
            msgpack_unpacked u;
            msgpack_unpacked_init(&u);
            assert_int_equal(msgpack_unpack_next(&u, v, len, NULL), MSGPACK_UNPACK_SUCCESS);
            int64_t got = u.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (int64_t)u.data.via.u64
                                                                         : u.data.via.i64;
            assert_int_equal(got, m->rsum[k]);
            msgpack_unpacked_destroy(&u);
        }
    }
}

/* take + upload; returns the handle. */
static char *checkpoint(weir_state_backend_t *sb, uint64_t id, const char *ckdir, const char *task,
                        bool incremental, uint64_t *state_size, uint64_t *uploaded) {
    char err[512];
    weir_state_snapshot_t *s = weir_state_snapshot_take(sb, id, err, sizeof(err));
    if (!s)
        fail_msg("take failed: %s", err);
    char *h = NULL;
    uint64_t ss = 0, us = 0;
    int rc = upload_to(s, ckdir, task, incremental ? WEIR_UPLOAD_INCREMENTAL : WEIR_UPLOAD_FULL, &h,
                       &ss, &us, err, sizeof(err));
    if (rc != 0)
        fail_msg("upload failed: %s", err);
    weir_state_snapshot_free(&s);
    if (state_size)
        *state_size = ss;
    if (uploaded)
        *uploaded = us;
    return h;
}

static weir_state_backend_t *restore(const char *path, const char *ckdir, const char *h) {
    weir_state_opts_t o = opts_for(path);
    char err[512];
    weir_state_backend_t *sb = restore_ck(&o, DECLS, N_ST, ckdir, h, err, sizeof(err));
    if (!sb)
        fail_msg("restore failed: %s", err);
    return sb;
}

/* Independent accounting from the handle: total referenced bytes, checked against the files. */
typedef struct hinfo {
    json_t *root;
    size_t n_shared;
    uint64_t shared_bytes, private_bytes;
} hinfo_t;

static hinfo_t parse_handle(const char *h, const char *ckdir) {
    hinfo_t hi = {0};
    json_error_t je;
    hi.root = json_loads(h, 0, &je);
    assert_non_null(hi.root);
    assert_int_equal(json_integer_value(json_object_get(hi.root, "version")), 1);
    const char *task = json_string_value(json_object_get(hi.root, "task"));
    assert_non_null(task);
    long long ck = json_integer_value(json_object_get(hi.root, "checkpoint"));
    size_t i;
    json_t *o;
    char p[1024];
    json_array_foreach(json_object_get(hi.root, "shared"), i, o) {
        const char *name = json_string_value(json_object_get(o, "name"));
        const char *local = json_string_value(json_object_get(o, "local"));
        assert_non_null(name);
        assert_non_null(local);
        assert_non_null(strstr(name, local)); /* "<instance>-<sst>" */
        snprintf(p, sizeof(p), "%s/shared/%s", ckdir, name);
        uint64_t sz = (uint64_t)json_integer_value(json_object_get(o, "size"));
        assert_int_equal(fsize(p), sz);
        hi.shared_bytes += sz;
        hi.n_shared++;
    }
    assert_true(hi.n_shared > 0);
    bool has_current = false;
    json_array_foreach(json_object_get(hi.root, "private"), i, o) {
        const char *name = json_string_value(json_object_get(o, "name"));
        assert_non_null(name);
        has_current |= strcmp(name, "CURRENT") == 0;
        snprintf(p, sizeof(p), "%s/chk-%lld/%s/%s", ckdir, ck, task, name);
        uint64_t sz = (uint64_t)json_integer_value(json_object_get(o, "size"));
        assert_int_equal(fsize(p), sz);
        hi.private_bytes += sz;
    }
    assert_true(has_current);
    return hi;
}

static bool handle_has_shared(const hinfo_t *hi, const char *name, uint64_t *size) {
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(hi->root, "shared"), i, o) {
        if (strcmp(json_string_value(json_object_get(o, "name")), name) == 0) {
            if (size)
                *size = (uint64_t)json_integer_value(json_object_get(o, "size"));
            return true;
        }
    }
    return false;
}

/* Bytes of @p b's shared files that @p a does not reference. */
static uint64_t new_shared_bytes(const hinfo_t *a, const hinfo_t *b, size_t *n_common) {
    uint64_t sum = 0;
    size_t i;
    json_t *o;
    *n_common = 0;
    json_array_foreach(json_object_get(b->root, "shared"), i, o) {
        const char *name = json_string_value(json_object_get(o, "name"));
        if (handle_has_shared(a, name, NULL))
            (*n_common)++;
        else
            sum += (uint64_t)json_integer_value(json_object_get(o, "size"));
    }
    return sum;
}

/* ------------------------------------------------------------------------------------------ */
/* tests                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static void test_round_trip(void **unused) {
    (void)unused;
    rng_state = 0x1234567;
    char *tmp = weir_test_tmpdir("snapshot");
    char *db = pjoin(tmp, "db"), *db2 = pjoin(tmp, "db2"), *ck = pjoin(tmp, "ck");
    weir_state_backend_t *sb = open_sb(db);
    static model_t m, at1;
    model_init(&m);
    random_ops(sb, &m, 6000);
    at1 = m;
    uint64_t ss, us;
    char *h = checkpoint(sb, 1, ck, "3-0", true, &ss, &us);
    /* the local checkpoint directory is gone after the upload */
    char *local = malloc(strlen(db) + 16);
    sprintf(local, "%s.chk-1", db);
    assert_false(exists(local));
    hinfo_t hi = parse_handle(h, ck);
    assert_int_equal(ss, hi.shared_bytes + hi.private_bytes);
    assert_int_equal(us, ss); /* first checkpoint: everything written */
    assert_int_equal(json_integer_value(json_object_get(hi.root, "max_parallelism")), 64);
    assert_int_equal(json_array_size(json_object_get(hi.root, "states")), N_ST);
    /* changes after the snapshot must not be restored */
    random_ops(sb, &m, 2000);
    weir_state_backend_t *r = restore(db2, ck, h);
    verify(r, &at1);
    weir_state_close(&r, true);
    verify(sb, &m);
    weir_state_close(&sb, true);
    json_decref(hi.root);
    free(h);
    free(local);
    weir_test_tmpdir_remove(tmp);
    free(db);
    free(db2);
    free(ck);
}

static void test_incremental_and_chain(void **unused) {
    (void)unused;
    rng_state = 0xabcdef;
    char *tmp = weir_test_tmpdir("snapshot");
    char *db = pjoin(tmp, "db"), *db2 = pjoin(tmp, "db2"), *db3 = pjoin(tmp, "db3");
    char *ck = pjoin(tmp, "ck");
    weir_state_backend_t *sb = open_sb(db);
    static model_t m, at2, at3;
    model_init(&m);
    random_ops(sb, &m, 40000);
    /* a stable SST set (no compaction between the checkpoints): the figures are deterministic */
    assert_int_equal(weir_state_int_compact(sb), 0);
    uint64_t ss1, us1, ss2, us2;
    char *h1 = checkpoint(sb, 1, ck, "1-0", true, &ss1, &us1);
    weir_state_snapshot_confirm(sb, 1);
    random_ops(sb, &m, 20); /* a few changes */
    at2 = m;
    char *h2 = checkpoint(sb, 2, ck, "1-0", true, &ss2, &us2);
    hinfo_t i1 = parse_handle(h1, ck), i2 = parse_handle(h2, ck);
    assert_true(i1.n_shared >= 3);
    size_t common;
    uint64_t fresh = new_shared_bytes(&i1, &i2, &common);
    /* exactly the new SSTs and the private files were written */
    assert_int_equal(us2, fresh + i2.private_bytes);
    assert_int_equal(ss2, i2.shared_bytes + i2.private_bytes);
    assert_true(common >= 1);
    print_message("incremental: state %llu uploaded %llu (private %llu)\n", (unsigned long long)ss2,
                  (unsigned long long)us2, (unsigned long long)i2.private_bytes);
    assert_true(us2 * 4 < ss2);
    /* restore checkpoint 2 (new instance), change a little, checkpoint 3 from the restored
     * backend: the restored SSTs are not uploaded again */
    weir_state_backend_t *r = restore(db2, ck, h2);
    verify(r, &at2);
    model_t rm = at2;
    random_ops(r, &rm, 20);
    at3 = rm;
    uint64_t ss3, us3;
    char *h3 = checkpoint(r, 3, ck, "1-0", true, &ss3, &us3);
    hinfo_t i3 = parse_handle(h3, ck);
    fresh = new_shared_bytes(&i2, &i3, &common);
    assert_int_equal(us3, fresh + i3.private_bytes);
    assert_true(common >= 1);
    assert_true(us3 * 4 < ss3);
    /* files created after the restore carry a new instance id */
    const char *inst2 = json_string_value(
        json_object_get(json_array_get(json_object_get(i2.root, "shared"), 0), "name"));
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(i3.root, "shared"), i, o) {
        const char *name = json_string_value(json_object_get(o, "name"));
        if (!handle_has_shared(&i2, name, NULL))
            assert_int_not_equal(strncmp(name, inst2, 16), 0);
    }
    weir_state_close(&r, true);
    r = restore(db3, ck, h3);
    verify(r, &at3);
    weir_state_close(&r, true);
    /* checkpoint 2's private files are still intact next to 3's: restore 2 again */
    r = restore(db3, ck, h2);
    verify(r, &at2);
    weir_state_close(&r, true);
    weir_state_close(&sb, true);
    json_decref(i1.root);
    json_decref(i2.root);
    json_decref(i3.root);
    free(h1);
    free(h2);
    free(h3);
    weir_test_tmpdir_remove(tmp);
    free(db);
    free(db2);
    free(db3);
    free(ck);
}

static void test_confirm_semantics(void **unused) {
    (void)unused;
    rng_state = 0x55aa;
    char *tmp = weir_test_tmpdir("snapshot");
    char *db = pjoin(tmp, "db"), *ck = pjoin(tmp, "ck");
    weir_state_backend_t *sb = open_sb(db);
    static model_t m;
    model_init(&m);
    random_ops(sb, &m, 40000);
    assert_int_equal(weir_state_int_compact(sb), 0);
    uint64_t ss1, us1, ss2, us2, ss3, us3, ss4, us4;
    char *h1 = checkpoint(sb, 1, ck, "0-0", true, &ss1, &us1);
    /* checkpoint 1 never completes: its SSTs are uploaded again by checkpoint 2 */
    random_ops(sb, &m, 5);
    char *h2 = checkpoint(sb, 2, ck, "0-0", true, &ss2, &us2);
    assert_int_equal(us2, ss2);
    hinfo_t i1 = parse_handle(h1, ck), i2 = parse_handle(h2, ck);
    size_t common;
    new_shared_bytes(&i1, &i2, &common);
    assert_true(common >= 1); /* same names: re-uploaded under the same name */
    /* a confirm of a later id confirms the earlier pending uploads too (<= id) */
    weir_state_snapshot_confirm(sb, 5);
    random_ops(sb, &m, 5);
    char *h3 = checkpoint(sb, 6, ck, "0-0", true, &ss3, &us3);
    assert_true(us3 * 4 < ss3);
    /* pending uploads of 6 are not confirmed by confirm(5) (already applied), nor by an older id */
    weir_state_snapshot_confirm(sb, 5);
    random_ops(sb, &m, 5);
    char *h4 = checkpoint(sb, 7, ck, "0-0", true, &ss4, &us4);
    hinfo_t i3 = parse_handle(h3, ck), i4 = parse_handle(h4, ck);
    uint64_t fresh3 = new_shared_bytes(&i2, &i3, &common);
    assert_true(fresh3 > 0);
    /* 7 uploads again what 6 uploaded (6 never confirmed) plus its own new SSTs */
    size_t j;
    json_t *o;
    uint64_t expect = i4.private_bytes;
    json_array_foreach(json_object_get(i4.root, "shared"), j, o) {
        const char *name = json_string_value(json_object_get(o, "name"));
        if (!handle_has_shared(&i2, name, NULL))
            expect += (uint64_t)json_integer_value(json_object_get(o, "size"));
    }
    assert_int_equal(us4, expect);
    /* non-incremental: every SST is written, under checkpoint-unique names */
    uint64_t ss5, us5;
    char *h5 = checkpoint(sb, 8, ck, "0-0", false, &ss5, &us5);
    assert_int_equal(us5, ss5);
    hinfo_t i5 = parse_handle(h5, ck);
    new_shared_bytes(&i4, &i5, &common);
    assert_int_equal(common, 0);
    weir_state_close(&sb, true);
    hinfo_t *all[] = {&i1, &i2, &i3, &i4, &i5};
    for (int k = 0; k < 5; k++)
        json_decref(all[k]->root);
    free(h1);
    free(h2);
    free(h3);
    free(h4);
    free(h5);
    weir_test_tmpdir_remove(tmp);
    free(db);
    free(ck);
}

static void test_restore_errors(void **unused) {
    (void)unused;
    rng_state = 0x77;
    char *tmp = weir_test_tmpdir("snapshot");
    char *db = pjoin(tmp, "db"), *db2 = pjoin(tmp, "db2"), *ck = pjoin(tmp, "ck");
    weir_state_backend_t *sb = open_sb(db);
    static model_t m;
    model_init(&m);
    random_ops(sb, &m, 3000);
    char *h = checkpoint(sb, 4, ck, "2-1", true, NULL, NULL);
    weir_state_close(&sb, true);
    weir_state_opts_t o = opts_for(db2);
    char err[512];

    /* not JSON */
    assert_null(restore_ck(&o, DECLS, N_ST, ck, "{not json", err, sizeof(err)));
    assert_non_null(strstr(err, "not valid JSON"));
    /* JSON, wrong shape */
    assert_null(restore_ck(&o, DECLS, N_ST, ck, "[1,2]", err, sizeof(err)));
    assert_non_null(strstr(err, "handle"));
    /* path traversal in a file name */
    assert_null(restore_ck(
        &o, DECLS, N_ST, ck,
        "{\"version\":1,\"checkpoint\":4,\"task\":\"2-1\",\"max_parallelism\":64,\"states\":[],"
        "\"shared\":[{\"name\":\"../../x\",\"local\":\"000001.sst\",\"size\":1}],\"private\":[]}",
        err, sizeof(err)));
    assert_non_null(strstr(err, "bad shared file"));
    /* another max parallelism */
    weir_state_opts_t o2 = o;
    o2.max_parallelism = 128;
    assert_null(restore_ck(&o2, DECLS, N_ST, ck, h, err, sizeof(err)));
    assert_non_null(strstr(err, "max parallelism"));

    /* a truncated private file */
    hinfo_t hi = parse_handle(h, ck);
    char p[1024];
    snprintf(p, sizeof(p), "%s/chk-4/2-1/CURRENT", ck);
    uint8_t *cur;
    size_t cl;
    assert_int_equal(weir_read_file(p, &cur, &cl), 0);
    assert_int_equal(truncate(p, 3), 0);
    assert_null(restore_ck(&o, DECLS, N_ST, ck, h, err, sizeof(err)));
    assert_non_null(strstr(err, "CURRENT"));
    assert_non_null(strstr(err, "expected"));
    assert_int_equal(weir_write_file_atomic(p, cur, cl), 0);
    free(cur);
    /* a missing shared file: the clear one-line error */
    const char *victim = json_string_value(
        json_object_get(json_array_get(json_object_get(hi.root, "shared"), 0), "name"));
    snprintf(p, sizeof(p), "%s/shared/%s", ck, victim);
    char *moved = pjoin(tmp, "moved");
    assert_int_equal(rename(p, moved), 0);
    assert_null(restore_ck(&o, DECLS, N_ST, ck, h, err, sizeof(err)));
    assert_non_null(strstr(err, p));
    assert_non_null(strstr(err, "is missing"));
    assert_non_null(strstr(err, "removed or is incomplete"));
    assert_null(strchr(err, '\n'));
    /* put back: the restore works again */
    assert_int_equal(rename(moved, p), 0);
    weir_state_backend_t *r = restore(db2, ck, h);
    verify(r, &m);
    weir_state_close(&r, true);
    json_decref(hi.root);
    free(h);
    free(moved);
    weir_test_tmpdir_remove(tmp);
    free(db);
    free(db2);
    free(ck);
}

static void test_two_tasks_and_free(void **unused) {
    (void)unused;
    rng_state = 0x99;
    char *tmp = weir_test_tmpdir("snapshot");
    char *da = pjoin(tmp, "a"), *dbb = pjoin(tmp, "b"), *dr = pjoin(tmp, "r"),
         *ck = pjoin(tmp, "ck");
    weir_state_backend_t *a = open_sb(da), *b = open_sb(dbb);
    static model_t ma, mb;
    model_init(&ma);
    model_init(&mb);
    random_ops(a, &ma, 4000);
    random_ops(b, &mb, 4000);
    char *ha = checkpoint(a, 1, ck, "1-0", true, NULL, NULL);
    char *hb = checkpoint(b, 1, ck, "1-1", true, NULL, NULL);
    hinfo_t ia = parse_handle(ha, ck), ib = parse_handle(hb, ck);
    size_t common;
    new_shared_bytes(&ia, &ib, &common);
    assert_int_equal(common, 0); /* different instances never share names */
    weir_state_backend_t *r = restore(dr, ck, ha);
    verify(r, &ma);
    weir_state_close(&r, true);
    r = restore(dr, ck, hb);
    verify(r, &mb);
    weir_state_close(&r, true);
    /* a snapshot freed without upload removes its local directory */
    char err[256];
    weir_state_snapshot_t *s = weir_state_snapshot_take(a, 2, err, sizeof(err));
    assert_non_null(s);
    char *local = malloc(strlen(da) + 16);
    sprintf(local, "%s.chk-2", da);
    assert_true(exists(local));
    weir_state_snapshot_free(&s);
    assert_null(s);
    assert_false(exists(local));
    weir_state_snapshot_free(NULL);
    /* bad task names are refused */
    s = weir_state_snapshot_take(a, 3, err, sizeof(err));
    char *h = NULL;
    assert_int_equal(
        upload_to(s, ck, "../x", WEIR_UPLOAD_INCREMENTAL, &h, NULL, NULL, err, sizeof(err)),
        WEIR_EINVAL);
    weir_state_snapshot_free(&s);
    weir_state_close(&a, true);
    weir_state_close(&b, true);
    json_decref(ia.root);
    json_decref(ib.root);
    free(ha);
    free(hb);
    free(local);
    weir_test_tmpdir_remove(tmp);
    free(da);
    free(dbb);
    free(dr);
    free(ck);
}

/* ------------------------------------------------------------------------------------------ */
/* operator state redistribution                                                              */
/* ------------------------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------------------------ */
/* local recovery: the task manager's cache of shared SSTs                                     */
/* ------------------------------------------------------------------------------------------ */

/* Sorts the @p n malloc'd @p names, joins them by ' ' into a malloc'd string (@p total: the sum of
 * their lengths + 1 each, + 1) and frees them. */
static char *join_sorted(char **names, size_t n, size_t total) {
    for (size_t i = 1; i < n; i++) /* insertion sort */
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    char *out = calloc(1, total);
    assert_non_null(out);
    for (size_t i = 0; i < n; i++) {
        if (i)
            strcat(out, " ");
        strcat(out, names[i]);
        free(names[i]);
    }
    return out;
}

/* The "*.sst" names in @p dir, sorted, joined by ' ' (readdir, not weir's code). */
static char *sst_listing(const char *dir) {
    char *names[512];
    size_t n = 0, total = 1;
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (de->d_name[0] == '.' || l < 4 || strcmp(de->d_name + l - 4, ".sst") != 0)
            continue;
        assert_true(n < 512);
        names[n++] = strdup(de->d_name);
        total += l + 1;
    }
    closedir(d);
    return join_sorted(names, n, total);
}

/* The shared names of handles @p a (and @p b, may be NULL), sorted and joined like sst_listing. */
static char *shared_names(const char *a, const char *b) {
    char *names[512];
    size_t n = 0, total = 1;
    const char *hs[2] = {a, b};
    for (int k = 0; k < 2 && hs[k]; k++) {
        json_error_t je;
        json_t *r = json_loads(hs[k], 0, &je);
        assert_non_null(r);
        size_t i;
        json_t *o;
        json_array_foreach(json_object_get(r, "shared"), i, o) {
            const char *nm = json_string_value(json_object_get(o, "name"));
            bool dup = false;
            for (size_t j = 0; j < n && !dup; j++)
                dup = strcmp(names[j], nm) == 0;
            if (dup)
                continue;
            assert_true(n < 512);
            names[n++] = strdup(nm);
            total += strlen(nm) + 1;
        }
        json_decref(r);
    }
    return join_sorted(names, n, total);
}

static size_t n_private(const hinfo_t *hi) {
    return json_array_size(json_object_get(hi->root, "private"));
}

static weir_state_backend_t *restore_cached(weir_storage_env_t *env, const char *cache,
                                            const char *owner, const char *path, const char *ckdir,
                                            const char *h) {
    weir_state_opts_t o = opts_for(path);
    weir_state_fetch_t f = {.env = env, .cache_dir = cache, .owner = owner};
    char err[512];
    weir_state_backend_t *sb = weir_state_restore(&o, DECLS, N_ST, &f, ckdir, h, err, sizeof(err));
    if (!sb)
        fail_msg("restore failed: %s", err);
    return sb;
}

/* One restore on its own thread (no cmocka asserts there: the result is checked on the main one).
 */
typedef struct restore_job {
    weir_storage_env_t *env;
    const char *cache, *owner, *path, *ckdir, *h;
    weir_state_backend_t *sb;
    char err[512];
} restore_job_t;

static void *restore_thread(void *arg) {
    restore_job_t *j = arg;
    weir_state_opts_t o = opts_for(j->path);
    weir_state_fetch_t f = {.env = j->env, .cache_dir = j->cache, .owner = j->owner};
    j->sb = weir_state_restore(&o, DECLS, N_ST, &f, j->ckdir, j->h, j->err, sizeof(j->err));
    return NULL;
}

/* A restore of the same checkpoint with the same cache downloads no SST the second time (the
 * env's get counters: only the private files are fetched again); a cached file of the wrong size
 * is fetched again; the cache keeps exactly the shared files of the latest restore of each
 * owner (compared with readdir against the handles). */
static void test_local_recovery_cache(void **unused) {
    (void)unused;
    rng_state = 0x4242;
    char *tmp = weir_test_tmpdir("snapshot");
    char *db = pjoin(tmp, "db"), *r1 = pjoin(tmp, "r1"), *ck = pjoin(tmp, "ck"),
         *cache = pjoin(tmp, "local-recovery/0123456789abcdef0123456789abcdef");
    weir_state_backend_t *sb = open_sb(db);
    static model_t m1, m2;
    model_init(&m1);
    random_ops(sb, &m1, 4000);
    char *h1 = checkpoint(sb, 1, ck, "1-0", true, NULL, NULL);
    weir_state_snapshot_confirm(sb, 1);
    m2 = m1;
    random_ops(sb, &m2, 4000);
    assert_int_equal(weir_state_int_compact(sb), 0); /* a new SST set: checkpoint 2 differs */
    char *h2 = checkpoint(sb, 2, ck, "1-0", true, NULL, NULL);
    weir_state_close(&sb, true);
    hinfo_t i1 = parse_handle(h1, ck), i2 = parse_handle(h2, ck);

    char err[256];
    weir_storage_env_t *env = weir_storage_env_new(NULL, err, sizeof(err));
    assert_non_null(env);
    weir_storage_stats_t s0, s1, s2, s3;

    /* first restore: every file is downloaded, the shared ones into the cache */
    weir_storage_env_stats(env, &s0);
    weir_state_backend_t *r = restore_cached(env, cache, "1-0", r1, ck, h1);
    verify(r, &m1);
    weir_state_close(&r, true);
    weir_storage_env_stats(env, &s1);
    assert_int_equal(s1.get_requests - s0.get_requests, i1.n_shared + n_private(&i1));
    assert_int_equal(s1.get_bytes - s0.get_bytes, i1.shared_bytes + i1.private_bytes);
    char *want = shared_names(h1, NULL), *got = sst_listing(cache);
    assert_string_equal(got, want);
    free(want);
    free(got);

    /* second restore of the same checkpoint: no SST downloaded, only the private files */
    r = restore_cached(env, cache, "1-0", r1, ck, h1);
    verify(r, &m1);
    weir_state_close(&r, true);
    weir_storage_env_stats(env, &s2);
    printf("local recovery: first restore %llu gets / %llu bytes, second %llu gets / %llu bytes "
           "(%zu shared SSTs from the cache)\n",
           (unsigned long long)(s1.get_requests - s0.get_requests),
           (unsigned long long)(s1.get_bytes - s0.get_bytes),
           (unsigned long long)(s2.get_requests - s1.get_requests),
           (unsigned long long)(s2.get_bytes - s1.get_bytes), i1.n_shared);
    assert_int_equal(s2.get_requests - s1.get_requests, n_private(&i1));
    assert_int_equal(s2.get_bytes - s1.get_bytes, i1.private_bytes);

    /* a cached file of the wrong size (a half-written leftover) is fetched again */
    const char *victim = json_string_value(
        json_object_get(json_array_get(json_object_get(i1.root, "shared"), 0), "name"));
    uint64_t vsize = (uint64_t)json_integer_value(
        json_object_get(json_array_get(json_object_get(i1.root, "shared"), 0), "size"));
    char *vp = pjoin(cache, victim);
    assert_int_equal(unlink(vp), 0); /* a new inode: the checkpoint's own file is untouched */
    assert_int_equal(weir_write_file_atomic(vp, "xyz", 3), 0);
    r = restore_cached(env, cache, "1-0", r1, ck, h1);
    verify(r, &m1);
    weir_state_close(&r, true);
    weir_storage_env_stats(env, &s3);
    assert_int_equal(s3.get_requests - s2.get_requests, n_private(&i1) + 1);
    assert_int_equal(s3.get_bytes - s2.get_bytes, i1.private_bytes + vsize);
    assert_int_equal(fsize(vp), vsize);

    /* bounded growth: owner 1-0 now restores checkpoint 2, so only its files stay ... */
    r = restore_cached(env, cache, "1-0", r1, ck, h2);
    verify(r, &m2);
    weir_state_close(&r, true);
    want = shared_names(h2, NULL);
    got = sst_listing(cache);
    assert_string_equal(got, want);
    free(want);
    free(got);
    /* ... and another owner's restore of checkpoint 1 keeps both owners' files */
    r = restore_cached(env, cache, "1-1", r1, ck, h1);
    verify(r, &m1);
    weir_state_close(&r, true);
    want = shared_names(h1, h2);
    got = sst_listing(cache);
    assert_string_equal(got, want);
    free(want);
    free(got);
    /* a savepoint (self-contained: nothing cacheable) restored with the cache on: the restore
     * is exact and the cache keeps the other owners' files */
    {
        char *sp = pjoin(tmp, "sp"), *r2 = pjoin(tmp, "r2");
        sb = restore(r1, ck, h1); /* without the cache: its lists stay as they are */
        weir_state_snapshot_t *snap = weir_state_snapshot_take(sb, 7, err, sizeof(err));
        assert_non_null(snap);
        char *hs = NULL;
        assert_int_equal(upload_to(snap, sp, "1-0", WEIR_UPLOAD_SELF_CONTAINED, &hs, NULL, NULL,
                                   err, sizeof(err)),
                         0);
        weir_state_snapshot_free(&snap);
        weir_state_close(&sb, true);
        char doc[8192];
        snprintf(doc, sizeof(doc),
                 "{\"base\":\"%s\",\"claim\":false,\"max_parallelism\":64,\"range\":[0,63],"
                 "\"sources\":[{\"range\":[0,63],\"handle\":%s}]}",
                 sp, hs);
        weir_state_opts_t o = opts_for(r2);
        weir_state_fetch_t f = {.env = env, .cache_dir = cache, .owner = "1-2"};
        r = weir_state_restore_plan(&o, DECLS, N_ST, &f, doc, err, sizeof(err));
        if (!r)
            fail_msg("savepoint restore: %s", err);
        verify(r, &m1);
        weir_state_close(&r, true);
        want = shared_names(h1, h2);
        got = sst_listing(cache);
        assert_string_equal(got, want);
        free(want);
        free(got);
        free(hs);
        free(sp);
        free(r2);
    }
    /* two owners restoring at once from a cold cache (subtasks of one task manager): both exact,
     * and neither's prune removes the other's files */
    assert_int_equal(weir_rmtree(cache), 0);
    {
        char *ra = pjoin(tmp, "ra"), *rb = pjoin(tmp, "rb");
        restore_job_t ja = {
            .env = env, .cache = cache, .owner = "2-0", .path = ra, .ckdir = ck, .h = h1};
        restore_job_t jb = {
            .env = env, .cache = cache, .owner = "2-1", .path = rb, .ckdir = ck, .h = h2};
        pthread_t ta, tb;
        assert_int_equal(pthread_create(&ta, NULL, restore_thread, &ja), 0);
        assert_int_equal(pthread_create(&tb, NULL, restore_thread, &jb), 0);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        if (!ja.sb || !jb.sb)
            fail_msg("concurrent restores: %s / %s", ja.err, jb.err);
        verify(ja.sb, &m1);
        verify(jb.sb, &m2);
        weir_state_close(&ja.sb, true);
        weir_state_close(&jb.sb, true);
        want = shared_names(h1, h2);
        got = sst_listing(cache);
        assert_string_equal(got, want);
        free(want);
        free(got);
        free(ra);
        free(rb);
    }
    /* the checkpoint is intact: every file still has its recorded size (parse_handle checks) */
    hinfo_t again = parse_handle(h1, ck);
    json_decref(again.root);

    weir_storage_env_free(&env);
    json_decref(i1.root);
    json_decref(i2.root);
    free(vp);
    free(h1);
    free(h2);
    weir_test_tmpdir_remove(tmp);
    free(db);
    free(r1);
    free(ck);
    free(cache);
}

static void test_redistribute(void **unused) {
    (void)unused;
    static uint8_t pool[64];
    for (uint32_t n_old = 0; n_old <= 4; n_old++) {
        for (uint32_t n_new = 1; n_new <= 6; n_new++) {
            for (int trial = 0; trial < 4; trial++) {
                weir_opstate_elem_t lists[4][16];
                const weir_opstate_elem_t *old[4];
                size_t old_n[4], total = 0;
                for (uint32_t i = 0; i < n_old; i++) {
                    old_n[i] = (size_t)((i * 5 + (uint32_t)trial * 3) % 9);
                    for (size_t e = 0; e < old_n[i]; e++)
                        lists[i][e] = (weir_opstate_elem_t){.data = &pool[total + e], .len = e};
                    total += old_n[i];
                    old[i] = lists[i];
                }
                weir_opstate_elem_t *out[6];
                size_t out_n[6];
                /* SPLIT: every element exactly once, k-th to k mod n_new, balanced */
                assert_int_equal(weir_opstate_redistribute(WEIR_OPSTATE_SPLIT, old, old_n, n_old,
                                                           n_new, out, out_n),
                                 0);
                int seen[64] = {0};
                size_t mn = SIZE_MAX, mx = 0;
                for (uint32_t j = 0; j < n_new; j++) {
                    mn = out_n[j] < mn ? out_n[j] : mn;
                    mx = out_n[j] > mx ? out_n[j] : mx;
                    for (size_t e = 0; e < out_n[j]; e++) {
                        size_t k = (size_t)(out[j][e].data - pool);
                        assert_true(k < total);
                        assert_int_equal(k % n_new, j);
                        assert_int_equal(k / n_new, e); /* concatenation order */
                        seen[k]++;
                    }
                    free(out[j]);
                }
                for (size_t k = 0; k < total; k++)
                    assert_int_equal(seen[k], 1);
                assert_true(mx - mn <= 1);
                /* UNION: everything, in order, to every subtask */
                assert_int_equal(weir_opstate_redistribute(WEIR_OPSTATE_UNION, old, old_n, n_old,
                                                           n_new, out, out_n),
                                 0);
                for (uint32_t j = 0; j < n_new; j++) {
                    assert_int_equal(out_n[j], total);
                    for (size_t e = 0; e < total; e++)
                        assert_ptr_equal(out[j][e].data, &pool[e]);
                    free(out[j]);
                }
            }
        }
    }
    weir_opstate_elem_t *out[1];
    size_t out_n[1];
    assert_int_equal(weir_opstate_redistribute(WEIR_OPSTATE_SPLIT, NULL, NULL, 0, 0, out, out_n),
                     WEIR_EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),           cmocka_unit_test(test_incremental_and_chain),
        cmocka_unit_test(test_confirm_semantics),    cmocka_unit_test(test_restore_errors),
        cmocka_unit_test(test_two_tasks_and_free),   cmocka_unit_test(test_redistribute),
        cmocka_unit_test(test_local_recovery_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
