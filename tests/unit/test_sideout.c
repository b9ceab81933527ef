/* Tests of side outputs in runtime/graph/ (sideout.c and its hooks in define.c, graph.c and
 * graph_json.c): define-time errors, tag numbering, chaining of side-output consumers and the tag
 * an edge carries, the JSON members (round trip, refusals of untrusted input) and the
 * determinism check. Expected vertices, edges and messages are written out by hand. */
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

static void map_fn(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    (void)ctx, (void)in, (void)udata;
}

static weir_stream_t *seq(weir_job_t *job, const char *name) {
    weir_datagen_opts_t o = {.kind = WEIR_DATAGEN_SEQUENCE, .count = 10};
    return weir_set_uid(weir_source_datagen(job, name, &o), name);
}

static void expect_job_error(weir_job_t *job, const char *phrase) {
    assert_true(job->failed);
    if (!strstr(job->error, phrase))
        fail_msg("error '%s' does not contain '%s'", job->error, phrase);
    char err[512] = "";
    assert_int_equal(weir_graph_finalize(job, err, sizeof(err)), WEIR_EINVAL);
    assert_null(strchr(err, '\n'));
}

static void test_define_errors(void **state) {
    (void)state;
    weir_job_t *job = weir_graph_new("j", 1);
    weir_stream_t *s = seq(job, "src");
    assert_int_equal(weir_side_output_tag(s, "x"), -1);
    expect_job_error(job,
                     "weir_side_output_tag 'x' on 'src': a source_datagen has no side outputs");
    weir_graph_destroy(&job);

    job = weir_graph_new("j", 1);
    weir_stream_t *snk = weir_sink_print(seq(job, "src"), "out");
    assert_int_equal(weir_side_output_tag(snk, "x"), -1);
    expect_job_error(job, "a sink_print has no side outputs");
    weir_graph_destroy(&job);

    job = weir_graph_new("j", 1);
    weir_stream_t *m = weir_map(seq(job, "src"), "m", map_fn, NULL);
    assert_int_equal(weir_side_output_tag(m, "a"), 1);
    assert_int_equal(weir_side_output_tag(m, "b"), 2);
    assert_false(job->failed);
    assert_int_equal(weir_side_output_tag(m, "a"), -1);
    expect_job_error(job, "weir_side_output_tag 'a' on 'm': the name is declared twice");
    weir_graph_destroy(&job);

    job = weir_graph_new("j", 1);
    m = weir_map(seq(job, "src"), "m", map_fn, NULL);
    assert_int_equal(weir_side_output_tag(m, ""), -1);
    expect_job_error(job, "the name is empty");
    weir_graph_destroy(&job);

    job = weir_graph_new("j", 1);
    m = weir_map(seq(job, "src"), "m", map_fn, NULL);
    char longname[130];
    memset(longname, 'n', 128);
    longname[128] = '\0';
    assert_int_equal(weir_side_output_tag(m, longname), 1); /* 128 bytes: the bound */
    longname[128] = 'n';
    longname[129] = '\0';
    assert_int_equal(weir_side_output_tag(m, longname), -1);
    expect_job_error(job, "longer than 128 bytes");
    weir_graph_destroy(&job);

    job = weir_graph_new("j", 1);
    m = weir_map(seq(job, "src"), "m", map_fn, NULL);
    for (int i = 1; i <= 16; i++) {
        char nm[8];
        snprintf(nm, sizeof nm, "t%d", i);
        assert_int_equal(weir_side_output_tag(m, nm), i);
    }
    assert_int_equal(weir_side_output_tag(m, "t17"), -1);
    expect_job_error(job, "more than 16 side outputs");
    weir_graph_destroy(&job);

    job = weir_graph_new("j", 1);
    m = weir_map(seq(job, "src"), "m", map_fn, NULL);
    weir_side_output_tag(m, "a");
    weir_stream_t *bad = weir_side_output(m, 2);
    assert_non_null(bad); /* usable, the error is recorded */
    weir_sink_print(bad, "out");
    expect_job_error(job, "weir_side_output on 'm': tag 2 is not declared (it has 1 side outputs)");
    weir_graph_destroy(&job);

    assert_int_equal(weir_side_output_tag(NULL, "a"), -1);
    assert_null(weir_side_output(NULL, 1));
}

