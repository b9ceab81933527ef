/* Tests of runtime/graph/ (graph.c, define.c, graph_json.c): graphs built through the public
 * define-time API (in process), chaining into vertices, edge numbering, validation errors, the JSON
 * form and its parser on malformed input, and the determinism check. Expected vertices/edges are
 * written out by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/err.h"
#include "runtime/graph/graph.h"
#include "runtime/graph/keygroup.h"

static void map_fn(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    (void)ctx;
    (void)in;
    (void)udata;
}
static bool filter_fn(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    (void)ctx;
    (void)in;
    (void)udata;
    return true;
}
static void reduce_fn(const msgpack_object *acc, const msgpack_object *in, msgpack_packer *out,
                      void *udata) {
    (void)acc;
    (void)in;
    (void)out;
    (void)udata;
}
static uint32_t key_fn(const weir_record_t *in, void *key_out, void *udata) {
    (void)in;
    (void)key_out;
    (void)udata;
    return 0;
}
static void gen_fn(weir_ctx_t *ctx, uint64_t index, void *udata) {
    (void)ctx;
    (void)index;
    (void)udata;
}

static weir_stream_t *seq(weir_job_t *job, const char *name) {
    weir_datagen_opts_t o = {.kind = WEIR_DATAGEN_SEQUENCE, .count = 10};
    return weir_set_uid(weir_source_datagen(job, name, &o), name ? name : "seq");
}

static void assert_nodes(const weir_vertex_t *v, uint32_t n, const uint32_t *ids) {
    assert_int_equal(v->n_nodes, n);
    for (uint32_t i = 0; i < n; i++)
        assert_int_equal(v->nodes[i], ids[i]);
}

/* Finalizes and expects failure with @p phrase in the message. */
static void expect_finalize_error(weir_job_t *job, const char *phrase) {
    char err[512] = "";
    assert_int_equal(weir_graph_finalize(job, err, sizeof(err)), WEIR_EINVAL);
    if (!strstr(err, phrase))
        fail_msg("error '%s' does not contain '%s'", err, phrase);
}

static void test_forward_chain(void **state) {
    (void)state;
    weir_job_t *job = weir_graph_new("chain", 2);
    weir_stream_t *s = seq(job, "src");
    s = weir_map(s, "m", map_fn, NULL);
    s = weir_filter(s, "f", filter_fn, NULL);
    weir_sink_print(s, "out");
    char err[256] = "";
    assert_int_equal(weir_graph_finalize(job, err, sizeof(err)), 0);
    assert_int_equal(job->n_vertices, 1);
    assert_int_equal(job->n_edges, 0);
    assert_string_equal(job->vertices[0].name, "src -> m -> f -> out");
    assert_int_equal(job->vertices[0].parallelism, 2);
    assert_int_equal(job->vertices[0].n_in, 0);
    assert_int_equal(job->vertices[0].n_out, 0);
    assert_nodes(&job->vertices[0], 4, (uint32_t[]){0, 1, 2, 3});
    for (uint32_t i = 0; i < 4; i++) {
        assert_int_equal(job->nodes[i].parallelism, 2);
        assert_ptr_equal(weir_graph_vertex_of(job, i), &job->vertices[0]);
    }
    assert_null(weir_graph_vertex_of(job, 4));
    weir_graph_destroy(&job);
    assert_null(job);
    weir_graph_destroy(&job); /* accepts NULL */
}

static void test_rebalance_breaks_chain(void **state) {
    (void)state;
    weir_job_t *job = weir_graph_new("rb", 1);
    weir_stream_t *s = seq(job, "src");
    s = weir_map(weir_rebalance(s), "m", map_fn, NULL);
    weir_set_parallelism(s, 3);
    weir_sink_blackhole(s, "bh");
    /* the sink inherits the default parallelism 1 but its input has 3: a forward edge that
     * changes parallelism */
    expect_finalize_error(job, "use weir_rebalance");
    weir_graph_destroy(&job);

    job = weir_graph_new("rb", 1);
    char err[256] = "";
    s = seq(job, "src");
    s = weir_set_parallelism(weir_map(weir_rebalance(s), "m", map_fn, NULL), 3);
    weir_set_parallelism(weir_sink_blackhole(s, "bh"), 3);
    assert_int_equal(weir_graph_finalize(job, err, sizeof(err)), 0);
    assert_int_equal(job->n_vertices, 2);
    assert_string_equal(job->vertices[1].name, "m -> bh");
    assert_int_equal(job->vertices[1].parallelism, 3);
    assert_int_equal(job->n_edges, 1);
    assert_int_equal(job->edges[0].source, 0);
    assert_int_equal(job->edges[0].target, 1);
    assert_int_equal(job->edges[0].source_node, 0);
    assert_int_equal(job->edges[0].part, WEIR_PART_REBALANCE);
    assert_int_equal(job->vertices[0].n_out, 1);
    assert_int_equal(job->vertices[1].n_in, 1);
    assert_int_equal(job->vertices[1].in_edges[0], 0);
    weir_graph_destroy(&job);
}

static void test_forward_parallelism_mismatch(void **state) {
    (void)state;
    weir_job_t *job = weir_graph_new("mm", 1);
    weir_stream_t *s = weir_map(seq(job, "src"), "m", map_fn, NULL);
    weir_set_parallelism(s, 2);
    weir_sink_print(s, "out");
    expect_finalize_error(job, "use weir_rebalance");
    weir_graph_destroy(&job);
}

static void test_key_by_and_state(void **state) {
    (void)state;
    weir_job_t *job = weir_graph_new("keyed", 4);
    weir_stream_t *s = weir_map(seq(job, "src"), "m", map_fn, NULL);
    weir_stream_t *p = weir_process(weir_key_by(s, key_fn, NULL), "proc", map_fn, NULL);
    weir_set_uid(p, "proc-uid");
    assert_int_equal(weir_value_state(p, "v"), 0);
    assert_int_equal(weir_list_state(p, "l"), 1);
    assert_int_equal(weir_map_state(p, "m"), 2);
    assert_int_equal(weir_reducing_state(p, "r", reduce_fn, NULL), 3);
    weir_stream_t *r = weir_reduce(weir_key_by(p, NULL, NULL), "red", reduce_fn, NULL);
    weir_set_uid(r, "red-uid");
    weir_sink_print(r, "out");
    char err[256] = "";
    assert_int_equal(weir_graph_finalize(job, err, sizeof(err)), 0);
    /* [src -> m] =hash=> [proc] =hash=> [red -> out] */
    assert_int_equal(job->n_vertices, 3);
    assert_string_equal(job->vertices[0].name, "src -> m");
    assert_string_equal(job->vertices[1].name, "proc");
    assert_string_equal(job->vertices[2].name, "red -> out");
    assert_int_equal(job->n_edges, 2);
    assert_int_equal(job->edges[0].part, WEIR_PART_HASH);
    assert_int_equal(job->edges[0].source_node, 1);
    assert_int_equal(job->edges[1].source, 1);
    assert_int_equal(job->edges[1].target, 2);
    const weir_node_t *pn = &job->nodes[2], *rn = &job->nodes[3];
    assert_true(pn->keyed);
    assert_true(pn->has_key_fn);
    assert_ptr_equal(pn->key_fn, key_fn);
    assert_int_equal(pn->n_states, 4);
    assert_int_equal(pn->states[2].kind, WEIR_STATE_MAP);
    assert_ptr_equal(pn->states[3].reduce, reduce_fn);
    assert_false(rn->has_key_fn);
    assert_int_equal(rn->kind, WEIR_OP_REDUCE);
    assert_int_equal(rn->n_states, 1);
    assert_string_equal(rn->states[0].name, "reduce");
    assert_int_equal(rn->states[0].kind, WEIR_STATE_REDUCING);
    assert_ptr_equal(rn->states[0].reduce, reduce_fn);
    assert_false(job->nodes[4].keyed); /* the sink after reduce is forward */
    weir_graph_destroy(&job);
}

