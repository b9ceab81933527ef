/* Owns checkpoint storage (ckpt_store.h): the whole-object write of _metadata (its format is
 * savepoint/metadata.c; through storage/storage.h, a POSIX directory or S3) and its verified read,
 * the
 * listing of chk-<n> directories, the search for the latest restorable checkpoint up to the latest
 * completed one (corrupt ones fall back to the previous, with a WARN), and retention + garbage
 * collection of <ckdir>.
 *
 * Invariants: _metadata is written whole by one weir_storage_put, so a
 * checkpoint exists iff its _metadata verifies; a chk-<n> directory without a valid _metadata is
 * never restored from, nor one above the latest completed id; a read error (after the retries of
 * store_io.h) is never taken for corruption: it fails the search and, in retention, keeps the
 * checkpoint and every file of shared/ for the next round; retention never deletes the pinned
 * checkpoint (the one the HA pointer names) nor the shared files it references, the in-flight
 * checkpoint, chk-0, a directory a retained handle names, nor (while something is in flight)
 * anything in shared/; an unreferenced entry is deleted only in the second round that finds it
 * unreferenced (weir_ckpt_gc_marks_t: object storage has no modification times).
 *
 * Threading: stateless; no knowledge of the job manager. The job manager calls it on its main
 * thread with its mutex held, never for the same <ckdir> concurrently. */
#include "jobmanager/ckpt_store.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "jobmanager/store_io.h"

#define COMP "checkpoint"

/* ---------------------------------------------------------------- _metadata files */

#define META_KEY_MAX 64

int weir_ckpt_meta_write(weir_storage_t *ck, const weir_ckpt_meta_t *m, char *errstr,
                         size_t errlen) {
    char key[META_KEY_MAX];
    weir_fmt(key, sizeof key, "chk-%" PRIu64 "/_metadata", m->id);
    char *text = NULL;
    size_t len = 0;
    int rc = weir_ckpt_meta_encode(m, &text, &len);
    if (rc != 0) {
        weir_fmt(errstr, errlen, "cannot encode the metadata of checkpoint %" PRIu64 ": %s", m->id,
                 rc == WEIR_EINVAL ? "a keyed-state handle is not JSON" : "out of memory");
        return rc;
    }
    /* one whole-object put: durable and complete when it returns (storage.h), written last */
    rc = weir_storage_put(ck, key, text, len, errstr, errlen);
    free(text);
    return rc;
}

int weir_ckpt_meta_read(weir_storage_t *ck, uint64_t id, const weir_store_io_t *io,
                        weir_ckpt_meta_t *m, char *errstr, size_t errlen) {
    char key[META_KEY_MAX], uri[WEIR_STORAGE_URI_MAX];
    weir_fmt(key, sizeof key, "chk-%" PRIu64 "/_metadata", id);
    weir_storage_uri_join(weir_storage_uri(ck), key, uri, sizeof uri);
    uint8_t *data = NULL;
    size_t len = 0;
    memset(m, 0, sizeof *m);
    int rc = weir_store_read(io, COMP, ck, key, WEIR_STORE_READ_MAX, &data, &len, errstr, errlen);
    if (rc == WEIR_ENOTFOUND) {
        weir_fmt(errstr, errlen, "%s does not exist", uri);
        return WEIR_ENOTFOUND;
    }
    if (rc != 0)
        return WEIR_EIO; /* errstr names the object and why: not corruption */
    rc = weir_ckpt_meta_decode((const char *)data, len, m, errstr, errlen);
    free(data);
    if (rc == WEIR_ENOMEM)
        return weir_errf(errstr, errlen, WEIR_EIO, "out of memory decoding %s", uri);
    if (rc == 0 && m->id != id) {
        weir_fmt(errstr, errlen, "it names checkpoint %" PRIu64, m->id);
        weir_ckpt_meta_clear(m);
        return WEIR_ECORRUPT;
    }
    return rc == 0 ? 0 : WEIR_ECORRUPT;
}

/* ---------------------------------------------------------------- directories */

