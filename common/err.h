/* Error codes of weir: one enum generated from an X-macro. Functions return 0 or a negative
 * WEIR_E* code; weir_strerror()/weir_err_name() describe it. */
#ifndef WEIR_COMMON_ERR_H
#define WEIR_COMMON_ERR_H

#define WEIR_ERRORS(X)                                                                             \
    X(OK, 0, "success")                                                                            \
    X(EINVAL, -1, "invalid argument")                                                              \
    X(ENOMEM, -2, "out of memory")                                                                 \
    X(EIO, -3, "I/O error")                                                                        \
    X(ENOTFOUND, -4, "not found")                                                                  \
    X(ECORRUPT, -5, "corrupt data")                                                                \
    X(ECONFIG, -6, "bad configuration")                                                            \
    X(EPLUGIN, -7, "bad plugin")                                                                   \
    X(EABI, -8, "plugin ABI version mismatch")                                                     \
    X(ESTATE, -9, "state backend error")                                                           \
    X(ENET, -10, "network error")                                                                  \
    X(ETIMEDOUT, -11, "timed out")                                                                 \
    X(ECANCELED, -12, "canceled")                                                                  \
    X(EPROTO, -13, "protocol error")                                                               \
    X(EEXIST, -14, "already exists")                                                               \
    X(ENOSPACE, -15, "no room")                                                                    \
    X(EUSER, -16, "user function failed")                                                          \
    X(ECONFLICT, -17, "conflicts with the current state")

typedef enum weir_err {
#define WEIR_ERR_ENUM(name, code, text) WEIR_##name = code,
    WEIR_ERRORS(WEIR_ERR_ENUM)
#undef WEIR_ERR_ENUM
} weir_err_t;

/** Human-readable description of a weir error code. */
const char *weir_strerror(int err);
/** Symbolic name ("WEIR_EINVAL") of a weir error code. */
const char *weir_err_name(int err);

#endif