static void test_fan_out_and_edge_order(void **state) {
    (void)state;
    /* Two sources; the second's consumer is created first. Edges are numbered by
     * (source vertex, target vertex), not by creation order. */
    weir_job_t *job = weir_graph_new("fan", 1);
    weir_stream_t *a = seq(job, "a");                                    /* 0 */
    weir_stream_t *b = seq(job, "b");                                    /* 1 */
    weir_stream_t *bm = weir_map(weir_rebalance(b), "bm", map_fn, NULL); /* 2 */
    weir_stream_t *am = weir_map(weir_broadcast(a), "am", map_fn, NULL); /* 3 */
    weir_sink_print(bm, "bp");                                           /* 4 */
    weir_sink_print(am, "ap");                                           /* 5 */
    /* fan out of a: a second forward consumer keeps a in its own vertex */
    weir_sink_blackhole(a, "ab"); /* 6 */
    char err[256] = "";
    assert_int_equal(weir_graph_finalize(job, err, sizeof(err)), 0);
    assert_int_equal(job->n_vertices, 5);
    assert_string_equal(job->vertices[0].name, "a");
    assert_string_equal(job->vertices[1].name, "b");
    assert_string_equal(job->vertices[2].name, "bm -> bp");
    assert_string_equal(job->vertices[3].name, "am -> ap");
    assert_string_equal(job->vertices[4].name, "ab");
    assert_int_equal(job->n_edges, 3);
    /* (v0,v3) broadcast, (v0,v4) forward, (v1,v2) rebalance */
    assert_int_equal(job->edges[0].source, 0);
    assert_int_equal(job->edges[0].target, 3);
    assert_int_equal(job->edges[0].part, WEIR_PART_BROADCAST);
    assert_int_equal(job->edges[1].source, 0);
    assert_int_equal(job->edges[1].target, 4);
    assert_int_equal(job->edges[1].part, WEIR_PART_FORWARD);
    assert_int_equal(job->edges[2].source, 1);
    assert_int_equal(job->edges[2].target, 2);
    assert_int_equal(job->edges[2].part, WEIR_PART_REBALANCE);
    for (uint32_t e = 0; e < 3; e++)
        assert_int_equal(job->edges[e].id, e);
    assert_int_equal(job->vertices[0].n_out, 2);
    assert_int_equal(job->vertices[0].out_edges[0], 0);
    assert_int_equal(job->vertices[0].out_edges[1], 1);
    assert_ptr_equal(weir_graph_vertex_of(job, 5), &job->vertices[3]);
    weir_graph_destroy(&job);
}

static void test_misuse_records_first_error(void **state) {
    (void)state;
    /* process on a non-keyed stream */
    weir_job_t *job = weir_graph_new("bad", 1);
    weir_stream_t *p = weir_process(seq(job, "src"), "proc", map_fn, NULL);
    assert_non_null(p);
    assert_true(job->failed);
    assert_non_null(strstr(job->error, "weir_key_by"));
    /* later errors do not overwrite the first */
    weir_job_error(job, "second");
    assert_null(strstr(job->error, "second"));
    expect_finalize_error(job, "not keyed");
    weir_graph_destroy(&job);

    /* state on a non-process node */
    job = weir_graph_new("bad", 1);
    weir_stream_t *m = weir_map(seq(job, "src"), "m", map_fn, NULL);
    assert_int_equal(weir_value_state(m, "v"), -1);
    assert_true(job->failed);
    assert_non_null(strstr(job->error, "process"));
    weir_graph_destroy(&job);

    /* parallelism 0 */
    job = weir_graph_new("bad", 1);
    weir_set_parallelism(seq(job, "src"), 0);
    assert_true(job->failed);
    assert_non_null(strstr(job->error, "parallelism"));
    weir_graph_destroy(&job);

    /* duplicate uid */
    job = weir_graph_new("bad", 1);
    weir_stream_t *s = seq(job, "src");
    weir_set_uid(s, "x");
    weir_set_uid(weir_sink_print(s, "out"), "x");
    assert_true(job->failed);
    assert_non_null(strstr(job->error, "unique"));
    weir_graph_destroy(&job);

    /* duplicate state name */
    job = weir_graph_new("bad", 1);
    p = weir_process(weir_key_by(seq(job, "src"), NULL, NULL), "p", map_fn, NULL);
    assert_int_equal(weir_value_state(p, "s"), 0);
    assert_false(job->failed);
    assert_int_equal(weir_list_state(p, "s"), -1);
    assert_true(job->failed);
    assert_non_null(strstr(job->error, "twice"));
    weir_graph_destroy(&job);

    /* a state on a reduce node (it has its own) */
    job = weir_graph_new("bad", 1);
    weir_stream_t *r = weir_reduce(weir_key_by(seq(job, "src"), NULL, NULL), "r", reduce_fn, NULL);
    assert_int_equal(weir_value_state(r, "v"), -1);
    assert_true(job->failed);
    weir_graph_destroy(&job);

    /* max parallelism out of range */
    job = weir_graph_new("bad", 1);
    weir_job_set_max_parallelism(job, 0);
    assert_true(job->failed);
    weir_graph_destroy(&job);
}

static void test_null_streams_are_safe(void **state) {
    (void)state;
    weir_datagen_opts_t o = {0};
    assert_null(weir_source_datagen(NULL, "x", &o));
    assert_null(weir_source_file(NULL, "x", "/tmp", 0));
    assert_null(weir_source_generator(NULL, "x", 0, 0, gen_fn, NULL));
    assert_null(weir_map(NULL, "m", map_fn, NULL));
    assert_null(weir_flat_map(NULL, "m", map_fn, NULL));
    assert_null(weir_filter(NULL, "f", filter_fn, NULL));
    assert_null(weir_key_by(NULL, NULL, NULL));
    assert_null(weir_rebalance(NULL));
    assert_null(weir_broadcast(NULL));
    assert_null(weir_process(NULL, "p", map_fn, NULL));
    assert_null(weir_reduce(NULL, "r", reduce_fn, NULL));
    assert_null(weir_sink_file(NULL, "s", "/tmp"));
    assert_null(weir_sink_print(NULL, "s"));
    assert_null(weir_sink_blackhole(NULL, "s"));
    assert_null(weir_sink(NULL, "s", map_fn, NULL));
    assert_null(weir_set_uid(NULL, "u"));
    assert_null(weir_set_parallelism(NULL, 2));
    assert_int_equal(weir_value_state(NULL, "v"), -1);
    assert_int_equal(weir_list_state(NULL, "v"), -1);
    assert_int_equal(weir_map_state(NULL, "v"), -1);
    assert_int_equal(weir_reducing_state(NULL, "v", reduce_fn, NULL), -1);
    weir_job_set_name(NULL, "x");
    weir_job_set_max_parallelism(NULL, 4);
    weir_job_error(NULL, "x");
    assert_null(weir_job_strdup(NULL, "x"));
    assert_int_equal(weir_job_parallelism(NULL), 1);

    /* a NULL function is an error, not a crash */
    weir_job_t *job = weir_graph_new("nullfn", 1);
    weir_sink_print(weir_map(seq(job, "src"), "m", NULL, NULL), "out");
    assert_true(job->failed);
    expect_finalize_error(job, "no function");
    weir_graph_destroy(&job);
}

static int lc_open_fn(weir_ctx_t *ctx, void *udata) {
    (void)ctx;
    (void)udata;
    return 0;
}

static void lc_close_fn(weir_ctx_t *ctx, weir_close_reason_t why, void *udata) {
    (void)ctx;
    (void)why;
    (void)udata;
}

/* weir_set_lifecycle: accepted on every user-function kind, refused on a built-in connector with
 * one line naming the operator and the kinds that accept it. */
