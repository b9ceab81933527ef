/* Owns keyed-state snapshots for checkpoints and savepoints (state/snapshot.h): the synchronous
 * RocksDB checkpoint (hard links in "<backend path>.chk-<id>"), the asynchronous upload through
 * the checkpoint storage (storage/storage.h; a POSIX directory or S3) rooted at the job's
 * checkpoint directory (SSTs as shared/<name> once, the rest as chk-<n>/<task>/<file>) or, for a
 * savepoint, at its directory (every file as <task>/<file>), the keyed-state handle JSON, the
 * per-backend registry of uploaded SSTs, and the pure operator-state redistribution. Restore is
 * in restore.c (it uses the registry through state_int.h).
 *
 * Invariants:
 *  - an object under the storage root appears only whole (the storage's put guarantee: POSIX
 *    temporary name + fsync + rename, S3 one PUT or a completed multipart upload); this file has
 *    no file-system durability logic of its own. The handle is returned only after every upload
 *    of the snapshot succeeded;
 *  - an SST is referenced without uploading only if it is "confirmed": uploaded for (or restored
 *    from) a checkpoint that completed. Uploads of a checkpoint become pending entries (only when
 *    the whole upload succeeded); confirm(n) turns pending entries of checkpoints <= n into
 *    confirmed ones. Shared names are "<instance>-<sst>" (RocksDB never reuses a file number in a
 *    DB and the instance id is new per opened backend, so names never collide); a non-incremental
 *    upload uses "<instance>-c<n>-<sst>" and is never recorded;
 *  - confirmed entries whose local SST is no longer live are pruned at take (file numbers are
 *    never reused, so they can never be referenced again).
 * Threading: take / confirm / restore on the subtask thread; upload on any thread. The registry
 * (weir_snapreg_t, hanging off the backend) is the only state shared between them and is guarded
 * by its mutex; a snapshot owns copies of everything else it needs. */
#include "state/snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "savepoint/layout.h"
#include "state/state_int.h"
#include "storage/storage.h"

#define COMP "snapshot"

typedef struct sst_ref {
    char *local;  /* RocksDB file name, e.g. 000012.sst */
    char *shared; /* file name in <checkpoint_dir>/shared/ */
    uint64_t ckpt;
} sst_ref_t;

typedef struct ref_list {
    sst_ref_t *v;
    size_t n, cap;
} ref_list_t;

struct weir_snapreg {
    pthread_mutex_t mu;
    char instance[17]; /* 16 hex digits */
    ref_list_t confirmed;
    ref_list_t pending;
};

typedef struct snap_file {
    char *name;
    uint64_t size;
    bool sst;
} snap_file_t;

struct weir_state_snapshot {
    weir_snapreg_t *reg; /* owned by the backend, which outlives the upload */
    uint64_t id;
    char *local_dir; /* NULL once removed */
    snap_file_t *files;
    size_t n_files;
    char instance[17];
    uint32_t max_par;
    char **states;
    uint32_t n_states;
};

/* ------------------------------------------------------------------------------------------ */
/* helpers                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static char *path_join(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    char *p = malloc(la + lb + 2);
    if (!p)
        return NULL;
    memcpy(p, a, la);
    p[la] = '/';
    memcpy(p + la + 1, b, lb + 1);
    return p;
}

static bool has_suffix(const char *s, const char *suf) {
    size_t ls = strlen(s), lf = strlen(suf);
    return ls >= lf && strcmp(s + ls - lf, suf) == 0;
}

/* A plain file name: no path separators, not "." or "..", not empty. */
bool weir__snap_safe_name(const char *s) {
    return s && s[0] && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

static void ref_list_clear(ref_list_t *l) {
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].local);
        free(l->v[i].shared);
    }
    free(l->v);
    *l = (ref_list_t){0};
}

/* Appends (taking ownership of local/shared only on success). */
static int ref_list_push(ref_list_t *l, char *local, char *shared, uint64_t ckpt) {
    void *v = l->v;
    if (weir_array_grow(&v, &l->cap, l->n + 1, sizeof(sst_ref_t), 16) != 0)
        return WEIR_ENOMEM;
    l->v = v;
    l->v[l->n++] = (sst_ref_t){.local = local, .shared = shared, .ckpt = ckpt};
    return 0;
}

static const sst_ref_t *ref_list_find(const ref_list_t *l, const char *local) {
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i].local, local) == 0)
            return &l->v[i];
    return NULL;
}

static int new_instance(char out[17]) {
    uint8_t b[8];
    int rc = weir_random_bytes(b, sizeof(b));
    if (rc == 0)
        weir_hex_encode(b, sizeof(b), out);
    return rc;
}

