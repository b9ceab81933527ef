/* s3.c — the S3 backend of storage.h: every operation of weir_storage_ops_t as S3 REST requests
 * over libcurl, signed by curl's built-in AWS SigV4 (CURLOPT_AWS_SIGV4 "aws:amz:<region>:s3").
 * Owns: the s3_t of one storage (bucket, prefix, base URL, credentials) and, per env, the shared
 * curl state (env->s3_shared: a curl share handle for DNS, TLS sessions and connections, with its
 * locks), made on the first s3:// open and freed with the env.
 *
 * Requests: path-style (endpoint/bucket/key) or virtual-hosted (bucket.endpoint/key) URLs; keys
 * percent-encoded except unreserved characters and '/'; query strings written already in SigV4
 * canonical form (parameters sorted, every value percent-encoded, "uploads=" / "delete=" with
 * '=') because curl 7.88 signs the query as it is sent. The payload hash is computed here and
 * sent as x-amz-content-sha256 (curl 7.88 signs the value of that header when it is given), so
 * the server checks every byte of an upload.
 * Large files go up as multipart uploads (above s3.multipart.threshold, parts of
 * s3.multipart.part-size, completed last: the object appears whole or not at all; aborted on
 * failure). Answers are read into bounded buffers (WEIR__S3_XML_MAX, error bodies 64 KiB) and
 * parsed by s3_xml.c.
 * Errors: transient failures (connection errors, timeouts, 5xx, 429) are retried with
 * exponential backoff and full jitter up to s3.retry.max-attempts (env->retries counts them);
 * permanent ones return at once. Requests and payload bytes are counted in the env here;
 * storage.c counts failures.
 * Threading: an s3_t is immutable after open; every call makes its own curl easy handle, so any
 * number of threads may use one storage. The share handle serializes through its lock
 * callbacks (one mutex per curl_lock_data). */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/util.h"
#include "storage/s3_xml.h"
#include "storage/storage_int.h"

#define ERR_BODY_MAX (64u << 10)
#define S3_MAX_PARTS 10000u
#define S3_DELETE_BATCH 1000u
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* ---- shared curl state (per env) -------------------------------------------------------- */

typedef struct s3_shared {
    CURLSH *share;
    pthread_mutex_t locks[CURL_LOCK_DATA_LAST];
} s3_shared_t;

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *arg) {
    (void)h, (void)access;
    s3_shared_t *sh = arg;
    pthread_mutex_lock(&sh->locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *arg) {
    (void)h;
    s3_shared_t *sh = arg;
    pthread_mutex_unlock(&sh->locks[data]);
}

static void shared_free(void *p) {
    s3_shared_t *sh = p;
    if (!sh)
        return;
    if (sh->share)
        curl_share_cleanup(sh->share);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&sh->locks[i]);
    free(sh);
    curl_global_cleanup();
}

/* Makes env->s3_shared on the first s3:// open (under env->mu, a leaf lock). */
static s3_shared_t *shared_get(weir_storage_env_t *env) {
    pthread_mutex_lock(&env->mu);
    s3_shared_t *sh = env->s3_shared;
    if (!sh && curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK) { /* thread-safe since 7.84 */
        sh = calloc(1, sizeof *sh);
        if (sh) {
            for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
                pthread_mutex_init(&sh->locks[i], NULL);
            sh->share = curl_share_init();
            if (!sh->share ||
                curl_share_setopt(sh->share, CURLSHOPT_LOCKFUNC, share_lock) != CURLSHE_OK ||
                curl_share_setopt(sh->share, CURLSHOPT_UNLOCKFUNC, share_unlock) != CURLSHE_OK ||
                curl_share_setopt(sh->share, CURLSHOPT_USERDATA, sh) != CURLSHE_OK ||
                curl_share_setopt(sh->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK ||
                curl_share_setopt(sh->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) !=
                    CURLSHE_OK ||
                curl_share_setopt(sh->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT) !=
                    CURLSHE_OK) {
                shared_free(sh);
                sh = NULL;
            } else {
                env->s3_shared = sh;
                env->free_shared = shared_free;
            }
        } else {
            curl_global_cleanup();
        }
    }
    pthread_mutex_unlock(&env->mu);
    return sh;
}

/* ---- one storage ------------------------------------------------------------------------- */

typedef struct s3 {
    weir_storage_env_t *env;
    s3_shared_t *shared;
    char *bucket;
    char *prefix;   /* "" or "a/b" (object keys are prefix + "/" + key) */
    char *base_url; /* object URL = base_url + "/" + encoded key */
    char *sigv4;    /* "aws:amz:<region>:s3" */
} s3_t;

static s3_t *impl(weir_storage_t *st) {
    return st->impl;
}

static bool unreserved(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* Percent-encodes @p s (uppercase hex, RFC 3986 unreserved kept, '/' kept when @p keep_slash)
 * onto @p out at *pos. @returns false when it does not fit. */
static bool enc(const char *s, bool keep_slash, char *out, size_t cap, size_t *pos) {
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (unreserved(*c) || (keep_slash && *c == '/')) {
            if (*pos + 1 >= cap)
                return false;
            out[(*pos)++] = (char)*c;
        } else {
            if (*pos + 3 >= cap)
                return false;
            out[(*pos)++] = '%';
            out[(*pos)++] = hex[*c >> 4];
            out[(*pos)++] = hex[*c & 15];
        }
    }
    out[*pos] = '\0';
    return true;
}

static bool put_str(const char *s, char *out, size_t cap, size_t *pos) {
    size_t n = strlen(s);
    if (*pos + n >= cap)
        return false;
    memcpy(out + *pos, s, n + 1);
    *pos += n;
    return true;
}

/* The full object key of @p key ("" = the prefix itself) into @p out. */
static int full_key(const s3_t *s, const char *key, char *out, size_t cap) {
    int n;
    if (!s->prefix[0])
        n = snprintf(out, cap, "%s", key);
    else if (!key[0])
        n = snprintf(out, cap, "%s", s->prefix);
    else
        n = snprintf(out, cap, "%s/%s", s->prefix, key);
    return n < 0 || (size_t)n >= cap ? WEIR_EINVAL : 0;
}

/* ---- requests ---------------------------------------------------------------------------- */

typedef struct req {
    const char *op;      /* "put", "get", ... for messages */
    const char *method;  /* GET PUT POST DELETE HEAD */
    const char *key;     /* full object key, or NULL for a bucket request */
    const char *query;   /* canonical query string (no '?') or NULL */
    const char *headers; /* extra "Name: value" lines separated by '\n', or NULL */
    /* request body: memory, or a range of a file */
    bool has_body;
    const uint8_t *mem;
    int fd;
    uint64_t off, len;
    /* answer: a 2xx body to @p out_fd when >= 0, else into memory up to max_mem bytes */
    int out_fd;
    size_t max_mem;
    _Atomic uint64_t *counter; /* the env's request counter of this kind */
} req_t;

typedef struct resp {
    long status;
    bool have_len;
    uint64_t content_len;
    char etag[256];
    uint8_t *buf;
    size_t len, cap, max;
    bool over;     /* the memory body exceeded its bound */
    int out_fd;    /* file sink for a 2xx body (-1: memory) */
    int write_err; /* errno of a failed write to out_fd */
    uint64_t written;
    /* upload cursor */
    const req_t *rq;
    uint64_t sent;
} resp_t;

static size_t on_header(char *p, size_t size, size_t n, void *arg) {
    resp_t *r = arg;
    size_t len = size * n;
    if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
        const char *sp = memchr(p, ' ', len);
        r->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        r->have_len = false;
        r->etag[0] = '\0';
        return len;
    }
    const char *colon = memchr(p, ':', len);
    if (!colon)
        return len;
    size_t name_len = (size_t)(colon - p);
    const char *v = colon + 1;
    const char *end = p + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    size_t vlen = (size_t)(end - v);
    if (name_len == 14 && strncasecmp(p, "content-length", 14) == 0) {
        char tmp[32];
        if (vlen > 0 && vlen < sizeof tmp) {
            memcpy(tmp, v, vlen);
            tmp[vlen] = '\0';
            char *e = NULL;
            unsigned long long x = strtoull(tmp, &e, 10);
            if (e && *e == '\0') {
                r->content_len = x;
                r->have_len = true;
            }
        }
    } else if (name_len == 4 && strncasecmp(p, "etag", 4) == 0 && vlen < sizeof r->etag) {
        memcpy(r->etag, v, vlen);
        r->etag[vlen] = '\0';
    }
    /* a 2xx body bounded in memory: refuse early when the server announces more */
    if (r->have_len && r->status >= 200 && r->status < 300 && r->out_fd < 0 &&
        r->rq->max_mem != SIZE_MAX && r->content_len > r->max) {
        r->over = true;
        return 0; /* aborts the transfer (CURLE_WRITE_ERROR) */
    }
    return len;
}

