/* The CLI's REST client: one libcurl easy handle per weir_client_t, reused across requests
 * (keep-alive). Answers are collected into a growable buffer and parsed with jansson. With a
 * token every request carries "Authorization: Bearer <token>"; over HTTPS the server's
 * certificate and host name are always verified (against rest.ssl.trust-cert when set).
 * Invariants: the client owns its handle, its address string, its token header and its trust
 * file name. Threading: one thread per client; curl_global_init() is the caller's business (done
 * once in main). */
#include "cli/client.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/json.h"
#include "common/util.h"

#define CONNECT_TIMEOUT_S 5L
#define REQUEST_TIMEOUT_S 300L /* a plugin upload can be large */
#define MAX_ANSWER (64u << 20)

struct weir_client {
    CURL *curl;
    char *address;    /* HOST:PORT */
    bool tls;         /* https */
    char *auth;       /* "Authorization: Bearer <token>", or NULL */
    char *trust_cert; /* CA file for HTTPS, or NULL (the system's) */
};

typedef struct answer {
    char *data;
    size_t len;
    size_t cap;
    int too_big;
} answer_t;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata) {
    answer_t *a = userdata;
    size_t n = size * nmemb;
    if (a->len + n + 1 > MAX_ANSWER) {
        a->too_big = 1;
        return 0;
    }
    if (a->len + n + 1 > a->cap) {
        size_t cap = a->cap ? a->cap : 4096;
        while (cap < a->len + n + 1)
            cap *= 2;
        char *d = realloc(a->data, cap);
        if (!d)
            return 0;
        a->data = d;
        a->cap = cap;
    }
    memcpy(a->data + a->len, ptr, n);
    a->len += n;
    a->data[a->len] = '\0';
    return n;
}

weir_client_t *weir_client_new(const char *hostport, const weir_client_opts_t *opts) {
    weir_client_t *c = calloc(1, sizeof(*c));
    if (!c)
        abort();
    c->tls = opts && opts->tls;
    if (strncmp(hostport, "http://", 7) == 0) {
        hostport += 7;
        c->tls = false;
    } else if (strncmp(hostport, "https://", 8) == 0) {
        hostport += 8;
        c->tls = true;
    }
    c->address = strdup(hostport);
    size_t l = c->address ? strlen(c->address) : 0;
    if (l > 0 && c->address[l - 1] == '/')
        c->address[l - 1] = '\0';
    if (opts && opts->token) {
        size_t n = strlen(opts->token) + 32;
        c->auth = malloc(n);
        if (!c->auth)
            abort();
        snprintf(c->auth, n, "Authorization: Bearer %s", opts->token);
    }
    c->trust_cert = opts && opts->trust_cert ? weir_xstrdup(opts->trust_cert) : NULL;
    c->curl = curl_easy_init();
    if (!c->address || !c->curl)
        abort();
    return c;
}

void weir_client_destroy(weir_client_t **client) {
    if (!client || !*client)
        return;
    weir_client_t *c = *client;
    curl_easy_cleanup(c->curl);
    free(c->address);
    if (c->auth) {
        memset(c->auth, 0, strlen(c->auth));
        free(c->auth);
    }
    free(c->trust_cert);
    free(c);
    *client = NULL;
}

const char *weir_client_address(const weir_client_t *client) {
    return client->address;
}

