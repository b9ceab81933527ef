/* Owns the configuration key table (every key weir knows, with its type, default and doc) and
 * the loading of values: defaults < YAML file < WEIR_* environment < -D flags.
 * Invariants: a weir_config_t holds exactly one slot per declared key, in table order; a slot's
 * text is NULL (unset) or a value that was validated against the key's type, and its parsed
 * numeric form is kept beside it. Unknown keys and bad values are rejected with one line that
 * names the key, the value and where it came from.
 * Threading: the table is immutable; a weir_config_t is owned by one thread. */
#include "config.h"

#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "err.h"
#include "log.h"
#include "util.h"

static const weir_config_key_t KEYS[] = {
    {"jobmanager.rpc.address", WEIR_CFG_STRING, "localhost",
     "Host task managers connect to for the job manager's RPC."},
    {"jobmanager.rpc.port", WEIR_CFG_INT, "6123", "Job manager RPC port (ZeroMQ ROUTER)."},
    {"jobmanager.bind-host", WEIR_CFG_STRING, "127.0.0.1",
     "Address the job manager binds its RPC socket to (beyond loopback needs "
     "security.curve.key-file or security.insecure)."},
    {"jobmanager.rpc.max-message-size", WEIR_CFG_BYTES, "16mb",
     "Largest control message the job manager accepts; a peer that sends a larger one is "
     "disconnected."},
    {"rest.address", WEIR_CFG_STRING, "localhost",
     "Host the CLI talks to for the REST API (overridden by -m)."},
    {"rest.port", WEIR_CFG_INT, "8081", "REST API port of the job manager."},
    {"rest.bind-address", WEIR_CFG_STRING, "127.0.0.1",
     "Address the job manager's REST server binds to (beyond loopback needs rest.auth.token)."},
    {"rest.auth.token", WEIR_CFG_STRING, NULL,
     "Bearer token every REST request but GET /healthz must carry; the CLI sends it (unset = no "
     "authentication)."},
    {"rest.auth.token-file", WEIR_CFG_STRING, NULL,
     "File holding the REST token, read at start (one trailing newline ignored); instead of "
     "rest.auth.token."},
    {"rest.ssl.enabled", WEIR_CFG_BOOL, "false",
     "Serve REST over HTTPS (job manager) and talk HTTPS to it (CLI)."},
    {"rest.ssl.certificate", WEIR_CFG_STRING, NULL,
     "PEM certificate (or chain) of the REST server (required with rest.ssl.enabled)."},
    {"rest.ssl.key", WEIR_CFG_STRING, NULL,
     "PEM private key, unencrypted, of the REST server (required with rest.ssl.enabled)."},
    {"rest.ssl.trust-cert", WEIR_CFG_STRING, NULL,
     "PEM file of the CA or certificate the CLI trusts for the REST server (unset = the "
     "system's CAs)."},
    {"rest.max-request-size", WEIR_CFG_BYTES, "1mb",
     "Largest JSON request body the REST server accepts (413 beyond); plugin uploads to /blobs "
     "have their own limit of 256 MiB."},
    {"rest.max-connections", WEIR_CFG_INT, "64",
     "Concurrent REST connections; further connections wait until one closes."},
    {"rest.idleness-timeout", WEIR_CFG_DURATION, "30s",
     "A REST connection idle this long is closed (whole seconds, at least 1s)."},
    {"security.insecure", WEIR_CFG_BOOL, "false",
     "Accept binding beyond loopback without authentication (REST without a token, RPC and data "
     "plane without security.curve.key-file); logs a warning."},
    {"security.curve.key-file", WEIR_CFG_STRING, NULL,
     "File holding the cluster's CURVE key pair (`weir keygen FILE`, mode 0600): RPC and data "
     "plane accept only holders of it (unset = no authentication, loopback only)."},
    {"blob.storage.directory", WEIR_CFG_STRING, "/tmp/weir-blobs",
     "Job manager blob store directory (plugins by sha256)."},
    {"heartbeat.interval", WEIR_CFG_DURATION, "1s", "Task manager heartbeat period."},
    {"heartbeat.timeout", WEIR_CFG_DURATION, "10s",
     "A task manager silent for this long is considered lost."},
    {"slot.request.timeout", WEIR_CFG_DURATION, "5min",
     "How long a job waits for free slots before it fails."},
    {"parallelism.default", WEIR_CFG_INT, "1", "Default parallelism of `weir run` without -p."},
    {"pipeline.max-parallelism", WEIR_CFG_INT, "128",
     "Number of key groups of a job (upper bound of its parallelism)."},
    {"taskmanager.numberOfTaskSlots", WEIR_CFG_INT, "1", "Slots offered by a task manager."},
    {"taskmanager.host", WEIR_CFG_STRING, "127.0.0.1",
     "Address a task manager advertises for its data port."},
    {"taskmanager.bind-host", WEIR_CFG_STRING, "127.0.0.1",
     "Address the task manager's data plane binds to (beyond loopback needs "
     "security.curve.key-file or security.insecure)."},
    {"taskmanager.network.max-frame-size", WEIR_CFG_BYTES, "64mb",
     "Largest data-plane buffer accepted from a peer (at least the segment size; a buffer holds "
     "at least one whole record); a peer that sends a larger one is disconnected."},
    {"taskmanager.data.port", WEIR_CFG_INT, "0", "Data plane port (0 = any free port)."},
    {"taskmanager.resource-id", WEIR_CFG_STRING, NULL,
     "Task manager id (unset = a random 32-hex-digit id)."},
    {"taskmanager.working-dir", WEIR_CFG_STRING, NULL,
     "Directory for RocksDB instances and the plugin cache (unset = /tmp/weir-tm-<id>)."},
    {"taskmanager.memory.segment-size", WEIR_CFG_BYTES, "32kb", "Network buffer size."},
    {"taskmanager.network.buffers-per-channel", WEIR_CFG_INT, "4",
     "Credits (buffers) per logical input channel."},
    {"execution.buffer-timeout", WEIR_CFG_DURATION, "5ms",
     "Flush a partly filled output buffer after this long."},
    {"pipeline.auto-watermark-interval", WEIR_CFG_DURATION, "200ms",
     "How often a source with a watermark strategy recomputes and emits its watermark."},
    {"taskmanager.memory.process.size", WEIR_CFG_BYTES, "1728mb",
     "Memory budget of a task manager, split into network buffers, managed memory (RocksDB), "
     "the state caches and headroom (0 = no budget: the per-subtask state.backend.* sizes)."},
    {"taskmanager.memory.network.fraction", WEIR_CFG_STRING, "0.1",
     "Share of taskmanager.memory.process.size for network buffers, within network.min..max."},
    {"taskmanager.memory.network.min", WEIR_CFG_BYTES, "64mb", "Least memory for network buffers."},
    {"taskmanager.memory.network.max", WEIR_CFG_BYTES, "1gb", "Most memory for network buffers."},
    {"taskmanager.memory.managed.fraction", WEIR_CFG_STRING, "0.4",
     "Share of taskmanager.memory.process.size for RocksDB: one block cache and write buffer "
     "manager for all RocksDB instances of the task manager."},
    {"taskmanager.memory.state-cache.fraction", WEIR_CFG_STRING, "0.1",
     "Share of taskmanager.memory.process.size for the write-back state caches of all stateful "
     "subtasks together."},
    {"state.backend.rocksdb.memory.write-buffer-ratio", WEIR_CFG_STRING, "0.5",
     "Share of the managed memory for memtables (charged to the block cache)."},
    {"state.backend.rocksdb.memory.high-prio-pool-ratio", WEIR_CFG_STRING, "0.1",
     "Share of the block cache kept for index and filter blocks."},
    {"state.backend.cache-size", WEIR_CFG_BYTES, "32mb",
     "Write-back state cache per stateful subtask (only with taskmanager.memory.process.size 0)."},
    {"state.backend.rocksdb.writebuffer.size", WEIR_CFG_BYTES, "16mb",
     "RocksDB memtable size per stateful subtask (only with taskmanager.memory.process.size 0)."},
    {"state.backend.rocksdb.block.cache-size", WEIR_CFG_BYTES, "16mb",
     "RocksDB block cache per stateful subtask (only with taskmanager.memory.process.size 0)."},
    {"log.level", WEIR_CFG_STRING, "info",
     "Log threshold of a task manager: debug, info, warn or error (WEIR_LOG_LEVEL wins)."},
    {"taskmanager.log.tail-size", WEIR_CFG_BYTES, "1mb",
     "Bytes of its newest log lines a task manager keeps in memory for GET "
     "/taskmanagers/{id}/log (at most 64mb; 0 = none kept)."},
    {"metrics.reporter.prom.enabled", WEIR_CFG_BOOL, "true",
     "Serve the task manager's Prometheus endpoint /metrics."},
    {"metrics.reporter.prom.port", WEIR_CFG_STRING, "9249",
     "Port of the task manager's /metrics: a port, a range like 9250-9260 (the first free one) "
     "or 0 (any free port); the bound port is logged and sent in heartbeats."},
    {"metrics.reporter.prom.host", WEIR_CFG_STRING, NULL,
     "Address the task manager's /metrics binds to (unset = taskmanager.bind-host); beyond "
     "loopback needs rest.auth.token or rest.auth.token-file (scrapers send it as a bearer "
     "token)."},
    {"execution.checkpointing.interval", WEIR_CFG_DURATION, NULL,
     "Checkpoint period (unset = checkpointing off)."},
    {"execution.checkpointing.timeout", WEIR_CFG_DURATION, "10min",
     "A checkpoint not complete after this long expires (counts as a failed checkpoint)."},
    {"execution.checkpointing.min-pause", WEIR_CFG_DURATION, "0",
     "Minimum time between the end of one checkpoint and the trigger of the next."},
    {"execution.checkpointing.max-concurrent-checkpoints", WEIR_CFG_INT, "1",
     "Checkpoints in flight at once (only 1 is supported)."},
    {"execution.checkpointing.tolerable-failed-checkpoints", WEIR_CFG_INT, "0",
     "Consecutive failed (expired or declined) checkpoints tolerated before the job fails over."},
    {"execution.checkpointing.mode", WEIR_CFG_STRING, "EXACTLY_ONCE",
     "EXACTLY_ONCE (aligned barriers) or AT_LEAST_ONCE (no alignment)."},
    {"state.checkpoints.dir", WEIR_CFG_STRING, NULL,
     "Where checkpoints go: an absolute path shared by the job manager and all task managers, "
     "or s3://bucket/prefix (s3.*); required when checkpointing is on."},
    {"state.checkpoints.num-retained", WEIR_CFG_INT, "1", "Completed checkpoints kept."},
    {"state.savepoints.dir", WEIR_CFG_STRING, NULL,
     "Default location of savepoints (weir savepoint / weir stop without a directory): an "
     "absolute path shared by the job manager and all task managers, or s3://bucket/prefix."},
    {"execution.checkpointing.externalized-checkpoint-retention", WEIR_CFG_STRING,
     "RETAIN_ON_CANCELLATION",
     "What happens to a job's checkpoints when it ends: RETAIN_ON_CANCELLATION (kept, so `weir run "
     "-s <dir>/<job>/chk-<n>` can resume a canceled job), DELETE_ON_CANCELLATION (deleted when it "
     "is canceled, kept when it failed or finished) or NO_EXTERNALIZED_CHECKPOINTS (deleted when "
     "it "
     "is canceled or finished, kept when it failed)."},
    {"state.backend.incremental", WEIR_CFG_BOOL, "true",
     "Upload only new RocksDB SST files per checkpoint (shared between checkpoints)."},
    {"restart-strategy.type", WEIR_CFG_STRING, NULL,
     "none, fixed-delay or exponential-delay (unset: fixed-delay without limit when "
     "checkpointing is on, none otherwise)."},
    {"restart-strategy.fixed-delay.attempts", WEIR_CFG_INT, "1",
     "Restarts allowed by the fixed-delay strategy."},
    {"restart-strategy.fixed-delay.delay", WEIR_CFG_DURATION, "1s",
     "Delay between restarts of the fixed-delay strategy."},
    {"restart-strategy.exponential-delay.initial-backoff", WEIR_CFG_DURATION, "1s",
     "First delay of the exponential-delay strategy."},
    {"restart-strategy.exponential-delay.max-backoff", WEIR_CFG_DURATION, "1min",
     "Largest delay of the exponential-delay strategy."},
    {"restart-strategy.exponential-delay.backoff-multiplier", WEIR_CFG_STRING, "2.0",
     "Factor between consecutive delays of the exponential-delay strategy (> 1.0)."},
    {"restart-strategy.exponential-delay.reset-backoff-threshold", WEIR_CFG_DURATION, "1h",
     "After running this long without failure the delay resets to the initial backoff."},
    {"restart-strategy.exponential-delay.attempts-before-reset-backoff", WEIR_CFG_INT, "2147483647",
     "Restarts allowed by the exponential-delay strategy."},
    {"high-availability.storageDir", WEIR_CFG_STRING, NULL,
     "Job manager HA store (an absolute path or s3://bucket/prefix): submitted jobs, plugins "
     "and the latest checkpoint pointer, so a restarted job manager resumes its jobs (unset = no "
     "HA)."},
    {"high-availability.cluster-id", WEIR_CFG_STRING, "default",
     "Name of the cluster in the HA store; part of the derived application job id."},
    {"s3.endpoint", WEIR_CFG_STRING, NULL,
     "S3 endpoint URL with its scheme (http://127.0.0.1:8333, https://s3.eu-west-1.amazonaws.com) "
     "for s3:// locations in state.checkpoints.dir, state.savepoints.dir and "
     "high-availability.storageDir."},
    {"s3.access-key", WEIR_CFG_STRING, NULL, "S3 access key id."},
    {"s3.secret-key", WEIR_CFG_STRING, NULL, "S3 secret access key (shown as ******)."},
    {"s3.region", WEIR_CFG_STRING, "us-east-1", "Region in the S3 request signature (SigV4)."},
    {"s3.path.style.access", WEIR_CFG_BOOL, "false",
     "Path-style URLs (<endpoint>/<bucket>/<key>) instead of virtual-hosted ones "
     "(<bucket>.<endpoint host>/<key>): true for most self-hosted servers."},
    {"s3.multipart.threshold", WEIR_CFG_BYTES, "32mb",
     "Files at least this large are uploaded with a multipart upload."},
    {"s3.multipart.part-size", WEIR_CFG_BYTES, "16mb", "Part size of multipart uploads (>= 5mb)."},
    {"s3.upload.max-concurrent", WEIR_CFG_INT, "4",
     "Uploads in flight at once per process (task manager), 1..64."},
    {"s3.retry.max-attempts", WEIR_CFG_INT, "5",
     "Attempts of a request that fails transiently (connection errors, 5xx, throttling); 1 = no "
     "retry."},
    {"s3.retry.initial-backoff", WEIR_CFG_DURATION, "100ms",
     "Delay before the first retry; doubled per attempt, with jitter."},
    {"s3.retry.max-backoff", WEIR_CFG_DURATION, "2s", "Longest delay between two attempts."},
    {"s3.connect-timeout", WEIR_CFG_DURATION, "2s", "Time to connect to the S3 endpoint."},
    {"s3.request-timeout", WEIR_CFG_DURATION, "60s",
     "Longest time of one S3 request; a transfer slower than 1 KiB/s for 10 s is aborted too."},
    {"application.plugin", WEIR_CFG_STRING, NULL,
     "Application mode: path of the job's plugin .so on the job manager's file system; the job "
     "manager submits it at start (job arguments after -- on its command line) and exits when "
     "the job ends (unset = session mode)."},
    {"application.job-id", WEIR_CFG_STRING, NULL,
     "Application mode: the job id (32 lowercase hex; unset = derived from "
     "high-availability.cluster-id and execution.savepoint.path)."},
    {"application.cli", WEIR_CFG_STRING, NULL,
     "Application mode: the weir CLI that submits the job (unset = weir next to the job "
     "manager's executable)."},
    {"execution.savepoint.path", WEIR_CFG_STRING, NULL,
     "Application mode: start the job from this savepoint or retained checkpoint (absolute "
     "path; like weir run -s)."},
    {"execution.savepoint.ignore-unclaimed-state", WEIR_CFG_BOOL, "false",
     "Application mode: drop the state of operators the job no longer has (like weir run -n)."},
    {"jobmanager.shutdown.savepoint", WEIR_CFG_BOOL, "false",
     "On SIGTERM/SIGINT stop every RUNNING job with a savepoint into state.savepoints.dir "
     "before exiting (false = exit at once, jobs stay in HA)."},
    {"jobmanager.shutdown.savepoint-timeout", WEIR_CFG_DURATION, "60s",
     "How long the shutdown savepoints may take; beyond it the job manager exits 1 and the jobs "
     "stay in HA."},
    {"debug.kill-at", WEIR_CFG_STRING, NULL,
     "Fault injection for tests: POINT[:N] makes the process SIGKILL itself the Nth time it "
     "reaches POINT (see docs/checkpointing.md)."},
    {NULL, WEIR_CFG_STRING, NULL, NULL},
};