static size_t on_write(char *p, size_t size, size_t n, void *arg) {
    resp_t *r = arg;
    size_t len = size * n;
    bool ok = r->status >= 200 && r->status < 300;
    if (ok && r->out_fd >= 0) {
        size_t done = 0;
        while (done < len) {
            ssize_t w = write(r->out_fd, p + done, len - done);
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                r->write_err = errno;
                return 0;
            }
            done += (size_t)w;
        }
        r->written += len;
        return len;
    }
    size_t max = ok ? r->max : ERR_BODY_MAX;
    if (r->len + len > max) {
        r->over = true;
        return 0;
    }
    if (r->len + len + 1 > r->cap) {
        size_t nc = r->cap ? r->cap : 4096;
        while (nc < r->len + len + 1)
            nc *= 2;
        uint8_t *b = realloc(r->buf, nc);
        if (!b)
            return 0;
        r->buf = b;
        r->cap = nc;
    }
    memcpy(r->buf + r->len, p, len);
    r->len += len;
    r->buf[r->len] = '\0';
    return len;
}

static size_t on_read(char *p, size_t size, size_t n, void *arg) {
    resp_t *r = arg;
    const req_t *rq = r->rq;
    uint64_t left = rq->len - r->sent;
    size_t want = size * n;
    if (want > left)
        want = (size_t)left;
    if (want == 0)
        return 0;
    if (rq->mem) {
        memcpy(p, rq->mem + r->sent, want);
    } else {
        ssize_t got;
        do
            got = pread(rq->fd, p, want, (off_t)(rq->off + r->sent));
        while (got < 0 && errno == EINTR);
        if (got <= 0)
            return CURL_READFUNC_ABORT;
        want = (size_t)got;
    }
    r->sent += want;
    return want;
}

/* SHA-256 (hex) of the request body. */
static int body_sha256(const req_t *rq, char out[65]) {
    if (!rq->has_body || rq->len == 0) {
        memcpy(out, EMPTY_SHA256, 65);
        return 0;
    }
    if (rq->mem) {
        weir_sha256_hex(rq->mem, rq->len, out);
        return 0;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        return WEIR_ENOMEM;
    }
    enum { CHUNK = 256 << 10 };
    uint8_t *buf = malloc(CHUNK);
    int rc = buf ? 0 : WEIR_ENOMEM;
    for (uint64_t done = 0; rc == 0 && done < rq->len;) {
        size_t want = rq->len - done < CHUNK ? (size_t)(rq->len - done) : CHUNK;
        ssize_t got = pread(rq->fd, buf, want, (off_t)(rq->off + done));
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            rc = WEIR_EIO;
            break;
        }
        EVP_DigestUpdate(ctx, buf, (size_t)got);
        done += (uint64_t)got;
    }
    unsigned char md[32];
    unsigned int mdlen = 0;
    if (rc == 0 && EVP_DigestFinal_ex(ctx, md, &mdlen) == 1)
        weir_hex_encode(md, 32, out);
    free(buf);
    EVP_MD_CTX_free(ctx);
    return rc;
}

static bool transient_curl(CURLcode c) {
    switch (c) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_WEIRD_SERVER_REPLY:
        return true;
    default:
        return false;
    }
}

static void backoff(const weir_s3_settings_t *cfg, uint32_t attempt) {
    int64_t ms = cfg->retry_initial_ms > 0 ? cfg->retry_initial_ms : 1;
    for (uint32_t i = 1; i < attempt && ms < cfg->retry_max_ms; i++)
        ms *= 2;
    if (ms > cfg->retry_max_ms)
        ms = cfg->retry_max_ms;
    uint32_t r = 0;
    if (weir_random_bytes(&r, sizeof r) != 0)
        r = (uint32_t)weir_now_ns();
    /* "equal jitter": half the backoff fixed, half random */
    int64_t ns = ms * 1000000 / 2 + (int64_t)((double)r / 4294967296.0 * (double)ms * 500000.0);
    weir_sleep_ns(ns);
}

