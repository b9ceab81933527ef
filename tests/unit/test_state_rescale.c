/* Unit tests of the keyed-state restore with rescaling (state/restore.c,
 * weir_state_restore_plan) and of self-contained (savepoint) uploads (state/snapshot.c):
 *  - rescale 2 -> 3 (checkpoint layout, claim), 3 -> 1 (self-contained savepoint, moved before
 *    the restore) and 1 -> 4 (full checkpoint, no claim) with value, list, map and reducing
 *    states: after the restore every key of the new subtask's key groups has exactly the value
 *    of the oracle (a plain in-test table of key -> expected contents, keys over all key
 *    groups), keys of other groups are absent (and their bytes gone), a state declared only in
 *    the new job is empty, a state only the old job declared is not copied;
 *  - no claim: the source directory tree (names, sizes, modes, mtimes and contents, digested by
 *    coreutils find + sha256sum) is identical before and after the restore, after a following
 *    checkpoint + confirm and after the restored backends are closed and removed; the first
 *    checkpoint after it uploads every byte; with claim the same-range restore references the
 *    restored SSTs instead;
 *  - a restore killed with SIGKILL at various moments (a child process running it) changes
 *    nothing under the source, and a following restore into the same directory is exact;
 *  - a missing or short file is refused before anything is created, with one line naming it;
 *    malformed restore documents are refused with one line.
 * A child mode (argv[1] == "--restore-child") runs one restore for the kill test. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <msgpack.h>
#include <rocksdb/c.h>

#include "common/err.h"
#include "common/util.h"
#include "runtime/graph/keygroup.h"
#include "state/snapshot.h"
#include "snapshot_io.h"
#include "state/state.h"
#include "state/state_int.h"
#include "testutil.h"

extern char **environ;

#define MAX_PAR 128u
#define NK 2500 /* about 20 keys per key group */
#define NU 4

/* ------------------------------------------------------------------------------------------ */
/* declarations: the old job and the new one (other order, "gone" removed, "extra" added)      */
/* ------------------------------------------------------------------------------------------ */

static void sum_reduce(const msgpack_object *acc, const msgpack_object *in, msgpack_packer *out,
                       void *udata) {
    (void)udata;
    msgpack_pack_int64(out, acc->via.i64 + in->via.i64);
}

enum { O_V, O_L, O_M, O_R, O_GONE, N_OLD };
static const weir_state_decl_t OLD_DECLS[N_OLD] = {
    {.name = "v", .kind = WEIR_STATE_VALUE},
    {.name = "l", .kind = WEIR_STATE_LIST},
    {.name = "m", .kind = WEIR_STATE_MAP},
    {.name = "r", .kind = WEIR_STATE_REDUCING, .reduce = sum_reduce},
    {.name = "gone", .kind = WEIR_STATE_VALUE},
};
enum { N_R, N_M, N_EXTRA, N_L, N_V, N_NEW };
static const weir_state_decl_t NEW_DECLS[N_NEW] = {
    {.name = "r", .kind = WEIR_STATE_REDUCING, .reduce = sum_reduce},
    {.name = "m", .kind = WEIR_STATE_MAP},
    {.name = "extra", .kind = WEIR_STATE_VALUE},
    {.name = "l", .kind = WEIR_STATE_LIST},
    {.name = "v", .kind = WEIR_STATE_VALUE},
};

static weir_state_opts_t opts_for(const char *path) {
    return (weir_state_opts_t){.path = path,
                               .max_parallelism = MAX_PAR,
                               .cache_bytes = 64 << 10, /* small: evictions happen */
                               .write_buffer_bytes = 256 << 10,
                               .block_cache_bytes = 1 << 20};
}

/* ------------------------------------------------------------------------------------------ */
/* the oracle: key index -> expected contents                                                 */
/* ------------------------------------------------------------------------------------------ */

typedef struct expect {
    int vver;     /* value state version, -1 absent */
    int lcount;   /* list elements "e-<k>-<j>", j < lcount */
    int mmask;    /* map: bit u set = user key "u<u>" holds mval(k, u) */
    int64_t rsum; /* reducing sum */
    bool rhas;
} expect_t;

static expect_t ORACLE[NK];

static int key_of(int k, char *buf) {
    return snprintf(buf, 32, "key-%d", k);
}

static uint32_t kg_of(int k) {
    char key[32];
    int n = key_of(k, key);
    return weir_keygroup_of(key, (size_t)n, MAX_PAR);
}

static void set_key(weir_state_backend_t *sb, int k) {
    char key[32];
    int n = key_of(k, key);
    weir_state_set_key(sb, key, (uint32_t)n);
}

static void pack_i64(int64_t d, char *out, uint32_t *len) {
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init(&sbuf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_int64(&pk, d);
    memcpy(out, sbuf.data, sbuf.size);
    *len = (uint32_t)sbuf.size;
    msgpack_sbuffer_destroy(&sbuf);
}

/* A permutation of the key indices (writes in hash order, not key order). */
static int PERM[NK];
static void make_perm(uint64_t seed) {
    for (int i = 0; i < NK; i++)
        PERM[i] = i;
    for (int i = NK - 1; i > 0; i--) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        int j = (int)(seed % (uint64_t)(i + 1));
        int t = PERM[i];
        PERM[i] = PERM[j];
        PERM[j] = t;
    }
}

