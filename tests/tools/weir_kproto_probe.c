/* weir-kproto-probe: the Kafka protocol client of connectors/kafka/kproto.h from the command line,
 * for checks against a real broker (by hand, and later the integration tests), plus a librdkafka
 * producer that leaves a transaction pre-committed the way the Kafka sink does.
 *
 *   weir-kproto-probe BOOTSTRAP versions
 *   weir-kproto-probe BOOTSTRAP endtxn TXNID PID EPOCH commit|abort
 *   weir-kproto-probe BOOTSTRAP describe TXNID
 *   weir-kproto-probe BOOTSTRAP list PREFIX [STATE...]
 *   weir-kproto-probe BOOTSTRAP init TXNID
 *   weir-kproto-probe BOOTSTRAP produce-precommit TXNID TOPIC N [TXN_TIMEOUT_MS]
 *
 * versions: ApiVersions, one line "key name min max" per API the broker lists.
 * endtxn: one line "error=<NAME> code=<n>"; exit 0 when the broker answered NONE, 2 when it
 *   answered another error, 1 when no answer could be had (message on stderr).
 * describe: one line "txn_id=.. error=<NAME> state=.. producer_id=.. epoch=.. timeout_ms=..
 *   start_ms=..".
 * list: one line per open transaction whose id starts with PREFIX (in STATEs, all without):
 *   "txn_id=.. producer_id=.. state=..".
 * init: librdkafka init_transactions for TXNID (fences the previous producer: bumps the epoch,
 *   aborts its open transaction), then describe as above; exits without a transaction.
 * produce-precommit: librdkafka with transactional.id TXNID: init_transactions,
 *   begin_transaction, N records "TXNID-<i>" (key "<i>") to TOPIC, flush; then prints
 *   "producer_id=.. epoch=.. state=.. stats_producer_id=.. stats_epoch=.." (DescribeTransactions,
 *   and librdkafka's statistics "eos" object) and _exit(0)s without committing or aborting: the
 *   transaction stays open on the broker as a killed sink's pre-committed one does.
 *   TXN_TIMEOUT_MS sets transaction.timeout.ms (librdkafka's default otherwise).
 * Every command uses a 10 s timeout. Exit 1 on a usage error or failure.
 * Single-threaded (librdkafka's own threads aside). */
#include <inttypes.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/json.h"
#include "common/util.h"
#include "connectors/kafka/kproto.h"

#define TIMEOUT_MS 10000

static const char *api_name(int16_t key) {
    switch (key) {
    case 0:
        return "Produce";
    case 1:
        return "Fetch";
    case 3:
        return "Metadata";
    case 10:
        return "FindCoordinator";
    case 18:
        return "ApiVersions";
    case 22:
        return "InitProducerId";
    case 24:
        return "AddPartitionsToTxn";
    case 25:
        return "AddOffsetsToTxn";
    case 26:
        return "EndTxn";
    case 28:
        return "TxnOffsetCommit";
    case 65:
        return "DescribeTransactions";
    case 66:
        return "ListTransactions";
    default:
        return "-";
    }
}

static void print_txn(const weir_ktxn_info_t *t) {
    printf("txn_id=%s error=%s state=%s producer_id=%" PRId64 " epoch=%d timeout_ms=%d "
           "start_ms=%" PRId64 "\n",
           t->txn_id, weir_kproto_err_name(t->error), t->state[0] ? t->state : "-", t->producer_id,
           t->producer_epoch, t->txn_timeout_ms, t->txn_start_ms);
}

static int print_listed(const weir_ktxn_info_t *t, void *arg) {
    (void)arg;
    printf("txn_id=%s producer_id=%" PRId64 " state=%s\n", t->txn_id, t->producer_id, t->state);
    return 0;
}

/* librdkafka's view of the producer id and epoch (statistics "eos"), for comparison with the
 * coordinator's. */
typedef struct stats_seen {
    int64_t producer_id, epoch;
} stats_seen_t;

static int on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque) {
    (void)rk;
    stats_seen_t *s = opaque;
    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr);
    json_t *eos = root ? json_object_get(root, "eos") : NULL;
    int64_t pid, epoch;
    if (eos &&
        weir_json_int(eos, "eos", "producer_id", true, -1, INT64_MAX, -1, &pid, NULL, 0) == 0 &&
        weir_json_int(eos, "eos", "producer_epoch", true, -1, INT16_MAX, -1, &epoch, NULL, 0) ==
            0) {
        s->producer_id = pid;
        s->epoch = epoch;
    }
    json_decref(root);
    return 0; /* librdkafka frees json */
}

