/* Owns the job manager's side of checkpoints (docs/checkpointing.md): configuration, the
 * _metadata format (JSON + "sha256 <hex>" line, written atomically and last), the search for the
 * latest restorable checkpoint (corrupt ones fall back to the previous), retention + garbage
 * collection of <ckdir>, the per-job coordinator state machine (pure functions), and the glue
 * that runs it inside the job manager (trigger, acks, declines, expiry, completion, notify).
 *
 * Invariants: ids grow and are above every chk-* directory; at most one checkpoint in flight per
 * job; _metadata is durable before the HA pointer, before retention, before NOTIFY; garbage
 * collection of shared/ runs only when nothing is in flight.
 *
 * Threading: the pure functions have no shared state; the glue (weir_jm_ckpt_*_locked) runs on
 * the job manager's main thread with jm->mu held. */
#include "jobmanager/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "jobmanager/ha.h"
#include "jobmanager/jobmanager.h"

#define COMP "checkpoint"

/* ---------------------------------------------------------------- configuration */

int weir_ckpt_config_load(const weir_config_t *cfg, weir_ckpt_config_t *out, char *errstr,
                          size_t errlen) {
    memset(out, 0, sizeof *out);
    const char *interval = weir_config_get_str(cfg, "execution.checkpointing.interval");
    const char *dir = weir_config_get_str(cfg, "state.checkpoints.dir");
    out->enabled = interval && *interval;
    out->interval_ms =
        out->enabled ? weir_config_get_ms(cfg, "execution.checkpointing.interval") : 0;
    out->timeout_ms = weir_config_get_ms(cfg, "execution.checkpointing.timeout");
    out->min_pause_ms = weir_config_get_ms(cfg, "execution.checkpointing.min-pause");
    out->tolerable =
        weir_config_get_int(cfg, "execution.checkpointing.tolerable-failed-checkpoints");
    int64_t retained = weir_config_get_int(cfg, "state.checkpoints.num-retained");
    out->incremental = weir_config_get_bool(cfg, "state.backend.incremental");
    if (out->enabled && (!dir || !*dir)) {
        weir_fmt(errstr, errlen,
                 "execution.checkpointing.interval is set but state.checkpoints.dir is not: set "
                 "both");
        return WEIR_ECONFIG;
    }
    if (dir && strlen(dir) >= sizeof out->dir - 64) {
        weir_fmt(errstr, errlen, "state.checkpoints.dir is too long (at most %zu characters)",
                 sizeof out->dir - 64);
        return WEIR_ECONFIG;
    }
    weir_fmt(out->dir, sizeof out->dir, "%s", dir ? dir : "");
    const char *mode = weir_config_get_str(cfg, "execution.checkpointing.mode");
    if (mode && !strcmp(mode, "EXACTLY_ONCE")) {
        out->mode = WEIR_CHECKPOINT_EXACTLY_ONCE;
    } else if (mode && !strcmp(mode, "AT_LEAST_ONCE")) {
        out->mode = WEIR_CHECKPOINT_AT_LEAST_ONCE;
    } else {
        weir_fmt(errstr, errlen,
                 "bad value '%s' for execution.checkpointing.mode (EXACTLY_ONCE or AT_LEAST_ONCE)",
                 mode ? mode : "");
        return WEIR_ECONFIG;
    }
    int64_t maxc = weir_config_get_int(cfg, "execution.checkpointing.max-concurrent-checkpoints");
    if (maxc != 1) {
        weir_fmt(errstr, errlen,
                 "bad value %" PRId64
                 " for execution.checkpointing.max-concurrent-checkpoints: only 1 is supported",
                 maxc);
        return WEIR_ECONFIG;
    }
    if (out->enabled && out->interval_ms <= 0) {
        weir_fmt(errstr, errlen, "execution.checkpointing.interval must be > 0");
        return WEIR_ECONFIG;
    }
    if (retained < 1 || retained > 1000000) {
        weir_fmt(errstr, errlen, "bad value %" PRId64 " for state.checkpoints.num-retained (>= 1)",
                 retained);
        return WEIR_ECONFIG;
    }
    out->num_retained = (uint32_t)retained;
    if (!out->enabled)
        out->mode = WEIR_CHECKPOINT_NONE;
    return 0;
}

/* ---------------------------------------------------------------- base64 */

char *weir_ckpt_b64_encode(const uint8_t *data, size_t len) {
    size_t cap = 4 * ((len + 2) / 3) + 1;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    if (len > 0x7fffffff) {
        free(out);
        return NULL;
    }
    int n = EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    out[n < 0 ? 0 : n] = 0;
    return out;
}

int weir_ckpt_b64_decode(const char *text, uint8_t **out, size_t *out_len) {
    size_t len = strlen(text);
    *out = NULL;
    *out_len = 0;
    if (len % 4 != 0 || len > 0x7ffffff0)
        return WEIR_ECORRUPT;
    uint8_t *buf = malloc(len / 4 * 3 + 1);
    if (!buf)
        return WEIR_ENOMEM;
    int n = len ? EVP_DecodeBlock(buf, (const unsigned char *)text, (int)len) : 0;
    if (n < 0) {
        free(buf);
        return WEIR_ECORRUPT;
    }
    size_t pad = 0;
    if (len >= 1 && text[len - 1] == '=')
        pad++;
    if (len >= 2 && text[len - 2] == '=')
        pad++;
    *out = buf;
    *out_len = (size_t)n - pad;
    return 0;
}

