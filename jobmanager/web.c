/* Owns the serving of the web dashboard's static files (jobmanager/web/, docs/rest.md
 * "Dashboard"): the URL -> embedded file lookup and the HTTP answer with its caching and security
 * headers. The bytes themselves are a generated, read-only table (web.h).
 *
 * Invariants: only names in the generated table are served (a URL is compared whole against
 * them, so no path ever reaches the file system); the files need no bearer token (they hold no
 * data: every API call of the page sends the token itself); every answer carries
 * Content-Security-Policy default-src 'self' (no inline script, no other origin) and
 * frame-ancestors 'none' (the cancel and stop buttons cannot be clickjacked).
 *
 * Threading: called on libmicrohttpd's thread; reads only constant data, takes no lock. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "jobmanager/web.h"

#define WEB_PREFIX "/web/"

#define WEB_CSP                                                                                    \
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "               \
    "form-action 'self'; frame-ancestors 'none'"

const weir_jm_web_asset_t *weir__jm_web_find(const char *url) {
    const char *name;
    if (!strcmp(url, "/") || !strcmp(url, "/index.html"))
        name = "index.html";
    else if (!strncmp(url, WEB_PREFIX, strlen(WEB_PREFIX)))
        name = url + strlen(WEB_PREFIX);
    else
        return NULL;
    for (size_t i = 0; i < weir__jm_web_n_assets; i++)
        if (!strcmp(weir__jm_web_assets[i].name, name))
            return &weir__jm_web_assets[i];
    return NULL;
}

enum MHD_Result weir__jm_web_reply(struct MHD_Connection *c, const weir_jm_web_asset_t *a) {
    const char *inm =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
    bool fresh = inm && (!strcmp(inm, "*") || strstr(inm, a->etag) != NULL);
    /* PERSISTENT: libmicrohttpd neither copies nor frees nor writes the buffer */
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        fresh ? 0 : a->len, fresh ? NULL : (void *)(uintptr_t)a->data, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    if (!fresh)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, a->content_type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, a->etag);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_SECURITY_POLICY, WEB_CSP);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_X_CONTENT_TYPE_OPTIONS, "nosniff");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_X_FRAME_OPTIONS, "DENY");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    enum MHD_Result rc = MHD_queue_response(c, fresh ? MHD_HTTP_NOT_MODIFIED : MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return rc;
}
