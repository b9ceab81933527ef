/* Owns reading a restore path (read.h): which object is the _metadata, its base directory (a
 * canonical URI), the verification of its content and of the keyed handles' files, all through
 * storage/storage.h (a POSIX directory or S3).
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

#include "common/err.h"
#include "common/json.h"
#include "common/util.h"
#include "savepoint/layout.h"
#include "savepoint/savepoint_int.h"

/* The largest _metadata read (operator state of every task is inline in it). */
#define WEIR_SAVEPOINT_META_MAX ((size_t)1 << 30)

static int first_entry(void *arg, const char *name, bool is_dir, uint64_t size);

/* The two roots a handle's files live under (savepoint/layout.h): the base itself
 * (self-contained) and its parent (checkpoint layout), opened on first use. */
typedef struct roots {
    weir_storage_env_t *env;
    const char *base;
    weir_storage_t *st[2]; /* [self_contained] */
} roots_t;

static weir_storage_t *root_of(roots_t *r, bool self_contained, char *errstr, size_t errlen) {
    if (r->st[self_contained])
        return r->st[self_contained];
    char uri[WEIR_STORAGE_URI_MAX];
    if (weir_layout_keyed_root(r->base, self_contained, uri, sizeof uri) != 0) {
        weir_errf(errstr, errlen, WEIR_ECORRUPT,
                  "%s: a checkpoint's keyed-state files live beside its directory, and it has "
                  "no parent",
                  r->base);
        return NULL;
    }
    r->st[self_contained] = weir_storage_open(r->env, uri, errstr, errlen);
    return r->st[self_contained];
}

/* Every file of the keyed handle @p h of task @p t exists with its size. */
static int check_handle(roots_t *roots, const char *file, const weir_ckpt_task_t *t,
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
            char key[WEIR_STORAGE_KEY_MAX + 1];
            if (weir_layout_keyed_key(self_contained, ck, task, l == 0, name, key, sizeof key) != 0)
                return weir_errf(errstr, errlen, WEIR_ECORRUPT,
                                 "%s is corrupt: %s names the file '%.64s' of task '%.64s': not a "
                                 "plain file name",
                                 file, ewhat, name, task);
            char serr[WEIR_STORAGE_URI_MAX + 256] = "";
            weir_storage_t *st = root_of(roots, self_contained, serr, sizeof serr);
            if (!st)
                return weir_errf(errstr, errlen, WEIR_ECORRUPT, "%s", serr);
            char uri[WEIR_STORAGE_URI_MAX];
            weir_storage_uri_join(weir_storage_uri(st), key, uri, sizeof uri);
            uint64_t got = 0;
            int r = weir_storage_stat(st, key, &got, serr, sizeof serr);
            if (r == WEIR_ENOTFOUND)
                return weir_errf(errstr, errlen, WEIR_ENOTFOUND,
                                 "%s: missing (the savepoint is incomplete)", uri);
            if (r != 0)
                return weir_errf(errstr, errlen, r == WEIR_ENET ? WEIR_ENET : WEIR_EIO,
                                 "cannot read %s: %s", uri, serr);
            if (got != size)
                return weir_errf(errstr, errlen, WEIR_ECORRUPT,
                                 "%s: has %" PRIu64 " bytes, _metadata says %" PRIu64, uri, got,
                                 size);
        }
    }
    return 0;
}

/* Resolves @p path into the canonical URI of the directory holding its _metadata (@p dir) and
 * the storage rooted there (@p *st, NULL when the answer is an error) and the object's name. */
