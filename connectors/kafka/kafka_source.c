/* Kafka source (docs/kafka.md, "Source"; connectors/kafka/README.md): the records of a topic list
 * or pattern, read with librdkafka, exactly once through weir's checkpoints.
 *
 * Owns: the WEIR_OP_SOURCE_KAFKA operator, its option checks (weir__kafka_source_validate,
 * weir__ksrc_opts_parse), the partition assignment and its checkpoint state (ksource.h).
 *
 * Invariants:
 *  - Partitions are assigned, never subscribed: subtask s of p reads exactly the partitions with
 *    weir__kafka_partition_owner(topic, partition, p) == s (Flink's rule), with rd_kafka_assign()
 *    at explicit offsets. No consumer-group membership, no rebalancing; offsets are never stored
 *    or committed automatically.
 *  - Every message run() takes from librdkafka's queue is emitted (or skipped, when at or past a
 *    bounded partition's stop) before run() returns, so between run() calls `next` of each
 *    partition is exactly the offset after the last record emitted (or the end a partition-EOF
 *    event reported, which lies after every message before it). A snapshot (between run() calls)
 *    therefore holds exactly what was emitted before its barrier.
 *  - Restore: partitions of the state resume at their `next`; partitions found later than the
 *    state (created since) start at the earliest offset. At another parallelism each subtask
 *    takes, from the union of the old subtasks' states, the partitions Flink's rule assigns it
 *    at the new parallelism (weir__ksrc_state_restore): every partition to exactly one subtask. A
 * fresh start applies scan.startup.mode to every partition found by the first discovery, resolved
 * to offsets in open() (latest, timestamp, group offsets), so a state never holds a moving
 * position.
 *  - Bounded mode: the stop offsets are the end offsets (read_committed: the last stable offset)
 *    taken at the fresh start, kept in the state, so every restore reads up to the same end. A
 *    partition is finished when next >= stop; run() returns WEIR_SOURCE_END when all are.
 *  - Offsets are committed to the group (only when the user set group.id) for the checkpoint
 *    whose completion is notified, never used for recovery.
 *
 * State (one msgpack map per subtask; version 1):
 *   KEY          TYPE                     DESCRIPTION
 *   "version"    uint                     1
 *   "bounded"    bool                     the stop offsets below are meaningful
 *   "partitions" array of [str, int, int, int]
 *                                         [topic, partition, next offset (-2 = earliest),
 *                                          stop offset (-1 when unbounded)], sorted by topic
 *                                          then partition; exactly the partitions of the subtask
 *   "event_time" map (only with a watermark strategy; older readers ignore it):
 *                {"wm": int, "idle": bool, "max": array of [str, int, int]}
 *                                         the subtask's watermark and idle status, and per
 *                                         partition [topic, partition, max record timestamp]
 *                                         (docs/event-time.md, "Recovery"); a restore takes the
 *                                         lowest "wm" of the old subtasks it takes partitions
 *                                         from, idle only if all were
 *
 * Event time: each partition is a watermark split, numbered when first assigned (wm_splits).
 *
 * Threading: the operator runs on its subtask thread. librdkafka calls log_cb from its own
 * threads (it only logs); error_cb and the commit callback run inside rd_kafka_poll() /
 * rd_kafka_queue_poll_callback() on the subtask thread. close() hands a consumer with group
 * commits still in flight to a detached thread that destroys it (nothing else is shared). */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "connectors/common/pacing.h"
#include "connectors/kafka/kafka.h"
#include "connectors/kafka/kconf.h"
#include "connectors/kafka/ksource.h"

#define COMP "kafka"
/* Messages taken from librdkafka per run() call (the runtime's budget is at most this). */
#define KSRC_BATCH_MAX 512u
/* Bound of all the blocking librdkafka calls of open() together (metadata, offset queries,
 * committed offsets), and of the periodic discovery's metadata request. */
#define KSRC_OPEN_TIMEOUT_MS 10000
#define KSRC_DISCOVERY_TIMEOUT_MS 1000
/* Idle wait between two polls of an empty queue: doubling from MIN to MAX while nothing comes. */
#define KSRC_IDLE_MIN_NS 1000000LL
#define KSRC_IDLE_MAX_NS 4000000LL
/* The lag metric (weir_ctx_kafka_lag) is recomputed at most this often, from librdkafka's cached
 * watermarks (no broker request). */
#define KSRC_LAG_EVERY_NS 1000000000LL
/* Checkpoints whose offsets wait for their completion (for the group commit). */
#define KSRC_PENDING_COMMITS 16
/* close(): longest wait for in-flight group commits (a consumer with some left is destroyed by a
 * detached thread: librdkafka waits for them up to session.timeout.ms when the brokers are gone,
 * set to this by default, and up to socket.timeout.ms when a broker hangs). */
#define KSRC_CLOSE_COMMIT_WAIT_MS 2000
#define KSRC_SESSION_TIMEOUT_MS "6000"
/* next offset still to be resolved by the startup mode (never in a state) */
#define KSRC_UNRESOLVED INT64_MIN

/* ------------------------------------------------------------------------------------------ */
/* Options                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static const char *const ksrc_known[] = {"bootstrap.servers",
                                         "topic",
                                         "topic-pattern",
                                         "group.id",
                                         "scan.startup.mode",
                                         "scan.startup.timestamp-millis",
                                         "scan.bounded.mode",
                                         "scan.topic-partition-discovery.interval",
                                         "scan.rate-limit",
                                         "isolation.level",
                                         "key.format",
                                         "value.format",
                                         NULL};
static const char *const ksrc_required[] = {"bootstrap.servers", NULL};
/* librdkafka properties the source sets itself (properties.<these> are refused). */
static const char *const ksrc_reserved[] = {
    "bootstrap.servers",    "metadata.broker.list",     "group.id",
    "enable.auto.commit",   "enable.auto.offset.store", "isolation.level",
    "enable.partition.eof", "auto.offset.reset",        NULL};
static const char *const startup_names[] = {"earliest-offset", "latest-offset", "group-offsets",
                                            "timestamp", NULL};
static const char *const bounded_names[] = {"unbounded", "latest-offset", NULL};
static const char *const isolation_names[] = {"read_committed", "read_uncommitted", NULL};

void weir__ksrc_opts_free(weir_ksrc_opts_t *o) {
    for (size_t i = 0; i < o->n_topics; i++)
        free(o->topics[i]);
    free(o->topics);
    if (o->has_pattern)
        regfree(&o->pattern);
    memset(o, 0, sizeof(*o));
}

