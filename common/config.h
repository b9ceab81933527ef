/* Configuration: Flink-like flat keys ("jobmanager.rpc.port") with typed defaults, loaded in
 * this order, later wins: built-in defaults < YAML file (-c) < WEIR_* environment < -D flags.
 * Environment names: "WEIR_" + key upper-cased with '.' and '-' turned into '_'
 * (WEIR_JOBMANAGER_RPC_PORT). Every key is declared in the table in config.c (name, type,
 * default, one-line doc) and listed in docs/configuration.md; an unknown key is an error that
 * names the key and the file/flag it came from. A weir_config_t is owned by one thread. */
#ifndef WEIR_COMMON_CONFIG_H
#define WEIR_COMMON_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct weir_config weir_config_t;

typedef enum weir_config_type {
    WEIR_CFG_STRING,
    WEIR_CFG_INT,
    WEIR_CFG_DURATION, /* stored as milliseconds */
    WEIR_CFG_BYTES,
    WEIR_CFG_BOOL,
} weir_config_type_t;

/** A declared key (the table is public so docs and `--help` can list it). */
typedef struct weir_config_key {
    const char *name;
    weir_config_type_t type;
    const char *default_value; /* as text; NULL = unset */
    const char *doc;
} weir_config_key_t;

/** The table of every known key, terminated by an entry with name == NULL. */
const weir_config_key_t *weir_config_keys(void);

/** A configuration holding every key's default. Never NULL (aborts on OOM). */
weir_config_t *weir_config_new(void);
void weir_config_destroy(weir_config_t **cfg);

/** Loads a YAML file of "key: value" pairs (flat keys; nested maps are joined with '.').
 * @returns 0, or a negative error with a one-line message in errstr naming file and key. */
int weir_config_load_file(weir_config_t *cfg, const char *path, char *errstr, size_t errlen);
/** Applies WEIR_* variables from @p envp (NULL-terminated). Variables that match no key and
 * are not in the ignore list (WEIR_LOG_LEVEL, WEIR_HOME...) are an error. */
int weir_config_load_env(weir_config_t *cfg, char **envp, char *errstr, size_t errlen);
/** Applies "key=value" (a -D flag). Validates key and value. */
int weir_config_set_kv(weir_config_t *cfg, const char *kv, char *errstr, size_t errlen);
/** Sets one key; validates the value against the key's type. */
int weir_config_set(weir_config_t *cfg, const char *key, const char *value, char *errstr,
                    size_t errlen);

/** Typed getters. The key must be declared (asserted); the value was validated when set. */
const char *weir_config_get_str(const weir_config_t *cfg, const char *key);
int64_t weir_config_get_int(const weir_config_t *cfg, const char *key);
int64_t weir_config_get_ms(const weir_config_t *cfg, const char *key);
uint64_t weir_config_get_bytes(const weir_config_t *cfg, const char *key);
bool weir_config_get_bool(const weir_config_t *cfg, const char *key);

/** Parses the common command line of all three programs: -c FILE, -D key=value (repeatable),
 * also --configFile/--config. Applies defaults < file < env < -D in that order.
 * Leaves unrecognised arguments to the caller: on return *argc/argv hold the rest.
 * @returns 0, or a negative error with a one-line message in errstr. */
int weir_config_from_args(weir_config_t *cfg, int *argc, char **argv, char **envp, char *errstr,
                          size_t errlen);

/** Whether @p host names the loopback interface only: "localhost", an IPv4 address in
 * 127.0.0.0/8, or ::1 (also "[::1]" and ::ffff:127.x.y.z). Literal: nothing is resolved, so any
 * other text (a host or interface name, "*", "0.0.0.0", "::") counts as beyond loopback. */
bool weir_config_host_is_loopback(const char *host);

/** @p host as a ZeroMQ bind address: "localhost" becomes 127.0.0.1 (ZeroMQ binds only to
 * addresses and interface names); anything else is returned unchanged. */
const char *weir_config_bind_address(const char *host);

/** The process whose listening addresses weir_config_check_binds() checks. */
typedef enum weir_config_process {
    WEIR_CONFIG_JOBMANAGER,  /* rest.bind-address, jobmanager.bind-host */
    WEIR_CONFIG_TASKMANAGER, /* taskmanager.bind-host (and taskmanager.host) */
} weir_config_process_t;

/**
 * @brief Refuses listening beyond loopback without authentication (docs/security.md).
 *
 * rest.bind-address beyond loopback needs rest.auth.token or rest.auth.token-file;
 * jobmanager.bind-host and taskmanager.bind-host beyond loopback need security.insecure: true
 * (the control and data planes have no authentication yet). security.insecure: true also
 * accepts an unauthenticated REST; every such override logs a warning. A task manager whose data
 * plane listens on loopback must also advertise a loopback taskmanager.host (or the same text).
 * @returns 0, or WEIR_ECONFIG with one line in errstr naming the keys to set.
 */
int weir_config_check_binds(const weir_config_t *cfg, weir_config_process_t proc, char *errstr,
                            size_t errlen);

/**
 * @brief The REST bearer token: rest.auth.token, or the content of rest.auth.token-file (read
 * now; one trailing newline ignored).
 * @param token on success a malloc'd token (caller frees), or NULL when neither key is set
 * @returns 0, or WEIR_ECONFIG with one line when both keys are set, the file cannot be read, or
 * the token is empty or holds anything but visible ASCII (it travels in an HTTP header).
 */
int weir_config_rest_token(const weir_config_t *cfg, char **token, char *errstr, size_t errlen);

#endif