static int locate(weir_storage_env_t *env, const char *path, weir_storage_t **st, char *fname,
                  size_t fcap, char *errstr, size_t errlen) {
    *st = NULL;
    char abs[WEIR_STORAGE_URI_MAX];
    bool uri = strstr(path, "://") != NULL;
    if (!uri) {
        /* a local path: its realpath (relative paths from the working directory; the base is
         * a realpath so its ".." entries are real parents) */
        char *real = realpath(path, NULL);
        if (!real) {
            if (errno == ENOENT || errno == ENOTDIR)
                return weir_errf(errstr, errlen, WEIR_ENOTFOUND, "%s does not exist", path);
            return weir_errf(errstr, errlen, WEIR_EIO, "cannot read %s: %s", path, strerror(errno));
        }
        weir_fmt(abs, sizeof abs, "%s", real);
        free(real);
    } else {
        weir_fmt(abs, sizeof abs, "%s", path);
        size_t n = strlen(abs);
        while (n > 0 && abs[n - 1] == '/' && strstr(abs, "://") + 3 < abs + n - 1)
            abs[--n] = 0;
    }
    char why[WEIR_STORAGE_URI_MAX + 256] = "";
    if (weir_storage_uri_check(abs, why, sizeof why) != 0)
        return weir_errf(errstr, errlen, WEIR_ECONFIG, "%s", why);
    weir_storage_t *dir = weir_storage_open(env, abs, why, sizeof why);
    if (!dir)
        return weir_errf(errstr, errlen, WEIR_ECONFIG, "%s", why);
    uint64_t size = 0;
    int rc = weir_storage_stat(dir, "_metadata", &size, why, sizeof why);
    if (rc == 0) {
        weir_fmt(fname, fcap, "_metadata");
        *st = dir;
        return 0;
    }
    if (rc != WEIR_ENOTFOUND) {
        weir_storage_close(&dir);
        return weir_errf(errstr, errlen, rc == WEIR_ENET ? WEIR_ENET : WEIR_EIO, "%s", why);
    }
    /* not a directory with a _metadata: the object itself (the _metadata, maybe renamed)? */
    char parent[WEIR_STORAGE_URI_MAX];
    const char *name = weir_storage_uri_base(abs);
    if (weir_storage_uri_parent(abs, parent, sizeof parent) == 0 && name[0]) {
        weir_storage_t *up = weir_storage_open(env, parent, why, sizeof why);
        int r = up ? weir_storage_stat(up, name, &size, why, sizeof why) : WEIR_ECONFIG;
        if (r == 0) {
            weir_storage_close(&dir);
            weir_fmt(fname, fcap, "%s", name);
            *st = up;
            return 0;
        }
        weir_storage_close(&up);
        if (r != WEIR_ENOTFOUND) {
            weir_storage_close(&dir);
            return weir_errf(errstr, errlen, r == WEIR_ENET ? WEIR_ENET : WEIR_EIO, "%s", why);
        }
    }
    /* something under it (a directory without _metadata) or nothing at all */
    bool any = false;
    int lr = weir_storage_list(dir, "", false, first_entry, &any, why, sizeof why);
    weir_storage_close(&dir);
    if (lr != 0 && lr != 1)
        return weir_errf(errstr, errlen, lr == WEIR_ENET ? WEIR_ENET : WEIR_EIO, "%s", why);
    if (!any && !uri)
        any = true; /* a local directory that exists (realpath found it) */
    if (!any)
        return weir_errf(errstr, errlen, WEIR_ENOTFOUND, "%s does not exist", path);
    return weir_errf(errstr, errlen, WEIR_ENOTFOUND,
                     "%s: no _metadata: not a savepoint or checkpoint directory (was it "
                     "completed?)",
                     path);
}

static int first_entry(void *arg, const char *name, bool is_dir, uint64_t size) {
    (void)name, (void)is_dir, (void)size;
    *(bool *)arg = true;
    return 1;
}

int weir_savepoint_read(weir_storage_env_t *env, const char *path, weir_ckpt_meta_t *m, char *base,
                        size_t base_cap, char *errstr, size_t errlen) {
    memset(m, 0, sizeof *m);
    if (base && base_cap)
        base[0] = 0;
    if (!path || !path[0])
        return weir_errf(errstr, errlen, WEIR_EINVAL,
                         "no savepoint path: pass a savepoint or checkpoint directory");
    weir_storage_t *st = NULL;
    char fname[WEIR_STORAGE_KEY_MAX + 1];
    int rc = locate(env, path, &st, fname, sizeof fname, errstr, errlen);
    if (rc != 0)
        return rc;
    const char *real = weir_storage_uri(st);
    if (!base || strlen(real) >= base_cap) {
        rc = weir_errf(errstr, errlen, WEIR_EINVAL, "%s: the path is too long", real);
        weir_storage_close(&st);
        return rc;
    }
    weir_fmt(base, base_cap, "%s", real);
    char file[WEIR_STORAGE_URI_MAX + WEIR_STORAGE_KEY_MAX];
    weir_fmt(file, sizeof file, "%s/%s", strcmp(base, "/") == 0 ? "" : base, fname);
    uint8_t *data = NULL;
    size_t len = 0;
    char gerr[WEIR_STORAGE_URI_MAX + 256] = "";
    rc = weir_storage_get(st, fname, WEIR_SAVEPOINT_META_MAX, &data, &len, gerr, sizeof gerr);
    weir_storage_close(&st);
    if (rc == WEIR_ENOTFOUND)
        return weir_errf(errstr, errlen, WEIR_ENOTFOUND,
                         "%s: no _metadata: not a savepoint or checkpoint directory (was it "
                         "completed?)",
                         path);
    if (rc != 0)
        return weir_errf(errstr, errlen, rc == WEIR_ENET ? WEIR_ENET : WEIR_EIO, "%s", gerr);
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
    roots_t roots = {.env = env, .base = base};
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
            rc = check_handle(&roots, file, t, h, errstr, errlen);
        json_decref(h);
    }
    weir_storage_close(&roots.st[0]);
    weir_storage_close(&roots.st[1]);
    weir__sp_view_free(&view);
    if (rc != 0)
        weir_ckpt_meta_clear(m);
    return rc;
}
