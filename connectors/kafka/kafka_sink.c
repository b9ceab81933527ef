/* Kafka sink: each record to a topic, with delivery none, at-least-once or exactly-once
 * (docs/kafka.md "Sink"; the exactly-once argument is connectors/kafka/README.md "Sink").
 *
 * Owns: the WEIR_OP_SINK_KAFKA operator: its options; for none / at-least-once one librdkafka
 * producer (idempotent for at-least-once, flushed at every checkpoint); for exactly-once the
 * transaction pool (txnpool.h: the 2PC logic and its rules) and its I/O: one transactional
 * librdkafka producer per slot, and a Kafka protocol client (kproto.h) for what librdkafka cannot
 * do (describe a transaction, commit another instance's, list the open ones of a prefix).
 * Transactional ids are `<prefix>-<subtask>-<k>`; the prefix is sink.transactional-id-prefix, by
 * default `weir-<job id>-<uid or n<node id>>`.
 * Invariants: a delivery error, a failed flush or a refused commit fails the task (never a
 * silent loss); records are handed to librdkafka in order, one producer per epoch.
 * Threading: the operator runs on its subtask thread; librdkafka's delivery-report callback runs
 * inside rd_kafka_poll/flush on that thread too. */
#include <librdkafka/rdkafka.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "connectors/kafka/kafka.h"
#include "connectors/kafka/kconf.h"
#include "connectors/kafka/kformat.h"
#include "connectors/kafka/kproto.h"
#include "connectors/kafka/txnpool.h"

#define COMP "kafka-sink"
#define API "Kafka sink"
#define POLL_EVERY 1024u      /* records between two rd_kafka_poll(0) */
#define QUEUE_FULL_WAIT_MS 50 /* rd_kafka_poll while librdkafka's queue is full */
/* Bound of librdkafka's blocking transactional calls (init, commit, abort), as the Java
 * client's max.block.ms: an unreachable broker fails the task after a minute, not after the
 * transaction timeout. A commit that times out is committed again at restore (EndTxn). */
#define TXN_CALL_TIMEOUT_MS 60000
/* Bound of the abort of the open transaction (at close or after a failed pre-commit): a task
 * must stop promptly; an abort that does not finish is done by the next InitProducerId of the id
 * (restore) or by the broker's transaction timeout. */
#define ABORT_TIMEOUT_MS 10000
#define DEFAULT_POOL 8
#define MAX_PREFIX WEIR_KTXN_MAX_PREFIX

typedef enum delivery { DG_NONE, DG_AT_LEAST_ONCE, DG_EXACTLY_ONCE } delivery_t;
static const char *const delivery_names[] = {"none", "at-least-once", "exactly-once", NULL};
typedef enum partitioner { PT_DEFAULT, PT_FIXED, PT_ROUND_ROBIN } partitioner_t;
static const char *const partitioner_names[] = {"default", "fixed", "round-robin", NULL};
typedef enum key_format { KF_NONE, KF_RAW } key_format_t;
static const char *const key_format_names[] = {"none", "raw", NULL};

static const char *const known_options[] = {"bootstrap.servers",
                                            "topic",
                                            "sink.delivery-guarantee",
                                            "sink.transactional-id-prefix",
                                            "sink.transactional-id-pool-size",
                                            "transaction.timeout.ms",
                                            "sink.partitioner",
                                            "key.format",
                                            "value.format",
                                            NULL};
static const char *const required_options[] = {"bootstrap.servers", "topic", NULL};
/* librdkafka properties the sink sets itself (from its own options or its delivery mode). */
static const char *const reserved_properties[] = {"transactional.id",
                                                  "enable.idempotence",
                                                  "transaction.timeout.ms",
                                                  "dr_msg_cb",
                                                  "dr_cb",
                                                  "bootstrap.servers",
                                                  NULL};

/* The sink's options, parsed once (validate and create share it). */
typedef struct ksink_cfg {
    const char *topic;
    const char *bootstrap;
    const char *prefix; /* NULL: the default, made at open from the job id */
    delivery_t delivery;
    partitioner_t partitioner;
    key_format_t key_format;
    int value_format; /* weir_kformat_t */
    int64_t txn_timeout_ms;
    int64_t pool;
} ksink_cfg_t;

