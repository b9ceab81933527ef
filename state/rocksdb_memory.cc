/* Owns the one piece of RocksDB configuration its C API (7.8) cannot express: a shared LRU block
 * cache with a high-priority pool (index and filter blocks) and a WriteBufferManager charged to
 * that cache, attached to a DB's options. Everything else stays in C (state.c, memory.c).
 *
 * The C API's handles are thin wrappers defined in RocksDB's db/c.cc:
 *   struct rocksdb_options_t { Options rep; };
 *   struct rocksdb_cache_t   { std::shared_ptr<Cache> rep; };
 * They are declared here with the same definitions (unchanged since the C API exists), so a
 * cache made here is an ordinary rocksdb_cache_t for the C functions (set_block_cache,
 * cache_get_usage, cache_destroy), and the options of a C caller can get the manager.
 * tests/unit/test_membudget.c checks that it works: two DBs' memtables are charged to the one
 * cache, and writes stall (then proceed after flushes) at the manager's limit.
 *
 * Invariants: the cache and the manager are reference counted (std::shared_ptr): every DB and
 * options object that uses them holds a reference, so destroying ours while DBs are open is safe.
 * Threading: creation and destruction on any one thread; the objects themselves are
 * thread-safe (RocksDB). No exception leaves this file (out of memory: NULL). */
#include <memory>
#include <new>

#include <rocksdb/cache.h>
#include <rocksdb/options.h>
#include <rocksdb/write_buffer_manager.h>

extern "C" {
#include <rocksdb/c.h>

#include "state/rocksdb_memory.h"
}

struct rocksdb_options_t {
    rocksdb::Options rep;
};
struct rocksdb_cache_t {
    std::shared_ptr<rocksdb::Cache> rep;
};

struct weir_rdb_wbm {
    std::shared_ptr<rocksdb::WriteBufferManager> rep;
};

extern "C" rocksdb_cache_t *weir__rdb_cache_new(size_t capacity, double high_prio_ratio) {
    rocksdb::LRUCacheOptions o;
    o.capacity = capacity;
    o.num_shard_bits = -1;
    o.strict_capacity_limit = false; /* as Flink: a full cache evicts; pinned blocks may exceed */
    o.high_pri_pool_ratio = high_prio_ratio;
    auto *c = new (std::nothrow) rocksdb_cache_t;
    if (!c)
        return nullptr;
    try {
        c->rep = rocksdb::NewLRUCache(o);
    } catch (...) {
        delete c;
        return nullptr;
    }
    return c;
}

extern "C" weir_rdb_wbm_t *weir__rdb_wbm_new(size_t bytes, rocksdb_cache_t *cache) {
    auto *w = new (std::nothrow) weir_rdb_wbm_t;
    if (!w)
        return nullptr;
    try {
        /* allow_stall false, as Flink: with it, 8 DBs of one task manager deadlocked in
         * tests/integration/31_memory_budget.py (1 of 3 runs): a subtask's write waited in
         * DBImpl::WriteBufferManagerStallWrites with no flush running, the memory being held by
         * the mutable memtables of DBs whose subtasks waited for that one (backpressure), and a
         * DB schedules a flush for the manager only on its own write. Without the stall a
         * writing DB flushes its largest memtable once the manager passes its trigger, and the
         * memtables stay charged to the cache (state/README.md "Memory"). */
        /* not make_shared: its control block's typeinfo helpers are weak functions of default
         * visibility (namespace std), which libweir.so would export (tests/arch/01_exports.py) */
        w->rep = std::shared_ptr<rocksdb::WriteBufferManager>(new rocksdb::WriteBufferManager(
            bytes, cache ? cache->rep : nullptr, /*allow_stall=*/false));
    } catch (...) {
        delete w;
        return nullptr;
    }
    return w;
}

extern "C" void weir__rdb_wbm_free(weir_rdb_wbm_t *w) {
    delete w;
}

extern "C" void weir__rdb_options_set_wbm(rocksdb_options_t *opt, weir_rdb_wbm_t *w) {
    opt->rep.write_buffer_manager = w ? w->rep : nullptr;
}

extern "C" size_t weir__rdb_wbm_usage(const weir_rdb_wbm_t *w) {
    return w ? w->rep->memory_usage() : 0;
}

extern "C" size_t weir__rdb_wbm_size(const weir_rdb_wbm_t *w) {
    return w ? w->rep->buffer_size() : 0;
}
