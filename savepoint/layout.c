/* The file locations of keyed-state handles (layout.h): as paths (weir_layout_keyed_file) and as
 * a storage root + key (weir_layout_keyed_root / _key, for any storage location). Owns nothing;
 * pure and thread-safe. */
#include "savepoint/layout.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "storage/storage.h"

static bool plain_name(const char *s) {
    return s && s[0] && strcmp(s, ".") != 0 && strcmp(s, "..") != 0 && !strchr(s, '/');
}

int weir_layout_keyed_file(const char *base, bool self_contained, uint64_t handle_checkpoint,
                           const char *task, bool shared, const char *name, char *out, size_t cap) {
    if (!base || !base[0] || !plain_name(task) || !plain_name(name))
        return WEIR_EINVAL;
    int n;
    if (self_contained)
        n = snprintf(out, cap, "%s/%s/%s", base, task, name);
    else if (shared)
        n = snprintf(out, cap, "%s/../shared/%s", base, name);
    else
        n = snprintf(out, cap, "%s/../chk-%" PRIu64 "/%s/%s", base, handle_checkpoint, task, name);
    return n < 0 || (size_t)n >= cap ? WEIR_EINVAL : 0;
}

int weir_layout_keyed_root(const char *base, bool self_contained, char *out, size_t cap) {
    if (!base || !base[0])
        return WEIR_EINVAL;
    if (self_contained) {
        int n = snprintf(out, cap, "%s", base);
        return n < 0 || (size_t)n >= cap ? WEIR_EINVAL : 0;
    }
    return weir_storage_uri_parent(base, out, cap);
}

int weir_layout_keyed_key(bool self_contained, uint64_t handle_checkpoint, const char *task,
                          bool shared, const char *name, char *out, size_t cap) {
    if (!plain_name(task) || !plain_name(name))
        return WEIR_EINVAL;
    int n;
    if (self_contained)
        n = snprintf(out, cap, "%s/%s", task, name);
    else if (shared)
        n = snprintf(out, cap, "shared/%s", name);
    else
        n = snprintf(out, cap, "chk-%" PRIu64 "/%s/%s", handle_checkpoint, task, name);
    return n < 0 || (size_t)n >= cap ? WEIR_EINVAL : 0;
}
