/* The blocking Kafka protocol client of kproto.h: bootstrap parsing, TCP connections with a
 * deadline on every step, the transaction-coordinator cache, and the retry rules of EndTxn,
 * DescribeTransactions and ListTransactions. The bytes are kproto.c's.
 *
 * Owns: one TCP connection per broker host:port (reused across calls), the map transactional id
 * -> coordinator host:port (learnt with FindCoordinator key type 1, forgotten on
 * NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE or an I/O error with that coordinator), one
 * response buffer (grown to the largest response, at most WEIR_KPROTO_MAX_RESPONSE).
 *
 * Invariants: a connection holds no request in flight between calls: it is closed after any
 * failure (timeout, I/O error, malformed or oversized response), so an answer that arrives late
 * can never be read as the answer of a later request; correlation ids are checked by the
 * decoders. Every public call has one deadline (now + timeout_ms) that bounds connect, send,
 * receive and the backoff between retries. Retried until the deadline: I/O errors (the
 * coordinator is looked up again), NOT_COORDINATOR and COORDINATOR_NOT_AVAILABLE (looked up
 * again), CONCURRENT_TRANSACTIONS and COORDINATOR_LOAD_IN_PROGRESS (same coordinator). A request
 * that failed on a reused connection before any answer byte arrived is sent once more on a new
 * connection at once (the broker may have closed an idle connection); every request sent here
 * is safe to repeat (EndTxn with the same producer id and epoch is answered NONE or
 * CONCURRENT_TRANSACTIONS once the first one took effect; the others only read). A malformed
 * answer (WEIR_ECORRUPT) is never retried. Callbacks of list_txns run after every broker
 * answered, outside any I/O, so they may call the client again.
 * Host names are resolved with getaddrinfo, which the deadline does not bound.
 * Threading: one thread at a time per client (no locks). */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/err.h"
#include "common/util.h"
#include "connectors/kafka/kproto.h"

#define REQ_CAP 8192            /* every request we build is far smaller */
#define BACKOFF_MIN_MS 20       /* first wait before a retry, doubled up to ... */
#define BACKOFF_MAX_MS 500      /* ... this */
#define MAX_CACHED_COORDS 4096u /* the coordinator map is cleared when it grows past this */
#define KEY_TYPE_TRANSACTION 1

typedef struct kconn {
    char host[256];
    int port;
    int fd;
} kconn_t;

typedef struct kcoord {
    char txn_id[WEIR_KPROTO_MAX_TXN_ID + 1];
    char host[256];
    int port;
} kcoord_t;

struct weir_kclient {
    weir_kbroker_t *boot; /* the bootstrap list (node_id -1) */
    size_t n_boot;
    char *client_id;
    int timeout_ms;
    int32_t corr;
    kconn_t *conns;
    size_t n_conns, cap_conns;
    kcoord_t *coords;
    size_t n_coords, cap_coords;
    uint8_t *rbuf;
    size_t rcap;
    weir_kclient_hook_fn after_send; /* kill points in tests; may be NULL */
    void *hook_arg;
};

/* ---- bootstrap ---------------------------------------------------------------------------- */

/* One "host:port" or "[v6]:port" (PLAINTEXT:// prefix allowed) into @p b. */
static int parse_server(const char *s, size_t n, weir_kbroker_t *b, char *errstr, size_t errlen) {
    char item[300], buf[300]; /* item: as written (for messages); buf: cut into pieces */
    while (n && (*s == ' ' || *s == '\t'))
        s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n == 0 || n >= sizeof item)
        return weir_errf(errstr, errlen, WEIR_EINVAL,
                         "kafka bootstrap: empty or over-long entry (expected host:port[,...])");
    memcpy(item, s, n);
    item[n] = '\0';
    memcpy(buf, item, n + 1);
    char *p = buf;
    if (!strncasecmp(p, "PLAINTEXT://", 12))
        p += 12;
    else if (strstr(p, "://"))
        return weir_errf(errstr, errlen, WEIR_EINVAL,
                         "kafka bootstrap '%s': only PLAINTEXT listeners are supported", item);
    char *host = p, *colon;
    if (*p == '[') {
        char *close = strchr(p, ']');
        if (!close || close[1] != ':')
            return weir_errf(errstr, errlen, WEIR_EINVAL,
                             "kafka bootstrap '%s': expected [ipv6]:port", item);
        host = p + 1;
        *close = '\0';
        colon = close + 1;
    } else {
        colon = strrchr(p, ':');
        if (!colon || colon == p || strchr(p, ':') != colon)
            return weir_errf(errstr, errlen, WEIR_EINVAL,
                             "kafka bootstrap '%s': expected host:port", item);
        *colon = '\0';
    }
    int64_t port;
    if (weir_parse_int(colon + 1, 1, 65535, &port) != 0)
        return weir_errf(errstr, errlen, WEIR_EINVAL, "kafka bootstrap '%s': port must be 1..65535",
                         item);
    if (!*host || strlen(host) >= sizeof b->host)
        return weir_errf(errstr, errlen, WEIR_EINVAL, "kafka bootstrap '%s': bad host", item);
    b->node_id = -1;
    weir_fmt(b->host, sizeof b->host, "%s", host);
    b->port = (int32_t)port;
    return 0;
}

