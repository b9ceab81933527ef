/* The logical job graph: the define-time half of the public API (weir_source_*, weir_map, ...,
 * state declarations), validation and chaining (weir_graph_finalize), the JSON form, and the
 * determinism check of a graph rebuilt by a task manager (weir_graph_apply_submitted).
 *
 * Memory: every string, stream handle, weir_job_alloc block and derived array (vertices, edges)
 * lives in the job's arena, a list of chunks freed by weir_graph_destroy(). Only two arrays grow
 * and are therefore malloc'd separately: the node array (stream handles refer to nodes by id, so
 * moving it is fine) and each node's state array; both are freed by weir_graph_destroy().
 *
 * Invariants: node ids are dense in creation order and a node's input id is smaller than its own.
 * API misuse inside define() never crashes: it records the first error in job->error, sets
 * job->failed, and returns a usable value (a node is still created where possible; NULL where
 * there is nothing to attach to). Every function accepts a NULL stream.
 *
 * Threading: a graph is owned by one thread at a time; no locks, no global state.
 */
#include "runtime/graph/graph.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

#define ARENA_CHUNK 16384u
#define MAX_PARALLELISM_LIMIT 32768u
#define DEFAULT_MAX_PARALLELISM 128u
#define JSON_MAX_NODES 100000u
#define JSON_MAX_STATES 1024u

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

static void *xrealloc(void *p, size_t size) {
    void *q = realloc(p, size ? size : 1);
    if (!q) {
        fprintf(stderr, "weir: out of memory (%zu bytes)\n", size);
        abort();
    }
    return q;
}

static void *arena_alloc(weir_job_t *job, size_t size) {
    graph_priv_t *priv = job->arena;
    const size_t align = sizeof(max_align_t);
    size = (size + align - 1) / align * align;
    if (size == 0)
        size = align;
    arena_chunk_t *c = priv->chunks;
    if (!c || c->cap - c->used < size) {
        size_t cap = size > ARENA_CHUNK ? size : ARENA_CHUNK;
        c = calloc(1, sizeof(*c) + cap);
        if (!c) {
            fprintf(stderr, "weir: out of memory (%zu bytes)\n", cap);
            abort();
        }
        c->cap = cap;
        c->next = priv->chunks;
        priv->chunks = c;
    }
    void *p = (char *)c->data + c->used;
    c->used += size;
    memset(p, 0, size);
    return p;
}