static void test_set_lifecycle(void **state) {
    (void)state;
    weir_job_t *job = weir_graph_new("lc", 1);
    weir_stream_t *g = weir_source_generator(job, "gen", 10, 0, gen_fn, NULL);
    weir_stream_t *m = weir_map(g, "m", map_fn, NULL);
    weir_stream_t *f = weir_filter(weir_flat_map(m, "fm", map_fn, NULL), "f", filter_fn, NULL);
    weir_stream_t *p = weir_process(weir_key_by(f, NULL, NULL), "p", map_fn, NULL);
    weir_stream_t *r = weir_reduce(weir_key_by(p, NULL, NULL), "r", reduce_fn, NULL);
    weir_stream_t *k = weir_sink(r, "k", map_fn, NULL);
    weir_stream_t *all[] = {g, m, f, p, r, k};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        assert_ptr_equal(weir_set_lifecycle(all[i], lc_open_fn, lc_close_fn), all[i]);
        assert_false(job->failed);
        const weir_node_t *n = &job->nodes[all[i]->node];
        assert_ptr_equal(n->open_fn, lc_open_fn);
        assert_ptr_equal(n->close_fn, lc_close_fn);
    }
    weir_set_lifecycle(m, NULL, lc_close_fn); /* replaces; either may be NULL */
    assert_null(job->nodes[m->node].open_fn);
    assert_null(weir_set_lifecycle(NULL, lc_open_fn, lc_close_fn));
    weir_graph_destroy(&job);

    job = weir_graph_new("lc", 1);
    weir_stream_t *d = seq(job, "numbers");
    weir_set_lifecycle(weir_sink_print(d, "out"), lc_open_fn, NULL);
    assert_true(job->failed);
    assert_string_equal(job->error,
                        "weir_set_lifecycle on 'out': a sink_print is a built-in connector, not a "
                        "user function: set open/close on a map, flat_map, filter, process, "
                        "reduce, sink or generator source");
    weir_graph_destroy(&job);

    job = weir_graph_new("lc", 1);
    weir_set_lifecycle(seq(job, "numbers"), lc_open_fn, NULL);
    assert_true(job->failed);
    assert_non_null(strstr(job->error, "'numbers'"));
    weir_graph_destroy(&job);
}

static void test_finalize_validation(void **state) {
    (void)state;
    weir_job_t *job = weir_graph_new("nosink", 1);
    weir_map(seq(job, "src"), "m", map_fn, NULL);
    expect_finalize_error(job, "no sink");
    weir_graph_destroy(&job);

    job = weir_graph_new("empty", 1);
    expect_finalize_error(job, "no operators");
    weir_graph_destroy(&job);

    job = weir_graph_new("nouid", 1);
    weir_stream_t *p = weir_process(weir_key_by(seq(job, "src"), NULL, NULL), "p", map_fn, NULL);
    weir_value_state(p, "v");
    weir_sink_print(p, "out");
    expect_finalize_error(job, "no uid");
    weir_graph_destroy(&job);

    job = weir_graph_new("sinkout", 1);
    weir_sink_print(weir_sink_print(seq(job, "src"), "s1"), "s2");
    expect_finalize_error(job, "sink");
    weir_graph_destroy(&job);

    job = weir_graph_new("maxp", 4);
    weir_job_set_max_parallelism(job, 2);
    weir_sink_print(seq(job, "src"), "out");
    expect_finalize_error(job, "max parallelism");
    weir_graph_destroy(&job);

    /* finalize is idempotent */
    job = weir_graph_new("twice", 2);
    weir_sink_print(weir_rebalance(seq(job, "src")), "out");
    char err[256] = "";
    assert_int_equal(weir_graph_finalize(job, err, sizeof(err)), 0);
    assert_int_equal(weir_graph_finalize(job, err, sizeof(err)), 0);
    assert_int_equal(job->n_vertices, 2);
    assert_int_equal(job->n_edges, 1);
    weir_graph_destroy(&job);
}

static void test_alloc_and_names(void **state) {
    (void)state;
    weir_job_t *job = weir_graph_new("desc-name", 3);
    assert_int_equal(weir_job_parallelism(job), 3);
    unsigned char *small = weir_job_alloc(job, 100);
    for (int i = 0; i < 100; i++)
        assert_int_equal(small[i], 0);
    memset(small, 0xab, 100);
    unsigned char *big = weir_job_alloc(job, 1 << 20); /* larger than a chunk */
    for (int i = 0; i < (1 << 20); i += 4096)
        assert_int_equal(big[i], 0);
    big[(1 << 20) - 1] = 1;
    assert_int_equal(small[99], 0xab);
    char *s = weir_job_strdup(job, "hello");
    assert_string_equal(s, "hello");
    weir_job_set_name(job, "renamed");
    assert_string_equal(job->name, "renamed");
    /* many nodes: the node array grows; streams stay valid */
    weir_stream_t *st = seq(job, NULL);
    for (int i = 0; i < 200; i++)
        st = weir_map(st, NULL, map_fn, NULL);
    weir_sink_print(st, NULL);
    char err[256] = "";
    assert_int_equal(weir_graph_finalize(job, err, sizeof(err)), 0);
    assert_int_equal(job->n_nodes, 202);
    assert_int_equal(job->n_vertices, 1);
    assert_string_equal(job->nodes[0].name, "source_datagen");
    assert_string_equal(job->nodes[1].name, "map");
    assert_string_equal(job->nodes[201].name, "sink_print");
    assert_string_equal(weir_op_kind_name(WEIR_OP_SINK_CUSTOM), "sink");
    assert_string_equal(weir_part_name(WEIR_PART_HASH), "hash");
    assert_string_equal(weir_state_kind_name(WEIR_STATE_REDUCING), "reducing");
    assert_true(weir_op_is_source(WEIR_OP_SOURCE_GENERATOR));
    assert_false(weir_op_is_source(WEIR_OP_MAP));
    assert_true(weir_op_is_sink(WEIR_OP_SINK_FILE));
    assert_false(weir_op_is_sink(WEIR_OP_REDUCE));
    weir_graph_destroy(&job);
}

/* A graph using every kind and partitioning. */
static weir_job_t *full_graph(void) {
    weir_job_t *job = weir_graph_new("full", 2);
    weir_job_set_max_parallelism(job, 64);
    weir_datagen_opts_t o = {.kind = WEIR_DATAGEN_RANDOM,
                             .count = 1000,
                             .start = 5,
                             .random_max = 77,
                             .seed = UINT64_MAX - 1, /* does not fit an int64 */
                             .rate = 12.5};
    weir_stream_t *d = weir_set_uid(weir_source_datagen(job, "dg", &o), "dg");
    weir_stream_t *f = weir_set_uid(weir_source_file(job, "fs", "/data/in.txt", 3), "fs");
    weir_stream_t *g = weir_set_uid(weir_source_generator(job, "gen", 42, 0, gen_fn, NULL), "gen");
    weir_set_parallelism(g, 1);
    weir_stream_t *m = weir_flat_map(weir_rebalance(d), "fm", map_fn, NULL);
    weir_stream_t *p = weir_process(weir_key_by(m, key_fn, NULL), "proc", map_fn, NULL);
    weir_set_uid(p, "proc");
    weir_value_state(p, "count");
    weir_map_state(p, "seen");
    weir_set_uid(weir_sink_file(p, "fsink", "/data/out"), "fsink");
    weir_stream_t *r = weir_reduce(weir_key_by(f, NULL, NULL), "red", reduce_fn, NULL);
    weir_set_uid(r, "red");
    weir_sink(weir_broadcast(r), "custom", map_fn, NULL);
    weir_stream_t *flt = weir_set_parallelism(weir_filter(g, "flt", filter_fn, NULL), 1);
    weir_set_parallelism(weir_sink_blackhole(flt, "bh"), 1);
    char err[256] = "";
    if (weir_graph_finalize(job, err, sizeof(err)) != 0)
        fail_msg("finalize: %s", err);
    return job;
}