/* Writes the old job's state into @p old_p backends (each key into the subtask owning its key
 * group) in four rounds, a snapshot taken and dropped between rounds (memtables flushed: older
 * versions, list operands and map deletions end up in different SSTs). Fills ORACLE. */
static void write_old(weir_state_backend_t **old, uint32_t old_p) {
    char buf[200], uk[8];
    uint32_t len;
    memset(ORACLE, 0, sizeof(ORACLE));
    /* the keys cover every key group */
    int per_group[MAX_PAR] = {0};
    for (int k = 0; k < NK; k++)
        per_group[kg_of(k)]++;
    for (uint32_t g = 0; g < MAX_PAR; g++)
        assert_true(per_group[g] > 0);
    make_perm(0x9e3779b9);
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < NK; i++) {
            int k = PERM[i];
            expect_t *e = &ORACLE[k];
            weir_state_backend_t *sb = old[weir_keygroup_subtask(kg_of(k), old_p, MAX_PAR)];
            set_key(sb, k);
            if (round == 0) {
                int l = weir_test_value(buf, k, 0);
                assert_int_equal(weir_state_value_put(sb, O_V, buf, (uint32_t)l), 0);
                e->vver = 0;
                for (int u = 0; u < NU; u++) {
                    int ul = snprintf(uk, sizeof(uk), "u%d", u);
                    l = weir_test_value(buf, k, 100 + u);
                    assert_int_equal(
                        weir_state_map_put(sb, O_M, uk, (uint32_t)ul, buf, (uint32_t)l), 0);
                }
                e->mmask = (1 << NU) - 1;
                l = weir_test_value(buf, k, 999);
                assert_int_equal(weir_state_value_put(sb, O_GONE, buf, (uint32_t)l), 0);
            } else if (round == 1) {
                if (k % 11 == 0) {
                    assert_int_equal(weir_state_value_clear(sb, O_V), 0);
                    e->vver = -1;
                } else {
                    int l = weir_test_value(buf, k, k % 5 + 1);
                    assert_int_equal(weir_state_value_put(sb, O_V, buf, (uint32_t)l), 0);
                    e->vver = k % 5 + 1;
                }
                for (int u = 0; u < NU; u++)
                    if (!((k % 16) >> u & 1)) {
                        int ul = snprintf(uk, sizeof(uk), "u%d", u);
                        assert_int_equal(weir_state_map_remove(sb, O_M, uk, (uint32_t)ul), 0);
                    }
                e->mmask = k % 16;
            }
            /* list: one element per round for keys with k % 5 > round */
            if (k % 5 > round) {
                int l = snprintf(buf, sizeof(buf), "e-%d-%d", k, e->lcount);
                assert_int_equal(weir_state_list_add(sb, O_L, buf, (uint32_t)l), 0);
                e->lcount++;
            }
            /* reducing: keys with k % 13 != 0, rounds 0, 2, 3 */
            if (k % 13 != 0 && round != 1) {
                int64_t d = (int64_t)(k * 7 + round) - 20000;
                pack_i64(d, buf, &len);
                assert_int_equal(weir_state_reducing_add(sb, O_R, buf, len), 0);
                e->rsum = e->rhas ? e->rsum + d : d;
                e->rhas = true;
            }
        }
        for (uint32_t s = 0; s < old_p; s++) {
            char err[256];
            weir_state_snapshot_t *snap =
                weir_state_snapshot_take(old[s], 1000 + (uint64_t)round, err, sizeof(err));
            if (!snap)
                fail_msg("take: %s", err);
            weir_state_snapshot_free(&snap);
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* verification                                                                               */
/* ------------------------------------------------------------------------------------------ */

typedef struct lctx {
    int k, n;
} lctx_t;

static int list_cb(const void *v, uint32_t len, void *arg) {
    lctx_t *c = arg;
    char want[64];
    int l = snprintf(want, sizeof(want), "e-%d-%d", c->k, c->n);
    assert_int_equal(len, (uint32_t)l);
    assert_memory_equal(v, want, len);
    c->n++;
    return 0;
}

typedef struct mctx {
    int k, mask, n;
} mctx_t;

static int map_cb(const void *uk, uint32_t ul, const void *v, uint32_t vl, void *arg) {
    mctx_t *c = arg;
    assert_true(ul == 2 && ((const char *)uk)[0] == 'u');
    int u = ((const char *)uk)[1] - '0';
    assert_true(u >= 0 && u < NU);
    assert_true(c->mask >> u & 1);
    char want[200];
    int l = weir_test_value(want, c->k, 100 + u);
    assert_int_equal(vl, (uint32_t)l);
    assert_memory_equal(v, want, vl);
    c->n++;
    return 0;
}

/* Every key: exactly the oracle when its group is in [first, last], else absent everywhere;
 * "extra" is empty. @returns the number of keys in the range. */
static int verify(weir_state_backend_t *sb, uint32_t first, uint32_t last) {
    char want[200];
    int in_range = 0;
    for (int k = 0; k < NK; k++) {
        uint32_t g = kg_of(k);
        bool mine = g >= first && g <= last;
        expect_t none = {.vver = -1};
        const expect_t *e = mine ? &ORACLE[k] : &none;
        in_range += mine;
        set_key(sb, k);
        const void *v;
        uint32_t len;
        int rc = weir_state_value_get(sb, N_V, &v, &len);
        if (e->vver < 0) {
            assert_int_equal(rc, 1);
        } else {
            assert_int_equal(rc, 0);
            int l = weir_test_value(want, k, e->vver);
            assert_int_equal(len, (uint32_t)l);
            assert_memory_equal(v, want, len);
        }
        lctx_t lc = {.k = k};
        assert_int_equal(weir_state_list_foreach(sb, N_L, list_cb, &lc), 0);
        assert_int_equal(lc.n, e->lcount);
        mctx_t mc = {.k = k, .mask = e->mmask};
        assert_int_equal(weir_state_map_foreach(sb, N_M, map_cb, &mc), 0);
        assert_int_equal(mc.n, __builtin_popcount((unsigned)e->mmask));
        rc = weir_state_reducing_get(sb, N_R, &v, &len);
        if (!e->rhas) {
            assert_int_equal(rc, 1);
        } else {
            assert_int_equal(rc, 0);
            msgpack_unpacked u;
            msgpack_unpacked_init(&u);
            assert_int_equal(msgpack_unpack_next(&u, v, len, NULL), MSGPACK_UNPACK_SUCCESS);
            int64_t got = u.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (int64_t)u.data.via.u64
                                                                         : u.data.via.i64;
            assert_int_equal(got, e->rsum);
            msgpack_unpacked_destroy(&u);
        }
        assert_int_equal(weir_state_value_get(sb, N_EXTRA, &v, &len), 1);
    }
    return in_range;
}

/* The column families of the (closed) RocksDB at @p path: "gone" is not among them, every
 * declared state is. */
static void check_families(const char *path) {
    rocksdb_options_t *o = rocksdb_options_create();
    char *err = NULL;
    size_t n = 0;
    char **names = rocksdb_list_column_families(o, path, &n, &err);
    if (err)
        fail_msg("list column families of %s: %s", path, err);
    for (size_t i = 0; i < n; i++)
        assert_string_not_equal(names[i], "gone");
    for (int s = 0; s < N_NEW; s++) {
        bool found = false;
        for (size_t i = 0; i < n; i++)
            found |= strcmp(names[i], NEW_DECLS[s].name) == 0;
        assert_true(found);
    }
    rocksdb_list_column_families_destroy(names, n);
    rocksdb_options_destroy(o);
}

/* Bytes of the *.sst files in @p dir. */
static uint64_t sst_bytes(const char *dir) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    uint64_t sum = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l < 4 || strcmp(de->d_name + l - 4, ".sst") != 0)
            continue;
        char p[2048];
        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        struct stat st;
        assert_int_equal(stat(p, &st), 0);
        sum += (uint64_t)st.st_size;
    }
    closedir(d);
    return sum;
}