#define N_KEYS (sizeof KEYS / sizeof KEYS[0] - 1)

/* WEIR_* variables that are not configuration keys (used by logging, tests and scripts). */
static const char *const ENV_IGNORED[] = {"WEIR_LOG_LEVEL", "WEIR_HOME",     "WEIR_BUILD",
                                          "WEIR_SRC",       "WEIR_TEST_TMP", "WEIR_EXAMPLES",
                                          "WEIR_CHAOS_SIZE"};

typedef struct cfg_value {
    char *text; /* NULL = unset */
    int64_t i;  /* INT, DURATION (ms), BOOL (0/1) */
    uint64_t u; /* BYTES */
} cfg_value_t;

struct weir_config {
    cfg_value_t vals[N_KEYS];
};

const weir_config_key_t *weir_config_keys(void) {
    return KEYS;
}

static int key_index(const char *name) {
    for (size_t i = 0; i < N_KEYS; i++)
        if (!strcmp(KEYS[i].name, name))
            return (int)i;
    return -1;
}

/* Allowed range of INT keys. */
static void int_range(const char *name, int64_t *min, int64_t *max) {
    *min = 0;
    *max = INT64_MAX;
    if (strstr(name, ".port")) {
        *max = 65535;
    } else if (!strcmp(name, "pipeline.max-parallelism")) {
        *min = 1;
        *max = 32768;
    } else if (!strcmp(name, "parallelism.default") ||
               !strcmp(name, "taskmanager.numberOfTaskSlots") ||
               !strcmp(name, "taskmanager.network.buffers-per-channel")) {
        *min = 1;
        *max = 1 << 20;
    } else if (!strcmp(name, "rest.max-connections")) {
        *min = 1;
        *max = 65536;
    }
}