/* The "s3://bucket/key" of a request for messages. */
static void req_uri(const s3_t *s, const req_t *rq, char *out, size_t cap) {
    if (rq->key && rq->key[0])
        snprintf(out, cap, "s3://%s/%s", s->bucket, rq->key);
    else if (s->prefix[0])
        snprintf(out, cap, "s3://%s/%s", s->bucket, s->prefix);
    else
        snprintf(out, cap, "s3://%s", s->bucket);
}

/* One error line for an HTTP answer that is not 2xx. */
static int http_error(const s3_t *s, const req_t *rq, const resp_t *r, uint32_t attempts,
                      char *errstr, size_t errlen) {
    char uri[WEIR_STORAGE_URI_MAX + 16];
    req_uri(s, rq, uri, sizeof uri);
    char code[128] = "", msg[512] = "";
    if (r->buf && r->len)
        weir__s3_xml_error((const char *)r->buf, r->len, code, sizeof code, msg, sizeof msg);
    long st = r->status;
    if (st == 404 && strcmp(code, "NoSuchBucket") == 0)
        return weir_errf(errstr, errlen, WEIR_ECONFIG,
                         "%s %s: bucket %s does not exist: create it or fix the bucket in the "
                         "location",
                         rq->op, uri, s->bucket);
    if (st == 404 && (code[0] == '\0' || strcmp(code, "NoSuchKey") == 0))
        return WEIR_ENOTFOUND; /* no line: absence is an answer */
    if (st == 403 &&
        (code[0] == '\0' || strcmp(code, "InvalidAccessKeyId") == 0 ||
         strcmp(code, "SignatureDoesNotMatch") == 0 || strcmp(code, "InvalidToken") == 0))
        return weir_errf(errstr, errlen, WEIR_ECONFIG,
                         "%s %s: the credentials are refused (s3.access-key / s3.secret-key)%s%s",
                         rq->op, uri, code[0] ? ": " : "", code);
    if (st == 403)
        return weir_errf(errstr, errlen, WEIR_ECONFIG,
                         "%s %s: access denied (%s%s%s): give s3.access-key access to bucket %s",
                         rq->op, uri, code, msg[0] ? ": " : "", msg, s->bucket);
    if (st >= 500 || st == 429)
        return weir_errf(errstr, errlen, WEIR_EIO, "%s %s: HTTP %ld %s%s%s (after %u attempts)",
                         rq->op, uri, st, code, msg[0] ? ": " : "", msg, attempts);
    return weir_errf(errstr, errlen, WEIR_EIO, "%s %s: HTTP %ld %s%s%s", rq->op, uri, st, code,
                     msg[0] ? ": " : "", msg);
}

/* Performs @p rq with retries. @returns 0 with @p r holding a 2xx answer (body in r->buf or
 * written to rq->out_fd), WEIR_ENOTFOUND (404 NoSuchKey, no line), or an error with one line.
 * The caller frees r->buf. */
static int perform(s3_t *s, const req_t *rq, resp_t *r, char *errstr, size_t errlen) {
    const weir_s3_settings_t *cfg = &s->env->s3;
    memset(r, 0, sizeof *r);
    r->rq = rq;
    r->out_fd = rq->out_fd;
    r->max = rq->max_mem;

    char sha[65];
    if (body_sha256(rq, sha) != 0) {
        char uri[WEIR_STORAGE_URI_MAX + 16];
        req_uri(s, rq, uri, sizeof uri);
        return weir_errf(errstr, errlen, WEIR_EIO, "%s %s: cannot read the local data: %s", rq->op,
                         uri, strerror(errno));
    }

    /* URL */
    size_t ucap =
        strlen(s->base_url) + 3 * WEIR_STORAGE_URI_MAX + 64 + (rq->query ? strlen(rq->query) : 0);
    char *url = malloc(ucap);
    if (!url)
        return weir_errf(errstr, errlen, WEIR_ENOMEM, "%s: out of memory", rq->op);
    size_t pos = 0;
    bool fits =
        put_str(s->base_url, url, ucap, &pos) && put_str("/", url, ucap, &pos) &&
        (!rq->key || enc(rq->key, true, url, ucap, &pos)) &&
        (!rq->query || (put_str("?", url, ucap, &pos) && put_str(rq->query, url, ucap, &pos)));
    if (!fits) {
        free(url);
        return weir_errf(errstr, errlen, WEIR_EINVAL, "%s: URL too long", rq->op);
    }

    /* headers */
    struct curl_slist *hdrs = NULL;
    char line[128];
    snprintf(line, sizeof line, "x-amz-content-sha256: %s", sha);
    hdrs = curl_slist_append(hdrs, line);
    if (rq->headers) {
        const char *h = rq->headers;
        while (*h) {
            const char *nl = strchr(h, '\n');
            size_t l = nl ? (size_t)(nl - h) : strlen(h);
            char one[256];
            if (l < sizeof one) {
                memcpy(one, h, l);
                one[l] = '\0';
                hdrs = curl_slist_append(hdrs, one);
            }
            h += l + (nl ? 1 : 0);
        }
    }

    char curlerr[CURL_ERROR_SIZE];
    uint32_t max_attempts = cfg->retry_max_attempts ? cfg->retry_max_attempts : 1;
    uint32_t attempt = 0;
    int rc = 0;
    CURLcode cc = CURLE_OK;
    for (;;) {
        attempt++;
        /* a fresh answer per attempt */
        r->status = 0;
        r->have_len = false;
        r->len = 0;
        r->over = false;
        r->write_err = 0;
        r->written = 0;
        r->sent = 0;
        r->etag[0] = '\0';
        if (rq->out_fd >= 0 &&
            (ftruncate(rq->out_fd, 0) != 0 || lseek(rq->out_fd, 0, SEEK_SET) < 0)) {
            rc = weir_errf(errstr, errlen, WEIR_EIO, "%s: cannot rewrite the local file: %s",
                           rq->op, strerror(errno));
            break;
        }
        CURL *h = curl_easy_init();
        if (!h) {
            rc = weir_errf(errstr, errlen, WEIR_ENOMEM, "%s: curl_easy_init failed", rq->op);
            break;
        }
        curlerr[0] = '\0';
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_SHARE, s->shared->share);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curlerr);
        curl_easy_setopt(h, CURLOPT_AWS_SIGV4, s->sigv4);
        curl_easy_setopt(h, CURLOPT_USERNAME, cfg->access_key);
        curl_easy_setopt(h, CURLOPT_PASSWORD, cfg->secret_key);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)cfg->connect_timeout_ms);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)cfg->request_timeout_ms);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 10L);
        if (strcmp(rq->method, "HEAD") == 0) {
            curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
        } else if (rq->has_body) {
            curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
            curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
            curl_easy_setopt(h, CURLOPT_READDATA, r);
            curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)rq->len);
            if (strcmp(rq->method, "PUT") != 0)
                curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq->method);
        } else if (strcmp(rq->method, "GET") != 0) {
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq->method);
        }
        cc = curl_easy_perform(h);
        curl_easy_cleanup(h);

        bool transient = false;
        if (cc == CURLE_OK) {
            if (r->status >= 200 && r->status < 300) {
                rc = 0;
                break;
            }
            transient = r->status >= 500 || r->status == 429;
        } else if (r->over || r->write_err) {
            break; /* handled below */
        } else {
            transient = transient_curl(cc);
        }
        if (!transient || attempt >= max_attempts)
            break;
        weir__storage_count(&s->env->retries, 1);
        backoff(cfg, attempt);
    }
    if (rq->counter)
        weir__storage_count(rq->counter, 1);

    char uri[WEIR_STORAGE_URI_MAX + 16];
    req_uri(s, rq, uri, sizeof uri);
    if (rc != 0) {
        /* set above */
    } else if (cc == CURLE_OK && r->status >= 200 && r->status < 300) {
        rc = 0;
    } else if (r->over && r->status >= 200 && r->status < 300) {
        if (r->have_len)
            rc = weir_errf(errstr, errlen, WEIR_ENOSPACE,
                           "%s %s: is %" PRIu64 " bytes, more than %zu", rq->op, uri,
                           r->content_len, r->max);
        else
            rc = weir_errf(errstr, errlen, WEIR_ENOSPACE, "%s %s: is more than %zu bytes", rq->op,
                           uri, r->max);
    } else if (r->write_err) {
        rc = weir_errf(errstr, errlen, WEIR_EIO, "%s %s: cannot write the local file: %s", rq->op,
                       uri, strerror(r->write_err));
    } else if (cc == CURLE_OK || r->over) {
        rc = http_error(s, rq, r, attempt, errstr, errlen);
    } else if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST) {
        rc = weir_errf(errstr, errlen, WEIR_ENET,
                       "%s %s: cannot reach s3.endpoint %s: %s (%u attempts)", rq->op, uri,
                       cfg->endpoint, curlerr[0] ? curlerr : curl_easy_strerror(cc), attempt);
    } else if (cc == CURLE_OPERATION_TIMEDOUT) {
        /* connect timeout, s3.request-timeout, or the low-speed abort (a frozen server) */
        rc = weir_errf(errstr, errlen, WEIR_ENET,
                       "%s %s: s3.endpoint %s does not answer in time: %s (%u attempts)", rq->op,
                       uri, cfg->endpoint, curlerr[0] ? curlerr : curl_easy_strerror(cc), attempt);
    } else {
        rc = weir_errf(errstr, errlen, transient_curl(cc) ? WEIR_ENET : WEIR_EIO,
                       "%s %s: %s (%u attempts)", rq->op, uri,
                       curlerr[0] ? curlerr : curl_easy_strerror(cc), attempt);
    }
    curl_slist_free_all(hdrs);
    free(url);
    return rc;
}

