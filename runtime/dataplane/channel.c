/* Owns logical channel keys (wire form, equality, hash), network buffers, and the credit
 * accounting of both ends of a channel (see channel.h for the protocol).
 * Invariants: sender: credits never go below 0 and a buffer is only taken with a credit;
 * receiver: held + withheld + owed <= capacity at all times, so a buffer arriving when
 * held + withheld + owed == capacity means the sender had no credit (WEIR_EPROTO); owed (batched
 * credits, below half the capacity) is returned as a batch (see consumed_batched).
 * Threading: an outchan belongs to its sending subtask thread, an inchan to its receiving
 * subtask thread; no locking here. */
#include "runtime/dataplane/channel.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

static void put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static uint16_t get16(const uint8_t *p) {
    return (uint16_t)(p[0] | p[1] << 8);
}

static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void weir_chankey_encode(const weir_chankey_t *key, uint8_t out[WEIR_CHANKEY_WIRE_SIZE]) {
    memcpy(out, key->job, 16);
    put32(out + 16, key->attempt);
    put32(out + 20, key->edge);
    put16(out + 24, key->src);
    put16(out + 26, key->dst);
}

int weir_chankey_decode(const uint8_t *in, size_t len, weir_chankey_t *key) {
    if (!in || len < WEIR_CHANKEY_WIRE_SIZE)
        return WEIR_EPROTO;
    memcpy(key->job, in, 16);
    key->attempt = get32(in + 16);
    key->edge = get32(in + 20);
    key->src = get16(in + 24);
    key->dst = get16(in + 26);
    return 0;
}

bool weir_chankey_equal(const weir_chankey_t *a, const weir_chankey_t *b) {
    return !memcmp(a->job, b->job, 16) && a->attempt == b->attempt && a->edge == b->edge &&
           a->src == b->src && a->dst == b->dst;
}

