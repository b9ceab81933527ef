/* The CLI's REST client for the job manager (libcurl + jansson). One weir_client_t per command;
 * used by one thread. Errors are one line, ready to print after "weir: ". */
#ifndef WEIR_CLI_CLIENT_H
#define WEIR_CLI_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct weir_client weir_client_t;

/** How the client authenticates and reaches the job manager (docs/security.md). */
typedef struct weir_client_opts {
    const char *token;      /* bearer token sent with every request (rest.auth.token), or NULL */
    bool tls;               /* HTTPS (rest.ssl.enabled); a leading "https://"/"http://" wins */
    const char *trust_cert; /* PEM file of the CA or certificate to trust (rest.ssl.trust-cert);
                               NULL: the system's CAs */
} weir_client_opts_t;

/** A client for the job manager's REST API at @p hostport ("HOST:PORT"; a leading "http://" or
 * "https://" is accepted and chooses the scheme). @p opts may be NULL (plain HTTP, no token); the
 * client copies what it needs. Never NULL (aborts on OOM). Call curl_global_init() once before. */
weir_client_t *weir_client_new(const char *hostport, const weir_client_opts_t *opts);
void weir_client_destroy(weir_client_t **client);
/** The HOST:PORT this client talks to (as given, without "http://"). */
const char *weir_client_address(const weir_client_t *client);

/**
 * @brief Sends one request and parses the JSON answer.
 * @param method       "GET", "POST", "PATCH", ...
 * @param path         "/jobs", ...
 * @param body         request body or NULL
 * @param content_type Content-Type of the body (NULL: application/json)
 * @param out          on success the parsed answer (caller owns it; JSON null when the body is
 *                     empty); may be NULL to discard it
 * @returns 0; WEIR_ENET when the job manager cannot be reached ("cannot reach the job manager at
 * HOST:PORT: <curl error>: is it running? (-m HOST:PORT)"); WEIR_EPROTO for an HTTP error status
 * (errstr holds the server's {"error"} text; for 401 a line naming rest.auth.token), an answer
 * that is not JSON, or a TLS failure (a certificate that does not verify: a line naming
 * rest.ssl.trust-cert); WEIR_ECONFIG when rest.ssl.trust-cert cannot be read.
 */
int weir_client_request(weir_client_t *client, const char *method, const char *path,
                        const void *body, size_t body_len, const char *content_type, json_t **out,
                        char *errstr, size_t errlen);

#endif
