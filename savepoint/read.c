/* Owns reading a restore path (read.h): which file is the _metadata, its base directory, the
 * verification of its content and of the keyed handles' files.
 *
 * Invariants: a path is accepted only when its _metadata verifies, its tasks agree with its
 * operators (version 2: savepoint_int.h's view) and every file every keyed handle names exists as
 * a regular file with the recorded size; otherwise one line names the path or file and m is left
 * cleared. Nothing is written or changed. A read error is WEIR_EIO, never taken for corruption.
 *
 * Threading: stateless; any thread. */
#include "savepoint/read.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/err.h"
#include "common/json.h"
#include "common/util.h"
#include "savepoint/layout.h"
#include "savepoint/savepoint_int.h"

/* Removes "/./" and "/<name>/../" from an absolute path, lexically (for messages: the base is a
 * realpath, so its ".." entries are real parents). */
static void tidy_path(char *p) {
    char *out = p;
    const char *in = p;
    while (*in) {
        if (in[0] == '/' && in[1] == '.' && (in[2] == '/' || !in[2])) {
            in += 2;
            continue;
        }
        if (in[0] == '/' && in[1] == '.' && in[2] == '.' && (in[3] == '/' || !in[3]) && out > p) {
            while (out > p && *--out != '/')
                ;
            in += 3;
            continue;
        }
        *out++ = *in++;
    }
    if (out == p)
        *out++ = '/';
    *out = 0;
}

#define HANDLE_MAX_NAME 256

/* Every file of the keyed handle @p h of task @p t exists with its size. */
static int check_handle(const char *base, const char *file, const weir_ckpt_task_t *t,
                        const json_t *h, char *errstr, size_t errlen) {
    char what[96], why[512] = "";
    weir_fmt(what, sizeof what, "task %u-%u: keyed-state handle", t->vertex, t->subtask);
    const char *layout = NULL, *task = NULL;
    uint64_t ck = 0;
    const json_t *lists[2] = {NULL, NULL};
    if (weir_json_str(h, what, "layout", false, &layout, why, sizeof why) != 0 ||
        weir_json_u64(h, what, "checkpoint", true, 0, &ck, why, sizeof why) != 0 ||
        weir_json_str(h, what, "task", true, &task, why, sizeof why) != 0 ||
        weir_json_array(h, what, "shared", true, &lists[0], why, sizeof why) != 0 ||
        weir_json_array(h, what, "private", true, &lists[1], why, sizeof why) != 0)
        return weir_errf(errstr, errlen, WEIR_ECORRUPT, "%s is corrupt: %s", file, why);
    bool self_contained = false;
    if (layout) {
        if (strcmp(layout, WEIR_LAYOUT_SELF_CONTAINED) != 0)
            return weir_errf(errstr, errlen, WEIR_ECORRUPT,
                             "%s is corrupt: %s: unknown layout '%.64s'", file, what, layout);
        self_contained = true;
    }
    for (int l = 0; l < 2; l++) {
        size_t i;
        const json_t *e;
        json_array_foreach(lists[l], i, e) {
            char ewhat[160];
            weir_fmt(ewhat, sizeof ewhat, "%s: %s file %zu", what, l ? "private" : "shared", i);
            const char *name = NULL;
            uint64_t size = 0;
            if (weir_json_str(e, ewhat, "name", true, &name, why, sizeof why) != 0 ||
                weir_json_u64(e, ewhat, "size", true, 0, &size, why, sizeof why) != 0)
                return weir_errf(errstr, errlen, WEIR_ECORRUPT, "%s is corrupt: %s", file, why);
            char p[PATH_MAX + 2 * HANDLE_MAX_NAME];
            if (weir_layout_keyed_file(base, self_contained, ck, task, l == 0, name, p, sizeof p) !=
                0)
                return weir_errf(errstr, errlen, WEIR_ECORRUPT,
                                 "%s is corrupt: %s names the file '%.64s' of task '%.64s': not a "
                                 "plain file name",
                                 file, ewhat, name, task);
            struct stat st;
            int r = stat(p, &st);
            tidy_path(p);
            if (r != 0 && (errno == ENOENT || errno == ENOTDIR))
                return weir_errf(errstr, errlen, WEIR_ENOTFOUND,
                                 "%s: missing (the savepoint is incomplete)", p);
            if (r != 0)
                return weir_errf(errstr, errlen, WEIR_EIO, "cannot read %s: %s", p,
                                 strerror(errno));
            if (!S_ISREG(st.st_mode))
                return weir_errf(
                    errstr, errlen, WEIR_ECORRUPT,
                    "%s: not a regular file, _metadata says a file of %" PRIu64 " bytes", p, size);
            if ((uint64_t)st.st_size != size)
                return weir_errf(errstr, errlen, WEIR_ECORRUPT,
                                 "%s: has %lld bytes, _metadata says %" PRIu64, p,
                                 (long long)st.st_size, size);
        }
    }
    return 0;
}