uint64_t weir_chankey_hash(const weir_chankey_t *key) {
    /* FNV-1a 64 over the wire form (which has no padding, unlike the struct). */
    uint8_t w[WEIR_CHANKEY_WIRE_SIZE];
    weir_chankey_encode(key, w);
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < sizeof w; i++) {
        h ^= w[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

weir_netbuf_t *weir_netbuf_new(const weir_chankey_t *key, size_t cap) {
    /* One allocation: the bytes follow the header. */
    weir_netbuf_t *b = malloc(sizeof *b + (cap ? cap : 1));
    if (!b)
        abort();
    if (key)
        b->key = *key;
    else
        memset(&b->key, 0, sizeof b->key);
    b->len = 0;
    b->cap = cap;
    b->data = (uint8_t *)(b + 1);
    b->release = NULL;
    return b;
}

void weir_netbuf_free(weir_netbuf_t **buf) {
    if (!buf || !*buf)
        return;
    if ((*buf)->release)
        (*buf)->release(*buf);
    else
        free(*buf);
    *buf = NULL;
}

/* ---- sender -------------------------------------------------------------------------------- */

void weir_outchan_init(weir_outchan_t *ch, const weir_chankey_t *key, size_t buffer_size) {
    memset(ch, 0, sizeof *ch);
    ch->key = *key;
    ch->buffer_size = buffer_size;
}

void weir_outchan_destroy(weir_outchan_t *ch) {
    weir_netbuf_free(&ch->cur);
    memset(&ch->w, 0, sizeof ch->w);
}

/* Makes sure there is a current buffer that is either non-empty or can hold @p need bytes.
 * @returns false when cur holds data and lacks room for @p need. */
static bool ensure_room(weir_outchan_t *ch, size_t need, int64_t now_ns) {
    if (ch->cur && ch->w.len > 0)
        return ch->w.cap - ch->w.len >= need;
    if (ch->cur && ch->cur->cap >= need)
        return true;
    weir_netbuf_free(&ch->cur);
    size_t cap = need > ch->buffer_size ? need : ch->buffer_size;
    ch->cur = weir_netbuf_new(&ch->key, cap);
    weir_bufwriter_init(&ch->w, ch->cur->data, cap);
    ch->first_write_ns = now_ns;
    return true;
}

static void wrote(weir_outchan_t *ch, size_t before, int64_t now_ns) {
    if (before == 0)
        ch->first_write_ns = now_ns;
    ch->cur->len = ch->w.len;
}

bool weir_outchan_write_record(weir_outchan_t *ch, const weir_record_t *rec, int64_t now_ns) {
    if (!ensure_room(ch, weir_record_encoded_size(rec), now_ns))
        return false;
    size_t before = ch->w.len;
    bool ok = weir_bufwriter_record(&ch->w, rec);
    assert(ok);
    wrote(ch, before, now_ns);
    ch->records_sent++;
    return ok;
}

bool weir_outchan_write_end(weir_outchan_t *ch, int64_t now_ns) {
    if (!ensure_room(ch, WEIR_EVENT_END_SIZE, now_ns))
        return false;
    size_t before = ch->w.len;
    bool ok = weir_bufwriter_end(&ch->w);
    assert(ok);
    wrote(ch, before, now_ns);
    return ok;
}

bool weir_outchan_write_watermark(weir_outchan_t *ch, int64_t wm, int64_t now_ns) {
    if (!ensure_room(ch, WEIR_EVENT_WATERMARK_SIZE, now_ns))
        return false;
    size_t before = ch->w.len;
    bool ok = weir_bufwriter_watermark(&ch->w, wm);
    assert(ok);
    wrote(ch, before, now_ns);
    return ok;
}

bool weir_outchan_write_status(weir_outchan_t *ch, bool idle, int64_t now_ns) {
    if (!ensure_room(ch, WEIR_EVENT_STATUS_SIZE, now_ns))
        return false;
    size_t before = ch->w.len;
    bool ok = weir_bufwriter_status(&ch->w, idle);
    assert(ok);
    wrote(ch, before, now_ns);
    return ok;
}

bool weir_outchan_write_barrier(weir_outchan_t *ch, uint64_t id, int64_t ts, uint8_t ck_kind,
                                const char *target, uint16_t target_len, int64_t now_ns) {
    if (ck_kind > WEIR_BARRIER_KIND_MAX || target_len > WEIR_BARRIER_TARGET_MAX ||
        (target_len && (!target || memchr(target, 0, target_len))))
        return false; /* the buffer format has no room for it (record.h) */
    if (!ensure_room(ch, weir_barrier_encoded_size(target_len), now_ns))
        return false;
    size_t before = ch->w.len;
    bool ok = weir_bufwriter_barrier(&ch->w, id, ts, ck_kind, target, target_len);
    assert(ok);
    wrote(ch, before, now_ns);
    return ok;
}

bool weir_outchan_has_data(const weir_outchan_t *ch) {
    return ch->cur != NULL && ch->w.len > 0;
}

bool weir_outchan_flush_due(const weir_outchan_t *ch, int64_t now_ns, int64_t timeout_ns) {
    return weir_outchan_has_data(ch) && now_ns - ch->first_write_ns >= timeout_ns;
}

weir_netbuf_t *weir_outchan_take(weir_outchan_t *ch) {
    assert(ch->credits > 0);
    assert(weir_outchan_has_data(ch));
    weir_netbuf_t *b = ch->cur;
    b->len = ch->w.len;
    ch->cur = NULL;
    memset(&ch->w, 0, sizeof ch->w);
    ch->credits--;
    ch->buffers_sent++;
    ch->bytes_sent += b->len;
    return b;
}

void weir_outchan_add_credit(weir_outchan_t *ch, uint32_t n) {
    ch->credits += n;
}

/* ---- receiver ------------------------------------------------------------------------------ */

void weir_inchan_init(weir_inchan_t *ch, const weir_chankey_t *key, uint32_t capacity) {
    memset(ch, 0, sizeof *ch);
    ch->key = *key;
    ch->capacity = capacity;
}

int weir_inchan_on_buffer(weir_inchan_t *ch, size_t bytes) {
    if (ch->held + ch->withheld + ch->owed >= ch->capacity)
        return WEIR_EPROTO;
    ch->held++;
    ch->buffers_received++;
    ch->bytes_received += bytes;
    return 0;
}

uint32_t weir_inchan_consumed(weir_inchan_t *ch) {
    assert(ch->held > 0);
    if (ch->held == 0)
        return 0;
    ch->held--;
    if (ch->blocked) {
        ch->withheld++;
        return 0;
    }
    return 1;
}

uint32_t weir_inchan_consumed_batched(weir_inchan_t *ch) {
    if (weir_inchan_consumed(ch) == 0)
        return 0; /* blocked: withheld until unblock */
    ch->owed++;
    uint32_t batch = ch->capacity / 2 ? ch->capacity / 2 : 1;
    return ch->owed >= batch ? weir_inchan_take_owed(ch) : 0;
}

uint32_t weir_inchan_take_owed(weir_inchan_t *ch) {
    uint32_t n = ch->owed;
    ch->owed = 0;
    return n;
}

void weir_inchan_block(weir_inchan_t *ch) {
    ch->blocked = true;
}

uint32_t weir_inchan_unblock(weir_inchan_t *ch) {
    ch->blocked = false;
    uint32_t n = ch->withheld + ch->owed;
    ch->withheld = 0;
    ch->owed = 0;
    return n;
}