static const char *type_phrase(weir_config_type_t t) {
    switch (t) {
    case WEIR_CFG_STRING:
        return "a string";
    case WEIR_CFG_INT:
        return "an integer";
    case WEIR_CFG_DURATION:
        return "a duration like 500ms, 10s, 5min";
    case WEIR_CFG_BYTES:
        return "a size like 4096, 32kb, 64mb";
    case WEIR_CFG_BOOL:
        return "true or false";
    }
    return "?";
}

/* Parses @p value for key @p idx into @p out (text not set). */
static int parse_value(int idx, const char *value, cfg_value_t *out) {
    const weir_config_key_t *k = &KEYS[idx];
    switch (k->type) {
    case WEIR_CFG_STRING:
        return 0;
    case WEIR_CFG_INT: {
        int64_t min, max;
        int_range(k->name, &min, &max);
        return weir_parse_int(value, min, max, &out->i);
    }
    case WEIR_CFG_DURATION:
        return weir_parse_duration_ms(value, &out->i);
    case WEIR_CFG_BYTES:
        return weir_parse_bytes(value, &out->u);
    case WEIR_CFG_BOOL: {
        bool b = false; /* weir_parse_bool leaves it unset on a bad value */
        int rc = weir_parse_bool(value, &b);
        out->i = b;
        return rc;
    }
    }
    return WEIR_EINVAL;
}

