/* The Kafka source's pure parts (docs/kafka.md, "Source"; connectors/kafka/README.md): its
 * options, the partition -> subtask assignment, and its checkpoint state. kafka_source.c is the
 * operator around them; tests/unit/test_kafka_source.c tests them without a broker.
 * Threading: pure functions; an options or partition table belongs to one thread. */
#ifndef WEIR_CONNECTORS_KAFKA_KSOURCE_H
#define WEIR_CONNECTORS_KAFKA_KSOURCE_H

#include <librdkafka/rdkafka.h>
#include <msgpack.h>
#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "connectors/kafka/kformat.h"
#include "runtime/graph/graph.h"
#include "runtime/task/operator.h"

/** What messages call the connector ("Kafka source 'name': ..."). */
#define WEIR_KSRC_API "Kafka source"
/** Version of the checkpoint state layout (kafka_source.c, "State"). */
#define WEIR_KSRC_STATE_VERSION 1
/** Longest Kafka topic name (Kafka's own limit). */
#define WEIR_KSRC_MAX_TOPIC 249

typedef enum weir_ksrc_startup {
    WEIR_KSRC_START_EARLIEST,
    WEIR_KSRC_START_LATEST,
    WEIR_KSRC_START_GROUP,
    WEIR_KSRC_START_TIMESTAMP
} weir_ksrc_startup_t;

/** The options of a Kafka source node, checked (weir__ksrc_opts_parse). Strings point into the
 * node's options, except the topic list. */
typedef struct weir_ksrc_opts {
    char **topics; /* "topic": the list, split at ',' (NULL with a pattern) */
    size_t n_topics;
    bool has_pattern; /* "topic-pattern": POSIX extended regex matching whole names */
    regex_t pattern;
    const char *group_id; /* "group.id", NULL when absent */
    weir_ksrc_startup_t startup;
    int64_t startup_ts_ms; /* "scan.startup.timestamp-millis" */
    bool bounded;          /* "scan.bounded.mode" = latest-offset */
    int64_t discovery_ms;  /* "scan.topic-partition-discovery.interval", 0 = off */
    bool read_committed;   /* "isolation.level" */
    weir_kformat_t key_format, value_format;
    double rate; /* "scan.rate-limit": records per second per subtask, 0 = unlimited */
} weir_ksrc_opts_t;

/** Checks every option of Kafka source node @p n (unknown keys, the topic options, enums,
 * integers, the regex, librdkafka properties) and fills @p o. Nothing connects.
 * @returns 0, or WEIR_EINVAL with one line naming the operator and the option (@p o is then
 * freed). */
int weir__ksrc_opts_parse(const weir_node_t *n, weir_ksrc_opts_t *o, char *errstr, size_t errlen);
void weir__ksrc_opts_free(weir_ksrc_opts_t *o);
/** True when the source reads @p topic: in the list, or matched whole by the pattern (Kafka's
 * internal topics, whose names start with "__", never match a pattern). */
bool weir__ksrc_topic_matches(const weir_ksrc_opts_t *o, const char *topic);

/** The consumer configuration of source node @p n: bootstrap.servers, every "properties.*", and
 * what the connector sets itself (group.id = @p group, no auto commit, no offset store,
 * isolation.level, partition EOF events, auto.offset.reset=earliest). NULL on error. */
rd_kafka_conf_t *weir__ksrc_conf(const weir_node_t *n, const weir_ksrc_opts_t *o, const char *group,
                                 char *errstr, size_t errlen);

/** Java's String.hashCode() of an ASCII string (every Kafka topic name is ASCII). */
int32_t weir__kafka_java_hash(const char *s);
/** The subtask (of @p parallelism) that reads @p partition of @p topic: Flink's
 * KafkaTopicPartitionAssigner / KafkaSourceEnumerator.getSplitOwner,
 * (((hash(topic) * 31) & 0x7fffffff) % parallelism + partition) % parallelism. */
uint32_t weir__kafka_partition_owner(const char *topic, int32_t partition, uint32_t parallelism);

/** One partition a subtask reads. */
typedef struct weir_kpart {
    char *topic; /* malloc'd */
    int32_t partition;
    int64_t next;      /* next offset to read; RD_KAFKA_OFFSET_BEGINNING (-2): the earliest */
    int64_t stop;      /* bounded mode: the first offset not read (the end at the first start);
                          -1 unbounded */
    bool finished;     /* bounded mode: next >= stop (not in the state: derived) */
    uint32_t wm_split; /* event time: watermark split id + 1 of this subtask (0: none yet) */
    int64_t max_ts;    /* event time: the partition's max record timestamp in the state
                          (INT64_MIN: none) */
    bool wm_done;      /* event time: its split was reported done (finished) */
} weir_kpart_t;

/** A partition table, sorted by (topic, partition). */
typedef struct weir_kparts {
    weir_kpart_t *v;
    size_t n, cap;
    /* event time (a source with a watermark strategy): packed as the state's "event_time" */
    bool has_et;
    int64_t wm; /* the subtask's watermark (restored: the lowest of the old subtasks taken) */
    bool idle;  /* its status (restored: every old subtask taken was idle) */
} weir_kparts_t;

void weir__kparts_free(weir_kparts_t *t);
/** Index of (topic, partition) in @p t, or -1. */
ptrdiff_t weir__kparts_find(const weir_kparts_t *t, const char *topic, int32_t partition);
/** Inserts (topic, partition) in order (it must be absent). @returns its index, or -1 when out
 * of memory. */
ptrdiff_t weir__kparts_add(weir_kparts_t *t, const char *topic, int32_t partition, int64_t next,
                           int64_t stop);

/** Packs the checkpoint state of a subtask reading @p t (one msgpack map; layout in
 * kafka_source.c). @returns 0 or WEIR_ENOMEM. */
int weir__ksrc_state_pack(msgpack_packer *pk, const weir_kparts_t *t, bool bounded);
/** Reads a state packed by weir__ksrc_state_pack into an empty table @p t (*bounded: whether
 * the state holds stop offsets). @returns 0, or WEIR_ECORRUPT with one line saying what is
 * wrong (@p t then empty). */
int weir__ksrc_state_unpack(const msgpack_object *o, weir_kparts_t *t, bool *bounded, char *errstr,
                            size_t errlen);

/** Takes this subtask's share of the restored states @p r (weir__ksrc_state_pack's maps, one
 * per old subtask): the union of their partitions, each with its next and stop offsets, keeping
 * those weir__kafka_partition_owner assigns to @p subtask of @p parallelism (the others belong
 * to other new subtasks). Restored at the old parallelism, every partition must be the
 * subtask's own. *bounded: whether the states hold stop offsets (they must agree).
 * @returns 0, or WEIR_ECORRUPT with one line (a malformed state, a partition in two states, a
 * partition of another subtask at the old parallelism; @p t then empty). */
int weir__ksrc_state_restore(const weir_op_restore_t *r, uint32_t subtask, uint32_t parallelism,
                             weir_kparts_t *t, bool *bounded, char *errstr, size_t errlen);

#endif