static req_t req_init(const char *op, const char *method, const char *key,
                      _Atomic uint64_t *counter) {
    return (req_t){.op = op,
                   .method = method,
                   .key = key,
                   .fd = -1,
                   .out_fd = -1,
                   .max_mem = ERR_BODY_MAX,
                   .counter = counter};
}

/* ---- objects ----------------------------------------------------------------------------- */

static int s3_put(weir_storage_t *st, const char *key, const void *data, size_t len, char *errstr,
                  size_t errlen) {
    s3_t *s = impl(st);
    char k[WEIR_STORAGE_URI_MAX];
    if (full_key(s, key, k, sizeof k))
        return weir_errf(errstr, errlen, WEIR_EINVAL, "put %s/%s: key too long", st->uri, key);
    req_t rq = req_init("put", "PUT", k, &s->env->put_requests);
    static const uint8_t empty[1] = {0};
    rq.has_body = true;
    rq.mem = len ? data : empty;
    rq.len = len;
    resp_t r;
    int rc = perform(s, &rq, &r, errstr, errlen);
    free(r.buf);
    if (rc == 0)
        weir__storage_count(&s->env->put_bytes, len);
    return rc == WEIR_ENOTFOUND
               ? weir_errf(errstr, errlen, WEIR_EIO, "put %s/%s: HTTP 404", st->uri, key)
               : rc;
}

static void xml_escape_into(const char *in, char **buf, size_t *len, size_t *cap) {
    for (const char *c = in; *c; c++) {
        const char *rep = NULL;
        char one[2] = {*c, 0};
        switch (*c) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&apos;";
            break;
        default:
            rep = one;
        }
        size_t n = strlen(rep);
        if (*len + n + 1 > *cap) {
            size_t nc = *cap ? *cap * 2 : 4096;
            while (nc < *len + n + 1)
                nc *= 2;
            *buf = realloc(*buf, nc);
            if (!*buf)
                abort();
            *cap = nc;
        }
        memcpy(*buf + *len, rep, n + 1);
        *len += n;
    }
}

static void append(char **buf, size_t *len, size_t *cap, const char *raw) {
    size_t n = strlen(raw);
    if (*len + n + 1 > *cap) {
        size_t nc = *cap ? *cap * 2 : 4096;
        while (nc < *len + n + 1)
            nc *= 2;
        *buf = realloc(*buf, nc);
        if (!*buf)
            abort();
        *cap = nc;
    }
    memcpy(*buf + *len, raw, n + 1);
    *len += n;
}

static void abort_upload(s3_t *s, const char *k, const char *qid) {
    req_t rq = req_init("put_file", "DELETE", k, &s->env->delete_requests);
    char q[1600]; /* "uploadId=" and an id of up to 1535 bytes */
    snprintf(q, sizeof q, "uploadId=%s", qid);
    rq.query = q;
    resp_t r;
    char ignored[256];
    perform(s, &rq, &r, ignored, sizeof ignored);
    free(r.buf);
}