/* The backend's registry, created on first use (subtask thread). */
static weir_snapreg_t *get_reg(weir_state_backend_t *sb) {
    weir_snapreg_t **slot = weir_state_int_snapreg(sb);
    if (*slot)
        return *slot;
    weir_snapreg_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    if (new_instance(r->instance) != 0 || pthread_mutex_init(&r->mu, NULL) != 0) {
        free(r);
        return NULL;
    }
    *slot = r;
    return r;
}

int weir__snap_confirm_restored(weir_state_backend_t *sb, const char *local, const char *shared) {
    weir_snapreg_t *reg = get_reg(sb);
    char *l = strdup(local), *sh = strdup(shared);
    int rc = WEIR_ENOMEM;
    if (reg && l && sh) {
        pthread_mutex_lock(&reg->mu);
        rc = ref_list_push(&reg->confirmed, l, sh, 0);
        pthread_mutex_unlock(&reg->mu);
    }
    if (rc != 0) {
        free(l);
        free(sh);
    }
    return rc;
}

void weir_snapreg_free(weir_snapreg_t *reg) {
    if (!reg)
        return;
    ref_list_clear(&reg->confirmed);
    ref_list_clear(&reg->pending);
    pthread_mutex_destroy(&reg->mu);
    free(reg);
}

/* ------------------------------------------------------------------------------------------ */
/* take                                                                                       */
/* ------------------------------------------------------------------------------------------ */

void weir_state_snapshot_free(weir_state_snapshot_t **psnap) {
    if (!psnap || !*psnap)
        return;
    weir_state_snapshot_t *s = *psnap;
    *psnap = NULL;
    if (s->local_dir && weir_rmtree(s->local_dir) != 0)
        WEIR_WARN(COMP, "cannot remove local checkpoint directory %s", s->local_dir);
    free(s->local_dir);
    for (size_t i = 0; i < s->n_files; i++)
        free(s->files[i].name);
    free(s->files);
    for (uint32_t i = 0; i < s->n_states; i++)
        free(s->states[i]);
    free(s->states);
    free(s);
}

/* Lists the regular files of the local checkpoint directory with their sizes. */
static int list_files(weir_state_snapshot_t *s, char *errstr, size_t errlen) {
    DIR *d = opendir(s->local_dir);
    if (!d) {
        weir_fmt(errstr, errlen, "snapshot: cannot list %s: %s", s->local_dir, strerror(errno));
        return WEIR_EIO;
    }
    size_t cap = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char *p = path_join(s->local_dir, de->d_name);
        struct stat st;
        if (!p) {
            rc = WEIR_ENOMEM;
            break;
        }
        if (stat(p, &st) != 0) {
            weir_fmt(errstr, errlen, "snapshot: cannot stat %s: %s", p, strerror(errno));
            free(p);
            rc = WEIR_EIO;
            break;
        }
        free(p);
        if (!S_ISREG(st.st_mode))
            continue;
        void *nf = s->files;
        if (weir_array_grow(&nf, &cap, s->n_files + 1, sizeof(snap_file_t), 16) != 0) {
            rc = WEIR_ENOMEM;
            break;
        }
        s->files = nf;
        char *name = strdup(de->d_name);
        if (!name) {
            rc = WEIR_ENOMEM;
            break;
        }
        s->files[s->n_files++] = (snap_file_t){
            .name = name, .size = (uint64_t)st.st_size, .sst = has_suffix(name, ".sst")};
    }
    closedir(d);
    if (rc == WEIR_ENOMEM)
        weir_fmt(errstr, errlen, "snapshot: out of memory listing %s", s->local_dir);
    return rc;
}

/* Drops confirmed entries whose SST is not in this snapshot (no longer live: never again). */
static void prune_confirmed(weir_snapreg_t *reg, const weir_state_snapshot_t *s) {
    pthread_mutex_lock(&reg->mu);
    ref_list_t *c = &reg->confirmed;
    size_t w = 0;
    for (size_t i = 0; i < c->n; i++) {
        bool live = false;
        for (size_t j = 0; j < s->n_files && !live; j++)
            live = s->files[j].sst && strcmp(s->files[j].name, c->v[i].local) == 0;
        if (live) {
            c->v[w++] = c->v[i];
        } else {
            free(c->v[i].local);
            free(c->v[i].shared);
        }
    }
    c->n = w;
    pthread_mutex_unlock(&reg->mu);
}