/* An oracle weir did not write: coreutils' digest of every name, type, size, mode and mtime
 * under @p dir and of every file's contents. */
static void tree_digest(const char *dir, char out[65]) {
    char cmd[4096];
    snprintf(cmd, sizeof(cmd),
             "cd '%s' && { find . -printf '%%p %%y %%s %%m %%T@\\n' | LC_ALL=C sort; "
             "find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum; } | sha256sum",
             dir);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    assert_non_null(fgets(out, 65, f));
    assert_int_equal(strlen(out), 64);
    assert_int_equal(pclose(f), 0);
}

/* ------------------------------------------------------------------------------------------ */
/* snapshots and restore documents                                                            */
/* ------------------------------------------------------------------------------------------ */

static char *upload(weir_state_backend_t *sb, uint64_t id, const char *dir, const char *task,
                    weir_upload_mode_t mode, uint64_t *state_size, uint64_t *uploaded) {
    char err[512];
    weir_state_snapshot_t *s = weir_state_snapshot_take(sb, id, err, sizeof(err));
    if (!s)
        fail_msg("take failed: %s", err);
    char *h = NULL;
    uint64_t ss = 0, us = 0;
    if (upload_to(s, dir, task, mode, &h, &ss, &us, err, sizeof(err)) != 0)
        fail_msg("upload failed: %s", err);
    weir_state_snapshot_free(&s);
    if (state_size)
        *state_size = ss;
    if (uploaded)
        *uploaded = us;
    return h;
}

/* The keyed restore document of new subtask @p k of @p new_p from the @p old_p handles: every old
 * subtask whose key-group range overlaps, ascending (what the savepoint module's planner
 * builds, written here from the contract independently). */
static char *make_doc(const char *base, bool claim, uint32_t k, uint32_t new_p, uint32_t old_p,
                      char *const *handles) {
    uint32_t first, last;
    weir_keygroup_range(k, new_p, MAX_PAR, &first, &last);
    json_t *srcs = json_array();
    for (uint32_t i = 0; i < old_p; i++) {
        uint32_t a, b;
        weir_keygroup_range(i, old_p, MAX_PAR, &a, &b);
        if (b < first || a > last)
            continue;
        json_error_t je;
        json_t *h = json_loads(handles[i], 0, &je);
        assert_non_null(h);
        assert_int_equal(json_array_append_new(srcs, json_pack("{s:[i,i], s:o}", "range", (int)a,
                                                               (int)b, "handle", h)),
                         0);
    }
    json_t *doc =
        json_pack("{s:s, s:b, s:i, s:[i,i], s:o}", "base", base, "claim", claim, "max_parallelism",
                  (int)MAX_PAR, "range", (int)first, (int)last, "sources", srcs);
    assert_non_null(doc);
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return text;
}

