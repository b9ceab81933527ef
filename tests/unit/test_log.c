/* Tests of the log identities (common/log.c) and the task manager's log ring
 * (taskmanager/logring.c).
 *
 * Identity: with a process identity installed, every line carries its id after the time; a
 * thread that set its task identity adds job (first 8 hex digits), attempt and
 * "task (subtask+1/parallelism)"; another thread does not; lines reach the installed sink whole.
 * Ring: whatever is appended (lines of random lengths, some longer than the ring), the ring never
 * holds more than its capacity, and a tail of at most N bytes is exactly the longest suffix of
 * everything appended that fits in N bytes and starts at a line boundary (the oracle: the test's
 * own copy of the whole log). Concurrent appenders never interleave within a line. The installed
 * process's threshold (log.level) applies unless WEIR_LOG_LEVEL is set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "common/log.h"
#include "taskmanager/logring.h"

/* ---------------------------------------------------------------- identity */

typedef struct capture {
    pthread_mutex_t mu;
    char buf[16384];
    size_t len;
    int lines;
} capture_t;

static void capture_sink(void *arg, const char *line, size_t len) {
    capture_t *c = arg;
    pthread_mutex_lock(&c->mu);
    assert_true(len > 0 && line[len - 1] == '\n');
    assert_null(memchr(line, '\n', len - 1)); /* one whole line per call */
    if (c->len + len < sizeof c->buf) {
        memcpy(c->buf + c->len, line, len);
        c->len += len;
        c->buf[c->len] = '\0';
    }
    c->lines++;
    pthread_mutex_unlock(&c->mu);
}

static void *other_thread(void *arg) {
    (void)arg;
    weir_log(WEIR_LOG_INFO, "other", "from a thread without a task");
    return NULL;
}

static void test_identity(void **state) {
    (void)state;
    unsetenv("WEIR_LOG_LEVEL");
    capture_t c = {.mu = PTHREAD_MUTEX_INITIALIZER};
    weir_log_process_t p = {.id = "tm-1a2b3c4d", .sink = capture_sink, .sink_arg = &c};
    weir_log_install(&p);
    weir_log(WEIR_LOG_INFO, "taskmanager", "plain %d", 1);
    weir_log_set_task("3f2a9c1d00112233445566778899aabb", 2, "Map -> \"Sink\"", 1, 4);
    weir_log(WEIR_LOG_WARN, "task", "with identity");
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, other_thread, NULL), 0);
    pthread_join(th, NULL);
    weir_log_clear_task();
    weir_log(WEIR_LOG_INFO, "taskmanager", "cleared");
    p.level = WEIR_LOG_WARN; /* log.level: warn (WEIR_LOG_LEVEL unset) */
    weir_log(WEIR_LOG_INFO, "taskmanager", "below the threshold");
    setenv("WEIR_LOG_LEVEL", "info", 1); /* the environment wins */
    weir_log(WEIR_LOG_INFO, "taskmanager", "the environment's threshold");
    unsetenv("WEIR_LOG_LEVEL");
    weir_log_install(NULL);
    weir_log(WEIR_LOG_INFO, "taskmanager", "uninstalled: stderr only");

    assert_int_equal(c.lines, 5);
    assert_null(strstr(c.buf, "below the threshold"));
    assert_non_null(strstr(c.buf, "tm-1a2b3c4d taskmanager: the environment's threshold\n"));
    char *l1 = c.buf, *l2 = strchr(l1, '\n') + 1, *l3 = strchr(l2, '\n') + 1,
         *l4 = strchr(l3, '\n') + 1;
    assert_int_equal(strncmp(l1, "INFO 20", 7), 0);
    assert_non_null(strstr(l1, "Z tm-1a2b3c4d taskmanager: plain 1\n"));
    assert_true(strstr(l1, "job=") == NULL || strstr(l1, "job=") > l2);
    assert_int_equal(strncmp(l2, "WARN ", 5), 0);
    assert_non_null(strstr(l2, "Z tm-1a2b3c4d job=3f2a9c1d att=2 task=\"Map -> 'Sink' (2/4)\" "
                               "task: with identity\n"));
    assert_non_null(strstr(l3, "Z tm-1a2b3c4d other: from a thread without a task\n"));
    assert_non_null(strstr(l4, "Z tm-1a2b3c4d taskmanager: cleared\n"));
}

