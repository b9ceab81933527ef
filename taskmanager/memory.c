/* Owns the task manager's memory budget (memory_int.h): the split of
 * taskmanager.memory.process.size into network buffers, managed memory (the shared RocksDB block
 * cache and write buffer manager, state/memory.h), the write-back state caches and headroom;
 * the network-buffer reservations of deployed subtasks; and the memory report (memory.h) that
 * the heartbeat and the Prometheus endpoint read.
 *
 * Invariants: with a budget, network_used <= network_total (a deploy that would pass it fails
 * before its task starts); managed_total + state_cache_total + network_total + headroom ==
 * process. Without a budget (process 0) reservations are counted but never refused.
 * Threading: init / free / reserve / release on the task manager's loop thread; the report on
 * any thread (network_used is atomic; the state memory locks its list of DBs). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"
#include "taskmanager/memory_int.h"

#define MIB ((uint64_t)1 << 20)
#define HEADROOM_MIN (64 * MIB)
#define WRITE_BUFFER_MAX (16 * MIB) /* memtable per column family, as without a budget */

/* A fraction key: a number in [lo, hi). */
static int fraction(const weir_config_t *cfg, const char *key, double lo, double hi, double *out,
                    char *errstr, size_t errlen) {
    const char *s = weir_config_get_str(cfg, key);
    char *end = NULL;
    double v = s ? strtod(s, &end) : -1;
    if (!s || end == s || *end || !(v >= lo && v < hi)) {
        weir_fmt(errstr, errlen, "%s is '%s': expected a number >= %g and < %g", key, s ? s : "",
                 lo, hi);
        return WEIR_ECONFIG;
    }
    *out = v;
    return 0;
}

int weir__tm_memory_init(weir_tm_memory_t *m, const weir_config_t *cfg, char *errstr,
                         size_t errlen) {
    memset(m, 0, sizeof *m);
    m->process = weir_config_get_bytes(cfg, "taskmanager.memory.process.size");
    if (m->process == 0)
        return 0;
    double fnet, fman, fcache, rwb, rhp;
    if (fraction(cfg, "taskmanager.memory.network.fraction", 0, 1, &fnet, errstr, errlen) ||
        fraction(cfg, "taskmanager.memory.managed.fraction", 0, 1, &fman, errstr, errlen) ||
        fraction(cfg, "taskmanager.memory.state-cache.fraction", 0, 1, &fcache, errstr, errlen) ||
        fraction(cfg, "state.backend.rocksdb.memory.write-buffer-ratio", 0.01, 1, &rwb, errstr,
                 errlen) ||
        fraction(cfg, "state.backend.rocksdb.memory.high-prio-pool-ratio", 0, 1, &rhp, errstr,
                 errlen))
        return WEIR_ECONFIG;
    uint64_t nmin = weir_config_get_bytes(cfg, "taskmanager.memory.network.min");
    uint64_t nmax = weir_config_get_bytes(cfg, "taskmanager.memory.network.max");
    if (nmin > nmax) {
        weir_fmt(errstr, errlen,
                 "taskmanager.memory.network.min (%" PRIu64 " bytes) is above "
                 "taskmanager.memory.network.max (%" PRIu64 " bytes): lower min or raise max",
                 nmin, nmax);
        return WEIR_ECONFIG;
    }
    double p = (double)m->process;
    uint64_t net = (uint64_t)(fnet * p);
    m->network_total = net < nmin ? nmin : net > nmax ? nmax : net;
    m->managed_total = (uint64_t)(fman * p);
    m->state_cache_total = (uint64_t)(fcache * p);
    uint64_t parts = m->network_total + m->managed_total + m->state_cache_total;
    if (parts + HEADROOM_MIN > m->process || m->managed_total == 0) {
        weir_fmt(errstr, errlen,
                 "taskmanager.memory.process.size %" PRIu64
                 " bytes leaves no room: network %" PRIu64 " + managed %" PRIu64
                 " + state cache %" PRIu64
                 " bytes need 64 MiB of headroom beside them and managed memory above 0 (raise "
                 "taskmanager.memory.process.size or lower the fractions)",
                 m->process, m->network_total, m->managed_total, m->state_cache_total);
        return WEIR_ECONFIG;
    }
    m->headroom = m->process - parts;
    /* memtables per column family: at most a quarter of the write buffer manager, so one DB
     * cannot take it all before a flush */
    uint64_t wbm = (uint64_t)(2 * (double)m->managed_total * rwb / 3);
    uint64_t wb = wbm / 4 < WRITE_BUFFER_MAX ? wbm / 4 : WRITE_BUFFER_MAX;
    weir_state_memory_opts_t so = {.managed_bytes = m->managed_total,
                                   .write_buffer_ratio = rwb,
                                   .high_prio_ratio = rhp,
                                   .cache_bytes = m->state_cache_total,
                                   .write_buffer_bytes = wb < MIB ? MIB : wb};
    m->state = weir_state_memory_new(&so, errstr, errlen);
    return m->state ? 0 : WEIR_ENOMEM;
}