/* Sets key @p key from source @p src (a file path, "-D", an environment variable name). */
static int set_from(weir_config_t *cfg, const char *key, const char *value, const char *src,
                    char *errstr, size_t errlen) {
    int idx = key_index(key);
    if (idx < 0) {
        weir_fmt(errstr, errlen,
                 "unknown configuration key '%s' (from %s): see "
                 "docs/configuration.md",
                 key, src);
        return WEIR_ECONFIG;
    }
    cfg_value_t v = {0};
    if (value) {
        if (parse_value(idx, value, &v) < 0) {
            int64_t min, max;
            int_range(KEYS[idx].name, &min, &max);
            if (KEYS[idx].type == WEIR_CFG_INT && (min != 0 || max != INT64_MAX))
                weir_fmt(errstr, errlen,
                         "bad value '%s' for %s (an integer from %lld to %lld) in %s", value, key,
                         (long long)min, (long long)max, src);
            else
                weir_fmt(errstr, errlen, "bad value '%s' for %s (%s) in %s", value, key,
                         type_phrase(KEYS[idx].type), src);
            return WEIR_ECONFIG;
        }
        v.text = strdup(value);
        if (!v.text)
            abort();
    } else if (KEYS[idx].default_value) {
        weir_fmt(errstr, errlen, "missing value for %s (%s) in %s", key,
                 type_phrase(KEYS[idx].type), src);
        return WEIR_ECONFIG;
    }
    free(cfg->vals[idx].text);
    cfg->vals[idx] = v;
    return 0;
}