static void test_json_round_trip(void **state) {
    (void)state;
    weir_job_t *job = full_graph();
    json_t *j1 = weir_graph_to_json(job);
    assert_non_null(j1);
    /* spot checks against hand-written expectations */
    assert_string_equal(json_string_value(json_object_get(j1, "name")), "full");
    assert_int_equal(json_integer_value(json_object_get(j1, "max_parallelism")), 64);
    json_t *nodes = json_object_get(j1, "nodes");
    assert_int_equal(json_array_size(nodes), 10);
    json_t *dg = json_array_get(nodes, 0);
    assert_string_equal(json_string_value(json_object_get(dg, "kind")), "source_datagen");
    assert_string_equal(json_string_value(json_object_get(dg, "uid")), "dg");
    json_t *fm = json_array_get(nodes, 3);
    assert_string_equal(json_string_value(json_object_get(fm, "kind")), "flat_map");
    assert_true(json_is_null(json_object_get(fm, "uid")));
    json_t *cfg = json_object_get(dg, "config");
    assert_string_equal(json_string_value(json_object_get(cfg, "kind")), "random");
    assert_int_equal(json_integer_value(json_object_get(cfg, "count")), 1000);
    assert_int_equal(json_integer_value(json_object_get(cfg, "random_max")), 77);
    assert_true(json_real_value(json_object_get(cfg, "rate")) == 12.5);
    json_t *proc = json_array_get(nodes, 4);
    assert_string_equal(json_string_value(json_object_get(proc, "partitioning")), "hash");
    assert_true(json_is_true(json_object_get(proc, "has_key_fn")));
    assert_string_equal(json_string_value(json_object_get(proc, "uid")), "proc");
    assert_int_equal(json_array_size(json_object_get(proc, "states")), 2);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(proc, "states"), 1), "type")),
                        "map");
    json_t *fs = json_array_get(nodes, 1);
    assert_string_equal(json_string_value(json_object_get(json_object_get(fs, "config"), "path")),
                        "/data/in.txt");

    char err[512] = "";
    weir_job_t *back = weir_graph_from_json(j1, err, sizeof(err));
    if (!back)
        fail_msg("from_json: %s", err);
    assert_int_equal(back->nodes[0].datagen.seed, UINT64_MAX - 1);
    assert_int_equal(back->nodes[0].datagen.kind, WEIR_DATAGEN_RANDOM);
    assert_null(back->nodes[0].fn);
    assert_int_equal(back->n_vertices, job->n_vertices);
    assert_int_equal(back->n_edges, job->n_edges);
    json_t *j2 = weir_graph_to_json(back);
    if (!json_equal(j1, j2)) {
        char *a = json_dumps(j1, JSON_SORT_KEYS), *b = json_dumps(j2, JSON_SORT_KEYS);
        fail_msg("round trip differs:\n%s\n%s", a, b);
    }
    json_decref(j2);
    json_decref(j1);
    weir_graph_destroy(&back);
    weir_graph_destroy(&job);
}

static void expect_json_error(const char *text, const char *phrase) {
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    if (!root)
        fail_msg("bad test JSON %s: %s", text, jerr.text);
    char err[512] = "";
    weir_job_t *job = weir_graph_from_json(root, err, sizeof(err));
    json_decref(root);
    if (job) {
        weir_graph_destroy(&job);
        fail_msg("accepted: %s", text);
    }
    assert_null(strchr(err, '\n'));
    if (!strstr(err, phrase))
        fail_msg("error '%s' for %s lacks '%s'", err, text, phrase);
}

#define NODE_SRC                                                                                   \
    "{\"id\":0,\"kind\":\"source_datagen\",\"name\":\"s\",\"uid\":\"s\",\"parallelism\":1,"        \
    "\"input\":-1}"

static void test_json_malformed(void **state) {
    (void)state;
    expect_json_error("[]", "object");
    expect_json_error("{}", "name");
    expect_json_error("{\"name\": 5}", "name");
    expect_json_error("{\"name\": \"j\"}", "nodes");
    expect_json_error("{\"name\": \"j\", \"nodes\": []}", "nodes");
    expect_json_error("{\"name\": \"j\", \"nodes\": {}}", "nodes");
    expect_json_error("{\"name\": \"j\", \"nodes\": [1]}", "nodes[0]");
    expect_json_error("{\"name\": \"j\", \"max_parallelism\": 0, \"nodes\": [" NODE_SRC "]}",
                      "max_parallelism");
    expect_json_error("{\"name\": \"j\", \"max_parallelism\": 1e3, \"nodes\": [" NODE_SRC "]}",
                      "max_parallelism");
    expect_json_error("{\"name\": \"j\", \"nodes\": [" NODE_SRC "]}", "no sink");
    expect_json_error("{\"name\":\"j\",\"nodes\":[{\"id\":0,\"kind\":\"nope\",\"name\":\"s\","
                      "\"parallelism\":1,\"input\":-1}]}",
                      "unknown operator kind");
    expect_json_error("{\"name\":\"j\",\"nodes\":[{\"id\":3,\"kind\":\"map\",\"name\":\"s\","
                      "\"parallelism\":1,\"input\":-1}]}",
                      "\"id\"");
    expect_json_error("{\"name\":\"j\",\"nodes\":[" NODE_SRC
                      ",{\"id\":1,\"kind\":\"sink_print\",\"name\":\"p\","
                      "\"parallelism\":1,\"input\":1}]}",
                      "input");
    expect_json_error("{\"name\":\"j\",\"nodes\":[" NODE_SRC
                      ",{\"id\":1,\"kind\":\"sink_print\",\"name\":\"p\","
                      "\"parallelism\":0,\"input\":0}]}",
                      "parallelism");
    expect_json_error("{\"name\":\"j\",\"nodes\":[" NODE_SRC
                      ",{\"id\":1,\"kind\":\"sink_print\",\"name\":\"p\","
                      "\"parallelism\":99999999999999999,\"input\":0}]}",
                      "parallelism");
    expect_json_error("{\"name\":\"j\",\"nodes\":[" NODE_SRC
                      ",{\"id\":1,\"kind\":\"sink_print\",\"name\":\"p\","
                      "\"parallelism\":1,\"input\":0,\"partitioning\":\"sideways\"}]}",
                      "partitioning");
    expect_json_error(
        "{\"name\":\"j\",\"nodes\":[" NODE_SRC ",{\"id\":1,\"kind\":\"process\",\"name\":\"p\","
        "\"parallelism\":1,\"input\":0,\"partitioning\":\"forward\"},"
        "{\"id\":2,\"kind\":\"sink_print\",\"name\":\"o\",\"parallelism\":1,\"input\":1}]}",
        "weir_key_by");
    expect_json_error(
        "{\"name\":\"j\",\"nodes\":[" NODE_SRC ",{\"id\":1,\"kind\":\"process\",\"name\":\"p\","
        "\"uid\":\"u\",\"parallelism\":1,\"input\":0,\"partitioning\":\"hash\","
        "\"states\":[{\"name\":\"x\",\"type\":\"tree\"}]},"
        "{\"id\":2,\"kind\":\"sink_print\",\"name\":\"o\",\"parallelism\":1,\"input\":1}]}",
        "state type");
    expect_json_error(
        "{\"name\":\"j\",\"nodes\":[" NODE_SRC ",{\"id\":1,\"kind\":\"process\",\"name\":\"p\","
        "\"parallelism\":1,\"input\":0,\"partitioning\":\"hash\","
        "\"states\":[{\"name\":\"x\",\"type\":\"value\"}]},"
        "{\"id\":2,\"kind\":\"sink_print\",\"name\":\"o\",\"parallelism\":1,\"input\":1}]}",
        "no uid");
    expect_json_error(
        "{\"name\":\"j\",\"nodes\":[{\"id\":0,\"kind\":\"source_file\",\"name\":\"s\","
        "\"parallelism\":1,\"input\":-1,\"config\":{\"rate\":1}}]}",
        "path");
    expect_json_error(
        "{\"name\":\"j\",\"nodes\":[{\"id\":0,\"kind\":\"source_datagen\",\"name\":\"s\","
        "\"parallelism\":1,\"input\":-1,\"config\":{\"rate\":-1}}]}",
        "rate");
    expect_json_error(
        "{\"name\":\"j\",\"nodes\":[{\"id\":0,\"kind\":\"source_datagen\",\"name\":\"s\","
        "\"parallelism\":1,\"input\":-1,\"config\":{\"kind\":\"pareto\"}}]}",
        "kind");
    expect_json_error("{\"name\":\"j\",\"nodes\":[{\"id\":0,\"kind\":\"map\",\"name\":\"s\","
                      "\"parallelism\":1,\"input\":-1}]}",
                      "input");
    expect_json_error("{\"name\":\"j\",\"nodes\":[" NODE_SRC
                      ",{\"id\":1,\"kind\":\"sink_print\",\"name\":\"p\","
                      "\"parallelism\":1,\"input\":0,\"config\":[]}]}",
                      "config");
}

