/* Tests of the two-input operators at define time and in the graph (runtime/graph/ and
 * runtime/task/join.c; docs/event-time.md "Joins"): weir_co_process and the joins build a
 * process node with two inputs, each with its own partitioning, key selector and tag; the
 * vertex of a two-input node starts with it and has one edge per input, numbered by input; the
 * JSON form carries "inputs" and each edge's "input" and round-trips; a graph written before
 * two-input nodes (no "inputs") reads as one input; malformed "inputs" are refused with one
 * line; the determinism check compares the second input; API misuse is one define-time error.
 * Expected vertices and edges are written out by hand. The runtime half (dispatch per input,
 * barrier alignment and watermarks over both inputs) is in test_task.c, end to end in
 * tests/integration/28_joins.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/err.h"
#include "runtime/graph/graph.h"

static void proc_fn(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    (void)ctx;
    (void)in;
    (void)udata;
}
static void proc_fn2(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    (void)ctx;
    (void)in;
    (void)udata;
}
static uint32_t key_a(const weir_record_t *in, void *key_out, void *udata) {
    (void)in;
    (void)key_out;
    (void)udata;
    return 0;
}
static uint32_t key_b(const weir_record_t *in, void *key_out, void *udata) {
    (void)in;
    (void)key_out;
    (void)udata;
    return 1;
}
static void cogroup_fn(weir_ctx_t *ctx, const weir_window_t *w, const weir_record_t *left,
                       size_t n_left, const weir_record_t *right, size_t n_right, void *udata) {
    (void)ctx;
    (void)w;
    (void)left;
    (void)n_left;
    (void)right;
    (void)n_right;
    (void)udata;
}
static void join_fn(weir_ctx_t *ctx, const weir_window_t *w, const weir_record_t *l,
                    const weir_record_t *r, void *udata) {
    (void)ctx;
    (void)w;
    (void)l;
    (void)r;
    (void)udata;
}

static weir_stream_t *seq(weir_job_t *job, const char *name) {
    weir_datagen_opts_t o = {.kind = WEIR_DATAGEN_SEQUENCE, .count = 10};
    return weir_set_uid(weir_source_datagen(job, name, &o), name);
}

/* a(0) and b(1) keyed (a by key_a, b by key_b) -> co(2) -> map(3) -> print(4), p2 */
static weir_job_t *co_job(void) {
    weir_job_t *job = weir_graph_new("co", 2);
    weir_stream_t *a = seq(job, "a"), *b = seq(job, "b");
    weir_stream_t *co = weir_co_process(weir_key_by(a, key_a, NULL), weir_key_by(b, key_b, NULL),
                                        "co", proc_fn, proc_fn2, NULL);
    weir_set_uid(co, "co");
    weir_value_state(co, "shared");
    weir_sink_print(weir_map(co, "m", proc_fn, NULL), "out");
    return job;
}

static void test_co_process_graph(void **state) {
    (void)state;
    char err[512];
    weir_job_t *job = co_job();
    assert_int_equal(weir_graph_finalize(job, err, sizeof err), 0);
    const weir_node_t *co = &job->nodes[2];
    assert_int_equal(co->kind, WEIR_OP_PROCESS);
    assert_int_equal(co->n_inputs, 2);
    weir_node_input_t i0 = weir_node_input(co, 0), i1 = weir_node_input(co, 1);
    assert_int_equal(i0.node, 0);
    assert_int_equal(i1.node, 1);
    assert_int_equal(i0.part, WEIR_PART_HASH);
    assert_int_equal(i1.part, WEIR_PART_HASH);
    assert_ptr_equal(i0.key_fn, key_a);
    assert_ptr_equal(i1.key_fn, key_b);
    assert_ptr_equal(co->fn, proc_fn);
    assert_ptr_equal(co->fn2, proc_fn2);
    assert_int_equal(weir_node_input(co, 2).node, -1);
    assert_int_equal(weir_node_input(&job->nodes[0], 0).node, -1); /* a source: none */
    /* vertices: a, b, co -> m -> out (the two-input node heads its chain) */
    assert_int_equal(job->n_vertices, 3);
    const weir_vertex_t *v = weir_graph_vertex_of(job, 2);
    assert_int_equal(v->id, 2);
    assert_int_equal(v->n_nodes, 3);
    assert_int_equal(v->nodes[0], 2);
    assert_int_equal(v->n_in, 2);
    assert_int_equal(job->n_edges, 2);
    for (uint32_t e = 0; e < 2; e++) {
        assert_int_equal(job->edges[v->in_edges[e]].source, e);
        assert_int_equal(job->edges[v->in_edges[e]].input, e);
        assert_int_equal(job->edges[v->in_edges[e]].part, WEIR_PART_HASH);
    }
    weir_graph_destroy(&job);
}

