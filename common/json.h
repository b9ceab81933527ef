/* Readers for members of untrusted JSON objects (graph JSON, checkpoint metadata, HA records,
 * state handles, REST bodies). Each returns 0, or WEIR_EINVAL with one line in errstr:
 * "<what>: missing integer \"<key>\"", "<what>: \"<key>\" must be a string", ... where @p what
 * names the object being read (e.g. "graph JSON: node 3"). A missing or null member is an error
 * when @p required, otherwise the reader stores its default. Stateless and thread-safe. */
#ifndef WEIR_COMMON_JSON_H
#define WEIR_COMMON_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** An integer in [min, max]; @p dflt when absent and not required. */
int weir_json_int(const json_t *obj, const char *what, const char *key, bool required, int64_t min,
                  int64_t max, int64_t dflt, int64_t *out, char *errstr, size_t errlen);
/** A non-negative integer; @p dflt when absent and not required. */
int weir_json_u64(const json_t *obj, const char *what, const char *key, bool required,
                  uint64_t dflt, uint64_t *out, char *errstr, size_t errlen);
/** A string (borrowed from @p obj); NULL when absent and not required. */
int weir_json_str(const json_t *obj, const char *what, const char *key, bool required,
                  const char **out, char *errstr, size_t errlen);
/** A finite number >= @p min (integers accepted); @p dflt when absent and not required. */
int weir_json_real(const json_t *obj, const char *what, const char *key, bool required, double min,
                   double dflt, double *out, char *errstr, size_t errlen);
/** A boolean; @p dflt when absent and not required. */
int weir_json_bool(const json_t *obj, const char *what, const char *key, bool required, bool dflt,
                   bool *out, char *errstr, size_t errlen);
/** An array (borrowed); NULL when absent and not required. */
int weir_json_array(const json_t *obj, const char *what, const char *key, bool required,
                    const json_t **out, char *errstr, size_t errlen);

/** jansson's error text made one printable line: its "near '...'" quotes raw input, so control
 * bytes (a newline inside a string, say) become '?' in place. Returns @p e->text. */
const char *weir_json_error_text(json_error_t *e);

#endif
