/* The graph's JSON form (runtime/graph/README.md has the table): weir_graph_to_json (what
 * `weir info` prints and the CLI submits), weir_graph_from_json (the job manager and the task
 * manager parse a submitted graph: untrusted input, every error one line starting with
 * "graph JSON: "), and weir_graph_apply_submitted, the determinism check of a graph rebuilt by
 * running define() again against the submitted one.
 *
 * Invariants: uint64 values travel as their two's-complement int64 bits (exact both ways); a
 * parsed graph has no function pointers (has_key_fn only records that a key selector exists) and
 * is finalized, so it has the same vertices and edges as the graph that was serialized. Limits on
 * untrusted input: at most JSON_MAX_NODES nodes, JSON_MAX_STATES states per node, parallelism
 * within WEIR_MAX_MAX_PARALLELISM, at most JSON_MAX_SUBTASKS subtasks over all vertices (every
 * process that accepts a graph sizes per-subtask tables by it).
 *
 * Threading: stateless; a graph is owned by one thread at a time.
 */
#include "runtime/graph/graph_int.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "common/json.h"
#include "common/util.h"
#include "runtime/graph/keygroup.h"

#define JSON_MAX_NODES 100000u
#define JSON_MAX_STATES 1024u
#define JSON_MAX_SUBTASKS (4u * WEIR_MAX_MAX_PARALLELISM)

/* ------------------------------------------------------------------------------------------ */
/* To JSON                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static json_t *u64_json(uint64_t v) {
    /* uint64 values travel as their two's-complement int64 bits: exact round trip */
    return json_integer((json_int_t)(int64_t)v);
}

static const char *const ttl_update_names[] = {"on_create_and_write", "on_read_and_write"};

static const char *ttl_update_name(weir_ttl_update_t u) {
    return ttl_update_names[u == WEIR_TTL_ON_READ_AND_WRITE];
}

static int ttl_update_from_name(const char *s) {
    for (int i = 0; i < 2; i++)
        if (strcmp(s, ttl_update_names[i]) == 0)
            return i;
    return -1;
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
    case WEIR_OP_SOURCE_KAFKA:
    case WEIR_OP_SINK_KAFKA: {
        /* an array of [key, value] pairs: keeps order and repeated keys as given */
        json_t *opts = json_array();
        for (uint32_t i = 0; i < n->n_options; i++)
            json_array_append_new(opts,
                                  json_pack("[s, s]", n->options[2 * i], n->options[2 * i + 1]));
        return json_pack("{s:o}", "options", opts);
    }
    default:
        return json_object();
    }
}

/* "inputs": every input of the node in order (0 = first / left, 1 = second / right), each
 * {"node", "partitioning", "has_key_fn", "input_tag"}; input 0 repeats "input",
 * "partitioning", "has_key_fn" and "input_tag" of the node (graphs written before two-input
 * nodes have only those). */
static json_t *inputs_json(const weir_node_t *n) {
    json_t *a = json_array();
    for (uint32_t k = 0; k < n->n_inputs; k++) {
        weir_node_input_t in = weir_node_input(n, k);
        json_array_append_new(a, json_pack("{s:I, s:s, s:b, s:I}", "node", (json_int_t)in.node,
                                           "partitioning", weir_part_name(in.part), "has_key_fn",
                                           (int)in.has_key_fn, "input_tag", (json_int_t)in.tag));
    }
    return a;
}

