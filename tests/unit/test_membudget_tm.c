/* Unit tests of the task manager's memory budget (taskmanager/memory.c): the split of
 * taskmanager.memory.process.size (Flink's default 1728 MiB; the expected figures computed here
 * from the documented rule, not read from the code), the one-line refusals of bad budgets, and
 * the network-buffer reservation of a deploy (counted from a hand-made graph: channels x credits
 * + output channels, segment size each; refused beyond the budget with the key to raise,
 * released on the task's end; never refused without a budget). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/config.h"
#include "common/err.h"
#include "runtime/graph/graph.h"
#include "taskmanager/memory_int.h"
#include "testutil.h"

#define MIB ((uint64_t)1 << 20)

static weir_config_t *cfg_with(const char *const kv[][2], size_t n) {
    weir_config_t *c = weir_config_new();
    char err[256];
    for (size_t i = 0; i < n; i++)
        if (weir_config_set(c, kv[i][0], kv[i][1], err, sizeof err) != 0)
            fail_msg("%s", err);
    return c;
}

static void test_default_split(void **st) {
    (void)st;
    weir_config_t *c = weir_config_new();
    weir_tm_memory_t m;
    char err[256] = "";
    assert_int_equal(weir__tm_memory_init(&m, c, err, sizeof err), 0);
    uint64_t p = 1728 * MIB;
    assert_int_equal(m.process, p);
    assert_int_equal(m.network_total, (uint64_t)(0.1 * (double)p)); /* within 64 MiB..1 GiB */
    assert_int_equal(m.managed_total, (uint64_t)(0.4 * (double)p));
    assert_int_equal(m.state_cache_total, (uint64_t)(0.1 * (double)p));
    assert_int_equal(m.headroom, p - m.network_total - m.managed_total - m.state_cache_total);
    assert_non_null(m.state);
    weir_state_memory_report_t sr;
    weir_state_memory_report(m.state, &sr);
    assert_int_equal(sr.managed_total, m.managed_total);
    assert_int_equal(sr.cache_total, m.state_cache_total);
    weir_msg_t hb = {.type = WEIR_MSG_HEARTBEAT};
    weir__tm_memory_heartbeat(&m, &hb);
    assert_int_equal(hb.mem_process, p);
    assert_int_equal(hb.mem_network_total, m.network_total);
    assert_int_equal(hb.mem_managed_total, m.managed_total);
    assert_int_equal(hb.mem_state_cache_total, m.state_cache_total);
    assert_int_equal(hb.mem_network_used, 0);
    weir__tm_memory_free(&m);
    assert_null(m.state);
    weir_config_destroy(&c);

    /* network clamped to its minimum: 10 % of 512 MiB is below 64 MiB */
    const char *const small[][2] = {{"taskmanager.memory.process.size", "512mb"}};
    c = cfg_with(small, 1);
    assert_int_equal(weir__tm_memory_init(&m, c, err, sizeof err), 0);
    assert_int_equal(m.network_total, 64 * MIB);
    weir__tm_memory_free(&m);
    weir_config_destroy(&c);
}