weir_kclient_t *weir_kclient_new(const char *bootstrap, const char *client_id, int timeout_ms,
                                 char *errstr, size_t errlen) {
    if (!bootstrap || !*bootstrap) {
        weir_errf(errstr, errlen, WEIR_EINVAL, "kafka bootstrap: empty (expected host:port)");
        return NULL;
    }
    if (timeout_ms <= 0) {
        weir_errf(errstr, errlen, WEIR_EINVAL, "kafka client: timeout must be > 0 ms (got %d)",
                  timeout_ms);
        return NULL;
    }
    if (client_id && strlen(client_id) > 1000) {
        weir_errf(errstr, errlen, WEIR_EINVAL, "kafka client: client id longer than 1000 bytes");
        return NULL;
    }
    weir_kclient_t *c = weir_xcalloc(1, sizeof *c);
    c->client_id = weir_xstrdup(client_id ? client_id : "weir");
    c->timeout_ms = timeout_ms;
    size_t cap = 0;
    for (const char *s = bootstrap;;) {
        const char *end = strchr(s, ',');
        size_t n = end ? (size_t)(end - s) : strlen(s);
        if (weir_array_grow((void **)&c->boot, &cap, c->n_boot + 1, sizeof *c->boot, 4) != 0) {
            weir_errf(errstr, errlen, WEIR_ENOMEM, "kafka bootstrap: out of memory");
            weir_kclient_free(c);
            return NULL;
        }
        if (parse_server(s, n, &c->boot[c->n_boot], errstr, errlen) != 0) {
            weir_kclient_free(c);
            return NULL;
        }
        c->n_boot++;
        if (!end)
            break;
        s = end + 1;
    }
    return c;
}

void weir_kclient_set_hook(weir_kclient_t *c, weir_kclient_hook_fn after_send, void *arg) {
    c->after_send = after_send;
    c->hook_arg = arg;
}

void weir_kclient_free(weir_kclient_t *c) {
    if (!c)
        return;
    for (size_t i = 0; i < c->n_conns; i++)
        close(c->conns[i].fd);
    free(c->conns);
    free(c->coords);
    free(c->boot);
    free(c->client_id);
    free(c->rbuf);
    free(c);
}

/* ---- sockets ------------------------------------------------------------------------------ */

static int remaining_ms(int64_t deadline) {
    int64_t left = (deadline - weir_now_ns() + 999999) / 1000000;
    return left <= 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

/* Waits for @p events on @p fd until @p deadline. @returns 0, WEIR_ETIMEDOUT or WEIR_EIO. */
static int wait_fd(int fd, short events, int64_t deadline) {
    for (;;) {
        int ms = remaining_ms(deadline);
        if (ms == 0)
            return WEIR_ETIMEDOUT;
        struct pollfd pfd = {.fd = fd, .events = events};
        int rc = poll(&pfd, 1, ms);
        if (rc > 0)
            return 0; /* readable/writable or an error the next call reports */
        if (rc == 0)
            continue; /* the deadline check above ends it */
        if (errno != EINTR)
            return WEIR_EIO;
    }
}

static int64_t elapsed_ms(int64_t start) {
    return (weir_now_ns() - start) / 1000000;
}

/* A connected non-blocking socket to host:port. */
static int tcp_connect(const char *host, int port, int64_t deadline, int *fd_out, char *errstr,
                       size_t errlen) {
    char portstr[8];
    weir_fmt(portstr, sizeof portstr, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host, portstr, &hints, &res);
    if (gai != 0)
        return weir_errf(errstr, errlen, WEIR_EIO, "kafka %s:%d: cannot resolve host: %s", host,
                         port, gai_strerror(gai));
    int rc = WEIR_EIO;
    weir_errf(errstr, errlen, WEIR_EIO, "kafka %s:%d: no address to connect to", host, port);
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd =
            socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            rc = weir_errf(errstr, errlen, WEIR_EIO, "kafka %s:%d: socket: %s", host, port,
                           strerror(errno));
            continue;
        }
        int err = 0;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            err = errno;
            if (err == EINPROGRESS) {
                rc = wait_fd(fd, POLLOUT, deadline);
                if (rc == WEIR_ETIMEDOUT) {
                    close(fd);
                    rc =
                        weir_errf(errstr, errlen, WEIR_ETIMEDOUT,
                                  "kafka %s:%d: connect: no answer before the timeout", host, port);
                    break;
                }
                socklen_t sl = sizeof err;
                if (rc != 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) != 0)
                    err = errno ? errno : EIO;
            }
        }
        if (err != 0) {
            close(fd);
            rc = weir_errf(errstr, errlen, WEIR_EIO, "kafka %s:%d: connect: %s", host, port,
                           strerror(err));
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        *fd_out = fd;
        rc = 0;
        break;
    }
    freeaddrinfo(res);
    return rc;
}

