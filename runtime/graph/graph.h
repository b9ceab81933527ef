/* The logical job graph (what define() builds) and the job-vertex view derived from it
 * (operator chains). Used by the CLI (build + serialize), the job manager (parse JSON, derive
 * vertices; it never has function pointers) and the task manager (build by running define() again,
 * then check it against the submitted JSON).
 *
 * Invariants: node ids are dense 0..n-1 in creation order; a node's inputs have smaller ids;
 * vertices are numbered in order of their head node ids, edges in order of (source vertex,
 * target vertex, input index). Both numberings depend only on the graph, so every process derives
 * the same.
 *
 * JSON form (what `weir info` prints and what POST /jobs carries): the table in
 * runtime/graph/README.md. "vertices" and "edges" in it are informative (derived); parsing
 * ignores them and derives again.
 *
 * Implemented by graph.c (model: new/destroy, names, finalize, vertex lookup), define.c (the
 * define-time half of include/weir/weir.h) and graph_json.c (JSON both ways, the determinism
 * check). Threading: a graph is owned by one thread at a time (define() builds it on the thread
 * that calls the plugin); after finalize nothing changes it except weir_graph_apply_submitted,
 * which re-finalizes it. No locks, no global state.
 */
#ifndef WEIR_RUNTIME_GRAPH_H
#define WEIR_RUNTIME_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/graph/state_decl.h"
#include "weir/weir.h"

/* jansson's type, declared here so that the model does not pull in <jansson.h>: users of the
 * JSON functions include it themselves (the typedef is identical to jansson's, which C11 allows).
 */
typedef struct json_t json_t;

typedef enum weir_op_kind {
    WEIR_OP_SOURCE_DATAGEN = 0,
    WEIR_OP_SOURCE_FILE,
    WEIR_OP_SOURCE_GENERATOR,
    WEIR_OP_MAP,
    WEIR_OP_FLAT_MAP,
    WEIR_OP_FILTER,
    WEIR_OP_PROCESS,
    WEIR_OP_REDUCE,
    WEIR_OP_SINK_FILE,
    WEIR_OP_SINK_PRINT,
    WEIR_OP_SINK_BLACKHOLE,
    WEIR_OP_SINK_CUSTOM,
    WEIR_OP_SOURCE_KAFKA,
    WEIR_OP_SINK_KAFKA,
    WEIR_OP__COUNT
} weir_op_kind_t;

typedef enum weir_part {
    WEIR_PART_FORWARD = 0,
    WEIR_PART_REBALANCE,
    WEIR_PART_HASH,
    WEIR_PART_BROADCAST,
} weir_part_t;

/** One operator of the logical graph. Strings are owned by the job's arena. */
/** Upper bound of a watermark strategy's durations (ms; about 34 years). */
#define WEIR_WM_MAX_MS (INT64_C(1) << 40)
/** The declared (map) state holding the keyed timers of a node with timers (state/timers.h). */
#define WEIR_TIMERS_STATE "weir.timers"

/** One input of a node, as weir_node_input() returns it (the fields of the same names below,
 * for input 0, and the node's `in2` for input 1). */
typedef struct weir_node_input {
    int32_t node; /* node id, -1 = none */
    weir_part_t part;
    weir_key_fn key_fn; /* HASH partitioning: NULL = the record's key */
    void *key_udata;
    bool has_key_fn; /* survives JSON (key_fn itself does not) */
    uint32_t tag;    /* which output of the input node: 0 = main, else a side-output tag */
} weir_node_input_t;

/** Inputs of a node at most: two for a two-input node (weir_co_process and the joins). */
#define WEIR_MAX_INPUTS 2u