void weir_ckpt_chk_path(const char *ckdir, uint64_t id, char *out, size_t cap) {
    weir_fmt(out, cap, "%s/chk-%" PRIu64, ckdir, id);
}

void weir_ckpt_chk_key(uint64_t id, char *out, size_t cap) {
    weir_fmt(out, cap, "chk-%" PRIu64, id);
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Parses "chk-<n>" (n >= 1, digits only). */
static bool parse_chk(const char *name, uint64_t *id) {
    if (strncmp(name, "chk-", 4) != 0 || !name[4])
        return false;
    uint64_t v = 0;
    for (const char *p = name + 4; *p; p++) {
        if (*p < '0' || *p > '9' || v > UINT64_MAX / 10 - 10)
            return false;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *id = v;
    return v >= 1;
}

bool weir_ckpt_id_of_path(const char *path, uint64_t *id) {
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/')
        len--;
    size_t start = len;
    while (start > 0 && path[start - 1] != '/')
        start--;
    char name[32];
    if (len - start >= sizeof name)
        return false;
    memcpy(name, path + start, len - start);
    name[len - start] = 0;
    return parse_chk(name, id);
}

typedef struct list_ids {
    uint64_t *ids;
    size_t n, cap;
    bool any, oom;
} list_ids_t;

static int collect_chk(void *arg, const char *name, bool is_dir, uint64_t size) {
    (void)size;
    list_ids_t *l = arg;
    l->any = true;
    uint64_t id;
    if (!is_dir || !parse_chk(name, &id))
        return 0;
    if (weir_array_grow((void **)&l->ids, &l->cap, l->n + 1, sizeof *l->ids, 16) != 0) {
        l->oom = true;
        return WEIR_ENOMEM;
    }
    l->ids[l->n++] = id;
    return 0;
}

int weir_ckpt_list_dirs(weir_storage_t *ck, uint64_t **ids, size_t *n, bool *any, char *errstr,
                        size_t errlen) {
    *ids = NULL;
    *n = 0;
    if (any)
        *any = false;
    char why[WEIR_STORAGE_URI_MAX + 256] = "";
    list_ids_t l = {0};
    int rc = weir_storage_list(ck, "", false, collect_chk, &l, why, sizeof why);
    if (rc != 0) {
        free(l.ids);
        if (l.oom)
            return weir_errf(errstr, errlen, WEIR_ENOMEM, "out of memory listing %s",
                             weir_storage_uri(ck));
        if (errstr && errlen)
            weir_fmt(errstr, errlen, "%s", why);
        return rc;
    }
    if (l.n)
        qsort(l.ids, l.n, sizeof *l.ids, cmp_u64);
    *ids = l.ids;
    *n = l.n;
    if (any)
        *any = l.any;
    return 0;
}

uint64_t weir_ckpt_max_dir_id(weir_storage_t *ck) {
    uint64_t *ids = NULL;
    size_t n = 0;
    weir_ckpt_list_dirs(ck, &ids, &n, NULL, NULL, 0);
    uint64_t max = n ? ids[n - 1] : 0;
    free(ids);
    return max;
}

int weir_ckpt_delete_dir(weir_storage_t *ck, uint64_t id, char *errstr, size_t errlen) {
    char key[META_KEY_MAX];
    weir_ckpt_chk_key(id, key, sizeof key);
    return weir_storage_delete_prefix(ck, key, errstr, errlen);
}

int weir_ckpt_find_latest(weir_storage_t *ck, const char *job_id, uint64_t max_id, bool required,
                          const weir_store_io_t *io, weir_ckpt_meta_t *out, char *errstr,
                          size_t errlen) {
    memset(out, 0, sizeof *out);
    const char *ckdir = weir_storage_uri(ck);
    uint64_t *ids = NULL;
    size_t n = 0;
    bool any = false;
    char lerr[WEIR_STORAGE_URI_MAX + 256] = "";
    int lrc = weir_ckpt_list_dirs(ck, &ids, &n, &any, lerr, sizeof lerr);
    if (lrc != 0) {
        weir_fmt(errstr, errlen, "cannot list checkpoint directory %s: %s", ckdir, lerr);
        return lrc == WEIR_ENOMEM ? WEIR_ENOMEM : WEIR_EIO;
    }
    if (!any) { /* nothing under it: object storage has no empty directories */
        free(ids);
        if (required)
            weir_fmt(errstr, errlen, "checkpoint directory %s is missing: cannot restore job %s",
                     ckdir, job_id);
        else
            weir_fmt(errstr, errlen, "no checkpoint directory %s", ckdir);
        return WEIR_ENOTFOUND;
    }
    bool bounded = max_id != WEIR_CKPT_ANY, present = false;
    for (size_t i = 0; bounded && i < n; i++)
        present = present || ids[i] == max_id;
    if (bounded && !present) {
        free(ids);
        char path[4200];
        weir_ckpt_chk_path(ckdir, max_id, path, sizeof path);
        weir_fmt(errstr, errlen, "checkpoint directory %s is missing: cannot restore job %s", path,
                 job_id);
        return WEIR_ENOTFOUND;
    }
    /* corrupt ones met so far, warned once the fallback is known */
    uint64_t corrupt_id[8];
    char corrupt_why[8][256];
    size_t n_corrupt = 0;
    int rc = WEIR_ENOTFOUND;
    char fail[600] = "";
    for (size_t i = n; i-- > 0;) {
        if (ids[i] > max_id) {
            WEIR_WARN(COMP,
                      "checkpoint chk-%" PRIu64 " of job %s is newer than chk-%" PRIu64
                      ", the latest completed one: it never completed, not restored",
                      ids[i], job_id, max_id);
            continue;
        }
        char why[512] = "";
        int r = weir_ckpt_meta_read(ck, ids[i], io, out, why, sizeof why);
        if (r == WEIR_ENOTFOUND && ids[i] == max_id) {
            weir_fmt(fail, sizeof fail, "%s but checkpoint %" PRIu64 " completed", why, max_id);
            break;
        }
        if (r == WEIR_ENOTFOUND)
            continue; /* half written: never used */
        if (r == WEIR_EIO) {
            rc = WEIR_EIO; /* not corruption: no fallback */
            weir_fmt(fail, sizeof fail, "%s", why);
            break;
        }
        if (r == 0 && strcmp(out->job, job_id) != 0) {
            weir_fmt(why, sizeof why, "it belongs to job %s", out->job);
            weir_ckpt_meta_clear(out);
            r = WEIR_ECORRUPT;
        }
        if (r != 0) {
            if (n_corrupt < 8) {
                corrupt_id[n_corrupt] = ids[i];
                weir_fmt(corrupt_why[n_corrupt], sizeof corrupt_why[0], "%s", why);
                n_corrupt++;
            } else {
                WEIR_WARN(COMP, "checkpoint chk-%" PRIu64 " of job %s is corrupt (%s)", ids[i],
                          job_id, why);
            }
            continue;
        }
        rc = 0;
        break;
    }
    for (size_t k = 0; k < n_corrupt; k++) {
        if (rc == 0)
            WEIR_WARN(COMP,
                      "checkpoint chk-%" PRIu64 " of job %s is corrupt (%s): falling back to "
                      "chk-%" PRIu64,
                      corrupt_id[k], job_id, corrupt_why[k], out->id);
        else
            WEIR_WARN(COMP,
                      "checkpoint chk-%" PRIu64 " of job %s is corrupt (%s): no older checkpoint",
                      corrupt_id[k], job_id, corrupt_why[k]);
    }
    free(ids);
    if (rc != 0) {
        if (fail[0])
            weir_fmt(errstr, errlen, "%s: cannot restore job %s", fail, job_id);
        else if (required)
            weir_fmt(errstr, errlen, "no complete checkpoint in %s: cannot restore job %s", ckdir,
                     job_id);
        else
            weir_fmt(errstr, errlen, "no complete checkpoint in %s", ckdir);
    }
    return rc;
}

/* ---------------------------------------------------------------- retention */

typedef struct name_set {
    char **names;
    size_t n, cap;
} name_set_t;

static void set_add(name_set_t *s, const char *name) {
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->names[i], name))
            return;
    if (weir_array_grow((void **)&s->names, &s->cap, s->n + 1, sizeof *s->names, 64) != 0)
        return;
    char *copy = strdup(name);
    if (copy)
        s->names[s->n++] = copy;
}

