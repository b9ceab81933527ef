/* Readers for members of untrusted JSON objects: one set for every parser of weir's JSON (see
 * json.h). Owns nothing; stateless and thread-safe. */
#include "json.h"

#include <math.h>

#include "err.h"
#include "util.h"

/* The member, or NULL when absent or null (then *rc is set: an error when required). */
static const json_t *member(const json_t *obj, const char *what, const char *key, bool required,
                            const char *type, int *rc, char *errstr, size_t errlen) {
    const json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    *rc = 0;
    if (v && !json_is_null(v))
        return v;
    if (required)
        *rc = weir_errf(errstr, errlen, WEIR_EINVAL, "%s: missing %s \"%s\"", what, type, key);
    return NULL;
}

int weir_json_int(const json_t *obj, const char *what, const char *key, bool required, int64_t min,
                  int64_t max, int64_t dflt, int64_t *out, char *errstr, size_t errlen) {
    int rc;
    const json_t *v = member(obj, what, key, required, "integer", &rc, errstr, errlen);
    if (!v) {
        if (rc == 0)
            *out = dflt;
        return rc;
    }
    if (!json_is_integer(v))
        return weir_errf(errstr, errlen, WEIR_EINVAL, "%s: \"%s\" must be an integer", what, key);
    int64_t x = (int64_t)json_integer_value(v);
    if (x < min || x > max)
        return weir_errf(errstr, errlen, WEIR_EINVAL,
                         "%s: \"%s\" = %lld is out of range [%lld, %lld]", what, key, (long long)x,
                         (long long)min, (long long)max);
    *out = x;
    return 0;
}

int weir_json_u64(const json_t *obj, const char *what, const char *key, bool required,
                  uint64_t dflt, uint64_t *out, char *errstr, size_t errlen) {
    int64_t x;
    int rc =
        weir_json_int(obj, what, key, required, 0, INT64_MAX, (int64_t)dflt, &x, errstr, errlen);
    if (rc == 0)
        *out = (uint64_t)x;
    return rc;
}

int weir_json_str(const json_t *obj, const char *what, const char *key, bool required,
                  const char **out, char *errstr, size_t errlen) {
    int rc;
    const json_t *v = member(obj, what, key, required, "string", &rc, errstr, errlen);
    if (!v) {
        if (rc == 0)
            *out = NULL;
        return rc;
    }
    if (!json_is_string(v))
        return weir_errf(errstr, errlen, WEIR_EINVAL, "%s: \"%s\" must be a string", what, key);
    *out = json_string_value(v);
    return 0;
}

int weir_json_real(const json_t *obj, const char *what, const char *key, bool required, double min,
                   double dflt, double *out, char *errstr, size_t errlen) {
    int rc;
    const json_t *v = member(obj, what, key, required, "number", &rc, errstr, errlen);
    if (!v) {
        if (rc == 0)
            *out = dflt;
        return rc;
    }
    if (!json_is_number(v))
        return weir_errf(errstr, errlen, WEIR_EINVAL, "%s: \"%s\" must be a number", what, key);
    double x = json_number_value(v);
    if (!isfinite(x) || x < min)
        return weir_errf(errstr, errlen, WEIR_EINVAL, "%s: \"%s\" must be >= %g", what, key, min);
    *out = x;
    return 0;
}

int weir_json_bool(const json_t *obj, const char *what, const char *key, bool required, bool dflt,
                   bool *out, char *errstr, size_t errlen) {
    int rc;
    const json_t *v = member(obj, what, key, required, "boolean", &rc, errstr, errlen);
    if (!v) {
        if (rc == 0)
            *out = dflt;
        return rc;
    }
    if (!json_is_boolean(v))
        return weir_errf(errstr, errlen, WEIR_EINVAL, "%s: \"%s\" must be true or false", what,
                         key);
    *out = json_is_true(v);
    return 0;
}

int weir_json_array(const json_t *obj, const char *what, const char *key, bool required,
                    const json_t **out, char *errstr, size_t errlen) {
    int rc;
    const json_t *v = member(obj, what, key, required, "array", &rc, errstr, errlen);
    if (!v) {
        if (rc == 0)
            *out = NULL;
        return rc;
    }
    if (!json_is_array(v))
        return weir_errf(errstr, errlen, WEIR_EINVAL, "%s: \"%s\" must be an array", what, key);
    *out = v;
    return 0;
}

const char *weir_json_error_text(json_error_t *e) {
    for (char *p = e->text; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return e->text;
}
