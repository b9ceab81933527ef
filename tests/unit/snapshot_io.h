/* Test helpers: keyed-state upload and restore (state/snapshot.h) through a checkpoint storage
 * (storage/storage.h) rooted at a local directory, each call with its own default env (no s3.*
 * settings), so the tests keep their one-line call sites. Header-only, static functions. */
#ifndef WEIR_TESTS_SNAPSHOT_IO_H
#define WEIR_TESTS_SNAPSHOT_IO_H

#include "common/err.h"
#include "state/snapshot.h"
#include "storage/storage.h"

/* weir_state_snapshot_upload into the storage rooted at @p dir. */
static inline int upload_to(weir_state_snapshot_t *s, const char *dir, const char *task,
                            weir_upload_mode_t mode, char **h, uint64_t *ss, uint64_t *us,
                            char *err, size_t errlen) {
    weir_storage_env_t *env = weir_storage_env_new(NULL, err, errlen);
    weir_storage_t *st = env ? weir_storage_open(env, dir, err, errlen) : NULL;
    int rc =
        st ? weir_state_snapshot_upload(s, st, task, mode, h, ss, us, err, errlen) : WEIR_ECONFIG;
    weir_storage_close(&st);
    weir_storage_env_free(&env);
    return rc;
}

/* weir_state_restore without a local recovery cache. */
static inline weir_state_backend_t *restore_ck(const weir_state_opts_t *o,
                                               const weir_state_decl_t *d, uint32_t n,
                                               const char *ckdir, const char *h, char *err,
                                               size_t errlen) {
    weir_storage_env_t *env = weir_storage_env_new(NULL, err, errlen);
    if (!env)
        return NULL;
    weir_state_fetch_t f = {.env = env};
    weir_state_backend_t *sb = weir_state_restore(o, d, n, &f, ckdir, h, err, errlen);
    weir_storage_env_free(&env);
    return sb;
}

/* weir_state_restore_plan without a local recovery cache. */
static inline weir_state_backend_t *restore_doc_plan(const weir_state_opts_t *o,
                                                     const weir_state_decl_t *d, uint32_t n,
                                                     const char *doc, char *err, size_t errlen) {
    weir_storage_env_t *env = weir_storage_env_new(NULL, err, errlen);
    if (!env)
        return NULL;
    weir_state_fetch_t f = {.env = env};
    weir_state_backend_t *sb = weir_state_restore_plan(o, d, n, &f, doc, err, errlen);
    weir_storage_env_free(&env);
    return sb;
}

#endif