static bool topic_name_ok(const char *s, size_t n) {
    if (n == 0 || n > WEIR_KSRC_MAX_TOPIC || (n == 1 && s[0] == '.') ||
        (n == 2 && s[0] == '.' && s[1] == '.'))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* "topic": a comma-separated list of names (spaces around names ignored). */
static int parse_topics(const weir_node_t *n, const char *list, weir_ksrc_opts_t *o, char *errstr,
                        size_t errlen) {
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        while (p < end && *p == ' ')
            p++;
        const char *e = end;
        while (e > p && e[-1] == ' ')
            e--;
        size_t len = (size_t)(e - p);
        if (!topic_name_ok(p, len))
            return weir_errf(errstr, errlen, WEIR_EINVAL,
                             WEIR_KSRC_API " '%s': option 'topic' is '%s': '%.*s' is not a Kafka "
                                           "topic name (1 to 249 of a-z A-Z 0-9 . _ -; separate "
                                           "topics with ',')",
                             n->name, list, (int)len, p);
        for (size_t i = 0; i < o->n_topics; i++)
            if (strlen(o->topics[i]) == len && memcmp(o->topics[i], p, len) == 0)
                return weir_errf(errstr, errlen, WEIR_EINVAL,
                                 WEIR_KSRC_API " '%s': option 'topic' names '%.*s' twice", n->name,
                                 (int)len, p);
        o->topics = realloc(o->topics, (o->n_topics + 1) * sizeof(*o->topics));
        if (!o->topics)
            abort(); /* a few names, bounded by the option's length */
        o->topics[o->n_topics] = weir_xcalloc(len + 1, 1);
        memcpy(o->topics[o->n_topics++], p, len);
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

static int parse_opts(const weir_node_t *n, weir_ksrc_opts_t *o, char *errstr, size_t errlen) {
    const char *api = WEIR_KSRC_API;
    int rc = weir__kconf_check_keys(n, api, ksrc_known, ksrc_required, errstr, errlen);
    if (rc)
        return rc;
    const char *topic = weir_node_option(n, "topic");
    const char *pattern = weir_node_option(n, "topic-pattern");
    if ((topic != NULL) == (pattern != NULL))
        return weir_errf(errstr, errlen, WEIR_EINVAL,
                         "%s '%s': give exactly one of the options 'topic' (a comma-separated "
                         "list) and 'topic-pattern' (a regular expression)%s",
                         api, n->name, topic ? ", not both" : "");
    if (topic && (rc = parse_topics(n, topic, o, errstr, errlen)) != 0)
        return rc;
    if (pattern) {
        size_t plen = strlen(pattern);
        char *anchored = weir_xcalloc(plen + 5, 1);
        snprintf(anchored, plen + 5, "^(%s)$", pattern);
        int rrc = regcomp(&o->pattern, anchored, REG_EXTENDED | REG_NOSUB);
        free(anchored);
        if (rrc != 0) {
            char why[128];
            regerror(rrc, &o->pattern, why, sizeof(why));
            return weir_errf(errstr, errlen, WEIR_EINVAL,
                             "%s '%s': option 'topic-pattern' is '%s': not a POSIX extended "
                             "regular expression: %s",
                             api, n->name, pattern, why);
        }
        o->has_pattern = true;
    }
    o->group_id = weir_node_option(n, "group.id");
    if (o->group_id && !*o->group_id)
        return weir_errf(errstr, errlen, WEIR_EINVAL,
                         "%s '%s': option 'group.id' is empty: give a group name or leave it out",
                         api, n->name);
    int v;
    if ((rc = weir__kconf_enum(n, api, "scan.startup.mode", startup_names, 0, &v, errstr,
                               errlen)) != 0)
        return rc;
    o->startup = (weir_ksrc_startup_t)v;
    const char *ts = weir_node_option(n, "scan.startup.timestamp-millis");
    if (o->startup == WEIR_KSRC_START_TIMESTAMP && !ts)
        return weir_errf(errstr, errlen, WEIR_EINVAL,
                         "%s '%s': scan.startup.mode 'timestamp' needs the option "
                         "'scan.startup.timestamp-millis' (milliseconds since the epoch)",
                         api, n->name);
    if (o->startup != WEIR_KSRC_START_TIMESTAMP && ts)
        return weir_errf(errstr, errlen, WEIR_EINVAL,
                         "%s '%s': option 'scan.startup.timestamp-millis' is only used with "
                         "scan.startup.mode 'timestamp': remove it or set the mode",
                         api, n->name);
    if ((rc = weir__kconf_int(n, api, "scan.startup.timestamp-millis", 0, 0, INT64_MAX,
                              &o->startup_ts_ms, errstr, errlen)) != 0)
        return rc;
    if (o->startup == WEIR_KSRC_START_GROUP && !o->group_id)
        return weir_errf(errstr, errlen, WEIR_EINVAL,
                         "%s '%s': scan.startup.mode 'group-offsets' needs the option 'group.id'",
                         api, n->name);
    if ((rc = weir__kconf_enum(n, api, "scan.bounded.mode", bounded_names, 0, &v, errstr,
                               errlen)) != 0)
        return rc;
    o->bounded = v == 1;
    if ((rc = weir__kconf_int(n, api, "scan.topic-partition-discovery.interval", 10000, 0,
                              INT32_MAX, &o->discovery_ms, errstr, errlen)) != 0)
        return rc;
    if ((rc = weir__kconf_enum(n, api, "isolation.level", isolation_names, 0, &v, errstr,
                               errlen)) != 0)
        return rc;
    o->read_committed = v == 0;
    if ((rc = weir__kconf_enum(n, api, "key.format", weir_kformat_names, WEIR_KFORMAT_RAW, &v,
                               errstr, errlen)) != 0)
        return rc;
    o->key_format = (weir_kformat_t)v;
    if ((rc = weir__kconf_enum(n, api, "value.format", weir_kformat_names, WEIR_KFORMAT_STRING, &v,
                               errstr, errlen)) != 0)
        return rc;
    o->value_format = (weir_kformat_t)v;
    int64_t rate;
    if ((rc = weir__kconf_int(n, api, "scan.rate-limit", 0, 0, 1000000000, &rate, errstr,
                              errlen)) != 0)
        return rc;
    o->rate = (double)rate;
    return 0;
}

int weir__ksrc_opts_parse(const weir_node_t *n, weir_ksrc_opts_t *o, char *errstr, size_t errlen) {
    memset(o, 0, sizeof(*o));
    int rc = parse_opts(n, o, errstr, errlen);
    if (rc)
        weir__ksrc_opts_free(o);
    return rc;
}

bool weir__ksrc_topic_matches(const weir_ksrc_opts_t *o, const char *topic) {
    if (o->has_pattern)
        return strncmp(topic, "__", 2) != 0 && regexec(&o->pattern, topic, 0, NULL, 0) == 0;
    for (size_t i = 0; i < o->n_topics; i++)
        if (strcmp(o->topics[i], topic) == 0)
            return true;
    return false;
}

rd_kafka_conf_t *weir__ksrc_conf(const weir_node_t *n, const weir_ksrc_opts_t *o, const char *group,
                                 char *errstr, size_t errlen) {
    rd_kafka_conf_t *conf = weir__kconf_new(n, WEIR_KSRC_API, ksrc_reserved, errstr, errlen);
    if (!conf)
        return NULL;
    const char *fixed[][2] = {
        {"group.id", group},
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"isolation.level", o->read_committed ? "read_committed" : "read_uncommitted"},
        {"enable.partition.eof", "true"},
        {"auto.offset.reset", "earliest"},
    };
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        if (weir__kconf_set(conf, WEIR_KSRC_API, n, fixed[i][0], fixed[i][1], errstr, errlen)) {
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    /* The source never joins its group; librdkafka's session timeout bounds only how long
     * destroying the consumer waits for a group commit still in flight when the brokers are gone
     * (45 s by default). Kept shorter unless the user sets it. */
    if (!weir_node_option(n, WEIR_KCONF_PROPERTIES "session.timeout.ms") &&
        weir__kconf_set(conf, WEIR_KSRC_API, n, "session.timeout.ms", KSRC_SESSION_TIMEOUT_MS,
                        errstr, errlen)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

int weir__kafka_source_validate(const weir_node_t *n, char *errstr, size_t errlen) {
    weir_ksrc_opts_t o;
    int rc = weir__ksrc_opts_parse(n, &o, errstr, errlen);
    if (rc)
        return rc;
    rd_kafka_conf_t *conf = weir__ksrc_conf(n, &o, "weir-validate", errstr, errlen);
    weir__ksrc_opts_free(&o);
    if (!conf)
        return WEIR_EINVAL;
    rd_kafka_conf_destroy(conf);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Assignment                                                                                 */
/* ------------------------------------------------------------------------------------------ */

int32_t weir__kafka_java_hash(const char *s) {
    uint32_t h = 0; /* Java's int arithmetic: wraps modulo 2^32 */
    for (; *s; s++)
        h = 31u * h + (uint8_t)*s;
    return (int32_t)h;
}

uint32_t weir__kafka_partition_owner(const char *topic, int32_t partition, uint32_t parallelism) {
    uint32_t p = parallelism ? parallelism : 1;
    uint32_t start = (((uint32_t)weir__kafka_java_hash(topic) * 31u) & 0x7fffffffu) % p;
    return (uint32_t)(((uint64_t)start + (uint64_t)(uint32_t)partition) % p);
}

/* ------------------------------------------------------------------------------------------ */
/* Partition table and state                                                                  */
/* ------------------------------------------------------------------------------------------ */

void weir__kparts_free(weir_kparts_t *t) {
    for (size_t i = 0; i < t->n; i++)
        free(t->v[i].topic);
    free(t->v);
    memset(t, 0, sizeof(*t));
}

static int kpart_cmp(const char *topic, int32_t partition, const weir_kpart_t *b) {
    int c = strcmp(topic, b->topic);
    if (c)
        return c;
    return partition < b->partition ? -1 : partition > b->partition;
}

/* The first index whose entry is >= (topic, partition). */
static size_t lower_bound(const weir_kparts_t *t, const char *topic, int32_t partition) {
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (kpart_cmp(topic, partition, &t->v[mid]) > 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

ptrdiff_t weir__kparts_find(const weir_kparts_t *t, const char *topic, int32_t partition) {
    size_t i = lower_bound(t, topic, partition);
    return i < t->n && kpart_cmp(topic, partition, &t->v[i]) == 0 ? (ptrdiff_t)i : -1;
}

ptrdiff_t weir__kparts_add(weir_kparts_t *t, const char *topic, int32_t partition, int64_t next,
                           int64_t stop) {
    size_t i = lower_bound(t, topic, partition);
    char *dup = strdup(topic);
    if (!dup || weir_array_grow((void **)&t->v, &t->cap, t->n + 1, sizeof(*t->v), 8) != 0) {
        free(dup);
        return -1;
    }
    memmove(&t->v[i + 1], &t->v[i], (t->n - i) * sizeof(*t->v));
    t->v[i] = (weir_kpart_t){.topic = dup,
                             .partition = partition,
                             .next = next,
                             .stop = stop,
                             .finished = false,
                             .max_ts = INT64_MIN};
    t->n++;
    return (ptrdiff_t)i;
}

static void pack_cstr(msgpack_packer *pk, const char *s) {
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

int weir__ksrc_state_pack(msgpack_packer *pk, const weir_kparts_t *t, bool bounded) {
    int rc = msgpack_pack_map(pk, t->has_et ? 4 : 3);
    pack_cstr(pk, "version");
    msgpack_pack_uint32(pk, WEIR_KSRC_STATE_VERSION);
    pack_cstr(pk, "bounded");
    rc |= bounded ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    pack_cstr(pk, "partitions");
    rc |= msgpack_pack_array(pk, t->n);
    for (size_t i = 0; i < t->n; i++) {
        const weir_kpart_t *p = &t->v[i];
        rc |= msgpack_pack_array(pk, 4);
        pack_cstr(pk, p->topic);
        rc |= msgpack_pack_int32(pk, p->partition);
        rc |= msgpack_pack_int64(pk, p->next);
        rc |= msgpack_pack_int64(pk, bounded ? p->stop : -1);
    }
    if (t->has_et) { /* {"wm", "idle", "max": [[topic, partition, max timestamp], ...]} */
        pack_cstr(pk, "event_time");
        rc |= msgpack_pack_map(pk, 3);
        pack_cstr(pk, "wm");
        rc |= msgpack_pack_int64(pk, t->wm);
        pack_cstr(pk, "idle");
        rc |= t->idle ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
        pack_cstr(pk, "max");
        rc |= msgpack_pack_array(pk, t->n);
        for (size_t i = 0; i < t->n; i++) {
            rc |= msgpack_pack_array(pk, 3);
            pack_cstr(pk, t->v[i].topic);
            rc |= msgpack_pack_int32(pk, t->v[i].partition);
            rc |= msgpack_pack_int64(pk, t->v[i].max_ts);
        }
    }
    return rc ? WEIR_ENOMEM : 0;
}

static bool obj_is_str(const msgpack_object *o, const char *s) {
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
           memcmp(o->via.str.ptr, s, o->via.str.size) == 0;
}

/* An integer object in [min, max]. */
static bool obj_int(const msgpack_object *o, int64_t min, int64_t max, int64_t *out) {
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (o->via.u64 > (uint64_t)INT64_MAX || (int64_t)o->via.u64 > max ||
            (int64_t)o->via.u64 < min)
            return false;
        *out = (int64_t)o->via.u64;
        return true;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        if (o->via.i64 < min || o->via.i64 > max)
            return false;
        *out = o->via.i64;
        return true;
    }
    return false;
}

/* The state's "event_time" map into @p t (its partitions already read); frees @p t on error. */
static int et_unpack(const msgpack_object *et, weir_kparts_t *t, char *errstr, size_t errlen) {
    const msgpack_object *wm = NULL, *idle = NULL, *max = NULL;
    for (uint32_t i = 0; i < et->via.map.size; i++) {
        const msgpack_object *k = &et->via.map.ptr[i].key, *v = &et->via.map.ptr[i].val;
        if (obj_is_str(k, "wm"))
            wm = v;
        else if (obj_is_str(k, "idle"))
            idle = v;
        else if (obj_is_str(k, "max"))
            max = v;
    }
    int64_t w;
    if (!wm || !obj_int(wm, INT64_MIN, INT64_MAX, &w) || !idle ||
        idle->type != MSGPACK_OBJECT_BOOLEAN || !max || max->type != MSGPACK_OBJECT_ARRAY) {
        weir__kparts_free(t);
        return weir_errf(errstr, errlen, WEIR_ECORRUPT,
                         "\"event_time\" is not {\"wm\", \"idle\", \"max\"}");
    }
    t->has_et = true;
    t->wm = w;
    t->idle = idle->via.boolean;
    for (uint32_t i = 0; i < max->via.array.size; i++) {
        const msgpack_object *e = &max->via.array.ptr[i], *f = e->via.array.ptr;
        int64_t partition, ts;
        char topic[WEIR_KSRC_MAX_TOPIC + 1];
        if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 3 ||
            f[0].type != MSGPACK_OBJECT_STR || f[0].via.str.size > WEIR_KSRC_MAX_TOPIC ||
            !obj_int(&f[1], 0, INT32_MAX, &partition) ||
            !obj_int(&f[2], INT64_MIN, INT64_MAX, &ts)) {
            weir__kparts_free(t);
            return weir_errf(errstr, errlen, WEIR_ECORRUPT,
                             "\"event_time\" max %u is not [topic, partition, timestamp]", i);
        }
        memcpy(topic, f[0].via.str.ptr, f[0].via.str.size);
        topic[f[0].via.str.size] = 0;
        ptrdiff_t k = weir__kparts_find(t, topic, (int32_t)partition);
        if (k >= 0)
            t->v[k].max_ts = ts;
    }
    return 0;
}

int weir__ksrc_state_unpack(const msgpack_object *o, weir_kparts_t *t, bool *bounded, char *errstr,
                            size_t errlen) {
    const msgpack_object *parts = NULL, *et = NULL;
    int64_t version = -1;
    bool has_bounded = false;
    memset(t, 0, sizeof(*t));
    if (o->type != MSGPACK_OBJECT_MAP)
        return weir_errf(errstr, errlen, WEIR_ECORRUPT, "the state is not a map");
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;
        if (obj_is_str(k, "version")) {
            if (!obj_int(v, 0, INT32_MAX, &version))
                return weir_errf(errstr, errlen, WEIR_ECORRUPT, "\"version\" is not a number");
        } else if (obj_is_str(k, "bounded")) {
            if (v->type != MSGPACK_OBJECT_BOOLEAN)
                return weir_errf(errstr, errlen, WEIR_ECORRUPT, "\"bounded\" is not a boolean");
            *bounded = v->via.boolean;
            has_bounded = true;
        } else if (obj_is_str(k, "partitions")) {
            if (v->type != MSGPACK_OBJECT_ARRAY)
                return weir_errf(errstr, errlen, WEIR_ECORRUPT, "\"partitions\" is not an array");
            parts = v;
        } else if (obj_is_str(k, "event_time")) {
            if (v->type != MSGPACK_OBJECT_MAP)
                return weir_errf(errstr, errlen, WEIR_ECORRUPT, "\"event_time\" is not a map");
            et = v;
        }
    }
    if (version != WEIR_KSRC_STATE_VERSION)
        return weir_errf(errstr, errlen, WEIR_ECORRUPT,
                         version < 0 ? "the state has no \"version\""
                                     : "state version %lld: this weir reads version %d only",
                         (long long)version, WEIR_KSRC_STATE_VERSION);
    if (!has_bounded || !parts)
        return weir_errf(errstr, errlen, WEIR_ECORRUPT, "the state lacks \"%s\"",
                         !has_bounded ? "bounded" : "partitions");
    for (uint32_t i = 0; i < parts->via.array.size; i++) {
        const msgpack_object *e = &parts->via.array.ptr[i];
        int64_t partition, next, stop;
        char topic[WEIR_KSRC_MAX_TOPIC + 1];
        const msgpack_object *f = e->via.array.ptr;
        if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 4 ||
            f[0].type != MSGPACK_OBJECT_STR ||
            !topic_name_ok(f[0].via.str.ptr, f[0].via.str.size) ||
            !obj_int(&f[1], 0, INT32_MAX, &partition) || !obj_int(&f[2], -2, INT64_MAX, &next) ||
            next == -1 || !obj_int(&f[3], *bounded ? 0 : -1, *bounded ? INT64_MAX : -1, &stop)) {
            weir__kparts_free(t);
            return weir_errf(errstr, errlen, WEIR_ECORRUPT,
                             "partition entry %u is not [topic, partition, next offset (>= 0 or "
                             "-2), stop offset (>= 0 when bounded, else -1)]",
                             i);
        }
        memcpy(topic, f[0].via.str.ptr, f[0].via.str.size);
        topic[f[0].via.str.size] = 0;
        if (weir__kparts_find(t, topic, (int32_t)partition) >= 0) {
            weir__kparts_free(t);
            return weir_errf(errstr, errlen, WEIR_ECORRUPT, "partition %s-%lld appears twice",
                             topic, (long long)partition);
        }
        if (weir__kparts_add(t, topic, (int32_t)partition, next, stop) < 0) {
            weir__kparts_free(t);
            return weir_errf(errstr, errlen, WEIR_ENOMEM, "out of memory");
        }
    }
    return et ? et_unpack(et, t, errstr, errlen) : 0;
}

int weir__ksrc_state_restore(const weir_op_restore_t *r, uint32_t subtask, uint32_t parallelism,
                             weir_kparts_t *t, bool *bounded, char *errstr, size_t errlen) {
    weir_kparts_t seen = {0}, one = {0};
    memset(t, 0, sizeof(*t));
    int rc = 0;
    char err[256];
    for (uint32_t i = 0; i < r->n && rc == 0; i++) {
        bool b = false;
        if (weir__ksrc_state_unpack(&r->states[i], &one, &b, err, sizeof(err)) != 0) {
            rc = weir_errf(errstr, errlen, WEIR_ECORRUPT, "old subtask %u: %s", r->old_subtask[i],
                           err);
            break;
        }
        if (i > 0 && b != *bounded)
            rc = weir_errf(errstr, errlen, WEIR_ECORRUPT,
                           "old subtask %u's state is %s, old subtask %u's is not",
                           r->old_subtask[i], b ? "bounded" : "unbounded", r->old_subtask[0]);
        *bounded = b;
        for (size_t k = 0; k < one.n && rc == 0; k++) {
            const weir_kpart_t *p = &one.v[k];
            if (weir__kparts_find(&seen, p->topic, p->partition) >= 0) {
                rc = weir_errf(errstr, errlen, WEIR_ECORRUPT,
                               "partition %s-%" PRId32 " is in the states of two old subtasks",
                               p->topic, p->partition);
                break;
            }
            if (weir__kparts_add(&seen, p->topic, p->partition, 0, -1) < 0) {
                rc = weir_errf(errstr, errlen, WEIR_ENOMEM, "out of memory");
                break;
            }
            uint32_t owner = weir__kafka_partition_owner(p->topic, p->partition, parallelism);
            if (owner != subtask && r->old_parallelism == parallelism) {
                rc = weir_errf(errstr, errlen, WEIR_ECORRUPT,
                               "old subtask %u's state holds partition %s-%" PRId32
                               ", which subtask %u reads at parallelism %u",
                               r->old_subtask[i], p->topic, p->partition, owner, parallelism);
                break;
            }
            if (owner != subtask)
                continue;
            ptrdiff_t at = weir__kparts_add(t, p->topic, p->partition, p->next, p->stop);
            if (at < 0) {
                rc = weir_errf(errstr, errlen, WEIR_ENOMEM, "out of memory");
                break;
            }
            t->v[at].max_ts = p->max_ts;
            if (one.has_et) { /* event time: the lowest watermark, idle only if all were */
                t->wm = !t->has_et || one.wm < t->wm ? one.wm : t->wm;
                t->idle = (!t->has_et || t->idle) && one.idle;
                t->has_et = true;
            }
        }
        weir__kparts_free(&one);
    }
    weir__kparts_free(&seen);
    if (rc != 0)
        weir__kparts_free(t);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Operator                                                                                   */
/* ------------------------------------------------------------------------------------------ */

typedef struct pending_commit {
    uint64_t checkpoint_id;
    rd_kafka_topic_partition_list_t *offsets;
} pending_commit_t;

typedef struct ksrc {
    const weir_node_t *node;
    uint32_t subtask, parallelism;
    weir_ksrc_opts_t o;
    char group[96]; /* group.id given to librdkafka (the user's, or an unused internal one) */
    rd_kafka_t *rk;
    rd_kafka_queue_t *q;  /* the consumer queue: messages and consumer errors */
    rd_kafka_queue_t *cq; /* results of the group commits */
    weir_kparts_t parts;  /* the partitions this subtask reads */
    uint32_t wm_n;        /* event time: watermark splits numbered so far (wm_splits) */
    size_t n_unfinished;  /* bounded mode */
    bool restored;        /* started from a checkpoint: parts came from its state */
    bool restored_bounded;
    int64_t open_deadline_ns; /* open(): when its blocking calls must have ended */
    int64_t next_discovery_ns;
    int64_t next_lag_ns; /* next recomputation of the lag metric */
    int64_t idle_ns;
    weir_rate_t rate;
    rd_kafka_message_t **batch;
    weir_kformat_buf_t keybuf, scratch;
    /* lookup cache within one batch: the last message's topic handle and partition -> index */
    const rd_kafka_topic_t *last_rkt;
    int32_t last_partition;
    ptrdiff_t last_idx;
    pending_commit_t pending[KSRC_PENDING_COMMITS];
    size_t n_pending;
    int commits_in_flight;
    char fatal[512]; /* set by error_cb: a fatal librdkafka error */
} ksrc_t;

static const char *startup_name(const ksrc_t *s) {
    return startup_names[s->o.startup];
}

/* What is left of open()'s time for the next blocking call (at least 100 ms). */
static int open_left_ms(const ksrc_t *s) {
    int64_t left = (s->open_deadline_ns - weir_now_ns()) / 1000000;
    return left > 100 ? (int)left : 100;
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    (void)rk;
    weir_log_level_t l = level <= 4 ? WEIR_LOG_WARN : level <= 6 ? WEIR_LOG_INFO : WEIR_LOG_DEBUG;
    weir_log(l, COMP, "librdkafka %s: %s", fac, buf);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    ksrc_t *s = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[256];
        rd_kafka_resp_err_t ferr = rd_kafka_fatal_error(rk, why, sizeof(why));
        if (!s->fatal[0])
            weir_fmt(s->fatal, sizeof(s->fatal),
                     WEIR_KSRC_API " '%s': fatal librdkafka error %s: %s", s->node->name,
                     rd_kafka_err2name(ferr), why);
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__AUTHENTICATION || err == RD_KAFKA_RESP_ERR__SSL) {
        if (!s->fatal[0])
            weir_fmt(s->fatal, sizeof(s->fatal),
                     WEIR_KSRC_API " '%s': %s: %s (check properties.security.*/sasl.*/ssl.*)",
                     s->node->name, rd_kafka_err2name(err), reason);
        return;
    }
    /* transient (brokers down, timeouts): librdkafka keeps retrying */
    WEIR_WARN(COMP, WEIR_KSRC_API " '%s' subtask %u: %s: %s (retrying)", s->node->name, s->subtask,
              rd_kafka_err2name(err), reason);
}

static void commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *offsets, void *opaque) {
    ksrc_t *s = opaque;
    (void)rk;
    s->commits_in_flight--;
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
        WEIR_WARN(COMP,
                  WEIR_KSRC_API " '%s' subtask %u: committing offsets to group '%s' failed: "
                                "%s (monitoring only: recovery uses the checkpoint)",
                  s->node->name, s->subtask, s->group, rd_kafka_err2str(err));
    for (int i = 0; offsets && i < offsets->cnt; i++)
        if (offsets->elems[i].err)
            WEIR_WARN(COMP, WEIR_KSRC_API " '%s': commit of %s-%" PRId32 " failed: %s",
                      s->node->name, offsets->elems[i].topic, offsets->elems[i].partition,
                      rd_kafka_err2str(offsets->elems[i].err));
}

static void set_finished(ksrc_t *s, weir_kpart_t *p) {
    if (!p->finished && p->stop >= 0) {
        p->finished = true;
        s->n_unfinished--;
    }
}

/* Bounded mode: marks every partition whose next reached its stop. @returns how many were. */
static size_t mark_finished(ksrc_t *s) {
    size_t k = 0;
    s->n_unfinished = 0;
    for (size_t i = 0; i < s->parts.n; i++) {
        weir_kpart_t *p = &s->parts.v[i];
        /* an empty partition is finished before its first (logical) offset is resolved */
        p->finished = p->stop >= 0 && (p->next >= p->stop || (p->next < 0 && p->stop == 0));
        k += p->finished;
        s->n_unfinished += p->stop >= 0 && !p->finished;
    }
    return k;
}

/* Assigns every unfinished partition at its next offset (replacing the assignment). */
/* Event time: every partition is a watermark split of this subtask, numbered in the order this
 * subtask first assigned it (the table's indices move when discovery inserts partitions); a
 * finished partition (bounded mode) no longer holds the watermark back. */
static void wm_splits(ksrc_t *s, weir_ctx_t *ctx) {
    if (!weir_source_has_watermarks(ctx))
        return;
    for (size_t i = 0; i < s->parts.n; i++) {
        weir_kpart_t *p = &s->parts.v[i];
        if (!p->wm_split) {
            p->wm_split = ++s->wm_n;
            weir_source_split_add(ctx, p->wm_split - 1, p->max_ts);
        }
        if (p->finished && !p->wm_done) {
            p->wm_done = true;
            weir_source_split_done(ctx, p->wm_split - 1);
        }
    }
}

static int assign_all(ksrc_t *s, weir_ctx_t *ctx) {
    wm_splits(s, ctx);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)s->parts.n);
    for (size_t i = 0; i < s->parts.n; i++) {
        const weir_kpart_t *p = &s->parts.v[i];
        if (!p->finished)
            rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset = p->next;
    }
    rd_kafka_resp_err_t err = rd_kafka_assign(s->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    s->last_rkt = NULL;
    if (err) {
        weir_fail(ctx, WEIR_KSRC_API " '%s': assigning %zu partitions failed: %s", s->node->name,
                  s->parts.n, rd_kafka_err2str(err));
        return WEIR_EIO;
    }
    return 0;
}

/* What the first discovery lacked (start_fresh retries within open()'s time). */
typedef struct discovery_gaps {
    bool missing; /* a topic of the list does not exist */
    bool errors;  /* a topic of the list or matching the pattern had an error (no leader yet) */
    char what[256];
} discovery_gaps_t;

/* Adds every partition the metadata shows that this subtask owns and does not read yet, at
 * offset @p next; *gaps says what was missing. @returns how many were added, or < 0 (message in
 * errstr). */
static int discover(ksrc_t *s, int timeout_ms, int64_t next, discovery_gaps_t *gaps, char *errstr,
                    size_t errlen) {
    const struct rd_kafka_metadata *md = NULL;
    memset(gaps, 0, sizeof(*gaps));
    rd_kafka_resp_err_t err = rd_kafka_metadata(s->rk, 1, NULL, &md, timeout_ms);
    if (err)
        return weir_errf(
            errstr, errlen, WEIR_ENET, "no metadata from bootstrap.servers '%s' within %d ms: %s",
            weir_node_option(s->node, "bootstrap.servers"), timeout_ms, rd_kafka_err2str(err));
    int added = 0;
    for (int i = 0; i < md->topic_cnt; i++) {
        const struct rd_kafka_metadata_topic *t = &md->topics[i];
        if (!weir__ksrc_topic_matches(&s->o, t->topic))
            continue;
        if (t->err) {
            WEIR_DEBUG(COMP, WEIR_KSRC_API " '%s': topic '%s': %s (retrying)", s->node->name,
                       t->topic, rd_kafka_err2str(t->err));
            if (!gaps->errors && !gaps->missing)
                weir_fmt(gaps->what, sizeof(gaps->what), "topic '%s': %s", t->topic,
                         rd_kafka_err2str(t->err));
            gaps->errors = true;
            continue;
        }
        for (int k = 0; k < t->partition_cnt; k++) {
            int32_t part = t->partitions[k].id;
            if (weir__kafka_partition_owner(t->topic, part, s->parallelism) != s->subtask ||
                weir__kparts_find(&s->parts, t->topic, part) >= 0)
                continue;
            if (weir__kparts_add(&s->parts, t->topic, part, next, -1) < 0) {
                rd_kafka_metadata_destroy(md);
                return weir_errf(errstr, errlen, WEIR_ENOMEM, "out of memory");
            }
            added++;
        }
    }
    for (size_t i = 0; i < s->o.n_topics; i++) {
        bool found = false;
        for (int k = 0; k < md->topic_cnt && !found; k++)
            found = strcmp(md->topics[k].topic, s->o.topics[i]) == 0;
        if (!found && !gaps->missing) {
            gaps->missing = true;
            weir_fmt(gaps->what, sizeof(gaps->what), "topic '%s' does not exist", s->o.topics[i]);
        }
    }
    rd_kafka_metadata_destroy(md);
    return added;
}

/* The offsets ListOffsets gives for @p spec (-1: the end, which is the last stable offset with
 * read_committed; a timestamp: the first offset at or after it, -1 when none) of every partition
 * whose next is KSRC_UNRESOLVED, into @p out (indexed like parts). @returns 0 or < 0. */
static int list_offsets(ksrc_t *s, int64_t spec, int64_t *out, char *errstr, size_t errlen) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)s->parts.n);
    for (size_t i = 0; i < s->parts.n; i++)
        if (s->parts.v[i].next == KSRC_UNRESOLVED)
            rd_kafka_topic_partition_list_add(l, s->parts.v[i].topic, s->parts.v[i].partition)
                ->offset = spec;
    int rc = 0;
    rd_kafka_resp_err_t err = l->cnt ? rd_kafka_offsets_for_times(s->rk, l, open_left_ms(s)) : 0;
    if (err)
        rc = weir_errf(errstr, errlen, WEIR_ENET, "listing offsets failed within %d ms: %s",
                       KSRC_OPEN_TIMEOUT_MS, rd_kafka_err2str(err));
    for (int i = 0; i < l->cnt && !rc; i++) {
        const rd_kafka_topic_partition_t *e = &l->elems[i];
        if (e->err) {
            rc = weir_errf(errstr, errlen, WEIR_ENET, "listing offsets of %s-%" PRId32 ": %s",
                           e->topic, e->partition, rd_kafka_err2str(e->err));
            break;
        }
        out[weir__kparts_find(&s->parts, e->topic, e->partition)] = e->offset;
    }
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