static int send_all(int fd, const uint8_t *p, size_t n, int64_t deadline) {
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k > 0) {
            p += k;
            n -= (size_t)k;
        } else if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_fd(fd, POLLOUT, deadline);
            if (rc != 0)
                return rc;
        } else if (k < 0 && errno == EINTR) {
            continue;
        } else {
            return WEIR_EIO;
        }
    }
    return 0;
}

/* Reads exactly @p n bytes. *got counts what arrived (to tell "nothing came back" apart).
 * @returns 0, WEIR_ETIMEDOUT, or WEIR_EIO (errno kept; 0 when the broker closed). */
static int recv_all(int fd, uint8_t *p, size_t n, int64_t deadline, size_t *got) {
    while (n) {
        ssize_t k = recv(fd, p, n, 0);
        if (k > 0) {
            p += k;
            n -= (size_t)k;
            *got += (size_t)k;
        } else if (k == 0) {
            errno = 0;
            return WEIR_EIO;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int rc = wait_fd(fd, POLLIN, deadline);
            if (rc != 0)
                return rc;
        } else if (errno != EINTR) {
            return WEIR_EIO;
        }
    }
    return 0;
}

static kconn_t *conn_find(weir_kclient_t *c, const char *host, int port) {
    for (size_t i = 0; i < c->n_conns; i++)
        if (c->conns[i].port == port && !strcmp(c->conns[i].host, host))
            return &c->conns[i];
    return NULL;
}

static void conn_close(weir_kclient_t *c, const char *host, int port) {
    kconn_t *k = conn_find(c, host, port);
    if (!k)
        return;
    close(k->fd);
    *k = c->conns[--c->n_conns];
}

/* One request/response exchange with host:port: the request's bytes in @p req, the response
 * body (after the size) in c->rbuf[0.. *resp_len). @p what names the request in errors. */
