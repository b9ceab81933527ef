/* Owns the restore of keyed state (state/snapshot.h: weir_state_restore_plan and its one-handle
 * form weir_state_restore): parsing and checking the keyed restore document and the handles in
 * it, locating every file (savepoint/layout.h: a storage root per source and a key per file),
 * fetching it from the checkpoint storage (storage/storage.h) with its size checked, the local
 * recovery cache of shared SSTs, building the local RocksDB directory from the source that
 * overlaps the new key-group range most, clipping it to the new range (DeleteFilesInRange,
 * DeleteRange, CompactRange of the removed groups, per column family), and merging the part of
 * every other source that falls into the new range (read-only open of a temporary copy ->
 * SstFileWriter -> IngestExternalFile).
 *
 * Local recovery cache (README.md "Local recovery"; <cache> = the job's directory
 * "<task manager workdir>/local-recovery/<job>"):
 *   <cache>/<name in shared/>   a shared SST: unique, immutable name, so a file of the recorded
 *                               size is the object itself and is used without a download
 *   <cache>/.used-<owner>       the names the latest restore of task <owner> uses
 *   <cache>/.lock               flock: held while a .used list is written and while pruning
 * A restore first writes its .used list (under the lock), then looks at the cache: so a
 * concurrent prune (under the lock, keeping every name of every .used list) never removes a file
 * it is about to link. After success it prunes: every "*.sst" not named by any .used list goes.
 * The cache thus holds at most the files of the latest restore of each task of the job that
 * restored on this task manager. Downloads go to the scratch directory first and are renamed
 * into the cache whole.
 *
 * Invariants:
 *  - nothing under the document's base is created, changed or deleted: objects are only read
 *    (POSIX: hard-linked when possible; RocksDB never modifies an SST, it only unlinks its own
 *    names); a read-only RocksDB is opened on a temporary copy in the scratch directory;
 *  - opts->path and "<opts->path>.restore" are scratch: both are removed first (a restore killed
 *    half-way leaves nothing that a later one reads) and on failure;
 *  - every file placed has the size its handle records (checked after the fetch; a cached file
 *    is used only with that size);
 *  - the restored backend holds exactly the key groups [first, last] of the sources and the
 *    declared column families;
 *  - only with claim, and only the shared SSTs of the whole-restored checkpoint-layout source,
 *    are registered as uploaded (snapshot.c's registry): with claim false the next checkpoint
 *    uploads every file.
 * Threading: runs on the subtask thread before the backend is used (several subtasks of a task
 * manager restore at once: the cache protocol above makes that safe); the files of one source
 * are placed by up to FETCH_THREADS threads (place_files: a mutex-guarded next index and first
 * error; the plan is read-only to them but for its atomic counters), joined before anything
 * opens them; RocksDB's own background threads flush and compact. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <rocksdb/c.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "runtime/graph/keygroup.h"
#include "savepoint/layout.h"
#include "state/snapshot.h"
#include "state/state_int.h"
#include "storage/storage.h"

#define COMP "restore"
#define PATH_CAP 4096
#define INGEST_FILE_BYTES ((uint64_t)64 << 20) /* one SST per 64 MiB of merged keys and values */
#define SCAN_READAHEAD ((size_t)2 << 20)
#define FETCH_THREADS 4 /* files of one source fetched at once (S3: one request each) */

/* A file of a source: its key in the source's storage and its name in the RocksDB directory. */
typedef struct rfile {
    char *key;          /* object key under the source's storage root (malloc'd) */
    const char *local;  /* name in the RocksDB directory (borrowed from the document) */
    const char *shared; /* name in shared/ (checkpoint layout, "shared" entries), else NULL */
    uint64_t size;
    bool link; /* an SST: immutable, may be hard-linked */
} rfile_t;

typedef struct rsource {
    uint32_t a, b;   /* its old key-group range */
    uint32_t lo, hi; /* its part of the new range (none when lo > hi) */
    const char *task;
    bool self_contained;
    weir_storage_t *st; /* borrowed from the plan */
    rfile_t *files;
    size_t n_files;
} rsource_t;

typedef struct rplan {
    const char *base;
    bool claim;
    uint32_t max_par, first, last;
    rsource_t *src;
    size_t n_src;
    const weir_state_fetch_t *fetch;
    weir_storage_t *st[2]; /* rooted at the base (self-contained) and at its checkpoint root */
    const char *scratch;   /* for downloads into the cache (set once the scratch exists) */
    bool use_cache;        /* fetch->cache_dir is set and usable */
    _Atomic uint64_t cached, fetched, fetched_bytes; /* place_file runs on fetch threads too */
} rplan_t;

static void plan_clear(rplan_t *pl) {
    for (size_t i = 0; i < pl->n_src; i++) {
        for (size_t j = 0; j < pl->src[i].n_files; j++)
            free(pl->src[i].files[j].key);
        free(pl->src[i].files);
    }
    free(pl->src);
    weir_storage_close(&pl->st[0]);
    weir_storage_close(&pl->st[1]);
    *pl = (rplan_t){0};
}

/* The 2-byte prefix of key group @p kg (state.h key layout): the smallest key of the group. */
static void kg_key(uint32_t kg, char out[2]) {
    out[0] = (char)(uint8_t)(kg >> 8);
    out[1] = (char)(uint8_t)kg;
}

/* ------------------------------------------------------------------------------------------ */
/* the document                                                                               */
/* ------------------------------------------------------------------------------------------ */

