/* Owns the keyed timers of one operator (state/timers.h): their RocksDB layout in the timer
 * column family, the per-domain min-heaps and the hash index over every timer.
 *
 * Invariants:
 *  - a timer is in RocksDB iff it is in its domain's heap iff it is in the hash index (every
 *    mutation writes RocksDB first and changes memory only when the write succeeded);
 *  - heap[d][i]->pos == i, and each node's (ts, key) is >= its parent's (ts, then key length,
 *    then key bytes: a deterministic firing order among equal timestamps);
 *  - a node's rkey is its full RocksDB key (state/timers.h layout), so key bytes = rkey + 11.
 * Threading: the subtask thread only; no global mutable state. */
#include "state/timers.h"

#include <rocksdb/c.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"
#include "runtime/graph/keygroup.h"
#include "state/state_int.h"

#define TKEY_FIXED 11u

typedef struct tnode {
    struct tnode *next; /* hash chain */
    uint64_t hash;
    int64_t ts;
    uint32_t pos; /* index in its domain's heap */
    uint32_t len; /* key length */
    uint8_t dom;
    uint8_t rkey[]; /* TKEY_FIXED + len */
} tnode_t;

typedef struct theap {
    tnode_t **v;
    size_t n, cap;
} theap_t;

struct weir_timers {
    weir_state_backend_t *sb;
    rocksdb_column_family_handle_t *cf;
    theap_t heap[2];
    tnode_t **buckets;
    size_t nbuckets; /* power of two */
    size_t n;        /* timers in the index */
    tnode_t *popped; /* the node last returned by pop (freed by the next call) */
    uint8_t *kbuf;   /* lookup key scratch */
    size_t kcap;
};

static void put_key(uint8_t *p, uint32_t kg, int dom, int64_t ts, const void *key, uint32_t len) {
    uint64_t u = (uint64_t)ts ^ ((uint64_t)1 << 63);
    p[0] = (uint8_t)(kg >> 8);
    p[1] = (uint8_t)kg;
    p[2] = (uint8_t)dom;
    for (int i = 0; i < 8; i++)
        p[3 + i] = (uint8_t)(u >> (56 - 8 * i));
    if (len)
        memcpy(p + TKEY_FIXED, key, len);
}

static int64_t get_ts(const uint8_t *p) {
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u = u << 8 | p[3 + i];
    return (int64_t)(u ^ ((uint64_t)1 << 63));
}

static uint64_t key_hash(const uint8_t *rkey, uint32_t n) {
    uint64_t h = weir_keygroup_hash(rkey + 2, n - 2);
    return h * 0x9E3779B97F4A7C15ull ^ (uint64_t)get_ts(rkey);
}

/* a < b in firing order */
static bool before(const tnode_t *a, const tnode_t *b) {
    if (a->ts != b->ts)
        return a->ts < b->ts;
    if (a->len != b->len)
        return a->len < b->len;
    return memcmp(a->rkey + TKEY_FIXED, b->rkey + TKEY_FIXED, a->len) < 0;
}

static void heap_set(theap_t *h, size_t i, tnode_t *x) {
    h->v[i] = x;
    x->pos = (uint32_t)i;
}

static void sift_up(theap_t *h, size_t i) {
    tnode_t *x = h->v[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(x, h->v[p]))
            break;
        heap_set(h, i, h->v[p]);
        i = p;
    }
    heap_set(h, i, x);
}

static void sift_down(theap_t *h, size_t i) {
    tnode_t *x = h->v[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && before(h->v[c + 1], h->v[c]))
            c++;
        if (!before(h->v[c], x))
            break;
        heap_set(h, i, h->v[c]);
        i = c;
    }
    heap_set(h, i, x);
}

static void heap_remove(theap_t *h, size_t i) {
    tnode_t *last = h->v[--h->n];
    if (i == h->n)
        return;
    heap_set(h, i, last);
    sift_down(h, i);
    sift_up(h, last->pos);
}