static int rpc(weir_kclient_t *c, const char *host, int port, const uint8_t *req, size_t req_len,
               int64_t deadline, const char *what, size_t *resp_len, char *errstr, size_t errlen) {
    int64_t start = weir_now_ns();
    for (int attempt = 0;; attempt++) {
        kconn_t *k = conn_find(c, host, port);
        bool fresh = false;
        if (!k) {
            int fd = -1;
            int rc = tcp_connect(host, port, deadline, &fd, errstr, errlen);
            if (rc != 0)
                return rc;
            if (weir_array_grow((void **)&c->conns, &c->cap_conns, c->n_conns + 1, sizeof *c->conns,
                                4) != 0) {
                close(fd);
                return weir_errf(errstr, errlen, WEIR_ENOMEM, "kafka %s:%d: out of memory", host,
                                 port);
            }
            k = &c->conns[c->n_conns++];
            weir_fmt(k->host, sizeof k->host, "%s", host);
            k->port = port;
            k->fd = fd;
            fresh = true;
        }
        int fd = k->fd;
        uint8_t size_be[4];
        size_t got = 0;
        const char *step = "send";
        int rc = send_all(fd, req, req_len, deadline);
        if (rc == 0 && c->after_send && req_len >= 6) /* the request's api key follows its size */
            c->after_send(c->hook_arg, (int16_t)((uint16_t)req[4] << 8 | req[5]));
        if (rc == 0) {
            step = "receive";
            rc = recv_all(fd, size_be, sizeof size_be, deadline, &got);
        }
        if (rc != 0) {
            int e = errno;
            conn_close(c, host, port);
            if (rc == WEIR_ETIMEDOUT)
                return weir_errf(errstr, errlen, WEIR_ETIMEDOUT,
                                 "kafka %s:%d: %s: no answer within %lld ms", host, port, what,
                                 (long long)elapsed_ms(start));
            if (!fresh && got == 0 && attempt == 0)
                continue; /* a stale reused connection: once more on a new one */
            return weir_errf(errstr, errlen, WEIR_EIO, "kafka %s:%d: %s: %s failed: %s", host, port,
                             what, step, e ? strerror(e) : "connection closed by the broker");
        }
        uint32_t size = (uint32_t)size_be[0] << 24 | (uint32_t)size_be[1] << 16 |
                        (uint32_t)size_be[2] << 8 | size_be[3];
        if (size < 4 || size > WEIR_KPROTO_MAX_RESPONSE) {
            conn_close(c, host, port);
            return weir_errf(errstr, errlen, WEIR_ECORRUPT,
                             "kafka %s:%d: %s: response size %u outside 4..%u bytes", host, port,
                             what, size, (unsigned)WEIR_KPROTO_MAX_RESPONSE);
        }
        if (size > c->rcap) {
            uint8_t *n = realloc(c->rbuf, size);
            if (!n) {
                conn_close(c, host, port);
                return weir_errf(errstr, errlen, WEIR_ENOMEM,
                                 "kafka %s:%d: %s: no memory for a %u-byte response", host, port,
                                 what, size);
            }
            c->rbuf = n;
            c->rcap = size;
        }
        rc = recv_all(fd, c->rbuf, size, deadline, &got);
        if (rc != 0) {
            int e = errno;
            conn_close(c, host, port);
            if (rc == WEIR_ETIMEDOUT)
                return weir_errf(errstr, errlen, WEIR_ETIMEDOUT,
                                 "kafka %s:%d: %s: response incomplete after %lld ms", host, port,
                                 what, (long long)elapsed_ms(start));
            return weir_errf(errstr, errlen, WEIR_EIO, "kafka %s:%d: %s: receive failed: %s", host,
                             port, what, e ? strerror(e) : "connection closed by the broker");
        }
        *resp_len = size;
        return 0;
    }
}

static int32_t next_corr(weir_kclient_t *c) {
    c->corr = c->corr == INT32_MAX ? 1 : c->corr + 1;
    return c->corr;
}

/* A decoder failed: the connection is no longer trusted. */
static int corrupt(weir_kclient_t *c, const char *host, int port, const char *what, char *errstr,
                   size_t errlen) {
    conn_close(c, host, port);
    return weir_errf(errstr, errlen, WEIR_ECORRUPT,
                     "kafka %s:%d: %s: malformed response (or wrong correlation id)", host, port,
                     what);
}

int weir_kclient_api_versions(weir_kclient_t *c, int16_t *error, weir_kproto_api_range_t *ranges,
                              size_t cap, size_t *n, char *errstr, size_t errlen) {
    int64_t deadline = weir_now_ns() + (int64_t)c->timeout_ms * 1000000;
    uint8_t req[REQ_CAP];
    int rc = WEIR_EIO;
    for (size_t i = 0; i < c->n_boot; i++) {
        const weir_kbroker_t *b = &c->boot[i];
        int32_t corr = next_corr(c);
        size_t len, k = weir_kproto_enc_api_versions(req, sizeof req, corr, c->client_id);
        rc = rpc(c, b->host, b->port, req, k, deadline, "ApiVersions", &len, errstr, errlen);
        if (rc == WEIR_EIO)
            continue;
        if (rc != 0)
            return rc;
        if (weir_kproto_dec_api_versions(c->rbuf, len, corr, error, ranges, cap, n) != 0)
            return corrupt(c, b->host, b->port, "ApiVersions", errstr, errlen);
        return 0;
    }
    return rc;
}

/* ---- coordinator lookup ------------------------------------------------------------------- */

static kcoord_t *coord_find(weir_kclient_t *c, const char *txn_id) {
    for (size_t i = 0; i < c->n_coords; i++)
        if (!strcmp(c->coords[i].txn_id, txn_id))
            return &c->coords[i];
    return NULL;
}

static void coord_forget(weir_kclient_t *c, const char *txn_id) {
    kcoord_t *k = coord_find(c, txn_id);
    if (k)
        *k = c->coords[--c->n_coords];
}

/* What one attempt of a retried operation came to. */
typedef enum step {
    STEP_DONE,  /* answered: *kerr holds the broker's error code */
    STEP_RETRY, /* retriable (reason in errstr): back off and try again */
    STEP_FAIL,  /* not retriable: return rc */
} step_t;