weir_state_snapshot_t *weir_state_snapshot_take(weir_state_backend_t *sb, uint64_t checkpoint_id,
                                                char *errstr, size_t errlen) {
    char *err = NULL;
    if (errstr && errlen)
        errstr[0] = '\0';
    if (!sb) {
        weir_fmt(errstr, errlen, "snapshot: no state backend");
        return NULL;
    }
    int64_t t0 = weir_now_ns();
    weir_snapreg_t *reg = get_reg(sb);
    weir_state_snapshot_t *s = calloc(1, sizeof(*s));
    if (!reg || !s)
        goto oom;
    s->reg = reg;
    s->id = checkpoint_id;
    memcpy(s->instance, reg->instance, sizeof(s->instance));
    s->max_par = weir_state_int_max_par(sb);
    s->n_states = weir_state_int_n_states(sb);
    s->states = calloc(s->n_states ? s->n_states : 1, sizeof(*s->states));
    if (!s->states)
        goto oom;
    for (uint32_t i = 0; i < s->n_states; i++)
        if (!(s->states[i] = strdup(weir_state_int_state_name(sb, i))))
            goto oom;

    /* "<path>.chk-<id>" beside the backend's directory (same filesystem: hard links) */
    const char *path = weir_state_int_path(sb);
    size_t pl = strlen(path);
    while (pl > 1 && path[pl - 1] == '/')
        pl--;
    size_t dl = pl + 32;
    if (!(s->local_dir = malloc(dl)))
        goto oom;
    snprintf(s->local_dir, dl, "%.*s.chk-%llu", (int)pl, path, (unsigned long long)checkpoint_id);
    if (weir_rmtree(s->local_dir) != 0) {
        weir_fmt(errstr, errlen, "snapshot: cannot remove stale %s", s->local_dir);
        goto fail;
    }

    int rc = weir_state_flush(sb);
    if (rc != 0) {
        weir_fmt(errstr, errlen, "snapshot: writing the state cache to RocksDB failed: %s",
                 weir_strerror(rc));
        goto fail;
    }
    int64_t t1 = weir_now_ns();
    rocksdb_checkpoint_t *cp = rocksdb_checkpoint_object_create(weir_state_int_db(sb), &err);
    if (!err)
        rocksdb_checkpoint_create(cp, s->local_dir, 0, &err);
    if (cp)
        rocksdb_checkpoint_object_destroy(cp);
    if (err) {
        weir_fmt(errstr, errlen, "snapshot: RocksDB checkpoint into %s failed: %s", s->local_dir,
                 err);
        rocksdb_free(err);
        goto fail;
    }
    if (list_files(s, errstr, errlen) != 0)
        goto fail;
    prune_confirmed(reg, s);
    int64_t t2 = weir_now_ns();
    WEIR_DEBUG(COMP, "snapshot %llu of %s: %zu files, cache flush %.1f ms, checkpoint %.1f ms",
               (unsigned long long)checkpoint_id, path, s->n_files, (double)(t1 - t0) / 1e6,
               (double)(t2 - t1) / 1e6);
    return s;
oom:
    weir_fmt(errstr, errlen, "snapshot: out of memory taking checkpoint %llu",
             (unsigned long long)checkpoint_id);
fail:
    weir_state_snapshot_free(&s);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* upload                                                                                     */
/* ------------------------------------------------------------------------------------------ */

/* A file entry of the handle; @p sst marks an SST in "private" (self-contained layout). */
static json_t *file_obj(const char *name, const char *local, uint64_t size, bool sst) {
    json_t *o = json_object();
    if (!o)
        return NULL;
    if (json_object_set_new(o, "name", json_string(name)) != 0 ||
        (local && json_object_set_new(o, "local", json_string(local)) != 0) ||
        json_object_set_new(o, "size", json_integer((json_int_t)size)) != 0 ||
        (sst && json_object_set_new(o, "sst", json_true()) != 0)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int weir_state_snapshot_upload(weir_state_snapshot_t *snap, weir_storage_t *st, const char *task,
                               weir_upload_mode_t mode, char **handle_json, uint64_t *state_size,
                               uint64_t *uploaded_size, char *errstr, size_t errlen) {
    if (errstr && errlen)
        errstr[0] = '\0';
    if (!snap || !st || !weir__snap_safe_name(task) || !handle_json || !snap->local_dir ||
        (mode != WEIR_UPLOAD_INCREMENTAL && mode != WEIR_UPLOAD_FULL &&
         mode != WEIR_UPLOAD_SELF_CONTAINED)) {
        weir_fmt(errstr, errlen, "snapshot upload: bad arguments (task name '%s', mode %d)",
                 task ? task : "(null)", (int)mode);
        return WEIR_EINVAL;
    }
    bool incremental = mode == WEIR_UPLOAD_INCREMENTAL;
    bool self_contained = mode == WEIR_UPLOAD_SELF_CONTAINED;
    int rc = WEIR_ENOMEM;
    char *sname = NULL;
    ref_list_t mine = {0};
    uint64_t total = 0, written = 0;
    size_t n_up = 0;
    /* per file: its upload (key and local path, malloc'd; n_up of them) */
    weir_storage_upload_t *up = calloc(snap->n_files ? snap->n_files : 1, sizeof(*up));
    json_t *root = json_object(), *jsh = json_array(), *jpr = json_array(), *jst = json_array();
    if (!up || !root || !jsh || !jpr || !jst)
        goto oom;
    /* keys (savepoint/layout.h): checkpoint: shared/<name> and chk-<n>/<task>/<file> under the
     * job's checkpoint directory; self-contained (savepoint): <task>/<file> under its directory */
    for (size_t i = 0; i < snap->n_files; i++) {
        const snap_file_t *f = &snap->files[i];
        total += f->size;
        bool shared = f->sst && !self_contained;
        bool have = false;
        if (shared) {
            if (incremental) {
                pthread_mutex_lock(&snap->reg->mu);
                const sst_ref_t *c = ref_list_find(&snap->reg->confirmed, f->name);
                if (c)
                    sname = strdup(c->shared);
                have = c != NULL;
                pthread_mutex_unlock(&snap->reg->mu);
                if (have && !sname)
                    goto oom;
            }
            if (!have) {
                size_t nl = strlen(f->name) + 64;
                if (!(sname = malloc(nl)))
                    goto oom;
                if (incremental)
                    snprintf(sname, nl, "%s-%s", snap->instance, f->name);
                else
                    snprintf(sname, nl, "%s-c%llu-%s", snap->instance, (unsigned long long)snap->id,
                             f->name);
            }
        }
        const char *name = shared ? sname : f->name;
        if (!have) {
            char key[WEIR_STORAGE_KEY_MAX + 1];
            if (weir_layout_keyed_key(self_contained, snap->id, task, shared, name, key,
                                      sizeof(key)) != 0) {
                rc = WEIR_EINVAL;
                weir_fmt(errstr, errlen, "snapshot upload: file %s of %s makes a bad key", name,
                         task);
                goto fail;
            }
            up[n_up].key = strdup(key);
            up[n_up].path = path_join(snap->local_dir, f->name);
            n_up++;
            if (!up[n_up - 1].key || !up[n_up - 1].path)
                goto oom;
            if (shared && incremental) {
                char *l = strdup(f->name), *sh = strdup(sname);
                if (!l || !sh || ref_list_push(&mine, l, sh, snap->id) != 0) {
                    free(l);
                    free(sh);
                    goto oom;
                }
            }
        }
        json_t *fo = shared ? file_obj(sname, f->name, f->size, false)
                            : file_obj(f->name, NULL, f->size, f->sst);
        if (json_array_append_new(shared ? jsh : jpr, fo) != 0)
            goto oom;
        free(sname);
        sname = NULL;
    }
    /* in parallel, bounded by the env's upload slots; each object appears whole or not at all */
    rc = weir_storage_put_files(st, up, n_up, errstr, errlen);
    if (rc != 0)
        goto fail;
    for (size_t i = 0; i < n_up; i++) {
        const char *base = strrchr(up[i].path, '/') + 1;
        for (size_t j = 0; j < snap->n_files; j++)
            if (strcmp(snap->files[j].name, base) == 0 && snap->files[j].size != up[i].size) {
                rc = WEIR_ECORRUPT;
                weir_fmt(errstr, errlen,
                         "snapshot: %s has %llu bytes, expected %llu (changed while uploading)",
                         up[i].path, (unsigned long long)up[i].size,
                         (unsigned long long)snap->files[j].size);
                goto fail;
            }
        written += up[i].size;
    }
    for (uint32_t i = 0; i < snap->n_states; i++)
        if (json_array_append_new(jst, json_string(snap->states[i])) != 0)
            goto oom;
    if (json_object_set_new(root, "version", json_integer(1)) != 0 ||
        json_object_set_new(root, "checkpoint", json_integer((json_int_t)snap->id)) != 0 ||
        json_object_set_new(root, "task", json_string(task)) != 0 ||
        (self_contained &&
         json_object_set_new(root, "layout", json_string(WEIR_LAYOUT_SELF_CONTAINED)) != 0) ||
        json_object_set(root, "shared", jsh) != 0 || json_object_set(root, "private", jpr) != 0 ||
        json_object_set_new(root, "max_parallelism", json_integer(snap->max_par)) != 0 ||
        json_object_set(root, "states", jst) != 0)
        goto oom;
    char *text = json_dumps(root, JSON_COMPACT);
    if (!text)
        goto oom;
    /* the checkpoint's uploads wait for its completion (confirm) */
    pthread_mutex_lock(&snap->reg->mu);
    int prc = 0;
    for (size_t i = 0; i < mine.n && prc == 0; i++) {
        prc = ref_list_push(&snap->reg->pending, mine.v[i].local, mine.v[i].shared, snap->id);
        if (prc == 0)
            mine.v[i].local = mine.v[i].shared = NULL;
    }
    pthread_mutex_unlock(&snap->reg->mu);
    if (prc != 0) {
        free(text);
        goto oom;
    }
    *handle_json = text;
    if (state_size)
        *state_size = total;
    if (uploaded_size)
        *uploaded_size = written;
    WEIR_DEBUG(COMP, "uploaded snapshot %llu of %s to %s: %llu bytes referenced, %llu written",
               (unsigned long long)snap->id, task, weir_storage_uri(st), (unsigned long long)total,
               (unsigned long long)written);
    if (weir_rmtree(snap->local_dir) != 0)
        WEIR_WARN(COMP, "cannot remove local checkpoint directory %s", snap->local_dir);
    free(snap->local_dir);
    snap->local_dir = NULL;
    rc = 0;
    goto done;
oom:
    rc = WEIR_ENOMEM;
    weir_fmt(errstr, errlen, "snapshot upload: out of memory");
fail:
done:
    for (size_t i = 0; up && i < n_up; i++) {
        free((char *)up[i].key);
        free((char *)up[i].path);
    }
    free(up);
    ref_list_clear(&mine);
    json_decref(root);
    json_decref(jsh);
    json_decref(jpr);
    json_decref(jst);
    free(sname);
    return rc;
}

void weir_state_snapshot_confirm(weir_state_backend_t *sb, uint64_t checkpoint_id) {
    if (!sb || !*weir_state_int_snapreg(sb))
        return;
    weir_snapreg_t *reg = *weir_state_int_snapreg(sb);
    pthread_mutex_lock(&reg->mu);
    ref_list_t *p = &reg->pending;
    size_t w = 0;
    for (size_t i = 0; i < p->n; i++) {
        sst_ref_t r = p->v[i];
        if (r.ckpt > checkpoint_id) {
            p->v[w++] = r;
            continue;
        }
        if (ref_list_find(&reg->confirmed, r.local) ||
            ref_list_push(&reg->confirmed, r.local, r.shared, r.ckpt) != 0) {
            /* already confirmed (re-uploaded under the same name), or no memory: the file is
             * simply uploaded again next time */
            free(r.local);
            free(r.shared);
        }
    }
    p->n = w;
    pthread_mutex_unlock(&reg->mu);
}

/* ------------------------------------------------------------------------------------------ */
/* operator state redistribution                                                              */
/* ------------------------------------------------------------------------------------------ */

int weir_opstate_redistribute(weir_opstate_mode_t mode, const weir_opstate_elem_t *const *old,
                              const size_t *old_n, uint32_t n_old, uint32_t n_new,
                              weir_opstate_elem_t **out, size_t *out_n) {
    if (n_new == 0 || !out || !out_n || (n_old && (!old || !old_n)))
        return WEIR_EINVAL;
    size_t total = 0;
    for (uint32_t i = 0; i < n_old; i++) {
        if (old_n[i] && !old[i])
            return WEIR_EINVAL;
        total += old_n[i];
    }
    for (uint32_t j = 0; j < n_new; j++) {
        out[j] = NULL;
        out_n[j] = 0;
    }
    for (uint32_t j = 0; j < n_new; j++) {
        size_t cnt =
            mode == WEIR_OPSTATE_UNION ? total : total / n_new + (j < total % n_new ? 1 : 0);
        out[j] = malloc((cnt ? cnt : 1) * sizeof(**out));
        if (!out[j]) {
            for (uint32_t k = 0; k < j; k++) {
                free(out[k]);
                out[k] = NULL;
            }
            return WEIR_ENOMEM;
        }
    }
    size_t k = 0;
    for (uint32_t i = 0; i < n_old; i++)
        for (size_t e = 0; e < old_n[i]; e++, k++) {
            if (mode == WEIR_OPSTATE_UNION) {
                for (uint32_t j = 0; j < n_new; j++)
                    out[j][out_n[j]++] = old[i][e];
            } else {
                uint32_t j = (uint32_t)(k % n_new);
                out[j][out_n[j]++] = old[i][e];
            }
        }
    return 0;
}
