/* Owns the keyed-state memory shared by all state backends of one task manager (memory.h): the
 * RocksDB block cache and write buffer manager (made by the C++ shim rocksdb_memory.cc), the
 * write-back state-cache budget (reservations of whole chunks) and the list of open DBs that the
 * memory report reads.
 *
 * Invariants:
 *  - cache_used is the sum of the reservations of the open backends (and of closed ones until
 *    their detach); it never exceeds cache_total: a reservation is one compare-and-swap that
 *    checks the bound.
 *  - every DB in dbs is open: a backend detaches before it closes its DB, and the report reads
 *    the DBs under mu.
 * Threading: any thread; mu guards dbs / n_dbs; cache_used and n_open are atomics. */
#include "state/memory.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"
#include "state/memory_int.h"

#define DEFAULT_WRITE_BUFFER ((size_t)16 << 20)
#define CHUNK_MIN ((size_t)64 << 10)
#define CHUNK_MAX ((size_t)4 << 20)

struct weir_state_memory {
    uint64_t managed;
    size_t write_buffer;
    rocksdb_cache_t *cache;
    weir_rdb_wbm_t *wbm;
    uint64_t cache_total;
    size_t chunk;
    _Atomic uint64_t cache_used;
    _Atomic uint32_t n_open;
    pthread_mutex_t mu;
    rocksdb_t **dbs;
    size_t n_dbs, cap_dbs;
};

weir_state_memory_t *weir_state_memory_new(const weir_state_memory_opts_t *o, char *errstr,
                                           size_t errlen) {
    if (!o || o->managed_bytes == 0 || !(o->write_buffer_ratio > 0 && o->write_buffer_ratio < 1) ||
        !(o->high_prio_ratio >= 0 && o->high_prio_ratio < 1)) {
        weir_fmt(errstr, errlen,
                 "state memory: managed memory must be > 0, the write-buffer ratio in (0, 1) and "
                 "the high-priority pool ratio in [0, 1)");
        return NULL;
    }
    weir_state_memory_t *m = weir_xcalloc(1, sizeof *m);
    double r = o->write_buffer_ratio, total = (double)o->managed_bytes;
    m->managed = o->managed_bytes;
    m->write_buffer = o->write_buffer_bytes ? (size_t)o->write_buffer_bytes : DEFAULT_WRITE_BUFFER;
    m->cache_total = o->cache_bytes;
    size_t chunk = (size_t)(o->cache_bytes / 256);
    m->chunk = chunk < CHUNK_MIN ? CHUNK_MIN : chunk > CHUNK_MAX ? CHUNK_MAX : chunk;
    pthread_mutex_init(&m->mu, NULL);
    m->cache = weir__rdb_cache_new((size_t)((3 - r) * total / 3), o->high_prio_ratio);
    if (m->cache)
        m->wbm = weir__rdb_wbm_new((size_t)(2 * total * r / 3), m->cache);
    if (!m->cache || !m->wbm) {
        weir_fmt(errstr, errlen, "state memory: out of memory creating the block cache");
        weir_state_memory_destroy(&m);
        return NULL;
    }
    return m;
}

void weir_state_memory_destroy(weir_state_memory_t **pm) {
    if (!pm || !*pm)
        return;
    weir_state_memory_t *m = *pm;
    *pm = NULL;
    weir__rdb_wbm_free(m->wbm);
    if (m->cache)
        rocksdb_cache_destroy(m->cache);
    free(m->dbs);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

rocksdb_cache_t *weir__state_memory_cache(const weir_state_memory_t *m) {
    return m->cache;
}

weir_rdb_wbm_t *weir__state_memory_wbm(const weir_state_memory_t *m) {
    return m->wbm;
}

size_t weir__state_memory_write_buffer(const weir_state_memory_t *m) {
    return m->write_buffer;
}

int weir__state_memory_attach(weir_state_memory_t *m, rocksdb_t *db) {
    pthread_mutex_lock(&m->mu);
    void *p = m->dbs;
    int rc = weir_array_grow(&p, &m->cap_dbs, m->n_dbs + 1, sizeof *m->dbs, 16);
    if (rc == 0) {
        m->dbs = p;
        m->dbs[m->n_dbs++] = db;
        atomic_fetch_add(&m->n_open, 1);
    }
    pthread_mutex_unlock(&m->mu);
    return rc == 0 ? 0 : WEIR_ENOMEM;
}

void weir__state_memory_detach(weir_state_memory_t *m, rocksdb_t *db, size_t reserved) {
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->n_dbs; i++)
        if (m->dbs[i] == db) {
            m->dbs[i] = m->dbs[--m->n_dbs];
            atomic_fetch_sub(&m->n_open, 1);
            break;
        }
    pthread_mutex_unlock(&m->mu);
    atomic_fetch_sub(&m->cache_used, (uint64_t)reserved);
}

size_t weir__state_memory_reserve(weir_state_memory_t *m, size_t held, size_t need) {
    uint32_t n = atomic_load_explicit(&m->n_open, memory_order_relaxed);
    uint64_t fair = m->cache_total / (n ? n : 1);
    if (fair < m->chunk)
        fair = m->chunk;
    size_t want = need > held ? need - held : 0;
    want = (want + m->chunk - 1) / m->chunk * m->chunk;
    if (want == 0)
        want = m->chunk;
    if ((uint64_t)held + want > fair)
        return 0;
    uint64_t cur = atomic_load_explicit(&m->cache_used, memory_order_relaxed);
    do {
        if (cur + want > m->cache_total)
            return 0;
    } while (!atomic_compare_exchange_weak(&m->cache_used, &cur, cur + want));
    return want;
}

void weir_state_memory_report(weir_state_memory_t *m, weir_state_memory_report_t *out) {
    memset(out, 0, sizeof *out);
    if (!m)
        return;
    out->managed_total = m->managed;
    out->block_cache_capacity = rocksdb_cache_get_capacity(m->cache);
    out->block_cache_usage = rocksdb_cache_get_usage(m->cache);
    out->block_cache_pinned = rocksdb_cache_get_pinned_usage(m->cache);
    out->write_buffer_limit = weir__rdb_wbm_size(m->wbm);
    out->write_buffer_usage = weir__rdb_wbm_usage(m->wbm);
    out->cache_total = m->cache_total;
    out->cache_used = atomic_load(&m->cache_used);
    pthread_mutex_lock(&m->mu);
    out->backends = (uint32_t)m->n_dbs;
    if (m->n_dbs) {
        rocksdb_memory_consumers_t *c = rocksdb_memory_consumers_create();
        for (size_t i = 0; i < m->n_dbs; i++)
            rocksdb_memory_consumers_add_db(c, m->dbs[i]);
        char *err = NULL;
        rocksdb_memory_usage_t *u = rocksdb_approximate_memory_usage_create(c, &err);
        if (u) {
            out->memtables = rocksdb_approximate_memory_usage_get_mem_table_total(u);
            out->table_readers = rocksdb_approximate_memory_usage_get_mem_table_readers_total(u);
            rocksdb_approximate_memory_usage_destroy(u);
        }
        rocksdb_free(err);
        rocksdb_memory_consumers_destroy(c);
    }
    pthread_mutex_unlock(&m->mu);
}