weir_config_t *weir_config_new(void) {
    weir_config_t *cfg = calloc(1, sizeof *cfg);
    if (!cfg)
        abort();
    for (size_t i = 0; i < N_KEYS; i++) {
        if (!KEYS[i].default_value)
            continue;
        char err[256];
        if (set_from(cfg, KEYS[i].name, KEYS[i].default_value, "defaults", err, sizeof err) < 0)
            abort(); /* a bad default is a programming error */
    }
    return cfg;
}

void weir_config_destroy(weir_config_t **cfg) {
    if (!cfg || !*cfg)
        return;
    for (size_t i = 0; i < N_KEYS; i++)
        free((*cfg)->vals[i].text);
    free(*cfg);
    *cfg = NULL;
}

int weir_config_set(weir_config_t *cfg, const char *key, const char *value, char *errstr,
                    size_t errlen) {
    return set_from(cfg, key, value, "the command line", errstr, errlen);
}

static int set_kv_from(weir_config_t *cfg, const char *kv, const char *src, char *errstr,
                       size_t errlen) {
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv) {
        weir_fmt(errstr, errlen, "bad %s '%s': expected key=value", src, kv);
        return WEIR_ECONFIG;
    }
    size_t klen = (size_t)(eq - kv);
    char *key = strndup(kv, klen);
    if (!key)
        abort();
    /* Trim spaces around the key ("-D key = value" is forgiving). */
    char *k = key;
    while (isspace((unsigned char)*k))
        k++;
    size_t n = strlen(k);
    while (n > 0 && isspace((unsigned char)k[n - 1]))
        k[--n] = '\0';
    int rc = set_from(cfg, k, eq + 1, src, errstr, errlen);
    free(key);
    return rc;
}

int weir_config_set_kv(weir_config_t *cfg, const char *kv, char *errstr, size_t errlen) {
    return set_kv_from(cfg, kv, "-D", errstr, errlen);
}

/* The environment name of a key: WEIR_ + upper case, '.' and '-' -> '_'. */
static void env_name(const char *key, char *out, size_t cap) {
    size_t n = weir_fmt(out, cap, "WEIR_") > 0 ? 5 : 0;
    for (const char *p = key; *p && n + 1 < cap; p++)
        out[n++] = (*p == '.' || *p == '-') ? '_' : (char)toupper((unsigned char)*p);
    out[n] = '\0';
}

int weir_config_load_env(weir_config_t *cfg, char **envp, char *errstr, size_t errlen) {
    if (!envp)
        return 0;
    for (char **e = envp; *e; e++) {
        if (strncmp(*e, "WEIR_", 5) != 0)
            continue;
        const char *eq = strchr(*e, '=');
        if (!eq)
            continue;
        size_t nlen = (size_t)(eq - *e);
        char name[256];
        if (nlen >= sizeof name) {
            weir_fmt(errstr, errlen,
                     "unknown environment variable '%.64s...': see "
                     "docs/configuration.md",
                     *e);
            return WEIR_ECONFIG;
        }
        memcpy(name, *e, nlen);
        name[nlen] = '\0';
        int found = -1;
        for (size_t i = 0; i < N_KEYS && found < 0; i++) {
            char en[256];
            env_name(KEYS[i].name, en, sizeof en);
            if (!strcmp(en, name))
                found = (int)i;
        }
        if (found >= 0) {
            if (set_from(cfg, KEYS[found].name, eq + 1, name, errstr, errlen) < 0)
                return WEIR_ECONFIG;
            continue;
        }
        bool ignored = !strncmp(name, "WEIR_TEST_", 10);
        for (size_t i = 0; i < sizeof ENV_IGNORED / sizeof ENV_IGNORED[0] && !ignored; i++)
            ignored = !strcmp(name, ENV_IGNORED[i]);
        if (ignored)
            continue;
        weir_fmt(errstr, errlen,
                 "unknown configuration key in environment variable '%s': see "
                 "docs/configuration.md",
                 name);
        return WEIR_ECONFIG;
    }
    return 0;
}

