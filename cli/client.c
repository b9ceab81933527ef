/* The CLI's REST client: one libcurl easy handle per weir_client_t, reused across requests
 * (keep-alive). Answers are collected into a growable buffer and parsed with jansson.
 * Invariants: the client owns its handle and address string. Threading: one thread per client;
 * curl_global_init() is the caller's business (done once in main). */
#include "cli/client.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

#define CONNECT_TIMEOUT_S 5L
#define REQUEST_TIMEOUT_S 300L /* a plugin upload can be large */
#define MAX_ANSWER (64u << 20)

struct weir_client {
    CURL *curl;
    char *address; /* HOST:PORT */
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

weir_client_t *weir_client_new(const char *hostport) {
    weir_client_t *c = calloc(1, sizeof(*c));
    if (!c)
        abort();
    if (strncmp(hostport, "http://", 7) == 0)
        hostport += 7;
    c->address = strdup(hostport);
    size_t l = strlen(c->address);
    if (l > 0 && c->address[l - 1] == '/')
        c->address[l - 1] = '\0';
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
    snprintf(url, ulen, "http://%s%s", c->address, path);

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
        if (a.too_big) {
            snprintf(errstr, errlen, "the job manager at %s sent an answer larger than %u bytes",
                     c->address, MAX_ANSWER);
            rc = WEIR_EPROTO;
        } else {
            snprintf(errstr, errlen,
                     "cannot reach the job manager at %s: %s: is it running? (-m HOST:PORT)",
                     c->address, curl_err[0] ? curl_err : curl_easy_strerror(cc));
            rc = WEIR_ENET;
        }
        goto done;
    }
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    json_error_t jerr;
    json_t *root = NULL;
    if (a.len > 0)
        root = json_loadb(a.data, a.len, 0, &jerr);
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
                 method, path, jerr.text);
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