/* Two inputs from the same vertex (a node's main output and its side output) are two edges
 * between the same pair of vertices, ordered by input. */
static void test_co_process_same_source(void **state) {
    (void)state;
    char err[512];
    weir_job_t *job = weir_graph_new("same", 1);
    weir_stream_t *m = weir_map(seq(job, "a"), "split", proc_fn, NULL);
    int tag = weir_side_output_tag(m, "odd");
    weir_stream_t *co = weir_co_process(weir_key_by(weir_side_output(m, tag), NULL, NULL),
                                        weir_key_by(m, NULL, NULL), "co", proc_fn, proc_fn2, NULL);
    weir_sink_print(co, "out");
    assert_int_equal(weir_graph_finalize(job, err, sizeof err), 0);
    assert_int_equal(job->n_edges, 2);
    assert_int_equal(job->edges[0].input, 0);
    assert_int_equal(job->edges[0].source_tag, (uint32_t)tag);
    assert_int_equal(job->edges[1].input, 1);
    assert_int_equal(job->edges[1].source_tag, 0);
    weir_graph_destroy(&job);
}

static void expect_define_error(weir_job_t *job, const char *want) {
    char err[512];
    assert_int_not_equal(weir_graph_finalize(job, err, sizeof err), 0);
    if (!strstr(err, want))
        fail_msg("error '%s' does not contain '%s'", err, want);
    assert_null(strchr(err, '\n'));
    weir_graph_destroy(&job);
}

static void test_define_errors(void **state) {
    (void)state;
    weir_job_t *job = weir_graph_new("e", 1);
    weir_stream_t *a = weir_key_by(seq(job, "a"), NULL, NULL);
    weir_sink_print(weir_co_process(a, a, "co", proc_fn, proc_fn2, NULL), "out");
    expect_define_error(job, "weir_co_process 'co': the same stream is both inputs");

    job = weir_graph_new("e", 1);
    a = weir_key_by(seq(job, "a"), NULL, NULL);
    weir_sink_print(weir_co_process(a, seq(job, "b"), "co", proc_fn, proc_fn2, NULL), "out");
    expect_define_error(job, "the second input is not keyed: call weir_key_by() first");

    job = weir_graph_new("e", 1);
    a = weir_key_by(seq(job, "a"), NULL, NULL);
    assert_null(weir_co_process(a, NULL, "co", proc_fn, proc_fn2, NULL));
    expect_define_error(job, "the second input is NULL");

    job = weir_graph_new("e", 1);
    weir_job_t *other = weir_graph_new("other", 1);
    a = weir_key_by(seq(job, "a"), NULL, NULL);
    assert_null(weir_co_process(a, weir_key_by(seq(other, "b"), NULL, NULL), "co", proc_fn,
                                proc_fn2, NULL));
    weir_graph_destroy(&other);
    expect_define_error(job, "the inputs belong to two jobs");

    job = weir_graph_new("e", 1);
    a = weir_key_by(seq(job, "a"), NULL, NULL);
    weir_stream_t *b = weir_key_by(seq(job, "b"), NULL, NULL);
    weir_sink_print(weir_co_process(a, b, "co", proc_fn, NULL, NULL), "out");
    expect_define_error(job, "no function for the second input");

    job = weir_graph_new("e", 1);
    a = weir_key_by(seq(job, "a"), NULL, NULL);
    b = weir_key_by(seq(job, "b"), NULL, NULL);
    assert_null(weir_interval_join(a, b, "ij", 10, -10, join_fn, NULL));
    expect_define_error(job, "weir_interval_join 'ij': lower_ms is above upper_ms");

    job = weir_graph_new("e", 1);
    a = weir_key_by(seq(job, "a"), NULL, NULL);
    b = weir_key_by(seq(job, "b"), NULL, NULL);
    weir_window_spec_t spec = {
        .kind = WEIR_WINDOW_SLIDING, .size_ms = 10, .slide_ms = 5, .count_trigger = 2};
    assert_null(weir_window_cogroup(a, b, "cg", &spec, cogroup_fn, NULL));
    expect_define_error(job, "weir_window_cogroup 'cg': count_trigger is not supported for "
                             "sliding windows");

    job = weir_graph_new("e", 1);
    a = weir_key_by(seq(job, "a"), NULL, NULL);
    b = weir_key_by(seq(job, "b"), NULL, NULL);
    spec = (weir_window_spec_t){.kind = WEIR_WINDOW_TUMBLING};
    assert_null(weir_window_join(a, b, "wj", &spec, join_fn, NULL));
    expect_define_error(job, "weir_window_join 'wj': a tumbling window needs size_ms > 0");

    /* the joins without a uid: stateful like any keyed operator */
    job = weir_graph_new("e", 1);
    a = weir_key_by(seq(job, "a"), NULL, NULL);
    b = weir_key_by(seq(job, "b"), NULL, NULL);
    weir_sink_print(weir_interval_join(a, b, "ij", -5, 5, join_fn, NULL), "out");
    expect_define_error(job, "stateful operator 'ij' has no uid");
}