/* A side output that is its operator's only consumer chains like a main-output consumer; with
 * several consumers the first forward one that is the only consumer of its output chains, the
 * others leave through edges from the operator (inside the chain), each carrying its tag. A graph
 * without side outputs chains as before (test_graph.c). */
static void test_chaining_and_edges(void **state) {
    (void)state;
    char err[512] = "";
    weir_job_t *job = weir_graph_new("j", 2);
    weir_stream_t *m = weir_map(seq(job, "src"), "m", map_fn, NULL); /* 0, 1 */
    int t = weir_side_output_tag(m, "late");
    assert_int_equal(t, 1);
    weir_sink_print(weir_side_output(m, t), "side"); /* 2 */
    assert_int_equal(weir_graph_finalize(job, err, sizeof(err)), 0);
    assert_int_equal(job->n_vertices, 1);
    assert_string_equal(job->vertices[0].name, "src -> m -> side");
    assert_int_equal(job->nodes[2].input_tag, 1);
    weir_graph_destroy(&job);

    job = weir_graph_new("j", 2);
    m = weir_map(seq(job, "src"), "m", map_fn, NULL); /* 0, 1 */
    int a = weir_side_output_tag(m, "a"), b = weir_side_output_tag(m, "b");
    weir_sink_print(weir_key_by(weir_side_output(m, b), NULL, NULL), "kb"); /* 2 */
    weir_sink_print(m, "main");                                             /* 3 */
    weir_stream_t *sa = weir_side_output(m, a);
    weir_stream_t *am = weir_map(weir_rebalance(sa), "am", map_fn, NULL); /* 4 */
    weir_sink_blackhole(am, "amo");                                       /* 5 */
    weir_sink_blackhole(sa, "fwd");                                       /* 6 */
    assert_int_equal(weir_graph_finalize(job, err, sizeof(err)), 0);
    /* "main" is the only consumer of m's main output and reads it forward: it chains; "fwd"
     * shares tag a with "am": neither chains */
    assert_int_equal(job->n_vertices, 4);
    assert_string_equal(job->vertices[0].name, "src -> m -> main");
    assert_string_equal(job->vertices[1].name, "kb");
    assert_string_equal(job->vertices[2].name, "am -> amo");
    assert_string_equal(job->vertices[3].name, "fwd");
    assert_int_equal(job->n_edges, 3);
    const uint32_t tags[3] = {2, 1, 1};
    const weir_part_t parts[3] = {WEIR_PART_HASH, WEIR_PART_REBALANCE, WEIR_PART_FORWARD};
    for (uint32_t e = 0; e < 3; e++) {
        assert_int_equal(job->edges[e].source, 0);
        assert_int_equal(job->edges[e].target, e + 1);
        assert_int_equal(job->edges[e].source_node, 1);
        assert_int_equal(job->edges[e].source_tag, tags[e]);
        assert_int_equal(job->edges[e].part, parts[e]);
    }
    weir_graph_destroy(&job);

    /* the first chainable consumer by id wins, main or side; a chain stays a line */
    job = weir_graph_new("j", 1);
    m = weir_map(seq(job, "src"), "m", map_fn, NULL); /* 0, 1 */
    a = weir_side_output_tag(m, "a");
    weir_stream_t *sm = weir_map(weir_side_output(m, a), "sm", map_fn, NULL); /* 2: chains */
    weir_sink_print(m, "main");                                               /* 3: edge */
    weir_sink_print(sm, "smo");                                               /* 4: chains */
    assert_int_equal(weir_graph_finalize(job, err, sizeof(err)), 0);
    assert_int_equal(job->n_vertices, 2);
    assert_string_equal(job->vertices[0].name, "src -> m -> sm -> smo");
    assert_string_equal(job->vertices[1].name, "main");
    assert_int_equal(job->n_edges, 1);
    assert_int_equal(job->edges[0].source_node, 1); /* from inside the chain */
    assert_int_equal(job->edges[0].source_tag, 0);
    assert_int_equal(job->edges[0].part, WEIR_PART_FORWARD);
    weir_graph_destroy(&job);

    /* a forward side-output consumer must keep the parallelism, like a main one */
    job = weir_graph_new("j", 2);
    m = weir_map(seq(job, "src"), "m", map_fn, NULL);
    t = weir_side_output_tag(m, "x");
    weir_set_parallelism(weir_sink_print(weir_side_output(m, t), "side"), 1);
    weir_sink_print(m, "main");
    assert_int_equal(weir_graph_finalize(job, err, sizeof(err)), WEIR_EINVAL);
    assert_non_null(strstr(err, "forward edge 'm' (parallelism 2) -> 'side' (parallelism 1)"));
    weir_graph_destroy(&job);
}

