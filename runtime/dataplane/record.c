/* Owns the buffer codec of record.h: records and in-band events (barrier, watermark, end of
 * input) written back to back into a caller-owned byte array, and read back zero-copy.
 * Invariants: a writer never writes past cap and a failed append leaves it unchanged; a reader
 * never reads past end and reports WEIR_ECORRUPT for truncated or unknown entries (and barriers
 * of an unknown kind or with a target the format does not allow), after which it stays at the
 * bad entry; the writer refuses what the reader would, so every entry has one encoding. All
 * integers are little-endian, read and written with memcpy. Threading: none; a writer or reader is
 * used by one thread at a time. */
#include "runtime/dataplane/record.h"

#include <string.h>

#include "common/err.h"

static inline void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t get_u32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static inline uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

void weir_bufwriter_init(weir_bufwriter_t *w, uint8_t *data, size_t cap) {
    w->data = data;
    w->len = 0;
    w->cap = cap;
}

bool weir_bufwriter_record(weir_bufwriter_t *w, const weir_record_t *rec) {
    size_t need = weir_record_encoded_size(rec);
    if (need > w->cap - w->len)
        return false;
    uint8_t *p = w->data + w->len;
    p[0] = WEIR_EV_RECORD;
    put_u64(p + 1, (uint64_t)rec->timestamp);
    put_u32(p + 9, rec->key_len);
    put_u32(p + 13, rec->value_len);
    if (rec->key_len)
        memcpy(p + 17, rec->key, rec->key_len);
    if (rec->value_len)
        memcpy(p + 17 + rec->key_len, rec->value, rec->value_len);
    w->len += need;
    return true;
}

bool weir_bufwriter_barrier(weir_bufwriter_t *w, uint64_t checkpoint_id, int64_t timestamp,
                            uint8_t ck_kind, const char *target, uint16_t target_len) {
    size_t need = weir_barrier_encoded_size(target_len);
    if (ck_kind > WEIR_BARRIER_KIND_MAX || target_len > WEIR_BARRIER_TARGET_MAX ||
        (target_len && (!target || memchr(target, 0, target_len))) || need > w->cap - w->len)
        return false;
    uint8_t *p = w->data + w->len;
    p[0] = WEIR_EV_BARRIER;
    put_u64(p + 1, checkpoint_id);
    put_u64(p + 9, (uint64_t)timestamp);
    p[17] = ck_kind;
    p[18] = (uint8_t)target_len;
    p[19] = (uint8_t)(target_len >> 8);
    if (target_len)
        memcpy(p + WEIR_EVENT_BARRIER_HEADER_SIZE, target, target_len);
    w->len += need;
    return true;
}

bool weir_bufwriter_watermark(weir_bufwriter_t *w, int64_t watermark) {
    if (WEIR_EVENT_WATERMARK_SIZE > w->cap - w->len)
        return false;
    uint8_t *p = w->data + w->len;
    p[0] = WEIR_EV_WATERMARK;
    put_u64(p + 1, (uint64_t)watermark);
    w->len += WEIR_EVENT_WATERMARK_SIZE;
    return true;
}

bool weir_bufwriter_end(weir_bufwriter_t *w) {
    if (WEIR_EVENT_END_SIZE > w->cap - w->len)
        return false;
    w->data[w->len] = WEIR_EV_END;
    w->len += WEIR_EVENT_END_SIZE;
    return true;
}

bool weir_bufwriter_status(weir_bufwriter_t *w, bool idle) {
    if (WEIR_EVENT_STATUS_SIZE > w->cap - w->len)
        return false;
    w->data[w->len] = WEIR_EV_STATUS;
    w->data[w->len + 1] = idle ? 1 : 0;
    w->len += WEIR_EVENT_STATUS_SIZE;
    return true;
}

void weir_bufreader_init(weir_bufreader_t *r, const uint8_t *data, size_t len) {
    r->pos = data;
    r->end = data + len;
}

int weir_bufreader_next(weir_bufreader_t *r, weir_event_t *ev) {
    if (r->pos >= r->end)
        return 0;
    size_t left = (size_t)(r->end - r->pos);
    const uint8_t *p = r->pos;
    switch (p[0]) {
    case WEIR_EV_RECORD: {
        if (left < WEIR_RECORD_HEADER_SIZE)
            return WEIR_ECORRUPT;
        uint32_t k = get_u32(p + 9), v = get_u32(p + 13);
        if (k > WEIR_MAX_KEY_LEN)
            return WEIR_ECORRUPT;
        if ((uint64_t)k + v > left - WEIR_RECORD_HEADER_SIZE)
            return WEIR_ECORRUPT;
        ev->kind = WEIR_EV_RECORD;
        ev->record.timestamp = (int64_t)get_u64(p + 1);
        ev->record.key_len = k;
        ev->record.key = k ? p + 17 : NULL;
        ev->record.value_len = v;
        ev->record.value = p + 17 + k;
        ev->checkpoint_id = 0;
        ev->timestamp = 0;
        r->pos = p + WEIR_RECORD_HEADER_SIZE + k + v;
        return 1;
    }
    case WEIR_EV_BARRIER: {
        if (left < WEIR_EVENT_BARRIER_HEADER_SIZE)
            return WEIR_ECORRUPT;
        uint16_t tl = (uint16_t)(p[18] | p[19] << 8);
        const uint8_t *target = p + WEIR_EVENT_BARRIER_HEADER_SIZE;
        if (p[17] > WEIR_BARRIER_KIND_MAX || tl > WEIR_BARRIER_TARGET_MAX ||
            tl > left - WEIR_EVENT_BARRIER_HEADER_SIZE || (tl && memchr(target, 0, tl)))
            return WEIR_ECORRUPT;
        memset(ev, 0, sizeof *ev);
        ev->kind = WEIR_EV_BARRIER;
        ev->checkpoint_id = get_u64(p + 1);
        ev->timestamp = (int64_t)get_u64(p + 9);
        ev->ck_kind = p[17];
        ev->target_len = tl;
        ev->target = tl ? (const char *)target : NULL;
        r->pos = p + weir_barrier_encoded_size(tl);
        return 1;
    }
    case WEIR_EV_WATERMARK:
        if (left < WEIR_EVENT_WATERMARK_SIZE)
            return WEIR_ECORRUPT;
        memset(ev, 0, sizeof *ev);
        ev->kind = WEIR_EV_WATERMARK;
        ev->timestamp = (int64_t)get_u64(p + 1);
        r->pos = p + WEIR_EVENT_WATERMARK_SIZE;
        return 1;
    case WEIR_EV_STATUS:
        if (left < WEIR_EVENT_STATUS_SIZE || p[1] > 1)
            return WEIR_ECORRUPT;
        memset(ev, 0, sizeof *ev);
        ev->kind = WEIR_EV_STATUS;
        ev->idle = p[1] == 1;
        r->pos = p + WEIR_EVENT_STATUS_SIZE;
        return 1;
    case WEIR_EV_END:
        memset(ev, 0, sizeof *ev);
        ev->kind = WEIR_EV_END;
        r->pos = p + WEIR_EVENT_END_SIZE;
        return 1;
    default:
        return WEIR_ECORRUPT;
    }
}