static bool rk_ok(rd_kafka_error_t *e, const char *what) {
    if (!e)
        return true;
    fprintf(stderr, "weir-kproto-probe: %s: %s\n", what, rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
    return false;
}

static rd_kafka_t *txn_producer(const char *bootstrap, const char *txn_id, const char *timeout,
                                stats_seen_t *seen) {
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof err) ||
        rd_kafka_conf_set(conf, "transactional.id", txn_id, err, sizeof err) ||
        rd_kafka_conf_set(conf, "statistics.interval.ms", "100", err, sizeof err) ||
        (timeout && rd_kafka_conf_set(conf, "transaction.timeout.ms", timeout, err, sizeof err))) {
        fprintf(stderr, "weir-kproto-probe: librdkafka config: %s\n", err);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_stats_cb(conf, on_stats);
    rd_kafka_conf_set_opaque(conf, seen);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "weir-kproto-probe: rd_kafka_new: %s\n", err);
        return NULL;
    }
    if (!rk_ok(rd_kafka_init_transactions(rk, TIMEOUT_MS), "init_transactions")) {
        rd_kafka_destroy(rk);
        return NULL;
    }
    return rk;
}

/* Polls until librdkafka's statistics carried a producer id (at most 5 s). */
static void wait_stats(rd_kafka_t *rk, stats_seen_t *seen) {
    int64_t until = weir_now_ns() + 5000000000LL;
    while (seen->producer_id < 0 && weir_now_ns() < until)
        rd_kafka_poll(rk, 100);
}

static int cmd_produce_precommit(weir_kclient_t *c, const char *bootstrap, char **argv, int argc) {
    if (argc < 3)
        return -1;
    const char *txn_id = argv[0], *topic = argv[1];
    int64_t n;
    if (weir_parse_int(argv[2], 0, 100000000, &n) != 0) {
        fprintf(stderr, "weir-kproto-probe: N must be 0..100000000\n");
        return 1;
    }
    stats_seen_t seen = {-1, -1};
    rd_kafka_t *rk = txn_producer(bootstrap, txn_id, argc > 3 ? argv[3] : NULL, &seen);
    if (!rk)
        return 1;
    if (!rk_ok(rd_kafka_begin_transaction(rk), "begin_transaction"))
        return 1;
    for (int64_t i = 0; i < n; i++) {
        char key[32], val[WEIR_KPROTO_MAX_TXN_ID + 32];
        weir_fmt(key, sizeof key, "%" PRId64, i);
        weir_fmt(val, sizeof val, "%s-%" PRId64, txn_id, i);
        for (;;) {
            rd_kafka_resp_err_t e =
                rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
                                  RD_KAFKA_V_VALUE(val, strlen(val)),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
            if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                rd_kafka_poll(rk, 10);
                continue;
            }
            if (e) {
                fprintf(stderr, "weir-kproto-probe: produce: %s\n", rd_kafka_err2str(e));
                return 1;
            }
            break;
        }
    }
    rd_kafka_resp_err_t fe = rd_kafka_flush(rk, TIMEOUT_MS);
    if (fe) {
        fprintf(stderr, "weir-kproto-probe: flush: %s\n", rd_kafka_err2str(fe));
        return 1;
    }
    wait_stats(rk, &seen);
    weir_ktxn_info_t t;
    char err[512];
    if (weir_kclient_describe_txn(c, txn_id, &t, err, sizeof err) != 0) {
        fprintf(stderr, "weir-kproto-probe: %s\n", err);
        return 1;
    }
    printf("producer_id=%" PRId64 " epoch=%d state=%s stats_producer_id=%" PRId64
           " stats_epoch=%" PRId64 "\n",
           t.producer_id, t.producer_epoch, t.state, seen.producer_id, seen.epoch);
    fflush(stdout);
    _exit(0); /* no commit, no abort, no destroy: the transaction stays open */
}