/* A multipart upload of @p fd (@p size bytes) to @p k. */
static int multipart(s3_t *s, const char *k, int fd, uint64_t size, char *errstr, size_t errlen) {
    const weir_s3_settings_t *cfg = &s->env->s3;
    uint64_t part = cfg->part_size ? cfg->part_size : (16u << 20);
    if ((size + part - 1) / part > S3_MAX_PARTS) {
        part = (size + S3_MAX_PARTS - 1) / S3_MAX_PARTS;
        part = (part + (1u << 20) - 1) & ~(uint64_t)((1u << 20) - 1);
    }
    uint64_t nparts = size == 0 ? 1 : (size + part - 1) / part;

    req_t rq = req_init("put_file", "POST", k, &s->env->put_requests);
    rq.query = "uploads=";
    rq.has_body = true;
    static const uint8_t empty[1] = {0};
    rq.mem = empty;
    rq.len = 0;
    rq.max_mem = WEIR__S3_XML_MAX;
    resp_t r;
    int rc = perform(s, &rq, &r, errstr, errlen);
    char id[512];
    if (rc == 0 && weir__s3_xml_upload_id((const char *)r.buf, r.len, id, sizeof id) != 0)
        rc = weir_errf(errstr, errlen, WEIR_EPROTO,
                       "put_file s3://%s/%s: the answer to CreateMultipartUpload has no UploadId",
                       s->bucket, k);
    free(r.buf);
    if (rc)
        return rc == WEIR_ENOTFOUND ? weir_errf(errstr, errlen, WEIR_EIO,
                                                "put_file s3://%s/%s: HTTP 404", s->bucket, k)
                                    : rc;
    char qid[1536];
    size_t qpos = 0;
    if (!enc(id, false, qid, sizeof qid, &qpos))
        return weir_errf(errstr, errlen, WEIR_EPROTO, "put_file s3://%s/%s: UploadId too long",
                         s->bucket, k);

    char *body = NULL;
    size_t blen = 0, bcap = 0;
    append(&body, &blen, &bcap, "<CompleteMultipartUpload>");
    for (uint64_t i = 0; i < nparts && rc == 0; i++) {
        uint64_t off = i * part;
        uint64_t len = size - off < part ? size - off : part;
        req_t pr = req_init("put_file", "PUT", k, &s->env->put_requests);
        char q[2048];
        snprintf(q, sizeof q, "partNumber=%" PRIu64 "&uploadId=%s", i + 1, qid);
        pr.query = q;
        pr.has_body = true;
        pr.fd = fd;
        pr.off = off;
        pr.len = len;
        if (len == 0) {
            pr.mem = empty;
        }
        resp_t prr;
        rc = perform(s, &pr, &prr, errstr, errlen);
        free(prr.buf);
        if (rc == WEIR_ENOTFOUND)
            rc = weir_errf(errstr, errlen, WEIR_EIO,
                           "put_file s3://%s/%s: part %" PRIu64 ": the upload is gone (HTTP 404)",
                           s->bucket, k, i + 1);
        if (rc == 0 && !prr.etag[0])
            rc = weir_errf(errstr, errlen, WEIR_EPROTO,
                           "put_file s3://%s/%s: part %" PRIu64 ": the answer has no ETag",
                           s->bucket, k, i + 1);
        if (rc == 0) {
            weir__storage_count(&s->env->put_bytes, len);
            char num[64];
            snprintf(num, sizeof num, "<Part><PartNumber>%" PRIu64 "</PartNumber><ETag>", i + 1);
            append(&body, &blen, &bcap, num);
            xml_escape_into(prr.etag, &body, &blen, &bcap);
            append(&body, &blen, &bcap, "</ETag></Part>");
        }
    }
    append(&body, &blen, &bcap, "</CompleteMultipartUpload>");
    if (rc == 0) {
        req_t cr = req_init("put_file", "POST", k, &s->env->put_requests);
        char q[2048];
        snprintf(q, sizeof q, "uploadId=%s", qid);
        cr.query = q;
        cr.headers = "Content-Type: application/xml";
        cr.has_body = true;
        cr.mem = (const uint8_t *)body;
        cr.len = blen;
        cr.max_mem = WEIR__S3_XML_MAX;
        resp_t crr;
        rc = perform(s, &cr, &crr, errstr, errlen);
        /* a 200 answer may still carry an <Error> (S3 reports late failures that way) */
        char code[128], msg[512];
        if (rc == 0 && crr.len &&
            weir__s3_xml_error((const char *)crr.buf, crr.len, code, sizeof code, msg,
                               sizeof msg) == 0)
            rc = weir_errf(errstr, errlen, WEIR_EIO,
                           "put_file s3://%s/%s: CompleteMultipartUpload failed: %s: %s", s->bucket,
                           k, code, msg);
        if (rc == WEIR_ENOTFOUND)
            rc = weir_errf(errstr, errlen, WEIR_EIO,
                           "put_file s3://%s/%s: CompleteMultipartUpload: HTTP 404", s->bucket, k);
        free(crr.buf);
    }
    free(body);
    if (rc)
        abort_upload(s, k, qid);
    return rc;
}

static int s3_put_file(weir_storage_t *st, const char *key, const char *path, uint64_t *size,
                       char *errstr, size_t errlen) {
    s3_t *s = impl(st);
    char k[WEIR_STORAGE_URI_MAX];
    if (full_key(s, key, k, sizeof k))
        return weir_errf(errstr, errlen, WEIR_EINVAL, "put_file %s/%s: key too long", st->uri, key);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return weir_errf(errstr, errlen, errno == ENOENT ? WEIR_ENOTFOUND : WEIR_EIO,
                         "put_file s3://%s/%s: cannot open %s: %s", s->bucket, k, path,
                         strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return weir_errf(errstr, errlen, WEIR_EIO, "put_file s3://%s/%s: %s is not a regular file",
                         s->bucket, k, path);
    }
    uint64_t n = (uint64_t)sb.st_size;
    int rc;
    if (n >= s->env->s3.multipart_threshold) {
        rc = multipart(s, k, fd, n, errstr, errlen);
    } else {
        req_t rq = req_init("put_file", "PUT", k, &s->env->put_requests);
        static const uint8_t empty[1] = {0};
        rq.has_body = true;
        rq.fd = fd;
        rq.len = n;
        if (n == 0)
            rq.mem = empty;
        resp_t r;
        rc = perform(s, &rq, &r, errstr, errlen);
        free(r.buf);
        if (rc == WEIR_ENOTFOUND)
            rc = weir_errf(errstr, errlen, WEIR_EIO, "put_file s3://%s/%s: HTTP 404", s->bucket, k);
        if (rc == 0)
            weir__storage_count(&s->env->put_bytes, n);
    }
    close(fd);
    if (rc == 0 && size)
        *size = n;
    return rc;
}