static void test_bad_budgets(void **st) {
    (void)st;
    const char *const cases[][3] = {
        {"taskmanager.memory.process.size", "160mb", "leaves no room"},
        {"taskmanager.memory.managed.fraction", "1.5", "taskmanager.memory.managed.fraction"},
        {"taskmanager.memory.network.fraction", "lots", "taskmanager.memory.network.fraction"},
        {"state.backend.rocksdb.memory.write-buffer-ratio", "0",
         "state.backend.rocksdb.memory.write-buffer-ratio"},
        {"taskmanager.memory.network.min", "2gb", "taskmanager.memory.network.min"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *const kv[][2] = {{cases[i][0], cases[i][1]}};
        weir_config_t *c = cfg_with(kv, 1);
        weir_tm_memory_t m;
        char err[512] = "";
        assert_int_equal(weir__tm_memory_init(&m, c, err, sizeof err), WEIR_ECONFIG);
        if (!strstr(err, cases[i][2]) || strchr(err, '\n'))
            fail_msg("%s=%s: '%s' does not name '%s' on one line", cases[i][0], cases[i][1], err,
                     cases[i][2]);
        weir__tm_memory_free(&m);
        weir_config_destroy(&c);
    }
}

/* source (p=2) --hash--> count (p=3) --forward--> sink (p=3) */
static void make_graph(weir_job_t *g, weir_vertex_t v[3], weir_edge_t e[2]) {
    static uint32_t out0[] = {0}, in1[] = {0}, out1[] = {1}, in2[] = {1};
    memset(g, 0, sizeof *g);
    v[0] =
        (weir_vertex_t){.id = 0, .name = "source", .parallelism = 2, .out_edges = out0, .n_out = 1};
    v[1] = (weir_vertex_t){.id = 1,
                           .name = "count",
                           .parallelism = 3,
                           .in_edges = in1,
                           .n_in = 1,
                           .out_edges = out1,
                           .n_out = 1};
    v[2] = (weir_vertex_t){.id = 2, .name = "sink", .parallelism = 3, .in_edges = in2, .n_in = 1};
    e[0] = (weir_edge_t){.id = 0, .source = 0, .target = 1, .part = WEIR_PART_HASH};
    e[1] = (weir_edge_t){.id = 1, .source = 1, .target = 2, .part = WEIR_PART_FORWARD};
    g->vertices = v;
    g->n_vertices = 3;
    g->edges = e;
    g->n_edges = 2;
}

static void test_network_reservation(void **st) {
    (void)st;
    weir_job_t g;
    weir_vertex_t v[3];
    weir_edge_t e[2];
    make_graph(&g, v, e);
    /* 64 MiB of 32 KiB segments: 2048 buffers */
    const char *const kv[][2] = {{"taskmanager.memory.process.size", "512mb"}};
    weir_config_t *c = cfg_with(kv, 1);
    weir_tm_memory_t m;
    char err[512] = "";
    assert_int_equal(weir__tm_memory_init(&m, c, err, sizeof err), 0);
    uint64_t r[3];
    /* source: 3 output channels; count: 2 inputs x 4 credits + 1 output; sink: 1 x 4 */
    assert_int_equal(weir__tm_memory_network_reserve(&m, &g, 0, 4, 32768, &r[0], err, sizeof err),
                     0);
    assert_int_equal(r[0], 3 * 32768);
    assert_int_equal(weir__tm_memory_network_reserve(&m, &g, 1, 4, 32768, &r[1], err, sizeof err),
                     0);
    assert_int_equal(r[1], (2 * 4 + 1) * 32768);
    assert_int_equal(weir__tm_memory_network_reserve(&m, &g, 2, 4, 32768, &r[2], err, sizeof err),
                     0);
    assert_int_equal(r[2], 4 * 32768);
    assert_int_equal(atomic_load(&m.network_used), 16 * 32768);
    /* 2032 buffers left; a subtask with 2 inputs x 1100 credits (2201 buffers) does not fit */
    uint64_t big = 0;
    assert_int_equal(weir__tm_memory_network_reserve(&m, &g, 1, 1100, 32768, &big, err, sizeof err),
                     WEIR_ENOMEM);
    assert_int_equal(big, 0);
    assert_non_null(strstr(err, "insufficient network buffers"));
    assert_non_null(strstr(err, "taskmanager.memory.network.fraction"));
    assert_null(strchr(err, '\n'));
    assert_int_equal(atomic_load(&m.network_used), 16 * 32768);
    for (int i = 0; i < 3; i++)
        weir__tm_memory_network_release(&m, r[i]);
    assert_int_equal(atomic_load(&m.network_used), 0);
    /* with everything released, 2 x 1000 + 1 = 2001 of the 2048 buffers fit */
    assert_int_equal(weir__tm_memory_network_reserve(&m, &g, 1, 1000, 32768, &big, err, sizeof err),
                     0);
    assert_int_equal(big, 2001 * 32768);
    weir__tm_memory_network_release(&m, big);
    weir__tm_memory_free(&m);
    weir_config_destroy(&c);

    /* without a budget: counted, never refused */
    const char *const off[][2] = {{"taskmanager.memory.process.size", "0"}};
    c = cfg_with(off, 1);
    assert_int_equal(weir__tm_memory_init(&m, c, err, sizeof err), 0);
    assert_null(m.state);
    assert_int_equal(
        weir__tm_memory_network_reserve(&m, &g, 1, 100000, 32768, &big, err, sizeof err), 0);
    assert_int_equal(atomic_load(&m.network_used), big);
    weir__tm_memory_network_release(&m, big);
    weir__tm_memory_free(&m);
    weir_config_destroy(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_split),
        cmocka_unit_test(test_bad_budgets),
        cmocka_unit_test(test_network_reservation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