static int index_grow(weir_timers_t *tm) {
    if (tm->n < tm->nbuckets)
        return 0;
    size_t nb = tm->nbuckets ? tm->nbuckets * 2 : 64;
    tnode_t **b = calloc(nb, sizeof *b);
    if (!b)
        return WEIR_ENOMEM;
    for (size_t i = 0; i < tm->nbuckets; i++) {
        for (tnode_t *x = tm->buckets[i], *nx; x; x = nx) {
            nx = x->next;
            x->next = b[x->hash & (nb - 1)];
            b[x->hash & (nb - 1)] = x;
        }
    }
    free(tm->buckets);
    tm->buckets = b;
    tm->nbuckets = nb;
    return 0;
}

/* The node of RocksDB key @p rkey (@p n bytes), or NULL; *link = the pointer to it. */
static tnode_t *find(weir_timers_t *tm, const uint8_t *rkey, uint32_t n, uint64_t h,
                     tnode_t ***link) {
    if (!tm->nbuckets)
        return NULL;
    tnode_t **l = &tm->buckets[h & (tm->nbuckets - 1)];
    for (; *l; l = &(*l)->next) {
        tnode_t *x = *l;
        if (x->hash == h && x->len + TKEY_FIXED == n && memcmp(x->rkey, rkey, n) == 0) {
            if (link)
                *link = l;
            return x;
        }
    }
    return NULL;
}

/* Adds a node for @p rkey to the index and its heap (not to RocksDB). */
static int add_node(weir_timers_t *tm, const uint8_t *rkey, uint32_t n, uint64_t h) {
    int dom = rkey[2];
    theap_t *hp = &tm->heap[dom];
    void *v = hp->v;
    if (index_grow(tm) != 0 || weir_array_grow(&v, &hp->cap, hp->n + 1, sizeof(tnode_t *), 64))
        return WEIR_ENOMEM;
    hp->v = v;
    tnode_t *x = malloc(sizeof *x + n);
    if (!x)
        return WEIR_ENOMEM;
    x->hash = h;
    x->ts = get_ts(rkey);
    x->len = n - TKEY_FIXED;
    x->dom = (uint8_t)dom;
    memcpy(x->rkey, rkey, n);
    x->next = tm->buckets[h & (tm->nbuckets - 1)];
    tm->buckets[h & (tm->nbuckets - 1)] = x;
    tm->n++;
    hp->v[hp->n] = x;
    x->pos = (uint32_t)hp->n++;
    sift_up(hp, x->pos);
    return 0;
}

/* Builds the RocksDB key of (key, dom, ts) into tm->kbuf. */
static int make_key(weir_timers_t *tm, int dom, const void *key, uint32_t len, int64_t ts,
                    uint32_t *n) {
    if (dom != WEIR_TIMER_EVENT && dom != WEIR_TIMER_PROC)
        return WEIR_EINVAL;
    if (len > ((uint32_t)1 << 30) || (len && !key))
        return WEIR_EINVAL;
    void *b = tm->kbuf;
    if (weir_array_grow(&b, &tm->kcap, TKEY_FIXED + (size_t)len, 1, 64) != 0)
        return WEIR_ENOMEM;
    tm->kbuf = b;
    uint32_t kg = weir_keygroup_of(key, len, weir_state_int_max_par(tm->sb));
    put_key(tm->kbuf, kg, dom, ts, key, len);
    *n = TKEY_FIXED + len;
    return 0;
}

static void drop_popped(weir_timers_t *tm) {
    free(tm->popped);
    tm->popped = NULL;
}

weir_timers_t *weir_timers_open(weir_state_backend_t *sb, uint32_t st, char *errstr,
                                size_t errlen) {
    rocksdb_column_family_handle_t *cf = weir_state_int_cf(sb, st);
    if (!cf) {
        weir_fmt(errstr, errlen, "timers: state %u is not declared", st);
        return NULL;
    }
    weir_timers_t *tm = weir_xcalloc(1, sizeof *tm);
    tm->sb = sb;
    tm->cf = cf;
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_fill_cache(ro, 0);
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(weir_state_int_db(sb), ro, cf);
    int rc = 0;
    for (rocksdb_iter_seek_to_first(it); rc == 0 && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kl;
        const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
        if (kl < TKEY_FIXED || kl > TKEY_FIXED + ((size_t)1 << 30) || k[2] > WEIR_TIMER_PROC) {
            weir_fmt(errstr, errlen, "timers: a stored timer key of %zu bytes is malformed", kl);
            rc = WEIR_ECORRUPT;
            break;
        }
        rc = add_node(tm, k, (uint32_t)kl, key_hash(k, (uint32_t)kl));
        if (rc != 0)
            weir_fmt(errstr, errlen, "timers: out of memory loading the timers");
    }
    char *err = NULL;
    if (rc == 0) {
        rocksdb_iter_get_error(it, &err);
        if (err) {
            weir_fmt(errstr, errlen, "timers: reading the stored timers: %s", err);
            rocksdb_free(err);
            rc = WEIR_ESTATE;
        }
    }
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    if (rc != 0)
        weir_timers_free(&tm);
    return tm;
}