static int s3_get(weir_storage_t *st, const char *key, size_t max_len, uint8_t **data, size_t *len,
                  char *errstr, size_t errlen) {
    s3_t *s = impl(st);
    char k[WEIR_STORAGE_URI_MAX];
    if (full_key(s, key, k, sizeof k))
        return weir_errf(errstr, errlen, WEIR_EINVAL, "get %s/%s: key too long", st->uri, key);
    req_t rq = req_init("get", "GET", k, &s->env->get_requests);
    rq.max_mem = max_len == SIZE_MAX ? SIZE_MAX - 1 : max_len;
    resp_t r;
    int rc = perform(s, &rq, &r, errstr, errlen);
    if (rc) {
        free(r.buf);
        return rc;
    }
    if (!r.buf) {
        r.buf = malloc(1);
        if (!r.buf)
            return weir_errf(errstr, errlen, WEIR_ENOMEM, "get %s/%s: out of memory", st->uri, key);
        r.buf[0] = 0;
    }
    weir__storage_count(&s->env->get_bytes, r.len);
    *data = r.buf;
    *len = r.len;
    return 0;
}

static int s3_get_file(weir_storage_t *st, const char *key, const char *path, uint64_t *size,
                       char *errstr, size_t errlen) {
    s3_t *s = impl(st);
    char k[WEIR_STORAGE_URI_MAX];
    if (full_key(s, key, k, sizeof k))
        return weir_errf(errstr, errlen, WEIR_EINVAL, "get_file %s/%s: key too long", st->uri, key);
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp)
        return weir_errf(errstr, errlen, WEIR_ENOMEM, "get_file: out of memory");
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", 12);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        return weir_errf(errstr, errlen, WEIR_EIO, "get_file s3://%s/%s: cannot create %s: %s",
                         s->bucket, k, path, strerror(e));
    }
    req_t rq = req_init("get_file", "GET", k, &s->env->get_requests);
    rq.out_fd = fd;
    resp_t r;
    int rc = perform(s, &rq, &r, errstr, errlen);
    free(r.buf);
    if (rc == 0 && (fchmod(fd, 0644) != 0 || fsync(fd) != 0))
        rc = weir_errf(errstr, errlen, WEIR_EIO, "get_file s3://%s/%s: cannot write %s: %s",
                       s->bucket, k, tmp, strerror(errno));
    if (close(fd) != 0 && rc == 0)
        rc = weir_errf(errstr, errlen, WEIR_EIO, "get_file s3://%s/%s: cannot write %s: %s",
                       s->bucket, k, tmp, strerror(errno));
    if (rc == 0 && rename(tmp, path) != 0)
        rc = weir_errf(errstr, errlen, WEIR_EIO, "get_file s3://%s/%s: cannot rename %s to %s: %s",
                       s->bucket, k, tmp, path, strerror(errno));
    if (rc == 0) {
        char *dir = strdup(path);
        char *slash = dir ? strrchr(dir, '/') : NULL;
        if (slash) {
            if (slash == dir)
                slash[1] = '\0';
            else
                *slash = '\0';
            weir_fsync_dir(dir);
        } else if (dir) {
            weir_fsync_dir(".");
        }
        free(dir);
        weir__storage_count(&s->env->get_bytes, r.written);
        if (size)
            *size = r.written;
    } else {
        unlink(tmp);
    }
    free(tmp);
    return rc;
}

static int s3_stat(weir_storage_t *st, const char *key, uint64_t *size, char *errstr,
                   size_t errlen) {
    s3_t *s = impl(st);
    char k[WEIR_STORAGE_URI_MAX];
    if (full_key(s, key, k, sizeof k))
        return weir_errf(errstr, errlen, WEIR_EINVAL, "stat %s/%s: key too long", st->uri, key);
    req_t rq = req_init("stat", "HEAD", k, &s->env->stat_requests);
    rq.max_mem = SIZE_MAX; /* no body: Content-Length is the object's size, not a bound */
    resp_t r;
    int rc = perform(s, &rq, &r, errstr, errlen);
    free(r.buf);
    if (rc == 0 && !r.have_len)
        rc = weir_errf(errstr, errlen, WEIR_EPROTO,
                       "stat s3://%s/%s: the answer to HEAD has no Content-Length", s->bucket, k);
    if (rc == 0 && size)
        *size = r.content_len;
    return rc;
}

/* ---- list and delete ----------------------------------------------------------------------- */

/* Walks every ListObjectsV2 page under the directory @p prefix (relative to the root, "" = the
 * root); @p cb gets each entry's name relative to it. */
typedef int (*page_fn)(void *arg, const char *name, bool is_dir, uint64_t size);

/* Whether some object's key starts with @p dir (a full key ending with '/'): a "directory" of a
 * non-recursive list is one only then. SeaweedFS lists an emptied folder as a CommonPrefix until
 * its asynchronous cleanup removes it; S3 never does, and answers this at the cost of one request
 * per directory listed. @returns 1, 0, or an error. */
static int dir_has_objects(s3_t *s, const char *op, const char *dir, char *errstr, size_t errlen) {
    size_t qcap = 3 * strlen(dir) + 64;
    char *q = malloc(qcap);
    if (!q)
        return weir_errf(errstr, errlen, WEIR_ENOMEM, "%s: out of memory", op);
    size_t pos = 0;
    q[0] = '\0';
    put_str("list-type=2&max-keys=1&prefix=", q, qcap, &pos);
    enc(dir, false, q, qcap, &pos);
    req_t rq = req_init(op, "GET", NULL, &s->env->list_requests);
    rq.query = q;
    rq.max_mem = WEIR__S3_XML_MAX;
    resp_t r;
    int rc = perform(s, &rq, &r, errstr, errlen);
    free(q);
    weir__s3_list_page_t page;
    if (rc == 0 && weir__s3_xml_list((const char *)r.buf, r.len, &page) != 0)
        rc = weir_errf(errstr, errlen, WEIR_EPROTO,
                       "%s s3://%s/%s: the answer to ListObjectsV2 is not a ListBucketResult", op,
                       s->bucket, dir);
    free(r.buf);
    if (rc)
        return rc == WEIR_ENOTFOUND ? 0 : rc;
    int found = 0;
    for (size_t i = 0; i < page.n && !found; i++) {
        size_t kl = strlen(page.entries[i].key);
        found = !page.entries[i].is_dir && kl > 0 && page.entries[i].key[kl - 1] != '/';
    }
    bool more = page.truncated;
    weir__s3_list_page_free(&page);
    return found || more; /* a marker object first, more keys after it: assume an object */
}