json_t *weir_graph_to_json(const weir_job_t *job) {
    if (!job)
        return NULL;
    bool bad = false;
    json_t *nodes = json_array();
    for (uint32_t i = 0; i < job->n_nodes; i++) {
        const weir_node_t *n = &job->nodes[i];
        json_t *states = json_array();
        for (uint32_t s = 0; s < n->n_states; s++) {
            const weir_state_decl_t *d = &n->states[s];
            json_t *js =
                json_pack("{s:s, s:s}", "name", d->name, "type", weir_state_kind_name(d->kind));
            if (d->ttl_ms > 0) { /* absent = no time to live (graphs before TTL read the same) */
                json_object_set_new(js, "ttl_ms", json_integer(d->ttl_ms));
                json_object_set_new(js, "ttl_update", json_string(ttl_update_name(d->ttl_update)));
            }
            json_array_append_new(states, js);
        }
        json_t *jn = json_pack(
            "{s:I, s:s, s:s, s:o, s:I, s:I, s:s, s:b, s:o, s:o}", "id", (json_int_t)n->id, "kind",
            weir_op_kind_name(n->kind), "name", n->name ? n->name : "", "uid",
            n->uid ? json_string(n->uid) : json_null(), "parallelism", (json_int_t)n->parallelism,
            "input", (json_int_t)n->input, "partitioning", weir_part_name(n->input_part),
            "has_key_fn", (int)n->has_key_fn, "config", node_config_json(n), "states", states);
        if (jn && n->has_wm &&
            json_object_set_new(jn, "watermark",
                                json_pack("{s:I, s:I}", "max_out_of_orderness_ms",
                                          (json_int_t)n->wm_bound_ms, "idle_timeout_ms",
                                          (json_int_t)n->wm_idle_ms)))
            bad = true;
        if (jn && weir__graph_side_to_json(n, jn))
            bad = true;
        if (jn && n->timers && json_object_set_new(jn, "timers", json_true()))
            bad = true;
        if (jn && n->n_inputs && json_object_set_new(jn, "inputs", inputs_json(n)))
            bad = true;
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
                              json_pack("{s:I, s:I, s:I, s:s, s:I}", "id", (json_int_t)ed->id,
                                        "source", (json_int_t)ed->source, "target",
                                        (json_int_t)ed->target, "partitioning",
                                        weir_part_name(ed->part), "input", (json_int_t)ed->input));
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

/* ------------------------------------------------------------------------------------------ */
/* From JSON                                                                                  */
/* ------------------------------------------------------------------------------------------ */

/* Readers of untrusted members: common/json.h with what = "graph JSON: <where>", so every error
 * reads "graph JSON: <where>: ...". Names of kinds, partitionings and state types are matched
 * against the model's own name functions. */

static int kind_from_name(const char *s) {
    for (int i = 0; i < WEIR_OP__COUNT; i++)
        if (strcmp(s, weir_op_kind_name((weir_op_kind_t)i)) == 0)
            return i;
    return -1;
}

static int part_from_name(const char *s) {
    for (int i = 0; i <= WEIR_PART_BROADCAST; i++)
        if (strcmp(s, weir_part_name((weir_part_t)i)) == 0)
            return i;
    return -1;
}

static int state_from_name(const char *s) {
    for (int i = 0; i <= WEIR_STATE_REDUCING; i++)
        if (strcmp(s, weir_state_kind_name((weir_state_kind_t)i)) == 0)
            return i;
    return -1;
}

/* A uint64 as written by u64_json: any int64, taken as its two's-complement bits. */
static int get_u64(const json_t *obj, const char *what, const char *key, uint64_t *out,
                   char *errstr, size_t errlen) {
    int64_t x;
    int rc = weir_json_int(obj, what, key, false, INT64_MIN, INT64_MAX, 0, &x, errstr, errlen);
    if (rc == 0)
        *out = (uint64_t)x;
    return rc;
}

/* "rate": a number >= 0, 0 (unlimited) when absent. */
static int get_rate(const json_t *obj, const char *what, double *out, char *errstr, size_t errlen) {
    return weir_json_real(obj, what, "rate", false, 0, 0, out, errstr, errlen);
}

/* Bounds of a Kafka node's options in graph JSON (as define.c's). */
#define JSON_MAX_OPTIONS 256u
#define JSON_MAX_OPTION_LEN 4096u

static int parse_options(weir_job_t *job, weir_node_t *n, const json_t *cfg, const char *what,
                         char *errstr, size_t errlen) {
    const json_t *opts = NULL;
    int rc = weir_json_array(cfg, what, "options", true, &opts, errstr, errlen);
    if (rc)
        return rc;
    size_t count = json_array_size(opts);
    if (count > JSON_MAX_OPTIONS)
        return weir_errf(errstr, errlen, WEIR_EINVAL, "%s: more than %u options", what,
                         JSON_MAX_OPTIONS);
    n->options = weir_job_alloc(job, (2 * count + 1) * sizeof *n->options);
    for (size_t i = 0; i < count; i++) {
        const json_t *pair = json_array_get(opts, i);
        for (size_t j = 0; j < 2; j++) {
            const json_t *v = json_array_get(pair, j);
            if (json_array_size(pair) != 2 || !json_is_string(v) ||
                (j == 0 && !*json_string_value(v)) || json_string_length(v) > JSON_MAX_OPTION_LEN)
                return weir_errf(errstr, errlen, WEIR_EINVAL,
                                 "%s: \"options\"[%zu] must be a [key, value] pair of strings "
                                 "(the key not empty) of at most %u bytes",
                                 what, i, JSON_MAX_OPTION_LEN);
            n->options[2 * i + j] = weir__graph_strdup(job, json_string_value(v));
        }
    }
    n->n_options = (uint32_t)count;
    return 0;
}

static int parse_config(weir_job_t *job, weir_node_t *n, const json_t *cfg, const char *what,
                        char *errstr, size_t errlen) {
    int rc = 0;
    const char *s = NULL;
    switch (n->kind) {
    case WEIR_OP_SOURCE_DATAGEN:
        if ((rc = weir_json_str(cfg, what, "kind", false, &s, errstr, errlen)))
            return rc;
        if (!s || strcmp(s, "sequence") == 0)
            n->datagen.kind = WEIR_DATAGEN_SEQUENCE;
        else if (strcmp(s, "random") == 0)
            n->datagen.kind = WEIR_DATAGEN_RANDOM;
        else
            return weir_errf(errstr, errlen, WEIR_EINVAL,
                             "%s: datagen \"kind\" must be \"sequence\" or \"random\"", what);
        if ((rc = get_u64(cfg, what, "count", &n->datagen.count, errstr, errlen)) ||
            (rc = get_u64(cfg, what, "start", &n->datagen.start, errstr, errlen)) ||
            (rc = get_u64(cfg, what, "random_max", &n->datagen.random_max, errstr, errlen)) ||
            (rc = get_u64(cfg, what, "seed", &n->datagen.seed, errstr, errlen)) ||
            (rc = get_rate(cfg, what, &n->datagen.rate, errstr, errlen)))
            return rc;
        n->rate = n->datagen.rate;
        n->count = n->datagen.count;
        return 0;
    case WEIR_OP_SOURCE_FILE:
        if ((rc = weir_json_str(cfg, what, "path", true, &s, errstr, errlen)) ||
            (rc = get_rate(cfg, what, &n->rate, errstr, errlen)))
            return rc;
        n->path = weir__graph_strdup(job, s);
        return 0;
    case WEIR_OP_SOURCE_GENERATOR:
        if ((rc = get_u64(cfg, what, "count", &n->count, errstr, errlen)) ||
            (rc = get_rate(cfg, what, &n->rate, errstr, errlen)))
            return rc;
        return 0;
    case WEIR_OP_SINK_FILE:
        if ((rc = weir_json_str(cfg, what, "path", true, &s, errstr, errlen)))
            return rc;
        n->path = weir__graph_strdup(job, s);
        return 0;
    case WEIR_OP_SOURCE_KAFKA:
    case WEIR_OP_SINK_KAFKA:
        return parse_options(job, n, cfg, what, errstr, errlen);
    default:
        return 0;
    }
}

/* "watermark": absent / null (no strategy) or {"max_out_of_orderness_ms", "idle_timeout_ms"},
 * each within 0..WEIR_WM_MAX_MS; only on a source. */
static int parse_watermark(weir_node_t *n, const json_t *jn, const char *what, char *errstr,
                           size_t errlen) {
    const json_t *wm = json_object_get(jn, "watermark");
    if (!wm || json_is_null(wm))
        return 0;
    if (!json_is_object(wm))
        return weir_errf(errstr, errlen, WEIR_EINVAL, "%s: \"watermark\" must be an object", what);
    if (!weir_op_is_source(n->kind))
        return weir_errf(errstr, errlen, WEIR_EINVAL,
                         "%s: \"watermark\" is only allowed on a source", what);
    char ww[96];
    snprintf(ww, sizeof(ww), "%s.watermark", what);
    int rc;
    if ((rc = weir_json_int(wm, ww, "max_out_of_orderness_ms", true, 0, WEIR_WM_MAX_MS, 0,
                            &n->wm_bound_ms, errstr, errlen)) ||
        (rc = weir_json_int(wm, ww, "idle_timeout_ms", false, 0, WEIR_WM_MAX_MS, 0, &n->wm_idle_ms,
                            errstr, errlen)))
        return rc;
    n->has_wm = true;
    return 0;
}

/* "timers": absent / false, or true on a process operator: its timers live in the map state
 * WEIR_TIMERS_STATE (declared here when the "states" did not list it). */
static int parse_timers(weir_job_t *job, weir_node_t *n, const json_t *jn, const char *what,
                        char *errstr, size_t errlen) {
    bool on = false;
    int rc = weir_json_bool(jn, what, "timers", false, false, &on, errstr, errlen);
    if (rc || !on)
        return rc;
    if (n->kind != WEIR_OP_PROCESS)
        return weir_errf(errstr, errlen, WEIR_EINVAL,
                         "%s: \"timers\" is only allowed on a process operator", what);
    for (uint32_t t = 0; t < n->n_states; t++)
        if (strcmp(n->states[t].name, WEIR_TIMERS_STATE) == 0) {
            if (n->states[t].kind != WEIR_STATE_MAP || n->states[t].ttl_ms)
                return weir_errf(errstr, errlen, WEIR_EINVAL,
                                 "%s: state '%s' holds the timers: it must be a map without ttl",
                                 what, WEIR_TIMERS_STATE);
            n->timers = true;
            return 0;
        }
    if (n->n_states >= JSON_MAX_STATES ||
        weir__graph_add_state(job, n, "graph JSON", WEIR_TIMERS_STATE, WEIR_STATE_MAP, NULL, NULL) <
            0)
        return weir_errf(errstr, errlen, WEIR_EINVAL, "%s: cannot declare the timer state", what);
    n->timers = true;
    return 0;
}

/* "inputs" (absent in graphs written before two-input nodes: the node's one input is
 * "input"): 1 or 2 objects; the first must repeat the node's "input", "partitioning",
 * "has_key_fn" and "input_tag", the second is input 1 of a two-input node (finalize checks
 * the rest). */
static int parse_inputs(weir_node_t *n, const json_t *jn, const char *what, char *errstr,
                        size_t errlen) {
    const json_t *ins = NULL;
    int rc = weir_json_array(jn, what, "inputs", false, &ins, errstr, errlen);
    if (rc || !ins)
        return rc;
    size_t count = json_array_size(ins);
    if (count > WEIR_MAX_INPUTS || (count == 0) != (n->input < 0))
        return weir_errf(errstr, errlen, WEIR_EINVAL,
                         "%s: \"inputs\" must list the node's inputs: none for a source, 1 or "
                         "%u otherwise",
                         what, WEIR_MAX_INPUTS);
    for (size_t k = 0; k < count; k++) {
        const json_t *ji = json_array_get(ins, k);
        char iw[96];
        snprintf(iw, sizeof(iw), "%s.inputs[%zu]", what, k);
        if (!json_is_object(ji))
            return weir_errf(errstr, errlen, WEIR_EINVAL, "%s must be an object", iw);
        int64_t node, tag;
        const char *part_s;
        bool hk;
        if ((rc = weir_json_int(ji, iw, "node", true, 0, (int64_t)n->id - 1, 0, &node, errstr,
                                errlen)) ||
            (rc = weir_json_str(ji, iw, "partitioning", true, &part_s, errstr, errlen)) ||
            (rc = weir_json_bool(ji, iw, "has_key_fn", false, false, &hk, errstr, errlen)) ||
            (rc = weir_json_int(ji, iw, "input_tag", false, 0, WEIR_MAX_SIDE_OUTPUTS, 0, &tag,
                                errstr, errlen)))
            return rc;
        int part = part_from_name(part_s);
        if (part < 0)
            return weir_errf(errstr, errlen, WEIR_EINVAL, "%s: unknown partitioning '%s'", iw,
                             part_s);
        weir_node_input_t in = {.node = (int32_t)node,
                                .part = (weir_part_t)part,
                                .has_key_fn = hk,
                                .tag = (uint32_t)tag};
        if (k == 0 && (in.node != n->input || in.part != n->input_part ||
                       in.has_key_fn != n->has_key_fn || in.tag != n->input_tag))
            return weir_errf(errstr, errlen, WEIR_EINVAL,
                             "%s differs from the node's \"input\", \"partitioning\", "
                             "\"has_key_fn\" or \"input_tag\": they describe the same input",
                             iw);
        if (k == 1)
            n->in2 = in;
    }
    n->n_inputs = (uint32_t)count;
    return 0;
}

static int parse_node(weir_job_t *job, const json_t *jn, uint32_t idx, char *errstr,
                      size_t errlen) {
    char what[64];
    snprintf(what, sizeof(what), "graph JSON: nodes[%u]", idx);
    if (!json_is_object(jn))
        return weir_errf(errstr, errlen, WEIR_EINVAL, "%s must be an object", what);
    int64_t id, par, input;
    const char *kind_s, *name, *uid, *part_s;
    const json_t *states;
    int rc;
    if ((rc = weir_json_int(jn, what, "id", true, 0, INT32_MAX, 0, &id, errstr, errlen)))
        return rc;
    if ((uint32_t)id != idx)
        return weir_errf(errstr, errlen, WEIR_EINVAL, "%s: \"id\" is %lld, expected %u", what,
                         (long long)id, idx);
    if ((rc = weir_json_str(jn, what, "kind", true, &kind_s, errstr, errlen)) ||
        (rc = weir_json_str(jn, what, "name", true, &name, errstr, errlen)) ||
        (rc = weir_json_str(jn, what, "uid", false, &uid, errstr, errlen)) ||
        (rc = weir_json_int(jn, what, "parallelism", true, 1, WEIR_MAX_MAX_PARALLELISM, 1, &par,
                            errstr, errlen)) ||
        (rc = weir_json_int(jn, what, "input", true, -1, (int64_t)idx - 1, -1, &input, errstr,
                            errlen)) ||
        (rc = weir_json_str(jn, what, "partitioning", false, &part_s, errstr, errlen)))
        return rc;
    int kind = kind_from_name(kind_s);
    if (kind < 0)
        return weir_errf(errstr, errlen, WEIR_EINVAL, "%s: unknown operator kind '%s'", what,
                         kind_s);
    int part = part_s ? part_from_name(part_s) : WEIR_PART_FORWARD;
    if (part < 0)
        return weir_errf(errstr, errlen, WEIR_EINVAL, "%s: unknown partitioning '%s'", what,
                         part_s);
    if (uid && !*uid)
        return weir_errf(errstr, errlen, WEIR_EINVAL, "%s: \"uid\" is empty", what);
    const json_t *hk = json_object_get(jn, "has_key_fn");
    if (hk && !json_is_boolean(hk) && !json_is_null(hk))
        return weir_errf(errstr, errlen, WEIR_EINVAL, "%s: \"has_key_fn\" must be a boolean", what);
    const json_t *cfg = json_object_get(jn, "config");
    if (cfg && !json_is_object(cfg) && !json_is_null(cfg))
        return weir_errf(errstr, errlen, WEIR_EINVAL, "%s: \"config\" must be an object", what);
    if ((rc = weir_json_array(jn, what, "states", false, &states, errstr, errlen)))
        return rc;
    if (states && json_array_size(states) > JSON_MAX_STATES)
        return weir_errf(errstr, errlen, WEIR_EINVAL, "%s: too many states", what);

    weir_node_t *n = weir__graph_add_node(job, (weir_op_kind_t)kind, name);
    n->name = weir__graph_strdup(job, name); /* keep an empty name as given */
    n->uid = uid ? weir__graph_strdup(job, uid) : NULL;
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
    rc = parse_config(job, n, cfg, what, errstr, errlen);
    json_decref(tmp);
    if (rc || (rc = parse_watermark(n, jn, what, errstr, errlen)) ||
        (rc = weir__graph_side_from_json(job, n, jn, what, errstr, errlen)))
        return rc;
    size_t k;
    const json_t *js;
    json_array_foreach(states, k, js) {
        char sw[96];
        snprintf(sw, sizeof(sw), "%s.states[%zu]", what, k);
        if (!json_is_object(js))
            return weir_errf(errstr, errlen, WEIR_EINVAL, "%s must be an object", sw);
        const char *sname, *stype;
        if ((rc = weir_json_str(js, sw, "name", true, &sname, errstr, errlen)) ||
            (rc = weir_json_str(js, sw, "type", true, &stype, errstr, errlen)))
            return rc;
        int st = state_from_name(stype);
        if (st < 0)
            return weir_errf(errstr, errlen, WEIR_EINVAL, "%s: unknown state type '%s'", sw, stype);
        if (!*sname)
            return weir_errf(errstr, errlen, WEIR_EINVAL, "%s: empty state name", sw);
        for (uint32_t t = 0; t < n->n_states; t++)
            if (strcmp(n->states[t].name, sname) == 0)
                return weir_errf(errstr, errlen, WEIR_EINVAL, "%s: state '%s' is declared twice",
                                 sw, sname);
        int64_t ttl;
        const char *upd;
        if ((rc = weir_json_int(js, sw, "ttl_ms", false, 0, WEIR_MAX_STATE_TTL_MS, 0, &ttl, errstr,
                                errlen)) ||
            (rc = weir_json_str(js, sw, "ttl_update", false, &upd, errstr, errlen)))
            return rc;
        if (upd && ttl == 0)
            return weir_errf(errstr, errlen, WEIR_EINVAL,
                             "%s: ttl_update without ttl_ms: give the time to live or drop it", sw);
        int mode = upd ? ttl_update_from_name(upd) : WEIR_TTL_ON_CREATE_AND_WRITE;
        if (mode < 0)
            return weir_errf(errstr, errlen, WEIR_EINVAL,
                             "%s: unknown ttl_update '%s': use on_create_and_write or "
                             "on_read_and_write",
                             sw, upd);
        if (weir__graph_add_state(job, n, "graph JSON", sname, (weir_state_kind_t)st, NULL, NULL) <
            0)
            return weir_errf(errstr, errlen, WEIR_EINVAL, "%s: bad state", sw);
        n->states[n->n_states - 1].ttl_ms = ttl;
        n->states[n->n_states - 1].ttl_update = (weir_ttl_update_t)mode;
    }
    if ((rc = parse_inputs(n, jn, what, errstr, errlen)))
        return rc;
    return parse_timers(job, n, jn, what, errstr, errlen);
}

weir_job_t *weir_graph_from_json(const json_t *root, char *errstr, size_t errlen) {
    if (!json_is_object(root)) {
        weir_errf(errstr, errlen, WEIR_EINVAL, "graph JSON: the graph must be an object");
        return NULL;
    }
    const char *what = "graph JSON: graph";
    const char *name;
    int64_t maxp, defp;
    if (weir_json_str(root, what, "name", true, &name, errstr, errlen) ||
        weir_json_int(root, what, "max_parallelism", false, 1, WEIR_MAX_MAX_PARALLELISM,
                      WEIR_DEFAULT_MAX_PARALLELISM, &maxp, errstr, errlen) ||
        weir_json_int(root, what, "default_parallelism", false, 1, WEIR_MAX_MAX_PARALLELISM, 1,
                      &defp, errstr, errlen))
        return NULL;
    const json_t *nodes = json_object_get(root, "nodes");
    if (!json_is_array(nodes) || json_array_size(nodes) == 0) {
        weir_errf(errstr, errlen, WEIR_EINVAL, "graph JSON: \"nodes\" must be a non-empty array");
        return NULL;
    }
    if (json_array_size(nodes) > JSON_MAX_NODES) {
        weir_errf(errstr, errlen, WEIR_EINVAL, "graph JSON: too many nodes (%zu, at most %u)",
                  json_array_size(nodes), JSON_MAX_NODES);
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
        weir_errf(errstr, errlen, WEIR_EINVAL, "graph JSON: %s", ferr);
        goto fail;
    }
    uint64_t subtasks = 0;
    for (uint32_t v = 0; v < job->n_vertices; v++)
        subtasks += job->vertices[v].parallelism;
    if (subtasks > JSON_MAX_SUBTASKS) {
        weir_errf(errstr, errlen, WEIR_EINVAL,
                  "graph JSON: %llu subtasks (the parallelism of %u vertices added up), at most "
                  "%u: lower the parallelism",
                  (unsigned long long)subtasks, job->n_vertices, JSON_MAX_SUBTASKS);
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
        if (b->in2.node != s->in2.node ||
            (b->in2.node >= 0 && (b->in2.part != s->in2.part || b->in2.tag != s->in2.tag)))
            return nondet(errstr, errlen,
                          "operator '%s' reads second input %d (%s) here but %d (%s) was "
                          "submitted",
                          b->name, b->in2.node, weir_part_name(b->in2.part), s->in2.node,
                          weir_part_name(s->in2.part));
        if (b->has_wm != s->has_wm ||
            (b->has_wm && (b->wm_bound_ms != s->wm_bound_ms || b->wm_idle_ms != s->wm_idle_ms)))
            return nondet(errstr, errlen,
                          "operator '%s' has another watermark strategy here than was submitted",
                          b->name);
        char serr[400];
        if (weir__graph_side_compare(b, s, serr, sizeof(serr)))
            return nondet(errstr, errlen, "%s", serr);
        if (b->timers != s->timers)
            return nondet(errstr, errlen, "operator '%s' has %s here but %s submitted", b->name,
                          b->timers ? "timers" : "no timers",
                          s->timers ? "timers were" : "none were");
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
        for (uint32_t k = 0; k < b->n_states; k++)
            if (b->states[k].ttl_ms != s->states[k].ttl_ms ||
                (b->states[k].ttl_ms && b->states[k].ttl_update != s->states[k].ttl_update))
                return nondet(errstr, errlen,
                              "operator '%s' state '%s' has time to live %lld ms (%s) here but "
                              "%lld ms (%s) was submitted",
                              b->name, b->states[k].name, (long long)b->states[k].ttl_ms,
                              ttl_update_name(b->states[k].ttl_update),
                              (long long)s->states[k].ttl_ms,
                              ttl_update_name(s->states[k].ttl_update));
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