/* Fresh start: resolves the startup mode (and in bounded mode the stop offsets) of every
 * partition whose next is KSRC_UNRESOLVED. @returns 0 or < 0. */
static int resolve_startup(ksrc_t *s, char *errstr, size_t errlen) {
    size_t n = s->parts.n;
    int64_t *end = weir_xcalloc(n, sizeof(*end));
    int64_t *at = weir_xcalloc(n, sizeof(*at));
    int rc = 0;
    bool need_end = s->o.bounded || s->o.startup == WEIR_KSRC_START_LATEST ||
                    s->o.startup == WEIR_KSRC_START_TIMESTAMP;
    if (need_end)
        rc = list_offsets(s, RD_KAFKA_OFFSET_END, end, errstr, errlen);
    if (!rc && s->o.startup == WEIR_KSRC_START_TIMESTAMP)
        rc = list_offsets(s, s->o.startup_ts_ms, at, errstr, errlen);
    rd_kafka_topic_partition_list_t *committed = NULL;
    if (!rc && s->o.startup == WEIR_KSRC_START_GROUP) {
        committed = rd_kafka_topic_partition_list_new((int)n);
        for (size_t i = 0; i < n; i++)
            if (s->parts.v[i].next == KSRC_UNRESOLVED)
                rd_kafka_topic_partition_list_add(committed, s->parts.v[i].topic,
                                                  s->parts.v[i].partition);
        rd_kafka_resp_err_t err =
            committed->cnt ? rd_kafka_committed(s->rk, committed, open_left_ms(s)) : 0;
        if (err)
            rc = weir_errf(errstr, errlen, WEIR_ENET,
                           "reading the committed offsets of group '%s' failed within %d ms: %s",
                           s->group, KSRC_OPEN_TIMEOUT_MS, rd_kafka_err2str(err));
        for (int i = 0; !rc && i < committed->cnt; i++) {
            const rd_kafka_topic_partition_t *e = &committed->elems[i];
            ptrdiff_t k = weir__kparts_find(&s->parts, e->topic, e->partition);
            at[k] = e->err || e->offset < 0 ? RD_KAFKA_OFFSET_BEGINNING : e->offset;
            if (at[k] == RD_KAFKA_OFFSET_BEGINNING)
                WEIR_INFO(COMP,
                          WEIR_KSRC_API " '%s': group '%s' has no committed offset for %s-%" PRId32
                                        ": starting at the earliest offset",
                          s->node->name, s->group, e->topic, e->partition);
        }
        rd_kafka_topic_partition_list_destroy(committed);
    }
    for (size_t i = 0; i < n && !rc; i++) {
        weir_kpart_t *p = &s->parts.v[i];
        if (p->next != KSRC_UNRESOLVED)
            continue;
        switch (s->o.startup) {
        case WEIR_KSRC_START_EARLIEST:
            p->next = RD_KAFKA_OFFSET_BEGINNING;
            break;
        case WEIR_KSRC_START_LATEST:
            p->next = end[i];
            break;
        case WEIR_KSRC_START_TIMESTAMP: /* no record at or after it: the end */
            p->next = at[i] >= 0 ? at[i] : end[i];
            break;
        case WEIR_KSRC_START_GROUP:
            p->next = at[i];
            break;
        }
        if (s->o.bounded) {
            p->stop = end[i];
            /* a start past the end (a committed offset or a timestamp after it) reads nothing */
            if (p->next > p->stop)
                p->next = p->stop;
        }
    }
    free(end);
    free(at);
    return rc;
}

