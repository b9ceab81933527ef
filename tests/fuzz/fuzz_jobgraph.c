/* libFuzzer target: the body of POST /jobs, from the bytes the REST server received to a CREATED
 * job of the job manager.
 *
 * What it calls and why there: rest.c's handler does json_loadb(body) and passes the body to its
 * static job_from_request, which checks the plugin's sha256 against the blob store (an input
 * passes only with the sha of a stored blob), the "args" and "parallelism" members, and calls
 * weir__jm_job_new(jm, sha, args, "graph" member), the nearest non-static entry point: it parses
 * the graph (weir_graph_from_json, which finalizes it: checks, operator chains, edges), keeps a
 * copy and its text, and sizes the job's per-vertex tables, slots and checkpoint coordinator. This
 * target does what rest.c does with the bytes (json_loadb with the same flags, the "graph" and
 * "args" members) and calls weir__jm_job_new on a job manager made by weir_jobmanager_new (RPC
 * and REST on loopback, checkpointing on; never run), then frees the job. Not covered: the
 * libmicrohttpd request parsing and the shape checks inside job_from_request (plain jansson type
 * tests), the HA save and the job table.
 *
 * Properties checked on every input (besides ASan/UBSan/LeakSanitizer):
 * - a refused graph comes with a non-empty message;
 * - an accepted job is consistent: the kept copy equals the submitted graph and its text parses
 *   to it; every node lies in exactly one vertex (weir_graph_vertex_of agrees); every vertex has
 *   its nodes' parallelism, 1..max_parallelism, and the job's per-vertex table matches; edges join
 *   two different vertices; slots_needed is the largest parallelism;
 * - round trip: the parsed graph serializes (weir_graph_to_json), parses again, serializes to the
 *   same JSON, and the determinism check (weir_graph_apply_submitted) accepts it.
 * Inputs are at most FUZZ_MAX_INPUT bytes (run.sh passes the same -max_len).
 * Seeds: request bodies around graphs built with the define-time API (every operator kind,
 * partitioning and state type, side outputs), serialized with weir_graph_to_json.
 *
 * State: the job manager, made once in LLVMFuzzerInitialize (libFuzzer's API leaves no other
 * place for it) and destroyed at exit. Threading: libFuzzer's thread calls everything; the job
 * manager's REST thread idles. */
#include <ftw.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/err.h"
#include "fuzz_util.h"
#include "jobmanager/jobmanager.h"
#include "jobmanager/jobmanager_int.h"
#include "runtime/graph/graph.h"

#define FUZZ_MAX_INPUT 65536u