/* Finalize refuses @p job with the uid rule's line for operator @p name of @p kind keeping @p what.
 */
static void expect_uid_refused(weir_job_t *job, const char *name, const char *kind,
                               const char *what) {
    char err[512] = "", want[512];
    snprintf(want, sizeof want,
             "operator '%s' (%s) keeps state in checkpoints (%s) but has no uid: call "
             "weir_set_uid() on it so its state survives restarts and savepoints",
             name, kind, what);
    assert_int_equal(weir_graph_finalize(job, err, sizeof(err)), WEIR_EINVAL);
    assert_string_equal(err, want);
}

static void finalize_ok(weir_job_t *job) {
    char err[512] = "";
    if (weir_graph_finalize(job, err, sizeof(err)) != 0)
        fail_msg("finalize: %s", err);
}

/* Every stateful operator needs a uid (savepoints map state by uid): keyed operators (their own
 * message, in test_finalize_validation), sources with positions and sinks with pre-committed
 * transactions. Checked per kind, with the uid set the same graph passes; stateless operators
 * never need one. Also through JSON (what the job manager parses). */
/* Watermark strategy: refused on a non-source at define time (and out-of-range values), carried
 * through JSON both ways, bounded and refused on a non-source in JSON. */
static void test_watermark_strategy(void **state) {
    (void)state;
    weir_job_t *job = weir_graph_new("wm", 1);
    weir_stream_t *src = seq(job, "src");
    weir_watermark_strategy_t st = {.max_out_of_orderness_ms = 250, .idle_timeout_ms = 1000};
    assert_ptr_equal(weir_set_watermark_strategy(src, &st), src);
    weir_stream_t *m = weir_map(src, "m", map_fn, NULL);
    weir_sink_print(m, "out");
    assert_false(job->failed);
    char err[512] = "";
    if (weir_graph_finalize(job, err, sizeof(err)) != 0)
        fail_msg("finalize: %s", err);
    json_t *j = weir_graph_to_json(job);
    weir_job_t *back = weir_graph_from_json(j, err, sizeof(err));
    if (!back)
        fail_msg("%s", err);
    assert_true(back->nodes[0].has_wm);
    assert_int_equal(back->nodes[0].wm_bound_ms, 250);
    assert_int_equal(back->nodes[0].wm_idle_ms, 1000);
    assert_false(back->nodes[1].has_wm);
    assert_int_equal(weir_graph_apply_submitted(job, back, err, sizeof(err)), 0);
    weir_graph_destroy(&back);
    json_decref(j);
    weir_graph_destroy(&job);

    job = weir_graph_new("wm", 1);
    m = weir_map(seq(job, "src"), "m", map_fn, NULL);
    weir_set_watermark_strategy(m, &st);
    assert_true(job->failed);
    assert_non_null(strstr(job->error, "not a source"));
    weir_graph_destroy(&job);

    job = weir_graph_new("wm", 1);
    st.max_out_of_orderness_ms = -1;
    weir_set_watermark_strategy(seq(job, "src"), &st);
    assert_true(job->failed);
    assert_non_null(strstr(job->error, "within"));
    weir_graph_destroy(&job);

    expect_json_error("{\"name\":\"j\",\"nodes\":[{\"id\":0,\"kind\":\"source_datagen\","
                      "\"name\":\"s\",\"parallelism\":1,\"input\":-1,\"watermark\":"
                      "{\"max_out_of_orderness_ms\":-5}}]}",
                      "max_out_of_orderness_ms");
    expect_json_error("{\"name\":\"j\",\"nodes\":[{\"id\":0,\"kind\":\"source_datagen\","
                      "\"name\":\"s\",\"parallelism\":1,\"input\":-1,\"watermark\":"
                      "{\"max_out_of_orderness_ms\":5,\"idle_timeout_ms\":1e30}}]}",
                      "idle_timeout_ms");
    expect_json_error("{\"name\":\"j\",\"nodes\":[" NODE_SRC ",{\"id\":1,\"kind\":\"sink_print\","
                      "\"name\":\"p\",\"parallelism\":1,\"input\":0,\"watermark\":"
                      "{\"max_out_of_orderness_ms\":5}}]}",
                      "only allowed on a source");
}

static void test_uid_rule_per_kind(void **state) {
    (void)state;
    static const char *const eo[] = {"topic", "t", "sink.delivery-guarantee", "exactly-once", NULL};
    static const char *const alo[] = {"topic", "t", "sink.delivery-guarantee", "at-least-once",
                                      NULL};
    static const char *const none[] = {"topic", "t", "sink.delivery-guarantee", "none", NULL};
    static const char *const dflt[] = {"topic", "t", NULL};
    static const char *const ksrc[] = {"topic", "t", NULL};
    weir_datagen_opts_t o = {.kind = WEIR_DATAGEN_SEQUENCE, .count = 10};
    for (int with_uid = 0; with_uid <= 1; with_uid++) {
        /* sources */
        for (int k = 0; k < 4; k++) {
            weir_job_t *job = weir_graph_new("src-uid", 1);
            weir_stream_t *s = k == 0   ? weir_source_datagen(job, "in", &o)
                               : k == 1 ? weir_source_file(job, "in", "/data/in.txt", 0)
                               : k == 2 ? weir_source_generator(job, "in", 5, 0, gen_fn, NULL)
                                        : weir_source_kafka(job, "in", ksrc);
            static const char *const kinds[] = {"source_datagen", "source_file", "source_generator",
                                                "source_kafka"};
            if (with_uid)
                weir_set_uid(s, "in");
            weir_sink_print(weir_map(s, "m", map_fn, NULL), "out");
            if (with_uid)
                finalize_ok(job);
            else
                expect_uid_refused(job, "in", kinds[k], "a source position");
            weir_graph_destroy(&job);
        }
        /* sinks that keep pre-committed transactions */
        for (int k = 0; k < 2; k++) {
            weir_job_t *job = weir_graph_new("sink-uid", 1);
            weir_stream_t *s = seq(job, "src");
            weir_stream_t *out =
                k == 0 ? weir_sink_file(s, "out", "/data/out") : weir_sink_kafka(s, "out", eo);
            if (with_uid)
                weir_set_uid(out, "out");
            if (with_uid)
                finalize_ok(job);
            else
                expect_uid_refused(job, "out", k == 0 ? "sink_file" : "sink_kafka",
                                   "pre-committed transactions");
            weir_graph_destroy(&job);
        }
    }
    /* stateless operators and sinks without transactions need none: print, blackhole, custom,
     * and a Kafka sink that is not exactly-once (at-least-once is the default) */
    const char *const *kopts[] = {alo, none, dflt};
    for (int k = 0; k < 3; k++) {
        weir_job_t *job = weir_graph_new("no-uid-needed", 1);
        weir_stream_t *s =
            weir_filter(weir_map(seq(job, "src"), "m", map_fn, NULL), "f", filter_fn, NULL);
        weir_sink_print(s, "p");
        weir_sink_blackhole(s, "bh");
        weir_sink(s, "custom", map_fn, NULL);
        weir_sink_kafka(s, "k", kopts[k]);
        finalize_ok(job);
        weir_graph_destroy(&job);
    }
    /* a process operator without state needs none either */
    weir_job_t *job = weir_graph_new("stateless-process", 1);
    weir_sink_print(weir_process(weir_key_by(seq(job, "src"), NULL, NULL), "p", map_fn, NULL),
                    "out");
    finalize_ok(job);
    weir_graph_destroy(&job);

    /* the job manager's side: the same rule on a parsed graph */
    expect_json_error("{\"name\":\"j\",\"nodes\":[{\"id\":0,\"kind\":\"source_file\",\"name\":"
                      "\"lines\",\"parallelism\":1,\"input\":-1,\"config\":{\"path\":\"/in\"}},"
                      "{\"id\":1,\"kind\":\"sink_print\",\"name\":\"p\",\"parallelism\":1,"
                      "\"input\":0}]}",
                      "graph JSON: operator 'lines' (source_file) keeps state in checkpoints (a "
                      "source position) but has no uid: call weir_set_uid() on it");
    expect_json_error("{\"name\":\"j\",\"nodes\":[" NODE_SRC
                      ",{\"id\":1,\"kind\":\"sink_file\",\"name\":\"out\",\"parallelism\":1,"
                      "\"input\":0,\"config\":{\"path\":\"/out\"}}]}",
                      "operator 'out' (sink_file) keeps state in checkpoints (pre-committed "
                      "transactions) but has no uid");
}

