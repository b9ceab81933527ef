/* Side outputs in the graph model (include/weir/weir.h, "Side outputs"; Flink's OutputTag): the
 * define-time API (weir_side_output_tag, weir_side_output), finalize's check of a node's tags
 * and of the tag it reads, the "side_outputs" / "input_tag" members of the JSON form (both ways,
 * bounded) and their part of the determinism check between define() runs.
 *
 * Model: a node declares tags 1..n_side (side_names[t - 1], at most WEIR_MAX_SIDE_OUTPUTS, names
 * 1..WEIR_MAX_SIDE_NAME bytes, unique per node); tag 0 is the main output. A consumer names the
 * output it reads with input_tag (a stream handle carries it as `tag`); an edge carries the tag
 * of its source node (source_tag). Chaining (graph.c, weir__graph_side_chainable): a node chains
 * to its input when it reads it FORWARD with equal parallelism and is its only consumer over all
 * outputs (as without side outputs) or, when the input declares side outputs, the only consumer
 * of the output it reads and the first such one: so a chain stays a line, and the other outputs
 * of a node inside a chain leave through exchange edges from that node (not only from the tail).
 *
 * Invariants: only user-function kinds with an output declare tags (weir_op_has_side_outputs);
 * a node reads a tag its input declares. Errors are recorded on the job (define time) or
 * returned as one line (finalize, JSON). Threading: a graph is owned by one thread at a time.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "common/json.h"
#include "common/util.h"
#include "runtime/graph/graph_int.h"

bool weir_op_has_side_outputs(weir_op_kind_t kind) {
    return weir_op_is_user_function(kind) && !weir_op_is_sink(kind);
}

/* ------------------------------------------------------------------------------------------ */
/* Define time                                                                                */
/* ------------------------------------------------------------------------------------------ */

/* The problem with side-output name @p name of @p n, NULL when it is fine. */
static const char *name_problem(const weir_node_t *n, const char *name) {
    if (!name || !*name)
        return "the name is empty: pass a name";
    if (strlen(name) > WEIR_MAX_SIDE_NAME)
        return "the name is longer than 128 bytes: use a shorter name";
    for (uint32_t t = 0; t < n->n_side; t++)
        if (strcmp(n->side_names[t], name) == 0)
            return "the name is declared twice: use distinct names";
    return NULL;
}

int weir_side_output_tag(weir_stream_t *op, const char *name) {
    if (!op || !op->job || op->node >= op->job->n_nodes)
        return -1;
    weir_job_t *job = op->job;
    weir_node_t *n = &job->nodes[op->node];
    const char *shown = name ? name : "(null)";
    if (!weir_op_has_side_outputs(n->kind)) {
        weir__graph_error(job,
                          "weir_side_output_tag '%s' on '%s': a %s has no side outputs: declare "
                          "them on a map, flat_map, filter, process, reduce or generator source",
                          shown, n->name, weir_op_kind_name(n->kind));
        return -1;
    }
    const char *bad = name_problem(n, name);
    if (bad) {
        weir__graph_error(job, "weir_side_output_tag '%.128s' on '%s': %s", shown, n->name, bad);
        return -1;
    }
    if (n->n_side >= WEIR_MAX_SIDE_OUTPUTS) {
        weir__graph_error(job,
                          "weir_side_output_tag '%s' on '%s': more than %u side outputs: merge "
                          "some of them",
                          name, n->name, WEIR_MAX_SIDE_OUTPUTS);
        return -1;
    }
    if (!n->side_names)
        n->side_names = weir__graph_alloc(job, WEIR_MAX_SIDE_OUTPUTS * sizeof(char *));
    n->side_names[n->n_side++] = weir__graph_strdup(job, name);
    weir__graph_check_text(job, "a side output name", name);
    return (int)n->n_side;
}

weir_stream_t *weir_side_output(weir_stream_t *op, int tag) {
    if (!op || !op->job || op->node >= op->job->n_nodes)
        return NULL;
    weir_job_t *job = op->job;
    const weir_node_t *n = &job->nodes[op->node];
    if (tag < 1 || (uint32_t)tag > n->n_side)
        weir__graph_error(job,
                          "weir_side_output on '%s': tag %d is not declared (it has %u side "
                          "outputs): use a tag returned by weir_side_output_tag",
                          n->name, tag, n->n_side);
    weir_stream_t *s = weir__graph_alloc(job, sizeof(*s));
    s->job = job;
    s->node = op->node;
    s->part = WEIR_PART_FORWARD;
    s->tag = tag < 1 || (uint32_t)tag > n->n_side ? 0 : (uint32_t)tag;
    return s;
}

/* ------------------------------------------------------------------------------------------ */
/* Finalize                                                                                   */
/* ------------------------------------------------------------------------------------------ */

int weir__graph_side_check(const weir_job_t *job, const weir_node_t *nd, char *errstr,
                           size_t errlen) {
    if (nd->n_side > 0 && !weir_op_has_side_outputs(nd->kind))
        return weir_errf(errstr, errlen, WEIR_EINVAL,
                         "operator '%s' (%s) declares side outputs: only map, flat_map, filter, "
                         "process, reduce and generator source operators may",
                         nd->name, weir_op_kind_name(nd->kind));
    if (nd->n_side > WEIR_MAX_SIDE_OUTPUTS)
        return weir_errf(errstr, errlen, WEIR_EINVAL, "operator '%s' has more than %u side outputs",
                         nd->name, WEIR_MAX_SIDE_OUTPUTS);
    if (nd->input_tag == 0)
        return 0;
    if (nd->input < 0)
        return weir_errf(errstr, errlen, WEIR_EINVAL,
                         "operator '%s' reads side output %u but has no input", nd->name,
                         nd->input_tag);
    const weir_node_t *in = &job->nodes[nd->input];
    if (nd->input_tag > in->n_side)
        return weir_errf(errstr, errlen, WEIR_EINVAL,
                         "operator '%s' reads side output %u of '%s', which declares %u side "
                         "outputs",
                         nd->name, nd->input_tag, in->name, in->n_side);
    return 0;
}