static weir_state_backend_t *restore_doc(const char *path, const char *doc) {
    weir_state_opts_t o = opts_for(path);
    char err[1024];
    weir_state_backend_t *sb = restore_doc_plan(&o, NEW_DECLS, N_NEW, doc, err, sizeof(err));
    if (!sb)
        fail_msg("restore failed: %s", err);
    return sb;
}

static void open_old(const char *tmp, weir_state_backend_t **old, uint32_t old_p) {
    for (uint32_t i = 0; i < old_p; i++) {
        char p[1024];
        snprintf(p, sizeof(p), "%s/old-%u", tmp, i);
        weir_state_opts_t o = opts_for(p);
        char err[512];
        old[i] = weir_state_open(&o, OLD_DECLS, N_OLD, err, sizeof(err));
        if (!old[i])
            fail_msg("open: %s", err);
    }
}

/* Restores every new subtask of @p new_p from @p base and checks it: oracle, absent keys, empty
 * "extra", no "gone" family, the SST bytes of other groups gone; then a checkpoint of the
 * restored backend restores to the same contents. */
static void restore_all(const char *tmp, const char *base, bool claim, uint32_t old_p,
                        uint32_t new_p, char *const *handles, uint64_t source_sst_bytes) {
    int total = 0;
    for (uint32_t k = 0; k < new_p; k++) {
        char path[1024], path2[1024], ck[1024];
        snprintf(path, sizeof(path), "%s/new-%u-of-%u", tmp, k, new_p);
        snprintf(path2, sizeof(path2), "%s/again-%u-of-%u", tmp, k, new_p);
        snprintf(ck, sizeof(ck), "%s/ck-after-%u", tmp, new_p);
        char *doc = make_doc(base, claim, k, new_p, old_p, handles);
        weir_state_backend_t *sb = restore_doc(path, doc);
        uint32_t first, last;
        weir_keygroup_range(k, new_p, MAX_PAR, &first, &last);
        int n = verify(sb, first, last);
        assert_true(n > 0);
        total += n;
        /* the bytes of the other groups are gone (not only hidden) */
        uint64_t have = sst_bytes(path);
        double share = (double)(last - first + 1) / MAX_PAR;
        print_message("%u -> %u, subtask %u (groups %u-%u): %d keys, %llu SST bytes of %llu "
                      "(%.0f%% of the groups)\n",
                      old_p, new_p, k, first, last, n, (unsigned long long)have,
                      (unsigned long long)source_sst_bytes, share * 100);
        assert_true((double)have <= (double)source_sst_bytes * (share + 0.15) + 32768);
        /* no scratch left beside it */
        char scratch[1100];
        snprintf(scratch, sizeof(scratch), "%s.restore", path);
        struct stat st;
        assert_int_not_equal(stat(scratch, &st), 0);
        /* the restored backend checkpoints and restores like any other */
        char task[32];
        snprintf(task, sizeof(task), "9-%u", k);
        char *h = upload(sb, 7, ck, task, WEIR_UPLOAD_INCREMENTAL, NULL, NULL);
        weir_state_close(&sb, false);
        check_families(path);
        weir_state_opts_t o = opts_for(path2);
        char err[512];
        sb = restore_ck(&o, NEW_DECLS, N_NEW, ck, h, err, sizeof(err));
        if (!sb)
            fail_msg("restore of the checkpoint after the rescale: %s", err);
        assert_int_equal(verify(sb, first, last), n);
        weir_state_close(&sb, true);
        free(h);
        free(doc);
    }
    assert_int_equal(total, NK); /* the new subtasks together hold every key once */
}

static uint64_t tree_sst_bytes(const char *dir, uint32_t n, const char *fmt) {
    uint64_t sum = 0;
    for (uint32_t i = 0; i < n; i++) {
        char p[2048];
        snprintf(p, sizeof(p), fmt, dir, i);
        sum += sst_bytes(p);
    }
    return sum;
}

/* ------------------------------------------------------------------------------------------ */
/* rescale tests                                                                              */
/* ------------------------------------------------------------------------------------------ */

static void test_rescale_2_to_3(void **unused) {
    (void)unused;
    char *tmp = weir_test_tmpdir("rescale");
    weir_state_backend_t *old[2];
    open_old(tmp, old, 2);
    write_old(old, 2);
    char ck[1024], base[1100];
    snprintf(ck, sizeof(ck), "%s/ck", tmp);
    snprintf(base, sizeof(base), "%s/chk-5", ck);
    char *h[2];
    for (uint32_t i = 0; i < 2; i++) {
        char task[16];
        snprintf(task, sizeof(task), "4-%u", i);
        h[i] = upload(old[i], 5, ck, task, WEIR_UPLOAD_INCREMENTAL, NULL, NULL);
        weir_state_close(&old[i], true);
    }
    char shared[1100];
    snprintf(shared, sizeof(shared), "%s/shared", ck);
    restore_all(tmp, base, true, 2, 3, h, sst_bytes(shared));
    free(h[0]);
    free(h[1]);
    weir_test_tmpdir_remove(tmp);
}