static weir_job_t *side_graph(void) {
    weir_job_t *job = weir_graph_new("side", 2);
    weir_stream_t *m = weir_map(seq(job, "src"), "m", map_fn, NULL);
    int a = weir_side_output_tag(m, "short");
    int b = weir_side_output_tag(m, "long words");
    weir_sink_print(m, "main");
    weir_sink_print(weir_rebalance(weir_side_output(m, a)), "pa");
    weir_sink_print(weir_key_by(weir_side_output(m, b), NULL, NULL), "pb");
    return job;
}

static void test_json(void **state) {
    (void)state;
    weir_job_t *job = side_graph();
    char err[512] = "";
    assert_int_equal(weir_graph_finalize(job, err, sizeof(err)), 0);
    json_t *j1 = weir_graph_to_json(job);
    assert_non_null(j1);
    json_t *nodes = json_object_get(j1, "nodes");
    json_t *so = json_object_get(json_array_get(nodes, 1), "side_outputs");
    assert_int_equal(json_array_size(so), 2);
    assert_string_equal(json_string_value(json_array_get(so, 1)), "long words");
    assert_null(json_object_get(json_array_get(nodes, 2), "input_tag")); /* main: absent */
    assert_int_equal(json_integer_value(json_object_get(json_array_get(nodes, 4), "input_tag")), 2);
    assert_null(json_object_get(json_array_get(nodes, 0), "side_outputs"));
    weir_job_t *back = weir_graph_from_json(j1, err, sizeof(err));
    if (!back)
        fail_msg("from_json: %s", err);
    assert_int_equal(back->nodes[1].n_side, 2);
    assert_int_equal(back->nodes[3].input_tag, 1);
    assert_int_equal(back->n_edges, job->n_edges);
    for (uint32_t e = 0; e < job->n_edges; e++)
        assert_int_equal(back->edges[e].source_tag, job->edges[e].source_tag);
    json_t *j2 = weir_graph_to_json(back);
    assert_true(json_equal(j1, j2));
    json_decref(j2);

    /* refusals of untrusted input: one line naming the member */
    struct {
        int node;
        const char *key;
        json_t *val;
        const char *phrase;
    } bad[] = {
        {4, "input_tag", json_integer(3),
         "nodes[4]: \"input_tag\" is 3 but input node 1 declares 2"},
        {2, "input_tag", json_integer(17), "nodes[2]: \"input_tag\""},
        {2, "input_tag", json_integer(-1), "nodes[2]: \"input_tag\""},
        {0, "input_tag", json_integer(1), "nodes[0]: \"input_tag\" is 1 but the node has no input"},
        {2, "side_outputs", json_pack("[s]", "x"),
         "nodes[2]: \"side_outputs\" is not allowed on a "
         "sink_print"},
        {0, "side_outputs", json_pack("[s]", "x"), "is not allowed on a source_datagen"},
        {1, "side_outputs", json_pack("[s,s]", "x", "x"),
         "\"side_outputs\"[1]: the name is "
         "declared twice"},
        {1, "side_outputs", json_pack("[s,i]", "x", 1), "\"side_outputs\"[1] must be a string"},
        {1, "side_outputs", json_pack("[s]", ""), "\"side_outputs\"[0]: the name is empty"},
        {1, "side_outputs", json_string("x"), "\"side_outputs\""},
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        json_t *c = json_deep_copy(j1);
        json_object_set_new(json_array_get(json_object_get(c, "nodes"), bad[k].node), bad[k].key,
                            bad[k].val);
        weir_job_t *g = weir_graph_from_json(c, err, sizeof(err));
        json_decref(c);
        if (g) {
            weir_graph_destroy(&g);
            fail_msg("case %zu accepted", k);
        }
        assert_null(strchr(err, '\n'));
        if (!strstr(err, "graph JSON: ") || !strstr(err, bad[k].phrase))
            fail_msg("case %zu: '%s' lacks '%s'", k, err, bad[k].phrase);
    }
    /* 17 names */
    json_t *c = json_deep_copy(j1);
    json_t *many = json_array();
    for (int i = 0; i < 17; i++) {
        char nm[8];
        snprintf(nm, sizeof nm, "t%d", i);
        json_array_append_new(many, json_string(nm));
    }
    json_object_set_new(json_array_get(json_object_get(c, "nodes"), 1), "side_outputs", many);
    weir_job_t *g = weir_graph_from_json(c, err, sizeof(err));
    json_decref(c);
    assert_null(g);
    assert_non_null(strstr(err, "\"side_outputs\" has more than 16 names"));

    weir_graph_destroy(&back);
    json_decref(j1);
    weir_graph_destroy(&job);
}