/* Classifies a broker error code of a coordinator request. */
static step_t classify(int16_t kerr, bool *forget) {
    *forget = false;
    switch (kerr) {
    case WEIR_KERR_NOT_COORDINATOR:
    case WEIR_KERR_COORDINATOR_NOT_AVAILABLE:
        *forget = true;
        return STEP_RETRY;
    case WEIR_KERR_CONCURRENT_TRANSACTIONS:
    case WEIR_KERR_COORDINATOR_LOAD_IN_PROGRESS:
        return STEP_RETRY;
    default:
        return STEP_DONE;
    }
}

/* FindCoordinator(key type 1) for @p txn_id, asked of the bootstrap brokers in turn.
 * STEP_DONE with *kerr == 0: cached (*co). STEP_DONE with *kerr != 0: a non-retriable error. */
static step_t find_coordinator(weir_kclient_t *c, const char *txn_id, int64_t deadline,
                               kcoord_t **co, int16_t *kerr, int *rc, char *errstr, size_t errlen) {
    *co = coord_find(c, txn_id);
    if (*co) {
        *kerr = 0;
        return STEP_DONE;
    }
    uint8_t req[REQ_CAP];
    step_t step = STEP_RETRY;
    for (size_t i = 0; i < c->n_boot; i++) {
        const weir_kbroker_t *b = &c->boot[i];
        int32_t corr = next_corr(c);
        size_t n = weir_kproto_enc_find_coordinator(req, sizeof req, corr, c->client_id, txn_id,
                                                    KEY_TYPE_TRANSACTION);
        if (n == 0) {
            *rc = weir_errf(errstr, errlen, WEIR_EINVAL,
                            "kafka FindCoordinator: transactional id '%.64s' is empty or longer "
                            "than %u bytes",
                            txn_id, WEIR_KPROTO_MAX_TXN_ID);
            return STEP_FAIL;
        }
        size_t len;
        *rc = rpc(c, b->host, b->port, req, n, deadline, "FindCoordinator", &len, errstr, errlen);
        if (*rc == WEIR_ETIMEDOUT || *rc == WEIR_ECORRUPT || *rc == WEIR_ENOMEM)
            return STEP_FAIL;
        if (*rc != 0)
            continue; /* next bootstrap broker; errstr keeps this one's failure */
        int32_t node, port;
        char host[256];
        if (weir_kproto_dec_find_coordinator(c->rbuf, len, corr, kerr, &node, host, sizeof host,
                                             &port) != 0) {
            *rc = corrupt(c, b->host, b->port, "FindCoordinator", errstr, errlen);
            return STEP_FAIL;
        }
        if (*kerr != 0) {
            bool forget;
            weir_errf(errstr, errlen, WEIR_EPROTO,
                      "kafka %s:%d: FindCoordinator for transactional id '%s': %s (%d)", b->host,
                      b->port, txn_id, weir_kproto_err_name(*kerr), *kerr);
            step = classify(*kerr, &forget);
            if (step == STEP_RETRY)
                continue;
            return STEP_DONE;
        }
        if (c->n_coords >= MAX_CACHED_COORDS)
            c->n_coords = 0;
        if (weir_array_grow((void **)&c->coords, &c->cap_coords, c->n_coords + 1, sizeof *c->coords,
                            8) != 0) {
            *rc = weir_errf(errstr, errlen, WEIR_ENOMEM, "kafka FindCoordinator: out of memory");
            return STEP_FAIL;
        }
        kcoord_t *k = &c->coords[c->n_coords++];
        weir_fmt(k->txn_id, sizeof k->txn_id, "%s", txn_id);
        weir_fmt(k->host, sizeof k->host, "%s", host);
        k->port = port;
        *co = k;
        return STEP_DONE;
    }
    return step;
}

/* One request at @p txn_id's coordinator: encodes with the coordinator's correlation id, sends,
 * decodes into *kerr. */
typedef struct coord_op {
    const char *what; /* "EndTxn", "DescribeTransactions" */
    const char *txn_id;
    size_t (*enc)(const struct coord_op *op, uint8_t *buf, size_t cap, int32_t corr,
                  const char *client_id);
    int (*dec)(const struct coord_op *op, const uint8_t *p, size_t len, int32_t corr,
               int16_t *kerr);
    /* EndTxn */
    int64_t producer_id;
    int16_t producer_epoch;
    bool commit;
    /* DescribeTransactions */
    weir_ktxn_info_t *out;
} coord_op_t;

static int sleep_backoff(int64_t deadline, int *backoff_ms) {
    int ms = remaining_ms(deadline);
    if (ms <= *backoff_ms)
        return WEIR_ETIMEDOUT;
    weir_sleep_ns((int64_t)*backoff_ms * 1000000);
    *backoff_ms = *backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : *backoff_ms * 2;
    return 0;
}

