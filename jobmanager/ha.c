/* Owns the layout of the job manager's HA store (ha.h): job records, checkpoint pointers, plugin
 * copies and job result records (and the derivation of an application job's id), each written as
 * one whole object through storage/storage.h (a POSIX directory or S3) so a crash leaves either
 * the old or the new one, durable before a write returns 0. Reads at recovery go
 * through store_io.h: a transient read error is retried and reported, and a record that still
 * cannot be read fails the load (it is never skipped as if it were corrupt, which would lose the
 * job). No knowledge of the job manager (its use of the store is ha_jobs.c). Invariants: job.json
 * is rewritten whole (never appended); the pointer is written after the checkpoint's _metadata is
 * durable (the caller's order); a write that returns an error may or may not have replaced the file
 * (the caller must keep both the old and the new target). Threading: none (stateless functions; the
 * job manager calls them on its threads, never for the same job concurrently). */
#include "jobmanager/ha.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "jobmanager/store_io.h"

#define COMP "ha"
#define REC "HA job record"

/* Writes <ha>/<sub>/<name> whole (one put: durable, old or new). */
static int write_synced(weir_storage_t *ha, const char *sub, const char *name, const void *data,
                        size_t len, char *errstr, size_t errlen) {
    char key[512], why[WEIR_STORAGE_URI_MAX + 256];
    weir_fmt(key, sizeof key, "%s/%s", sub, name);
    int rc = weir_storage_put(ha, key, data, len, why, sizeof why);
    if (rc != 0)
        return weir_errf(errstr, errlen, rc,
                         "HA: cannot write %s: %s (check "
                         "high-availability.storageDir)",
                         key, why);
    return 0;
}

int weir_ha_save_job(weir_storage_t *ha, const weir_ha_job_t *job, char *errstr, size_t errlen) {
    json_error_t jerr;
    json_t *graph = json_loads(job->graph_json ? job->graph_json : "null", JSON_DECODE_ANY, &jerr);
    json_t *args = json_array();
    json_t *par = json_array();
    if (!graph || !args || !par)
        goto oom;
    for (uint32_t i = 0; i < job->n_args; i++)
        json_array_append_new(args, json_string(job->args[i]));
    for (uint32_t i = 0; i < job->n_vertices; i++)
        json_array_append_new(par, json_integer(job->parallelism[i]));
    json_t *root = json_pack("{s:s,s:s,s:o,s:o,s:s,s:I,s:o,s:I}", "id", job->id, "name",
                             job->name ? job->name : "", "graph", graph, "args", args, "plugin",
                             job->plugin, "attempt", (json_int_t)job->attempt, "parallelism", par,
                             "submit_time", (json_int_t)job->submit_ms);
    graph = args = par = NULL;
    if (root && job->savepoint &&
        (json_object_set_new(root, "savepoint", json_string(job->savepoint)) != 0 ||
         json_object_set_new(root, "allow_non_restored", json_boolean(job->allow_non_restored)) !=
             0)) {
        json_decref(root);
        root = NULL;
    }
    if (!root)
        goto oom;
    char *text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!text)
        goto oom;
    char sub[64];
    weir_fmt(sub, sizeof sub, "jobs/%s", job->id);
    int rc = write_synced(ha, sub, "job.json", text, strlen(text), errstr, errlen);
    free(text);
    return rc;
oom:
    json_decref(graph);
    json_decref(args);
    json_decref(par);
    weir_fmt(errstr, errlen, "HA: out of memory (or bad graph JSON) saving job %s", job->id);
    return WEIR_ENOMEM;
}

int weir_ha_save_blob(weir_storage_t *ha, const char *sha, const void *data, size_t len,
                      char *errstr, size_t errlen) {
    char key[128], why[WEIR_STORAGE_URI_MAX + 256];
    weir_fmt(key, sizeof key, "blobs/%s", sha);
    uint64_t size = 0;
    if (weir_storage_stat(ha, key, &size, why, sizeof why) == 0 && size == (uint64_t)len)
        return 0;
    return write_synced(ha, "blobs", sha, data, len, errstr, errlen);
}

int weir_ha_load_blob(weir_storage_t *ha, const char *sha, size_t max_len,
                      const weir_store_io_t *io, uint8_t **data, size_t *len, char *errstr,
                      size_t errlen) {
    char key[128], why[WEIR_STORAGE_URI_MAX + 512];
    weir_fmt(key, sizeof key, "blobs/%s", sha);
    int rc = weir_store_read(io, COMP, ha, key, max_len, data, len, why, sizeof why);
    if (rc != 0 && rc != WEIR_ENOTFOUND)
        return weir_errf(errstr, errlen, rc, "HA: %s (check high-availability.storageDir)", why);
    return rc;
}

