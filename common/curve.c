/* CURVE keys and the ZAP handler (curve.h; docs/security.md).
 *
 * Owns: nothing global. A weir_zap_t owns its thread and its REP socket bound to
 * inproc://zeromq.zap.01 in the caller's context; libzmq asks it about every handshake on a socket
 * of that context that has a security mechanism (a socket without CURVE sends no ZAP request).
 *
 * Invariants: a ZAP request is answered 200 only for mechanism CURVE with the cluster public key
 * as the client key; anything else is answered 400, and libzmq then closes the connection before
 * any message of it reaches the application.
 *
 * Threading: the ZAP thread is the only user of its socket; weir_zap_stop sets `stop` and joins
 * (the thread polls with a 100 ms timeout). */
#include "curve.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "err.h"
#include "log.h"
#include "util.h"

#define COMP "curve"
#define KEY_LEN 40
#define ZAP_ENDPOINT "inproc://zeromq.zap.01"

static bool z85_key(const char *s, size_t n) {
    static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                   ".-:+=^!/*?&<>()[]{}@%$#";
    if (n != KEY_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!s[i] || !strchr(alphabet, s[i]))
            return false;
    return true;
}

int weir_curve_parse(const char *text, const char *where, weir_curve_t *out, char *errstr,
                     size_t errlen) {
    memset(out, 0, sizeof *out);
    bool have_pub = false, have_sec = false;
    int lineno = 0;
    for (const char *p = text; *p;) {
        const char *end = strchr(p, '\n');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        lineno++;
        const char *line = p;
        p += n + (end ? 1 : 0);
        while (n && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
            n--;
        while (n && (*line == ' ' || *line == '\t')) {
            line++;
            n--;
        }
        if (n == 0 || *line == '#')
            continue;
        char *dst = NULL;
        size_t klen = 0;
        if (n > 11 && !strncmp(line, "public-key:", 11)) {
            dst = out->public_key;
            klen = 11;
            have_pub = true;
        } else if (n > 11 && !strncmp(line, "secret-key:", 11)) {
            dst = out->secret_key;
            klen = 11;
            have_sec = true;
        } else {
            return weir_errf(errstr, errlen, WEIR_ECONFIG,
                             "%s line %d: expected 'public-key: KEY' or 'secret-key: KEY' (make "
                             "the file with `weir keygen FILE`)",
                             where, lineno);
        }
        line += klen;
        n -= klen;
        while (n && (*line == ' ' || *line == '\t')) {
            line++;
            n--;
        }
        if (!z85_key(line, n))
            return weir_errf(errstr, errlen, WEIR_ECONFIG,
                             "%s line %d: a key is 40 Z85 characters (make the file with `weir "
                             "keygen FILE`)",
                             where, lineno);
        memcpy(dst, line, KEY_LEN);
        dst[KEY_LEN] = '\0';
    }
    if (!have_pub || !have_sec)
        return weir_errf(errstr, errlen, WEIR_ECONFIG,
                         "%s has no %s line (make the file with `weir keygen FILE`)", where,
                         have_pub ? "secret-key" : "public-key");
    char derived[KEY_LEN + 1];
    if (zmq_curve_public(derived, out->secret_key) != 0 || strcmp(derived, out->public_key) != 0)
        return weir_errf(errstr, errlen, WEIR_ECONFIG,
                         "%s: the public key does not belong to the secret key (use a file made "
                         "by `weir keygen FILE`)",
                         where);
    out->enabled = true;
    return 0;
}

int weir_curve_load(const weir_config_t *cfg, weir_curve_t *out, char *errstr, size_t errlen) {
    memset(out, 0, sizeof *out);
    const char *file = weir_config_get_str(cfg, "security.curve.key-file");
    if (!file || !*file)
        return 0;
    if (!zmq_has("curve"))
        return weir_errf(errstr, errlen, WEIR_ECONFIG,
                         "security.curve.key-file is set but this libzmq has no CURVE support: "
                         "install a libzmq built with libsodium");
    struct stat st;
    uint8_t *data = NULL;
    size_t len = 0;
    if (stat(file, &st) != 0 || weir_read_file(file, &data, &len) != 0)
        return weir_errf(errstr, errlen, WEIR_ECONFIG,
                         "cannot read security.curve.key-file %s: %s (make one with `weir keygen "
                         "FILE`)",
                         file, strerror(errno));
    if (st.st_mode & 077)
        WEIR_WARN(COMP,
                  "security.curve.key-file %s is readable by group or others (mode %03o): it holds "
                  "the cluster's secret key; chmod 600 it",
                  file, (unsigned)(st.st_mode & 0777));
    char where[1200];
    weir_fmt(where, sizeof where, "security.curve.key-file %s", file);
    int rc = weir_curve_parse((const char *)data, where, out, errstr, errlen);
    memset(data, 0, len);
    free(data);
    return rc;
}

int weir_curve_keygen(const char *path, char *errstr, size_t errlen) {
    char pub[KEY_LEN + 1], sec[KEY_LEN + 1];
    if (zmq_curve_keypair(pub, sec) != 0)
        return weir_errf(errstr, errlen, WEIR_EIO,
                         "cannot make a CURVE key pair: %s (libzmq needs CURVE support)",
                         zmq_strerror(zmq_errno()));
    char text[256];
    int n = snprintf(text, sizeof text,
                     "# weir cluster key (ZeroMQ CURVE, Z85): give it to the job manager and every "
                     "task manager only\npublic-key: %s\nsecret-key: %s\n",
                     pub, sec);
    if (!path) {
        bool ok = fwrite(text, 1, (size_t)n, stdout) == (size_t)n && fflush(stdout) == 0;
        memset(text, 0, sizeof text);
        memset(sec, 0, sizeof sec);
        return ok ? 0 : weir_errf(errstr, errlen, WEIR_EIO, "cannot write the key to stdout");
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return weir_errf(
            errstr, errlen, WEIR_EIO, "cannot create key file %s: %s%s", path, strerror(errno),
            errno == EEXIST ? " (choose another name: a key file is never replaced)" : "");
    bool ok = write(fd, text, (size_t)n) == n && fsync(fd) == 0;
    int saved = errno;
    memset(text, 0, sizeof text);
    memset(sec, 0, sizeof sec);
    if (close(fd) != 0 || !ok) {
        unlink(path);
        return weir_errf(errstr, errlen, WEIR_EIO, "cannot write key file %s: %s", path,
                         strerror(ok ? errno : saved));
    }
    return 0;
}

int weir_curve_server(void *sock, const weir_curve_t *k) {
    if (!k || !k->enabled)
        return 0;
    int one = 1;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, k->secret_key, KEY_LEN) != 0 ||
        zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, "weir", 4) != 0)
        return WEIR_ENET;
    return 0;
}