static int cfg_parse(const weir_node_t *n, ksink_cfg_t *c, char *errstr, size_t errlen) {
    memset(c, 0, sizeof(*c));
    int rc, v;
    if ((rc = weir__kconf_check_keys(n, API, known_options, required_options, errstr, errlen)))
        return rc;
    c->topic = weir_node_option(n, "topic");
    c->bootstrap = weir_node_option(n, "bootstrap.servers");
    c->prefix = weir_node_option(n, "sink.transactional-id-prefix");
    if ((rc = weir__kconf_enum(n, API, "sink.delivery-guarantee", delivery_names, DG_AT_LEAST_ONCE,
                               &v, errstr, errlen)))
        return rc;
    c->delivery = (delivery_t)v;
    if ((rc = weir__kconf_enum(n, API, "sink.partitioner", partitioner_names, PT_DEFAULT, &v,
                               errstr, errlen)))
        return rc;
    c->partitioner = (partitioner_t)v;
    if ((rc = weir__kconf_enum(n, API, "key.format", key_format_names, KF_RAW, &v, errstr, errlen)))
        return rc;
    c->key_format = (key_format_t)v;
    if ((rc = weir__kconf_enum(n, API, "value.format", weir_kformat_names, WEIR_KFORMAT_STRING,
                               &c->value_format, errstr, errlen)))
        return rc;
    if ((rc = weir__kconf_int(n, API, "transaction.timeout.ms", WEIR_KAFKA_DEFAULT_TXN_TIMEOUT_MS,
                              1000, INT32_MAX, &c->txn_timeout_ms, errstr, errlen)) ||
        (rc = weir__kconf_int(n, API, "sink.transactional-id-pool-size", DEFAULT_POOL, 3, 64,
                              &c->pool, errstr, errlen)))
        return rc;
    if (c->prefix) {
        size_t len = strlen(c->prefix);
        bool ok = len > 0 && len <= MAX_PREFIX;
        for (size_t i = 0; ok && i < len; i++)
            ok = c->prefix[i] > ' ' && c->prefix[i] < 0x7f;
        if (!ok)
            return weir_errf(errstr, errlen, WEIR_EINVAL,
                             "%s '%s': option 'sink.transactional-id-prefix' must be 1 to %d "
                             "printable ASCII characters without spaces",
                             API, n->name, MAX_PREFIX);
    }
    if (c->delivery == DG_EXACTLY_ONCE) {
        /* The recovery client (kproto.h) speaks PLAINTEXT only. */
        const char *sp = weir_node_option(n, WEIR_KCONF_PROPERTIES "security.protocol");
        if (sp && strcasecmp(sp, "plaintext") != 0)
            return weir_errf(errstr, errlen, WEIR_EINVAL,
                             "%s '%s': exactly-once delivery needs a PLAINTEXT listener "
                             "(security.protocol '%s' is not supported by the transaction "
                             "recovery client yet): use a PLAINTEXT listener or at-least-once",
                             API, n->name, sp);
    }
    return 0;
}