/* Fresh start: the first discovery, then the startup offsets. Topics with errors (no leader
 * yet) are waited for within open()'s time, and so are missing topics of the list when the
 * source could not pick them up later (bounded, or no discovery); otherwise a missing topic is
 * read from its earliest offset once discovered. */
static int start_fresh(ksrc_t *s, weir_ctx_t *ctx) {
    char err[512] = "";
    bool later = !s->o.bounded && s->o.discovery_ms > 0; /* discovery picks topics up */
    for (;;) {
        discovery_gaps_t gaps;
        int rc = discover(s, open_left_ms(s), KSRC_UNRESOLVED, &gaps, err, sizeof(err));
        if (rc < 0) {
            weir_fail(ctx, WEIR_KSRC_API " '%s': %s", s->node->name, err);
            return rc;
        }
        if (!gaps.errors && (!gaps.missing || later)) {
            if (gaps.missing)
                WEIR_WARN(COMP,
                          WEIR_KSRC_API " '%s': %s: reading the topics found; it is read from "
                                        "its earliest offset once discovered",
                          s->node->name, gaps.what);
            break;
        }
        if (weir_now_ns() >= s->open_deadline_ns) {
            if (!later) {
                weir_fail(ctx,
                          WEIR_KSRC_API " '%s': %s after %d ms%s: create the topics before "
                                        "the job starts",
                          s->node->name, gaps.what, KSRC_OPEN_TIMEOUT_MS,
                          s->o.bounded ? " (bounded mode)" : " (partition discovery is off)");
                return WEIR_ENOTFOUND;
            }
            WEIR_WARN(COMP,
                      WEIR_KSRC_API " '%s': %s after %d ms: reading the topics found; the others "
                                    "from their earliest offset once discovered",
                      s->node->name, gaps.what, KSRC_OPEN_TIMEOUT_MS);
            break;
        }
        weir_sleep_ns(100 * 1000000LL);
    }
    int rc = resolve_startup(s, err, sizeof(err));
    if (rc) {
        weir_fail(ctx, WEIR_KSRC_API " '%s': scan.startup.mode '%s': %s", s->node->name,
                  startup_name(s), err);
        return rc;
    }
    return 0;
}

