/* Internal to storage/: the backend vtable, the env's settings, counters and upload slots.
 * storage.c owns the public functions (argument checks, counting, slots, put_files) and calls
 * a backend through weir_storage_ops_t; posix.c and s3.c are the backends. */
#ifndef WEIR_STORAGE_STORAGE_INT_H
#define WEIR_STORAGE_STORAGE_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "storage/storage.h"

/** S3 settings of an env (docs/configuration.md, "s3.*"). Strings malloc'd or NULL. */
typedef struct weir_s3_settings {
    char *endpoint;               /* s3.endpoint: "http://127.0.0.1:8333" (scheme required) */
    char *access_key;             /* s3.access-key */
    char *secret_key;             /* s3.secret-key */
    char *region;                 /* s3.region, default "us-east-1" */
    bool path_style;              /* s3.path.style.access, default false (virtual-hosted) */
    uint64_t multipart_threshold; /* s3.multipart.threshold, default 32 MiB */
    uint64_t part_size;           /* s3.multipart.part-size, default 16 MiB (>= 5 MiB) */
    uint32_t max_concurrent;      /* s3.upload.max-concurrent, default 4 (1..64) */
    uint32_t retry_max_attempts;  /* s3.retry.max-attempts, default 5 (1 = no retry) */
    int64_t retry_initial_ms;     /* s3.retry.initial-backoff, default 100 ms */
    int64_t retry_max_ms;         /* s3.retry.max-backoff, default 2 s */
    int64_t connect_timeout_ms;   /* s3.connect-timeout, default 2 s */
    int64_t request_timeout_ms;   /* s3.request-timeout, default 60 s (whole request, low-speed
                                     abort: below 1 KiB/s for 10 s) */
} weir_s3_settings_t;

struct weir_storage_env {
    weir_s3_settings_t s3;
    /* counters (relaxed atomics) */
    _Atomic uint64_t put_requests, put_bytes, get_requests, get_bytes, list_requests,
        delete_requests, stat_requests, retries, failures;
    /* upload slots: at most s3.max_concurrent put_file at once in the process */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint32_t uploads_running;
    /* backend-owned shared state (s3.c: e.g. a curl share handle), made on first use under mu,
     * freed by free_shared at weir_storage_env_free */
    void *s3_shared;
    void (*free_shared)(void *);
};

typedef struct weir_storage_ops {
    int (*put)(weir_storage_t *st, const char *key, const void *data, size_t len, char *errstr,
               size_t errlen);
    int (*put_file)(weir_storage_t *st, const char *key, const char *path, uint64_t *size,
                    char *errstr, size_t errlen);
    int (*get)(weir_storage_t *st, const char *key, size_t max_len, uint8_t **data, size_t *len,
               char *errstr, size_t errlen);
    int (*get_file)(weir_storage_t *st, const char *key, const char *path, uint64_t *size,
                    char *errstr, size_t errlen);
    int (*stat)(weir_storage_t *st, const char *key, uint64_t *size, char *errstr, size_t errlen);
    int (*list)(weir_storage_t *st, const char *prefix, bool recursive, weir_storage_list_fn fn,
                void *arg, char *errstr, size_t errlen);
    int (*del)(weir_storage_t *st, const char *key, char *errstr, size_t errlen);
    int (*del_prefix)(weir_storage_t *st, const char *prefix, char *errstr, size_t errlen);
    void (*close)(void *impl);
} weir_storage_ops_t;

struct weir_storage {
    weir_storage_env_t *env;
    const weir_storage_ops_t *ops;
    void *impl; /* the backend's */
    char *uri;  /* canonical root */
};

/** posix.c: roots @p st at the absolute directory @p dir (no trailing '/', "/" allowed). */
int weir__storage_posix_open(weir_storage_t *st, const char *dir, char *errstr, size_t errlen);
/** s3.c: roots @p st at s3://@p bucket/@p prefix (prefix "" or without leading/trailing '/').
 * WEIR_ECONFIG when s3.endpoint, s3.access-key or s3.secret-key is unset (one line naming it). */
int weir__storage_s3_open(weir_storage_t *st, const char *bucket, const char *prefix, char *errstr,
                          size_t errlen);

/** Backends count through these (relaxed). */
static inline void weir__storage_count(_Atomic uint64_t *c, uint64_t n) {
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

#endif