const bool *weir__graph_side_chainable(weir_job_t *job) {
    uint32_t n = job->n_nodes;
    bool *ok = weir__graph_alloc(job, (n ? n : 1) * sizeof(bool));
    /* consumers per (node, output): node k's outputs start at base[k] (n_side + 1 of them) */
    uint32_t *base = weir__graph_alloc(job, (n ? n : 1) * sizeof(uint32_t));
    size_t total = 0;
    for (uint32_t k = 0; k < n; k++) {
        base[k] = (uint32_t)total;
        total += job->nodes[k].n_side > 0 ? job->nodes[k].n_side + 1 : 0;
    }
    uint32_t *cons = weir__graph_alloc(job, (total ? total : 1) * sizeof(uint32_t));
    for (uint32_t i = 0; i < n; i++) {
        const weir_node_t *nd = &job->nodes[i];
        for (uint32_t k = 0; k < WEIR_MAX_INPUTS; k++) {
            weir_node_input_t in = weir_node_input(nd, k);
            if (in.node >= 0 && job->nodes[in.node].n_side > 0)
                cons[base[in.node] + in.tag]++;
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        const weir_node_t *nd = &job->nodes[i];
        ok[i] = nd->input >= 0 && job->nodes[nd->input].n_side > 0 &&
                cons[base[nd->input] + nd->input_tag] == 1;
    }
    return ok;
}

/* ------------------------------------------------------------------------------------------ */
/* JSON                                                                                       */
/* ------------------------------------------------------------------------------------------ */

int weir__graph_side_to_json(const weir_node_t *n, json_t *jn) {
    if (n->n_side > 0) {
        json_t *names = json_array();
        for (uint32_t t = 0; t < n->n_side; t++)
            if (json_array_append_new(names, json_string(n->side_names[t])))
                return json_decref(names), -1;
        if (json_object_set_new(jn, "side_outputs", names))
            return -1;
    }
    if (n->input_tag != 0 &&
        json_object_set_new(jn, "input_tag", json_integer((json_int_t)n->input_tag)))
        return -1;
    return 0;
}

int weir__graph_side_from_json(weir_job_t *job, weir_node_t *n, const json_t *jn, const char *what,
                               char *errstr, size_t errlen) {
    const json_t *names = NULL;
    int64_t tag = 0;
    int rc;
    if ((rc = weir_json_array(jn, what, "side_outputs", false, &names, errstr, errlen)) ||
        (rc = weir_json_int(jn, what, "input_tag", false, 0, WEIR_MAX_SIDE_OUTPUTS, 0, &tag, errstr,
                            errlen)))
        return rc;
    if (tag != 0 && n->input < 0)
        return weir_errf(errstr, errlen, WEIR_EINVAL,
                         "%s: \"input_tag\" is %lld but the node has no input", what,
                         (long long)tag);
    if (tag != 0 && tag > job->nodes[n->input].n_side)
        return weir_errf(errstr, errlen, WEIR_EINVAL,
                         "%s: \"input_tag\" is %lld but input node %d declares %u side outputs",
                         what, (long long)tag, n->input, job->nodes[n->input].n_side);
    n->input_tag = (uint32_t)tag;
    if (!names || json_array_size(names) == 0)
        return 0;
    if (!weir_op_has_side_outputs(n->kind))
        return weir_errf(errstr, errlen, WEIR_EINVAL, "%s: \"side_outputs\" is not allowed on a %s",
                         what, weir_op_kind_name(n->kind));
    if (json_array_size(names) > WEIR_MAX_SIDE_OUTPUTS)
        return weir_errf(errstr, errlen, WEIR_EINVAL, "%s: \"side_outputs\" has more than %u names",
                         what, WEIR_MAX_SIDE_OUTPUTS);
    n->side_names = weir__graph_alloc(job, WEIR_MAX_SIDE_OUTPUTS * sizeof(char *));
    size_t k;
    const json_t *js;
    json_array_foreach(names, k, js) {
        const char *name = json_string_value(js);
        if (!name)
            return weir_errf(errstr, errlen, WEIR_EINVAL,
                             "%s: \"side_outputs\"[%zu] must be a string", what, k);
        const char *bad = name_problem(n, name);
        if (bad)
            return weir_errf(errstr, errlen, WEIR_EINVAL, "%s: \"side_outputs\"[%zu]: %s", what, k,
                             bad);
        n->side_names[n->n_side++] = weir__graph_strdup(job, name);
    }
    return 0;
}

int weir__graph_side_compare(const weir_node_t *b, const weir_node_t *s, char *errstr,
                             size_t errlen) {
    if (b->input_tag != s->input_tag)
        return weir_errf(errstr, errlen, WEIR_EPLUGIN,
                         "operator '%s' reads output %u of its input here but output %u was "
                         "submitted",
                         b->name, b->input_tag, s->input_tag);
    if (b->n_side != s->n_side)
        return weir_errf(errstr, errlen, WEIR_EPLUGIN,
                         "operator '%s' declares %u side outputs here but %u were submitted",
                         b->name, b->n_side, s->n_side);
    for (uint32_t t = 0; t < b->n_side; t++)
        if (strcmp(b->side_names[t], s->side_names[t]) != 0)
            return weir_errf(errstr, errlen, WEIR_EPLUGIN,
                             "operator '%s' side output %u is '%s' here but '%s' was submitted",
                             b->name, t + 1, b->side_names[t], s->side_names[t]);
    return 0;
}