static void test_rescale_3_to_1_moved_savepoint(void **unused) {
    (void)unused;
    char *tmp = weir_test_tmpdir("rescale");
    weir_state_backend_t *old[3];
    open_old(tmp, old, 3);
    write_old(old, 3);
    char sp[1024], moved[1024];
    snprintf(sp, sizeof(sp), "%s/savepoint-abcdef-0123456789ab", tmp);
    snprintf(moved, sizeof(moved), "%s/elsewhere", tmp);
    char *h[3];
    for (uint32_t i = 0; i < 3; i++) {
        char task[16];
        snprintf(task, sizeof(task), "2-%u", i);
        uint64_t ss, us;
        h[i] = upload(old[i], 9, sp, task, WEIR_UPLOAD_SELF_CONTAINED, &ss, &us);
        assert_int_equal(us, ss);
        /* the handle: self-contained, nothing shared, every file private and in <sp>/<task>/ */
        json_error_t je;
        json_t *j = json_loads(h[i], 0, &je);
        assert_non_null(j);
        assert_string_equal(json_string_value(json_object_get(j, "layout")), "self-contained");
        assert_int_equal(json_array_size(json_object_get(j, "shared")), 0);
        size_t x, n_sst = 0;
        json_t *o;
        uint64_t sum = 0;
        json_array_foreach(json_object_get(j, "private"), x, o) {
            const char *name = json_string_value(json_object_get(o, "name"));
            size_t l = strlen(name);
            bool is_sst = l > 4 && strcmp(name + l - 4, ".sst") == 0;
            assert_int_equal(json_is_true(json_object_get(o, "sst")), is_sst);
            n_sst += is_sst;
            char p[2048];
            snprintf(p, sizeof(p), "%s/%s/%s", sp, task, name);
            struct stat st;
            assert_int_equal(stat(p, &st), 0);
            assert_int_equal((uint64_t)st.st_size,
                             (uint64_t)json_integer_value(json_object_get(o, "size")));
            sum += (uint64_t)st.st_size;
        }
        assert_true(n_sst > 0);
        assert_int_equal(sum, ss);
        /* nothing else in the task directory (no temporaries) */
        char td[1100];
        snprintf(td, sizeof(td), "%s/%s", sp, task);
        DIR *d = opendir(td);
        assert_non_null(d);
        size_t n_ent = 0;
        struct dirent *de;
        while ((de = readdir(d)) != NULL)
            n_ent += de->d_name[0] != '.';
        closedir(d);
        assert_int_equal(n_ent, json_array_size(json_object_get(j, "private")));
        json_decref(j);
        /* nothing was registered: after confirming the savepoint's id, the next incremental
         * checkpoint still uploads every byte */
        weir_state_snapshot_confirm(old[i], 9);
        char ck[1100];
        snprintf(ck, sizeof(ck), "%s/ck-old", tmp);
        char *hc = upload(old[i], 10, ck, task, WEIR_UPLOAD_INCREMENTAL, &ss, &us);
        assert_int_equal(us, ss);
        free(hc);
        weir_state_close(&old[i], true);
    }
    /* only the task directories in the savepoint directory */
    DIR *d = opendir(sp);
    assert_non_null(d);
    struct dirent *de;
    size_t n_dirs = 0;
    while ((de = readdir(d)) != NULL)
        n_dirs += de->d_name[0] != '.';
    closedir(d);
    assert_int_equal(n_dirs, 3);
    uint64_t src_bytes = tree_sst_bytes(sp, 3, "%s/2-%u");
    /* relocatable: the directory is moved before the restore */
    assert_int_equal(rename(sp, moved), 0);
    restore_all(tmp, moved, false, 3, 1, h, src_bytes);
    for (int i = 0; i < 3; i++)
        free(h[i]);
    weir_test_tmpdir_remove(tmp);
}

static void test_rescale_1_to_4(void **unused) {
    (void)unused;
    char *tmp = weir_test_tmpdir("rescale");
    weir_state_backend_t *old[1];
    open_old(tmp, old, 1);
    write_old(old, 1);
    char ck[1024], base[1100], shared[1100];
    snprintf(ck, sizeof(ck), "%s/ck", tmp);
    snprintf(base, sizeof(base), "%s/chk-3", ck);
    snprintf(shared, sizeof(shared), "%s/shared", ck);
    char *h[1] = {upload(old[0], 3, ck, "1-0", WEIR_UPLOAD_FULL, NULL, NULL)};
    weir_state_close(&old[0], true);
    restore_all(tmp, base, false, 1, 4, h, sst_bytes(shared));
    free(h[0]);
    weir_test_tmpdir_remove(tmp);
}

/* ------------------------------------------------------------------------------------------ */
/* claim / no claim                                                                           */
/* ------------------------------------------------------------------------------------------ */

static bool any_shared_name_of(const char *h, const char *other) {
    json_error_t je;
    json_t *a = json_loads(h, 0, &je), *b = json_loads(other, 0, &je);
    assert_non_null(a);
    assert_non_null(b);
    bool found = false;
    size_t i, j;
    json_t *x, *y;
    json_array_foreach(json_object_get(a, "shared"), i, x) {
        json_array_foreach(json_object_get(b, "shared"), j, y) {
            found |= strcmp(json_string_value(json_object_get(x, "name")),
                            json_string_value(json_object_get(y, "name"))) == 0;
        }
    }
    json_decref(a);
    json_decref(b);
    return found;
}