/* The joins are two-input process nodes with hidden keyed state and timers. */
static void test_join_nodes(void **state) {
    (void)state;
    char err[512];
    weir_job_t *job = weir_graph_new("j", 2);
    weir_stream_t *a = weir_key_by(seq(job, "a"), NULL, NULL);
    weir_stream_t *b = weir_key_by(seq(job, "b"), NULL, NULL);
    weir_window_spec_t spec = {.kind = WEIR_WINDOW_SESSION, .gap_ms = 10};
    weir_stream_t *cg =
        weir_set_uid(weir_window_cogroup(a, b, "cg", &spec, cogroup_fn, NULL), "cg");
    weir_stream_t *wj = weir_set_uid(weir_window_join(b, a, "wj", &spec, join_fn, NULL), "wj");
    weir_stream_t *ij = weir_set_uid(weir_interval_join(a, b, "ij", -5, 5, join_fn, NULL), "ij");
    weir_sink_print(cg, "o1");
    weir_sink_print(wj, "o2");
    weir_sink_print(ij, "o3");
    assert_int_equal(weir_graph_finalize(job, err, sizeof err), 0);
    for (uint32_t id = 2; id <= 4; id++) {
        const weir_node_t *n = &job->nodes[id];
        assert_int_equal(n->n_inputs, 2);
        assert_true(n->timers);
        assert_true(n->n_states >= 2); /* its state and the timers */
    }
    assert_int_equal(weir_node_input(&job->nodes[3], 0).node, 1); /* wj: b is the left input */
    assert_int_equal(weir_node_input(&job->nodes[3], 1).node, 0);
    weir_graph_destroy(&job);
}

static json_t *node_of(json_t *root, size_t i) {
    return json_array_get(json_object_get(root, "nodes"), i);
}

static void test_json_round_trip(void **state) {
    (void)state;
    char err[512];
    weir_job_t *job = co_job();
    assert_int_equal(weir_graph_finalize(job, err, sizeof err), 0);
    json_t *j = weir_graph_to_json(job);
    assert_non_null(j);
    json_t *ins = json_object_get(node_of(j, 2), "inputs");
    assert_int_equal(json_array_size(ins), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(ins, 1), "node")), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(ins, 1), "partitioning")),
                        "hash");
    assert_true(json_is_true(json_object_get(json_array_get(ins, 1), "has_key_fn")));
    assert_int_equal(json_array_size(json_object_get(node_of(j, 3), "inputs")), 1);
    assert_null(json_object_get(node_of(j, 0), "inputs")); /* a source has none */
    json_t *edges = json_object_get(j, "edges");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(edges, 1), "input")), 1);
    weir_job_t *back = weir_graph_from_json(j, err, sizeof err);
    if (!back)
        fail_msg("from_json: %s", err);
    assert_int_equal(back->nodes[2].n_inputs, 2);
    assert_int_equal(back->nodes[2].in2.node, 1);
    assert_true(back->nodes[2].in2.has_key_fn);
    assert_int_equal(back->n_edges, 2);
    assert_int_equal(back->edges[1].input, 1);
    /* the determinism check: the graph define() builds again matches the parsed one */
    weir_job_t *again = co_job();
    assert_int_equal(weir_graph_apply_submitted(again, back, err, sizeof err), 0);
    weir_graph_destroy(&again);
    weir_graph_destroy(&back);
    /* a graph written before two-input nodes: no "inputs", edges without "input" */
    json_t *old = json_deep_copy(j);
    for (size_t i = 0; i < 5; i++)
        json_object_del(node_of(old, i), "inputs");
    json_t *e;
    size_t k;
    json_array_foreach(json_object_get(old, "edges"), k, e) json_object_del(e, "input");
    json_object_del(node_of(old, 2), "states"); /* keep it a valid one-input graph: */
    json_object_set_new(node_of(old, 2), "states", json_array());
    json_object_set_new(node_of(old, 2), "uid", json_null());
    back = weir_graph_from_json(old, err, sizeof err);
    if (!back)
        fail_msg("from_json of an old graph: %s", err);
    assert_int_equal(back->nodes[2].n_inputs, 1);
    assert_int_equal(back->nodes[2].in2.node, -1);
    assert_int_equal(back->n_edges, 1);
    weir_graph_destroy(&back);
    json_decref(old);
    json_decref(j);
    weir_graph_destroy(&job);
}