static int list_pages(s3_t *s, const char *op, const char *prefix, bool recursive, page_fn cb,
                      void *arg, char *errstr, size_t errlen) {
    char p[WEIR_STORAGE_URI_MAX];
    if (full_key(s, prefix, p, sizeof p) || strlen(p) + 2 > sizeof p)
        return weir_errf(errstr, errlen, WEIR_EINVAL, "%s: prefix too long", op);
    if (p[0])
        strcat(p, "/");
    size_t plen = strlen(p);
    char *token = NULL;
    int rc = 0;
    for (;;) {
        size_t qcap = 3 * (plen + (token ? strlen(token) : 0)) + 256;
        char *q = malloc(qcap);
        if (!q) {
            rc = weir_errf(errstr, errlen, WEIR_ENOMEM, "%s: out of memory", op);
            break;
        }
        size_t pos = 0;
        q[0] = '\0';
        if (token) {
            put_str("continuation-token=", q, qcap, &pos);
            enc(token, false, q, qcap, &pos);
            put_str("&", q, qcap, &pos);
        }
        if (!recursive)
            put_str("delimiter=%2F&", q, qcap, &pos);
        put_str("list-type=2&max-keys=1000&prefix=", q, qcap, &pos);
        enc(p, false, q, qcap, &pos);
        req_t rq = req_init(op, "GET", NULL, &s->env->list_requests);
        rq.key = NULL;
        rq.query = q;
        rq.max_mem = WEIR__S3_XML_MAX;
        resp_t r;
        rc = perform(s, &rq, &r, errstr, errlen);
        free(q);
        if (rc == WEIR_ENOTFOUND)
            rc = weir_errf(errstr, errlen, WEIR_ECONFIG,
                           "%s s3://%s: bucket %s does not exist: create it or fix the bucket "
                           "in the location",
                           op, s->bucket, s->bucket);
        if (rc) {
            free(r.buf);
            break;
        }
        weir__s3_list_page_t page;
        if (weir__s3_xml_list((const char *)r.buf, r.len, &page) != 0) {
            free(r.buf);
            rc = weir_errf(errstr, errlen, WEIR_EPROTO,
                           "%s s3://%s/%s: the answer to ListObjectsV2 is not a ListBucketResult",
                           op, s->bucket, p);
            break;
        }
        free(r.buf);
        for (size_t i = 0; i < page.n && rc == 0; i++) {
            char *key = page.entries[i].key;
            if (strncmp(key, p, plen) != 0)
                continue;
            char *name = key + plen;
            size_t nl = strlen(name);
            if (page.entries[i].is_dir && nl > 0 && name[nl - 1] == '/')
                name[--nl] = '\0';
            if (nl == 0 || name[nl - 1] == '/')
                continue; /* a "directory marker" object, not an object of ours */
            if (page.entries[i].is_dir) {
                char saved = name[nl];
                name[nl] = '/'; /* the full prefix again, for the probe */
                int has = dir_has_objects(s, op, key, errstr, errlen);
                name[nl] = saved;
                if (has < 0) {
                    rc = has;
                    break;
                }
                if (!has)
                    continue;
            }
            rc = cb(arg, name, page.entries[i].is_dir, page.entries[i].size);
        }
        free(token);
        token = page.next_token;
        page.next_token = NULL;
        bool more = page.truncated;
        weir__s3_list_page_free(&page);
        if (rc || !more)
            break;
    }
    free(token);
    return rc;
}

static int s3_list(weir_storage_t *st, const char *prefix, bool recursive, weir_storage_list_fn fn,
                   void *arg, char *errstr, size_t errlen) {
    return list_pages(impl(st), "list", prefix, recursive, fn, arg, errstr, errlen);
}

static int s3_del(weir_storage_t *st, const char *key, char *errstr, size_t errlen) {
    s3_t *s = impl(st);
    char k[WEIR_STORAGE_URI_MAX];
    if (full_key(s, key, k, sizeof k))
        return weir_errf(errstr, errlen, WEIR_EINVAL, "delete %s/%s: key too long", st->uri, key);
    req_t rq = req_init("delete", "DELETE", k, &s->env->delete_requests);
    resp_t r;
    int rc = perform(s, &rq, &r, errstr, errlen);
    free(r.buf);
    return rc == WEIR_ENOTFOUND ? 0 : rc;
}

typedef struct keyvec {
    char **keys;
    size_t n, cap;
    const char *base; /* full prefix with '/' the names are relative to */
} keyvec_t;

static int collect(void *arg, const char *name, bool is_dir, uint64_t size) {
    (void)is_dir, (void)size;
    keyvec_t *v = arg;
    if (weir_array_grow((void **)&v->keys, &v->cap, v->n + 1, sizeof *v->keys, 64) != 0)
        return WEIR_ENOMEM;
    size_t bl = strlen(v->base), nl = strlen(name);
    char *k = malloc(bl + nl + 1);
    if (!k)
        return WEIR_ENOMEM;
    memcpy(k, v->base, bl);
    memcpy(k + bl, name, nl + 1);
    v->keys[v->n++] = k;
    return 0;
}

/* One DeleteObjects request for keys [from, to). */
static int delete_batch(s3_t *s, char **keys, size_t n, char *errstr, size_t errlen) {
    char *body = NULL;
    size_t blen = 0, bcap = 0;
    append(&body, &blen, &bcap, "<Delete><Quiet>true</Quiet>");
    for (size_t i = 0; i < n; i++) {
        append(&body, &blen, &bcap, "<Object><Key>");
        xml_escape_into(keys[i], &body, &blen, &bcap);
        append(&body, &blen, &bcap, "</Key></Object>");
    }
    append(&body, &blen, &bcap, "</Delete>");
    unsigned char md5[EVP_MAX_MD_SIZE];
    unsigned int md5_len = 0;
    unsigned char b64[32] = "";
    if (EVP_Digest(body, blen, md5, &md5_len, EVP_md5(), NULL) == 1 && md5_len == 16)
        EVP_EncodeBlock(b64, md5, 16);
    char hdrs[128];
    snprintf(hdrs, sizeof hdrs, "Content-Type: application/xml\nContent-MD5: %s", b64);
    req_t rq = req_init("delete_prefix", "POST", NULL, &s->env->delete_requests);
    rq.query = "delete=";
    rq.headers = hdrs;
    rq.has_body = true;
    rq.mem = (const uint8_t *)body;
    rq.len = blen;
    rq.max_mem = WEIR__S3_XML_MAX;
    resp_t r;
    int rc = perform(s, &rq, &r, errstr, errlen);
    if (rc == WEIR_ENOTFOUND)
        rc = weir_errf(errstr, errlen, WEIR_EIO, "delete_prefix s3://%s: HTTP 404", s->bucket);
    if (rc == 0 && r.len) {
        char key[WEIR_STORAGE_URI_MAX], code[128];
        int errs = weir__s3_xml_delete_result((const char *)r.buf, r.len, key, sizeof key, code,
                                              sizeof code);
        if (errs < 0)
            rc = weir_errf(errstr, errlen, WEIR_EPROTO,
                           "delete_prefix s3://%s: the answer to DeleteObjects is not a "
                           "DeleteResult",
                           s->bucket);
        else if (errs > 0)
            rc = weir_errf(errstr, errlen, WEIR_EIO,
                           "delete_prefix s3://%s/%s: not deleted: %s (%d keys of the batch)",
                           s->bucket, key, code, errs);
    }
    free(r.buf);
    free(body);
    return rc;
}