/* ---- YAML ---------------------------------------------------------------------------------- */

#define YAML_MAX_DEPTH 16

int weir_config_load_file(weir_config_t *cfg, const char *path, char *errstr, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        weir_fmt(errstr, errlen, "cannot open configuration file %s: %m", path);
        return WEIR_ECONFIG;
    }
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        fclose(f);
        weir_fmt(errstr, errlen, "cannot parse %s: out of memory", path);
        return WEIR_ENOMEM;
    }
    yaml_parser_set_input_file(&parser, f);

    /* Stack of mapping levels; each holds the dotted prefix and the pending key (if any). */
    char *prefix[YAML_MAX_DEPTH] = {0};
    char *pending[YAML_MAX_DEPTH] = {0};
    int depth = -1; /* index of the innermost open mapping */
    int rc = 0;
    bool done = false;
    while (!done) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            weir_fmt(errstr, errlen, "cannot parse %s: %s at line %zu", path,
                     parser.problem ? parser.problem : "syntax error",
                     parser.problem_mark.line + 1);
            rc = WEIR_ECONFIG;
            break;
        }
        size_t line = ev.start_mark.line + 1;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_MAPPING_START_EVENT: {
            if (depth + 1 >= YAML_MAX_DEPTH) {
                weir_fmt(errstr, errlen, "%s line %zu: nested too deeply", path, line);
                rc = WEIR_ECONFIG;
                break;
            }
            char *p = NULL;
            if (depth >= 0) {
                if (!pending[depth]) {
                    weir_fmt(errstr, errlen, "%s line %zu: a mapping cannot be a key", path, line);
                    rc = WEIR_ECONFIG;
                    break;
                }
                p = pending[depth];
                pending[depth] = NULL;
            }
            depth++;
            prefix[depth] = p;
            pending[depth] = NULL;
            break;
        }
        case YAML_MAPPING_END_EVENT:
            if (depth >= 0) {
                free(prefix[depth]);
                free(pending[depth]);
                prefix[depth] = pending[depth] = NULL;
                depth--;
            }
            break;
        case YAML_SEQUENCE_START_EVENT:
            weir_fmt(errstr, errlen, "%s line %zu: lists are not supported; write key: value", path,
                     line);
            rc = WEIR_ECONFIG;
            break;
        case YAML_ALIAS_EVENT:
            weir_fmt(errstr, errlen, "%s line %zu: aliases are not supported", path, line);
            rc = WEIR_ECONFIG;
            break;
        case YAML_SCALAR_EVENT: {
            const char *text = (const char *)ev.data.scalar.value;
            if (depth < 0) {
                /* A document that is just a scalar: only an empty document is fine. */
                if (ev.data.scalar.length != 0) {
                    weir_fmt(errstr, errlen, "%s: expected key: value pairs", path);
                    rc = WEIR_ECONFIG;
                }
                break;
            }
            if (!pending[depth]) {
                /* A key. */
                size_t plen = prefix[depth] ? strlen(prefix[depth]) + 1 : 0;
                char *k = malloc(plen + ev.data.scalar.length + 1);
                if (!k)
                    abort();
                if (prefix[depth])
                    sprintf(k, "%s.%s", prefix[depth], text);
                else
                    strcpy(k, text);
                pending[depth] = k;
                break;
            }
            /* A value for the pending key. */
            bool is_null =
                ev.data.scalar.plain_implicit &&
                (ev.data.scalar.length == 0 || !strcmp(text, "~") || !strcmp(text, "null") ||
                 !strcmp(text, "Null") || !strcmp(text, "NULL"));
            char src[1024];
            weir_fmt(src, sizeof src, "%s", path);
            if (set_from(cfg, pending[depth], is_null ? NULL : text, src, errstr, errlen) < 0)
                rc = WEIR_ECONFIG;
            free(pending[depth]);
            pending[depth] = NULL;
            break;
        }
        default:
            break;
        }
        yaml_event_delete(&ev);
        if (rc < 0)
            break;
    }
    for (int i = 0; i <= depth && i < YAML_MAX_DEPTH; i++) {
        free(prefix[i]);
        free(pending[i]);
    }
    yaml_parser_delete(&parser);
    fclose(f);
    return rc;
}

/* ---- getters ------------------------------------------------------------------------------- */

static const cfg_value_t *lookup(const weir_config_t *cfg, const char *key) {
    int idx = key_index(key);
    if (idx < 0) {
        WEIR_ERROR("config", "undeclared configuration key '%s' read", key);
        assert(!"undeclared configuration key");
        return NULL;
    }
    return &cfg->vals[idx];
}

const char *weir_config_get_str(const weir_config_t *cfg, const char *key) {
    const cfg_value_t *v = lookup(cfg, key);
    return v ? v->text : NULL;
}

int64_t weir_config_get_int(const weir_config_t *cfg, const char *key) {
    const cfg_value_t *v = lookup(cfg, key);
    if (!v)
        return 0;
    int idx = key_index(key);
    return KEYS[idx].type == WEIR_CFG_BYTES ? (int64_t)v->u : v->i;
}