static void test_apply_submitted(void **state) {
    (void)state;
    char err[512] = "";
    weir_job_t *cli = side_graph();
    assert_int_equal(weir_graph_finalize(cli, err, sizeof(err)), 0);
    json_t *j = weir_graph_to_json(cli);
    weir_job_t *sub = weir_graph_from_json(j, err, sizeof(err));
    assert_non_null(sub);
    weir_job_t *tm = side_graph();
    assert_int_equal(weir_graph_apply_submitted(tm, sub, err, sizeof(err)), 0);
    weir_graph_destroy(&tm);

    /* another side output name */
    tm = side_graph();
    tm->nodes[1].side_names[1] = weir_job_strdup(tm, "other");
    assert_int_equal(weir_graph_apply_submitted(tm, sub, err, sizeof(err)), WEIR_EPLUGIN);
    assert_non_null(strstr(err, "define() is not deterministic: operator 'm' side output 2 is "
                                "'other' here but 'long words' was submitted"));
    weir_graph_destroy(&tm);

    /* reads another tag */
    tm = side_graph();
    tm->nodes[3].input_tag = 2;
    assert_int_equal(weir_graph_apply_submitted(tm, sub, err, sizeof(err)), WEIR_EPLUGIN);
    assert_non_null(strstr(err, "operator 'pa' reads output 2 of its input here but output 1"));
    weir_graph_destroy(&tm);

    /* one side output fewer */
    tm = side_graph();
    tm->nodes[1].n_side = 1;
    tm->nodes[4].input_tag = 0;
    assert_int_equal(weir_graph_apply_submitted(tm, sub, err, sizeof(err)), WEIR_EPLUGIN);
    assert_non_null(strstr(err, "not deterministic"));
    weir_graph_destroy(&tm);

    weir_graph_destroy(&sub);
    weir_graph_destroy(&cli);
    json_decref(j);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_define_errors),
        cmocka_unit_test(test_chaining_and_edges),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_apply_submitted),
    };
    return cmocka_run_group_tests(tests, 0, NULL);
}