int weir_client_request(weir_client_t *c, const char *method, const char *path, const void *body,
                        size_t body_len, const char *content_type, json_t **out, char *errstr,
                        size_t errlen) {
    int rc = 0;
    answer_t a = {0};
    struct curl_slist *headers = NULL;
    char curl_err[CURL_ERROR_SIZE] = "";
    char ctype[160];
    if (out)
        *out = NULL;

    size_t ulen = strlen(c->address) + strlen(path) + 16;
    char *url = malloc(ulen);
    if (!url)
        abort();
    snprintf(url, ulen, "%s://%s%s", c->tls ? "https" : "http", c->address, path);

    CURL *h = c->curl;
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, REQUEST_TIMEOUT_S);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &a);
    curl_easy_setopt(h, CURLOPT_PROXY, "");          /* never go through an http_proxy */
    headers = curl_slist_append(headers, "Expect:"); /* no 100-continue round trip */
    headers = curl_slist_append(headers, "Accept: application/json");
    if (c->auth)
        headers = curl_slist_append(headers, c->auth);
    if (c->tls) {
        if (c->trust_cert && access(c->trust_cert, R_OK) != 0) {
            snprintf(errstr, errlen, "cannot read rest.ssl.trust-cert %s: %s", c->trust_cert,
                     strerror(errno));
            rc = WEIR_ECONFIG;
            goto done;
        }
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
        if (c->trust_cert)
            curl_easy_setopt(h, CURLOPT_CAINFO, c->trust_cert);
    }
    if (body || strcmp(method, "POST") == 0) {
        snprintf(ctype, sizeof(ctype), "Content-Type: %s",
                 content_type ? content_type : "application/json");
        headers = curl_slist_append(headers, ctype);
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? body_len : 0));
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);

    CURLcode cc = curl_easy_perform(h);
    if (cc != CURLE_OK) {
        const char *why = curl_err[0] ? curl_err : curl_easy_strerror(cc);
        rc = WEIR_EPROTO;
        if (a.too_big) {
            snprintf(errstr, errlen, "the job manager at %s sent an answer larger than %u bytes",
                     c->address, MAX_ANSWER);
        } else if (cc == CURLE_PEER_FAILED_VERIFICATION) {
            snprintf(errstr, errlen,
                     "the certificate of the job manager at %s does not verify: %s: set "
                     "rest.ssl.trust-cert to the CA or certificate that signed it%s",
                     c->address, why, c->trust_cert ? "" : " (the system's CAs were used)");
        } else if (cc == CURLE_SSL_CACERT_BADFILE) {
            snprintf(errstr, errlen, "cannot use rest.ssl.trust-cert %s: %s",
                     c->trust_cert ? c->trust_cert : "(system CAs)", why);
        } else if (c->tls && cc == CURLE_SSL_CONNECT_ERROR) {
            snprintf(errstr, errlen,
                     "TLS handshake with the job manager at %s failed: %s: does it serve HTTPS "
                     "(rest.ssl.enabled)?",
                     c->address, why);
        } else {
            /* Also what plain HTTP to an HTTPS server looks like (an empty or non-HTTP answer):
             * a job manager killed in the middle of a request looks the same, so it stays
             * WEIR_ENET (retried while waiting for a job) and the line gives both hints. */
            bool maybe_tls =
                !c->tls && (cc == CURLE_GOT_NOTHING || cc == CURLE_RECV_ERROR ||
                            cc == CURLE_WEIRD_SERVER_REPLY || cc == CURLE_UNSUPPORTED_PROTOCOL);
            rc = WEIR_ENET;
            snprintf(errstr, errlen,
                     "cannot reach the job manager at %s: %s: is it running? (-m HOST:PORT%s)",
                     c->address, why,
                     maybe_tls ? "; if it serves HTTPS, set rest.ssl.enabled: true" : "");
        }
        goto done;
    }
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    json_error_t jerr;
    json_t *root = NULL;
    if (a.len > 0)
        root = json_loadb(a.data, a.len, 0, &jerr);
    if (status == 401) {
        if (c->auth)
            snprintf(errstr, errlen,
                     "the job manager at %s rejected the token: rest.auth.token (or the file "
                     "rest.auth.token-file) must hold the job manager's token",
                     c->address);
        else
            snprintf(errstr, errlen,
                     "the job manager at %s requires a token: set rest.auth.token or "
                     "rest.auth.token-file (-D rest.auth.token=..., WEIR_REST_AUTH_TOKEN or the "
                     "configuration file)",
                     c->address);
        json_decref(root);
        rc = WEIR_EPROTO;
        goto done;
    }
    if (status < 200 || status >= 300) {
        const char *msg = root ? json_string_value(json_object_get(root, "error")) : NULL;
        if (msg)
            snprintf(errstr, errlen, "%s", msg);
        else
            snprintf(errstr, errlen, "the job manager at %s answered HTTP %ld to %s %s", c->address,
                     status, method, path);
        json_decref(root);
        rc = WEIR_EPROTO;
        goto done;
    }
    if (a.len > 0 && !root) {
        snprintf(errstr, errlen, "the job manager at %s sent invalid JSON to %s %s: %s", c->address,
                 method, path, weir_json_error_text(&jerr));
        rc = WEIR_EPROTO;
        goto done;
    }
    if (!root)
        root = json_null();
    if (out)
        *out = root;
    else
        json_decref(root);
done:
    /* the handle must not keep pointers to this frame's buffers */
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, NULL);
    curl_slist_free_all(headers);
    free(a.data);
    free(url);
    return rc;
}