static const char SHA[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

static weir_jobmanager_t *g_jm;

/* ---- seeds --------------------------------------------------------------------------------- */

static void map_fn(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    (void)ctx, (void)in, (void)udata;
}
static bool filter_fn(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    (void)ctx, (void)in, (void)udata;
    return true;
}
static uint32_t key_fn(const weir_record_t *in, void *key_out, void *udata) {
    (void)in, (void)key_out, (void)udata;
    return 0;
}
static void reduce_fn(const msgpack_object *acc, const msgpack_object *in, msgpack_packer *out,
                      void *udata) {
    (void)acc, (void)in, (void)out, (void)udata;
}
static void gen_fn(weir_ctx_t *ctx, uint64_t index, void *udata) {
    (void)ctx, (void)index, (void)udata;
}
static void timer_fn(weir_ctx_t *ctx, int64_t ts, weir_time_domain_t dom, void *udata) {
    (void)ctx, (void)ts, (void)dom, (void)udata;
}

/* Finalizes @p job and writes it as the "graph" of a POST /jobs body. */
static void seed_graph(weir_job_t *job, const char *name) {
    char err[512] = "";
    WEIR_FUZZ_CHECK(weir_graph_finalize(job, err, sizeof err) == 0, "seed %s: %s", name, err);
    json_t *body = json_pack("{s:s, s:[s,s], s:i, s:o}", "plugin", SHA, "args", "--in", "/x",
                             "parallelism", 2, "graph", weir_graph_to_json(job));
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    WEIR_FUZZ_CHECK(text, "seed %s does not serialize", name);
    weir_fuzz_seed(name, text, strlen(text));
    free(text);
    json_decref(body);
    weir_graph_destroy(&job);
}

static void write_seeds(void) {
    /* datagen -> map -> key_by -> process with every state type -> rebalance -> file sink */
    weir_job_t *job = weir_graph_new("stateful", 2);
    weir_datagen_opts_t dg = {.kind = WEIR_DATAGEN_RANDOM,
                              .count = 1000,
                              .random_max = 77,
                              .seed = UINT64_MAX - 1,
                              .rate = 12.5};
    weir_stream_t *s =
        weir_map(weir_set_uid(weir_source_datagen(job, "gen", &dg), "gen"), "parse", map_fn, NULL);
    weir_stream_t *p = weir_process(weir_key_by(s, key_fn, NULL), "count", map_fn, NULL);
    weir_set_uid(p, "count");
    weir_value_state(p, "v");
    weir_state_set_ttl(p, weir_list_state(p, "l"), 60000, WEIR_TTL_ON_CREATE_AND_WRITE);
    weir_state_set_ttl(p, weir_map_state(p, "m"), 1000, WEIR_TTL_ON_READ_AND_WRITE);
    weir_reducing_state(p, "r", reduce_fn, NULL);
    weir_set_on_timer(p, timer_fn); /* "timers": true and the weir.timers state */
    weir_set_uid(weir_sink_file(weir_rebalance(weir_set_parallelism(p, 3)), "out", "/data/out"),
                 "out");
    seed_graph(job, "stateful");

    /* file source -> flat_map -> filter -> rebalance -> print; a second chain by broadcast */
    job = weir_graph_new("chains", 1);
    weir_job_set_max_parallelism(job, 256);
    s = weir_filter(
        weir_flat_map(weir_set_uid(weir_source_file(job, "lines", "/data/in.txt", 0), "lines"),
                      "split", map_fn, NULL),
        "nonempty", filter_fn, NULL);
    weir_stream_t *up = weir_set_parallelism(weir_map(weir_rebalance(s), "up", map_fn, NULL), 4);
    weir_set_parallelism(weir_sink_print(up, "print"), 4);
    weir_sink(weir_broadcast(s), "custom", map_fn, NULL);
    seed_graph(job, "chains");

    /* generator (with a watermark strategy) -> key_by (record key) -> reduce -> blackhole */
    job = weir_graph_new("reduce", 1);
    weir_stream_t *ev =
        weir_set_uid(weir_source_generator(job, "events", 500, 0, gen_fn, NULL), "events");
    weir_watermark_strategy_t st = {.max_out_of_orderness_ms = 4000, .idle_timeout_ms = 60000};
    weir_set_watermark_strategy(ev, &st);
    weir_stream_t *r = weir_reduce(weir_key_by(ev, NULL, NULL), "sum", reduce_fn, NULL);
    weir_sink_blackhole(weir_set_uid(r, "sum"), "drop");
    seed_graph(job, "reduce");

    /* side outputs: a flat_map with two tags and three consumers ("late" forward: chained; main
     * by key_by and "long words" rebalanced to a map: edges from inside the chain; the map's only
     * consumer, its own side output, chains) */
    job = weir_graph_new("sideout", 2);
    weir_stream_t *sp =
        weir_flat_map(weir_set_uid(weir_source_generator(job, "gen", 100, 0, gen_fn, NULL), "gen"),
                      "route", map_fn, NULL);
    int late = weir_side_output_tag(sp, "late");
    int longw = weir_side_output_tag(sp, "long words");
    weir_sink_print(weir_key_by(sp, NULL, NULL), "main");
    weir_sink_blackhole(weir_side_output(sp, late), "late");
    weir_stream_t *lm = weir_map(weir_rebalance(weir_side_output(sp, longw)), "lm", map_fn, NULL);
    int lmt = weir_side_output_tag(lm, "again");
    weir_sink_print(weir_side_output(lm, lmt), "again"); /* the only consumer: chained */
    seed_graph(job, "sideout");

    /* two inputs: two generators keyed two ways into one co-process (input 0 and 1 edges, a
     * node with "inputs"), timers on it, then a file sink */
    job = weir_graph_new("twoinput", 2);
    weir_stream_t *a = weir_set_uid(weir_source_generator(job, "a", 100, 0, gen_fn, NULL), "a");
    weir_stream_t *b = weir_set_uid(weir_source_generator(job, "b", 50, 0, gen_fn, NULL), "b");
    weir_set_watermark_strategy(a, &st);
    weir_stream_t *co = weir_co_process(weir_key_by(a, key_fn, NULL), weir_key_by(b, NULL, NULL),
                                        "co", map_fn, map_fn, NULL);
    weir_set_uid(co, "co");
    weir_value_state(co, "pending");
    weir_set_on_timer(co, timer_fn);
    weir_set_uid(weir_sink_file(co, "out", "/data/out"), "out");
    seed_graph(job, "twoinput");

    /* the smallest job: a sequence into a blackhole */
    job = weir_graph_new("", 1);
    weir_datagen_opts_t seq = {.kind = WEIR_DATAGEN_SEQUENCE, .count = 10};
    weir_sink_blackhole(weir_set_uid(weir_source_datagen(job, "seq", &seq), "seq"), "sink");
    seed_graph(job, "smallest");
}

/* ---- the job manager ----------------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void destroy_jm(void) {
    weir_jobmanager_destroy(&g_jm);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    write_seeds();
    const char *tmp = getenv("TMPDIR");
    char dir[4096], blobs[4200], ck[4200], err[512] = "";
    snprintf(dir, sizeof dir, "%s/weir-fuzz-jobgraph-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    WEIR_FUZZ_CHECK(mkdtemp(dir), "cannot create a directory like %s", dir);
    snprintf(blobs, sizeof blobs, "%s/blobs", dir);
    snprintf(ck, sizeof ck, "%s/checkpoints", dir);
    weir_config_t *cfg = weir_config_new();
    int rc = weir_config_set(cfg, "rest.port", "0", err, sizeof err) ||
             weir_config_set(cfg, "jobmanager.rpc.port", "0", err, sizeof err) ||
             weir_config_set(cfg, "rest.bind-address", "127.0.0.1", err, sizeof err) ||
             weir_config_set(cfg, "jobmanager.bind-host", "127.0.0.1", err, sizeof err) ||
             weir_config_set(cfg, "blob.storage.directory", blobs, err, sizeof err) ||
             weir_config_set(cfg, "execution.checkpointing.interval", "1s", err, sizeof err) ||
             weir_config_set(cfg, "state.checkpoints.dir", ck, err, sizeof err);
    WEIR_FUZZ_CHECK(rc == 0, "job manager configuration: %s", err);
    g_jm = weir_jobmanager_new(cfg, err, sizeof err);
    weir_config_destroy(&cfg);
    WEIR_FUZZ_CHECK(g_jm, "job manager: %s", err);
    WEIR_FUZZ_CHECK(g_jm->ckcfg.enabled,
                    "checkpointing is off: the job's checkpoint paths go unfuzzed");
    /* weir__jm_job_new touches no file: the directories can go now */
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    atexit(destroy_jm);
    return 0;
}