int weir_curve_client(void *sock, const weir_curve_t *k) {
    if (!k || !k->enabled)
        return 0;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, k->public_key, KEY_LEN) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, k->public_key, KEY_LEN) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, k->secret_key, KEY_LEN) != 0)
        return WEIR_ENET;
    return 0;
}

/* ---------------------------------------------------------------- ZAP handler */

struct weir_zap {
    void *sock; /* ZAP thread only after start */
    uint8_t public_key[32];
    pthread_t thread;
    atomic_bool stop;
    _Atomic uint64_t refused;
};

/* Answers one ZAP request (RFC 27): version, request id, domain, address, identity, mechanism,
 * credentials... -> version, request id, status code, status text, user id, metadata. */
static void zap_answer(weir_zap_t *z) {
    zmq_msg_t part[8];
    int n = 0;
    bool more = true;
    while (more) {
        zmq_msg_t scratch, *m = n < 8 ? &part[n] : &scratch;
        zmq_msg_init(m);
        if (zmq_msg_recv(m, z->sock, 0) < 0) {
            zmq_msg_close(m);
            break;
        }
        more = zmq_msg_more(m);
        if (m == &scratch)
            zmq_msg_close(m);
        else
            n++;
    }
    if (n < 2) {
        for (int i = 0; i < n; i++)
            zmq_msg_close(&part[i]);
        return;
    }
    bool ok = n == 7 && zmq_msg_size(&part[5]) == 5 &&
              !memcmp(zmq_msg_data(&part[5]), "CURVE", 5) && zmq_msg_size(&part[6]) == 32 &&
              !memcmp(zmq_msg_data(&part[6]), z->public_key, 32);
    if (!ok) {
        uint64_t k = atomic_fetch_add(&z->refused, 1) + 1;
        char addr[64] = "?";
        if (n >= 4) {
            size_t l =
                zmq_msg_size(&part[3]) < sizeof addr - 1 ? zmq_msg_size(&part[3]) : sizeof addr - 1;
            memcpy(addr, zmq_msg_data(&part[3]), l);
            addr[l] = '\0';
        }
        if (k <= 10 || k % 1000 == 0)
            WEIR_WARN(COMP,
                      "refused a ZeroMQ peer at %s: it does not hold the cluster key "
                      "(security.curve.key-file); %" PRIu64 " refused so far",
                      addr, k);
    }
    const char *code = ok ? "200" : "400";
    const char *text = ok ? "OK" : "not a holder of the cluster key";
    zmq_send(z->sock, "1.0", 3, ZMQ_SNDMORE);
    zmq_msg_send(&part[1], z->sock, ZMQ_SNDMORE); /* request id, moved */
    zmq_send(z->sock, code, 3, ZMQ_SNDMORE);
    zmq_send(z->sock, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(z->sock, ok ? "weir" : "", ok ? 4 : 0, ZMQ_SNDMORE);
    zmq_send(z->sock, "", 0, 0);
    for (int i = 0; i < n; i++)
        zmq_msg_close(&part[i]);
}

static void *zap_thread(void *arg) {
    weir_zap_t *z = arg;
    while (!atomic_load(&z->stop)) {
        zmq_pollitem_t it = {.socket = z->sock, .events = ZMQ_POLLIN};
        int rc = zmq_poll(&it, 1, 100);
        if (rc < 0 && zmq_errno() != EINTR)
            break;
        if (rc > 0)
            zap_answer(z);
    }
    zmq_close(z->sock);
    z->sock = NULL;
    return NULL;
}

weir_zap_t *weir_zap_start(void *zctx, const weir_curve_t *k, char *errstr, size_t errlen) {
    weir_zap_t *z = weir_xcalloc(1, sizeof *z);
    atomic_init(&z->stop, false);
    atomic_init(&z->refused, 0);
    if (!zmq_z85_decode(z->public_key, k->public_key)) {
        weir_errf(errstr, errlen, WEIR_EINVAL, "bad cluster public key");
        free(z);
        return NULL;
    }
    int zero = 0;
    z->sock = zmq_socket(zctx, ZMQ_REP);
    if (!z->sock || zmq_setsockopt(z->sock, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_bind(z->sock, ZAP_ENDPOINT) != 0) {
        weir_errf(errstr, errlen, WEIR_ENET, "cannot start the ZAP handler (%s): %s", ZAP_ENDPOINT,
                  zmq_strerror(zmq_errno()));
        if (z->sock)
            zmq_close(z->sock);
        free(z);
        return NULL;
    }
    if (pthread_create(&z->thread, NULL, zap_thread, z) != 0) {
        weir_errf(errstr, errlen, WEIR_EIO, "cannot start the ZAP handler thread");
        zmq_close(z->sock);
        free(z);
        return NULL;
    }
    return z;
}

uint64_t weir_zap_refused(weir_zap_t *z) {
    return z ? atomic_load(&z->refused) : 0;
}

void weir_zap_stop(weir_zap_t **zp) {
    if (!zp || !*zp)
        return;
    weir_zap_t *z = *zp;
    *zp = NULL;
    atomic_store(&z->stop, true);
    pthread_join(z->thread, NULL);
    free(z);
}
