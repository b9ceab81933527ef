/* The savepoint-restore benchmark of keyed state (bench/run.sh state-restore): ~1 GB of value
 * state (STATE_KEYS keys, default 10,000,000, x 100 hardly compressible bytes) written at
 * parallelism 2 into two backends (max parallelism 128, in RocksDB key order like a bulk load),
 * a self-contained savepoint of both (take + upload WEIR_UPLOAD_SELF_CONTAINED into
 * SAVEPOINT_DIR, default beside the state: same filesystem, so SST files are hard-linked; put it
 * on another filesystem to measure copies), then RUNS restores (default 3) per case: 2 -> 2 (the
 * fast path), 2 -> 3 and 2 -> 1 (whole source + clipping, other sources merged by SstFileWriter +
 * IngestExternalFile). Every new subtask of a case is restored one after the other (as on one
 * task manager slot each; seconds = their sum, max_subtask_seconds = the slowest one) and then
 * checked on sampled keys (outside the timing). CPU seconds count every thread of the process
 * (RocksDB's background flushes and compactions included). settle_seconds: after the restore
 * returned, until RocksDB had no flush or compaction pending (the backend is usable before).
 * Prints one RESULT line per run and a <name>-median line per case:
 *   RESULT name=state-restore-<case> events=<keys> seconds=... cpu_seconds=... bytes=<savepoint>
 * Usage: state_restore WORK_DIR (removed at the end). Owns nothing else; single-threaded. */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/util.h"
#include "runtime/graph/keygroup.h"
#include "state/snapshot.h"
#include "../tests/unit/snapshot_io.h"
#include "state/state.h"
#include "state/state_int.h"

#define MAX_PAR 128u
#define OLD_P 2u
#define VAL_LEN 100u
#define SAMPLES 20000u

static const weir_state_decl_t DECL = {.name = "count", .kind = WEIR_STATE_VALUE};

static void die(const char *what, const char *err) {
    fprintf(stderr, "state_restore: %s: %s\n", what, err);
    exit(1);
}

static double now_s(void) {
    return (double)weir_now_ns() / 1e9;
}

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int key_of(uint32_t i, char *buf) {
    return snprintf(buf, 16, "k%09" PRIu32, i);
}

/* 100 bytes, a pure function of the key index (splitmix64). */
static void value_of(uint32_t i, uint8_t *out) {
    uint64_t x = (uint64_t)i * 0x9E3779B97F4A7C15ULL + 1;
    for (unsigned w = 0; w < (VAL_LEN + 7) / 8; w++) {
        x += 0x9E3779B97F4A7C15ULL;
        uint64_t z = x;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        z ^= z >> 31;
        memcpy(out + 8 * w, &z, w * 8 + 8 <= VAL_LEN ? 8 : VAL_LEN - w * 8);
    }
}

static weir_state_opts_t opts_for(const char *path) {
    return (weir_state_opts_t){.path = path,
                               .max_parallelism = MAX_PAR,
                               .cache_bytes = 64u << 20,
                               .write_buffer_bytes = 64u << 20,
                               .block_cache_bytes = 32u << 20};
}

static void settle(weir_state_backend_t *sb) {
    while (!weir_state_int_idle(sb))
        usleep(20000);
}