static void test_no_claim_leaves_sources_untouched(void **unused) {
    (void)unused;
    char *tmp = weir_test_tmpdir("rescale");
    weir_state_backend_t *old[2];
    open_old(tmp, old, 2);
    write_old(old, 2);
    char ck[1024], base[1100], ck2[1024];
    snprintf(ck, sizeof(ck), "%s/ck", tmp);
    snprintf(ck2, sizeof(ck2), "%s/ck-new-job", tmp);
    snprintf(base, sizeof(base), "%s/chk-8", ck);
    char *h[2];
    for (uint32_t i = 0; i < 2; i++) {
        char task[16];
        snprintf(task, sizeof(task), "3-%u", i);
        h[i] = upload(old[i], 8, ck, task, WEIR_UPLOAD_INCREMENTAL, NULL, NULL);
        weir_state_close(&old[i], true);
    }
    char before[65], after[65];
    tree_digest(ck, before);

    /* 2 -> 3 (clip + merge) and 2 -> 2 (the fast path), no claim */
    uint32_t ps[2] = {3, 2};
    weir_state_backend_t *sbs[5];
    char *docs[5];
    uint32_t ranges[5][2];
    int n = 0;
    for (int c = 0; c < 2; c++)
        for (uint32_t k = 0; k < ps[c]; k++, n++) {
            char path[1024];
            snprintf(path, sizeof(path), "%s/noclaim-%u-of-%u", tmp, k, ps[c]);
            docs[n] = make_doc(base, false, k, ps[c], 2, h);
            sbs[n] = restore_doc(path, docs[n]);
            weir_keygroup_range(k, ps[c], MAX_PAR, &ranges[n][0], &ranges[n][1]);
            verify(sbs[n], ranges[n][0], ranges[n][1]);
        }
    tree_digest(ck, after);
    assert_string_equal(before, after);

    /* each restored backend changes a little, compacts (RocksDB deletes the restored SST names
     * it no longer needs), checkpoints and confirms: the first checkpoint is complete on its own
     * and references nothing of the source */
    for (int i = 0; i < n; i++) {
        char buf[200], task[16];
        for (int k = 0; k < NK; k += 7) {
            uint32_t g = kg_of(k);
            if (g < ranges[i][0] || g > ranges[i][1] || ORACLE[k].vver < 0)
                continue; /* the same value again: new SSTs, same contents */
            set_key(sbs[i], k);
            int l = weir_test_value(buf, k, ORACLE[k].vver);
            assert_int_equal(weir_state_value_put(sbs[i], N_V, buf, (uint32_t)l), 0);
        }
        assert_int_equal(weir_state_int_compact(sbs[i]), 0);
        snprintf(task, sizeof(task), "3-%d", i);
        uint64_t ss, us;
        char *hn = upload(sbs[i], 20, ck2, task, WEIR_UPLOAD_INCREMENTAL, &ss, &us);
        assert_int_equal(us, ss);
        assert_false(any_shared_name_of(hn, h[0]) || any_shared_name_of(hn, h[1]));
        weir_state_snapshot_confirm(sbs[i], 20);
        verify(sbs[i], ranges[i][0], ranges[i][1]);
        free(hn);
    }
    tree_digest(ck, after);
    assert_string_equal(before, after);
    for (int i = 0; i < n; i++) {
        weir_state_close(&sbs[i], true);
        free(docs[i]);
    }
    tree_digest(ck, after);
    assert_string_equal(before, after);

    /* control: with claim, the same-range restore references the restored SSTs (so the
     * restore did register them, and the no-claim figures above are not an accident) */
    char path[1024];
    snprintf(path, sizeof(path), "%s/claim-0-of-2", tmp);
    char *doc = make_doc(base, true, 0, 2, 2, h);
    weir_state_backend_t *sb = restore_doc(path, doc);
    uint64_t ss, us;
    char *hn = upload(sb, 21, ck, "3-0", WEIR_UPLOAD_INCREMENTAL, &ss, &us);
    assert_true(us * 4 < ss);
    assert_true(any_shared_name_of(hn, h[0]));
    weir_state_close(&sb, true);
    free(hn);
    free(doc);
    free(h[0]);
    free(h[1]);
    weir_test_tmpdir_remove(tmp);
}

/* ------------------------------------------------------------------------------------------ */
/* kill -9 during a restore                                                                   */
/* ------------------------------------------------------------------------------------------ */

/* The child: restores <doc file> into <path> and exits 0. */
static int restore_child(const char *doc_file, const char *path) {
    uint8_t *doc;
    size_t len;
    if (weir_read_file(doc_file, &doc, &len) != 0)
        return 2;
    char *text = malloc(len + 1);
    memcpy(text, doc, len);
    text[len] = '\0';
    weir_state_opts_t o = opts_for(path);
    char err[1024];
    weir_state_backend_t *sb = restore_doc_plan(&o, NEW_DECLS, N_NEW, text, err, sizeof(err));
    if (!sb) {
        fprintf(stderr, "child restore failed: %s\n", err);
        return 1;
    }
    weir_state_close(&sb, false);
    free(text);
    free(doc);
    return 0;
}

