/* Owns checkpoint storage (ckpt_store.h): the atomic write of _metadata (its format is
 * savepoint/metadata.c; then the directories above it are fsynced) and its verified read, the
 * listing of chk-<n> directories, the search for the latest restorable checkpoint up to the latest
 * completed one (corrupt ones fall back to the previous, with a WARN), and retention + garbage
 * collection of <ckdir>.
 *
 * Invariants: _metadata is written whole and atomically (weir_write_file_atomic), so a
 * checkpoint exists iff its _metadata verifies; a chk-<n> directory without a valid _metadata is
 * never restored from, nor one above the latest completed id; a read error (after the retries of
 * store_io.h) is never taken for corruption: it fails the search and, in retention, keeps the
 * checkpoint and every file of shared/ for the next round; retention never deletes the pinned
 * checkpoint (the one the HA pointer names) nor the shared files it references, the in-flight
 * checkpoint, chk-0, a directory a retained handle names, nor (while something is in flight)
 * anything in shared/; unreferenced entries newer than keep_newer_than_ms are left for the next
 * round.
 *
 * Threading: stateless; no knowledge of the job manager. The job manager calls it on its main
 * thread with its mutex held, never for the same <ckdir> concurrently. */
#include "jobmanager/ckpt_store.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "jobmanager/store_io.h"

#define COMP "checkpoint"

/* ---------------------------------------------------------------- _metadata files */

int weir_ckpt_meta_write(const char *ckdir, const weir_ckpt_meta_t *m, char *errstr,
                         size_t errlen) {
    char dir[4200], path[4300];
    weir_ckpt_chk_path(ckdir, m->id, dir, sizeof dir);
    weir_fmt(path, sizeof path, "%s/_metadata", dir);
    char *text = NULL;
    size_t len = 0;
    int rc = weir_ckpt_meta_encode(m, &text, &len);
    if (rc != 0) {
        weir_fmt(errstr, errlen, "cannot encode the metadata of checkpoint %" PRIu64 ": %s", m->id,
                 rc == WEIR_EINVAL ? "a keyed-state handle is not JSON" : "out of memory");
        return rc;
    }
    if (weir_mkdirs(dir) != 0 || weir_write_file_atomic(path, text, len) != 0) {
        weir_fmt(errstr, errlen, "cannot write %s: %s", path, strerror(errno));
        free(text);
        return WEIR_EIO;
    }
    free(text);
    /* chk-<n> was fsynced by the atomic write; now its entry in <ckdir>, the entries of shared/
     * (uploads of other task managers) and <ckdir>'s entry in state.checkpoints.dir */
    char shared[4200], root[4200];
    weir_fmt(shared, sizeof shared, "%s/shared", ckdir);
    weir_fmt(root, sizeof root, "%s", ckdir);
    char *slash = strrchr(root, '/');
    if (slash && slash != root)
        *slash = 0;
    const char *dirs[] = {ckdir, shared, slash && slash != root ? root : NULL};
    return weir_store_sync_dirs(dirs, 3, errstr, errlen);
}

int weir_ckpt_meta_read(const char *ckdir, uint64_t id, const weir_store_io_t *io,
                        weir_ckpt_meta_t *m, char *errstr, size_t errlen) {
    char path[4300];
    weir_fmt(path, sizeof path, "%s/chk-%" PRIu64 "/_metadata", ckdir, id);
    uint8_t *data = NULL;
    size_t len = 0;
    memset(m, 0, sizeof *m);
    int rc = weir_store_read(io, COMP, path, &data, &len, errstr, errlen);
    if (rc == WEIR_ENOTFOUND) {
        weir_fmt(errstr, errlen, "%s does not exist", path);
        return WEIR_ENOTFOUND;
    }
    if (rc != 0)
        return WEIR_EIO; /* errstr names the file and errno: not corruption */
    rc = weir_ckpt_meta_decode((const char *)data, len, m, errstr, errlen);
    free(data);
    if (rc == WEIR_ENOMEM)
        return weir_errf(errstr, errlen, WEIR_EIO, "out of memory decoding %s", path);
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

int weir_ckpt_list_dirs(const char *ckdir, uint64_t **ids, size_t *n) {
    *ids = NULL;
    *n = 0;
    DIR *d = opendir(ckdir);
    if (!d)
        return errno == ENOENT ? 0 : WEIR_EIO;
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        uint64_t id;
        if (!parse_chk(e->d_name, &id))
            continue;
        if (weir_array_grow((void **)ids, &cap, *n + 1, sizeof **ids, 16) != 0) {
            closedir(d);
            free(*ids);
            *ids = NULL;
            *n = 0;
            return WEIR_ENOMEM;
        }
        (*ids)[(*n)++] = id;
    }
    closedir(d);
    if (*n)
        qsort(*ids, *n, sizeof **ids, cmp_u64);
    return 0;
}