int weir_ha_set_checkpoint(weir_storage_t *ha, const char *job_id, const char *path, char *errstr,
                           size_t errlen) {
    size_t len = strlen(path);
    char *text = malloc(len + 2);
    if (!text)
        return weir_errf(errstr, errlen, WEIR_ENOMEM, "HA: out of memory");
    memcpy(text, path, len);
    text[len] = '\n';
    char sub[64];
    weir_fmt(sub, sizeof sub, "jobs/%s", job_id);
    int rc = write_synced(ha, sub, "checkpoint", text, len + 1, errstr, errlen);
    free(text);
    return rc;
}

int weir_ha_remove_job(weir_storage_t *ha, const char *job_id, char *errstr, size_t errlen) {
    char key[64];
    weir_fmt(key, sizeof key, "jobs/%s", job_id);
    return weir_storage_delete_prefix(ha, key, errstr, errlen);
}

void weir_ha_job_clear(weir_ha_job_t *job) {
    if (!job)
        return;
    free(job->name);
    free(job->graph_json);
    for (uint32_t i = 0; i < job->n_args; i++)
        free(job->args[i]);
    free(job->args);
    free(job->parallelism);
    free(job->checkpoint);
    free(job->savepoint);
    memset(job, 0, sizeof *job);
}

void weir_ha_jobs_free(weir_ha_job_t *jobs, size_t n) {
    for (size_t i = 0; i < n; i++)
        weir_ha_job_clear(&jobs[i]);
    free(jobs);
}

/* Parses one job.json into @p out. @returns 0 or WEIR_ECORRUPT with errstr. */
static int parse_job(const char *text, size_t len, weir_ha_job_t *out, char *errstr,
                     size_t errlen) {
    json_error_t jerr;
    json_t *root = json_loadb(text, len, 0, &jerr);
    if (!root) {
        weir_fmt(errstr, errlen, "not JSON: %s", weir_json_error_text(&jerr));
        return WEIR_ECORRUPT;
    }
    int rc = WEIR_ECORRUPT;
    const char *id = NULL, *plugin = NULL, *name = NULL;
    const json_t *graph = json_object_get(root, "graph");
    const json_t *args = NULL, *par = NULL;
    int64_t attempt = 0;
    if (weir_json_str(root, REC, "id", true, &id, NULL, 0) != 0 || strlen(id) != 32 ||
        weir_json_str(root, REC, "plugin", true, &plugin, NULL, 0) != 0 || strlen(plugin) != 64 ||
        !json_is_object(graph) ||
        weir_json_int(root, REC, "attempt", true, INT64_MIN, INT64_MAX, 0, &attempt, NULL, 0) !=
            0) {
        weir_fmt(errstr, errlen, "missing or bad id/plugin/graph/attempt");
        goto done;
    }
    memcpy(out->id, id, 33);
    memcpy(out->plugin, plugin, 65);
    out->attempt = (uint32_t)attempt;
    /* optional members: one of the wrong type reads as absent */
    weir_json_int(root, REC, "submit_time", false, INT64_MIN, INT64_MAX, 0, &out->submit_ms, NULL,
                  0);
    weir_json_str(root, REC, "name", false, &name, NULL, 0);
    const char *sp = NULL;
    weir_json_str(root, REC, "savepoint", false, &sp, NULL, 0);
    weir_json_bool(root, REC, "allow_non_restored", false, false, &out->allow_non_restored, NULL,
                   0);
    if (sp && !(out->savepoint = strdup(sp)))
        goto oom;
    weir_json_array(root, REC, "args", false, &args, NULL, 0);
    weir_json_array(root, REC, "parallelism", false, &par, NULL, 0);
    out->name = strdup(name ? name : "");
    out->graph_json = json_dumps(graph, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!out->name || !out->graph_json)
        goto oom;
    size_t na = json_array_size(args);
    if (na) {
        out->args = calloc(na, sizeof *out->args);
        if (!out->args)
            goto oom;
        for (size_t i = 0; i < na; i++) {
            const char *a = json_string_value(json_array_get(args, i));
            if (!a) {
                weir_fmt(errstr, errlen, "args[%zu] is not a string", i);
                goto done;
            }
            if (!(out->args[i] = strdup(a)))
                goto oom;
            out->n_args = (uint32_t)(i + 1);
        }
    }
    size_t np = json_array_size(par);
    if (np) {
        out->parallelism = calloc(np, sizeof *out->parallelism);
        if (!out->parallelism)
            goto oom;
        for (size_t i = 0; i < np; i++)
            out->parallelism[i] = (uint32_t)json_integer_value(json_array_get(par, i));
        out->n_vertices = (uint32_t)np;
    }
    rc = 0;
    goto done;
oom:
    weir_fmt(errstr, errlen, "out of memory");
    rc = WEIR_ENOMEM;
done:
    json_decref(root);
    if (rc != 0)
        weir_ha_job_clear(out);
    return rc;
}