static void test_kill_during_restore(void **unused) {
    (void)unused;
    char *tmp = weir_test_tmpdir("rescale");
    weir_state_backend_t *old[2];
    open_old(tmp, old, 2);
    write_old(old, 2);
    char sp[1024];
    snprintf(sp, sizeof(sp), "%s/sp", tmp);
    char *h[2];
    for (uint32_t i = 0; i < 2; i++) {
        char task[16];
        snprintf(task, sizeof(task), "5-%u", i);
        h[i] = upload(old[i], 2, sp, task, WEIR_UPLOAD_SELF_CONTAINED, NULL, NULL);
        weir_state_close(&old[i], true);
    }
    char before[65], after[65];
    tree_digest(sp, before);
    /* new subtask 1 of 3: one source restored whole and clipped, the other merged */
    char *doc = make_doc(sp, false, 1, 3, 2, h);
    char doc_file[1100], path[1100], exe[1024];
    snprintf(doc_file, sizeof(doc_file), "%s/doc.json", tmp);
    snprintf(path, sizeof(path), "%s/killed", tmp);
    assert_int_equal(weir_write_file_atomic(doc_file, doc, strlen(doc)), 0);
    ssize_t el = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    assert_true(el > 0);
    exe[el] = '\0';
    /* kills after 0, 0.5, 2.5, 10.5, 42.5, ... ms until a run completes; past 1 s (a slow
     * machine) the child is left to finish */
    int finished = 0;
    for (int delay_us = 0; finished < 1; delay_us = delay_us * 4 + 500) {
        pid_t pid;
        char *argv[] = {exe, "--restore-child", doc_file, path, NULL};
        assert_int_equal(posix_spawn(&pid, exe, NULL, NULL, argv, environ), 0);
        if (delay_us <= 1000000) {
            usleep((useconds_t)delay_us);
            kill(pid, SIGKILL);
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (WIFEXITED(status)) {
            assert_int_equal(WEXITSTATUS(status), 0);
            finished++;
        }
        /* the sources are untouched, and a restore over whatever was left is exact */
        tree_digest(sp, after);
        assert_string_equal(before, after);
        weir_state_backend_t *sb = restore_doc(path, doc);
        uint32_t first, last;
        weir_keygroup_range(1, 3, MAX_PAR, &first, &last);
        verify(sb, first, last);
        weir_state_close(&sb, false);
        print_message("killed after %d us: %s\n", delay_us,
                      WIFEXITED(status) ? "it had finished" : "killed");
    }
    assert_true(finished > 0);
    free(doc);
    free(h[0]);
    free(h[1]);
    weir_test_tmpdir_remove(tmp);
}

/* ------------------------------------------------------------------------------------------ */
/* refusals                                                                                   */
/* ------------------------------------------------------------------------------------------ */

static void refuse(const char *path, const char *doc, const char *want1, const char *want2) {
    weir_state_opts_t o = opts_for(path);
    char err[1024] = "";
    assert_null(restore_doc_plan(&o, NEW_DECLS, N_NEW, doc, err, sizeof(err)));
    print_message("refused: %s\n", err);
    if (!strstr(err, want1) || (want2 && !strstr(err, want2)))
        fail_msg("message '%s' lacks '%s' / '%s'", err, want1, want2 ? want2 : "");
    assert_null(strchr(err, '\n'));
    struct stat st;
    assert_int_not_equal(stat(path, &st), 0); /* nothing was created */
}

static void test_missing_or_short_file_refused(void **unused) {
    (void)unused;
    char *tmp = weir_test_tmpdir("rescale");
    weir_state_backend_t *old[2];
    open_old(tmp, old, 2);
    write_old(old, 2);
    char sp[1024], ck[1024], ckbase[1100];
    snprintf(sp, sizeof(sp), "%s/sp", tmp);
    snprintf(ck, sizeof(ck), "%s/ck", tmp);
    snprintf(ckbase, sizeof(ckbase), "%s/chk-4", ck);
    char *h[2], *hc[2];
    for (uint32_t i = 0; i < 2; i++) {
        char task[16];
        snprintf(task, sizeof(task), "6-%u", i);
        h[i] = upload(old[i], 4, sp, task, WEIR_UPLOAD_SELF_CONTAINED, NULL, NULL);
        hc[i] = upload(old[i], 4, ck, task, WEIR_UPLOAD_INCREMENTAL, NULL, NULL);
        weir_state_close(&old[i], true);
    }
    char *doc = make_doc(sp, false, 0, 1, 2, h); /* 2 -> 1: both sources */
    char *cdoc = make_doc(ckbase, true, 0, 1, 2, hc);
    char path[1100];
    snprintf(path, sizeof(path), "%s/new", tmp);

    /* an SST of the second (merged) source is missing */
    json_error_t je;
    json_t *j = json_loads(h[1], 0, &je);
    const char *victim = NULL;
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(j, "private"), i, o) {
        if (json_is_true(json_object_get(o, "sst")))
            victim = json_string_value(json_object_get(o, "name"));
    }
    assert_non_null(victim);
    char vp[2048], moved[1100];
    snprintf(vp, sizeof(vp), "%s/6-1/%s", sp, victim);
    snprintf(moved, sizeof(moved), "%s/moved.sst", tmp);
    assert_int_equal(rename(vp, moved), 0);
    refuse(path, doc, vp, "is missing");
    assert_int_equal(rename(moved, vp), 0);
    /* a short file (a new file in its place: the original is a hard link of the same inode as
     * the checkpoint's copy, so it must not be truncated in place) */
    uint8_t *data;
    size_t dl;
    assert_int_equal(weir_read_file(vp, &data, &dl), 0);
    assert_int_equal(rename(vp, moved), 0);
    assert_int_equal(weir_write_file_atomic(vp, data, dl - 1), 0);
    char want[64];
    snprintf(want, sizeof(want), "has %zu bytes, expected %zu", dl - 1, dl);
    refuse(path, doc, vp, want);
    assert_int_equal(rename(moved, vp), 0);
    free(data);
    json_decref(j);
    /* checkpoint layout: a missing private file (in chk-4/<task>/) and a missing shared SST */
    snprintf(vp, sizeof(vp), "%s/6-0/CURRENT", ckbase);
    assert_int_equal(rename(vp, moved), 0);
    refuse(path, cdoc, vp, "is missing");
    assert_int_equal(rename(moved, vp), 0);
    j = json_loads(hc[1], 0, &je);
    snprintf(vp, sizeof(vp), "%s/shared/%s", ck,
             json_string_value(
                 json_object_get(json_array_get(json_object_get(j, "shared"), 0), "name")));
    json_decref(j);
    assert_int_equal(rename(vp, moved), 0);
    refuse(path, cdoc, vp, "is missing");
    assert_int_equal(rename(moved, vp), 0);
    /* with the checkpoint intact the restore works */
    weir_state_backend_t *sb = restore_doc(path, cdoc);
    verify(sb, 0, MAX_PAR - 1);
    weir_state_close(&sb, true);
    free(doc);
    free(cdoc);
    for (int k = 0; k < 2; k++) {
        free(h[k]);
        free(hc[k]);
    }
    weir_test_tmpdir_remove(tmp);
}