typedef struct weir_node {
    uint32_t id;
    weir_op_kind_t kind;
    char *name;
    char *uid;            /* NULL when not set */
    uint32_t parallelism; /* resolved: never 0 after weir_graph_finalize() */
    int32_t input;        /* node id, -1 for sources */
    weir_part_t input_part;
    weir_key_fn key_fn; /* HASH partitioning: NULL = use the record's key */
    void *key_udata;
    bool has_key_fn; /* survives JSON (key_fn itself does not) */
    bool keyed;      /* fed by key_by (process/reduce require it) */
    void *fn;        /* the user function (type depends on kind); NULL from JSON */
    void *udata;
    weir_open_fn open_fn;   /* weir_set_lifecycle (user operators only); NULL from JSON */
    weir_close_fn close_fn; /* called with udata, like fn */
    weir_timer_fn on_timer; /* weir_set_on_timer (process only); NULL from JSON */
    bool timers;            /* keyed timers ("timers": true in JSON; state WEIR_TIMERS_STATE) */
    /* connector configuration */
    weir_datagen_opts_t datagen;
    char *path;     /* file source input / file sink directory */
    double rate;    /* file source / generator: records per second, 0 = unlimited */
    uint64_t count; /* generator: number of events, 0 = unbounded */
    /* Kafka source/sink: option pairs (key, value) as given to weir_source_kafka/weir_sink_kafka;
     * connectors/kafka/ interprets them (docs/kafka.md) */
    const char **options; /* 2 * n_options strings in the job's arena */
    uint32_t n_options;
    /* sources: watermark strategy (weir_set_watermark_strategy); has_wm false = none */
    bool has_wm;
    int64_t wm_bound_ms; /* 0 .. WEIR_WM_MAX_MS */
    int64_t wm_idle_ms;  /* 0 (never idle) .. WEIR_WM_MAX_MS */
    weir_state_decl_t *states;
    uint32_t n_states;
    uint32_t cap_states;
    /* side outputs (sideout.c): tag t (1..n_side) is named side_names[t - 1] (arena strings and
     * array, WEIR_MAX_SIDE_OUTPUTS slots once the first tag is declared) */
    char **side_names;
    uint32_t n_side;
    uint32_t input_tag; /* which output of the input node this node reads: 0 = main, else a tag */
    /* Inputs: input 0 (first / left) is input, input_part, key_fn, key_udata, has_key_fn and
     * input_tag above; a two-input node (n_inputs 2: a process operator made by
     * weir_co_process) reads input 1 (second / right) through in2, and runs fn for records of
     * input 0 and fn2 for records of input 1 (same udata). A two-input node never chains. */
    uint32_t n_inputs; /* 0 for a source, 1, or 2 */
    weir_node_input_t in2;
    void *fn2; /* NULL from JSON */
} weir_node_t;

/** At most this many side outputs per operator (tags 1..16). */
#define WEIR_MAX_SIDE_OUTPUTS 16u
/** A side output's name has 1..this many bytes. */
#define WEIR_MAX_SIDE_NAME 128u

/** A chain of forward-connected nodes run by one thread per subtask. */
typedef struct weir_vertex {
    uint32_t id;
    char *name; /* node names joined with " -> " */
    uint32_t parallelism;
    uint32_t *nodes; /* node ids, head first */
    uint32_t n_nodes;
    uint32_t *in_edges; /* edge ids whose target is this vertex */
    uint32_t n_in;
    uint32_t *out_edges; /* edge ids whose source is this vertex */
    uint32_t n_out;
} weir_vertex_t;

/** A data exchange between two vertices. */
typedef struct weir_edge {
    uint32_t id;
    uint32_t source;      /* vertex id */
    uint32_t target;      /* vertex id */
    uint32_t source_node; /* target head's input: the source chain's last node, or a node with
                             side outputs inside it (runtime/graph/sideout.c) */
    uint32_t source_tag;  /* the output of source_node it carries: 0 = main, else a side tag */
    weir_part_t part;
    uint32_t input; /* which input of the target's head it feeds: 0 = first, 1 = second */
} weir_edge_t;

/** The graph. Owns an arena holding every string and array reachable from it. */
struct weir_job {
    char *name;
    uint32_t default_parallelism;
    uint32_t max_parallelism;
    weir_node_t *nodes;
    uint32_t n_nodes;
    uint32_t cap_nodes;
    /* derived by weir_graph_finalize() */
    weir_vertex_t *vertices;
    uint32_t n_vertices;
    weir_edge_t *edges;
    uint32_t n_edges;
    /* the arguments define() ran with (argv[0] = the plugin), NULL-terminated copies in the
     * arena (weir_job_args); argc 0 / argv NULL for a graph not built by a plugin (JSON, tests) */
    int argc;
    char **argv;
    char error[512]; /* first define-time error (weir_job_error or API misuse) */
    bool failed;
    void *arena; /* private allocator state */
};