/* Restored (parts: this subtask's share of the states, weir__ksrc_state_restore): check the
 * state against the options; in unbounded mode add the partitions the states do not hold (created
 * since, or of a topic the job reads now) from their earliest offset. */
static int start_restored(ksrc_t *s, weir_ctx_t *ctx) {
    if (s->o.bounded && !s->restored_bounded) {
        weir_fail(ctx,
                  WEIR_KSRC_API " '%s': the checkpoint was taken by an unbounded source: it has "
                                "no end offsets for scan.bounded.mode 'latest-offset'",
                  s->node->name);
        return WEIR_EINVAL;
    }
    if (!s->o.bounded) {
        for (size_t i = 0; i < s->parts.n; i++)
            s->parts.v[i].stop = -1;
        char err[512];
        discovery_gaps_t gaps;
        int rc = discover(s, open_left_ms(s), RD_KAFKA_OFFSET_BEGINNING, &gaps, err, sizeof(err));
        if (rc < 0) {
            weir_fail(ctx, WEIR_KSRC_API " '%s': %s", s->node->name, err);
            return rc;
        }
        if (rc > 0)
            WEIR_INFO(COMP,
                      WEIR_KSRC_API " '%s' subtask %u: %d partitions newer than the "
                                    "checkpoint, read from their earliest offset",
                      s->node->name, s->subtask, rc);
    }
    return 0;
}