static void test_bad_documents(void **unused) {
    (void)unused;
    char *tmp = weir_test_tmpdir("rescale");
    char path[1100];
    snprintf(path, sizeof(path), "%s/new", tmp);
    const char *h = "{\"version\":1,\"checkpoint\":1,\"task\":\"1-0\",\"shared\":[],"
                    "\"private\":[],\"max_parallelism\":128,\"states\":[]}";
    char doc[2048];
    refuse(path, "{nope", "not valid JSON", NULL);
    refuse(path, "[]", "keyed restore document", NULL);
    refuse(path,
           "{\"base\":\"/x\",\"claim\":false,\"max_parallelism\":64,\"range\":[0,63],"
           "\"sources\":[]}",
           "max parallelism 64", "128");
    refuse(path,
           "{\"base\":\"/x\",\"claim\":false,\"max_parallelism\":128,\"range\":[5,128],"
           "\"sources\":[]}",
           "\"range\"", "< 128");
    refuse(path, "{\"base\":\"/x\",\"max_parallelism\":128,\"range\":[0,1],\"sources\":[]}",
           "claim", NULL);
    snprintf(doc, sizeof(doc),
             "{\"base\":\"/x\",\"claim\":false,\"max_parallelism\":128,\"range\":[0,127],"
             "\"sources\":[{\"range\":[0,70],\"handle\":%s},{\"range\":[60,127],\"handle\":%s}]}",
             h, h);
    refuse(path, doc, "overlap", NULL);
    snprintf(doc, sizeof(doc),
             "{\"base\":\"/x\",\"claim\":false,\"max_parallelism\":128,\"range\":[0,127],"
             "\"sources\":[{\"range\":[0,127],\"handle\":{\"version\":1,\"checkpoint\":1,"
             "\"task\":\"1-0\",\"shared\":[],\"private\":[],\"max_parallelism\":128,"
             "\"layout\":\"zip\"}}]}");
    refuse(path, doc, "unknown layout 'zip'", NULL);
    snprintf(doc, sizeof(doc),
             "{\"base\":\"/x\",\"claim\":false,\"max_parallelism\":128,\"range\":[0,127],"
             "\"sources\":[{\"range\":[0,127],\"handle\":{\"version\":1,\"checkpoint\":1,"
             "\"task\":\"1-0\",\"shared\":[],\"private\":[],\"max_parallelism\":256}}]}");
    refuse(path, doc, "max parallelism 256", NULL);
    snprintf(doc, sizeof(doc),
             "{\"base\":\"/x\",\"claim\":false,\"max_parallelism\":128,\"range\":[0,127],"
             "\"sources\":[{\"range\":[0,127],\"handle\":{\"version\":1,\"checkpoint\":1,"
             "\"task\":\"1-0\",\"shared\":[],\"private\":[{\"name\":\"../x\",\"size\":1}],"
             "\"max_parallelism\":128}}]}");
    refuse(path, doc, "bad private file entry 0", NULL);
    /* no overlapping source: an empty backend */
    weir_state_backend_t *sb =
        restore_doc(path, "{\"base\":\"/nonexistent\",\"claim\":false,\"max_parallelism\":128,"
                          "\"range\":[0,127],\"sources\":[]}");
    verify(sb, 1, 0);
    weir_state_close(&sb, true);
    weir_test_tmpdir_remove(tmp);
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "--restore-child") == 0)
        return restore_child(argv[2], argv[3]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rescale_2_to_3),
        cmocka_unit_test(test_rescale_3_to_1_moved_savepoint),
        cmocka_unit_test(test_rescale_1_to_4),
        cmocka_unit_test(test_no_claim_leaves_sources_untouched),
        cmocka_unit_test(test_kill_during_restore),
        cmocka_unit_test(test_missing_or_short_file_refused),
        cmocka_unit_test(test_bad_documents),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