int weir__kafka_sink_validate(const weir_node_t *n, char *errstr, size_t errlen) {
    ksink_cfg_t c;
    int rc = cfg_parse(n, &c, errstr, errlen);
    if (rc)
        return rc;
    rd_kafka_conf_t *conf = weir__kconf_new(n, API, reserved_properties, errstr, errlen);
    if (!conf)
        return WEIR_EINVAL;
    rd_kafka_conf_destroy(conf);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Producers                                                                                */
/* ---------------------------------------------------------------------------------------- */

typedef struct ksink ksink_t;

/* One librdkafka producer: the single producer of none / at-least-once, or a slot's. */
typedef struct kprod {
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt;
    int dr_err; /* first delivery error since the producer was made (rd_kafka_resp_err_t) */
    char dr_msg[256];
} kprod_t;

struct ksink {
    ksink_cfg_t cfg;
    const weir_node_t *node;
    weir_ctx_t *ctx;  /* of the call in progress (kill points) */
    weir_ctx_t *mctx; /* the operator's context from restore/open on (metrics; close too) */
    uint32_t subtask, parallelism;
    kprod_t single;        /* none / at-least-once */
    kprod_t *prods;        /* exactly-once: one per slot */
    weir_ktxn_pool_t pool; /* exactly-once */
    weir_kclient_t *kc;    /* exactly-once */
    weir_kformat_buf_t vbuf;
    int32_t n_partitions; /* fixed / round-robin partitioners */
    uint64_t rr, since_poll;
    bool ready, restored, ended, failed;
    char err[768];
};

static int sink_errf(ksink_t *s, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int sink_errf(ksink_t *s, int rc, const char *fmt, ...) {
    int n = weir_fmt(s->err, sizeof(s->err), "%s '%s': ", API, s->node->name);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err + n, sizeof(s->err) - (size_t)n, fmt, ap);
    va_end(ap);
    return rc;
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    kprod_t *p = m->_private;
    if (m->err && p && !p->dr_err) {
        p->dr_err = m->err;
        weir_fmt(p->dr_msg, sizeof(p->dr_msg), "%s", rd_kafka_err2str(m->err));
    }
}

/* Bound of the wait for purged messages' delivery reports before a producer is destroyed. */
#define PURGE_WAIT_MS 2000

/* Destroys a producer. Messages still queued or in flight (a fenced or failed producer; nothing
 * is left after a flush) are purged first and their reports served: destroying librdkafka 2.0.2
 * with produce requests of a fenced transactional producer in flight crashed it (a double free
 * in a broker thread, seen once in 02_kafka_chaos under ASan when a woken zombie task closed). */
static void producer_destroy(kprod_t *p) {
    if (p->rk) {
        rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        int64_t deadline = weir_now_ns() + (int64_t)PURGE_WAIT_MS * 1000000;
        while (rd_kafka_outq_len(p->rk) > 0 && weir_now_ns() < deadline)
            rd_kafka_poll(p->rk, 10);
    }
    if (p->rkt)
        rd_kafka_topic_destroy(p->rkt);
    if (p->rk)
        rd_kafka_destroy(p->rk);
    memset(p, 0, sizeof(*p));
}

/* Creates producer @p p; @p txn_id NULL for a non-transactional one. Errors into @p err. */
static int producer_create(ksink_t *s, kprod_t *p, const char *txn_id, char *err, size_t errlen) {
    rd_kafka_conf_t *conf = weir__kconf_new(s->node, API, reserved_properties, err, errlen);
    if (!conf)
        return WEIR_EINVAL;
    char tmo[24];
    weir_fmt(tmo, sizeof(tmo), "%lld", (long long)s->cfg.txn_timeout_ms);
    int rc = 0;
    if (s->cfg.partitioner == PT_DEFAULT) /* the Java client's partitioning of keys */
        rc = weir__kconf_set(conf, API, s->node, "partitioner", "murmur2_random", err, errlen);
    if (rc == 0 && s->cfg.delivery != DG_NONE)
        rc = weir__kconf_set(conf, API, s->node, "enable.idempotence", "true", err, errlen);
    if (rc == 0 && txn_id)
        rc = weir__kconf_set(conf, API, s->node, "transactional.id", txn_id, err, errlen);
    if (rc == 0 && txn_id)
        rc = weir__kconf_set(conf, API, s->node, "transaction.timeout.ms", tmo, err, errlen);
    if (rc != 0) {
        rd_kafka_conf_destroy(conf);
        return rc;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    char rderr[256];
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rderr, sizeof(rderr));
    if (!p->rk) {
        rd_kafka_conf_destroy(conf);
        return weir_errf(err, errlen, WEIR_EIO, "%s '%s': cannot create a producer: %s", API,
                         s->node->name, rderr);
    }
    p->rkt = rd_kafka_topic_new(p->rk, s->cfg.topic, NULL);
    if (!p->rkt) {
        rc = weir_errf(err, errlen, WEIR_EIO, "%s '%s': topic '%s': %s", API, s->node->name,
                       s->cfg.topic, rd_kafka_err2str(rd_kafka_last_error()));
        producer_destroy(p);
        return rc;
    }
    return 0;
}

/* A librdkafka error object as one line into @p err; frees it. */
static int rd_error(rd_kafka_error_t *e, const char *what, const char *id, char *err) {
    weir_fmt(err, WEIR_KTXN_ERR_CAP, "%s of transactional id %s failed: %s%s", what, id,
             rd_kafka_error_string(e), rd_kafka_error_is_fatal(e) ? " (fatal)" : "");
    rd_kafka_error_destroy(e);
    return WEIR_EIO;
}

static int flush_producer(ksink_t *s, kprod_t *p, const char *id, char *err, size_t errlen) {
    rd_kafka_resp_err_t e = rd_kafka_flush(p->rk, (int)s->cfg.txn_timeout_ms);
    if (e)
        return weir_errf(err, errlen, WEIR_EIO, "flush%s%s: %s", id ? " of " : "", id ? id : "",
                         rd_kafka_err2str(e));
    if (p->dr_err)
        return weir_errf(err, errlen, WEIR_EIO, "a record to '%s'%s%s was not delivered: %s",
                         s->cfg.topic, id ? " in transaction " : "", id ? id : "", p->dr_msg);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Exactly-once: the pool's I/O (txnpool.h)                                                  */
/* ---------------------------------------------------------------------------------------- */

static int io_describe(void *io, const char *id, weir_ktxn_info_t *out, char *err) {
    ksink_t *s = io;
    return weir_kclient_describe_txn(s->kc, id, out, err, WEIR_KTXN_ERR_CAP);
}

static int io_init(void *io, uint32_t k, const char *id, int64_t *pid, int16_t *epoch, char *err) {
    ksink_t *s = io;
    int64_t silent_ms;
    /* InitProducerId takes the id over from whoever holds it: never from a task manager that
     * may have been declared lost (a newer attempt may hold the id now). */
    if (s->ctx && !weir_ctx_lease_valid(s->ctx, &silent_ms))
        return weir_errf(err, WEIR_KTXN_ERR_CAP, WEIR_ECANCELED,
                         "not taking over transactional id %s: this task manager has not heard "
                         "from the job manager for %lld ms and may have been declared lost "
                         "(a newer attempt may own the id)",
                         id, (long long)silent_ms);
    kprod_t tmp = {0}, *p = k == UINT32_MAX ? &tmp : &s->prods[k];
    int rc = producer_create(s, p, id, err, WEIR_KTXN_ERR_CAP);
    if (rc != 0)
        return rc;
    rd_kafka_error_t *e = rd_kafka_init_transactions(p->rk, TXN_CALL_TIMEOUT_MS);
    if (e)
        rc = rd_error(e, "InitProducerId", id, err);
    /* The producer id and epoch the coordinator gave it: what EndTxn needs after a restore. */
    weir_ktxn_info_t info;
    if (rc == 0 && (rc = io_describe(s, id, &info, err)) == 0 && info.error != WEIR_KERR_NONE)
        rc = weir_errf(err, WEIR_KTXN_ERR_CAP, WEIR_EIO, "DescribeTransactions of %s: %s", id,
                       weir_kproto_err_name(info.error));
    if (rc == 0) {
        *pid = info.producer_id;
        *epoch = info.producer_epoch;
    }
    if (rc != 0 || p == &tmp)
        producer_destroy(p);
    return rc;
}

static void io_drop(void *io, uint32_t k) {
    ksink_t *s = io;
    producer_destroy(&s->prods[k]);
}

static int io_begin(void *io, uint32_t k, char *err) {
    ksink_t *s = io;
    kprod_t *p = &s->prods[k];
    p->dr_err = 0;
    rd_kafka_error_t *e = rd_kafka_begin_transaction(p->rk);
    return e ? rd_error(e, "BeginTransaction", s->pool.slots[k].id, err) : 0;
}

static int io_flush(void *io, uint32_t k, char *err) {
    ksink_t *s = io;
    return flush_producer(s, &s->prods[k], s->pool.slots[k].id, err, WEIR_KTXN_ERR_CAP);
}

static int io_commit(void *io, uint32_t k, char *err) {
    ksink_t *s = io;
    rd_kafka_error_t *e = rd_kafka_commit_transaction(s->prods[k].rk, TXN_CALL_TIMEOUT_MS);
    return e ? rd_error(e, "CommitTransaction", s->pool.slots[k].id, err) : 0;
}

static int io_abort(void *io, uint32_t k, char *err) {
    ksink_t *s = io;
    char reason[256];
    /* A fatal error (fenced by a newer producer of the id): nothing to abort; the producer can
     * only be destroyed (librdkafka's rule), and the newer producer's InitProducerId aborted
     * the transaction already. */
    if (rd_kafka_fatal_error(s->prods[k].rk, reason, sizeof(reason)))
        return weir_errf(err, WEIR_KTXN_ERR_CAP, WEIR_EIO, "producer of %s failed: %s",
                         s->pool.slots[k].id, reason);
    rd_kafka_error_t *e = rd_kafka_abort_transaction(s->prods[k].rk, ABORT_TIMEOUT_MS);
    return e ? rd_error(e, "AbortTransaction", s->pool.slots[k].id, err) : 0;
}

static int io_end_txn(void *io, const char *id, int64_t pid, int16_t epoch, bool commit,
                      int16_t *kerr, char *err) {
    ksink_t *s = io;
    return weir_kclient_end_txn(s->kc, id, pid, epoch, commit, kerr, err, WEIR_KTXN_ERR_CAP);
}

static int io_list_open(void *io, const char *prefix,
                        int (*fn)(const weir_ktxn_info_t *t, void *arg), void *arg, char *err) {
    ksink_t *s = io;
    static const char *const open_states[] = {"Ongoing", "PrepareAbort", "PrepareCommit"};
    return weir_kclient_list_txns(s->kc, prefix, open_states, 3, fn, arg, err, WEIR_KTXN_ERR_CAP);
}

static int io_abort_id(void *io, const char *id, char *err) {
    int64_t pid;
    int16_t epoch;
    return io_init(io, UINT32_MAX, id, &pid, &epoch, err);
}

static void io_killpoint(void *io, const char *point) {
    ksink_t *s = io;
    if (s->ctx)
        weir_ctx_killpoint(s->ctx, point);
}

static void io_ended(void *io, bool committed) {
    ksink_t *s = io;
    weir_ctx_kafka_txn(s->mctx, committed); /* METRICS kafka_tx_committed / _aborted */
}

static void kc_after_send(void *arg, int16_t api_key) {
    if (api_key == WEIR_KPROTO_API_END_TXN)
        io_killpoint(arg, "kafka-sink-endtxn-sent");
}

static const weir_ktxn_io_t kafka_io = {.init = io_init,
                                        .drop = io_drop,
                                        .begin = io_begin,
                                        .flush = io_flush,
                                        .commit = io_commit,
                                        .abort = io_abort,
                                        .describe = io_describe,
                                        .end_txn = io_end_txn,
                                        .list_open = io_list_open,
                                        .abort_id = io_abort_id,
                                        .killpoint = io_killpoint,
                                        .ended = io_ended};

/* ---------------------------------------------------------------------------------------- */
/* Operator                                                                                 */
/* ---------------------------------------------------------------------------------------- */

static int sink_fail(weir_operator_t *op, weir_ctx_t *ctx, int rc, const char *err) {
    ksink_t *s = op->impl;
    s->failed = true;
    weir_fail(ctx, "%s", err && err[0] ? err : weir_strerror(rc));
    return rc;
}

/* The partition count of the topic (fixed and round-robin partitioners). */
static int partitions_load(ksink_t *s, const kprod_t *p) {
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(p->rk, 0, p->rkt, &md, 10000);
    if (!e && (md->topic_cnt != 1 || md->topics[0].err))
        e = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
    if (!e && md->topics[0].partition_cnt <= 0)
        e = RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION;
    if (!e)
        s->n_partitions = md->topics[0].partition_cnt;
    if (md)
        rd_kafka_metadata_destroy(md);
    return e ? sink_errf(s, WEIR_EIO, "the partitions of topic '%s': %s", s->cfg.topic,
                         rd_kafka_err2str(e))
             : 0;
}

/* Exactly-once with a fixed or round-robin partitioner: the partition count, through any
 * initialised producer of the pool (after restore or fresh start every free slot has one). */
static int pool_partitions(ksink_t *s) {
    if (s->cfg.partitioner == PT_DEFAULT || s->n_partitions > 0)
        return 0;
    for (uint32_t k = 0; k < s->pool.size; k++)
        if (s->prods[k].rk)
            return partitions_load(s, &s->prods[k]);
    return sink_errf(s, WEIR_ESTATE, "no producer to read the partitions of '%s'", s->cfg.topic);
}

static int sink_ready(weir_operator_t *op, weir_ctx_t *ctx) {
    ksink_t *s = op->impl;
    if (s->ready)
        return 0;
    int rc = 0;
    if (s->cfg.delivery == DG_EXACTLY_ONCE) {
        char prefix[MAX_PREFIX + 1];
        if (s->cfg.prefix)
            weir_fmt(prefix, sizeof(prefix), "%s", s->cfg.prefix);
        else if (op->node->uid)
            weir_fmt(prefix, sizeof(prefix), "weir-%s-%.64s", weir_ctx_job_id(ctx), op->node->uid);
        else
            weir_fmt(prefix, sizeof(prefix), "weir-%s-n%u", weir_ctx_job_id(ctx), op->node->id);
        char err[512];
        int tmo = (int)(s->cfg.txn_timeout_ms < 60000 ? s->cfg.txn_timeout_ms : 60000);
        s->kc = weir_kclient_new(s->cfg.bootstrap, "weir-kafka-sink", tmo, err, sizeof(err));
        if (!s->kc)
            return sink_errf(s, WEIR_EINVAL, "%s", err);
        weir_kclient_set_hook(s->kc, kc_after_send, s);
        s->prods = weir_xcalloc((size_t)s->cfg.pool, sizeof(*s->prods));
        weir__ktxn_pool_init(&s->pool, &kafka_io, s, op->node->name, prefix, s->subtask,
                             s->parallelism, (uint32_t)s->cfg.pool, s->cfg.txn_timeout_ms);
    } else {
        rc = producer_create(s, &s->single, NULL, s->err, sizeof(s->err));
        if (rc == 0 && s->cfg.partitioner != PT_DEFAULT)
            rc = partitions_load(s, &s->single);
    }
    if (rc == 0)
        s->ready = true;
    return rc;
}

static int ksink_restore(weir_operator_t *op, weir_ctx_t *ctx, const weir_op_restore_t *r) {
    ksink_t *s = op->impl;
    s->mctx = ctx;
    int rc = sink_ready(op, ctx);
    if (rc != 0)
        return sink_fail(op, ctx, rc, s->err);
    s->restored = true;
    if (s->cfg.delivery != DG_EXACTLY_ONCE) {
        /* The state of an exactly-once sink (the job changed its delivery guarantee): its
         * pre-committed transactions are left to the broker's transaction timeout. */
        WEIR_WARN(COMP,
                  "%s '%s': checkpoint %llu holds pre-committed transactions of an exactly-once "
                  "sink, but it runs %s now: they are not committed (the broker aborts them after "
                  "transaction.timeout.ms)",
                  API, op->node->name, (unsigned long long)r->checkpoint_id,
                  delivery_names[s->cfg.delivery]);
        return 0;
    }
    s->ctx = ctx;
    rc = weir__ktxn_pool_restore_from(&s->pool, r);
    s->ctx = NULL;
    if (rc != 0)
        return sink_fail(op, ctx, rc, s->pool.err);
    rc = pool_partitions(s);
    return rc == 0 ? 0 : sink_fail(op, ctx, rc, s->err);
}

static int ksink_open(weir_operator_t *op, weir_ctx_t *ctx) {
    ksink_t *s = op->impl;
    s->mctx = ctx;
    int rc = sink_ready(op, ctx);
    if (rc != 0)
        return sink_fail(op, ctx, rc, s->err);
    if (s->restored || s->cfg.delivery != DG_EXACTLY_ONCE)
        return 0;
    s->ctx = ctx;
    rc = weir__ktxn_pool_start_fresh(&s->pool);
    s->ctx = NULL;
    if (rc != 0)
        return sink_fail(op, ctx, rc, s->pool.err);
    rc = pool_partitions(s);
    return rc == 0 ? 0 : sink_fail(op, ctx, rc, s->err);
}

/* Sends one record through @p p (@p id: its transactional id, for messages). */
static int produce(ksink_t *s, kprod_t *p, const char *id, const weir_record_t *rec) {
    const void *val;
    size_t vlen;
    char err[256];
    if (weir__kformat_from_msgpack((weir_kformat_t)s->cfg.value_format, rec->value, rec->value_len,
                                   &s->vbuf, &val, &vlen, err, sizeof(err)) != 0)
        return sink_errf(s, WEIR_EINVAL, "a record value cannot be written as %s: %s",
                         weir_kformat_names[s->cfg.value_format], err);
    const void *key = s->cfg.key_format == KF_RAW && rec->key_len ? rec->key : NULL;
    size_t klen = key ? rec->key_len : 0;
    int32_t part = RD_KAFKA_PARTITION_UA;
    if (s->cfg.partitioner == PT_FIXED)
        part = (int32_t)(s->subtask % (uint32_t)s->n_partitions);
    else if (s->cfg.partitioner == PT_ROUND_ROBIN)
        part = (int32_t)(s->rr++ % (uint64_t)s->n_partitions);
    for (;;) {
        rd_kafka_resp_err_t e =
            rd_kafka_producev(p->rk, RD_KAFKA_V_RKT(p->rkt), RD_KAFKA_V_PARTITION(part),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, klen),
                              RD_KAFKA_V_VALUE((void *)val, vlen),
                              RD_KAFKA_V_TIMESTAMP(rec->timestamp > 0 ? rec->timestamp : 0),
                              RD_KAFKA_V_OPAQUE(p), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
            break;
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            return sink_errf(s, WEIR_EIO, "produce to '%s'%s%s: %s", s->cfg.topic,
                             id ? " in transaction " : "", id ? id : "", rd_kafka_err2str(e));
        rd_kafka_poll(p->rk, QUEUE_FULL_WAIT_MS); /* backpressure: wait for deliveries */
    }
    if (++s->since_poll >= POLL_EVERY) {
        s->since_poll = 0;
        rd_kafka_poll(p->rk, 0);
    }
    if (p->dr_err)
        return sink_errf(s, WEIR_EIO, "a record to '%s'%s%s was not delivered: %s", s->cfg.topic,
                         id ? " in transaction " : "", id ? id : "", p->dr_msg);
    return 0;
}

static void ksink_process(weir_operator_t *op, weir_ctx_t *ctx, const weir_record_t *rec) {
    ksink_t *s = op->impl;
    if (s->failed)
        return;
    if (s->cfg.delivery != DG_EXACTLY_ONCE) {
        if (produce(s, &s->single, NULL, rec) != 0)
            sink_fail(op, ctx, WEIR_EIO, s->err);
        return;
    }
    uint32_t k;
    s->ctx = ctx;
    int rc = weir__ktxn_pool_txn(&s->pool, &k);
    s->ctx = NULL;
    if (rc != 0) {
        sink_fail(op, ctx, rc, s->pool.err);
        return;
    }
    if (produce(s, &s->prods[k], s->pool.slots[k].id, rec) != 0) {
        sink_fail(op, ctx, WEIR_EIO, s->err);
        return;
    }
    s->pool.slots[k].records++;
}

static int flush_single(ksink_t *s) {
    char err[512];
    int rc = flush_producer(s, &s->single, NULL, err, sizeof(err));
    return rc == 0 ? 0 : sink_errf(s, rc, "%s", err);
}

static void ksink_end_input(weir_operator_t *op, weir_ctx_t *ctx) {
    ksink_t *s = op->impl;
    if (s->failed || !s->ready)
        return;
    s->ended = true;
    int rc = 0;
    if (s->cfg.delivery == DG_EXACTLY_ONCE) {
        s->ctx = ctx;
        if ((rc = weir__ktxn_pool_end_input(&s->pool)) != 0)
            sink_fail(op, ctx, rc, s->pool.err);
        s->ctx = NULL;
    } else if (s->cfg.delivery == DG_AT_LEAST_ONCE && (rc = flush_single(s)) != 0) {
        sink_fail(op, ctx, rc, s->err);
    }
}

static int ksink_snapshot(weir_operator_t *op, weir_ctx_t *ctx, uint64_t checkpoint_id,
                          msgpack_packer *pk) {
    ksink_t *s = op->impl;
    if (s->failed || !s->ready) {
        weir_fail(ctx, "%s '%s': cannot snapshot a failed sink", API, op->node->name);
        return WEIR_EINVAL;
    }
    int rc = 0;
    if (s->cfg.delivery == DG_EXACTLY_ONCE) {
        s->ctx = ctx;
        rc = weir__ktxn_pool_snapshot(&s->pool, checkpoint_id, pk);
        s->ctx = NULL;
        return rc == 0 ? 0 : sink_fail(op, ctx, rc, s->pool.err);
    }
    if (s->cfg.delivery == DG_AT_LEAST_ONCE && (rc = flush_single(s)) != 0)
        return sink_fail(op, ctx, rc, s->err);
    msgpack_pack_nil(pk);
    return 0;
}

static void ksink_notify(weir_operator_t *op, weir_ctx_t *ctx, uint64_t checkpoint_id, bool final) {
    ksink_t *s = op->impl;
    if (s->failed || !s->ready || s->cfg.delivery != DG_EXACTLY_ONCE)
        return;
    s->ctx = ctx;
    int rc = weir__ktxn_pool_notify(&s->pool, checkpoint_id, final);
    s->ctx = NULL;
    if (rc != 0)
        sink_fail(op, ctx, rc, s->pool.err);
}

static void ksink_close(weir_operator_t *op) {
    ksink_t *s = op->impl;
    if (!s)
        return;
    if (s->ready && s->cfg.delivery == DG_EXACTLY_ONCE) {
        /* Without checkpointing (refused at submission, docs/kafka.md) a finished input would
         * commit here, as the file sink does. */
        if (!s->failed && s->ended && !weir__ktxn_pool_checkpointing(&s->pool) &&
            weir__ktxn_pool_commit_all(&s->pool) != 0)
            WEIR_ERROR(COMP, "%s", s->pool.err);
        weir__ktxn_pool_close(&s->pool); /* pre-committed transactions stay for the next attempt */
    } else if (s->ready && !s->failed && s->cfg.delivery == DG_AT_LEAST_ONCE &&
               flush_single(s) != 0) {
        WEIR_ERROR(COMP, "%s", s->err);
    } else if (s->ready && s->cfg.delivery == DG_NONE) {
        rd_kafka_flush(s->single.rk, 10000); /* best effort, as "none" promises */
    }
    producer_destroy(&s->single);
    free(s->prods);
    weir_kclient_free(s->kc);
    weir__kformat_buf_free(&s->vbuf);
    free(s);
    op->impl = NULL;
}

static const weir_operator_vt_t kafka_sink_vt = {.open = ksink_open,
                                                 .process = ksink_process,
                                                 .end_input = ksink_end_input,
                                                 .close = ksink_close,
                                                 .snapshot = ksink_snapshot,
                                                 .restore = ksink_restore,
                                                 .notify_complete = ksink_notify};

int weir__kafka_sink_create(weir_operator_t *op, char *errstr, size_t errlen) {
    ksink_t *s = weir_xcalloc(1, sizeof(*s));
    int rc = cfg_parse(op->node, &s->cfg, errstr, errlen);
    if (rc != 0) {
        free(s);
        return rc;
    }
    s->node = op->node;
    s->subtask = op->subtask;
    s->parallelism = op->parallelism;
    op->impl = s;
    op->vt = &kafka_sink_vt;
    return 0;
}