static int ksrc_open(weir_operator_t *op, weir_ctx_t *ctx) {
    ksrc_t *s = op->impl;
    char err[512];
    if (s->o.group_id)
        weir_fmt(s->group, sizeof(s->group), "%s", s->o.group_id);
    else /* librdkafka needs a group to assign partitions; nothing joins or commits it */
        weir_fmt(s->group, sizeof(s->group), "weir-%s-unused", weir_ctx_job_id(ctx));
    rd_kafka_conf_t *conf =
        weir__ksrc_conf(s->node, &s->o, s->o.group_id ? s->o.group_id : s->group, err, sizeof(err));
    if (!conf) {
        weir_fail(ctx, "%s", err);
        return WEIR_EINVAL;
    }
    char client_id[160];
    if (!weir_node_option(s->node, "properties.client.id")) {
        weir_fmt(client_id, sizeof(client_id), "weir-%s-%u", s->node->name, s->subtask);
        rd_kafka_conf_set(conf, "client.id", client_id, NULL, 0);
    }
    rd_kafka_conf_set_opaque(conf, s);
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    s->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!s->rk) {
        rd_kafka_conf_destroy(conf);
        weir_fail(ctx, WEIR_KSRC_API " '%s': cannot create the consumer: %s", s->node->name, err);
        return WEIR_EINVAL;
    }
    s->q = rd_kafka_queue_get_consumer(s->rk);
    s->cq = rd_kafka_queue_new(s->rk);
    if (!s->q || !s->cq) {
        weir_fail(ctx, WEIR_KSRC_API " '%s': no consumer queue", s->node->name);
        return WEIR_EIO;
    }
    s->open_deadline_ns = weir_now_ns() + (int64_t)KSRC_OPEN_TIMEOUT_MS * 1000000;
    int rc = s->restored ? start_restored(s, ctx) : start_fresh(s, ctx);
    if (rc)
        return rc;
    mark_finished(s);
    if (s->o.bounded) {
        /* no discovery: the partitions are those of the start */
        WEIR_INFO(COMP, WEIR_KSRC_API " '%s' subtask %u: bounded, %zu partitions, %zu to read",
                  s->node->name, s->subtask, s->parts.n, s->n_unfinished);
    }
    s->next_discovery_ns = weir_now_ns() + s->o.discovery_ms * 1000000;
    s->idle_ns = KSRC_IDLE_MIN_NS;
    weir__rate_init(&s->rate, s->o.rate, 1);
    rc = assign_all(s, ctx); /* registers the partitions as watermark splits */
    if (rc == 0 && s->restored && s->parts.has_et)
        weir_source_watermark_floor(ctx, s->parts.wm, s->parts.idle);
    return rc;
}

static ptrdiff_t find_msg_part(ksrc_t *s, const rd_kafka_message_t *m) {
    if (m->rkt == s->last_rkt && m->partition == s->last_partition)
        return s->last_idx;
    ptrdiff_t i = weir__kparts_find(&s->parts, rd_kafka_topic_name(m->rkt), m->partition);
    s->last_rkt = m->rkt;
    s->last_partition = m->partition;
    s->last_idx = i;
    return i;
}