/* ---- checks -------------------------------------------------------------------------------- */

static void check_job(const weir_jm_job_t *job, const json_t *graph) {
    const weir_job_t *g = job->dag;
    WEIR_FUZZ_CHECK(json_equal(job->graph, graph), "the kept graph differs from the submitted one");
    json_error_t jerr;
    json_t *again = json_loads(job->graph_text, 0, &jerr);
    WEIR_FUZZ_CHECK(again && json_equal(again, graph), "graph_text does not parse to the graph");
    json_decref(again);
    WEIR_FUZZ_CHECK(job->n_vertices == g->n_vertices && g->n_vertices >= 1, "%u vertices",
                    g->n_vertices);
    uint32_t *seen = calloc(g->n_nodes ? g->n_nodes : 1, sizeof *seen);
    WEIR_FUZZ_CHECK(seen, "out of memory");
    uint32_t max_par = 0;
    for (uint32_t v = 0; v < g->n_vertices; v++) {
        const weir_vertex_t *vx = &g->vertices[v];
        WEIR_FUZZ_CHECK(vx->id == v && vx->n_nodes >= 1, "vertex %u", v);
        WEIR_FUZZ_CHECK(vx->parallelism >= 1 && vx->parallelism <= g->max_parallelism &&
                            job->parallelism[v] == vx->parallelism,
                        "vertex %u parallelism %u (max %u, job %u)", v, vx->parallelism,
                        g->max_parallelism, job->parallelism[v]);
        if (vx->parallelism > max_par)
            max_par = vx->parallelism;
        for (uint32_t k = 0; k < vx->n_nodes; k++) {
            uint32_t n = vx->nodes[k];
            WEIR_FUZZ_CHECK(n < g->n_nodes, "vertex %u names node %u of %u", v, n, g->n_nodes);
            WEIR_FUZZ_CHECK(g->nodes[n].parallelism == vx->parallelism,
                            "node %u parallelism %u in vertex %u of %u", n, g->nodes[n].parallelism,
                            v, vx->parallelism);
            WEIR_FUZZ_CHECK(weir_graph_vertex_of(g, n) == vx, "vertex_of(%u) is not vertex %u", n,
                            v);
            seen[n]++;
        }
    }
    for (uint32_t n = 0; n < g->n_nodes; n++)
        WEIR_FUZZ_CHECK(seen[n] == 1, "node %u lies in %u vertices", n, seen[n]);
    free(seen);
    for (uint32_t e = 0; e < g->n_edges; e++) {
        const weir_edge_t *ed = &g->edges[e];
        WEIR_FUZZ_CHECK(ed->id == e && ed->source < g->n_vertices && ed->target < g->n_vertices &&
                            ed->source != ed->target,
                        "edge %u: %u -> %u of %u vertices", e, ed->source, ed->target,
                        g->n_vertices);
    }
    WEIR_FUZZ_CHECK(job->slots_needed == max_par, "slots_needed %u, largest parallelism %u",
                    job->slots_needed, max_par);
}