static char *arena_strdup(weir_job_t *job, const char *s) {
    if (!s)
        return NULL;
    size_t n = strlen(s);
    char *p = arena_alloc(job, n + 1);
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

bool weir_op_is_source(weir_op_kind_t kind) {
    return kind == WEIR_OP_SOURCE_DATAGEN || kind == WEIR_OP_SOURCE_FILE ||
           kind == WEIR_OP_SOURCE_GENERATOR;
}

bool weir_op_is_sink(weir_op_kind_t kind) {
    return kind == WEIR_OP_SINK_FILE || kind == WEIR_OP_SINK_PRINT ||
           kind == WEIR_OP_SINK_BLACKHOLE || kind == WEIR_OP_SINK_CUSTOM;
}

static int kind_from_name(const char *s) {
    for (int i = 0; i < WEIR_OP__COUNT; i++)
        if (strcmp(s, kind_names[i]) == 0)
            return i;
    return -1;
}

static int part_from_name(const char *s) {
    for (int i = 0; i <= WEIR_PART_BROADCAST; i++)
        if (strcmp(s, part_names[i]) == 0)
            return i;
    return -1;
}

static int state_from_name(const char *s) {
    for (int i = 0; i <= WEIR_STATE_REDUCING; i++)
        if (strcmp(s, state_names[i]) == 0)
            return i;
    return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* Graph lifetime                                                                             */
/* ------------------------------------------------------------------------------------------ */

static void check_text(weir_job_t *job, const char *what, const char *s);

weir_job_t *weir_graph_new(const char *name, uint32_t default_parallelism) {
    weir_job_t *job = calloc(1, sizeof(*job));
    graph_priv_t *priv = calloc(1, sizeof(*priv));
    if (!job || !priv) {
        fprintf(stderr, "weir: out of memory\n");
        abort();
    }
    job->arena = priv;
    job->name = arena_strdup(job, name ? name : "job");
    job->default_parallelism = default_parallelism ? default_parallelism : 1;
    job->max_parallelism = DEFAULT_MAX_PARALLELISM;
    check_text(job, "the job name", job->name);
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
/* Job-level public API                                                                       */
/* ------------------------------------------------------------------------------------------ */

static void job_verror(weir_job_t *job, const char *fmt, va_list ap) {
    if (!job || job->failed)
        return;
    vsnprintf(job->error, sizeof(job->error), fmt, ap);
    /* keep it one line */
    for (char *p = job->error; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    job->failed = true;
}

void weir_job_error(weir_job_t *job, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    job_verror(job, fmt, ap);
    va_end(ap);
}

void weir_job_set_name(weir_job_t *job, const char *name) {
    if (!job)
        return;
    if (!name || !*name) {
        weir_job_error(job, "weir_job_set_name: the name is empty: pass a non-empty string");
        return;
    }
    job->name = arena_strdup(job, name);
    check_text(job, "the job name", name);
}

uint32_t weir_job_parallelism(const weir_job_t *job) {
    return job ? job->default_parallelism : 1;
}

void weir_job_set_max_parallelism(weir_job_t *job, uint32_t max_parallelism) {
    if (!job)
        return;
    if (max_parallelism == 0 || max_parallelism > MAX_PARALLELISM_LIMIT) {
        weir_job_error(job, "weir_job_set_max_parallelism(%u): must be between 1 and %u",
                       max_parallelism, MAX_PARALLELISM_LIMIT);
        return;
    }
    job->max_parallelism = max_parallelism;
}

void *weir_job_alloc(weir_job_t *job, size_t size) {
    if (!job) {
        fprintf(stderr, "weir: weir_job_alloc called with a NULL job\n");
        abort();
    }
    return arena_alloc(job, size);
}

char *weir_job_strdup(weir_job_t *job, const char *s) {
    if (!job || !s)
        return NULL;
    return arena_strdup(job, s);
}

/* ------------------------------------------------------------------------------------------ */
/* Node construction                                                                          */
/* ------------------------------------------------------------------------------------------ */

/* Names, uids and paths end up in JSON, which must be UTF-8. */
static void check_text(weir_job_t *job, const char *what, const char *s) {
    if (!s || job->failed)
        return;
    json_t *t = json_string(s);
    if (!t)
        weir_job_error(job, "%s is not valid UTF-8: use UTF-8 text", what);
    json_decref(t);
}

static weir_stream_t *new_stream(weir_job_t *job, uint32_t node) {
    weir_stream_t *s = arena_alloc(job, sizeof(*s));
    s->job = job;
    s->node = node;
    s->part = WEIR_PART_FORWARD;
    return s;
}

static weir_node_t *add_node(weir_job_t *job, weir_op_kind_t kind, const char *name) {
    if (job->n_nodes == job->cap_nodes) {
        job->cap_nodes = job->cap_nodes ? job->cap_nodes * 2 : 16;
        job->nodes = xrealloc(job->nodes, job->cap_nodes * sizeof(*job->nodes));
    }
    weir_node_t *n = &job->nodes[job->n_nodes];
    memset(n, 0, sizeof(*n));
    n->id = job->n_nodes++;
    n->kind = kind;
    n->name = arena_strdup(job, name && *name ? name : weir_op_kind_name(kind));
    check_text(job, "an operator name", n->name);
    n->input = -1;
    n->input_part = WEIR_PART_FORWARD;
    return n;
}

/* A node consuming @p in. in must be non-NULL. */
static weir_stream_t *add_consumer(weir_stream_t *in, weir_op_kind_t kind, const char *name,
                                   void *fn, void *udata) {
    weir_job_t *job = in->job;
    weir_node_t *n = add_node(job, kind, name);
    n->input = (int32_t)in->node;
    n->input_part = in->part;
    n->key_fn = in->key_fn;
    n->key_udata = in->key_udata;
    n->has_key_fn = in->part == WEIR_PART_HASH && in->key_fn != NULL;
    n->keyed = in->keyed;
    n->fn = fn;
    n->udata = udata;
    return new_stream(job, n->id);
}

static bool check_rate(weir_job_t *job, const char *what, const char *name, double rate) {
    if (!isfinite(rate) || rate < 0) {
        weir_job_error(job, "%s '%s': rate %g must be >= 0 (0 = unlimited)", what, name ? name : "",
                       rate);
        return false;
    }
    return true;
}

weir_stream_t *weir_source_datagen(weir_job_t *job, const char *name,
                                   const weir_datagen_opts_t *opts) {
    if (!job)
        return NULL;
    weir_node_t *n = add_node(job, WEIR_OP_SOURCE_DATAGEN, name);
    if (opts)
        n->datagen = *opts;
    if (n->datagen.kind != WEIR_DATAGEN_SEQUENCE && n->datagen.kind != WEIR_DATAGEN_RANDOM) {
        weir_job_error(job,
                       "weir_source_datagen '%s': unknown kind %d: use WEIR_DATAGEN_SEQUENCE "
                       "or WEIR_DATAGEN_RANDOM",
                       n->name, (int)n->datagen.kind);
        n->datagen.kind = WEIR_DATAGEN_SEQUENCE;
    }
    if (!check_rate(job, "weir_source_datagen", n->name, n->datagen.rate))
        n->datagen.rate = 0;
    n->rate = n->datagen.rate;
    n->count = n->datagen.count;
    return new_stream(job, n->id);
}

weir_stream_t *weir_source_file(weir_job_t *job, const char *name, const char *path, double rate) {
    if (!job)
        return NULL;
    weir_node_t *n = add_node(job, WEIR_OP_SOURCE_FILE, name);
    if (!path || !*path)
        weir_job_error(job, "weir_source_file '%s': no path: pass a file or directory", n->name);
    n->path = arena_strdup(job, path ? path : "");
    check_text(job, "weir_source_file path", n->path);
    n->rate = check_rate(job, "weir_source_file", n->name, rate) ? rate : 0;
    return new_stream(job, n->id);
}

weir_stream_t *weir_source_generator(weir_job_t *job, const char *name, uint64_t count, double rate,
                                     weir_generator_fn fn, void *udata) {
    if (!job)
        return NULL;
    weir_node_t *n = add_node(job, WEIR_OP_SOURCE_GENERATOR, name);
    if (!fn)
        weir_job_error(job, "weir_source_generator '%s': no generator function", n->name);
    n->fn = (void *)fn;
    n->udata = udata;
    n->count = count;
    n->rate = check_rate(job, "weir_source_generator", n->name, rate) ? rate : 0;
    return new_stream(job, n->id);
}

static weir_stream_t *transform(weir_stream_t *in, weir_op_kind_t kind, const char *api,
                                const char *name, void *fn, void *udata) {
    if (!in || !in->job)
        return NULL;
    if (!fn)
        weir_job_error(in->job, "%s '%s': no function: pass one", api,
                       name ? name : weir_op_kind_name(kind));
    return add_consumer(in, kind, name, fn, udata);
}

weir_stream_t *weir_map(weir_stream_t *in, const char *name, weir_map_fn fn, void *udata) {
    return transform(in, WEIR_OP_MAP, "weir_map", name, (void *)fn, udata);
}

weir_stream_t *weir_flat_map(weir_stream_t *in, const char *name, weir_flat_map_fn fn,
                             void *udata) {
    return transform(in, WEIR_OP_FLAT_MAP, "weir_flat_map", name, (void *)fn, udata);
}

weir_stream_t *weir_filter(weir_stream_t *in, const char *name, weir_filter_fn fn, void *udata) {
    return transform(in, WEIR_OP_FILTER, "weir_filter", name, (void *)fn, udata);
}

static weir_stream_t *repartition(weir_stream_t *in, weir_part_t part) {
    if (!in || !in->job)
        return NULL;
    weir_stream_t *s = new_stream(in->job, in->node);
    s->part = part;
    return s;
}

weir_stream_t *weir_key_by(weir_stream_t *in, weir_key_fn fn, void *udata) {
    weir_stream_t *s = repartition(in, WEIR_PART_HASH);
    if (s) {
        s->key_fn = fn;
        s->key_udata = udata;
        s->keyed = true;
    }
    return s;
}

weir_stream_t *weir_rebalance(weir_stream_t *in) {
    return repartition(in, WEIR_PART_REBALANCE);
}

weir_stream_t *weir_broadcast(weir_stream_t *in) {
    return repartition(in, WEIR_PART_BROADCAST);
}

static weir_stream_t *keyed_op(weir_stream_t *keyed, weir_op_kind_t kind, const char *api,
                               const char *name, void *fn, void *udata) {
    if (!keyed || !keyed->job)
        return NULL;
    const char *shown = name && *name ? name : weir_op_kind_name(kind);
    if (!keyed->keyed)
        weir_job_error(keyed->job, "%s '%s': input is not keyed: call weir_key_by() first", api,
                       shown);
    if (!fn)
        weir_job_error(keyed->job, "%s '%s': no function: pass one", api, shown);
    return add_consumer(keyed, kind, name, fn, udata);
}

weir_stream_t *weir_process(weir_stream_t *keyed, const char *name, weir_process_fn fn,
                            void *udata) {
    return keyed_op(keyed, WEIR_OP_PROCESS, "weir_process", name, (void *)fn, udata);
}

static weir_state_id add_state(weir_job_t *job, weir_node_t *n, const char *api, const char *name,
                               weir_state_kind_t kind, weir_reduce_fn fn, void *udata) {
    if (!name || !*name) {
        weir_job_error(job, "%s on '%s': the state name is empty: pass a name", api, n->name);
        return -1;
    }
    for (uint32_t i = 0; i < n->n_states; i++) {
        if (strcmp(n->states[i].name, name) == 0) {
            weir_job_error(job, "%s on '%s': state '%s' is declared twice: use distinct names", api,
                           n->name, name);
            return -1;
        }
    }
    if (n->n_states == n->cap_states) {
        n->cap_states = n->cap_states ? n->cap_states * 2 : 4;
        n->states = xrealloc(n->states, n->cap_states * sizeof(*n->states));
    }
    weir_state_decl_t *d = &n->states[n->n_states];
    d->name = arena_strdup(job, name);
    check_text(job, "a state name", name);
    d->kind = kind;
    d->reduce = fn;
    d->reduce_udata = udata;
    return (weir_state_id)n->n_states++;
}

weir_stream_t *weir_reduce(weir_stream_t *keyed, const char *name, weir_reduce_fn fn, void *udata) {
    weir_stream_t *s = keyed_op(keyed, WEIR_OP_REDUCE, "weir_reduce", name, (void *)fn, udata);
    if (s)
        add_state(s->job, &s->job->nodes[s->node], "weir_reduce", "reduce", WEIR_STATE_REDUCING, fn,
                  udata);
    return s;
}

static weir_stream_t *sink(weir_stream_t *in, weir_op_kind_t kind, const char *name, void *fn,
                           void *udata) {
    if (!in || !in->job)
        return NULL;
    return add_consumer(in, kind, name, fn, udata);
}

weir_stream_t *weir_sink_file(weir_stream_t *in, const char *name, const char *dir) {
    weir_stream_t *s = sink(in, WEIR_OP_SINK_FILE, name, NULL, NULL);
    if (s) {
        weir_node_t *n = &s->job->nodes[s->node];
        if (!dir || !*dir)
            weir_job_error(s->job, "weir_sink_file '%s': no directory: pass one", n->name);
        n->path = arena_strdup(s->job, dir ? dir : "");
        check_text(s->job, "weir_sink_file directory", n->path);
    }
    return s;
}

weir_stream_t *weir_sink_print(weir_stream_t *in, const char *name) {
    return sink(in, WEIR_OP_SINK_PRINT, name, NULL, NULL);
}

weir_stream_t *weir_sink_blackhole(weir_stream_t *in, const char *name) {
    return sink(in, WEIR_OP_SINK_BLACKHOLE, name, NULL, NULL);
}

weir_stream_t *weir_sink(weir_stream_t *in, const char *name, weir_sink_fn fn, void *udata) {
    return transform(in, WEIR_OP_SINK_CUSTOM, "weir_sink", name, (void *)fn, udata);
}

/* ------------------------------------------------------------------------------------------ */
/* Operator settings                                                                          */
/* ------------------------------------------------------------------------------------------ */

static weir_node_t *stream_node(const weir_stream_t *s) {
    if (!s || !s->job || s->node >= s->job->n_nodes)
        return NULL;
    return &s->job->nodes[s->node];
}

weir_stream_t *weir_set_uid(weir_stream_t *op, const char *uid) {
    weir_node_t *n = stream_node(op);
    if (!n)
        return op;
    if (!uid || !*uid) {
        weir_job_error(op->job, "weir_set_uid on '%s': the uid is empty: pass a stable id",
                       n->name);
        return op;
    }
    for (uint32_t i = 0; i < op->job->n_nodes; i++) {
        const weir_node_t *o = &op->job->nodes[i];
        if (o != n && o->uid && strcmp(o->uid, uid) == 0) {
            weir_job_error(op->job,
                           "weir_set_uid: uid '%s' is used by '%s' and '%s': uids must be unique",
                           uid, o->name, n->name);
            return op;
        }
    }
    n->uid = arena_strdup(op->job, uid);
    check_text(op->job, "a uid", uid);
    return op;
}

weir_stream_t *weir_set_parallelism(weir_stream_t *op, uint32_t parallelism) {
    weir_node_t *n = stream_node(op);
    if (!n)
        return op;
    if (parallelism == 0) {
        weir_job_error(op->job, "weir_set_parallelism on '%s': parallelism must be >= 1", n->name);
        return op;
    }
    n->parallelism = parallelism;
    return op;
}

static weir_state_id declare(weir_stream_t *op, const char *api, const char *name,
                             weir_state_kind_t kind, weir_reduce_fn fn, void *udata) {
    weir_node_t *n = stream_node(op);
    if (!n)
        return -1;
    if (n->kind != WEIR_OP_PROCESS) {
        weir_job_error(op->job,
                       "%s('%s') on '%s': keyed state can only be declared on a weir_process "
                       "operator, this one is a %s",
                       api, name ? name : "", n->name, weir_op_kind_name(n->kind));
        return -1;
    }
    if (kind == WEIR_STATE_REDUCING && !fn) {
        weir_job_error(op->job, "%s('%s') on '%s': no reduce function: pass one", api,
                       name ? name : "", n->name);
        return -1;
    }
    return add_state(op->job, n, api, name, kind, fn, udata);
}

weir_state_id weir_value_state(weir_stream_t *op, const char *name) {
    return declare(op, "weir_value_state", name, WEIR_STATE_VALUE, NULL, NULL);
}

weir_state_id weir_list_state(weir_stream_t *op, const char *name) {
    return declare(op, "weir_list_state", name, WEIR_STATE_LIST, NULL, NULL);
}

weir_state_id weir_map_state(weir_stream_t *op, const char *name) {
    return declare(op, "weir_map_state", name, WEIR_STATE_MAP, NULL, NULL);
}

weir_state_id weir_reducing_state(weir_stream_t *op, const char *name, weir_reduce_fn fn,
                                  void *udata) {
    return declare(op, "weir_reducing_state", name, WEIR_STATE_REDUCING, fn, udata);
}

/* ------------------------------------------------------------------------------------------ */
/* Finalize: validation, chaining, vertices and edges                                         */
/* ------------------------------------------------------------------------------------------ */

static int fail(char *errstr, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *errstr, size_t errlen, const char *fmt, ...) {
    if (errstr && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errstr, errlen, fmt, ap);
        va_end(ap);
    }
    return WEIR_EINVAL;
}

static int cmp_edge(const void *a, const void *b) {
    const weir_edge_t *x = a, *y = b;
    if (x->source != y->source)
        return x->source < y->source ? -1 : 1;
    if (x->target != y->target)
        return x->target < y->target ? -1 : 1;
    return 0;
}

int weir_graph_finalize(weir_job_t *job, char *errstr, size_t errlen) {
    if (!job)
        return fail(errstr, errlen, "no job graph");
    if (job->failed)
        return fail(errstr, errlen, "%s", job->error);
    graph_priv_t *priv = job->arena;
    job->vertices = NULL;
    job->n_vertices = 0;
    job->edges = NULL;
    job->n_edges = 0;
    priv->node_vertex = NULL;

    if (job->max_parallelism == 0 || job->max_parallelism > MAX_PARALLELISM_LIMIT)
        return fail(errstr, errlen, "job '%s': max parallelism %u must be between 1 and %u",
                    job->name, job->max_parallelism, MAX_PARALLELISM_LIMIT);
    if (job->default_parallelism == 0)
        job->default_parallelism = 1;
    if (job->n_nodes == 0)
        return fail(errstr, errlen, "job '%s' defines no operators: add a source and a sink",
                    job->name);

    uint32_t n = job->n_nodes;
    uint32_t *consumers = arena_alloc(job, n * sizeof(uint32_t));
    bool has_source = false, has_sink = false;
    for (uint32_t i = 0; i < n; i++) {
        weir_node_t *nd = &job->nodes[i];
        if ((unsigned)nd->kind >= WEIR_OP__COUNT)
            return fail(errstr, errlen, "operator %u has an unknown kind %d", i, (int)nd->kind);
        if (nd->parallelism == 0)
            nd->parallelism = job->default_parallelism;
        if (nd->parallelism > job->max_parallelism)
            return fail(errstr, errlen,
                        "operator '%s': parallelism %u exceeds the max parallelism %u: lower it "
                        "or call weir_job_set_max_parallelism()",
                        nd->name, nd->parallelism, job->max_parallelism);
        if (weir_op_is_source(nd->kind)) {
            has_source = true;
            if (nd->input != -1)
                return fail(errstr, errlen, "source '%s' cannot have an input", nd->name);
        } else {
            if (nd->input < 0 || (uint32_t)nd->input >= i)
                return fail(errstr, errlen, "operator '%s' has no valid input", nd->name);
            const weir_node_t *in = &job->nodes[nd->input];
            if (weir_op_is_sink(in->kind))
                return fail(errstr, errlen,
                            "operator '%s' reads from sink '%s': a sink has no output", nd->name,
                            in->name);
            consumers[nd->input]++;
        }
        if (weir_op_is_sink(nd->kind))
            has_sink = true;
        if ((unsigned)nd->input_part > WEIR_PART_BROADCAST)
            return fail(errstr, errlen, "operator '%s' has an unknown partitioning", nd->name);
        if (nd->kind == WEIR_OP_PROCESS || nd->kind == WEIR_OP_REDUCE) {
            if (nd->input_part != WEIR_PART_HASH)
                return fail(errstr, errlen,
                            "keyed operator '%s' is not fed by weir_key_by(): key the stream "
                            "first",
                            nd->name);
        } else if (nd->n_states > 0) {
            return fail(errstr, errlen,
                        "operator '%s' (%s) declares keyed state: only process and reduce "
                        "operators may",
                        nd->name, weir_op_kind_name(nd->kind));
        }
        if (nd->kind == WEIR_OP_REDUCE &&
            (nd->n_states != 1 || nd->states[0].kind != WEIR_STATE_REDUCING ||
             strcmp(nd->states[0].name, "reduce") != 0))
            return fail(errstr, errlen,
                        "reduce operator '%s' must have exactly one reducing state 'reduce'",
                        nd->name);
        for (uint32_t s = 0; s < nd->n_states; s++) {
            if ((unsigned)nd->states[s].kind > WEIR_STATE_REDUCING)
                return fail(errstr, errlen, "operator '%s': state %u has an unknown type", nd->name,
                            s);
            for (uint32_t t = 0; t < s; t++)
                if (strcmp(nd->states[s].name, nd->states[t].name) == 0)
                    return fail(errstr, errlen, "operator '%s': state '%s' is declared twice",
                                nd->name, nd->states[s].name);
        }
        if (nd->n_states > 0 && !nd->uid)
            return fail(errstr, errlen,
                        "stateful operator '%s' has no uid: call weir_set_uid() on it so its "
                        "state survives restarts and savepoints",
                        nd->name);
        if (nd->uid) {
            for (uint32_t j = 0; j < i; j++)
                if (job->nodes[j].uid && strcmp(job->nodes[j].uid, nd->uid) == 0)
                    return fail(errstr, errlen,
                                "uid '%s' is used by '%s' and '%s': uids must be unique", nd->uid,
                                job->nodes[j].name, nd->name);
        }
    }
    if (!has_source)
        return fail(errstr, errlen, "job '%s' has no source: add one (e.g. weir_source_datagen)",
                    job->name);
    if (!has_sink)
        return fail(errstr, errlen, "job '%s' has no sink: add one (e.g. weir_sink_print)",
                    job->name);

    /* Chaining and forward-edge checks. */
    uint32_t *node_vertex = arena_alloc(job, n * sizeof(uint32_t));
    uint32_t *chain_len = arena_alloc(job, n * sizeof(uint32_t)); /* per vertex (<= n) */
    uint32_t n_vertices = 0;
    for (uint32_t i = 0; i < n; i++) {
        weir_node_t *nd = &job->nodes[i];
        bool chained = false;
        if (nd->input >= 0) {
            const weir_node_t *in = &job->nodes[nd->input];
            if (nd->input_part == WEIR_PART_FORWARD && nd->parallelism != in->parallelism)
                return fail(errstr, errlen,
                            "forward edge '%s' (parallelism %u) -> '%s' (parallelism %u) changes "
                            "parallelism: use weir_rebalance() or weir_key_by() between them",
                            in->name, in->parallelism, nd->name, nd->parallelism);
            chained = nd->input_part == WEIR_PART_FORWARD && consumers[nd->input] == 1;
        }
        if (chained) {
            node_vertex[i] = node_vertex[nd->input];
        } else {
            node_vertex[i] = n_vertices++;
        }
        chain_len[node_vertex[i]]++;
    }

    weir_vertex_t *vs = arena_alloc(job, n_vertices * sizeof(*vs));
    for (uint32_t v = 0; v < n_vertices; v++) {
        vs[v].id = v;
        vs[v].nodes = arena_alloc(job, chain_len[v] * sizeof(uint32_t));
    }
    uint32_t n_edges = 0;
    for (uint32_t i = 0; i < n; i++) {
        weir_vertex_t *v = &vs[node_vertex[i]];
        if (v->n_nodes == 0) {
            v->parallelism = job->nodes[i].parallelism;
            if (job->nodes[i].input >= 0)
                n_edges++;
        }
        v->nodes[v->n_nodes++] = i;
    }
    /* names */
    for (uint32_t v = 0; v < n_vertices; v++) {
        size_t len = 1;
        for (uint32_t k = 0; k < vs[v].n_nodes; k++)
            len += strlen(job->nodes[vs[v].nodes[k]].name) + 4;
        char *name = arena_alloc(job, len);
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
    weir_edge_t *es = arena_alloc(job, (n_edges ? n_edges : 1) * sizeof(*es));
    uint32_t e = 0;
    for (uint32_t v = 0; v < n_vertices; v++) {
        const weir_node_t *head = &job->nodes[vs[v].nodes[0]];
        if (head->input < 0)
            continue;
        es[e].source = node_vertex[head->input];
        es[e].target = v;
        es[e].source_node = (uint32_t)head->input;
        es[e].part = head->input_part;
        e++;
    }
    qsort(es, n_edges, sizeof(*es), cmp_edge);
    for (uint32_t k = 0; k < n_edges; k++) {
        es[k].id = k;
        vs[es[k].source].n_out++;
        vs[es[k].target].n_in++;
    }
    for (uint32_t v = 0; v < n_vertices; v++) {
        vs[v].in_edges = arena_alloc(job, (vs[v].n_in ? vs[v].n_in : 1) * sizeof(uint32_t));
        vs[v].out_edges = arena_alloc(job, (vs[v].n_out ? vs[v].n_out : 1) * sizeof(uint32_t));
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

/* ------------------------------------------------------------------------------------------ */
/* JSON                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static json_t *u64_json(uint64_t v) {
    /* uint64 values travel as their two's-complement int64 bits: exact round trip */
    return json_integer((json_int_t)(int64_t)v);
}

static json_t *node_config_json(const weir_node_t *n) {
    switch (n->kind) {
    case WEIR_OP_SOURCE_DATAGEN:
        return json_pack("{s:s, s:o, s:o, s:o, s:o, s:f}", "kind",
                         n->datagen.kind == WEIR_DATAGEN_RANDOM ? "random" : "sequence", "count",
                         u64_json(n->datagen.count), "start", u64_json(n->datagen.start),
                         "random_max", u64_json(n->datagen.random_max), "seed",
                         u64_json(n->datagen.seed), "rate", n->datagen.rate);
    case WEIR_OP_SOURCE_FILE:
        return json_pack("{s:s, s:f}", "path", n->path ? n->path : "", "rate", n->rate);
    case WEIR_OP_SOURCE_GENERATOR:
        return json_pack("{s:o, s:f}", "count", u64_json(n->count), "rate", n->rate);
    case WEIR_OP_SINK_FILE:
        return json_pack("{s:s}", "path", n->path ? n->path : "");
    default:
        return json_object();
    }
}

json_t *weir_graph_to_json(const weir_job_t *job) {
    if (!job)
        return NULL;
    bool bad = false;
    json_t *nodes = json_array();
    for (uint32_t i = 0; i < job->n_nodes; i++) {
        const weir_node_t *n = &job->nodes[i];
        json_t *states = json_array();
        for (uint32_t s = 0; s < n->n_states; s++)
            json_array_append_new(states, json_pack("{s:s, s:s}", "name", n->states[s].name, "type",
                                                    weir_state_kind_name(n->states[s].kind)));
        json_t *jn = json_pack(
            "{s:I, s:s, s:s, s:o, s:I, s:I, s:s, s:b, s:o, s:o}", "id", (json_int_t)n->id, "kind",
            weir_op_kind_name(n->kind), "name", n->name ? n->name : "", "uid",
            n->uid ? json_string(n->uid) : json_null(), "parallelism", (json_int_t)n->parallelism,
            "input", (json_int_t)n->input, "partitioning", weir_part_name(n->input_part),
            "has_key_fn", (int)n->has_key_fn, "config", node_config_json(n), "states", states);
        if (!jn || json_array_append_new(nodes, jn))
            bad = true;
    }
    json_t *vertices = json_array();
    for (uint32_t v = 0; v < job->n_vertices; v++) {
        const weir_vertex_t *vx = &job->vertices[v];
        json_t *ids = json_array();
        for (uint32_t k = 0; k < vx->n_nodes; k++)
            json_array_append_new(ids, json_integer(vx->nodes[k]));
        json_array_append_new(vertices, json_pack("{s:I, s:s, s:I, s:o}", "id", (json_int_t)vx->id,
                                                  "name", vx->name, "parallelism",
                                                  (json_int_t)vx->parallelism, "nodes", ids));
    }
    json_t *edges = json_array();
    for (uint32_t e = 0; e < job->n_edges; e++) {
        const weir_edge_t *ed = &job->edges[e];
        json_array_append_new(edges,
                              json_pack("{s:I, s:I, s:I, s:s}", "id", (json_int_t)ed->id, "source",
                                        (json_int_t)ed->source, "target", (json_int_t)ed->target,
                                        "partitioning", weir_part_name(ed->part)));
    }
    json_t *root = json_pack("{s:s, s:I, s:I, s:o, s:o, s:o}", "name", job->name ? job->name : "",
                             "max_parallelism", (json_int_t)job->max_parallelism,
                             "default_parallelism", (json_int_t)job->default_parallelism, "nodes",
                             nodes, "vertices", vertices, "edges", edges);
    if (bad) {
        json_decref(root);
        return NULL;
    }
    return root;
}

/* Field readers for untrusted JSON. Each returns 0 or fails with "graph JSON: <where>: ...". */
static int get_int(const json_t *obj, const char *where, const char *key, bool required,
                   json_int_t min, json_int_t max, json_int_t dflt, json_int_t *out, char *errstr,
                   size_t errlen) {
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (required)
            return fail(errstr, errlen, "graph JSON: %s: missing integer \"%s\"", where, key);
        *out = dflt;
        return 0;
    }
    if (!json_is_integer(v))
        return fail(errstr, errlen, "graph JSON: %s: \"%s\" must be an integer", where, key);
    json_int_t x = json_integer_value(v);
    if (x < min || x > max)
        return fail(errstr, errlen, "graph JSON: %s: \"%s\" = %lld is out of range [%lld, %lld]",
                    where, key, (long long)x, (long long)min, (long long)max);
    *out = x;
    return 0;
}

static int get_str(const json_t *obj, const char *where, const char *key, bool required,
                   const char **out, char *errstr, size_t errlen) {
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (required)
            return fail(errstr, errlen, "graph JSON: %s: missing string \"%s\"", where, key);
        *out = NULL;
        return 0;
    }
    if (!json_is_string(v))
        return fail(errstr, errlen, "graph JSON: %s: \"%s\" must be a string", where, key);
    *out = json_string_value(v);
    return 0;
}

static int get_rate(const json_t *obj, const char *where, double *out, char *errstr,
                    size_t errlen) {
    const json_t *v = json_object_get(obj, "rate");
    if (!v || json_is_null(v)) {
        *out = 0;
        return 0;
    }
    if (!json_is_number(v))
        return fail(errstr, errlen, "graph JSON: %s: \"rate\" must be a number", where);
    double r = json_number_value(v);
    if (!isfinite(r) || r < 0)
        return fail(errstr, errlen, "graph JSON: %s: \"rate\" must be >= 0", where);
    *out = r;
    return 0;
}

static int get_u64(const json_t *obj, const char *where, const char *key, uint64_t *out,
                   char *errstr, size_t errlen) {
    json_int_t x;
    int rc = get_int(obj, where, key, false, INT64_MIN, INT64_MAX, 0, &x, errstr, errlen);
    if (rc == 0)
        *out = (uint64_t)(int64_t)x;
    return rc;
}

static int parse_config(weir_job_t *job, weir_node_t *n, const json_t *cfg, const char *where,
                        char *errstr, size_t errlen) {
    int rc = 0;
    const char *s = NULL;
    switch (n->kind) {
    case WEIR_OP_SOURCE_DATAGEN:
        if ((rc = get_str(cfg, where, "kind", false, &s, errstr, errlen)))
            return rc;
        if (!s || strcmp(s, "sequence") == 0)
            n->datagen.kind = WEIR_DATAGEN_SEQUENCE;
        else if (strcmp(s, "random") == 0)
            n->datagen.kind = WEIR_DATAGEN_RANDOM;
        else
            return fail(errstr, errlen,
                        "graph JSON: %s: datagen \"kind\" must be \"sequence\" or \"random\"",
                        where);
        if ((rc = get_u64(cfg, where, "count", &n->datagen.count, errstr, errlen)) ||
            (rc = get_u64(cfg, where, "start", &n->datagen.start, errstr, errlen)) ||
            (rc = get_u64(cfg, where, "random_max", &n->datagen.random_max, errstr, errlen)) ||
            (rc = get_u64(cfg, where, "seed", &n->datagen.seed, errstr, errlen)) ||
            (rc = get_rate(cfg, where, &n->datagen.rate, errstr, errlen)))
            return rc;
        n->rate = n->datagen.rate;
        n->count = n->datagen.count;
        return 0;
    case WEIR_OP_SOURCE_FILE:
        if ((rc = get_str(cfg, where, "path", true, &s, errstr, errlen)) ||
            (rc = get_rate(cfg, where, &n->rate, errstr, errlen)))
            return rc;
        n->path = arena_strdup(job, s);
        return 0;
    case WEIR_OP_SOURCE_GENERATOR:
        if ((rc = get_u64(cfg, where, "count", &n->count, errstr, errlen)) ||
            (rc = get_rate(cfg, where, &n->rate, errstr, errlen)))
            return rc;
        return 0;
    case WEIR_OP_SINK_FILE:
        if ((rc = get_str(cfg, where, "path", true, &s, errstr, errlen)))
            return rc;
        n->path = arena_strdup(job, s);
        return 0;
    default:
        return 0;
    }
}

static int parse_node(weir_job_t *job, const json_t *jn, uint32_t idx, char *errstr,
                      size_t errlen) {
    char where[48];
    snprintf(where, sizeof(where), "nodes[%u]", idx);
    if (!json_is_object(jn))
        return fail(errstr, errlen, "graph JSON: %s must be an object", where);
    json_int_t id, par, input;
    const char *kind_s, *name, *uid, *part_s;
    int rc;
    if ((rc = get_int(jn, where, "id", true, 0, INT32_MAX, 0, &id, errstr, errlen)))
        return rc;
    if ((uint32_t)id != idx)
        return fail(errstr, errlen, "graph JSON: %s: \"id\" is %lld, expected %u", where,
                    (long long)id, idx);
    if ((rc = get_str(jn, where, "kind", true, &kind_s, errstr, errlen)) ||
        (rc = get_str(jn, where, "name", true, &name, errstr, errlen)) ||
        (rc = get_str(jn, where, "uid", false, &uid, errstr, errlen)) ||
        (rc = get_int(jn, where, "parallelism", true, 1, MAX_PARALLELISM_LIMIT, 1, &par, errstr,
                      errlen)) ||
        (rc = get_int(jn, where, "input", true, -1, (json_int_t)idx - 1, -1, &input, errstr,
                      errlen)) ||
        (rc = get_str(jn, where, "partitioning", false, &part_s, errstr, errlen)))
        return rc;
    int kind = kind_from_name(kind_s);
    if (kind < 0)
        return fail(errstr, errlen, "graph JSON: %s: unknown operator kind '%s'", where, kind_s);
    int part = part_s ? part_from_name(part_s) : WEIR_PART_FORWARD;
    if (part < 0)
        return fail(errstr, errlen, "graph JSON: %s: unknown partitioning '%s'", where, part_s);
    if (uid && !*uid)
        return fail(errstr, errlen, "graph JSON: %s: \"uid\" is empty", where);
    const json_t *hk = json_object_get(jn, "has_key_fn");
    if (hk && !json_is_boolean(hk) && !json_is_null(hk))
        return fail(errstr, errlen, "graph JSON: %s: \"has_key_fn\" must be a boolean", where);
    const json_t *cfg = json_object_get(jn, "config");
    if (cfg && !json_is_object(cfg) && !json_is_null(cfg))
        return fail(errstr, errlen, "graph JSON: %s: \"config\" must be an object", where);
    const json_t *states = json_object_get(jn, "states");
    if (states && !json_is_array(states) && !json_is_null(states))
        return fail(errstr, errlen, "graph JSON: %s: \"states\" must be an array", where);
    if (states && json_array_size(states) > JSON_MAX_STATES)
        return fail(errstr, errlen, "graph JSON: %s: too many states", where);

    weir_node_t *n = add_node(job, (weir_op_kind_t)kind, name);
    n->name = arena_strdup(job, name); /* keep an empty name as given */
    n->uid = uid ? arena_strdup(job, uid) : NULL;
    n->parallelism = (uint32_t)par;
    n->input = (int32_t)input;
    n->input_part = (weir_part_t)part;
    n->has_key_fn = hk && json_is_true(hk);
    n->keyed = n->input_part == WEIR_PART_HASH;
    json_t *tmp = NULL;
    if (!cfg || json_is_null(cfg)) {
        tmp = json_object();
        cfg = tmp;
    }
    rc = parse_config(job, n, cfg, where, errstr, errlen);
    json_decref(tmp);
    if (rc)
        return rc;
    size_t k;
    const json_t *js;
    json_array_foreach(states, k, js) {
        char sw[80];
        snprintf(sw, sizeof(sw), "%s.states[%zu]", where, k);
        if (!json_is_object(js))
            return fail(errstr, errlen, "graph JSON: %s must be an object", sw);
        const char *sname, *stype;
        if ((rc = get_str(js, sw, "name", true, &sname, errstr, errlen)) ||
            (rc = get_str(js, sw, "type", true, &stype, errstr, errlen)))
            return rc;
        int st = state_from_name(stype);
        if (st < 0)
            return fail(errstr, errlen, "graph JSON: %s: unknown state type '%s'", sw, stype);
        if (!*sname)
            return fail(errstr, errlen, "graph JSON: %s: empty state name", sw);
        for (uint32_t t = 0; t < n->n_states; t++)
            if (strcmp(n->states[t].name, sname) == 0)
                return fail(errstr, errlen, "graph JSON: %s: state '%s' is declared twice", sw,
                            sname);
        if (add_state(job, n, "graph JSON", sname, (weir_state_kind_t)st, NULL, NULL) < 0)
            return fail(errstr, errlen, "graph JSON: %s: bad state", sw);
    }
    return 0;
}

weir_job_t *weir_graph_from_json(const json_t *root, char *errstr, size_t errlen) {
    if (!json_is_object(root)) {
        fail(errstr, errlen, "graph JSON: the graph must be an object");
        return NULL;
    }
    const char *name;
    json_int_t maxp, defp;
    if (get_str(root, "graph", "name", true, &name, errstr, errlen) ||
        get_int(root, "graph", "max_parallelism", false, 1, MAX_PARALLELISM_LIMIT,
                DEFAULT_MAX_PARALLELISM, &maxp, errstr, errlen) ||
        get_int(root, "graph", "default_parallelism", false, 1, MAX_PARALLELISM_LIMIT, 1, &defp,
                errstr, errlen))
        return NULL;
    const json_t *nodes = json_object_get(root, "nodes");
    if (!json_is_array(nodes) || json_array_size(nodes) == 0) {
        fail(errstr, errlen, "graph JSON: \"nodes\" must be a non-empty array");
        return NULL;
    }
    if (json_array_size(nodes) > JSON_MAX_NODES) {
        fail(errstr, errlen, "graph JSON: too many nodes (%zu, at most %u)", json_array_size(nodes),
             JSON_MAX_NODES);
        return NULL;
    }
    weir_job_t *job = weir_graph_new(name, (uint32_t)defp);
    job->max_parallelism = (uint32_t)maxp;
    size_t i;
    const json_t *jn;
    json_array_foreach(nodes, i, jn) {
        if (parse_node(job, jn, (uint32_t)i, errstr, errlen))
            goto fail;
    }
    char ferr[400];
    if (weir_graph_finalize(job, ferr, sizeof(ferr))) {
        fail(errstr, errlen, "graph JSON: %s", ferr);
        goto fail;
    }
    return job;
fail:
    weir_graph_destroy(&job);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Determinism check                                                                          */
/* ------------------------------------------------------------------------------------------ */

static int nondet(char *errstr, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int nondet(char *errstr, size_t errlen, const char *fmt, ...) {
    if (errstr && errlen) {
        char msg[400];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        snprintf(errstr, errlen, "define() is not deterministic: %s", msg);
    }
    return WEIR_EPLUGIN;
}

static bool str_eq(const char *a, const char *b) {
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

int weir_graph_apply_submitted(weir_job_t *built, const weir_job_t *submitted, char *errstr,
                               size_t errlen) {
    if (!built || !submitted)
        return nondet(errstr, errlen, "no graph to compare");
    if (built->failed)
        return nondet(errstr, errlen, "define() failed here: %s", built->error);
    if (built->n_nodes != submitted->n_nodes)
        return nondet(errstr, errlen, "it built %u operators here but %u were submitted",
                      built->n_nodes, submitted->n_nodes);
    for (uint32_t i = 0; i < built->n_nodes; i++) {
        const weir_node_t *b = &built->nodes[i], *s = &submitted->nodes[i];
        if (b->kind != s->kind)
            return nondet(errstr, errlen, "operator %u is a %s here but a %s was submitted", i,
                          weir_op_kind_name(b->kind), weir_op_kind_name(s->kind));
        if (!str_eq(b->name, s->name))
            return nondet(errstr, errlen, "operator %u is named '%s' here but '%s' was submitted",
                          i, b->name, s->name);
        if (!str_eq(b->uid, s->uid))
            return nondet(errstr, errlen, "operator '%s' has uid '%s' here but '%s' was submitted",
                          b->name, b->uid ? b->uid : "(none)", s->uid ? s->uid : "(none)");
        if (b->input != s->input || b->input_part != s->input_part)
            return nondet(errstr, errlen,
                          "operator '%s' reads input %d (%s) here but input %d (%s) was "
                          "submitted",
                          b->name, b->input, weir_part_name(b->input_part), s->input,
                          weir_part_name(s->input_part));
        if (b->n_states != s->n_states)
            return nondet(errstr, errlen,
                          "operator '%s' declares %u states here but %u were submitted", b->name,
                          b->n_states, s->n_states);
        for (uint32_t k = 0; k < b->n_states; k++)
            if (!str_eq(b->states[k].name, s->states[k].name) ||
                b->states[k].kind != s->states[k].kind)
                return nondet(errstr, errlen,
                              "operator '%s' state %u is %s '%s' here but %s '%s' was submitted",
                              b->name, k, weir_state_kind_name(b->states[k].kind),
                              b->states[k].name, weir_state_kind_name(s->states[k].kind),
                              s->states[k].name);
    }
    for (uint32_t i = 0; i < built->n_nodes; i++)
        built->nodes[i].parallelism = submitted->nodes[i].parallelism;
    built->default_parallelism = submitted->default_parallelism;
    built->max_parallelism = submitted->max_parallelism;
    char ferr[400];
    if (weir_graph_finalize(built, ferr, sizeof(ferr)))
        return nondet(errstr, errlen, "the submitted parallelism does not fit: %s", ferr);
    return 0;
}