static int cmd_init(weir_kclient_t *c, const char *bootstrap, char **argv, int argc) {
    if (argc < 1)
        return -1;
    stats_seen_t seen = {-1, -1};
    rd_kafka_t *rk = txn_producer(bootstrap, argv[0], NULL, &seen);
    if (!rk)
        return 1;
    wait_stats(rk, &seen);
    weir_ktxn_info_t t;
    char err[512];
    int rc = weir_kclient_describe_txn(c, argv[0], &t, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "weir-kproto-probe: %s\n", err);
    else
        printf("producer_id=%" PRId64 " epoch=%d state=%s stats_producer_id=%" PRId64
               " stats_epoch=%" PRId64 "\n",
               t.producer_id, t.producer_epoch, t.state, seen.producer_id, seen.epoch);
    rd_kafka_destroy(rk);
    return rc != 0;
}

static int run(weir_kclient_t *c, const char *bootstrap, const char *cmd, char **argv, int argc) {
    char err[512];
    if (!strcmp(cmd, "versions")) {
        weir_kproto_api_range_t r[256];
        size_t n;
        int16_t kerr;
        if (weir_kclient_api_versions(c, &kerr, r, 256, &n, err, sizeof err) != 0) {
            fprintf(stderr, "weir-kproto-probe: %s\n", err);
            return 1;
        }
        printf("error=%s\n", weir_kproto_err_name(kerr));
        for (size_t i = 0; i < n; i++)
            printf("%d %s %d %d\n", r[i].key, api_name(r[i].key), r[i].min, r[i].max);
        return 0;
    }
    if (!strcmp(cmd, "endtxn")) {
        int64_t pid, epoch;
        if (argc != 4 || weir_parse_int(argv[1], 0, INT64_MAX, &pid) != 0 ||
            weir_parse_int(argv[2], 0, INT16_MAX, &epoch) != 0 ||
            (strcmp(argv[3], "commit") && strcmp(argv[3], "abort")))
            return -1;
        int16_t kerr;
        int rc = weir_kclient_end_txn(c, argv[0], pid, (int16_t)epoch, !strcmp(argv[3], "commit"),
                                      &kerr, err, sizeof err);
        if (rc != 0) {
            fprintf(stderr, "weir-kproto-probe: %s\n", err);
            return 1;
        }
        printf("error=%s code=%d\n", weir_kproto_err_name(kerr), kerr);
        if (kerr)
            fprintf(stderr, "weir-kproto-probe: %s\n", err);
        return kerr ? 2 : 0;
    }
    if (!strcmp(cmd, "describe")) {
        if (argc != 1)
            return -1;
        weir_ktxn_info_t t;
        if (weir_kclient_describe_txn(c, argv[0], &t, err, sizeof err) != 0) {
            fprintf(stderr, "weir-kproto-probe: %s\n", err);
            return 1;
        }
        print_txn(&t);
        return 0;
    }
    if (!strcmp(cmd, "list")) {
        if (argc < 1)
            return -1;
        int rc = weir_kclient_list_txns(c, argv[0], (const char *const *)argv + 1, (size_t)argc - 1,
                                        print_listed, NULL, err, sizeof err);
        if (rc != 0)
            fprintf(stderr, "weir-kproto-probe: %s\n", err);
        return rc != 0;
    }
    if (!strcmp(cmd, "init"))
        return cmd_init(c, bootstrap, argv, argc);
    if (!strcmp(cmd, "produce-precommit"))
        return cmd_produce_precommit(c, bootstrap, argv, argc);
    return -1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: weir-kproto-probe BOOTSTRAP versions | endtxn TXNID PID EPOCH "
                        "commit|abort | describe TXNID | list PREFIX [STATE...] | init TXNID | "
                        "produce-precommit TXNID TOPIC N [TXN_TIMEOUT_MS]\n");
        return 1;
    }
    char err[512];
    weir_kclient_t *c = weir_kclient_new(argv[1], "weir-kproto-probe", TIMEOUT_MS, err, sizeof err);
    if (!c) {
        fprintf(stderr, "weir-kproto-probe: %s\n", err);
        return 1;
    }
    int rc = run(c, argv[1], argv[2], argv + 3, argc - 3);
    weir_kclient_free(c);
    if (rc < 0) {
        fprintf(stderr,
                "weir-kproto-probe: bad arguments for '%s' (run without arguments for "
                "the usage)\n",
                argv[2]);
        return 1;
    }
    return rc;
}
