/* Unit tests of the connectors' pure helpers (connectors/common/pacing.h and valuefmt.h,
 * connectors/datagen/datagen.h, connectors/file/file.h): file listing and split line reading, the
 * part-file writer, value formatting, datagen values and indices, the rate schedule, the
 * exactly-once file sink (two-phase commit on a real directory, with simulated kill -9 and
 * restore) and source positions (save and resume). Oracles are independent: line lists the test
 * itself generated, known SplitMix64 vectors, brute-force index coverage, hand-computed
 * schedules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/util.h"
#include "connectors/common/pacing.h"
#include "connectors/common/valuefmt.h"
#include "connectors/datagen/datagen.h"
#include "connectors/file/file.h"
#include "testutil.h"

/* ---- fixtures ------------------------------------------------------------------------- */

static char *g_tmp;

static int setup_tmp(void **state) {
    (void)state;
    g_tmp = weir_test_tmpdir("test_connectors");
    return 0;
}

static int teardown_tmp(void **state) {
    (void)state;
    weir_test_tmpdir_remove(g_tmp);
    g_tmp = NULL;
    return 0;
}

static void write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (len)
        assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static char *read_all(const char *path, size_t *len) {
    uint8_t *data;
    assert_int_equal(weir_read_file(path, &data, len), 0);
    return (char *)data;
}

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* Test PRNG (xorshift64*), independent of the code under test. */
static uint64_t rnd(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

/* A list of lines collected from readers. */
typedef struct lines {
    char **v;
    size_t n, cap;
} lines_t;

static void lines_add(lines_t *l, const char *s, size_t len) {
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = realloc(l->v, l->cap * sizeof(*l->v));
        assert_non_null(l->v);
    }
    char *c = malloc(len + 1);
    assert_non_null(c);
    memcpy(c, s, len);
    c[len] = 0;
    l->v[l->n++] = c;
}