/* "range": [a, b] with 0 <= a <= b < max_par. */
static int parse_range(const json_t *o, const char *what, uint32_t max_par, uint32_t *a,
                       uint32_t *b, char *errstr, size_t errlen) {
    const json_t *r = json_object_get(o, "range");
    const json_t *ja = json_array_get(r, 0), *jb = json_array_get(r, 1);
    if (!json_is_array(r) || json_array_size(r) != 2 || !json_is_integer(ja) ||
        !json_is_integer(jb) || json_integer_value(ja) < 0 ||
        json_integer_value(ja) > json_integer_value(jb) ||
        json_integer_value(jb) >= (json_int_t)max_par)
        return weir_errf(errstr, errlen, WEIR_EINVAL,
                         "keyed restore document: %s: \"range\" must be [first, last] with 0 <= "
                         "first <= last < %u (the max parallelism)",
                         what, max_par);
    *a = (uint32_t)json_integer_value(ja);
    *b = (uint32_t)json_integer_value(jb);
    return 0;
}

/* The "shared" or "private" entries of source @p s into s->files. */
static int parse_files(const rplan_t *pl, rsource_t *s, size_t si, const json_t *arr, bool shared,
                       uint64_t ckpt, char *errstr, size_t errlen) {
    size_t i;
    const json_t *o;
    json_array_foreach(arr, i, o) {
        const char *name = NULL, *local = NULL;
        uint64_t size = 0;
        bool sst = shared;
        bool ok = weir_json_str(o, "", "name", true, &name, NULL, 0) == 0 &&
                  weir_json_u64(o, "", "size", true, 0, &size, NULL, 0) == 0 &&
                  (shared ? weir_json_str(o, "", "local", true, &local, NULL, 0) == 0
                          : weir_json_bool(o, "", "sst", false, false, &sst, NULL, 0) == 0);
        if (!shared)
            local = name;
        size_t ll = local ? strlen(local) : 0;
        char key[WEIR_STORAGE_KEY_MAX + 1];
        (void)pl;
        if (!ok || !weir__snap_safe_name(local) ||
            (sst && (ll < 4 || strcmp(local + ll - 4, ".sst") != 0)) ||
            weir_layout_keyed_key(s->self_contained, ckpt, s->task, shared, name, key,
                                  sizeof(key)) != 0)
            return weir_errf(errstr, errlen, WEIR_ECORRUPT,
                             "keyed-state handle (source %zu, task %s): bad %s file entry %zu", si,
                             s->task, shared ? "shared" : "private", i);
        char *k = strdup(key);
        if (!k)
            return weir_errf(errstr, errlen, WEIR_ENOMEM, "state restore: out of memory");
        s->files[s->n_files++] = (rfile_t){
            .key = k, .local = local, .shared = shared ? name : NULL, .size = size, .link = sst};
    }
    return 0;
}

/* The storage of the source's layout root (opened once per plan; no I/O). */
static int open_root(rplan_t *pl, rsource_t *s, char *errstr, size_t errlen) {
    weir_storage_t **slot = &pl->st[s->self_contained ? 0 : 1];
    if (!*slot) {
        char root[WEIR_STORAGE_URI_MAX];
        char err[512] = "";
        if (weir_layout_keyed_root(pl->base, s->self_contained, root, sizeof(root)) != 0)
            return weir_errf(errstr, errlen, WEIR_EINVAL,
                             "keyed restore document: base %s has no %s (a checkpoint's base is "
                             "<checkpoint directory>/chk-<n>)",
                             pl->base, s->self_contained ? "valid form" : "parent directory");
        if (!(*slot = weir_storage_open(pl->fetch->env, root, err, sizeof(err))))
            return weir_errf(errstr, errlen, WEIR_ECONFIG, "state restore: %s", err);
    }
    s->st = *slot;
    return 0;
}

static int parse_handle(rplan_t *pl, rsource_t *s, size_t si, const json_t *h, char *errstr,
                        size_t errlen) {
    const json_t *jsh = NULL, *jpr = NULL;
    const char *layout = NULL;
    int64_t version = 0, ckpt = 0, mp = 0;
    if (!json_is_object(h) ||
        weir_json_int(h, "", "version", true, 1, 1, 0, &version, NULL, 0) != 0 ||
        weir_json_array(h, "", "shared", true, &jsh, NULL, 0) != 0 ||
        weir_json_array(h, "", "private", true, &jpr, NULL, 0) != 0 ||
        weir_json_int(h, "", "checkpoint", true, 0, INT64_MAX, 0, &ckpt, NULL, 0) != 0 ||
        weir_json_str(h, "", "task", true, &s->task, NULL, 0) != 0 ||
        !weir__snap_safe_name(s->task) ||
        weir_json_int(h, "", "max_parallelism", true, INT64_MIN, INT64_MAX, 0, &mp, NULL, 0) != 0 ||
        weir_json_str(h, "", "layout", false, &layout, NULL, 0) != 0)
        return weir_errf(errstr, errlen, WEIR_ECORRUPT,
                         "keyed-state handle: not a version 1 handle (expected version, "
                         "checkpoint, task, shared, private, max_parallelism)");
    if (layout && strcmp(layout, WEIR_LAYOUT_SELF_CONTAINED) != 0)
        return weir_errf(errstr, errlen, WEIR_ECORRUPT,
                         "keyed-state handle of %s: unknown layout '%s' (this version reads "
                         "checkpoint handles and \"" WEIR_LAYOUT_SELF_CONTAINED "\" ones)",
                         s->task, layout);
    if (mp != (int64_t)pl->max_par)
        return weir_errf(errstr, errlen, WEIR_EINVAL,
                         "state restore: the checkpoint or savepoint has max parallelism %lld but "
                         "the job has %u (max parallelism cannot change across a restore)",
                         (long long)mp, pl->max_par);
    s->self_contained = layout != NULL;
    int orc = open_root(pl, s, errstr, errlen);
    if (orc != 0)
        return orc;
    size_t n = json_array_size(jsh) + json_array_size(jpr);
    if (!(s->files = calloc(n ? n : 1, sizeof(*s->files))))
        return weir_errf(errstr, errlen, WEIR_ENOMEM, "state restore: out of memory");
    int rc = parse_files(pl, s, si, jsh, true, (uint64_t)ckpt, errstr, errlen);
    return rc ? rc : parse_files(pl, s, si, jpr, false, (uint64_t)ckpt, errstr, errlen);
}