typedef struct job_dirs {
    char **names;
    size_t n, cap;
    bool oom;
} job_dirs_t;

static int collect_job_dir(void *arg, const char *name, bool is_dir, uint64_t size) {
    (void)size;
    job_dirs_t *d = arg;
    if (!is_dir) {
        WEIR_WARN(COMP, "HA: skipping jobs/%s: not a job directory", name);
        return 0;
    }
    char *copy = strdup(name);
    if (!copy || weir_array_grow((void **)&d->names, &d->cap, d->n + 1, sizeof *d->names, 8) != 0) {
        free(copy);
        d->oom = true;
        return WEIR_ENOMEM;
    }
    d->names[d->n++] = copy;
    return 0;
}

int weir_ha_load_jobs(weir_storage_t *ha, const weir_store_io_t *io, weir_ha_job_t **jobs,
                      size_t *n, char *errstr, size_t errlen) {
    *jobs = NULL;
    *n = 0;
    const char *uri = weir_storage_uri(ha);
    job_dirs_t dirs = {0};
    char lerr[WEIR_STORAGE_URI_MAX + 256];
    int rc = weir_storage_list(ha, "jobs", false, collect_job_dir, &dirs, lerr, sizeof lerr);
    if (rc != 0) {
        for (size_t i = 0; i < dirs.n; i++)
            free(dirs.names[i]);
        free(dirs.names);
        if (dirs.oom)
            return weir_errf(errstr, errlen, WEIR_ENOMEM, "HA: out of memory");
        weir_fmt(errstr, errlen, "HA: cannot list %s/jobs: %s (check high-availability.storageDir)",
                 uri, lerr);
        return WEIR_EIO;
    }
    size_t cap = 0;
    for (size_t di = 0; di < dirs.n && rc == 0; di++) {
        const char *name = dirs.names[di];
        if (name[0] == '.')
            continue;
        char key[WEIR_STORAGE_KEY_MAX], why[WEIR_STORAGE_URI_MAX + 512];
        weir_fmt(key, sizeof key, "jobs/%s/job.json", name);
        uint8_t *data = NULL;
        size_t len = 0;
        int r =
            weir_store_read(io, COMP, ha, key, WEIR_STORE_READ_MAX, &data, &len, why, sizeof why);
        if (r == WEIR_ENOTFOUND) {
            WEIR_WARN(COMP, "HA: skipping %s/jobs/%s: no readable job.json", uri, name);
            continue;
        }
        if (r != 0) {
            /* not corruption: skipping it would lose the job */
            weir_fmt(errstr, errlen, "HA: %s (check high-availability.storageDir)", why);
            rc = WEIR_EIO;
            break;
        }
        weir_ha_job_t job;
        memset(&job, 0, sizeof job);
        r = parse_job((const char *)data, len, &job, why, sizeof why);
        free(data);
        if (r != 0) {
            WEIR_WARN(COMP, "HA: skipping %s/%s: %s", uri, key, why);
            continue;
        }
        weir_fmt(key, sizeof key, "jobs/%s/checkpoint", name);
        r = weir_store_read(io, COMP, ha, key, WEIR_STORE_READ_MAX, &data, &len, why, sizeof why);
        if (r == 0) {
            while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
                data[--len] = 0;
            if (len > 0)
                job.checkpoint = (char *)data;
            else
                free(data);
        } else if (r != WEIR_ENOTFOUND) {
            weir_ha_job_clear(&job);
            weir_fmt(errstr, errlen, "HA: %s (check high-availability.storageDir)", why);
            rc = WEIR_EIO;
            break;
        }
        if (weir_array_grow((void **)jobs, &cap, *n + 1, sizeof **jobs, 8) != 0) {
            weir_ha_job_clear(&job);
            weir_fmt(errstr, errlen, "HA: out of memory");
            rc = WEIR_ENOMEM;
            break;
        }
        (*jobs)[(*n)++] = job;
    }
    for (size_t i = 0; i < dirs.n; i++)
        free(dirs.names[i]);
    free(dirs.names);
    if (rc != 0) {
        weir_ha_jobs_free(*jobs, *n);
        *jobs = NULL;
        *n = 0;
    }
    return rc;
}

/* ---------------------------------------------------------------- job result store */

#define RES "job result record"

