/* The graph model: lifetime and arena of a weir_job_t, the names of kinds and partitionings,
 * node and state construction (shared by the define-time API in define.c and the JSON parser in
 * graph_json.c), validation and chaining (weir_graph_finalize), and the vertex lookup.
 *
 * Memory: every string, stream handle, weir_job_alloc block and derived array (vertices, edges)
 * lives in the job's arena, a list of chunks freed by weir_graph_destroy(). Only two arrays grow
 * and are therefore malloc'd separately: the node array (stream handles refer to nodes by id, so
 * moving it is fine) and each node's state array; both are freed by weir_graph_destroy().
 *
 * Invariants: node ids are dense in creation order and a node's input id is smaller than its own.
 * Errors while building (API misuse, non-UTF-8 text) never crash: the first one is recorded in
 * job->error and sets job->failed; finalize then fails with it.
 *
 * Threading: a graph is owned by one thread at a time; no locks, no global state.
 */
#include "runtime/graph/graph_int.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"
#include "runtime/graph/keygroup.h"

#define ARENA_CHUNK 16384u

typedef struct arena_chunk {
    struct arena_chunk *next;
    size_t used;
    size_t cap;
    max_align_t data[];
} arena_chunk_t;

/* job->arena points at this. */
typedef struct graph_priv {
    arena_chunk_t *chunks;
    uint32_t *node_vertex; /* node id -> vertex id, arena; valid after finalize */
} graph_priv_t;

/* ------------------------------------------------------------------------------------------ */
/* Arena                                                                                      */
/* ------------------------------------------------------------------------------------------ */

void *weir__graph_alloc(weir_job_t *job, size_t size) {
    graph_priv_t *priv = job->arena;
    const size_t align = sizeof(max_align_t);
    size = (size + align - 1) / align * align;
    if (size == 0)
        size = align;
    arena_chunk_t *c = priv->chunks;
    if (!c || c->cap - c->used < size) {
        size_t cap = size > ARENA_CHUNK ? size : ARENA_CHUNK;
        c = weir_xcalloc(1, sizeof(*c) + cap);
        c->cap = cap;
        c->next = priv->chunks;
        priv->chunks = c;
    }
    void *p = (char *)c->data + c->used;
    c->used += size;
    memset(p, 0, size);
    return p;
}

char *weir__graph_strdup(weir_job_t *job, const char *s) {
    if (!s)
        return NULL;
    size_t n = strlen(s);
    char *p = weir__graph_alloc(job, n + 1);
    memcpy(p, s, n + 1);
    return p;
}

/* ------------------------------------------------------------------------------------------ */
/* Names                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static const char *const kind_names[WEIR_OP__COUNT] = {
    [WEIR_OP_SOURCE_DATAGEN] = "source_datagen",
    [WEIR_OP_SOURCE_FILE] = "source_file",
    [WEIR_OP_SOURCE_GENERATOR] = "source_generator",
    [WEIR_OP_MAP] = "map",
    [WEIR_OP_FLAT_MAP] = "flat_map",
    [WEIR_OP_FILTER] = "filter",
    [WEIR_OP_PROCESS] = "process",
    [WEIR_OP_REDUCE] = "reduce",
    [WEIR_OP_SINK_FILE] = "sink_file",
    [WEIR_OP_SINK_PRINT] = "sink_print",
    [WEIR_OP_SINK_BLACKHOLE] = "sink_blackhole",
    [WEIR_OP_SINK_CUSTOM] = "sink",
    [WEIR_OP_SOURCE_KAFKA] = "source_kafka",
    [WEIR_OP_SINK_KAFKA] = "sink_kafka",
};

static const char *const part_names[] = {"forward", "rebalance", "hash", "broadcast"};
static const char *const state_names[] = {"value", "list", "map", "reducing"};

const char *weir_op_kind_name(weir_op_kind_t kind) {
    if ((unsigned)kind >= WEIR_OP__COUNT)
        return "unknown";
    return kind_names[kind];
}

const char *weir_part_name(weir_part_t part) {
    if ((unsigned)part > WEIR_PART_BROADCAST)
        return "unknown";
    return part_names[part];
}

const char *weir_state_kind_name(weir_state_kind_t kind) {
    if ((unsigned)kind > WEIR_STATE_REDUCING)
        return "unknown";
    return state_names[kind];
}

bool weir_option_is_secret(const char *key) {
    static const char *const marks[] = {
        "password",           "secret",  "token",          "apikey", "api.key", "jaas.config",
        "oauthbearer.config", "key.pem", "certificate.pem"};
    char low[256];
    size_t n = strlen(key);
    if (n >= sizeof(low))
        return true; /* longer than any option key we know: do not show it */
    for (size_t i = 0; i <= n; i++)
        low[i] = (char)((key[i] >= 'A' && key[i] <= 'Z') ? key[i] - 'A' + 'a' : key[i]);
    for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++)
        if (strstr(low, marks[i]))
            return true;
    return false;
}