static void lines_free(lines_t *l) {
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

/* Reads all splits of @p path for parallelism @p p, in subtask order, into @p out. */
static void read_splits(const char *path, uint32_t p, size_t bufsize, lines_t *out) {
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    for (uint32_t i = 0; i < p; i++) {
        uint64_t start, end;
        weir__split_range((uint64_t)st.st_size, i, p, &start, &end);
        weir_line_reader_t r;
        assert_int_equal(weir__line_reader_open(&r, path, start, end, bufsize), 0);
        const char *line;
        size_t len;
        int rc;
        while ((rc = weir__line_reader_next(&r, &line, &len)) == 1)
            lines_add(out, line, len);
        assert_int_equal(rc, 0);
        weir__line_reader_close(&r);
    }
}

static void assert_lines(const lines_t *got, const char *const *want, size_t n) {
    assert_int_equal(got->n, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(got->v[i], want[i]);
}

/* ---- split ranges and line reading ----------------------------------------------------- */

static void test_split_range(void **state) {
    (void)state;
    uint64_t s, e, prev_end = 0;
    for (uint32_t i = 0; i < 3; i++) {
        weir__split_range(10, i, 3, &s, &e);
        assert_int_equal(s, prev_end);
        prev_end = e;
    }
    assert_int_equal(prev_end, 10);
    weir__split_range(10, 1, 3, &s, &e);
    assert_int_equal(s, 3); /* 10*1/3 */
    assert_int_equal(e, 6); /* 10*2/3 */
}

static void test_random_files_every_line_once(void **state) {
    (void)state;
    uint64_t seed = 0x1234567;
    char path[4200];
    snprintf(path, sizeof(path), "%s/random.txt", g_tmp);
    for (int round = 0; round < 30; round++) {
        size_t nlines = rnd(&seed) % 60;
        bool trailing_nl = rnd(&seed) % 2;
        lines_t want = {0};
        size_t cap = 1 << 16, len = 0;
        char *content = malloc(cap);
        assert_non_null(content);
        for (size_t i = 0; i < nlines; i++) {
            size_t ll = (rnd(&seed) % 4 == 0) ? 0 : rnd(&seed) % 120;
            if (round % 7 == 6)
                ll = rnd(&seed) % 3000; /* long lines: force buffer growth */
            char buf[3000];
            for (size_t k = 0; k < ll; k++) {
                char c = (char)(' ' + rnd(&seed) % 95); /* printable, no '\n' or '\r' */
                buf[k] = c;
            }
            while (len + ll + 2 > cap) {
                cap *= 2;
                content = realloc(content, cap);
                assert_non_null(content);
            }
            memcpy(content + len, buf, ll);
            len += ll;
            bool last = i + 1 == nlines;
            if (!last || trailing_nl)
                content[len++] = '\n';
            /* A final empty line without '\n' is not a line. */
            if (!(last && !trailing_nl && ll == 0))
                lines_add(&want, buf, ll);
        }
        write_file(path, content, len);
        for (uint32_t p = 1; p <= 5; p++) {
            size_t bufs[] = {16, 1 << 20};
            for (int b = 0; b < 2; b++) {
                lines_t got = {0};
                read_splits(path, p, bufs[b], &got);
                assert_lines(&got, (const char *const *)want.v, want.n);
                lines_free(&got);
            }
        }
        lines_free(&want);
        free(content);
    }
}

static void test_crlf(void **state) {
    (void)state;
    char path[4200];
    snprintf(path, sizeof(path), "%s/crlf.txt", g_tmp);
    const char text[] = "alpha\r\nbeta\r\n\r\ngam\rma\r\n";
    write_file(path, text, sizeof(text) - 1);
    const char *want[] = {"alpha", "beta", "", "gam\rma"};
    for (uint32_t p = 1; p <= 5; p++) {
        lines_t got = {0};
        read_splits(path, p, 64, &got);
        assert_lines(&got, want, 4);
        lines_free(&got);
    }
}

static void test_no_trailing_newline(void **state) {
    (void)state;
    char path[4200];
    snprintf(path, sizeof(path), "%s/nonl.txt", g_tmp);
    write_file(path, "one\ntwo\nthree", 13);
    const char *want[] = {"one", "two", "three"};
    for (uint32_t p = 1; p <= 5; p++) {
        lines_t got = {0};
        read_splits(path, p, 1 << 20, &got);
        assert_lines(&got, want, 3);
        lines_free(&got);
    }
}

static void test_empty_file(void **state) {
    (void)state;
    char path[4200];
    snprintf(path, sizeof(path), "%s/empty.txt", g_tmp);
    write_file(path, "", 0);
    for (uint32_t p = 1; p <= 5; p++) {
        lines_t got = {0};
        read_splits(path, p, 1 << 20, &got);
        assert_int_equal(got.n, 0);
        lines_free(&got);
    }
    /* A file with only a newline has one empty line. */
    write_file(path, "\n", 1);
    const char *want[] = {""};
    for (uint32_t p = 1; p <= 3; p++) {
        lines_t got = {0};
        read_splits(path, p, 1 << 20, &got);
        assert_lines(&got, want, 1);
        lines_free(&got);
    }
}

static void test_directory_listing(void **state) {
    (void)state;
    char dir[4200], p[4300];
    snprintf(dir, sizeof(dir), "%s/in", g_tmp);
    assert_int_equal(weir_mkdirs(dir), 0);
    snprintf(p, sizeof(p), "%s/b.txt", dir);
    write_file(p, "b1\nb2\n", 6);
    snprintf(p, sizeof(p), "%s/a.txt", dir);
    write_file(p, "a1\n", 3);
    snprintf(p, sizeof(p), "%s/c.txt", dir);
    write_file(p, "c1\nc2\nc3", 8);
    snprintf(p, sizeof(p), "%s/.hidden", dir);
    write_file(p, "h\n", 2);
    snprintf(p, sizeof(p), "%s/sub", dir);
    assert_int_equal(weir_mkdirs(p), 0);
    snprintf(p, sizeof(p), "%s/sub/z.txt", dir);
    write_file(p, "z\n", 2);

    char **files;
    size_t n;
    char err[256];
    assert_int_equal(weir__file_list(dir, &files, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 3);
    const char *names[] = {"a.txt", "b.txt", "c.txt"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
        assert_string_equal(files[i], p);
    }
    /* Every line of every file, once, for several parallelisms. */
    const char *want[] = {"a1", "b1", "b2", "c1", "c2", "c3"};
    for (uint32_t par = 1; par <= 4; par++) {
        lines_t got = {0};
        for (size_t i = 0; i < n; i++)
            read_splits(files[i], par, 1 << 20, &got);
        assert_lines(&got, want, 6);
        lines_free(&got);
    }
    weir__file_list_free(files, n);

    /* A single file lists as itself. */
    snprintf(p, sizeof(p), "%s/a.txt", dir);
    assert_int_equal(weir__file_list(p, &files, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 1);
    assert_string_equal(files[0], p);
    weir__file_list_free(files, n);

    /* A missing path is an error naming the cause. */
    snprintf(p, sizeof(p), "%s/missing", g_tmp);
    assert_int_equal(weir__file_list(p, &files, &n, err, sizeof(err)), WEIR_ENOTFOUND);
    assert_non_null(strstr(err, "No such file"));
    weir_line_reader_t r;
    assert_int_equal(weir__line_reader_open(&r, p, 0, 10, 64), WEIR_ENOTFOUND);
}

/* ---- part-file writer ------------------------------------------------------------------ */

/* A test identity: uuid @p uuid (short, for readable names), subtask, attempt. */
static weir_part_id_t pid(const char *uuid, uint32_t subtask, uint32_t attempt) {
    weir_part_id_t id = {.subtask = subtask, .attempt = attempt};
    snprintf(id.uuid, sizeof(id.uuid), "%s", uuid);
    return id;
}

/* The uuid of a sink: expected values computed independently with Python's hashlib
 * (sha256("weir-file-sink:<job>:node:4") etc., version/variant bits set, 8-4-4-4-12). */
static void test_part_sink_uuid(void **state) {
    (void)state;
    char u[37];
    const char *job = "0123456789abcdef0123456789abcdef";
    weir__part_sink_uuid(job, NULL, 4, u);
    assert_string_equal(u, "9ae2cede-e560-8b15-95bb-aca642f36acc");
    weir__part_sink_uuid(job, NULL, 5, u); /* a second sink of the same job */
    assert_string_equal(u, "2bf32bb9-1e58-81ae-a56d-c42aaa64f8cf");
    weir__part_sink_uuid(job, "sink-a", 4, u); /* the uid wins over the node id */
    assert_string_equal(u, "9fb4bf04-8e68-848c-aec9-802bda8b470b");
    weir__part_sink_uuid("fedcba9876543210fedcba9876543210", NULL, 4, u); /* a resubmission */
    assert_string_equal(u, "0593bd80-5506-84fe-a717-6b5f18e926fd");
    char pending[128], final[128];
    weir_part_id_t id = pid(u, 3, 7);
    weir__part_names(&id, 12, pending, final, sizeof(pending));
    assert_string_equal(pending, ".part-0593bd80-5506-84fe-a717-6b5f18e926fd-3-12.a7.pending");
    assert_string_equal(final, "part-0593bd80-5506-84fe-a717-6b5f18e926fd-3-12");
}

static void test_part_writer(void **state) {
    (void)state;
    char dir[4200], inprog[4300], final[4300];
    snprintf(dir, sizeof(dir), "%s/out/nested", g_tmp);
    weir_part_writer_t w;
    char err[256];
    weir_part_id_t id = pid("ua", 3, 1);
    assert_int_equal(weir__part_writer_init(&w, dir, &id, WEIR_PART_ROLL_BYTES, err, sizeof(err)),
                     0);
    snprintf(inprog, sizeof(inprog), "%s/.part-ua-3-0.a1.inprogress", dir);
    snprintf(final, sizeof(final), "%s/part-ua-3-0", dir);
    assert_false(exists(inprog)); /* opened lazily */
    assert_int_equal(weir__part_writer_line(&w, "hello world", 11), 0);
    assert_int_equal(weir__part_writer_line(&w, "", 0), 0);
    assert_int_equal(weir__part_writer_line(&w, "x", 1), 0);
    assert_true(exists(inprog));
    assert_false(exists(final));
    assert_int_equal(weir__part_writer_finish(&w), 0);
    assert_false(exists(inprog));
    assert_true(exists(final));
    size_t len;
    char *data = read_all(final, &len);
    assert_int_equal(len, 15);
    assert_memory_equal(data, "hello world\n\nx\n", 15);
    free(data);
    /* The next line starts part 1. */
    assert_int_equal(weir__part_writer_line(&w, "again", 5), 0);
    snprintf(inprog, sizeof(inprog), "%s/.part-ua-3-1.a1.inprogress", dir);
    assert_true(exists(inprog));
    /* Cancel: the in-progress file disappears, finished ones stay. */
    weir__part_writer_destroy(&w);
    assert_false(exists(inprog));
    assert_true(exists(final));
    snprintf(final, sizeof(final), "%s/part-ua-3-1", dir);
    assert_false(exists(final));
}

static void test_part_writer_roll(void **state) {
    (void)state;
    char dir[4200], p[4300];
    snprintf(dir, sizeof(dir), "%s/roll", g_tmp);
    weir_part_writer_t w;
    char err[256];
    weir_part_id_t id = pid("ua", 0, 1);
    assert_int_equal(weir__part_writer_init(&w, dir, &id, 10, err, sizeof(err)), 0);
    /* 4-byte lines + '\n' = 5 bytes: a file rolls once it holds more than 10 bytes (3 lines). */
    for (int i = 0; i < 7; i++) {
        char line[8];
        snprintf(line, sizeof(line), "L%03d", i);
        assert_int_equal(weir__part_writer_line(&w, line, 4), 0);
    }
    assert_int_equal(weir__part_writer_finish(&w), 0);
    const char *want[] = {"L000\nL001\nL002\n", "L003\nL004\nL005\n", "L006\n"};
    for (int n = 0; n < 3; n++) {
        snprintf(p, sizeof(p), "%s/part-ua-0-%d", dir, n);
        size_t len;
        char *data = read_all(p, &len);
        assert_int_equal(len, strlen(want[n]));
        assert_memory_equal(data, want[n], len);
        free(data);
    }
    snprintf(p, sizeof(p), "%s/part-ua-0-3", dir);
    assert_false(exists(p));
    weir__part_writer_destroy(&w);
}

static void test_part_writer_bad_dir(void **state) {
    (void)state;
    char file[4200], dir[4300];
    snprintf(file, sizeof(file), "%s/plainfile", g_tmp);
    write_file(file, "x", 1);
    snprintf(dir, sizeof(dir), "%s/sub", file); /* below a regular file: cannot exist */
    weir_part_writer_t w;
    char err[512] = "";
    weir_part_id_t id = pid("ua", 0, 1);
    assert_int_equal(weir__part_writer_init(&w, dir, &id, 100, err, sizeof(err)), WEIR_EIO);
    assert_non_null(strstr(err, dir));
    /* A uuid that could break names (empty, a '/', a '.', upper case) is refused. */
    snprintf(dir, sizeof(dir), "%s/ok", g_tmp);
    const char *bad[] = {"", "a/b", "a.b", "AB"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        id = pid(bad[i], 0, 1);
        err[0] = 0;
        assert_int_equal(weir__part_writer_init(&w, dir, &id, 100, err, sizeof(err)), WEIR_EINVAL);
        assert_non_null(strstr(err, "bad file sink id"));
    }
}

/* ---- exactly-once file sink (two-phase commit on a real directory) ---------------------- */

/* Names in @p dir, sorted, joined by ' ' (independent of the code under test). */
static void dir_names(const char *dir, char *out, size_t cap) {
    char **files = NULL;
    size_t n = 0, cnt = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        files = realloc(files, (n + 1) * sizeof(*files));
        assert_non_null(files);
        files[n++] = strdup(de->d_name);
    }
    closedir(d);
    for (size_t i = 0; i < n; i++) /* insertion sort */
        for (size_t j = i; j > 0 && strcmp(files[j - 1], files[j]) > 0; j--) {
            char *t = files[j];
            files[j] = files[j - 1];
            files[j - 1] = t;
        }
    out[0] = 0;
    for (size_t i = 0; i < n; i++) {
        cnt += (size_t)snprintf(out + cnt, cap - cnt, "%s%s", i ? " " : "", files[i]);
        free(files[i]);
    }
    free(files);
}

/* Every name of @p dir with its content ("name=content;" sorted by name), so a test can check
 * that nothing in a directory changed, appeared or vanished. */
static void dir_dump(const char *dir, char *out, size_t cap) {
    char names[8192];
    dir_names(dir, names, sizeof(names));
    size_t cnt = 0;
    out[0] = 0;
    for (char *save = NULL, *n = strtok_r(names, " ", &save); n; n = strtok_r(NULL, " ", &save)) {
        char p[4400];
        snprintf(p, sizeof(p), "%s/%s", dir, n);
        size_t len;
        char *data = read_all(p, &len);
        cnt += (size_t)snprintf(out + cnt, cap - cnt, "%s=%.*s;", n, (int)len, data);
        free(data);
        assert_true(cnt < cap);
    }
}

static void assert_file(const char *dir, const char *name, const char *content) {
    char p[4400];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    size_t len;
    char *data = read_all(p, &len);
    assert_int_equal(len, strlen(content));
    assert_memory_equal(data, content, len);
    free(data);
}

typedef struct packed {
    msgpack_sbuffer sb;
    msgpack_unpacked u;
} packed_t;

static void fsink_snap(weir_file_2pc_t *s, uint64_t id, packed_t *p) {
    msgpack_sbuffer_init(&p->sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &p->sb, msgpack_sbuffer_write);
    assert_int_equal(weir__fsink_snapshot(s, id, &pk), 0);
    msgpack_unpacked_init(&p->u);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&p->u, p->sb.data, p->sb.size, &off),
                     MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, p->sb.size);
}

static void packed_free(packed_t *p) {
    msgpack_unpacked_destroy(&p->u);
    msgpack_sbuffer_destroy(&p->sb);
}

/* kill -9 of the sink: close the file descriptor (the process's files would be closed by the
 * kernel) but run none of the sink's cleanup. */
static void fsink_crash(weir_file_2pc_t *s) {
    if (s->w.f)
        fclose(s->w.f);
    s->w.f = NULL;
    for (size_t i = 0; i < s->tp.n_pending; i++)
        free(s->tp.pending[i].handle);
    free(s->tp.pending);
    free(s->w.iobuf);
    free(s->w.dir);
    free(s->real_dir);
    memset(s, 0, sizeof(*s));
}

static void count_hook(void *arg) {
    (*(int *)arg)++;
}

static void line(weir_file_2pc_t *s, const char *text) {
    assert_int_equal(weir__fsink_line(s, text, strlen(text)), 0);
}

/* weir__fsink_init of sink "ua" for a subtask and attempt. */
static void fsink_start(weir_file_2pc_t *s, const char *dir, uint32_t subtask, uint32_t attempt,
                        uint64_t roll) {
    char err[256];
    weir_part_id_t id = pid("ua", subtask, attempt);
    assert_int_equal(weir__fsink_init(s, dir, &id, roll, err, sizeof(err)), 0);
}

static void test_file_sink_2pc_crash_restore(void **state) {
    (void)state;
    char dir[4200], names[4096];
    snprintf(dir, sizeof(dir), "%s/out2pc", g_tmp);
    weir_file_2pc_t s;
    int renames = 0;
    fsink_start(&s, dir, 2, 1, WEIR_PART_ROLL_BYTES);
    assert_int_equal(weir__fsink_start_fresh(&s), 0);
    s.after_rename = count_hook;
    s.hook_arg = &renames;
    line(&s, "a1");
    line(&s, "a2");
    dir_names(dir, names, sizeof(names));
    assert_string_equal(names, ".fence-ua-2.a1 .part-ua-2-0.a1.inprogress");
    packed_t s1, s2;
    fsink_snap(&s, 1, &s1);
    dir_names(dir, names, sizeof(names));
    assert_string_equal(names, ".fence-ua-2.a1 .part-ua-2-0.a1.pending");
    line(&s, "b1");
    fsink_snap(&s, 2, &s2);
    assert_int_equal(weir__fsink_notify(&s, 1, false), 0);
    assert_int_equal(renames, 1);
    dir_names(dir, names, sizeof(names));
    assert_string_equal(names, ".fence-ua-2.a1 .part-ua-2-1.a1.pending part-ua-2-0"); /* epoch 1 */
    assert_file(dir, "part-ua-2-0", "a1\na2\n");
    line(&s, "c1"); /* epoch 3, in progress */
    fsink_crash(&s);
    dir_names(dir, names, sizeof(names));
    assert_string_equal(names, ".fence-ua-2.a1 .part-ua-2-1.a1.pending .part-ua-2-2.a1.inprogress "
                               "part-ua-2-0");

    /* Restart (attempt 2) from checkpoint 2 (complete; its notify was lost in the crash). */
    fsink_start(&s, dir, 2, 2, WEIR_PART_ROLL_BYTES);
    assert_int_equal(weir__fsink_restore(&s, 2, &s2.u.data), 0);
    dir_names(dir, names, sizeof(names));
    assert_string_equal(names, ".fence-ua-2.a2 part-ua-2-0 part-ua-2-1"); /* epoch 3 deleted */
    assert_file(dir, "part-ua-2-0", "a1\na2\n");
    assert_file(dir, "part-ua-2-1", "b1\n");
    /* Numbering continues after the restored state: the replayed epoch 3 is part 2. */
    s.after_rename = count_hook;
    s.hook_arg = &renames;
    renames = 0;
    line(&s, "c1");
    line(&s, "c2");
    packed_t s3;
    fsink_snap(&s, 3, &s3);
    assert_int_equal(weir__fsink_notify(&s, 3, false), 0);
    assert_int_equal(weir__fsink_notify(&s, 3, false), 0); /* twice: idempotent */
    assert_int_equal(renames, 1);
    dir_names(dir, names, sizeof(names));
    assert_string_equal(names, ".fence-ua-2.a2 part-ua-2-0 part-ua-2-1 part-ua-2-2");
    assert_file(dir, "part-ua-2-2", "c1\nc2\n");
    /* Restoring checkpoint 3 again (attempt 3, after a second crash after the commit) changes
     * nothing but the fence. */
    assert_int_equal(weir__fsink_close(&s), 0);
    fsink_start(&s, dir, 2, 3, WEIR_PART_ROLL_BYTES);
    assert_int_equal(weir__fsink_restore(&s, 3, &s3.u.data), 0);
    dir_names(dir, names, sizeof(names));
    assert_string_equal(names, ".fence-ua-2.a3 part-ua-2-0 part-ua-2-1 part-ua-2-2");
    assert_file(dir, "part-ua-2-2", "c1\nc2\n");
    assert_int_equal(weir__fsink_close(&s), 0);
    packed_free(&s1);
    packed_free(&s2);
    packed_free(&s3);
}

static void test_file_sink_restore_older_checkpoint(void **state) {
    (void)state;
    char dir[4200], names[4096];
    snprintf(dir, sizeof(dir), "%s/older", g_tmp);
    weir_file_2pc_t s;
    fsink_start(&s, dir, 0, 1, WEIR_PART_ROLL_BYTES);
    line(&s, "x");
    packed_t s1, s2;
    fsink_snap(&s, 1, &s1);
    line(&s, "y");
    fsink_snap(&s, 2, &s2); /* never completes */
    fsink_crash(&s);
    fsink_start(&s, dir, 0, 2, WEIR_PART_ROLL_BYTES);
    assert_int_equal(weir__fsink_restore(&s, 1, &s1.u.data), 0);
    dir_names(dir, names, sizeof(names));
    assert_string_equal(names, ".fence-ua-0.a2 part-ua-0-0"); /* epoch 2's pending file is gone */
    line(&s, "y");                                            /* the replay rewrites part 1 */
    assert_int_equal(weir__fsink_end_input(&s), 0);
    packed_t fin;
    fsink_snap(&s, 0, &fin);
    assert_int_equal(weir__fsink_notify(&s, 2, false), 0); /* late periodic: not the final */
    dir_names(dir, names, sizeof(names));
    assert_string_equal(names, ".fence-ua-0.a2 .part-ua-0-1.a2.pending part-ua-0-0");
    assert_int_equal(weir__fsink_notify(&s, 3, true), 0);
    dir_names(dir, names, sizeof(names));
    assert_string_equal(names, ".fence-ua-0.a2 part-ua-0-0 part-ua-0-1");
    assert_file(dir, "part-ua-0-1", "y\n");
    assert_int_equal(weir__fsink_close(&s), 0); /* all committed: the fence is given up */
    dir_names(dir, names, sizeof(names));
    assert_string_equal(names, "part-ua-0-0 part-ua-0-1");
    packed_free(&s1);
    packed_free(&s2);
    packed_free(&fin);
}

/* Restarted from a checkpoint older than output already committed (a newer _metadata found
 * corrupt): the committed files stay as they are and the replay goes to new part numbers. */
static void test_file_sink_restore_behind_committed(void **state) {
    (void)state;
    char dir[4200], names[4096];
    snprintf(dir, sizeof(dir), "%s/behind", g_tmp);
    weir_file_2pc_t s;
    fsink_start(&s, dir, 0, 1, WEIR_PART_ROLL_BYTES);
    assert_int_equal(weir__fsink_start_fresh(&s), 0);
    line(&s, "x");
    packed_t s1, s2;
    fsink_snap(&s, 1, &s1);
    assert_int_equal(weir__fsink_notify(&s, 1, false), 0);
    line(&s, "y1");
    fsink_snap(&s, 2, &s2);
    assert_int_equal(weir__fsink_notify(&s, 2, false), 0);
    fsink_crash(&s);
    fsink_start(&s, dir, 0, 2, WEIR_PART_ROLL_BYTES);
    assert_int_equal(weir__fsink_restore(&s, 1, &s1.u.data), 0); /* behind checkpoint 2 */
    line(&s, "y2"); /* the replay of epoch 2, cut or ordered differently */
    packed_t s3;
    fsink_snap(&s, 3, &s3);
    assert_int_equal(weir__fsink_notify(&s, 3, false), 0);
    dir_names(dir, names, sizeof(names));
    assert_string_equal(names, ".fence-ua-0.a2 part-ua-0-0 part-ua-0-1 part-ua-0-2");
    assert_file(dir, "part-ua-0-0", "x\n");
    assert_file(dir, "part-ua-0-1", "y1\n"); /* never replaced */
    assert_file(dir, "part-ua-0-2", "y2\n");
    assert_int_equal(weir__fsink_close(&s), 0);
    packed_free(&s1);
    packed_free(&s2);
    packed_free(&s3);
}

static void test_file_sink_without_checkpoints(void **state) {
    (void)state;
    char dir[4200], names[4096];
    snprintf(dir, sizeof(dir), "%s/plain", g_tmp);
    weir_file_2pc_t s;
    /* 4-byte lines + '\n': a file rolls once above 10 bytes (3 lines). */
    fsink_start(&s, dir, 1, 1, 10);
    assert_int_equal(weir__fsink_start_fresh(&s), 0);
    for (int i = 0; i < 4; i++) {
        char l[8];
        snprintf(l, sizeof(l), "L%03d", i);
        line(&s, l);
    }
    assert_int_equal(weir__fsink_end_input(&s), 0);
    dir_names(dir, names, sizeof(names));
    assert_string_equal(names, ".fence-ua-1.a1 .part-ua-1-0.a1.pending .part-ua-1-1.a1.pending");
    assert_int_equal(weir__fsink_close(&s), 0); /* ended, never checkpointed: commit */
    dir_names(dir, names, sizeof(names));
    assert_string_equal(names, "part-ua-1-0 part-ua-1-1");
    assert_file(dir, "part-ua-1-0", "L000\nL001\nL002\n");
    assert_file(dir, "part-ua-1-1", "L003\n");

    /* Cancel (close without end of input): the in-progress file disappears. A fresh start
     * deletes lingering files of its own sink and subtask written by older attempts only (not
     * those of subtask 12, of another sink "ub", of a newer attempt 9, names it never writes,
     * or an old-style `.part-1-7.pending`). */
    fsink_start(&s, dir, 1, 2, 10);
    line(&s, "zz");
    assert_int_equal(weir__fsink_close(&s), 0);
    const char *planted[] = {"/.part-ua-1-7.a1.pending", "/.part-ua-12-0.a1.inprogress",
                             "/.part-ua-1-x.a1.pending", "/.part-ub-1-7.a1.pending",
                             "/.part-ua-1-8.a9.pending", "/.part-1-7.pending"};
    for (size_t i = 0; i < sizeof(planted) / sizeof(planted[0]); i++)
        write_file(strcat(strcpy(names, dir), planted[i]), "p", 1);
    fsink_start(&s, dir, 1, 3, 10);
    assert_int_equal(weir__fsink_start_fresh(&s), 0);
    dir_names(dir, names, sizeof(names));
    assert_string_equal(names, ".fence-ua-1.a3 .part-1-7.pending .part-ua-1-8.a9.pending "
                               ".part-ua-1-x.a1.pending .part-ua-12-0.a1.inprogress "
                               ".part-ub-1-7.a1.pending part-ua-1-0 part-ua-1-1");
    assert_int_equal(weir__fsink_close(&s), 0);

    /* Checkpointing on: close after end of input does not commit (the final notify does) and
     * keeps the fence. */
    char dir2[4300];
    snprintf(dir2, sizeof(dir2), "%s/ck", g_tmp);
    fsink_start(&s, dir2, 0, 1, 10);
    packed_t p;
    fsink_snap(&s, 1, &p);
    line(&s, "a");
    assert_int_equal(weir__fsink_end_input(&s), 0);
    assert_int_equal(weir__fsink_close(&s), 0);
    dir_names(dir2, names, sizeof(names));
    assert_string_equal(names, ".fence-ua-0.a1 .part-ua-0-0.a1.pending");
    packed_free(&p);
}

static void test_file_sink_commit_lost_data(void **state) {
    (void)state;
    char dir[4200];
    snprintf(dir, sizeof(dir), "%s/lost", g_tmp);
    char p[4400];
    weir_file_2pc_t s;
    fsink_start(&s, dir, 0, 1, WEIR_PART_ROLL_BYTES);
    line(&s, "x");
    packed_t s1;
    fsink_snap(&s, 1, &s1);
    snprintf(p, sizeof(p), "%s/.part-ua-0-0.a1.pending", dir);
    assert_int_equal(unlink(p), 0);
    assert_int_equal(weir__fsink_notify(&s, 1, false), WEIR_ENOTFOUND);
    assert_non_null(strstr(s.w.errmsg, ".part-ua-0-0.a1.pending"));
    assert_non_null(strstr(s.w.errmsg, "lost"));
    assert_int_equal(weir__fsink_close(&s), 0);
    packed_free(&s1);
}

/* Never create by truncating, never replace on commit: a name someone else wrote stays as it
 * is and the error names it; a commit finds its own earlier commit (same size) or an interrupted
 * link + unlink (one file under both names) and is done. */
static void test_file_sink_never_replaces(void **state) {
    (void)state;
    char dir[4200], p[4400], names[4096];
    snprintf(dir, sizeof(dir), "%s/noreplace", g_tmp);
    weir_part_writer_t w;
    char err[256];
    weir_part_id_t id = pid("ua", 0, 1);
    assert_int_equal(weir__part_writer_init(&w, dir, &id, WEIR_PART_ROLL_BYTES, err, sizeof(err)),
                     0);
    /* O_EXCL: an existing in-progress name is an error naming it, its content untouched. */
    write_file(strcat(strcpy(p, dir), "/.part-ua-0-0.a1.inprogress"), "theirs\n", 7);
    assert_int_equal(weir__part_writer_line(&w, "mine", 4), WEIR_EIO);
    assert_non_null(strstr(w.errmsg, ".part-ua-0-0.a1.inprogress"));
    assert_file(dir, ".part-ua-0-0.a1.inprogress", "theirs\n");
    assert_int_equal(unlink(p), 0);

    /* Commit onto an existing final name: refused (WEIR_EEXIST), both files kept. */
    uint64_t k, size;
    assert_int_equal(weir__part_writer_begin(&w), 0);
    assert_int_equal(weir__part_writer_line(&w, "mine", 4), 0);
    assert_int_equal(weir__part_writer_precommit(&w, &k, &size), 0);
    assert_int_equal(k, 0);
    assert_int_equal(size, 5);
    write_file(strcat(strcpy(p, dir), "/part-ua-0-0"), "theirs\n", 7);
    assert_int_equal(weir__part_commit(&w, ".part-ua-0-0.a1.pending", "part-ua-0-0", 5),
                     WEIR_EEXIST);
    assert_non_null(strstr(w.errmsg, "part-ua-0-0"));
    assert_non_null(strstr(w.errmsg, "nothing was replaced"));
    assert_file(dir, "part-ua-0-0", "theirs\n");
    assert_file(dir, ".part-ua-0-0.a1.pending", "mine\n");
    /* Pending gone, final of another size: not this transaction's commit. */
    assert_int_equal(unlink(strcat(strcpy(p, dir), "/.part-ua-0-0.a1.pending")), 0);
    assert_int_equal(weir__part_commit(&w, ".part-ua-0-0.a1.pending", "part-ua-0-0", 5),
                     WEIR_EEXIST);
    assert_file(dir, "part-ua-0-0", "theirs\n");
    /* Pending gone, final of the handle's size: committed before. */
    assert_int_equal(weir__part_commit(&w, ".part-ua-0-0.a1.pending", "part-ua-0-0", 7), 0);

    /* A link + unlink commit interrupted after the link: both names are one file; the commit
     * finishes it (drops the pending name). */
    assert_int_equal(weir__part_writer_begin(&w), 0);
    assert_int_equal(weir__part_writer_line(&w, "second", 6), 0);
    assert_int_equal(weir__part_writer_precommit(&w, &k, &size), 0);
    assert_int_equal(k, 1);
    char src[4400], dst[4400];
    snprintf(src, sizeof(src), "%s/.part-ua-0-1.a1.pending", dir);
    snprintf(dst, sizeof(dst), "%s/part-ua-0-1", dir);
    assert_int_equal(link(src, dst), 0);
    assert_int_equal(weir__part_commit(&w, ".part-ua-0-1.a1.pending", "part-ua-0-1", 7), 0);
    assert_false(exists(src));
    assert_file(dir, "part-ua-0-1", "second\n");

    /* The link + unlink path (filesystems without RENAME_NOREPLACE) commits and refuses alike. */
    w.link_rename = true;
    assert_int_equal(weir__part_writer_begin(&w), 0);
    assert_int_equal(weir__part_writer_line(&w, "third", 5), 0);
    assert_int_equal(weir__part_writer_precommit(&w, &k, &size), 0);
    assert_int_equal(weir__part_commit(&w, ".part-ua-0-2.a1.pending", "part-ua-0-2", 6), 1);
    assert_file(dir, "part-ua-0-2", "third\n");
    assert_int_equal(weir__part_writer_begin(&w), 0);
    assert_int_equal(weir__part_writer_line(&w, "fourth", 6), 0);
    assert_int_equal(weir__part_writer_precommit(&w, &k, &size), 0);
    assert_int_equal(weir__part_commit(&w, ".part-ua-0-3.a1.pending", "part-ua-0-2", 7),
                     WEIR_EEXIST);
    assert_file(dir, "part-ua-0-2", "third\n");
    assert_file(dir, ".part-ua-0-3.a1.pending", "fourth\n");
    dir_names(dir, names, sizeof(names));
    assert_string_equal(names, ".fence-ua-0.a1 .part-ua-0-3.a1.pending part-ua-0-0 part-ua-0-1 "
                               "part-ua-0-2");
    weir__part_writer_destroy(&w);
}

/* Two jobs (or two sinks of one job) in one directory, then a resubmission: each sink sees only
 * its own files, a start deletes nothing of the others, and no name collides. */
static void test_file_sink_shared_directory(void **state) {
    (void)state;
    char dir[4200], names[4096], before[8192], after[8192];
    snprintf(dir, sizeof(dir), "%s/shared", g_tmp);
    char err[256];
    weir_file_2pc_t a, b, c;
    weir_part_id_t ia = pid("ua", 0, 1), ib = pid("ub", 0, 1), ic = pid("uc", 0, 1);
    assert_int_equal(weir__fsink_init(&a, dir, &ia, WEIR_PART_ROLL_BYTES, err, sizeof(err)), 0);
    assert_int_equal(weir__fsink_start_fresh(&a), 0);
    line(&a, "a0");
    packed_t a1, a2, b1, c1;
    fsink_snap(&a, 1, &a1);
    line(&a, "a1"); /* a pending and an in-progress file of A when B starts */
    assert_int_equal(weir__fsink_init(&b, dir, &ib, WEIR_PART_ROLL_BYTES, err, sizeof(err)), 0);
    assert_int_equal(weir__fsink_start_fresh(&b), 0);
    line(&b, "b0");
    fsink_snap(&b, 1, &b1);
    assert_int_equal(weir__fsink_notify(&b, 1, false), 0);
    fsink_snap(&a, 2, &a2);
    assert_int_equal(weir__fsink_notify(&a, 2, false), 0);
    dir_names(dir, names, sizeof(names));
    assert_string_equal(names, ".fence-ua-0.a1 .fence-ub-0.a1 part-ua-0-0 part-ua-0-1 part-ub-0-0");
    assert_file(dir, "part-ua-0-0", "a0\n");
    assert_file(dir, "part-ua-0-1", "a1\n");
    assert_file(dir, "part-ub-0-0", "b0\n");
    line(&a, "a2");
    line(&b, "b1");
    dir_dump(dir, before, sizeof(before));
    assert_string_equal(before, ".fence-ua-0.a1=;.fence-ub-0.a1=;.part-ua-0-2.a1.inprogress=;"
                                ".part-ub-0-1.a1.inprogress=;part-ua-0-0=a0\n;part-ua-0-1=a1\n;"
                                "part-ub-0-0=b0\n;");
    /* A resubmission (new job id: uuid "uc") starts fresh in the same directory: only its own
     * fence appears. */
    assert_int_equal(weir__fsink_init(&c, dir, &ic, WEIR_PART_ROLL_BYTES, err, sizeof(err)), 0);
    assert_int_equal(weir__fsink_start_fresh(&c), 0);
    dir_dump(dir, after, sizeof(after));
    assert_string_equal(after, ".fence-ua-0.a1=;.fence-ub-0.a1=;.fence-uc-0.a1=;"
                               ".part-ua-0-2.a1.inprogress=;.part-ub-0-1.a1.inprogress=;"
                               "part-ua-0-0=a0\n;part-ua-0-1=a1\n;part-ub-0-0=b0\n;");
    line(&c, "c0");
    fsink_snap(&c, 1, &c1);
    assert_int_equal(weir__fsink_notify(&c, 1, false), 0);
    assert_file(dir, "part-uc-0-0", "c0\n"); /* numbered from 0: its own sequence */
    assert_int_equal(weir__fsink_close(&a), 0);
    assert_int_equal(weir__fsink_close(&b), 0);
    assert_int_equal(weir__fsink_close(&c), 0);
    dir_names(dir, names, sizeof(names));
    assert_string_equal(names, ".fence-ua-0.a1 .fence-ub-0.a1 .fence-uc-0.a1 part-ua-0-0 "
                               "part-ua-0-1 part-ub-0-0 part-uc-0-0");
    packed_free(&a1);
    packed_free(&a2);
    packed_free(&b1);
    packed_free(&c1);
}

/* Attempt fencing: attempt 1 of a sink subtask is frozen (a task manager declared lost but
 * alive), attempt 2 restores from the latest completed checkpoint and goes on; then attempt 1
 * wakes up. Nothing attempt 1 does afterwards (notify, write, snapshot, end of input, close, a
 * late start) changes, creates or deletes a file of the directory, and attempt 2 finishes with
 * exactly its output. */
static void test_file_sink_attempt_fencing(void **state) {
    (void)state;
    char dir[4200], names[4096], before[8192], after[8192];
    snprintf(dir, sizeof(dir), "%s/fence", g_tmp);
    weir_file_2pc_t z, s; /* z: attempt 1 (the zombie), s: attempt 2 */
    fsink_start(&z, dir, 0, 1, WEIR_PART_ROLL_BYTES);
    assert_int_equal(weir__fsink_start_fresh(&z), 0);
    line(&z, "e1");
    packed_t z1, z2, s3, s4, fin;
    fsink_snap(&z, 1, &z1);
    assert_int_equal(weir__fsink_notify(&z, 1, false), 0);
    line(&z, "e2");
    fsink_snap(&z, 2, &z2); /* checkpoint 2 completes at the job manager ... */
    line(&z, "z3");         /* ... and attempt 1 freezes before its notify, mid-epoch 3 */

    /* Attempt 2 restores checkpoint 2: commits epoch 2 (attempt 1's pending file), deletes
     * attempt 1's in-progress file and fence. */
    fsink_start(&s, dir, 0, 2, WEIR_PART_ROLL_BYTES);
    assert_int_equal(weir__fsink_restore(&s, 2, &z2.u.data), 0);
    line(&s, "e3");
    fsink_snap(&s, 3, &s3);
    assert_int_equal(weir__fsink_notify(&s, 3, false), 0);
    line(&s, "e4");
    fsink_snap(&s, 4, &s4); /* pending, checkpoint 4 not complete yet */
    line(&s, "e5");         /* in progress */
    dir_names(dir, names, sizeof(names));
    assert_string_equal(names, ".fence-ua-0.a2 .part-ua-0-3.a2.pending .part-ua-0-4.a2.inprogress "
                               "part-ua-0-0 part-ua-0-1 part-ua-0-2");
    dir_dump(dir, before, sizeof(before));

    /* Attempt 1 wakes up: its notify of checkpoint 2 would commit part 1 (already committed by
     * attempt 2) and its later steps would rename and delete; it is fenced at the first. */
    assert_int_equal(weir__fsink_notify(&z, 2, false), WEIR_ECANCELED);
    assert_non_null(strstr(z.w.errmsg, "fenced"));
    assert_non_null(strstr(z.w.errmsg, ".fence-ua-0.a1"));
    line(&z, "z3b"); /* writes go to its own (already deleted) in-progress file */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    assert_int_equal(weir__fsink_snapshot(&z, 3, &pk), WEIR_ECANCELED); /* no pre-commit */
    assert_int_equal(sb.size, 0);
    msgpack_sbuffer_destroy(&sb);
    assert_int_equal(weir__fsink_line(&z, "z4", 2), WEIR_ECANCELED); /* no new file */
    assert_int_equal(weir__fsink_end_input(&z), 0);
    assert_int_equal(weir__fsink_notify(&z, 4, true), WEIR_ECANCELED);
    assert_int_equal(weir__fsink_close(&z), 0);
    dir_dump(dir, after, sizeof(after));
    assert_string_equal(after, before);
    /* A late start of attempt 1 (its restore ran only now) is refused and touches nothing. */
    char err[512] = "";
    weir_part_id_t old = pid("ua", 0, 1);
    assert_int_equal(weir__fsink_init(&z, dir, &old, WEIR_PART_ROLL_BYTES, err, sizeof(err)),
                     WEIR_ECANCELED);
    assert_non_null(strstr(err, "superseded by attempt 2"));
    dir_dump(dir, after, sizeof(after));
    assert_string_equal(after, before);
    /* The same attempt started twice is refused too (its fence exists). */
    weir_part_id_t same = pid("ua", 0, 2);
    assert_int_equal(weir__fsink_init(&z, dir, &same, WEIR_PART_ROLL_BYTES, err, sizeof(err)),
                     WEIR_EEXIST);
    assert_non_null(strstr(err, ".fence-ua-0.a2"));

    /* Attempt 2 finishes: exactly its output, one file per epoch, and no hidden file. */
    assert_int_equal(weir__fsink_notify(&s, 4, false), 0);
    assert_int_equal(weir__fsink_end_input(&s), 0);
    fsink_snap(&s, 0, &fin);
    assert_int_equal(weir__fsink_notify(&s, 5, true), 0);
    assert_int_equal(weir__fsink_close(&s), 0);
    dir_dump(dir, after, sizeof(after));
    assert_string_equal(after, "part-ua-0-0=e1\n;part-ua-0-1=e2\n;part-ua-0-2=e3\n;"
                               "part-ua-0-3=e4\n;part-ua-0-4=e5\n;");
    packed_free(&z1);
    packed_free(&z2);
    packed_free(&s3);
    packed_free(&s4);
    packed_free(&fin);
}

/* ---- source positions ------------------------------------------------------------------- */

static void test_split_reader_resume(void **state) {
    (void)state;
    char dir[4200], p[4400];
    snprintf(dir, sizeof(dir), "%s/in", g_tmp);
    assert_int_equal(weir_mkdirs(dir), 0);
    uint64_t seed = 42;
    for (int fi = 0; fi < 4; fi++) {
        char content[8192];
        size_t len = 0;
        size_t nl = rnd(&seed) % 40;
        for (size_t i = 0; i < nl; i++)
            len += (size_t)snprintf(content + len, sizeof(content) - len, "f%d-%zu-%.*s\n", fi, i,
                                    (int)(rnd(&seed) % 30), "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        snprintf(p, sizeof(p), "%s/f%d", dir, fi);
        write_file(p, content, len);
    }
    char **files;
    size_t n;
    char err[256];
    assert_int_equal(weir__file_list(dir, &files, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 4);
    for (uint32_t par = 1; par <= 3; par++) {
        for (uint32_t sub = 0; sub < par; sub++) {
            /* Oracle: the uninterrupted reading of this subtask. */
            lines_t want = {0};
            weir_split_reader_t sr;
            weir__split_reader_init(&sr, files, n, sub, par);
            const char *l;
            size_t ll;
            int rc;
            while ((rc = weir__split_reader_next(&sr, &l, &ll)) == 1)
                lines_add(&want, l, ll);
            assert_int_equal(rc, 0);
            weir__split_reader_close(&sr);
            /* Interrupt after every k lines, save the position, resume in a new reader. */
            for (size_t cut = 0; cut <= want.n; cut++) {
                lines_t got = {0};
                weir__split_reader_init(&sr, files, n, sub, par);
                for (size_t i = 0; i < cut; i++) {
                    assert_int_equal(weir__split_reader_next(&sr, &l, &ll), 1);
                    lines_add(&got, l, ll);
                }
                uint64_t fidx, off;
                weir__split_reader_position(&sr, &fidx, &off);
                weir__split_reader_close(&sr);
                weir_split_reader_t sr2;
                weir__split_reader_init(&sr2, files, n, sub, par);
                weir__split_reader_seek(&sr2, fidx, off);
                while ((rc = weir__split_reader_next(&sr2, &l, &ll)) == 1)
                    lines_add(&got, l, ll);
                assert_int_equal(rc, 0);
                weir__split_reader_close(&sr2);
                assert_int_equal(got.n, want.n);
                for (size_t i = 0; i < want.n; i++)
                    assert_string_equal(got.v[i], want.v[i]);
                lines_free(&got);
            }
            lines_free(&want);
        }
    }
    weir__file_list_free(files, n);
}

static void test_cursor_position(void **state) {
    (void)state;
    /* Subtask 2 of 3 over 20 indices: 2, 5, 8, 11, 14, 17. */
    weir_index_cursor_t c;
    weir__cursor_init(&c, 2, 3, 20);
    assert_int_equal(weir__cursor_position(&c, 2), 0);
    assert_int_equal(weir__cursor_take(&c), 2);
    assert_int_equal(weir__cursor_take(&c), 5);
    assert_int_equal(weir__cursor_position(&c, 2), 2);
    weir_index_cursor_t r;
    weir__cursor_init(&r, 2, 3, 20);
    weir__cursor_seek(&r, 2, 2);
    const uint64_t rest[] = {8, 11, 14, 17};
    for (int i = 0; i < 4; i++) {
        assert_true(weir__cursor_more(&r));
        assert_int_equal(weir__cursor_take(&r), rest[i]);
    }
    assert_false(weir__cursor_more(&r));
    assert_int_equal(weir__cursor_position(&r, 2), 6);
}

/* ---- rescaling source positions --------------------------------------------------------- */

#define MAXP 8

/* The packed states of p old subtasks, as a restore hands them over (CONTRACT9 section 3): at
 * the same parallelism a new subtask gets its own state only, otherwise every old one. */
typedef struct olds {
    uint32_t p;
    msgpack_sbuffer sb[MAXP];
    msgpack_unpacked u[MAXP];
    msgpack_object st[MAXP];
    uint32_t sub[MAXP];
} olds_t;

static msgpack_packer *olds_packer(olds_t *o, uint32_t j, msgpack_packer *pk) {
    msgpack_sbuffer_init(&o->sb[j]);
    msgpack_packer_init(pk, &o->sb[j], msgpack_sbuffer_write);
    return pk;
}

static void olds_unpack(olds_t *o) {
    for (uint32_t j = 0; j < o->p; j++) {
        msgpack_unpacked_init(&o->u[j]);
        size_t off = 0;
        assert_int_equal(msgpack_unpack_next(&o->u[j], o->sb[j].data, o->sb[j].size, &off),
                         MSGPACK_UNPACK_SUCCESS);
        assert_int_equal(off, o->sb[j].size); /* exactly one object */
        o->st[j] = o->u[j].data;
        o->sub[j] = j;
    }
}

static weir_op_restore_t olds_for(olds_t *o, uint32_t k, uint32_t p_new) {
    if (p_new == o->p)
        return (weir_op_restore_t){.checkpoint_id = 9,
                                   .old_parallelism = o->p,
                                   .n = 1,
                                   .old_subtask = &o->sub[k],
                                   .states = &o->st[k]};
    return (weir_op_restore_t){.checkpoint_id = 9,
                               .old_parallelism = o->p,
                               .n = o->p,
                               .old_subtask = o->sub,
                               .states = o->st};
}

static void olds_free(olds_t *o) {
    for (uint32_t j = 0; j < o->p; j++) {
        msgpack_unpacked_destroy(&o->u[j]);
        msgpack_sbuffer_destroy(&o->sb[j]);
    }
}

/* Parallelism sequences: each step stops every subtask at a random position, snapshots it and
 * restores the states into the next parallelism. */
static const uint32_t chains[][7] = {
    {2, 3, 0}, {3, 1, 0}, {4, 2, 0}, {3, 3, 0}, {2, 3, 1, 4, 2, 2, 0}, {1, 4, 3, 0}};

/* Datagen / generator splits: across every rescale each index below the bound is emitted by
 * exactly one subtask exactly once (the oracle enumerates 0..bound-1), bounded and unbounded;
 * a subtask running its own split of the first start keeps the position layout [k]. */
static void test_gen_splits_rescale(void **state) {
    (void)state;
    uint64_t seed = 77;
    const uint64_t counts[] = {97, 0, 5};
    for (size_t ci = 0; ci < sizeof(counts) / sizeof(counts[0]); ci++) {
        uint64_t count = counts[ci], bound = count ? count : 700;
        for (size_t c = 0; c < sizeof(chains) / sizeof(chains[0]); c++) {
            uint32_t *seen = calloc(bound, sizeof(*seen));
            weir_gen_splits_t g[MAXP], ng[MAXP];
            memset(g, 0, sizeof(g));
            memset(ng, 0, sizeof(ng));
            uint32_t p = chains[c][0];
            for (uint32_t j = 0; j < p; j++)
                weir__gen_splits_init(&g[j], j, p, count);
            for (int step = 1; chains[c][step]; step++) {
                uint32_t np = chains[c][step];
                olds_t o = {.p = p};
                for (uint32_t j = 0; j < p; j++) {
                    for (uint64_t t = rnd(&seed) % 15; t > 0 && weir__gen_splits_more(&g[j]); t--) {
                        uint64_t i = weir__gen_splits_take(&g[j]);
                        assert_true(i < bound);
                        seen[i]++;
                    }
                    msgpack_packer pk;
                    weir__gen_splits_pack(olds_packer(&o, j, &pk), &g[j], j, p);
                }
                olds_unpack(&o);
                if (step == 1) /* the first start's splits: [k] as before */
                    for (uint32_t j = 0; j < p; j++)
                        assert_int_equal(o.st[j].via.array.size, 1);
                for (uint32_t k = 0; k < np; k++) {
                    weir_op_restore_t r = olds_for(&o, k, np);
                    char err[256];
                    memset(&ng[k], 0, sizeof(ng[k]));
                    assert_int_equal(
                        weir__gen_splits_restore(&ng[k], &r, k, np, count, err, sizeof(err)), 0);
                }
                for (uint32_t j = 0; j < p; j++)
                    weir__gen_splits_free(&g[j]);
                memcpy(g, ng, sizeof(g));
                memset(ng, 0, sizeof(ng));
                olds_free(&o);
                p = np;
            }
            /* drain: indices come in ascending order per subtask */
            for (uint32_t j = 0; j < p; j++) {
                uint64_t prev = 0;
                bool first = true;
                while (weir__gen_splits_more(&g[j])) {
                    uint64_t i = weir__gen_splits_take(&g[j]);
                    assert_true(first || i > prev);
                    first = false;
                    prev = i;
                    if (i >= bound)
                        break; /* unbounded: what follows lies beyond the bound too */
                    seen[i]++;
                }
                weir__gen_splits_free(&g[j]);
            }
            for (uint64_t i = 0; i < bound; i++)
                if (seen[i] != 1)
                    fail_msg("count %llu chain %zu: index %llu emitted %u times",
                             (unsigned long long)count, c, (unsigned long long)i, seen[i]);
            free(seen);
        }
    }
    /* Malformed positions are refused with a line saying what is wrong. */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2); /* [stride 3, [[split 4, 4]]]: split >= stride */
    msgpack_pack_uint32(&pk, 3);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint32(&pk, 4);
    msgpack_pack_uint32(&pk, 4);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&u, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
    uint32_t sub = 0;
    weir_op_restore_t r = {
        .checkpoint_id = 1, .old_parallelism = 2, .n = 1, .old_subtask = &sub, .states = &u.data};
    weir_gen_splits_t g = {0};
    char err[256] = "";
    assert_int_equal(weir__gen_splits_restore(&g, &r, 0, 1, 0, err, sizeof(err)), WEIR_ECORRUPT);
    assert_non_null(strstr(err, "old subtask 0's split 0 is not [split < stride"));
    assert_int_equal(g.n, 0);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
}

/* Event-time state of the datagen / generator source: with a watermark strategy the position is
 * wrapped as {"pos", "wm", "max"}; a restore (same parallelism and a rescale 3 -> 2) gives each
 * split its max timestamp by split id and each new subtask the lowest watermark of the old
 * subtasks it took splits from; the plain layout [k] still restores with no event time. */
static void test_gen_splits_event_time(void **state) {
    (void)state;
    const uint32_t p = 3, count = 30;
    olds_t o = {.p = p};
    weir_gen_splits_t g[MAXP];
    memset(g, 0, sizeof(g));
    for (uint32_t j = 0; j < p; j++) {
        weir__gen_splits_init(&g[j], j, p, count);
        for (uint32_t t = 0; t <= j; t++)
            weir__gen_splits_take(&g[j]);
        int64_t max_ts = 1000 + 100 * (int64_t)j;
        msgpack_packer pk;
        weir__gen_splits_pack_wm(olds_packer(&o, j, &pk), &g[j], j, p, 500 + 10 * (int64_t)j,
                                 j != 1, &max_ts); /* subtask 1 active, the others idle */
    }
    olds_unpack(&o);
    char err[256];
    for (uint32_t k = 0; k < p; k++) { /* same parallelism: own state */
        weir_op_restore_t r = olds_for(&o, k, p);
        weir_gen_splits_t ng = {0};
        assert_int_equal(weir__gen_splits_restore(&ng, &r, k, p, count, err, sizeof(err)), 0);
        assert_int_equal(ng.n, 1);
        assert_int_equal(ng.v[0].max_ts, 1000 + 100 * (int64_t)k);
        assert_int_equal(ng.wm_floor, 500 + 10 * (int64_t)k);
        assert_int_equal(ng.wm_idle, k != 1);
        assert_int_equal(ng.v[0].c.next, k + (k + 1) * p);
        weir__gen_splits_free(&ng);
    }
    /* 3 -> 2: subtask 0 takes splits 0 and 2, subtask 1 split 1 */
    weir_gen_splits_t ng = {0};
    weir_op_restore_t r = olds_for(&o, 0, 2);
    assert_int_equal(weir__gen_splits_restore(&ng, &r, 0, 2, count, err, sizeof(err)), 0);
    assert_int_equal(ng.n, 2);
    assert_int_equal(ng.v[0].id, 0);
    assert_int_equal(ng.v[0].max_ts, 1000);
    assert_int_equal(ng.v[1].id, 2);
    assert_int_equal(ng.v[1].max_ts, 1200);
    assert_int_equal(ng.wm_floor, 500);
    assert_true(ng.wm_idle); /* both old subtasks 0 and 2 were idle */
    weir__gen_splits_free(&ng);
    r = olds_for(&o, 1, 2);
    assert_int_equal(weir__gen_splits_restore(&ng, &r, 1, 2, count, err, sizeof(err)), 0);
    assert_int_equal(ng.n, 1);
    assert_int_equal(ng.v[0].max_ts, 1100);
    assert_int_equal(ng.wm_floor, 510);
    assert_false(ng.wm_idle);
    weir__gen_splits_free(&ng);
    for (uint32_t j = 0; j < p; j++)
        weir__gen_splits_free(&g[j]);
    olds_free(&o);

    /* a map without "max" is refused with one line */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str(&pk, 3);
    msgpack_pack_str_body(&pk, "pos", 3);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_uint32(&pk, 0);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&u, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
    uint32_t sub = 0;
    weir_op_restore_t bad = {
        .checkpoint_id = 1, .old_parallelism = 1, .n = 1, .old_subtask = &sub, .states = &u.data};
    assert_int_equal(weir__gen_splits_restore(&ng, &bad, 0, 1, 0, err, sizeof(err)), WEIR_ECORRUPT);
    assert_non_null(strstr(err, "lacks"));
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
}

/* File source splits: across every rescale each line of the input is read by exactly one
 * subtask exactly once (the oracle: the lines the test wrote, all distinct); a subtask reading
 * its own split of the first start keeps the position layout [file, offset]. */
static void test_file_splits_rescale(void **state) {
    (void)state;
    char dir[4200], path[4400];
    snprintf(dir, sizeof(dir), "%s/rescale-in", g_tmp);
    assert_int_equal(weir_mkdirs(dir), 0);
    uint64_t seed = 99;
    size_t total = 0;
    for (int fi = 0; fi < 5; fi++) {
        char content[16384];
        size_t len = 0, nl = fi == 2 ? 0 : 20 + rnd(&seed) % 60; /* file 2 is empty */
        for (size_t i = 0; i < nl; i++)
            len += (size_t)snprintf(content + len, sizeof(content) - len, "f%d-l%zu-%.*s\n", fi, i,
                                    (int)(rnd(&seed) % 40),
                                    "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy");
        snprintf(path, sizeof(path), "%s/f%d", dir, fi);
        write_file(path, content, len);
        total += nl;
    }
    char **files;
    size_t n_files;
    char err[256];
    assert_int_equal(weir__file_list(dir, &files, &n_files, err, sizeof(err)), 0);
    for (size_t c = 0; c < sizeof(chains) / sizeof(chains[0]); c++) {
        lines_t got = {0};
        weir_file_splits_t fs[MAXP], nfs[MAXP];
        memset(fs, 0, sizeof(fs));
        uint64_t bad;
        uint32_t p = chains[c][0];
        for (uint32_t j = 0; j < p; j++) {
            fs[j].sr.r.fd = -1;
            weir__file_splits_init(&fs[j], j, p);
            assert_int_equal(weir__file_splits_start(&fs[j], files, n_files, &bad), 0);
        }
        for (int step = 1; chains[c][step]; step++) {
            uint32_t np = chains[c][step];
            olds_t o = {.p = p};
            for (uint32_t j = 0; j < p; j++) {
                const char *l;
                size_t ll;
                for (uint64_t t = rnd(&seed) % 40; t > 0; t--) {
                    int rc = weir__file_splits_next(&fs[j], &l, &ll);
                    assert_true(rc >= 0);
                    if (rc == 0)
                        break;
                    lines_add(&got, l, ll);
                }
                msgpack_packer pk;
                weir__file_splits_pack(olds_packer(&o, j, &pk), &fs[j], j, p);
            }
            olds_unpack(&o);
            if (step == 1)
                for (uint32_t j = 0; j < p; j++) /* [file, offset] */
                    assert_int_equal(o.st[j].via.array.ptr[1].type,
                                     MSGPACK_OBJECT_POSITIVE_INTEGER);
            for (uint32_t k = 0; k < np; k++) {
                weir_op_restore_t r = olds_for(&o, k, np);
                memset(&nfs[k], 0, sizeof(nfs[k]));
                nfs[k].sr.r.fd = -1;
                assert_int_equal(weir__file_splits_restore(&nfs[k], &r, k, np, err, sizeof(err)),
                                 0);
                assert_int_equal(weir__file_splits_start(&nfs[k], files, n_files, &bad), 0);
            }
            for (uint32_t j = 0; j < p; j++)
                weir__file_splits_free(&fs[j]);
            memcpy(fs, nfs, sizeof(fs));
            olds_free(&o);
            p = np;
        }
        for (uint32_t j = 0; j < p; j++) {
            const char *l;
            size_t ll;
            int rc;
            while ((rc = weir__file_splits_next(&fs[j], &l, &ll)) == 1)
                lines_add(&got, l, ll);
            assert_int_equal(rc, 0);
            weir__file_splits_free(&fs[j]);
        }
        /* every line exactly once: sort what was read and compare with the lines written */
        assert_int_equal(got.n, total);
        for (size_t i = 0; i < got.n; i++)
            for (size_t j = i + 1; j < got.n; j++)
                if (strcmp(got.v[i], got.v[j]) == 0)
                    fail_msg("chain %zu: line '%s' read twice", c, got.v[i]);
        for (size_t i = 0; i < got.n; i++) {
            int fi;
            size_t li;
            assert_int_equal(sscanf(got.v[i], "f%d-l%zu-", &fi, &li), 2);
        }
        lines_free(&got);
    }
    /* A position past the input files (the input changed) is refused at start. */
    weir_file_splits_t fs = {0};
    fs.sr.r.fd = -1;
    weir__file_splits_init(&fs, 0, 1);
    fs.v[0].file = n_files + 1;
    uint64_t bad = 0;
    assert_int_equal(weir__file_splits_start(&fs, files, n_files, &bad), WEIR_ECORRUPT);
    assert_int_equal(bad, n_files + 1);
    weir__file_splits_free(&fs);
    weir__file_list_free(files, n_files);
}

/* ---- rescaling the file sink ----------------------------------------------------------- */

/* The expected content of a directory, in dir_dump's format (sorted by name). */
typedef struct expect {
    char name[64][96];
    char content[64][96];
    size_t n;
} expect_t;

static void expect_set(expect_t *e, const char *name, const char *content) {
    for (size_t i = 0; i < e->n; i++)
        if (strcmp(e->name[i], name) == 0) {
            snprintf(e->content[i], sizeof(e->content[i]), "%s", content);
            return;
        }
    assert_true(e->n < 64);
    snprintf(e->name[e->n], sizeof(e->name[0]), "%s", name);
    snprintf(e->content[e->n++], sizeof(e->content[0]), "%s", content);
}

static void expect_del(expect_t *e, const char *name) {
    for (size_t i = 0; i < e->n; i++)
        if (strcmp(e->name[i], name) == 0) {
            e->n--;
            memmove(e->name[i], e->name[i + 1], (e->n - i) * sizeof(e->name[0]));
            memmove(e->content[i], e->content[i + 1], (e->n - i) * sizeof(e->content[0]));
            return;
        }
    fail_msg("expect_del: %s", name);
}

static void assert_dir_is(const char *dir, const expect_t *e) {
    size_t idx[64];
    for (size_t i = 0; i < e->n; i++)
        idx[i] = i;
    for (size_t i = 0; i < e->n; i++) /* insertion sort by name */
        for (size_t j = i; j > 0 && strcmp(e->name[idx[j - 1]], e->name[idx[j]]) > 0; j--) {
            size_t t = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = t;
        }
    char want[8192], got[8192];
    size_t len = 0;
    want[0] = 0;
    for (size_t i = 0; i < e->n; i++)
        len += (size_t)snprintf(want + len, sizeof(want) - len, "%s=%s;", e->name[idx[i]],
                                e->content[idx[i]]);
    dir_dump(dir, got, sizeof(got));
    assert_string_equal(got, want);
}

static void fsink_start_u(weir_file_2pc_t *s, const char *dir, const char *uuid, uint32_t subtask,
                          uint32_t attempt) {
    char err[256];
    weir_part_id_t id = pid(uuid, subtask, attempt);
    assert_int_equal(weir__fsink_init(s, dir, &id, WEIR_PART_ROLL_BYTES, err, sizeof(err)), 0);
}

/* Rescaling the exactly-once file sink (a job resumed from a savepoint of another job: new job
 * id, so new uuid "un"; the old job's is "uo"): p old subtasks (attempt 2) each committed epoch
 * 1, pre-committed epoch 2 in the savepoint (subtask 1 had no record in epoch 2), kept writing
 * epoch 3 (in progress), and left an orphan of attempt 1 and a pending file of attempt 3. After
 * the restore into p' new subtasks the directory holds exactly: every listed file committed
 * (its content), the orphan of attempt 1 deleted, the files of attempts >= 2 untouched (the old
 * job may still run them), the old fences untouched, one new fence per new subtask. A second
 * restore (the new job's attempt 2) changes nothing but the new fences; a zombie of the old job
 * committing its epoch 2 late changes nothing; the new subtasks then commit their own parts with
 * no collision. With p' == p and the old job itself (same uuid) the restore is a failover. */
static void test_file_sink_rescale(void **state) {
    (void)state;
    const uint32_t cases[][2] = {{2, 3}, {3, 1}, {4, 2}, {3, 3}, {1, 2}};
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        uint32_t p = cases[c][0], np = cases[c][1];
        char dir[4200], ndir[4200], name[128], content[128], path[4400];
        snprintf(dir, sizeof(dir), "%s/rescale-%zu", g_tmp, c);
        /* case 0: the new job writes to another directory; the old files are committed where
         * they are. Case 4: the directory was moved (the path the states name is gone): the
         * old files are found in the new job's directory. */
        snprintf(ndir, sizeof(ndir), "%s/rescale-%zu%s", g_tmp, c,
                 c == 0   ? "-new"
                 : c == 4 ? "-moved"
                          : "");
        const char *odir = c == 4 ? ndir : dir; /* where the old files are after the move */
        expect_t e = {0}, en = {0};
        expect_t *ne = c == 0 ? &en : &e;
        olds_t o = {.p = p};
        weir_file_2pc_t old[MAXP], nw[MAXP];
        for (uint32_t j = 0; j < p; j++) {
            fsink_start_u(&old[j], dir, "uo", j, 2);
            assert_int_equal(weir__fsink_start_fresh(&old[j]), 0);
            snprintf(name, sizeof(name), ".fence-uo-%u.a2", j);
            expect_set(&e, name, "");
            char l1[32], l2[32];
            snprintf(l1, sizeof(l1), "o%u-e1-a", j);
            snprintf(l2, sizeof(l2), "o%u-e1-b", j);
            line(&old[j], l1);
            line(&old[j], l2);
            packed_t s1;
            fsink_snap(&old[j], 1, &s1);
            packed_free(&s1);
            assert_int_equal(weir__fsink_notify(&old[j], 1, false), 0);
            snprintf(name, sizeof(name), "part-uo-%u-0", j);
            snprintf(content, sizeof(content), "%s\n%s\n", l1, l2);
            expect_set(&e, name, content);
            uint32_t next = 1;
            if (j != 1) { /* epoch 2: pre-committed in the savepoint */
                snprintf(l1, sizeof(l1), "o%u-e2", j);
                line(&old[j], l1);
                snprintf(name, sizeof(name), "part-uo-%u-1", j);
                snprintf(content, sizeof(content), "%s\n", l1);
                expect_set(&e, name, content); /* committed by the restore */
                next = 2;
            }
            msgpack_packer pk;
            assert_int_equal(weir__fsink_snapshot(&old[j], 2, olds_packer(&o, j, &pk)), 0);
            if (j != 0) { /* epoch 3: in progress (subtask 0 stays alive as a zombie, idle) */
                snprintf(l1, sizeof(l1), "o%u-e3", j);
                line(&old[j], l1);
                snprintf(name, sizeof(name), ".part-uo-%u-%u.a2.inprogress", j, next);
                snprintf(content, sizeof(content), "%s\n", l1);
                expect_set(&e, name, content); /* attempt 2 = the savepoint's: kept */
            }
            /* an orphan of attempt 1 (deleted) and a pending file of attempt 3 (kept) */
            snprintf(path, sizeof(path), "%s/.part-uo-%u-9.a1.pending", dir, j);
            write_file(path, "orphan\n", 7);
            snprintf(path, sizeof(path), "%s/.part-uo-%u-8.a3.pending", dir, j);
            write_file(path, "later\n", 6);
            snprintf(name, sizeof(name), ".part-uo-%u-8.a3.pending", j);
            expect_set(&e, name, "later\n");
            if (j != 0 || c == 4)
                fsink_crash(&old[j]);
        }
        olds_unpack(&o);
        assert_int_equal(o.st[0].via.array.size, 5); /* [next, list, uuid, attempt, dir] */
        if (c == 4)
            assert_int_equal(rename(dir, ndir), 0);
        for (uint32_t round = 1; round <= 2; round++) { /* the new job's attempts 1 and 2 */
            for (uint32_t k = 0; k < np; k++) {
                fsink_start_u(&nw[k], ndir, "un", k, round);
                weir_op_restore_t r = olds_for(&o, k, np);
                if (weir__fsink_restore_from(&nw[k], &r, np) != 0)
                    fail_msg("%u -> %u: new subtask %u: %s", p, np, k, nw[k].w.errmsg);
                snprintf(name, sizeof(name), ".fence-un-%u.a%u", k, round);
                expect_set(ne, name, "");
                if (round == 2) {
                    snprintf(name, sizeof(name), ".fence-un-%u.a1", k);
                    expect_del(ne, name);
                }
            }
            assert_dir_is(odir, &e);
            if (c == 0)
                assert_dir_is(ndir, &en);
            if (round == 1)
                for (uint32_t k = 0; k < np; k++)
                    fsink_crash(&nw[k]);
        }
        /* the zombie of the old job: a late notify of its checkpoint 2 commits nothing new */
        if (c != 4) {
            assert_int_equal(weir__fsink_notify(&old[0], 2, false), 0);
            assert_int_equal(weir__fsink_close(&old[0]), 0);
        }
        assert_dir_is(odir, &e);
        /* the new subtasks write their own parts: numbered from 0 in their own uuid */
        for (uint32_t k = 0; k < np; k++) {
            char l[32];
            snprintf(l, sizeof(l), "n%u-e10", k);
            line(&nw[k], l);
            packed_t s10;
            fsink_snap(&nw[k], 10, &s10);
            packed_free(&s10);
            assert_int_equal(weir__fsink_notify(&nw[k], 10, false), 0);
            snprintf(name, sizeof(name), "part-un-%u-0", k);
            snprintf(content, sizeof(content), "%s\n", l);
            expect_set(ne, name, content);
            assert_int_equal(weir__fsink_close(&nw[k]), 0);
        }
        assert_dir_is(odir, &e);
        if (c == 0)
            assert_dir_is(ndir, &en);
        if (p == np) {
            /* the old job's own failover (same uuid, attempt 4) through the same entry: its own
             * state, today's restore: attempts < 4 not listed are deleted, numbering goes on */
            for (uint32_t k = 0; k < np; k++) {
                fsink_start_u(&nw[k], dir, "uo", k, 4);
                weir_op_restore_t r = olds_for(&o, k, np);
                assert_int_equal(weir__fsink_restore_from(&nw[k], &r, np), 0);
                snprintf(name, sizeof(name), ".part-uo-%u-8.a3.pending", k);
                expect_del(&e, name);
                snprintf(name, sizeof(name), ".part-uo-%u-%u.a2.inprogress", k, k == 1 ? 1 : 2);
                if (k != 0)
                    expect_del(&e, name);
                snprintf(name, sizeof(name), ".fence-uo-%u.a2", k);
                expect_del(&e, name);
                snprintf(name, sizeof(name), ".fence-uo-%u.a4", k);
                expect_set(&e, name, "");
                assert_int_equal(nw[k].w.n, k == 1 ? 1 : 2);
                assert_int_equal(weir__fsink_close(&nw[k]), 0);
            }
            assert_dir_is(dir, &e);
        }
        olds_free(&o);
    }
}

/* ---- value formatting ------------------------------------------------------------------ */

static void fmt_check(weir_value_fmt_t *f, void (*pack)(msgpack_packer *), const char *want) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack(&pk);
    const char *text;
    size_t len;
    assert_int_equal(weir__value_text(f, sb.data, sb.size, &text, &len), 0);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(text, want, len);
    msgpack_sbuffer_destroy(&sb);
}