bool weir_ha_valid_job_id(const char *id) {
    if (!id || strlen(id) != 32)
        return false;
    for (const char *p = id; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

void weir_ha_application_job_id(const char *cluster_id, const char *savepoint_path, char out[33]) {
    const char *sp = savepoint_path ? savepoint_path : "";
    size_t n = strlen("weir-application\n") + strlen(cluster_id) + 1 + strlen(sp) + 1;
    char *text = weir_xcalloc(n, 1);
    weir_fmt(text, n, "weir-application\n%s\n%s", cluster_id, sp);
    char hex[65];
    weir_sha256_hex(text, strlen(text), hex);
    free(text);
    memcpy(out, hex, 32);
    out[32] = 0;
}

void weir_ha_result_path(const char *ha_uri, const char *id, char *out, size_t cap) {
    weir_fmt(out, cap, "%s/results/%s.json", ha_uri, id);
}

static bool terminal_name(const char *s) {
    return !strcmp(s, "FINISHED") || !strcmp(s, "CANCELED") || !strcmp(s, "FAILED");
}

int weir_ha_save_result(weir_storage_t *ha, const weir_ha_result_t *res, char *errstr,
                        size_t errlen) {
    if (!weir_ha_valid_job_id(res->id) || !terminal_name(res->state))
        return weir_errf(errstr, errlen, WEIR_EINVAL,
                         "HA: bad job result record (id '%s', state '%s')", res->id, res->state);
    json_t *root = json_pack("{s:s,s:s,s:s,s:I}", "id", res->id, "name", res->name ? res->name : "",
                             "state", res->state, "end-time", (json_int_t)res->end_ms);
    if (root && res->savepoint &&
        json_object_set_new(root, "savepoint", json_string(res->savepoint)) != 0) {
        json_decref(root);
        root = NULL;
    }
    char *text = root ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
    if (!text)
        return weir_errf(errstr, errlen, WEIR_ENOMEM,
                         "HA: out of memory (or a name that is not UTF-8) writing the result of "
                         "job %s",
                         res->id);
    char name[64];
    weir_fmt(name, sizeof name, "%s.json", res->id);
    size_t len = strlen(text);
    int rc = write_synced(ha, "results", name, text, len, errstr, errlen);
    free(text);
    return rc;
}

void weir_ha_result_clear(weir_ha_result_t *res) {
    if (!res)
        return;
    free(res->name);
    free(res->savepoint);
    memset(res, 0, sizeof *res);
}

int weir_ha_load_result(weir_storage_t *ha, const char *id, const weir_store_io_t *io,
                        weir_ha_result_t *res, char *errstr, size_t errlen) {
    memset(res, 0, sizeof *res);
    char path[WEIR_STORAGE_URI_MAX + 64], why[WEIR_STORAGE_URI_MAX + 512], key[64];
    weir_ha_result_path(weir_storage_uri(ha), id, path, sizeof path);
    weir_fmt(key, sizeof key, "results/%s.json", id);
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = weir_store_read(io, COMP, ha, key, WEIR_STORE_READ_MAX, &data, &len, why, sizeof why);
    if (rc == WEIR_ENOTFOUND)
        return rc;
    if (rc != 0)
        return weir_errf(errstr, errlen, WEIR_EIO, "HA: %s (check high-availability.storageDir)",
                         why);
    json_error_t jerr;
    json_t *root = json_loadb((const char *)data, len, 0, &jerr);
    free(data);
    if (!root)
        return weir_errf(errstr, errlen, WEIR_ECORRUPT, "%s: not JSON: %s", path,
                         weir_json_error_text(&jerr));
    const char *rid = NULL, *name = NULL, *state = NULL, *sp = NULL;
    rc = WEIR_ECORRUPT;
    if (weir_json_str(root, RES, "id", true, &rid, NULL, 0) != 0 || strcmp(rid, id) != 0 ||
        weir_json_str(root, RES, "state", true, &state, NULL, 0) != 0 || !terminal_name(state) ||
        weir_json_int(root, RES, "end-time", true, INT64_MIN, INT64_MAX, 0, &res->end_ms, NULL,
                      0) != 0 ||
        weir_json_str(root, RES, "name", false, &name, NULL, 0) != 0 ||
        weir_json_str(root, RES, "savepoint", false, &sp, NULL, 0) != 0) {
        weir_fmt(errstr, errlen,
                 "%s: not a job result record of job %s (needs id, state FINISHED, CANCELED or "
                 "FAILED, end-time)",
                 path, id);
        goto done;
    }
    memcpy(res->id, rid, 33);
    weir_fmt(res->state, sizeof res->state, "%s", state);
    res->name = strdup(name ? name : "");
    res->savepoint = sp ? strdup(sp) : NULL;
    if (!res->name || (sp && !res->savepoint)) {
        weir_fmt(errstr, errlen, "HA: out of memory reading %s", path);
        rc = WEIR_ENOMEM;
        goto done;
    }
    rc = 0;
done:
    json_decref(root);
    if (rc != 0)
        weir_ha_result_clear(res);
    return rc;
}
