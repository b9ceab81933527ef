/* storage.c — the public half of storage.h: location URIs (check, join, parent, base), the
 * per-process env (the s3.* settings read once from the configuration, request counters, the
 * upload slots), opening a location onto its backend (posix.c or s3.c), the argument checks and
 * counting every operation shares, and weir_storage_put_files (a bounded pool of threads).
 *
 * Invariants: a key reaching a backend is valid (key_ok); the counters only grow; at most
 * env->s3.max_concurrent put_file calls run at once in the process (slot_acquire / release).
 * Threading: every function may be called from any thread; the env's slots are guarded by
 * env->mu (a leaf lock: never held while calling a backend); counters are relaxed atomics. */
#include "storage/storage.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"
#include "storage/storage_int.h"

/* ---- keys and URIs ------------------------------------------------------------------------ */

/* A key: '/'-separated components, none empty, "." or ".."; "" only when @p allow_root. */
static bool key_ok(const char *key, bool allow_root) {
    if (!key)
        return false;
    size_t n = strlen(key);
    if (n == 0)
        return allow_root;
    if (n > WEIR_STORAGE_KEY_MAX)
        return false;
    const char *c = key;
    for (;;) {
        const char *slash = strchr(c, '/');
        size_t len = slash ? (size_t)(slash - c) : strlen(c);
        if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
            return false;
        if (!slash)
            return true;
        c = slash + 1;
    }
}

static int bad_key(const char *op, const weir_storage_t *st, const char *key, char *errstr,
                   size_t errlen) {
    return weir_errf(errstr, errlen, WEIR_EINVAL,
                     "%s %s: bad object key \"%s\": '/'-separated names, none empty, \".\" or "
                     "\"..\"",
                     op, st ? st->uri : "?", key ? key : "(null)");
}

static bool bucket_ok(const char *b, size_t n) {
    if (n < 3 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((b[i] >= 'a' && b[i] <= 'z') || (b[i] >= '0' && b[i] <= '9') || b[i] == '.' ||
              b[i] == '-'))
            return false;
    return true;
}

/* Splits @p uri into its kind: s3 (bucket [start, len), prefix after it) or a POSIX path (after
 * "file://" if present). Checks the form. */
typedef struct parsed_uri {
    bool s3;
    const char *bucket; /* s3: not NUL-terminated */
    size_t bucket_len;
    const char *rest; /* s3: prefix (may be "", may end with '/'); posix: the absolute path */
} parsed_uri_t;