/* ---------------------------------------------------------------- _metadata */

void weir_ckpt_meta_clear(weir_ckpt_meta_t *m) {
    if (!m)
        return;
    for (uint32_t i = 0; i < m->n_tasks; i++) {
        free(m->tasks[i].op_state);
        free(m->tasks[i].keyed);
    }
    free(m->tasks);
    memset(m, 0, sizeof *m);
}

int weir_ckpt_meta_encode(const weir_ckpt_meta_t *m, char **out, size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    int rc = WEIR_ENOMEM;
    json_t *tasks = json_array();
    json_t *root = NULL;
    char *text = NULL;
    if (!tasks)
        goto done;
    for (uint32_t i = 0; i < m->n_tasks; i++) {
        const weir_ckpt_task_t *t = &m->tasks[i];
        json_t *op = json_null(), *keyed = json_null();
        if (t->op_state) {
            char *b = weir_ckpt_b64_encode(t->op_state, t->op_state_len);
            if (!b)
                goto done;
            op = json_string(b);
            free(b);
        }
        if (t->keyed) {
            json_error_t jerr;
            keyed = json_loads(t->keyed, JSON_DECODE_ANY, &jerr);
            if (!keyed) {
                json_decref(op);
                rc = WEIR_EINVAL;
                goto done;
            }
        }
        json_t *o = json_pack("{s:I,s:I,s:o,s:o,s:I}", "vertex", (json_int_t)t->vertex, "subtask",
                              (json_int_t)t->subtask, "op_state", op, "keyed", keyed, "state_size",
                              (json_int_t)t->state_size);
        if (!o || json_array_append_new(tasks, o) != 0)
            goto done;
    }
    root = json_pack("{s:i,s:s,s:I,s:I,s:I,s:b,s:O}", "version", 1, "job", m->job, "checkpoint",
                     (json_int_t)m->id, "trigger_time", (json_int_t)m->trigger_ms, "complete_time",
                     (json_int_t)m->complete_ms, "final", (int)m->final, "tasks", tasks);
    if (!root)
        goto done;
    text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!text)
        goto done;
    size_t body = strlen(text);
    char *buf = malloc(body + 1 + 7 + 64 + 2);
    if (!buf)
        goto done;
    memcpy(buf, text, body);
    buf[body++] = '\n';
    char hex[65];
    weir_sha256_hex(buf, body, hex);
    memcpy(buf + body, "sha256 ", 7);
    memcpy(buf + body + 7, hex, 64);
    buf[body + 71] = '\n';
    buf[body + 72] = 0;
    *out = buf;
    *out_len = body + 72;
    rc = 0;
done:
    free(text);
    json_decref(root);
    json_decref(tasks);
    return rc;
}

