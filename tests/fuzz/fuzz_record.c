/* libFuzzer target: the data-plane decoders a receiving subtask runs on bytes that came over the
 * network: the buffer codec weir_bufreader_next (runtime/dataplane/record.h: records, barriers,
 * watermarks, watermark statuses, end of input back to back) and the channel key of every frame
 * header, weir_chankey_decode (channel.h). The frame header around the key is parsed by a static
 * function of dataplane.c that reads a ZeroMQ socket; fuzz_dpframe reaches it through one.
 *
 * Properties checked on every input (besides ASan/UBSan/LeakSanitizer):
 * - the reader returns 1, 0 (exhausted: only at the end of the input) or WEIR_ECORRUPT, after
 *   which it stays at the bad entry; every record it returns lies inside the input and has a key
 *   of at most WEIR_MAX_KEY_LEN bytes; every barrier has a known kind and a target inside the
 *   input of at most WEIR_BARRIER_TARGET_MAX bytes;
 * - round trip: writing the decoded entries again with weir_bufwriter_* gives exactly the bytes
 *   that were read (the codec has one encoding per entry);
 * - a key decoded from the first 28 bytes encodes back to exactly them (every byte is a field),
 *   equals and hashes like its re-decoding; 27 bytes are refused.
 * Seeds: buffers written with weir_bufwriter_* (records with empty, short and maximal keys,
 * barriers of checkpoints, savepoints and stops (with the longest target), watermarks and
 * watermark statuses, end of
 * input, and a channel key in front), truncated and corrupt ones.
 *
 * Owns nothing beyond one input; no global state. Threading: libFuzzer's thread. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "fuzz_util.h"
#include "runtime/dataplane/channel.h"
#include "runtime/dataplane/record.h"

#define FUZZ_MAX_INPUT 65536u

static void seed_buffers(void) {
    size_t cap = 3 * WEIR_MAX_KEY_LEN + 4096;
    uint8_t *buf = malloc(cap);
    uint8_t *key = malloc(WEIR_MAX_KEY_LEN);
    WEIR_FUZZ_CHECK(buf && key, "out of memory");
    memset(key, 'k', WEIR_MAX_KEY_LEN);
    weir_chankey_t ck = {.attempt = 2, .edge = 1, .src = 3, .dst = 0};
    memcpy(ck.job, "0123456789abcdef", 16);
    weir_bufwriter_t w;
    bool ok = true;

    /* a typical buffer: a channel key (as in a frame header), records, a barrier, a watermark */
    weir_bufwriter_init(&w, buf, cap);
    weir_chankey_encode(&ck, buf);
    w.len = WEIR_CHANKEY_WIRE_SIZE;
    static const uint8_t val[] = {0xa5, 'h', 'e', 'l', 'l', 'o'}; /* msgpack "hello" */
    for (int i = 0; i < 3; i++) {
        weir_record_t r = {.timestamp = 1700000000000 + i,
                           .key = key,
                           .key_len = (uint32_t)i,
                           .value = val,
                           .value_len = sizeof val};
        ok = ok && weir_bufwriter_record(&w, &r);
    }
    ok = ok && weir_bufwriter_barrier(&w, 7, 1700000000123, 0, NULL, 0) &&
         weir_bufwriter_watermark(&w, -5);
    WEIR_FUZZ_CHECK(ok, "seed buffer too small");
    weir_fuzz_seed("chankey-records-barrier-watermark", buf, w.len);
    weir_fuzz_seed("records-barrier-watermark", buf + WEIR_CHANKEY_WIRE_SIZE,
                   w.len - WEIR_CHANKEY_WIRE_SIZE);
    weir_fuzz_seed("truncated", buf + WEIR_CHANKEY_WIRE_SIZE, w.len - WEIR_CHANKEY_WIRE_SIZE - 3);

    /* bounds: a maximal key, an empty record, int64 extremes, end of input */
    weir_bufwriter_init(&w, buf, cap);
    weir_record_t big = {.timestamp = INT64_MIN,
                         .key = key,
                         .key_len = WEIR_MAX_KEY_LEN,
                         .value = val,
                         .value_len = 1};
    weir_record_t empty = {.timestamp = INT64_MAX};
    ok = weir_bufwriter_record(&w, &big) && weir_bufwriter_record(&w, &empty) &&
         weir_bufwriter_barrier(&w, UINT64_MAX, INT64_MIN, 0, NULL, 0) && weir_bufwriter_end(&w);
    WEIR_FUZZ_CHECK(ok, "seed buffer too small");
    weir_fuzz_seed("max-key-empty-end", buf, w.len);
    /* the same with the key one byte too long (WEIR_ECORRUPT) */
    uint32_t too_long = WEIR_MAX_KEY_LEN + 1;
    for (int i = 0; i < 4; i++)
        buf[9 + i] = (uint8_t)(too_long >> (8 * i));
    weir_fuzz_seed("key-too-long", buf, w.len);

    /* every kind once, then an unknown kind */
    weir_bufwriter_init(&w, buf, cap);
    weir_record_t one = {.timestamp = 1, .key = key, .key_len = 8, .value = val, .value_len = 6};
    ok = weir_bufwriter_watermark(&w, 0) && weir_bufwriter_record(&w, &one) &&
         weir_bufwriter_status(&w, true) && weir_bufwriter_status(&w, false) &&
         weir_bufwriter_end(&w) && weir_bufwriter_barrier(&w, 1, 2, 0, NULL, 0);
    WEIR_FUZZ_CHECK(ok, "seed buffer too small");
    buf[w.len++] = 9;
    weir_fuzz_seed("every-kind-then-unknown", buf, w.len);

    /* savepoint and stop barriers with their target directory, one of the longest target */
    char *target = malloc(WEIR_BARRIER_TARGET_MAX);
    WEIR_FUZZ_CHECK(target, "out of memory");
    memset(target, 'd', WEIR_BARRIER_TARGET_MAX);
    weir_bufwriter_init(&w, buf, cap);
    static const char sp[] = "/savepoints/savepoint-012345-0123456789ab";
    ok = weir_bufwriter_barrier(&w, 5, 1700000000000, 1, sp, sizeof sp - 1) &&
         weir_bufwriter_record(&w, &one) &&
         weir_bufwriter_barrier(&w, 6, 1700000000001, 2, sp, sizeof sp - 1) &&
         weir_bufwriter_barrier(&w, 7, 1, 2, target, WEIR_BARRIER_TARGET_MAX);
    WEIR_FUZZ_CHECK(ok, "seed buffer too small");
    weir_fuzz_seed("savepoint-stop-barriers", buf, w.len);
    free(target);
    free(key);
    free(buf);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    seed_buffers();
    return 0;
}