/* The retry loop every coordinator request shares (file comment: what is retried). */
static int coord_call(weir_kclient_t *c, coord_op_t *op, int16_t *kerr, char *errstr,
                      size_t errlen) {
    int64_t start = weir_now_ns();
    int64_t deadline = start + (int64_t)c->timeout_ms * 1000000;
    int backoff_ms = BACKOFF_MIN_MS;
    char last[512] = "";
    for (;;) {
        kcoord_t *co;
        int rc = 0;
        step_t step = find_coordinator(c, op->txn_id, deadline, &co, kerr, &rc, last, sizeof last);
        if (step == STEP_FAIL && rc != WEIR_ETIMEDOUT)
            return weir_errf(errstr, errlen, rc, "%s", last);
        if (step == STEP_DONE && *kerr != 0) {
            weir_errf(errstr, errlen, WEIR_EPROTO, "%s", last);
            return 0;
        }
        if (step == STEP_DONE) {
            char host[256];
            int port = co->port;
            weir_fmt(host, sizeof host, "%s", co->host);
            uint8_t req[REQ_CAP];
            int32_t corr = next_corr(c);
            size_t n = op->enc(op, req, sizeof req, corr, c->client_id);
            if (n == 0)
                return weir_errf(errstr, errlen, WEIR_EINVAL,
                                 "kafka %s: cannot encode the request for transactional id "
                                 "'%.64s' (bad argument)",
                                 op->what, op->txn_id);
            size_t len;
            rc = rpc(c, host, port, req, n, deadline, op->what, &len, last, sizeof last);
            if (rc == WEIR_ECORRUPT || rc == WEIR_ENOMEM)
                return weir_errf(errstr, errlen, rc, "%s", last);
            if (rc == 0 && op->dec(op, c->rbuf, len, corr, kerr) != 0)
                return corrupt(c, host, port, op->what, errstr, errlen);
            if (rc != 0) {
                coord_forget(c, op->txn_id); /* it may have moved */
            } else {
                bool forget;
                if (classify(*kerr, &forget) == STEP_DONE) {
                    if (*kerr == 0)
                        return weir_errf(errstr, errlen, 0, "%s", "");
                    return weir_errf(
                        errstr, errlen, 0, "kafka %s:%d: %s of transactional id '%s': %s (%d)",
                        host, port, op->what, op->txn_id, weir_kproto_err_name(*kerr), *kerr);
                }
                if (forget)
                    coord_forget(c, op->txn_id);
                weir_fmt(last, sizeof last, "kafka %s:%d: %s of transactional id '%s': %s (%d)",
                         host, port, op->what, op->txn_id, weir_kproto_err_name(*kerr), *kerr);
            }
        }
        if (rc == WEIR_ETIMEDOUT || sleep_backoff(deadline, &backoff_ms) != 0)
            return weir_errf(errstr, errlen, WEIR_ETIMEDOUT,
                             "kafka %s of transactional id '%s': gave up after %lld ms (timeout "
                             "%d ms); last: %s",
                             op->what, op->txn_id, (long long)elapsed_ms(start), c->timeout_ms,
                             last[0] ? last : "no answer");
    }
}

/* ---- EndTxn ------------------------------------------------------------------------------- */

static size_t end_txn_enc(const coord_op_t *op, uint8_t *buf, size_t cap, int32_t corr,
                          const char *client_id) {
    return weir_kproto_enc_end_txn(buf, cap, corr, client_id, op->txn_id, op->producer_id,
                                   op->producer_epoch, op->commit);
}

static int end_txn_dec(const coord_op_t *op, const uint8_t *p, size_t len, int32_t corr,
                       int16_t *kerr) {
    (void)op;
    return weir_kproto_dec_end_txn(p, len, corr, kerr);
}

int weir_kclient_end_txn(weir_kclient_t *c, const char *txn_id, int64_t producer_id,
                         int16_t producer_epoch, bool commit, int16_t *kerr, char *errstr,
                         size_t errlen) {
    if (!txn_id || !*txn_id || strlen(txn_id) > WEIR_KPROTO_MAX_TXN_ID || producer_id < 0 ||
        producer_epoch < 0)
        return weir_errf(errstr, errlen, WEIR_EINVAL,
                         "kafka EndTxn: bad transaction (id '%.64s', producer id %lld, epoch %d)",
                         txn_id ? txn_id : "", (long long)producer_id, producer_epoch);
    char what[96];
    weir_fmt(what, sizeof what, "EndTxn(%s, producer id %lld, epoch %d)",
             commit ? "commit" : "abort", (long long)producer_id, producer_epoch);
    coord_op_t op = {.what = what,
                     .txn_id = txn_id,
                     .enc = end_txn_enc,
                     .dec = end_txn_dec,
                     .producer_id = producer_id,
                     .producer_epoch = producer_epoch,
                     .commit = commit};
    *kerr = 0;
    return coord_call(c, &op, kerr, errstr, errlen);
}