/* A consumer error delivered as a message. @returns 0 to go on, < 0 after weir_fail. */
static int on_consumer_error(ksrc_t *s, weir_ctx_t *ctx, const rd_kafka_message_t *m,
                             bool *changed) {
    const char *topic = m->rkt ? rd_kafka_topic_name(m->rkt) : "";
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        /* every message before m->offset was delivered before this event */
        ptrdiff_t i = find_msg_part(s, m);
        if (i < 0 || m->offset <= s->parts.v[i].next)
            return 0;
        weir_kpart_t *p = &s->parts.v[i];
        p->next = p->stop >= 0 && m->offset > p->stop ? p->stop : m->offset;
        if (p->stop >= 0 && p->next >= p->stop) {
            set_finished(s, p);
            *changed = true;
        }
        return 0;
    }
    switch (m->err) {
    case RD_KAFKA_RESP_ERR__FATAL:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET:
        weir_fail(ctx, WEIR_KSRC_API " '%s': consuming %s-%" PRId32 " failed: %s: %s",
                  s->node->name, topic, m->partition, rd_kafka_err2name(m->err),
                  rd_kafka_message_errstr(m));
        return WEIR_EIO;
    default:
        WEIR_WARN(COMP, WEIR_KSRC_API " '%s' subtask %u: %s-%" PRId32 ": %s (retrying)",
                  s->node->name, s->subtask, topic, m->partition, rd_kafka_message_errstr(m));
        return 0;
    }
}

/* Emits one record. @returns 1 emitted, 0 skipped, < 0 after weir_fail. */
static int on_message(ksrc_t *s, weir_ctx_t *ctx, const rd_kafka_message_t *m, bool *changed) {
    ptrdiff_t i = find_msg_part(s, m);
    if (i < 0)
        return 0; /* not ours (fetched before the last assignment) */
    weir_kpart_t *p = &s->parts.v[i];
    if (p->finished)
        return 0;
    if (p->stop >= 0 && m->offset >= p->stop) {
        p->next = p->stop;
        set_finished(s, p);
        *changed = true;
        return 0;
    }
    if (p->next >= 0 && m->offset < p->next)
        return 0; /* before the assigned offset: already emitted */
    char err[256];
    const void *key;
    size_t key_len;
    int rc = weir__kformat_key(s->o.key_format, m->key, m->key_len, &s->keybuf, &key, &key_len, err,
                               sizeof(err));
    if (rc == 0 && key_len > WEIR_MAX_KEY_LEN)
        rc = weir_errf(err, sizeof(err), WEIR_EINVAL,
                       "the key has %zu bytes, more than weir's limit of %u", key_len,
                       WEIR_MAX_KEY_LEN);
    if (rc) {
        weir_fail(ctx,
                  WEIR_KSRC_API " '%s': record %s-%" PRId32 " offset %" PRId64
                                ": key (key.format %s): %s",
                  s->node->name, p->topic, p->partition, m->offset,
                  weir_kformat_names[s->o.key_format], err);
        return rc;
    }
    msgpack_packer *pk = weir_packer(ctx);
    rc = weir__kformat_to_msgpack(s->o.value_format, m->payload, m->len, pk, &s->scratch, err,
                                  sizeof(err));
    if (rc) {
        weir_fail(ctx,
                  WEIR_KSRC_API " '%s': record %s-%" PRId32 " offset %" PRId64
                                ": value (value.format %s): %s",
                  s->node->name, p->topic, p->partition, m->offset,
                  weir_kformat_names[s->o.value_format], err);
        return rc;
    }
    rd_kafka_timestamp_type_t tstype;
    int64_t ts = rd_kafka_message_timestamp(m, &tstype);
    if (p->wm_split)
        weir_source_split(ctx, p->wm_split - 1);
    weir_emit_packed(ctx, ts >= 0 ? ts : weir_wall_ms(), key, (uint32_t)key_len);
    p->next = m->offset + 1;
    if (p->stop >= 0 && p->next >= p->stop) {
        set_finished(s, p);
        *changed = true;
    }
    return 1;
}

/* Periodic discovery (unbounded mode): new partitions start at their earliest offset. */
static int rediscover(ksrc_t *s, weir_ctx_t *ctx) {
    char err[512];
    discovery_gaps_t gaps;
    int rc =
        discover(s, KSRC_DISCOVERY_TIMEOUT_MS, RD_KAFKA_OFFSET_BEGINNING, &gaps, err, sizeof(err));
    if (rc < 0) {
        WEIR_WARN(COMP,
                  WEIR_KSRC_API " '%s' subtask %u: partition discovery: %s (retrying in %lld "
                                "ms)",
                  s->node->name, s->subtask, err, (long long)s->o.discovery_ms);
        return 0;
    }
    if (rc == 0)
        return 0;
    WEIR_INFO(COMP,
              WEIR_KSRC_API " '%s' subtask %u: %d new partitions, read from their earliest "
                            "offset",
              s->node->name, s->subtask, rc);
    return assign_all(s, ctx);
}

/* Reports the subtask's lag (METRICS kafka_lag): over its partitions, the high watermark (with
 * read_committed librdkafka reports the last stable offset) or, bounded, the stop offset if
 * lower, minus the position `next` (the low watermark while nothing was read). Reads
 * librdkafka's cached watermarks of its last fetch responses (rd_kafka_get_watermark_offsets: no
 * request, no blocking); partitions not fetched yet are left out; -1 when none is known. */
static void report_lag(ksrc_t *s, weir_ctx_t *ctx) {
    int64_t lag = 0;
    size_t known = 0;
    for (size_t i = 0; i < s->parts.n; i++) {
        const weir_kpart_t *p = &s->parts.v[i];
        int64_t lo = -1, hi = -1;
        if (rd_kafka_get_watermark_offsets(s->rk, p->topic, p->partition, &lo, &hi) || hi < 0)
            continue;
        int64_t end = p->stop >= 0 && p->stop < hi ? p->stop : hi;
        int64_t pos = p->next >= 0 ? p->next : lo;
        if (pos < 0)
            continue;
        known++;
        if (end > pos)
            lag += end - pos;
    }
    weir_ctx_kafka_lag(ctx, known || !s->parts.n ? lag : -1);
}

static int ksrc_run(weir_operator_t *op, weir_ctx_t *ctx, uint32_t budget, int64_t *wake_ns) {
    ksrc_t *s = op->impl;
    rd_kafka_poll(s->rk, 0); /* error events */
    rd_kafka_queue_poll_callback(s->cq, 0);
    if (s->fatal[0]) {
        weir_fail(ctx, "%s", s->fatal);
        return WEIR_EIO;
    }
    if (s->o.bounded && s->n_unfinished == 0)
        return WEIR_SOURCE_END;
    int64_t now = weir_now_ns();
    if (!s->o.bounded && s->o.discovery_ms > 0 && now >= s->next_discovery_ns) {
        int rc = rediscover(s, ctx);
        if (rc)
            return rc;
        now = weir_now_ns();
        s->next_discovery_ns = now + s->o.discovery_ms * 1000000;
    }
    uint32_t k = budget < KSRC_BATCH_MAX ? budget : KSRC_BATCH_MAX;
    if (s->rate.per_sec > 0) {
        k = weir__rate_permits(&s->rate, now, k, wake_ns);
        if (k == 0)
            return WEIR_SOURCE_MORE;
    }
    /* a topic handle lives as long as its messages: the cache holds only within one batch */
    s->last_rkt = NULL;
    ssize_t n = rd_kafka_consume_batch_queue(s->q, 0, s->batch, k);
    if (n < 0) {
        weir_fail(ctx, WEIR_KSRC_API " '%s': reading the consumer queue failed: %s", s->node->name,
                  rd_kafka_err2str(rd_kafka_last_error()));
        return WEIR_EIO;
    }
    int rc = 0;
    bool changed = false;
    uint64_t emitted = 0;
    for (ssize_t i = 0; i < n; i++) {
        rd_kafka_message_t *m = s->batch[i];
        if (rc == 0) {
            int r =
                m->err ? on_consumer_error(s, ctx, m, &changed) : on_message(s, ctx, m, &changed);
            if (r < 0)
                rc = r;
            else
                emitted += (uint64_t)r;
        }
        rd_kafka_message_destroy(m);
    }
    weir__rate_note(&s->rate, emitted);
    if (rc)
        return rc;
    if (s->o.bounded && s->n_unfinished == 0)
        return WEIR_SOURCE_END;
    if (changed && (rc = assign_all(s, ctx)) != 0) /* stop fetching finished partitions */
        return rc;
    if (now >= s->next_lag_ns) {
        report_lag(s, ctx);
        s->next_lag_ns = now + KSRC_LAG_EVERY_NS;
    }
    if (n == 0) {
        *wake_ns = now + s->idle_ns;
        s->idle_ns = s->idle_ns * 2 < KSRC_IDLE_MAX_NS ? s->idle_ns * 2 : KSRC_IDLE_MAX_NS;
    } else {
        s->idle_ns = KSRC_IDLE_MIN_NS;
    }
    return WEIR_SOURCE_MORE;
}

