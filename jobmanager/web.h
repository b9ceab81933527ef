/* The web dashboard's static files (jobmanager/web/), embedded in weir-jobmanager at build time
 * (jobmanager/web/embed.cmake writes the table below into <build>/jobmanager/web_assets.c) and
 * served by the REST server at GET /, /index.html and /web/<file> (docs/rest.md, "Dashboard"). */
#ifndef WEIR_JOBMANAGER_WEB_H
#define WEIR_JOBMANAGER_WEB_H

#include <microhttpd.h>
#include <stddef.h>

/* One embedded file: its name under jobmanager/web/ ("app.js"), Content-Type, strong ETag (the
 * quoted sha256 of its bytes, computed by CMake) and bytes. */
typedef struct weir_jm_web_asset {
    const char *name;
    const char *content_type;
    const char *etag;
    const unsigned char *data;
    size_t len;
} weir_jm_web_asset_t;

/* The generated table (read-only). */
extern const weir_jm_web_asset_t weir__jm_web_assets[];
extern const size_t weir__jm_web_n_assets;

/* The embedded file @p url names ("/" and "/index.html": index.html; "/web/<name>"), or NULL
 * (the URL is then not a dashboard file: the REST router goes on). */
const weir_jm_web_asset_t *weir__jm_web_find(const char *url);

/* Answers a GET of @p a: 200 with the file, or 304 when If-None-Match holds its ETag. Headers:
 * Content-Type, ETag, Cache-Control: no-cache (revalidated on every load), and a
 * Content-Security-Policy of 'self' with nosniff and no framing. Any thread; no lock. */
enum MHD_Result weir__jm_web_reply(struct MHD_Connection *c, const weir_jm_web_asset_t *a);

#endif