static int get_u64(json_t *o, const char *key, uint64_t *out) {
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

int weir_ckpt_meta_decode(const char *data, size_t len, weir_ckpt_meta_t *m, char *errstr,
                          size_t errlen) {
    memset(m, 0, sizeof *m);
    /* the last line: "sha256 <64 hex>" (+ optional newline) */
    size_t end = len;
    if (end > 0 && data[end - 1] == '\n')
        end--;
    if (end < 71 || memcmp(data + end - 71, "sha256 ", 7) != 0 ||
        (end > 71 && data[end - 72] != '\n')) {
        weir_fmt(errstr, errlen, "no final sha256 line (truncated?)");
        return WEIR_ECORRUPT;
    }
    size_t body = end - 71;
    char expect[65], actual[65];
    memcpy(expect, data + end - 64, 64);
    expect[64] = 0;
    weir_sha256_hex(data, body, actual);
    if (strcmp(expect, actual) != 0) {
        weir_fmt(errstr, errlen, "sha256 mismatch: content hashes to %.12s..., line says %.12s...",
                 actual, expect);
        return WEIR_ECORRUPT;
    }
    json_error_t jerr;
    json_t *root = json_loadb(data, body, 0, &jerr);
    if (!root) {
        weir_fmt(errstr, errlen, "not JSON: %s", jerr.text);
        return WEIR_ECORRUPT;
    }
    int rc = WEIR_ECORRUPT;
    uint64_t version = 0, u = 0;
    json_t *job = json_object_get(root, "job");
    json_t *tasks = json_object_get(root, "tasks");
    if (get_u64(root, "version", &version) != 0 || version != 1 || !json_is_string(job) ||
        strlen(json_string_value(job)) > 32 || get_u64(root, "checkpoint", &m->id) != 0 ||
        !json_is_array(tasks)) {
        weir_fmt(errstr, errlen, "missing or bad version/job/checkpoint/tasks");
        goto done;
    }
    weir_fmt(m->job, sizeof m->job, "%s", json_string_value(job));
    if (get_u64(root, "trigger_time", &u) == 0)
        m->trigger_ms = (int64_t)u;
    if (get_u64(root, "complete_time", &u) == 0)
        m->complete_ms = (int64_t)u;
    m->final = json_is_true(json_object_get(root, "final"));
    size_t n = json_array_size(tasks);
    if (n) {
        m->tasks = calloc(n, sizeof *m->tasks);
        if (!m->tasks) {
            rc = WEIR_ENOMEM;
            goto done;
        }
    }
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(tasks, i);
        weir_ckpt_task_t *dt = &m->tasks[i];
        m->n_tasks = (uint32_t)(i + 1);
        uint64_t v, s;
        if (!json_is_object(t) || get_u64(t, "vertex", &v) != 0 || get_u64(t, "subtask", &s) != 0 ||
            v > UINT32_MAX || s > UINT32_MAX) {
            weir_fmt(errstr, errlen, "task %zu: missing vertex/subtask", i);
            goto done;
        }
        dt->vertex = (uint32_t)v;
        dt->subtask = (uint32_t)s;
        get_u64(t, "state_size", &dt->state_size);
        json_t *op = json_object_get(t, "op_state");
        if (json_is_string(op)) {
            int r = weir_ckpt_b64_decode(json_string_value(op), &dt->op_state, &dt->op_state_len);
            if (r != 0) {
                weir_fmt(errstr, errlen, "task %zu: op_state is not base64", i);
                rc = r;
                goto done;
            }
        } else if (op && !json_is_null(op)) {
            weir_fmt(errstr, errlen, "task %zu: op_state is not a string", i);
            goto done;
        }
        json_t *keyed = json_object_get(t, "keyed");
        if (keyed && !json_is_null(keyed)) {
            dt->keyed = json_dumps(keyed, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
            if (!dt->keyed) {
                rc = WEIR_ENOMEM;
                goto done;
            }
        }
    }
    rc = 0;
done:
    json_decref(root);
    if (rc != 0)
        weir_ckpt_meta_clear(m);
    return rc;
}

int weir_ckpt_meta_write(const char *ckdir, const weir_ckpt_meta_t *m, char *errstr,
                         size_t errlen) {
    char dir[4200], path[4300];
    weir_fmt(dir, sizeof dir, "%s/chk-%" PRIu64, ckdir, m->id);
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
    return 0;
}

int weir_ckpt_meta_read(const char *ckdir, uint64_t id, weir_ckpt_meta_t *m, char *errstr,
                        size_t errlen) {
    char path[4300];
    weir_fmt(path, sizeof path, "%s/chk-%" PRIu64 "/_metadata", ckdir, id);
    uint8_t *data = NULL;
    size_t len = 0;
    memset(m, 0, sizeof *m);
    int rc = weir_read_file(path, &data, &len);
    if (rc == WEIR_ENOTFOUND) {
        weir_fmt(errstr, errlen, "%s does not exist", path);
        return WEIR_ENOTFOUND;
    }
    if (rc != 0) {
        weir_fmt(errstr, errlen, "cannot read %s: %s", path, strerror(errno));
        return WEIR_ECORRUPT;
    }
    rc = weir_ckpt_meta_decode((const char *)data, len, m, errstr, errlen);
    free(data);
    if (rc == 0 && m->id != id) {
        weir_fmt(errstr, errlen, "it names checkpoint %" PRIu64, m->id);
        weir_ckpt_meta_clear(m);
        return WEIR_ECORRUPT;
    }
    return rc == 0 ? 0 : WEIR_ECORRUPT;
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
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            uint64_t *p = realloc(*ids, cap * sizeof *p);
            if (!p) {
                closedir(d);
                free(*ids);
                *ids = NULL;
                *n = 0;
                return WEIR_ENOMEM;
            }
            *ids = p;
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

int weir_ckpt_find_latest(const char *ckdir, const char *job_id, bool required,
                          weir_ckpt_meta_t *out, char *errstr, size_t errlen) {
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
    /* corrupt ones met so far, warned once the fallback is known */
    uint64_t corrupt_id[8];
    char corrupt_why[8][256];
    size_t n_corrupt = 0;
    int rc = WEIR_ENOTFOUND;
    for (size_t i = n; i-- > 0;) {
        char why[256] = "";
        int r = weir_ckpt_meta_read(ckdir, ids[i], out, why, sizeof why);
        if (r == WEIR_ENOTFOUND)
            continue; /* half written: never used */
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
        if (required)
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
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        char **p = realloc(s->names, cap * sizeof *p);
        if (!p)
            return;
        s->names = p;
        s->cap = cap;
    }
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

/* Adds the shared file names of one handle, and the checkpoint id its private files live in. */
static void handle_refs(const char *handle, name_set_t *shared, uint64_t *chk_ids, size_t *n_chk,
                        size_t cap_chk) {
    json_error_t jerr;
    json_t *h = json_loads(handle, 0, &jerr);
    if (!h)
        return;
    json_t *arr = json_object_get(h, "shared");
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const char *name = json_string_value(json_object_get(json_array_get(arr, i), "name"));
        if (name)
            set_add(shared, name);
    }
    json_t *ck = json_object_get(h, "checkpoint");
    if (json_is_integer(ck) && *n_chk < cap_chk)
        chk_ids[(*n_chk)++] = (uint64_t)json_integer_value(ck);
    json_decref(h);
}

static int64_t mtime_ms(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0)
        return -1;
    return (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
}

int weir_ckpt_retain(const char *ckdir, uint32_t num_retained, uint64_t in_flight,
                     const char *const *protect, size_t n_protect, int64_t keep_newer_than_ms,
                     weir_ckpt_gc_stats_t *stats) {
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
    if (!valid || !keep || !ref_chk) {
        rc = WEIR_ENOMEM;
        goto done;
    }
    uint32_t kept = 0;
    for (size_t i = n; i-- > 0;) {
        weir_ckpt_meta_t m;
        char why[256];
        if (weir_ckpt_meta_read(ckdir, ids[i], &m, why, sizeof why) != 0)
            continue;
        valid[i] = true;
        if (kept < num_retained) {
            keep[i] = true;
            kept++;
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
        if (keep[i] || ids[i] == in_flight)
            continue;
        bool referenced = false;
        for (size_t k = 0; k < n_ref_chk && !referenced; k++)
            referenced = ref_chk[k] == ids[i];
        if (referenced)
            continue;
        char path[4200];
        weir_fmt(path, sizeof path, "%s/chk-%" PRIu64, ckdir, ids[i]);
        if (!valid[i] && mtime_ms(path) >= keep_newer_than_ms)
            continue; /* may be an upload in progress */
        if (weir_rmtree(path) != 0)
            rc = WEIR_EIO;
        else
            stats->dirs_removed++;
    }
    if (in_flight == 0) {
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

/* ---------------------------------------------------------------- coordinator (pure) */

const char *weir_ckpt_status_name(weir_ckpt_status_t s) {
    switch (s) {
    case WEIR_CKPT_IN_PROGRESS:
        return "IN_PROGRESS";
    case WEIR_CKPT_COMPLETED:
        return "COMPLETED";
    case WEIR_CKPT_FAILED:
        return "FAILED";
    }
    return "?";
}

static void ack_clear(weir_ckpt_ack_t *a) {
    free(a->op_state);
    free(a->keyed);
    memset(a, 0, sizeof *a);
}

int weir_ckpt_coord_init(weir_ckpt_coord_t *c, uint32_t n_vertices, const uint32_t *parallelism) {
    memset(c, 0, sizeof *c);
    c->n_vertices = n_vertices;
    c->offset = calloc(n_vertices + 1, sizeof *c->offset);
    if (!c->offset)
        return WEIR_ENOMEM;
    uint32_t n = 0;
    for (uint32_t v = 0; v < n_vertices; v++) {
        c->offset[v] = n;
        n += parallelism[v];
    }
    c->offset[n_vertices] = n;
    c->n_subtasks = n;
    c->acks = calloc(n ? n : 1, sizeof *c->acks);
    c->finals = calloc(n ? n : 1, sizeof *c->finals);
    if (!c->acks || !c->finals) {
        weir_ckpt_coord_free(c);
        return WEIR_ENOMEM;
    }
    return 0;
}

void weir_ckpt_coord_free(weir_ckpt_coord_t *c) {
    if (!c)
        return;
    for (uint32_t i = 0; c->acks && i < c->n_subtasks; i++)
        ack_clear(&c->acks[i]);
    for (uint32_t i = 0; c->finals && i < c->n_subtasks; i++)
        ack_clear(&c->finals[i]);
    free(c->acks);
    free(c->finals);
    free(c->offset);
    memset(c, 0, sizeof *c);
}

uint32_t weir_ckpt_coord_index(const weir_ckpt_coord_t *c, uint32_t v, uint32_t s) {
    return c->offset[v] + s;
}

static weir_ckpt_hist_t *hist_find(weir_ckpt_coord_t *c, uint64_t id) {
    for (uint32_t i = 0; i < c->hist_len; i++) {
        weir_ckpt_hist_t *h = &c->hist[(c->hist_start + i) % WEIR_CKPT_HISTORY];
        if (h->id == id)
            return h;
    }
    return NULL;
}

static weir_ckpt_hist_t *hist_push(weir_ckpt_coord_t *c, uint64_t id, int64_t wall_ms) {
    weir_ckpt_hist_t *h;
    if (c->hist_len < WEIR_CKPT_HISTORY) {
        h = &c->hist[(c->hist_start + c->hist_len) % WEIR_CKPT_HISTORY];
        c->hist_len++;
    } else {
        h = &c->hist[c->hist_start];
        c->hist_start = (c->hist_start + 1) % WEIR_CKPT_HISTORY;
    }
    memset(h, 0, sizeof *h);
    h->id = id;
    h->status = WEIR_CKPT_IN_PROGRESS;
    h->trigger_ms = wall_ms;
    h->duration_ms = -1;
    return h;
}

const weir_ckpt_hist_t *weir_ckpt_coord_hist(const weir_ckpt_coord_t *c, uint32_t i) {
    return &c->hist[(c->hist_start + i) % WEIR_CKPT_HISTORY];
}

static void pending_drop(weir_ckpt_coord_t *c) {
    for (uint32_t i = 0; i < c->n_subtasks; i++)
        ack_clear(&c->acks[i]);
    c->pending_id = 0;
}

static void record_failure(weir_ckpt_coord_t *c, const char *why, int64_t now_ns) {
    weir_ckpt_hist_t *h = hist_find(c, c->pending_id);
    if (h) {
        h->status = WEIR_CKPT_FAILED;
        h->duration_ms = (now_ns - c->pending_trigger_ns) / 1000000;
        weir_fmt(h->failure, sizeof h->failure, "%s", why);
    }
    c->n_failed++;
    c->last_end_ns = now_ns;
    pending_drop(c);
}

void weir_ckpt_coord_new_attempt(weir_ckpt_coord_t *c, int64_t now_ns, const char *why) {
    if (c->pending_id)
        record_failure(c, why, now_ns);
    for (uint32_t i = 0; i < c->n_subtasks; i++)
        ack_clear(&c->finals[i]);
    c->n_finals = 0;
    c->final_done = false;
    c->running_since_ns = 0;
    c->last_trigger_ns = 0;
}

bool weir_ckpt_coord_due(weir_ckpt_coord_t *c, const weir_ckpt_config_t *cfg, bool all_running,
                         int64_t now_ns) {
    if (!cfg->enabled || c->pending_id || c->n_finals || c->final_done)
        return false;
    if (!all_running) {
        c->running_since_ns = 0;
        return false;
    }
    if (!c->running_since_ns)
        c->running_since_ns = now_ns;
    int64_t base = c->last_trigger_ns ? c->last_trigger_ns : c->running_since_ns;
    if (now_ns - base < cfg->interval_ms * 1000000)
        return false;
    if (c->last_end_ns && now_ns - c->last_end_ns < cfg->min_pause_ms * 1000000)
        return false;
    return true;
}

uint64_t weir_ckpt_coord_begin(weir_ckpt_coord_t *c, int64_t now_ns, int64_t wall_ms) {
    if (c->next_id == 0)
        c->next_id = 1;
    uint64_t id = c->next_id++;
    pending_drop(c);
    c->pending_id = id;
    c->pending_trigger_ms = wall_ms;
    c->pending_trigger_ns = now_ns;
    c->last_trigger_ns = now_ns;
    c->n_triggered++;
    hist_push(c, id, wall_ms);
    return id;
}

uint64_t weir_ckpt_coord_begin_final(weir_ckpt_coord_t *c, int64_t now_ns, int64_t wall_ms) {
    if (c->next_id == 0)
        c->next_id = 1;
    uint64_t id = c->next_id++;
    c->pending_trigger_ns = now_ns;
    c->pending_trigger_ms = wall_ms;
    c->n_triggered++;
    hist_push(c, id, wall_ms);
    return id;
}

bool weir_ckpt_coord_ack(weir_ckpt_coord_t *c, uint32_t idx, uint64_t id, bool final,
                         weir_ckpt_ack_t *ack) {
    weir_ckpt_ack_t *slot = NULL;
    if (idx < c->n_subtasks) {
        if (final && !c->finals[idx].acked && !c->final_done)
            slot = &c->finals[idx];
        else if (!final && c->pending_id && id == c->pending_id && !c->acks[idx].acked)
            slot = &c->acks[idx];
    }
    if (!slot) {
        ack_clear(ack);
        return false;
    }
    *slot = *ack;
    slot->acked = true;
    memset(ack, 0, sizeof *ack);
    if (final)
        c->n_finals++;
    return true;
}

/* The snapshot that counts for subtask i in the in-flight checkpoint, NULL when missing. */
static const weir_ckpt_ack_t *effective(const weir_ckpt_coord_t *c, uint32_t i, bool final) {
    if (!final && c->acks[i].acked)
        return &c->acks[i];
    if (c->finals[i].acked)
        return &c->finals[i];
    return NULL;
}

bool weir_ckpt_coord_ready(const weir_ckpt_coord_t *c) {
    if (!c->pending_id)
        return false;
    for (uint32_t i = 0; i < c->n_subtasks; i++)
        if (!effective(c, i, false))
            return false;
    return true;
}

bool weir_ckpt_coord_final_ready(const weir_ckpt_coord_t *c) {
    return !c->pending_id && !c->final_done && c->n_subtasks > 0 && c->n_finals == c->n_subtasks;
}

int weir_ckpt_coord_build_meta(const weir_ckpt_coord_t *c, const char *job_id, uint64_t id,
                               bool final, int64_t trigger_ms, int64_t complete_ms,
                               weir_ckpt_meta_t *m) {
    memset(m, 0, sizeof *m);
    weir_fmt(m->job, sizeof m->job, "%s", job_id);
    m->id = id;
    m->final = final;
    m->trigger_ms = trigger_ms;
    m->complete_ms = complete_ms;
    m->tasks = calloc(c->n_subtasks ? c->n_subtasks : 1, sizeof *m->tasks);
    if (!m->tasks)
        return WEIR_ENOMEM;
    for (uint32_t v = 0; v < c->n_vertices; v++)
        for (uint32_t i = c->offset[v]; i < c->offset[v + 1]; i++) {
            const weir_ckpt_ack_t *a = effective(c, i, final);
            weir_ckpt_task_t *t = &m->tasks[m->n_tasks++];
            t->vertex = v;
            t->subtask = i - c->offset[v];
            if (!a)
                continue;
            t->state_size = a->state_size;
            if (a->op_state) {
                t->op_state = malloc(a->op_state_len ? a->op_state_len : 1);
                if (!t->op_state)
                    goto oom;
                memcpy(t->op_state, a->op_state, a->op_state_len);
                t->op_state_len = a->op_state_len;
            }
            if (a->keyed && !(t->keyed = strdup(a->keyed)))
                goto oom;
        }
    return 0;
oom:
    weir_ckpt_meta_clear(m);
    return WEIR_ENOMEM;
}

void weir_ckpt_coord_complete(weir_ckpt_coord_t *c, uint64_t id, bool final, const char *path,
                              int64_t now_ns, int64_t wall_ms) {
    (void)wall_ms;
    weir_ckpt_hist_t *h = hist_find(c, id);
    weir_ckpt_hist_t tmp = {.id = id, .trigger_ms = c->pending_trigger_ms};
    if (!h)
        h = &tmp;
    h->status = WEIR_CKPT_COMPLETED;
    h->duration_ms = (now_ns - c->pending_trigger_ns) / 1000000;
    h->state_size = h->uploaded_size = 0;
    h->alignment_ms = h->sync_ms = h->async_ms = 0;
    for (uint32_t i = 0; i < c->n_subtasks; i++) {
        const weir_ckpt_ack_t *a = effective(c, i, final);
        if (!a)
            continue;
        h->state_size += a->state_size;
        h->uploaded_size += a->uploaded_size;
        int64_t al = (int64_t)(a->alignment_ns / 1000000), sy = (int64_t)(a->sync_ns / 1000000),
                as = (int64_t)(a->async_ns / 1000000);
        if (al > h->alignment_ms)
            h->alignment_ms = al;
        if (sy > h->sync_ms)
            h->sync_ms = sy;
        if (as > h->async_ms)
            h->async_ms = as;
    }
    c->latest = *h;
    c->have_completed = true;
    c->latest_id = id;
    weir_fmt(c->latest_path, sizeof c->latest_path, "%s", path);
    c->n_completed++;
    c->consecutive_failures = 0;
    c->last_end_ns = now_ns;
    if (final)
        c->final_done = true;
    else
        pending_drop(c);
}

bool weir_ckpt_coord_fail(weir_ckpt_coord_t *c, const char *why, int64_t tolerable,
                          int64_t now_ns) {
    if (!c->pending_id)
        return false;
    record_failure(c, why, now_ns);
    c->consecutive_failures++;
    return (int64_t)c->consecutive_failures > tolerable;
}

bool weir_ckpt_coord_expired(const weir_ckpt_coord_t *c, const weir_ckpt_config_t *cfg,
                             int64_t now_ns) {
    return c->pending_id && now_ns - c->pending_trigger_ns > cfg->timeout_ms * 1000000;
}

void weir_ckpt_coord_restored(weir_ckpt_coord_t *c, uint64_t id, const char *path,
                              int64_t wall_ms) {
    c->have_restored = true;
    c->restored_id = id;
    weir_fmt(c->restored_path, sizeof c->restored_path, "%s", path);
    c->restored_ms = wall_ms;
    c->n_restored++;
}

/* ---------------------------------------------------------------- glue (job manager) */

static bool job_all_running(const weir_jm_job_t *job) {
    for (uint32_t v = 0; v < job->n_vertices; v++)
        for (uint32_t s = 0; s < job->parallelism[v]; s++)
            if (job->subtasks[v][s].state != WEIR_TASK_RUNNING)
                return false;
    return true;
}

static void ensure_next_id(weir_jm_job_t *job) {
    uint64_t above = weir_ckpt_max_dir_id(job->ckdir) + 1;
    if (job->ckpt.latest_id + 1 > above)
        above = job->ckpt.latest_id + 1;
    if (job->ckpt.next_id < above)
        job->ckpt.next_id = above;
}

static void chk_path(const weir_jm_job_t *job, uint64_t id, char *out, size_t cap) {
    weir_fmt(out, cap, "%s/chk-%" PRIu64, job->ckdir, id);
}

void weir_jm_ckpt_abort_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, const char *why) {
    (void)jm;
    uint64_t id = job->ckpt.pending_id;
    if (id && job->ckdir) {
        char path[4200];
        chk_path(job, id, path, sizeof path);
        weir_rmtree(path);
        WEIR_INFO(COMP, "checkpoint %" PRIu64 " of job %s aborted: %s", id, job->id, why);
    }
    weir_ckpt_coord_new_attempt(&job->ckpt, weir_now_ns(), why);
}

/* Sends NOTIFY_CHECKPOINT to every task manager hosting a subtask of the current attempt. */
static void notify_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, uint64_t id, bool final) {
    uint64_t sent[256];
    size_t n_sent = 0;
    for (uint32_t v = 0; v < job->n_vertices; v++)
        for (uint32_t s = 0; s < job->parallelism[v]; s++) {
            uint64_t seq = job->subtasks[v][s].tm_seq;
            bool dup = false;
            for (size_t k = 0; k < n_sent && !dup; k++)
                dup = sent[k] == seq;
            weir_jm_tm_t *tm = dup ? NULL : weir_jm_find_tm_seq_locked(jm, seq);
            if (!tm)
                continue;
            if (n_sent < sizeof sent / sizeof sent[0])
                sent[n_sent++] = seq;
            weir_msg_t m = {.type = WEIR_MSG_NOTIFY_CHECKPOINT,
                            .attempt = job->attempt,
                            .checkpoint_id = id,
                            .final = final};
            memcpy(m.job_id, job->id, sizeof m.job_id);
            weir_jm_send_locked(jm, tm, &m);
        }
}

/* Writes the _metadata of the in-flight checkpoint (or the final one), then the HA pointer, then
 * retention, then NOTIFY. @returns 0, or a negative error after which the checkpoint failed. */
static int complete_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, bool final) {
    weir_ckpt_coord_t *c = &job->ckpt;
    int64_t now = weir_now_ns(), wall = weir_wall_ms();
    uint64_t id;
    int64_t trigger_ms;
    if (final) {
        ensure_next_id(job);
        id = weir_ckpt_coord_begin_final(c, now, wall);
        trigger_ms = wall;
    } else {
        id = c->pending_id;
        trigger_ms = c->pending_trigger_ms;
    }
    weir_ckpt_meta_t meta;
    char err[512] = "";
    int rc = weir_ckpt_coord_build_meta(c, job->id, id, final, trigger_ms, wall, &meta);
    if (rc == 0)
        rc = weir_ckpt_meta_write(job->ckdir, &meta, err, sizeof err);
    else
        weir_fmt(err, sizeof err, "out of memory");
    weir_ckpt_meta_clear(&meta);
    if (rc != 0) {
        WEIR_WARN(COMP, "checkpoint %" PRIu64 " of job %s failed: %s", id, job->id, err);
        return rc;
    }
    char path[4200];
    chk_path(job, id, path, sizeof path);
    weir_ckpt_coord_complete(c, id, final, path, weir_now_ns(), weir_wall_ms());
    WEIR_INFO(COMP,
              "checkpoint %" PRIu64 "%s of job %s completed in %" PRId64 " ms (%" PRIu64
              " bytes of state, %" PRIu64 " uploaded)",
              id, final ? " (final)" : "", job->id, c->latest.duration_ms, c->latest.state_size,
              c->latest.uploaded_size);
    if (jm->ha_dir) {
        if (weir_ha_set_checkpoint(jm->ha_dir, job->id, path, err, sizeof err) != 0)
            WEIR_ERROR(COMP, "%s", err);
    }
    weir_killpoint_hit(&jm->killpoint, "jm-after-metadata");
    /* retention + GC; final snapshots not yet part of a checkpoint are protected */
    const char **protect = calloc(c->n_subtasks ? c->n_subtasks : 1, sizeof *protect);
    size_t n_protect = 0;
    for (uint32_t i = 0; protect && i < c->n_subtasks; i++)
        if (c->finals[i].acked && c->finals[i].keyed)
            protect[n_protect++] = c->finals[i].keyed;
    weir_ckpt_gc_stats_t st;
    if (weir_ckpt_retain(job->ckdir, jm->ckcfg.num_retained, c->pending_id, protect, n_protect,
                         trigger_ms, &st) != 0)
        WEIR_WARN(COMP, "retention of %s could not delete everything: %s", job->ckdir,
                  strerror(errno));
    else if (st.dirs_removed || st.shared_removed)
        WEIR_DEBUG(COMP, "retention of %s: %u checkpoint dirs and %u shared files removed",
                   job->ckdir, st.dirs_removed, st.shared_removed);
    free(protect);
    notify_locked(jm, job, id, final);
    return 0;
}

static void failed_checkpoint_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, const char *why) {
    uint64_t id = job->ckpt.pending_id;
    char path[4200];
    chk_path(job, id, path, sizeof path);
    weir_rmtree(path);
    bool over = weir_ckpt_coord_fail(&job->ckpt, why, jm->ckcfg.tolerable, weir_now_ns());
    if (over) {
        char msg[600];
        weir_fmt(msg, sizeof msg,
                 "checkpoint %" PRIu64 " %s (%u consecutive failed checkpoints, "
                 "execution.checkpointing.tolerable-failed-checkpoints = %" PRId64 ")",
                 id, why, job->ckpt.consecutive_failures, jm->ckcfg.tolerable);
        weir_jm_failover_locked(jm, job, msg);
    }
}

/* After an ack (or a tick): completes what is ready. */
static void progress_locked(weir_jobmanager_t *jm, weir_jm_job_t *job) {
    if (job->state != WEIR_JOB_RUNNING)
        return;
    if (weir_ckpt_coord_ready(&job->ckpt)) {
        if (complete_locked(jm, job, false) != 0)
            failed_checkpoint_locked(jm, job, "failed: cannot write its metadata");
    }
    if (job->state == WEIR_JOB_RUNNING && weir_ckpt_coord_final_ready(&job->ckpt)) {
        if (complete_locked(jm, job, true) != 0) {
            job->ckpt.final_done = false;
            weir_jm_failover_locked(jm, job, "the final checkpoint could not be written");
        }
    }
}

void weir_jm_ckpt_tick_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, int64_t now_ns) {
    if (!jm->ckcfg.enabled || !job->ckdir || job->state != WEIR_JOB_RUNNING)
        return;
    weir_ckpt_coord_t *c = &job->ckpt;
    if (weir_ckpt_coord_expired(c, &jm->ckcfg, now_ns)) {
        char why[128];
        weir_fmt(why, sizeof why, "expired: not complete within %" PRId64 " ms",
                 jm->ckcfg.timeout_ms);
        WEIR_INFO(COMP, "checkpoint %" PRIu64 " of job %s %s", c->pending_id, job->id, why);
        failed_checkpoint_locked(jm, job, why);
        return;
    }
    progress_locked(jm, job);
    if (job->state != WEIR_JOB_RUNNING)
        return;
    if (!weir_ckpt_coord_due(c, &jm->ckcfg, job_all_running(job), now_ns))
        return;
    ensure_next_id(job);
    int64_t wall = weir_wall_ms();
    uint64_t id = weir_ckpt_coord_begin(c, now_ns, wall);
    uint32_t n = 0;
    for (uint32_t v = 0; v < job->n_vertices; v++) {
        const weir_vertex_t *vx = &job->dag->vertices[v];
        if (!weir_op_is_source(job->dag->nodes[vx->nodes[0]].kind))
            continue;
        for (uint32_t s = 0; s < job->parallelism[v]; s++) {
            weir_jm_tm_t *tm = weir_jm_find_tm_seq_locked(jm, job->subtasks[v][s].tm_seq);
            if (!tm)
                continue;
            weir_msg_t m = {.type = WEIR_MSG_TRIGGER_CHECKPOINT,
                            .attempt = job->attempt,
                            .checkpoint_id = id,
                            .checkpoint_timestamp = wall,
                            .vertex = v,
                            .subtask = s};
            memcpy(m.job_id, job->id, sizeof m.job_id);
            weir_jm_send_locked(jm, tm, &m);
            n++;
        }
    }
    WEIR_INFO(COMP, "checkpoint %" PRIu64 " of job %s triggered (%u source subtasks)", id, job->id,
              n);
}