const char *weir_node_option(const weir_node_t *n, const char *key) {
    const char *v = NULL;
    for (uint32_t i = 0; i < n->n_options; i++)
        if (strcmp(n->options[2 * i], key) == 0)
            v = n->options[2 * i + 1];
    return v;
}

bool weir_op_is_source(weir_op_kind_t kind) {
    return kind == WEIR_OP_SOURCE_DATAGEN || kind == WEIR_OP_SOURCE_FILE ||
           kind == WEIR_OP_SOURCE_GENERATOR || kind == WEIR_OP_SOURCE_KAFKA;
}

bool weir_op_is_sink(weir_op_kind_t kind) {
    return kind == WEIR_OP_SINK_FILE || kind == WEIR_OP_SINK_PRINT ||
           kind == WEIR_OP_SINK_BLACKHOLE || kind == WEIR_OP_SINK_CUSTOM ||
           kind == WEIR_OP_SINK_KAFKA;
}

bool weir_op_is_user_function(weir_op_kind_t kind) {
    switch (kind) {
    case WEIR_OP_MAP:
    case WEIR_OP_FLAT_MAP:
    case WEIR_OP_FILTER:
    case WEIR_OP_PROCESS:
    case WEIR_OP_REDUCE:
    case WEIR_OP_SINK_CUSTOM:
    case WEIR_OP_SOURCE_GENERATOR:
        return true;
    default:
        return false;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Graph lifetime                                                                             */
/* ------------------------------------------------------------------------------------------ */

weir_job_t *weir_graph_new(const char *name, uint32_t default_parallelism) {
    weir_job_t *job = weir_xcalloc(1, sizeof(*job));
    job->arena = weir_xcalloc(1, sizeof(graph_priv_t));
    job->name = weir__graph_strdup(job, name ? name : "job");
    job->default_parallelism = default_parallelism ? default_parallelism : 1;
    job->max_parallelism = WEIR_DEFAULT_MAX_PARALLELISM;
    weir__graph_check_text(job, "the job name", job->name);
    return job;
}

void weir_graph_destroy(weir_job_t **jobp) {
    if (!jobp || !*jobp)
        return;
    weir_job_t *job = *jobp;
    for (uint32_t i = 0; i < job->n_nodes; i++)
        free(job->nodes[i].states);
    free(job->nodes);
    graph_priv_t *priv = job->arena;
    if (priv) {
        arena_chunk_t *c = priv->chunks;
        while (c) {
            arena_chunk_t *next = c->next;
            free(c);
            c = next;
        }
        free(priv);
    }
    free(job);
    *jobp = NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Building: errors, nodes, states                                                            */
/* ------------------------------------------------------------------------------------------ */

void weir__graph_verror(weir_job_t *job, const char *fmt, va_list ap) {
    if (!job || job->failed)
        return;
    vsnprintf(job->error, sizeof(job->error), fmt, ap);
    /* keep it one line */
    for (char *p = job->error; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    job->failed = true;
}

void weir__graph_error(weir_job_t *job, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    weir__graph_verror(job, fmt, ap);
    va_end(ap);
}

/* Names, uids and paths end up in JSON, which must be UTF-8. */
void weir__graph_check_text(weir_job_t *job, const char *what, const char *s) {
    if (!s || job->failed)
        return;
    json_t *t = json_string(s);
    if (!t)
        weir__graph_error(job, "%s is not valid UTF-8: use UTF-8 text", what);
    json_decref(t);
}

/* The node and state arrays are small and bounded by the job's definition: aborts on OOM. */
static void *grow_array(void *arr, uint32_t *cap, uint32_t need, size_t elem, size_t min_cap) {
    size_t c = *cap;
    if (weir_array_grow(&arr, &c, need, elem, min_cap) != 0) {
        fprintf(stderr, "weir: out of memory (%zu bytes)\n", (size_t)need * elem);
        abort();
    }
    *cap = (uint32_t)c;
    return arr;
}

weir_node_t *weir__graph_add_node(weir_job_t *job, weir_op_kind_t kind, const char *name) {
    job->nodes = grow_array(job->nodes, &job->cap_nodes, job->n_nodes + 1, sizeof(*job->nodes), 16);
    weir_node_t *n = &job->nodes[job->n_nodes];
    memset(n, 0, sizeof(*n));
    n->id = job->n_nodes++;
    n->kind = kind;
    n->name = weir__graph_strdup(job, name && *name ? name : weir_op_kind_name(kind));
    weir__graph_check_text(job, "an operator name", n->name);
    n->input = -1;
    n->input_part = WEIR_PART_FORWARD;
    n->in2.node = -1;
    return n;
}

weir_state_id weir__graph_add_state(weir_job_t *job, weir_node_t *n, const char *api,
                                    const char *name, weir_state_kind_t kind, weir_reduce_fn fn,
                                    void *udata) {
    if (!name || !*name) {
        weir__graph_error(job, "%s on '%s': the state name is empty: pass a name", api, n->name);
        return -1;
    }
    for (uint32_t i = 0; i < n->n_states; i++) {
        if (strcmp(n->states[i].name, name) == 0) {
            weir__graph_error(job, "%s on '%s': state '%s' is declared twice: use distinct names",
                              api, n->name, name);
            return -1;
        }
    }
    n->states = grow_array(n->states, &n->cap_states, n->n_states + 1, sizeof(*n->states), 4);
    weir_state_decl_t *d = &n->states[n->n_states];
    d->name = weir__graph_strdup(job, name);
    weir__graph_check_text(job, "a state name", name);
    d->kind = kind;
    d->reduce = fn;
    d->reduce_udata = udata;
    d->ttl_ms = 0;
    d->ttl_update = WEIR_TTL_ON_CREATE_AND_WRITE;
    return (weir_state_id)n->n_states++;
}

/* ------------------------------------------------------------------------------------------ */
/* Finalize: validation, chaining, vertices and edges                                         */
/* ------------------------------------------------------------------------------------------ */

static int cmp_edge(const void *a, const void *b) {
    const weir_edge_t *x = a, *y = b;
    if (x->source != y->source)
        return x->source < y->source ? -1 : 1;
    if (x->target != y->target)
        return x->target < y->target ? -1 : 1;
    if (x->input != y->input)
        return x->input < y->input ? -1 : 1;
    return 0;
}

/* What a node that is not keyed keeps in a checkpoint's operator state, for the uid rule:
 * savepoints map state to operators by uid (savepoint/), so every such node needs one. NULL:
 * nothing (print, blackhole and custom sinks, map, filter; a Kafka sink unless its option
 * "sink.delivery-guarantee" (connectors/kafka/kafka_sink.c) is "exactly-once": only that mode
 * snapshots transactions). Keyed operators are checked by their states. */
static const char *checkpointed_state(const weir_node_t *nd) {
    switch (nd->kind) {
    case WEIR_OP_SOURCE_DATAGEN:
    case WEIR_OP_SOURCE_FILE:
    case WEIR_OP_SOURCE_GENERATOR:
    case WEIR_OP_SOURCE_KAFKA:
        return "a source position";
    case WEIR_OP_SINK_FILE:
        return "pre-committed transactions";
    case WEIR_OP_SINK_KAFKA: {
        const char *dg = weir_node_option(nd, "sink.delivery-guarantee");
        return dg && strcmp(dg, "exactly-once") == 0 ? "pre-committed transactions" : NULL;
    }
    default:
        return NULL;
    }
}

/* Nodes with a uid (pointers into the node array), ordered by uid, then by position. */
static int cmp_uid(const void *a, const void *b) {
    const weir_node_t *x = *(const weir_node_t *const *)a, *y = *(const weir_node_t *const *)b;
    int c = strcmp(x->uid, y->uid);
    if (c)
        return c;
    return x < y ? -1 : x > y;
}

/* For every node, the first earlier node with the same uid (-1: none), in O(n log n): a pairwise
 * check is quadratic in the node count, which untrusted graphs choose. Arena memory. */
static int32_t *uid_first_holders(weir_job_t *job) {
    uint32_t n = job->n_nodes, m = 0;
    int32_t *first = weir__graph_alloc(job, n * sizeof(*first));
    const weir_node_t **byuid = weir__graph_alloc(job, n * sizeof(*byuid));
    for (uint32_t i = 0; i < n; i++) {
        first[i] = -1;
        if (job->nodes[i].uid)
            byuid[m++] = &job->nodes[i];
    }
    qsort(byuid, m, sizeof(*byuid), cmp_uid);
    for (uint32_t k = 1, head = 0; k < m; k++) {
        if (strcmp(byuid[k]->uid, byuid[head]->uid) != 0)
            head = k;
        else
            first[byuid[k] - job->nodes] = (int32_t)(byuid[head] - job->nodes);
    }
    return first;
}

weir_node_input_t weir_node_input(const weir_node_t *n, uint32_t i) {
    if (i == 0 && n->n_inputs >= 1)
        return (weir_node_input_t){n->input,     n->input_part, n->key_fn,
                                   n->key_udata, n->has_key_fn, n->input_tag};
    if (i == 1 && n->n_inputs == 2)
        return n->in2;
    return (weir_node_input_t){.node = -1};
}

/* Finalize's check of the second input of non-source node @p nd (input 0 is valid), if any:
 * only a process operator has one, a valid earlier node other than the same output of the
 * first, its tag within the side outputs that node declares, a forward edge keeping the
 * parallelism. */
static int check_second_input(const weir_job_t *job, const weir_node_t *nd, char *errstr,
                              size_t errlen) {
    if (nd->n_inputs == 1)
        return 0;
    if (nd->kind != WEIR_OP_PROCESS)
        return weir_errf(errstr, errlen, WEIR_EINVAL,
                         "operator '%s' (%s) has two inputs: only a process operator "
                         "(weir_co_process) may",
                         nd->name, weir_op_kind_name(nd->kind));
    const weir_node_input_t *b = &nd->in2;
    if (b->node < 0 || (uint32_t)b->node >= nd->id)
        return weir_errf(errstr, errlen, WEIR_EINVAL, "operator '%s' has no valid second input",
                         nd->name);
    if (b->node == nd->input && b->tag == nd->input_tag)
        return weir_errf(errstr, errlen, WEIR_EINVAL,
                         "operator '%s' reads the same stream as both inputs: pass two streams",
                         nd->name);
    if ((unsigned)b->part > WEIR_PART_BROADCAST)
        return weir_errf(errstr, errlen, WEIR_EINVAL,
                         "operator '%s' has an unknown partitioning of its second input", nd->name);
    const weir_node_t *in = &job->nodes[b->node];
    if (b->tag > in->n_side)
        return weir_errf(errstr, errlen, WEIR_EINVAL,
                         "operator '%s' reads side output %u of '%s', which declares %u side "
                         "outputs",
                         nd->name, b->tag, in->name, in->n_side);
    if (b->part == WEIR_PART_FORWARD && nd->parallelism != in->parallelism)
        return weir_errf(errstr, errlen, WEIR_EINVAL,
                         "forward edge '%s' (parallelism %u) -> '%s' (parallelism %u) changes "
                         "parallelism: use weir_rebalance() or weir_key_by() between them",
                         in->name, in->parallelism, nd->name, nd->parallelism);
    return 0;
}

int weir_graph_finalize(weir_job_t *job, char *errstr, size_t errlen) {
    if (!job)
        return weir_errf(errstr, errlen, WEIR_EINVAL, "no job graph");
    if (job->failed)
        return weir_errf(errstr, errlen, WEIR_EINVAL, "%s", job->error);
    graph_priv_t *priv = job->arena;
    job->vertices = NULL;
    job->n_vertices = 0;
    job->edges = NULL;
    job->n_edges = 0;
    priv->node_vertex = NULL;

    if (job->max_parallelism == 0 || job->max_parallelism > WEIR_MAX_MAX_PARALLELISM)
        return weir_errf(errstr, errlen, WEIR_EINVAL,
                         "job '%s': max parallelism %u must be between 1 and %u", job->name,
                         job->max_parallelism, WEIR_MAX_MAX_PARALLELISM);
    if (job->default_parallelism == 0)
        job->default_parallelism = 1;
    if (job->n_nodes == 0)
        return weir_errf(errstr, errlen, WEIR_EINVAL,
                         "job '%s' defines no operators: add a source and a sink", job->name);

    uint32_t n = job->n_nodes;
    uint32_t *consumers = weir__graph_alloc(job, n * sizeof(uint32_t));
    const int32_t *uid_first = uid_first_holders(job);
    bool has_source = false, has_sink = false;
    for (uint32_t i = 0; i < n; i++) {
        weir_node_t *nd = &job->nodes[i];
        if ((unsigned)nd->kind >= WEIR_OP__COUNT)
            return weir_errf(errstr, errlen, WEIR_EINVAL, "operator %u has an unknown kind %d", i,
                             (int)nd->kind);
        if (nd->parallelism == 0)
            nd->parallelism = job->default_parallelism;
        /* derived: input 0 is `input`, input 1 is `in2` (graph.h) */
        nd->n_inputs = nd->input < 0 ? 0 : nd->in2.node < 0 ? 1 : 2;
        if (nd->parallelism > job->max_parallelism)
            return weir_errf(
                errstr, errlen, WEIR_EINVAL,
                "operator '%s': parallelism %u exceeds the max parallelism %u: lower it "
                "or call weir_job_set_max_parallelism()",
                nd->name, nd->parallelism, job->max_parallelism);
        if (weir_op_is_source(nd->kind)) {
            has_source = true;
            if (nd->input != -1 || nd->in2.node != -1)
                return weir_errf(errstr, errlen, WEIR_EINVAL, "source '%s' cannot have an input",
                                 nd->name);
        } else {
            if (nd->input < 0 || (uint32_t)nd->input >= i)
                return weir_errf(errstr, errlen, WEIR_EINVAL, "operator '%s' has no valid input",
                                 nd->name);
            int rc = check_second_input(job, nd, errstr, errlen);
            if (rc)
                return rc;
            for (uint32_t k = 0; k < nd->n_inputs; k++) {
                const weir_node_t *in = &job->nodes[weir_node_input(nd, k).node];
                if (weir_op_is_sink(in->kind))
                    return weir_errf(errstr, errlen, WEIR_EINVAL,
                                     "operator '%s' reads from sink '%s': a sink has no output",
                                     nd->name, in->name);
                consumers[in->id]++;
            }
        }
        if (weir_op_is_sink(nd->kind))
            has_sink = true;
        if ((unsigned)nd->input_part > WEIR_PART_BROADCAST)
            return weir_errf(errstr, errlen, WEIR_EINVAL,
                             "operator '%s' has an unknown partitioning", nd->name);
        if (nd->kind == WEIR_OP_PROCESS || nd->kind == WEIR_OP_REDUCE) {
            if (nd->input_part != WEIR_PART_HASH ||
                (nd->n_inputs == 2 && nd->in2.part != WEIR_PART_HASH))
                return weir_errf(errstr, errlen, WEIR_EINVAL,
                                 "keyed operator '%s' is not fed by weir_key_by(): key the stream "
                                 "first",
                                 nd->name);
        } else if (nd->n_states > 0) {
            return weir_errf(errstr, errlen, WEIR_EINVAL,
                             "operator '%s' (%s) declares keyed state: only process and reduce "
                             "operators may",
                             nd->name, weir_op_kind_name(nd->kind));
        }
        if (nd->kind == WEIR_OP_REDUCE &&
            (nd->n_states != 1 || nd->states[0].kind != WEIR_STATE_REDUCING ||
             strcmp(nd->states[0].name, "reduce") != 0))
            return weir_errf(errstr, errlen, WEIR_EINVAL,
                             "reduce operator '%s' must have exactly one reducing state 'reduce'",
                             nd->name);
        for (uint32_t s = 0; s < nd->n_states; s++) {
            if ((unsigned)nd->states[s].kind > WEIR_STATE_REDUCING)
                return weir_errf(errstr, errlen, WEIR_EINVAL,
                                 "operator '%s': state %u has an unknown type", nd->name, s);
            for (uint32_t t = 0; t < s; t++)
                if (strcmp(nd->states[s].name, nd->states[t].name) == 0)
                    return weir_errf(errstr, errlen, WEIR_EINVAL,
                                     "operator '%s': state '%s' is declared twice", nd->name,
                                     nd->states[s].name);
        }
        if (nd->n_states > 0 && !nd->uid)
            return weir_errf(errstr, errlen, WEIR_EINVAL,
                             "stateful operator '%s' has no uid: call weir_set_uid() on it so its "
                             "state survives restarts and savepoints",
                             nd->name);
        const char *kept = nd->uid ? NULL : checkpointed_state(nd);
        if (kept)
            return weir_errf(errstr, errlen, WEIR_EINVAL,
                             "operator '%s' (%s) keeps state in checkpoints (%s) but has no uid: "
                             "call weir_set_uid() on it so its state survives restarts and "
                             "savepoints",
                             nd->name, weir_op_kind_name(nd->kind), kept);
        int src = weir__graph_side_check(job, nd, errstr, errlen);
        if (src)
            return src;
        if (uid_first[i] >= 0)
            return weir_errf(errstr, errlen, WEIR_EINVAL,
                             "uid '%s' is used by '%s' and '%s': uids must be unique", nd->uid,
                             job->nodes[uid_first[i]].name, nd->name);
    }
    if (!has_source)
        return weir_errf(errstr, errlen, WEIR_EINVAL,
                         "job '%s' has no source: add one (e.g. weir_source_datagen)", job->name);
    if (!has_sink)
        return weir_errf(errstr, errlen, WEIR_EINVAL,
                         "job '%s' has no sink: add one (e.g. weir_sink_print)", job->name);

    /* Chaining and forward-edge checks. */
    uint32_t *node_vertex = weir__graph_alloc(job, n * sizeof(uint32_t));
    uint32_t *chain_len = weir__graph_alloc(job, n * sizeof(uint32_t)); /* per vertex (<= n) */
    uint32_t n_vertices = 0;
    const bool *side_ok = weir__graph_side_chainable(job);
    bool *has_next = weir__graph_alloc(job, n * sizeof(bool)); /* a consumer chained to it */
    for (uint32_t i = 0; i < n; i++) {
        weir_node_t *nd = &job->nodes[i];
        bool chained = false;
        if (nd->input >= 0) {
            const weir_node_t *in = &job->nodes[nd->input];
            if (nd->input_part == WEIR_PART_FORWARD && nd->parallelism != in->parallelism)
                return weir_errf(
                    errstr, errlen, WEIR_EINVAL,
                    "forward edge '%s' (parallelism %u) -> '%s' (parallelism %u) changes "
                    "parallelism: use weir_rebalance() or weir_key_by() between them",
                    in->name, in->parallelism, nd->name, nd->parallelism);
            /* a two-input node never chains: it is the head of its vertex */
            chained = nd->input_part == WEIR_PART_FORWARD && nd->n_inputs == 1 &&
                      (consumers[nd->input] == 1 || (side_ok[i] && !has_next[nd->input]));
            if (chained)
                has_next[nd->input] = true;
        }
        if (chained) {
            node_vertex[i] = node_vertex[nd->input];
        } else {
            node_vertex[i] = n_vertices++;
        }
        chain_len[node_vertex[i]]++;
    }

    weir_vertex_t *vs = weir__graph_alloc(job, n_vertices * sizeof(*vs));
    for (uint32_t v = 0; v < n_vertices; v++) {
        vs[v].id = v;
        vs[v].nodes = weir__graph_alloc(job, chain_len[v] * sizeof(uint32_t));
    }
    uint32_t n_edges = 0;
    for (uint32_t i = 0; i < n; i++) {
        weir_vertex_t *v = &vs[node_vertex[i]];
        if (v->n_nodes == 0) {
            v->parallelism = job->nodes[i].parallelism;
            n_edges += job->nodes[i].n_inputs;
        }
        v->nodes[v->n_nodes++] = i;
    }
    /* names */
    for (uint32_t v = 0; v < n_vertices; v++) {
        size_t len = 1;
        for (uint32_t k = 0; k < vs[v].n_nodes; k++)
            len += strlen(job->nodes[vs[v].nodes[k]].name) + 4;
        char *name = weir__graph_alloc(job, len);
        char *p = name;
        for (uint32_t k = 0; k < vs[v].n_nodes; k++) {
            if (k) {
                memcpy(p, " -> ", 4);
                p += 4;
            }
            const char *nn = job->nodes[vs[v].nodes[k]].name;
            size_t l = strlen(nn);
            memcpy(p, nn, l);
            p += l;
        }
        *p = '\0';
        vs[v].name = name;
    }
    weir_edge_t *es = weir__graph_alloc(job, (n_edges ? n_edges : 1) * sizeof(*es));
    uint32_t e = 0;
    for (uint32_t v = 0; v < n_vertices; v++) {
        const weir_node_t *head = &job->nodes[vs[v].nodes[0]];
        for (uint32_t k = 0; k < head->n_inputs; k++) {
            weir_node_input_t in = weir_node_input(head, k);
            es[e].source = node_vertex[in.node];
            es[e].target = v;
            es[e].source_node = (uint32_t)in.node;
            es[e].source_tag = in.tag;
            es[e].part = in.part;
            es[e].input = k;
            e++;
        }
    }
    qsort(es, n_edges, sizeof(*es), cmp_edge);
    for (uint32_t k = 0; k < n_edges; k++) {
        es[k].id = k;
        vs[es[k].source].n_out++;
        vs[es[k].target].n_in++;
    }
    for (uint32_t v = 0; v < n_vertices; v++) {
        vs[v].in_edges = weir__graph_alloc(job, (vs[v].n_in ? vs[v].n_in : 1) * sizeof(uint32_t));
        vs[v].out_edges =
            weir__graph_alloc(job, (vs[v].n_out ? vs[v].n_out : 1) * sizeof(uint32_t));
        vs[v].n_in = 0;
        vs[v].n_out = 0;
    }
    for (uint32_t k = 0; k < n_edges; k++) {
        weir_vertex_t *s = &vs[es[k].source], *t = &vs[es[k].target];
        s->out_edges[s->n_out++] = k;
        t->in_edges[t->n_in++] = k;
    }
    job->vertices = vs;
    job->n_vertices = n_vertices;
    job->edges = es;
    job->n_edges = n_edges;
    priv->node_vertex = node_vertex;
    return 0;
}

const weir_vertex_t *weir_graph_vertex_of(const weir_job_t *job, uint32_t node_id) {
    if (!job || node_id >= job->n_nodes || !job->vertices)
        return NULL;
    const graph_priv_t *priv = job->arena;
    if (!priv->node_vertex)
        return NULL;
    return &job->vertices[priv->node_vertex[node_id]];
}