/* ---- DescribeTransactions ----------------------------------------------------------------- */

static size_t describe_enc(const coord_op_t *op, uint8_t *buf, size_t cap, int32_t corr,
                           const char *client_id) {
    const char *ids[1] = {op->txn_id};
    return weir_kproto_enc_describe_txns(buf, cap, corr, client_id, ids, 1);
}

typedef struct describe_ctx {
    const coord_op_t *op;
    int found;
} describe_ctx_t;

static int describe_one(const weir_ktxn_info_t *t, void *arg) {
    describe_ctx_t *d = arg;
    if (strcmp(t->txn_id, d->op->txn_id) != 0 || d->found++)
        return WEIR_ECORRUPT; /* an id we did not ask about, or twice */
    *d->op->out = *t;
    return 0;
}

static int describe_dec(const coord_op_t *op, const uint8_t *p, size_t len, int32_t corr,
                        int16_t *kerr) {
    describe_ctx_t d = {op, 0};
    int rc = weir_kproto_dec_describe_txns(p, len, corr, describe_one, &d);
    if (rc != 0 || d.found != 1)
        return WEIR_ECORRUPT;
    *kerr = op->out->error;
    return 0;
}

int weir_kclient_describe_txn(weir_kclient_t *c, const char *txn_id, weir_ktxn_info_t *out,
                              char *errstr, size_t errlen) {
    if (!txn_id || !*txn_id || strlen(txn_id) > WEIR_KPROTO_MAX_TXN_ID)
        return weir_errf(errstr, errlen, WEIR_EINVAL,
                         "kafka DescribeTransactions: transactional id '%.64s' is empty or longer "
                         "than %u bytes",
                         txn_id ? txn_id : "", WEIR_KPROTO_MAX_TXN_ID);
    memset(out, 0, sizeof *out);
    coord_op_t op = {.what = "DescribeTransactions",
                     .txn_id = txn_id,
                     .enc = describe_enc,
                     .dec = describe_dec,
                     .out = out};
    int16_t kerr = 0;
    int rc = coord_call(c, &op, &kerr, errstr, errlen);
    if (rc == 0 && out->txn_id[0] == '\0') { /* FindCoordinator refused: nothing described */
        weir_fmt(out->txn_id, sizeof out->txn_id, "%s", txn_id);
        out->error = kerr;
        out->producer_id = -1;
        out->producer_epoch = -1;
        out->txn_timeout_ms = -1;
        out->txn_start_ms = -1;
    }
    return rc;
}

/* ---- ListTransactions --------------------------------------------------------------------- */

typedef struct list_acc {
    weir_ktxn_info_t *v;
    size_t n, cap;
    const char *prefix;
    weir_kbroker_t *brokers;
    size_t n_brokers, cap_brokers;
} list_acc_t;

static int collect_txn(const weir_ktxn_info_t *t, void *arg) {
    list_acc_t *a = arg;
    if (strncmp(t->txn_id, a->prefix, strlen(a->prefix)) != 0)
        return 0;
    if (weir_array_grow((void **)&a->v, &a->cap, a->n + 1, sizeof *a->v, 16) != 0)
        return WEIR_ENOMEM;
    a->v[a->n++] = *t;
    return 0;
}

static int collect_broker(const weir_kbroker_t *b, void *arg) {
    list_acc_t *a = arg;
    if (weir_array_grow((void **)&a->brokers, &a->cap_brokers, a->n_brokers + 1, sizeof *a->brokers,
                        4) != 0)
        return WEIR_ENOMEM;
    a->brokers[a->n_brokers++] = *b;
    return 0;
}

/* The cluster's brokers (Metadata from the bootstrap brokers in turn), retried until the
 * deadline. */
