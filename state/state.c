/* Owns the keyed state backend: one RocksDB instance per stateful subtask (WAL off, one column
 * family per declared state plus "default"), the key layout of state/state.h, a bounded
 * write-back cache in front of value and reducing states (entry buffers from its own slab), the
 * batched prefetch of a batch's keys into that cache (one MultiGet per state), the list merge
 * operator ([u32 LE len][bytes] concatenation), map prefix scans, and state time to live (an expiry
 * in front of each value / list element / map value, checked on every read, removed lazily on read
 * and by a per-compaction RocksDB compaction filter).
 *
 * Invariants:
 *  - every cache entry holds (state index, full RocksDB key, value bytes or "absent", dirty bit);
 *    a clean entry equals what RocksDB holds; a dirty "absent" entry is a pending delete.
 *  - sb->bytes is the accounted size of all live entries; after any cache operation it is at most
 *    the budget, except for the one entry the operation returns (never evicted by it). With the
 *    task manager's shared memory (sb->mem, state/memory.h) the budget is what this backend
 *    reserved from the shared write-back budget (grown in chunks when full, returned at close).
 *  - dirty entries reach RocksDB only through one WriteBatch: on eviction, when the dirty bytes
 *    pass dirty_limit (a quarter of the memtable size), or in weir_state_flush(). Every dirty
 *    entry's index is in the dirty list (which may also hold stale or duplicate indices).
 *  - pointers returned by get functions point into the cache or a backend scratch buffer and stay
 *    valid until the next call on this backend.
 *  - sb->memo, when set, is the entry of (memo_st, current key): cleared by set_key and by every
 *    cache_remove. A prefetch only adds clean entries equal to RocksDB's value (or absent).
 *  - a TTL state's values (cache entries included) always hold their expiry (state.h layout);
 *    nothing expired (expiry <= clock) is returned.
 * Threading: a backend is used by one thread (its subtask) only; no global mutable state. The
 * TTL compaction filters run on RocksDB's compaction threads: each compaction has its own
 * filter, their shared configuration is immutable, and they call the (thread-safe) clock. A
 * backend with TTL states also owns one cleaner thread (ttl_cleaner_t): it reads only what is
 * immutable after open (the DB, the TTL states' column families, durations and the clock),
 * owns the per-state times of the last cleanup, and is stopped and joined before the DB closes. */
#include "state/state.h"

#include <errno.h>
#include <msgpack.h>
#include <pthread.h>
#include <rocksdb/c.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "runtime/graph/keygroup.h"
#include "state/memory_int.h"
#include "state/state_int.h"

#define COMP "state"
#define DEFAULT_CACHE_BYTES ((size_t)32 << 20)
#define DEFAULT_WRITE_BUFFER_BYTES ((size_t)16 << 20)
#define DEFAULT_BLOCK_CACHE_BYTES ((size_t)16 << 20)
#define KEY_PREFIX_FIXED 6u             /* key group u16 + key length u32 */
#define MAX_KEY_LEN ((uint32_t)1 << 30) /* keeps every length computation in uint32 */
#define ENTRY_OVERHEAD (sizeof(centry_t) + sizeof(uint32_t) + 16u)
#define NO_ENTRY UINT32_MAX
#define PREFETCH_VCAP 16u /* value room of a prefetched entry before its value is known */

enum { F_USED = 1, F_DIRTY = 2, F_ABSENT = 4, F_REF = 8, F_VICTIM = 16 /* cache_evict only */ };

/* One cache entry. buf holds klen key bytes followed by vcap bytes of value room. */
typedef struct centry {
    uint64_t hash;
    uint8_t *buf;
    uint32_t next; /* hash chain or free list: index + 1, 0 = end */
    uint32_t st;
    uint32_t klen, vlen, vcap;
    uint8_t flags;
} centry_t;

/* The TTL compaction filter's configuration of one state: owned by its filter factory (freed by
 * the factory's destructor, which RocksDB calls when the last options/DB reference goes). Read
 * by compaction threads; immutable after open. */
typedef struct ttl_cfg {
    weir_state_kind_t kind;
    int64_t (*clock_ms)(void *arg); /* thread-safe (state.h) */
    void *clock_arg;
} ttl_cfg_t;

/* One compaction's filter: used by that compaction's thread only. */
typedef struct ttl_filter {
    const ttl_cfg_t *cfg;
    int64_t now;  /* the clock when the compaction started */
    uint8_t *buf; /* rewritten list values (valid until the next call) */
    size_t cap;
} ttl_filter_t;

typedef struct sstate {
    char *name;
    weir_state_kind_t kind;
    weir_reduce_fn reduce;
    void *reduce_udata;
    rocksdb_column_family_handle_t *cf;
    int64_t ttl;                /* ms; 0 = no time to live (values carry no expiry) */
    bool refresh_on_read;       /* WEIR_TTL_ON_READ_AND_WRITE */
    rocksdb_options_t *cf_opts; /* TTL states: sb->opts + the compaction filter factory */
} sstate_t;

/* The background TTL cleanup (weir_state_opts_t.ttl_cleanup_ms): a thread waking every
 * period_ms of the monotonic clock for weir_state_int_ttl_cleanup. mu guards stop only. */
typedef struct ttl_cleaner {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool running, stop;
    int64_t period_ms;
    int64_t *last; /* per state: TTL clock at the last cleanup (or the open) */
} ttl_cleaner_t;

/* The memory of cache entries' buffers (key + value room, at most SLAB_MAX bytes; larger ones
 * are malloc'ed): 16-byte size classes, each with a free list threaded through the first word of
 * its free blocks, carved from SLAB_CHUNK-byte chunks that are freed only with the backend. So
 * the churn of a cache far smaller than the key space (an insert and an eviction per record)
 * costs no malloc/free; the chunks hold at most the cache's peak (its budget plus one
 * operation's overshoot). */
#define SLAB_MAX 512u
#define SLAB_CHUNK ((size_t)256 << 10)
typedef struct slab {
    void *free[SLAB_MAX / 16];
    uint8_t **chunks;
    size_t n_chunks, cap_chunks;
    uint8_t *cur; /* the unused rest of the newest chunk */
    size_t left;
} slab_t;

/* A sort record of write_sorted: the entry's state and first 14 key bytes as two big-endian
 * integers (RocksDB's bytewise order up to there), the entry index. */
typedef struct sortrec {
    uint64_t a; /* state << 48 | key bytes 0..5 (key group, key length) */
    uint64_t b; /* key bytes 6..13, zero-padded */
    uint32_t idx;
} sortrec_t;

/* One key queued by weir_state_prefetch_key: its RocksDB key (klen bytes at off in the arena)
 * and hash_bytes of it. */
typedef struct pf_key {
    size_t off;
    uint64_t khash;
    uint32_t klen;
} pf_key_t;

/* The prefetch queue (weir_state_prefetch_key, weir_state_prefetch): the keys of one batch in
 * arena order; after weir_state_prefetch ran (ran), weir_state_set_key takes the encoded key and
 * hash of queued key `next` when it is the key being set. The lookup arrays (RocksDB's in/out
 * arrays and the cache entry of each key looked up) are one block (mem) of cap keys. */
typedef struct weir_prefetch {
    pf_key_t *q;
    size_t qcap;
    uint32_t n, next;
    bool ran;
    uint8_t *arena;
    size_t acap, used;
    uint8_t *mem;
    uint32_t cap;
    uint32_t *idx; /* the cache entry of each key looked up */
    const char **keys;
    size_t *sizes;
    rocksdb_pinnableslice_t **vals;
    char **errs;
} weir_prefetch_t;

struct weir_state_backend {
    char *path;
    uint32_t max_par;
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_block_based_table_options_t *bbto;
    rocksdb_cache_t *bcache; /* own block cache (NULL with shared memory) */
    /* the task manager's shared memory (state/memory.h), NULL: own cache, memtables and
     * write-back budget; with it, budget is the reservation taken from its state-cache budget */
    weir_state_memory_t *mem;
    rocksdb_writeoptions_t *wo;
    rocksdb_readoptions_t *ro;
    rocksdb_writebatch_t *batch;
    rocksdb_column_family_handle_t **cfs; /* every opened handle (default, states, extras) */
    uint32_t n_cfs;
    sstate_t *st;
    uint32_t n_st;

    /* current key: [kg u16 BE][len u32 BE][key] (namespace empty) */
    uint8_t *kbuf;
    size_t kcap;
    uint32_t klen;
    uint64_t khash;
    int key_err; /* 0 when a key is set, else the error to return */
    /* the entry of (memo_st, current key) cache_get returned last, + 1 (0: none): a put after a
     * get of the same key finds it without a lookup; cleared by set_key and cache_remove */
    uint32_t memo, memo_st;

    uint8_t *scratch; /* map keys, list operands */
    size_t scap;
    uint8_t *out; /* map_get results */
    size_t ocap;

    /* write-back cache */
    centry_t *ent;
    uint32_t n_ent, cap_ent, free_head, n_live, hand;
    uint32_t *buckets;
    uint32_t nbuckets; /* power of two */
    size_t budget, bytes;
    weir_state_stats_t stats;
    /* dirty list: indices of entries that became dirty since the last write-back (may hold
     * stale or duplicate indices: write-back skips entries that are not dirty) */
    uint32_t *dirty;
    uint32_t n_dirty, cap_dirty;
    uint32_t *victims; /* cache_evict's scratch: the entries it removes */
    size_t cap_victims;
    size_t dirty_bytes, dirty_limit; /* write back everything dirty above the limit */

    msgpack_zone zone;
    bool zone_ok;
    msgpack_sbuffer sbuf;
    msgpack_packer pk;

    weir_snapreg_t *snapreg; /* snapshot.c's registry (NULL until the first take/restore) */
    weir_prefetch_t pf;
    slab_t slab;
    sortrec_t *sorted; /* write_sorted's scratch */
    size_t cap_sorted;

    int64_t (*clock_ms)(void *arg); /* TTL clock (weir_wall_ms when the options gave none) */
    void *clock_arg;
    int64_t ttl_cleanup_ms; /* weir_state_opts_t.ttl_cleanup_ms */
    ttl_cleaner_t cleaner;
};

/* ------------------------------------------------------------------------------------------ */
/* helpers                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static int rdb_err(const char *what, const char *path, char *err) {
    WEIR_ERROR(COMP, "rocksdb %s failed on %s: %s", what, path, err ? err : "?");
    rocksdb_free(err);
    return WEIR_ESTATE;
}

/* Room for @p need bytes in a scratch buffer (at least 64, doubling). The check that it already
 * fits stays inline: it runs on every key and operand. 0 or WEIR_ENOMEM. */
