/* The job manager's REST server settings: authentication (rest.auth.*), HTTPS (rest.ssl.*) and
 * bounds (rest.max-request-size, rest.max-connections, rest.idleness-timeout), loaded and
 * checked once at start. docs/security.md explains each key. */
#ifndef WEIR_JM_REST_H
#define WEIR_JM_REST_H

#include <stdbool.h>
#include <stddef.h>

#include "common/config.h"

typedef struct weir_rest_config {
    bool auth;             /* a bearer token is required by every request but GET /healthz */
    char token_sha256[65]; /* hex sha256 of the token; requests are compared in constant time */
    size_t token_len;      /* for the start-up warning about short tokens */
    char *cert_pem;        /* HTTPS when non-NULL: the PEM certificate (chain), NUL-terminated */
    char *key_pem;         /* its PEM private key, NUL-terminated */
    size_t max_request;    /* rest.max-request-size: largest body but a POST /blobs one */
    unsigned max_connections;
    unsigned idle_timeout_s;
} weir_rest_config_t;

/**
 * @brief Loads and checks the REST settings of @p cfg: reads rest.auth.token-file, the
 * certificate and the key (a PEM certificate, an unencrypted PEM key that belongs to it), checks
 * the bounds. Logs nothing (the REST server logs its settings when it starts).
 * @returns 0, or WEIR_ECONFIG with one line in errstr naming the key; @p out is then empty.
 */
int weir_rest_config_load(const weir_config_t *cfg, weir_rest_config_t *out, char *errstr,
                          size_t errlen);
/** Frees what weir_rest_config_load() read (the key is wiped first). Accepts a cleared struct. */
void weir_rest_config_clear(weir_rest_config_t *rc);

#endif