static void check_chankey(const uint8_t *data, size_t size) {
    weir_chankey_t k, k2;
    if (size < WEIR_CHANKEY_WIRE_SIZE - 1)
        return;
    WEIR_FUZZ_CHECK(weir_chankey_decode(data, WEIR_CHANKEY_WIRE_SIZE - 1, &k) == WEIR_EPROTO,
                    "a 27-byte channel key decodes");
    if (size < WEIR_CHANKEY_WIRE_SIZE)
        return;
    WEIR_FUZZ_CHECK(weir_chankey_decode(data, size, &k) == 0, "a %zu-byte key is refused", size);
    uint8_t w[WEIR_CHANKEY_WIRE_SIZE];
    weir_chankey_encode(&k, w);
    WEIR_FUZZ_CHECK(!memcmp(w, data, WEIR_CHANKEY_WIRE_SIZE),
                    "channel key does not encode back to its bytes");
    WEIR_FUZZ_CHECK(weir_chankey_decode(w, sizeof w, &k2) == 0, "re-encoded key is refused");
    WEIR_FUZZ_CHECK(weir_chankey_equal(&k, &k2) && weir_chankey_hash(&k) == weir_chankey_hash(&k2),
                    "re-decoded key differs");
}

static void check_buffer(const uint8_t *data, size_t size) {
    uint8_t *out = malloc(size ? size : 1);
    WEIR_FUZZ_CHECK(out, "out of memory");
    weir_bufreader_t r;
    weir_bufwriter_t w;
    weir_bufreader_init(&r, data, size);
    weir_bufwriter_init(&w, out, size);
    weir_event_t ev;
    int rc;
    while ((rc = weir_bufreader_next(&r, &ev)) == 1) {
        bool ok = false;
        switch (ev.kind) {
        case WEIR_EV_RECORD: {
            const weir_record_t *rec = &ev.record;
            const uint8_t *k = rec->key, *v = rec->value, *end = data + size;
            WEIR_FUZZ_CHECK(rec->key_len <= WEIR_MAX_KEY_LEN, "key of %u bytes", rec->key_len);
            WEIR_FUZZ_CHECK(!rec->key_len || (k >= data && k + rec->key_len <= end),
                            "key outside the buffer");
            WEIR_FUZZ_CHECK(!rec->value_len || (v >= data && v + rec->value_len <= end),
                            "value outside the buffer");
            ok = weir_bufwriter_record(&w, rec);
            break;
        }
        case WEIR_EV_BARRIER: {
            const uint8_t *tg = (const uint8_t *)ev.target;
            WEIR_FUZZ_CHECK(
                ev.ck_kind <= WEIR_BARRIER_KIND_MAX && ev.target_len <= WEIR_BARRIER_TARGET_MAX,
                "barrier of kind %u with a target of %u bytes", ev.ck_kind, ev.target_len);
            WEIR_FUZZ_CHECK(!ev.target_len || (tg >= data && tg + ev.target_len <= data + size),
                            "barrier target outside the buffer");
            WEIR_FUZZ_CHECK(!ev.target_len || !memchr(tg, 0, ev.target_len),
                            "barrier target holds a NUL");
            ok = weir_bufwriter_barrier(&w, ev.checkpoint_id, ev.timestamp, ev.ck_kind, ev.target,
                                        ev.target_len);
            break;
        }
        case WEIR_EV_WATERMARK:
            ok = weir_bufwriter_watermark(&w, ev.timestamp);
            break;
        case WEIR_EV_STATUS:
            ok = weir_bufwriter_status(&w, ev.idle);
            break;
        case WEIR_EV_END:
            ok = weir_bufwriter_end(&w);
            break;
        }
        WEIR_FUZZ_CHECK(ok, "entry of kind %d does not re-encode into the bytes it came from",
                        (int)ev.kind);
    }
    size_t used = (size_t)(r.pos - data);
    WEIR_FUZZ_CHECK(rc == 0 || rc == WEIR_ECORRUPT, "reader returned %d", rc);
    WEIR_FUZZ_CHECK(rc != 0 || used == size, "exhausted after %zu of %zu bytes", used, size);
    if (rc == WEIR_ECORRUPT) {
        const uint8_t *at = r.pos;
        WEIR_FUZZ_CHECK(weir_bufreader_next(&r, &ev) == WEIR_ECORRUPT && r.pos == at,
                        "reader moved past a corrupt entry");
    }
    WEIR_FUZZ_CHECK(w.len == used && !memcmp(out, data, used),
                    "re-encoding of %zu bytes differs from the input", used);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > FUZZ_MAX_INPUT)
        return -1;
    check_chankey(data, size);
    check_buffer(data, size);
    /* the buffer after a frame's channel key, as a receiver of a forged frame would read it */
    if (size >= WEIR_CHANKEY_WIRE_SIZE)
        check_buffer(data + WEIR_CHANKEY_WIRE_SIZE, size - WEIR_CHANKEY_WIRE_SIZE);
    return 0;
}