/* The job and subtask a checkpoint message names, when it is current and from the right task
 * manager instance; NULL otherwise (stale: ignored). */
static weir_jm_job_t *msg_job(weir_jobmanager_t *jm, const weir_jm_tm_t *tm, const weir_msg_t *m) {
    weir_jm_job_t *job = weir_jm_find_job_locked(jm, m->job_id);
    if (!job || !job->ckdir || job->state != WEIR_JOB_RUNNING || m->attempt != job->attempt ||
        m->vertex >= job->n_vertices || m->subtask >= job->parallelism[m->vertex])
        return NULL;
    if (job->subtasks[m->vertex][m->subtask].tm_seq != tm->seq)
        return NULL;
    return job;
}

void weir_jm_ckpt_on_ack_locked(weir_jobmanager_t *jm, weir_jm_tm_t *tm, weir_msg_t *m) {
    weir_jm_job_t *job = msg_job(jm, tm, m);
    if (!job)
        return;
    weir_ckpt_ack_t ack = {.op_state = m->op_state,
                           .op_state_len = m->op_state_len,
                           .keyed = m->keyed_handle,
                           .state_size = m->state_size,
                           .uploaded_size = m->uploaded_size,
                           .alignment_ns = m->alignment_ns,
                           .sync_ns = m->sync_ns,
                           .async_ns = m->async_ns};
    m->op_state = NULL;
    m->op_state_len = 0;
    m->keyed_handle = NULL;
    uint32_t idx = weir_ckpt_coord_index(&job->ckpt, m->vertex, m->subtask);
    bool ok = weir_ckpt_coord_ack(&job->ckpt, idx, m->checkpoint_id, m->final, &ack);
    WEIR_DEBUG(COMP, "job %s: %s ack of checkpoint %" PRIu64 " from vertex %u subtask %u%s",
               job->id, m->final ? "final" : "", m->checkpoint_id, m->vertex, m->subtask,
               ok ? "" : " ignored");
    if (ok)
        progress_locked(jm, job);
}