void weir__tm_memory_free(weir_tm_memory_t *m) {
    weir_state_memory_destroy(&m->state);
}

int weir__tm_memory_network_reserve(weir_tm_memory_t *m, const weir_job_t *g, uint32_t vertex,
                                    uint32_t credits, size_t segment, uint64_t *reserved,
                                    char *errstr, size_t errlen) {
    *reserved = 0;
    const weir_vertex_t *vx = &g->vertices[vertex];
    uint64_t ins = 0, outs = 0;
    for (uint32_t k = 0; k < vx->n_in; k++) {
        const weir_edge_t *e = &g->edges[vx->in_edges[k]];
        ins += e->part == WEIR_PART_FORWARD ? 1 : g->vertices[e->source].parallelism;
    }
    for (uint32_t k = 0; k < vx->n_out; k++) {
        const weir_edge_t *e = &g->edges[vx->out_edges[k]];
        outs += e->part == WEIR_PART_FORWARD ? 1 : g->vertices[e->target].parallelism;
    }
    uint64_t buffers = ins * credits + outs;
    uint64_t need = buffers * segment;
    uint64_t used = atomic_load(&m->network_used);
    if (m->process && used + need > m->network_total) {
        weir_fmt(errstr, errlen,
                 "insufficient network buffers: %s (%u) needs %" PRIu64 " buffers of %zu bytes "
                 "(%" PRIu64 " input channels x %u credits + %" PRIu64 " output channels), %" PRIu64
                 " of %" PRIu64 " bytes are free; raise taskmanager.memory.network.fraction (or "
                 "taskmanager.memory.network.min/max, or taskmanager.memory.process.size)",
                 vx->name, vertex, buffers, segment, ins, credits, outs, m->network_total - used,
                 m->network_total);
        return WEIR_ENOMEM;
    }
    atomic_fetch_add(&m->network_used, need);
    *reserved = need;
    return 0;
}

void weir__tm_memory_network_release(weir_tm_memory_t *m, uint64_t reserved) {
    atomic_fetch_sub(&m->network_used, reserved);
}

static void report(weir_tm_memory_t *m, weir_tm_memory_report_t *out) {
    memset(out, 0, sizeof *out);
    out->process = m->process;
    out->network_total = m->network_total;
    out->network_used = atomic_load(&m->network_used);
    out->managed_total = m->managed_total;
    out->state_cache_total = m->state_cache_total;
    if (!m->state)
        return;
    weir_state_memory_report_t r;
    weir_state_memory_report(m->state, &r);
    /* the cache holds the memtables' reservations; above it: the memtables' overshoot */
    out->managed_used =
        r.block_cache_usage > r.write_buffer_usage ? r.block_cache_usage : r.write_buffer_usage;
    out->block_cache_usage = r.block_cache_usage;
    out->block_cache_pinned = r.block_cache_pinned;
    out->memtables = r.memtables;
    out->table_readers = r.table_readers;
    out->state_cache_used = r.cache_used;
}

void weir__tm_memory_report(weir_taskmanager_t *tm, weir_tm_memory_report_t *out) {
    report(weir__tm_memory(tm), out);
}

void weir__tm_memory_heartbeat(weir_tm_memory_t *m, weir_msg_t *msg) {
    weir_tm_memory_report_t r;
    report(m, &r);
    msg->mem_process = r.process;
    msg->mem_network_total = r.network_total;
    msg->mem_network_used = r.network_used;
    msg->mem_managed_total = r.managed_total;
    msg->mem_managed_used = r.managed_used;
    msg->mem_state_cache_total = r.state_cache_total;
    msg->mem_state_cache_used = r.state_cache_used;
}