int64_t weir_config_get_ms(const weir_config_t *cfg, const char *key) {
    return weir_config_get_int(cfg, key);
}

uint64_t weir_config_get_bytes(const weir_config_t *cfg, const char *key) {
    const cfg_value_t *v = lookup(cfg, key);
    if (!v)
        return 0;
    int idx = key_index(key);
    return KEYS[idx].type == WEIR_CFG_BYTES ? v->u : (uint64_t)v->i;
}

bool weir_config_get_bool(const weir_config_t *cfg, const char *key) {
    const cfg_value_t *v = lookup(cfg, key);
    return v ? v->i != 0 : false;
}

/* ---- command line -------------------------------------------------------------------------- */

int weir_config_from_args(weir_config_t *cfg, int *argc, char **argv, char **envp, char *errstr,
                          size_t errlen) {
    int n = *argc;
    const char **files = calloc((size_t)n + 1, sizeof *files);
    const char **defs = calloc((size_t)n + 1, sizeof *defs);
    int nfiles = 0, ndefs = 0, out = n > 0 ? 1 : 0;
    int rc = 0;
    if (!files || !defs)
        abort();
    int i = 1;
    for (; i < n; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--"))
            break; /* everything from here on belongs to the caller */
        if (!strcmp(a, "-c") || !strcmp(a, "--config") || !strcmp(a, "--configFile")) {
            if (i + 1 >= n) {
                weir_fmt(errstr, errlen, "%s needs a file name", a);
                rc = WEIR_ECONFIG;
                goto done;
            }
            files[nfiles++] = argv[++i];
        } else if (!strncmp(a, "--config=", 9)) {
            files[nfiles++] = a + 9;
        } else if (!strncmp(a, "--configFile=", 13)) {
            files[nfiles++] = a + 13;
        } else if (!strcmp(a, "-D")) {
            if (i + 1 >= n) {
                weir_fmt(errstr, errlen, "-D needs key=value");
                rc = WEIR_ECONFIG;
                goto done;
            }
            defs[ndefs++] = argv[++i];
        } else if (!strncmp(a, "-D", 2)) {
            defs[ndefs++] = a + 2;
        } else {
            argv[out++] = argv[i];
        }
    }
    for (; i < n; i++)
        argv[out++] = argv[i];

    for (int f = 0; f < nfiles; f++)
        if ((rc = weir_config_load_file(cfg, files[f], errstr, errlen)) < 0)
            goto done;
    if ((rc = weir_config_load_env(cfg, envp, errstr, errlen)) < 0)
        goto done;
    for (int d = 0; d < ndefs; d++)
        if ((rc = weir_config_set_kv(cfg, defs[d], errstr, errlen)) < 0)
            goto done;
done:
    if (rc == 0) {
        *argc = out;
        if (out < n || n == 0)
            argv[out] = NULL;
    }
    free(files);
    free(defs);
    return rc;
}

/* ---- listening addresses and the REST token ------------------------------------------------ */

bool weir_config_host_is_loopback(const char *host) {
    if (!host)
        return false;
    if (!strcasecmp(host, "localhost"))
        return true;
    char inner[INET6_ADDRSTRLEN + 1];
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') { /* [::1] */
        if (n - 2 >= sizeof inner)
            return false;
        memcpy(inner, host + 1, n - 2);
        inner[n - 2] = '\0';
        host = inner;
    }
    struct in_addr a4;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    struct in6_addr a6;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
    return false;
}

const char *weir_config_bind_address(const char *host) {
    return host && !strcasecmp(host, "localhost") ? "127.0.0.1" : host;
}

static bool is_set(const weir_config_t *cfg, const char *key) {
    const char *v = weir_config_get_str(cfg, key);
    return v && *v;
}

/* An address of the RPC or data plane, which carries @p traffic: loopback, or authenticated by
 * CURVE (security.curve.key-file), or accepted by security.insecure with a warning. */
static int check_plane_bind(const weir_config_t *cfg, const char *key, const char *plane,
                            const char *traffic, char *errstr, size_t errlen) {
    const char *host = weir_config_get_str(cfg, key);
    if (weir_config_host_is_loopback(host) || is_set(cfg, "security.curve.key-file"))
        return 0;
    if (!weir_config_get_bool(cfg, "security.insecure"))
        return weir_errf(
            errstr, errlen, WEIR_ECONFIG,
            "%s %s is beyond loopback and the %s has no authentication: set "
            "security.curve.key-file to the cluster key (ZeroMQ CURVE, `weir keygen FILE`), or "
            "set %s to 127.0.0.1, or set security.insecure: true to accept %s from anyone "
            "who can reach it",
            key, host ? host : "(unset)", plane, key, traffic);
    WEIR_WARN("config",
              "security.insecure: %s %s: the %s is not authenticated; anyone who can reach it can "
              "send %s",
              key, host, plane, traffic);
    return 0;
}