int weir_savepoint_read(const char *path, weir_ckpt_meta_t *m, char *base, size_t base_cap,
                        char *errstr, size_t errlen) {
    memset(m, 0, sizeof *m);
    if (base && base_cap)
        base[0] = 0;
    if (!path || !path[0])
        return weir_errf(errstr, errlen, WEIR_EINVAL,
                         "no savepoint path: pass a savepoint or checkpoint directory");
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return weir_errf(errstr, errlen, WEIR_ENOTFOUND, "%s does not exist", path);
        return weir_errf(errstr, errlen, WEIR_EIO, "cannot read %s: %s", path, strerror(errno));
    }
    bool is_dir = S_ISDIR(st.st_mode);
    /* the directory holding _metadata, and the file's own name */
    char dir[PATH_MAX];
    const char *fname = "_metadata";
    if (is_dir) {
        weir_fmt(dir, sizeof dir, "%s", path);
    } else {
        const char *slash = strrchr(path, '/');
        fname = slash ? slash + 1 : path;
        if (!slash)
            weir_fmt(dir, sizeof dir, ".");
        else if (slash == path)
            weir_fmt(dir, sizeof dir, "/");
        else
            weir_fmt(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    }
    char *real = realpath(dir, NULL);
    if (!real)
        return weir_errf(errstr, errlen, WEIR_EIO, "cannot resolve %s: %s", dir, strerror(errno));
    if (!base || strlen(real) >= base_cap) {
        int rc = weir_errf(errstr, errlen, WEIR_EINVAL, "%s: the path is too long", real);
        free(real);
        return rc;
    }
    weir_fmt(base, base_cap, "%s", real);
    free(real);
    char file[PATH_MAX + 256];
    weir_fmt(file, sizeof file, "%s/%s", strcmp(base, "/") == 0 ? "" : base, fname);
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = weir_read_file(file, &data, &len);
    if (rc == WEIR_ENOTFOUND)
        return weir_errf(errstr, errlen, WEIR_ENOTFOUND,
                         "%s: no _metadata: not a savepoint or checkpoint directory (was it "
                         "completed?)",
                         path);
    if (rc != 0)
        return weir_errf(errstr, errlen, WEIR_EIO, "cannot read %s: %s", file, strerror(errno));
    char why[512] = "";
    rc = weir_ckpt_meta_decode((const char *)data, len, m, why, sizeof why);
    if (rc == WEIR_ENOMEM) {
        free(data);
        return weir_errf(errstr, errlen, WEIR_EIO, "out of memory reading %s", file);
    }
    if (rc != 0) {
        free(data);
        return weir_errf(errstr, errlen, WEIR_ECORRUPT, "%s is corrupt: %s", file, why);
    }
    free(data);
    weir__sp_view_t view = {0};
    bool have_view = false;
    if (m->n_ops) {
        rc = weir__sp_view_build(&view, m, m->ops, m->n_ops, m->max_parallelism, why, sizeof why);
        if (rc != 0) {
            weir_ckpt_meta_clear(m);
            return weir_errf(errstr, errlen, rc == WEIR_ENOMEM ? WEIR_EIO : WEIR_ECORRUPT,
                             "%s is corrupt: %s", file, why);
        }
        have_view = true;
    }
    rc = 0;
    for (uint32_t i = 0; i < m->n_tasks && rc == 0; i++) {
        const weir_ckpt_task_t *t = &m->tasks[i];
        if (!t->keyed)
            continue;
        json_t *h = have_view ? json_incref(view.handle[i]) : NULL;
        if (!h) {
            json_error_t jerr;
            h = json_loads(t->keyed, 0, &jerr);
        }
        if (!json_is_object(h))
            rc = weir_errf(errstr, errlen, WEIR_ECORRUPT,
                           "%s is corrupt: task %u-%u: the keyed-state handle is not a JSON object",
                           file, t->vertex, t->subtask);
        else
            rc = check_handle(base, file, t, h, errstr, errlen);
        json_decref(h);
    }
    weir__sp_view_free(&view);
    if (rc != 0)
        weir_ckpt_meta_clear(m);
    return rc;
}