static bool set_has(const name_set_t *s, const char *name) {
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->names[i], name))
            return true;
    return false;
}

static void set_free(name_set_t *s) {
    for (size_t i = 0; i < s->n; i++)
        free(s->names[i]);
    free(s->names);
}

#define HANDLE "keyed-state handle"

/* Adds the shared file names of one handle, and the checkpoint id its private files live in. */
static void handle_refs(const char *handle, name_set_t *shared, uint64_t *chk_ids, size_t *n_chk,
                        size_t cap_chk) {
    json_error_t jerr;
    json_t *h = json_loads(handle, 0, &jerr);
    if (!h)
        return;
    /* a member of the wrong type counts as absent */
    const json_t *arr = NULL;
    weir_json_array(h, HANDLE, "shared", false, &arr, NULL, 0);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const char *name = NULL;
        if (weir_json_str(json_array_get(arr, i), HANDLE, "name", true, &name, NULL, 0) == 0)
            set_add(shared, name);
    }
    int64_t ck;
    if (weir_json_int(h, HANDLE, "checkpoint", true, INT64_MIN, INT64_MAX, 0, &ck, NULL, 0) == 0 &&
        *n_chk < cap_chk)
        chk_ids[(*n_chk)++] = (uint64_t)ck;
    json_decref(h);
}