/* Replace each field of every node of a valid graph by values of every JSON type: the parser
 * must never crash (ASan) and must either fail with a message or produce a graph. */
static void test_json_mutations_do_not_crash(void **state) {
    (void)state;
    weir_job_t *job = full_graph();
    json_t *good = weir_graph_to_json(job);
    weir_graph_destroy(&job);
    json_t *vals[] = {
        json_null(),           json_true(),    json_integer(-1),       json_integer(0),
        json_integer(1 << 30), json_real(1.5), json_string(""),        json_string("hash"),
        json_array(),          json_object(),  json_integer(INT64_MIN)};
    size_t nvals = sizeof(vals) / sizeof(vals[0]);
    int accepted = 0, rejected = 0;
    json_t *nodes = json_object_get(good, "nodes");
    for (size_t n = 0; n < json_array_size(nodes); n++) {
        json_t *node = json_array_get(nodes, n);
        const char *key;
        json_t *v;
        void *tmp;
        json_object_foreach_safe(node, tmp, key, v) {
            for (size_t k = 0; k < nvals; k++) {
                json_t *copy = json_deep_copy(good);
                json_t *cn = json_array_get(json_object_get(copy, "nodes"), n);
                json_object_set(cn, key, vals[k]);
                char err[512] = "";
                weir_job_t *g = weir_graph_from_json(copy, err, sizeof(err));
                if (g) {
                    accepted++;
                    json_t *again = weir_graph_to_json(g);
                    assert_non_null(again);
                    json_decref(again);
                    weir_graph_destroy(&g);
                } else {
                    rejected++;
                    assert_true(err[0] != '\0');
                }
                json_decref(copy);
            }
        }
    }
    assert_true(rejected > 0);
    assert_true(accepted > 0); /* e.g. a different name or a null uid on a stateless node */
    for (size_t k = 0; k < nvals; k++)
        json_decref(vals[k]);
    json_decref(good);
}

/* A chain of @p n_vertices vertices (source, maps, sink, each read by rebalance) of @p parallelism
 * subtasks each, as JSON. */
static json_t *wide_graph_json(uint32_t n_vertices, uint32_t parallelism) {
    json_t *nodes = json_array();
    for (uint32_t i = 0; i < n_vertices; i++) {
        const char *kind = i == 0                ? "source_datagen"
                           : i + 1 == n_vertices ? "sink_blackhole"
                                                 : "map";
        json_array_append_new(nodes,
                              json_pack("{s:i, s:s, s:s, s:i, s:i, s:s, s:s?}", "id", (int)i,
                                        "kind", kind, "name", "", "parallelism", (int)parallelism,
                                        "input", (int)i - 1, "partitioning",
                                        i ? "rebalance" : "forward", "uid", i == 0 ? "src" : NULL));
    }
    return json_pack("{s:s, s:i, s:o}", "name", "wide", "max_parallelism",
                     (int)WEIR_MAX_MAX_PARALLELISM, "nodes", nodes);
}

/* Found by tests/fuzz/fuzz_jobgraph: a 64 KB POST /jobs body of 700 vertices of parallelism 32768
 * made the job manager allocate its per-subtask tables for 23 million subtasks (out of memory).
 * A submitted graph has at most 4 * WEIR_MAX_MAX_PARALLELISM subtasks in total. */
static void test_json_total_subtasks_bounded(void **state) {
    (void)state;
    char err[512] = "";
    json_t *ok = wide_graph_json(4, WEIR_MAX_MAX_PARALLELISM);
    weir_job_t *g = weir_graph_from_json(ok, err, sizeof(err));
    if (!g)
        fail_msg("4 vertices of %u subtasks refused: %s", WEIR_MAX_MAX_PARALLELISM, err);
    assert_int_equal(g->n_vertices, 4);
    weir_graph_destroy(&g);
    json_decref(ok);

    json_t *big = wide_graph_json(5, WEIR_MAX_MAX_PARALLELISM);
    g = weir_graph_from_json(big, err, sizeof(err));
    json_decref(big);
    if (g) {
        weir_graph_destroy(&g);
        fail_msg("5 vertices of %u subtasks accepted", WEIR_MAX_MAX_PARALLELISM);
    }
    assert_null(strchr(err, '\n'));
    if (!strstr(err, "163840 subtasks") || !strstr(err, "at most 131072") ||
        !strstr(err, "lower the parallelism"))
        fail_msg("error '%s' does not name the count, the bound and the fix", err);
}

static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The uid check compared every pair of nodes: a graph of the most nodes the parser accepts
 * (100000, an 8 MB POST /jobs body), each with its own uid, cost 13 s of CPU (-O2) in the job
 * manager, and again in a task manager for every subtask it deploys. Now it sorts: well under a
 * second even under ASan. The first duplicate in node order is still the one reported. */
static void test_json_many_uids_fast(void **state) {
    (void)state;
    const uint32_t n = 100000;
    json_t *nodes = json_array();
    for (uint32_t i = 0; i < n; i++) {
        char uid[32];
        snprintf(uid, sizeof uid, "op-%u", n - i); /* not in sorted order */
        const char *kind = i == 0 ? "source_datagen" : i + 1 == n ? "sink_blackhole" : "map";
        json_array_append_new(nodes, json_pack("{s:i, s:s, s:s, s:s, s:i, s:i}", "id", (int)i,
                                               "kind", kind, "name", "", "uid", uid, "parallelism",
                                               1, "input", (int)i - 1));
    }
    json_t *root = json_pack("{s:s, s:o}", "name", "uids", "nodes", nodes);
    char err[512] = "";
    double t0 = cpu_seconds();
    weir_job_t *g = weir_graph_from_json(root, err, sizeof(err));
    double secs = cpu_seconds() - t0;
    if (!g)
        fail_msg("refused: %s", err);
    weir_graph_destroy(&g);
    if (secs > 5.0)
        fail_msg("parsing %u nodes with unique uids took %.1f s of CPU (quadratic uid check?)", n,
                 secs);

    /* duplicates: nodes 10, 20 and 30 share a uid, 15 and 25 another: node 20 is reported */
    json_object_set_new(json_array_get(nodes, 20), "uid", json_string("dup"));
    json_object_set_new(json_array_get(nodes, 30), "uid", json_string("dup"));
    json_object_set_new(json_array_get(nodes, 10), "uid", json_string("dup"));
    json_object_set_new(json_array_get(nodes, 25), "uid", json_string("again"));
    json_object_set_new(json_array_get(nodes, 15), "uid", json_string("again"));
    json_object_set_new(json_array_get(nodes, 10), "name", json_string("ten"));
    json_object_set_new(json_array_get(nodes, 20), "name", json_string("twenty"));
    g = weir_graph_from_json(root, err, sizeof(err));
    json_decref(root);
    if (g) {
        weir_graph_destroy(&g);
        fail_msg("duplicate uids accepted");
    }
    assert_string_equal(err,
                        "graph JSON: uid 'dup' is used by 'ten' and 'twenty': uids must be unique");
}