static int list_brokers(weir_kclient_t *c, list_acc_t *a, int64_t start, int64_t deadline,
                        char *errstr, size_t errlen) {
    uint8_t req[REQ_CAP];
    char last[512] = "no answer";
    int backoff_ms = BACKOFF_MIN_MS;
    for (;;) {
        int rc = WEIR_EIO;
        for (size_t i = 0; i < c->n_boot; i++) {
            const weir_kbroker_t *b = &c->boot[i];
            int32_t corr = next_corr(c);
            size_t n = weir_kproto_enc_metadata(req, sizeof req, corr, c->client_id);
            size_t len;
            rc = rpc(c, b->host, b->port, req, n, deadline, "Metadata", &len, last, sizeof last);
            if (rc == WEIR_ECORRUPT || rc == WEIR_ENOMEM)
                return weir_errf(errstr, errlen, rc, "%s", last);
            if (rc != 0)
                continue;
            a->n_brokers = 0;
            rc = weir_kproto_dec_metadata(c->rbuf, len, corr, collect_broker, a);
            if (rc == WEIR_ENOMEM)
                return weir_errf(errstr, errlen, rc, "kafka Metadata: out of memory");
            if (rc != 0)
                return corrupt(c, b->host, b->port, "Metadata", errstr, errlen);
            if (a->n_brokers == 0)
                return weir_errf(errstr, errlen, WEIR_ECORRUPT,
                                 "kafka %s:%d: Metadata lists no broker", b->host, b->port);
            return 0;
        }
        if (rc == WEIR_ETIMEDOUT || sleep_backoff(deadline, &backoff_ms) != 0)
            return weir_errf(errstr, errlen, WEIR_ETIMEDOUT,
                             "kafka Metadata: gave up after %lld ms (timeout %d ms); last: %s",
                             (long long)elapsed_ms(start), c->timeout_ms, last);
    }
}

/* ListTransactions at one broker, retried on coordinator errors and I/O errors. */
static int list_at(weir_kclient_t *c, const weir_kbroker_t *b, const char *const *states,
                   size_t n_states, list_acc_t *a, int64_t start, int64_t deadline, char *errstr,
                   size_t errlen) {
    uint8_t req[REQ_CAP];
    char last[512] = "no answer";
    int backoff_ms = BACKOFF_MIN_MS;
    for (;;) {
        int32_t corr = next_corr(c);
        size_t n = weir_kproto_enc_list_txns(req, sizeof req, corr, c->client_id, states, n_states);
        if (n == 0)
            return weir_errf(errstr, errlen, WEIR_EINVAL,
                             "kafka ListTransactions: bad state filter (at most 64 states of "
                             "1..31 bytes)");
        size_t len;
        int rc =
            rpc(c, b->host, b->port, req, n, deadline, "ListTransactions", &len, last, sizeof last);
        if (rc == WEIR_ECORRUPT || rc == WEIR_ENOMEM)
            return weir_errf(errstr, errlen, rc, "%s", last);
        if (rc == 0) {
            int16_t kerr = 0;
            size_t before = a->n;
            rc = weir_kproto_dec_list_txns(c->rbuf, len, corr, &kerr, collect_txn, a);
            if (rc == WEIR_ENOMEM)
                return weir_errf(errstr, errlen, rc, "kafka ListTransactions: out of memory");
            if (rc != 0)
                return corrupt(c, b->host, b->port, "ListTransactions", errstr, errlen);
            if (kerr == 0)
                return 0;
            a->n = before;
            bool forget;
            weir_fmt(last, sizeof last, "kafka %s:%d: ListTransactions: %s (%d)", b->host, b->port,
                     weir_kproto_err_name(kerr), kerr);
            if (classify(kerr, &forget) == STEP_DONE)
                return weir_errf(errstr, errlen, WEIR_EPROTO, "%s", last);
        }
        if (rc == WEIR_ETIMEDOUT || sleep_backoff(deadline, &backoff_ms) != 0)
            return weir_errf(errstr, errlen, WEIR_ETIMEDOUT,
                             "kafka ListTransactions: gave up after %lld ms (timeout %d ms); "
                             "last: %s",
                             (long long)elapsed_ms(start), c->timeout_ms, last);
    }
}

int weir_kclient_list_txns(weir_kclient_t *c, const char *prefix, const char *const *states,
                           size_t n_states, int (*fn)(const weir_ktxn_info_t *t, void *arg),
                           void *arg, char *errstr, size_t errlen) {
    if (!fn)
        return weir_errf(errstr, errlen, WEIR_EINVAL, "kafka ListTransactions: no callback");
    int64_t start = weir_now_ns();
    int64_t deadline = start + (int64_t)c->timeout_ms * 1000000;
    list_acc_t a = {.prefix = prefix ? prefix : ""};
    int rc = list_brokers(c, &a, start, deadline, errstr, errlen);
    for (size_t i = 0; rc == 0 && i < a.n_brokers; i++)
        rc = list_at(c, &a.brokers[i], states, n_states, &a, start, deadline, errstr, errlen);
    for (size_t i = 0; rc == 0 && i < a.n; i++)
        rc = fn(&a.v[i], arg);
    free(a.v);
    free(a.brokers);
    return rc;
}