void weir_ckpt_gc_marks_free(weir_ckpt_gc_marks_t *marks) {
    if (!marks)
        return;
    for (size_t i = 0; i < marks->n; i++)
        free(marks->names[i]);
    free(marks->names);
    memset(marks, 0, sizeof *marks);
}

/* An unreferenced entry @p name: true when it may go now (no grace, or the previous round found
 * it unreferenced too); it is marked for the next round either way (a deletion that fails is
 * tried again). */
static bool grace_over(const weir_ckpt_gc_marks_t *prev, name_set_t *next, const char *name) {
    if (next)
        set_add(next, name);
    if (!prev)
        return true;
    for (size_t i = 0; i < prev->n; i++)
        if (!strcmp(prev->names[i], name))
            return true;
    return false;
}

typedef struct shared_list {
    name_set_t names;
} shared_list_t;

static int collect_shared(void *arg, const char *name, bool is_dir, uint64_t size) {
    (void)size;
    if (!is_dir)
        set_add(&((shared_list_t *)arg)->names, name);
    return 0;
}

int weir_ckpt_retain(weir_storage_t *ck, uint32_t num_retained, uint64_t in_flight, uint64_t pinned,
                     const char *const *protect, size_t n_protect, weir_ckpt_gc_marks_t *marks,
                     const weir_store_io_t *io, weir_ckpt_gc_stats_t *stats) {
    const char *ckdir = weir_storage_uri(ck);
    weir_ckpt_gc_stats_t local = {0};
    if (!stats)
        stats = &local;
    memset(stats, 0, sizeof *stats);
    uint64_t *ids = NULL;
    size_t n = 0;
    char err[WEIR_STORAGE_URI_MAX + 256];
    int rc = weir_ckpt_list_dirs(ck, &ids, &n, NULL, err, sizeof err);
    if (rc != 0) {
        WEIR_WARN(COMP, "retention of %s: %s: nothing deleted this round", ckdir, err);
        return rc == WEIR_ENOMEM ? WEIR_ENOMEM : WEIR_EIO;
    }
    bool *valid = calloc(n ? n : 1, sizeof *valid);
    bool *keep = calloc(n ? n : 1, sizeof *keep);
    size_t cap_chk = 4096;
    uint64_t *ref_chk = calloc(cap_chk, sizeof *ref_chk);
    size_t n_ref_chk = 0;
    name_set_t shared = {0}, next = {0};
    name_set_t *nextp = marks ? &next : NULL;
    shared_list_t present = {0};
    /* shared/ is collected only when every reference is known: nothing in flight, every
     * _metadata read (or proven corrupt) and the pinned checkpoint's references read */
    bool refs_known = in_flight == 0 && pinned == 0;
    if (!valid || !keep || !ref_chk) {
        rc = WEIR_ENOMEM;
        goto done;
    }
    uint32_t kept = 0;
    for (size_t i = n; i-- > 0;) {
        weir_ckpt_meta_t m;
        char why[WEIR_STORAGE_URI_MAX + 512];
        int r = weir_ckpt_meta_read(ck, ids[i], io, &m, why, sizeof why);
        if (r == WEIR_EIO) {
            /* unknown, not corrupt: keep it and every shared file this round */
            WEIR_WARN(COMP, "retention of %s: %s: chk-%" PRIu64 " and shared/ kept this round",
                      ckdir, why, ids[i]);
            keep[i] = true;
            refs_known = false;
            rc = WEIR_EIO;
            continue;
        }
        if (r != 0)
            continue;
        valid[i] = true;
        bool take = kept < num_retained;
        if (take)
            kept++;
        if (ids[i] == pinned) {
            take = true;
            refs_known = in_flight == 0 && rc == 0;
        }
        if (take) {
            keep[i] = true;
            for (uint32_t t = 0; t < m.n_tasks; t++)
                if (m.tasks[t].keyed)
                    handle_refs(m.tasks[t].keyed, &shared, ref_chk, &n_ref_chk, cap_chk);
        }
        weir_ckpt_meta_clear(&m);
    }
    for (size_t i = 0; i < n_protect; i++)
        if (protect[i])
            handle_refs(protect[i], &shared, ref_chk, &n_ref_chk, cap_chk);
    for (size_t i = 0; i < n; i++) {
        if (keep[i] || ids[i] == in_flight || ids[i] == pinned)
            continue;
        bool referenced = false;
        for (size_t k = 0; k < n_ref_chk && !referenced; k++)
            referenced = ref_chk[k] == ids[i];
        if (referenced)
            continue;
        char key[META_KEY_MAX];
        weir_ckpt_chk_key(ids[i], key, sizeof key);
        if (!valid[i] && !grace_over(marks, nextp, key))
            continue; /* may be an upload in progress: the next round decides */
        if (weir_ckpt_delete_dir(ck, ids[i], err, sizeof err) != 0) {
            WEIR_WARN(COMP, "retention of %s: %s", ckdir, err);
            rc = WEIR_EIO;
        } else {
            stats->dirs_removed++;
        }
    }
    if (refs_known) {
        if (weir_storage_list(ck, "shared", false, collect_shared, &present, err, sizeof err) !=
            0) {
            WEIR_WARN(COMP, "retention of %s: %s: shared/ kept this round", ckdir, err);
            rc = WEIR_EIO;
        }
        for (size_t i = 0; i < present.names.n; i++) {
            const char *name = present.names.names[i];
            if (set_has(&shared, name))
                continue;
            char key[WEIR_STORAGE_KEY_MAX + 16];
            weir_fmt(key, sizeof key, "shared/%s", name);
            if (!grace_over(marks, nextp, key))
                continue;
            if (weir_storage_delete(ck, key, err, sizeof err) != 0) {
                WEIR_WARN(COMP, "retention of %s: %s", ckdir, err);
                rc = WEIR_EIO;
            } else {
                stats->shared_removed++;
            }
        }
    } else if (marks) {
        /* shared/ not examined: its marks stay for the next round that examines it */
        for (size_t i = 0; i < marks->n; i++)
            if (!strncmp(marks->names[i], "shared/", 7))
                set_add(&next, marks->names[i]);
    }
    if (marks) {
        weir_ckpt_gc_marks_free(marks);
        marks->names = next.names;
        marks->n = next.n;
        marks->cap = next.cap;
        memset(&next, 0, sizeof next);
    }
done:
    set_free(&present.names);
    set_free(&next);
    set_free(&shared);
    free(ref_chk);
    free(valid);
    free(keep);
    free(ids);
    return rc;
}