static void test_apply_submitted(void **state) {
    (void)state;
    weir_job_t *cli = full_graph();
    json_t *j = weir_graph_to_json(cli);
    /* the job manager raised the flat map's and the process's parallelism to 3 */
    json_t *nodes = json_object_get(j, "nodes");
    for (int i = 3; i <= 5; i++)
        json_object_set_new(json_array_get(nodes, i), "parallelism", json_integer(3));
    char err[512] = "";
    weir_job_t *sub = weir_graph_from_json(j, err, sizeof(err));
    if (!sub)
        fail_msg("from_json: %s", err);
    weir_job_t *tm = full_graph();
    assert_int_equal(weir_graph_apply_submitted(tm, sub, err, sizeof(err)), 0);
    assert_int_equal(tm->nodes[3].parallelism, 3);
    assert_int_equal(tm->nodes[4].parallelism, 3);
    assert_int_equal(tm->nodes[0].parallelism, 2);
    const weir_vertex_t *v = weir_graph_vertex_of(tm, 4);
    assert_non_null(v);
    assert_int_equal(v->parallelism, 3);
    assert_non_null(tm->nodes[4].fn); /* function pointers kept */
    weir_graph_destroy(&tm);

    /* a different graph is rejected */
    tm = weir_graph_new("full", 2);
    weir_sink_print(seq(tm, "src"), "out");
    assert_int_equal(weir_graph_finalize(tm, err, sizeof(err)), 0);
    assert_int_equal(weir_graph_apply_submitted(tm, sub, err, sizeof(err)), WEIR_EPLUGIN);
    assert_non_null(strstr(err, "not deterministic"));
    weir_graph_destroy(&tm);

    /* same shape, renamed operator */
    tm = full_graph();
    tm->nodes[6].name = weir_job_strdup(tm, "other");
    assert_int_equal(weir_graph_apply_submitted(tm, sub, err, sizeof(err)), WEIR_EPLUGIN);
    assert_non_null(strstr(err, "other"));
    weir_graph_destroy(&tm);

    weir_graph_destroy(&sub);
    weir_graph_destroy(&cli);
    json_decref(j);
}

/* State TTL: define-time errors, the JSON members (round trip, bounded parse), determinism. */
static void test_state_ttl(void **state) {
    (void)state;
    char err[512] = "";
    /* errors: unknown state, out-of-range ttl, operator without that state, unknown mode */
    const int64_t bad_ttl[] = {0, -1, WEIR_MAX_STATE_TTL_MS + 1, INT64_MAX};
    for (size_t i = 0; i < sizeof bad_ttl / sizeof bad_ttl[0]; i++) {
        weir_job_t *job = weir_graph_new("ttl", 1);
        weir_stream_t *p =
            weir_process(weir_key_by(seq(job, "src"), NULL, NULL), "p", map_fn, NULL);
        assert_int_equal(weir_value_state(p, "v"), 0);
        assert_int_equal(weir_state_set_ttl(p, 0, bad_ttl[i], WEIR_TTL_ON_CREATE_AND_WRITE), -1);
        assert_true(job->failed);
        assert_non_null(strstr(job->error, "out of range"));
        weir_graph_destroy(&job);
    }
    weir_job_t *job = weir_graph_new("ttl", 1);
    weir_stream_t *p = weir_process(weir_key_by(seq(job, "src"), NULL, NULL), "p", map_fn, NULL);
    assert_int_equal(weir_value_state(p, "v"), 0);
    assert_int_equal(weir_state_set_ttl(p, 1, 1000, WEIR_TTL_ON_CREATE_AND_WRITE), -1);
    assert_non_null(strstr(job->error, "not declared"));
    weir_graph_destroy(&job);
    job = weir_graph_new("ttl", 1);
    weir_stream_t *m = weir_map(seq(job, "src"), "m", map_fn, NULL);
    assert_int_equal(weir_state_set_ttl(m, 0, 1000, WEIR_TTL_ON_CREATE_AND_WRITE), -1);
    assert_non_null(strstr(job->error, "not declared"));
    weir_graph_destroy(&job);
    job = weir_graph_new("ttl", 1);
    p = weir_process(weir_key_by(seq(job, "src"), NULL, NULL), "p", map_fn, NULL);
    assert_int_equal(weir_value_state(p, "v"), 0);
    assert_int_equal(weir_state_set_ttl(p, 0, 1000, (weir_ttl_update_t)7), -1);
    assert_non_null(strstr(job->error, "update mode"));
    weir_graph_destroy(&job);
    assert_int_equal(weir_state_set_ttl(NULL, 0, 1000, WEIR_TTL_ON_CREATE_AND_WRITE), -1);

    /* round trip */
    job = weir_graph_new("ttl", 1);
    p = weir_process(weir_key_by(seq(job, "src"), NULL, NULL), "p", map_fn, NULL);
    weir_set_uid(p, "p");
    assert_int_equal(weir_value_state(p, "v"), 0);
    assert_int_equal(weir_map_state(p, "m"), 1);
    assert_int_equal(weir_list_state(p, "plain"), 2);
    assert_int_equal(weir_state_set_ttl(p, 0, 1000, WEIR_TTL_ON_CREATE_AND_WRITE), 0);
    assert_int_equal(weir_state_set_ttl(p, 1, WEIR_MAX_STATE_TTL_MS, WEIR_TTL_ON_READ_AND_WRITE),
                     0);
    weir_sink_print(p, "out");
    size_t pn = p->node;
    assert_int_equal(weir_graph_finalize(job, err, sizeof err), 0);
    json_t *j = weir_graph_to_json(job);
    json_t *sts = json_object_get(json_array_get(json_object_get(j, "nodes"), pn), "states");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(sts, 0), "ttl_ms")), 1000);
    assert_string_equal(json_string_value(json_object_get(json_array_get(sts, 1), "ttl_update")),
                        "on_read_and_write");
    assert_null(json_object_get(json_array_get(sts, 2), "ttl_ms")); /* no TTL: no member */
    weir_job_t *back = weir_graph_from_json(j, err, sizeof err);
    if (!back)
        fail_msg("from_json: %s", err);
    weir_node_t *bn = &back->nodes[pn];
    assert_int_equal(bn->states[0].ttl_ms, 1000);
    assert_int_equal(bn->states[0].ttl_update, WEIR_TTL_ON_CREATE_AND_WRITE);
    assert_int_equal(bn->states[1].ttl_ms, WEIR_MAX_STATE_TTL_MS);
    assert_int_equal(bn->states[1].ttl_update, WEIR_TTL_ON_READ_AND_WRITE);
    assert_int_equal(bn->states[2].ttl_ms, 0);
    json_t *j2 = weir_graph_to_json(back);
    assert_true(json_equal(j, j2));
    json_decref(j2);
    /* the task manager's define() must declare the same TTL */
    job->nodes[pn].states[0].ttl_ms = 2000;
    assert_int_equal(weir_graph_apply_submitted(job, back, err, sizeof err), WEIR_EPLUGIN);
    assert_non_null(strstr(err, "time to live 2000 ms"));
    weir_graph_destroy(&back);

    /* bad members */
    json_t *st0 = json_array_get(sts, 0);
    const struct {
        const char *key;
        json_t *val;
        const char *want;
    } bad[] = {{"ttl_ms", json_integer(-1), "ttl_ms"},
               {"ttl_ms", json_integer(WEIR_MAX_STATE_TTL_MS + 1), "ttl_ms"},
               {"ttl_ms", json_string("10"), "ttl_ms"},
               {"ttl_update", json_string("sometimes"), "ttl_update"},
               {"ttl_update", json_integer(1), "ttl_update"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *copy = json_deep_copy(j);
        json_t *cs = json_array_get(
            json_object_get(json_array_get(json_object_get(copy, "nodes"), pn), "states"), 0);
        json_object_set_new(cs, bad[i].key, bad[i].val);
        assert_null(weir_graph_from_json(copy, err, sizeof err));
        assert_non_null(strstr(err, bad[i].want));
        json_decref(copy);
    }
    (void)st0;
    { /* an update mode without a time to live */
        json_t *copy = json_deep_copy(j);
        json_t *cs = json_array_get(
            json_object_get(json_array_get(json_object_get(copy, "nodes"), pn), "states"), 2);
        json_object_set_new(cs, "ttl_update", json_string("on_read_and_write"));
        assert_null(weir_graph_from_json(copy, err, sizeof err));
        assert_non_null(strstr(err, "ttl_update without ttl_ms"));
        json_decref(copy);
    }
    json_decref(j);
    weir_graph_destroy(&job);
}