static void pack_str(msgpack_packer *pk) {
    msgpack_pack_str(pk, 5);
    msgpack_pack_str_body(pk, "hi yo", 5);
}
static void pack_long_str(msgpack_packer *pk) {
    char buf[300];
    memset(buf, 'q', sizeof(buf));
    msgpack_pack_str(pk, sizeof(buf)); /* str16 header */
    msgpack_pack_str_body(pk, buf, sizeof(buf));
}
static void pack_bin(msgpack_packer *pk) {
    msgpack_pack_bin(pk, 3);
    msgpack_pack_bin_body(pk, "a\0b", 3);
}
static void pack_int(msgpack_packer *pk) {
    msgpack_pack_uint64(pk, 42);
}
static void pack_arr(msgpack_packer *pk) {
    msgpack_pack_array(pk, 2);
    msgpack_pack_int(pk, 1);
    msgpack_pack_int(pk, -2);
}
static void pack_big_array(msgpack_packer *pk) {
    msgpack_pack_array(pk, 3000); /* text larger than the initial buffer */
    for (int i = 0; i < 3000; i++)
        msgpack_pack_int(pk, 7);
}

static void test_value_text(void **state) {
    (void)state;
    weir_value_fmt_t f;
    assert_int_equal(weir__value_fmt_init(&f), 0);
    fmt_check(&f, pack_str, "hi yo");
    char q[301];
    memset(q, 'q', 300);
    q[300] = 0;
    fmt_check(&f, pack_long_str, q);
    fmt_check(&f, pack_int, "42");
    fmt_check(&f, pack_arr, "[1, -2]");
    /* bin: raw bytes, including the NUL */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack_bin(&pk);
    const char *text;
    size_t len;
    assert_int_equal(weir__value_text(&f, sb.data, sb.size, &text, &len), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(text, "a\0b", 3);
    msgpack_sbuffer_destroy(&sb);
    /* big array: 3000 times "7" separated by ", " plus brackets */
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack_big_array(&pk);
    assert_int_equal(weir__value_text(&f, sb.data, sb.size, &text, &len), 0);
    assert_int_equal(len, 2 + 3000 + 2 * 2999);
    assert_true(text[0] == '[' && text[len - 1] == ']');
    msgpack_sbuffer_destroy(&sb);
    /* truncated str header: not a valid value */
    const char bad[] = {(char)0xa5, 'a'};
    assert_int_equal(weir__value_text(&f, bad, sizeof(bad), &text, &len), 0);
    assert_int_equal(len, strlen("<invalid msgpack>"));
    assert_memory_equal(text, "<invalid msgpack>", len);
    weir__value_fmt_destroy(&f);
}

/* ---- datagen ------------------------------------------------------------------------------ */

static void test_splitmix_vectors(void **state) {
    (void)state;
    /* The SplitMix64 generator seeded with 0 yields these (reference sequence). */
    assert_true(weir__splitmix64(0) == 0xe220a8397b1dcdafull);
    assert_true(weir__splitmix64(0x9e3779b97f4a7c15ull) == 0x6e789e6aa1b965f4ull);
    assert_true(weir__splitmix64(2 * 0x9e3779b97f4a7c15ull) == 0x06c45d188009454full);
}

static void test_datagen_values(void **state) {
    (void)state;
    weir_datagen_opts_t o = {0};
    o.kind = WEIR_DATAGEN_SEQUENCE;
    o.start = 100;
    assert_true(weir__datagen_value(&o, 0) == 100);
    assert_true(weir__datagen_value(&o, 41) == 141);
    o.kind = WEIR_DATAGEN_RANDOM;
    o.seed = 0;
    o.random_max = 0;
    assert_true(weir__datagen_value(&o, 0) == 0xe220a8397b1dcdafull);
    o.random_max = 1000;
    assert_true(weir__datagen_value(&o, 0) == 0xe220a8397b1dcdafull % 1000);
    o.seed = 5;
    for (uint64_t i = 0; i < 10000; i++) {
        uint64_t v = weir__datagen_value(&o, i);
        assert_true(v < 1000);
        assert_true(v == weir__datagen_value(&o, i)); /* deterministic */
    }
    uint8_t k[8];
    weir__be64(0x0102030405060708ull, k);
    const uint8_t want[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    assert_memory_equal(k, want, 8);
}

static void test_datagen_indices(void **state) {
    (void)state;
    for (uint64_t count = 1; count <= 23; count++) {
        for (uint32_t p = 1; p <= 5; p++) {
            uint32_t seen[32] = {0};
            for (uint32_t s = 0; s < p; s++) {
                weir_index_cursor_t c;
                weir__cursor_init(&c, s, p, count);
                uint64_t prev = 0;
                bool first = true;
                while (weir__cursor_more(&c)) {
                    uint64_t i = weir__cursor_take(&c);
                    assert_true(i < count);
                    assert_int_equal(i % p, s);
                    if (!first)
                        assert_int_equal(i, prev + p);
                    assert_true(first ? i == s : true);
                    first = false;
                    prev = i;
                    seen[i]++;
                }
            }
            for (uint64_t i = 0; i < count; i++)
                assert_int_equal(seen[i], 1); /* every index exactly once */
        }
    }
    /* count 0 = unbounded */
    weir_index_cursor_t c;
    weir__cursor_init(&c, 2, 3, 0);
    for (int i = 0; i < 1000; i++) {
        assert_true(weir__cursor_more(&c));
        assert_int_equal(weir__cursor_take(&c), 2 + 3 * (uint64_t)i);
    }
}

/* ---- rate schedule --------------------------------------------------------------------- */

static void test_rate_schedule(void **state) {
    (void)state;
    weir_rate_t r;
    int64_t wake = -1;
    /* Unlimited: the whole budget, whenever. */
    weir__rate_init(&r, 0, 4);
    assert_int_equal(weir__rate_permits(&r, 123, 500, &wake), 500);
    assert_int_equal(wake, -1);

    /* 100/s over 4 subtasks = 25/s here: one record every 40 ms. */
    const int64_t t0 = 5000000000;
    const int64_t ms = 1000000;
    weir__rate_init(&r, 100, 4);
    assert_int_equal(weir__rate_permits(&r, t0, 100, &wake), 1); /* record 0 due at t0 */
    weir__rate_note(&r, 1);
    assert_int_equal(weir__rate_permits(&r, t0 + 10 * ms, 100, &wake), 0);
    assert_int_equal(wake, t0 + 40 * ms);
    assert_int_equal(weir__rate_permits(&r, t0 + 40 * ms, 100, &wake), 1);
    weir__rate_note(&r, 1);
    /* At t0 + 1 s records 0..25 are due (26); 2 were emitted. */
    assert_int_equal(weir__rate_permits(&r, t0 + 1000 * ms, 100, &wake), 24);
    /* The budget caps a catch-up. */
    assert_int_equal(weir__rate_permits(&r, t0 + 1000 * ms, 5, &wake), 5);
    weir__rate_note(&r, 24);
    wake = -1;
    assert_int_equal(weir__rate_permits(&r, t0 + 1000 * ms, 100, &wake), 0);
    assert_int_equal(wake, t0 + 1040 * ms);
    assert_int_equal(weir__rate_due_ns(&r, 50), t0 + 2000 * ms);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_range),
        cmocka_unit_test_setup_teardown(test_random_files_every_line_once, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_crlf, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_no_trailing_newline, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_empty_file, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_directory_listing, setup_tmp, teardown_tmp),
        cmocka_unit_test(test_part_sink_uuid),
        cmocka_unit_test_setup_teardown(test_part_writer, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_part_writer_roll, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_part_writer_bad_dir, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_file_sink_2pc_crash_restore, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_file_sink_restore_older_checkpoint, setup_tmp,
                                        teardown_tmp),
        cmocka_unit_test_setup_teardown(test_file_sink_without_checkpoints, setup_tmp,
                                        teardown_tmp),
        cmocka_unit_test_setup_teardown(test_file_sink_commit_lost_data, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_file_sink_restore_behind_committed, setup_tmp,
                                        teardown_tmp),
        cmocka_unit_test_setup_teardown(test_file_sink_never_replaces, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_file_sink_shared_directory, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_file_sink_attempt_fencing, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_split_reader_resume, setup_tmp, teardown_tmp),
        cmocka_unit_test(test_cursor_position),
        cmocka_unit_test(test_gen_splits_rescale),
        cmocka_unit_test(test_gen_splits_event_time),
        cmocka_unit_test_setup_teardown(test_file_splits_rescale, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_file_sink_rescale, setup_tmp, teardown_tmp),
        cmocka_unit_test(test_value_text),
        cmocka_unit_test(test_splitmix_vectors),
        cmocka_unit_test(test_datagen_values),
        cmocka_unit_test(test_datagen_indices),
        cmocka_unit_test(test_rate_schedule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