typedef struct run {
    double seconds, cpu, max_sub, settle;
} run_t;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Restores every new subtask of @p new_p from the savepoint and checks sampled keys. */
static run_t restore_case(const char *work, const char *sp, char *const *handles, uint32_t new_p,
                          uint32_t n_keys, const uint32_t *kg) {
    run_t r = {0};
    for (uint32_t k = 0; k < new_p; k++) {
        uint32_t first, last;
        weir_keygroup_range(k, new_p, MAX_PAR, &first, &last);
        json_t *srcs = json_array();
        for (uint32_t i = 0; i < OLD_P; i++) {
            uint32_t a, b;
            weir_keygroup_range(i, OLD_P, MAX_PAR, &a, &b);
            if (b < first || a > last)
                continue;
            json_error_t je;
            json_array_append_new(srcs, json_pack("{s:[i,i], s:o}", "range", (int)a, (int)b,
                                                  "handle", json_loads(handles[i], 0, &je)));
        }
        json_t *doc =
            json_pack("{s:s, s:b, s:i, s:[i,i], s:o}", "base", sp, "claim", 0, "max_parallelism",
                      (int)MAX_PAR, "range", (int)first, (int)last, "sources", srcs);
        char *text = json_dumps(doc, JSON_COMPACT);
        json_decref(doc);
        char path[4096], err[1024];
        snprintf(path, sizeof(path), "%s/new-%u", work, k);
        weir_state_opts_t o = opts_for(path);
        double t0 = now_s(), c0 = cpu_s();
        weir_state_backend_t *sb = restore_doc_plan(&o, &DECL, 1, text, err, sizeof(err));
        if (!sb)
            die("restore", err);
        double dt = now_s() - t0;
        double t1 = now_s();
        settle(sb);
        r.settle += now_s() - t1;
        r.cpu += cpu_s() - c0;
        r.seconds += dt;
        if (dt > r.max_sub)
            r.max_sub = dt;
        /* sampled keys: in the range the value, outside absent */
        uint64_t x = 0x2545F4914F6CDD1DULL + k;
        for (uint32_t s = 0; s < SAMPLES; s++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            uint32_t i = (uint32_t)(x % n_keys);
            char key[16];
            uint8_t want[VAL_LEN];
            int kl = key_of(i, key);
            weir_state_set_key(sb, key, (uint32_t)kl);
            const void *v;
            uint32_t len;
            int rc = weir_state_value_get(sb, 0, &v, &len);
            bool mine = kg[i] >= first && kg[i] <= last;
            value_of(i, want);
            if (mine ? rc != 0 || len != VAL_LEN || memcmp(v, want, VAL_LEN) != 0 : rc != 1)
                die("check", mine ? "a key of the range has the wrong value"
                                  : "a key outside the range is present");
        }
        weir_state_close(&sb, true);
        free(text);
    }
    return r;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: state_restore WORK_DIR\n");
        return 2;
    }
    const char *work = argv[1];
    uint32_t n_keys =
        getenv("STATE_KEYS") ? (uint32_t)strtoul(getenv("STATE_KEYS"), NULL, 10) : 10000000u;
    int runs = getenv("RUNS") ? atoi(getenv("RUNS")) : 3;
    if (n_keys == 0 || runs <= 0)
        die("arguments", "STATE_KEYS and RUNS must be positive");
    char sp[4096];
    if (getenv("SAVEPOINT_DIR"))
        snprintf(sp, sizeof(sp), "%s/savepoint-bench-%d", getenv("SAVEPOINT_DIR"), (int)getpid());
    else
        snprintf(sp, sizeof(sp), "%s/savepoint", work);
    if (weir_rmtree(work) != 0 || weir_mkdirs(work) != 0 || weir_rmtree(sp) != 0)
        die("work directory", work);

    /* the old job: 2 subtasks, each key written into the one owning its key group, in RocksDB
     * key order (counting sort by key group; within a group by index = by key bytes) */
    uint32_t *kg = malloc((size_t)n_keys * sizeof(*kg));
    uint32_t *order = malloc((size_t)n_keys * sizeof(*order));
    uint32_t cnt[MAX_PAR + 1] = {0};
    if (!kg || !order)
        die("memory", "key arrays");
    for (uint32_t i = 0; i < n_keys; i++) {
        char k[16];
        int kl = key_of(i, k);
        kg[i] = weir_keygroup_of(k, (size_t)kl, MAX_PAR);
        cnt[kg[i] + 1]++;
    }
    for (uint32_t g = 0; g < MAX_PAR; g++)
        cnt[g + 1] += cnt[g];
    for (uint32_t i = 0; i < n_keys; i++)
        order[cnt[kg[i]]++] = i;
    weir_state_backend_t *old[OLD_P];
    char err[1024];
    double t0 = now_s();
    for (uint32_t s = 0; s < OLD_P; s++) {
        char p[4096];
        snprintf(p, sizeof(p), "%s/old-%u", work, s);
        weir_state_opts_t o = opts_for(p);
        if (!(old[s] = weir_state_open(&o, &DECL, 1, err, sizeof(err))))
            die("open", err);
    }
    for (uint32_t n = 0; n < n_keys; n++) {
        uint32_t i = order[n];
        char k[16];
        uint8_t v[VAL_LEN];
        int kl = key_of(i, k);
        value_of(i, v);
        weir_state_backend_t *sb = old[weir_keygroup_subtask(kg[i], OLD_P, MAX_PAR)];
        weir_state_set_key(sb, k, (uint32_t)kl);
        if (weir_state_value_put(sb, 0, v, VAL_LEN) != 0)
            die("put", "failed");
    }
    free(order);
    for (uint32_t s = 0; s < OLD_P; s++)
        settle(old[s]);
    fprintf(stderr, "state_restore: wrote %u keys x %u bytes in %.1f s\n", n_keys, VAL_LEN,
            now_s() - t0);

    /* the savepoint (both subtasks one after the other, as the uploader threads would) */
    char *handles[OLD_P];
    uint64_t bytes = 0;
    t0 = now_s();
    double c0 = cpu_s();
    for (uint32_t s = 0; s < OLD_P; s++) {
        char task[16];
        snprintf(task, sizeof(task), "1-%u", s);
        weir_state_snapshot_t *snap = weir_state_snapshot_take(old[s], 1, err, sizeof(err));
        if (!snap)
            die("take", err);
        uint64_t ss = 0;
        if (upload_to(snap, sp, task, WEIR_UPLOAD_SELF_CONTAINED, &handles[s], &ss, NULL, err,
                      sizeof(err)) != 0)
            die("upload", err);
        weir_state_snapshot_free(&snap);
        bytes += ss;
    }
    printf("RESULT name=state-restore-savepoint-write events=%u seconds=%.3f cpu_seconds=%.3f "
           "bytes=%" PRIu64 "\n",
           n_keys, now_s() - t0, cpu_s() - c0, bytes);
    fflush(stdout);
    for (uint32_t s = 0; s < OLD_P; s++)
        weir_state_close(&old[s], true);

    static const uint32_t new_ps[] = {2, 3, 1};
    for (size_t c = 0; c < sizeof(new_ps) / sizeof(new_ps[0]); c++) {
        double sec[64], cpu[64], mx[64], st[64];
        int n = runs < 64 ? runs : 64;
        for (int r = 0; r < n; r++) {
            run_t x = restore_case(work, sp, handles, new_ps[c], n_keys, kg);
            sec[r] = x.seconds;
            cpu[r] = x.cpu;
            mx[r] = x.max_sub;
            st[r] = x.settle;
            printf("RESULT name=state-restore-2to%u events=%u seconds=%.3f cpu_seconds=%.3f "
                   "bytes=%" PRIu64 " max_subtask_seconds=%.3f settle_seconds=%.3f\n",
                   new_ps[c], n_keys, x.seconds, x.cpu, bytes, x.max_sub, x.settle);
            fflush(stdout);
        }
        printf("RESULT name=state-restore-2to%u-median events=%u seconds=%.3f cpu_seconds=%.3f "
               "bytes=%" PRIu64 " max_subtask_seconds=%.3f settle_seconds=%.3f\n",
               new_ps[c], n_keys, median(sec, n), median(cpu, n), bytes, median(mx, n),
               median(st, n));
        fflush(stdout);
    }
    for (uint32_t s = 0; s < OLD_P; s++)
        free(handles[s]);
    free(kg);
    weir_rmtree(sp);
    weir_rmtree(work);
    return 0;
}