static int parse_doc(const json_t *doc, uint32_t want_mp, rplan_t *pl, char *errstr,
                     size_t errlen) {
    const json_t *srcs = NULL;
    int64_t mp = 0;
    int rc;
    if (!json_is_object(doc) ||
        weir_json_str(doc, "keyed restore document", "base", true, &pl->base, errstr, errlen) !=
            0 ||
        weir_json_bool(doc, "keyed restore document", "claim", true, false, &pl->claim, errstr,
                       errlen) != 0 ||
        weir_json_int(doc, "keyed restore document", "max_parallelism", true, 1,
                      WEIR_MAX_MAX_PARALLELISM, 0, &mp, errstr, errlen) != 0 ||
        weir_json_array(doc, "keyed restore document", "sources", true, &srcs, errstr, errlen) !=
            0) {
        if (!json_is_object(doc))
            weir_fmt(errstr, errlen, "keyed restore document: not a JSON object");
        return WEIR_EINVAL;
    }
    if (!pl->base[0])
        return weir_errf(errstr, errlen, WEIR_EINVAL, "keyed restore document: empty \"base\"");
    if (mp != (int64_t)want_mp)
        return weir_errf(errstr, errlen, WEIR_EINVAL,
                         "state restore: the checkpoint or savepoint has max parallelism %lld but "
                         "the job has %u (max parallelism cannot change across a restore)",
                         (long long)mp, want_mp);
    pl->max_par = want_mp;
    if ((rc = parse_range(doc, "the new subtask", pl->max_par, &pl->first, &pl->last, errstr,
                          errlen)) != 0)
        return rc;
    size_t n = json_array_size(srcs);
    if (!(pl->src = calloc(n ? n : 1, sizeof(*pl->src))))
        return weir_errf(errstr, errlen, WEIR_ENOMEM, "state restore: out of memory");
    size_t i;
    const json_t *o;
    json_array_foreach(srcs, i, o) {
        rsource_t *s = &pl->src[pl->n_src++];
        char what[64];
        weir_fmt(what, sizeof(what), "source %zu", i);
        if ((rc = parse_range(o, what, pl->max_par, &s->a, &s->b, errstr, errlen)) != 0)
            return rc;
        if (i > 0 && s->a <= pl->src[i - 1].b)
            return weir_errf(errstr, errlen, WEIR_EINVAL,
                             "keyed restore document: the ranges of sources %zu and %zu overlap "
                             "or are not ascending",
                             i - 1, i);
        s->lo = s->a > pl->first ? s->a : pl->first;
        s->hi = s->b < pl->last ? s->b : pl->last;
        if ((rc = parse_handle(pl, s, i, json_object_get(o, "handle"), errstr, errlen)) != 0)
            return rc;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* building the backend                                                                       */
/* ------------------------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------------------------ */
/* fetching files: the storage and the local recovery cache                                   */
/* ------------------------------------------------------------------------------------------ */

static bool cacheable(const rplan_t *pl, const rfile_t *f) {
    size_t l = f->shared ? strlen(f->shared) : 0;
    return pl->use_cache && f->shared && f->link && l > 4 &&
           strcmp(f->shared + l - 4, ".sst") == 0 && f->shared[0] != '.';
}

/* Fetches object @p f of @p s into @p path and checks its size (the file is removed if wrong). */
static int fetch(rplan_t *pl, const rsource_t *s, const rfile_t *f, const char *path, char *errstr,
                 size_t errlen) {
    char uri[WEIR_STORAGE_URI_MAX], err[512] = "";
    uint64_t got = 0;
    if (weir_storage_uri_join(weir_storage_uri(s->st), f->key, uri, sizeof(uri)) != 0)
        weir_fmt(uri, sizeof(uri), "%s/%s", weir_storage_uri(s->st), f->key);
    int rc = weir_storage_get_file(s->st, f->key, path, &got, err, sizeof(err));
    if (rc == WEIR_ENOTFOUND)
        return weir_errf(errstr, errlen, WEIR_ENOTFOUND,
                         "checkpoint file %s is missing: the checkpoint or savepoint directory "
                         "was removed or is incomplete",
                         uri);
    if (rc != 0)
        return weir_errf(errstr, errlen, rc, "state restore: %s", err[0] ? err : weir_strerror(rc));
    if (got != f->size) {
        unlink(path);
        return weir_errf(errstr, errlen, WEIR_ECORRUPT,
                         "checkpoint file %s has %llu bytes, expected %llu: the checkpoint or "
                         "savepoint directory is corrupt or incomplete",
                         uri, (unsigned long long)got, (unsigned long long)f->size);
    }
    atomic_fetch_add(&pl->fetched, 1);
    atomic_fetch_add(&pl->fetched_bytes, got);
    return 0;
}

/* Places file @p f of @p s at @p dir/<local>: a shared SST through the cache (used if it has
 * the recorded size, else fetched into the scratch and renamed into the cache) and hard-linked
 * from there; anything else (or when the link or rename is refused) fetched directly. */
static int place_file(rplan_t *pl, const rsource_t *s, const rfile_t *f, const char *dir,
                      char *errstr, size_t errlen) {
    char dst[PATH_CAP], cpath[PATH_CAP], tmp[PATH_CAP];
    weir_fmt(dst, sizeof(dst), "%s/%s", dir, f->local);
    if (!cacheable(pl, f))
        return fetch(pl, s, f, dst, errstr, errlen);
    weir_fmt(cpath, sizeof(cpath), "%s/%s", pl->fetch->cache_dir, f->shared);
    struct stat st;
    if (stat(cpath, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size == f->size) {
        if (link(cpath, dst) == 0) {
            atomic_fetch_add(&pl->cached, 1);
            return 0;
        }
        WEIR_DEBUG(COMP, "cannot link %s to %s (%s): fetching it", cpath, dst, strerror(errno));
        return fetch(pl, s, f, dst, errstr, errlen);
    }
    weir_fmt(tmp, sizeof(tmp), "%s/dl-%s", pl->scratch, f->shared);
    int rc = fetch(pl, s, f, tmp, errstr, errlen);
    if (rc != 0)
        return rc;
    if (rename(tmp, cpath) != 0) { /* another filesystem: no caching of this file */
        WEIR_DEBUG(COMP, "cannot move %s into the cache %s (%s)", tmp, cpath, strerror(errno));
        if (rename(tmp, dst) != 0)
            return weir_errf(errstr, errlen, WEIR_EIO, "state restore: cannot rename %s to %s: %s",
                             tmp, dst, strerror(errno));
        return 0;
    }
    if (link(cpath, dst) != 0) {
        WEIR_DEBUG(COMP, "cannot link %s to %s (%s): fetching it", cpath, dst, strerror(errno));
        return fetch(pl, s, f, dst, errstr, errlen);
    }
    return 0;
}

/* The files of one source placed by up to FETCH_THREADS threads: each takes the next index. */
typedef struct fetch_pool {
    rplan_t *pl;
    const rsource_t *s;
    const char *dir;
    pthread_mutex_t mu;
    size_t next; /* under mu */
    int rc;      /* the first error (under mu); no new file is started after it */
    char err[512];
} fetch_pool_t;

static void *fetch_worker(void *arg) {
    fetch_pool_t *fp = arg;
    for (;;) {
        pthread_mutex_lock(&fp->mu);
        size_t j = fp->next < fp->s->n_files && fp->rc == 0 ? fp->next++ : SIZE_MAX;
        pthread_mutex_unlock(&fp->mu);
        if (j == SIZE_MAX)
            return NULL;
        char err[512] = "";
        int rc = place_file(fp->pl, fp->s, &fp->s->files[j], fp->dir, err, sizeof(err));
        if (rc != 0) {
            pthread_mutex_lock(&fp->mu);
            if (fp->rc == 0) {
                fp->rc = rc;
                weir_fmt(fp->err, sizeof(fp->err), "%s", err);
            }
            pthread_mutex_unlock(&fp->mu);
        }
    }
}

/* Puts the files of @p s into @p dir, up to FETCH_THREADS at once (a download is mostly waiting
 * on the network; on POSIX, links). Returns the first error; files already placed stay (the
 * directory is scratch). */
static int place_files(rplan_t *pl, const rsource_t *s, const char *dir, char *errstr,
                       size_t errlen) {
    fetch_pool_t fp = {.pl = pl, .s = s, .dir = dir};
    pthread_mutex_init(&fp.mu, NULL);
    pthread_t th[FETCH_THREADS - 1];
    size_t n_th = 0;
    while (n_th < FETCH_THREADS - 1 && n_th + 1 < s->n_files &&
           pthread_create(&th[n_th], NULL, fetch_worker, &fp) == 0)
        n_th++;
    fetch_worker(&fp); /* this thread works too (alone when threads cannot be made) */
    for (size_t i = 0; i < n_th; i++)
        pthread_join(th[i], NULL);
    pthread_mutex_destroy(&fp.mu);
    if (fp.rc != 0)
        weir_fmt(errstr, errlen, "%s", fp.err);
    return fp.rc;
}

/* The cache's lock (flock on <cache>/.lock; per open file, so threads exclude each other too).
 * @returns the fd or -1 (the cache then goes unused: restores still work, only without it). */
static int cache_lock(const char *cache) {
    char p[PATH_CAP];
    weir_fmt(p, sizeof(p), "%s/.lock", cache);
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    while (flock(fd, LOCK_EX) != 0)
        if (errno != EINTR) {
            close(fd);
            return -1;
        }
    return fd;
}

static void cache_unlock(int fd) {
    if (fd >= 0)
        close(fd); /* releases the flock */
}

/* Writes <cache>/.used-<owner>: the cache names this restore uses (every contributing source).
 * Called before the cache is looked at (see the top of the file). Caller holds the lock. */
static int cache_write_used(const rplan_t *pl) {
    char p[PATH_CAP], tmp[PATH_CAP];
    weir_fmt(p, sizeof(p), "%s/.used-%s", pl->fetch->cache_dir, pl->fetch->owner);
    weir_fmt(tmp, sizeof(tmp), "%s.tmp", p);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return WEIR_EIO;
    for (size_t i = 0; i < pl->n_src; i++) {
        const rsource_t *s = &pl->src[i];
        if (s->lo > s->hi)
            continue;
        for (size_t j = 0; j < s->n_files; j++)
            if (cacheable(pl, &s->files[j]))
                fprintf(f, "%s\n", s->files[j].shared);
    }
    if (fclose(f) != 0 || rename(tmp, p) != 0) {
        unlink(tmp);
        return WEIR_EIO;
    }
    return 0;
}

/* Adds the names of list file @p path to @p names (a sorted-later array). */
static int read_used(const char *path, char ***names, size_t *n, size_t *cap) {
    FILE *f = fopen(path, "r");
    if (!f)
        return errno == ENOENT ? 0 : WEIR_EIO;
    char line[1024];
    int rc = 0;
    while (rc == 0 && fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        if (!line[0])
            continue;
        void *v = *names;
        char *d = strdup(line);
        if (!d || weir_array_grow(&v, cap, *n + 1, sizeof(char *), 64) != 0) {
            free(d);
            rc = WEIR_ENOMEM;
            break;
        }
        *names = v;
        (*names)[(*n)++] = d;
    }
    fclose(f);
    return rc;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Removes every cached SST no .used list names. Caller holds the lock. */
static void cache_prune(const char *cache) {
    char **names = NULL;
    size_t n = 0, cap = 0, dropped = 0;
    DIR *d = opendir(cache);
    if (!d)
        return;
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (strncmp(de->d_name, ".used-", 6) != 0 ||
            (l > 4 && strcmp(de->d_name + l - 4, ".tmp") == 0))
            continue;
        char p[PATH_CAP];
        weir_fmt(p, sizeof(p), "%s/%s", cache, de->d_name);
        rc = read_used(p, &names, &n, &cap);
    }
    if (rc == 0) { /* never prune on a list that could not be read whole */
        if (n)
            qsort(names, n, sizeof(char *), cmp_str);
        rewinddir(d);
        while ((de = readdir(d)) != NULL) {
            size_t l = strlen(de->d_name);
            const char *key = de->d_name;
            if (de->d_name[0] == '.' || l <= 4 || strcmp(de->d_name + l - 4, ".sst") != 0 ||
                (n && bsearch(&key, names, n, sizeof(char *), cmp_str)))
                continue;
            char p[PATH_CAP];
            weir_fmt(p, sizeof(p), "%s/%s", cache, de->d_name);
            if (unlink(p) == 0)
                dropped++;
        }
    }
    closedir(d);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (dropped)
        WEIR_DEBUG(COMP, "local recovery cache %s: dropped %zu file(s) no restore uses", cache,
                   dropped);
}

/* Removes the keys in [start, limit) from every declared state: whole files first, then a range
 * tombstone, then a compaction of the range so the bytes are gone (the next checkpoint does not
 * carry them). */
static int clip(weir_state_backend_t *sb, const char *start, size_t sl, const char *limit,
                size_t ll, char *errstr, size_t errlen) {
    rocksdb_t *db = weir_state_int_db(sb);
    for (uint32_t i = 0; i < weir_state_int_n_states(sb); i++) {
        rocksdb_column_family_handle_t *cf = weir_state_int_cf(sb, i);
        char *err = NULL;
        rocksdb_delete_file_in_range_cf(db, cf, start, sl, limit, ll, &err);
        if (!err)
            rocksdb_delete_range_cf(db, weir_state_int_wo(sb), cf, start, sl, limit, ll, &err);
        if (err) {
            weir_fmt(errstr, errlen, "state restore: removing key groups of state '%s' from %s: %s",
                     weir_state_int_state_name(sb, i), weir_state_int_path(sb), err);
            rocksdb_free(err);
            return WEIR_ESTATE;
        }
        rocksdb_compact_range_cf(db, cf, start, sl, limit, ll);
    }
    return 0;
}

/* Writes the keys of [lower, upper) of @p it into SST files of at most INGEST_FILE_BYTES in
 * @p scratch and ingests them into column family @p cf of the backend. */
static int copy_range(weir_state_backend_t *sb, rocksdb_column_family_handle_t *cf,
                      rocksdb_iterator_t *it, const char *lower, const char *scratch,
                      const char *prefix, uint64_t *keys, uint64_t *bytes, char *errstr,
                      size_t errlen) {
    rocksdb_envoptions_t *eo = rocksdb_envoptions_create();
    rocksdb_sstfilewriter_t *w = NULL;
    char **files = NULL;
    size_t n_files = 0, cap = 0;
    uint64_t fbytes = 0;
    char *err = NULL;
    const char *what = "write";
    int rc = 0;
    for (rocksdb_iter_seek(it, lower, 2); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kl, vl;
        const char *k = rocksdb_iter_key(it, &kl);
        const char *v = rocksdb_iter_value(it, &vl);
        if (!w) {
            char path[PATH_CAP];
            weir_fmt(path, sizeof(path), "%s/%s-%zu.sst", scratch, prefix, n_files);
            void *nf = files;
            char *p = strdup(path);
            if (!p || weir_array_grow(&nf, &cap, n_files + 1, sizeof(char *), 8) != 0) {
                free(p);
                rc = weir_errf(errstr, errlen, WEIR_ENOMEM, "state restore: out of memory");
                goto done;
            }
            files = nf;
            files[n_files++] = p;
            w = rocksdb_sstfilewriter_create(eo, weir_state_int_options(sb));
            rocksdb_sstfilewriter_open(w, p, &err);
            if (err)
                goto rdb;
            fbytes = 0;
        }
        rocksdb_sstfilewriter_put(w, k, kl, v, vl, &err);
        if (err)
            goto rdb;
        (*keys)++;
        *bytes += kl + vl;
        fbytes += kl + vl;
        if (fbytes >= INGEST_FILE_BYTES) {
            rocksdb_sstfilewriter_finish(w, &err);
            rocksdb_sstfilewriter_destroy(w);
            w = NULL;
            if (err)
                goto rdb;
        }
    }
    what = "read";
    rocksdb_iter_get_error(it, &err);
    if (err)
        goto rdb;
    what = "write";
    if (w) {
        rocksdb_sstfilewriter_finish(w, &err);
        rocksdb_sstfilewriter_destroy(w);
        w = NULL;
        if (err)
            goto rdb;
    }
    if (n_files) {
        what = "ingest";
        rocksdb_ingestexternalfileoptions_t *io = rocksdb_ingestexternalfileoptions_create();
        rocksdb_ingestexternalfileoptions_set_move_files(io, 1);
        rocksdb_ingestexternalfileoptions_set_allow_global_seqno(io, 1);
        rocksdb_ingestexternalfileoptions_set_allow_blocking_flush(io, 1);
        rocksdb_ingest_external_file_cf(weir_state_int_db(sb), cf, (const char *const *)files,
                                        n_files, io, &err);
        rocksdb_ingestexternalfileoptions_destroy(io);
        if (err)
            goto rdb;
    }
    goto done;
rdb:
    weir_fmt(errstr, errlen, "state restore: %s of %s failed: %s", what, prefix, err);
    rocksdb_free(err);
    rc = WEIR_ESTATE;
done:
    if (w)
        rocksdb_sstfilewriter_destroy(w);
    rocksdb_envoptions_destroy(eo);
    for (size_t i = 0; i < n_files; i++)
        free(files[i]);
    free(files);
    return rc;
}

/* Adds the keys of source @p s in [s->lo, s->hi] to the backend, state by state. */
static int merge_source(rplan_t *pl, weir_state_backend_t *sb, const rsource_t *s, size_t si,
                        const char *scratch, uint64_t *keys, uint64_t *bytes, char *errstr,
                        size_t errlen) {
    char dir[PATH_CAP];
    weir_fmt(dir, sizeof(dir), "%s/src-%zu", scratch, si);
    if (weir_mkdirs(dir) != 0)
        return weir_errf(errstr, errlen, WEIR_EIO, "state restore: cannot create %s", dir);
    int rc = place_files(pl, s, dir, errstr, errlen);
    if (rc != 0)
        return rc;
    rocksdb_options_t *opts = weir_state_int_options(sb);
    char *err = NULL;
    size_t n = 0;
    char **names = rocksdb_list_column_families(opts, dir, &n, &err);
    const rocksdb_options_t **cfo = calloc(n ? n : 1, sizeof(*cfo));
    rocksdb_column_family_handle_t **cfs = calloc(n ? n : 1, sizeof(*cfs));
    rocksdb_t *db = NULL;
    rocksdb_readoptions_t *ro = NULL;
    if (err) {
        weir_fmt(errstr, errlen, "state restore: the files of %s are not a RocksDB instance: %s",
                 s->task, err);
        rc = WEIR_ECORRUPT;
        goto done;
    }
    if (!cfo || !cfs) {
        rc = weir_errf(errstr, errlen, WEIR_ENOMEM, "state restore: out of memory");
        goto done;
    }
    for (size_t j = 0; j < n; j++)
        cfo[j] = opts;
    db = rocksdb_open_for_read_only_column_families(opts, dir, (int)n, (const char *const *)names,
                                                    cfo, cfs, 0, &err);
    if (err) {
        weir_fmt(errstr, errlen, "state restore: cannot open the state of %s (read-only): %s",
                 s->task, err);
        db = NULL;
        rc = WEIR_ESTATE;
        goto done;
    }
    char lower[2], upper[2];
    kg_key(s->lo, lower);
    kg_key(s->hi + 1, upper); /* hi + 1 <= max parallelism <= 32768: two bytes */
    ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_fill_cache(ro, 0);
    rocksdb_readoptions_set_readahead_size(ro, SCAN_READAHEAD);
    rocksdb_readoptions_set_iterate_lower_bound(ro, lower, 2);
    rocksdb_readoptions_set_iterate_upper_bound(ro, upper, 2);
    for (uint32_t i = 0; i < weir_state_int_n_states(sb) && rc == 0; i++) {
        const char *name = weir_state_int_state_name(sb, i);
        size_t j = 0;
        while (j < n && strcmp(names[j], name) != 0)
            j++;
        if (j == n) /* not in this source: nothing to add */
            continue;
        char prefix[64];
        weir_fmt(prefix, sizeof(prefix), "src%zu-state%u", si, i);
        rocksdb_iterator_t *it = rocksdb_create_iterator_cf(db, ro, cfs[j]);
        rc = copy_range(sb, weir_state_int_cf(sb, i), it, lower, scratch, prefix, keys, bytes,
                        errstr, errlen);
        rocksdb_iter_destroy(it);
    }
done:
    if (ro)
        rocksdb_readoptions_destroy(ro);
    for (size_t j = 0; j < n && cfs; j++)
        if (cfs[j])
            rocksdb_column_family_handle_destroy(cfs[j]);
    if (db)
        rocksdb_close(db);
    if (names)
        rocksdb_list_column_families_destroy(names, n);
    rocksdb_free(err);
    free(cfo);
    free(cfs);
    if (weir_rmtree(dir) != 0)
        WEIR_WARN(COMP, "cannot remove %s", dir);
    return rc;
}

static weir_state_backend_t *restore_doc(const weir_state_opts_t *opts,
                                         const weir_state_decl_t *states, uint32_t n_states,
                                         const weir_state_fetch_t *fetch, const json_t *doc,
                                         char *errstr, size_t errlen) {
    int64_t t0 = weir_now_ns();
    uint32_t want_mp = opts->max_parallelism ? opts->max_parallelism : WEIR_DEFAULT_MAX_PARALLELISM;
    rplan_t pl = {.fetch = fetch};
    weir_state_backend_t *sb = NULL;
    char scratch[PATH_CAP];
    bool made = false;
    if (parse_doc(doc, want_mp, &pl, errstr, errlen) != 0)
        goto fail;
    /* the source overlapping most is restored whole (the first of equals) */
    const rsource_t *prim = NULL;
    for (size_t i = 0; i < pl.n_src; i++) {
        const rsource_t *s = &pl.src[i];
        if (s->lo <= s->hi && (!prim || s->hi - s->lo > prim->hi - prim->lo))
            prim = s;
    }
    size_t pl_len = strlen(opts->path);
    while (pl_len > 1 && opts->path[pl_len - 1] == '/')
        pl_len--;
    weir_fmt(scratch, sizeof(scratch), "%.*s.restore", (int)pl_len, opts->path);
    made = true;
    if (weir_rmtree(opts->path) != 0 || weir_rmtree(scratch) != 0 || weir_mkdirs(opts->path) != 0 ||
        weir_mkdirs(scratch) != 0) {
        weir_fmt(errstr, errlen, "state restore: cannot recreate directory %s or %s", opts->path,
                 scratch);
        goto fail;
    }
    pl.scratch = scratch;
    if (fetch->cache_dir) { /* announce the names used before looking at the cache */
        int fd = -1;
        pl.use_cache = true;
        if (weir_mkdirs(fetch->cache_dir) != 0 || (fd = cache_lock(fetch->cache_dir)) < 0 ||
            cache_write_used(&pl) != 0) {
            WEIR_WARN(COMP, "local recovery cache %s is not usable (%s): restoring without it",
                      fetch->cache_dir, strerror(errno));
            pl.use_cache = false;
        }
        cache_unlock(fd);
    }
    if (prim && place_files(&pl, prim, opts->path, errstr, errlen) != 0)
        goto fail;
    if (!(sb = weir_state_open(opts, states, n_states, errstr, errlen)))
        goto fail;
    if (weir_state_int_drop_undeclared(sb, errstr, errlen) != 0)
        goto fail;
    int64_t t1 = weir_now_ns();
    if (prim && prim->a < pl.first) { /* every group before the range */
        char lim[2];
        kg_key(pl.first, lim);
        if (clip(sb, "", 0, lim, 2, errstr, errlen) != 0)
            goto fail;
    }
    if (prim && prim->b > pl.last) { /* every group after it (keys start with a group < 0x8000) */
        static const char end[] = "\xff\xff\xff\xff\xff\xff\xff\xff";
        char start[2];
        kg_key(pl.last + 1, start);
        if (clip(sb, start, 2, end, sizeof(end) - 1, errstr, errlen) != 0)
            goto fail;
    }
    int64_t t2 = weir_now_ns();
    uint64_t keys = 0, bytes = 0;
    size_t merged = 0;
    for (size_t i = 0; i < pl.n_src; i++) {
        const rsource_t *s = &pl.src[i];
        if (s == prim || s->lo > s->hi)
            continue;
        if (merge_source(&pl, sb, s, i, scratch, &keys, &bytes, errstr, errlen) != 0)
            goto fail;
        merged++;
    }
    if (pl.claim && prim && !prim->self_contained)
        for (size_t j = 0; j < prim->n_files; j++)
            if (prim->files[j].shared &&
                weir__snap_confirm_restored(sb, prim->files[j].local, prim->files[j].shared) != 0) {
                weir_fmt(errstr, errlen, "state restore: out of memory");
                goto fail;
            }
    if (weir_rmtree(scratch) != 0)
        WEIR_WARN(COMP, "cannot remove %s", scratch);
    if (pl.use_cache) { /* bounded growth: only what the latest restores use stays */
        int fd = cache_lock(fetch->cache_dir);
        if (fd >= 0)
            cache_prune(fetch->cache_dir);
        cache_unlock(fd);
    }
    WEIR_INFO(COMP,
              "restored key groups %u-%u into %s from %s: %s%s whole (groups %u-%u, %zu files, "
              "%.1f ms), clipped in %.1f ms, %zu other source(s) merged (%llu entries, %llu "
              "bytes, %.1f ms), claim %s; %llu file(s) fetched (%llu bytes), %llu from the local "
              "recovery cache",
              pl.first, pl.last, opts->path, pl.base, prim ? "source " : "no source",
              prim ? prim->task : "", prim ? prim->a : 0, prim ? prim->b : 0,
              prim ? prim->n_files : 0, (double)(t1 - t0) / 1e6, (double)(t2 - t1) / 1e6, merged,
              (unsigned long long)keys, (unsigned long long)bytes,
              (double)(weir_now_ns() - t2) / 1e6, pl.claim ? "true" : "false",
              (unsigned long long)atomic_load(&pl.fetched),
              (unsigned long long)atomic_load(&pl.fetched_bytes),
              (unsigned long long)atomic_load(&pl.cached));
    goto done;
fail:
    weir_state_close(&sb, false);
    if (made && (weir_rmtree(opts->path) != 0 || weir_rmtree(scratch) != 0))
        WEIR_WARN(COMP, "cannot remove %s or %s", opts->path, scratch);
done:
    plan_clear(&pl);
    return sb;
}

/* ------------------------------------------------------------------------------------------ */
/* entry points                                                                               */
/* ------------------------------------------------------------------------------------------ */

static bool args_ok(const weir_state_opts_t *opts, const weir_state_fetch_t *fetch,
                    const char *json, char *errstr, size_t errlen) {
    if (errstr && errlen)
        errstr[0] = '\0';
    if (!opts || !opts->path || !opts->path[0] || !json) {
        weir_fmt(errstr, errlen, "state restore: missing path or restore document");
        return false;
    }
    if (!fetch || !fetch->env || (fetch->cache_dir && !weir__snap_safe_name(fetch->owner))) {
        weir_fmt(errstr, errlen,
                 "state restore: no storage environment, or a cache without a plain owner name");
        return false;
    }
    return true;
}

weir_state_backend_t *weir_state_restore_plan(const weir_state_opts_t *opts,
                                              const weir_state_decl_t *states, uint32_t n_states,
                                              const weir_state_fetch_t *fetch,
                                              const char *restore_json, char *errstr,
                                              size_t errlen) {
    if (!args_ok(opts, fetch, restore_json, errstr, errlen))
        return NULL;
    json_error_t jerr;
    json_t *doc = json_loads(restore_json, 0, &jerr);
    if (!doc) {
        weir_fmt(errstr, errlen, "keyed restore document is not valid JSON (line %d: %s)",
                 jerr.line, weir_json_error_text(&jerr));
        return NULL;
    }
    weir_state_backend_t *sb = restore_doc(opts, states, n_states, fetch, doc, errstr, errlen);
    json_decref(doc);
    return sb;
}

weir_state_backend_t *weir_state_restore(const weir_state_opts_t *opts,
                                         const weir_state_decl_t *states, uint32_t n_states,
                                         const weir_state_fetch_t *fetch,
                                         const char *checkpoint_dir, const char *handle_json,
                                         char *errstr, size_t errlen) {
    if (!args_ok(opts, fetch, handle_json, errstr, errlen))
        return NULL;
    if (!checkpoint_dir) {
        weir_fmt(errstr, errlen, "state restore: missing checkpoint directory");
        return NULL;
    }
    json_error_t jerr;
    json_t *h = json_loads(handle_json, 0, &jerr);
    if (!h) {
        weir_fmt(errstr, errlen, "keyed-state handle is not valid JSON (line %d: %s)", jerr.line,
                 weir_json_error_text(&jerr));
        return NULL;
    }
    int64_t ckpt = 0;
    if (!json_is_object(h) ||
        weir_json_int(h, "", "checkpoint", true, 0, INT64_MAX, 0, &ckpt, NULL, 0) != 0) {
        weir_fmt(errstr, errlen,
                 "keyed-state handle: not a version 1 handle (expected version, checkpoint, "
                 "task, shared, private, max_parallelism)");
        json_decref(h);
        return NULL;
    }
    uint32_t mp = opts->max_parallelism ? opts->max_parallelism : WEIR_DEFAULT_MAX_PARALLELISM;
    char base[WEIR_STORAGE_URI_MAX], chk[32];
    weir_fmt(chk, sizeof(chk), "chk-%lld", (long long)ckpt);
    if (weir_storage_uri_join(checkpoint_dir, chk, base, sizeof(base)) != 0) {
        weir_fmt(errstr, errlen, "state restore: checkpoint directory %s is too long",
                 checkpoint_dir);
        json_decref(h);
        return NULL;
    }
    json_t *doc =
        json_pack("{s:s, s:b, s:I, s:[I,I], s:[{s:[I,I], s:O}]}", "base", base, "claim", 1,
                  "max_parallelism", (json_int_t)mp, "range", (json_int_t)0, (json_int_t)mp - 1,
                  "sources", "range", (json_int_t)0, (json_int_t)mp - 1, "handle", h);
    json_decref(h);
    if (!doc) {
        weir_fmt(errstr, errlen, "state restore: out of memory");
        return NULL;
    }
    weir_state_backend_t *sb = restore_doc(opts, states, n_states, fetch, doc, errstr, errlen);
    json_decref(doc);
    return sb;
}