static void check_roundtrip(const weir_job_t *g) {
    char err[512] = "";
    json_t *j1 = weir_graph_to_json(g);
    WEIR_FUZZ_CHECK(j1, "an accepted graph does not serialize");
    weir_job_t *g2 = weir_graph_from_json(j1, err, sizeof err);
    WEIR_FUZZ_CHECK(g2, "its serialization is refused: %s", err);
    json_t *j2 = weir_graph_to_json(g2);
    WEIR_FUZZ_CHECK(j2 && json_equal(j1, j2), "serialize(parse(serialize(g))) differs");
    WEIR_FUZZ_CHECK(g2->n_vertices == g->n_vertices && g2->n_edges == g->n_edges,
                    "re-parsed graph has other vertices or edges");
    int rc = weir_graph_apply_submitted(g2, g, err, sizeof err);
    WEIR_FUZZ_CHECK(rc == 0, "the determinism check refuses the same graph: %s", err);
    json_decref(j2);
    json_decref(j1);
    weir_graph_destroy(&g2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > FUZZ_MAX_INPUT)
        return -1;
    json_error_t jerr;
    json_t *req = json_loadb((const char *)data, size, 0, &jerr);
    const json_t *graph = json_object_get(req, "graph");
    if (!json_is_object(graph)) {
        json_decref(req);
        return 0;
    }
    const json_t *args = json_object_get(req, "args");
    size_t n_args = json_array_size(args);
    const char **argv = calloc(n_args ? n_args : 1, sizeof *argv);
    WEIR_FUZZ_CHECK(argv, "out of memory");
    size_t n = 0;
    while (n < n_args && (argv[n] = json_string_value(json_array_get(args, n))))
        n++;
    char err[1024] = "";
    weir_jm_job_t *job = weir__jm_job_new(g_jm, SHA, argv, (uint32_t)n, graph, err, sizeof err);
    if (!job) {
        WEIR_FUZZ_CHECK(err[0], "a refused graph has no message");
        if (getenv("WEIR_FUZZ_VERBOSE"))
            fprintf(stderr, "refused: %s\n", err);
    } else {
        if (getenv("WEIR_FUZZ_VERBOSE"))
            fprintf(stderr, "accepted: %u vertices, %u edges\n", job->n_vertices,
                    job->dag->n_edges);
        check_job(job, graph);
        check_roundtrip(job->dag);
        weir__jm_job_free(job);
    }
    free(argv);
    json_decref(req);
    return 0;
}