int weir_config_check_binds(const weir_config_t *cfg, weir_config_process_t proc, char *errstr,
                            size_t errlen) {
    bool insecure = weir_config_get_bool(cfg, "security.insecure");
    if (proc == WEIR_CONFIG_TASKMANAGER) {
        const char *bind = weir_config_get_str(cfg, "taskmanager.bind-host");
        const char *host = weir_config_get_str(cfg, "taskmanager.host");
        /* A loopback data plane advertised under another name is unreachable for peers (e.g. a
         * host name that /etc/hosts maps to 127.0.1.1 while the socket listens on 127.0.0.1). */
        if (weir_config_host_is_loopback(bind) && host && !weir_config_host_is_loopback(host) &&
            strcmp(host, bind) != 0)
            return weir_errf(errstr, errlen, WEIR_ECONFIG,
                             "taskmanager.host %s is advertised to peers but the data plane "
                             "listens on taskmanager.bind-host %s only: set taskmanager.host to "
                             "%s, or taskmanager.bind-host to an address peers reach it by",
                             host, bind, bind);
        int rc = check_plane_bind(cfg, "taskmanager.bind-host", "data plane", "records and credits",
                                  errstr, errlen);
        /* /metrics: an explicit metrics.reporter.prom.host beyond loopback needs the token; one
         * inherited from taskmanager.bind-host without it only turns /metrics off (prom.c) */
        if (rc != 0 || !weir_config_get_bool(cfg, "metrics.reporter.prom.enabled") ||
            !is_set(cfg, "metrics.reporter.prom.host"))
            return rc;
        const char *mhost = weir_config_get_str(cfg, "metrics.reporter.prom.host");
        if (weir_config_host_is_loopback(mhost) || is_set(cfg, "rest.auth.token") ||
            is_set(cfg, "rest.auth.token-file"))
            return 0;
        if (!insecure)
            return weir_errf(errstr, errlen, WEIR_ECONFIG,
                             "metrics.reporter.prom.host %s is beyond loopback and the task "
                             "manager's /metrics has no authentication: set rest.auth.token or "
                             "rest.auth.token-file (or metrics.reporter.prom.host to 127.0.0.1, "
                             "or security.insecure: true to serve it unauthenticated)",
                             mhost);
        WEIR_WARN("config",
                  "security.insecure: the task manager's /metrics at metrics.reporter.prom.host "
                  "%s has no rest.auth.token: anyone who can reach it can read its metrics",
                  mhost);
        return 0;
    }
    const char *rest = weir_config_get_str(cfg, "rest.bind-address");
    if (!weir_config_host_is_loopback(rest) && !is_set(cfg, "rest.auth.token") &&
        !is_set(cfg, "rest.auth.token-file")) {
        if (!insecure)
            return weir_errf(errstr, errlen, WEIR_ECONFIG,
                             "rest.bind-address %s is beyond loopback and REST has no "
                             "authentication: set rest.auth.token or rest.auth.token-file (or "
                             "security.insecure: true to serve REST unauthenticated)",
                             rest ? rest : "(unset)");
        WEIR_WARN("config",
                  "security.insecure: REST at rest.bind-address %s has no rest.auth.token: anyone "
                  "who can reach it can submit a job, i.e. run native code on every task manager",
                  rest);
    }
    return check_plane_bind(cfg, "jobmanager.bind-host", "control plane", "control messages",
                            errstr, errlen);
}

int weir_config_rest_token(const weir_config_t *cfg, char **token, char *errstr, size_t errlen) {
    *token = NULL;
    const char *text = weir_config_get_str(cfg, "rest.auth.token");
    const char *file = weir_config_get_str(cfg, "rest.auth.token-file");
    if (text && file)
        return weir_errf(errstr, errlen, WEIR_ECONFIG,
                         "both rest.auth.token and rest.auth.token-file are set: set one");
    char where[1200];
    char *tok = NULL;
    size_t len = 0;
    if (file) {
        uint8_t *data = NULL;
        if (weir_read_file(file, &data, &len) != 0)
            return weir_errf(errstr, errlen, WEIR_ECONFIG,
                             "cannot read rest.auth.token-file %s: %s", file, strerror(errno));
        tok = (char *)data;
        if (len > 0 && tok[len - 1] == '\n')
            len--;
        if (len > 0 && tok[len - 1] == '\r')
            len--;
        tok[len] = '\0';
        weir_fmt(where, sizeof where, "rest.auth.token-file %s", file);
    } else if (text) {
        tok = weir_xstrdup(text);
        len = strlen(tok);
        weir_fmt(where, sizeof where, "rest.auth.token");
    } else {
        return 0;
    }
    int rc = 0;
    if (len == 0)
        rc = weir_errf(errstr, errlen, WEIR_ECONFIG,
                       "%s is empty: put a token there (e.g. the output of `openssl rand -hex "
                       "32`)",
                       where);
    for (size_t i = 0; i < len && rc == 0; i++)
        if ((unsigned char)tok[i] < 0x21 || (unsigned char)tok[i] > 0x7e)
            rc = weir_errf(errstr, errlen, WEIR_ECONFIG,
                           "%s holds a character that cannot be sent in an HTTP header (byte "
                           "%zu): use visible ASCII without spaces",
                           where, i + 1);
    if (rc != 0) {
        free(tok);
        return rc;
    }
    *token = tok;
    return 0;
}