void weir_jm_ckpt_on_decline_locked(weir_jobmanager_t *jm, weir_jm_tm_t *tm, const weir_msg_t *m) {
    weir_jm_job_t *job = msg_job(jm, tm, m);
    if (!job || !job->ckpt.pending_id || m->checkpoint_id != job->ckpt.pending_id)
        return;
    char why[600];
    weir_fmt(why, sizeof why, "declined: %s (%u/%u): %s", job->dag->vertices[m->vertex].name,
             m->subtask + 1, job->parallelism[m->vertex], m->error ? m->error : "no reason");
    WEIR_INFO(COMP, "checkpoint %" PRIu64 " of job %s %s", m->checkpoint_id, job->id, why);
    failed_checkpoint_locked(jm, job, why);
}

int weir_jm_ckpt_restore_locked(weir_jobmanager_t *jm, weir_jm_job_t *job, weir_ckpt_meta_t *meta,
                                char *errstr, size_t errlen) {
    memset(meta, 0, sizeof *meta);
    if (!jm->ckcfg.enabled || !job->ckdir)
        return 0;
    bool required = job->ckpt.have_completed || job->ha_pointer;
    if (job->ha_pointer) {
        struct stat st;
        if (stat(job->ha_pointer, &st) != 0) {
            weir_fmt(errstr, errlen, "checkpoint directory %s is missing: cannot restore job %s",
                     job->ha_pointer, job->id);
            return WEIR_ENOTFOUND;
        }
    }
    int rc = weir_ckpt_find_latest(job->ckdir, job->id, required, meta, errstr, errlen);
    if (rc == WEIR_ENOTFOUND && !required)
        return 0;
    if (rc != 0)
        return rc;
    char path[4200];
    chk_path(job, meta->id, path, sizeof path);
    weir_ckpt_coord_restored(&job->ckpt, meta->id, path, weir_wall_ms());
    if (job->ckpt.next_id <= meta->id)
        job->ckpt.next_id = meta->id + 1;
    WEIR_INFO(COMP, "checkpoint %" PRIu64 "%s: restoring job %s (attempt %u) from %s", meta->id,
              meta->final ? " (final)" : "", job->id, job->attempt, path);
    return 0;
}
