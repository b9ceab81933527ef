/* ZeroMQ CURVE for the control and data planes (docs/security.md): the cluster key pair, its key
 * file, and a ZAP handler that admits only holders of the cluster key.
 *
 * The model: one key pair per cluster. Every member (the job manager, every task manager) holds
 * the secret key; every listening socket is a CURVE server with it and every connecting socket a
 * CURVE client with it (its own key pair and the server's public key are the cluster's). The ZAP
 * handler of a listening process accepts a CURVE client only when the client's public key is the
 * cluster's: a client that completes the handshake has proven it holds the cluster secret key.
 * The key authenticates membership, not which member: members tell each other apart by their
 * ZeroMQ routing id, which a member sets itself (see docs/security.md).
 *
 * Key file (text; `weir keygen FILE` writes one with mode 0600):
 *   # comment lines and blank lines are ignored
 *   public-key: <40 Z85 characters>
 *   secret-key: <40 Z85 characters>
 *
 * Threading: the functions are thread-safe; a weir_zap_t runs one thread of its own that owns
 * its ZAP socket (in the caller's ZeroMQ context, so no process-global state). */
#ifndef WEIR_COMMON_CURVE_H
#define WEIR_COMMON_CURVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"

/** The cluster key pair (Z85 text, NUL-terminated). enabled = false: CURVE is off. */
typedef struct weir_curve {
    bool enabled;
    char public_key[41];
    char secret_key[41];
} weir_curve_t;

/** Parses the text of a key file; @p where names it in errors ("security.curve.key-file X").
 * Checks both keys are 40 Z85 characters and that the public key belongs to the secret key. */
int weir_curve_parse(const char *text, const char *where, weir_curve_t *out, char *errstr,
                     size_t errlen);
/** Loads security.curve.key-file (off when unset). Warns when the file is readable by group or
 * others. @returns 0 or WEIR_ECONFIG with one line naming the key. */
int weir_curve_load(const weir_config_t *cfg, weir_curve_t *out, char *errstr, size_t errlen);
/** Writes a new key pair to @p path (created, never overwritten, mode 0600); NULL = stdout. */
int weir_curve_keygen(const char *path, char *errstr, size_t errlen);

/** Makes @p sock a CURVE server with the cluster key (before bind). No-op when disabled.
 * @returns 0 or WEIR_ENET. */
int weir_curve_server(void *sock, const weir_curve_t *k);
/** Makes @p sock a CURVE client of a server holding the cluster key (before connect). */
int weir_curve_client(void *sock, const weir_curve_t *k);

typedef struct weir_zap weir_zap_t;
/** Starts the ZAP handler of ZeroMQ context @p zctx (inproc://zeromq.zap.01): accepts CURVE
 * clients whose public key is @p k's, refuses everything else (counted and logged). Call before
 * any CURVE server socket of the context binds. NULL + errstr on error. */
weir_zap_t *weir_zap_start(void *zctx, const weir_curve_t *k, char *errstr, size_t errlen);
/** Handshakes refused so far. */
uint64_t weir_zap_refused(weir_zap_t *z);
/** Stops the thread and closes its socket (before zmq_ctx_term of its context). Accepts NULL. */
void weir_zap_stop(weir_zap_t **z);

#endif