void weir_timers_free(weir_timers_t **tmp) {
    weir_timers_t *tm = *tmp;
    if (!tm)
        return;
    for (int d = 0; d < 2; d++) {
        for (size_t i = 0; i < tm->heap[d].n; i++)
            free(tm->heap[d].v[i]);
        free(tm->heap[d].v);
    }
    drop_popped(tm);
    free(tm->buckets);
    free(tm->kbuf);
    free(tm);
    *tmp = NULL;
}

static int rdb_write(weir_timers_t *tm, const uint8_t *k, uint32_t n, bool put) {
    char *err = NULL;
    rocksdb_t *db = weir_state_int_db(tm->sb);
    if (put)
        rocksdb_put_cf(db, weir_state_int_wo(tm->sb), tm->cf, (const char *)k, n, "", 0, &err);
    else
        rocksdb_delete_cf(db, weir_state_int_wo(tm->sb), tm->cf, (const char *)k, n, &err);
    if (err) {
        rocksdb_free(err);
        return WEIR_ESTATE;
    }
    return 0;
}

int weir_timers_register(weir_timers_t *tm, int domain, const void *key, uint32_t len, int64_t ts) {
    uint32_t n;
    int rc = make_key(tm, domain, key, len, ts, &n);
    if (rc != 0)
        return rc;
    uint64_t h = key_hash(tm->kbuf, n);
    if (find(tm, tm->kbuf, n, h, NULL))
        return 0;
    if ((rc = rdb_write(tm, tm->kbuf, n, true)) != 0)
        return rc;
    if ((rc = add_node(tm, tm->kbuf, n, h)) != 0)
        (void)rdb_write(tm, tm->kbuf, n, false);
    return rc;
}

/* Unlinks @p x (found through @p link) from the index and its heap; the caller frees it. */
static void unlink_node(weir_timers_t *tm, tnode_t *x, tnode_t **link) {
    *link = x->next;
    tm->n--;
    heap_remove(&tm->heap[x->dom], x->pos);
}

int weir_timers_delete(weir_timers_t *tm, int domain, const void *key, uint32_t len, int64_t ts) {
    uint32_t n;
    int rc = make_key(tm, domain, key, len, ts, &n);
    if (rc != 0)
        return rc;
    tnode_t **link = NULL;
    tnode_t *x = find(tm, tm->kbuf, n, key_hash(tm->kbuf, n), &link);
    if (!x)
        return 0;
    if ((rc = rdb_write(tm, x->rkey, n, false)) != 0)
        return rc;
    unlink_node(tm, x, link);
    free(x);
    return 0;
}

int64_t weir_timers_peek(const weir_timers_t *tm, int domain) {
    const theap_t *h = &tm->heap[domain & 1];
    return h->n ? h->v[0]->ts : INT64_MAX;
}

int weir_timers_pop(weir_timers_t *tm, int domain, int64_t upto, int64_t *ts, const void **key,
                    uint32_t *len) {
    drop_popped(tm);
    theap_t *h = &tm->heap[domain & 1];
    if (!h->n || h->v[0]->ts > upto)
        return 0;
    tnode_t *x = h->v[0];
    tnode_t **link = NULL;
    (void)find(tm, x->rkey, x->len + TKEY_FIXED, x->hash, &link);
    int rc = rdb_write(tm, x->rkey, x->len + TKEY_FIXED, false);
    if (rc != 0)
        return rc;
    unlink_node(tm, x, link);
    tm->popped = x;
    *ts = x->ts;
    *key = x->rkey + TKEY_FIXED;
    *len = x->len;
    return 1;
}

size_t weir_timers_count(const weir_timers_t *tm, int domain) {
    return tm->heap[domain & 1].n;
}