static int parse_uri(const char *uri, parsed_uri_t *p, char *errstr, size_t errlen) {
    memset(p, 0, sizeof *p);
    if (!uri || !*uri)
        return weir_errf(errstr, errlen, WEIR_ECONFIG,
                         "empty storage location: use s3://bucket/prefix or an absolute path");
    if (strlen(uri) >= WEIR_STORAGE_URI_MAX)
        return weir_errf(errstr, errlen, WEIR_ECONFIG, "storage location %.64s...: longer than %d",
                         uri, WEIR_STORAGE_URI_MAX);
    const char *rest;
    if (strncmp(uri, "s3://", 5) == 0) {
        p->s3 = true;
        p->bucket = uri + 5;
        const char *slash = strchr(p->bucket, '/');
        p->bucket_len = slash ? (size_t)(slash - p->bucket) : strlen(p->bucket);
        if (!bucket_ok(p->bucket, p->bucket_len))
            return weir_errf(errstr, errlen, WEIR_ECONFIG,
                             "%s: bad bucket name (3 to 63 of a-z 0-9 . -): use "
                             "s3://bucket/prefix or an absolute path",
                             uri);
        rest = slash ? slash + 1 : "";
        p->rest = rest;
    } else if (strncmp(uri, "file://", 7) == 0) {
        rest = uri + 7;
        p->rest = rest;
        if (rest[0] != '/')
            return weir_errf(errstr, errlen, WEIR_ECONFIG,
                             "%s: a file:// location needs an absolute path (file:///dir): use "
                             "s3://bucket/prefix or an absolute path",
                             uri);
    } else if (uri[0] == '/') {
        rest = uri;
        p->rest = rest;
    } else if (strstr(uri, "://")) {
        return weir_errf(errstr, errlen, WEIR_ECONFIG,
                         "%s: unknown scheme (s3:// and file:// are known): use "
                         "s3://bucket/prefix or an absolute path",
                         uri);
    } else {
        return weir_errf(errstr, errlen, WEIR_ECONFIG,
                         "%s: a relative path: use s3://bucket/prefix or an absolute path", uri);
    }
    /* no "." or ".." components anywhere in the prefix / path */
    for (const char *c = rest; *c;) {
        while (*c == '/')
            c++;
        const char *e = c;
        while (*e && *e != '/')
            e++;
        size_t len = (size_t)(e - c);
        if ((len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
            return weir_errf(errstr, errlen, WEIR_ECONFIG,
                             "%s: \".\" or \"..\" in the location: use s3://bucket/prefix or an "
                             "absolute path",
                             uri);
        c = e;
    }
    return 0;
}

int weir_storage_uri_check(const char *uri, char *errstr, size_t errlen) {
    parsed_uri_t p;
    return parse_uri(uri, &p, errstr, errlen);
}

/* Appends the components of @p path to out[*n] (single '/' between them). */
static int append_components(char *out, size_t cap, size_t *n, const char *path) {
    for (const char *c = path; *c;) {
        while (*c == '/')
            c++;
        if (!*c)
            break;
        const char *e = c;
        while (*e && *e != '/')
            e++;
        size_t len = (size_t)(e - c);
        bool need_slash = *n > 0 && out[*n - 1] != '/';
        if (*n + need_slash + len + 1 > cap)
            return WEIR_EINVAL;
        if (need_slash)
            out[(*n)++] = '/';
        memcpy(out + *n, c, len);
        *n += len;
        out[*n] = '\0';
        c = e;
    }
    return 0;
}

/* The canonical form of a checked URI: "s3://bucket[/a/b]" or "/a/b" ("/" for the root). */
static int canonical(const parsed_uri_t *p, char *out, size_t cap) {
    size_t n = 0;
    if (p->s3) {
        if (5 + p->bucket_len + 1 > cap)
            return WEIR_EINVAL;
        memcpy(out, "s3://", 5);
        memcpy(out + 5, p->bucket, p->bucket_len);
        n = 5 + p->bucket_len;
        out[n] = '\0';
        return append_components(out, cap, &n, p->rest);
    }
    if (cap < 2)
        return WEIR_EINVAL;
    out[0] = '/';
    out[1] = '\0';
    n = 1;
    return append_components(out, cap, &n, p->rest);
}

int weir_storage_uri_join(const char *uri, const char *key, char *out, size_t cap) {
    parsed_uri_t p;
    char err[8];
    if (parse_uri(uri, &p, err, sizeof err) != 0 || !key_ok(key, true))
        return WEIR_EINVAL;
    if (canonical(&p, out, cap) != 0)
        return WEIR_EINVAL;
    size_t n = strlen(out);
    return append_components(out, cap, &n, key);
}

int weir_storage_uri_parent(const char *uri, char *out, size_t cap) {
    parsed_uri_t p;
    char err[8];
    char buf[WEIR_STORAGE_URI_MAX];
    if (parse_uri(uri, &p, err, sizeof err) != 0 || canonical(&p, buf, sizeof buf) != 0)
        return WEIR_EINVAL;
    size_t root = p.s3 ? 5 + p.bucket_len : 1; /* the part that has no parent */
    size_t n = strlen(buf);
    if (n <= root)
        return WEIR_EINVAL;
    char *slash = strrchr(buf, '/');
    size_t cut = (size_t)(slash - buf);
    if (cut < root) /* "/a" -> "/" */
        cut = root;
    buf[cut] = '\0';
    if (cut + 1 > cap)
        return WEIR_EINVAL;
    memcpy(out, buf, cut + 1);
    return 0;
}

const char *weir_storage_uri_base(const char *uri) {
    size_t n = strlen(uri);
    while (n > 1 && uri[n - 1] == '/')
        n--;
    const char *s = uri + n;
    while (s > uri && s[-1] != '/')
        s--;
    return s;
}

/* ---- env ---------------------------------------------------------------------------------- */

static char *dup_or_null(const char *s) {
    return s && *s ? weir_xstrdup(s) : NULL;
}

weir_storage_env_t *weir_storage_env_new(const weir_config_t *cfg, char *errstr, size_t errlen) {
    weir_storage_env_t *env = weir_xcalloc(1, sizeof *env);
    weir_s3_settings_t *s = &env->s3;
    s->region = weir_xstrdup("us-east-1");
    s->multipart_threshold = 32u << 20;
    s->part_size = 16u << 20;
    s->max_concurrent = 4;
    s->retry_max_attempts = 5;
    s->retry_initial_ms = 100;
    s->retry_max_ms = 2000;
    s->connect_timeout_ms = 2000;
    s->request_timeout_ms = 60000;
    if (cfg) {
        s->endpoint = dup_or_null(weir_config_get_str(cfg, "s3.endpoint"));
        s->access_key = dup_or_null(weir_config_get_str(cfg, "s3.access-key"));
        s->secret_key = dup_or_null(weir_config_get_str(cfg, "s3.secret-key"));
        const char *region = weir_config_get_str(cfg, "s3.region");
        if (region && *region) {
            free(s->region);
            s->region = weir_xstrdup(region);
        }
        s->path_style = weir_config_get_bool(cfg, "s3.path.style.access");
        s->multipart_threshold = weir_config_get_bytes(cfg, "s3.multipart.threshold");
        s->part_size = weir_config_get_bytes(cfg, "s3.multipart.part-size");
        int64_t mc = weir_config_get_int(cfg, "s3.upload.max-concurrent");
        int64_t ra = weir_config_get_int(cfg, "s3.retry.max-attempts");
        s->retry_initial_ms = weir_config_get_ms(cfg, "s3.retry.initial-backoff");
        s->retry_max_ms = weir_config_get_ms(cfg, "s3.retry.max-backoff");
        s->connect_timeout_ms = weir_config_get_ms(cfg, "s3.connect-timeout");
        s->request_timeout_ms = weir_config_get_ms(cfg, "s3.request-timeout");
        const char *bad = NULL;
        if (mc < 1 || mc > 64)
            bad = "s3.upload.max-concurrent must be 1..64";
        else if (ra < 1 || ra > 100)
            bad = "s3.retry.max-attempts must be 1..100";
        else if (s->part_size < (5u << 20) || s->part_size > (5ull << 30))
            bad = "s3.multipart.part-size must be 5mb..5gb (S3's part limits)";
        else if (s->multipart_threshold < s->part_size)
            bad = "s3.multipart.threshold must be at least s3.multipart.part-size";
        else if (s->connect_timeout_ms <= 0 || s->request_timeout_ms <= 0)
            bad = "s3.connect-timeout and s3.request-timeout must be positive";
        else if (s->retry_initial_ms < 0 || s->retry_max_ms < s->retry_initial_ms)
            bad = "s3.retry.max-backoff must be at least s3.retry.initial-backoff";
        else if (s->endpoint && strncmp(s->endpoint, "http://", 7) != 0 &&
                 strncmp(s->endpoint, "https://", 8) != 0)
            bad = "s3.endpoint needs its scheme: http://host:port or https://host";
        if (bad) {
            weir_errf(errstr, errlen, WEIR_ECONFIG, "%s", bad);
            weir_storage_env_free(&env);
            return NULL;
        }
        s->max_concurrent = (uint32_t)mc;
        s->retry_max_attempts = (uint32_t)ra;
    }
    pthread_mutex_init(&env->mu, NULL);
    pthread_cond_init(&env->cv, NULL);
    return env;
}

void weir_storage_env_free(weir_storage_env_t **envp) {
    if (!envp || !*envp)
        return;
    weir_storage_env_t *env = *envp;
    if (env->s3_shared && env->free_shared)
        env->free_shared(env->s3_shared);
    free(env->s3.endpoint);
    free(env->s3.access_key);
    free(env->s3.secret_key);
    free(env->s3.region);
    pthread_cond_destroy(&env->cv);
    pthread_mutex_destroy(&env->mu);
    free(env);
    *envp = NULL;
}

void weir_storage_env_stats(const weir_storage_env_t *env, weir_storage_stats_t *out) {
    memset(out, 0, sizeof *out);
    if (!env)
        return;
#define LOAD(f) out->f = atomic_load_explicit(&env->f, memory_order_relaxed)
    LOAD(put_requests);
    LOAD(put_bytes);
    LOAD(get_requests);
    LOAD(get_bytes);
    LOAD(list_requests);
    LOAD(delete_requests);
    LOAD(stat_requests);
    LOAD(retries);
    LOAD(failures);
#undef LOAD
}

static void slot_acquire(weir_storage_env_t *env) {
    pthread_mutex_lock(&env->mu);
    while (env->uploads_running >= env->s3.max_concurrent)
        pthread_cond_wait(&env->cv, &env->mu);
    env->uploads_running++;
    pthread_mutex_unlock(&env->mu);
}

static void slot_release(weir_storage_env_t *env) {
    pthread_mutex_lock(&env->mu);
    env->uploads_running--;
    pthread_cond_signal(&env->cv);
    pthread_mutex_unlock(&env->mu);
}

/* ---- open / close ------------------------------------------------------------------------- */

weir_storage_t *weir_storage_open(weir_storage_env_t *env, const char *uri, char *errstr,
                                  size_t errlen) {
    parsed_uri_t p;
    if (!env) {
        weir_errf(errstr, errlen, WEIR_EINVAL, "storage %s: no storage environment",
                  uri ? uri : "(null)");
        return NULL;
    }
    if (parse_uri(uri, &p, errstr, errlen) != 0)
        return NULL;
    char canon[WEIR_STORAGE_URI_MAX];
    if (canonical(&p, canon, sizeof canon) != 0) {
        weir_errf(errstr, errlen, WEIR_ECONFIG, "storage location %.64s...: too long", uri);
        return NULL;
    }
    weir_storage_t *st = weir_xcalloc(1, sizeof *st);
    st->env = env;
    st->uri = weir_xstrdup(canon);
    int rc;
    if (p.s3) {
        char bucket[64];
        memcpy(bucket, p.bucket, p.bucket_len);
        bucket[p.bucket_len] = '\0';
        const char *prefix = canon + 5 + p.bucket_len; /* "" or "/a/b" */
        rc = weir__storage_s3_open(st, bucket, *prefix ? prefix + 1 : "", errstr, errlen);
    } else {
        rc = weir__storage_posix_open(st, canon, errstr, errlen);
    }
    if (rc != 0) {
        free(st->uri);
        free(st);
        return NULL;
    }
    return st;
}

void weir_storage_close(weir_storage_t **stp) {
    if (!stp || !*stp)
        return;
    weir_storage_t *st = *stp;
    if (st->ops && st->ops->close)
        st->ops->close(st->impl);
    free(st->uri);
    free(st);
    *stp = NULL;
}

const char *weir_storage_uri(const weir_storage_t *st) {
    return st->uri;
}

weir_storage_env_t *weir_storage_env(const weir_storage_t *st) {
    return st->env;
}

/* ---- operations --------------------------------------------------------------------------- */

static int counted(weir_storage_t *st, int rc) {
    if (rc != 0 && rc != WEIR_ENOTFOUND)
        weir__storage_count(&st->env->failures, 1);
    return rc;
}

int weir_storage_put(weir_storage_t *st, const char *key, const void *data, size_t len,
                     char *errstr, size_t errlen) {
    if (!key_ok(key, false))
        return bad_key("put", st, key, errstr, errlen);
    return counted(st, st->ops->put(st, key, data, len, errstr, errlen));
}

int weir_storage_put_file(weir_storage_t *st, const char *key, const char *path, uint64_t *size,
                          char *errstr, size_t errlen) {
    if (!key_ok(key, false))
        return bad_key("put", st, key, errstr, errlen);
    uint64_t sz = 0;
    slot_acquire(st->env);
    int rc = st->ops->put_file(st, key, path, &sz, errstr, errlen);
    slot_release(st->env);
    if (size)
        *size = sz;
    return counted(st, rc);
}

int weir_storage_get(weir_storage_t *st, const char *key, size_t max_len, uint8_t **data,
                     size_t *len, char *errstr, size_t errlen) {
    *data = NULL;
    *len = 0;
    if (!key_ok(key, false))
        return bad_key("get", st, key, errstr, errlen);
    return counted(st, st->ops->get(st, key, max_len, data, len, errstr, errlen));
}

int weir_storage_get_file(weir_storage_t *st, const char *key, const char *path, uint64_t *size,
                          char *errstr, size_t errlen) {
    if (!key_ok(key, false))
        return bad_key("get", st, key, errstr, errlen);
    uint64_t sz = 0;
    int rc = st->ops->get_file(st, key, path, &sz, errstr, errlen);
    if (size)
        *size = sz;
    return counted(st, rc);
}

int weir_storage_stat(weir_storage_t *st, const char *key, uint64_t *size, char *errstr,
                      size_t errlen) {
    if (!key_ok(key, false))
        return bad_key("stat", st, key, errstr, errlen);
    uint64_t sz = 0;
    int rc = st->ops->stat(st, key, &sz, errstr, errlen);
    if (size)
        *size = sz;
    return counted(st, rc);
}

int weir_storage_list(weir_storage_t *st, const char *prefix, bool recursive,
                      weir_storage_list_fn fn, void *arg, char *errstr, size_t errlen) {
    if (!key_ok(prefix, true))
        return bad_key("list", st, prefix, errstr, errlen);
    return counted(st, st->ops->list(st, prefix, recursive, fn, arg, errstr, errlen));
}

int weir_storage_delete(weir_storage_t *st, const char *key, char *errstr, size_t errlen) {
    if (!key_ok(key, false))
        return bad_key("delete", st, key, errstr, errlen);
    return counted(st, st->ops->del(st, key, errstr, errlen));
}

int weir_storage_delete_prefix(weir_storage_t *st, const char *prefix, char *errstr,
                               size_t errlen) {
    if (!key_ok(prefix, true))
        return bad_key("delete", st, prefix, errstr, errlen);
    return counted(st, st->ops->del_prefix(st, prefix, errstr, errlen));
}

/* ---- put_files ---------------------------------------------------------------------------- */

typedef struct put_files_job {
    weir_storage_t *st;
    weir_storage_upload_t *files;
    size_t n;
    pthread_mutex_t mu;
    size_t next;   /* next file to start */
    int rc;        /* first error */
    char err[512]; /* its line */
} put_files_job_t;

static void *put_files_worker(void *arg) {
    put_files_job_t *j = arg;
    for (;;) {
        pthread_mutex_lock(&j->mu);
        size_t i = j->next;
        bool stop = j->rc != 0 || i >= j->n;
        if (!stop)
            j->next++;
        pthread_mutex_unlock(&j->mu);
        if (stop)
            return NULL;
        char err[512] = "";
        int rc = weir_storage_put_file(j->st, j->files[i].key, j->files[i].path, &j->files[i].size,
                                       err, sizeof err);
        if (rc != 0) {
            pthread_mutex_lock(&j->mu);
            if (j->rc == 0) {
                j->rc = rc;
                weir_fmt(j->err, sizeof j->err, "%s", err);
            }
            pthread_mutex_unlock(&j->mu);
        }
    }
}

int weir_storage_put_files(weir_storage_t *st, weir_storage_upload_t *files, size_t n, char *errstr,
                           size_t errlen) {
    if (n == 0)
        return 0;
    put_files_job_t j = {.st = st, .files = files, .n = n};
    pthread_mutex_init(&j.mu, NULL);
    size_t threads = st->env->s3.max_concurrent;
    if (threads > n)
        threads = n;
    pthread_t tids[64];
    size_t started = 0;
    for (size_t i = 1; i < threads; i++) { /* this thread is the first worker */
        if (pthread_create(&tids[started], NULL, put_files_worker, &j) != 0)
            break; /* fewer threads: still correct */
        started++;
    }
    put_files_worker(&j);
    for (size_t i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    pthread_mutex_destroy(&j.mu);
    if (j.rc != 0)
        weir_errf(errstr, errlen, j.rc, "%s", j.err);
    return j.rc;
}