static int ksrc_snapshot(weir_operator_t *op, weir_ctx_t *ctx, uint64_t checkpoint_id,
                         msgpack_packer *pk) {
    ksrc_t *s = op->impl;
    if (weir_source_has_watermarks(ctx)) { /* event time: stored with the offsets */
        s->parts.has_et = true;
        s->parts.wm = weir_source_watermark(ctx);
        s->parts.idle = weir_source_idle(ctx);
        for (size_t i = 0; i < s->parts.n; i++)
            if (s->parts.v[i].wm_split)
                s->parts.v[i].max_ts = weir_source_split_max(ctx, s->parts.v[i].wm_split - 1);
    }
    if (weir__ksrc_state_pack(pk, &s->parts, s->o.bounded) != 0) {
        weir_fail(ctx, WEIR_KSRC_API " '%s': out of memory packing the state", s->node->name);
        return WEIR_ENOMEM;
    }
    if (!s->o.group_id)
        return 0;
    /* the offsets to commit to the group once this checkpoint completes */
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)s->parts.n);
    for (size_t i = 0; i < s->parts.n; i++)
        if (s->parts.v[i].next >= 0)
            rd_kafka_topic_partition_list_add(l, s->parts.v[i].topic, s->parts.v[i].partition)
                ->offset = s->parts.v[i].next;
    if (s->n_pending == KSRC_PENDING_COMMITS) { /* drop the oldest: never completed */
        rd_kafka_topic_partition_list_destroy(s->pending[0].offsets);
        memmove(&s->pending[0], &s->pending[1], (KSRC_PENDING_COMMITS - 1) * sizeof(s->pending[0]));
        s->n_pending--;
    }
    s->pending[s->n_pending++] = (pending_commit_t){checkpoint_id, l};
    return 0;
}

/* Checkpoint @p checkpoint_id completed (@p final: it holds the final snapshot, whose hook id is
 * 0): commits the offsets of the newest snapshot it covers (a completed checkpoint covers every
 * older one) and forgets every covered snapshot. */
static void ksrc_notify(weir_operator_t *op, weir_ctx_t *ctx, uint64_t checkpoint_id, bool final) {
    ksrc_t *s = op->impl;
    (void)ctx;
    ptrdiff_t best = -1;
    uint64_t best_rank = 0;
    for (size_t i = 0; i < s->n_pending; i++) {
        uint64_t id = s->pending[i].checkpoint_id;
        bool covered = id == 0 ? final : id <= checkpoint_id;
        uint64_t rank = id == 0 ? UINT64_MAX : id;
        if (covered && (best < 0 || rank > best_rank)) {
            best = (ptrdiff_t)i;
            best_rank = rank;
        }
    }
    if (best >= 0 && s->pending[best].offsets->cnt > 0 && s->rk) {
        rd_kafka_resp_err_t err =
            rd_kafka_commit_queue(s->rk, s->pending[best].offsets, s->cq, commit_cb, s);
        if (err)
            WEIR_WARN(COMP, WEIR_KSRC_API " '%s': committing to group '%s': %s", s->node->name,
                      s->group, rd_kafka_err2str(err));
        else
            s->commits_in_flight++;
    }
    size_t keep = 0;
    for (size_t i = 0; i < s->n_pending; i++) {
        uint64_t id = s->pending[i].checkpoint_id;
        if (id == 0 ? final : id <= checkpoint_id)
            rd_kafka_topic_partition_list_destroy(s->pending[i].offsets);
        else
            s->pending[keep++] = s->pending[i];
    }
    s->n_pending = keep;
}

static int ksrc_restore(weir_operator_t *op, weir_ctx_t *ctx, const weir_op_restore_t *r) {
    ksrc_t *s = op->impl;
    char err[384];
    weir__kparts_free(&s->parts);
    if (weir__ksrc_state_restore(r, s->subtask, s->parallelism, &s->parts, &s->restored_bounded,
                                 err, sizeof(err)) != 0) {
        weir_fail(ctx, WEIR_KSRC_API " '%s': checkpoint %" PRIu64 ": bad state: %s", s->node->name,
                  r->checkpoint_id, err);
        return WEIR_ECORRUPT;
    }
    s->restored = true;
    if (r->old_parallelism != s->parallelism)
        WEIR_INFO(COMP,
                  WEIR_KSRC_API " '%s' subtask %u of %u: %zu partitions of the %u old subtasks' "
                                "states",
                  s->node->name, s->subtask, s->parallelism, s->parts.n, r->old_parallelism);
    return 0;
}

/* Destroys a consumer (no group to leave). Also a detached thread's body; touches nothing of the
 * operator (librdkafka's remaining callbacks are log_cb only: the queues that would call the
 * others are gone). */
static void *destroy_consumer(void *rk) {
    rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    return NULL;
}

static void ksrc_close(weir_operator_t *op) {
    ksrc_t *s = op->impl;
    if (!s)
        return;
    if (s->rk && s->cq) { /* give in-flight group commits a bounded moment */
        int64_t deadline = weir_now_ns() + (int64_t)KSRC_CLOSE_COMMIT_WAIT_MS * 1000000;
        while (s->commits_in_flight > 0 && weir_now_ns() < deadline)
            rd_kafka_queue_poll_callback(s->cq, 100);
    }
    if (s->q)
        rd_kafka_queue_destroy(s->q);
    if (s->cq)
        rd_kafka_queue_destroy(s->cq);
    if (s->rk && s->commits_in_flight > 0) {
        /* librdkafka's destroy would wait for them up to socket.timeout.ms (60 s) when a broker
         * hangs: let a thread of its own wait, so that the task ends now */
        pthread_attr_t attr;
        pthread_t th;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&th, &attr, destroy_consumer, s->rk) == 0) {
            WEIR_WARN(COMP,
                      WEIR_KSRC_API " '%s' subtask %u: %d group commits still in flight after %d "
                                    "ms: the consumer is destroyed in the background",
                      s->node->name, s->subtask, s->commits_in_flight, KSRC_CLOSE_COMMIT_WAIT_MS);
            s->rk = NULL;
        }
        pthread_attr_destroy(&attr);
    }
    if (s->rk) /* no group membership to leave, nothing to commit */
        destroy_consumer(s->rk);
    for (size_t i = 0; i < s->n_pending; i++)
        rd_kafka_topic_partition_list_destroy(s->pending[i].offsets);
    weir__kparts_free(&s->parts);
    weir__ksrc_opts_free(&s->o);
    weir__kformat_buf_free(&s->keybuf);
    weir__kformat_buf_free(&s->scratch);
    free(s->batch);
    free(s);
    op->impl = NULL;
}

static const weir_operator_vt_t kafka_source_vt = {.open = ksrc_open,
                                                   .run = ksrc_run,
                                                   .close = ksrc_close,
                                                   .snapshot = ksrc_snapshot,
                                                   .restore = ksrc_restore,
                                                   .notify_complete = ksrc_notify};

int weir__kafka_source_create(weir_operator_t *op, char *errstr, size_t errlen) {
    ksrc_t *s = calloc(1, sizeof(*s));
    rd_kafka_message_t **batch = calloc(KSRC_BATCH_MAX, sizeof(*batch));
    if (!s || !batch) {
        free(s);
        free(batch);
        return weir_errf(errstr, errlen, WEIR_ENOMEM, WEIR_KSRC_API " '%s': out of memory",
                         op->node->name);
    }
    int rc = weir__ksrc_opts_parse(op->node, &s->o, errstr, errlen);
    if (rc) {
        free(s);
        free(batch);
        return rc;
    }
    s->node = op->node;
    s->subtask = op->subtask;
    s->parallelism = op->parallelism ? op->parallelism : 1;
    s->batch = batch;
    op->impl = s;
    op->vt = &kafka_source_vt;
    return 0;
}