static int s3_del_prefix(weir_storage_t *st, const char *prefix, char *errstr, size_t errlen) {
    s3_t *s = impl(st);
    char p[WEIR_STORAGE_URI_MAX];
    if (full_key(s, prefix, p, sizeof p) || strlen(p) + 2 > sizeof p)
        return weir_errf(errstr, errlen, WEIR_EINVAL, "delete_prefix %s/%s: prefix too long",
                         st->uri, prefix);
    char base[WEIR_STORAGE_URI_MAX];
    snprintf(base, sizeof base, "%s%s", p, p[0] ? "/" : "");
    keyvec_t v = {.base = base};
    int rc = list_pages(s, "delete_prefix", prefix, true, collect, &v, errstr, errlen);
    if (rc == 0 && p[0]) { /* the prefix may also name an object itself */
        keyvec_t self = {.base = ""};
        if (collect(&self, p, false, 0) == 0) {
            /* appended to the first batch: deleting an absent key is not an error */
            if (weir_array_grow((void **)&v.keys, &v.cap, v.n + 1, sizeof *v.keys, 64) == 0)
                v.keys[v.n++] = self.keys[0];
            else
                free(self.keys[0]);
            free(self.keys);
        }
    }
    for (size_t i = 0; rc == 0 && i < v.n; i += S3_DELETE_BATCH) {
        size_t n = v.n - i < S3_DELETE_BATCH ? v.n - i : S3_DELETE_BATCH;
        rc = delete_batch(s, v.keys + i, n, errstr, errlen);
    }
    for (size_t i = 0; i < v.n; i++)
        free(v.keys[i]);
    free(v.keys);
    return rc;
}

/* ---- open / close ------------------------------------------------------------------------ */

static void s3_close(void *p) {
    s3_t *s = p;
    if (!s)
        return;
    free(s->bucket);
    free(s->prefix);
    free(s->base_url);
    free(s->sigv4);
    free(s);
}

static const weir_storage_ops_t S3_OPS = {
    .put = s3_put,
    .put_file = s3_put_file,
    .get = s3_get,
    .get_file = s3_get_file,
    .stat = s3_stat,
    .list = s3_list,
    .del = s3_del,
    .del_prefix = s3_del_prefix,
    .close = s3_close,
};

static char *xasprintf(const char *fmt, const char *a, const char *b, const char *c) {
    int n = snprintf(NULL, 0, fmt, a, b, c);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s)
        snprintf(s, (size_t)n + 1, fmt, a, b, c);
    return s;
}

int weir__storage_s3_open(weir_storage_t *st, const char *bucket, const char *prefix, char *errstr,
                          size_t errlen) {
    const weir_s3_settings_t *cfg = &st->env->s3;
    const char *uri = st->uri ? st->uri : bucket;
    if (!cfg->endpoint || !cfg->endpoint[0])
        return weir_errf(errstr, errlen, WEIR_ECONFIG,
                         "%s: s3.endpoint is not set: set it to the S3 server's URL "
                         "(e.g. http://127.0.0.1:8333)",
                         uri);
    if (!cfg->access_key || !cfg->access_key[0])
        return weir_errf(errstr, errlen, WEIR_ECONFIG,
                         "%s: s3.access-key is not set: set s3.access-key and s3.secret-key", uri);
    if (!cfg->secret_key || !cfg->secret_key[0])
        return weir_errf(errstr, errlen, WEIR_ECONFIG,
                         "%s: s3.secret-key is not set: set s3.access-key and s3.secret-key", uri);
    const char *ep = cfg->endpoint;
    const char *sep = strstr(ep, "://");
    if (!sep || (strncmp(ep, "http://", 7) != 0 && strncmp(ep, "https://", 8) != 0) || !sep[3])
        return weir_errf(errstr, errlen, WEIR_ECONFIG,
                         "%s: s3.endpoint %s: not an http:// or https:// URL", uri, ep);
    s3_shared_t *sh = shared_get(st->env);
    if (!sh)
        return weir_errf(errstr, errlen, WEIR_ENOMEM, "%s: cannot initialize libcurl", uri);

    s3_t *s = calloc(1, sizeof *s);
    if (!s)
        return weir_errf(errstr, errlen, WEIR_ENOMEM, "%s: out of memory", uri);
    s->env = st->env;
    s->shared = sh;
    s->bucket = strdup(bucket);
    s->prefix = strdup(prefix ? prefix : "");
    /* endpoint without trailing '/' */
    char *e = strdup(ep);
    if (e) {
        size_t el = strlen(e);
        while (el > (size_t)(sep - ep) + 3 && e[el - 1] == '/')
            e[--el] = '\0';
    }
    if (e && cfg->path_style) {
        s->base_url = xasprintf("%s/%s%s", e, bucket, "");
    } else if (e) {
        /* scheme://bucket.host[:port][/path] */
        size_t scheme_len = (size_t)(sep - ep) + 3;
        char scheme[16];
        snprintf(scheme, sizeof scheme, "%.*s", (int)scheme_len, e);
        s->base_url = xasprintf("%s%s.%s", scheme, bucket, e + scheme_len);
    }
    free(e);
    s->sigv4 = xasprintf("aws:amz:%s:s3%s%s",
                         cfg->region && cfg->region[0] ? cfg->region : "us-east-1", "", "");
    if (!s->bucket || !s->prefix || !s->base_url || !s->sigv4) {
        s3_close(s);
        return weir_errf(errstr, errlen, WEIR_ENOMEM, "%s: out of memory", uri);
    }
    st->impl = s;
    st->ops = &S3_OPS;
    return 0;
}