/** The handle returned to users: a node's output plus the partitioning for its consumers. */
struct weir_stream {
    weir_job_t *job;
    uint32_t node;
    weir_part_t part;
    weir_key_fn key_fn;
    void *key_udata;
    bool keyed;
    uint32_t tag; /* the node's output this stream is: 0 = main, else a side-output tag */
};

/** A new empty graph. @p default_parallelism >= 1. Never NULL (aborts on OOM). */
weir_job_t *weir_graph_new(const char *name, uint32_t default_parallelism);
/** Frees the graph and its arena (including weir_job_alloc memory). Accepts NULL. */
void weir_graph_destroy(weir_job_t **job);

/**
 * Resolves parallelism (0 -> default), checks the graph (at least one source and one sink; keyed
 * operators fed by key_by; state only on keyed operators; stateful operators have a uid; uids
 * unique; parallelism <= max parallelism), and derives vertices and edges.
 * @returns 0, or WEIR_EINVAL with a one-line message in errstr.
 */
int weir_graph_finalize(weir_job_t *job, char *errstr, size_t errlen);

/** The graph as JSON (see the file comment). Caller owns the reference. Requires finalize. */
json_t *weir_graph_to_json(const weir_job_t *job);
/** Parses and finalizes a graph from JSON (no function pointers). NULL + errstr on error. */
weir_job_t *weir_graph_from_json(const json_t *root, char *errstr, size_t errlen);
/** Checks that @p built (by running define()) matches @p submitted node by node (kind, name,
 * uid, input, partitioning, states) and copies the submitted parallelism into @p built, then
 * re-finalizes it. @returns 0 or WEIR_EPLUGIN with "define() is not deterministic: ..." */
int weir_graph_apply_submitted(weir_job_t *built, const weir_job_t *submitted, char *errstr,
                               size_t errlen);

const char *weir_op_kind_name(weir_op_kind_t kind);
/** True when connector option @p key names a secret (a password, secret, token, API key, JAAS or
 * OAuth configuration, a PEM key: the key contains, case-insensitively, one of "password",
 * "secret", "token", "apikey", "api.key", "jaas.config", "oauthbearer.config", "key.pem",
 * "certificate.pem"). REST answers show such values as "******" (Flink masks the same way). */
bool weir_option_is_secret(const char *key);
/** The Kafka sink's transaction.timeout.ms when the option is absent (Kafka's
 * transaction.max.timeout.ms default): the sink uses it, and the job manager's submission check
 * (jobmanager/txguard.c) assumes it. */
#define WEIR_KAFKA_DEFAULT_TXN_TIMEOUT_MS 900000
/** The value of option @p key of a Kafka node (the last one given wins), NULL when absent. */
const char *weir_node_option(const weir_node_t *n, const char *key);
const char *weir_part_name(weir_part_t part);
const char *weir_state_kind_name(weir_state_kind_t kind);
/** True for the kinds that run a user function and accept weir_set_lifecycle (map, flat_map,
 * filter, process, reduce, custom sink, generator source). */
bool weir_op_is_user_function(weir_op_kind_t kind);
/** True for source kinds / sink kinds. */
bool weir_op_is_source(weir_op_kind_t kind);
bool weir_op_is_sink(weir_op_kind_t kind);

/** True for the kinds that may declare side outputs (weir_side_output_tag): the user-function
 * kinds that have an output (map, flat_map, filter, process, reduce, generator source). */
bool weir_op_has_side_outputs(weir_op_kind_t kind);

/** Input @p i (< WEIR_MAX_INPUTS) of node @p n; node -1 when the node has no such input. */
weir_node_input_t weir_node_input(const weir_node_t *n, uint32_t i);

/** The vertex containing node @p node_id. */
const weir_vertex_t *weir_graph_vertex_of(const weir_job_t *job, uint32_t node_id);

#endif
