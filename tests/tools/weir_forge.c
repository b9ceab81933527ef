/* weir-forge: a ZeroMQ peer that is not a member of the cluster (or a member that lies), for
 * tests/integration/11_curve.py. It sends forged data-plane frames to a task manager's data port
 * or forged control messages to the job manager's RPC port, then exits.
 *
 *   weir-forge data    ENDPOINT COUNT KEYMODE ROUTING_ID JOBID
 *   weir-forge control ENDPOINT COUNT KEYMODE ROUTING_ID TMID JOBID
 *
 * KEYMODE: "none" (no CURVE), "wrong:FILE" (CURVE with a key pair of its own, knowing the server's
 * public key from the cluster key FILE), "member:FILE" (the cluster key itself).
 * data: COUNT rounds of a data frame and a credit frame (credit total 1000) for channel keys of
 * job JOBID (32 hex digits; attempts 0..3, edges 0..3, subtasks 0..3: the job's real channels
 * among them) and of random jobs, with random bodies.
 * control: COUNT rounds of TASK_STATE FAILED for JOBID (attempts 0..3, vertices 0..3, subtasks
 * 0..3) and a HEARTBEAT, each naming task manager TMID in its body.
 * Sends never block (a refused peer has no connection to queue on: ZMQ_DONTWAIT, dropped).
 * Exit 0 once everything is queued and at most 1 s has passed (linger), 1 on a usage error.
 * Single-threaded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "common/curve.h"
#include "common/proto.h"
#include "common/util.h"
#include "runtime/dataplane/channel.h"

static void *connect_peer(void *zctx, const char *ep, const char *keymode, const char *ident) {
    void *s = zmq_socket(zctx, ZMQ_DEALER);
    int linger = 1000, zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_ROUTING_ID, ident, strlen(ident));
    if (strcmp(keymode, "none") != 0) {
        const char *colon = strchr(keymode, ':');
        if (!colon)
            return NULL;
        uint8_t *text = NULL;
        size_t len = 0;
        char err[512];
        weir_curve_t k;
        if (weir_read_file(colon + 1, &text, &len) != 0 ||
            weir_curve_parse((char *)text, colon + 1, &k, err, sizeof err) != 0) {
            fprintf(stderr, "weir-forge: cannot read key file %s\n", colon + 1);
            return NULL;
        }
        free(text);
        if (!strncmp(keymode, "wrong:", 6)) {
            char server[41];
            memcpy(server, k.public_key, sizeof server);
            zmq_curve_keypair(k.public_key, k.secret_key); /* not the cluster's */
            zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server, 40);
            zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, k.public_key, 40);
            zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, k.secret_key, 40);
        } else {
            weir_curve_client(s, &k);
        }
    }
    if (zmq_connect(s, ep) != 0)
        return NULL;
    return s;
}

int main(int argc, char **argv) {
    if (argc < 7 || (strcmp(argv[1], "data") && strcmp(argv[1], "control")) ||
        (!strcmp(argv[1], "control") && argc < 8)) {
        fprintf(stderr, "usage: weir-forge data ENDPOINT COUNT KEYMODE ROUTING_ID JOBID\n"
                        "       weir-forge control ENDPOINT COUNT KEYMODE ROUTING_ID TMID JOBID\n");
        return 1;
    }
    long count = atol(argv[3]);
    void *zctx = zmq_ctx_new();
    void *s = connect_peer(zctx, argv[2], argv[4], argv[5]);
    if (!s) {
        fprintf(stderr, "weir-forge: cannot connect to %s\n", argv[2]);
        return 1;
    }
    const char *jobid = argv[1][0] == 'd' ? argv[6] : argv[7];
    uint8_t job[16];
    if (weir_hex_decode(jobid, job, 16) != 0) {
        fprintf(stderr, "weir-forge: bad job id %s\n", jobid);
        return 1;
    }
    uint64_t rnd = 0x9e3779b97f4a7c15ull;
    for (long i = 0; i < count; i++) {
        /* Paced (about 1000 rounds per 10 ms): the receiver's queue is unbounded for cluster
         * members (credit-based flow control bounds real traffic), so an unpaced flood measures how
         * fast it drains, not what it keeps. */
        if (i > 0 && i % 1000 == 0)
            weir_sleep_ns(10000000);
        rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
        if (argv[1][0] == 'd') {
            weir_chankey_t k = {.attempt = (uint32_t)(i & 3),
                                .edge = (uint32_t)((i >> 2) & 3),
                                .src = (uint16_t)((i >> 4) & 3),
                                .dst = (uint16_t)((i >> 6) & 3)};
            memcpy(k.job, job, 16);
            if (i & 256) /* half of the rounds: random jobs */
                memcpy(k.job, &rnd, 8);
            uint8_t hdr[1 + WEIR_CHANKEY_WIRE_SIZE + 4];
            uint8_t body[64];
            for (size_t j = 0; j < sizeof body; j++)
                body[j] = (uint8_t)(rnd >> (j % 56));
            hdr[0] = 1;
            weir_chankey_encode(&k, hdr + 1);
            zmq_send(s, hdr, 1 + WEIR_CHANKEY_WIRE_SIZE, ZMQ_SNDMORE | ZMQ_DONTWAIT);
            zmq_send(s, body, sizeof body, ZMQ_DONTWAIT);
            hdr[0] = 2;
            uint32_t total = 1000;
            memcpy(hdr + 1 + WEIR_CHANKEY_WIRE_SIZE, &total, 4);
            zmq_send(s, hdr, sizeof hdr, ZMQ_DONTWAIT);
        } else {
            weir_msg_task_state_t ts = {.attempt = (uint32_t)(i & 3),
                                        .vertex = (uint32_t)((i >> 2) & 3),
                                        .subtask = (uint32_t)((i >> 4) & 3),
                                        .state = WEIR_TASK_FAILED,
                                        .message = "forged failure"};
            memcpy(ts.job_id, jobid, 33);
            weir_msg_t m = {
                .type = WEIR_MSG_TASK_STATE, .tm_id = argv[6], .tasks = &ts, .n_tasks = 1};
            weir_msg_t hb = {.type = WEIR_MSG_HEARTBEAT, .tm_id = argv[6]};
            uint8_t *buf;
            size_t len;
            if (weir_msg_encode(&m, &buf, &len) == 0) {
                zmq_send(s, buf, len, ZMQ_DONTWAIT);
                free(buf);
            }
            if (weir_msg_encode(&hb, &buf, &len) == 0) {
                zmq_send(s, buf, len, ZMQ_DONTWAIT);
                free(buf);
            }
        }
    }
    zmq_close(s); /* lingers up to 1 s to deliver what is queued */
    zmq_ctx_term(zctx);
    return 0;
}