static inline int grow(uint8_t **buf, size_t *cap, size_t need) {
    if (need <= *cap && *buf)
        return 0;
    void *p = *buf;
    int rc = weir_array_grow(&p, cap, need, 1, 64);
    *buf = p;
    return rc;
}

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static uint64_t hash_bytes(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a 64 */
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* The cache hash of (state @p st, a RocksDB key whose hash_bytes is @p khash). */
static uint64_t entry_hash(uint64_t khash, uint32_t st) {
    return mix64(khash ^ ((uint64_t)(st + 1) * 0x9e3779b97f4a7c15ULL));
}

/* ------------------------------------------------------------------------------------------ */
/* time to live: [expiry i64 LE] in front of a value (state.h)                                */
/* ------------------------------------------------------------------------------------------ */

#define TTL_HDR 8u

static int64_t wall_clock(void *arg) {
    (void)arg;
    return weir_wall_ms();
}

static void put_i64le(uint8_t *p, int64_t v) {
    uint64_t u = (uint64_t)v;
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(u >> (8 * i));
}

static int64_t get_i64le(const uint8_t *p) {
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u |= (uint64_t)p[i] << (8 * i);
    return (int64_t)u;
}

static uint32_t get_u32le(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_u32le(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static int64_t now_ms(const weir_state_backend_t *sb) {
    return sb->clock_ms(sb->clock_arg);
}

/* The expiry of a value written now to a state with time to live @p ttl (saturating). */
static int64_t expiry_from(int64_t now, int64_t ttl) {
    return now > INT64_MAX - ttl ? INT64_MAX : now + ttl;
}

/* Expired when the expiry is at or before @p now (Flink's rule). */
static bool expired(const uint8_t *hdr, int64_t now) {
    return get_i64le(hdr) <= now;
}

/* The compaction filter: 1 drops the entry. Values shorter than their layout are kept (a read
 * reports them as corrupt). A list keeps its live elements (rewritten into the filter's buffer). */
static unsigned char ttl_filter(void *state, int level, const char *key, size_t klen,
                                const char *val, size_t vlen, char **new_val, size_t *new_len,
                                unsigned char *changed) {
    (void)level;
    (void)key;
    (void)klen;
    ttl_filter_t *f = state;
    const uint8_t *v = (const uint8_t *)val;
    if (f->cfg->kind != WEIR_STATE_LIST)
        return vlen >= TTL_HDR && expired(v, f->now);
    size_t off = 0, live = 0, dead = 0;
    while (vlen - off >= 4 + TTL_HDR) {
        size_t el = 4 + TTL_HDR + get_u32le(v + off);
        if (el > vlen - off)
            return 0; /* truncated: leave it to the read */
        if (expired(v + off + 4, f->now))
            dead++;
        else
            live += el;
        off += el;
    }
    if (off != vlen || dead == 0)
        return 0;
    if (live == 0)
        return 1;
    if (live > f->cap) {
        uint8_t *nb = realloc(f->buf, live);
        if (!nb)
            return 0; /* keep everything: reads still hide the expired elements */
        f->buf = nb;
        f->cap = live;
    }
    size_t w = 0;
    for (off = 0; off < vlen;) {
        size_t el = 4 + TTL_HDR + get_u32le(v + off);
        if (!expired(v + off + 4, f->now)) {
            memcpy(f->buf + w, v + off, el);
            w += el;
        }
        off += el;
    }
    *new_val = (char *)f->buf;
    *new_len = w;
    *changed = 1;
    return 0;
}

static void ttl_filter_destroy(void *state) {
    ttl_filter_t *f = state;
    free(f->buf);
    free(f);
}

static const char *ttl_filter_name(void *state) {
    (void)state;
    return "weir.ttl.v1";
}

static rocksdb_compactionfilter_t *ttl_filter_create(void *state,
                                                     rocksdb_compactionfiltercontext_t *ctx) {
    (void)ctx;
    const ttl_cfg_t *cfg = state;
    ttl_filter_t *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->cfg = cfg;
    f->now = cfg->clock_ms(cfg->clock_arg);
    return rocksdb_compactionfilter_create(f, ttl_filter_destroy, ttl_filter, ttl_filter_name);
}

static void ttl_cfg_destroy(void *state) {
    free(state);
}

static int check(const weir_state_backend_t *sb, uint32_t st, weir_state_kind_t kind) {
    if (!sb || st >= sb->n_st || sb->st[st].kind != kind)
        return WEIR_EINVAL;
    return sb->key_err;
}

/* ------------------------------------------------------------------------------------------ */
/* write-back cache                                                                           */
/* ------------------------------------------------------------------------------------------ */

/* A block of @p n bytes (n a multiple of 16, > 0) for an entry buffer; NULL when out of memory. */
static void *slab_alloc(slab_t *s, size_t n) {
    if (n > SLAB_MAX)
        return malloc(n);
    void **head = &s->free[n / 16 - 1];
    if (*head) {
        void *p = *head;
        memcpy(head, p, sizeof(void *));
        return p;
    }
    if (s->left < n) {
        if (s->n_chunks == s->cap_chunks) {
            void *c = s->chunks;
            if (weir_array_grow(&c, &s->cap_chunks, s->n_chunks + 1, sizeof *s->chunks, 16) != 0)
                return NULL;
            s->chunks = c;
        }
        uint8_t *c = malloc(SLAB_CHUNK); /* the rest of the previous chunk (< n bytes) is lost */
        if (!c)
            return NULL;
        s->chunks[s->n_chunks++] = c;
        s->cur = c;
        s->left = SLAB_CHUNK;
    }
    void *p = s->cur;
    s->cur += n;
    s->left -= n;
    return p;
}

/* Returns a block of slab_alloc(@p n). */
static void slab_free(slab_t *s, void *p, size_t n) {
    if (!p)
        return;
    if (n > SLAB_MAX) {
        free(p);
        return;
    }
    void **head = &s->free[n / 16 - 1];
    memcpy(p, head, sizeof(void *));
    *head = p;
}

static void slab_destroy(slab_t *s) {
    for (size_t i = 0; i < s->n_chunks; i++)
        free(s->chunks[i]);
    free(s->chunks);
    memset(s, 0, sizeof *s);
}

/* The slab size of an entry buffer of @p klen key bytes and @p vcap value bytes. */
static size_t buf_size(uint32_t klen, uint32_t vcap) {
    return ((size_t)klen + vcap + 15u) & ~(size_t)15u;
}

/* The entry of (state @p st, RocksDB key @p k of @p kl bytes) whose cache hash is @p h, or
 * NO_ENTRY. */
static uint32_t cache_find(weir_state_backend_t *sb, uint32_t st, uint64_t h, const uint8_t *k,
                           uint32_t kl) {
    uint32_t b = sb->buckets[h & (sb->nbuckets - 1)];
    while (b) {
        centry_t *e = &sb->ent[b - 1];
        if (e->hash == h && e->st == st && e->klen == kl && memcmp(e->buf, k, kl) == 0)
            return b - 1;
        b = e->next;
    }
    return NO_ENTRY;
}

static void cache_link(weir_state_backend_t *sb, uint32_t idx) {
    centry_t *e = &sb->ent[idx];
    uint32_t *head = &sb->buckets[e->hash & (sb->nbuckets - 1)];
    e->next = *head;
    *head = idx + 1;
}

static int cache_rehash(weir_state_backend_t *sb) {
    uint32_t nb = sb->nbuckets * 2;
    uint32_t *b = calloc(nb, sizeof(*b));
    if (!b)
        return WEIR_ENOMEM;
    free(sb->buckets);
    sb->buckets = b;
    sb->nbuckets = nb;
    for (uint32_t i = 0; i < sb->n_ent; i++)
        if (sb->ent[i].flags & F_USED)
            cache_link(sb, i);
    return 0;
}

/* Inserts RocksDB key @p k (@p kl bytes) of state @p st with room for @p vcap value bytes
 * (absent, clean). */
static int cache_insert(weir_state_backend_t *sb, uint32_t st, uint64_t h, const uint8_t *k,
                        uint32_t kl, uint32_t vcap, uint32_t *out) {
    if (sb->n_live >= sb->nbuckets && cache_rehash(sb) != 0)
        return WEIR_ENOMEM;
    uint32_t idx;
    if (sb->free_head) {
        idx = sb->free_head - 1;
    } else {
        if (sb->n_ent == sb->cap_ent) {
            void *ne = sb->ent;
            size_t nc = sb->cap_ent;
            if (weir_array_grow(&ne, &nc, (size_t)sb->n_ent + 1, sizeof(centry_t), 256) != 0)
                return WEIR_ENOMEM;
            sb->ent = ne;
            sb->cap_ent = (uint32_t)nc;
        }
        idx = sb->n_ent;
    }
    vcap = (vcap + 15u) & ~15u;
    uint8_t *buf = slab_alloc(&sb->slab, buf_size(kl, vcap));
    if (!buf)
        return WEIR_ENOMEM;
    if (sb->free_head)
        sb->free_head = sb->ent[idx].next;
    else
        sb->n_ent++;
    centry_t *e = &sb->ent[idx];
    memcpy(buf, k, kl);
    *e = (centry_t){.hash = h,
                    .buf = buf,
                    .st = st,
                    .klen = kl,
                    .vlen = 0,
                    .vcap = vcap,
                    .flags = F_USED | F_ABSENT | F_REF};
    cache_link(sb, idx);
    sb->n_live++;
    sb->bytes += ENTRY_OVERHEAD + kl + vcap;
    *out = idx;
    return 0;
}

static void cache_remove(weir_state_backend_t *sb, uint32_t idx) {
    centry_t *e = &sb->ent[idx];
    uint32_t *pp = &sb->buckets[e->hash & (sb->nbuckets - 1)];
    while (*pp != idx + 1)
        pp = &sb->ent[*pp - 1].next;
    *pp = e->next;
    sb->bytes -= ENTRY_OVERHEAD + e->klen + e->vcap;
    slab_free(&sb->slab, e->buf, buf_size(e->klen, e->vcap));
    *e = (centry_t){.next = sb->free_head};
    sb->memo = 0;
    sb->free_head = idx + 1;
    sb->n_live--;
}

/* Room for one more index in the dirty list (so marking an entry dirty cannot fail). */
static int dirty_reserve(weir_state_backend_t *sb) {
    if (sb->n_dirty < sb->cap_dirty)
        return 0;
    void *nd = sb->dirty;
    size_t nc = sb->cap_dirty;
    if (weir_array_grow(&nd, &nc, (size_t)sb->n_dirty + 1, sizeof(uint32_t), 1024) != 0)
        return WEIR_ENOMEM;
    sb->dirty = nd;
    sb->cap_dirty = (uint32_t)nc;
    return 0;
}

/* Marks an entry dirty (after dirty_reserve); a clean entry joins the dirty list. */
static void set_dirty(weir_state_backend_t *sb, uint32_t idx) {
    centry_t *e = &sb->ent[idx];
    if (!(e->flags & F_DIRTY)) {
        sb->dirty[sb->n_dirty++] = idx;
        sb->dirty_bytes += e->klen + e->vlen;
    }
    e->flags |= F_DIRTY | F_REF;
}

/* Stores a value in an entry (in place when it fits): for a state with time to live the expiry
 * (now + ttl) then the bytes. @p val may point into the entry. */
static int cache_set_value(weir_state_backend_t *sb, uint32_t idx, const void *val, uint32_t len) {
    if (dirty_reserve(sb) != 0)
        return WEIR_ENOMEM;
    centry_t *e = &sb->ent[idx];
    const sstate_t *s = &sb->st[e->st];
    uint32_t hl = s->ttl ? TTL_HDR : 0;
    if (len > UINT32_MAX - hl)
        return WEIR_EINVAL;
    uint8_t hdr[TTL_HDR];
    if (hl)
        put_i64le(hdr, expiry_from(now_ms(sb), s->ttl));
    if (hl + len > e->vcap) {
        uint32_t ncap = (hl + len + 15u) & ~15u;
        uint8_t *nb = slab_alloc(&sb->slab, buf_size(e->klen, ncap));
        if (!nb)
            return WEIR_ENOMEM;
        memcpy(nb, e->buf, e->klen);
        if (len)
            memcpy(nb + e->klen + hl, val, len);
        slab_free(&sb->slab, e->buf, buf_size(e->klen, e->vcap));
        e->buf = nb;
        sb->bytes += ncap - e->vcap;
        e->vcap = ncap;
    } else if (len) {
        memmove(e->buf + e->klen + hl, val, len);
    }
    if (hl)
        memcpy(e->buf + e->klen, hdr, hl);
    e->vlen = hl + len;
    e->flags &= (uint8_t)~F_ABSENT;
    set_dirty(sb, idx);
    return 0;
}

static void batch_add(rocksdb_writebatch_t *b, const sstate_t *s, const centry_t *e) {
    if (e->flags & F_ABSENT)
        rocksdb_writebatch_delete_cf(b, s->cf, (const char *)e->buf, e->klen);
    else
        rocksdb_writebatch_put_cf(b, s->cf, (const char *)e->buf, e->klen,
                                  (const char *)e->buf + e->klen, e->vlen);
}

/* Big-endian integer of the up to 8 bytes of @p p[from..to) within @p n bytes (zero-padded). */
static uint64_t be_bytes(const uint8_t *p, uint32_t n, uint32_t from, uint32_t to) {
    uint64_t v = 0;
    for (uint32_t i = from; i < to; i++)
        v = v << 8 | (i < n ? p[i] : 0);
    return v;
}

/* RocksDB's order (bytewise, shorter first on a tie), states apart: the prefixes, then the bytes
 * from 14 on (the first 14 are equal when a and b are). */
static int sortrec_cmp(const void *pa, const void *pb, void *arg) {
    const sortrec_t *x = pa, *y = pb;
    if (x->a != y->a)
        return x->a < y->a ? -1 : 1;
    if (x->b != y->b)
        return x->b < y->b ? -1 : 1;
    const centry_t *ent = arg, *ex = &ent[x->idx], *ey = &ent[y->idx];
    uint32_t m = ex->klen < ey->klen ? ex->klen : ey->klen;
    int c = m > 14 ? memcmp(ex->buf + 14, ey->buf + 14, m - 14) : 0;
    return c ? c : (ex->klen > ey->klen) - (ex->klen < ey->klen);
}

/* Writes the entries @p idx[0..n) (sorted here by state and key: the memtable inserts then walk
 * the skiplist in order, each starting from the previous one's position) in one WriteBatch. The
 * sort runs on sortrec_t copies of the key prefixes (no entry is read while sorting unless two
 * share 14 key bytes). */
static int write_sorted(weir_state_backend_t *sb, const uint32_t *idx, uint32_t n,
                        const char *why) {
    if (n == 0)
        return 0;
    if (n > sb->cap_sorted) {
        void *p = sb->sorted;
        if (weir_array_grow(&p, &sb->cap_sorted, n, sizeof *sb->sorted, 1024) != 0)
            return WEIR_ENOMEM;
        sb->sorted = p;
    }
    for (uint32_t i = 0; i < n; i++) {
        const centry_t *e = &sb->ent[idx[i]];
        sb->sorted[i] = (sortrec_t){.a = (uint64_t)e->st << 48 | be_bytes(e->buf, e->klen, 0, 6),
                                    .b = be_bytes(e->buf, e->klen, 6, 14),
                                    .idx = idx[i]};
    }
    qsort_r(sb->sorted, n, sizeof *sb->sorted, sortrec_cmp, sb->ent);
    rocksdb_writebatch_clear(sb->batch);
    for (uint32_t i = 0; i < n; i++) {
        const centry_t *e = &sb->ent[sb->sorted[i].idx];
        batch_add(sb->batch, &sb->st[e->st], e);
    }
    char *err = NULL;
    rocksdb_write(sb->db, sb->wo, sb->batch, &err);
    rocksdb_writebatch_clear(sb->batch);
    return err ? rdb_err(why, sb->path, err) : 0;
}

/* Writes every dirty entry (from the dirty list) to RocksDB in one WriteBatch; they stay cached,
 * clean. */
static int write_back(weir_state_backend_t *sb, const char *why) {
    uint32_t n = 0; /* the dirty list, compacted in place to its live dirty entries */
    for (uint32_t i = 0; i < sb->n_dirty; i++) {
        centry_t *e = &sb->ent[sb->dirty[i]];
        if ((e->flags & (F_USED | F_DIRTY)) == (F_USED | F_DIRTY)) {
            e->flags &= (uint8_t)~F_DIRTY; /* a duplicate index is skipped */
            sb->dirty[n++] = sb->dirty[i];
        }
    }
    sb->n_dirty = n;
    int rc = write_sorted(sb, sb->dirty, n, why);
    if (rc != 0) {
        for (uint32_t i = 0; i < n; i++) /* still dirty: a retry writes them */
            sb->ent[sb->dirty[i]].flags |= F_DIRTY;
        return rc;
    }
    sb->n_dirty = 0;
    sb->dirty_bytes = 0;
    sb->stats.flushed_entries += n;
    return 0;
}

/* With shared memory: takes more of the task manager's state-cache budget for a cache above its
 * reservation. @returns true when the cache fits now. Out of the record path (called only when
 * the cache is full). */
static bool grow_budget(weir_state_backend_t *sb) {
    size_t got = weir__state_memory_reserve(sb->mem, sb->budget, sb->bytes);
    sb->budget += got;
    return sb->bytes <= sb->budget;
}

/* CLOCK eviction down to 7/8 of the budget; dirty victims go to RocksDB in one WriteBatch
 * before any victim leaves the cache (a failed write loses nothing). The entry @p keep (the one
 * the caller returns) is never evicted. */
static int cache_evict(weir_state_backend_t *sb, uint32_t keep) {
    if (sb->dirty_bytes > sb->dirty_limit) {
        int rc = write_back(sb, "write (dirty limit)");
        if (rc != 0)
            return rc;
    }
    if (sb->bytes <= sb->budget)
        return 0;
    if (sb->mem && grow_budget(sb))
        return 0;
    size_t target = sb->budget - sb->budget / 8;
    uint32_t keep_live = keep != NO_ENTRY ? 1 : 0;
    uint32_t n_vict = 0, n_dirty = 0;
    size_t freed = 0;
    /* victims: dirty ones first (from the front), clean ones from the back */
    if (sb->cap_victims < sb->n_live) {
        void *nv = sb->victims;
        size_t nc = sb->cap_victims;
        if (weir_array_grow(&nv, &nc, sb->n_live, sizeof(uint32_t), 1024) != 0)
            return WEIR_ENOMEM;
        sb->victims = nv;
        sb->cap_victims = nc;
    }
    uint32_t n_clean = 0, cap = (uint32_t)sb->cap_victims;
    while (sb->bytes - freed > target && sb->n_live - n_vict > keep_live) {
        if (sb->hand >= sb->n_ent)
            sb->hand = 0;
        uint32_t idx = sb->hand++;
        centry_t *e = &sb->ent[idx];
        if (!(e->flags & F_USED) || idx == keep || (e->flags & F_VICTIM))
            continue;
        if (e->flags & F_REF) {
            e->flags &= (uint8_t)~F_REF;
            continue;
        }
        e->flags |= F_VICTIM;
        freed += ENTRY_OVERHEAD + e->klen + e->vcap;
        n_vict++;
        if (e->flags & F_DIRTY)
            sb->victims[n_dirty++] = idx;
        else
            sb->victims[cap - ++n_clean] = idx;
    }
    int rc = write_sorted(sb, sb->victims, n_dirty, "write (cache eviction)");
    if (rc != 0) {
        for (uint32_t i = 0; i < n_dirty; i++)
            sb->ent[sb->victims[i]].flags &= (uint8_t)~F_VICTIM;
        for (uint32_t i = 0; i < n_clean; i++)
            sb->ent[sb->victims[cap - 1 - i]].flags &= (uint8_t)~F_VICTIM;
        return rc;
    }
    for (uint32_t i = 0; i < n_dirty; i++)
        cache_remove(sb, sb->victims[i]);
    for (uint32_t i = 0; i < n_clean; i++)
        cache_remove(sb, sb->victims[cap - 1 - i]);
    sb->stats.evictions += n_vict;
    return 0;
}

/* Finds (or creates) the cache entry of the current key in state @p st. With @p load a miss
 * reads RocksDB (a missing key becomes a "known absent" entry); without, a miss creates an
 * absent entry without reading (the caller overwrites it). */
static int cache_get(weir_state_backend_t *sb, uint32_t st, bool load, uint32_t *out) {
    uint32_t idx = sb->memo && sb->memo_st == st ? sb->memo - 1 : NO_ENTRY;
    uint64_t h = 0;
    if (idx == NO_ENTRY) {
        h = entry_hash(sb->khash, st);
        idx = cache_find(sb, st, h, sb->kbuf, sb->klen);
    }
    if (idx != NO_ENTRY) {
        sb->ent[idx].flags |= F_REF;
        sb->stats.cache_hits++;
        sb->memo = idx + 1;
        sb->memo_st = st;
        *out = idx;
        return 0;
    }
    int rc;
    if (!load) {
        rc = cache_insert(sb, st, h, sb->kbuf, sb->klen, 0, &idx);
        if (rc != 0)
            return rc;
        sb->memo = idx + 1;
        sb->memo_st = st;
        *out = idx;
        return 0;
    }
    sb->stats.cache_misses++;
    char *err = NULL;
    rocksdb_pinnableslice_t *ps = rocksdb_get_pinned_cf(sb->db, sb->ro, sb->st[st].cf,
                                                        (const char *)sb->kbuf, sb->klen, &err);
    if (err)
        return rdb_err("get", sb->path, err);
    size_t vlen = 0;
    const char *v = ps ? rocksdb_pinnableslice_value(ps, &vlen) : NULL;
    if (vlen > UINT32_MAX) {
        rocksdb_pinnableslice_destroy(ps);
        return WEIR_ECORRUPT;
    }
    rc = cache_insert(sb, st, h, sb->kbuf, sb->klen, (uint32_t)vlen, &idx);
    if (rc == 0 && ps) {
        centry_t *e = &sb->ent[idx];
        if (vlen)
            memcpy(e->buf + e->klen, v, vlen);
        e->vlen = (uint32_t)vlen;
        e->flags &= (uint8_t)~F_ABSENT;
    }
    rocksdb_pinnableslice_destroy(ps);
    if (rc != 0)
        return rc;
    sb->memo = idx + 1;
    sb->memo_st = st;
    *out = idx;
    return cache_evict(sb, idx);
}

int weir_state_flush(weir_state_backend_t *sb) {
    if (!sb)
        return WEIR_EINVAL;
    return write_back(sb, "write (flush)");
}

void weir_state_get_stats(const weir_state_backend_t *sb, weir_state_stats_t *out) {
    if (!out)
        return;
    if (!sb) {
        memset(out, 0, sizeof(*out));
        return;
    }
    *out = sb->stats;
    out->cache_bytes = sb->bytes;
}

/* ------------------------------------------------------------------------------------------ */
/* internal accessors for snapshot.c (state_int.h)                                            */
/* ------------------------------------------------------------------------------------------ */

rocksdb_t *weir_state_int_db(const weir_state_backend_t *sb) {
    return sb->db;
}

bool weir_state_int_idle(const weir_state_backend_t *sb) {
    uint64_t a = 0, b = 0, c = 0, d = 0;
    rocksdb_property_int(sb->db, "rocksdb.num-running-compactions", &a);
    rocksdb_property_int(sb->db, "rocksdb.compaction-pending", &b);
    rocksdb_property_int(sb->db, "rocksdb.num-running-flushes", &c);
    rocksdb_property_int(sb->db, "rocksdb.mem-table-flush-pending", &d);
    return a + b + c + d == 0;
}

const char *weir_state_int_path(const weir_state_backend_t *sb) {
    return sb->path;
}

uint32_t weir_state_int_max_par(const weir_state_backend_t *sb) {
    return sb->max_par;
}

uint32_t weir_state_int_n_states(const weir_state_backend_t *sb) {
    return sb->n_st;
}

const char *weir_state_int_state_name(const weir_state_backend_t *sb, uint32_t i) {
    return i < sb->n_st ? sb->st[i].name : NULL;
}

weir_snapreg_t **weir_state_int_snapreg(weir_state_backend_t *sb) {
    return &sb->snapreg;
}

rocksdb_options_t *weir_state_int_options(const weir_state_backend_t *sb) {
    return sb->opts;
}

rocksdb_writeoptions_t *weir_state_int_wo(const weir_state_backend_t *sb) {
    return sb->wo;
}

rocksdb_column_family_handle_t *weir_state_int_cf(const weir_state_backend_t *sb, uint32_t i) {
    return i < sb->n_st ? sb->st[i].cf : NULL;
}

int weir_state_int_drop_undeclared(weir_state_backend_t *sb, char *errstr, size_t errlen) {
    char *err = NULL;
    uint32_t w = 0;
    for (uint32_t j = 0; j < sb->n_cfs; j++) {
        bool declared = false;
        for (uint32_t i = 0; i < sb->n_st && !declared; i++)
            declared = sb->st[i].cf == sb->cfs[j];
        if (declared) {
            sb->cfs[w++] = sb->cfs[j];
            continue;
        }
        if (j == 0) { /* "default" cannot be dropped: empty it (keys start with a key group) */
            static const char end[] = "\xff\xff\xff\xff\xff\xff\xff\xff";
            rocksdb_delete_range_cf(sb->db, sb->wo, sb->cfs[0], "", 0, end, sizeof(end) - 1, &err);
            sb->cfs[w++] = sb->cfs[0];
        } else {
            rocksdb_drop_column_family(sb->db, sb->cfs[j], &err);
            if (!err)
                rocksdb_column_family_handle_destroy(sb->cfs[j]);
            else
                sb->cfs[w++] = sb->cfs[j];
        }
        if (err) {
            weir_fmt(errstr, errlen,
                     "state backend: cannot remove undeclared column family %u of %s: %s", j,
                     sb->path, err);
            rocksdb_free(err);
            for (uint32_t k = j + 1; k < sb->n_cfs; k++)
                sb->cfs[w++] = sb->cfs[k];
            sb->n_cfs = w;
            return WEIR_ESTATE;
        }
    }
    sb->n_cfs = w;
    return 0;
}

int weir_state_int_compact(weir_state_backend_t *sb) {
    int rc = weir_state_flush(sb);
    if (rc != 0)
        return rc;
    for (uint32_t i = 0; i < sb->n_cfs; i++)
        rocksdb_compact_range_cf(sb->db, sb->cfs[i], NULL, 0, NULL, 0);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* background TTL cleanup                                                                     */
/* ------------------------------------------------------------------------------------------ */

#define TTL_CLEANUP_MIN_MS 1000 /* default interval floor (a TTL of 100 ms: every second) */

static int64_t cleanup_interval(const weir_state_backend_t *sb, uint32_t i) {
    if (sb->ttl_cleanup_ms > 0)
        return sb->ttl_cleanup_ms;
    return sb->st[i].ttl > TTL_CLEANUP_MIN_MS ? sb->st[i].ttl : TTL_CLEANUP_MIN_MS;
}

static uint64_t cf_prop(const weir_state_backend_t *sb, uint32_t i, const char *name) {
    uint64_t v = 0;
    return rocksdb_property_int_cf(sb->db, sb->st[i].cf, name, &v) == 0 ? v : 0;
}

uint32_t weir_state_int_ttl_cleanup(weir_state_backend_t *sb) {
    uint32_t n = 0;
    for (uint32_t i = 0; i < sb->n_st && sb->cleaner.last; i++) {
        if (!sb->st[i].ttl || !sb->st[i].cf)
            continue;
        int64_t now = sb->clock_ms(sb->clock_arg);
        if (now - sb->cleaner.last[i] < cleanup_interval(sb, i))
            continue;
        if (!cf_prop(sb, i, "rocksdb.total-sst-files-size") &&
            !cf_prop(sb, i, "rocksdb.num-entries-active-mem-table") &&
            !cf_prop(sb, i, "rocksdb.num-entries-imm-mem-tables"))
            continue; /* empty: nothing can expire until the next write */
        sb->cleaner.last[i] = now;
        /* flushes the memtable, then every level down to the bottom one, and the bottom level
         * itself (kForceOptimized: a file moved there without a rewrite, as a lone level-0 file
         * may be, goes through the filter too); automatic compactions may run meanwhile */
        rocksdb_compactoptions_t *co = rocksdb_compactoptions_create();
        rocksdb_compactoptions_set_exclusive_manual_compaction(co, 0);
        rocksdb_compactoptions_set_bottommost_level_compaction(co, 3 /* kForceOptimized */);
        rocksdb_compact_range_cf_opt(sb->db, sb->st[i].cf, co, NULL, 0, NULL, 0);
        rocksdb_compactoptions_destroy(co);
        WEIR_DEBUG(COMP, "%s: TTL cleanup of state '%s': %llu bytes of SST files left", sb->path,
                   sb->st[i].name,
                   (unsigned long long)cf_prop(sb, i, "rocksdb.total-sst-files-size"));
        n++;
    }
    return n;
}

static void *cleaner_main(void *arg) {
    weir_state_backend_t *sb = arg;
    ttl_cleaner_t *c = &sb->cleaner;
    pthread_mutex_lock(&c->mu);
    while (!c->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += (time_t)(c->period_ms / 1000);
        ts.tv_nsec += (long)(c->period_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        int rc = 0;
        while (!c->stop && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&c->cv, &c->mu, &ts);
        if (c->stop)
            break;
        pthread_mutex_unlock(&c->mu);
        weir_state_int_ttl_cleanup(sb);
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* Sets the per-state last-cleanup times to now and, unless disabled, starts the cleaner thread
 * (only when a state has a TTL). 0, or -1 when out of memory or the thread cannot start. */
static int cleaner_start(weir_state_backend_t *sb) {
    ttl_cleaner_t *c = &sb->cleaner;
    int64_t period = INT64_MAX;
    for (uint32_t i = 0; i < sb->n_st; i++)
        if (sb->st[i].ttl) {
            int64_t iv = cleanup_interval(sb, i);
            period = iv < period ? iv : period;
        }
    if (period == INT64_MAX)
        return 0;
    if (!(c->last = calloc(sb->n_st, sizeof(*c->last))))
        return -1;
    int64_t now = sb->clock_ms(sb->clock_arg);
    for (uint32_t i = 0; i < sb->n_st; i++)
        c->last[i] = now;
    if (sb->ttl_cleanup_ms < 0)
        return 0;
    /* a quarter of the shortest interval: a family is cleaned at most a quarter late */
    c->period_ms = period / 4 < 10 ? 10 : period / 4 > 60000 ? 60000 : period / 4;
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0)
        return -1;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0)
        return -1;
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        pthread_cond_destroy(&c->cv);
        return -1;
    }
    if (pthread_create(&c->thread, NULL, cleaner_main, sb) != 0) {
        pthread_mutex_destroy(&c->mu);
        pthread_cond_destroy(&c->cv);
        return -1;
    }
    c->running = true;
    return 0;
}

/* Stops and joins the cleaner (a running cleanup compaction is cancelled); before the DB
 * closes. */
static void cleaner_stop(weir_state_backend_t *sb) {
    ttl_cleaner_t *c = &sb->cleaner;
    if (c->running) {
        pthread_mutex_lock(&c->mu);
        c->stop = true;
        pthread_cond_signal(&c->cv);
        pthread_mutex_unlock(&c->mu);
        rocksdb_disable_manual_compaction(sb->db); /* the DB is closing: cancel, do not wait */
        pthread_join(c->thread, NULL);
        pthread_mutex_destroy(&c->mu);
        pthread_cond_destroy(&c->cv);
        c->running = false;
    }
    free(c->last);
    c->last = NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* list merge operator: concatenation of [u32 LE len][bytes] elements                         */
/* ------------------------------------------------------------------------------------------ */

static char *concat(const char *first, size_t first_len, const char *const *ops,
                    const size_t *op_lens, int n, unsigned char *success, size_t *new_len) {
    size_t total = first_len;
    for (int i = 0; i < n; i++)
        total += op_lens[i];
    char *r = malloc(total ? total : 1);
    if (!r) {
        *success = 0;
        return NULL;
    }
    size_t off = 0;
    if (first_len) {
        memcpy(r, first, first_len);
        off = first_len;
    }
    for (int i = 0; i < n; i++) {
        if (op_lens[i])
            memcpy(r + off, ops[i], op_lens[i]);
        off += op_lens[i];
    }
    *success = 1;
    *new_len = total;
    return r;
}

static char *list_full_merge(void *state, const char *key, size_t key_len, const char *existing,
                             size_t existing_len, const char *const *ops, const size_t *op_lens,
                             int n, unsigned char *success, size_t *new_len) {
    (void)state;
    (void)key;
    (void)key_len;
    return concat(existing, existing ? existing_len : 0, ops, op_lens, n, success, new_len);
}

static char *list_partial_merge(void *state, const char *key, size_t key_len,
                                const char *const *ops, const size_t *op_lens, int n,
                                unsigned char *success, size_t *new_len) {
    (void)state;
    (void)key;
    (void)key_len;
    return concat(NULL, 0, ops, op_lens, n, success, new_len);
}

static void list_delete_value(void *state, const char *value, size_t len) {
    (void)state;
    (void)len;
    free((void *)value);
}

static const char *list_merge_name(void *state) {
    (void)state;
    return "weir.list.append.v1";
}

static void list_merge_destroy(void *state) {
    (void)state;
}

/* ------------------------------------------------------------------------------------------ */
/* open / close / key                                                                         */
/* ------------------------------------------------------------------------------------------ */

static void free_backend(weir_state_backend_t *sb) {
    cleaner_stop(sb);
    weir_snapreg_free(sb->snapreg);
    if (sb->mem) /* before the DB closes: the memory report reads it */
        weir__state_memory_detach(sb->mem, sb->db, sb->budget);
    for (uint32_t i = 0; i < sb->n_cfs; i++)
        if (sb->cfs[i])
            rocksdb_column_family_handle_destroy(sb->cfs[i]);
    if (sb->db)
        rocksdb_close(sb->db);
    if (sb->opts)
        rocksdb_options_destroy(sb->opts);
    if (sb->bbto)
        rocksdb_block_based_options_destroy(sb->bbto);
    if (sb->bcache)
        rocksdb_cache_destroy(sb->bcache);
    if (sb->wo)
        rocksdb_writeoptions_destroy(sb->wo);
    if (sb->ro)
        rocksdb_readoptions_destroy(sb->ro);
    if (sb->batch)
        rocksdb_writebatch_destroy(sb->batch);
    free(sb->cfs);
    for (uint32_t i = 0; i < sb->n_st; i++) {
        free(sb->st[i].name);
        if (sb->st[i].cf_opts) /* releases its filter factory (after the DB closed) */
            rocksdb_options_destroy(sb->st[i].cf_opts);
    }
    free(sb->st);
    for (uint32_t i = 0; i < sb->n_ent; i++) /* the larger ones; the chunks hold the rest */
        if (sb->ent[i].flags & F_USED)
            slab_free(&sb->slab, sb->ent[i].buf, buf_size(sb->ent[i].klen, sb->ent[i].vcap));
    slab_destroy(&sb->slab);
    free(sb->sorted);
    free(sb->ent);
    free(sb->dirty);
    free(sb->victims);
    free(sb->buckets);
    free(sb->kbuf);
    free(sb->scratch);
    free(sb->out);
    free(sb->pf.mem);
    free(sb->pf.q);
    free(sb->pf.arena);
    if (sb->zone_ok)
        msgpack_zone_destroy(&sb->zone);
    msgpack_sbuffer_destroy(&sb->sbuf);
    free(sb->path);
    free(sb);
}

static rocksdb_options_t *make_options(weir_state_backend_t *sb, const weir_state_opts_t *o) {
    size_t wb = o->memory               ? weir__state_memory_write_buffer(o->memory)
                : o->write_buffer_bytes ? o->write_buffer_bytes
                                        : DEFAULT_WRITE_BUFFER_BYTES;
    size_t bc = o->block_cache_bytes ? o->block_cache_bytes : DEFAULT_BLOCK_CACHE_BYTES;
    rocksdb_options_t *opt = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(opt, 1);
    rocksdb_options_set_create_missing_column_families(opt, 1);
    rocksdb_options_set_write_buffer_size(opt, wb);
    if (o->memory) /* the memtables of every DB of the task manager, charged to its cache */
        weir__rdb_options_set_wbm(opt, weir__state_memory_wbm(o->memory));
    else
        rocksdb_options_set_db_write_buffer_size(opt, wb); /* total over all column families */
    rocksdb_options_set_max_write_buffer_number(opt, 2);
    /* reads of keys a memtable does not hold stop at a whole-key bloom filter (2 % of the
     * memtable) instead of walking its skiplist: without checkpoints memtables fill to
     * write_buffer_bytes (about 500,000 small entries, two of them) before a flush */
    rocksdb_options_set_memtable_prefix_bloom_size_ratio(opt, 0.02);
    rocksdb_options_set_memtable_whole_key_filtering(opt, 1);
    rocksdb_options_set_max_background_jobs(opt, 2);
    /* checkpoints add a level-0 file each: compact early, stall late */
    rocksdb_options_set_compaction_style(opt, rocksdb_universal_compaction);
    rocksdb_options_set_level0_file_num_compaction_trigger(opt, 4);
    rocksdb_options_set_level0_slowdown_writes_trigger(opt, 40);
    rocksdb_options_set_level0_stop_writes_trigger(opt, 60);
    rocksdb_options_set_keep_log_file_num(opt, 2);
    rocksdb_options_set_max_log_file_size(opt, 1 << 20);
    sb->bbto = rocksdb_block_based_options_create();
    if (o->memory) {
        /* the shared cache holds index and filter blocks too (high priority, level 0 pinned):
         * table readers then need no memory beside it (README.md "Memory") */
        rocksdb_block_based_options_set_block_cache(sb->bbto, weir__state_memory_cache(o->memory));
        rocksdb_block_based_options_set_cache_index_and_filter_blocks(sb->bbto, 1);
        rocksdb_block_based_options_set_cache_index_and_filter_blocks_with_high_priority(sb->bbto,
                                                                                         1);
        rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(sb->bbto, 1);
    } else {
        sb->bcache = rocksdb_cache_create_lru(bc);
        rocksdb_block_based_options_set_block_cache(sb->bbto, sb->bcache);
    }
    /* reads of keys a file does not hold (first touch of a key, or a key in another file) stop
     * at a whole-key bloom filter instead of an index and data block */
    rocksdb_block_based_options_set_filter_policy(sb->bbto,
                                                  rocksdb_filterpolicy_create_bloom_full(10));
    rocksdb_block_based_options_set_whole_key_filtering(sb->bbto, 1);
    rocksdb_block_based_options_set_format_version(sb->bbto, 5);
    /* a key found in a data block is found by a hash of the block's keys, not a binary search */
    rocksdb_block_based_options_set_data_block_index_type(
        sb->bbto, rocksdb_block_based_table_data_block_index_type_binary_search_and_hash);
    rocksdb_block_based_options_set_data_block_hash_ratio(sb->bbto, 0.75);
    rocksdb_options_set_block_based_table_factory(opt, sb->bbto);
    /* owned by the options from here on (do not destroy it ourselves) */
    rocksdb_options_set_merge_operator(
        opt, rocksdb_mergeoperator_create(NULL, list_merge_destroy, list_full_merge,
                                          list_partial_merge, list_delete_value, list_merge_name));
    return opt;
}

/* The column-family options of TTL state @p i: the backend's plus the compaction filter factory
 * (owned by the options, then shared with the DB). NULL when out of memory. */
static rocksdb_options_t *ttl_options(weir_state_backend_t *sb, uint32_t i) {
    ttl_cfg_t *cfg = calloc(1, sizeof(*cfg));
    if (!cfg)
        return NULL;
    *cfg =
        (ttl_cfg_t){.kind = sb->st[i].kind, .clock_ms = sb->clock_ms, .clock_arg = sb->clock_arg};
    rocksdb_options_t *o = rocksdb_options_create_copy(sb->opts);
    rocksdb_options_set_compaction_filter_factory(
        o, rocksdb_compactionfilterfactory_create(cfg, ttl_cfg_destroy, ttl_filter_create,
                                                  ttl_filter_name));
    return o;
}

weir_state_backend_t *weir_state_open(const weir_state_opts_t *opts,
                                      const weir_state_decl_t *states, uint32_t n_states,
                                      char *errstr, size_t errlen) {
    char **existing = NULL;
    size_t n_existing = 0;
    const char **names = NULL;
    const rocksdb_options_t **cfopts = NULL;
    char *err = NULL;
    if (errstr && errlen)
        errstr[0] = '\0';
    if (!opts || !opts->path || !opts->path[0] || (n_states && !states)) {
        weir_fmt(errstr, errlen, "state backend: missing path or state declarations");
        return NULL;
    }
    uint32_t max_par = opts->max_parallelism ? opts->max_parallelism : WEIR_DEFAULT_MAX_PARALLELISM;
    if (max_par > WEIR_MAX_MAX_PARALLELISM) {
        weir_fmt(errstr, errlen, "state backend: max parallelism %u exceeds %u", max_par,
                 WEIR_MAX_MAX_PARALLELISM);
        return NULL;
    }
    weir_state_backend_t *sb = calloc(1, sizeof(*sb));
    if (!sb)
        goto oom;
    msgpack_sbuffer_init(&sb->sbuf);
    msgpack_packer_init(&sb->pk, &sb->sbuf, msgpack_sbuffer_write);
    if (!msgpack_zone_init(&sb->zone, 2048))
        goto oom;
    sb->zone_ok = true;
    sb->max_par = max_par;
    sb->key_err = WEIR_EINVAL;           /* no key set yet */
    sb->budget = opts->memory        ? 0 /* reserved from the shared budget as it fills */
                 : opts->cache_bytes ? opts->cache_bytes
                                     : DEFAULT_CACHE_BYTES;
    /* dirty bytes above a quarter of the memtable are written back at once: RocksDB flushes
     * full memtables in the background, so a checkpoint's synchronous flush stays small */
    sb->dirty_limit = (opts->memory               ? weir__state_memory_write_buffer(opts->memory)
                       : opts->write_buffer_bytes ? opts->write_buffer_bytes
                                                  : DEFAULT_WRITE_BUFFER_BYTES) /
                      4;
    sb->path = strdup(opts->path);
    sb->nbuckets = 1024;
    sb->buckets = calloc(sb->nbuckets, sizeof(*sb->buckets));
    sb->st = calloc(n_states ? n_states : 1, sizeof(*sb->st));
    if (!sb->path || !sb->buckets || !sb->st)
        goto oom;
    for (uint32_t i = 0; i < n_states; i++) {
        if (!states[i].name || !states[i].name[0]) {
            weir_fmt(errstr, errlen, "state backend: state %u has no name", i);
            goto fail;
        }
        for (uint32_t j = 0; j < i; j++)
            if (strcmp(states[i].name, states[j].name) == 0) {
                weir_fmt(errstr, errlen, "state backend: state name '%s' declared twice",
                         states[i].name);
                goto fail;
            }
        sb->st[i].name = strdup(states[i].name);
        if (!sb->st[i].name)
            goto oom;
        sb->st[i].kind = states[i].kind;
        sb->st[i].reduce = states[i].reduce;
        sb->st[i].reduce_udata = states[i].reduce_udata;
        sb->n_st = i + 1;
        if (states[i].ttl_ms < 0 || states[i].ttl_ms > WEIR_MAX_STATE_TTL_MS) {
            weir_fmt(errstr, errlen,
                     "state backend: state '%s' has time to live %lld ms (1 to %lld)",
                     states[i].name, (long long)states[i].ttl_ms, (long long)WEIR_MAX_STATE_TTL_MS);
            goto fail;
        }
        sb->st[i].ttl = states[i].ttl_ms;
        sb->st[i].refresh_on_read = states[i].ttl_update == WEIR_TTL_ON_READ_AND_WRITE;
    }
    if (weir_mkdirs(opts->path) != 0) {
        weir_fmt(errstr, errlen, "state backend: cannot create directory %s", opts->path);
        goto fail;
    }
    sb->opts = make_options(sb, opts);
    sb->clock_ms = opts->clock_ms ? opts->clock_ms : wall_clock;
    sb->clock_arg = opts->clock_ms ? opts->clock_arg : NULL;
    sb->ttl_cleanup_ms = opts->ttl_cleanup_ms;
    for (uint32_t i = 0; i < n_states; i++)
        if (sb->st[i].ttl && !(sb->st[i].cf_opts = ttl_options(sb, i)))
            goto oom;

    /* column families: default, the declared states, then any others already in the DB */
    existing = rocksdb_list_column_families(sb->opts, opts->path, &n_existing, &err);
    if (err) { /* no DB yet (the C API still returns an empty array) */
        rocksdb_free(err);
        err = NULL;
        if (existing)
            rocksdb_list_column_families_destroy(existing, n_existing);
        existing = NULL;
        n_existing = 0;
    }
    size_t cap = 1 + n_states + n_existing;
    names = calloc(cap, sizeof(*names));
    cfopts = calloc(cap, sizeof(*cfopts));
    sb->cfs = calloc(cap, sizeof(*sb->cfs));
    if (!names || !cfopts || !sb->cfs)
        goto oom;
    uint32_t n = 0;
    names[n++] = "default";
    for (uint32_t i = 0; i < n_states; i++)
        if (strcmp(states[i].name, "default") != 0)
            names[n++] = states[i].name;
    for (size_t i = 0; i < n_existing; i++) {
        bool found = false;
        for (uint32_t j = 0; j < n && !found; j++)
            found = strcmp(names[j], existing[i]) == 0;
        if (!found)
            names[n++] = existing[i];
    }
    for (uint32_t i = 0; i < n; i++)
        cfopts[i] = sb->opts;
    for (uint32_t i = 0; i < n_states; i++)
        for (uint32_t j = 0; j < n && sb->st[i].cf_opts; j++)
            if (strcmp(names[j], states[i].name) == 0 ||
                (j == 0 && strcmp(states[i].name, "default") == 0))
                cfopts[j] = sb->st[i].cf_opts;
    sb->db =
        rocksdb_open_column_families(sb->opts, opts->path, (int)n, names, cfopts, sb->cfs, &err);
    if (err) {
        weir_fmt(errstr, errlen, "state backend: cannot open RocksDB at %s: %s", opts->path, err);
        rocksdb_free(err);
        sb->db = NULL;
        goto fail;
    }
    sb->n_cfs = n;
    for (uint32_t i = 0; i < n_states; i++)
        for (uint32_t j = 0; j < n; j++)
            if (strcmp(names[j], states[i].name) == 0 ||
                (j == 0 && strcmp(states[i].name, "default") == 0))
                sb->st[i].cf = sb->cfs[j];
    sb->wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_disable_WAL(sb->wo, 1);
    sb->ro = rocksdb_readoptions_create();
    sb->batch = rocksdb_writebatch_create();
    if (opts->memory) {
        if (weir__state_memory_attach(opts->memory, sb->db) != 0)
            goto oom;
        sb->mem = opts->memory;
    }
    if (cleaner_start(sb) != 0) {
        weir_fmt(errstr, errlen, "state backend: cannot start the TTL cleanup thread of %s",
                 opts->path);
        goto fail;
    }
    free(names);
    free(cfopts);
    if (existing)
        rocksdb_list_column_families_destroy(existing, n_existing);
    WEIR_DEBUG(COMP, "opened state backend %s (%u states, cache %zu bytes)", sb->path, n_states,
               sb->budget);
    return sb;
oom:
    weir_fmt(errstr, errlen, "state backend: out of memory opening %s", opts->path);
fail:
    free(names);
    free(cfopts);
    if (existing)
        rocksdb_list_column_families_destroy(existing, n_existing);
    if (sb)
        free_backend(sb);
    return NULL;
}

void weir_state_close(weir_state_backend_t **psb, bool remove_files) {
    if (!psb || !*psb)
        return;
    weir_state_backend_t *sb = *psb;
    *psb = NULL;
    char *path = sb->path;
    sb->path = NULL;
    if (remove_files && sb->db) {
        /* the files are going away: do not flush memtables on close */
        const char *k[] = {"avoid_flush_during_shutdown"};
        const char *v[] = {"true"};
        char *err = NULL;
        rocksdb_set_options(sb->db, 1, k, v, &err);
        rocksdb_free(err);
    }
    free_backend(sb);
    if (remove_files && path && weir_rmtree(path) != 0)
        WEIR_WARN(COMP, "cannot remove state directory %s", path);
    free(path);
}

/* Writes the RocksDB key prefix of user key @p key (@p len bytes, at most MAX_KEY_LEN) to @p p
 * (KEY_PREFIX_FIXED + len bytes): key group, length, bytes (state.h). */
static void encode_key(const weir_state_backend_t *sb, const void *key, uint32_t len, uint8_t *p) {
    uint32_t kg = weir_keygroup_of(key, len, sb->max_par);
    p[0] = (uint8_t)(kg >> 8);
    p[1] = (uint8_t)kg;
    p[2] = (uint8_t)(len >> 24);
    p[3] = (uint8_t)(len >> 16);
    p[4] = (uint8_t)(len >> 8);
    p[5] = (uint8_t)len;
    if (len)
        memcpy(p + KEY_PREFIX_FIXED, key, len);
}

void weir_state_set_key(weir_state_backend_t *sb, const void *key, uint32_t len) {
    if (!sb)
        return;
    sb->memo = 0;
    if (len > MAX_KEY_LEN || (len && !key)) {
        sb->key_err = WEIR_EINVAL;
        return;
    }
    if (grow(&sb->kbuf, &sb->kcap, KEY_PREFIX_FIXED + (size_t)len) != 0) {
        sb->key_err = WEIR_ENOMEM;
        return;
    }
    sb->klen = KEY_PREFIX_FIXED + len;
    sb->key_err = 0;
    weir_prefetch_t *pf = &sb->pf;
    if (pf->ran && pf->next < pf->n) { /* the next key of the prefetched batch, encoded */
        const pf_key_t *q = &pf->q[pf->next];
        const uint8_t *k = pf->arena + q->off;
        if (q->klen == sb->klen && (len == 0 || memcmp(k + KEY_PREFIX_FIXED, key, len) == 0)) {
            memcpy(sb->kbuf, k, q->klen);
            sb->khash = q->khash;
            pf->next++;
            return;
        }
    }
    encode_key(sb, key, len, sb->kbuf);
    sb->khash = hash_bytes(sb->kbuf, sb->klen);
}

/* Reads the entries of state @p st that pf holds and the cache does not with one batched
 * MultiGet and caches them clean (a missing key as "absent"). 0 or a negative weir error. */
static int prefetch_state(weir_state_backend_t *sb, uint32_t st, uint32_t n) {
    weir_prefetch_t *pf = &sb->pf;
    uint32_t m = 0;
    int rc = 0;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *k = pf->arena + pf->q[i].off;
        uint64_t h = entry_hash(pf->q[i].khash, st);
        if (cache_find(sb, st, h, k, pf->q[i].klen) != NO_ENTRY)
            continue;
        /* cached at once (absent, clean, room for a small value): a key twice in the batch
         * finds it; filled in or removed below, before anything else uses the cache */
        rc = cache_insert(sb, st, h, k, pf->q[i].klen, PREFETCH_VCAP, &pf->idx[m]);
        if (rc != 0)
            break;
        pf->keys[m] = (const char *)k;
        pf->sizes[m] = pf->q[i].klen;
        m++;
    }
    bool read = m > 0 && rc == 0;
    if (read)
        rocksdb_batched_multi_get_cf(sb->db, sb->ro, sb->st[st].cf, m, pf->keys, pf->sizes,
                                     pf->vals, pf->errs, false);
    for (uint32_t j = 0; j < m; j++) {
        if (rc != 0) { /* not read, or this or an earlier key failed: not cached */
            if (read) {
                rocksdb_free(pf->errs[j]);
                rocksdb_pinnableslice_destroy(pf->vals[j]);
            }
            cache_remove(sb, pf->idx[j]);
            continue;
        }
        if (pf->errs[j]) {
            rc = rdb_err("multi-get", sb->path, pf->errs[j]); /* frees it */
            pf->errs[j] = NULL;
            j--; /* this one again, as not cached */
            continue;
        }
        rocksdb_pinnableslice_t *ps = pf->vals[j];
        centry_t *e = &sb->ent[pf->idx[j]];
        size_t vlen = 0;
        const char *v = ps ? rocksdb_pinnableslice_value(ps, &vlen) : NULL;
        if (v && vlen > e->vcap) {
            uint32_t ncap = vlen <= UINT32_MAX - 15u ? ((uint32_t)vlen + 15u) & ~15u : 0;
            uint8_t *nb = ncap ? slab_alloc(&sb->slab, buf_size(e->klen, ncap)) : NULL;
            if (!nb) {
                rc = ncap ? WEIR_ENOMEM : WEIR_ECORRUPT;
                j--; /* this one again, as not cached */
                continue;
            }
            memcpy(nb, e->buf, e->klen);
            slab_free(&sb->slab, e->buf, buf_size(e->klen, e->vcap));
            e->buf = nb;
            sb->bytes += ncap - e->vcap;
            e->vcap = ncap;
        }
        if (v) {
            if (vlen)
                memcpy(e->buf + e->klen, v, vlen);
            e->vlen = (uint32_t)vlen;
            e->flags &= (uint8_t)~F_ABSENT;
        }
        rocksdb_pinnableslice_destroy(ps);
        pf->vals[j] = NULL; /* a later failure's pass over this one frees nothing */
        sb->stats.cache_misses++;
        sb->stats.prefetched++;
    }
    return rc;
}

/* Room for @p n keys in the lookup arrays of @p pf: one block, carved (contents not kept). */
static int prefetch_reserve(weir_prefetch_t *pf, uint32_t n) {
    size_t per = sizeof *pf->keys + sizeof *pf->sizes + sizeof *pf->vals + sizeof *pf->errs +
                 sizeof *pf->idx;
    uint8_t *m = malloc(per * n);
    if (!m)
        return WEIR_ENOMEM;
    free(pf->mem);
    pf->mem = m;
    pf->cap = n;
    pf->keys = (const char **)m;
    pf->sizes = (size_t *)(pf->keys + n);
    pf->vals = (rocksdb_pinnableslice_t **)(pf->sizes + n);
    pf->errs = (char **)(pf->vals + n);
    pf->idx = (uint32_t *)(pf->errs + n);
    return 0;
}

int weir_state_prefetch_key(weir_state_backend_t *sb, const void *key, uint32_t len) {
    if (!sb || len > MAX_KEY_LEN || (len && !key))
        return WEIR_EINVAL;
    weir_prefetch_t *pf = &sb->pf;
    if (pf->ran) { /* a new batch */
        pf->n = pf->next = 0;
        pf->used = 0;
        pf->ran = false;
    }
    if (pf->n == pf->qcap) {
        void *q = pf->q;
        if (weir_array_grow(&q, &pf->qcap, (size_t)pf->n + 1, sizeof *pf->q, 256) != 0)
            return WEIR_ENOMEM;
        pf->q = q;
    }
    if (grow(&pf->arena, &pf->acap, pf->used + KEY_PREFIX_FIXED + len) != 0)
        return WEIR_ENOMEM;
    uint8_t *k = pf->arena + pf->used;
    encode_key(sb, key, len, k);
    pf->q[pf->n++] = (pf_key_t){.off = pf->used,
                                .khash = hash_bytes(k, KEY_PREFIX_FIXED + len),
                                .klen = KEY_PREFIX_FIXED + len};
    pf->used += KEY_PREFIX_FIXED + len;
    return 0;
}

int weir_state_prefetch(weir_state_backend_t *sb, uint32_t st_first, uint32_t st_count) {
    if (!sb || st_first > sb->n_st || st_count > sb->n_st - st_first)
        return WEIR_EINVAL;
    weir_prefetch_t *pf = &sb->pf;
    if (pf->ran)
        pf->n = 0; /* nothing queued since the last run */
    pf->ran = true;
    pf->next = 0;
    uint32_t n = pf->n;
    bool any = false;
    for (uint32_t s = st_first; s < st_first + st_count; s++)
        any |= sb->st[s].kind == WEIR_STATE_VALUE || sb->st[s].kind == WEIR_STATE_REDUCING;
    if (!any || n == 0)
        return 0;
    if (n > pf->cap && prefetch_reserve(pf, n) != 0)
        return WEIR_ENOMEM;
    int rc = 0;
    for (uint32_t s = st_first; s < st_first + st_count && rc == 0; s++)
        if (sb->st[s].kind == WEIR_STATE_VALUE || sb->st[s].kind == WEIR_STATE_REDUCING)
            rc = prefetch_state(sb, s, n);
    int erc = cache_evict(sb, NO_ENTRY);
    return rc ? rc : erc;
}

/* ------------------------------------------------------------------------------------------ */
/* value and reducing                                                                         */
/* ------------------------------------------------------------------------------------------ */

/* Time to live of a loaded entry: 0 when it holds a live value (its expiry restarted when the
 * state refreshes on read and @p read), 1 when absent or expired (an expired value becomes a
 * dirty "absent" entry: deleted at write-back), or a negative weir error. */
static int cache_live(weir_state_backend_t *sb, uint32_t idx, bool read) {
    centry_t *e = &sb->ent[idx];
    const sstate_t *s = &sb->st[e->st];
    if (e->flags & F_ABSENT)
        return 1;
    if (!s->ttl)
        return 0;
    if (e->vlen < TTL_HDR) {
        WEIR_ERROR(COMP, "state '%s': stored value has no expiry time", s->name);
        return WEIR_ECORRUPT;
    }
    if (dirty_reserve(sb) != 0)
        return WEIR_ENOMEM;
    int64_t now = now_ms(sb);
    if (expired(e->buf + e->klen, now)) {
        e->vlen = 0;
        e->flags |= F_ABSENT;
        set_dirty(sb, idx);
        return 1;
    }
    if (read && s->refresh_on_read) {
        put_i64le(e->buf + e->klen, expiry_from(now, s->ttl));
        set_dirty(sb, idx);
    }
    return 0;
}

static int cached_get(weir_state_backend_t *sb, uint32_t st, const void **val, uint32_t *len) {
    uint32_t idx;
    int rc = cache_get(sb, st, true, &idx);
    if (rc != 0)
        return rc;
    rc = cache_live(sb, idx, true);
    if (rc < 0)
        return rc;
    if (sb->ent[idx].flags & F_DIRTY) { /* an expiry deleted or refreshed: maybe write back */
        int erc = cache_evict(sb, idx);
        if (erc != 0)
            return erc;
    }
    if (rc == 1)
        return 1;
    const centry_t *e = &sb->ent[idx];
    uint32_t hl = sb->st[st].ttl ? TTL_HDR : 0;
    if (val)
        *val = e->buf + e->klen + hl;
    if (len)
        *len = e->vlen - hl;
    return 0;
}

static int cached_clear(weir_state_backend_t *sb, uint32_t st) {
    uint32_t idx;
    int rc = cache_get(sb, st, false, &idx);
    if (rc != 0)
        return rc;
    if (dirty_reserve(sb) != 0)
        return WEIR_ENOMEM;
    centry_t *e = &sb->ent[idx];
    e->vlen = 0;
    e->flags |= F_ABSENT;
    set_dirty(sb, idx);
    return cache_evict(sb, idx);
}

int weir_state_value_get(weir_state_backend_t *sb, uint32_t st, const void **val, uint32_t *len) {
    int rc = check(sb, st, WEIR_STATE_VALUE);
    return rc ? rc : cached_get(sb, st, val, len);
}

int weir_state_value_put(weir_state_backend_t *sb, uint32_t st, const void *val, uint32_t len) {
    int rc = check(sb, st, WEIR_STATE_VALUE);
    if (rc)
        return rc;
    if (len && !val)
        return WEIR_EINVAL;
    uint32_t idx;
    rc = cache_get(sb, st, false, &idx);
    if (rc == 0)
        rc = cache_set_value(sb, idx, val, len);
    return rc ? rc : cache_evict(sb, idx);
}

int weir_state_value_clear(weir_state_backend_t *sb, uint32_t st) {
    int rc = check(sb, st, WEIR_STATE_VALUE);
    return rc ? rc : cached_clear(sb, st);
}

int weir_state_reducing_add(weir_state_backend_t *sb, uint32_t st, const void *val, uint32_t len) {
    int rc = check(sb, st, WEIR_STATE_REDUCING);
    if (rc)
        return rc;
    const sstate_t *s = &sb->st[st];
    if (!s->reduce) {
        WEIR_ERROR(COMP, "reducing state '%s' has no reduce function", s->name);
        return WEIR_EINVAL;
    }
    if (len && !val)
        return WEIR_EINVAL;
    msgpack_zone_clear(&sb->zone);
    msgpack_object in, acc;
    size_t off = 0;
    if (msgpack_unpack(val, len, &off, &sb->zone, &in) != MSGPACK_UNPACK_SUCCESS)
        return WEIR_ECORRUPT;
    uint32_t idx;
    rc = cache_get(sb, st, true, &idx);
    if (rc != 0)
        return rc;
    rc = cache_live(sb, idx, false); /* an expired accumulator starts over */
    if (rc < 0)
        return rc;
    centry_t *e = &sb->ent[idx];
    if (rc == 1) {
        rc = cache_set_value(sb, idx, val, len);
        return rc ? rc : cache_evict(sb, idx);
    }
    uint32_t hl = s->ttl ? TTL_HDR : 0;
    off = 0;
    if (msgpack_unpack((const char *)e->buf + e->klen + hl, e->vlen - hl, &off, &sb->zone, &acc) !=
        MSGPACK_UNPACK_SUCCESS) {
        WEIR_ERROR(COMP, "reducing state '%s': stored value is not msgpack", s->name);
        return WEIR_ECORRUPT;
    }
    msgpack_sbuffer_clear(&sb->sbuf);
    s->reduce(&acc, &in, &sb->pk, s->reduce_udata);
    if (sb->sbuf.size == 0 || sb->sbuf.size > UINT32_MAX) {
        WEIR_ERROR(COMP, "reducing state '%s': reduce function wrote no single value", s->name);
        return WEIR_EUSER;
    }
    rc = cache_set_value(sb, idx, sb->sbuf.data, (uint32_t)sb->sbuf.size);
    return rc ? rc : cache_evict(sb, idx);
}

int weir_state_reducing_get(weir_state_backend_t *sb, uint32_t st, const void **val,
                            uint32_t *len) {
    int rc = check(sb, st, WEIR_STATE_REDUCING);
    return rc ? rc : cached_get(sb, st, val, len);
}

int weir_state_reducing_clear(weir_state_backend_t *sb, uint32_t st) {
    int rc = check(sb, st, WEIR_STATE_REDUCING);
    return rc ? rc : cached_clear(sb, st);
}

/* ------------------------------------------------------------------------------------------ */
/* list                                                                                       */
/* ------------------------------------------------------------------------------------------ */

int weir_state_list_add(weir_state_backend_t *sb, uint32_t st, const void *val, uint32_t len) {
    int rc = check(sb, st, WEIR_STATE_LIST);
    if (rc)
        return rc;
    uint32_t hl = sb->st[st].ttl ? TTL_HDR : 0;
    if ((len && !val) || len > UINT32_MAX - 4 - hl)
        return WEIR_EINVAL;
    if (grow(&sb->scratch, &sb->scap, (size_t)len + 4 + hl) != 0)
        return WEIR_ENOMEM;
    uint8_t *p = sb->scratch;
    put_u32le(p, len);
    if (hl)
        put_i64le(p + 4, expiry_from(now_ms(sb), sb->st[st].ttl));
    if (len)
        memcpy(p + 4 + hl, val, len);
    char *err = NULL;
    rocksdb_merge_cf(sb->db, sb->wo, sb->st[st].cf, (const char *)sb->kbuf, sb->klen,
                     (const char *)p, (size_t)len + 4 + hl, &err);
    return err ? rdb_err("merge", sb->path, err) : 0;
}

/* Before a TTL list's elements are handed out: when some expired (or all are refreshed on read),
 * the list is rewritten with its live elements (new expiry when refreshed), or deleted when none
 * is left. Done before any callback runs, so elements a callback adds are not overwritten. */
static int list_expire(weir_state_backend_t *sb, uint32_t st, const uint8_t *p, size_t n,
                       int64_t now) {
    const sstate_t *s = &sb->st[st];
    size_t off = 0, live = 0, dead = 0;
    while (off < n) {
        if (n - off < 4 + TTL_HDR || n - off - 4 - TTL_HDR < get_u32le(p + off))
            return 0; /* truncated: the walk reports it */
        size_t el = 4 + TTL_HDR + get_u32le(p + off);
        if (expired(p + off + 4, now))
            dead++;
        else
            live += el;
        off += el;
    }
    if (dead == 0 && !s->refresh_on_read)
        return 0;
    char *err = NULL;
    if (live == 0) {
        rocksdb_delete_cf(sb->db, sb->wo, s->cf, (const char *)sb->kbuf, sb->klen, &err);
        return err ? rdb_err("delete (expired list)", sb->path, err) : 0;
    }
    uint8_t *nb = malloc(live);
    if (!nb)
        return WEIR_ENOMEM;
    int64_t exp = expiry_from(now, s->ttl);
    size_t w = 0;
    for (off = 0; off < n;) {
        size_t el = 4 + TTL_HDR + get_u32le(p + off);
        if (!expired(p + off + 4, now)) {
            memcpy(nb + w, p + off, el);
            if (s->refresh_on_read)
                put_i64le(nb + w + 4, exp);
            w += el;
        }
        off += el;
    }
    rocksdb_put_cf(sb->db, sb->wo, s->cf, (const char *)sb->kbuf, sb->klen, (const char *)nb, w,
                   &err);
    free(nb);
    return err ? rdb_err("put (list expiry)", sb->path, err) : 0;
}

int weir_state_list_foreach(weir_state_backend_t *sb, uint32_t st,
                            int (*fn)(const void *val, uint32_t len, void *arg), void *arg) {
    int rc = check(sb, st, WEIR_STATE_LIST);
    if (rc)
        return rc;
    if (!fn)
        return WEIR_EINVAL;
    char *err = NULL;
    rocksdb_pinnableslice_t *ps = rocksdb_get_pinned_cf(sb->db, sb->ro, sb->st[st].cf,
                                                        (const char *)sb->kbuf, sb->klen, &err);
    if (err)
        return rdb_err("get (list)", sb->path, err);
    if (!ps)
        return 0;
    size_t n = 0;
    const uint8_t *p = (const uint8_t *)rocksdb_pinnableslice_value(ps, &n);
    const sstate_t *s = &sb->st[st];
    uint32_t hl = s->ttl ? TTL_HDR : 0;
    int64_t now = hl ? now_ms(sb) : 0;
    if (hl)
        rc = list_expire(sb, st, p, n, now);
    size_t off = 0;
    while (rc == 0 && off < n) {
        if (n - off < 4 + hl) {
            rc = WEIR_ECORRUPT;
            break;
        }
        uint32_t l = get_u32le(p + off);
        off += 4 + hl;
        if (n - off < l) {
            rc = WEIR_ECORRUPT;
            break;
        }
        if (!hl || !expired(p + off - hl, now))
            rc = fn(p + off, l, arg);
        off += l;
    }
    if (rc == WEIR_ECORRUPT)
        WEIR_ERROR(COMP, "list state '%s': stored list is truncated", sb->st[st].name);
    rocksdb_pinnableslice_destroy(ps);
    return rc;
}

int weir_state_list_clear(weir_state_backend_t *sb, uint32_t st) {
    int rc = check(sb, st, WEIR_STATE_LIST);
    if (rc)
        return rc;
    char *err = NULL;
    rocksdb_delete_cf(sb->db, sb->wo, sb->st[st].cf, (const char *)sb->kbuf, sb->klen, &err);
    return err ? rdb_err("delete (list)", sb->path, err) : 0;
}

/* ------------------------------------------------------------------------------------------ */
/* map                                                                                        */
/* ------------------------------------------------------------------------------------------ */

/* Builds [prefix][ukey] in the scratch buffer. */
static int map_key(weir_state_backend_t *sb, const void *ukey, uint32_t ulen, size_t *n) {
    if (ulen && !ukey)
        return WEIR_EINVAL;
    if (grow(&sb->scratch, &sb->scap, (size_t)sb->klen + ulen) != 0)
        return WEIR_ENOMEM;
    memcpy(sb->scratch, sb->kbuf, sb->klen);
    if (ulen)
        memcpy(sb->scratch + sb->klen, ukey, ulen);
    *n = (size_t)sb->klen + ulen;
    return 0;
}

/* Writes [expiry][val] under the full key @p k (two slices: @p val may point anywhere). */
static int map_put_ttl(weir_state_backend_t *sb, uint32_t st, const char *k, size_t kl, int64_t exp,
                       const void *val, size_t len) {
    uint8_t hdr[TTL_HDR];
    put_i64le(hdr, exp);
    const char *vs[2] = {(const char *)hdr, len ? (const char *)val : ""};
    size_t vls[2] = {TTL_HDR, len};
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    rocksdb_writebatch_putv_cf(b, sb->st[st].cf, 1, &k, &kl, 2, vs, vls);
    char *err = NULL;
    rocksdb_write(sb->db, sb->wo, b, &err);
    rocksdb_writebatch_destroy(b);
    return err ? rdb_err("put (map)", sb->path, err) : 0;
}

/* A TTL map entry found at @p k with value @p v: 1 when expired (deleted now), else 0 (its
 * expiry restarted when the state refreshes on read), or a negative weir error. */
static int map_live(weir_state_backend_t *sb, uint32_t st, const char *k, size_t kl, const char *v,
                    size_t vl, int64_t now) {
    const sstate_t *s = &sb->st[st];
    if (vl < TTL_HDR) {
        WEIR_ERROR(COMP, "map state '%s': stored value has no expiry time", s->name);
        return WEIR_ECORRUPT;
    }
    char *err = NULL;
    if (expired((const uint8_t *)v, now)) {
        rocksdb_delete_cf(sb->db, sb->wo, s->cf, k, kl, &err);
        return err ? rdb_err("delete (expired map entry)", sb->path, err) : 1;
    }
    if (s->refresh_on_read)
        return map_put_ttl(sb, st, k, kl, expiry_from(now, s->ttl), v + TTL_HDR, vl - TTL_HDR);
    return 0;
}

int weir_state_map_put(weir_state_backend_t *sb, uint32_t st, const void *ukey, uint32_t ulen,
                       const void *val, uint32_t len) {
    int rc = check(sb, st, WEIR_STATE_MAP);
    size_t n;
    if (rc || (rc = map_key(sb, ukey, ulen, &n)) != 0)
        return rc;
    if (len && !val)
        return WEIR_EINVAL;
    if (sb->st[st].ttl)
        return map_put_ttl(sb, st, (const char *)sb->scratch, n,
                           expiry_from(now_ms(sb), sb->st[st].ttl), val, len);
    char *err = NULL;
    rocksdb_put_cf(sb->db, sb->wo, sb->st[st].cf, (const char *)sb->scratch, n,
                   len ? (const char *)val : "", len, &err);
    return err ? rdb_err("put (map)", sb->path, err) : 0;
}

int weir_state_map_get(weir_state_backend_t *sb, uint32_t st, const void *ukey, uint32_t ulen,
                       const void **val, uint32_t *len) {
    int rc = check(sb, st, WEIR_STATE_MAP);
    size_t n;
    if (rc || (rc = map_key(sb, ukey, ulen, &n)) != 0)
        return rc;
    char *err = NULL;
    rocksdb_pinnableslice_t *ps =
        rocksdb_get_pinned_cf(sb->db, sb->ro, sb->st[st].cf, (const char *)sb->scratch, n, &err);
    if (err)
        return rdb_err("get (map)", sb->path, err);
    if (!ps)
        return 1;
    size_t vl = 0;
    const char *v = rocksdb_pinnableslice_value(ps, &vl);
    if (sb->st[st].ttl) {
        rc = map_live(sb, st, (const char *)sb->scratch, n, v, vl, now_ms(sb));
        if (rc != 0) {
            rocksdb_pinnableslice_destroy(ps);
            return rc;
        }
        v += TTL_HDR;
        vl -= TTL_HDR;
    }
    if (vl > UINT32_MAX) {
        rc = WEIR_ECORRUPT;
    } else if (grow(&sb->out, &sb->ocap, vl ? vl : 1) != 0) {
        rc = WEIR_ENOMEM;
    } else {
        if (vl)
            memcpy(sb->out, v, vl);
        if (val)
            *val = sb->out;
        if (len)
            *len = (uint32_t)vl;
    }
    rocksdb_pinnableslice_destroy(ps);
    return rc;
}

int weir_state_map_remove(weir_state_backend_t *sb, uint32_t st, const void *ukey, uint32_t ulen) {
    int rc = check(sb, st, WEIR_STATE_MAP);
    size_t n;
    if (rc || (rc = map_key(sb, ukey, ulen, &n)) != 0)
        return rc;
    char *err = NULL;
    rocksdb_delete_cf(sb->db, sb->wo, sb->st[st].cf, (const char *)sb->scratch, n, &err);
    return err ? rdb_err("delete (map)", sb->path, err) : 0;
}

/* An iterator over the current key's map entries: [prefix, prefix + 1). The upper bound lives
 * in @p ub (caller storage that must outlive the iterator), so callbacks may use the backend. */
static rocksdb_iterator_t *map_iter(weir_state_backend_t *sb, uint32_t st, uint8_t *ub,
                                    rocksdb_readoptions_t **ro) {
    size_t ublen = sb->klen;
    memcpy(ub, sb->kbuf, ublen);
    while (ublen > 0 && ub[ublen - 1] == 0xff)
        ublen--;
    ub[ublen - 1]++; /* never all 0xff: the key group's high byte is < 0x80 */
    *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_iterate_upper_bound(*ro, (const char *)ub, ublen);
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(sb->db, *ro, sb->st[st].cf);
    rocksdb_iter_seek(it, (const char *)sb->kbuf, sb->klen);
    return it;
}

int weir_state_map_foreach(weir_state_backend_t *sb, uint32_t st,
                           int (*fn)(const void *uk, uint32_t ul, const void *v, uint32_t vl,
                                     void *arg),
                           void *arg) {
    int rc = check(sb, st, WEIR_STATE_MAP);
    if (rc)
        return rc;
    if (!fn)
        return WEIR_EINVAL;
    uint8_t small[256];
    uint8_t *ub = sb->klen <= sizeof(small) ? small : malloc(sb->klen);
    if (!ub)
        return WEIR_ENOMEM;
    size_t plen = sb->klen;
    bool ttl = sb->st[st].ttl != 0;
    int64_t now = ttl ? now_ms(sb) : 0;
    rocksdb_readoptions_t *ro;
    rocksdb_iterator_t *it = map_iter(sb, st, ub, &ro);
    for (; rc == 0 && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kl, vl;
        const char *k = rocksdb_iter_key(it, &kl);
        const char *v = rocksdb_iter_value(it, &vl);
        if (ttl) { /* the iterator reads a snapshot: deleting or refreshing here is safe */
            rc = map_live(sb, st, k, kl, v, vl, now);
            if (rc == 1) {
                rc = 0;
                continue;
            }
            if (rc != 0)
                break;
            v += TTL_HDR;
            vl -= TTL_HDR;
        }
        if (kl < plen || kl - plen > UINT32_MAX || vl > UINT32_MAX) {
            rc = WEIR_ECORRUPT;
            break;
        }
        rc = fn(k + plen, (uint32_t)(kl - plen), v, (uint32_t)vl, arg);
    }
    if (rc == 0) {
        char *err = NULL;
        rocksdb_iter_get_error(it, &err);
        if (err)
            rc = rdb_err("iterate (map)", sb->path, err);
    }
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    if (ub != small)
        free(ub);
    return rc;
}

int weir_state_map_clear(weir_state_backend_t *sb, uint32_t st) {
    int rc = check(sb, st, WEIR_STATE_MAP);
    if (rc)
        return rc;
    uint8_t small[256];
    uint8_t *ub = sb->klen <= sizeof(small) ? small : malloc(sb->klen);
    if (!ub)
        return WEIR_ENOMEM;
    rocksdb_readoptions_t *ro;
    rocksdb_iterator_t *it = map_iter(sb, st, ub, &ro);
    rocksdb_writebatch_clear(sb->batch);
    uint32_t n = 0;
    for (; rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kl;
        const char *k = rocksdb_iter_key(it, &kl);
        rocksdb_writebatch_delete_cf(sb->batch, sb->st[st].cf, k, kl);
        n++;
    }
    char *err = NULL;
    rocksdb_iter_get_error(it, &err);
    if (err)
        rc = rdb_err("iterate (map clear)", sb->path, err);
    else if (n) {
        rocksdb_write(sb->db, sb->wo, sb->batch, &err);
        if (err)
            rc = rdb_err("write (map clear)", sb->path, err);
    }
    rocksdb_writebatch_clear(sb->batch);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    if (ub != small)
        free(ub);
    return rc;
}