static void timer_fn(weir_ctx_t *ctx, int64_t ts, weir_time_domain_t dom, void *udata) {
    (void)ctx;
    (void)ts;
    (void)dom;
    (void)udata;
}

/* weir_set_on_timer: a process operator gets timers (the "weir.timers" map state and the
 * "timers" flag, which survive JSON); any other operator or a NULL callback is a define-time
 * error; "timers" in JSON is a boolean allowed on a process operator only. */
static void test_timers(void **state) {
    (void)state;
    weir_job_t *job = weir_graph_new("tm", 1);
    weir_stream_t *p = weir_process(weir_key_by(seq(job, "src"), NULL, NULL), "p", map_fn, NULL);
    weir_set_uid(p, "p");
    assert_int_equal(weir_value_state(p, "v"), 0);
    assert_ptr_equal(weir_set_on_timer(p, timer_fn), p);
    assert_ptr_equal(weir_set_on_timer(p, timer_fn), p); /* again: replaces, declares nothing */
    weir_sink_print(p, "out");
    assert_false(job->failed);
    weir_node_t *n = &job->nodes[1];
    assert_true(n->timers);
    assert_int_equal(n->n_states, 2);
    assert_string_equal(n->states[1].name, WEIR_TIMERS_STATE);
    assert_int_equal(n->states[1].kind, WEIR_STATE_MAP);
    char err[512] = "";
    if (weir_graph_finalize(job, err, sizeof(err)) != 0)
        fail_msg("finalize: %s", err);
    json_t *j = weir_graph_to_json(job);
    assert_true(
        json_is_true(json_object_get(json_array_get(json_object_get(j, "nodes"), 1), "timers")));
    weir_job_t *back = weir_graph_from_json(j, err, sizeof(err));
    if (!back)
        fail_msg("%s", err);
    assert_true(back->nodes[1].timers);
    assert_false(back->nodes[0].timers);
    assert_int_equal(back->nodes[1].n_states, 2);
    assert_int_equal(weir_graph_apply_submitted(job, back, err, sizeof(err)), 0);
    back->nodes[1].timers = false;
    assert_int_not_equal(weir_graph_apply_submitted(job, back, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "timers"));
    weir_graph_destroy(&back);
    json_decref(j);
    weir_graph_destroy(&job);

    job = weir_graph_new("tm", 1);
    weir_set_on_timer(weir_map(seq(job, "src"), "m", map_fn, NULL), timer_fn);
    assert_true(job->failed);
    assert_non_null(strstr(job->error, "weir_set_on_timer on 'm'"));
    weir_graph_destroy(&job);
    job = weir_graph_new("tm", 1);
    weir_set_on_timer(weir_process(weir_key_by(seq(job, "src"), NULL, NULL), "p", map_fn, NULL),
                      NULL);
    assert_true(job->failed);
    assert_non_null(strstr(job->error, "NULL"));
    weir_graph_destroy(&job);

    /* JSON: a flag without the state declares it; only on a process; a boolean */
    const char *ok = "{\"name\":\"j\",\"nodes\":[" NODE_SRC
                     ",{\"id\":1,\"kind\":\"process\",\"name\":\"p\",\"uid\":\"u\","
                     "\"parallelism\":1,\"input\":0,\"partitioning\":\"hash\",\"timers\":true},"
                     "{\"id\":2,\"kind\":\"sink_print\",\"name\":\"o\",\"parallelism\":1,"
                     "\"input\":1}]}";
    json_error_t je;
    json_t *jt = json_loads(ok, 0, &je);
    assert_non_null(jt);
    back = weir_graph_from_json(jt, err, sizeof(err));
    if (!back)
        fail_msg("%s", err);
    assert_true(back->nodes[1].timers);
    assert_int_equal(back->nodes[1].n_states, 1);
    assert_string_equal(back->nodes[1].states[0].name, WEIR_TIMERS_STATE);
    weir_graph_destroy(&back);
    json_decref(jt);
    expect_json_error("{\"name\":\"j\",\"nodes\":[" NODE_SRC ",{\"id\":1,\"kind\":\"sink_print\","
                      "\"name\":\"p\",\"parallelism\":1,\"input\":0,\"timers\":true}]}",
                      "only allowed on a process operator");
    expect_json_error("{\"name\":\"j\",\"nodes\":[" NODE_SRC ",{\"id\":1,\"kind\":\"process\","
                      "\"name\":\"p\",\"uid\":\"u\",\"parallelism\":1,\"input\":0,"
                      "\"partitioning\":\"hash\",\"timers\":\"yes\"}]}",
                      "timers");
    expect_json_error("{\"name\":\"j\",\"nodes\":[" NODE_SRC ",{\"id\":1,\"kind\":\"process\","
                      "\"name\":\"p\",\"uid\":\"u\",\"parallelism\":1,\"input\":0,"
                      "\"partitioning\":\"hash\",\"timers\":true,\"states\":[{\"name\":"
                      "\"weir.timers\",\"type\":\"value\"}]}]}",
                      "must be a map");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_ttl),
        cmocka_unit_test(test_forward_chain),
        cmocka_unit_test(test_rebalance_breaks_chain),
        cmocka_unit_test(test_forward_parallelism_mismatch),
        cmocka_unit_test(test_key_by_and_state),
        cmocka_unit_test(test_fan_out_and_edge_order),
        cmocka_unit_test(test_misuse_records_first_error),
        cmocka_unit_test(test_null_streams_are_safe),
        cmocka_unit_test(test_set_lifecycle),
        cmocka_unit_test(test_finalize_validation),
        cmocka_unit_test(test_alloc_and_names),
        cmocka_unit_test(test_json_round_trip),
        cmocka_unit_test(test_json_malformed),
        cmocka_unit_test(test_watermark_strategy),
        cmocka_unit_test(test_uid_rule_per_kind),
        cmocka_unit_test(test_json_mutations_do_not_crash),
        cmocka_unit_test(test_json_total_subtasks_bounded),
        cmocka_unit_test(test_json_many_uids_fast),
        cmocka_unit_test(test_apply_submitted),
        cmocka_unit_test(test_timers),
    };
    return cmocka_run_group_tests(tests, 0, NULL);
}