/* Malformed "inputs" on untrusted JSON: one line naming the member. */
static void test_json_bad_inputs(void **state) {
    (void)state;
    char err[512];
    weir_job_t *job = co_job();
    assert_int_equal(weir_graph_finalize(job, err, sizeof err), 0);
    json_t *j = weir_graph_to_json(job);
    weir_graph_destroy(&job);
    struct {
        size_t node;
        const char *json; /* the new "inputs" */
        const char *want;
    } cases[] = {
        {2,
         "[{\"node\":0,\"partitioning\":\"hash\",\"has_key_fn\":true}, "
         "{\"node\":1,\"partitioning\":\"hash\"}, {\"node\":1,\"partitioning\":\"hash\"}]",
         "nodes[2]: \"inputs\" must list the node's inputs"},
        {2, "[{\"node\":1,\"partitioning\":\"hash\",\"has_key_fn\":true}]",
         "nodes[2].inputs[0] differs from the node's \"input\""},
        {2,
         "[{\"node\":0,\"partitioning\":\"hash\",\"has_key_fn\":true}, {\"node\":2,"
         "\"partitioning\":\"hash\"}]",
         "nodes[2].inputs[1]: \"node\""},
        {2,
         "[{\"node\":0,\"partitioning\":\"hash\",\"has_key_fn\":true}, {\"node\":1,"
         "\"partitioning\":\"sideways\"}]",
         "nodes[2].inputs[1]: unknown partitioning 'sideways'"},
        {2, "[{\"node\":0,\"partitioning\":\"hash\"}, {\"node\":0,\"partitioning\":\"hash\"}]",
         "operator 'co' reads the same stream as both inputs"},
        {2,
         "[{\"node\":0,\"partitioning\":\"hash\",\"has_key_fn\":true}, {\"node\":1,"
         "\"partitioning\":\"rebalance\"}]",
         "keyed operator 'co' is not fed by weir_key_by()"},
        {3, "[{\"node\":2,\"partitioning\":\"forward\"}, {\"node\":1,\"partitioning\":\"hash\"}]",
         "operator 'm' (map) has two inputs: only a process operator (weir_co_process) may"},
        {0, "[{\"node\":0,\"partitioning\":\"hash\"}]",
         "nodes[0]: \"inputs\" must list the node's inputs"},
        {2, "{}", "nodes[2]: \"inputs\""},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        json_t *bad = json_deep_copy(j);
        json_error_t jerr;
        json_t *v = json_loads(cases[c].json, 0, &jerr);
        assert_non_null(v);
        json_object_set_new(node_of(bad, cases[c].node), "inputs", v);
        if (!strstr(cases[c].json, "has_key_fn")) /* inputs[0] without one: the node too */
            json_object_set_new(node_of(bad, cases[c].node), "has_key_fn", json_false());
        weir_job_t *back = weir_graph_from_json(bad, err, sizeof err);
        if (back)
            fail_msg("case %zu: accepted", c);
        if (!strstr(err, cases[c].want))
            fail_msg("case %zu: error '%s' does not contain '%s'", c, err, cases[c].want);
        assert_null(strchr(err, '\n'));
        json_decref(bad);
    }
    json_decref(j);
}

/* The determinism check compares the second input too. */
static void test_apply_submitted_second_input(void **state) {
    (void)state;
    char err[512];
    weir_job_t *sub = co_job();
    assert_int_equal(weir_graph_finalize(sub, err, sizeof err), 0);
    weir_job_t *built = weir_graph_new("co", 2);
    weir_stream_t *a = seq(built, "a"), *b = seq(built, "b");
    /* the second input reads a (keyed by another selector: not the same stream), not b */
    weir_stream_t *co = weir_co_process(weir_key_by(a, key_a, NULL), weir_key_by(a, key_b, NULL),
                                        "co", proc_fn, proc_fn2, NULL);
    (void)b;
    weir_value_state(weir_set_uid(co, "co"), "shared");
    weir_sink_print(weir_map(co, "m", proc_fn, NULL), "out");
    assert_int_equal(weir_graph_apply_submitted(built, sub, err, sizeof err), WEIR_EPLUGIN);
    if (!strstr(err, "define() is not deterministic: operator 'co' reads second input 0 (hash) "
                     "here but 1 (hash) was submitted"))
        fail_msg("unexpected: %s", err);
    weir_graph_destroy(&built);
    weir_graph_destroy(&sub);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_co_process_graph),
        cmocka_unit_test(test_co_process_same_source),
        cmocka_unit_test(test_define_errors),
        cmocka_unit_test(test_join_nodes),
        cmocka_unit_test(test_json_round_trip),
        cmocka_unit_test(test_json_bad_inputs),
        cmocka_unit_test(test_apply_submitted_second_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