uint64_t weir_ckpt_max_dir_id(const char *ckdir) {
    uint64_t *ids = NULL;
    size_t n = 0;
    weir_ckpt_list_dirs(ckdir, &ids, &n);
    uint64_t max = n ? ids[n - 1] : 0;
    free(ids);
    return max;
}

int weir_ckpt_find_latest(const char *ckdir, const char *job_id, uint64_t max_id, bool required,
                          const weir_store_io_t *io, weir_ckpt_meta_t *out, char *errstr,
                          size_t errlen) {
    memset(out, 0, sizeof *out);
    struct stat st;
    if (stat(ckdir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        if (required)
            weir_fmt(errstr, errlen, "checkpoint directory %s is missing: cannot restore job %s",
                     ckdir, job_id);
        else
            weir_fmt(errstr, errlen, "no checkpoint directory %s", ckdir);
        return WEIR_ENOTFOUND;
    }
    uint64_t *ids = NULL;
    size_t n = 0;
    if (weir_ckpt_list_dirs(ckdir, &ids, &n) != 0) {
        weir_fmt(errstr, errlen, "cannot list checkpoint directory %s: %s", ckdir, strerror(errno));
        return WEIR_EIO;
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
        int r = weir_ckpt_meta_read(ckdir, ids[i], io, out, why, sizeof why);
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

static int64_t mtime_ms(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0)
        return -1;
    return (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
}

int weir_ckpt_retain(const char *ckdir, uint32_t num_retained, uint64_t in_flight, uint64_t pinned,
                     const char *const *protect, size_t n_protect, int64_t keep_newer_than_ms,
                     const weir_store_io_t *io, weir_ckpt_gc_stats_t *stats) {
    weir_ckpt_gc_stats_t local = {0};
    if (!stats)
        stats = &local;
    memset(stats, 0, sizeof *stats);
    uint64_t *ids = NULL;
    size_t n = 0;
    int rc = weir_ckpt_list_dirs(ckdir, &ids, &n);
    if (rc != 0)
        return WEIR_EIO;
    bool *valid = calloc(n ? n : 1, sizeof *valid);
    bool *keep = calloc(n ? n : 1, sizeof *keep);
    size_t cap_chk = 4096;
    uint64_t *ref_chk = calloc(cap_chk, sizeof *ref_chk);
    size_t n_ref_chk = 0;
    name_set_t shared = {0};
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
        char why[512];
        int r = weir_ckpt_meta_read(ckdir, ids[i], io, &m, why, sizeof why);
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
        char path[4200];
        weir_ckpt_chk_path(ckdir, ids[i], path, sizeof path);
        if (!valid[i] && mtime_ms(path) >= keep_newer_than_ms)
            continue; /* may be an upload in progress */
        if (weir_rmtree(path) != 0)
            rc = WEIR_EIO;
        else
            stats->dirs_removed++;
    }
    if (refs_known) {
        char sdir[4200];
        weir_fmt(sdir, sizeof sdir, "%s/shared", ckdir);
        DIR *d = opendir(sdir);
        if (d) {
            struct dirent *e;
            while ((e = readdir(d))) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                    continue;
                if (set_has(&shared, e->d_name))
                    continue;
                char path[4600];
                weir_fmt(path, sizeof path, "%s/%s", sdir, e->d_name);
                if (mtime_ms(path) >= keep_newer_than_ms)
                    continue;
                if (unlink(path) != 0 && errno != ENOENT)
                    rc = WEIR_EIO;
                else
                    stats->shared_removed++;
            }
            closedir(d);
        }
    }
done:
    set_free(&shared);
    free(ref_chk);
    free(valid);
    free(keep);
    free(ids);
    return rc;
}