/* ---------------------------------------------------------------- ring */

/* The longest suffix of all[0..n) of at most max bytes that starts at a line boundary. */
static size_t oracle_tail(const char *all, size_t n, size_t max, size_t *from) {
    size_t start = n > max ? n - max : 0;
    while (start > 0 && start < n && all[start - 1] != '\n')
        start++;
    *from = start;
    return n - start;
}

static void test_ring_bounded(void **state) {
    (void)state;
    const size_t caps[] = {1, 7, 64, 1000, 4096};
    unsigned seed = 12345;
    for (size_t ci = 0; ci < sizeof caps / sizeof caps[0]; ci++) {
        size_t cap = caps[ci];
        weir_tm_logring_t *r = weir__tm_logring_new(cap);
        size_t total = 0, allcap = 1 << 20;
        char *all = malloc(allcap);
        for (int i = 0; i < 2000; i++) {
            char line[6000];
            size_t len = (size_t)(rand_r(&seed) % (i % 97 == 0 ? 5000 : 120));
            for (size_t k = 0; k < len; k++)
                line[k] = (char)('a' + (i + k) % 26);
            line[len++] = '\n';
            weir__tm_logring_append(r, line, len);
            assert_true(total + len <= allcap);
            memcpy(all + total, line, len);
            total += len;
            assert_true(weir__tm_logring_used(r) <= cap);
            if (i % 50 == 0 || i == 1999) {
                const size_t maxes[] = {0, 1, 10, cap / 2, cap, cap * 2};
                for (size_t mi = 0; mi < sizeof maxes / sizeof maxes[0]; mi++) {
                    uint8_t *out = NULL;
                    size_t n = weir__tm_logring_tail(r, maxes[mi], &out);
                    size_t limit = maxes[mi] < cap ? maxes[mi] : cap;
                    size_t from;
                    size_t want = oracle_tail(all, total, limit, &from);
                    assert_int_equal(n, want);
                    if (n)
                        assert_memory_equal(out, all + from, n);
                    else
                        assert_null(out);
                    free(out);
                }
            }
        }
        free(all);
        weir__tm_logring_destroy(&r);
        assert_null(r);
    }
}

typedef struct writer {
    weir_tm_logring_t *r;
    char c;
} writer_t;

static void *writer_main(void *arg) {
    writer_t *w = arg;
    char line[101];
    memset(line, w->c, 100);
    line[100] = '\n';
    for (int i = 0; i < 5000; i++)
        weir__tm_logring_append(w->r, line, sizeof line);
    return NULL;
}

static void test_ring_concurrent(void **state) {
    (void)state;
    weir_tm_logring_t *r = weir__tm_logring_new(64 * 1024);
    writer_t w[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (writer_t){r, (char)('A' + i)};
        assert_int_equal(pthread_create(&th[i], NULL, writer_main, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    uint8_t *out = NULL;
    size_t n = weir__tm_logring_tail(r, 1 << 20, &out);
    assert_true(n > 0 && n <= 64 * 1024 && n % 101 == 0);
    for (size_t at = 0; at < n; at += 101) {
        for (size_t k = 1; k < 100; k++)
            assert_int_equal(out[at + k], out[at]); /* one writer's whole line */
        assert_int_equal(out[at + 100], '\n');
    }
    free(out);
    weir__tm_logring_destroy(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity),
        cmocka_unit_test(test_ring_bounded),
        cmocka_unit_test(test_ring_concurrent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
